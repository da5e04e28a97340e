// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fault.c - fault injection for the reliability tests.
 *
 * Owns the list of fault points (every I/O, sync and index commit of the
 * backing, the data file and the bitmaps) and the one armed by
 * SNAPFS_FAULT.  Built only with --enable-fault-injection; a production
 * build has no trace of it.  The hit counter is atomic, so points may be
 * passed on any thread.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapfs/fault.h"
#include "snapfs/log.h"

#ifdef SNAPFS_FAULT_INJECTION

static const char *const points[] = {
	"backing.read", /* old bytes read for preservation, live reads */
	"backing.write", /* the overwrite of live.img */
	"backing.sync", /* fsync of live.img, before a snapshot */
	"backing.discard", /* punch hole / zero range */
	"backing.grow", /* a regular-file backing extended (resize) */
	"data.write", /* a preserved chunk into the data file */
	"data.read", /* a preserved chunk for a snapshot read */
	"data.sync", /* fdatasync of the data file before a commit */
	"index.commit", /* the group commit of chunks and bitmap bits */
	"index.snapshot", /* recording a new snapshot */
	"index.purge", /* deleting a snapshot and its copies */
	"index.migrate", /* an older index brought to this format */
	"index.checkpoint", /* a write into index.db: under WAL, only a
			     * checkpoint writes there */
	"revert.copy", /* a revert's copy of up to 1 MiB back into live */
	NULL,
};

static struct {
	char point[32];
	unsigned long first, count;
	int err;
	unsigned long hits;
} armed;

static bool known(const char *point)
{
	for (int i = 0; points[i]; i++)
		if (!strcmp(points[i], point))
			return true;
	return false;
}

bool fault_armed(const char *point)
{
	return armed.first && !strcmp(armed.point, point);
}

int fault_init(void)
{
	const char *spec = getenv("SNAPFS_FAULT");
	char err[16] = "";
	int n;

	if (!spec || !*spec)
		return 0;
	armed.count = 1;
	n = sscanf(spec, "%31[^:]:%lu:%15[^:]:%lu", armed.point, &armed.first,
		   err, &armed.count);
	if (n < 3 || !known(armed.point) || !armed.first) {
		log_error("fault: SNAPFS_FAULT=%s: want POINT:N:EIO|ENOSPC|"
			  "SHORT|KILL[:COUNT] with a known point",
			  spec);
		return -EINVAL;
	}
	if (!strcmp(err, "EIO"))
		armed.err = -EIO;
	else if (!strcmp(err, "ENOSPC"))
		armed.err = -ENOSPC;
	else if (!strcmp(err, "SHORT"))
		armed.err = FAULT_SHORT;
	else if (!strcmp(err, "KILL"))
		armed.err = FAULT_KILL;
	else {
		log_error("fault: unknown error '%s'", err);
		return -EINVAL;
	}
	log_warn("fault: %s fails with %s at pass %lu (%lu times)", armed.point,
		 err, armed.first, armed.count);
	return 0;
}

int fault_hit(const char *point)
{
	unsigned long hit;

	if (!known(point)) {
		log_error("fault: unknown point %s", point);
		abort();
	}
	if (!armed.first || strcmp(point, armed.point))
		return 0;
	hit = __atomic_add_fetch(&armed.hits, 1, __ATOMIC_RELAXED);
	if (hit < armed.first || hit >= armed.first + armed.count)
		return 0;
	if (armed.err == FAULT_KILL) {
		log_warn("fault: %s pass %lu: killing the daemon", point, hit);
		raise(SIGKILL);
	}
	log_warn("fault: %s pass %lu fails", point, hit);
	return armed.err;
}

#endif
