// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * store_slots.c - the data file's slots: the map of used ones (a bit per
 * slot, rebuilt from the chunk rows at open), allocation (a free slot
 * taken for one copy), reservations (slots counted against the limit for
 * writes that will preserve later, none chosen yet: cow.c's write-behind
 * reserves them when it answers a write), the limit (diff_max, or the
 * file system's free space less a margin), the 90% warning, and freeing
 * (a purged slot's space punched back to the file system).
 *
 * Locking: everything here is under slot_lock, taken and let go inside
 * each function; the warning event is recorded after slot_lock is let go
 * (store_add_event takes db_lock).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <stdlib.h>

#include "snapfs/iolog.h"
#include "snapfs/log.h"
#include "store_int.h"

/* Marks slot i used or free; slot_lock held. */
static int slot_set(struct store *s, uint64_t i, bool used)
{
	if (i >= s->nslots) {
		uint64_t n = s->nslots ? s->nslots : 1024;
		uint64_t *m;

		while (n <= i)
			n *= 2;
		m = realloc(s->slot_used, n / 8);
		if (!m)
			return -ENOMEM;
		memset(m + s->nslots / 64, 0, (n - s->nslots) / 8);
		s->slot_used = m;
		s->nslots = n;
	}
	if (used) {
		s->slot_used[i / 64] |= 1ull << (i % 64);
		s->slots_in_use++;
	} else {
		s->slot_used[i / 64] &= ~(1ull << (i % 64));
		s->slots_in_use--;
		if (s->low_warned && s->slots_in_use * 10 < s->limit_slots * 8)
			s->low_warned = false;
		if (i < s->slot_hint)
			s->slot_hint = i;
	}
	return 0;
}

/*
 * Rebuilds the slot map from the index: a slot is used iff a run covers
 * it.  A run covering a place outside the data file, unaligned, or taken
 * by another run is damage: -EIO.
 */
int store_load_slots(struct store *s)
{
	uint64_t cs = s->info.chunk_size;
	struct stat st;
	sqlite3_stmt *st_rows;
	int rc, r = 0;

	if (fstat(s->data_fd, &st) < 0)
		return -errno;
	rc = sqlite3_prepare_v2(
		s->db,
		"SELECT data_off, n FROM runs WHERE data_off IS NOT NULL", -1,
		&st_rows, NULL);
	if (rc != SQLITE_OK)
		return index_err(s->db, rc, "prepare slot scan");
	while (!r && (rc = sqlite3_step(st_rows)) == SQLITE_ROW) {
		int64_t off = sqlite3_column_int64(st_rows, 0);
		int64_t n = sqlite3_column_int64(st_rows, 1);

		if (n < 1 || n > RUN_MAX) {
			log_error("store: a run of %lld chunks at data offset "
				  "%lld",
				  (long long)n, (long long)off);
			r = -EIO;
		}
		for (int64_t k = 0; k < n && !r; k++) {
			int64_t o = off + k * (int64_t)cs;
			uint64_t i = (uint64_t)o / cs;

			if (!chunk_fits(o, cs, (uint64_t)st.st_size) ||
			    (i < s->nslots &&
			     (s->slot_used[i / 64] >> (i % 64) & 1))) {
				log_error("store: a run names data offset "
					  "%lld, outside the data file, "
					  "unaligned or shared",
					  (long long)o);
				r = -EIO;
				break;
			}
			r = slot_set(s, i, true);
		}
	}
	sqlite3_finalize(st_rows);
	if (!r && rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = index_err(s->db, rc, "slot scan");
	return r;
}

/* Free bytes of the file system under the store (0 if unknown). */
static uint64_t fs_free_bytes(const struct store *s)
{
	struct statvfs sv;

	if (fstatvfs(s->data_fd, &sv) < 0)
		return 0;
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/*
 * Without diff_max the limit is the file system's free space less
 * STORE_FS_MARGIN: the margin keeps room for the index to grow and, when
 * the store is full, to record the deletions that make room (a file
 * system filled to the last block fails those too).  Chunks are counted
 * down from the last look at the free space, which is taken again once
 * the count comes near the margin; a look does not see the slots reserved
 * for queued writes, nor those taken and not written yet (not on the file
 * system), so they are taken off what it finds.  Takes bytes, or -ENOSPC;
 * slot_lock held.
 */
#define STORE_FS_MARGIN (16ull << 20)

static int fs_take(struct store *s, uint64_t bytes)
{
	if (s->fs_room < bytes + STORE_FS_MARGIN) {
		uint64_t cs = s->info.chunk_size;
		uint64_t pending = s->slots_reserved * cs;
		uint64_t used = s->slots_in_use * cs;
		struct stat st;

		/* Slots taken and not written yet (their preservation waits
		 * for the group commit) are not on the file system either:
		 * what the data file holds falls short of them. */
		if (fstat(s->data_fd, &st) == 0 &&
		    used > (uint64_t)st.st_blocks * 512)
			pending += used - (uint64_t)st.st_blocks * 512;
		s->fs_room = fs_free_bytes(s);
		s->fs_room = s->fs_room > pending ? s->fs_room - pending : 0;
	}
	if (s->fs_room < bytes + STORE_FS_MARGIN)
		return -ENOSPC;
	s->fs_room -= bytes;
	return 0;
}

/* Takes a free slot, the first at or after the hint; reserved: one of the
 * caller's reservations, already counted against the limit.  slot_lock
 * held; *warn set when the store just crossed 90% of diff_max. */
static int slot_take(struct store *s, int64_t *data_off, bool reserved,
		     bool *warn)
{
	uint64_t i;
	int r;

	if (reserved && s->slots_reserved) {
		s->slots_reserved--;
	} else if (s->has_limit ? s->slots_in_use + s->slots_reserved + 1 >
					  s->limit_slots
				: fs_take(s, s->info.chunk_size) < 0) {
		return -ENOSPC;
	}
	for (i = s->slot_hint; i < s->nslots; i++) {
		if (s->slot_used[i / 64] == ~0ull) {
			i |= 63;
			continue;
		}
		if (!(s->slot_used[i / 64] & (1ull << (i % 64))))
			break;
	}
	r = slot_set(s, i, true);
	if (!r) {
		s->slot_hint = i + 1;
		*data_off = (int64_t)(i * s->info.chunk_size);
		if (s->has_limit && !s->low_warned &&
		    s->slots_in_use * 10 >= s->limit_slots * 9)
			*warn = s->low_warned = true;
	} else if (reserved) {
		s->slots_reserved++;
	}
	return r;
}

static void warn_low_space(struct store *s)
{
	uint64_t used, limit;

	pthread_mutex_lock(&s->slot_lock);
	used = s->slots_in_use;
	limit = s->limit_slots;
	pthread_mutex_unlock(&s->slot_lock);
	store_add_event(s, "low-space",
			"the diff store holds %llu of its %llu bytes "
			"(diff_max): 90%% used",
			(unsigned long long)(used * s->info.chunk_size),
			(unsigned long long)(limit * s->info.chunk_size));
}

int store_slot_alloc_run(struct store *s, int64_t *offs, size_t n,
			 uint64_t *reserved)
{
	bool warn = false;
	size_t i;
	int r = 0;

	for (i = 0; i < n; i++)
		offs[i] = -1;
	pthread_mutex_lock(&s->slot_lock);
	for (i = 0; i < n && !r; i++) {
		bool mine = *reserved > 0;

		r = slot_take(s, &offs[i], mine, &warn);
		if (!r && mine)
			--*reserved;
	}
	pthread_mutex_unlock(&s->slot_lock);
	if (warn)
		warn_low_space(s);
	return r;
}

int store_slot_alloc(struct store *s, int64_t *data_off)
{
	uint64_t none = 0;

	return store_slot_alloc_run(s, data_off, 1, &none);
}

int store_slot_reserve(struct store *s, uint64_t n)
{
	uint64_t need = n * s->info.chunk_size;
	int r = 0;

	pthread_mutex_lock(&s->slot_lock);
	if (s->has_limit) {
		if (s->slots_in_use + s->slots_reserved + n > s->limit_slots)
			r = -ENOSPC;
	} else {
		r = fs_take(s, need);
	}
	if (!r)
		s->slots_reserved += n;
	pthread_mutex_unlock(&s->slot_lock);
	return r;
}

void store_slot_unreserve(struct store *s, uint64_t n)
{
	pthread_mutex_lock(&s->slot_lock);
	s->slots_reserved -= n < s->slots_reserved ? n : s->slots_reserved;
	pthread_mutex_unlock(&s->slot_lock);
}

void store_set_limit(struct store *s, uint64_t diff_max)
{
	pthread_mutex_lock(&s->slot_lock);
	s->has_limit = diff_max != 0;
	s->limit_slots = diff_max / s->info.chunk_size;
	pthread_mutex_unlock(&s->slot_lock);
}

void store_slot_free(struct store *s, int64_t data_off)
{
	pthread_mutex_lock(&s->slot_lock);
	slot_set(s, (uint64_t)data_off / s->info.chunk_size, false);
	pthread_mutex_unlock(&s->slot_lock);
}

/*
 * Returns freed slots to the map and their space to the file system:
 * offs (sorted here) is punched a run of consecutive slots at a time (a
 * purge of 2 GiB of 4 KiB copies made 524288 punches of one slot, 90 s),
 * and only then are the slots free for reuse, under one lock.
 */
void store_slots_release(struct store *s, int64_t *offs, size_t n)
{
	const int64_t cs = s->info.chunk_size;
	size_t i, j;

	if (!n)
		return; /* offs may be NULL */
	qsort(offs, n, sizeof(*offs), array_cmp_u64); /* none negative */
	for (i = 0; i < n; i = j) {
		off_t len;

		for (j = i + 1; j < n && offs[j] == offs[j - 1] + cs; j++)
			;
		len = (off_t)(j - i) * cs;
		if (fallocate(s->data_fd,
			      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      offs[i], len) < 0) {
			if (errno != EOPNOTSUPP)
				log_warn("store: punch %zu slots at %lld: %s",
					 j - i, (long long)offs[i],
					 strerror(errno));
		} else {
			iolog_zero(IOLOG_DATA, (uint64_t)offs[i],
				   (uint64_t)len);
		}
	}
	pthread_mutex_lock(&s->slot_lock);
	for (i = 0; i < n; i++)
		slot_set(s, (uint64_t)offs[i] / (uint64_t)cs, false);
	pthread_mutex_unlock(&s->slot_lock);
}

uint64_t store_bytes_used(struct store *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->slot_lock);
	n = s->slots_in_use * s->info.chunk_size;
	pthread_mutex_unlock(&s->slot_lock);
	return n;
}
