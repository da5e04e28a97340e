// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * store_runs.c - how preserved copies are rows of the index.
 *
 * A copy of chunk c made while snapshot seq was the newest is that
 * chunk's bytes in one slot of the data file, or nothing for a chunk of
 * zeros.  Copies of consecutive chunks made under the same seq into
 * consecutive slots (or all zeros) are one row, a run:
 *
 *   runs(class, chunk_idx, seq, n, data_off, crcs)
 *
 * chunk_idx is the first chunk, n the count (1..RUN_MAX, 128), data_off
 * the first chunk's slot (NULL for zeros), crcs the n chunks' crc32c,
 * four bytes each, little-endian (NULL for zeros).  N MiB overwritten in
 * order under a snapshot add about 2N rows at 4 KiB chunks (N / 8 at
 * 64 KiB), where a row a chunk would add 256N.
 *
 * Runs of one seq never overlap (a chunk is copied once per seq; a second
 * copy is not inserted, see store_insert_rows); runs of different seqs
 * do.  Finding the runs over a range must look back as far as a run can
 * reach, RUN_MAX - 1 chunks, which would scan every row starting there:
 * 127 of them per lookup once every chunk is a run of its own.  So a run
 * has a class by its length (1, 2..4, 5..16, 17..64, 65..128 chunks), the
 * primary key leads with it, and the lookup (run_overlap_sql) scans each
 * class back only as far as that class reaches: per seq, at most about
 * four rows of a class start in its window.
 *
 * Locking: none of its own; each function's caller holds the lock of the
 * connection it passes or uses (db_lock for s->db, rdb_lock for s->rdb).
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snapfs/log.h"
#include "store_int.h"

/* The classes' reach back: a run of class k < 4 is at most 4^k chunks,
 * of class 4 at most RUN_MAX (the SQL spells them out). */
#define REACH(k) ((1 << (2 * (k))) - 1)

unsigned run_class(uint32_t n)
{
	unsigned k = 0;

	while (k + 1 < RUN_CLASSES && n > (uint32_t)REACH(k) + 1)
		k++;
	return k;
}

uint32_t run_crc(const struct run *r, uint32_t i, uint32_t zero_crc)
{
	uint32_t le;

	if (!r->crcs)
		return zero_crc;
	memcpy(&le, r->crcs + 4 * (size_t)i, 4);
	return le32toh(le);
}

#define SEL "SELECT chunk_idx, seq, n, data_off, crcs FROM runs WHERE "
#define CLASS(k, reach)                                                      \
	"class=" #k " AND chunk_idx BETWEEN ?1 - " #reach " AND ?2 AND seq " \
	"BETWEEN ?3 AND ?4"

/* Runs of seqs ?3..?4 that may overlap chunks ?1..?2 (run_scan keeps
 * those that do). */
/* clang-format off */
const char run_overlap_sql[] =
	SEL CLASS(0, 0) " UNION ALL "
	SEL CLASS(1, 3) " UNION ALL "
	SEL CLASS(2, 15) " UNION ALL "
	SEL CLASS(3, 63) " UNION ALL "
	SEL CLASS(4, 127);
/* clang-format on */

/* One run, bound as run_insert binds it. */
const char run_insert_sql[] =
	"INSERT INTO runs(class, chunk_idx, seq, n, data_off, crcs) "
	"VALUES(?, ?, ?, ?, ?, ?)";

/* Decodes the current row of a statement selecting chunk_idx, seq, n,
 * data_off, crcs (in that order).  0 or -EIO for a row that cannot be
 * one (damage). */
int run_read(sqlite3_stmt *st, struct run *out)
{
	sqlite3_int64 n = sqlite3_column_int64(st, 2);

	out->chunk = (uint64_t)sqlite3_column_int64(st, 0);
	out->seq = sqlite3_column_int64(st, 1);
	out->n = (uint32_t)n;
	if (sqlite3_column_type(st, 3) == SQLITE_NULL) {
		out->data_off = -1;
		out->crcs = NULL;
	} else {
		out->data_off = sqlite3_column_int64(st, 3);
		out->crcs = sqlite3_column_blob(st, 4);
		if (!out->crcs || sqlite3_column_bytes(st, 4) != 4 * n)
			return -EIO;
	}
	return n >= 1 && n <= RUN_MAX ? 0 : -EIO;
}

/*
 * Calls fn for every run of seq_lo..seq_hi overlapping chunks
 * first..last, found through st (prepared from run_overlap_sql on db);
 * r->crcs is valid during the call only.  Stops at and returns fn's first
 * non-zero result; -EIO for a damaged row or a failed step.
 */
int run_scan(sqlite3 *db, sqlite3_stmt *st, uint64_t first, uint64_t last,
	     int64_t seq_lo, int64_t seq_hi,
	     int (*fn)(void *arg, const struct run *r), void *arg)
{
	struct run run;
	int rc, r = 0;

	sqlite3_bind_int64(st, 1, (int64_t)first);
	sqlite3_bind_int64(st, 2, (int64_t)last);
	sqlite3_bind_int64(st, 3, seq_lo);
	sqlite3_bind_int64(st, 4, seq_hi);
	while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (run_read(st, &run)) {
			log_error("store: a damaged run row at chunk %llu",
				  (unsigned long long)run.chunk);
			r = -EIO;
		} else if (run.chunk + run.n > first) {
			r = fn(arg, &run);
		}
	}
	if (!r && rc != SQLITE_DONE)
		r = index_err(db, rc, "find runs");
	sqlite3_reset(st);
	return r;
}

/* Inserts one run through the write connection; db_lock held. */
int run_insert(struct store *s, const struct run *r)
{
	sqlite3_stmt *st = s->ins_run;
	int rc;

	sqlite3_bind_int(st, 1, (int)run_class(r->n));
	sqlite3_bind_int64(st, 2, (int64_t)r->chunk);
	sqlite3_bind_int64(st, 3, r->seq);
	sqlite3_bind_int64(st, 4, r->n);
	if (r->data_off < 0) {
		sqlite3_bind_null(st, 5);
		sqlite3_bind_null(st, 6);
	} else {
		sqlite3_bind_int64(st, 5, r->data_off);
		sqlite3_bind_blob(st, 6, r->crcs, 4 * (int)r->n, SQLITE_STATIC);
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : index_err(s->db, rc, "insert run");
}

/* Chunks of a new run that some run of its seq has already. */
struct taken {
	uint64_t first;
	uint32_t n;
	bool bit[RUN_MAX];
};

static int mark_taken(void *arg, const struct run *r)
{
	struct taken *t = arg;

	for (uint64_t c = r->chunk; c < r->chunk + r->n; c++)
		if (c >= t->first && c < t->first + t->n)
			t->bit[c - t->first] = true;
	return 0;
}

/* Inserts rows[0..n), one run's worth, but for the chunks that have a
 * copy of the same seq already; their slots go to dup. */
static int insert_run(struct store *s, const struct chunk_row *const *rows,
		      uint32_t n, struct i64_array *dup)
{
	unsigned char crcs[4 * RUN_MAX];
	struct taken t = { .first = rows[0]->chunk_idx, .n = n };
	uint32_t i, j;
	int r;

	r = run_scan(s->db, s->find_runs_w, t.first, t.first + n - 1,
		     rows[0]->seq, rows[0]->seq, mark_taken, &t);
	for (i = 0; i < n && !r; i = j) {
		if (t.bit[i]) {
			/* A chain that lost its fresh bits (a failed
			 * reload) preserves again: the first copy holds the
			 * bytes of the instant, this one later bytes. */
			log_warn("store: chunk %llu has a copy for seq %lld "
				 "already: the first is kept",
				 (unsigned long long)rows[i]->chunk_idx,
				 (long long)rows[i]->seq);
			if (rows[i]->data_off >= 0)
				r = i64_array_push(dup, rows[i]->data_off);
			j = i + 1;
			continue;
		}
		for (j = i; j < n && !t.bit[j]; j++) {
			uint32_t le = htole32(rows[j]->crc);

			memcpy(crcs + 4 * (size_t)(j - i), &le, 4);
		}
		r = run_insert(
			s, &(struct run){
				   .chunk = rows[i]->chunk_idx,
				   .seq = rows[i]->seq,
				   .n = j - i,
				   .data_off = rows[i]->data_off,
				   .crcs = rows[i]->data_off < 0 ? NULL : crcs,
			   });
	}
	return r;
}

/* Whether row b continues the run that row a ends. */
static bool continues(const struct chunk_row *a, const struct chunk_row *b,
		      uint32_t cs)
{
	if (b->seq != a->seq || b->chunk_idx != a->chunk_idx + 1)
		return false;
	if (a->data_off < 0)
		return b->data_off < 0;
	return b->data_off == a->data_off + (int64_t)cs;
}

/*
 * Inserts rows[0..n), sorted by seq then chunk, as runs: each stretch of
 * rows that continue one another, up to RUN_MAX, is one.  A row for a
 * (chunk, seq) that has a copy already is left out and its slot pushed to
 * dup, to be freed once the rest commits.  db_lock held, in a
 * transaction.  0 or -errno.
 */
int store_insert_rows(struct store *s, const struct chunk_row *const *rows,
		      size_t n, struct i64_array *dup)
{
	const uint32_t cs = s->info.chunk_size;
	size_t i, j;
	int r = 0;

	for (i = 0; i < n && !r; i = j) {
		for (j = i + 1; j < n && j - i < RUN_MAX &&
				continues(rows[j - 1], rows[j], cs);
		     j++)
			;
		r = insert_run(s, rows + i, (uint32_t)(j - i), dup);
	}
	return r;
}
