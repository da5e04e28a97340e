/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * daemon.h - the one context of a running snapfs: every module's object,
 * built by main.c in dependency order and torn down in reverse.
 */
#ifndef SNAPFS_DAEMON_H
#define SNAPFS_DAEMON_H

#include <stdbool.h>

#include "snapfs/backing.h"
#include "snapfs/options.h"
#include "snapfs/tree.h"

struct store;
struct uring_engine;
struct snapshots;
struct cbt;
struct cow;
struct ctl;
struct fs;
struct revert_resume;

struct daemon {
	struct snapfs_options opts;
	char *store_path; /* absolute */
	struct backing backing;
	struct store *store;
	struct uring_engine *io;
	struct snapshots *snaps;
	struct cbt *cbt;
	struct cow *cow;
	struct tree tree;
	struct ctl *ctl;
	struct fs *fs;
	bool same_boot; /* the last run was on this boot (recovery.c) */
	struct revert_resume *resume; /* a revert being finished (revert.c) */
};

#endif
