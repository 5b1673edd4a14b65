/* Image names in skopeo's containers-transports(5) syntax, plus
 * containerd:, and bare paths probed for what they hold. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tarindex.h"
#include "transport-internal.h"

static const struct {
	const char *prefix;
	enum xport_kind kind;
} xname_prefixes[] = {
    {"docker://", XPORT_DOCKER},
    {"containerd:", XPORT_CONTAINERD},
    {"oci:", XPORT_OCI},
    {"oci-archive:", XPORT_OCI_ARCHIVE},
    {"docker-archive:", XPORT_DOCKER_ARCHIVE},
    {"ssh://", XPORT_SSH},
};

/* skopeo's other transports: named so that they are not taken for paths. */
static const char *const xname_foreign[] = {
    "dir:", "docker-daemon:", "containers-storage:", "sif:", "ostree:", "tarball:", "atomic:"};

void xport_name_clear(struct xport_name *n)
{
	if (!n)
		return;
	free(n->where);
	free(n->ref);
	free(n->digest);
	memset(n, 0, sizeof(*n));
}

static const char *xname_prefix(enum xport_kind k)
{
	for (size_t i = 0; i < sizeof(xname_prefixes) / sizeof(xname_prefixes[0]); i++)
		if (xname_prefixes[i].kind == k)
			return xname_prefixes[i].prefix;
	return "";
}

void xport_name_str(char *buf, size_t n, const struct xport_name *x)
{
	if (x->kind == XPORT_SSH) {
		snprintf(buf, n, "ssh://%s/%s", x->where ? x->where : "", x->ref ? x->ref : "");
		return;
	}
	snprintf(buf, n, "%s%s%s%s%s%s", xname_prefix(x->kind), x->where ? x->where : "",
	         x->ref ? ":" : "", x->ref ? x->ref : "", x->digest ? "@" : "",
	         x->digest ? x->digest : "");
}

char *xport_name_ref(const struct xport_name *x)
{
	char *s = NULL;
	if (x->kind == XPORT_SSH)
		return NULL; /* the remote side's name is the agent's to read */
	if (x->kind != XPORT_CONTAINERD && x->kind != XPORT_DOCKER)
		return x->ref ? strdup(x->ref) : NULL;
	if (asprintf(&s, "%s%s%s", x->where, x->ref ? ":" : "", x->ref ? x->ref : "") < 0)
		return NULL;
	return s;
}

static int xname_dup(char **out, const char *s, size_t n)
{
	*out = strndup(s, n);
	return *out ? 0 : -ENOMEM;
}

/* A tag as docker references have them: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}. */
static int xname_tag_ok(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > 128 || t[0] == '.' || t[0] == '-')
		return 0;
	return strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* NAME[:TAG][@DIGEST] into where, ref, digest (containerd:, docker://). */
static int xname_split_ref(struct xport_name *out, const char *s, struct dimg_err *err)
{
	const char *at = strchr(s, '@'), *end = at ? at : s + strlen(s);
	const char *slash = memrchr(s, '/', (size_t)(end - s));
	const char *colon = memrchr(slash ? slash : s, ':', (size_t)(end - (slash ? slash : s)));
	const char *wend = colon ? colon : end;
	int r;
	if (wend == s)
		return dimg_err_set(err, -EINVAL, s, "no image name");
	if (at && !oci_digest_valid(at + 1))
		return dimg_err_set(err, -EINVAL, s, "'%s' is not a sha256 digest", at + 1);
	if ((r = xname_dup(&out->where, s, (size_t)(wend - s))) < 0 ||
	    (colon && (r = xname_dup(&out->ref, colon + 1, (size_t)(end - colon - 1))) < 0) ||
	    (at && (r = xname_dup(&out->digest, at + 1, strlen(at + 1))) < 0))
		return r;
	if (out->ref && !xname_tag_ok(out->ref))
		return dimg_err_set(err, -EINVAL, s, "'%s' is not a valid tag", out->ref);
	if (strpbrk(out->where, " \t\n") || strstr(out->where, "//"))
		return dimg_err_set(err, -EINVAL, s, "not an image name");
	return 0;
}

/* docker://: Docker's normal form (docker.io/library/..., :latest). */
static int xname_docker(struct xport_name *out, const char *s, struct dimg_err *err)
{
	char *full = NULL;
	int r = xname_split_ref(out, s, err);
	if (r < 0)
		return r;
	if (!out->ref && !out->digest && !(out->ref = strdup("latest")))
		return -ENOMEM;
	if ((r = oci_ref_normal(&full, out->where)) < 0)
		return r;
	char *colon = strrchr(full, ':'), *slash = strrchr(full, '/');
	if (colon && (!slash || colon > slash))
		*colon = '\0'; /* the ":latest" oci_ref_normal added */
	free(out->where);
	out->where = full;
	if (!strchr(full, '/'))
		return dimg_err_set(err, -EINVAL, s, "no repository in the name");
	return 0;
}

/* PATH[:REF]: the path ends at the first colon, as skopeo has it. */
static int xname_path(struct xport_name *out, const char *s, struct dimg_err *err)
{
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);
	if (n == 0)
		return dimg_err_set(err, -EINVAL, s, "no path");
	int r = xname_dup(&out->where, s, n);
	if (r == 0 && colon && colon[1])
		r = xname_dup(&out->ref, colon + 1, strlen(colon + 1));
	return r;
}

/* [USER@]HOST[:PORT]: user and host of letters, digits, ".-_" (an IPv6
 * address in brackets), never starting with '-' (ssh would take it for
 * an option); the port 1 to 65535. */
static int xname_ssh_host(const char *h)
{
	static const char ok[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_";
	const char *at = strchr(h, '@'), *host = at ? at + 1 : h, *port;
	if (at && (at == h || h[0] == '-' || strspn(h, ok) != (size_t)(at - h)))
		return 0;
	if (host[0] == '[') {
		const char *end = strchr(host, ']');
		if (!end || end == host + 1 ||
		    strspn(host + 1, "0123456789abcdefABCDEF:.") != (size_t)(end - host - 1))
			return 0;
		port = end[1] == ':' ? end + 2 : end[1] ? "" : NULL;
	} else {
		size_t hn = strspn(host, ok);
		if (hn == 0 || host[0] == '-' || (host[hn] && host[hn] != ':'))
			return 0;
		port = host[hn] == ':' ? host + hn + 1 : NULL;
	}
	if (!port)
		return 1;
	size_t pn = strspn(port, "0123456789");
	unsigned long p = strtoul(port, NULL, 10);
	return pn > 0 && pn <= 5 && !port[pn] && p > 0 && p < 65536;
}

/* ssh://[USER@]HOST[:PORT]/NAME: NAME is the remote side's, any
 * transport but ssh:// (an agent does not chain). */
static int xname_ssh(struct xport_name *out, const char *s, struct dimg_err *err)
{
	const char *slash = strchr(s, '/');
	int r;
	if (!slash || !slash[1])
		return dimg_err_set(err, -EINVAL, NULL,
		                    "ssh://[USER@]HOST[:PORT]/NAME needs the image NAME on the "
		                    "remote side after the host");
	if ((r = xname_dup(&out->where, s, (size_t)(slash - s))) < 0 ||
	    (r = xname_dup(&out->ref, slash + 1, strlen(slash + 1))) < 0)
		return r;
	if (!xname_ssh_host(out->where))
		return dimg_err_set(err, -EINVAL, NULL, "'%s' is not [USER@]HOST[:PORT]",
		                    out->where);
	if (strncmp(out->ref, "ssh://", 6) == 0 || strpbrk(out->ref, "\n\r"))
		return dimg_err_set(err, -EINVAL, NULL, "'%s' is not a name on the remote side",
		                    out->ref);
	return 0;
}

/* A file: a tar with index.json is an OCI layout, else with manifest.json
 * a docker save. */
static int xname_probe_file(struct xport_name *out, const char *path, struct dimg_err *err)
{
	struct xtar t = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dimg_err_set(err, -errno, path, NULL);
	int r = xtar_index_fd(&t, fd, err);
	close(fd);
	if (r < 0)
		return dimg_err_set(err, r, path, "not an uncompressed tar");
	if (xtar_find(&t, "index.json"))
		out->kind = XPORT_OCI_ARCHIVE;
	else if (xtar_find(&t, "manifest.json"))
		out->kind = XPORT_DOCKER_ARCHIVE;
	else
		r = dimg_err_set(err, -EINVAL, path, "a tar without index.json or manifest.json");
	xtar_free(&t);
	return r;
}

static int xname_bare(struct xport_name *out, const char *s, struct dimg_err *err)
{
	struct stat st;
	size_t n = strlen(s);
	if ((out->where = strdup(s)) == NULL)
		return -ENOMEM;
	if (stat(s, &st) < 0) {
		if (errno != ENOENT)
			return dimg_err_set(err, -errno, s, NULL);
		out->kind = n > 4 && strcmp(s + n - 4, ".tar") == 0 ? XPORT_OCI_ARCHIVE : XPORT_OCI;
		return 0;
	}
	if (S_ISDIR(st.st_mode)) {
		out->kind = XPORT_OCI;
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return dimg_err_set(err, -EINVAL, s, "neither a directory nor a file");
	return xname_probe_file(out, s, err);
}

int xport_name_parse(struct xport_name *out, const char *s, struct dimg_err *err)
{
	int r = -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!s || !s[0])
		return dimg_err_set(err, -EINVAL, NULL, "an empty image name");
	for (size_t i = 0; i < sizeof(xname_foreign) / sizeof(xname_foreign[0]); i++)
		if (strncmp(s, xname_foreign[i], strlen(xname_foreign[i])) == 0)
			return dimg_err_set(err, -ENOTSUP, s,
			                    "skopeo's %.*s transport is not one di3fs reads",
			                    (int)strlen(xname_foreign[i]) - 1, xname_foreign[i]);
	for (size_t i = 0; i < sizeof(xname_prefixes) / sizeof(xname_prefixes[0]); i++) {
		size_t pl = strlen(xname_prefixes[i].prefix);
		if (strncmp(s, xname_prefixes[i].prefix, pl) != 0)
			continue;
		out->kind = xname_prefixes[i].kind;
		if (out->kind == XPORT_DOCKER)
			r = xname_docker(out, s + pl, err);
		else if (out->kind == XPORT_CONTAINERD)
			r = xname_split_ref(out, s + pl, err);
		else if (out->kind == XPORT_SSH)
			r = xname_ssh(out, s + pl, err);
		else
			r = xname_path(out, s + pl, err);
		break;
	}
	if (r == -EINVAL && !out->kind)
		r = xname_bare(out, s, err);
	if (r < 0)
		xport_name_clear(out);
	return r;
}
