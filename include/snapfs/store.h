/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * store.h - the diff store: a data file of preserved chunks and the SQLite
 * index that says which snapshot each one serves.
 */
#ifndef SNAPFS_STORE_H
#define SNAPFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "snapfs/options.h"

struct store;

struct store_config {
	const char *dir;
	uint32_t chunk_size; /* 0: the store's, or the default if new */
	uint32_t cbt_block_size; /* 0: the store's, or the default if new */
	uint64_t image_size;
	const char *backing_id; /* backing.identity */
	enum durability durability;
};

struct store_info {
	uint32_t chunk_size;
	uint32_t cbt_block_size;
	uint64_t image_size;
	uint64_t generation; /* the open one */
	bool created; /* made by this open */
	bool prev_clean; /* how the previous run ended */
};

/* One preserved copy: chunk chunk_idx as it was while snapshot seq was the
 * newest.  data_off is the byte offset in the data file, -1 for a chunk
 * of zeros that takes no space. */
struct chunk_row {
	uint64_t chunk_idx;
	int64_t seq;
	int64_t data_off;
	uint32_t crc;
	/* store_commit: the chunk's bytes, written to data_off by the
	 * commit (NULL: nothing to write). */
	const void *data;
};

struct store_snapshot {
	int64_t seq; /* order of creation, never reused */
	char uuid[37];
	int64_t created_ns;
	uint64_t generation;
	uint64_t size;
	bool deleted; /* removed, kept until its last reader closes */
	/* With deleted: to stay as a bookmark once purged.  Without: a
	 * bookmark, a uuid and generation with no data. */
	bool bookmark;
};

/* Bits of one 64-block word of a changed-block bitmap: block
 * word * 64 + i changed when bit i of bits is set. */
struct cbt_word {
	uint64_t word;
	uint64_t bits;
};

#define STORE_REASON_LEN 48

struct store_generation {
	uint64_t gen;
	int64_t opened_ns;
	char closed_by[37]; /* "" while open */
	char reason[STORE_REASON_LEN]; /* why it began */
	char widened[STORE_REASON_LEN]; /* why it is all ones, or "" */
	bool dropped; /* bitmap deleted (cbt_keep, rm) */
};

struct store_event {
	int64_t time_ns;
	char kind[32];
	char detail[224];
};

/*
 * Opens the store in cfg->dir, creating it when the directory is missing
 * or empty, and locks it.  Every check (ownership by this image, unit
 * sizes, damage) runs before anything is written.  Returns 0, or -errno
 * with one line in err.
 */
int store_open(struct store **out, const struct store_config *cfg, char *err,
	       size_t err_len);

/* Closes the store; with clean, records a clean shutdown.  Main thread. */
void store_close(struct store *s, bool clean);

/*
 * Records that the image grows to new_size: from now on the store opens
 * with a backing of new_size, and also with one of the size before until
 * store_resize_settle (a crash may come before the backing's own growth
 * is on disk: the store then takes the old size back at its next open).
 * 0 or -errno (nothing recorded).
 */
int store_resize(struct store *s, uint64_t new_size);

/* Once the backing's growth is durable: only the new size opens the
 * store.  Also run by store_open, with the size found.  0 or -errno. */
int store_resize_settle(struct store *s);

/* The store's fixed parameters and state at open. */
const struct store_info *store_info(const struct store *s);

/* The data file's descriptor, for the I/O engine. */
int store_data_fd(const struct store *s);

/* The store directory's path and an open descriptor of it. */
const char *store_dir(const struct store *s);
int store_dir_fd(const struct store *s);

/* Limits the data file to diff_max bytes (0: no limit but free space);
 * a warning event is recorded when 90% is reached. */
void store_set_limit(struct store *s, uint64_t diff_max);

/* Allocates a free chunk-sized slot of the data file for one copy (its
 * byte offset in *data_off).  0, or -ENOSPC past diff_max (without it:
 * within 16 MiB of a full file system).  Any thread. */
int store_slot_alloc(struct store *s, int64_t *data_off);

/*
 * Reserves n slots for writes that will preserve later (cow.c's
 * write-behind): counted against the limit from now on, though no slot is
 * chosen until one is allocated.  0, or -ENOSPC when they would not fit.
 */
int store_slot_reserve(struct store *s, uint64_t n);

/* Gives back n reserved slots that were not needed. */
void store_slot_unreserve(struct store *s, uint64_t n);

/* Allocates n free slots under one lock, so that one batch's copies sit
 * in consecutive slots (one read when a snapshot is read in order)
 * however many threads preserve at once: the first *reserved of them
 * from the caller's reservations, counted down as they are used.  On
 * error the slots allocated so far stay in offs (the rest -1) for
 * store_slot_free. */
int store_slot_alloc_run(struct store *s, int64_t *offs, size_t n,
			 uint64_t *reserved);

/* Frees a slot allocated by store_slot_alloc(_run) whose row was never
 * committed. */
void store_slot_free(struct store *s, int64_t data_off);

/*
 * Makes rows and changed-block words of generation gen durable: writes
 * each row's data (when not NULL) into its allocated slot, syncs the data
 * file (durability=full), then commits the index, sharing the writes, one
 * sync and one commit with every other thread committing at the same
 * time.  Blocks until that commit is done; any thread.  0 or -errno
 * (-EIO, -ENOSPC); on error nothing of the call is recorded (the slots
 * stay allocated, for store_slot_free).
 */
int store_commit(struct store *s, const struct chunk_row *rows, size_t n,
		 uint64_t gen, const struct cbt_word *words, size_t nwords);

/* store_commit without changed blocks. */
int store_commit_chunks(struct store *s, const struct chunk_row *rows,
			size_t n);

/*
 * Replaces generation gen's recorded words inside the inclusive word
 * ranges (ranges[2i]..ranges[2i+1], nranges pairs) with words (zero
 * words are left out), in one transaction, durable as commits are.
 */
int store_replace_cbt_words(struct store *s, uint64_t gen,
			    const uint64_t *ranges, size_t nranges,
			    const struct cbt_word *words, size_t nwords);

/*
 * Calls fn for every recorded word of generation gen's bitmap, in word
 * order; stops at and returns fn's first non-zero result.  fn runs with
 * the lock of the store's read connection held: it must not call
 * store_find_copy, store_find_copies or this function.
 */
int store_for_each_cbt_word(struct store *s, uint64_t gen,
			    int (*fn)(void *arg, uint64_t word, uint64_t bits),
			    void *arg);

/* Every generation, oldest first, dropped ones included.  Caller frees. */
int store_list_generations(struct store *s, struct store_generation **out,
			   size_t *n);

/* One generation whose bitmap exists.  0 or -ENOENT (unknown, dropped). */
int store_get_generation(struct store *s, uint64_t gen,
			 struct store_generation *out);

/* Marks generation gen all ones, for reason (one line). */
int store_widen_generation(struct store *s, uint64_t gen, const char *reason);

/* Deletes closed generation gen's bitmap; 0, -EBUSY for the open one. */
int store_drop_generation(struct store *s, uint64_t gen);

/* Reads or writes one meta value of the store's own (text). */
int store_get_meta(struct store *s, const char *key, char *buf, size_t len);
int store_set_meta(struct store *s, const char *key, const char *value);

/*
 * Finds the oldest copy of chunk_idx preserved at or after seq.  0 with
 * *out, -ENOENT when the snapshot reads the live chunk, or -EIO.
 */
int store_find_copy(struct store *s, uint64_t chunk_idx, int64_t seq,
		    struct chunk_row *out);

/* The same for chunks first..last at once: rows[i] for chunk first+i,
 * with seq -1 where the snapshot reads the live chunk.  0 or -EIO. */
int store_find_copies(struct store *s, uint64_t first, uint64_t last,
		      int64_t seq, struct chunk_row *rows);

/*
 * Calls fn for every preserved copy, with its chunk and the seq it was
 * made under (a chunk with several copies comes once for each, in no
 * order); stops at and returns fn's first non-zero result.  fn runs with
 * the lock of the store's write connection held, which every function
 * that writes or lists the index takes (and a slot allocation that
 * records the 90% event): fn may call only store_find_copy,
 * store_find_copies, store_for_each_cbt_word and the accessors
 * (store_info, store_dir...).
 */
int store_for_each_chunk(struct store *s,
			 int (*fn)(void *arg, uint64_t chunk_idx, int64_t seq),
			 void *arg);

/* Chunks first..first+count-1. */
struct chunk_extent {
	uint64_t first;
	uint64_t count;
};

/*
 * The chunks that have a copy made at or after seq, in chunk order, as
 * extents (touching ones merged): where snapshot seq may differ from
 * live.img.  Every other chunk it reads from the live chunk.  Its cost
 * grows with the copies made since seq, not with the image.  Caller
 * frees *out.  0 or -errno.
 */
int store_copied_since(struct store *s, int64_t seq, struct chunk_extent **out,
		       size_t *n);

/* Every snapshot row, oldest first, deleted ones and bookmarks included.
 * Caller frees *out. */
int store_list_snapshots(struct store *s, struct store_snapshot **out,
			 size_t *n);

/* Records a new snapshot of the open generation and opens the next one;
 * fills snap->seq and snap->generation.  With snap->deleted the row is
 * marked deleted from the start (a snapshot not yet kept,
 * store_keep_snapshot).  Durable on return. */
int store_add_snapshot(struct store *s, struct store_snapshot *snap);

/* Clears the deletion mark of snapshot seq, added marked: it stays.
 * Durable on return; -ENOENT when seq is no such row. */
int store_keep_snapshot(struct store *s, int64_t seq);

/* Marks snapshot seq removed, to stay as a bookmark when keep_bookmark
 * (the removal is finished at the next mount if the daemon stops before
 * store_purge_snapshot). */
int store_mark_deleted(struct store *s, int64_t seq, bool keep_bookmark);

/*
 * Deletes snapshot seq and every copy that no snapshot in live[0..nlive)
 * (ascending seqs, seq excluded) still reads; frees their space.  A
 * snapshot marked to stay as a bookmark keeps its row, as a bookmark, in
 * the same transaction.
 */
int store_purge_snapshot(struct store *s, int64_t seq, const int64_t *live,
			 size_t nlive);

/* Removes bookmark seq (a row with no data).  -ENOENT when seq is not a
 * bookmark. */
int store_delete_bookmark(struct store *s, int64_t seq);

/* Bytes of the data file held for each of live[0..nlive) (ascending):
 * the copies made while it was the newest snapshot.  out has nlive
 * entries. */
int store_diff_bytes(struct store *s, const int64_t *live, size_t nlive,
		     uint64_t *out);

/* Bytes of the data file in use by preserved chunks. */
uint64_t store_bytes_used(struct store *s);

/* Appends an event for status (kind: a short word; detail: one line). */
void store_add_event(struct store *s, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The newest events, oldest first, at most max.  Caller frees *out. */
int store_list_events(struct store *s, size_t max, struct store_event **out,
		      size_t *n);

/*
 * Verifies an unmounted store without writing to it: index integrity,
 * every preserved chunk inside the data file, aligned, not shared, and
 * matching its checksum.  Writes a report (one line a problem, then a
 * summary) to report.  0 when sound; otherwise why (why_len bytes) gets
 * one line, the verdict or the reason it could not be checked, and the
 * result is -EIO with problems, -EBUSY when a daemon has it, -errno
 * otherwise (nothing written to report when it could not be checked).
 */
int store_check(const char *dir, FILE *report, char *why, size_t why_len);

#endif
