// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * iolog.c - the write-ordering log (fault-injection builds only).
 *
 * Records, in one append-only file: W (a completed write, with its
 * bytes), Z (a completed punch or zero range), T (a truncation), S (a
 * sync, recorded before it starts) and M (a marker).  A write logged
 * before a sync record of its file had completed before that sync began,
 * so the sync covers it; anything logged after may or may not have
 * reached the disk.  One mutex orders the records.
 *
 * Record: u32 magic 'SNIO', u8 kind, u8 file, u16 0, u64 offset,
 * u64 length, then length bytes for W and M.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapfs/iolog.h"
#include "snapfs/log.h"

#ifdef SNAPFS_FAULT_INJECTION

struct record {
	uint32_t magic;
	uint8_t kind;
	uint8_t file;
	uint16_t pad;
	uint64_t off;
	uint64_t len;
};

static int log_fd = -1;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

int iolog_init(void)
{
	const char *path = getenv("SNAPFS_IOLOG");

	if (!path || !*path)
		return 0;
	log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (log_fd < 0) {
		log_error("iolog: %s: %s", path, strerror(errno));
		return -errno;
	}
	return 0;
}

static void put(char kind, enum iolog_file f, uint64_t off, uint64_t len,
		const void *data)
{
	struct record r = {
		0x4f494e53, (uint8_t)kind, (uint8_t)f, 0, off, len
	};

	if (log_fd < 0)
		return;
	pthread_mutex_lock(&lock);
	if (write(log_fd, &r, sizeof(r)) != sizeof(r) ||
	    (data && write(log_fd, data, len) != (ssize_t)len))
		log_error("iolog: write failed: the log is incomplete");
	pthread_mutex_unlock(&lock);
}

void iolog_write(enum iolog_file f, uint64_t off, const void *buf, size_t len)
{
	put('W', f, off, len, buf);
}

void iolog_zero(enum iolog_file f, uint64_t off, uint64_t len)
{
	put('Z', f, off, len, NULL);
}

void iolog_truncate(enum iolog_file f, uint64_t size)
{
	put('T', f, size, 0, NULL);
}

void iolog_sync(enum iolog_file f)
{
	put('S', f, 0, 0, NULL);
}

void iolog_mark(const char *text)
{
	put('M', IOLOG_OTHER, 0, strlen(text), text);
}

#endif
