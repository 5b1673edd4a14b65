/* Moving blobs: jobs threads take the blobs to copy in plan order; each
 * streams one from source to destination through a pipe (or, from a
 * registry or over ssh, through the resumable download cache), mounts it when both
 * sides are the same registry, and reports progress as it goes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copy-internal.h"

#define XC_PIPE     (1u << 20)
#define XC_EV_STEP  (1u << 20) /* progress events at most every MiB */
#define XC_JOBS     3
#define XC_JOBS_MAX 64

struct xc_xfer {
	struct xc *c;
	size_t i;
	struct xport *src;
	struct xpipe pipe;
	struct dimg_err perr;
	int prc;
	uint64_t done;
};

static int xc_failed(struct xc *c)
{
	pthread_mutex_lock(&c->mu);
	int r = c->rc;
	pthread_mutex_unlock(&c->mu);
	return r;
}

static void xc_progress(struct xc *c, size_t i, uint64_t done, uint64_t resumed)
{
	struct xc_blob *b = &c->b[i];
	pthread_mutex_lock(&c->mu);
	int due = done / XC_EV_STEP != b->done / XC_EV_STEP || done == b->d.size;
	b->done = done;
	b->resumed = resumed;
	if (due)
		xc_event(c, XCOPY_EV_BLOB, i);
	if (due && c->o->x.progress) {
		char ds[OCI_DIGEST_LEN];
		oci_digest_str(ds, b->d.digest);
		c->o->x.progress(c->o->x.pctx, ds, done, b->d.size);
	}
	pthread_mutex_unlock(&c->mu);
}

static ssize_t xc_read(void *ctx, void *p, size_t n)
{
	struct xc_xfer *t = ctx;
	if (xc_failed(t->c))
		return -ECANCELED;
	ssize_t k = xpipe_read(&t->pipe, p, n);
	if (k > 0) {
		t->done += (uint64_t)k;
		xc_progress(t->c, t->i, t->done, 0);
	}
	return k;
}

static void *xc_producer(void *arg)
{
	struct xc_xfer *t = arg;
	t->prc = xport_get_blob(t->src, &t->c->b[t->i].d, 0, xpipe_write, &t->pipe, &t->perr);
	xpipe_finish(&t->pipe, t->prc);
	return NULL;
}

/* Source pushes into the pipe on a thread of its own, the destination
 * pulls from it here. */
static int xc_stream(struct xc *c, size_t i, struct dimg_err *err)
{
	struct xc_xfer t = {.c = c, .i = i, .src = c->img[c->b[i].src].x};
	pthread_t th;
	int r = xpipe_init(&t.pipe, XC_PIPE);
	if (r < 0)
		return r;
	if ((r = -pthread_create(&th, NULL, xc_producer, &t)) < 0) {
		xpipe_free(&t.pipe);
		return dimg_err_set(err, r, NULL, "starting a copy thread");
	}
	r = xport_put_blob(c->dst, &c->b[i].d, xc_read, &t, err);
	xpipe_close(&t.pipe);
	pthread_join(th, NULL);
	xpipe_free(&t.pipe);
	if (r < 0 && t.prc < 0 && t.prc != -ECANCELED) { /* the source's failure says why */
		*err = t.perr;
		r = t.prc;
	}
	return r;
}

static void xc_cache_progress(void *ctx, uint64_t done, uint64_t resumed)
{
	struct xc_xfer *t = ctx;
	xc_progress(t->c, t->i, done, resumed);
}

/* From a registry: into the cache (resumable), then from there. */
static int xc_via_cache(struct xc *c, size_t i, struct dimg_err *err)
{
	struct xc_xfer t = {.c = c, .i = i, .src = c->img[c->b[i].src].x};
	int fd;
	int r = xcache_fetch(c->cache_dir, t.src, &c->b[i].d, xc_cache_progress, &t, &fd, err);
	if (r == 0) {
		r = xport_put_blob(c->dst, &c->b[i].d, xcache_read_fd, &fd, err);
		close(fd);
	}
	return r;
}

/* Same registry on both sides: 1 when the destination mounted it. */
static int xc_mount(struct xc *c, size_t i, struct dimg_err *err)
{
	const struct xport *src = c->img[c->b[i].src].x;
	const char *a = src->name.where, *b = c->dst->name.where;
	size_t ha = strcspn(a, "/");
	if (src->name.kind != XPORT_DOCKER || c->dst->name.kind != XPORT_DOCKER ||
	    strncmp(a, b, ha) != 0 || b[ha] != '/')
		return 0;
	return xport_mount_blob(c->dst, &c->b[i].d, src, err);
}

static void xc_one(struct xc *c, size_t i)
{
	struct dimg_err e = {0};
	int remote = xc_via_cache_kind(c->img[c->b[i].src].x->name.kind);
	int r = xc_mount(c, i, &e);
	if (r == 0)
		r = remote && c->cache_dir ? xc_via_cache(c, i, &e) : xc_stream(c, i, &e);
	pthread_mutex_lock(&c->mu);
	if (r < 0 && !c->rc) {
		c->rc = r;
		c->err = e;
	}
	if (r >= 0) {
		c->b[i].st = r == 1 ? XCOPY_MOUNTED : XCOPY_COPIED;
		c->b[i].done = c->b[i].d.size;
		xc_event(c, XCOPY_EV_BLOB, i);
	}
	pthread_mutex_unlock(&c->mu);
}

static void *xc_worker(void *arg)
{
	struct xc *c = arg;
	for (;;) {
		pthread_mutex_lock(&c->mu);
		while (c->next < c->nb && c->b[c->next].st != XCOPY_WAITING)
			c->next++;
		size_t i = c->next;
		int stop = c->rc || i == c->nb;
		if (!stop) {
			c->b[i].st = XCOPY_COPYING;
			xc_event(c, XCOPY_EV_BLOB, i);
		}
		pthread_mutex_unlock(&c->mu);
		if (stop)
			return NULL;
		xc_one(c, i);
	}
}

int xc_run(struct xc *c, struct dimg_err *err)
{
	size_t todo = 0, jobs = c->o->jobs ? c->o->jobs : XC_JOBS, started = 0;
	pthread_t th[XC_JOBS_MAX];
	for (size_t i = 0; i < c->nb; i++)
		todo += c->b[i].st == XCOPY_WAITING;
	jobs = jobs > XC_JOBS_MAX ? XC_JOBS_MAX : jobs;
	jobs = jobs > todo ? todo : jobs;
	pthread_mutex_init(&c->mu, NULL);
	for (; started + 1 < jobs; started++)
		if (pthread_create(&th[started], NULL, xc_worker, c) != 0)
			break;
	xc_worker(c); /* this thread is one of them */
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&c->mu);
	if (c->rc < 0)
		dimg_err_set(err, c->rc, c->err.what[0] ? c->err.what : NULL, "%s", c->err.why);
	return c->rc;
}
