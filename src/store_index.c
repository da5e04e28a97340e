// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * store_index.c - the SQLite glue: the schema, the connections and their
 * prepared statements, SQLite's errors turned into -errno, the one
 * transaction idiom (index_tx_begin, then index_tx_end with the work's
 * result: it commits or rolls back), the one one-shot statement
 * (index_run), the one read-only open of an index (index_open_ro), meta
 * values, and the event log (at most EVENTS_KEPT rows).
 *
 * Locking: the write connection `db` and its statements are used under
 * db_lock, the read connection `rdb` under rdb_lock; the helpers that take
 * a connection expect its lock held (or a connection nobody else has).
 * The public functions here take db_lock themselves.
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "snapfs/fault.h"
#include "snapfs/log.h"
#include "array.h"
#include "store_int.h"
#include "util_time.h"

#define EVENTS_KEPT 1000
#define STR_(x) #x
#define STRINGIFY(x) STR_(x)

static const char schema[] =
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
	"CREATE TABLE snapshots(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" uuid TEXT NOT NULL UNIQUE, created_ns INTEGER NOT NULL,"
	" generation INTEGER NOT NULL, size INTEGER NOT NULL,"
	" deleted INTEGER NOT NULL DEFAULT 0, bookmark INTEGER NOT NULL"
	" DEFAULT 0);"
	"CREATE TABLE events(id INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL,"
	" kind TEXT NOT NULL, detail TEXT NOT NULL);"
	"CREATE TABLE generations(gen INTEGER PRIMARY KEY,"
	" opened_ns INTEGER NOT NULL, closed_by TEXT NOT NULL DEFAULT '',"
	" reason TEXT NOT NULL, widened TEXT NOT NULL DEFAULT '',"
	" dropped INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE cbt(gen INTEGER NOT NULL, word INTEGER NOT NULL,"
	" bits INTEGER NOT NULL, PRIMARY KEY(gen, word)) WITHOUT ROWID;";

/* The preserved copies (store_runs.c), also made by a migration. */
const char index_runs_schema[] =
	"CREATE TABLE runs(class INTEGER NOT NULL, chunk_idx INTEGER NOT NULL,"
	" seq INTEGER NOT NULL, n INTEGER NOT NULL, data_off INTEGER,"
	" crcs BLOB, PRIMARY KEY(class, chunk_idx, seq)) WITHOUT ROWID;"
	"CREATE INDEX runs_by_seq ON runs(seq);"
	"CREATE UNIQUE INDEX runs_by_off ON runs(data_off);";

/* Maps an SQLite result to -errno, logging what SQLite said. */
int index_err(sqlite3 *db, int rc, const char *what)
{
	log_error("store: %s: %s", what, sqlite3_errmsg(db));
	return rc == SQLITE_FULL ? -ENOSPC : -EIO;
}

int index_exec(sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : index_err(db, rc, sql);
}

/* Opens the one kind of transaction the store writes in: 0 or -errno. */
int index_tx_begin(sqlite3 *db)
{
	return index_exec(db, "BEGIN IMMEDIATE");
}

/*
 * Ends the transaction index_tx_begin opened, given the result r of the
 * work done in it: when r is 0, passes fault point `point` (NULL: none)
 * and commits; otherwise, or when either fails, rolls back.  Returns the
 * result.
 */
int index_tx_end(sqlite3 *db, int r, const char *point)
{
	(void)point;
	if (!r && point)
		r = fault_errno(FAULT(point));
	if (!r)
		r = index_exec(db, "COMMIT");
	if (r && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

/*
 * Runs one statement that returns no rows: sql with one argument for each
 * letter of types ('i' an int64_t, 't' a text, NULL for SQL NULL).  0, or
 * -errno with what SQLite said logged under what.  The caller holds the
 * connection's lock.
 */
int index_run(sqlite3 *db, const char *what, const char *sql, const char *types,
	      ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(db, rc, what);
	va_start(ap, types);
	for (int i = 1; types[i - 1]; i++) {
		if (types[i - 1] == 'i') {
			sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
		} else {
			const char *t = va_arg(ap, const char *);

			if (t)
				sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
		}
	}
	va_end(ap);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : index_err(db, rc, what);
}

/* Reads meta key as text into buf; -ENOENT when absent. */
int index_meta_get(sqlite3 *db, const char *key, char *buf, size_t len)
{
	sqlite3_stmt *st;
	int rc, r = -ENOENT;

	rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key=?", -1,
				&st, NULL);
	if (rc != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 0);

		snprintf(buf, len, "%s", v ? (const char *)v : "");
		r = 0;
	} else if (rc != SQLITE_DONE) {
		r = -EIO;
	}
	sqlite3_finalize(st);
	return r;
}

int index_meta_get_u64(sqlite3 *db, const char *key, uint64_t *out)
{
	char buf[64], *end;
	int r = index_meta_get(db, key, buf, sizeof(buf));

	if (r)
		return r;
	*out = strtoull(buf, &end, 10);
	return *end ? -EINVAL : 0;
}

int index_meta_set(sqlite3 *db, const char *key, const char *value)
{
	return index_run(db, "write meta",
			 "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)",
			 "tt", key, value);
}

int index_meta_set_u64(sqlite3 *db, const char *key, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return index_meta_set(db, key, buf);
}

/*
 * The URI that opens the index at path read-only: immutable (no lock or
 * journal file made, the WAL ignored) for an index without a WAL, plain
 * read-only for one with a WAL.  A crash, even in the middle of a
 * checkpoint, leaves index.db consistent only together with its WAL; a
 * read-only connection reads the WAL's committed frames with it (building
 * its -shm index of them, as any reader does) and writes nothing into
 * index.db or the WAL.  The path is percent-encoded where a URI needs it.
 */
static void index_uri(char *buf, size_t len, const char *path, bool has_wal)
{
	size_t o = (size_t)snprintf(buf, len, "file:");

	for (const char *p = path; *p && o + 4 < len; p++)
		if (*p == '%' || *p == '?' || *p == '#')
			o += (size_t)snprintf(buf + o, len - o, "%%%02x",
					      (unsigned char)*p);
		else
			buf[o++] = *p;
	buf[o] = '\0';
	if (!has_wal)
		snprintf(buf + o, len - o, "?immutable=1");
}

/* Whether the index at path has a WAL with frames in it. */
bool index_has_wal(const char *path)
{
	char wal[STORE_PATH_MAX + 8];
	struct stat st;

	snprintf(wal, sizeof(wal), "%s-wal", path);
	/* Unsure (stat failed other than for a missing WAL): say yes.  A
	 * read with the WAL is right either way; immutable is only right
	 * without one. */
	if (stat(wal, &st) < 0)
		return errno != ENOENT;
	return st.st_size > 0;
}

/*
 * The one read-only open of an index: path through index_uri, with its
 * WAL when it has frames.  An SQLite result; *db is set even on failure
 * (NULL when out of memory) and the caller closes it.
 */
int index_open_ro(const char *path, sqlite3 **db)
{
	char uri[3 * STORE_PATH_MAX + 32];

	index_uri(uri, sizeof(uri), path, index_has_wal(path));
	return sqlite3_open_v2(uri, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI,
			       NULL);
}

/* Opens the write and read connections and prepares hot statements. */
int store_connect(struct store *s, char *err, size_t err_len)
{
	char path[STORE_PATH_MAX];
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
		    SQLITE_OPEN_NOFOLLOW;
	int rc, r;

	store_vfs_setup();
	path_in(s, "index.db", path, sizeof(path));
	rc = sqlite3_open_v2(path, &s->db, flags, NULL);
	if (rc != SQLITE_OK)
		goto err_db;
	sqlite3_busy_timeout(s->db, 10000);
	r = index_exec(s->db, "PRAGMA journal_mode=WAL");
	if (!r)
		r = index_exec(s->db, s->durability == DURABILITY_FULL
					      ? "PRAGMA synchronous=FULL"
					      : "PRAGMA synchronous=NORMAL");
	if (r)
		goto err_msg;
	rc = sqlite3_open_v2(path, &s->rdb, flags, NULL);
	if (rc != SQLITE_OK)
		goto err_db;
	sqlite3_busy_timeout(s->rdb, 10000);
	return 0;

err_db:
	snprintf(err, err_len, "store %s: cannot open index: %s", s->dir,
		 sqlite3_errmsg(s->db));
	return -EIO;
err_msg:
	snprintf(err, err_len, "store %s: cannot set up index: %s", s->dir,
		 sqlite3_errmsg(s->db));
	return r;
}

int store_prepare(struct store *s)
{
	int rc;

	rc = sqlite3_prepare_v3(s->db, run_insert_sql, -1,
				SQLITE_PREPARE_PERSISTENT, &s->ins_run, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(s->db, run_overlap_sql, -1,
					SQLITE_PREPARE_PERSISTENT,
					&s->find_runs_w, NULL);
	if (rc != SQLITE_OK)
		return index_err(s->db, rc, "prepare insert");
	rc = sqlite3_prepare_v3(
		s->db,
		"INSERT INTO cbt(gen, word, bits) VALUES(?, ?, ?) ON "
		"CONFLICT(gen, word) DO UPDATE SET bits = bits | excluded.bits",
		-1, SQLITE_PREPARE_PERSISTENT, &s->ins_word, NULL);
	if (rc != SQLITE_OK)
		return index_err(s->db, rc, "prepare bitmap insert");
	rc = sqlite3_prepare_v3(s->rdb, run_overlap_sql, -1,
				SQLITE_PREPARE_PERSISTENT, &s->find_runs, NULL);
	if (rc != SQLITE_OK)
		return index_err(s->rdb, rc, "prepare lookup");
	return 0;
}

/* Writes a new store's schema and parameters through db. */
int store_init_schema(struct store *s, sqlite3 *db,
		      const struct store_config *cfg)
{
	int r;

	s->info.chunk_size =
		cfg->chunk_size ? cfg->chunk_size : OPT_DEFAULT_CHUNK_SIZE;
	s->info.cbt_block_size = cfg->cbt_block_size
					 ? cfg->cbt_block_size
					 : OPT_DEFAULT_CBT_BLOCK_SIZE;
	/* Before any table: pages a purge frees go back to the file system
	 * (store_compact), not into a free list. */
	r = index_exec(db, "PRAGMA auto_vacuum=INCREMENTAL");
	if (!r)
		r = index_tx_begin(db);
	if (r)
		return r;
	r = index_exec(db, schema);
	if (!r)
		r = index_exec(db, index_runs_schema);
	if (!r)
		r = index_meta_set_u64(db, "format", STORE_FORMAT);
	if (!r)
		r = index_meta_set(db, "backing_id", cfg->backing_id);
	if (!r)
		r = index_meta_set_u64(db, "image_size", cfg->image_size);
	if (!r)
		r = index_meta_set_u64(db, "chunk_size", s->info.chunk_size);
	if (!r)
		r = index_meta_set_u64(db, "cbt_block_size",
				       s->info.cbt_block_size);
	if (!r)
		r = index_meta_set_u64(db, "generation", 1);
	if (!r)
		r = index_meta_set_u64(db, "clean", 1);
	if (!r)
		r = index_meta_set_u64(db, "created_ns", (uint64_t)now_ns());
	if (!r)
		r = index_run(db, "first generation",
			      "INSERT INTO generations(gen, opened_ns, reason) "
			      "VALUES(1, ?, 'first mount')",
			      "i", now_ns());
	return index_tx_end(db, r, NULL);
}

/*
 * Gives the index's free pages back to the file system and empties the
 * WAL into it, after a purge: a deleted snapshot leaves index.db and its
 * WAL about as large as before it was taken, not as large as its copies
 * made them.  db_lock held, no transaction open.  Best effort: a reader
 * that holds the WAL makes the checkpoint stop short, which the next one
 * finishes.
 */
void store_compact(struct store *s)
{
	if (sqlite3_exec(s->db, "PRAGMA incremental_vacuum", NULL, NULL,
			 NULL) != SQLITE_OK ||
	    sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL,
			 NULL) != SQLITE_OK)
		log_warn("store: compacting the index: %s",
			 sqlite3_errmsg(s->db));
}

/*
 * Runs a query and collects one element of elem bytes a row, filled by
 * fill; db_lock taken.  Caller frees *out.
 */
int index_list_rows(struct store *s, const char *sql, size_t elem,
		    void (*fill)(sqlite3_stmt *st, void *e), void **out,
		    size_t *n)
{
	size_t cnt = 0, cap = 0;
	char *v = NULL;
	sqlite3_stmt *st;
	int rc, r = 0;

	pthread_mutex_lock(&s->db_lock);
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = index_err(s->db, rc, sql);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = array_grow(&v, &cap, cnt, elem);
		if (r)
			break;
		memset(v + cnt * elem, 0, elem);
		fill(st, v + cnt++ * elem);
	}
	if (!r && rc != SQLITE_DONE)
		r = index_err(s->db, rc, sql);
	sqlite3_finalize(st);
out:
	pthread_mutex_unlock(&s->db_lock);
	if (r) {
		free(v);
		return r;
	}
	*out = v;
	*n = cnt;
	return 0;
}

int store_get_meta(struct store *s, const char *key, char *buf, size_t len)
{
	int r;

	pthread_mutex_lock(&s->db_lock);
	r = index_meta_get(s->db, key, buf, len);
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

/*
 * Under durability=process the index's commits are synced at checkpoints
 * only; the few that order themselves before changes of the backing (a
 * revert's record, an image size) are synced whatever the durability:
 * on sets db's synchronous to FULL for them, off puts it back.  db_lock
 * held.
 */
static void sync_commits(struct store *s, bool on)
{
	if (s->durability != DURABILITY_FULL)
		index_exec(s->db, on ? "PRAGMA synchronous=FULL"
				     : "PRAGMA synchronous=NORMAL");
}

int store_set_meta(struct store *s, const char *key, const char *value)
{
	int r;

	pthread_mutex_lock(&s->db_lock);
	sync_commits(s, true);
	r = index_meta_set(s->db, key, value);
	sync_commits(s, false);
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

/* Sets image_size and resize_from in one durable transaction; db_lock
 * held. */
static int set_size(struct store *s, uint64_t size, const char *from)
{
	int r;

	sync_commits(s, true);
	r = index_tx_begin(s->db);
	if (!r)
		r = index_meta_set_u64(s->db, "image_size", size);
	if (!r)
		r = index_meta_set(s->db, "resize_from", from);
	r = index_tx_end(s->db, r, "index.commit");
	sync_commits(s, false);
	return r;
}

int store_resize(struct store *s, uint64_t new_size)
{
	char from[32];
	int r;

	snprintf(from, sizeof(from), "%llu",
		 (unsigned long long)s->info.image_size);
	pthread_mutex_lock(&s->db_lock);
	r = set_size(s, new_size, from);
	pthread_mutex_unlock(&s->db_lock);
	if (!r)
		s->info.image_size = new_size;
	return r;
}

int store_resize_settle(struct store *s)
{
	char from[32] = "";
	int r;

	pthread_mutex_lock(&s->db_lock);
	r = index_meta_get(s->db, "resize_from", from, sizeof(from));
	if (r == -ENOENT || (!r && !from[0]))
		r = 0;
	else if (!r)
		r = set_size(s, s->info.image_size, "");
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

void store_add_event(struct store *s, const char *kind, const char *fmt, ...)
{
	char detail[224];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	log_warn("store: %s: %s", kind, detail);
	pthread_mutex_lock(&s->db_lock);
	if (!index_run(
		    s->db, "record event",
		    "INSERT INTO events(time_ns, kind, detail) VALUES(?, ?, ?)",
		    "itt", now_ns(), kind, detail))
		sqlite3_exec(s->db,
			     "DELETE FROM events WHERE id <= (SELECT max(id) "
			     "FROM events) - " STRINGIFY(EVENTS_KEPT),
			     NULL, NULL, NULL);
	pthread_mutex_unlock(&s->db_lock);
}

int store_list_events(struct store *s, size_t max, struct store_event **out,
		      size_t *n)
{
	struct store_event *v = calloc(max ? max : 1, sizeof(*v));
	sqlite3_stmt *st;
	size_t cnt = 0;
	int rc, r = 0;

	if (!v)
		return -ENOMEM;
	pthread_mutex_lock(&s->db_lock);
	rc = sqlite3_prepare_v2(s->db,
				"SELECT time_ns, kind, detail FROM (SELECT * "
				"FROM events ORDER BY id DESC LIMIT ?) ORDER "
				"BY id",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (int64_t)max);
		while (cnt < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			v[cnt].time_ns = sqlite3_column_int64(st, 0);
			snprintf(v[cnt].kind, sizeof(v[cnt].kind), "%s",
				 (const char *)sqlite3_column_text(st, 1));
			snprintf(v[cnt].detail, sizeof(v[cnt].detail), "%s",
				 (const char *)sqlite3_column_text(st, 2));
			cnt++;
		}
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = index_err(s->db, rc, "list events");
	pthread_mutex_unlock(&s->db_lock);
	if (r) {
		free(v);
		return r;
	}
	*out = v;
	*n = cnt;
	return 0;
}
