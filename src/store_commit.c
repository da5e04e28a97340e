// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * store_commit.c - the group commit and its write ordering.
 *
 * Threads that commit at the same time queue their rows; the first
 * becomes the leader, takes everything queued, writes every row's chunk
 * into its slot (one pwritev per run of consecutive slots: one writer for
 * the data file, where sixteen threads writing their own slots spent 40%
 * of the CPU spinning on its inode lock), syncs the data file once
 * (durability=full), commits the rows and changed-block words in one
 * transaction, and wakes the others with the shared result.  The bytes
 * are written and synced before their rows commit (store.c's crash
 * ordering).
 *
 * Locking: the queue is under gc_lock; the leader lets go of it, then
 * writes and commits under db_lock (which also guards data_wfd).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "snapfs/fault.h"
#include "snapfs/iolog.h"
#include "snapfs/log.h"
#include "array.h"
#include "fullio.h"
#include "store_int.h"

/* One committing thread's rows and words, queued for the leader. */
struct commit_waiter {
	const struct chunk_row *rows;
	size_t n;
	uint64_t gen;
	const struct cbt_word *words;
	size_t nwords;
	int ret;
	bool done;
	struct commit_waiter *next;
};

static int cmp_row_off(const void *a, const void *b)
{
	const struct chunk_row *x = *(const struct chunk_row *const *)a;
	const struct chunk_row *y = *(const struct chunk_row *const *)b;

	return x->data_off < y->data_off ? -1 : x->data_off > y->data_off;
}

/*
 * Writes the chunks of a group's rows into their slots, in slot order,
 * consecutive slots with one pwritev.  A fault point "data.write" per row
 * (a torn one moves half the chunk and fails).  0 or -errno.
 */
static int write_batch_data(struct store *s, struct commit_waiter *batch)
{
	const size_t cs = s->info.chunk_size;
	struct chunk_row const **v = NULL;
	struct iovec iov[256];
	size_t n = 0, cap = 0, i, j;
	int r = 0;

	for (struct commit_waiter *w = batch; w; w = w->next)
		for (i = 0; i < w->n; i++)
			cap += w->rows[i].data && w->rows[i].data_off >= 0;
	if (!cap)
		return 0;
	v = malloc(cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (struct commit_waiter *w = batch; w; w = w->next)
		for (i = 0; i < w->n; i++)
			if (w->rows[i].data && w->rows[i].data_off >= 0)
				v[n++] = &w->rows[i];
	qsort(v, n, sizeof(*v), cmp_row_off);
	for (i = 0; i < n && !r; i++) {
		r = FAULT("data.write");
		if (r == FAULT_SHORT) {
			pwrite(s->data_fd, v[i]->data, cs / 2, v[i]->data_off);
			r = -EIO;
		}
	}
	for (i = 0; i < n && !r; i = j) {
		int k = 0;

		for (j = i; j < n && k < (int)(sizeof(iov) / sizeof(iov[0]));
		     j++, k++) {
			if (j > i &&
			    v[j]->data_off != v[j - 1]->data_off + (int64_t)cs)
				break;
			iov[k] = (struct iovec){ .iov_base = (void *)v[j]->data,
						 .iov_len = cs };
		}
		r = pwritev_full(s->data_wfd, iov, k, v[i]->data_off);
		if (r == -EINVAL && s->data_wfd != s->data_fd) {
			/* a device that wants bigger alignment: buffered */
			log_info("store: direct writes refused, buffered from "
				 "now on");
			close(s->data_wfd);
			s->data_wfd = s->data_fd;
			r = pwritev_full(s->data_wfd, iov, k, v[i]->data_off);
		}
		if (r)
			log_error("store: write %d chunks at data offset "
				  "%lld: %s",
				  k, (long long)v[i]->data_off, strerror(-r));
		for (size_t m = i; m < j && !r; m++)
			iolog_write(IOLOG_DATA, (uint64_t)v[m]->data_off,
				    v[m]->data, cs);
	}
	free(v);
	return r == -ENOSPC ? r : r ? -EIO : 0;
}

static int cmp_row_run(const void *a, const void *b)
{
	const struct chunk_row *x = *(const struct chunk_row *const *)a;
	const struct chunk_row *y = *(const struct chunk_row *const *)b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return (x->chunk_idx > y->chunk_idx) - (x->chunk_idx < y->chunk_idx);
}

/*
 * Inserts a group's rows as runs (sorted by seq and chunk, so that the
 * copies of one batch, or of consecutive batches, in consecutive slots
 * become one run), and its words; db_lock held, in a transaction.
 */
static int insert_batch(struct store *s, struct commit_waiter *batch,
			struct i64_array *dup)
{
	const struct chunk_row **v = NULL;
	size_t n = 0;
	int r = 0;

	for (struct commit_waiter *w = batch; w; w = w->next)
		n += w->n;
	if (n) {
		v = malloc(n * sizeof(*v));
		if (!v)
			return -ENOMEM;
		n = 0;
		for (struct commit_waiter *w = batch; w; w = w->next)
			for (size_t i = 0; i < w->n; i++)
				v[n++] = &w->rows[i];
		qsort(v, n, sizeof(*v), cmp_row_run);
		r = store_insert_rows(s, v, n, dup);
		free(v);
	}
	for (struct commit_waiter *w = batch; w && !r; w = w->next)
		for (size_t i = 0; i < w->nwords && !r; i++)
			r = store_insert_word(s, w->gen, &w->words[i]);
	return r;
}

/*
 * Writes, syncs, inserts and commits a group of waiters' rows; db_lock
 * held.  A row for a (chunk, seq) that has a copy already (a chain that
 * lost its fresh bits, say after a failed reload, preserves again) is not
 * inserted: the first copy holds the bytes of the instant, the new one
 * later bytes.  Its slot goes back to the map once the rest commits, with
 * a warning.
 */
static int commit_batch(struct store *s, struct commit_waiter *batch)
{
	struct i64_array dup = { 0 };
	bool has_rows = false;
	int r;

	for (struct commit_waiter *w = batch; w; w = w->next)
		has_rows |= w->n > 0;
	r = write_batch_data(s, batch);
	if (r)
		return r;
	/* The data file holds new bytes only when rows come with them. */
	r = has_rows ? fault_errno(FAULT("data.sync")) : 0;
	if (r)
		return r;
	if (s->durability == DURABILITY_FULL && has_rows)
		iolog_sync(IOLOG_DATA);
	if (s->durability == DURABILITY_FULL && has_rows &&
	    fdatasync(s->data_fd) < 0) {
		r = -errno;
		log_error("store: sync data file: %s", strerror(-r));
		return r == -ENOSPC ? r : -EIO;
	}
	r = index_tx_begin(s->db);
	if (r)
		return r;
	r = insert_batch(s, batch, &dup);
	r = index_tx_end(s->db, r, "index.commit");
	if (!r)
		store_slots_release(s, dup.v, dup.n);
	free(dup.v);
	return r;
}

int store_commit_chunks(struct store *s, const struct chunk_row *rows, size_t n)
{
	return store_commit(s, rows, n, 0, NULL, 0);
}

int store_commit(struct store *s, const struct chunk_row *rows, size_t n,
		 uint64_t gen, const struct cbt_word *words, size_t nwords)
{
	struct commit_waiter me = { .rows = rows,
				    .n = n,
				    .gen = gen,
				    .words = words,
				    .nwords = nwords };

	pthread_mutex_lock(&s->gc_lock);
	*s->gc_tail = &me;
	s->gc_tail = &me.next;
	while (!me.done) {
		struct commit_waiter *batch;
		int r;

		if (s->gc_leader) {
			pthread_cond_wait(&s->gc_cond, &s->gc_lock);
			continue;
		}
		s->gc_leader = true;
		batch = s->gc_head;
		s->gc_head = NULL;
		s->gc_tail = &s->gc_head;
		pthread_mutex_unlock(&s->gc_lock);

		pthread_mutex_lock(&s->db_lock);
		r = commit_batch(s, batch);
		pthread_mutex_unlock(&s->db_lock);

		pthread_mutex_lock(&s->gc_lock);
		while (batch) {
			struct commit_waiter *next = batch->next;

			batch->ret = r;
			batch->done = true;
			batch = next;
		}
		s->gc_leader = false;
		pthread_cond_broadcast(&s->gc_cond);
	}
	pthread_mutex_unlock(&s->gc_lock);
	return me.ret;
}
