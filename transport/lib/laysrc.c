/* Reading image layouts: files of a directory or a tar (by member
 * offsets), index.json's image chosen by ref and platform, blobs by
 * digest, a partial archive's left-out blobs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "layout.h"

#define LAY_BUF (256u << 10)

int lay_open(struct lay *l, const char *path, int is_dir, struct dimg_err *err)
{
	memset(l, 0, sizeof(*l));
	l->dirfd = l->fd = -1;
	int fd = open(path, (is_dir ? O_PATH | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return dimg_err_set(err, -errno, path, NULL);
	if (is_dir) {
		l->dirfd = fd;
		return 0;
	}
	l->fd = fd;
	int r = xtar_index_fd(&l->tar, fd, err);
	if (r < 0)
		dimg_err_set(err, r, path, "not an uncompressed tar");
	return r;
}

void lay_close(struct lay *l)
{
	if (l->dirfd >= 0)
		close(l->dirfd);
	if (l->fd >= 0)
		close(l->fd);
	xtar_free(&l->tar);
	l->dirfd = l->fd = -1;
}

/* An open file and the range of it the name denotes. */
static int lay_locate(const struct lay *l, const char *name, int *fd, uint64_t *off, uint64_t *size)
{
	struct stat st;
	if (l->fd >= 0) {
		const struct xtar_member *m = xtar_find(&l->tar, name);
		if (!m)
			return -ENOENT;
		*fd = l->fd;
		*off = m->off;
		*size = m->size;
		return 0;
	}
	*fd = openat(l->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (*fd < 0)
		return -errno;
	if (fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(*fd);
		return -ENOENT;
	}
	*off = 0;
	*size = (uint64_t)st.st_size;
	return 0;
}

static void lay_unlocate(const struct lay *l, int fd)
{
	if (fd != l->fd)
		close(fd);
}

int lay_size(const struct lay *l, const char *name, uint64_t *size)
{
	int fd;
	uint64_t off;
	int r = lay_locate(l, name, &fd, &off, size);
	if (r == 0)
		lay_unlocate(l, fd);
	return r;
}

static int lay_pread(int fd, uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t k = pread(fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO; /* shorter than its header said */
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

int lay_read_all(const struct lay *l, const char *name, size_t max, uint8_t **out, size_t *len)
{
	int fd;
	uint64_t off, size;
	*out = NULL;
	int r = lay_locate(l, name, &fd, &off, &size);
	if (r < 0)
		return r;
	uint8_t *p = size <= max ? malloc((size_t)size + 1) : NULL;
	r = size > max ? -EFBIG : p ? lay_pread(fd, p, (size_t)size, off) : -ENOMEM;
	lay_unlocate(l, fd);
	if (r < 0) {
		free(p);
		return r;
	}
	p[size] = '\0';
	*out = p;
	*len = (size_t)size;
	return 0;
}

int lay_stream(const struct lay *l, const char *name, uint64_t off, uint64_t len,
               dimg_write_fn sink, void *ctx)
{
	int fd;
	uint64_t base, size;
	int r = lay_locate(l, name, &fd, &base, &size);
	if (r < 0)
		return r;
	uint8_t *buf = malloc(LAY_BUF);
	if (!buf)
		r = -ENOMEM;
	if (off > size)
		off = size;
	if (len > size - off)
		len = size - off;
	while (r == 0 && len) {
		size_t n = len < LAY_BUF ? (size_t)len : LAY_BUF;
		if ((r = lay_pread(fd, buf, n, base + off)) == 0)
			r = sink(ctx, buf, n);
		off += n;
		len -= n;
	}
	free(buf);
	lay_unlocate(l, fd);
	return r;
}

/* ---- the image a name picks ---- */

static int lay_digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

/* di3fs-excluded.json of a partial archive: {"excluded":[descriptor...]}. */
static int laysrc_excluded(struct laysrc *s, struct dimg_err *err)
{
	uint8_t *raw;
	size_t len;
	struct json_object *o = NULL;
	int r = lay_read_all(&s->l, LAY_EXCLUDED_JSON, OCI_JSON_MAX, &raw, &len);
	if (r == -ENOENT)
		return 0;
	if (r == 0)
		r = oci_json_parse(&o, raw, len);
	free(raw);
	struct json_object *arr = oci_jarr(o, "excluded");
	size_t n = arr ? json_object_array_length(arr) : 0;
	if (r == 0 && !arr)
		r = -EBADMSG;
	if (r == 0 && !(s->excluded = calloc(n ? n : 1, 32)))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++) {
		struct oci_desc d;
		if ((r = oci_desc_parse(&d, json_object_array_get_idx(arr, i))) == 0)
			memcpy(s->excluded[s->nexcluded++], d.digest, 32);
	}
	json_object_put(o);
	if (r < 0)
		return dimg_err_set(err, r, LAY_EXCLUDED_JSON, "unreadable");
	qsort(s->excluded, s->nexcluded, 32, lay_digest_cmp);
	return 0;
}

static int laysrc_is_excluded(const struct laysrc *s, const uint8_t d[32])
{
	return s->nexcluded && bsearch(d, s->excluded, s->nexcluded, 32, lay_digest_cmp);
}

int laysrc_open(struct xport *x, int is_dir, struct dimg_err *err)
{
	struct laysrc *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	x->priv = s;
	s->l.dirfd = s->l.fd = -1;
	int r = lay_open(&s->l, x->name.where, is_dir, err);
	if (r == 0)
		r = laysrc_excluded(s, err);
	return r;
}

void laysrc_close(struct laysrc *s)
{
	if (!s)
		return;
	lay_close(&s->l);
	dsave_free(s->ds);
	free(s->excluded);
	free(s);
}

int laysrc_get_digest(struct xport *x, const uint8_t digest[32], struct xport_manifest *out,
                      struct dimg_err *err)
{
	struct laysrc *s = x->priv;
	char name[OCI_BLOB_PATH_LEN], ds[OCI_DIGEST_LEN];
	uint8_t *raw;
	size_t len;
	memset(out, 0, sizeof(*out));
	oci_digest_str(ds, digest);
	const char *member = s->ds ? dsave_member(s->ds, digest) : NULL;
	oci_blob_path(name, digest);
	int r = lay_read_all(&s->l, member ? member : name, OCI_JSON_MAX, &raw, &len);
	if (r < 0)
		return dimg_err_set(err, r, ds, "%s",
		                    r == -ENOENT ? "not in the layout" : "unreadable");
	return xman_take(out, raw, len, NULL, digest, err);
}

static int laysrc_fetch(void *ctx, const struct oci_desc *d, struct xport_manifest *out,
                        struct dimg_err *err)
{
	return laysrc_get_digest(ctx, d->digest, out, err);
}

/* The entry's name: its ref.name, else the name containerd gave it. */
static const char *laysrc_entry_ref(struct json_object *e)
{
	const char *r = oci_jannot(e, OCI_ANNOT_REF_NAME);
	return r ? r : oci_jannot(e, OCI_ANNOT_CONTAINERD_NAME);
}

static int laysrc_named(struct json_object *e, const char *ref)
{
	return oci_ref_match(oci_jannot(e, OCI_ANNOT_REF_NAME), ref) ||
	       oci_ref_match(oci_jannot(e, OCI_ANNOT_CONTAINERD_NAME), ref);
}

static int laysrc_same(struct json_object *a, struct json_object *b)
{
	const char *x = oci_jstr(a, "digest"), *y = oci_jstr(b, "digest");
	return x && y && strcmp(x, y) == 0;
}

/* index.json's entry for ref (any, when NULL and there is one image). */
static int laysrc_pick(struct json_object *index, const char *ref, struct json_object **out,
                       struct dimg_err *err)
{
	struct json_object *arr = oci_jarr(index, "manifests");
	size_t n = arr ? json_object_array_length(arr) : 0, hits = 0;
	*out = NULL;
	if (!arr)
		return dimg_err_set(err, -EBADMSG, "index.json", "no manifests list");
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		if ((ref && !laysrc_named(e, ref)) || (*out && laysrc_same(*out, e)))
			continue; /* another image, or the same one under another name */
		hits++;
		*out = e;
	}
	if (hits == 1)
		return 0;
	if (ref && hits)
		return dimg_err_set(err, -EINVAL, ref, "names several images in the layout");
	if (ref)
		return dimg_err_set(err, -ENOENT, ref, "no image of that name in the layout");
	if (hits)
		return dimg_err_set(err, -EINVAL, NULL,
		                    "the layout holds %zu images: name one (TRANSPORT:PATH:REF)",
		                    hits);
	return dimg_err_set(err, -ENOENT, NULL, "the layout holds no image");
}

static int laysrc_index_manifest(struct xport *x, struct xport_manifest *out, struct dimg_err *err)
{
	struct laysrc *s = x->priv;
	uint8_t *raw;
	size_t len;
	struct json_object *index = NULL, *e;
	struct oci_desc d;
	int r = lay_read_all(&s->l, "index.json", OCI_JSON_MAX, &raw, &len);
	if (r == 0) {
		r = oci_json_parse(&index, raw, len);
		free(raw);
	}
	if (r < 0)
		return dimg_err_set(err, r, "index.json", r == -ENOENT ? "missing" : "unreadable");
	r = laysrc_pick(index, x->name.ref, &e, err);
	if (r == 0 && (r = oci_desc_parse(&d, e)) < 0)
		dimg_err_set(err, r, "index.json", "a malformed entry");
	if (r == 0)
		r = laysrc_get_digest(x, d.digest, out, err);
	const char *ref = r == 0 ? laysrc_entry_ref(e) : NULL;
	if (ref && !(out->ref = strdup(ref)))
		r = -ENOMEM;
	json_object_put(index);
	return r;
}

int laysrc_get_manifest(struct xport *x, struct xport_manifest *out, struct dimg_err *err)
{
	struct laysrc *s = x->priv;
	uint8_t d[32];
	uint64_t size;
	int r;
	memset(out, 0, sizeof(*out));
	if (x->name.digest) {
		if ((r = oci_digest_parse(d, x->name.digest)) < 0)
			return dimg_err_set(err, r, x->name.digest, NULL);
		r = laysrc_get_digest(x, d, out, err);
	} else if (x->name.kind == XPORT_DOCKER_ARCHIVE &&
	           lay_size(&s->l, "index.json", &size) < 0) {
		r = s->ds ? 0 : dsave_open(&s->ds, &s->l, x->name.ref, err);
		if (r == 0)
			r = dsave_manifest(s->ds, out, err);
	} else {
		r = laysrc_index_manifest(x, out, err);
	}
	if (r == 0 && !out->ref && x->name.ref && !(out->ref = strdup(x->name.ref)))
		r = -ENOMEM;
	if (r == 0)
		r = xsel_platform(out, &x->opts, laysrc_fetch, x, err);
	if (r < 0)
		xport_manifest_clear(out);
	return r;
}

/* The member holding a blob. */
static void laysrc_member(const struct laysrc *s, const uint8_t d[32], char name[OCI_BLOB_PATH_LEN],
                          const char **member)
{
	oci_blob_path(name, d);
	*member = s->ds ? dsave_member(s->ds, d) : NULL;
	if (!*member)
		*member = name;
}

int laysrc_has_blob(struct xport *x, const struct oci_desc *d, struct dimg_err *err)
{
	struct laysrc *s = x->priv;
	char name[OCI_BLOB_PATH_LEN];
	const char *member;
	uint64_t size;
	if (laysrc_is_excluded(s, d->digest))
		return 0;
	laysrc_member(s, d->digest, name, &member);
	int r = lay_size(&s->l, member, &size);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? dimg_err_set(err, r, member, NULL) : 1;
}

int laysrc_get_blob(struct xport *x, const struct oci_desc *d, uint64_t offset, dimg_write_fn sink,
                    void *ctx, struct dimg_err *err)
{
	struct laysrc *s = x->priv;
	char name[OCI_BLOB_PATH_LEN], ds[OCI_DIGEST_LEN];
	const char *member;
	oci_digest_str(ds, d->digest);
	if (laysrc_is_excluded(s, d->digest))
		return dimg_err_set(err, -ENOENT, ds,
		                    "left out of this partial archive (" LAY_EXCLUDED_JSON ")");
	laysrc_member(s, d->digest, name, &member);
	/* one byte more than stated, so that a longer blob shows */
	uint64_t len = offset <= d->size ? d->size - offset + 1 : 1;
	int r = lay_stream(&s->l, member, offset, len, sink, ctx);
	if (r == -ENOENT)
		return dimg_err_set(err, r, ds, "not in %s", x->name.where);
	return r < 0 ? dimg_err_set(err, r, ds, "reading %s", member) : 0;
}
