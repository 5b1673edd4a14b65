/* Layer recipes version 2 without images: a small tree with every kind of
 * entry (hardlinks whose first name in depth-first order is not the first
 * in sort order, a long name, a non-ASCII one, xattrs, a device); layers
 * made of each writer model's predictions, some changed by hand (another
 * mtime, an entry of an unknown type, a bad checksum, bytes after the end)
 * go through the tar-split recorder, the encoder and the reader and come
 * back byte for byte; damaged records are refused. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "cas-internal.h"
#include "../fuzz/fuzz-recipes-tree.h"
#include "check.h"
#include "dimg/hash.h"
#include "dimg/tar.h"
#include "layers-internal.h"
#include "layers.h"

struct env {
	struct dimg_tree *t;
	struct tarmodel_dfs dfs;
};

static void make_tree(struct env *v)
{
	CHECK_RC(recipes_tree_new(&v->t));
	CHECK_RC(tarmodel_dfs_build(&v->dfs, v->t));
}

static const char *content_of(const struct env *v, const uint8_t sha[32], uint64_t size)
{
	(void)v;
	return recipes_content(sha, size);
}

/* A layer of every tree entry (but the root unless root) in the model's
 * order, as the model predicts it, then the end blocks. */
static void model_layer(struct env *v, const struct tarmodel_params *p, int root,
                        struct dimg_buf *tar)
{
	static const uint8_t zero[DIMG_TAR_BLOCK];
	struct tarmodel m;
	struct tarmodel_pred pr;
	CHECK_RC(tarmodel_init(&m, v->t, &v->dfs));
	tarmodel_reset(&m, p);
	tar->len = 0;
	for (size_t pos = root ? 0 : 1; pos < v->t->n; pos++) {
		size_t idx = p->order == TARMODEL_ORDER_DEPTH ? v->dfs.idx[pos] : pos;
		CHECK_RC(tarmodel_predict(&m, idx, tar, &pr));
		tarmodel_commit(&m, idx, tar->data + tar->len - DIMG_TAR_BLOCK);
		if (!pr.has_content)
			continue;
		CHECK_RC(dimg_buf_append(tar, content_of(v, pr.sha256, pr.size), pr.size));
		CHECK_RC(dimg_buf_append(tar, zero, (512 - pr.size % 512) % 512));
	}
	CHECK_RC(dimg_buf_append(tar, zero, sizeof(zero)));
	CHECK_RC(dimg_buf_append(tar, zero, sizeof(zero)));
	tarmodel_free(&m);
}

/* The tar's plain records, as the image reader records them. */
static void record(const struct dimg_buf *tar, struct dimg_buf *plain)
{
	struct dimg_tarsplit *ts;
	uint64_t off, len;
	FILE *f = tmpfile();
	CHECK(f);
	CHECK_RC(dimg_tarsplit_new(&ts, f));
	dimg_tarsplit_begin(ts);
	CHECK_RC(dimg_tarsplit_feed(ts, tar->data, tar->len));
	CHECK_RC(dimg_tarsplit_end(ts, &off, &len, 0));
	plain->len = 0;
	CHECK_RC(dimg_buf_reserve(plain, (size_t)len));
	CHECK(fseek(f, 0, SEEK_SET) == 0 && fread(plain->data, 1, len, f) == len);
	plain->len = (size_t)len;
	dimg_tarsplit_free(ts);
	fclose(f);
}

static int mem_rewind(void *ctx)
{
	((struct lrec_mem *)ctx)->at = 0;
	return 0;
}

static int buf_write(void *ctx, const void *p, size_t n)
{
	return dimg_buf_append(ctx, p, n);
}

static int buf_file(void *ctx, const uint8_t rec[41])
{
	return dimg_buf_append(ctx, rec, 41);
}

struct dec {
	const struct env *v;
	struct dimg_buf *out;
};

static int dec_bytes(void *ctx, const void *p, size_t n)
{
	return dimg_buf_append(((struct dec *)ctx)->out, p, n);
}

static int dec_content(void *ctx, const uint8_t sha256[32], uint64_t size)
{
	struct dec *d = ctx;
	const char *c = content_of(d->v, sha256, size);
	return c ? dimg_buf_append(d->out, c, (size_t)size) : -ENOENT;
}

/* The tar bytes records stand for (contents: the tree's). */
static int decode(struct env *v, const struct dimg_buf *recs, struct dimg_buf *out)
{
	struct lrec_mem m = {recs->data, recs->len, 0};
	struct lrec_in in = {lrec_mem_read, &m};
	struct dec d = {v, out};
	struct lrec_out o = {dec_bytes, dec_content, &d};
	struct lpred lp;
	uint8_t t = DIMG_RECIPE_RAW, h[40];
	int r = lpred_init(&lp, v->t);
	out->len = 0;
	while (r == 0 && (r = lrec_mem_read(&m, &t, 1)) == 0 && t != DIMG_RECIPE_END) {
		if (t > DIMG_RECIPE_INLINE) {
			r = lpred_record(&lp, t, &in, &o);
			continue;
		}
		uint64_t n = 0;
		if ((r = lrec_mem_read(&m, h, t == DIMG_RECIPE_RAW ? 4 : 40)) < 0)
			break;
		for (int i = t == DIMG_RECIPE_RAW ? 4 : 8; i-- > 0;)
			n = n << 8 | h[i];
		if (t == DIMG_RECIPE_FILE)
			r = dec_content(&d, h + 8, n);
		else if (n > m.n - m.at)
			r = -EBADMSG;
		else if ((r = dimg_buf_append(out, m.p + m.at, (size_t)n)) == 0)
			m.at += (size_t)n;
	}
	lpred_free(&lp);
	return r;
}

/* tar -> plain records -> predicted records -> tar again. */
static void round_trip(struct env *v, const struct dimg_buf *tar, struct lenc_stats *st,
                       size_t *size)
{
	struct dimg_buf plain = {0}, pred = {0}, back = {0};
	record(tar, &plain);
	struct lrec_mem m = {plain.data, plain.len, 0};
	struct lenc_src src = {lrec_mem_read, mem_rewind, &m};
	struct lenc_out out = {buf_write, buf_file, &pred};
	CHECK_RC(lenc_layer(&src, v->t, &v->dfs, &out, st));
	CHECK_RC(decode(v, &pred, &back));
	CHECK(back.len == tar->len && !memcmp(back.data, tar->data, tar->len));
	*size = pred.len;
	dimg_buf_free(&plain);
	dimg_buf_free(&pred);
	dimg_buf_free(&back);
}

/* Each model's own layer: every entry as predicted, a few bytes in all.
 * GNU tar and Python name the root "./" (tar -C DIR ., mkimages.py), the
 * others by GNU tar with "./" in front too, by Python without. */
static void check_models(struct env *v)
{
	static const char *const names[] = {"", "GNU tar", "Go", "Python"};
	struct dimg_buf tar = {0};
	struct lenc_stats st;
	size_t size;
	for (uint8_t w = TARMODEL_GNU; w <= TARMODEL_PYTHON; w++)
		for (uint8_t o = 0; o <= TARMODEL_ORDER_DEPTH; o++) {
			struct tarmodel_params p = {.writer = w, .order = o};
			if (w == TARMODEL_GNU) /* tar -C DIR . */
				memcpy(p.prefix, "./", p.plen = 2);
			int root = w != TARMODEL_GO;
			model_layer(v, &p, root, &tar);
			round_trip(v, &tar, &st, &size);
			printf("  %-7s order %u: %zu tar bytes, %zu entries exact of %zu, %zu B of "
			       "records\n",
			       names[w], o, tar.len, (size_t)st.exact, (size_t)st.entries, size);
			CHECK(st.entries == v->t->n - !root && st.exact == st.entries);
			CHECK(size < 32);
		}
	dimg_buf_free(&tar);
}

/* Headers changed by hand: still exact, each change costing little. */
static void check_changed(struct env *v)
{
	struct tarmodel_params p = {.writer = TARMODEL_PYTHON, .order = TARMODEL_ORDER_DEPTH};
	struct dimg_buf tar = {0};
	struct lenc_stats st;
	size_t size, exact_size;
	model_layer(v, &p, 0, &tar);
	round_trip(v, &tar, &st, &exact_size);
	/* another mtime in the first header: one patched entry */
	tar.data[DIMG_TAR_MTIME + 10] ^= 1;
	tarmodel_checksum(tar.data);
	round_trip(v, &tar, &st, &size);
	CHECK(st.patched == 1 && st.exact == st.entries - 1 && size < exact_size + 24);
	/* an entry of a type no model writes, before the end blocks */
	size_t end = tar.len - 2 * DIMG_TAR_BLOCK;
	uint8_t h[DIMG_TAR_BLOCK] = "odd-entry";
	memcpy(h + DIMG_TAR_MODE, "0000644", 8);
	h[DIMG_TAR_TYPE] = 'V';
	memcpy(h + DIMG_TAR_MAGIC, "ustar\00000", 8);
	tarmodel_checksum(h);
	struct dimg_buf t2 = {0};
	CHECK_RC(dimg_buf_append(&t2, tar.data, end));
	CHECK_RC(dimg_buf_append(&t2, h, sizeof(h)));
	CHECK_RC(dimg_buf_append(&t2, tar.data + end, tar.len - end));
	CHECK_RC(dimg_buf_append(&t2, "trailing bytes", 14)); /* after the end blocks */
	round_trip(v, &t2, &st, &size);
	CHECK(st.raw == 1);
	/* a bad checksum in the second header: the rest as it is, exact */
	tar.data[DIMG_TAR_BLOCK + DIMG_TAR_CHKSUM] ^= 1;
	round_trip(v, &tar, &st, &size);
	CHECK(st.entries <= 2);
	dimg_buf_free(&tar);
	dimg_buf_free(&t2);
}

static int buf_sink(void *ctx, const void *p, size_t n)
{
	return dimg_buf_append(ctx, p, n);
}

static int src_content(void *ctx, const uint8_t sha[32], uint64_t size, dimg_write_fn sink,
                       void *sink_ctx)
{
	const char *c = content_of(ctx, sha, size);
	return c ? sink(sink_ctx, c, (size_t)size) : -ENOENT;
}

/* One layer of records recs (with END) in a blob of version ver, read. */
static int read_blob(struct env *v, uint8_t ver, const uint8_t *recs, size_t n,
                     const struct dimg_tree *t, struct dimg_buf *out)
{
	struct dimg_buf raw = {0};
	struct layers_reader *r = NULL;
	struct layers_layer l;
	struct layers_src src = {NULL, src_content, v, t};
	uint8_t head[52] = "DI3LAYRS";
	struct dimg_err why = {0};
	head[8] = ver;
	head[12] = 1;
	head[16] = LAYERS_RECIPE;
	CHECK_RC(dimg_buf_append(&raw, head, sizeof(head)));
	CHECK_RC(dimg_buf_append(&raw, recs, n));
	size_t cap = ZSTD_compressBound(raw.len);
	uint8_t *z = malloc(cap);
	size_t zn = ZSTD_compress(z, cap, raw.data, raw.len, 3);
	CHECK(z && !ZSTD_isError(zn));
	out->len = 0;
	int rc = layers_open(&r, z, zn, &why);
	if (rc == 0)
		rc = layers_next(r, 0, &l, &why);
	if (rc == 0)
		rc = layers_write(r, &src, buf_sink, out, &why);
	CHECK(rc == 0 || why.why[0]);
	layers_free(r);
	free(z);
	dimg_buf_free(&raw);
	return rc;
}

/* Handmade records: read, or refused as damaged. */
static void check_reader(struct env *v)
{
	/* MODEL Python/tree order, ENTRY skip 1 (past the root), ENTRIES 2,
	 * ZEROS 1024, END */
	uint8_t ok[] = {4, 3, 0, 0, 5, 2, 0, 6, 2, 7, 0x80, 8, 0};
	struct dimg_buf out = {0};
	CHECK_RC(read_blob(v, 2, ok, sizeof(ok), v->t, &out));
	CHECK(out.len == 3 * 512 + 512 + 1024);
	CHECK(!memcmp(out.data, "a/", 3) && out.data[DIMG_TAR_TYPE] == '5');
	CHECK(!memcmp(out.data + 512, "a-b", 4) && out.data[512 + DIMG_TAR_TYPE] == '0');
	CHECK(!memcmp(out.data + 1024, recipes_contents[0], 12));
	CHECK(!memcmp(out.data + 1536, "a/f", 4) && out.data[1536 + DIMG_TAR_TYPE] == '1' &&
	      !memcmp(out.data + 1536 + DIMG_TAR_LINKNAME, "a-b", 4));
	for (size_t at = 0; at < 2048; at += 512)
		CHECK(at == 1024 || dimg_tar_checksum_ok(out.data + at));
	/* version 1 does not know records 4..7; version 3 is not read */
	CHECK(read_blob(v, 1, ok, sizeof(ok), v->t, &out) == -EBADMSG);
	CHECK(read_blob(v, 3, ok, sizeof(ok), v->t, &out) == -ENOTSUP);
	/* no tree to predict from */
	CHECK(read_blob(v, 2, ok, sizeof(ok), NULL, &out) == -EBADMSG);
	static const struct {
		uint8_t rec[16];
		size_t n;
	} bad[] = {
	    {{6, 1, 0}, 3},                                   /* ENTRIES before any MODEL */
	    {{4, 9, 0, 0, 6, 1, 0}, 7},                       /* an unknown writer */
	    {{4, 3, 2, 0, 6, 1, 0}, 7},                       /* an unknown order */
	    {{4, 3, 0, 9, 6, 1, 0}, 7},                       /* a prefix too long */
	    {{4, 3, 0, 0, 6, 11, 0}, 7},                      /* more entries than the tree has */
	    {{4, 3, 0, 0, 5, 0x13, 0, 0}, 8},                 /* a skip past the end */
	    {{4, 3, 0, 0, 5, 2, 8, 0}, 8},                    /* an unknown flag */
	    {{4, 3, 0, 0, 5, 2, 4, 0}, 8},                    /* checksum flag without a patch */
	    {{4, 3, 0, 0, 5, 2, 1, 1, 0x80, 8, 0, 0, 0}, 13}, /* copy past the prediction */
	    {{4, 3, 0, 0, 5, 2, 1, 1, 0, 1, 0, 0}, 12},       /* a header cut to 511 bytes */
	    {{7, 0, 0}, 3},                                   /* no zeros */
	    {{4, 3, 0, 0, 5, 0x80, 0x00, 0, 0}, 9},           /* a varint not in shortest form */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(read_blob(v, 2, bad[i].rec, bad[i].n, v->t, &out) == -EBADMSG);
	dimg_buf_free(&out);
}

int main(void)
{
	struct env v = {0};
	make_tree(&v);
	check_models(&v);
	check_changed(&v);
	check_reader(&v);
	tarmodel_dfs_free(&v.dfs);
	dimg_tree_free(v.t);
	printf("recipes: ok\n");
	return 0;
}
