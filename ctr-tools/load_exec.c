/* `cdimg load` and `cdimg pull`: run cdimg-load, the program next to cdimg
 * that holds both commands (load_main.c), with the same arguments; pull's
 * with "pull" as argv[0]. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int exec_ctr(const char *cmd, char **argv)
{
	char self[PATH_MAX], path[PATH_MAX + 16], pull[] = "pull";
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0) {
		fprintf(stderr, "cdimg: %s: cannot find this program's directory: %s\n", cmd,
		        strerror(errno));
		return CLI_FAILED;
	}
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	if (snprintf(path, sizeof(path), "%s/cdimg-load", slash ? self : ".") >=
	    (int)sizeof(path)) {
		fprintf(stderr, "cdimg: %s: path too long\n", cmd);
		return CLI_FAILED;
	}
	argv[0] = strcmp(cmd, "pull") == 0 ? pull : path;
	execv(path, argv);
	fprintf(stderr, "cdimg: %s: cannot run %s (installed next to cdimg): %s\n", cmd, path,
	        strerror(errno));
	return CLI_FAILED;
}

int cmd_load(int argc, char **argv)
{
	(void)argc;
	return exec_ctr("load", argv);
}

int cmd_pull(int argc, char **argv)
{
	(void)argc;
	return exec_ctr("pull", argv);
}
