/* Sparse files: dimg_tree_write_dir leaves zero blocks as holes whatever
 * the sizes of the producer's chunks (the bytes read back are the bytes
 * given), and dimg_file_load gives back the bytes of files with and
 * without holes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dimg/fileio.h"
#include "dimg/hash.h"
#include "dimg/tree.h"
#include "dimg/write.h"
#include "tree-internal.h"

#define BLK 4096u

/* A content with runs of zeros and data that start and end anywhere:
 * block-aligned zero runs, zero runs shorter than a block, data in the
 * middle of a block, a trailing run of zeros or data. */
static uint8_t *make_content(unsigned long long *seed, size_t len, bool zero_tail)
{
	uint8_t *p = calloc(1, len);
	CHECK(p);
	for (size_t off = 0; off < len;) {
		size_t run = 1 + test_rand(seed) % (5 * BLK);
		if (run > len - off)
			run = len - off;
		if (test_rand(seed) % 3 == 0)
			for (size_t i = 0; i < run; i++)
				p[off + i] = (uint8_t)(1 + test_rand(seed) % 255);
		off += run;
	}
	if (zero_tail)
		memset(p + len - len / 8, 0, len / 8);
	else
		p[len - 1] = 0x5a;
	return p;
}

struct chunked {
	const uint8_t *data;
	size_t len;
	unsigned long long seed;
	size_t fixed; /* chunk size, or 0 for random sizes */
};

static int chunked_content(void *ctx, const struct dimg_entry *e, dimg_write_fn sink, void *sc)
{
	struct chunked *c = ctx;
	(void)e;
	for (size_t off = 0; off < c->len;) {
		size_t k = c->fixed ? c->fixed : 1 + test_rand(&c->seed) % (3 * BLK);
		if (k > c->len - off)
			k = c->len - off;
		int r = sink(sc, c->data + off, k);
		if (r < 0)
			return r;
		off += k;
	}
	return 0;
}

static struct dimg_tree *one_file_tree(const uint8_t *data, size_t len)
{
	struct dimg_tree *t;
	struct dimg_entry root = {.path = "", .type = DIMG_TYPE_DIR, .mode = 0755};
	struct dimg_entry f = {.path = "f", .type = DIMG_TYPE_REG, .mode = 0644, .size = len};
	CHECK_RC(dimg_sha256_buf(data, len, f.sha256));
	CHECK_RC(dimg_tree_new(&t));
	CHECK_RC(dimg_tree_append(t, &root));
	CHECK_RC(dimg_tree_append(t, &f));
	return t;
}

static uint8_t *read_file(const char *path, size_t len, struct stat *st)
{
	uint8_t *p = malloc(len + 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(p && fd >= 0);
	CHECK(fstat(fd, st) == 0 && (size_t)st->st_size == len);
	CHECK(pread(fd, p, len + 1, 0) == (ssize_t)len);
	close(fd);
	return p;
}

/* 1 if the file system under dir keeps holes (so block counts can be
 * checked), 0 if not. */
static int holes_kept(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof(path), "%s/probe", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, 1 << 20) == 0 && fstat(fd, &st) == 0);
	close(fd);
	unlink(path);
	return st.st_blocks * 512 < (1 << 20);
}

/* Zero blocks the content has, for the block count: each 4 KiB-aligned
 * block of zeros is one the writer must have skipped. */
static size_t zero_blocks(const uint8_t *p, size_t len)
{
	static const uint8_t zero[BLK];
	size_t n = 0;
	for (size_t off = 0; off + BLK <= len; off += BLK)
		n += !memcmp(p + off, zero, BLK);
	return n;
}

static void write_case(const char *dir, unsigned long long seed, size_t len, size_t fixed,
                       bool zero_tail, bool check_blocks)
{
	char out[PATH_MAX], path[PATH_MAX + 2];
	struct stat st;
	unsigned long long s = seed;
	uint8_t *data = make_content(&s, len, zero_tail);
	struct dimg_tree *t = one_file_tree(data, len);
	struct chunked c = {data, len, seed, fixed};
	snprintf(out, sizeof(out), "%s/out-%llu-%zu", dir, seed, fixed);
	CHECK_RC(dimg_tree_write_dir(t, out, chunked_content, &c,
	                             DIMG_WRITE_NO_OWNER | DIMG_WRITE_NO_XATTR, NULL, NULL, NULL));
	snprintf(path, sizeof(path), "%s/f", out);
	uint8_t *got = read_file(path, len, &st);
	CHECK(memcmp(got, data, len) == 0);
	/* Holes: writing every block would allocate nb of them; skipping the
	 * zero ones, nb - zb and some extent-tree blocks (half of zb is
	 * plenty of slack for those). */
	size_t zb = zero_blocks(data, len), nb = (len + BLK - 1) / BLK;
	CHECK(zb >= 8);
	if (check_blocks)
		CHECK((size_t)st.st_blocks * 512 <= (nb - zb / 2) * BLK);
	CHECK_RC(dimg_rmtree(out));
	dimg_tree_free(t);
	free(got);
	free(data);
}

/* data at 0 and, with a hole, again at hole_at: zeros between. */
static void load_case(const char *dir, const uint8_t *data, size_t len, off_t hole_at)
{
	char path[PATH_MAX];
	const uint8_t *p;
	size_t n, want = hole_at >= 0 ? (size_t)hole_at + len : len;
	snprintf(path, sizeof(path), "%s/load", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, data, len, 0) == (ssize_t)len);
	if (hole_at >= 0)
		CHECK(pwrite(fd, data, len, hole_at) == (ssize_t)len);
	CHECK_RC(dimg_file_load(fd, &p, &n));
	CHECK(n == want && memcmp(p, data, len) == 0);
	if (hole_at >= 0) {
		CHECK(memcmp(p + hole_at, data, len) == 0);
		for (size_t i = len; i < (size_t)hole_at; i++)
			CHECK(p[i] == 0);
	}
	dimg_file_unload(p, n);
	CHECK(ftruncate(fd, 0) == 0);
	CHECK_RC(dimg_file_load(fd, &p, &n));
	CHECK(p == NULL && n == 0);
	close(fd);
	unlink(path);
}

int main(void)
{
	char dir[] = "/tmp/test_sparse.XXXXXX";
	CHECK(mkdtemp(dir));
	int blocks = holes_kept(dir);
	static const size_t fixed[] = {0, 1, 4095, 4096, 4097, 65536, 1 << 20};
	for (unsigned long long seed = 1; seed <= 6; seed++)
		for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
			size_t len = (size_t)(seed * 37 * BLK + seed * 101);
			if (fixed[i] == 1 && seed > 2)
				continue; /* byte by byte: slow, two seeds suffice */
			write_case(dir, seed, len, fixed[i], seed % 2, blocks);
		}
	uint8_t buf[3 * BLK + 17];
	unsigned long long s = 9;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)test_rand(&s);
	load_case(dir, buf, sizeof(buf), -1);      /* no hole: mapped */
	load_case(dir, buf, sizeof(buf), 1 << 24); /* a hole: copied run by run */
	CHECK_RC(dimg_rmtree(dir));
	printf("test_sparse: ok (block counts %s)\n", blocks ? "checked" : "not kept here");
	return 0;
}
