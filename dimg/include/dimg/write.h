/* Materialising a tree as a directory, safely and atomically. */
#ifndef DIMG_WRITE_H
#define DIMG_WRITE_H

#include "dimg/codec.h"
#include "dimg/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Produces the content of REG entry e into sink, or returns -errno. */
typedef int (*dimg_content_fn)(void *ctx, const struct dimg_entry *e, dimg_write_fn sink,
                               void *sink_ctx);

#define DIMG_WRITE_NO_OWNER   0x1u /* do not chown (unprivileged use) */
#define DIMG_WRITE_NO_XATTR   0x2u /* do not set xattrs */
#define DIMG_WRITE_NO_DEVICES 0x4u /* fail on device nodes is default; skip instead */
#define DIMG_WRITE_REPLACE    0x8u /* outdir may exist: replaced once the new one is complete */

/* Writes tree t (validated first) as directory outdir, which must not
 * exist (with DIMG_WRITE_REPLACE: which is replaced, exchanged with the new
 * one and then removed): everything goes to a temporary sibling directory
 * that is renamed to outdir only when complete; on failure it is removed. Content of each
 * REG entry comes from content(); its SHA-256 and size are checked against
 * the entry while written. Ownership, full mode (set after chown so
 * setuid survives), xattrs and mtimes (directories last) are applied;
 * hardlinks are linked to their leader. On error err (NULL allowed) names
 * what failed: the tree path of the entry, or outdir itself; a content()
 * that sets err first keeps its own context. */
int dimg_tree_write_dir(const struct dimg_tree *t, const char *outdir, dimg_content_fn content,
                        void *ctx, unsigned flags, dimg_progress_fn progress, void *pctx,
                        struct dimg_err *err);

#ifdef __cplusplus
}
#endif
#endif
