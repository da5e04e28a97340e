/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tree.h - the mounted tree: names, inode numbers and attributes.
 *
 *   /                 1
 *   /live.img         2
 *   /snapshots/       3    /snapshots/<uuid>.img   (1 << 32) + seq
 *   /cbt/             4    /cbt/<N>.bitmap         (2 << 32) + N
 *
 * Snapshot seqs are never reused, so neither are their inode numbers.
 */
#ifndef SNAPFS_TREE_H
#define SNAPFS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

struct snapshots;
struct cbt;
struct store;
struct backing;

#define TREE_INO_ROOT 1
#define TREE_INO_LIVE 2
#define TREE_INO_SNAPDIR 3
#define TREE_INO_CBTDIR 4
#define TREE_INO_SNAP_BASE (1ull << 32)
#define TREE_INO_CBT_BASE (2ull << 32)

enum tree_kind {
	TREE_NONE,
	TREE_ROOT,
	TREE_LIVE,
	TREE_SNAPDIR,
	TREE_CBTDIR,
	TREE_SNAPSHOT,
	TREE_BITMAP,
};

struct tree {
	struct snapshots *snaps;
	struct cbt *cbt;
	struct store *store;
	const struct backing *backing; /* for st_blocks; NULL: all allocated */
	uint64_t image_size;
	bool ro;
	uid_t uid;
	gid_t gid;
	struct timespec mounted; /* times of the fixed entries */
};

struct tree_dirent {
	char name[48];
	uint64_t ino;
	mode_t mode;
};

/* One extended attribute of a file of the tree. */
struct tree_xattr {
	char name[40];
	char value[64];
};

/* What ino names (without checking that it exists). */
enum tree_kind tree_kind_of(uint64_t ino);

/* The snapshot seq of a snapshot inode. */
int64_t tree_snapshot_seq(uint64_t ino);

/* The generation of a bitmap inode. */
uint64_t tree_bitmap_generation(uint64_t ino);

/* Fills st for ino; 0 or -ENOENT.  Deleted snapshots still open answer
 * with st_nlink 0.  st_blocks: live.img's are the backing's; a
 * snapshot's are the backing's plus the store's preserved bytes, at most
 * its size (never below what its data needs, found without reading it);
 * a bitmap is all data. */
int tree_getattr(struct tree *t, uint64_t ino, struct stat *st);

/* Resolves name in directory parent; 0 with st (st_ino set) or -ENOENT /
 * -ENOTDIR. */
int tree_lookup(struct tree *t, uint64_t parent, const char *name,
		struct stat *st);

/* The entries of directory ino, "." and ".." first.  Caller frees *out. */
int tree_readdir(struct tree *t, uint64_t ino, struct tree_dirent **out,
		 size_t *n);

/*
 * The user.snapfs.* attributes of ino: uuid, generation, creation time
 * and unit sizes on a snapshot; generation, block size, blocks, state and
 * history on a bitmap (the root's store path is the front end's).  Caller
 * frees *out.
 */
int tree_xattrs(struct tree *t, uint64_t ino, struct tree_xattr **out,
		size_t *n);

#endif
