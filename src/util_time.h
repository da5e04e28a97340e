/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * util_time.h - the wall clock in nanoseconds since the epoch, the unit
 * of every time the store records (snapshot and event times); and a
 * monotonic clock for deadlines.
 */
#ifndef SNAPFS_UTIL_TIME_H
#define SNAPFS_UTIL_TIME_H

#include <stdint.h>
#include <time.h>

static inline int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Nanoseconds on a clock that never steps back: for deadlines. */
static inline int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
