/* Where an image layout's files come from (layout_src.c), for oci.c: a
 * directory, or a tar listed once and read member by member. */
#ifndef DIMG_OCILAYOUT_INTERNAL_H
#define DIMG_OCILAYOUT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dimg/types.h"

struct archive;

#define OCI_MEMBERS_MAX 1000000u
#define OCI_NAME_MAX    4096u
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

/* Member names: "./" prefixes, empty and "." components dropped; ".."
 * refused, so a name can never leave the layout. */
int oci_norm_name(char **out, const char *raw);
void oci_src_close(struct oci_src *s);
/* Lists the tar's members once (names, sizes, links); contents are read
 * later by name, each in one sequential pass. */
int oci_src_open_tar(struct oci_src *s, const char *path, struct dimg_err *err);
/* Follows member links to a regular member. */
int oci_member_resolve(const struct oci_src *s, const char *name, const struct oci_member **out);

/* A stream over one file of the layout. */
struct oci_stream {
	int fd;
	struct archive *a;
	uint8_t *buf;
	uint64_t off;  /* bytes handed out */
	uint64_t size; /* the file's size */
};
int oci_stream_open(struct oci_stream **out, const struct oci_src *s, const char *name);
void oci_stream_close(struct oci_stream *st);
/* The next bytes (a dimg_layer_src read function); *len 0 at the end. */
int oci_stream_read(void *ctx, const void **buf, size_t *len);
/* A whole file of at most max bytes, NUL-terminated. */
int oci_read_all(const struct oci_src *s, const char *name, size_t max, uint8_t **out,
                 size_t *outlen);

#endif
