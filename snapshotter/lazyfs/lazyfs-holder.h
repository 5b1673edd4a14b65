/* What a lazyfs daemon and the fd holder process share (lazyfs_conn.c,
 * lazyfs_holder.c): the journal of requests being served and the messages
 * on the holder's socket. Both are between processes of one machine, so
 * native byte order; a daemon and a holder of another LAZYFS_WIRE_VERSION
 * do not talk.
 *
 * The journal is a memfd, created with the mount and kept by the holder:
 * page 0 is the head below, then LAZYFS_SLOTS slots of head->slot_size
 * bytes. Worker thread i reads each FUSE request straight into slot i and
 * zeroes the slot's fuse_in_header once it has answered, so a slot with a
 * header holds a request that a killed daemon may not have answered: the
 * next daemon answers it again (the kernel drops a second answer to the
 * same unique with ENOENT), and the holder fails it with EIO past the
 * wait. head->init is the connection's FUSE_INIT request, replayed to each
 * new daemon's libfuse session (the kernel sends INIT once per mount). */
#ifndef DI3FS_LAZYFS_HOLDER_H
#define DI3FS_LAZYFS_HOLDER_H

#include <stddef.h>
#include <stdint.h>

#define LAZYFS_WIRE_MAGIC   0x314a5a4cu /* "LZJ1" */
#define LAZYFS_WIRE_VERSION 1
#define LAZYFS_SLOTS        64
#define LAZYFS_INIT_MAX     512
#define LAZYFS_JOURNAL_HEAD 4096
/* A slot holds any request: the kernel wants a read buffer of max_write
 * (libfuse: 256 pages) plus headers. */
#define LAZYFS_SLOT_PAGES 258

struct lazyfs_journal_head {
	uint32_t magic;   /* LAZYFS_WIRE_MAGIC */
	uint32_t version; /* LAZYFS_WIRE_VERSION */
	uint32_t nslots;
	uint32_t init_len;
	uint64_t slot_size;
	uint64_t dev; /* st_dev of the mount: the connection */
	uint8_t init[LAZYFS_INIT_MAX];
};
_Static_assert(sizeof(struct lazyfs_journal_head) == 32 + LAZYFS_INIT_MAX, "journal head");
_Static_assert(sizeof(struct lazyfs_journal_head) <= LAZYFS_JOURNAL_HEAD, "journal head");

/* Messages on the holder's socket (SOCK_SEQPACKET), one struct each. */
enum lazyfs_holder_op {
	LAZYFS_HOLDER_ATTACH = 1, /* daemon: I serve now; wait_ms is my bound */
	LAZYFS_HOLDER_QUIT = 2,   /* exit, ending the connection */
	LAZYFS_HOLDER_FDS = 3,    /* holder: the fds, /dev/fuse then the journal */
	LAZYFS_HOLDER_BUSY = 4,   /* holder: another daemon is attached */
};

struct lazyfs_holder_msg {
	uint32_t magic;
	uint32_t version;
	uint32_t op;
	uint32_t wait_ms;
	int32_t pid; /* the sender's */
	uint32_t reserved;
};
_Static_assert(sizeof(struct lazyfs_holder_msg) == 24, "holder message");

/* The slot's request, if the header there is one: a length within the
 * slot and a unique id. */
int lazyfs_slot_pending(const uint8_t *slot, size_t slot_size);
/* Forgets the request in the slot (zeroes its header). */
void lazyfs_slot_clear(uint8_t *slot);
/* Slot i of a journal mapping. */
uint8_t *lazyfs_slot(uint8_t *journal, unsigned i);

#endif
