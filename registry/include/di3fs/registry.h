/* A client of OCI registries (distribution-spec v1.1, libcurl): manifests,
 * blobs streamed both ways with resume, cross-repository mounts, tags and
 * referrers, with the credentials, TLS and mirror conventions docker,
 * skopeo and containerd share (auth.json / config.json and credential
 * helpers, certs.d, containerd's hosts.toml).
 *
 * One struct reg per registry host (and the mirrors hosts.toml names for
 * it); every call names the repository. Functions return 0 (or a count, or
 * 1/0 for yes/no) and -errno on failure, with err naming the registry and,
 * for blobs and manifests, "HOST/REPO@DIGEST". A registry is not trusted:
 * every byte received is checked against the digest and size asked for,
 * and memory and time stay bounded whatever it sends. Not thread-safe: one
 * struct reg per thread. */
#ifndef DI3FS_REGISTRY_H
#define DI3FS_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dimg/oci.h"
#include "dimg/types.h"

#ifdef __cplusplus
extern "C" {
#endif

enum reg_http_mode {
	REG_HTTPS = 0,     /* https; plain http only for a loopback host whose https fails */
	REG_HTTP_FALLBACK, /* https, then plain http when the TLS handshake fails */
	REG_HTTP_ONLY,     /* plain http */
};

/* Zero means the default everywhere. Strings are borrowed for the life of
 * the struct reg. */
struct reg_opts {
	const char *creds;    /* "USER:PASS" for the registry (not its mirrors) */
	const char *authfile; /* the one auth file to read; NULL: $REGISTRY_AUTH_FILE,
	                         $XDG_RUNTIME_DIR/containers/auth.json,
	                         ~/.config/containers/auth.json, ~/.docker/config.json */
	int tls_insecure;     /* do not verify certificates */
	enum reg_http_mode http;
	const char *cert_dir;  /* ca.crt, *.crt, *.cert + *.key for the registry (--cert-dir) */
	const char *certs_d;   /* ':'-separated roots of HOST[:PORT] folders; NULL:
	                          $DI3FS_CERTS_D, else /etc/containers/certs.d:/etc/docker/certs.d */
	const char *hosts_dir; /* containerd hosts.toml root; NULL: $DI3FS_HOSTS_D, else
	                          /etc/containerd/certs.d; "" reads none */
	unsigned retries;      /* per request on 429, 5xx and connection errors; 0: 4 */
	unsigned retry_ms;     /* first backoff, doubled each time; 0: 250 */
	unsigned timeout_s;    /* a request may stall this long, a document take this long; 0: 60 */
	size_t chunk_size;     /* uploads: larger blobs go in PATCH chunks of this size; 0: 8 MiB */
	dimg_progress_fn progress; /* per blob, what = its digest */
	void *pctx;
};

struct reg;

/* A client for host ("HOST[:PORT]", as in an image name). Reads the
 * configuration (certs.d, hosts.toml) but does no network I/O. */
int reg_open(struct reg **out, const char *host, const struct reg_opts *o, struct dimg_err *err);
void reg_close(struct reg *r);

/* Counts, for tests and progress. */
struct reg_stats {
	uint64_t requests; /* HTTP exchanges, redirects and token fetches included */
	uint64_t retries;
	uint64_t bytes_in, bytes_out; /* bodies */
};
void reg_get_stats(const struct reg *r, struct reg_stats *out);

/* ---- manifests ---- */
/* A manifest or index exactly as the registry holds it. */
struct reg_manifest {
	uint8_t *raw; /* malloc'd, at most OCI_JSON_MAX bytes */
	size_t len;
	char media_type[128];
	uint8_t digest[32];
};
void reg_manifest_clear(struct reg_manifest *m);

/* GET by tag or "sha256:...": the bytes are checked against the digest
 * asked for and the Docker-Content-Digest answered. -ENOENT: unknown;
 * -EFBIG: over OCI_JSON_MAX; -EBADMSG: the bytes do not match; -ENOTSUP: not
 * an OCI or Docker schema 2 manifest or index. */
int reg_manifest_get(struct reg *r, const char *repo, const char *ref, struct reg_manifest *out,
                     struct dimg_err *err);
/* HEAD: 1 with digest, media type and len (raw NULL) when it exists, 0 when
 * not. A registry that does not say the digest is asked with a GET. */
int reg_manifest_head(struct reg *r, const char *repo, const char *ref, struct reg_manifest *out,
                      struct dimg_err *err);
/* The digest and size of platform's manifest in an index ("os/arch[/variant]",
 * NULL: this machine's). -ENOENT (why lists what the index has). */
int reg_index_select(const uint8_t *raw, size_t len, const char *platform, uint8_t digest[32],
                     uint64_t *size, struct dimg_err *err);
/* reg_manifest_get, then, for an index, the platform's manifest. */
int reg_manifest_resolve(struct reg *r, const char *repo, const char *ref, const char *platform,
                         struct reg_manifest *out, struct dimg_err *err);
/* PUT raw under ref (a tag, or NULL: by its digest) with Content-Type
 * media_type. */
int reg_manifest_put(struct reg *r, const char *repo, const char *ref, const void *raw, size_t len,
                     const char *media_type, struct dimg_err *err);

/* ---- blobs ---- */
/* 1 when repo has the blob (*size, may be NULL, set), 0 when not. */
int reg_blob_head(struct reg *r, const char *repo, const uint8_t digest[32], uint64_t *size,
                  struct dimg_err *err);
/* Streams bytes [offset, size) to sink, resuming with Range after a cut
 * connection. Receiving more than size bytes is an error; from offset 0
 * the digest is checked at the end (-EBADMSG naming the blob: the caller
 * discards what it got); from another offset only the size is. */
int reg_blob_get(struct reg *r, const char *repo, const uint8_t digest[32], uint64_t size,
                 uint64_t offset, dimg_write_fn sink, void *ctx, struct dimg_err *err);

/* A blob source: fills up to n bytes, returns the count (0 at the end) or
 * -errno. */
typedef ssize_t (*reg_read_fn)(void *ctx, void *p, size_t n);
/* Uploads size bytes read from src: one PUT up to chunk_size, else PATCH
 * chunks (one chunk in memory at a time) resumed where the registry says
 * they stopped. -EBADMSG when src does not give exactly size bytes of that
 * digest (nothing becomes visible then). */
int reg_blob_put(struct reg *r, const char *repo, const uint8_t digest[32], uint64_t size,
                 reg_read_fn src, void *ctx, struct dimg_err *err);
/* Cross-repository mount from repository from of the same registry: 1
 * mounted, 0 the registry would not (nothing is left behind). */
int reg_blob_mount(struct reg *r, const char *repo, const uint8_t digest[32], const char *from,
                   struct dimg_err *err);

/* ---- listings ---- */
/* Calls fn for every tag, page after page (Link); fn's non-zero return
 * stops the walk and is returned. */
typedef int (*reg_tag_fn)(void *ctx, const char *tag);
int reg_tags_list(struct reg *r, const char *repo, reg_tag_fn fn, void *ctx, struct dimg_err *err);
/* Calls fn with each descriptor (a JSON object, borrowed for the call) of
 * the referrers index of digest, filtered by artifact_type when not NULL.
 * -ENOTSUP: the registry has no referrers API (use the tag schema). */
struct json_object;
typedef int (*reg_desc_fn)(void *ctx, struct json_object *desc);
int reg_referrers(struct reg *r, const char *repo, const uint8_t digest[32],
                  const char *artifact_type, reg_desc_fn fn, void *ctx, struct dimg_err *err);

#ifdef __cplusplus
}
#endif
#endif
