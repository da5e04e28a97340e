// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * backup.c - snapfsctl backup.
 *
 * Owns the copy of a snapshot image into DEST and the sidecar file
 * DEST.snapfs-backup that records what DEST holds:
 *
 *   snapfs-backup 1
 *   uuid <uuid>
 *   state complete|incomplete
 *
 * The sidecar is written "incomplete" (and synced) before the first byte
 * of DEST changes and "complete" only after DEST is fsync'd, so an
 * interrupted backup never looks like a good copy, and `--since` refuses
 * a DEST that does not hold exactly the snapshot it names.  A sidecar
 * (not an xattr) works the same for files and block devices.
 *
 * A full copy into a file is sparse: the snapshot's holes (SEEK_HOLE) and
 * all-zero pieces are left unwritten in a file truncated to the image's
 * size.  A block device gets every byte, since its old contents are
 * unknown.  An incremental copy writes the changed extents; zero pieces of
 * a file become holes (punched).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <time.h>
#include <unistd.h>

#include "snapfs/backup.h"
#include "snapfs/progress.h"
#include "fullio.h"
#include "zero.h"

#define PIECE (1u << 20)

static void sidecar_path(const char *dest, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", dest, BACKUP_SIDECAR_SUFFIX);
}

static int write_sidecar(const char *dest, const char *uuid, bool complete)
{
	char path[4200], tmp[4210];
	FILE *f;
	int r = 0;

	sidecar_path(dest, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "snapfs-backup 1\nuuid %s\nstate %s\n", uuid,
		complete ? "complete" : "incomplete");
	if (fflush(f) || fsync(fileno(f)))
		r = -errno;
	if (fclose(f) && !r)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	return r;
}

int backup_read_sidecar(const char *dest, char uuid[37])
{
	char path[4200], line[128], id[64] = "", state[32] = "";
	FILE *f;
	int version = 0;

	sidecar_path(dest, path, sizeof(path));
	f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? -ENOENT : -EINVAL;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "snapfs-backup %d", &version);
		sscanf(line, "uuid %36s", id);
		sscanf(line, "state %31s", state);
	}
	fclose(f);
	if (version != 1 || strlen(id) != 36 || strcmp(state, "complete"))
		return -EINVAL;
	memcpy(uuid, id, 37);
	return 0;
}

int backup_open_source(const char *path, uint64_t *size, char *err,
		       size_t err_len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd >= 0 && fstat(fd, &st) == 0) {
		*size = (uint64_t)st.st_size;
		return fd;
	}
	r = -errno;
	snprintf(err, err_len, "%s: %s", path, strerror(-r));
	if (fd >= 0)
		close(fd);
	return r;
}

/* Copies [off, off+len) from src to dst. */
static int copy_range(int src, int dst, bool dst_is_file, bool punch_zeros,
		      uint64_t off, uint64_t len, unsigned char *buf,
		      struct progress *p)
{
	int r;

	while (len) {
		size_t n = len < PIECE ? (size_t)len : PIECE;
		ssize_t got = pread(src, buf, n, (off_t)off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		n = (size_t)got;
		if (dst_is_file && all_zero(buf, n)) {
			if (punch_zeros &&
			    fallocate(dst,
				      FALLOC_FL_PUNCH_HOLE |
					      FALLOC_FL_KEEP_SIZE,
				      (off_t)off, (off_t)n) < 0 &&
			    (r = pwrite_full(dst, buf, n, (off_t)off)))
				return r;
		} else if ((r = pwrite_full(dst, buf, n, (off_t)off))) {
			return r;
		}
		off += n;
		len -= n;
		progress_add(p, n);
	}
	return 0;
}

int backup_zero(int fd, uint64_t off, uint64_t len, bool *zero)
{
	unsigned char *buf = NULL;
	int r = 0;

	*zero = true;
	while (len && *zero && !r) {
		off_t d = lseek(fd, (off_t)off, SEEK_DATA);
		uint64_t n;

		if (d < 0 && errno == ENXIO)
			break; /* a hole to the end */
		if (d < 0 && errno != EINVAL && errno != EOPNOTSUPP)
			return -errno;
		if (d > (off_t)off) { /* a hole first */
			if ((uint64_t)d - off >= len)
				break;
			len -= (uint64_t)d - off;
			off = (uint64_t)d;
		}
		if (!buf && !(buf = malloc(PIECE)))
			return -ENOMEM;
		n = len < PIECE ? len : PIECE;
		r = pread_full(fd, buf, (size_t)n, (off_t)off);
		if (!r)
			*zero = all_zero(buf, (size_t)n);
		off += n;
		len -= n;
	}
	free(buf);
	return r;
}

int backup_data_extents(int fd, uint64_t size, struct backup_extent **out,
			size_t *n)
{
	struct backup_extent *v = NULL;
	size_t cnt = 0, cap = 0;
	off_t pos = 0;

	while ((uint64_t)pos < size) {
		off_t d = lseek(fd, pos, SEEK_DATA), h;

		if (d < 0) {
			if (errno == ENXIO)
				break;
			if (errno == EINVAL || errno == EOPNOTSUPP) {
				d = pos; /* no hole support: all data */
				h = (off_t)size;
				goto add;
			}
			free(v);
			return -errno;
		}
		h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			h = (off_t)size;
	add:
		if (cnt == cap) {
			struct backup_extent *nv;

			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		v[cnt++] = (struct backup_extent){ (uint64_t)d,
						   (uint64_t)(h - d) };
		pos = h;
	}
	*out = v;
	*n = cnt;
	return 0;
}

int backup_run(const struct backup_job *job, char *err, size_t err_len)
{
	struct backup_extent *owned = NULL, whole;
	const struct backup_extent *ext = job->extents;
	size_t next = job->nextents;
	struct progress p;
	uint64_t total = 0;
	unsigned char *buf = NULL;
	struct stat dst;
	bool is_file = true, exists;
	uint64_t size;
	int src, dfd = -1, r;
	char held[37];

	src = backup_open_source(job->source, &size, err, err_len);
	if (src < 0) {
		r = src;
		goto out;
	}
	exists = stat(job->dest, &dst) == 0;
	if (exists && !S_ISREG(dst.st_mode) && !S_ISBLK(dst.st_mode)) {
		r = -EINVAL;
		snprintf(err, err_len, "%s: not a file or block device",
			 job->dest);
		goto out;
	}
	is_file = !exists || S_ISREG(dst.st_mode);
	if (job->since) {
		r = exists ? backup_read_sidecar(job->dest, held) : -ENOENT;
		if (r || strcmp(held, job->since)) {
			snprintf(
				err, err_len,
				"%s does not hold snapshot %s (%s): run a full "
				"backup first",
				job->dest, job->since,
				r == -ENOENT ? "no backup record beside it"
				: r	     ? "its last backup is incomplete"
					     : "it holds another snapshot");
			r = -EINVAL;
			goto out;
		}
	}
	dfd = open(job->dest, O_WRONLY | O_CLOEXEC | (is_file ? O_CREAT : 0),
		   0600);
	if (dfd < 0) {
		r = -errno;
		snprintf(err, err_len, "%s: %s", job->dest, strerror(-r));
		goto out;
	}
	if (!is_file) {
		uint64_t dev_size = 0;

		if (ioctl(dfd, BLKGETSIZE64, &dev_size) == 0 &&
		    dev_size < size) {
			r = -ENOSPC;
			snprintf(err, err_len,
				 "%s: %" PRIu64
				 " bytes, the snapshot needs %" PRIu64,
				 job->dest, dev_size, size);
			goto out;
		}
	} else if (job->since && (uint64_t)dst.st_size > size) {
		/* images only grow (snapfsctl resize): not this one's copy */
		r = -EINVAL;
		snprintf(err, err_len,
			 "%s: size %lld, the snapshot has %" PRIu64, job->dest,
			 (long long)dst.st_size, size);
		goto out;
	}
	r = write_sidecar(job->dest, job->uuid, false);
	if (r) {
		snprintf(err, err_len, "%s%s: %s", job->dest,
			 BACKUP_SIDECAR_SUFFIX, strerror(-r));
		goto out;
	}
	/* the image grew since OLD: its new range is among the changes */
	if (job->since && is_file && (uint64_t)dst.st_size < size &&
	    ftruncate(dfd, (off_t)size) < 0) {
		r = -errno;
		snprintf(err, err_len, "%s: %s", job->dest, strerror(-r));
		goto out;
	}
	if (!job->since) {
		if (is_file) {
			/* all holes: only data needs writing */
			if (ftruncate(dfd, 0) < 0 ||
			    ftruncate(dfd, (off_t)size) < 0) {
				r = -errno;
				snprintf(err, err_len, "%s: %s", job->dest,
					 strerror(-r));
				goto out;
			}
			r = backup_data_extents(src, size, &owned, &next);
			if (r) {
				snprintf(err, err_len, "%s: %s", job->source,
					 strerror(-r));
				goto out;
			}
			ext = owned;
		} else {
			whole = (struct backup_extent){ 0, size };
			ext = &whole;
			next = 1;
		}
	}
	buf = malloc(PIECE);
	if (!buf) {
		r = -ENOMEM;
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < next; i++)
		total += ext[i].len;
	progress_start(&p, job->progress, "copied", total);
	for (size_t i = 0; i < next && !r; i++)
		r = copy_range(src, dfd, is_file, job->since != NULL,
			       ext[i].off, ext[i].len, buf, &p);
	if (!r && fsync(dfd) < 0)
		r = -errno;
	if (r) {
		snprintf(err, err_len,
			 "copy to %s: %s (left marked incomplete)", job->dest,
			 strerror(-r));
		goto out;
	}
	progress_end(&p);
	r = write_sidecar(job->dest, job->uuid, true);
	if (r)
		snprintf(err, err_len, "%s%s: %s", job->dest,
			 BACKUP_SIDECAR_SUFFIX, strerror(-r));
out:
	free(buf);
	free(owned);
	if (dfd >= 0)
		close(dfd);
	if (src >= 0)
		close(src);
	return r;
}
