// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * crc32c.c - CRC-32C: carry-less multiplication on 512-bit registers
 * (VPCLMULQDQ) where the CPU has it, else the SSE4.2 instruction, else a
 * slicing-by-8 table.
 *
 * The SSE4.2 instruction takes three cycles to give its result but can
 * start one every cycle, so that path runs three independent streams over
 * three consecutive blocks of STRIDE bytes and joins them: the CRC
 * register is linear, so the register after block A then B is
 * shift(after A) ^ (B's register from zero), where shift advances a
 * register over STRIDE zero bytes (a fixed GF(2) 32x32 matrix, applied as
 * four byte-indexed tables).  About three times the speed of one stream on
 * 64 KiB chunks, which every preservation and snapshot read checksums.
 *
 * The VPCLMULQDQ path folds: a message is a polynomial over GF(2), and a
 * 128-bit block B followed by D bits of message contributes B * x^D.  With
 * B = H * x^64 + L, B * x^D = H * x^(D+64) + L * x^D, and the two
 * products by constants (x^n mod P) each fit 128 bits again, so sixteen
 * 128-bit lanes (four 512-bit registers) advance 256 bytes a step with two
 * carry-less multiplies each and no dependency between lanes.  At the end
 * the lanes fold into one 128-bit value congruent to the message, whose
 * CRC the SSE4.2 instruction takes in two steps.  About twice the SSE4.2
 * path's speed on 64 KiB (50 against 23 GB/s on an AMD EPYC).
 *
 * The tables and constants are built once (pthread_once); the CPU check
 * happens at the same time.  Every path gives identical results: the unit
 * test compares each one this CPU has with the table on random buffers.
 */
#include <pthread.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "snapfs/crc32c.h"

#define POLY 0x82f63b78u /* reflected Castagnoli polynomial */
#define STRIDE 4096u /* bytes per stream and step of the hardware path */

static uint32_t table[8][256];
static uint32_t shift_table[4][256]; /* the register over STRIDE zeros */
static bool have[CRC32C_VPCLMUL + 1] = { [CRC32C_TABLE] = true };
static pthread_once_t once = PTHREAD_ONCE_INIT;
#if defined(__x86_64__)
static void fold_init(void);
#endif

/* x^n mod P, bit-reflected (x^0 is the top bit); a bit at a time. */
static uint32_t xpow_mod(unsigned n)
{
	uint32_t r = 0x80000000u;

	while (n--)
		r = r & 1 ? (r >> 1) ^ POLY : r >> 1;
	return r;
}

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
	have[CRC32C_SSE42] = __builtin_cpu_supports("sse4.2");
	have[CRC32C_VPCLMUL] = have[CRC32C_SSE42] &&
			       __builtin_cpu_supports("avx512f") &&
			       __builtin_cpu_supports("avx512vl") &&
			       __builtin_cpu_supports("vpclmulqdq");
	fold_init();
#endif
}

/* The register c advanced over STRIDE zero bytes. */
static uint32_t shift_stride(uint32_t c)
{
	return shift_table[0][c & 0xff] ^ shift_table[1][(c >> 8) & 0xff] ^
	       shift_table[2][(c >> 16) & 0xff] ^ shift_table[3][c >> 24];
}

/* The portable path. */
static uint32_t crc32c_table(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = ~0u;

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
/* The raw register c (no inversions) advanced over buf[0..len). */
__attribute__((target("sse4.2"))) static uint64_t
sse42_update(uint64_t c, const unsigned char *p, size_t len)
{
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
	return c;
}

static uint32_t crc32c_sse42(const void *buf, size_t len)
{
	return ~(uint32_t)sse42_update(~0u, buf, len);
}

#define FOLD_TARGET "sse4.2,pclmul,avx512f,avx512vl,vpclmulqdq"

/*
 * Multiplying two 64-bit halves of bit-reflected values gives their
 * product times x, and a 32-bit constant sits in the low half as itself
 * times x^32; so the constant that moves a lane D bits on is
 * { x^(D+31) mod P, x^(D-33) mod P } for the halves H and L.
 */
static __m128i fold_by[5]; /* 2048, 512, 384, 256 and 128 bits */

static __m128i fold_constants(unsigned d)
{
	return _mm_set_epi64x((long long)xpow_mod(d - 33),
			      (long long)xpow_mod(d + 31));
}

static void fold_init(void)
{
	static const unsigned d[5] = { 2048, 512, 384, 256, 128 };

	for (int i = 0; i < 5; i++)
		fold_by[i] = fold_constants(d[i]);
}

/* Each lane of x moved on by its constant in k, plus y. */
__attribute__((target(FOLD_TARGET))) static __m512i
fold512(__m512i x, __m512i k, __m512i y)
{
	return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
					 _mm512_clmulepi64_epi128(x, k, 0x11),
					 y, 0x96);
}

__attribute__((target(FOLD_TARGET))) static __m128i
fold128(__m128i x, __m128i k, __m128i y)
{
	return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00),
					   _mm_clmulepi64_si128(x, k, 0x11)),
			     y);
}

__attribute__((target(FOLD_TARGET))) static uint32_t
crc32c_vpclmul(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	__m512i z0, z1, z2, z3, k;
	__m128i x;
	uint64_t c;

	if (len < 256)
		return crc32c_sse42(buf, len);
	/* the initial register (all ones) goes into the first bytes */
	z0 = _mm512_xor_si512(_mm512_loadu_si512(p),
			      _mm512_castsi128_si512(_mm_cvtsi32_si128(-1)));
	z1 = _mm512_loadu_si512(p + 64);
	z2 = _mm512_loadu_si512(p + 128);
	z3 = _mm512_loadu_si512(p + 192);
	p += 256;
	len -= 256;
	k = _mm512_broadcast_i32x4(fold_by[0]);
	while (len >= 256) {
		z0 = fold512(z0, k, _mm512_loadu_si512(p));
		z1 = fold512(z1, k, _mm512_loadu_si512(p + 64));
		z2 = fold512(z2, k, _mm512_loadu_si512(p + 128));
		z3 = fold512(z3, k, _mm512_loadu_si512(p + 192));
		p += 256;
		len -= 256;
	}
	k = _mm512_broadcast_i32x4(fold_by[1]);
	z1 = fold512(z0, k, z1);
	z2 = fold512(z1, k, z2);
	z3 = fold512(z2, k, z3);
	for (; len >= 64; p += 64, len -= 64)
		z3 = fold512(z3, k, _mm512_loadu_si512(p));
	x = fold128(_mm512_extracti32x4_epi32(z3, 0), fold_by[2],
		    _mm512_extracti32x4_epi32(z3, 3));
	x = fold128(_mm512_extracti32x4_epi32(z3, 1), fold_by[3], x);
	x = fold128(_mm512_extracti32x4_epi32(z3, 2), fold_by[4], x);
	for (; len >= 16; p += 16, len -= 16)
		x = fold128(x, fold_by[4], _mm_loadu_si128((const void *)p));
	/* x is congruent to the message so far: its CRC from zero */
	c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(x));
	c = _mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(x, 1));
	return ~(uint32_t)sse42_update(c, p, len);
}
#endif

static uint32_t (*const impl[CRC32C_VPCLMUL + 1])(const void *, size_t) = {
	[CRC32C_TABLE] = crc32c_table,
#if defined(__x86_64__)
	[CRC32C_SSE42] = crc32c_sse42,
	[CRC32C_VPCLMUL] = crc32c_vpclmul,
#endif
};

bool crc32c_has(enum crc32c_impl i)
{
	pthread_once(&once, crc32c_init);
	return have[i];
}

uint32_t crc32c_by(enum crc32c_impl i, const void *buf, size_t len)
{
	pthread_once(&once, crc32c_init);
	return impl[i](buf, len);
}

uint32_t crc32c(const void *buf, size_t len)
{
	pthread_once(&once, crc32c_init);
	if (have[CRC32C_VPCLMUL])
		return crc32c_vpclmul(buf, len);
	if (have[CRC32C_SSE42])
		return crc32c_sse42(buf, len);
	return crc32c_table(buf, len);
}
