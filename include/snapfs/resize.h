/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * resize.h - live.img grown while mounted, snapshots keeping their size.
 */
#ifndef SNAPFS_RESIZE_H
#define SNAPFS_RESIZE_H

#include <stddef.h>
#include <stdint.h>

struct daemon;

/*
 * Grows live.img to new_size bytes (a whole number of chunks; the same
 * size is a no-op): a regular-file backing is extended, a block device
 * must be that large already.  The new range reads as zeros and is
 * changed in the open generation; snapshots keep their size; the store
 * records the new one, so the next mount takes it.  0, or -errno with one
 * line in msg and nothing changed (-EINVAL: smaller, or not whole chunks;
 * -EROFS; -EFBIG past BACKING_MAX_GROWN).  Control thread.
 */
int resize_run(struct daemon *d, uint64_t new_size, char *msg, size_t msg_len);

#endif
