/* Frames of the ssh:// agent protocol (docs/ssh-protocol.md): written and
 * read whole, every length checked against its type's limit before
 * anything is allocated, fields put and got big-endian. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sshproto.h"

static const struct {
	uint8_t type;
	const char *name;
	uint32_t max;
} sshp_types[] = {
    {SSHP_HELLO, "HELLO", 12},
    {SSHP_OPEN, "OPEN", 4 * SSHP_STR_MAX},
    {SSHP_GET_MANIFEST, "GET_MANIFEST", 0},
    {SSHP_GET_MANIFEST_DIGEST, "GET_MANIFEST_DIGEST", 32},
    {SSHP_HAS_BLOBS, "HAS_BLOBS", 4 + 40 * SSHP_HAS_MAX},
    {SSHP_GET_BLOB, "GET_BLOB", 52 + SSHP_STR_MAX},
    {SSHP_PUT_MANIFEST, "PUT_MANIFEST", SSHP_JSON_MAX},
    {SSHP_PUT_BLOB, "PUT_BLOB", 44 + SSHP_STR_MAX},
    {SSHP_COMMIT, "COMMIT", 0},
    {SSHP_DATA, "DATA", SSHP_DATA_MAX},
    {SSHP_END, "END", 0},
    {SSHP_OK, "OK", 0},
    {SSHP_HELLO_REPLY, "HELLO_REPLY", 12},
    {SSHP_ERROR, "ERROR", 12 + 2 * SSHP_STR_MAX},
    {SSHP_MANIFEST, "MANIFEST", SSHP_JSON_MAX},
    {SSHP_HAS, "HAS", 4 + SSHP_HAS_MAX},
    {SSHP_OFFSET, "OFFSET", 8},
};

static int sshp_find(uint8_t type)
{
	for (size_t i = 0; i < sizeof(sshp_types) / sizeof(sshp_types[0]); i++)
		if (sshp_types[i].type == type)
			return (int)i;
	return -1;
}

const char *sshp_type_name(uint8_t type)
{
	int i = sshp_find(type);
	return i < 0 ? "unknown" : sshp_types[i].name;
}

static int sshp_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == ENOTSOCK)
			k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EPIPE;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int sshp_send(struct sshp_conn *c, uint8_t type, const void *p, size_t len, struct dimg_err *err)
{
	uint8_t h[5] = {type, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
	                (uint8_t)len};
	int r = sshp_write_all(c->out, h, sizeof(h));
	if (r == 0 && len)
		r = sshp_write_all(c->out, p, len);
	if (r < 0)
		return dimg_err_set(err, r == -ECONNRESET ? -EPIPE : r, c->peer,
		                    "the connection closed while sending frame %s",
		                    sshp_type_name(type));
	c->sent += sizeof(h) + len;
	return 0;
}

/* n bytes, or fewer at the end of the stream: the count or -errno. */
static ssize_t sshp_read_all(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = read(fd, p + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

static int sshp_grow(struct sshp_conn *c, size_t len)
{
	if (len <= c->cap)
		return 0;
	uint8_t *p = realloc(c->buf, len);
	if (!p)
		return -ENOMEM;
	c->buf = p;
	c->cap = len;
	return 0;
}

int sshp_recv(struct sshp_conn *c, struct dimg_err *err)
{
	uint8_t h[5];
	ssize_t k = sshp_read_all(c->in, h, sizeof(h));
	if (k == 0)
		return dimg_err_set(err, -ECONNRESET, c->peer, "the connection closed");
	if (k < 0 || k < (ssize_t)sizeof(h))
		return dimg_err_set(err, k < 0 ? (int)k : -EPROTO, c->peer,
		                    "a frame header cut short");
	uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
	int i = sshp_find(h[0]);
	if (i < 0)
		return dimg_err_set(err, -EPROTO, c->peer, "a frame of unknown type 0x%02x", h[0]);
	if (len > sshp_types[i].max)
		return dimg_err_set(err, -EPROTO, c->peer,
		                    "frame %s of %u bytes, more than its limit of %u",
		                    sshp_types[i].name, len, sshp_types[i].max);
	if (sshp_grow(c, len) < 0)
		return dimg_err_set(err, -ENOMEM, c->peer, NULL);
	k = sshp_read_all(c->in, c->buf, len);
	if (k < (ssize_t)len)
		return dimg_err_set(err, k < 0 ? (int)k : -EPROTO, c->peer,
		                    "frame %s cut short: %zd of %u bytes", sshp_types[i].name,
		                    k < 0 ? 0 : k, len);
	c->type = h[0];
	c->len = len;
	c->received += sizeof(h) + len;
	return 0;
}

void sshp_free(struct sshp_conn *c)
{
	free(c->buf);
	c->buf = NULL;
	c->cap = c->len = 0;
}

void sshp_put(struct sshp_out *o, const void *p, size_t n)
{
	if (o->bad || n == 0)
		return;
	if (o->n + n > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (cap < o->n + n)
			cap *= 2;
		uint8_t *q = realloc(o->p, cap);
		if (!q) {
			o->bad = 1;
			return;
		}
		o->p = q;
		o->cap = cap;
	}
	memcpy(o->p + o->n, p, n);
	o->n += n;
}

void sshp_u8(struct sshp_out *o, uint8_t v)
{
	sshp_put(o, &v, 1);
}

void sshp_u32(struct sshp_out *o, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	sshp_put(o, b, 4);
}

void sshp_u64(struct sshp_out *o, uint64_t v)
{
	sshp_u32(o, (uint32_t)(v >> 32));
	sshp_u32(o, (uint32_t)v);
}

void sshp_str(struct sshp_out *o, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n > SSHP_STR_MAX)
		n = SSHP_STR_MAX;
	sshp_u32(o, (uint32_t)n);
	sshp_put(o, s, n);
}

int sshp_send_out(struct sshp_conn *c, uint8_t type, struct sshp_out *o, struct dimg_err *err)
{
	int r = o->bad ? -ENOMEM : sshp_send(c, type, o->p, o->n, err);
	free(o->p);
	memset(o, 0, sizeof(*o));
	return r;
}

void sshp_in_init(struct sshp_in *in, const struct sshp_conn *c)
{
	*in = (struct sshp_in){.p = c->buf, .n = c->len};
}

void sshp_get_raw(struct sshp_in *in, void *out, size_t n)
{
	if (in->bad || n > in->n - in->off) {
		in->bad = 1;
		memset(out, 0, n);
		return;
	}
	memcpy(out, in->p + in->off, n);
	in->off += n;
}

uint8_t sshp_get_u8(struct sshp_in *in)
{
	uint8_t v;
	sshp_get_raw(in, &v, 1);
	return v;
}

uint32_t sshp_get_u32(struct sshp_in *in)
{
	uint8_t b[4];
	sshp_get_raw(in, b, 4);
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

uint64_t sshp_get_u64(struct sshp_in *in)
{
	uint64_t hi = sshp_get_u32(in);
	return hi << 32 | sshp_get_u32(in);
}

char *sshp_get_str(struct sshp_in *in)
{
	uint32_t n = sshp_get_u32(in);
	if (in->bad || n > SSHP_STR_MAX || n > in->n - in->off || memchr(in->p + in->off, 0, n)) {
		in->bad = 1;
		return NULL;
	}
	char *s = strndup((const char *)in->p + in->off, n);
	in->off += n;
	in->bad |= !s;
	return s;
}

int sshp_in_end(struct sshp_in *in, const struct sshp_conn *c, int exact, struct dimg_err *err)
{
	if (!in->bad && (!exact || in->off == in->n))
		return 0;
	return dimg_err_set(err, -EPROTO, c->peer, "a malformed frame %s (%zu bytes)",
	                    sshp_type_name(c->type), c->len);
}

int sshp_send_hello(struct sshp_conn *c, uint8_t type, uint32_t version, struct dimg_err *err)
{
	struct sshp_out o = {0};
	sshp_put(&o, SSHP_MAGIC, 8);
	sshp_u32(&o, version);
	return sshp_send_out(c, type, &o, err);
}

int sshp_recv_hello(struct sshp_conn *c, uint8_t type, uint32_t *version, struct dimg_err *err)
{
	struct sshp_in in;
	char magic[8];
	int r = sshp_recv(c, err);
	if (r < 0)
		return r;
	sshp_in_init(&in, c);
	sshp_get_raw(&in, magic, 8);
	*version = sshp_get_u32(&in);
	if (c->type != type || in.bad || memcmp(magic, SSHP_MAGIC, 8) != 0)
		return dimg_err_set(err, -EPROTO, c->peer,
		                    "not a cdimg agent: its first frame is not a hello");
	return 0;
}

int sshp_send_error(struct sshp_conn *c, int rc, const struct dimg_err *e, struct dimg_err *err)
{
	struct sshp_out o = {0};
	sshp_u32(&o, (uint32_t)(rc < 0 ? -rc : EIO));
	sshp_str(&o, e->what);
	sshp_str(&o, e->why[0] ? e->why : strerror(rc < 0 ? -rc : EIO));
	return sshp_send_out(c, SSHP_ERROR, &o, err);
}

int sshp_take_error(const struct sshp_conn *c, struct dimg_err *err)
{
	struct sshp_in in;
	sshp_in_init(&in, c);
	uint32_t code = sshp_get_u32(&in);
	char *what = sshp_get_str(&in), *why = sshp_get_str(&in);
	int r = sshp_in_end(&in, c, 1, err);
	if (r == 0) {
		r = code > 0 && code < 4096 ? -(int)code : -EIO;
		dimg_err_set(err, r, what[0] ? what : c->peer, "%s", why);
	}
	free(what);
	free(why);
	return r;
}

int sshp_expect(const struct sshp_conn *c, uint8_t want, struct dimg_err *err)
{
	if (c->type == want)
		return 0;
	if (c->type == SSHP_ERROR)
		return sshp_take_error(c, err);
	return dimg_err_set(err, -EPROTO, c->peer, "frame %s where %s was due",
	                    sshp_type_name(c->type), sshp_type_name(want));
}
