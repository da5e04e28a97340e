/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * snapshot.h - the set of snapshots and their lifecycle: create, open,
 * delete (deferred while a reader has the image open).
 */
#ifndef SNAPFS_SNAPSHOT_H
#define SNAPFS_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapfs/options.h"

struct backing;
struct cbt;
struct cow;
struct store;
struct snapshots;

struct snapshot {
	int64_t seq;
	char uuid[37];
	int64_t created_ns;
	uint64_t generation;
	uint64_t size;
	bool deleted; /* gone from the tree, still read by an open handle */
	bool purging; /* its data is being removed: it opens no more */
	bool keep_bookmark; /* deleted: becomes a bookmark once purged */
	bool pinned; /* a revert copies it: it cannot be deleted */
	unsigned opens; /* open handles */
};

/* Loads the snapshots of the store, finishing deletions an earlier run
 * left half done.  0 or -errno. */
int snapshots_load(struct snapshots **out, struct store *s, struct backing *b,
		   enum durability durability);

/* The newest snapshot the chain must preserve for (0: none). */
int64_t snapshots_newest(struct snapshots *ss);

/* Connects the chain (built from snapshots_newest()) and the change
 * tracking, which a snapshot moves to its next generation. */
void snapshots_attach(struct snapshots *ss, struct cow *c, struct cbt *cbt);

void snapshots_free(struct snapshots *ss);

/* Takes a snapshot of live.img now; *out describes it.  0 or -errno.
 * The three calls below in a row, with nothing pending. */
int snapshots_create(struct snapshots *ss, struct snapshot *out);

/*
 * A snapshot in three steps, so that several daemons can take theirs at
 * one instant (a group, ctl.c).  All three on one thread, which calls
 * nothing else of this module in between; other threads' creates and
 * deletes wait, and so does every live write.
 *
 * snapshots_hold waits for every running and queued write and holds new
 * ones back (cow_quiesce) until snapshots_unhold.
 */
void snapshots_hold(struct snapshots *ss);

/* Takes the snapshot, held; *out describes it.  pending: shown nowhere
 * and marked deleted in the store until snapshots_unhold keeps it (so a
 * stop in between drops it at the next mount).  0 or -errno (nothing
 * taken).  At most once per hold. */
int snapshots_take_held(struct snapshots *ss, bool pending,
			struct snapshot *out);

/* Ends the hold: a pending snapshot is kept (keep) or deleted, before any
 * write reaches the chain.  0, or -errno when it could not be kept (it is
 * deleted then). */
int snapshots_unhold(struct snapshots *ss, bool keep);

/* Deletes the snapshot named uuid (canonical, lowercase).  It leaves the
 * tree at once; its data goes when its last reader closes.  With
 * keep_bookmark its uuid and generation stay as a bookmark (the data goes
 * all the same; -EEXIST when uuid is a bookmark already).  0, -ENOENT or
 * -errno. */
int snapshots_delete(struct snapshots *ss, const char *uuid,
		     bool keep_bookmark);

/* Removes the bookmark named uuid.  0, -ENOENT or -errno. */
int snapshots_delete_bookmark(struct snapshots *ss, const char *uuid);

/* Looks up a visible snapshot by uuid.  0 or -ENOENT. */
int snapshots_find(struct snapshots *ss, const char *uuid,
		   struct snapshot *out);

/* Looks up what may be the older end of a range of changes: a visible
 * snapshot or a bookmark (with *is_bookmark set).  0 or -ENOENT. */
int snapshots_find_since(struct snapshots *ss, const char *uuid,
			 struct snapshot *out, bool *is_bookmark);

/* A copy of the bookmarks, oldest first.  Caller frees *out. */
int snapshots_bookmarks(struct snapshots *ss, struct snapshot **out, size_t *n);

/* Looks up any snapshot by seq, deleted ones still open included. */
int snapshots_get(struct snapshots *ss, int64_t seq, struct snapshot *out);

/* Counts an open handle on a visible snapshot; 0 or -ENOENT (also once
 * its purge has begun). */
int snapshots_open(struct snapshots *ss, int64_t seq);

/* Opens the visible snapshot named uuid for a revert (*out describes
 * it): counted as a reader, and refused deletion (-EBUSY) until
 * snapshots_unpin, so an interrupted revert always finds it again at the
 * next mount.  0 or -ENOENT. */
int snapshots_pin(struct snapshots *ss, const char *uuid, struct snapshot *out);
void snapshots_unpin(struct snapshots *ss, int64_t seq);

/* Drops an open handle; the last one of a deleted snapshot purges it. */
void snapshots_release(struct snapshots *ss, int64_t seq);

/* A copy of the visible snapshots, oldest first.  Caller frees *out. */
int snapshots_list(struct snapshots *ss, struct snapshot **out, size_t *n);

/* Bytes preserved for each snapshot of list[0..n) (from snapshots_list). */
int snapshots_diff_bytes(struct snapshots *ss, const struct snapshot *list,
			 size_t n, uint64_t *out);

/* Deletes the oldest snapshot that no reader holds open, to make room
 * in a full store.  0, or -ENOSPC when there is none. */
int snapshots_drop_oldest(struct snapshots *ss);

/* Deletes every snapshot (no reader may hold one).  0 or -errno. */
int snapshots_drop_all(struct snapshots *ss);

#endif
