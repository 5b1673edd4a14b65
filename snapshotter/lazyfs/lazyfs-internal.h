/* lazyfs internals shared by its files: the image (a resolved tree with a
 * per-directory child index), the content-addressed cache, the FUSE ops. */
#ifndef DI3FS_LAZYFS_INTERNAL_H
#define DI3FS_LAZYFS_INTERNAL_H

#include "lazyfs.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "dimg/dimg.h"

/* Entry and attribute timeouts: trees never change while loaded. */
#define LAZYFS_TIMEOUT      86400.0
#define LAZYFS_ROOT_TIMEOUT 1.0

/* Node ids: image id in the high 32 bits, entry index + 1 in the low ones
 * (hardlinks use their leader's). FUSE's root (1) has image id 0. Image ids
 * are never reused while mounted, so a stale node id never finds another
 * image's entry. */
#define LAZYFS_NODE(id, idx) (((uint64_t)(id) << 32) | ((uint64_t)(idx) + 1))

/* Per-entry index built at load. */
struct lazyfs_node {
	uint32_t parent;  /* index of the parent directory (the root: itself) */
	uint32_t leader;  /* the REG entry a HARDLINK names; else itself */
	uint32_t nlink;   /* directories: 2 + subdirectories; files: names */
	uint32_t kid_off; /* directories: first child in lazyfs_image.kids */
	uint32_t kid_n;
};

struct lazyfs_image {
	struct lazyfs *fs;
	char *name;
	char *dimg_path; /* the .dimg, named in error messages */
	uint64_t id;
	/* 1 while loaded + kernel lookups + open files + images based on it
	 * (their base pointer). Freed at 0 (lazyfs_image_unref). */
	atomic_uint_fast64_t refs;
	atomic_uint_fast64_t lookups; /* the kernel's, counted in refs */
	int loaded;                   /* under fs->lock */
	unsigned dependents;          /* loaded images using it as base; under fs->lock */
	struct dimg_reader *rd;
	struct dimg_tree *tree;
	struct lazyfs_node *nodes;
	uint32_t *kids; /* children of each directory, sorted by name */
	struct lazyfs_image *base_img;
	struct dimg_files base_files; /* base files by path: dir or base_img */
	int base_is_dir;
	/* Entries opened through the mount, first ones first (lazyfs_opened);
	 * under fs->hlock */
	uint32_t opened[LAZYFS_OPENED_MAX];
	unsigned nopened;
};

struct lazyfs_cache;
struct lazyfs_cached;
struct lazyfs_file;
struct lazyfs_worker;

/* The FUSE connection (lazyfs_conn.c) and its workers (lazyfs_loop.c). */
struct lazyfs_conn {
	struct fuse_session *se;
	int fd;           /* the session's /dev/fuse (closed with it) */
	uint8_t *journal; /* the journal (lazyfs-holder.h), mapped */
	size_t journal_len;
	int journal_fd;
	uint64_t dev;     /* st_dev of the mount */
	int holder;       /* our connection to the fd holder, or -1 */
	pid_t holder_pid; /* the holder we started, if we did */
	int init_done;    /* op_init ran: the session accepts requests */
	int stop_efd;     /* wakes the watch thread at stop */
	int loop_efd;     /* stops the workers */
	pthread_t watch;
	int watch_started;
	struct lazyfs_worker *workers;
	unsigned nworkers;
};

struct lazyfs {
	char *mountpoint;
	const struct snap_log *lg;
	pthread_rwlock_t lock;
	struct lazyfs_image **byid; /* every live image, ascending id */
	size_t nimages, cap;
	uint64_t next_id;
	struct lazyfs_cache *cache;
	struct lazyfs_conn conn;
	char *holder_path; /* NULL: the mount ends with us */
	unsigned wait_ms;
	unsigned threads;
	struct timespec started;
	/* After a takeover, until lazyfs_restored (or the deadline): a request
	 * for an image not loaded yet waits for the next one to be loaded. */
	pthread_mutex_t restore_mu;
	pthread_cond_t restore_cv;
	int restoring;
	uint64_t published; /* images loaded so far: what waiters watch */
	struct timespec restore_deadline;
	pthread_mutex_t hlock;
	struct lazyfs_file **files; /* open files by node id (lazyfs_files.c) */
	struct lazyfs_prefetch *prefetch;
	int readahead_set; /* widened once, at the first open */
};

/* Widens the mount's readahead (lazyfs.c); called once, from the first
 * open, when the INIT exchange (which sets it) is over. */
void lazyfs_widen_readahead(struct lazyfs *fs);
/* st_dev of the newest mount at mnt, from /proc/self/mountinfo (which,
 * unlike a stat, sends no request to a FUSE mount); -ENOENT if none. */
int lazyfs_mount_dev(const char *mnt, uint64_t *dev);

/* ---- the connection (lazyfs_conn.c) ---- */

/* Takes over the holder's connection, or mounts a new one (and starts a
 * holder for it when fs->wait_ms > 0). */
int lazyfs_conn_open(struct lazyfs *fs, const char **why);
/* Leaves the connection to the holder, or unmounts without one. Workers
 * must be stopped. */
void lazyfs_conn_close(struct lazyfs *fs);
/* Starts watching the holder: a new one replaces one that dies. */
void lazyfs_conn_watch(struct lazyfs *fs);

/* ---- workers (lazyfs_loop.c) ---- */

/* Starts fs->threads workers; each first answers again what its journal
 * slots hold (requests a previous daemon may have left unanswered). */
int lazyfs_loop_start(struct lazyfs *fs);
/* Stops the workers between requests. */
void lazyfs_loop_stop(struct lazyfs *fs);
/* Hands the request in slot (len bytes) to libfuse, then clears the slot:
 * it has been answered. */
void lazyfs_loop_process(struct lazyfs *fs, uint8_t *slot, size_t len);

/* ---- images (lazyfs_tree.c) ---- */

/* Builds nodes and kids of img->tree (a validated tree). */
int lazyfs_tree_index(struct lazyfs_image *img);
/* Child called name of directory dir, or -1. O(log children). */
int64_t lazyfs_tree_child(const struct lazyfs_image *img, uint32_t dir, const char *name);
/* The last path component of entry idx ("" for the root). */
const char *lazyfs_tree_name(const struct lazyfs_image *img, uint32_t idx);
/* stat of entry idx as the filesystem shows it (hardlinks: the leader). */
void lazyfs_tree_stat(const struct lazyfs_image *img, uint32_t idx, struct stat *st);

/* The live image with node id ino's image id, with a reference taken, and
 * the entry index. -ESTALE if none (a removed and released image); after a
 * takeover, with wait set, an image not loaded yet is waited for, and
 * -EIO past the deadline. */
int lazyfs_image_get(struct lazyfs_image **out, struct lazyfs *fs, uint64_t ino, uint32_t *idx,
                     int wait);
/* The loaded image called name, with a reference taken (waits like
 * lazyfs_image_get); NULL if none. */
int lazyfs_image_by_name(struct lazyfs_image **out, struct lazyfs *fs, const char *name);
/* A new image is loaded: wakes requests waiting for it. */
void lazyfs_restore_wake(struct lazyfs *fs);
void lazyfs_image_ref(struct lazyfs_image *img, uint64_t n);
/* The kernel's lookups: counted as references, and dropped by FORGET no
 * further than counted (after a takeover the kernel forgets nodes it
 * looked up from the previous daemon). */
void lazyfs_image_lookup(struct lazyfs_image *img, uint64_t n);
void lazyfs_image_forget(struct lazyfs_image *img, uint64_t n);
/* Drops n references; the last frees the image (and its base's). */
void lazyfs_image_unref(struct lazyfs_image *img, uint64_t n);
void lazyfs_image_free(struct lazyfs_image *img);

/* ---- file content (lazyfs_open.c) ---- */

/* Opens the content of REG entry e of img read-only: the base file, or the
 * cache file (rebuilt first if missing), or /dev/null for an empty file.
 * *ce is the cache file's handle (release with lazyfs_cache_put) or NULL.
 * Failures are logged with the image and path. */
int lazyfs_open_content(struct lazyfs_image *img, const struct dimg_entry *e, int *fd,
                        struct lazyfs_cached **ce);
/* img->base_files for an image whose base is another image. */
void lazyfs_image_files(struct dimg_files *out, struct lazyfs_image *base);

/* ---- the cache (lazyfs_cache.c) ---- */

/* Writes the content into fd (a new empty temp file); -errno on failure. */
typedef int (*lazyfs_fill_fn)(void *ctx, int fd);

/* Opens dir (created if missing) and indexes the files already there;
 * deletes temp leftovers. */
int lazyfs_cache_open(struct lazyfs_cache **out, const char *dir, uint64_t max,
                      const struct snap_log *lg, const char **why);
void lazyfs_cache_close(struct lazyfs_cache *c);
/* A read-only fd on the cache file holding content sha, made with fill if
 * it is not there (once, however many threads ask at the same time: the
 * others wait and share the result, success or error). *ce counts as an
 * open handle until lazyfs_cache_put. */
int lazyfs_cache_get(struct lazyfs_cache *c, const uint8_t sha[32], lazyfs_fill_fn fill, void *ctx,
                     struct lazyfs_cached **ce, int *fd);
void lazyfs_cache_put(struct lazyfs_cache *c, struct lazyfs_cached *ce);
void lazyfs_cache_stats(struct lazyfs_cache *c, struct lazyfs_stats *st);
/* statvfs of the filesystem the cache lives on (where rebuilt files go). */
struct statvfs;
int lazyfs_cache_statvfs(struct lazyfs_cache *c, struct statvfs *sv);

/* ---- open files (lazyfs_files.c) ---- */

/* A regular file's content, open for the kernel's handles on its node. The
 * handle (fh) the kernel holds is the node id, so a daemon after a restart
 * finds (opens again) what the previous one had open. */
struct lazyfs_file {
	uint64_t node;
	int fd;
	struct lazyfs_cached *ce;
	struct lazyfs_image *img; /* one reference */
	unsigned opens;           /* the kernel's handles we know of */
	unsigned busy;            /* reads under way */
	struct lazyfs_file *next;
};

int lazyfs_files_init(struct lazyfs *fs);
/* An open of entry idx (REG, a hardlink leader) of img: one more handle. */
int lazyfs_file_open(struct lazyfs *fs, struct lazyfs_image *img, uint32_t idx);
/* The open file for a handle, busy until lazyfs_file_put; opened again if
 * this process never saw it opened (a previous daemon's handle). */
int lazyfs_file_get(struct lazyfs_file **out, struct lazyfs *fs, uint64_t node);
void lazyfs_file_put(struct lazyfs *fs, struct lazyfs_file *f);
/* The kernel closed a handle. */
void lazyfs_file_release(struct lazyfs *fs, uint64_t node);
/* Closes every file (the workers have stopped). */
void lazyfs_files_free(struct lazyfs *fs);

/* ---- prefetch (lazyfs_prefetch.c) ---- */

struct lazyfs_prefetch;
int lazyfs_prefetch_init(struct lazyfs *fs, unsigned max_files, uint64_t max_bytes);
/* Stops the thread (after the file it is on) and drops queued jobs. */
void lazyfs_prefetch_fini(struct lazyfs *fs);
void lazyfs_prefetch_stats(struct lazyfs *fs, struct lazyfs_stats *st);
/* Notes an open of entry idx (a REG leader) for lazyfs_opened; hlock held. */
void lazyfs_opened_note(struct lazyfs_image *img, uint32_t idx);

/* ---- FUSE (lazyfs_ops.c) ---- */
struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops lazyfs_ops;

#endif
