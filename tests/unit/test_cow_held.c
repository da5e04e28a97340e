// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The copy-on-write chain with its write-behind workers held: linked
 * with -Wl,--wrap=store_slot_alloc_run, so that a worker that is about
 * to take slots for a batch waits until the test lets it go, and
 * queued writes stay queued while the test looks; and with
 * -Wl,--wrap=fstatvfs64, so that a test can say how much room the file
 * system under the store has.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fixture.h"

#define CS 65536u
#define IMG (1u << 20)

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool hold;
	pthread_t tester; /* never held: its own preservations go on */
	bool fake_fs;
	uint64_t fs_free; /* with fake_fs: the free bytes reported */
} gate = { .lock = PTHREAD_MUTEX_INITIALIZER,
	   .cond = PTHREAD_COND_INITIALIZER };

int __real_store_slot_alloc_run(struct store *s, int64_t *offs, size_t n,
				uint64_t *reserved);
int __wrap_store_slot_alloc_run(struct store *s, int64_t *offs, size_t n,
				uint64_t *reserved);
int __real_fstatvfs64(int fd, struct statvfs *sv);
int __wrap_fstatvfs64(int fd, struct statvfs *sv);

int __wrap_store_slot_alloc_run(struct store *s, int64_t *offs, size_t n,
				uint64_t *reserved)
{
	pthread_mutex_lock(&gate.lock);
	while (gate.hold && !pthread_equal(pthread_self(), gate.tester))
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
	return __real_store_slot_alloc_run(s, offs, n, reserved);
}

int __wrap_fstatvfs64(int fd, struct statvfs *sv)
{
	int r = __real_fstatvfs64(fd, sv);

	if (!r && gate.fake_fs) {
		sv->f_frsize = 4096;
		sv->f_bavail = gate.fs_free / 4096;
	}
	return r;
}

static void hold_workers(void)
{
	pthread_mutex_lock(&gate.lock);
	gate.tester = pthread_self();
	gate.hold = true;
	pthread_mutex_unlock(&gate.lock);
}

static void release_workers(void)
{
	pthread_mutex_lock(&gate.lock);
	gate.hold = false;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
}

static struct chain ch;

static void fini(void)
{
	release_workers();
	gate.fake_fs = false;
	chain_fini(&ch);
}

/* While the workers are held, a write that must wait for them (the
 * synchronous path after a queued write) would wait for ever: bounded. */
TestSuite(cow_held, .fini = fini, .timeout = 60);

/*
 * With room for 8 chunks, while the workers are held: four small writes
 * to chunk 0, then one to each of chunks 1..7.  Eight chunks to preserve:
 * every write must be taken, and once the queue is written, every
 * snapshot byte kept and every write landed.
 */
static void eight_chunks_fit_in_room_for_eight(void)
{
	unsigned char *v0, *model, *got, buf[4096];
	struct snapshot s;
	int64_t s1;
	int i;

	v0 = chain_read_all(&ch, 0);
	model = chain_read_all(&ch, 0);
	cr_assert_eq(snapshots_create(ch.ss, &s), 0);
	s1 = s.seq;
	hold_workers();
	for (i = 0; i < 4; i++) {
		fill_pattern(buf, sizeof(buf), 100 + (uint64_t)i);
		cr_assert_eq(cow_write_live(ch.c, buf, sizeof(buf),
					    (uint64_t)i * sizeof(buf)),
			     (ssize_t)sizeof(buf), "write %d to chunk 0", i);
		memcpy(model + i * sizeof(buf), buf, sizeof(buf));
	}
	for (i = 1; i < 8; i++) {
		ssize_t n;

		fill_pattern(buf, sizeof(buf), 200 + (uint64_t)i);
		n = cow_write_live(ch.c, buf, sizeof(buf), (uint64_t)i * CS);
		cr_assert_eq(n, (ssize_t)sizeof(buf),
			     "the write to chunk %d of 8 gave %zd (%s)", i, n,
			     n < 0 ? strerror((int)-n) : "short");
		memcpy(model + i * CS, buf, sizeof(buf));
	}
	release_workers();
	cr_assert_eq(cow_flush(ch.c), 0);
	cr_assert_eq(store_bytes_used(ch.s), 8 * CS);
	got = chain_read_all(&ch, 0);
	cr_assert_eq(memcmp(got, model, IMG), 0, "a write did not land");
	free(got);
	got = chain_read_all(&ch, s1);
	cr_assert_eq(memcmp(got, v0, IMG), 0, "the snapshot changed");
	free(got);
	free(model);
	free(v0);
}

static void start(void)
{
	unsigned char *buf = malloc(IMG);

	chain_init(&ch, IMG, CS, DURABILITY_PROCESS);
	fill_pattern(buf, IMG, 1);
	cr_assert_eq(cow_write_live(ch.c, buf, IMG, 0), (ssize_t)IMG);
	free(buf);
}

/* A queued write promises the store a slot for each chunk it must
 * preserve, once per chunk: later queued writes to a chunk already
 * promised promise nothing more. */
Test(cow_held, queued_writes_to_one_chunk_reserve_one_slot_under_diff_max)
{
	start();
	store_set_limit(ch.s, 8 * CS);
	eight_chunks_fit_in_room_for_eight();
}

/* The same without diff_max, where the room is the free space of the
 * store's file system less its 16 MiB margin. */
Test(cow_held, queued_writes_to_one_chunk_reserve_one_slot_of_free_space)
{
	start();
	gate.fs_free = (16u << 20) + 8 * CS;
	gate.fake_fs = true;
	eight_chunks_fit_in_room_for_eight();
}

/* Every promise is used or given back once the queue is written: writes
 * to chunks that are all zeros (preserved without a slot) and rewrites
 * of chunks some queued write already preserved leave nothing reserved. */
Test(cow_held, no_promise_outlives_the_queue)
{
	unsigned char *buf = calloc(1, IMG);
	struct snapshot s;

	chain_init(&ch, IMG, CS, DURABILITY_PROCESS);
	fill_pattern(buf, 4 * CS, 1); /* chunks 4..15 stay zero */
	cr_assert_eq(cow_write_live(ch.c, buf, IMG, 0), (ssize_t)IMG);
	store_set_limit(ch.s, 8 * CS);
	cr_assert_eq(snapshots_create(ch.ss, &s), 0);
	hold_workers();
	for (int round = 0; round < 3; round++) {
		if (round == 2)
			release_workers();
		for (int i = 0; i < 8; i++) {
			fill_pattern(buf, 4096, 10 * (uint64_t)round + 1);
			cr_assert_eq(cow_write_live(ch.c, buf, 4096,
						    (uint64_t)i * CS + 4096),
				     4096, "round %d, chunk %d", round, i);
		}
	}
	cr_assert_eq(cow_flush(ch.c), 0);
	cr_assert_eq(store_bytes_used(ch.s), 4 * CS, "zero chunks took room");
	cr_assert_eq(store_slot_reserve(ch.s, 4), 0,
		     "room for 4 more chunks is still promised to someone");
	cr_assert_eq(store_slot_reserve(ch.s, 1), -ENOSPC);
	store_slot_unreserve(ch.s, 4);
	free(buf);
}
