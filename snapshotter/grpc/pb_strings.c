/* The string fields of a request, checked on the wire before protobuf-c
 * unpacks them into NUL-terminated C strings, where "k\0a" would become
 * "k": a string holding a NUL byte is refused, so that no two keys name
 * the same snapshot. Walks the fields with the message's descriptor, into
 * sub-messages (map entries, Info) too. */
#include "grpc_methods.h"

#include <errno.h>
#include <string.h>

/* Nesting deeper than any Snapshots request: a deeper one is refused. */
#define PB_DEPTH_MAX 8

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -EBADMSG;
}

/* Skips a field of wire type wt; LEN fields are the caller's. */
static int skip_fixed(const uint8_t **p, const uint8_t *end, unsigned wt)
{
	uint64_t v;
	size_t n = wt == WIRE_I64 ? 8 : 4;
	if (wt == WIRE_VARINT)
		return read_varint(p, end, &v);
	if ((wt != WIRE_I64 && wt != WIRE_I32) || (size_t)(end - *p) < n)
		return -EBADMSG; /* groups are not proto3 */
	*p += n;
	return 0;
}

static int check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, int depth)
{
	const uint8_t *end = p + len;
	while (p < end) {
		uint64_t key, n;
		int r = read_varint(&p, end, &key);
		unsigned wt = (unsigned)(key & 7);
		if (r == 0 && wt != WIRE_LEN) {
			r = skip_fixed(&p, end, wt);
			if (r < 0)
				return r;
			continue;
		}
		if (r < 0 || read_varint(&p, end, &n) < 0 || n > (uint64_t)(end - p))
			return -EBADMSG;
		const ProtobufCFieldDescriptor *f =
		    key >> 3 <= UINT32_MAX
		        ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
		        : NULL;
		if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, (size_t)n))
			return -EINVAL;
		if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
			r = depth < PB_DEPTH_MAX ? check(f->descriptor, p, (size_t)n, depth + 1)
			                         : -EBADMSG;
			if (r < 0)
				return r;
		}
		p += n;
	}
	return 0;
}

int rpc_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len)
{
	return check(d, p, len, 0);
}
