// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * store.c - the diff store: opening, validating and closing it.
 *
 * The store is one module in several files behind snapfs/store.h; their
 * shared insides are in store_int.h, which names each file's concern.
 *
 * It owns the store directory (store_dir.c lists every name it may hold):
 * `index.db` (SQLite, WAL, with its -wal and -shm) and `data` (preserved
 * chunks, one chunk_size slot each).  The index has six tables: meta (the
 * store's fixed parameters and its state), snapshots, runs (the preserved
 * copies, a row per run of consecutive chunks copied under one snapshot
 * into consecutive slots: store_runs.c), events, generations (one row
 * per changed-block generation) and cbt (the changed-block words of each
 * generation).  An index of an older format is brought to this one at
 * open (store_migrate.c).
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
 * Locking: five mutexes and the lookup cache's, each guarding what
 * store_int.h marks: db_lock the write connection `db`, rdb_lock the hot
 * path's read connection `rdb`, slot_lock the slot map and space
 * accounting, the lock of each of the group commit's two queues (data,
 * index), and one per set of the cache (store_cache.c).  The store never
 * holds two of them at once (a stage's leader lets go of its queue's
 * lock before it works, and the index stage's takes db_lock then), so
 * they have no order.  Two functions run the caller's callback under one of them:
 * store_for_each_chunk under db_lock, store_for_each_cbt_word under
 * rdb_lock (store.h says what the callback may call); otherwise no lock
 * is held while another module's code runs.  Opening and closing are the
 * main thread's, with no other thread in the store.  SQLite's errors end
 * in the store: they are logged with sqlite3_errmsg() and returned as
 * -EIO or -ENOSPC.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapfs/crc32c.h"
#include "snapfs/iolog.h"
#include "snapfs/log.h"
#include "snapfs/store.h"
#include "memfile.h"
#include "store_int.h"

/*
 * Checks an existing store without writing to index.db or data: opens the
 * index read-only (index_open_ro: with its WAL when a crash left one),
 * compares its parameters with cfg and runs SQLite's quick check.
 */
static int store_validate(struct store *s, const struct store_config *cfg,
			  char *err, size_t err_len)
{
	char path[STORE_PATH_MAX], buf[128];
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
	if (index_meta_get_u64(db, "format", &v)) {
		snprintf(err, err_len, "store %s: index damaged: %s", s->dir,
			 sqlite3_errmsg(db));
		r = -EIO;
		goto out;
	}
	if (v > STORE_FORMAT) {
		snprintf(err, err_len,
			 "store %s: format %llu is newer than this snapfs "
			 "reads (%d): use the snapfs that made it",
			 s->dir, (unsigned long long)v, STORE_FORMAT);
		goto out;
	}
	if (v < 1) {
		snprintf(err, err_len, "store %s: index damaged: format %llu",
			 s->dir, (unsigned long long)v);
		r = -EIO;
		goto out;
	}
	s->format = v;
	if (index_meta_get(db, "backing_id", buf, sizeof(buf)) ||
	    strcmp(buf, cfg->backing_id)) {
		snprintf(err, err_len,
			 "store %s: belongs to another image (made for %s, "
			 "this one is %s)",
			 s->dir, buf, cfg->backing_id);
		goto out;
	}
	/* A growth (store_resize) recorded while the backing's own may not
	 * have reached the disk: either size is this image's. */
	if (index_meta_get(db, "resize_from", buf, sizeof(buf)) ||
	    strtoull(buf, NULL, 10) != cfg->image_size)
		buf[0] = '\0';
	if (!buf[0] && (index_meta_get_u64(db, "image_size", &v) ||
			v != cfg->image_size)) {
		snprintf(err, err_len,
			 "store %s: the backing's size changed since the store "
			 "was made (%llu bytes then, %llu now)",
			 s->dir, (unsigned long long)v,
			 (unsigned long long)cfg->image_size);
		goto out;
	}
	if (index_meta_get_u64(db, "chunk_size", &v) ||
	    (cfg->chunk_size && v != cfg->chunk_size)) {
		snprintf(err, err_len,
			 "store %s: chunk_size is %llu, not %u (fixed when the "
			 "store was made)",
			 s->dir, (unsigned long long)v, cfg->chunk_size);
		goto out;
	}
	s->info.chunk_size = (uint32_t)v;
	if (index_meta_get_u64(db, "cbt_block_size", &v) ||
	    (cfg->cbt_block_size && v != cfg->cbt_block_size)) {
		snprintf(err, err_len,
			 "store %s: cbt_block_size is %llu, not %u (fixed when "
			 "the store was made)",
			 s->dir, (unsigned long long)v, cfg->cbt_block_size);
		goto out;
	}
	s->info.cbt_block_size = (uint32_t)v;
	/* The copy that reaches furthest into the data file: runs do not
	 * overlap there, so the one that starts last. */
	rc = sqlite3_prepare_v2(db,
				s->format == 1
					? "SELECT max(data_off), 1 FROM chunks"
					: "SELECT data_off, n FROM runs WHERE "
					  "data_off IS NOT NULL ORDER BY "
					  "data_off DESC LIMIT 1",
				-1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL) {
		max_off = sqlite3_column_int64(st, 0) +
			  (sqlite3_column_int64(st, 1) - 1) *
				  (int64_t)s->info.chunk_size;
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

/* The checksum of a chunk of zeros, which zero runs imply. */
static int zero_crc(uint32_t cs, uint32_t *out)
{
	void *zeros = calloc(1, cs);

	if (!zeros)
		return -ENOMEM;
	*out = crc32c(zeros, cs);
	free(zeros);
	return 0;
}

int store_open(struct store **out, const struct store_config *cfg, char *err,
	       size_t err_len)
{
	struct store *s = calloc(1, sizeof(*s));
	char path[STORE_PATH_MAX];
	bool made_dir, fresh;
	uint64_t v;
	int r;

	if (!s)
		return -ENOMEM;
	s->dir_fd = s->data_fd = s->data_wfd = -1;
	s->durability = cfg->durability;
	pthread_mutex_init(&s->db_lock, NULL);
	pthread_mutex_init(&s->rdb_lock, NULL);
	pthread_mutex_init(&s->slot_lock, NULL);
	commit_group_init(&s->gc_data);
	commit_group_init(&s->gc_index);
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
	if (!fresh && s->format < STORE_FORMAT) {
		r = store_migrate(s, s->format, err, err_len);
		if (r)
			goto err_made;
	}
	r = store_prepare(s);
	if (r) {
		snprintf(err, err_len, "store %s: index damaged", s->dir);
		goto err_made;
	}
	s->info.image_size = cfg->image_size;
	r = store_resize_settle(s);
	if (r) {
		snprintf(err, err_len,
			 "store %s: cannot record the image's "
			 "size",
			 s->dir);
		goto err_made;
	}
	r = zero_crc(s->info.chunk_size, &s->zero_crc);
	if (!r)
		r = copy_cache_init(&s->cache, s->info.chunk_size);
	if (r) {
		snprintf(err, err_len, "store %s: out of memory", s->dir);
		goto err_made;
	}
	if (index_meta_get_u64(s->db, "generation", &s->info.generation) ||
	    index_meta_get_u64(s->db, "clean", &v)) {
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
	r = index_meta_set_u64(s->db, "clean", 0);
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
		if (index_meta_set_u64(s->db, "clean", 1))
			log_error("store: could not record a clean shutdown");
	}
	sqlite3_finalize(s->ins_run);
	sqlite3_finalize(s->find_runs_w);
	sqlite3_finalize(s->ins_word);
	sqlite3_finalize(s->find_runs);
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
	commit_group_destroy(&s->gc_data);
	commit_group_destroy(&s->gc_index);
	copy_cache_destroy(&s->cache);
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
