// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * store_check.c - the offline check of an unmounted store (snapfsctl
 * check): the index's integrity, its meta, then every preserved copy
 * against the data file (inside it, aligned, not shared, its checksum),
 * in this format or in format 1, which the next mount migrates.  It never
 * writes to the store: it takes a shared flock (refused while a daemon
 * holds the store), and an index a crash left with a WAL is checked on a
 * private copy.  Problems go to the report, one line each.
 *
 * Runs without a struct store and without threads: no lock.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapfs/crc32c.h"
#include "snapfs/options.h"
#include "store_int.h"

/* Prints one problem of a check. */
static void problem(FILE *report, unsigned *count, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void problem(FILE *report, unsigned *count, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("problem: ", report);
	vfprintf(report, fmt, ap);
	fputc('\n', report);
	va_end(ap);
	(*count)++;
}

/* Checks one run's copies against the data file: inside it, aligned,
 * after the previous run's (*prev_end, so that none shares space), each
 * chunk matching its checksum. */
static void check_run(const struct run *run, int data_fd, uint64_t data_size,
		      uint64_t cs, uint32_t zero_crc, uint64_t image_size,
		      unsigned char *buf, int64_t *prev_end, FILE *report,
		      unsigned *bad)
{
	unsigned long long c = run->chunk;
	long long seq = run->seq;

	if ((run->chunk + run->n - 1) * cs >= image_size)
		problem(report, bad,
			"chunks %llu..%llu (seq %lld) lie past the image's end",
			c, c + run->n - 1, seq);
	if (run->data_off < 0)
		return;
	if (!chunk_fits(run->data_off, cs, data_size) ||
	    !chunk_fits(run->data_off + (int64_t)((run->n - 1) * cs), cs,
			data_size)) {
		problem(report, bad,
			"chunks %llu..%llu (seq %lld) point at data offset "
			"%lld, outside the data file or unaligned",
			c, c + run->n - 1, seq, (long long)run->data_off);
		return;
	}
	if (run->data_off < *prev_end)
		problem(report, bad,
			"chunk %llu (seq %lld) shares data offset %lld with "
			"another entry",
			c, seq, (long long)run->data_off);
	*prev_end = run->data_off + (int64_t)(run->n * cs);
	for (uint32_t i = 0; i < run->n; i++) {
		int64_t off = run->data_off + (int64_t)(i * cs);

		if (pread(data_fd, buf, cs, off) != (ssize_t)cs)
			problem(report, bad,
				"chunk %llu (seq %lld): cannot read data "
				"offset %lld",
				c + i, seq, (long long)off);
		else if (crc32c(buf, cs) != run_crc(run, i, zero_crc))
			problem(report, bad,
				"chunk %llu (seq %lld) at data offset %lld "
				"fails its checksum",
				c + i, seq, (long long)off);
	}
}

/* Checks every copy the index names against the data file; format 1's
 * rows are read as runs of one chunk. */
static void check_chunks(sqlite3 *db, uint64_t format, int data_fd,
			 uint64_t data_size, uint64_t cs, uint64_t image_size,
			 FILE *report, unsigned *bad, uint64_t *ncopies)
{
	unsigned char *buf = malloc(cs), *zeros = calloc(1, cs);
	uint32_t zero_crc;
	int64_t prev_end = 0;
	sqlite3_stmt *st;
	int rc;

	if (!buf || !zeros) {
		problem(report, bad, "out of memory");
		goto out;
	}
	zero_crc = crc32c(zeros, cs);
	rc = sqlite3_prepare_v2(db,
				format == 1
					? "SELECT chunk_idx, seq, 1, data_off, "
					  "crc FROM chunks ORDER BY data_off"
					: "SELECT chunk_idx, seq, n, data_off, "
					  "crcs FROM runs ORDER BY data_off",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		problem(report, bad, "cannot read the index of copies: %s",
			sqlite3_errmsg(db));
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint32_t le = htole32((uint32_t)sqlite3_column_int64(st, 4));
		struct run run;

		if (format == 1) {
			run = (struct run){
				.chunk = (uint64_t)sqlite3_column_int64(st, 0),
				.seq = sqlite3_column_int64(st, 1),
				.n = 1,
				.data_off =
					sqlite3_column_type(st, 3) ==
							SQLITE_NULL
						? -1
						: sqlite3_column_int64(st, 3),
				.crcs = (const unsigned char *)&le,
			};
			if (run.data_off < 0 &&
			    sqlite3_column_int64(st, 4) != zero_crc)
				problem(report, bad,
					"zero chunk %llu (seq %lld) has a "
					"wrong checksum",
					(unsigned long long)run.chunk,
					(long long)run.seq);
		} else if (run_read(st, &run)) {
			problem(report, bad,
				"a damaged run at chunk %llu (seq %lld)",
				(unsigned long long)sqlite3_column_int64(st, 0),
				(long long)sqlite3_column_int64(st, 1));
			continue;
		}
		*ncopies += run.n;
		check_run(&run, data_fd, data_size, cs, zero_crc, image_size,
			  buf, &prev_end, report, bad);
	}
	if (rc != SQLITE_DONE)
		problem(report, bad, "index of copies unreadable: %s",
			sqlite3_errmsg(db));
	sqlite3_finalize(st);
out:
	free(buf);
	free(zeros);
}

/* Copies one file; 0 or -1 with errno. */
static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, r = -1;
	ssize_t n;

	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		goto done;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			goto done;
	r = n < 0 ? -1 : 0;
done:
	if (out >= 0)
		close(out);
	close(in);
	return r;
}

/* Copies the index and its WAL of store dir into a new temporary
 * directory, named in tmpdir. */
static int copy_index(const char *dir, char *tmpdir, size_t len)
{
	char from[STORE_PATH_MAX], to[STORE_PATH_MAX];

	snprintf(tmpdir, len, "/tmp/snapfs-check-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		tmpdir[0] = '\0';
		return -1;
	}
	snprintf(from, sizeof(from), "%s/index.db", dir);
	snprintf(to, sizeof(to), "%s/index.db", tmpdir);
	if (copy_file(from, to) < 0)
		return -1;
	snprintf(from, sizeof(from), "%s/index.db-wal", dir);
	snprintf(to, sizeof(to), "%s/index.db-wal", tmpdir);
	return copy_file(from, to);
}

int store_check(const char *dir, FILE *report, char *why, size_t why_len)
{
	char path[STORE_PATH_MAX], tmpdir[64] = "";
	uint64_t cs = 0, image_size = 0, nrows = 0, format = 0;
	unsigned bad = 0;
	sqlite3 *db = NULL;
	sqlite3_stmt *st;
	struct stat dst;
	int dfd, data_fd = -1, rc;
	bool wal;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		snprintf(why, why_len, "store %s: cannot be checked: %s", dir,
			 strerror(-rc));
		return rc;
	}
	if (flock(dfd, LOCK_SH | LOCK_NB) < 0) {
		snprintf(why, why_len,
			 "store %s: cannot be checked: in use by a running "
			 "snapfs daemon: unmount it first",
			 dir);
		close(dfd);
		return -EBUSY;
	}
	snprintf(path, sizeof(path), "%s/index.db", dir);
	wal = index_has_wal(path);
	if (access(path, F_OK) < 0) {
		snprintf(why, why_len,
			 "store %s: cannot be checked: not a snapfs store (no "
			 "index.db)",
			 dir);
		close(dfd);
		return -ENOENT;
	}
	/* A clean store is read without any lock or journal file.  One left
	 * by a crash still has a WAL with frames, read together with the
	 * index (index_open_ro), and SQLite writes a -shm even to read it:
	 * its index is checked on a private copy, so the store itself is
	 * never written. */
	if (wal && copy_index(dir, tmpdir, sizeof(tmpdir)) < 0) {
		problem(report, &bad, "cannot copy the index to check it: %s",
			strerror(errno));
		goto out;
	}
	if (wal)
		snprintf(path, sizeof(path), "%s/index.db", tmpdir);
	rc = index_open_ro(path, &db);
	if (rc != SQLITE_OK) {
		problem(report, &bad, "index cannot be opened: %s",
			db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		problem(report, &bad, "index damaged: %s", sqlite3_errmsg(db));
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(st, 0);

		if (strcmp(line, "ok"))
			problem(report, &bad, "index: %s", line);
	}
	if (rc != SQLITE_DONE)
		problem(report, &bad, "index damaged: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	if (bad)
		goto out;
	if (index_meta_get_u64(db, "format", &format) || format < 1 ||
	    format > STORE_FORMAT) {
		problem(report, &bad,
			"index format %llu, this snapfs reads 1 "
			"to %d",
			(unsigned long long)format, STORE_FORMAT);
		goto out;
	}
	if (index_meta_get_u64(db, "chunk_size", &cs) ||
	    !options_unit_valid(cs) ||
	    index_meta_get_u64(db, "image_size", &image_size) || !image_size) {
		problem(report, &bad,
			"index meta damaged (chunk_size %llu, "
			"image_size %llu)",
			(unsigned long long)cs, (unsigned long long)image_size);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/data", dir);
	data_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (data_fd < 0 || fstat(data_fd, &dst) < 0) {
		problem(report, &bad, "data file: %s", strerror(errno));
		goto out;
	}
	check_chunks(db, format, data_fd, (uint64_t)dst.st_size, cs, image_size,
		     report, &bad, &nrows);
out:
	if (!bad)
		fprintf(report,
			"store %s: ok (%llu preserved chunks checked, chunk "
			"size %llu)\n",
			dir, (unsigned long long)nrows, (unsigned long long)cs);
	else {
		fprintf(report, "store %s: %u problem%s\n", dir, bad,
			bad == 1 ? "" : "s");
		snprintf(why, why_len,
			 "store %s: damaged (%u problem%s, listed on stdout)",
			 dir, bad, bad == 1 ? "" : "s");
	}
	sqlite3_close(db);
	if (tmpdir[0]) {
		static const char *const names[] = { "index.db", "index.db-wal",
						     "index.db-shm" };

		for (size_t i = 0; i < 3; i++) {
			snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
			unlink(path);
		}
		rmdir(tmpdir);
	}
	if (data_fd >= 0)
		close(data_fd);
	close(dfd);
	return bad ? -EIO : 0;
}
