// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * cow_behind.c - the copy-on-write chain's write-behind side: a write that
 * must preserve first is queued (behind.c) with a store slot promised to
 * each chunk it must preserve, and answered; the queue's workers then
 * preserve (cow_batch_prepare, through cow_preserve) and write it
 * (cow_batch_write), in order.  The promise bit and the locks are cow.c's
 * (its opening note); a worker holds no instant lock, as it runs only
 * while no snapshot is being taken.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "snapfs/backing.h"
#include "snapfs/log.h"
#include "snapfs/uring.h"
#include "array.h"
#include "cow_int.h"

/*
 * Chunks a write-behind batch preserves at most: 2 MiB of old bytes, one
 * group commit.  Small batches keep one worker's commit and the other's
 * reads and writes overlapping (on tmpfs at queue depth 1, 1 MiB against
 * 3 and 8 MiB: first touch 0.9 against 0.6 and 0.5 of a plain 4 KiB
 * write, side by side); on disk each commit costs two flushes, which
 * larger batches share (4 KiB random writes at queue depth 16, first
 * touch, 4 GiB image, in turn: 2 MiB 4753 3108 4825 IOPS against 1 MiB
 * 3554 2721 2610; tmpfs and queue depth 1 unchanged).  A batch holds one
 * stripe lock a chunk: 32 at the default 64 KiB chunks, under
 * ThreadSanitizer's 64 a thread (not at chunk sizes under 32 KiB, which
 * the TSan runs of contrib/check.sh do not use).
 */
size_t cow_batch_chunks(const struct cow *c)
{
	size_t n = (4u << 20) / c->cs;

	return n > COW_BATCH_CHUNKS ? COW_BATCH_CHUNKS : n ? n : 1;
}

/* Chunks a queued write touches at most (chunk_size is 4 KiB or more). */
#define WRITE_CHUNKS_MAX (BEHIND_MAX_WRITE / 4096 + 1)
#define MASK_WORDS ((WRITE_CHUNKS_MAX + 63) / 64)

static bool mask_test(const uint64_t *mask, uint64_t i)
{
	return mask[i / 64] >> (i % 64) & 1;
}

/* Gives back the promises a write that could not be queued made, on
 * chunks first + i of mask (behind_queue fails only on a length checked
 * before, so none was taken meanwhile).  Takes the chunks' stripe
 * locks. */
static void cow_drop_promises(struct cow *c, uint64_t first, uint64_t last,
			      const uint64_t *mask)
{
	uint64_t ch, n = 0;

	for (ch = first; ch <= last; ch++) {
		pthread_rwlock_t *st = &c->stripes[ch % NSTRIPES];

		if (!mask_test(mask, ch - first))
			continue;
		pthread_rwlock_wrlock(st);
		n += chunkset_remove(&c->promised, ch);
		pthread_rwlock_unlock(st);
	}
	if (n)
		store_slot_unreserve(c->s, n);
}

int cow_write_behind(struct cow *c, const void *buf, size_t len, uint64_t off)
{
	uint64_t first = off / c->cs, last = (off + len - 1) / c->cs, i;
	uint64_t mine[MASK_WORDS] = { 0 };
	uint64_t need = 0, k = 0, twice = 0;
	int r;

	if (c->newest)
		for (i = first; i <= last; i++)
			need += !fresh_test(c, i);
	if (!need && !behind_maybe_queued(c->behind, off, len))
		return WRITE_DIRECT;
	if (len > BEHIND_MAX_WRITE)
		return WRITE_SYNC;
	assert(last - first < WRITE_CHUNKS_MAX);
	for (i = first; need && i <= last; i++)
		if (!fresh_test(c, i) && !chunkset_has(&c->promised, i)) {
			mine[(i - first) / 64] |= 1ull << ((i - first) % 64);
			k++;
		}
	if (k && store_slot_reserve(c->s, k))
		return WRITE_SYNC;
	r = cow_prepare_change(c, off, len, PREPARE_BITS);
	if (r) {
		store_slot_unreserve(c->s, k);
		return r;
	}
	/* Before the write is queued, so that its batch takes them. */
	for (i = first; k && i <= last; i++) {
		if (!mask_test(mine, i - first))
			continue;
		r = chunkset_add(&c->promised, i);
		if (r) /* promised by another writer meanwhile, or no memory */
			mine[(i - first) / 64] &= ~(1ull << ((i - first) % 64));
		if (r == 1)
			twice++;
		if (r < 0) {
			/* no promise for every chunk: not queued; the
			 * synchronous path preserves first */
			uint64_t rest = 1, j;

			for (j = i + 1; j <= last; j++)
				rest += mask_test(mine, j - first);
			store_slot_unreserve(c->s, twice + rest);
			cow_drop_promises(c, first, i, mine);
			return WRITE_SYNC;
		}
	}
	if (twice)
		store_slot_unreserve(c->s, twice);
	r = behind_queue(c->behind, buf, len, off);
	if (r) /* not queued: no batch will take them */
		cow_drop_promises(c, first, last, mine);
	return r;
}

static bool overlap(const struct behind_entry *a, const struct behind_entry *b)
{
	return a->off < b->off + b->len && b->off < a->off + a->len;
}

static void log_dropped(struct behind_entry *const *v, size_t n, int r)
{
	log_error("cow: %zu queued writes from %llu (%zu bytes) dropped: %s; "
		  "the next fsync of each file open now, or of one opened "
		  "before an fsync reports it, is told, and its close",
		  n, (unsigned long long)v[0]->off, v[0]->len, strerror(-r));
}

/*
 * Prepares a write-behind batch, v[0..n) in the order they were queued,
 * on worker w: preserves every chunk they touch that is not fresh, a
 * commit per behind_batch_chunks chunks, with the slots promised to the
 * chunks when the writes were queued; gives back the promises of chunks
 * that need none any more, and, when it fails, of every chunk it
 * touches.  Runs alongside the other worker's batch (the stripe
 * locks keep one chunk from being preserved twice) and only while no
 * snapshot is being taken (cow_quiesce waits for the queue), so newest
 * is that of the writes' instant.
 */
static int cow_batch_prepare(void *arg, unsigned w,
			     struct behind_entry *const *v, size_t n)
{
	struct cow *c = arg;
	struct cbt_pending none = { 0 };
	uint64_t *chunks = NULL, ch;
	size_t nc = 0, total = 0, i, j, piece = cow_batch_chunks(c);
	int r = 0;

	/* Kept for good: fresh pages for every batch cost more than the
	 * copies themselves. */
	if (!c->room[w])
		c->room[w] = aligned_alloc(4096, piece * c->cs);
	for (i = 0; i < n; i++)
		total += (v[i]->off + v[i]->len - 1) / c->cs -
			 v[i]->off / c->cs + 1;
	chunks = malloc(total * sizeof(*chunks));
	if (!chunks || !c->room[w]) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n && c->newest; i++)
		for (ch = v[i]->off / c->cs;
		     ch <= (v[i]->off + v[i]->len - 1) / c->cs; ch++)
			if (!fresh_test(c, ch) ||
			    chunkset_has(&c->promised, ch))
				chunks[nc++] = ch;
	qsort(chunks, nc, sizeof(*chunks), array_cmp_u64);
	for (i = j = 0; i < nc; i++)
		if (!j || chunks[i] != chunks[j - 1])
			chunks[j++] = chunks[i];
	nc = j;
	for (i = 0; i < nc && !r; i += piece)
		r = cow_preserve(c, chunks + i, nc - i < piece ? nc - i : piece,
				 &none, c->room[w]);
out:
	/* A failure keeps the chunks' promises (cow_preserve): a write
	 * queued later to them, in another batch, relies on them. */
	free(chunks);
	if (r)
		log_dropped(v, n, r);
	return r == -ENOSPC || r == -ENOMEM ? r : r ? -EIO : 0;
}

/*
 * Writes a prepared batch to the backing, once every earlier batch is
 * written: one io_uring batch as long as no entry overlaps an earlier
 * one of it.
 */
static int cow_batch_write(void *arg, struct behind_entry *const *v, size_t n)
{
	struct cow *c = arg;
	struct io_op *ops = malloc(n * sizeof(*ops));
	size_t i, j, g;
	int r = 0;

	if (!ops) {
		log_dropped(v, n, -ENOMEM);
		return -ENOMEM;
	}
	for (i = g = 0; i < n && !r; i++) {
		for (j = g; j < i && !overlap(v[j], v[i]); j++)
			;
		if (j < i) { /* the earlier one must land first */
			r = uring_run(c->io, ops + g, (unsigned)(i - g));
			g = i;
		}
		ops[i] = (struct io_op){ .fd = c->b->fd,
					 .write = true,
					 .buf = (void *)v[i]->data,
					 .len = v[i]->len,
					 .off = v[i]->off,
					 .fault = "backing.write" };
	}
	if (!r)
		r = uring_run(c->io, ops + g, (unsigned)(n - g));
	free(ops);
	if (r)
		log_dropped(v, n, r);
	return r ? -EIO : 0;
}

const struct behind_ops cow_behind_ops = {
	.prepare = cow_batch_prepare,
	.write = cow_batch_write,
};
