/* The one OCI module: media types, digests, descriptors, platforms, image
 * references and the strict JSON helpers every reader of OCI documents
 * (image layouts, .cdimg artifacts, containerd, registries) shares. */
#ifndef DIMG_OCI_H
#define DIMG_OCI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct json_object;

/* ---- media types ---- */
#define OCI_MT_INDEX           "application/vnd.oci.image.index.v1+json"
#define OCI_MT_MANIFEST        "application/vnd.oci.image.manifest.v1+json"
#define OCI_MT_CONFIG          "application/vnd.oci.image.config.v1+json"
#define OCI_MT_EMPTY           "application/vnd.oci.empty.v1+json"
#define OCI_MT_LAYER           "application/vnd.oci.image.layer.v1.tar"
#define OCI_MT_LAYER_GZIP      "application/vnd.oci.image.layer.v1.tar+gzip"
#define OCI_MT_LAYER_ZSTD      "application/vnd.oci.image.layer.v1.tar+zstd"
#define DOCKER_MT_LIST         "application/vnd.docker.distribution.manifest.list.v2+json"
#define DOCKER_MT_MANIFEST     "application/vnd.docker.distribution.manifest.v2+json"
#define DOCKER_MT_CONFIG       "application/vnd.docker.container.image.v1+json"
#define DOCKER_MT_LAYER        "application/vnd.docker.image.rootfs.diff.tar"
#define DOCKER_MT_LAYER_GZIP   "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define DOCKER_MT_FOREIGN_GZIP "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
#define OCI_MT_NONDIST         "application/vnd.oci.image.layer.nondistributable.v1.tar"
#define OCI_MT_NONDIST_GZIP    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
#define OCI_MT_NONDIST_ZSTD    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

/* di3fs's own artifact and blob types (docs/FORMAT.md). */
#define DI3FS_ARTIFACT_TYPE      "application/vnd.di3fs.delta.v1"
#define DI3FS_MT_DIMG            "application/vnd.di3fs.dimg.v1"
#define DI3FS_MT_TARGET_CONFIG   "application/vnd.di3fs.target.config.v1+json"
#define DI3FS_MT_TARGET_MANIFEST "application/vnd.di3fs.target.manifest.v1+json"
#define DI3FS_MT_LAYERS          "application/vnd.di3fs.layers.v1+zstd"

#define OCI_ANNOT_REF_NAME        "org.opencontainers.image.ref.name"
#define OCI_ANNOT_CONTAINERD_NAME "io.containerd.image.name"
#define OCI_LAYOUT_JSON           "{\"imageLayoutVersion\":\"1.0.0\"}"

/* An index (OCI or Docker list) / a manifest (OCI or Docker schema 2)? */
int oci_mt_is_index(const char *mt);
int oci_mt_is_manifest(const char *mt);
/* How a layer media type is compressed: 0 plain tar, 'g' gzip, 'z' zstd;
 * -ENOTSUP for a type that is not a layer we read. */
int oci_mt_layer_compression(const char *mt);

/* Largest JSON document (index, manifest, config) any reader accepts. */
#define OCI_JSON_MAX (16u << 20)

/* ---- digests ---- */
/* "sha256:" + 64 hex + NUL */
#define OCI_DIGEST_LEN 72
/* n bytes from 2n lower-case hex digits (exactly; anything else -EINVAL). */
int oci_hex_decode(uint8_t *out, size_t n, const char *hex, size_t hexlen);
/* "sha256:<64 lower-case hex>" -> 32 bytes; another algorithm -ENOTSUP,
 * anything else (NULL too) -EBADMSG. */
int oci_digest_parse(uint8_t out[32], const char *s);
/* 1 when s is "sha256:" and exactly 64 lower-case hex digits, else 0. */
int oci_digest_valid(const char *s);
void oci_digest_str(char out[OCI_DIGEST_LEN], const uint8_t d[32]);
/* SHA-256 of a buffer as "sha256:<hex>"; -ENOMEM. */
int oci_digest_buf(char out[OCI_DIGEST_LEN], const void *p, size_t n);
/* "blobs/sha256/<hex>", the blob's path in an image layout. */
#define OCI_BLOB_PATH_LEN 80
void oci_blob_path(char out[OCI_BLOB_PATH_LEN], const uint8_t d[32]);

/* ---- JSON (json-c) ---- */
/* Parses exactly one document of at most OCI_JSON_MAX bytes (only white
 * space may follow); -EFBIG, -ENOMEM, -EBADMSG. */
int oci_json_parse(struct json_object **out, const void *buf, size_t len);
/* Typed members of an object, or NULL when absent or of another type (a
 * string with an embedded NUL counts as absent). o may be NULL. */
const char *oci_jstr(struct json_object *o, const char *key);
struct json_object *oci_jobj(struct json_object *o, const char *key);
struct json_object *oci_jarr(struct json_object *o, const char *key);
/* An integer member >= 0; -EBADMSG when absent, negative or not one. */
int oci_ju64(struct json_object *o, const char *key, uint64_t *out);
/* A string of the object's "annotations", or NULL. */
const char *oci_jannot(struct json_object *o, const char *key);

/* ---- descriptors ---- */
/* The fields of a descriptor every reader checks; strings are borrowed
 * from the JSON object parsed. */
struct oci_desc {
	uint8_t digest[32];
	uint64_t size;
	const char *media_type;    /* NULL when absent */
	const char *artifact_type; /* NULL when absent */
};
/* -EBADMSG (digest or size missing or malformed), -ENOTSUP (another
 * digest algorithm). */
int oci_desc_parse(struct oci_desc *d, struct json_object *o);
/* A new {"mediaType","digest","size"} object (NULL on ENOMEM). */
struct json_object *oci_desc_json(const char *mt, const uint8_t d[32], uint64_t size);

/* ---- platforms ---- */
struct oci_platform {
	char os[32], arch[32], variant[32];
};
/* This build's platform, named as Go's GOOS/GOARCH name it. */
void oci_platform_host(struct oci_platform *p);
/* "os/arch[/variant]"; -EINVAL. */
int oci_platform_parse(struct oci_platform *p, const char *s);
/* From a descriptor's "platform" object (keys "os", "architecture"), or
 * an image config (the same keys at its top); missing fields empty. */
void oci_platform_from_json(struct oci_platform *p, struct json_object *o);
/* want's variant, if any, must match; arm64 means v8 and arm v7 unless said. */
int oci_platform_match(const struct oci_platform *want, const struct oci_platform *have);
/* "os/arch[/variant]" into out (at least 97 bytes). */
void oci_platform_str(char *out, size_t n, const struct oci_platform *p);

/* ---- image references ---- */
/* Docker-style normal form: "nginx" -> "docker.io/library/nginx:latest". */
int oci_ref_normal(char **out, const char *ref);
/* Does name (an annotation, a RepoTag) denote ref? */
int oci_ref_match(const char *name, const char *ref);

#ifdef __cplusplus
}
#endif
#endif
