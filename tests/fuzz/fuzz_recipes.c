/* libFuzzer target for the layer recipe writer (packer/layers_enc.c): any
 * byte stream, taken as a layer tar, is recorded (tar-split records), its
 * entries predicted against the small tree of fuzz-recipes-tree.h, and the
 * predicted records must stand for exactly what the plain ones do (same
 * digest: tar bytes, and each content's place, size and SHA-256). The
 * seeds are layers of that tree as each writer model writes it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The recorder is private to libdimg (see fuzz_squash.c). */
#include "../../dimg/lib/image/cas-internal.h"
#include "fuzz-recipes-tree.h"
#include "layers-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_recipes: %s\n", what);
	abort();
}

/* The plain records of data as a layer, or -1 (a file cut short). */
static int record(const uint8_t *data, size_t size, struct dimg_buf *plain)
{
	struct dimg_tarsplit *ts = NULL;
	uint64_t off, len;
	FILE *f = tmpfile();
	if (!f || dimg_tarsplit_new(&ts, f) < 0)
		fuzz_fail("setup");
	dimg_tarsplit_begin(ts);
	int r = dimg_tarsplit_feed(ts, data, size);
	if (r == 0)
		r = dimg_tarsplit_end(ts, &off, &len, 0);
	if (r == 0 && (dimg_buf_reserve(plain, (size_t)len + 1) < 0 || fseek(f, 0, SEEK_SET) ||
	               fread(plain->data, 1, (size_t)len, f) != len))
		fuzz_fail("reading the records back");
	plain->len = r == 0 ? (size_t)len : 0;
	dimg_tarsplit_free(ts);
	fclose(f);
	return r == 0 ? 0 : -1;
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

static void digest(const struct dimg_buf *b, const struct dimg_tree *t, uint8_t out[64])
{
	struct lrec_mem m = {b->data, b->len, 0};
	struct lrec_in in = {lrec_mem_read, &m};
	if (lpred_digest(&in, t, out) < 0 || m.at != m.n)
		fuzz_fail(t ? "the predicted records do not read"
		            : "the plain records do not read");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dimg_buf plain = {0}, pred = {0};
	struct dimg_tree *t = NULL;
	struct tarmodel_dfs dfs = {0};
	struct lenc_stats st;
	uint8_t want[64], got[64];
	if (recipes_tree_new(&t) < 0 || tarmodel_dfs_build(&dfs, t) < 0)
		fuzz_fail("setup");
	if (record(data, size, &plain) == 0) {
		struct lrec_mem m = {plain.data, plain.len, 0};
		struct lenc_src src = {lrec_mem_read, mem_rewind, &m};
		struct lenc_out out = {buf_write, buf_file, &pred};
		if (lenc_layer(&src, t, &dfs, &out, &st) < 0)
			fuzz_fail("the writer refused a layer");
		digest(&plain, NULL, want);
		digest(&pred, t, got);
		if (memcmp(want, got, sizeof(want)))
			fuzz_fail("the predicted records stand for another layer");
		if (st.entries != st.exact + st.patched + st.raw)
			fuzz_fail("entries miscounted");
	}
	dimg_buf_free(&plain);
	dimg_buf_free(&pred);
	tarmodel_dfs_free(&dfs);
	dimg_tree_free(t);
	return 0;
}
