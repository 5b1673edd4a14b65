/* Canonical JSON (sorted keys, no white space) for OCI documents, their
 * descriptors, and an image config rewritten for one squashed layer. */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "ociwrite.h"

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A scalar (or a key, as a string object) as json-c prints it. */
static int dump_scalar(struct json_object *o, struct dimg_buf *out)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                      JSON_C_TO_STRING_NOSLASHESCAPE);
	return s ? dimg_buf_append(out, s, strlen(s)) : -ENOMEM;
}

static int dump_key(const char *k, struct dimg_buf *out)
{
	struct json_object *ks = json_object_new_string(k);
	if (!ks)
		return -ENOMEM;
	int r = dump_scalar(ks, out);
	json_object_put(ks);
	return r;
}

static int dump_object(struct json_object *o, struct dimg_buf *out)
{
	size_t n = (size_t)json_object_object_length(o), i = 0;
	const char **keys = calloc(n ? n : 1, sizeof(*keys));
	int r = keys ? dimg_buf_append(out, "{", 1) : -ENOMEM;
	if (r < 0)
		goto out;
	json_object_object_foreach(o, k, v)
	{
		(void)v;
		keys[i++] = k;
	}
	qsort(keys, n, sizeof(*keys), cmp_str);
	for (i = 0; i < n && r == 0; i++) {
		if ((i && (r = dimg_buf_append(out, ",", 1)) < 0) ||
		    (r = dump_key(keys[i], out)) < 0 || (r = dimg_buf_append(out, ":", 1)) < 0)
			break;
		r = oci_json_dump(json_object_object_get(o, keys[i]), out);
	}
	if (r == 0)
		r = dimg_buf_append(out, "}", 1);
out:
	free(keys);
	return r;
}

int oci_json_dump(struct json_object *o, struct dimg_buf *out)
{
	int r;
	if (json_object_is_type(o, json_type_object))
		return dump_object(o, out);
	if (!json_object_is_type(o, json_type_array))
		return o ? dump_scalar(o, out) : dimg_buf_append(out, "null", 4);
	if ((r = dimg_buf_append(out, "[", 1)) < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(o); i++) {
		if ((i && (r = dimg_buf_append(out, ",", 1)) < 0) ||
		    (r = oci_json_dump(json_object_array_get_idx(o, i), out)) < 0)
			return r;
	}
	return dimg_buf_append(out, "]", 1);
}

struct json_object *oci_descriptor(const char *media_type, const char *digest, uint64_t size)
{
	struct json_object *d = json_object_new_object();
	if (!d)
		return NULL;
	if (json_object_object_add(d, "mediaType", json_object_new_string(media_type)) ||
	    json_object_object_add(d, "digest", json_object_new_string(digest)) ||
	    json_object_object_add(d, "size", json_object_new_int64((int64_t)size))) {
		json_object_put(d);
		return NULL;
	}
	return d;
}

/* ------------------------------------------------------- config rewrite */

#define SQUASH_COMMENT "di3fs: every layer of the image squashed into this one"

static int history_empty(struct json_object *h)
{
	struct json_object *e;
	return json_object_object_get_ex(h, "empty_layer", &e) && json_object_get_boolean(e);
}

static int squash_history(struct json_object *cfg)
{
	struct json_object *h, *add;
	ssize_t last = -1;
	if (!json_object_object_get_ex(cfg, "history", &h) ||
	    !json_object_is_type(h, json_type_array))
		return 0;
	size_t n = json_object_array_length(h);
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(h, i);
		if (json_object_is_type(e, json_type_object) && !history_empty(e))
			last = (ssize_t)i;
	}
	for (ssize_t i = 0; i < last; i++) {
		struct json_object *e = json_object_array_get_idx(h, (size_t)i);
		if (json_object_is_type(e, json_type_object) && !history_empty(e) &&
		    json_object_object_add(e, "empty_layer", json_object_new_boolean(1)))
			return -ENOMEM;
	}
	if (last >= 0)
		return json_object_object_add(json_object_array_get_idx(h, (size_t)last), "comment",
		                              json_object_new_string(SQUASH_COMMENT))
		           ? -ENOMEM
		           : 0;
	if (!(add = json_object_new_object()) ||
	    json_object_object_add(add, "comment", json_object_new_string(SQUASH_COMMENT)) ||
	    json_object_array_add(h, add)) {
		json_object_put(add);
		return -ENOMEM;
	}
	return 0;
}

int oci_config_squash(const uint8_t *cfg, size_t len, const char *diff_id, struct dimg_buf *out)
{
	struct json_object *o = NULL, *rootfs = NULL, *ids = NULL;
	int r = oci_json_parse(&o, cfg, len);
	if (r < 0)
		return r;
	if (!json_object_is_type(o, json_type_object)) {
		r = -EBADMSG;
		goto out;
	}
	r = -ENOMEM;
	if (!(rootfs = json_object_new_object()) || !(ids = json_object_new_array()) ||
	    json_object_array_add(ids, json_object_new_string(diff_id)))
		goto out;
	if (json_object_object_add(rootfs, "diff_ids", ids)) {
		json_object_put(ids);
		goto out;
	}
	ids = NULL;
	if (json_object_object_add(rootfs, "type", json_object_new_string("layers")) ||
	    json_object_object_add(o, "rootfs", rootfs))
		goto out;
	rootfs = NULL;
	if ((r = squash_history(o)) == 0)
		r = oci_json_dump(o, out);
out:
	json_object_put(ids);
	json_object_put(rootfs);
	json_object_put(o);
	return r;
}
