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
 * serves requests.
 *
 * Restarts (with a holder, see lazyfs_config): the FUSE connection
 * outlives the process. A small fd holder process keeps /dev/fuse open
 * while no daemon serves it; the next lazyfs_start takes the connection
 * over (no new mount, no new INIT), so files the kernel knows keep their
 * node ids: an image's node ids derive from the id given to lazyfs_add,
 * file handles from node ids. Requests wait in the kernel meanwhile, and
 * the holder fails them with EIO once no daemon has served for wait_ms. */
#ifndef DI3FS_LAZYFS_H
#define DI3FS_LAZYFS_H

#include "log.h"

#include <stddef.h>
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
	/* The fd holder's unix socket (e.g. <state dir>/fuse.sock), NULL for
	 * none: the mount then lives and dies with this process. With one, a
	 * connection a holder keeps is taken over, and with wait_ms > 0 a
	 * holder is started for a new mount: requests wait up to wait_ms for a
	 * daemon, then fail with EIO until one is back. */
	const char *holder;
	unsigned wait_ms;
	/* Prefetch bounds per image (lazyfs_prefetch): files opened, and bytes
	 * of changed files rebuilt; 0 = LAZYFS_PREFETCH_FILES / _BYTES. */
	unsigned prefetch_files;
	uint64_t prefetch_bytes;
};

#define LAZYFS_PREFETCH_FILES 256
#define LAZYFS_PREFETCH_BYTES ((uint64_t)256 << 20)
/* The first files opened in an image that lazyfs_opened reports. */
#define LAZYFS_OPENED_MAX 64

/* Argument that starts a program as the fd holder: lazyfs runs a copy of
 * the current executable (/proc/self/exe) with argv[1] = this and argv[2]
 * = the wait before the first daemon attaches, in ms. */
#define LAZYFS_HOLDER_ARG "--lazyfs-fd-holder"
/* A program that passes a holder to lazyfs_start calls this first thing in
 * main: -1 when argv does not ask for the holder, else its exit code. */
int lazyfs_holder_dispatch(int argc, char **argv);

/* Takes over the connection a holder keeps for mountpoint, or else mounts
 * the filesystem (allow_other, default_permissions, ro; needs root) after
 * detaching whatever is mounted there (a killed daemon's dead mount), and
 * starts serving on threads of its own. Leftover temp files in the cache
 * are deleted. After a takeover, requests for images not loaded yet wait
 * (up to wait_ms) until lazyfs_restored: load every image first. */
int lazyfs_start(struct lazyfs **out, const struct lazyfs_config *cfg, const char **why);
/* Every image there was before the restart is loaded again (or failed):
 * requests for others fail now. A no-op after a fresh mount. */
void lazyfs_restored(struct lazyfs *fs);
/* Stops serving and frees everything; images need not be removed first.
 * With a holder the mount stays, for the next lazyfs_start; without one it
 * is unmounted (lazily if busy). Accepts NULL. */
void lazyfs_stop(struct lazyfs *fs);
/* For a stopped daemon's mount: tells the holder at holder (if any) to
 * exit, which ends the connection, and detaches the mount at mountpoint.
 * 0 if there was nothing to do or all went. */
int lazyfs_unmount(const char *holder, const char *mountpoint, const struct snap_log *lg);

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
 * (e.g. a snapshot id in decimal). id (1 .. 2^32-1, or 0 for the next free
 * one) makes the image's node ids: give the same id to the same image
 * after a restart, and never reuse one for another image while the
 * mount lives. -EEXIST if name or id is taken; -EBADMSG if the delta is
 * corrupt or does not fit the base (*why says which). */
int lazyfs_add(struct lazyfs *fs, const char *name, uint64_t id, const char *dimg_path,
               const struct lazyfs_base *base, struct lazyfs_image **out, const char **why);
/* Takes name's tree away. -ENOENT if not loaded; -EBUSY while another
 * loaded image uses it as its base. Open files keep working until closed. */
int lazyfs_remove(struct lazyfs *fs, const char *name);
/* The loaded image called name, or NULL. Borrowed: valid until the image
 * is removed (e.g. to pass as another image's base). */
struct lazyfs_image *lazyfs_find(struct lazyfs *fs, const char *name);

/* Queues a prefetch of image name's start files and returns at once: one
 * background thread (nice 10, lowest best-effort I/O priority) opens each
 * seed (an absolute path in the image; missing ones are skipped) and,
 * transitively, the ELF interpreter and libraries (DT_NEEDED) each names,
 * or a script's "#!" interpreter, resolved inside the image's tree, as a
 * first open would: changed files are rebuilt into the cache. At most
 * prefetch_files files and prefetch_bytes of changed files per image; the
 * job ends at its next file once the image is removed, or at lazyfs_stop.
 * -ENOENT if name is not loaded, -EAGAIN if the queue is full. */
int lazyfs_prefetch(struct lazyfs *fs, const char *name, const char *const *seeds, size_t n);
/* The regular files opened through the mount in image name since it was
 * loaded (not by the prefetch), first ones first, at most
 * LAZYFS_OPENED_MAX: absolute paths, each ending in '\n', malloc'd (the
 * caller frees it); NULL if none (or name is not loaded). */
char *lazyfs_opened(struct lazyfs *fs, const char *name);

struct lazyfs_stats {
	uint64_t cache_bytes; /* disk blocks in use by cached files, in bytes */
	uint64_t cache_files;
	uint64_t rebuilds; /* files rebuilt since start */
	uint64_t evictions;
	uint64_t prefetched;     /* files the prefetch opened */
	uint64_t prefetch_bytes; /* changed files' bytes it brought into the cache */
};
void lazyfs_get_stats(struct lazyfs *fs, struct lazyfs_stats *st);

#endif
