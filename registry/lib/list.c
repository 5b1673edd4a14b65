/* Listings that come in pages linked by Link: rel="next": a repository's
 * tags, and the referrers of a manifest (distribution-spec v1.1). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "registry-internal.h"

#define PAGES_MAX 10000

typedef int (*page_fn)(void *ctx, struct json_object *doc);

/* Link: <URL>; rel="next" — the URL, resolved against base and kept on
 * the registry's origin; NULL when there is no next page. */
static int link_next(char **out, const char *link, const char *base, const char *origin)
{
	const char *lt = link ? strchr(link, '<') : NULL, *gt = lt ? strchr(lt, '>') : NULL;
	char *ref;

	*out = NULL;
	if (!gt || (!strstr(gt, "rel=\"next\"") && !strstr(gt, "rel=next")))
		return 0;
	ref = strndup(lt + 1, (size_t)(gt - lt - 1));
	if (!ref)
		return -ENOMEM;
	*out = reg_url_resolve(base, ref);
	free(ref);
	if (!*out || !reg_url_same_origin(*out, origin)) {
		free(*out);
		*out = NULL;
		return -EPROTO;
	}
	return 0;
}

struct walk {
	const char *scope, *what, *accept;
	page_fn fn;
	void *ctx;
};

static int walk_pages(struct reg *r, struct reg_endpoint *e, char *url, const struct walk *w,
                      struct dimg_err *err)
{
	int rc = 0;

	for (unsigned pages = 0; rc == 0 && url; pages++) {
		struct reg_req q = {.method = "GET",
		                    .url = url,
		                    .scope = w->scope,
		                    .what = w->what,
		                    .accept = w->accept,
		                    .body_max = OCI_JSON_MAX,
		                    .follow = 1};
		struct reg_resp s = {0};
		struct json_object *doc = NULL;
		char *next = NULL;
		if (pages == PAGES_MAX)
			rc = dimg_err_set(err, -ELOOP, w->what, "more than %d pages", PAGES_MAX);
		if (rc == 0)
			rc = reg_http(r, e, &q, &s, err);
		if (rc == 0 && s.status == 404)
			rc = -ENOENT; /* the caller says what that means */
		else if (rc == 0 && s.status != 200)
			rc = reg_status_err(e, &q, &s, err);
		else if (rc == 0 && (rc = oci_json_parse(&doc, s.body.data, s.body.len)) < 0)
			rc = dimg_err_set(err, rc, w->what, "the listing is not JSON");
		else if (rc == 0 && (rc = w->fn(w->ctx, doc)) == 0 &&
		         link_next(&next, s.link, s.url, e->origin) < 0)
			rc =
			    dimg_err_set(err, -EPROTO, w->what, "a Link to another host (refused)");
		json_object_put(doc);
		reg_resp_clear(&s);
		free(url);
		url = next;
	}
	free(url);
	return rc;
}

/* The pages from the registry's <prefix>/<repo>/<path> on. */
static int list_walk(struct reg *r, const char *repo, const char *path, struct walk *w,
                     struct dimg_err *err)
{
	struct reg_endpoint *e = reg_origin(r);
	char *scope = NULL, *url = reg_url(e, repo, "%s", path);
	int rc;

	if (!url || asprintf(&scope, "repository:%s:pull", repo) < 0) {
		free(url);
		return -ENOMEM;
	}
	w->scope = scope;
	rc = walk_pages(r, e, url, w, err);
	free(scope);
	return rc;
}

struct tags_ctx {
	reg_tag_fn fn;
	void *ctx;
};

static int tags_page(void *ctx, struct json_object *doc)
{
	struct tags_ctx *t = ctx;
	struct json_object *arr = oci_jarr(doc, "tags");
	size_t n = arr ? json_object_array_length(arr) : 0;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct json_object *v = json_object_array_get_idx(arr, i);
		if (json_object_is_type(v, json_type_string))
			rc = t->fn(t->ctx, json_object_get_string(v));
	}
	return rc;
}

int reg_tags_list(struct reg *r, const char *repo, reg_tag_fn fn, void *ctx, struct dimg_err *err)
{
	struct tags_ctx t = {fn, ctx};
	struct walk w = {.fn = tags_page, .ctx = &t};
	char what[512];
	int rc = reg_check_repo(repo, err);

	if (rc < 0)
		return rc;
	snprintf(what, sizeof(what), "%s/%s", r->host, repo);
	w.what = what;
	rc = list_walk(r, repo, "tags/list", &w, err);
	if (rc == -ENOENT)
		rc = dimg_err_set(err, rc, what, "repository unknown");
	return rc;
}

struct refs_ctx {
	const char *artifact_type;
	reg_desc_fn fn;
	void *ctx;
};

static int refs_page(void *ctx, struct json_object *doc)
{
	struct refs_ctx *f = ctx;
	struct json_object *arr = oci_jarr(doc, "manifests");
	size_t n = arr ? json_object_array_length(arr) : 0;
	int rc = arr ? 0 : -EBADMSG;

	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct json_object *d = json_object_array_get_idx(arr, i);
		const char *at = oci_jstr(d, "artifactType");
		/* filtered here too: a registry may ignore the filter */
		if (!f->artifact_type || (at && strcmp(at, f->artifact_type) == 0))
			rc = f->fn(f->ctx, d);
	}
	return rc;
}

int reg_referrers(struct reg *r, const char *repo, const uint8_t digest[32],
                  const char *artifact_type, reg_desc_fn fn, void *ctx, struct dimg_err *err)
{
	struct refs_ctx f = {artifact_type, fn, ctx};
	struct walk w = {.fn = refs_page, .ctx = &f, .accept = OCI_MT_INDEX};
	char d[OCI_DIGEST_LEN], what[512], path[512], *esc = NULL;
	int rc = reg_check_repo(repo, err);

	if (rc < 0)
		return rc;
	oci_digest_str(d, digest);
	reg_blob_what(what, sizeof(what), r, repo, digest);
	if (artifact_type)
		esc = curl_easy_escape(r->curl, artifact_type, 0);
	snprintf(path, sizeof(path), "referrers/%s%s%.300s", d, esc ? "?artifactType=" : "",
	         esc ? esc : "");
	curl_free(esc);
	w.what = what;
	rc = list_walk(r, repo, path, &w, err);
	if (rc == -ENOENT)
		rc = dimg_err_set(err, -ENOTSUP, what, "the registry has no referrers API");
	else if (rc == -EBADMSG)
		rc = dimg_err_set(err, rc, what, "the referrers answer is not an index");
	return rc;
}
