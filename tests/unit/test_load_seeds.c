/* cdimg load's di3fs.prefetch label (ctr-tools/load_seeds.c): the
 * programs an image config starts, as absolute paths, one a line. */
#include "check.h"
#include "load.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void expect(const char *config, const char *want)
{
	char *got = load_prefetch_seeds((const uint8_t *)config, strlen(config));
	if (!(want ? got && strcmp(got, want) == 0 : !got))
		fprintf(stderr, "config %s\n got [%s]\nwant [%s]\n", config, got ? got : "(null)",
		        want ? want : "(null)");
	CHECK(want ? got && strcmp(got, want) == 0 : !got);
	free(got);
}

int main(void)
{
	expect("{\"config\":{\"Entrypoint\":[\"/usr/sbin/nginx\"],\"Cmd\":[\"-g\",\"x\"]}}",
	       "/usr/sbin/nginx\n");
	/* a bare name in each PATH dir; a relative one in WorkingDir */
	expect("{\"config\":{\"Env\":[\"A=1\",\"PATH=/bin:/usr/bin\"],\"Cmd\":[\"app\"]}}",
	       "/bin/app\n/usr/bin/app\n");
	expect("{\"config\":{\"WorkingDir\":\"/srv\",\"Entrypoint\":[\"./run.sh\"],"
	       "\"Cmd\":[\"/usr/bin/python3\",\"x.py\"]}}",
	       "/srv/./run.sh\n/usr/bin/python3\n");
	/* sh -c LINE: the shell and the line's first word */
	expect(
	    "{\"config\":{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"/bin/sh\",\"-c\",\" nginx -g x\"]}}",
	    "/bin/sh\n/bin/nginx\n");
	/* nothing to run, not a config, wrong types, a newline in a name */
	expect("{\"config\":{}}", NULL);
	expect("{}", NULL);
	expect("not json", NULL);
	expect("{\"config\":{\"Cmd\":\"/bin/sh\",\"Entrypoint\":[7]}}", NULL);
	expect("{\"config\":{\"Cmd\":[\"/bin/a\\nb\"]}}", NULL);
	/* a PATH of many dirs stops at the label's bound */
	char big[20000];
	int n = snprintf(big, sizeof(big), "{\"config\":{\"Env\":[\"PATH=/d");
	for (int i = 1; i < 900; i++)
		n += snprintf(big + n, sizeof(big) - (size_t)n, ":/d");
	snprintf(big + n, sizeof(big) - (size_t)n, "\"],\"Cmd\":[\"prog\"]}}");
	char *got = load_prefetch_seeds((const uint8_t *)big, strlen(big));
	CHECK(got && strlen(got) < LOAD_SEEDS_MAX && strncmp(got, "/d/prog\n", 8) == 0);
	free(got);
	printf("load_seeds: ok\n");
	return 0;
}
