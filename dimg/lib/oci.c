/* Image layouts: OCI image layout (directory or tar) and `docker save`
 * (tar or unpacked), read without extracting: index.json / manifest.json,
 * nested indexes, --ref and platform selection, verified JSON blobs, and
 * each layer streamed once into the squash. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cas-internal.h"
#include "dimg/hash.h"

#define OCI_JSON_MAX    (16u << 20) /* index, manifest, config */
#define OCI_MEMBERS_MAX 1000000u
#define OCI_NAME_MAX    4096u
#define OCI_INDEX_DEPTH 4
#define OCI_LINK_HOPS   8
#define OCI_READ_BUF    (256u << 10)

#define MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG      "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG   "application/vnd.docker.container.image.v1+json"
#define MT_OCI_LAYER       "application/vnd.oci.image.layer.v1.tar"

/* ---- where the layout's files come from: a directory or a tar ---- */

struct oci_member {
	char *name; /* normalised */
	char *link; /* symlink / hardlink target (normalised), else NULL */
	int symlink;
	uint64_t size;
};

struct oci_src {
	int dirfd;       /* directory input, else -1 */
	const char *tar; /* tar input */
	struct oci_member *m;
	size_t nm;
};

/* Member names: "./" prefixes, empty and "." components dropped; ".."
 * refused, so a name can never leave the layout. */
static int oci_norm_name(char **out, const char *raw)
{
	size_t n = raw ? strlen(raw) : 0, k = 0;
	*out = NULL;
	if (n == 0 || n >= OCI_NAME_MAX || raw[0] == '/')
		return -EBADMSG;
	char *p = malloc(n + 1);
	if (!p)
		return -ENOMEM;
	for (const char *c = raw; *c;) {
		const char *slash = strchr(c, '/');
		size_t len = slash ? (size_t)(slash - c) : strlen(c);
		if (len == 2 && c[0] == '.' && c[1] == '.') {
			free(p);
			return -EBADMSG;
		}
		if (len && !(len == 1 && c[0] == '.')) {
			if (k)
				p[k++] = '/';
			memcpy(p + k, c, len);
			k += len;
		}
		c += len + (slash != NULL);
	}
	p[k] = '\0';
	if (k == 0) {
		free(p);
		return -EBADMSG;
	}
	*out = p;
	return 0;
}

static void oci_src_close(struct oci_src *s)
{
	if (s->dirfd >= 0)
		close(s->dirfd);
	for (size_t i = 0; i < s->nm; i++) {
		free(s->m[i].name);
		free(s->m[i].link);
	}
	free(s->m);
	memset(s, 0, sizeof(*s));
	s->dirfd = -1;
}

static struct archive *oci_tar_new(const char *path)
{
	struct archive *a = archive_read_new();
	if (!a)
		return NULL;
	archive_read_support_format_tar(a);
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_xz(a);
	if (archive_read_open_filename(a, path, 1u << 16) != ARCHIVE_OK) {
		archive_read_free(a);
		return NULL;
	}
	return a;
}

static int oci_member_cmp(const void *a, const void *b)
{
	return strcmp(((const struct oci_member *)a)->name, ((const struct oci_member *)b)->name);
}

/* Members are sorted once listed: lookups are binary searches. */
static const struct oci_member *oci_member_find(const struct oci_src *s, const char *name)
{
	struct oci_member key = {.name = (char *)name};
	return s->nm ? bsearch(&key, s->m, s->nm, sizeof(*s->m), oci_member_cmp) : NULL;
}

/* A symlink's target is relative to the symlink's directory. */
static int oci_link_target(char **out, const char *name, const char *target, int symlink)
{
	const char *slash = strrchr(name, '/');
	size_t dl = symlink && slash ? (size_t)(slash - name) + 1 : 0;
	size_t tl = strlen(target);
	char *joined = malloc(dl + tl + 1);
	if (!joined)
		return -ENOMEM;
	memcpy(joined, name, dl);
	memcpy(joined + dl, target, tl + 1);
	int r = oci_norm_name(out, joined);
	free(joined);
	return r;
}

static int oci_member_add(struct oci_src *s, struct archive_entry *ae, size_t *cap)
{
	struct oci_member m = {0};
	int type = archive_entry_filetype(ae);
	const char *hl = archive_entry_hardlink(ae);
	if (!hl && type != AE_IFREG && type != AE_IFLNK)
		return 0; /* directories and the like name no content */
	const char *target = hl ? hl : archive_entry_symlink(ae);
	int r = oci_norm_name(&m.name, archive_entry_pathname(ae));
	if (r == 0 && (hl || type == AE_IFLNK))
		r = target ? oci_link_target(&m.link, m.name, target, !hl) : -EBADMSG;
	if (r == 0 && s->nm >= OCI_MEMBERS_MAX)
		r = -EOVERFLOW;
	if (r == 0 && s->nm == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct oci_member *v = realloc(s->m, nc * sizeof(*v));
		r = v ? 0 : -ENOMEM;
		if (v) {
			s->m = v;
			*cap = nc;
		}
	}
	if (r < 0) {
		free(m.name);
		free(m.link);
		return r;
	}
	m.symlink = !hl && type == AE_IFLNK;
	m.size = archive_entry_size(ae) > 0 ? (uint64_t)archive_entry_size(ae) : 0;
	s->m[s->nm++] = m;
	return 0;
}

/* Lists the tar's members once (names, sizes, links); contents are read
 * later by name, each in one sequential pass. */
static int oci_src_open_tar(struct oci_src *s, const char *path, char **err)
{
	struct archive_entry *ae;
	size_t cap = 0;
	int r = 0;
	s->tar = path;
	struct archive *a = oci_tar_new(path);
	if (!a) {
		dimg_errf(err, "%s: cannot read as a tar archive", path);
		return -EBADMSG;
	}
	for (;;) {
		int ar = archive_read_next_header(a, &ae);
		if (ar == ARCHIVE_EOF)
			break;
		if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
			dimg_errf(err, "%s: %s", path, archive_error_string(a));
			r = -EBADMSG;
			break;
		}
		r = oci_member_add(s, ae, &cap);
		if (r < 0) {
			dimg_errf(err, "%s: member '%s': %s", path, archive_entry_pathname(ae),
			          strerror(-r));
			r = r == -ENOMEM ? r : -EBADMSG;
			break;
		}
	}
	archive_read_free(a);
	if (r == 0 && s->nm)
		qsort(s->m, s->nm, sizeof(*s->m), oci_member_cmp);
	for (size_t i = 1; r == 0 && i < s->nm; i++) {
		if (strcmp(s->m[i - 1].name, s->m[i].name) == 0) {
			/* Which copy would count? Refuse rather than guess. */
			dimg_errf(err, "%s: member '%s' appears twice", path, s->m[i].name);
			r = -EBADMSG;
		}
	}
	return r;
}

/* Follows member links to a regular member. */
static int oci_member_resolve(const struct oci_src *s, const char *name,
                              const struct oci_member **out)
{
	const struct oci_member *m = oci_member_find(s, name);
	for (int hops = 0; m && m->link; hops++) {
		if (hops == OCI_LINK_HOPS)
			return -ELOOP;
		m = oci_member_find(s, m->link);
	}
	*out = m;
	return m ? 0 : -ENOENT;
}

/* ---- streams over one file of the layout ---- */

struct oci_stream {
	int fd;
	struct archive *a;
	uint8_t *buf;
	uint64_t off;  /* bytes handed out */
	uint64_t size; /* the file's size */
};

static void oci_stream_close(struct oci_stream *st)
{
	if (!st)
		return;
	if (st->fd >= 0)
		close(st->fd);
	archive_read_free(st->a);
	free(st->buf);
	free(st);
}

static int oci_stream_open_dir(struct oci_stream *st, const struct oci_src *s, const char *name)
{
	struct stat sb;
	int r = dimg_openat_beneath(s->dirfd, name, O_RDONLY | O_NONBLOCK, &st->fd);
	if (r < 0)
		return r;
	if (fstat(st->fd, &sb) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode))
		return -EBADMSG;
	st->size = (uint64_t)sb.st_size;
	st->buf = malloc(OCI_READ_BUF);
	return st->buf ? 0 : -ENOMEM;
}

static int oci_stream_open_tar(struct oci_stream *st, const struct oci_src *s, const char *name)
{
	const struct oci_member *m;
	struct archive_entry *ae;
	int r = oci_member_resolve(s, name, &m);
	if (r < 0)
		return r;
	st->a = oci_tar_new(s->tar);
	if (!st->a)
		return -EIO;
	for (;;) {
		int ar = archive_read_next_header(st->a, &ae);
		if (ar == ARCHIVE_EOF)
			return -ENOENT; /* the archive changed since it was listed */
		if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN)
			return -EBADMSG;
		char *n;
		if (oci_norm_name(&n, archive_entry_pathname(ae)) < 0)
			continue;
		int hit = strcmp(n, m->name) == 0 && archive_entry_filetype(ae) == AE_IFREG &&
		          !archive_entry_hardlink(ae);
		free(n);
		if (hit && archive_entry_sparse_count(ae) > 0)
			return -ENOTSUP;
		if (hit) {
			st->size = m->size;
			return 0;
		}
	}
}

static int oci_stream_open(struct oci_stream **out, const struct oci_src *s, const char *name)
{
	struct oci_stream *st = calloc(1, sizeof(*st));
	*out = NULL;
	if (!st)
		return -ENOMEM;
	st->fd = -1;
	int r = s->dirfd >= 0 ? oci_stream_open_dir(st, s, name) : oci_stream_open_tar(st, s, name);
	if (r < 0) {
		oci_stream_close(st);
		return r;
	}
	*out = st;
	return 0;
}

/* struct dimg_layer_src.read */
static int oci_stream_read(void *ctx, const void **buf, size_t *len)
{
	struct oci_stream *st = ctx;
	*len = 0;
	if (st->a) {
		la_int64_t off;
		int ar = archive_read_data_block(st->a, buf, len, &off);
		if (ar == ARCHIVE_EOF) {
			*len = 0;
			return 0;
		}
		if (ar != ARCHIVE_OK || off != (la_int64_t)st->off)
			return -EIO;
		st->off += *len;
		return 0;
	}
	for (;;) {
		ssize_t n = read(st->fd, st->buf, OCI_READ_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		*buf = st->buf;
		*len = (size_t)n;
		st->off += (uint64_t)n;
		return 0;
	}
}

/* Reads a whole (small) file of the layout: -ENOENT if absent,
 * -EFBIG past max. */
static int oci_read_all(const struct oci_src *s, const char *name, size_t max, uint8_t **out,
                        size_t *outlen)
{
	struct oci_stream *st;
	uint8_t *buf = NULL;
	size_t len = 0;
	*out = NULL;
	int r = oci_stream_open(&st, s, name);
	if (r < 0)
		return r;
	if (st->size > max)
		r = -EFBIG;
	if (r == 0)
		buf = malloc(st->size + 1);
	if (r == 0 && !buf)
		r = -ENOMEM;
	while (r == 0) {
		const void *p;
		size_t n;
		r = oci_stream_read(st, &p, &n);
		if (r < 0 || n == 0)
			break;
		if (n > st->size - len) {
			r = -EBADMSG; /* longer than it said */
			break;
		}
		memcpy(buf + len, p, n);
		len += n;
	}
	oci_stream_close(st);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
}

/* ---- digests and JSON ---- */

/* "sha256:<64 lower-case hex>" -> 32 bytes; other algorithms -ENOTSUP. */
static int oci_parse_digest(const char *d, uint8_t out[32])
{
	if (!d)
		return -EBADMSG;
	if (strncmp(d, "sha256:", 7) != 0)
		return strchr(d, ':') ? -ENOTSUP : -EBADMSG;
	d += 7;
	if (strlen(d) != 64 || dimg_unhex32(d, out) < 0)
		return -EBADMSG;
	return 0;
}

static void oci_blob_name(char out[80], const uint8_t d[32])
{
	char hex[65];
	dimg_hex32(d, hex);
	snprintf(out, 80, "blobs/sha256/%s", hex);
}

static void oci_digest_str(char out[72], const uint8_t d[32])
{
	char hex[65];
	dimg_hex32(d, hex);
	snprintf(out, 72, "sha256:%s", hex);
}

static int oci_json_parse(struct json_object **out, const uint8_t *buf, size_t len)
{
	*out = NULL;
	if (len > OCI_JSON_MAX)
		return -EFBIG;
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	struct json_object *o = json_tokener_parse_ex(tok, (const char *)buf, (int)len);
	int ok = o && json_tokener_get_error(tok) == json_tokener_success;
	for (size_t i = ok ? json_tokener_get_parse_end(tok) : len; ok && i < len; i++)
		ok = buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t';
	json_tokener_free(tok);
	if (!ok) {
		json_object_put(o);
		return -EBADMSG;
	}
	*out = o;
	return 0;
}

/* A string member (no embedded NULs), or NULL. */
static const char *oci_jstr(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	const char *s = json_object_get_string(v);
	return strlen(s) == (size_t)json_object_get_string_len(v) ? s : NULL;
}

static struct json_object *oci_jget(struct json_object *o, const char *key, json_type type)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

static const char *oci_jannot(struct json_object *o, const char *key)
{
	return oci_jstr(oci_jget(o, "annotations", json_type_object), key);
}

/* ---- the chosen image, being built ---- */

struct oci_layer {
	char *member; /* file of the layout holding the blob */
	char *label;  /* names the layer in messages */
	struct dimg_layer_info li;
};

struct oci_ctx {
	struct oci_src src;
	const struct dimg_image_opts *o;
	char **err;
	struct dimg_image *img;
	struct oci_layer *layers;
	size_t nlayers;
	struct json_object *config; /* parsed img->config */
	int docker;                 /* picked through manifest.json */
};

/* A descriptor: digest, size, media type, all checked. */
struct oci_desc {
	uint8_t digest[32];
	uint64_t size;
	const char *media_type;
};

static int oci_desc_parse(struct oci_ctx *c, struct json_object *o, const char *what,
                          struct oci_desc *d)
{
	struct json_object *size = oci_jget(o, "size", json_type_int);
	int r = oci_parse_digest(oci_jstr(o, "digest"), d->digest);
	d->media_type = oci_jstr(o, "mediaType");
	if (r == 0 && (!size || json_object_get_int64(size) < 0))
		r = -EBADMSG;
	if (r < 0) {
		dimg_errf(c->err, "%s: bad descriptor (%s)", what,
		          r == -ENOTSUP ? "unsupported digest algorithm" : "digest or size");
		return r;
	}
	d->size = (uint64_t)json_object_get_int64(size);
	return 0;
}

/* Reads a blob named by a descriptor, checking its size and digest. */
static int oci_read_blob(struct oci_ctx *c, const struct oci_desc *d, const char *what,
                         uint8_t **out, size_t *len)
{
	char name[80], ds[72];
	uint8_t got[32];
	oci_blob_name(name, d->digest);
	oci_digest_str(ds, d->digest);
	if (d->size > OCI_JSON_MAX) {
		dimg_errf(c->err, "%s %s: %llu bytes is too large", what, ds,
		          (unsigned long long)d->size);
		return -EFBIG;
	}
	int r = oci_read_all(&c->src, name, OCI_JSON_MAX, out, len);
	if (r < 0) {
		dimg_errf(c->err, "%s %s: %s", what, ds, strerror(-r));
		return r == -ENOENT || r == -ENOMEM ? r : -EBADMSG;
	}
	r = dimg_sha256_buf(*out, *len, got);
	if (r == 0 && (*len != d->size || memcmp(got, d->digest, 32) != 0)) {
		dimg_errf(c->err, "%s %s: content does not match its digest or size", what, ds);
		r = -EBADMSG;
	}
	if (r < 0) {
		free(*out);
		*out = NULL;
	}
	return r;
}

static int oci_read_json_blob(struct oci_ctx *c, const struct oci_desc *d, const char *what,
                              uint8_t **raw, size_t *len, struct json_object **out)
{
	int r = oci_read_blob(c, d, what, raw, len);
	if (r == 0 && (r = oci_json_parse(out, *raw, *len)) < 0) {
		dimg_errf(c->err, "%s: not valid JSON", what);
		free(*raw);
		*raw = NULL;
	}
	return r;
}

/* ---- references and platforms ---- */

/* Docker-style normal form: "nginx" -> "docker.io/library/nginx:latest". */
static int oci_ref_normal(char **out, const char *ref)
{
	const char *slash = strchr(ref, '/'), *last = strrchr(ref, '/');
	const char *domain = "docker.io", *path = ref;
	size_t dl = slash ? (size_t)(slash - ref) : 0;
	if (slash && (memchr(ref, '.', dl) || memchr(ref, ':', dl) ||
	              (dl == 9 && strncmp(ref, "localhost", 9) == 0))) {
		domain = ref;
		path = slash + 1;
	} else {
		dl = strlen(domain);
	}
	if (dl == 15 && strncmp(domain, "index.docker.io", 15) == 0) {
		domain = "docker.io";
		dl = 9;
	}
	int hub = dl == 9 && strncmp(domain, "docker.io", 9) == 0;
	const char *lib = hub && !strchr(path, '/') ? "library/" : "";
	const char *tail = last ? last + 1 : ref;
	const char *tag = strchr(tail, ':') || strchr(tail, '@') ? "" : ":latest";
	if (asprintf(out, "%.*s/%s%s%s", (int)dl, domain, lib, path, tag) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Does name (from an annotation or RepoTags) denote ref? */
static int oci_ref_match(const char *name, const char *ref)
{
	char *a = NULL, *b = NULL;
	if (!name)
		return 0;
	if (strcmp(name, ref) == 0)
		return 1;
	/* An OCI ref.name may be a bare tag: "v1" for "app:v1". */
	const char *tagsep = strrchr(ref, ':');
	if (!strchr(name, '/') && !strchr(name, ':') && tagsep && !strchr(tagsep, '/') &&
	    strcmp(tagsep + 1, name) == 0)
		return 1;
	int m = oci_ref_normal(&a, name) == 0 && oci_ref_normal(&b, ref) == 0 && strcmp(a, b) == 0;
	free(a);
	free(b);
	return m;
}

struct oci_platform {
	char os[32], arch[32], variant[32];
};

/* This build's platform, named the way Go's GOARCH does. */
static void oci_default_platform(struct oci_platform *p)
{
	const char *arch, *variant = "";
#if defined(__x86_64__)
	arch = "amd64";
#elif defined(__aarch64__)
	arch = "arm64";
#elif defined(__arm__)
	arch = "arm";
	variant = __ARM_ARCH >= 7 ? "v7" : __ARM_ARCH == 6 ? "v6" : "v5";
#elif defined(__i386__)
	arch = "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	arch = "ppc64le";
#elif defined(__powerpc64__)
	arch = "ppc64";
#elif defined(__s390x__)
	arch = "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
	arch = "riscv64";
#elif defined(__loongarch64)
	arch = "loong64";
#elif defined(__mips64) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	arch = "mips64le";
#elif defined(__mips64)
	arch = "mips64";
#else
	arch = "unknown";
#endif
	snprintf(p->os, sizeof(p->os), "linux");
	snprintf(p->arch, sizeof(p->arch), "%s", arch);
	snprintf(p->variant, sizeof(p->variant), "%s", variant);
}

static int oci_parse_platform(struct oci_platform *p, const char *s)
{
	memset(p, 0, sizeof(*p));
	const char *a = strchr(s, '/');
	const char *v = a ? strchr(a + 1, '/') : NULL;
	size_t ol = a ? (size_t)(a - s) : 0, al = a ? (v ? (size_t)(v - a - 1) : strlen(a + 1)) : 0;
	if (!a || ol == 0 || al == 0 || ol >= sizeof(p->os) || al >= sizeof(p->arch) ||
	    (v &&
	     (strlen(v + 1) == 0 || strlen(v + 1) >= sizeof(p->variant) || strchr(v + 1, '/'))))
		return -EINVAL;
	memcpy(p->os, s, ol);
	memcpy(p->arch, a + 1, al);
	if (v)
		snprintf(p->variant, sizeof(p->variant), "%s", v + 1);
	return 0;
}

static void oci_platform_from(struct oci_platform *p, struct json_object *o, const char *os_key,
                              const char *arch_key)
{
	const char *os = oci_jstr(o, os_key), *arch = oci_jstr(o, arch_key);
	const char *variant = oci_jstr(o, "variant");
	memset(p, 0, sizeof(*p));
	snprintf(p->os, sizeof(p->os), "%s", os ? os : "");
	snprintf(p->arch, sizeof(p->arch), "%s", arch ? arch : "");
	snprintf(p->variant, sizeof(p->variant), "%s", variant ? variant : "");
}

/* want's variant, if any, must match; arm64 means v8 and arm v7 unless said. */
static int oci_platform_match(const struct oci_platform *want, const struct oci_platform *have)
{
	if (strcmp(want->os, have->os) != 0 || strcmp(want->arch, have->arch) != 0)
		return 0;
	if (!want->variant[0])
		return 1;
	const char *hv = have->variant;
	if (!hv[0])
		hv = strcmp(have->arch, "arm64") == 0 ? "v8"
		     : strcmp(have->arch, "arm") == 0 ? "v7"
		                                      : "";
	return strcmp(want->variant, hv) == 0;
}

/* ---- OCI index: candidates, selection ---- */

struct oci_cand {
	struct oci_desc d;
	const char *name1, *name2; /* ref.name and containerd image name, maybe inherited */
	struct oci_platform plat;
	int has_plat;
};

struct oci_cands {
	struct oci_cand *v;
	size_t n, cap;
	struct json_object **docs; /* nested indexes, kept for the borrowed strings */
	size_t ndocs, capdocs;
};

static void oci_cands_free(struct oci_cands *cs)
{
	for (size_t i = 0; i < cs->ndocs; i++)
		json_object_put(cs->docs[i]);
	free(cs->docs);
	free(cs->v);
}

static int oci_grow(void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 8;
	void *p = realloc(*v, nc * size);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = nc;
	return 0;
}

static int oci_is(const char *mt, const char *a, const char *b)
{
	return mt && (strcmp(mt, a) == 0 || strcmp(mt, b) == 0);
}

static int oci_collect(struct oci_ctx *c, struct oci_cands *cs, struct json_object *index,
                       const char *in1, const char *in2, int depth);

static int oci_nested(struct oci_ctx *c, struct oci_cands *cs, const struct oci_desc *d,
                      const char *n1, const char *n2, int depth)
{
	uint8_t *raw;
	size_t len;
	struct json_object *doc;
	if (depth >= OCI_INDEX_DEPTH) {
		dimg_errf(c->err, "image indexes nested more than %d deep", OCI_INDEX_DEPTH);
		return -ELOOP;
	}
	int r = oci_grow((void **)&cs->docs, &cs->capdocs, cs->ndocs, sizeof(*cs->docs));
	if (r == 0)
		r = oci_read_json_blob(c, d, "image index", &raw, &len, &doc);
	if (r < 0)
		return r;
	free(raw);
	cs->docs[cs->ndocs++] = doc;
	return oci_collect(c, cs, doc, n1, n2, depth + 1);
}

static int oci_collect_one(struct oci_ctx *c, struct oci_cands *cs, struct json_object *item,
                           const char *in1, const char *in2, int depth)
{
	struct oci_cand k = {0};
	int r = oci_desc_parse(c, item, "index entry", &k.d);
	if (r < 0)
		return r;
	k.name1 = oci_jannot(item, "org.opencontainers.image.ref.name");
	k.name2 = oci_jannot(item, "io.containerd.image.name");
	if (!k.name1 && !k.name2) {
		k.name1 = in1;
		k.name2 = in2;
	}
	if (oci_is(k.d.media_type, MT_OCI_INDEX, MT_DOCKER_LIST))
		return oci_nested(c, cs, &k.d, k.name1, k.name2, depth);
	/* Attestations and other artifacts are not images to run. */
	if (!oci_is(k.d.media_type, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST) ||
	    oci_jannot(item, "vnd.docker.reference.type"))
		return 0;
	struct json_object *plat = oci_jget(item, "platform", json_type_object);
	if (plat) {
		oci_platform_from(&k.plat, plat, "os", "architecture");
		k.has_plat = 1;
	}
	if ((r = oci_grow((void **)&cs->v, &cs->cap, cs->n, sizeof(*cs->v))) < 0)
		return r;
	cs->v[cs->n++] = k;
	return 0;
}

static int oci_collect(struct oci_ctx *c, struct oci_cands *cs, struct json_object *index,
                       const char *in1, const char *in2, int depth)
{
	struct json_object *arr = oci_jget(index, "manifests", json_type_array);
	if (!arr) {
		dimg_errf(c->err, "image index without a manifests list");
		return -EBADMSG;
	}
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *item = json_object_array_get_idx(arr, i);
		int r = json_object_is_type(item, json_type_object)
		            ? oci_collect_one(c, cs, item, in1, in2, depth)
		            : -EBADMSG;
		if (r == -EBADMSG)
			dimg_errf(c->err, "image index: bad entry %zu", i);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Reads a manifest and its config (both verified). */
static int oci_read_manifest_config(struct oci_ctx *c, const struct oci_desc *d, uint8_t **mraw,
                                    size_t *mlen, struct json_object **man, uint8_t **craw,
                                    size_t *clen, struct json_object **cfg)
{
	struct oci_desc cd;
	*craw = NULL;
	*cfg = NULL;
	int r = oci_read_json_blob(c, d, "manifest", mraw, mlen, man);
	if (r < 0)
		return r;
	r = oci_desc_parse(c, oci_jget(*man, "config", json_type_object), "manifest config", &cd);
	if (r == 0 && !oci_is(cd.media_type, MT_OCI_CONFIG, MT_DOCKER_CONFIG)) {
		dimg_errf(c->err, "not a container image: config media type %s",
		          cd.media_type ? cd.media_type : "(none)");
		r = -ENOTSUP;
	}
	if (r == 0)
		r = oci_read_json_blob(c, &cd, "config", craw, clen, cfg);
	if (r < 0) {
		json_object_put(*man);
		free(*mraw);
		*man = NULL;
		*mraw = NULL;
	}
	return r;
}

/* A candidate without a platform in its descriptor: ask its config. */
static int oci_cand_platform(struct oci_ctx *c, struct oci_cand *k)
{
	uint8_t *mraw, *craw;
	size_t mlen, clen;
	struct json_object *man, *cfg;
	if (k->has_plat)
		return 0;
	int r = oci_read_manifest_config(c, &k->d, &mraw, &mlen, &man, &craw, &clen, &cfg);
	if (r < 0)
		return r;
	oci_platform_from(&k->plat, cfg, "os", "architecture");
	k->has_plat = 1;
	json_object_put(man);
	json_object_put(cfg);
	free(mraw);
	free(craw);
	return 0;
}

static void oci_keep_if(struct oci_cands *cs, const char *ref)
{
	size_t k = 0;
	for (size_t i = 0; i < cs->n; i++)
		if (oci_ref_match(cs->v[i].name1, ref) || oci_ref_match(cs->v[i].name2, ref))
			cs->v[k++] = cs->v[i];
	cs->n = k;
}

static int oci_same_digest(const struct oci_cands *cs)
{
	for (size_t i = 1; i < cs->n; i++)
		if (memcmp(cs->v[i].d.digest, cs->v[0].d.digest, 32) != 0)
			return 0;
	return cs->n > 0;
}

static int oci_keep_platform(struct oci_ctx *c, struct oci_cands *cs,
                             const struct oci_platform *want)
{
	size_t k = 0;
	for (size_t i = 0; i < cs->n; i++) {
		int r = oci_cand_platform(c, &cs->v[i]);
		if (r < 0)
			return r;
		if (oci_platform_match(want, &cs->v[i].plat))
			cs->v[k++] = cs->v[i];
	}
	cs->n = k;
	return 0;
}

static int oci_want_platform(struct oci_ctx *c, struct oci_platform *want)
{
	if (!c->o->platform) {
		oci_default_platform(want);
		return 0;
	}
	if (oci_parse_platform(want, c->o->platform) < 0) {
		dimg_errf(c->err, "bad platform '%s' (want os/arch[/variant])", c->o->platform);
		return -EINVAL;
	}
	return 0;
}

/* Narrows the candidates to one: by ref, then by platform (the default
 * platform only breaks ties; a single image is taken whatever its arch,
 * since deltas are often built for other machines). */
static int oci_select(struct oci_ctx *c, struct oci_cands *cs, int docker_fallback)
{
	struct oci_platform want;
	if (c->o->ref)
		oci_keep_if(cs, c->o->ref);
	if (cs->n == 0 && docker_fallback)
		return 1; /* quietly: manifest.json may know the name */
	if (cs->n == 0) {
		dimg_errf(c->err, "no image %s%s in the index", c->o->ref ? "named " : "",
		          c->o->ref ? c->o->ref : "");
		return -ENOENT;
	}
	int r = oci_want_platform(c, &want);
	if (r < 0 || (oci_same_digest(cs) && !c->o->platform))
		return r;
	if ((r = oci_keep_platform(c, cs, &want)) < 0)
		return r;
	if (cs->n == 0) {
		dimg_errf(c->err, "no image for platform %s/%s%s%s", want.os, want.arch,
		          want.variant[0] ? "/" : "", want.variant);
		return -ENOENT;
	}
	if (!oci_same_digest(cs)) {
		dimg_errf(c->err, "several images match; choose one with a ref");
		return -EINVAL;
	}
	return 0;
}

/* ---- the chosen manifest ---- */

static int oci_layer_media_ok(const char *mt)
{
	static const char *const ok[] = {
	    MT_OCI_LAYER,
	    MT_OCI_LAYER "+gzip",
	    MT_OCI_LAYER "+zstd",
	    "application/vnd.oci.image.layer.nondistributable.v1.tar",
	    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
	    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
	    "application/vnd.docker.image.rootfs.diff.tar",
	    "application/vnd.docker.image.rootfs.diff.tar.gzip",
	    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
	};
	for (size_t i = 0; mt && i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strcmp(mt, ok[i]) == 0)
			return 1;
	return 0;
}

static int oci_layers_alloc(struct oci_ctx *c, size_t n)
{
	c->layers = calloc(n ? n : 1, sizeof(*c->layers));
	if (!c->layers)
		return -ENOMEM;
	c->nlayers = n;
	return 0;
}

static int oci_manifest_layers(struct oci_ctx *c, struct json_object *man)
{
	struct json_object *arr = oci_jget(man, "layers", json_type_array);
	char ds[72];
	if (!arr) {
		dimg_errf(c->err, "manifest without a layers list");
		return -EBADMSG;
	}
	int r = oci_layers_alloc(c, json_object_array_length(arr));
	for (size_t i = 0; r == 0 && i < c->nlayers; i++) {
		struct oci_layer *l = &c->layers[i];
		struct oci_desc d;
		r = oci_desc_parse(c, json_object_array_get_idx(arr, i), "manifest layer", &d);
		if (r == 0 && !oci_layer_media_ok(d.media_type)) {
			dimg_errf(c->err, "layer %zu: unsupported media type %s", i,
			          d.media_type ? d.media_type : "(none)");
			r = -ENOTSUP;
		}
		if (r < 0)
			break;
		oci_digest_str(ds, d.digest);
		l->member = malloc(80);
		l->label = strdup(ds);
		if (!l->member || !l->label)
			return -ENOMEM;
		oci_blob_name(l->member, d.digest);
		memcpy(l->li.digest, d.digest, 32);
		l->li.has_digest = 1;
		l->li.size = d.size;
	}
	return r;
}

static int oci_diff_ids(struct oci_ctx *c)
{
	struct json_object *rootfs = oci_jget(c->config, "rootfs", json_type_object);
	struct json_object *ids = oci_jget(rootfs, "diff_ids", json_type_array);
	if (!ids || json_object_array_length(ids) != c->nlayers) {
		dimg_errf(c->err,
		          "config rootfs.diff_ids missing or not one per layer (%zu layers)",
		          c->nlayers);
		return -EBADMSG;
	}
	for (size_t i = 0; i < c->nlayers; i++) {
		struct json_object *v = json_object_array_get_idx(ids, i);
		const char *s =
		    json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
		int r = oci_parse_digest(s, c->layers[i].li.diff_id);
		if (r < 0) {
			dimg_errf(c->err, "config diff_id %zu is not a sha256 digest", i);
			return r;
		}
		c->layers[i].li.has_diff_id = 1;
	}
	return 0;
}

static int oci_load_manifest(struct oci_ctx *c, const struct oci_cand *k)
{
	struct dimg_image *img = c->img;
	struct json_object *man;
	int r = oci_read_manifest_config(c, &k->d, &img->manifest, &img->manifest_len, &man,
	                                 &img->config, &img->config_len, &c->config);
	if (r < 0)
		return r;
	const char *mt = oci_jstr(man, "mediaType");
	mt = mt ? mt : k->d.media_type;
	oci_digest_str(img->manifest_digest, k->d.digest);
	struct oci_desc cd;
	r = oci_desc_parse(c, oci_jget(man, "config", json_type_object), "config", &cd);
	if (r == 0) {
		oci_digest_str(img->config_digest, cd.digest);
		img->manifest_media_type = strdup(mt);
		const char *name = c->o->ref ? c->o->ref : k->name1 ? k->name1 : k->name2;
		img->ref = name ? strdup(name) : NULL;
		if (!img->manifest_media_type || (name && !img->ref))
			r = -ENOMEM;
	}
	if (r == 0)
		r = oci_manifest_layers(c, man);
	if (r == 0)
		r = oci_diff_ids(c);
	json_object_put(man);
	return r;
}

static int oci_exists(const struct oci_src *s, const char *name)
{
	const struct oci_member *m;
	if (s->dirfd < 0)
		return oci_member_resolve(s, name, &m) == 0;
	return faccessat(s->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* 0: an image was chosen from index.json; 1: no index.json, or no match
 * while manifest.json may have one (no message set). */
static int oci_try_index(struct oci_ctx *c)
{
	uint8_t *raw;
	size_t len;
	struct json_object *index;
	struct oci_cands cs = {0};
	int docker = oci_exists(&c->src, "manifest.json");
	int r = oci_read_all(&c->src, "index.json", OCI_JSON_MAX, &raw, &len);
	if (r == -ENOENT)
		return 1;
	if (r == 0 && (r = oci_json_parse(&index, raw, len)) < 0)
		free(raw);
	if (r < 0) {
		dimg_errf(c->err, "index.json: %s",
		          r == -EBADMSG ? "not valid JSON" : strerror(-r));
		return r == -ENOMEM ? r : -EBADMSG;
	}
	free(raw);
	r = oci_collect(c, &cs, index, NULL, NULL, 0);
	if (r == 0)
		r = oci_select(c, &cs, docker);
	if (r == 0)
		r = oci_load_manifest(c, &cs.v[0]);
	oci_cands_free(&cs);
	json_object_put(index);
	return r;
}

static int oci_check_layout_version(struct oci_ctx *c)
{
	uint8_t *raw;
	size_t len;
	struct json_object *o;
	int r = oci_read_all(&c->src, "oci-layout", 65536, &raw, &len);
	if (r == -ENOENT)
		return 0;
	if (r == 0 && (r = oci_json_parse(&o, raw, len)) == 0) {
		const char *v = oci_jstr(o, "imageLayoutVersion");
		r = v && strncmp(v, "1.", 2) == 0 ? 0 : -ENOTSUP;
		json_object_put(o);
	}
	free(raw);
	if (r < 0)
		dimg_errf(c->err, "oci-layout: unsupported or unreadable layout version");
	return r;
}

/* ---- docker save: manifest.json ---- */

static const char *oci_jarr_str(struct json_object *arr, size_t i)
{
	struct json_object *v = json_object_array_get_idx(arr, i);
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Without a ref the archive must hold one image; with one, the first
 * entry with a matching RepoTag is taken. */
static int oci_docker_pick(struct oci_ctx *c, struct json_object *arr, struct json_object **out,
                           const char **tag)
{
	size_t n = json_object_array_length(arr);
	*out = NULL;
	*tag = NULL;
	for (size_t i = 0; i < n && !*out; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		struct json_object *tags = oci_jget(e, "RepoTags", json_type_array);
		size_t nt = tags ? json_object_array_length(tags) : 0;
		if (!c->o->ref && n == 1) {
			*out = e;
			*tag = nt ? oci_jarr_str(tags, 0) : NULL;
		}
		for (size_t j = 0; c->o->ref && j < nt && !*out; j++) {
			if (oci_ref_match(oci_jarr_str(tags, j), c->o->ref)) {
				*out = e;
				*tag = oci_jarr_str(tags, j);
			}
		}
	}
	if (*out && json_object_is_type(*out, json_type_object))
		return 0;
	if (c->o->ref)
		dimg_errf(c->err, "no image named %s in the archive", c->o->ref);
	else
		dimg_errf(c->err, "the archive holds %zu images; choose one with a ref", n);
	return -ENOENT;
}

static int oci_docker_config(struct oci_ctx *c, const char *path)
{
	struct dimg_image *img = c->img;
	uint8_t d[32];
	char *name;
	int r = oci_norm_name(&name, path);
	if (r == 0)
		r = oci_read_all(&c->src, name, OCI_JSON_MAX, &img->config, &img->config_len);
	if (r == 0 && (r = oci_json_parse(&c->config, img->config, img->config_len)) == 0 &&
	    (r = dimg_sha256_buf(img->config, img->config_len, d)) == 0)
		oci_digest_str(img->config_digest, d);
	if (r < 0)
		dimg_errf(c->err, "docker config %s: %s", path ? path : "(none)",
		          r == -EBADMSG ? "unreadable or not JSON" : strerror(-r));
	free(name);
	return r;
}

static int oci_docker_layer(struct oci_layer *l, const char *path)
{
	int r = oci_norm_name(&l->member, path);
	if (r < 0)
		return r;
	l->label = strdup(l->member);
	if (!l->label)
		return -ENOMEM;
	l->li.size = UINT64_MAX; /* the member's size, once opened */
	/* Newer docker save names layers by their digest: check it too. */
	if (strncmp(l->member, "blobs/", 6) == 0) {
		char *d = strdup(l->member + 6);
		if (!d)
			return -ENOMEM;
		if (strlen(d) > 6 && d[6] == '/') /* "sha256/<hex>" */
			d[6] = ':';
		l->li.has_digest = oci_parse_digest(d, l->li.digest) == 0;
		free(d);
	}
	return 0;
}

static int oci_docker_layers(struct oci_ctx *c, struct json_object *entry)
{
	struct json_object *arr = oci_jget(entry, "Layers", json_type_array);
	int r = oci_layers_alloc(c, arr ? json_object_array_length(arr) : 0);
	for (size_t i = 0; r == 0 && i < c->nlayers; i++) {
		struct json_object *v = json_object_array_get_idx(arr, i);
		const char *p =
		    json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
		r = oci_docker_layer(&c->layers[i], p);
		if (r == -EBADMSG)
			dimg_errf(c->err, "manifest.json: bad layer path %zu", i);
	}
	return r;
}

static int oci_docker_platform(struct oci_ctx *c)
{
	struct oci_platform want, have;
	if (!c->o->platform)
		return 0;
	int r = oci_want_platform(c, &want);
	if (r < 0)
		return r;
	oci_platform_from(&have, c->config, "os", "architecture");
	if (oci_platform_match(&want, &have))
		return 0;
	dimg_errf(c->err, "the image is for %s/%s, not %s", have.os, have.arch, c->o->platform);
	return -ENOENT;
}

static int oci_load_docker(struct oci_ctx *c)
{
	uint8_t *raw;
	size_t len;
	struct json_object *arr = NULL, *entry;
	const char *tag;
	int r = oci_read_all(&c->src, "manifest.json", OCI_JSON_MAX, &raw, &len);
	if (r == -ENOENT) {
		dimg_errf(c->err, "not an OCI image layout or docker save archive "
		                  "(no index.json or manifest.json)");
		return -EBADMSG;
	}
	if (r == 0) {
		r = oci_json_parse(&arr, raw, len);
		free(raw);
	}
	if (r == 0 && !json_object_is_type(arr, json_type_array))
		r = -EBADMSG;
	if (r < 0)
		dimg_errf(c->err, "manifest.json: %s", r == -EBADMSG ? "not a list" : strerror(-r));
	if (r == 0)
		r = oci_docker_pick(c, arr, &entry, &tag);
	if (r == 0 && tag && !(c->img->ref = strdup(tag)))
		r = -ENOMEM;
	if (r == 0)
		r = oci_docker_config(c, oci_jstr(entry, "Config"));
	if (r == 0)
		r = oci_docker_platform(c);
	if (r == 0)
		r = oci_docker_layers(c, entry);
	if (r == 0)
		r = oci_diff_ids(c);
	c->docker = 1;
	json_object_put(arr);
	return r;
}

static const char *oci_layer_media_type(const char *filter)
{
	if (strcmp(filter, "none") == 0)
		return MT_OCI_LAYER;
	if (strcmp(filter, "gzip") == 0)
		return MT_OCI_LAYER "+gzip";
	if (strcmp(filter, "zstd") == 0)
		return MT_OCI_LAYER "+zstd";
	return NULL;
}

static struct json_object *oci_jdesc(const char *mt, const uint8_t d[32], uint64_t size)
{
	char ds[72];
	struct json_object *o = json_object_new_object();
	oci_digest_str(ds, d);
	if (o && (json_object_object_add(o, "mediaType", json_object_new_string(mt)) ||
	          json_object_object_add(o, "digest", json_object_new_string(ds)) ||
	          json_object_object_add(o, "size", json_object_new_int64((int64_t)size)))) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

/* docker save has no registry manifest: describe the image with an OCI
 * one (config and layers exactly as stored), so callers always get one. */
static int oci_docker_manifest(struct oci_ctx *c)
{
	struct dimg_image *img = c->img;
	uint8_t cd[32], md[32];
	size_t len;
	int r = -ENOMEM;
	struct json_object *m = json_object_new_object(), *layers = json_object_new_array();
	if (!m || !layers || dimg_sha256_buf(img->config, img->config_len, cd) < 0)
		goto out;
	for (size_t i = 0; i < c->nlayers; i++) {
		const struct dimg_layer_info *li = &c->layers[i].li;
		const char *mt = oci_layer_media_type(li->filter);
		if (!mt) {
			dimg_errf(c->err, "layer %s: %s compression has no OCI media type",
			          c->layers[i].label, li->filter);
			r = -ENOTSUP;
			goto out;
		}
		if (json_object_array_add(layers, oci_jdesc(mt, li->got_digest, li->got_size)))
			goto out;
	}
	if (json_object_object_add(m, "schemaVersion", json_object_new_int(2)) ||
	    json_object_object_add(m, "mediaType", json_object_new_string(MT_OCI_MANIFEST)) ||
	    json_object_object_add(m, "config", oci_jdesc(MT_OCI_CONFIG, cd, img->config_len)))
		goto out;
	json_object_object_add(m, "layers", layers);
	layers = NULL;
	const char *s = json_object_to_json_string_length(
	    m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	img->manifest = s ? malloc(len) : NULL;
	img->manifest_media_type = strdup(MT_OCI_MANIFEST);
	if (!img->manifest || !img->manifest_media_type)
		goto out;
	memcpy(img->manifest, s, len);
	img->manifest_len = len;
	if ((r = dimg_sha256_buf(img->manifest, len, md)) == 0)
		oci_digest_str(img->manifest_digest, md);
out:
	json_object_put(layers);
	json_object_put(m);
	return r;
}

/* ---- squash and entry points ---- */

/* What the caller learns of layer i once it is squashed (and recorded). */
static int oci_layer_done(struct oci_ctx *c, size_t i, struct dimg_tarsplit *ts, uint64_t start)
{
	const struct dimg_layer_info *li = &c->layers[i].li;
	struct dimg_image_layer *out = &c->img->layers[i];
	memcpy(out->diff_id, li->got_diff_id, 32);
	memcpy(out->digest, li->got_digest, 32);
	out->size = li->got_size;
	out->filter = li->filter;
	c->img->nlayers = i + 1;
	if (!ts)
		return 0;
	int r = dimg_tarsplit_end(ts, &out->recipe_off, &out->recipe_len, start);
	out->has_recipe = r == 0;
	/* A stream the recorder reads otherwise than libarchive (it saw a file
	 * cut short) just has no recipe; only I/O failures are failures. */
	if (r == -EBADMSG)
		return 0;
	if (r < 0)
		dimg_errf(c->err, "layer %s: recording its recipe: %s", c->layers[i].label,
		          strerror(-r));
	return r;
}

static int oci_squash(struct oci_ctx *c, struct dimg_cas *cas, FILE *recipes)
{
	struct dimg_squash *sq = NULL;
	struct dimg_tarsplit *ts = NULL;
	uint64_t total = 0;
	for (size_t i = 0; i < c->nlayers; i++)
		total += c->layers[i].li.size != UINT64_MAX ? c->layers[i].li.size : 0;
	c->img->layers = calloc(c->nlayers ? c->nlayers : 1, sizeof(*c->img->layers));
	int r =
	    c->img->layers ? dimg_squash_new(&sq, cas, total, c->o->progress, c->o->pctx) : -ENOMEM;
	if (r == 0 && recipes && (r = dimg_tarsplit_new(&ts, recipes)) == 0)
		dimg_squash_record(sq, ts);
	for (size_t i = 0; r == 0 && i < c->nlayers; i++) {
		struct oci_layer *l = &c->layers[i];
		struct oci_stream *st;
		r = oci_stream_open(&st, &c->src, l->member);
		if (r < 0) {
			dimg_errf(c->err, "layer %s: cannot open its blob: %s", l->label,
			          strerror(-r));
			break;
		}
		if (l->li.size == UINT64_MAX)
			l->li.size = st->size;
		l->li.name = l->label;
		struct dimg_layer_src ls = {.read = oci_stream_read, .ctx = st};
		uint64_t start = ts ? dimg_tarsplit_offset(ts) : 0;
		if (ts)
			dimg_tarsplit_begin(ts);
		r = dimg_squash_layer(sq, &l->li, &ls, c->err);
		oci_stream_close(st);
		if (r == 0)
			r = oci_layer_done(c, i, ts, start);
	}
	if (r == 0)
		r = dimg_squash_finish(sq, &c->img->tree, c->err);
	dimg_squash_free(sq);
	dimg_tarsplit_free(ts);
	return r;
}

static void oci_ctx_free(struct oci_ctx *c)
{
	for (size_t i = 0; i < c->nlayers; i++) {
		free(c->layers[i].member);
		free(c->layers[i].label);
	}
	free(c->layers);
	json_object_put(c->config);
	oci_src_close(&c->src);
}

static int oci_src_open(struct oci_ctx *c, const char *path, int is_dir)
{
	if (!is_dir)
		return oci_src_open_tar(&c->src, path, c->err);
	c->src.dirfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c->src.dirfd >= 0)
		return 0;
	int r = -errno;
	dimg_errf(c->err, "%s: %s", path, strerror(-r));
	return r;
}

int dimg_oci_open(struct dimg_image *img, const char *path, int is_dir,
                  const struct dimg_image_opts *o, struct dimg_cas *cas, FILE *recipes, char **err)
{
	struct oci_ctx c = {.src = {.dirfd = -1}, .o = o, .err = err, .img = img};
	int r = oci_src_open(&c, path, is_dir);
	if (r == 0)
		r = oci_check_layout_version(&c);
	if (r == 0 && (r = oci_try_index(&c)) == 1)
		r = oci_load_docker(&c);
	if (r == 0)
		r = oci_squash(&c, cas, recipes);
	if (r == 0 && c.docker)
		r = oci_docker_manifest(&c);
	oci_ctx_free(&c);
	return r;
}

int dimg_oci_probe_dir(const char *path)
{
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int layout =
	    fstatat(fd, "oci-layout", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
	int index = fstatat(fd, "index.json", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	            S_ISREG(st.st_mode) && fstatat(fd, "blobs", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	            S_ISDIR(st.st_mode);
	/* A rootfs could hold a manifest.json; docker save puts more beside it. */
	int docker = fstatat(fd, "manifest.json", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	             S_ISREG(st.st_mode) &&
	             (fstatat(fd, "repositories", &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	              fstatat(fd, "blobs", &st, AT_SYMLINK_NOFOLLOW) == 0);
	close(fd);
	return layout || index || docker;
}
