/* .cdimg and OCI output without images: a small tree pair is diffed, wrapped
 * with a made-up target config and manifest, read back (every single-byte
 * flip is refused or harmless, truncations are refused), and applied into
 * an OCI image tar; both outputs are byte-identical when written twice. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zstd.h>

#include "cdimg.h"
#include "check.h"
#include "differ.h"
#include "dimg/dimg.h"
#include "dimg/hash.h"
#include "layers.h"
#include "ociwrite.h"
#include "packer.h"

static const char CONFIG[] =
    "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Entrypoint\":[\"/bin/tool\"],"
    "\"Env\":[\"A=1\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:"
    "1111111111111111111111111111111111111111111111111111111111111111\",\"sha256:"
    "2222222222222222222222222222222222222222222222222222222222222222\"]},\"history\":["
    "{\"created_by\":\"ADD a\"},{\"created_by\":\"ENV A=1\",\"empty_layer\":true},"
    "{\"created_by\":\"RUN b\"}]}";
static const char BASE_CFG_DIGEST[] =
    "sha256:3333333333333333333333333333333333333333333333333333333333333333";

struct env {
	char dir[PATH_MAX];
	char v1[PATH_MAX + 8], v2[PATH_MAX + 8];
	char manifest[1024];
};

static void put(const char *root, const char *rel, const char *data, size_t n)
{
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, data, n) == (ssize_t)n);
	close(fd);
}

static void mkdirs(const char *root)
{
	char p[PATH_MAX * 2];
	CHECK(mkdir(root, 0755) == 0);
	snprintf(p, sizeof(p), "%s/bin", root);
	CHECK(mkdir(p, 0755) == 0);
	snprintf(p, sizeof(p), "%s/etc", root);
	CHECK(mkdir(p, 0755) == 0);
}

static void make_pair(struct env *e)
{
	char buf[5000], p[PATH_MAX * 2], q[PATH_MAX * 2];
	unsigned long long s = 42;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(test_rand(&s) % 5);
	mkdirs(e->v1);
	mkdirs(e->v2);
	put(e->v1, "bin/tool", buf, sizeof(buf));
	put(e->v1, "etc/kept", "keep me\n", 8);
	put(e->v1, "etc/gone", "bye\n", 4);
	memcpy(buf + 1000, "patched!", 8);
	put(e->v2, "bin/tool", buf, sizeof(buf));
	put(e->v2, "etc/kept", "keep me\n", 8);
	put(e->v2, "etc/fresh", "only in v2\n", 11);
	put(e->v2, "etc/empty", "", 0);
	snprintf(p, sizeof(p), "%s/bin/tool", e->v2);
	CHECK(chmod(p, 04755) == 0);
	CHECK(setxattr(p, "user.di3fs", "x\0y", 3, 0) == 0);
	snprintf(q, sizeof(q), "%s/etc/hard", e->v2);
	snprintf(p, sizeof(p), "%s/etc/kept", e->v2);
	CHECK(link(p, q) == 0);
	snprintf(p, sizeof(p), "%s/etc/link", e->v2);
	CHECK(symlink("kept", p) == 0);
	snprintf(p, sizeof(p), "%s/etc/fifo", e->v2);
	CHECK(mkfifo(p, 0600) == 0);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0 && fstat(fd, &st) == 0);
	uint8_t *b = malloc((size_t)st.st_size + 1);
	CHECK(b && read(fd, b, (size_t)st.st_size) == st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, b, len) == (ssize_t)len);
	close(fd);
}

static void same_bytes(const char *a, const char *b)
{
	size_t la, lb;
	uint8_t *x = slurp(a, &la), *y = slurp(b, &lb);
	CHECK(la == lb && memcmp(x, y, la) == 0);
	free(x);
	free(y);
}

static void write_dimg(const struct env *e, const char *out, struct dimg_tree **base_out)
{
	struct dimg_tree *base, *target, *plan;
	struct dimg_files bf, tf;
	struct packer_opts po;
	struct packer_stats st;
	CHECK_RC(dimg_tree_walk(&base, e->v1, 0, 1, NULL, NULL, NULL));
	CHECK_RC(dimg_tree_walk(&target, e->v2, 0, 1, NULL, NULL, NULL));
	CHECK_RC(dimg_dir_files_open(&bf, e->v1));
	CHECK_RC(dimg_dir_files_open(&tf, e->v2));
	CHECK_RC(differ_plan(base, target, &plan));
	packer_opts_default(&po);
	po.jobs = 1;
	CHECK_RC(packer_write_dimg(out, base, &bf, plan, &tf, &po, &st, NULL));
	dimg_dir_files_close(&bf);
	dimg_dir_files_close(&tf);
	dimg_tree_free(target);
	dimg_tree_free(plan);
	*base_out = base;
}

static void write_cdimg(const struct env *e, const char *dimg, const char *out)
{
	struct cdimg_meta m = {.base_config_digest = BASE_CFG_DIGEST,
	                       .target_config = (const uint8_t *)CONFIG,
	                       .target_config_len = strlen(CONFIG),
	                       .target_manifest = (const uint8_t *)e->manifest,
	                       .target_manifest_len = strlen(e->manifest),
	                       .target_ref = "example.org/app:v2"};
	uint64_t size = 0;
	CHECK_RC(cdimg_write(out, dimg, &m, 0, &size, NULL));
	CHECK(size > 0);
}

static void check_info(const struct cdimg_info *in, const struct env *e)
{
	char cfg[OCI_DIGEST_LEN];
	CHECK_RC(oci_digest_buf(cfg, CONFIG, strlen(CONFIG)));
	CHECK(!strcmp(in->base_config_digest, BASE_CFG_DIGEST));
	CHECK(!strcmp(in->target_config_digest, cfg));
	CHECK(in->target_ref && !strcmp(in->target_ref, "example.org/app:v2"));
	CHECK(!strcmp(in->target_manifest_media_type, OCI_MT_MANIFEST));
	CHECK(in->target_config_len == strlen(CONFIG) &&
	      !memcmp(in->target_config, CONFIG, strlen(CONFIG)));
	CHECK(in->target_manifest_len == strlen(e->manifest) &&
	      !memcmp(in->target_manifest, e->manifest, strlen(e->manifest)));
	CHECK(in->dimg_version == 1 && in->dimg_offset % 512 == 0);
}

/* Every flipped byte: refused with a known code, or the same delta. */
static void flips(const char *good, const char *scratch, const struct cdimg_info *ref)
{
	size_t len, refused = 0;
	uint8_t *b = slurp(good, &len);
	for (size_t i = 0; i < len; i++) {
		struct cdimg *c = NULL;
		struct dimg_err err = {0};
		b[i] ^= 0x41;
		spit(scratch, b, len);
		b[i] ^= 0x41;
		int r = cdimg_open(&c, scratch, &err);
		if (r < 0) {
			CHECK(r == -EBADMSG || r == -ENOTSUP || r == -EOVERFLOW);
			CHECK(err.why[0]);
			refused++;
		} else {
			const struct cdimg_info *in = cdimg_get_info(c);
			CHECK(!strcmp(in->dimg_digest, ref->dimg_digest));
			CHECK(!strcmp(in->manifest_digest, ref->manifest_digest));
		}
		cdimg_free(c);
	}
	printf("flips: %zu of %zu refused (the rest hit padding or ignored header fields)\n",
	       refused, len);
	CHECK(refused > len / 10);
	/* Cut anywhere before the second end block (which may go). */
	for (size_t n = 0; n + 512 < len; n += 97) {
		struct cdimg *c = NULL;
		spit(scratch, b, n);
		CHECK(cdimg_open(&c, scratch, NULL) < 0);
	}
	free(b);
}

struct apply_ctx {
	struct dimg_reader *rd;
	struct dimg_files *base;
};

static int content(void *ctx, const struct dimg_entry *e, dimg_write_fn sink, void *sink_ctx)
{
	struct apply_ctx *a = ctx;
	return dimg_reader_rebuild(a->rd, e, a->base, sink, sink_ctx);
}

static void write_oci(const struct env *e, const char *cd, const struct dimg_tree *base, int gzip,
                      const char *out, struct oci_image_result *res)
{
	struct cdimg *c;
	struct dimg_tree *target;
	struct dimg_files bf;
	struct apply_ctx ac;
	struct oci_image_opts o = {.gzip = gzip, .ref = "example.org/app:v2"};
	CHECK_RC(cdimg_open(&c, cd, NULL));
	CHECK_RC(cdimg_dimg_reader(c, &ac.rd));
	CHECK_RC(dimg_reader_resolve(ac.rd, base, &target));
	CHECK_RC(dimg_dir_files_open(&bf, e->v1));
	ac.base = &bf;
	const struct cdimg_info *in = cdimg_get_info(c);
	CHECK_RC(oci_image_write(out, target, content, &ac, in->target_config,
	                         in->target_config_len, &o, res, NULL));
	dimg_dir_files_close(&bf);
	dimg_tree_free(target);
	dimg_reader_free(ac.rd);
	cdimg_free(c);
}

/* A .cdimg with a third layer: the blob is carried as given and found. */
static void check_layers_carried(const struct env *e, const char *dimg, const char *out)
{
	static const char blob[] = "not parsed by the .cdimg reader";
	char lp[PATH_MAX + 32], want[OCI_DIGEST_LEN];
	struct cdimg *c;
	snprintf(lp, sizeof(lp), "%s/recipes", e->dir);
	spit(lp, (const uint8_t *)blob, sizeof(blob));
	struct cdimg_meta m = {.base_config_digest = BASE_CFG_DIGEST,
	                       .target_config = (const uint8_t *)CONFIG,
	                       .target_config_len = strlen(CONFIG),
	                       .target_manifest = (const uint8_t *)e->manifest,
	                       .target_manifest_len = strlen(e->manifest),
	                       .layers_path = lp};
	CHECK_RC(
	    cdimg_write(out, dimg, &m, PACKER_REPLACE, NULL, NULL)); /* over the scratch file */
	CHECK_RC(cdimg_open(&c, out, NULL));
	const struct cdimg_info *in = cdimg_get_info(c);
	CHECK_RC(oci_digest_buf(want, blob, sizeof(blob)));
	CHECK(in->layers && in->layers_size == sizeof(blob) &&
	      !memcmp(in->layers, blob, sizeof(blob)));
	CHECK(!strcmp(in->layers_digest, want));
	cdimg_free(c);
	unlink(lp);
}

static int buf_sink(void *ctx, const void *p, size_t n)
{
	return dimg_buf_append(ctx, p, n);
}

/* Reads one handmade layer recipe (RAW, INLINE, END) of a blob. */
static int read_recipe(const uint8_t *raw, size_t n, struct dimg_buf *out)
{
	struct layers_reader *r = NULL;
	struct layers_layer l;
	struct layers_src src = {0};
	struct dimg_err why = {0};
	size_t cap = ZSTD_compressBound(n);
	uint8_t *z = malloc(cap);
	size_t zn = ZSTD_compress(z, cap, raw, n, 3);
	CHECK(!ZSTD_isError(zn));
	int rc = layers_open(&r, z, zn, &why);
	if (rc == 0)
		rc = layers_next(r, 0, &l, &why);
	if (rc == 0)
		rc = layers_write(r, &src, buf_sink, out, &why);
	CHECK(rc == 0 || why.why[0]);
	layers_free(r);
	free(z);
	return rc;
}

static void check_layers_reader(void)
{
	static const char tarbytes[] = "header bytes", content[] = "file content";
	uint8_t raw[256], sha[32];
	size_t n = 0;
	struct dimg_buf out = {0};
	memcpy(raw, "DI3LAYRS\1\0\0\0\1\0\0\0", 16);
	n = 16;
	memset(raw + n, 0, 36);
	raw[n] = LAYERS_RECIPE;
	n += 36;
	raw[n++] = DIMG_RECIPE_RAW;
	memcpy(raw + n, "\x0c\0\0\0", 4);
	memcpy(raw + n + 4, tarbytes, 12);
	n += 16;
	raw[n++] = DIMG_RECIPE_INLINE;
	memcpy(raw + n, "\x0c\0\0\0\0\0\0\0", 8);
	CHECK_RC(dimg_sha256_buf(content, 12, sha));
	memcpy(raw + n + 8, sha, 32);
	memcpy(raw + n + 40, content, 12);
	n += 52;
	raw[n++] = DIMG_RECIPE_END;
	CHECK_RC(read_recipe(raw, n, &out));
	CHECK(out.len == 24 && !memcmp(out.data, "header bytesfile content", 24));
	/* a wrong embedded content, an unknown record, a cut, a version */
	size_t at_content = n - 13, at_end = n - 1;
	raw[at_content] ^= 1;
	out.len = 0;
	CHECK(read_recipe(raw, n, &out) == -EBADMSG);
	raw[at_content] ^= 1;
	raw[at_end] = 9;
	CHECK(read_recipe(raw, n, &out) == -EBADMSG);
	raw[at_end] = DIMG_RECIPE_END;
	CHECK(read_recipe(raw, n - 5, &out) == -EBADMSG);
	raw[8] = 2; /* version 2 reads version 1's records alike */
	out.len = 0;
	CHECK_RC(read_recipe(raw, n, &out));
	CHECK(out.len == 24 && !memcmp(out.data, "header bytesfile content", 24));
	raw[8] = 3;
	CHECK(read_recipe(raw, n, &out) == -ENOTSUP);
	dimg_buf_free(&out);
}

static void check_squashed_config(void)
{
	struct dimg_buf out = {0};
	struct json_object *o, *h, *ids;
	const char *id = "sha256:4444444444444444444444444444444444444444444444444444444444444444";
	CHECK_RC(oci_config_squash((const uint8_t *)CONFIG, strlen(CONFIG), id, &out));
	CHECK_RC(oci_json_parse(&o, out.data, out.len));
	CHECK(json_object_object_get_ex(o, "history", &h) && json_object_array_length(h) == 3);
	CHECK(json_object_object_get_ex(json_object_array_get_idx(h, 0), "empty_layer", NULL));
	CHECK(!json_object_object_get_ex(json_object_array_get_idx(h, 2), "empty_layer", NULL));
	CHECK(json_object_object_get_ex(json_object_array_get_idx(h, 2), "comment", NULL));
	CHECK(json_object_object_get_ex(json_object_object_get(o, "rootfs"), "diff_ids", &ids));
	CHECK(json_object_array_length(ids) == 1 &&
	      !strcmp(json_object_get_string(json_object_array_get_idx(ids, 0)), id));
	CHECK(strstr((const char *)out.data, "\"Entrypoint\":[\"/bin/tool\"]"));
	json_object_put(o);
	CHECK(oci_config_squash((const uint8_t *)"[1]", 3, id, &out) == -EBADMSG);
	CHECK(oci_config_squash((const uint8_t *)"{\"a\":", 5, id, &out) == -EBADMSG);
	dimg_buf_free(&out);
}

int main(void)
{
	struct env e;
	struct dimg_tree *base;
	struct cdimg *c;
	struct oci_image_result r1, r2, r3;
	char p[8][PATH_MAX + 32], cfgd[OCI_DIGEST_LEN];
	const char *names[8] = {"d.dimg", "a.cdimg", "b.cdimg", "bad.cdimg",
	                        "a.tar",  "b.tar",   "c.tar",   "d.tar"};
	snprintf(e.dir, sizeof(e.dir), "/tmp/di3fs-test-cdimg.XXXXXX");
	CHECK(mkdtemp(e.dir));
	snprintf(e.v1, sizeof(e.v1), "%s/v1", e.dir);
	snprintf(e.v2, sizeof(e.v2), "%s/v2", e.dir);
	for (int i = 0; i < 8; i++)
		snprintf(p[i], sizeof(p[i]), "%s/%s", e.dir, names[i]);
	CHECK_RC(oci_digest_buf(cfgd, CONFIG, strlen(CONFIG)));
	snprintf(
	    e.manifest, sizeof(e.manifest),
	    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu},"
	    "\"layers\":[]}",
	    OCI_MT_CONFIG, cfgd, strlen(CONFIG));
	check_squashed_config();
	make_pair(&e);
	write_dimg(&e, p[0], &base);
	write_cdimg(&e, p[0], p[1]);
	write_cdimg(&e, p[0], p[2]);
	same_bytes(p[1], p[2]);
	CHECK(cdimg_sniff(p[1]) == CDIMG_KIND_CDIMG && cdimg_sniff(p[0]) == CDIMG_KIND_DIMG);
	CHECK_RC(cdimg_open(&c, p[1], NULL));
	check_info(cdimg_get_info(c), &e);
	flips(p[1], p[3], cdimg_get_info(c));
	cdimg_free(c);
	check_layers_carried(&e, p[0], p[3]);
	check_layers_reader();

	write_oci(&e, p[1], base, 0, p[4], &r1);
	write_oci(&e, p[1], base, 0, p[5], &r2);
	same_bytes(p[4], p[5]);
	CHECK(!strcmp(r1.layer_digest, r1.diff_id) &&
	      !strcmp(r1.manifest_digest, r2.manifest_digest));
	write_oci(&e, p[1], base, 1, p[6], &r3);
	write_oci(&e, p[1], base, 1, p[7], &r2);
	same_bytes(p[6], p[7]);
	CHECK(!strcmp(r3.diff_id, r1.diff_id) && strcmp(r3.layer_digest, r3.diff_id) != 0);
	CHECK(r3.layer_size < r3.layer_raw_size);
	printf("cdimg %s: ok; OCI layer %s\n", p[1], r1.layer_digest);

	dimg_tree_free(base);
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e.dir);
	if (!getenv("DI3FS_KEEP"))
		CHECK(system(cmd) == 0);
	return 0;
}
