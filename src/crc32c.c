// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * crc32c.c - CRC-32C with the SSE4.2 instruction where the CPU has it and
 * a slicing-by-8 table otherwise.
 *
 * The instruction takes three cycles to give its result but can start one
 * every cycle, so the hardware path runs three independent streams over
 * three consecutive blocks of STRIDE bytes and joins them: the CRC
 * register is linear, so the register after block A then B is
 * shift(after A) ^ (B's register from zero), where shift advances a
 * register over STRIDE zero bytes (a fixed GF(2) 32x32 matrix, applied as
 * four byte-indexed tables).  About three times the speed of one stream on
 * 64 KiB chunks, which every preservation and snapshot read checksums.
 *
 * The tables are built once (pthread_once); the CPU check happens at the
 * same time.  Both paths give identical results: the unit test compares
 * them on random buffers.
 */
#include <pthread.h>
#include <string.h>

#include "snapfs/crc32c.h"

#define POLY 0x82f63b78u /* reflected Castagnoli polynomial */
#define STRIDE 4096u /* bytes per stream and step of the hardware path */

static uint32_t table[8][256];
static uint32_t shift_table[4][256]; /* the register over STRIDE zeros */
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
	/* Zero bytes only move the register: column b of the operator is
	 * bit b's register after STRIDE of them (table[0] steps one byte). */
	uint32_t col[32];

	for (int b = 0; b < 32; b++) {
		uint32_t c = 1u << b;

		for (unsigned n = 0; n < STRIDE; n++)
			c = (c >> 8) ^ table[0][c & 0xff];
		col[b] = c;
	}
	for (int k = 0; k < 4; k++)
		for (uint32_t v = 0; v < 256; v++) {
			uint32_t c = 0;

			for (int b = 0; b < 8; b++)
				if (v >> b & 1)
					c ^= col[8 * k + b];
			shift_table[k][v] = c;
		}
#if defined(__x86_64__)
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
#endif
}

/* The register c advanced over STRIDE zero bytes. */
static uint32_t shift_stride(uint32_t c)
{
	return shift_table[0][c & 0xff] ^ shift_table[1][(c >> 8) & 0xff] ^
	       shift_table[2][(c >> 16) & 0xff] ^ shift_table[3][c >> 24];
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

	while (len >= 3 * STRIDE) {
		uint64_t b = 0, d = 0;

		for (unsigned i = 0; i < STRIDE; i += 8) {
			uint64_t x, y, z;

			memcpy(&x, p + i, 8);
			memcpy(&y, p + STRIDE + i, 8);
			memcpy(&z, p + 2 * STRIDE + i, 8);
			c = __builtin_ia32_crc32di(c, x);
			b = __builtin_ia32_crc32di(b, y);
			d = __builtin_ia32_crc32di(d, z);
		}
		c = shift_stride(shift_stride((uint32_t)c) ^ (uint32_t)b) ^
		    (uint32_t)d;
		p += 3 * STRIDE;
		len -= 3 * STRIDE;
	}
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
