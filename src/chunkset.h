/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * chunkset.h - a small set of chunk numbers behind its own mutex: the
 * chain's promised chunks (cow.c), which the write-behind queue bounds,
 * so that memory goes with what is queued, not with the image's size.
 * A sorted array: lookups are a binary search, and an empty set is
 * answered without the lock.
 */
#ifndef SNAPFS_CHUNKSET_H
#define SNAPFS_CHUNKSET_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chunkset {
	pthread_mutex_t lock;
	uint64_t *v; /* ascending */
	size_t n, cap; /* n also read without the lock, atomically */
};

void chunkset_init(struct chunkset *s);
void chunkset_destroy(struct chunkset *s);

/* Whether k is in the set.  Any thread. */
bool chunkset_has(struct chunkset *s, uint64_t k);

/* Adds k: 1 when it was there already, 0 when added, -ENOMEM. */
int chunkset_add(struct chunkset *s, uint64_t k);

/* Removes k: whether it was there. */
bool chunkset_remove(struct chunkset *s, uint64_t k);

/* Empties the set: how many it held. */
size_t chunkset_clear(struct chunkset *s);

#endif
