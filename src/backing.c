// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * backing.c - the wrapped image.
 *
 * Owns the image's file descriptor, its size (BLKGETSIZE64 for a block
 * device, st_size for a file) and its identity, which the store records so
 * that a store is never used with another image, even one of the same
 * size.  An exclusive flock on the descriptor keeps a second daemon off
 * the same image; the lock dies with the process, so kill -9 never leaves
 * a stale lock behind.
 *
 * Opening checks everything before it can change anything: stat first,
 * then open (which changes nothing), then the lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "snapfs/backing.h"
#include "snapfs/fault.h"
#include "snapfs/iolog.h"
#include "snapfs/log.h"

int backing_open(struct backing *b, const char *path, bool ro, char *err,
		 size_t err_len)
{
	struct stat st;
	int r;

	memset(b, 0, sizeof(*b));
	b->fd = -1;
	if (stat(path, &st) < 0) {
		r = -errno;
		snprintf(err, err_len, "backing %s: %s", path, strerror(-r));
		return r;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, err_len,
			 "backing %s: is a directory, not an image file or "
			 "block device",
			 path);
		return -EISDIR;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		snprintf(err, err_len,
			 "backing %s: not a regular file or block device",
			 path);
		return -EINVAL;
	}
	b->fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0) {
		r = -errno;
		snprintf(err, err_len, "backing %s: cannot open %s: %s", path,
			 ro ? "read-only" : "read/write", strerror(-r));
		return r;
	}
	if (flock(b->fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		snprintf(err, err_len, "backing %s: %s", path,
			 r == -EWOULDBLOCK ? "in use by another snapfs daemon"
					   : strerror(-r));
		goto err_close;
	}
	if (fstat(b->fd, &st) < 0) {
		r = -errno;
		snprintf(err, err_len, "backing %s: %s", path, strerror(-r));
		goto err_close;
	}
	b->is_blkdev = S_ISBLK(st.st_mode);
	if (b->is_blkdev) {
		if (ioctl(b->fd, BLKGETSIZE64, &b->size) < 0) {
			r = -errno;
			snprintf(err, err_len, "backing %s: size unknown: %s",
				 path, strerror(-r));
			goto err_close;
		}
		snprintf(b->identity, sizeof(b->identity), "blkdev:%u:%u",
			 major(st.st_rdev), minor(st.st_rdev));
	} else {
		b->size = (uint64_t)st.st_size;
		snprintf(b->identity, sizeof(b->identity), "file:%llu:%llu",
			 (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_ino);
	}
	if (b->size == 0) {
		snprintf(err, err_len, "backing %s: is empty", path);
		r = -EINVAL;
		goto err_close;
	}
	b->mtime = st.st_mtim;
	b->path = strdup(path);
	if (!b->path) {
		r = -ENOMEM;
		snprintf(err, err_len, "backing %s: out of memory", path);
		goto err_close;
	}
	return 0;

err_close:
	close(b->fd);
	b->fd = -1;
	return r;
}

int backing_sync(struct backing *b)
{
	int r = FAULT("backing.sync");

	if (r)
		return r < 0 ? r : -EIO;
	iolog_sync(IOLOG_BACKING);
	return fdatasync(b->fd) < 0 ? -errno : 0;
}

int backing_grow_prepare(struct backing *b, uint64_t new_size, char *err,
			 size_t err_len)
{
	uint64_t dev = 0;
	int r;

	if (!b->is_blkdev)
		return 0;
	if (ioctl(b->fd, BLKGETSIZE64, &dev) < 0) {
		r = -errno;
		snprintf(err, err_len, "%s: size unknown: %s", b->path,
			 strerror(-r));
		return r;
	}
	if (dev != new_size) {
		snprintf(err, err_len,
			 "%s is a block device of %llu bytes: grow it first "
			 "(lvextend), then resize to its size",
			 b->path, (unsigned long long)dev);
		return -EINVAL;
	}
	/* what the device held there before (another volume's extents)
	 * must not show through */
	if (fallocate(b->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		      (off_t)b->size, (off_t)(new_size - b->size)) < 0) {
		r = -errno;
		snprintf(err, err_len, "%s: cannot zero its new range: %s",
			 b->path, strerror(-r));
		return r;
	}
	return 0;
}

int backing_grow(struct backing *b, uint64_t new_size, char *err,
		 size_t err_len)
{
	int f;

	if (b->is_blkdev)
		return 0;
	f = FAULT("backing.grow");
	if (f)
		errno = f > 0 ? EIO : -f;
	if (f || ftruncate(b->fd, (off_t)new_size) < 0 || fsync(b->fd) < 0) {
		int r = -errno;

		snprintf(err, err_len, "%s: cannot grow to %llu bytes: %s",
			 b->path, (unsigned long long)new_size, strerror(-r));
		/* back to the size the store still accepts */
		if (ftruncate(b->fd, (off_t)b->size) < 0)
			log_error("backing: %s: cannot go back to %llu bytes: "
				  "%s",
				  b->path, (unsigned long long)b->size,
				  strerror(errno));
		return r;
	}
	return 0;
}

int backing_stat(struct backing *b)
{
	struct stat st;

	if (fstat(b->fd, &st) < 0)
		return -errno;
	b->mtime = st.st_mtim;
	return 0;
}

void backing_close(struct backing *b)
{
	if (b->fd >= 0)
		close(b->fd);
	free(b->path);
	b->fd = -1;
	b->path = NULL;
}
