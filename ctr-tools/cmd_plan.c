/* cdimg plan --have IMAGE... --want IMAGE --from DIR: the chain of deltas in
 * DIR with the fewest bytes to transfer from an image one has to the one
 * wanted (packer/plan.h); --merge writes it as one delta. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cdimg.h"
#include "cli.h"
#include "dimg/image.h"
#include "dimg/oci.h"
#include "merge.h"
#include "plan.h"

static const char plan_help[] =
    "usage: cdimg plan --have IMAGE [--have IMAGE...] --want IMAGE --from DIR\n"
    "                  [--json] [--merge -o OUT.cdimg|OUT.dimg]\n"
    "\n"
    "Prints the chain of deltas in DIR (its .cdimg and .dimg files) that updates an\n"
    "image you have to the image you want with the fewest bytes to transfer: the\n"
    "shortest path by total size, not by number of deltas. Each delta is an edge\n"
    "from its base tree to its target tree.\n"
    "\n"
    "IMAGE is an image (OCI layout directory or tar, `docker save` tar, or a\n"
    "name as `cdimg copy` takes them: oci:, containerd:NAME, ...) or a\n"
    "directory tree, identified by its tree id; or a literal id: a tree id or an\n"
    "image config digest (`sha256:<hex>` or the 64 hex digits) as the .cdimg\n"
    "files in DIR name them.\n"
    "\n"
    "options:\n"
    "      --have IMAGE     an image you have (repeatable)\n"
    "      --want IMAGE     the image you want\n"
    "      --from DIR       the directory of deltas\n"
    "      --json           print the plan as JSON on stdout\n"
    "      --merge          write the chain as one delta (cdimg merge) to -o\n"
    "  -o, --output FILE    the merged delta, with --merge\n"
    "      --force          replace FILE if it exists (never a delta of the chain)\n"
    "  -h, --help           this text\n"
    "\n"
    "Files in DIR that are not deltas are ignored; damaged deltas are skipped\n"
    "with a warning. No chain: exit 1, naming what is missing.\n";

struct plan_args {
	struct cli_args c;
	const char **have;
	size_t nhave;
	const char *want, *from;
	int merge;
};

/* A delta found in DIR. */
struct pdelta {
	char *path;
	char base_config[72], target_config[72]; /* "" for a .dimg */
};

struct pset {
	struct plan_edge *e;
	struct pdelta *d;
	size_t n, cap;
};

static void pset_free(struct pset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->d[i].path);
	free(s->e);
	free(s->d);
}

static int pset_grow(struct pset *s)
{
	if (s->n < s->cap)
		return 0;
	size_t ncap = s->cap ? s->cap * 2 : 16;
	struct plan_edge *e = realloc(s->e, ncap * sizeof(*e));
	if (e)
		s->e = e;
	struct pdelta *d = e ? realloc(s->d, ncap * sizeof(*d)) : NULL;
	if (!d)
		return -ENOMEM;
	s->d = d;
	s->cap = ncap;
	return 0;
}

/* Reads one delta's ids; 1 when path is not a delta at all. */
static int read_delta(const char *path, struct plan_edge *e, struct pdelta *d, struct dimg_err *err)
{
	struct cdimg *c = NULL;
	struct dimg_reader *rd = NULL;
	struct stat st;
	int r = cdimg_sniff(path);
	if (r == CDIMG_KIND_UNKNOWN)
		return 1;
	if (r > 0 && stat(path, &st) < 0)
		r = -errno;
	if (r > 0)
		r = cdimg_open_delta(path, &c, &rd, err);
	if (r < 0)
		return r;
	e->cost = (uint64_t)st.st_size;
	memcpy(e->base, dimg_reader_base_id(rd), 32);
	memcpy(e->target, dimg_reader_target_id(rd), 32);
	d->base_config[0] = d->target_config[0] = '\0';
	if (c) {
		const struct cdimg_info *in = cdimg_get_info(c);
		snprintf(d->base_config, sizeof(d->base_config), "%s", in->base_config_digest);
		snprintf(d->target_config, sizeof(d->target_config), "%s",
		         in->target_config_digest);
	}
	dimg_reader_free(rd);
	cdimg_free(c);
	return 0;
}

static int path_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir, sorted (so ties resolve the same way everywhere). */
static int list_dir(const char *dir, char ***out, size_t *n)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	if (!dp)
		return -errno;
	while ((de = readdir(dp))) {
		if (de->d_name[0] == '.')
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 32;
			char **v = realloc(*out, cap * sizeof(*v));
			if (!v)
				break;
			*out = v;
		}
		size_t len = strlen(dir) + strlen(de->d_name) + 2;
		if (!((*out)[*n] = malloc(len)))
			break;
		snprintf((*out)[*n], len, "%s/%s", dir, de->d_name);
		(*n)++;
	}
	closedir(dp);
	qsort(*out, *n, sizeof(**out), path_cmp);
	return 0;
}

static int scan_one(struct pset *s, char *path)
{
	struct stat st;
	struct dimg_err err = {0};
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || pset_grow(s) < 0) {
		free(path);
		return 0;
	}
	int r = read_delta(path, &s->e[s->n], &s->d[s->n], &err);
	if (r < 0)
		fprintf(stderr, "cdimg plan: warning: skipping %s: not a usable delta: %s\n", path,
		        err.why[0] ? err.why : dimg_strerror(r));
	if (r != 0) {
		free(path);
		return 0;
	}
	s->d[s->n++].path = path;
	return 0;
}

static int scan(const char *dir, struct pset *s)
{
	char **names = NULL;
	size_t n = 0;
	int r = list_dir(dir, &names, &n);
	if (r < 0) {
		free(names);
		return cli_fail(r, dir, NULL);
	}
	for (size_t i = 0; i < n; i++)
		scan_one(s, names[i]); /* takes names[i] */
	free(names);
	return 0;
}

/* A literal id: a tree id, or a config digest the deltas name (made its
 * tree id). -1 when lit is not 64 hex digits (with or without sha256:). */
static int literal_id(const struct pset *s, const char *lit, uint8_t id[32])
{
	const char *hex = strncmp(lit, "sha256:", 7) ? lit : lit + 7;
	char want[72];
	if (oci_hex_decode(id, 32, hex, strlen(hex)) < 0)
		return -1;
	snprintf(want, sizeof(want), "sha256:%s", hex);
	for (size_t i = 0; i < s->n; i++) {
		if (!strcmp(s->d[i].base_config, want)) {
			memcpy(id, s->e[i].base, 32);
			break;
		}
		if (!strcmp(s->d[i].target_config, want)) {
			memcpy(id, s->e[i].target, 32);
			break;
		}
	}
	return 0;
}

/* The tree ids IMAGE stands for (a literal, an image or a directory): one,
 * or for a plain directory two, its own and the one with an image's
 * implied root (dimg_image_implied_root_id). *n gets their number. */
static int identify(const struct pset *s, const char *what, uint8_t ids[2][32], size_t *n)
{
	struct stat st;
	struct dimg_image *img = NULL;
	*n = 1;
	if (stat(what, &st) < 0 && literal_id(s, what, ids[0]) == 0)
		return 0;
	int code = cli_open_image(&img, what, NULL, 0); /* progress on a terminal only */
	if (code)
		return code;
	memcpy(ids[0], img->tree_id, 32);
	if (!img->nlayers && dimg_image_implied_root_id(img, ids[1]) == 0)
		*n = 2;
	dimg_image_free(img);
	return 0;
}

/* The wanted tree: the id some delta produces, when IMAGE stands for two. */
static int identify_want(const struct pset *s, const char *what, uint8_t want[32])
{
	uint8_t ids[2][32];
	size_t n;
	int code = identify(s, what, ids, &n);
	memcpy(want, ids[0], 32);
	for (size_t i = 0; !code && n == 2 && i < s->n; i++)
		if (!memcmp(s->e[i].target, ids[1], 32))
			memcpy(want, ids[1], 32);
	return code;
}

static int plan_option(void *ctx, int c, const char *arg)
{
	struct plan_args *a = ctx;
	if (c == 'H')
		a->have[a->nhave++] = arg;
	else if (c == 'W')
		a->want = arg;
	else if (c == 'F')
		a->from = arg;
	else if (c == 'M')
		a->merge = 1;
	else
		return -2;
	return 0;
}

static int parse(int argc, char **argv, struct plan_args *a)
{
	static const struct option opts[] = {CLI_OPTION_OUTPUT,
	                                     CLI_OPTION_FORCE,
	                                     CLI_OPTION_JSON,
	                                     CLI_OPTION_HELP,
	                                     {"have", required_argument, 0, 'H'},
	                                     {"want", required_argument, 0, 'W'},
	                                     {"from", required_argument, 0, 'F'},
	                                     {"merge", no_argument, 0, 'M'},
	                                     {0, 0, 0, 0}};
	int r;
	a->c = (struct cli_args){.cmd = "plan", .help = plan_help};
	if (!(a->have = calloc((size_t)argc, sizeof(*a->have))))
		return CLI_FAILED;
	if ((r = cli_getopt(&a->c, argc, argv, ":o:h", opts, plan_option, a)) ||
	    (r = cli_positionals(&a->c, argc, argv, optind, 0, 0, NULL, 0)))
		return r;
	const char *missing = !a->nhave               ? "--have IMAGE"
	                      : !a->want              ? "--want IMAGE"
	                      : !a->from              ? "--from DIR"
	                      : a->merge && !a->c.out ? "-o OUTPUT (with --merge)"
	                      : !a->merge && a->c.out ? "--merge (-o is where it goes)"
	                                              : NULL;
	if (!missing)
		return 0;
	fprintf(stderr, "cdimg plan: missing %s\n", missing);
	return cli_usage_hint(&a->c);
}

static void print_plan(const struct plan_args *a, const struct pset *s, const size_t *path,
                       size_t n, uint64_t total, const uint8_t want[32])
{
	char hex[65], h1[32], h2[32];
	uint64_t cum = 0;
	if (a->c.json) {
		struct json_object *o = json_object_new_object(), *steps = json_object_new_array();
		dimg_hex32(want, hex);
		json_object_object_add(o, "want_tree", json_object_new_string(hex));
		json_object_object_add(o, "total", json_object_new_int64((int64_t)total));
		for (size_t i = 0; i < n; i++) {
			const struct plan_edge *e = &s->e[path[i]];
			struct json_object *x = json_object_new_object();
			cum += e->cost;
			json_object_object_add(x, "file",
			                       json_object_new_string(s->d[path[i]].path));
			json_object_object_add(x, "size", json_object_new_int64((int64_t)e->cost));
			json_object_object_add(x, "cumulative",
			                       json_object_new_int64((int64_t)cum));
			dimg_hex32(e->base, hex);
			json_object_object_add(x, "base_tree", json_object_new_string(hex));
			dimg_hex32(e->target, hex);
			json_object_object_add(x, "target_tree", json_object_new_string(hex));
			json_object_array_add(steps, x);
		}
		json_object_object_add(o, "steps", steps);
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
		json_object_put(o);
		return;
	}
	dimg_hex32(want, hex);
	if (n == 0) {
		printf("you already have tree %.12s: nothing to transfer\n", hex);
		return;
	}
	printf("%zu delta%s, %s to transfer, to tree %.12s:\n", n, n == 1 ? "" : "s",
	       cli_human(total, h1, sizeof(h1)), hex);
	for (size_t i = 0; i < n; i++) {
		cum += s->e[path[i]].cost;
		printf("  %2zu  %s  %s  (total %s)\n", i + 1, s->d[path[i]].path,
		       cli_human(s->e[path[i]].cost, h1, sizeof(h1)),
		       cli_human(cum, h2, sizeof(h2)));
	}
}

/* Says what is missing: where the deltas into want start, and how far the
 * deltas from what one has go. */
static void explain_missing(const struct plan_args *a, const struct pset *s,
                            const uint8_t (*have)[32], size_t nhave, const uint8_t want[32])
{
	char hex[65];
	int into = 0, reach = 0;
	dimg_hex32(want, hex);
	fprintf(stderr,
	        "cdimg plan: no chain of deltas in %s leads from what you have to tree %s\n",
	        a->from, hex);
	for (size_t i = 0; i < s->n; i++) {
		if (memcmp(s->e[i].target, want, 32) != 0)
			continue;
		dimg_hex32(s->e[i].base, hex);
		fprintf(stderr, "%s  %s starts from tree %.12s, which no delta from you reaches\n",
		        into++ ? "" : "  deltas into it:\n", s->d[i].path, hex);
	}
	if (!into)
		fprintf(stderr, "  no delta in %s produces it\n", a->from);
	for (size_t i = 0; i < s->n; i++) {
		size_t *p = NULL, np = 0;
		uint64_t t = 0;
		if (plan_shortest(s->e, s->n, have, nhave, s->e[i].target, &p, &np, &t) == 0 &&
		    np > 0 && p[np - 1] == i) {
			dimg_hex32(s->e[i].target, hex);
			fprintf(stderr, "%s  tree %.12s (%s)\n",
			        reach++ ? "" : "  from what you have, the deltas reach:\n", hex,
			        s->d[i].path);
		}
		free(p);
	}
	if (!reach)
		fprintf(stderr, "  no delta in %s starts from an image you have\n", a->from);
}

static int write_merge(const struct plan_args *a, const struct pset *s, const size_t *path,
                       size_t n)
{
	const char **paths = calloc(n, sizeof(*paths));
	struct merge_opts mo;
	if (!paths)
		return cli_fail(-ENOMEM, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		paths[i] = s->d[path[i]].path;
	merge_opts_default(&mo);
	int code = cli_check_output(&a->c, paths, n);
	if (!code)
		code = cli_merge(a->c.out, paths, n, &mo, a->c.force, 0, a->c.json);
	free(paths);
	return code;
}

static int run_plan(struct plan_args *a)
{
	struct pset s = {0};
	uint8_t(*have)[32] = calloc(2 * a->nhave, 32), want[32];
	size_t *path = NULL, n = 0, nhave = 0, k;
	uint64_t total = 0;
	int code = have ? scan(a->from, &s) : cli_fail(-ENOMEM, NULL, NULL);
	for (size_t i = 0; !code && i < a->nhave; i++, nhave += k)
		code = identify(&s, a->have[i], (uint8_t(*)[32])have[nhave], &k);
	if (!code)
		code = identify_want(&s, a->want, want);
	if (!code) {
		int r = plan_shortest(s.e, s.n, (const uint8_t(*)[32])have, nhave, want, &path, &n,
		                      &total);
		if (r == -ENOENT) {
			explain_missing(a, &s, (const uint8_t(*)[32])have, nhave, want);
			code = CLI_FAILED;
		} else if (r < 0) {
			code = cli_fail(r, NULL, NULL);
		} else {
			print_plan(a, &s, path, n, total, want);
			if (a->merge && n == 0)
				fprintf(stderr, "cdimg plan: nothing to merge, %s not written\n",
				        a->c.out);
			else if (a->merge)
				code = write_merge(a, &s, path, n);
		}
	}
	free(path);
	free(have);
	pset_free(&s);
	return code;
}

int cmd_plan(int argc, char **argv)
{
	struct plan_args a = {0};
	int r = parse(argc, argv, &a), code;
	if (r == -1)
		code = CLI_OK;
	else if (r)
		code = r;
	else
		code = run_plan(&a);
	free(a.have);
	return code;
}
