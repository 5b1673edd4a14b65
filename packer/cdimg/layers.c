/* Layer recipe blobs: written from the target image's recorded recipes
 * (contents no tree holds embedded), read back as each layer's exact tar
 * bytes, streaming, contents from the base store, the target tree or the
 * blob itself. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "dimg/hash.h"
#include "layers-internal.h"
#include "layers.h"

#define L_MAGIC      "DI3LAYRS"
#define L_HEAD       16u /* magic, u32 version, u32 layers */
#define L_LAYER_HEAD 36u /* u8 kind, u8 comp, u16 0, diff_id */
#define L_BUF        (64u << 10)
#define L_MAX_LAYERS 4096u

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* Reads the rest of fd into sink in L_BUF pieces: exactly size bytes whose
 * SHA-256 is sha256, else -EBADMSG. */
static int stream_fd(int fd, uint64_t size, const uint8_t sha256[32], uint8_t *buf,
                     dimg_write_fn sink, void *sink_ctx)
{
	struct dimg_sha256 *h;
	uint8_t got[32];
	uint64_t left = size;
	int r = dimg_sha256_new(&h);
	while (r == 0 && left) {
		ssize_t n = read(fd, buf, left < L_BUF ? left : L_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EBADMSG;
			break;
		}
		dimg_sha256_update(h, buf, (size_t)n);
		left -= (uint64_t)n;
		r = sink(sink_ctx, buf, (size_t)n);
	}
	if (r == 0) {
		dimg_sha256_final(h, got);
		r = memcmp(got, sha256, 32) ? -EBADMSG : 0;
	}
	dimg_sha256_free(h);
	return r;
}

/* The original blob's compression; one this table does not name is
 * "other", never taken for another. */
static uint8_t comp_code(const char *filter)
{
	if (!filter || !strcmp(filter, "none"))
		return LAYERS_COMP_NONE;
	if (!strcmp(filter, "gzip"))
		return LAYERS_COMP_GZIP;
	if (!strcmp(filter, "zstd"))
		return LAYERS_COMP_ZSTD;
	if (!strcmp(filter, "xz"))
		return LAYERS_COMP_XZ;
	return LAYERS_COMP_OTHER;
}

/* ================================================================ writer */

/* The blob is written plain to a temporary file first, then compressed
 * with its size known: zstd then sizes its tables to the input (a level 19
 * stream of unknown size would take ~100 MiB). */
struct zout {
	ZSTD_CCtx *z;
	int fd;
	FILE *plain;
	uint64_t plain_size, size;
	uint8_t in[L_BUF], out[L_BUF];
};

static int zout_drain(struct zout *o, ZSTD_inBuffer *in, ZSTD_EndDirective end)
{
	size_t left;
	do {
		ZSTD_outBuffer ob = {o->out, sizeof(o->out), 0};
		left = ZSTD_compressStream2(o->z, &ob, in, end);
		if (ZSTD_isError(left))
			return -EIO;
		for (size_t done = 0; done < ob.pos;) {
			ssize_t w = write(o->fd, o->out + done, ob.pos - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return w < 0 ? -errno : -EIO;
			done += (size_t)w;
		}
		o->size += ob.pos;
	} while (end == ZSTD_e_end ? left != 0 : in->pos < in->size);
	return 0;
}

static int zout_write(void *ctx, const void *p, size_t n)
{
	struct zout *o = ctx;
	if (n && fwrite(p, 1, n, o->plain) != n)
		return -EIO;
	o->plain_size += n;
	return 0;
}

static int zout_compress(struct zout *o)
{
	ZSTD_inBuffer none = {NULL, 0, 0};
	size_t n;
	int r = 0;
	if (fflush(o->plain) != 0 || fseek(o->plain, 0, SEEK_SET) != 0)
		return -EIO;
	ZSTD_CCtx_setPledgedSrcSize(o->z, o->plain_size);
	while (r == 0 && (n = fread(o->in, 1, sizeof(o->in), o->plain)) > 0) {
		ZSTD_inBuffer in = {o->in, n, 0};
		r = zout_drain(o, &in, ZSTD_e_continue);
	}
	if (r == 0 && ferror(o->plain))
		r = -EIO;
	return r < 0 ? r : zout_drain(o, &none, ZSTD_e_end);
}

/* Sorted SHA-256s of a tree's non-empty regular files. */
struct shaset {
	uint8_t (*v)[32];
	size_t n;
};

static int sha_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

static int shaset_add_tree(struct shaset *s, const struct dimg_tree *t)
{
	uint8_t(*v)[32] = realloc(s->v, (s->n + t->n + 1) * 32);
	if (!v)
		return -ENOMEM;
	s->v = v;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].type == DIMG_TYPE_REG && t->v[i].size)
			memcpy(s->v[s->n++], t->v[i].sha256, 32);
	qsort(s->v, s->n, 32, sha_cmp);
	return 0;
}

static int shaset_has(const struct shaset *s, const uint8_t sha[32])
{
	return bsearch(sha, s->v, s->n, 32, sha_cmp) != NULL;
}

struct build {
	struct zout *o;
	const struct dimg_image *target;
	struct shaset have;
	struct layers_stats *st;
	uint64_t start, at, end; /* the target recipe being copied */
	size_t layer;
	int raw;                 /* plain records only (version 1) */
	struct tarmodel_dfs dfs; /* of the target tree, unless raw */
	uint8_t buf[L_BUF];
	struct dimg_err *err;
};

static int build_read(struct build *b, void *p, size_t n)
{
	if (n > b->end - b->at)
		return -EBADMSG;
	int r = dimg_image_recipe_read(b->target, b->at, p, n);
	b->at += n;
	return r;
}

static int build_inline(struct build *b, const uint8_t *rec, size_t layer)
{
	uint64_t size = get64(rec + 1);
	uint8_t hdr[41];
	char hex[65];
	struct stat st;
	int fd, r = dimg_image_open_content(b->target, rec + 9, &fd);
	dimg_hex32(rec + 9, hex);
	if (r < 0)
		return dimg_err_set(b->err, -ENOTSUP, NULL,
		                    "layer %zu: content sha256:%.16s... is not in the store",
		                    layer + 1, hex);
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size) {
		close(fd);
		return dimg_err_set(b->err, -ENOTSUP, NULL,
		                    "layer %zu: content sha256:%.16s... has another size",
		                    layer + 1, hex);
	}
	memcpy(hdr, rec, sizeof(hdr));
	hdr[0] = DIMG_RECIPE_INLINE;
	r = zout_write(b->o, hdr, sizeof(hdr));
	if (r == 0)
		r = stream_fd(fd, size, rec + 9, b->buf, zout_write, b->o);
	close(fd);
	b->st->inline_files++;
	b->st->inline_bytes += size;
	return r;
}

/* A FILE record of the target's recipe: kept when the applier will have
 * the content, else embedded (INLINE). */
static int build_file(void *ctx, const uint8_t rec[41])
{
	struct build *b = ctx;
	if (!shaset_has(&b->have, rec + 9))
		return build_inline(b, rec, b->layer);
	b->st->refs++;
	b->st->ref_bytes += get64(rec + 1);
	return zout_write(b->o, rec, 41);
}

static int build_records(struct build *b, size_t layer)
{
	uint8_t rec[41];
	for (;;) {
		int r = build_read(b, rec, 1);
		if (r == 0 && rec[0] == DIMG_RECIPE_END)
			return zout_write(b->o, rec, 1);
		if (r == 0 && rec[0] == DIMG_RECIPE_RAW) {
			uint32_t n = 0;
			if ((r = build_read(b, rec + 1, 4)) == 0)
				n = get32(rec + 1);
			if (r == 0 && (n == 0 || n > L_BUF))
				r = -EBADMSG;
			if (r == 0 && (r = build_read(b, b->buf, n)) == 0 &&
			    (r = zout_write(b->o, rec, 5)) == 0)
				r = zout_write(b->o, b->buf, n);
			b->st->raw_bytes += n;
		} else if (r == 0 && rec[0] == DIMG_RECIPE_FILE) {
			if ((r = build_read(b, rec + 1, 40)) < 0)
				return r;
			r = build_file(b, rec);
		} else if (r == 0) {
			r = -EBADMSG;
		}
		if (r < 0)
			return r;
	}
}

static int build_src_read(void *ctx, void *p, size_t n)
{
	return build_read(ctx, p, n);
}

static int build_src_rewind(void *ctx)
{
	struct build *b = ctx;
	b->at = b->start;
	return 0;
}

static int build_out_write(void *ctx, const void *p, size_t n)
{
	struct build *b = ctx;
	return zout_write(b->o, p, n);
}

/* The plain output written since at, read back. */
struct zback {
	struct zout *o;
	uint64_t at;
};

static int zback_read(void *ctx, void *p, size_t n)
{
	struct zback *z = ctx;
	if (n > z->o->plain_size - z->at)
		return -EBADMSG;
	ssize_t k = pread(fileno(z->o->plain), p, n, (off_t)z->at);
	z->at += n;
	return k == (ssize_t)n ? 0 : -EIO;
}

/* Whether the predicted records written since start stand for the very
 * layer the target's recipe records: decoded and compared by digest. */
static int build_check(struct build *b, uint64_t start, int *same)
{
	struct lrec_in in = {build_src_read, b};
	struct zback z = {b->o, start};
	struct lrec_in out = {zback_read, &z};
	uint8_t want[64], got[64];
	b->at = b->start;
	int r = lpred_digest(&in, NULL, want);
	if (r < 0 || fflush(b->o->plain) != 0)
		return r < 0 ? r : -EIO;
	r = lpred_digest(&out, b->target->tree, got);
	*same = r == 0 && !memcmp(want, got, sizeof(want));
	return r == -EBADMSG ? 0 : r;
}

/* The layer's records with each entry predicted from the target tree;
 * checked, and written as they are should the check fail. */
static int build_predicted(struct build *b)
{
	struct lenc_src src = {build_src_read, build_src_rewind, b};
	struct lenc_out out = {build_out_write, build_file, b};
	struct lenc_stats ls = {0};
	struct layers_stats keep = *b->st;
	uint64_t start = b->o->plain_size;
	int same = 0, r = lenc_layer(&src, b->target->tree, &b->dfs, &out, &ls);
	if (r == 0)
		r = build_check(b, start, &same);
	if (r < 0 || same) {
		b->st->entries += ls.entries;
		b->st->exact += ls.exact;
		b->st->patched += ls.patched;
		b->st->raw_entries += ls.raw;
		b->st->raw_bytes += ls.raw_bytes;
		return r;
	}
	/* A model that does not give back the layer (a bug): as it is. */
	*b->st = keep;
	b->st->unchecked++;
	if (fflush(b->o->plain) != 0 || ftruncate(fileno(b->o->plain), (off_t)start) < 0 ||
	    fseek(b->o->plain, (long)start, SEEK_SET) != 0)
		return -EIO;
	b->o->plain_size = start;
	b->at = b->start;
	return build_records(b, b->layer);
}

static int build_layer(struct build *b, const struct dimg_image *base, size_t i)
{
	const struct dimg_image_layer *l = &b->target->layers[i];
	uint8_t h[L_LAYER_HEAD] = {LAYERS_RECIPE, comp_code(l->filter)};
	memcpy(h + 4, l->diff_id, 32);
	for (size_t k = 0; k < base->nlayers; k++)
		if (!memcmp(base->layers[k].diff_id, l->diff_id, 32))
			h[0] = LAYERS_FROM_BASE;
	int r = zout_write(b->o, h, sizeof(h));
	if (r < 0 || h[0] == LAYERS_FROM_BASE) {
		b->st->from_base += h[0] == LAYERS_FROM_BASE;
		return r;
	}
	if (!l->has_recipe)
		return dimg_err_set(b->err, -ENOTSUP, NULL, "layer %zu was not recorded", i + 1);
	b->start = b->at = l->recipe_off;
	b->end = l->recipe_off + l->recipe_len;
	b->layer = i;
	r = b->raw ? build_records(b, i) : build_predicted(b);
	if (r == -EBADMSG)
		dimg_err_set(b->err, r, NULL, "layer %zu: its recorded recipe is damaged", i + 1);
	return r;
}

int layers_build(int out_fd, const struct dimg_image *target, const struct dimg_image *base,
                 int level, int raw, struct layers_stats *st, struct dimg_err *err)
{
	struct build *b = calloc(1, sizeof(*b));
	struct zout *o = calloc(1, sizeof(*o));
	uint8_t head[L_HEAD];
	int r = -ENOMEM;
	memset(st, 0, sizeof(*st));
	if (!b || !o || !(o->z = ZSTD_createCCtx()))
		goto out;
	if (!(o->plain = tmpfile())) {
		r = -errno;
		goto out;
	}
	if (!target->nlayers || target->nlayers > L_MAX_LAYERS) {
		r = dimg_err_set(err, -ENOTSUP, NULL, "the target has %zu layers", target->nlayers);
		goto out;
	}
	o->fd = out_fd;
	ZSTD_CCtx_setParameter(o->z, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(o->z, ZSTD_c_checksumFlag, 1);
	*b = (struct build){.o = o, .target = target, .st = st, .raw = raw, .err = err};
	if ((r = shaset_add_tree(&b->have, target->tree)) < 0 ||
	    (r = shaset_add_tree(&b->have, base->tree)) < 0 ||
	    (!raw && (r = tarmodel_dfs_build(&b->dfs, target->tree)) < 0))
		goto out;
	st->version = raw ? LAYERS_VERSION_RAW : LAYERS_VERSION;
	memcpy(head, L_MAGIC, 8);
	put32(head + 8, st->version);
	put32(head + 12, (uint32_t)target->nlayers);
	r = zout_write(o, head, sizeof(head));
	for (size_t i = 0; r == 0 && i < target->nlayers; i++)
		r = build_layer(b, base, i);
	if (r == 0 && (r = zout_compress(o)) == 0) {
		st->layers = target->nlayers;
		st->blob_size = o->size;
	}
out:
	if (b) {
		free(b->have.v);
		tarmodel_dfs_free(&b->dfs);
	}
	if (o && o->plain)
		fclose(o->plain);
	if (o)
		ZSTD_freeCCtx(o->z);
	free(o);
	free(b);
	return r;
}

/* ================================================================ reader */

struct layers_reader {
	ZSTD_DCtx *z;
	ZSTD_inBuffer in;
	uint8_t out[L_BUF];
	size_t rpos, wpos;
	size_t n, next;
	struct layers_layer cur;
	int have_cur;
	uint8_t buf[L_BUF];
	/* records of a base layer, when the current layer is one */
	const struct dimg_image *base;
	uint64_t at, end;
	uint32_t version;
	struct lpred *pred; /* predicted entries' state, once a tree is given */
};

/* Exactly n decompressed bytes, or -EBADMSG (truncated, corrupt). */
static int zin_read(struct layers_reader *r, void *p, size_t n)
{
	uint8_t *d = p;
	while (n) {
		if (r->rpos < r->wpos) {
			size_t k = r->wpos - r->rpos < n ? r->wpos - r->rpos : n;
			memcpy(d, r->out + r->rpos, k);
			r->rpos += k;
			d += k;
			n -= k;
			continue;
		}
		if (r->in.pos >= r->in.size)
			return -EBADMSG;
		ZSTD_outBuffer ob = {r->out, sizeof(r->out), 0};
		size_t rc = ZSTD_decompressStream(r->z, &ob, &r->in);
		if (ZSTD_isError(rc))
			return -EBADMSG;
		r->rpos = 0;
		r->wpos = ob.pos;
	}
	return 0;
}

/* The current layer's record bytes: the blob's, or the base's recipe. */
static int rec_read(struct layers_reader *r, void *p, size_t n)
{
	if (!r->base)
		return zin_read(r, p, n);
	if (n > r->end - r->at)
		return -EBADMSG;
	int rc = dimg_image_recipe_read(r->base, r->at, p, n);
	r->at += n;
	return rc < 0 ? -EBADMSG : 0;
}

int layers_open(struct layers_reader **out, const uint8_t *blob, size_t len, struct dimg_err *err)
{
	struct layers_reader *r = calloc(1, sizeof(*r));
	uint8_t head[L_HEAD];
	int rc = -ENOMEM;
	*out = NULL;
	if (!r || !(r->z = ZSTD_createDCtx()))
		goto fail;
	r->in = (ZSTD_inBuffer){blob, len, 0};
	if ((rc = zin_read(r, head, sizeof(head))) < 0) {
		dimg_err_set(err, rc, NULL, "layer recipes: not a zstd stream or too short");
		goto fail;
	}
	if (memcmp(head, L_MAGIC, 8) != 0) {
		rc = dimg_err_set(err, -EBADMSG, NULL, "layer recipes: bad magic");
		goto fail;
	}
	r->version = get32(head + 8);
	if (r->version != LAYERS_VERSION_RAW && r->version != LAYERS_VERSION) {
		rc = dimg_err_set(err, -ENOTSUP, NULL,
		                  "layer recipes: version %u is not supported (reads %u and %u)",
		                  r->version, LAYERS_VERSION_RAW, LAYERS_VERSION);
		goto fail;
	}
	r->n = get32(head + 12);
	if (r->n == 0 || r->n > L_MAX_LAYERS) {
		rc = dimg_err_set(err, -EBADMSG, NULL, "layer recipes: %zu layers", r->n);
		goto fail;
	}
	*out = r;
	return 0;
fail:
	layers_free(r);
	return rc;
}

void layers_free(struct layers_reader *r)
{
	if (!r)
		return;
	ZSTD_freeDCtx(r->z);
	lpred_free(r->pred);
	free(r->pred);
	free(r);
}

size_t layers_count(const struct layers_reader *r)
{
	return r->n;
}

int layers_next(struct layers_reader *r, size_t i, struct layers_layer *out, struct dimg_err *err)
{
	uint8_t h[L_LAYER_HEAD];
	if (i != r->next || r->have_cur || i >= r->n)
		return -EINVAL;
	int rc = zin_read(r, h, sizeof(h));
	if (rc < 0)
		return dimg_err_set(err, rc, NULL, "layer recipes: layer %zu is cut short", i + 1);
	if ((h[0] != LAYERS_RECIPE && h[0] != LAYERS_FROM_BASE) || h[1] > LAYERS_COMP_OTHER ||
	    h[2] || h[3])
		return dimg_err_set(err, -EBADMSG, NULL,
		                    "layer recipes: layer %zu has a bad header", i + 1);
	out->kind = h[0];
	out->comp = h[1];
	memcpy(out->diff_id, h + 4, 32);
	r->cur = *out;
	r->have_cur = 1;
	r->next++;
	return 0;
}

/* A referenced content: from the base's store, else the target tree. */
static int write_ref(struct layers_reader *r, const struct layers_src *src, const uint8_t *rec,
                     dimg_write_fn sink, void *sink_ctx)
{
	uint64_t size = get64(rec + 1);
	int fd, rc = src->base ? dimg_image_open_content(src->base, rec + 9, &fd) : -ENOENT;
	if (rc == 0) {
		rc = stream_fd(fd, size, rec + 9, r->buf, sink, sink_ctx);
		close(fd);
		return rc;
	}
	if (rc != -ENOENT || !src->content)
		return rc;
	return src->content(src->ctx, rec + 9, size, sink, sink_ctx);
}

/* An embedded content: streamed from the blob, hashed. */
static int write_inline(struct layers_reader *r, const uint8_t *rec, dimg_write_fn sink,
                        void *sink_ctx)
{
	uint64_t left = get64(rec + 1);
	uint8_t got[32];
	struct dimg_sha256 *h;
	int rc = r->base ? -EBADMSG : dimg_sha256_new(&h);
	if (rc < 0)
		return rc;
	while (rc == 0 && left) {
		size_t k = left < L_BUF ? (size_t)left : L_BUF;
		if ((rc = zin_read(r, r->buf, k)) == 0) {
			dimg_sha256_update(h, r->buf, k);
			rc = sink(sink_ctx, r->buf, k);
			left -= k;
		}
	}
	if (rc == 0) {
		dimg_sha256_final(h, got);
		rc = memcmp(got, rec + 9, 32) ? -EBADMSG : 0;
	}
	dimg_sha256_free(h);
	return rc;
}

/* A content or the tar bytes of a predicted entry, into the sink. */
struct wr_pred {
	struct layers_reader *r;
	const struct layers_src *src;
	dimg_write_fn sink;
	void *sink_ctx;
	struct dimg_err *err;
	size_t layer;
	int passed; /* the sink or the base's store failed: theirs to say */
};

static int wp_read(void *ctx, void *p, size_t n)
{
	return zin_read(((struct wr_pred *)ctx)->r, p, n);
}

static int wp_bytes(void *ctx, const void *p, size_t n)
{
	struct wr_pred *w = ctx;
	int rc = w->sink(w->sink_ctx, p, n);
	w->passed = rc < 0;
	return rc;
}

static int wp_content(void *ctx, const uint8_t sha256[32], uint64_t size)
{
	struct wr_pred *w = ctx;
	uint8_t rec[41] = {DIMG_RECIPE_FILE};
	char hex[65];
	for (int i = 0; i < 8; i++)
		rec[1 + i] = (uint8_t)(size >> (8 * i));
	memcpy(rec + 9, sha256, 32);
	int rc = write_ref(w->r, w->src, rec, w->sink, w->sink_ctx);
	if (rc != -ENOENT && rc != -EBADMSG) {
		w->passed = rc < 0;
		return rc;
	}
	dimg_hex32(sha256, hex);
	return dimg_err_set(w->err, -EBADMSG, NULL, "layer %zu: content sha256:%.16s... %s",
	                    w->layer + 1, hex,
	                    rc == -ENOENT ? "is in neither image" : "does not match");
}

/* Records 4..7: version 2 only, never in a base's recipe, with a tree. */
static int write_predicted(struct layers_reader *r, const struct layers_src *src, uint8_t type,
                           dimg_write_fn sink, void *sink_ctx, struct dimg_err *err, size_t layer,
                           int *passed)
{
	struct wr_pred w = {r, src, sink, sink_ctx, err, layer, 0};
	struct lrec_in in = {wp_read, &w};
	struct lrec_out out = {wp_bytes, wp_content, &w};
	if (r->version < LAYERS_VERSION || r->base)
		return -EBADMSG;
	if (!r->pred)
		return dimg_err_set(err, -EBADMSG, NULL,
		                    "layer %zu: predicted entries need the target tree", layer + 1);
	int rc = lpred_record(r->pred, type, &in, &out);
	*passed = w.passed;
	return rc;
}

static int write_records(struct layers_reader *r, const struct layers_src *src, dimg_write_fn sink,
                         void *sink_ctx, struct dimg_err *err, size_t layer)
{
	uint8_t rec[41];
	char hex[65];
	for (;;) {
		int rc = rec_read(r, rec, 1);
		if (rc == 0 && rec[0] == DIMG_RECIPE_END)
			return 0;
		if (rc == 0 && rec[0] == DIMG_RECIPE_RAW) {
			uint32_t n = 0;
			if ((rc = rec_read(r, rec + 1, 4)) == 0 &&
			    ((n = get32(rec + 1)) == 0 || n > L_BUF))
				rc = -EBADMSG;
			if (rc == 0 && (rc = rec_read(r, r->buf, n)) == 0 &&
			    (rc = sink(sink_ctx, r->buf, n)) < 0)
				return rc; /* the writer's failure: it says what */
		} else if (rc == 0 &&
		           (rec[0] == DIMG_RECIPE_FILE || rec[0] == DIMG_RECIPE_INLINE)) {
			if ((rc = rec_read(r, rec + 1, 40)) == 0 && get64(rec + 1) == 0)
				rc = -EBADMSG;
			if (rc == 0)
				rc = rec[0] == DIMG_RECIPE_FILE
				         ? write_ref(r, src, rec, sink, sink_ctx)
				         : write_inline(r, rec, sink, sink_ctx);
			if (rc == -ENOENT || rc == -EBADMSG) {
				dimg_hex32(rec + 9, hex);
				return dimg_err_set(
				    err, rc == -ENOENT ? -EBADMSG : rc, NULL,
				    "layer %zu: content sha256:%.16s... %s", layer + 1, hex,
				    rc == -ENOENT ? "is in neither image" : "does not match");
			}
			if (rc < 0)
				return rc; /* writing it failed, or reading the base's store */
		} else if (rc == 0 && rec[0] >= LAYERS_REC_MODEL && rec[0] <= LAYERS_REC_ZEROS) {
			int passed = 0;
			rc = write_predicted(r, src, rec[0], sink, sink_ctx, err, layer, &passed);
			if (rc < 0 && passed)
				return rc; /* writing it failed, or reading the base's store */
		} else if (rc == 0) {
			rc = -EBADMSG;
		}
		if (rc < 0)
			return dimg_err_set(err, rc, NULL,
			                    "layer %zu: recipe record damaged or cut short",
			                    layer + 1);
	}
}

int layers_write(struct layers_reader *r, const struct layers_src *src, dimg_write_fn sink,
                 void *sink_ctx, struct dimg_err *err)
{
	size_t layer = r->next - 1;
	if (!r->have_cur)
		return -EINVAL;
	r->have_cur = 0;
	r->base = NULL;
	if (src->tree && !r->pred) {
		int rc = (r->pred = calloc(1, sizeof(*r->pred))) ? lpred_init(r->pred, src->tree)
		                                                 : -ENOMEM;
		if (rc < 0)
			return rc;
	}
	if (r->pred)
		lpred_layer(r->pred);
	if (r->cur.kind == LAYERS_FROM_BASE) {
		const struct dimg_image_layer *bl = NULL;
		for (size_t k = 0; src->base && k < src->base->nlayers && !bl; k++)
			if (!memcmp(src->base->layers[k].diff_id, r->cur.diff_id, 32) &&
			    src->base->layers[k].has_recipe)
				bl = &src->base->layers[k];
		if (!bl)
			return dimg_err_set(err, -EXDEV, NULL,
			                    "layer %zu: the base image has no such layer",
			                    layer + 1);
		r->base = src->base;
		r->at = bl->recipe_off;
		r->end = bl->recipe_off + bl->recipe_len;
	}
	int rc = write_records(r, src, sink, sink_ctx, err, layer);
	r->base = NULL;
	return rc;
}

/* ---- composing two recipe blobs (cdimg merge) ---- */

#define L_MAX_RAW (1ull << 30) /* a decoded recipe blob past this is refused */

/* The whole decoded blob. */
static int lc_decode(const uint8_t *blob, size_t len, struct dimg_buf *out)
{
	ZSTD_DCtx *z = ZSTD_createDCtx();
	ZSTD_inBuffer in = {blob, len, 0};
	size_t left = 1;
	int r = z ? 0 : -ENOMEM;
	while (!r && left) {
		if ((r = dimg_buf_reserve(out, L_BUF)) < 0)
			break;
		ZSTD_outBuffer ob = {out->data + out->len, out->cap - out->len, 0};
		left = ZSTD_decompressStream(z, &ob, &in);
		out->len += ob.pos;
		if (ZSTD_isError(left) || (left && in.pos == in.size && ob.pos < ob.size))
			r = -EBADMSG;
		else if (out->len > L_MAX_RAW)
			r = -EFBIG;
	}
	if (!r && in.pos != in.size)
		r = -EBADMSG; /* something after the frame */
	ZSTD_freeDCtx(z);
	return r;
}

/* One layer of a decoded blob: its 36-byte head at off, its records (for a
 * recipe) up to end. */
struct lc_layer {
	size_t off, end;
	int predicted; /* holds records 4..7 */
};

/* Length of the record at p (n bytes left), or 0 if it runs past them;
 * *last is set for END. */
static size_t lc_record(const uint8_t *p, size_t n, uint32_t version, int *last)
{
	*last = n && p[0] == 0;
	if (!n || p[0] == 0)
		return n ? 1 : 0;
	if (p[0] >= LAYERS_REC_MODEL && p[0] <= LAYERS_REC_ZEROS)
		return version >= LAYERS_VERSION ? lpred_record_len(p, n) : 0;
	if (p[0] == 1)
		return n >= 5 && get32(p + 1) && get32(p + 1) <= 65536 && n - 5 >= get32(p + 1)
		           ? 5 + get32(p + 1)
		           : 0;
	if (n < 41 || (p[0] != 2 && p[0] != 3))
		return 0;
	uint64_t size = get64(p + 1);
	if (p[0] == 2)
		return 41;
	return size <= n - 41 ? 41 + (size_t)size : 0;
}

/* Splits a decoded blob into its layers (header checked as layers_open
 * and layers_next check it). */
static int lc_split(const struct dimg_buf *d, struct lc_layer **out, size_t *n)
{
	const uint8_t *p = d->data;
	uint32_t v = d->len >= L_HEAD ? get32(p + 8) : 0;
	if (d->len < L_HEAD || memcmp(p, L_MAGIC, 8) ||
	    (v != LAYERS_VERSION && v != LAYERS_VERSION_RAW))
		return -EBADMSG;
	*n = get32(p + 12);
	if (*n == 0 || *n > L_MAX_LAYERS || !(*out = calloc(*n, sizeof(**out))))
		return *n && *n <= L_MAX_LAYERS ? -ENOMEM : -EBADMSG;
	size_t at = L_HEAD;
	for (size_t i = 0; i < *n; i++) {
		const uint8_t *h = p + at;
		if (d->len - at < L_LAYER_HEAD ||
		    (h[0] != LAYERS_RECIPE && h[0] != LAYERS_FROM_BASE) ||
		    h[1] > LAYERS_COMP_OTHER || h[2] || h[3])
			return -EBADMSG;
		(*out)[i].off = at;
		at += L_LAYER_HEAD;
		for (int last = h[0] != LAYERS_RECIPE; !last;) {
			size_t k = lc_record(p + at, d->len - at, v, &last);
			if (!k)
				return -EBADMSG;
			(*out)[i].predicted |= p[at] >= LAYERS_REC_MODEL;
			at += k;
		}
		(*out)[i].end = at;
	}
	return at == d->len ? 0 : -EBADMSG;
}

/* The trees a's recipes are read against and the result's. */
struct lc_trees {
	const struct dimg_tree *a, *b;
};

/* b's layer i, or a's recipe of the same diff_id when b has it as the
 * base's and a records it (predicted entries read again against b's
 * tree; *lost counts those that cannot be). */
static int lc_emit(const struct dimg_buf *a, const struct lc_layer *la, size_t na,
                   const struct dimg_buf *b, const struct lc_layer *lb, const struct lc_trees *t,
                   struct dimg_buf *out, size_t *taken, size_t *lost)
{
	const uint8_t *h = b->data + lb->off;
	if (h[0] == LAYERS_FROM_BASE)
		for (size_t k = 0; k < na; k++) {
			const uint8_t *ah = a->data + la[k].off, *rec = ah + L_LAYER_HEAD;
			size_t n = la[k].end - la[k].off - L_LAYER_HEAD;
			if (ah[0] != LAYERS_RECIPE || memcmp(ah + 4, h + 4, 32))
				continue;
			if (la[k].predicted && (!t->a || !t->b)) {
				(*lost)++;
				break;
			}
			uint8_t head[L_LAYER_HEAD];
			memcpy(head, h, sizeof(head));
			head[0] = LAYERS_RECIPE;
			int r = dimg_buf_append(out, head, sizeof(head));
			(*taken)++;
			if (r == 0 && la[k].predicted)
				return lpred_retarget(rec, n, t->a, t->b, out);
			return r < 0 ? r : dimg_buf_append(out, rec, n);
		}
	return dimg_buf_append(out, h, lb->end - lb->off);
}

/* The version a composed blob needs: 2 if any layer has records 4..7. */
static void lc_version(struct dimg_buf *raw, size_t nlayers)
{
	const uint8_t *p = raw->data;
	size_t at = L_HEAD;
	uint32_t v = LAYERS_VERSION_RAW;
	for (size_t i = 0; i < nlayers && v == LAYERS_VERSION_RAW; i++) {
		int last = p[at] != LAYERS_RECIPE;
		for (at += L_LAYER_HEAD; !last && v == LAYERS_VERSION_RAW;) {
			size_t k = lc_record(p + at, raw->len - at, LAYERS_VERSION, &last);
			v = p[at] >= LAYERS_REC_MODEL ? LAYERS_VERSION : v;
			if (!k)
				break;
			at += k;
		}
	}
	put32(raw->data + 8, v);
}

int layers_compose(const uint8_t *a, size_t alen, const struct dimg_tree *a_tree, const uint8_t *b,
                   size_t blen, const struct dimg_tree *b_tree, int level, struct dimg_buf *out,
                   size_t *taken, size_t *lost, struct dimg_err *err)
{
	struct lc_trees trees = {a_tree, b_tree};
	struct dimg_buf da = {0}, db = {0}, raw = {0};
	struct lc_layer *la = NULL, *lb = NULL;
	size_t na = 0, nb = 0;
	int r = lc_decode(a, alen, &da);
	if (!r)
		r = lc_decode(b, blen, &db);
	if (!r)
		r = lc_split(&da, &la, &na);
	if (!r)
		r = lc_split(&db, &lb, &nb);
	if (r < 0)
		dimg_err_set(err, r, NULL, "layer recipes: damaged (%s)", strerror(-r));
	*taken = *lost = 0;
	if (!r)
		r = dimg_buf_append(&raw, db.data, L_HEAD);
	for (size_t i = 0; !r && i < nb; i++)
		r = lc_emit(&da, la, na, &db, &lb[i], &trees, &raw, taken, lost);
	if (r == -EBADMSG)
		dimg_err_set(err, r, NULL,
		             "layer recipes: a layer taken from an earlier delta is damaged");
	if (!r)
		lc_version(&raw, nb);
	if (!r) {
		size_t bound = ZSTD_compressBound(raw.len);
		ZSTD_CCtx *z = ZSTD_createCCtx();
		r = z && dimg_buf_reserve(out, bound) == 0 ? 0 : -ENOMEM;
		if (!r &&
		    (ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, level)) ||
		     ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 1))))
			r = -EINVAL;
		if (!r) {
			size_t n =
			    ZSTD_compress2(z, out->data + out->len, bound, raw.data, raw.len);
			if (ZSTD_isError(n))
				r = -EIO;
			else
				out->len += n;
		}
		ZSTD_freeCCtx(z);
	}
	free(la);
	free(lb);
	dimg_buf_free(&da);
	dimg_buf_free(&db);
	dimg_buf_free(&raw);
	return r;
}
