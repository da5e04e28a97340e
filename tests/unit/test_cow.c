// SPDX-License-Identifier: GPL-2.0-or-later
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapfs/fault.h"

#include "fixture.h"

#define CS 16384u

static struct chain ch;

static void fini(void)
{
	chain_fini(&ch);
}

TestSuite(cow, .fini = fini);

static int64_t snap(void)
{
	struct snapshot s;

	cr_assert_eq(snapshots_create(ch.ss, &s), 0);
	return s.seq;
}

/* What was preserved, once the queued writes are written (cow_flush). */
static uint64_t preserved(void)
{
	cr_assert_eq(cow_flush(ch.c), 0);
	return cow_preserved_count(ch.c);
}

static uint64_t used_bytes(void)
{
	cr_assert_eq(cow_flush(ch.c), 0);
	return store_bytes_used(ch.s);
}

static void write_pattern(uint64_t off, size_t len, uint64_t seed)
{
	unsigned char *buf = malloc(len);

	fill_pattern(buf, len, seed);
	cr_assert_eq(cow_write_live(ch.c, buf, len, off), (ssize_t)len);
	free(buf);
}

Test(cow, without_snapshots_writes_preserve_nothing)
{
	chain_init(&ch, 1 << 20, CS, DURABILITY_PROCESS);
	write_pattern(0, 1 << 20, 1);
	cr_assert_eq(preserved(), 0);
	cr_assert_eq(used_bytes(), 0);
}

Test(cow, a_partial_chunk_write_preserves_the_whole_chunk_once)
{
	unsigned char *before, *after;
	int64_t s1;

	chain_init(&ch, 1 << 20, CS, DURABILITY_FULL);
	write_pattern(0, 1 << 20, 1);
	before = chain_read_all(&ch, 0);
	s1 = snap();
	write_pattern(CS + 100, 10, 2); /* inside chunk 1 */
	write_pattern(CS + 5000, 10, 3); /* chunk 1 again: already fresh */
	cr_assert_eq(preserved(), 1);
	write_pattern(3 * CS - 8, 16, 4); /* straddles chunks 2 and 3 */
	cr_assert_eq(preserved(), 3);
	after = chain_read_all(&ch, s1);
	cr_assert_eq(memcmp(before, after, 1 << 20), 0);
	free(after);
	after = chain_read_all(&ch, 0);
	cr_assert_neq(memcmp(before, after, 1 << 20), 0);
	free(before);
	free(after);
}

Test(cow, one_copy_serves_every_older_snapshot_without_one)
{
	unsigned char *v0, *got;
	int64_t s1, s2, s3;

	chain_init(&ch, 256 * 1024, CS, DURABILITY_PROCESS);
	write_pattern(0, 256 * 1024, 1);
	v0 = chain_read_all(&ch, 0);
	s1 = snap();
	s2 = snap();
	s3 = snap();
	write_pattern(0, CS, 2); /* one copy, made under s3, serves s1..s3 */
	cr_assert_eq(preserved(), 1);
	cr_assert_eq(used_bytes(), CS);
	int64_t seqs[] = { s1, s2, s3 };
	for (int i = 0; i < 3; i++) {
		got = chain_read_all(&ch, seqs[i]);
		cr_assert_eq(memcmp(v0, got, 256 * 1024), 0, "snapshot %d", i);
		free(got);
	}
	free(v0);
}

Test(cow, deleting_a_middle_snapshot_keeps_the_others_and_frees_space)
{
	unsigned char *v1, *v2, *v3, *got;
	struct snapshot s2info;
	int64_t s1, s2, s3;

	chain_init(&ch, 256 * 1024, CS, DURABILITY_PROCESS);
	write_pattern(0, 256 * 1024, 1);
	v1 = chain_read_all(&ch, 0);
	s1 = snap();
	write_pattern(0, 64 * 1024, 2);
	v2 = chain_read_all(&ch, 0);
	s2 = snap();
	cr_assert_eq(snapshots_get(ch.ss, s2, &s2info), 0);
	write_pattern(32 * 1024, 64 * 1024, 3);
	v3 = chain_read_all(&ch, 0);
	s3 = snap();
	write_pattern(0, 256 * 1024, 4);
	uint64_t used = used_bytes();

	cr_assert_eq(snapshots_delete(ch.ss, s2info.uuid, false), 0);
	cr_assert_lt(used_bytes(), used, "space of s2 freed");
	got = chain_read_all(&ch, s1);
	cr_assert_eq(memcmp(v1, got, 256 * 1024), 0);
	free(got);
	got = chain_read_all(&ch, s3);
	cr_assert_eq(memcmp(v3, got, 256 * 1024), 0);
	free(got);
	cr_assert_eq(snapshots_get(ch.ss, s2, &s2info), -ENOENT);
	free(v1);
	free(v2);
	free(v3);
}

Test(cow, an_open_snapshot_reads_the_same_bytes_after_delete)
{
	unsigned char *v1, *got;
	struct snapshot info;
	int64_t s1;

	chain_init(&ch, 256 * 1024, CS, DURABILITY_PROCESS);
	write_pattern(0, 256 * 1024, 1);
	v1 = chain_read_all(&ch, 0);
	s1 = snap();
	cr_assert_eq(snapshots_get(ch.ss, s1, &info), 0);
	cr_assert_eq(snapshots_open(ch.ss, s1), 0);
	cr_assert_eq(snapshots_delete(ch.ss, info.uuid, false), 0);
	cr_assert_eq(snapshots_find(ch.ss, info.uuid, &info), -ENOENT,
		     "gone from the tree");
	cr_assert_eq(snapshots_open(ch.ss, s1), -ENOENT, "cannot reopen");
	write_pattern(0, 256 * 1024, 2); /* still preserved for the reader */
	got = chain_read_all(&ch, s1);
	cr_assert_eq(memcmp(v1, got, 256 * 1024), 0);
	free(got);
	snapshots_release(ch.ss, s1);
	cr_assert_eq(snapshots_get(ch.ss, s1, &info), -ENOENT, "purged");
	cr_assert_eq(used_bytes(), 0);
	free(v1);
}

Test(cow, a_deletion_left_pending_by_a_crash_finishes_at_the_next_open)
{
	struct snapshot info;
	int64_t s1;

	chain_init(&ch, 256 * 1024, CS, DURABILITY_PROCESS);
	write_pattern(0, 256 * 1024, 1);
	s1 = snap();
	write_pattern(0, 256 * 1024, 2);
	cr_assert_eq(snapshots_get(ch.ss, s1, &info), 0);
	cr_assert_eq(snapshots_open(ch.ss, s1), 0);
	cr_assert_eq(snapshots_delete(ch.ss, info.uuid, false), 0);
	chain_stop(&ch, false); /* the reader never closed */
	chain_start(&ch);
	cr_assert_eq(snapshots_get(ch.ss, s1, &info), -ENOENT);
	cr_assert_eq(used_bytes(), 0);
}

Test(cow, punch_and_zero_preserve_first_and_read_back_zeros)
{
	unsigned char *v1, *got, zeros[CS] = { 0 };
	int64_t s1;

	chain_init(&ch, 256 * 1024, CS, DURABILITY_PROCESS);
	write_pattern(0, 256 * 1024, 1);
	v1 = chain_read_all(&ch, 0);
	s1 = snap();
	cr_assert_eq(cow_discard(ch.c, CS, CS, false), 0);
	cr_assert_eq(cow_discard(ch.c, 4 * CS + 10, CS, true), 0);
	got = chain_read_all(&ch, 0);
	cr_assert_eq(memcmp(got + CS, zeros, CS), 0);
	cr_assert_eq(memcmp(got + 4 * CS + 10, zeros, CS), 0);
	cr_assert_eq(memcmp(got, v1, CS), 0);
	free(got);
	got = chain_read_all(&ch, s1);
	cr_assert_eq(memcmp(got, v1, 256 * 1024), 0);
	free(got);
	free(v1);
}

Test(cow, a_zero_chunk_is_preserved_without_taking_space)
{
	unsigned char *got, zeros[CS] = { 0 };
	int64_t s1;

	chain_init(&ch, 256 * 1024, CS, DURABILITY_PROCESS);
	s1 = snap();
	write_pattern(0, 4 * CS, 1);
	cr_assert_eq(preserved(), 4);
	cr_assert_eq(used_bytes(), 0);
	got = chain_read_all(&ch, s1);
	for (int i = 0; i < 16; i++)
		cr_assert_eq(memcmp(got + i * CS, zeros, CS), 0);
	free(got);
}

Test(cow, a_discard_over_holes_of_the_backing_preserves_nothing)
{
	unsigned char *v1, *got;
	int64_t s1;

	/* 64 MiB, data only in chunks 100..103 and 200: a whole-image
	 * discard (mkfs's) copies those five and no zero chunk */
	chain_init(&ch, 64ull << 20, 4096, DURABILITY_PROCESS);
	write_pattern(100 * 4096, 4 * 4096, 1);
	write_pattern(200 * 4096 + 100, 10, 2);
	v1 = chain_read_all(&ch, 0);
	s1 = snap();
	cr_assert_eq(cow_discard(ch.c, 0, 64ull << 20, false), 0);
	cr_assert_eq(preserved(), 5, "preserved %llu chunks",
		     (unsigned long long)preserved());
	cr_assert_eq(used_bytes(), 5 * 4096);
	got = chain_read_all(&ch, s1);
	cr_assert_eq(memcmp(got, v1, 64ull << 20), 0);
	free(got);
	/* zeroing a range that is a hole now, and writing into one: the
	 * snapshot still reads what it had */
	cr_assert_eq(cow_discard(ch.c, 50 * 4096, 300 * 4096, true), 0);
	cr_assert_eq(preserved(), 5);
	write_pattern(150 * 4096, 4096, 3);
	got = chain_read_all(&ch, s1);
	cr_assert_eq(memcmp(got, v1, 64ull << 20), 0);
	free(got);
	free(v1);
}

Test(cow, a_damaged_copy_reads_as_eio_never_wrong_bytes)
{
	unsigned char buf[CS];
	int64_t s1;

	chain_init(&ch, 256 * 1024, CS, DURABILITY_PROCESS);
	write_pattern(0, 256 * 1024, 1);
	s1 = snap();
	write_pattern(0, CS, 2);
	cr_assert_eq(used_bytes(), CS);
	/* flip one byte of the preserved copy in the data file */
	cr_assert_eq(pread(store_data_fd(ch.s), buf, 1, 100), 1);
	buf[0] ^= 0x40;
	cr_assert_eq(pwrite(store_data_fd(ch.s), buf, 1, 100), 1);
	cr_assert_eq(cow_read_snapshot(ch.c, s1, buf, 512, 0), -EIO);
	cr_assert_eq(cow_read_snapshot(ch.c, s1, buf, 512, CS), 512,
		     "other chunks still read");
}

Test(cow, writes_past_the_end_fail_and_straddling_ones_are_short)
{
	unsigned char buf[8192] = { 1 };

	chain_init(&ch, 64 * 1024 + 4096, CS, DURABILITY_PROCESS);
	cr_assert_eq(cow_write_live(ch.c, buf, 8192, 64 * 1024), 4096);
	cr_assert_eq(cow_write_live(ch.c, buf, 10, 68 * 1024), -ENOSPC);
	cr_assert_eq(cow_read_live(ch.c, buf, 8192, 64 * 1024), 4096);
}

Test(cow, seek_finds_data_and_holes_of_live_and_snapshots)
{
	int64_t s1;

	chain_init(&ch, 1 << 20, CS, DURABILITY_PROCESS);
	write_pattern(4 * CS, CS, 1); /* data only in chunk 4 */
	s1 = snap();
	write_pattern(10 * CS, CS, 2); /* live gains chunk 10 */
	write_pattern(4 * CS, CS, 3); /* chunk 4 preserved for s1 */

	cr_assert_eq(cow_seek(ch.c, 0, 0, SEEK_DATA), 4 * CS);
	cr_assert_eq(cow_seek(ch.c, 0, 5 * CS, SEEK_DATA), 10 * CS);
	cr_assert_eq(cow_seek(ch.c, 0, 11 * CS, SEEK_DATA), -ENXIO);
	cr_assert_eq(cow_seek(ch.c, 0, 4 * CS, SEEK_HOLE), 5 * CS);

	cr_assert_eq(cow_seek(ch.c, s1, 0, SEEK_DATA), 4 * CS);
	cr_assert_eq(cow_seek(ch.c, s1, 4 * CS, SEEK_HOLE), 5 * CS);
	/* chunk 10 is data live but a hole in s1, which reads it from a
	 * zero row */
	cr_assert_eq(cow_seek(ch.c, s1, 5 * CS, SEEK_DATA), -ENXIO);
	cr_assert_eq(cow_seek(ch.c, s1, (1 << 20) - 1, SEEK_HOLE),
		     (1 << 20) - 1);
	cr_assert_eq(cow_seek(ch.c, s1, 1 << 20, SEEK_DATA), -ENXIO);
}

/* The data extents of seq as SEEK_DATA / SEEK_HOLE give them, as
 * "start-end " pairs in units of CS / 4. */
static void layout(int64_t seq, char *out, size_t len)
{
	uint64_t off = 0;
	size_t used = 0;

	out[0] = '\0';
	for (;;) {
		int64_t d = cow_seek(ch.c, seq, off, SEEK_DATA), h;

		if (d == -ENXIO)
			break;
		cr_assert_geq(d, (int64_t)off);
		h = cow_seek(ch.c, seq, (uint64_t)d, SEEK_HOLE);
		cr_assert_gt(h, d);
		used += (size_t)snprintf(out + used, len - used, "%lld-%lld ",
					 (long long)d / (CS / 4),
					 (long long)h / (CS / 4));
		cr_assert_lt(used, len);
		off = (uint64_t)h;
		if (off >= ch.size)
			break;
	}
}

Test(cow, a_snapshots_layout_does_not_change_when_its_chunks_are_preserved)
{
	char before[256], after[256];
	int64_t s1;

	chain_init(&ch, 64 * CS, CS, DURABILITY_PROCESS);
	write_pattern(2 * CS, CS, 1); /* chunk 2: all data */
	write_pattern(5 * CS + CS / 2, CS / 4, 2); /* chunk 5: a quarter */
	write_pattern(63 * CS, CS, 3); /* the last chunk */
	s1 = snap();
	layout(s1, before, sizeof(before));
	/* chunk-granular: chunk 5 is data as a whole */
	cr_assert_str_eq(before, "8-12 20-24 252-256 ");

	write_pattern(10 * CS, CS, 4); /* a hole, preserved as a zero row */
	layout(s1, after, sizeof(after));
	cr_assert_str_eq(after, before, "after a write into a hole");
	write_pattern(5 * CS, CS, 5); /* chunk 5 preserved with its data */
	write_pattern(2 * CS, 2 * CS, 6);
	layout(s1, after, sizeof(after));
	cr_assert_str_eq(after, before, "after overwrites");
	cr_assert_eq(cow_discard(ch.c, 20 * CS, 20 * CS, false), 0); /* holes */
	layout(s1, after, sizeof(after));
	cr_assert_str_eq(after, before, "after a discard of holes");
	cr_assert_eq(cow_discard(ch.c, 0, 64 * CS, false), 0);
	layout(s1, after, sizeof(after));
	cr_assert_str_eq(after, before, "after a discard of everything");
	layout(0, after, sizeof(after));
	cr_assert_str_eq(after, "", "live has no data left");
	/* from inside an extent, the offset itself */
	cr_assert_eq(cow_seek(ch.c, s1, 5 * CS + 7, SEEK_DATA), 5 * CS + 7);
	cr_assert_eq(cow_seek(ch.c, s1, 3 * CS + 7, SEEK_HOLE), 3 * CS + 7);
}

struct writer {
	int id;
	volatile bool *stop;
	int ret;
};

static void *write_loop(void *arg)
{
	struct writer *w = arg;
	unsigned char buf[4096];
	unsigned seed = (unsigned)w->id;

	for (int i = 0; !*w->stop && i < 100000; i++) {
		uint64_t off = (uint64_t)(rand_r(&seed) % 256) * 4096;

		memset(buf, w->id + i, sizeof(buf));
		if (cow_write_live(ch.c, buf, sizeof(buf), off) != 4096) {
			w->ret = -1;
			break;
		}
	}
	return NULL;
}

Test(cow, snapshots_taken_under_concurrent_writes_never_change)
{
	volatile bool stop = false;
	struct writer w[3];
	pthread_t t[3];
	int64_t seqs[8];
	unsigned char *first[8];

	chain_init(&ch, 1 << 20, CS, DURABILITY_PROCESS);
	for (int i = 0; i < 3; i++) {
		w[i] = (struct writer){ i + 1, &stop, 0 };
		pthread_create(&t[i], NULL, write_loop, &w[i]);
	}
	for (int i = 0; i < 8; i++) {
		usleep(2000);
		seqs[i] = snap();
		first[i] = chain_read_all(&ch, seqs[i]);
	}
	usleep(5000);
	stop = true;
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(w[i].ret, 0);
	}
	for (int i = 0; i < 8; i++) {
		unsigned char *again = chain_read_all(&ch, seqs[i]);

		cr_assert_eq(memcmp(first[i], again, 1 << 20), 0,
			     "snapshot %d changed", i);
		free(again);
		free(first[i]);
	}
}

/* First writes after a snapshot are queued behind their preservation:
 * each reads back at once, overlapping ones land in order, the snapshot
 * keeps the old bytes, and the next snapshot holds every one of them. */
Test(cow, queued_first_writes_read_back_at_once_and_land_in_order)
{
	unsigned char *v0, *model, *got, buf[3 * CS];
	int64_t s1, s2;
	unsigned seed = 7;

	chain_init(&ch, 1 << 20, CS, DURABILITY_FULL);
	write_pattern(0, 1 << 20, 1);
	v0 = chain_read_all(&ch, 0);
	model = chain_read_all(&ch, 0);
	s1 = snap();
	for (int i = 0; i < 400; i++) {
		uint64_t off = rand_r(&seed) % ((1 << 20) - sizeof(buf));
		size_t len = 1 + rand_r(&seed) % sizeof(buf);

		fill_pattern(buf, len, 100 + i);
		cr_assert_eq(cow_write_live(ch.c, buf, len, off), (ssize_t)len);
		memcpy(model + off, buf, len);
		cr_assert_eq(cow_read_live(ch.c, buf, len, off), (ssize_t)len);
		cr_assert_eq(memcmp(buf, model + off, len), 0,
			     "write %d does not read back at once", i);
	}
	s2 = snap(); /* the instant holds every write that returned */
	got = chain_read_all(&ch, s2);
	cr_assert_eq(memcmp(got, model, 1 << 20), 0);
	free(got);
	got = chain_read_all(&ch, s1);
	cr_assert_eq(memcmp(got, v0, 1 << 20), 0, "snapshot 1 changed");
	free(got);
	/* and the backing itself, after a flush */
	cr_assert_eq(cow_flush(ch.c), 0);
	got = malloc(1 << 20);
	cr_assert_eq(pread(ch.b.fd, got, 1 << 20, 0), 1 << 20);
	cr_assert_eq(memcmp(got, model, 1 << 20), 0);
	free(got);
	free(model);
	free(v0);
}

/* A queued write that cannot reach the backing is dropped, never half
 * applied over an unpreserved chunk: the next flush and the next
 * snapshot report it once each, and every snapshot keeps its bytes. */
Test(cow, a_dropped_queued_write_is_reported_by_flush_and_snapshot)
{
	unsigned char *v0, *got, buf[CS];
	struct snapshot s;
	int64_t s1;
	int rw, ro;

	chain_init(&ch, 256 * 1024, CS, DURABILITY_FULL);
	write_pattern(0, 256 * 1024, 1);
	v0 = chain_read_all(&ch, 0);
	s1 = snap();
	/* the backing turns read-only under the daemon */
	rw = dup(ch.b.fd);
	ro = open(ch.img, O_RDONLY);
	cr_assert_geq(rw, 0);
	cr_assert_geq(ro, 0);
	cr_assert_eq(dup2(ro, ch.b.fd), ch.b.fd);
	fill_pattern(buf, CS, 9);
	cr_assert_eq(cow_write_live(ch.c, buf, CS, 2 * CS), (ssize_t)CS,
		     "a first write is answered when queued");
	cr_assert_eq(cow_flush(ch.c), -EIO);
	cr_assert_eq(cow_flush(ch.c), 0, "reported once");
	cr_assert_eq(snapshots_create(ch.ss, &s), -EIO,
		     "no instant holds the dropped write");
	cr_assert_eq(dup2(rw, ch.b.fd), ch.b.fd);
	close(rw);
	close(ro);
	got = chain_read_all(&ch, 0);
	cr_assert_eq(memcmp(got, v0, 256 * 1024), 0, "the write was dropped");
	free(got);
	got = chain_read_all(&ch, s1);
	cr_assert_eq(memcmp(got, v0, 256 * 1024), 0, "snapshot 1 changed");
	free(got);
	cr_assert_eq(snapshots_create(ch.ss, &s), 0, "reported once");
	free(v0);
}

/*
 * Each open file of live.img holds an error cursor, as with the page
 * cache's errseq_t: a dropped queued write is told at fsync once to every
 * file open when it was dropped, and to a file opened later as long as no
 * fsync has reported it.  A close tells a file that was open when it was
 * dropped, and leaves its cursor where it is (a child that closes an
 * inherited descriptor does not take the report from the parent's
 * fsync).  The daemon's stop hears only of a drop nobody was told of.
 */
Test(cow, a_dropped_write_is_told_as_the_page_cache_tells_write_back_errors)
{
	unsigned char buf[CS];
	uint64_t writer, other, late, after;
	int rw, ro;

	chain_init(&ch, 256 * 1024, CS, DURABILITY_FULL);
	write_pattern(0, 256 * 1024, 1);
	snap();
	writer = cow_error_mark(ch.c);
	other = cow_error_mark(ch.c);
	rw = dup(ch.b.fd);
	ro = open(ch.img, O_RDONLY);
	cr_assert_geq(rw, 0);
	cr_assert_geq(ro, 0);
	cr_assert_eq(dup2(ro, ch.b.fd), ch.b.fd);
	fill_pattern(buf, CS, 9);
	cr_assert_eq(cow_write_live(ch.c, buf, CS, 2 * CS), (ssize_t)CS);
	/* a read of the chunk waits for the queued write: dropped by now */
	cr_assert_eq(cow_read_live(ch.c, buf, CS, 2 * CS), (ssize_t)CS);
	cr_assert_eq(cow_close_error(ch.c, &other, true), -EIO,
		     "a close of a file open when it was dropped");
	cr_assert_eq(cow_close_error(ch.c, &other, true), -EIO,
		     "a close leaves the cursor");
	late = cow_error_mark(ch.c);
	cr_assert_eq(cow_close_error(ch.c, &late, true), 0,
		     "a close tells only files open when it was dropped");
	cr_assert_eq(cow_fsync(ch.c, &late), -EIO,
		     "opened after the drop, which no fsync had reported");
	cr_assert_eq(cow_fsync(ch.c, &late), 0, "told once");
	after = cow_error_mark(ch.c);
	cr_assert_eq(cow_fsync(ch.c, &after), 0,
		     "opened after an fsync reported it");
	cr_assert_eq(cow_close_error(ch.c, &after, true), 0);
	cr_assert_eq(cow_fsync(ch.c, &other), -EIO,
		     "its closes did not take its fsync's report");
	cr_assert_eq(cow_fsync(ch.c, &writer), -EIO);
	cr_assert_eq(cow_fsync(ch.c, &writer), 0, "told once");
	cr_assert_eq(cow_close_error(ch.c, &writer, true), 0,
		     "told at its fsync");
	cr_assert_eq(cow_flush(ch.c), 0, "the stop hears of what was told");
	/* a second drop, while late is open */
	cr_assert_eq(cow_write_live(ch.c, buf, CS, 3 * CS), (ssize_t)CS);
	cr_assert_eq(cow_read_live(ch.c, buf, CS, 3 * CS), (ssize_t)CS);
	cr_assert_eq(cow_close_error(ch.c, &late, true), -EIO,
		     "open when the second was dropped");
	cr_assert_eq(cow_flush(ch.c), 0, "the stop hears of what was told");
	/* a third drop that no file hears of */
	cr_assert_eq(cow_write_live(ch.c, buf, CS, 1 * CS), (ssize_t)CS);
	cr_assert_eq(cow_flush(ch.c), -EIO, "the stop hears of the untold");
	cr_assert_eq(cow_flush(ch.c), 0);
	cr_assert_eq(dup2(rw, ch.b.fd), ch.b.fd);
	close(rw);
	close(ro);
}

/*
 * A discard that fails part-way returns its error with the pieces before
 * the failing one already punched: each was preserved first, so the
 * snapshot keeps every byte, but live.img holds a prefix of the discard.
 * Here the second 64 MiB piece (cow.c's DISCARD_PIECE) fails at its
 * fallocate (fault backing.discard, second pass).
 */
#ifdef SNAPFS_FAULT_INJECTION
static bool is_zero_buf(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}
#endif

Test(cow, a_discard_that_fails_part_way_has_punched_the_pieces_before)
{
#ifdef SNAPFS_FAULT_INJECTION
	const uint64_t piece = 64ull << 20;
	unsigned char a[4096], b[4096], got[4096];
	int64_t s1;

	chain_init(&ch, 2 * piece, 1u << 20, DURABILITY_PROCESS);
	fill_pattern(a, sizeof(a), 21);
	fill_pattern(b, sizeof(b), 22);
	cr_assert_eq(cow_write_live(ch.c, a, sizeof(a), 0), (ssize_t)sizeof(a));
	cr_assert_eq(cow_write_live(ch.c, b, sizeof(b), piece),
		     (ssize_t)sizeof(b));
	s1 = snap();
	cr_assert_eq(setenv("SNAPFS_FAULT", "backing.discard:2:EIO", 1), 0);
	cr_assert_eq(fault_init(), 0);
	cr_assert_eq(cow_discard(ch.c, 0, 2 * piece, false), -EIO);
	cr_assert_eq(cow_read_live(ch.c, got, sizeof(got), 0),
		     (ssize_t)sizeof(got));
	cr_assert(is_zero_buf(got, sizeof(got)), "the first piece is punched");
	cr_assert_eq(cow_read_live(ch.c, got, sizeof(got), piece),
		     (ssize_t)sizeof(got));
	cr_assert_eq(memcmp(got, b, sizeof(b)), 0, "the second is not");
	cr_assert_eq(cow_read_snapshot(ch.c, s1, got, sizeof(got), 0),
		     (ssize_t)sizeof(got));
	cr_assert_eq(memcmp(got, a, sizeof(a)), 0, "the snapshot changed");
	cr_assert_eq(cow_read_snapshot(ch.c, s1, got, sizeof(got), piece),
		     (ssize_t)sizeof(got));
	cr_assert_eq(memcmp(got, b, sizeof(b)), 0, "the snapshot changed");
#else
	cr_skip_test("built without --enable-fault-injection");
#endif
}
