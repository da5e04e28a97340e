/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * backup.h - copying a snapshot image out: whole and sparse, or only the
 * extents changed since a snapshot the destination already holds.
 */
#ifndef SNAPFS_BACKUP_H
#define SNAPFS_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapfs/progress.h"

/* The sidecar file beside DEST that says which snapshot DEST holds. */
#define BACKUP_SIDECAR_SUFFIX ".snapfs-backup"

struct backup_extent {
	uint64_t off;
	uint64_t len;
};

struct backup_job {
	const char *source; /* MNT/snapshots/UUID.img */
	const char *uuid; /* the snapshot copied */
	const char *dest; /* a file (created if missing) or a block device */
	const char *since; /* NULL: full copy; else DEST must hold it */
	const struct backup_extent *extents; /* with since: what changed */
	size_t nextents;
	enum progress_mode progress;
};

/*
 * Runs the copy.  DEST's sidecar says "incomplete" from the first byte
 * written until DEST is fsync'd, then "complete" with the uuid.  0, or
 * -errno with one line in err.
 */
int backup_run(const struct backup_job *job, char *err, size_t err_len);

/* The data extents of a sparse file of size bytes (SEEK_DATA/SEEK_HOLE;
 * all of it where holes cannot be told).  Caller frees *out. */
int backup_data_extents(int fd, uint64_t size, struct backup_extent **out,
			size_t *n);

/* Whether [off, off+len) of fd reads as zeros (holes are, data is read
 * until a byte is not).  0 or -errno. */
int backup_zero(int fd, uint64_t off, uint64_t len, bool *zero);

/* Opens the image at path to copy from (backup, export-diff): its
 * descriptor and *size, or -errno with one line in err. */
int backup_open_source(const char *path, uint64_t *size, char *err,
		       size_t err_len);

/* Reads DEST's sidecar: the uuid it holds when complete.  0, -ENOENT (no
 * sidecar) or -EINVAL (incomplete or unreadable). */
int backup_read_sidecar(const char *dest, char uuid[37]);

#endif
