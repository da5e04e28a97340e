// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: the command line and SIZE parsers.  The input is cut
 * at NUL bytes into argv words.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapfs/options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), *argv[34] = { "snapfs" }, err[256];
	struct snapfs_options o;
	uint64_t v;
	int argc = 1;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (char *p = copy; argc < 33 && p <= copy + size; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	options_parse_size(argv[1], &v);
	options_parse_argv(&o, argc, argv, err, sizeof(err));
	options_free(&o);
	free(copy);
	return 0;
}
