/* The registry form of a .cdimg (docs/FORMAT.md "Delta artifact in a
 * registry"): an OCI 1.1 artifact manifest whose subject is the target
 * image's manifest, config the empty descriptor, layers the .dimg and the
 * layer recipes. The target's manifest and config are not layers here: the
 * subject names them, and they are the target image's own blobs in the
 * same repository. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cdimg.h"
#include "ociwrite.h"

static int annot(struct json_object *a, const char *k, const char *v)
{
	struct json_object *s = json_object_new_string(v);
	if (!s || json_object_object_add(a, k, s)) {
		json_object_put(s);
		return -ENOMEM;
	}
	return 0;
}

static int annot_hex(struct json_object *a, const char *k, const uint8_t id[32])
{
	char hex[65];
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", id[i]);
	return annot(a, k, hex);
}

/* os/arch[/variant] of the target's config, "" when it does not say. */
static void config_platform(const struct cdimg_info *in, char *out, size_t n)
{
	struct json_object *o = NULL;
	struct oci_platform p;

	out[0] = 0;
	if (oci_json_parse(&o, in->target_config, in->target_config_len) < 0)
		return;
	oci_platform_from_json(&p, o);
	if (p.os[0] && p.arch[0])
		oci_platform_str(out, n, &p);
	json_object_put(o);
}

static struct json_object *annotations(const struct cdimg_info *in)
{
	struct json_object *a = json_object_new_object();
	char ver[16], plat[128];
	int r = a ? 0 : -ENOMEM;

	snprintf(ver, sizeof(ver), "%u", in->dimg_version);
	config_platform(in, plat, sizeof(plat));
	if (!r)
		r = annot(a, CDIMG_ANNOT_VERSION, ver);
	if (!r)
		r = annot(a, CDIMG_ANNOT_BASE_CONFIG, in->base_config_digest);
	if (!r)
		r = annot_hex(a, CDIMG_ANNOT_BASE_TREE, in->base_tree);
	if (!r)
		r = annot_hex(a, CDIMG_ANNOT_TARGET_TREE, in->target_tree);
	if (!r)
		r = annot(a, CDIMG_ANNOT_TARGET_MANIFEST, in->target_manifest_digest);
	if (!r)
		r = annot(a, CDIMG_ANNOT_TARGET_MANIFEST_TYPE, in->target_manifest_media_type);
	if (!r)
		r = annot(a, CDIMG_ANNOT_TARGET_CONFIG, in->target_config_digest);
	if (!r && in->target_ref)
		r = annot(a, CDIMG_ANNOT_TARGET_REF, in->target_ref);
	if (!r && plat[0])
		r = annot(a, CDIMG_ANNOT_PLATFORM, plat);
	if (r) {
		json_object_put(a);
		return NULL;
	}
	return a;
}

static int add(struct json_object *o, const char *k, struct json_object *v)
{
	if (!v || json_object_object_add(o, k, v)) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int push_desc(struct json_object *arr, struct json_object *d)
{
	if (!d || json_object_array_add(arr, d)) {
		json_object_put(d);
		return -ENOMEM;
	}
	return 0;
}

int cdimg_registry_manifest(const struct cdimg *c, struct dimg_buf *out, struct dimg_err *err)
{
	const struct cdimg_info *in = cdimg_get_info(c);
	struct json_object *o = json_object_new_object(), *layers = json_object_new_array();
	int r = o && layers ? 0 : -ENOMEM;

	if (!r)
		r = push_desc(layers,
		              oci_descriptor(DI3FS_MT_DIMG, in->dimg_digest, in->dimg_size));
	if (!r && in->layers)
		r = push_desc(layers,
		              oci_descriptor(DI3FS_MT_LAYERS, in->layers_digest, in->layers_size));
	if (!r) {
		r = add(o, "layers", layers);
		layers = NULL;
	}
	if (!r)
		r = add(o, "annotations", annotations(in));
	if (!r)
		r = add(o, "artifactType", json_object_new_string(DI3FS_ARTIFACT_TYPE));
	if (!r)
		r = add(o, "config", oci_descriptor(OCI_MT_EMPTY, OCI_EMPTY_DIGEST, 2));
	if (!r)
		r = add(o, "mediaType", json_object_new_string(OCI_MT_MANIFEST));
	if (!r)
		r = add(o, "schemaVersion", json_object_new_int(2));
	if (!r)
		r = add(o, "subject",
		        oci_descriptor(in->target_manifest_media_type, in->target_manifest_digest,
		                       in->target_manifest_len));
	if (!r)
		r = oci_json_dump(o, out);
	json_object_put(layers);
	json_object_put(o);
	return r < 0 ? dimg_err_set(err, r, NULL, "cannot build the artifact manifest") : 0;
}
