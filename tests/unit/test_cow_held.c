// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The copy-on-write chain with its write-behind workers held: linked
 * with -Wl,--wrap=store_slot_alloc_run, so that a worker that is about
 * to take slots for a batch waits until the test lets it go (one at a
 * time if it likes, or failing), and queued writes stay queued while the
 * test looks; with -Wl,--wrap=behind_queue, so that a writer that has
 * promised its chunks a slot waits before it takes its place in the
 * queue; and with -Wl,--wrap=fstatvfs64, so that a test can say how much
 * room the file system under the store has.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "snapfs/behind.h"
#include "snapfs/fault.h"

#include "fixture.h"

#define CS 65536u
#define IMG (1u << 20)

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool hold;
	pthread_t tester; /* never held: its own preservations go on */
	unsigned arrived; /* held workers that reached the gate, ever */
	unsigned pass; /* held workers let through while hold stays */
	int fail_next; /* the next one let through fails with it */
	bool hold_queue; /* writers wait before they are queued */
	unsigned queue_arrived; /* writers that waited there, ever */
	bool fake_fs;
	uint64_t fs_free; /* with fake_fs: the free bytes reported */
} gate = { .lock = PTHREAD_MUTEX_INITIALIZER,
	   .cond = PTHREAD_COND_INITIALIZER };

int __real_store_slot_alloc_run(struct store *s, int64_t *offs, size_t n,
				uint64_t *reserved);
int __wrap_store_slot_alloc_run(struct store *s, int64_t *offs, size_t n,
				uint64_t *reserved);
int __real_behind_queue(struct behind *q, const void *buf, size_t len,
			uint64_t off);
int __wrap_behind_queue(struct behind *q, const void *buf, size_t len,
			uint64_t off);
int __real_fstatvfs64(int fd, struct statvfs *sv);
int __wrap_fstatvfs64(int fd, struct statvfs *sv);

static bool is_tester(void)
{
	return pthread_equal(pthread_self(), gate.tester);
}

int __wrap_store_slot_alloc_run(struct store *s, int64_t *offs, size_t n,
				uint64_t *reserved)
{
	int fail = 0;

	pthread_mutex_lock(&gate.lock);
	if (gate.hold && !is_tester()) {
		gate.arrived++;
		pthread_cond_broadcast(&gate.cond);
		while (gate.hold && !gate.pass)
			pthread_cond_wait(&gate.cond, &gate.lock);
		if (gate.hold)
			gate.pass--;
		fail = gate.fail_next;
		gate.fail_next = 0;
	}
	pthread_mutex_unlock(&gate.lock);
	if (fail) { /* as the store fails: nothing taken */
		for (size_t i = 0; i < n; i++)
			offs[i] = -1;
		return fail;
	}
	return __real_store_slot_alloc_run(s, offs, n, reserved);
}

int __wrap_behind_queue(struct behind *q, const void *buf, size_t len,
			uint64_t off)
{
	pthread_mutex_lock(&gate.lock);
	if (gate.hold_queue && !is_tester()) {
		gate.queue_arrived++;
		pthread_cond_broadcast(&gate.cond);
		while (gate.hold_queue)
			pthread_cond_wait(&gate.cond, &gate.lock);
	}
	pthread_mutex_unlock(&gate.lock);
	return __real_behind_queue(q, buf, len, off);
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

/* Holds (on) or lets go of one of the gate's two holds. */
static void gate_hold(bool *hold, bool on)
{
	pthread_mutex_lock(&gate.lock);
	if (on)
		gate.tester = pthread_self();
	*hold = on;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
}

/* Waits until *count (a count of the gate's arrivals) reaches n. */
static void gate_wait(const unsigned *count, unsigned n)
{
	pthread_mutex_lock(&gate.lock);
	while (*count < n)
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
}

static void hold_workers(void)
{
	gate_hold(&gate.hold, true);
}

static void release_workers(void)
{
	gate_hold(&gate.hold, false);
}

/* Waits until n held workers have reached the gate, ever. */
static void wait_arrived(unsigned n)
{
	gate_wait(&gate.arrived, n);
}

/* Lets one held worker through, failing its slots with err (0: not). */
static void pass_one(int err)
{
	pthread_mutex_lock(&gate.lock);
	gate.fail_next = err;
	gate.pass++;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
}

static void hold_queue(void)
{
	gate_hold(&gate.hold_queue, true);
}

static void release_queue(void)
{
	gate_hold(&gate.hold_queue, false);
}

/* Waits until n writers have waited before their place in the queue. */
static void wait_queue_arrived(unsigned n)
{
	gate_wait(&gate.queue_arrived, n);
}

static struct chain ch;

static void fini(void)
{
	release_queue();
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

/* A 4 KiB write on a thread of its own. */
struct writer {
	uint64_t off;
	unsigned char buf[4096];
	ssize_t n;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	w->n = cow_write_live(ch.c, w->buf, sizeof(w->buf), w->off);
	return NULL;
}

/* Checks, once the queue is written, that live reads model and the
 * snapshot s1 reads v0. */
static void check_image(const unsigned char *model, int64_t s1,
			const unsigned char *v0)
{
	unsigned char *got = chain_read_all(&ch, 0);

	cr_assert_eq(memcmp(got, model, IMG), 0, "a write did not land");
	free(got);
	got = chain_read_all(&ch, s1);
	cr_assert_eq(memcmp(got, v0, IMG), 0, "the snapshot changed");
	free(got);
}

/*
 * A synchronous preservation that fails keeps the promises it found, and
 * their slots: they belong to queued writes that were answered.  With
 * room for one chunk: W queues a write to chunk 0 and promises it the
 * slot, and waits before it is queued; meanwhile S, a write to chunks 0
 * and 1 that cannot reserve for chunk 1, sees nothing queued, preserves
 * synchronously, takes chunk 0's promise and finds no room for chunk 1;
 * then another writer comes for the room.  W's write must land.
 */
Test(cow_held, a_failed_synchronous_preservation_keeps_a_queued_writes_promise)
{
	unsigned char *v0, *model, big[8192], buf[4096];
	struct writer w = { .off = 4096 };
	struct snapshot s;
	pthread_t t;
	ssize_t n;
	int r;

	start();
	v0 = chain_read_all(&ch, 0);
	model = chain_read_all(&ch, 0);
	cr_assert_eq(snapshots_create(ch.ss, &s), 0);
	store_set_limit(ch.s, CS);
	hold_workers();
	hold_queue();
	fill_pattern(w.buf, sizeof(w.buf), 7);
	cr_assert_eq(pthread_create(&t, NULL, writer_main, &w), 0);
	wait_queue_arrived(1); /* chunk 0 promised, W not queued yet */
	fill_pattern(big, sizeof(big), 8);
	n = cow_write_live(ch.c, big, sizeof(big), CS - 4096);
	cr_assert_eq(n, -ENOSPC, "S gave %zd", n);
	fill_pattern(buf, sizeof(buf), 9);
	n = cow_write_live(ch.c, buf, sizeof(buf), 5 * CS);
	if (n == (ssize_t)sizeof(buf))
		memcpy(model + 5 * CS, buf, sizeof(buf));
	else
		cr_assert_eq(n, -ENOSPC, "the other writer gave %zd", n);
	release_queue();
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(w.n, (ssize_t)sizeof(w.buf), "W gave %zd", w.n);
	memcpy(model + w.off, w.buf, sizeof(w.buf));
	release_workers();
	r = cow_flush(ch.c);
	cr_assert_eq(r, 0, "W's answered write was dropped: %d (%s)", r,
		     strerror(-r));
	check_image(model, s.seq, v0);
	free(model);
	free(v0);
}

/*
 * A queued batch that fails keeps the promises of its chunks: a write
 * queued later to the same chunk, in another batch, relies on them.
 * With room for one chunk: E1 and then E2 write chunk 0 (E2 promises
 * nothing: the chunk is promised); E1's batch takes no slot (the store
 * fails, EIO) while E2's batch waits for the chunk; then another writer
 * comes for the room.  E1 is dropped, E2 must land.
 */
Test(cow_held, a_failed_batch_keeps_the_promises_later_batches_rely_on)
{
	unsigned char *v0, *model, buf[4096];
	struct snapshot s;
	bool took;
	int r;

	start();
	v0 = chain_read_all(&ch, 0);
	model = chain_read_all(&ch, 0);
	cr_assert_eq(snapshots_create(ch.ss, &s), 0);
	store_set_limit(ch.s, CS);
	hold_workers();
	fill_pattern(buf, sizeof(buf), 11);
	cr_assert_eq(cow_write_live(ch.c, buf, sizeof(buf), 0),
		     (ssize_t)sizeof(buf));
	wait_arrived(1); /* E1's batch, chunk 0's stripe held */
	fill_pattern(buf, sizeof(buf), 12);
	cr_assert_eq(cow_write_live(ch.c, buf, sizeof(buf), 8192),
		     (ssize_t)sizeof(buf));
	memcpy(model + 8192, buf, sizeof(buf));
	pass_one(-EIO);
	wait_arrived(2); /* E1's batch failed; E2's is at the gate */
	took = store_slot_reserve(ch.s, 1) == 0;
	release_workers();
	r = cow_flush(ch.c);
	cr_assert_eq(r, -EIO, "the flush gave %d (%s), not E1's EIO", r,
		     strerror(-r));
	check_image(model, s.seq, v0);
	cr_assert_not(took, "another writer had the room promised to E2");
	free(model);
	free(v0);
}

/*
 * The same when E1's batch fails after it took its slot from the promise:
 * its commit fails (fault data.sync), the slot goes back to the store,
 * and the promise must get its slot back.
 */
Test(cow_held, a_failed_commit_keeps_the_promises_later_batches_rely_on)
{
#ifdef SNAPFS_FAULT_INJECTION
	unsigned char *v0, *model, buf[4096];
	struct snapshot s;
	bool took;
	int r;

	start();
	v0 = chain_read_all(&ch, 0);
	model = chain_read_all(&ch, 0);
	cr_assert_eq(snapshots_create(ch.ss, &s), 0);
	store_set_limit(ch.s, CS);
	cr_assert_eq(setenv("SNAPFS_FAULT", "data.sync:1:EIO", 1), 0);
	cr_assert_eq(fault_init(), 0); /* the next commit with copies */
	hold_workers();
	fill_pattern(buf, sizeof(buf), 11);
	cr_assert_eq(cow_write_live(ch.c, buf, sizeof(buf), 0),
		     (ssize_t)sizeof(buf));
	wait_arrived(1);
	fill_pattern(buf, sizeof(buf), 12);
	cr_assert_eq(cow_write_live(ch.c, buf, sizeof(buf), 8192),
		     (ssize_t)sizeof(buf));
	memcpy(model + 8192, buf, sizeof(buf));
	pass_one(0);
	wait_arrived(2); /* E1's commit failed; E2's batch is at the gate */
	took = store_slot_reserve(ch.s, 1) == 0;
	release_workers();
	r = cow_flush(ch.c);
	cr_assert_eq(r, -EIO, "the flush gave %d (%s), not E1's EIO", r,
		     strerror(-r));
	check_image(model, s.seq, v0);
	cr_assert_not(took, "another writer had the room promised to E2");
	free(model);
	free(v0);
#else
	cr_skip_test("built without --enable-fault-injection");
#endif
}

/* A promise whose queued writes were all dropped is given back at the
 * next instant, when nothing is queued that could use it. */
Test(cow_held, a_promise_nobody_can_use_is_given_back_at_the_next_instant)
{
	unsigned char buf[4096];
	struct snapshot s;

	start();
	cr_assert_eq(snapshots_create(ch.ss, &s), 0);
	store_set_limit(ch.s, CS);
	hold_workers();
	fill_pattern(buf, sizeof(buf), 13);
	cr_assert_eq(cow_write_live(ch.c, buf, sizeof(buf), 0),
		     (ssize_t)sizeof(buf));
	wait_arrived(1);
	pass_one(-EIO);
	cr_assert_eq(cow_flush(ch.c), -EIO);
	release_workers();
	cr_assert_eq(snapshots_create(ch.ss, &s), -EIO, "told of the drop");
	cr_assert_eq(snapshots_create(ch.ss, &s), 0);
	cr_assert_eq(store_slot_reserve(ch.s, 1), 0,
		     "the room is still promised to a dropped write");
	store_slot_unreserve(ch.s, 1);
}
