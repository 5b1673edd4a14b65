/* ctrd_smoke SOCK NS SNAPSHOTTER [INSPECT]: drives every ctrd call against a
 * real containerd and checks what comes back, including the errors. Runs
 * the shell command INSPECT while the lease still holds what it made, and
 * prints "blob <digest>" for the calling script, which checks the rest with
 * ctr and di3fs-snapctl. Exit 0 when every check passed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrd.h"
#include "dimg/hash.h"
#include "dimg/tree.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL line %d: %s: ", __LINE__, #cond);                    \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

static void digest_of(const uint8_t *p, size_t n, char out[72])
{
	uint8_t h[32];
	char hex[65];
	dimg_sha256_buf(p, n, h);
	dimg_hex32(h, hex);
	snprintf(out, 72, "sha256:%s", hex);
}

struct sink_state {
	const uint8_t *want;
	size_t n, off;
	unsigned calls;
};

static int compare_sink(void *ctx, const void *p, size_t n)
{
	struct sink_state *s = ctx;
	if (n > s->n - s->off || memcmp(s->want + s->off, p, n))
		return -EBADMSG;
	s->off += n;
	s->calls++;
	return 0;
}

static void count_progress(void *ctx, const char *what, uint64_t done, uint64_t total)
{
	(*(unsigned *)ctx)++;
}

static const char *msg(const struct dimg_err *err)
{
	return err->why[0] ? err->why : "(no message)";
}

static void check_content(struct ctrd *c, const uint8_t *blob, size_t n, const char *digest)
{
	struct dimg_err err = {0};
	char missing[72];
	int64_t size = 0;
	unsigned progress = 0;
	uint8_t *got = NULL;
	size_t got_n = 0;
	const struct ctrd_label la = {"di3fs.test/a", "1"}, lb = {"di3fs.test/b", "2"};
	digest_of((const uint8_t *)"no such blob", 12, missing);
	int r = ctrd_content_info(c, missing, &size, &err);
	CHECK(r == -ENOENT && strstr(err.why, "not found"), "info of a missing blob: %d %s", r,
	      msg(&err));
	r = ctrd_content_write_progress(c, digest, blob, n, &la, 1, count_progress, &progress,
	                                &err);
	CHECK(r == 0, "write: %s", msg(&err));
	CHECK(progress >= 4, "progress called %u times for %zu bytes", progress, n);
	r = ctrd_content_info(c, digest, &size, &err);
	CHECK(r == 0 && size == (int64_t)n, "info: %d size %lld %s", r, (long long)size, msg(&err));
	struct sink_state s = {.want = blob, .n = n};
	r = ctrd_content_read(c, digest, compare_sink, &s, &err);
	CHECK(r == 0 && s.off == n, "read: %d, %zu of %zu bytes: %s", r, s.off, n, msg(&err));
	r = ctrd_content_get(c, digest, n - 1, &got, &got_n, &err);
	CHECK(r == -EFBIG, "get with a small max: %d", r);
	r = ctrd_content_get(c, digest, n, &got, &got_n, &err);
	CHECK(r == 0 && got_n == n && !memcmp(got, blob, n), "get: %d %s", r, msg(&err));
	free(got);
	r = ctrd_content_write(c, digest, blob, n, &lb, 1, &err);
	CHECK(r == 0, "writing an existing blob: %d %s", r, msg(&err));
	r = ctrd_content_write(c, missing, blob, n, NULL, 0, &err);
	CHECK(r < 0 && strstr(err.why, missing), "a wrong digest: %d %s", r, msg(&err));
	fprintf(stderr, "wrong digest -> %d: %s\n", r, msg(&err));
}

static void check_images(struct ctrd *c, const char *digest, size_t n)
{
	struct ctrd_image img = {.name = "example.org/smoke:1",
	                         .media_type = "application/vnd.oci.image.manifest.v1+json",
	                         .digest = (char *)digest,
	                         .size = (int64_t)n},
	                  got, *v = NULL;
	const struct ctrd_label l = {"di3fs.test/image", "yes"};
	size_t nv = 0, found = 0;
	struct dimg_err err = {0};
	int r = ctrd_image_get(c, img.name, &got, &err);
	CHECK(r == -ENOENT, "get of a missing image: %d %s", r, msg(&err));
	r = ctrd_image_put(c, &img, &l, 1, &err);
	CHECK(r == 0, "put: %s", msg(&err));
	img.size = 42; /* again: an update */
	r = ctrd_image_put(c, &img, &l, 1, &err);
	CHECK(r == 0, "put again: %s", msg(&err));
	r = ctrd_image_get(c, img.name, &got, &err);
	CHECK(r == 0 && !strcmp(got.digest, digest) && got.size == 42 &&
	          !strcmp(got.media_type, img.media_type),
	      "get: %d %s", r, msg(&err));
	ctrd_image_clear(&got);
	r = ctrd_images_list(c, &v, &nv, &err);
	for (size_t i = 0; r == 0 && i < nv; i++)
		found += !strcmp(v[i].name, img.name);
	CHECK(r == 0 && found == 1, "list: %d, %zu of %zu", r, found, nv);
	ctrd_images_free(v, nv);
}

static void check_snapshots(struct ctrd *c, const char *sn)
{
	const struct ctrd_label prep[] = {{"containerd.io/snapshot/di3fs.smoke", "prepare"},
	                                  {"di3fs.test/not-forwarded", "x"}};
	const struct ctrd_label commit[] = {{"containerd.io/snapshot/di3fs.smoke", "commit"}};
	struct dimg_err err = {0};
	int r = ctrd_snapshot_stat(c, sn, "smoke-missing", &err);
	CHECK(r == -ENOENT, "stat of a missing snapshot: %d %s", r, msg(&err));
	r = ctrd_snapshot_prepare(c, sn, "smoke-active", NULL, prep, 2, &err);
	CHECK(r == 0, "prepare: %s", msg(&err));
	r = ctrd_snapshot_prepare(c, sn, "smoke-active", NULL, prep, 2, &err);
	CHECK(r == -EEXIST, "prepare of an existing key: %d %s", r, msg(&err));
	r = ctrd_snapshot_prepare(c, sn, "smoke-tocommit", NULL, prep, 2, &err);
	CHECK(r == 0, "prepare: %s", msg(&err));
	r = ctrd_snapshot_commit(c, sn, "smoke-committed", "smoke-tocommit", commit, 1, &err);
	CHECK(r == 0, "commit: %s", msg(&err));
	r = ctrd_snapshot_stat(c, sn, "smoke-committed", &err);
	CHECK(r == 0, "stat: %s", msg(&err));
	r = ctrd_snapshot_prepare(c, sn, "smoke-child", "smoke-committed", NULL, 0, &err);
	CHECK(r == 0, "prepare over a parent: %s", msg(&err));
	r = ctrd_snapshot_remove(c, sn, "smoke-committed", &err);
	CHECK(r == -EBUSY, "remove of a parent: %d %s", r, msg(&err));
	r = ctrd_snapshot_remove(c, sn, "smoke-child", &err);
	CHECK(r == 0, "remove: %s", msg(&err));
	r = ctrd_snapshot_remove(c, sn, "smoke-child", &err);
	CHECK(r == -ENOENT, "remove again: %d %s", r, msg(&err));
}

int main(int argc, char **argv)
{
	struct ctrd *c = NULL;
	struct dimg_err err = {0};
	char digest[72];
	size_t n = (3u << 20) + 12345; /* four WRITE messages */
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: ctrd_smoke SOCK NS SNAPSHOTTER [INSPECT]\n");
		return 2;
	}
	int r = ctrd_connect(&c, "/nonexistent/containerd.sock", argv[2], 1000, &err);
	CHECK(r == -ENOENT && strstr(err.why, "/nonexistent/containerd.sock"),
	      "connect to a missing socket: %d %s", r, msg(&err));
	dimg_err_clear(&err);
	if ((r = ctrd_connect(&c, argv[1], argv[2], 10000, &err)) < 0) {
		fprintf(stderr, "FAIL: connect: %s\n", msg(&err));
		return 1;
	}
	uint8_t *blob = malloc(n);
	uint32_t x = 12345;
	for (size_t i = 0; blob && i < n; i++) {
		x = x * 1103515245u + 12345u;
		blob[i] = (uint8_t)(x >> 24);
	}
	digest_of(blob, n, digest);
	r = ctrd_lease_create(c, 600, &err);
	CHECK(r == 0, "lease create: %s", msg(&err));
	check_content(c, blob, n, digest);
	check_images(c, digest, n);
	check_snapshots(c, argv[3]);
	fflush(NULL);
	CHECK(argc < 5 || system(argv[4]) == 0, "inspect command %s failed", argv[4]);
	r = ctrd_lease_delete(c, &err);
	CHECK(r == 0, "lease delete: %s", msg(&err));
	CHECK(ctrd_lease_delete(c, &err) == 0, "second lease delete: %s", msg(&err));
	printf("blob %s\n", digest);
	free(blob);
	ctrd_close(c);
	return failures ? 1 : 0;
}
