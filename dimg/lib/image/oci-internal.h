/* Private to the image layer's layout reader (oci.c, ocisrc.c,
 * ocidocker.c): where a layout's files come from, the image being built,
 * and the helpers the three share. */
#ifndef DIMG_OCI_INTERNAL_H
#define DIMG_OCI_INTERNAL_H

#include <archive.h>
#include <json-c/json.h>
#include <stdint.h>

#include "cas-internal.h"
#include "dimg/image.h"
#include "dimg/oci.h"

#define OCI_MEMBERS_MAX 1000000u
#define OCI_NAME_MAX    4096u
#define OCI_INDEX_DEPTH 4
#define OCI_LINK_HOPS   8
#define OCI_READ_BUF    (256u << 10)

struct oci_member {
	char *name; /* normalised */
	char *link; /* symlink / hardlink target (normalised), else NULL */
	int symlink;
	uint64_t size;
};

struct oci_src {
	int dirfd;       /* directory input, else -1 */
	const char *tar; /* tar input */
	struct oci_member *m;
	size_t nm;
};

struct oci_stream {
	int fd;
	struct archive *a;
	uint8_t *buf;
	uint64_t off;  /* bytes handed out */
	uint64_t size; /* the file's size */
};

struct oci_layer {
	char *member; /* file of the layout holding the blob */
	char *label;  /* names the layer in messages */
	struct dimg_layer_info li;
};

struct oci_ctx {
	struct oci_src src;
	const struct dimg_image_opts *o;
	char **err;
	struct dimg_image *img;
	struct oci_layer *layers;
	size_t nlayers;
	struct json_object *config; /* parsed img->config */
	int docker;                 /* picked through manifest.json */
};

int oci_norm_name(char **out, const char *raw);
void oci_src_close(struct oci_src *s);
int oci_src_open_tar(struct oci_src *s, const char *path, char **err);
int oci_member_resolve(const struct oci_src *s, const char *name, const struct oci_member **out);
void oci_stream_close(struct oci_stream *st);
int oci_stream_open(struct oci_stream **out, const struct oci_src *s, const char *name);
int oci_read_all(const struct oci_src *s, const char *name, size_t max, uint8_t **out,
                 size_t *outlen);
int oci_want_platform(struct oci_ctx *c, struct oci_platform *want);
int oci_layers_alloc(struct oci_ctx *c, size_t n);
int oci_diff_ids(struct oci_ctx *c);
int oci_load_docker(struct oci_ctx *c);
int oci_docker_manifest(struct oci_ctx *c);

int oci_stream_read(void *ctx, const void **buf, size_t *len);

#endif
