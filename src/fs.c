// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fs.c - the FUSE front end.
 *
 * Owns the low-level FUSE session: it turns each request into a call on
 * tree.c (names, attributes), cow.c (data) or snapshot.c (open, delete)
 * and the result into a reply; errors become errno here and nowhere else.
 * It is the only file that includes fuse_lowlevel.h.
 *
 * Threads: libfuse's multithreaded loop; handlers run on its workers and
 * block on their own I/O batch.  The kernel's write-back cache stays off
 * (a snapshot must hold every write that returned, in the order the
 * writer made them), but live.img keeps its page cache between opens
 * (every change goes through this mount) and snapshot images, which never
 * change, keep theirs too.  live.img is opened with parallel direct writes
 * so that O_DIRECT writers at a queue depth really run in parallel.
 *
 * Where the kernel takes FUSE_DIRECT_IO_ALLOW_MMAP (6.6 and later) every
 * open of an image is FOPEN_DIRECT_IO: reads and writes go straight to
 * the daemon at the caller's size, and only mmap uses the page cache,
 * which the kernel keeps coherent (a direct write drops the pages it
 * overwrites).  Measured here, FUSE's page-cache path moves 1 MiB
 * buffered I/O at a sixth of the direct path's rate on fast storage
 * (550 vs 3240 MB/s reads on tmpfs, ceiling.c both ways), and a loop
 * device on live.img then caches once, not twice.  On older kernels
 * images keep the page cache, which mmap needs there.
 *
 * The root directory answers getxattr("user.snapfs.store") with the store
 * directory, where snapfsctl finds the control socket.
 *
 * Answering getxattr at all would make the kernel ask for
 * "security.capability" before every write (a whole extra round trip)
 * unless the daemon takes over privilege removal with
 * FUSE_HANDLE_KILLPRIV_V2, which also marks the superblock SB_NOSEC.
 * libfuse 3.14 cannot request that flag (nor FUSE_DIRECT_IO_ALLOW_MMAP),
 * so the session's I/O is wrapped (fuse_session_custom_io) and the flags
 * added to the INIT reply.  KILLPRIV_V2 is
 * correct here: no file of the tree can carry set-id bits or file
 * capabilities (chmod and setxattr are refused), so there is never a
 * privilege to remove.
 */
#define FUSE_USE_VERSION 314
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "snapfs/cbt.h"
#include "snapfs/cow.h"
#include "snapfs/daemon.h"
#include "snapfs/fs.h"
#include "snapfs/log.h"
#include "snapfs/scratch.h"
#include "snapfs/snapshot.h"
#include "snapfs/tree.h"
#include "snapfs/uuid.h"

#ifndef FOPEN_PARALLEL_DIRECT_WRITES
#define FOPEN_PARALLEL_DIRECT_WRITES (1 << 6)
#endif
#ifndef FOPEN_DIRECT_IO
#define FOPEN_DIRECT_IO (1 << 0)
#endif
/* flags2 bit of FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36, protocol 7.39) */
#define INIT2_DIRECT_IO_ALLOW_MMAP (1u << 4)
#ifndef FOPEN_KEEP_CACHE
#define FOPEN_KEEP_CACHE (1 << 1)
#endif

/* An open bitmap file.  While its generation is the open one, reads see
 * the bits as they are now; once closed it is rendered once and served
 * from memory. */
struct bitmap_handle {
	uint64_t gen;
	uint8_t *bytes; /* NULL until rendered */
	uint64_t len; /* bytes rendered */
	pthread_mutex_t lock;
};

/* An open snapshot image. */
struct snap_handle {
	int64_t seq;
	uint64_t size; /* its own, which live.img may outgrow */
};

/* An open live.img: where its write-back error cursor stands. */
struct live_handle {
	uint64_t err_seen; /* cow_error_mark at open, then cow_fsync's */
	bool writable;
};

/* How long fs_live_claim waits for closes in flight: the kernel sends
 * a FUSE release after close(2) has returned, and a loop device's detach
 * closes its file after losetup -d has returned. */
#define LIVE_CLOSE_WAIT_MS 2000

#define XATTR_STORE "user.snapfs.store"
#define FIXED_TIMEOUT 86400.0 /* the fixed entries never change */

struct fs {
	struct daemon *d;
	struct fuse_session *se;
	bool mounted;
	uint64_t init_unique; /* the INIT request, until answered */
	bool kernel_killpriv_v2; /* the kernel offered FUSE_HANDLE_KILLPRIV_V2 */
	bool kernel_dio_mmap; /* ... and FUSE_DIRECT_IO_ALLOW_MMAP */
	bool dio_mmap; /* FUSE_DIRECT_IO_ALLOW_MMAP is on */
	pthread_mutex_t live_lock;
	unsigned live_opens; /* open files of live.img */
	bool live_claimed; /* fs_live_claim: opens of live.img refused */
};

static struct daemon *req_daemon(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Attribute and entry timeouts: snapshot names come and go, so their
 * entries are not cached; their attributes never change. */
static double entry_timeout(uint64_t ino)
{
	return tree_kind_of(ino) == TREE_SNAPSHOT ? 0.0 : FIXED_TIMEOUT;
}

static void fs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = FS_MAX_IO;
	conn->max_readahead = FS_MAX_IO;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
}

static void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct daemon *d = req_daemon(req);
	struct fuse_entry_param e;
	int r;

	memset(&e, 0, sizeof(e));
	r = tree_lookup(&d->tree, parent, name, &e.attr);
	if (r) {
		fuse_reply_err(req, -r);
		return;
	}
	e.ino = e.attr.st_ino;
	e.attr_timeout = FIXED_TIMEOUT;
	e.entry_timeout = entry_timeout(e.ino);
	fuse_reply_entry(req, &e);
}

static void fs_op_getattr(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct stat st;
	int r;

	(void)fi;
	r = tree_getattr(&req_daemon(req)->tree, ino, &st);
	if (r)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, FIXED_TIMEOUT);
}

static void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			  int to_set, struct fuse_file_info *fi)
{
	struct daemon *d = req_daemon(req);
	struct stat st;
	int r;

	(void)fi;
	r = tree_getattr(&d->tree, ino, &st);
	if (r) {
		fuse_reply_err(req, -r);
		return;
	}
	if (tree_kind_of(ino) == TREE_SNAPSHOT) {
		fuse_reply_err(req, EROFS);
		return;
	}
	/* The image's size is the backing's; touching times is harmless
	 * and ignored; everything else is refused. */
	if ((to_set & FUSE_SET_ATTR_SIZE) &&
	    (tree_kind_of(ino) != TREE_LIVE || attr->st_size != st.st_size)) {
		fuse_reply_err(req, d->opts.ro ? EROFS : EPERM);
		return;
	}
	if (to_set &
	    (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fuse_reply_attr(req, &st, FIXED_TIMEOUT);
}

static void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off, struct fuse_file_info *fi)
{
	struct tree_dirent *ents;
	size_t n, used = 0;
	char *buf;
	int r;

	(void)fi;
	r = tree_readdir(&req_daemon(req)->tree, ino, &ents, &n);
	if (r) {
		fuse_reply_err(req, -r);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		free(ents);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < n; i++) {
		struct stat st = { .st_ino = ents[i].ino,
				   .st_mode = ents[i].mode };
		size_t len =
			fuse_add_direntry(req, buf + used, size - used,
					  ents[i].name, &st, (off_t)(i + 1));

		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
	free(ents);
}

/* Replies to an open with flags libfuse 3.14 cannot express
 * (FOPEN_PARALLEL_DIRECT_WRITES): struct fuse_open_out by hand.  0 or
 * -errno when the reply could not be sent (the open never happened). */
static int reply_open_flags(fuse_req_t req, uint64_t fh, uint32_t flags)
{
	struct {
		uint64_t fh;
		uint32_t open_flags;
		uint32_t padding;
	} out = { fh, flags, 0 };
	struct iovec iov = { &out, sizeof(out) };

	return fuse_reply_iov(req, &iov, 1);
}

static void bitmap_handle_free(struct bitmap_handle *h)
{
	pthread_mutex_destroy(&h->lock);
	free(h->bytes);
	free(h);
}

static void live_closed(struct fs *fs)
{
	pthread_mutex_lock(&fs->live_lock);
	fs->live_opens--;
	pthread_mutex_unlock(&fs->live_lock);
}

int fs_live_claim(struct fs *fs)
{
	int r;

	for (int waited = 0;; waited += 10) {
		pthread_mutex_lock(&fs->live_lock);
		r = fs->live_claimed ? -EBUSY : 0;
		if (!r && !fs->live_opens)
			fs->live_claimed = true;
		else if (!r)
			r = -EBUSY;
		pthread_mutex_unlock(&fs->live_lock);
		if (r != -EBUSY || waited >= LIVE_CLOSE_WAIT_MS)
			return r;
		usleep(10 * 1000);
	}
}

void fs_live_unclaim(struct fs *fs)
{
	pthread_mutex_lock(&fs->live_lock);
	fs->live_claimed = false;
	pthread_mutex_unlock(&fs->live_lock);
}

void fs_live_changed(struct fs *fs)
{
	int r = fuse_lowlevel_notify_inval_inode(fs->se, TREE_INO_LIVE, 0, 0);

	/* -ENOENT: the kernel has nothing of it cached */
	if (r && r != -ENOENT)
		log_warn("fs: cannot make the kernel forget live.img's cached "
			 "pages and size: %s",
			 strerror(-r));
}

void fs_image_grown(struct fs *fs)
{
	struct store_generation *g;
	size_t n;

	fs_live_changed(fs);
	if (cbt_list_generations(fs->d->cbt, &g, &n))
		return; /* their attributes time out, in a day */
	for (size_t i = 0; i < n; i++)
		if (!g[i].dropped)
			fuse_lowlevel_notify_inval_inode(
				fs->se,
				(fuse_ino_t)(TREE_INO_CBT_BASE + g[i].gen), 0,
				0);
	free(g);
}

static void fs_op_open(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct daemon *d = req_daemon(req);
	bool wants_write =
		(fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
	int r;

	switch (tree_kind_of(ino)) {
	case TREE_LIVE: {
		struct live_handle *h;

		if (wants_write && d->opts.ro) {
			fuse_reply_err(req, EROFS);
			return;
		}
		pthread_mutex_lock(&d->fs->live_lock);
		r = d->fs->live_claimed ? -EBUSY : 0;
		if (!r)
			d->fs->live_opens++;
		pthread_mutex_unlock(&d->fs->live_lock);
		if (r) {
			fuse_reply_err(req, -r);
			return;
		}
		h = calloc(1, sizeof(*h));
		if (!h) {
			live_closed(d->fs);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		/* Told of writes dropped from now on, as with errseq_t. */
		h->err_seen = cow_error_mark(d->cow);
		h->writable = wants_write;
		if (reply_open_flags(
			    req, (uint64_t)(uintptr_t)h,
			    FOPEN_KEEP_CACHE | FOPEN_PARALLEL_DIRECT_WRITES |
				    (d->fs->dio_mmap ? FOPEN_DIRECT_IO : 0))) {
			free(h);
			live_closed(d->fs);
		}
		return;
	}
	case TREE_SNAPSHOT:
		if (wants_write) {
			fuse_reply_err(req, EROFS);
			return;
		}
		{
			struct snap_handle *h = calloc(1, sizeof(*h));
			struct snapshot snap;

			r = h ? snapshots_open(d->snaps, tree_snapshot_seq(ino))
			      : -ENOMEM;
			if (r) {
				free(h);
				fuse_reply_err(req, -r);
				return;
			}
			h->seq = tree_snapshot_seq(ino);
			h->size = snapshots_get(d->snaps, h->seq, &snap)
					  ? 0
					  : snap.size;
			fi->fh = (uint64_t)(uintptr_t)h;
			fi->keep_cache = 1;
			fi->direct_io = d->fs->dio_mmap;
			if (fuse_reply_open(req, fi)) {
				snapshots_release(d->snaps, h->seq);
				free(h);
			}
			return;
		}
	case TREE_BITMAP: {
		uint64_t gen = tree_bitmap_generation(ino);
		struct bitmap_handle *h;
		struct stat st;

		if (wants_write) {
			fuse_reply_err(req, EROFS);
			return;
		}
		r = tree_getattr(&d->tree, ino, &st);
		if (r) {
			fuse_reply_err(req, -r);
			return;
		}
		h = calloc(1, sizeof(*h));
		if (!h) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		h->gen = gen;
		pthread_mutex_init(&h->lock, NULL);
		fi->fh = (uint64_t)(uintptr_t)h;
		/* The open generation changes with every first write to a
		 * block: never cached.  Closed ones never change. */
		if (gen >= cbt_open_generation(d->cbt))
			fi->direct_io = 1;
		else
			fi->keep_cache = 1;
		if (fuse_reply_open(req, fi))
			bitmap_handle_free(h);
		return;
	}
	case TREE_NONE:
		fuse_reply_err(req, ENOENT);
		return;
	default:
		fuse_reply_err(req, EISDIR);
	}
}

static void fs_op_release(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	if (tree_kind_of(ino) == TREE_SNAPSHOT) {
		struct snap_handle *h = (void *)(uintptr_t)fi->fh;

		snapshots_release(req_daemon(req)->snaps, h->seq);
		free(h);
	}
	if (tree_kind_of(ino) == TREE_BITMAP)
		bitmap_handle_free((void *)(uintptr_t)fi->fh);
	if (tree_kind_of(ino) == TREE_LIVE) {
		free((void *)(uintptr_t)fi->fh);
		live_closed(req_daemon(req)->fs);
	}
	fuse_reply_err(req, 0);
}

static ssize_t read_bitmap(struct daemon *d, struct bitmap_handle *h, void *buf,
			   size_t size, uint64_t off)
{
	ssize_t n = cbt_read_open(d->cbt, h->gen, buf, size, off);
	uint64_t len = cbt_bitmap_bytes(d->cbt), have;
	int r = 0;

	if (n != -ESTALE)
		return n;
	pthread_mutex_lock(&h->lock);
	if (!h->bytes) {
		/* taken first: a render during a resize is no shorter */
		h->len = cbt_bitmap_bytes(d->cbt);
		r = cbt_render(d->cbt, h->gen, &h->bytes);
	}
	have = h->len;
	pthread_mutex_unlock(&h->lock);
	if (r)
		return r;
	if (off >= len)
		return 0;
	if (size > len - off)
		size = (size_t)(len - off);
	/* rendered before the image grew: the new blocks were not part of
	 * this closed generation, so they read as zeros */
	n = off < have ? (ssize_t)(have - off < size ? have - off : size) : 0;
	memcpy(buf, h->bytes + off, (size_t)n);
	memset((char *)buf + n, 0, size - (size_t)n);
	return (ssize_t)size;
}

/* A snapshot's bytes, up to its own size (live.img may have grown since). */
static ssize_t read_snapshot(struct daemon *d, const struct snap_handle *h,
			     void *buf, size_t size, uint64_t off)
{
	if (off >= h->size)
		return 0;
	if (size > h->size - off)
		size = (size_t)(h->size - off);
	return cow_read_snapshot(d->cow, h->seq, buf, size, off);
}

static void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct daemon *d = req_daemon(req);
	ssize_t n;
	void *buf;

	if (size > FS_MAX_IO)
		size = FS_MAX_IO;
	buf = scratch_get(SCRATCH_REPLY, size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (tree_kind_of(ino) == TREE_LIVE)
		n = cow_read_live(d->cow, buf, size, (uint64_t)off);
	else if (tree_kind_of(ino) == TREE_SNAPSHOT)
		n = read_snapshot(d, (void *)(uintptr_t)fi->fh, buf, size,
				  (uint64_t)off);
	else if (tree_kind_of(ino) == TREE_BITMAP)
		n = read_bitmap(d, (void *)(uintptr_t)fi->fh, buf, size,
				(uint64_t)off);
	else
		n = -EISDIR;
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	scratch_put(SCRATCH_REPLY, buf);
}

static void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
			size_t size, off_t off, struct fuse_file_info *fi)
{
	struct daemon *d = req_daemon(req);
	ssize_t n;

	(void)fi;
	if (tree_kind_of(ino) != TREE_LIVE) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (d->opts.ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	n = cow_write_live(d->cow, buf, size, (uint64_t)off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

/* A close of an open file: live.img's reports a dropped write, once. */
static void fs_op_flush(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct live_handle *h = (void *)(uintptr_t)fi->fh;

	if (tree_kind_of(ino) == TREE_LIVE)
		fuse_reply_err(req,
			       -cow_close_error(req_daemon(req)->cow,
						&h->err_seen, h->writable));
	else
		fuse_reply_err(req, 0);
}

static void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	struct live_handle *h = (void *)(uintptr_t)fi->fh;

	(void)datasync;
	if (tree_kind_of(ino) == TREE_LIVE)
		fuse_reply_err(req,
			       -cow_fsync(req_daemon(req)->cow, &h->err_seen));
	else
		fuse_reply_err(req, 0);
}

static void fs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			    off_t len, struct fuse_file_info *fi)
{
	struct daemon *d = req_daemon(req);
	int r;

	(void)fi;
	if (tree_kind_of(ino) != TREE_LIVE || d->opts.ro) {
		fuse_reply_err(req, tree_kind_of(ino) == TREE_LIVE ||
						    tree_kind_of(ino) ==
							    TREE_SNAPSHOT
					    ? EROFS
					    : EISDIR);
		return;
	}
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* The size is fixed: without KEEP_SIZE the kernel would take a new
	 * end past it as the size, so such a call fails and changes
	 * nothing.  With it, the part inside the image is done. */
	if (!(mode & FALLOC_FL_KEEP_SIZE) &&
	    (uint64_t)off + (uint64_t)len > d->backing.size) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	mode &= ~FALLOC_FL_KEEP_SIZE;
	if (mode == FALLOC_FL_PUNCH_HOLE)
		r = cow_discard(d->cow, (uint64_t)off, (uint64_t)len, false);
	else if (mode == FALLOC_FL_ZERO_RANGE)
		r = cow_discard(d->cow, (uint64_t)off, (uint64_t)len, true);
	else if (mode == 0)
		r = 0; /* allocation changes no byte */
	else
		r = -EOPNOTSUPP;
	fuse_reply_err(req, -r);
}

/* SEEK_DATA / SEEK_HOLE: live.img and snapshots have the layout cow.c
 * gives them; a bitmap has no holes (all of it is data). */
static void fs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
			struct fuse_file_info *fi)
{
	struct daemon *d = req_daemon(req);
	enum tree_kind kind = tree_kind_of(ino);
	int64_t r;

	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	if (kind == TREE_BITMAP) {
		uint64_t size = cbt_bitmap_bytes(d->cbt);

		if ((uint64_t)off >= size)
			fuse_reply_err(req, ENXIO);
		else
			fuse_reply_lseek(
				req, whence == SEEK_DATA ? off : (off_t)size);
		return;
	}
	if (kind != TREE_LIVE && kind != TREE_SNAPSHOT) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (kind == TREE_SNAPSHOT) {
		const struct snap_handle *h = (void *)(uintptr_t)fi->fh;

		/* its own size: live.img may have grown since */
		r = (uint64_t)off >= h->size
			    ? -ENXIO
			    : cow_seek(d->cow, h->seq, (uint64_t)off, whence);
		if (r >= (int64_t)h->size)
			r = whence == SEEK_DATA ? -ENXIO : (int64_t)h->size;
	} else {
		r = cow_seek(d->cow, 0, (uint64_t)off, whence);
	}
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, (off_t)r);
}

static void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct daemon *d = req_daemon(req);
	char uuid[37];

	if (tree_kind_of(parent) == TREE_CBTDIR) {
		struct stat st;
		int r = tree_lookup(&d->tree, parent, name, &st);

		if (!r)
			r = cbt_drop(d->cbt, tree_bitmap_generation(st.st_ino));
		fuse_reply_err(req, -r);
		return;
	}
	if (tree_kind_of(parent) != TREE_SNAPDIR) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!uuid_from_image_name(name, uuid)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_reply_err(req, -snapshots_delete(d->snaps, uuid, false));
}

static void fs_op_refuse(fuse_req_t req, fuse_ino_t parent)
{
	fuse_reply_err(req,
		       tree_kind_of(parent) == TREE_SNAPDIR ? EROFS : EPERM);
}

static void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, dev_t rdev)
{
	(void)name;
	(void)mode;
	(void)rdev;
	fs_op_refuse(req, parent);
}

static void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode)
{
	(void)name;
	(void)mode;
	fs_op_refuse(req, parent);
}

static void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			 mode_t mode, struct fuse_file_info *fi)
{
	(void)name;
	(void)mode;
	(void)fi;
	fs_op_refuse(req, parent);
}

static void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)name;
	fs_op_refuse(req, parent);
}

static void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname,
			 unsigned int flags)
{
	(void)name;
	(void)newparent;
	(void)newname;
	(void)flags;
	fs_op_refuse(req, parent);
}

static void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct daemon *d = req_daemon(req);
	struct statvfs sv;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_blocks = (d->backing.size + 4095) / 4096;
	sv.f_files = 4;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/* Replies with value for a getxattr of size bytes. */
static void reply_xattr(fuse_req_t req, const char *value, size_t size)
{
	size_t len = strlen(value);

	if (!size)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
}

static void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			   size_t size)
{
	struct daemon *d = req_daemon(req);
	struct tree_xattr *v;
	size_t n;
	int r;

	if (ino == TREE_INO_ROOT && !strcmp(name, XATTR_STORE)) {
		reply_xattr(req, d->store_path, size);
		return;
	}
	r = tree_xattrs(&d->tree, ino, &v, &n);
	if (r) {
		fuse_reply_err(req, -r);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name)) {
			reply_xattr(req, v[i].value, size);
			free(v);
			return;
		}
	free(v);
	fuse_reply_err(req, ENODATA);
}

static void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct daemon *d = req_daemon(req);
	char names[1024];
	size_t used = 0, n;
	struct tree_xattr *v;
	int r;

	if (ino == TREE_INO_ROOT) {
		memcpy(names, XATTR_STORE, sizeof(XATTR_STORE));
		used = sizeof(XATTR_STORE);
	}
	r = tree_xattrs(&d->tree, ino, &v, &n);
	if (r) {
		fuse_reply_err(req, -r);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(v[i].name) + 1;

		if (used + len <= sizeof(names)) {
			memcpy(names + used, v[i].name, len);
			used += len;
		}
	}
	free(v);
	if (!size)
		fuse_reply_xattr(req, used);
	else if (size < used)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names, used);
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_op_init,
	.lookup = fs_op_lookup,
	.getattr = fs_op_getattr,
	.setattr = fs_op_setattr,
	.readdir = fs_op_readdir,
	.open = fs_op_open,
	.release = fs_op_release,
	.read = fs_op_read,
	.write = fs_op_write,
	.flush = fs_op_flush,
	.fsync = fs_op_fsync,
	.fallocate = fs_op_fallocate,
	.lseek = fs_op_lseek,
	.unlink = fs_op_unlink,
	.mknod = fs_op_mknod,
	.mkdir = fs_op_mkdir,
	.create = fs_op_create,
	.rmdir = fs_op_rmdir,
	.rename = fs_op_rename,
	.statfs = fs_op_statfs,
	.getxattr = fs_op_getxattr,
	.listxattr = fs_op_listxattr,
};

static void fs_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	enum log_level l = level <= FUSE_LOG_ERR       ? LOG_LVL_ERROR
			   : level <= FUSE_LOG_WARNING ? LOG_LVL_WARN
			   : level <= FUSE_LOG_INFO    ? LOG_LVL_INFO
						       : LOG_LVL_DEBUG;

	log_vwrite(l, fmt, ap);
}

static ssize_t fs_io_read(int fd, void *buf, size_t len, void *userdata)
{
	struct fs *fs = ((struct daemon *)userdata)->fs;
	ssize_t n = read(fd, buf, len);
	const struct fuse_in_header *in = buf;

	if (n >= (ssize_t)(sizeof(*in) + sizeof(struct fuse_init_in)) &&
	    in->opcode == FUSE_INIT) {
		const struct fuse_init_in *init = (const void *)(in + 1);

		fs->init_unique = in->unique;
		fs->kernel_killpriv_v2 =
			(init->flags & FUSE_HANDLE_KILLPRIV_V2) != 0;
		fs->kernel_dio_mmap =
			(init->flags & FUSE_INIT_EXT) &&
			(init->flags2 & INIT2_DIRECT_IO_ALLOW_MMAP);
	}
	return n;
}

static ssize_t fs_io_writev(int fd, struct iovec *iov, int count,
			    void *userdata)
{
	struct fs *fs = ((struct daemon *)userdata)->fs;
	const struct fuse_out_header *out = iov[0].iov_base;

	if (fs->init_unique && count >= 2 && iov[0].iov_len >= sizeof(*out) &&
	    out->unique == fs->init_unique) {
		if (out->error == 0 && fs->kernel_killpriv_v2 &&
		    iov[1].iov_len >= offsetof(struct fuse_init_out, flags) +
					      sizeof(uint32_t)) {
			struct fuse_init_out *init = iov[1].iov_base;

			init->flags |= FUSE_HANDLE_KILLPRIV_V2;
		}
		if (out->error == 0 && fs->kernel_dio_mmap &&
		    iov[1].iov_len >= offsetof(struct fuse_init_out, flags2) +
					      sizeof(uint32_t)) {
			struct fuse_init_out *init = iov[1].iov_base;

			init->flags |= FUSE_INIT_EXT;
			init->flags2 |= INIT2_DIRECT_IO_ALLOW_MMAP;
			fs->dio_mmap = true;
		}
		fs->init_unique = 0;
	}
	return writev(fd, iov, count);
}

static const struct fuse_custom_io fs_io = {
	.read = fs_io_read,
	.writev = fs_io_writev,
};

/* Whether the comma-separated list holds the option name (alone or as
 * name=value); a backslash escapes the next character, as in libfuse. */
static bool has_opt(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; *p;) {
		if (!strncmp(p, name, n) &&
		    (!p[n] || p[n] == ',' || p[n] == '='))
			return true;
		while (*p && *p != ',')
			p += p[0] == '\\' && p[1] ? 2 : 1;
		if (*p == ',')
			p++;
	}
	return false;
}

/*
 * The -o list handed to libfuse: the user's FUSE options plus ours.  The
 * backing's path goes in escaped (fuse_opt_add_opt_escaped): a comma in
 * it is part of the name, never the start of another option.
 */
static char *mount_opts(const struct daemon *d)
{
	const char *user = d->opts.fuse_opts;
	char *s = NULL, *name = NULL;
	bool ok;

	ok = asprintf(&name, "fsname=%s", d->backing.path) >= 0;
	if (!ok)
		name = NULL;
	ok = ok && (!*user || !fuse_opt_add_opt(&s, user)) &&
	     !fuse_opt_add_opt(&s, "subtype=snapfs") &&
	     (has_opt(user, "fsname") || !fuse_opt_add_opt_escaped(&s, name)) &&
	     (!d->opts.ro || !fuse_opt_add_opt(&s, "ro")) &&
	     (!has_opt(user, "allow_other") ||
	      has_opt(user, "default_permissions") ||
	      !fuse_opt_add_opt(&s, "default_permissions"));
	free(name);
	if (!ok) {
		free(s);
		return NULL;
	}
	return s;
}

int fs_mount(struct fs **out, struct daemon *d)
{
	char *opts = mount_opts(d);
	char *argv[5] = { "snapfs", "-o", opts, NULL, NULL };
	struct fuse_args args;
	struct fs *fs;
	int argc = 3;

	if (!opts)
		return -ENOMEM;
	if (d->opts.debug)
		argv[argc++] = "-d";
	args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	fuse_set_log_func(fs_log);
	fs = calloc(1, sizeof(*fs));
	if (!fs) {
		free(opts);
		return -ENOMEM;
	}
	fs->d = d;
	pthread_mutex_init(&fs->live_lock, NULL);
	fs->se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), d);
	fuse_opt_free_args(&args);
	free(opts);
	if (!fs->se) {
		log_error("fs: cannot create the FUSE session");
		free(fs);
		return -EINVAL;
	}
	if (fuse_set_signal_handlers(fs->se)) {
		fuse_session_destroy(fs->se);
		free(fs);
		return -EIO;
	}
	if (fuse_session_mount(fs->se, d->opts.mountpoint)) {
		log_error("fs: cannot mount on %s", d->opts.mountpoint);
		fuse_remove_signal_handlers(fs->se);
		fuse_session_destroy(fs->se);
		free(fs);
		return -EIO;
	}
	fs->mounted = true;
	d->fs = fs;
	if (fuse_session_custom_io(fs->se, &fs_io, fuse_session_fd(fs->se)))
		log_warn("fs: cannot wrap the session: every write will cost "
			 "a getxattr round trip");
	*out = fs;
	return 0;
}

int fs_loop(struct fs *fs)
{
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	int r;

	if (!cfg)
		return -ENOMEM;
	/* 16 workers serve a queue depth of 16 at once (libfuse's default
	 * is 10); each costs up to 1 MiB of receive buffer and its scratch
	 * buffers (scratch.c), which bounds the daemon's memory. */
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	fuse_loop_cfg_set_max_threads(cfg, FS_WORKERS);
	fuse_loop_cfg_set_idle_threads(cfg, FS_WORKERS);
	r = fuse_session_loop_mt(fs->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return r < 0 ? r : 0;
}

void fs_unmount(struct fs *fs)
{
	if (!fs)
		return;
	fuse_remove_signal_handlers(fs->se);
	if (fs->mounted)
		fuse_session_unmount(fs->se);
	fuse_session_destroy(fs->se);
	pthread_mutex_destroy(&fs->live_lock);
	free(fs);
}
