/* Helpers of the tree layer that nothing outside libdimg uses (the unit
 * tests include this header to test them). */
#ifndef DIMG_TREE_INTERNAL_H
#define DIMG_TREE_INTERNAL_H

/* Opens relpath beneath dirfd without following any symlink (openat2
 * RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or a component walk with O_NOFOLLOW
 * where openat2 is missing). */
int dimg_openat_beneath(int dirfd, const char *relpath, int flags, int *out_fd);

/* Removes a directory tree (for cleaning temporaries); ignores ENOENT. */
int dimg_rmtree(const char *path);
/* The same for name in dfd (any type, never followed). */
int dimg_rmtree_at(int dfd, const char *name);

/* A relative path from outside (a tar member, a layout's file name) made
 * plain into out (room for strlen(raw) + 1): empty and "." components
 * dropped, "./" prefixes too. Returns its length (0 for the root), or
 * -EBADMSG for a ".." component: such a path is refused, never resolved. */
int dimg_path_clean(char *out, const char *raw);

#endif
