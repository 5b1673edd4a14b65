/* lazyfs: one read-only FUSE filesystem (libfuse3 low-level API) that
 * presents every loaded delta image's complete tree, each under its own
 * top-level directory <mountpoint>/<name>.
 *
 * Metadata (lookup, getattr, readdir, readlink, getxattr, listxattr) comes
 * straight from the delta's index resolved against the base tree: nothing
 * is rebuilt for it. A regular file is obtained on first open:
 *   - unchanged or SAME: served from the base file itself (a path under the
 *     base directory, or the base image's own file, recursively);
 *   - FULL / PATCH: rebuilt once (dimg_reader_rebuild, SHA-256 verified)
 *     into the content-addressed cache <cache_dir>/sha256/<xx>/<hex>, shared
 *     by all images; later opens and reads come from the cache file, with
 *     the kernel's page cache kept (keep_cache).
 * Concurrent first opens of the same content rebuild it once.
 *
 * Thread-safe: images may be added and removed while the filesystem
 * serves requests. */
#ifndef DI3FS_LAZYFS_H
#define DI3FS_LAZYFS_H

#include "log.h"

#include <stdint.h>

struct lazyfs;
struct lazyfs_image;

struct lazyfs_config {
	const char *mountpoint; /* an existing empty directory */
	const char *cache_dir;  /* created if missing; holds sha256/ and tmp/ */
	uint64_t cache_max;     /* bytes; 0 = no limit. Past it, cached files
	                           not open are evicted, least recently used first */
	unsigned threads;       /* FUSE worker threads (0 = a default, 8) */
	const struct snap_log *lg;
};

/* Mounts the filesystem (allow_other, default_permissions, ro; needs root)
 * and starts serving it on threads of its own. A stale mount left at mountpoint by a killed daemon
 * is unmounted first. Leftover temp files in the cache are deleted. */
int lazyfs_start(struct lazyfs **out, const struct lazyfs_config *cfg, const char **why);
/* Unmounts (lazily if busy) and frees everything; images need not be
 * removed first. Accepts NULL. */
void lazyfs_stop(struct lazyfs *fs);

/* The base an image's delta applies to: exactly one of the two is set.
 * dir: a directory holding the complete base tree (a read-only overlay
 * mount of a snapshot chain, or one layer's directory), walked without
 * hashing (the caller vouches for its identity). image: another image of
 * this lazyfs (chains), which must stay loaded while this one is. */
struct lazyfs_base {
	const char *dir;
	struct lazyfs_image *image;
};

/* Loads the .dimg at dimg_path (kept open and mapped while loaded) over
 * base and shows it at <mountpoint>/<name>. name is one path component
 * (e.g. a snapshot id in decimal). -EEXIST if name is loaded; -EBADMSG if
 * the delta is corrupt or does not fit the base (*why says which). */
int lazyfs_add(struct lazyfs *fs, const char *name, const char *dimg_path,
               const struct lazyfs_base *base, struct lazyfs_image **out, const char **why);
/* Takes name's tree away. -ENOENT if not loaded; -EBUSY while another
 * loaded image uses it as its base. Open files keep working until closed. */
int lazyfs_remove(struct lazyfs *fs, const char *name);
/* The loaded image called name, or NULL. Borrowed: valid until the image
 * is removed (e.g. to pass as another image's base). */
struct lazyfs_image *lazyfs_find(struct lazyfs *fs, const char *name);

struct lazyfs_stats {
	uint64_t cache_bytes; /* disk blocks in use by cached files, in bytes */
	uint64_t cache_files;
	uint64_t rebuilds; /* files rebuilt since start */
	uint64_t evictions;
};
void lazyfs_get_stats(struct lazyfs *fs, struct lazyfs_stats *st);

#endif
