/* Encoding and checked decoding of the store's snapshot records; the format
 * is described in store-internal.h. */
#include "store-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int record_size(size_t *out, const struct snap_info *info)
{
	size_t n = STORE_RECORD_HEADER + 4 + strlen(info->parent ? info->parent : "");

	if (info->labels.n > UINT32_MAX)
		return -EOVERFLOW;
	for (size_t i = 0; i < info->labels.n; i++) {
		size_t k = strlen(info->labels.v[i].key), v = strlen(info->labels.v[i].value);
		if (k > UINT32_MAX || v > UINT32_MAX || n > SIZE_MAX - 8 - k - v)
			return -EOVERFLOW;
		n += 8 + k + v;
	}
	*out = n;
	return 0;
}

static uint8_t *put_str(uint8_t *p, const char *s)
{
	size_t len = strlen(s);

	put_le(p, len, 4);
	memcpy(p + 4, s, len);
	return p + 4 + len;
}

int store_record_encode(uint8_t **out, size_t *out_len, const struct snap_info *info)
{
	size_t len;
	int r = record_size(&len, info);

	if (r < 0)
		return r;
	uint8_t *buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	buf[0] = STORE_RECORD_VERSION;
	buf[1] = (uint8_t)info->kind;
	put_le(buf + 4, info->labels.n, 4);
	put_le(buf + 8, info->id, 8);
	put_le(buf + 16, (uint64_t)(int64_t)info->created.tv_sec, 8);
	put_le(buf + 24, (uint64_t)(int64_t)info->updated.tv_sec, 8);
	put_le(buf + 32, (uint64_t)info->created.tv_nsec, 4);
	put_le(buf + 36, (uint64_t)info->updated.tv_nsec, 4);
	uint8_t *p = put_str(buf + STORE_RECORD_HEADER, info->parent ? info->parent : "");
	for (size_t i = 0; i < info->labels.n; i++) {
		p = put_str(p, info->labels.v[i].key);
		p = put_str(p, info->labels.v[i].value);
	}
	*out = buf;
	*out_len = len;
	return 0;
}

/* Reads a length-prefixed string at *off into a new C string. */
static int get_str(char **out, const uint8_t *buf, size_t len, size_t *off)
{
	if (len - *off < 4)
		return -EBADMSG;
	uint64_t n = get_le(buf + *off, 4);
	*off += 4;
	if (n > len - *off || memchr(buf + *off, 0, n))
		return -EBADMSG;
	char *s = malloc(n + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, buf + *off, n);
	s[n] = 0;
	*off += n;
	*out = s;
	return 0;
}

static int decode_header(struct snap_info *out, const uint8_t *buf, size_t len, uint32_t *n_labels)
{
	if (len < STORE_RECORD_HEADER)
		return -EBADMSG;
	if (buf[0] != STORE_RECORD_VERSION)
		return -ENOTSUP;
	if (buf[1] < SNAP_KIND_VIEW || buf[1] > SNAP_KIND_COMMITTED || get_le(buf + 2, 2) != 0)
		return -EBADMSG;
	out->kind = (enum snap_kind)buf[1];
	*n_labels = (uint32_t)get_le(buf + 4, 4);
	out->id = get_le(buf + 8, 8);
	out->created.tv_sec = (time_t)(int64_t)get_le(buf + 16, 8);
	out->updated.tv_sec = (time_t)(int64_t)get_le(buf + 24, 8);
	uint64_t cn = get_le(buf + 32, 4), un = get_le(buf + 36, 4);
	if (cn >= 1000000000 || un >= 1000000000 || out->id == 0)
		return -EBADMSG;
	out->created.tv_nsec = (long)cn;
	out->updated.tv_nsec = (long)un;
	/* every label takes at least 8 bytes: bound the count before allocating */
	if (*n_labels > (len - STORE_RECORD_HEADER) / 8)
		return -EBADMSG;
	return 0;
}

static int decode_labels(struct snap_labels *l, uint32_t n, const uint8_t *buf, size_t len,
                         size_t *off)
{
	l->v = calloc(n ? n : 1, sizeof(*l->v));
	if (!l->v)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		int r = get_str(&l->v[i].key, buf, len, off);
		if (r == 0) {
			l->n = i + 1;
			r = get_str(&l->v[i].value, buf, len, off);
		}
		if (r < 0)
			return r;
		/* sorted and unique, or snap_labels_* lookups would go wrong */
		if (i > 0 && strcmp(l->v[i - 1].key, l->v[i].key) >= 0)
			return -EBADMSG;
	}
	return 0;
}

int store_record_decode(struct snap_info *out, const char *key, size_t key_len, const uint8_t *buf,
                        size_t len)
{
	uint32_t n_labels;
	size_t off = STORE_RECORD_HEADER;
	int r;

	memset(out, 0, sizeof(*out));
	if (memchr(key, 0, key_len))
		return -EBADMSG;
	r = decode_header(out, buf, len, &n_labels);
	if (r < 0) {
		memset(out, 0, sizeof(*out));
		return r;
	}
	out->name = malloc(key_len + 1);
	if (!out->name)
		return -ENOMEM;
	memcpy(out->name, key, key_len);
	out->name[key_len] = 0;
	r = get_str(&out->parent, buf, len, &off);
	if (r == 0)
		r = decode_labels(&out->labels, n_labels, buf, len, &off);
	if (r == 0 && off != len)
		r = -EBADMSG;
	if (r < 0)
		snap_info_clear(out);
	return r;
}
