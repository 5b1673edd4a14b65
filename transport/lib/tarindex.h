/* The members of an uncompressed tar (ustar, pax, GNU long names) and
 * where their data starts, found by reading headers only, so that a
 * member is later read with pread at its offset. */
#ifndef DI3FS_TARINDEX_H
#define DI3FS_TARINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "dimg/types.h"

#define XTAR_BLOCK       512u
#define XTAR_MEMBERS_MAX 1000000u
#define XTAR_NAME_MAX    4096u
#define XTAR_PAX_MAX     (1u << 20)
#define XTAR_LINK_HOPS   8

struct xtar_member {
	char *name; /* normalised: no "./", empty or "." components */
	char *link; /* hard or symbolic link's target (normalised), else NULL */
	uint64_t off, size;
};

struct xtar {
	struct xtar_member *m; /* sorted by name */
	size_t n;
};

/* Reads exactly n bytes at off, or returns -errno (-EIO past the end). */
typedef int (*xtar_pread_fn)(void *ctx, void *buf, size_t n, uint64_t off);

/* Lists the regular files and links of a tar of total bytes. Refused with
 * -EBADMSG: bad checksums, sizes past the end, names with "..", absolute
 * or too long, a member twice; -ENOTSUP: sparse files; -EOVERFLOW: more
 * than XTAR_MEMBERS_MAX members. err names the member. */
int xtar_index(struct xtar *t, xtar_pread_fn rd, void *ctx, uint64_t total, struct dimg_err *err);
/* The same over a file descriptor. */
int xtar_index_fd(struct xtar *t, int fd, struct dimg_err *err);
void xtar_free(struct xtar *t);
/* Drops "./" and empty components in place; -EBADMSG for "..", an
 * absolute or an empty name. */
int xtar_norm(char *s);
/* A regular member by name, links followed; NULL if none. */
const struct xtar_member *xtar_find(const struct xtar *t, const char *name);

#endif
