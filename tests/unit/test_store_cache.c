// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The copy lookups' cache (src/store_cache.c): what a lookup keeps is
 * forgotten by the commit that changes it, including a commit that lands
 * while the lookup is asking the index.  That race is held open by
 * wrapping run_scan (-Wl,--wrap=run_scan): the wrapper lets the real scan
 * answer, then commits a copy into the window before the lookup keeps
 * its answer.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapfs/store.h"
#include "store_int.h"

static char dir[64];
static struct store *s;

/* run_scan's wrapper: when armed, after the real scan of a range holding
 * arm_chunk, commits arm_row (once). */
static struct chunk_row arm_row;
static bool armed;

int __real_run_scan(sqlite3 *db, sqlite3_stmt *st, uint64_t first,
		    uint64_t last, int64_t seq_lo, int64_t seq_hi,
		    int (*fn)(void *arg, const struct run *r), void *arg);
int __wrap_run_scan(sqlite3 *db, sqlite3_stmt *st, uint64_t first,
		    uint64_t last, int64_t seq_lo, int64_t seq_hi,
		    int (*fn)(void *arg, const struct run *r), void *arg);

int __wrap_run_scan(sqlite3 *db, sqlite3_stmt *st, uint64_t first,
		    uint64_t last, int64_t seq_lo, int64_t seq_hi,
		    int (*fn)(void *arg, const struct run *r), void *arg)
{
	int r = __real_run_scan(db, st, first, last, seq_lo, seq_hi, fn, arg);

	if (armed && first <= arm_row.chunk_idx && arm_row.chunk_idx <= last) {
		armed = false;
		cr_assert_eq(store_commit_chunks(s, &arm_row, 1), 0);
	}
	return r;
}

static void setup(void)
{
	struct store_config c = { .chunk_size = 4096,
				  .image_size = 64 << 20,
				  .backing_id = "file:1:2",
				  .durability = DURABILITY_PROCESS };
	struct store_snapshot snap = { .uuid = "u1" };
	char path[128], err[256];

	strcpy(dir, "/tmp/snapfs-cache-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s", dir);
	c.dir = path;
	cr_assert_eq(store_open(&s, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(store_add_snapshot(s, &snap), 0);
	cr_assert_eq(snap.seq, 1);
	armed = false;
}

static void teardown(void)
{
	char cmd[128];

	store_close(s, true);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(store_cache, .init = setup, .fini = teardown);

/* A copy of chunk c for seq 1, in a slot of its own. */
static struct chunk_row copy_of(uint64_t c)
{
	struct chunk_row row = { .chunk_idx = c, .seq = 1, .crc = 7 };

	cr_assert_eq(store_slot_alloc(s, &row.data_off), 0);
	return row;
}

/* Looks up a whole window (which the cache keeps): chunk c's row. */
static struct chunk_row window_row(uint64_t c)
{
	struct chunk_row rows[CACHE_WINDOW];
	uint64_t w0 = c / CACHE_WINDOW * CACHE_WINDOW;

	cr_assert_eq(store_find_copies(s, w0, w0 + CACHE_WINDOW - 1, 1, rows),
		     0);
	return rows[c - w0];
}

Test(store_cache, a_commit_forgets_the_windows_it_changes)
{
	struct chunk_row rows[3] = { copy_of(5), copy_of(6), copy_of(70) };
	struct chunk_row got;

	for (int pass = 0; pass < 2; pass++) { /* the index, then the cache */
		cr_assert_eq(window_row(5).seq, -1);
		cr_assert_eq(window_row(70).seq, -1);
	}
	/* one commit, two windows */
	cr_assert_eq(store_commit_chunks(s, rows, 3), 0);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(store_find_copy(s, rows[i].chunk_idx, 1, &got), 0,
			     "chunk %llu: the lookup kept before the commit "
			     "was used after it",
			     (unsigned long long)rows[i].chunk_idx);
		cr_assert_eq(got.data_off, rows[i].data_off);
		cr_assert_eq(got.crc, 7);
	}
}

Test(store_cache, a_window_missed_twice_is_kept_and_forgotten_too)
{
	struct chunk_row row = copy_of(70), got;

	/* parts of a window: the second miss asks for it whole */
	cr_assert_eq(store_find_copy(s, 70, 1, &got), -ENOENT);
	cr_assert_eq(store_find_copy(s, 71, 1, &got), -ENOENT);
	cr_assert_eq(store_find_copy(s, 70, 1, &got), -ENOENT);
	cr_assert_eq(store_commit_chunks(s, &row, 1), 0);
	cr_assert_eq(store_find_copy(s, 70, 1, &got), 0);
	cr_assert_eq(got.data_off, row.data_off);
}

Test(store_cache, a_commit_during_a_lookup_is_not_hidden_by_it)
{
	struct chunk_row got;

	arm_row = copy_of(9);
	armed = true;
	/* the scan answers "no copy", then the commit lands, then the lookup
	 * would keep its answer */
	cr_assert_eq(window_row(9).seq, -1);
	cr_assert(!armed, "the wrapper did not commit");
	cr_assert_eq(
		store_find_copy(s, 9, 1, &got), 0,
		"a lookup kept what it read before a commit it overlapped");
	cr_assert_eq(got.data_off, arm_row.data_off);
}

Test(store_cache, a_purge_forgets_every_window)
{
	struct chunk_row row = copy_of(3), got;

	cr_assert_eq(store_commit_chunks(s, &row, 1), 0);
	cr_assert_eq(window_row(3).seq, 1);
	cr_assert_eq(window_row(3).seq, 1);
	cr_assert_eq(store_purge_snapshot(s, 1, NULL, 0), 0);
	cr_assert_eq(store_find_copy(s, 3, 1, &got), -ENOENT,
		     "a purged copy was still found");
}

Test(store_cache, zero_rows_and_copies_read_back_as_the_index_has_them)
{
	struct chunk_row rows[3] = {
		copy_of(10),
		copy_of(11),
		{ .chunk_idx = 12, .seq = 1, .data_off = -1 }
	};
	struct chunk_row got[CACHE_WINDOW];

	rows[1].crc = 0xdeadbeef;
	cr_assert_eq(store_commit_chunks(s, rows, 3), 0);
	for (int pass = 0; pass < 2; pass++) { /* the index, then the cache */
		cr_assert_eq(store_find_copies(s, 0, CACHE_WINDOW - 1, 1, got),
			     0);
		for (int i = 0; i < 3; i++) {
			cr_assert_eq(got[10 + i].chunk_idx, 10 + (uint64_t)i);
			cr_assert_eq(got[10 + i].seq, 1);
			cr_assert_eq(got[10 + i].data_off, rows[i].data_off);
		}
		cr_assert_eq(got[11].crc, 0xdeadbeef);
		cr_assert_eq(got[9].seq, -1);
		cr_assert_eq(got[13].seq, -1);
	}
}
