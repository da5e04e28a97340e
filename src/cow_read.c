// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * cow_read.c - the copy-on-write chain's snapshot side: reads of a
 * snapshot (chunk by chunk, the oldest copy at or after it, verified
 * against its checksum, or the live chunk) and its SEEK_DATA/SEEK_HOLE
 * layout.  A read or a seek holds its chunks' stripes shared while it
 * decides between a copy and the live chunk and reads or asks the
 * backing (cow.c's opening note has the locks).
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "snapfs/backing.h"
#include "snapfs/crc32c.h"
#include "snapfs/log.h"
#include "snapfs/scratch.h"
#include "snapfs/uring.h"
#include "cow_int.h"

/* Verifies one preserved copy, read whole into chunk, against its
 * checksum; -EIO (logged, and an event) when it fails. */
static int check_copy(struct cow *c, const struct chunk_row *row,
		      const unsigned char *chunk)
{
	if (crc32c(chunk, c->cs) == row->crc)
		return 0;
	log_error("cow: checksum mismatch in chunk %llu (copy of snapshot "
		  "seq %lld at data offset %lld)",
		  (unsigned long long)row->chunk_idx, (long long)row->seq,
		  (long long)row->data_off);
	store_add_event(c->s, "checksum",
			"preserved chunk %llu at data offset %lld failed its "
			"checksum",
			(unsigned long long)row->chunk_idx,
			(long long)row->data_off);
	return -EIO;
}

/*
 * One window of a snapshot read: chunks first..last, all locked.  Runs of
 * chunks read from the backing become one read; a preserved copy lands
 * straight in buf when the request covers its whole chunk, else (the
 * window's first and last chunk only) in scratch, and is checked before
 * its bytes are used.
 */
static int read_snapshot_window(struct cow *c, int64_t seq, unsigned char *buf,
				uint64_t off, uint64_t end, uint64_t first,
				uint64_t last)
{
	struct io_op ops[COW_BATCH_CHUNKS];
	struct chunk_row found[COW_BATCH_CHUNKS];
	struct chunk_row rows[COW_BATCH_CHUNKS];
	unsigned char *dst[COW_BATCH_CHUNKS];
	unsigned char *tmp = NULL;
	size_t nops = 0, ncopies = 0, ntmp = 0, i;
	bool any = false;
	uint64_t ch;
	int r = 0;

	for (ch = first; ch <= last && !any; ch++)
		any = bit_test(c->preserved, ch);
	if (any) {
		r = store_find_copies(c->s, first, last, seq, found);
		if (r)
			return r;
	}
	for (ch = first; ch <= last; ch++) {
		const struct chunk_row *row = &found[ch - first];
		uint64_t cstart = ch * c->cs;
		uint64_t a = cstart > off ? cstart : off;
		uint64_t e = cstart + c->cs < end ? cstart + c->cs : end;
		struct io_op *prev = nops ? &ops[nops - 1] : NULL;

		if (!any || row->seq < 0) {
			/* from the backing, one read per run */
			if (prev && prev->fd == c->b->fd &&
			    prev->off + prev->len == a) {
				prev->len += (size_t)(e - a);
				continue;
			}
			ops[nops++] = (struct io_op){ .fd = c->b->fd,
						      .buf = buf + (a - off),
						      .len = (size_t)(e - a),
						      .off = a,
						      .fault = "backing.read" };
			continue;
		}
		if (row->data_off < 0) {
			memset(buf + (a - off), 0, (size_t)(e - a));
			continue;
		}
		rows[ncopies] = *row;
		if (a == cstart && e - a == c->cs) {
			dst[ncopies] = buf + (a - off);
			/* copies in consecutive slots: one read */
			if (prev && prev->fd == store_data_fd(c->s) &&
			    (unsigned char *)prev->buf + prev->len ==
				    dst[ncopies] &&
			    prev->off + prev->len == (uint64_t)row->data_off) {
				prev->len += c->cs;
				ncopies++;
				continue;
			}
		} else {
			if (!tmp)
				tmp = scratch_get(SCRATCH_CHUNKS, 2 * c->cs);
			if (!tmp) {
				r = -ENOMEM;
				goto out;
			}
			dst[ncopies] = tmp + ntmp++ * c->cs;
		}
		ops[nops++] = (struct io_op){ .fd = store_data_fd(c->s),
					      .buf = dst[ncopies],
					      .len = c->cs,
					      .off = (uint64_t)row->data_off,
					      .fault = "data.read" };
		ncopies++;
	}
	r = uring_run(c->io, ops, (unsigned)nops);
	for (i = 0; i < ncopies && !r; i++) {
		uint64_t cstart = rows[i].chunk_idx * c->cs;
		uint64_t a = cstart > off ? cstart : off;
		uint64_t e = cstart + c->cs < end ? cstart + c->cs : end;

		r = check_copy(c, &rows[i], dst[i]);
		if (!r && dst[i] != buf + (a - off))
			memcpy(buf + (a - off), dst[i] + (a - cstart),
			       (size_t)(e - a));
	}
out:
	scratch_put(SCRATCH_CHUNKS, tmp);
	return r;
}

ssize_t cow_read_snapshot(struct cow *c, int64_t seq, void *buf, size_t len,
			  uint64_t off)
{
	uint64_t first, last, end;
	int r = 0;

	len = clip(c, len, off);
	if (!len)
		return 0;
	end = off + len;
	first = off / c->cs;
	last = (end - 1) / c->cs;
	while (first <= last && !r) {
		uint64_t wlast = last - first >= COW_BATCH_CHUNKS
					 ? first + COW_BATCH_CHUNKS - 1
					 : last;
		uint64_t chunks[COW_BATCH_CHUNKS];
		uint64_t woff = first * c->cs > off ? first * c->cs : off;
		uint64_t wend =
			(wlast + 1) * c->cs < end ? (wlast + 1) * c->cs : end;
		struct stripe_set set;

		for (uint64_t ch = first; ch <= wlast; ch++)
			chunks[ch - first] = ch;
		stripes_of(&set, chunks, (size_t)(wlast - first + 1));
		stripes_lock(c, &set, false);
		r = read_snapshot_window(c, seq,
					 (unsigned char *)buf + (woff - off),
					 woff, wend, first, wlast);
		stripes_unlock(c, &set);
		first = wlast + 1;
	}
	if (r) {
		log_error("cow: read snapshot seq %lld, %zu bytes at %llu: %s",
			  (long long)seq, len, (unsigned long long)off,
			  strerror(-r));
		return r == -ENOMEM ? r : -EIO;
	}
	return (ssize_t)len;
}

/* The first chunk at or after ch whose preserved bit is set, or nchunks. */
static uint64_t next_preserved(struct cow *c, uint64_t ch)
{
	while (ch < c->nchunks) {
		uint64_t w = __atomic_load_n(&c->preserved[ch / 64],
					     __ATOMIC_ACQUIRE) >>
			     (ch % 64);

		if (w)
			return ch + (uint64_t)__builtin_ctzll(w);
		ch = (ch / 64 + 1) * 64;
	}
	return c->nchunks;
}

/* lseek on the backing, with the end of the image for "no more data". */
static int64_t backing_seek(struct cow *c, uint64_t off, int whence)
{
	off_t r = lseek(c->b->fd, (off_t)off, whence);

	if (r < 0)
		return errno == ENXIO ? (int64_t)c->size : -errno;
	return r > (off_t)c->size ? (int64_t)c->size : (int64_t)r;
}

/*
 * The first chunk in [ch, limit) that the backing holds as data (some of
 * it allocated) when want_data, as a hole (none of it) otherwise; limit
 * when there is none, or -errno.
 */
static int64_t live_next(struct cow *c, uint64_t ch, uint64_t limit,
			 bool want_data)
{
	while (ch < limit) {
		int64_t d = backing_seek(c, ch * c->cs, SEEK_DATA), h;
		uint64_t dch;

		if (d < 0)
			return d;
		dch = (uint64_t)d < c->size ? (uint64_t)d / c->cs : c->nchunks;
		if (want_data)
			return (int64_t)(dch < limit ? dch : limit);
		if (dch > ch)
			return (int64_t)ch;
		h = backing_seek(c, (uint64_t)d, SEEK_HOLE);
		if (h < 0)
			return h;
		/* the chunks up to the one holding byte h-1 have data */
		ch = ((uint64_t)h + c->cs - 1) / c->cs;
		if (ch <= dch)
			ch = dch + 1;
	}
	return (int64_t)limit;
}

/*
 * The first chunk of first..last (their stripes held shared) that
 * snapshot seq sees as data (want_data) or as a hole; last + 1 when there
 * is none, or -errno.
 */
static int64_t window_next(struct cow *c, int64_t seq, uint64_t first,
			   uint64_t last, bool want_data)
{
	struct chunk_row rows[COW_BATCH_CHUNKS];
	int64_t live = -1; /* live_next from a chunk before, not yet passed */
	bool any = false;
	uint64_t ch;
	int r;

	for (ch = first; ch <= last && !any; ch++)
		any = bit_test(c->preserved, ch);
	if (any) {
		r = store_find_copies(c->s, first, last, seq, rows);
		if (r)
			return r;
	}
	for (ch = first; ch <= last; ch++) {
		if (any && rows[ch - first].seq >= 0) {
			/* a zero row was stored without data: a hole */
			if ((rows[ch - first].data_off >= 0) == want_data)
				return (int64_t)ch;
			continue;
		}
		if (live < (int64_t)ch) {
			live = live_next(c, ch, last + 1, want_data);
			if (live < 0)
				return live;
		}
		if (live == (int64_t)ch)
			return (int64_t)ch;
	}
	return (int64_t)last + 1;
}

/*
 * SEEK_DATA / SEEK_HOLE on snapshot seq, a chunk at a time: a chunk it
 * reads from a copy is data when the copy holds bytes and a hole when it
 * is a zero row (stored without data); a chunk it reads live is data when
 * the backing has allocated any of it.  So the layout stays what it was
 * when the snapshot was taken: a live chunk with data is preserved with
 * its bytes, a live hole as a zero row.  (Left: a live chunk whose
 * allocated bytes are all zeros is data until it is preserved, as a zero
 * row, and then a hole.)
 *
 * A chunk's look for a copy and the backing's answer for it are made
 * with its stripe held shared, so no preservation and change of it comes
 * between.  Across a run of chunks that no snapshot has copies of, the
 * backing is asked first and the preserved bits read after: a chunk
 * whose bit is still clear then was not changed before the answer.
 */
/* Chunks a seek looks at under one set of stripe locks: fewer than the 64
 * locks a thread may hold under ThreadSanitizer (a seek's window, unlike a
 * read's, is not bounded by the request's length). */
#define SEEK_WINDOW_CHUNKS 32

static int64_t snapshot_seek(struct cow *c, int64_t seq, uint64_t off,
			     int whence)
{
	bool want_data = whence == SEEK_DATA;
	uint64_t ch = off / c->cs, cstart;
	int64_t found = -1;

	while (ch < c->nchunks) {
		uint64_t last, np;

		if (!bit_test(c->preserved, ch)) {
			found = live_next(c, ch, next_preserved(c, ch),
					  want_data);
			if (found < 0)
				return found;
			np = next_preserved(c, ch);
			if ((uint64_t)found < np)
				break;
			ch = np;
			continue;
		}
		last = c->nchunks - ch > SEEK_WINDOW_CHUNKS
			       ? ch + SEEK_WINDOW_CHUNKS - 1
			       : c->nchunks - 1;
		{
			uint64_t chunks[SEEK_WINDOW_CHUNKS];
			struct stripe_set set;

			for (uint64_t k = ch; k <= last; k++)
				chunks[k - ch] = k;
			stripes_of(&set, chunks, (size_t)(last - ch + 1));
			stripes_lock(c, &set, false);
			found = window_next(c, seq, ch, last, want_data);
			stripes_unlock(c, &set);
		}
		if (found < 0)
			return found;
		if ((uint64_t)found <= last)
			break;
		ch = last + 1;
	}
	if (ch >= c->nchunks)
		return want_data ? -ENXIO : (int64_t)c->size;
	cstart = (uint64_t)found * c->cs;
	return (int64_t)(cstart > off ? cstart : off);
}

int64_t cow_seek(struct cow *c, int64_t seq, uint64_t off, int whence)
{
	int64_t r;

	if (off >= c->size)
		return -ENXIO;
	if (seq)
		return snapshot_seek(c, seq, off, whence);
	if (!behind_idle(c->behind)) /* queued data fills holes */
		behind_wait(c->behind);
	r = backing_seek(c, off, whence);
	if (whence == SEEK_DATA && r == (int64_t)c->size)
		return -ENXIO;
	return r;
}
