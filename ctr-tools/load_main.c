/* cdimg-load: `cdimg load` in a program of its own. It is the one command
 * that talks to containerd (gRPC); keeping gRPC, abseil and their
 * dependencies out of cdimg saves every other command ~30 ms of loading
 * ~60 shared libraries at start. `cdimg load ...` runs this program, which
 * sits next to cdimg. */
#include <string.h>

#include "cli.h"

int main(int argc, char **argv)
{
	char name[] = "load";
	argv[0] = name; /* as cdimg passes it to a command */
	return cmd_load(argc, argv);
}
