// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * options.c - the command line of snapfs.
 *
 * Owns the grammar of `snapfs [-f] [-d] [-o OPT[,OPT...]] BACKING
 * MOUNTPOINT`, with -o lists allowed anywhere (mount(8) and mount.fuse3
 * put them after the operands).  Words are sorted into three sets: the
 * contract's own options, FUSE mount options forwarded verbatim, and
 * mount(8) bookkeeping words (auto, nofail, x-systemd.*, ...) that have no
 * meaning for a FUSE daemon and are dropped.  Anything else is an error,
 * so a typo never mounts with a default the user did not ask for.
 *
 * Pure parsing: no I/O, no FUSE, safe to fuzz.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapfs/options.h"

/* FUSE options handed to the mount unchanged. */
static const char *const fuse_flag_words[] = {
	"allow_other", "allow_root", "auto_unmount", "default_permissions",
	"dev",	       "nodev",	     "suid",	     "nosuid",
	"exec",	       "noexec",     "atime",	     "noatime",
	"sync",	       "async",	     "dirsync",	     NULL,
};
static const char *const fuse_value_words[] = {
	"fsname=",
	"subtype=",
	"max_read=",
	NULL,
};
/* mount(8) and fstab words that a FUSE daemon has no use for. */
static const char *const dropped_words[] = {
	"rw",	    "defaults",	   "auto",	 "noauto",	"user",
	"nouser",   "users",	   "owner",	 "group",	"_netdev",
	"nofail",   "relatime",	   "norelatime", "strictatime", "nostrictatime",
	"diratime", "nodiratime",  "lazytime",	 "nolazytime",	"loud",
	"silent",   "nosymfollow", NULL,
};
static const char *const dropped_prefixes[] = {
	"x-", "comment=", "helper=", "context=", NULL,
};

static bool in_list(const char *w, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(w, *list))
			return true;
	return false;
}

static bool has_prefix_in(const char *w, const char *const *list)
{
	for (; *list; list++)
		if (!strncmp(w, *list, strlen(*list)))
			return true;
	return false;
}

int options_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	const char *p = s;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	switch (*p) {
	case '\0':
		break;
	case 'K':
	case 'k':
		mul = 1ull << 10;
		p++;
		break;
	case 'M':
	case 'm':
		mul = 1ull << 20;
		p++;
		break;
	case 'G':
	case 'g':
		mul = 1ull << 30;
		p++;
		break;
	case 'T':
	case 't':
		mul = 1ull << 40;
		p++;
		break;
	default:
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

bool options_unit_valid(uint64_t v)
{
	return v >= OPT_MIN_UNIT && v <= OPT_MAX_UNIT && !(v & (v - 1));
}

static int append_fuse_opt(struct snapfs_options *opts, const char *w)
{
	size_t old = opts->fuse_opts ? strlen(opts->fuse_opts) : 0;
	char *n = realloc(opts->fuse_opts, old + strlen(w) + 2);

	if (!n)
		return -ENOMEM;
	if (old)
		n[old++] = ',';
	strcpy(n + old, w);
	opts->fuse_opts = n;
	return 0;
}

static int set_string(char **dst, const char *v)
{
	char *s = strdup(v);

	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static int parse_unit(const char *name, const char *v, uint32_t *out, char *err,
		      size_t err_len)
{
	uint64_t n;

	if (options_parse_size(v, &n) || !options_unit_valid(n)) {
		snprintf(err, err_len,
			 "%s=%s: must be a power of two from 4K to 1M", name,
			 v);
		return -EINVAL;
	}
	*out = (uint32_t)n;
	return 0;
}

/* Applies one word of an -o list. */
static int parse_word(struct snapfs_options *opts, const char *w, char *err,
		      size_t err_len)
{
	const char *eq = strchr(w, '=');
	const char *v = eq ? eq + 1 : NULL;
	size_t klen = eq ? (size_t)(eq - w) : strlen(w);
	uint64_t n;
	int r;

#define KEY_IS(k) (klen == strlen(k) && !strncmp(w, k, klen))
	if (KEY_IS("store") && v) {
		if (!*v) {
			snprintf(err, err_len, "store=: needs a directory");
			return -EINVAL;
		}
		return set_string(&opts->store, v);
	}
	if (KEY_IS("chunk_size") && v)
		return parse_unit("chunk_size", v, &opts->chunk_size, err,
				  err_len);
	if (KEY_IS("cbt_block_size") && v)
		return parse_unit("cbt_block_size", v, &opts->cbt_block_size,
				  err, err_len);
	if (KEY_IS("diff_max") && v) {
		r = options_parse_size(v, &n);
		if (r) {
			snprintf(err, err_len,
				 "diff_max=%s: not a size (bytes, or a number "
				 "with K, M, G or T)",
				 v);
			return -EINVAL;
		}
		opts->diff_max = n;
		return 0;
	}
	if (KEY_IS("on_full") && v) {
		if (!strcmp(v, "drop-oldest"))
			opts->on_full = ON_FULL_DROP_OLDEST;
		else if (!strcmp(v, "fail-writes"))
			opts->on_full = ON_FULL_FAIL_WRITES;
		else {
			snprintf(err, err_len,
				 "on_full=%s: must be drop-oldest or "
				 "fail-writes",
				 v);
			return -EINVAL;
		}
		return 0;
	}
	if (KEY_IS("durability") && v) {
		if (!strcmp(v, "full"))
			opts->durability = DURABILITY_FULL;
		else if (!strcmp(v, "process"))
			opts->durability = DURABILITY_PROCESS;
		else {
			snprintf(err, err_len,
				 "durability=%s: must be full or process", v);
			return -EINVAL;
		}
		return 0;
	}
	if (KEY_IS("log_level") && v) {
		static const char *const names[] = { "error", "warn", "info",
						     "debug" };
		size_t i;

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcmp(v, names[i]))
				break;
		if (i == sizeof(names) / sizeof(names[0])) {
			snprintf(err, err_len,
				 "log_level=%s: must be error, warn, info or "
				 "debug",
				 v);
			return -EINVAL;
		}
		opts->log_level = (enum log_level)i;
		return 0;
	}
	if (KEY_IS("cbt_keep") && v) {
		char *end;
		unsigned long k;

		errno = 0;
		k = strtoul(v, &end, 10);
		if (*v < '0' || *v > '9' || *end || errno || k < 1 ||
		    k > 1000000) {
			snprintf(err, err_len,
				 "cbt_keep=%s: must be a whole number from 1 "
				 "to 1000000",
				 v);
			return -EINVAL;
		}
		opts->cbt_keep = (uint32_t)k;
		return 0;
	}
#undef KEY_IS
	if (!strcmp(w, "ro")) {
		opts->ro = true;
		return 0;
	}
	if (in_list(w, dropped_words) || has_prefix_in(w, dropped_prefixes))
		return 0;
	if (in_list(w, fuse_flag_words) ||
	    (v && *v && has_prefix_in(w, fuse_value_words)))
		return append_fuse_opt(opts, w);
	snprintf(err, err_len, "unknown option '%s'", w);
	return -EINVAL;
}

int options_parse_list(struct snapfs_options *opts, const char *list, char *err,
		       size_t err_len)
{
	char *copy = strdup(list), *save = NULL, *w;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (w = strtok_r(copy, ",", &save); w && !r;
	     w = strtok_r(NULL, ",", &save))
		r = parse_word(opts, w, err, err_len);
	free(copy);
	return r;
}

int options_parse_argv(struct snapfs_options *opts, int argc, char **argv,
		       char *err, size_t err_len)
{
	int i, r, npos = 0;

	memset(opts, 0, sizeof(*opts));
	opts->on_full = ON_FULL_DROP_OLDEST;
	opts->durability = DURABILITY_FULL;
	opts->cbt_keep = OPT_DEFAULT_CBT_KEEP;
	opts->log_level = LOG_LVL_INFO;
	err[0] = '\0';

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-o")) {
			if (++i >= argc) {
				snprintf(err, err_len, "-o needs a value");
				return -EINVAL;
			}
			r = options_parse_list(opts, argv[i], err, err_len);
			if (r)
				return r;
		} else if (!strncmp(a, "-o", 2)) {
			r = options_parse_list(opts, a + 2, err, err_len);
			if (r)
				return r;
		} else if (!strcmp(a, "-f")) {
			opts->foreground = true;
		} else if (!strcmp(a, "-d")) {
			opts->debug = true;
			opts->foreground = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			opts->help = true;
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			opts->version = true;
		} else if (!strcmp(a, "-n") || !strcmp(a, "-s") ||
			   !strcmp(a, "-v")) {
			/* mount(8) helper flags: no mtab, sloppy, verbose */
		} else if (a[0] == '-' && a[1] != '\0') {
			snprintf(err, err_len, "unknown flag '%s'", a);
			return -EINVAL;
		} else if (npos == 0) {
			r = set_string(&opts->backing, a);
			if (r)
				return r;
			npos++;
		} else if (npos == 1) {
			r = set_string(&opts->mountpoint, a);
			if (r)
				return r;
			npos++;
		} else {
			snprintf(err, err_len, "unexpected argument '%s'", a);
			return -EINVAL;
		}
	}
	if (!opts->fuse_opts && set_string(&opts->fuse_opts, ""))
		return -ENOMEM;
	if (opts->help || opts->version)
		return 0;
	if (npos < 2) {
		snprintf(err, err_len,
			 "usage: snapfs [-f] [-d] [-o OPTION[,OPTION...]] "
			 "BACKING MOUNTPOINT");
		return -EINVAL;
	}
	return 0;
}

void options_free(struct snapfs_options *opts)
{
	free(opts->backing);
	free(opts->mountpoint);
	free(opts->store);
	free(opts->fuse_opts);
	memset(opts, 0, sizeof(*opts));
}
