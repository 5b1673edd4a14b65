/* The error context (dimg/types.h): the first error wins, and control bytes
 * from untrusted names are stored escaped, never raw. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "dimg/types.h"

static void first_wins(void)
{
	struct dimg_err e = {0};
	CHECK(dimg_err_set(&e, -EIO, "a.cdimg", "bad %s", "trailer") == -EIO);
	CHECK(dimg_err_set(&e, -ENOENT, "b", "later") == -ENOENT);
	CHECK(strcmp(e.what, "a.cdimg") == 0 && strcmp(e.why, "bad trailer") == 0);
	dimg_err_clear(&e);
	CHECK(dimg_err_set(&e, -EINVAL, NULL, "why only") == -EINVAL);
	CHECK(dimg_err_what(&e, -EINVAL, "named later") == -EINVAL);
	CHECK(strcmp(e.what, "named later") == 0);
	CHECK(dimg_err_set(NULL, -EIO, "x", NULL) == -EIO);
}

static void controls_escaped(void)
{
	struct dimg_err e = {0};
	dimg_err_set(&e, -EBADMSG, "entry 'a\033]0;owned\007b'", "name '%s\n'", "x\177y\r");
	CHECK(strcmp(e.what, "entry 'a\\x1b]0;owned\\x07b'") == 0);
	CHECK(strcmp(e.why, "name 'x\\x7fy\\x0d\\x0a'") == 0);
	/* non-ASCII UTF-8 stays as it is */
	dimg_err_clear(&e);
	dimg_err_what(&e, -EIO, "caf\xc3\xa9\t");
	CHECK(strcmp(e.what, "caf\xc3\xa9\\x09") == 0);
	/* a name of nothing but control bytes stays within the buffer */
	char big[DIMG_ERR_WHAT_MAX];
	memset(big, '\001', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	dimg_err_clear(&e);
	dimg_err_set(&e, -EIO, big, NULL);
	CHECK(strlen(e.what) < sizeof(e.what) && strncmp(e.what, "\\x01\\x01", 8) == 0);
	for (const char *p = e.what; *p; p++)
		CHECK(*p >= 0x20);
}

static void escape_cut(void)
{
	char out[8];
	CHECK(strcmp(dimg_escape_controls(out, sizeof(out), "ab\033cdef"), "ab\\x1bc") == 0);
	CHECK(strcmp(dimg_escape_controls(out, sizeof(out), "abcd\033"), "abcd") == 0);
	CHECK(strcmp(dimg_escape_controls(out, 1, "abc"), "") == 0);
}

int main(void)
{
	escape_cut();
	first_wins();
	controls_escaped();
	return 0;
}
