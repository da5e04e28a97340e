// SPDX-License-Identifier: GPL-2.0-or-later
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>

#include "snapfs/behind.h"

#define CS 65536u
#define WRITERS 4
#define PER_WRITER 3000

/* What the callback saw, in order. */
static struct seen {
	pthread_mutex_t lock;
	uint64_t off[WRITERS * PER_WRITER + 16];
	size_t len[WRITERS * PER_WRITER + 16];
	size_t n;
	bool bad_data;
	sem_t gate; /* when hold: each batch waits for one post */
	bool hold;
	uint64_t fail_off; /* a batch holding this offset fails */
} seen = { .lock = PTHREAD_MUTEX_INITIALIZER, .fail_off = UINT64_MAX };

/* Entries carry their offset in every 8 bytes, so the copy is checked. */
static void fill(unsigned char *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i + 8 <= len; i += 8)
		memcpy(buf + i, &off, 8);
}

static int prepare(void *arg, unsigned w, struct behind_entry *const *v,
		   size_t n)
{
	(void)arg;
	(void)v;
	(void)n;
	cr_assert_lt(w, BEHIND_WORKERS);
	return 0;
}

static int record(void *arg, struct behind_entry *const *v, size_t n)
{
	int r = 0;

	(void)arg;
	if (seen.hold)
		sem_wait(&seen.gate);
	pthread_mutex_lock(&seen.lock);
	for (size_t i = 0; i < n; i++) {
		uint64_t x;

		for (size_t j = 0; j + 8 <= v[i]->len; j += 8) {
			memcpy(&x, v[i]->data + j, 8);
			if (x != v[i]->off)
				seen.bad_data = true;
		}
		seen.off[seen.n] = v[i]->off;
		seen.len[seen.n++] = v[i]->len;
		if (v[i]->off == seen.fail_off)
			r = -EIO;
	}
	pthread_mutex_unlock(&seen.lock);
	return r;
}

static struct behind *q;
static const struct behind_ops ops = { .prepare = prepare, .write = record };

static void fini(void)
{
	behind_destroy(q);
	q = NULL;
	seen.n = 0;
	seen.bad_data = false;
	seen.hold = false;
	seen.fail_off = UINT64_MAX;
}

TestSuite(behind, .fini = fini);

struct writer {
	unsigned id;
	unsigned seed;
};

/* Writer w queues entries whose offsets grow, in its own region, with
 * sizes from 1 byte to 1 MiB (so the ring wraps and fills). */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	unsigned char *buf = malloc(BEHIND_MAX_WRITE);
	uint64_t base = (uint64_t)w->id << 40;

	for (unsigned i = 0; i < PER_WRITER; i++) {
		size_t len = rand_r(&w->seed) % 64 == 0
				     ? BEHIND_MAX_WRITE
				     : 1 + (size_t)rand_r(&w->seed) % 9000;
		uint64_t off = base + (uint64_t)i * 2 * BEHIND_MAX_WRITE;

		fill(buf, len, off);
		cr_assert_eq(behind_queue(q, buf, len, off), 0);
	}
	free(buf);
	return NULL;
}

Test(behind, every_write_reaches_the_worker_once_in_each_writers_order)
{
	pthread_t t[WRITERS];
	struct writer w[WRITERS];
	uint64_t next[WRITERS] = { 0 };

	cr_assert_eq(behind_create(&q, CS, 128, &ops, NULL), 0);
	for (unsigned i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){ .id = i, .seed = i + 1 };
		pthread_create(&t[i], NULL, writer_main, &w[i]);
	}
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);
	behind_wait(q);
	cr_assert(behind_idle(q));
	cr_assert_eq(seen.n, WRITERS * PER_WRITER);
	cr_assert_not(seen.bad_data, "an entry's bytes were not its own");
	for (size_t i = 0; i < seen.n; i++) {
		unsigned id = (unsigned)(seen.off[i] >> 40);
		uint64_t k = (seen.off[i] & ((1ull << 40) - 1)) /
			     (2 * BEHIND_MAX_WRITE);

		cr_assert_lt(id, WRITERS);
		cr_assert_eq(k, next[id], "writer %u: entry %llu came as %llu",
			     id, (unsigned long long)next[id],
			     (unsigned long long)k);
		next[id]++;
	}
}

Test(behind, a_queued_range_is_seen_until_written_and_wait_waits)
{
	unsigned char buf[100];

	sem_init(&seen.gate, 0, 0);
	seen.hold = true;
	cr_assert_eq(behind_create(&q, CS, 128, &ops, NULL), 0);
	cr_assert_not(behind_maybe_queued(q, 0, 1 << 30));
	fill(buf, sizeof(buf), 5 * CS + 10);
	cr_assert_eq(behind_queue(q, buf, sizeof(buf), 5 * CS + 10), 0);
	cr_assert(behind_maybe_queued(q, 5 * CS, 1));
	cr_assert(behind_maybe_queued(q, 4 * CS, CS + 1), "overlaps chunk 5");
	cr_assert_not(behind_maybe_queued(q, 4 * CS, CS), "chunk 4 only");
	cr_assert_not(behind_maybe_queued(q, 6 * CS, 10 * CS));
	cr_assert_not(behind_idle(q));
	sem_post(&seen.gate); /* let the worker write it */
	behind_wait(q);
	cr_assert_eq(seen.n, 1);
	cr_assert_not(behind_maybe_queued(q, 5 * CS, 1));
	cr_assert(behind_idle(q));
	seen.hold = false;
	sem_destroy(&seen.gate);
}

Test(behind, a_failed_batch_is_reported_once_to_each_reader)
{
	unsigned char buf[64];
	uint64_t flush_seen = 0, snap_seen = 0;

	cr_assert_eq(behind_create(&q, CS, 1, &ops, NULL), 0);
	seen.fail_off = 3 * CS;
	fill(buf, sizeof(buf), 3 * CS);
	cr_assert_eq(behind_queue(q, buf, sizeof(buf), 3 * CS), 0);
	fill(buf, sizeof(buf), 9 * CS);
	cr_assert_eq(behind_queue(q, buf, sizeof(buf), 9 * CS), 0);
	behind_wait(q);
	cr_assert_eq(seen.n, 2, "the batch after a failure still runs");
	cr_assert_eq(behind_error(q, &flush_seen), -EIO);
	cr_assert_eq(behind_error(q, &flush_seen), 0, "once per reader");
	cr_assert_eq(behind_error(q, &snap_seen), -EIO, "each reader sees it");
	cr_assert_eq(behind_queue(q, buf, BEHIND_MAX_WRITE + 1, 0), -E2BIG);
}
