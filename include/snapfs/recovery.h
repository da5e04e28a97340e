/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * recovery.h - what the daemon checks at mount and records at a clean
 * stop, so that snapshots and bitmaps never vouch for what it did not see.
 */
#ifndef SNAPFS_RECOVERY_H
#define SNAPFS_RECOVERY_H

#include <stdbool.h>

struct daemon;
struct store;

/*
 * Runs once the store, snapshots and change tracking are loaded: an
 * offline change of the backing drops the snapshots and widens the open
 * generation; a machine crash under durability=process widens it.  Then
 * forgets the last stop's record, so a crash of this run cannot pass for
 * a clean one.  0 or -errno.
 */
int recovery_at_mount(struct daemon *d);

/* Whether the last run was on this boot of the kernel (so a crash of it
 * left the page cache intact); read once, before recovery_at_mount
 * records this run's boot, into daemon.same_boot. */
bool recovery_same_boot(struct store *s);

/* Records the backing as it is after the final flush of a clean stop. */
void recovery_at_clean_stop(struct daemon *d);

#endif
