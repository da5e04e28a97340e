// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * progress.c - progress on stderr for the client's long commands: on a
 * terminal one line redrawn at most five times a second (bytes, rate,
 * time left), else a plain line every 10% (logs, systemd's journal).
 */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "snapfs/progress.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void show(struct progress *p, bool final)
{
	double t = now_s(), el = t - p->start;
	double rate = el > 0 ? (double)p->done / el : 0;
	int pct = p->total ? (int)(p->done * 100 / p->total) : 100;

	if (!p->on)
		return;
	if (p->tty) {
		double eta;

		if (!final && t - p->last < 0.2)
			return;
		p->last = t;
		eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
		fprintf(stderr,
			"\r%8.1f / %.1f MiB %3d%% %7.1f MiB/s ETA %02d:%02d%s",
			(double)p->done / 1048576, (double)p->total / 1048576,
			pct, rate / 1048576, (int)eta / 60, (int)eta % 60,
			final ? "\n" : "");
		return;
	}
	if ((final && p->last_pct != pct) || pct / 10 > p->last_pct / 10) {
		p->last_pct = pct;
		fprintf(stderr, "%s %" PRIu64 " of %" PRIu64 " bytes (%d%%)\n",
			p->verb, p->done, p->total, pct);
	}
}

void progress_start(struct progress *p, enum progress_mode mode,
		    const char *verb, uint64_t total)
{
	*p = (struct progress){
		.on = mode == PROGRESS_ON ||
		      (mode == PROGRESS_AUTO && isatty(STDERR_FILENO)),
		.tty = isatty(STDERR_FILENO),
		.verb = verb,
		.total = total,
		.start = now_s(),
	};
}

void progress_add(struct progress *p, uint64_t n)
{
	p->done += n;
	show(p, false);
}

void progress_end(struct progress *p)
{
	show(p, true);
}
