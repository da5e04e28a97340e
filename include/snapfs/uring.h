/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * uring.h - the I/O engine: batches of reads and writes on io_uring.
 */
#ifndef SNAPFS_URING_H
#define SNAPFS_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct uring_engine;

/* One transfer of a batch. */
struct io_op {
	int fd;
	bool write;
	void *buf;
	size_t len;
	uint64_t off;
	const char *fault; /* its fault point (fault.h), or NULL */
};

/* Creates an engine whose per-thread rings hold `depth` entries. 0 or
 * -errno. */
int uring_engine_create(struct uring_engine **out, unsigned depth);

/*
 * Tells the engine of a file its ops will use, before any thread uses
 * it: transfers on a file in memory (tmpfs, ramfs) are then made inline
 * with pread/pwrite rather than through the ring (uring.c says why).
 */
void uring_engine_add_file(struct uring_engine *e, int fd);

/* Frees the engine and every ring still open; no thread may use it any
 * more. */
void uring_engine_destroy(struct uring_engine *e);

/*
 * Does ops[0..n) and waits for all of them.  Several ops go together on
 * the calling thread's ring (made by its first op that needs one); a
 * single op, and every op on a file in memory (uring_engine_add_file), is
 * made directly with pread/pwrite-style calls on the calling thread.
 * Returns 0 when each op moved all of its bytes, else the first error as
 * -errno (-EIO for a read that met end of file); either way no op is
 * still in flight.  Any thread.
 */
int uring_run(struct uring_engine *e, struct io_op *ops, unsigned n);

#endif
