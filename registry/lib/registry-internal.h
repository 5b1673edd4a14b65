/* Private to registry/lib: the client and its endpoints (mirrors, then the
 * registry), one HTTP exchange, and the auth, credential, TLS and hosts.toml
 * pieces it is made of. */
#ifndef DI3FS_REGISTRY_INTERNAL_H
#define DI3FS_REGISTRY_INTERNAL_H

#include <curl/curl.h>
#include <stdint.h>

#include "di3fs/registry.h"

#define REG_CAP_PULL    1u
#define REG_CAP_RESOLVE 2u
#define REG_CAP_PUSH    4u
#define REG_CAP_ALL     (REG_CAP_PULL | REG_CAP_RESOLVE | REG_CAP_PUSH)

#define REG_ERRBODY_MAX   (64u << 10) /* error bodies and token answers kept */
#define REG_HEADER_MAX    8192        /* a header value we keep */
#define REG_REDIRECTS_MAX 5
#define REG_TOKENS_MAX    8
#define REG_CA_MAX        4
#define REG_FILE_MAX      (1u << 20) /* auth files, certificates, hosts.toml */

/* ---- configuration readers (no network) ---- */

/* Credentials for host (and repo, for repository-scoped auth.json keys):
 * *user and *pass malloc'd, both NULL when none are configured. */
int reg_creds_lookup(const struct reg_opts *o, const char *host, const char *repo, char **user,
                     char **pass, struct dimg_err *err);
/* Standard base64 (padding optional); -EINVAL. *out is NUL-terminated. */
int reg_b64_decode(char **out, size_t *len, const char *s);

struct reg_tls {
	char *ca_pem; /* the system roots and the extra CAs, NULL: system roots only */
	size_t ca_len;
	char *cert, *key; /* client certificate and key files */
	int insecure;
};
/* The certs.d folder(s) of name ("HOST[:PORT]"), or dir when given, plus
 * the CA files in ca[]. */
int reg_tls_load(struct reg_tls *t, const struct reg_opts *o, const char *name, const char *dir,
                 char *const *ca, size_t nca, struct dimg_err *err);
void reg_tls_clear(struct reg_tls *t);

struct reg_host_entry {
	char *url;
	unsigned caps;
	int skip_verify; /* -1 unset */
	int override_path;
	char *ca[REG_CA_MAX];
	size_t nca;
};
struct reg_hosts {
	struct reg_host_entry server; /* url NULL when not set */
	struct reg_host_entry *h;
	size_t n;
};
/* Parses the subset of hosts.toml containerd's mirrors need: server,
 * [host."URL"] tables with capabilities, skip_verify, ca, override_path.
 * -EINVAL with why "line N: ..." for anything else. A relative ca is taken
 * from the folder of path. */
int reg_hosts_parse(struct reg_hosts *out, const char *text, size_t len, const char *path,
                    char *why, size_t whylen);
void reg_hosts_clear(struct reg_hosts *h);

/* ---- auth ---- */
struct reg_challenge {
	char scheme[16]; /* "bearer" or "basic", lower-case */
	char *realm, *service, *scope;
};
/* Parses a WWW-Authenticate value (its first challenge); -EBADMSG. */
int reg_challenge_parse(struct reg_challenge *c, const char *h);
void reg_challenge_clear(struct reg_challenge *c);
/* A token answer: "token" or "access_token", expires_in (60 s if absent). */
int reg_token_parse(const void *buf, size_t len, char **token, int64_t *expires_in);

/* The scopes of theirs (space-separated) that ours do not grant, actions
 * in any order; "" when none, NULL on ENOMEM. */
char *reg_scopes_missing(const char *ours, const char *theirs);

struct reg_token {
	char *scope; /* the scopes it was asked for, space-separated */
	char *token;
	int64_t expires_ms; /* monotonic */
};
enum reg_auth_scheme { REG_AUTH_UNKNOWN = 0, REG_AUTH_BASIC, REG_AUTH_BEARER };
struct reg_auth {
	int looked_up; /* credentials read */
	char *user, *pass;
	enum reg_auth_scheme scheme;
	int refused; /* the token server turned the credentials down */
	char *realm, *service;
	struct reg_token tokens[REG_TOKENS_MAX];
};

/* ---- the client ---- */
struct reg_endpoint {
	char *name;   /* HOST[:PORT]: credentials and certs.d are by it */
	char *origin; /* "https://HOST[:PORT]"; may turn to http once */
	char *prefix; /* the path before "/<repo>/...", "/v2" */
	unsigned caps;
	int mirror;
	int scheme_known;  /* a response came back over origin's scheme */
	int http_fallback; /* may turn to http when the TLS handshake fails */
	int down;          /* a mirror that could not be reached: not tried again */
	struct reg_tls tls;
	struct reg_auth auth;
};

struct reg {
	CURL *curl;
	char *host;
	struct reg_opts opts;
	struct reg_endpoint *ep; /* pulls try them in order; the last is the registry */
	size_t nep;
	struct reg_stats stats;
	char ua[48];
	char curl_err[CURL_ERROR_SIZE];
};

/* A file of at most max bytes, NUL-terminated; -ENOENT, -EFBIG. */
int reg_read_file(const char *path, size_t max, char **out, size_t *len);
/* Repository names and tags-or-digests as the distribution spec has them. */
int reg_check_repo(const char *repo, struct dimg_err *err);
int reg_check_ref(const char *ref, struct dimg_err *err);

/* The registry itself (pushes, mounts). */
struct reg_endpoint *reg_origin(struct reg *r);
/* "ORIGIN PREFIX/repo/" + the formatted rest; NULL on ENOMEM. */
char *reg_url(const struct reg_endpoint *e, const char *repo, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "HOST/REPO@sha256:..." into out (for error messages). */
void reg_blob_what(char *out, size_t n, const struct reg *r, const char *repo,
                   const uint8_t digest[32]);
int64_t reg_now_ms(void);
/* Sets err (if not yet set) from another context; returns rc. */
int reg_err_copy(struct dimg_err *err, int rc, const struct dimg_err *from);
/* Sleeps before retry number attempt (0, 1, ...): retry_ms doubled each
 * time, or what Retry-After asks, at most 10 s. */
void reg_backoff(const struct reg *r, unsigned attempt, const char *retry_after);

/* ---- one HTTP exchange ---- */
struct reg_req {
	const char *method; /* GET HEAD PUT PATCH POST DELETE */
	const char *url;    /* absolute */
	const char *accept, *content_type, *range, *content_range;
	const void *body; /* request body (PUT, PATCH, POST), body_len bytes */
	size_t body_len;
	const char *scope;  /* token scopes, space-separated */
	const char *what;   /* names the object in errors; NULL: the registry */
	size_t body_max;    /* response body kept; more is -EFBIG */
	dimg_write_fn sink; /* 2xx bodies go here instead */
	void *sink_ctx;
	int follow;    /* follow redirects (GET, HEAD) */
	int once;      /* no retries: the caller resumes */
	int token_req; /* to a token realm: the endpoint's basic credentials, no challenge */
	int streamed;  /* a blob's bytes: no whole-exchange deadline, the stall limit only */
};

struct reg_resp {
	long status;
	struct dimg_buf body;
	char *location, *ctype, *digest, *range, *crange, *www_auth, *link, *retry_after;
	int64_t clen;    /* Content-Length, -1 when not said */
	char *url;       /* where the answer came from, after redirects */
	int same_origin; /* ... and whether that is the endpoint */
	int sink_rc;     /* the sink's error, if it failed */
	int too_big;     /* the body passed body_max */
	uint64_t sunk;   /* bytes given to the sink */
	int in_body;     /* headers of the final answer seen */
};
void reg_resp_clear(struct reg_resp *s);

/* Sends q to endpoint e with its credentials (401 answered once with the
 * challenge's scheme), following redirects without credentials to other
 * hosts and retrying on 429, 5xx and connection errors. 0 when an answer
 * came (any status, in s) or -errno with err set. */
int reg_http(struct reg *r, struct reg_endpoint *e, const struct reg_req *q, struct reg_resp *s,
             struct dimg_err *err);
/* q to the endpoint's <prefix>/<repo>/<path>, with the token scope
 * "repository:<repo>:<actions>" (q->url and q->scope are set for the call). */
int reg_repo_http(struct reg *r, struct reg_endpoint *e, struct reg_req *q, const char *repo,
                  const char *actions, const char *path, struct reg_resp *s, struct dimg_err *err);
/* Turns an unexpected status into -errno with the registry's own error
 * message: 401/403 -EACCES, 404 -ENOENT, 413 -EFBIG, 416 -ERANGE, 429 -EBUSY,
 * 5xx -EIO, others -EPROTO. */
int reg_status_err(const struct reg_endpoint *e, const struct reg_req *q, const struct reg_resp *s,
                   struct dimg_err *err);
/* A URL (Location, Link) relative to base, http(s) only; NULL if not one. */
char *reg_url_resolve(const char *base, const char *ref);
/* Same scheme, host and port? */
int reg_url_same_origin(const char *a, const char *b);

/* Auth for a request to e: the Authorization header to send (NULL none)
 * and whether to send basic credentials. */
int reg_auth_prepare(struct reg *r, struct reg_endpoint *e, const char *scope, char **bearer,
                     int *basic, struct dimg_err *err);
/* After a 401: reads the challenge, the credentials, fetches a token.
 * 0: try again; -EACCES: no way in. */
int reg_auth_challenge(struct reg *r, struct reg_endpoint *e, const char *www_auth,
                       const char *scope, struct dimg_err *err);
void reg_auth_clear(struct reg_auth *a);
/* The curl options of a request to e (TLS; basic credentials when asked). */
void reg_curl_tls(CURL *c, const struct reg_tls *t);

#endif
