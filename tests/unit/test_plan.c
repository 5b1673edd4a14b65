/* plan_shortest: fewest bytes wins over fewest hops, several starting
 * trees, unreachable targets, ties resolved deterministically. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "plan.h"

static void id(uint8_t out[32], int n)
{
	memset(out, 0, 32);
	out[0] = (uint8_t)n;
	out[31] = 0xaa;
}

static struct plan_edge edge(int from, int to, uint64_t cost)
{
	struct plan_edge e;
	id(e.base, from);
	id(e.target, to);
	e.cost = cost;
	return e;
}

static void expect(const struct plan_edge *e, size_t ne, const int *have, size_t nh, int want,
                   const size_t *path, size_t npath, uint64_t total)
{
	uint8_t h[8][32], w[32];
	size_t *p = NULL, n = 0;
	uint64_t t = 0;
	for (size_t i = 0; i < nh; i++)
		id(h[i], have[i]);
	id(w, want);
	CHECK_RC(plan_shortest(e, ne, (const uint8_t(*)[32])h, nh, w, &p, &n, &t));
	CHECK(n == npath && t == total);
	for (size_t i = 0; i < n; i++)
		CHECK(p[i] == path[i]);
	free(p);
}

int main(void)
{
	/* 1 -> 4 directly costs 100; 1 -> 2 -> 3 -> 4 costs 30 in three hops. */
	struct plan_edge e[] = {edge(1, 4, 100), edge(1, 2, 10), edge(2, 3, 10), edge(3, 4, 10),
	                        edge(2, 4, 25),  edge(5, 4, 1),  edge(4, 1, 1)};
	int h1[] = {1}, h2[] = {1, 3}, h5[] = {6};
	expect(e, 7, h1, 1, 4, (size_t[]){1, 2, 3}, 3, 30);
	/* With tree 3 too, one hop of 10. */
	expect(e, 7, h2, 2, 4, (size_t[]){3}, 1, 10);
	/* Already there: no step. */
	expect(e, 7, h1, 1, 1, NULL, 0, 0);
	/* A cycle back (4 -> 1) does not confuse it. */
	expect(e, 7, (int[]){4}, 1, 2, (size_t[]){6, 1}, 2, 11);
	/* Equal cost: fewer hops win. */
	struct plan_edge t[] = {edge(1, 2, 5), edge(2, 3, 5), edge(1, 3, 10)};
	expect(t, 3, h1, 1, 3, (size_t[]){2}, 1, 10);
	/* Unreachable: nothing leads from 6, and nothing produces 9. */
	uint8_t hv[1][32], w[32];
	size_t *p = NULL, n = 0;
	uint64_t tot = 0;
	id(hv[0], h5[0]);
	id(w, 4);
	CHECK(plan_shortest(e, 7, (const uint8_t(*)[32])hv, 1, w, &p, &n, &tot) == -ENOENT);
	id(hv[0], 1);
	id(w, 9);
	CHECK(plan_shortest(e, 7, (const uint8_t(*)[32])hv, 1, w, &p, &n, &tot) == -ENOENT);
	CHECK(plan_shortest(NULL, 0, (const uint8_t(*)[32])hv, 1, w, &p, &n, &tot) == -ENOENT);
	printf("plan: ok\n");
	return 0;
}
