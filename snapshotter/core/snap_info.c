/* Snapshot info and label sets: ownership, copies, sorted label updates. */
#include "snap_types.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void snap_labels_clear(struct snap_labels *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void snap_info_clear(struct snap_info *info)
{
	if (!info)
		return;
	free(info->name);
	free(info->parent);
	snap_labels_clear(&info->labels);
	memset(info, 0, sizeof(*info));
}

/* Index of key, or of where it would be inserted (*found says which). */
static size_t labels_find(const struct snap_labels *l, const char *key, int *found)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->v[mid].key, key);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

int snap_labels_set(struct snap_labels *l, const char *key, const char *value)
{
	int found;
	size_t i = labels_find(l, key, &found);
	char *v = strdup(value);

	if (!v)
		return -ENOMEM;
	if (found) {
		free(l->v[i].value);
		l->v[i].value = v;
		return 0;
	}
	char *k = strdup(key);
	struct snap_label *nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (!k || !nv) {
		free(k);
		free(v);
		if (nv)
			l->v = nv;
		return -ENOMEM;
	}
	l->v = nv;
	memmove(&l->v[i + 1], &l->v[i], (l->n - i) * sizeof(*nv));
	l->v[i].key = k;
	l->v[i].value = v;
	l->n++;
	return 0;
}

void snap_labels_del(struct snap_labels *l, const char *key)
{
	int found;
	size_t i = labels_find(l, key, &found);

	if (!found)
		return;
	free(l->v[i].key);
	free(l->v[i].value);
	memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(l->v[0]));
	l->n--;
}

const char *snap_labels_get(const struct snap_labels *l, const char *key)
{
	int found;
	size_t i = labels_find(l, key, &found);

	return found ? l->v[i].value : NULL;
}

int snap_labels_copy(struct snap_labels *out, const struct snap_labels *in)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < in->n; i++) {
		int r = snap_labels_set(out, in->v[i].key, in->v[i].value);
		if (r < 0) {
			snap_labels_clear(out);
			return r;
		}
	}
	return 0;
}

int snap_labels_validate(const struct snap_labels *l)
{
	for (size_t i = 0; i < l->n; i++) {
		size_t klen = strlen(l->v[i].key);
		if (klen == 0 || klen + strlen(l->v[i].value) > SNAP_LABEL_MAX)
			return -EINVAL;
	}
	return 0;
}

int snap_info_copy(struct snap_info *out, const struct snap_info *in)
{
	*out = *in;
	out->name = strdup(in->name ? in->name : "");
	out->parent = strdup(in->parent ? in->parent : "");
	int r = snap_labels_copy(&out->labels, &in->labels);
	if (!out->name || !out->parent || r < 0) {
		free(out->name);
		free(out->parent);
		if (r == 0)
			snap_labels_clear(&out->labels);
		memset(out, 0, sizeof(*out));
		return -ENOMEM;
	}
	return 0;
}

const char *snap_kind_name(enum snap_kind kind)
{
	switch (kind) {
	case SNAP_KIND_VIEW:
		return "View";
	case SNAP_KIND_ACTIVE:
		return "Active";
	case SNAP_KIND_COMMITTED:
		return "Committed";
	default:
		return "Unknown";
	}
}
