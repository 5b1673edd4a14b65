/* A per-call allocation list: RPC responses are built from many small
 * pieces (protobuf-c structs, strings) and all freed together once packed. */
#ifndef DI3FS_SNAP_ARENA_H
#define DI3FS_SNAP_ARENA_H

#include <stddef.h>

struct arena {
	void **ptrs;
	size_t n;
	size_t cap;
};

/* Zeroed memory owned by the arena; NULL when out of memory. */
void *arena_calloc(struct arena *a, size_t n, size_t size);
/* A copy of s owned by the arena; NULL when out of memory. */
char *arena_strdup(struct arena *a, const char *s);
/* Frees everything; the arena stays usable. */
void arena_reset(struct arena *a);

#endif
