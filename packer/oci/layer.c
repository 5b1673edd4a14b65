/* A layer blob written into an OCI layout tar: hashed (diff_id, digest),
 * gzip-compressed if asked (zlib), its header patched once its size is
 * known; and a whole tree as a layer (libarchive PAX, depth-first). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "dimg/hash.h"
#include "oci-internal.h"

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
int oci_layer_out_write(void *ctx, const void *buf, size_t n)
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
	int r = oci_layer_out_write(L, buf, n);
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
 * that failed, if one did (not when writing the archive failed). */
int oci_layer_write(struct layer_job *j, struct layer_out *L, size_t *failed)
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
		if (r < 0 && !L->err) /* not the archive's own write failing */
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

/* A layer blob in the archive: its header is written as zeros and patched
 * once the digest and size are known. */
int oci_blob_layer(struct ocitar *tar, const struct oci_image_opts *o, layer_body_fn body,
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
