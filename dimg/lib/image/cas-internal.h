/* Private interfaces of the image reader: the content store (cas.c), the
 * streaming layer squash (squash.c) and the image layout parsers (oci.c). */
#ifndef DIMG_CAS_INTERNAL_H
#define DIMG_CAS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dimg/cas.h"
#include "dimg/dimg.h"
#include "dimg/image.h"
#include "dimg/tree.h"

/* ---- content store (the layout and plain access: dimg/cas.h) ---- */

/* Streams one file at a time into the store, hashing it; reusable. */
struct dimg_cas_writer;
int dimg_cas_writer_new(struct dimg_cas_writer **out, struct dimg_cas *c);
void dimg_cas_writer_free(struct dimg_cas_writer *w);
int dimg_cas_writer_begin(struct dimg_cas_writer *w);
int dimg_cas_writer_write(struct dimg_cas_writer *w, const void *p, size_t n);
/* Appends n zero bytes (a hole where the file system allows). */
int dimg_cas_writer_zeros(struct dimg_cas_writer *w, uint64_t n);
/* Names the content by its SHA-256 (replacing an equal copy if present). */
int dimg_cas_writer_commit(struct dimg_cas_writer *w, uint8_t sha256[32], uint64_t *size);
/* The store's directory, for messages. */
const char *dimg_cas_writer_dir(const struct dimg_cas_writer *w);
/* Drops the file being written, if any. */
void dimg_cas_writer_abort(struct dimg_cas_writer *w);

/* dimg_files over the store for the entries of t (borrowed, must outlive
 * *out): REG entries open by sha256, HARDLINK entries by their leader's. */
int dimg_cas_files_open(struct dimg_files *out, const struct dimg_cas *c,
                        const struct dimg_tree *t);
void dimg_cas_files_close(struct dimg_files *f);

/* ---- squash: layer tars applied in order into one tree ---- */

/* Hands out the bytes of a layer blob in order: *buf stays valid until the
 * next call; *len == 0 means the end. Returns 0 or -errno. */
struct dimg_layer_src {
	int (*read)(void *ctx, const void **buf, size_t *len);
	void *ctx;
};

struct dimg_layer_info {
	const char *name; /* names the layer in messages ("sha256:...") */
	int has_digest;   /* digest is the expected SHA-256 of the blob bytes */
	int has_diff_id;  /* diff_id is the expected SHA-256 of the tar stream */
	uint8_t digest[32];
	uint8_t diff_id[32];
	uint64_t size; /* declared blob size, UINT64_MAX if unknown */
	/* Set by dimg_squash_layer. */
	uint8_t got_digest[32], got_diff_id[32];
	uint64_t got_size;
	const char *filter; /* "none", "gzip", "zstd", ... (static string) */
};

struct dimg_squash;

/* total: bytes of all layer blobs, for progress (0 if unknown). */
int dimg_squash_new(struct dimg_squash **out, struct dimg_cas *cas, uint64_t total,
                    dimg_progress_fn progress, void *pctx);
/* Applies one layer, streaming: one pass over the blob. Mismatching digest
 * or diff_id is -EBADMSG. err says why, naming the layer (and entry). */
int dimg_squash_layer(struct dimg_squash *s, struct dimg_layer_info *li,
                      const struct dimg_layer_src *src, struct dimg_err *err);
/* The squashed tree, sorted and validated, hardlink groups led by their
 * first path. The squash is spent afterwards. */
int dimg_squash_finish(struct dimg_squash *s, struct dimg_tree **out, struct dimg_err *err);
void dimg_squash_free(struct dimg_squash *s);

/* ---- layer recipes (tarsplit.c): docs/FORMAT.md "Layer recipes" ---- */
struct dimg_tarsplit;

/* Records into f (borrowed, stays open) from its current end. */
int dimg_tarsplit_new(struct dimg_tarsplit **out, FILE *f);
void dimg_tarsplit_free(struct dimg_tarsplit *t);
/* Starts a layer's records; dimg_tarsplit_offset says where. */
void dimg_tarsplit_begin(struct dimg_tarsplit *t);
uint64_t dimg_tarsplit_offset(const struct dimg_tarsplit *t);
/* The layer's uncompressed tar bytes, in order. */
int dimg_tarsplit_feed(struct dimg_tarsplit *t, const void *buf, size_t n);
/* Ends the layer (END record, flushed): its records are [*off, *off+*len). */
int dimg_tarsplit_end(struct dimg_tarsplit *t, uint64_t *off, uint64_t *len, uint64_t start);

/* Every tar stream byte of the following layers also goes to t (NULL: none). */
void dimg_squash_record(struct dimg_squash *s, struct dimg_tarsplit *t);

/* ---- image layouts (oci.c) ---- */

/* 1 if the directory is an OCI image layout or an unpacked docker save
 * rather than a root filesystem, 0 if not, -errno. */
int dimg_oci_probe_dir(const char *path);
/* Fills img (tree, config, manifest, digests, media type, ref, layers)
 * from an OCI layout or docker-save input (directory or tar), contents into
 * cas; with recipes non-NULL, each layer's recipe is appended to it. */
int dimg_oci_open(struct dimg_image *img, const char *path, int is_dir,
                  const struct dimg_image_opts *o, struct dimg_cas *cas, FILE *recipes,
                  struct dimg_err *err);

#endif
