/* .dimg reader: loads the file, checks header, trailer and index, resolves
 * the complete target tree against a base tree, and rebuilds files. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dimg/dimg.h"
#include "dimg/fileio.h"
#include "dimg/hash.h"
#include "endian-internal.h"
#include "format-internal.h"
#include "layout-internal.h"
#include "zstd-internal.h"

_Static_assert((int)DIMG_INDEX_KEEP == (int)DIMG_OP_KEEP &&
                   (int)DIMG_INDEX_SKIP == (int)DIMG_OP_SKIP &&
                   (int)DIMG_INDEX_ENTRY == (int)DIMG_OP_ENTRY,
               "public op kinds are the on-disk op bytes");

struct dimg_reader {
	const uint8_t *map;
	size_t len;
	int mapped; /* map came from dimg_file_load (else borrowed memory) */
	uint8_t base_id[32], target_id[32];
	uint64_t index_off, index_len, index_raw_len, entry_count;
	uint64_t dict_len, blobs_off; /* blobs start after the dictionary */
	ZSTD_DDict *ddict;            /* the delta's dictionary, or NULL */
	struct dimg_index_op *ops;
	size_t nops;
	struct dimg_tree *explicit_;
	struct dimg_index_stats st;
};

/* Bounded cursor over the decompressed index. */
struct cur {
	const uint8_t *p;
	size_t left;
};

static int cur_take(struct cur *c, size_t n, const uint8_t **out)
{
	if (n > c->left)
		return -EBADMSG;
	*out = c->p;
	c->p += n;
	c->left -= n;
	return 0;
}

static int cur_str(struct cur *c, uint32_t n, char **out)
{
	const uint8_t *p;
	*out = NULL;
	if (n == 0)
		return 0;
	int r = cur_take(c, n, &p);
	if (r < 0)
		return r;
	if (memchr(p, '\0', n))
		return -EBADMSG;
	*out = strndup((const char *)p, n);
	return *out ? 0 : -ENOMEM;
}

static int read_xattrs(struct cur *c, struct dimg_entry *e, uint32_t n)
{
	if (n > c->left / 8)
		return -EBADMSG;
	e->xattrs = calloc(n ? n : 1, sizeof(*e->xattrs));
	if (!e->xattrs)
		return -ENOMEM;
	e->nxattrs = n;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *h = NULL, *v = NULL;
		struct dimg_xattr *x = &e->xattrs[i];
		int r = cur_take(c, DIMG_XATTR_HDR, &h);
		if (r < 0)
			return r;
		uint32_t nl = le32dec(h), vl = le32dec(h + 4);
		if (nl == 0 || nl > 255 || vl > (1u << 24))
			return -EBADMSG;
		r = cur_str(c, nl, &x->name);
		if (!r)
			r = cur_take(c, vl, &v);
		if (r < 0)
			return r;
		x->value = malloc(vl ? vl : 1);
		if (!x->value)
			return -ENOMEM;
		memcpy(x->value, v, vl);
		x->value_len = vl;
	}
	return 0;
}

/* Field rules that do not need the base (docs/FORMAT.md "Entry record"). */
static int check_payload(const struct dimg_reader *rd, const struct dimg_entry *e, uint32_t srcl)
{
	int reg = e->type == DIMG_TYPE_REG;
	int blob = e->payload == DIMG_PAYLOAD_FULL || e->payload == DIMG_PAYLOAD_PATCH;
	if (reg != (e->payload != DIMG_PAYLOAD_NONE) || e->payload > DIMG_PAYLOAD_PATCH)
		return -EBADMSG;
	if ((e->payload == DIMG_PAYLOAD_PATCH) != (e->codec != DIMG_CODEC_NONE))
		return -EBADMSG;
	if (e->codec > DIMG_CODEC_CHAIN)
		return -EBADMSG;
	if (srcl && e->payload != DIMG_PAYLOAD_SAME && e->payload != DIMG_PAYLOAD_PATCH)
		return -EBADMSG;
	if (e->payload == DIMG_PAYLOAD_EMPTY && e->size != 0)
		return -EBADMSG;
	/* A dictionary frame needs the file's dictionary: refused up front. */
	if ((e->flags & ~DIMG_ENTRY_ZDICT) ||
	    (e->flags && (e->payload != DIMG_PAYLOAD_FULL || !rd->ddict)))
		return -EBADMSG;
	if (!blob)
		return (e->blob_off | e->blob_len | e->blob_xxh3) ? -EBADMSG : 0;
	if (e->blob_off < rd->blobs_off || e->blob_off > rd->index_off ||
	    e->blob_len > rd->index_off - e->blob_off)
		return -EOVERFLOW;
	return 0;
}

static int read_entry(const struct dimg_reader *rd, struct cur *c, struct dimg_entry *e)
{
	const uint8_t *p, *sha;
	int r = cur_take(c, DIMG_REC_FIXED, &p);
	if (r < 0)
		return r;
	memset(e, 0, sizeof(*e));
	struct dimg_rec_lens lens;
	dimg_rec_decode(e, &lens, p);
	uint32_t pl = lens.path, ll = lens.link, sl = lens.src, nx = lens.nxattrs;
	if (e->mtime_nsec >= 1000000000u || pl >= 4096 || ll >= 4096 || sl >= 4096)
		return -EBADMSG;
	r = check_payload(rd, e, sl);
	if (r < 0)
		return r;
	if (e->type == DIMG_TYPE_REG && e->payload != DIMG_PAYLOAD_SAME) {
		if ((r = cur_take(c, 32, &sha)) < 0)
			return r;
		memcpy(e->sha256, sha, 32);
	}
	/* The root's path is empty; every other string field must be set. */
	if (pl) {
		if ((r = cur_str(c, pl, &e->path)) < 0)
			return r;
	} else if (!(e->path = strdup(""))) {
		return -ENOMEM;
	}
	if ((r = cur_str(c, ll, &e->link)) < 0 || (r = cur_str(c, sl, &e->src)) < 0)
		return r;
	return read_xattrs(c, e, nx);
}

static int push_op(struct dimg_reader *rd, size_t *cap, uint8_t kind, uint32_t count)
{
	if (rd->nops == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct dimg_index_op *v = realloc(rd->ops, ncap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		rd->ops = v;
		*cap = ncap;
	}
	rd->ops[rd->nops].kind = kind;
	rd->ops[rd->nops].count = count;
	rd->nops++;
	return 0;
}

static int parse_entry_op(struct dimg_reader *rd, struct cur *c, size_t *cap)
{
	struct dimg_entry e;
	int r = read_entry(rd, c, &e);
	struct dimg_tree *x = rd->explicit_;
	if (!r && x->n && strcmp(x->v[x->n - 1].path, e.path) >= 0)
		r = -EBADMSG;
	if (!r && x->n >= UINT32_MAX)
		r = -EOVERFLOW;
	if (!r)
		r = push_op(rd, cap, DIMG_OP_ENTRY, (uint32_t)x->n);
	if (!r)
		r = dimg_tree_append_move(x, &e);
	if (r < 0)
		dimg_entry_clear(&e);
	return r;
}

static int parse_index(struct dimg_reader *rd, const uint8_t *raw, size_t len)
{
	struct cur c = {raw, len};
	size_t cap = 0;
	for (;;) {
		const uint8_t *p;
		int r = cur_take(&c, 1, &p);
		if (r < 0)
			return r;
		uint8_t op = p[0];
		if (op == DIMG_OP_END)
			return c.left ? -EBADMSG : 0;
		if (op == DIMG_OP_ENTRY) {
			r = parse_entry_op(rd, &c, &cap);
			rd->st.explicit_++;
			if (!r && (rd->explicit_->v[rd->explicit_->n - 1].flags & DIMG_ENTRY_ZDICT))
				rd->st.dict_blobs++;
		} else if (op == DIMG_OP_KEEP || op == DIMG_OP_SKIP) {
			if ((r = cur_take(&c, 4, &p)) < 0)
				return r;
			uint32_t n = le32dec(p);
			if (n == 0)
				return -EBADMSG;
			*(op == DIMG_OP_KEEP ? &rd->st.kept : &rd->st.dropped) += n;
			r = push_op(rd, &cap, op, n);
		} else {
			return -EBADMSG;
		}
		if (r < 0)
			return r;
	}
}

/* Sink into a fixed-size buffer: more bytes than announced is corruption. */
struct fixed_sink {
	uint8_t *p;
	size_t len, cap;
};

static int fixed_write(void *ctx, const void *p, size_t n)
{
	struct fixed_sink *s = ctx;
	if (n > s->cap - s->len)
		return -EBADMSG;
	memcpy(s->p + s->len, p, n);
	s->len += n;
	return 0;
}

/* The shared dictionary: the first blob, its length and XXH3-64 in the
 * trailer; parsed once (zstd's own format, entropy tables checked) into a
 * DDict that every frame needing it shares (read-only, thread-safe). */
static int load_dict(struct dimg_reader *rd, uint64_t len, uint64_t xxh3)
{
	rd->blobs_off = DIMG_HEADER_SIZE;
	if (len == 0)
		return xxh3 ? -EBADMSG : 0;
	if (len > DIMG_DICT_MAX || len > rd->index_off - DIMG_HEADER_SIZE)
		return -EOVERFLOW;
	const uint8_t *p = rd->map + DIMG_HEADER_SIZE;
	if (dimg_xxh3(p, len) != xxh3)
		return -EBADMSG;
	/* Only zstd's dictionary format (magic, id, entropy tables, content):
	 * zstd would take other bytes as raw content. */
	if (len < 8 || le32dec(p) != ZSTD_MAGIC_DICTIONARY)
		return -EBADMSG;
	rd->ddict = ZSTD_createDDict(p, len);
	if (!rd->ddict)
		return -EBADMSG;
	rd->dict_len = len;
	rd->blobs_off += len;
	return 0;
}

static int check_header(struct dimg_reader *rd)
{
	struct dimg_header h;
	struct dimg_trailer t;
	if (rd->len < DIMG_HEADER_SIZE + DIMG_TRAILER_SIZE)
		return -EBADMSG;
	int r = dimg_header_decode(&h, rd->map);
	if (r == 0)
		r = dimg_trailer_decode(&t, rd->map + rd->len - DIMG_TRAILER_SIZE);
	if (r < 0)
		return r;
	memcpy(rd->base_id, h.base_id, 32);
	memcpy(rd->target_id, h.target_id, 32);
	rd->index_off = t.index_off;
	rd->index_len = t.index_len;
	rd->index_raw_len = t.index_raw_len;
	rd->entry_count = t.entries;
	uint64_t end = rd->len - DIMG_TRAILER_SIZE;
	if (rd->index_off < DIMG_HEADER_SIZE || rd->index_off > end ||
	    rd->index_len != end - rd->index_off)
		return -EOVERFLOW;
	if (rd->index_raw_len > DIMG_INDEX_MAX || rd->index_raw_len == 0)
		return -EOVERFLOW;
	if (dimg_xxh3(rd->map + rd->index_off, rd->index_len) != t.index_xxh3)
		return -EBADMSG;
	return load_dict(rd, t.dict_len, t.dict_xxh3);
}

static int load(struct dimg_reader *rd)
{
	int r = check_header(rd);
	if (r < 0)
		return r;
	struct fixed_sink s = {malloc(rd->index_raw_len), 0, rd->index_raw_len};
	uint64_t n = 0;
	if (!s.p)
		return -ENOMEM;
	r = dimg_zstd_decode(rd->map + rd->index_off, rd->index_len, fixed_write, &s, &n);
	if (r < 0 && r != -ENOMEM)
		r = -EBADMSG;
	if (!r && n != rd->index_raw_len)
		r = -EBADMSG;
	if (!r)
		r = dimg_tree_new(&rd->explicit_);
	if (!r)
		r = parse_index(rd, s.p, s.len);
	free(s.p);
	if (r < 0)
		return r;
	if (rd->st.kept + rd->st.explicit_ != rd->entry_count)
		return -EBADMSG;
	rd->st.entries = rd->entry_count;
	rd->st.index_len = rd->index_len;
	rd->st.index_raw_len = rd->index_raw_len;
	rd->st.blobs_len = rd->index_off - rd->blobs_off;
	rd->st.dict_len = rd->dict_len;
	rd->st.file_len = rd->len;
	return 0;
}

int dimg_reader_open_mem(struct dimg_reader **out, const uint8_t *buf, size_t len)
{
	struct dimg_reader *rd = calloc(1, sizeof(*rd));
	if (!rd)
		return -ENOMEM;
	rd->map = buf;
	rd->len = len;
	int r = load(rd);
	if (r < 0) {
		dimg_reader_free(rd);
		return r;
	}
	*out = rd;
	return 0;
}

int dimg_reader_open(struct dimg_reader **out, const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = S_ISREG(st.st_mode) ? errno : EINVAL;
		close(fd);
		return -e;
	}
	if ((uint64_t)st.st_size < DIMG_HEADER_SIZE + DIMG_TRAILER_SIZE) {
		close(fd);
		return -EBADMSG;
	}
	const uint8_t *m;
	size_t len;
	int r = dimg_file_load(fd, &m, &len); /* a sparse .dimg on tmpfs: no SIGBUS */
	close(fd);
	if (r < 0)
		return r;
	r = dimg_reader_open_mem(out, m, len);
	if (r < 0) {
		dimg_file_unload(m, len);
		return r;
	}
	(*out)->mapped = 1;
	return 0;
}

void dimg_reader_free(struct dimg_reader *r)
{
	if (!r)
		return;
	if (r->mapped)
		dimg_file_unload(r->map, r->len);
	dimg_tree_free(r->explicit_);
	ZSTD_freeDDict(r->ddict);
	free(r->ops);
	free(r);
}

const uint8_t *dimg_reader_base_id(const struct dimg_reader *r)
{
	return r->base_id;
}

const uint8_t *dimg_reader_target_id(const struct dimg_reader *r)
{
	return r->target_id;
}

void dimg_reader_stats(const struct dimg_reader *r, struct dimg_index_stats *st)
{
	*st = r->st;
}

const struct dimg_tree *dimg_reader_explicit(const struct dimg_reader *r)
{
	return r->explicit_;
}

const struct dimg_index_op *dimg_reader_ops(const struct dimg_reader *r, size_t *n)
{
	*n = r->nops;
	return r->ops;
}

/* A SAME or PATCH source must be a regular file of the base. */
static const struct dimg_entry *base_source(const struct dimg_tree *base,
                                            const struct dimg_entry *e)
{
	const struct dimg_entry *b = dimg_tree_find(base, e->src ? e->src : e->path);
	return b && b->type == DIMG_TYPE_REG ? b : NULL;
}

static int resolve_explicit(struct dimg_tree *out, const struct dimg_tree *base,
                            const struct dimg_entry *x)
{
	struct dimg_entry e;
	int r = dimg_entry_copy(&e, x);
	if (r < 0)
		return r;
	if (e.payload == DIMG_PAYLOAD_SAME || e.payload == DIMG_PAYLOAD_PATCH) {
		const struct dimg_entry *b = base_source(base, &e);
		if (!b || (e.payload == DIMG_PAYLOAD_SAME && b->size != e.size)) {
			dimg_entry_clear(&e);
			return -EBADMSG;
		}
		if (e.payload == DIMG_PAYLOAD_SAME)
			memcpy(e.sha256, b->sha256, 32);
	}
	r = dimg_tree_append_move(out, &e);
	if (r < 0)
		dimg_entry_clear(&e);
	return r;
}

static int resolve_keep(struct dimg_tree *out, const struct dimg_entry *b)
{
	int r = dimg_tree_append(out, b);
	if (r < 0)
		return r;
	struct dimg_entry *e = &out->v[out->n - 1];
	free(e->src);
	e->src = NULL;
	e->codec = e->flags = 0;
	e->blob_off = e->blob_len = e->blob_xxh3 = 0;
	e->payload = e->type == DIMG_TYPE_REG ? DIMG_PAYLOAD_SAME : DIMG_PAYLOAD_NONE;
	return 0;
}

static int apply_ops(const struct dimg_reader *rd, const struct dimg_tree *base,
                     struct dimg_tree *out)
{
	size_t i = 0;
	for (size_t k = 0; k < rd->nops; k++) {
		const struct dimg_index_op *o = &rd->ops[k];
		int r = 0;
		if (o->kind == DIMG_OP_ENTRY) {
			r = resolve_explicit(out, base, &rd->explicit_->v[o->count]);
		} else if (o->count > base->n - i) {
			return -EBADMSG;
		} else if (o->kind == DIMG_OP_SKIP) {
			i += o->count;
		} else {
			for (uint32_t n = 0; !r && n < o->count; n++)
				r = resolve_keep(out, &base->v[i++]);
		}
		if (r < 0)
			return r;
	}
	return i == base->n ? 0 : -EBADMSG;
}

/* The checks that need no hashes: every run and source fits the base, the
 * entry count matches and the result is a valid tree. */
int dimg_reader_resolve_unverified(const struct dimg_reader *rd, const struct dimg_tree *base,
                                   struct dimg_tree **out)
{
	struct dimg_tree *t = NULL;
	int r = dimg_tree_new(&t);
	if (r < 0)
		return r;
	r = apply_ops(rd, base, t);
	if (!r && (t->n != rd->entry_count || dimg_tree_validate(t, NULL) < 0))
		r = -EBADMSG;
	if (r < 0) {
		dimg_tree_free(t);
		return r;
	}
	*out = t;
	return 0;
}

int dimg_reader_resolve(const struct dimg_reader *rd, const struct dimg_tree *base,
                        struct dimg_tree **out)
{
	uint8_t id[32];
	struct dimg_tree *t = NULL;
	int r = dimg_tree_id(base, id);
	if (r < 0)
		return r;
	if (memcmp(id, rd->base_id, 32) != 0)
		return -EXDEV;
	if ((r = dimg_reader_resolve_unverified(rd, base, &t)) < 0)
		return r;
	r = dimg_tree_id(t, id);
	if (!r && memcmp(id, rd->target_id, 32) != 0)
		r = -EBADMSG;
	if (r < 0) {
		dimg_tree_free(t);
		return r;
	}
	*out = t;
	return 0;
}

int dimg_reader_blob(const struct dimg_reader *r, const struct dimg_entry *e, const uint8_t **p,
                     size_t *len)
{
	if (e->payload != DIMG_PAYLOAD_FULL && e->payload != DIMG_PAYLOAD_PATCH)
		return -EINVAL;
	if (e->blob_off < r->blobs_off || e->blob_off > r->index_off ||
	    e->blob_len > r->index_off - e->blob_off)
		return -EOVERFLOW;
	*p = r->map + e->blob_off;
	*len = (size_t)e->blob_len;
	if (dimg_xxh3(*p, *len) != e->blob_xxh3)
		return -EBADMSG;
	return 0;
}

void dimg_reader_dict(const struct dimg_reader *r, const uint8_t **p, size_t *len)
{
	*p = r->ddict ? r->map + DIMG_HEADER_SIZE : NULL;
	*len = r->ddict ? (size_t)r->dict_len : 0;
}

int dimg_reader_decode_dict(const struct dimg_reader *r, const uint8_t *blob, size_t len,
                            dimg_write_fn sink, void *sink_ctx)
{
	uint64_t n;
	if (!r->ddict)
		return -EBADMSG; /* needs a dictionary this delta does not have */
	return dimg_zstd_decode_ddict(blob, len, r->ddict, sink, sink_ctx, &n);
}

int dimg_reader_decode_full(const struct dimg_reader *r, const struct dimg_entry *e,
                            dimg_write_fn sink, void *sink_ctx)
{
	const uint8_t *blob;
	size_t len;
	uint64_t n;
	int rc = dimg_reader_blob(r, e, &blob, &len);
	if (rc < 0)
		return rc;
	if (e->flags & ~DIMG_ENTRY_ZDICT)
		return -EBADMSG;
	if (!(e->flags & DIMG_ENTRY_ZDICT))
		return dimg_zstd_decode(blob, len, sink, sink_ctx, &n);
	return dimg_reader_decode_dict(r, blob, len, sink, sink_ctx);
}
