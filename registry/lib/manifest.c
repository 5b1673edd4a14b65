/* Manifests and indexes: GET and HEAD with the Accept list every registry
 * needs, the exact bytes kept and checked against the digest asked for and
 * the one answered, platform selection, PUT. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "dimg/hash.h"
#include "registry-internal.h"

/* distribution 2.8 answers an OCI manifest with an error unless asked for */
#define MANIFEST_ACCEPT                                                                            \
	OCI_MT_MANIFEST ", " OCI_MT_INDEX ", " DOCKER_MT_MANIFEST ", " DOCKER_MT_LIST

void reg_manifest_clear(struct reg_manifest *m)
{
	free(m->raw);
	memset(m, 0, sizeof(*m));
}

static void what_of(char *out, size_t n, const struct reg *r, const char *repo, const char *ref)
{
	snprintf(out, n, "%s/%s%s%s", r->host, repo, oci_digest_valid(ref) ? "@" : ":", ref);
}

/* The media type: the Content-Type without parameters, else the
 * document's own mediaType; only manifests and indexes are read. */
static int media_type(struct reg_manifest *m, const char *ctype, struct json_object *o)
{
	char mt[128];
	size_t n = ctype ? strcspn(ctype, "; \t") : 0;

	snprintf(mt, sizeof(mt), "%.*s", (int)n, ctype ? ctype : "");
	if (!oci_mt_is_manifest(mt) && !oci_mt_is_index(mt))
		snprintf(mt, sizeof(mt), "%s",
		         oci_jstr(o, "mediaType") ? oci_jstr(o, "mediaType") : "");
	if (!oci_mt_is_manifest(mt) && !oci_mt_is_index(mt))
		return -ENOTSUP;
	snprintf(m->media_type, sizeof(m->media_type), "%s", mt);
	return 0;
}

/* The bytes against the digest asked for and the one the registry says. */
static int check_digest(const uint8_t *got, const char *ref, const char *header, const char *what,
                        struct dimg_err *err)
{
	uint8_t want[32];

	if (oci_digest_parse(want, ref) == 0 && memcmp(want, got, 32) != 0)
		return dimg_err_set(err, -EBADMSG, what, "the manifest does not match its digest");
	/* another algorithm in the header cannot be checked, but is no lie */
	if (header && oci_digest_parse(want, header) == 0 && memcmp(want, got, 32) != 0)
		return dimg_err_set(err, -EBADMSG, what,
		                    "Docker-Content-Digest does not match the manifest's bytes");
	return 0;
}

static int take_manifest(struct reg_manifest *out, struct reg_resp *s, const char *ref,
                         const char *what, struct dimg_err *err)
{
	struct json_object *o = NULL;
	int rc = oci_json_parse(&o, s->body.data, s->body.len);

	if (rc < 0)
		return dimg_err_set(err, rc, what, "the manifest is not JSON");
	rc = media_type(out, s->ctype, o);
	json_object_put(o);
	if (rc < 0)
		return dimg_err_set(err, rc, what,
		                    "not an OCI or Docker schema 2 manifest or index");
	rc = dimg_sha256_buf(s->body.data, s->body.len, out->digest);
	if (rc == 0)
		rc = check_digest(out->digest, ref, s->digest, what, err);
	if (rc < 0)
		return rc;
	out->raw = s->body.data;
	out->len = s->body.len;
	memset(&s->body, 0, sizeof(s->body));
	return 0;
}

static int get_from(struct reg *r, struct reg_endpoint *e, const char *repo, const char *ref,
                    struct reg_manifest *out, const char *what, struct dimg_err *err)
{
	struct reg_req q = {.method = "GET",
	                    .accept = MANIFEST_ACCEPT,
	                    .what = what,
	                    .body_max = OCI_JSON_MAX,
	                    .follow = 1};
	struct reg_resp s = {0};
	char path[256];
	int rc;

	snprintf(path, sizeof(path), "manifests/%s", ref);
	rc = reg_repo_http(r, e, &q, repo, "pull", path, &s, err);
	if (rc == 0 && s.status != 200)
		rc = s.status == 404 ? dimg_err_set(err, -ENOENT, what, "manifest unknown")
		                     : reg_status_err(e, &q, &s, err);
	else if (rc == 0)
		rc = take_manifest(out, &s, ref, what, err);
	reg_resp_clear(&s);
	return rc;
}

/* The checks and the error name every read of a manifest starts with. */
static int start(const struct reg *r, const char *repo, const char *ref, struct reg_manifest *out,
                 char *what, size_t n, struct dimg_err *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = reg_check_repo(repo, err)) < 0 || (rc = reg_check_ref(ref, err)) < 0)
		return rc;
	what_of(what, n, r, repo, ref);
	return 0;
}

/* Mirrors (that can resolve a tag, or pull by digest) first, then the
 * registry; a mirror's failure only moves on to the next. */
int reg_manifest_get(struct reg *r, const char *repo, const char *ref, struct reg_manifest *out,
                     struct dimg_err *err)
{
	unsigned cap = oci_digest_valid(ref) ? REG_CAP_PULL : REG_CAP_RESOLVE;
	char what[512];
	int rc = start(r, repo, ref, out, what, sizeof(what), err);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < r->nep; i++) {
		struct dimg_err local = {0};
		struct reg_endpoint *e = &r->ep[i];
		if (e->mirror && (!(e->caps & cap) || e->down))
			continue;
		rc = get_from(r, e, repo, ref, out, what, e->mirror ? &local : err);
		if (rc == 0 || !e->mirror)
			break;
	}
	return rc;
}

static int head_from(struct reg *r, struct reg_endpoint *e, const char *repo, const char *ref,
                     struct reg_manifest *out, const char *what, struct dimg_err *err)
{
	struct reg_req q = {.method = "HEAD", .accept = MANIFEST_ACCEPT, .what = what, .follow = 1};
	struct reg_resp s = {0};
	char path[256];
	int rc;

	snprintf(path, sizeof(path), "manifests/%s", ref);
	rc = reg_repo_http(r, e, &q, repo, "pull", path, &s, err);
	if (rc == 0 && s.status == 404)
		rc = 0;
	else if (rc == 0 && s.status != 200)
		rc = reg_status_err(e, &q, &s, err);
	else if (rc == 0 && (media_type(out, s.ctype, NULL) < 0 || !s.digest ||
	                     oci_digest_parse(out->digest, s.digest) < 0 || s.clen < 0))
		rc = -EAGAIN; /* not said: ask with a GET */
	else if (rc == 0) {
		out->len = (size_t)s.clen;
		rc = 1;
	}
	reg_resp_clear(&s);
	return rc;
}

int reg_manifest_head(struct reg *r, const char *repo, const char *ref, struct reg_manifest *out,
                      struct dimg_err *err)
{
	char what[512];
	int rc = start(r, repo, ref, out, what, sizeof(what), err);

	if (rc < 0)
		return rc;
	rc = head_from(r, reg_origin(r), repo, ref, out, what, err);
	if (rc == 1 && oci_digest_valid(ref))
		rc = check_digest(out->digest, ref, NULL, what, err) < 0 ? -EBADMSG : 1;
	if (rc != -EAGAIN)
		return rc;
	rc = get_from(r, reg_origin(r), repo, ref, out, what, err);
	if (rc == 0) {
		free(out->raw);
		out->raw = NULL;
		return 1;
	}
	return rc == -ENOENT ? 0 : rc;
}

static int select_entry(struct json_object *arr, const struct oci_platform *want,
                        uint8_t digest[32], uint64_t *size, char *have, size_t haven)
{
	size_t n = json_object_array_length(arr), used = 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(arr, i);
		struct oci_platform p;
		struct oci_desc d;
		char ps[100];
		if (oci_desc_parse(&d, m) < 0 || !oci_jobj(m, "platform"))
			continue;
		oci_platform_from_json(&p, oci_jobj(m, "platform"));
		if (oci_platform_match(want, &p) &&
		    (!d.media_type || oci_mt_is_manifest(d.media_type))) {
			memcpy(digest, d.digest, 32);
			*size = d.size;
			return 0;
		}
		oci_platform_str(ps, sizeof(ps), &p);
		if (used < haven) {
			int w = snprintf(have + used, haven - used, "%s%s", used ? ", " : "", ps);
			used += w > 0 ? (size_t)w : 0;
		}
	}
	return -ENOENT;
}

int reg_index_select(const uint8_t *raw, size_t len, const char *platform, uint8_t digest[32],
                     uint64_t *size, struct dimg_err *err)
{
	struct json_object *o = NULL, *arr;
	struct oci_platform want;
	char have[256] = "", ws[100];
	uint64_t sz = 0;
	int rc;

	if (platform ? oci_platform_parse(&want, platform) < 0 : (oci_platform_host(&want), 0))
		return dimg_err_set(err, -EINVAL, platform, "not a platform (os/arch[/variant])");
	rc = oci_json_parse(&o, raw, len);
	if (rc < 0)
		return dimg_err_set(err, rc, "index", "not JSON");
	arr = oci_jarr(o, "manifests");
	rc = arr ? select_entry(arr, &want, digest, &sz, have, sizeof(have)) : -EBADMSG;
	json_object_put(o);
	oci_platform_str(ws, sizeof(ws), &want);
	if (rc == -EBADMSG)
		return dimg_err_set(err, rc, "index", "no manifests array");
	if (rc < 0)
		return dimg_err_set(err, rc, ws,
		                    "no manifest for this platform in the index (it has: %s)",
		                    have[0] ? have : "none");
	if (size)
		*size = sz;
	return 0;
}

int reg_manifest_resolve(struct reg *r, const char *repo, const char *ref, const char *platform,
                         struct reg_manifest *out, struct dimg_err *err)
{
	char digest[OCI_DIGEST_LEN];
	uint8_t d[32];
	uint64_t size;
	int rc = reg_manifest_get(r, repo, ref, out, err);

	if (rc < 0 || !oci_mt_is_index(out->media_type))
		return rc;
	rc = reg_index_select(out->raw, out->len, platform, d, &size, err);
	reg_manifest_clear(out);
	if (rc < 0)
		return rc;
	oci_digest_str(digest, d);
	rc = reg_manifest_get(r, repo, digest, out, err);
	if (rc == 0 && out->len != size) {
		reg_manifest_clear(out);
		return dimg_err_set(err, -EBADMSG, digest,
		                    "the manifest's size is not the index's");
	}
	return rc;
}

int reg_manifest_put(struct reg *r, const char *repo, const char *ref, const void *raw, size_t len,
                     const char *media_type, struct dimg_err *err)
{
	struct reg_endpoint *e = reg_origin(r);
	struct reg_req q = {
	    .method = "PUT", .content_type = media_type, .body = raw, .body_len = len};
	struct reg_resp s = {0};
	char digest[OCI_DIGEST_LEN], what[512], path[256];
	uint8_t d[32];
	int rc = reg_check_repo(repo, err);

	if (rc == 0 && ref)
		rc = reg_check_ref(ref, err);
	if (rc < 0)
		return rc;
	if (len > OCI_JSON_MAX || !media_type)
		return dimg_err_set(err, len > OCI_JSON_MAX ? -EFBIG : -EINVAL, repo,
		                    "a manifest of at most %u bytes with its media type",
		                    OCI_JSON_MAX);
	rc = dimg_sha256_buf(raw, len, d);
	if (rc < 0)
		return rc;
	oci_digest_str(digest, d);
	what_of(what, sizeof(what), r, repo, ref ? ref : digest);
	q.what = what;
	snprintf(path, sizeof(path), "manifests/%s", ref ? ref : digest);
	rc = reg_repo_http(r, e, &q, repo, "pull,push", path, &s, err);
	if (rc == 0 && (s.status < 200 || s.status > 299))
		rc = reg_status_err(e, &q, &s, err);
	else if (rc == 0)
		rc = check_digest(d, digest, s.digest, what, err);
	reg_resp_clear(&s);
	return rc;
}
