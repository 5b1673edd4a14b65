/* Per-call allocation list for building RPC responses; see arena.h. */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int arena_track(struct arena *a, void *p)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 32;
		void **ptrs = realloc(a->ptrs, cap * sizeof(*ptrs));
		if (!ptrs)
			return -1;
		a->ptrs = ptrs;
		a->cap = cap;
	}
	a->ptrs[a->n++] = p;
	return 0;
}

void *arena_calloc(struct arena *a, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		return NULL;
	if (arena_track(a, p) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
	size_t len = strlen(s);
	char *p = arena_calloc(a, len + 1, 1);
	if (p)
		memcpy(p, s, len);
	return p;
}

void arena_reset(struct arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->ptrs[i]);
	free(a->ptrs);
	a->ptrs = NULL;
	a->n = 0;
	a->cap = 0;
}
