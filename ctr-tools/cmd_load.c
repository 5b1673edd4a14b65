/* cdimg load X.cdimg: put a delta image into containerd (content store,
 * snapshot through containerd, image record) over its base image, so that
 * `ctr run --snapshotter=di3fs NAME` runs it. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cdimg.h"
#include "cli.h"
#include "ctrd.h"
#include "load.h"

static const char load_help[] =
    "usage: cdimg load [OPTIONS] X.cdimg\n"
    "\n"
    "Loads the target image of a .cdimg into containerd over its base image,\n"
    "which must already be there (found by its config digest among the\n"
    "namespace's images) and unpacked for the snapshotter. Writes the .dimg,\n"
    "the target's config and manifest into containerd's content store, has\n"
    "containerd create the target's snapshot (chain id of the target's\n"
    "layers, parent the base's) in the snapshotter with the delta's digest as\n"
    "a label, and names the image. Everything goes through containerd's API\n"
    "under a lease: a failed load leaves no image record, and what it wrote\n"
    "is garbage-collected. Loading again is harmless.\n"
    "\n"
    "options:\n"
    "      --name NAME:TAG      image name (default: the name the .cdimg records)\n"
    "  -n, --namespace NS       containerd namespace (default: $CONTAINERD_NAMESPACE\n"
    "                           or \"default\")\n"
    "  -a, --address SOCK       containerd's socket (default: $CONTAINERD_ADDRESS\n"
    "                           or " CTRD_DEFAULT_ADDRESS ")\n"
    "      --snapshotter NAME   the di3fs snapshotter's name in containerd\n"
    "                           (default: di3fs)\n"
    "      --json               print the result as one JSON object\n"
    "  -q, --quiet              no progress\n"
    "  -h, --help               this text\n"
    "\n"
    "exit codes: 0 loaded, 1 failed (containerd unreachable or refusing),\n"
    "2 usage, 3 unusable input (a corrupt .cdimg, the base image missing or\n"
    "not unpacked for the snapshotter)\n";

#define LOAD_LEASE_S      3600
#define LOAD_CONNECT_MS   5000
#define LABEL_GC_SNAPSHOT "containerd.io/gc.ref.snapshot."
#define LABEL_GC_CONFIG   "containerd.io/gc.ref.content.config"
#define LABEL_GC_DIMG     "containerd.io/gc.ref.content.di3fs.dimg"
#define LABEL_SNAP_DELTA  "containerd.io/snapshot/di3fs.delta"
#define LABEL_SNAP_NS     "containerd.io/snapshot/di3fs.namespace"
#define LABEL_SNAP_SEEDS  "containerd.io/snapshot/di3fs.prefetch"

struct load_state {
	const struct load_args *a;
	struct cdimg *cd;
	const struct cdimg_info *ci;
	struct ctrd *c;
	const char *name;
	char *base_name;
	char base_chain[72], target_chain[72];
	int created; /* the snapshot is new (not loaded before) */
	struct cli_progress p;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Prints "cdimg load: [<what>: ]<why>", returns code. */
static int load_fail(int code, const char *what, const struct dimg_err *err)
{
	fprintf(stderr, "cdimg load: %s%s%s\n", what ? what : "", what ? ": " : "",
	        err->why[0] ? err->why : "out of memory");
	return code;
}

static int load_open(struct load_state *s)
{
	struct dimg_err e = {0};
	if (cdimg_sniff(s->a->path) == CDIMG_KIND_DIMG) {
		fprintf(stderr,
		        "cdimg load: %s is a raw .dimg: load needs a .cdimg, which names the base "
		        "image and carries the target's config and manifest (cdimg diff of two "
		        "images writes one: -o NAME.cdimg)\n",
		        s->a->path);
		return CLI_USAGE;
	}
	int r = cdimg_open(&s->cd, s->a->path, &e);
	if (r < 0) {
		/* a file that is not a valid .cdimg is unusable input */
		int code = r == -ENOENT || r == -EACCES || r == -ENOMEM ? CLI_FAILED : CLI_BADINPUT;
		cli_report(r, &e, s->a->path);
		return code;
	}
	s->ci = cdimg_get_info(s->cd);
	s->name = s->a->name ? s->a->name : s->ci->target_ref;
	if (!s->name || !s->name[0]) {
		fprintf(stderr, "cdimg load: %s names no image: give one with --name NAME:TAG\n",
		        s->a->path);
		return CLI_USAGE;
	}
	r = load_chain_id(s->ci->target_config, s->ci->target_config_len, s->target_chain, &e);
	if (r < 0) {
		fprintf(stderr, "cdimg load: %s: the target's config: %s\n", s->a->path, e.why);
		return CLI_BADINPUT;
	}
	return 0;
}

/* Finds the base image and checks the snapshotter has its snapshot. */
static int load_base(struct load_state *s)
{
	const char *want = s->ci->base_config_digest, *ns = s->a->ns, *sn = s->a->snapshotter;
	uint8_t *cfg = NULL;
	size_t n;
	struct dimg_err err = {0};
	int r = load_find_base(s->c, want, &s->base_name, &err);
	if (r == -ENOENT) {
		fprintf(
		    stderr,
		    "cdimg load: %s: its base image (config %s) is not in containerd's namespace "
		    "\"%s\": import the base image first (ctr -n %s images import "
		    "--snapshotter=%s BASE.tar), or, if it is a delta image, `cdimg load` the "
		    ".cdimg that makes it\n",
		    s->a->path, want, ns, ns, sn);
		return CLI_BADINPUT;
	}
	if (r < 0)
		return load_fail(CLI_FAILED, "looking for the base image", &err);
	r = ctrd_content_get(s->c, want, LOAD_MAX_JSON, &cfg, &n, &err);
	if (r == 0)
		r = load_chain_id(cfg, n, s->base_chain, &err);
	free(cfg);
	if (r < 0) {
		char what[320];
		snprintf(what, sizeof(what), "base image %s: its config %s", s->base_name, want);
		return load_fail(CLI_FAILED, what, &err);
	}
	r = ctrd_snapshot_stat(s->c, sn, s->base_chain, &err);
	if (r == -ENOENT) {
		fprintf(
		    stderr,
		    "cdimg load: the base image %s is not unpacked for snapshotter %s (no snapshot "
		    "%s): import it with `ctr -n %s images import --snapshotter=%s` or run `ctr -n "
		    "%s images unpack --snapshotter=%s %s`\n",
		    s->base_name, sn, s->base_chain, ns, sn, ns, sn, s->base_name);
		return CLI_BADINPUT;
	}
	if (r < 0)
		return load_fail(CLI_FAILED, s->base_name, &err);
	return 0;
}

/* The .dimg, then the config (keeps the snapshot), then the manifest
 * (keeps the config and the .dimg): each blob's gc labels name what it
 * holds on to once the image record refers to the manifest. */
static int load_content(struct load_state *s)
{
	const struct cdimg_info *ci = s->ci;
	char gc_snap[128];
	struct dimg_err err = {0};
	snprintf(gc_snap, sizeof(gc_snap), LABEL_GC_SNAPSHOT "%s", s->a->snapshotter);
	const struct ctrd_label cfg_labels[] = {{gc_snap, s->target_chain}};
	const struct ctrd_label man_labels[] = {{LABEL_GC_CONFIG, ci->target_config_digest},
	                                        {LABEL_GC_DIMG, ci->dimg_digest}};
	const char *what = "the .dimg";
	int r = ctrd_content_write_progress(s->c, ci->dimg_digest, cdimg_dimg_bytes(s->cd),
	                                    (size_t)ci->dimg_size, NULL, 0, cli_progress_cb, &s->p,
	                                    &err);
	cli_progress_done(&s->p);
	if (r == 0 && (what = "the target's config"))
		r = ctrd_content_write(s->c, ci->target_config_digest, ci->target_config,
		                       ci->target_config_len, cfg_labels, 1, &err);
	if (r == 0 && (what = "the target's manifest"))
		r = ctrd_content_write(s->c, ci->target_manifest_digest, ci->target_manifest,
		                       ci->target_manifest_len, man_labels, 2, &err);
	if (r < 0) {
		char w[300];
		snprintf(w, sizeof(w), "%s: storing %s", s->a->path, what);
		return load_fail(CLI_FAILED, w, &err);
	}
	return 0;
}

/* Prepare over the base, then Commit as the target's chain id; the labels
 * tell the di3fs snapshotter which delta the snapshot is. */
static int load_snapshot(struct load_state *s)
{
	const char *sn = s->a->snapshotter;
	char *seeds = load_prefetch_seeds(s->ci->target_config, s->ci->target_config_len);
	const struct ctrd_label labels[] = {{LABEL_SNAP_DELTA, s->ci->dimg_digest},
	                                    {LABEL_SNAP_NS, s->a->ns},
	                                    {LABEL_SNAP_SEEDS, seeds}};
	size_t nlabels = seeds ? 3 : 2;
	uint32_t rnd = 0;
	char key[160];
	struct dimg_err err = {0};
	int r = ctrd_snapshot_stat(s->c, sn, s->target_chain, &err);
	if (r != -ENOENT)
		free(seeds);
	if (r == 0)
		return 0; /* loaded before */
	if (r != -ENOENT)
		return load_fail(CLI_FAILED, NULL, &err);
	dimg_err_clear(&err);
	if (getrandom(&rnd, sizeof(rnd), 0) < 0)
		rnd = (uint32_t)time(NULL);
	snprintf(key, sizeof(key), "di3fs-load %s %08x", s->target_chain, rnd);
	r = ctrd_snapshot_prepare(s->c, sn, key, s->base_chain, labels, nlabels, &err);
	if (r == 0 &&
	    (r = ctrd_snapshot_commit(s->c, sn, s->target_chain, key, labels, nlabels, &err)) < 0)
		ctrd_snapshot_remove(s->c, sn, key, NULL);
	free(seeds);
	if (r < 0)
		return load_fail(CLI_FAILED, NULL, &err);
	s->created = 1;
	return 0;
}

/* Names the image: the target manifest as its descriptor. */
static int load_image(struct load_state *s)
{
	const struct cdimg_info *ci = s->ci;
	const char *mt = ci->target_manifest_media_type;
	char *own = NULL;
	struct dimg_err err = {0};
	if (!mt || !mt[0])
		mt = own = load_media_type(ci->target_manifest, ci->target_manifest_len);
	if (!mt) {
		fprintf(stderr, "cdimg load: %s: the target manifest names no media type\n",
		        s->a->path);
		return CLI_BADINPUT;
	}
	const struct ctrd_image img = {.name = (char *)s->name,
	                               .media_type = (char *)mt,
	                               .digest = (char *)ci->target_manifest_digest,
	                               .size = (int64_t)ci->target_manifest_len};
	int r = ctrd_image_put(s->c, &img, NULL, 0, &err);
	free(own);
	return r < 0 ? load_fail(CLI_FAILED, NULL, &err) : 0;
}

static void load_report(const struct load_state *s, double secs)
{
	const struct cdimg_info *ci = s->ci;
	if (!s->a->json) {
		printf("loaded %s (manifest %s) over %s in %.2f s%s\n", s->name,
		       ci->target_manifest_digest, s->base_name, secs,
		       s->created ? "" : " (snapshot already there)");
		return;
	}
	struct json_object *o = json_object_new_object(), *b = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(s->name));
	json_object_object_add(o, "namespace", json_object_new_string(s->a->ns));
	json_object_object_add(o, "snapshotter", json_object_new_string(s->a->snapshotter));
	json_object_object_add(o, "manifest_digest",
	                       json_object_new_string(ci->target_manifest_digest));
	json_object_object_add(o, "config_digest",
	                       json_object_new_string(ci->target_config_digest));
	json_object_object_add(o, "dimg_digest", json_object_new_string(ci->dimg_digest));
	json_object_object_add(o, "dimg_size", json_object_new_int64((int64_t)ci->dimg_size));
	json_object_object_add(o, "chain_id", json_object_new_string(s->target_chain));
	json_object_object_add(o, "snapshot_created", json_object_new_boolean(s->created));
	json_object_object_add(b, "name", json_object_new_string(s->base_name));
	json_object_object_add(b, "config_digest", json_object_new_string(ci->base_config_digest));
	json_object_object_add(b, "chain_id", json_object_new_string(s->base_chain));
	json_object_object_add(o, "base", b);
	json_object_object_add(o, "seconds", json_object_new_double(secs));
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	                                           JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* Everything under one lease; deleting it at the end (also on failure)
 * leaves only what the image record refers to. */
static int load_run(struct load_state *s)
{
	struct dimg_err err = {0};
	double t0 = now_s();
	int code = load_open(s);
	if (code)
		return code;
	if (ctrd_connect(&s->c, s->a->address, s->a->ns, LOAD_CONNECT_MS, &err) < 0 ||
	    ctrd_lease_create(s->c, LOAD_LEASE_S, &err) < 0)
		return load_fail(CLI_FAILED, NULL, &err);
	code = load_base(s);
	if (!code)
		code = load_content(s);
	if (!code)
		code = load_snapshot(s);
	if (!code)
		code = load_image(s);
	if (ctrd_lease_delete(s->c, &err) < 0) {
		fprintf(stderr, "cdimg load: warning: %s (it expires within an hour)\n", err.why);
	}
	if (!code && !s->a->silent)
		load_report(s, now_s() - t0);
	return code;
}

static int load_parse(struct load_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"name", required_argument, 0, 'N'},    {"namespace", required_argument, 0, 'n'},
	    {"address", required_argument, 0, 'a'}, {"snapshotter", required_argument, 0, 'S'},
	    {"json", no_argument, 0, 'J'},          {"quiet", no_argument, 0, 'q'},
	    {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "n:a:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'N':
			a->name = optarg;
			break;
		case 'n':
			a->ns = optarg;
			break;
		case 'a':
			a->address = optarg;
			break;
		case 'S':
			a->snapshotter = optarg;
			break;
		case 'J':
			a->json = a->quiet = 1;
			break;
		case 'q':
			a->quiet = 1;
			break;
		case 'h':
			fputs(load_help, stdout);
			return -1;
		default:
			fputs(load_help, stderr);
			return CLI_USAGE;
		}
	}
	if (optind + 1 != argc || !a->ns[0] || !a->snapshotter[0] || (a->name && !a->name[0])) {
		fputs(load_help, stderr);
		return CLI_USAGE;
	}
	a->path = argv[optind];
	return 0;
}

void load_args_init(struct load_args *a)
{
	const char *env_ns = getenv("CONTAINERD_NAMESPACE");
	const char *env_addr = getenv("CONTAINERD_ADDRESS");
	*a = (struct load_args){
	    .ns = env_ns && env_ns[0] ? env_ns : CTRD_DEFAULT_NAMESPACE,
	    .address = env_addr && env_addr[0] ? env_addr : CTRD_DEFAULT_ADDRESS,
	    .snapshotter = "di3fs",
	};
}

int load_cdimg(const struct load_args *a)
{
	struct load_state s = {.a = a};
	cli_progress_init(&s.p, a->quiet);
	int code = load_run(&s);
	ctrd_close(s.c);
	cdimg_free(s.cd);
	free(s.base_name);
	return code;
}

int cmd_load(int argc, char **argv)
{
	struct load_args a;
	load_args_init(&a);
	int code = load_parse(&a, argc, argv);
	return code ? (code < 0 ? CLI_OK : code) : load_cdimg(&a);
}
