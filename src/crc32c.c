// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * crc32c.c - CRC-32C with the SSE4.2 instruction where the CPU has it and
 * a slicing-by-8 table otherwise.
 *
 * The tables are built once (pthread_once); the CPU check happens at the
 * same time.  Both paths give identical results: the unit test compares
 * them on random buffers.
 */
#include <pthread.h>
#include <string.h>

#include "snapfs/crc32c.h"

#define POLY 0x82f63b78u /* reflected Castagnoli polynomial */

static uint32_t table[8][256];
static int have_sse42;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^
				      table[0][table[t - 1][i] & 0xff];
#if defined(__x86_64__)
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
#endif
}

/* The portable path; exported for the unit test through crc32c_soft. */
uint32_t crc32c_soft(const void *buf, size_t len);
uint32_t crc32c_soft(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = ~0u;

	pthread_once(&once, crc32c_init);
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		w ^= c;
		c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^
		    table[5][(w >> 16) & 0xff] ^ table[4][(w >> 24) & 0xff] ^
		    table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
		    table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
	return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(const void *buf,
							    size_t len)
{
	const unsigned char *p = buf;
	uint64_t c = ~0u;

	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#endif

uint32_t crc32c(const void *buf, size_t len)
{
	pthread_once(&once, crc32c_init);
#if defined(__x86_64__)
	if (have_sse42)
		return crc32c_hw(buf, len);
#endif
	return crc32c_soft(buf, len);
}
