/* The one error-context shape (dimg/types.h): what failed and why. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dimg/types.h"

int dimg_err_set(struct dimg_err *e, int r, const char *what, const char *fmt, ...)
{
	va_list ap;

	if (!e || e->what[0] || e->why[0])
		return r;
	if (what)
		snprintf(e->what, sizeof e->what, "%s", what);
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(e->why, sizeof e->why, fmt, ap);
		va_end(ap);
	}
	return r;
}

void dimg_err_clear(struct dimg_err *e)
{
	if (e) {
		e->what[0] = '\0';
		e->why[0] = '\0';
	}
}

int dimg_err_what(struct dimg_err *e, int r, const char *what)
{
	if (e && !e->what[0] && what)
		snprintf(e->what, sizeof e->what, "%s", what);
	return r;
}

const char *dimg_strerror(int r)
{
	switch (r) {
	case -EBADMSG:
		return "corrupt or inconsistent data";
	case -ENOTSUP:
		return "unsupported format version";
	case -EOVERFLOW:
		return "a length or offset is out of range (truncated or corrupt)";
	case -EXDEV:
		return "wrong base: the delta was made against a different tree";
	case -ESTALE:
		return "the file changed while it was being read";
	case -ELOOP:
		return "path goes through a symlink";
	default:
		return strerror(r < 0 ? -r : r);
	}
}
