/* Minimal assertion helpers for the unit tests: a failed check prints where
 * and why, and the program exits non-zero. */
#ifndef DI3FS_TEST_CHECK_H
#define DI3FS_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_RC(expr)                                                                             \
	do {                                                                                       \
		long _rc = (long)(expr);                                                           \
		if (_rc < 0) {                                                                     \
			fprintf(stderr, "%s:%d: %s returned %ld (%s)\n", __FILE__, __LINE__,       \
			        #expr, _rc, strerror((int)-_rc));                                  \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

/* Deterministic PRNG (xorshift64*) so failures reproduce. */
static inline unsigned long long test_rand(unsigned long long *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

#endif
