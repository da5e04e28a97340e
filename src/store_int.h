/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * store_int.h - the diff store's insides, shared by its files and by no
 * other module (they use include/snapfs/store.h):
 *
 *   store.c         the module's note; open, validation, close
 *   store_dir.c     the directory: its names, trust checks, creation
 *   store_index.c   SQLite glue: errors, transactions, meta, events
 *   store_slots.c   the slot map, reservations, free space, the limit
 *   store_commit.c  the group commit and its write ordering
 *   store_runs.c    runs: how copies are rows (classes, checksums)
 *   store_chunks.c  copy lookup, the purge rule, diff bytes
 *   store_cache.c   copy lookups' answers kept, per window of chunks
 *   store_migrate.c older formats brought to this one at open
 *   store_rows.c    snapshot and generation rows, bitmap words
 *   store_check.c   the offline check
 *   store_vfs.c     the index's SQLite VFS (and the power-loss tests')
 *
 * Every function here is called with the locks its comment names; the
 * lock that guards each field of struct store is named beside it.
 */
#ifndef SNAPFS_STORE_INT_H
#define SNAPFS_STORE_INT_H

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "snapfs/store.h"
#include "array.h"

/* The index's format: 1 had a row per copied chunk, 2 a row per run of
 * them (store_runs.c), 3 adds bookmarks (a column of snapshots).  A store
 * of an older format is migrated at open; a newer one is refused. */
#define STORE_FORMAT 3
/* Room for a store file's path: the directory and a name. */
#define STORE_PATH_MAX 4200

struct commit_waiter; /* store_commit.c */

/* store_cache.c: what copy lookups found, per snapshot and window of
 * CACHE_WINDOW chunks, in CACHE_BYTES at most (its note). */
#define CACHE_WINDOW 64
#define CACHE_WAYS 4
#define CACHE_MISSED 8
#define CACHE_BYTES (8u << 20)

struct cache_set;

struct copy_cache {
	struct cache_set *sets; /* mask + 1, each under its own lock */
	size_t mask;
	uint32_t cs; /* chunk_size */
};

/* One stage of the group commit: its queue, all under lock. */
struct commit_group {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct commit_waiter *head, **tail;
	bool leader;
};

struct store {
	/* Fixed at open. */
	char *dir;
	int dir_fd;
	int data_fd;
	enum durability durability;
	/* Fixed at open, but info.generation: written under db_lock by
	 * store_add_snapshot. */
	struct store_info info;
	uint64_t format; /* the index's format found at open */
	uint32_t zero_crc; /* crc32c of a chunk of zeros */

	/* The data stage's leader's (store_commit.c): O_DIRECT where it
	 * pays, data_fd once the device refuses direct writes. */
	int data_wfd;

	pthread_mutex_t db_lock;
	sqlite3 *db; /* db_lock: the write connection */
	sqlite3_stmt *ins_run; /* db_lock */
	sqlite3_stmt *find_runs_w; /* db_lock: runs overlapping a range */
	sqlite3_stmt *ins_word; /* db_lock */

	pthread_mutex_t rdb_lock;
	sqlite3 *rdb; /* rdb_lock: reads of the hot path */
	sqlite3_stmt *find_runs; /* rdb_lock: runs overlapping a range */
	struct copy_cache cache; /* what find_runs found (its own locks) */

	/* The slot map and space accounting, all under slot_lock. */
	pthread_mutex_t slot_lock;
	uint64_t *slot_used; /* bit per slot */
	uint64_t nslots; /* slots the map covers */
	uint64_t slot_hint; /* no free slot below this */
	uint64_t slots_in_use;
	uint64_t slots_reserved; /* reserved for queued writes (cow.c) */
	uint64_t fs_room; /* without a limit: free bytes under the store at
			     the last look, less what was reserved since */
	uint64_t limit_slots; /* with has_limit: diff_max in slots */
	bool has_limit;
	bool low_warned; /* the 90% warning was given */

	/* The group commit's two stages (store_commit.c): the copies'
	 * bytes written and synced, then the rows committed. */
	struct commit_group gc_data;
	struct commit_group gc_index;
};

/* Builds "DIR/name" into buf. */
static inline void path_in(const struct store *s, const char *name, char *buf,
			   size_t len)
{
	snprintf(buf, len, "%s/%s", s->dir, name);
}

/* A fault point's answer as 0 or -errno (a torn transfer: -EIO). */
static inline int fault_errno(int r)
{
	return r > 0 ? -EIO : r;
}

/*
 * Whether a chunk row's data offset off names a whole chunk_size (cs)
 * slot inside a data file of data_size bytes: not negative, aligned, its
 * end within the file.  The open, the slot map and the check all judge a
 * row by this.
 */
static inline bool chunk_fits(int64_t off, uint64_t cs, uint64_t data_size)
{
	return off >= 0 && (uint64_t)off % cs == 0 &&
	       (uint64_t)off + cs <= data_size;
}

/* store_dir.c: before the index is open, no lock (one thread opens). */
int store_open_dir(struct store *s, bool *made, char *err, size_t err_len);
bool store_dir_fresh(struct store *s);
int store_create_files(struct store *s, const struct store_config *cfg,
		       char *err, size_t err_len);
void store_unmake(struct store *s);

/* store_index.c.  Functions taking a connection are called with its lock
 * held (db_lock for s->db), or on a connection of their own. */
int index_err(sqlite3 *db, int rc, const char *what);
int index_exec(sqlite3 *db, const char *sql);
int index_tx_begin(sqlite3 *db);
int index_tx_end(sqlite3 *db, int r, const char *point);
int index_run(sqlite3 *db, const char *what, const char *sql, const char *types,
	      ...);
int index_meta_get(sqlite3 *db, const char *key, char *buf, size_t len);
int index_meta_get_u64(sqlite3 *db, const char *key, uint64_t *out);
int index_meta_set(sqlite3 *db, const char *key, const char *value);
int index_meta_set_u64(sqlite3 *db, const char *key, uint64_t v);
bool index_has_wal(const char *path);
int index_open_ro(const char *path, sqlite3 **db);
extern const char index_runs_schema[];
int store_connect(struct store *s, char *err, size_t err_len);
int store_prepare(struct store *s);
int store_init_schema(struct store *s, sqlite3 *db,
		      const struct store_config *cfg);
void store_compact(struct store *s);
int index_list_rows(struct store *s, const char *sql, size_t elem,
		    void (*fill)(sqlite3_stmt *st, void *e), void **out,
		    size_t *n);

/* store_vfs.c: before an index is opened. */
void store_vfs_setup(void);

/* store_commit.c */
void commit_group_init(struct commit_group *g);
void commit_group_destroy(struct commit_group *g);

/* store_slots.c */
int store_load_slots(struct store *s);
void store_slots_release(struct store *s, int64_t *offs, size_t n);

/* store_runs.c: runs of copies, as rows (the note there).  Caller holds
 * the lock of the connection named. */
/* Chunks in one run at most: its checksums (512 bytes) and the rest of
 * the row stay within what SQLite keeps in a 4 KiB page of an index
 * b-tree (about 1000 bytes), where 256 of them (1 KiB) spilled each row
 * to an overflow page of its own: 8 MB of index for 2 GiB of copies. */
#define RUN_MAX 128
#define RUN_CLASSES 5 /* runs of 1, 2..4, 5..16, 17..64, 65..128 */

struct run {
	uint64_t chunk; /* the first */
	int64_t seq;
	uint32_t n; /* chunks, 1..RUN_MAX */
	int64_t data_off; /* the first chunk's slot; -1: zeros, no slots */
	const unsigned char *crcs; /* n little-endian crc32c; NULL: zeros */
};

unsigned run_class(uint32_t n);
uint32_t run_crc(const struct run *r, uint32_t i, uint32_t zero_crc);
extern const char run_overlap_sql[];
extern const char run_insert_sql[];
int run_read(sqlite3_stmt *st, struct run *out);
int run_scan(sqlite3 *db, sqlite3_stmt *st, uint64_t first, uint64_t last,
	     int64_t seq_lo, int64_t seq_hi,
	     int (*fn)(void *arg, const struct run *r), void *arg);
int run_insert(struct store *s, const struct run *r);
int store_insert_rows(struct store *s, const struct chunk_row *const *rows,
		      size_t n, struct i64_array *dup);

/* store_cache.c.  copy_cache_get fills rows[0..] for first..last, which
 * lie in one window, when it holds the window for seq.  A lookup that
 * missed calls copy_cache_miss (whole: it wants the whole window) before
 * it asks the index: when that returns true it asks for the whole window
 * and puts its rows (CACHE_WINDOW, from its first chunk) with the token
 * after.  A commit forgets what it changed once committed. */
int copy_cache_init(struct copy_cache *cc, uint32_t chunk_size);
void copy_cache_destroy(struct copy_cache *cc);
bool copy_cache_get(struct copy_cache *cc, int64_t seq, uint64_t first,
		    uint64_t last, struct chunk_row *rows);
bool copy_cache_miss(struct copy_cache *cc, uint64_t window, bool whole,
		     uint64_t *token);
void copy_cache_put(struct copy_cache *cc, uint64_t token, int64_t seq,
		    uint64_t window, const struct chunk_row *rows);
void copy_cache_forget(struct copy_cache *cc, uint64_t first, uint64_t last);
void copy_cache_forget_all(struct copy_cache *cc);

/* store_migrate.c: brings an index of an older format to STORE_FORMAT;
 * db_lock held, before anything else reads it. */
int store_migrate(struct store *s, uint64_t from, char *err, size_t err_len);

/* store_rows.c */
int store_insert_word(struct store *s, uint64_t gen, const struct cbt_word *w);

#endif
