// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * cow.c - the copy-on-write chain.
 *
 * Owns the rules that keep snapshots still: before a chunk that some
 * snapshot reads live is overwritten, discarded or zeroed, its old bytes
 * are copied to the store and indexed under the newest snapshot's seq.
 * That one copy serves every older snapshot that has no copy of its own
 * in between, so a snapshot S reads, chunk by chunk, the oldest copy at
 * or after S, or the live chunk when there is none.
 *
 * In memory, two bits per chunk keep the hot paths off SQLite, and are
 * all the memory that grows with the image:
 *   preserved  some copy of the chunk exists (else every snapshot reads it
 *              live, decided without a lookup);
 *   fresh      a copy at or after the newest snapshot exists (a write needs
 *              no preservation, decided without a lookup or a lock).  A
 *              new snapshot forgets them all by a new epoch; a page of
 *              them (FRESH_PAGE_BITS) counts only while it is of the
 *              current epoch, and is cleared when its first bit is set
 *              in a new one (fresh_set), so that a snapshot of 1 TiB at
 *              4 KiB chunks does not clear 32 MiB of bits.
 * Invariant: fresh implies preserved, and fresh implies that no snapshot
 * reads the chunk live, so a write to a fresh chunk races with no reader.
 *
 * A write that must preserve first is queued instead (behind.c) and
 * answered; the queue's workers preserve and write it in order
 * (cow_behind.c).  Snapshot reads and seeks are in cow_read.c; the three
 * files share cow_int.h.  Its answer promises that the
 * preservation will find room, so a queued write first reserves a store
 * slot for each chunk it must preserve, once per chunk however many
 * queued writes touch it; a set of chunks (chunkset.h, as small as the
 * queue) holds those promises:
 *   promised   a store slot is reserved for the chunk's preservation.
 *              Added by the queued write that reserved it (the set's own
 *              lock); taken, under the chunk's stripe lock, by the first
 *              preservation of the chunk that succeeds, which uses the
 *              slot or gives it back (a zero chunk needs none), or that
 *              finds the chunk fresh.  A preservation that fails, queued
 *              or synchronous, keeps it with its slot: a queued write to
 *              the chunk was answered and relies on it.  Every queued
 *              write's batch looks at each of its chunks, so a promise
 *              outlives the queue only when every write relying on it
 *              was dropped; the next instant gives those back
 *              (cow_quiesce).
 *
 * Locking:
 *   instant   a rwlock: every live write holds it shared from its first
 *             preservation (or until it is queued) to its last byte; a
 *             snapshot takes it exclusive and waits for the queue
 *             (cow_quiesce), so it holds every write that returned before
 *             and none that started after.  Writer-preferring, so a stream
 *             of writes cannot starve a snapshot.  The queue's workers do
 *             not take it: they run only while no snapshot is being taken.
 *   stripes   rwlocks hashed by chunk: a preservation holds its chunks'
 *             stripes exclusive from the old bytes' read to the commit; a
 *             snapshot read holds them shared while it decides between a
 *             copy and the live chunk and reads, a snapshot seek while it
 *             decides and asks the backing.  Taken in ascending
 *             stripe order, so batches never deadlock.
 *   room_lock one make_room (on_full=drop-oldest) at a time; room_epoch
 *             counts those that made room, and a change whose attempt
 *             began before the last of them tries again instead of having
 *             another snapshot dropped for the same shortage.
 * The bits are set under the stripe lock after the commit (release), and
 * read with acquire loads.
 *
 * Not here: which snapshots exist (snapshot.c), where bytes live on disk
 * (store*.c), how I/O is issued (uring.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "snapfs/backing.h"
#include "snapfs/behind.h"
#include "snapfs/cbt.h"
#include "snapfs/cow.h"
#include "snapfs/crc32c.h"
#include "snapfs/fault.h"
#include "snapfs/iolog.h"
#include "snapfs/log.h"
#include "snapfs/scratch.h"
#include "snapfs/store.h"
#include "snapfs/uring.h"
#include "cow_int.h"
#include "zero.h"

#define ZERO_WRITE_LEN (1u << 20)
/* A discard takes the instant lock for this much at a time (cow_discard). */
#define DISCARD_PIECE (64ull << 20)

void fresh_set(struct cow *c, uint64_t i)
{
	uint64_t p = i / FRESH_PAGE_BITS;
	uint64_t e = __atomic_load_n(&c->epoch, __ATOMIC_RELAXED);

	if (__atomic_load_n(&c->fresh_epoch[p], __ATOMIC_ACQUIRE) != e) {
		pthread_mutex_t *l = &c->fresh_locks[p % FRESH_LOCKS];

		pthread_mutex_lock(l);
		if (__atomic_load_n(&c->fresh_epoch[p], __ATOMIC_RELAXED) !=
		    e) {
			size_t w = (size_t)p * (FRESH_PAGE_BITS / 64);
			size_t nw = words(c->nchunks) - w;

			if (nw > FRESH_PAGE_BITS / 64)
				nw = FRESH_PAGE_BITS / 64;
			/* no reader looks at these bits before the epoch */
			memset(c->fresh + w, 0, nw * sizeof(uint64_t));
			__atomic_store_n(&c->fresh_epoch[p], e,
					 __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(l);
	}
	bit_set(c->fresh, i);
}

void fresh_reset(struct cow *c)
{
	__atomic_store_n(&c->epoch, c->epoch + 1, __ATOMIC_RELAXED);
}

/* One preserved copy, at open or after the newest snapshot went away:
 * fresh when made under the newest snapshot or a later one. */
static int load_chunk(void *arg, uint64_t chunk_idx, int64_t seq)
{
	struct cow *c = arg;

	if (chunk_idx >= c->nchunks)
		return 0; /* cannot happen: the image size is checked */
	bit_set(c->preserved, chunk_idx);
	if (c->newest && seq >= c->newest)
		fresh_set(c, chunk_idx);
	return 0;
}

/* Bytes of a table of a bit per chunk, and of the fresh epochs, for n
 * chunks. */
static size_t bits_bytes(uint64_t n)
{
	return words(n) * sizeof(uint64_t);
}

static size_t epochs_bytes(uint64_t n)
{
	return (n / FRESH_PAGE_BITS + 1) * sizeof(uint64_t);
}

static size_t page_up(size_t n)
{
	return (n + 4095) & ~(size_t)4095;
}

/*
 * The per-chunk tables are read without a lock, so they never move: each
 * is address space reserved for the largest image the mount may grow to
 * (cap bytes, no memory), of which the first used bytes are made usable
 * (zeros, memory as they are touched); a growth makes more usable in
 * place.  NULL when it cannot be had.
 */
static void *table_reserve(size_t cap, size_t used)
{
	void *p = mmap(NULL, page_up(cap), PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (mprotect(p, page_up(used), PROT_READ | PROT_WRITE) < 0) {
		munmap(p, page_up(cap));
		return NULL;
	}
	return p;
}

static void table_free(void *p, size_t cap)
{
	if (p)
		munmap(p, page_up(cap));
}

static int table_grow(void *p, size_t used)
{
	return mprotect(p, page_up(used), PROT_READ | PROT_WRITE) < 0 ? -errno
								      : 0;
}

static void tables_free(struct cow *c)
{
	table_free(c->fresh, bits_bytes(c->cap_chunks));
	table_free(c->fresh_epoch, epochs_bytes(c->cap_chunks));
	table_free(c->preserved, bits_bytes(c->cap_chunks));
}

int cow_grow_prepare(struct cow *c, uint64_t new_size)
{
	uint64_t n = (new_size + c->cs - 1) / c->cs;
	int r;

	if (n > c->cap_chunks)
		return -EFBIG;
	r = table_grow(c->fresh, bits_bytes(n));
	if (!r)
		r = table_grow(c->fresh_epoch, epochs_bytes(n));
	if (!r)
		r = table_grow(c->preserved, bits_bytes(n));
	return r;
}

void cow_grow_commit(struct cow *c, uint64_t new_size)
{
	__atomic_store_n(&c->nchunks, (new_size + c->cs - 1) / c->cs,
			 __ATOMIC_RELEASE);
	__atomic_store_n(&c->size, new_size, __ATOMIC_RELEASE);
}

/* Sets newest and the chunks it has (its size is in the store's row;
 * when that cannot be read, every chunk: more copies, never fewer). */
static void set_newest(struct cow *c, int64_t seq)
{
	struct store_snapshot *v;
	size_t n;

	c->newest = seq;
	c->newest_chunks = UINT64_MAX;
	if (!seq)
		return;
	if (store_list_snapshots(c->s, &v, &n)) {
		log_warn("cow: the newest snapshot's size is unknown: every "
			 "chunk is preserved for it");
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (v[i].seq == seq)
			c->newest_chunks = (v[i].size + c->cs - 1) / c->cs;
	free(v);
}

int cow_create(struct cow **out, struct backing *b, struct store *s,
	       struct uring_engine *io, struct cbt *cbt, int64_t newest_seq)
{
	struct cow *c = calloc(1, sizeof(*c));
	pthread_rwlockattr_t attr;
	int r;

	if (!c)
		return -ENOMEM;
	c->b = b;
	c->s = s;
	c->io = io;
	c->cbt = cbt;
	c->size = b->size;
	c->cs = store_info(s)->chunk_size;
	c->nchunks = (c->size + c->cs - 1) / c->cs;
	set_newest(c, newest_seq);
	c->cap_chunks = (BACKING_MAX_GROWN + c->cs - 1) / c->cs;
	if (c->cap_chunks < c->nchunks)
		c->cap_chunks = c->nchunks;
	c->fresh = table_reserve(bits_bytes(c->cap_chunks),
				 bits_bytes(c->nchunks));
	c->fresh_epoch = table_reserve(epochs_bytes(c->cap_chunks),
				       epochs_bytes(c->nchunks));
	c->epoch = 1; /* no page is of it: nothing is fresh */
	c->preserved = table_reserve(bits_bytes(c->cap_chunks),
				     bits_bytes(c->nchunks));
	chunkset_init(&c->promised);
	if (!c->fresh || !c->fresh_epoch || !c->preserved) {
		r = -ENOMEM;
		goto err;
	}
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(
		&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&c->instant, &attr);
	pthread_rwlockattr_destroy(&attr);
	for (int i = 0; i < NSTRIPES; i++)
		pthread_rwlock_init(&c->stripes[i], NULL);
	for (int i = 0; i < FRESH_LOCKS; i++)
		pthread_mutex_init(&c->fresh_locks[i], NULL);
	pthread_mutex_init(&c->room_lock, NULL);
	uring_engine_add_file(io, b->fd);
	uring_engine_add_file(io, store_data_fd(s));
	r = store_for_each_chunk(s, load_chunk, c);
	if (!r)
		r = behind_create(&c->behind, c->cs, cow_batch_chunks(c),
				  &cow_behind_ops, c);
	if (r) {
		cow_destroy(c);
		return r;
	}
	*out = c;
	return 0;
err:
	tables_free(c);
	chunkset_destroy(&c->promised);
	free(c);
	return r;
}

void cow_destroy(struct cow *c)
{
	if (!c)
		return;
	behind_destroy(c->behind);
	for (int i = 0; i < BEHIND_WORKERS; i++)
		free(c->room[i]);
	pthread_rwlock_destroy(&c->instant);
	for (int i = 0; i < NSTRIPES; i++)
		pthread_rwlock_destroy(&c->stripes[i]);
	for (int i = 0; i < FRESH_LOCKS; i++)
		pthread_mutex_destroy(&c->fresh_locks[i]);
	pthread_mutex_destroy(&c->room_lock);
	tables_free(c);
	chunkset_destroy(&c->promised);
	free(c);
}

/* Bytes of chunk i inside the image (the last chunk may be short). */
static size_t chunk_len(const struct cow *c, uint64_t i)
{
	uint64_t start = i * c->cs;

	return c->size - start < c->cs ? (size_t)(c->size - start) : c->cs;
}

/*
 * Takes slots for rows[nz[0..nnz)]: first for those without a promise,
 * then from the promises, so that a shortage spends none of them.  The
 * rows' data_off set (-1 where none was taken); *spent: promised slots
 * taken.  0 or -errno (slots taken stay in the rows).
 */
static int cow_take_slots(struct cow *c, struct chunk_row *rows,
			  const size_t *nz, size_t nnz, const bool *kept,
			  uint64_t *spent)
{
	int64_t offs[COW_BATCH_CHUNKS];
	size_t order[COW_BATCH_CHUNKS];
	uint64_t none = 0, reserved;
	size_t nu = 0, np = 0, i;
	int r = 0;

	for (i = 0; i < nnz; i++)
		if (!kept[nz[i]])
			order[nu++] = nz[i];
	for (i = 0; i < nnz; i++)
		if (kept[nz[i]])
			order[nu + np++] = nz[i];
	for (i = 0; i < nnz; i++)
		offs[i] = -1;
	if (nu)
		r = store_slot_alloc_run(c->s, offs, nu, &none);
	reserved = np;
	if (!r && np)
		r = store_slot_alloc_run(c->s, offs + nu, np, &reserved);
	*spent = np - reserved;
	for (i = 0; i < nnz; i++)
		rows[order[i]].data_off = offs[i];
	return r;
}

/*
 * After a preservation of rows[0..k) failed: its promises stay, but the
 * slots it took from them were given back to the store with the rest, so
 * it promises them again.  Where the store has no room left for that
 * (another change took it meanwhile), the promise goes: a queued write
 * that relied on it may then find no room.  Stripes held.
 */
static void cow_promise_again(struct cow *c, const struct chunk_row *rows,
			      const bool *kept, size_t k, uint64_t spent)
{
	for (size_t i = 0; i < k && spent; i++) {
		if (!kept[i] || !rows[i].data)
			continue;
		spent--;
		if (store_slot_reserve(c->s, 1)) {
			chunkset_remove(&c->promised, rows[i].chunk_idx);
			log_warn("cow: chunk %llu lost its promised slot",
				 (unsigned long long)rows[i].chunk_idx);
		}
	}
}

/*
 * Preserves those of chunks[0..n) (ascending) that are still not fresh:
 * reads their live bytes in one batch (into room, n chunks long, or a
 * scratch buffer), takes free slots for them (a chunk's promised slot
 * where it has one; consecutive, unless some have promises and some not),
 * and hands rows and bytes to the group commit, which writes the bytes,
 * syncs and commits.  Of the promises it finds, it takes those of fresh
 * chunks (giving their slots back), and when it succeeds those it used
 * or that a zero chunk did not need; when it fails it keeps the others,
 * with their slots, for the preservation that comes next: a queued
 * write that was answered relies on them.
 * Caller holds instant shared or is a write-behind worker;
 * n <= COW_BATCH_CHUNKS.
 */
int cow_preserve(struct cow *c, const uint64_t *chunks, size_t n,
		 struct cbt_pending *bits, unsigned char *room)
{
	struct stripe_set set;
	struct io_op ops[COW_BATCH_CHUNKS];
	struct chunk_row rows[COW_BATCH_CHUNKS];
	size_t nz[COW_BATCH_CHUNKS];
	bool kept[COW_BATCH_CHUNKS]; /* rows[i] holds a promise */
	unsigned char *buf = NULL;
	size_t k = 0, nnz = 0, nops = 0, i;
	uint64_t zeros = 0, spare = 0, spent = 0;
	int r = 0;

	stripes_of(&set, chunks, n);
	stripes_lock(c, &set, true);
	for (i = 0; i < n; i++) {
		bool p = chunkset_has(&c->promised, chunks[i]);

		if (fresh_test(c, chunks[i])) {
			/* preserved by one that did not use the promise */
			if (p && chunkset_remove(&c->promised, chunks[i]))
				spare++;
			continue;
		}
		kept[k] = p;
		rows[k++] = (struct chunk_row){ .chunk_idx = chunks[i],
						.seq = c->newest,
						.data_off = -1 };
	}
	if (!k)
		goto out;
	buf = room ? room : scratch_get(SCRATCH_CHUNKS, k * (size_t)c->cs);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < k; i++) {
		size_t len = chunk_len(c, rows[i].chunk_idx);

		if (len < c->cs)
			memset(buf + i * c->cs + len, 0, c->cs - len);
		/* consecutive chunks (whole ones: only the image's last is
		 * short) land side by side in buf: one read */
		if (nops && rows[i].chunk_idx == rows[i - 1].chunk_idx + 1) {
			ops[nops - 1].len += len;
			continue;
		}
		ops[nops++] = (struct io_op){ .fd = c->b->fd,
					      .buf = buf + i * c->cs,
					      .len = len,
					      .off = rows[i].chunk_idx * c->cs,
					      .fault = "backing.read" };
	}
	r = uring_run(c->io, ops, (unsigned)nops);
	if (r) {
		log_error("cow: read chunk %llu for preservation: %s",
			  (unsigned long long)rows[0].chunk_idx, strerror(-r));
		goto out;
	}
	for (i = 0; i < k; i++) {
		unsigned char *p = buf + i * c->cs;

		rows[i].crc = crc32c(p, c->cs);
		if (!all_zero(p, c->cs)) {
			rows[i].data = p; /* written by the group commit */
			nz[nnz++] = i;
		} else {
			zeros += kept[i]; /* needs no slot */
		}
	}
	if (nnz) /* a batch of zero chunks needs no slot */
		r = cow_take_slots(c, rows, nz, nnz, kept, &spent);
	if (!r) {
		bool with_bits = bits->n && !bits->committed;

		r = store_commit(c->s, rows, k, bits->gen,
				 with_bits ? bits->words : NULL,
				 with_bits ? bits->n : 0);
		if (!r)
			bits->committed = true;
	}
	if (r) {
		log_error("cow: preserve %zu chunks from %llu: %s", k,
			  (unsigned long long)rows[0].chunk_idx, strerror(-r));
		for (i = 0; i < k; i++)
			if (rows[i].data_off >= 0)
				store_slot_free(c->s, rows[i].data_off);
		if (r != -ENOSPC && r != -ENOMEM)
			r = -EIO;
		goto out;
	}
	for (i = 0; i < k; i++) {
		bit_set(c->preserved, rows[i].chunk_idx);
		fresh_set(c, rows[i].chunk_idx);
	}
	__atomic_fetch_add(&c->preserved_count, k, __ATOMIC_RELAXED);
	/* Only the promises read above: one made since is another's. */
	for (i = 0; i < k; i++)
		if (kept[i])
			chunkset_remove(&c->promised, rows[i].chunk_idx);
	spare += zeros;
out:
	if (r && spent)
		cow_promise_again(c, rows, kept, k, spent);
	for (i = 0; r && i < k; i++)
		if (kept[i]) { /* see cow_quiesce */
			__atomic_store_n(&c->stranded, true, __ATOMIC_RELAXED);
			break;
		}
	if (spare)
		store_slot_unreserve(c->s, spare);
	stripes_unlock(c, &set);
	if (!room)
		scratch_put(SCRATCH_CHUNKS, buf);
	return r;
}

/* Preserves every chunk of [off, off+len) a snapshot still needs,
 * recording p's bits with the first commit; caller holds instant shared. */
static int cow_preserve_range(struct cow *c, uint64_t off, uint64_t len,
			      struct cbt_pending *p)
{
	uint64_t chunks[COW_BATCH_CHUNKS];
	uint64_t i, last = (off + len - 1) / c->cs;
	size_t n = 0;
	int r;

	if (!c->newest)
		return 0;
	for (i = off / c->cs; i <= last; i++) {
		if (fresh_test(c, i))
			continue;
		chunks[n++] = i;
		if (n == COW_BATCH_CHUNKS) {
			r = cow_preserve(c, chunks, n, p, NULL);
			if (r)
				return r;
			n = 0;
		}
	}
	return n ? cow_preserve(c, chunks, n, p, NULL) : 0;
}

/*
 * The same for a discard or a zeroing of [off, off+len), but for the
 * chunks that lie wholly in holes of the backing (SEEK_DATA): a snapshot
 * that reads such a chunk live reads zeros, before and after, so it needs
 * no copy (a whole-device discard of a sparse image preserves nothing).
 * Where the backing cannot say (a block device), all of it is data.  A
 * writer that puts data into such a chunk meanwhile preserves it first
 * (it is not fresh), and finds zeros.
 */
static int cow_preserve_data(struct cow *c, uint64_t off, uint64_t len,
			     struct cbt_pending *p)
{
	uint64_t end = off + len, pos = off;
	int r = 0;

	if (!c->newest)
		return 0;
	while (pos < end && !r) {
		off_t d = lseek(c->b->fd, (off_t)pos, SEEK_DATA), h;

		if (d < 0 && errno == ENXIO)
			break; /* a hole to the end */
		if (d < 0)
			return cow_preserve_range(c, pos, end - pos, p);
		if ((uint64_t)d >= end)
			break;
		h = lseek(c->b->fd, d, SEEK_HOLE);
		if (h < 0 || (uint64_t)h > end)
			h = (off_t)end;
		r = cow_preserve_range(c, (uint64_t)d, (uint64_t)(h - d), p);
		pos = (uint64_t)h;
	}
	return r;
}

/*
 * Does what must be durable before a change of [off, off+len) may reach
 * the backing: with preserve, the preservation of every chunk a snapshot
 * still needs (after any queued write to them), and the changed-block
 * bits, in one commit where both are needed.  Caller holds instant
 * shared.
 */
int cow_prepare_change(struct cow *c, uint64_t off, uint64_t len,
		       enum prepare how)
{
	struct cbt_pending p;
	int r;

	/* After the queued writes to these chunks, never before them. */
	if (how != PREPARE_BITS && behind_maybe_queued(c->behind, off, len))
		behind_wait(c->behind);
	r = cbt_collect(c->cbt, off, len, &p);
	if (r)
		return r;
	if (how == PREPARE_WRITE)
		r = cow_preserve_range(c, off, len, &p);
	else if (how == PREPARE_DISCARD)
		r = cow_preserve_data(c, off, len, &p);
	if (!r && p.n && !p.committed)
		r = store_commit(c->s, NULL, 0, p.gen, p.words, p.n);
	if (!r)
		cbt_apply(c->cbt, &p);
	cbt_pending_free(&p);
	return r;
}

/*
 * Gives back the promises still held at an instant (cow_quiesce): nothing
 * is queued and no change runs, so none belongs to a write any more; a
 * preservation that failed kept them for writes that were all dropped.
 */
static void cow_drop_stranded(struct cow *c)
{
	uint64_t n = 0;

	if (!__atomic_exchange_n(&c->stranded, false, __ATOMIC_RELAXED))
		return;
	n = chunkset_clear(&c->promised);
	if (n) {
		store_slot_unreserve(c->s, n);
		log_info(
			"cow: %llu slots promised to dropped writes given back",
			(unsigned long long)n);
	}
}

/*
 * Calls make_room for a shortage found by an attempt that began at room
 * epoch seen, unless room was made since: changes that find the store
 * full at once have one snapshot dropped, not one each.  0: try again.
 */
static int cow_make_room(struct cow *c, uint64_t seen)
{
	int r = 0;

	pthread_mutex_lock(&c->room_lock);
	if (c->room_epoch == seen) {
		r = c->make_room(c->make_room_arg);
		if (!r)
			__atomic_store_n(&c->room_epoch, seen + 1,
					 __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&c->room_lock);
	return r;
}

/*
 * Reloads the fresh bits for the newest snapshot from the store (which
 * chunks have a copy at or after it); instant held exclusive.  On failure
 * the bits are unknown, and must not be trusted: a chunk whose copy they
 * do not show would be preserved again, with bytes from after the
 * snapshot that copy serves.  So every change first tries the reload
 * again (cow_begin_change) and fails with EIO while it fails.
 */
static int cow_reload_fresh(struct cow *c)
{
	int r;

	fresh_reset(c);
	r = store_for_each_chunk(c->s, load_chunk, c);
	__atomic_store_n(&c->fresh_unknown, r != 0, __ATOMIC_RELEASE);
	if (r)
		log_error("cow: cannot reload which chunks are preserved: %s "
			  "(changes fail until a reload works)",
			  strerror(-r));
	return r;
}

/* Before a change: 0 when the fresh bits are known, or made known now
 * (instant taken exclusive for the reload), else -EIO.  No lock held. */
static int cow_fresh_known(struct cow *c)
{
	int r = 0;

	if (!__atomic_load_n(&c->fresh_unknown, __ATOMIC_ACQUIRE))
		return 0;
	pthread_rwlock_wrlock(&c->instant);
	behind_wait(c->behind);
	if (c->fresh_unknown)
		r = cow_reload_fresh(c);
	pthread_rwlock_unlock(&c->instant);
	return r ? -EIO : 0;
}

/*
 * Takes instant shared and prepares a change of [off, off+len); a write
 * (buf given) may be queued behind instead (*queued set), and is then
 * done.  When the store is full and on_full=drop-oldest, lets go of the
 * lock, has a snapshot dropped (unless another change did since this
 * attempt began) and tries again.  Returns with instant held, 0 or
 * -errno.
 */
static int cow_begin_change(struct cow *c, uint64_t off, uint64_t len,
			    const void *buf, bool *queued)
{
	int r;

	for (;;) {
		/* before the attempt: room made after it is seen here */
		uint64_t seen =
			__atomic_load_n(&c->room_epoch, __ATOMIC_ACQUIRE);

		if (cow_fresh_known(c)) {
			pthread_rwlock_rdlock(&c->instant);
			return -EIO;
		}
		pthread_rwlock_rdlock(&c->instant);
		r = buf ? cow_write_behind(c, buf, (size_t)len, off)
			: WRITE_SYNC;
		if (!r) {
			*queued = true;
			return 0;
		}
		if (r > 0)
			r = cow_prepare_change(c, off, len,
					       r == WRITE_DIRECT ? PREPARE_BITS
					       : buf		 ? PREPARE_WRITE
						     : PREPARE_DISCARD);
		if (r != -ENOSPC || !c->make_room)
			return r;
		pthread_rwlock_unlock(&c->instant);
		if (cow_make_room(c, seen)) {
			pthread_rwlock_rdlock(&c->instant);
			return -ENOSPC;
		}
	}
}

ssize_t cow_read_live(struct cow *c, void *buf, size_t len, uint64_t off)
{
	struct io_op op = {
		.fd = c->b->fd, .buf = buf, .off = off, .fault = "backing.read"
	};
	int r;

	op.len = clip(c, len, off);
	if (!op.len)
		return 0;
	/* A queued write to these chunks has returned: it must be seen. */
	if (behind_maybe_queued(c->behind, off, op.len))
		behind_wait(c->behind);
	r = uring_run(c->io, &op, 1);
	return r ? r : (ssize_t)op.len;
}

ssize_t cow_write_live(struct cow *c, const void *buf, size_t len, uint64_t off)
{
	struct io_op op = { .fd = c->b->fd,
			    .write = true,
			    .buf = (void *)buf,
			    .off = off,
			    .fault = "backing.write" };
	bool queued = false;
	int r;

	if (len && off >= c->size)
		return -ENOSPC;
	op.len = clip(c, len, off);
	if (!op.len)
		return 0;
	r = cow_begin_change(c, off, op.len, buf, &queued);
	if (!r && !queued)
		r = uring_run(c->io, &op, 1);
	pthread_rwlock_unlock(&c->instant);
	if (r)
		log_error("cow: write %zu bytes at %llu: %s", op.len,
			  (unsigned long long)off, strerror(-r));
	return r ? r : (ssize_t)op.len;
}

/* Writes zeros over [off, off+len) of the backing. */
static int write_zeros(struct cow *c, uint64_t off, uint64_t len)
{
	size_t piece = len < ZERO_WRITE_LEN ? (size_t)len : ZERO_WRITE_LEN;
	void *z = calloc(1, piece);
	int r = 0;

	if (!z)
		return -ENOMEM;
	while (len && !r) {
		struct io_op op = { .fd = c->b->fd,
				    .write = true,
				    .buf = z,
				    .len = len < piece ? (size_t)len : piece,
				    .off = off,
				    .fault = "backing.write" };

		r = uring_run(c->io, &op, 1);
		off += op.len;
		len -= op.len;
	}
	free(z);
	return r;
}

/* Punches or zeroes one piece of a discard, instant held shared. */
static int discard_piece(struct cow *c, uint64_t off, uint64_t len, int mode)
{
	int r;

	r = cow_begin_change(c, off, len, NULL, NULL);
	if (!r && (r = FAULT("backing.discard")) > 0)
		r = -EIO;
	if (!r && fallocate(c->b->fd, mode, (off_t)off, (off_t)len) < 0) {
		r = -errno;
		/* Reads of the range must return zeros either way. */
		if (r == -EOPNOTSUPP || r == -EINVAL)
			r = write_zeros(c, off, len);
	} else if (!r) {
		iolog_zero(IOLOG_BACKING, off, len);
	}
	pthread_rwlock_unlock(&c->instant);
	return r;
}

/*
 * A discard goes in pieces of DISCARD_PIECE, in order, taking instant for
 * one piece at a time: a whole-device discard with a snapshot preserves
 * every chunk first, and held as one it kept `snapfsctl create` (and,
 * with writer preference, every writer behind it) waiting for all of it
 * (205 s for a 64 GiB live.img).  A snapshot taken meanwhile holds a
 * prefix of the discard, as it would of a writer's writes; the request
 * has not returned, so any prefix keeps the contract's instant.
 *
 * So a discard that fails part-way (a preservation that finds no room or
 * an I/O error, or the punch itself) returns its error with the pieces
 * before the failing one already punched or zeroed, and they stay so:
 * live.img holds a prefix of the discard, as after a write that failed
 * half done.  Every piece was preserved before it was touched, so every
 * snapshot stays whole.  The failing piece itself may be changed in
 * part too: fallocate can fail after it punched some of the range, and
 * write_zeros after some of its writes.
 */
int cow_discard(struct cow *c, uint64_t off, uint64_t len, bool zero)
{
	int mode = FALLOC_FL_KEEP_SIZE |
		   (zero ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE);
	int r = 0;

	len = clip(c, len, off);
	while (len && !r) {
		uint64_t piece = DISCARD_PIECE - off % DISCARD_PIECE;

		if (piece > len)
			piece = len;
		r = discard_piece(c, off, piece, mode);
		off += piece;
		len -= piece;
	}
	return r;
}

int cow_flush(struct cow *c)
{
	int r, e;

	behind_wait(c->behind);
	r = backing_sync(c->b);
	e = behind_error_untold(c->behind);
	return r ? r : e;
}

uint64_t cow_error_mark(struct cow *c)
{
	return behind_error_mark(c->behind);
}

int cow_fsync(struct cow *c, uint64_t *seen)
{
	int r, e;

	behind_wait(c->behind);
	r = backing_sync(c->b);
	e = behind_error_fsync(c->behind, seen);
	return r ? r : e;
}

int cow_close_error(struct cow *c, const uint64_t *seen, bool wrote)
{
	if (wrote)
		behind_wait(c->behind);
	return behind_error_since(c->behind, *seen);
}

int cow_write_error(struct cow *c)
{
	return behind_error(c->behind, &c->instant_seen);
}

void cow_quiesce(struct cow *c)
{
	pthread_rwlock_wrlock(&c->instant);
	behind_wait(c->behind);
	cow_drop_stranded(c);
}

void cow_resume(struct cow *c)
{
	pthread_rwlock_unlock(&c->instant);
}

int cow_set_newest(struct cow *c, int64_t newest_seq)
{
	int64_t old = c->newest;

	set_newest(c, newest_seq);
	if (newest_seq > old) {
		/* nothing is fresh for a new snapshot: the bits are known */
		fresh_reset(c);
		__atomic_store_n(&c->fresh_unknown, false, __ATOMIC_RELEASE);
		return 0;
	}
	if (newest_seq == old || !newest_seq)
		return 0;
	return cow_reload_fresh(c);
}

uint64_t cow_preserved_count(struct cow *c)
{
	return __atomic_load_n(&c->preserved_count, __ATOMIC_RELAXED);
}

void cow_set_make_room(struct cow *c, int (*make_room)(void *arg), void *arg)
{
	c->make_room = make_room;
	c->make_room_arg = arg;
}
