// SPDX-License-Identifier: GPL-2.0-or-later
#include <criterion/criterion.h>
#include <stdlib.h>

#include "snapfs/crc32c.h"

static const char *const names[] = { "table", "sse4.2", "vpclmulqdq" };

/* Each implementation this CPU has against the table, on buf[off..off+len)
 * for every off below 8 and len from min to max in steps. */
static void agree(const unsigned char *buf, size_t min, size_t max, size_t step)
{
	for (int i = CRC32C_SSE42; i <= CRC32C_VPCLMUL; i++) {
		if (!crc32c_has(i)) {
			cr_log_info("crc32c: this CPU has no %s path",
				    names[i]);
			continue;
		}
		for (size_t off = 0; off < 8; off++)
			for (size_t len = min; len <= max; len += step)
				cr_assert_eq(
					crc32c_by(i, buf + off, len),
					crc32c_by(CRC32C_TABLE, buf + off, len),
					"%s: len %zu off %zu", names[i], len,
					off);
	}
}

Test(crc32c, matches_the_standard_check_value)
{
	cr_assert_eq(crc32c("123456789", 9), 0xe3069283u);
	for (int i = CRC32C_TABLE; i <= CRC32C_VPCLMUL; i++)
		if (crc32c_has(i))
			cr_assert_eq(crc32c_by(i, "123456789", 9), 0xe3069283u,
				     "%s", names[i]);
	cr_assert_eq(crc32c("", 0), 0);
}

Test(crc32c, every_path_agrees_with_the_table_on_every_short_length)
{
	unsigned char buf[4200];

	srand(7);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)rand();
	agree(buf, 0, 600, 1); /* every tail of the folds' 256-byte step */
	agree(buf, 600, sizeof(buf) - 8, 37);
}

Test(crc32c, every_path_agrees_past_its_strides)
{
	size_t max = 5 * 12288 + 100, size = 65536 + 8;
	unsigned char *buf = malloc(size);

	cr_assert_not_null(buf);
	srand(11);
	for (size_t i = 0; i < size; i++)
		buf[i] = (unsigned char)rand();
	agree(buf, 12288 - 16, max, 1021);
	agree(buf, 65536, 65536, 1);
	cr_assert_eq(crc32c(buf, 65536), crc32c_by(CRC32C_TABLE, buf, 65536));
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
