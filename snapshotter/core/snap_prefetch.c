/* Prefetch of a delta image's start files (snapshotter/README.md): the
 * seeds come from its di3fs.prefetch label (cdimg load writes the image
 * config's Entrypoint/Cmd there: the snapshotter never sees the config)
 * and from the store's note of what a previous run of the same image (the
 * same delta, by its .dimg digest: snapshot keys carry containerd's own
 * numbering) opened first, written when it was removed. lazyfs does the work, on its own thread
 * (lazyfs_prefetch). */
#include "snap-internal.h"
#include "lazyfs.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEEDS_MAX 256

/* Splits text in place at newlines into seeds[*n..]; absolute paths only. */
static void split(char *text, const char **seeds, size_t *n)
{
	for (char *p = text, *nl; p && *p && *n < SEEDS_MAX; p = nl ? nl + 1 : NULL) {
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		if (p[0] == '/')
			seeds[(*n)++] = p;
	}
}

void snap_delta_prefetch(struct snap *sn, struct store_txn *txn, const struct snap_info *info)
{
	const char *label = snap_labels_get(&info->labels, SNAP_LABEL_PREFETCH);
	char *lab = label ? strdup(label) : NULL, *rec = NULL, name[24];
	const char *seeds[SEEDS_MAX];
	size_t n = 0;
	if (!sn->lfs || sn->no_prefetch) {
		free(lab);
		return;
	}
	int r = store_opened_get(&rec, txn, snap_delta_digest(info));
	if (r < 0 && r != -ENOENT)
		snap_warn(sn->lg, "delta image \"%s\": its opened-files note: %s", info->name,
		          strerror(-r));
	split(lab, seeds, &n);
	split(rec, seeds, &n);
	snprintf(name, sizeof(name), "%llu", (unsigned long long)info->id);
	r = n ? lazyfs_prefetch(sn->lfs, name, seeds, n) : 0;
	if (r < 0)
		snap_warn(sn->lg, "delta image \"%s\": no prefetch: %s", info->name, strerror(-r));
	else if (n)
		snap_debug(sn->lg, "delta image \"%s\": prefetch of %zu seeds queued", info->name,
		           n);
	free(lab);
	free(rec);
}

void snap_delta_note_opened(struct snap *sn, struct store_txn *txn, const char *digest, uint64_t id)
{
	char idname[24];
	if (!sn->lfs)
		return;
	snprintf(idname, sizeof(idname), "%llu", (unsigned long long)id);
	char *list = lazyfs_opened(sn->lfs, idname);
	int r = list ? store_opened_put(txn, digest, list) : 0;
	if (r < 0)
		snap_warn(sn->lg, "delta image %s: cannot note its opened files: %s", idname,
		          strerror(-r));
	else if (list)
		snap_debug(sn->lg, "delta image %s: noted the files its run opened first", idname);
	free(list);
}
