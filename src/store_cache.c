// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * store_cache.c - what copy lookups found, kept: for a snapshot seq and a
 * window of CACHE_WINDOW chunks, the copy each chunk of the window reads
 * (store_find_copies' answer), so that reads of a snapshot ask the index
 * once per window, not once per read.  A random 4 KiB read of a snapshot
 * whose every chunk is preserved costs one index lookup without it, about
 * as much CPU as the rest of the read, all of it under rdb_lock.
 *
 * A fixed budget (CACHE_BYTES) in sets of CACHE_WAYS entries, a window's
 * set by its number, so a window's entries for every seq are in one set;
 * an entry is allocated when first filled and replaced round robin.
 *
 * What a window costs: asking the index for all of its chunks reads a row
 * per run in it, up to CACHE_WINDOW of them where one chunk's lookup reads
 * one or two.  So a lookup of part of a window asks for that part only
 * and notes the window as missed; the window is asked for whole (and
 * kept) when a lookup covers it, or misses it again while it is still
 * among its set's last CACHE_MISSED misses.  Random reads over more
 * snapshot than the cache holds then cost what they cost without it
 * (measured: 3 to 4 times that when every miss asked for its window);
 * reads that come back to a window pay for it once.
 *
 * Staying true to the index: the index changes only by commits (rows
 * inserted by the group commit, runs split and deleted by a purge), and
 * each commit forgets what it may have changed right after it committed:
 * the group commit the windows of its rows (copy_cache_forget), a purge
 * every window (copy_cache_forget_all).  A lookup that missed takes its
 * window's set generation before it asks the index and keeps what it found
 * only when no forget of that set came in between (copy_cache_put), so an
 * answer read before a commit is never kept after the commit's forget.
 * The chain (cow.c) commits a chunk's copy before it changes the live
 * chunk, with the chunk's stripe held exclusive, and a snapshot read
 * holds the stripes it reads shared: a read never finds a window that
 * says "live" for a chunk whose live bytes have moved on.
 *
 * Locking: each set has its own mutex, taken with no other store lock
 * held (so the store's rule, never two of its locks at once, stands).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

/* One chunk's copy as a window keeps it: seq 0 for none (no snapshot has
 * seq 0), slot CACHE_ZEROS for a zero row. */
struct cache_row {
	uint32_t seq;
	uint32_t slot;
	uint32_t crc;
};

#define CACHE_ZEROS UINT32_MAX

struct cache_entry {
	uint64_t window;
	int64_t seq; /* the snapshot looked up; 0: empty */
	struct cache_row rows[CACHE_WINDOW];
};

struct cache_set {
	pthread_mutex_t lock;
	uint64_t gen; /* forgets of this set so far */
	unsigned victim; /* the next way to replace */
	struct cache_entry *way[CACHE_WAYS];
	/* windows missed lately, +1 (0: none); the next to replace */
	uint64_t missed[CACHE_MISSED];
	unsigned missed_next;
};

int copy_cache_init(struct copy_cache *cc, uint32_t chunk_size)
{
	size_t n = CACHE_BYTES / (CACHE_WAYS * sizeof(struct cache_entry));
	size_t nsets = 1;

	while (nsets * 2 <= n)
		nsets *= 2;
	cc->sets = calloc(nsets, sizeof(*cc->sets));
	if (!cc->sets)
		return -ENOMEM;
	cc->mask = nsets - 1;
	cc->cs = chunk_size;
	for (size_t i = 0; i < nsets; i++)
		pthread_mutex_init(&cc->sets[i].lock, NULL);
	return 0;
}

void copy_cache_destroy(struct copy_cache *cc)
{
	if (!cc->sets)
		return;
	for (size_t i = 0; i <= cc->mask; i++) {
		for (unsigned k = 0; k < CACHE_WAYS; k++)
			free(cc->sets[i].way[k]);
		pthread_mutex_destroy(&cc->sets[i].lock);
	}
	free(cc->sets);
	cc->sets = NULL;
}

static struct cache_set *set_of(struct copy_cache *cc, uint64_t window)
{
	return &cc->sets[window & cc->mask];
}

static struct cache_entry *find(struct cache_set *set, uint64_t window,
				int64_t seq)
{
	for (unsigned k = 0; k < CACHE_WAYS; k++) {
		struct cache_entry *e = set->way[k];

		/* seq 0: an emptied entry (no snapshot has seq 0) */
		if (e && e->seq && e->seq == seq && e->window == window)
			return e;
	}
	return NULL;
}

bool copy_cache_get(struct copy_cache *cc, int64_t seq, uint64_t first,
		    uint64_t last, struct chunk_row *rows)
{
	uint64_t window = first / CACHE_WINDOW;
	struct cache_set *set = set_of(cc, window);
	struct cache_entry *e;

	pthread_mutex_lock(&set->lock);
	e = find(set, window, seq);
	for (uint64_t c = first; e && c <= last; c++) {
		const struct cache_row *k = &e->rows[c % CACHE_WINDOW];
		struct chunk_row *out = &rows[c - first];

		*out = (struct chunk_row){ .chunk_idx = c, .seq = -1 };
		if (!k->seq)
			continue;
		out->seq = k->seq;
		out->data_off =
			k->slot == CACHE_ZEROS ? -1 : (int64_t)k->slot * cc->cs;
		out->crc = k->crc;
	}
	pthread_mutex_unlock(&set->lock);
	return e != NULL;
}

bool copy_cache_miss(struct copy_cache *cc, uint64_t window, bool whole,
		     uint64_t *token)
{
	struct cache_set *set = set_of(cc, window);
	bool fill = whole;

	pthread_mutex_lock(&set->lock);
	*token = set->gen;
	for (unsigned k = 0; k < CACHE_MISSED && !fill; k++)
		if (set->missed[k] == window + 1) {
			set->missed[k] = 0;
			fill = true;
		}
	if (!fill) {
		set->missed[set->missed_next] = window + 1;
		set->missed_next = (set->missed_next + 1) % CACHE_MISSED;
	}
	pthread_mutex_unlock(&set->lock);
	return fill;
}

/* rows as the window's entry keeps them; false when one does not fit. */
static bool pack(const struct copy_cache *cc, const struct chunk_row *rows,
		 struct cache_row *out)
{
	for (unsigned i = 0; i < CACHE_WINDOW; i++) {
		const struct chunk_row *r = &rows[i];

		if (r->seq < 0) {
			out[i] = (struct cache_row){ 0 };
			continue;
		}
		if (r->seq == 0 || r->seq > UINT32_MAX ||
		    (r->data_off >= 0 &&
		     (uint64_t)r->data_off / cc->cs >= CACHE_ZEROS))
			return false;
		out[i] = (struct cache_row){
			.seq = (uint32_t)r->seq,
			.slot = r->data_off < 0
					? CACHE_ZEROS
					: (uint32_t)((uint64_t)r->data_off /
						     cc->cs),
			.crc = r->crc,
		};
	}
	return true;
}

void copy_cache_put(struct copy_cache *cc, uint64_t token, int64_t seq,
		    uint64_t window, const struct chunk_row *rows)
{
	struct cache_row packed[CACHE_WINDOW];
	struct cache_set *set = set_of(cc, window);
	struct cache_entry *e;

	if (!pack(cc, rows, packed))
		return;
	pthread_mutex_lock(&set->lock);
	if (set->gen != token)
		goto out; /* a commit may have changed the window since */
	e = find(set, window, seq);
	for (unsigned k = 0; !e && k < CACHE_WAYS; k++)
		if (!set->way[k] || !set->way[k]->seq) {
			if (!set->way[k])
				set->way[k] = malloc(sizeof(*e));
			e = set->way[k];
			break;
		}
	if (!e) {
		e = set->way[set->victim];
		set->victim = (set->victim + 1) % CACHE_WAYS;
	}
	if (e) { /* NULL: no memory, nothing kept */
		e->window = window;
		e->seq = seq;
		memcpy(e->rows, packed, sizeof(packed));
	}
out:
	pthread_mutex_unlock(&set->lock);
}

/* Empties set's entries for window (every one when all), under its lock. */
static void forget_in(struct cache_set *set, uint64_t window, bool all)
{
	pthread_mutex_lock(&set->lock);
	set->gen++;
	for (unsigned k = 0; k < CACHE_WAYS; k++) {
		struct cache_entry *e = set->way[k];

		if (e && (all || e->window == window))
			e->seq = 0;
	}
	pthread_mutex_unlock(&set->lock);
}

void copy_cache_forget(struct copy_cache *cc, uint64_t first, uint64_t last)
{
	for (uint64_t w = first / CACHE_WINDOW; w <= last / CACHE_WINDOW; w++)
		forget_in(set_of(cc, w), w, false);
}

void copy_cache_forget_all(struct copy_cache *cc)
{
	for (size_t i = 0; i <= cc->mask; i++)
		forget_in(&cc->sets[i], 0, true);
}
