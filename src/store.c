// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * store.c - the diff store.
 *
 * Owns the store directory: `index.db` (SQLite, WAL) and `data` (preserved
 * chunks, one chunk_size slot each).  The index has four tables: meta (the
 * store's fixed parameters and its state), snapshots, chunks (one row per
 * preserved copy, keyed by chunk and by the snapshot that was newest when
 * it was made) and events.
 *
 * Crash ordering: a copy's bytes are written to a free slot first, then
 * its row is committed; a slot whose row never committed is free again at
 * the next open, because the slot map is rebuilt from the rows.  With
 * durability=full the data file is fdatasync'd before the commit and the
 * commit itself is synchronous (WAL, synchronous=FULL), so a committed row
 * always points at durable bytes.  A slot freed by a purge is reused only
 * after the purge committed.  durability=process keeps the order and
 * drops the syncs: a crash of the daemon loses nothing, a crash of the
 * machine may lose recent rows and bytes, never the index itself: it runs
 * synchronous=NORMAL, which under WAL syncs only at checkpoints and keeps
 * the database consistent through a power loss (OFF does not: SQLite
 * documents that it may corrupt the database then).
 *
 * Group commit: threads that commit at the same time queue their rows; the
 * first becomes the leader, takes everything queued, writes every row's
 * chunk into its slot (one pwritev per run of consecutive slots: one
 * writer for the data file, where sixteen threads writing their own
 * slots spent 40% of the CPU spinning on its inode lock), syncs once,
 * commits once, and wakes the others with the shared result.
 *
 * Locking: `db` (the write connection) is guarded by db_lock, `rdb` (reads
 * of the hot path) by rdb_lock, the slot map by slot_lock.  No lock is held
 * while another module's code runs.  SQLite's errors end here: they are
 * logged with sqlite3_errmsg() and returned as -EIO or -ENOSPC.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "snapfs/crc32c.h"
#include "snapfs/fault.h"
#include "snapfs/iolog.h"
#include "snapfs/log.h"
#include "snapfs/store.h"
#include "array.h"
#include "fullio.h"
#include "memfile.h"
#include "util_time.h"

#define STORE_FORMAT 1
#define EVENTS_KEPT 1000
#define STR_(x) #x
#define STRINGIFY(x) STR_(x)

struct commit_waiter {
	const struct chunk_row *rows;
	size_t n;
	uint64_t gen;
	const struct cbt_word *words;
	size_t nwords;
	int ret;
	bool done;
	struct commit_waiter *next;
};

struct store {
	char *dir;
	int dir_fd;
	int data_fd;
	int data_wfd; /* the group commit's: O_DIRECT where it pays */
	enum durability durability;
	struct store_info info;

	sqlite3 *db;
	pthread_mutex_t db_lock;
	sqlite3_stmt *ins_chunk;
	sqlite3_stmt *ins_word;

	sqlite3 *rdb;
	pthread_mutex_t rdb_lock;
	sqlite3_stmt *find_copy;

	pthread_mutex_t slot_lock;
	uint64_t *slot_used; /* bit per slot */
	uint64_t nslots; /* slots the map covers */
	uint64_t slot_hint; /* no free slot below this */
	uint64_t slots_in_use;
	uint64_t slots_reserved; /* promised to queued writes (cow.c) */
	uint64_t fs_room; /* without a limit: free bytes under the store at
			     the last look, less what was promised since */
	uint64_t limit_slots; /* with has_limit: diff_max in slots */
	bool has_limit;
	bool low_warned; /* the 90% warning was given */

	pthread_mutex_t gc_lock;
	pthread_cond_t gc_cond;
	struct commit_waiter *gc_head, **gc_tail;
	bool gc_leader;
};

static const char schema[] =
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
	"CREATE TABLE snapshots(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" uuid TEXT NOT NULL UNIQUE, created_ns INTEGER NOT NULL,"
	" generation INTEGER NOT NULL, size INTEGER NOT NULL,"
	" deleted INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE chunks(chunk_idx INTEGER NOT NULL, seq INTEGER NOT NULL,"
	" data_off INTEGER, crc INTEGER NOT NULL,"
	" PRIMARY KEY(chunk_idx, seq)) WITHOUT ROWID;"
	"CREATE INDEX chunks_by_seq ON chunks(seq);"
	"CREATE UNIQUE INDEX chunks_by_off ON chunks(data_off);"
	"CREATE TABLE events(id INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL,"
	" kind TEXT NOT NULL, detail TEXT NOT NULL);"
	"CREATE TABLE generations(gen INTEGER PRIMARY KEY,"
	" opened_ns INTEGER NOT NULL, closed_by TEXT NOT NULL DEFAULT '',"
	" reason TEXT NOT NULL, widened TEXT NOT NULL DEFAULT '',"
	" dropped INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE cbt(gen INTEGER NOT NULL, word INTEGER NOT NULL,"
	" bits INTEGER NOT NULL, PRIMARY KEY(gen, word)) WITHOUT ROWID;";

/* Maps an SQLite result to -errno, logging what SQLite said. */
static int db_err(sqlite3 *db, int rc, const char *what)
{
	log_error("store: %s: %s", what, sqlite3_errmsg(db));
	return rc == SQLITE_FULL ? -ENOSPC : -EIO;
}

static int db_exec(sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : db_err(db, rc, sql);
}

/* A fault point's answer as 0 or -errno (a torn transfer: -EIO). */
static int fault_errno(int r)
{
	return r > 0 ? -EIO : r;
}

/* Opens the one kind of transaction the store writes in: 0 or -errno. */
static int tx_begin(sqlite3 *db)
{
	return db_exec(db, "BEGIN IMMEDIATE");
}

/*
 * Ends the transaction tx_begin opened with the result r of its work:
 * when r is 0, passes fault point `point` (NULL: none) and commits;
 * otherwise, or when either fails, rolls back.  Returns the result.
 */
static int tx_end(sqlite3 *db, int r, const char *point)
{
	(void)point;
	if (!r && point)
		r = fault_errno(FAULT(point));
	if (!r)
		r = db_exec(db, "COMMIT");
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
static int db_run(sqlite3 *db, const char *what, const char *sql,
		  const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_err(db, rc, what);
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
	return rc == SQLITE_DONE ? 0 : db_err(db, rc, what);
}

/* Reads meta key as text into buf; -ENOENT when absent. */
static int meta_get(sqlite3 *db, const char *key, char *buf, size_t len)
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

static int meta_get_u64(sqlite3 *db, const char *key, uint64_t *out)
{
	char buf[64], *end;
	int r = meta_get(db, key, buf, sizeof(buf));

	if (r)
		return r;
	*out = strtoull(buf, &end, 10);
	return *end ? -EINVAL : 0;
}

static int meta_set(sqlite3 *db, const char *key, const char *value)
{
	return db_run(db, "write meta",
		      "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)",
		      "tt", key, value);
}

static int meta_set_u64(sqlite3 *db, const char *key, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return meta_set(db, key, buf);
}

/* Builds "DIR/name" into buf. */
static void path_in(const struct store *s, const char *name, char *buf,
		    size_t len)
{
	snprintf(buf, len, "%s/%s", s->dir, name);
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
static bool index_has_wal(const char *path)
{
	char wal[4200 + 8];
	struct stat st;

	snprintf(wal, sizeof(wal), "%s-wal", path);
	return stat(wal, &st) == 0 && st.st_size > 0;
}

/*
 * The one read-only open of an index: path through index_uri, with its
 * WAL when it has frames.  An SQLite result; *db is set even on failure
 * (NULL when out of memory) and the caller closes it.
 */
static int index_open_ro(const char *path, sqlite3 **db)
{
	char uri[3 * 4200 + 32];

	index_uri(uri, sizeof(uri), path, index_has_wal(path));
	return sqlite3_open_v2(uri, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI,
			       NULL);
}

/*
 * Whether a chunk row's data offset off names a whole chunk_size (cs)
 * slot inside a data file of data_size bytes: not negative, aligned, its
 * end within the file.  The open, the slot map and the check all judge a
 * row by this.
 */
static bool chunk_fits(int64_t off, uint64_t cs, uint64_t data_size)
{
	return off >= 0 && (uint64_t)off % cs == 0 &&
	       (uint64_t)off + cs <= data_size;
}

/*
 * Checks an existing store without writing to index.db or data: opens the
 * index read-only (index_uri: with its WAL when a crash left one),
 * compares its parameters with cfg and runs SQLite's quick check.
 */
static int store_validate(struct store *s, const struct store_config *cfg,
			  char *err, size_t err_len)
{
	char path[4096 + 32], buf[128];
	int64_t max_off = 0;
	bool has_rows = false;
	uint64_t v;
	sqlite3 *db = NULL;
	sqlite3_stmt *st;
	struct stat dst;
	int rc, r = -EINVAL;

	path_in(s, "index.db", path, sizeof(path));
	if (access(path, F_OK) < 0) {
		snprintf(err, err_len,
			 "store %s: not a snapfs store (no index.db) and not "
			 "empty",
			 s->dir);
		return -EINVAL;
	}
	rc = index_open_ro(path, &db);
	if (rc != SQLITE_OK) {
		snprintf(err, err_len, "store %s: index damaged: %s", s->dir,
			 db ? sqlite3_errmsg(db) : "cannot open");
		r = -EIO;
		goto out;
	}
	/* Damage first: a damaged index must not be judged by its rows. */
	rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		snprintf(buf, sizeof(buf), "%s",
			 rc == SQLITE_ROW
				 ? (const char *)sqlite3_column_text(st, 0)
				 : sqlite3_errmsg(db));
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_ROW || strcmp(buf, "ok")) {
		snprintf(err, err_len, "store %s: index damaged: %s", s->dir,
			 rc == SQLITE_OK ? "check failed" : buf);
		r = -EIO;
		goto out;
	}
	if (meta_get_u64(db, "format", &v)) {
		snprintf(err, err_len, "store %s: index damaged: %s", s->dir,
			 sqlite3_errmsg(db));
		r = -EIO;
		goto out;
	}
	if (v != STORE_FORMAT) {
		snprintf(err, err_len,
			 "store %s: format %llu, this snapfs reads %d", s->dir,
			 (unsigned long long)v, STORE_FORMAT);
		goto out;
	}
	if (meta_get(db, "backing_id", buf, sizeof(buf)) ||
	    strcmp(buf, cfg->backing_id)) {
		snprintf(err, err_len,
			 "store %s: belongs to another image (made for %s, "
			 "this one is %s)",
			 s->dir, buf, cfg->backing_id);
		goto out;
	}
	if (meta_get_u64(db, "image_size", &v) || v != cfg->image_size) {
		snprintf(err, err_len,
			 "store %s: the backing's size changed since the store "
			 "was made (%llu bytes then, %llu now)",
			 s->dir, (unsigned long long)v,
			 (unsigned long long)cfg->image_size);
		goto out;
	}
	if (meta_get_u64(db, "chunk_size", &v) ||
	    (cfg->chunk_size && v != cfg->chunk_size)) {
		snprintf(err, err_len,
			 "store %s: chunk_size is %llu, not %u (fixed when the "
			 "store was made)",
			 s->dir, (unsigned long long)v, cfg->chunk_size);
		goto out;
	}
	s->info.chunk_size = (uint32_t)v;
	if (meta_get_u64(db, "cbt_block_size", &v) ||
	    (cfg->cbt_block_size && v != cfg->cbt_block_size)) {
		snprintf(err, err_len,
			 "store %s: cbt_block_size is %llu, not %u (fixed when "
			 "the store was made)",
			 s->dir, (unsigned long long)v, cfg->cbt_block_size);
		goto out;
	}
	s->info.cbt_block_size = (uint32_t)v;
	rc = sqlite3_prepare_v2(db, "SELECT max(data_off) FROM chunks", -1, &st,
				NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL) {
		max_off = sqlite3_column_int64(st, 0);
		has_rows = true;
	}
	if (rc == SQLITE_OK)
		sqlite3_finalize(st);
	path_in(s, "data", path, sizeof(path));
	if (stat(path, &dst) < 0 || !S_ISREG(dst.st_mode) ||
	    (has_rows &&
	     !chunk_fits(max_off, s->info.chunk_size, (uint64_t)dst.st_size))) {
		snprintf(err, err_len,
			 "store %s: data file damaged (missing or shorter than "
			 "its index says)",
			 s->dir);
		r = -EIO;
		goto out;
	}
	r = 0;
out:
	sqlite3_close(db);
	return r;
}

#ifdef SNAPFS_FAULT_INJECTION
/*
 * The power-loss tests' SQLite VFS: the default one, with every write,
 * truncation and sync of the index and its WAL recorded in the iolog
 * (iolog.h), and the fault point index.checkpoint on every write into
 * index.db.  Registered as the default VFS only when SNAPFS_IOLOG is set
 * or SNAPFS_FAULT names that point.
 */
struct logged_file {
	sqlite3_file base;
	enum iolog_file id;
	sqlite3_file *real; /* allocated right after this struct */
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs logged_vfs;

#define REAL(f) (((struct logged_file *)(f))->real)

static int lf_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int lf_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int lf_write(sqlite3_file *f, const void *buf, int amt,
		    sqlite3_int64 off)
{
	int rc;

	/* Under WAL only a checkpoint writes the index itself: the point
	 * where a crash leaves index.db sound only with its WAL. */
	if (((struct logged_file *)f)->id == IOLOG_INDEX &&
	    FAULT("index.checkpoint"))
		return SQLITE_IOERR_WRITE;
	rc = REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);

	if (rc == SQLITE_OK)
		iolog_write(((struct logged_file *)f)->id, (uint64_t)off, buf,
			    (size_t)amt);
	return rc;
}

static int lf_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	int rc = REAL(f)->pMethods->xTruncate(REAL(f), size);

	if (rc == SQLITE_OK)
		iolog_truncate(((struct logged_file *)f)->id, (uint64_t)size);
	return rc;
}

static int lf_sync(sqlite3_file *f, int flags)
{
	iolog_sync(((struct logged_file *)f)->id);
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int lf_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int lf_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}

static int lf_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}

static int lf_check_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int lf_file_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int lf_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int lf_device_characteristics(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int lf_shm_map(sqlite3_file *f, int pg, int sz, int extend,
		      void volatile **p)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, p);
}

static int lf_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void lf_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int lf_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static const sqlite3_io_methods logged_methods = {
	.iVersion = 2,
	.xClose = lf_close,
	.xRead = lf_read,
	.xWrite = lf_write,
	.xTruncate = lf_truncate,
	.xSync = lf_sync,
	.xFileSize = lf_file_size,
	.xLock = lf_lock,
	.xUnlock = lf_unlock,
	.xCheckReservedLock = lf_check_reserved,
	.xFileControl = lf_file_control,
	.xSectorSize = lf_sector_size,
	.xDeviceCharacteristics = lf_device_characteristics,
	.xShmMap = lf_shm_map,
	.xShmLock = lf_shm_lock,
	.xShmBarrier = lf_shm_barrier,
	.xShmUnmap = lf_shm_unmap,
};

static bool ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);

	return a >= b && !strcmp(s + a - b, tail);
}

static int lf_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
		   int flags, int *out_flags)
{
	struct logged_file *l = (struct logged_file *)f;
	int rc;

	(void)vfs;
	l->real = (sqlite3_file *)(l + 1);
	rc = real_vfs->xOpen(real_vfs, name, l->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		l->base.pMethods = NULL;
		return rc;
	}
	l->id = !name			  ? IOLOG_OTHER
		: ends_with(name, "-wal") ? IOLOG_WAL
		: ends_with(name, ".db") || ends_with(name, ".db.new")
			? IOLOG_INDEX
			: IOLOG_OTHER;
	l->base.pMethods = &logged_methods;
	return SQLITE_OK;
}

static int lf_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	int rc = real_vfs->xDelete(real_vfs, name, sync_dir);

	(void)vfs;
	if (rc == SQLITE_OK && ends_with(name, "-wal"))
		iolog_truncate(IOLOG_WAL, 0);
	return rc;
}

static void logged_vfs_register(void)
{
	real_vfs = sqlite3_vfs_find(NULL);
	logged_vfs = *real_vfs;
	logged_vfs.zName = "snapfs-iolog";
	logged_vfs.szOsFile =
		(int)sizeof(struct logged_file) + real_vfs->szOsFile;
	logged_vfs.xOpen = lf_open;
	logged_vfs.xDelete = lf_delete;
	logged_vfs.pNext = NULL;
	sqlite3_vfs_register(&logged_vfs, 1);
}

static void store_iolog_setup(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	if (getenv("SNAPFS_IOLOG") || fault_armed("index.checkpoint"))
		pthread_once(&once, logged_vfs_register);
}
#else
static void store_iolog_setup(void)
{
}
#endif

/* Opens the write and read connections and prepares hot statements. */
static int store_connect(struct store *s, char *err, size_t err_len)
{
	char path[4096 + 32];
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
		    SQLITE_OPEN_NOFOLLOW;
	int rc, r;

	store_iolog_setup();
	path_in(s, "index.db", path, sizeof(path));
	rc = sqlite3_open_v2(path, &s->db, flags, NULL);
	if (rc != SQLITE_OK)
		goto err_db;
	sqlite3_busy_timeout(s->db, 10000);
	r = db_exec(s->db, "PRAGMA journal_mode=WAL");
	if (!r)
		r = db_exec(s->db, s->durability == DURABILITY_FULL
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

static int store_prepare(struct store *s)
{
	int rc;

	rc = sqlite3_prepare_v3(
		s->db,
		"INSERT INTO chunks(chunk_idx, seq, data_off, crc) "
		"VALUES(?, ?, ?, ?)",
		-1, SQLITE_PREPARE_PERSISTENT, &s->ins_chunk, NULL);
	if (rc != SQLITE_OK)
		return db_err(s->db, rc, "prepare insert");
	rc = sqlite3_prepare_v3(
		s->db,
		"INSERT INTO cbt(gen, word, bits) VALUES(?, ?, ?) ON "
		"CONFLICT(gen, word) DO UPDATE SET bits = bits | excluded.bits",
		-1, SQLITE_PREPARE_PERSISTENT, &s->ins_word, NULL);
	if (rc != SQLITE_OK)
		return db_err(s->db, rc, "prepare bitmap insert");
	rc = sqlite3_prepare_v3(
		s->rdb,
		"SELECT chunk_idx, min(seq), data_off, crc FROM chunks WHERE "
		"chunk_idx BETWEEN ?1 AND ?2 AND seq>=?3 GROUP BY chunk_idx",
		-1, SQLITE_PREPARE_PERSISTENT, &s->find_copy, NULL);
	if (rc != SQLITE_OK)
		return db_err(s->rdb, rc, "prepare lookup");
	return 0;
}

/* Writes a new store's schema and parameters through db. */
static int store_init_schema(struct store *s, sqlite3 *db,
			     const struct store_config *cfg)
{
	int r;

	s->info.chunk_size =
		cfg->chunk_size ? cfg->chunk_size : OPT_DEFAULT_CHUNK_SIZE;
	s->info.cbt_block_size = cfg->cbt_block_size
					 ? cfg->cbt_block_size
					 : OPT_DEFAULT_CBT_BLOCK_SIZE;
	r = tx_begin(db);
	if (r)
		return r;
	r = db_exec(db, schema);
	if (!r)
		r = meta_set_u64(db, "format", STORE_FORMAT);
	if (!r)
		r = meta_set(db, "backing_id", cfg->backing_id);
	if (!r)
		r = meta_set_u64(db, "image_size", cfg->image_size);
	if (!r)
		r = meta_set_u64(db, "chunk_size", s->info.chunk_size);
	if (!r)
		r = meta_set_u64(db, "cbt_block_size", s->info.cbt_block_size);
	if (!r)
		r = meta_set_u64(db, "generation", 1);
	if (!r)
		r = meta_set_u64(db, "clean", 1);
	if (!r)
		r = meta_set_u64(db, "created_ns", (uint64_t)now_ns());
	if (!r)
		r = db_run(db, "first generation",
			   "INSERT INTO generations(gen, opened_ns, reason) "
			   "VALUES(1, ?, 'first mount')",
			   "i", now_ns());
	return tx_end(db, r, NULL);
}

/* Names of a store whose creation was cut off (nothing else in it). */
static const char *const unfinished_names[] = { "index.db.new",
						"index.db.new-journal", "data",
						NULL };

/*
 * True when the store directory holds nothing, or only what an
 * interrupted creation leaves (no index.db yet), which is removed.
 */
static bool store_dir_fresh(struct store *s)
{
	int fd = dup(s->dir_fd);
	bool fresh = true, leftovers = false;
	struct dirent *e;
	DIR *d;

	if (fd < 0)
		return false;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	while ((e = readdir(d))) {
		bool known = false;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		for (int i = 0; unfinished_names[i]; i++)
			known |= !strcmp(e->d_name, unfinished_names[i]);
		if (!known) {
			fresh = false;
			break;
		}
		leftovers = true;
	}
	closedir(d);
	if (fresh && leftovers) {
		log_warn("store %s: finishing a creation that was cut off",
			 s->dir);
		for (int i = 0; unfinished_names[i]; i++)
			unlinkat(s->dir_fd, unfinished_names[i], 0);
	}
	return fresh;
}

/*
 * Creates a new store's files so that a crash at any moment leaves either
 * no store or a whole one: the index is built as index.db.new (committed,
 * synced) and renamed into place only after the data file exists, then
 * the directory is synced.
 */
static int store_create_files(struct store *s, const struct store_config *cfg,
			      char *err, size_t err_len)
{
	char tmp[4200], path[4200];
	sqlite3 *db = NULL;
	int fd, r;

	path_in(s, "index.db.new", tmp, sizeof(tmp));
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	store_iolog_setup();
	r = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK
		    ? store_init_schema(s, db, cfg)
		    : -EIO;
	sqlite3_close(db);
	if (r) {
		snprintf(err, err_len, "store %s: cannot create index", s->dir);
		return r;
	}
	path_in(s, "data", path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fsync(fd) < 0) {
		r = -errno;
		snprintf(err, err_len, "store %s: data file: %s", s->dir,
			 strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	close(fd);
	path_in(s, "index.db", path, sizeof(path));
	if (rename(tmp, path) < 0 || fsync(s->dir_fd) < 0) {
		r = -errno;
		snprintf(err, err_len, "store %s: %s", s->dir, strerror(-r));
		return r;
	}
	iolog_mark("store created");
	return 0;
}

/* Marks slot i used or free; slot_lock held. */
static int slot_set(struct store *s, uint64_t i, bool used)
{
	if (i >= s->nslots) {
		uint64_t n = s->nslots ? s->nslots : 1024;
		uint64_t *m;

		while (n <= i)
			n *= 2;
		m = realloc(s->slot_used, n / 8);
		if (!m)
			return -ENOMEM;
		memset(m + s->nslots / 64, 0, (n - s->nslots) / 8);
		s->slot_used = m;
		s->nslots = n;
	}
	if (used) {
		s->slot_used[i / 64] |= 1ull << (i % 64);
		s->slots_in_use++;
	} else {
		s->slot_used[i / 64] &= ~(1ull << (i % 64));
		s->slots_in_use--;
		if (s->low_warned && s->slots_in_use * 10 < s->limit_slots * 8)
			s->low_warned = false;
		if (i < s->slot_hint)
			s->slot_hint = i;
	}
	return 0;
}

/*
 * Rebuilds the slot map from the index: a slot is used iff a row names
 * it.  A row naming a place outside the data file, unaligned, or taken
 * by another row is damage: -EIO.
 */
static int store_load_slots(struct store *s)
{
	uint64_t cs = s->info.chunk_size;
	struct stat st;
	sqlite3_stmt *st_rows;
	int rc, r = 0;

	if (fstat(s->data_fd, &st) < 0)
		return -errno;
	rc = sqlite3_prepare_v2(
		s->db, "SELECT data_off FROM chunks WHERE data_off IS NOT NULL",
		-1, &st_rows, NULL);
	if (rc != SQLITE_OK)
		return db_err(s->db, rc, "prepare slot scan");
	while (!r && (rc = sqlite3_step(st_rows)) == SQLITE_ROW) {
		int64_t off = sqlite3_column_int64(st_rows, 0);
		uint64_t i = (uint64_t)off / cs;

		if (!chunk_fits(off, cs, (uint64_t)st.st_size) ||
		    (i < s->nslots && (s->slot_used[i / 64] >> (i % 64) & 1))) {
			log_error("store: a chunk row names data offset %lld, "
				  "outside the data file, unaligned or shared",
				  (long long)off);
			r = -EIO;
			break;
		}
		r = slot_set(s, i, true);
	}
	sqlite3_finalize(st_rows);
	if (!r && rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = db_err(s->db, rc, "slot scan");
	return r;
}

/* Creates the store directory when missing; *made says whether it did. */
/*
 * Every name a store directory may hold, and its type: the index and its
 * journals, the data file, the open generation's bits (cbt.c's cbt.map)
 * and the control socket (ctl.c's).
 */
static const struct {
	const char *name;
	mode_t type;
} store_names[] = {
	{ "index.db", S_IFREG },
	{ "index.db-wal", S_IFREG },
	{ "index.db-shm", S_IFREG },
	{ "index.db.new", S_IFREG },
	{ "index.db.new-journal", S_IFREG },
	{ "data", S_IFREG },
	{ "cbt.map", S_IFREG },
	{ "control", S_IFSOCK },
};

/*
 * Refuses a store directory that snapfs did not make itself: one owned by
 * another user or writable by group or others (someone else could plant
 * or swap its files), or one holding, where a store file belongs, a
 * symlink (a root daemon would write through it), a file of the wrong
 * type, another user's file, or a file with a second link.  Once the
 * directory is ours and closed to others, nobody else can change what is
 * in it, so these checks hold for the whole mount.
 */
static int store_trust(struct store *s, char *err, size_t err_len)
{
	uid_t me = geteuid();
	struct stat st;

	if (fstat(s->dir_fd, &st) < 0)
		goto err_errno;
	if (st.st_uid != me) {
		snprintf(err, err_len,
			 "store %s: owned by uid %u, not by this user (uid "
			 "%u): not a store snapfs made",
			 s->dir, (unsigned)st.st_uid, (unsigned)me);
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, err_len,
			 "store %s: writable by others (mode %04o): not a "
			 "store snapfs made",
			 s->dir, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	for (size_t i = 0; i < sizeof(store_names) / sizeof(store_names[0]);
	     i++) {
		const char *name = store_names[i].name, *why = NULL;

		if (fstatat(s->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			goto err_errno;
		}
		if (S_ISLNK(st.st_mode))
			why = "is a symbolic link";
		else if ((st.st_mode & S_IFMT) != store_names[i].type)
			why = store_names[i].type == S_IFSOCK
				      ? "is not a socket"
				      : "is not a regular file";
		else if (st.st_uid != me) {
			snprintf(err, err_len,
				 "store %s: %s is owned by uid %u: not a "
				 "store snapfs made",
				 s->dir, name, (unsigned)st.st_uid);
			return -EPERM;
		} else if (S_ISREG(st.st_mode) && st.st_nlink != 1)
			why = "has other links";
		if (why) {
			snprintf(err, err_len,
				 "store %s: %s %s: not a store snapfs made",
				 s->dir, name, why);
			return -EPERM;
		}
	}
	return 0;

err_errno:
	snprintf(err, err_len, "store %s: %s", s->dir, strerror(errno));
	return -errno;
}

static int store_open_dir(struct store *s, bool *made, char *err,
			  size_t err_len)
{
	struct stat st;
	int r;

	*made = false;
	if (lstat(s->dir, &st) == 0 && S_ISLNK(st.st_mode)) {
		snprintf(err, err_len,
			 "store %s: is a symbolic link: not a store snapfs "
			 "made (name the directory itself with store=)",
			 s->dir);
		return -EPERM;
	}
	if (stat(s->dir, &st) < 0) {
		if (errno != ENOENT) {
			r = -errno;
			snprintf(err, err_len, "store %s: %s", s->dir,
				 strerror(-r));
			return r;
		}
		if (mkdir(s->dir, 0700) < 0) {
			r = -errno;
			snprintf(err, err_len, "store %s: cannot create: %s",
				 s->dir, strerror(-r));
			return r;
		}
		*made = true;
	} else if (!S_ISDIR(st.st_mode)) {
		snprintf(err, err_len, "store %s: not a directory", s->dir);
		return -ENOTDIR;
	}
	s->dir_fd =
		open(s->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->dir_fd < 0) {
		r = -errno;
		snprintf(err, err_len, "store %s: %s", s->dir, strerror(-r));
		return r;
	}
	r = store_trust(s, err, err_len);
	if (r)
		return r;
	if (flock(s->dir_fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		snprintf(err, err_len, "store %s: %s", s->dir,
			 r == -EWOULDBLOCK ? "in use by another snapfs daemon"
					   : strerror(-r));
		return r;
	}
	return 0;
}

/* Removes what a failed first open made, so nothing is left behind. */
static void store_unmake(struct store *s)
{
	static const char *const names[] = { "index.db", "index.db-wal",
					     "index.db-shm", "data" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlinkat(s->dir_fd, names[i], 0);
}

/*
 * The descriptor the group commit writes copies through: the data file
 * opened again with O_DIRECT, so a preserved chunk is not copied into the
 * page cache on its way (it is written once and seldom read; on disk,
 * first touch 0.7-0.9 of a plain write against 0.2-0.3 through the page
 * cache, side by side).  Not for a file in memory (memfile.h), where
 * direct I/O is only emulated with the same copy, nor where the file
 * system refuses it: then fd.
 * Reads keep the buffered descriptor (any alignment); a direct write
 * drops the cached pages it overwrites, so they stay coherent.
 */
static int open_direct_writer(int fd, const char *path)
{
	int dfd;

	if (file_in_memory(fd))
		return fd;
	dfd = open(path, O_WRONLY | O_DIRECT | O_NOFOLLOW | O_CLOEXEC);
	return dfd >= 0 ? dfd : fd;
}

int store_open(struct store **out, const struct store_config *cfg, char *err,
	       size_t err_len)
{
	struct store *s = calloc(1, sizeof(*s));
	char path[4096 + 32];
	bool made_dir, fresh;
	uint64_t v;
	int r;

	if (!s)
		return -ENOMEM;
	s->dir_fd = s->data_fd = s->data_wfd = -1;
	s->durability = cfg->durability;
	s->gc_tail = &s->gc_head;
	pthread_mutex_init(&s->db_lock, NULL);
	pthread_mutex_init(&s->rdb_lock, NULL);
	pthread_mutex_init(&s->slot_lock, NULL);
	pthread_mutex_init(&s->gc_lock, NULL);
	pthread_cond_init(&s->gc_cond, NULL);
	s->dir = strdup(cfg->dir);
	if (!s->dir) {
		r = -ENOMEM;
		goto err_free;
	}
	r = store_open_dir(s, &made_dir, err, err_len);
	if (r)
		goto err_dir;
	fresh = made_dir || store_dir_fresh(s);
	if (fresh) {
		fchmod(s->dir_fd, 0700);
		r = store_create_files(s, cfg, err, err_len);
		if (r)
			goto err_made;
		s->info.created = true;
	} else {
		r = store_validate(s, cfg, err, err_len);
		if (r)
			goto err_dir;
	}
	path_in(s, "data", path, sizeof(path));
	s->data_fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (s->data_fd < 0) {
		r = -errno;
		snprintf(err, err_len, "store %s: data file: %s", s->dir,
			 strerror(-r));
		goto err_made;
	}
	s->data_wfd = open_direct_writer(s->data_fd, path);
	r = store_connect(s, err, err_len);
	if (r)
		goto err_made;
	r = store_prepare(s);
	if (r) {
		snprintf(err, err_len, "store %s: index damaged", s->dir);
		goto err_made;
	}
	s->info.image_size = cfg->image_size;
	if (meta_get_u64(s->db, "generation", &s->info.generation) ||
	    meta_get_u64(s->db, "clean", &v)) {
		snprintf(err, err_len, "store %s: index damaged (meta)",
			 s->dir);
		r = -EIO;
		goto err_made;
	}
	s->info.prev_clean = v != 0;
	r = store_load_slots(s);
	if (r) {
		snprintf(err, err_len,
			 "store %s: index damaged (a preserved chunk lies "
			 "outside "
			 "the data file)",
			 s->dir);
		goto err_made;
	}
	r = meta_set_u64(s->db, "clean", 0);
	if (r) {
		snprintf(err, err_len, "store %s: cannot write index", s->dir);
		goto err_made;
	}
	if (!s->info.prev_clean)
		store_add_event(s, "recovery",
				"the previous run did not shut down cleanly");
	*out = s;
	return 0;

err_made:
	if (fresh)
		store_unmake(s);
err_dir:
	store_close(s, false);
	if (made_dir)
		rmdir(cfg->dir);
	/* SQLite's reports span lines, damaged rows hold anything: the
	 * user gets one printable line. */
	for (char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return r;
err_free:
	free(s);
	return r;
}

void store_close(struct store *s, bool clean)
{
	if (!s)
		return;
	if (s->db && clean) {
		if (s->durability == DURABILITY_FULL && s->data_fd >= 0) {
			iolog_sync(IOLOG_DATA);
			fdatasync(s->data_fd);
		}
		if (meta_set_u64(s->db, "clean", 1))
			log_error("store: could not record a clean shutdown");
	}
	sqlite3_finalize(s->ins_chunk);
	sqlite3_finalize(s->ins_word);
	sqlite3_finalize(s->find_copy);
	sqlite3_close(s->rdb);
	sqlite3_close(s->db);
	if (s->data_wfd >= 0 && s->data_wfd != s->data_fd)
		close(s->data_wfd);
	if (s->data_fd >= 0)
		close(s->data_fd);
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	pthread_mutex_destroy(&s->db_lock);
	pthread_mutex_destroy(&s->rdb_lock);
	pthread_mutex_destroy(&s->slot_lock);
	pthread_mutex_destroy(&s->gc_lock);
	pthread_cond_destroy(&s->gc_cond);
	free(s->slot_used);
	free(s->dir);
	free(s);
}

const struct store_info *store_info(const struct store *s)
{
	return &s->info;
}

int store_data_fd(const struct store *s)
{
	return s->data_fd;
}

const char *store_dir(const struct store *s)
{
	return s->dir;
}

int store_dir_fd(const struct store *s)
{
	return s->dir_fd;
}

/* Free bytes of the file system under the store (0 if unknown). */
static uint64_t fs_free_bytes(const struct store *s)
{
	struct statvfs sv;

	if (fstatvfs(s->data_fd, &sv) < 0)
		return 0;
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/*
 * Without diff_max the limit is the file system's free space less
 * STORE_FS_MARGIN: the margin keeps room for the index to grow and, when
 * the store is full, to record the deletions that make room (a file
 * system filled to the last block fails those too).  Chunks are counted
 * down from the last look at the free space, which is taken again once
 * the count comes near the margin; a look does not see the slots promised
 * to queued writes (not written yet), so they are taken off what it
 * finds.  Takes bytes, or -ENOSPC; slot_lock held.
 */
#define STORE_FS_MARGIN (16ull << 20)

static int fs_take(struct store *s, uint64_t bytes)
{
	if (s->fs_room < bytes + STORE_FS_MARGIN) {
		uint64_t promised = s->slots_reserved * s->info.chunk_size;

		s->fs_room = fs_free_bytes(s);
		s->fs_room = s->fs_room > promised ? s->fs_room - promised : 0;
	}
	if (s->fs_room < bytes + STORE_FS_MARGIN)
		return -ENOSPC;
	s->fs_room -= bytes;
	return 0;
}

/* Takes a free slot, the first at or after the hint; reserved: one of the
 * caller's reservations, already counted against the limit.  slot_lock
 * held; *warn set when the store just crossed 90% of diff_max. */
static int slot_take(struct store *s, int64_t *data_off, bool reserved,
		     bool *warn)
{
	uint64_t i;
	int r;

	if (reserved && s->slots_reserved) {
		s->slots_reserved--;
	} else if (s->has_limit ? s->slots_in_use + s->slots_reserved + 1 >
					  s->limit_slots
				: fs_take(s, s->info.chunk_size) < 0) {
		return -ENOSPC;
	}
	for (i = s->slot_hint; i < s->nslots; i++) {
		if (s->slot_used[i / 64] == ~0ull) {
			i |= 63;
			continue;
		}
		if (!(s->slot_used[i / 64] & (1ull << (i % 64))))
			break;
	}
	r = slot_set(s, i, true);
	if (!r) {
		s->slot_hint = i + 1;
		*data_off = (int64_t)(i * s->info.chunk_size);
		if (s->has_limit && !s->low_warned &&
		    s->slots_in_use * 10 >= s->limit_slots * 9)
			*warn = s->low_warned = true;
	} else if (reserved) {
		s->slots_reserved++;
	}
	return r;
}

static void warn_low_space(struct store *s)
{
	uint64_t used, limit;

	pthread_mutex_lock(&s->slot_lock);
	used = s->slots_in_use;
	limit = s->limit_slots;
	pthread_mutex_unlock(&s->slot_lock);
	store_add_event(s, "low-space",
			"the diff store holds %llu of its %llu bytes "
			"(diff_max): 90%% used",
			(unsigned long long)(used * s->info.chunk_size),
			(unsigned long long)(limit * s->info.chunk_size));
}

int store_slot_alloc_run(struct store *s, int64_t *offs, size_t n,
			 uint64_t *reserved)
{
	bool warn = false;
	size_t i;
	int r = 0;

	for (i = 0; i < n; i++)
		offs[i] = -1;
	pthread_mutex_lock(&s->slot_lock);
	for (i = 0; i < n && !r; i++) {
		bool mine = *reserved > 0;

		r = slot_take(s, &offs[i], mine, &warn);
		if (!r && mine)
			--*reserved;
	}
	pthread_mutex_unlock(&s->slot_lock);
	if (warn)
		warn_low_space(s);
	return r;
}

int store_slot_alloc(struct store *s, int64_t *data_off)
{
	uint64_t none = 0;

	return store_slot_alloc_run(s, data_off, 1, &none);
}

int store_slot_reserve(struct store *s, uint64_t n)
{
	uint64_t need = n * s->info.chunk_size;
	int r = 0;

	pthread_mutex_lock(&s->slot_lock);
	if (s->has_limit) {
		if (s->slots_in_use + s->slots_reserved + n > s->limit_slots)
			r = -ENOSPC;
	} else {
		r = fs_take(s, need);
	}
	if (!r)
		s->slots_reserved += n;
	pthread_mutex_unlock(&s->slot_lock);
	return r;
}

void store_slot_unreserve(struct store *s, uint64_t n)
{
	pthread_mutex_lock(&s->slot_lock);
	s->slots_reserved -= n < s->slots_reserved ? n : s->slots_reserved;
	pthread_mutex_unlock(&s->slot_lock);
}

void store_set_limit(struct store *s, uint64_t diff_max)
{
	pthread_mutex_lock(&s->slot_lock);
	s->has_limit = diff_max != 0;
	s->limit_slots = diff_max / s->info.chunk_size;
	pthread_mutex_unlock(&s->slot_lock);
}

void store_slot_free(struct store *s, int64_t data_off)
{
	pthread_mutex_lock(&s->slot_lock);
	slot_set(s, (uint64_t)data_off / s->info.chunk_size, false);
	pthread_mutex_unlock(&s->slot_lock);
}

/* Returns freed slots to the map and their space to the file system. */
static void slots_release(struct store *s, const int64_t *offs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (fallocate(s->data_fd,
			      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      offs[i], s->info.chunk_size) < 0) {
			if (errno != EOPNOTSUPP)
				log_warn("store: punch slot at %lld: %s",
					 (long long)offs[i], strerror(errno));
		} else {
			iolog_zero(IOLOG_DATA, (uint64_t)offs[i],
				   s->info.chunk_size);
		}
		store_slot_free(s, offs[i]);
	}
}

/* ORs one bitmap word into generation gen's; db_lock held. */
static int insert_word(struct store *s, uint64_t gen, const struct cbt_word *w)
{
	int rc, r;

	sqlite3_bind_int64(s->ins_word, 1, (int64_t)gen);
	sqlite3_bind_int64(s->ins_word, 2, (int64_t)w->word);
	sqlite3_bind_int64(s->ins_word, 3, (int64_t)w->bits);
	rc = sqlite3_step(s->ins_word);
	r = rc == SQLITE_DONE ? 0 : db_err(s->db, rc, "insert bitmap word");
	sqlite3_reset(s->ins_word);
	return r;
}

static int cmp_row_off(const void *a, const void *b)
{
	const struct chunk_row *x = *(const struct chunk_row *const *)a;
	const struct chunk_row *y = *(const struct chunk_row *const *)b;

	return x->data_off < y->data_off ? -1 : x->data_off > y->data_off;
}

/*
 * Writes the chunks of a group's rows into their slots, in slot order,
 * consecutive slots with one pwritev.  A fault point "data.write" per row
 * (a torn one moves half the chunk and fails).  0 or -errno.
 */
static int write_batch_data(struct store *s, struct commit_waiter *batch)
{
	const size_t cs = s->info.chunk_size;
	struct chunk_row const **v = NULL;
	struct iovec iov[256];
	size_t n = 0, cap = 0, i, j;
	int r = 0;

	for (struct commit_waiter *w = batch; w; w = w->next)
		for (i = 0; i < w->n; i++)
			cap += w->rows[i].data && w->rows[i].data_off >= 0;
	if (!cap)
		return 0;
	v = malloc(cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (struct commit_waiter *w = batch; w; w = w->next)
		for (i = 0; i < w->n; i++)
			if (w->rows[i].data && w->rows[i].data_off >= 0)
				v[n++] = &w->rows[i];
	qsort(v, n, sizeof(*v), cmp_row_off);
	for (i = 0; i < n && !r; i++) {
		r = FAULT("data.write");
		if (r == FAULT_SHORT) {
			pwrite(s->data_fd, v[i]->data, cs / 2, v[i]->data_off);
			r = -EIO;
		}
	}
	for (i = 0; i < n && !r; i = j) {
		int k = 0;

		for (j = i; j < n && k < (int)(sizeof(iov) / sizeof(iov[0]));
		     j++, k++) {
			if (j > i &&
			    v[j]->data_off != v[j - 1]->data_off + (int64_t)cs)
				break;
			iov[k] = (struct iovec){ .iov_base = (void *)v[j]->data,
						 .iov_len = cs };
		}
		r = pwritev_full(s->data_wfd, iov, k, v[i]->data_off);
		if (r == -EINVAL && s->data_wfd != s->data_fd) {
			/* a device that wants bigger alignment: buffered */
			log_info("store: direct writes refused, buffered from "
				 "now on");
			close(s->data_wfd);
			s->data_wfd = s->data_fd;
			r = pwritev_full(s->data_wfd, iov, k, v[i]->data_off);
		}
		if (r)
			log_error("store: write %d chunks at data offset "
				  "%lld: %s",
				  k, (long long)v[i]->data_off, strerror(-r));
		for (size_t m = i; m < j && !r; m++)
			iolog_write(IOLOG_DATA, (uint64_t)v[m]->data_off,
				    v[m]->data, cs);
	}
	free(v);
	return r == -ENOSPC ? r : r ? -EIO : 0;
}

/* Inserts and commits a group of waiters' rows; db_lock held. */
static int commit_batch(struct store *s, struct commit_waiter *batch)
{
	int rc, r;

	bool has_rows = false;

	for (struct commit_waiter *w = batch; w; w = w->next)
		has_rows |= w->n > 0;
	r = write_batch_data(s, batch);
	if (r)
		return r;
	/* The data file holds new bytes only when rows come with them. */
	r = has_rows ? fault_errno(FAULT("data.sync")) : 0;
	if (r)
		return r;
	if (s->durability == DURABILITY_FULL && has_rows)
		iolog_sync(IOLOG_DATA);
	if (s->durability == DURABILITY_FULL && has_rows &&
	    fdatasync(s->data_fd) < 0) {
		r = -errno;
		log_error("store: sync data file: %s", strerror(-r));
		return r == -ENOSPC ? r : -EIO;
	}
	r = tx_begin(s->db);
	if (r)
		return r;
	for (struct commit_waiter *w = batch; w && !r; w = w->next) {
		for (size_t i = 0; i < w->n && !r; i++) {
			const struct chunk_row *row = &w->rows[i];

			sqlite3_bind_int64(s->ins_chunk, 1,
					   (int64_t)row->chunk_idx);
			sqlite3_bind_int64(s->ins_chunk, 2, row->seq);
			if (row->data_off < 0)
				sqlite3_bind_null(s->ins_chunk, 3);
			else
				sqlite3_bind_int64(s->ins_chunk, 3,
						   row->data_off);
			sqlite3_bind_int64(s->ins_chunk, 4, row->crc);
			rc = sqlite3_step(s->ins_chunk);
			if (rc != SQLITE_DONE)
				r = db_err(s->db, rc, "insert chunk");
			sqlite3_reset(s->ins_chunk);
		}
		for (size_t i = 0; i < w->nwords && !r; i++)
			r = insert_word(s, w->gen, &w->words[i]);
	}
	return tx_end(s->db, r, "index.commit");
}

int store_commit_chunks(struct store *s, const struct chunk_row *rows, size_t n)
{
	return store_commit(s, rows, n, 0, NULL, 0);
}

int store_commit(struct store *s, const struct chunk_row *rows, size_t n,
		 uint64_t gen, const struct cbt_word *words, size_t nwords)
{
	struct commit_waiter me = { .rows = rows,
				    .n = n,
				    .gen = gen,
				    .words = words,
				    .nwords = nwords };

	pthread_mutex_lock(&s->gc_lock);
	*s->gc_tail = &me;
	s->gc_tail = &me.next;
	while (!me.done) {
		struct commit_waiter *batch;
		int r;

		if (s->gc_leader) {
			pthread_cond_wait(&s->gc_cond, &s->gc_lock);
			continue;
		}
		s->gc_leader = true;
		batch = s->gc_head;
		s->gc_head = NULL;
		s->gc_tail = &s->gc_head;
		pthread_mutex_unlock(&s->gc_lock);

		pthread_mutex_lock(&s->db_lock);
		r = commit_batch(s, batch);
		pthread_mutex_unlock(&s->db_lock);

		pthread_mutex_lock(&s->gc_lock);
		while (batch) {
			struct commit_waiter *next = batch->next;

			batch->ret = r;
			batch->done = true;
			batch = next;
		}
		s->gc_leader = false;
		pthread_cond_broadcast(&s->gc_cond);
	}
	pthread_mutex_unlock(&s->gc_lock);
	return me.ret;
}

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
		r = db_err(s->rdb, rc, "find copies");
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
		r = db_err(s->db, rc, "prepare chunk scan");
		goto out;
	}
	while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW)
		r = fn(arg, (uint64_t)sqlite3_column_int64(st, 0),
		       sqlite3_column_int64(st, 1));
	if (!r && rc != SQLITE_DONE)
		r = db_err(s->db, rc, "chunk scan");
	sqlite3_finalize(st);
out:
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

/*
 * Runs a query and collects one element of elem bytes a row, filled by
 * fill; db_lock taken.  Caller frees *out.
 */
static int list_rows(struct store *s, const char *sql, size_t elem,
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
		r = db_err(s->db, rc, sql);
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
		r = db_err(s->db, rc, sql);
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

static void fill_snapshot(sqlite3_stmt *st, void *elem)
{
	struct store_snapshot *e = elem;

	e->seq = sqlite3_column_int64(st, 0);
	snprintf(e->uuid, sizeof(e->uuid), "%s",
		 (const char *)sqlite3_column_text(st, 1));
	e->created_ns = sqlite3_column_int64(st, 2);
	e->generation = (uint64_t)sqlite3_column_int64(st, 3);
	e->size = (uint64_t)sqlite3_column_int64(st, 4);
	e->deleted = sqlite3_column_int(st, 5) != 0;
}

int store_list_snapshots(struct store *s, struct store_snapshot **out,
			 size_t *n)
{
	return list_rows(s,
			 "SELECT seq, uuid, created_ns, generation, size, "
			 "deleted FROM snapshots ORDER BY seq",
			 sizeof(**out), fill_snapshot, (void **)out, n);
}

int store_add_snapshot(struct store *s, struct store_snapshot *snap)
{
	int64_t gen = (int64_t)s->info.generation;
	int r;

	pthread_mutex_lock(&s->db_lock);
	r = tx_begin(s->db);
	if (r)
		goto out;
	r = db_run(s->db, "insert snapshot",
		   "INSERT INTO snapshots(uuid, created_ns, generation, size) "
		   "VALUES(?, ?, ?, ?)",
		   "tiii", snap->uuid, snap->created_ns, gen,
		   (int64_t)snap->size);
	if (!r) {
		snap->seq = sqlite3_last_insert_rowid(s->db);
		snap->generation = (uint64_t)gen;
		r = meta_set_u64(s->db, "generation", (uint64_t)gen + 1);
	}
	if (!r)
		r = db_run(s->db, "close generation",
			   "UPDATE generations SET closed_by=? WHERE gen=?",
			   "ti", snap->uuid, gen);
	if (!r)
		r = db_run(s->db, "open generation",
			   "INSERT INTO generations(gen, opened_ns, reason) "
			   "VALUES(?, ?, 'snapshot')",
			   "ii", gen + 1, snap->created_ns);
	r = tx_end(s->db, r, "index.snapshot");
	if (!r)
		s->info.generation++;
out:
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

int store_mark_deleted(struct store *s, int64_t seq)
{
	int r;

	pthread_mutex_lock(&s->db_lock);
	r = db_run(s->db, "mark snapshot deleted",
		   "UPDATE snapshots SET deleted=1 WHERE seq=?", "i", seq);
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
	r = tx_begin(s->db);
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
		r = db_err(s->db, rc, "prepare purge");
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
			r = db_err(s->db, rc, "purge lookup");
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
			r = db_err(s->db, rc, "purge delete");
	}
	if (!r && rc != SQLITE_DONE)
		r = db_err(s->db, rc, "purge scan");
	if (!r)
		r = db_run(s->db, "delete snapshot",
			   "DELETE FROM snapshots WHERE seq=?", "i", seq);
end:
	r = tx_end(s->db, r, "index.purge");
	if (r)
		freed.n = 0;
out:
	sqlite3_finalize(cand);
	sqlite3_finalize(prev);
	sqlite3_finalize(del);
	pthread_mutex_unlock(&s->db_lock);
	slots_release(s, freed.v, freed.n);
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
		r = db_err(s->db, rc, "prepare diff bytes");
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
		r = db_err(s->db, rc, "diff bytes");
	sqlite3_finalize(st);
out:
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

uint64_t store_bytes_used(struct store *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->slot_lock);
	n = s->slots_in_use * s->info.chunk_size;
	pthread_mutex_unlock(&s->slot_lock);
	return n;
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
	if (!db_run(s->db, "record event",
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
		r = db_err(s->db, rc, "list events");
	pthread_mutex_unlock(&s->db_lock);
	if (r) {
		free(v);
		return r;
	}
	*out = v;
	*n = cnt;
	return 0;
}

int store_for_each_cbt_word(struct store *s, uint64_t gen,
			    int (*fn)(void *arg, uint64_t word, uint64_t bits),
			    void *arg)
{
	sqlite3_stmt *st;
	int rc, r = 0;

	pthread_mutex_lock(&s->rdb_lock);
	rc = sqlite3_prepare_v2(s->rdb,
				"SELECT word, bits FROM cbt WHERE gen=? ORDER "
				"BY word",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = db_err(s->rdb, rc, "prepare bitmap scan");
		goto out;
	}
	sqlite3_bind_int64(st, 1, (int64_t)gen);
	while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW)
		r = fn(arg, (uint64_t)sqlite3_column_int64(st, 0),
		       (uint64_t)sqlite3_column_int64(st, 1));
	if (!r && rc != SQLITE_DONE)
		r = db_err(s->rdb, rc, "bitmap scan");
	sqlite3_finalize(st);
out:
	pthread_mutex_unlock(&s->rdb_lock);
	return r;
}

static void fill_generation(sqlite3_stmt *st, void *elem)
{
	struct store_generation *g = elem;

	g->gen = (uint64_t)sqlite3_column_int64(st, 0);
	g->opened_ns = sqlite3_column_int64(st, 1);
	snprintf(g->closed_by, sizeof(g->closed_by), "%s",
		 (const char *)sqlite3_column_text(st, 2));
	snprintf(g->reason, sizeof(g->reason), "%s",
		 (const char *)sqlite3_column_text(st, 3));
	snprintf(g->widened, sizeof(g->widened), "%s",
		 (const char *)sqlite3_column_text(st, 4));
	g->dropped = sqlite3_column_int(st, 5) != 0;
}

int store_list_generations(struct store *s, struct store_generation **out,
			   size_t *n)
{
	return list_rows(s,
			 "SELECT gen, opened_ns, closed_by, reason, widened, "
			 "dropped FROM generations ORDER BY gen",
			 sizeof(**out), fill_generation, (void **)out, n);
}

int store_widen_generation(struct store *s, uint64_t gen, const char *reason)
{
	int r;

	pthread_mutex_lock(&s->db_lock);
	r = db_run(s->db, "widen generation",
		   "UPDATE generations SET widened=? WHERE gen=?", "ti", reason,
		   (int64_t)gen);
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

int store_drop_generation(struct store *s, uint64_t gen)
{
	int r;

	if (gen >= s->info.generation)
		return -EBUSY;
	pthread_mutex_lock(&s->db_lock);
	r = tx_begin(s->db);
	if (!r)
		r = db_run(s->db, "drop bitmap", "DELETE FROM cbt WHERE gen=?",
			   "i", (int64_t)gen);
	if (!r)
		r = db_run(s->db, "drop generation",
			   "UPDATE generations SET dropped=1 WHERE gen=?", "i",
			   (int64_t)gen);
	r = tx_end(s->db, r, NULL);
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

int store_replace_cbt_words(struct store *s, uint64_t gen,
			    const uint64_t *ranges, size_t nranges,
			    const struct cbt_word *words, size_t nwords)
{
	sqlite3_stmt *del = NULL;
	int rc, r;

	pthread_mutex_lock(&s->db_lock);
	r = tx_begin(s->db);
	if (!r) {
		rc = sqlite3_prepare_v2(s->db,
					"DELETE FROM cbt WHERE gen=?1 AND "
					"word BETWEEN ?2 AND ?3",
					-1, &del, NULL);
		if (rc != SQLITE_OK)
			r = db_err(s->db, rc, "prepare bitmap replace");
	}
	for (size_t i = 0; i < nranges && !r; i++) {
		sqlite3_bind_int64(del, 1, (int64_t)gen);
		sqlite3_bind_int64(del, 2, (int64_t)ranges[2 * i]);
		sqlite3_bind_int64(del, 3, (int64_t)ranges[2 * i + 1]);
		rc = sqlite3_step(del);
		if (rc != SQLITE_DONE)
			r = db_err(s->db, rc, "delete bitmap words");
		sqlite3_reset(del);
	}
	for (size_t i = 0; i < nwords && !r; i++)
		if (words[i].bits)
			r = insert_word(s, gen, &words[i]);
	r = tx_end(s->db, r, "index.commit");
	sqlite3_finalize(del);
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

int store_get_meta(struct store *s, const char *key, char *buf, size_t len)
{
	int r;

	pthread_mutex_lock(&s->db_lock);
	r = meta_get(s->db, key, buf, len);
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

int store_set_meta(struct store *s, const char *key, const char *value)
{
	int r;

	pthread_mutex_lock(&s->db_lock);
	r = meta_set(s->db, key, value);
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

int store_get_generation(struct store *s, uint64_t gen,
			 struct store_generation *out)
{
	struct store_generation *v;
	size_t n;
	int r = store_list_generations(s, &v, &n);

	if (r)
		return r;
	r = -ENOENT;
	for (size_t i = 0; i < n; i++)
		if (v[i].gen == gen && !v[i].dropped) {
			*out = v[i];
			r = 0;
		}
	free(v);
	return r;
}

/* Prints one problem of a check. */
static void problem(FILE *report, unsigned *count, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void problem(FILE *report, unsigned *count, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("problem: ", report);
	vfprintf(report, fmt, ap);
	fputc('\n', report);
	va_end(ap);
	(*count)++;
}

/* Checks every chunk row against the data file. */
static void check_chunks(sqlite3 *db, int data_fd, uint64_t data_size,
			 uint64_t cs, uint64_t image_size, FILE *report,
			 unsigned *bad, uint64_t *nrows)
{
	unsigned char *buf = malloc(cs), *zeros = calloc(1, cs);
	uint32_t zero_crc;
	int64_t prev_off = -1;
	sqlite3_stmt *st;
	int rc;

	if (!buf || !zeros) {
		problem(report, bad, "out of memory");
		goto out;
	}
	zero_crc = crc32c(zeros, cs);
	rc = sqlite3_prepare_v2(db,
				"SELECT chunk_idx, seq, data_off, crc FROM "
				"chunks ORDER BY data_off",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		problem(report, bad, "cannot read the chunk index: %s",
			sqlite3_errmsg(db));
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t c = (uint64_t)sqlite3_column_int64(st, 0);
		long long seq = sqlite3_column_int64(st, 1);
		uint32_t crc = (uint32_t)sqlite3_column_int64(st, 3);
		int64_t off;

		(*nrows)++;
		if (c * cs >= image_size)
			problem(report, bad,
				"chunk %llu (seq %lld) lies past "
				"the image's end",
				(unsigned long long)c, seq);
		if (sqlite3_column_type(st, 2) == SQLITE_NULL) {
			if (crc != zero_crc)
				problem(report, bad,
					"zero chunk %llu (seq %lld) has a "
					"wrong checksum",
					(unsigned long long)c, seq);
			continue;
		}
		off = sqlite3_column_int64(st, 2);
		if (!chunk_fits(off, cs, data_size)) {
			problem(report, bad,
				"chunk %llu (seq %lld) points at data offset "
				"%lld, outside the data file or unaligned",
				(unsigned long long)c, seq, (long long)off);
			continue;
		}
		if (off == prev_off)
			problem(report, bad,
				"chunk %llu (seq %lld) shares data offset %lld "
				"with another entry",
				(unsigned long long)c, seq, (long long)off);
		prev_off = off;
		if (pread(data_fd, buf, cs, off) != (ssize_t)cs)
			problem(report, bad,
				"chunk %llu (seq %lld): cannot read data "
				"offset %lld",
				(unsigned long long)c, seq, (long long)off);
		else if (crc32c(buf, cs) != crc)
			problem(report, bad,
				"chunk %llu (seq %lld) at data offset %lld "
				"fails its checksum",
				(unsigned long long)c, seq, (long long)off);
	}
	if (rc != SQLITE_DONE)
		problem(report, bad, "chunk index unreadable: %s",
			sqlite3_errmsg(db));
	sqlite3_finalize(st);
out:
	free(buf);
	free(zeros);
}

/* Copies one file; 0 or -1 with errno. */
static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, r = -1;
	ssize_t n;

	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		goto done;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			goto done;
	r = n < 0 ? -1 : 0;
done:
	if (out >= 0)
		close(out);
	close(in);
	return r;
}

/* Copies the index and its WAL of store dir into a new temporary
 * directory, named in tmpdir. */
static int copy_index(const char *dir, char *tmpdir, size_t len)
{
	char from[4200], to[4200];

	snprintf(tmpdir, len, "/tmp/snapfs-check-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		tmpdir[0] = '\0';
		return -1;
	}
	snprintf(from, sizeof(from), "%s/index.db", dir);
	snprintf(to, sizeof(to), "%s/index.db", tmpdir);
	if (copy_file(from, to) < 0)
		return -1;
	snprintf(from, sizeof(from), "%s/index.db-wal", dir);
	snprintf(to, sizeof(to), "%s/index.db-wal", tmpdir);
	return copy_file(from, to);
}

int store_check(const char *dir, FILE *report, char *why, size_t why_len)
{
	char path[4200], tmpdir[64] = "";
	uint64_t cs = 0, image_size = 0, nrows = 0;
	unsigned bad = 0;
	sqlite3 *db = NULL;
	sqlite3_stmt *st;
	struct stat dst;
	int dfd, data_fd = -1, rc;
	bool wal;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		snprintf(why, why_len, "store %s: cannot be checked: %s", dir,
			 strerror(-rc));
		return rc;
	}
	if (flock(dfd, LOCK_SH | LOCK_NB) < 0) {
		snprintf(why, why_len,
			 "store %s: cannot be checked: in use by a running "
			 "snapfs daemon: unmount it first",
			 dir);
		close(dfd);
		return -EBUSY;
	}
	snprintf(path, sizeof(path), "%s/index.db", dir);
	wal = index_has_wal(path);
	if (access(path, F_OK) < 0) {
		snprintf(why, why_len,
			 "store %s: cannot be checked: not a snapfs store (no "
			 "index.db)",
			 dir);
		close(dfd);
		return -ENOENT;
	}
	/* A clean store is read without any lock or journal file.  One left
	 * by a crash still has a WAL with frames, read together with the
	 * index (index_open_ro), and SQLite writes a -shm even to read it:
	 * its index is checked on a private copy, so the store itself is
	 * never written. */
	if (wal && copy_index(dir, tmpdir, sizeof(tmpdir)) < 0) {
		problem(report, &bad, "cannot copy the index to check it: %s",
			strerror(errno));
		goto out;
	}
	if (wal)
		snprintf(path, sizeof(path), "%s/index.db", tmpdir);
	rc = index_open_ro(path, &db);
	if (rc != SQLITE_OK) {
		problem(report, &bad, "index cannot be opened: %s",
			db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		problem(report, &bad, "index damaged: %s", sqlite3_errmsg(db));
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(st, 0);

		if (strcmp(line, "ok"))
			problem(report, &bad, "index: %s", line);
	}
	if (rc != SQLITE_DONE)
		problem(report, &bad, "index damaged: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	if (bad)
		goto out;
	if (meta_get_u64(db, "chunk_size", &cs) || !options_unit_valid(cs) ||
	    meta_get_u64(db, "image_size", &image_size) || !image_size) {
		problem(report, &bad,
			"index meta damaged (chunk_size %llu, "
			"image_size %llu)",
			(unsigned long long)cs, (unsigned long long)image_size);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/data", dir);
	data_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (data_fd < 0 || fstat(data_fd, &dst) < 0) {
		problem(report, &bad, "data file: %s", strerror(errno));
		goto out;
	}
	check_chunks(db, data_fd, (uint64_t)dst.st_size, cs, image_size, report,
		     &bad, &nrows);
out:
	if (!bad)
		fprintf(report,
			"store %s: ok (%llu preserved chunks checked, chunk "
			"size %llu)\n",
			dir, (unsigned long long)nrows, (unsigned long long)cs);
	else {
		fprintf(report, "store %s: %u problem%s\n", dir, bad,
			bad == 1 ? "" : "s");
		snprintf(why, why_len,
			 "store %s: damaged (%u problem%s, listed on stdout)",
			 dir, bad, bad == 1 ? "" : "s");
	}
	sqlite3_close(db);
	if (tmpdir[0]) {
		static const char *const names[] = { "index.db", "index.db-wal",
						     "index.db-shm" };

		for (size_t i = 0; i < 3; i++) {
			snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
			unlink(path);
		}
		rmdir(tmpdir);
	}
	if (data_fd >= 0)
		close(data_fd);
	close(dfd);
	return bad ? -EIO : 0;
}
