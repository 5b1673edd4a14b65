/* Types every layer of libdimg and its users share: a growable buffer,
 * output sinks, progress callbacks and the one shape of error context. */
#ifndef DIMG_TYPES_H
#define DIMG_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A growable byte buffer. */
struct dimg_buf {
	uint8_t *data;
	size_t len, cap;
};
int dimg_buf_reserve(struct dimg_buf *b, size_t extra);
int dimg_buf_append(struct dimg_buf *b, const void *p, size_t n);
void dimg_buf_free(struct dimg_buf *b);

/* Sink for streamed output: write all n bytes or return -errno. */
typedef int (*dimg_write_fn)(void *ctx, const void *p, size_t n);

/* A sink writing to a file descriptor (ctx is an int* holding the fd). */
int dimg_write_fd(void *ctx, const void *p, size_t n);
/* A sink appending to a growable buffer (ctx is a struct dimg_buf*). */
int dimg_write_buf(void *ctx, const void *p, size_t n);

/* Progress callback for long operations: done/total in bytes (total may be 0
 * when unknown). Called from the calling thread only. */
typedef void (*dimg_progress_fn)(void *ctx, const char *what, uint64_t done, uint64_t total);

/* Error context, the one shape across the project: functions return
 * -errno and, when the caller passes a struct dimg_err (NULL is allowed),
 * name what failed — a path, a blob digest, an entry, an option — and,
 * where strerror(-r) says too little, why. The first error set wins: a
 * caller's context is not overwritten by cleanup that fails later. Control
 * bytes (below 0x20, 0x7f) in what and why are stored as \xHH: names come
 * from untrusted tars, deltas and registries and are printed to terminals. */
#define DIMG_ERR_WHAT_MAX 4096
#define DIMG_ERR_WHY_MAX  1024
struct dimg_err {
	char what[DIMG_ERR_WHAT_MAX]; /* "" when nothing in particular */
	char why[DIMG_ERR_WHY_MAX];   /* "" when strerror says it all */
};
/* Sets what (may be NULL) and a printf-style why (fmt may be NULL) unless
 * e is NULL or already set; returns r, so that `return dimg_err_set(...)`
 * reads naturally. */
int dimg_err_set(struct dimg_err *e, int r, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Names what failed when e says why but not yet what (an inner function
 * knew the problem, its caller knows the path); returns r. */
int dimg_err_what(struct dimg_err *e, int r, const char *what);
/* Clears e (NULL allowed). */
void dimg_err_clear(struct dimg_err *e);
/* s into out (len bytes, cut like snprintf) with every control byte (below
 * 0x20, 0x7f) written as \xHH; returns out. For printing names that come
 * from outside. */
const char *dimg_escape_controls(char *out, size_t len, const char *s);
/* What a -errno means, in words: the project's own codes explained
 * (-EBADMSG corrupt, -EXDEV wrong base, ...), strerror for the others. */
const char *dimg_strerror(int r);

#ifdef __cplusplus
}
#endif
#endif
