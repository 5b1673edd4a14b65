/* Cheapest chain of deltas between trees: Dijkstra over tree ids with the
 * deltas' sizes as edge weights (graphs are small: a linear scan for the
 * next node is enough). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

struct pnode {
	const uint8_t *id;
	uint64_t dist;
	size_t hops;
	size_t via; /* edge index that reached it, SIZE_MAX for a source */
	int done, reached;
};

struct pgraph {
	struct pnode *v;
	size_t n;
};

static size_t pnode_find(const struct pgraph *g, const uint8_t *id)
{
	for (size_t i = 0; i < g->n; i++)
		if (memcmp(g->v[i].id, id, 32) == 0)
			return i;
	return SIZE_MAX;
}

static size_t pnode_add(struct pgraph *g, const uint8_t *id)
{
	size_t i = pnode_find(g, id);
	if (i != SIZE_MAX)
		return i;
	g->v[g->n] = (struct pnode){.id = id, .via = SIZE_MAX};
	return g->n++;
}

/* The closest reached node not yet done (fewer hops on a tie). */
static size_t pnode_next(const struct pgraph *g)
{
	size_t best = SIZE_MAX;
	for (size_t i = 0; i < g->n; i++) {
		const struct pnode *p = &g->v[i];
		if (!p->reached || p->done)
			continue;
		if (best == SIZE_MAX || p->dist < g->v[best].dist ||
		    (p->dist == g->v[best].dist && p->hops < g->v[best].hops))
			best = i;
	}
	return best;
}

static void relax(struct pgraph *g, const struct plan_edge *edges, size_t nedges, size_t u)
{
	for (size_t k = 0; k < nedges; k++) {
		if (memcmp(edges[k].base, g->v[u].id, 32) != 0)
			continue;
		struct pnode *t = &g->v[pnode_find(g, edges[k].target)];
		uint64_t d = g->v[u].dist + edges[k].cost;
		if (d < g->v[u].dist)
			d = UINT64_MAX; /* saturate */
		if (t->done)
			continue;
		if (!t->reached || d < t->dist || (d == t->dist && g->v[u].hops + 1 < t->hops)) {
			t->reached = 1;
			t->dist = d;
			t->hops = g->v[u].hops + 1;
			t->via = k;
		}
	}
}

static int walk_back(const struct pgraph *g, const struct plan_edge *edges, size_t w, size_t **path,
                     size_t *npath)
{
	size_t n = g->v[w].hops, *p = malloc((n ? n : 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	for (size_t i = n; i > 0; i--) {
		p[i - 1] = g->v[w].via;
		w = pnode_find(g, edges[g->v[w].via].base);
	}
	*path = p;
	*npath = n;
	return 0;
}

int plan_shortest(const struct plan_edge *edges, size_t nedges, const uint8_t (*have)[32],
                  size_t nhave, const uint8_t want[32], size_t **path, size_t *npath,
                  uint64_t *total)
{
	struct pgraph g = {calloc(2 * nedges + nhave + 1, sizeof(*g.v)), 0};
	int r = -ENOENT;
	if (!g.v)
		return -ENOMEM;
	for (size_t k = 0; k < nedges; k++) {
		pnode_add(&g, edges[k].base);
		pnode_add(&g, edges[k].target);
	}
	size_t w = pnode_add(&g, want);
	for (size_t i = 0; i < nhave; i++) {
		struct pnode *s = &g.v[pnode_add(&g, have[i])];
		s->reached = 1;
	}
	for (size_t u; (u = pnode_next(&g)) != SIZE_MAX;) {
		g.v[u].done = 1;
		if (u == w)
			break;
		relax(&g, edges, nedges, u);
	}
	if (g.v[w].done) {
		r = walk_back(&g, edges, w, path, npath);
		*total = g.v[w].dist;
	}
	free(g.v);
	return r;
}
