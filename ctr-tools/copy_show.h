/* What `cdimg copy` shows while it works: docker-pull-like lines on a
 * terminal, one JSON object per event with --json, else nothing. */
#ifndef DI3FS_COPY_SHOW_H
#define DI3FS_COPY_SHOW_H

#include <stdint.h>

#include "di3fs/xcopy.h"

enum copy_show_mode {
	COPY_SHOW_NONE,
	COPY_SHOW_TERM, /* stderr is a terminal */
	COPY_SHOW_JSON, /* stdout */
};

struct copy_show {
	enum copy_show_mode mode;
	size_t count;  /* blob lines drawn */
	int64_t *last; /* per line: when it was last drawn (ms) */
};

void copy_show_init(struct copy_show *s, enum copy_show_mode mode);
void copy_show_free(struct copy_show *s);
/* An xcopy_event_fn. */
void copy_show_event(void *ctx, const struct xcopy_event *ev);
/* The totals, once the copy is committed. */
void copy_show_summary(const struct copy_show *s, const struct xcopy_result *res, const char *dst,
                       double secs);
/* A failure: in JSON an error event (with the missing blobs). */
void copy_show_error(const struct copy_show *s, const struct xcopy_result *res, int rc,
                     const struct dimg_err *err);

#endif
