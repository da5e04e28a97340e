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

/* New bits a write must record before it reaches the backing. */
struct cbt_pending {
	uint64_t gen;
	struct cbt_word *words;
	size_t n;
	bool committed; /* recorded with a preservation's commit */
	struct cbt_word inline_words[8];
};

/* Loads the open generation's bitmap from the store.  keep: closed
 * generations kept (cbt_keep).  0 or -errno. */
int cbt_create(struct cbt **out, struct store *s, uint64_t image_size,
	       uint32_t keep);

void cbt_destroy(struct cbt *c);

/* Blocks of the image and bytes of one bitmap file. */
uint64_t cbt_nblocks(const struct cbt *c);
uint64_t cbt_bitmap_bytes(const struct cbt *c);
uint32_t cbt_block_size(const struct cbt *c);

/* The open generation. */
uint64_t cbt_open_generation(const struct cbt *c);

/*
 * Fills p with the bits of [off, off+len) not yet set in the open
 * generation (p->n 0 when there are none).  Caller holds the chain's
 * instant shared, records p (store_commit), calls cbt_apply, then writes.
 * 0 or -ENOMEM; free with cbt_pending_free.
 */
int cbt_collect(struct cbt *c, uint64_t off, uint64_t len,
		struct cbt_pending *p);

/* Sets p's bits in memory once they are recorded. */
void cbt_apply(struct cbt *c, const struct cbt_pending *p);

void cbt_pending_free(struct cbt_pending *p);

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

/* Reads bytes [off, off+len) of the open generation's bitmap as it is
 * now.  Bytes read. */
ssize_t cbt_read_open(struct cbt *c, void *buf, size_t len, uint64_t off);

/* Deletes closed generation gen's bitmap.  0, -EBUSY (open), -ENOENT. */
int cbt_drop(struct cbt *c, uint64_t gen);

#endif
