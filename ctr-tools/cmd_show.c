/* cdimg show X.dimg|X.cdimg: what a delta holds, which images it joins and
 * what it costs. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "cli.h"
#include "dimg/dimg.h"
#include "dimg/image.h"

static const char show_help[] =
    "usage: cdimg show [OPTIONS] X.dimg|X.cdimg\n"
    "\n"
    "Summarises a delta: base and target tree ids, what it changes, files by\n"
    "payload kind with their bytes, the biggest blobs. For a .cdimg also the\n"
    "images it joins: the base's config digest, the target's name, config and\n"
    "manifest digests (every blob's digest is verified).\n"
    "\n"
    "What it changes, counted by path as cdimg diff counts it: entries kept\n"
    "(unchanged), changed, added, renamed (a file moved: its content at a new\n"
    "path, gone from the old one) and removed. The index alone tells kept\n"
    "entries, stored ones (changed, added or renamed) and dropped base entries\n"
    "(changed, removed or renamed); --base tells them all apart.\n"
    "\n"
    "options:\n"
    "      --json        print the full index as JSON (explicitly stored entries;\n"
    "                    with --base, every entry of the complete target tree)\n"
    "      --base OLD    resolve against this base image or tree (checks it is the\n"
    "                    right one)\n"
    "  -n, --top N       how many of the biggest blobs to list (default 10)\n"
    "  -h, --help        this text\n";

static const char *type_name[] = {"?", "dir", "reg", "symlink", "hardlink", "chr", "blk", "fifo"};

static struct json_object *hex_json(const uint8_t *p, size_t n)
{
	char *s = malloc(2 * n + 1);
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; s && i < n; i++) {
		s[2 * i] = hx[p[i] >> 4];
		s[2 * i + 1] = hx[p[i] & 15];
	}
	if (s)
		s[2 * n] = '\0';
	struct json_object *o = json_object_new_string(s ? s : "");
	free(s);
	return o;
}

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = s[0] < 0x80         ? 1
	           : (s[0] >> 5) == 6  ? 2
	           : (s[0] >> 4) == 14 ? 3
	           : (s[0] >> 3) == 30 ? 4
	                               : 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* JSON strings are UTF-8: a name that is not gets U+FFFD for each bad byte
 * under key, and its exact bytes in hex under key_hex. */
static void add_name(struct json_object *o, const char *key, const char *s)
{
	size_t n = strlen(s), bad = 0, k;
	char *fixed = malloc(3 * n + 1), *w = fixed, hk[32];
	if (!fixed)
		return;
	for (const unsigned char *p = (const unsigned char *)s; *p; p += k) {
		if ((k = utf8_len(p)) == 0) {
			memcpy(w, "\xef\xbf\xbd", 3);
			w += 3;
			k = 1;
			bad = 1;
		} else {
			memcpy(w, p, k);
			w += k;
		}
	}
	*w = '\0';
	json_object_object_add(o, key, json_object_new_string(fixed));
	free(fixed);
	if (bad) {
		snprintf(hk, sizeof(hk), "%s_hex", key);
		json_object_object_add(o, hk, hex_json((const uint8_t *)s, n));
	}
}

static struct json_object *entry_json(const struct dimg_entry *e)
{
	struct json_object *o = json_object_new_object();
	char mode[16];
	snprintf(mode, sizeof(mode), "%04o", e->mode);
	add_name(o, "path", e->path);
	json_object_object_add(o, "type",
	                       json_object_new_string(type_name[e->type <= 7 ? e->type : 0]));
	json_object_object_add(o, "mode", json_object_new_string(mode));
	json_object_object_add(o, "uid", json_object_new_int64(e->uid));
	json_object_object_add(o, "gid", json_object_new_int64(e->gid));
	json_object_object_add(o, "mtime", json_object_new_int64(e->mtime_sec));
	json_object_object_add(o, "mtime_nsec", json_object_new_int64(e->mtime_nsec));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)e->size));
	if (e->type == DIMG_TYPE_CHR || e->type == DIMG_TYPE_BLK) {
		json_object_object_add(o, "major", json_object_new_int64(e->rdev_major));
		json_object_object_add(o, "minor", json_object_new_int64(e->rdev_minor));
	}
	if (e->link)
		add_name(o, "link", e->link);
	if (e->nxattrs) {
		struct json_object *x = json_object_new_object();
		for (uint32_t i = 0; i < e->nxattrs; i++)
			json_object_object_add(
			    x, e->xattrs[i].name,
			    hex_json(e->xattrs[i].value, e->xattrs[i].value_len));
		json_object_object_add(o, "xattrs", x);
	}
	if (e->type == DIMG_TYPE_REG) {
		static const uint8_t zero[32];
		if (memcmp(e->sha256, zero, 32) != 0)
			json_object_object_add(o, "sha256", hex_json(e->sha256, 32));
		json_object_object_add(o, "payload",
		                       json_object_new_string(cli_payload_name[e->payload]));
		if (e->payload == DIMG_PAYLOAD_PATCH)
			json_object_object_add(o, "codec",
			                       json_object_new_string(cli_codec_name[e->codec]));
		if (e->flags & DIMG_ENTRY_ZDICT)
			json_object_object_add(o, "dictionary", json_object_new_boolean(1));
		if (e->payload == DIMG_PAYLOAD_SAME || e->payload == DIMG_PAYLOAD_PATCH)
			add_name(o, "src", e->src ? e->src : e->path);
		if (e->blob_len) {
			json_object_object_add(o, "blob_offset",
			                       json_object_new_int64((int64_t)e->blob_off));
			json_object_object_add(o, "blob_size",
			                       json_object_new_int64((int64_t)e->blob_len));
		}
	}
	return o;
}

static struct json_object *cdimg_json(const struct cdimg_info *ci)
{
	struct json_object *o = json_object_new_object(), *b = json_object_new_object();
	struct json_object *t = json_object_new_object();
	json_object_object_add(o, "size", json_object_new_int64((int64_t)ci->file_size));
	json_object_object_add(o, "manifest_digest", json_object_new_string(ci->manifest_digest));
	json_object_object_add(o, "dimg_digest", json_object_new_string(ci->dimg_digest));
	json_object_object_add(o, "dimg_offset", json_object_new_int64((int64_t)ci->dimg_offset));
	json_object_object_add(b, "config_digest", json_object_new_string(ci->base_config_digest));
	json_object_object_add(b, "tree", hex_json(ci->base_tree, 32));
	json_object_object_add(o, "base", b);
	if (ci->target_ref)
		json_object_object_add(t, "ref", json_object_new_string(ci->target_ref));
	json_object_object_add(t, "config_digest",
	                       json_object_new_string(ci->target_config_digest));
	json_object_object_add(t, "manifest_digest",
	                       json_object_new_string(ci->target_manifest_digest));
	json_object_object_add(t, "manifest_media_type",
	                       json_object_new_string(ci->target_manifest_media_type));
	json_object_object_add(t, "tree", hex_json(ci->target_tree, 32));
	json_object_object_add(o, "target", t);
	if (ci->layers) {
		struct json_object *l = json_object_new_object();
		json_object_object_add(l, "digest", json_object_new_string(ci->layers_digest));
		json_object_object_add(l, "size", json_object_new_int64((int64_t)ci->layers_size));
		json_object_object_add(o, "layer_recipes", l);
	}
	return o;
}

static void show_json(const struct dimg_reader *rd, const struct cdimg_info *ci,
                      const struct dimg_tree *t, int resolved, const struct dimg_counts *counts)
{
	struct dimg_index_stats st;
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	dimg_reader_stats(rd, &st);
	json_object_object_add(o, "container", json_object_new_string(ci ? "cdimg" : "dimg"));
	if (ci)
		json_object_object_add(o, "cdimg", cdimg_json(ci));
	json_object_object_add(o, "format_version", json_object_new_int(DIMG_FORMAT_VERSION));
	json_object_object_add(o, "base_tree", hex_json(dimg_reader_base_id(rd), 32));
	json_object_object_add(o, "target_tree", hex_json(dimg_reader_target_id(rd), 32));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)st.file_len));
	json_object_object_add(o, "blobs_size", json_object_new_int64((int64_t)st.blobs_len));
	json_object_object_add(o, "index_size", json_object_new_int64((int64_t)st.index_len));
	json_object_object_add(o, "dictionary_size", json_object_new_int64((int64_t)st.dict_len));
	cli_counts_json(o, counts);
	json_object_object_add(o, "resolved", json_object_new_boolean(resolved));
	for (size_t i = 0; i < t->n; i++)
		json_object_array_add(a, entry_json(&t->v[i]));
	json_object_object_add(o, resolved ? "tree" : "stored_entries", a);
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	                                           JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static int cmp_blob_desc(const void *a, const void *b)
{
	const struct dimg_entry *x = *(const struct dimg_entry *const *)a;
	const struct dimg_entry *y = *(const struct dimg_entry *const *)b;
	if (x->blob_len != y->blob_len)
		return x->blob_len < y->blob_len ? 1 : -1;
	return strcmp(x->path, y->path);
}

static void show_biggest(const struct dimg_tree *t, unsigned top)
{
	const struct dimg_entry **v = calloc(t->n ? t->n : 1, sizeof(*v));
	size_t n = 0;
	char h1[32], h2[32];
	if (!v)
		return;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].blob_len)
			v[n++] = &t->v[i];
	qsort(v, n, sizeof(*v), cmp_blob_desc);
	if (n)
		printf("biggest blobs:\n");
	for (size_t i = 0; i < n && i < top; i++)
		printf("  %10s  %-5s %-7s from %10s  /%s\n",
		       cli_human(v[i]->blob_len, h1, sizeof(h1)), cli_payload_name[v[i]->payload],
		       v[i]->payload == DIMG_PAYLOAD_PATCH ? cli_codec_name[v[i]->codec] : "",
		       cli_human(v[i]->size, h2, sizeof(h2)), v[i]->path);
	free(v);
}

static void show_cdimg_head(const char *path, const struct cdimg_info *ci)
{
	char id[65], h[32], h2[32];
	printf("%s: di3fs delta as an OCI artifact (.cdimg), %s; .dimg format %u, %s\n", path,
	       cli_human(ci->file_size, h, sizeof(h)), ci->dimg_version,
	       cli_human(ci->dimg_size, h2, sizeof(h2)));
	dimg_hex32(ci->base_tree, id);
	printf("  base:    config   %s\n           tree     %s\n", ci->base_config_digest, id);
	dimg_hex32(ci->target_tree, id);
	printf("  target:  ref      %s\n", ci->target_ref ? ci->target_ref : "(none)");
	printf("           config   %s\n           manifest %s\n", ci->target_config_digest,
	       ci->target_manifest_digest);
	printf("           tree     %s\n", id);
	if (ci->layers)
		printf("           layers   recipes for the original layer tars, %s\n",
		       cli_human(ci->layers_size, h, sizeof(h)));
	else
		printf("           layers   no recipes: apply gives back one squashed layer\n");
}

static void show_text(const char *path, const struct dimg_reader *rd, const struct cdimg_info *ci,
                      const struct dimg_counts *counts, unsigned top)
{
	struct dimg_index_stats st;
	char id[65], h[32];
	dimg_reader_stats(rd, &st);
	if (ci) {
		show_cdimg_head(path, ci);
	} else {
		printf("%s: di3fs delta, format %u, %s\n", path, DIMG_FORMAT_VERSION,
		       cli_human(st.file_len, h, sizeof(h)));
		dimg_hex32(dimg_reader_base_id(rd), id);
		printf("  base tree:   %s\n", id);
		dimg_hex32(dimg_reader_target_id(rd), id);
		printf("  target tree: %s\n", id);
	}
	cli_counts_print(counts);
	printf("  index: %s", cli_human(st.index_len, h, sizeof(h)));
	printf(" (%s raw); blobs: %s\n", cli_human(st.index_raw_len, h, sizeof(h)),
	       cli_human(st.blobs_len, id, sizeof(id)));
	if (st.dict_len)
		printf("  dictionary: %s, used by %" PRIu64 " full files\n",
		       cli_human(st.dict_len, h, sizeof(h)), counts->dict_files);
	show_biggest(dimg_reader_explicit(rd), top);
}

struct show_args {
	struct cli_args c;
	const char *path, *base;
	unsigned top;
};

static int run_show(const struct show_args *a)
{
	struct cdimg *c = NULL;
	struct dimg_reader *rd = NULL;
	struct dimg_image *base = NULL;
	struct dimg_tree *full = NULL;
	struct dimg_err err = {0};
	int code = 0, r = cdimg_open_delta(a->path, &c, &rd, &err);
	if (r < 0)
		return cli_report(r, &err, a->path);
	const struct cdimg_info *ci = c ? cdimg_get_info(c) : NULL;
	if (a->base) {
		if ((code = cli_open_image(&base, a->base, NULL, a->c.json)))
			goto out;
		struct apply_src s = {a->path, rd, ci, a->base, base};
		if ((r = apply_resolve(&s, &full, &err)) < 0) {
			code = cli_report(r, &err, a->path);
			goto out;
		}
	}
	struct dimg_counts counts;
	if (full && (r = dimg_counts_trees(&counts, base->tree, full)) < 0) {
		code = cli_fail(r, NULL, NULL);
		goto out;
	}
	if (!full)
		dimg_counts_index(&counts, rd);
	if (a->c.json)
		show_json(rd, ci, full ? full : dimg_reader_explicit(rd), full != NULL, &counts);
	else
		show_text(a->path, rd, ci, &counts, a->top);
out:
	dimg_image_free(base);
	dimg_tree_free(full);
	dimg_reader_free(rd);
	cdimg_free(c);
	return code;
}

static int show_option(void *ctx, int c, const char *arg)
{
	struct show_args *a = ctx;
	if (c == 'b')
		a->base = arg;
	else if (c == 'n')
		return cli_opt_uint(&a->c, "--top", arg, 0, 1000000, &a->top);
	else
		return -2;
	return 0;
}

static int parse(int argc, char **argv, struct show_args *a)
{
	static const struct option opts[] = {CLI_OPTION_JSON,
	                                     CLI_OPTION_HELP,
	                                     {"base", required_argument, 0, 'b'},
	                                     {"top", required_argument, 0, 'n'},
	                                     {0, 0, 0, 0}};
	static const char *const names[] = {"DELTA (the .cdimg or .dimg to show)"};
	int r;
	a->c = (struct cli_args){.cmd = "show", .help = show_help};
	a->top = 10;
	if ((r = cli_getopt(&a->c, argc, argv, ":n:h", opts, show_option, a)) ||
	    (r = cli_positionals(&a->c, argc, argv, optind, 1, 1, names, 0)))
		return r;
	a->path = argv[optind];
	return 0;
}

int cmd_show(int argc, char **argv)
{
	struct show_args a = {0};
	int r = parse(argc, argv, &a);
	if (r == -1)
		return CLI_OK;
	return r ? r : run_show(&a);
}
