/* The small tree the layer recipe fuzz targets and tests/unit/test_recipes.c
 * predict layers from: every kind of entry a writer model handles (a
 * hardlink whose first name in depth-first order is not the first in sort
 * order, a long name, a non-ASCII one, an xattr, an owner past the octal
 * field, a device, setuid/setgid/sticky) and the contents of its files. */
#ifndef DI3FS_FUZZ_RECIPES_TREE_H
#define DI3FS_FUZZ_RECIPES_TREE_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dimg/hash.h"
#include "dimg/tree.h"

#define RECIPES_LONG_NAME                                                                          \
	"d/"                                                                                       \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
	"aa"                                                                                       \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define RECIPES_NCONTENTS 4

static const char *const recipes_contents[RECIPES_NCONTENTS] = {"file content", "other", "long",
                                                                "\xc3\xa9t\xc3\xa9"};

/* A content of the tree by SHA-256 and size, or NULL. */
static inline const char *recipes_content(const uint8_t sha[32], uint64_t size)
{
	uint8_t h[32];
	for (int i = 0; i < RECIPES_NCONTENTS; i++)
		if (strlen(recipes_contents[i]) == size &&
		    dimg_sha256_buf(recipes_contents[i], size, h) == 0 && !memcmp(h, sha, 32))
			return recipes_contents[i];
	return NULL;
}

static inline int recipes_add(struct dimg_tree *t, const char *path, uint8_t type, uint32_t mode,
                              const char *link, int content)
{
	struct dimg_entry e = {.path = (char *)path, .type = type, .mode = mode};
	e.mtime_sec = 1700000000 + (int64_t)strlen(path);
	e.link = (char *)link;
	if (type == DIMG_TYPE_SYMLINK)
		e.size = strlen(link);
	if (content >= 0) {
		e.size = strlen(recipes_contents[content]);
		if (dimg_sha256_buf(recipes_contents[content], e.size, e.sha256) < 0)
			return -ENOMEM;
	}
	if (type == DIMG_TYPE_CHR) {
		e.rdev_major = 1;
		e.rdev_minor = 3;
	}
	return dimg_tree_append(t, &e);
}

/* a/g: an xattr and an owner past the octal field. */
static inline int recipes_odd_owner(struct dimg_entry *g)
{
	if (!(g->xattrs = calloc(1, sizeof(*g->xattrs))) ||
	    !(g->xattrs[0].name = strdup("user.x")) || !(g->xattrs[0].value = malloc(1)))
		return -ENOMEM;
	g->xattrs[0].value[0] = '1';
	g->xattrs[0].value_len = 1;
	g->nxattrs = 1;
	g->uid = 3000000;
	return 0;
}

static inline int recipes_tree_new(struct dimg_tree **out)
{
	struct dimg_tree *t;
	int r = dimg_tree_new(&t);
	if (r < 0)
		return r;
	if ((r = recipes_add(t, "", DIMG_TYPE_DIR, 0755, NULL, -1)) == 0 &&
	    (r = recipes_add(t, "a", DIMG_TYPE_DIR, 02775, NULL, -1)) == 0 &&
	    (r = recipes_add(t, "a-b", DIMG_TYPE_REG, 0600, NULL, 0)) == 0 &&
	    (r = recipes_add(t, "a/f", DIMG_TYPE_HARDLINK, 0, "a-b", -1)) == 0 &&
	    (r = recipes_add(t, "a/g", DIMG_TYPE_REG, 04755, NULL, 1)) == 0 &&
	    (r = recipes_add(t, "d", DIMG_TYPE_DIR, 01777, NULL, -1)) == 0 &&
	    (r = recipes_add(t, RECIPES_LONG_NAME, DIMG_TYPE_REG, 0644, NULL, 2)) == 0 &&
	    (r = recipes_add(t, "l", DIMG_TYPE_SYMLINK, 0777, "a/g", -1)) == 0 &&
	    (r = recipes_add(t, "n", DIMG_TYPE_CHR, 0666, NULL, -1)) == 0 &&
	    (r = recipes_add(t, "\xc3\xa9", DIMG_TYPE_REG, 0644, NULL, 3)) == 0 &&
	    (r = recipes_odd_owner(&t->v[4])) == 0)
		r = dimg_tree_sort(t);
	if (r < 0)
		dimg_tree_free(t);
	else
		*out = t;
	return r;
}

#endif
