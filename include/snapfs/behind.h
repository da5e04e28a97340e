/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * behind.h - ordered write-behind: live writes answered before they
 * reach the backing, written by one worker in the order they came.
 */
#ifndef SNAPFS_BEHIND_H
#define SNAPFS_BEHIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct behind;

/* Bytes of queued data (with headers) at most; writers wait for room. */
#define BEHIND_RING_BYTES (8u << 20)

/* Largest write that may be queued (bigger ones are not worth it). */
#define BEHIND_MAX_WRITE (1u << 20)

/* One queued write, as the worker sees it. */
struct behind_entry {
	uint64_t off;
	size_t len;
	const unsigned char *data;
};

/* Worker threads: while one writes a batch, the next batch is prepared. */
#define BEHIND_WORKERS 2

/*
 * What the workers call, with the oldest entries not yet taken, v[0..n)
 * in the order they were queued.  prepare runs on worker w (0 ..
 * BEHIND_WORKERS-1) while other batches are prepared or written; write
 * runs once every earlier batch is written, and writes the entries in
 * their order where they overlap.  Each returns 0 or -errno; a batch
 * whose prepare failed is not written, and is dropped either way with
 * its error kept for behind_error.
 */
struct behind_ops {
	int (*prepare)(void *arg, unsigned w, struct behind_entry *const *v,
		       size_t n);
	int (*write)(void *arg, struct behind_entry *const *v, size_t n);
};

/*
 * Starts a queue for writes on an image cut in chunk_size units; a batch
 * touches at most batch_chunks chunks (or is one entry, whatever it
 * touches).  0 or -errno.
 */
int behind_create(struct behind **out, uint32_t chunk_size, size_t batch_chunks,
		  const struct behind_ops *ops, void *arg);

/* Writes out what is queued, stops the worker and frees the queue. */
void behind_destroy(struct behind *q);

/*
 * Queues a copy of buf for [off, off+len), len at most
 * BEHIND_MAX_WRITE; waits while the queue is full.  Once it returns, a
 * later behind_maybe_queued on the range says true until the worker has
 * written it.  0 or -E2BIG.
 */
int behind_queue(struct behind *q, const void *buf, size_t len, uint64_t off);

/* False when no queued write touches a chunk of [off, off+len) (true may
 * be a neighbour's; no lock taken). */
bool behind_maybe_queued(struct behind *q, uint64_t off, uint64_t len);

/* True when nothing is queued (no lock taken). */
bool behind_idle(struct behind *q);

/* Waits until every write queued before the call is written or dropped. */
void behind_wait(struct behind *q);

/*
 * Error cursors work as the page cache's errseq_t.  A reader (an open
 * file, snapshot create) holds a cursor, a zeroed one or one taken by
 * behind_error_mark, and is told once of a batch that failed after it.
 * Any thread; cursors are read and written under the queue's lock.
 */

/* A new open file's cursor (errseq_sample): it is told of batches that
 * fail from now on, and of the last one that failed before if no fsync
 * has reported that one yet (behind_error_fsync). */
uint64_t behind_error_mark(struct behind *q);

/* The error of the last batch that failed since *cursor (0 if none),
 * bringing *cursor up to date: each reader is told of a failure once. */
int behind_error(struct behind *q, uint64_t *cursor);

/* behind_error for an fsync (errseq_check_and_advance): the failure it
 * reports counts as seen, so that files opened from now on are not told
 * of it. */
int behind_error_fsync(struct behind *q, uint64_t *cursor);

/* The error of the last batch that failed after the cursor was taken or
 * last brought up to date (0 if none), leaving it where it is: a close,
 * which tells a file open when the batch failed (not one opened later)
 * and takes nothing from its fsync. */
int behind_error_since(struct behind *q, uint64_t cursor);

/* The error of the last batch that failed, if no reader was told of it
 * or of a later one (0 if none); then they count as told. */
int behind_error_untold(struct behind *q);

#endif
