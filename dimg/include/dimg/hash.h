/* Hashing: SHA-256 (OpenSSL libcrypto) for content identity, XXH3-64 for
 * checksums no adversary can exploit. */
#ifndef DIMG_HASH_H
#define DIMG_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct dimg_sha256;

int dimg_sha256_new(struct dimg_sha256 **out);
void dimg_sha256_update(struct dimg_sha256 *h, const void *p, size_t n);
/* Writes the digest and resets h for reuse. */
void dimg_sha256_final(struct dimg_sha256 *h, uint8_t out[32]);
void dimg_sha256_free(struct dimg_sha256 *h);
/* One-shot digest; returns 0 or -ENOMEM. */
int dimg_sha256_buf(const void *p, size_t n, uint8_t out[32]);
/* Digest of the rest of fd (read from its current offset). */
int dimg_sha256_fd(int fd, uint8_t out[32], uint64_t *size);

uint64_t dimg_xxh3(const void *p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
