/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fixture.h - a whole chain (backing file, store, I/O engine, snapshots,
 * copy-on-write layer) in a temporary directory, without FUSE.
 */
#ifndef SNAPFS_TEST_FIXTURE_H
#define SNAPFS_TEST_FIXTURE_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapfs/backing.h"
#include "snapfs/cbt.h"
#include "snapfs/cow.h"
#include "snapfs/snapshot.h"
#include "snapfs/store.h"
#include "snapfs/uring.h"

struct chain {
	char dir[64];
	char img[96];
	char store_dir[96];
	uint64_t size;
	uint32_t chunk_size;
	uint32_t cbt_keep; /* 0: the default */
	enum durability durability;
	bool power_loss; /* the next chain_start follows a machine crash */
	struct backing b;
	struct store *s;
	struct uring_engine *io;
	struct snapshots *ss;
	struct cbt *cbt;
	struct cow *c;
};

static inline void chain_start(struct chain *ch)
{
	struct store_config sc;
	char err[512] = "";
	int r;

	r = backing_open(&ch->b, ch->img, false, err, sizeof(err));
	cr_assert_eq(r, 0, "backing_open: %s", err);
	sc = (struct store_config){ .dir = ch->store_dir,
				    .chunk_size = ch->chunk_size,
				    .image_size = ch->b.size,
				    .backing_id = ch->b.identity,
				    .durability = ch->durability };
	r = store_open(&ch->s, &sc, err, sizeof(err));
	cr_assert_eq(r, 0, "store_open: %s", err);
	cr_assert_eq(snapshots_load(&ch->ss, ch->s, &ch->b, ch->durability), 0);
	cr_assert_eq(uring_engine_create(&ch->io, 64), 0);
	cr_assert_eq(cbt_create(&ch->cbt, ch->s, ch->b.size,
				ch->cbt_keep ? ch->cbt_keep : 64,
				ch->durability == DURABILITY_FULL,
				!ch->power_loss),
		     0);
	ch->power_loss = false;
	cr_assert_eq(cow_create(&ch->c, &ch->b, ch->s, ch->io, ch->cbt,
				snapshots_newest(ch->ss)),
		     0);
	snapshots_attach(ch->ss, ch->c, ch->cbt);
}

static inline void chain_stop(struct chain *ch, bool clean)
{
	if (clean)
		cr_assert_eq(cbt_seal(ch->cbt), 0);
	cow_destroy(ch->c);
	cbt_destroy(ch->cbt);
	snapshots_free(ch->ss);
	uring_engine_destroy(ch->io);
	store_close(ch->s, clean);
	backing_close(&ch->b);
	ch->c = NULL;
	ch->ss = NULL;
	ch->io = NULL;
	ch->s = NULL;
}

/* Makes a fresh directory with a sparse image of size bytes and opens a
 * chain on it. */
static inline void chain_init(struct chain *ch, uint64_t size,
			      uint32_t chunk_size, enum durability durability)
{
	int fd;

	memset(ch, 0, sizeof(*ch));
	strcpy(ch->dir, "/tmp/snapfs-test-XXXXXX");
	cr_assert_not_null(mkdtemp(ch->dir));
	snprintf(ch->img, sizeof(ch->img), "%s/img", ch->dir);
	snprintf(ch->store_dir, sizeof(ch->store_dir), "%s/store", ch->dir);
	fd = open(ch->img, O_RDWR | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
	ch->size = size;
	ch->chunk_size = chunk_size;
	ch->durability = durability;
	chain_start(ch);
}

static inline void chain_fini(struct chain *ch)
{
	char cmd[128];

	if (ch->s)
		chain_stop(ch, true);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ch->dir);
	cr_assert_eq(system(cmd), 0);
}

/* Fills buf with bytes derived from seed (never all zero). */
static inline void fill_pattern(unsigned char *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)(x | 1);
	}
}

/* Reads all of live (seq 0) or snapshot seq into a new buffer. */
static inline unsigned char *chain_read_all(struct chain *ch, int64_t seq)
{
	unsigned char *buf = malloc(ch->size);
	ssize_t n;

	cr_assert_not_null(buf);
	n = seq ? cow_read_snapshot(ch->c, seq, buf, ch->size, 0)
		: cow_read_live(ch->c, buf, ch->size, 0);
	cr_assert_eq(n, (ssize_t)ch->size, "read of seq %lld gave %zd",
		     (long long)seq, n);
	return buf;
}

#endif
