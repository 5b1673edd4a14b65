/* elfdeps: what a program needs to start, read from its files alone.
 *
 * elfdeps_read parses one file: an ELF64 object's PT_INTERP and dynamic
 * section (DT_NEEDED, DT_RUNPATH, DT_RPATH), or a script's "#!" line.
 * Every offset and size is checked against the file: a truncated or
 * hostile file gives an error, never a crash, a huge allocation or a loop.
 *
 * elfdeps_walk follows those, transitively, over any tree given as two
 * callbacks (a lazyfs image, or the host's / in the tests): symlinks are
 * resolved inside that tree, never on the host. Bounded by a file count
 * and a depth. */
#ifndef DI3FS_ELFDEPS_H
#define DI3FS_ELFDEPS_H

#include <stddef.h>

/* Caps on what one file may declare. */
#define ELFDEPS_MAX_NEEDED 256
#define ELFDEPS_MAX_PHDRS  512
#define ELFDEPS_MAX_DYN    4096      /* dynamic entries */
#define ELFDEPS_MAX_STRTAB (1 << 20) /* bytes */
#define ELFDEPS_MAX_HOPS   40        /* symlinks in one path, as Linux */

struct elfdeps_info {
	char *interp;  /* PT_INTERP, or a script's interpreter; NULL if none */
	char **needed; /* DT_NEEDED names, in order */
	size_t nneeded;
	char *runpath; /* DT_RUNPATH, DT_RPATH, or NULL */
	char *rpath;
	int script; /* interp comes from a "#!" line */
};

/* Reads fd (a regular file, from offset 0). 0: parsed (a static ELF or a
 * script has no needed); -ENOEXEC: neither ELF64 nor a script; -EBADMSG:
 * a broken ELF (*why says what); -ENOMEM; -errno from reading. */
int elfdeps_read(int fd, struct elfdeps_info *out, const char **why);
void elfdeps_info_clear(struct elfdeps_info *info);

/* A tree, by absolute paths with no symlink in them (resolved already). */
enum { ELFDEPS_REG = 1, ELFDEPS_DIR, ELFDEPS_LNK, ELFDEPS_OTHER };
struct elfdeps_fs {
	/* The type of path (ELFDEPS_*), its target into link[cap] when a
	 * symlink; -errno (-ENOENT) if it is not there. */
	int (*look)(void *ctx, const char *path, char *link, size_t cap);
	/* Opens the regular file at path read-only. -ECANCELED stops the walk. */
	int (*open)(void *ctx, const char *path, int *fd);
	/* Told of each file the walk takes up: err 0 once opened, else why it
	 * was left (why may be NULL). Optional. */
	void (*visit)(void *ctx, const char *path, int err, const char *why);
	void *ctx;
};

/* Resolves path (absolute) in fs to the canonical path of what it names,
 * following symlinks; the type like look's. */
int elfdeps_resolve(const struct elfdeps_fs *fs, const char *path, char *out, size_t cap);

struct elfdeps_limits {
	unsigned max_files; /* files opened, seeds included */
	unsigned max_depth; /* seeds are depth 0 */
};

/* Opens each seed (absolute paths; missing ones are skipped) and then, in
 * breadth-first order, the interpreters and the libraries each names,
 * resolved as the dynamic loader does (DT_RPATH unless DT_RUNPATH, then
 * DT_RUNPATH, then the usual library directories; $ORIGIN expanded), and
 * /etc/ld.so.cache for a dynamic program (its loader reads it), each file
 * once. Returns the number of files opened, or -ECANCELED. */
int elfdeps_walk(const struct elfdeps_fs *fs, const char *const *seeds, size_t nseeds,
                 const struct elfdeps_limits *lim);

#endif
