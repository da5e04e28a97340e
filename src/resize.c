// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * resize.c - live.img grown while snapshots exist.
 *
 * Snapshots keep the size they were taken with (their rows record it);
 * live.img gets the new one, its new range reads as zeros and is changed
 * in the open generation, and every bitmap is of the new size from then
 * on.  The image only grows: a smaller one would drop what later
 * snapshots hold past its end.  Sizes are whole chunks, so that no chunk
 * a snapshot preserved changes length.
 *
 * First, while writes go on, a block device's new range is zeroed and
 * cbt.map gets its room, the open generation's record in the store the
 * words of only new blocks as changed (cbt_grow_prepare: durable, and
 * past the image, so nothing reads them yet; a growth by 1 TiB is 262144
 * rows at the default block size, which writes need not wait for).  Then
 * the steps, with the chain quiesced (no write in flight or starting):
 *   1. the chain's per-chunk bits get their room (cow_grow_prepare) and
 *      the store's record the word the new blocks share with the old
 *      ones (cbt_grow_edge);
 *   2. the store records the new size, still accepting the old one
 *      (store_resize);
 *   3. a file backing grows (extended and synced);
 *   4. the tables take the new size (cbt_grow_commit, cow_grow_commit) and
 *      so does the backing's record, which new snapshots take theirs from;
 *   5. once writes flow again, the store forgets the old size
 *      (store_resize_settle) and the kernel its cached sizes.
 * A crash before 3 is on disk leaves the image at its old size, which
 * the store accepts at the next mount (and then forgets the new one); a
 * crash after it leaves the new size, whose new blocks the store already
 * counts as changed.  A failure before 4 puts everything back.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "snapfs/backing.h"
#include "snapfs/cbt.h"
#include "snapfs/cow.h"
#include "snapfs/daemon.h"
#include "snapfs/fs.h"
#include "snapfs/log.h"
#include "snapfs/resize.h"
#include "snapfs/store.h"

/* Whether new_size is a size live.img can take; msg says why not. */
static int check_size(struct daemon *d, uint64_t new_size, char *msg,
		      size_t msg_len)
{
	uint64_t old = d->backing.size, cs = store_info(d->store)->chunk_size;

	if (d->opts.ro) {
		snprintf(msg, msg_len, "live.img is mounted read-only");
		return -EROFS;
	}
	if (new_size < old) {
		snprintf(msg, msg_len,
			 "%" PRIu64 " bytes is smaller than live.img (%" PRIu64
			 "): shrinking is refused",
			 new_size, old);
		return -EINVAL;
	}
	if (new_size % cs || old % cs) {
		snprintf(msg, msg_len,
			 "%" PRIu64 " bytes is not a whole number of chunks "
			 "(chunk_size %" PRIu64 ")%s",
			 new_size % cs ? new_size : old, cs,
			 new_size % cs ? "" : ": live.img's size is not");
		return -EINVAL;
	}
	if (new_size > BACKING_MAX_GROWN && new_size > old) {
		snprintf(msg, msg_len,
			 "%" PRIu64 " bytes is more than a mount can grow "
			 "live.img to (%llu)",
			 new_size, (unsigned long long)BACKING_MAX_GROWN);
		return -EFBIG;
	}
	return 0;
}

int resize_run(struct daemon *d, uint64_t new_size, char *msg, size_t msg_len)
{
	uint64_t old = d->backing.size;
	int r = check_size(d, new_size, msg, msg_len);

	if (r || new_size == old)
		return r;
	r = backing_grow_prepare(&d->backing, new_size, msg, msg_len);
	if (!r)
		r = cbt_grow_prepare(d->cbt, old, new_size);
	if (r) {
		if (!msg[0])
			snprintf(msg, msg_len,
				 "cannot make room for %" PRIu64 " bytes: %s",
				 new_size, strerror(-r));
		return r;
	}
	cow_quiesce(d->cow);
	r = cow_grow_prepare(d->cow, new_size);
	if (!r)
		r = cbt_grow_edge(d->cbt, old, new_size);
	if (r) {
		snprintf(msg, msg_len,
			 "cannot make room for %" PRIu64 " bytes: %s", new_size,
			 strerror(-r));
		goto out;
	}
	r = store_resize(d->store, new_size);
	if (r) {
		snprintf(msg, msg_len, "cannot record the new size: %s",
			 strerror(-r));
		goto out;
	}
	r = backing_grow(&d->backing, new_size, msg, msg_len);
	if (r) {
		/* the old size back, as the next mount would take it */
		if (store_resize(d->store, old) ||
		    store_resize_settle(d->store))
			log_error("resize: the store still accepts %" PRIu64
				  " bytes too",
				  new_size);
		goto out;
	}
	cbt_grow_commit(d->cbt, old, new_size);
	cow_grow_commit(d->cow, new_size);
	__atomic_store_n(&d->backing.size, new_size, __ATOMIC_RELEASE);
	__atomic_store_n(&d->tree.image_size, new_size, __ATOMIC_RELEASE);
out:
	cow_resume(d->cow);
	if (r)
		return r;
	if (store_resize_settle(d->store))
		log_error("resize: the store still accepts %" PRIu64
			  " bytes too (until the next mount)",
			  old);
	if (d->fs)
		fs_image_grown(d->fs);
	store_add_event(d->store, "resize",
			"live.img grown from %" PRIu64 " to %" PRIu64 " bytes",
			old, new_size);
	return 0;
}
