/* List filters in containerd's filter syntax: a snapshot is listed when any
 * one filter matches; a filter is selectors joined by ',' that must all
 * match. A selector is a field path alone (the field is present) or with
 * == (equal), != (differs) or ~= (POSIX extended regex search) and a value;
 * fields and values may be double-quoted, with backslash escapes.
 *
 *   name==default/1/a   parent~="^ns/"   kind==committed
 *   labels."containerd.io/snapshot/x"!=y,labels.gc
 *
 * Fields: name, parent, kind (View/Active/Committed, any case), labels.<key>;
 * an unknown field is never present. */
#ifndef DI3FS_SNAP_FILTER_H
#define DI3FS_SNAP_FILTER_H

#include "snap_types.h"

#include <stddef.h>

struct snap_filter;

/* Parses n filter strings; *out is NULL (match all) when n is 0 or a filter
 * is empty. -EINVAL with *why set on a syntax error or a bad regex. */
int snap_filter_parse(struct snap_filter **out, const char *const *exprs, size_t n,
                      const char **why);
/* 1 if info matches (always, for a NULL filter), else 0. */
int snap_filter_match(const struct snap_filter *f, const struct snap_info *info);
void snap_filter_free(struct snap_filter *f);

#endif
