/* The on-disk cache of compiled code and its 128-bit hash. The layout of
 * an entry is described in disk_cache.h. */
#include "disk_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------- hashing */

/* Two 64-bit lanes absorb 16-byte blocks. Each word goes through a
 * bijective avalanche mix (xor-shift-multiply: every input bit flips about
 * half of the output bits) before it meets the state, and each lane's
 * update adds in a rotation of the other lane, so a difference anywhere
 * spreads over both lanes within one block. For a fixed block the update
 * can be inverted, so distinct states never merge. */

#define LANE_A0 0xa0761d6478bd642full /* initial lanes: arbitrary odd constants */
#define LANE_B0 0xe7037ed1a0b428dbull
#define WORD_B_TWEAK 0x9e3779b97f4a7c15ull /* keeps the lanes' updates distinct */

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static uint64_t avalanche(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

static uint64_t load_le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void store_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void absorb(uint64_t lane[2], uint64_t w0, uint64_t w1) {
  lane[0] = avalanche(lane[0] ^ w0) + rotl64(lane[1], 29);
  lane[1] = avalanche(lane[1] ^ w1 ^ WORD_B_TWEAK) + rotl64(lane[0], 31);
}

static void absorb_block(uint64_t lane[2], const unsigned char *p) {
  absorb(lane, load_le64(p), load_le64(p + 8));
}

void sm_hasher_init(sm_hasher *h) {
  memset(h, 0, sizeof *h);
  h->lane[0] = LANE_A0;
  h->lane[1] = LANE_B0;
}

void sm_hasher_update(sm_hasher *h, const void *data, size_t len) {
  const unsigned char *p = data;
  h->total += len;
  if (h->npending) {
    size_t take = 16 - h->npending < len ? 16 - h->npending : len;
    memcpy(h->pending + h->npending, p, take);
    h->npending += take;
    p += take;
    len -= take;
    if (h->npending < 16) return;
    absorb_block(h->lane, h->pending);
    h->npending = 0;
  }
  for (; len >= 16; p += 16, len -= 16) absorb_block(h->lane, p);
  memcpy(h->pending, p, len);
  h->npending = len;
}

void sm_hasher_field(sm_hasher *h, const void *data, size_t len) {
  unsigned char n[8];
  store_le64(n, len);
  sm_hasher_update(h, n, 8);
  if (len) sm_hasher_update(h, data, len);
}

void sm_hasher_str(sm_hasher *h, const char *s) { sm_hasher_field(h, s, s ? strlen(s) : 0); }

void sm_hasher_final(const sm_hasher *h, unsigned char out[16]) {
  uint64_t lane[2] = {h->lane[0], h->lane[1]};
  if (h->npending) {
    /* the zero padding is told apart from real zeros by the length below */
    unsigned char block[16] = {0};
    memcpy(block, h->pending, h->npending);
    absorb_block(lane, block);
  }
  absorb(lane, h->total, ~h->total);
  uint64_t lo = avalanche(lane[0] ^ rotl64(lane[1], 32));
  uint64_t hi = avalanche(lane[1] + lo);
  store_le64(out, lo);
  store_le64(out + 8, hi);
}

void sm_hasher_hex(const sm_hasher *h, char hex[33]) {
  static const char digits[] = "0123456789abcdef";
  unsigned char out[16];
  sm_hasher_final(h, out);
  for (int i = 0; i < 16; i++) {
    hex[2 * i] = digits[out[i] >> 4];
    hex[2 * i + 1] = digits[out[i] & 15];
  }
  hex[32] = 0;
}

void sm_hash128(const void *data, size_t len, unsigned char out[16]) {
  sm_hasher h;
  sm_hasher_init(&h);
  sm_hasher_update(&h, data, len);
  sm_hasher_final(&h, out);
}

/* --------------------------------------------------------------- files */

#define HEADER_BYTES 40

static void store_le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t load_le32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
  return v;
}

static char *entry_path(const char *dir, const char *key_hex, const char *ext) {
  return sm_fmt("%s/%s.%s", dir, key_hex, ext);
}

/* read(2) until n bytes arrived; false on an error or an early end. */
static bool read_all(int fd, unsigned char *p, size_t n) {
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= (size_t)r;
  }
  return true;
}

unsigned char *sm_cache_read(const char *dir, const char *key_hex, const char *ext,
                             const char magic[8], size_t *len) {
  *len = 0;
  char *path = entry_path(dir, key_hex, ext);
  if (!path) return NULL;
  /* O_NONBLOCK: a FIFO by an entry's name must not hang the compile (it
   * opens at once, then is no regular file: a miss) */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  sm_free(path);
  if (fd < 0) return NULL;
  unsigned char *data = NULL;
  struct stat st;
  unsigned char hdr[HEADER_BYTES];
  /* sizes are checked against the file before anything is allocated */
  if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size <= HEADER_BYTES ||
      (uint64_t)st.st_size > SM_CACHE_MAX_PAYLOAD + HEADER_BYTES)
    goto miss;
  if (!read_all(fd, hdr, HEADER_BYTES)) goto miss;
  uint64_t n = load_le64(hdr + 16);
  if (memcmp(hdr, magic, 8) || load_le32(hdr + 8) != SM_CACHE_FORMAT || load_le32(hdr + 12) ||
      n != (uint64_t)st.st_size - HEADER_BYTES)
    goto miss;
  data = sm_malloc((size_t)n + 1);
  if (!data || !read_all(fd, data, (size_t)n)) goto miss;
  data[n] = 0;
  unsigned char sum[16];
  sm_hash128(data, (size_t)n, sum);
  if (memcmp(sum, hdr + 24, 16)) goto miss;
  close(fd);
  *len = (size_t)n;
  return data;
miss:
  sm_free(data);
  close(fd);
  return NULL;
}

void sm_cache_write(const char *dir, const char *key_hex, const char *ext, const char magic[8],
                    const void *data, size_t len) {
  if (!len || (uint64_t)len > SM_CACHE_MAX_PAYLOAD || sm_make_dirs(dir)) return;
  /* a hidden name: listings of the cache show complete entries only */
  char *tmp = sm_fmt("%s/.%s.%s.tmp.XXXXXX", dir, key_hex, ext);
  char *path = entry_path(dir, key_hex, ext);
  if (!tmp || !path) goto out;
  int fd = mkstemp(tmp);
  if (fd < 0) goto out;
  unsigned char hdr[HEADER_BYTES] = {0};
  memcpy(hdr, magic, 8);
  store_le32(hdr + 8, SM_CACHE_FORMAT);
  store_le64(hdr + 16, len);
  sm_hash128(data, len, hdr + 24);
  bool ok = sm_write_all(fd, hdr, HEADER_BYTES) && sm_write_all(fd, data, len);
  ok = !close(fd) && ok;
  /* no fsync: after a crash a torn entry fails its hash and is a miss */
  if (!ok || rename(tmp, path)) unlink(tmp);
out:
  sm_free(tmp);
  sm_free(path);
}
