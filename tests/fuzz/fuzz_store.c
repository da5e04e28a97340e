// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: opening a damaged store.  The input becomes the
 * store's index.db (beside a small data file); store_open must refuse it
 * with a message or open it, never crash or hang.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapfs/log.h"
#include "snapfs/store.h"

static char dir[64];

static void write_file(const char *name, const uint8_t *data, size_t size)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_config c = { .dir = dir,
				  .image_size = 1 << 20,
				  .backing_id = "file:1:2",
				  .durability = DURABILITY_PROCESS };
	static uint8_t zeros[65536];
	struct store *s;
	char err[512], path[128];

	if (!dir[0]) {
		strcpy(dir, "/tmp/snapfs-fuzz-XXXXXX");
		if (!mkdtemp(dir))
			abort();
		log_set_level(LOG_LVL_ERROR);
	}
	snprintf(path, sizeof(path), "%s/index.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/index.db-shm", dir);
	unlink(path);
	write_file("index.db", data, size);
	write_file("data", zeros, sizeof(zeros));
	if (store_open(&s, &c, err, sizeof(err)) == 0) {
		struct store_snapshot *snaps;
		size_t n;

		if (store_list_snapshots(s, &snaps, &n) == 0)
			free(snaps);
		store_close(s, false);
	} else if (!err[0] || strchr(err, '\n')) {
		abort(); /* a refusal is one line */
	}
	return 0;
}
