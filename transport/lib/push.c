/* cdimg push (di3fs/push.h): a .cdimg into a registry as an artifact of
 * its target image, and the target's referrers list kept. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cdimg.h"
#include "di3fs/push.h"
#include "di3fs/registry.h"
#include "ociwrite.h"
#include "transport-internal.h"

struct push {
	struct reg *r;
	const char *repo;
	const struct cdimg_info *in;
	struct xpush_result *res;
	struct dimg_err *err;
};

/* A blob from memory, unless the repository has it. */
static int put_blob(struct push *p, const char *digest, const void *bytes, uint64_t size)
{
	uint8_t d[32];
	struct xmem m = {bytes, size, 0};
	int rc = oci_digest_parse(d, digest);

	if (rc < 0)
		return dimg_err_set(p->err, -EBADMSG, digest, "not a sha256 digest");
	rc = reg_blob_head(p->r, p->repo, d, NULL, p->err);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		p->res->blobs_existing++;
		return 0;
	}
	rc = reg_blob_put(p->r, p->repo, d, size, xmem_read, &m, p->err);
	if (rc < 0)
		return rc;
	p->res->blobs_pushed++;
	p->res->bytes_pushed += size;
	return 0;
}

/* The target image in the repository: its manifest is there, or its layers
 * are and its config and manifest (which the .cdimg has) are put. */
static int ensure_target(struct push *p)
{
	const struct cdimg_info *in = p->in;
	struct reg_manifest head = {0};
	struct xport_manifest m = {0};
	struct json_object *doc = NULL;
	struct oci_desc *v = NULL;
	size_t n = 0;
	char what[600], dg[OCI_DIGEST_LEN];
	int rc;

	snprintf(what, sizeof(what), "%s/%s@%s", p->res->host, p->repo, in->target_manifest_digest);
	rc = oci_digest_parse(m.digest, in->target_manifest_digest);
	if (rc == 0)
		rc = reg_manifest_head(p->r, p->repo, in->target_manifest_digest, &head, p->err);
	reg_manifest_clear(&head);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	/* not there: are its layers? (xman_children: config first, then layers) */
	m.raw = (uint8_t *)in->target_manifest;
	m.len = in->target_manifest_len;
	snprintf(m.media_type, sizeof(m.media_type), "%s", in->target_manifest_media_type);
	rc = xman_children(&m, &doc, &v, &n, p->err);
	for (size_t i = 1; rc == 0 && i < n; i++) {
		rc = reg_blob_head(p->r, p->repo, v[i].digest, NULL, p->err);
		if (rc == 0) {
			oci_digest_str(dg, v[i].digest);
			rc = dimg_err_set(
			    p->err, -ENOENT, what,
			    "the registry does not have the delta's target image%s%s (nor "
			    "its layer %s): copy the image there first (cdimg copy IMAGE "
			    "docker://%s/%s), then push the delta",
			    in->target_ref ? " " : "", in->target_ref ? in->target_ref : "", dg,
			    p->res->host, p->repo);
		} else if (rc == 1) {
			rc = 0;
		}
	}
	free(v);
	json_object_put(doc);
	if (rc < 0)
		return rc;
	rc = put_blob(p, in->target_config_digest, in->target_config, in->target_config_len);
	if (rc == 0)
		rc = reg_manifest_put(p->r, p->repo, NULL, in->target_manifest,
		                      in->target_manifest_len, in->target_manifest_media_type,
		                      p->err);
	if (rc == 0)
		p->res->target_pushed = 1;
	return rc;
}

/* The referrers API: 1 when the registry answers it (res->entries: the
 * deltas it lists for the target; whether ours is among them yet is not
 * checked, a registry may list it later), 0 when it has none. */
static int refs_fn(void *ctx, struct json_object *desc)
{
	unsigned *n = ctx;
	(*n)++;
	return 0;
}

static int referrers_api(struct push *p, const uint8_t subject[32])
{
	unsigned n = 0;
	struct dimg_err e = {0};
	int rc = reg_referrers(p->r, p->repo, subject, DI3FS_ARTIFACT_TYPE, refs_fn, &n, &e);

	if (rc == -ENOTSUP)
		return 0;
	if (rc < 0) {
		if (p->err)
			*p->err = e;
		return rc;
	}
	p->res->entries = n;
	p->res->added = -1; /* the registry added it, or had it: not told apart */
	return 1;
}

/* Our descriptor in the referrers index: the artifact manifest's
 * descriptor with its artifactType and annotations. */
static struct json_object *referrer_desc(struct push *p, const struct dimg_buf *man)
{
	struct json_object *doc = NULL, *an = NULL;
	struct json_object *d = oci_descriptor(OCI_MT_MANIFEST, p->res->manifest_digest, man->len);

	if (!d || oci_json_parse(&doc, man->data, man->len) < 0 ||
	    !json_object_object_get_ex(doc, "annotations", &an) ||
	    json_object_object_add(d, "annotations", json_object_get(an)) ||
	    json_object_object_add(d, "artifactType",
	                           json_object_new_string(DI3FS_ARTIFACT_TYPE))) {
		json_object_put(d);
		d = NULL;
	}
	json_object_put(doc);
	return d;
}

/* The index under the referrers tag (*out), a new empty one when the tag
 * does not exist; *found: it lists the artifact. */
static int tag_read(struct push *p, struct json_object **out, int *found)
{
	struct reg_manifest m = {0};
	struct json_object *o = NULL, *ms;
	int rc = reg_manifest_get(p->r, p->repo, p->res->tag, &m, p->err);

	*found = 0;
	if (rc == -ENOENT) {
		dimg_err_clear(p->err);
		o = json_object_new_object();
		if (!o || json_object_object_add(o, "schemaVersion", json_object_new_int(2)) ||
		    json_object_object_add(o, "mediaType", json_object_new_string(OCI_MT_INDEX)) ||
		    json_object_object_add(o, "manifests", json_object_new_array())) {
			json_object_put(o);
			return -ENOMEM;
		}
		*out = o;
		return 0;
	}
	if (rc < 0)
		return rc;
	rc = oci_json_parse(&o, m.raw, m.len);
	reg_manifest_clear(&m);
	if (rc < 0 || !oci_mt_is_index(oci_jstr(o, "mediaType")) ||
	    !(ms = oci_jarr(o, "manifests"))) {
		json_object_put(o);
		char what[600];
		snprintf(what, sizeof(what), "%s/%s:%s", p->res->host, p->repo, p->res->tag);
		return dimg_err_set(p->err, -EBADMSG, what,
		                    "the referrers tag does not hold an OCI image index");
	}
	for (size_t i = 0; i < json_object_array_length(ms); i++) {
		const char *d = oci_jstr(json_object_array_get_idx(ms, i), "digest");
		if (d && !strcmp(d, p->res->manifest_digest))
			*found = 1;
	}
	p->res->entries = (unsigned)json_object_array_length(ms);
	*out = o;
	return 0;
}

/* Read, add, write, read back: until the index lists the artifact. */
static int tag_schema(struct push *p, const struct dimg_buf *man)
{
	struct json_object *desc = referrer_desc(p, man);
	unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);
	int rc = desc ? 0 : -ENOMEM;

	for (unsigned tries = 0; rc == 0;) {
		struct json_object *o = NULL;
		struct dimg_buf out = {0};
		int found = 0;

		/* lost twice: desynchronise, 100 ms .. 1.6 s (+ up to 50 ms at
		 * random), then read */
		if (tries >= 2)
			usleep((50000u << (tries < 6 ? tries - 1 : 5)) +
			       (unsigned)(rand_r(&seed) % 50000u));
		if ((rc = tag_read(p, &o, &found)) < 0)
			break;
		if (found) {
			p->res->added = p->res->tag_writes > 0;
			json_object_put(o);
			break;
		}
		if (tries++ == XPUSH_TAG_TRIES) {
			json_object_put(o);
			char what[600];
			snprintf(what, sizeof(what), "%s/%s:%s", p->res->host, p->repo,
			         p->res->tag);
			rc = dimg_err_set(
			    p->err, -EAGAIN, what,
			    "written %u times, the referrers index still lost the delta "
			    "(other pushers writing it at the same time)",
			    XPUSH_TAG_TRIES);
			break;
		}
		if (json_object_array_add(oci_jarr(o, "manifests"), json_object_get(desc)))
			rc = -ENOMEM;
		if (rc == 0)
			rc = oci_json_dump(o, &out);
		if (rc == 0)
			rc = reg_manifest_put(p->r, p->repo, p->res->tag, out.data, out.len,
			                      OCI_MT_INDEX, p->err);
		if (rc == 0) {
			p->res->tag_writes++;
			/* a pusher that read the index before our write writes within
			 * moments: read back after that, not at once */
			usleep(XPUSH_SETTLE_MS * 1000u);
		}
		dimg_buf_free(&out);
		json_object_put(o);
	}
	json_object_put(desc);
	return rc;
}

static int push_run(struct push *p, const struct cdimg *c)
{
	const struct cdimg_info *in = p->in;
	struct dimg_buf man = {0};
	uint8_t subject[32];
	int rc;

	if ((rc = ensure_target(p)) < 0)
		return rc;
	if ((rc = put_blob(p, OCI_EMPTY_DIGEST, OCI_EMPTY_JSON, 2)) < 0 ||
	    (rc = put_blob(p, in->dimg_digest, cdimg_dimg_bytes(c), in->dimg_size)) < 0 ||
	    (in->layers && (rc = put_blob(p, in->layers_digest, in->layers, in->layers_size)) < 0))
		return rc;
	if ((rc = cdimg_registry_manifest(c, &man, p->err)) < 0)
		goto out;
	p->res->manifest_size = man.len;
	if ((rc = oci_digest_buf(p->res->manifest_digest, man.data, man.len)) < 0)
		goto out;
	rc = reg_manifest_put(p->r, p->repo, NULL, man.data, man.len, OCI_MT_MANIFEST, p->err);
	if (rc == 0)
		rc = oci_digest_parse(subject, in->target_manifest_digest);
	if (rc == 0)
		rc = referrers_api(p, subject);
	if (rc == 1) {
		p->res->referrers_api = 1;
		rc = 0;
	} else if (rc == 0) {
		snprintf(p->res->tag, sizeof(p->res->tag), "sha256-%s",
		         in->target_manifest_digest + 7);
		rc = tag_schema(p, &man);
	}
out:
	dimg_buf_free(&man);
	return rc;
}

int xpush_delta(const char *path, const struct xport_name *dst, const struct xport_opts *o,
                struct xpush_result *res, struct dimg_err *err)
{
	struct push p = {.res = res, .err = err};
	struct reg_opts ro;
	struct cdimg *c = NULL;
	char *host = NULL, *repo = NULL;
	int rc;

	memset(res, 0, sizeof(*res));
	if (dst->kind != XPORT_DOCKER || dst->digest)
		return dimg_err_set(err, -EINVAL, dst->where,
		                    "a delta is pushed to docker://HOST/REPO (by digest)");
	rc = cdimg_sniff(path);
	if (rc == CDIMG_KIND_DIMG)
		return dimg_err_set(
		    err, -EINVAL, path,
		    "a .dimg names no target image: push a .cdimg (cdimg diff IMAGE "
		    "IMAGE -o x.cdimg)");
	if ((rc = cdimg_open(&c, path, err)) < 0)
		return rc;
	p.in = cdimg_get_info(c);
	snprintf(res->subject_digest, sizeof(res->subject_digest), "%s",
	         p.in->target_manifest_digest);
	rc = docker_split_where(dst->where, &host, &repo);
	if (rc == 0) {
		snprintf(res->host, sizeof(res->host), "%s", host);
		snprintf(res->repo, sizeof(res->repo), "%s", repo);
		p.repo = repo;
		docker_reg_opts(&ro, o);
		rc = reg_open(&p.r, docker_api_host(host), &ro, err);
	}
	if (rc == 0)
		rc = push_run(&p, c);
	reg_close(p.r);
	free(host);
	free(repo);
	cdimg_free(c);
	return rc;
}
