// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * uring.c - the I/O engine.
 *
 * Owns one io_uring per calling thread, made on the thread's first batch
 * and freed when the thread exits (a pthread key destructor) or when the
 * engine is destroyed.  A batch is submitted with one io_uring_submit and
 * reaped in full before uring_run returns, so callers keep the simple
 * "call, then reply" shape while a request that spans many chunks still
 * costs one system call for all of its transfers.  That holds when the
 * ring itself fails too (a submit or a wait that returns an error): what
 * the kernel took is cancelled and waited for, and the thread's ring is
 * replaced, so no op of a failed batch lingers to touch the caller's
 * buffers after it has them back or to be counted by the next batch.
 *
 * A batch of one op is issued as a plain pread/pwrite (see uring_run),
 * and so is every op on a file in memory (tmpfs, ramfs): io_uring has no
 * non-blocking buffered transfer there and hands each one to a kernel
 * worker thread, two context switches for what is a copy (1 MiB buffered
 * reads of a snapshot whose copies are in a tmpfs store, one at a time,
 * in turn with live.img's: .55 .57 .66 of live through the ring, .63 .64
 * .68 inline).
 * Short transfers (a signal, a page boundary of a pipe) are finished with
 * plain pread/pwrite: rare, and correctness matters more there than the
 * batch.  Where the kernel refuses io_uring (seccomp, an old kernel), the
 * engine falls back to pread/pwrite for every op and says so once.
 *
 * Locking: the list of rings is guarded by a mutex taken only when a
 * thread makes or frees its ring; the rings themselves are per-thread.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapfs/fault.h"
#include "snapfs/iolog.h"
#include "snapfs/log.h"
#include "snapfs/uring.h"
#include "memfile.h"

struct thread_ring {
	struct io_uring ring;
	struct uring_engine *engine;
	struct thread_ring *prev, *next;
};

/* Ops a batch submits to the ring at most at once. */
#define SLICE 128u
#define INLINE_FDS 8

struct uring_engine {
	pthread_key_t key;
	pthread_mutex_t lock;
	struct thread_ring *rings;
	unsigned depth;
	bool no_uring;
	unsigned ninline;
	int inline_fds[INLINE_FDS]; /* files in memory: set before use */
};

static void ring_unlink(struct uring_engine *e, struct thread_ring *tr)
{
	if (tr->prev)
		tr->prev->next = tr->next;
	else
		e->rings = tr->next;
	if (tr->next)
		tr->next->prev = tr->prev;
}

static void ring_free_at_exit(void *p)
{
	struct thread_ring *tr = p;
	struct uring_engine *e = tr->engine;

	pthread_mutex_lock(&e->lock);
	ring_unlink(e, tr);
	pthread_mutex_unlock(&e->lock);
	io_uring_queue_exit(&tr->ring);
	free(tr);
}

int uring_engine_create(struct uring_engine **out, unsigned depth)
{
	struct uring_engine *e = calloc(1, sizeof(*e));
	int r;

	if (!e)
		return -ENOMEM;
	r = pthread_key_create(&e->key, ring_free_at_exit);
	if (r) {
		free(e);
		return -r;
	}
	pthread_mutex_init(&e->lock, NULL);
	e->depth = depth < SLICE ? depth : SLICE;
	*out = e;
	return 0;
}

void uring_engine_destroy(struct uring_engine *e)
{
	if (!e)
		return;
	pthread_key_delete(e->key);
	while (e->rings) {
		struct thread_ring *tr = e->rings;

		ring_unlink(e, tr);
		io_uring_queue_exit(&tr->ring);
		free(tr);
	}
	pthread_mutex_destroy(&e->lock);
	free(e);
}

void uring_engine_add_file(struct uring_engine *e, int fd)
{
	if (!file_in_memory(fd))
		return;
	for (unsigned i = 0; i < e->ninline; i++)
		if (e->inline_fds[i] == fd)
			return;
	if (e->ninline < INLINE_FDS)
		e->inline_fds[e->ninline++] = fd;
}

static bool runs_inline(const struct uring_engine *e, int fd)
{
	for (unsigned i = 0; i < e->ninline; i++)
		if (e->inline_fds[i] == fd)
			return true;
	return false;
}

static struct thread_ring *ring_get(struct uring_engine *e)
{
	struct thread_ring *tr = pthread_getspecific(e->key);
	int r;

	if (tr || e->no_uring)
		return tr;
	tr = calloc(1, sizeof(*tr));
	if (!tr)
		return NULL;
	r = io_uring_queue_init(e->depth, &tr->ring, 0);
	if (r < 0) {
		free(tr);
		pthread_mutex_lock(&e->lock);
		if (!e->no_uring)
			log_warn("uring: io_uring unavailable (%d), using "
				 "pread/pwrite",
				 r);
		e->no_uring = true;
		pthread_mutex_unlock(&e->lock);
		return NULL;
	}
	tr->engine = e;
	pthread_mutex_lock(&e->lock);
	tr->next = e->rings;
	if (e->rings)
		e->rings->prev = tr;
	e->rings = tr;
	pthread_mutex_unlock(&e->lock);
	pthread_setspecific(e->key, tr);
	return tr;
}

/* Moves the bytes of op from `done` on with plain system calls. */
static int op_finish_sync(const struct io_op *op, size_t done)
{
	while (done < op->len) {
		char *p = (char *)op->buf + done;
		ssize_t n = op->write ? pwrite(op->fd, p, op->len - done,
					       (off_t)(op->off + done))
				      : pread(op->fd, p, op->len - done,
					      (off_t)(op->off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* Lets go of the calling thread's ring: the next batch makes a new one. */
static void ring_discard(struct thread_ring *tr)
{
	struct uring_engine *e = tr->engine;

	pthread_setspecific(e->key, NULL);
	pthread_mutex_lock(&e->lock);
	ring_unlink(e, tr);
	pthread_mutex_unlock(&e->lock);
	io_uring_queue_exit(&tr->ring);
	free(tr);
}

/*
 * After a failed submit or wait: cancels the in_flight ops the kernel took
 * and waits for each one's completion (a cancelled one completes too), so
 * that nothing moves bytes to or from the batch's buffers once its caller
 * has them back; then discards the ring, with whatever SQEs the kernel
 * never took.  A wait that keeps failing is waited out with poll(2) on
 * the ring; to return earlier would let the kernel write into memory the
 * caller has freed.
 */
static void ring_abandon(struct thread_ring **trp, unsigned in_flight)
{
	struct thread_ring *tr = *trp;
	struct io_uring_sync_cancel_reg cancel = {
		.flags = IORING_ASYNC_CANCEL_ANY,
		.timeout = { .tv_sec = -1, .tv_nsec = -1 },
	};
	struct io_uring_cqe *cqe;

	if (in_flight) /* old kernels: the ops complete by themselves */
		io_uring_register_sync_cancel(&tr->ring, &cancel);
	while (in_flight) {
		int r = io_uring_wait_cqe(&tr->ring, &cqe);

		if (!r) {
			io_uring_cqe_seen(&tr->ring, cqe);
			in_flight--;
		} else if (r != -EINTR) {
			struct pollfd pfd = { .fd = tr->ring.ring_fd,
					      .events = POLLIN };

			poll(&pfd, 1, 100);
		}
	}
	ring_discard(tr);
	*trp = NULL;
}

/* Submits and reaps *ops[0..n), n no more than the ring's depth.  On a
 * failure of the ring itself, returns only once none of them is in
 * flight, with *trp discarded (NULL): the next op makes a new ring. */
static int run_slice(struct thread_ring **trp, struct io_op *const *v,
		     unsigned n)
{
	struct thread_ring *tr = *trp;
	struct io_uring_cqe *cqe;
	unsigned i, reaped = 0;
	int r, first_err = 0;

	for (i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&tr->ring);
		const struct io_op *op = v[i];

		if (op->write)
			io_uring_prep_write(sqe, op->fd, op->buf,
					    (unsigned)op->len, op->off);
		else
			io_uring_prep_read(sqe, op->fd, op->buf,
					   (unsigned)op->len, op->off);
		io_uring_sqe_set_data64(sqe, i);
	}
	/* The kernel may take fewer SQEs than offered: offer the rest. */
	for (;;) {
		unsigned left = io_uring_sq_ready(&tr->ring);

		r = io_uring_submit_and_wait(&tr->ring, n);
		if (r == -EINTR)
			continue;
		if (r < 0 || !io_uring_sq_ready(&tr->ring))
			break;
		if (io_uring_sq_ready(&tr->ring) == left) {
			r = -EAGAIN;
			break;
		}
	}
	if (r < 0) {
		log_error("uring: submit %u ops: %s", n, strerror(-r));
		ring_abandon(trp, n - io_uring_sq_ready(&tr->ring));
		return r;
	}
	while (reaped < n) {
		r = io_uring_wait_cqe(&tr->ring, &cqe);
		if (r == -EINTR)
			continue;
		if (r < 0) {
			log_error("uring: wait for %u ops: %s", n - reaped,
				  strerror(-r));
			ring_abandon(trp, n - reaped);
			return r;
		}
		i = (unsigned)io_uring_cqe_get_data64(cqe);
		r = cqe->res;
		io_uring_cqe_seen(&tr->ring, cqe);
		reaped++;
		if (r < 0)
			r = r == -EINTR || r == -EAGAIN
				    ? op_finish_sync(v[i], 0)
				    : r;
		else if ((size_t)r < v[i]->len)
			r = r == 0 && !v[i]->write
				    ? -EIO
				    : op_finish_sync(v[i], (size_t)r);
		else
			r = 0;
		if (r && !first_err)
			first_err = r;
	}
	return first_err;
}

/* An injected fault of one of ops: the batch fails as a whole, a torn
 * transfer having moved half its bytes first. */
static int injected_fault(struct io_op *ops, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		int r = ops[i].fault ? FAULT(ops[i].fault) : 0;

		if (r == FAULT_SHORT) {
			struct io_op half = ops[i];

			half.len /= 2;
			op_finish_sync(&half, 0);
			return -EIO;
		}
		if (r)
			return r;
	}
	return 0;
}

static int uring_run_batch(struct uring_engine *e, struct io_op *ops,
			   unsigned n);

/* Records the completed writes of a batch in the power-loss log. */
static void log_writes(const struct io_op *ops, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (ops[i].write && ops[i].fault)
			iolog_write(strcmp(ops[i].fault, "data.write")
					    ? IOLOG_BACKING
					    : IOLOG_DATA,
				    ops[i].off, ops[i].buf, ops[i].len);
}

int uring_run(struct uring_engine *e, struct io_op *ops, unsigned n)
{
	int r = injected_fault(ops, n);

	if (r)
		return r;
	r = uring_run_batch(e, ops, n);
	if (!r)
		log_writes(ops, n);
	return r;
}

static int uring_run_batch(struct uring_engine *e, struct io_op *ops,
			   unsigned n)
{
	struct io_op *v[SLICE];
	struct thread_ring *tr = NULL;
	int r = 0, first_err = 0;
	unsigned i, m = 0;

	/* A batch of one is one system call either way; made directly it
	 * runs inline, where io_uring may hand a buffered transfer to a
	 * kernel worker thread and cost two context switches. */
	if (n == 1)
		return op_finish_sync(&ops[0], 0);
	for (i = 0; i < n; i++) {
		/* the thread's ring is made by its first op that needs one */
		if (!runs_inline(e, ops[i].fd) && (tr || (tr = ring_get(e)))) {
			v[m++] = &ops[i];
			if (m < e->depth)
				continue;
			r = run_slice(&tr, v, m);
			m = 0;
		} else {
			r = op_finish_sync(&ops[i], 0);
		}
		if (r && !first_err)
			first_err = r;
	}
	r = m ? run_slice(&tr, v, m) : 0;
	return first_err ? first_err : r;
}
