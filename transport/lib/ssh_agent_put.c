/* PUT_BLOB at the agent: the blob goes through the cache of partial
 * downloads (cache.c), with the client's DATA frames as its source — an
 * xport of its own whose get_blob answers OFFSET (what the partial file
 * holds) and reads the frames from there to END. cache.c checks size and
 * digest before the blob is complete (a wrong one is removed, never
 * resumed); only then is it put into the image, which checks it again. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copy-internal.h"
#include "ssh_agent.h"

static int xagent_offset(struct xagent *a, uint64_t off, struct dimg_err *err)
{
	struct sshp_out o = {0};
	sshp_u64(&o, off);
	int r = sshp_send_out(&a->c, SSHP_OFFSET, &o, err);
	a->streaming = r == 0;
	a->streamed = 1;
	return r;
}

/* The client's DATA frames from offset to END into sink. */
static int xagent_in_get(struct xport *x, const struct oci_desc *d, uint64_t offset,
                         dimg_write_fn sink, void *ctx, struct dimg_err *err)
{
	struct xagent *a = x->priv;
	if (a->streamed) /* cache.c retries from 0 when resumed bytes were wrong */
		return xverify_fail(err, d->digest,
		                    "the partial upload kept from an earlier run was not this "
		                    "blob's; it is removed: run the copy again");
	int r = xagent_offset(a, offset, err);
	while (r == 0 && (r = sshp_recv(&a->c, err)) == 0 && a->c.type == SSHP_DATA)
		r = sink(ctx, a->c.buf, a->c.len);
	if (r == 0 && a->c.type != SSHP_END)
		r = dimg_err_set(err, -EPROTO, a->c.peer, "frame %s in a blob's data",
		                 sshp_type_name(a->c.type));
	if (r == 0)
		a->streaming = 0;
	return r;
}

static const struct xport_ops xagent_in_ops = {.get_blob = xagent_in_get};

static int xagent_note_put(struct xagent *a, const uint8_t digest[32])
{
	uint8_t(*p)[32] = realloc(a->put, (a->nput + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	a->put = p;
	memcpy(a->put[a->nput++], digest, 32);
	return 0;
}

/* The cache had the whole blob already: the client sends nothing. */
static int xagent_none_wanted(struct xagent *a, const struct oci_desc *d, struct dimg_err *err)
{
	int r = xagent_offset(a, d->size, err);
	if (r == 0 && (r = sshp_recv(&a->c, err)) == 0 && a->c.type != SSHP_END)
		r = dimg_err_set(err, -EPROTO, a->c.peer, "frame %s where END was due",
		                 sshp_type_name(a->c.type));
	if (r == 0)
		a->streaming = 0;
	return r;
}

int xagent_put_blob(struct xagent *a, struct dimg_err *err)
{
	struct sshp_in in;
	struct oci_desc d = {0};
	struct xport src = {.ops = &xagent_in_ops, .priv = a};
	int fd = -1;
	sshp_in_init(&in, &a->c);
	sshp_get_raw(&in, d.digest, 32);
	d.size = sshp_get_u64(&in);
	char *mt = sshp_get_str(&in);
	int r = sshp_in_end(&in, &a->c, 1, err);
	d.media_type = mt;
	a->streamed = a->streaming = 0;
	if (r == 0)
		r = xcache_fetch(a->cache_dir, &src, &d, NULL, NULL, &fd, err);
	if (r == 0 && !a->streamed)
		r = xagent_none_wanted(a, &d, err);
	if (r == 0)
		r = xport_put_blob(a->x, &d, xcache_read_fd, &fd, err);
	if (r == 0 && (r = xagent_note_put(a, d.digest)) == 0)
		r = sshp_send(&a->c, SSHP_OK, NULL, 0, err);
	if (fd >= 0)
		close(fd);
	if (r < 0 && (a->streaming || !mt))
		a->fatal = 1; /* the client's bytes are still coming */
	free(mt);
	return r;
}
