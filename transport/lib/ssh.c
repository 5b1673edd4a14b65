/* ssh://[USER@]HOST[:PORT]/NAME: an image on another machine, through
 * `cdimg agent --stdio` there (ssh_agent.c) over the system ssh client
 * (ssh_spawn.c). Every transport call is one request of the agent
 * protocol (docs/ssh-protocol.md), one at a time on the channel; blobs
 * stream both ways in DATA frames of at most 1 MiB, and the receiving end
 * checks their digests: the agent before it puts a blob into NAME, the
 * copy engine's download cache (cache.c) for blobs coming from NAME.
 *
 * Layers only for now: the seam for deltas (the byte-cost planner
 * choosing a delta against an image the remote holds) is the agent's
 * request set, where a PUT_DELTA would join PUT_BLOB. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ssh.h"

int xssh_reply(struct xssh *s, uint8_t want, struct dimg_err *err)
{
	int r = sshp_recv(&s->c, err);
	if (r == 0 && (r = sshp_expect(&s->c, want, err)) < 0)
		s->inband = s->c.type == SSHP_ERROR;
	return r;
}

int xssh_lock(struct xssh *s, struct dimg_err *err)
{
	pthread_mutex_lock(&s->mu);
	s->inband = 0;
	if (!s->broken)
		return 0;
	int r = dimg_err_set(err, s->broken, s->peer,
	                     "the connection to the agent failed earlier in this run");
	pthread_mutex_unlock(&s->mu);
	return r;
}

int xssh_unlock(struct xssh *s, int r)
{
	if (r < 0 && !s->inband)
		s->broken = r == -ECONNRESET ? -EPIPE : r;
	pthread_mutex_unlock(&s->mu);
	return r;
}

static int xssh_open_remote(struct xssh *s, struct xport *x, struct dimg_err *err)
{
	struct sshp_out o = {0};
	char plat[128] = "";
	struct oci_platform p;
	if (x->opts.platform) {
		snprintf(plat, sizeof(plat), "%s", x->opts.platform);
	} else if (!x->opts.all_platforms) { /* this machine's, not the remote's */
		oci_platform_host(&p);
		oci_platform_str(plat, sizeof(plat), &p);
	}
	sshp_u8(&o, (uint8_t)x->write);
	sshp_u8(&o, (uint8_t) !!x->opts.all_platforms);
	sshp_str(&o, x->name.ref);
	sshp_str(&o, plat);
	int r = sshp_send_out(&s->c, SSHP_OPEN, &o, err);
	return r < 0 ? r : xssh_reply(s, SSHP_OK, err);
}

static int xssh_open(struct xport *x, struct dimg_err *err)
{
	struct xssh *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->pid = -1;
	s->c.in = s->c.out = -1;
	snprintf(s->peer, sizeof(s->peer), "ssh://%s", x->name.where);
	s->c.peer = s->peer;
	pthread_mutex_init(&s->mu, NULL);
	x->priv = s;
	int r = xssh_spawn(s, x, err);
	if (r == 0)
		r = xssh_open_remote(s, x, err);
	return r == -ECONNRESET ? xssh_died(s, r, err) : r;
}

static void xssh_close(struct xport *x)
{
	struct xssh *s = x->priv;
	if (!s)
		return;
	xssh_reap(s);
	sshp_free(&s->c);
	pthread_mutex_destroy(&s->mu);
	free(s);
	x->priv = NULL;
}

/* A MANIFEST frame into out, its bytes checked against the digest it
 * states (and want, when given). */
static int xssh_take_manifest(struct xssh *s, const uint8_t *want, struct xport_manifest *out,
                              struct dimg_err *err)
{
	struct sshp_in in;
	uint8_t d[32];
	sshp_in_init(&in, &s->c);
	char *mt = sshp_get_str(&in);
	sshp_get_raw(&in, d, 32);
	char *ref = sshp_get_str(&in);
	int r = sshp_in_end(&in, &s->c, 0, err);
	size_t n = in.n - in.off;
	uint8_t *raw = r == 0 ? malloc(n ? n : 1) : NULL;
	if (r == 0 && !raw)
		r = -ENOMEM;
	if (r == 0) {
		memcpy(raw, in.p + in.off, n);
		r = xman_take(out, raw, n, mt, want ? want : d, err);
		s->inband = r < 0; /* the frame was whole: still in step */
	}
	if (r == 0 && ref && ref[0]) {
		out->ref = ref;
		ref = NULL;
	}
	if (r == 0 && mt && mt[0] && strlen(mt) < sizeof(out->media_type))
		snprintf(out->media_type, sizeof(out->media_type), "%s", mt);
	free(mt);
	free(ref);
	return r;
}

static int xssh_manifest_req(struct xport *x, const uint8_t *digest, struct xport_manifest *out,
                             struct dimg_err *err)
{
	struct xssh *s = x->priv;
	int r = xssh_lock(s, err);
	if (r < 0)
		return r;
	r = digest ? sshp_send(&s->c, SSHP_GET_MANIFEST_DIGEST, digest, 32, err)
	           : sshp_send(&s->c, SSHP_GET_MANIFEST, NULL, 0, err);
	if (r == 0)
		r = xssh_reply(s, SSHP_MANIFEST, err);
	if (r == 0)
		r = xssh_take_manifest(s, digest, out, err);
	return xssh_unlock(s, r);
}

static int xssh_get_manifest(struct xport *x, struct xport_manifest *out, struct dimg_err *err)
{
	return xssh_manifest_req(x, NULL, out, err);
}

static int xssh_get_manifest_digest(struct xport *x, const uint8_t digest[32],
                                    struct xport_manifest *out, struct dimg_err *err)
{
	return xssh_manifest_req(x, digest, out, err);
}

/* One HAS_BLOBS request of at most SSHP_HAS_MAX descriptors. */
static int xssh_has_batch(struct xssh *s, const struct oci_desc *d, size_t n, uint8_t *have,
                          struct dimg_err *err)
{
	struct sshp_out o = {0};
	struct sshp_in in;
	sshp_u32(&o, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		sshp_put(&o, d[i].digest, 32);
		sshp_u64(&o, d[i].size);
	}
	int r = sshp_send_out(&s->c, SSHP_HAS_BLOBS, &o, err);
	if (r == 0)
		r = xssh_reply(s, SSHP_HAS, err);
	if (r < 0)
		return r;
	sshp_in_init(&in, &s->c);
	if (sshp_get_u32(&in) != n)
		in.bad = 1;
	sshp_get_raw(&in, have, in.bad ? 0 : n);
	for (size_t i = 0; !in.bad && i < n; i++)
		in.bad = have[i] > 1;
	return sshp_in_end(&in, &s->c, 1, err);
}

static int xssh_has_blobs(struct xport *x, const struct oci_desc *d, size_t n, uint8_t *have,
                          struct dimg_err *err)
{
	struct xssh *s = x->priv;
	int r = xssh_lock(s, err);
	if (r < 0)
		return r;
	for (size_t i = 0; r == 0 && i < n; i += SSHP_HAS_MAX)
		r = xssh_has_batch(s, d + i, n - i < SSHP_HAS_MAX ? n - i : SSHP_HAS_MAX, have + i,
		                   err);
	return xssh_unlock(s, r);
}

static int xssh_has_blob(struct xport *x, const struct oci_desc *d, struct dimg_err *err)
{
	uint8_t have = 0;
	int r = xssh_has_blobs(x, d, 1, &have, err);
	return r < 0 ? r : have;
}

static int xssh_commit(struct xport *x, struct dimg_err *err)
{
	struct xssh *s = x->priv;
	int r = xssh_lock(s, err);
	if (r < 0)
		return r;
	r = sshp_send(&s->c, SSHP_COMMIT, NULL, 0, err);
	if (r == 0)
		r = xssh_reply(s, SSHP_OK, err);
	return xssh_unlock(s, r);
}

static int xssh_put_manifest_ref(struct xport *x, const struct xport_manifest *m, const char *ref,
                                 struct dimg_err *err)
{
	struct xssh *s = x->priv;
	struct sshp_out o = {0};
	int r = xssh_lock(s, err);
	if (r < 0)
		return r;
	sshp_u8(&o, !ref ? 0 : !ref[0] ? 1 : 2);
	sshp_str(&o, ref);
	sshp_str(&o, m->media_type);
	sshp_put(&o, m->digest, 32);
	sshp_put(&o, m->raw, m->len);
	r = sshp_send_out(&s->c, SSHP_PUT_MANIFEST, &o, err);
	if (r == 0)
		r = xssh_reply(s, SSHP_OK, err);
	return xssh_unlock(s, r);
}

static int xssh_put_manifest(struct xport *x, const struct xport_manifest *m, struct dimg_err *err)
{
	return xssh_put_manifest_ref(x, m, NULL, err);
}

const struct xport_ops xport_ssh_ops = {
    .kind = XPORT_SSH,
    .open = xssh_open,
    .close = xssh_close,
    .get_manifest = xssh_get_manifest,
    .get_manifest_digest = xssh_get_manifest_digest,
    .has_blob = xssh_has_blob,
    .has_blobs = xssh_has_blobs,
    .get_blob = xssh_get_blob,
    .put_blob = xssh_put_blob,
    .put_manifest = xssh_put_manifest,
    .put_manifest_ref = xssh_put_manifest_ref,
    .commit = xssh_commit,
};
