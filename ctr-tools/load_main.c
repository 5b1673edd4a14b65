/* cdimg-load: `cdimg load` and `cdimg pull` in a program of their own.
 * They are the commands that talk to containerd (gRPC); keeping gRPC,
 * abseil and their dependencies out of cdimg saves every other command
 * ~30 ms of loading ~60 shared libraries at start. `cdimg load ...` runs
 * this program, which sits next to cdimg; `cdimg pull ...` runs it with
 * "pull" as its argv[0]. */
#include <string.h>

#include "cli.h"

int main(int argc, char **argv)
{
	char load[] = "load";
	if (argv[0] && strcmp(argv[0], "pull") == 0)
		return cmd_pull(argc, argv);
	argv[0] = load; /* as cdimg passes it to a command */
	return cmd_load(argc, argv);
}
