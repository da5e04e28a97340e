// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: opening a damaged store.  The input is a list of
 * byte changes (2 bytes of offset, 1 byte of value) applied to the index
 * of a real store (snapshots, preserved chunks, bitmaps, events), so the
 * damage lands in SQLite pages and rows that matter; store_open must then
 * refuse it with one line or open it and read it, never crash or hang.
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
static uint8_t *pristine;
static size_t pristine_len;

static void path_of(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static void write_file(const char *name, const uint8_t *data, size_t size)
{
	char path[128];
	int fd;

	path_of(name, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
}

static struct store_config config(void)
{
	return (struct store_config){ .dir = dir,
				      .chunk_size = 4096,
				      .image_size = 1 << 20,
				      .backing_id = "file:1:2",
				      .durability = DURABILITY_PROCESS };
}

/* Builds a real store once and keeps its index bytes. */
static void setup(void)
{
	struct store_config c = config();
	struct store_snapshot snap = { .size = 1 << 20 };
	struct chunk_row rows[8];
	struct cbt_word w = { 3, 0xf0f0 };
	struct store *s;
	char err[512], path[128];
	FILE *f;

	strcpy(dir, "/tmp/snapfs-fuzz-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	log_set_level(LOG_LVL_ERROR);
	if (store_open(&s, &c, err, sizeof(err)))
		abort();
	for (int i = 0; i < 3; i++) {
		snprintf(snap.uuid, sizeof(snap.uuid),
			 "00000000-0000-4000-8000-00000000000%d", i);
		if (store_add_snapshot(s, &snap))
			abort();
	}
	for (int i = 0; i < 8; i++) {
		rows[i] = (struct chunk_row){ (uint64_t)i * 7, 1 + i % 3, -1,
					      (uint32_t)i };
		if (i % 2 && store_slot_alloc(s, &rows[i].data_off))
			abort();
	}
	if (store_commit(s, rows, 8, 4, &w, 1))
		abort();
	store_add_event(s, "test", "an event");
	store_close(s, true);
	path_of("index.db", path, sizeof(path));
	f = fopen(path, "rb");
	if (!f)
		abort();
	fseek(f, 0, SEEK_END);
	pristine_len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	pristine = malloc(pristine_len);
	if (!pristine || fread(pristine, 1, pristine_len, f) != pristine_len)
		abort();
	fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_config c = config();
	static uint8_t zeros[65536];
	struct store *s;
	char err[512], path[128];
	uint8_t *db;

	if (!pristine)
		setup();
	db = malloc(pristine_len);
	if (!db)
		return 0;
	memcpy(db, pristine, pristine_len);
	for (size_t i = 0; i + 3 <= size; i += 3)
		db[((size_t)data[i] << 8 | data[i + 1]) % pristine_len] =
			data[i + 2];
	path_of("index.db-wal", path, sizeof(path));
	unlink(path);
	path_of("index.db-shm", path, sizeof(path));
	unlink(path);
	write_file("index.db", db, pristine_len);
	write_file("data", zeros, sizeof(zeros));
	free(db);
	err[0] = '\0';
	if (store_open(&s, &c, err, sizeof(err)) == 0) {
		struct store_snapshot *snaps;
		struct store_generation *gens;
		struct chunk_row row;
		size_t n;

		if (store_list_snapshots(s, &snaps, &n) == 0)
			free(snaps);
		if (store_list_generations(s, &gens, &n) == 0)
			free(gens);
		store_find_copy(s, 7, 1, &row);
		store_close(s, false);
	} else if (!err[0] || strchr(err, '\n')) {
		abort(); /* a refusal is one line */
	}
	return 0;
}
