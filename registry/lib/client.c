/* The client: one curl handle and the endpoints of one registry — the
 * mirrors containerd's hosts.toml names for it, then the registry itself
 * (or the hosts.toml `server` standing in for it). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "registry-internal.h"

#ifndef DI3FS_VERSION
#define DI3FS_VERSION "0"
#endif

int64_t reg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int reg_err_copy(struct dimg_err *err, int rc, const struct dimg_err *from)
{
	return dimg_err_set(err, rc, from->what[0] ? from->what : NULL, from->why[0] ? "%s" : NULL,
	                    from->why);
}

int reg_read_file(const char *path, size_t max, char **out, size_t *len)
{
	struct dimg_buf b = {0};
	char chunk[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	ssize_t n;

	*out = NULL;
	*len = 0;
	if (fd < 0)
		return -errno;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -errno;
		else if ((size_t)n > max - b.len)
			rc = -EFBIG;
		else
			rc = dimg_buf_append(&b, chunk, (size_t)n);
		if (rc < 0)
			break;
	}
	close(fd);
	if (rc == 0)
		rc = dimg_buf_append(&b, "", 1);
	if (rc < 0) {
		dimg_buf_free(&b);
		return rc;
	}
	*out = (char *)b.data;
	*len = b.len - 1;
	return 0;
}

void reg_blob_what(char *out, size_t n, const struct reg *r, const char *repo,
                   const uint8_t digest[32])
{
	char d[OCI_DIGEST_LEN];

	oci_digest_str(d, digest);
	snprintf(out, n, "%s/%s@%s", r->host, repo, d);
}

struct reg_endpoint *reg_origin(struct reg *r)
{
	return &r->ep[r->nep - 1];
}

void reg_get_stats(const struct reg *r, struct reg_stats *out)
{
	*out = r->stats;
}

static int is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int reg_check_repo(const char *repo, struct dimg_err *err)
{
	size_t n = repo ? strlen(repo) : 0;
	int ok = n > 0 && n <= 255 && is_alnum(repo[0]) && is_alnum(repo[n - 1]);

	for (size_t i = 0; ok && i < n; i++) {
		char c = repo[i];
		/* components start and end with a letter or digit */
		if (c == '/')
			ok = is_alnum(repo[i - 1]) && is_alnum(repo[i + 1]);
		else
			ok = is_alnum(c) || c == '.' || c == '_' || c == '-';
	}
	return ok ? 0
	          : dimg_err_set(err, -EINVAL, repo ? repo : "(null)",
	                         "not a repository name (lower-case letters, digits, . _ - /)");
}

int reg_check_ref(const char *ref, struct dimg_err *err)
{
	size_t n = ref ? strlen(ref) : 0;
	int ok = n > 0 && n <= 128 && ref[0] != '.' && ref[0] != '-';

	if (ref && oci_digest_valid(ref))
		return 0;
	for (size_t i = 0; ok && i < n; i++) {
		char c = ref[i];
		ok = is_alnum(c) || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' || c == '-';
	}
	return ok ? 0
	          : dimg_err_set(err, -EINVAL, ref ? ref : "(null)",
	                         "not a tag or a sha256 digest");
}

static int is_loopback(const char *name)
{
	char h[256];
	const char *end = name[0] == '[' ? strchr(name, ']') : strrchr(name, ':');
	size_t n = end ? (size_t)(end - name) : strlen(name);

	if (name[0] == '[') {
		name++;
		n = n > 0 ? n - 1 : 0;
	}
	if (n >= sizeof(h))
		return 0;
	memcpy(h, name, n);
	h[n] = '\0';
	return strcmp(h, "localhost") == 0 || strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0;
}

static int valid_host(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > 255)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(is_alnum(h[i]) || (h[i] >= 'A' && h[i] <= 'Z') || strchr(".-:[]", h[i])))
			return 0;
	return 1;
}

static char *url_get(CURLU *u, CURLUPart part)
{
	char *v = NULL, *out;

	if (curl_url_get(u, part, &v, 0) != CURLUE_OK)
		return NULL;
	out = strdup(v);
	curl_free(v);
	return out;
}

/* An endpoint from a hosts.toml URL: the scheme is given, the path is the
 * API's prefix (with "/v2" added unless override_path). */
static int endpoint_from_url(struct reg_endpoint *e, const struct reg_host_entry *he)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	int rc = -EINVAL;

	if (u && curl_url_set(u, CURLUPART_URL, he->url, 0) == CURLUE_OK) {
		scheme = url_get(u, CURLUPART_SCHEME);
		host = url_get(u, CURLUPART_HOST);
		port = url_get(u, CURLUPART_PORT);
		path = url_get(u, CURLUPART_PATH);
	}
	if (scheme && host && path && (!strcmp(scheme, "http") || !strcmp(scheme, "https"))) {
		size_t pl = strlen(path);
		while (pl > 0 && path[pl - 1] == '/')
			path[--pl] = '\0';
		rc = -ENOMEM;
		if (asprintf(&e->name, "%s%s%s", host, port ? ":" : "", port ? port : "") >= 0 &&
		    asprintf(&e->origin, "%s://%s", scheme, e->name) >= 0 &&
		    asprintf(&e->prefix, "%s%s", path, he->override_path ? "" : "/v2") >= 0)
			rc = 0;
	}
	free(scheme);
	free(host);
	free(port);
	free(path);
	curl_url_cleanup(u);
	return rc;
}

static int endpoint_from_host(struct reg *r, struct reg_endpoint *e)
{
	int plain = r->opts.http == REG_HTTP_ONLY;

	e->http_fallback = r->opts.http == REG_HTTP_FALLBACK ||
	                   (r->opts.http == REG_HTTPS && is_loopback(r->host));
	e->name = strdup(r->host);
	e->prefix = strdup("/v2");
	if (asprintf(&e->origin, "%s://%s", plain ? "http" : "https", r->host) < 0)
		e->origin = NULL;
	return e->name && e->prefix && e->origin ? 0 : -ENOMEM;
}

static int endpoint_init(struct reg *r, struct reg_endpoint *e, const struct reg_host_entry *he,
                         int registry, struct dimg_err *err)
{
	int rc = he ? endpoint_from_url(e, he) : endpoint_from_host(r, e);

	if (rc < 0)
		return dimg_err_set(err, rc, he ? he->url : r->host,
		                    rc == -EINVAL ? "not an http(s) URL" : NULL);
	e->caps = he ? he->caps : REG_CAP_ALL;
	e->mirror = !registry;
	rc = reg_tls_load(&e->tls, &r->opts, e->name, registry ? r->opts.cert_dir : NULL,
	                  he ? he->ca : NULL, he ? he->nca : 0, err);
	if (rc == 0 && he && he->skip_verify == 1)
		e->tls.insecure = 1;
	return rc;
}

/* containerd's hosts.toml for the registry: HOST[:PORT]/, else _default/. */
static int hosts_load(struct reg *r, struct reg_hosts *hs, struct dimg_err *err)
{
	const char *root = r->opts.hosts_dir ? r->opts.hosts_dir : getenv("DI3FS_HOSTS_D");
	char path[4096], why[160];
	char *text = NULL;
	size_t len;
	int rc = -ENOENT;

	if (!root)
		root = "/etc/containerd/certs.d";
	if (!root[0])
		return 0;
	for (int i = 0; i < 2 && rc == -ENOENT; i++) {
		snprintf(path, sizeof(path), "%s/%s/hosts.toml", root, i ? "_default" : r->host);
		rc = reg_read_file(path, REG_FILE_MAX, &text, &len);
	}
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return dimg_err_set(err, rc, path, NULL);
	rc = reg_hosts_parse(hs, text, len, path, why, sizeof(why));
	free(text);
	return rc < 0 ? dimg_err_set(err, rc, path, "%s", why) : 0;
}

static int endpoints_init(struct reg *r, struct dimg_err *err)
{
	struct reg_hosts hs = {0};
	int rc = hosts_load(r, &hs, err);

	if (rc == 0) {
		r->ep = calloc(hs.n + 1, sizeof(*r->ep));
		rc = r->ep ? 0 : -ENOMEM;
	}
	for (size_t i = 0; rc == 0 && i < hs.n; i++) {
		rc = endpoint_init(r, &r->ep[i], &hs.h[i], 0, err);
		r->nep++;
	}
	if (rc == 0) {
		rc = endpoint_init(r, &r->ep[hs.n], hs.server.url ? &hs.server : NULL, 1, err);
		r->nep++;
	}
	reg_hosts_clear(&hs);
	return rc;
}

static void opts_defaults(struct reg_opts *o)
{
	if (!o->retries)
		o->retries = 4;
	if (!o->retry_ms)
		o->retry_ms = 250;
	if (!o->timeout_s)
		o->timeout_s = 60;
	if (!o->chunk_size)
		o->chunk_size = 8u << 20;
}

int reg_open(struct reg **out, const char *host, const struct reg_opts *o, struct dimg_err *err)
{
	struct reg *r;
	int rc;

	*out = NULL;
	if (!host || !valid_host(host))
		return dimg_err_set(err, -EINVAL, host ? host : "(null)", "not a registry host");
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (o)
		r->opts = *o;
	opts_defaults(&r->opts);
	snprintf(r->ua, sizeof(r->ua), "di3fs/%s", DI3FS_VERSION);
	r->host = strdup(host);
	r->curl = curl_easy_init();
	rc = r->host && r->curl ? endpoints_init(r, err) : -ENOMEM;
	if (rc < 0) {
		reg_close(r);
		return dimg_err_set(err, rc, host, NULL);
	}
	*out = r;
	return 0;
}

void reg_close(struct reg *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nep; i++) {
		struct reg_endpoint *e = &r->ep[i];
		free(e->name);
		free(e->origin);
		free(e->prefix);
		reg_tls_clear(&e->tls);
		reg_auth_clear(&e->auth);
	}
	free(r->ep);
	if (r->curl)
		curl_easy_cleanup(r->curl);
	free(r->host);
	free(r);
}
