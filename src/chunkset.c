// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * chunkset.c - a small set of chunk numbers (chunkset.h).
 *
 * Locking: every change and every lookup of a set that is not empty
 * under its mutex; the count is stored with release and loaded with
 * acquire, so an empty set costs a load.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "chunkset.h"

void chunkset_init(struct chunkset *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
}

void chunkset_destroy(struct chunkset *s)
{
	pthread_mutex_destroy(&s->lock);
	free(s->v);
	s->v = NULL;
}

/* The first index whose element is >= k, and whether it is k; lock
 * held. */
static bool find(const struct chunkset *s, uint64_t k, size_t *at)
{
	size_t a = 0, b = s->n;

	while (a < b) {
		size_t m = a + (b - a) / 2;

		if (s->v[m] < k)
			a = m + 1;
		else
			b = m;
	}
	*at = a;
	return a < s->n && s->v[a] == k;
}

bool chunkset_has(struct chunkset *s, uint64_t k)
{
	bool r;
	size_t i;

	if (!__atomic_load_n(&s->n, __ATOMIC_ACQUIRE))
		return false;
	pthread_mutex_lock(&s->lock);
	r = find(s, k, &i);
	pthread_mutex_unlock(&s->lock);
	return r;
}

int chunkset_add(struct chunkset *s, uint64_t k)
{
	size_t i;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	if (find(s, k, &i)) {
		r = 1;
	} else if (!(r = array_grow(&s->v, &s->cap, s->n, sizeof(*s->v)))) {
		memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof(*s->v));
		s->v[i] = k;
		__atomic_store_n(&s->n, s->n + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

bool chunkset_remove(struct chunkset *s, uint64_t k)
{
	bool r;
	size_t i;

	if (!__atomic_load_n(&s->n, __ATOMIC_ACQUIRE))
		return false;
	pthread_mutex_lock(&s->lock);
	r = find(s, k, &i);
	if (r) {
		memmove(s->v + i, s->v + i + 1, (s->n - i - 1) * sizeof(*s->v));
		__atomic_store_n(&s->n, s->n - 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

size_t chunkset_clear(struct chunkset *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->n;
	__atomic_store_n(&s->n, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->lock);
	return n;
}
