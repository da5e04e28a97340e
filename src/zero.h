/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * zero.h - whether bytes are all zero (a chunk to keep as a zero row, a
 * piece to punch, a 'z' record).
 */
#ifndef SNAPFS_ZERO_H
#define SNAPFS_ZERO_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Whether p[0..len) is all zero bytes (true for len 0). */
static inline bool all_zero(const void *p, size_t len)
{
	const unsigned char *b = p;

	return len == 0 || (b[0] == 0 && !memcmp(b, b + 1, len - 1));
}

#endif
