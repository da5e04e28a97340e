// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A long discard of live.img does not hold off a snapshot.  Linked with
 * -Wl,--wrap=fallocate64,--wrap=pthread_rwlock_wrlock: at the discard's
 * first piece the wrapper starts a snapshot's quiesce on another thread
 * and waits until it is queued on the instant lock (a writer-preferring
 * lock then refuses a new reader: tryrdlock says EBUSY); at the next piece
 * it looks whether that quiesce got in between.  A discard that held the
 * instant lock for its whole length (a blkdiscard of a 64 GiB live.img
 * with a snapshot: 205 s, and `snapfsctl create` waited all of it) never
 * lets it in.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

#define CS 65536u
#define SIZE (256ull << 20)

static struct chain ch;
static atomic_int calls, quiesced, got_in_between;
static pthread_t quiescer;
static bool started;
static pthread_rwlock_t *_Atomic instant; /* the lock the quiesce waits on */
static _Thread_local bool in_quiesce;

int __real_fallocate64(int fd, int mode, off_t off, off_t len);
int __wrap_fallocate64(int fd, int mode, off_t off, off_t len);
int __real_pthread_rwlock_wrlock(pthread_rwlock_t *l);
int __wrap_pthread_rwlock_wrlock(pthread_rwlock_t *l);

int __wrap_pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
	if (in_quiesce && !atomic_load(&instant))
		atomic_store(&instant, l);
	return __real_pthread_rwlock_wrlock(l);
}

/* Returns once the quiesce is queued on the instant lock. */
static void wait_for_the_quiesce_to_queue(void)
{
	pthread_rwlock_t *l;

	while (!(l = atomic_load(&instant)))
		usleep(1000);
	while (pthread_rwlock_tryrdlock(l) == 0) {
		pthread_rwlock_unlock(l);
		usleep(1000);
	}
}

static void *quiesce(void *arg)
{
	(void)arg;
	in_quiesce = true;
	cow_quiesce(ch.c);
	atomic_store(&quiesced, 1);
	cow_resume(ch.c);
	return NULL;
}

int __wrap_fallocate64(int fd, int mode, off_t off, off_t len)
{
	int n;

	if (fd != ch.b.fd) /* the store's own punches */
		return __real_fallocate64(fd, mode, off, len);
	n = atomic_fetch_add(&calls, 1);
	if (n == 0) {
		started = true;
		cr_assert_eq(pthread_create(&quiescer, NULL, quiesce, NULL), 0);
		wait_for_the_quiesce_to_queue();
	} else if (n == 1) {
		/* queued before the first piece let go of the lock, the
		 * quiesce came and went before this piece could take it */
		atomic_store(&got_in_between, atomic_load(&quiesced));
	}
	return __real_fallocate64(fd, mode, off, len);
}

static void fini(void)
{
	if (started)
		pthread_join(quiescer, NULL);
	chain_fini(&ch);
}

TestSuite(discard, .fini = fini);

/* A regression that holds the lock across the pieces would deadlock with
 * the queued quiesce: the timeout makes that a failure, not a hang. */
Test(discard, a_snapshot_gets_in_between_the_pieces_of_a_long_discard,
     .timeout = 120)
{
	unsigned char *before, *after, *zero;
	struct snapshot s;

	chain_init(&ch, SIZE, CS, DURABILITY_PROCESS);
	before = malloc(SIZE);
	fill_pattern(before, SIZE, 7);
	for (uint64_t o = 0; o < SIZE; o += 1 << 20)
		cr_assert_eq(cow_write_live(ch.c, before + o, 1 << 20, o),
			     1 << 20);
	cr_assert_eq(snapshots_create(ch.ss, &s), 0);

	cr_assert_eq(cow_discard(ch.c, 0, SIZE, false), 0);
	if (started)
		pthread_join(quiescer, NULL);
	started = false;
	cr_assert(atomic_load(&calls) > 1,
		  "the discard was one fallocate of the whole range");
	cr_assert(atomic_load(&got_in_between),
		  "a snapshot waited for the whole discard");

	/* and the discard did its work: live reads zeros, the snapshot its
	 * bytes */
	zero = calloc(1, SIZE);
	after = chain_read_all(&ch, 0);
	cr_assert_eq(memcmp(after, zero, SIZE), 0);
	free(after);
	after = chain_read_all(&ch, s.seq);
	cr_assert_eq(memcmp(after, before, SIZE), 0);
	free(after);
	free(zero);
	free(before);
}
