/* The copy engine's parts: the plan (copy_plan.c), the threads moving
 * blobs (copy_run.c), the pipe between a pushing source and a pulling
 * destination (pipe.c), resumable downloads (cache.c). */
#ifndef DI3FS_COPY_INTERNAL_H
#define DI3FS_COPY_INTERNAL_H

#include <pthread.h>

#include "di3fs/xcopy.h"
#include "transport-internal.h"

/* ---- pipe.c: get_blob pushes into it, put_blob pulls from it ---- */
struct xpipe {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *buf;
	size_t cap, head, len;
	int done, rc; /* the writer finished, with rc */
	int closed;   /* the reader gave up */
};
int xpipe_init(struct xpipe *p, size_t cap);
void xpipe_free(struct xpipe *p);
/* dimg_write_fn: blocks while full; -ECANCELED once the reader closed. */
int xpipe_write(void *ctx, const void *p, size_t n);
void xpipe_finish(struct xpipe *p, int rc);
/* Blocks for data: the count, 0 at the end, the writer's rc if it failed. */
ssize_t xpipe_read(struct xpipe *p, void *buf, size_t n);
void xpipe_close(struct xpipe *p);

/* ---- cache.c: downloads kept by digest, resumed where they stopped ---- */
typedef void (*xcache_progress_fn)(void *ctx, uint64_t done, uint64_t resumed);
/* The blob as a file of dir (complete and checked), fetched from src as
 * needed, continuing a partial download; *fd is open at its start. */
int xcache_fetch(const char *dir, struct xport *src, const struct oci_desc *d,
                 xcache_progress_fn progress, void *pctx, int *fd, struct dimg_err *err);
/* Removes the blob from the cache (once the copy committed). */
void xcache_drop(const char *dir, const struct oci_desc *d);
/* An xport_read_fn over a file descriptor (ctx: int *). */
ssize_t xcache_read_fd(void *ctx, void *p, size_t n);

/* Sources whose blobs go through the download cache (resumable): a
 * registry, another machine over ssh. */
static inline int xc_via_cache_kind(enum xport_kind k)
{
	return k == XPORT_DOCKER || k == XPORT_SSH;
}

/* ---- the plan ---- */
struct xc_blob {
	struct oci_desc d; /* media_type owned */
	size_t src;        /* the source that holds it */
	enum xcopy_status st;
	uint64_t done, resumed;
};

struct xc_image {
	struct xport *x;
	struct xport_manifest top;
	struct xport_manifest *sub; /* an index's manifests, children before parents */
	size_t nsub;
};

struct xc {
	const struct xcopy_opts *o;
	struct xcopy_result *res;
	struct xport *dst;
	struct xc_image *img;
	size_t nimg;
	struct xc_blob *b;
	size_t nb, capb;
	uint8_t (*excl)[32]; /* sorted */
	size_t nexcl;
	char *cache_dir;
	/* while copying */
	pthread_mutex_t mu;
	size_t next;
	int rc;
	struct dimg_err err;
};

void xc_event(struct xc *c, enum xcopy_event_kind k, size_t i);
/* Reads each source's image(s), lists their blobs once each. */
int xc_plan(struct xc *c, const struct xport_name *src, size_t nsrc, struct dimg_err *err);
/* Blobs of the --exclude-from images, left out. */
int xc_exclusions(struct xc *c, struct dimg_err *err);
/* What the destination has, what no side has (-ENODATA). */
int xc_classify(struct xc *c, struct dimg_err *err);
/* The blobs to copy, jobs at once. */
int xc_run(struct xc *c, struct dimg_err *err);
void xc_free(struct xc *c);

#endif
