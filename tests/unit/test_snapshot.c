// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * test_snapshot.c - the snapshot lifecycle against what races it.
 *
 * Linked with -Wl,--wrap= around the calls during which a snapshot
 * operation has let go of its locks (the store's purge, mark and keep,
 * the chain's and the change tracking's updates, the store's slot
 * allocation).  A test arms a wrapper: at that moment it runs the
 * competing operation from another thread, or makes the call fail after
 * it did its work, then lets the call go on.  Unarmed, a wrapper only
 * passes the call through.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

#define CS 16384u
#define SIZE (1u << 20)

static struct chain ch;

static void fini(void)
{
	chain_fini(&ch);
}

TestSuite(snapshot, .fini = fini);

/* ---- the wrapped calls -------------------------------------------- */

int __real_store_purge_snapshot(struct store *s, int64_t seq,
				const int64_t *live, size_t nlive);
int __real_store_mark_deleted(struct store *s, int64_t seq, bool keep);
int __real_cow_set_newest(struct cow *c, int64_t newest_seq);
int __real_cbt_next_generation(struct cbt *c);
int __real_store_slot_alloc_run(struct store *s, int64_t *offs, size_t n,
				uint64_t *reserved);
int __wrap_store_purge_snapshot(struct store *s, int64_t seq,
				const int64_t *live, size_t nlive);
int __wrap_store_mark_deleted(struct store *s, int64_t seq, bool keep);
int __real_store_keep_snapshot(struct store *s, int64_t seq);
int __wrap_store_keep_snapshot(struct store *s, int64_t seq);
int __wrap_cow_set_newest(struct cow *c, int64_t newest_seq);
int __wrap_cbt_next_generation(struct cbt *c);
int __wrap_store_slot_alloc_run(struct store *s, int64_t *offs, size_t n,
				uint64_t *reserved);
int __real_store_for_each_chunk(struct store *s,
				int (*fn)(void *arg, uint64_t chunk_idx,
					  int64_t max_seq),
				void *arg);
int __wrap_store_for_each_chunk(struct store *s,
				int (*fn)(void *arg, uint64_t chunk_idx,
					  int64_t max_seq),
				void *arg);

/* Armed hooks, each disarmed by its first use. */
static void (*on_purge)(int64_t seq); /* before the purge's transaction */
static int purge_fails; /* -errno instead of purging */
static void (*on_mark)(int64_t seq); /* before the deletion mark */
static int newest_fails; /* -errno after the chain took the change */
static int cbt_fails; /* -errno after the generation moved */
static int keep_fails; /* -errno instead of keeping a held snapshot */

int __wrap_store_purge_snapshot(struct store *s, int64_t seq,
				const int64_t *live, size_t nlive)
{
	void (*fn)(int64_t) = on_purge;
	int r = purge_fails;

	on_purge = NULL;
	purge_fails = 0;
	if (fn)
		fn(seq);
	if (r)
		return r;
	return __real_store_purge_snapshot(s, seq, live, nlive);
}

int __wrap_store_mark_deleted(struct store *s, int64_t seq, bool keep)
{
	void (*fn)(int64_t) = on_mark;

	on_mark = NULL;
	if (fn)
		fn(seq);
	return __real_store_mark_deleted(s, seq, keep);
}

int __wrap_store_keep_snapshot(struct store *s, int64_t seq)
{
	int r = keep_fails;

	keep_fails = 0;
	return r ? r : __real_store_keep_snapshot(s, seq);
}

int __wrap_cow_set_newest(struct cow *c, int64_t newest_seq)
{
	int r = __real_cow_set_newest(c, newest_seq);
	int f = newest_fails;

	newest_fails = 0;
	return r ? r : f;
}

/* The next reload_fails scans of the chain's copies fail with EIO (a
 * read error of the index). */
static int reload_fails;

int __wrap_store_for_each_chunk(struct store *s,
				int (*fn)(void *arg, uint64_t chunk_idx,
					  int64_t max_seq),
				void *arg)
{
	if (reload_fails > 0) {
		reload_fails--;
		return -EIO;
	}
	return __real_store_for_each_chunk(s, fn, arg);
}

int __wrap_cbt_next_generation(struct cbt *c)
{
	int r = __real_cbt_next_generation(c);
	int f = cbt_fails;

	cbt_fails = 0;
	return r ? r : f;
}

/* Shortages seen by the chain's preservations (the store said ENOSPC). */
static pthread_mutex_t enospc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t enospc_cond = PTHREAD_COND_INITIALIZER;
static unsigned enospc_seen;

int __wrap_store_slot_alloc_run(struct store *s, int64_t *offs, size_t n,
				uint64_t *reserved)
{
	int r = __real_store_slot_alloc_run(s, offs, n, reserved);

	if (r == -ENOSPC) {
		pthread_mutex_lock(&enospc_lock);
		enospc_seen++;
		pthread_cond_broadcast(&enospc_cond);
		pthread_mutex_unlock(&enospc_lock);
	}
	return r;
}

/* ---- helpers ------------------------------------------------------ */

static struct snapshot snap(void)
{
	struct snapshot s;

	cr_assert_eq(snapshots_create(ch.ss, &s), 0);
	return s;
}

static void write_pattern(uint64_t off, size_t len, uint64_t seed)
{
	unsigned char *buf = malloc(len);

	fill_pattern(buf, len, seed);
	cr_assert_eq(cow_write_live(ch.c, buf, len, off), (ssize_t)len);
	free(buf);
}

static struct timespec deadline(int sec)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += sec;
	return ts;
}

/* Runs fn(arg) on another thread and waits for it; it must not block on
 * the operation the caller is in the middle of. */
static void run_beside(void *(*fn)(void *), void *arg)
{
	struct timespec ts = deadline(10);
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, fn, arg), 0);
	cr_assert_eq(pthread_timedjoin_np(t, NULL, &ts), 0,
		     "the competing operation blocked");
}

/* Whether the store has a row for seq (deleted ones included). */
static bool store_has(int64_t seq)
{
	struct store_snapshot *rows;
	bool found = false;
	size_t n;

	cr_assert_eq(store_list_snapshots(ch.s, &rows, &n), 0);
	for (size_t i = 0; i < n; i++)
		found |= rows[i].seq == seq;
	free(rows);
	return found;
}

/* Whether the store's row for seq is marked deleted (it must exist). */
static bool store_marked(int64_t seq)
{
	struct store_snapshot *rows;
	int found = -1;
	size_t n;

	cr_assert_eq(store_list_snapshots(ch.s, &rows, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (rows[i].seq == seq)
			found = rows[i].deleted;
	free(rows);
	cr_assert_neq(found, -1, "no row for seq %lld", (long long)seq);
	return found;
}

/* The list in memory and the store's rows name the same snapshots. */
static void assert_list_is_the_store(void)
{
	struct store_snapshot *rows;
	struct snapshot *v;
	size_t n, nrows;

	cr_assert_eq(snapshots_list(ch.ss, &v, &n), 0);
	cr_assert_eq(store_list_snapshots(ch.s, &rows, &nrows), 0);
	cr_assert_eq(n, nrows, "%zu snapshots in memory, %zu in the store", n,
		     nrows);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(v[i].seq, rows[i].seq);
		cr_assert_str_eq(v[i].uuid, rows[i].uuid);
		cr_assert_not(rows[i].deleted);
	}
	free(rows);
	free(v);
}

/* ---- 1: an open while a snapshot is purged ------------------------ */

static int64_t race_seq;
static int race_open;

static void *open_it(void *arg)
{
	(void)arg;
	race_open = snapshots_open(ch.ss, race_seq);
	return NULL;
}

static void open_during_purge(int64_t seq)
{
	race_seq = seq;
	run_beside(open_it, NULL);
}

/* What a reader that got in reads after the purge, compared with what
 * the snapshot held. */
static void expect_no_later_bytes(int64_t seq, const unsigned char *then)
{
	unsigned char *got;

	if (race_open)
		return;
	got = chain_read_all(&ch, seq);
	cr_expect_eq(memcmp(got, then, SIZE), 0,
		     "the reader that got in reads bytes from after the "
		     "snapshot's instant");
	free(got);
	snapshots_release(ch.ss, seq);
}

Test(snapshot, an_open_during_the_purge_of_a_delete_is_refused)
{
	unsigned char *then;
	struct snapshot s;

	chain_init(&ch, SIZE, CS, DURABILITY_PROCESS);
	write_pattern(0, SIZE, 1);
	s = snap();
	then = chain_read_all(&ch, 0);
	write_pattern(0, SIZE, 2);

	race_open = 1;
	on_purge = open_during_purge;
	cr_assert_eq(snapshots_delete(ch.ss, s.uuid, false), 0);
	cr_assert_null(on_purge, "the delete purged at once");
	expect_no_later_bytes(s.seq, then);
	cr_assert_eq(race_open, -ENOENT,
		     "an open while the snapshot was purged gave %d",
		     race_open);
	cr_assert_eq(snapshots_get(ch.ss, s.seq, &s), -ENOENT);
	free(then);
}

Test(snapshot, an_open_during_the_purge_of_drop_oldest_is_refused)
{
	unsigned char *then;
	struct snapshot s1;

	chain_init(&ch, SIZE, CS, DURABILITY_PROCESS);
	write_pattern(0, SIZE, 1);
	s1 = snap();
	then = chain_read_all(&ch, 0);
	write_pattern(0, SIZE, 2);
	snap();
	write_pattern(0, SIZE, 3);

	race_open = 1;
	on_purge = open_during_purge;
	cr_assert_eq(snapshots_drop_oldest(ch.ss), 0);
	cr_assert_null(on_purge, "drop-oldest purged");
	cr_assert_eq(race_seq, s1.seq, "the oldest went");
	expect_no_later_bytes(s1.seq, then);
	cr_assert_eq(race_open, -ENOENT,
		     "an open while the snapshot was purged gave %d",
		     race_open);
	free(then);
}

Test(snapshot, a_failed_purge_leaves_the_snapshot_whole_and_openable)
{
	unsigned char *then, *got;
	struct snapshot s, again;

	chain_init(&ch, SIZE, CS, DURABILITY_PROCESS);
	write_pattern(0, SIZE, 1);
	s = snap();
	then = chain_read_all(&ch, 0);
	write_pattern(0, SIZE, 2);

	purge_fails = -EIO;
	cr_assert_eq(snapshots_delete(ch.ss, s.uuid, false), -EIO);
	cr_assert_eq(snapshots_find(ch.ss, s.uuid, &again), 0, "still there");
	cr_assert_eq(snapshots_open(ch.ss, s.seq), 0, "and opens");
	got = chain_read_all(&ch, s.seq);
	cr_assert_eq(memcmp(got, then, SIZE), 0);
	snapshots_release(ch.ss, s.seq);
	assert_list_is_the_store();
	cr_assert_eq(snapshots_delete(ch.ss, s.uuid, false), 0,
		     "deletes later");
	cr_assert_not(store_has(s.seq));
	free(got);
	free(then);
}

/* ---- 4: a delete racing the last close ---------------------------- */

static void *release_it(void *arg)
{
	(void)arg;
	snapshots_release(ch.ss, race_seq);
	return NULL;
}

static void close_during_mark(int64_t seq)
{
	race_seq = seq;
	run_beside(release_it, NULL);
}

Test(snapshot, a_delete_racing_the_last_close_still_purges)
{
	struct snapshot s, got;

	chain_init(&ch, SIZE, CS, DURABILITY_PROCESS);
	write_pattern(0, SIZE, 1);
	s = snap();
	write_pattern(0, SIZE, 2);
	cr_assert_eq(cow_flush(ch.c), 0);
	cr_assert_gt(store_bytes_used(ch.s), 0);
	cr_assert_eq(snapshots_open(ch.ss, s.seq), 0);

	/* the reader closes after the delete saw it open, before the
	 * deletion is marked in memory */
	on_mark = close_during_mark;
	cr_assert_eq(snapshots_delete(ch.ss, s.uuid, false), 0);
	cr_assert_null(on_mark, "the delete waited for its reader");
	cr_assert_eq(snapshots_get(ch.ss, s.seq, &got), -ENOENT,
		     "the snapshot is still kept (opens %u, deleted %d) with "
		     "no reader left to purge it",
		     got.opens, got.deleted);
	cr_assert_not(store_has(s.seq), "its row is still in the store");
	cr_assert_eq(store_bytes_used(ch.s), 0, "its copies are still kept");
	assert_list_is_the_store();
}

/* ---- 7: what the store committed exists in memory too -------------- */

Test(snapshot, a_create_whose_cbt_step_fails_after_the_commit_still_exists)
{
	unsigned char *then, *got;
	struct snapshot s, found;

	chain_init(&ch, SIZE, CS, DURABILITY_PROCESS);
	write_pattern(0, SIZE, 1);
	then = chain_read_all(&ch, 0);

	cbt_fails = -EIO; /* after the row was committed */
	memset(&s, 0, sizeof(s));
	int r = snapshots_create(ch.ss, &s);

	cr_assert_eq(cbt_fails, 0, "the cbt step ran");
	assert_list_is_the_store();
	cr_assert_eq(r, 0, "the snapshot was committed, yet create said %d", r);
	cr_assert_eq(cbt_open_generation(ch.cbt), store_info(ch.s)->generation);

	write_pattern(0, SIZE, 2);
	cr_assert_eq(snapshots_find(ch.ss, s.uuid, &found), 0);
	got = chain_read_all(&ch, s.seq);
	cr_assert_eq(memcmp(got, then, SIZE), 0);
	free(got);
	chain_stop(&ch, true);
	chain_start(&ch);
	assert_list_is_the_store();
	got = chain_read_all(&ch, s.seq);
	cr_assert_eq(memcmp(got, then, SIZE), 0, "after a restart");
	free(got);
	free(then);
}

Test(snapshot, a_purge_whose_chain_step_fails_after_the_commit_is_gone)
{
	unsigned char *then, *got;
	struct snapshot s1, s2, found;

	chain_init(&ch, SIZE, CS, DURABILITY_PROCESS);
	write_pattern(0, SIZE, 1);
	s1 = snap();
	then = chain_read_all(&ch, 0);
	write_pattern(0, SIZE, 2);
	s2 = snap();
	write_pattern(0, SIZE, 3);

	newest_fails = -EIO; /* after the purge was committed */
	int r = snapshots_delete(ch.ss, s2.uuid, false);

	cr_assert_eq(newest_fails, 0, "the chain step ran");
	cr_assert_not(store_has(s2.seq));
	cr_assert_eq(snapshots_find(ch.ss, s2.uuid, &found), -ENOENT,
		     "the snapshot is still listed, its rows purged");
	cr_assert_eq(snapshots_open(ch.ss, s2.seq), -ENOENT);
	assert_list_is_the_store();
	cr_assert_eq(r, 0, "the deletion was committed, yet delete said %d", r);
	got = chain_read_all(&ch, s1.seq);
	cr_assert_eq(memcmp(got, then, SIZE), 0);
	write_pattern(0, SIZE, 4);
	free(got);
	got = chain_read_all(&ch, s1.seq);
	cr_assert_eq(memcmp(got, then, SIZE), 0, "after more writes");
	free(got);
	free(then);
}

/* ---- 7b: a purge of the newest whose reload of the chain fails ----- */

/*
 * S1 and S2 share the copy made under S2 when live.img changed.  Deleting
 * S2 keeps that copy for S1; the chain then reloads which chunks have a
 * copy at or after S1 (fresh).  If that reload fails and writes go on,
 * a write to such a chunk preserves again, under S1, bytes from after S1:
 * S1 silently reads them.  No change may go on before a reload succeeds.
 */
static void purge_with_failed_reloads(int fails, unsigned char **then,
				      struct snapshot *s1)
{
	struct snapshot s2;

	chain_init(&ch, SIZE, CS, DURABILITY_PROCESS);
	write_pattern(0, SIZE, 1);
	*s1 = snap();
	s2 = snap();
	*then = chain_read_all(&ch, s1->seq);
	write_pattern(0, SIZE, 2); /* preserved once, under S2, for both */
	cr_assert_eq(cow_flush(ch.c), 0);
	reload_fails = fails;
	cr_assert_eq(snapshots_delete(ch.ss, s2.uuid, false), 0);
}

Test(snapshot, a_failed_reload_after_a_purge_never_changes_the_older_snapshot)
{
	unsigned char *then, *got;
	struct snapshot s1;

	purge_with_failed_reloads(1, &then, &s1);
	write_pattern(0, SIZE, 3); /* the reload is tried again, and works */
	cr_assert_eq(cow_flush(ch.c), 0);
	got = chain_read_all(&ch, s1.seq);
	cr_assert_eq(memcmp(got, then, SIZE), 0,
		     "S1 reads bytes written after it");
	free(got);
	free(then);
}

Test(snapshot, writes_fail_while_the_chain_cannot_reload_its_copies)
{
	unsigned char *then, *got, *buf = malloc(SIZE);
	struct snapshot s1;

	purge_with_failed_reloads(2, &then, &s1);
	fill_pattern(buf, SIZE, 3);
	cr_assert_eq(cow_write_live(ch.c, buf, CS, 0), -EIO,
		     "a write went on with the chain's copies unknown");
	cr_assert_eq(reload_fails, 0);
	cr_assert_eq(cow_write_live(ch.c, buf, SIZE, 0), (ssize_t)SIZE);
	cr_assert_eq(cow_flush(ch.c), 0);
	got = chain_read_all(&ch, s1.seq);
	cr_assert_eq(memcmp(got, then, SIZE), 0,
		     "S1 reads bytes written after it");
	free(got);
	free(then);
	free(buf);
}

/* ---- 3: one shortage, one snapshot dropped ------------------------ */

static unsigned room_calls;
static bool room_timed_out;

/* on_full=drop-oldest, once both writers have found the store full. */
static int make_room(void *arg)
{
	struct timespec ts = deadline(10);
	int r = 0;

	(void)arg;
	pthread_mutex_lock(&enospc_lock);
	room_calls++;
	while (enospc_seen < 2 && !r)
		r = pthread_cond_timedwait(&enospc_cond, &enospc_lock, &ts);
	room_timed_out |= r != 0;
	pthread_mutex_unlock(&enospc_lock);
	return snapshots_drop_oldest(ch.ss);
}

static void *write_chunk(void *arg)
{
	uint64_t idx = (uint64_t)(uintptr_t)arg;
	unsigned char buf[CS];

	fill_pattern(buf, CS, 100 + idx);
	return (void *)(intptr_t)cow_write_live(ch.c, buf, CS, idx * CS);
}

Test(snapshot, writers_short_of_room_at_once_drop_one_snapshot)
{
	struct snapshot s1, s2, s3, *v;
	pthread_t t[2];
	size_t n;

	chain_init(&ch, SIZE, CS, DURABILITY_PROCESS);
	write_pattern(0, SIZE, 1);
	s1 = snap();
	write_pattern(0, 4 * CS, 2); /* 4 copies for s1 */
	s2 = snap();
	write_pattern(4 * CS, 2 * CS, 3); /* 2 copies for s2 */
	s3 = snap();
	cr_assert_eq(cow_flush(ch.c), 0);
	cr_assert_eq(store_bytes_used(ch.s), 6 * CS);
	store_set_limit(ch.s, 6 * CS); /* full */
	cow_set_make_room(ch.c, make_room, NULL);

	/* Both find the store full; dropping s1 frees room for both. */
	for (uintptr_t i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, write_chunk,
					    (void *)(10 + i)),
			     0);
	for (int i = 0; i < 2; i++) {
		void *res;

		pthread_join(t[i], &res);
		cr_assert_eq((intptr_t)res, (intptr_t)CS, "write %d gave %ld",
			     i, (long)(intptr_t)res);
	}
	cr_assert_not(room_timed_out, "a writer never found the store full");
	cr_assert_geq(enospc_seen, 2);

	cr_assert_eq(snapshots_list(ch.ss, &v, &n), 0);
	cr_assert_eq(n, 2, "%zu snapshots left of 3 (make_room ran %u times)",
		     n, room_calls);
	cr_assert_eq(v[0].seq, s2.seq);
	cr_assert_eq(v[1].seq, s3.seq);
	free(v);
	cr_assert_not(store_has(s1.seq));
	assert_list_is_the_store();
}

/* ---- 8: a snapshot held for a group -------------------------------- */

static bool held_write_done;

static void *write_while_held(void *arg)
{
	(void)arg;
	write_pattern(0, CS, 9);
	__atomic_store_n(&held_write_done, true, __ATOMIC_RELEASE);
	return NULL;
}

Test(snapshot, a_held_snapshot_holds_writes_and_shows_only_once_kept)
{
	unsigned char *then, *got;
	struct snapshot s, found, *v;
	pthread_t t;
	size_t n;

	chain_init(&ch, SIZE, CS, DURABILITY_PROCESS);
	write_pattern(0, SIZE, 1);
	then = chain_read_all(&ch, 0);

	snapshots_hold(ch.ss);
	held_write_done = false;
	cr_assert_eq(pthread_create(&t, NULL, write_while_held, NULL), 0);
	usleep(100000);
	cr_assert_not(__atomic_load_n(&held_write_done, __ATOMIC_ACQUIRE),
		      "a write went through a hold");
	cr_assert_eq(snapshots_take_held(ch.ss, true, &s), 0);
	cr_assert_eq(snapshots_list(ch.ss, &v, &n), 0);
	free(v);
	cr_assert_eq(n, 0, "a snapshot not yet kept is listed");
	cr_assert_eq(snapshots_find(ch.ss, s.uuid, &found), -ENOENT);
	cr_assert_eq(snapshots_open(ch.ss, s.seq), -ENOENT);
	cr_assert(store_marked(s.seq), "not marked: a stop would keep it");
	cr_assert_eq(snapshots_unhold(ch.ss, true), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);

	cr_assert_not(store_marked(s.seq), "kept, yet still marked");
	assert_list_is_the_store();
	cr_assert_eq(snapshots_find(ch.ss, s.uuid, &found), 0);
	got = chain_read_all(&ch, s.seq);
	cr_assert_eq(memcmp(got, then, SIZE), 0,
		     "the write held back is in the snapshot");
	free(got);
	chain_stop(&ch, true);
	chain_start(&ch);
	assert_list_is_the_store();
	got = chain_read_all(&ch, s.seq);
	cr_assert_eq(memcmp(got, then, SIZE), 0, "after a restart");
	free(got);
	free(then);
}

Test(snapshot, a_held_snapshot_not_kept_leaves_nothing_and_older_ones_whole)
{
	unsigned char *then, *got;
	struct snapshot s1, s2, *v;
	uint64_t used;
	size_t n;

	chain_init(&ch, SIZE, CS, DURABILITY_PROCESS);
	write_pattern(0, SIZE, 1);
	s1 = snap();
	then = chain_read_all(&ch, 0);
	write_pattern(0, SIZE / 2, 2);
	cr_assert_eq(cow_flush(ch.c), 0);
	used = store_bytes_used(ch.s);

	snapshots_hold(ch.ss);
	cr_assert_eq(snapshots_take_held(ch.ss, true, &s2), 0);
	cr_assert_eq(snapshots_unhold(ch.ss, false), 0);
	cr_assert_not(store_has(s2.seq));
	cr_assert_eq(snapshots_list(ch.ss, &v, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(v[0].seq, s1.seq);
	free(v);
	assert_list_is_the_store();
	cr_assert_eq(store_bytes_used(ch.s), used);

	/* the chain preserves for s1 again, and not twice what it has */
	write_pattern(0, SIZE, 3);
	cr_assert_eq(cow_flush(ch.c), 0);
	got = chain_read_all(&ch, s1.seq);
	cr_assert_eq(memcmp(got, then, SIZE), 0);
	free(got);
	chain_stop(&ch, true);
	chain_start(&ch);
	got = chain_read_all(&ch, s1.seq);
	cr_assert_eq(memcmp(got, then, SIZE), 0, "after a restart");
	free(got);
	free(then);
}

Test(snapshot, a_held_snapshot_that_cannot_be_kept_or_purged_goes_at_mount)
{
	unsigned char *then, *got;
	struct snapshot s1, s2, found;

	chain_init(&ch, SIZE, CS, DURABILITY_PROCESS);
	write_pattern(0, SIZE, 1);
	s1 = snap();
	then = chain_read_all(&ch, 0);

	/* the store is what a stop between take and keep leaves */
	snapshots_hold(ch.ss);
	cr_assert_eq(snapshots_take_held(ch.ss, true, &s2), 0);
	keep_fails = -EIO;
	purge_fails = -EIO;
	cr_assert_eq(snapshots_unhold(ch.ss, true), -EIO);
	cr_assert_eq(keep_fails, 0, "the keep was tried");
	cr_assert_eq(purge_fails, 0, "the purge was tried");
	cr_assert_eq(snapshots_find(ch.ss, s2.uuid, &found), -ENOENT);
	cr_assert(store_marked(s2.seq));

	write_pattern(0, SIZE, 2);
	chain_stop(&ch, true);
	chain_start(&ch);
	cr_assert_not(store_has(s2.seq), "back after a restart");
	assert_list_is_the_store();
	got = chain_read_all(&ch, s1.seq);
	cr_assert_eq(memcmp(got, then, SIZE), 0);
	free(got);
	free(then);
}
