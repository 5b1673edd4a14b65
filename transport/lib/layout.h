/* Image layouts as the oci:, oci-archive: and docker-archive: backends
 * share them: files read from a directory or a tar (lay), the image a
 * name picks from index.json or a docker save's manifest.json (laysrc),
 * and a layout written in a staging directory, then merged into a layout,
 * renamed into place or turned into a tar at commit (laydst). */
#ifndef DI3FS_LAYOUT_H
#define DI3FS_LAYOUT_H

#include <pthread.h>

#include "tarindex.h"
#include "transport-internal.h"

#define LAY_EXCLUDED_JSON "di3fs-excluded.json"

/* ---- a layout's files: a directory or a tar ---- */
struct lay {
	int dirfd; /* a directory, else -1 */
	int fd;    /* a tar, else -1 */
	struct xtar tar;
};
int lay_open(struct lay *l, const char *path, int is_dir, struct dimg_err *err);
void lay_close(struct lay *l);
/* -ENOENT when the layout has no such regular file. */
int lay_size(const struct lay *l, const char *name, uint64_t *size);
/* A whole (small) file; -EFBIG past max. */
int lay_read_all(const struct lay *l, const char *name, size_t max, uint8_t **out, size_t *len);
/* A file's bytes from off on, at most len of them, to sink. */
int lay_stream(const struct lay *l, const char *name, uint64_t off, uint64_t len,
               dimg_write_fn sink, void *ctx);

/* Writes a file of n bytes (synced) under dirfd. */
int lay_write_file(int dirfd, const char *name, const void *p, size_t n);
/* Removes a tree (not following symlinks). */
int lay_rmtree(const char *path);

/* ---- reading ---- */
struct dsave;
struct laysrc {
	struct lay l;
	struct dsave *ds;        /* a docker save without index.json */
	uint8_t (*excluded)[32]; /* a partial archive's left-out blobs, sorted */
	size_t nexcluded;
};
int laysrc_open(struct xport *x, int is_dir, struct dimg_err *err);
void laysrc_close(struct laysrc *s);
int laysrc_get_manifest(struct xport *x, struct xport_manifest *out, struct dimg_err *err);
int laysrc_get_digest(struct xport *x, const uint8_t digest[32], struct xport_manifest *out,
                      struct dimg_err *err);
int laysrc_has_blob(struct xport *x, const struct oci_desc *d, struct dimg_err *err);
int laysrc_get_blob(struct xport *x, const struct oci_desc *d, uint64_t offset, dimg_write_fn sink,
                    void *ctx, struct dimg_err *err);

/* docker save's manifest.json (dockerarchive.c): the image picked by ref,
 * described by a Docker schema 2 manifest made the way skopeo makes it
 * (so that both give the same digest), its blobs found by digest. */
int dsave_open(struct dsave **out, const struct lay *l, const char *ref, struct dimg_err *err);
void dsave_free(struct dsave *ds);
int dsave_manifest(const struct dsave *ds, struct xport_manifest *out, struct dimg_err *err);
/* The member holding blob digest, or NULL. */
const char *dsave_member(const struct dsave *ds, const uint8_t digest[32]);

/* ---- writing ---- */
enum laydst_mode {
	LAYDST_DIR,        /* an OCI layout directory, new or merged into */
	LAYDST_OCI_TAR,    /* an OCI layout tar */
	LAYDST_DOCKER_TAR, /* the same plus docker save's manifest.json */
};
struct laydst_entry {
	struct json_object *desc; /* {mediaType, digest, size[, annotations]} */
	char *ref;                /* NULL: unnamed */
	uint8_t config[32];       /* docker save: the image's config and layers */
	uint8_t (*layers)[32];
	size_t nlayers;
	int is_image;
};
struct laydst {
	enum laydst_mode mode;
	const char *path; /* borrowed from the xport's name */
	char *stage;      /* the staging directory */
	int stagefd;      /* its fd, flock()ed while it is in use */
	int dirfd;        /* LAYDST_DIR into an existing layout, else -1 */
	pthread_mutex_t mu;
	struct laydst_entry *e;
	size_t ne;
	struct oci_desc *excl; /* media types strdup'd */
	size_t nexcl;
	int committed;
};
int laydst_open(struct xport *x, enum laydst_mode mode, struct dimg_err *err);
void laydst_close(struct laydst *d);
int laydst_has_blob(struct xport *x, const struct oci_desc *d, struct dimg_err *err);
int laydst_put_blob(struct xport *x, const struct oci_desc *d, xport_read_fn src, void *ctx,
                    struct dimg_err *err);
int laydst_put_manifest_ref(struct xport *x, const struct xport_manifest *m, const char *ref,
                            struct dimg_err *err);
int laydst_note_excluded(struct xport *x, const struct oci_desc *d, struct dimg_err *err);
int laydst_commit(struct xport *x, struct dimg_err *err);
/* The tar of a staged layout (laytar.c): members in a fixed order. */
int laytar_write(int stagefd, int outfd, const struct laydst *d, struct dimg_err *err);

#endif
