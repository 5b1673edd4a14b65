/* libFuzzer target for reading images from archives the way cdimg copy
 * does (transport/lib/laysrc.c, dockerarchive.c): the input is an OCI
 * layout tar or a docker save, read through a memfd as oci-archive: or
 * docker-archive:. The manifest a name picks must come with its digest
 * checked, and every blob it names must read within bounds or fail.
 *
 * The last byte picks the transport, ref, platform and --all-platforms
 * (valid archives end in a zero byte: oci-archive:, the defaults). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>

#include "layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_refs[4] = {NULL, "app:v1", "docker.io/library/app:v1", "v1"};
static const char *const fuzz_platforms[4] = {NULL, "linux/amd64", "linux/arm/v7", "linux/s390x"};

struct fuzz_count {
	uint64_t n, max;
};

static int fuzz_sink(void *ctx, const void *p, size_t n)
{
	struct fuzz_count *c = ctx;
	(void)p;
	c->n += n;
	return c->n > c->max ? -EFBIG : 0;
}

static void fuzz_blobs(struct xport *x, const struct xport_manifest *m)
{
	struct json_object *doc;
	struct oci_desc *v;
	size_t n;
	if (xman_children(m, &doc, &v, &n, NULL) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct fuzz_count c = {0, v[i].size + 1};
		int has = laysrc_has_blob(x, &v[i], NULL);
		int r = laysrc_get_blob(x, &v[i], 0, fuzz_sink, &c, NULL);
		if (has < 0 || (r == 0 && c.n > v[i].size + 1))
			abort();
	}
	free(v);
	json_object_put(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t pick = size ? data[size - 1] : 0;
	char path[64];
	int fd = memfd_create("fuzz-xlayout", MFD_CLOEXEC);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size)) {
		perror("fuzz_xlayout: memfd");
		abort();
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct xport x = {.name = {.kind = pick & 1 ? XPORT_DOCKER_ARCHIVE : XPORT_OCI_ARCHIVE,
	                           .where = path,
	                           .ref = (char *)fuzz_refs[(pick >> 1) & 3]},
	                  .opts = {.platform = fuzz_platforms[(pick >> 3) & 3],
	                           .all_platforms = (pick >> 5) & 1}};
	struct xport_manifest m;
	uint8_t d[32];
	if (laysrc_open(&x, 0, NULL) == 0 && laysrc_get_manifest(&x, &m, NULL) == 0) {
		if (dimg_sha256_buf(m.raw, m.len, d) < 0 || memcmp(d, m.digest, 32) != 0)
			abort(); /* a manifest is never handed out unchecked */
		fuzz_blobs(&x, &m);
		xport_manifest_clear(&m);
	}
	laysrc_close(x.priv);
	close(fd);
	return 0;
}
