// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The I/O engine when the ring itself fails: linked with
 * -Wl,--wrap=io_uring_submit_and_wait,--wrap=__io_uring_get_cqe (the
 * call under the inline io_uring_wait_cqe), so that a test can make one
 * of them fail once and see what the next batch on the same thread gets.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "snapfs/uring.h"

enum wrap_mode {
	PASS, /* call through */
	SUBMIT_FAILS, /* the next submit fails, nothing reaches the kernel */
	SUBMIT_ONLY, /* the next submit does not wait for completions */
};

static struct {
	enum wrap_mode submit;
	int get_cqe_err; /* the next wait for a completion fails with it */
	unsigned last_submitted; /* SQEs the last submit handed over */
} wrap;

int __real_io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr);
int __wrap_io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr);
int __real___io_uring_get_cqe(struct io_uring *ring,
			      struct io_uring_cqe **cqe_ptr, unsigned submit,
			      unsigned wait_nr, sigset_t *sigmask);
int __wrap___io_uring_get_cqe(struct io_uring *ring,
			      struct io_uring_cqe **cqe_ptr, unsigned submit,
			      unsigned wait_nr, sigset_t *sigmask);

int __wrap_io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr)
{
	enum wrap_mode m = wrap.submit;

	wrap.submit = PASS;
	if (m == SUBMIT_FAILS)
		return -ENOMEM;
	wrap.last_submitted = io_uring_sq_ready(ring);
	if (m == SUBMIT_ONLY)
		return io_uring_submit(ring);
	return __real_io_uring_submit_and_wait(ring, wait_nr);
}

int __wrap___io_uring_get_cqe(struct io_uring *ring,
			      struct io_uring_cqe **cqe_ptr, unsigned submit,
			      unsigned wait_nr, sigset_t *sigmask)
{
	int err = wrap.get_cqe_err;

	if (err && wait_nr) {
		wrap.get_cqe_err = 0;
		return err;
	}
	return __real___io_uring_get_cqe(ring, cqe_ptr, submit, wait_nr,
					 sigmask);
}

#define LEN 4096

static char path[64];
static int fd = -1;
static struct uring_engine *e;
static unsigned char data[4][LEN];

static void setup(void)
{
	strcpy(path, "/tmp/snapfs-uring-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	for (int i = 0; i < 4; i++) {
		memset(data[i], 'a' + i, LEN);
		cr_assert_eq(pwrite(fd, data[i], LEN, (off_t)i * LEN), LEN);
	}
	cr_assert_eq(uring_engine_create(&e, 8), 0);
	wrap.submit = PASS;
	wrap.get_cqe_err = 0;
}

static void teardown(void)
{
	uring_engine_destroy(e);
	close(fd);
	unlink(path);
}

TestSuite(uring_fail, .init = setup, .fini = teardown);

/* Reads blocks 2 and 3 in one batch and checks that they, and nothing
 * else, came back, and that the batch handed over its own two SQEs. */
static void next_batch_gets_its_own_results(void)
{
	static unsigned char in[2][LEN];
	struct io_op ops[2];

	memset(in, 0, sizeof(in));
	for (int i = 0; i < 2; i++)
		ops[i] = (struct io_op){
			.fd = fd, .buf = in[i], .len = LEN, .off = (2 + i) * LEN
		};
	cr_assert_eq(uring_run(e, ops, 2), 0);
	cr_assert_eq(wrap.last_submitted, 2,
		     "the next batch submitted %u SQEs for its 2 ops",
		     wrap.last_submitted);
	cr_assert_eq(memcmp(in[0], data[2], LEN), 0);
	cr_assert_eq(memcmp(in[1], data[3], LEN), 0);
}

Test(uring_fail, a_failed_submit_leaves_nothing_for_the_next_batch)
{
	static unsigned char first[2][LEN];
	struct io_op ops[2];

	memset(first, 0x55, sizeof(first));
	for (int i = 0; i < 2; i++)
		ops[i] = (struct io_op){
			.fd = fd, .buf = first[i], .len = LEN, .off = i * LEN
		};
	wrap.submit = SUBMIT_FAILS;
	cr_assert_eq(uring_run(e, ops, 2), -ENOMEM);
	/* the caller may now reuse or free first[] */
	next_batch_gets_its_own_results();
	for (size_t i = 0; i < sizeof(first); i++)
		cr_assert_eq(first[i / LEN][i % LEN], 0x55,
			     "the failed batch's buffer was written at %zu", i);
}

Test(uring_fail, a_failed_wait_returns_with_nothing_in_flight)
{
	static unsigned char first[2][LEN];
	unsigned char pipe_data[2 * LEN];
	struct io_op ops[2];
	int p[2], avail = 0;

	/* Reads of an empty pipe stay in flight until data comes. */
	cr_assert_eq(pipe2(p, O_NONBLOCK), 0);
	memset(first, 0x55, sizeof(first));
	for (int i = 0; i < 2; i++)
		ops[i] = (struct io_op){ .fd = p[0],
					 .buf = first[i],
					 .len = LEN,
					 .off = UINT64_MAX };
	wrap.submit = SUBMIT_ONLY;
	wrap.get_cqe_err = -EBADR;
	cr_assert_eq(uring_run(e, ops, 2), -EBADR);
	cr_assert_eq(wrap.get_cqe_err, 0, "the wait was not reached");
	/* Once it has returned, nothing may still read into first[]: the
	 * pipe's data stays in the pipe. */
	memset(pipe_data, 'p', sizeof(pipe_data));
	cr_assert_eq(write(p[1], pipe_data, sizeof(pipe_data)),
		     (ssize_t)sizeof(pipe_data));
	next_batch_gets_its_own_results();
	cr_assert_eq(ioctl(p[0], FIONREAD, &avail), 0);
	cr_assert_eq(avail, (int)sizeof(pipe_data),
		     "%d bytes of the pipe were read by the failed batch",
		     (int)sizeof(pipe_data) - avail);
	for (size_t i = 0; i < sizeof(first); i++)
		cr_assert_eq(first[i / LEN][i % LEN], 0x55,
			     "the failed batch's buffer was written at %zu", i);
	close(p[0]);
	close(p[1]);
}
