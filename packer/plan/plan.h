/* Update planning: given deltas (edges between tree ids, each with a byte
 * cost) and the trees one has, the cheapest chain of deltas to a wanted
 * tree (shortest path by bytes, not by hops). Used by `cdimg plan`; meant
 * for registry pulls too. */
#ifndef DI3FS_PLAN_H
#define DI3FS_PLAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct plan_edge {
	uint8_t base[32], target[32]; /* tree ids */
	uint64_t cost;                /* bytes to transfer */
};

/* Dijkstra from every tree in have (cost 0) to want over edges. On success
 * *path (malloc'd, caller frees) holds the edge indexes in apply order,
 * *npath their number (0 when want is in have) and *total their cost.
 * Ties go to fewer hops, then to lower edge indexes, so the result is
 * deterministic. -ENOENT when want cannot be reached. */
int plan_shortest(const struct plan_edge *edges, size_t nedges, const uint8_t (*have)[32],
                  size_t nhave, const uint8_t want[32], size_t **path, size_t *npath,
                  uint64_t *total);

#ifdef __cplusplus
}
#endif
#endif
