/* Opening files beneath a directory without ever following a symlink: the
 * one primitive every reader of an untrusted tree goes through. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dimg/tree.h"
#include "tree-internal.h"

/* Tree-style paths only: relative, no empty, "." or ".." components. The
 * kernel would catch ".." with RESOLVE_BENEATH, but the component walk
 * could not, and a clear -EINVAL beats a late -EXDEV. */
static int beneath_path_ok(const char *p)
{
	if (!p || *p == '\0')
		return 0;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (len == 0 || (len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		if (!slash)
			return 1;
		p = slash + 1;
	}
}

/* -ENOSYS when the kernel lacks openat2; -EPERM from old container
 * seccomp profiles that deny syscalls they do not know. */
static int open_beneath_openat2(int dirfd, const char *relpath, int flags)
{
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	long fd;
	do
		fd = syscall(SYS_openat2, dirfd, relpath, &how, sizeof(how));
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : (int)fd;
}

/* O_PATH with O_NOFOLLOW hands back the symlink itself instead of failing,
 * so look at what was opened. */
static int refuse_symlink_fd(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	if (S_ISLNK(st.st_mode)) {
		close(fd);
		return -ELOOP;
	}
	return fd;
}

/* Opens one intermediate component as an O_PATH directory fd: O_PATH needs
 * only search permission, like the kernel's own path walk. */
static int open_dir_component(int cur, const char *name)
{
	int fd = openat(cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		close(fd);
		return S_ISLNK(st.st_mode) ? -ELOOP : -ENOTDIR;
	}
	return fd;
}

/* The pre-5.6 way: one openat per component, each with O_NOFOLLOW. */
static int open_beneath_walk(int dirfd, const char *relpath, int flags)
{
	char *copy = strdup(relpath);
	if (!copy)
		return -ENOMEM;
	int cur = dirfd, r;
	char *name = copy;
	struct stat st;
	for (char *slash; (slash = strchr(name, '/')) != NULL; name = slash + 1) {
		*slash = '\0';
		r = open_dir_component(cur, name);
		if (cur != dirfd)
			close(cur);
		if (r < 0)
			goto out;
		cur = r;
	}
	r = openat(cur, name, flags | O_NOFOLLOW | O_CLOEXEC);
	r = r < 0 ? -errno : r;
	/* With O_DIRECTORY a final symlink reports ENOTDIR: say what it is. */
	if (r == -ENOTDIR && fstatat(cur, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		r = -ELOOP;
	if (cur != dirfd)
		close(cur);
out:
	free(copy);
	return r;
}

int dimg_openat_beneath(int dirfd, const char *relpath, int flags, int *out_fd)
{
	*out_fd = -1;
	if (!beneath_path_ok(relpath))
		return -EINVAL;
	/* No mode argument, so no creating: callers create with *at calls on a
	 * directory fd they opened through here. */
	if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
		return -EINVAL;
	int r = open_beneath_openat2(dirfd, relpath, flags);
	/* A genuine EPERM just comes back again from the component walk. */
	if (r == -ENOSYS || r == -EPERM)
		r = open_beneath_walk(dirfd, relpath, flags);
	if (r >= 0 && (flags & O_PATH))
		r = refuse_symlink_fd(r);
	if (r < 0)
		return r;
	*out_fd = r;
	return 0;
}

struct dir_files {
	int rootfd;
};

/* O_NONBLOCK: if a regular file was replaced by a FIFO, open must not hang
 * waiting for a writer; the type check below then rejects it. */
static int dir_files_open_entry(void *ctx, const struct dimg_entry *e, int *out_fd)
{
	const struct dir_files *df = ctx;
	int fd, r = dimg_openat_beneath(df->rootfd, e->path, O_RDONLY | O_NOCTTY | O_NONBLOCK, &fd);
	*out_fd = -1;
	if (r < 0)
		return r;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -ESTALE; /* the directory no longer matches its tree */
	}
	*out_fd = fd;
	return 0;
}

int dimg_dir_files_open(struct dimg_files *out, const char *root)
{
	memset(out, 0, sizeof(*out));
	struct dir_files *df = malloc(sizeof(*df));
	if (!df)
		return -ENOMEM;
	df->rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (df->rootfd < 0) {
		int r = -errno;
		free(df);
		return r;
	}
	out->open = dir_files_open_entry;
	out->ctx = df;
	return 0;
}

void dimg_dir_files_close(struct dimg_files *f)
{
	if (!f || !f->ctx)
		return;
	struct dir_files *df = f->ctx;
	close(df->rootfd);
	free(df);
	f->ctx = NULL;
	f->open = NULL;
}
