// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Bitmap reads against the changes that may run beside them: a snapshot
 * closing the generation being read (its bits are cleared for the next
 * one) and an rm of a closed bitmap.  Neither may make a read return
 * zeros for blocks that changed.
 *
 * The windows are held open deterministically: cbt_set_read_hook runs the
 * snapshot inside a read of the open generation, and this program is
 * linked with -Wl,--wrap=store_for_each_cbt_word so that a drop runs
 * just before a closed bitmap's words are read.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

#define BS 65536u

int __real_store_for_each_cbt_word(struct store *s, uint64_t gen,
				   int (*fn)(void *arg, uint64_t word,
					     uint64_t bits),
				   void *arg);
int __wrap_store_for_each_cbt_word(struct store *s, uint64_t gen,
				   int (*fn)(void *arg, uint64_t word,
					     uint64_t bits),
				   void *arg);

static struct chain ch;
static uint64_t drop_before_words; /* generation to drop, 0: none */
static int snaps_in_hook; /* snapshots the read hook still takes */

int __wrap_store_for_each_cbt_word(struct store *s, uint64_t gen,
				   int (*fn)(void *arg, uint64_t word,
					     uint64_t bits),
				   void *arg)
{
	if (drop_before_words && gen == drop_before_words) {
		drop_before_words = 0;
		cr_assert_eq(cbt_drop(ch.cbt, gen), 0);
	}
	return __real_store_for_each_cbt_word(s, gen, fn, arg);
}

static void snapshot_in_window(void *arg)
{
	struct snapshot snap;

	(void)arg;
	if (snaps_in_hook > 0) {
		snaps_in_hook--;
		cr_assert_eq(snapshots_create(ch.ss, &snap), 0);
	}
}

static void fini(void)
{
	chain_fini(&ch);
}

TestSuite(cbt_race, .fini = fini);

/* Blocks 0, 9 and 18 written in generation 1. */
static void setup(void)
{
	unsigned char buf[4096];

	chain_init(&ch, 64 * BS, BS, DURABILITY_FULL);
	memset(buf, 0xab, sizeof(buf));
	for (int b = 0; b < 3; b++)
		cr_assert_eq(cow_write_live(ch.c, buf, sizeof(buf),
					    (uint64_t)(b * 8 + b) * BS),
			     (ssize_t)sizeof(buf));
	cr_assert_eq(cbt_open_generation(ch.cbt), 1);
}

static void assert_gen1(const uint8_t *bytes, const char *what)
{
	cr_assert_eq(bytes[0], 0x01, "%s: byte 0 is %#x", what, bytes[0]);
	cr_assert_eq(bytes[1], 0x02, "%s: byte 1 is %#x", what, bytes[1]);
	cr_assert_eq(bytes[2], 0x04, "%s: byte 2 is %#x", what, bytes[2]);
}

/* What fs.c does for a read of an open bitmap file. */
static void read_like_fs(uint64_t gen, uint8_t *buf, size_t len)
{
	ssize_t n = cbt_read_open(ch.cbt, gen, buf, len, 0);
	uint8_t *bytes;

	if (n == -ESTALE) {
		cr_assert_eq(cbt_render(ch.cbt, gen, &bytes), 0);
		memcpy(buf, bytes, len);
		free(bytes);
		return;
	}
	cr_assert_eq(n, (ssize_t)len);
}

Test(cbt_race, a_read_of_the_open_bitmap_keeps_its_bits_across_a_snapshot)
{
	uint8_t buf[8];

	setup();
	cbt_set_read_hook(ch.cbt, snapshot_in_window, NULL);
	snaps_in_hook = 1;
	read_like_fs(1, buf, sizeof(buf));
	cr_assert_eq(snaps_in_hook, 0, "the window was never entered");
	cr_assert_eq(cbt_open_generation(ch.cbt), 2);
	assert_gen1(buf, "read of generation 1 while it closed");
}

Test(cbt_race, a_render_of_the_open_bitmap_keeps_its_bits_across_a_snapshot)
{
	uint8_t *bytes;

	setup();
	cbt_set_read_hook(ch.cbt, snapshot_in_window, NULL);
	snaps_in_hook = 1;
	cr_assert_eq(cbt_render(ch.cbt, 1, &bytes), 0);
	cr_assert_eq(snaps_in_hook, 0, "the window was never entered");
	assert_gen1(bytes, "render of generation 1 while it closed");
	free(bytes);
}

Test(cbt_race, a_generation_not_open_yet_reads_as_zeros_and_is_not_closed)
{
	uint8_t buf[8];

	setup();
	memset(buf, 0x55, sizeof(buf));
	cr_assert_eq(cbt_read_open(ch.cbt, 2, buf, sizeof(buf), 0),
		     (ssize_t)sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0);
	cr_assert_eq(cbt_read_open(ch.cbt, 1, buf, sizeof(buf), 0),
		     (ssize_t)sizeof(buf));
	assert_gen1(buf, "the open generation");
}

Test(cbt_race, a_render_racing_a_drop_fails_or_has_the_bits_never_zeros)
{
	struct snapshot snap;
	uint8_t *bytes = NULL;
	int r;

	setup();
	cr_assert_eq(snapshots_create(ch.ss, &snap), 0); /* closes 1 */
	drop_before_words = 1;
	r = cbt_render(ch.cbt, 1, &bytes);
	cr_assert_eq(drop_before_words, 0, "the window was never entered");
	if (r == 0) {
		assert_gen1(bytes, "render of a bitmap dropped meanwhile");
		free(bytes);
	} else {
		cr_assert_eq(r, -ENOENT, "render gave %d", r);
	}
	cr_assert_eq(cbt_render(ch.cbt, 1, &bytes), -ENOENT);
}
