/* Mounts for active snapshots and views, with the same shapes containerd's
 * overlayfs snapshotter returns: a bind mount when no overlay is needed,
 * else overlay with the parent chain as lowerdir (nearest parent first). */
#include "snap-internal.h"
#include "fsutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Far more layers than overlayfs can stack: a deeper chain means a loop. */
#define SNAP_CHAIN_MAX 4096

struct chain {
	uint64_t *ids; /* nearest parent first */
	size_t n;
	int last_delta; /* ids[n-1] is a delta image: its tree is complete */
};

static int chain_load(struct chain *c, struct store_txn *txn, const char *parent)
{
	char *next = strdup(parent);
	size_t cap = 0;
	int r = next ? 0 : -ENOMEM;

	c->ids = NULL;
	c->n = 0;
	c->last_delta = 0;
	while (r == 0 && next[0]) {
		struct snap_info info;
		if (c->n == SNAP_CHAIN_MAX) {
			r = -ELOOP;
			break;
		}
		r = store_get(&info, txn, next);
		if (r == -ENOENT)
			r = -EBADMSG; /* a parent vanished under a child: store damaged */
		if (r < 0)
			break;
		if (c->n == cap) {
			cap = cap ? cap * 2 : 16;
			uint64_t *ids = realloc(c->ids, cap * sizeof(*ids));
			if (!ids) {
				snap_info_clear(&info);
				r = -ENOMEM;
				break;
			}
			c->ids = ids;
		}
		c->ids[c->n++] = info.id;
		if (snap_delta_digest(&info)) {
			c->last_delta = 1; /* nothing below it is needed */
			snap_info_clear(&info);
			break;
		}
		free(next);
		next = info.parent;
		info.parent = NULL;
		snap_info_clear(&info);
	}
	free(next);
	if (r < 0) {
		free(c->ids);
		c->ids = NULL;
	}
	return r;
}

static int mount_init(struct snap_mount *m, const char *type, const char *source)
{
	m->type = strdup(type);
	m->source = strdup(source);
	return m->type && m->source ? 0 : -ENOMEM;
}

static int mount_opt(struct snap_mount *m, const char *opt)
{
	if (m->n_options == SNAP_OPTIONS_MAX)
		return -E2BIG;
	m->options[m->n_options] = strdup(opt);
	if (!m->options[m->n_options])
		return -ENOMEM;
	m->n_options++;
	return 0;
}

static int mount_opt_dir(struct snap_mount *m, const struct snap *sn, const char *name, uint64_t id,
                         const char *sub)
{
	char dir[PATH_MAX], opt[PATH_MAX + 32];
	int r = snap_dir_path(dir, sizeof(dir), sn, id, sub);

	if (r == 0)
		r = fsutil_pathf(opt, sizeof(opt), "%s=%s", name, dir);
	return r < 0 ? r : mount_opt(m, opt);
}

/* "lowerdir=" and the chain's fs dirs joined with ':'. */
static int mount_opt_lowerdir(struct snap_mount *m, const struct snap *sn, const struct chain *c)
{
	size_t cap = 16 + c->n * (strlen(sn->snapdir) + 32), len = 0;
	char *opt = malloc(cap), dir[PATH_MAX];
	int r = opt ? 0 : -ENOMEM;

	if (r == 0)
		len = (size_t)snprintf(opt, cap, "lowerdir=");
	for (size_t i = 0; r == 0 && i < c->n; i++) {
		if (c->last_delta && i == c->n - 1)
			r = snap_delta_tree_path(dir, sizeof(dir), sn, c->ids[i]);
		else
			r = snap_dir_path(dir, sizeof(dir), sn, c->ids[i], "fs");
		if (r == 0)
			r = fsutil_pathf(opt + len, cap - len, "%s%s", i ? ":" : "", dir);
		if (r == 0)
			len += strlen(opt + len);
	}
	if (r == 0)
		r = mount_opt(m, opt);
	free(opt);
	return r;
}

static int bind_mount(struct snap_mount *m, const struct snap *sn, uint64_t id, int ro, int delta)
{
	char fs[PATH_MAX];
	int r = delta ? snap_delta_tree_path(fs, sizeof(fs), sn, id)
	              : snap_dir_path(fs, sizeof(fs), sn, id, "fs");

	if (r == 0)
		r = mount_init(m, "bind", fs);
	if (r == 0)
		r = mount_opt(m, ro ? "ro" : "rw");
	if (r == 0)
		r = mount_opt(m, "rbind");
	return r;
}

/* containerd passes index=off whenever the kernel has the option, so lower
 * dirs shared by many overlays never get index entries. Asked per mount: the
 * overlay module may be loaded after the daemon starts. */
static int overlay_has_index(void)
{
	return access("/sys/module/overlay/parameters/index", F_OK) == 0;
}

static int overlay_mount(struct snap_mount *m, const struct snap *sn, const struct snap_info *info,
                         const struct chain *c)
{
	int r = mount_init(m, "overlay", "overlay");

	if (r == 0 && overlay_has_index())
		r = mount_opt(m, "index=off");
	if (r == 0 && info->kind == SNAP_KIND_ACTIVE) {
		r = mount_opt_dir(m, sn, "workdir", info->id, "work");
		if (r == 0)
			r = mount_opt_dir(m, sn, "upperdir", info->id, "fs");
	}
	if (r == 0)
		r = mount_opt_lowerdir(m, sn, c);
	return r;
}

int snap_build_mounts(struct snap_mounts *out, const struct snap *sn, struct store_txn *txn,
                      const struct snap_info *info)
{
	struct chain c;
	int r = chain_load(&c, txn, info->parent);

	memset(out, 0, sizeof(*out));
	if (r < 0)
		return r;
	out->n = 1;
	if (c.n == 0) /* overlay needs a lowerdir: a lone layer is its own dir */
		r = bind_mount(&out->v[0], sn, info->id, info->kind == SNAP_KIND_VIEW, 0);
	else if (info->kind == SNAP_KIND_VIEW && c.n == 1)
		r = bind_mount(&out->v[0], sn, c.ids[0], 1, c.last_delta);
	else
		r = overlay_mount(&out->v[0], sn, info, &c);
	free(c.ids);
	if (r < 0)
		snap_mounts_clear(out);
	return r;
}
