/* libFuzzer target for image tars (OCI image layout or docker save): the
 * input is the archive, opened with dimg_image_open through a memfd. An
 * image that opens must have a valid tree whose regular files open from
 * the store at their size, and metadata that says what it is.
 *
 * The last byte picks the ref and platform asked for (a tar ignores what
 * follows its end, and valid archives end in a zero byte: the defaults). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dimg/image.h"
#include "dimg/write.h"
#include "tree-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Blobs pile up in the store over millions of runs: empty it after this
 * many. */
#define FUZZ_CAS_RUNS 1024

static const char *const fuzz_refs[4] = {NULL, "app:v1", "docker.io/library/app:v1", "other"};
static const char *const fuzz_platforms[4] = {NULL, "linux/amd64", "linux/arm/v7", "linux/s390x"};

/* One store directory per process (a fuzzer runs one input at a time). */
static char fuzz_cas_dir[64];
static unsigned fuzz_cas_runs;

static void fuzz_cas_remove(void)
{
	if (fuzz_cas_dir[0])
		(void)dimg_rmtree(fuzz_cas_dir);
}

static const char *fuzz_cas_get(void)
{
	if (fuzz_cas_dir[0] && ++fuzz_cas_runs < FUZZ_CAS_RUNS)
		return fuzz_cas_dir;
	if (!fuzz_cas_dir[0]) {
		const char *tmp = getenv("TMPDIR");
		snprintf(fuzz_cas_dir, sizeof(fuzz_cas_dir), "%s/fuzz-oci-XXXXXX",
		         tmp && tmp[0] == '/' && strlen(tmp) < 32 ? tmp : "/tmp");
		if (!mkdtemp(fuzz_cas_dir)) {
			perror("fuzz_oci: store directory");
			abort();
		}
		atexit(fuzz_cas_remove);
	}
	fuzz_cas_runs = 0;
	/* dimg_image_open makes the directory again if it is gone. */
	(void)dimg_rmtree(fuzz_cas_dir);
	return fuzz_cas_dir;
}

static void fuzz_fail(const char *what, const char *path)
{
	fprintf(stderr, "fuzz_oci: %s at '%s'\n", what, path ? path : "");
	abort();
}

static void fuzz_check(const struct dimg_image *img)
{
	struct dimg_err bad = {0};
	if (!img->tree || dimg_tree_validate(img->tree, &bad) < 0)
		fuzz_fail("opened image has an invalid tree", bad.what);
	if (!img->config || !img->manifest || !img->manifest_media_type ||
	    strncmp(img->config_digest, "sha256:", 7) != 0 ||
	    strncmp(img->manifest_digest, "sha256:", 7) != 0)
		fuzz_fail("opened image lacks its metadata", NULL);
	for (size_t i = 0; i < img->tree->n; i++) {
		const struct dimg_entry *e = &img->tree->v[i];
		struct stat st;
		int fd = -1;
		if (e->type != DIMG_TYPE_REG && e->type != DIMG_TYPE_HARDLINK)
			continue;
		if (img->files.open(img->files.ctx, e, &fd) < 0)
			fuzz_fail("regular file does not open", e->path);
		const struct dimg_entry *reg =
		    e->type == DIMG_TYPE_REG ? e : dimg_tree_find(img->tree, e->link);
		if (!reg || fstat(fd, &st) < 0 || (uint64_t)st.st_size != reg->size)
			fuzz_fail("stored content has the wrong size", e->path);
		close(fd);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dimg_image_opts o = {0};
	struct dimg_image *img = NULL;
	struct dimg_err err = {0};
	char path[64];
	uint8_t knobs = size ? data[size - 1] : 0;
	o.ref = fuzz_refs[knobs & 3];
	o.platform = fuzz_platforms[(knobs >> 2) & 3];
	o.jobs = 1;
	o.cas_dir = fuzz_cas_get();
	int fd = memfd_create("fuzz-oci", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
		perror("fuzz_oci: memfd");
		abort();
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int r = dimg_image_open(&img, path, &o, &err);
	if (r == 0)
		fuzz_check(img);
	else if (r != -ENOMEM && !err.why[0] && !err.what[0])
		fuzz_fail("refused without a message", NULL);
	if (getenv("DIMG_FUZZ_VERBOSE"))
		fprintf(stderr, "image: %d %s: %s (%zu entries)\n", r, err.what, err.why,
		        img ? img->tree->n : 0);
	dimg_image_free(img);
	close(fd);
	return 0;
}
