// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * tree.c - the names and attributes of the mounted tree.
 *
 * Owns the mapping between names, inode numbers and struct stat.  The
 * tree is fixed but for the snapshot images, which come from snapshot.c;
 * nothing here does I/O (an fstat of the backing aside) or knows FUSE, so
 * the FUSE front end only turns these answers into replies.
 *
 * st_blocks tells sparse-aware tools (du, cp, tar -S) how much is
 * allocated: for live.img what the backing has; for a snapshot an upper
 * bound of what its data needs that costs no read, the backing's blocks
 * (the chunks it reads live hold no more) plus every byte preserved in
 * the store (its copies are among them), capped at its size.  Never an
 * under-report: a tool may take a file with no blocks for all holes.  Modes follow the contract: live.img 0644
 * (0444 with ro), snapshots 0444, directories 0755; everything belongs to
 * the user who mounted.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "snapfs/backing.h"
#include "snapfs/cbt.h"
#include "snapfs/snapshot.h"
#include "snapfs/store.h"
#include "snapfs/tree.h"
#include "snapfs/uuid.h"

enum tree_kind tree_kind_of(uint64_t ino)
{
	switch (ino) {
	case TREE_INO_ROOT:
		return TREE_ROOT;
	case TREE_INO_LIVE:
		return TREE_LIVE;
	case TREE_INO_SNAPDIR:
		return TREE_SNAPDIR;
	case TREE_INO_CBTDIR:
		return TREE_CBTDIR;
	}
	if (ino > TREE_INO_SNAP_BASE && ino < TREE_INO_CBT_BASE)
		return TREE_SNAPSHOT;
	if (ino > TREE_INO_CBT_BASE && ino < TREE_INO_CBT_BASE * 2)
		return TREE_BITMAP;
	return TREE_NONE;
}

uint64_t tree_bitmap_generation(uint64_t ino)
{
	return ino - TREE_INO_CBT_BASE;
}

int64_t tree_snapshot_seq(uint64_t ino)
{
	return (int64_t)(ino - TREE_INO_SNAP_BASE);
}

static void fill_common(const struct tree *t, uint64_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = t->uid;
	st->st_gid = t->gid;
	st->st_blksize = 4096;
	st->st_atim = st->st_mtim = st->st_ctim = t->mounted;
}

static void fill_dir(const struct tree *t, uint64_t ino, struct stat *st)
{
	fill_common(t, ino, st);
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = ino == TREE_INO_ROOT ? 4 : 2;
}

static void fill_file(const struct tree *t, uint64_t ino, mode_t mode,
		      uint64_t size, struct stat *st)
{
	fill_common(t, ino, st);
	st->st_mode = S_IFREG | mode;
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
}

/* Bytes the backing has allocated, at most size; size where it cannot
 * tell (a block device, no backing given). */
static uint64_t backing_allocated(const struct tree *t, uint64_t size)
{
	struct stat bst;
	uint64_t n;

	if (!t->backing || t->backing->is_blkdev ||
	    fstat(t->backing->fd, &bst) < 0)
		return size;
	n = (uint64_t)bst.st_blocks * 512;
	return n < size ? n : size;
}

/* st_blocks for bytes allocated. */
static blkcnt_t blocks_of(uint64_t bytes)
{
	return (blkcnt_t)((bytes + 511) / 512);
}

int tree_getattr(struct tree *t, uint64_t ino, struct stat *st)
{
	struct snapshot snap;

	switch (tree_kind_of(ino)) {
	case TREE_ROOT:
	case TREE_SNAPDIR:
	case TREE_CBTDIR:
		fill_dir(t, ino, st);
		return 0;
	case TREE_LIVE:
		fill_file(t, ino, t->ro ? 0444 : 0644, t->image_size, st);
		st->st_blocks = blocks_of(backing_allocated(t, t->image_size));
		return 0;
	case TREE_SNAPSHOT: {
		uint64_t used;

		if (snapshots_get(t->snaps, tree_snapshot_seq(ino), &snap))
			return -ENOENT;
		fill_file(t, ino, 0444, snap.size, st);
		used = backing_allocated(t, snap.size) +
		       store_bytes_used(t->store);
		st->st_blocks = blocks_of(used < snap.size ? used : snap.size);
		st->st_mtim.tv_sec = snap.created_ns / 1000000000;
		st->st_mtim.tv_nsec = snap.created_ns % 1000000000;
		st->st_ctim = st->st_mtim;
		if (snap.deleted)
			st->st_nlink = 0;
		return 0;
	}
	case TREE_BITMAP: {
		struct store_generation g;

		if (cbt_get_generation(t->cbt, tree_bitmap_generation(ino), &g))
			return -ENOENT;
		fill_file(t, ino, 0444, cbt_bitmap_bytes(t->cbt), st);
		st->st_mtim.tv_sec = g.opened_ns / 1000000000;
		st->st_mtim.tv_nsec = g.opened_ns % 1000000000;
		st->st_ctim = st->st_mtim;
		return 0;
	}
	case TREE_NONE:
		break;
	}
	return -ENOENT;
}

int tree_lookup(struct tree *t, uint64_t parent, const char *name,
		struct stat *st)
{
	struct snapshot snap;
	char uuid[37];

	switch (tree_kind_of(parent)) {
	case TREE_ROOT:
		if (!strcmp(name, "live.img"))
			return tree_getattr(t, TREE_INO_LIVE, st);
		if (!strcmp(name, "snapshots"))
			return tree_getattr(t, TREE_INO_SNAPDIR, st);
		if (!strcmp(name, "cbt"))
			return tree_getattr(t, TREE_INO_CBTDIR, st);
		return -ENOENT;
	case TREE_SNAPDIR:
		if (!uuid_from_image_name(name, uuid) ||
		    snapshots_find(t->snaps, uuid, &snap))
			return -ENOENT;
		return tree_getattr(t, TREE_INO_SNAP_BASE + (uint64_t)snap.seq,
				    st);
	case TREE_CBTDIR: {
		char *end;
		unsigned long long gen;

		if (name[0] < '1' || name[0] > '9')
			return -ENOENT;
		gen = strtoull(name, &end, 10);
		if (strcmp(end, ".bitmap"))
			return -ENOENT;
		return tree_getattr(t, TREE_INO_CBT_BASE + gen, st);
	}
	case TREE_NONE:
		return -ENOENT;
	default:
		return -ENOTDIR;
	}
}

int tree_readdir(struct tree *t, uint64_t ino, struct tree_dirent **out,
		 size_t *n)
{
	struct snapshot *snaps = NULL;
	struct store_generation *gens = NULL;
	struct tree_dirent *v;
	size_t nsnaps = 0, ngens = 0, k = 0;
	enum tree_kind kind = tree_kind_of(ino);
	int r;

	if (kind == TREE_NONE)
		return -ENOENT;
	if (kind != TREE_ROOT && kind != TREE_SNAPDIR && kind != TREE_CBTDIR)
		return -ENOTDIR;
	if (kind == TREE_SNAPDIR) {
		r = snapshots_list(t->snaps, &snaps, &nsnaps);
		if (r)
			return r;
	}
	if (kind == TREE_CBTDIR) {
		r = cbt_list_generations(t->cbt, &gens, &ngens);
		if (r)
			return r;
	}
	v = calloc(nsnaps + ngens + 5, sizeof(*v));
	if (!v) {
		free(snaps);
		free(gens);
		return -ENOMEM;
	}
	v[k++] = (struct tree_dirent){ ".", ino, S_IFDIR };
	v[k++] = (struct tree_dirent){ "..", TREE_INO_ROOT, S_IFDIR };
	if (kind == TREE_ROOT) {
		v[k++] = (struct tree_dirent){ "live.img", TREE_INO_LIVE,
					       S_IFREG };
		v[k++] = (struct tree_dirent){ "snapshots", TREE_INO_SNAPDIR,
					       S_IFDIR };
		v[k++] =
			(struct tree_dirent){ "cbt", TREE_INO_CBTDIR, S_IFDIR };
	}
	for (size_t i = 0; i < nsnaps; i++) {
		snprintf(v[k].name, sizeof(v[k].name), "%s.img", snaps[i].uuid);
		v[k].ino = TREE_INO_SNAP_BASE + (uint64_t)snaps[i].seq;
		v[k++].mode = S_IFREG;
	}
	for (size_t i = 0; i < ngens; i++) {
		if (gens[i].dropped)
			continue;
		snprintf(v[k].name, sizeof(v[k].name), "%llu.bitmap",
			 (unsigned long long)gens[i].gen);
		v[k].ino = TREE_INO_CBT_BASE + gens[i].gen;
		v[k++].mode = S_IFREG;
	}
	free(snaps);
	free(gens);
	*out = v;
	*n = k;
	return 0;
}

static void add_xattr(struct tree_xattr *v, size_t *n, const char *name,
		      const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void add_xattr(struct tree_xattr *v, size_t *n, const char *name,
		      const char *fmt, ...)
{
	va_list ap;

	snprintf(v[*n].name, sizeof(v[*n].name), "user.snapfs.%s", name);
	va_start(ap, fmt);
	vsnprintf(v[*n].value, sizeof(v[*n].value), fmt, ap);
	va_end(ap);
	(*n)++;
}

int tree_xattrs(struct tree *t, uint64_t ino, struct tree_xattr **out,
		size_t *n)
{
	struct tree_xattr *v = calloc(8, sizeof(*v));
	struct store_generation g;
	struct snapshot snap;
	size_t k = 0;
	int r = 0;

	if (!v)
		return -ENOMEM;
	switch (tree_kind_of(ino)) {
	case TREE_SNAPSHOT:
		r = snapshots_get(t->snaps, tree_snapshot_seq(ino), &snap);
		if (r)
			break;
		add_xattr(v, &k, "uuid", "%s", snap.uuid);
		add_xattr(v, &k, "generation", "%llu",
			  (unsigned long long)snap.generation);
		add_xattr(v, &k, "created_ns", "%lld",
			  (long long)snap.created_ns);
		add_xattr(v, &k, "chunk_size", "%u",
			  store_info(t->store)->chunk_size);
		add_xattr(v, &k, "block_size", "%u", cbt_block_size(t->cbt));
		break;
	case TREE_BITMAP:
		r = cbt_get_generation(t->cbt, tree_bitmap_generation(ino), &g);
		if (r)
			break;
		add_xattr(v, &k, "generation", "%llu",
			  (unsigned long long)g.gen);
		add_xattr(v, &k, "block_size", "%u", cbt_block_size(t->cbt));
		add_xattr(v, &k, "blocks", "%llu",
			  (unsigned long long)cbt_nblocks(t->cbt));
		add_xattr(v, &k, "state", "%s",
			  g.gen == cbt_open_generation(t->cbt) ? "open"
							       : "closed");
		add_xattr(v, &k, "closed_by", "%s", g.closed_by);
		add_xattr(v, &k, "reason", "%s", g.reason);
		add_xattr(v, &k, "widened", "%s", g.widened);
		break;
	case TREE_NONE:
		r = -ENOENT;
		break;
	default:
		break;
	}
	if (r) {
		free(v);
		return r;
	}
	*out = v;
	*n = k;
	return 0;
}
