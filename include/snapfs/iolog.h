/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * iolog.h - the write-ordering log of the power-loss tests.
 *
 * With --enable-fault-injection and SNAPFS_IOLOG=FILE, every completed
 * write, zeroing and truncation of the backing, the data file and the
 * index files is appended to FILE with its bytes, and every sync before
 * it starts, so tests/torture/replay.py can rebuild what a power loss at
 * any point could leave.  Without the switch the calls compile to nothing.
 */
#ifndef SNAPFS_IOLOG_H
#define SNAPFS_IOLOG_H

#include <stddef.h>
#include <stdint.h>

enum iolog_file {
	IOLOG_BACKING,
	IOLOG_DATA,
	IOLOG_INDEX,
	IOLOG_WAL,
	IOLOG_OTHER,
};

#ifdef SNAPFS_FAULT_INJECTION
/* Opens the log named by SNAPFS_IOLOG, if any.  0 or -errno. */
int iolog_init(void);
void iolog_write(enum iolog_file f, uint64_t off, const void *buf, size_t len);
void iolog_zero(enum iolog_file f, uint64_t off, uint64_t len);
void iolog_truncate(enum iolog_file f, uint64_t size);
void iolog_sync(enum iolog_file f);
/* A note in the log, e.g. "snapshot UUID" once a snapshot is durable. */
void iolog_mark(const char *text);
#else
static inline int iolog_init(void)
{
	return 0;
}
#define iolog_write(f, off, buf, len) ((void)0)
#define iolog_zero(f, off, len) ((void)0)
#define iolog_truncate(f, size) ((void)0)
#define iolog_sync(f) ((void)0)
#define iolog_mark(text) ((void)0)
#endif

#endif
