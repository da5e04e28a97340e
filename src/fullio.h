/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fullio.h - transfers that move every byte however the kernel splits
 * them (a signal, a short read or write), or fail: 0 or -errno (-EIO when the
 * kernel moves nothing).
 */
#ifndef SNAPFS_FULLIO_H
#define SNAPFS_FULLIO_H

#include <errno.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* Writes iov[0..n): at off, or to a stream (a socket, a pipe) when off
 * is -1.  iov is consumed (advanced) on the way. */
static inline int writev_full(int fd, struct iovec *iov, int n, off_t off)
{
	while (n > 0) {
		ssize_t w =
			off < 0 ? writev(fd, iov, n) : pwritev(fd, iov, n, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		if (off >= 0)
			off += w;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Writes iov[0..n) at off (0 or more); iov is consumed on the way. */
static inline int pwritev_full(int fd, struct iovec *iov, int n, off_t off)
{
	return writev_full(fd, iov, n, off);
}

/* Writes buf[0..len) at off. */
static inline int pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return len ? writev_full(fd, &iov, 1, off) : 0;
}

/* Writes buf[0..len) to a stream (a socket, a pipe). */
static inline int write_full(int fd, const void *buf, size_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return len ? writev_full(fd, &iov, 1, -1) : 0;
}

/* Reads buf[0..len) from off; -EIO at the end of the file before len. */
static inline int pread_full(int fd, void *buf, size_t len, off_t off)
{
	while (len) {
		ssize_t got = pread(fd, buf, len, off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -EIO;
		buf = (char *)buf + got;
		len -= (size_t)got;
		off += got;
	}
	return 0;
}

#endif
