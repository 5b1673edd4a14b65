/* Image layouts: OCI image layout (directory or tar) and `docker save`
 * (tar or unpacked), read without extracting: index.json / manifest.json,
 * nested indexes, --ref and platform selection, verified JSON blobs, and
 * each layer streamed once into the squash. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cas-internal.h"
#include "dimg/hash.h"
#include "dimg/oci.h"
#include "ocilayout-internal.h"
#include "tree-internal.h"

#define OCI_INDEX_DEPTH 4

/* ---- the chosen image, being built ---- */

struct oci_layer {
	char *member; /* file of the layout holding the blob */
	char *label;  /* names the layer in messages */
	struct dimg_layer_info li;
};

struct oci_ctx {
	struct oci_src src;
	const struct dimg_image_opts *o;
	struct dimg_err *err;
	struct dimg_image *img;
	struct oci_layer *layers;
	size_t nlayers;
	struct json_object *config; /* parsed img->config */
	int docker;                 /* picked through manifest.json */
};

static int oci_desc_check(struct oci_ctx *c, struct json_object *o, const char *what,
                          struct oci_desc *d)
{
	int r = oci_desc_parse(d, o);
	if (r < 0)
		dimg_err_set(c->err, 0, NULL, "%s: bad descriptor (%s)", what,
		             r == -ENOTSUP ? "unsupported digest algorithm" : "digest or size");
	return r;
}

/* Reads a blob named by a descriptor, checking its size and digest. */
static int oci_read_blob(struct oci_ctx *c, const struct oci_desc *d, const char *what,
                         uint8_t **out, size_t *len)
{
	char name[OCI_BLOB_PATH_LEN], ds[OCI_DIGEST_LEN];
	uint8_t got[32];
	oci_blob_path(name, d->digest);
	oci_digest_str(ds, d->digest);
	if (d->size > OCI_JSON_MAX) {
		dimg_err_set(c->err, 0, NULL, "%s %s: %llu bytes is too large", what, ds,
		             (unsigned long long)d->size);
		return -EFBIG;
	}
	int r = oci_read_all(&c->src, name, OCI_JSON_MAX, out, len);
	if (r < 0) {
		dimg_err_set(c->err, 0, NULL, "%s %s: %s", what, ds, strerror(-r));
		return r == -ENOENT || r == -ENOMEM ? r : -EBADMSG;
	}
	r = dimg_sha256_buf(*out, *len, got);
	if (r == 0 && (*len != d->size || memcmp(got, d->digest, 32) != 0)) {
		dimg_err_set(c->err, 0, NULL, "%s %s: content does not match its digest or size",
		             what, ds);
		r = -EBADMSG;
	}
	if (r < 0) {
		free(*out);
		*out = NULL;
	}
	return r;
}

static int oci_read_json_blob(struct oci_ctx *c, const struct oci_desc *d, const char *what,
                              uint8_t **raw, size_t *len, struct json_object **out)
{
	int r = oci_read_blob(c, d, what, raw, len);
	if (r == 0 && (r = oci_json_parse(out, *raw, *len)) < 0) {
		dimg_err_set(c->err, 0, NULL, "%s: not valid JSON", what);
		free(*raw);
		*raw = NULL;
	}
	return r;
}

/* ---- references and platforms ---- */

/* ---- OCI index: candidates, selection ---- */

struct oci_cand {
	struct oci_desc d;
	const char *name1, *name2; /* ref.name and containerd image name, maybe inherited */
	struct oci_platform plat;
	int has_plat;
};

struct oci_cands {
	struct oci_cand *v;
	size_t n, cap;
	struct json_object **docs; /* nested indexes, kept for the borrowed strings */
	size_t ndocs, capdocs;
};

static void oci_cands_free(struct oci_cands *cs)
{
	for (size_t i = 0; i < cs->ndocs; i++)
		json_object_put(cs->docs[i]);
	free(cs->docs);
	free(cs->v);
}

static int oci_grow(void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 8;
	void *p = realloc(*v, nc * size);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = nc;
	return 0;
}

static int oci_collect(struct oci_ctx *c, struct oci_cands *cs, struct json_object *index,
                       const char *in1, const char *in2, int depth);

static int oci_nested(struct oci_ctx *c, struct oci_cands *cs, const struct oci_desc *d,
                      const char *n1, const char *n2, int depth)
{
	uint8_t *raw;
	size_t len;
	struct json_object *doc;
	if (depth >= OCI_INDEX_DEPTH) {
		dimg_err_set(c->err, 0, NULL, "image indexes nested more than %d deep",
		             OCI_INDEX_DEPTH);
		return -ELOOP;
	}
	int r = oci_grow((void **)&cs->docs, &cs->capdocs, cs->ndocs, sizeof(*cs->docs));
	if (r == 0)
		r = oci_read_json_blob(c, d, "image index", &raw, &len, &doc);
	if (r < 0)
		return r;
	free(raw);
	cs->docs[cs->ndocs++] = doc;
	return oci_collect(c, cs, doc, n1, n2, depth + 1);
}

static int oci_collect_one(struct oci_ctx *c, struct oci_cands *cs, struct json_object *item,
                           const char *in1, const char *in2, int depth)
{
	struct oci_cand k = {0};
	int r = oci_desc_check(c, item, "index entry", &k.d);
	if (r < 0)
		return r;
	k.name1 = oci_jannot(item, OCI_ANNOT_REF_NAME);
	k.name2 = oci_jannot(item, OCI_ANNOT_CONTAINERD_NAME);
	if (!k.name1 && !k.name2) {
		k.name1 = in1;
		k.name2 = in2;
	}
	if (oci_mt_is_index(k.d.media_type))
		return oci_nested(c, cs, &k.d, k.name1, k.name2, depth);
	/* Attestations and other artifacts are not images to run. */
	if (!oci_mt_is_manifest(k.d.media_type) || oci_jannot(item, "vnd.docker.reference.type"))
		return 0;
	struct json_object *plat = oci_jobj(item, "platform");
	if (plat) {
		oci_platform_from_json(&k.plat, plat);
		k.has_plat = 1;
	}
	if ((r = oci_grow((void **)&cs->v, &cs->cap, cs->n, sizeof(*cs->v))) < 0)
		return r;
	cs->v[cs->n++] = k;
	return 0;
}

static int oci_collect(struct oci_ctx *c, struct oci_cands *cs, struct json_object *index,
                       const char *in1, const char *in2, int depth)
{
	struct json_object *arr = oci_jarr(index, "manifests");
	if (!arr) {
		dimg_err_set(c->err, 0, NULL, "image index without a manifests list");
		return -EBADMSG;
	}
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *item = json_object_array_get_idx(arr, i);
		int r = json_object_is_type(item, json_type_object)
		            ? oci_collect_one(c, cs, item, in1, in2, depth)
		            : -EBADMSG;
		if (r == -EBADMSG)
			dimg_err_set(c->err, 0, NULL, "image index: bad entry %zu", i);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Reads a manifest and its config (both verified). */
static int oci_read_manifest_config(struct oci_ctx *c, const struct oci_desc *d, uint8_t **mraw,
                                    size_t *mlen, struct json_object **man, uint8_t **craw,
                                    size_t *clen, struct json_object **cfg)
{
	struct oci_desc cd;
	*craw = NULL;
	*cfg = NULL;
	int r = oci_read_json_blob(c, d, "manifest", mraw, mlen, man);
	if (r < 0)
		return r;
	r = oci_desc_check(c, oci_jobj(*man, "config"), "manifest config", &cd);
	if (r == 0 && !(cd.media_type && (strcmp(cd.media_type, OCI_MT_CONFIG) == 0 ||
	                                  strcmp(cd.media_type, DOCKER_MT_CONFIG) == 0))) {
		dimg_err_set(c->err, 0, NULL, "not a container image: config media type %s",
		             cd.media_type ? cd.media_type : "(none)");
		r = -ENOTSUP;
	}
	if (r == 0)
		r = oci_read_json_blob(c, &cd, "config", craw, clen, cfg);
	if (r < 0) {
		json_object_put(*man);
		free(*mraw);
		*man = NULL;
		*mraw = NULL;
	}
	return r;
}

/* A candidate without a platform in its descriptor: ask its config. */
static int oci_cand_platform(struct oci_ctx *c, struct oci_cand *k)
{
	uint8_t *mraw, *craw;
	size_t mlen, clen;
	struct json_object *man, *cfg;
	if (k->has_plat)
		return 0;
	int r = oci_read_manifest_config(c, &k->d, &mraw, &mlen, &man, &craw, &clen, &cfg);
	if (r < 0)
		return r;
	oci_platform_from_json(&k->plat, cfg);
	k->has_plat = 1;
	json_object_put(man);
	json_object_put(cfg);
	free(mraw);
	free(craw);
	return 0;
}

static void oci_keep_if(struct oci_cands *cs, const char *ref)
{
	size_t k = 0;
	for (size_t i = 0; i < cs->n; i++)
		if (oci_ref_match(cs->v[i].name1, ref) || oci_ref_match(cs->v[i].name2, ref))
			cs->v[k++] = cs->v[i];
	cs->n = k;
}

static int oci_same_digest(const struct oci_cands *cs)
{
	for (size_t i = 1; i < cs->n; i++)
		if (memcmp(cs->v[i].d.digest, cs->v[0].d.digest, 32) != 0)
			return 0;
	return cs->n > 0;
}

static int oci_keep_platform(struct oci_ctx *c, struct oci_cands *cs,
                             const struct oci_platform *want)
{
	size_t k = 0;
	for (size_t i = 0; i < cs->n; i++) {
		int r = oci_cand_platform(c, &cs->v[i]);
		if (r < 0)
			return r;
		if (oci_platform_match(want, &cs->v[i].plat))
			cs->v[k++] = cs->v[i];
	}
	cs->n = k;
	return 0;
}

static int oci_want_platform(struct oci_ctx *c, struct oci_platform *want)
{
	if (!c->o->platform) {
		oci_platform_host(want);
		return 0;
	}
	if (oci_platform_parse(want, c->o->platform) < 0) {
		dimg_err_set(c->err, 0, NULL, "bad platform '%s' (want os/arch[/variant])",
		             c->o->platform);
		return -EINVAL;
	}
	return 0;
}

/* Narrows the candidates to one: by ref, then by platform (the default
 * platform only breaks ties; a single image is taken whatever its arch,
 * since deltas are often built for other machines). */
static int oci_select(struct oci_ctx *c, struct oci_cands *cs, int docker_fallback)
{
	struct oci_platform want;
	if (c->o->ref)
		oci_keep_if(cs, c->o->ref);
	if (cs->n == 0 && docker_fallback)
		return 1; /* quietly: manifest.json may know the name */
	if (cs->n == 0) {
		dimg_err_set(c->err, 0, NULL, "no image %s%s in the index",
		             c->o->ref ? "named " : "", c->o->ref ? c->o->ref : "");
		return -ENOENT;
	}
	int r = oci_want_platform(c, &want);
	if (r < 0 || (oci_same_digest(cs) && !c->o->platform))
		return r;
	if ((r = oci_keep_platform(c, cs, &want)) < 0)
		return r;
	if (cs->n == 0) {
		dimg_err_set(c->err, 0, NULL, "no image for platform %s/%s%s%s", want.os, want.arch,
		             want.variant[0] ? "/" : "", want.variant);
		return -ENOENT;
	}
	if (!oci_same_digest(cs)) {
		dimg_err_set(c->err, 0, NULL, "several images match; choose one with a ref");
		return -EINVAL;
	}
	return 0;
}

/* ---- the chosen manifest ---- */

static int oci_layers_alloc(struct oci_ctx *c, size_t n)
{
	c->layers = calloc(n ? n : 1, sizeof(*c->layers));
	if (!c->layers)
		return -ENOMEM;
	c->nlayers = n;
	return 0;
}

static int oci_manifest_layers(struct oci_ctx *c, struct json_object *man)
{
	struct json_object *arr = oci_jarr(man, "layers");
	char ds[72];
	if (!arr) {
		dimg_err_set(c->err, 0, NULL, "manifest without a layers list");
		return -EBADMSG;
	}
	int r = oci_layers_alloc(c, json_object_array_length(arr));
	for (size_t i = 0; r == 0 && i < c->nlayers; i++) {
		struct oci_layer *l = &c->layers[i];
		struct oci_desc d;
		r = oci_desc_check(c, json_object_array_get_idx(arr, i), "manifest layer", &d);
		if (r == 0 && oci_mt_layer_compression(d.media_type) < 0) {
			dimg_err_set(c->err, 0, NULL, "layer %zu: unsupported media type %s", i,
			             d.media_type ? d.media_type : "(none)");
			r = -ENOTSUP;
		}
		if (r < 0)
			break;
		oci_digest_str(ds, d.digest);
		l->member = malloc(80);
		l->label = strdup(ds);
		if (!l->member || !l->label)
			return -ENOMEM;
		oci_blob_path(l->member, d.digest);
		memcpy(l->li.digest, d.digest, 32);
		l->li.has_digest = 1;
		l->li.size = d.size;
	}
	return r;
}

static int oci_diff_ids(struct oci_ctx *c)
{
	struct json_object *rootfs = oci_jobj(c->config, "rootfs");
	struct json_object *ids = oci_jarr(rootfs, "diff_ids");
	if (!ids || json_object_array_length(ids) != c->nlayers) {
		dimg_err_set(c->err, 0, NULL,
		             "config rootfs.diff_ids missing or not one per layer (%zu layers)",
		             c->nlayers);
		return -EBADMSG;
	}
	for (size_t i = 0; i < c->nlayers; i++) {
		struct json_object *v = json_object_array_get_idx(ids, i);
		const char *s =
		    json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
		int r = oci_digest_parse(c->layers[i].li.diff_id, s);
		if (r < 0) {
			dimg_err_set(c->err, 0, NULL, "config diff_id %zu is not a sha256 digest",
			             i);
			return r;
		}
		c->layers[i].li.has_diff_id = 1;
	}
	return 0;
}

static int oci_load_manifest(struct oci_ctx *c, const struct oci_cand *k)
{
	struct dimg_image *img = c->img;
	struct json_object *man;
	int r = oci_read_manifest_config(c, &k->d, &img->manifest, &img->manifest_len, &man,
	                                 &img->config, &img->config_len, &c->config);
	if (r < 0)
		return r;
	const char *mt = oci_jstr(man, "mediaType");
	mt = mt ? mt : k->d.media_type;
	oci_digest_str(img->manifest_digest, k->d.digest);
	struct oci_desc cd;
	r = oci_desc_check(c, oci_jobj(man, "config"), "config", &cd);
	if (r == 0) {
		oci_digest_str(img->config_digest, cd.digest);
		img->manifest_media_type = strdup(mt);
		const char *name = c->o->ref ? c->o->ref : k->name1 ? k->name1 : k->name2;
		img->ref = name ? strdup(name) : NULL;
		if (!img->manifest_media_type || (name && !img->ref))
			r = -ENOMEM;
	}
	if (r == 0)
		r = oci_manifest_layers(c, man);
	if (r == 0)
		r = oci_diff_ids(c);
	json_object_put(man);
	return r;
}

static int oci_exists(const struct oci_src *s, const char *name)
{
	const struct oci_member *m;
	if (s->dirfd < 0)
		return oci_member_resolve(s, name, &m) == 0;
	return faccessat(s->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* 0: an image was chosen from index.json; 1: no index.json, or no match
 * while manifest.json may have one (no message set). */
static int oci_try_index(struct oci_ctx *c)
{
	uint8_t *raw;
	size_t len;
	struct json_object *index;
	struct oci_cands cs = {0};
	int docker = oci_exists(&c->src, "manifest.json");
	int r = oci_read_all(&c->src, "index.json", OCI_JSON_MAX, &raw, &len);
	if (r == -ENOENT)
		return 1;
	if (r == 0 && (r = oci_json_parse(&index, raw, len)) < 0)
		free(raw);
	if (r < 0) {
		dimg_err_set(c->err, 0, NULL, "index.json: %s",
		             r == -EBADMSG ? "not valid JSON" : strerror(-r));
		return r == -ENOMEM ? r : -EBADMSG;
	}
	free(raw);
	r = oci_collect(c, &cs, index, NULL, NULL, 0);
	if (r == 0)
		r = oci_select(c, &cs, docker);
	if (r == 0)
		r = oci_load_manifest(c, &cs.v[0]);
	oci_cands_free(&cs);
	json_object_put(index);
	return r;
}

static int oci_check_layout_version(struct oci_ctx *c)
{
	uint8_t *raw;
	size_t len;
	struct json_object *o;
	int r = oci_read_all(&c->src, "oci-layout", 65536, &raw, &len);
	if (r == -ENOENT)
		return 0;
	if (r == 0 && (r = oci_json_parse(&o, raw, len)) == 0) {
		const char *v = oci_jstr(o, "imageLayoutVersion");
		r = v && strncmp(v, "1.", 2) == 0 ? 0 : -ENOTSUP;
		json_object_put(o);
	}
	free(raw);
	if (r < 0)
		dimg_err_set(c->err, 0, NULL,
		             "oci-layout: unsupported or unreadable layout version");
	return r;
}

/* ---- docker save: manifest.json ---- */

static const char *oci_jarr_str(struct json_object *arr, size_t i)
{
	struct json_object *v = json_object_array_get_idx(arr, i);
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Without a ref the archive must hold one image; with one, the first
 * entry with a matching RepoTag is taken. */
static int oci_docker_pick(struct oci_ctx *c, struct json_object *arr, struct json_object **out,
                           const char **tag)
{
	size_t n = json_object_array_length(arr);
	*out = NULL;
	*tag = NULL;
	for (size_t i = 0; i < n && !*out; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		struct json_object *tags = oci_jarr(e, "RepoTags");
		size_t nt = tags ? json_object_array_length(tags) : 0;
		if (!c->o->ref && n == 1) {
			*out = e;
			*tag = nt ? oci_jarr_str(tags, 0) : NULL;
		}
		for (size_t j = 0; c->o->ref && j < nt && !*out; j++) {
			if (oci_ref_match(oci_jarr_str(tags, j), c->o->ref)) {
				*out = e;
				*tag = oci_jarr_str(tags, j);
			}
		}
	}
	if (*out && json_object_is_type(*out, json_type_object))
		return 0;
	if (c->o->ref)
		dimg_err_set(c->err, 0, NULL, "no image named %s in the archive", c->o->ref);
	else
		dimg_err_set(c->err, 0, NULL, "the archive holds %zu images; choose one with a ref",
		             n);
	return -ENOENT;
}

static int oci_docker_config(struct oci_ctx *c, const char *path)
{
	struct dimg_image *img = c->img;
	uint8_t d[32];
	char *name;
	int r = oci_norm_name(&name, path);
	if (r == 0)
		r = oci_read_all(&c->src, name, OCI_JSON_MAX, &img->config, &img->config_len);
	if (r == 0 && (r = oci_json_parse(&c->config, img->config, img->config_len)) == 0 &&
	    (r = dimg_sha256_buf(img->config, img->config_len, d)) == 0)
		oci_digest_str(img->config_digest, d);
	if (r < 0)
		dimg_err_set(c->err, 0, NULL, "docker config %s: %s", path ? path : "(none)",
		             r == -EBADMSG ? "unreadable or not JSON" : strerror(-r));
	free(name);
	return r;
}

static int oci_docker_layer(struct oci_layer *l, const char *path)
{
	int r = oci_norm_name(&l->member, path);
	if (r < 0)
		return r;
	l->label = strdup(l->member);
	if (!l->label)
		return -ENOMEM;
	l->li.size = UINT64_MAX; /* the member's size, once opened */
	/* Newer docker save names layers by their digest: check it too. */
	if (strncmp(l->member, "blobs/", 6) == 0) {
		char *d = strdup(l->member + 6);
		if (!d)
			return -ENOMEM;
		if (strlen(d) > 6 && d[6] == '/') /* "sha256/<hex>" */
			d[6] = ':';
		l->li.has_digest = oci_digest_parse(l->li.digest, d) == 0;
		free(d);
	}
	return 0;
}

static int oci_docker_layers(struct oci_ctx *c, struct json_object *entry)
{
	struct json_object *arr = oci_jarr(entry, "Layers");
	int r = oci_layers_alloc(c, arr ? json_object_array_length(arr) : 0);
	for (size_t i = 0; r == 0 && i < c->nlayers; i++) {
		struct json_object *v = json_object_array_get_idx(arr, i);
		const char *p =
		    json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
		r = oci_docker_layer(&c->layers[i], p);
		if (r == -EBADMSG)
			dimg_err_set(c->err, 0, NULL, "manifest.json: bad layer path %zu", i);
	}
	return r;
}

static int oci_docker_platform(struct oci_ctx *c)
{
	struct oci_platform want, have;
	if (!c->o->platform)
		return 0;
	int r = oci_want_platform(c, &want);
	if (r < 0)
		return r;
	oci_platform_from_json(&have, c->config);
	if (oci_platform_match(&want, &have))
		return 0;
	dimg_err_set(c->err, 0, NULL, "the image is for %s/%s, not %s", have.os, have.arch,
	             c->o->platform);
	return -ENOENT;
}

static int oci_load_docker(struct oci_ctx *c)
{
	uint8_t *raw;
	size_t len;
	struct json_object *arr = NULL, *entry;
	const char *tag;
	int r = oci_read_all(&c->src, "manifest.json", OCI_JSON_MAX, &raw, &len);
	if (r == -ENOENT) {
		dimg_err_set(c->err, 0, NULL,
		             "not an OCI image layout or docker save archive "
		             "(no index.json or manifest.json)");
		return -EBADMSG;
	}
	if (r == 0) {
		r = oci_json_parse(&arr, raw, len);
		free(raw);
	}
	if (r == 0 && !json_object_is_type(arr, json_type_array))
		r = -EBADMSG;
	if (r < 0)
		dimg_err_set(c->err, 0, NULL, "manifest.json: %s",
		             r == -EBADMSG ? "not a list" : strerror(-r));
	if (r == 0)
		r = oci_docker_pick(c, arr, &entry, &tag);
	if (r == 0 && tag && !(c->img->ref = strdup(tag)))
		r = -ENOMEM;
	if (r == 0)
		r = oci_docker_config(c, oci_jstr(entry, "Config"));
	if (r == 0)
		r = oci_docker_platform(c);
	if (r == 0)
		r = oci_docker_layers(c, entry);
	if (r == 0)
		r = oci_diff_ids(c);
	c->docker = 1;
	json_object_put(arr);
	return r;
}

static const char *oci_layer_media_type(const char *filter)
{
	if (strcmp(filter, "none") == 0)
		return OCI_MT_LAYER;
	if (strcmp(filter, "gzip") == 0)
		return OCI_MT_LAYER_GZIP;
	if (strcmp(filter, "zstd") == 0)
		return OCI_MT_LAYER_ZSTD;
	return NULL;
}

/* docker save has no registry manifest: describe the image with an OCI
 * one (config and layers exactly as stored), so callers always get one. */
static int oci_docker_manifest(struct oci_ctx *c)
{
	struct dimg_image *img = c->img;
	uint8_t cd[32], md[32];
	size_t len;
	int r = -ENOMEM;
	struct json_object *m = json_object_new_object(), *layers = json_object_new_array();
	if (!m || !layers || dimg_sha256_buf(img->config, img->config_len, cd) < 0)
		goto out;
	for (size_t i = 0; i < c->nlayers; i++) {
		const struct dimg_layer_info *li = &c->layers[i].li;
		const char *mt = oci_layer_media_type(li->filter);
		if (!mt) {
			dimg_err_set(c->err, 0, NULL,
			             "layer %s: %s compression has no OCI media type",
			             c->layers[i].label, li->filter);
			r = -ENOTSUP;
			goto out;
		}
		if (json_object_array_add(layers, oci_desc_json(mt, li->got_digest, li->got_size)))
			goto out;
	}
	if (json_object_object_add(m, "schemaVersion", json_object_new_int(2)) ||
	    json_object_object_add(m, "mediaType", json_object_new_string(OCI_MT_MANIFEST)) ||
	    json_object_object_add(m, "config", oci_desc_json(OCI_MT_CONFIG, cd, img->config_len)))
		goto out;
	json_object_object_add(m, "layers", layers);
	layers = NULL;
	const char *s = json_object_to_json_string_length(
	    m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	img->manifest = s ? malloc(len) : NULL;
	img->manifest_media_type = strdup(OCI_MT_MANIFEST);
	if (!img->manifest || !img->manifest_media_type)
		goto out;
	memcpy(img->manifest, s, len);
	img->manifest_len = len;
	if ((r = dimg_sha256_buf(img->manifest, len, md)) == 0)
		oci_digest_str(img->manifest_digest, md);
out:
	json_object_put(layers);
	json_object_put(m);
	return r;
}

/* ---- squash and entry points ---- */

/* What the caller learns of layer i once it is squashed (and recorded). */
static int oci_layer_done(struct oci_ctx *c, size_t i, struct dimg_tarsplit *ts, uint64_t start)
{
	const struct dimg_layer_info *li = &c->layers[i].li;
	struct dimg_image_layer *out = &c->img->layers[i];
	memcpy(out->diff_id, li->got_diff_id, 32);
	memcpy(out->digest, li->got_digest, 32);
	out->size = li->got_size;
	out->filter = li->filter;
	c->img->nlayers = i + 1;
	if (!ts)
		return 0;
	int r = dimg_tarsplit_end(ts, &out->recipe_off, &out->recipe_len, start);
	out->has_recipe = r == 0;
	/* A stream the recorder reads otherwise than libarchive (it saw a file
	 * cut short) just has no recipe; only I/O failures are failures. */
	if (r == -EBADMSG)
		return 0;
	if (r < 0)
		dimg_err_set(c->err, 0, NULL, "layer %s: recording its recipe: %s",
		             c->layers[i].label, strerror(-r));
	return r;
}

static int oci_squash(struct oci_ctx *c, struct dimg_cas *cas, FILE *recipes)
{
	struct dimg_squash *sq = NULL;
	struct dimg_tarsplit *ts = NULL;
	uint64_t total = 0;
	for (size_t i = 0; i < c->nlayers; i++)
		total += c->layers[i].li.size != UINT64_MAX ? c->layers[i].li.size : 0;
	c->img->layers = calloc(c->nlayers ? c->nlayers : 1, sizeof(*c->img->layers));
	int r =
	    c->img->layers ? dimg_squash_new(&sq, cas, total, c->o->progress, c->o->pctx) : -ENOMEM;
	if (r == 0 && recipes && (r = dimg_tarsplit_new(&ts, recipes)) == 0)
		dimg_squash_record(sq, ts);
	for (size_t i = 0; r == 0 && i < c->nlayers; i++) {
		struct oci_layer *l = &c->layers[i];
		struct oci_stream *st;
		r = oci_stream_open(&st, &c->src, l->member);
		if (r < 0) {
			dimg_err_set(c->err, 0, NULL, "layer %s: cannot open its blob: %s",
			             l->label, strerror(-r));
			break;
		}
		if (l->li.size == UINT64_MAX)
			l->li.size = st->size;
		l->li.name = l->label;
		struct dimg_layer_src ls = {.read = oci_stream_read, .ctx = st};
		uint64_t start = ts ? dimg_tarsplit_offset(ts) : 0;
		if (ts)
			dimg_tarsplit_begin(ts);
		r = dimg_squash_layer(sq, &l->li, &ls, c->err);
		oci_stream_close(st);
		if (r == 0)
			r = oci_layer_done(c, i, ts, start);
	}
	if (r == 0)
		r = dimg_squash_finish(sq, &c->img->tree, c->err);
	dimg_squash_free(sq);
	dimg_tarsplit_free(ts);
	return r;
}

static void oci_ctx_free(struct oci_ctx *c)
{
	for (size_t i = 0; i < c->nlayers; i++) {
		free(c->layers[i].member);
		free(c->layers[i].label);
	}
	free(c->layers);
	json_object_put(c->config);
	oci_src_close(&c->src);
}

static int oci_src_open(struct oci_ctx *c, const char *path, int is_dir)
{
	if (!is_dir)
		return oci_src_open_tar(&c->src, path, c->err);
	c->src.dirfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c->src.dirfd >= 0)
		return 0;
	int r = -errno;
	dimg_err_set(c->err, r, path, NULL);
	return r;
}

int dimg_oci_open(struct dimg_image *img, const char *path, int is_dir,
                  const struct dimg_image_opts *o, struct dimg_cas *cas, FILE *recipes,
                  struct dimg_err *err)
{
	struct oci_ctx c = {.src = {.dirfd = -1}, .o = o, .err = err, .img = img};
	int r = oci_src_open(&c, path, is_dir);
	if (r == 0)
		r = oci_check_layout_version(&c);
	if (r == 0 && (r = oci_try_index(&c)) == 1)
		r = oci_load_docker(&c);
	if (r == 0)
		r = oci_squash(&c, cas, recipes);
	if (r == 0 && c.docker)
		r = oci_docker_manifest(&c);
	oci_ctx_free(&c);
	return r;
}

int dimg_oci_probe_dir(const char *path)
{
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int layout =
	    fstatat(fd, "oci-layout", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
	int index = fstatat(fd, "index.json", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	            S_ISREG(st.st_mode) && fstatat(fd, "blobs", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	            S_ISDIR(st.st_mode);
	/* A rootfs could hold a manifest.json; docker save puts more beside it. */
	int docker = fstatat(fd, "manifest.json", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	             S_ISREG(st.st_mode) &&
	             (fstatat(fd, "repositories", &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	              fstatat(fd, "blobs", &st, AT_SYMLINK_NOFOLLOW) == 0);
	close(fd);
	return layout || index || docker;
}
