// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * log.c - the message sink.
 *
 * Owns where messages go: stderr (prefixed "snapfs: ") while the process is
 * attached to a terminal or runs in the foreground, syslog once detached.
 * A message is formatted into one buffer and written with one call, so lines
 * from several threads never interleave.  The threshold is written before
 * any worker thread starts and only read afterwards.
 */
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "snapfs/log.h"

enum log_level log_threshold = LOG_LVL_INFO;
static int use_syslog;
static char syslog_tag[256]; /* the mount point, first in each line */

void log_set_level(enum log_level level)
{
	log_threshold = level;
}

void log_to_syslog(const char *ident, const char *tag)
{
	snprintf(syslog_tag, sizeof(syslog_tag), "%s", tag ? tag : "");
	openlog(ident, LOG_PID, LOG_DAEMON);
	use_syslog = 1;
}

void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024];
	int n;

	if (level > log_threshold)
		return;
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	if (n > 0 && line[n - 1] == '\n')
		n--;
	line[n] = '\0';
	if (use_syslog) {
		if (syslog_tag[0])
			syslog(prio[level], "%s: %s", syslog_tag, line);
		else
			syslog(prio[level], "%s", line);
		return;
	}
	fprintf(stderr, "snapfs: %s\n", line);
}

void log_write(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
}
