/* Blobs over the agent channel (docs/ssh-protocol.md): GET_BLOB answered
 * by DATA frames and END; PUT_BLOB answered by the OFFSET the agent
 * already holds (a partial upload kept from an interrupted run), then our
 * DATA frames from there and END, answered once the agent checked the
 * digest and put the blob. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ssh.h"

static void xssh_blob_req(struct sshp_out *o, const struct oci_desc *d)
{
	sshp_put(o, d->digest, 32);
	sshp_u64(o, d->size);
}

/* The DATA frames up to END into sink. A sink failure leaves the channel
 * out of step and err to the sink's caller (the download cache names the
 * blob). */
static int xssh_recv_data(struct xssh *s, dimg_write_fn sink, void *ctx, struct dimg_err *err)
{
	for (;;) {
		int r = sshp_recv(&s->c, err);
		if (r == 0 && s->c.type == SSHP_DATA) {
			if ((r = sink(ctx, s->c.buf, s->c.len)) < 0)
				return r;
			continue;
		}
		if (r == 0 && s->c.type == SSHP_END)
			return 0;
		if (r == 0 && (r = sshp_expect(&s->c, SSHP_END, err)) < 0)
			s->inband = s->c.type == SSHP_ERROR;
		return r;
	}
}

int xssh_get_blob(struct xport *x, const struct oci_desc *d, uint64_t offset, dimg_write_fn sink,
                  void *ctx, struct dimg_err *err)
{
	struct xssh *s = x->priv;
	struct sshp_out o = {0};
	int r = xssh_lock(s, err);
	if (r < 0)
		return r;
	xssh_blob_req(&o, d);
	sshp_u64(&o, offset);
	sshp_str(&o, d->media_type);
	r = sshp_send_out(&s->c, SSHP_GET_BLOB, &o, err);
	if (r == 0)
		r = xssh_recv_data(s, sink, ctx, err);
	return xssh_unlock(s, r);
}

/* Up to n bytes from src (fewer only at its end): the count or -errno. */
static ssize_t xssh_fill(xport_read_fn src, void *ctx, uint8_t *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = src(ctx, buf + got, n - got);
		if (k <= 0)
			return k < 0 ? k : (ssize_t)got;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

/* The first have bytes of src, which the agent holds: read, not sent. */
static int xssh_skip(xport_read_fn src, void *ctx, uint8_t *buf, uint64_t have,
                     const struct oci_desc *d, struct dimg_err *err)
{
	while (have) {
		ssize_t k = xssh_fill(src, ctx, buf, have < SSHP_DATA_MAX ? have : SSHP_DATA_MAX);
		if (k <= 0)
			return k < 0 ? k
			             : xverify_fail(
			                   err, d->digest,
			                   "the source ends before the bytes the agent holds");
		have -= (uint64_t)k;
	}
	return 0;
}

/* After a failed send: the agent's reason when it sent one before going. */
static int xssh_why_gone(struct xssh *s, int r, struct dimg_err *err)
{
	struct dimg_err e = {0};
	if (sshp_recv(&s->c, &e) == 0 && s->c.type == SSHP_ERROR) {
		dimg_err_clear(err);
		return sshp_take_error(&s->c, err);
	}
	return r;
}

static int xssh_send_blob(struct xssh *s, const struct oci_desc *d, xport_read_fn src, void *ctx,
                          uint8_t *buf, struct dimg_err *err)
{
	struct sshp_in in;
	int r = xssh_reply(s, SSHP_OFFSET, err);
	if (r < 0)
		return r;
	sshp_in_init(&in, &s->c);
	uint64_t have = sshp_get_u64(&in);
	in.bad |= have > d->size;
	if ((r = sshp_in_end(&in, &s->c, 1, err)) < 0 ||
	    (r = xssh_skip(src, ctx, buf, have, d, err)) < 0)
		return r;
	for (;;) {
		ssize_t k = xssh_fill(src, ctx, buf, SSHP_DATA_MAX);
		if (k < 0)
			return (int)k;
		r = sshp_send(&s->c, k ? SSHP_DATA : SSHP_END, buf, (size_t)k, err);
		if (r < 0)
			return xssh_why_gone(s, r, err);
		if (k == 0)
			return xssh_reply(s, SSHP_OK, err);
	}
}

int xssh_put_blob(struct xport *x, const struct oci_desc *d, xport_read_fn src, void *ctx,
                  struct dimg_err *err)
{
	struct xssh *s = x->priv;
	struct sshp_out o = {0};
	uint8_t *buf = malloc(SSHP_DATA_MAX);
	int r = buf ? xssh_lock(s, err) : -ENOMEM;
	if (r < 0) {
		free(buf);
		return r;
	}
	xssh_blob_req(&o, d);
	sshp_str(&o, d->media_type);
	r = sshp_send_out(&s->c, SSHP_PUT_BLOB, &o, err);
	if (r == 0)
		r = xssh_send_blob(s, d, src, ctx, buf, err);
	free(buf);
	return xssh_unlock(s, r);
}
