/* Streaming squash: applies image layer tars in order to an in-memory tree
 * (OCI whiteouts and opaque directories, hardlink groups), regular files'
 * contents streamed into the content store, blob digest and diff_id
 * verified in the same single pass over each layer. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <xxhash.h>

#include "dimg/hash.h"
#include "squash-internal.h"
#include "tree-internal.h"

/* Limits beyond which an entry is hostile rather than unusual. */
#define SQ_FILE_MAX        (1ULL << 40) /* 1 TiB */
#define SQ_PATH_MAX        4095
#define SQ_XATTR_VALUE_MAX 65536 /* Linux XATTR_SIZE_MAX */
#define SQ_XATTR_NAME_MAX  255
#define SQ_PROGRESS_STEP   (4u << 20)

/* State of one layer being read: blob -> (filters, raw format) -> tar. */
struct sq_layer {
	struct dimg_squash *s;
	struct dimg_layer_info *li;
	const struct dimg_layer_src *src;
	struct archive *raw; /* decompresses; its data is the tar stream */
	struct archive *tar; /* parses the tar stream fed from raw */
	uint64_t csize, usize;
	int raw_eof, src_eof;
	int cb_err;           /* first -errno met in a read callback */
	char cb_msg[96];      /* and what it was */
	const char *entry;    /* raw path of the entry at hand, for messages */
	struct dimg_err *err; /* the first refusal (NULL: not wanted) */
};

/* ---- messages ---- */

static int sq_fail(struct sq_layer *L, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int sq_fail(struct sq_layer *L, int r, const char *fmt, ...)
{
	char *why = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&why, fmt, ap) < 0)
		why = NULL;
	va_end(ap);
	if (L->entry)
		dimg_err_set(L->err, r, NULL, "layer %s: entry '%s': %s", L->li->name, L->entry,
		             why ? why : "refused");
	else
		dimg_err_set(L->err, r, NULL, "layer %s: %s", L->li->name, why ? why : "refused");
	free(why);
	return r;
}

/* ---- paths ---- */

/* Normalises a tar path: drops "./" and empty or "." components, refuses
 * absolute paths and ".." (never resolved: a layer cannot step out). */
static int sq_norm(struct sq_layer *L, const char *raw, const char *what, char **out)
{
	*out = NULL;
	if (!raw)
		return sq_fail(L, -EBADMSG, "%s is missing or unreadable", what);
	if (raw[0] == '/')
		return sq_fail(L, -EBADMSG, "absolute %s refused", what);
	size_t n = strlen(raw);
	if (n > SQ_PATH_MAX)
		return sq_fail(L, -EOVERFLOW, "%s longer than %d bytes", what, SQ_PATH_MAX);
	char *p = malloc(n + 1);
	if (!p)
		return -ENOMEM;
	if (dimg_path_clean(p, raw) < 0) {
		free(p);
		return sq_fail(L, -EBADMSG, "'..' in %s refused", what);
	}
	*out = p;
	return 0;
}

static struct sq_node *sq_node_new(const char *path, size_t len, uint8_t type, unsigned layer)
{
	struct sq_node *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->e.path = strndup(path, len);
	if (!x->e.path) {
		free(x);
		return NULL;
	}
	x->e.type = type;
	x->layer = layer;
	return x;
}

/* The directory at path[0..len): found, or made as an implied directory
 * (see SQ_IMPLIED_DIR_MODE) with its own missing parents. A symlink or
 * other non-directory on the way refuses the entry. */
static int sq_dir_at(struct sq_layer *L, const char *path, size_t len, struct sq_node **out)
{
	struct dimg_squash *s = L->s;
	struct sq_node *x = sq_find(s, path, len), *parent;
	if (x) {
		*out = x;
		if (x->e.type == DIMG_TYPE_DIR)
			return 0;
		if (x->e.type == DIMG_TYPE_SYMLINK)
			return sq_fail(L, -ELOOP, "parent '%.*s' is a symlink", (int)len, path);
		return sq_fail(L, -EBADMSG, "parent '%.*s' is not a directory", (int)len, path);
	}
	const char *slash = memrchr(path, '/', len);
	int r = slash ? sq_dir_at(L, path, (size_t)(slash - path), &parent) : 0;
	if (r < 0)
		return r;
	if (!slash)
		parent = s->root;
	x = sq_node_new(path, len, DIMG_TYPE_DIR, s->layer);
	if (!x)
		return -ENOMEM;
	x->e.mode = SQ_IMPLIED_DIR_MODE;
	if ((r = sq_link(s, x, parent)) < 0) {
		sq_node_free(x);
		return r;
	}
	*out = x;
	return 0;
}

static int sq_parent_of(struct sq_layer *L, const char *path, struct sq_node **out)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		*out = L->s->root;
		return 0;
	}
	return sq_dir_at(L, path, (size_t)(slash - path), out);
}

/* ---- metadata ---- */

struct sq_xattr_ref {
	const char *name;
	const void *value;
	size_t len;
	size_t idx;
};

static int sq_xattr_cmp(const void *a, const void *b)
{
	const struct sq_xattr_ref *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : (x->idx < y->idx ? -1 : x->idx > y->idx);
}

/* Copies refs[0..n) (sorted, the last of equal names wins) into e. */
static int sq_xattr_copy(struct dimg_entry *e, const struct sq_xattr_ref *refs, size_t n)
{
	e->xattrs = calloc(n, sizeof(*e->xattrs));
	if (!e->xattrs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && strcmp(refs[i].name, refs[i + 1].name) == 0)
			continue;
		struct dimg_xattr *x = &e->xattrs[e->nxattrs];
		x->name = strdup(refs[i].name);
		x->value = malloc(refs[i].len ? refs[i].len : 1);
		e->nxattrs++;
		if (!x->name || !x->value)
			return -ENOMEM;
		memcpy(x->value, refs[i].value, refs[i].len);
		x->value_len = (uint32_t)refs[i].len;
	}
	return 0;
}

/* PAX SCHILY.xattr.* (and LIBARCHIVE.xattr.*) records, sorted by name. */
static int sq_xattrs(struct sq_layer *L, struct dimg_entry *e, struct archive_entry *ae)
{
	int n = archive_entry_xattr_reset(ae);
	if (n <= 0)
		return 0;
	struct sq_xattr_ref *refs = calloc((size_t)n, sizeof(*refs));
	if (!refs)
		return -ENOMEM;
	size_t k = 0;
	int r = 0;
	while (k < (size_t)n && r == 0) {
		struct sq_xattr_ref *x = &refs[k];
		if (archive_entry_xattr_next(ae, &x->name, &x->value, &x->len) != ARCHIVE_OK)
			break;
		size_t nl = x->name ? strlen(x->name) : 0;
		if (nl == 0 || nl > SQ_XATTR_NAME_MAX)
			r = sq_fail(L, -EBADMSG, "xattr name empty or too long");
		else if (x->len > SQ_XATTR_VALUE_MAX)
			r = sq_fail(L, -EOVERFLOW, "xattr '%s' larger than %d bytes", x->name,
			            SQ_XATTR_VALUE_MAX);
		x->idx = k++;
	}
	if (r == 0 && k) {
		qsort(refs, k, sizeof(*refs), sq_xattr_cmp);
		r = sq_xattr_copy(e, refs, k);
	}
	free(refs);
	return r;
}

static int sq_meta(struct sq_layer *L, struct dimg_entry *e, struct archive_entry *ae)
{
	int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae);
	if (uid < 0 || uid > UINT32_MAX || gid < 0 || gid > UINT32_MAX)
		return sq_fail(L, -EOVERFLOW, "uid/gid %lld/%lld out of range", (long long)uid,
		               (long long)gid);
	e->mode = (uint32_t)archive_entry_perm(ae) & 07777u;
	e->uid = (uint32_t)uid;
	e->gid = (uint32_t)gid;
	if (archive_entry_mtime_is_set(ae)) {
		long ns = archive_entry_mtime_nsec(ae);
		e->mtime_sec = archive_entry_mtime(ae);
		e->mtime_nsec = ns >= 0 && ns < 1000000000L ? (uint32_t)ns : 0;
	}
	return sq_xattrs(L, e, ae);
}

/* Type-specific fields of a non-regular entry. */
static int sq_special(struct sq_layer *L, struct dimg_entry *e, struct archive_entry *ae)
{
	const char *target;
	switch (archive_entry_filetype(ae)) {
	case AE_IFDIR:
		e->type = DIMG_TYPE_DIR;
		return 0;
	case AE_IFIFO:
		e->type = DIMG_TYPE_FIFO;
		return 0;
	case AE_IFCHR:
	case AE_IFBLK:
		e->type = archive_entry_filetype(ae) == AE_IFCHR ? DIMG_TYPE_CHR : DIMG_TYPE_BLK;
		e->rdev_major = (uint32_t)archive_entry_rdevmajor(ae);
		e->rdev_minor = (uint32_t)archive_entry_rdevminor(ae);
		return 0;
	case AE_IFLNK:
		target = archive_entry_symlink(ae);
		if (!target || !target[0])
			return sq_fail(L, -EBADMSG, "symlink without a target");
		if (strlen(target) > SQ_PATH_MAX)
			return sq_fail(L, -EOVERFLOW, "symlink target longer than %d bytes",
			               SQ_PATH_MAX);
		e->type = DIMG_TYPE_SYMLINK;
		e->link = strdup(target);
		e->size = strlen(target);
		return e->link ? 0 : -ENOMEM;
	default:
		return sq_fail(L, -EBADMSG, "unsupported entry type 0%o",
		               (unsigned)archive_entry_filetype(ae));
	}
}

/* ---- contents ---- */

/* A failure inside libarchive; our own read callbacks' reason wins over
 * what the decoder made of it. */
static int sq_archive_fail(struct sq_layer *L, struct archive *a, const char *what)
{
	if (L->cb_err)
		return sq_fail(L, L->cb_err, "%s: %s", what, L->cb_msg);
	int r = archive_errno(a) == ENOMEM ? -ENOMEM : -EBADMSG;
	const char *msg = archive_error_string(a);
	return sq_fail(L, r, "%s: %s", what, msg ? msg : "corrupt data");
}

static void sq_cb_fail(struct sq_layer *L, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sq_cb_fail(struct sq_layer *L, int r, const char *fmt, ...)
{
	va_list ap;
	if (L->cb_err)
		return;
	L->cb_err = r;
	va_start(ap, fmt);
	vsnprintf(L->cb_msg, sizeof(L->cb_msg), fmt, ap);
	va_end(ap);
}

/* Streams the entry's data into the store; sparse holes become zeros. */
static int sq_content(struct sq_layer *L, struct dimg_entry *e, uint64_t size, int sparse)
{
	struct dimg_cas_writer *w = L->s->w;
	uint64_t pos = 0, got;
	int r = dimg_cas_writer_begin(w);
	while (r == 0) {
		const void *buf;
		size_t n;
		la_int64_t off;
		int ar = archive_read_data_block(L->tar, &buf, &n, &off);
		if (ar == ARCHIVE_EOF)
			break;
		if (ar != ARCHIVE_OK) {
			r = sq_archive_fail(L, L->tar, "reading data");
			break;
		}
		if (off < 0 || (uint64_t)off < pos || (uint64_t)off > size ||
		    n > size - (uint64_t)off) {
			r = sq_fail(L, -EBADMSG, "data outside the declared size");
			break;
		}
		r = dimg_cas_writer_zeros(w, (uint64_t)off - pos);
		if (r == 0)
			r = dimg_cas_writer_write(w, buf, n);
		pos = (uint64_t)off + n;
	}
	if (r == 0 && pos < size && !sparse)
		r = sq_fail(L, -EBADMSG, "data ends %llu bytes early",
		            (unsigned long long)(size - pos));
	if (r == 0)
		r = dimg_cas_writer_zeros(w, size - pos); /* a sparse file's last hole */
	if (r == 0)
		r = dimg_cas_writer_commit(w, e->sha256, &got);
	if (r < 0) {
		dimg_cas_writer_abort(w);
		return sq_fail(L, r, "storing the content in %s: %s", dimg_cas_writer_dir(w),
		               strerror(-r));
	}
	e->size = got;
	return 0;
}

/* The declared size must be sane before any byte is stored: at most
 * SQ_FILE_MAX, and for an uncompressed blob of known size, what remains. */
static int sq_check_size(struct sq_layer *L, struct archive_entry *ae, uint64_t *out)
{
	if (!archive_entry_size_is_set(ae) || archive_entry_size(ae) < 0)
		return sq_fail(L, -EBADMSG, "no valid size");
	uint64_t size = (uint64_t)archive_entry_size(ae);
	if (size > SQ_FILE_MAX)
		return sq_fail(L, -EOVERFLOW, "declared size %llu is over 1 TiB",
		               (unsigned long long)size);
	if (archive_filter_code(L->raw, 0) == ARCHIVE_FILTER_NONE && L->li->size != UINT64_MAX) {
		la_int64_t at = archive_filter_bytes(L->tar, 0);
		uint64_t left =
		    at >= 0 && (uint64_t)at <= L->li->size ? L->li->size - (uint64_t)at : 0;
		if (size > left)
			return sq_fail(
			    L, -EOVERFLOW,
			    "declared size %llu exceeds the %llu bytes left in the layer",
			    (unsigned long long)size, (unsigned long long)left);
	}
	*out = size;
	return 0;
}

/* ---- entries ---- */

static int sq_whiteout(struct sq_layer *L, const char *path, const char *base)
{
	struct dimg_squash *s = L->s;
	struct sq_node *parent;
	int r = sq_parent_of(L, path, &parent);
	if (r < 0)
		return r;
	if (strcmp(base, ".wh..wh..opq") == 0) {
		for (struct sq_node *c = parent->child, *nc; c; c = nc) {
			nc = c->next;
			sq_hide_lower(s, c);
		}
		return 0;
	}
	if (strncmp(base, ".wh..wh.", 8) == 0)
		return 0; /* aufs bookkeeping (.wh..wh.plnk ...), not content */
	const char *name = base + 4;
	if (!name[0] || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return sq_fail(L, -EBADMSG, "whiteout names no file");
	size_t plen = parent == s->root ? 0 : parent->pathlen + 1;
	size_t nlen = strlen(name);
	char *victim = malloc(plen + nlen + 1);
	if (!victim)
		return -ENOMEM;
	memcpy(victim, path, plen);
	memcpy(victim + plen, name, nlen + 1);
	struct sq_node *x = sq_find(s, victim, plen + nlen);
	if (x)
		sq_hide_lower(s, x);
	free(victim);
	return 0;
}

/* Puts a new node at path, replacing what was there: a directory over a
 * directory only takes the new metadata and keeps its children. */
static int sq_place(struct sq_layer *L, const char *path, struct dimg_entry *e,
                    struct sq_inode *ino)
{
	struct dimg_squash *s = L->s;
	struct sq_node *parent, *old = sq_find(s, path, strlen(path));
	if (old && old->e.type == DIMG_TYPE_DIR && e->type == DIMG_TYPE_DIR) {
		e->path = old->e.path;
		old->e.path = NULL;
		dimg_entry_clear(&old->e);
		old->e = *e;
		memset(e, 0, sizeof(*e));
		old->layer = s->layer;
		return 0;
	}
	if (!path[0])
		return sq_fail(L, -EBADMSG, "the root must be a directory");
	if (old)
		sq_remove(s, old);
	int r = sq_parent_of(L, path, &parent); /* found before: cannot fail now */
	if (r < 0)
		return r;
	struct sq_node *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->e = *e;
	memset(e, 0, sizeof(*e));
	x->e.path = strdup(path);
	x->ino = ino;
	x->layer = s->layer;
	if (!x->e.path || (r = sq_link(s, x, parent)) < 0) {
		x->ino = NULL;
		sq_node_free(x);
		return r < 0 ? r : -ENOMEM;
	}
	return 0;
}

static int sq_hardlink(struct sq_layer *L, const char *path, const char *rawtarget)
{
	char *target;
	int r = sq_norm(L, rawtarget, "hardlink target", &target);
	if (r < 0)
		return r;
	struct sq_node *t = sq_find(L->s, target, strlen(target));
	if (!t || t->e.type != DIMG_TYPE_REG) {
		r = sq_fail(L, -EBADMSG,
		            "hardlink target '%s' is not a regular file of the layers so far",
		            target);
		free(target);
		return r;
	}
	free(target);
	if (strcmp(t->e.path, path) == 0)
		return 0; /* a link to itself changes nothing */
	struct sq_inode *ino = t->ino;
	struct dimg_entry e = {.type = DIMG_TYPE_REG};
	ino->refs++; /* held across the replace, which may drop t */
	r = sq_place(L, path, &e, ino);
	if (r < 0)
		sq_inode_unref(ino);
	return r;
}

static int sq_regular(struct sq_layer *L, const char *path, struct archive_entry *ae)
{
	uint64_t size = 0;
	int r = sq_check_size(L, ae, &size);
	if (r < 0)
		return r;
	struct sq_inode *ino = calloc(1, sizeof(*ino));
	if (!ino)
		return -ENOMEM;
	ino->refs = 1;
	ino->meta.type = DIMG_TYPE_REG;
	struct dimg_entry e = {.type = DIMG_TYPE_REG};
	r = sq_meta(L, &ino->meta, ae);
	if (r == 0)
		r = sq_content(L, &ino->meta, size, archive_entry_sparse_count(ae) > 0);
	if (r == 0)
		r = sq_place(L, path, &e, ino);
	if (r < 0)
		sq_inode_unref(ino);
	return r;
}

static int sq_other(struct sq_layer *L, const char *path, struct archive_entry *ae)
{
	struct dimg_entry e = {0};
	int r = sq_special(L, &e, ae);
	if (r == 0)
		r = sq_meta(L, &e, ae);
	if (r == 0)
		r = sq_place(L, path, &e, NULL);
	dimg_entry_clear(&e);
	return r;
}

static int sq_entry(struct sq_layer *L, struct archive_entry *ae)
{
	char *path;
	struct sq_node *parent;
	int r = sq_norm(L, archive_entry_pathname(ae), "path", &path);
	if (r < 0)
		return r;
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	const char *hardlink = archive_entry_hardlink(ae);
	if (strncmp(base, ".wh.", 4) == 0)
		r = sq_whiteout(L, path, base);
	else if ((r = sq_parent_of(L, path, &parent)) < 0)
		; /* refused: message set */
	else if (hardlink)
		r = sq_hardlink(L, path, hardlink);
	else if (archive_entry_filetype(ae) == AE_IFSOCK)
		r = 0; /* sockets are runtime objects: skipped, as the walk does */
	else if (archive_entry_filetype(ae) == AE_IFREG)
		r = sq_regular(L, path, ae);
	else
		r = sq_other(L, path, ae);
	free(path);
	return r;
}

/* ---- the layer pipeline ---- */

static void sq_progress(struct dimg_squash *s, int force)
{
	if (!s->progress || (!force && s->done - s->reported < SQ_PROGRESS_STEP))
		return;
	s->reported = s->done;
	s->progress(s->pctx, "squash", s->done, s->total);
}

/* Blob bytes for the decompressor, hashed (digest) as they pass. */
static la_ssize_t sq_read_blob(struct archive *a, void *ctx, const void **buf)
{
	struct sq_layer *L = ctx;
	size_t n = 0;
	if (L->src_eof)
		return 0;
	int r = L->src->read(L->src->ctx, buf, &n);
	if (r < 0) {
		sq_cb_fail(L, r, "reading the blob: %s", strerror(-r));
		archive_set_error(a, -r, "%s", L->cb_msg);
		return -1;
	}
	L->src_eof = n == 0;
	if (L->li->size != UINT64_MAX && n > L->li->size - L->csize) {
		sq_cb_fail(L, -EOVERFLOW, "blob larger than its declared %llu bytes",
		           (unsigned long long)L->li->size);
		archive_set_error(a, EOVERFLOW, "%s", L->cb_msg);
		return -1;
	}
	dimg_sha256_update(L->s->hc, *buf, n);
	L->csize += n;
	L->s->done += n;
	sq_progress(L->s, 0);
	return (la_ssize_t)n;
}

/* Tar stream bytes for the tar parser, hashed (diff_id) as they pass. */
static la_ssize_t sq_read_tar(struct archive *a, void *ctx, const void **buf)
{
	struct sq_layer *L = ctx;
	size_t n = 0;
	la_int64_t off;
	while (!L->raw_eof && n == 0) {
		int r = archive_read_data_block(L->raw, buf, &n, &off);
		if (r == ARCHIVE_EOF) {
			L->raw_eof = 1;
			n = 0;
		} else if (r != ARCHIVE_OK || off != (la_int64_t)L->usize) {
			const char *m = archive_error_string(L->raw);
			archive_set_error(
			    a, archive_errno(L->raw) > 0 ? archive_errno(L->raw) : EIO, "%s",
			    L->cb_err ? L->cb_msg
			    : m       ? m
			              : "corrupt compressed data");
			return -1;
		}
	}
	dimg_sha256_update(L->s->hu, *buf, n);
	L->usize += n;
	int r = L->s->rec ? dimg_tarsplit_feed(L->s->rec, *buf, n) : 0;
	if (r < 0) {
		sq_cb_fail(L, r, "recording the layer recipe: %s", strerror(-r));
		archive_set_error(a, -r, "%s", L->cb_msg);
		return -1;
	}
	return (la_ssize_t)n;
}

static int sq_open_raw(struct sq_layer *L)
{
	struct archive_entry *ae;
	L->raw = archive_read_new();
	if (!L->raw)
		return -ENOMEM;
	/* Built-in decoders only: no helper programs run on untrusted input. */
	archive_read_support_filter_gzip(L->raw);
	archive_read_support_filter_zstd(L->raw);
	archive_read_support_filter_xz(L->raw);
	archive_read_support_format_raw(L->raw);
	archive_read_support_format_empty(L->raw);
	if (archive_read_open(L->raw, L, NULL, sq_read_blob, NULL) != ARCHIVE_OK)
		return sq_archive_fail(L, L->raw, "opening the blob");
	int r = archive_read_next_header(L->raw, &ae);
	if (r == ARCHIVE_EOF) {
		L->raw_eof = 1;
		return 0;
	}
	return r == ARCHIVE_OK ? 0 : sq_archive_fail(L, L->raw, "opening the blob");
}

static int sq_open_tar(struct sq_layer *L)
{
	L->tar = archive_read_new();
	if (!L->tar)
		return -ENOMEM;
	archive_read_support_format_tar(L->tar);
	archive_read_support_format_empty(L->tar);
	if (archive_read_open(L->tar, L, NULL, sq_read_tar, NULL) != ARCHIVE_OK)
		return sq_archive_fail(L, L->tar, "not a tar archive");
	return 0;
}

static int sq_entries(struct sq_layer *L)
{
	struct archive_entry *ae;
	for (;;) {
		L->entry = NULL;
		int ar = archive_read_next_header(L->tar, &ae);
		if (ar == ARCHIVE_EOF)
			return 0;
		/* WARN: a name not convertible to the locale; the raw bytes are kept. */
		if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN)
			return sq_archive_fail(L, L->tar, "reading the tar");
		L->entry = archive_entry_pathname(ae);
		int r = sq_entry(L, ae);
		if (r < 0)
			return r;
	}
}

/* What the tar parser left unread (end padding, trailing bytes) still
 * belongs to the diff_id and the digest. */
static int sq_drain(struct sq_layer *L)
{
	const void *buf;
	while (!L->raw_eof)
		if (sq_read_tar(L->tar, L, &buf) < 0)
			return sq_archive_fail(L, L->tar, "reading the tar stream");
	while (!L->src_eof)
		if (sq_read_blob(L->raw, L, &buf) < 0)
			return sq_archive_fail(L, L->raw, "reading the blob");
	return 0;
}

static const char *sq_filter_name(struct archive *a)
{
	switch (archive_filter_code(a, 0)) {
	case ARCHIVE_FILTER_NONE:
		return "none";
	case ARCHIVE_FILTER_GZIP:
		return "gzip";
	case ARCHIVE_FILTER_ZSTD:
		return "zstd";
	case ARCHIVE_FILTER_XZ:
		return "xz";
	default:
		return "other";
	}
}

static int sq_verify(struct sq_layer *L)
{
	struct dimg_layer_info *li = L->li;
	char want[65], got[65];
	dimg_sha256_final(L->s->hc, li->got_digest);
	dimg_sha256_final(L->s->hu, li->got_diff_id);
	li->got_size = L->csize;
	if (li->size != UINT64_MAX && L->csize != li->size)
		return sq_fail(L, -EBADMSG, "blob is %llu bytes, manifest says %llu",
		               (unsigned long long)L->csize, (unsigned long long)li->size);
	if (li->has_digest && memcmp(li->digest, li->got_digest, 32) != 0) {
		dimg_hex32(li->got_digest, got);
		return sq_fail(L, -EBADMSG, "blob digest mismatch: content is sha256:%s", got);
	}
	if (li->has_diff_id && memcmp(li->diff_id, li->got_diff_id, 32) != 0) {
		dimg_hex32(li->diff_id, want);
		dimg_hex32(li->got_diff_id, got);
		return sq_fail(L, -EBADMSG,
		               "diff_id mismatch: config says sha256:%s, tar is sha256:%s", want,
		               got);
	}
	return 0;
}

/* A layer refused as corrupt may just have been damaged on its way: if
 * its bytes miss their digest, that is the message (the rest of the blob
 * is read for it, on this failure path only). */
static void sq_blame_digest(struct sq_layer *L)
{
	const void *buf;
	uint8_t got[32];
	char hex[65];
	if (!L->li->has_digest || L->cb_err || !L->raw)
		return;
	while (!L->src_eof)
		if (sq_read_blob(L->raw, L, &buf) < 0)
			return;
	dimg_sha256_final(L->s->hc, got);
	if (memcmp(got, L->li->digest, 32) == 0)
		return;
	dimg_err_clear(L->err); /* this message replaces the layer's own */
	L->entry = NULL;
	dimg_hex32(got, hex);
	sq_fail(L, -EBADMSG, "blob digest mismatch: content is sha256:%s", hex);
}

int dimg_squash_layer(struct dimg_squash *s, struct dimg_layer_info *li,
                      const struct dimg_layer_src *src, struct dimg_err *err)
{
	struct sq_layer L = {.s = s, .li = li, .src = src, .err = err};
	if (s->spent)
		return -EINVAL;
	s->layer++;
	uint8_t junk[32]; /* restart both hashes: an earlier layer may have failed */
	dimg_sha256_final(s->hc, junk);
	dimg_sha256_final(s->hu, junk);
	int r = sq_open_raw(&L);
	if (r == 0)
		r = sq_open_tar(&L);
	if (r == 0)
		r = sq_entries(&L);
	L.entry = NULL;
	if (r == 0)
		r = sq_drain(&L);
	if (r == 0) {
		li->filter = sq_filter_name(L.raw);
		r = sq_verify(&L);
	} else if (r == -EBADMSG) {
		sq_blame_digest(&L);
	}
	archive_read_free(L.tar);
	archive_read_free(L.raw);
	sq_progress(s, 1);
	return r;
}

/* ---- setup and result ---- */

void dimg_squash_record(struct dimg_squash *s, struct dimg_tarsplit *t)
{
	s->rec = t;
}

int dimg_squash_new(struct dimg_squash **out, struct dimg_cas *cas, uint64_t total,
                    dimg_progress_fn progress, void *pctx)
{
	struct dimg_squash *s = calloc(1, sizeof(*s));
	int r = -ENOMEM;
	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->total = total;
	s->progress = progress;
	s->pctx = pctx;
	s->nbuckets = 1024;
	s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
	if (getrandom(&s->seed, sizeof(s->seed), 0) != (ssize_t)sizeof(s->seed))
		s->seed = (uint64_t)(uintptr_t)s ^ 0x9e3779b97f4a7c15ull;
	if (!s->buckets || (r = dimg_cas_writer_new(&s->w, cas)) < 0 ||
	    (r = dimg_sha256_new(&s->hc)) < 0 || (r = dimg_sha256_new(&s->hu)) < 0)
		goto fail;
	s->root = sq_node_new("", 0, DIMG_TYPE_DIR, 0);
	if (!s->root)
		goto fail;
	s->root->e.mode = SQ_IMPLIED_DIR_MODE;
	if ((r = sq_link(s, s->root, NULL)) < 0) {
		sq_node_free(s->root);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	dimg_squash_free(s);
	return r;
}

void dimg_squash_free(struct dimg_squash *s)
{
	if (!s)
		return;
	for (size_t i = 0; s->buckets && i < s->nbuckets; i++) {
		for (struct sq_node *x = s->buckets[i], *nx; x; x = nx) {
			nx = x->hnext;
			sq_node_free(x);
		}
	}
	free(s->buckets);
	dimg_cas_writer_free(s->w);
	dimg_sha256_free(s->hc);
	dimg_sha256_free(s->hu);
	free(s);
}

static int sq_node_cmp(const void *a, const void *b)
{
	const struct sq_node *x = *(const struct sq_node *const *)a;
	const struct sq_node *y = *(const struct sq_node *const *)b;
	return strcmp(x->e.path, y->e.path);
}

/* Moves node x's entry into t: regular files take their inode's
 * metadata, or become HARDLINKs of the group's first path in sort order. */
static int sq_emit(struct dimg_tree *t, struct sq_node *x)
{
	struct sq_inode *ino = x->ino;
	if (!ino)
		return dimg_tree_append_move(t, &x->e);
	if (ino->leader) {
		struct dimg_entry h = {.path = x->e.path, .type = DIMG_TYPE_HARDLINK};
		h.link = strdup(ino->leader);
		if (!h.link)
			return -ENOMEM;
		x->e.path = NULL;
		return dimg_tree_append_move(t, &h);
	}
	struct dimg_entry e = ino->meta;
	memset(&ino->meta, 0, sizeof(ino->meta));
	e.path = x->e.path;
	x->e.path = NULL;
	ino->leader = e.path; /* owned by t from here on; strings never move */
	return dimg_tree_append_move(t, &e);
}

int dimg_squash_finish(struct dimg_squash *s, struct dimg_tree **out, struct dimg_err *err)
{
	struct dimg_tree *t = NULL;
	struct dimg_err bad = {0};
	*out = NULL;
	if (s->spent)
		return -EINVAL;
	s->spent = 1;
	struct sq_node **v = malloc((s->count ? s->count : 1) * sizeof(*v));
	int r = v ? dimg_tree_new(&t) : -ENOMEM;
	if (r < 0)
		goto out;
	size_t n = 0;
	for (size_t i = 0; i < s->nbuckets; i++)
		for (struct sq_node *x = s->buckets[i]; x; x = x->hnext)
			v[n++] = x;
	qsort(v, n, sizeof(*v), sq_node_cmp);
	for (size_t i = 0; i < n && r == 0; i++)
		r = sq_emit(t, v[i]);
	if (r == 0 && (r = dimg_tree_validate(t, &bad)) < 0)
		dimg_err_set(err, r, NULL, "squashed tree is invalid at '%s'", bad.what);
	if (r == 0) {
		*out = t;
		t = NULL;
	}
out:
	free(v);
	dimg_tree_free(t);
	return r;
}
