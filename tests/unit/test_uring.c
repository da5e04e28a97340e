// SPDX-License-Identifier: GPL-2.0-or-later
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapfs/uring.h"

static char path[64];
static int fd = -1;
static struct uring_engine *e;

static void setup(void)
{
	strcpy(path, "/tmp/snapfs-uring-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(uring_engine_create(&e, 8), 0);
}

static void teardown(void)
{
	uring_engine_destroy(e);
	close(fd);
	unlink(path);
}

TestSuite(uring, .init = setup, .fini = teardown);

Test(uring, a_batch_larger_than_the_ring_moves_every_byte)
{
	enum { N = 50, LEN = 4096 };
	static unsigned char out[N][LEN], in[N][LEN];
	struct io_op ops[N];

	for (int i = 0; i < N; i++) {
		memset(out[i], i + 1, LEN);
		/* written in reverse order of offsets */
		ops[i] = (struct io_op){ .fd = fd,
					 .write = true,
					 .buf = out[i],
					 .len = LEN,
					 .off = (uint64_t)(N - 1 - i) * LEN };
	}
	cr_assert_eq(uring_run(e, ops, N), 0);
	for (int i = 0; i < N; i++)
		ops[i] = (struct io_op){ .fd = fd,
					 .buf = in[i],
					 .len = LEN,
					 .off = (uint64_t)(N - 1 - i) * LEN };
	cr_assert_eq(uring_run(e, ops, N), 0);
	for (int i = 0; i < N; i++)
		cr_assert_eq(memcmp(in[i], out[i], LEN), 0, "op %d", i);
}

Test(uring, a_read_past_the_end_is_eio_not_short_data)
{
	unsigned char buf[8192];
	struct io_op ops[2] = {
		{ .fd = fd, .write = true, .buf = buf, .len = 4096, .off = 0 },
	};

	memset(buf, 7, sizeof(buf));
	cr_assert_eq(uring_run(e, ops, 1), 0);
	ops[0] = (struct io_op){ .fd = fd, .buf = buf, .len = 4096, .off = 0 };
	ops[1] = (struct io_op){
		.fd = fd, .buf = buf + 4096, .len = 4096, .off = 4096
	};
	cr_assert_eq(uring_run(e, ops, 2), -EIO);
	cr_assert_eq(uring_run(e, ops + 1, 1), -EIO, "single op path too");
}

Test(uring, errors_of_the_file_come_back_as_negative_errno)
{
	unsigned char buf[512];
	struct io_op ops[2] = {
		{ .fd = fd, .buf = buf, .len = 512, .off = 0 },
		{ .fd = 9999, .buf = buf, .len = 512, .off = 0 },
	};

	memset(buf, 1, sizeof(buf));
	cr_assert_eq(pwrite(fd, buf, 512, 0), 512);
	cr_assert_eq(uring_run(e, ops, 2), -EBADF);
}

/* A batch mixing ops on a file in memory (made inline) with ops on the
 * ring: every op lands where it should, and an error of either kind is
 * the batch's. */
Test(uring, ops_on_a_file_in_memory_mix_with_ring_ops)
{
	enum { N = 300, LEN = 4096 };
	static unsigned char out[N][LEN], in[N][LEN];
	struct io_op ops[N];
	char shm[64] = "/dev/shm/snapfs-uring-XXXXXX";
	int mfd = mkstemp(shm), fds[2];

	cr_assert_geq(mfd, 0);
	unlink(shm);
	uring_engine_add_file(e, mfd);
	fds[0] = fd;
	fds[1] = mfd;
	for (int i = 0; i < N; i++) {
		memset(out[i], i % 251 + 1, LEN);
		ops[i] = (struct io_op){ .fd = fds[i % 3 == 0],
					 .write = true,
					 .buf = out[i],
					 .len = LEN,
					 .off = (uint64_t)i * LEN };
	}
	cr_assert_eq(uring_run(e, ops, N), 0);
	for (int i = 0; i < N; i++) {
		ops[i].write = false;
		ops[i].buf = in[i];
	}
	cr_assert_eq(uring_run(e, ops, N), 0);
	for (int i = 0; i < N; i++)
		cr_assert_eq(memcmp(in[i], out[i], LEN), 0, "op %d", i);

	ops[0].off = (uint64_t)N * LEN * 2; /* past the end, made inline */
	cr_assert_eq(uring_run(e, ops, 5), -EIO);
	ops[0].off = 0;
	ops[1].fd = 9999; /* on the ring */
	cr_assert_eq(uring_run(e, ops, 5), -EBADF);
	close(mfd);
}
