/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * array.h - growable arrays: a pointer, a count and a capacity that
 * doubles (from 16) when full.
 */
#ifndef SNAPFS_ARRAY_H
#define SNAPFS_ARRAY_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Makes room for element cnt of *arrayp (elem bytes each, *cap of them
 * allocated): 0 or -ENOMEM, the array unchanged. */
static inline int array_grow(void *arrayp, size_t *cap, size_t cnt, size_t elem)
{
	void **array = arrayp, *bigger;
	size_t n;

	if (cnt < *cap)
		return 0;
	n = *cap ? *cap * 2 : 16;
	bigger = realloc(*array, n * elem);
	if (!bigger)
		return -ENOMEM;
	*array = bigger;
	*cap = n;
	return 0;
}

/* A growable array of int64_t; { 0 } is empty, free(v) frees it. */
struct i64_array {
	int64_t *v;
	size_t n, cap;
};

static inline int i64_array_push(struct i64_array *a, int64_t x)
{
	int r = array_grow(&a->v, &a->cap, a->n, sizeof(*a->v));

	if (!r)
		a->v[a->n++] = x;
	return r;
}

/* qsort's comparison of uint64_t elements. */
static inline int array_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

#endif
