// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * cbt.c - changed-block tracking.
 *
 * Owns the bitmap of the open generation (one bit per cbt_block_size
 * block) and the rules of generations; the store keeps every closed
 * generation's words (table cbt) and their metadata.
 *
 * The open generation's bits live in `cbt.map` in the store directory,
 * mapped shared: setting a bit is a store to memory that is already in
 * the page cache, so it survives kill -9 without a system call.  A power
 * loss may lose it, so under durability=full the write path first records
 * a write intent, md-style: the first new bit in a region of
 * CBT_REGION_WORDS words (1024 blocks, 64 MiB at the default block size)
 * commits the whole region as ones to the store, through the group
 * commit (with the preservation of the same write when there is one);
 * when the region before it is recorded already (a sequential writer)
 * the CBT_AHEAD regions after it are recorded in the same commit.
 * Later writes into the regions cost only the memory store.  At every
 * generation close and clean stop the exact bits replace the regions in
 * the store ("seal").
 *
 * Crash rule: before any write to a block is issued to the backing its
 * bit is set in the map and, under durability=full, its region's intent
 * is durable.  So at the next mount:
 *   - after a clean stop the store's words are exact;
 *   - after kill -9 (same boot: the page cache, and so the map, survived)
 *     the map is exact;
 *   - after a power loss the store's words (exact as sealed, plus whole
 *     regions written since) or'ed with what survived of the map cover
 *     every write that may have landed: over-reporting by at most the
 *     regions written since the last seal, never missing a block.
 *   (durability=process records no intents: recovery.c widens the open
 *   generation after a power loss.)
 *
 * Readers of the open generation see every bit of every write that has
 * returned, because bits are set before the write is issued.  Closed
 * generations never change and are rendered from the store.
 *
 * Locking: bits and region flags are updated with atomic OR; the open
 * generation changes, and seals run, only with the chain quiesced (no
 * write in flight) or before requests are served.  Readers take no lock:
 * the new generation's number is published before a bit is cleared for
 * it, so a read of the open bitmap copies the bits and then checks the
 * number again (closed meanwhile: the store has the sealed words), and a
 * render of a closed one checks after reading its words that it was not
 * dropped meanwhile (else -ENOENT, never missing words).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapfs/backing.h"
#include "snapfs/cbt.h"
#include "snapfs/log.h"
#include "snapfs/store.h"

#define MAP_NAME "cbt.map"
#define MAP_MAGIC 0x50414d5442434653ull /* "SFCBTMAP" */
#define MAP_HEADER 4096

enum { REGION_INTENT = 1, REGION_DIRTY = 2 };

#define GROW_BATCH 1024 /* words a growth records per commit */

/* The first page of cbt.map; the words follow it. */
struct map_header {
	uint64_t magic;
	uint64_t gen;
	uint64_t nblocks;
	uint32_t block_size;
	uint32_t pad;
};

struct cbt {
	struct store *s;
	uint32_t bs;
	uint64_t nblocks;
	uint64_t cap_blocks; /* the most it may grow to while mounted */
	uint64_t load_from; /* cbt_create: the first word to load */
	struct map_header *map; /* cbt.map, MAP_SHARED */
	size_t map_len; /* of the file, for nblocks */
	size_t map_cap; /* of the mapping: for the largest image it may grow
			   to (pages past the file's end are never touched) */
	uint64_t *open_bits; /* the map's words */
	uint8_t *region; /* REGION_* per CBT_REGION_WORDS words */
	uint64_t open_gen; /* atomic: readers run beside generation changes */
	bool open_widened; /* atomic */
	bool durable; /* durability=full: intents before writes */
	uint32_t keep;
	void (*read_hook)(void *arg); /* tests only */
	void *read_hook_arg;
};

static size_t nwords(const struct cbt *c)
{
	return (size_t)((c->nblocks + 63) / 64);
}

static size_t nregions(const struct cbt *c)
{
	return (nwords(c) + CBT_REGION_WORDS - 1) / CBT_REGION_WORDS;
}

/* The valid bits of word w (the last word may be partial). */
static uint64_t word_mask(const struct cbt *c, uint64_t w)
{
	uint64_t tail = c->nblocks - w * 64;

	return tail >= 64 ? ~0ull : (1ull << tail) - 1;
}

static int load_word(void *arg, uint64_t word, uint64_t bits)
{
	struct cbt *c = arg;

	if (word < nwords(c) && word >= c->load_from)
		c->open_bits[word] |= bits & word_mask(c, word);
	return 0;
}

int cbt_list_generations(struct cbt *c, struct store_generation **out,
			 size_t *n)
{
	return store_list_generations(c->s, out, n);
}

int cbt_get_generation(struct cbt *c, uint64_t gen,
		       struct store_generation *out)
{
	return store_get_generation(c->s, gen, out);
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

/* Bytes of cbt.map for nblocks blocks. */
static size_t map_bytes(uint64_t nblocks)
{
	return MAP_HEADER + (((nblocks + 63) / 64 * 8 + 4095) & ~(size_t)4095);
}

/*
 * Maps cbt.map, sized for this image; *valid tells whether it already
 * held this image's bits of generation gen, *grown whether only those of
 * the image before a growth a crash interrupted (cbt_grow_prepare made
 * the file larger first: the new blocks' bits are in the store).
 */
static int map_open(struct cbt *c, uint64_t gen, bool *valid, bool *grown)
{
	char path[4096];
	struct stat st;
	void *m;
	int fd, r = 0;

	c->map_len = map_bytes(c->nblocks);
	c->map_cap = map_bytes(c->nblocks > c->cap_blocks ? c->nblocks
							  : c->cap_blocks);
	snprintf(path, sizeof(path), "%s/%s", store_dir(c->s), MAP_NAME);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	*valid = (size_t)st.st_size >= c->map_len;
	if (!*valid && ftruncate(fd, 0) < 0)
		r = -errno;
	if (!r && !*valid && ftruncate(fd, (off_t)c->map_len) < 0)
		r = -errno;
	if (r)
		goto out;
	m = mmap(NULL, c->map_cap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		r = -errno;
		goto out;
	}
	c->map = m;
	c->open_bits = (uint64_t *)((char *)m + MAP_HEADER);
	*valid = *valid && c->map->magic == MAP_MAGIC && c->map->gen == gen &&
		 c->map->nblocks <= c->nblocks && c->map->block_size == c->bs;
	*grown = *valid && c->map->nblocks < c->nblocks;
	/* an image's map is as long as it needs: a growth that never
	 * happened leaves it longer */
	if (!r && (size_t)st.st_size > c->map_len && !*grown &&
	    ftruncate(fd, (off_t)c->map_len) < 0)
		r = -errno;
out:
	if (r)
		log_error("cbt: %s: %s", path, strerror(-r));
	if (fd >= 0)
		close(fd);
	return r;
}

/* Makes the map generation gen's, keeping its words. */
static void map_stamp(struct cbt *c, uint64_t gen)
{
	c->map->magic = MAP_MAGIC;
	c->map->gen = gen;
	c->map->nblocks = c->nblocks;
	c->map->block_size = c->bs;
}

int cbt_create(struct cbt **out, struct store *s, uint64_t image_size,
	       uint32_t keep, bool durable, bool same_boot)
{
	struct cbt *c = calloc(1, sizeof(*c));
	bool clean = store_info(s)->prev_clean, valid = false, grown = false;
	int r;

	if (!c)
		return -ENOMEM;
	c->s = s;
	c->bs = store_info(s)->cbt_block_size;
	c->nblocks = (image_size + c->bs - 1) / c->bs;
	c->cap_blocks = (BACKING_MAX_GROWN + c->bs - 1) / c->bs;
	if (c->cap_blocks < c->nblocks)
		c->cap_blocks = c->nblocks;
	c->keep = keep;
	c->durable = durable;
	c->open_gen = store_info(s)->generation;
	c->region = calloc(
		(c->cap_blocks / 64 + CBT_REGION_WORDS) / CBT_REGION_WORDS, 1);
	r = c->region ? map_open(c, c->open_gen, &valid, &grown) : -ENOMEM;
	if (r)
		goto fail;
	/* Which record to believe: see the crash rule above; after a
	 * growth the map has the old blocks, the store the new ones. */
	if (clean || !same_boot || !valid || grown) {
		if (clean || !valid)
			memset(c->open_bits, 0, nwords(c) * 8);
		/* after a kill -9 the map is exact as far as it went: only
		 * the new blocks come from the store (the old ones' words
		 * there may be whole intents) */
		if (grown && same_boot && !clean)
			c->load_from = c->map->nblocks / 64;
		r = store_for_each_cbt_word(s, c->open_gen, load_word, c);
		c->load_from = 0;
	}
	map_stamp(c, c->open_gen);
	if (!r)
		r = gen_state(c, c->open_gen, &c->open_widened);
	if (!r && !clean) {
		/* Leave the store exact again: intents of the crashed run
		 * may be wider than what the map says. */
		memset(c->region, REGION_DIRTY, nregions(c));
		r = cbt_seal(c);
	}
	if (r)
		goto fail;
	*out = c;
	return 0;
fail:
	cbt_destroy(c);
	return r;
}

void cbt_destroy(struct cbt *c)
{
	if (!c)
		return;
	if (c->map)
		munmap(c->map, c->map_cap);
	free(c->region);
	free(c);
}

int cbt_seal(struct cbt *c)
{
	size_t nr = 0, nw = 0, cap = 0;
	uint64_t *ranges = NULL;
	struct cbt_word *w = NULL;
	int r = 0;

	for (size_t i = 0; i < nregions(c); i++)
		cap += (c->region[i] & (REGION_DIRTY | REGION_INTENT)) != 0;
	if (!cap)
		return 0;
	ranges = malloc(cap * 2 * sizeof(*ranges));
	w = malloc(cap * CBT_REGION_WORDS * sizeof(*w));
	if (!ranges || !w) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nregions(c); i++) {
		uint64_t lo = i * CBT_REGION_WORDS, hi = lo + CBT_REGION_WORDS;

		if (!(c->region[i] & (REGION_DIRTY | REGION_INTENT)))
			continue;
		if (hi > nwords(c))
			hi = nwords(c);
		if (nr && ranges[2 * nr - 1] + 1 == lo) { /* adjacent: extend */
			ranges[2 * nr - 1] = hi - 1;
		} else {
			ranges[2 * nr] = lo;
			ranges[2 * nr++ + 1] = hi - 1;
		}
		for (uint64_t k = lo; k < hi; k++)
			if (c->open_bits[k])
				w[nw++] = (struct cbt_word){
					.word = k, .bits = c->open_bits[k]
				};
	}
	r = store_replace_cbt_words(c->s, c->open_gen, ranges, nr, w, nw);
	if (!r)
		memset(c->region, 0, nregions(c));
out:
	if (r)
		log_error("cbt: record generation %llu: %s",
			  (unsigned long long)c->open_gen, strerror(-r));
	free(ranges);
	free(w);
	return r;
}

/* The words of blocks [first, nblocks) of an image of nblocks blocks, all
 * ones, and the range of words they lie in.  Caller frees *out. */
static int ones_words(uint64_t first, uint64_t nblocks, struct cbt_word **out,
		      size_t *n, uint64_t range[2])
{
	uint64_t w0 = first / 64, w1 = (nblocks - 1) / 64;
	struct cbt_word *v = malloc((w1 - w0 + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (uint64_t w = w0; w <= w1; w++) {
		uint64_t bits = ~0ull;

		if (w == w0)
			bits &= ~0ull << (first % 64);
		if (w == w1 && nblocks % 64)
			bits &= (1ull << (nblocks % 64)) - 1;
		v[w - w0] = (struct cbt_word){ .word = w, .bits = bits };
	}
	*out = v;
	*n = (size_t)(w1 - w0 + 1);
	range[0] = w0;
	range[1] = w1;
	return 0;
}

/* The first block a growth from old_size changes: the partial last one
 * changes length. */
static uint64_t first_grown(const struct cbt *c, uint64_t old_size)
{
	return old_size / c->bs;
}

/*
 * Records the blocks a growth from old_size to new_size adds as changed in
 * the open generation's store record: with edge, only the word they share
 * with the old blocks (kept as the store has it: the map's bits, or ones
 * where a write intent for its region is recorded, which later writes
 * there rely on); without, every word past it (no old block in them).
 */
static int record_grown(struct cbt *c, uint64_t old_size, uint64_t new_size,
			bool edge)
{
	uint64_t nb = (new_size + c->bs - 1) / c->bs, range[2];
	struct cbt_word *w = NULL;
	size_t n = 0;
	bool shared;
	int r;

	if (c->open_widened)
		return 0;
	r = ones_words(first_grown(c, old_size), nb, &w, &n, range);
	if (r)
		return r;
	shared = range[0] < nwords(c);
	if (edge && shared) {
		w[0].bits |=
			c->region[range[0] / CBT_REGION_WORDS] & REGION_INTENT
				? word_mask(c, range[0])
				: c->open_bits[range[0]];
		range[1] = range[0];
		r = store_replace_cbt_words(c->s, c->open_gen, range, 1, w, 1);
	} else if (!edge) {
		/* in batches, so that the commits of writes get the index
		 * in between (+1 TiB: 256 batches at the default size) */
		for (size_t i = shared; i < n && !r; i += GROW_BATCH) {
			size_t k = n - i < GROW_BATCH ? n - i : GROW_BATCH;
			uint64_t part[2] = { w[i].word, w[i + k - 1].word };

			r = store_replace_cbt_words(c->s, c->open_gen, part, 1,
						    w + i, k);
		}
	}
	free(w);
	return r;
}

int cbt_grow_prepare(struct cbt *c, uint64_t old_size, uint64_t new_size)
{
	uint64_t nb = (new_size + c->bs - 1) / c->bs;
	char path[4096];
	int fd, r;

	if (nb > c->cap_blocks)
		return -EFBIG;
	snprintf(path, sizeof(path), "%s/%s", store_dir(c->s), MAP_NAME);
	fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	r = fd < 0 ? -errno : 0;
	if (!r && ftruncate(fd, (off_t)map_bytes(nb)) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	if (!r)
		r = record_grown(c, old_size, new_size, false);
	if (r)
		log_error("cbt: cannot prepare the bitmap for %llu bytes: %s",
			  (unsigned long long)new_size, strerror(-r));
	return r;
}

int cbt_grow_edge(struct cbt *c, uint64_t old_size, uint64_t new_size)
{
	int r = record_grown(c, old_size, new_size, true);

	if (r)
		log_error("cbt: cannot record the growth to %llu bytes: %s",
			  (unsigned long long)new_size, strerror(-r));
	return r;
}

void cbt_grow_commit(struct cbt *c, uint64_t old_size, uint64_t new_size)
{
	uint64_t nb = (new_size + c->bs - 1) / c->bs;
	uint64_t b = first_grown(c, old_size);

	/* a word at a time (+8 TiB is 2^21 words, 2^27 blocks) */
	for (; b < nb && b % 64; b++) /* shared with old blocks */
		__atomic_fetch_or(&c->open_bits[b / 64], 1ull << (b % 64),
				  __ATOMIC_RELAXED);
	for (; b + 64 <= nb; b += 64)
		__atomic_store_n(&c->open_bits[b / 64], ~0ull,
				 __ATOMIC_RELAXED);
	if (b < nb)
		__atomic_store_n(&c->open_bits[b / 64], (1ull << (nb - b)) - 1,
				 __ATOMIC_RELAXED);
	c->map_len = map_bytes(nb);
	__atomic_store_n(&c->nblocks, nb, __ATOMIC_RELEASE);
	c->map->nblocks = nb;
}

uint64_t cbt_nblocks(const struct cbt *c)
{
	return __atomic_load_n(&c->nblocks, __ATOMIC_ACQUIRE);
}

uint64_t cbt_bitmap_bytes(const struct cbt *c)
{
	return (cbt_nblocks(c) + 7) / 8;
}

uint32_t cbt_block_size(const struct cbt *c)
{
	return c->bs;
}

uint64_t cbt_open_generation(const struct cbt *c)
{
	return __atomic_load_n(&c->open_gen, __ATOMIC_ACQUIRE);
}

void cbt_set_read_hook(struct cbt *c, void (*fn)(void *arg), void *arg)
{
	c->read_hook = fn;
	c->read_hook_arg = arg;
}

/* Appends w to the list (*v, *n) that starts in inline storage of
 * inline_cap words. */
static int push_word(struct cbt_word **v, size_t *n, size_t *cap,
		     struct cbt_word *inl, struct cbt_word w)
{
	if (*n == *cap) {
		size_t ncap = *cap * 2;
		struct cbt_word *nv = malloc(ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		memcpy(nv, *v, *n * sizeof(*nv));
		if (*v != inl)
			free(*v);
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = w;
	return 0;
}

int cbt_collect(struct cbt *c, uint64_t off, uint64_t len,
		struct cbt_pending *p)
{
	uint64_t first = off / c->bs, last, w0, w1, last_region = UINT64_MAX;
	size_t cap_set = sizeof(p->inline_set) / sizeof(p->inline_set[0]);
	size_t cap_words = sizeof(p->inline_words) / sizeof(p->inline_words[0]);
	int r = 0;

	*p = (struct cbt_pending){ .gen = c->open_gen };
	p->words = p->inline_words;
	p->set = p->inline_set;
	if (!len || first >= c->nblocks || c->open_widened)
		return 0;
	last = (off + len - 1) / c->bs;
	if (last >= c->nblocks)
		last = c->nblocks - 1;
	w0 = first / 64;
	w1 = last / 64;
	for (uint64_t w = w0; w <= w1 && !r; w++) {
		uint64_t lo = w == w0 ? first % 64 : 0;
		uint64_t hi = w == w1 ? last % 64 : 63;
		uint64_t mask = (hi == 63 ? ~0ull : (1ull << (hi + 1)) - 1) &
				~((1ull << lo) - 1);
		uint64_t have =
			__atomic_load_n(&c->open_bits[w], __ATOMIC_ACQUIRE);
		uint64_t reg = w / CBT_REGION_WORDS;

		if (!(mask & ~have))
			continue;
		r = push_word(&p->set, &p->nset, &cap_set, p->inline_set,
			      (struct cbt_word){ .word = w, .bits = mask });
		if (r || !c->durable ||
		    (last_region != UINT64_MAX && reg <= last_region) ||
		    (__atomic_load_n(&c->region[reg], __ATOMIC_ACQUIRE) &
		     REGION_INTENT))
			continue;
		/* A sequential writer (the region before is recorded) gets
		 * the next CBT_AHEAD regions recorded with this one. */
		last_region = reg;
		if (reg > 0 &&
		    (__atomic_load_n(&c->region[reg - 1], __ATOMIC_ACQUIRE) &
		     REGION_INTENT))
			last_region = reg + CBT_AHEAD;
		for (uint64_t k = reg * CBT_REGION_WORDS;
		     k < (last_region + 1) * CBT_REGION_WORDS &&
		     k < nwords(c) && !r;
		     k++)
			r = push_word(
				&p->words, &p->n, &cap_words, p->inline_words,
				(struct cbt_word){ .word = k,
						   .bits = word_mask(c, k) });
	}
	if (r)
		cbt_pending_free(p);
	return r;
}

void cbt_apply(struct cbt *c, const struct cbt_pending *p)
{
	if (p->gen != c->open_gen)
		return;
	for (size_t i = 0; i < p->n; i++)
		__atomic_fetch_or(
			&c->region[p->words[i].word / CBT_REGION_WORDS],
			REGION_INTENT, __ATOMIC_RELEASE);
	for (size_t i = 0; i < p->nset; i++) {
		__atomic_fetch_or(&c->open_bits[p->set[i].word], p->set[i].bits,
				  __ATOMIC_RELEASE);
		__atomic_fetch_or(&c->region[p->set[i].word / CBT_REGION_WORDS],
				  REGION_DIRTY, __ATOMIC_RELEASE);
	}
}

void cbt_pending_free(struct cbt_pending *p)
{
	if (p->words != p->inline_words)
		free(p->words);
	if (p->set != p->inline_set)
		free(p->set);
	p->words = p->inline_words;
	p->set = p->inline_set;
	p->n = p->nset = 0;
}

int cbt_next_generation(struct cbt *c)
{
	struct store_generation *v;
	size_t n, closed = 0;
	int r;

	/* The new number is published before a bit is cleared: a reader
	 * that saw a cleared bit sees the new number after it. */
	__atomic_store_n(&c->open_gen, store_info(c->s)->generation,
			 __ATOMIC_RELEASE);
	__atomic_store_n(&c->open_widened, false, __ATOMIC_RELEASE);
	for (size_t i = 0; i < nwords(c); i++)
		__atomic_store_n(&c->open_bits[i], 0, __ATOMIC_RELEASE);
	memset(c->region, 0, nregions(c));
	map_stamp(c, c->open_gen);
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
		__atomic_store_n(&c->open_widened, true, __ATOMIC_RELEASE);
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

/* Sets every bit of nblocks blocks. */
static void fill_ones(uint8_t *bytes, uint64_t nblocks)
{
	uint64_t nb = (nblocks + 7) / 8;

	memset(bytes, 0xff, nb);
	if (nblocks % 8)
		bytes[nb - 1] = (uint8_t)((1u << (nblocks % 8)) - 1);
}

int cbt_render(struct cbt *c, uint64_t gen, uint8_t **out)
{
	/* one size for the whole render: a resize may grow it meanwhile */
	uint64_t nblocks = cbt_nblocks(c), nb = (nblocks + 7) / 8;
	uint8_t *bytes = calloc(nb ? nb : 1, 1);
	bool widened = false;
	ssize_t n;
	int r;

	if (!bytes)
		return -ENOMEM;
	n = cbt_read_open(c, gen, bytes, nb, 0);
	if (n >= 0) {
		*out = bytes;
		return 0;
	}
	memset(bytes, 0, nb);
	r = gen_state(c, gen, &widened);
	if (!r && widened) {
		fill_ones(bytes, nblocks);
	} else if (!r) {
		void *arg[2] = { bytes, &nb };

		r = store_for_each_cbt_word(c->s, gen, render_word, arg);
	}
	/* Dropped before its words were read: they may be missing. */
	if (!r)
		r = gen_state(c, gen, &widened);
	if (r) {
		free(bytes);
		return r;
	}
	*out = bytes;
	return 0;
}

ssize_t cbt_read_open(struct cbt *c, uint64_t gen, void *buf, size_t len,
		      uint64_t off)
{
	uint64_t nb = cbt_bitmap_bytes(c);
	uint64_t now = __atomic_load_n(&c->open_gen, __ATOMIC_ACQUIRE);
	uint8_t *dst = buf;

	if (gen < now)
		return -ESTALE;
	if (off >= nb)
		return 0;
	if (len > nb - off)
		len = (size_t)(nb - off);
	if (gen > now) {
		memset(dst, 0, len); /* not open yet: nothing written */
	} else if (__atomic_load_n(&c->open_widened, __ATOMIC_ACQUIRE)) {
		memset(dst, 0xff, len);
		if (c->nblocks % 8 && off + len == nb)
			dst[len - 1] = (uint8_t)((1u << (c->nblocks % 8)) - 1);
	} else {
		for (size_t i = 0; i < len; i++) {
			uint64_t byte = off + i;
			uint64_t w = __atomic_load_n(&c->open_bits[byte / 8],
						     __ATOMIC_ACQUIRE);

			dst[i] = (uint8_t)(w >> (8 * (byte % 8)));
		}
	}
	if (c->read_hook)
		c->read_hook(c->read_hook_arg);
	/* Closed meanwhile: what was copied may be the next one's (cleared)
	 * bits; the store has gen's. */
	if (gen < __atomic_load_n(&c->open_gen, __ATOMIC_ACQUIRE))
		return -ESTALE;
	return (ssize_t)len;
}

int cbt_drop(struct cbt *c, uint64_t gen)
{
	bool widened;
	int r;

	if (gen >= cbt_open_generation(c))
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
