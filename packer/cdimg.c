/* .cdimg writer and reader: an OCI layout tar holding a .dimg as an artifact
 * layer, read back with a bounded ustar parser over a read-only mapping. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cdimg.h"
#include "dimg/tar.h"
#include "dimg/hash.h"
#include "ociwrite.h"
#include "packer.h"

static const uint8_t dimg_magic[8] = {0x89, 'D', 'I', 'M', '\r', '\n', 0x1a, '\n'};

#define COPY_BUF  (1u << 20)
#define MAX_FILES 64u
#define MAX_PAX   (64u << 10)
#define MAX_JSON  (16u << 20)

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ================================================================ writer */

struct dimg_head {
	uint8_t base[32], target[32];
	uint32_t version;
};

static int read_dimg_head(int fd, struct dimg_head *h)
{
	uint8_t b[DIMG_HEADER_SIZE];
	ssize_t n = pread(fd, b, sizeof(b), 0);
	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(b) || memcmp(b, dimg_magic, 8) != 0)
		return -EBADMSG;
	h->version = get_le32(b + 8);
	if (h->version != DIMG_FORMAT_VERSION)
		return -ENOTSUP;
	memcpy(h->base, b + 16, 32);
	memcpy(h->target, b + 48, 32);
	return 0;
}

static int annot(struct json_object *a, const char *k, const char *v)
{
	return json_object_object_add(a, k, json_object_new_string(v)) ? -ENOMEM : 0;
}

static int annot_hex(struct json_object *a, const char *k, const uint8_t id[32])
{
	char hex[65];
	dimg_hex32(id, hex);
	return annot(a, k, hex);
}

/* The manifest's own "mediaType", or the OCI one; malloc'd. */
static char *manifest_type(const struct cdimg_meta *m)
{
	struct json_object *o = NULL, *t;
	char *s = NULL;
	if (m->target_manifest_media_type)
		return strdup(m->target_manifest_media_type);
	if (oci_json_parse(&o, m->target_manifest, m->target_manifest_len) == 0 &&
	    json_object_object_get_ex(o, "mediaType", &t) &&
	    json_object_is_type(t, json_type_string))
		s = strdup(json_object_get_string(t));
	json_object_put(o);
	return s ? s : strdup(OCI_MT_MANIFEST);
}

struct wdocs {
	struct dimg_head head;
	char dimg_digest[OCI_DIGEST_LEN], cfg_digest[OCI_DIGEST_LEN], man_digest[OCI_DIGEST_LEN];
	char art_digest[OCI_DIGEST_LEN];
	char layers_digest[OCI_DIGEST_LEN];
	uint64_t dimg_size, layers_size;
	struct dimg_buf art, index;
};

static struct json_object *artifact_annotations(const struct cdimg_meta *m, const struct wdocs *d)
{
	struct json_object *a = json_object_new_object();
	char *mt = manifest_type(m);
	int r = (a && mt) ? 0 : -ENOMEM;
	if (r == 0)
		r = annot(a, CDIMG_ANNOT_VERSION, "1");
	if (r == 0)
		r = annot(a, CDIMG_ANNOT_BASE_CONFIG, m->base_config_digest);
	if (r == 0)
		r = annot_hex(a, CDIMG_ANNOT_BASE_TREE, d->head.base);
	if (r == 0)
		r = annot_hex(a, CDIMG_ANNOT_TARGET_TREE, d->head.target);
	if (r == 0)
		r = annot(a, CDIMG_ANNOT_TARGET_MANIFEST, d->man_digest);
	if (r == 0)
		r = annot(a, CDIMG_ANNOT_TARGET_MANIFEST_TYPE, mt);
	if (r == 0 && m->target_ref)
		r = annot(a, CDIMG_ANNOT_TARGET_REF, m->target_ref);
	if (r == 0 && m->target_ref)
		r = annot(a, OCI_ANNOT_REF_NAME, m->target_ref);
	free(mt);
	if (r < 0) {
		json_object_put(a);
		return NULL;
	}
	return a;
}

static int build_artifact(const struct cdimg_meta *m, struct wdocs *d)
{
	struct json_object *o = json_object_new_object(), *layers = json_object_new_array();
	struct json_object *an = artifact_annotations(m, d);
	int r = -ENOMEM;
	if (!o || !layers || !an)
		goto fail;
	/* the target manifest is a layer too: a registry copy keeps it */
	if (json_object_array_add(layers,
	                          oci_descriptor(DI3FS_MT_DIMG, d->dimg_digest, d->dimg_size)) ||
	    json_object_array_add(layers, oci_descriptor(DI3FS_MT_TARGET_MANIFEST, d->man_digest,
	                                                 m->target_manifest_len)) ||
	    (m->layers_path &&
	     json_object_array_add(
	         layers, oci_descriptor(DI3FS_MT_LAYERS, d->layers_digest, d->layers_size))) ||
	    json_object_object_add(o, "layers", layers))
		goto fail;
	layers = NULL;
	if (json_object_object_add(o, "annotations", an))
		goto fail;
	an = NULL;
	json_object_object_add(o, "schemaVersion", json_object_new_int(2));
	json_object_object_add(o, "mediaType", json_object_new_string(OCI_MT_MANIFEST));
	json_object_object_add(o, "artifactType", json_object_new_string(DI3FS_ARTIFACT_TYPE));
	json_object_object_add(
	    o, "config",
	    oci_descriptor(DI3FS_MT_TARGET_CONFIG, d->cfg_digest, m->target_config_len));
	if ((r = oci_json_dump(o, &d->art)) == 0)
		r = oci_digest_buf(d->art_digest, d->art.data, d->art.len);
fail:
	json_object_put(an);
	json_object_put(layers);
	json_object_put(o);
	return r;
}

static int build_index(const struct cdimg_meta *m, struct wdocs *d)
{
	struct json_object *o = json_object_new_object(), *ms = json_object_new_array();
	struct json_object *desc = oci_descriptor(OCI_MT_MANIFEST, d->art_digest, d->art.len);
	struct json_object *an = NULL;
	int r = -ENOMEM;
	if (!o || !ms || !desc)
		goto fail;
	json_object_object_add(desc, "artifactType", json_object_new_string(DI3FS_ARTIFACT_TYPE));
	if (m->target_ref) {
		if (!(an = json_object_new_object()) ||
		    annot(an, OCI_ANNOT_REF_NAME, m->target_ref) ||
		    json_object_object_add(desc, "annotations", an))
			goto fail;
		an = NULL;
	}
	if (json_object_array_add(ms, desc))
		goto fail;
	desc = NULL;
	if (json_object_object_add(o, "manifests", ms))
		goto fail;
	ms = NULL;
	json_object_object_add(o, "schemaVersion", json_object_new_int(2));
	json_object_object_add(o, "mediaType", json_object_new_string(OCI_MT_INDEX));
	r = oci_json_dump(o, &d->index);
fail:
	json_object_put(an);
	json_object_put(desc);
	json_object_put(ms);
	json_object_put(o);
	return r;
}

/* Copies a blob file (the .dimg, the recipes) into the archive after its
 * header, hashing it again: the bytes written must be the bytes named. */
static int copy_blob(struct ocitar *t, int fd, const char *digest, uint64_t size)
{
	uint8_t hdr[OCITAR_BLOCK], sha[32];
	char name[100], got[OCI_DIGEST_LEN];
	struct dimg_sha256 *h = NULL;
	uint8_t *buf = malloc(COPY_BUF);
	uint64_t left = size, off = 0;
	int r = buf ? dimg_sha256_new(&h) : -ENOMEM;
	snprintf(name, sizeof(name), "blobs/sha256/%s", digest + 7);
	if (r < 0 || (r = ocitar_header_encode(hdr, name, '0', size)) < 0 ||
	    (r = ocitar_write(t, hdr, sizeof(hdr))) < 0)
		goto out;
	while (left && r == 0) {
		ssize_t n = pread(fd, buf, left < COPY_BUF ? left : COPY_BUF, (off_t)off);
		if (n <= 0) {
			r = n < 0 ? -errno : -ESTALE;
			break;
		}
		dimg_sha256_update(h, buf, (size_t)n);
		r = ocitar_write(t, buf, (size_t)n);
		left -= (uint64_t)n;
		off += (uint64_t)n;
	}
	if (r == 0) {
		dimg_sha256_final(h, sha);
		oci_digest_str(got, sha);
		r = strcmp(got, digest) ? -ESTALE : ocitar_pad(t);
	}
out:
	dimg_sha256_free(h);
	free(buf);
	return r;
}

/* Fixed order: oci-layout, index.json, blobs/, blobs/sha256/, the artifact
 * manifest, the target manifest, the target config, the .dimg, the layer
 * recipes. Metadata first lets a streaming reader decide before the big
 * blob arrives. */
static int write_tar(int out, int dfd, int lfd, const struct cdimg_meta *m, const struct wdocs *d,
                     uint64_t *size)
{
	struct ocitar t = {out, 0};
	int r;
	if ((r = ocitar_file(&t, "oci-layout", OCI_LAYOUT_JSON, strlen(OCI_LAYOUT_JSON))) < 0 ||
	    (r = ocitar_file(&t, "index.json", d->index.data, d->index.len)) < 0 ||
	    (r = ocitar_dir(&t, "blobs/")) < 0 || (r = ocitar_dir(&t, "blobs/sha256/")) < 0 ||
	    (r = ocitar_blob(&t, d->art_digest, d->art.data, d->art.len)) < 0 ||
	    (r = ocitar_blob(&t, d->man_digest, m->target_manifest, m->target_manifest_len)) < 0)
		return r;
	if (strcmp(d->cfg_digest, d->man_digest) != 0 &&
	    (r = ocitar_blob(&t, d->cfg_digest, m->target_config, m->target_config_len)) < 0)
		return r;
	if ((r = copy_blob(&t, dfd, d->dimg_digest, d->dimg_size)) < 0 ||
	    (lfd >= 0 && (r = copy_blob(&t, lfd, d->layers_digest, d->layers_size)) < 0) ||
	    (r = ocitar_finish(&t)) < 0)
		return r;
	*size = t.off;
	return 0;
}

static int prepare_docs(int dfd, int lfd, const struct cdimg_meta *m, struct wdocs *d)
{
	uint8_t sha[32];
	int r;
	if (lfd >= 0) {
		if ((r = dimg_sha256_fd(lfd, sha, &d->layers_size)) < 0)
			return r;
		oci_digest_str(d->layers_digest, sha);
	}
	if (!m->base_config_digest || !oci_digest_valid(m->base_config_digest) ||
	    !m->target_config || !m->target_manifest)
		return -EINVAL;
	if ((r = read_dimg_head(dfd, &d->head)) < 0 ||
	    (r = dimg_sha256_fd(dfd, sha, &d->dimg_size)) < 0)
		return r;
	oci_digest_str(d->dimg_digest, sha);
	if ((r = oci_digest_buf(d->cfg_digest, m->target_config, m->target_config_len)) < 0 ||
	    (r = oci_digest_buf(d->man_digest, m->target_manifest, m->target_manifest_len)) < 0 ||
	    (r = build_artifact(m, d)) < 0)
		return r;
	return build_index(m, d);
}

int packer_cdimg_write(const char *out_path, const char *dimg_path, const struct cdimg_meta *m,
                       uint64_t *out_size)
{
	struct wdocs d;
	char *tmp = NULL;
	uint64_t size = 0;
	int out = -1, r, lfd = -1, dfd = open(dimg_path, O_RDONLY | O_CLOEXEC);
	memset(&d, 0, sizeof(d));
	if (dfd < 0)
		return -errno;
	if (m->layers_path && (lfd = open(m->layers_path, O_RDONLY | O_CLOEXEC)) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = prepare_docs(dfd, lfd, m, &d)) < 0)
		goto out;
	if ((out = packer_tmpfile(out_path, &tmp)) < 0) {
		r = out;
		goto out;
	}
	r = write_tar(out, dfd, lfd, m, &d, &size);
	if (r == 0)
		r = packer_commit_tmpfile(out, tmp, out_path);
	else
		close(out);
	if (r < 0)
		unlink(tmp);
	else if (out_size)
		*out_size = size;
out:
	free(tmp);
	close(dfd);
	if (lfd >= 0)
		close(lfd);
	dimg_buf_free(&d.art);
	dimg_buf_free(&d.index);
	return r;
}

/* ================================================================ reader */

struct tar_file {
	char *name;
	uint64_t off, size;
};

struct cdimg {
	const uint8_t *map;
	size_t len;
	struct tar_file files[MAX_FILES];
	size_t nfiles;
	struct cdimg_info info;
	char *manifest_type, *ref;
};

__attribute__((format(printf, 3, 4))) static int fail(char **err, int rc, const char *fmt, ...)
{
	va_list ap;
	char msg[512];
	if (err && !*err) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		*err = strdup(msg);
	}
	return rc;
}

static int block_zero(const uint8_t *h)
{
	for (size_t i = 0; i < OCITAR_BLOCK; i++)
		if (h[i])
			return 0;
	return 1;
}

/* Entry name: ustar prefix "/" name, bounded, leading "./" dropped. */
static char *tar_name(const uint8_t *h, const char *pax_path)
{
	char buf[260];
	size_t pl = strnlen((const char *)h + 345, 155), nl = strnlen((const char *)h, 100);
	const char *s = buf;
	if (pax_path) {
		s = pax_path;
	} else if (pl && memcmp(h + 257, "ustar\0", 6) == 0) {
		snprintf(buf, sizeof(buf), "%.*s/%.*s", (int)pl, (const char *)h + 345, (int)nl,
		         (const char *)h);
	} else {
		snprintf(buf, sizeof(buf), "%.*s", (int)nl, (const char *)h);
	}
	while (s[0] == '.' && s[1] == '/')
		s += 2;
	return strdup(s);
}

struct pax {
	char *path;
	uint64_t size;
	int has_size;
};

/* Records "LEN key=value\n" of an extended header; path and size kept. */
static int pax_parse(const uint8_t *p, uint64_t n, struct pax *x)
{
	uint64_t off = 0;
	while (off < n) {
		uint64_t len = 0, i = off;
		while (i < n && p[i] >= '0' && p[i] <= '9' && len < n)
			len = len * 10 + (uint64_t)(p[i++] - '0');
		if (i >= n || p[i] != ' ' || len == 0 || len > n - off || p[off + len - 1] != '\n')
			return -EBADMSG;
		const char *kv = (const char *)p + i + 1;
		size_t kvlen = (size_t)(off + len - 1 - (i + 1));
		const char *eq = memchr(kv, '=', kvlen);
		if (!eq)
			return -EBADMSG;
		size_t kl = (size_t)(eq - kv), vl = kvlen - kl - 1;
		if (kl == 4 && !memcmp(kv, "path", 4)) {
			free(x->path);
			if (vl == 0 || vl > 255 || memchr(eq + 1, '\0', vl) ||
			    !(x->path = strndup(eq + 1, vl)))
				return -EBADMSG;
		} else if (kl == 4 && !memcmp(kv, "size", 4)) {
			char num[24];
			char *end;
			if (vl == 0 || vl >= sizeof(num))
				return -EBADMSG;
			memcpy(num, eq + 1, vl);
			num[vl] = '\0';
			errno = 0;
			x->size = strtoull(num, &end, 10);
			if (errno || *end || num[0] < '0' || num[0] > '9')
				return -EBADMSG;
			x->has_size = 1;
		}
		off += len;
	}
	return 0;
}

static int add_file(struct cdimg *c, char *name, uint64_t off, uint64_t size, char **err)
{
	for (size_t i = 0; i < c->nfiles; i++)
		if (!strcmp(c->files[i].name, name)) {
			fail(err, 0, "entry '%s' appears twice", name);
			free(name);
			return -EBADMSG;
		}
	if (c->nfiles == MAX_FILES) {
		free(name);
		return fail(err, -EBADMSG, "more than %u entries: not a .cdimg", MAX_FILES);
	}
	c->files[c->nfiles++] = (struct tar_file){name, off, size};
	return 0;
}

/* One header at *off: files recorded, pax state carried to the next. */
static int tar_entry(struct cdimg *c, uint64_t *off, struct pax *x, char **err)
{
	const uint8_t *h = c->map + *off;
	uint64_t size;
	if (!dimg_tar_checksum_ok(h))
		return fail(err, -EBADMSG, "tar header at offset %" PRIu64 ": bad checksum", *off);
	if (memcmp(h + 257, "ustar", 5) != 0)
		return fail(err, -EBADMSG, "offset %" PRIu64 ": not a ustar/pax tar header", *off);
	if (dimg_tar_num(h + 124, 12, &size) < 0)
		return fail(err, -EBADMSG, "tar header at offset %" PRIu64 ": bad size", *off);
	char type = (char)h[156];
	if ((type == '0' || type == '\0' || type == '7') && x->has_size)
		size = x->size;
	uint64_t data = *off + OCITAR_BLOCK, room = c->len - data;
	if (size > room || (size + OCITAR_BLOCK - 1) / OCITAR_BLOCK * OCITAR_BLOCK > room)
		return fail(err, -EOVERFLOW,
		            "entry at offset %" PRIu64 " runs past the end (truncated)", *off);
	*off = data + (size + OCITAR_BLOCK - 1) / OCITAR_BLOCK * OCITAR_BLOCK;
	if (type == 'x') {
		if (size > MAX_PAX || pax_parse(c->map + data, size, x) < 0)
			return fail(err, -EBADMSG, "bad pax extended header at offset %" PRIu64,
			            data);
		return 0;
	}
	if (type == 'g' || type == '5')
		return 0;
	if (type != '0' && type != '\0' && type != '7')
		return fail(err, -EBADMSG, "unexpected tar entry type '%c' in a .cdimg", type);
	char *name = tar_name(h, x->path);
	free(x->path);
	*x = (struct pax){0};
	if (!name)
		return -ENOMEM;
	return add_file(c, name, data, size, err);
}

static int tar_scan(struct cdimg *c, char **err)
{
	struct pax x = {0};
	uint64_t off = 0;
	int r = 0;
	for (;;) {
		if (c->len - off < OCITAR_BLOCK) {
			r = fail(err, -EOVERFLOW, "truncated: the archive has no end marker");
			break;
		}
		if (block_zero(c->map + off))
			break;
		if ((r = tar_entry(c, &off, &x, err)) < 0)
			break;
	}
	free(x.path);
	return r;
}

static const struct tar_file *find_file(const struct cdimg *c, const char *name)
{
	for (size_t i = 0; i < c->nfiles; i++)
		if (!strcmp(c->files[i].name, name))
			return &c->files[i];
	return NULL;
}

static const struct tar_file *find_blob(const struct cdimg *c, const char *digest)
{
	char name[100];
	snprintf(name, sizeof(name), "blobs/sha256/%s", digest + 7);
	return find_file(c, name);
}

/* Every blob's content against its name (the digest). */
static int verify_blobs(const struct cdimg *c, char **err)
{
	for (size_t i = 0; i < c->nfiles; i++) {
		const struct tar_file *f = &c->files[i];
		char want[OCI_DIGEST_LEN], got[OCI_DIGEST_LEN];
		if (strncmp(f->name, "blobs/", 6) != 0)
			continue;
		if (strncmp(f->name, "blobs/sha256/", 13) != 0)
			return fail(err, -ENOTSUP, "%s: only sha256 digests are supported",
			            f->name);
		snprintf(want, sizeof(want), "sha256:%s", f->name + 13);
		if (!oci_digest_valid(want))
			return fail(err, -EBADMSG, "%s: not a blob name", f->name);
		int r = oci_digest_buf(got, c->map + f->off, (size_t)f->size);
		if (r < 0)
			return r;
		if (strcmp(want, got) != 0)
			return fail(err, -EBADMSG,
			            "blob %.19s...: content does not match its digest", want);
	}
	return 0;
}

static int parse_file(const struct cdimg *c, const struct tar_file *f, struct json_object **o,
                      char **err)
{
	if (f->size > MAX_JSON)
		return fail(err, -EOVERFLOW, "%s: too large for JSON", f->name);
	if (oci_json_parse(o, c->map + f->off, (size_t)f->size) < 0 ||
	    !json_object_is_type(*o, json_type_object)) {
		json_object_put(*o);
		*o = NULL;
		return fail(err, -EBADMSG, "%s: not a JSON object", f->name);
	}
	return 0;
}

/* A descriptor of the expected media type whose blob is present with the
 * size it names. */
static int check_desc(const struct cdimg *c, struct json_object *d, const char *what,
                      const char *media, const struct tar_file **blob, char **err)
{
	const char *mt = oci_jstr(d, "mediaType"), *dg = oci_jstr(d, "digest");
	uint64_t size;
	if (!mt || !dg || oci_ju64(d, "size", &size) < 0)
		return fail(err, -EBADMSG, "%s: descriptor lacks mediaType, digest or size", what);
	if (strcmp(mt, media) != 0)
		return fail(err, -ENOTSUP, "%s: media type '%s' is not supported (expected %s)",
		            what, mt, media);
	if (!oci_digest_valid(dg))
		return fail(err, -ENOTSUP, "%s: digest '%.80s' is not a sha256 digest", what, dg);
	if (!(*blob = find_blob(c, dg)))
		return fail(err, -EBADMSG, "%s: blob %.19s... is missing", what, dg);
	if (size != (*blob)->size)
		return fail(err, -EBADMSG,
		            "%s: blob is %" PRIu64 " bytes, its descriptor says %" PRIu64, what,
		            (*blob)->size, size);
	return 0;
}

static int check_layout(const struct cdimg *c, char **err)
{
	const struct tar_file *f = find_file(c, "oci-layout");
	struct json_object *o = NULL;
	if (!f)
		return fail(err, -EBADMSG, "not an OCI image layout: no oci-layout file");
	int r = parse_file(c, f, &o, err);
	if (r == 0) {
		const char *v = oci_jstr(o, "imageLayoutVersion");
		if (!v || strcmp(v, "1.0.0") != 0)
			r = fail(err, -ENOTSUP,
			         "oci-layout: version '%s' is not supported (expected 1.0.0)",
			         v ? v : "(none)");
	}
	json_object_put(o);
	return r;
}

/* index.json: one manifest, the artifact; gives its blob. */
static int check_index(const struct cdimg *c, const struct tar_file **man, char **err)
{
	const struct tar_file *f = find_file(c, "index.json");
	struct json_object *o = NULL, *ms;
	uint64_t sv;
	if (!f)
		return fail(err, -EBADMSG, "not an OCI image layout: no index.json");
	int r = parse_file(c, f, &o, err);
	if (r < 0)
		return r;
	const char *mt = oci_jstr(o, "mediaType");
	if (oci_ju64(o, "schemaVersion", &sv) < 0 || sv != 2 || (mt && strcmp(mt, OCI_MT_INDEX)))
		r = fail(err, -ENOTSUP, "index.json: not an OCI image index (schemaVersion 2)");
	else if (!json_object_object_get_ex(o, "manifests", &ms) ||
	         !json_object_is_type(ms, json_type_array) || json_object_array_length(ms) == 0)
		r = fail(err, -EBADMSG, "index.json: no manifests");
	else if (json_object_array_length(ms) != 1)
		r = fail(err, -ENOTSUP,
		         "index.json: %zu manifests; a .cdimg holds exactly one delta",
		         json_object_array_length(ms));
	else
		r = check_desc(c, json_object_array_get_idx(ms, 0), "index.json", OCI_MT_MANIFEST,
		               man, err);
	json_object_put(o);
	return r;
}

static int parse_tree_id(const char *hex, uint8_t out[32])
{
	return hex ? oci_hex_decode(out, 32, hex, strlen(hex)) : -EINVAL;
}

static int read_annotations(struct cdimg *c, struct json_object *an, char **err)
{
	struct cdimg_info *in = &c->info;
	const char *v = oci_jstr(an, CDIMG_ANNOT_VERSION),
	           *bc = oci_jstr(an, CDIMG_ANNOT_BASE_CONFIG);
	const char *tm = oci_jstr(an, CDIMG_ANNOT_TARGET_MANIFEST);
	const char *mt = oci_jstr(an, CDIMG_ANNOT_TARGET_MANIFEST_TYPE),
	           *ref = oci_jstr(an, CDIMG_ANNOT_TARGET_REF);
	if (!v)
		return fail(err, -EBADMSG, "manifest: annotation %s is missing",
		            CDIMG_ANNOT_VERSION);
	if (strcmp(v, "1") != 0)
		return fail(err, -ENOTSUP,
		            "delta format version '%.20s' is not supported (this cdimg reads 1)",
		            v);
	in->dimg_version = 1;
	if (!bc || !oci_digest_valid(bc) || !tm || !oci_digest_valid(tm) || !mt)
		return fail(
		    err, -EBADMSG,
		    "manifest: base config / target manifest annotations are missing or malformed");
	if (parse_tree_id(oci_jstr(an, CDIMG_ANNOT_BASE_TREE), in->base_tree) < 0 ||
	    parse_tree_id(oci_jstr(an, CDIMG_ANNOT_TARGET_TREE), in->target_tree) < 0)
		return fail(err, -EBADMSG,
		            "manifest: tree id annotations are missing or malformed");
	snprintf(in->base_config_digest, sizeof(in->base_config_digest), "%s", bc);
	snprintf(in->target_manifest_digest, sizeof(in->target_manifest_digest), "%s", tm);
	if (!(c->manifest_type = strdup(mt)) || (ref && !(c->ref = strdup(ref))))
		return -ENOMEM;
	in->target_manifest_media_type = c->manifest_type;
	in->target_ref = c->ref;
	return 0;
}

/* The optional third layer: the target's layer recipes. */
static int check_layers_blob(struct cdimg *c, struct json_object *d, char **err)
{
	const struct tar_file *f;
	int r = check_desc(c, d, "layer recipes", DI3FS_MT_LAYERS, &f, err);
	if (r < 0)
		return r;
	c->info.layers = c->map + f->off;
	c->info.layers_size = f->size;
	snprintf(c->info.layers_digest, OCI_DIGEST_LEN, "%s", oci_jstr(d, "digest"));
	return 0;
}

/* The artifact manifest: type, config (target config), two layers (the
 * .dimg, the target manifest) and optionally a third (layer recipes),
 * annotations. */
static int check_artifact(struct cdimg *c, const struct tar_file *mf, char **err)
{
	struct json_object *o = NULL, *cfg, *layers, *an;
	const struct tar_file *cf, *df, *tf;
	uint64_t sv;
	int r = parse_file(c, mf, &o, err);
	if (r < 0)
		return r;
	const char *at = oci_jstr(o, "artifactType");
	if (oci_ju64(o, "schemaVersion", &sv) < 0 || sv != 2)
		r = fail(err, -ENOTSUP, "manifest: schemaVersion is not 2");
	else if (!at || strcmp(at, DI3FS_ARTIFACT_TYPE) != 0)
		r = fail(err, -ENOTSUP, "artifact type '%s' is not a di3fs delta (expected %s)",
		         at ? at : "(none)", DI3FS_ARTIFACT_TYPE);
	else if (!json_object_object_get_ex(o, "config", &cfg) ||
	         !json_object_object_get_ex(o, "layers", &layers) ||
	         !json_object_is_type(layers, json_type_array) ||
	         json_object_array_length(layers) < 2 || json_object_array_length(layers) > 3 ||
	         !json_object_object_get_ex(o, "annotations", &an))
		r = fail(err, -EBADMSG,
		         "manifest: needs a config, two or three layers (.dimg, target manifest, "
		         "layer recipes) and annotations");
	else if ((r = check_desc(c, cfg, "target config", DI3FS_MT_TARGET_CONFIG, &cf, err)) == 0 &&
	         (r = check_desc(c, json_object_array_get_idx(layers, 0), "delta layer",
	                         DI3FS_MT_DIMG, &df, err)) == 0 &&
	         (r = check_desc(c, json_object_array_get_idx(layers, 1), "target manifest layer",
	                         DI3FS_MT_TARGET_MANIFEST, &tf, err)) == 0 &&
	         (r = read_annotations(c, an, err)) == 0) {
		if (strcmp(oci_jstr(json_object_array_get_idx(layers, 1), "digest"),
		           c->info.target_manifest_digest) != 0) {
			json_object_put(o);
			return fail(err, -EBADMSG,
			            "manifest: the target manifest layer is not the annotated one");
		}
		c->info.target_config = c->map + cf->off;
		c->info.target_config_len = (size_t)cf->size;
		snprintf(c->info.target_config_digest, OCI_DIGEST_LEN, "%s",
		         oci_jstr(cfg, "digest"));
		c->info.dimg_offset = df->off;
		c->info.dimg_size = df->size;
		snprintf(c->info.dimg_digest, OCI_DIGEST_LEN, "%s",
		         oci_jstr(json_object_array_get_idx(layers, 0), "digest"));
		if (json_object_array_length(layers) == 3)
			r = check_layers_blob(c, json_object_array_get_idx(layers, 2), err);
	}
	json_object_put(o);
	return r;
}

/* The target manifest is present and names the config the delta carries. */
static int check_target_manifest(struct cdimg *c, char **err)
{
	const struct tar_file *f = find_blob(c, c->info.target_manifest_digest);
	struct json_object *o = NULL, *cfg;
	if (!f)
		return fail(err, -EBADMSG, "target manifest %.19s... is missing",
		            c->info.target_manifest_digest);
	int r = parse_file(c, f, &o, err);
	if (r < 0)
		return r;
	const char *dg =
	    json_object_object_get_ex(o, "config", &cfg) ? oci_jstr(cfg, "digest") : NULL;
	if (!dg || strcmp(dg, c->info.target_config_digest) != 0)
		r = fail(err, -EBADMSG,
		         "target manifest names config %.19s..., the delta carries %.19s...",
		         dg ? dg : "(none)", c->info.target_config_digest);
	c->info.target_manifest = c->map + f->off;
	c->info.target_manifest_len = (size_t)f->size;
	json_object_put(o);
	return r;
}

static int check_dimg_head(const struct cdimg *c, char **err)
{
	const uint8_t *h = c->map + c->info.dimg_offset;
	if (c->info.dimg_size < DIMG_HEADER_SIZE + DIMG_TRAILER_SIZE ||
	    memcmp(h, dimg_magic, 8) != 0)
		return fail(err, -EBADMSG, "the delta layer is not a .dimg");
	if (get_le32(h + 8) != DIMG_FORMAT_VERSION)
		return fail(err, -ENOTSUP, "the .dimg has format version %u (this cdimg reads %u)",
		            get_le32(h + 8), DIMG_FORMAT_VERSION);
	if (memcmp(h + 16, c->info.base_tree, 32) || memcmp(h + 48, c->info.target_tree, 32))
		return fail(err, -EBADMSG,
		            "the .dimg's tree ids differ from the manifest's annotations");
	return 0;
}

static int cdimg_map(struct cdimg *c, const char *path, char **err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int r = S_ISREG(st.st_mode) ? -errno : -EINVAL;
		close(fd);
		return r;
	}
	if (st.st_size < (off_t)OCITAR_BLOCK) {
		close(fd);
		return fail(err, -EOVERFLOW, "too short for a .cdimg (%lld bytes)",
		            (long long)st.st_size);
	}
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return -errno;
	c->map = m;
	c->len = (size_t)st.st_size;
	c->info.file_size = (uint64_t)st.st_size;
	return 0;
}

int cdimg_open(struct cdimg **out, const char *path, char **err)
{
	const struct tar_file *man = NULL;
	struct cdimg *c = calloc(1, sizeof(*c));
	int r;
	*out = NULL;
	if (err)
		*err = NULL;
	if (!c)
		return -ENOMEM;
	if ((r = cdimg_map(c, path, err)) < 0 || (r = tar_scan(c, err)) < 0 ||
	    (r = check_layout(c, err)) < 0 || (r = check_index(c, &man, err)) < 0 ||
	    (r = verify_blobs(c, err)) < 0 || (r = check_artifact(c, man, err)) < 0 ||
	    (r = check_target_manifest(c, err)) < 0 || (r = check_dimg_head(c, err)) < 0) {
		cdimg_free(c);
		return r;
	}
	snprintf(c->info.manifest_digest, OCI_DIGEST_LEN, "sha256:%s", man->name + 13);
	*out = c;
	return 0;
}

void cdimg_free(struct cdimg *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nfiles; i++)
		free(c->files[i].name);
	if (c->map)
		munmap((void *)c->map, c->len);
	free(c->manifest_type);
	free(c->ref);
	free(c);
}

const struct cdimg_info *cdimg_get_info(const struct cdimg *c)
{
	return &c->info;
}

const uint8_t *cdimg_dimg_bytes(const struct cdimg *c)
{
	return c->map + c->info.dimg_offset;
}

int cdimg_dimg_reader(const struct cdimg *c, struct dimg_reader **out)
{
	return dimg_reader_open_mem(out, c->map + c->info.dimg_offset, (size_t)c->info.dimg_size);
}

int cdimg_sniff(const char *path)
{
	uint8_t b[OCITAR_BLOCK];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, b, sizeof(b));
	int r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	if (n >= 8 && memcmp(b, dimg_magic, 8) == 0)
		return CDIMG_KIND_DIMG;
	if (n == (ssize_t)sizeof(b) && memcmp(b + 257, "ustar", 5) == 0)
		return CDIMG_KIND_CDIMG;
	return CDIMG_KIND_UNKNOWN;
}
