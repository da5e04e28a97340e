// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * behind.c - ordered write-behind.
 *
 * A live write that must first preserve chunks for a snapshot would wait
 * for a read of the old bytes, their copy to the store, a data sync and
 * an index commit before it may touch the backing: at queue depth 1, two
 * disk flushes per write.  cow hands such a write here instead; it is
 * copied into a ring and answered.  Worker threads take the ring in
 * order, a batch at a time, and call back into cow, which preserves
 * every chunk a batch needs in one group commit (prepare) and then
 * writes the batch to the backing (write).  Many writes share one sync,
 * and the writer does not wait for it.  Batches are prepared side by
 * side (one reads old bytes while another commits) and written strictly
 * in turn.
 *
 * What keeps this invisible to clients:
 *   order     entries are written in the order they were queued, and a
 *             later write to a chunk some queued write touches is queued
 *             behind it: counters hashed by chunk say "maybe queued"
 *             without a lock (behind_maybe_queued);
 *   reads     a live read of such a chunk waits for the writes queued
 *             before it looked (a ticket: the newest id at that time);
 *   instants  fsync, discard, seek and a snapshot wait until everything
 *             queued before them is written (behind_wait);
 *   errors    a batch that fails is dropped; its error is kept and
 *             numbered, and each reader holds a cursor (each open file
 *             of live.img, snapshot create) and is told of a failure
 *             after it once, as the page cache does with write-back
 *             errors (errseq_t): a cursor taken while no fsync has
 *             reported the last failure (it is not "seen") is told of
 *             it too;
 *   memory    at most BEHIND_RING_BYTES queued; writers wait for room.
 * As with a disk's volatile write cache, what is queued is gone if the
 * daemon is killed before it is written: data that was fsync'd is not.
 *
 * Not here: what must happen before an entry may be written (cow.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "snapfs/behind.h"
#include "snapfs/log.h"

/* Counters of queued chunk references, hashed by chunk index. */
#define PEND_SLOTS 65536u
#define ALIGN 64u
/* Entries handed to the worker's callback at most at once. */
#define BATCH_ENTRIES 1024u

struct entry {
	struct behind_entry pub;
	struct entry *next;
	uint64_t id;
	size_t start; /* offset in the ring */
	size_t span; /* ring bytes it holds, with the gap skipped before it */
	bool ready; /* data copied in */
};

struct behind {
	uint32_t cs;
	size_t batch_chunks;
	struct behind_ops ops;
	void *arg;
	unsigned char *ring;
	pthread_t workers[BEHIND_WORKERS];
	unsigned started;

	pthread_mutex_t lock;
	pthread_cond_t work; /* workers: something is ready, or stop */
	pthread_cond_t done; /* waiters and writers: a batch is finished */
	pthread_cond_t turn; /* workers: the batch before theirs is written */
	struct entry *head, *tail;
	struct entry *take; /* the oldest entry no worker has taken */
	uint64_t batches_taken, batches_written;
	size_t wpos, used;
	uint64_t last_id; /* newest id handed out */
	uint64_t done_id; /* every id up to this one is finished */
	uint64_t queued; /* entries in the ring (atomic reads) */
	int err; /* of the last batch that failed */
	uint64_t err_seq; /* batches that failed */
	uint64_t err_seen; /* err_seq when an fsync last reported one */
	uint64_t err_told; /* err_seq when a reader was last told */
	bool stop;
	uint32_t pend[PEND_SLOTS];
};

static size_t first_chunk(const struct behind *q, uint64_t off)
{
	return (size_t)(off / q->cs);
}

static size_t last_chunk(const struct behind *q, uint64_t off, uint64_t len)
{
	return (size_t)((off + len - 1) / q->cs);
}

static size_t chunks_of(const struct behind *q, const struct behind_entry *e)
{
	return last_chunk(q, e->off, e->len) - first_chunk(q, e->off) + 1;
}

/* Adds d to the counters of e's chunks; lock held. */
static void pend_add(struct behind *q, const struct behind_entry *e, int d)
{
	size_t n = chunks_of(q, e), ch = first_chunk(q, e->off);

	if (n > PEND_SLOTS)
		n = PEND_SLOTS;
	for (size_t i = 0; i < n; i++, ch++)
		__atomic_fetch_add(&q->pend[ch % PEND_SLOTS], (uint32_t)d,
				   __ATOMIC_RELEASE);
}

bool behind_maybe_queued(struct behind *q, uint64_t off, uint64_t len)
{
	size_t first, n;

	if (!len || !__atomic_load_n(&q->queued, __ATOMIC_ACQUIRE))
		return false;
	first = first_chunk(q, off);
	n = last_chunk(q, off, len) - first + 1;
	if (n > PEND_SLOTS)
		return true;
	for (size_t i = 0; i < n; i++)
		if (__atomic_load_n(&q->pend[(first + i) % PEND_SLOTS],
				    __ATOMIC_ACQUIRE))
			return true;
	return false;
}

bool behind_idle(struct behind *q)
{
	return !__atomic_load_n(&q->queued, __ATOMIC_ACQUIRE);
}

/* The ring offset of the oldest entry (where free space ends). */
static size_t rpos(const struct behind *q)
{
	return q->head ? q->head->start : q->wpos;
}

/* Takes need bytes at the ring's write position, or at its start when
 * the end is too short; NULL when there is no room.  Lock held. */
static struct entry *ring_take(struct behind *q, size_t need)
{
	size_t at, gap = 0, r;
	struct entry *e;

	if (!q->used)
		q->wpos = 0;
	r = rpos(q);
	if (!q->used || q->wpos > r) {
		if (q->wpos + need <= BEHIND_RING_BYTES) {
			at = q->wpos;
		} else if (need <= r) {
			at = 0;
			gap = BEHIND_RING_BYTES - q->wpos;
		} else {
			return NULL;
		}
	} else if (q->wpos < r && q->wpos + need <= r) {
		at = q->wpos;
	} else {
		return NULL;
	}
	e = (struct entry *)(q->ring + at);
	e->start = at;
	e->span = need + gap;
	q->wpos = at + need;
	q->used += e->span;
	return e;
}

int behind_queue(struct behind *q, const void *buf, size_t len, uint64_t off)
{
	size_t need =
		(sizeof(struct entry) + len + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	struct entry *e;

	if (!len || len > BEHIND_MAX_WRITE)
		return -E2BIG;
	pthread_mutex_lock(&q->lock);
	while (!(e = ring_take(q, need)))
		pthread_cond_wait(&q->done, &q->lock);
	e->pub = (struct behind_entry){ .off = off,
					.len = len,
					.data = (unsigned char *)(e + 1) };
	e->next = NULL;
	e->ready = false;
	e->id = ++q->last_id;
	if (q->tail)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
	if (!q->take)
		q->take = e;
	pend_add(q, &e->pub, 1);
	__atomic_store_n(&q->queued, q->queued + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&q->lock);

	/* The copy runs unlocked; the worker takes only ready entries. */
	memcpy(e + 1, buf, len);

	pthread_mutex_lock(&q->lock);
	e->ready = true;
	if (e == q->take)
		pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

struct worker {
	struct behind *q;
	unsigned index;
	struct behind_entry *batch[BATCH_ENTRIES];
};

/* Takes the oldest ready entries nobody has taken, a batch; lock held. */
static size_t take_batch(struct behind *q, struct behind_entry **v)
{
	size_t n = 0, chunks = 0;
	struct entry *e;

	for (e = q->take; e && e->ready && n < BATCH_ENTRIES; e = e->next) {
		size_t c = chunks_of(q, &e->pub);

		if (n && chunks + c > q->batch_chunks)
			break;
		v[n++] = &e->pub;
		chunks += c;
	}
	q->take = e;
	return n;
}

/* Drops the n oldest entries, written or failed with r; lock held. */
static void finish_batch(struct behind *q, size_t n, int r)
{
	if (r) {
		q->err = r;
		q->err_seq++;
	}
	while (n--) {
		struct entry *e = q->head;

		pend_add(q, &e->pub, -1);
		q->head = e->next;
		if (!q->head)
			q->tail = NULL;
		q->used -= e->span;
		q->done_id = e->id;
		__atomic_store_n(&q->queued, q->queued - 1, __ATOMIC_RELEASE);
	}
	q->batches_written++;
	pthread_cond_broadcast(&q->done);
	pthread_cond_broadcast(&q->turn);
	if (q->stop)
		pthread_cond_broadcast(&q->work);
}

/* A worker: prepares a batch alongside the others, writes it in turn. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct behind *q = w->q;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		uint64_t mine;
		size_t n;
		int r;

		while (!(q->take && q->take->ready) && !(q->stop && !q->head))
			pthread_cond_wait(&q->work, &q->lock);
		if (!q->take || !q->take->ready)
			break; /* stopping, and all written */
		n = take_batch(q, w->batch);
		mine = ++q->batches_taken;
		if (q->take && q->take->ready) /* more for another worker */
			pthread_cond_signal(&q->work);
		pthread_mutex_unlock(&q->lock);

		r = q->ops.prepare(q->arg, w->index, w->batch, n);

		pthread_mutex_lock(&q->lock);
		while (q->batches_written != mine - 1)
			pthread_cond_wait(&q->turn, &q->lock);
		pthread_mutex_unlock(&q->lock);

		if (!r)
			r = q->ops.write(q->arg, w->batch, n);

		pthread_mutex_lock(&q->lock);
		finish_batch(q, n, r);
	}
	pthread_mutex_unlock(&q->lock);
	free(w);
	return NULL;
}

void behind_wait(struct behind *q)
{
	uint64_t ticket;

	pthread_mutex_lock(&q->lock);
	ticket = q->last_id;
	while (q->done_id < ticket)
		pthread_cond_wait(&q->done, &q->lock);
	pthread_mutex_unlock(&q->lock);
}

/*
 * A cursor is err_seq at the time it was taken or last told, shifted
 * left by one, with bit 0 set when the last failure then was not yet
 * seen: errseq_t's sample, which is told of such a failure too.
 */
#define CURSOR_UNSEEN 1ull

static uint64_t cursor_seq(uint64_t cursor)
{
	return cursor >> 1;
}

uint64_t behind_error_mark(struct behind *q)
{
	uint64_t cursor;

	pthread_mutex_lock(&q->lock);
	cursor = q->err_seq << 1 |
		 (q->err_seen != q->err_seq ? CURSOR_UNSEEN : 0);
	pthread_mutex_unlock(&q->lock);
	return cursor;
}

/* behind_error, and with seen the failure reported counts as seen (the
 * errseq_t of an fsync). */
static int error_advance(struct behind *q, uint64_t *cursor, bool seen)
{
	int r = 0;

	pthread_mutex_lock(&q->lock);
	if (cursor_seq(*cursor) != q->err_seq || *cursor & CURSOR_UNSEEN) {
		r = q->err;
		*cursor = q->err_seq << 1;
		q->err_told = q->err_seq;
		if (seen)
			q->err_seen = q->err_seq;
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

int behind_error(struct behind *q, uint64_t *cursor)
{
	return error_advance(q, cursor, false);
}

int behind_error_fsync(struct behind *q, uint64_t *cursor)
{
	return error_advance(q, cursor, true);
}

int behind_error_since(struct behind *q, uint64_t cursor)
{
	int r = 0;

	pthread_mutex_lock(&q->lock);
	if (cursor_seq(cursor) != q->err_seq) {
		r = q->err;
		q->err_told = q->err_seq;
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

int behind_error_untold(struct behind *q)
{
	int r = 0;

	pthread_mutex_lock(&q->lock);
	if (q->err_told != q->err_seq) {
		r = q->err;
		q->err_told = q->err_seq;
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

int behind_create(struct behind **out, uint32_t chunk_size, size_t batch_chunks,
		  const struct behind_ops *ops, void *arg)
{
	struct behind *q = calloc(1, sizeof(*q));
	int r;

	if (!q)
		return -ENOMEM;
	q->cs = chunk_size;
	q->batch_chunks = batch_chunks ? batch_chunks : 1;
	q->ops = *ops;
	q->arg = arg;
	/* Pages are touched as the ring fills: an idle queue costs no RSS. */
	q->ring = aligned_alloc(ALIGN, BEHIND_RING_BYTES);
	if (!q->ring) {
		free(q);
		return -ENOMEM;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->work, NULL);
	pthread_cond_init(&q->done, NULL);
	pthread_cond_init(&q->turn, NULL);
	for (unsigned i = 0; i < BEHIND_WORKERS; i++) {
		struct worker *w = calloc(1, sizeof(*w));

		r = -ENOMEM;
		if (w) {
			w->q = q;
			w->index = i;
			r = -pthread_create(&q->workers[i], NULL, worker_main,
					    w);
		}
		if (r) {
			free(w);
			log_error("behind: cannot start a worker: %s",
				  strerror(-r));
			behind_destroy(q);
			return r;
		}
		q->started++;
	}
	*out = q;
	return 0;
}

void behind_destroy(struct behind *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_broadcast(&q->work);
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->started; i++)
		pthread_join(q->workers[i], NULL);
	pthread_cond_destroy(&q->work);
	pthread_cond_destroy(&q->done);
	pthread_cond_destroy(&q->turn);
	pthread_mutex_destroy(&q->lock);
	free(q->ring);
	free(q);
}
