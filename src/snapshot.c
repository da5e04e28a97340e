// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * snapshot.c - snapshots and their lifecycle.
 *
 * Owns the in-memory list of snapshots (sorted by seq, mirrored from the
 * store's table) and the rules of their life:
 *   - create: the chain is quiesced (every returned write is in, none that
 *     starts later is), the backing is synced under durability=full, the
 *     row is committed, the chain told that a newer snapshot exists;
 *   - create for a group (ctl.c), the same in three steps, hold, take and
 *     unhold, so that the instants of several daemons overlap: the row
 *     is committed marked deleted (pending), shown nowhere, and the
 *     unhold either clears the mark or purges it, in both cases before
 *     any write reaches the chain.  A daemon that stops in between finds
 *     it marked at the next mount and finishes the deletion, so a group
 *     that never committed leaves nothing;
 *   - delete: with no reader, purged at once; with readers, marked deleted
 *     in the store (so a crash finishes the job at the next mount) and
 *     kept, still counted by the chain, until the last reader closes (or
 *     purged by the delete, when they all closed while it was marked);
 *   - delete keeping a bookmark: as delete, but marked first whatever the
 *     readers, with the bookmark wish in the mark, and the purge's commit
 *     turns the row into a bookmark: a uuid and a generation, no data, no
 *     part in the chain (only snapshots are preserved for), kept in a
 *     list of its own;
 *   - the newest snapshot changing by deletion is done with the chain
 *     quiesced, since it changes what a write must preserve.
 *
 * Locking: op_lock serializes create and delete (and purges), and is
 * held from snapshots_hold to snapshots_unhold; lock guards the list and
 * open counts and is never held across I/O.  A purge is decided under
 * lock, in the same hold that finds no reader open, and the entry is
 * marked purging there: from then on opens are refused, since a reader
 * that got in would read through copies the purge is removing (later
 * copies, or live bytes, all with valid checksums).
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapfs/backing.h"
#include "snapfs/cbt.h"
#include "snapfs/cow.h"
#include "snapfs/iolog.h"
#include "snapfs/log.h"
#include "snapfs/snapshot.h"
#include "snapfs/store.h"
#include "snapfs/uuid.h"
#include "util_time.h"

struct snapshots {
	struct store *s;
	struct backing *b;
	struct cow *c;
	struct cbt *cbt;
	enum durability durability;
	pthread_mutex_t op_lock;
	pthread_mutex_t lock;
	struct snapshot *v; /* ascending seq */
	size_t n;
	struct snapshot *bm; /* bookmarks, ascending seq */
	size_t nbm, bm_cap;
	int64_t pending; /* under op_lock: taken while held, not yet kept */
};

/* Adds e to the bookmarks in seq order; lock held. */
static int bookmark_add(struct snapshots *ss, const struct snapshot *e)
{
	size_t at = ss->nbm;

	if (ss->nbm == ss->bm_cap) {
		size_t cap = ss->bm_cap ? 2 * ss->bm_cap : 8;
		struct snapshot *v = realloc(ss->bm, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ss->bm = v;
		ss->bm_cap = cap;
	}
	while (at > 0 && ss->bm[at - 1].seq > e->seq)
		at--;
	memmove(&ss->bm[at + 1], &ss->bm[at], (ss->nbm - at) * sizeof(*ss->bm));
	ss->bm[at] = (struct snapshot){ .seq = e->seq,
					.created_ns = e->created_ns,
					.generation = e->generation };
	memcpy(ss->bm[at].uuid, e->uuid, sizeof(e->uuid));
	ss->nbm++;
	return 0;
}

/* Index of seq in the list, or -1; lock held. */
static ssize_t index_of(const struct snapshots *ss, int64_t seq)
{
	for (size_t i = 0; i < ss->n; i++)
		if (ss->v[i].seq == seq)
			return (ssize_t)i;
	return -1;
}

static int64_t newest_locked(const struct snapshots *ss)
{
	return ss->n ? ss->v[ss->n - 1].seq : 0;
}

/*
 * Removes snapshot seq from the store and the list, with every copy only
 * it read.  op_lock held, no reader open, the entry marked purging (or
 * loading); on failure it is left whole and openable again.  held: the
 * chain is quiesced already (snapshots_hold).
 */
static int purge(struct snapshots *ss, int64_t seq, bool held)
{
	int64_t *live, newest_after;
	size_t nlive = 0;
	bool was_newest;
	ssize_t at;
	int r;

	pthread_mutex_lock(&ss->lock);
	live = malloc((ss->n ? ss->n : 1) * sizeof(*live));
	if (!live) {
		pthread_mutex_unlock(&ss->lock);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ss->n; i++)
		if (ss->v[i].seq != seq)
			live[nlive++] = ss->v[i].seq;
	was_newest = newest_locked(ss) == seq;
	newest_after = nlive ? live[nlive - 1] : 0;
	at = index_of(ss, seq);
	if (at >= 0) {
		/* for the power-loss replay: from here on it may be gone */
		char mark[48];

		snprintf(mark, sizeof(mark), "deleting %s", ss->v[at].uuid);
		iolog_mark(mark);
	}
	pthread_mutex_unlock(&ss->lock);

	if (was_newest && ss->c && !held)
		cow_quiesce(ss->c);
	r = store_purge_snapshot(ss->s, seq, live, nlive);
	/* Committed, the snapshot is gone (a restart would not bring it
	 * back), so it leaves the list whatever follows, and the purge has
	 * succeeded: kept listed, it would open and read through copies
	 * that no longer exist, and drop-oldest, told of a failure, would
	 * fail a write for which it did make room.  The chain has taken
	 * the new newest even when reloading its bits from the store
	 * fails; then every change tries the reload again first and fails
	 * with EIO while it fails (cow.c, cow_reload_fresh), so no chunk is
	 * preserved again over the copy an older snapshot reads. */
	if (!r && was_newest && ss->c) {
		int e = cow_set_newest(ss->c, newest_after);

		if (e)
			log_error("snapshot: seq %lld purged, but the chain "
				  "could not reload what it preserved: %s",
				  (long long)seq, strerror(-e));
	}
	if (was_newest && ss->c && !held)
		cow_resume(ss->c);
	free(live);
	if (r) {
		log_error("snapshot: purge seq %lld: %s", (long long)seq,
			  strerror(-r));
		/* still whole: it may be opened again */
		pthread_mutex_lock(&ss->lock);
		at = index_of(ss, seq);
		if (at >= 0)
			ss->v[at].purging = false;
		pthread_mutex_unlock(&ss->lock);
		return r;
	}
	pthread_mutex_lock(&ss->lock);
	at = index_of(ss, seq);
	if (at >= 0) {
		/* the store holds it as a bookmark now; a copy in memory that
		 * cannot be made is back at the next mount */
		if (ss->v[at].keep_bookmark && bookmark_add(ss, &ss->v[at]))
			log_error("snapshot: bookmark %s is listed again only "
				  "after a restart: out of memory",
				  ss->v[at].uuid);
		memmove(&ss->v[at], &ss->v[at + 1],
			(ss->n - (size_t)at - 1) * sizeof(*ss->v));
		ss->n--;
	}
	pthread_mutex_unlock(&ss->lock);
	return 0;
}

int snapshots_load(struct snapshots **out, struct store *s, struct backing *b,
		   enum durability durability)
{
	struct snapshots *ss = calloc(1, sizeof(*ss));
	struct store_snapshot *rows = NULL;
	size_t n = 0, i;
	int r;

	if (!ss)
		return -ENOMEM;
	ss->s = s;
	ss->b = b;
	ss->durability = durability;
	pthread_mutex_init(&ss->op_lock, NULL);
	pthread_mutex_init(&ss->lock, NULL);
	r = store_list_snapshots(s, &rows, &n);
	if (r)
		goto err;
	ss->v = calloc(n ? n : 1, sizeof(*ss->v));
	if (!ss->v) {
		r = -ENOMEM;
		goto err;
	}
	for (i = 0; i < n && !r; i++) {
		struct snapshot e = { .seq = rows[i].seq,
				      .created_ns = rows[i].created_ns,
				      .generation = rows[i].generation,
				      .size = rows[i].size,
				      .deleted = rows[i].deleted,
				      .keep_bookmark = rows[i].bookmark };

		memcpy(e.uuid, rows[i].uuid, sizeof(e.uuid));
		if (rows[i].bookmark && !rows[i].deleted)
			r = bookmark_add(ss, &e);
		else
			ss->v[ss->n++] = e;
	}
	if (r)
		goto err;
	/* Deletions that waited for a reader when the last run stopped. */
	for (i = n; i-- > 0;)
		if (rows[i].deleted) {
			log_info("snapshot: finishing the deletion of %s",
				 rows[i].uuid);
			r = purge(ss, rows[i].seq, false);
			if (r)
				goto err;
		}
	free(rows);
	*out = ss;
	return 0;
err:
	free(rows);
	snapshots_free(ss);
	return r;
}

int64_t snapshots_newest(struct snapshots *ss)
{
	int64_t seq;

	pthread_mutex_lock(&ss->lock);
	seq = newest_locked(ss);
	pthread_mutex_unlock(&ss->lock);
	return seq;
}

void snapshots_attach(struct snapshots *ss, struct cow *c, struct cbt *cbt)
{
	ss->c = c;
	ss->cbt = cbt;
}

void snapshots_free(struct snapshots *ss)
{
	if (!ss)
		return;
	pthread_mutex_destroy(&ss->op_lock);
	pthread_mutex_destroy(&ss->lock);
	free(ss->v);
	free(ss->bm);
	free(ss);
}

/* A snapshot that exists now: for the power-loss replay and the log. */
static void snapshot_made(const struct snapshot *e)
{
	char mark[48];

	snprintf(mark, sizeof(mark), "snapshot %s", e->uuid);
	iolog_mark(mark);
	log_info("snapshot: created %s (generation %llu)", e->uuid,
		 (unsigned long long)e->generation);
}

void snapshots_hold(struct snapshots *ss)
{
	pthread_mutex_lock(&ss->op_lock);
	cow_quiesce(ss->c);
	ss->pending = 0;
}

int snapshots_take_held(struct snapshots *ss, bool pending,
			struct snapshot *out)
{
	struct store_snapshot row = { .deleted = pending };
	struct snapshot *v, e;
	int r;

	r = uuid_make(row.uuid);
	if (r)
		return r;
	row.size = ss->b->size;
	/* Room for the entry first: once the row is committed, nothing may
	 * keep it out of the list (see below). */
	pthread_mutex_lock(&ss->lock);
	v = realloc(ss->v, (ss->n + 1) * sizeof(*v));
	if (v)
		ss->v = v;
	pthread_mutex_unlock(&ss->lock);
	if (!v)
		return -ENOMEM;

	row.created_ns = now_ns();
	/* A write that returned but could not be made is not in the image:
	 * no instant holds every write that returned. */
	r = cow_write_error(ss->c);
	if (!r && ss->durability == DURABILITY_FULL)
		r = backing_sync(ss->b);
	if (!r)
		r = cbt_seal(ss->cbt);
	if (!r)
		r = store_add_snapshot(ss->s, &row);
	if (r) {
		log_error("snapshot: create: %s", strerror(-r));
		return r;
	}
	/*
	 * Committed, the snapshot exists: a restart brings it back (or, when
	 * pending, finishes its deletion), so it is listed and the take
	 * succeeds whatever follows.  Left out of the list, later purges
	 * would delete copies it reads, and after a restart it would serve
	 * later bytes with valid checksums.  Rolling the row back instead
	 * would have to undo the store's new generation too.  Neither step
	 * after the commit can leave the snapshot unprotected:
	 * cow_set_newest with a newer seq only sets it and clears the fresh
	 * bits, and cbt_next_generation moves to the store's new generation
	 * before what can fail (dropping bitmaps beyond cbt_keep, tried
	 * again at the next snapshot), so their errors are only logged.
	 */
	r = cow_set_newest(ss->c, row.seq);
	if (r)
		log_error("snapshot: seq %lld: chain: %s", (long long)row.seq,
			  strerror(-r));
	r = cbt_next_generation(ss->cbt);
	if (r)
		log_error("snapshot: seq %lld: changed-block tracking: %s",
			  (long long)row.seq, strerror(-r));

	/* A pending one is in the list as the deleted ones are: counted by
	 * purges, shown nowhere, opened by no one. */
	e = (struct snapshot){ .seq = row.seq,
			       .created_ns = row.created_ns,
			       .generation = row.generation,
			       .size = row.size,
			       .deleted = pending };
	memcpy(e.uuid, row.uuid, sizeof(e.uuid));
	pthread_mutex_lock(&ss->lock);
	ss->v[ss->n++] = e;
	pthread_mutex_unlock(&ss->lock);
	*out = e;
	if (pending) {
		ss->pending = e.seq;
		log_info("snapshot: took %s (generation %llu), held for its "
			 "group",
			 e.uuid, (unsigned long long)e.generation);
	} else {
		snapshot_made(&e);
	}
	return 0;
}

int snapshots_unhold(struct snapshots *ss, bool keep)
{
	int64_t seq = ss->pending;
	struct snapshot e = { 0 };
	ssize_t at;
	int r = 0;

	ss->pending = 0;
	if (!seq)
		goto resume;
	if (keep) {
		r = store_keep_snapshot(ss->s, seq);
		pthread_mutex_lock(&ss->lock);
		at = index_of(ss, seq);
		assert(at >= 0);
		if (!r)
			ss->v[at].deleted = false;
		else
			ss->v[at].purging = true;
		e = ss->v[at];
		pthread_mutex_unlock(&ss->lock);
		if (!r) {
			snapshot_made(&e);
			goto resume;
		}
		log_error("snapshot: %s cannot be kept: %s; deleting it",
			  e.uuid, strerror(-r));
	} else {
		pthread_mutex_lock(&ss->lock);
		at = index_of(ss, seq);
		assert(at >= 0);
		ss->v[at].purging = true;
		e = ss->v[at];
		pthread_mutex_unlock(&ss->lock);
	}
	/* Still held: no write reached the chain since it was taken, so the
	 * purge removes nothing but the row.  One that fails leaves the row
	 * marked deleted, finished at the next mount. */
	if (purge(ss, seq, true))
		log_error("snapshot: %s: its deletion is finished at the next "
			  "mount",
			  e.uuid);
	else
		log_info("snapshot: %s deleted: its group was not committed",
			 e.uuid);
resume:
	cow_resume(ss->c);
	pthread_mutex_unlock(&ss->op_lock);
	return r;
}

int snapshots_create(struct snapshots *ss, struct snapshot *out)
{
	int r;

	snapshots_hold(ss);
	r = snapshots_take_held(ss, false, out);
	snapshots_unhold(ss, true);
	return r;
}

/* The seq of bookmark uuid, or 0. */
static int64_t bookmark_seq(struct snapshots *ss, const char *uuid)
{
	int64_t seq = 0;

	pthread_mutex_lock(&ss->lock);
	for (size_t i = 0; i < ss->nbm && !seq; i++)
		if (!strcmp(ss->bm[i].uuid, uuid))
			seq = ss->bm[i].seq;
	pthread_mutex_unlock(&ss->lock);
	return seq;
}

int snapshots_delete_bookmark(struct snapshots *ss, const char *uuid)
{
	int64_t seq;
	int r;

	pthread_mutex_lock(&ss->op_lock);
	seq = bookmark_seq(ss, uuid);
	r = seq ? store_delete_bookmark(ss->s, seq) : -ENOENT;
	if (r) {
		pthread_mutex_unlock(&ss->op_lock);
		return r;
	}
	pthread_mutex_lock(&ss->lock);
	for (size_t i = 0; i < ss->nbm; i++)
		if (ss->bm[i].seq == seq) {
			memmove(&ss->bm[i], &ss->bm[i + 1],
				(ss->nbm - i - 1) * sizeof(*ss->bm));
			ss->nbm--;
			break;
		}
	pthread_mutex_unlock(&ss->lock);
	pthread_mutex_unlock(&ss->op_lock);
	log_info("snapshot: bookmark %s deleted", uuid);
	return 0;
}

int snapshots_delete(struct snapshots *ss, const char *uuid, bool keep_bookmark)
{
	int64_t seq = 0;
	unsigned opens = 0;
	int r = -ENOENT;

	pthread_mutex_lock(&ss->op_lock);
	pthread_mutex_lock(&ss->lock);
	for (size_t i = 0; i < ss->n; i++)
		if (!ss->v[i].deleted && !ss->v[i].purging &&
		    !strcmp(ss->v[i].uuid, uuid)) {
			if (ss->v[i].pinned) {
				r = -EBUSY;
				break;
			}
			seq = ss->v[i].seq;
			opens = ss->v[i].opens;
			ss->v[i].purging = !opens;
			ss->v[i].keep_bookmark = keep_bookmark;
			r = 0;
			break;
		}
	pthread_mutex_unlock(&ss->lock);
	if (r == -EBUSY)
		goto out;
	if (r) {
		if (keep_bookmark && bookmark_seq(ss, uuid))
			r = -EEXIST; /* a bookmark already */
		goto out;
	}
	{
		/* for the power-loss replay: from here on it may be gone */
		char mark[48];

		snprintf(mark, sizeof(mark), "deleting %s", uuid);
		iolog_mark(mark);
	}
	/* The wish for a bookmark is in the mark, so a purge finished at the
	 * next mount keeps it too. */
	if (keep_bookmark && !opens) {
		r = store_mark_deleted(ss->s, seq, true);
		if (r) {
			pthread_mutex_lock(&ss->lock);
			ss->v[index_of(ss, seq)].purging = false;
			pthread_mutex_unlock(&ss->lock);
			goto out;
		}
	}
	if (opens) {
		r = store_mark_deleted(ss->s, seq, keep_bookmark);
		if (!r) {
			struct snapshot *e;

			/* The readers seen above may all have closed while
			 * the mark was committed: their releases saw no
			 * deletion, so the last of them did not purge and
			 * this must.  One hold of lock both marks it
			 * deleted and reads opens, so exactly one of this
			 * and the last release purges. */
			pthread_mutex_lock(&ss->lock);
			e = &ss->v[index_of(ss, seq)];
			e->deleted = true;
			opens = e->opens;
			e->purging = !opens;
			pthread_mutex_unlock(&ss->lock);
			/* Marked, it is deleted whatever the purge does: one
			 * that fails is finished at the next mount. */
			if (!opens)
				purge(ss, seq, false);
		}
	} else {
		r = purge(ss, seq, false);
	}
	if (!r)
		log_info("snapshot: deleted %s%s%s", uuid,
			 keep_bookmark ? ", kept as a bookmark" : "",
			 opens ? " (data kept until its readers close)" : "");
out:
	pthread_mutex_unlock(&ss->op_lock);
	return r;
}

int snapshots_find(struct snapshots *ss, const char *uuid, struct snapshot *out)
{
	int r = -ENOENT;

	pthread_mutex_lock(&ss->lock);
	for (size_t i = 0; i < ss->n; i++)
		if (!ss->v[i].deleted && !ss->v[i].purging &&
		    !strcmp(ss->v[i].uuid, uuid)) {
			*out = ss->v[i];
			r = 0;
			break;
		}
	pthread_mutex_unlock(&ss->lock);
	return r;
}

int snapshots_find_since(struct snapshots *ss, const char *uuid,
			 struct snapshot *out, bool *is_bookmark)
{
	int r = snapshots_find(ss, uuid, out);

	*is_bookmark = false;
	if (r != -ENOENT)
		return r;
	pthread_mutex_lock(&ss->lock);
	for (size_t i = 0; i < ss->nbm; i++)
		if (!strcmp(ss->bm[i].uuid, uuid)) {
			*out = ss->bm[i];
			*is_bookmark = true;
			r = 0;
			break;
		}
	pthread_mutex_unlock(&ss->lock);
	return r;
}

int snapshots_bookmarks(struct snapshots *ss, struct snapshot **out, size_t *n)
{
	struct snapshot *v;

	pthread_mutex_lock(&ss->lock);
	v = malloc((ss->nbm ? ss->nbm : 1) * sizeof(*v));
	if (v && ss->nbm)
		memcpy(v, ss->bm, ss->nbm * sizeof(*v));
	*n = ss->nbm;
	pthread_mutex_unlock(&ss->lock);
	if (!v)
		return -ENOMEM;
	*out = v;
	return 0;
}

int snapshots_get(struct snapshots *ss, int64_t seq, struct snapshot *out)
{
	ssize_t at;

	pthread_mutex_lock(&ss->lock);
	at = index_of(ss, seq);
	if (at >= 0)
		*out = ss->v[at];
	pthread_mutex_unlock(&ss->lock);
	return at >= 0 ? 0 : -ENOENT;
}

int snapshots_open(struct snapshots *ss, int64_t seq)
{
	ssize_t at;

	pthread_mutex_lock(&ss->lock);
	at = index_of(ss, seq);
	if (at >= 0 && !ss->v[at].deleted && !ss->v[at].purging)
		ss->v[at].opens++;
	else
		at = -1;
	pthread_mutex_unlock(&ss->lock);
	return at >= 0 ? 0 : -ENOENT;
}

int snapshots_pin(struct snapshots *ss, const char *uuid, struct snapshot *out)
{
	int r = -ENOENT;

	pthread_mutex_lock(&ss->lock);
	for (size_t i = 0; i < ss->n; i++)
		if (!ss->v[i].deleted && !ss->v[i].purging &&
		    !strcmp(ss->v[i].uuid, uuid)) {
			ss->v[i].pinned = true;
			ss->v[i].opens++;
			*out = ss->v[i];
			r = 0;
			break;
		}
	pthread_mutex_unlock(&ss->lock);
	return r;
}

void snapshots_unpin(struct snapshots *ss, int64_t seq)
{
	ssize_t at;

	pthread_mutex_lock(&ss->lock);
	at = index_of(ss, seq);
	if (at >= 0)
		ss->v[at].pinned = false;
	pthread_mutex_unlock(&ss->lock);
	snapshots_release(ss, seq);
}

void snapshots_release(struct snapshots *ss, int64_t seq)
{
	bool last = false;
	ssize_t at;

	pthread_mutex_lock(&ss->lock);
	at = index_of(ss, seq);
	if (at >= 0 && ss->v[at].opens > 0) {
		ss->v[at].opens--;
		last = ss->v[at].deleted && ss->v[at].opens == 0;
		if (last)
			ss->v[at].purging = true;
	}
	pthread_mutex_unlock(&ss->lock);
	if (!last)
		return;
	pthread_mutex_lock(&ss->op_lock);
	purge(ss, seq, false);
	pthread_mutex_unlock(&ss->op_lock);
}

int snapshots_list(struct snapshots *ss, struct snapshot **out, size_t *n)
{
	struct snapshot *v;
	size_t k = 0;

	pthread_mutex_lock(&ss->lock);
	v = malloc((ss->n ? ss->n : 1) * sizeof(*v));
	if (v)
		for (size_t i = 0; i < ss->n; i++)
			if (!ss->v[i].deleted && !ss->v[i].purging)
				v[k++] = ss->v[i];
	pthread_mutex_unlock(&ss->lock);
	if (!v)
		return -ENOMEM;
	*out = v;
	*n = k;
	return 0;
}

int snapshots_diff_bytes(struct snapshots *ss, const struct snapshot *list,
			 size_t n, uint64_t *out)
{
	int64_t *seqs = malloc((n ? n : 1) * sizeof(*seqs));
	int r;

	if (!seqs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		seqs[i] = list[i].seq;
	r = store_diff_bytes(ss->s, seqs, n, out);
	free(seqs);
	return r;
}

int snapshots_drop_all(struct snapshots *ss)
{
	int r = 0;

	pthread_mutex_lock(&ss->op_lock);
	while (!r && ss->n) {
		int64_t seq;

		pthread_mutex_lock(&ss->lock);
		seq = ss->v[ss->n - 1].seq;
		ss->v[ss->n - 1].purging = true;
		pthread_mutex_unlock(&ss->lock);
		r = purge(ss, seq, false);
	}
	pthread_mutex_unlock(&ss->op_lock);
	return r;
}

int snapshots_drop_oldest(struct snapshots *ss)
{
	char uuid[37] = "";
	int64_t seq = 0;
	int r = -ENOSPC;

	pthread_mutex_lock(&ss->op_lock);
	pthread_mutex_lock(&ss->lock);
	for (size_t i = 0; i < ss->n; i++)
		if (!ss->v[i].deleted && !ss->v[i].purging && !ss->v[i].opens) {
			seq = ss->v[i].seq;
			memcpy(uuid, ss->v[i].uuid, sizeof(uuid));
			ss->v[i].purging = true;
			break;
		}
	pthread_mutex_unlock(&ss->lock);
	if (seq)
		r = purge(ss, seq, false);
	pthread_mutex_unlock(&ss->op_lock);
	if (!r)
		store_add_event(ss->s, "dropped",
				"snapshot %s dropped: the diff store was full "
				"(on_full=drop-oldest)",
				uuid);
	return r;
}
