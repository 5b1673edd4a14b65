/* cdimg push DELTA.cdimg docker://HOST/REPO: a delta into a registry as an
 * artifact referring to its target image (transport/di3fs/push.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli.h"
#include "di3fs/push.h"

static const char push_help[] =
    "usage: cdimg push [OPTIONS] DELTA.cdimg docker://HOST[:PORT]/REPO\n"
    "\n"
    "Puts a .cdimg delta into the repository of its target image as an OCI 1.1\n"
    "artifact (artifactType application/vnd.di3fs.delta.v1): an image manifest whose\n"
    "config is the empty descriptor, whose layers are the .dimg and the layer\n"
    "recipes (when the .cdimg has them), whose subject is the target image's\n"
    "manifest, and whose annotations name the base (config digest, tree id) and the\n"
    "target (manifest and config digests, tree id, name, platform). It is found as a\n"
    "referrer of the target: through the registry's referrers API where it has one,\n"
    "else through the referrers tag schema, an image index tagged sha256-<hex of the\n"
    "target manifest's digest> listing the deltas, which push reads, extends and\n"
    "writes back (read again after writing, and written again while a concurrent\n"
    "pusher's write lost the entry). Pushing the same delta again changes nothing.\n"
    "\n"
    "The target image must be in REPO first: a .cdimg does not hold its layers.\n"
    "Copy it there with `cdimg copy IMAGE docker://HOST/REPO:TAG`. When REPO has\n"
    "the target's layers but not its manifest, push puts the target's config and\n"
    "manifest (the .cdimg carries both) by digest; when it lacks a layer, push\n"
    "fails (exit 1) naming the target's manifest digest and the layer.\n"
    "\n"
    "options:\n"
    "      --creds USER:PASS      registry credentials (else docker's and skopeo's files)\n"
    "      --authfile FILE        registry credentials file\n"
    "      --tls-verify=false     do not check the registry's TLS certificate (and use\n"
    "                             plain http where https fails)\n"
    "      --cert-dir DIR         registry CA certificates and client keys\n"
    "      --json                 a JSON summary on stdout\n"
    "  -q, --quiet                no progress, no summary\n"
    "  -h, --help                 this text\n"
    "\n"
    "Progress and a summary show on a terminal only (stderr); otherwise nothing\n"
    "but errors, and --json's object on stdout.\n"
    "exit codes: 0 pushed, 1 failed (a .dimg given, the target image not in REPO,\n"
    "a registry error), 2 usage, 3 a damaged or unknown .cdimg, or a referrers tag\n"
    "in REPO that holds no image index\n";

struct push_args {
	struct cli_args c;
	struct xport_opts o;
};

static int push_option(void *ctx, int c, const char *arg)
{
	struct push_args *a = ctx;
	return cli_registry_option(&a->c, &a->o, c, arg);
}

static void push_json(const struct xpush_result *r)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return;
	json_object_object_add(o, "registry", json_object_new_string(r->host));
	json_object_object_add(o, "repository", json_object_new_string(r->repo));
	json_object_object_add(o, "digest", json_object_new_string(r->manifest_digest));
	json_object_object_add(o, "size", json_object_new_uint64(r->manifest_size));
	json_object_object_add(o, "subject", json_object_new_string(r->subject_digest));
	json_object_object_add(o, "target_pushed", json_object_new_boolean(r->target_pushed));
	json_object_object_add(o, "referrers",
	                       json_object_new_string(r->referrers_api ? "api" : "tag"));
	json_object_object_add(o, "tag", r->tag[0] ? json_object_new_string(r->tag) : NULL);
	json_object_object_add(o, "tag_writes", json_object_new_int((int)r->tag_writes));
	json_object_object_add(o, "entries", json_object_new_int((int)r->entries));
	json_object_object_add(o, "added", r->added < 0 ? NULL : json_object_new_boolean(r->added));
	json_object_object_add(o, "blobs_pushed", json_object_new_int((int)r->blobs_pushed));
	json_object_object_add(o, "blobs_existing", json_object_new_int((int)r->blobs_existing));
	json_object_object_add(o, "bytes_pushed", json_object_new_uint64(r->bytes_pushed));
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static void push_summary(const struct xpush_result *r)
{
	char h[32];
	fprintf(stderr, "%s/%s@%s: delta for %s%s (%u blob%s sent, %s; %u existing)\n", r->host,
	        r->repo, r->manifest_digest, r->subject_digest,
	        r->target_pushed ? ", whose manifest was put first" : "", r->blobs_pushed,
	        r->blobs_pushed == 1 ? "" : "s", cli_human(r->bytes_pushed, h, sizeof(h)),
	        r->blobs_existing);
	if (r->referrers_api)
		fprintf(stderr, "referrers API: %u delta%s for the target\n", r->entries,
		        r->entries == 1 ? "" : "s");
	else
		fprintf(stderr, "referrers tag %s: %u entr%s%s\n", r->tag, r->entries,
		        r->entries == 1 ? "y" : "ies",
		        r->added > 0 ? "" : " (it was listed already)");
}

int cmd_push(int argc, char **argv)
{
	static const struct option opts[] = {
	    CLI_OPTION_JSON, CLI_OPTION_QUIET, CLI_OPTION_HELP, CLI_OPTIONS_REGISTRY, {0, 0, 0, 0}};
	static const char *const names[] = {
	    "DELTA (the .cdimg to push)",
	    "DST (docker://HOST/REPO, the target image's repository)"};
	struct push_args a = {.c = {.cmd = "push", .help = push_help}};
	struct xport_name dst = {0};
	struct xpush_result res;
	struct cli_progress pr;
	struct dimg_err err = {0};
	int r;

	if ((r = cli_getopt(&a.c, argc, argv, ":qh", opts, push_option, &a)) ||
	    (r = cli_positionals(&a.c, argc, argv, optind, 2, 2, names, 0)))
		return r < 0 ? CLI_OK : r;
	const char *delta = argv[optind], *to = argv[optind + 1];
	/* docker://HOST[:PORT]/REPO: no ':' or '@' after the first '/' (the
	 * parsed name has :latest when none is given) */
	const char *path = strncmp(to, "docker://", 9) == 0 ? strchr(to + 9, '/') : NULL;
	r = xport_name_parse(&dst, to, &err);
	if (r == 0 && (dst.kind != XPORT_DOCKER || !path || strpbrk(path, ":@"))) {
		xport_name_clear(&dst);
		fprintf(stderr,
		        "cdimg push: %s: not docker://HOST/REPO (a registry repository, no tag or "
		        "digest: the delta goes by digest, found through its target)\n",
		        to);
		return CLI_USAGE;
	}
	if (r < 0) {
		fprintf(stderr, "cdimg push: %s: %s\n", to, err.why[0] ? err.why : strerror(-r));
		return r == -ENOMEM ? CLI_FAILED : CLI_USAGE;
	}
	cli_progress_init(&pr, a.c.quiet || a.c.json);
	if (pr.enabled) {
		a.o.progress = cli_progress_cb;
		a.o.pctx = &pr;
	}
	r = xpush_delta(delta, &dst, &a.o, &res, &err);
	cli_progress_done(&pr);
	xport_name_clear(&dst);
	if (r < 0) {
		fprintf(stderr, "cdimg push: ");
		if (err.what[0])
			fprintf(stderr, "%s: ", err.what);
		fprintf(stderr, "%s\n", err.why[0] ? err.why : strerror(-r));
		return cli_exit_code(r);
	}
	if (a.c.json)
		push_json(&res);
	else if (pr.enabled)
		push_summary(&res);
	return CLI_OK;
}
