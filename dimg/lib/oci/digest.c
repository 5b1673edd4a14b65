/* Digests and media types: "sha256:<hex>" parsed and printed in one
 * place, blob paths of an image layout, what a media type denotes. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dimg/hash.h"
#include "dimg/oci.h"
#include "dimg/tree.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int oci_hex_decode(uint8_t *out, size_t n, const char *hex, size_t hexlen)
{
	if (!hex || hexlen != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int oci_digest_parse(uint8_t out[32], const char *s)
{
	if (!s)
		return -EBADMSG;
	if (strncmp(s, "sha256:", 7) != 0)
		return strchr(s, ':') ? -ENOTSUP : -EBADMSG;
	return oci_hex_decode(out, 32, s + 7, strlen(s + 7)) < 0 ? -EBADMSG : 0;
}

int oci_digest_valid(const char *s)
{
	uint8_t d[32];
	return s && oci_digest_parse(d, s) == 0;
}

void oci_digest_str(char out[OCI_DIGEST_LEN], const uint8_t d[32])
{
	char hex[65];
	dimg_hex32(d, hex);
	snprintf(out, OCI_DIGEST_LEN, "sha256:%s", hex);
}

int oci_digest_buf(char out[OCI_DIGEST_LEN], const void *p, size_t n)
{
	uint8_t d[32];
	int r = dimg_sha256_buf(p, n, d);
	if (r == 0)
		oci_digest_str(out, d);
	return r;
}

void oci_blob_path(char out[OCI_BLOB_PATH_LEN], const uint8_t d[32])
{
	char hex[65];
	dimg_hex32(d, hex);
	snprintf(out, OCI_BLOB_PATH_LEN, "blobs/sha256/%s", hex);
}

static int is_any(const char *mt, const char *const *list)
{
	for (; mt && *list; list++)
		if (strcmp(mt, *list) == 0)
			return 1;
	return 0;
}

int oci_mt_is_index(const char *mt)
{
	static const char *const l[] = {OCI_MT_INDEX, DOCKER_MT_LIST, NULL};
	return is_any(mt, l);
}

int oci_mt_is_manifest(const char *mt)
{
	static const char *const l[] = {OCI_MT_MANIFEST, DOCKER_MT_MANIFEST, NULL};
	return is_any(mt, l);
}

int oci_mt_layer_compression(const char *mt)
{
	static const char *const plain[] = {OCI_MT_LAYER, OCI_MT_NONDIST, DOCKER_MT_LAYER, NULL};
	static const char *const gz[] = {OCI_MT_LAYER_GZIP, OCI_MT_NONDIST_GZIP,
	                                 DOCKER_MT_LAYER_GZIP, DOCKER_MT_FOREIGN_GZIP, NULL};
	static const char *const zst[] = {OCI_MT_LAYER_ZSTD, OCI_MT_NONDIST_ZSTD, NULL};
	if (is_any(mt, plain))
		return 0;
	if (is_any(mt, gz))
		return 'g';
	if (is_any(mt, zst))
		return 'z';
	return -ENOTSUP;
}
