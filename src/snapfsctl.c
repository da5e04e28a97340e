// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * snapfsctl.c - the command-line client.
 *
 * Finds the daemon of a mount point through the root's CTL_XATTR (the
 * store directory, which holds the control socket), sends one request
 * and prints the reply.  `create` first opens live.img for writing (the
 * permission check the contract asks for) and fsyncs it, so pages dirtied
 * through mmap or a loop device reach the daemon before the instant;
 * with --freeze it freezes the named file systems around all of that and
 * thaws them on every path, with the terminal's signals held off
 * meanwhile.  Freezing comes first: it writes the file system's dirty
 * pages through to the daemons, which would wait behind a hold.  With
 * several mount points `create` talks to every daemon at once on a
 * connection each (group_create, and the protocol in ctl.h).
 *
 * Exit status: 0 done, 1 failed (one line on stderr), 2 bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "snapfs/backup.h"
#include "snapfs/export.h"
#include "snapfs/cbtview.h"
#include "snapfs/ctl.h"
#include "snapfs/options.h"
#include "snapfs/progress.h"
#include "snapfs/store.h"
#include "snapfs/uuid.h"

#define FUSE_SUPER_MAGIC 0x65735546
/* How long a group may hold writes by default (create --timeout). */
#define CREATE_TIMEOUT_S 10

/* One command: its synopsis (after "snapfsctl ") and what --help adds. */
struct command {
	const char *name;
	const char *synopsis;
	const char *summary;
	const char *help;
};

static const struct command commands[] = {
	{ "create",
	  "create MOUNTPOINT... [--freeze FSPATH]... [--timeout SECONDS]",
	  "take a snapshot of each mount, at one instant",
	  "Flushes live.img, takes a snapshot and prints its uuid alone.\n"
	  "With several mount points, one snapshot of each at one instant,\n"
	  "their uuids a line each in the order of the mount points; all or\n"
	  "none.\n"
	  "  --freeze FSPATH    freeze the file system mounted at FSPATH (one\n"
	  "                     on live.img, say) around it all; always\n"
	  "                     thawed.  Once for each file system\n"
	  "  --timeout SECONDS  with several mount points, the longest their\n"
	  "                     writes may be held (default 10): past it the\n"
	  "                     daemons drop the group\n" },
	{ "list", "list MOUNTPOINT [--json]", "snapshots, oldest first",
	  "A header, then one snapshot a line: uuid, time taken (UTC),\n"
	  "generation, bytes preserved for it.\n"
	  "  --json  an array of objects instead\n" },
	{ "delete", "delete MOUNTPOINT UUID... [--keep-bookmark]",
	  "delete snapshots or bookmarks",
	  "Deletes the snapshots, like rm on their files; their space is\n"
	  "freed once no reader holds them open.  A bookmark's uuid deletes\n"
	  "the bookmark.\n"
	  "  --keep-bookmark  keep each snapshot's uuid and generation as a\n"
	  "                   bookmark: the older end of changed --from,\n"
	  "                   backup --since, at no cost to writes\n" },
	{ "bookmarks", "bookmarks MOUNTPOINT [--json]",
	  "bookmarks, oldest first",
	  "A header, then one bookmark a line: uuid, time its snapshot was\n"
	  "taken (UTC), generation.\n"
	  "  --json  an array of objects instead\n" },
	{ "status", "status MOUNTPOINT [--json] [--map|--no-map]",
	  "state of the mount and store",
	  "Backing, sizes, open generation, snapshots, diff store use,\n"
	  "durability, last shutdown, generations and recent events.  On a\n"
	  "terminal it ends with a map of the image: one character a slice,\n"
	  "' ' unchanged in the open generation, then .:-=+*# by the share\n"
	  "of its blocks changed, @ all of them.\n"
	  "  --json         one object instead (no map)\n"
	  "  --map          draw the map even when not on a terminal\n"
	  "  --no-map       never draw it\n" },
	{ "changed",
	  "changed MOUNTPOINT --from UUID [--to UUID] [--json] [--summary]",
	  "extents changed since a snapshot",
	  "Byte extents that changed from snapshot (or bookmark) --from to\n"
	  "snapshot --to (or to now): OFFSET LENGTH a line, sorted, merged.\n"
	  "  --json     an array of {offset, length, zero} instead (zero:\n"
	  "             the extent reads as zeros at --to, or now)\n"
	  "  --summary  per generation instead (every kept one without\n"
	  "             --from): changed bytes, extents, share of the image,\n"
	  "             and their union\n" },
	{ "backup",
	  "backup MOUNTPOINT UUID DEST [--since UUID] "
	  "[--progress|--no-progress]",
	  "copy a snapshot, whole or incremental",
	  "Copies snapshot UUID to DEST (file or block device), sparse.\n"
	  "  --since OLD    DEST holds snapshot OLD (or a snapshot since kept\n"
	  "                 as bookmark OLD): write only what changed\n"
	  "  --progress     a progress bar (the default on a terminal)\n"
	  "  --no-progress  none\n" },
	{ "export-diff",
	  "export-diff MOUNTPOINT UUID [--since UUID] [FILE|-] "
	  "[--progress|--no-progress]",
	  "changes as a Ceph RBD diff stream",
	  "Writes the changes from snapshot (or bookmark) --since to snapshot\n"
	  "UUID, or from an empty image without it, as a Ceph RBD diff\n"
	  "stream (rbd diff v1: rbd import-diff applies it, rbd merge-diff\n"
	  "joins a chain), into FILE (whole or untouched) or standard output\n"
	  "(-, the default; refused on a terminal).  Zeros are z records.\n"
	  "  --since OLD    only what changed since OLD\n"
	  "  --progress     a progress bar (the default on a terminal, FILE\n"
	  "                 only)\n"
	  "  --no-progress  none\n" },
	{ "revert", "revert MOUNTPOINT UUID [--progress|--no-progress]",
	  "make live.img a snapshot again",
	  "Makes live.img equal to snapshot UUID, byte for byte, copying\n"
	  "only what changed since it.  Refused while live.img is open (a\n"
	  "loop device counts).  Every snapshot keeps its bytes; what "
	  "live.img\n"
	  "held since the newest snapshot is gone (take a snapshot first to\n"
	  "keep it).  Finished by the next mount if interrupted.\n"
	  "  --progress     a progress bar (the default on a terminal)\n"
	  "  --no-progress  none\n" },
	{ "resize", "resize MOUNTPOINT SIZE", "grow live.img",
	  "Grows live.img to SIZE bytes (K, M, G, T suffixes: powers of\n"
	  "1024) while snapshots exist; they keep their size.  The new range\n"
	  "reads as zeros and counts as changed.  A regular file is extended;\n"
	  "a block device must be that large already.  Never shrinks.\n" },
	{ "check", "check STORE_DIR", "verify an unmounted store",
	  "Checks the index and every preserved chunk of an unmounted store;\n"
	  "prints a report, exits 1 when anything is wrong.\n" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void usage(FILE *f)
{
	fputs("usage: snapfsctl COMMAND ARGS  (snapfsctl COMMAND --help)\n\n",
	      f);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-9s %s\n", commands[i].name,
			commands[i].summary);
	fputs("\nExit status: 0 done, 1 failed, 2 bad usage.  See "
	      "snapfsctl(8).\n",
	      f);
}

static void command_help(const struct command *c)
{
	printf("usage: snapfsctl %s\n\n%s\nExit status: 0 done, 1 failed, "
	       "2 bad usage.  See snapfsctl(8).\n",
	       c->synopsis, c->help);
}

/* One line on stderr: what is wrong, and where help is. */
static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("snapfsctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see snapfsctl --help)\n", stderr);
	return 2;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("snapfsctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

/* The store directory of the daemon serving mnt, into store[0..4096).
 * 0, or 1 after a message. */
static int daemon_store(const char *mnt, char store[4096])
{
	struct statfs sf;
	ssize_t n;

	if (statfs(mnt, &sf) < 0)
		return fail("%s: %s", mnt, strerror(errno));
	n = getxattr(mnt, CTL_XATTR, store, 4095);
	if (sf.f_type != FUSE_SUPER_MAGIC || n <= 0)
		return fail("%s: not a snapfs mount point", mnt);
	store[n] = '\0';
	return 0;
}

/* Connects to the daemon serving mnt; the socket, or -1 after a message. */
static int connect_daemon(const char *mnt)
{
	char store[4096];
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int dfd, fd;

	if (daemon_store(mnt, store))
		return -1;
	dfd = open(store, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		fail("%s: store %s: %s", mnt, store, strerror(errno));
		return -1;
	}
	snprintf(addr.sun_path, sizeof(addr.sun_path),
		 "/proc/self/fd/%d/" CTL_SOCKET, dfd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fail("%s: cannot reach the daemon: %s", mnt, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	close(dfd);
	return fd;
}

/* Takes the "progress DONE TOTAL" lines at the start of buf[0..*len)
 * into p (started at the first), and drops them from buf. */
static void take_progress(char *buf, size_t *len, struct progress *p,
			  enum progress_mode mode)
{
	size_t at = 0;
	char *nl;

	while ((nl = memchr(buf + at, '\n', *len - at)) &&
	       !strncmp(buf + at, "progress ", 9)) {
		unsigned long long done, total;

		*nl = '\0';
		if (sscanf(buf + at, "progress %llu %llu", &done, &total) ==
		    2) {
			if (!p->verb)
				progress_start(p, mode, "copied", total);
			if (done > p->done)
				progress_add(p, done - p->done);
		}
		at = (size_t)(nl - buf) + 1;
	}
	memmove(buf, buf + at, *len - at);
	*len -= at;
}

/*
 * Sends request to the daemon of mnt; on "ok" prints the rest of the reply
 * to stdout (or returns it in *body when body is not NULL).  With p, the
 * progress lines before the reply are shown as mode says.  0, or 1 after
 * a message.
 */
static int request_progress(const char *mnt, const char *req, char **body,
			    struct progress *p, enum progress_mode mode)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap), *nl;
	int fd, err;

	if (!buf)
		return fail("out of memory");
	fd = connect_daemon(mnt);
	if (fd < 0) {
		free(buf);
		return 1;
	}
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req) ||
	    write(fd, "\n", 1) != 1) {
		close(fd);
		free(buf);
		return fail("%s: cannot send the request: %s", mnt,
			    strerror(errno));
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		ssize_t n;

		if (len + 1 >= cap) {
			char *b = realloc(buf, cap *= 2);

			if (!b) {
				close(fd);
				free(buf);
				return fail("out of memory");
			}
			buf = b;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (p)
			take_progress(buf, &len, p, mode);
	}
	close(fd);
	if (p && p->verb)
		progress_end(p);
	buf[len] = '\0';
	nl = strchr(buf, '\n');
	if (!nl) {
		free(buf);
		return fail("%s: the daemon closed the connection", mnt);
	}
	*nl = '\0';
	if (strcmp(buf, "ok")) {
		char *msg = buf;

		if (sscanf(buf, "error %d", &err) == 1) {
			msg = strchr(buf + 6, ' ');
			msg = msg ? msg + 1 : buf;
		}
		fail("%s", msg);
		free(buf);
		return 1;
	}
	if (body) {
		*body = strdup(nl + 1);
	} else {
		fputs(nl + 1, stdout);
	}
	free(buf);
	if (fflush(stdout) != 0)
		return fail("writing output: %s", strerror(errno));
	return 0;
}

static int request(const char *mnt, const char *req, char **body)
{
	return request_progress(mnt, req, body, NULL, PROGRESS_OFF);
}

/* One mount point of a create. */
struct create_mount {
	const char *mnt;
	int live_fd; /* its live.img, open for writing */
	dev_t dev; /* its file system: one mount named twice is refused */
	int sock; /* a group's conversation with its daemon, or -1 */
	char uuid[37];
	bool committed;
};

/* Milliseconds on CLOCK_MONOTONIC, for a group's deadline. */
static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends one line of a group's conversation.  0, or -errno (the daemon
 * went away or ended the conversation). */
static int group_send(const struct create_mount *m, const char *line)
{
	size_t len = strlen(line);

	if (send(m->sock, line, len, MSG_NOSIGNAL) == (ssize_t)len)
		return 0;
	return errno ? -errno : -EIO;
}

/*
 * Reads the daemon's one-line reply (without its newline) into
 * line[0..len), waiting until deadline (mono_ms) at most.  0, -ETIMEDOUT,
 * -ECONNRESET when the daemon closed the connection, or -errno.
 */
static int group_read(const struct create_mount *m, int64_t deadline,
		      char *line, size_t len)
{
	size_t got = 0;

	for (;;) {
		struct pollfd pfd = { .fd = m->sock, .events = POLLIN };
		int64_t left = deadline - mono_ms();
		ssize_t n;
		char ch;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		/* a byte at a time: a reply is one short line, and nothing
		 * after it may be taken */
		n = read(m->sock, &ch, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		if (ch == '\n')
			break;
		if (got + 1 < len)
			line[got++] = ch;
	}
	line[got] = '\0';
	return 0;
}

/*
 * Sends line (NULL: none) to m and reads the reply by deadline.  0 for
 * "ok" (*rest: what follows it), 1 after a message naming the mount and
 * the step.
 */
static int group_step(const struct create_mount *m, const char *step,
		      const char *line, int64_t deadline, char *reply,
		      size_t len, const char **rest)
{
	char *msg;
	int r = line ? group_send(m, line) : 0;

	if (!r)
		r = group_read(m, deadline, reply, len);
	if (r == -ETIMEDOUT)
		return fail("%s: %s: no answer in time (the daemon is busy, "
			    "or --timeout is too short)",
			    m->mnt, step);
	if (r == -ECONNRESET || r == -EPIPE)
		return fail("%s: %s: the daemon ended the conversation (it "
			    "stopped, or its hold timed out)",
			    m->mnt, step);
	if (r)
		return fail("%s: %s: %s", m->mnt, step, strerror(-r));
	if (!strcmp(reply, "ok") || !strncmp(reply, "ok ", 3)) {
		*rest = reply[2] ? reply + 3 : reply + 2;
		return 0;
	}
	msg = reply;
	if (!strncmp(reply, "error ", 6)) {
		msg = strchr(reply + 6, ' ');
		msg = msg ? msg + 1 : reply;
	}
	return fail("%s: %s: %s", m->mnt, step, msg);
}

/* Ends every conversation of m[0..n) still open with abort and waits for
 * the answer: a daemon that took a snapshot has deleted it when this
 * returns (one whose conversation ended otherwise did so itself).
 * Quiet: the failure that led here is what the user is told. */
static void group_abort(struct create_mount *m, int n, int64_t deadline)
{
	char line[256];

	for (int i = 0; i < n; i++)
		if (m[i].sock >= 0 && group_send(&m[i], "abort\n")) {
			close(m[i].sock);
			m[i].sock = -1;
		}
	for (int i = 0; i < n; i++) {
		if (m[i].sock < 0)
			continue;
		if (group_read(&m[i], deadline, line, sizeof(line)) == 0 &&
		    strcmp(line, "ok"))
			fprintf(stderr, "snapfsctl: %s: abort: %s\n", m[i].mnt,
				line);
		close(m[i].sock);
		m[i].sock = -1;
	}
}

/*
 * One snapshot of each of m[0..n) at one instant (the protocol is in
 * ctl.h): hold every mount, take each snapshot, then commit each.  The
 * holds go in the order of the mounts' devices, so that two groups over
 * the same mounts never wait for each other in a circle; the rest in the
 * order of m.  If a hold or a take fails, every mount is told to abort
 * and none keeps a snapshot.
 *
 * The window a two-phase commit without a coordinator's log cannot close:
 * killed between two commits, this leaves the snapshots already
 * committed (the other daemons drop theirs at their timeout).  So the
 * commits are written back to back, with every signal but SIGKILL held
 * off, and their answers read after.  A commit that fails (the daemon
 * stopped or timed out, or could not keep it) makes this delete the
 * snapshots the others kept.  0, or 1 after a message.
 */
static int group_create(struct create_mount *m, int n, unsigned timeout_s)
{
	int64_t deadline = mono_ms() + (int64_t)timeout_s * 1000;
	int *order = malloc((size_t)n * sizeof(*order));
	char line[256], hold[32];
	sigset_t all, old;
	const char *rest;
	int i, sent, r = 0;

	if (!order)
		return fail("out of memory");
	for (i = 0; i < n; i++)
		order[i] = i;
	for (i = 1; i < n; i++) /* by device: a few mounts, insertion */
		for (int j = i; j > 0 && m[order[j - 1]].dev > m[order[j]].dev;
		     j--) {
			int t = order[j];

			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	snprintf(hold, sizeof(hold), "hold %u\n", timeout_s * 1000);
	for (i = 0; i < n && !r; i++) {
		struct create_mount *x = &m[order[i]];

		x->sock = connect_daemon(x->mnt);
		if (x->sock < 0)
			r = 1;
		else
			r = group_step(x, "hold", hold, deadline, line,
				       sizeof(line), &rest);
	}
	for (i = 0; i < n && !r; i++) {
		r = group_step(&m[i], "take", "take\n", deadline, line,
			       sizeof(line), &rest);
		if (!r && !uuid_valid(rest))
			r = fail("%s: take: the daemon answered '%.40s'",
				 m[i].mnt, rest);
		if (!r)
			memcpy(m[i].uuid, rest, sizeof(m[i].uuid));
	}
	free(order);
	if (r) {
		group_abort(m, n, mono_ms() + (int64_t)timeout_s * 1000);
		return r;
	}

	/* For tests only (group.sh): SNAPFSCTL_TEST_STOP_AFTER_TAKE stops the
	 * client here, every mount held and taken, so that a test can kill
	 * it or let the daemons' timeout pass at a known point. */
	if (getenv("SNAPFSCTL_TEST_STOP_AFTER_TAKE"))
		raise(SIGSTOP);

	/* Back to back; a daemon already gone takes no more commits. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	for (sent = 0; sent < n; sent++)
		if (group_send(&m[sent], "commit\n"))
			break;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (sent < n)
		r = fail("%s: commit: the daemon ended the conversation (it "
			 "stopped, or its hold timed out)",
			 m[sent].mnt);
	for (i = 0; i < sent; i++) {
		if (group_step(&m[i], "commit", NULL,
			       mono_ms() + (int64_t)timeout_s * 1000, line,
			       sizeof(line), &rest) == 0)
			m[i].committed = true;
		else
			r = 1;
		close(m[i].sock);
		m[i].sock = -1;
	}
	if (!r)
		return 0;
	group_abort(m, n, mono_ms() + (int64_t)timeout_s * 1000);
	/* Not all kept: those that were must go, for all or nothing. */
	for (i = 0; i < n; i++) {
		char req[64], *body = NULL;

		if (!m[i].committed)
			continue;
		snprintf(req, sizeof(req), "delete %s", m[i].uuid);
		if (request(m[i].mnt, req, &body))
			fprintf(stderr,
				"snapfsctl: %s: snapshot %s of the failed "
				"group is left behind\n",
				m[i].mnt, m[i].uuid);
		free(body);
	}
	return 1;
}

/*
 * create: flushes each mount's live.img and takes a snapshot of each, at
 * one instant (one mount: the one-shot "create" request; several:
 * group_create), the file systems of freeze[0..nfreeze) frozen around
 * it all and always thawed, with every signal held off from the first
 * freeze to the last thaw.  Prints the uuids in the order of m.
 */
static int cmd_create(struct create_mount *m, int n, const char **freeze,
		      int nfreeze, unsigned timeout_s)
{
	char live[4096], *uuid = NULL;
	int *ffd = malloc(((size_t)nfreeze + 1) * sizeof(*ffd));
	int i, frozen = 0, r = 0;
	bool blocked = false;
	sigset_t all, old;
	struct stat st;

	if (!ffd)
		return fail("out of memory");
	for (i = 0; i < nfreeze; i++)
		ffd[i] = -1;
	for (i = 0; i < n; i++)
		m[i].live_fd = m[i].sock = -1;
	for (i = 0; i < n && !r; i++) {
		snprintf(live, sizeof(live), "%s/live.img", m[i].mnt);
		m[i].live_fd = open(live, O_RDWR | O_CLOEXEC);
		if (m[i].live_fd < 0) {
			r = fail("%s: cannot open for writing: %s", live,
				 strerror(errno));
			break;
		}
		if (fstat(m[i].live_fd, &st) < 0) {
			r = fail("%s: %s", live, strerror(errno));
			break;
		}
		m[i].dev = st.st_dev;
		for (int j = 0; j < i && !r; j++)
			if (m[j].dev == m[i].dev)
				r = usage_error("create: %s and %s are the "
						"same mount",
						m[j].mnt, m[i].mnt);
		/* a group checks every mount before it freezes anything */
		if (!r && n > 1)
			r = daemon_store(m[i].mnt, live);
	}
	for (i = 0; i < nfreeze && !r; i++) {
		ffd[i] = open(freeze[i], O_RDONLY | O_CLOEXEC);
		if (ffd[i] < 0)
			r = fail("--freeze %s: %s", freeze[i], strerror(errno));
	}
	if (nfreeze && !r) {
		/* From the first freeze to the last thaw, no signal may
		 * leave one frozen. */
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, &old);
		blocked = true;
		for (; frozen < nfreeze; frozen++)
			if (ioctl(ffd[frozen], FIFREEZE, 0) < 0) {
				r = fail("--freeze %s: cannot freeze: %s",
					 freeze[frozen], strerror(errno));
				break;
			}
	}
	/* Flushed, live.img is closed: a group holds no file of a mount
	 * open while it holds the mount's writes. */
	for (i = 0; i < n; i++) {
		if (!r && fsync(m[i].live_fd) < 0)
			r = fail("%s/live.img: flush: %s", m[i].mnt,
				 strerror(errno));
		if (m[i].live_fd >= 0)
			close(m[i].live_fd);
		m[i].live_fd = -1;
	}
	if (!r && n == 1) {
		r = request(m[0].mnt, "create", &uuid);
		if (!r && uuid)
			snprintf(m[0].uuid, sizeof(m[0].uuid), "%.36s", uuid);
		free(uuid);
	} else if (!r) {
		r = group_create(m, n, timeout_s);
	}
	while (frozen-- > 0)
		if (ioctl(ffd[frozen], FITHAW, 0) < 0 && r == 0)
			r = fail("--freeze %s: cannot thaw: %s", freeze[frozen],
				 strerror(errno));
	if (blocked)
		sigprocmask(SIG_SETMASK, &old, NULL);
	for (i = 0; i < nfreeze; i++)
		if (ffd[i] >= 0)
			close(ffd[i]);
	free(ffd);
	if (r)
		return r;
	for (i = 0; i < n; i++)
		printf("%s\n", m[i].uuid);
	return fflush(stdout) ? fail("writing output: %s", strerror(errno)) : 0;
}

/* Parses "OFFSET LENGTH" lines into extents. */
static int parse_extents(char *text, struct backup_extent **out, size_t *n)
{
	struct backup_extent *v = NULL;
	size_t cnt = 0, cap = 0;
	char *save = NULL;

	for (char *l = strtok_r(text, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		unsigned long long off, len;

		if (sscanf(l, "%llu %llu", &off, &len) != 2)
			continue;
		if (cnt == cap) {
			struct backup_extent *nv;

			cap = cap ? cap * 2 : 256;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		v[cnt++] = (struct backup_extent){ off, len };
	}
	*out = v;
	*n = cnt;
	return 0;
}

/* --progress or --no-progress: 1 when argv[*i] was one, else 0. */
static int progress_flag(char **argv, const int *i, enum progress_mode *mode)
{
	if (!strcmp(argv[*i], "--progress"))
		*mode = PROGRESS_ON;
	else if (!strcmp(argv[*i], "--no-progress"))
		*mode = PROGRESS_OFF;
	else
		return 0;
	return 1;
}

/* backup's and export-diff's shared options: --since OLD, --progress,
 * --no-progress.  1 when argv[*i] was one (and taken), else 0. */
static int copy_option(int argc, char **argv, int *i, const char **since,
		       enum progress_mode *progress)
{
	if (!strcmp(argv[*i], "--since") && *i + 1 < argc)
		*since = argv[++*i];
	else
		return progress_flag(argv, i, progress);
	return 1;
}

/* The extents changed from snapshot (or bookmark) from to snapshot to
 * ("-": now), from the daemon (*ext, caller frees).  0, or the exit
 * status of a failure already reported. */
static int changed_extents(const char *mnt, const char *from, const char *to,
			   struct backup_extent **ext, size_t *n)
{
	char req[128], *body = NULL;
	int r;

	snprintf(req, sizeof(req), "changed %s %s", from, to);
	r = request(mnt, req, &body);
	if (r)
		return r;
	r = parse_extents(body, ext, n);
	free(body);
	return r ? fail("out of memory") : 0;
}

/*
 * What backup and export-diff read: snapshot uuid's image (its path into
 * source) and, with since, the extents changed since it (*ext, caller
 * frees).  0, or the exit status of a failure already reported.
 */
static int copy_source(const char *cmd, const char *mnt, const char *uuid,
		       const char *since, char source[4200],
		       struct backup_extent **ext, size_t *n)
{
	struct stat st;

	*ext = NULL;
	*n = 0;
	if (!uuid_valid(uuid))
		return usage_error("%s: '%s' is not a snapshot uuid", cmd,
				   uuid);
	if (since && !uuid_valid(since))
		return usage_error("%s: --since '%s' is not a snapshot uuid",
				   cmd, since);
	snprintf(source, 4200, "%s/snapshots/%s.img", mnt, uuid);
	if (stat(source, &st) < 0)
		return fail("snapshot %s: %s", uuid,
			    errno == ENOENT ? "no such snapshot"
					    : strerror(errno));
	return since ? changed_extents(mnt, since, uuid, ext, n) : 0;
}

static int cmd_export(const char *mnt, int argc, char **argv)
{
	struct export_job job = { .progress = PROGRESS_AUTO };
	struct backup_extent *ext;
	char source[4200], err[512];
	int r;

	if (argc < 4)
		return usage_error("export-diff needs UUID");
	job.uuid = argv[3];
	for (int i = 4; i < argc; i++) {
		if (copy_option(argc, argv, &i, &job.since, &job.progress))
			continue;
		if (argv[i][0] == '-' && argv[i][1])
			return usage_error("export-diff: unexpected '%s'",
					   argv[i]);
		if (job.dest)
			return usage_error("export-diff: a second FILE '%s'",
					   argv[i]);
		job.dest = argv[i];
	}
	if (job.dest && !strcmp(job.dest, "-"))
		job.dest = NULL;
	if (!job.dest && isatty(STDOUT_FILENO))
		return usage_error("%s", "export-diff: not writing a binary "
					 "stream to a terminal (give FILE)");
	r = copy_source("export-diff", mnt, job.uuid, job.since, source, &ext,
			&job.nextents);
	if (r)
		return r;
	job.source = source;
	job.extents = ext;
	r = export_diff_run(&job, err, sizeof(err));
	free(ext);
	return r ? fail("%s", err) : 0;
}

static int cmd_backup(const char *mnt, int argc, char **argv)
{
	struct backup_job job = { .progress = PROGRESS_AUTO };
	struct backup_extent *ext;
	char source[4200], err[512];
	int r;

	if (argc < 5)
		return usage_error("backup needs UUID and DEST");
	job.uuid = argv[3];
	job.dest = argv[4];
	for (int i = 5; i < argc; i++)
		if (!copy_option(argc, argv, &i, &job.since, &job.progress))
			return usage_error("backup: unexpected '%s'", argv[i]);
	r = copy_source("backup", mnt, job.uuid, job.since, source, &ext,
			&job.nextents);
	if (r)
		return r;
	job.source = source;
	job.extents = ext;
	r = backup_run(&job, err, sizeof(err));
	free(ext);
	return r ? fail("%s", err) : 0;
}

static int cmd_summary(const char *mnt, const char *from, const char *to,
		       bool json);

/* changed --json: the extents with "zero", whether each reads as zeros
 * at the newer end (snapshot TO, or live.img for "-"). */
static int changed_json(const char *mnt, const char *from, const char *to)
{
	struct backup_extent *ext = NULL;
	char path[4200];
	size_t n = 0;
	int fd, r;

	r = changed_extents(mnt, from, to, &ext, &n);
	if (r)
		return r;
	if (strcmp(to, "-"))
		snprintf(path, sizeof(path), "%s/snapshots/%s.img", mnt, to);
	else
		snprintf(path, sizeof(path), "%s/live.img", mnt);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(ext);
		return fail("%s: %s", path, strerror(errno));
	}
	fputc('[', stdout);
	for (size_t i = 0; i < n && !r; i++) {
		bool zero;

		r = backup_zero(fd, ext[i].off, ext[i].len, &zero);
		if (!r)
			printf("%s\n  {\"offset\": %llu, \"length\": %llu, "
			       "\"zero\": %s}",
			       i ? "," : "", (unsigned long long)ext[i].off,
			       (unsigned long long)ext[i].len,
			       zero ? "true" : "false");
	}
	close(fd);
	free(ext);
	if (r)
		return fail("%s: %s", path, strerror(-r));
	fputs(n ? "\n]\n" : "]\n", stdout);
	return 0;
}

static int cmd_changed(const char *mnt, int argc, char **argv)
{
	const char *from = NULL, *to = "-";
	bool json = false, summary = false;
	char req[128];

	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--from") && i + 1 < argc)
			from = argv[++i];
		else if (!strcmp(argv[i], "--to") && i + 1 < argc)
			to = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--summary"))
			summary = true;
		else
			return usage_error("changed: unexpected '%s'", argv[i]);
	}
	if (summary && (!from || uuid_valid(from)) &&
	    (!strcmp(to, "-") || uuid_valid(to)))
		return cmd_summary(mnt, from, strcmp(to, "-") ? to : NULL,
				   json);
	if (!from)
		return usage_error("changed needs --from UUID");
	if (!uuid_valid(from) || (strcmp(to, "-") && !uuid_valid(to)))
		return usage_error("changed: '%s' is not a snapshot uuid",
				   uuid_valid(from) ? to : from);
	if (json)
		return changed_json(mnt, from, to);
	snprintf(req, sizeof(req), "changed %s %s", from, to);
	return request(mnt, req, NULL);
}

/* "1.5 GiB": size in binary units, for people. */
static const char *human(uint64_t v, char *buf, size_t len)
{
	static const char *const unit[] = { "B",   "KiB", "MiB",
					    "GiB", "TiB", "PiB" };
	double x = (double)v;
	int u = 0;

	while (x >= 1024 && u < 5) {
		x /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", x, unit[u]);
	return buf;
}

static int image_size(const char *mnt, uint64_t *size)
{
	char path[4200];
	struct stat st;

	snprintf(path, sizeof(path), "%s/live.img", mnt);
	if (stat(path, &st) < 0)
		return fail("%s: %s", path, strerror(errno));
	*size = (uint64_t)st.st_size;
	return 0;
}

/* The generation of snapshot uuid (its image's user.snapfs.generation). */
static int snapshot_generation(const char *mnt, const char *uuid, uint64_t *gen)
{
	char path[4200], buf[32];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/snapshots/%s.img", mnt, uuid);
	n = getxattr(path, "user.snapfs.generation", buf, sizeof(buf) - 1);
	if (n <= 0)
		return fail("snapshot %s: %s", uuid,
			    n < 0 && errno == ENOENT ? "no such snapshot"
			    : n < 0		     ? strerror(errno)
						     : "no generation");
	buf[n] = '\0';
	*gen = strtoull(buf, NULL, 10);
	return 0;
}

/* The map of the open generation under the status text. */
static int print_map(const char *mnt)
{
	struct cbt_file f;
	struct winsize ws;
	uint64_t *gens = NULL, size, bytes, extents;
	size_t n = 0, width = 64;
	char err[512], a[32], b[32], *map;
	int r;

	r = cbtview_generations(mnt, &gens, &n);
	if (r || !n) {
		free(gens);
		return fail("%s/cbt: %s", mnt, r ? strerror(-r) : "no bitmap");
	}
	r = cbtview_load(mnt, gens[n - 1], &f, err, sizeof(err));
	free(gens);
	if (r)
		return fail("%s", err);
	if (image_size(mnt, &size)) {
		cbtview_free(&f);
		return 1;
	}
	if (isatty(STDOUT_FILENO) &&
	    ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 12)
		width = ws.ws_col - 2u > 120 ? 120 : ws.ws_col - 2u;
	map = malloc(width + 1);
	if (!map) {
		cbtview_free(&f);
		return fail("out of memory");
	}
	cbtview_map(&f, map, width);
	map[width] = '\0';
	cbtview_totals(&f, size, &bytes, &extents);
	printf("\nchanged in generation %llu (open): %s in %llu extents, "
	       "%.2f%% of the image\n",
	       (unsigned long long)f.gen, human(bytes, a, sizeof(a)),
	       (unsigned long long)extents,
	       size ? 100.0 * (double)bytes / (double)size : 0.0);
	human(size, b, sizeof(b));
	printf("[%s]\n 0%*s\n", map, (int)width - 1, b);
	free(map);
	cbtview_free(&f);
	return fflush(stdout) ? fail("writing output: %s", strerror(errno)) : 0;
}

/* changed --summary: totals per generation from..to, and their union. */
static int cmd_summary(const char *mnt, const char *from, const char *to,
		       bool json)
{
	struct cbt_file f, all = { 0 };
	uint64_t *gens = NULL, lo, hi, size, bytes, extents;
	size_t n = 0, k;
	char err[512], h[32];
	int r;

	r = cbtview_generations(mnt, &gens, &n);
	if (r || !n) {
		free(gens);
		return fail("%s/cbt: %s", mnt, r ? strerror(-r) : "no bitmap");
	}
	lo = gens[0];
	hi = gens[n - 1];
	if ((from && snapshot_generation(mnt, from, &lo)) ||
	    (to && snapshot_generation(mnt, to, &hi)) ||
	    image_size(mnt, &size)) {
		free(gens);
		return 1;
	}
	if (from)
		lo++;
	for (uint64_t g = lo; g <= hi; g++) {
		for (k = 0; k < n && gens[k] != g; k++)
			;
		if (k == n) {
			free(gens);
			return fail("the bitmap of generation %llu was dropped "
				    "(cbt_keep)",
				    (unsigned long long)g);
		}
	}
	if (json)
		printf("{\"generations\": [");
	else
		printf("%10s %12s %10s %8s\n", "generation", "bytes", "extents",
		       "share");
	for (uint64_t g = lo; g <= hi && !r; g++) {
		r = cbtview_load(mnt, g, &f, err, sizeof(err));
		if (r)
			break;
		cbtview_totals(&f, size, &bytes, &extents);
		if (json)
			printf("%s{\"generation\": %llu, \"open\": %s, "
			       "\"bytes\": %llu, \"extents\": %llu, "
			       "\"share\": %.6f}",
			       g == lo ? "" : ", ", (unsigned long long)g,
			       g == gens[n - 1] ? "true" : "false",
			       (unsigned long long)bytes,
			       (unsigned long long)extents,
			       size ? (double)bytes / (double)size : 0.0);
		else
			printf("%10llu %12llu %10llu %7.2f%%  %s\n",
			       (unsigned long long)g, (unsigned long long)bytes,
			       (unsigned long long)extents,
			       size ? 100.0 * (double)bytes / (double)size
				    : 0.0,
			       g == gens[n - 1] ? "open" : "");
		if (!all.bits) {
			all = f;
		} else {
			cbtview_or(&all, &f);
			cbtview_free(&f);
		}
	}
	free(gens);
	if (r) {
		cbtview_free(&all);
		return fail("%s", err);
	}
	bytes = extents = 0;
	if (all.bits)
		cbtview_totals(&all, size, &bytes, &extents);
	cbtview_free(&all);
	if (json)
		printf("], \"union\": {\"bytes\": %llu, \"extents\": %llu, "
		       "\"share\": %.6f}}\n",
		       (unsigned long long)bytes, (unsigned long long)extents,
		       size ? (double)bytes / (double)size : 0.0);
	else
		printf("%10s %12llu %10llu %7.2f%%   (%s)\n", "union",
		       (unsigned long long)bytes, (unsigned long long)extents,
		       size ? 100.0 * (double)bytes / (double)size : 0.0,
		       human(bytes, h, sizeof(h)));
	return fflush(stdout) ? fail("writing output: %s", strerror(errno)) : 0;
}

static int cmd_revert(const char *mnt, int argc, char **argv)
{
	enum progress_mode mode = PROGRESS_AUTO;
	const char *uuid = NULL;
	struct progress p = { 0 };
	char req[64];

	for (int i = 3; i < argc; i++) {
		if (progress_flag(argv, &i, &mode))
			continue;
		if (uuid || !uuid_valid(argv[i]))
			return usage_error("revert: %s '%s'",
					   uuid ? "unexpected"
						: "not a snapshot uuid:",
					   argv[i]);
		uuid = argv[i];
	}
	if (!uuid)
		return usage_error("revert needs a snapshot UUID");
	snprintf(req, sizeof(req), "revert %s", uuid);
	return request_progress(mnt, req, NULL, &p, mode);
}

static int cmd_resize(const char *mnt, int argc, char **argv)
{
	uint64_t size;
	char req[64];

	if (argc != 4)
		return usage_error("resize takes MOUNTPOINT SIZE");
	if (options_parse_size(argv[3], &size) || !size)
		return usage_error("resize: '%s' is not a size (bytes, or a "
				   "number with K, M, G or T)",
				   argv[3]);
	snprintf(req, sizeof(req), "resize %llu", (unsigned long long)size);
	return request(mnt, req, NULL);
}

int main(int argc, char **argv)
{
	const struct command *c;
	const char *cmd, *mnt;
	bool json = false;
	int i;

	if (argc >= 2 &&
	    (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 &&
	    (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version"))) {
		printf("snapfsctl %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (argc < 2)
		return usage_error("missing command");
	c = find_command(argv[1]);
	if (!c)
		return usage_error("unknown command '%s'", argv[1]);
	for (i = 2; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			command_help(c);
			return 0;
		}
	if (argc < 3)
		return usage_error("%s: missing %s", c->name,
				   strcmp(c->name, "check") ? "MOUNTPOINT"
							    : "STORE_DIR");
	cmd = argv[1];
	mnt = argv[2];
	if (!strcmp(cmd, "check")) {
		char why[4400];

		if (argc != 3)
			return usage_error("check takes one STORE_DIR");
		if (!store_check(argv[2], stdout, why, sizeof(why)))
			return 0;
		fflush(stdout);
		return fail("%s", why);
	}

	if (!strcmp(cmd, "create")) {
		struct create_mount *m = calloc((size_t)argc, sizeof(*m));
		const char **freeze = calloc((size_t)argc, sizeof(*freeze));
		unsigned long timeout = CREATE_TIMEOUT_S;
		int nm = 0, nfreeze = 0, r;
		char *end;

		if (!m || !freeze) {
			free(m);
			free(freeze);
			return fail("out of memory");
		}
		m[nm++].mnt = mnt;
		for (i = 3; i < argc; i++) {
			if (!strcmp(argv[i], "--freeze") && i + 1 < argc) {
				freeze[nfreeze++] = argv[++i];
			} else if (!strcmp(argv[i], "--timeout") &&
				   i + 1 < argc) {
				errno = 0;
				timeout = strtoul(argv[++i], &end, 10);
				if (*end || errno || argv[i][0] == '-' ||
				    timeout < 1 ||
				    timeout > CTL_HOLD_MAX_MS / 1000) {
					free(m);
					free(freeze);
					return usage_error(
						"create: --timeout takes 1 to "
						"%d seconds, not '%s'",
						CTL_HOLD_MAX_MS / 1000,
						argv[i]);
				}
			} else if (argv[i][0] == '-') {
				free(m);
				free(freeze);
				return usage_error("create: unexpected '%s'",
						   argv[i]);
			} else {
				m[nm++].mnt = argv[i];
			}
		}
		r = cmd_create(m, nm, freeze, nfreeze, (unsigned)timeout);
		free(m);
		free(freeze);
		return r;
	}
	if (!strcmp(cmd, "list") || !strcmp(cmd, "status") ||
	    !strcmp(cmd, "bookmarks")) {
		int map = -1; /* on a terminal */
		char req[32];
		int r;

		for (i = 3; i < argc; i++) {
			if (!strcmp(argv[i], "--json"))
				json = true;
			else if (!strcmp(cmd, "status") &&
				 !strcmp(argv[i], "--map"))
				map = 1;
			else if (!strcmp(cmd, "status") &&
				 !strcmp(argv[i], "--no-map"))
				map = 0;
			else
				return usage_error("%s: unexpected '%s'", cmd,
						   argv[i]);
		}
		snprintf(req, sizeof(req), "%s%s", cmd, json ? "-json" : "");
		r = request(mnt, req, NULL);
		if (!r && !strcmp(cmd, "status") && !json &&
		    (map == 1 || (map == -1 && isatty(STDOUT_FILENO))))
			r = print_map(mnt);
		return r;
	}
	if (!strcmp(cmd, "delete")) {
		bool keep = false;
		char *req;
		size_t len = 8 + sizeof(" --keep-bookmark");
		int r, nuuids = 0;

		for (i = 3; i < argc; i++) {
			if (!strcmp(argv[i], "--keep-bookmark")) {
				keep = true;
				continue;
			}
			if (!uuid_valid(argv[i]))
				return usage_error(
					"delete: '%s' is not a snapshot "
					"uuid",
					argv[i]);
			len += strlen(argv[i]) + 1;
			nuuids++;
		}
		if (!nuuids)
			return usage_error("%s",
					   "delete: needs at least one UUID");
		req = malloc(len);
		if (!req)
			return fail("out of memory");
		strcpy(req, keep ? "delete --keep-bookmark" : "delete");
		for (i = 3; i < argc; i++) {
			if (!strcmp(argv[i], "--keep-bookmark"))
				continue;
			strcat(req, " ");
			strcat(req, argv[i]);
		}
		r = request(mnt, req, NULL);
		free(req);
		return r;
	}
	if (!strcmp(cmd, "changed"))
		return cmd_changed(mnt, argc, argv);
	if (!strcmp(cmd, "backup"))
		return cmd_backup(mnt, argc, argv);
	if (!strcmp(cmd, "export-diff"))
		return cmd_export(mnt, argc, argv);
	if (!strcmp(cmd, "revert"))
		return cmd_revert(mnt, argc, argv);
	if (!strcmp(cmd, "resize"))
		return cmd_resize(mnt, argc, argv);
	return usage_error("unknown command '%s'", cmd);
}
