// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * scratch.c - per-thread buffers for the data path.
 *
 * A request that needs room for a reply or for chunks takes this
 * thread's buffer for that use instead of calling malloc: steady I/O
 * then allocates nothing, and the daemon's memory stays bounded by the
 * worker threads (at most SCRATCH_KEEP per slot each, freed when a
 * worker exits) instead of growing in malloc's per-thread arenas, which
 * keep freed megabyte buffers for good.  scratch_init fixes malloc's
 * mapping threshold (256 KiB, no longer raised by glibc's dynamic rule),
 * so every big buffer, here or in libfuse, is its own mapping: only the
 * pages touched count, and a free returns them.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "snapfs/scratch.h"

struct scratch {
	void *buf[SCRATCH_SLOTS];
	size_t cap[SCRATCH_SLOTS];
};

static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void scratch_free(void *arg)
{
	struct scratch *s = arg;

	for (int i = 0; i < SCRATCH_SLOTS; i++)
		free(s->buf[i]);
	free(s);
}

static void make_key(void)
{
	if (pthread_key_create(&key, scratch_free))
		abort();
}

void scratch_init(void)
{
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
}

void *scratch_get(enum scratch_slot slot, size_t len)
{
	struct scratch *s;
	size_t cap;

	len = (len + 4095) & ~(size_t)4095;
	if (!len)
		len = 4096;
	if (len > SCRATCH_KEEP)
		return aligned_alloc(4096, len);
	pthread_once(&once, make_key);
	s = pthread_getspecific(key);
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s || pthread_setspecific(key, s)) {
			free(s);
			return NULL;
		}
	}
	if (s->cap[slot] >= len)
		return s->buf[slot];
	/* grow to the next 256 KiB, so small steps do not reallocate */
	cap = (len + (256u << 10) - 1) & ~(size_t)((256u << 10) - 1);
	free(s->buf[slot]);
	s->buf[slot] = aligned_alloc(4096, cap);
	s->cap[slot] = s->buf[slot] ? cap : 0;
	return s->buf[slot];
}

void scratch_put(enum scratch_slot slot, void *buf)
{
	struct scratch *s;

	if (!buf)
		return;
	pthread_once(&once, make_key);
	s = pthread_getspecific(key);
	if (!s || s->buf[slot] != buf)
		free(buf);
}
