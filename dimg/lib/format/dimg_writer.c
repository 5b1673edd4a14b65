/* Streaming .dimg writer: header first, blobs as they come, then the index
 * of the target tree encoded against the base tree, then the trailer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dimg/dimg.h"
#include "dimg/hash.h"
#include "endian-internal.h"
#include "format-internal.h"
#include "layout-internal.h"

struct dimg_writer {
	int fd;
	uint64_t off;
	uint64_t dict_len, dict_xxh3;
};

_Static_assert(sizeof(DIMG_MAGIC) - 1 == 8, "magic is 8 bytes");
_Static_assert(sizeof(DIMG_TRAILER_MAGIC) - 1 == 8, "trailer magic is 8 bytes");

static int write_all(struct dimg_writer *w, const void *p, size_t n)
{
	int fd = w->fd;
	int r = dimg_write_fd(&fd, p, n);
	if (r < 0)
		return r;
	w->off += n;
	return 0;
}

int dimg_writer_new(struct dimg_writer **out, int fd, const uint8_t base_id[32],
                    const uint8_t target_id[32])
{
	uint8_t h[DIMG_HEADER_SIZE];
	struct dimg_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = fd;
	dimg_header_encode(h, base_id, target_id);
	int r = write_all(w, h, sizeof(h));
	if (r < 0) {
		free(w);
		return r;
	}
	*out = w;
	return 0;
}

void dimg_writer_free(struct dimg_writer *w)
{
	free(w);
}

uint64_t dimg_writer_offset(const struct dimg_writer *w)
{
	return w->off;
}

int dimg_writer_add_blob(struct dimg_writer *w, const void *p, size_t n, uint64_t *off,
                         uint64_t *xxh3)
{
	*off = w->off;
	*xxh3 = dimg_xxh3(p, n);
	return write_all(w, p, n);
}

int dimg_writer_add_dict(struct dimg_writer *w, const void *p, size_t n)
{
	if (w->off != DIMG_HEADER_SIZE || w->dict_len || n < 8 || n > DIMG_DICT_MAX)
		return -EINVAL;
	w->dict_len = n;
	w->dict_xxh3 = dimg_xxh3(p, n);
	return write_all(w, p, n);
}

static size_t slen(const char *s)
{
	return s ? strlen(s) : 0;
}

/* SAME/PATCH sources equal to the entry's own path are stored as "". */
static const char *stored_src(const struct dimg_entry *e)
{
	if (!e->src || strcmp(e->src, e->path) == 0)
		return NULL;
	return e->src;
}

static int put_bytes(struct dimg_buf *b, const void *p, size_t n)
{
	return n ? dimg_buf_append(b, p, n) : 0;
}

static int put_entry(struct dimg_buf *b, const struct dimg_entry *e)
{
	uint8_t f[1 + DIMG_REC_FIXED] = {0};
	const char *src = stored_src(e);
	uint8_t *p = f + 1;
	f[0] = DIMG_OP_ENTRY;
	struct dimg_rec_lens lens = {(uint32_t)slen(e->path), (uint32_t)slen(e->link),
	                             (uint32_t)slen(src), e->nxattrs};
	dimg_rec_encode(p, e, &lens);
	int r = put_bytes(b, f, sizeof(f));
	if (!r && e->type == DIMG_TYPE_REG && e->payload != DIMG_PAYLOAD_SAME)
		r = put_bytes(b, e->sha256, 32);
	if (!r)
		r = put_bytes(b, e->path, slen(e->path));
	if (!r)
		r = put_bytes(b, e->link, slen(e->link));
	if (!r)
		r = put_bytes(b, src, slen(src));
	for (uint32_t i = 0; !r && i < e->nxattrs; i++) {
		uint8_t x[DIMG_XATTR_HDR];
		le32enc(x, (uint32_t)strlen(e->xattrs[i].name));
		le32enc(x + 4, e->xattrs[i].value_len);
		r = put_bytes(b, x, 8);
		if (!r)
			r = put_bytes(b, e->xattrs[i].name, strlen(e->xattrs[i].name));
		if (!r)
			r = put_bytes(b, e->xattrs[i].value, e->xattrs[i].value_len);
	}
	return r;
}

/* Pending run of KEEP or SKIP ops, flushed when the kind changes. */
struct run {
	uint8_t op;
	uint64_t count;
};

static int flush_run(struct dimg_buf *b, struct run *run)
{
	while (run->count) {
		uint8_t o[5];
		uint32_t n = run->count > UINT32_MAX ? UINT32_MAX : (uint32_t)run->count;
		o[0] = run->op;
		le32enc(o + 1, n);
		int r = put_bytes(b, o, 5);
		if (r < 0)
			return r;
		run->count -= n;
	}
	return 0;
}

static int add_run(struct dimg_buf *b, struct run *run, uint8_t op)
{
	if (run->count && run->op != op) {
		int r = flush_run(b, run);
		if (r < 0)
			return r;
	}
	run->op = op;
	run->count++;
	return 0;
}

int dimg_entry_kept(const struct dimg_entry *b, const struct dimg_entry *t)
{
	if (!dimg_entry_meta_equal(b, t))
		return 0;
	if (t->type != DIMG_TYPE_REG)
		return 1;
	return t->payload == DIMG_PAYLOAD_EMPTY ||
	       (t->payload == DIMG_PAYLOAD_SAME && stored_src(t) == NULL);
}

static int entry_op(struct dimg_buf *b, struct run *run, const struct dimg_entry *e)
{
	int r = flush_run(b, run);
	return r < 0 ? r : put_entry(b, e);
}

/* Merges the two sorted path lists into KEEP/SKIP/ENTRY ops. */
static int encode_index(struct dimg_buf *b, const struct dimg_tree *base,
                        const struct dimg_tree *target)
{
	struct run run = {0, 0};
	size_t i = 0, j = 0;
	int r = 0;
	while (!r && (i < base->n || j < target->n)) {
		int c;
		if (i < base->n && j < target->n)
			c = strcmp(base->v[i].path, target->v[j].path);
		else
			c = i < base->n ? -1 : 1;
		if (c < 0) {
			r = add_run(b, &run, DIMG_OP_SKIP);
			i++;
		} else if (c > 0) {
			r = entry_op(b, &run, &target->v[j++]);
		} else if (dimg_entry_kept(&base->v[i], &target->v[j])) {
			r = add_run(b, &run, DIMG_OP_KEEP);
			i++, j++;
		} else {
			r = add_run(b, &run, DIMG_OP_SKIP);
			if (!r)
				r = entry_op(b, &run, &target->v[j]);
			i++, j++;
		}
	}
	if (!r)
		r = flush_run(b, &run);
	if (!r) {
		uint8_t end = DIMG_OP_END;
		r = put_bytes(b, &end, 1);
	}
	return r;
}

/* Compresses the raw index and writes it and the trailer. */
static int write_index(struct dimg_writer *w, const struct dimg_buf *raw, uint64_t entries)
{
	struct dimg_buf z = {0};
	uint8_t t[DIMG_TRAILER_SIZE] = {0};
	int r = raw->len > DIMG_INDEX_MAX ? -EFBIG : 0;
	if (!r)
		r = dimg_zstd_encode(raw->data, raw->len, 19, &z);
	if (r < 0)
		goto out;
	struct dimg_trailer tr = {w->off,  z.len,       raw->len,    dimg_xxh3(z.data, z.len),
	                          entries, w->dict_len, w->dict_xxh3};
	dimg_trailer_encode(t, &tr);
	r = write_all(w, z.data, z.len);
	if (!r)
		r = write_all(w, t, sizeof(t));
out:
	dimg_buf_free(&z);
	return r;
}

int dimg_writer_finish(struct dimg_writer *w, const struct dimg_tree *base,
                       const struct dimg_tree *target)
{
	struct dimg_buf raw = {0};
	int r = encode_index(&raw, base, target);
	if (!r)
		r = write_index(w, &raw, target->n);
	dimg_buf_free(&raw);
	return r;
}

/* One op of a caller-made index; *next is the explicit entry expected. */
static int given_op(struct dimg_buf *b, struct run *run, const struct dimg_index_op *o,
                    const struct dimg_tree *x, size_t *next, uint64_t *made)
{
	if (o->kind == DIMG_INDEX_ENTRY) {
		if (o->count != *next || *next >= x->n)
			return -EINVAL;
		(*next)++;
		(*made)++;
		return entry_op(b, run, &x->v[o->count]);
	}
	if ((o->kind != DIMG_INDEX_KEEP && o->kind != DIMG_INDEX_SKIP) || o->count == 0)
		return -EINVAL;
	if (o->kind == DIMG_INDEX_KEEP)
		*made += o->count;
	if (run->count && run->op != o->kind) {
		int r = flush_run(b, run);
		if (r < 0)
			return r;
	}
	run->op = o->kind;
	run->count += o->count;
	return 0;
}

int dimg_writer_finish_ops(struct dimg_writer *w, const struct dimg_index_op *ops, size_t nops,
                           const struct dimg_tree *explicit_, uint64_t entries)
{
	struct dimg_buf raw = {0};
	struct run run = {0, 0};
	size_t next = 0;
	uint64_t made = 0;
	uint8_t end = DIMG_OP_END;
	int r = 0;
	for (size_t k = 0; !r && k < nops; k++)
		r = given_op(&raw, &run, &ops[k], explicit_, &next, &made);
	if (!r && (next != explicit_->n || made != entries))
		r = -EINVAL;
	if (!r)
		r = flush_run(&raw, &run);
	if (!r)
		r = put_bytes(&raw, &end, 1);
	if (!r)
		r = write_index(w, &raw, entries);
	dimg_buf_free(&raw);
	return r;
}
