/* Strict JSON for OCI documents (json-c): one document, bounded size,
 * typed member access, descriptors. */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "dimg/oci.h"

int oci_json_parse(struct json_object **out, const void *buf, size_t len)
{
	const char *s = buf;
	*out = NULL;
	if (len > OCI_JSON_MAX)
		return -EFBIG;
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	struct json_object *o = json_tokener_parse_ex(tok, s, (int)len);
	int ok = o && json_tokener_get_error(tok) == json_tokener_success;
	for (size_t i = ok ? json_tokener_get_parse_end(tok) : len; ok && i < len; i++)
		ok = s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t';
	json_tokener_free(tok);
	if (!ok) {
		json_object_put(o);
		return -EBADMSG;
	}
	*out = o;
	return 0;
}

static struct json_object *jget(struct json_object *o, const char *key, json_type type)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

const char *oci_jstr(struct json_object *o, const char *key)
{
	struct json_object *v = jget(o, key, json_type_string);
	if (!v)
		return NULL;
	const char *s = json_object_get_string(v);
	return strlen(s) == (size_t)json_object_get_string_len(v) ? s : NULL;
}

struct json_object *oci_jobj(struct json_object *o, const char *key)
{
	return jget(o, key, json_type_object);
}

struct json_object *oci_jarr(struct json_object *o, const char *key)
{
	return jget(o, key, json_type_array);
}

int oci_ju64(struct json_object *o, const char *key, uint64_t *out)
{
	struct json_object *v = jget(o, key, json_type_int);
	if (!v || json_object_get_int64(v) < 0)
		return -EBADMSG;
	*out = (uint64_t)json_object_get_int64(v);
	return 0;
}

const char *oci_jannot(struct json_object *o, const char *key)
{
	return oci_jstr(oci_jobj(o, "annotations"), key);
}

int oci_desc_parse(struct oci_desc *d, struct json_object *o)
{
	int r = oci_digest_parse(d->digest, oci_jstr(o, "digest"));
	if (r == 0)
		r = oci_ju64(o, "size", &d->size);
	d->media_type = oci_jstr(o, "mediaType");
	d->artifact_type = oci_jstr(o, "artifactType");
	return r;
}

struct json_object *oci_desc_json(const char *mt, const uint8_t d[32], uint64_t size)
{
	char ds[OCI_DIGEST_LEN];
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	oci_digest_str(ds, d);
	if (json_object_object_add(o, "mediaType", json_object_new_string(mt)) < 0 ||
	    json_object_object_add(o, "digest", json_object_new_string(ds)) < 0 ||
	    json_object_object_add(o, "size", json_object_new_int64((int64_t)size)) < 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}
