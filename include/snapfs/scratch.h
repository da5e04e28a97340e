/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * scratch.h - per-thread buffers for the data path.
 */
#ifndef SNAPFS_SCRATCH_H
#define SNAPFS_SCRATCH_H

#include <stddef.h>

/* One buffer per use, so that nested users never share one. */
enum scratch_slot {
	SCRATCH_REPLY, /* a read request's reply */
	SCRATCH_CHUNKS, /* whole chunks being preserved or checked */
	SCRATCH_SLOTS
};

/* Largest buffer a thread keeps per slot; larger ones are mapped for the
 * call and unmapped by scratch_put. */
#define SCRATCH_KEEP (2u << 20)

/* Sets malloc's mapping threshold once per process (see scratch.c). */
void scratch_init(void);

/* A 4096-aligned buffer of at least len bytes for this thread, or NULL
 * (ENOMEM).  Valid until the next scratch_get of the same slot on this
 * thread or scratch_put. */
void *scratch_get(enum scratch_slot slot, size_t len);

/* Ends a scratch_get; frees what it mapped beyond SCRATCH_KEEP. */
void scratch_put(enum scratch_slot slot, void *buf);

#endif
