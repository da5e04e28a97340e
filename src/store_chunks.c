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
 * before the one it was made under.  Copies are stored as runs
 * (store_runs.c): a lookup gathers the runs over a range, and a purge
 * works a window of chunks at a time, deleting a run that loses copies
 * and inserting again the pieces of it that keep theirs.
 *
 * Locking: lookups use the read connection under rdb_lock; the scan, the
 * purge and the diff bytes use the write connection under db_lock (the
 * purge commits before the freed slots go back, under slot_lock, after
 * db_lock is let go).  store_for_each_chunk calls its callback with
 * db_lock held.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "store_int.h"

/* store_find_copies' gathering: rows[c - first] the oldest copy. */
struct found {
	uint64_t first, last;
	uint32_t cs, zero_crc;
	struct chunk_row *rows;
};

static int take_oldest(void *arg, const struct run *r)
{
	struct found *f = arg;
	uint64_t a = r->chunk > f->first ? r->chunk : f->first;
	uint64_t b =
		r->chunk + r->n - 1 < f->last ? r->chunk + r->n - 1 : f->last;

	for (uint64_t c = a; c <= b; c++) {
		struct chunk_row *out = &f->rows[c - f->first];
		uint32_t i = (uint32_t)(c - r->chunk);

		if (out->seq >= 0 && out->seq <= r->seq)
			continue;
		out->seq = r->seq;
		out->data_off =
			r->data_off < 0 ? -1 : r->data_off + (int64_t)i * f->cs;
		out->crc = run_crc(r, i, f->zero_crc);
	}
	return 0;
}

/* Finds the copies of chunks first..last, in one cache window, in the
 * index: the whole window's when the cache wants it (and keeps it, unless
 * a commit came), else just these. */
static int find_window(struct store *s, uint64_t first, uint64_t last,
		       int64_t seq, struct chunk_row *rows)
{
	uint64_t window = first / CACHE_WINDOW, w0 = window * CACHE_WINDOW;
	struct chunk_row all[CACHE_WINDOW];
	uint64_t token;
	bool fill = copy_cache_miss(
		&s->cache, window,
		first == w0 && last - first + 1 == CACHE_WINDOW, &token);
	struct found f = { fill ? w0 : first,
			   fill ? w0 + CACHE_WINDOW - 1 : last,
			   s->info.chunk_size, s->zero_crc,
			   all + (fill ? 0 : first - w0) };
	int r;

	for (uint64_t c = f.first; c <= f.last; c++)
		all[c - w0] = (struct chunk_row){ .chunk_idx = c, .seq = -1 };
	pthread_mutex_lock(&s->rdb_lock);
	r = run_scan(s->rdb, s->find_runs, f.first, f.last, seq, INT64_MAX,
		     take_oldest, &f);
	pthread_mutex_unlock(&s->rdb_lock);
	if (r)
		return r;
	if (fill)
		copy_cache_put(&s->cache, token, seq, window, all);
	memcpy(rows, &all[first - w0],
	       (size_t)(last - first + 1) * sizeof(*rows));
	return 0;
}

int store_find_copies(struct store *s, uint64_t first, uint64_t last,
		      int64_t seq, struct chunk_row *rows)
{
	int r = 0;

	/* a window at a time, from the cache or the index */
	for (uint64_t a = first, b; a <= last && !r; a = b + 1) {
		b = (a / CACHE_WINDOW + 1) * CACHE_WINDOW - 1;
		if (b > last)
			b = last;
		if (!copy_cache_get(&s->cache, seq, a, b, rows + (a - first)))
			r = find_window(s, a, b, seq, rows + (a - first));
	}
	return r;
}

int store_find_copy(struct store *s, uint64_t chunk_idx, int64_t seq,
		    struct chunk_row *out)
{
	int r = store_find_copies(s, chunk_idx, chunk_idx, seq, out);

	return r ? r : out->seq < 0 ? -ENOENT : 0;
}

int store_for_each_chunk(struct store *s,
			 int (*fn)(void *arg, uint64_t chunk_idx, int64_t seq),
			 void *arg)
{
	sqlite3_stmt *st;
	int rc, r = 0;

	pthread_mutex_lock(&s->db_lock);
	rc = sqlite3_prepare_v2(s->db, "SELECT chunk_idx, seq, n FROM runs", -1,
				&st, NULL);
	if (rc != SQLITE_OK) {
		r = index_err(s->db, rc, "prepare copy scan");
		goto out;
	}
	while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t c = (uint64_t)sqlite3_column_int64(st, 0);
		int64_t seq = sqlite3_column_int64(st, 1);
		int64_t n = sqlite3_column_int64(st, 2);

		for (int64_t i = 0; i < n && !r; i++)
			r = fn(arg, c + (uint64_t)i, seq);
	}
	if (!r && rc != SQLITE_DONE)
		r = index_err(s->db, rc, "copy scan");
	sqlite3_finalize(st);
out:
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

static int cmp_extent(const void *a, const void *b)
{
	const struct chunk_extent *x = a, *y = b;

	return (x->first > y->first) - (x->first < y->first);
}

int store_copied_since(struct store *s, int64_t seq, struct chunk_extent **out,
		       size_t *n)
{
	struct chunk_extent *v = NULL;
	size_t cnt = 0, cap = 0, k = 0;
	sqlite3_stmt *st;
	int rc, r = 0;

	pthread_mutex_lock(&s->db_lock);
	rc = sqlite3_prepare_v2(s->db,
				"SELECT chunk_idx, n FROM runs WHERE seq >= ?",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = index_err(s->db, rc, "prepare copies since");
		pthread_mutex_unlock(&s->db_lock);
		return r;
	}
	sqlite3_bind_int64(st, 1, seq);
	while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = array_grow(&v, &cap, cnt, sizeof(*v));
		if (!r)
			v[cnt++] = (struct chunk_extent){
				.first = (uint64_t)sqlite3_column_int64(st, 0),
				.count = (uint64_t)sqlite3_column_int64(st, 1)
			};
	}
	if (!r && rc != SQLITE_DONE)
		r = index_err(s->db, rc, "copies since");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_lock);
	if (r) {
		free(v);
		return r;
	}
	/* in chunk order, overlapping and touching extents merged */
	qsort(v, cnt, sizeof(*v), cmp_extent);
	for (size_t i = 0; i < cnt; i++) {
		if (k && v[i].first <= v[k - 1].first + v[k - 1].count) {
			uint64_t end = v[i].first + v[i].count;

			if (end > v[k - 1].first + v[k - 1].count)
				v[k - 1].count = end - v[k - 1].first;
			continue;
		}
		v[k++] = v[i];
	}
	*out = v;
	*n = k;
	return 0;
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

/* The purge works through the chunks a window at a time. */
#define PURGE_WINDOW 4096

/* One window of a purge: every run overlapping chunks lo..hi-1 (copied,
 * with their checksums), and per chunk the seqs around the deleted one. */
struct purge_window {
	uint64_t lo, hi;
	int64_t seq; /* the snapshot deleted */
	struct run *runs;
	unsigned char *crcs; /* the runs' checksums, 4 * RUN_MAX each */
	size_t n, cap;
	int64_t *kmin; /* per chunk: its oldest copy at or after seq, or 0 */
	int64_t *prev; /* per chunk: its newest copy before seq, or 0 */
};

static int window_add(void *arg, const struct run *r)
{
	struct purge_window *w = arg;
	size_t cap = w->cap;
	int e;

	e = array_grow(&w->runs, &w->cap, w->n, sizeof(*w->runs));
	if (!e && w->cap != cap) {
		unsigned char *p = realloc(w->crcs, w->cap * 4 * RUN_MAX);

		if (!p)
			return -ENOMEM;
		w->crcs = p;
	}
	if (e)
		return e;
	w->runs[w->n] = *r;
	w->runs[w->n].crcs = NULL; /* pointed at its copy once all are in */
	if (r->crcs)
		memcpy(w->crcs + w->n * 4 * RUN_MAX, r->crcs, 4 * (size_t)r->n);
	w->n++;
	for (uint64_t c = r->chunk; c < r->chunk + r->n; c++) {
		size_t i;

		if (c < w->lo || c >= w->hi)
			continue;
		i = c - w->lo;
		if (r->seq >= w->seq && (!w->kmin[i] || r->seq < w->kmin[i]))
			w->kmin[i] = r->seq;
		if (r->seq < w->seq && r->seq > w->prev[i])
			w->prev[i] = r->seq;
	}
	return 0;
}

/*
 * Purges the copies of runs starting in chunks first..first+PURGE_WINDOW-1
 * that snapshot seq read and no live snapshot reads any more: each such
 * run is deleted and what is kept of it inserted again, split where
 * chunks went.  Their slots are pushed to freed.  db_lock held, in the
 * purge's transaction.
 */
static int purge_window(struct store *s, struct purge_window *w, uint64_t first,
			const int64_t *live, size_t nlive, sqlite3_stmt *del,
			struct i64_array *freed)
{
	const uint32_t cs = s->info.chunk_size;
	int r;

	w->lo = first;
	w->hi = first + PURGE_WINDOW + RUN_MAX;
	w->n = 0;
	memset(w->kmin, 0, (w->hi - w->lo) * sizeof(*w->kmin));
	memset(w->prev, 0, (w->hi - w->lo) * sizeof(*w->prev));
	r = run_scan(s->db, s->find_runs_w, w->lo, w->hi - 1, 0, INT64_MAX,
		     window_add, w);
	for (size_t k = 0; k < w->n && !r; k++) {
		struct run *run = &w->runs[k];
		bool drop[RUN_MAX], any = false;
		uint32_t i, j;
		int rc;

		if (run->data_off >= 0)
			run->crcs = w->crcs + k * 4 * RUN_MAX;
		if (run->seq < w->seq || run->chunk < first ||
		    run->chunk >= first + PURGE_WINDOW)
			continue;
		for (i = 0; i < run->n; i++) {
			size_t c = run->chunk + i - w->lo;

			drop[i] = w->kmin[c] == run->seq &&
				  !live_in_range(live, nlive, w->prev[c],
						 run->seq);
			any |= drop[i];
		}
		if (!any)
			continue;
		sqlite3_bind_int(del, 1, (int)run_class(run->n));
		sqlite3_bind_int64(del, 2, (int64_t)run->chunk);
		sqlite3_bind_int64(del, 3, run->seq);
		rc = sqlite3_step(del);
		sqlite3_reset(del);
		if (rc != SQLITE_DONE)
			return index_err(s->db, rc, "purge delete");
		for (i = 0; i < run->n && !r; i = j) {
			struct run piece = *run;

			for (j = i; j < run->n && drop[j] == drop[i]; j++)
				if (drop[j] && run->data_off >= 0)
					r = i64_array_push(
						freed, run->data_off +
							       (int64_t)j * cs);
			if (drop[i] || r)
				continue;
			piece.chunk = run->chunk + i;
			piece.n = j - i;
			if (run->data_off >= 0) {
				piece.data_off =
					run->data_off + (int64_t)i * cs;
				piece.crcs = run->crcs + 4 * (size_t)i;
			}
			r = run_insert(s, &piece);
		}
	}
	return r;
}

/* The windows (first chunk / PURGE_WINDOW) holding the start of a run of
 * seq or later, sorted, each once. */
static int purge_windows(struct store *s, int64_t seq, struct i64_array *out)
{
	sqlite3_stmt *st;
	size_t k = 0;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(
		s->db,
		"SELECT DISTINCT chunk_idx / ?2 FROM runs WHERE "
		"seq >= ?1",
		-1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(s->db, rc, "prepare purge");
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_int64(st, 2, PURGE_WINDOW);
	while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW)
		r = i64_array_push(out, sqlite3_column_int64(st, 0));
	if (!r && rc != SQLITE_DONE)
		r = index_err(s->db, rc, "purge scan");
	sqlite3_finalize(st);
	if (r)
		return r;
	if (!out->n)
		return 0; /* out->v may be NULL */
	qsort(out->v, out->n, sizeof(*out->v), array_cmp_u64);
	for (size_t i = 0; i < out->n; i++)
		if (!k || out->v[k - 1] != out->v[i])
			out->v[k++] = out->v[i];
	out->n = k;
	return 0;
}

int store_purge_snapshot(struct store *s, int64_t seq, const int64_t *live,
			 size_t nlive)
{
	struct purge_window w = { .seq = seq };
	struct i64_array freed = { 0 }, wins = { 0 };
	sqlite3_stmt *del = NULL;
	int rc, r;

	w.kmin = calloc(PURGE_WINDOW + RUN_MAX, sizeof(*w.kmin));
	w.prev = calloc(PURGE_WINDOW + RUN_MAX, sizeof(*w.prev));
	if (!w.kmin || !w.prev) {
		free(w.kmin);
		free(w.prev);
		return -ENOMEM;
	}
	pthread_mutex_lock(&s->db_lock);
	r = index_tx_begin(s->db);
	if (r)
		goto out;
	rc = sqlite3_prepare_v2(s->db,
				"DELETE FROM runs WHERE class=? AND "
				"chunk_idx=? AND seq=?",
				-1, &del, NULL);
	if (rc != SQLITE_OK)
		r = index_err(s->db, rc, "prepare purge");
	if (!r)
		r = purge_windows(s, seq, &wins);
	for (size_t i = 0; i < wins.n && !r; i++)
		r = purge_window(s, &w, (uint64_t)wins.v[i] * PURGE_WINDOW,
				 live, nlive, del, &freed);
	/* gone, or a bookmark when so marked (store_mark_deleted) */
	if (!r)
		r = index_run(
			s->db, "delete snapshot",
			"DELETE FROM snapshots WHERE seq=? AND bookmark=0", "i",
			seq);
	if (!r)
		r = index_run(s->db, "keep bookmark",
			      "UPDATE snapshots SET deleted=0 WHERE seq=?", "i",
			      seq);
	r = index_tx_end(s->db, r, "index.purge");
	if (r)
		freed.n = 0;
	else
		store_compact(s);
out:
	sqlite3_finalize(del);
	pthread_mutex_unlock(&s->db_lock);
	/* before a freed slot is taken again (store_cache.c) */
	copy_cache_forget_all(&s->cache);
	store_slots_release(s, freed.v, freed.n);
	free(freed.v);
	free(wins.v);
	free(w.runs);
	free(w.crcs);
	free(w.kmin);
	free(w.prev);
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
				"SELECT seq, sum(n) FROM runs WHERE "
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
