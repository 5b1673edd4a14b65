/* URLs of a registry's API (built, resolved, compared by origin) and the
 * errors its answers mean. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "registry-internal.h"

char *reg_url(const struct reg_endpoint *e, const char *repo, const char *fmt, ...)
{
	char *rest, *url;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&rest, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	if (asprintf(&url, "%s%s/%s/%s", e->origin, e->prefix, repo, rest) < 0)
		url = NULL;
	free(rest);
	return url;
}

int reg_repo_http(struct reg *r, struct reg_endpoint *e, struct reg_req *q, const char *repo,
                  const char *actions, const char *path, struct reg_resp *s, struct dimg_err *err)
{
	char *url = reg_url(e, repo, "%s", path), *scope = NULL;
	int rc = 0;

	if (!url || asprintf(&scope, "repository:%s:%s", repo, actions) < 0) {
		scope = NULL;
		rc = -ENOMEM;
	}

	q->url = url;
	q->scope = scope;
	if (rc == 0)
		rc = reg_http(r, e, q, s, err);
	q->url = NULL;
	q->scope = NULL;
	free(url);
	free(scope);
	return rc;
}

static char *url_part(CURLU *u, CURLUPart part, unsigned flags)
{
	char *v = NULL, *out;

	if (curl_url_get(u, part, &v, flags) != CURLUE_OK)
		return NULL;
	out = strdup(v);
	curl_free(v);
	return out;
}

static int http_scheme(CURLU *u)
{
	char *s = url_part(u, CURLUPART_SCHEME, 0);
	int ok = s && (strcmp(s, "http") == 0 || strcmp(s, "https") == 0);

	free(s);
	return ok;
}

char *reg_url_resolve(const char *base, const char *ref)
{
	CURLU *u = curl_url();
	char *out = NULL;

	if (!u)
		return NULL;
	/* an absolute Location is kept to the byte (distribution signs its
	 * upload state in the query); a relative one is resolved */
	if (strstr(ref, "://")) {
		if (curl_url_set(u, CURLUPART_URL, ref, 0) == CURLUE_OK && http_scheme(u))
			out = strdup(ref);
	} else if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
	           curl_url_set(u, CURLUPART_URL, ref, 0) == CURLUE_OK && http_scheme(u)) {
		out = url_part(u, CURLUPART_URL, 0);
	}
	curl_url_cleanup(u);
	return out;
}

/* "scheme://host:port" with the default port said, lower-case; NULL if
 * a is not an http(s) URL. */
static char *origin_of(const char *a)
{
	CURLU *u = curl_url();
	char *s = NULL, *h = NULL, *p = NULL, *out = NULL;

	if (u && curl_url_set(u, CURLUPART_URL, a, 0) == CURLUE_OK && http_scheme(u)) {
		s = url_part(u, CURLUPART_SCHEME, 0);
		h = url_part(u, CURLUPART_HOST, 0);
		p = url_part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT);
		if (s && h && p && asprintf(&out, "%s://%s:%s", s, h, p) < 0)
			out = NULL;
	}
	for (char *c = out; c && *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	free(s);
	free(h);
	free(p);
	curl_url_cleanup(u);
	return out;
}

int reg_url_same_origin(const char *a, const char *b)
{
	char *x = origin_of(a), *y = origin_of(b);
	int same = x && y && strcmp(x, y) == 0;

	free(x);
	free(y);
	return same;
}

/* Registry text into an error message: printable ASCII only, bounded. */
static void clean_text(char *out, size_t n, const char *s, size_t len)
{
	size_t j = 0;

	for (size_t i = 0; i < len && s[i] && j + 1 < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n' || c == '\r')
			break;
		out[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[j] = '\0';
}

/* "CODE: message" of the first error of a distribution error body. */
static void error_text(char *out, size_t n, const struct reg_resp *s)
{
	struct json_object *o = NULL, *arr, *first;
	const char *code = NULL, *msg = NULL;
	char buf[256];

	out[0] = '\0';
	if (s->body.len == 0)
		return;
	if (oci_json_parse(&o, s->body.data, s->body.len) == 0 && (arr = oci_jarr(o, "errors")) &&
	    json_object_array_length(arr) > 0 && (first = json_object_array_get_idx(arr, 0))) {
		code = oci_jstr(first, "code");
		msg = oci_jstr(first, "message");
		snprintf(buf, sizeof(buf), "%s%s%s", code ? code : "", code && msg ? ": " : "",
		         msg ? msg : "");
		clean_text(out, n, buf, strlen(buf));
	} else {
		clean_text(out, n, (const char *)s->body.data, s->body.len);
	}
	json_object_put(o);
}

static int status_errno(long st)
{
	switch (st) {
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 413:
		return -EFBIG;
	case 416:
		return -ERANGE;
	case 429:
		return -EBUSY;
	default:
		return st >= 500 ? -EIO : -EPROTO;
	}
}

int reg_status_err(const struct reg_endpoint *e, const struct reg_req *q, const struct reg_resp *s,
                   struct dimg_err *err)
{
	char text[160];
	const char *label = s->status == 401 ? "unauthorized" : s->status == 403 ? "denied" : NULL;

	error_text(text, sizeof(text), s);
	if (label)
		return dimg_err_set(err, -EACCES, e->name, "%s%s%s", label, text[0] ? ": " : "",
		                    text);
	return dimg_err_set(err, status_errno(s->status), q->what ? q->what : e->name,
	                    "%s %s: HTTP %ld%s%s", q->method, e->name, s->status,
	                    text[0] ? " " : "", text);
}
