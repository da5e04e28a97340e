// SPDX-License-Identifier: GPL-2.0-or-later
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fixture.h"
#include "snapfs/crc32c.h"
#include "snapfs/fault.h"
#include "snapfs/store.h"

static char dir[64];

static void setup(void)
{
	strcpy(dir, "/tmp/snapfs-store-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[256];

	/* a test that mounts a small file system does it here */
	snprintf(cmd, sizeof(cmd),
		 "! mountpoint -q '%s/small' || umount -l '%s/small'; rm -rf "
		 "'%s'",
		 dir, dir, dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = setup, .fini = teardown);

static struct store_config config(const char *sub, uint32_t cs, uint64_t size,
				  const char *id)
{
	static char path[128];

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	return (struct store_config){ .dir = path,
				      .chunk_size = cs,
				      .image_size = size,
				      .backing_id = id,
				      .durability = DURABILITY_PROCESS };
}

/* A checksum of every file of a directory, to prove nothing changed. */
static unsigned long dir_sum(const char *sub)
{
	char cmd[256];
	unsigned long sum = 0;
	FILE *p;
	int ch;

	snprintf(cmd, sizeof(cmd),
		 "cd '%s/%s' && ls -la --time-style=full-iso . && cat * | "
		 "cksum",
		 dir, sub);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	while ((ch = fgetc(p)) != EOF)
		sum = sum * 131 + (unsigned long)ch;
	pclose(p);
	return sum;
}

Test(store, a_new_store_is_private_and_records_its_parameters)
{
	struct store_config c = config("s", 16384, 1 << 20, "file:1:2");
	struct store *s;
	char err[256];
	struct stat st;
	char path[160];

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert(store_info(s)->created);
	cr_assert_eq(store_info(s)->chunk_size, 16384);
	cr_assert_eq(store_info(s)->cbt_block_size, 65536);
	cr_assert_eq(store_info(s)->generation, 1);
	store_close(s, true);
	cr_assert_eq(stat(c.dir, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/index.db", c.dir);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);

	c.chunk_size = 0; /* the store's own */
	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_not(store_info(s)->created);
	cr_assert_eq(store_info(s)->chunk_size, 16384);
	cr_assert(store_info(s)->prev_clean);
	store_close(s, false);
	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_not(store_info(s)->prev_clean, "unclean close recorded");
	store_close(s, true);
}

Test(store, a_mismatched_open_fails_with_one_line_and_changes_nothing)
{
	struct store_config c = config("s", 16384, 1 << 20, "file:1:2");
	struct store *s;
	char err[256];
	unsigned long before;
	static const struct {
		uint32_t cs;
		uint64_t size;
		const char *id;
		const char *says;
	} bad[] = {
		{ 65536, 1 << 20, "file:1:2", "chunk_size" },
		{ 0, 2 << 20, "file:1:2", "size changed" },
		{ 0, 1 << 20, "file:1:3", "another image" },
	};

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	store_close(s, true);
	before = dir_sum("s");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct store_config b = c;

		b.chunk_size = bad[i].cs;
		b.image_size = bad[i].size;
		b.backing_id = bad[i].id;
		err[0] = '\0';
		cr_assert_neq(store_open(&s, &b, err, sizeof(err)), 0);
		cr_assert_not_null(strstr(err, bad[i].says), "%s", err);
		cr_assert_null(strchr(err, '\n'));
		cr_assert_eq(dir_sum("s"), before, "store changed by %s",
			     bad[i].says);
	}
}

Test(store, a_damaged_index_is_refused_at_open)
{
	struct store_config c = config("s", 16384, 1 << 20, "file:1:2");
	struct store *s;
	char err[256], path[160];
	FILE *f;

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	store_close(s, true);
	snprintf(path, sizeof(path), "%s/index.db", c.dir);
	f = fopen(path, "r+");
	cr_assert_not_null(f);
	fseek(f, 0, SEEK_SET);
	fputs("this is not sqlite", f);
	fclose(f);
	unsigned long before = dir_sum("s");
	cr_assert_neq(store_open(&s, &c, err, sizeof(err)), 0);
	cr_assert_not_null(strstr(err, "damaged"), "%s", err);
	cr_assert_eq(dir_sum("s"), before);
}

Test(store, damage_inside_the_index_is_reported_on_one_line)
{
	struct store_config c = config("s", 4096, 1 << 20, "file:1:2");
	struct store_snapshot snap = { .size = 1 << 20 };
	struct store *s;
	char err[512], path[160];
	FILE *f;

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	for (int i = 0; i < 40; i++) {
		snprintf(snap.uuid, sizeof(snap.uuid), "uuid-%d", i);
		cr_assert_eq(store_add_snapshot(s, &snap), 0);
	}
	store_close(s, true);
	/* flip the first cell pointer of every page but the first: SQLite's
	 * check then reports "*** in database main ***" and more lines */
	snprintf(path, sizeof(path), "%s/index.db", c.dir);
	f = fopen(path, "r+");
	cr_assert_not_null(f);
	for (long pg = 1; pg < 12; pg++) {
		int ch;

		fseek(f, pg * 4096 + 8, SEEK_SET);
		ch = fgetc(f);
		if (ch == EOF)
			break;
		fseek(f, pg * 4096 + 8, SEEK_SET);
		fputc(ch ^ 0xff, f);
	}
	fclose(f);
	cr_assert_neq(store_open(&s, &c, err, sizeof(err)), 0);
	cr_assert_null(strchr(err, '\n'), "'%s' spans lines", err);
	cr_assert_not_null(strstr(err, "damaged"), "%s", err);
}

Test(store, a_row_pointing_outside_the_data_file_is_damage)
{
	static const char *const bad[] = { "-65536", "123", "1099511627776" };
	struct store_config c = config("s", 4096, 1 << 20, "file:1:2");
	struct chunk_row row = { 1, 1, -1, 0, NULL };
	char err[512], path[160], sql[128];
	struct store *s;
	sqlite3 *db;

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	cr_assert_eq(store_slot_alloc(s, &row.data_off), 0);
	cr_assert_eq(pwrite(store_data_fd(s), "x", 1, 4095), 1);
	cr_assert_eq(store_commit_chunks(s, &row, 1), 0);
	store_close(s, true);
	snprintf(path, sizeof(path), "%s/index.db", c.dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
		snprintf(sql, sizeof(sql), "UPDATE runs SET data_off=%s",
			 bad[i]);
		cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL),
			     SQLITE_OK);
		sqlite3_close(db);
		err[0] = '\0';
		cr_assert_neq(store_open(&s, &c, err, sizeof(err)), 0,
			      "data_off %s accepted", bad[i]);
		cr_assert_not_null(strstr(err, "damaged"), "%s", err);
		cr_assert_null(strchr(err, '\n'));
	}
}

Test(store, a_directory_with_foreign_files_is_not_taken_over)
{
	struct store_config c = config("s", 0, 1 << 20, "file:1:2");
	struct store *s;
	char err[256], path[160];
	FILE *f;

	cr_assert_eq(mkdir(c.dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/precious.txt", c.dir);
	f = fopen(path, "w");
	fputs("keep me", f);
	fclose(f);
	cr_assert_neq(store_open(&s, &c, err, sizeof(err)), 0);
	cr_assert_not_null(strstr(err, "not a snapfs store"), "%s", err);
	snprintf(path, sizeof(path), "%s/index.db", c.dir);
	cr_assert_neq(access(path, F_OK), 0, "nothing created");
}

/*
 * A second copy of a chunk for a seq that has one (a chain that lost its
 * fresh bits, say after a failed reload) keeps the first: the first holds
 * the bytes of the instant, the second later ones.  The commit succeeds
 * (no EIO for the writers sharing it), the second slot is freed.
 */
Test(store, a_second_copy_for_the_same_seq_keeps_the_first)
{
	struct store_config c = config("s", 4096, 1 << 20, "file:1:2");
	struct chunk_row first = { 5, 2, -1, 11, NULL };
	struct chunk_row again[2] = { { 5, 2, -1, 99, NULL },
				      { 6, 2, -1, 66, NULL } };
	struct chunk_row got;
	struct store *s;
	char err[256];

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	cr_assert_eq(store_slot_alloc(s, &first.data_off), 0);
	cr_assert_eq(store_commit_chunks(s, &first, 1), 0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(store_slot_alloc(s, &again[i].data_off), 0);
	cr_assert_eq(store_commit_chunks(s, again, 2), 0,
		     "a duplicate copy failed the whole commit");
	cr_assert_eq(store_find_copy(s, 5, 2, &got), 0);
	cr_assert_eq(got.crc, 11, "the second copy replaced the first");
	cr_assert_eq(got.data_off, first.data_off);
	cr_assert_eq(store_find_copy(s, 6, 2, &got), 0);
	cr_assert_eq(got.crc, 66);
	cr_assert_eq(store_bytes_used(s), 2 * 4096,
		     "the duplicate's slot was not freed");
	store_close(s, true);
}

/* A row naming a slot another row holds is damage, not a duplicate copy:
 * the commit fails, and the other row's slot stays in use. */
Test(store, a_row_in_a_slot_another_row_holds_fails_its_commit)
{
	struct store_config c = config("s", 4096, 1 << 20, "file:1:2");
	struct chunk_row first = { 1, 1, -1, 11, NULL };
	struct chunk_row clash = { 2, 1, -1, 22, NULL };
	struct chunk_row got;
	struct store *s;
	char err[256];

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	cr_assert_eq(store_slot_alloc(s, &first.data_off), 0);
	cr_assert_eq(store_commit_chunks(s, &first, 1), 0);
	clash.data_off = first.data_off;
	cr_assert_neq(store_commit_chunks(s, &clash, 1), 0,
		      "a row sharing another's slot was taken");
	cr_assert_eq(store_find_copy(s, 1, 1, &got), 0);
	cr_assert_eq(got.data_off, first.data_off);
	cr_assert_eq(store_bytes_used(s), 4096,
		     "the slot of a committed row was freed");
	store_close(s, true);
}

Test(store, find_returns_the_oldest_copy_at_or_after_the_snapshot)
{
	struct store_config c = config("s", 4096, 1 << 20, "file:1:2");
	struct chunk_row rows[3] = { { 5, 2, -1, 11, NULL },
				     { 5, 4, -1, 22, NULL },
				     { 5, 7, -1, 33, NULL } };
	struct chunk_row got;
	struct store *s;
	char err[256];

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(store_slot_alloc(s, &rows[i].data_off), 0);
	cr_assert_eq(store_commit_chunks(s, rows, 3), 0);
	cr_assert_eq(store_find_copy(s, 5, 1, &got), 0);
	cr_assert_eq(got.seq, 2);
	cr_assert_eq(store_find_copy(s, 5, 3, &got), 0);
	cr_assert_eq(got.seq, 4);
	cr_assert_eq(got.crc, 22);
	cr_assert_eq(store_find_copy(s, 5, 4, &got), 0);
	cr_assert_eq(got.seq, 4);
	cr_assert_eq(store_find_copy(s, 5, 8, &got), -ENOENT);
	cr_assert_eq(store_find_copy(s, 6, 1, &got), -ENOENT);
	cr_assert_eq(store_bytes_used(s), 3 * 4096);
	store_close(s, true);
}

Test(store, purge_frees_only_copies_no_live_snapshot_reads)
{
	struct store_config c = config("s", 4096, 1 << 20, "file:1:2");
	/* chunk 1: copies for 1 and 3; chunk 2: copy for 3 only */
	struct chunk_row rows[3] = { { 1, 1, -1, 0, NULL },
				     { 1, 3, -1, 0, NULL },
				     { 2, 3, -1, 0, NULL } };
	struct store_snapshot snap;
	struct chunk_row got;
	struct store *s;
	char err[256];
	int64_t live_after_2[] = { 1, 3 }, live_after_3[] = { 1 };

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	for (int i = 1; i <= 3; i++) {
		memset(&snap, 0, sizeof(snap));
		snprintf(snap.uuid, sizeof(snap.uuid), "u%d", i);
		cr_assert_eq(store_add_snapshot(s, &snap), 0);
		cr_assert_eq(snap.seq, i);
		cr_assert_eq(snap.generation, (uint64_t)i);
	}
	cr_assert_eq(store_info(s)->generation, 4);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(store_slot_alloc(s, &rows[i].data_off), 0);
	cr_assert_eq(store_commit_chunks(s, rows, 3), 0);

	/* Snapshot 2 read chunk 1's copy 3 and chunk 2's copy 3; snapshot 3
	 * still reads both. */
	cr_assert_eq(store_purge_snapshot(s, 2, live_after_2, 2), 0);
	cr_assert_eq(store_bytes_used(s), 3 * 4096);
	/* Now snapshot 3 goes: chunk 1's copy 3 has no reader (snapshot 1
	 * reads copy 1), but chunk 2's copy 3 is what snapshot 1 reads. */
	cr_assert_eq(store_purge_snapshot(s, 3, live_after_3, 1), 0);
	cr_assert_eq(store_bytes_used(s), 2 * 4096);
	cr_assert_eq(store_find_copy(s, 1, 1, &got), 0);
	cr_assert_eq(got.seq, 1);
	cr_assert_eq(store_find_copy(s, 1, 2, &got), -ENOENT);
	cr_assert_eq(store_find_copy(s, 2, 1, &got), 0);
	cr_assert_eq(got.seq, 3);

	struct store_snapshot *list;
	size_t n;
	cr_assert_eq(store_list_snapshots(s, &list, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(list[0].uuid, "u1");
	free(list);
	store_close(s, true);
}

/* Runs fn on each of n structs of `each` bytes at args, one thread
 * each, and waits for them all. */
static void run_threads(void *(*fn)(void *), void *args, size_t each, int n)
{
	pthread_t t[8];

	cr_assert_leq(n, 8);
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, fn, (char *)args + i * each);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

struct committer {
	struct store *s;
	int id;
	int ret;
};

static void *commit_many(void *arg)
{
	struct committer *c = arg;

	for (int i = 0; i < 50 && !c->ret; i++) {
		struct chunk_row row = { (uint64_t)(c->id * 1000 + i), 1, -1,
					 (uint32_t)i, NULL };

		char byte = (char)i;

		c->ret = store_slot_alloc(c->s, &row.data_off);
		if (!c->ret && pwrite(store_data_fd(c->s), &byte, 1,
				      row.data_off + 4095) != 1)
			c->ret = -1;
		if (!c->ret)
			c->ret = store_commit_chunks(c->s, &row, 1);
	}
	return NULL;
}

Test(store, concurrent_commits_all_land)
{
	struct store_config c = config("s", 4096, 64 << 20, "file:1:2");
	struct committer cs[8];
	struct store *s;
	struct chunk_row got;
	char err[256];

	c.durability = DURABILITY_FULL;
	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	for (int i = 0; i < 8; i++)
		cs[i] = (struct committer){ s, i, 0 };
	run_threads(commit_many, cs, sizeof(cs[0]), 8);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(cs[i].ret, 0);
	store_close(s, true);
	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	for (int i = 0; i < 8; i++)
		for (int k = 0; k < 50; k++) {
			cr_assert_eq(store_find_copy(s,
						     (uint64_t)(i * 1000 + k),
						     1, &got),
				     0);
			cr_assert_eq(got.crc, (uint32_t)k);
		}
	cr_assert_eq(store_bytes_used(s), 400 * 4096, "slots rebuilt");
	store_close(s, true);
}

struct runner {
	struct store *s;
	int64_t offs[30][8];
	int ret;
};

static void *alloc_runs(void *arg)
{
	struct runner *r = arg;

	for (int i = 0; i < 30 && !r->ret; i++) {
		uint64_t none = 0;

		r->ret = store_slot_alloc_run(r->s, r->offs[i], 8, &none);
	}
	return NULL;
}

Test(store, a_run_of_slots_is_consecutive_whoever_else_allocates)
{
	struct store_config c = config("s", 4096, 64 << 20, "file:1:2");
	struct runner rs[4];
	struct store *s;
	char err[256];
	static unsigned char seen[4 * 30 * 8 + 1];

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	for (int i = 0; i < 4; i++) {
		rs[i].s = s;
		rs[i].ret = 0;
	}
	run_threads(alloc_runs, rs, sizeof(rs[0]), 4);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(rs[i].ret, 0);
		for (int k = 0; k < 30; k++)
			for (int j = 0; j < 8; j++) {
				int64_t slot = rs[i].offs[k][j] / 4096;

				cr_assert(slot >= 0 && slot < 4 * 30 * 8);
				cr_assert_eq(
					rs[i].offs[k][j],
					rs[i].offs[k][0] + j * 4096,
					"run %d of thread %d not consecutive",
					k, i);
				cr_assert_not(seen[slot]++, "slot %lld twice",
					      (long long)slot);
			}
	}
	store_close(s, true);
}

Test(store, a_run_takes_reservations_first_and_stops_at_the_limit)
{
	struct store_config c = config("s", 4096, 64 << 20, "file:1:2");
	int64_t offs[8];
	uint64_t reserved = 5;
	struct store *s;
	char err[256];

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	store_set_limit(s, 10 * 4096);
	cr_assert_eq(store_slot_reserve(s, 5), 0);
	cr_assert_eq(store_slot_alloc_run(s, offs, 8, &reserved), 0);
	cr_assert_eq(reserved, 0, "every reservation used");
	/* 8 in use, none promised: two more fit, the third does not */
	cr_assert_eq(store_slot_alloc_run(s, offs, 3, &reserved), -ENOSPC);
	cr_assert(offs[0] >= 0 && offs[1] >= 0);
	cr_assert_eq(offs[2], -1);
	store_slot_free(s, offs[0]);
	store_slot_free(s, offs[1]);
	store_close(s, true);
}

/* Mounts a 32 MiB tmpfs at DIR/small (teardown unmounts it; a test not
 * run as root is skipped), opens c's store there; its free bytes. */
static uint64_t open_on_small_tmpfs(const struct store_config *c,
				    struct store **s)
{
	char mnt[96], cmd[256], err[256];
	struct statvfs sv;

	snprintf(mnt, sizeof(mnt), "%s/small", dir);
	cr_assert_eq(mkdir(mnt, 0700), 0);
	snprintf(cmd, sizeof(cmd),
		 "mount -t tmpfs -o size=32m snapfs-test '%s' 2>/dev/null",
		 mnt);
	if (system(cmd))
		cr_skip_test("mounting a small tmpfs needs root");
	cr_assert_eq(store_open(s, c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(statvfs(mnt, &sv), 0);
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/*
 * Without diff_max, slots promised to queued writes are not on disk yet:
 * when the count of free space runs low and the file system is asked
 * again, what it says must not be promised a second time.  On a 32 MiB
 * tmpfs (root mounts it; others skip), promises stop at its free space
 * less the 16 MiB margin, and not later.
 */
Test(store, promised_slots_are_not_promised_again_when_space_is_looked_at)
{
	enum { CS = 65536, TRIES = 4096 };
	struct store_config c = config("small/s", CS, 64 << 20, "file:1:2");
	struct store *s;
	uint64_t n, free_bytes;

	free_bytes = open_on_small_tmpfs(&c, &s);
	for (n = 0; n < TRIES && store_slot_reserve(s, 1) == 0; n++)
		;
	cr_assert_lt(n, TRIES, "promises never ran out (%llu)",
		     (unsigned long long)n);
	cr_assert_leq(n * CS + (16 << 20), free_bytes,
		      "%llu slots promised with %llu bytes free",
		      (unsigned long long)n, (unsigned long long)free_bytes);
	cr_assert_gt(n, 0, "room for one slot at least");
	store_slot_unreserve(s, n);
	store_close(s, true);
}

/*
 * The same for slots taken and not written yet: a preservation takes its
 * slots, then waits for the group commit to write them, and a look at
 * the free space meanwhile does not see them either (with two batches in
 * flight the store's file system filled past the margin, and a write
 * that should have dropped the oldest snapshot did not).  Taken one at a
 * time and never written, they stop at the free space less the margin.
 */
Test(store, taken_slots_are_not_taken_again_when_space_is_looked_at)
{
	enum { CS = 65536, TRIES = 4096 };
	struct store_config c = config("small/s", CS, 64 << 20, "file:1:2");
	struct store *s;
	uint64_t n, free_bytes;
	int64_t off;

	free_bytes = open_on_small_tmpfs(&c, &s);
	for (n = 0; n < TRIES && store_slot_alloc(s, &off) == 0; n++)
		;
	cr_assert_lt(n, TRIES, "slots never ran out (%llu)",
		     (unsigned long long)n);
	cr_assert_leq(n * CS + (16 << 20), free_bytes,
		      "%llu slots taken with %llu bytes free",
		      (unsigned long long)n, (unsigned long long)free_bytes);
	cr_assert_gt(n, 0, "room for one slot at least");
	store_close(s, false);
}

/* Rows of the index's table of copies, counted through SQLite. */
static int count_rows(const struct store_config *c, const char *where)
{
	char path[160], sql[160];
	sqlite3_stmt *st;
	sqlite3 *db;
	int n;

	snprintf(path, sizeof(path), "%s/index.db", c->dir);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM runs WHERE %s", where);
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK,
		     "%s", sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

Test(store, consecutive_copies_are_one_row_per_run)
{
	struct store_config c = config("s", 4096, 16 << 20, "file:1:2");
	static struct chunk_row rows[900];
	struct chunk_row got[8];
	struct store *s;
	char err[256];

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	/* 600 chunks copied in order into consecutive slots, then 300 zero
	 * chunks: ceil(600 / 128) + ceil(300 / 128) rows, not 900 */
	for (int i = 0; i < 900; i++) {
		rows[i] = (struct chunk_row){ .chunk_idx = (uint64_t)i,
					      .seq = 1,
					      .data_off = -1,
					      .crc = (uint32_t)i };
		if (i < 600)
			cr_assert_eq(store_slot_alloc(s, &rows[i].data_off), 0);
		else
			rows[i].chunk_idx += 1000;
	}
	cr_assert_eq(store_commit_chunks(s, rows, 900), 0);
	cr_assert_eq(count_rows(&c, "data_off IS NOT NULL"), 5);
	cr_assert_eq(count_rows(&c, "data_off IS NULL"), 3);
	/* each chunk still reads its own slot and checksum, across a run's
	 * edge too */
	cr_assert_eq(store_find_copies(s, 253, 260, 1, got), 0);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(got[i].seq, 1);
		cr_assert_eq(got[i].data_off, rows[253 + i].data_off);
		cr_assert_eq(got[i].crc, 253u + (unsigned)i);
	}
	/* and a lookup reaching back into the longest class */
	cr_assert_eq(store_find_copy(s, 383, 1, got), 0);
	cr_assert_eq(got[0].data_off, rows[383].data_off);
	cr_assert_eq(store_find_copies(s, 1897, 1904, 1, got), 0);
	cr_assert_eq(got[2].data_off, -1);
	cr_assert_eq(got[2].seq, 1);
	cr_assert_eq(got[3].seq, -1, "chunk 1900 has no copy");
	cr_assert_eq(store_bytes_used(s), 600 * 4096);
	store_close(s, true);
}

Test(store, a_purge_splits_a_run_where_some_copies_lose_their_readers)
{
	struct store_config c = config("s", 4096, 1 << 20, "file:1:2");
	static const char bytes[4096];
	struct chunk_row early[2], run[8], got[8];
	struct store_snapshot snap;
	int64_t live[] = { 1 };
	struct store *s;
	char err[256];

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	for (int i = 1; i <= 2; i++) {
		memset(&snap, 0, sizeof(snap));
		snprintf(snap.uuid, sizeof(snap.uuid), "u%d", i);
		cr_assert_eq(store_add_snapshot(s, &snap), 0);
	}
	/* chunks 2 and 3 copied while snapshot 1 was the newest, then all
	 * of 0..7 in one run while snapshot 2 was */
	for (int i = 0; i < 2; i++) {
		early[i] = (struct chunk_row){ 2 + (uint64_t)i, 1, -1,
					       100 + (uint32_t)i, bytes };
		cr_assert_eq(store_slot_alloc(s, &early[i].data_off), 0);
	}
	cr_assert_eq(store_commit_chunks(s, early, 2), 0);
	for (int i = 0; i < 8; i++) {
		run[i] = (struct chunk_row){ (uint64_t)i, 2, -1, (uint32_t)i,
					     bytes };
		cr_assert_eq(store_slot_alloc(s, &run[i].data_off), 0);
	}
	cr_assert_eq(store_commit_chunks(s, run, 8), 0);
	cr_assert_eq(count_rows(&c, "seq = 2"), 1);

	/* Snapshot 2 goes: snapshot 1 reads its own copies of 2 and 3 and
	 * run's copies of the rest, so run loses chunks 2 and 3 only. */
	cr_assert_eq(store_purge_snapshot(s, 2, live, 1), 0);
	cr_assert_eq(count_rows(&c, "seq = 2"), 2, "split in two");
	cr_assert_eq(store_bytes_used(s), 8 * 4096);
	cr_assert_eq(store_find_copies(s, 0, 7, 1, got), 0);
	for (int i = 0; i < 8; i++) {
		const struct chunk_row *want =
			i == 2 || i == 3 ? &early[i - 2] : &run[i];

		cr_assert_eq(got[i].seq, want->seq, "chunk %d", i);
		cr_assert_eq(got[i].data_off, want->data_off, "chunk %d", i);
		cr_assert_eq(got[i].crc, want->crc, "chunk %d", i);
	}
	store_close(s, true);
	/* the freed slots are free at the next open too */
	c.chunk_size = 0;
	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(store_bytes_used(s), 8 * 4096);
	store_close(s, true);
}

/* Runs SQL on a closed store's index. */
static void index_sql(const struct store_config *c, const char *sql)
{
	char path[160];
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/index.db", c->dir);
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s",
		     sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* Makes c's store as snapfs 0.1.0 left it (format 1, a row per copied
 * chunk): chunks 3..5 of seq 1 in slots 0..2, chunk 9 of seq 1 all
 * zeros, chunk 3 of seq 2 in slot 3; crc[] gets the four slots' crcs. */
static void make_format_1(const struct store_config *c, uint32_t crc[4])
{
	unsigned char buf[4096];
	char err[256], sql[512];
	struct store *s;

	cr_assert_eq(store_open(&s, c, err, sizeof(err)), 0);
	for (int i = 0; i < 4; i++) {
		memset(buf, 'a' + i, sizeof(buf));
		cr_assert_eq(
			pwrite(store_data_fd(s), buf, sizeof(buf), i * 4096),
			4096);
		crc[i] = crc32c(buf, sizeof(buf));
	}
	store_close(s, true);
	memset(buf, 0, sizeof(buf));
	snprintf(sql, sizeof(sql),
		 "DROP TABLE runs;"
		 "CREATE TABLE chunks(chunk_idx INTEGER NOT NULL, seq INTEGER "
		 "NOT NULL, data_off INTEGER, crc INTEGER NOT NULL, PRIMARY "
		 "KEY(chunk_idx, seq)) WITHOUT ROWID;"
		 "INSERT INTO chunks VALUES(3, 1, 0, %u), (4, 1, 4096, %u),"
		 " (5, 1, 8192, %u), (9, 1, NULL, %u), (3, 2, 12288, %u);"
		 "UPDATE meta SET value=1 WHERE key='format';",
		 crc[0], crc[1], crc[2], crc32c(buf, sizeof(buf)), crc[3]);
	index_sql(c, sql);
}

Test(store, a_store_of_format_1_is_migrated_at_open)
{
	struct store_config c = config("s", 4096, 1 << 20, "file:1:2");
	struct store_event *ev;
	struct chunk_row got[8];
	char err[256];
	uint32_t crc[4];
	struct store *s;
	FILE *report;
	size_t nev;
	char *text;
	size_t len;

	make_format_1(&c, crc);
	report = open_memstream(&text, &len);
	cr_assert_eq(store_check(c.dir, report, err, sizeof(err)), 0, "%s",
		     err);
	fclose(report);
	free(text);

	c.chunk_size = 0;
	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(store_bytes_used(s), 4 * 4096);
	cr_assert_eq(store_find_copies(s, 2, 9, 1, got), 0);
	cr_assert_eq(got[0].seq, -1);
	for (int i = 1; i <= 3; i++) {
		cr_assert_eq(got[i].seq, 1);
		cr_assert_eq(got[i].data_off, (i - 1) * 4096);
		cr_assert_eq(got[i].crc, crc[i - 1]);
	}
	cr_assert_eq(got[7].seq, 1);
	cr_assert_eq(got[7].data_off, -1);
	cr_assert_eq(store_find_copy(s, 3, 2, &got[0]), 0);
	cr_assert_eq(got[0].data_off, 12288);
	cr_assert_eq(got[0].crc, crc[3]);
	cr_assert_eq(store_list_events(s, 10, &ev, &nev), 0);
	cr_assert(nev > 0 && !strcmp(ev[nev - 1].kind, "migrated"));
	free(ev);
	store_close(s, true);
	cr_assert_eq(count_rows(&c, "1"), 3, "chunks 3..5 are one run");
	report = open_memstream(&text, &len);
	cr_assert_eq(store_check(c.dir, report, err, sizeof(err)), 0, "%s",
		     err);
	fclose(report);
	free(text);
}

/*
 * A migration that fails part way (fault index.migrate: its commit)
 * leaves format 1 whole, the open failing with one line; the next open
 * migrates it.
 */
Test(store, a_failed_migration_leaves_format_1_for_the_next_open)
{
#ifdef SNAPFS_FAULT_INJECTION
	struct store_config c = config("s", 4096, 1 << 20, "file:1:2");
	struct chunk_row got;
	uint32_t crc[4];
	struct store *s;
	char err[256];

	make_format_1(&c, crc);
	cr_assert_eq(setenv("SNAPFS_FAULT", "index.migrate:1:EIO", 1), 0);
	cr_assert_eq(fault_init(), 0);
	c.chunk_size = 0;
	cr_assert_neq(store_open(&s, &c, err, sizeof(err)), 0);
	cr_assert_not_null(strstr(err, "cannot migrate"), "%s", err);
	cr_assert_null(strchr(err, '\n'));
	cr_assert_eq(unsetenv("SNAPFS_FAULT"), 0);
	cr_assert_eq(fault_init(), 0);
	index_sql(&c, "SELECT chunk_idx FROM chunks"); /* still there */
	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(store_find_copy(s, 4, 1, &got), 0);
	cr_assert_eq(got.data_off, 4096);
	cr_assert_eq(got.crc, crc[1]);
	store_close(s, true);
#else
	cr_skip_test("built without --enable-fault-injection");
#endif
}

Test(store, a_store_of_a_newer_format_is_refused_and_left_alone)
{
	struct store_config c = config("s", 4096, 1 << 20, "file:1:2");
	unsigned long before;
	struct store *s;
	char err[256];

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	store_close(s, true);
	index_sql(&c, "UPDATE meta SET value=4 WHERE key='format'");
	before = dir_sum("s");
	cr_assert_neq(store_open(&s, &c, err, sizeof(err)), 0);
	cr_assert_not_null(strstr(err, "format 4 is newer"), "%s", err);
	cr_assert_null(strchr(err, '\n'));
	cr_assert_eq(dir_sum("s"), before);
}

/* A snapshot marked to stay as a bookmark keeps its row through the
 * purge, as a bookmark with its generation, while its copies go; a
 * bookmark is deleted by its own call, and a snapshot's row is not. */
Test(store, a_purge_keeps_a_marked_snapshot_as_a_bookmark)
{
	struct store_config c = config("s", 4096, 1 << 20, "file:1:2");
	struct chunk_row rows[2] = { { 1, 1, -1, 0, NULL },
				     { 2, 1, -1, 0, NULL } };
	struct store_snapshot snap, *list;
	struct chunk_row got;
	struct store *s;
	char err[256];
	size_t n;

	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0);
	for (int i = 1; i <= 2; i++) {
		memset(&snap, 0, sizeof(snap));
		snprintf(snap.uuid, sizeof(snap.uuid), "u%d", i);
		cr_assert_eq(store_add_snapshot(s, &snap), 0);
	}
	for (int i = 0; i < 2; i++)
		cr_assert_eq(store_slot_alloc(s, &rows[i].data_off), 0);
	cr_assert_eq(store_commit_chunks(s, rows, 2), 0);
	cr_assert_eq(store_mark_deleted(s, 1, true), 0);
	cr_assert_eq(store_purge_snapshot(s, 1, (int64_t[]){ 2 }, 1), 0);
	cr_assert_eq(store_bytes_used(s), 0, "the bookmark kept its copies");
	cr_assert_eq(store_find_copy(s, 1, 1, &got), -ENOENT);
	cr_assert_eq(store_delete_bookmark(s, 2), -ENOENT,
		     "a snapshot deleted as a bookmark");
	store_close(s, true);

	/* and so it is at the next open */
	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(store_list_snapshots(s, &list, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(list[0].uuid, "u1");
	cr_assert(list[0].bookmark && !list[0].deleted);
	cr_assert_eq(list[0].generation, 1);
	cr_assert(!list[1].bookmark && !list[1].deleted);
	free(list);
	cr_assert_eq(store_delete_bookmark(s, 1), 0);
	cr_assert_eq(store_list_snapshots(s, &list, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(list[0].uuid, "u2");
	free(list);
	store_close(s, true);
}
