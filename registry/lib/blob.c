/* Blobs: HEAD (is it there?) and GET streamed to a sink — resumed with
 * Range where a connection was cut, bounded by the size asked for and
 * checked against the digest as the bytes pass. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dimg/hash.h"
#include "registry-internal.h"

/* Connections a download may take: each may end early (the next resumes),
 * but a registry cannot keep a client forever by sending a byte each. */
#define BLOB_ANSWERS_MAX 64

struct blob_get {
	struct reg *r;
	dimg_write_fn sink;
	void *ctx;
	struct dimg_sha256 *h; /* NULL when not read from the start */
	uint64_t size, pos;    /* the blob's size; the next byte the sink gets */
	uint64_t from, skip;   /* where this answer should start; bytes of it to drop */
	const struct reg_resp *s;
	int checked;   /* this answer's start is checked */
	int too_long;  /* more bytes than the blob has */
	int bad_start; /* a 206 from elsewhere than asked */
	char digest[OCI_DIGEST_LEN];
};

/* 206 must start where asked; a 200 (Range ignored) starts at 0. */
static int answer_start(struct blob_get *g)
{
	uint64_t start;

	g->checked = 1;
	if (g->s->status == 200) {
		g->skip = g->from;
		return 0;
	}
	if (!g->s->crange || sscanf(g->s->crange, "bytes %" SCNu64 "-", &start) != 1 ||
	    start != g->from) {
		g->bad_start = 1;
		return -EBADMSG;
	}
	return 0;
}

static int blob_sink(void *ctx, const void *p, size_t n)
{
	struct blob_get *g = ctx;
	const uint8_t *b = p;
	int rc;

	if (!g->checked && (rc = answer_start(g)) < 0)
		return rc;
	if (g->skip) {
		size_t k = n < g->skip ? n : (size_t)g->skip;
		g->skip -= k;
		b += k;
		n -= k;
	}
	if (n > g->size - g->pos) {
		g->too_long = 1;
		return -EBADMSG;
	}
	if (n == 0)
		return 0;
	if (g->h)
		dimg_sha256_update(g->h, b, n);
	rc = g->sink(g->ctx, b, n);
	if (rc < 0)
		return rc;
	g->pos += n;
	if (g->r->opts.progress)
		g->r->opts.progress(g->r->opts.pctx, g->digest, g->pos, g->size);
	return 0;
}

/* One answer; 0 when it ended cleanly (g->pos says how far it got). */
static int get_once(struct reg *r, struct reg_endpoint *e, const char *repo, struct blob_get *g,
                    const char *what, struct dimg_err *err)
{
	struct reg_req q = {.method = "GET",
	                    .what = what,
	                    .follow = 1,
	                    .once = 1,
	                    .streamed = 1,
	                    .sink = blob_sink,
	                    .sink_ctx = g};
	struct reg_resp s = {0};
	struct dimg_err herr = {0};
	char range[48], path[96];
	int rc;

	snprintf(path, sizeof(path), "blobs/%s", g->digest);
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-", g->pos);
	q.range = g->pos ? range : NULL;
	g->from = g->pos;
	g->skip = 0;
	g->checked = 0;
	g->s = &s;
	rc = reg_repo_http(r, e, &q, repo, "pull", path, &s, &herr);
	if (g->too_long)
		rc = dimg_err_set(err, -EBADMSG, what,
		                  "the registry sent more than its %" PRIu64 " bytes", g->size);
	else if (g->bad_start)
		rc = dimg_err_set(err, -EBADMSG, what, "the answer does not start where asked");
	else if (rc < 0)
		rc = reg_err_copy(err, rc, &herr);
	else if (rc == 0 && s.status == 404)
		rc = dimg_err_set(err, -ENOENT, what, "blob unknown to the registry");
	else if (rc == 0 && s.status != 200 && s.status != 206)
		rc = reg_status_err(e, &q, &s, err);
	else if (rc == 0 && g->pos < g->size)
		rc = dimg_err_set(err, -ECONNRESET, what,
		                  "the answer ended after %" PRIu64 " of %" PRIu64 " bytes", g->pos,
		                  g->size);
	reg_resp_clear(&s);
	return rc;
}

/* Worth another answer (from where we are)? */
static int resumable(int rc)
{
	return rc == -ECONNRESET || rc == -ETIMEDOUT || rc == -ECONNREFUSED || rc == -EIO ||
	       rc == -EBUSY;
}

static int next_endpoint(const struct reg *r, size_t i)
{
	while (i < r->nep && r->ep[i].mirror && (!(r->ep[i].caps & REG_CAP_PULL) || r->ep[i].down))
		i++;
	return (int)i;
}

static int fetch(struct reg *r, const char *repo, struct blob_get *g, const char *what,
                 struct dimg_err *err)
{
	struct dimg_err last = {0};
	size_t ei = (size_t)next_endpoint(r, 0);
	unsigned fails = 0;
	int rc = 0;

	for (unsigned answers = 0; g->pos < g->size || answers == 0; answers++) {
		uint64_t before = g->pos;
		dimg_err_clear(&last);
		rc = get_once(r, &r->ep[ei], repo, g, what, &last);
		if (rc == 0)
			break;
		fails = g->pos > before ? 0 : fails + 1;
		if (r->ep[ei].mirror && (fails > 1 || !resumable(rc))) {
			ei = (size_t)next_endpoint(r, ei + 1); /* the next one goes on from pos */
			fails = 0;
		} else if (!resumable(rc) || fails > r->opts.retries ||
		           answers >= BLOB_ANSWERS_MAX) {
			break;
		} else {
			r->stats.retries++;
			reg_backoff(r, fails, NULL);
		}
	}
	if (rc < 0)
		return reg_err_copy(err, rc, &last);
	return 0;
}

int reg_blob_get(struct reg *r, const char *repo, const uint8_t digest[32], uint64_t size,
                 uint64_t offset, dimg_write_fn sink, void *ctx, struct dimg_err *err)
{
	struct blob_get g = {.r = r, .sink = sink, .ctx = ctx, .size = size, .pos = offset};
	char what[512];
	uint8_t got[32];
	int rc = reg_check_repo(repo, err);

	if (rc < 0)
		return rc;
	reg_blob_what(what, sizeof(what), r, repo, digest);
	if (offset > size)
		return dimg_err_set(err, -EINVAL, what, "offset past the blob's size");
	oci_digest_str(g.digest, digest);
	if (offset == 0 && (rc = dimg_sha256_new(&g.h)) < 0)
		return rc;
	if (offset < size)
		rc = fetch(r, repo, &g, what, err);
	if (rc == 0 && g.h) {
		dimg_sha256_final(g.h, got);
		if (memcmp(got, digest, 32) != 0)
			rc = dimg_err_set(err, -EBADMSG, what,
			                  "the content does not match its digest");
	}
	dimg_sha256_free(g.h);
	return rc;
}

int reg_blob_head(struct reg *r, const char *repo, const uint8_t digest[32], uint64_t *size,
                  struct dimg_err *err)
{
	struct reg_endpoint *e = reg_origin(r);
	struct reg_req q = {.method = "HEAD", .follow = 1};
	struct reg_resp s = {0};
	char d[OCI_DIGEST_LEN], what[512], path[96];
	uint8_t said[32];
	int rc = reg_check_repo(repo, err);

	if (rc < 0)
		return rc;
	oci_digest_str(d, digest);
	snprintf(path, sizeof(path), "blobs/%s", d);
	reg_blob_what(what, sizeof(what), r, repo, digest);
	q.what = what;
	rc = reg_repo_http(r, e, &q, repo, "pull", path, &s, err);
	if (rc == 0 && s.status == 404)
		rc = 0;
	else if (rc == 0 && s.status != 200)
		rc = reg_status_err(e, &q, &s, err);
	else if (rc == 0 && s.digest && oci_digest_parse(said, s.digest) == 0 &&
	         memcmp(said, digest, 32) != 0)
		rc = dimg_err_set(err, -EBADMSG, what, "the registry answers for another digest");
	else if (rc == 0) {
		if (size)
			*size = s.clen >= 0 ? (uint64_t)s.clen : 0;
		rc = 1;
	}
	reg_resp_clear(&s);
	return rc;
}
