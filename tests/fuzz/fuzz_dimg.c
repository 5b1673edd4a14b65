/* libFuzzer target for the .dimg reader: open, resolve against a fixed base
 * tree, rebuild every regular file from in-memory base contents. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dimg/dimg.h"
#include "dimg/hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const base_paths[] = {"a", "b", "d/x"};
static const char *const base_data[] = {"first file\n", "second file, a bit longer\n", "x\n"};

static int base_open(void *ctx, const struct dimg_entry *e, int *fd)
{
	(void)ctx;
	for (size_t i = 0; i < 3; i++) {
		if (strcmp(base_paths[i], e->path) != 0)
			continue;
		int f = memfd_create("base", MFD_CLOEXEC);
		size_t n = strlen(base_data[i]);
		if (f < 0 || write(f, base_data[i], n) != (ssize_t)n ||
		    lseek(f, 0, SEEK_SET) != 0) {
			if (f >= 0)
				close(f);
			return -EIO;
		}
		*fd = f;
		return 0;
	}
	return -ENOENT;
}

static void add(struct dimg_tree *t, const char *path, int type, const char *content)
{
	struct dimg_entry e = {0};
	e.path = (char *)path;
	e.type = (uint8_t)type;
	e.mode = 0755;
	if (content) {
		e.size = strlen(content);
		dimg_sha256_buf(content, e.size, e.sha256);
	}
	dimg_tree_append(t, &e);
}

static int discard(void *ctx, const void *p, size_t n)
{
	(void)ctx;
	(void)p;
	(void)n;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dimg_tree *base = NULL, *t = NULL;
	struct dimg_reader *rd = NULL;
	struct dimg_files files = {base_open, NULL};
	uint8_t *buf = malloc(size ? size : 1), id[32];
	if (!buf || dimg_tree_new(&base) < 0)
		goto out;
	memcpy(buf, data, size);
	add(base, "", DIMG_TYPE_DIR, NULL);
	add(base, "a", DIMG_TYPE_REG, base_data[0]);
	add(base, "b", DIMG_TYPE_REG, base_data[1]);
	add(base, "d", DIMG_TYPE_DIR, NULL);
	add(base, "d/x", DIMG_TYPE_REG, base_data[2]);
	/* Give every input the right base id, so the fuzzer reaches the index
	 * ops and rebuilds instead of stopping at the wrong-base check. */
	if (size >= 48 && dimg_tree_id(base, id) == 0)
		memcpy(buf + 16, id, 32);
	if (dimg_reader_open_mem(&rd, buf, size) == 0) {
		if (dimg_reader_resolve(rd, base, &t) == 0) {
			for (size_t i = 0; i < t->n; i++)
				if (t->v[i].type == DIMG_TYPE_REG)
					dimg_reader_rebuild(rd, &t->v[i], &files, discard, NULL);
		}
	}
out:
	dimg_tree_free(t);
	dimg_tree_free(base);
	dimg_reader_free(rd);
	free(buf);
	return 0;
}
