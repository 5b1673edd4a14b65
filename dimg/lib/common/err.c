/* The one error-context shape (dimg/types.h): what failed and why. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dimg/types.h"

const char *dimg_escape_controls(char *out, size_t len, const char *s)
{
	size_t o = 0;
	if (!len)
		return out;
	for (const unsigned char *p = (const unsigned char *)s; *p && o + 1 < len; p++) {
		if (*p >= 0x20 && *p != 0x7f) {
			out[o++] = (char)*p;
			continue;
		}
		if (o + 5 >= len)
			break;
		o += (size_t)snprintf(out + o, 5, "\\x%02x", *p);
	}
	out[o] = '\0';
	return out;
}

/* In place, through a copy (what and why are at most DIMG_ERR_WHAT_MAX). */
static void escape_controls(char *s, size_t len)
{
	char tmp[DIMG_ERR_WHAT_MAX];
	dimg_escape_controls(tmp, sizeof(tmp) < len ? sizeof(tmp) : len, s);
	memcpy(s, tmp, strlen(tmp) + 1);
}

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
	escape_controls(e->what, sizeof e->what);
	escape_controls(e->why, sizeof e->why);
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
	if (e && !e->what[0] && what) {
		snprintf(e->what, sizeof e->what, "%s", what);
		escape_controls(e->what, sizeof e->what);
	}
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
