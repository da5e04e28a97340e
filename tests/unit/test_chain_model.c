// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Model-based test of the copy-on-write chain: random writes, punches,
 * zero ranges, snapshot creations and deletions (some while a reader holds
 * the snapshot open) against a plain in-memory model of what live.img and
 * every snapshot must read, compared in full after every step.  Halfway,
 * the chain is closed and reopened from disk, cleanly or not.
 *
 * SNAPFS_MODEL_SEED and SNAPFS_MODEL_STEPS override the seed and length.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

#define IMG_SIZE (132u * 1024) /* 16.5 chunks: the last one is short */
#define CS 8192u
#define MAX_SNAPS 10

struct model_snap {
	int64_t seq;
	char uuid[37];
	unsigned char *data;
	bool held; /* open by a reader, deleted from the tree */
};

static struct chain ch;
static unsigned char live[IMG_SIZE];
static struct model_snap snaps[MAX_SNAPS * 2];
static int nsnaps;

static void fini(void)
{
	for (int i = 0; i < nsnaps; i++)
		free(snaps[i].data);
	nsnaps = 0;
	chain_fini(&ch);
}

TestSuite(chain_model, .fini = fini);

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void check_all(int step)
{
	unsigned char *got = chain_read_all(&ch, 0);

	cr_assert_eq(memcmp(got, live, IMG_SIZE), 0, "live differs at step %d",
		     step);
	free(got);
	for (int i = 0; i < nsnaps; i++) {
		got = chain_read_all(&ch, snaps[i].seq);
		cr_assert_eq(memcmp(got, snaps[i].data, IMG_SIZE), 0,
			     "snapshot seq %lld differs at step %d",
			     (long long)snaps[i].seq, step);
		free(got);
	}
}

static void drop(int i)
{
	free(snaps[i].data);
	memmove(&snaps[i], &snaps[i + 1],
		(size_t)(nsnaps - i - 1) * sizeof(snaps[0]));
	nsnaps--;
}

static void run_model(uint64_t seed, int steps, bool crash_halfway)
{
	unsigned char buf[48 * 1024];
	uint64_t x = seed | 1;
	int visible;

	chain_init(&ch, IMG_SIZE, CS, DURABILITY_PROCESS);
	memset(live, 0, sizeof(live));
	for (int step = 0; step < steps; step++) {
		uint64_t op = rnd(&x) % 100;
		uint64_t off = rnd(&x) % IMG_SIZE;
		uint64_t len = 1 + rnd(&x) % sizeof(buf);

		if (len > IMG_SIZE - off)
			len = IMG_SIZE - off;
		visible = 0;
		for (int i = 0; i < nsnaps; i++)
			visible += !snaps[i].held;

		if (op < 55) {
			fill_pattern(buf, len, rnd(&x));
			cr_assert_eq(cow_write_live(ch.c, buf, len, off),
				     (ssize_t)len);
			memcpy(live + off, buf, len);
		} else if (op < 63) {
			cr_assert_eq(cow_discard(ch.c, off, len, false), 0);
			memset(live + off, 0, len);
		} else if (op < 70) {
			cr_assert_eq(cow_discard(ch.c, off, len, true), 0);
			memset(live + off, 0, len);
		} else if (op < 82 && visible < MAX_SNAPS) {
			struct snapshot s;
			struct model_snap *m = &snaps[nsnaps++];

			cr_assert_eq(snapshots_create(ch.ss, &s), 0);
			m->seq = s.seq;
			memcpy(m->uuid, s.uuid, sizeof(m->uuid));
			m->data = malloc(IMG_SIZE);
			m->held = false;
			memcpy(m->data, live, IMG_SIZE);
		} else if (op < 94 && visible > 0) {
			/* delete a random visible one, sometimes while held */
			int pick = (int)(rnd(&x) % (uint64_t)visible), i;

			for (i = 0; i < nsnaps; i++)
				if (!snaps[i].held && pick-- == 0)
					break;
			if (rnd(&x) % 4 == 0) {
				cr_assert_eq(
					snapshots_open(ch.ss, snaps[i].seq), 0);
				snaps[i].held = true;
				cr_assert_eq(snapshots_delete(ch.ss,
							      snaps[i].uuid,
							      false),
					     0);
			} else {
				cr_assert_eq(snapshots_delete(ch.ss,
							      snaps[i].uuid,
							      false),
					     0);
				drop(i);
			}
		} else {
			/* a held reader closes */
			for (int i = 0; i < nsnaps; i++)
				if (snaps[i].held) {
					snapshots_release(ch.ss, snaps[i].seq);
					drop(i);
					break;
				}
		}
		if (step == steps / 2) {
			/* Reopen from disk; readers do not survive that, and
			 * their deletions complete at the open. */
			chain_stop(&ch, !crash_halfway);
			for (int i = nsnaps - 1; i >= 0; i--)
				if (snaps[i].held)
					drop(i);
			chain_start(&ch);
		}
		check_all(step);
	}
	for (int i = nsnaps - 1; i >= 0; i--)
		if (snaps[i].held) {
			snapshots_release(ch.ss, snaps[i].seq);
			drop(i);
		}
	/* Deleting every snapshot gives back every byte of the store. */
	while (nsnaps) {
		cr_assert_eq(snapshots_delete(ch.ss, snaps[0].uuid, false), 0);
		drop(0);
		check_all(steps);
	}
	cr_assert_eq(store_bytes_used(ch.s), 0);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return v ? strtoull(v, NULL, 0) : def;
}

Test(chain_model, random_operations_match_the_model_with_a_clean_reopen,
     .timeout = 600)
{
	uint64_t seed = env_u64("SNAPFS_MODEL_SEED", 0x5eed1);

	cr_log_info("seed %llu", (unsigned long long)seed);
	run_model(seed, (int)env_u64("SNAPFS_MODEL_STEPS", 2000), false);
}

Test(chain_model, random_operations_match_the_model_across_an_unclean_reopen,
     .timeout = 600)
{
	uint64_t seed = env_u64("SNAPFS_MODEL_SEED", 0x5eed1) * 31 + 7;

	cr_log_info("seed %llu", (unsigned long long)seed);
	run_model(seed, (int)env_u64("SNAPFS_MODEL_STEPS", 2000), true);
}
