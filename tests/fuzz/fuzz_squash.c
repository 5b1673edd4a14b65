/* libFuzzer target for the streaming layer squash: the input is one or two
 * layer blobs (plain tar, or any filter libarchive detects) applied in
 * order. A squash that succeeds must give a valid tree whose regular files
 * are in the store at their size, and the same tree when run again.
 *
 * Byte 0 of the input holds the knobs, the rest is the layer data:
 *   bit 0     two layers, split at byte 1 * 512 (tar blocks) of the rest
 *   bit 1     layer sizes unknown (UINT64_MAX) instead of declared
 *   bit 2     the expected digest and diff_id are the real ones
 *   bit 3     the expected digest is wrong (the refusal blames the digest)
 *   bits 4-6  how many bytes each read callback hands out
 *   bit 7     tar header checksums are recomputed first, so that mutated
 *             headers reach the squash rather than libarchive's check */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The squash API is private to libdimg; dimg_fuzz exports only its public
 * include directory. */
#include "cas-internal.h"
#include "dimg/hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Blobs pile up in the store over millions of runs: start a fresh one
 * after this many. */
#define FUZZ_CAS_RUNS 2048

struct fuzz_src {
	const uint8_t *p;
	size_t len, off, chunk;
};

static int fuzz_src_read(void *ctx, const void **buf, size_t *len)
{
	struct fuzz_src *s = ctx;
	size_t n = s->len - s->off;
	*buf = s->p + s->off;
	*len = n < s->chunk ? n : s->chunk;
	s->off += *len;
	return 0;
}

/* One store per process (a fuzzer runs one input at a time), removed at
 * exit since dimg_cas_open(NULL) makes it private. */
static struct dimg_cas *fuzz_cas;
static unsigned fuzz_cas_runs;

static void fuzz_cas_close(void)
{
	dimg_cas_free(fuzz_cas);
	fuzz_cas = NULL;
}

static struct dimg_cas *fuzz_cas_get(void)
{
	if (fuzz_cas && ++fuzz_cas_runs < FUZZ_CAS_RUNS)
		return fuzz_cas;
	if (!fuzz_cas)
		atexit(fuzz_cas_close);
	fuzz_cas_close();
	fuzz_cas_runs = 0;
	if (dimg_cas_open(&fuzz_cas, NULL) < 0) {
		perror("fuzz_squash: content store");
		abort();
	}
	return fuzz_cas;
}

static void fuzz_fail(const char *what, const char *path)
{
	fprintf(stderr, "fuzz_squash: %s at '%s'\n", what, path ? path : "");
	abort();
}

/* Every regular file's content is in the store, at the size the tree says. */
static void fuzz_check_contents(const struct dimg_cas *cas, const struct dimg_tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct dimg_entry *e = &t->v[i];
		struct stat st;
		int fd;
		if (e->type != DIMG_TYPE_REG)
			continue;
		if (dimg_cas_open_blob(cas, e->sha256, &fd) < 0)
			fuzz_fail("content missing from the store", e->path);
		if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != e->size)
			fuzz_fail("stored content has the wrong size", e->path);
		close(fd);
	}
}

static uint64_t fuzz_tar_size(const uint8_t *h)
{
	uint64_t v = 0;
	if (h[124] & 0x80) { /* base-256 */
		for (int i = 125; i < 136; i++)
			v = v << 8 | h[i];
		return v;
	}
	for (int i = 124; i < 136 && h[i] >= '0' && h[i] <= '7'; i++)
		v = v << 3 | (uint64_t)(h[i] - '0');
	return v;
}

/* Walks the headers of a plain tar stream (data blocks skipped by each
 * header's size) and writes their checksums as ustar does. Zero blocks
 * (the end of the archive) are left alone. */
static void fuzz_tar_fix_checksums(uint8_t *p, size_t len)
{
	static const uint8_t zero[512];
	for (size_t off = 0; len - off >= 512;) {
		uint8_t *h = p + off;
		unsigned sum = 0;
		off += 512;
		if (memcmp(h, zero, 512) == 0)
			continue;
		memset(h + 148, ' ', 8);
		for (int i = 0; i < 512; i++)
			sum += h[i];
		snprintf((char *)h + 148, 8, "%06o", sum);
		uint64_t size = fuzz_tar_size(h);
		uint64_t data = size / 512 + (size % 512 != 0);
		if (data > (len - off) / 512)
			break;
		off += (size_t)data * 512;
	}
}

static const size_t fuzz_chunks[8] = {1u << 20, 1, 7, 100, 511, 512, 4096, 65536};

/* Squashes the layers; 0 with *id set to the tree's id, or -errno. */
static int fuzz_squash(struct dimg_cas *cas, uint8_t flags, const uint8_t *p, const size_t len[2],
                       uint8_t id[32])
{
	struct dimg_squash *s = NULL;
	struct dimg_tree *t = NULL;
	struct dimg_err err = {0}, bad = {0};
	int r = dimg_squash_new(&s, cas, len[0] + len[1], NULL, NULL);
	for (int i = 0; r == 0 && i < 2 && (i == 0 || (flags & 1)); i++) {
		struct fuzz_src fs = {p, len[i], 0, fuzz_chunks[(flags >> 4) & 7]};
		struct dimg_layer_src src = {fuzz_src_read, &fs};
		struct dimg_layer_info li = {.name = i ? "second" : "first", .size = len[i]};
		if (flags & 2)
			li.size = UINT64_MAX;
		if (flags & 4) {
			li.has_digest = li.has_diff_id = 1;
			dimg_sha256_buf(p, len[i], li.digest);
			/* Only right for an uncompressed layer; else a mismatch. */
			memcpy(li.diff_id, li.digest, 32);
		}
		if (flags & 8) {
			li.has_digest = 1;
			memset(li.digest, 0xa5, 32);
		}
		r = dimg_squash_layer(s, &li, &src, &err);
		if (r == 0 && (li.got_size != len[i] || !li.filter))
			fuzz_fail("layer read incompletely", li.name);
		p += len[i];
	}
	if (r == 0)
		r = dimg_squash_finish(s, &t, &err);
	if (r == 0 && dimg_tree_validate(t, &bad) < 0)
		fuzz_fail("squash returned an invalid tree", bad.what);
	if (r == 0) {
		fuzz_check_contents(cas, t);
		if (dimg_tree_id(t, id) < 0)
			fuzz_fail("tree id failed", NULL);
	}
	if (r < 0 && r != -ENOMEM && !err.why[0])
		fuzz_fail("refused without a message", NULL);
	if (getenv("DIMG_FUZZ_VERBOSE"))
		fprintf(stderr, "squash: %d %s\n", r, err.why);
	dimg_tree_free(t);
	dimg_squash_free(s);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t id1[32], id2[32];
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	const uint8_t *p = data + 1;
	size_t len[2] = {size - 1, 0};
	if (flags & 1) {
		size_t split = size >= 2 ? (size_t)data[1] * 512 : 0;
		p = size >= 2 ? data + 2 : data + 1;
		len[0] = size >= 2 ? size - 2 : 0;
		split = split < len[0] ? split : len[0];
		len[1] = len[0] - split;
		len[0] = split;
	}
	uint8_t *copy = NULL;
	if (flags & 0x80) {
		copy = malloc(len[0] + len[1] + 1);
		if (!copy)
			return 0;
		memcpy(copy, p, len[0] + len[1]);
		fuzz_tar_fix_checksums(copy, len[0]);
		fuzz_tar_fix_checksums(copy + len[0], len[1]);
		p = copy;
	}
	struct dimg_cas *cas = fuzz_cas_get();
	int r = fuzz_squash(cas, flags, p, len, id1);
	/* Same layers, same tree: nothing may depend on the table's seed. */
	if (r == 0 && (fuzz_squash(cas, flags, p, len, id2) != 0 || memcmp(id1, id2, 32) != 0))
		fuzz_fail("a second squash of the same layers differs", NULL);
	free(copy);
	return 0;
}
