/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fs.h - the FUSE front end: requests in, module calls, replies out.
 */
#ifndef SNAPFS_FS_H
#define SNAPFS_FS_H

struct daemon;
struct fs;

/* The largest read or write one request carries. */
#define FS_MAX_IO (1u << 20)

/* Worker threads serving requests. */
#define FS_WORKERS 16

/* Creates the session and mounts it on d->opts.mountpoint; installs the
 * SIGTERM/SIGINT/SIGHUP handlers that end the loop.  0 or -errno with a
 * logged reason. */
int fs_mount(struct fs **out, struct daemon *d);

/* Serves requests on worker threads until unmounted or signalled.  0 or
 * -errno. */
int fs_loop(struct fs *fs);

/*
 * Claims live.img for a change no open file may see happen (a revert):
 * once no file of it is open (waiting up to 2 s for closes in flight),
 * new opens fail with EBUSY until fs_live_unclaim.  0, or -EBUSY while a
 * process or a loop device keeps it open.  Any thread.
 */
int fs_live_claim(struct fs *fs);
void fs_live_unclaim(struct fs *fs);

/* Makes the kernel forget what it cached of live.img (pages, size), after
 * a change that did not come through the mount.  Any thread. */
void fs_live_changed(struct fs *fs);

/* The same after the image grew: live.img's and every bitmap's size. */
void fs_image_grown(struct fs *fs);

/* Unmounts (if still mounted) and frees the session. */
void fs_unmount(struct fs *fs);

#endif
