// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * recovery.c - the checks between runs.
 *
 * Owns three store meta values: `backing_mtime` (the backing's
 * modification time and inode identity, written at a clean stop, erased
 * at mount), `run_durability` (the durability the last run used) and
 * `run_boot_id` (the kernel's boot id at mount).
 *
 * - Offline change: if the backing is a regular file and its modification
 *   time differs from the one the last clean stop recorded, someone wrote
 *   it while no daemon was watching: the snapshots no longer hold their
 *   instant and are dropped, and the open generation becomes all ones.
 *   (A size change is refused earlier, as bad input; a block device
 *   cannot be told, so nothing is assumed.)
 * - Unclean stop: `run_boot_id` (the kernel's boot id at mount) tells a
 *   crash of the daemon (same boot: the page cache, with cbt.map and
 *   whatever was written without a sync, survived) from a crash of the
 *   machine.  After a machine crash under durability=process bits may be
 *   lost, so the open generation becomes all ones.  Under durability=full
 *   nothing is widened: every bit's write intent was durable before its
 *   write was issued (cbt.c).
 *
 * Both are recorded as events and in the generation's metadata, which
 * `snapfsctl status` shows.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapfs/backing.h"
#include "snapfs/cbt.h"
#include "snapfs/daemon.h"
#include "snapfs/iolog.h"
#include "snapfs/log.h"
#include "snapfs/recovery.h"
#include "snapfs/snapshot.h"
#include "snapfs/store.h"

/* The kernel's boot id, or "" when it cannot be read. */
static void boot_id(char *buf, size_t len)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, (int)len, f))
			buf[0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		fclose(f);
	}
}

bool recovery_same_boot(struct store *s)
{
	char recorded[64] = "", now[64];

	store_get_meta(s, "run_boot_id", recorded, sizeof(recorded));
	boot_id(now, sizeof(now));
	return now[0] && !strcmp(recorded, now);
}

static void backing_stamp(const struct backing *b, char *buf, size_t len)
{
	snprintf(buf, len, "%lld.%09ld %s", (long long)b->mtime.tv_sec,
		 b->mtime.tv_nsec, b->identity);
}

int recovery_at_mount(struct daemon *d)
{
	const struct store_info *si = store_info(d->store);
	char recorded[160] = "", now[160], dur[16] = "full";
	bool changed;
	int r;

	store_get_meta(d->store, "backing_mtime", recorded, sizeof(recorded));
	store_get_meta(d->store, "run_durability", dur, sizeof(dur));
	backing_stamp(&d->backing, now, sizeof(now));
	changed = !d->backing.is_blkdev && recorded[0] && strcmp(recorded, now);
	if (changed) {
		struct snapshot *v;
		size_t n = 0;

		if (snapshots_list(d->snaps, &v, &n) == 0)
			free(v);
		r = snapshots_drop_all(d->snaps);
		if (r)
			return r;
		r = cbt_widen(d->cbt, "widened after an offline change of the "
				      "backing");
		if (r)
			return r;
		store_add_event(
			d->store, "offline-change",
			"the backing was modified while unmounted "
			"(recorded %s, found %s): %zu snapshots dropped, "
			"generation %llu widened",
			recorded, now, n,
			(unsigned long long)cbt_open_generation(d->cbt));
	} else if (!si->prev_clean && !strcmp(dur, "process") &&
		   !d->same_boot) {
		r = cbt_widen(d->cbt, "widened after a machine crash "
				      "(durability=process)");
		if (r)
			return r;
		store_add_event(
			d->store, "widened",
			"generation %llu widened: the last run "
			"(durability=process) ended in a machine crash",
			(unsigned long long)cbt_open_generation(d->cbt));
	}
	boot_id(now, sizeof(now));
	r = store_set_meta(d->store, "run_boot_id", now);
	if (!r)
		r = store_set_meta(d->store, "backing_mtime", "");
	if (!r)
		r = store_set_meta(d->store, "run_durability",
				   d->opts.durability == DURABILITY_FULL
					   ? "full"
					   : "process");
	return r;
}

void recovery_at_clean_stop(struct daemon *d)
{
	char now[160];

	/* The modification time recorded must be the one a power loss
	 * leaves: sync the inode (fdatasync may not) before reading it. */
	iolog_mark("clean stop");
	if (fsync(d->backing.fd) < 0)
		log_warn("recovery: fsync of the backing: %s", strerror(errno));
	if (backing_stat(&d->backing)) {
		log_warn("recovery: cannot stat the backing; the next mount "
			 "will not detect offline changes");
		return;
	}
	backing_stamp(&d->backing, now, sizeof(now));
	if (store_set_meta(d->store, "backing_mtime", now))
		log_warn("recovery: cannot record the backing's state");
}
