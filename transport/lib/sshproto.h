/* The ssh:// agent protocol (docs/ssh-protocol.md): frames of
 * type:u8 len:u32be payload over the ssh channel, their fields, the
 * hello. Shared by the client backend (ssh.c) and the agent
 * (ssh_agent.c). */
#ifndef DI3FS_SSHPROTO_H
#define DI3FS_SSHPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "dimg/types.h"

#define SSHP_VERSION  1u
#define SSHP_MAGIC    "DI3FSAG"             /* 8 bytes with its NUL */
#define SSHP_DATA_MAX (1u << 20)            /* a DATA frame's payload, and most frames' */
#define SSHP_JSON_MAX ((16u << 20) + 4096u) /* MANIFEST and PUT_MANIFEST */
#define SSHP_STR_MAX  4096u
#define SSHP_HAS_MAX  16384u /* descriptors in one HAS_BLOBS */

enum sshp_type {
	/* client -> agent */
	SSHP_HELLO = 0x01,
	SSHP_OPEN = 0x02,
	SSHP_GET_MANIFEST = 0x03,
	SSHP_GET_MANIFEST_DIGEST = 0x04,
	SSHP_HAS_BLOBS = 0x05,
	SSHP_GET_BLOB = 0x06,
	SSHP_PUT_MANIFEST = 0x07,
	SSHP_PUT_BLOB = 0x08,
	SSHP_COMMIT = 0x09,
	/* both ways */
	SSHP_DATA = 0x10,
	SSHP_END = 0x11,
	/* agent -> client */
	SSHP_OK = 0x80,
	SSHP_HELLO_REPLY = 0x81,
	SSHP_ERROR = 0x82,
	SSHP_MANIFEST = 0x83,
	SSHP_HAS = 0x84,
	SSHP_OFFSET = 0x85,
};

/* One end of the channel: frames read into buf (grown up to the limit of
 * their type). */
struct sshp_conn {
	int in, out;
	uint8_t *buf;
	size_t cap;
	uint8_t type;            /* the last frame read */
	size_t len;              /* its payload's length, in buf */
	uint64_t sent, received; /* bytes on the channel */
	const char *peer;        /* names the other end in errors */
};

/* Writes one frame (payload may be NULL when len is 0). -EPIPE when the
 * other end is gone. */
int sshp_send(struct sshp_conn *c, uint8_t type, const void *p, size_t len, struct dimg_err *err);
/* Reads one frame into c->type, c->buf, c->len: -EPROTO for an unknown
 * type or one longer than its type allows, a frame cut short; -ECONNRESET
 * at end of stream before a frame. */
int sshp_recv(struct sshp_conn *c, struct dimg_err *err);
void sshp_free(struct sshp_conn *c);
const char *sshp_type_name(uint8_t type);

/* A payload being built: grown as fields are put (bad set on ENOMEM). */
struct sshp_out {
	uint8_t *p;
	size_t n, cap;
	int bad;
};
void sshp_put(struct sshp_out *o, const void *p, size_t n);
void sshp_u8(struct sshp_out *o, uint8_t v);
void sshp_u32(struct sshp_out *o, uint32_t v);
void sshp_u64(struct sshp_out *o, uint64_t v);
void sshp_str(struct sshp_out *o, const char *s); /* NULL: "" */
/* Sends o's payload as a frame of type and frees it. */
int sshp_send_out(struct sshp_conn *c, uint8_t type, struct sshp_out *o, struct dimg_err *err);

/* A payload being read: every get past its end sets bad. */
struct sshp_in {
	const uint8_t *p;
	size_t n, off;
	int bad;
};
void sshp_in_init(struct sshp_in *in, const struct sshp_conn *c);
uint8_t sshp_get_u8(struct sshp_in *in);
uint32_t sshp_get_u32(struct sshp_in *in);
uint64_t sshp_get_u64(struct sshp_in *in);
void sshp_get_raw(struct sshp_in *in, void *out, size_t n);
/* A string (malloc'd, NUL-terminated, at most SSHP_STR_MAX bytes, no NUL
 * inside) or NULL with bad set. */
char *sshp_get_str(struct sshp_in *in);
/* -EPROTO naming the frame when in is bad, or has bytes left and exact. */
int sshp_in_end(struct sshp_in *in, const struct sshp_conn *c, int exact, struct dimg_err *err);

/* The hello both ends send first (type HELLO or HELLO_REPLY). */
int sshp_send_hello(struct sshp_conn *c, uint8_t type, uint32_t version, struct dimg_err *err);
/* Reads the other end's hello into *version: -EPROTO when it is not one. */
int sshp_recv_hello(struct sshp_conn *c, uint8_t type, uint32_t *version, struct dimg_err *err);

/* An ERROR frame's payload from rc and err; and back into err (returns
 * the -errno it carries). */
int sshp_send_error(struct sshp_conn *c, int rc, const struct dimg_err *e, struct dimg_err *err);
int sshp_take_error(const struct sshp_conn *c, struct dimg_err *err);
/* c's last frame must be want (an ERROR becomes its error): 0 or -errno. */
int sshp_expect(const struct sshp_conn *c, uint8_t want, struct dimg_err *err);

#endif
