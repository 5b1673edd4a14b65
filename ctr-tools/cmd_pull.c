/* cdimg pull docker://HOST/REPO:TAG: the fewest bytes from what containerd
 * has to the image asked for — a delta or a chain of deltas found in the
 * repository (transport/di3fs/pull.h), planned by bytes (packer/plan), or
 * the layers containerd lacks — then loaded (cdimg load) or copied in. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "cli.h"
#include "ctrd.h"
#include "di3fs/pull.h"
#include "di3fs/xcopy.h"
#include "load.h"
#include "plan.h"

static const char pull_help[] =
    "usage: cdimg pull [OPTIONS] docker://HOST[:PORT]/REPO[:TAG|@DIGEST]\n"
    "\n"
    "Brings an image from a registry into containerd with the fewest bytes.\n"
    "Resolves the name to this machine's platform, then weighs two ways:\n"
    "  delta   the deltas `cdimg push` put into the repository (referrers of\n"
    "          their target images: the referrers API, else the referrers tag\n"
    "          schema), chained by bytes from an image containerd has (matched\n"
    "          by config digest) to the one asked for; the target's own\n"
    "          referrers are read first, every tag's when none of them starts\n"
    "          from an image here (at most --max-tags tags)\n"
    "  layers  the image's layers containerd's content store lacks\n"
    "and takes the one with fewer bytes. A delta is downloaded (resumably,\n"
    "every blob checked), rebuilt into the .cdimg that was pushed (its digest\n"
    "checked against the artifact's), kept in the cache, and loaded as `cdimg\n"
    "load` does (for --snapshotter=di3fs, lazily); a chain is loaded hop by hop.\n"
    "The layers are copied in as `cdimg copy` does.\n"
    "\n"
    "Trust: anyone who can push to a repository can attach a delta to an image,\n"
    "and a lazily loaded delta is checked against itself only. Deltas are not\n"
    "signed yet, so they are taken only with --insecure-unsigned; without it the\n"
    "plan lists them and takes the layers.\n"
    "\n"
    "options:\n"
    "      --dry-run              print the plan only\n"
    "      --insecure-unsigned    take unsigned deltas from the registry\n"
    "      --max-tags N           tags whose deltas are read (default 100)\n"
    "      --platform OS/ARCH[/VARIANT]  from an index (default: this machine's)\n"
    "      --cache DIR            downloads and rebuilt deltas (default: cdimg copy's\n"
    "                             cache, /var/cache/di3fs/blobs for root)\n"
    "      --creds USER:PASS      registry credentials (else docker's and skopeo's files)\n"
    "      --authfile FILE        registry credentials file\n"
    "      --tls-verify=false     do not check the registry's TLS certificate\n"
    "      --cert-dir DIR         registry CA certificates and client keys\n"
    "  -n, --namespace NS         containerd namespace (default: $CONTAINERD_NAMESPACE\n"
    "                             or \"default\")\n"
    "  -a, --address SOCK         containerd's socket (default: $CONTAINERD_ADDRESS\n"
    "                             or " CTRD_DEFAULT_ADDRESS ")\n"
    "      --snapshotter NAME     the di3fs snapshotter's name (default: di3fs)\n"
    "      --json                 the plan and the result as one JSON object\n"
    "  -q, --quiet                no progress\n"
    "  -h, --help                 this text\n"
    "\n"
    "exit codes: 0 pulled (or already there), 1 failed (registry, containerd),\n"
    "2 usage, 3 a damaged delta or image\n";

#define PULL_MAX_TAGS 100

enum {
	OPT_DRY = 0x200,
	OPT_INSECURE,
	OPT_MAX_TAGS,
	OPT_SNAP,
};

struct pull_args {
	struct cli_args c;
	struct xport_opts o;
	struct load_args l;
	int dry_run, insecure;
	unsigned max_tags;
};

enum pull_way { PULL_HAVE, PULL_DELTA, PULL_LAYERS };
static const char *const way_name[] = {"present", "delta", "layers"};

struct pull_plan {
	struct xport_name name;
	struct xpull *x;
	struct xpull_target t;
	char target[OCI_DIGEST_LEN];
	const struct xpull_delta *d; /* found, nd of them */
	size_t nd, skipped;
	size_t *path, npath; /* indexes into d, in load order */
	uint64_t delta_bytes, layers_bytes, fetched;
	size_t layers_missing;
	enum pull_way way;
	const char *why;
};

static int pull_option(void *ctx, int c, const char *arg)
{
	struct pull_args *a = ctx;
	switch (c) {
	case OPT_DRY:
		a->dry_run = 1;
		return 0;
	case OPT_INSECURE:
		a->insecure = 1;
		return 0;
	case OPT_MAX_TAGS:
		return cli_opt_uint(&a->c, "--max-tags", arg, 0, 100000, &a->max_tags);
	case OPT_SNAP:
		a->l.snapshotter = arg;
		return 0;
	case 'n':
		a->l.ns = arg;
		return 0;
	case 'a':
		a->l.address = arg;
		return 0;
	}
	return cli_registry_option(&a->c, &a->o, c, arg);
}

static int pull_fail(int rc, const struct dimg_err *e, const char *what)
{
	fprintf(stderr, "cdimg pull: ");
	if (e && e->what[0])
		what = e->what;
	if (what)
		fprintf(stderr, "%s: ", what);
	fprintf(stderr, "%s\n", e && e->why[0] ? e->why : strerror(-rc));
	return cli_exit_code(rc);
}

/* Bytes of the target's layers the content store lacks. */
static int layers_cost(struct pull_plan *p, struct ctrd *c, struct dimg_err *err)
{
	for (size_t i = 0; i < p->t.nlayers; i++) {
		char dg[OCI_DIGEST_LEN];
		int64_t size;
		oci_digest_str(dg, p->t.layers[i].digest);
		int rc = ctrd_content_info(c, dg, &size, err);
		if (rc == -ENOENT) {
			dimg_err_clear(err);
			p->layers_bytes += p->t.layers[i].size;
			p->layers_missing++;
		} else if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

/* The trees containerd has images of, among the deltas' bases: each base
 * config looked up once, every delta from a present one counted. */
static int have_trees(struct pull_plan *p, struct ctrd *c, uint8_t (**have)[32], size_t *nhave,
                      struct dimg_err *err)
{
	signed char *present = calloc(p->nd + 1, 1); /* 1 yes, 0 no */
	int rc = present ? 0 : -ENOMEM;

	*have = calloc(p->nd + 1, sizeof(**have));
	*nhave = 0;
	if (!*have)
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < p->nd; i++) {
		size_t j = 0;
		while (j < i && strcmp(p->d[j].base_config, p->d[i].base_config))
			j++;
		if (j < i) {
			present[i] = present[j];
		} else {
			char *name = NULL;
			rc = load_find_base(c, p->d[i].base_config, &name, err);
			present[i] = rc == 0;
			if (rc == -ENOENT) {
				dimg_err_clear(err);
				rc = 0;
			}
			free(name);
		}
		if (rc == 0 && present[i])
			memcpy((*have)[(*nhave)++], p->d[i].base_tree, 32);
	}
	free(present);
	return rc;
}

/* The cheapest chain of deltas from a tree containerd has to the target. */
static int delta_path(struct pull_plan *p, struct ctrd *c, struct dimg_err *err)
{
	const uint8_t *want = NULL;
	uint8_t(*have)[32] = NULL;
	struct plan_edge *e = calloc(p->nd + 1, sizeof(*e));
	size_t nhave = 0;
	int rc = e ? have_trees(p, c, &have, &nhave, err) : -ENOMEM;

	for (size_t i = 0; rc == 0 && i < p->nd; i++) {
		memcpy(e[i].base, p->d[i].base_tree, 32);
		memcpy(e[i].target, p->d[i].target_tree, 32);
		e[i].cost = p->d[i].cost;
		if (!strcmp(p->d[i].subject, p->target) &&
		    !strcmp(p->d[i].target_config, p->t.config_digest))
			want = p->d[i].target_tree;
	}
	if (rc == 0 && want && nhave) {
		rc = plan_shortest(e, p->nd, (const uint8_t(*)[32])have, nhave, want, &p->path,
		                   &p->npath, &p->delta_bytes);
		if (rc == -ENOENT || (rc == 0 && p->npath == 0))
			rc = 0, p->npath = 0;
	}
	free(e);
	free(have);
	return rc == -ENOMEM ? dimg_err_set(err, rc, NULL, NULL) : rc;
}

static int find_deltas(struct pull_plan *p, const struct pull_args *a, struct ctrd *c,
                       struct dimg_err *err)
{
	int rc = xpull_find(p->x, p->target, err);
	if (rc >= 0) {
		p->d = xpull_deltas(p->x, &p->nd, &p->skipped);
		rc = delta_path(p, c, err);
	}
	if (rc >= 0 && p->npath == 0 && a->max_tags > 0) { /* a chain, through other tags */
		rc = xpull_find_all(p->x, a->max_tags, err);
		p->d = xpull_deltas(p->x, &p->nd, &p->skipped);
		if (rc >= 0)
			rc = delta_path(p, c, err);
	}
	return rc < 0 ? rc : 0;
}

static void choose(struct pull_plan *p, const struct pull_args *a)
{
	if (p->npath == 0) {
		p->way = PULL_LAYERS;
		p->why = p->nd ? "no delta starts from an image containerd has"
		               : "the repository has no delta to this image";
	} else if (!a->insecure) {
		p->way = PULL_LAYERS;
		p->why = "deltas are unsigned: taken only with --insecure-unsigned";
	} else if (p->delta_bytes >= p->layers_bytes) {
		p->way = PULL_LAYERS;
		p->why = "the missing layers are no larger than the deltas";
	} else {
		p->way = PULL_DELTA;
		p->why = "the deltas are smaller than the missing layers";
	}
}

static int plan(struct pull_plan *p, const struct pull_args *a, struct dimg_err *err)
{
	struct ctrd *c = NULL;
	char *have = NULL;
	int rc = xpull_open(&p->x, &p->name, &a->o, err);

	if (rc == 0)
		rc = xpull_target(p->x, &p->t, err);
	if (rc == 0) {
		oci_digest_str(p->target, p->t.man.digest);
		rc = ctrd_connect(&c, a->l.address, a->l.ns, 5000, err);
	}
	if (rc == 0) {
		rc = load_find_base(c, p->t.config_digest, &have, err);
		if (rc == 0) {
			p->way = PULL_HAVE;
			p->why = "containerd has an image with this config";
		} else if (rc == -ENOENT) {
			dimg_err_clear(err);
			rc = layers_cost(p, c, err);
			if (rc == 0)
				rc = find_deltas(p, a, c, err);
			if (rc == 0)
				choose(p, a);
		}
	}
	free(have);
	ctrd_close(c);
	return rc;
}

/* ---- doing it ---- */

/* <cache>/deltas/<hex>.cdimg */
static char *delta_file(const struct pull_args *a, const struct xpull_delta *d)
{
	char *dir = a->o.cache_dir ? strdup(a->o.cache_dir) : xcopy_default_cache_dir(), *s = NULL;
	if (dir && asprintf(&s, "%s/deltas", dir) >= 0) {
		mkdir(dir, 0755);
		mkdir(s, 0755);
		free(s);
		if (asprintf(&s, "%s/deltas/%s.cdimg", dir, d->digest + 7) < 0)
			s = NULL;
	}
	free(dir);
	return s;
}

static int run_layers(struct pull_plan *p, const struct pull_args *a, const char *name);

/* A delta the registry holds is damaged or forged: said, and the layers
 * pulled instead. */
static int delta_refused(struct pull_plan *p, const struct pull_args *a, const char *name, int rc,
                         const struct dimg_err *err)
{
	fprintf(stderr, "cdimg pull: %s: %s; pulling the layers instead\n",
	        err->what[0] ? err->what : xpull_repo_name(p->x),
	        err->why[0] ? err->why : strerror(-rc));
	p->way = PULL_LAYERS;
	p->why = "a delta was refused";
	return run_layers(p, a, name);
}

/* Each hop fetched and loaded; the hops before the last are named
 * HOST/REPO@<their target's manifest digest>. */
static int run_delta(struct pull_plan *p, const struct pull_args *a, const char *name)
{
	for (size_t i = 0; i < p->npath; i++) {
		const struct xpull_delta *d = &p->d[p->path[i]];
		struct dimg_err err = {0};
		struct load_args l = a->l;
		uint64_t got = 0;
		char *file = delta_file(a, d), *hop = NULL;
		int rc = file ? xpull_fetch(p->x, d, file, &got, &err) : -ENOMEM;

		p->fetched += got;
		if (rc == -EBADMSG || rc == -ENOTSUP || rc == -EOVERFLOW) {
			free(file);
			return delta_refused(p, a, name, rc, &err);
		}
		if (rc == 0 && i + 1 < p->npath &&
		    asprintf(&hop, "%s@%s", xpull_repo_name(p->x), d->subject) < 0)
			rc = -ENOMEM, hop = NULL;
		if (rc < 0) {
			free(file);
			return pull_fail(rc, &err, xpull_repo_name(p->x));
		}
		l.path = file;
		l.name = hop ? hop : name;
		l.quiet = 1;
		l.silent = a->c.json;
		int code = load_cdimg(&l);
		free(file);
		free(hop);
		if (code)
			return code;
	}
	return CLI_OK;
}

/* The layers into containerd as `cdimg copy` puts them, under name (the
 * containerd transport names an image WHERE[:REF]). */
static int run_layers(struct pull_plan *p, const struct pull_args *a, const char *name)
{
	struct xcopy_opts o = {.x = a->o};
	struct xcopy_result res = {0};
	struct xport_name dst = {.kind = XPORT_CONTAINERD};
	struct dimg_err err = {0};
	int rc;

	o.x.address = a->l.address;
	o.x.ns = a->l.ns;
	dst.where = strdup(p->name.ref ? p->name.where : name);
	dst.ref = p->name.ref ? strdup(p->name.ref) : NULL;
	rc = dst.where && (dst.ref || !p->name.ref) ? xcopy(&p->name, 1, &dst, &o, &res, &err)
	                                            : -ENOMEM;
	p->fetched = res.copied_bytes;
	xcopy_result_clear(&res);
	xport_name_clear(&dst);
	return rc < 0 ? pull_fail(rc, &err, NULL) : CLI_OK;
}

static struct json_object *plan_json(const struct pull_plan *p, const char *name)
{
	struct json_object *o = json_object_new_object(), *ds = json_object_new_array();
	if (!o || !ds) {
		json_object_put(o);
		json_object_put(ds);
		return NULL;
	}
	json_object_object_add(o, "image", json_object_new_string(name));
	json_object_object_add(o, "manifest", json_object_new_string(p->target));
	json_object_object_add(o, "config", json_object_new_string(p->t.config_digest));
	json_object_object_add(o, "way", json_object_new_string(way_name[p->way]));
	json_object_object_add(o, "why", json_object_new_string(p->why));
	for (size_t i = 0; i < p->npath; i++) {
		const struct xpull_delta *d = &p->d[p->path[i]];
		struct json_object *x = json_object_new_object();
		json_object_object_add(x, "digest", json_object_new_string(d->digest));
		json_object_object_add(x, "base_config", json_object_new_string(d->base_config));
		json_object_object_add(x, "target_config",
		                       json_object_new_string(d->target_config));
		json_object_object_add(x, "bytes", json_object_new_uint64(d->cost));
		json_object_array_add(ds, x);
	}
	json_object_object_add(o, "deltas", ds);
	json_object_object_add(o, "deltas_found", json_object_new_uint64(p->nd));
	json_object_object_add(o, "deltas_skipped", json_object_new_uint64(p->skipped));
	json_object_object_add(o, "delta_bytes", json_object_new_uint64(p->delta_bytes));
	json_object_object_add(o, "layers_missing", json_object_new_uint64(p->layers_missing));
	json_object_object_add(o, "layers_bytes", json_object_new_uint64(p->layers_bytes));
	return o;
}

static void plan_print(const struct pull_plan *p, const char *name)
{
	char h1[32], h2[32];
	fprintf(stderr, "%s (%s): %s, %s\n", name, p->target, way_name[p->way], p->why);
	if (p->way == PULL_HAVE)
		return;
	fprintf(stderr, "  layers: %zu missing, %s\n", p->layers_missing,
	        cli_human(p->layers_bytes, h1, sizeof(h1)));
	if (p->npath)
		fprintf(stderr, "  deltas: %zu hop%s, %s (%zu found in the repository)\n", p->npath,
		        p->npath == 1 ? "" : "s", cli_human(p->delta_bytes, h2, sizeof(h2)), p->nd);
	for (size_t i = 0; i < p->npath; i++)
		fprintf(stderr, "    %s from %s\n", p->d[p->path[i]].digest,
		        p->d[p->path[i]].base_config);
	if (p->skipped)
		fprintf(stderr, "  %zu malformed artifact%s skipped\n", p->skipped,
		        p->skipped == 1 ? "" : "s");
}

static int pull_run(struct pull_plan *p, const struct pull_args *a, const char *name)
{
	struct dimg_err err = {0};
	int rc = plan(p, a, &err), code = CLI_OK;

	if (rc < 0)
		return pull_fail(rc, &err, name);
	if (!a->c.json && !a->c.quiet)
		plan_print(p, name);
	if (!a->dry_run && p->way == PULL_DELTA)
		code = run_delta(p, a, name);
	else if (!a->dry_run && p->way == PULL_LAYERS)
		code = run_layers(p, a, name);
	if (a->c.json) {
		struct json_object *o = plan_json(p, name);
		if (o) {
			json_object_object_add(o, "dry_run", json_object_new_boolean(a->dry_run));
			json_object_object_add(o, "fetched_bytes",
			                       json_object_new_uint64(p->fetched));
			json_object_object_add(o, "ok", json_object_new_boolean(code == CLI_OK));
			printf("%s\n",
			       json_object_to_json_string_ext(
			           o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		}
		json_object_put(o);
	}
	return code;
}

/* The image's name in containerd: HOST/REPO:TAG, or HOST/REPO@DIGEST when
 * pulled by digest alone. */
static char *pull_name(const struct xport_name *n)
{
	const char *sep = n->ref ? ":" : n->digest ? "@" : "";
	const char *what = n->ref ? n->ref : n->digest ? n->digest : "";
	char *s = NULL;
	return asprintf(&s, "%s%s%s", n->where, sep, what) < 0 ? NULL : s;
}

int cmd_pull(int argc, char **argv)
{
	static const struct option opts[] = {CLI_OPTION_JSON,
	                                     CLI_OPTION_QUIET,
	                                     CLI_OPTION_HELP,
	                                     CLI_OPTION_PLATFORM,
	                                     CLI_OPTION_CACHE,
	                                     {"dry-run", no_argument, 0, OPT_DRY},
	                                     {"insecure-unsigned", no_argument, 0, OPT_INSECURE},
	                                     {"max-tags", required_argument, 0, OPT_MAX_TAGS},
	                                     CLI_OPTIONS_REGISTRY,
	                                     {"snapshotter", required_argument, 0, OPT_SNAP},
	                                     {"namespace", required_argument, 0, 'n'},
	                                     {"address", required_argument, 0, 'a'},
	                                     {0, 0, 0, 0}};
	static const char *const names[] = {"IMAGE (docker://HOST/REPO:TAG)"};
	struct pull_args a = {.c = {.cmd = "pull", .help = pull_help}, .max_tags = PULL_MAX_TAGS};
	struct pull_plan p = {0};
	struct dimg_err err = {0};
	int r;

	load_args_init(&a.l);
	if ((r = cli_getopt(&a.c, argc, argv, ":qhn:a:", opts, pull_option, &a)) ||
	    (r = cli_positionals(&a.c, argc, argv, optind, 1, 1, names, 0)))
		return r < 0 ? CLI_OK : r;
	a.o.platform = a.c.platform;
	a.o.cache_dir = a.c.cache;
	r = xport_name_parse(&p.name, argv[optind], &err);
	if (r == 0 && p.name.kind != XPORT_DOCKER)
		r = dimg_err_set(&err, -EINVAL, argv[optind], "not a docker:// name");
	if (r < 0) {
		xport_name_clear(&p.name);
		pull_fail(r, &err, argv[optind]);
		return r == -ENOMEM ? CLI_FAILED : CLI_USAGE;
	}
	char *name = pull_name(&p.name);
	r = name ? pull_run(&p, &a, name) : pull_fail(-ENOMEM, NULL, NULL);
	free(name);
	free(p.path);
	xpull_target_clear(&p.t);
	xpull_close(p.x);
	xport_name_clear(&p.name);
	return r;
}
