// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * store_migrate.c - an index of an older format brought to this one.
 *
 * Format 1 (snapfs 0.1.0) kept a row per copied chunk:
 *
 *   chunks(chunk_idx, seq, data_off, crc)
 *
 * Format 2 (snapfs 0.2.0) keeps runs of them (store_runs.c): from 1, the
 * migration reads the old rows in (seq, chunk) order, joins each stretch
 * that continues one another into a run, writes the runs and drops the
 * old table.  Format 3 adds the snapshots' bookmark column (0: none is a
 * bookmark).  A migration does every step from the store's format to
 * this one and records the format in one transaction: a crash part way
 * leaves the old format, and the next open migrates again.  The data file
 * is not touched, and the store keeps the chunk size it was made with.
 *
 * Locking: the store's open, before any other thread; the write
 * connection only.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "snapfs/log.h"
#include "store_int.h"

/* Chunk rows read so far that may still join into one run. */
struct pending {
	struct run run;
	unsigned char crcs[4 * RUN_MAX];
	uint64_t runs, copies;
};

static int flush(struct store *s, struct pending *p)
{
	int r;

	if (!p->run.n)
		return 0;
	p->run.crcs = p->run.data_off < 0 ? NULL : p->crcs;
	r = run_insert(s, &p->run);
	p->runs++;
	p->run.n = 0;
	return r;
}

static int migrate_1_to_2(struct store *s, sqlite3_stmt *old)
{
	const int64_t cs = s->info.chunk_size;
	struct pending p = { 0 };
	int rc, r = 0;

	while (!r && (rc = sqlite3_step(old)) == SQLITE_ROW) {
		uint64_t c = (uint64_t)sqlite3_column_int64(old, 0);
		int64_t seq = sqlite3_column_int64(old, 1);
		int64_t off = sqlite3_column_type(old, 2) == SQLITE_NULL
				      ? -1
				      : sqlite3_column_int64(old, 2);
		uint32_t le = htole32((uint32_t)sqlite3_column_int64(old, 3));
		struct run *q = &p.run;

		if (q->n &&
		    (q->n == RUN_MAX || seq != q->seq || c != q->chunk + q->n ||
		     (off < 0) != (q->data_off < 0) ||
		     (off >= 0 && off != q->data_off + q->n * cs)))
			r = flush(s, &p);
		if (r)
			break;
		if (!q->n)
			*q = (struct run){ .chunk = c,
					   .seq = seq,
					   .data_off = off };
		memcpy(p.crcs + 4 * (size_t)q->n, &le, 4);
		q->n++;
		p.copies++;
	}
	if (!r && rc != SQLITE_DONE)
		r = index_err(s->db, rc, "read format 1 rows");
	if (!r)
		r = flush(s, &p);
	if (!r)
		log_info("store: %llu copies in %llu runs",
			 (unsigned long long)p.copies,
			 (unsigned long long)p.runs);
	return r;
}

/* Format 1 to 2: the runs table from the chunks table. */
static int runs_from_chunks(struct store *s)
{
	sqlite3_stmt *old = NULL;
	int rc, r;

	r = index_exec(s->db, index_runs_schema);
	if (!r) {
		rc = sqlite3_prepare_v2(s->db, run_insert_sql, -1, &s->ins_run,
					NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_prepare_v2(
				s->db,
				"SELECT chunk_idx, seq, data_off, crc FROM "
				"chunks ORDER BY seq, chunk_idx",
				-1, &old, NULL);
		if (rc != SQLITE_OK)
			r = index_err(s->db, rc, "prepare migration");
	}
	if (!r)
		r = migrate_1_to_2(s, old);
	sqlite3_finalize(old);
	sqlite3_finalize(s->ins_run);
	s->ins_run = NULL;
	if (!r)
		r = index_exec(s->db, "DROP TABLE chunks");
	return r;
}

/* Whether table has column; -errno when it cannot be told. */
static int has_column(sqlite3 *db, const char *table, const char *column)
{
	char sql[128];
	sqlite3_stmt *st;
	int rc, found = 0;

	snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", table);
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(db, rc, "read the table's columns");
	while (!found && (rc = sqlite3_step(st)) == SQLITE_ROW)
		found = !strcmp((const char *)sqlite3_column_text(st, 1),
				column);
	if (!found && rc != SQLITE_DONE)
		found = index_err(db, rc, "read the table's columns");
	sqlite3_finalize(st);
	return found;
}

int store_migrate(struct store *s, uint64_t from, char *err, size_t err_len)
{
	int r;

	log_info("store %s: migrating the index from format %llu to %d", s->dir,
		 (unsigned long long)from, STORE_FORMAT);
	r = index_tx_begin(s->db);
	if (r)
		goto out;
	if (from < 2)
		r = runs_from_chunks(s);
	/* format 3: bookmarks (a store made as format 1 by a test may have
	 * the column already) */
	if (!r)
		r = has_column(s->db, "snapshots", "bookmark");
	if (r == 0)
		r = index_exec(s->db,
			       "ALTER TABLE snapshots ADD COLUMN bookmark "
			       "INTEGER NOT NULL DEFAULT 0");
	else if (r > 0)
		r = 0;
	if (!r)
		r = index_meta_set_u64(s->db, "format", STORE_FORMAT);
	r = index_tx_end(s->db, r, "index.migrate");
out:
	if (r) {
		snprintf(err, err_len,
			 "store %s: cannot migrate the index from format "
			 "%llu: %s",
			 s->dir, (unsigned long long)from, strerror(-r));
		return r;
	}
	s->format = STORE_FORMAT;
	/* Stores of format 1 kept freed pages in a free list: from now on
	 * they go back (store_compact), once the file is rebuilt so. */
	if (from < 2 && (index_exec(s->db, "PRAGMA auto_vacuum=INCREMENTAL") ||
			 index_exec(s->db, "VACUUM")))
		log_warn("store %s: the index keeps its free pages", s->dir);
	store_add_event(s, "migrated",
			"index format %llu brought to %d (chunk_size %u kept)",
			(unsigned long long)from, STORE_FORMAT,
			s->info.chunk_size);
	return 0;
}
