// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * export.c - snapfsctl export-diff: the Ceph RBD incremental stream.
 *
 * The format (Ceph's doc/dev/rbd-diff.rst, version 1), all integers
 * little-endian:
 *
 *   "rbd diff v1\n"
 *   'f' le32 len, name      from-snapshot (absent: from an empty image)
 *   't' le32 len, name      to-snapshot
 *   's' le64 size           the image's size at the to-snapshot
 *   'w' le64 off, le64 len, len bytes    data
 *   'z' le64 off, le64 len               zeros
 *   'e'                                  end
 *
 * Data records come in increasing offset order and never overlap (rbd
 * merge-diff relies on both).  The names are snapfs's snapshot uuids, so
 * a chain of streams joins where one's to-snapshot is the next one's
 * from-snapshot.  Each extent is read from the snapshot image a piece of
 * EXPORT_PIECE at a time and cut into ZERO_UNIT blocks: runs of blocks
 * that read as zeros (discarded, zeroed, or never written) are 'z'
 * records, the rest 'w' records of at most a piece.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapfs/export.h"
#include "fullio.h"
#include "zero.h"

#define EXPORT_PIECE (4u << 20)
#define ZERO_UNIT 4096u

struct stream {
	int fd;
	unsigned char hdr[32];
	/* a 'z' record waiting for the zeros that follow it */
	uint64_t z_off, z_len;
};

static void le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static int put(struct stream *st, const void *p, size_t n)
{
	return write_full(st->fd, p, n);
}

/* A record of tag and a name: 'f' or 't'. */
static int put_name(struct stream *st, char tag, const char *name)
{
	size_t n = strlen(name);
	int r;

	st->hdr[0] = (unsigned char)tag;
	le32(st->hdr + 1, (uint32_t)n);
	r = put(st, st->hdr, 5);
	return r ? r : put(st, name, n);
}

/* A record of tag and two le64: 'w' (its data follows) or 'z'. */
static int put_extent(struct stream *st, char tag, uint64_t off, uint64_t len)
{
	st->hdr[0] = (unsigned char)tag;
	le64(st->hdr + 1, off);
	le64(st->hdr + 9, len);
	return put(st, st->hdr, 17);
}

static int flush_zeros(struct stream *st)
{
	int r = 0;

	if (st->z_len)
		r = put_extent(st, 'z', st->z_off, st->z_len);
	st->z_len = 0;
	return r;
}

static int zeros(struct stream *st, uint64_t off, uint64_t len)
{
	int r = 0;

	if (st->z_len && st->z_off + st->z_len != off)
		r = flush_zeros(st);
	if (!st->z_len)
		st->z_off = off;
	st->z_len += len;
	return r;
}

static int data(struct stream *st, uint64_t off, const unsigned char *p,
		size_t len)
{
	int r = flush_zeros(st);

	if (!r)
		r = put_extent(st, 'w', off, len);
	return r ? r : put(st, p, len);
}

/* One extent of the source, read and cut into 'w' and 'z' records. */
static int put_range(struct stream *st, int src, uint64_t off, uint64_t len,
		     unsigned char *buf, struct progress *p)
{
	while (len) {
		size_t n = len < EXPORT_PIECE ? (size_t)len : EXPORT_PIECE;
		int r = pread_full(src, buf, n, (off_t)off);
		size_t i = 0;

		if (r)
			return r;
		while (i < n && !r) {
			size_t u = n - i < ZERO_UNIT ? n - i : ZERO_UNIT;
			bool z = all_zero(buf + i, u);
			size_t j = i + u;

			/* the run of units of the same kind */
			while (j < n) {
				size_t v =
					n - j < ZERO_UNIT ? n - j : ZERO_UNIT;

				if (all_zero(buf + j, v) != z)
					break;
				j += v;
			}
			r = z ? zeros(st, off + i, j - i)
			      : data(st, off + i, buf + i, j - i);
			i = j;
		}
		if (r)
			return r;
		off += n;
		len -= n;
		progress_add(p, n);
	}
	return 0;
}

int export_diff_run(const struct export_job *job, char *err, size_t err_len)
{
	struct stream st = { .fd = STDOUT_FILENO };
	struct backup_extent *owned = NULL;
	const struct backup_extent *ext = job->extents;
	size_t next = job->nextents;
	unsigned char *buf = NULL;
	char tmp[4200] = "";
	struct progress p;
	uint64_t size, total = 0;
	int src, r;

	src = backup_open_source(job->source, &size, err, err_len);
	if (src < 0) {
		r = src;
		goto out;
	}
	if (!job->since) {
		r = backup_data_extents(src, size, &owned, &next);
		if (r) {
			snprintf(err, err_len, "%s: %s", job->source,
				 strerror(-r));
			goto out;
		}
		ext = owned;
	}
	buf = malloc(EXPORT_PIECE);
	if (!buf) {
		r = -ENOMEM;
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	if (job->dest) {
		snprintf(tmp, sizeof(tmp), "%s.partial", job->dest);
		st.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			     0600);
		if (st.fd < 0) {
			r = -errno;
			tmp[0] = 0;
			snprintf(err, err_len, "%s: %s", job->dest,
				 strerror(-r));
			goto out;
		}
	}
	for (size_t i = 0; i < next; i++)
		total += ext[i].len;
	progress_start(&p, job->dest ? job->progress : PROGRESS_OFF, "exported",
		       total);
	r = put(&st, "rbd diff v1\n", 12);
	if (!r && job->since)
		r = put_name(&st, 'f', job->since);
	if (!r)
		r = put_name(&st, 't', job->uuid);
	if (!r) {
		st.hdr[0] = 's';
		le64(st.hdr + 1, size);
		r = put(&st, st.hdr, 9);
	}
	for (size_t i = 0; i < next && !r; i++)
		r = put_range(&st, src, ext[i].off, ext[i].len, buf, &p);
	if (!r)
		r = flush_zeros(&st);
	if (!r)
		r = put(&st, "e", 1);
	if (!r && job->dest && fsync(st.fd) < 0)
		r = -errno;
	if (!r && job->dest && rename(tmp, job->dest) < 0)
		r = -errno;
	if (r) {
		snprintf(err, err_len, "export to %s: %s",
			 job->dest ? job->dest : "standard output",
			 strerror(-r));
		goto out;
	}
	tmp[0] = 0; /* renamed */
	progress_end(&p);
out:
	if (tmp[0])
		unlink(tmp);
	if (job->dest && st.fd >= 0)
		close(st.fd);
	free(buf);
	free(owned);
	if (src >= 0)
		close(src);
	return r;
}
