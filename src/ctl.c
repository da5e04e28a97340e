// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * ctl.c - the daemon's side of the control channel.
 *
 * Owns the socket STORE/control and one thread that accepts connections
 * and serves them one at a time: a request is a single line, the reply is
 * written and the connection closed.  Requests are few and short (create,
 * delete, list, status), so one thread is enough and gives a total order.
 *
 * Access: the peer's credentials (SO_PEERCRED) must be root or the user
 * that mounted, the only ones who may write live.img; a read-only mount
 * refuses create.  The store directory is 0700 besides.
 *
 * A group snapshot (snapfsctl create M1 M2 ...) keeps its connection
 * instead (ctl.h): from "hold" to "commit" or "abort" this thread holds
 * every write of the mount (snapshots_hold) and serves nothing else, so
 * other requests wait for it, at most the group's timeout.  The client
 * holds every mount before it takes any snapshot, and takes every one
 * before it commits any, so the instants overlap.  A client that goes
 * away, says anything out of order, or is silent until the timeout (from
 * the hold) counts as abort: the snapshot taken is deleted, writes go
 * on, and status shows a "group" event; nothing is left behind and
 * writes are never held longer than the timeout.  A daemon that stops in
 * between drops the snapshot at its next mount (snapshot.c).  What no
 * daemon can close alone, without a coordinator's log: a client killed
 * between its commit to one daemon and to the next leaves the committed
 * snapshots (the others time out); snapfsctl writes its commits back to
 * back to keep that window small.
 *
 * The socket is bound through /proc/self/fd/DIRFD so that a store path of
 * any length works.  A stale socket from a killed daemon is replaced: the
 * store lock proves no other daemon owns it.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "snapfs/cbt.h"
#include "snapfs/ctl.h"
#include "snapfs/daemon.h"
#include "snapfs/log.h"
#include "snapfs/resize.h"
#include "snapfs/revert.h"
#include "snapfs/snapshot.h"
#include "snapfs/store.h"
#include "snapfs/uuid.h"
#include "fullio.h"
#include "util_time.h"

#define EVENTS_SHOWN 20

struct ctl {
	struct daemon *d;
	int fd;
	int stop_fd; /* an eventfd, readable once ctl_stop began */
	pthread_t thread;
};

static void iso_time(int64_t ns, char out[32])
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Writes s as a JSON string. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static int cmd_create(struct daemon *d, FILE *out)
{
	struct snapshot snap;
	int r;

	if (d->opts.ro)
		return -EROFS;
	r = snapshots_create(d->snaps, &snap);
	if (r)
		return r;
	fprintf(out, "ok\n%s\n", snap.uuid);
	return 0;
}

/* delete [--keep-bookmark] UUID...: snapshots (kept as bookmarks), or
 * bookmarks (without the flag). */
static int cmd_delete(struct daemon *d, char **args, int nargs, FILE *out,
		      char *msg, size_t msg_len)
{
	bool keep = nargs > 0 && !strcmp(args[0], "--keep-bookmark");
	int r;

	if (keep) {
		args++;
		nargs--;
	}
	if (nargs < 1) {
		snprintf(msg, msg_len, "delete needs a snapshot uuid");
		return -EINVAL;
	}
	for (int i = 0; i < nargs; i++)
		if (!uuid_valid(args[i])) {
			snprintf(msg, msg_len, "'%s' is not a snapshot uuid",
				 args[i]);
			return -EINVAL;
		}
	for (int i = 0; i < nargs; i++) {
		r = snapshots_delete(d->snaps, args[i], keep);
		if (r == -ENOENT && !keep)
			r = snapshots_delete_bookmark(d->snaps, args[i]);
		if (r) {
			snprintf(msg, msg_len, "snapshot %s: %s", args[i],
				 r == -ENOENT	? keep ? "no such snapshot"
						       : "no such snapshot or "
							 "bookmark"
				 : r == -EEXIST ? "a bookmark already"
						: strerror(-r));
			return r;
		}
	}
	fputs("ok\n", out);
	return 0;
}

/* Prints the byte extents whose blocks are set in bits, OFFSET LENGTH a
 * line (the client makes --json of them, with what it reads). */
static void print_extents(struct daemon *d, const uint8_t *bits, uint64_t size,
			  FILE *out)
{
	uint64_t bs = cbt_block_size(d->cbt), nblocks = (size + bs - 1) / bs;
	uint64_t i = 0;

	while (i < nblocks) {
		uint64_t start, off, len;

		if (!(bits[i / 8] >> (i % 8) & 1)) {
			/* skip clear bytes whole */
			i = bits[i / 8] ? i + 1 : (i / 8 + 1) * 8;
			continue;
		}
		start = i;
		while (i < nblocks && (bits[i / 8] >> (i % 8) & 1))
			i++;
		off = start * bs;
		len = i * bs > size ? size - off : (i - start) * bs;
		fprintf(out, "%" PRIu64 " %" PRIu64 "\n", off, len);
	}
}

/* changed FROM TO|-: the extents changed from snapshot (or bookmark) FROM to
 * snapshot TO (or to now), the OR of bitmaps FROM.gen+1 .. TO.gen. */
static int cmd_changed(struct daemon *d, char **args, int nargs, FILE *out,
		       char *msg, size_t msg_len)
{
	struct snapshot from, to;
	uint64_t last, nbytes = cbt_bitmap_bytes(d->cbt);
	uint64_t size = __atomic_load_n(&d->backing.size, __ATOMIC_ACQUIRE);
	uint8_t *acc, *one;
	int r;

	if (nargs != 2) {
		snprintf(msg, msg_len, "changed needs FROM TO|-");
		return -EINVAL;
	}
	if (snapshots_find_since(d->snaps, args[0], &from, &(bool){ false })) {
		snprintf(msg, msg_len,
			 "--from %s: no such snapshot or bookmark", args[0]);
		return -ENOENT;
	}
	last = cbt_open_generation(d->cbt);
	if (strcmp(args[1], "-")) {
		if (snapshots_find(d->snaps, args[1], &to)) {
			snprintf(msg, msg_len, "--to %s: no such snapshot",
				 args[1]);
			return -ENOENT;
		}
		if (to.generation < from.generation) {
			snprintf(msg, msg_len,
				 "--to %s was taken before --from %s", args[1],
				 args[0]);
			return -EINVAL;
		}
		last = to.generation;
		size = to.size; /* what live.img became since is not in it */
	}
	acc = calloc(nbytes ? nbytes : 1, 1);
	if (!acc)
		return -ENOMEM;
	for (uint64_t g = from.generation + 1; g <= last; g++) {
		r = cbt_render(d->cbt, g, &one);
		if (r == -ENOENT) {
			snprintf(msg, msg_len,
				 "the bitmap of generation %llu was dropped "
				 "(cbt_keep): take a full copy",
				 (unsigned long long)g);
		}
		if (r) {
			free(acc);
			return r;
		}
		for (uint64_t i = 0; i < nbytes; i++)
			acc[i] |= one[i];
		free(one);
	}
	fputs("ok\n", out);
	print_extents(d, acc, size, out);
	free(acc);
	return 0;
}

static int cmd_list(struct daemon *d, bool json, FILE *out)
{
	struct snapshot *v;
	uint64_t *bytes;
	size_t n;
	int r;

	r = snapshots_list(d->snaps, &v, &n);
	if (r)
		return r;
	bytes = calloc(n ? n : 1, sizeof(*bytes));
	r = bytes ? snapshots_diff_bytes(d->snaps, v, n, bytes) : -ENOMEM;
	if (r)
		goto out;
	fputs("ok\n", out);
	if (!json)
		fputs("uuid created generation diff_bytes\n", out);
	else
		fputc('[', out);
	for (size_t i = 0; i < n; i++) {
		char when[32];

		iso_time(v[i].created_ns, when);
		if (!json) {
			fprintf(out, "%s %s %" PRIu64 " %" PRIu64 "\n",
				v[i].uuid, when, v[i].generation, bytes[i]);
			continue;
		}
		fprintf(out,
			"%s\n  {\"uuid\": \"%s\", \"created\": \"%s\", "
			"\"generation\": %" PRIu64 ", \"size\": %" PRIu64
			", \"diff_bytes\": %" PRIu64 "}",
			i ? "," : "", v[i].uuid, when, v[i].generation,
			v[i].size, bytes[i]);
	}
	if (json)
		fputs(n ? "\n]\n" : "]\n", out);
out:
	free(bytes);
	free(v);
	return r;
}

/* bookmarks: uuid, created, generation each, oldest first. */
static int cmd_bookmarks(struct daemon *d, bool json, FILE *out)
{
	struct snapshot *v;
	size_t n;
	int r = snapshots_bookmarks(d->snaps, &v, &n);

	if (r)
		return r;
	fputs(json ? "ok\n[" : "ok\nuuid created generation\n", out);
	for (size_t i = 0; i < n; i++) {
		char when[32];

		iso_time(v[i].created_ns, when);
		if (json)
			fprintf(out,
				"%s\n  {\"uuid\": \"%s\", \"created\": \"%s\", "
				"\"generation\": %" PRIu64 "}",
				i ? "," : "", v[i].uuid, when, v[i].generation);
		else
			fprintf(out, "%s %s %" PRIu64 "\n", v[i].uuid, when,
				v[i].generation);
	}
	if (json)
		fputs(n ? "\n]\n" : "]\n", out);
	free(v);
	return 0;
}

static int cmd_status(struct daemon *d, bool json, FILE *out)
{
	const struct store_info *si = store_info(d->store);
	struct store_event *ev = NULL;
	struct snapshot *snaps = NULL, *bms = NULL;
	struct store_generation *gens = NULL;
	size_t nev = 0, nsnaps = 0, nbms = 0, ngens = 0, shown = 0;
	const char *dur =
		d->opts.durability == DURABILITY_FULL ? "full" : "process";
	const char *onfull = d->opts.on_full == ON_FULL_DROP_OLDEST
				     ? "drop-oldest"
				     : "fail-writes";
	uint64_t used = store_bytes_used(d->store), rdone = 0, rtotal = 0;
	char ruuid[37] = "";
	bool reverting = revert_resuming(d, ruuid, &rdone, &rtotal);
	int r;

	r = snapshots_list(d->snaps, &snaps, &nsnaps);
	if (!r)
		r = snapshots_bookmarks(d->snaps, &bms, &nbms);
	if (!r)
		r = store_list_events(d->store, EVENTS_SHOWN, &ev, &nev);
	if (!r)
		r = cbt_list_generations(d->cbt, &gens, &ngens);
	if (r)
		goto out;
	fputs("ok\n", out);
	if (json) {
		fputs("{\"backing\": ", out);
		json_str(out, d->backing.path);
		fputs(", \"store\": ", out);
		json_str(out, d->store_path);
		fprintf(out,
			", \"size\": %" PRIu64 ", \"chunk_size\": %u, "
			"\"cbt_block_size\": %u, \"generation\": %" PRIu64
			", \"snapshots\": %zu, \"bookmarks\": %zu, "
			"\"diff_bytes\": %" PRIu64 ", \"diff_max\": %" PRIu64
			", \"on_full\": \"%s\", "
			"\"durability\": \"%s\", \"read_only\": %s, "
			"\"clean_shutdown\": %s, \"reverting\": ",
			d->backing.size, si->chunk_size, si->cbt_block_size,
			si->generation, nsnaps, nbms, used, d->opts.diff_max,
			onfull, dur, d->opts.ro ? "true" : "false",
			si->prev_clean ? "true" : "false");
		if (reverting)
			fprintf(out,
				"{\"uuid\": \"%s\", \"done\": %" PRIu64
				", \"total\": %" PRIu64 "}",
				ruuid, rdone, rtotal);
		else
			fputs("null", out);
		fputs(", \"generations\": [", out);
		for (size_t i = 0; i < ngens; i++) {
			char when[32];

			if (gens[i].dropped)
				continue;
			iso_time(gens[i].opened_ns, when);
			fprintf(out,
				"%s{\"generation\": %" PRIu64
				", \"opened\": \"%s\", \"closed_by\": ",
				shown++ ? ", " : "", gens[i].gen, when);
			if (gens[i].closed_by[0])
				json_str(out, gens[i].closed_by);
			else
				fputs("null", out);
			fputs(", \"reason\": ", out);
			json_str(out, gens[i].reason);
			fputs(", \"widened\": ", out);
			if (gens[i].widened[0])
				json_str(out, gens[i].widened);
			else
				fputs("null", out);
			fputc('}', out);
		}
		fputs("], \"events\": [", out);
		for (size_t i = 0; i < nev; i++) {
			char when[32];

			iso_time(ev[i].time_ns, when);
			fprintf(out, "%s{\"time\": \"%s\", \"kind\": ",
				i ? ", " : "", when);
			json_str(out, ev[i].kind);
			fputs(", \"detail\": ", out);
			json_str(out, ev[i].detail);
			fputc('}', out);
		}
		fputs("]}\n", out);
		goto out;
	}
	fprintf(out,
		"backing:         %s\n"
		"store:           %s\n"
		"size:            %" PRIu64 " bytes\n"
		"chunk_size:      %u\n"
		"cbt_block_size:  %u\n"
		"generation:      %" PRIu64 " (open)\n"
		"snapshots:       %zu\n"
		"bookmarks:       %zu\n"
		"diff_bytes:      %" PRIu64 "\n",
		d->backing.path, d->store_path, d->backing.size, si->chunk_size,
		si->cbt_block_size, si->generation, nsnaps, nbms, used);
	if (d->opts.diff_max)
		fprintf(out, "diff_max:        %" PRIu64 " (on_full=%s)\n",
			d->opts.diff_max, onfull);
	else
		fprintf(out, "diff_max:        0 (no limit, on_full=%s)\n",
			onfull);
	if (reverting)
		fprintf(out,
			"reverting:       to %s, an interrupted revert "
			"(%" PRIu64 " of %" PRIu64 " bytes)\n",
			ruuid, rdone, rtotal);
	fprintf(out,
		"durability:      %s\n"
		"read_only:       %s\n"
		"clean_shutdown:  %s\n"
		"generations:\n",
		dur, d->opts.ro ? "yes" : "no",
		si->prev_clean ? "yes" : "no (the previous run was cut off)");
	for (size_t i = 0; i < ngens; i++) {
		char when[32];

		if (gens[i].dropped)
			continue;
		iso_time(gens[i].opened_ns, when);
		fprintf(out, "  %" PRIu64 " opened %s (%s), %s%s\n",
			gens[i].gen, when, gens[i].reason,
			gens[i].closed_by[0] ? "closed by " : "open",
			gens[i].closed_by);
		if (gens[i].widened[0])
			fprintf(out, "    all ones: %s\n", gens[i].widened);
	}
	fprintf(out, "events:%s\n", nev ? "" : "          none");
	for (size_t i = 0; i < nev; i++) {
		char when[32];

		iso_time(ev[i].time_ns, when);
		fprintf(out, "  %s %s: %s\n", when, ev[i].kind, ev[i].detail);
	}
out:
	free(ev);
	free(snaps);
	free(bms);
	free(gens);
	return r;
}

/* Splits line into words in place; returns the count (at most max). */
static int split_words(char *line, char **words, int max)
{
	int n = 0;
	char *save = NULL;

	for (char *w = strtok_r(line, " \t\r\n", &save); w && n < max;
	     w = strtok_r(NULL, " \t\r\n", &save))
		words[n++] = w;
	return n;
}

/* Whether a peer with uid peer may control this mount: root or the user
 * who mounted, the only ones who may write live.img. */
static bool peer_may_control(uid_t peer)
{
	return peer == 0 || peer == getuid();
}

/* A revert's progress, as lines to the client while it runs. */
static void revert_progress(void *arg, uint64_t done, uint64_t total)
{
	int fd = *(int *)arg;
	char line[64];
	int n = snprintf(line, sizeof(line),
			 "progress %" PRIu64 " %" PRIu64 "\n", done, total);

	if (fd >= 0 && write_full(fd, line, (size_t)n))
		log_warn("ctl: revert: the client went away (the revert goes "
			 "on)");
}

static int cmd_revert(struct daemon *d, char **args, int nargs, int fd,
		      FILE *out, char *msg, size_t msg_len)
{
	int r;

	if (nargs != 1 || !uuid_valid(args[0])) {
		snprintf(msg, msg_len,
			 nargs == 1 ? "'%s' is not a snapshot uuid"
				    : "revert needs one snapshot "
				      "uuid",
			 nargs ? args[0] : "");
		return -EINVAL;
	}
	r = revert_run(d, args[0], revert_progress, &fd, msg, msg_len);
	if (!r)
		fprintf(out, "ok\n");
	return r;
}

static int cmd_resize(struct daemon *d, char **args, int nargs, FILE *out,
		      char *msg, size_t msg_len)
{
	unsigned long long size;
	char *end;
	int r;

	errno = 0;
	size = nargs == 1 ? strtoull(args[0], &end, 10) : 0;
	if (nargs != 1 || errno || *end || !size || args[0][0] == '-') {
		snprintf(msg, msg_len, "resize needs a size in bytes");
		return -EINVAL;
	}
	r = resize_run(d, size, msg, msg_len);
	if (!r)
		fprintf(out, "ok\n");
	return r;
}

/* Whether request word w changes snapshots or live.img. */
static bool is_change(const char *w)
{
	return !strcmp(w, "create") || !strcmp(w, "delete") ||
	       !strcmp(w, "revert") || !strcmp(w, "resize") ||
	       !strcmp(w, "hold");
}

/* Whether a revert an earlier run began is being finished (msg says so):
 * nothing changes snapshots or live.img meanwhile. */
static bool busy_reverting(struct daemon *d, char *msg, size_t msg_len)
{
	uint64_t done, total;
	char uuid[37];

	if (!revert_resuming(d, uuid, &done, &total))
		return false;
	snprintf(msg, msg_len,
		 "finishing an interrupted revert to %s (%" PRIu64
		 " of %" PRIu64
		 " bytes): try again when status no longer shows it",
		 uuid, done, total);
	return true;
}

/* ctl_handle; fd, when not -1, is the client's connection, for a long
 * request's progress lines. */
static int handle(struct daemon *d, uid_t peer, const char *line, int fd,
		  char **reply, size_t *len)
{
	char *copy = strndup(line, CTL_MAX_REQUEST), *words[64];
	char msg[256] = "";
	FILE *out;
	int n, r;

	*reply = NULL;
	out = open_memstream(reply, len);
	if (!copy || !out) {
		free(copy);
		if (out)
			fclose(out);
		free(*reply);
		return -ENOMEM;
	}
	n = split_words(copy, words, 64);
	if (n && is_change(words[0]) && busy_reverting(d, msg, sizeof(msg))) {
		r = -EBUSY;
	} else if (!peer_may_control(peer)) {
		r = -EACCES;
		snprintf(msg, sizeof(msg),
			 "only root or the user who mounted may control this "
			 "mount");
	} else if (n == 0) {
		r = -EINVAL;
		snprintf(msg, sizeof(msg), "empty request");
	} else if (!strcmp(words[0], "create") && n == 1) {
		r = cmd_create(d, out);
		if (r == -EROFS)
			snprintf(msg, sizeof(msg),
				 "live.img is mounted read-only");
	} else if (!strcmp(words[0], "delete")) {
		r = cmd_delete(d, words + 1, n - 1, out, msg, sizeof(msg));
	} else if (!strcmp(words[0], "changed")) {
		r = cmd_changed(d, words + 1, n - 1, out, msg, sizeof(msg));
	} else if (!strcmp(words[0], "bookmarks") && n == 1) {
		r = cmd_bookmarks(d, false, out);
	} else if (!strcmp(words[0], "bookmarks-json") && n == 1) {
		r = cmd_bookmarks(d, true, out);
	} else if (!strcmp(words[0], "list") && n == 1) {
		r = cmd_list(d, false, out);
	} else if (!strcmp(words[0], "list-json") && n == 1) {
		r = cmd_list(d, true, out);
	} else if (!strcmp(words[0], "revert")) {
		r = cmd_revert(d, words + 1, n - 1, fd, out, msg, sizeof(msg));
	} else if (!strcmp(words[0], "resize")) {
		r = cmd_resize(d, words + 1, n - 1, out, msg, sizeof(msg));
	} else if (!strcmp(words[0], "status") && n == 1) {
		r = cmd_status(d, false, out);
	} else if (!strcmp(words[0], "status-json") && n == 1) {
		r = cmd_status(d, true, out);
	} else if (!strcmp(words[0], "hold") || !strcmp(words[0], "take") ||
		   !strcmp(words[0], "commit") || !strcmp(words[0], "abort")) {
		r = -EINVAL;
		snprintf(msg, sizeof(msg),
			 "'%s' belongs to a group's connection, which begins "
			 "with hold",
			 words[0]);
	} else {
		r = -EINVAL;
		snprintf(msg, sizeof(msg), "unknown request '%.64s'", words[0]);
	}
	fclose(out);
	free(copy);
	if (!r)
		return 0;
	/* Whatever a failed command began to write is dropped. */
	free(*reply);
	n = asprintf(reply, "error %d %s\n", -r, msg[0] ? msg : strerror(-r));
	if (n < 0) {
		*reply = NULL;
		return -ENOMEM;
	}
	*len = (size_t)n;
	return 0;
}

int ctl_handle(struct daemon *d, uid_t peer, const char *line, char **reply,
	       size_t *len)
{
	return handle(d, peer, line, -1, reply, len);
}

/* One side of a group's conversation: lines in, by a deadline. */
struct group_conn {
	int fd;
	int stop_fd;
	char buf[128]; /* what came after the last line read */
	size_t got;
};

/*
 * Reads the next line of gc (its newline dropped) into line[0..len) by
 * deadline (mono_ns).  0, -ETIMEDOUT, -ECONNRESET (the peer closed or
 * failed), -ESHUTDOWN (the daemon stops) or -EPROTO (a line too long).
 */
static int group_read_line(struct group_conn *gc, int64_t deadline, char *line,
			   size_t len)
{
	for (;;) {
		struct pollfd pfd[2] = { { .fd = gc->fd, .events = POLLIN },
					 { .fd = gc->stop_fd,
					   .events = POLLIN } };
		char *nl = memchr(gc->buf, '\n', gc->got);
		int64_t left;
		ssize_t n;

		if (nl) {
			size_t l = (size_t)(nl - gc->buf);

			if (l >= len)
				return -EPROTO;
			memcpy(line, gc->buf, l);
			line[l] = '\0';
			gc->got -= l + 1;
			memmove(gc->buf, nl + 1, gc->got);
			return 0;
		}
		if (gc->got == sizeof(gc->buf))
			return -EPROTO;
		left = deadline - mono_ns();
		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(pfd, 2, (int)((left + 999999) / 1000000));
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue; /* the deadline is looked at again */
		if (pfd[1].revents)
			return -ESHUTDOWN;
		n = read(gc->fd, gc->buf + gc->got, sizeof(gc->buf) - gc->got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -ECONNRESET;
		gc->got += (size_t)n;
	}
}

/* Sends one line of a group's conversation.  The peer may be gone: what
 * it fails to read, it learns from the connection's end. */
static void group_reply(int fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void group_reply(int fd, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	/* a short line fits the socket's buffer whole */
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n)
		log_debug("ctl: group: a reply was not sent (the client went "
			  "away)");
}

/*
 * Serves a group's connection, whose first line, "hold TIMEOUT_MS", is
 * buf[0..got) with what followed it: holds every write, takes the
 * snapshot on "take", keeps it on "commit" and lets writes go.  Anything
 * else ends the hold and deletes what was taken (see the note above).
 */
static void serve_group(struct ctl *c, int fd, uid_t peer, char *buf,
			size_t got)
{
	struct daemon *d = c->d;
	struct group_conn gc = { .fd = fd, .stop_fd = c->stop_fd };
	char *nl = memchr(buf, '\n', got), *words[3], *end;
	char line[64], why[96] = "", busy[224];
	struct snapshot snap;
	unsigned long ms = 0;
	bool taken = false, aborted = false;
	int64_t deadline;
	int n, r;

	if (nl) {
		*nl = '\0';
		gc.got = got - (size_t)(nl + 1 - buf);
	}
	n = split_words(buf, words, 3);
	if (n == 2) {
		errno = 0;
		ms = strtoul(words[1], &end, 10);
		if (*end || errno || words[1][0] == '-')
			ms = 0;
	}
	if (!peer_may_control(peer)) {
		group_reply(fd,
			    "error %d only root or the user who mounted "
			    "may control this mount\n",
			    EACCES);
		return;
	}
	if (d->opts.ro) {
		group_reply(fd, "error %d live.img is mounted read-only\n",
			    EROFS);
		return;
	}
	if (busy_reverting(d, busy, sizeof(busy))) {
		group_reply(fd, "error %d %s\n", EBUSY, busy);
		return;
	}
	if (n != 2 || ms < 1 || ms > CTL_HOLD_MAX_MS ||
	    gc.got > sizeof(gc.buf)) {
		group_reply(fd, "error %d hold needs a timeout of 1 to %u ms\n",
			    EINVAL, CTL_HOLD_MAX_MS);
		return;
	}
	if (gc.got)
		memcpy(gc.buf, nl + 1, gc.got);

	/* From here every write waits: the clock runs from the hold. */
	deadline = mono_ns() + (int64_t)ms * 1000000;
	snapshots_hold(d->snaps);
	group_reply(fd, "ok held\n");
	for (;;) {
		r = group_read_line(&gc, deadline, line, sizeof(line));
		if (r == -ETIMEDOUT)
			snprintf(why, sizeof(why),
				 "no commit within %lu ms of the hold", ms);
		else if (r == -ESHUTDOWN)
			snprintf(why, sizeof(why), "the daemon is stopping");
		else if (r == -EPROTO)
			snprintf(why, sizeof(why),
				 "the client sent a line too long");
		else if (r)
			snprintf(why, sizeof(why),
				 "the client went away before commit");
		if (r)
			break;
		if (!taken && !strcmp(line, "take")) {
			r = snapshots_take_held(d->snaps, true, &snap);
			if (r) {
				/* nothing taken; snapshot.c logged why */
				group_reply(fd,
					    "error %d cannot take the "
					    "snapshot: %s\n",
					    -r, strerror(-r));
				break;
			}
			taken = true;
			group_reply(fd, "ok %s\n", snap.uuid);
			continue;
		}
		if (taken && !strcmp(line, "commit")) {
			r = snapshots_unhold(d->snaps, true);
			if (!r) {
				group_reply(fd, "ok\n");
				return;
			}
			group_reply(fd,
				    "error %d snapshot %s could not be kept: "
				    "%s\n",
				    -r, snap.uuid, strerror(-r));
			snprintf(why, sizeof(why), "it could not be kept: %s",
				 strerror(-r));
			goto dropped;
		}
		if (!strcmp(line, "abort")) {
			aborted = true;
			snprintf(why, sizeof(why),
				 "the client aborted the group");
			break;
		}
		group_reply(fd, "error %d '%.32s' out of order in a group\n",
			    EPROTO, line);
		snprintf(why, sizeof(why),
			 "the client sent '%.32s' out of order", line);
		break;
	}
	snapshots_unhold(d->snaps, false);
	if (aborted) /* what was taken is gone: the client may go on */
		group_reply(fd, "ok\n");
	if (!taken) {
		if (why[0])
			log_info("ctl: group: writes held, then let go "
				 "without a snapshot: %s",
				 why);
		return;
	}
dropped:
	/* the event is logged too */
	store_add_event(d->store, "group", "snapshot %s dropped: %s", snap.uuid,
			why);
}

/* Serves one connection: read a line, answer it, close (or, for a group,
 * serve_group). */
static void serve(struct ctl *c, int fd)
{
	char buf[CTL_MAX_REQUEST + 1];
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct timeval tv = { .tv_sec = 5 };
	size_t got = 0, len = 0;
	char *reply = NULL;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0)
		return;
	while (got < CTL_MAX_REQUEST && !memchr(buf, '\n', got)) {
		ssize_t n = read(fd, buf + got, CTL_MAX_REQUEST - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	if (strcspn(buf, " \t\r\n") == 4 && !strncmp(buf, "hold", 4)) {
		serve_group(c, fd, cred.uid, buf, got);
		return;
	}
	if (handle(c->d, cred.uid, buf, fd, &reply, &len))
		return;
	if (write_full(fd, reply, len))
		log_warn("ctl: a reply was cut short (the client went away)");
	free(reply);
}

static void *ctl_thread(void *arg)
{
	struct ctl *c = arg;

	for (;;) {
		int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break; /* shut down */
		}
		serve(c, fd);
		close(fd);
	}
	return NULL;
}

/* Fills addr with the socket's path through the store's descriptor. */
static void socket_addr(const struct daemon *d, struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	snprintf(addr->sun_path, sizeof(addr->sun_path),
		 "/proc/self/fd/%d/" CTL_SOCKET, store_dir_fd(d->store));
}

int ctl_start(struct ctl **out, struct daemon *d)
{
	struct ctl *c = calloc(1, sizeof(*c));
	struct sockaddr_un addr;
	int r;

	if (!c)
		return -ENOMEM;
	c->d = d;
	c->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (c->stop_fd < 0) {
		r = -errno;
		goto err;
	}
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		r = -errno;
		goto err_stop;
	}
	unlinkat(store_dir_fd(d->store), CTL_SOCKET, 0);
	socket_addr(d, &addr);
	if (bind(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(c->fd, 16) < 0) {
		r = -errno;
		goto err_close;
	}
	r = -pthread_create(&c->thread, NULL, ctl_thread, c);
	if (r)
		goto err_unlink;
	*out = c;
	return 0;
err_unlink:
	unlinkat(store_dir_fd(d->store), CTL_SOCKET, 0);
err_close:
	close(c->fd);
err_stop:
	close(c->stop_fd);
err:
	log_error("ctl: cannot serve %s/%s: %s", d->store_path, CTL_SOCKET,
		  strerror(-r));
	free(c);
	return r;
}

void ctl_stop(struct ctl *c)
{
	if (!c)
		return;
	/* wakes a group's conversation (which lets its writes go), then
	 * the accept */
	if (write(c->stop_fd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
		log_warn("ctl: cannot wake the control thread: %s",
			 strerror(errno));
	shutdown(c->fd, SHUT_RDWR);
	pthread_join(c->thread, NULL);
	close(c->fd);
	close(c->stop_fd);
	unlinkat(store_dir_fd(c->d->store), CTL_SOCKET, 0);
	free(c);
}
