/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * export.h - snapfsctl export-diff: a snapshot's changes as a Ceph RBD
 * diff stream ("rbd diff v1"), which `rbd import-diff` applies to an RBD
 * image and `rbd merge-diff` joins.
 */
#ifndef SNAPFS_EXPORT_H
#define SNAPFS_EXPORT_H

#include <stddef.h>

#include "snapfs/backup.h"
#include "snapfs/progress.h"

struct export_job {
	const char *source; /* MNT/snapshots/UUID.img */
	const char *uuid; /* the to-snapshot's name in the stream */
	const char *since; /* the from-snapshot's name; NULL: from empty */
	/* with since: the extents changed since it (else the data extents
	 * of the source are exported) */
	const struct backup_extent *extents;
	size_t nextents;
	const char *dest; /* a file; NULL: standard output */
	enum progress_mode progress; /* AUTO shows none on standard output */
};

/*
 * Writes the stream: a file is written beside dest and renamed over it
 * once complete and synced, so dest is whole or untouched.  0, or -errno
 * with one line in err.
 */
int export_diff_run(const struct export_job *job, char *err, size_t err_len);

#endif
