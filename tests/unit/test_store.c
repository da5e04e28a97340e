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
		snprintf(sql, sizeof(sql), "UPDATE chunks SET data_off=%s",
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
	char mnt[96], cmd[256], err[256];
	struct statvfs sv;
	struct store *s;
	uint64_t n, free_bytes;

	snprintf(mnt, sizeof(mnt), "%s/small", dir);
	cr_assert_eq(mkdir(mnt, 0700), 0);
	snprintf(cmd, sizeof(cmd),
		 "mount -t tmpfs -o size=32m snapfs-test '%s' 2>/dev/null",
		 mnt);
	if (system(cmd))
		cr_skip_test("mounting a small tmpfs needs root");
	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(statvfs(mnt, &sv), 0);
	free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
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
