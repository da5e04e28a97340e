/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * backing.h - the wrapped disk image: a regular file or a block device.
 */
#ifndef SNAPFS_BACKING_H
#define SNAPFS_BACKING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct backing {
	int fd;
	char *path; /* as given */
	uint64_t size; /* bytes; fixed while mounted */
	bool is_blkdev;
	char identity[96]; /* "file:DEV:INO" or "blkdev:MAJOR:MINOR" */
	struct timespec mtime;
};

/*
 * Opens and locks the image at path (read-only when ro).  Returns 0, or
 * -errno with one line naming the problem in err; nothing is changed on
 * disk either way.
 */
int backing_open(struct backing *b, const char *path, bool ro, char *err,
		 size_t err_len);

/* Flushes the image's data to stable storage.  0 or -errno; any thread. */
int backing_sync(struct backing *b);

/* Re-reads the modification time into b->mtime.  0 or -errno. */
int backing_stat(struct backing *b);

/* Unlocks and closes; safe on a backing that never opened. */
void backing_close(struct backing *b);

#endif
