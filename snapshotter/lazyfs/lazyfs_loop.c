/* lazyfs's FUSE workers. Each reads requests straight into its journal
 * slot (lazyfs-holder.h) and hands them to libfuse, so that a request a
 * killed daemon had read but not answered is still in the journal for the
 * next daemon, which answers it first. Cancellation is enabled only while
 * a worker waits in read(2): stopping never cuts a request in half. */
#define FUSE_USE_VERSION 312
#include "lazyfs-holder.h"
#include "lazyfs-internal.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct lazyfs_worker {
	pthread_t tid;
	struct lazyfs *fs;
	unsigned i;
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

static void *worker_main(void *arg)
{
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
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
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		ssize_t n = read(fs->conn.fd, slot, head->slot_size);
		int err = errno;
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		if (n > 0) {
			lazyfs_loop_process(fs, slot, (size_t)n);
			continue;
		}
		if (n < 0 && (err == EINTR || err == EAGAIN || err == ENOENT))
			continue;
		if (w->i == 0)
			snap_warn(fs->lg, "lazyfs: the FUSE connection ended (%s)",
			          n < 0 && err != ENODEV ? strerror(err) : "unmounted or aborted");
		break;
	}
	return NULL;
}

int lazyfs_loop_start(struct lazyfs *fs)
{
	struct lazyfs_conn *c = &fs->conn;
	c->workers = calloc(fs->threads, sizeof(*c->workers));
	if (!c->workers)
		return -ENOMEM;
	c->nworkers = fs->threads;
	for (unsigned i = 0; i < fs->threads; i++) {
		struct lazyfs_worker *w = &c->workers[i];
		w->fs = fs;
		w->i = i;
		int r = pthread_create(&w->tid, NULL, worker_main, w);
		if (r != 0) {
			c->nworkers = i; /* those started serve; stop joins them */
			return i ? 0 : -r;
		}
	}
	return 0;
}

void lazyfs_loop_stop(struct lazyfs *fs)
{
	struct lazyfs_conn *c = &fs->conn;
	for (unsigned i = 0; i < c->nworkers; i++)
		pthread_cancel(c->workers[i].tid);
	for (unsigned i = 0; i < c->nworkers; i++)
		pthread_join(c->workers[i].tid, NULL);
	free(c->workers);
	c->workers = NULL;
	c->nworkers = 0;
}
