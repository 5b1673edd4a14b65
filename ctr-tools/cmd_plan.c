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
    "IMAGE is an image (OCI layout directory or tar, `docker save` tar) or a\n"
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
    "  -h, --help           this text\n"
    "\n"
    "Files in DIR that are not deltas are ignored; damaged deltas are skipped\n"
    "with a warning. No chain: exit 1, naming what is missing.\n";

struct plan_args {
	const char **have;
	size_t nhave;
	const char *want, *from, *out;
	int json, merge;
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
	struct stat st;
	int kind = cdimg_sniff(path);
	if (kind < 0)
		return kind;
	if (kind != CDIMG_KIND_CDIMG && kind != CDIMG_KIND_DIMG)
		return 1;
	if (stat(path, &st) < 0)
		return -errno;
	e->cost = (uint64_t)st.st_size;
	d->base_config[0] = d->target_config[0] = '\0';
	if (kind == CDIMG_KIND_DIMG) {
		struct dimg_reader *rd = NULL;
		int r = dimg_reader_open(&rd, path);
		if (r == 0) {
			memcpy(e->base, dimg_reader_base_id(rd), 32);
			memcpy(e->target, dimg_reader_target_id(rd), 32);
		}
		dimg_reader_free(rd);
		return r;
	}
	struct cdimg *c = NULL;
	int r = cdimg_open(&c, path, err);
	if (r == 0) {
		const struct cdimg_info *in = cdimg_get_info(c);
		memcpy(e->base, in->base_tree, 32);
		memcpy(e->target, in->target_tree, 32);
		snprintf(d->base_config, sizeof(d->base_config), "%s", in->base_config_digest);
		snprintf(d->target_config, sizeof(d->target_config), "%s",
		         in->target_config_digest);
	}
	cdimg_free(c);
	return r;
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

static int parse_hex32(const char *s, uint8_t out[32])
{
	if (!strncmp(s, "sha256:", 7))
		s += 7;
	if (strlen(s) != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

/* A literal id: a config digest the deltas name becomes its tree id. */
static void resolve_literal(const struct pset *s, const char *lit, uint8_t id[32])
{
	char want[72];
	snprintf(want, sizeof(want), "sha256:%s", strncmp(lit, "sha256:", 7) ? lit : lit + 7);
	for (size_t i = 0; i < s->n; i++) {
		if (!strcmp(s->d[i].base_config, want)) {
			memcpy(id, s->e[i].base, 32);
			return;
		}
		if (!strcmp(s->d[i].target_config, want)) {
			memcpy(id, s->e[i].target, 32);
			return;
		}
	}
}

/* The tree id of IMAGE (a literal, an image or a directory). */
static int identify(const struct pset *s, const char *what, uint8_t id[32])
{
	struct stat st;
	if (stat(what, &st) < 0 && parse_hex32(what, id) == 0) {
		resolve_literal(s, what, id);
		return 0;
	}
	struct dimg_image *img = NULL;
	int code = cli_open_image(&img, what, NULL, 0); /* progress on a terminal only */
	if (code)
		return code;
	memcpy(id, img->tree_id, 32);
	dimg_image_free(img);
	return 0;
}

static int parse(int argc, char **argv, struct plan_args *a)
{
	static const struct option opts[] = {
	    {"have", required_argument, 0, 'H'}, {"want", required_argument, 0, 'W'},
	    {"from", required_argument, 0, 'F'}, {"json", no_argument, 0, 'J'},
	    {"merge", no_argument, 0, 'M'},      {"output", required_argument, 0, 'o'},
	    {"help", no_argument, 0, 'h'},       {0, 0, 0, 0}};
	int c;
	a->have = calloc((size_t)argc, sizeof(*a->have));
	if (!a->have)
		return -2;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		if (c == 'H')
			a->have[a->nhave++] = optarg;
		else if (c == 'W')
			a->want = optarg;
		else if (c == 'F')
			a->from = optarg;
		else if (c == 'J')
			a->json = 1;
		else if (c == 'M')
			a->merge = 1;
		else if (c == 'o')
			a->out = optarg;
		else if (c == 'h') {
			fputs(plan_help, stdout);
			return -1;
		} else
			goto usage;
	}
	if (optind != argc || !a->nhave || !a->want || !a->from || (a->merge != !!a->out))
		goto usage;
	return 0;
usage:
	fputs(plan_help, stderr);
	return -2;
}

static void print_plan(const struct plan_args *a, const struct pset *s, const size_t *path,
                       size_t n, uint64_t total, const uint8_t want[32])
{
	char hex[65], h1[32], h2[32];
	uint64_t cum = 0;
	if (a->json) {
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
	char **argv = calloc(n + 5, sizeof(*argv));
	int argc = 0;
	if (!argv)
		return cli_fail(-ENOMEM, NULL, NULL);
	argv[argc++] = "merge";
	if (a->json)
		argv[argc++] = "-q";
	for (size_t i = 0; i < n; i++)
		argv[argc++] = s->d[path[i]].path;
	argv[argc++] = "-o";
	argv[argc++] = (char *)a->out;
	optind = 0; /* getopt starts afresh for the merge's options */
	int code = cmd_merge(argc, argv);
	free(argv);
	return code;
}

static int run_plan(struct plan_args *a)
{
	struct pset s = {0};
	uint8_t(*have)[32] = calloc(a->nhave, 32), want[32];
	size_t *path = NULL, n = 0;
	uint64_t total = 0;
	int code = have ? scan(a->from, &s) : cli_fail(-ENOMEM, NULL, NULL);
	for (size_t i = 0; !code && i < a->nhave; i++)
		code = identify(&s, a->have[i], have[i]);
	if (!code)
		code = identify(&s, a->want, want);
	if (!code) {
		int r = plan_shortest(s.e, s.n, (const uint8_t(*)[32])have, a->nhave, want, &path,
		                      &n, &total);
		if (r == -ENOENT) {
			explain_missing(a, &s, (const uint8_t(*)[32])have, a->nhave, want);
			code = CLI_FAILED;
		} else if (r < 0) {
			code = cli_fail(r, NULL, NULL);
		} else {
			print_plan(a, &s, path, n, total, want);
			if (a->merge && n == 0)
				fprintf(stderr, "cdimg plan: nothing to merge, %s not written\n",
				        a->out);
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
	else if (r < 0)
		code = CLI_USAGE;
	else
		code = run_plan(&a);
	free(a.have);
	return code;
}
