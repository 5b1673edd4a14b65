/* Hashing for libdimg: SHA-256 through the OpenSSL 3 EVP interface (content
 * identity) and XXH3-64 (fast checksums over trusted-layout data). */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <xxhash.h>

#include "dimg/hash.h"

#define SHA256_FD_BUF (1u << 20)

struct dimg_sha256 {
	EVP_MD *md; /* fetched once: implicit fetches cost a lookup per init */
	EVP_MD_CTX *ctx;
};

int dimg_sha256_new(struct dimg_sha256 **out)
{
	struct dimg_sha256 *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (!h)
		return -ENOMEM;
	h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	h->ctx = EVP_MD_CTX_new();
	if (!h->md || !h->ctx || !EVP_DigestInit_ex(h->ctx, h->md, NULL)) {
		dimg_sha256_free(h);
		return -ENOMEM;
	}
	*out = h;
	return 0;
}

void dimg_sha256_update(struct dimg_sha256 *h, const void *p, size_t n)
{
	/* SHA-256 updates only fail on a broken context, which new() rules out. */
	if (n > 0)
		(void)EVP_DigestUpdate(h->ctx, p, n);
}

void dimg_sha256_final(struct dimg_sha256 *h, uint8_t out[32])
{
	unsigned int len = 0;

	(void)EVP_DigestFinal_ex(h->ctx, out, &len);
	(void)EVP_DigestInit_ex(h->ctx, h->md, NULL);
}

void dimg_sha256_free(struct dimg_sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	EVP_MD_free(h->md);
	free(h);
}

int dimg_sha256_buf(const void *p, size_t n, uint8_t out[32])
{
	static const uint8_t empty;

	if (!EVP_Digest(n ? p : &empty, n, out, NULL, EVP_sha256(), NULL))
		return -ENOMEM;
	return 0;
}

/* read() that retries on EINTR; returns bytes read, 0 at end, or -errno. */
static ssize_t sha256_read(int fd, void *buf, size_t n)
{
	for (;;) {
		ssize_t r = read(fd, buf, n);

		if (r >= 0)
			return r;
		if (errno != EINTR)
			return -errno;
	}
}

int dimg_sha256_fd(int fd, uint8_t out[32], uint64_t *size)
{
	struct dimg_sha256 *h;
	uint64_t total = 0;
	uint8_t *buf;
	ssize_t n;
	int r;

	buf = malloc(SHA256_FD_BUF);
	if (!buf)
		return -ENOMEM;
	r = dimg_sha256_new(&h);
	if (r < 0)
		goto out;
	while ((n = sha256_read(fd, buf, SHA256_FD_BUF)) > 0) {
		dimg_sha256_update(h, buf, (size_t)n);
		total += (uint64_t)n;
	}
	if (n < 0) {
		r = (int)n;
		goto out;
	}
	dimg_sha256_final(h, out);
	if (size)
		*size = total;
out:
	dimg_sha256_free(h);
	free(buf);
	return r;
}

uint64_t dimg_xxh3(const void *p, size_t n)
{
	return XXH3_64bits(p, n);
}
