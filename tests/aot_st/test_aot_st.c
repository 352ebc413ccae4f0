/* The checkpoint functions of AOT headers (src/aot_safetensors.c), through
 * four headers written by gen.c and included together (their names must
 * not collide): tst (every dtype, scalars, empty tensors, rank 8, names
 * that need JSON escapes), two (the tensors of a file written by Python's
 * safetensors package), big (megabytes) and nil (no params). Checked:
 * round trips; saved bytes equal to sm_st_write_file's; files with the
 * tensors and the data in any order, escapes and metadata load; every
 * malformed or mismatched file fails with a message naming the problem
 * and leaves the params as they were; err NULL and short; file errors;
 * atomic saves.
 *
 * This file is compiled as C99 with -Wall -Wextra -Wpedantic -Werror (see
 * meson.build), so a warning in the generated code fails the build. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "safetensors.h"

#include "big.h"
#include "nil.h"
#include "tst.h"
#include "two.h"

/* ------------------------------------------------------------- models */

/* A model's table and functions, whatever its prefix. */
typedef struct info {
  const char *name, *dtype;
  int rank;
  const int64_t *shape;
  size_t bytes, offset;
} info;

typedef struct model {
  size_t n, size; /* params, bytes of storage */
  info p[16];
  int (*save)(const void *params, const char *path, char *err, size_t errlen);
  int (*load)(void *params, const char *path, char *err, size_t errlen);
} model;

#define MODEL(m, pre, PRE)                                                                      \
  do {                                                                                          \
    size_t i_;                                                                                  \
    memset((m), 0, sizeof *(m));                                                                \
    (m)->n = PRE##_NUM_PARAMS;                                                                  \
    ck_assert_uint_le((m)->n, 16);                                                              \
    for (i_ = 0; i_ < (m)->n; i_++) {                                                           \
      const info in_ = {pre##_params_info[i_].name,  pre##_params_info[i_].dtype,               \
                        pre##_params_info[i_].rank,  pre##_params_info[i_].shape,               \
                        pre##_params_info[i_].bytes, pre##_params_info[i_].offset};             \
      (m)->p[i_] = in_;                                                                         \
      if (in_.offset + in_.bytes > (m)->size) (m)->size = in_.offset + in_.bytes;               \
    }                                                                                           \
    (m)->size += 64; /* and some padding after the last param */                                \
    (m)->save = pre##_params_save;                                                              \
    (m)->load = pre##_params_load;                                                              \
  } while (0)

static model tst, two, big, nil;

static smelt_dtype dtype_of(const char *name) {
  int d;
  for (d = 0; d < SMELT_DTYPE_COUNT; d++)
    if (strcmp(smelt_dtype_name((smelt_dtype)d), name) == 0) return (smelt_dtype)d;
  ck_abort_msg("unknown dtype %s", name);
  return SMELT_F32;
}

static int is_bool(const info *in) { return strcmp(in->dtype, "bool") == 0; }

/* New storage for m: every byte (the padding between params too) from
 * seed, bool params 0 or 1. */
static unsigned char *storage(const model *m, unsigned seed) {
  unsigned char *s = malloc(m->size);
  size_t i, k;
  ck_assert_ptr_nonnull(s);
  for (k = 0; k < m->size; k++) s[k] = (unsigned char)(seed * 131 + k * 7 + (k >> 8));
  for (i = 0; i < m->n; i++)
    if (is_bool(&m->p[i]))
      for (k = 0; k < m->p[i].bytes; k++) s[m->p[i].offset + k] &= 1;
  return s;
}

static unsigned char *copy_of(const model *m, const unsigned char *s) {
  unsigned char *c = malloc(m->size);
  ck_assert_ptr_nonnull(c);
  memcpy(c, s, m->size);
  return c;
}

/* m's params in s as smelt's tensors (for sm_st_write_file), in the order
 * of perm (NULL: the table's). */
static void as_tensors(const model *m, const unsigned char *s, const size_t *perm,
                       sm_st_tensor *t) {
  size_t i;
  memset(t, 0, 16 * sizeof *t);
  for (i = 0; i < m->n; i++) {
    const info *in = &m->p[perm ? perm[i] : i];
    t[i].name = in->name;
    t[i].dtype = dtype_of(in->dtype);
    t[i].rank = in->rank;
    memcpy(t[i].dims, in->shape, (size_t)in->rank * sizeof(int64_t));
    t[i].data = s + in->offset;
    t[i].nbytes = in->bytes;
  }
}

/* ---------------------------------------------------------------- files */

static char dir[512];

static void setup(void) {
  const char *base = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/smelt-aot-st-XXXXXX", base && *base ? base : "/tmp");
  ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
  MODEL(&tst, tst, TST);
  MODEL(&two, two, TWO);
  MODEL(&big, big, BIG);
  MODEL(&nil, nil, NIL);
}

/* Removes the directory and everything in it (files, empty directories). */
static void teardown(void) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char p[1024];
  if (!d) return;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    chmod(p, 0700);
    if (unlink(p) != 0) rmdir(p);
  }
  closedir(d);
  rmdir(dir);
}

static const char *in_dir(const char *name) {
  static char p[4][1024];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
  return p[k];
}

/* Number of entries in dir (no temporary file may stay behind). */
static int dir_entries(void) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  ck_assert_ptr_nonnull(d);
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
  closedir(d);
  return n;
}

static void write_bytes(const char *path, const void *b, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
  ck_assert_uint_eq(fwrite(b, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
}

/* The whole file (malloc'ed, NUL-terminated). */
static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  size_t cap = 1 << 12, n = 0;
  unsigned char *b = malloc(cap + 1);
  ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
  for (;;) {
    n += fread(b + n, 1, cap - n, f);
    if (n < cap) break;
    cap *= 2;
    b = realloc(b, cap + 1);
  }
  fclose(f);
  b[n] = 0;
  *len = n;
  return b;
}

/* A safetensors file from a header (its length is prepended, nothing is
 * padded) and data. */
static void write_st(const char *path, const char *header, size_t hlen, const void *data,
                     size_t dlen) {
  unsigned char *b = malloc(8 + hlen + dlen + 1);
  size_t k;
  for (k = 0; k < 8; k++) b[k] = (unsigned char)((unsigned long long)hlen >> (8 * k));
  memcpy(b + 8, header, hlen);
  if (dlen) memcpy(b + 8 + hlen, data, dlen);
  write_bytes(path, b, 8 + hlen + dlen);
  free(b);
}

/* ------------------------------------------------------------- checks */

/* Loads path into storage filled from a seed: the load must fail, leave
 * every byte of the storage as it was, and give a message that starts
 * with "path: " and equals want (exact) or holds it. what names the case
 * (a line or an index in a table) in failures. */
static void load_fails_(const model *m, const char *path, const char *want, int exact, long what) {
  unsigned char *s = storage(m, 99), *before = copy_of(m, s);
  char err[600];
  size_t plen = strlen(path);
  memset(err, 0, sizeof err);
  ck_assert_msg(m->load(s, path, err, sizeof err) == -1, "case %ld: load succeeded", what);
  ck_assert_msg(strncmp(err, path, plen) == 0 && strncmp(err + plen, ": ", 2) == 0,
                "case %ld: message without the path: '%s'", what, err);
  if (exact && want[strlen(want) - 1] == '*') /* a prefix */
    ck_assert_msg(strncmp(err, want, strlen(want) - 1) == 0,
                  "case %ld: message\n  '%s', not\n  '%s'", what, err, want);
  else if (exact)
    ck_assert_msg(strcmp(err, want) == 0, "case %ld: message\n  '%s', not\n  '%s'", what, err,
                  want);
  else
    ck_assert_msg(strstr(err, want) != NULL, "case %ld: message '%s' lacks '%s'", what, err, want);
  ck_assert_msg(memcmp(s, before, m->size) == 0, "case %ld: the load changed the params", what);
  free(s);
  free(before);
}
#define LOAD_FAILS_EXACTLY(m, path, want) load_fails_((m), (path), (want), 1, __LINE__)

/* Loads path and checks that the params equal those of want and that the
 * bytes between params did not change. */
static void load_equals(const model *m, const char *path, const unsigned char *want) {
  unsigned char *s = storage(m, 77), *before = copy_of(m, s);
  char err[512] = "";
  size_t i;
  ck_assert_msg(m->load(s, path, err, sizeof err) == 0, "%s", err);
  for (i = 0; i < m->n; i++) {
    const info *in = &m->p[i];
    ck_assert_msg(memcmp(s + in->offset, want + in->offset, in->bytes) == 0, "param %s differs",
                  in->name);
    memset(s + in->offset, 0, in->bytes);
    memset(before + in->offset, 0, in->bytes);
  }
  ck_assert_msg(memcmp(s, before, m->size) == 0, "the load changed bytes outside the params");
  free(s);
  free(before);
}

/* Saves s with m's save and checks the bytes against sm_st_write_file's
 * for the same tensors. */
static void save_like_smelt(const model *m, const unsigned char *s, const char *name) {
  sm_st_tensor t[16];
  char err[512] = "", ref[600];
  unsigned char *a, *b;
  size_t alen, blen;
  ck_assert_msg(m->save(s, in_dir(name), err, sizeof err) == 0, "%s", err);
  as_tensors(m, s, NULL, t);
  snprintf(ref, sizeof ref, "%s.ref", in_dir(name));
  ck_assert_msg(sm_st_write_file(ref, t, m->n, NULL, 0, err, sizeof err) == 0, "%s", err);
  a = slurp(in_dir(name), &alen);
  b = slurp(ref, &blen);
  ck_assert_uint_eq(alen, blen);
  ck_assert_msg(memcmp(a, b, alen) == 0, "saved '%.2000s', smelt writes '%.2000s'", a + 8, b + 8);
  ck_assert_int_eq(unlink(ref), 0);
  free(a);
  free(b);
}

/* ------------------------------------------------------------ the tests */

START_TEST(round_trip) {
  unsigned char *a = storage(&tst, 1);
  char err[512] = "";
  ck_assert_msg(tst.save(a, in_dir("a.st"), err, sizeof err) == 0, "%s", err);
  ck_assert_int_eq(dir_entries(), 1); /* no temporary file left */
  load_equals(&tst, in_dir("a.st"), a);
  /* saving again replaces the file */
  a[tst.p[0].offset] ^= 0x55;
  ck_assert_msg(tst.save(a, in_dir("a.st"), err, sizeof err) == 0, "%s", err);
  ck_assert_int_eq(dir_entries(), 1);
  load_equals(&tst, in_dir("a.st"), a);
  free(a);
}
END_TEST

START_TEST(same_bytes_as_smelt) {
  unsigned char *a = storage(&tst, 2), *b = storage(&two, 3), *c = storage(&nil, 4);
  unsigned char *d = storage(&big, 5);
  size_t alen;
  unsigned char *img;
  save_like_smelt(&tst, a, "tst.st");
  save_like_smelt(&two, b, "two.st");
  save_like_smelt(&nil, c, "nil.st");
  d[big.p[1].offset + 7] = 0x80; /* a bool byte saved as 1 */
  save_like_smelt(&big, d, "big.st");
  d[big.p[1].offset + 7] = 1;
  load_equals(&big, in_dir("big.st"), d);
  img = slurp(in_dir("nil.st"), &alen);
  ck_assert_uint_eq(alen, 16);
  ck_assert(memcmp(img, "\x08\0\0\0\0\0\0\0{}      ", 16) == 0);
  free(img);
  /* the header as the Python library writes it */
  img = slurp(in_dir("tst.st"), &alen);
  ck_assert_msg(strstr((char *)img + 8, "{\"q\\\"uo\\\\te/\":{\"dtype\":\"I64\",\"shape\":[2],"
                                        "\"data_offsets\":[0,16]},\"step\":{\"dtype\":\"I64\","
                                        "\"shape\":[],\"data_offsets\":[16,24]},") != NULL,
                "%s", img + 8);
  ck_assert_msg(strstr((char *)img + 8, "\"\xc3\xa9t\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80 "
                                        "\\u0001\\t\\n\\u001f\x7f\":{\"dtype\":\"F32\"") != NULL,
                "%s", img + 8);
  ck_assert_msg(strstr((char *)img + 8, "\"r8\":{\"dtype\":\"I32\",\"shape\":[1,2,1,1,1,1,1,2]") !=
                    NULL, "%s", img + 8);
  free(img);
  free(a);
  free(b);
  free(c);
  free(d);
}
END_TEST

/* Bool bytes other than 0 and 1 are saved (and so loaded) as 1, as smelt
 * does. */
START_TEST(bools_saved_as_0_or_1) {
  unsigned char *a = storage(&tst, 5);
  const info *mask = NULL;
  size_t i;
  for (i = 0; i < tst.n; i++)
    if (strcmp(tst.p[i].name, "mask") == 0) mask = &tst.p[i];
  ck_assert_ptr_nonnull(mask);
  a[mask->offset] = 0, a[mask->offset + 1] = 2, a[mask->offset + 2] = 255;
  a[mask->offset + 3] = 1;
  save_like_smelt(&tst, a, "a.st");
  a[mask->offset + 1] = 1, a[mask->offset + 2] = 1;
  load_equals(&tst, in_dir("a.st"), a);
  free(a);
}
END_TEST

/* Written by the safetensors Python package 0.8.0 (the st_mixed fixture of
 * tests/test_safetensors.c):
 * save({"w": (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3),
 *       "b": np.array([0.25, -1e300, 3], np.float64), "i": np.array([[-4, 3], [2147483647, -2147483648]], np.int32),
 *       "n": np.array(-7, np.int64), "m": np.array([True, False, True, True]), "e": np.zeros((0, 3), np.float32)},
 *      metadata={"format": "pt"}) */
static const char st_mixed[] =
    "p\x01\x00\x00\x00\x00\x00\x00{\"__metadata__\":{\"format\":\"pt\"},\"n\":{\"dtype\":\"I64"
    "\",\"shape\":[],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F64\",\"shape\":[3],\"data_off"
    "sets\":[8,32]},\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[32,32]},\"w\":{"
    "\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[32,56]},\"i\":{\"dtype\":\"I32\",\"sh"
    "ape\":[2,2],\"data_offsets\":[56,72]},\"m\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offs"
    "ets\":[72,76]}}   \xf9\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\xd0\?\x9cu\x00"
    "\x88<\xe4"
    "7\xfe\x00\x00\x00\x00\x00\x00\x08@\x00\x00\x80\xbf\x00\x00\x00\xbf\x00\x00\x00"
    "\x00\x00\x00\x00\?\x00\x00\x80\?\x00\x00\xc0\?\xfc\xff\xff\xff\x03\x00\x00\x00\xff\xff\xff"
    "\x7f\x00\x00\x00\x80\x01\x00\x01\x01";

START_TEST(python_file) {
  unsigned char *s = storage(&two, 6);
  char err[512] = "";
  float w[6];
  double b[3];
  int32_t i[4];
  int64_t n;
  size_t k;
  write_bytes(in_dir("py.st"), st_mixed, sizeof st_mixed - 1);
  ck_assert_msg(two.load(s, in_dir("py.st"), err, sizeof err) == 0, "%s", err);
  /* the table's order: w b i n m e */
  memcpy(w, s + two.p[0].offset, sizeof w);
  memcpy(b, s + two.p[1].offset, sizeof b);
  memcpy(i, s + two.p[2].offset, sizeof i);
  memcpy(&n, s + two.p[3].offset, sizeof n);
  for (k = 0; k < 6; k++) ck_assert(w[k] == (float)k * 0.5f - 1);
  ck_assert(b[0] == 0.25 && b[1] == -1e300 && b[2] == 3);
  ck_assert(i[0] == -4 && i[1] == 3 && i[2] == INT32_MAX && i[3] == INT32_MIN);
  ck_assert(n == -7);
  ck_assert(memcmp(s + two.p[4].offset, "\1\0\1\1", 4) == 0);
  /* saved back: the Python file without its metadata */
  save_like_smelt(&two, s, "back.st");
  free(s);
}
END_TEST

/* Appends name as JSON with every escape a writer may use: \uXXXX for
 * everything outside printable ASCII (surrogate pairs above U+FFFF,
 * upper-case hex), "\/" for '/', "\u0065" for 'e'. */
static void json_name(sm_buf *b, const char *name) {
  const unsigned char *p = (const unsigned char *)name;
  sm_buf_puts(b, "\"");
  while (*p) {
    unsigned long c = *p;
    int len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4, k;
    if (len > 1) c &= 0x3f >> (len - 1);
    for (k = 1; k < len; k++) c = c << 6 | (p[k] & 0x3f);
    p += len;
    if (c == '/') sm_buf_puts(b, "\\/");
    else if (c == 'e') sm_buf_puts(b, "\\u0065");
    else if (c == '"' || c == '\\') sm_buf_printf(b, "\\%c", (int)c);
    else if (c >= 0x20 && c < 0x7f) sm_buf_printf(b, "%c", (int)c);
    else if (c < 0x10000) sm_buf_printf(b, "\\u%04lX", c);
    else
      sm_buf_printf(b, "\\u%04lX\\u%04lx", 0xd800 + ((c - 0x10000) >> 10),
                    0xdc00 + ((c - 0x10000) & 0x3ff));
  }
  sm_buf_puts(b, "\"");
}

/* tst's params in s as a file unlike smelt's: the header in the table's
 * order, pretty-printed, names escaped by json_name, keys in another
 * order, metadata among the tensors, no padding; the data in the reverse
 * order. */
static void write_unusual(const unsigned char *s, const char *meta) {
  sm_buf h = {0};
  unsigned char *d = malloc(tst.size);
  size_t i, j, at = 0;
  int k;
  for (i = tst.n; i-- > 0;) {
    memcpy(d + at, s + tst.p[i].offset, tst.p[i].bytes);
    at += tst.p[i].bytes;
  }
  sm_buf_puts(&h, " {\n");
  for (i = 0; i < tst.n; i++) {
    const info *in = &tst.p[i];
    unsigned long long begin = 0;
    for (j = i + 1; j < tst.n; j++) begin += tst.p[j].bytes;
    if (i == 3) sm_buf_printf(&h, "  \"__metadata__\" : %s,\n", meta);
    sm_buf_puts(&h, "  ");
    json_name(&h, in->name);
    sm_buf_printf(&h, " : {\"shape\" : [ ");
    for (k = 0; k < in->rank; k++)
      sm_buf_printf(&h, "%s%lld", k ? " , " : "", (long long)in->shape[k]);
    sm_buf_printf(&h, " ],\t\"data_offsets\":[%llu,\r\n%llu], \"dtype\": \"%s\"}%s\n", begin,
                  begin + in->bytes, sm_st_dtype_name(dtype_of(in->dtype)),
                  i + 1 < tst.n ? "," : "");
  }
  sm_buf_puts(&h, "}\n\t ");
  ck_assert(!h.oom);
  write_st(in_dir("u.st"), h.data, h.len, d, at);
  sm_buf_free(&h);
  free(d);
}

START_TEST(any_order_and_escapes) {
  unsigned char *a = storage(&tst, 8);
  sm_st_tensor t[16];
  sm_st_meta meta[2] = {{"format", "pt"}, {"k\xc3\xa9y", "v\n\"\xe2\x80\xa8"}};
  size_t perm[16], i;
  char err[512] = "";
  write_unusual(a, "{\"format\": \"pt\", \"x\\u00e9\": \"\\ud83d\\ude00\\\"\", \"\": \"\"}");
  load_equals(&tst, in_dir("u.st"), a);
  write_unusual(a, "null");
  load_equals(&tst, in_dir("u.st"), a);
  write_unusual(a, "{}");
  load_equals(&tst, in_dir("u.st"), a);
  /* sm_st_write_file with the tensors in another order and metadata */
  for (i = 0; i < tst.n; i++) perm[i] = (i * 5 + 3) % tst.n;
  as_tensors(&tst, a, perm, t);
  ck_assert_msg(sm_st_write_file(in_dir("s.st"), t, tst.n, meta, 2, err, sizeof err) == 0, "%s",
                err);
  load_equals(&tst, in_dir("s.st"), a);
  free(a);
}
END_TEST

/* The image of a file saved from tst: header and data, to be mutated. */
typedef struct image {
  char *h; /* the header, NUL-terminated */
  size_t hlen;
  unsigned char *data;
  size_t dlen;
} image;

static image saved_image(void) {
  unsigned char *a = storage(&tst, 9), *b;
  char err[512] = "";
  size_t len;
  image im;
  ck_assert_msg(tst.save(a, in_dir("a.st"), err, sizeof err) == 0, "%s", err);
  b = slurp(in_dir("a.st"), &len);
  im.hlen = (size_t)b[0] | (size_t)b[1] << 8;
  im.h = malloc(im.hlen + 1);
  memcpy(im.h, b + 8, im.hlen);
  im.h[im.hlen] = 0;
  im.dlen = len - 8 - im.hlen;
  im.data = malloc(im.dlen + 64);
  memcpy(im.data, b + 8 + im.hlen, im.dlen);
  memset(im.data + im.dlen, 0, 64);
  free(a);
  free(b);
  return im;
}

static void image_free(image *im) {
  free(im->h);
  free(im->data);
}

/* m.st: the image with the first `from` of its header after `anchor`
 * (NULL: from the start) replaced by `to`, and extra bytes of data
 * appended (negative: cut). */
static const char *mutant(const image *im, const char *anchor, const char *from, const char *to,
                          long extra) {
  const char *a = anchor ? strstr(im->h, anchor) : im->h, *f;
  sm_buf b = {0};
  ck_assert_msg(a != NULL, "no '%s' in %s", anchor, im->h);
  f = strstr(a, from);
  ck_assert_msg(f != NULL, "no '%s' in %s", from, a);
  sm_buf_printf(&b, "%.*s%s%s", (int)(f - im->h), im->h, to, f + strlen(from));
  write_st(in_dir("m.st"), b.data, b.len, im->data, (size_t)((long)im->dlen + extra));
  sm_buf_free(&b);
  return in_dir("m.st");
}

/* A change to the header of the saved image and the message it gives. */
typedef struct mutation {
  const char *anchor, *from, *to; /* see mutant */
  long extra;
  const char *want; /* the message after "m.st: " (a prefix of it when it ends in '*') */
} mutation;

#define W "\"fc1.weight\""
#define BIAS "\"fc1.bias\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[72,88]}"

static const mutation mismatches[] = {
    /* the params' dtypes and shapes */
    {W, "F32", "F64", 0, "tensor \"fc1.weight\": dtype F64, the param is f32[3,4]"},
    {W, "F32", "F16", 0, "tensor \"fc1.weight\": dtype F16, the param is f32[3,4]"},
    {W, "F32", "f32", 0, "tensor \"fc1.weight\": dtype f32, the param is f32[3,4]"},
    {W, "\"F32\"", "\"F3\\\"2\"", 0,
     "tensor \"fc1.weight\": dtype F3\\x222, the param is f32[3,4]"},
    {W, "[3,4]", "[4,3]", 0, "tensor \"fc1.weight\": shape [4,3], the param is f32[3,4]"},
    {W, "[3,4]", "[12]", 0, "tensor \"fc1.weight\": shape [12], the param is f32[3,4]"},
    {W, "[3,4]", "[]", 0, "tensor \"fc1.weight\": shape [], the param is f32[3,4]"},
    {W, "[3,4]", "[3,4,1]", 0, "tensor \"fc1.weight\": shape [3,4,1], the param is f32[3,4]"},
    {W, "[3,4]", "[1,1,1,1,1,1,1,3,4]", 0,
     "tensor \"fc1.weight\": shape [1,1,1,1,1,1,1,3,...], the param is f32[3,4]"},
    {W, "[3,4]", "[3,9223372036854775807]", 0,
     "tensor \"fc1.weight\": shape [3,9223372036854775807], the param is f32[3,4]"},
    {"\"step\"", "[]", "[1]", 0, "tensor \"step\": shape [1], the param is i64[]"},
    {"\"r8\"", "1,2,1,1,1,1,1,2", "1,2,1,1,1,1,2,1", 0,
     "tensor \"r8\": shape [1,2,1,1,1,1,2,1], the param is i32[1,2,1,1,1,1,1,2]"},
    /* names: unknown, twice (another escape of the same name), missing */
    {NULL, W, "\"fc1.weights\"", 0, "tensor \"fc1.weights\" is not a param of this model"},
    {NULL, W, "\"\"", 0, "tensor \"\" is not a param of this model"},
    {NULL, "\"step\"", "\"q\\\"uo\\\\te\\/\"", 0,
     "tensor \"q\\x22uo\\x5cte/\" appears twice in the header"},
    {NULL, "\"idx\"", "\"\\u00e9t\\u00E9 \\u20ac\\ud83d\\ude00 \\u0001\\t\\n\\u001f\x7f\"", 0,
     "tensor \"\xc3\xa9t\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80 \\x01\\x09\\x0a\\x1f\\x7f\" appears "
     "twice in the header"},
    {NULL, BIAS ",", "", 0, "no tensor \"fc1.bias\" (the param is f32[4])"},
    /* a tensor's keys */
    {W, "\"dtype\":\"F32\",", "", 0, "tensor \"fc1.weight\" has no \"dtype\""},
    {W, "\"shape\":[3,4],", "", 0, "tensor \"fc1.weight\" has no \"shape\""},
    {W, ",\"data_offsets\":[88,136]", "", 0, "tensor \"fc1.weight\" has no \"data_offsets\""},
    {W, "{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[88,136]}", "{}", 0,
     "tensor \"fc1.weight\" has no \"dtype\""},
    {W, "\"F32\",", "\"F32\",\"dtype\":\"F32\",", 0,
     "tensor \"fc1.weight\": unexpected or repeated key \"dtype\""},
    {W, "\"F32\",", "\"F32\",\"Shape\":[3,4],", 0,
     "tensor \"fc1.weight\": unexpected or repeated key \"Shape\""},
    /* data_offsets */
    {W, "[88,136]", "[88,130]", 0,
     "tensor \"fc1.weight\": data_offsets [88, 130] do not hold the 48 bytes of f32[3,4]"},
    {W, "[88,136]", "[136,88]", 0,
     "tensor \"fc1.weight\": data_offsets [136, 88] do not hold the 48 bytes of f32[3,4]"},
    {W, "[88,136]", "[88,136,136]", 0, "tensor \"fc1.weight\": data_offsets has 3 numbers, not 2"},
    {W, "[88,136]", "[136]", 0, "tensor \"fc1.weight\": data_offsets has 1 numbers, not 2"},
    {W, "[88,136]", "[]", 0, "tensor \"fc1.weight\": data_offsets has 0 numbers, not 2"},
    {"\"mask\"", "[177,181]", "[178,182]", 0,
     "tensor \"mask\": data_offsets [178, 182] run past the data (181 bytes)"},
    {"\"mask\"", "[177,181]", "[177,181]", -1,
     "tensor \"mask\": data_offsets [177, 181] run past the data (180 bytes)"},
    {"\"mask\"", "[177,181]", "[177,181]", -181,
     "tensor \"q\\x22uo\\x5cte/\": data_offsets [0, 16] run past the data (0 bytes)"},
    {"\"step\"", "[16,24]", "[8,16]", 0,
     "tensor \"step\": data_offsets [8, 16] overlap another tensor (the tensors before it end at "
     "byte 16)"},
    {"\"empty\"", "[72,72]", "[80,80]", 0,
     "tensor \"empty\": data_offsets [80, 80] overlap another tensor (the tensors before it end "
     "at byte 88)"},
    {"\"mask\"", "[177,181]", "[181,185]", 4,
     "tensor \"mask\": data_offsets [181, 185] leave a gap (the tensors before it end at byte "
     "177)"},
    {"\"q\\\"uo", "[0,16]", "[8,24]", 0,
     "tensor \"q\\x22uo\\x5cte/\": data_offsets [8, 24] leave a gap (the tensors before it end at "
     "byte 0)"},
    {"\"q\\\"uo", "[0,16]", "[181,197]", 16,
     "tensor \"step\": data_offsets [16, 24] leave a gap (the tensors before it end at byte 0)"},
    {NULL, "{", "{", 8, "8 bytes after the last tensor's data"},
    {NULL, "{", "{", 1, "1 bytes after the last tensor's data"},
    /* metadata */
    {NULL, "{", "{\"__metadata__\":{\"a\":\"b\"},\"__metadata__\":null,", 0,
     "\"__metadata__\" appears twice in the header"},
    {NULL, "{", "{\"__metadata__\":{\"a\":1},", 0,
     "malformed header: expected a string at byte 21 of the header (near '1},\"q\\x5c\"uo\\x5c"
     "\\x5cte/\":')"},
    {NULL, "{", "{\"__metadata__\":[],", 0,
     "malformed header: expected '{' (metadata, an object of strings) at byte 16 of the header*"},
    {NULL, "{", "{\"__metadata__\":nul,", 0,
     "malformed header: expected '{' (metadata, an object of strings) at byte 16 of the header*"},
    {NULL, "{", "{\"__metadata__\":{\"a\":\"b\"", 0,
     "malformed header: expected ',' or '}' at byte 24 of the header*"},
    {NULL, "\"step\"", "\"__metadata__\"", 0, "malformed header: expected a string at byte*"},
};

/* The JSON that is not well-formed. */
static const mutation malformed[] = {
    {NULL, "{\"q", "[\"q", 0, "expected '{' (the header is a JSON object) at byte 0 of the header"},
    {NULL, "{\"q", " \t\r\n[\"q", 0, "expected '{' (the header is a JSON object) at byte 4"},
    {"\"mask\"", "}}", "},}", 0, "expected a string at byte"},
    {"\"mask\"", "}}", "}", 0, "expected ',' or '}' at the end of the header"},
    {"\"mask\"", "}}", "}}}", 0, "unexpected text after the header's JSON object at byte"},
    {"\"mask\"", "}}", "}} x", 0, "unexpected text after the header's JSON object at byte"},
    {NULL, "\"step\":", "\"step\" ", 0, "expected ':' at byte"},
    {NULL, "},\"step\"", "} \"step\"", 0, "expected ',' or '}' at byte"},
    {NULL, "\"step\":{", "\"step\":[", 0,
     "expected '{' (dtype, shape and data_offsets) at byte"},
    {NULL, "fc1.bias", "fc1\\qbias", 0, "invalid escape in a string at byte"},
    {NULL, "fc1.bias", "fc1\\x2ebias", 0, "invalid escape in a string at byte"},
    {NULL, "fc1.bias", "fc1\\u002Gbias", 0, "expected 4 hex digits after \\u at byte"},
    {NULL, "fc1.bias", "fc1\\u02", 0, "expected 4 hex digits after \\u at byte"},
    {NULL, "fc1.bias", "fc1\\udc00bias", 0, "lone low surrogate \\u escape at byte"},
    {NULL, "fc1.bias", "fc1\\ud83dbias", 0, "lone high surrogate \\u escape at byte"},
    {NULL, "fc1.bias", "fc1\\ud83d\\u0041bias", 0, "lone high surrogate \\u escape at byte"},
    {NULL, "fc1.bias", "fc1\\ud83d\\ud83dbias", 0, "lone high surrogate \\u escape at byte"},
    {NULL, "fc1.bias", "fc1\\u0000bias", 0, "\\u0000 in a string at byte"},
    {NULL, "fc1.bias", "fc1\x01" "bias", 0, "control character in a string at byte"},
    {NULL, "fc1.bias", "fc1\nbias", 0, "control character in a string at byte"},
    {W, "[3,4]", "[03,4]", 0, "number with a leading zero at byte"},
    {W, "[3,4]", "[3,00]", 0, "number with a leading zero at byte"},
    {W, "[3,4]", "[-3,4]", 0, "expected a non-negative integer at byte"},
    {W, "[3,4]", "[3.0,4]", 0, "expected an integer at byte"},
    {W, "[3,4]", "[3e0,4]", 0, "expected an integer at byte"},
    {W, "[3,4]", "[3E0,4]", 0, "expected an integer at byte"},
    {W, "[3,4]", "[9223372036854775808,4]", 0, "number too large at byte"},
    {W, "[3,4]", "[99999999999999999999,4]", 0, "number too large at byte"},
    {W, "[3,4]", "[3,,4]", 0, "expected a non-negative integer at byte"},
    {W, "[3,4]", "[3,4,]", 0, "expected a non-negative integer at byte"},
    {W, "[3,4]", "[3 4]", 0, "expected ',' or ']' at byte"},
    {W, "[3,4]", "3", 0, "expected '[' at byte"},
    {W, "[3,4]", "\"3,4\"", 0, "expected '[' at byte"},
    {W, "\"F32\"", "5", 0, "expected a string at byte"},
    {W, "\"F32\"", "null", 0, "expected a string at byte"},
    {W, "[88,136]", "[88,136}", 0, "expected ',' or ']' at byte"},
};

/* Accepted variations of the saved image. */
static const mutation accepted[] = {
    {NULL, "{", "{", 0, NULL},
    {NULL, "{", "{\"__metadata__\":null,", 0, NULL},
    {NULL, "{", " \n{ \"__metadata__\" : { \"a\" : \"b\" , \"a\":\"\\u00e9\\n\" } , ", 0, NULL},
    {"\"mask\"", "}}", "}}\t\r\n        ", 0, NULL},
    {NULL, "\"fc1.bias\"", "\"fc1\\u002ebias\"", 0, NULL},
    {NULL, "\"q\\\"uo\\\\te/\"", "\"q\\u0022uo\\u005cte\\/\"", 0, NULL},
    {"\"empty\"", "[72,72]", "[181,181]", 0, NULL}, /* an empty tensor anywhere between others */
    {"\"empty\"", "[72,72]", "[0,0]", 0, NULL},
    {"\"nothing\"", "[24,24]", "[88,88]", 0, NULL},
};

START_TEST(mismatched_files) {
  image im = saved_image();
  unsigned char *want = storage(&tst, 9);
  char msg[600];
  size_t i;
  for (i = 0; i < sizeof mismatches / sizeof mismatches[0]; i++) {
    const mutation *m = &mismatches[i];
    const char *path = mutant(&im, m->anchor, m->from, m->to, m->extra);
    snprintf(msg, sizeof msg, "%s: %s", path, m->want);
    load_fails_(&tst, path, msg, 1, (long)i);
  }
  for (i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
    const mutation *m = &accepted[i];
    load_equals(&tst, mutant(&im, m->anchor, m->from, m->to, m->extra), want);
  }
  free(want);
  image_free(&im);
}
END_TEST

START_TEST(malformed_headers) {
  image im = saved_image();
  char msg[600];
  size_t i;
  for (i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
    const mutation *m = &malformed[i];
    snprintf(msg, sizeof msg, "malformed header: %s", m->want);
    load_fails_(&tst, mutant(&im, m->anchor, m->from, m->to, m->extra), msg, 0, (long)i);
  }
  image_free(&im);
}
END_TEST

/* "path: text" (a static buffer). */
static const char *msg(const char *path, const char *text) {
  static char b[1200];
  snprintf(b, sizeof b, "%s: %s", path, text);
  return b;
}

START_TEST(header_length) {
  const char *path = in_dir("h.st");
  FILE *f;
  write_bytes(path, "", 0);
  LOAD_FAILS_EXACTLY(&tst, path, msg(path, "empty file (not a safetensors file)"));
  LOAD_FAILS_EXACTLY(&nil, path, msg(path, "empty file (not a safetensors file)"));
  write_bytes(path, "\x08\0\0\0\0", 5);
  LOAD_FAILS_EXACTLY(&tst, path, msg(path, "truncated: 5 bytes, less than the header length"));
  write_bytes(path, "\xe8\x03\0\0\0\0\0\0{}      ", 16);
  LOAD_FAILS_EXACTLY(&tst, path,
                     msg(path, "truncated: header length 1000 runs past the end of the file"));
  write_bytes(path, "\xff\xff\xff\xff\xff\xff\xff\xff{}      ", 16);
  LOAD_FAILS_EXACTLY(&tst, path, msg(path, "truncated: header length 18446744073709551615 runs "
                                           "past the end of the file"));
  write_bytes(path, "\x0a\0\0\0\0\0\0\0{}      xx", 18);
  LOAD_FAILS_EXACTLY(&nil, path, msg(path, "malformed header: unexpected text after the header's "
                                           "JSON object at byte 8 of the header (near 'xx')"));
  write_bytes(path, "\0\0\0\0\0\0\0\0", 8);
  LOAD_FAILS_EXACTLY(&nil, path, msg(path, "malformed header: expected '{' (the header is a JSON "
                                           "object) at the end of the header"));
  write_bytes(path, "\x03\0\0\0\0\0\0\0{}\0", 11);
  LOAD_FAILS_EXACTLY(&nil, path, msg(path, "malformed header: unexpected text after the header's "
                                           "JSON object at byte 2 of the header (near '')"));
  /* NUL bytes */
  write_st(path, "{\"a\0\":1}", 8, NULL, 0);
  LOAD_FAILS_EXACTLY(&nil, path, msg(path, "malformed header: control character in a string at "
                                           "byte 3 of the header (near '')"));
  write_st(path, "{\"a\\\0\":1}", 9, NULL, 0);
  LOAD_FAILS_EXACTLY(&nil, path, msg(path, "malformed header: invalid escape in a string at byte "
                                           "3 of the header (near '\\x5c')"));
  write_st(path, "{\"a\\u00\0\0\":1}", 12, NULL, 0);
  LOAD_FAILS_EXACTLY(&nil, path, msg(path, "malformed header: expected 4 hex digits after \\u at "
                                           "byte 7 of the header (near '')"));
  write_st(path, "\0{}", 3, NULL, 0);
  LOAD_FAILS_EXACTLY(&nil, path, msg(path, "malformed header: expected '{' (the header is a JSON "
                                           "object) at byte 0 of the header (near '')"));
  /* the limit of safetensors readers, checked before anything is read */
  f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fwrite("\x01\xe1\xf5\x05\0\0\0\0", 1, 8, f), 8); /* 100,000,001 */
  ck_assert_int_eq(ftruncate(fileno(f), 8 + 100000001 + 8), 0);   /* sparse */
  ck_assert_int_eq(fclose(f), 0);
  LOAD_FAILS_EXACTLY(&tst, path, msg(path, "header length 100000001 is over the limit of "
                                           "100000000 bytes"));
  /* no params, and a file without tensors */
  write_bytes(path, "\x02\0\0\0\0\0\0\0{}", 10);
  ck_assert_int_eq(nil.load(NULL, path, NULL, 0), 0);
  LOAD_FAILS_EXACTLY(&tst, path, msg(path, "no tensor \"fc1.weight\" (the param is f32[3,4])"));
  write_bytes(path, "\x20\0\0\0\0\0\0\0{\"__metadata__\":{\"format\":\"pt\"}}", 40);
  ck_assert_int_eq(nil.load(NULL, path, NULL, 0), 0);
}
END_TEST

START_TEST(file_errors) {
  unsigned char *a = storage(&tst, 1);
  char err[600];
  const char *path;
  LOAD_FAILS_EXACTLY(&tst, in_dir("missing.st"),
                     msg(in_dir("missing.st"), "cannot open: No such file or directory"));
  LOAD_FAILS_EXACTLY(&tst, dir, msg(dir, "read error: Is a directory"));
  LOAD_FAILS_EXACTLY(&tst, "/dev/null", "/dev/null: empty file (not a safetensors file)");

  /* saves: a directory that does not exist */
  path = in_dir("no/such/dir/a.st");
  ck_assert_int_eq(tst.save(a, path, err, sizeof err), -1);
  ck_assert_str_eq(err, msg(path, "cannot create a temporary file next to it: No such file or "
                                  "directory"));
  /* a directory at path: the rename fails, the temporary file goes */
  path = in_dir("d.st");
  ck_assert_int_eq(mkdir(path, 0700), 0);
  ck_assert_int_eq(tst.save(a, path, err, sizeof err), -1);
  ck_assert_str_eq(err, msg(path, "cannot rename the temporary file into place: Is a directory"));
  ck_assert_int_eq(dir_entries(), 1);
  /* a read-only directory (root may write anywhere) */
  if (geteuid() != 0) {
    path = in_dir("d.st/a.st");
    ck_assert_int_eq(chmod(in_dir("d.st"), 0500), 0);
    ck_assert_int_eq(tst.save(a, path, err, sizeof err), -1);
    ck_assert_str_eq(err, msg(path, "cannot create a temporary file next to it: Permission "
                                    "denied"));
  }
  free(a);
}
END_TEST

/* A write error (the file size limit) leaves the old file in place and no
 * temporary file. */
START_TEST(write_error) {
  unsigned char *a = storage(&tst, 1);
  const char *path = in_dir("a.st");
  size_t len;
  unsigned char *now;
  int status;
  pid_t pid;
  write_bytes(path, "old", 3);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    struct rlimit rl;
    char e[600];
    int rc;
    signal(SIGXFSZ, SIG_IGN);
    rl.rlim_cur = rl.rlim_max = 512;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(3);
    rc = tst.save(a, path, e, sizeof e);
    free(a);
    _exit(rc == -1 && strcmp(e, msg(path, "write error: File too large")) == 0 ? 0 : 1);
  }
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
  now = slurp(path, &len);
  ck_assert(len == 3 && memcmp(now, "old", 3) == 0);
  ck_assert_int_eq(dir_entries(), 1);
  free(now);
  free(a);
}
END_TEST

/* err may be NULL; messages are cut to errlen - 1 bytes. */
START_TEST(err_buffers) {
  unsigned char *a = storage(&tst, 1);
  char full[600], err[80];
  const char *paths[2];
  size_t len, k, i;
  paths[0] = in_dir("missing.st");
  paths[1] = in_dir("no/dir.st");
  for (k = 0; k < 2; k++) {
    ck_assert_int_eq(k ? tst.save(a, paths[k], full, sizeof full)
                       : tst.load(a, paths[k], full, sizeof full), -1);
    ck_assert_int_eq(k ? tst.save(a, paths[k], NULL, 100) : tst.load(a, paths[k], NULL, 100), -1);
    ck_assert_int_eq(k ? tst.save(a, paths[k], NULL, 0) : tst.load(a, paths[k], NULL, 0), -1);
    for (len = 0; len < sizeof err; len++) {
      memset(err, 'x', sizeof err);
      ck_assert_int_eq(k ? tst.save(a, paths[k], err, len) : tst.load(a, paths[k], err, len), -1);
      for (i = len; i < sizeof err; i++)
        ck_assert_msg(err[i] == 'x', "errlen %zu: byte %zu", len, i);
      if (!len) continue;
      ck_assert_uint_eq(strlen(err), len - 1 < strlen(full) ? len - 1 : strlen(full));
      ck_assert(strncmp(err, full, strlen(err)) == 0);
    }
  }
  /* no path, no storage */
  ck_assert_int_eq(tst.load(a, NULL, err, sizeof err), -1);
  ck_assert_str_eq(err, "<null>: no file name");
  ck_assert_int_eq(tst.save(a, NULL, err, sizeof err), -1);
  ck_assert_str_eq(err, "<null>: no file name");
  ck_assert_int_eq(tst.save(NULL, paths[0], err, sizeof err), -1);
  ck_assert_str_eq(err, msg(paths[0], "no param storage"));
  ck_assert_int_eq(tst.load(NULL, paths[0], err, sizeof err), -1);
  ck_assert_str_eq(err, msg(paths[0], "no param storage"));
  /* nil has no params: NULL storage is fine */
  ck_assert_msg(nil.save(NULL, in_dir("nil.st"), err, sizeof err) == 0, "%s", err);
  ck_assert_msg(nil.load(NULL, in_dir("nil.st"), err, sizeof err) == 0, "%s", err);
  free(a);
}
END_TEST

/* Names in messages: cut after 80 bytes (not inside a UTF-8 character),
 * control characters, '"' and '\' escaped. */
START_TEST(long_names) {
  static const struct {
    const char *json, *shown;
  } cases[] = {
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa..."},
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9",
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9"},
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9z",
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa..."},
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\\\"\\\\zz",
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\\x22..."},
      {"\\u0000", NULL},
  };
  const char *path = in_dir("n.st");
  char h[400], want[400];
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(h, sizeof h, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
             cases[i].json);
    write_st(path, h, strlen(h), "\0\0\0\0", 4);
    if (cases[i].shown)
      snprintf(want, sizeof want, "tensor \"%s\" is not a param of this model", cases[i].shown);
    else
      snprintf(want, sizeof want, "malformed header: \\u0000 in a string at byte 8 of the header");
    load_fails_(&tst, path, msg(path, want), !!cases[i].shown, (long)i);
  }
}
END_TEST

/* A file of one model loaded into another. */
START_TEST(other_models) {
  unsigned char *a = storage(&tst, 1);
  char err[600] = "";
  ck_assert_msg(tst.save(a, in_dir("tst.st"), err, sizeof err) == 0, "%s", err);
  ck_assert_msg(nil.save(NULL, in_dir("nil.st"), err, sizeof err) == 0, "%s", err);
  write_bytes(in_dir("py.st"), st_mixed, sizeof st_mixed - 1);
  LOAD_FAILS_EXACTLY(&two, in_dir("tst.st"),
                     msg(in_dir("tst.st"),
                         "tensor \"q\\x22uo\\x5cte/\" is not a param of this model"));
  LOAD_FAILS_EXACTLY(&tst, in_dir("nil.st"),
                     msg(in_dir("nil.st"), "no tensor \"fc1.weight\" (the param is f32[3,4])"));
  LOAD_FAILS_EXACTLY(&nil, in_dir("py.st"),
                     msg(in_dir("py.st"), "tensor \"n\" is not a param of this model"));
  LOAD_FAILS_EXACTLY(&tst, in_dir("py.st"),
                     msg(in_dir("py.st"), "tensor \"n\" is not a param of this model"));
  free(a);
}
END_TEST

int main(void) {
  Suite *s = suite_create("aot_safetensors");
  TCase *tc = tcase_create("core");
  SRunner *sr;
  int failed;
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, round_trip);
  tcase_add_test(tc, same_bytes_as_smelt);
  tcase_add_test(tc, bools_saved_as_0_or_1);
  tcase_add_test(tc, python_file);
  tcase_add_test(tc, any_order_and_escapes);
  tcase_add_test(tc, mismatched_files);
  tcase_add_test(tc, malformed_headers);
  tcase_add_test(tc, header_length);
  tcase_add_test(tc, file_errors);
  tcase_add_test(tc, write_error);
  tcase_add_test(tc, err_buffers);
  tcase_add_test(tc, long_names);
  tcase_add_test(tc, other_models);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
