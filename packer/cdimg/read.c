/* .cdimg reader: an OCI layout tar read back with a bounded ustar parser
 * over a read-only mapping; every blob verified, the .dimg used in place. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cdimg-internal.h"
#include "cdimg.h"
#include "dimg/fileio.h"
#include "dimg/tar.h"
#include "ociwrite.h"

#define MAX_FILES 64u
#define MAX_PAX   (64u << 10)
#define MAX_JSON  (16u << 20)

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
	size_t pl = strnlen((const char *)h + DIMG_TAR_PREFIX, 155),
	       nl = strnlen((const char *)h, 100);
	const char *s = buf;
	if (pax_path) {
		s = pax_path;
	} else if (pl && memcmp(h + DIMG_TAR_MAGIC, "ustar\0", 6) == 0) {
		snprintf(buf, sizeof(buf), "%.*s/%.*s", (int)pl, (const char *)h + DIMG_TAR_PREFIX,
		         (int)nl, (const char *)h);
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

static int add_file(struct cdimg *c, char *name, uint64_t off, uint64_t size, struct dimg_err *err)
{
	for (size_t i = 0; i < c->nfiles; i++)
		if (!strcmp(c->files[i].name, name)) {
			dimg_err_set(err, 0, NULL, "entry '%s' appears twice", name);
			free(name);
			return -EBADMSG;
		}
	if (c->nfiles == MAX_FILES) {
		free(name);
		return dimg_err_set(err, -EBADMSG, NULL, "more than %u entries: not a .cdimg",
		                    MAX_FILES);
	}
	c->files[c->nfiles++] = (struct tar_file){name, off, size};
	return 0;
}

/* One header at *off: files recorded, pax state carried to the next. */
static int tar_entry(struct cdimg *c, uint64_t *off, struct pax *x, struct dimg_err *err)
{
	const uint8_t *h = c->map + *off;
	uint64_t size;
	if (!dimg_tar_checksum_ok(h))
		return dimg_err_set(err, -EBADMSG, NULL,
		                    "tar header at offset %" PRIu64 ": bad checksum", *off);
	if (memcmp(h + DIMG_TAR_MAGIC, "ustar", 5) != 0)
		return dimg_err_set(err, -EBADMSG, NULL,
		                    "offset %" PRIu64 ": not a ustar/pax tar header", *off);
	if (dimg_tar_num(h + DIMG_TAR_SIZE, 12, &size) < 0)
		return dimg_err_set(err, -EBADMSG, NULL,
		                    "tar header at offset %" PRIu64 ": bad size", *off);
	char type = (char)h[DIMG_TAR_TYPE];
	if ((type == '0' || type == '\0' || type == '7') && x->has_size)
		size = x->size;
	uint64_t data = *off + OCITAR_BLOCK, room = c->len - data;
	if (size > room || (size + OCITAR_BLOCK - 1) / OCITAR_BLOCK * OCITAR_BLOCK > room)
		return dimg_err_set(err, -EOVERFLOW, NULL,
		                    "entry at offset %" PRIu64 " runs past the end (truncated)",
		                    *off);
	*off = data + (size + OCITAR_BLOCK - 1) / OCITAR_BLOCK * OCITAR_BLOCK;
	if (type == 'x') {
		if (size > MAX_PAX || pax_parse(c->map + data, size, x) < 0)
			return dimg_err_set(err, -EBADMSG, NULL,
			                    "bad pax extended header at offset %" PRIu64, data);
		return 0;
	}
	if (type == 'g' || type == '5')
		return 0;
	if (type != '0' && type != '\0' && type != '7')
		return dimg_err_set(err, -EBADMSG, NULL,
		                    "unexpected tar entry type '%c' in a .cdimg", type);
	char *name = tar_name(h, x->path);
	free(x->path);
	*x = (struct pax){0};
	if (!name)
		return -ENOMEM;
	return add_file(c, name, data, size, err);
}

static int tar_scan(struct cdimg *c, struct dimg_err *err)
{
	struct pax x = {0};
	uint64_t off = 0;
	int r = 0;
	for (;;) {
		if (c->len - off < OCITAR_BLOCK) {
			r = dimg_err_set(err, -EOVERFLOW, NULL,
			                 "truncated: the archive has no end marker");
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
static int verify_blobs(const struct cdimg *c, struct dimg_err *err)
{
	for (size_t i = 0; i < c->nfiles; i++) {
		const struct tar_file *f = &c->files[i];
		char want[OCI_DIGEST_LEN], got[OCI_DIGEST_LEN];
		if (strncmp(f->name, "blobs/", 6) != 0)
			continue;
		if (strncmp(f->name, "blobs/sha256/", 13) != 0)
			return dimg_err_set(err, -ENOTSUP, NULL,
			                    "%s: only sha256 digests are supported", f->name);
		snprintf(want, sizeof(want), "sha256:%s", f->name + 13);
		if (!oci_digest_valid(want))
			return dimg_err_set(err, -EBADMSG, NULL, "%s: not a blob name", f->name);
		int r = oci_digest_buf(got, c->map + f->off, (size_t)f->size);
		if (r < 0)
			return r;
		if (strcmp(want, got) != 0)
			return dimg_err_set(err, -EBADMSG, NULL,
			                    "blob %.19s...: content does not match its digest",
			                    want);
	}
	return 0;
}

static int parse_file(const struct cdimg *c, const struct tar_file *f, struct json_object **o,
                      struct dimg_err *err)
{
	if (f->size > MAX_JSON)
		return dimg_err_set(err, -EOVERFLOW, NULL, "%s: too large for JSON", f->name);
	if (oci_json_parse(o, c->map + f->off, (size_t)f->size) < 0 ||
	    !json_object_is_type(*o, json_type_object)) {
		json_object_put(*o);
		*o = NULL;
		return dimg_err_set(err, -EBADMSG, NULL, "%s: not a JSON object", f->name);
	}
	return 0;
}

/* A descriptor of the expected media type whose blob is present with the
 * size it names. */
static int check_desc(const struct cdimg *c, struct json_object *d, const char *what,
                      const char *media, const struct tar_file **blob, struct dimg_err *err)
{
	const char *mt = oci_jstr(d, "mediaType"), *dg = oci_jstr(d, "digest");
	uint64_t size;
	if (!mt || !dg || oci_ju64(d, "size", &size) < 0)
		return dimg_err_set(err, -EBADMSG, NULL,
		                    "%s: descriptor lacks mediaType, digest or size", what);
	if (strcmp(mt, media) != 0)
		return dimg_err_set(err, -ENOTSUP, NULL,
		                    "%s: media type '%s' is not supported (expected %s)", what, mt,
		                    media);
	if (!oci_digest_valid(dg))
		return dimg_err_set(err, -ENOTSUP, NULL,
		                    "%s: digest '%.80s' is not a sha256 digest", what, dg);
	if (!(*blob = find_blob(c, dg)))
		return dimg_err_set(err, -EBADMSG, NULL, "%s: blob %.19s... is missing", what, dg);
	if (size != (*blob)->size)
		return dimg_err_set(err, -EBADMSG, NULL,
		                    "%s: blob is %" PRIu64 " bytes, its descriptor says %" PRIu64,
		                    what, (*blob)->size, size);
	return 0;
}

static int check_layout(const struct cdimg *c, struct dimg_err *err)
{
	const struct tar_file *f = find_file(c, "oci-layout");
	struct json_object *o = NULL;
	if (!f)
		return dimg_err_set(err, -EBADMSG, NULL,
		                    "not an OCI image layout: no oci-layout file");
	int r = parse_file(c, f, &o, err);
	if (r == 0) {
		const char *v = oci_jstr(o, "imageLayoutVersion");
		if (!v || strcmp(v, "1.0.0") != 0)
			r = dimg_err_set(
			    err, -ENOTSUP, NULL,
			    "oci-layout: version '%s' is not supported (expected 1.0.0)",
			    v ? v : "(none)");
	}
	json_object_put(o);
	return r;
}

/* index.json: one manifest, the artifact; gives its blob. */
static int check_index(const struct cdimg *c, const struct tar_file **man, struct dimg_err *err)
{
	const struct tar_file *f = find_file(c, "index.json");
	struct json_object *o = NULL, *ms;
	uint64_t sv;
	if (!f)
		return dimg_err_set(err, -EBADMSG, NULL, "not an OCI image layout: no index.json");
	int r = parse_file(c, f, &o, err);
	if (r < 0)
		return r;
	const char *mt = oci_jstr(o, "mediaType");
	if (oci_ju64(o, "schemaVersion", &sv) < 0 || sv != 2 || (mt && strcmp(mt, OCI_MT_INDEX)))
		r = dimg_err_set(err, -ENOTSUP, NULL,
		                 "index.json: not an OCI image index (schemaVersion 2)");
	else if (!json_object_object_get_ex(o, "manifests", &ms) ||
	         !json_object_is_type(ms, json_type_array) || json_object_array_length(ms) == 0)
		r = dimg_err_set(err, -EBADMSG, NULL, "index.json: no manifests");
	else if (json_object_array_length(ms) != 1)
		r = dimg_err_set(err, -ENOTSUP, NULL,
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

static int read_annotations(struct cdimg *c, struct json_object *an, struct dimg_err *err)
{
	struct cdimg_info *in = &c->info;
	const char *v = oci_jstr(an, CDIMG_ANNOT_VERSION),
	           *bc = oci_jstr(an, CDIMG_ANNOT_BASE_CONFIG);
	const char *tm = oci_jstr(an, CDIMG_ANNOT_TARGET_MANIFEST);
	const char *mt = oci_jstr(an, CDIMG_ANNOT_TARGET_MANIFEST_TYPE),
	           *ref = oci_jstr(an, CDIMG_ANNOT_TARGET_REF);
	if (!v)
		return dimg_err_set(err, -EBADMSG, NULL, "manifest: annotation %s is missing",
		                    CDIMG_ANNOT_VERSION);
	if (strcmp(v, "1") != 0)
		return dimg_err_set(
		    err, -ENOTSUP, NULL,
		    "delta format version '%.20s' is not supported (this cdimg reads 1)", v);
	in->dimg_version = 1;
	if (!bc || !oci_digest_valid(bc) || !tm || !oci_digest_valid(tm) || !mt)
		return dimg_err_set(
		    err, -EBADMSG, NULL,
		    "manifest: base config / target manifest annotations are missing or malformed");
	if (parse_tree_id(oci_jstr(an, CDIMG_ANNOT_BASE_TREE), in->base_tree) < 0 ||
	    parse_tree_id(oci_jstr(an, CDIMG_ANNOT_TARGET_TREE), in->target_tree) < 0)
		return dimg_err_set(err, -EBADMSG, NULL,
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
static int check_layers_blob(struct cdimg *c, struct json_object *d, struct dimg_err *err)
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
static int check_artifact(struct cdimg *c, const struct tar_file *mf, struct dimg_err *err)
{
	struct json_object *o = NULL, *cfg, *layers, *an;
	const struct tar_file *cf, *df, *tf;
	uint64_t sv;
	int r = parse_file(c, mf, &o, err);
	if (r < 0)
		return r;
	const char *at = oci_jstr(o, "artifactType");
	if (oci_ju64(o, "schemaVersion", &sv) < 0 || sv != 2)
		r = dimg_err_set(err, -ENOTSUP, NULL, "manifest: schemaVersion is not 2");
	else if (!at || strcmp(at, DI3FS_ARTIFACT_TYPE) != 0)
		r = dimg_err_set(err, -ENOTSUP, NULL,
		                 "artifact type '%s' is not a di3fs delta (expected %s)",
		                 at ? at : "(none)", DI3FS_ARTIFACT_TYPE);
	else if (!json_object_object_get_ex(o, "config", &cfg) ||
	         !json_object_object_get_ex(o, "layers", &layers) ||
	         !json_object_is_type(layers, json_type_array) ||
	         json_object_array_length(layers) < 2 || json_object_array_length(layers) > 3 ||
	         !json_object_object_get_ex(o, "annotations", &an))
		r = dimg_err_set(
		    err, -EBADMSG, NULL,
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
			return dimg_err_set(
			    err, -EBADMSG, NULL,
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
static int check_target_manifest(struct cdimg *c, struct dimg_err *err)
{
	const struct tar_file *f = find_blob(c, c->info.target_manifest_digest);
	struct json_object *o = NULL, *cfg;
	if (!f)
		return dimg_err_set(err, -EBADMSG, NULL, "target manifest %.19s... is missing",
		                    c->info.target_manifest_digest);
	int r = parse_file(c, f, &o, err);
	if (r < 0)
		return r;
	const char *dg =
	    json_object_object_get_ex(o, "config", &cfg) ? oci_jstr(cfg, "digest") : NULL;
	if (!dg || strcmp(dg, c->info.target_config_digest) != 0)
		r = dimg_err_set(
		    err, -EBADMSG, NULL,
		    "target manifest names config %.19s..., the delta carries %.19s...",
		    dg ? dg : "(none)", c->info.target_config_digest);
	c->info.target_manifest = c->map + f->off;
	c->info.target_manifest_len = (size_t)f->size;
	json_object_put(o);
	return r;
}

static int check_dimg_head(const struct cdimg *c, struct dimg_err *err)
{
	const uint8_t *h = c->map + c->info.dimg_offset;
	if (c->info.dimg_size < DIMG_HEADER_SIZE + DIMG_TRAILER_SIZE ||
	    memcmp(h, cdimg_dimg_magic, 8) != 0)
		return dimg_err_set(err, -EBADMSG, NULL, "the delta layer is not a .dimg");
	if (cdimg_le32(h + 8) != DIMG_FORMAT_VERSION)
		return dimg_err_set(err, -ENOTSUP, NULL,
		                    "the .dimg has format version %u (this cdimg reads %u)",
		                    cdimg_le32(h + 8), DIMG_FORMAT_VERSION);
	if (memcmp(h + 16, c->info.base_tree, 32) || memcmp(h + 48, c->info.target_tree, 32))
		return dimg_err_set(err, -EBADMSG, NULL,
		                    "the .dimg's tree ids differ from the manifest's annotations");
	return 0;
}

static int cdimg_map(struct cdimg *c, const char *path, struct dimg_err *err)
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
		return dimg_err_set(err, -EOVERFLOW, NULL, "too short for a .cdimg (%lld bytes)",
		                    (long long)st.st_size);
	}
	/* Loaded, not mapped: a sparse .cdimg on a full tmpfs would SIGBUS. */
	int r = dimg_file_load(fd, &c->map, &c->len);
	close(fd);
	if (r < 0)
		return r;
	c->info.file_size = c->len;
	return 0;
}

int cdimg_open(struct cdimg **out, const char *path, struct dimg_err *err)
{
	const struct tar_file *man = NULL;
	struct cdimg *c = calloc(1, sizeof(*c));
	int r;
	*out = NULL;
	if (!c)
		return -ENOMEM;
	if ((r = cdimg_map(c, path, err)) < 0 || (r = tar_scan(c, err)) < 0 ||
	    (r = check_layout(c, err)) < 0 || (r = check_index(c, &man, err)) < 0 ||
	    (r = verify_blobs(c, err)) < 0 || (r = check_artifact(c, man, err)) < 0 ||
	    (r = check_target_manifest(c, err)) < 0 || (r = check_dimg_head(c, err)) < 0) {
		cdimg_free(c);
		return dimg_err_what(err, r, path);
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
	dimg_file_unload(c->map, c->len);
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
	if (n >= 8 && memcmp(b, cdimg_dimg_magic, 8) == 0)
		return CDIMG_KIND_DIMG;
	if (n == (ssize_t)sizeof(b) && memcmp(b + 257, "ustar", 5) == 0)
		return CDIMG_KIND_CDIMG;
	return CDIMG_KIND_UNKNOWN;
}

int cdimg_open_delta(const char *path, struct cdimg **c, struct dimg_reader **rd,
                     struct dimg_err *err)
{
	int r = cdimg_sniff(path);
	*c = NULL;
	*rd = NULL;
	if (r == CDIMG_KIND_UNKNOWN)
		return dimg_err_set(err, -EBADMSG, path, "not a .dimg or .cdimg delta");
	if (r == CDIMG_KIND_DIMG && (r = dimg_reader_open(rd, path)) < 0)
		return dimg_err_set(err, r, path, NULL);
	if (r != CDIMG_KIND_CDIMG)
		return r < 0 ? dimg_err_set(err, r, path, NULL) : 0;
	if ((r = cdimg_open(c, path, err)) == 0 && (r = cdimg_dimg_reader(*c, rd)) < 0) {
		cdimg_free(*c);
		*c = NULL;
		return dimg_err_set(err, r, path, "the .dimg inside: %s", dimg_strerror(r));
	}
	return r;
}
