/* The packer: encodes a differ plan with a pool of threads and streams the
 * result into a .dimg, byte-identical whatever the thread count. */
#ifndef DI3FS_PACKER_H
#define DI3FS_PACKER_H

#include <stdint.h>

#include "differ.h"
#include "dimg/dimg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An output replaces a file already at its path (else that is -EEXIST). */
#define PACKER_REPLACE 0x1u

struct packer_opts {
	struct differ_opts diff;
	unsigned out_flags; /* PACKER_REPLACE */
	unsigned jobs;      /* encoder threads; 0 = one per core */
	int no_dict;        /* never store a shared dictionary for small full blobs */
	dimg_progress_fn progress;
	void *pctx;
};

/* What the encoders did; what the delta changes is dimg_counts_trees'. */
struct packer_stats {
	uint64_t input_bytes; /* bytes of the target files that were encoded */
	uint64_t output_size; /* size of the .dimg */
	uint64_t dict_bytes;  /* the shared dictionary, 0 if none */
};

void packer_opts_default(struct packer_opts *o);

/* Encodes every FULL/PATCH entry of plan (from differ_plan; its blob fields
 * and final payloads are filled in here) and writes the .dimg to out_path:
 * to a temporary name in the same directory, fsynced, then renamed; on
 * failure nothing is left at out_path. New files are re-hashed while
 * encoded: a file that changed since the walk is an error. A file already
 * at out_path is -EEXIST unless o->out_flags says PACKER_REPLACE. On error err
 * (NULL allowed) names out_path, or says which file of the new or the base
 * tree could not be read or encoded. */
int packer_write_dimg(const char *out_path, const struct dimg_tree *base,
                      const struct dimg_files *base_files, struct dimg_tree *plan,
                      const struct dimg_files *target_files, const struct packer_opts *o,
                      struct packer_stats *st, struct dimg_err *err);

/* Creates a temporary file next to path (".NAME.tmp-<pid>-<start>-XXXXXX",
 * locked by the fd: dimg/fileio.h), after removing those that writers
 * killed earlier left; *tmp_out is malloc'd. Returns the fd or -errno. */
int packer_tmpfile(const char *path, char **tmp_out);
/* fsyncs fd, renames tmp to path, closes fd, fsyncs the directory; a file
 * at path is -EEXIST (and tmp left for the caller to remove) unless flags
 * says PACKER_REPLACE. */
int packer_commit_tmpfile(int fd, const char *tmp, const char *path, unsigned flags);
/* Runs fill(fd, ctx) on a temporary file next to path and commits it
 * (packer_commit_tmpfile, flags) when fill returns 0; otherwise the
 * temporary is removed and nothing is left at path. Returns fill's error
 * or the commit's; err (NULL allowed) names path unless fill's own context
 * named something first. */
int packer_write_atomic(const char *path, unsigned flags, int (*fill)(int fd, void *ctx), void *ctx,
                        struct dimg_err *err);

#ifdef __cplusplus
}
#endif
#endif
