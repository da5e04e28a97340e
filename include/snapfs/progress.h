/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * progress.h - the progress a long client command shows on stderr (backup,
 * export-diff): a bar redrawn in place on a terminal, a line every 10%
 * otherwise, nothing when off.
 */
#ifndef SNAPFS_PROGRESS_H
#define SNAPFS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

enum progress_mode { PROGRESS_AUTO, PROGRESS_ON, PROGRESS_OFF };

struct progress {
	bool on, tty;
	const char *verb; /* "copied", "exported": the plain lines' word */
	uint64_t total, done;
	double start, last;
	int last_pct;
};

/* Starts showing progress towards total bytes; AUTO shows it when stderr
 * is a terminal. */
void progress_start(struct progress *p, enum progress_mode mode,
		    const char *verb, uint64_t total);

/* n more bytes done. */
void progress_add(struct progress *p, uint64_t n);

/* All done: the last line. */
void progress_end(struct progress *p);

#endif
