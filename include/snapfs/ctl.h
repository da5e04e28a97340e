/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl.h - the control channel between snapfsctl and the daemon.
 *
 * A Unix stream socket named CTL_SOCKET in the store directory; the mount
 * root's xattr CTL_XATTR names that directory, so users only ever name
 * the mount point.  One request per connection: a line
 * "COMMAND [ARG...]\n"; the reply's first line is "ok" or
 * "error ERRNO MESSAGE", the rest is the output to print as it is.  A
 * long request (revert) sends lines "progress DONE TOTAL" (bytes) before
 * its reply.
 *
 * But a group snapshot (one snapshot of each of several mounts at one
 * instant) is a conversation on one connection per mount, in lines:
 *   hold TIMEOUT_MS  "ok held": every write is held back
 *   take             "ok UUID": the snapshot is taken, not shown yet
 *   commit           "ok": it is kept, and writes go on
 *   abort            "ok": what was taken is deleted, and writes go on
 * An "error ERRNO MESSAGE" reply ends it with nothing held or taken.  The
 * peer going away, a line out of order, or TIMEOUT_MS (1 to
 * CTL_HOLD_MAX_MS) passing since the hold count as abort.
 */
#ifndef SNAPFS_CTL_H
#define SNAPFS_CTL_H

#include <stddef.h>
#include <sys/types.h>

#define CTL_SOCKET "control"
#define CTL_XATTR "user.snapfs.store"
#define CTL_MAX_REQUEST 4096
#define CTL_HOLD_MAX_MS 600000

struct daemon;
struct ctl;

/* Binds the socket and starts the thread that serves it.  0 or -errno. */
int ctl_start(struct ctl **out, struct daemon *d);

/* Stops serving, removes the socket. */
void ctl_stop(struct ctl *c);

/*
 * Runs one request line for a peer with uid `peer` and returns the whole
 * reply in *reply (malloc'd, *len bytes).  0, or -ENOMEM.  Any thread.
 */
int ctl_handle(struct daemon *d, uid_t peer, const char *line, char **reply,
	       size_t *len);

#endif
