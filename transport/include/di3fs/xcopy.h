/* Copying images between transports (`cdimg copy`): manifests byte for
 * byte, blobs the destination lacks streamed through (flat memory, every
 * one checked against its digest and size as it passes), blobs it has
 * skipped, several images into one archive sharing their blobs, partial
 * archives that leave out what a base image holds. */
#ifndef DI3FS_XCOPY_H
#define DI3FS_XCOPY_H

#include "di3fs/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

enum xcopy_status {
	XCOPY_WAITING = 0, /* to be copied */
	XCOPY_COPYING,     /* bytes flowing (done counts them) */
	XCOPY_COPIED,
	XCOPY_EXISTS,   /* the destination has it: never sent */
	XCOPY_MOUNTED,  /* a registry mounted it from the source's repository */
	XCOPY_EXCLUDED, /* left out of a partial archive (--exclude-from) */
};

enum xcopy_event_kind {
	XCOPY_EV_PLAN,     /* count blobs, total bytes of those to copy in done */
	XCOPY_EV_BLOB,     /* blob index of count: its status (and bytes done) */
	XCOPY_EV_MANIFEST, /* a manifest written (desc) */
};

struct xcopy_event {
	enum xcopy_event_kind kind;
	size_t index, count; /* 1-based */
	const struct oci_desc *desc;
	enum xcopy_status status;
	uint64_t done;    /* bytes so far */
	uint64_t resumed; /* of which a resumed download had before this run */
	const char *ref;  /* XCOPY_EV_MANIFEST: the name it was given, or NULL */
};
/* Called from one thread at a time (copy threads take turns). */
typedef void (*xcopy_event_fn)(void *ctx, const struct xcopy_event *ev);

struct xcopy_opts {
	struct xport_opts x; /* for every transport; x.cache_dir: resumable downloads */
	unsigned jobs;       /* blobs at once; 0: 3 */
	const struct xport_name *exclude; /* --exclude-from: blobs these hold are left out */
	size_t nexclude;
	xcopy_event_fn event;
	void *ectx;
};

struct xcopy_result {
	size_t images, blobs, copied, existing, mounted, excluded;
	uint64_t bytes, copied_bytes, resumed_bytes;
	char manifest_digest[OCI_DIGEST_LEN]; /* the (last) image's */
	char (*missing)[OCI_DIGEST_LEN];      /* with -ENODATA: blobs no side holds */
	size_t nmissing;
};
void xcopy_result_clear(struct xcopy_result *res);

/* Copies the images named by src (nsrc of them; several only into a
 * layout or an archive, each named by its own source's name) to dst.
 * Returns 0; -ENODATA when blobs are in neither the source (a partial
 * archive) nor the destination, listed in res->missing, nothing written;
 * -EBADMSG when a blob's bytes do not match its digest or size (err names
 * it), nothing committed; other -errno with err set. */
int xcopy(const struct xport_name *src, size_t nsrc, const struct xport_name *dst,
          const struct xcopy_opts *o, struct xcopy_result *res, struct dimg_err *err);

/* The cache of resumable downloads by default: $DI3FS_CACHE_DIR, else
 * /var/cache/di3fs/blobs for root, else $XDG_CACHE_HOME/di3fs/blobs
 * (~/.cache/di3fs/blobs). Malloc'd. */
char *xcopy_default_cache_dir(void);

/* ---- images for commands that read them with dimg_image_open ---- */

/* Does s start with a transport prefix (docker://, oci:, ...)? */
int xport_name_has_transport(const char *s);

/* A path dimg_image_open reads and the ref to pick there: a name without
 * a transport is itself; oci:, oci-archive:, docker-archive: names their
 * path and ref; containerd: and docker:// images (and layouts named by
 * digest) are copied into a new OCI layout in a temporary directory
 * ($TMPDIR or /var/tmp) that xport_local_free removes. */
struct xport_local {
	char *path;
	char *ref;    /* NULL: the only image */
	char *tmpdir; /* NULL when nothing was copied */
};
int xport_local_open(struct xport_local *out, const char *name, const struct xcopy_opts *o,
                     struct dimg_err *err);
void xport_local_free(struct xport_local *l);

#ifdef __cplusplus
}
#endif
#endif
