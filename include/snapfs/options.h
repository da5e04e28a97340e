/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * options.h - the daemon's command line, parsed without FUSE.
 *
 * Every -o word is either a snapfs option, an ordinary FUSE option (kept
 * in fuse_opts for the mount), a mount(8) word with no meaning here
 * (accepted and dropped), or an error.
 */
#ifndef SNAPFS_OPTIONS_H
#define SNAPFS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapfs/log.h"

enum on_full { ON_FULL_DROP_OLDEST, ON_FULL_FAIL_WRITES };
enum durability { DURABILITY_FULL, DURABILITY_PROCESS };

#define OPT_DEFAULT_CHUNK_SIZE 4096u
#define OPT_DEFAULT_CBT_BLOCK_SIZE (64u * 1024)
#define OPT_MIN_UNIT (4u * 1024)
#define OPT_MAX_UNIT (1024u * 1024)
#define OPT_DEFAULT_CBT_KEEP 64

struct snapfs_options {
	char *backing;
	char *mountpoint;
	char *store; /* NULL: BACKING.snapfs */
	uint32_t chunk_size; /* 0: the store's, or the default */
	uint32_t cbt_block_size; /* 0: the store's, or the default */
	uint64_t diff_max; /* 0: no limit */
	enum on_full on_full;
	enum durability durability;
	uint32_t cbt_keep;
	bool ro;
	enum log_level log_level; /* log_level=, -d: debug */
	bool foreground;
	bool debug;
	bool help;
	bool version;
	char *fuse_opts; /* comma list for the mount, never NULL after parse */
};

/*
 * Parses a SIZE: digits with an optional K, M, G or T suffix (powers of
 * 1024).  Returns 0 and *out, or -EINVAL (malformed) or -ERANGE (overflow).
 */
int options_parse_size(const char *s, uint64_t *out);

/*
 * Applies one comma-separated -o list to opts.  On error returns -EINVAL
 * and writes one line naming the bad word into err.
 */
int options_parse_list(struct snapfs_options *opts, const char *list, char *err,
		       size_t err_len);

/*
 * Parses the whole command line (argv[0] excluded from meaning).  Returns
 * 0, or -EINVAL with one line in err.  Caller frees with options_free().
 */
int options_parse_argv(struct snapfs_options *opts, int argc, char **argv,
		       char *err, size_t err_len);

/* Releases the strings of opts. */
void options_free(struct snapfs_options *opts);

/* True when v is a power of two in [OPT_MIN_UNIT, OPT_MAX_UNIT]. */
bool options_unit_valid(uint64_t v);

#endif
