/* What a delta changes, counted one way for every command that reports it
 * (dimg/dimg.h "struct dimg_counts"): from both trees, from the index
 * alone, or from index ops being written. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dimg/dimg.h"
#include "format-internal.h"

/* A regular file of the base at a path the target lacks: a rename's
 * possible source, matched by content. */
struct gone {
	const uint8_t *sha256;
	int used;
};

static int gone_cmp(const void *a, const void *b)
{
	return memcmp(((const struct gone *)a)->sha256, ((const struct gone *)b)->sha256, 32);
}

/* Marks an unused gone file with this content used; 1 if there was one. */
static int gone_take(struct gone *g, size_t n, const uint8_t sha256[32])
{
	size_t lo = 0, hi = n;
	while (lo < hi) { /* the first with sha256 >= the key */
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(g[mid].sha256, sha256, 32) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < n && !memcmp(g[lo].sha256, sha256, 32); lo++)
		if (!g[lo].used)
			return g[lo].used = 1;
	return 0;
}

static int movable(const struct dimg_entry *e)
{
	return e->type == DIMG_TYPE_REG && e->size > 0;
}

/* A stored entry's payload, in the tallies. */
static void count_stored(struct dimg_counts *c, const struct dimg_entry *e)
{
	c->stored++;
	if (e->type != DIMG_TYPE_REG || e->payload > DIMG_PAYLOAD_PATCH)
		return;
	c->files[e->payload]++;
	c->bytes[e->payload] += e->blob_len;
	if (e->payload == DIMG_PAYLOAD_PATCH && e->codec <= DIMG_CODEC_CHAIN)
		c->patches[e->codec]++;
	if (e->flags & DIMG_ENTRY_ZDICT)
		c->dict_files++;
}

/* Walks both sorted trees: kept, changed, the base's gone files (g) and
 * the target's new ones (counted as added for now). */
static void count_paths(struct dimg_counts *c, const struct dimg_tree *base,
                        const struct dimg_tree *target, struct gone *g, size_t *ng)
{
	size_t i = 0, j = 0;
	while (i < base->n || j < target->n) {
		int k = i >= base->n     ? 1
		        : j >= target->n ? -1
		                         : strcmp(base->v[i].path, target->v[j].path);
		if (k < 0 && movable(&base->v[i]))
			g[(*ng)++] = (struct gone){base->v[i].sha256, 0};
		else if (k < 0)
			c->removed++;
		if (k < 0) {
			i++;
			continue;
		}
		if (k == 0 && dimg_entry_kept(&base->v[i], &target->v[j])) {
			c->kept++;
		} else {
			count_stored(c, &target->v[j]);
			*(k == 0 ? &c->changed : &c->added) += 1;
		}
		i += k == 0;
		j++;
	}
}

int dimg_counts_trees(struct dimg_counts *c, const struct dimg_tree *base,
                      const struct dimg_tree *target)
{
	struct gone *g = malloc((base->n ? base->n : 1) * sizeof(*g));
	size_t ng = 0;
	memset(c, 0, sizeof(*c));
	if (!g)
		return -ENOMEM;
	count_paths(c, base, target, g, &ng);
	qsort(g, ng, sizeof(*g), gone_cmp);
	for (size_t j = 0; j < target->n; j++) {
		const struct dimg_entry *e = &target->v[j];
		if (movable(e) && !dimg_tree_find(base, e->path) && gone_take(g, ng, e->sha256)) {
			c->added--;
			c->renamed++;
		}
	}
	for (size_t k = 0; k < ng; k++)
		c->removed += !g[k].used;
	free(g);
	c->entries = target->n;
	c->dropped = c->changed + c->removed + c->renamed;
	return 0;
}

/* Without the base only two cases leave no doubt: nothing stored (the
 * dropped entries are all removed) or nothing dropped (the stored ones
 * are all added). */
static void settle(struct dimg_counts *c)
{
	c->changed = c->added = c->renamed = c->removed = DIMG_COUNT_UNKNOWN;
	if (c->stored == 0 || c->dropped == 0) {
		c->changed = c->renamed = 0;
		c->added = c->stored;
		c->removed = c->dropped;
	}
}

void dimg_counts_ops(struct dimg_counts *c, const struct dimg_index_op *ops, size_t nops,
                     const struct dimg_tree *explicit_, uint64_t entries)
{
	memset(c, 0, sizeof(*c));
	for (size_t k = 0; k < nops; k++) {
		if (ops[k].kind == DIMG_INDEX_KEEP)
			c->kept += ops[k].count;
		else if (ops[k].kind == DIMG_INDEX_SKIP)
			c->dropped += ops[k].count;
		else if (ops[k].count < explicit_->n)
			count_stored(c, &explicit_->v[ops[k].count]);
	}
	c->entries = entries;
	settle(c);
}

void dimg_counts_index(struct dimg_counts *c, const struct dimg_reader *r)
{
	struct dimg_index_stats st;
	size_t nops;
	const struct dimg_index_op *ops = dimg_reader_ops(r, &nops);
	dimg_reader_stats(r, &st);
	dimg_counts_ops(c, ops, nops, dimg_reader_explicit(r), st.entries);
}
