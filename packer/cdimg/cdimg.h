/* .cdimg: a .dimg delta wrapped as an OCI artifact in an OCI image layout
 * tar, with the target image's original config and manifest (docs/FORMAT.md
 * ".cdimg"). Writer streams the .dimg in; reader verifies every blob and
 * maps the .dimg where it lies inside the tar. */
#ifndef DI3FS_CDIMG_H
#define DI3FS_CDIMG_H

#include <stddef.h>
#include <stdint.h>

#include "dimg/dimg.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CDIMG_ANNOT_VERSION              "io.di3fs.delta.dimg.version"
#define CDIMG_ANNOT_BASE_CONFIG          "io.di3fs.delta.base.config.digest"
#define CDIMG_ANNOT_BASE_TREE            "io.di3fs.delta.base.tree"
#define CDIMG_ANNOT_TARGET_TREE          "io.di3fs.delta.target.tree"
#define CDIMG_ANNOT_TARGET_MANIFEST      "io.di3fs.delta.target.manifest.digest"
#define CDIMG_ANNOT_TARGET_MANIFEST_TYPE "io.di3fs.delta.target.manifest.mediatype"
#define CDIMG_ANNOT_TARGET_REF           "io.di3fs.delta.target.ref"
/* only in the registry form (cdimg_registry_manifest) */
#define CDIMG_ANNOT_TARGET_CONFIG "io.di3fs.delta.target.config.digest"
#define CDIMG_ANNOT_PLATFORM      "io.di3fs.delta.platform"
/* the empty descriptor's blob: the 2 bytes "{}" */
#define OCI_EMPTY_JSON   "{}"
#define OCI_EMPTY_DIGEST "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

/* What a .cdimg says beyond its .dimg. */
struct cdimg_meta {
	const char *base_config_digest; /* "sha256:<hex>" */
	const uint8_t *target_config;   /* original bytes */
	size_t target_config_len;
	const uint8_t *target_manifest; /* original bytes */
	size_t target_manifest_len;
	const char *target_manifest_media_type; /* NULL: the manifest's own mediaType */
	const char *target_ref;                 /* NULL: none */
	const char *layers_path; /* the target's layer recipes (layers.h); NULL: none */
};

/* Wraps the .dimg at dimg_path (tree ids taken from its header), and the
 * layer recipes at m->layers_path if given (a third layer), into a .cdimg
 * at out_path: deterministic (fixed headers and order, canonical
 * JSON), the .dimg copied through a buffer, never held whole; written to a
 * temporary name and renamed. *out_size (if non-NULL) gets its size.
 * -ESTALE if the .dimg changed while copied; -EEXIST for a file at out_path
 * unless flags says PACKER_REPLACE. err (NULL allowed) names what failed:
 * the .dimg, the recipes or out_path. */
int cdimg_write(const char *out_path, const char *dimg_path, const struct cdimg_meta *m,
                unsigned flags, uint64_t *out_size, struct dimg_err *err);

/* The parts of a .cdimg, each made into a temporary file next to the
 * output (removed afterwards): the .dimg (dimg writes it at tmp_path), and
 * the layer recipes (layers writes them to fd, or returns 1 for none;
 * layers NULL: none). dimg writes over the (empty) file at tmp_path. */
struct cdimg_parts {
	int (*dimg)(void *ctx, const char *tmp_path, struct dimg_err *err);
	int (*layers)(void *ctx, int fd, struct dimg_err *err);
	void *ctx;
};
/* Makes the parts and wraps them with m (its layers_path ignored) into a
 * .cdimg at out, as cdimg_write does: what a diff and a merge share. */
int cdimg_write_parts(const char *out, const struct cdimg_parts *p, const struct cdimg_meta *m,
                      unsigned flags, uint64_t *size, struct dimg_err *err);

/* ---- reader ---- */

struct cdimg_info {
	uint64_t file_size;
	char manifest_digest[72]; /* the artifact manifest */
	unsigned dimg_version;
	uint64_t dimg_offset, dimg_size; /* the .dimg blob within the file */
	char dimg_digest[72];
	char base_config_digest[72];
	uint8_t base_tree[32], target_tree[32];
	char target_config_digest[72];
	char target_manifest_digest[72];
	const char *target_manifest_media_type;
	const char *target_ref;                         /* NULL when the delta names none */
	const uint8_t *target_config, *target_manifest; /* inside the mapping */
	size_t target_config_len, target_manifest_len;
	const uint8_t *layers; /* the layer recipes blob inside the mapping, NULL if none */
	uint64_t layers_size;
	char layers_digest[72];
};

struct cdimg;

/* Maps and checks a .cdimg: the tar framing (bounded), the layout version,
 * the SHA-256 and size of every blob against its name and descriptor, the
 * media types, artifact type and annotations, and that the .dimg header
 * names the annotated tree ids. -ENOTSUP for an unknown media type or
 * version, -EBADMSG corrupt, -EOVERFLOW truncated or out of range; err
 * (NULL allowed) names path and says what is wrong. */
int cdimg_open(struct cdimg **out, const char *path, struct dimg_err *err);
void cdimg_free(struct cdimg *c);
/* Borrowed from c. */
const struct cdimg_info *cdimg_get_info(const struct cdimg *c);
/* The .dimg blob's bytes inside the mapping (info.dimg_size of them),
 * already checked against info.dimg_digest. Borrowed from c. */
const uint8_t *cdimg_dimg_bytes(const struct cdimg *c);
/* A reader of the .dimg in place (no copy); it must be freed before c. */
int cdimg_dimg_reader(const struct cdimg *c, struct dimg_reader **out);

/* The delta as an artifact for a registry (docs/FORMAT.md "Delta artifact
 * in a registry"), appended to out as canonical JSON: artifactType
 * application/vnd.di3fs.delta.v1, config the empty descriptor, layers the
 * .dimg and the layer recipes (when c has them), subject the target image's
 * manifest, the annotations naming base and target. The same .cdimg gives
 * the same bytes. */
struct dimg_buf;
int cdimg_registry_manifest(const struct cdimg *c, struct dimg_buf *out, struct dimg_err *err);

enum cdimg_kind { CDIMG_KIND_UNKNOWN = 0, CDIMG_KIND_DIMG = 1, CDIMG_KIND_CDIMG = 2 };
/* Which kind of delta a file is, from its first bytes (-errno if unreadable). */
int cdimg_sniff(const char *path);

/* Opens a delta, a .dimg or a .cdimg (told apart by their first bytes):
 * *rd reads its .dimg; *c is the .cdimg, NULL for a .dimg. The caller
 * frees both, *rd first. err names path. */
int cdimg_open_delta(const char *path, struct cdimg **c, struct dimg_reader **rd,
                     struct dimg_err *err);

#ifdef __cplusplus
}
#endif
#endif
