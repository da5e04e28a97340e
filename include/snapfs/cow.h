/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cow.h - the copy-on-write chain: live reads and writes that preserve
 * what snapshots still need, and snapshot reads.
 */
#ifndef SNAPFS_COW_H
#define SNAPFS_COW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct backing;
struct cbt;
struct store;
struct uring_engine;
struct cow;

/* Chunks handled per preservation batch (bounds memory per request). */
#define COW_BATCH_CHUNKS 512

/* Builds the chain's in-memory state from the store.  newest_seq is the
 * newest snapshot still read by someone (0: none); every change is also
 * recorded in cbt.  0 or -errno. */
int cow_create(struct cow **out, struct backing *b, struct store *s,
	       struct uring_engine *io, struct cbt *cbt, int64_t newest_seq);

void cow_destroy(struct cow *c);

/* Reads live bytes [off, off+len) clipped to the image.  Bytes read or
 * -errno.  Any thread. */
ssize_t cow_read_live(struct cow *c, void *buf, size_t len, uint64_t off);

/* Writes live bytes, first preserving every chunk it touches that a
 * snapshot still needs.  Bytes written (short at the image's end, -ENOSPC
 * past it) or -errno; nothing is overwritten unless preserved first.  A
 * write that must preserve may return once it is queued (write-behind):
 * reads see it at once; an fsync and a snapshot wait for it, and an
 * error that drops it is returned once to each open file of live.img
 * that was open when it happened (cow_fsync, cow_close_error), to the
 * next snapshot (cow_write_error), and by cow_flush if none of them was
 * told. */
ssize_t cow_write_live(struct cow *c, const void *buf, size_t len,
		       uint64_t off);

/* Punches (zero=false) or zeroes [off, off+len) after preserving it.
 * 0 or -errno; after an error a prefix of the range may be punched or
 * zeroed already (every snapshot whole all the same). */
int cow_discard(struct cow *c, uint64_t off, uint64_t len, bool zero);

/* Writes what is queued and flushes live data to stable storage, for
 * the daemon's stop.  0 or -errno, also when a queued write was dropped
 * and no open file or snapshot was told (cow_write_live). */
int cow_flush(struct cow *c);

/* An error cursor for a file of live.img being opened, as the page
 * cache's errseq_t samples one: with it, cow_fsync and cow_close_error
 * report writes dropped after this call, and cow_fsync also the last
 * one dropped before it if no fsync has reported that one yet. */
uint64_t cow_error_mark(struct cow *c);

/* The fsync of an open file of live.img: writes what is queued and
 * flushes live data to stable storage.  0 or -errno, also when a queued
 * write was dropped since cursor *seen, which is then brought up to date
 * (each open file is told once) and the drop counts as seen (files
 * opened from now on are not told of it).  Any thread. */
int cow_fsync(struct cow *c, uint64_t *seen);

/*
 * The close (FUSE flush) of an open file of live.img with cursor *seen:
 * -errno when a queued write was dropped since *seen, else 0.  The
 * cursor stays where it is, and the drop does not count as seen: every
 * close of a descriptor of the file (a child closing the ones it
 * inherited too) says so until the file's fsync has reported it, and a
 * later `sync FILE` is still told.  When the file was open for writing
 * it first waits for every write queued before the call, whichever file
 * queued it (the queue does not know): up to the ring's 8 MiB of
 * preservations and writes, as an fsync waits, without the sync.
 */
int cow_close_error(struct cow *c, const uint64_t *seen, bool wrote);

/* -errno when a queued write was dropped since the last call (each
 * snapshot asks, after cow_quiesce), else 0. */
int cow_write_error(struct cow *c);

/* Reads snapshot seq's bytes [off, off+len) clipped to the image; every
 * preserved chunk's checksum is verified (-EIO on mismatch). */
ssize_t cow_read_snapshot(struct cow *c, int64_t seq, void *buf, size_t len,
			  uint64_t off);

/* SEEK_DATA / SEEK_HOLE on live (seq 0: the backing's layout) or
 * snapshot seq (a chunk at a time, zero rows as holes: the layout it had
 * when taken, see cow.c).  The offset or -ENXIO / -errno.  Any thread. */
int64_t cow_seek(struct cow *c, int64_t seq, uint64_t off, int whence);

/* Waits for every running live write and every queued one, and holds new
 * ones back: the instant of a snapshot.  Gives back the store slots
 * promised to queued writes that were all dropped.  Pair with
 * cow_resume(). */
void cow_quiesce(struct cow *c);
void cow_resume(struct cow *c);

/*
 * Sets the newest snapshot (0: none), between cow_quiesce and cow_resume.
 * A newer one means every chunk must be preserved again before its next
 * overwrite; an older one (the newest went away) is recomputed from the
 * store.  0 or -errno.
 */
int cow_set_newest(struct cow *c, int64_t newest_seq);

/*
 * What a change does when the store cannot take what it must preserve:
 * with make_room (on_full=drop-oldest) it releases its locks, calls
 * make_room, and tries again until make_room fails; without (fail-writes)
 * it fails with -ENOSPC.  make_room runs one call at a time, and not for
 * a change that began before another call made room (that change just
 * tries again).  Set before requests are served.
 */
void cow_set_make_room(struct cow *c, int (*make_room)(void *arg), void *arg);

/*
 * A growth of the image to new_size, with the chain quiesced: prepare
 * makes the per-chunk tables large enough (0, -EFBIG past
 * BACKING_MAX_GROWN, or -ENOMEM; nothing changes), commit, once the
 * backing has grown, makes the new chunks part of live.img.
 */
int cow_grow_prepare(struct cow *c, uint64_t new_size);
void cow_grow_commit(struct cow *c, uint64_t new_size);

/* Chunks preserved by this process, for status. */
uint64_t cow_preserved_count(struct cow *c);

#endif
