/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * revert.h - live.img made a snapshot again, copying only what differs,
 * and finished at the next mount when a crash interrupts it.
 */
#ifndef SNAPFS_REVERT_H
#define SNAPFS_REVERT_H

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
 * revert_resume.  0 or -errno with one line in msg (-ENOENT: no such
 * snapshot; -EROFS: a read-only mount; an I/O error or a full store part
 * way leaves live.img part reverted, and says so; when the record cannot
 * be cleared live.img stays closed until a restart finishes the revert).
 * Control thread.
 */
int revert_run(struct daemon *d, const char *uuid, revert_progress_fn *fn,
	       void *arg, char *msg, size_t msg_len);

/*
 * Finishes the revert a crash interrupted, at mount, before requests are
 * served, and records a `revert` event (also when it fails again: the
 * event says live.img is part reverted, and the record is cleared).  0,
 * or -errno with one line in err when the mount must not go on: on a
 * read-only mount (-EROFS: live.img is part reverted), or when the
 * record cannot be read or cleared.
 */
int revert_resume(struct daemon *d, char *err, size_t err_len);

#endif
