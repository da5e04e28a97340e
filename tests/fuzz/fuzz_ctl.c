// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: the control channel's request decoder, on a real
 * daemon context (image, store, snapshots, change tracking) without FUSE.
 * Every reply must start with "ok" or "error ".
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapfs/cbt.h"
#include "snapfs/cow.h"
#include "snapfs/ctl.h"
#include "snapfs/daemon.h"
#include "snapfs/log.h"
#include "snapfs/snapshot.h"
#include "snapfs/store.h"
#include "snapfs/uring.h"

static struct daemon d;

static void setup(void)
{
	static char dir[64], img[96], store[96];
	struct store_config sc;
	char err[512];
	int fd;

	strcpy(dir, "/tmp/snapfs-fuzz-ctl-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(img, sizeof(img), "%s/img", dir);
	snprintf(store, sizeof(store), "%s/store", dir);
	fd = open(img, O_RDWR | O_CREAT, 0600);
	if (fd < 0 || ftruncate(fd, 1 << 20))
		abort();
	close(fd);
	log_set_level(LOG_LVL_ERROR);
	d.opts.durability = DURABILITY_PROCESS;
	d.store_path = store;
	if (backing_open(&d.backing, img, false, err, sizeof(err)))
		abort();
	sc = (struct store_config){ .dir = store,
				    .image_size = d.backing.size,
				    .backing_id = d.backing.identity,
				    .durability = DURABILITY_PROCESS };
	if (store_open(&d.store, &sc, err, sizeof(err)) ||
	    snapshots_load(&d.snaps, d.store, &d.backing, DURABILITY_PROCESS) ||
	    uring_engine_create(&d.io, 8) ||
	    cbt_create(&d.cbt, d.store, d.backing.size, 4, true, true) ||
	    cow_create(&d.cow, &d.backing, d.store, d.io, d.cbt, 0))
		abort();
	snapshots_attach(d.snaps, d.cow, d.cbt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1), *reply = NULL;
	size_t len = 0;

	if (!d.store)
		setup();
	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	/* resize grows the image file for real (up to 128 TiB, sparse, and a
	 * bitmap row per 64 new blocks): not within a fuzzer's run */
	if (strstr(line, "resize")) {
		free(line);
		return 0;
	}
	if (ctl_handle(&d, 0, line, &reply, &len) == 0) {
		if (len < 2 ||
		    (strncmp(reply, "ok", 2) && strncmp(reply, "error ", 6)))
			abort();
		free(reply);
	}
	free(line);
	return 0;
}
