// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * store_dir.c - the store directory before the index is open: the names
 * it may hold and their types, the checks that it is one snapfs made and
 * nobody else can change (ownership, mode, no symlinks or extra links,
 * no parent directory another user could rename it out of),
 * its lock against a second daemon (flock), and a new store's creation,
 * ordered so that a crash leaves either no store or a whole one.
 *
 * Runs on the opening thread only, before any other thread can reach the
 * store: no lock.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapfs/iolog.h"
#include "snapfs/log.h"
#include "store_int.h"

/*
 * Every name a store directory may hold, and its type: the index and its
 * journals, the data file, the open generation's bits (cbt.c's cbt.map)
 * and the control socket (ctl.c's).
 */
static const struct {
	const char *name;
	mode_t type;
} store_names[] = {
	{ "index.db", S_IFREG },
	{ "index.db-wal", S_IFREG },
	{ "index.db-shm", S_IFREG },
	{ "index.db.new", S_IFREG },
	{ "index.db.new-journal", S_IFREG },
	{ "data", S_IFREG },
	{ "cbt.map", S_IFREG },
	{ "control", S_IFSOCK },
};

/*
 * Refuses a store directory that snapfs did not make itself: one owned by
 * another user or writable by group or others (someone else could plant
 * or swap its files), or one holding, where a store file belongs, a
 * symlink (a root daemon would write through it), a file of the wrong
 * type, another user's file, or a file with a second link.  Once the
 * directory is ours and closed to others, nobody else can change what is
 * in it, so these checks hold for the whole mount.
 */
static int store_trust(struct store *s, char *err, size_t err_len)
{
	uid_t me = geteuid();
	struct stat st;

	if (fstat(s->dir_fd, &st) < 0)
		goto err_errno;
	if (st.st_uid != me) {
		snprintf(err, err_len,
			 "store %s: owned by uid %u, not by this user (uid "
			 "%u): not a store snapfs made",
			 s->dir, (unsigned)st.st_uid, (unsigned)me);
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, err_len,
			 "store %s: writable by others (mode %04o): not a "
			 "store snapfs made",
			 s->dir, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	for (size_t i = 0; i < sizeof(store_names) / sizeof(store_names[0]);
	     i++) {
		const char *name = store_names[i].name, *why = NULL;

		if (fstatat(s->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			goto err_errno;
		}
		if (S_ISLNK(st.st_mode))
			why = "is a symbolic link";
		else if ((st.st_mode & S_IFMT) != store_names[i].type)
			why = store_names[i].type == S_IFSOCK
				      ? "is not a socket"
				      : "is not a regular file";
		else if (st.st_uid != me) {
			snprintf(err, err_len,
				 "store %s: %s is owned by uid %u: not a "
				 "store snapfs made",
				 s->dir, name, (unsigned)st.st_uid);
			return -EPERM;
		} else if (S_ISREG(st.st_mode) && st.st_nlink != 1)
			why = "has other links";
		if (why) {
			snprintf(err, err_len,
				 "store %s: %s %s: not a store snapfs made",
				 s->dir, name, why);
			return -EPERM;
		}
	}
	return 0;

err_errno:
	snprintf(err, err_len, "store %s: %s", s->dir, strerror(errno));
	return -errno;
}

/*
 * Refuses a store that another user could swap for one of theirs by
 * renaming a directory above it: every directory from its parent up to /
 * must belong to root or to this user, and be closed to others or sticky
 * (as /tmp is, where nobody renames what is not theirs).  A directory
 * writable by its group is taken: its group is the administrator's choice
 * (/usr/local on Debian).  Checked before anything is made.
 */
static int store_trust_parents(struct store *s, char *err, size_t err_len)
{
	char *copy = strdup(s->dir), *dir, *cut;
	uid_t me = geteuid();
	struct stat st;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	dir = realpath(dirname(copy), NULL);
	free(copy);
	if (!dir) /* no parent: the mkdir that follows says so */
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	for (;;) {
		if (stat(dir, &st) < 0) {
			r = -errno;
			snprintf(err, err_len, "store %s: %s: %s", s->dir, dir,
				 strerror(-r));
			break;
		}
		if ((st.st_uid != 0 && st.st_uid != me) ||
		    ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))) {
			snprintf(err, err_len,
				 "store %s: %s is %s: another user could put a "
				 "store of theirs in its place (name one with "
				 "store= in a directory only you and root can "
				 "change)",
				 s->dir, dir,
				 st.st_uid != 0 && st.st_uid != me
					 ? "another user's"
					 : "writable by others");
			r = -EPERM;
			break;
		}
		cut = strrchr(dir, '/');
		if (!cut || cut == dir) {
			if (strcmp(dir, "/")) {
				dir[1] = '\0';
				continue;
			}
			break;
		}
		*cut = '\0';
	}
	free(dir);
	return r;
}

/* Creates the store directory when missing; *made says whether it did. */
int store_open_dir(struct store *s, bool *made, char *err, size_t err_len)
{
	struct stat st;
	int r;

	*made = false;
	r = store_trust_parents(s, err, err_len);
	if (r) {
		if (!*err)
			snprintf(err, err_len, "store %s: %s", s->dir,
				 strerror(-r));
		return r;
	}
	if (lstat(s->dir, &st) == 0 && S_ISLNK(st.st_mode)) {
		snprintf(err, err_len,
			 "store %s: is a symbolic link: not a store snapfs "
			 "made (name the directory itself with store=)",
			 s->dir);
		return -EPERM;
	}
	if (stat(s->dir, &st) < 0) {
		if (errno != ENOENT) {
			r = -errno;
			snprintf(err, err_len, "store %s: %s", s->dir,
				 strerror(-r));
			return r;
		}
		if (mkdir(s->dir, 0700) < 0) {
			r = -errno;
			snprintf(err, err_len, "store %s: cannot create: %s",
				 s->dir, strerror(-r));
			return r;
		}
		*made = true;
	} else if (!S_ISDIR(st.st_mode)) {
		snprintf(err, err_len, "store %s: not a directory", s->dir);
		return -ENOTDIR;
	}
	s->dir_fd =
		open(s->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->dir_fd < 0) {
		r = -errno;
		snprintf(err, err_len, "store %s: %s", s->dir, strerror(-r));
		return r;
	}
	r = store_trust(s, err, err_len);
	if (r)
		return r;
	if (flock(s->dir_fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		snprintf(err, err_len, "store %s: %s", s->dir,
			 r == -EWOULDBLOCK ? "in use by another snapfs daemon"
					   : strerror(-r));
		return r;
	}
	return 0;
}

/* Names of a store whose creation was cut off (nothing else in it). */
static const char *const unfinished_names[] = { "index.db.new",
						"index.db.new-journal", "data",
						NULL };

/*
 * True when the store directory holds nothing, or only what an
 * interrupted creation leaves (no index.db yet), which is removed.
 */
bool store_dir_fresh(struct store *s)
{
	int fd = dup(s->dir_fd);
	bool fresh = true, leftovers = false;
	struct dirent *e;
	DIR *d;

	if (fd < 0)
		return false;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	while ((e = readdir(d))) {
		bool known = false;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		for (int i = 0; unfinished_names[i]; i++)
			known |= !strcmp(e->d_name, unfinished_names[i]);
		if (!known) {
			fresh = false;
			break;
		}
		leftovers = true;
	}
	closedir(d);
	if (fresh && leftovers) {
		log_warn("store %s: finishing a creation that was cut off",
			 s->dir);
		for (int i = 0; unfinished_names[i]; i++)
			unlinkat(s->dir_fd, unfinished_names[i], 0);
	}
	return fresh;
}

/* Removes what a failed first open made, so nothing is left behind. */
void store_unmake(struct store *s)
{
	static const char *const names[] = { "index.db", "index.db-wal",
					     "index.db-shm", "data" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlinkat(s->dir_fd, names[i], 0);
}

/*
 * Creates a new store's files so that a crash at any moment leaves either
 * no store or a whole one: the index is built as index.db.new (committed,
 * synced) and renamed into place only after the data file exists, then
 * the directory is synced.
 */
int store_create_files(struct store *s, const struct store_config *cfg,
		       char *err, size_t err_len)
{
	char tmp[STORE_PATH_MAX], path[STORE_PATH_MAX];
	sqlite3 *db = NULL;
	int fd, r;

	path_in(s, "index.db.new", tmp, sizeof(tmp));
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	store_vfs_setup();
	r = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK
		    ? store_init_schema(s, db, cfg)
		    : -EIO;
	sqlite3_close(db);
	if (r) {
		snprintf(err, err_len, "store %s: cannot create index", s->dir);
		return r;
	}
	path_in(s, "data", path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fsync(fd) < 0) {
		r = -errno;
		snprintf(err, err_len, "store %s: data file: %s", s->dir,
			 strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	close(fd);
	path_in(s, "index.db", path, sizeof(path));
	if (rename(tmp, path) < 0 || fsync(s->dir_fd) < 0) {
		r = -errno;
		snprintf(err, err_len, "store %s: %s", s->dir, strerror(-r));
		return r;
	}
	iolog_mark("store created");
	return 0;
}
