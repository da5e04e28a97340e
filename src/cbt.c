// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * cbt.c - changed-block tracking.
 *
 * Owns the bitmap of the open generation in memory (one bit per
 * cbt_block_size block) and the rules of generations; the store keeps
 * every generation's words (table cbt) and their metadata.
 *
 * Crash rule: a block's bit is recorded in the store before any write to
 * the block is issued to the backing.  The write path asks cbt_collect for
 * the bits it would set that are not set yet, commits them (with the
 * preservation of the same write when there is one, else alone; both go
 * through the store's group commit), sets them in memory with cbt_apply,
 * and only then writes.  A later write to the block finds its bit set and
 * costs nothing.  Two writers may both record the same bit: harmless, the
 * store ORs.  So after kill -9 or power loss (durability=full) the bitmaps
 * cover every write that may have landed.
 *
 * Readers of the open generation see every bit of every write that has
 * returned, because bits are set before the write is issued.  Closed
 * generations never change and are rendered from the store.
 *
 * Locking: the open bitmap's words are updated with atomic OR; the open
 * generation changes only with the chain quiesced (no write in flight).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapfs/cbt.h"
#include "snapfs/log.h"
#include "snapfs/store.h"

struct cbt {
	struct store *s;
	uint32_t bs;
	uint64_t nblocks;
	uint64_t *open_bits;
	uint64_t open_gen;
	bool open_widened;
	uint32_t keep;
};

static size_t nwords(const struct cbt *c)
{
	return (size_t)((c->nblocks + 63) / 64);
}

static int load_word(void *arg, uint64_t word, uint64_t bits)
{
	struct cbt *c = arg;

	if (word < nwords(c))
		c->open_bits[word] |= bits;
	return 0;
}

/* Whether generation gen is widened; -ENOENT when its bitmap is gone. */
static int gen_state(struct cbt *c, uint64_t gen, bool *widened)
{
	struct store_generation g;
	int r = store_get_generation(c->s, gen, &g);

	if (!r)
		*widened = g.widened[0] != '\0';
	return r;
}

int cbt_create(struct cbt **out, struct store *s, uint64_t image_size,
	       uint32_t keep)
{
	struct cbt *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	c->s = s;
	c->bs = store_info(s)->cbt_block_size;
	c->nblocks = (image_size + c->bs - 1) / c->bs;
	c->keep = keep;
	c->open_gen = store_info(s)->generation;
	c->open_bits = calloc(nwords(c), sizeof(uint64_t));
	if (!c->open_bits) {
		free(c);
		return -ENOMEM;
	}
	r = store_for_each_cbt_word(s, c->open_gen, load_word, c);
	if (!r)
		r = gen_state(c, c->open_gen, &c->open_widened);
	if (r) {
		cbt_destroy(c);
		return r;
	}
	*out = c;
	return 0;
}

void cbt_destroy(struct cbt *c)
{
	if (!c)
		return;
	free(c->open_bits);
	free(c);
}

uint64_t cbt_nblocks(const struct cbt *c)
{
	return c->nblocks;
}

uint64_t cbt_bitmap_bytes(const struct cbt *c)
{
	return (c->nblocks + 7) / 8;
}

uint32_t cbt_block_size(const struct cbt *c)
{
	return c->bs;
}

uint64_t cbt_open_generation(const struct cbt *c)
{
	return c->open_gen;
}

int cbt_collect(struct cbt *c, uint64_t off, uint64_t len,
		struct cbt_pending *p)
{
	uint64_t first = off / c->bs, last, w0, w1;
	size_t cap;

	p->gen = c->open_gen;
	p->n = 0;
	p->committed = false;
	p->words = p->inline_words;
	if (!len || first >= c->nblocks)
		return 0;
	last = (off + len - 1) / c->bs;
	if (last >= c->nblocks)
		last = c->nblocks - 1;
	w0 = first / 64;
	w1 = last / 64;
	cap = (size_t)(w1 - w0 + 1);
	if (cap > sizeof(p->inline_words) / sizeof(p->inline_words[0])) {
		p->words = malloc(cap * sizeof(*p->words));
		if (!p->words) {
			p->words = p->inline_words;
			return -ENOMEM;
		}
	}
	for (uint64_t w = w0; w <= w1; w++) {
		uint64_t lo = w == w0 ? first % 64 : 0;
		uint64_t hi = w == w1 ? last % 64 : 63;
		uint64_t mask = (hi == 63 ? ~0ull : (1ull << (hi + 1)) - 1) &
				~((1ull << lo) - 1);
		uint64_t have =
			__atomic_load_n(&c->open_bits[w], __ATOMIC_ACQUIRE);

		if (mask & ~have)
			p->words[p->n++] =
				(struct cbt_word){ .word = w, .bits = mask };
	}
	return 0;
}

void cbt_apply(struct cbt *c, const struct cbt_pending *p)
{
	if (p->gen != c->open_gen)
		return;
	for (size_t i = 0; i < p->n; i++)
		__atomic_fetch_or(&c->open_bits[p->words[i].word],
				  p->words[i].bits, __ATOMIC_RELEASE);
}

void cbt_pending_free(struct cbt_pending *p)
{
	if (p->words != p->inline_words)
		free(p->words);
	p->words = p->inline_words;
	p->n = 0;
}

int cbt_next_generation(struct cbt *c)
{
	struct store_generation *v;
	size_t n, closed = 0;
	int r;

	c->open_gen = store_info(c->s)->generation;
	c->open_widened = false;
	memset(c->open_bits, 0, nwords(c) * sizeof(uint64_t));
	r = store_list_generations(c->s, &v, &n);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++)
		closed += !v[i].dropped && v[i].gen < c->open_gen;
	for (size_t i = 0; i < n && closed > c->keep; i++) {
		if (v[i].dropped || v[i].gen >= c->open_gen)
			continue;
		r = store_drop_generation(c->s, v[i].gen);
		if (r)
			break;
		log_info("cbt: dropped the bitmap of generation %llu "
			 "(cbt_keep=%u)",
			 (unsigned long long)v[i].gen, c->keep);
		closed--;
	}
	free(v);
	return r;
}

int cbt_widen(struct cbt *c, const char *reason)
{
	int r = store_widen_generation(c->s, c->open_gen, reason);

	if (!r) {
		c->open_widened = true;
		log_warn("cbt: generation %llu is all ones: %s",
			 (unsigned long long)c->open_gen, reason);
	}
	return r;
}

/* Writes the bits of one word into the byte bitmap, least significant
 * bit first. */
static void put_word(uint8_t *bytes, uint64_t nbytes, uint64_t word,
		     uint64_t bits)
{
	for (unsigned b = 0; b < 8 && word * 8 + b < nbytes; b++)
		bytes[word * 8 + b] |= (uint8_t)(bits >> (8 * b));
}

static int render_word(void *arg, uint64_t word, uint64_t bits)
{
	void **a = arg;

	put_word(a[0], *(uint64_t *)a[1], word, bits);
	return 0;
}

/* Sets every valid block's bit. */
static void fill_ones(const struct cbt *c, uint8_t *bytes)
{
	uint64_t nb = cbt_bitmap_bytes(c);

	memset(bytes, 0xff, nb);
	if (c->nblocks % 8)
		bytes[nb - 1] = (uint8_t)((1u << (c->nblocks % 8)) - 1);
}

int cbt_render(struct cbt *c, uint64_t gen, uint8_t **out)
{
	uint64_t nb = cbt_bitmap_bytes(c);
	uint8_t *bytes = calloc(nb ? nb : 1, 1);
	bool widened = false;
	int r;

	if (!bytes)
		return -ENOMEM;
	if (gen == c->open_gen) {
		cbt_read_open(c, bytes, nb, 0);
		*out = bytes;
		return 0;
	}
	r = gen_state(c, gen, &widened);
	if (!r && widened) {
		fill_ones(c, bytes);
	} else if (!r) {
		void *arg[2] = { bytes, &nb };

		r = store_for_each_cbt_word(c->s, gen, render_word, arg);
	}
	if (r) {
		free(bytes);
		return r;
	}
	*out = bytes;
	return 0;
}

ssize_t cbt_read_open(struct cbt *c, void *buf, size_t len, uint64_t off)
{
	uint64_t nb = cbt_bitmap_bytes(c);
	uint8_t *dst = buf;

	if (off >= nb)
		return 0;
	if (len > nb - off)
		len = (size_t)(nb - off);
	if (c->open_widened) {
		uint8_t *all = malloc(nb);

		if (!all)
			return -ENOMEM;
		fill_ones(c, all);
		memcpy(dst, all + off, len);
		free(all);
		return (ssize_t)len;
	}
	for (size_t i = 0; i < len; i++) {
		uint64_t byte = off + i;
		uint64_t w = __atomic_load_n(&c->open_bits[byte / 8],
					     __ATOMIC_ACQUIRE);

		dst[i] = (uint8_t)(w >> (8 * (byte % 8)));
	}
	return (ssize_t)len;
}

int cbt_drop(struct cbt *c, uint64_t gen)
{
	bool widened;
	int r;

	if (gen == c->open_gen)
		return -EBUSY;
	r = gen_state(c, gen, &widened);
	if (r)
		return r;
	r = store_drop_generation(c->s, gen);
	if (!r)
		log_info("cbt: dropped the bitmap of generation %llu",
			 (unsigned long long)gen);
	return r;
}
