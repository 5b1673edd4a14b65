/* Registry auth: WWW-Authenticate challenges, HTTP basic, and the bearer
 * token flow of distribution's token spec — a token per set of scopes from
 * the challenge's realm, kept until it expires. One answer to a 401 per
 * request: wrong credentials fail fast, never a storm of retries. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "registry-internal.h"

#define TOKEN_DOC_MAX   (1u << 20)
#define TOKEN_TTL_DEF   60
#define TOKEN_TTL_MAX   86400
#define TOKEN_CHARS_MAX (REG_HEADER_MAX - 16)

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

static int is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~/:=", c));
}

/* A token or a quoted-string at *p; *p moves past it. */
static char *param_value(const char **p)
{
	struct dimg_buf b = {0};
	const char *s = *p;

	if (*s != '"') {
		size_t n = 0;
		while (is_tchar(s[n]) && s[n] != ',')
			n++;
		*p = s + n;
		return n ? strndup(s, n) : NULL;
	}
	for (s++; *s && *s != '"'; s++) {
		if (*s == '\\' && s[1])
			s++;
		if (dimg_buf_append(&b, s, 1) < 0)
			break;
	}
	if (*s != '"' || dimg_buf_append(&b, "", 1) < 0) {
		dimg_buf_free(&b);
		return NULL;
	}
	*p = s + 1;
	return (char *)b.data;
}

static void keep_param(struct reg_challenge *c, const char *k, size_t kl, char *v)
{
	char **slot = kl == 5 && !strncasecmp(k, "realm", kl)     ? &c->realm
	              : kl == 7 && !strncasecmp(k, "service", kl) ? &c->service
	              : kl == 5 && !strncasecmp(k, "scope", kl)   ? &c->scope
	                                                          : NULL;
	if (slot && !*slot)
		*slot = v;
	else
		free(v);
}

int reg_challenge_parse(struct reg_challenge *c, const char *h)
{
	const char *p = skip_ws(h);
	size_t n = 0;

	memset(c, 0, sizeof(*c));
	while (n + 1 < sizeof(c->scheme) &&
	       ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z'))) {
		c->scheme[n] = (char)(p[n] | 0x20);
		n++;
	}
	c->scheme[n] = '\0';
	if (strcmp(c->scheme, "bearer") != 0 && strcmp(c->scheme, "basic") != 0)
		return -EBADMSG;
	for (p = skip_ws(p + n); *p;) {
		const char *k = p, *eq;
		while (is_tchar(*p) && *p != '=' && *p != ',')
			p++;
		eq = skip_ws(p);
		if (*eq != '=') /* the next challenge starts: this one is complete */
			break;
		size_t kl = (size_t)(p - k);
		p = skip_ws(eq + 1);
		char *v = param_value(&p);
		if (!v) {
			reg_challenge_clear(c);
			return -EBADMSG;
		}
		keep_param(c, k, kl, v);
		p = skip_ws(p);
		if (*p == ',')
			p = skip_ws(p + 1);
		else if (*p)
			break;
	}
	if (strcmp(c->scheme, "bearer") == 0 && !c->realm) {
		reg_challenge_clear(c);
		return -EBADMSG;
	}
	return 0;
}

void reg_challenge_clear(struct reg_challenge *c)
{
	free(c->realm);
	free(c->service);
	free(c->scope);
	memset(c, 0, sizeof(*c));
}

/* A token goes into a header: visible ASCII, no spaces. */
static int token_ok(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > TOKEN_CHARS_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
			return 0;
	return 1;
}

int reg_token_parse(const void *buf, size_t len, char **token, int64_t *expires_in)
{
	struct json_object *o = NULL, *v;
	const char *t;
	int rc = oci_json_parse(&o, buf, len);

	*token = NULL;
	*expires_in = TOKEN_TTL_DEF;
	if (rc < 0)
		return rc;
	t = oci_jstr(o, "token");
	if (!t || !t[0])
		t = oci_jstr(o, "access_token");
	if (json_object_object_get_ex(o, "expires_in", &v) &&
	    json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0)
		*expires_in = json_object_get_int64(v) < TOKEN_TTL_MAX ? json_object_get_int64(v)
		                                                       : TOKEN_TTL_MAX;
	if (!t || !token_ok(t))
		rc = -EBADMSG;
	else if (!(*token = strdup(t)))
		rc = -ENOMEM;
	json_object_put(o);
	return rc;
}

static void token_drop(struct reg_token *t)
{
	if (t->token) {
		explicit_bzero(t->token, strlen(t->token));
		free(t->token);
	}
	free(t->scope);
	memset(t, 0, sizeof(*t));
}

static struct reg_token *token_find(struct reg_auth *a, const char *scope)
{
	int64_t now = reg_now_ms();

	for (size_t i = 0; i < REG_TOKENS_MAX; i++) {
		struct reg_token *t = &a->tokens[i];
		if (t->scope && strcmp(t->scope, scope) == 0) {
			if (t->expires_ms > now)
				return t;
			token_drop(t);
		}
	}
	return NULL;
}

/* Keeps token (taking it) for scope in a free slot, else the one that
 * expires first. */
static int token_keep(struct reg_auth *a, const char *scope, char *token, int64_t ttl)
{
	struct reg_token *slot = &a->tokens[0];

	for (size_t i = 0; i < REG_TOKENS_MAX; i++) {
		struct reg_token *t = &a->tokens[i];
		if (!t->scope || strcmp(t->scope, scope) == 0) {
			slot = t;
			break;
		}
		if (t->expires_ms < slot->expires_ms)
			slot = t;
	}
	token_drop(slot);
	slot->scope = strdup(scope);
	if (!slot->scope) {
		explicit_bzero(token, strlen(token));
		free(token);
		return -ENOMEM;
	}
	slot->token = token;
	/* renewed a little before the registry would refuse it */
	slot->expires_ms = reg_now_ms() + ttl * 1000 - (ttl > 20 ? 10000 : ttl * 500);
	return 0;
}

static int append_param(struct dimg_buf *b, CURL *c, const char *key, const char *v, size_t n)
{
	char *esc = curl_easy_escape(c, v, (int)n);
	int rc = esc ? 0 : -ENOMEM;

	if (rc == 0)
		rc = dimg_buf_append(b, b->len ? "&" : "", b->len ? 1 : 0);
	if (rc == 0)
		rc = dimg_buf_append(b, key, strlen(key));
	if (rc == 0)
		rc = dimg_buf_append(b, esc, strlen(esc));
	curl_free(esc);
	return rc;
}

/* realm?service=S&scope=A&scope=B: one scope parameter per scope. */
static char *token_url(CURL *c, const struct reg_auth *a, const char *scope, const char *extra)
{
	struct dimg_buf q = {0};
	const char *lists[2] = {scope, extra};
	char *url = NULL;
	int rc = a->service ? append_param(&q, c, "service=", a->service, strlen(a->service)) : 0;

	for (int l = 0; l < 2; l++)
		for (const char *p = lists[l]; rc == 0 && p && *p;) {
			size_t n = strcspn(p, " ");
			if (n)
				rc = append_param(&q, c, "scope=", p, n);
			p += n + (p[n] ? 1 : 0);
		}
	if (rc == 0 && dimg_buf_append(&q, "", 1) == 0 &&
	    asprintf(&url, "%s%s%s", a->realm, strchr(a->realm, '?') ? "&" : "?", (char *)q.data) <
	        0)
		url = NULL;
	dimg_buf_free(&q);
	return url;
}

static int token_fetch(struct reg *r, struct reg_endpoint *e, const char *scope, const char *extra,
                       struct dimg_err *err)
{
	struct reg_req q = {
	    .method = "GET", .token_req = 1, .body_max = TOKEN_DOC_MAX, .follow = 1};
	struct reg_resp s = {0};
	char *token = NULL, *url = token_url(r->curl, &e->auth, scope, extra);
	int64_t ttl;
	int rc;

	if (!url)
		return -ENOMEM;
	q.url = url;
	q.what = e->name;
	rc = reg_http(r, e, &q, &s, err);
	if (rc == 0 && (s.status == 401 || s.status == 403))
		e->auth.refused = 1;
	if (rc == 0 && (s.status == 401 || s.status == 403))
		rc = dimg_err_set(err, -EACCES, e->name,
		                  "unauthorized (the token server refused %s)",
		                  e->auth.user ? "the credentials" : "anonymous access");
	else if (rc == 0 && s.status != 200)
		rc = reg_status_err(e, &q, &s, err);
	else if (rc == 0 && (rc = reg_token_parse(s.body.data, s.body.len, &token, &ttl)) < 0)
		rc =
		    dimg_err_set(err, rc, e->name, "the token server's answer has no usable token");
	else if (rc == 0)
		rc = token_keep(&e->auth, scope, token, ttl);
	if (s.body.data)
		explicit_bzero(s.body.data, s.body.cap);
	reg_resp_clear(&s);
	free(url);
	return rc;
}

int reg_auth_prepare(struct reg *r, struct reg_endpoint *e, const char *scope, char **bearer,
                     int *basic, struct dimg_err *err)
{
	struct reg_auth *a = &e->auth;
	struct reg_token *t;
	int rc;

	*bearer = NULL;
	*basic = 0;
	if (a->scheme == REG_AUTH_BASIC) {
		*basic = a->user != NULL;
		return 0;
	}
	if (a->scheme != REG_AUTH_BEARER || !scope)
		return 0;
	if (a->refused) /* the same credentials would be refused again */
		return dimg_err_set(err, -EACCES, e->name, "unauthorized (refused before)");
	t = token_find(a, scope);
	if (!t) {
		rc = token_fetch(r, e, scope, NULL, err);
		if (rc < 0)
			return rc;
		t = token_find(a, scope);
	}
	if (t && !(*bearer = strdup(t->token)))
		return -ENOMEM;
	return 0;
}

/* The repository of the first "repository:NAME:actions" scope. */
static char *scope_repo(const char *scope)
{
	const char *p = scope && !strncmp(scope, "repository:", 11) ? scope + 11 : NULL;
	size_t n = p ? strcspn(p, ": ") : 0;

	return n ? strndup(p, n) : NULL;
}

static int creds_once(struct reg *r, struct reg_endpoint *e, const char *scope,
                      struct dimg_err *err)
{
	struct reg_opts o = r->opts;
	char *repo;
	int rc;

	if (e->auth.looked_up)
		return 0;
	if (e->mirror) /* --creds is the registry's */
		o.creds = NULL;
	repo = scope_repo(scope);
	rc = reg_creds_lookup(&o, e->name, repo, &e->auth.user, &e->auth.pass, err);
	free(repo);
	e->auth.looked_up = rc == 0;
	return rc;
}

/* Is every action of the comma-separated want (n bytes) in have (m)? */
static int actions_in(const char *want, size_t n, const char *have, size_t m)
{
	for (size_t i = 0; i < n;) {
		size_t k = 0, j = 0;
		int found = 0;
		while (i + k < n && want[i + k] != ',')
			k++;
		while (j < m && !found) {
			size_t l = 0;
			while (j + l < m && have[j + l] != ',')
				l++;
			found = l == k && strncmp(want + i, have + j, k) == 0;
			j += l + 1;
		}
		if (!found)
			return 0;
		i += k + 1;
	}
	return 1;
}

/* Does the space-separated list grant the scope s (n bytes), that is
 * TYPE:NAME with all of its actions, in whatever order? */
static int has_scope(const char *list, const char *s, size_t n)
{
	const char *sa = s + n;

	while (sa > s && sa[-1] != ':')
		sa--;
	for (const char *p = list; p && *p;) {
		size_t k = strcspn(p, " ");
		const char *pa = p + k;
		while (pa > p && pa[-1] != ':')
			pa--;
		if (sa > s && pa > p && pa - p == sa - s && strncmp(p, s, (size_t)(sa - s)) == 0 &&
		    actions_in(sa, (size_t)(s + n - sa), pa, (size_t)(p + k - pa)))
			return 1;
		p += k + (p[k] ? 1 : 0);
	}
	return 0;
}

char *reg_scopes_missing(const char *ours, const char *theirs)
{
	struct dimg_buf b = {0};
	int rc = 0;

	for (const char *p = theirs; rc == 0 && *p;) {
		size_t k = strcspn(p, " ");
		if (k && !has_scope(ours, p, k)) {
			rc = dimg_buf_append(&b, " ", b.len ? 1 : 0);
			if (rc == 0)
				rc = dimg_buf_append(&b, p, k);
		}
		p += k + (p[k] ? 1 : 0);
	}
	if (rc == 0)
		rc = dimg_buf_append(&b, "", 1);
	if (rc < 0) {
		dimg_buf_free(&b);
		return NULL;
	}
	return (char *)b.data;
}

static int challenge_bearer(struct reg *r, struct reg_endpoint *e, struct reg_challenge *c,
                            const char *scope, struct dimg_err *err)
{
	struct reg_auth *a = &e->auth;
	struct reg_token *t;
	char *extra;
	int rc;

	free(a->realm);
	free(a->service);
	a->realm = c->realm;
	a->service = c->service;
	c->realm = c->service = NULL;
	a->scheme = REG_AUTH_BEARER;
	if (scope && (t = token_find(a, scope)))
		token_drop(t); /* it was refused */
	/* the registry's own idea of the scope joins ours */
	extra = c->scope ? reg_scopes_missing(scope, c->scope) : NULL;
	rc = c->scope && !extra ? -ENOMEM : token_fetch(r, e, scope ? scope : "", extra, err);
	free(extra);
	return rc;
}

int reg_auth_challenge(struct reg *r, struct reg_endpoint *e, const char *www_auth,
                       const char *scope, struct dimg_err *err)
{
	struct reg_challenge c;
	int rc;

	if (!www_auth || reg_challenge_parse(&c, www_auth) < 0)
		return dimg_err_set(err, -EACCES, e->name,
		                    "unauthorized (no usable WWW-Authenticate challenge)");
	rc = creds_once(r, e, scope, err);
	if (rc == 0 && strcmp(c.scheme, "basic") == 0) {
		if (!e->auth.user || e->auth.scheme == REG_AUTH_BASIC)
			rc = dimg_err_set(err, -EACCES, e->name, "unauthorized%s",
			                  e->auth.user ? "" : " (no credentials for it)");
		e->auth.scheme = REG_AUTH_BASIC;
	} else if (rc == 0) {
		rc = challenge_bearer(r, e, &c, scope, err);
	}
	reg_challenge_clear(&c);
	return rc;
}

void reg_auth_clear(struct reg_auth *a)
{
	for (size_t i = 0; i < REG_TOKENS_MAX; i++)
		token_drop(&a->tokens[i]);
	if (a->pass)
		explicit_bzero(a->pass, strlen(a->pass));
	free(a->user);
	free(a->pass);
	free(a->realm);
	free(a->service);
	memset(a, 0, sizeof(*a));
}
