/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cbtview.h - what snapfsctl shows of the change bitmaps: totals per
 * generation and a one-line map, read from MOUNTPOINT/cbt like any
 * backup script would.
 */
#ifndef SNAPFS_CBTVIEW_H
#define SNAPFS_CBTVIEW_H

#include <stddef.h>
#include <stdint.h>

/* One bitmap file, cbt/GEN.bitmap. */
struct cbt_file {
	uint64_t gen;
	uint64_t nblocks;
	uint32_t block_size;
	uint8_t *bits; /* ceil(nblocks / 8) bytes, block i is bit i%8 of i/8 */
};

/* Generations with a bitmap under mnt, ascending.  0 or -errno; caller
 * frees *gens. */
int cbtview_generations(const char *mnt, uint64_t **gens, size_t *n);

/* Reads cbt/GEN.bitmap and its extended attributes.  0, or -errno with a
 * message in err. */
int cbtview_load(const char *mnt, uint64_t gen, struct cbt_file *out, char *err,
		 size_t err_len);

void cbtview_free(struct cbt_file *f);

/* ORs src into dst (same image). */
void cbtview_or(struct cbt_file *dst, const struct cbt_file *src);

/* Bytes (clipped to image_size) and extents (runs of set blocks). */
void cbtview_totals(const struct cbt_file *f, uint64_t image_size,
		    uint64_t *bytes, uint64_t *extents);

/*
 * Fills out[0..width) with one character per slice of the image, by how
 * much of the slice changed: ' ' nothing, then ".:-=+*#" up to '@' for
 * all of it.  Any change shows: a slice with one changed block is '.'.
 */
void cbtview_map(const struct cbt_file *f, char *out, size_t width);

#endif
