// SPDX-License-Identifier: GPL-2.0-or-later
#include <criterion/criterion.h>
#include <stdlib.h>

#include "snapfs/crc32c.h"

uint32_t crc32c_soft(const void *buf, size_t len);

Test(crc32c, matches_the_standard_check_value)
{
	cr_assert_eq(crc32c("123456789", 9), 0xe3069283u);
	cr_assert_eq(crc32c_soft("123456789", 9), 0xe3069283u);
	cr_assert_eq(crc32c("", 0), 0);
}

Test(crc32c, hardware_and_table_paths_agree_on_every_length_and_alignment)
{
	unsigned char buf[4200];

	srand(7);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)rand();
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len + off <= sizeof(buf); len += 37)
			cr_assert_eq(crc32c(buf + off, len),
				     crc32c_soft(buf + off, len),
				     "len %zu off %zu", len, off);
}

Test(crc32c, the_three_stream_path_agrees_past_its_stride)
{
	size_t max = 5 * 12288 + 100;
	unsigned char *buf = malloc(65536 + 8);

	srand(11);
	for (size_t i = 0; i < 65536 + 8; i++)
		buf[i] = (unsigned char)rand();
	for (size_t len = 12288 - 16; len <= max; len += 1021)
		for (size_t off = 0; off < 8; off += 3)
			cr_assert_eq(crc32c(buf + off, len),
				     crc32c_soft(buf + off, len),
				     "len %zu off %zu", len, off);
	cr_assert_eq(crc32c(buf, 65536), crc32c_soft(buf, 65536));
	free(buf);
}

Test(crc32c, a_single_flipped_bit_changes_the_sum)
{
	unsigned char buf[65536] = { 0 };
	uint32_t base = crc32c(buf, sizeof(buf));

	for (size_t bit = 0; bit < sizeof(buf) * 8; bit += 4099) {
		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		cr_assert_neq(crc32c(buf, sizeof(buf)), base);
		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
}
