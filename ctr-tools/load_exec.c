/* `cdimg load`: runs cdimg-load, the program next to cdimg that holds the
 * command (load_main.c), with the same arguments. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cmd_load(int argc, char **argv)
{
	char self[PATH_MAX], path[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	(void)argc;
	if (n < 0) {
		fprintf(stderr, "cdimg: load: cannot find this program's directory: %s\n",
		        strerror(errno));
		return CLI_FAILED;
	}
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	if (snprintf(path, sizeof(path), "%s/cdimg-load", slash ? self : ".") >=
	    (int)sizeof(path)) {
		fprintf(stderr, "cdimg: load: path too long\n");
		return CLI_FAILED;
	}
	argv[0] = path;
	execv(path, argv);
	fprintf(stderr, "cdimg: load: cannot run %s (installed next to cdimg): %s\n", path,
	        strerror(errno));
	return CLI_FAILED;
}
