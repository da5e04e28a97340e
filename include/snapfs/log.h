/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * log.h - one sink for every message of the daemon and its tools.
 *
 * Messages go to stderr until log_to_syslog() is called (once the daemon
 * has detached), then to syslog.  The macros check the level before they
 * evaluate their arguments, so a debug line on a hot path costs a branch.
 */
#ifndef SNAPFS_LOG_H
#define SNAPFS_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* The current threshold; messages above it are dropped. */
extern enum log_level log_threshold;

/* Sets the threshold.  Call before threads start. */
void log_set_level(enum log_level level);

/* Sends every later message to syslog under IDENT (kept, not copied),
 * each line starting "TAG: " (the mount point; copied). */
void log_to_syslog(const char *ident, const char *tag);

/* Writes one message; use the macros below instead. */
void log_write(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Routes libfuse's own messages through this sink. */
void log_vwrite(enum log_level level, const char *fmt, va_list ap);

#define log_at(lvl, ...)                               \
	do {                                           \
		if ((lvl) <= log_threshold)            \
			log_write((lvl), __VA_ARGS__); \
	} while (0)
#define log_error(...) log_at(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
