/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * memfile.h - whether a file lives in memory: a regular file on tmpfs or
 * ramfs.  There the page cache is the file, so direct I/O only emulates
 * itself with the same copy (the store writes such a data file buffered)
 * and io_uring hands every transfer to a worker thread (the I/O engine
 * copies inline).  A device node on devtmpfs is not in memory.
 */
#ifndef SNAPFS_MEMFILE_H
#define SNAPFS_MEMFILE_H

#include <stdbool.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>

static inline bool file_in_memory(int fd)
{
	struct statfs sf;
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	       fstatfs(fd, &sf) == 0 &&
	       (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
}

#endif
