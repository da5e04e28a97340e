/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fault.h - named fault points, compiled in with --enable-fault-injection.
 *
 * SNAPFS_FAULT=POINT:N:ERR[:COUNT] makes the N-th pass through POINT (and
 * the COUNT-1 after it, default 1) fail with ERR: EIO, ENOSPC, SHORT (a
 * transfer that moves half its bytes, then fails with EIO), or KILL (the
 * daemon dies there by SIGKILL, a crash at an exact point).  Without the
 * switch every point compiles to nothing.
 */
#ifndef SNAPFS_FAULT_H
#define SNAPFS_FAULT_H

#include <stdbool.h>

/* What a fault point asks of its caller. */
#define FAULT_SHORT 1 /* move half, then fail with -EIO */
#define FAULT_KILL 2 /* internal: fault_hit() never returns it */

#ifdef SNAPFS_FAULT_INJECTION
/* 0 to go on, -errno to fail, FAULT_SHORT for a torn transfer.  Any
 * thread.  Aborts on a point name it does not know. */
int fault_hit(const char *point);
/* Whether SNAPFS_FAULT names point (after fault_init). */
bool fault_armed(const char *point);
/* Checks SNAPFS_FAULT; 0 or -EINVAL with a message. */
int fault_init(void);
#define FAULT(point) fault_hit(point)
#else
#define FAULT(point) 0
static inline bool fault_armed(const char *point)
{
	(void)point;
	return false;
}
static inline int fault_init(void)
{
	return 0;
}
#endif

#endif
