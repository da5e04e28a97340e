/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * revert.h - live.img made a snapshot again, copying only what differs,
 * and finished at the next mount when a crash interrupts it.
 */
#ifndef SNAPFS_REVERT_H
#define SNAPFS_REVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;

/* Told of the bytes copied so far out of total, now and then. */
typedef void revert_progress_fn(void *arg, uint64_t done, uint64_t total);

/*
 * Makes live.img equal to snapshot uuid (canonical), byte for byte.
 * Refused (-EBUSY, nothing changed) while any file of live.img is open;
 * new opens wait out the revert with EBUSY.  Every snapshot keeps its
 * bytes (the overwritten chunks are preserved as any write's are) and the
 * copied blocks count as changed in the open generation.  Recorded in the
 * store before the first byte moves, so a crash leaves it to
 * revert_pending.  0 or -errno with one line in msg (-ENOENT: no such
 * snapshot; -EROFS: a read-only mount; an I/O error or a full store part
 * way leaves live.img part reverted, and says so; when the record cannot
 * be cleared live.img stays closed until a restart finishes the revert).
 * Control thread.
 */
int revert_run(struct daemon *d, const char *uuid, revert_progress_fn *fn,
	       void *arg, char *msg, size_t msg_len);

/*
 * At mount, before requests are served: whether a revert a crash
 * interrupted is to be finished.  0: none; 1: one is (its snapshot
 * pinned; revert_resume_start finishes it); -errno with one line in err
 * when the mount must not go on: a read-only mount (-EROFS: live.img is
 * part reverted), a record that cannot be read or cleared.
 */
int revert_pending(struct daemon *d, char *err, size_t err_len);

/*
 * Once mounted: finishes the pending revert on a thread of its own while
 * requests are served, live.img claimed meanwhile (its opens fail with
 * EBUSY), and records a `revert` event (also when it fails again: the
 * event says live.img is part reverted).  So a long one never holds the
 * mount back past a boot's timeout.  0 or -errno (not started).
 */
int revert_resume_start(struct daemon *d);

/* Whether that revert is still running: its snapshot's uuid and the bytes
 * copied of total.  Any thread. */
bool revert_resuming(struct daemon *d, char uuid[37], uint64_t *done,
		     uint64_t *total);

/* Stops it at its next piece (still recorded: the next mount goes on) and
 * waits.  At the daemon's stop; safe when none runs. */
void revert_resume_stop(struct daemon *d);

#endif
