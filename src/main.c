// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * main.c - the snapfs daemon: options in, context built, run, torn down.
 *
 * Everything that can reject bad input (options, the backing, the mount
 * point, the store) runs before anything is written, and before the
 * process detaches, so the user sees one clear line and a non-zero exit.
 * Without -f the process forks first (before any thread or SQLite
 * connection exists); the parent waits on a pipe and exits 0 only once
 * the child has mounted, so `snapfs IMG DIR && ls DIR` always works.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "snapfs/cbt.h"
#include "snapfs/cow.h"
#include "snapfs/ctl.h"
#include "snapfs/fault.h"
#include "snapfs/iolog.h"
#include "snapfs/daemon.h"
#include "snapfs/fs.h"
#include "snapfs/log.h"
#include "snapfs/recovery.h"
#include "snapfs/revert.h"
#include "snapfs/scratch.h"
#include "snapfs/snapshot.h"
#include "snapfs/store.h"
#include "snapfs/uring.h"

#define URING_DEPTH 128

static void usage(FILE *f)
{
	fputs("usage: snapfs [-f] [-d] [-o OPTION[,OPTION...]] BACKING "
	      "MOUNTPOINT\n"
	      "\n"
	      "Mounts BACKING (a raw image file or a block device) with\n"
	      "live.img, snapshots/<uuid>.img and cbt/<generation>.bitmap.\n"
	      "\n"
	      "  -f            stay in the foreground\n"
	      "  -d            foreground, and log every request\n"
	      "  -h, --help    this text\n"
	      "  -V, --version the version\n"
	      "\n"
	      "options (-o):\n"
	      "  store=DIR                 diff store (BACKING.snapfs)\n"
	      "  chunk_size=SIZE           copy-on-write unit, 4K..1M (64K)\n"
	      "  cbt_block_size=SIZE       change-tracking unit, 4K..1M (64K)\n"
	      "  diff_max=SIZE             most bytes the store may hold (0)\n"
	      "  on_full=drop-oldest|fail-writes\n"
	      "  durability=full|process   (full)\n"
	      "  cbt_keep=N                closed generations kept (64)\n"
	      "  log_level=LEVEL           error, warn, info or debug (info)\n"
	      "  ro                        live.img is read-only\n"
	      "and the usual FUSE and mount(8) options (allow_other, nodev,"
	      " ...).\n"
	      "See snapfs(8).\n",
	      f);
}

/*
 * The store= directory with the directories above it resolved once
 * (realpath of its parent): the daemon opens what the store's trust check
 * looked at, not a path whose symlinks another user could swap later.
 * The last component stays as given, so a store that is a symlink is
 * still refused by the store.
 */
static int resolve_named_store(struct daemon *d, char *err, size_t err_len)
{
	char *copy = strdup(d->opts.store), *base, *parent;
	char real[PATH_MAX];
	size_t len;
	int n = 0;

	if (!copy)
		return -ENOMEM;
	len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	base = strrchr(copy, '/');
	if (base) {
		*base++ = '\0';
		parent = *copy ? copy : "/";
	} else {
		base = copy;
		parent = ".";
	}
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		snprintf(err, err_len, "store=%s: name the directory itself",
			 d->opts.store);
		n = -EINVAL;
	} else if (!realpath(parent, real)) {
		n = -errno;
		snprintf(err, err_len, "store %s: %s", d->opts.store,
			 strerror(-n));
	} else if (asprintf(&d->store_path, "%s%s%s", real,
			    strcmp(real, "/") ? "/" : "", base) < 0) {
		n = -ENOMEM;
	}
	free(copy);
	return n;
}

/* Makes the store path absolute (or BACKING.snapfs beside the image). */
static int resolve_store(struct daemon *d, char *err, size_t err_len)
{
	char real[PATH_MAX];
	struct stat st;
	int n;

	if (d->opts.store)
		return resolve_named_store(d, err, err_len);
	if (stat(d->opts.backing, &st) == 0 && S_ISBLK(st.st_mode)) {
		snprintf(err, err_len,
			 "backing %s: a block device needs -o store=DIR (the "
			 "default beside it would live in /dev)",
			 d->opts.backing);
		return -EINVAL;
	}
	if (!realpath(d->opts.backing, real)) {
		n = errno;
		snprintf(err, err_len, "backing %s: %s", d->opts.backing,
			 strerror(n));
		return -n;
	}
	n = asprintf(&d->store_path, "%s.snapfs", real);
	return n < 0 ? -ENOMEM : 0;
}

/* Names the backing by its absolute path in logs, status and fsname. */
static void absolute_backing(struct daemon *d)
{
	char *real = realpath(d->opts.backing, NULL);

	if (real) {
		free(d->opts.backing);
		d->opts.backing = real;
	}
}

static int check_mountpoint(const char *path, char *err, size_t err_len)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(err, err_len, "mount point %s: %s", path,
			 strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, err_len, "mount point %s: not a directory", path);
		return -ENOTDIR;
	}
	return 0;
}

/*
 * Forks; the parent waits for the child's word and exits with 0 (mounted)
 * or 1.  Returns the child's end of the pipe.
 */
static int detach(void)
{
	int p[2];
	pid_t pid;
	char ok = 0;

	if (pipe2(p, O_CLOEXEC) < 0) {
		perror("snapfs: pipe");
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		perror("snapfs: fork");
		exit(1);
	}
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &ok, 1) != 1)
			ok = 0;
		_exit(ok == 1 ? 0 : 1);
	}
	close(p[0]);
	return p[1];
}

/* Tells the waiting parent how the start went, and leaves the terminal:
 * from then on messages go to syslog, each naming the mount point. */
static void notify_parent(int fd, bool ok, const char *mountpoint)
{
	char c = ok ? 1 : 0;
	int null;

	if (fd < 0)
		return;
	if (ok) {
		setsid();
		if (chdir("/") < 0)
			log_warn("main: chdir /: %s", strerror(errno));
		null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			if (null > 2)
				close(null);
		}
		log_to_syslog("snapfs", mountpoint);
	}
	if (write(fd, &c, 1) != 1)
		log_warn("main: cannot tell the parent");
	close(fd);
}

/* on_full=drop-oldest: what a write calls when the store is full. */
static int drop_oldest_snapshot(void *snaps)
{
	return snapshots_drop_oldest(snaps);
}

/* Builds every module in dependency order.  0 or -errno with err set. */
static int daemon_start(struct daemon *d, char *err, size_t err_len)
{
	struct store_config sc;
	int r, pending = 0;

	r = backing_open(&d->backing, d->opts.backing, d->opts.ro, err,
			 err_len);
	if (r)
		return r;
	sc = (struct store_config){ .dir = d->store_path,
				    .chunk_size = d->opts.chunk_size,
				    .cbt_block_size = d->opts.cbt_block_size,
				    .image_size = d->backing.size,
				    .backing_id = d->backing.identity,
				    .durability = d->opts.durability };
	r = store_open(&d->store, &sc, err, err_len);
	if (r)
		return r;
	d->same_boot = recovery_same_boot(d->store);
	r = snapshots_load(&d->snaps, d->store, &d->backing,
			   d->opts.durability);
	if (!r)
		r = uring_engine_create(&d->io, URING_DEPTH);
	if (!r)
		r = cbt_create(
			&d->cbt, d->store, d->backing.size, d->opts.cbt_keep,
			d->opts.durability == DURABILITY_FULL, d->same_boot);
	if (!r)
		r = cow_create(&d->cow, &d->backing, d->store, d->io, d->cbt,
			       snapshots_newest(d->snaps));
	if (!r) {
		snapshots_attach(d->snaps, d->cow, d->cbt);
		store_set_limit(d->store, d->opts.diff_max);
		if (d->opts.on_full == ON_FULL_DROP_OLDEST)
			cow_set_make_room(d->cow, drop_oldest_snapshot,
					  d->snaps);
		r = recovery_at_mount(d);
	}
	/* A revert a crash interrupted is finished once mounted, live.img
	 * closed to everyone until then. */
	if (!r) {
		r = revert_pending(d, err, err_len);
		if (r < 0)
			return r;
		pending = r;
		r = 0;
	}
	if (r) {
		snprintf(err, err_len, "store %s: cannot load: %s",
			 d->store_path, strerror(-r));
		return r;
	}
	d->tree = (struct tree){ .snaps = d->snaps,
				 .cbt = d->cbt,
				 .store = d->store,
				 .backing = &d->backing,
				 .image_size = d->backing.size,
				 .ro = d->opts.ro,
				 .uid = getuid(),
				 .gid = getgid() };
	clock_gettime(CLOCK_REALTIME, &d->tree.mounted);
	r = fs_mount(&d->fs, d);
	if (r) {
		snprintf(err, err_len, "cannot mount on %s",
			 d->opts.mountpoint);
		return r;
	}
	if (pending) {
		r = revert_resume_start(d);
		if (r) {
			snprintf(err, err_len,
				 "cannot finish an interrupted revert: %s",
				 strerror(-r));
			return r;
		}
	}
	r = ctl_start(&d->ctl, d);
	if (r)
		snprintf(err, err_len, "cannot open the control socket in %s",
			 d->store_path);
	return r;
}

/* Tears down what daemon_start built, in reverse; clean marks the store. */
static void daemon_stop(struct daemon *d, bool clean)
{
	ctl_stop(d->ctl);
	revert_resume_stop(d);
	fs_unmount(d->fs);
	if (d->cow && clean && (cow_flush(d->cow) || cbt_seal(d->cbt)))
		clean = false;
	if (d->cow && clean)
		recovery_at_clean_stop(d);
	cow_destroy(d->cow);
	cbt_destroy(d->cbt);
	snapshots_free(d->snaps);
	uring_engine_destroy(d->io);
	if (d->store && clean)
		log_info("main: clean shutdown of %s", d->backing.path);
	store_close(d->store, clean);
	backing_close(&d->backing);
	free(d->store_path);
	options_free(&d->opts);
}

int main(int argc, char **argv)
{
	struct daemon d = { 0 };
	char err[1024] = "";
	int notify_fd = -1, r;

	d.backing.fd = -1;
	scratch_init();
	r = options_parse_argv(&d.opts, argc, argv, err, sizeof(err));
	if (r) {
		fprintf(stderr, "snapfs: %s\n", err);
		options_free(&d.opts);
		return 1;
	}
	if (d.opts.help || d.opts.version) {
		if (d.opts.help)
			usage(stdout);
		else
			printf("snapfs %s%s\n", PACKAGE_VERSION,
#ifdef SNAPFS_FAULT_INJECTION
			       " (fault injection)"
#else
			       ""
#endif
			);
		options_free(&d.opts);
		return 0;
	}
	log_set_level(d.opts.debug ? LOG_LVL_DEBUG : d.opts.log_level);
	if (fault_init() || iolog_init()) {
		options_free(&d.opts);
		return 1;
	}
	r = resolve_store(&d, err, sizeof(err));
	if (!r)
		r = check_mountpoint(d.opts.mountpoint, err, sizeof(err));
	if (r) {
		fprintf(stderr, "snapfs: %s\n", err[0] ? err : strerror(-r));
		daemon_stop(&d, false);
		return 1;
	}
	if (!d.opts.foreground)
		notify_fd = detach();
	absolute_backing(&d);
	r = daemon_start(&d, err, sizeof(err));
	if (r) {
		fprintf(stderr, "snapfs: %s\n", err[0] ? err : strerror(-r));
		/* Nothing was written: the store stays as clean as it was. */
		daemon_stop(&d, d.store && store_info(d.store)->prev_clean);
		notify_parent(notify_fd, false, d.opts.mountpoint);
		return 1;
	}
	notify_parent(notify_fd, true, d.opts.mountpoint);
	log_info("main: %s mounted on %s (store %s)", d.backing.path,
		 d.opts.mountpoint, d.store_path);
	r = fs_loop(d.fs);
	daemon_stop(&d, r == 0);
	return r ? 1 : 0;
}
