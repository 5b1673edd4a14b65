/* `cdimg agent --stdio`: the remote end of an ssh:// name. After the
 * hellos, an OPEN names the image on this machine (any transport, opened
 * with the same code as a local name); then each request is answered in
 * turn (docs/ssh-protocol.md). A blob put here goes first into the cache
 * of partial downloads (cache.c: <cache>/sha256/<hex>.partial, so that a
 * cut connection resumes where it stopped), is checked against its digest
 * and size, and only then put into the image; nothing is visible there
 * before COMMIT, and an end of stream without one leaves nothing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copy-internal.h"
#include "ssh_agent.h"

/* A request whose answer is sent; -errno ends the session (after an
 * ERROR frame when the channel is still in step: see a->fatal). */
typedef int (*xagent_fn)(struct xagent *a, struct dimg_err *err);

static int xagent_ok(struct xagent *a, struct dimg_err *err)
{
	return sshp_send(&a->c, SSHP_OK, NULL, 0, err);
}

static int xagent_open(struct xagent *a, struct dimg_err *err)
{
	struct sshp_in in;
	struct xport_name n = {0};
	sshp_in_init(&in, &a->c);
	int write = sshp_get_u8(&in), all = sshp_get_u8(&in);
	char *name = sshp_get_str(&in), *plat = sshp_get_str(&in);
	int r = sshp_in_end(&in, &a->c, 1, err);
	if (r == 0 && a->x)
		r = dimg_err_set(err, -EPROTO, NULL, "a second OPEN");
	if (r == 0 && (write > 1 || all > 1))
		r = dimg_err_set(err, -EPROTO, NULL, "a malformed frame OPEN");
	if (r < 0)
		a->fatal = 1;
	if (r == 0)
		r = xport_name_parse(&n, name, err);
	if (r == 0 && n.kind == XPORT_SSH)
		r = dimg_err_set(err, -EINVAL, name, "an agent does not open ssh:// names");
	snprintf(a->platform, sizeof(a->platform), "%s", plat ? plat : "");
	a->o.platform = a->platform[0] ? a->platform : NULL;
	a->o.all_platforms = all;
	if (r == 0)
		r = xport_open(&a->x, &n, write, &a->o, err);
	if (r == 0)
		r = xagent_ok(a, err);
	xport_name_clear(&n);
	free(name);
	free(plat);
	return r;
}

static int xagent_send_manifest(struct xagent *a, const struct xport_manifest *m,
                                struct dimg_err *err)
{
	struct sshp_out o = {0};
	sshp_str(&o, m->media_type);
	sshp_put(&o, m->digest, 32);
	sshp_str(&o, m->ref);
	sshp_put(&o, m->raw, m->len);
	return sshp_send_out(&a->c, SSHP_MANIFEST, &o, err);
}

static int xagent_get_manifest(struct xagent *a, struct dimg_err *err)
{
	struct xport_manifest m = {0};
	uint8_t d[32];
	int r = 0;
	if (a->c.type == SSHP_GET_MANIFEST_DIGEST) {
		if (a->c.len != 32)
			return a->fatal = 1, dimg_err_set(err, -EPROTO, NULL, "a malformed frame");
		memcpy(d, a->c.buf, 32);
		r = xport_get_manifest_digest(a->x, d, &m, err);
	} else {
		r = xport_get_manifest(a->x, &m, err);
	}
	if (r == 0)
		r = xagent_send_manifest(a, &m, err);
	xport_manifest_clear(&m);
	return r;
}

static int xagent_has_blobs(struct xagent *a, struct dimg_err *err)
{
	struct sshp_in in;
	struct sshp_out o = {0};
	sshp_in_init(&in, &a->c);
	uint32_t n = sshp_get_u32(&in);
	in.bad |= n > SSHP_HAS_MAX;
	struct oci_desc *d = in.bad ? NULL : calloc(n ? n : 1, sizeof(*d));
	uint8_t *have = d ? calloc(n ? n : 1, 1) : NULL;
	for (uint32_t i = 0; have && i < n; i++) {
		sshp_get_raw(&in, d[i].digest, 32);
		d[i].size = sshp_get_u64(&in);
		d[i].media_type = "application/octet-stream";
	}
	int r = sshp_in_end(&in, &a->c, 1, err);
	if (r < 0)
		a->fatal = 1;
	else if (!have)
		r = -ENOMEM;
	if (r == 0 && (r = xport_has_blobs(a->x, d, n, have, err)) == 0) {
		sshp_u32(&o, n);
		sshp_put(&o, have, n);
		r = sshp_send_out(&a->c, SSHP_HAS, &o, err);
	}
	free(d);
	free(have);
	return r;
}

/* GET_BLOB's sink: DATA frames of at most SSHP_DATA_MAX. */
static int xagent_data(void *ctx, const void *p, size_t n)
{
	struct xagent *a = ctx;
	const uint8_t *b = p;
	while (n) {
		size_t k = n < SSHP_DATA_MAX ? n : SSHP_DATA_MAX;
		int r = sshp_send(&a->c, SSHP_DATA, b, k, NULL);
		if (r < 0) {
			a->fatal = 1;
			return r;
		}
		b += k;
		n -= k;
	}
	return 0;
}

static int xagent_get_blob(struct xagent *a, struct dimg_err *err)
{
	struct sshp_in in;
	struct oci_desc d = {0};
	sshp_in_init(&in, &a->c);
	sshp_get_raw(&in, d.digest, 32);
	d.size = sshp_get_u64(&in);
	uint64_t off = sshp_get_u64(&in);
	char *mt = sshp_get_str(&in);
	int r = sshp_in_end(&in, &a->c, 1, err);
	if (r < 0)
		a->fatal = 1;
	d.media_type = mt;
	if (r == 0 && off > d.size)
		r = xverify_fail(err, d.digest, "offset past the blob's end");
	if (r == 0)
		r = xport_get_blob(a->x, &d, off, xagent_data, a, err);
	if (r == 0)
		r = sshp_send(&a->c, SSHP_END, NULL, 0, err);
	free(mt);
	return r;
}

static int xagent_put_manifest(struct xagent *a, struct dimg_err *err)
{
	struct sshp_in in;
	struct xport_manifest m = {0};
	uint8_t want[32];
	sshp_in_init(&in, &a->c);
	uint8_t mode = sshp_get_u8(&in);
	char *ref = sshp_get_str(&in), *mt = sshp_get_str(&in);
	sshp_get_raw(&in, want, 32);
	in.bad |= mode > 2;
	int r = sshp_in_end(&in, &a->c, 0, err);
	size_t n = in.n - in.off;
	uint8_t *raw = r == 0 ? malloc(n ? n : 1) : NULL;
	if (r < 0)
		a->fatal = 1;
	else if (!raw)
		r = -ENOMEM;
	if (r == 0) {
		memcpy(raw, in.p + in.off, n);
		r = xman_take(&m, raw, n, mt, want, err); /* checks its digest */
	}
	if (r == 0 && mt[0] && strlen(mt) < sizeof(m.media_type))
		snprintf(m.media_type, sizeof(m.media_type), "%s", mt);
	if (r == 0)
		r = xport_put_manifest_ref(a->x, &m, mode == 0 ? NULL : mode == 1 ? "" : ref, err);
	if (r == 0)
		r = xagent_ok(a, err);
	xport_manifest_clear(&m);
	free(ref);
	free(mt);
	return r;
}

static int xagent_commit(struct xagent *a, struct dimg_err *err)
{
	int r = xport_commit(a->x, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < a->nput; i++) { /* the cache's copies are not needed now */
		struct oci_desc d = {0};
		memcpy(d.digest, a->put[i], 32);
		xcache_drop(a->cache_dir, &d);
	}
	a->nput = 0;
	return xagent_ok(a, err);
}

static const struct {
	uint8_t type;
	xagent_fn fn;
} xagent_reqs[] = {
    {SSHP_GET_MANIFEST, xagent_get_manifest},
    {SSHP_GET_MANIFEST_DIGEST, xagent_get_manifest},
    {SSHP_HAS_BLOBS, xagent_has_blobs},
    {SSHP_GET_BLOB, xagent_get_blob},
    {SSHP_PUT_MANIFEST, xagent_put_manifest},
    {SSHP_PUT_BLOB, xagent_put_blob},
    {SSHP_COMMIT, xagent_commit},
};

/* One request: its handler, or -EPROTO for a frame that is not one. */
static int xagent_one(struct xagent *a, struct dimg_err *err)
{
	if (a->c.type == SSHP_OPEN)
		return xagent_open(a, err);
	for (size_t i = 0; a->x && i < sizeof(xagent_reqs) / sizeof(xagent_reqs[0]); i++)
		if (xagent_reqs[i].type == a->c.type)
			return xagent_reqs[i].fn(a, err);
	a->fatal = 1;
	return dimg_err_set(err, -EPROTO, NULL, "frame %s where a request was due%s",
	                    sshp_type_name(a->c.type), a->x ? "" : " (no OPEN yet)");
}

static int xagent_loop(struct xagent *a, struct dimg_err *err)
{
	for (;;) {
		struct dimg_err e = {0};
		int r = sshp_recv(&a->c, &e);
		if (r == -ECONNRESET)
			return 0; /* the client is done */
		if (r == 0)
			r = xagent_one(a, &e);
		else
			a->fatal = 1;
		if (r < 0 && !a->fatal && sshp_send_error(&a->c, r, &e, &e) == 0)
			continue;
		if (r < 0) {
			sshp_send_error(&a->c, r, &e, NULL); /* the reason, if it can still go */
			*err = e;
			return r;
		}
	}
}

static int xagent_hello(struct xagent *a, struct dimg_err *err)
{
	uint32_t v = 0, ours = SSHP_VERSION;
	const char *force = getenv("DI3FS_AGENT_PROTO_VERSION"); /* tests: another version */
	if (force && force[0])
		ours = (uint32_t)strtoul(force, NULL, 10);
	int r = sshp_recv_hello(&a->c, SSHP_HELLO, &v, err);
	if (r == 0)
		r = sshp_send_hello(&a->c, SSHP_HELLO_REPLY, ours, err);
	if (r == 0 && v != ours)
		r = dimg_err_set(err, -EPROTO, NULL,
		                 "the client cdimg speaks agent protocol version %u, this agent "
		                 "version %u",
		                 v, ours);
	return r;
}

int xport_agent(int in, int out, const struct xport_opts *o, struct dimg_err *err)
{
	struct xagent a = {.c = {.in = in, .out = out, .peer = "the client"}};
	a.o = *o;
	a.cache_dir = o->cache_dir ? strdup(o->cache_dir) : xcopy_default_cache_dir();
	int r = a.cache_dir ? xagent_hello(&a, err) : -ENOMEM;
	if (r == 0)
		r = xagent_loop(&a, err);
	xport_close(a.x); /* without a commit: nothing written */
	sshp_free(&a.c);
	free(a.put);
	free(a.cache_dir);
	return r;
}
