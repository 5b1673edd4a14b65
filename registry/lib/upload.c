/* Blob uploads: POST for a session (its Location reused exactly, and only
 * on the registry's own host), one PUT ?digest= for a small blob, PATCH
 * chunks for a large one — one chunk in memory, resent from where the
 * registry says it stopped — and cross-repository mounts. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dimg/hash.h"
#include "registry-internal.h"

#define OCTETS "application/octet-stream"

struct upload {
	struct reg *r;
	struct reg_endpoint *e;
	const char *repo;
	char *scope;
	char *loc; /* where the session goes on: the last Location answered */
	char what[512];
	char digest[OCI_DIGEST_LEN];
};

static void upload_clear(struct upload *u)
{
	free(u->scope);
	free(u->loc);
}

static int upload_init(struct upload *u, struct reg *r, const char *repo, const uint8_t d[32],
                       const char *from)
{
	memset(u, 0, sizeof(*u));
	u->r = r;
	u->e = reg_origin(r);
	u->repo = repo;
	oci_digest_str(u->digest, d);
	reg_blob_what(u->what, sizeof(u->what), r, repo, d);
	if (asprintf(&u->scope, "repository:%s:pull,push%s%s%s", repo, from ? " repository:" : "",
	             from ? from : "", from ? ":pull" : "") < 0) {
		u->scope = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* The session's next URL: a Location on the registry's own origin only
 * (credentials and the blob go there). */
static int take_location(struct upload *u, const struct reg_resp *s, struct dimg_err *err)
{
	char *next = s->location && s->url ? reg_url_resolve(s->url, s->location) : NULL;

	if (!next || !reg_url_same_origin(next, u->e->origin)) {
		free(next);
		return dimg_err_set(err, -EPROTO, u->what,
		                    s->location ? "the upload location is on another host (refused)"
		                                : "the registry gave no upload location");
	}
	free(u->loc);
	u->loc = next;
	return 0;
}

static void req_init(struct reg_req *q, const struct upload *u, const char *method, const char *url)
{
	memset(q, 0, sizeof(*q));
	q->method = method;
	q->url = url;
	q->scope = u->scope;
	q->what = u->what;
}

/* POST a session (query: a mount); 202 sets u->loc, 201 (mounted) is
 * returned as 1. */
static int upload_start(struct upload *u, const char *query, struct dimg_err *err)
{
	struct reg_req q;
	struct reg_resp s = {0};
	char *url =
	    reg_url(u->e, u->repo, "blobs/uploads/%s%s", query ? "?" : "", query ? query : "");
	int rc = url ? 0 : -ENOMEM;

	req_init(&q, u, "POST", url);
	if (rc == 0)
		rc = reg_http(u->r, u->e, &q, &s, err);
	if (rc == 0 && s.status == 202)
		rc = take_location(u, &s, err);
	else if (rc == 0 && s.status == 201 && query)
		rc = 1;
	else if (rc == 0)
		rc = reg_status_err(u->e, &q, &s, err);
	reg_resp_clear(&s);
	free(url);
	return rc;
}

static void upload_cancel(struct upload *u)
{
	struct reg_req q;
	struct reg_resp s = {0};

	if (!u->loc)
		return;
	req_init(&q, u, "DELETE", u->loc);
	q.once = 1;
	reg_http(u->r, u->e, &q, &s, NULL);
	reg_resp_clear(&s);
}

/* PUT <location>&digest=, with the last bytes (or none). */
static int upload_finish(struct upload *u, const void *body, size_t len, struct dimg_err *err)
{
	struct reg_req q;
	struct reg_resp s = {0};
	uint8_t want[32], said[32];
	char *url;
	int rc;

	if (asprintf(&url, "%s%sdigest=%s", u->loc, strchr(u->loc, '?') ? "&" : "?", u->digest) < 0)
		return -ENOMEM;
	req_init(&q, u, "PUT", url);
	q.content_type = OCTETS;
	q.body = body ? body : "";
	q.body_len = len;
	q.once = 1; /* a session a failed PUT touched is not reused */
	rc = reg_http(u->r, u->e, &q, &s, err);
	if (rc == 0 && s.status != 201 && s.status != 204)
		rc = reg_status_err(u->e, &q, &s, err);
	else if (rc == 0 && s.digest && oci_digest_parse(said, s.digest) == 0 &&
	         oci_digest_parse(want, u->digest) == 0 && memcmp(said, want, 32) != 0)
		rc = dimg_err_set(err, -EBADMSG, u->what, "the registry stored another digest");
	reg_resp_clear(&s);
	free(url);
	return rc;
}

/* Up to n bytes from src (fewer only at its end). */
static ssize_t read_full(reg_read_fn src, void *ctx, uint8_t *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = src(ctx, p + got, n - got);
		if (k < 0)
			return k;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

/* The source must end exactly at size. */
static int source_at_end(reg_read_fn src, void *ctx, const struct upload *u, uint64_t size,
                         struct dimg_err *err)
{
	uint8_t extra;
	ssize_t k = read_full(src, ctx, &extra, 1);

	if (k < 0)
		return dimg_err_set(err, (int)k, u->what, "reading the blob");
	if (k > 0)
		return dimg_err_set(err, -EBADMSG, u->what,
		                    "the source has more than %" PRIu64 " bytes", size);
	return 0;
}

static int transient(int rc)
{
	return rc == -ECONNRESET || rc == -ETIMEDOUT || rc == -ECONNREFUSED || rc == -EIO ||
	       rc == -EBUSY;
}

/* A small blob: read whole (at most chunk_size), checked, one PUT; a new
 * session for each try. */
static int put_whole(struct upload *u, uint64_t size, reg_read_fn src, void *ctx,
                     const uint8_t d[32], struct dimg_err *err)
{
	uint8_t *buf = malloc(size ? (size_t)size : 1), got[32];
	ssize_t n = buf ? read_full(src, ctx, buf, (size_t)size) : -ENOMEM;
	int rc = n < 0 ? dimg_err_set(err, (int)n, u->what, "reading the blob") : 0;

	if (rc == 0 && (uint64_t)n != size)
		rc = dimg_err_set(err, -EBADMSG, u->what, "the source has %zd of %" PRIu64 " bytes",
		                  n, size);
	if (rc == 0)
		rc = source_at_end(src, ctx, u, size, err);
	if (rc == 0 && (rc = dimg_sha256_buf(buf, (size_t)size, got)) == 0 && memcmp(got, d, 32))
		rc = dimg_err_set(err, -EBADMSG, u->what, "the source does not match its digest");
	for (unsigned attempt = 0; rc == 0; attempt++) {
		struct dimg_err e = {0};
		rc = upload_start(u, NULL, &e);
		if (rc == 0)
			rc = upload_finish(u, buf, (size_t)size, &e);
		if (rc == 0 || !transient(rc) || attempt >= u->r->opts.retries) {
			rc = rc < 0 ? reg_err_copy(err, rc, &e) : rc;
			break;
		}
		upload_cancel(u);
		u->r->stats.retries++;
		reg_backoff(u->r, attempt, NULL);
		rc = 0;
	}
	if (rc == 0 && u->r->opts.progress)
		u->r->opts.progress(u->r->opts.pctx, u->digest, size, size);
	free(buf);
	return rc;
}

/* "0-END" (inclusive): how many bytes the registry has. distribution
 * says "0-0" for none, so that reads as 0 while nothing was confirmed. */
static int64_t range_end(const char *range, uint64_t confirmed)
{
	uint64_t a, b;

	if (!range || sscanf(range, "%" SCNu64 "-%" SCNu64, &a, &b) != 2 || a != 0)
		return -1;
	return b == 0 && confirmed == 0 ? 0 : (int64_t)(b + 1);
}

/* GET <location>: how much of the session arrived (-1: the session is gone). */
static int64_t upload_status(struct upload *u, uint64_t confirmed)
{
	struct reg_req q;
	struct reg_resp s = {0};
	int64_t have = -1;

	req_init(&q, u, "GET", u->loc);
	if (reg_http(u->r, u->e, &q, &s, NULL) == 0 && s.status == 204 &&
	    take_location(u, &s, NULL) == 0)
		have = range_end(s.range, confirmed);
	reg_resp_clear(&s);
	return have;
}

static int patch(struct upload *u, const uint8_t *p, uint64_t start, size_t n, int64_t *have,
                 struct dimg_err *err)
{
	struct reg_req q;
	struct reg_resp s = {0};
	char cr[48];
	int rc;

	snprintf(cr, sizeof(cr), "%" PRIu64 "-%" PRIu64, start, start + n - 1);
	req_init(&q, u, "PATCH", u->loc);
	q.content_type = OCTETS;
	q.content_range = cr;
	q.body = p;
	q.body_len = n;
	q.once = 1; /* a resent PATCH could add bytes twice: resumed by hand */
	rc = reg_http(u->r, u->e, &q, &s, err);
	if (rc == 0 && s.status != 202)
		rc = reg_status_err(u->e, &q, &s, err);
	if (rc == 0)
		rc = take_location(u, &s, err);
	*have = rc == 0 ? range_end(s.range, start + n) : -1;
	reg_resp_clear(&s);
	return rc;
}

/* Sends buf[0, n) as bytes [start, start + n) of the blob; after a
 * failure asks the registry what arrived and sends the rest. */
static int send_chunk(struct upload *u, const uint8_t *buf, size_t n, uint64_t start,
                      struct dimg_err *err)
{
	struct dimg_err e = {0};
	uint64_t off = 0;
	int rc = 0;

	for (unsigned attempt = 0; off < n; attempt++) {
		int64_t have;
		dimg_err_clear(&e);
		rc = patch(u, buf + off, start + off, n - off, &have, &e);
		if (rc == 0 && (have < 0 || (uint64_t)have == start + n))
			return 0; /* a registry that says nothing is taken at its word */
		if (rc == 0 || transient(rc) || rc == -ERANGE)
			have = upload_status(u, start + off);
		if (have < 0 && start == 0 && attempt < u->r->opts.retries &&
		    upload_start(u, NULL, NULL) == 0)
			have = 0; /* the first chunk holds all sent so far: a new session */
		if (have < (int64_t)start || (uint64_t)have > start + n ||
		    attempt >= u->r->opts.retries)
			break;
		off = (uint64_t)have - start;
		u->r->stats.retries++;
		reg_backoff(u->r, attempt, NULL);
	}
	if (rc < 0)
		return reg_err_copy(err, rc, &e);
	return dimg_err_set(err, -EIO, u->what,
	                    "the upload session was lost at byte %" PRIu64 " (%s)", start,
	                    "the blob is streamed and cannot be sent again from its start");
}

/* A chunk is hashed on a thread of its own while it is sent (both only
 * read it): hashing no longer waits for the registry, nor sending for the
 * hash. */
struct chunk_hash {
	struct dimg_sha256 *h;
	const uint8_t *p;
	size_t n;
};

static void *hash_chunk(void *arg)
{
	struct chunk_hash *c = arg;
	dimg_sha256_update(c->h, c->p, c->n);
	return NULL;
}

static int send_hashed(struct upload *u, struct dimg_sha256 *h, const uint8_t *buf, size_t n,
                       uint64_t start, struct dimg_err *err)
{
	struct chunk_hash c = {.h = h, .p = buf, .n = n};
	pthread_t th;
	int threaded = pthread_create(&th, NULL, hash_chunk, &c) == 0;
	if (!threaded)
		hash_chunk(&c);
	int rc = send_chunk(u, buf, n, start, err);
	if (threaded)
		pthread_join(th, NULL);
	return rc;
}

static int put_chunked(struct upload *u, uint64_t size, reg_read_fn src, void *ctx,
                       const uint8_t d[32], struct dimg_err *err)
{
	size_t chunk = u->r->opts.chunk_size;
	uint8_t *buf = malloc(chunk), got[32];
	struct dimg_sha256 *h = NULL;
	uint64_t done = 0;
	int rc = buf ? dimg_sha256_new(&h) : -ENOMEM;

	if (rc == 0)
		rc = upload_start(u, NULL, err);
	while (rc == 0 && done < size) {
		size_t want = size - done < chunk ? (size_t)(size - done) : chunk;
		ssize_t n = read_full(src, ctx, buf, want);
		if (n < 0)
			rc = dimg_err_set(err, (int)n, u->what, "reading the blob");
		else if ((size_t)n < want)
			rc = dimg_err_set(err, -EBADMSG, u->what,
			                  "the source ends after %" PRIu64 " of %" PRIu64 " bytes",
			                  done + (uint64_t)n, size);
		if (rc < 0)
			break;
		rc = send_hashed(u, h, buf, want, done, err);
		done += want;
		if (rc == 0 && u->r->opts.progress)
			u->r->opts.progress(u->r->opts.pctx, u->digest, done, size);
	}
	if (rc == 0)
		rc = source_at_end(src, ctx, u, size, err);
	if (rc == 0) {
		dimg_sha256_final(h, got);
		if (memcmp(got, d, 32) != 0)
			rc = dimg_err_set(err, -EBADMSG, u->what,
			                  "the source does not match its digest");
	}
	if (rc == 0)
		rc = upload_finish(u, NULL, 0, err);
	if (rc < 0)
		upload_cancel(u);
	dimg_sha256_free(h);
	free(buf);
	return rc;
}

int reg_blob_put(struct reg *r, const char *repo, const uint8_t digest[32], uint64_t size,
                 reg_read_fn src, void *ctx, struct dimg_err *err)
{
	struct upload u;
	int rc = reg_check_repo(repo, err);

	if (rc == 0)
		rc = upload_init(&u, r, repo, digest, NULL);
	if (rc < 0)
		return rc;
	if (size <= r->opts.chunk_size)
		rc = put_whole(&u, size, src, ctx, digest, err);
	else
		rc = put_chunked(&u, size, src, ctx, digest, err);
	upload_clear(&u);
	return rc;
}

int reg_blob_mount(struct reg *r, const char *repo, const uint8_t digest[32], const char *from,
                   struct dimg_err *err)
{
	struct upload u;
	char *query = NULL;
	int rc = reg_check_repo(repo, err);

	if (rc == 0)
		rc = reg_check_repo(from, err);
	if (rc == 0)
		rc = upload_init(&u, r, repo, digest, from);
	if (rc < 0)
		return rc;
	if (asprintf(&query, "mount=%s&from=%s", u.digest, from) < 0) {
		query = NULL;
		rc = -ENOMEM;
	}
	if (rc == 0)
		rc = upload_start(&u, query, err);
	if (rc == 0) /* 202: the registry would not; leave no session behind */
		upload_cancel(&u);
	free(query);
	upload_clear(&u);
	return rc;
}
