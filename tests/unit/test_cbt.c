// SPDX-License-Identifier: GPL-2.0-or-later
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

#define BS 65536u

static struct chain ch;

static void fini(void)
{
	chain_fini(&ch);
}

TestSuite(cbt, .fini = fini);

/* Records a change of [off, off+len) the way the write path does. */
static void mark(uint64_t off, uint64_t len)
{
	struct cbt_pending p;

	cr_assert_eq(cbt_collect(ch.cbt, off, len, &p), 0);
	cr_assert_eq(store_commit(ch.s, NULL, 0, p.gen, p.words, p.n), 0);
	cbt_apply(ch.cbt, &p);
	cbt_pending_free(&p);
}

Test(cbt, the_bitmap_is_lsb_first_with_one_bit_per_block)
{
	uint8_t *bytes;

	/* 10 blocks and a short eleventh */
	chain_init(&ch, 10 * BS + 4096, 65536, DURABILITY_PROCESS);
	cr_assert_eq(cbt_nblocks(ch.cbt), 11);
	cr_assert_eq(cbt_bitmap_bytes(ch.cbt), 2);
	mark(BS + 100, 10); /* block 1 */
	mark(4 * BS, 2 * BS); /* blocks 4, 5 */
	mark(10 * BS + 5, 1); /* block 10, the short one */
	cr_assert_eq(cbt_render(ch.cbt, cbt_open_generation(ch.cbt), &bytes),
		     0);
	cr_assert_eq(bytes[0], 0x32);
	cr_assert_eq(bytes[1], 0x04);
	free(bytes);
}

Test(cbt, a_set_bit_is_not_collected_again)
{
	struct cbt_pending p;

	chain_init(&ch, 64 * BS, 65536, DURABILITY_PROCESS);
	mark(0, 3 * BS);
	cr_assert_eq(cbt_collect(ch.cbt, BS, 10, &p), 0);
	cr_assert_eq(p.n, 0, "block 1 is already set");
	cbt_pending_free(&p);
	cr_assert_eq(cbt_collect(ch.cbt, 2 * BS, 2 * BS, &p), 0);
	cr_assert_eq(p.n, 1);
	cr_assert_eq(p.words[0].bits, 0xcull, "blocks 2 and 3 asked, 3 new");
	cbt_pending_free(&p);
}

Test(cbt, a_wide_change_spans_many_words)
{
	struct cbt_pending p;
	uint8_t *bytes;

	chain_init(&ch, 1000 * BS, 65536, DURABILITY_PROCESS);
	cr_assert_eq(cbt_collect(ch.cbt, 10 * BS, 900 * BS, &p), 0);
	cr_assert_eq(p.n, 15, "blocks 10..909 touch words 0..14");
	cr_assert_eq(store_commit(ch.s, NULL, 0, p.gen, p.words, p.n), 0);
	cbt_apply(ch.cbt, &p);
	cbt_pending_free(&p);
	cr_assert_eq(cbt_render(ch.cbt, 1, &bytes), 0);
	for (uint64_t i = 0; i < 1000; i++)
		cr_assert_eq((bytes[i / 8] >> (i % 8)) & 1, i >= 10 && i < 910,
			     "block %llu", (unsigned long long)i);
	free(bytes);
}

Test(cbt, a_snapshot_closes_the_generation_and_the_bits_survive_reopen)
{
	struct snapshot s;
	uint8_t *bytes;

	chain_init(&ch, 16 * BS, 65536, DURABILITY_FULL);
	mark(3 * BS, 1);
	cr_assert_eq(snapshots_create(ch.ss, &s), 0);
	cr_assert_eq(s.generation, 1);
	cr_assert_eq(cbt_open_generation(ch.cbt), 2);
	mark(7 * BS, 1);
	chain_stop(&ch, false); /* as after kill -9 */
	chain_start(&ch);
	cr_assert_eq(cbt_render(ch.cbt, 1, &bytes), 0);
	cr_assert_eq(bytes[0], 0x08);
	cr_assert_eq(bytes[1], 0x00);
	free(bytes);
	cr_assert_eq(cbt_render(ch.cbt, 2, &bytes), 0);
	cr_assert_eq(bytes[0], 0x80, "open generation reloaded");
	free(bytes);
}

Test(cbt, a_widened_generation_is_all_ones_but_past_the_last_block)
{
	uint8_t *bytes;

	chain_init(&ch, 11 * BS, 65536, DURABILITY_PROCESS);
	cr_assert_eq(cbt_widen(ch.cbt, "test"), 0);
	cr_assert_eq(cbt_render(ch.cbt, 1, &bytes), 0);
	cr_assert_eq(bytes[0], 0xff);
	cr_assert_eq(bytes[1], 0x07);
	free(bytes);
}

Test(cbt, keep_drops_the_oldest_closed_bitmaps)
{
	struct snapshot s;
	uint8_t *bytes;

	chain_init(&ch, 16 * BS, 65536, DURABILITY_PROCESS);
	chain_stop(&ch, true);
	ch.cbt_keep = 2;
	chain_start(&ch);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(snapshots_create(ch.ss, &s), 0);
	cr_assert_eq(cbt_render(ch.cbt, 1, &bytes), -ENOENT);
	cr_assert_eq(cbt_render(ch.cbt, 2, &bytes), -ENOENT);
	cr_assert_eq(cbt_render(ch.cbt, 3, &bytes), 0);
	free(bytes);
	cr_assert_eq(cbt_drop(ch.cbt, 5), -EBUSY, "the open one stays");
	cr_assert_eq(cbt_drop(ch.cbt, 3), 0);
	cr_assert_eq(cbt_render(ch.cbt, 3, &bytes), -ENOENT);
}
