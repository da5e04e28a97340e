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

/* The largest size an image may grow to while mounted (snapfsctl resize):
 * what the per-block tables reserve address space for at mount.  An
 * image mounted larger than this cannot grow; nor can any on a 32-bit
 * system, whose address space has no room for the reservation. */
#define BACKING_MAX_GROWN (sizeof(void *) >= 8 ? 1ull << 47 : 0) /* 128 TiB */

struct backing {
	int fd;
	char *path; /* as given */
	uint64_t size; /* bytes; grows only by backing_grow (resize) */
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

/*
 * Makes the image new_size bytes (larger than now), in two steps: prepare
 * checks that a block device is that large already and zeroes its new
 * range (which nothing uses yet; a file needs nothing); grow extends a
 * regular file and syncs its new length.  b->size is not changed (the
 * caller does, once every table has grown).  0 or -errno with one line
 * in err.
 */
int backing_grow_prepare(struct backing *b, uint64_t new_size, char *err,
			 size_t err_len);
int backing_grow(struct backing *b, uint64_t new_size, char *err,
		 size_t err_len);

/* Flushes the image's data to stable storage.  0 or -errno; any thread. */
int backing_sync(struct backing *b);

/* Re-reads the modification time into b->mtime.  0 or -errno. */
int backing_stat(struct backing *b);

/* Unlocks and closes; safe on a backing that never opened. */
void backing_close(struct backing *b);

#endif
