/* lazyfs's FUSE workers. Each reads requests straight into its journal
 * slot (lazyfs-holder.h) and hands them to libfuse, so that a request a
 * killed daemon had read but not answered is still in the journal for the
 * next daemon, which answers it first. /dev/fuse is non-blocking: a worker
 * with nothing to read waits in epoll, on the device (exclusively: one
 * worker wakes per request) and on the stop eventfd, so stopping never
 * cuts a request in half and needs neither signals nor cancellation. */
#define FUSE_USE_VERSION 312
#include "lazyfs-holder.h"
#include "lazyfs-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct lazyfs_worker {
	pthread_t tid;
	struct lazyfs *fs;
	unsigned i;
	int epfd;
};

void lazyfs_loop_process(struct lazyfs *fs, uint8_t *slot, size_t len)
{
	struct fuse_buf b;
	memset(&b, 0, sizeof(b));
	b.size = len;
	b.mem = slot;
	fuse_session_process_buf(fs->conn.se, &b);
	lazyfs_slot_clear(slot);
}

/* Answers what a previous daemon left in slots first, first + n, ... */
static unsigned replay(struct lazyfs *fs, unsigned first)
{
	const struct lazyfs_journal_head *head = (const void *)fs->conn.journal;
	unsigned n = 0;
	for (unsigned i = first; i < head->nslots; i += fs->conn.nworkers) {
		uint8_t *slot = lazyfs_slot(fs->conn.journal, i);
		uint32_t len;
		memcpy(&len, slot, sizeof(len));
		if (lazyfs_slot_pending(slot, head->slot_size)) {
			lazyfs_loop_process(fs, slot, len);
			n++;
		}
		lazyfs_slot_clear(slot);
	}
	return n;
}

/* Waits for a request or the stop; 1 to stop. */
static int wait_request(struct lazyfs_worker *w)
{
	struct epoll_event ev[2];
	int n = epoll_wait(w->epfd, ev, 2, -1);
	for (int i = 0; i < n; i++)
		if (ev[i].data.fd == w->fs->conn.loop_efd)
			return 1;
	return 0;
}

static void *worker_main(void *arg)
{
	struct lazyfs_worker *w = arg;
	struct lazyfs *fs = w->fs;
	const struct lazyfs_journal_head *head = (const void *)fs->conn.journal;
	uint8_t *slot = lazyfs_slot(fs->conn.journal, w->i);
	unsigned again = replay(fs, w->i);
	if (again)
		snap_info(fs->lg, "lazyfs: answered %u request(s) a previous daemon had left",
		          again);
	for (;;) {
		lazyfs_slot_clear(slot);
		ssize_t n = read(fs->conn.fd, slot, head->slot_size);
		int err = errno;
		if (n > 0) {
			lazyfs_loop_process(fs, slot, (size_t)n);
			continue;
		}
		if (n < 0 && err == EAGAIN && wait_request(w))
			break;
		if (n < 0 && (err == EINTR || err == EAGAIN || err == ENOENT))
			continue;
		if (w->i == 0)
			snap_warn(fs->lg, "lazyfs: the FUSE connection ended (%s)",
			          n < 0 && err != ENODEV ? strerror(err) : "unmounted or aborted");
		break;
	}
	return NULL;
}

/* An epoll set of /dev/fuse (exclusive wake-ups) and the stop eventfd. */
static int worker_epoll(const struct lazyfs_conn *c)
{
	struct epoll_event dev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = c->fd};
	struct epoll_event stop = {.events = EPOLLIN, .data.fd = c->loop_efd};
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return -errno;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &dev) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, c->loop_efd, &stop) < 0) {
		int r = -errno;
		close(ep);
		return r;
	}
	return ep;
}

int lazyfs_loop_start(struct lazyfs *fs)
{
	struct lazyfs_conn *c = &fs->conn;
	int fl = fcntl(c->fd, F_GETFL);
	/* shared with the holder, which polls before it reads too */
	if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	c->loop_efd = eventfd(0, EFD_CLOEXEC);
	c->workers = calloc(fs->threads, sizeof(*c->workers));
	if (c->loop_efd < 0 || !c->workers)
		return c->loop_efd < 0 ? -errno : -ENOMEM;
	for (unsigned i = 0; i < fs->threads; i++) {
		struct lazyfs_worker *w = &c->workers[i];
		w->fs = fs;
		w->i = i;
		w->epfd = worker_epoll(c);
		int r = w->epfd < 0 ? -w->epfd : pthread_create(&w->tid, NULL, worker_main, w);
		if (r != 0) {
			if (w->epfd >= 0)
				close(w->epfd);
			return i ? 0 : -r; /* those started serve; stop joins them */
		}
		c->nworkers = i + 1;
	}
	return 0;
}

void lazyfs_loop_stop(struct lazyfs *fs)
{
	struct lazyfs_conn *c = &fs->conn;
	uint64_t one = 1;
	if (c->nworkers && write(c->loop_efd, &one, sizeof(one)) < 0)
		snap_err(fs->lg, "lazyfs: cannot stop the FUSE workers: %s", strerror(errno));
	for (unsigned i = 0; i < c->nworkers; i++) {
		pthread_join(c->workers[i].tid, NULL);
		close(c->workers[i].epfd);
	}
	if (c->loop_efd >= 0)
		close(c->loop_efd);
	c->loop_efd = -1;
	free(c->workers);
	c->workers = NULL;
	c->nworkers = 0;
}
