// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * store_chunks.c - the preserved copies as the snapshots read them.
 *
 * A snapshot seq reads chunk c from its oldest copy made at or after seq
 * (a copy is keyed by the snapshot that was newest when it was made), or
 * the live chunk when there is none.  Hence the purge rule: deleting
 * snapshot seq frees the copy it read only when no live snapshot between
 * that copy's predecessor (exclusive) and the copy itself still reads it;
 * and the diff bytes: a copy is charged to the newest live snapshot at or
 * before the one it was made under.
 *
 * Locking: lookups use the read connection under rdb_lock; the scan, the
 * purge and the diff bytes use the write connection under db_lock (the
 * purge commits before the freed slots go back, under slot_lock, after
 * db_lock is let go).  store_for_each_chunk calls its callback with
 * db_lock held.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "array.h"
#include "store_int.h"

int store_find_copies(struct store *s, uint64_t first, uint64_t last,
		      int64_t seq, struct chunk_row *rows)
{
	int rc, r = 0;

	for (uint64_t i = 0; i <= last - first; i++)
		rows[i] =
			(struct chunk_row){ .chunk_idx = first + i, .seq = -1 };
	pthread_mutex_lock(&s->rdb_lock);
	sqlite3_bind_int64(s->find_copy, 1, (int64_t)first);
	sqlite3_bind_int64(s->find_copy, 2, (int64_t)last);
	sqlite3_bind_int64(s->find_copy, 3, seq);
	while ((rc = sqlite3_step(s->find_copy)) == SQLITE_ROW) {
		uint64_t ch = (uint64_t)sqlite3_column_int64(s->find_copy, 0);
		struct chunk_row *out;

		if (ch < first || ch > last)
			continue;
		out = &rows[ch - first];
		out->seq = sqlite3_column_int64(s->find_copy, 1);
		out->data_off =
			sqlite3_column_type(s->find_copy, 2) == SQLITE_NULL
				? -1
				: sqlite3_column_int64(s->find_copy, 2);
		out->crc = (uint32_t)sqlite3_column_int64(s->find_copy, 3);
	}
	if (rc != SQLITE_DONE)
		r = index_err(s->rdb, rc, "find copies");
	sqlite3_reset(s->find_copy);
	pthread_mutex_unlock(&s->rdb_lock);
	return r;
}

int store_find_copy(struct store *s, uint64_t chunk_idx, int64_t seq,
		    struct chunk_row *out)
{
	int r = store_find_copies(s, chunk_idx, chunk_idx, seq, out);

	return r ? r : out->seq < 0 ? -ENOENT : 0;
}

int store_for_each_chunk(struct store *s,
			 int (*fn)(void *arg, uint64_t chunk_idx,
				   int64_t max_seq),
			 void *arg)
{
	sqlite3_stmt *st;
	int rc, r = 0;

	pthread_mutex_lock(&s->db_lock);
	rc = sqlite3_prepare_v2(
		s->db,
		"SELECT chunk_idx, max(seq) FROM chunks GROUP BY chunk_idx", -1,
		&st, NULL);
	if (rc != SQLITE_OK) {
		r = index_err(s->db, rc, "prepare chunk scan");
		goto out;
	}
	while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW)
		r = fn(arg, (uint64_t)sqlite3_column_int64(st, 0),
		       sqlite3_column_int64(st, 1));
	if (!r && rc != SQLITE_DONE)
		r = index_err(s->db, rc, "chunk scan");
	sqlite3_finalize(st);
out:
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

/* True when some seq of live[0..n) (ascending) lies in (lo, hi]. */
static bool live_in_range(const int64_t *live, size_t n, int64_t lo, int64_t hi)
{
	size_t a = 0, b = n;

	while (a < b) { /* first live > lo */
		size_t m = a + (b - a) / 2;

		if (live[m] > lo)
			b = m;
		else
			a = m + 1;
	}
	return a < n && live[a] <= hi;
}

int store_purge_snapshot(struct store *s, int64_t seq, const int64_t *live,
			 size_t nlive)
{
	sqlite3_stmt *cand = NULL, *prev = NULL, *del = NULL;
	struct i64_array freed = { 0 };
	int rc, r;

	pthread_mutex_lock(&s->db_lock);
	r = index_tx_begin(s->db);
	if (r)
		goto out;
	/* For each chunk, the copy snapshot seq read: its first at or after
	 * seq.  Only those can lose their last reader. */
	rc = sqlite3_prepare_v2(s->db,
				"SELECT chunk_idx, min(seq) FROM chunks WHERE "
				"seq >= ? GROUP BY chunk_idx",
				-1, &cand, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(s->db,
					"SELECT max(seq) FROM chunks WHERE "
					"chunk_idx=? AND seq<?",
					-1, &prev, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(s->db,
					"DELETE FROM chunks WHERE chunk_idx=? "
					"AND seq=? RETURNING data_off",
					-1, &del, NULL);
	if (rc != SQLITE_OK) {
		r = index_err(s->db, rc, "prepare purge");
		goto end;
	}
	sqlite3_bind_int64(cand, 1, seq);
	while (!r && (rc = sqlite3_step(cand)) == SQLITE_ROW) {
		int64_t c = sqlite3_column_int64(cand, 0);
		int64_t k = sqlite3_column_int64(cand, 1), lo = 0;

		sqlite3_bind_int64(prev, 1, c);
		sqlite3_bind_int64(prev, 2, seq);
		rc = sqlite3_step(prev);
		if (rc == SQLITE_ROW &&
		    sqlite3_column_type(prev, 0) != SQLITE_NULL)
			lo = sqlite3_column_int64(prev, 0);
		sqlite3_reset(prev);
		if (rc != SQLITE_ROW) {
			r = index_err(s->db, rc, "purge lookup");
			break;
		}
		if (live_in_range(live, nlive, lo, k))
			continue;
		sqlite3_bind_int64(del, 1, c);
		sqlite3_bind_int64(del, 2, k);
		while ((rc = sqlite3_step(del)) == SQLITE_ROW)
			if (sqlite3_column_type(del, 0) != SQLITE_NULL)
				r = i64_array_push(
					&freed, sqlite3_column_int64(del, 0));
		sqlite3_reset(del);
		if (rc != SQLITE_DONE)
			r = index_err(s->db, rc, "purge delete");
	}
	if (!r && rc != SQLITE_DONE)
		r = index_err(s->db, rc, "purge scan");
	if (!r)
		r = index_run(s->db, "delete snapshot",
			      "DELETE FROM snapshots WHERE seq=?", "i", seq);
end:
	r = index_tx_end(s->db, r, "index.purge");
	if (r)
		freed.n = 0;
out:
	sqlite3_finalize(cand);
	sqlite3_finalize(prev);
	sqlite3_finalize(del);
	pthread_mutex_unlock(&s->db_lock);
	store_slots_release(s, freed.v, freed.n);
	free(freed.v);
	return r;
}

int store_diff_bytes(struct store *s, const int64_t *live, size_t nlive,
		     uint64_t *out)
{
	sqlite3_stmt *st;
	int rc, r = 0;

	memset(out, 0, nlive * sizeof(*out));
	pthread_mutex_lock(&s->db_lock);
	rc = sqlite3_prepare_v2(s->db,
				"SELECT seq, count(*) FROM chunks WHERE "
				"data_off IS NOT NULL GROUP BY seq",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = index_err(s->db, rc, "prepare diff bytes");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t k = sqlite3_column_int64(st, 0);
		uint64_t cnt = (uint64_t)sqlite3_column_int64(st, 1);
		size_t a = 0, b = nlive;

		/* the newest live snapshot at or before k made it */
		while (a < b) {
			size_t m = a + (b - a) / 2;

			if (live[m] <= k)
				a = m + 1;
			else
				b = m;
		}
		if (a > 0)
			out[a - 1] += cnt * s->info.chunk_size;
	}
	if (rc != SQLITE_DONE)
		r = index_err(s->db, rc, "diff bytes");
	sqlite3_finalize(st);
out:
	pthread_mutex_unlock(&s->db_lock);
	return r;
}
