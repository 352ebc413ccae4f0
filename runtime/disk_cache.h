/* The on-disk cache of compiled code shared by the backends (object files
 * of the cpu target, PTX and cubins of NVRTC), and the 128-bit hash that
 * keys its entries and checks their contents (runtime/disk_cache.c). It
 * needs nothing but libc, so that every backend can use it in any build.
 *
 * An entry is one file DIR/KEY.EXT:
 *    0  magic          8 bytes, the caller's ("SMELTOBJ", "SMELTCU\0")
 *    8  u32 format     SM_CACHE_FORMAT (little-endian)
 *   12  u32 0
 *   16  u64 length     of the payload (little-endian)
 *   24  16 bytes       sm_hash128 of the payload
 *   40  the payload
 * Reads check every field and the hash, so a truncated, corrupt or foreign
 * file is a miss; writes go to a unique temporary file in DIR that is then
 * renamed over the entry, so readers never see half a file and concurrent
 * writers of one key each rename a complete one. The cache is optional:
 * every failure is a miss or a write that did not happen, never an error. */
#ifndef SMELT_RUNTIME_DISK_CACHE_H
#define SMELT_RUNTIME_DISK_CACHE_H

#include "../src/internal.h"

/* ------------------------------------------------------------- hashing */
/* A streaming 128-bit hash (not cryptographic: it keys caches and catches
 * corruption, it does not resist an adversary). The result depends only on
 * the bytes fed, not on how they were split between calls. */
typedef struct sm_hasher {
  uint64_t lane[2];         /* the two 64-bit lanes of the state */
  unsigned char pending[16]; /* bytes not yet absorbed (a partial block) */
  size_t npending;
  uint64_t total;           /* bytes fed so far */
} sm_hasher;

void sm_hasher_init(sm_hasher *h);
/* Feeds raw bytes. */
void sm_hasher_update(sm_hasher *h, const void *data, size_t len);
/* Feeds one field: its length (8 bytes), then its bytes, so that a
 * sequence of fields cannot be read two ways ("ab","c" differs from
 * "a","bc"). */
void sm_hasher_field(sm_hasher *h, const void *data, size_t len);
/* A NUL-terminated string as a field; NULL counts as "". */
void sm_hasher_str(sm_hasher *h, const char *s);
/* The hash (16 bytes). The hasher is left unchanged, so more may be fed. */
void sm_hasher_final(const sm_hasher *h, unsigned char out[16]);
/* The hash as 32 lowercase hex digits and a NUL (a cache key). */
void sm_hasher_hex(const sm_hasher *h, char hex[33]);
/* The hash of one buffer. */
void sm_hash128(const void *data, size_t len, unsigned char out[16]);

/* --------------------------------------------------------------- files */
/* Version of the file layout above; bump it when the layout or the hash
 * changes. */
#define SM_CACHE_FORMAT 2u
/* Largest payload stored (larger ones are neither written nor read). */
#define SM_CACHE_MAX_PAYLOAD ((uint64_t)1 << 31)

/* The payload of DIR/KEY_HEX.EXT when that file is a valid entry with this
 * magic: sm_malloc'ed, followed by a NUL that *len does not count (so that
 * text reads as a string). NULL when missing, unreadable, truncated,
 * corrupt, of another magic or format, empty, or out of memory. */
unsigned char *sm_cache_read(const char *dir, const char *key_hex, const char *ext,
                             const char magic[8], size_t *len);
/* Stores the payload as DIR/KEY_HEX.EXT, creating DIR and its parents as
 * needed (mkdir -p). Failures are ignored; empty payloads are not stored. */
void sm_cache_write(const char *dir, const char *key_hex, const char *ext, const char magic[8],
                    const void *data, size_t len);

#endif
