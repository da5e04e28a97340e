// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * revert.c - live.img made snapshot S again.
 *
 * What to copy is known without reading the image: S reads each chunk from
 * its oldest copy made at or after S, or from the live chunk when there
 * is none (store_chunks.c), so live.img differs from S only in chunks
 * that have such a copy (store_copied_since), plus, after a resize, the
 * range S never had.  Those chunks are read as S reads them and written
 * to live.img through the chain, like any write (or punched, where S
 * reads zeros, so that a sparse image stays sparse): the newest snapshot gets
 * the overwritten bytes first, so every snapshot keeps its own, and the
 * open generation marks the blocks changed.  The cost grows with what
 * changed since S, not with the image (a read and a write per changed
 * chunk, merged where they touch).  The range S never had (the image grew
 * after it) is zeroed: live.img keeps its size, since a smaller image
 * would drop what later snapshots hold there, and shrinking is not done.
 *
 * Crashes: the store's meta value `revert_to` ("SEQ UUID") is committed
 * before the first byte moves and cleared once every byte is written and
 * synced; a mount that finds it set copies the same chunks again before
 * it serves anything (revert_resume).  Copying again is harmless: S's
 * bytes do not change, the chunks already copied are preserved for the
 * newest snapshot already, and the chunks the first run made copies of
 * (for the newest snapshot) have copies after S anyway.  S cannot be
 * deleted meanwhile (snapshots_pin), so the mount finds it; and no file
 * of live.img is open (fs_live_claim), so nobody writes in between or
 * sees a half-reverted image.  A revert that fails while mounted (an I/O
 * error, a full store with on_full=fail-writes) clears the record
 * instead: live.img is open to writers again, and a later mount must not
 * copy S over what they write; the error says that it is part reverted.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapfs/cow.h"
#include "snapfs/daemon.h"
#include "snapfs/fault.h"
#include "snapfs/fs.h"
#include "snapfs/iolog.h"
#include "snapfs/log.h"
#include "snapfs/revert.h"
#include "snapfs/snapshot.h"
#include "snapfs/store.h"

#define REVERT_IO (1u << 20) /* bytes a read and a write move at most */
#define JOURNAL "revert_to"

static bool all_zero(const void *buf, size_t len)
{
	const uint64_t *w = buf;

	for (size_t i = 0; i < len / sizeof(*w); i++)
		if (w[i])
			return false;
	return true;
}

/* Copies snapshot snap's bytes over live.img where they differ; *copied
 * gets the bytes copied.  0 or -errno. */
static int copy_back(struct daemon *d, const struct snapshot *snap,
		     revert_progress_fn *fn, void *arg, uint64_t *copied)
{
	uint64_t cs = store_info(d->store)->chunk_size, total = 0, done = 0;
	uint64_t size = d->backing.size, last_told = 0;
	struct chunk_extent *ext = NULL;
	void *buf = NULL;
	size_t n = 0;
	int r;

	*copied = 0;
	/* queued writes have their copies recorded first */
	r = cow_flush(d->cow);
	if (!r)
		r = store_copied_since(d->store, snap->seq, &ext, &n);
	if (!r && posix_memalign(&buf, 4096, REVERT_IO))
		r = -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		uint64_t a = ext[i].first * cs,
			 b = (ext[i].first + ext[i].count) * cs;

		if (b > snap->size)
			b = snap->size;
		total += b > a ? b - a : 0;
	}
	for (size_t i = 0; i < n && !r; i++) {
		uint64_t off = ext[i].first * cs;
		uint64_t end = (ext[i].first + ext[i].count) * cs;

		if (end > snap->size)
			end = snap->size;
		while (off < end && !r) {
			size_t len = end - off < REVERT_IO ? (size_t)(end - off)
							   : REVERT_IO;
			ssize_t got;

			if ((r = FAULT("revert.copy")) > 0)
				r = -EIO;
			if (r)
				break;
			got = cow_read_snapshot(d->cow, snap->seq, buf, len,
						off);
			if (got >= 0 && (size_t)got != len)
				got = -EIO;
			/* holes where the snapshot reads zeros: a sparse
			 * image stays sparse */
			if (got >= 0 && all_zero(buf, len))
				got = cow_discard(d->cow, off, len, false)
					      ?: got;
			else if (got >= 0)
				got = cow_write_live(d->cow, buf, len, off);
			if (got >= 0 && (size_t)got != len)
				got = -EIO;
			if (got < 0)
				r = (int)got;
			off += len;
			done += len;
			if (fn && (done - last_told >= 64 * REVERT_IO ||
				   done == total)) {
				fn(arg, done, total);
				last_told = done;
			}
		}
	}
	/* the range the snapshot never had, when the image grew after it */
	if (!r && snap->size < size)
		r = cow_discard(d->cow, snap->size, size - snap->size, true);
	if (!r)
		r = cow_flush(d->cow);
	free(buf);
	free(ext);
	*copied = done;
	return r;
}

/* Clears the record of a revert; logged when it cannot be. */
static void journal_clear(struct daemon *d)
{
	int r = store_set_meta(d->store, JOURNAL, "");

	if (r)
		log_error("revert: cannot clear the store's record of the "
			  "revert: %s",
			  strerror(-r));
}

int revert_run(struct daemon *d, const char *uuid, revert_progress_fn *fn,
	       void *arg, char *msg, size_t msg_len)
{
	struct snapshot snap;
	uint64_t copied;
	char rec[64], mark[48];
	int r;

	if (d->opts.ro) {
		snprintf(msg, msg_len, "live.img is mounted read-only");
		return -EROFS;
	}
	r = snapshots_pin(d->snaps, uuid, &snap);
	if (r) {
		snprintf(msg, msg_len, "no snapshot %s", uuid);
		return r;
	}
	r = d->fs ? fs_live_claim(d->fs) : 0;
	if (r) {
		snprintf(msg, msg_len,
			 "live.img is open (by a process or a loop device): "
			 "close it first");
		snapshots_unpin(d->snaps, snap.seq);
		return r;
	}
	snprintf(rec, sizeof(rec), "%" PRId64 " %s", snap.seq, snap.uuid);
	r = store_set_meta(d->store, JOURNAL, rec);
	if (r) {
		snprintf(msg, msg_len, "cannot record the revert: %s",
			 strerror(-r));
		goto out;
	}
	/* for the power-loss replay: from here on live.img may be S's */
	snprintf(mark, sizeof(mark), "revert %s", snap.uuid);
	iolog_mark(mark);
	log_info("revert: live.img to snapshot %s", snap.uuid);
	r = copy_back(d, &snap, fn, arg, &copied);
	journal_clear(d);
	if (r) {
		snprintf(msg, msg_len,
			 "revert to %s stopped after %" PRIu64
			 " bytes: %s; live.img is part reverted",
			 snap.uuid, copied, strerror(-r));
		store_add_event(d->store, "revert", "%s", msg);
		goto out;
	}
	snprintf(mark, sizeof(mark), "reverted %s", snap.uuid);
	iolog_mark(mark);
	store_add_event(d->store, "revert",
			"live.img reverted to snapshot %s: %" PRIu64
			" bytes copied",
			snap.uuid, copied);
out:
	if (d->fs) {
		fs_live_changed(d->fs);
		fs_live_unclaim(d->fs);
	}
	snapshots_unpin(d->snaps, snap.seq);
	return r;
}

int revert_resume(struct daemon *d)
{
	char rec[64] = "", uuid[37] = "";
	struct snapshot snap;
	uint64_t copied;
	long long seq;
	int r;

	r = store_get_meta(d->store, JOURNAL, rec, sizeof(rec));
	if (r == -ENOENT || (!r && !rec[0]))
		return 0;
	if (r)
		return r;
	if (sscanf(rec, "%lld %36s", &seq, uuid) != 2 ||
	    snapshots_pin(d->snaps, uuid, &snap)) {
		/* cannot happen: the snapshot was pinned when recorded */
		store_add_event(d->store, "revert",
				"an interrupted revert to '%s' cannot be "
				"finished: no such snapshot; live.img may be "
				"part reverted",
				uuid[0] ? uuid : rec);
		journal_clear(d);
		return -ENOENT;
	}
	log_info("revert: finishing the revert to %s an earlier run began",
		 uuid);
	r = copy_back(d, &snap, NULL, NULL, &copied);
	if (r) {
		store_add_event(d->store, "revert",
				"an interrupted revert to %s stopped again "
				"after %" PRIu64 " bytes: %s; live.img is part "
				"reverted",
				uuid, copied, strerror(-r));
	} else {
		char mark[48];

		snprintf(mark, sizeof(mark), "reverted %s", uuid);
		iolog_mark(mark);
		store_add_event(d->store, "revert",
				"live.img reverted to snapshot %s at mount "
				"(the run that began it stopped): %" PRIu64
				" bytes copied",
				uuid, copied);
	}
	journal_clear(d);
	snapshots_unpin(d->snaps, snap.seq);
	return r;
}
