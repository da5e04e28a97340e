/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cbt.h - changed-block tracking: generations and their bitmaps.
 */
#ifndef SNAPFS_CBT_H
#define SNAPFS_CBT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "snapfs/store.h"

struct cbt;

/* Words per write-intent region: 1024 blocks, 64 MiB at the default
 * cbt_block_size.  After a power loss the open generation may over-report
 * by the regions written since it was last sealed. */
#define CBT_REGION_WORDS 16

/* Regions recorded ahead of a sequential writer: one commit per 512 MiB
 * (default block size) instead of one per 64 MiB.  After a power loss the
 * over-report may reach that far past such a writer's last write. */
#define CBT_AHEAD 7

/* What a write must do before it reaches the backing: record words
 * (whole regions' write intents; none under durability=process or when
 * the regions are recorded already) durably, then set the exact bits set
 * with cbt_apply. */
struct cbt_pending {
	uint64_t gen;
	struct cbt_word *words; /* to record (store_commit) */
	size_t n;
	struct cbt_word *set; /* to set in the open bitmap */
	size_t nset;
	bool committed; /* words recorded with a preservation's commit */
	struct cbt_word inline_words[2 * CBT_REGION_WORDS];
	struct cbt_word inline_set[4];
};

/*
 * Loads the open generation's bitmap: from the store after a clean stop,
 * from cbt.map after a crash on the same boot, from both after a power
 * loss (see cbt.c).  keep: closed generations kept (cbt_keep); durable:
 * durability=full (record write intents).  0 or -errno.
 */
int cbt_create(struct cbt **out, struct store *s, uint64_t image_size,
	       uint32_t keep, bool durable, bool same_boot);

void cbt_destroy(struct cbt *c);

/*
 * A growth of the image from old_size to new_size, in three steps:
 * prepare (while writes go on; no other generation change or growth may
 * run) makes room in cbt.map and records the words of only new blocks as
 * changed in the open generation's store record (durable; a growth that
 * then fails leaves only words past the image, which nothing reads);
 * edge, with the chain quiesced, records the word the new blocks share
 * with the old ones; commit, once the image has grown, sets their bits
 * and the new size (every bitmap, closed ones too, is then of the new
 * size: zeros where an older generation had no such block).  prepare: 0,
 * -EFBIG past what a mount can grow to (BACKING_MAX_GROWN), or -errno;
 * edge: 0 or -errno.
 */
int cbt_grow_prepare(struct cbt *c, uint64_t old_size, uint64_t new_size);
int cbt_grow_edge(struct cbt *c, uint64_t old_size, uint64_t new_size);
void cbt_grow_commit(struct cbt *c, uint64_t old_size, uint64_t new_size);

/* Blocks of the image and bytes of one bitmap file. */
uint64_t cbt_nblocks(const struct cbt *c);
uint64_t cbt_bitmap_bytes(const struct cbt *c);
uint32_t cbt_block_size(const struct cbt *c);

/* The open generation. */
uint64_t cbt_open_generation(const struct cbt *c);

/*
 * Fills p with the bits of [off, off+len) not yet set in the open
 * generation and the intents they need recorded first.  Caller holds the
 * chain's instant shared, records p->words if p->n (store_commit), calls
 * cbt_apply, then writes.  0 or -ENOMEM; free with cbt_pending_free.
 */
int cbt_collect(struct cbt *c, uint64_t off, uint64_t len,
		struct cbt_pending *p);

/* Sets p's bits in memory once they are recorded. */
void cbt_apply(struct cbt *c, const struct cbt_pending *p);

void cbt_pending_free(struct cbt_pending *p);

/* Makes the store's record of the open generation exact (replacing
 * write intents); before a generation closes and at a clean stop, with
 * no write in flight.  0 or -errno. */
int cbt_seal(struct cbt *c);

/* Closes the open generation and opens the store's next one (after
 * store_add_snapshot, chain quiesced); drops closed bitmaps beyond
 * cbt_keep.  0 or -errno. */
int cbt_next_generation(struct cbt *c);

/* Marks the open generation all ones for reason.  0 or -errno. */
int cbt_widen(struct cbt *c, const char *reason);

/*
 * The whole bitmap of generation gen in the contract's format (block i
 * is bit i%8 of byte i/8), in a new buffer of cbt_bitmap_bytes().
 * -ENOENT for an unknown or dropped generation.
 */
int cbt_render(struct cbt *c, uint64_t gen, uint8_t **out);

/*
 * Reads bytes [off, off+len) of generation gen's bitmap as it is now,
 * while gen is not closed: the open generation's bits, all zeros for one
 * not open yet.  Bytes read, or -ESTALE once gen is closed (also when it
 * closed during the read): then cbt_render has it.  Any thread.
 */
ssize_t cbt_read_open(struct cbt *c, uint64_t gen, void *buf, size_t len,
		      uint64_t off);

/* For tests: fn(arg) runs inside every cbt_read_open of a generation not
 * closed, in the window a generation change must not slip into. */
void cbt_set_read_hook(struct cbt *c, void (*fn)(void *arg), void *arg);

/* The generations recorded, oldest first (closed, dropped and the open
 * one), in a new array of *n to free().  Generations are this module's:
 * others read them here, not from the store.  0 or -errno. */
int cbt_list_generations(struct cbt *c, struct store_generation **out,
			 size_t *n);

/* Generation gen's record.  0, -ENOENT when unknown, or -errno. */
int cbt_get_generation(struct cbt *c, uint64_t gen,
		       struct store_generation *out);

/* Deletes closed generation gen's bitmap.  0, -EBUSY (open), -ENOENT. */
int cbt_drop(struct cbt *c, uint64_t gen);

#endif
