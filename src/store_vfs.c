// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * store_vfs.c - the SQLite VFS the daemon's index goes through.
 *
 * SQLite's "unix-excl": the daemon alone opens its store (store_dir.c
 * locks it), so the index is locked once for the process and the WAL's
 * index lives in the heap.  With the default "unix", every read
 * transaction (each snapshot lookup) took and dropped fcntl locks on
 * index.db-shm: a snapshot whose every block was preserved in 4 KiB
 * pieces read at 0.22 of live.img at queue depth 16 on tmpfs, most of
 * the daemon's time in those locks and the context switches behind them.
 * A WAL left by a crash is read back at the next open all the same;
 * `snapfsctl check` reads a stopped store through the default VFS.
 *
 * With --enable-fault-injection, the power-loss tests' VFS on top of it:
 * every write, truncation and sync of the index and its WAL recorded in
 * the iolog (iolog.h), and the fault point index.checkpoint on every
 * write into index.db, registered (once) only when SNAPFS_IOLOG is set or
 * SNAPFS_FAULT names that point.
 *
 * Locking: none of its own; SQLite calls it under the connection's lock.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "snapfs/fault.h"
#include "snapfs/iolog.h"
#include "store_int.h"

#ifdef SNAPFS_FAULT_INJECTION
/* One file SQLite opened through the logged VFS. */
struct logged_file {
	sqlite3_file base;
	enum iolog_file id;
	sqlite3_file *real; /* allocated right after this struct */
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs logged_vfs;

#define REAL(f) (((struct logged_file *)(f))->real)

static int lf_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int lf_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int lf_write(sqlite3_file *f, const void *buf, int amt,
		    sqlite3_int64 off)
{
	int rc;

	/* Under WAL only a checkpoint writes the index itself: the point
	 * where a crash leaves index.db sound only with its WAL. */
	if (((struct logged_file *)f)->id == IOLOG_INDEX &&
	    FAULT("index.checkpoint"))
		return SQLITE_IOERR_WRITE;
	rc = REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);

	if (rc == SQLITE_OK)
		iolog_write(((struct logged_file *)f)->id, (uint64_t)off, buf,
			    (size_t)amt);
	return rc;
}

static int lf_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	int rc = REAL(f)->pMethods->xTruncate(REAL(f), size);

	if (rc == SQLITE_OK)
		iolog_truncate(((struct logged_file *)f)->id, (uint64_t)size);
	return rc;
}

static int lf_sync(sqlite3_file *f, int flags)
{
	iolog_sync(((struct logged_file *)f)->id);
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int lf_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int lf_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}

static int lf_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}

static int lf_check_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int lf_file_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int lf_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int lf_device_characteristics(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int lf_shm_map(sqlite3_file *f, int pg, int sz, int extend,
		      void volatile **p)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, p);
}

static int lf_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void lf_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int lf_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static const sqlite3_io_methods logged_methods = {
	.iVersion = 2,
	.xClose = lf_close,
	.xRead = lf_read,
	.xWrite = lf_write,
	.xTruncate = lf_truncate,
	.xSync = lf_sync,
	.xFileSize = lf_file_size,
	.xLock = lf_lock,
	.xUnlock = lf_unlock,
	.xCheckReservedLock = lf_check_reserved,
	.xFileControl = lf_file_control,
	.xSectorSize = lf_sector_size,
	.xDeviceCharacteristics = lf_device_characteristics,
	.xShmMap = lf_shm_map,
	.xShmLock = lf_shm_lock,
	.xShmBarrier = lf_shm_barrier,
	.xShmUnmap = lf_shm_unmap,
};

static bool ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);

	return a >= b && !strcmp(s + a - b, tail);
}

static int lf_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
		   int flags, int *out_flags)
{
	struct logged_file *l = (struct logged_file *)f;
	int rc;

	(void)vfs;
	l->real = (sqlite3_file *)(l + 1);
	rc = real_vfs->xOpen(real_vfs, name, l->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		l->base.pMethods = NULL;
		return rc;
	}
	l->id = !name			  ? IOLOG_OTHER
		: ends_with(name, "-wal") ? IOLOG_WAL
		: ends_with(name, ".db") || ends_with(name, ".db.new")
			? IOLOG_INDEX
			: IOLOG_OTHER;
	l->base.pMethods = &logged_methods;
	return SQLITE_OK;
}

static int lf_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	int rc = real_vfs->xDelete(real_vfs, name, sync_dir);

	(void)vfs;
	if (rc == SQLITE_OK && ends_with(name, "-wal"))
		iolog_truncate(IOLOG_WAL, 0);
	return rc;
}

static void logged_vfs_register(void)
{
	real_vfs = sqlite3_vfs_find(NULL);
	logged_vfs = *real_vfs;
	logged_vfs.zName = "snapfs-iolog";
	logged_vfs.szOsFile =
		(int)sizeof(struct logged_file) + real_vfs->szOsFile;
	logged_vfs.xOpen = lf_open;
	logged_vfs.xDelete = lf_delete;
	logged_vfs.pNext = NULL;
	sqlite3_vfs_register(&logged_vfs, 1);
}

static void iolog_setup(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	if (getenv("SNAPFS_IOLOG") || fault_armed("index.checkpoint"))
		pthread_once(&once, logged_vfs_register);
}

#else

static void iolog_setup(void)
{
}

#endif

static void excl_register(void)
{
	sqlite3_vfs *excl = sqlite3_vfs_find("unix-excl");

	if (excl)
		sqlite3_vfs_register(excl, 1);
}

void store_vfs_setup(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, excl_register);
	iolog_setup();
}
