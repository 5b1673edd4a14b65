/* OCI image layout tars: fixed ustar framing, canonical JSON, and a
 * one-layer image streamed from a tree (libarchive PAX layer, zlib gzip). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "dimg/hash.h"
#include "ociwrite.h"
#include "packer.h"

/* ------------------------------------------------------------ tar framing */

/* w-1 octal digits and a NUL; -EOVERFLOW if v does not fit. */
static int put_octal(uint8_t *f, size_t w, uint64_t v)
{
	f[w - 1] = '\0';
	for (size_t i = w - 1; i-- > 0;) {
		f[i] = (uint8_t)('0' + (v & 7));
		v >>= 3;
	}
	return v ? -EOVERFLOW : 0;
}

/* Base-256 (GNU): first byte 0x80, then the value big-endian. */
static void put_base256(uint8_t *f, size_t w, uint64_t v)
{
	memset(f, 0, w);
	f[0] = 0x80;
	for (size_t i = w; i-- > 1 && v;) {
		f[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

int ocitar_header_encode(uint8_t hdr[OCITAR_BLOCK], const char *name, char type, uint64_t size)
{
	size_t nlen = strlen(name);
	unsigned sum = 0;
	if (nlen == 0 || nlen >= 100)
		return -ENAMETOOLONG;
	memset(hdr, 0, OCITAR_BLOCK);
	memcpy(hdr, name, nlen);
	put_octal(hdr + 100, 8, type == '5' ? 0755 : 0644);
	put_octal(hdr + 108, 8, 0);
	put_octal(hdr + 116, 8, 0);
	if (put_octal(hdr + 124, 12, size) < 0)
		put_base256(hdr + 124, 12, size);
	put_octal(hdr + 136, 12, 0);
	hdr[156] = (uint8_t)type;
	memcpy(hdr + 257, "ustar", 6);
	memcpy(hdr + 263, "00", 2);
	put_octal(hdr + 329, 8, 0);
	put_octal(hdr + 337, 8, 0);
	memset(hdr + 148, ' ', 8);
	for (size_t i = 0; i < OCITAR_BLOCK; i++)
		sum += hdr[i];
	put_octal(hdr + 148, 7, sum);
	hdr[155] = ' ';
	return 0;
}

int ocitar_write(struct ocitar *t, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(t->fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		b += w;
		n -= (size_t)w;
		t->off += (uint64_t)w;
	}
	return 0;
}

int ocitar_pad(struct ocitar *t)
{
	static const uint8_t zero[OCITAR_BLOCK];
	size_t rem = (size_t)(t->off % OCITAR_BLOCK);
	return rem ? ocitar_write(t, zero, OCITAR_BLOCK - rem) : 0;
}

int ocitar_dir(struct ocitar *t, const char *name)
{
	uint8_t hdr[OCITAR_BLOCK];
	int r = ocitar_header_encode(hdr, name, '5', 0);
	return r < 0 ? r : ocitar_write(t, hdr, sizeof(hdr));
}

int ocitar_file(struct ocitar *t, const char *name, const void *p, size_t n)
{
	uint8_t hdr[OCITAR_BLOCK];
	int r = ocitar_header_encode(hdr, name, '0', n);
	if (r < 0 || (r = ocitar_write(t, hdr, sizeof(hdr))) < 0 || (r = ocitar_write(t, p, n)) < 0)
		return r;
	return ocitar_pad(t);
}

int ocitar_blob(struct ocitar *t, const char *digest, const void *p, size_t n)
{
	char name[100];
	if (!oci_digest_valid(digest))
		return -EINVAL;
	snprintf(name, sizeof(name), "blobs/sha256/%s", digest + 7);
	return ocitar_file(t, name, p, n);
}

int ocitar_finish(struct ocitar *t)
{
	static const uint8_t zero[2 * OCITAR_BLOCK];
	return ocitar_write(t, zero, sizeof(zero));
}

/* ------------------------------------------------------ digests and JSON */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A scalar (or a key, as a string object) as json-c prints it. */
static int dump_scalar(struct json_object *o, struct dimg_buf *out)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                      JSON_C_TO_STRING_NOSLASHESCAPE);
	return s ? dimg_buf_append(out, s, strlen(s)) : -ENOMEM;
}

static int dump_key(const char *k, struct dimg_buf *out)
{
	struct json_object *ks = json_object_new_string(k);
	if (!ks)
		return -ENOMEM;
	int r = dump_scalar(ks, out);
	json_object_put(ks);
	return r;
}

static int dump_object(struct json_object *o, struct dimg_buf *out)
{
	size_t n = (size_t)json_object_object_length(o), i = 0;
	const char **keys = calloc(n ? n : 1, sizeof(*keys));
	int r = keys ? dimg_buf_append(out, "{", 1) : -ENOMEM;
	if (r < 0)
		goto out;
	json_object_object_foreach(o, k, v)
	{
		(void)v;
		keys[i++] = k;
	}
	qsort(keys, n, sizeof(*keys), cmp_str);
	for (i = 0; i < n && r == 0; i++) {
		if ((i && (r = dimg_buf_append(out, ",", 1)) < 0) ||
		    (r = dump_key(keys[i], out)) < 0 || (r = dimg_buf_append(out, ":", 1)) < 0)
			break;
		r = oci_json_dump(json_object_object_get(o, keys[i]), out);
	}
	if (r == 0)
		r = dimg_buf_append(out, "}", 1);
out:
	free(keys);
	return r;
}

int oci_json_dump(struct json_object *o, struct dimg_buf *out)
{
	int r;
	if (json_object_is_type(o, json_type_object))
		return dump_object(o, out);
	if (!json_object_is_type(o, json_type_array))
		return o ? dump_scalar(o, out) : dimg_buf_append(out, "null", 4);
	if ((r = dimg_buf_append(out, "[", 1)) < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(o); i++) {
		if ((i && (r = dimg_buf_append(out, ",", 1)) < 0) ||
		    (r = oci_json_dump(json_object_array_get_idx(o, i), out)) < 0)
			return r;
	}
	return dimg_buf_append(out, "]", 1);
}

struct json_object *oci_descriptor(const char *media_type, const char *digest, uint64_t size)
{
	struct json_object *d = json_object_new_object();
	if (!d)
		return NULL;
	if (json_object_object_add(d, "mediaType", json_object_new_string(media_type)) ||
	    json_object_object_add(d, "digest", json_object_new_string(digest)) ||
	    json_object_object_add(d, "size", json_object_new_int64((int64_t)size))) {
		json_object_put(d);
		return NULL;
	}
	return d;
}

/* ------------------------------------------------------- config rewrite */

#define SQUASH_COMMENT "di3fs: every layer of the image squashed into this one"

static int history_empty(struct json_object *h)
{
	struct json_object *e;
	return json_object_object_get_ex(h, "empty_layer", &e) && json_object_get_boolean(e);
}

static int squash_history(struct json_object *cfg)
{
	struct json_object *h, *add;
	ssize_t last = -1;
	if (!json_object_object_get_ex(cfg, "history", &h) ||
	    !json_object_is_type(h, json_type_array))
		return 0;
	size_t n = json_object_array_length(h);
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(h, i);
		if (json_object_is_type(e, json_type_object) && !history_empty(e))
			last = (ssize_t)i;
	}
	for (ssize_t i = 0; i < last; i++) {
		struct json_object *e = json_object_array_get_idx(h, (size_t)i);
		if (json_object_is_type(e, json_type_object) && !history_empty(e) &&
		    json_object_object_add(e, "empty_layer", json_object_new_boolean(1)))
			return -ENOMEM;
	}
	if (last >= 0)
		return json_object_object_add(json_object_array_get_idx(h, (size_t)last), "comment",
		                              json_object_new_string(SQUASH_COMMENT))
		           ? -ENOMEM
		           : 0;
	if (!(add = json_object_new_object()) ||
	    json_object_object_add(add, "comment", json_object_new_string(SQUASH_COMMENT)) ||
	    json_object_array_add(h, add)) {
		json_object_put(add);
		return -ENOMEM;
	}
	return 0;
}

int oci_config_squash(const uint8_t *cfg, size_t len, const char *diff_id, struct dimg_buf *out)
{
	struct json_object *o = NULL, *rootfs = NULL, *ids = NULL;
	int r = oci_json_parse(&o, cfg, len);
	if (r < 0)
		return r;
	if (!json_object_is_type(o, json_type_object)) {
		r = -EBADMSG;
		goto out;
	}
	r = -ENOMEM;
	if (!(rootfs = json_object_new_object()) || !(ids = json_object_new_array()) ||
	    json_object_array_add(ids, json_object_new_string(diff_id)))
		goto out;
	if (json_object_object_add(rootfs, "diff_ids", ids)) {
		json_object_put(ids);
		goto out;
	}
	ids = NULL;
	if (json_object_object_add(rootfs, "type", json_object_new_string("layers")) ||
	    json_object_object_add(o, "rootfs", rootfs))
		goto out;
	rootfs = NULL;
	if ((r = squash_history(o)) == 0)
		r = oci_json_dump(o, out);
out:
	json_object_put(ids);
	json_object_put(rootfs);
	json_object_put(o);
	return r;
}

/* ------------------------------------------------------------ the layer */

struct layer_out {
	struct ocitar *tar;
	struct dimg_sha256 *raw, *packed; /* diff_id; layer digest when gzipped */
	z_stream z;
	int gzip, zinit;
	uint64_t raw_size, packed_size;
	int err;
	uint8_t zbuf[1 << 16];
};

static int layer_emit(struct layer_out *L, const void *p, size_t n)
{
	if (L->gzip)
		dimg_sha256_update(L->packed, p, n);
	L->packed_size += n;
	return ocitar_write(L->tar, p, n);
}

static int layer_deflate(struct layer_out *L, const void *p, size_t n, int flush)
{
	int rc;
	L->z.next_in = (Bytef *)(uintptr_t)p;
	L->z.avail_in = (uInt)n;
	do {
		L->z.next_out = L->zbuf;
		L->z.avail_out = sizeof(L->zbuf);
		rc = deflate(&L->z, flush);
		if (rc == Z_STREAM_ERROR)
			return -EIO;
		size_t have = sizeof(L->zbuf) - L->z.avail_out;
		int r = have ? layer_emit(L, L->zbuf, have) : 0;
		if (r < 0)
			return r;
	} while (L->z.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
	return 0;
}

/* Raw tar bytes in: hashed (diff_id), compressed if asked, written. */
static int layer_out_write(void *ctx, const void *buf, size_t n)
{
	struct layer_out *L = ctx;
	int r = 0;
	dimg_sha256_update(L->raw, buf, n);
	L->raw_size += n;
	/* zlib takes at most UINT_MAX per call; libarchive blocks are small. */
	for (size_t done = 0; done < n && r == 0;) {
		size_t k = n - done > (1u << 30) ? (1u << 30) : n - done;
		r = L->gzip ? layer_deflate(L, (const uint8_t *)buf + done, k, Z_NO_FLUSH)
		            : layer_emit(L, (const uint8_t *)buf + done, k);
		done += k;
	}
	return r;
}

static la_ssize_t layer_write_cb(struct archive *a, void *ctx, const void *buf, size_t n)
{
	struct layer_out *L = ctx;
	(void)a;
	int r = layer_out_write(L, buf, n);
	if (r < 0) {
		L->err = r;
		return -1;
	}
	return (la_ssize_t)n;
}

struct layer_sink {
	struct archive *a;
	uint64_t left;
};

static int layer_sink_write(void *ctx, const void *p, size_t n)
{
	struct layer_sink *s = ctx;
	const uint8_t *b = p;
	if (n > s->left)
		return -EBADMSG;
	s->left -= n;
	while (n) {
		la_ssize_t w = archive_write_data(s->a, b, n);
		if (w <= 0)
			return -EIO;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Metadata of e into ae. A hardlink arrives with its leader's metadata
 * (layer_entry_ordered): tar readers apply a link header's mode to the
 * shared inode. */
static int layer_entry_meta(struct archive_entry *ae, const struct dimg_entry *e)
{
	const struct dimg_entry *m = e;
	static const unsigned types[] = {0,        AE_IFDIR, AE_IFREG, AE_IFLNK,
	                                 AE_IFREG, AE_IFCHR, AE_IFBLK, AE_IFIFO};
	if (e->type < DIMG_TYPE_DIR || e->type > DIMG_TYPE_FIFO)
		return -EBADMSG;
	archive_entry_set_pathname(ae, e->path[0] ? e->path : ".");
	archive_entry_set_filetype(ae, types[e->type]);
	archive_entry_set_perm(ae, (mode_t)(m->mode & 07777));
	archive_entry_set_uid(ae, m->uid);
	archive_entry_set_gid(ae, m->gid);
	archive_entry_set_mtime(ae, (time_t)m->mtime_sec, (long)m->mtime_nsec);
	archive_entry_set_size(ae, e->type == DIMG_TYPE_REG ? (la_int64_t)e->size : 0);
	if (e->type == DIMG_TYPE_SYMLINK)
		archive_entry_set_symlink(ae, e->link);
	if (e->type == DIMG_TYPE_HARDLINK)
		archive_entry_set_hardlink(ae, e->link);
	if (e->type == DIMG_TYPE_CHR || e->type == DIMG_TYPE_BLK) {
		archive_entry_set_rdevmajor(ae, e->rdev_major);
		archive_entry_set_rdevminor(ae, e->rdev_minor);
	}
	for (uint32_t i = 0; i < e->nxattrs; i++)
		archive_entry_xattr_add_entry(ae, e->xattrs[i].name, e->xattrs[i].value,
		                              e->xattrs[i].value_len);
	return 0;
}

struct layer_job {
	const struct dimg_tree *t;
	dimg_content_fn content;
	void *ctx;
	const struct oci_image_opts *o;
	uint64_t done, total;
};

static int layer_entry(struct archive *a, struct archive_entry *ae, struct layer_job *j,
                       const struct dimg_entry *e, struct layer_out *L)
{
	archive_entry_clear(ae);
	int r = layer_entry_meta(ae, e);
	if (r < 0)
		return r;
	if (archive_write_header(a, ae) != ARCHIVE_OK)
		return L->err ? L->err : -EIO;
	if (e->type == DIMG_TYPE_REG && e->size) {
		struct layer_sink s = {a, e->size};
		if ((r = j->content(j->ctx, e, layer_sink_write, &s)) < 0)
			return L->err ? L->err : r;
		if (s.left)
			return -EBADMSG;
		j->done += e->size;
		if (j->o->progress)
			j->o->progress(j->o->pctx, "writing layer", j->done, j->total);
	}
	return archive_write_finish_entry(a) == ARCHIVE_OK ? 0 : (L->err ? L->err : -EIO);
}

static int ascii(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

/* libarchive converts names from the locale's charset to UTF-8 for PAX
 * and fails on bytes it cannot convert (in the C locale: any byte >= 0x80).
 * A tree with such names is written with hdrcharset=BINARY (raw bytes,
 * one more pax record per entry); an ASCII tree without. Either way the
 * output depends on the tree only, never on the locale. */
static int tree_needs_binary(const struct dimg_tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct dimg_entry *e = &t->v[i];
		if (!ascii(e->path) || !ascii(e->link))
			return 1;
		for (uint32_t k = 0; k < e->nxattrs; k++)
			if (!ascii(e->xattrs[k].name))
				return 1;
	}
	return 0;
}

static struct archive *layer_archive_new(struct layer_out *L, int binary)
{
	struct archive *a = archive_write_new();
	if (!a)
		return NULL;
	if (archive_write_set_format_pax(a) != ARCHIVE_OK ||
	    archive_write_set_format_option(a, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK ||
	    (binary &&
	     archive_write_set_format_option(a, "pax", "hdrcharset", "BINARY") != ARCHIVE_OK) ||
	    archive_write_open(a, L, NULL, layer_write_cb, NULL) != ARCHIVE_OK) {
		archive_write_free(a);
		return NULL;
	}
	return a;
}

/* Tar readers expect a directory's entries right after it (GNU tar sets a
 * directory's mtime once it meets an entry outside it), so the layer is
 * written depth-first: paths compared with '/' below every other byte.
 * The tree's order is plain byte order ("a-b" before "a/x"). */
static int cmp_depth_first(const char *a, const char *b)
{
	for (;; a++, b++) {
		int x = *a == '/' ? 0 : (unsigned char)*a + 1;
		int y = *b == '/' ? 0 : (unsigned char)*b + 1;
		if (!*a || !*b || x != y)
			return (*a ? x : -1) - (*b ? y : -1);
	}
}

static int cmp_order(const void *x, const void *y, void *arg)
{
	const struct dimg_tree *t = arg;
	return cmp_depth_first(t->v[*(const size_t *)x].path, t->v[*(const size_t *)y].path);
}

/* Write order, and for each hardlink group the member written first: that
 * one carries the content, the others link to it. */
struct layer_order {
	size_t *idx;   /* tree indices in write order */
	size_t *first; /* per tree index of a REG leader: first-written member */
};

static void layer_order_free(struct layer_order *o)
{
	free(o->idx);
	free(o->first);
}

static int layer_order_build(struct layer_order *o, const struct dimg_tree *t)
{
	size_t n = t->n ? t->n : 1;
	o->idx = malloc(n * sizeof(size_t));
	o->first = malloc(n * sizeof(size_t));
	if (!o->idx || !o->first)
		return -ENOMEM;
	for (size_t i = 0; i < t->n; i++) {
		o->idx[i] = i;
		o->first[i] = (size_t)-1;
	}
	qsort_r(o->idx, t->n, sizeof(size_t), cmp_order, (void *)t);
	for (size_t k = 0; k < t->n; k++) {
		const struct dimg_entry *e = &t->v[o->idx[k]];
		ssize_t lead = o->idx[k];
		if (e->type == DIMG_TYPE_HARDLINK && (lead = dimg_tree_index(t, e->link)) < 0)
			return -EBADMSG;
		if ((e->type == DIMG_TYPE_REG || e->type == DIMG_TYPE_HARDLINK) &&
		    o->first[lead] == (size_t)-1)
			o->first[lead] = o->idx[k];
	}
	return 0;
}

/* Writes tree entry i: a hardlink group's first-written member as the
 * regular file (the leader's content and metadata under its own path),
 * every other member as a link to it. */
static int layer_entry_ordered(struct archive *a, struct archive_entry *ae, struct layer_job *j,
                               const struct layer_order *o, size_t i, struct layer_out *L)
{
	const struct dimg_tree *t = j->t;
	const struct dimg_entry *e = &t->v[i];
	if (e->type != DIMG_TYPE_REG && e->type != DIMG_TYPE_HARDLINK)
		return layer_entry(a, ae, j, e, L);
	ssize_t lead = e->type == DIMG_TYPE_REG ? (ssize_t)i : dimg_tree_index(t, e->link);
	if (lead < 0 || t->v[lead].type != DIMG_TYPE_REG)
		return -EBADMSG;
	size_t first = o->first[lead];
	struct dimg_entry as = t->v[lead]; /* shallow: only path and link change */
	if (first == i) {
		/* The content still comes from the leader's own source. */
		if (!as.src)
			as.src = t->v[lead].path;
		as.path = e->path;
		as.link = NULL;
	} else {
		as.path = e->path;
		as.type = DIMG_TYPE_HARDLINK;
		as.link = t->v[first].path;
	}
	return layer_entry(a, ae, j, &as, L);
}

/* Streams every entry of j->t as a tar into L; *failed is the entry index
 * that failed, if one did. */
static int layer_write(struct layer_job *j, struct layer_out *L, size_t *failed)
{
	struct archive *a = layer_archive_new(L, tree_needs_binary(j->t));
	struct archive_entry *ae = archive_entry_new();
	int r = (a && ae) ? 0 : -ENOMEM;
	struct layer_order ord = {0};
	if (r == 0)
		r = layer_order_build(&ord, j->t);
	for (size_t k = 0; k < j->t->n && r == 0; k++) {
		size_t i = ord.idx[k];
		r = layer_entry_ordered(a, ae, j, &ord, i, L);
		if (r < 0)
			*failed = i;
	}
	layer_order_free(&ord);
	if (a && archive_write_close(a) != ARCHIVE_OK && r == 0)
		r = L->err ? L->err : -EIO;
	archive_entry_free(ae);
	if (a)
		archive_write_free(a);
	return r;
}

static int layer_out_init(struct layer_out *L, struct ocitar *tar, const struct oci_image_opts *o)
{
	int r;
	L->tar = tar;
	L->gzip = o->gzip;
	if ((r = dimg_sha256_new(&L->raw)) < 0 || (r = dimg_sha256_new(&L->packed)) < 0)
		return r;
	if (!L->gzip)
		return 0;
	/* windowBits 15+16: a gzip wrapper with mtime 0 and no name. */
	if (deflateInit2(&L->z, o->gzip_level ? o->gzip_level : 6, Z_DEFLATED, 15 + 16, 8,
	                 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	L->zinit = 1;
	return 0;
}

static void layer_out_free(struct layer_out *L)
{
	if (!L)
		return;
	if (L->zinit)
		deflateEnd(&L->z);
	dimg_sha256_free(L->raw);
	dimg_sha256_free(L->packed);
	free(L);
}

/* ------------------------------------------------------------ the image */

static uint64_t tree_bytes(const struct dimg_tree *t)
{
	uint64_t n = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].type == DIMG_TYPE_REG)
			n += t->v[i].size;
	return n;
}

/* What a layer blob came out as. */
struct layer_done {
	char diff_id[OCI_DIGEST_LEN], digest[OCI_DIGEST_LEN];
	uint64_t size, raw_size;
};

/* Produces a layer's raw tar bytes into L (compression not finished). */
typedef int (*layer_body_fn)(void *ctx, struct layer_out *L);

/* A layer blob in the archive: its header is written as zeros and patched
 * once the digest and size are known. */
static int blob_layer(struct ocitar *tar, const struct oci_image_opts *o, layer_body_fn body,
                      void *ctx, struct layer_done *d)
{
	static const uint8_t zero[OCITAR_BLOCK];
	uint8_t hdr[OCITAR_BLOCK], sha[32];
	char name[100];
	uint64_t hdr_off = tar->off;
	struct layer_out *L = calloc(1, sizeof(*L));
	int r = L ? layer_out_init(L, tar, o) : -ENOMEM;
	if (r < 0 || (r = ocitar_write(tar, zero, sizeof(zero))) < 0 || (r = body(ctx, L)) < 0 ||
	    (L->gzip && (r = layer_deflate(L, NULL, 0, Z_FINISH)) < 0) || (r = ocitar_pad(tar)) < 0)
		goto out;
	dimg_sha256_final(L->raw, sha);
	oci_digest_str(d->diff_id, sha);
	if (L->gzip)
		dimg_sha256_final(L->packed, sha);
	oci_digest_str(d->digest, sha);
	d->size = L->packed_size;
	d->raw_size = L->raw_size;
	snprintf(name, sizeof(name), "blobs/sha256/%s", d->digest + 7);
	if ((r = ocitar_header_encode(hdr, name, '0', L->packed_size)) == 0 &&
	    pwrite(tar->fd, hdr, sizeof(hdr), (off_t)hdr_off) != (ssize_t)sizeof(hdr))
		r = -EIO;
out:
	layer_out_free(L);
	return r;
}

struct tree_body {
	struct layer_job *j;
	size_t *failed;
};

static int tree_body_run(void *ctx, struct layer_out *L)
{
	struct tree_body *b = ctx;
	return layer_write(b->j, L, b->failed);
}

/* The squashed layer, first in the archive. */
static int image_layer(struct ocitar *tar, struct layer_job *j, struct oci_image_result *res,
                       size_t *failed)
{
	struct tree_body b = {j, failed};
	struct layer_done d;
	int r = blob_layer(tar, j->o, tree_body_run, &b, &d);
	if (r < 0)
		return r;
	memcpy(res->diff_id, d.diff_id, OCI_DIGEST_LEN);
	memcpy(res->layer_digest, d.digest, OCI_DIGEST_LEN);
	res->layer_size = d.size;
	res->layer_raw_size = d.raw_size;
	return 0;
}

/* Adds the platform of config cfg (canonical JSON) to descriptor d. */
static int add_platform(struct json_object *d, const struct dimg_buf *cfg)
{
	static const char *keys[] = {"architecture", "os", "variant"};
	struct json_object *c = NULL, *v, *p;
	int r = oci_json_parse(&c, cfg->data, cfg->len);
	if (r < 0)
		return r;
	if (!(p = json_object_new_object())) {
		json_object_put(c);
		return -ENOMEM;
	}
	for (size_t i = 0; i < 3; i++)
		if (json_object_object_get_ex(c, keys[i], &v) &&
		    json_object_is_type(v, json_type_string))
			json_object_object_add(p, keys[i], json_object_get(v));
	json_object_put(c);
	if (json_object_object_length(p) < 2) {
		json_object_put(p);
		return 0;
	}
	return json_object_object_add(d, "platform", p) ? -ENOMEM : 0;
}

/* Serialises o canonically as file `name` (or as a blob when name is NULL,
 * giving its digest); takes o. */
static int put_json(struct ocitar *tar, const char *name, struct json_object *o,
                    char digest[OCI_DIGEST_LEN], uint64_t *size)
{
	struct dimg_buf b = {0};
	int r = o ? oci_json_dump(o, &b) : -ENOMEM;
	if (r == 0 && !name && (r = oci_digest_buf(digest, b.data, b.len)) == 0)
		r = ocitar_blob(tar, digest, b.data, b.len);
	else if (r == 0 && name)
		r = ocitar_file(tar, name, b.data, b.len);
	if (size)
		*size = b.len;
	dimg_buf_free(&b);
	json_object_put(o);
	return r;
}

static struct json_object *image_manifest(const struct oci_image_result *res, uint64_t cfg_size,
                                          int gzip)
{
	struct json_object *m = json_object_new_object(), *layers = json_object_new_array();
	if (!m || !layers ||
	    json_object_array_add(layers, oci_descriptor(gzip ? OCI_MT_LAYER_GZIP : OCI_MT_LAYER,
	                                                 res->layer_digest, res->layer_size)) ||
	    json_object_object_add(m, "layers", layers)) {
		json_object_put(layers);
		json_object_put(m);
		return NULL;
	}
	json_object_object_add(m, "schemaVersion", json_object_new_int(2));
	json_object_object_add(m, "mediaType", json_object_new_string(OCI_MT_MANIFEST));
	json_object_object_add(m, "config",
	                       oci_descriptor(OCI_MT_CONFIG, res->config_digest, cfg_size));
	return m;
}

static struct json_object *image_index(const struct oci_image_result *res, uint64_t man_size,
                                       const struct dimg_buf *cfg, const char *ref)
{
	struct json_object *x = json_object_new_object(), *ms = json_object_new_array();
	struct json_object *d = oci_descriptor(OCI_MT_MANIFEST, res->manifest_digest, man_size);
	int bad = !x || !ms || !d || add_platform(d, cfg) < 0;
	if (!bad && ref) {
		struct json_object *an = json_object_new_object();
		bad = !an || json_object_object_add(d, "annotations", an) ||
		      json_object_object_add(an, OCI_ANNOT_CONTAINERD_NAME,
		                             json_object_new_string(ref)) ||
		      json_object_object_add(an, OCI_ANNOT_REF_NAME, json_object_new_string(ref));
	}
	if (bad || json_object_array_add(ms, d)) {
		json_object_put(d);
		json_object_put(ms);
		json_object_put(x);
		return NULL;
	}
	json_object_object_add(x, "schemaVersion", json_object_new_int(2));
	json_object_object_add(x, "mediaType", json_object_new_string(OCI_MT_INDEX));
	json_object_object_add(x, "manifests", ms);
	return x;
}

static int image_write_fd(int fd, struct layer_job *j, const uint8_t *cfg, size_t cfg_len,
                          struct oci_image_result *res, size_t *failed)
{
	struct ocitar tar = {fd, 0};
	struct dimg_buf c = {0};
	uint64_t man_size = 0;
	char unused[OCI_DIGEST_LEN];
	int r;
	if ((r = ocitar_dir(&tar, "blobs/")) < 0 || (r = ocitar_dir(&tar, "blobs/sha256/")) < 0 ||
	    (r = image_layer(&tar, j, res, failed)) < 0)
		goto out;
	if ((r = oci_config_squash(cfg, cfg_len, res->diff_id, &c)) < 0 ||
	    (r = oci_digest_buf(res->config_digest, c.data, c.len)) < 0 ||
	    (r = ocitar_blob(&tar, res->config_digest, c.data, c.len)) < 0)
		goto out;
	if ((r = put_json(&tar, NULL, image_manifest(res, c.len, j->o->gzip), res->manifest_digest,
	                  &man_size)) < 0 ||
	    (r = put_json(&tar, "index.json", image_index(res, man_size, &c, j->o->ref), unused,
	                  NULL)) < 0 ||
	    (r = ocitar_file(&tar, "oci-layout", OCI_LAYOUT_JSON, strlen(OCI_LAYOUT_JSON))) < 0)
		goto out;
	r = ocitar_finish(&tar);
	res->file_size = tar.off;
out:
	dimg_buf_free(&c);
	return r;
}

struct image_fill {
	struct layer_job *j;
	const uint8_t *cfg;
	size_t cfg_len;
	struct oci_image_result *res;
	size_t failed;
};

static int image_fill_fd(int fd, void *ctx)
{
	struct image_fill *f = ctx;
	return image_write_fd(fd, f->j, f->cfg, f->cfg_len, f->res, &f->failed);
}

int oci_image_write(const char *out_path, const struct dimg_tree *t, dimg_content_fn content,
                    void *ctx, const uint8_t *cfg, size_t cfg_len, const struct oci_image_opts *o,
                    struct oci_image_result *res, char **err_path)
{
	struct layer_job j = {t, content, ctx, o, 0, tree_bytes(t)};
	struct image_fill f = {&j, cfg, cfg_len, res, (size_t)-1};
	const char *bad = NULL;
	int r = dimg_tree_validate(t, &bad);
	memset(res, 0, sizeof(*res));
	if (r < 0) {
		if (err_path && bad)
			*err_path = strdup(bad);
		return r;
	}
	r = packer_write_atomic(out_path, image_fill_fd, &f);
	if (r < 0 && err_path && f.failed != (size_t)-1)
		*err_path = strdup(t->v[f.failed].path);
	return r;
}

/* ------------------------------------------- original layers, original config */

/* cfg's rootfs.diff_ids, which must be n valid digests. */
static int want_diff_ids(const uint8_t *cfg, size_t cfg_len, size_t n, struct json_object **out,
                         struct oci_layers_result *res)
{
	struct json_object *c = NULL, *rootfs, *ids;
	int r = oci_json_parse(&c, cfg, cfg_len);
	if (r == 0 &&
	    (!json_object_object_get_ex(c, "rootfs", &rootfs) ||
	     !json_object_object_get_ex(rootfs, "diff_ids", &ids) ||
	     !json_object_is_type(ids, json_type_array) || json_object_array_length(ids) != n))
		r = -EBADMSG;
	for (size_t i = 0; r == 0 && i < n; i++)
		if (!oci_digest_valid(json_object_get_string(json_object_array_get_idx(ids, i))))
			r = -EBADMSG;
	if (r < 0) {
		snprintf(res->why, sizeof(res->why),
		         "the config's rootfs.diff_ids are not %zu sha256 digests", n);
		json_object_put(c);
		return r;
	}
	*out = c;
	return 0;
}

struct user_body {
	oci_layer_fn fn;
	void *ctx;
	size_t i;
};

static int user_body_run(void *ctx, struct layer_out *L)
{
	struct user_body *b = ctx;
	return b->fn(b->ctx, b->i, layer_out_write, L);
}

struct layers_job {
	oci_layer_fn fn;
	void *ctx;
	const uint8_t *cfg;
	size_t cfg_len;
	const struct oci_layers_opts *o;
	struct oci_layers_result *res;
	struct json_object *ids; /* the config's diff_ids */
	struct json_object *descs;
};

/* Layer i, checked against the config's diff_id, described in j->descs. */
static int layers_one(struct ocitar *tar, struct layers_job *j, size_t i)
{
	struct oci_image_opts lo = {0};
	struct user_body b = {j->fn, j->ctx, i};
	struct layer_done d;
	const char *want = json_object_get_string(json_object_array_get_idx(j->ids, i));
	int r = j->o->begin(j->ctx, i, &lo.gzip);
	if (r == 0)
		r = blob_layer(tar, &lo, user_body_run, &b, &d);
	if (r == 0 && strcmp(d.diff_id, want) != 0) {
		snprintf(j->res->why, sizeof(j->res->why),
		         "layer %zu rebuilt with diff_id %.19s..., the config says %.19s...", i + 1,
		         d.diff_id, want);
		r = -EBADMSG;
	}
	if (r < 0) {
		j->res->failed = i;
		return r;
	}
	return json_object_array_add(
	           j->descs,
	           oci_descriptor(lo.gzip ? OCI_MT_LAYER_GZIP : OCI_MT_LAYER, d.digest, d.size))
	           ? -ENOMEM
	           : 0;
}

static struct json_object *layers_manifest(struct layers_job *j, const char *cfg_digest)
{
	struct json_object *m = json_object_new_object();
	if (!m || json_object_object_add(m, "layers", json_object_get(j->descs))) {
		json_object_put(m);
		return NULL;
	}
	json_object_object_add(m, "schemaVersion", json_object_new_int(2));
	json_object_object_add(m, "mediaType", json_object_new_string(OCI_MT_MANIFEST));
	json_object_object_add(m, "config", oci_descriptor(OCI_MT_CONFIG, cfg_digest, j->cfg_len));
	return m;
}

static int layers_fill_fd(int fd, void *ctx)
{
	struct layers_job *j = ctx;
	struct ocitar tar = {fd, 0};
	struct oci_image_result ir = {0};
	struct dimg_buf cb = {(uint8_t *)(uintptr_t)j->cfg, j->cfg_len, j->cfg_len};
	uint64_t man_size = 0;
	char unused[OCI_DIGEST_LEN];
	int r = ocitar_dir(&tar, "blobs/");
	if (r == 0)
		r = ocitar_dir(&tar, "blobs/sha256/");
	for (size_t i = 0; r == 0 && i < j->o->n; i++)
		r = layers_one(&tar, j, i);
	if (r < 0 || (r = oci_digest_buf(j->res->config_digest, j->cfg, j->cfg_len)) < 0 ||
	    (r = ocitar_blob(&tar, j->res->config_digest, j->cfg, j->cfg_len)) < 0 ||
	    (r = put_json(&tar, NULL, layers_manifest(j, j->res->config_digest),
	                  j->res->manifest_digest, &man_size)) < 0)
		return r;
	memcpy(ir.manifest_digest, j->res->manifest_digest, OCI_DIGEST_LEN);
	if ((r = put_json(&tar, "index.json", image_index(&ir, man_size, &cb, j->o->ref), unused,
	                  NULL)) < 0 ||
	    (r = ocitar_file(&tar, "oci-layout", OCI_LAYOUT_JSON, strlen(OCI_LAYOUT_JSON))) < 0 ||
	    (r = ocitar_finish(&tar)) < 0)
		return r;
	j->res->file_size = tar.off;
	return 0;
}

int oci_image_write_layers(const char *out_path, oci_layer_fn fn, void *ctx, const uint8_t *cfg,
                           size_t cfg_len, const struct oci_layers_opts *o,
                           struct oci_layers_result *res)
{
	struct layers_job j = {fn, ctx, cfg, cfg_len, o, res, NULL, NULL};
	struct json_object *c = NULL;
	memset(res, 0, sizeof(*res));
	res->failed = o->n;
	int r = want_diff_ids(cfg, cfg_len, o->n, &c, res);
	if (r < 0)
		return r;
	json_object_object_get_ex(c, "rootfs", &j.ids);
	json_object_object_get_ex(j.ids, "diff_ids", &j.ids);
	j.descs = json_object_new_array();
	r = j.descs ? packer_write_atomic(out_path, layers_fill_fd, &j) : -ENOMEM;
	json_object_put(j.descs);
	json_object_put(c);
	return r;
}
