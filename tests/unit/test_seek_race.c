// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A snapshot's SEEK_DATA / SEEK_HOLE against a discard of the same chunk
 * in live: between the snapshot seek's look for a copy (none yet) and its
 * lseek on the backing, the discard may preserve the chunk and punch it,
 * and the snapshot's data would then be answered as a hole.
 *
 * Linked with -Wl,--wrap=lseek64,--wrap=pthread_rwlock_wrlock: the
 * snapshot seek's first lseek on the backing runs the discard on another
 * thread and waits until it is either done (nothing kept it out: the
 * window was open) or blocked on a lock (it waits for the seek), so the
 * window is held open without hoping for a timing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

#define CS 65536u

off_t __real_lseek64(int fd, off_t off, int whence);
off_t __wrap_lseek64(int fd, off_t off, int whence);
int __real_pthread_rwlock_wrlock(pthread_rwlock_t *l);
int __wrap_pthread_rwlock_wrlock(pthread_rwlock_t *l);

static struct chain ch;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool armed; /* the next lseek on the backing starts the racer */
	bool done, blocked; /* what became of the racer */
	uint64_t off; /* what it discards */
	pthread_t thread;
	bool started;
} race = { .lock = PTHREAD_MUTEX_INITIALIZER,
	   .cond = PTHREAD_COND_INITIALIZER };

static __thread bool is_racer;

int __wrap_pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
	int r;

	if (!is_racer)
		return __real_pthread_rwlock_wrlock(l);
	r = pthread_rwlock_trywrlock(l);
	if (r != EBUSY)
		return r;
	pthread_mutex_lock(&race.lock);
	race.blocked = true;
	pthread_cond_broadcast(&race.cond);
	pthread_mutex_unlock(&race.lock);
	return __real_pthread_rwlock_wrlock(l);
}

static void *racer(void *arg)
{
	(void)arg;
	is_racer = true;
	cr_assert_eq(cow_discard(ch.c, race.off, CS, false), 0);
	pthread_mutex_lock(&race.lock);
	race.done = true;
	pthread_cond_broadcast(&race.cond);
	pthread_mutex_unlock(&race.lock);
	return NULL;
}

off_t __wrap_lseek64(int fd, off_t off, int whence)
{
	if (race.armed && fd == ch.b.fd &&
	    (whence == SEEK_DATA || whence == SEEK_HOLE)) {
		race.armed = false;
		race.started = true;
		cr_assert_eq(pthread_create(&race.thread, NULL, racer, NULL),
			     0);
		pthread_mutex_lock(&race.lock);
		while (!race.done && !race.blocked)
			pthread_cond_wait(&race.cond, &race.lock);
		pthread_mutex_unlock(&race.lock);
	}
	return __real_lseek64(fd, off, whence);
}

static void fini(void)
{
	if (race.started)
		pthread_join(race.thread, NULL);
	chain_fini(&ch);
}

TestSuite(seek_race, .fini = fini);

/* Chunk 4 holds data when s1 is taken; a seek of s1 from chunk 4 runs
 * into a punch of chunk 4 in live. */
static int64_t seek_against_punch(int whence)
{
	unsigned char buf[CS];
	struct snapshot snap;
	int64_t r;

	chain_init(&ch, 16 * CS, CS, DURABILITY_PROCESS);
	fill_pattern(buf, CS, 1);
	cr_assert_eq(cow_write_live(ch.c, buf, CS, 4 * CS), CS);
	cr_assert_eq(snapshots_create(ch.ss, &snap), 0);
	race.off = 4 * CS;
	race.armed = true;
	r = cow_seek(ch.c, snap.seq, 4 * CS, whence);
	cr_assert(race.started, "the seek never asked the backing");
	pthread_join(race.thread, NULL);
	race.started = false;
	cr_assert(race.done);
	/* the punch happened: live has no data left */
	cr_assert_eq(cow_seek(ch.c, 0, 0, SEEK_DATA), -ENXIO);
	return r;
}

Test(seek_race, snapshot_data_stays_data_against_a_punch)
{
	int64_t r = seek_against_punch(SEEK_DATA);

	cr_assert_eq(r, 4 * CS, "SEEK_DATA in the snapshot's data gave %lld",
		     (long long)r);
}

Test(seek_race, snapshot_data_is_no_hole_against_a_punch)
{
	int64_t r = seek_against_punch(SEEK_HOLE);

	cr_assert_eq(r, 5 * CS, "SEEK_HOLE in the snapshot's data gave %lld",
		     (long long)r);
}
