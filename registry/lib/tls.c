/* TLS for one endpoint, by the certs.d conventions docker and skopeo share:
 * ROOT/HOST[:PORT]/ holds *.crt (CAs added to the system's), and *.cert
 * with a *.key of the same name (a client certificate). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry-internal.h"

#define DEFAULT_CERTS_D "/etc/containers/certs.d:/etc/docker/certs.d"

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && strcmp(s + n - m, suffix) == 0;
}

static int append_file(struct dimg_buf *b, const char *path, struct dimg_err *err)
{
	char *text;
	size_t len;
	int rc = reg_read_file(path, REG_FILE_MAX, &text, &len);

	if (rc < 0)
		return dimg_err_set(err, rc, path, "reading a CA certificate");
	rc = dimg_buf_append(b, text, len);
	if (rc == 0)
		rc = dimg_buf_append(b, "\n", 1);
	free(text);
	return rc;
}

/* A client certificate NAME.cert needs NAME.key next to it. */
static int client_pair(struct reg_tls *t, const char *dir, const char *name, struct dimg_err *err)
{
	char *cert = NULL, *key = NULL;
	size_t base = strlen(name) - strlen(".cert");

	if (asprintf(&cert, "%s/%s", dir, name) < 0)
		return -ENOMEM;
	if (asprintf(&key, "%s/%.*s.key", dir, (int)base, name) < 0) {
		free(cert);
		return -ENOMEM;
	}
	if (access(key, R_OK) != 0) {
		int rc = dimg_err_set(err, -ENOENT, cert, "client certificate without %.*s.key",
		                      (int)base, name);
		free(cert);
		free(key);
		return rc;
	}
	if (t->cert) { /* the first pair (by name) is used */
		free(cert);
		free(key);
		return 0;
	}
	t->cert = cert;
	t->key = key;
	return 0;
}

static int scan_dir(struct reg_tls *t, struct dimg_buf *ca, const char *dir, struct dimg_err *err)
{
	struct dirent **list = NULL;
	int n = scandir(dir, &list, NULL, alphasort), rc = 0;

	if (n < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0
		                                           : dimg_err_set(err, -errno, dir, NULL);
	for (int i = 0; i < n; i++) {
		const char *name = list[i]->d_name;
		char path[4096];
		if (rc == 0 && ends_with(name, ".crt")) {
			snprintf(path, sizeof(path), "%s/%s", dir, name);
			rc = append_file(ca, path, err);
		} else if (rc == 0 && ends_with(name, ".cert")) {
			rc = client_pair(t, dir, name, err);
		}
		free(list[i]);
	}
	free(list);
	return rc;
}

/* curl's own CA bundle path (what it verifies against by default). */
static char *system_ca_path(void)
{
	CURL *c = curl_easy_init();
	char *p = NULL, *out = NULL;

	if (c && curl_easy_getinfo(c, CURLINFO_CAINFO, &p) == CURLE_OK && p)
		out = strdup(p);
	if (c)
		curl_easy_cleanup(c);
	return out;
}

/* The extra CAs join the system's: curl takes one bundle. */
static int with_system_roots(struct reg_tls *t, struct dimg_buf *extra)
{
	struct dimg_buf all = {0};
	char *sys = system_ca_path(), *text = NULL;
	size_t len = 0;
	int rc = 0;

	if (sys && reg_read_file(sys, 16u << 20, &text, &len) == 0)
		rc = dimg_buf_append(&all, text, len);
	free(sys);
	free(text);
	if (rc == 0)
		rc = dimg_buf_append(&all, extra->data, extra->len);
	if (rc < 0) {
		dimg_buf_free(&all);
		return rc;
	}
	t->ca_pem = (char *)all.data;
	t->ca_len = all.len;
	return 0;
}

static int scan_roots(struct reg_tls *t, struct dimg_buf *ca, const struct reg_opts *o,
                      const char *name, struct dimg_err *err)
{
	const char *roots = o->certs_d ? o->certs_d : getenv("DI3FS_CERTS_D");
	int rc = 0;

	if (!roots)
		roots = DEFAULT_CERTS_D;
	for (const char *p = roots; rc == 0 && *p;) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);
		char dir[4096];
		if (n > 0 &&
		    (size_t)snprintf(dir, sizeof(dir), "%.*s/%s", (int)n, p, name) < sizeof(dir))
			rc = scan_dir(t, ca, dir, err);
		p += n + (colon ? 1 : 0);
	}
	return rc;
}

int reg_tls_load(struct reg_tls *t, const struct reg_opts *o, const char *name, const char *dir,
                 char *const *ca, size_t nca, struct dimg_err *err)
{
	struct dimg_buf extra = {0};
	int rc = dir ? scan_dir(t, &extra, dir, err) : scan_roots(t, &extra, o, name, err);

	t->insecure = o->tls_insecure;
	for (size_t i = 0; rc == 0 && i < nca; i++)
		rc = append_file(&extra, ca[i], err);
	if (rc == 0 && extra.len > 0)
		rc = with_system_roots(t, &extra);
	dimg_buf_free(&extra);
	if (rc < 0)
		reg_tls_clear(t);
	return rc;
}

void reg_tls_clear(struct reg_tls *t)
{
	free(t->ca_pem);
	free(t->cert);
	free(t->key);
	memset(t, 0, sizeof(*t));
}

void reg_curl_tls(CURL *c, const struct reg_tls *t)
{
	if (t->ca_pem) {
		struct curl_blob b = {
		    .data = t->ca_pem, .len = t->ca_len, .flags = CURL_BLOB_NOCOPY};
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &b);
	}
	if (t->cert) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, t->cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, t->key);
	}
	if (t->insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
}
