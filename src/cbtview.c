// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * cbtview.c - totals and a map of the change bitmaps, for snapfsctl.
 *
 * Works on the files of the mounted tree (cbt/GEN.bitmap and their
 * user.snapfs.* attributes), the same interface backup scripts use, so
 * what it shows is what they get.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "snapfs/cbtview.h"
#include "array.h"

int cbtview_generations(const char *mnt, uint64_t **gens, size_t *n)
{
	char path[4096];
	struct dirent *e;
	uint64_t *v = NULL;
	size_t cnt = 0, cap = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/cbt", mnt);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char *end;
		unsigned long long g = strtoull(e->d_name, &end, 10);

		if (end == e->d_name || strcmp(end, ".bitmap"))
			continue;
		if (cnt == cap) {
			uint64_t *nv = realloc(v, (cap = cap ? 2 * cap : 16) *
							  sizeof(*v));

			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[cnt++] = g;
	}
	closedir(d);
	qsort(v, cnt, sizeof(*v), array_cmp_u64);
	*gens = v;
	*n = cnt;
	return 0;
}

static int xattr_u64(const char *path, const char *name, uint64_t *out)
{
	char buf[32];
	ssize_t n = getxattr(path, name, buf, sizeof(buf) - 1);
	char *end;

	if (n <= 0)
		return n < 0 ? -errno : -EINVAL;
	buf[n] = '\0';
	*out = strtoull(buf, &end, 10);
	return *end ? -EINVAL : 0;
}

int cbtview_load(const char *mnt, uint64_t gen, struct cbt_file *out, char *err,
		 size_t err_len)
{
	char path[4096];
	uint64_t bs = 0, len, got = 0;
	int fd, r;

	memset(out, 0, sizeof(*out));
	out->gen = gen;
	snprintf(path, sizeof(path), "%s/cbt/%llu.bitmap", mnt,
		 (unsigned long long)gen);
	r = xattr_u64(path, "user.snapfs.blocks", &out->nblocks);
	if (!r)
		r = xattr_u64(path, "user.snapfs.block_size", &bs);
	if (r) {
		snprintf(err, err_len, "%s: %s", path, strerror(-r));
		return r;
	}
	out->block_size = (uint32_t)bs;
	len = (out->nblocks + 7) / 8;
	out->bits = calloc(len ? len : 1, 1);
	if (!out->bits)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, err_len, "%s: %s", path, strerror(-r));
		cbtview_free(out);
		return r;
	}
	while (got < len) {
		ssize_t n = read(fd, out->bits + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			snprintf(err, err_len, "%s: %s", path,
				 n < 0 ? strerror(errno)
				       : "shorter than its "
					 "blocks");
			break;
		}
		got += (uint64_t)n;
	}
	close(fd);
	if (r)
		cbtview_free(out);
	return r;
}

void cbtview_free(struct cbt_file *f)
{
	free(f->bits);
	f->bits = NULL;
}

void cbtview_or(struct cbt_file *dst, const struct cbt_file *src)
{
	uint64_t len = (dst->nblocks + 7) / 8;

	for (uint64_t i = 0; i < len && src->nblocks == dst->nblocks; i++)
		dst->bits[i] |= src->bits[i];
}

static int bit(const struct cbt_file *f, uint64_t i)
{
	return (f->bits[i / 8] >> (i % 8)) & 1;
}

void cbtview_totals(const struct cbt_file *f, uint64_t image_size,
		    uint64_t *bytes, uint64_t *extents)
{
	uint64_t b = 0, x = 0;

	for (uint64_t i = 0; i < f->nblocks; i++) {
		uint64_t start = i * f->block_size, end;

		if (!bit(f, i))
			continue;
		end = start + f->block_size;
		b += (end > image_size ? image_size : end) - start;
		x += i == 0 || !bit(f, i - 1);
	}
	*bytes = b;
	*extents = x;
}

void cbtview_map(const struct cbt_file *f, char *out, size_t width)
{
	static const char shade[] = " .:-=+*#@";
	const size_t levels = sizeof(shade) - 2; /* beyond ' ' */

	for (size_t c = 0; c < width; c++) {
		uint64_t lo = f->nblocks * c / width;
		uint64_t hi = f->nblocks * (c + 1) / width;
		uint64_t set = 0;

		if (hi == lo && lo < f->nblocks)
			hi = lo + 1; /* more columns than blocks */
		for (uint64_t i = lo; i < hi; i++)
			set += bit(f, i);
		if (!set)
			out[c] = shade[0];
		else if (set == hi - lo)
			out[c] = shade[levels];
		else
			out[c] = shade[1 + (set * (levels - 1)) / (hi - lo)];
	}
}
