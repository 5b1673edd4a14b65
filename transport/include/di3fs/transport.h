/* Image transports: one syntax for every place an image lives, in
 * skopeo's containers-transports(5) form —
 *
 *   docker://HOST[:PORT]/REPO[:TAG|@DIGEST]   an OCI registry (registry/)
 *   containerd:NAME[:TAG|@DIGEST]             containerd's content store and images
 *   oci:DIR[:REF]                             an OCI image layout directory
 *   oci-archive:FILE[:REF]                    the same in a tar
 *   docker-archive:FILE[:REF]                 a `docker save` tar
 *   ssh://[USER@]HOST[:PORT]/NAME             NAME (any of these) on another machine,
 *                                             through `cdimg agent` over ssh
 *   a bare path                               a layout dir, a layout tar or a docker-save tar
 *
 * — and one interface over them: read a manifest, ask for, read and write
 * blobs (streamed, never held whole), write a manifest, commit. The copy
 * engine (`cdimg copy`) and every command that names an image use it.
 * Each backend is a `struct xport_ops` table (transport-internal.h); this
 * header is what callers see. */
#ifndef DI3FS_TRANSPORT_H
#define DI3FS_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dimg/oci.h"
#include "dimg/types.h"

#ifdef __cplusplus
extern "C" {
#endif

enum xport_kind {
	XPORT_DOCKER = 1,     /* docker:// */
	XPORT_CONTAINERD,     /* containerd: */
	XPORT_OCI,            /* oci: (directory) */
	XPORT_OCI_ARCHIVE,    /* oci-archive: */
	XPORT_DOCKER_ARCHIVE, /* docker-archive: */
	XPORT_SSH,            /* ssh:// (ssh.c, docs/ssh-protocol.md) */
};

/* A parsed image name. Strings are malloc'd; xport_name_clear frees them. */
struct xport_name {
	enum xport_kind kind;
	char *where;  /* HOST[:PORT]/REPO, containerd NAME, DIR or FILE; ssh: [USER@]HOST[:PORT] */
	char *ref;    /* tag, ref name, or NULL; ssh: the name on the remote side */
	char *digest; /* "sha256:..." when given with @, else NULL */
};
/* Parses s; a bare path is probed (directory -> oci, file -> by content:
 * a tar with index.json is oci-archive, with only manifest.json
 * docker-archive; a path that does not exist yet is oci-archive when it
 * ends in .tar, else oci). -EINVAL with err naming what is wrong,
 * -ENOTSUP for another skopeo transport (dir:, docker-daemon:, ...). */
int xport_name_parse(struct xport_name *out, const char *s, struct dimg_err *err);
void xport_name_clear(struct xport_name *n);
/* The name in transport syntax ("oci-archive:x.tar:v1") into buf. */
void xport_name_str(char *buf, size_t n, const struct xport_name *x);
/* The destination's own name as an image reference: "where:ref" for
 * containerd and docker, ref for layouts and archives; malloc'd, or NULL
 * when it has none (-ENOMEM otherwise reported as NULL too). */
char *xport_name_ref(const struct xport_name *x);

/* Options every transport may use; zero means the default. */
struct xport_opts {
	const char *platform;  /* "os/arch[/variant]", NULL: this machine's */
	int all_platforms;     /* copy an index whole */
	const char *cache_dir; /* partial downloads, by digest */
	/* registries */
	const char *creds;     /* "USER:PASS" (--creds) */
	const char *authfile;  /* --authfile */
	int tls_verify;        /* 0 (default): verify; < 0: --tls-verify=false */
	const char *certs_dir; /* --cert-dir, else certs.d conventions */
	const char *hosts_dir; /* containerd hosts.toml root, default /etc/containerd/certs.d */
	/* containerd */
	const char *address; /* socket, default /run/containerd/containerd.sock */
	const char *ns;      /* namespace, default "default" */
	/* ssh:// */
	const char *ssh_command;     /* a shell command, default $DI3FS_SSH, else "ssh" */
	const char *const *ssh_opts; /* each passed to ssh as -o OPT */
	size_t nssh_opts;
	const char *remote_cdimg; /* the remote cdimg, a shell command prefix:
	                           * default $DI3FS_REMOTE_CDIMG, else "cdimg" */
	/* progress */
	dimg_progress_fn progress; /* called per blob with its digest as what */
	void *pctx;
};

struct xport;

/* Opens an image location for reading (write = 0) or writing (write = 1).
 * Nothing is written at the destination before xport_commit; a writer
 * closed without a commit leaves nothing (partial blobs may stay in the
 * cache, by digest, for a resumed run). */
int xport_open(struct xport **out, const struct xport_name *n, int write,
               const struct xport_opts *o, struct dimg_err *err);
void xport_close(struct xport *x);

/* The manifest the name points at (an index when the name does and
 * all_platforms is set, else the platform's manifest): its exact bytes
 * (malloc'd, at most OCI_JSON_MAX), media type and digest. */
struct xport_manifest {
	uint8_t *raw;
	size_t len;
	char media_type[128];
	uint8_t digest[32];
	char *ref; /* the name the source knows the image by (malloc'd), or NULL */
};
int xport_get_manifest(struct xport *x, struct xport_manifest *out, struct dimg_err *err);
/* A manifest (or index, or config-sized JSON) by digest. */
int xport_get_manifest_digest(struct xport *x, const uint8_t digest[32], struct xport_manifest *out,
                              struct dimg_err *err);
void xport_manifest_clear(struct xport_manifest *m);

/* 1 when the location holds the blob, 0 when not, or -errno. */
int xport_has_blob(struct xport *x, const struct oci_desc *d, struct dimg_err *err);
/* Streams the blob's bytes from offset on to sink; the caller checks the
 * digest of what it received (xport_copy does). */
int xport_get_blob(struct xport *x, const struct oci_desc *d, uint64_t offset, dimg_write_fn sink,
                   void *ctx, struct dimg_err *err);

/* A blob source for writers: fills up to n bytes, returns the count (0 at
 * the end) or -errno. */
typedef ssize_t (*xport_read_fn)(void *ctx, void *p, size_t n);
/* Writes a blob whose digest and size the caller states; the transport
 * verifies both before the blob becomes visible (-EBADMSG naming it). */
int xport_put_blob(struct xport *x, const struct oci_desc *d, xport_read_fn src, void *ctx,
                   struct dimg_err *err);
/* Makes a blob the destination lacks available without sending it, when
 * the transport can (a registry's cross-repository mount from src, which
 * must be on the same registry): 1 mounted, 0 not possible, or -errno. */
int xport_mount_blob(struct xport *x, const struct oci_desc *d, const struct xport *src,
                     struct dimg_err *err);
/* Writes a manifest's exact bytes under the destination's name (tag). */
int xport_put_manifest(struct xport *x, const struct xport_manifest *m, struct dimg_err *err);
/* The same under another name: ref NULL is the destination's own name (as
 * xport_put_manifest; a layout entry without a name when it has none), ""
 * stores the manifest by digest only (an index's child), anything else
 * names it ref (several images in one layout or archive). */
int xport_put_manifest_ref(struct xport *x, const struct xport_manifest *m, const char *ref,
                           struct dimg_err *err);
/* Records that a blob the image needs was left out on purpose (a partial
 * archive, completed later where the base image is): layouts and archives
 * list it in di3fs-excluded.json; other transports -ENOTSUP. */
int xport_note_excluded(struct xport *x, const struct oci_desc *d, struct dimg_err *err);
/* Batched xport_has_blob: have[i] is 1 or 0 for d[i]; 0 or -errno. */
int xport_has_blobs(struct xport *x, const struct oci_desc *d, size_t n, uint8_t *have,
                    struct dimg_err *err);
/* Makes everything written visible (archives renamed into place, image
 * records created); before it, nothing is. */
int xport_commit(struct xport *x, struct dimg_err *err);

/* `cdimg agent --stdio`: the remote end of an ssh:// name. Speaks the
 * agent protocol (docs/ssh-protocol.md) on in/out until the other end
 * closes; o supplies the agent's own defaults (cache_dir for partial
 * uploads, containerd's address and namespace). 0 at a clean end. */
int xport_agent(int in, int out, const struct xport_opts *o, struct dimg_err *err);

#ifdef __cplusplus
}
#endif
#endif
