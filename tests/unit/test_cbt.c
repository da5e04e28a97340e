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
	cr_assert_eq(p.nset, 0, "block 1 is already set");
	cbt_pending_free(&p);
	cr_assert_eq(cbt_collect(ch.cbt, 2 * BS, 2 * BS, &p), 0);
	cr_assert_eq(p.nset, 1);
	cr_assert_eq(p.set[0].bits, 0xcull, "blocks 2 and 3 asked, 3 new");
	cr_assert_eq(p.n, 0, "durability=process records no intents");
	cbt_pending_free(&p);
}

Test(cbt, a_wide_change_spans_many_words)
{
	struct cbt_pending p;
	uint8_t *bytes;

	chain_init(&ch, 1000 * BS, 65536, DURABILITY_PROCESS);
	cr_assert_eq(cbt_collect(ch.cbt, 10 * BS, 900 * BS, &p), 0);
	cr_assert_eq(p.nset, 15, "blocks 10..909 touch words 0..14");
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

/* Blocks set in generation gen, as a string of 0 and 1 for nblocks. */
static char *bits_of(uint64_t gen, uint64_t nblocks)
{
	uint8_t *bytes;
	char *s = calloc(nblocks + 1, 1);

	cr_assert_eq(cbt_render(ch.cbt, gen, &bytes), 0);
	for (uint64_t i = 0; i < nblocks; i++)
		s[i] = (bytes[i / 8] >> (i % 8)) & 1 ? '1' : '0';
	free(bytes);
	return s;
}

/* Removes cbt.map, as a power loss before it reached the disk could. */
static void lose_map(void)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/cbt.map", ch.store_dir);
	cr_assert_eq(unlink(path), 0);
}

Test(cbt, an_intent_is_recorded_once_per_region)
{
	struct cbt_pending p;

	/* 3 regions of 1024 blocks, the last one short */
	chain_init(&ch, 2100 * BS, 65536, DURABILITY_FULL);
	cr_assert_eq(cbt_collect(ch.cbt, 5 * BS, 1, &p), 0);
	cr_assert_eq(p.nset, 1);
	cr_assert_eq(p.n, CBT_REGION_WORDS, "the first bit records region 0");
	for (size_t i = 0; i < p.n; i++)
		cr_assert_eq(p.words[i].bits, ~0ull);
	cr_assert_eq(store_commit(ch.s, NULL, 0, p.gen, p.words, p.n), 0);
	cbt_apply(ch.cbt, &p);
	cbt_pending_free(&p);
	cr_assert_eq(cbt_collect(ch.cbt, 900 * BS, 1, &p), 0);
	cr_assert_eq(p.nset, 1, "a new bit");
	cr_assert_eq(p.n, 0, "in a region already recorded");
	cbt_apply(ch.cbt, &p);
	cbt_pending_free(&p);
	cr_assert_eq(cbt_collect(ch.cbt, 2099 * BS, 1, &p), 0);
	cr_assert_eq(p.n, 1, "region 2 has one word (blocks 2048..2099)");
	cr_assert_eq(p.words[0].bits, (1ull << 52) - 1, "clipped at the end");
	cbt_pending_free(&p);
}

Test(cbt, a_crash_on_the_same_boot_keeps_the_bits_exact)
{
	char *s;

	chain_init(&ch, 3000 * BS, 65536, DURABILITY_FULL);
	mark(5 * BS, 1);
	mark(2000 * BS, 2 * BS);
	chain_stop(&ch, false); /* kill -9: cbt.map survives */
	chain_start(&ch);
	s = bits_of(1, 3000);
	for (uint64_t i = 0; i < 3000; i++)
		cr_assert_eq(s[i] == '1', i == 5 || i == 2000 || i == 2001,
			     "block %llu", (unsigned long long)i);
	free(s);
	/* and the crash's intents are gone from the store: a power loss
	 * now loses nothing and adds nothing */
	chain_stop(&ch, false);
	lose_map();
	ch.power_loss = true;
	chain_start(&ch);
	s = bits_of(1, 3000);
	cr_assert_eq(strchr(s, '1') - s, 5);
	cr_assert_eq(strrchr(s, '1') - s, 2001);
	free(s);
}

Test(cbt, a_power_loss_over_reports_whole_regions_never_less)
{
	char *s;

	chain_init(&ch, 3000 * BS, 65536, DURABILITY_FULL);
	mark(5 * BS, 1);
	chain_stop(&ch, true); /* sealed: exact in the store */
	chain_start(&ch);
	mark(2500 * BS, 1);
	chain_stop(&ch, false);
	lose_map();
	ch.power_loss = true;
	chain_start(&ch);
	s = bits_of(1, 3000);
	for (uint64_t i = 0; i < 3000; i++)
		cr_assert_eq(s[i] == '1', i == 5 || i >= 2048,
			     "block %llu: the sealed bit and region 2",
			     (unsigned long long)i);
	free(s);
}

Test(cbt, a_closed_generation_is_sealed_exact)
{
	struct snapshot snap;
	char *s;

	chain_init(&ch, 3000 * BS, 65536, DURABILITY_FULL);
	mark(1500 * BS, 1);
	cr_assert_eq(snapshots_create(ch.ss, &snap), 0);
	chain_stop(&ch, false);
	lose_map();
	ch.power_loss = true;
	chain_start(&ch);
	s = bits_of(1, 3000);
	cr_assert_eq(strchr(s, '1') - s, 1500);
	cr_assert_eq(strrchr(s, '1') - s, 1500, "no intent left in gen 1");
	free(s);
}

Test(cbt, a_sequential_writer_records_regions_ahead)
{
	struct cbt_pending p;

	/* 40 regions of 1024 blocks */
	chain_init(&ch, 40 * 1024 * (uint64_t)BS, 65536, DURABILITY_FULL);
	mark(0, BS); /* region 0 */
	cr_assert_eq(cbt_collect(ch.cbt, 1024 * (uint64_t)BS, BS, &p), 0);
	cr_assert_eq(p.n, (1 + CBT_AHEAD) * CBT_REGION_WORDS,
		     "region 1 follows a recorded region: 1..%d at once",
		     1 + CBT_AHEAD);
	cr_assert_eq(store_commit(ch.s, NULL, 0, p.gen, p.words, p.n), 0);
	cbt_apply(ch.cbt, &p);
	cbt_pending_free(&p);
	for (uint64_t r = 2; r <= 1 + CBT_AHEAD; r++) {
		cr_assert_eq(cbt_collect(ch.cbt, r * 1024 * BS, BS, &p), 0);
		cr_assert_eq(p.nset, 1);
		cr_assert_eq(p.n, 0, "region %llu was recorded ahead",
			     (unsigned long long)r);
		cbt_apply(ch.cbt, &p);
		cbt_pending_free(&p);
	}
	cr_assert_eq(cbt_collect(ch.cbt, 30 * 1024 * (uint64_t)BS, BS, &p), 0);
	cr_assert_eq(p.n, CBT_REGION_WORDS,
		     "a random write records only its own");
	cbt_pending_free(&p);
}

/* Grows the chain's image from blocks to nblocks: the steps of resize.c
 * up to the file's growth (grow_file), and the commit (commit). */
static void grow(uint64_t from, uint64_t to, bool grow_file, bool commit)
{
	cr_assert_eq(cbt_grow_prepare(ch.cbt, from * BS, to * BS), 0);
	cr_assert_eq(cbt_grow_edge(ch.cbt, from * BS, to * BS), 0);
	cr_assert_eq(store_resize(ch.s, to * BS), 0);
	if (grow_file)
		cr_assert_eq(truncate(ch.img, (off_t)(to * BS)), 0);
	if (commit)
		cbt_grow_commit(ch.cbt, from * BS, to * BS);
}

Test(cbt, a_growth_marks_the_new_blocks_and_keeps_the_old)
{
	char *s;

	chain_init(&ch, 3000 * BS, 65536, DURABILITY_PROCESS);
	mark(5 * BS, 1);
	grow(3000, 4000, true, true);
	cr_assert_eq(cbt_nblocks(ch.cbt), 4000);
	s = bits_of(1, 4000);
	for (uint64_t i = 0; i < 4000; i++)
		cr_assert_eq(s[i] == '1', i == 5 || i >= 3000, "block %llu",
			     (unsigned long long)i);
	free(s);
}

Test(cbt, a_growth_a_crash_cut_short_keeps_the_maps_bits_and_the_new_ones)
{
	char *s;

	/* durability=process: after a crash on the same boot cbt.map is
	 * all there is of block 5; the new blocks are only in the store */
	chain_init(&ch, 3000 * BS, 65536, DURABILITY_PROCESS);
	mark(5 * BS, 1);
	grow(3000, 4000, true, false);
	chain_stop(&ch, false); /* kill -9 before the commit */
	chain_start(&ch);
	cr_assert_eq(ch.b.size, 4000 * BS);
	s = bits_of(1, 4000);
	for (uint64_t i = 0; i < 4000; i++)
		cr_assert_eq(s[i] == '1', i == 5 || i >= 3000, "block %llu",
			     (unsigned long long)i);
	free(s);
}

Test(cbt, a_growth_that_never_reached_the_file_leaves_the_old_size)
{
	char *s;

	chain_init(&ch, 3000 * BS, 65536, DURABILITY_PROCESS);
	mark(5 * BS, 1);
	grow(3000, 4000, false, false);
	chain_stop(&ch, false); /* killed before the file grew */
	chain_start(&ch); /* the store takes the old size back */
	cr_assert_eq(cbt_nblocks(ch.cbt), 3000);
	s = bits_of(1, 3000);
	for (uint64_t i = 0; i < 3000; i++)
		cr_assert_eq(s[i] == '1', i == 5, "block %llu",
			     (unsigned long long)i);
	free(s);
	/* and only the old size opens it now */
	chain_stop(&ch, true);
	cr_assert_eq(truncate(ch.img, 4000 * BS), 0);
	{
		struct store_config sc;
		char err[512] = "";

		cr_assert_eq(
			backing_open(&ch.b, ch.img, false, err, sizeof(err)),
			0);
		sc = (struct store_config){ .dir = ch.store_dir,
					    .chunk_size = ch.chunk_size,
					    .image_size = ch.b.size,
					    .backing_id = ch.b.identity,
					    .durability = ch.durability };
		cr_assert_neq(store_open(&ch.s, &sc, err, sizeof(err)), 0);
		cr_assert(strstr(err, "size changed"), "%s", err);
		backing_close(&ch.b);
		ch.s = NULL;
	}
	cr_assert_eq(truncate(ch.img, 3000 * BS), 0);
}

Test(cbt, a_growth_keeps_the_write_intent_of_the_word_it_shares)
{
	char *s;

	/* block 2999 ends the image in the middle of word 46; a write
	 * there records its region's intent, which later writes in the
	 * region rely on instead of recording their own */
	chain_init(&ch, 3000 * BS, 65536, DURABILITY_FULL);
	mark(2950 * BS, 1);
	grow(3000, 4000, true, true);
	mark(2960 * BS, 1);
	chain_stop(&ch, false);
	lose_map();
	ch.power_loss = true;
	chain_start(&ch);
	s = bits_of(1, 4000);
	cr_assert_eq(s[2950], '1');
	cr_assert_eq(s[2960], '1', "a write after the growth was lost");
	cr_assert_eq(s[3500], '1');
	free(s);
}
