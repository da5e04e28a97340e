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
 * after it) is punched (zeros): live.img keeps its size, since a smaller image
 * would drop what later snapshots hold there, and shrinking is not done.
 *
 * Crashes: the store's meta value `revert_to` ("SEQ UUID") is committed
 * before the first byte moves and cleared once every byte is written and
 * synced; a mount that finds it set copies the same chunks again
 * (revert_pending, revert_resume_start): it mounts first, so that a long
 * finish never holds a boot's mount past its timeout, and keeps live.img
 * closed and every change refused until done.  Copying again is harmless: S's
 * bytes do not change, the chunks already copied are preserved for the
 * newest snapshot already, and the chunks the first run made copies of
 * (for the newest snapshot) have copies after S anyway.  S cannot be
 * deleted meanwhile (snapshots_pin), so the mount finds it; and no file
 * of live.img is open (fs_live_claim), so nobody writes in between or
 * sees a half-reverted image.  A revert that fails while mounted (an I/O
 * error, a full store with on_full=fail-writes) clears the record
 * instead: live.img is open to writers again, and a later mount must not
 * copy S over what they write; the error says that it is part reverted.
 * One whose record cannot be cleared keeps live.img closed until the
 * daemon restarts and finishes it.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
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
#include "zero.h"

#define REVERT_IO (1u << 20) /* bytes a read and a write move at most */
#define JOURNAL "revert_to"

/*
 * Puts snapshot bytes buf, read for [off, off+len), into live.img: runs
 * of chunks the snapshot reads as zeros are punched (a sparse image stays
 * sparse), the others written.  0 or -errno.
 */
static int put_back(struct daemon *d, const unsigned char *buf, size_t len,
		    uint64_t off, uint64_t cs)
{
	size_t at = 0;

	while (at < len) {
		size_t end = at, piece;
		bool zero = all_zero(buf + at, len - at < cs ? len - at : cs);
		ssize_t w;

		do { /* the run of chunks that are all zero, or all not */
			piece = len - end < cs ? len - end : (size_t)cs;
			end += piece;
		} while (end < len &&
			 all_zero(buf + end, len - end < cs ? len - end : cs) ==
				 zero);
		if (zero) {
			w = cow_discard(d->cow, off + at, end - at, false);
			if (!w)
				w = (ssize_t)(end - at);
		} else {
			w = cow_write_live(d->cow, buf + at, end - at,
					   off + at);
		}
		if (w >= 0 && (size_t)w != end - at)
			w = -EIO;
		if (w < 0)
			return (int)w;
		at = end;
	}
	return 0;
}

/* Copies snapshot snap's bytes over live.img where they differ; *copied
 * gets the bytes copied.  Queued writes must be written already (their
 * copies recorded).  0 or -errno. */
static int copy_back(struct daemon *d, const struct snapshot *snap,
		     revert_progress_fn *fn, void *arg, const bool *stop,
		     uint64_t *copied)
{
	uint64_t cs = store_info(d->store)->chunk_size, total = 0, done = 0;
	uint64_t size = d->backing.size, last_told = 0;
	struct chunk_extent *ext = NULL;
	void *buf = NULL;
	size_t n = 0;
	int r;

	*copied = 0;
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
			if (!r && stop &&
			    __atomic_load_n(stop, __ATOMIC_RELAXED))
				r = -EINTR; /* the daemon stops */
			if (r)
				break;
			got = cow_read_snapshot(d->cow, snap->seq, buf, len,
						off);
			if (got >= 0 && (size_t)got != len)
				got = -EIO;
			r = got < 0 ? (int)got : put_back(d, buf, len, off, cs);
			if (r)
				break;
			off += len;
			done += len;
			if (fn && (done - last_told >= 64 * REVERT_IO ||
				   done == total)) {
				fn(arg, done, total);
				last_told = done;
			}
		}
	}
	/* the range the snapshot never had, when the image grew after it:
	 * punched, so it takes no space */
	if (!r && snap->size < size)
		r = cow_discard(d->cow, snap->size, size - snap->size, false);
	if (!r)
		r = cow_flush(d->cow);
	free(buf);
	free(ext);
	*copied = done;
	return r;
}

/* Clears the record of a revert.  0 or -errno (logged). */
static int journal_clear(struct daemon *d)
{
	int r = store_set_meta(d->store, JOURNAL, "");

	if (r)
		log_error("revert: cannot clear the store's record of the "
			  "revert: %s",
			  strerror(-r));
	return r;
}

int revert_run(struct daemon *d, const char *uuid, revert_progress_fn *fn,
	       void *arg, char *msg, size_t msg_len)
{
	struct snapshot snap;
	uint64_t copied = 0;
	char rec[64], mark[48];
	bool keep_claim = false;
	int r, e;

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
	/* What writers queued before is written first, so that its copies
	 * are in the index; an error of theirs is theirs: nothing moves. */
	r = cow_flush(d->cow);
	if (r) {
		snprintf(msg, msg_len,
			 "a write queued before the revert failed (%s; see "
			 "the log): nothing reverted",
			 strerror(-r));
		goto out;
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
	r = copy_back(d, &snap, fn, arg, NULL, &copied);
	e = journal_clear(d);
	if (e) {
		/* Left recorded, the next mount copies the snapshot again,
		 * over whatever was written meanwhile: nothing may be. */
		keep_claim = true;
		snprintf(msg, msg_len,
			 "revert to %s: the store cannot clear its record of "
			 "it (%s): live.img stays closed until snapfs "
			 "restarts, which finishes the revert",
			 snap.uuid, strerror(-e));
		r = r ? r : e;
	} else if (r) {
		snprintf(msg, msg_len,
			 "revert to %s stopped after %" PRIu64
			 " bytes: %s; live.img is part reverted",
			 snap.uuid, copied, strerror(-r));
	}
	if (r) {
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
		if (!keep_claim)
			fs_live_unclaim(d->fs);
	}
	snapshots_unpin(d->snaps, snap.seq);
	return r;
}

/* A revert a crash interrupted, being finished by this mount. */
struct revert_resume {
	pthread_t thread;
	struct snapshot snap;
	bool stop; /* the daemon stops: leave the rest to the next mount */
	bool started; /* the thread runs */
	bool done;
	uint64_t copied, total; /* progress, for status */
};

int revert_pending(struct daemon *d, char *err, size_t err_len)
{
	char rec[64] = "", uuid[37] = "";
	struct snapshot snap;
	long long seq;
	int r;

	r = store_get_meta(d->store, JOURNAL, rec, sizeof(rec));
	if (r == -ENOENT || (!r && !rec[0]))
		return 0;
	if (r) {
		snprintf(err, err_len,
			 "cannot read the store's record of a revert: %s",
			 strerror(-r));
		return r;
	}
	if (sscanf(rec, "%lld %36s", &seq, uuid) != 2 ||
	    snapshots_pin(d->snaps, uuid, &snap)) {
		/* cannot happen: the snapshot was pinned when recorded */
		store_add_event(d->store, "revert",
				"an interrupted revert to '%s' cannot be "
				"finished: no such snapshot; live.img may be "
				"part reverted",
				uuid[0] ? uuid : rec);
		r = journal_clear(d);
		if (r)
			snprintf(err, err_len,
				 "cannot clear the store's record of a "
				 "revert: %s",
				 strerror(-r));
		return r;
	}
	if (d->opts.ro) {
		/* live.img is part reverted: not to be served as it is */
		snprintf(err, err_len,
			 "a revert to %s was interrupted: mount read-write "
			 "once to finish it",
			 uuid);
		snapshots_unpin(d->snaps, snap.seq);
		return -EROFS;
	}
	d->resume = calloc(1, sizeof(*d->resume));
	if (!d->resume) {
		snapshots_unpin(d->snaps, snap.seq);
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	d->resume->snap = snap;
	return 1;
}

static void resume_progress(void *arg, uint64_t done, uint64_t total)
{
	struct revert_resume *rr = arg;

	__atomic_store_n(&rr->total, total, __ATOMIC_RELAXED);
	__atomic_store_n(&rr->copied, done, __ATOMIC_RELAXED);
}

static void *resume_thread(void *arg)
{
	struct daemon *d = arg;
	struct revert_resume *rr = d->resume;
	const char *uuid = rr->snap.uuid;
	uint64_t copied = 0;
	int r;

	log_info("revert: finishing the revert to %s an earlier run began",
		 uuid);
	r = cow_flush(d->cow);
	if (!r)
		r = copy_back(d, &rr->snap, resume_progress, rr, &rr->stop,
			      &copied);
	if (r == -EINTR) {
		/* stopped with the daemon: recorded still, for the next */
		log_info("revert: stopped after %" PRIu64 " bytes; the next "
			 "mount goes on",
			 copied);
		snapshots_unpin(d->snaps, rr->snap.seq);
		__atomic_store_n(&rr->done, true, __ATOMIC_RELEASE);
		return NULL;
	}
	if (r) {
		store_add_event(d->store, "revert",
				"an interrupted revert to %s stopped again "
				"after %" PRIu64 " bytes: %s; live.img is part "
				"reverted (run the revert again)",
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
	snapshots_unpin(d->snaps, rr->snap.seq);
	fs_live_changed(d->fs);
	/* Left recorded, the next mount would copy the snapshot again over
	 * what is written meanwhile: live.img stays closed then. */
	if (!journal_clear(d))
		fs_live_unclaim(d->fs);
	else
		log_error("revert: live.img stays closed until snapfs "
			  "restarts, which finishes the revert");
	__atomic_store_n(&rr->done, true, __ATOMIC_RELEASE);
	return NULL;
}

int revert_resume_start(struct daemon *d)
{
	int r = fs_live_claim(d->fs);

	if (!r)
		r = -pthread_create(&d->resume->thread, NULL, resume_thread, d);
	d->resume->started = !r;
	if (r) {
		snapshots_unpin(d->snaps, d->resume->snap.seq);
		free(d->resume);
		d->resume = NULL;
	}
	return r;
}

bool revert_resuming(struct daemon *d, char uuid[37], uint64_t *done,
		     uint64_t *total)
{
	struct revert_resume *rr = d->resume;

	if (!rr || __atomic_load_n(&rr->done, __ATOMIC_ACQUIRE))
		return false;
	memcpy(uuid, rr->snap.uuid, 37);
	*done = __atomic_load_n(&rr->copied, __ATOMIC_RELAXED);
	*total = __atomic_load_n(&rr->total, __ATOMIC_RELAXED);
	return true;
}

void revert_resume_stop(struct daemon *d)
{
	if (!d->resume)
		return;
	__atomic_store_n(&d->resume->stop, true, __ATOMIC_RELAXED);
	if (d->resume->started)
		pthread_join(d->resume->thread, NULL);
	else /* the mount failed before it began */
		snapshots_unpin(d->snaps, d->resume->snap.seq);
	free(d->resume);
	d->resume = NULL;
}
