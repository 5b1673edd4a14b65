/* cdimg: one command-line tool for di3fs deltas, a table of subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct cli_cmd commands[] = {
    {"diff", "compare two images or trees and write a .cdimg or .dimg delta", cmd_diff},
    {"apply", "rebuild the target image or tree from its base and a delta", cmd_apply},
    {"show", "summarise a delta (--json: the full index)", cmd_show},
#ifdef DI3FS_HAVE_CTRD
    {"load", "put a .cdimg's image into containerd over its base image", cmd_load},
    {"pull", "a registry's image into containerd with the fewest bytes: deltas or layers",
     cmd_pull},
#endif
    {"copy", "copy images between registries, containerd, layouts, archives and hosts (ssh)",
     cmd_copy},
    {"push", "put a .cdimg delta into its target image's repository as an OCI artifact", cmd_push},
    {"merge", "compose a chain of deltas v1->v2->...->vN into one delta v1->vN", cmd_merge},
    {"plan", "the chain of deltas with the fewest bytes from images you have to one you want",
     cmd_plan},
    {"agent", "the remote end of an ssh:// copy (run by ssh: cdimg agent --stdio)", cmd_agent},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: cdimg COMMAND [OPTIONS] ...\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'cdimg COMMAND --help' describes a command.\n"
	           "exit codes: 0 ok, 1 failed, 2 usage, 3 corrupt or unusable input\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return CLI_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("cdimg 0.1.0\n");
		return CLI_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "cdimg: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return CLI_USAGE;
}
