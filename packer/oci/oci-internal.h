/* What the files of the OCI room share (not installed): a layer blob being
 * written (hashed, compressed, framed) and the job of writing a tree as a
 * layer. tar.c frames, json.c serialises, layer.c writes layers, image.c
 * writes whole images. */
#ifndef DI3FS_OCI_INTERNAL_H
#define DI3FS_OCI_INTERNAL_H

#include "ociwrite.h"

/* A layer blob on its way into the archive (layer.c). */
struct layer_out;

struct layer_job {
	const struct dimg_tree *t;
	dimg_content_fn content;
	void *ctx;
	const struct oci_image_opts *o;
	uint64_t done, total;
};

/* What a layer blob came out as. */
struct layer_done {
	char diff_id[OCI_DIGEST_LEN], digest[OCI_DIGEST_LEN];
	uint64_t size, raw_size;
};

/* Produces a layer's raw tar bytes into L (compression not finished). */
typedef int (*layer_body_fn)(void *ctx, struct layer_out *L);

/* A layer blob in the archive: its header is written as zeros and patched
 * once the digest and size are known. */
int oci_blob_layer(struct ocitar *tar, const struct oci_image_opts *o, layer_body_fn body,
                   void *ctx, struct layer_done *d);
/* Raw tar bytes in (a dimg_write_fn over a struct layer_out): hashed for
 * the diff_id, compressed if asked, written. */
int oci_layer_out_write(void *ctx, const void *buf, size_t n);
/* Streams every entry of j->t as a tar into L; *failed is the entry index
 * that failed, if one did (not when writing the archive failed). */
int oci_layer_write(struct layer_job *j, struct layer_out *L, size_t *failed);

#endif
