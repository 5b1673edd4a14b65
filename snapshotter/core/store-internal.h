/* The store's value format for one snapshot record (private to store*.c and
 * the unit test).
 *
 * A record is the LMDB value stored under the snapshot's key, little-endian:
 *
 *   off  size  field
 *     0     1  version (STORE_RECORD_VERSION)
 *     1     1  kind (1 view, 2 active, 3 committed)
 *     2     2  reserved, zero
 *     4     4  label count
 *     8     8  id
 *    16     8  created, seconds since the epoch (signed)
 *    24     8  updated, seconds since the epoch (signed)
 *    32     4  created, nanoseconds (< 1e9)
 *    36     4  updated, nanoseconds (< 1e9)
 *    40     4  parent length P, then P bytes of parent key
 *           then, per label: 4 key length K, K bytes, 4 value length V, V bytes
 *
 * Strings hold no NUL byte; nothing may follow the last label. */
#ifndef DI3FS_SNAP_STORE_INTERNAL_H
#define DI3FS_SNAP_STORE_INTERNAL_H

#include "snap_types.h"

#include <stddef.h>
#include <stdint.h>

#define STORE_RECORD_VERSION 1
#define STORE_RECORD_HEADER  40

/* Encodes info (its name is the LMDB key, not part of the record) into a
 * malloc'd buffer the caller frees. */
int store_record_encode(uint8_t **out, size_t *out_len, const struct snap_info *info);

/* Decodes a record into *out (caller clears it on success; on failure *out
 * is left empty), naming it key[0..key_len).
 * -EBADMSG when corrupt, -ENOTSUP for an unknown version. */
int store_record_decode(struct snap_info *out, const char *key, size_t key_len, const uint8_t *buf,
                        size_t len);

#endif
