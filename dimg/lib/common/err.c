/* The one error-context shape (dimg/types.h): what failed and why. */
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
