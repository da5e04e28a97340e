/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cow_int.h - the copy-on-write chain's insides, shared by its three
 * files: cow.c (the chain, live reads and writes, preservation, discards,
 * error cursors), cow_behind.c (queued writes and the write-behind
 * workers' batches) and cow_read.c (snapshot reads and seeks).  The rules
 * and the locks are in cow.c's opening note; nothing here is for other
 * modules, which use cow.h.
 */
#ifndef SNAPFS_COW_INT_H
#define SNAPFS_COW_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "snapfs/behind.h"
#include "snapfs/cbt.h"
#include "snapfs/cow.h"
#include "snapfs/store.h"
#include "chunkset.h"

#define NSTRIPES 1024
/* The fresh bits are reset a page at a time, lazily (fresh_set): a new
 * snapshot costs an epoch, not a pass over a bit per chunk of the image
 * (32 MiB at 1 TiB and 4 KiB chunks). */
#define FRESH_PAGE_BITS 32768
#define FRESH_LOCKS 64

struct cow {
	struct backing *b;
	struct store *s;
	struct uring_engine *io;
	struct cbt *cbt;
	uint64_t size; /* grows (cow_grow) with the chain quiesced */
	uint32_t cs;
	uint64_t nchunks;
	uint64_t cap_chunks; /* what the tables below reserve */
	uint64_t *fresh; /* a bit per chunk, valid for a page of them
			    only while its fresh_epoch is epoch */
	uint64_t *fresh_epoch; /* per FRESH_PAGE_BITS chunks */
	uint64_t epoch; /* changes with instant held exclusive */
	pthread_mutex_t fresh_locks[FRESH_LOCKS]; /* a page's reset */
	uint64_t *preserved;
	struct chunkset promised; /* chunks promised a store slot */
	int64_t newest; /* changes only with instant held exclusive */
	uint64_t newest_chunks; /* the newest snapshot's size, in chunks (as
				   newest) */
	int (*make_room)(void *arg); /* on_full=drop-oldest, else NULL */
	void *make_room_arg;
	pthread_mutex_t room_lock; /* one make_room at a time */
	uint64_t room_epoch; /* make_room calls that made room */
	pthread_rwlock_t instant;
	pthread_rwlock_t stripes[NSTRIPES];
	uint64_t preserved_count;
	struct behind *behind; /* writes waiting for their preservation */
	unsigned char *room[BEHIND_WORKERS]; /* write-behind chunk buffers */
	uint64_t instant_seen; /* snapshot create's behind_error cursor */
	bool stranded; /* a failed preservation kept promises */
	bool fresh_unknown; /* a reload of fresh failed (cow_set_newest):
			       no change until one succeeds; set with
			       instant exclusive, read with acquire */
};

static inline bool bit_test(const uint64_t *m, uint64_t i)
{
	return (__atomic_load_n(&m[i / 64], __ATOMIC_ACQUIRE) >> (i % 64)) & 1;
}

static inline void bit_set(uint64_t *m, uint64_t i)
{
	__atomic_fetch_or(&m[i / 64], 1ull << (i % 64), __ATOMIC_RELEASE);
}

/* Whether chunk i has a copy at or after the newest snapshot, or needs
 * none: past the newest snapshot's size (the image grew since), no
 * snapshot reads it. */
static inline bool fresh_test(struct cow *c, uint64_t i)
{
	uint64_t e = __atomic_load_n(&c->epoch, __ATOMIC_RELAXED);

	if (i >= c->newest_chunks)
		return true;
	if (__atomic_load_n(&c->fresh_epoch[i / FRESH_PAGE_BITS],
			    __ATOMIC_ACQUIRE) != e)
		return false;
	return bit_test(c->fresh, i);
}

/* cow.c: marks chunk i fresh (its page reset first if of an older
 * epoch); forgets every fresh bit at once.  See cow.c's note. */
void fresh_set(struct cow *c, uint64_t i);
void fresh_reset(struct cow *c);

/* Sets bit i; true when it was set already. */
static inline bool bit_test_and_set(uint64_t *m, uint64_t i)
{
	uint64_t b = 1ull << (i % 64);

	return __atomic_fetch_or(&m[i / 64], b, __ATOMIC_ACQ_REL) & b;
}

/* Clears bit i; true when it was set. */
static inline bool bit_test_and_clear(uint64_t *m, uint64_t i)
{
	uint64_t b = 1ull << (i % 64);

	return __atomic_fetch_and(&m[i / 64], ~b, __ATOMIC_ACQ_REL) & b;
}

static inline size_t words(uint64_t nbits)
{
	return (size_t)((nbits + 63) / 64);
}

/* The stripes of chunks[0..n), as a set. */
struct stripe_set {
	uint64_t bits[NSTRIPES / 64];
};

static inline void stripes_of(struct stripe_set *set, const uint64_t *chunks,
			      size_t n)
{
	memset(set, 0, sizeof(*set));
	for (size_t i = 0; i < n; i++) {
		unsigned st = (unsigned)(chunks[i] % NSTRIPES);

		set->bits[st / 64] |= 1ull << (st % 64);
	}
}

/* Locks the set's stripes in ascending order (the one lock order), a
 * word of the set at a time. */
static inline void stripes_lock(struct cow *c, const struct stripe_set *set,
				bool exclusive)
{
	for (unsigned w = 0; w < NSTRIPES / 64; w++)
		for (uint64_t b = set->bits[w]; b; b &= b - 1) {
			unsigned st = w * 64 + (unsigned)__builtin_ctzll(b);

			if (exclusive)
				pthread_rwlock_wrlock(&c->stripes[st]);
			else
				pthread_rwlock_rdlock(&c->stripes[st]);
		}
}

/* Unlocks the set's stripes (in any order: only locking needs one). */
static inline void stripes_unlock(struct cow *c, const struct stripe_set *set)
{
	for (unsigned w = 0; w < NSTRIPES / 64; w++)
		for (uint64_t b = set->bits[w]; b; b &= b - 1)
			pthread_rwlock_unlock(
				&c->stripes[w * 64 +
					    (unsigned)__builtin_ctzll(b)]);
}

/* Clips [off, off+len) to the image; returns the new length. */
static inline size_t clip(const struct cow *c, size_t len, uint64_t off)
{
	/* a growth publishes the size after its tables (cow_grow_commit) */
	uint64_t size = __atomic_load_n(&c->size, __ATOMIC_ACQUIRE);

	if (off >= size)
		return 0;
	return len > size - off ? (size_t)(size - off) : len;
}

/* cow.c: preserves chunks[0..n) (n <= COW_BATCH_CHUNKS) with their bits;
 * see its comment there.  0 or -errno. */
int cow_preserve(struct cow *c, const uint64_t *chunks, size_t n,
		 struct cbt_pending *bits, unsigned char *room);

/* cow.c: prepares a change of [off, off+len): records the changed
 * blocks, after preserving what `how` says.  Caller holds instant
 * shared. */
enum prepare {
	PREPARE_BITS, /* only the changed blocks */
	PREPARE_WRITE, /* and every chunk a snapshot still needs */
	PREPARE_DISCARD, /* and those of them that hold data */
};
int cow_prepare_change(struct cow *c, uint64_t off, uint64_t len,
		       enum prepare how);

/* cow_behind.c: the write-behind workers' callbacks, and the chunks one
 * batch preserves at most. */
extern const struct behind_ops cow_behind_ops;
size_t cow_batch_chunks(const struct cow *c);

/*
 * Queues a write that must preserve chunks first, or that follows a
 * queued write to the same chunks (behind.c), once its changed blocks
 * are recorded and a store slot is promised to each chunk it must
 * preserve that has none yet.  0 when queued: the write is answered and
 * the worker finishes it (cow_batch_prepare, cow_batch_write).
 * WRITE_DIRECT when nothing is to be preserved or waited for: the caller
 * records the bits and writes.  WRITE_SYNC when the caller must preserve
 * first itself (no room promised: the synchronous path makes room or
 * fails the write).  Or -errno.  Caller holds instant shared.
 */
enum { WRITE_DIRECT = 1, WRITE_SYNC };
int cow_write_behind(struct cow *c, const void *buf, size_t len, uint64_t off);

#endif
