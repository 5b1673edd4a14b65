/* libFuzzer target for the .cdimg reader (packer/cdimg.c): the input is the
 * file, opened with cdimg_open through a memfd. A .cdimg that opens must
 * place its .dimg, config, manifest and layer recipes inside the file;
 * its .dimg is then opened in place and its recipes streamed (contents
 * from no image), which may fail but not crash. A refusal says why.
 *
 * Every blob of a .cdimg is named by its SHA-256, so most mutations stop
 * at the digest check. When the last byte is odd (a tar ignores what
 * follows its end; a real .cdimg ends in a zero byte), the harness first
 * renames each blob to its content's digest, replacing the old name
 * everywhere in the file (the JSON that refers to it included) until
 * nothing changes, so that mutated manifests and annotations are read. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cdimg.h"
#include "dimg/hash.h"
#include "fuzz-layers-read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BLOCK      512u
#define BLOB_DIR   "blobs/sha256/"
#define FIX_ROUNDS 8

static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_cdimg: %s\n", what);
	abort();
}

/* An octal ustar number (what cdimg writes); UINT64_MAX if not one. */
static uint64_t octal(const uint8_t *f, size_t w)
{
	uint64_t v = 0;
	for (size_t i = 0; i < w && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return UINT64_MAX;
		v = v << 3 | (uint64_t)(f[i] - '0');
	}
	return v;
}

static void put_checksum(uint8_t *h)
{
	unsigned sum = 0;
	memset(h + 148, ' ', 8);
	for (size_t i = 0; i < BLOCK; i++)
		sum += h[i];
	for (int i = 5; i >= 0; i--, sum >>= 3)
		h[148 + i] = (uint8_t)('0' + (sum & 7));
	h[154] = '\0';
}

static void replace_all(uint8_t *buf, size_t len, const char *from, const char *to, size_t n)
{
	for (uint8_t *p = buf; (p = memmem(p, len - (size_t)(p - buf), from, n)) != NULL; p += n)
		memcpy(p, to, n);
}

/* Whether a header is at off whose data (n bytes) fits in the buffer. */
static int header_at(const uint8_t *buf, size_t len, size_t off, uint64_t *n)
{
	if (off > len || len - off < BLOCK || !buf[off])
		return 0;
	*n = octal(buf + off + 124, 12);
	return *n <= len - off - BLOCK;
}

static size_t next_header(size_t off, uint64_t n)
{
	return off + BLOCK + (size_t)((n + BLOCK - 1) / BLOCK * BLOCK);
}

/* Renames each blob whose name is not its digest; 1 if one was. */
static int fix_round(uint8_t *buf, size_t len)
{
	int changed = 0;
	uint64_t n;
	for (size_t off = 0; header_at(buf, len, off, &n); off = next_header(off, n)) {
		uint8_t *h = buf + off, sha[32];
		char old[65], hex[65];
		if (memcmp(h, BLOB_DIR, 13) || strnlen((const char *)h, 100) != 13 + 64 ||
		    dimg_sha256_buf(h + BLOCK, (size_t)n, sha) < 0)
			continue;
		dimg_hex32(sha, hex);
		memcpy(old, h + 13, 64);
		if (memcmp(old, hex, 64)) {
			replace_all(buf, len, old, hex, 64);
			changed = 1;
		}
	}
	return changed;
}

static void fix_digests(uint8_t *buf, size_t len)
{
	uint64_t n;
	for (int i = 0; i < FIX_ROUNDS && fix_round(buf, len); i++)
		;
	for (size_t off = 0; header_at(buf, len, off, &n); off = next_header(off, n))
		put_checksum(buf + off);
}

static void within(const struct cdimg_info *in, const uint8_t *base, const uint8_t *p, uint64_t n,
                   const char *what)
{
	uint64_t off = p >= base ? (uint64_t)(p - base) : UINT64_MAX;
	if (off > in->file_size || n > in->file_size - off)
		fuzz_fail(what);
}

static void check_open(const struct cdimg *c)
{
	const struct cdimg_info *in = cdimg_get_info(c);
	const uint8_t *dimg = cdimg_dimg_bytes(c), *base = dimg - in->dimg_offset;
	struct dimg_reader *rd = NULL;
	if (in->dimg_offset % BLOCK || in->dimg_size < DIMG_HEADER_SIZE + DIMG_TRAILER_SIZE)
		fuzz_fail("the .dimg is misplaced");
	within(in, base, dimg, in->dimg_size, "the .dimg lies outside the file");
	within(in, base, in->target_config, in->target_config_len, "config outside the file");
	within(in, base, in->target_manifest, in->target_manifest_len, "manifest outside");
	if (strncmp(in->manifest_digest, "sha256:", 7) || !in->target_manifest_media_type)
		fuzz_fail("opened without its metadata");
	if (in->layers) {
		within(in, base, in->layers, in->layers_size, "recipes outside the file");
		fuzz_read_layers(in->layers, (size_t)in->layers_size);
	}
	if (cdimg_dimg_reader(c, &rd) == 0 && memcmp(dimg_reader_base_id(rd), in->base_tree, 32))
		fuzz_fail("the .dimg names another base than the annotation");
	dimg_reader_free(rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cdimg *c = NULL;
	char path[64];
	struct dimg_err err = {0};
	uint8_t *buf = malloc(size ? size : 1);
	int fd = memfd_create("fuzz-cdimg", MFD_CLOEXEC);
	if (!buf || fd < 0)
		fuzz_fail("no memory or memfd");
	memcpy(buf, data, size);
	if (size && (data[size - 1] & 1))
		fix_digests(buf, size);
	if (write(fd, buf, size) != (ssize_t)size)
		fuzz_fail("memfd write");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int r = cdimg_open(&c, path, &err);
	if (r == 0)
		check_open(c);
	else if (r != -EBADMSG && r != -ENOTSUP && r != -EOVERFLOW && r != -ENOMEM)
		fuzz_fail("refused with an unexpected error");
	else if (r != -ENOMEM && !err.why[0] && !err.what[0])
		fuzz_fail("refused without a message");
	if (getenv("DIMG_FUZZ_VERBOSE"))
		fprintf(stderr, "cdimg: %d %s: %s\n", r, err.what, err.why);
	cdimg_free(c);
	free(buf);
	close(fd);
	return 0;
}
