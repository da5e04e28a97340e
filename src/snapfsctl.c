// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * snapfsctl.c - the command-line client.
 *
 * Finds the daemon of a mount point through the root's CTL_XATTR (the
 * store directory, which holds the control socket), sends one request
 * and prints the reply.  `create` first opens live.img for writing (the
 * permission check the contract asks for) and fsyncs it, so pages dirtied
 * through mmap or a loop device reach the daemon before the instant;
 * with --freeze it freezes the named file system around all of that and
 * thaws it on every path, with the terminal's signals held off meanwhile.
 *
 * Exit status: 0 done, 1 failed (one line on stderr), 2 bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
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
#include <unistd.h>

#include "config.h"
#include "snapfs/backup.h"
#include "snapfs/ctl.h"
#include "snapfs/snapshot.h"
#include "snapfs/store.h"

#define FUSE_SUPER_MAGIC 0x65735546

static const char usage_text[] =
	"usage: snapfsctl COMMAND MOUNTPOINT [ARGS]\n"
	"\n"
	"  create MOUNTPOINT [--freeze FSPATH]   take a snapshot, print its "
	"uuid\n"
	"  list MOUNTPOINT [--json]              snapshots, oldest first\n"
	"  delete MOUNTPOINT UUID...             delete snapshots\n"
	"  status MOUNTPOINT [--json]            state of the mount and store\n"
	"  changed MOUNTPOINT --from UUID [--to UUID] [--json]\n"
	"                                        byte extents changed since a "
	"snapshot\n"
	"  backup MOUNTPOINT UUID DEST [--since UUID] "
	"[--progress|--no-progress]\n"
	"                                        copy a snapshot, whole or "
	"incremental\n"
	"\n"
	"Exit status: 0 done, 1 failed, 2 bad usage.  See snapfsctl(8).\n";

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("snapfsctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	fputs(usage_text, stderr);
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

/* Connects to the daemon serving mnt; the socket, or -1 after a message. */
static int connect_daemon(const char *mnt)
{
	char store[4096];
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct statfs sf;
	ssize_t n;
	int dfd, fd;

	if (statfs(mnt, &sf) < 0) {
		fail("%s: %s", mnt, strerror(errno));
		return -1;
	}
	n = getxattr(mnt, CTL_XATTR, store, sizeof(store) - 1);
	if (sf.f_type != FUSE_SUPER_MAGIC || n <= 0) {
		fail("%s: not a snapfs mount point", mnt);
		return -1;
	}
	store[n] = '\0';
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

/*
 * Sends request to the daemon of mnt; on "ok" prints the rest of the reply
 * to stdout (or returns it in *body when body is not NULL).  0, or 1 after
 * a message.
 */
static int request(const char *mnt, const char *req, char **body)
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
	}
	close(fd);
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

static int cmd_create(const char *mnt, const char *freeze)
{
	char live[4096], *uuid = NULL;
	sigset_t all, old;
	int fd, ffd = -1, r;

	snprintf(live, sizeof(live), "%s/live.img", mnt);
	fd = open(live, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return fail("%s: cannot open for writing: %s", live,
			    strerror(errno));
	if (freeze) {
		ffd = open(freeze, O_RDONLY | O_CLOEXEC);
		if (ffd < 0) {
			close(fd);
			return fail("--freeze %s: %s", freeze, strerror(errno));
		}
		/* From freeze to thaw, no signal may leave it frozen. */
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, &old);
		if (ioctl(ffd, FIFREEZE, 0) < 0) {
			r = errno;
			sigprocmask(SIG_SETMASK, &old, NULL);
			close(ffd);
			close(fd);
			return fail("--freeze %s: cannot freeze: %s", freeze,
				    strerror(r));
		}
	}
	if (fsync(fd) < 0) {
		r = fail("%s: flush: %s", live, strerror(errno));
	} else {
		r = request(mnt, "create", &uuid);
	}
	if (freeze) {
		if (ioctl(ffd, FITHAW, 0) < 0 && r == 0)
			r = fail("--freeze %s: cannot thaw: %s", freeze,
				 strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(ffd);
	}
	close(fd);
	if (r == 0 && uuid)
		fputs(uuid, stdout);
	free(uuid);
	return r;
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

static int cmd_backup(const char *mnt, int argc, char **argv)
{
	struct backup_job job = { .progress = BACKUP_PROGRESS_AUTO };
	struct backup_extent *ext = NULL;
	char source[4200], req[128], err[512], *body = NULL;
	struct stat st;
	int i, r;

	if (argc < 5)
		return usage_error("backup needs UUID and DEST");
	job.uuid = argv[3];
	job.dest = argv[4];
	for (i = 5; i < argc; i++) {
		if (!strcmp(argv[i], "--since") && i + 1 < argc)
			job.since = argv[++i];
		else if (!strcmp(argv[i], "--progress"))
			job.progress = BACKUP_PROGRESS_ON;
		else if (!strcmp(argv[i], "--no-progress"))
			job.progress = BACKUP_PROGRESS_OFF;
		else
			return usage_error("backup: unexpected '%s'", argv[i]);
	}
	if (!snapshot_uuid_valid(job.uuid))
		return usage_error("backup: '%s' is not a snapshot uuid",
				   job.uuid);
	if (job.since && !snapshot_uuid_valid(job.since))
		return usage_error(
			"backup: --since '%s' is not a snapshot uuid",
			job.since);
	snprintf(source, sizeof(source), "%s/snapshots/%s.img", mnt, job.uuid);
	if (stat(source, &st) < 0)
		return fail("snapshot %s: %s", job.uuid,
			    errno == ENOENT ? "no such snapshot"
					    : strerror(errno));
	job.source = source;
	if (job.since) {
		snprintf(req, sizeof(req), "changed %s %s text", job.since,
			 job.uuid);
		r = request(mnt, req, &body);
		if (r)
			return r;
		r = parse_extents(body, &ext, &job.nextents);
		free(body);
		if (r)
			return fail("out of memory");
		job.extents = ext;
	}
	r = backup_run(&job, err, sizeof(err));
	free(ext);
	return r ? fail("%s", err) : 0;
}

static int cmd_changed(const char *mnt, int argc, char **argv)
{
	const char *from = NULL, *to = "-";
	bool json = false;
	char req[128];

	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--from") && i + 1 < argc)
			from = argv[++i];
		else if (!strcmp(argv[i], "--to") && i + 1 < argc)
			to = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else
			return usage_error("changed: unexpected '%s'", argv[i]);
	}
	if (!from)
		return usage_error("changed needs --from UUID");
	if (!snapshot_uuid_valid(from) ||
	    (strcmp(to, "-") && !snapshot_uuid_valid(to)))
		return usage_error("changed: '%s' is not a snapshot uuid",
				   snapshot_uuid_valid(from) ? to : from);
	snprintf(req, sizeof(req), "changed %s %s %s", from, to,
		 json ? "json" : "text");
	return request(mnt, req, NULL);
}

int main(int argc, char **argv)
{
	const char *cmd, *mnt;
	bool json = false;
	int i;

	if (argc >= 2 &&
	    (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc >= 2 &&
	    (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version"))) {
		printf("snapfsctl %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (argc < 3)
		return usage_error("%s", argc < 2 ? "missing command"
						  : "missing mount point");
	if (!strcmp(argv[1], "check")) {
		if (argc != 3)
			return usage_error("check takes one STORE_DIR");
		return store_check(argv[2], stdout) ? 1 : 0;
	}
	cmd = argv[1];
	mnt = argv[2];

	if (!strcmp(cmd, "create")) {
		const char *freeze = NULL;

		for (i = 3; i < argc; i++) {
			if (!strcmp(argv[i], "--freeze") && i + 1 < argc)
				freeze = argv[++i];
			else
				return usage_error("create: unexpected '%s'",
						   argv[i]);
		}
		return cmd_create(mnt, freeze);
	}
	if (!strcmp(cmd, "list") || !strcmp(cmd, "status")) {
		char req[32];

		for (i = 3; i < argc; i++) {
			if (!strcmp(argv[i], "--json"))
				json = true;
			else
				return usage_error("unexpected '%s'", argv[i]);
		}
		snprintf(req, sizeof(req), "%s%s", cmd, json ? "-json" : "");
		return request(mnt, req, NULL);
	}
	if (!strcmp(cmd, "delete")) {
		char *req;
		size_t len = 8;
		int r;

		if (argc < 4)
			return usage_error("%s",
					   "delete: needs at least one UUID");
		for (i = 3; i < argc; i++) {
			if (!snapshot_uuid_valid(argv[i]))
				return usage_error(
					"delete: '%s' is not a snapshot "
					"uuid",
					argv[i]);
			len += strlen(argv[i]) + 1;
		}
		req = malloc(len);
		if (!req)
			return fail("out of memory");
		strcpy(req, "delete");
		for (i = 3; i < argc; i++) {
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
	return usage_error("unknown command '%s'", cmd);
}
