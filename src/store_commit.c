// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * store_commit.c - the group commit and its write ordering.
 *
 * A commit goes through two stages, each a group: threads that reach a
 * stage at the same time queue there; the first becomes its leader,
 * takes everything queued, does the stage's work for all of them once,
 * and wakes them with the shared result.
 *   data   writes every row's chunk into its slot (one pwritev per run of
 *          consecutive slots: one writer for the data file, where sixteen
 *          threads writing their own slots spent 40% of the CPU spinning
 *          on its inode lock) and syncs the data file once
 *          (durability=full);
 *   index  commits the rows, as runs, and the changed-block words in one
 *          transaction.
 * A commit enters the index stage only after its data stage succeeded,
 * so the bytes are written and synced before their rows commit (store.c's
 * crash ordering); meanwhile the data stage serves the next commits, so
 * one batch's write and sync run beside another's transaction (first
 * touch at 4 KiB chunks: 8 of the 12 ms a 512-chunk batch held the one
 * lock both stages shared).
 *
 * Locking: each stage's queue under its own lock, which the leader lets
 * go of before the work; the data stage's leader alone writes through
 * data_wfd, the index stage's leader works under db_lock.
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

/* The data stage: writes the group's copies and syncs them. */
static int stage_data(struct store *s, struct commit_waiter *batch)
{
	int r = write_batch_data(s, batch);

	if (!r)
		r = fault_errno(FAULT("data.sync"));
	if (r || s->durability != DURABILITY_FULL)
		return r;
	iolog_sync(IOLOG_DATA);
	if (fdatasync(s->data_fd) < 0) {
		r = -errno;
		log_error("store: sync data file: %s", strerror(-r));
		return r == -ENOSPC ? r : -EIO;
	}
	return 0;
}

/*
 * The index stage: inserts and commits the group's rows and words.  A row
 * for a (chunk, seq) that has a copy already (a chain that lost its fresh
 * bits, say after a failed reload, preserves again) is not inserted: the
 * first copy holds the bytes of the instant, the new one later bytes.
 * Its slot goes back to the map once the rest commits, with a warning.
 */
static int stage_index(struct store *s, struct commit_waiter *batch)
{
	struct i64_array dup = { 0 };
	int r;

	pthread_mutex_lock(&s->db_lock);
	r = index_tx_begin(s->db);
	if (!r) {
		r = insert_batch(s, batch, &dup);
		r = index_tx_end(s->db, r, "index.commit");
	}
	pthread_mutex_unlock(&s->db_lock);
	/* before any chunk of the batch changes live (store_cache.c); a
	 * waiter's rows are in chunk order, so a window once each */
	for (struct commit_waiter *w = batch; w; w = w->next)
		for (size_t i = 0; i < w->n; i++)
			if (!i ||
			    w->rows[i].chunk_idx / CACHE_WINDOW !=
				    w->rows[i - 1].chunk_idx / CACHE_WINDOW)
				copy_cache_forget(&s->cache,
						  w->rows[i].chunk_idx,
						  w->rows[i].chunk_idx);
	if (!r)
		store_slots_release(s, dup.v, dup.n);
	free(dup.v);
	return r;
}

void commit_group_init(struct commit_group *g)
{
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->head = NULL;
	g->tail = &g->head;
	g->leader = false;
}

void commit_group_destroy(struct commit_group *g)
{
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
}

/* Passes me through stage g: returns once a leader (maybe this thread)
 * ran stage for a group holding me; the result is me->ret. */
static void
group_run(struct store *s, struct commit_group *g, struct commit_waiter *me,
	  int (*stage)(struct store *s, struct commit_waiter *batch))
{
	me->done = false;
	me->next = NULL;
	pthread_mutex_lock(&g->lock);
	*g->tail = me;
	g->tail = &me->next;
	while (!me->done) {
		struct commit_waiter *batch;
		int r;

		if (g->leader) {
			pthread_cond_wait(&g->cond, &g->lock);
			continue;
		}
		g->leader = true;
		batch = g->head;
		g->head = NULL;
		g->tail = &g->head;
		pthread_mutex_unlock(&g->lock);

		r = stage(s, batch);

		pthread_mutex_lock(&g->lock);
		while (batch) {
			struct commit_waiter *next = batch->next;

			batch->ret = r;
			batch->done = true;
			batch = next;
		}
		g->leader = false;
		pthread_cond_broadcast(&g->cond);
	}
	pthread_mutex_unlock(&g->lock);
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

	/* The data file holds new bytes only when rows come with them. */
	if (n) {
		group_run(s, &s->gc_data, &me, stage_data);
		if (me.ret)
			return me.ret;
	}
	group_run(s, &s->gc_index, &me, stage_index);
	return me.ret;
}
