/* One HTTP exchange with a registry on the client's one curl handle:
 * the headers a registry client needs kept, bodies bounded or streamed,
 * redirects followed by hand (credentials go only to the endpoint's own
 * origin), bounded retries with backoff, http fallback for loopback. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "registry-internal.h"

struct xfer {
	struct reg *r;
	const struct reg_req *q;
	struct reg_resp *s;
	int body_cut; /* an error body passed its bound: what came is kept */
};

static const struct {
	const char *name;
	size_t off;
} kept_headers[] = {
    {"location", offsetof(struct reg_resp, location)},
    {"content-type", offsetof(struct reg_resp, ctype)},
    {"docker-content-digest", offsetof(struct reg_resp, digest)},
    {"range", offsetof(struct reg_resp, range)},
    {"content-range", offsetof(struct reg_resp, crange)},
    {"www-authenticate", offsetof(struct reg_resp, www_auth)},
    {"link", offsetof(struct reg_resp, link)},
    {"retry-after", offsetof(struct reg_resp, retry_after)},
};
#define N_KEPT (sizeof(kept_headers) / sizeof(kept_headers[0]))

static char **header_slot(struct reg_resp *s, size_t i)
{
	return (char **)((char *)s + kept_headers[i].off);
}

static void resp_reset_headers(struct reg_resp *s)
{
	for (size_t i = 0; i < N_KEPT; i++) {
		free(*header_slot(s, i));
		*header_slot(s, i) = NULL;
	}
	s->status = 0;
	s->clen = -1;
}

void reg_resp_clear(struct reg_resp *s)
{
	resp_reset_headers(s);
	dimg_buf_free(&s->body);
	free(s->url);
	memset(s, 0, sizeof(*s));
	s->clen = -1;
}

static long parse_status(const char *p, size_t n)
{
	const char *sp = memchr(p, ' ', n);
	long v = 0;

	if (!sp)
		return 0;
	for (sp++; sp < p + n && *sp >= '0' && *sp <= '9' && v < 1000; sp++)
		v = v * 10 + (*sp - '0');
	return v >= 100 && v < 1000 ? v : 0;
}

static void keep_header(struct reg_resp *s, const char *k, size_t kl, const char *v, size_t vl)
{
	if (kl == 14 && strncasecmp(k, "content-length", kl) == 0) {
		char num[24];
		char *end;
		if (vl == 0 || vl >= sizeof(num))
			return;
		memcpy(num, v, vl);
		num[vl] = '\0';
		unsigned long long n = strtoull(num, &end, 10);
		if (*end == '\0' && num[0] >= '0' && num[0] <= '9' && n <= INT64_MAX)
			s->clen = (int64_t)n;
		return;
	}
	for (size_t i = 0; i < N_KEPT; i++) {
		char **slot = header_slot(s, i);
		if (strlen(kept_headers[i].name) != kl || strncasecmp(k, kept_headers[i].name, kl))
			continue;
		/* the first challenge and the first Link are the ones used */
		if (*slot || vl > REG_HEADER_MAX)
			return;
		*slot = strndup(v, vl);
		return;
	}
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nitems;
	const char *colon, *v, *e;

	if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		resp_reset_headers(x->s);
		x->s->status = parse_status(buf, n);
		return n;
	}
	colon = memchr(buf, ':', n);
	if (!colon)
		return n;
	v = colon + 1;
	e = buf + n;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
		e--;
	keep_header(x->s, buf, (size_t)(colon - buf), v, (size_t)(e - v));
	return n;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	struct reg_resp *s = x->s;
	size_t n = size * nmemb, max;
	int ok = s->status >= 200 && s->status < 300;

	x->r->stats.bytes_in += n;
	if (ok && x->q->sink) {
		int rc = x->q->sink(x->q->sink_ctx, p, n);
		if (rc < 0) {
			s->sink_rc = rc;
			return 0;
		}
		s->sunk += n;
		return n;
	}
	max = ok && x->q->body_max ? x->q->body_max : REG_ERRBODY_MAX;
	if (n > max - s->body.len) {
		if (ok && x->q->body_max)
			s->too_big = 1;
		else
			x->body_cut = 1;
		return 0;
	}
	return dimg_buf_append(&s->body, p, n) < 0 ? 0 : n;
}

static int add_header(struct curl_slist **h, const char *name, const char *value)
{
	char line[REG_HEADER_MAX + 64];
	struct curl_slist *n;

	if (!value)
		return 0;
	if ((size_t)snprintf(line, sizeof(line), "%s: %s", name, value) >= sizeof(line))
		return -EOVERFLOW;
	n = curl_slist_append(*h, line);
	if (!n)
		return -ENOMEM;
	*h = n;
	return 0;
}

static int build_headers(struct curl_slist **h, const struct reg_req *q, const char *bearer)
{
	char auth[REG_HEADER_MAX];
	int rc = 0;

	/* no "Expect: 100-continue" round trip before bodies */
	*h = curl_slist_append(NULL, "Expect:");
	if (!*h)
		return -ENOMEM;
	if (q->body && !q->content_type)
		rc = add_header(h, "Content-Type", "");
	if (rc == 0)
		rc = add_header(h, "Accept", q->accept);
	if (rc == 0)
		rc = add_header(h, "Content-Type", q->content_type);
	if (rc == 0)
		rc = add_header(h, "Range", q->range);
	if (rc == 0)
		rc = add_header(h, "Content-Range", q->content_range);
	if (rc == 0 && bearer) {
		if ((size_t)snprintf(auth, sizeof(auth), "Bearer %s", bearer) >= sizeof(auth))
			rc = -EOVERFLOW;
		else
			rc = add_header(h, "Authorization", auth);
		explicit_bzero(auth, sizeof(auth));
	}
	return rc;
}

static void set_method(CURL *c, const struct reg_req *q)
{
	if (strcmp(q->method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(q->method, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
		if (q->body || strcmp(q->method, "DELETE") != 0) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body ? q->body : "");
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
		}
	}
}

static void set_common(struct reg *r, struct xfer *x, const char *url)
{
	CURL *c = r->curl;
	long t = (long)r->opts.timeout_s;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_USERAGENT, r->ua);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, t < 30 ? t : 30L);
	/* a stall (under 1 KiB/s for t seconds) ends any exchange; one that
	 * sends or fetches no blob has a whole-exchange deadline too (a slow
	 * link takes its time over a chunk) */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, t);
	if (!x->q->streamed && x->q->body_len <= REG_ERRBODY_MAX)
		curl_easy_setopt(c, CURLOPT_TIMEOUT, 2 * t);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->curl_err);
	r->curl_err[0] = '\0';
}

/* One request, one answer. *cc says how curl ended. */
static int http_once(struct reg *r, struct reg_endpoint *e, const struct reg_req *q,
                     const char *url, int creds, struct reg_resp *s, CURLcode *cc,
                     struct dimg_err *err)
{
	struct xfer x = {.r = r, .q = q, .s = s};
	struct curl_slist *h = NULL;
	char *bearer = NULL;
	int basic = 0, rc = 0;

	*cc = CURLE_OK;
	resp_reset_headers(s);
	s->body.len = 0;
	s->too_big = 0;
	if (creds && !q->token_req)
		rc = reg_auth_prepare(r, e, q->scope, &bearer, &basic, err);
	else if (creds)
		basic = e->auth.user != NULL;
	if (rc == 0)
		rc = build_headers(&h, q, bearer);
	if (bearer) {
		explicit_bzero(bearer, strlen(bearer));
		free(bearer);
	}
	if (rc < 0) {
		curl_slist_free_all(h);
		return rc;
	}
	curl_easy_reset(r->curl);
	set_common(r, &x, url);
	set_method(r->curl, q);
	curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, h);
	if (creds)
		reg_curl_tls(r->curl, &e->tls);
	if (basic) {
		curl_easy_setopt(r->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(r->curl, CURLOPT_USERNAME, e->auth.user);
		curl_easy_setopt(r->curl, CURLOPT_PASSWORD, e->auth.pass ? e->auth.pass : "");
	}
	r->stats.requests++;
	r->stats.bytes_out += q->body ? q->body_len : 0;
	*cc = curl_easy_perform(r->curl);
	/* credentials must not stay in the handle's option strings */
	curl_easy_setopt(r->curl, CURLOPT_USERNAME, NULL);
	curl_easy_setopt(r->curl, CURLOPT_PASSWORD, NULL);
	curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	if (*cc == CURLE_WRITE_ERROR && x.body_cut)
		*cc = CURLE_OK;
	return 0;
}

static int is_redirect(long st)
{
	return st == 301 || st == 302 || st == 303 || st == 307 || st == 308;
}

/* One request with its redirects. *why explains a failure of ours. */
static int http_follow(struct reg *r, struct reg_endpoint *e, const struct reg_req *q,
                       const char *start, struct reg_resp *s, CURLcode *cc, const char **why,
                       struct dimg_err *err)
{
	char *url = strdup(start), *next;
	int rc = 0;

	for (int hops = 0; url; hops++) {
		s->same_origin = reg_url_same_origin(url, e->origin);
		/* a token request sends the endpoint's credentials to its realm */
		rc = http_once(r, e, q, url, s->same_origin || (q->token_req && hops == 0), s, cc,
		               err);
		if (rc < 0 || *cc != CURLE_OK)
			break;
		if (s->same_origin)
			e->scheme_known = 1;
		if (!q->follow || !is_redirect(s->status))
			break;
		if (hops >= REG_REDIRECTS_MAX) {
			*why = "too many redirects";
			rc = -ELOOP;
			break;
		}
		next = s->location ? reg_url_resolve(url, s->location) : NULL;
		if (!next || (strncmp(url, "https:", 6) == 0 && strncmp(next, "https:", 6) != 0)) {
			*why = "redirect to an unusable location";
			free(next);
			rc = -EPROTO;
			break;
		}
		free(url);
		url = next;
	}
	if (!url)
		return -ENOMEM;
	free(s->url);
	s->url = url;
	return rc;
}

static int curl_errno(CURLcode cc)
{
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ENGINE_NOTFOUND:
		return -EPROTO;
	default:
		return -ECONNRESET;
	}
}

static int curl_retriable(CURLcode cc)
{
	return cc == CURLE_COULDNT_CONNECT || cc == CURLE_OPERATION_TIMEDOUT ||
	       cc == CURLE_PARTIAL_FILE || cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR ||
	       cc == CURLE_GOT_NOTHING || cc == CURLE_HTTP2 || cc == CURLE_HTTP2_STREAM;
}

static int status_retriable(long st)
{
	return st == 408 || st == 429 || st == 500 || st == 502 || st == 503 || st == 504;
}

void reg_backoff(const struct reg *r, unsigned attempt, const char *retry_after)
{
	uint64_t ms = (uint64_t)r->opts.retry_ms << (attempt < 6 ? attempt : 6);
	struct timespec ts;

	if (retry_after) {
		char *end;
		unsigned long s = strtoul(retry_after, &end, 10);
		if (*end == '\0' && end != retry_after && s * 1000 > ms)
			ms = s * 1000;
	}
	if (ms > 10000)
		ms = 10000;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* An https endpoint that may fall back to http and has not yet answered
 * over https: switch it (and url) to http. */
static int try_http(struct reg_endpoint *e, char **url)
{
	char *o, *u;

	if (!e->http_fallback || e->scheme_known || strncmp(e->origin, "https://", 8) != 0 ||
	    strncmp(*url, e->origin, strlen(e->origin)) != 0)
		return 0;
	if (asprintf(&o, "http://%s", e->origin + 8) < 0)
		return -ENOMEM;
	if (asprintf(&u, "http://%s", *url + 8) < 0) {
		free(o);
		return -ENOMEM;
	}
	free(e->origin);
	e->origin = o;
	free(*url);
	*url = u;
	return 1;
}

static int http_fail(struct reg *r, const struct reg_endpoint *e, const struct reg_req *q,
                     const struct reg_resp *s, int rc, CURLcode cc, const char *why,
                     struct dimg_err *err)
{
	const char *what = q->what ? q->what : e->name;

	if (s->sink_rc < 0)
		return dimg_err_set(err, s->sink_rc, what, "writing what the registry sent");
	if (s->too_big)
		return dimg_err_set(err, -EFBIG, what, "the answer is larger than %zu bytes",
		                    q->body_max);
	if (rc < 0)
		return dimg_err_set(err, rc, what, "%s", why ? why : strerror(-rc));
	return dimg_err_set(err, curl_errno(cc), what, "%s %s: %s", q->method, e->name,
	                    r->curl_err[0] ? r->curl_err : curl_easy_strerror(cc));
}

int reg_http(struct reg *r, struct reg_endpoint *e, const struct reg_req *q, struct reg_resp *s,
             struct dimg_err *err)
{
	char *url = strdup(q->url);
	unsigned attempt = 0;
	int authed = 0, rc = url ? 0 : -ENOMEM;
	CURLcode cc = CURLE_OK;
	const char *why = NULL;

	while (rc == 0) {
		s->sink_rc = 0;
		rc = http_follow(r, e, q, url, s, &cc, &why, err);
		if (rc == 0 && cc == CURLE_SSL_CONNECT_ERROR && (rc = try_http(e, &url)) != 0) {
			if (rc < 0)
				break;
			rc = 0;
			continue;
		}
		if (rc < 0 || s->sink_rc < 0 || s->too_big)
			break;
		if (cc == CURLE_OK && s->status == 401 && s->same_origin && !authed &&
		    !q->token_req) {
			authed = 1;
			rc = reg_auth_challenge(r, e, s->www_auth, q->scope, err);
			if (rc < 0)
				break;
			continue;
		}
		if (cc == CURLE_OK ? !status_retriable(s->status) : !curl_retriable(cc))
			break;
		/* a mirror gets one more try: the registry is behind it */
		if (q->once || s->sunk > 0 || attempt >= (e->mirror ? 1 : r->opts.retries))
			break;
		r->stats.retries++;
		reg_backoff(r, attempt++, s->retry_after);
	}
	free(url);
	if (e->mirror && (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST))
		e->down = 1;
	if (rc < 0 || cc != CURLE_OK || s->sink_rc < 0 || s->too_big)
		return http_fail(r, e, q, s, rc, cc, why, err);
	return 0;
}
