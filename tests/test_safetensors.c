/* The safetensors reader and writer (src/safetensors.c): files written by
 * Python's safetensors package, output byte-identical to it, round trips
 * of every dtype and rank 0 to 8 (size-0 dims included) with metadata,
 * accepted variations of the header, every malformed input with its exact
 * message, files, pipes, atomic writes, and allocation failures. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
#include "testutil.h"

/* ------------------------------------------------------------ fixtures */
/* Regenerate with /usr/bin/python3 and `pip install safetensors==0.8.0`:
 *   import numpy as np; from safetensors.numpy import save
 * and print each save(...) below as a C string. */
/* Written by the safetensors Python package 0.8.0 (safetensors.numpy.save,
 * numpy 1.24.2); each comment is the call. */
/* save({"w": (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3),
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
    "\x88<\xe4" "7\xfe\x00\x00\x00\x00\x00\x00\x08@\x00\x00\x80\xbf\x00\x00\x00\xbf\x00\x00\x00"
    "\x00\x00\x00\x00\?\x00\x00\x80\?\x00\x00\xc0\?\xfc\xff\xff\xff\x03\x00\x00\x00\xff\xff\xff"
    "\x7f\x00\x00\x00\x80\x01\x00\x01\x01";
/* save({"x": np.array([np.nan, np.inf, -np.inf, -0.0]), "big": np.array([9223372036854775807, -9223372036854775808], np.int64), "tiny": np.array([1e-45, 3.4028235e38], np.float32)}) */
static const char st_special[] =
    "\xb0\x00\x00\x00\x00\x00\x00\x00{\"big\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\""
    ":[0,16]},\"x\":{\"dtype\":\"F64\",\"shape\":[4],\"data_offsets\":[16,48]},\"tiny\":{\"dty"
    "pe\":\"F32\",\"shape\":[2],\"data_offsets\":[48,56]}}      \xff\xff\xff\xff\xff\xff\xff\x7f"
    "\x00\x00\x00\x00\x00\x00\x00\x80\x00\x00\x00\x00\x00\x00\xf8\x7f\x00\x00\x00\x00\x00\x00\xf0"
    "\x7f\x00\x00\x00\x00\x00\x00\xf0\xff\x00\x00\x00\x00\x00\x00\x00\x80\x01\x00\x00\x00\xff\xff"
    "\x7f\x7f";
/* save({"q\"\\/\x01\b\t\n\x0c\r\x1f\x7f\u00e9\u20ac\U0001f600": np.array([5], np.int32), "": np.array([True]), "layer.0.weight": np.ones((1, 2), np.float32)}, metadata={"k\u00e9y": "v\n\u2028"}) */
static const char st_names[] =
    "\xf8\x00\x00\x00\x00\x00\x00\x00{\"__metadata__\":{\"k\xc3\xa9y\":\"v\\n\xe2\x80\xa8\"},\""
    "layer.0.weight\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},\"q\\\"\\\\/\\"
    "u0001\\b\\t\\n\\f\\r\\u001f\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\":{\"dtype\":\"I32\","
    "\"shape\":[1],\"data_offsets\":[8,12]},\"\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offs"
    "ets\":[12,13]}}\x00\x00\x80\?\x00\x00\x80\?\x05\x00\x00\x00\x01";
/* save({}) */
static const char st_empty[] =
    "\x08\x00\x00\x00\x00\x00\x00\x00{}      ";
/* save({"r": np.arange(16, dtype=np.int32).reshape(1, 2, 1, 2, 1, 2, 1, 2), "z": np.zeros((2, 0, 3), np.int64), "s": np.array(2.5, np.float64)}) */
static const char st_rank8[] =
    "\xb8\x00\x00\x00\x00\x00\x00\x00{\"z\":{\"dtype\":\"I64\",\"shape\":[2,0,3],\"data_offset"
    "s\":[0,0]},\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},\"r\":{\"dtype\""
    ":\"I32\",\"shape\":[1,2,1,2,1,2,1,2],\"data_offsets\":[8,72]}}      \x00\x00\x00\x00\x00\x00"
    "\x04@\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04\x00\x00\x00\x05"
    "\x00\x00\x00\x06\x00\x00\x00\x07\x00\x00\x00\x08\x00\x00\x00\x09\x00\x00\x00\x0a\x00\x00\x00"
    "\x0b\x00\x00\x00\x0c\x00\x00\x00\x0d\x00\x00\x00\x0e\x00\x00\x00\x0f\x00\x00\x00";

#define FIX(a) a, sizeof a - 1

static bool host_little(void) {
  const uint16_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

/* What a fixture's tensor must read as. want: numel values of the dtype. */
typedef struct want_tensor {
  const char *name;
  smelt_dtype dt;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  const void *want;
} want_tensor;

static const struct {
  const char *name;
  const char *bytes;
  size_t len;
  int ntensors;
  want_tensor t[6]; /* sorted by name, as the reader returns them */
  const char *meta_key, *meta_value;
} from_python[] = {
    {"st_mixed",
     FIX(st_mixed),
     6,
     {{"b", SMELT_F64, 1, {3}, (const double[]){0.25, -1e300, 3}},
      {"e", SMELT_F32, 2, {0, 3}, NULL},
      {"i", SMELT_I32, 2, {2, 2}, (const int32_t[]){-4, 3, 2147483647, -2147483647 - 1}},
      {"m", SMELT_BOOL, 1, {4}, (const uint8_t[]){1, 0, 1, 1}},
      {"n", SMELT_I64, 0, {0}, (const int64_t[]){-7}},
      {"w", SMELT_F32, 2, {2, 3}, (const float[]){-1, -0.5, 0, 0.5, 1, 1.5}}},
     "format",
     "pt"},
    {"st_special",
     FIX(st_special),
     3,
     {{"big", SMELT_I64, 1, {2}, (const int64_t[]){INT64_MAX, INT64_MIN}},
      {"tiny", SMELT_F32, 1, {2}, (const float[]){1e-45f, 3.4028235e38f}},
      {"x", SMELT_F64, 1, {4}, (const double[]){NAN, INFINITY, -INFINITY, -0.0}}},
     NULL,
     NULL},
    {"st_names",
     FIX(st_names),
     3,
     {{"", SMELT_BOOL, 1, {1}, (const uint8_t[]){1}},
      {"layer.0.weight", SMELT_F32, 2, {1, 2}, (const float[]){1, 1}},
      {"q\"\\/\x01\b\t\n\x0c\r\x1f\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", SMELT_I32, 1, {1},
       (const int32_t[]){5}}},
     "k\xc3\xa9y",
     "v\n\xe2\x80\xa8"},
    {"st_empty", FIX(st_empty), 0, {{0}}, NULL, NULL},
    {"st_rank8",
     FIX(st_rank8),
     3,
     {{"r", SMELT_I32, 8, {1, 2, 1, 2, 1, 2, 1, 2},
       (const int32_t[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},
      {"s", SMELT_F64, 0, {0}, (const double[]){2.5}},
      {"z", SMELT_I64, 3, {2, 0, 3}, NULL}},
     NULL,
     NULL},
};
#define N_FROM_PYTHON ((int)(sizeof from_python / sizeof from_python[0]))

/* Element i of n values of dtype dt, bit-exact for floats (NaN matches
 * NaN, -0 only -0). */
static bool same_values(smelt_dtype dt, const void *got, const void *want, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    if (dt == SMELT_F32 || dt == SMELT_F64) {
      double g = dt == SMELT_F32 ? ((const float *)got)[i] : ((const double *)got)[i];
      double w = dt == SMELT_F32 ? ((const float *)want)[i] : ((const double *)want)[i];
      if (isnan(w) ? !isnan(g) : (g != w || signbit(g) != signbit(w))) return false;
    } else {
      size_t item = smelt_dtype_size(dt);
      if (memcmp((const char *)got + i * item, (const char *)want + i * item, item) != 0)
        return false;
    }
  }
  return true;
}

static void check_tensor(const sm_st_tensor *t, const want_tensor *w, const char *what) {
  ck_assert_msg(strcmp(t->name, w->name) == 0, "%s: name \"%s\", want \"%s\"", what, t->name,
                w->name);
  ck_assert_msg(t->dtype == w->dt, "%s: %s has dtype %s", what, w->name,
                smelt_dtype_name(t->dtype));
  ck_assert_int_eq(t->rank, w->rank);
  for (int d = 0; d < t->rank; d++) ck_assert_int_eq(t->dims[d], w->dims[d]);
  int64_t n = sm_numel(w->rank, w->dims);
  ck_assert_uint_eq(t->nbytes, (size_t)n * smelt_dtype_size(w->dt));
  ck_assert_ptr_nonnull(t->data);
  ck_assert_msg((uintptr_t)t->data % 16 == 0, "%s: %s's data is not aligned", what, w->name);
  if (n) ck_assert_msg(same_values(w->dt, t->data, w->want, n), "%s: %s has other values", what,
                       w->name);
}

static void check_fixture(const sm_st_file *f, int i) {
  ck_assert_uint_eq(f->ntensors, (size_t)from_python[i].ntensors);
  for (int k = 0; k < from_python[i].ntensors; k++) {
    check_tensor(&f->tensors[k], &from_python[i].t[k], from_python[i].name);
    ck_assert_ptr_eq(sm_st_find(f, from_python[i].t[k].name), &f->tensors[k]);
  }
  if (from_python[i].meta_key) {
    ck_assert_uint_eq(f->nmeta, 1);
    ck_assert_str_eq(f->meta[0].key, from_python[i].meta_key);
    ck_assert_str_eq(f->meta[0].value, from_python[i].meta_value);
    ck_assert_str_eq(sm_st_meta_get(f, from_python[i].meta_key), from_python[i].meta_value);
  } else {
    ck_assert_uint_eq(f->nmeta, 0);
  }
  ck_assert_ptr_null(sm_st_find(f, "no such tensor"));
  ck_assert_ptr_null(sm_st_meta_get(f, "no such key"));
}

static void read_ok(const void *buf, size_t len, sm_st_file *f) {
  char err[512] = "";
  int rc = sm_st_read_mem(buf, len, "t.st", f, err, sizeof err);
  ck_assert_msg(rc == 0, "read failed: %s", err);
}

/* Reads buf expecting exactly the error want; checks *f is left empty. */
static void read_fails(const void *buf, size_t len, const char *want, const char *what) {
  char err[512] = "";
  sm_st_file f;
  memset(&f, 0x55, sizeof f);
  int rc = sm_st_read_mem(buf, len, "t.st", &f, err, sizeof err);
  ck_assert_msg(rc == -1, "%s: read succeeded, expected \"%s\"", what, want);
  ck_assert_msg(strcmp(err, want) == 0, "%s:\n got  \"%s\"\n want \"%s\"", what, err, want);
  ck_assert_ptr_null(f.tensors);
  ck_assert_ptr_null(f.data_);
  ck_assert_uint_eq(f.ntensors, 0);
  sm_st_free(&f);
}

START_TEST(reads_python_files) {
  sm_st_file f;
  read_ok(from_python[_i].bytes, from_python[_i].len, &f);
  check_fixture(&f, _i);
  sm_st_free(&f);
  ck_assert_ptr_null(f.tensors);
  sm_st_free(&f); /* twice is fine */
}
END_TEST

/* Reading the library's file and writing it again gives its exact bytes. */
START_TEST(writes_like_python) {
  if (!host_little()) return;
  sm_st_file f;
  read_ok(from_python[_i].bytes, from_python[_i].len, &f);
  void *out;
  size_t len;
  char err[256];
  ck_assert_msg(sm_st_encode(f.tensors, f.ntensors, f.meta, f.nmeta, &out, &len, err,
                             sizeof err) == 0,
                "%s", err);
  ck_assert_uint_eq(len, from_python[_i].len);
  ck_assert_msg(memcmp(out, from_python[_i].bytes, len) == 0, "%s: bytes differ from Python's",
                from_python[_i].name);
  sm_free(out);
  sm_st_free(&f);
}
END_TEST

/* The layout the writer promises, spelled out. */
START_TEST(writer_layout) {
  const float w[2] = {1, 2};
  const int64_t n = 7;
  const uint8_t m[3] = {1, 0, 5}; /* 5 is written as 1 */
  const int32_t i[1] = {-1};
  const double d[1] = {0.5};
  sm_st_tensor t[] = {
      {"w", SMELT_F32, 1, {2}, w, sizeof w}, {"m", SMELT_BOOL, 1, {3}, m, sizeof m},
      {"i", SMELT_I32, 1, {1}, i, sizeof i}, {"n", SMELT_I64, 0, {0}, &n, sizeof n},
      {"d", SMELT_F64, 1, {1}, d, sizeof d}, {"a", SMELT_F32, 0, {0}, w, 4},
  };
  sm_st_meta meta[] = {{"z", "last"}, {"a", "first"}, {"q\"", "\x01"}};
  void *out;
  size_t len;
  char err[256];
  ck_assert_msg(sm_st_encode(t, 6, meta, 3, &out, &len, err, sizeof err) == 0, "%s", err);
  static const char header[] =
      "{\"__metadata__\":{\"a\":\"first\",\"q\\\"\":\"\\u0001\",\"z\":\"last\"},"
      "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
      "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[16,20]},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[20,28]},"
      "\"i\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[28,32]},"
      "\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[32,35]}}";
  const unsigned char *b = out;
  size_t hl = 0;
  for (int k = 7; k >= 0; k--) hl = hl << 8 | b[k];
  ck_assert_uint_eq(hl % 8, 0);
  ck_assert_uint_eq(len, 8 + hl + 35);
  ck_assert_msg(memcmp(b + 8, header, sizeof header - 1) == 0, "header: %.*s", (int)hl, b + 8);
  for (size_t k = sizeof header - 1; k < hl; k++) ck_assert_int_eq(b[8 + k], ' ');
  ck_assert_int_eq(b[8 + hl + 34], 1);
  sm_st_file f;
  read_ok(out, len, &f);
  ck_assert_uint_eq(f.ntensors, 6);
  ck_assert_str_eq(f.tensors[0].name, "a");
  ck_assert_str_eq(f.tensors[5].name, "w");
  ck_assert_str_eq(sm_st_meta_get(&f, "q\""), "\x01");
  ck_assert_str_eq(f.meta[0].key, "a");
  ck_assert_int_eq(((const uint8_t *)sm_st_find(&f, "m")->data)[2], 1);
  ck_assert_int_eq(*(const int64_t *)sm_st_find(&f, "n")->data, 7);
  sm_st_free(&f);
  sm_free(out);
}
END_TEST

START_TEST(dtype_names) {
  ck_assert_str_eq(sm_st_dtype_name(SMELT_F32), "F32");
  ck_assert_str_eq(sm_st_dtype_name(SMELT_F64), "F64");
  ck_assert_str_eq(sm_st_dtype_name(SMELT_I32), "I32");
  ck_assert_str_eq(sm_st_dtype_name(SMELT_I64), "I64");
  ck_assert_str_eq(sm_st_dtype_name(SMELT_BOOL), "BOOL");
  ck_assert_ptr_null(sm_st_dtype_name(SMELT_DTYPE_COUNT));
  ck_assert_ptr_null(sm_st_dtype_name((smelt_dtype)-1));
}
END_TEST

/* ---------------------------------------------------------- round trips */

/* _i encodes dtype (5) x rank (0..8) x with a size-0 dim or not. */
static void round_trip_shape(int i, smelt_dtype *dt, int *rank, int64_t *dims) {
  *dt = (smelt_dtype)(i % SMELT_DTYPE_COUNT);
  i /= SMELT_DTYPE_COUNT;
  *rank = i % (SMELT_MAX_RANK + 1);
  bool zero = i / (SMELT_MAX_RANK + 1);
  for (int d = 0; d < SMELT_MAX_RANK; d++) dims[d] = d < *rank ? 1 + (d % 3) : 0;
  if (zero && *rank > 0) dims[*rank / 2] = 0;
}

static void *pattern(smelt_dtype dt, int64_t n, int seed) {
  size_t item = smelt_dtype_size(dt);
  unsigned char *p = malloc((size_t)(n ? n : 1) * item);
  ck_assert_ptr_nonnull(p);
  for (int64_t i = 0; i < n; i++) {
    double v = (double)((i + seed) * 37 % 101) - 50.25;
    switch (dt) {
    case SMELT_F32: ((float *)p)[i] = (float)v; break;
    case SMELT_F64: ((double *)p)[i] = v / 3; break;
    case SMELT_I32: ((int32_t *)p)[i] = (int32_t)(v * 1000); break;
    case SMELT_I64: ((int64_t *)p)[i] = (int64_t)v * 100000000000LL; break;
    case SMELT_BOOL: ((uint8_t *)p)[i] = (i + seed) % 3 == 0; break;
    default: break;
    }
  }
  return p;
}

/* The tensor under test ("t") and companions of every dtype, with names
 * that sort around it, and two metadata pairs. */
typedef struct rt_case {
  sm_st_tensor t[6];
  void *data[6];
  sm_st_meta meta[2];
} rt_case;

static void rt_make(rt_case *c, int i) {
  static const char *const names[] = {"t", "a.bool", "z.i64", "m.f32", "b.f64", "y.i32"};
  static const smelt_dtype dts[] = {0, SMELT_BOOL, SMELT_I64, SMELT_F32, SMELT_F64, SMELT_I32};
  memset(c, 0, sizeof *c);
  for (int k = 0; k < 6; k++) {
    sm_st_tensor *t = &c->t[k];
    t->name = names[k];
    if (k == 0) {
      round_trip_shape(i, &t->dtype, &t->rank, t->dims);
    } else {
      t->dtype = dts[k];
      t->rank = 1;
      t->dims[0] = k; /* odd byte sizes for bool */
    }
    int64_t n = sm_numel(t->rank, t->dims);
    c->data[k] = pattern(t->dtype, n, k);
    t->data = c->data[k];
    t->nbytes = (size_t)n * smelt_dtype_size(t->dtype);
  }
  c->meta[0] = (sm_st_meta){"format", "pt"};
  c->meta[1] = (sm_st_meta){"step", "42"};
}

static void rt_check(const rt_case *c, const sm_st_file *f) {
  ck_assert_uint_eq(f->ntensors, 6);
  for (int k = 0; k < 6; k++) {
    const sm_st_tensor *t = &c->t[k];
    want_tensor w = {t->name, t->dtype, t->rank, {0}, t->data};
    memcpy(w.dims, t->dims, sizeof w.dims);
    const sm_st_tensor *got = sm_st_find(f, t->name);
    ck_assert_msg(got != NULL, "no tensor %s", t->name);
    check_tensor(got, &w, "round trip");
  }
  for (size_t k = 1; k < f->ntensors; k++)
    ck_assert(strcmp(f->tensors[k - 1].name, f->tensors[k].name) < 0);
  ck_assert_uint_eq(f->nmeta, 2);
  ck_assert_str_eq(sm_st_meta_get(f, "format"), "pt");
  ck_assert_str_eq(sm_st_meta_get(f, "step"), "42");
}

static void rt_free(rt_case *c) {
  for (int k = 0; k < 6; k++) free(c->data[k]);
}

START_TEST(round_trip_memory) {
  rt_case c;
  rt_make(&c, _i);
  void *img;
  size_t len;
  char err[256];
  ck_assert_msg(sm_st_encode(c.t, 6, c.meta, 2, &img, &len, err, sizeof err) == 0, "%s", err);
  sm_st_file f;
  read_ok(img, len, &f);
  rt_check(&c, &f);
  /* reading what was read and writing it again gives the same bytes */
  void *img2;
  size_t len2;
  ck_assert_msg(sm_st_encode(f.tensors, f.ntensors, f.meta, f.nmeta, &img2, &len2, err,
                             sizeof err) == 0,
                "%s", err);
  ck_assert_uint_eq(len2, len);
  ck_assert(memcmp(img, img2, len) == 0);
  sm_free(img2);
  sm_st_free(&f);
  sm_free(img);
  rt_free(&c);
}
END_TEST

static char tmpdir[256];

static void make_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/smelt-st-XXXXXX", base && *base ? base : "/tmp");
  ck_assert_msg(mkdtemp(tmpdir) != NULL, "mkdtemp: %s", strerror(errno));
}

static void tmp_path(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", tmpdir, name);
}

/* Number of entries in the temporary directory (no temporary files may be
 * left behind). */
static int tmpdir_entries(void) {
  DIR *d = opendir(tmpdir);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
  closedir(d);
  return n;
}

static void remove_tmpdir(void) {
  /* Only the files the tests create. */
  static const char *const names[] = {"a.st", "b.st", "big.st", "trunc.st", "hostile.st",
                                      "x.st", "sparse.st", "dir.st"};
  char p[512];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    tmp_path(p, sizeof p, names[i]);
    if (unlink(p) != 0) rmdir(p);
  }
  ck_assert_msg(rmdir(tmpdir) == 0, "%s: %s (files left behind?)", tmpdir, strerror(errno));
}

static void write_bytes(const char *path, const void *b, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
  ck_assert_uint_eq(fwrite(b, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
}

/* The whole file at path (malloc'ed). */
static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  unsigned char *b = malloc(cap);
  for (;;) {
    n += fread(b + n, 1, cap - n, f);
    if (n < cap) break;
    cap *= 2;
    b = realloc(b, cap);
  }
  fclose(f);
  *len = n;
  return b;
}

START_TEST(round_trip_file) {
  rt_case c;
  rt_make(&c, _i);
  char path[512], err[512];
  make_tmpdir();
  tmp_path(path, sizeof path, "a.st");
  ck_assert_msg(sm_st_write_file(path, c.t, 6, c.meta, 2, err, sizeof err) == 0, "%s", err);
  ck_assert_int_eq(tmpdir_entries(), 1);
  sm_st_file f;
  ck_assert_msg(sm_st_read_file(path, &f, err, sizeof err) == 0, "%s", err);
  rt_check(&c, &f);
  /* the file holds what encode makes */
  void *img;
  size_t len, flen;
  ck_assert_int_eq(sm_st_encode(c.t, 6, c.meta, 2, &img, &len, err, sizeof err), 0);
  unsigned char *bytes = slurp(path, &flen);
  ck_assert_uint_eq(flen, len);
  ck_assert(memcmp(bytes, img, len) == 0);
  free(bytes);
  sm_free(img);
  sm_st_free(&f);
  rt_free(&c);
  remove_tmpdir();
}
END_TEST

/* Many tensors and long names: the header grows past every buffer size,
 * names sort bytewise, and find works for each. */
START_TEST(many_tensors) {
  enum { N = 3000 };
  sm_st_tensor *t = calloc(N, sizeof *t);
  char (*names)[80] = malloc(N * sizeof *names);
  int32_t *vals = malloc(N * sizeof *vals);
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "layer%d.\xc3\xa9.%0*d", (i * 7919) % N, i % 40, i);
    vals[i] = i;
    t[i] = (sm_st_tensor){names[i], i % 2 ? SMELT_I32 : SMELT_F32, 1, {1}, &vals[i], 4};
  }
  void *img;
  size_t len;
  char err[256];
  ck_assert_msg(sm_st_encode(t, N, NULL, 0, &img, &len, err, sizeof err) == 0, "%s", err);
  sm_st_file f;
  read_ok(img, len, &f);
  ck_assert_uint_eq(f.ntensors, N);
  for (int i = 0; i < N; i++) {
    const sm_st_tensor *g = sm_st_find(&f, names[i]);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(*(const int32_t *)g->data, i);
    if (i) ck_assert(strcmp(f.tensors[i - 1].name, f.tensors[i].name) < 0);
  }
  sm_st_free(&f);
  sm_free(img);
  free(t);
  free(names);
  free(vals);
}
END_TEST

/* ------------------------------------------------- accepted variations */

/* An image: the 8-byte length of header h, h, then n bytes of data
 * (zeros when data is NULL); free() it. */
static unsigned char *make_image(const char *h, size_t hl, const void *data, size_t n,
                                 size_t *len) {
  unsigned char *b = calloc(1, 8 + hl + n + 1);
  ck_assert_ptr_nonnull(b);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(b + 8, h, hl);
  if (n && data) memcpy(b + 8 + hl, data, n);
  *len = 8 + hl + n;
  return b;
}

static const struct {
  const char *header;
  const char *data;
  size_t ndata;
  const char *name; /* a tensor that must be there */
  int64_t dim0;
  const char *meta_value; /* of key "k", or NULL when no metadata */
} accepted[] = {
    /* whitespace everywhere JSON allows it, no padding */
    {" \t\n\r{ \"x\" :\n{ \"dtype\" : \"F32\" ,\t\"shape\" : [ 2 ] , \"data_offsets\" : [ 0 , 8 ] "
     "} } \r\n\t ",
     "\0\0\x80?\0\0\0@", 8, "x", 2, NULL},
    /* fields in another order; tensors out of data order */
    {"{\"y\":{\"data_offsets\":[4,8],\"shape\":[1],\"dtype\":\"F32\"},\"x\":{\"shape\":[1],"
     "\"data_offsets\":[0,4],\"dtype\":\"F32\"}}",
     "\0\0\x80?\0\0\0@", 8, "y", 1, NULL},
    /* escapes in names: \u0041 is A, a surrogate pair is U+1F600 */
    {"{\"\\u0041\\ud83d\\ude00\\/\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
     "\1\0\0\0\2\0\0\0", 8, "A\xf0\x9f\x98\x80/", 2, NULL},
    /* upper-case hex digits */
    {"{\"\\u00E9\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
     "\1\0\0\0\2\0\0\0", 8, "\xc3\xa9", 2, NULL},
    /* "__metadata__": null is no metadata, as in the Python library */
    {"{\"__metadata__\":null,\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
     "\0\0\x80?\0\0\0@", 8, "x", 2, NULL},
    /* empty metadata, metadata last */
    {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"__metadata__\":{}}",
     "\0\0\x80?\0\0\0@", 8, "x", 2, NULL},
    {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"__metadata__\":{\"k\":"
     "\"\\\"\\t\"}}",
     "\0\0\x80?\0\0\0@", 8, "x", 2, "\"\t"},
    /* misaligned data (another writer's order): read into aligned memory */
    {"{\"b\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]},\"x\":{\"dtype\":\"F64\","
     "\"shape\":[1],\"data_offsets\":[3,11]}}",
     "\1\0\1\0\0\0\0\0\0\xf0?", 11, "x", 1, NULL},
    /* size-0 tensors anywhere, several at one offset */
    {"{\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},\"x\":{\"dtype\":\"F32\","
     "\"shape\":[2],\"data_offsets\":[0,8]},\"f\":{\"dtype\":\"I64\",\"shape\":[3,0],"
     "\"data_offsets\":[8,8]},\"g\":{\"dtype\":\"BOOL\",\"shape\":[0],\"data_offsets\":[0,0]}}",
     "\0\0\x80?\0\0\0@", 8, "e", 0, NULL},
    /* huge dims next to a zero: no bytes */
    {"{\"x\":{\"dtype\":\"F64\",\"shape\":[0,1152921504606846975],\"data_offsets\":[0,0]}}", "",
     0, "x", 0, NULL},
    /* the empty name */
    {"{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "\0\0\x80?\0\0\0@", 8, "",
     2, NULL},
};

START_TEST(accepts_variations) {
  size_t len;
  const char *h = accepted[_i].header;
  unsigned char *b = make_image(h, strlen(h), accepted[_i].data, accepted[_i].ndata, &len);
  sm_st_file f;
  read_ok(b, len, &f);
  const sm_st_tensor *t = sm_st_find(&f, accepted[_i].name);
  ck_assert_msg(t != NULL, "no tensor \"%s\"", accepted[_i].name);
  ck_assert_int_eq(t->dims[0], accepted[_i].dim0);
  ck_assert_msg((uintptr_t)t->data % 16 == 0, "misaligned");
  for (size_t k = 0; k < f.ntensors; k++) {
    ck_assert_ptr_nonnull(f.tensors[k].data);
    ck_assert((uintptr_t)f.tensors[k].data % 16 == 0);
  }
  if (accepted[_i].meta_value)
    ck_assert_str_eq(sm_st_meta_get(&f, "k"), accepted[_i].meta_value);
  else
    ck_assert_ptr_null(sm_st_meta_get(&f, "k"));
  if (host_little() && _i == 7) {
    ck_assert(*(const double *)t->data == 1.0);
    const uint8_t *bb = sm_st_find(&f, "b")->data;
    ck_assert(bb[0] == 1 && bb[1] == 0 && bb[2] == 1);
  }
  sm_st_free(&f);
  free(b);
}
END_TEST

START_TEST(bool_bytes_normalized) {
  const char *h = "{\"m\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offsets\":[0,4]}}";
  size_t len;
  unsigned char *b = make_image(h, strlen(h), "\x00\x02\xff\x01", 4, &len);
  sm_st_file f;
  read_ok(b, len, &f);
  const uint8_t *v = f.tensors[0].data;
  ck_assert(v[0] == 0 && v[1] == 1 && v[2] == 1 && v[3] == 1);
  sm_st_free(&f);
  free(b);
}
END_TEST

/* ------------------------------------------------------ malformed input */

static const struct {
  const char *bytes;
  size_t len;
  const char *want;
} bad_raw[] = {
    {"", 0, "t.st: empty file (not a safetensors file)"},
    {FIX("\x08\0\0\0\0"), "t.st: truncated: the file has 5 bytes, less than the 8-byte header length"},
    {FIX("\x64\0\0\0\0\0\0\0{\"x\":{\"dty"),
     "t.st: truncated: header length 100 runs past the end of the file (10 bytes after the "
     "8-byte length)"},
    {FIX("\xff\xff\xff\xff\xff\xff\xff\xff{}"),
     "t.st: truncated: header length 18446744073709551615 runs past the end of the file (2 bytes "
     "after the 8-byte length)"},
    {FIX("\x09\0\0\0\0\0\0\0{}      "),
     "t.st: truncated: header length 9 runs past the end of the file (8 bytes after the 8-byte "
     "length)"},
    /* other formats: a .npy file, a zip (torch.save) */
    {FIX("\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"),
     "t.st: truncated: header length 379676406402707 runs past the end of the file (59 bytes "
     "after the 8-byte length)"},
    {FIX("PK\x03\x04\x00\x00\x08\x08\x00\x00"),
     "t.st: truncated: header length 578712552184433488 runs past the end of the file (2 bytes "
     "after the 8-byte length)"},
    /* NUL bytes: as padding, inside a name */
    {FIX("\x08\0\0\0\0\0\0\0{}\0\0\0\0\0\0"),
     "t.st: malformed header: NUL byte at byte 2 of the header"},
    {FIX("\x08\0\0\0\0\0\0\0{\"a\0\":1}"), "t.st: malformed header: NUL byte at byte 3 of the header"},
    {FIX("\x00\0\0\0\0\0\0\0"),
     "t.st: malformed header: expected '{' (a safetensors header is a JSON object) at the end of "
     "the header"},
};

START_TEST(rejects_raw) {
  /* An exact-size copy, so that ASan sees any read past the end. */
  char *copy = malloc(bad_raw[_i].len + 1);
  memcpy(copy, bad_raw[_i].bytes, bad_raw[_i].len);
  read_fails(copy, bad_raw[_i].len, bad_raw[_i].want, bad_raw[_i].want);
  free(copy);
}
END_TEST

#define T(name, dtype, shape, offsets)                                                     \
  "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offsets "}"
#define X8 T("x", "F32", "[2]", "[0,8]")
static const struct {
  const char *header;
  size_t ndata;
  const char *want;
} bad_header[] = {
    /* JSON syntax */
    {"[]", 0,
     "t.st: malformed header: expected '{' (a safetensors header is a JSON object) at byte 0 of "
     "the header (near '[]')"},
    {"        ", 0,
     "t.st: malformed header: expected '{' (a safetensors header is a JSON object) at the end of "
     "the header"},
    {"{", 0, "t.st: malformed header: expected a tensor name (a string) or '}' at the end of the header"},
    {"{}x", 0,
     "t.st: malformed header: unexpected text after the header's JSON object at byte 2 of the "
     "header (near 'x')"},
    {"{}}", 0,
     "t.st: malformed header: unexpected text after the header's JSON object at byte 2 of the "
     "header (near '}')"},
    {"{" X8 "}{}", 8,
     "t.st: malformed header: unexpected text after the header's JSON object at byte 54 of the "
     "header (near '{}')"},
    {"{" X8 ",}", 8,
     "t.st: malformed header: expected a tensor name (a string) or '}' at byte 54 of the header "
     "(near '}')"},
    {"{" X8 " " X8 "}", 8,
     "t.st: malformed header: expected ',' or '}' at byte 54 of the header (near '\"x\":{\"dtype\":\"F32\",\"shap')"},
    {"{x:1}", 0,
     "t.st: malformed header: expected a tensor name (a string) or '}' at byte 1 of the header "
     "(near 'x:1}')"},
    {"{'x':1}", 0,
     "t.st: malformed header: expected a tensor name (a string) or '}' at byte 1 of the header "
     "(near ''x':1}')"},
    {"{\"x\" {}}", 0,
     "t.st: malformed header: expected ':' after a key at byte 5 of the header (near '{}}')"},
    {"{\"x\":5}", 0,
     "t.st: malformed header: expected '{' (a tensor's dtype, shape and data_offsets) at byte 5 "
     "of the header (near '5}')"},
    {"{\"x\":null}", 0,
     "t.st: malformed header: expected '{' (a tensor's dtype, shape and data_offsets) at byte 5 "
     "of the header (near 'null}')"},
    {"{\"x\":[1]}", 0, "t.st: malformed header: expected '{' (a tensor's dtype, shape and data_offsets) at byte 5 of the header (near '[1]}')"},
    {"{\"x\":\xc3\xa9}", 0,
     "t.st: malformed header: expected '{' (a tensor's dtype, shape and data_offsets) at byte 5 "
     "of the header (near '\\xc3\\xa9}')"},
    {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", 8,
     "t.st: malformed header: expected ',' or '}' at the end of the header"},
    {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],}}", 8,
     "t.st: malformed header: expected a key (\"dtype\", \"shape\" or \"data_offsets\") or '}' "
     "at byte 53 of the header (near '}}')"},
    {"{\"x\":{\"dtype\":{\"a\":{\"b\":[[[]]]}}}}", 0,
     "t.st: malformed header: expected a string for \"dtype\" at byte 14 of the header (near "
     "'{\"a\":{\"b\":[[[]]]}}}}')"},
    {"{\"x\":{\"dtype\":5}}", 0,
     "t.st: malformed header: expected a string for \"dtype\" at byte 14 of the header (near '5}}')"},
    /* strings */
    {"{\"x", 0, "t.st: malformed header: unterminated string at the end of the header"},
    {"{\"x\\", 0, "t.st: malformed header: unterminated string at the end of the header"},
    {"{\"a\tb\":{}}", 0,
     "t.st: malformed header: control character in a string (JSON needs an escape) at byte 3 of "
     "the header (near '\\x09b\":{}}')"},
    {"{\"a\\qb\":{}}", 0,
     "t.st: malformed header: invalid escape in a string at byte 3 of the header (near "
     "'\\x5cqb\":{}}')"},
    {"{\"a\\u12\":{}}", 0,
     "t.st: malformed header: expected 4 hex digits after \\u at byte 5 of the header (near "
     "'12\":{}}')"},
    {"{\"a\\u12g4\":{}}", 0,
     "t.st: malformed header: expected 4 hex digits after \\u at byte 5 of the header (near "
     "'12g4\":{}}')"},
    {"{\"\\u0000\":{}}", 0,
     "t.st: malformed header: \\u0000 (NUL) in a string (smelt's names cannot hold it) at byte 2 "
     "of the header (near '\\x5cu0000\":{}}')"},
    {"{\"\\ud800\":{}}", 0,
     "t.st: malformed header: lone high surrogate \\u escape (no low surrogate after it) at byte "
     "2 of the header (near '\\x5cud800\":{}}')"},
    {"{\"\\ud800\\u0041\":{}}", 0,
     "t.st: malformed header: lone high surrogate \\u escape (no low surrogate after it) at byte "
     "2 of the header (near '\\x5cud800\\x5cu0041\":{}}')"},
    {"{\"\\udc00\":{}}", 0,
     "t.st: malformed header: lone low surrogate \\u escape at byte 2 of the header (near "
     "'\\x5cudc00\":{}}')"},
    {"{\"\xff\":{}}", 0,
     "t.st: malformed header: invalid UTF-8 in a string at byte 2 of the header (near "
     "'\\xff\":{}}')"},
    {"{\"\xc0\x80\":{}}", 0, "t.st: malformed header: invalid UTF-8 in a string at byte 2 of the header (near '\\xc0\\x80\":{}}')"},
    {"{\"\xed\xa0\x80\":{}}", 0, "t.st: malformed header: invalid UTF-8 in a string at byte 2 of the header (near '\\xed\\xa0\\x80\":{}}')"},
    {"{\"\xf4\x90\x80\x80\":{}}", 0, "t.st: malformed header: invalid UTF-8 in a string at byte 2 of the header (near '\\xf4\\x90\\x80\\x80\":{}}')"},
    {"{\"\xe2\x82\":{}}", 0, "t.st: malformed header: invalid UTF-8 in a string at byte 2 of the header (near '\\xe2\\x82\":{}}')"},
    /* fields */
    {"{\"x\":{}}", 0, "t.st: tensor \"x\" has no \"dtype\""},
    {"{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "t.st: tensor \"x\" has no \"shape\""},
    {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "t.st: tensor \"x\" has no \"data_offsets\""},
    {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"foo\":1}}", 8,
     "t.st: tensor \"x\": unexpected key \"foo\" (expected \"dtype\", \"shape\" and "
     "\"data_offsets\")"},
    {"{\"x\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     "t.st: tensor \"x\": key \"dtype\" appears twice"},
    /* dtypes */
    {"{" T("x", "X99", "[2]", "[0,8]") "}", 8, "t.st: tensor \"x\": unknown dtype \"X99\""},
    {"{" T("x", "f32", "[2]", "[0,8]") "}", 8, "t.st: tensor \"x\": unknown dtype \"f32\""},
    /* names in messages: quotes and control characters escaped, UTF-8 kept, long ones cut */
    {"{" T("q\\\"\\n\xc3\xa9", "X99", "[2]", "[0,8]") "}", 8,
     "t.st: tensor \"q\\x22\\x0a\xc3\xa9\": unknown dtype \"X99\""},
    {"{" T("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "F32", "[2]", "[0,4]") "}", 4,
     "t.st: tensor \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": data_offsets [0, 4] hold 4 bytes, but f32[2] needs 8"},
    {"{" T("x", "", "[2]", "[0,8]") "}", 8, "t.st: tensor \"x\": unknown dtype \"\""},
    {"{" T("h", "F16", "[2]", "[0,4]") "}", 4,
     "t.st: tensor \"h\": dtype F16 is not supported (smelt reads F32, F64, I32, I64 and BOOL)"},
    {"{" T("h", "BF16", "[2]", "[0,4]") "}", 4,
     "t.st: tensor \"h\": dtype BF16 is not supported (smelt reads F32, F64, I32, I64 and BOOL)"},
    {"{" T("u", "U8", "[2]", "[0,2]") "}", 2, "t.st: tensor \"u\": dtype U8 is not supported (smelt reads F32, F64, I32, I64 and BOOL)"},
    {"{" T("u", "I8", "[2]", "[0,2]") "}", 2, "t.st: tensor \"u\": dtype I8 is not supported (smelt reads F32, F64, I32, I64 and BOOL)"},
    {"{" T("u", "U64", "[2]", "[0,16]") "}", 16, "t.st: tensor \"u\": dtype U64 is not supported (smelt reads F32, F64, I32, I64 and BOOL)"},
    {"{" T("u", "F8_E4M3", "[2]", "[0,2]") "}", 2, "t.st: tensor \"u\": dtype F8_E4M3 is not supported (smelt reads F32, F64, I32, I64 and BOOL)"},
    /* shapes */
    {"{" T("x", "F32", "[2,-3]", "[0,0]") "}", 0, "t.st: tensor \"x\": negative number (-3) in shape"},
    {"{" T("x", "F32", "[-0]", "[0,0]") "}", 0, "t.st: tensor \"x\": negative number (-0) in shape"},
    {"{" T("x", "F32", "[99999999999999999999]", "[0,0]") "}", 0,
     "t.st: tensor \"x\": number 99999999999999999999 in shape is too large"},
    {"{" T("x", "F32", "[9223372036854775808]", "[0,0]") "}", 0,
     "t.st: tensor \"x\": dimension 9223372036854775808 is too large"},
    {"{" T("x", "F32", "[4294967296,4294967296]", "[0,0]") "}", 0,
     "t.st: tensor \"x\": f32[4294967296,4294967296] is too large (its byte size overflows)"},
    {"{" T("x", "F64", "[2305843009213693952]", "[0,0]") "}", 0,
     "t.st: tensor \"x\": f64[2305843009213693952] is too large (its byte size overflows)"},
    /* the product of the non-zero dims must fit, even next to a zero (as in npy.c) */
    {"{" T("x", "F64", "[0,9223372036854775807]", "[0,0]") "}", 0,
     "t.st: tensor \"x\": f64[0,9223372036854775807] is too large (its byte size overflows)"},
    /* huge but representable: refused for want of data, nothing allocated */
    {"{" T("x", "F32", "[1048576,1048576]", "[0,4398046511104]") "}", 20,
     "t.st: tensor \"x\": data_offsets [0, 4398046511104] run past the end of the data (20 bytes)"},
    {"{" T("x", "F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4,
     "t.st: tensor \"x\": rank 9 is more than smelt's 8"},
    {"{" T("x", "F32", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4,
     "t.st: tensor \"x\": rank 20 is more than smelt's 8"},
    {"{" T("x", "F32", "3", "[0,4]") "}", 4,
     "t.st: malformed header: expected '[' after \"shape\" at byte 28 of the header (near "
     "'3,\"data_offsets\":[0,4]}}')"},
    {"{" T("x", "F32", "[1.0]", "[0,4]") "}", 4,
     "t.st: malformed header: expected an integer (not a fraction or an exponent) at byte 30 of "
     "the header (near '.0],\"data_offsets\":[0,4]')"},
    {"{" T("x", "F32", "[1e0]", "[0,4]") "}", 4,
     "t.st: malformed header: expected an integer (not a fraction or an exponent) at byte 30 of "
     "the header (near 'e0],\"data_offsets\":[0,4]')"},
    {"{" T("x", "F32", "[01]", "[0,4]") "}", 4,
     "t.st: malformed header: number with a leading zero at byte 29 of the header (near "
     "'01],\"data_offsets\":[0,4]')"},
    {"{" T("x", "F32", "[1,]", "[0,4]") "}", 4,
     "t.st: malformed header: expected a dimension (an integer) in \"shape\" at byte 31 of the "
     "header (near '],\"data_offsets\":[0,4]}}')"},
    {"{" T("x", "F32", "[1 1]", "[0,4]") "}", 4,
     "t.st: malformed header: expected ',' or ']' at byte 31 of the header (near '1],\"data_offsets\":[0,4]}')"},
    {"{" T("x", "F32", "[\"1\"]", "[0,4]") "}", 4,
     "t.st: malformed header: expected a dimension (an integer) in \"shape\" at byte 29 of the "
     "header (near '\"1\"],\"data_offsets\":[0,4')"},
    {"{" T("x", "F32", "[1", "[0,4]") "}", 4,
     "t.st: malformed header: expected a dimension (an integer) in \"shape\" at byte 31 of the "
     "header (near '\"data_offsets\":[0,4]}}')"},
    /* data_offsets */
    {"{" T("w", "F32", "[2,3]", "[0,12]") "}", 12,
     "t.st: tensor \"w\": data_offsets [0, 12] hold 12 bytes, but f32[2,3] needs 24"},
    {"{" T("w", "I64", "[]", "[0,4]") "}", 4,
     "t.st: tensor \"w\": data_offsets [0, 4] hold 4 bytes, but i64[] needs 8"},
    {"{" T("w", "BOOL", "[0]", "[0,1]") "}", 1,
     "t.st: tensor \"w\": data_offsets [0, 1] hold 1 bytes, but bool[0] needs 0"},
    {"{" T("x", "F32", "[0]", "[8,0]") "}", 8,
     "t.st: tensor \"x\": data_offsets [8, 0] end before they begin"},
    {"{" T("x", "F32", "[2]", "[0,8,8]") "}", 8,
     "t.st: tensor \"x\": data_offsets must be [begin, end], not 3 numbers"},
    {"{" T("x", "F32", "[0]", "[]") "}", 0,
     "t.st: tensor \"x\": data_offsets must be [begin, end], not 0 numbers"},
    {"{" T("x", "F32", "[2]", "[-4,4]") "}", 8, "t.st: tensor \"x\": negative number (-4) in data_offsets"},
    {"{" T("x", "F32", "[2]", "[0,18446744073709551616]") "}", 8,
     "t.st: tensor \"x\": number 18446744073709551616 in data_offsets is too large"},
    {"{" T("x", "F32", "[2]", "[0,8.0]") "}", 8,
     "t.st: malformed header: expected an integer (not a fraction or an exponent) at byte 51 of "
     "the header (near '.0]}}')"},
    {"{" T("x", "F32", "[2]", "{}") "}", 8,
     "t.st: malformed header: expected '[' after \"data_offsets\" at byte 47 of the header (near "
     "'{}}}')"},
    {"{" T("x", "F32", "[2]", "[0,8]") "}", 4,
     "t.st: tensor \"x\": data_offsets [0, 8] run past the end of the data (4 bytes)"},
    {"{" T("x", "F32", "[2]", "[18446744073709551608,18446744073709551615]") "}", 8,
     "t.st: tensor \"x\": data_offsets [18446744073709551608, 18446744073709551615] hold 7 bytes, "
     "but f32[2] needs 8"},
    {"{" T("x", "F32", "[2]", "[18446744073709551607,18446744073709551615]") "}", 8,
     "t.st: tensor \"x\": data_offsets [18446744073709551607, 18446744073709551615] run past the "
     "end of the data (8 bytes)"},
    /* the layout of the data */
    {"{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[2]", "[4,12]") "}", 12,
     "t.st: tensor \"b\": data_offsets [4, 12] overlap tensor \"a\" at [0, 8]"},
    {"{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[2]", "[0,8]") "}", 8,
     "t.st: tensor \"b\": data_offsets [0, 8] overlap tensor \"a\" at [0, 8]"},
    {"{" T("a", "F32", "[2]", "[0,8]") "," T("e", "F32", "[0]", "[4,4]") "}", 8,
     "t.st: tensor \"e\": data_offsets [4, 4] overlap tensor \"a\" at [0, 8]"},
    {"{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[2]", "[12,20]") "}", 20,
     "t.st: bytes 8 to 12 of the data belong to no tensor (a gap before tensor \"b\" at [12, 20])"},
    {"{" T("a", "F32", "[2]", "[4,12]") "}", 12,
     "t.st: bytes 0 to 4 of the data belong to no tensor (a gap before tensor \"a\" at [4, 12])"},
    {"{" T("a", "F32", "[2]", "[0,8]") "}", 12,
     "t.st: 4 bytes after the last tensor's data (the tensors cover 8 of the 12 bytes of data)"},
    {"{}", 3, "t.st: 3 bytes after the last tensor's data (the tensors cover 0 of the 3 bytes of data)"},
    /* duplicates */
    {"{" X8 "," X8 "}", 8, "t.st: tensor \"x\" appears twice in the header"},
    {"{" X8 ",\"\\u0078\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     "t.st: tensor \"x\" appears twice in the header"},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0,
     "t.st: \"__metadata__\" appears twice in the header"},
    {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0,
     "t.st: metadata key \"k\" appears twice in the header"},
    /* metadata */
    {"{\"__metadata__\":{\"k\":1}}", 0,
     "t.st: malformed header: expected a string (metadata values are strings) at byte 21 of the "
     "header (near '1}}')"},
    {"{\"__metadata__\":{\"k\":{\"a\":\"b\"}}}", 0,
     "t.st: malformed header: expected a string (metadata values are strings) at byte 21 of the "
     "header (near '{\"a\":\"b\"}}}')"},
    {"{\"__metadata__\":{\"k\":null}}", 0,
     "t.st: malformed header: expected a string (metadata values are strings) at byte 21 of the "
     "header (near 'null}}')"},
    {"{\"__metadata__\":[\"k\"]}", 0,
     "t.st: malformed header: expected '{' (the metadata, an object of strings) at byte 16 of "
     "the header (near '[\"k\"]}')"},
    {"{\"__metadata__\":nul}", 0,
     "t.st: malformed header: expected '{' (the metadata, an object of strings) at byte 16 of "
     "the header (near 'nul}')"},
    {"{\"__metadata__\":{1:\"x\"}}", 0,
     "t.st: malformed header: expected a metadata key (a string) or '}' at byte 17 of the header "
     "(near '1:\"x\"}}')"},
    {"{\"__metadata__\":{\"k\":\"\\u0000\"}}", 0,
     "t.st: malformed header: \\u0000 (NUL) in a string (smelt's names cannot hold it) at byte 22 "
     "of the header (near '\\x5cu0000\"}}')"},
};
#undef T
#undef X8

START_TEST(rejects_header) {
  size_t len;
  const char *h = bad_header[_i].header;
  unsigned char *b = make_image(h, strlen(h), NULL, bad_header[_i].ndata, &len);
  read_fails(b, len, bad_header[_i].want, h);
  free(b);
}
END_TEST

/* Every truncation of every Python file is an error, never a crash. */
START_TEST(every_truncation_fails) {
  for (size_t n = 0; n < from_python[_i].len; n++) {
    char err[512];
    sm_st_file f;
    char *copy = malloc(n ? n : 1);
    memcpy(copy, from_python[_i].bytes, n);
    int rc = sm_st_read_mem(copy, n, "t.st", &f, err, sizeof err);
    free(copy);
    ck_assert_msg(rc == -1, "%s cut to %zu bytes was accepted", from_python[_i].name, n);
    ck_assert_msg(strncmp(err, "t.st: ", 6) == 0, "%s", err);
  }
}
END_TEST

/* Changing bytes of a valid file: any result, but no crash (ASan) and a
 * message that names the file. */
START_TEST(corrupted_bytes_never_crash) {
  size_t len = from_python[_i].len;
  unsigned char *b = malloc(len);
  static const unsigned char values[] = {0,   '"', '\\', '{', '}', '[', ']', ',', ':',
                                         '9', '-', ' ',  'u', 0xff, 0xc3, '0', 'e'};
  size_t limit = len < 400 ? len : 400;
  for (size_t pos = 0; pos < limit; pos++)
    for (size_t v = 0; v < sizeof values; v++) {
      memcpy(b, from_python[_i].bytes, len);
      b[pos] = values[v];
      sm_st_file f;
      char err[512] = "";
      if (sm_st_read_mem(b, len, "t.st", &f, err, sizeof err) == 0)
        sm_st_free(&f);
      else
        ck_assert_msg(strncmp(err, "t.st: ", 6) == 0, "%s", err);
    }
  free(b);
}
END_TEST

START_TEST(arguments) {
  char err[256];
  sm_st_file f;
  ck_assert_int_eq(sm_st_read_mem(NULL, 10, NULL, &f, err, sizeof err), -1);
  ck_assert_str_eq(err, "<memory>: no data");
  ck_assert_int_eq(sm_st_read_mem(st_empty, 16, NULL, NULL, err, sizeof err), -1);
  ck_assert_str_eq(err, "<memory>: no output");
  ck_assert_int_eq(sm_st_read_mem(NULL, 0, NULL, &f, err, sizeof err), -1);
  ck_assert_str_eq(err, "<memory>: empty file (not a safetensors file)");
  /* errbuf may be NULL or tiny */
  ck_assert_int_eq(sm_st_read_mem("x", 1, "t.st", &f, NULL, 0), -1);
  char tiny[5];
  ck_assert_int_eq(sm_st_read_mem("x", 1, "t.st", &f, tiny, sizeof tiny), -1);
  ck_assert_str_eq(tiny, "t.st");
  sm_st_free(NULL);
  ck_assert_ptr_null(sm_st_find(NULL, "x"));
  ck_assert_ptr_null(sm_st_meta_get(NULL, "x"));
  ck_assert_int_eq(sm_st_read_file(NULL, &f, err, sizeof err), -1);
  ck_assert_str_eq(err, "<null>: no file name");
  ck_assert_int_eq(sm_st_read_file("x.st", NULL, err, sizeof err), -1);
  ck_assert_str_eq(err, "x.st: no output");
  ck_assert_int_eq(sm_st_write_file(NULL, NULL, 0, NULL, 0, err, sizeof err), -1);
  ck_assert_str_eq(err, "<null>: no file name");
}
END_TEST

/* The writer refuses what it cannot write, each with its message. */
static const float some_f32[6] = {1, 2, 3, 4, 5, 6};
static const struct {
  sm_st_tensor t[2];
  size_t n;
  sm_st_meta meta[2];
  size_t nmeta;
  const char *want;
} bad_write[] = {
    {{{NULL, SMELT_F32, 1, {1}, some_f32, 4}}, 1, {{0}}, 0, "<memory>: tensor 0 has no name"},
    {{{"a\xff", SMELT_F32, 1, {1}, some_f32, 4}}, 1, {{0}}, 0,
     "<memory>: tensor \"a\\xff\": the name is not valid UTF-8"},
    {{{"__metadata__", SMELT_F32, 1, {1}, some_f32, 4}}, 1, {{0}}, 0,
     "<memory>: \"__metadata__\" cannot name a tensor (the format keeps it for metadata)"},
    {{{"x", SMELT_DTYPE_COUNT, 1, {1}, some_f32, 4}}, 1, {{0}}, 0,
     "<memory>: tensor \"x\": invalid dtype 5"},
    {{{"x", SMELT_F32, 9, {1}, some_f32, 4}}, 1, {{0}}, 0,
     "<memory>: tensor \"x\": rank 9 out of range (0 to 8)"},
    {{{"x", SMELT_F32, -1, {1}, some_f32, 4}}, 1, {{0}}, 0,
     "<memory>: tensor \"x\": rank -1 out of range (0 to 8)"},
    {{{"x", SMELT_F32, 2, {2, -1}, some_f32, 4}}, 1, {{0}}, 0,
     "<memory>: tensor \"x\": negative dimension -1"},
    {{{"x", SMELT_F32, 2, {INT64_MAX, 2}, some_f32, 4}}, 1, {{0}}, 0,
     "<memory>: tensor \"x\": f32[9223372036854775807,2] is too large"},
    {{{"x", SMELT_F32, 2, {2, 3}, some_f32, 20}}, 1, {{0}}, 0,
     "<memory>: tensor \"x\": nbytes is 20, but f32[2,3] has 24"},
    {{{"x", SMELT_F32, 2, {2, 3}, NULL, 24}}, 1, {{0}}, 0, "<memory>: tensor \"x\": no data"},
    {{{"x", SMELT_F32, 1, {1}, some_f32, 4}, {"x", SMELT_BOOL, 1, {1}, some_f32, 1}}, 2, {{0}}, 0,
     "<memory>: tensor \"x\" appears twice"},
    {{{0}}, 0, {{"k", "1"}, {"k", "2"}}, 2, "<memory>: metadata key \"k\" appears twice"},
    {{{0}}, 0, {{NULL, "1"}}, 1, "<memory>: metadata pair 0 has no key"},
    {{{0}}, 0, {{"k", NULL}}, 1, "<memory>: metadata pair 0 has no value"},
    {{{0}}, 0, {{"k", "\xc3"}}, 1, "<memory>: metadata \"k\": the value is not valid UTF-8"},
    {{{0}}, 0, {{"\xed\xbf\xbf", "v"}}, 1,
     "<memory>: metadata \"\\xed\\xbf\\xbf\": the key is not valid UTF-8"},
};

START_TEST(rejects_writes) {
  char err[256];
  void *out = (void *)1;
  size_t len = 7;
  int rc = sm_st_encode(bad_write[_i].t, bad_write[_i].n, bad_write[_i].meta, bad_write[_i].nmeta,
                        &out, &len, err, sizeof err);
  ck_assert_int_eq(rc, -1);
  ck_assert_ptr_null(out);
  ck_assert_uint_eq(len, 0);
  ck_assert_msg(strcmp(err, bad_write[_i].want) == 0, "got  \"%s\"\nwant \"%s\"", err,
                bad_write[_i].want);
  /* the same from write_file, which touches no file */
  char path[512];
  make_tmpdir();
  tmp_path(path, sizeof path, "x.st");
  rc = sm_st_write_file(path, bad_write[_i].t, bad_write[_i].n, bad_write[_i].meta,
                        bad_write[_i].nmeta, err, sizeof err);
  ck_assert_int_eq(rc, -1);
  ck_assert_msg(strstr(err, bad_write[_i].want + strlen("<memory>")) != NULL, "%s", err);
  ck_assert_int_eq(tmpdir_entries(), 0);
  remove_tmpdir();
}
END_TEST

START_TEST(write_arguments) {
  char err[256];
  void *out;
  size_t len;
  ck_assert_int_eq(sm_st_encode(NULL, 1, NULL, 0, &out, &len, err, sizeof err), -1);
  ck_assert_str_eq(err, "<memory>: no tensors");
  ck_assert_int_eq(sm_st_encode(NULL, 0, NULL, 1, &out, &len, err, sizeof err), -1);
  ck_assert_str_eq(err, "<memory>: no metadata");
  ck_assert_int_eq(sm_st_encode(NULL, 0, NULL, 0, NULL, &len, err, sizeof err), -1);
  ck_assert_str_eq(err, "<memory>: no output buffer");
  ck_assert_int_eq(sm_st_encode(NULL, 0, NULL, 0, &out, NULL, err, sizeof err), -1);
  /* nothing at all is the file Python writes for save({}) */
  ck_assert_int_eq(sm_st_encode(NULL, 0, NULL, 0, &out, &len, err, sizeof err), 0);
  ck_assert_uint_eq(len, sizeof st_empty - 1);
  ck_assert(memcmp(out, st_empty, len) == 0);
  sm_free(out);
  /* no data is fine for an empty tensor */
  sm_st_tensor t = {"e", SMELT_F64, 2, {0, 3}, NULL, 0};
  ck_assert_int_eq(sm_st_encode(&t, 1, NULL, 0, &out, &len, err, sizeof err), 0);
  sm_free(out);
}
END_TEST

/* --------------------------------------------------------------- files */

START_TEST(file_errors) {
  char path[512], err[1024];
  sm_st_file f;
  make_tmpdir();

  tmp_path(path, sizeof path, "x.st");
  ck_assert_int_eq(sm_st_read_file(path, &f, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "x.st: cannot open: No such file or directory"), "%s", err);

  ck_assert_int_eq(sm_st_read_file(tmpdir, &f, err, sizeof err), -1);
  ck_assert_msg(strstr(err, ": is a directory"), "%s", err);

  /* a header claiming 4 TB of data, and 20 bytes of it */
  const char *h = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1048576,1048576],"
                  "\"data_offsets\":[0,4398046511104]}}";
  size_t len;
  unsigned char *b = make_image(h, strlen(h), NULL, 20, &len);
  tmp_path(path, sizeof path, "hostile.st");
  write_bytes(path, b, len);
  free(b);
  ck_assert_int_eq(sm_st_read_file(path, &f, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "hostile.st: tensor \"x\": data_offsets [0, 4398046511104] run past "
                            "the end of the data (20 bytes)"),
                "%s", err);
  ck_assert_ptr_null(f.tensors);

  /* a header length over the limit, in a sparse file that large */
  tmp_path(path, sizeof path, "sparse.st");
  unsigned char lenbytes[8];
  uint64_t big = (uint64_t)SM_ST_MAX_HEADER + 1;
  for (int i = 0; i < 8; i++) lenbytes[i] = (unsigned char)(big >> (8 * i));
  write_bytes(path, lenbytes, 8);
  ck_assert_int_eq(truncate(path, (off_t)SM_ST_MAX_HEADER + 100), 0);
  ck_assert_int_eq(sm_st_read_file(path, &f, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "sparse.st: header length 100000001 is over the limit of 100000000 "
                            "bytes (not a safetensors file?)"),
                "%s", err);

  tmp_path(path, sizeof path, "trunc.st");
  write_bytes(path, st_mixed, sizeof st_mixed - 1 - 5);
  ck_assert_int_eq(sm_st_read_file(path, &f, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "trunc.st: tensor \"i\": data_offsets [56, 72] run past the end of "
                            "the data (71 bytes)"),
                "%s", err);
  write_bytes(path, st_mixed, 60);
  ck_assert_int_eq(sm_st_read_file(path, &f, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "trunc.st: truncated: header length 368 runs past the end of the "
                            "file (52 bytes after the 8-byte length)"),
                "%s", err);
  write_bytes(path, st_mixed, 3);
  ck_assert_int_eq(sm_st_read_file(path, &f, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "trunc.st: truncated: the file has 3 bytes, less than the 8-byte "
                            "header length"),
                "%s", err);
  write_bytes(path, "", 0);
  ck_assert_int_eq(sm_st_read_file(path, &f, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "trunc.st: empty file (not a safetensors file)"), "%s", err);
  /* trailing bytes */
  unsigned char *t = malloc(sizeof st_special + 2);
  memcpy(t, st_special, sizeof st_special - 1);
  memcpy(t + sizeof st_special - 1, "abc", 3);
  write_bytes(path, t, sizeof st_special + 2);
  free(t);
  ck_assert_int_eq(sm_st_read_file(path, &f, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "trunc.st: 3 bytes after the last tensor's data (the tensors cover "
                            "56 of the 59 bytes of data)"),
                "%s", err);

  /* every Python fixture read back from a file */
  for (int i = 0; i < N_FROM_PYTHON; i++) {
    tmp_path(path, sizeof path, "x.st");
    write_bytes(path, from_python[i].bytes, from_python[i].len);
    ck_assert_msg(sm_st_read_file(path, &f, err, sizeof err) == 0, "%s", err);
    check_fixture(&f, i);
    sm_st_free(&f);
  }

  /* writing where it cannot */
  sm_st_tensor one = {"x", SMELT_F32, 1, {2}, some_f32, 8};
  tmp_path(path, sizeof path, "no/such/dir/y.st");
  ck_assert_int_eq(sm_st_write_file(path, &one, 1, NULL, 0, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "y.st: cannot create a temporary file next to it: No such file or "
                            "directory"),
                "%s", err);
  /* over a directory: the rename fails, the directory stays, no temporary
   * file is left */
  tmp_path(path, sizeof path, "dir.st");
  ck_assert_int_eq(mkdir(path, 0700), 0);
  int before = tmpdir_entries();
  ck_assert_int_eq(sm_st_write_file(path, &one, 1, NULL, 0, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "dir.st: cannot rename the temporary file into place: "), "%s", err);
  ck_assert_int_eq(tmpdir_entries(), before);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert(S_ISDIR(st.st_mode));
  remove_tmpdir();
}
END_TEST

/* A write replaces the file whole; a failed write leaves the old file. */
START_TEST(atomic_writes) {
  char path[512], err[512];
  make_tmpdir();
  tmp_path(path, sizeof path, "a.st");
  sm_st_tensor one = {"x", SMELT_F32, 1, {2}, some_f32, 8};
  ck_assert_msg(sm_st_write_file(path, &one, 1, NULL, 0, err, sizeof err) == 0, "%s", err);
  size_t len0;
  unsigned char *old = slurp(path, &len0);
  /* the new file has the permissions of any file the process creates */
  mode_t mask = umask(022);
  umask(mask);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0666 & ~mask);

  /* a write that fails half way (the file size limit): the old file stays
   * as it was and the temporary file is gone. In a child process, so that
   * the limit stays there. */
  enum { BIG = 1 << 16 };
  float *bigdata = calloc(BIG, sizeof *bigdata);
  sm_st_tensor big = {"big", SMELT_F32, 1, {BIG}, bigdata, BIG * sizeof *bigdata};
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {4096, 4096};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(3);
    char e[512];
    int rc = sm_st_write_file(path, &big, 1, NULL, 0, e, sizeof e);
    _exit(rc == -1 && strstr(e, "a.st: write error: File too large") ? 0 : 1);
  }
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
  size_t len1;
  unsigned char *now = slurp(path, &len1);
  ck_assert_uint_eq(len1, len0);
  ck_assert(memcmp(now, old, len0) == 0);
  free(now);
  ck_assert_int_eq(tmpdir_entries(), 1);

  /* a successful write replaces it */
  ck_assert_msg(sm_st_write_file(path, &big, 1, NULL, 0, err, sizeof err) == 0, "%s", err);
  sm_st_file f;
  ck_assert_msg(sm_st_read_file(path, &f, err, sizeof err) == 0, "%s", err);
  ck_assert_uint_eq(f.ntensors, 1);
  ck_assert_str_eq(f.tensors[0].name, "big");
  sm_st_free(&f);
  ck_assert_int_eq(tmpdir_entries(), 1);

  /* a relative path (the directory to sync is ".") */
  char cwd[512];
  ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
  ck_assert_int_eq(chdir(tmpdir), 0);
  ck_assert_msg(sm_st_write_file("b.st", &one, 1, NULL, 0, err, sizeof err) == 0, "%s", err);
  ck_assert_msg(sm_st_read_file("b.st", &f, err, sizeof err) == 0, "%s", err);
  sm_st_free(&f);
  ck_assert_int_eq(chdir(cwd), 0);
  ck_assert_int_eq(tmpdir_entries(), 2);
  free(bigdata);
  free(old);
  remove_tmpdir();
}
END_TEST

/* Reads bytes through a pipe (not a regular file: the size is unknown and
 * the buffers grow as data arrives). A child process writes them. */
static int read_via_pipe(const void *bytes, size_t n, sm_st_file *f, char *err, size_t errlen) {
  int fd[2];
  ck_assert_int_eq(pipe(fd), 0);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(fd[0]);
    const unsigned char *p = bytes;
    while (n > 0) {
      ssize_t w = write(fd[1], p, n);
      if (w <= 0) break;
      p += w;
      n -= (size_t)w;
    }
    close(fd[1]);
    _exit(0);
  }
  close(fd[1]);
  char path[64];
  snprintf(path, sizeof path, "/dev/fd/%d", fd[0]);
  int rc = sm_st_read_file(path, f, err, errlen);
  close(fd[0]);
  int status;
  waitpid(pid, &status, 0);
  return rc;
}

START_TEST(pipes) {
  char err[1024];
  sm_st_file f;
  struct stat st;
  if (stat("/dev/fd/0", &st) != 0) return; /* no /dev/fd here */
  for (int i = 0; i < N_FROM_PYTHON; i++) {
    ck_assert_msg(read_via_pipe(from_python[i].bytes, from_python[i].len, &f, err, sizeof err) == 0,
                  "%s", err);
    check_fixture(&f, i);
    sm_st_free(&f);
  }

  /* 3 MiB in three tensors: the buffers grow several times */
  int64_t n = 1 << 18;
  int32_t *v = malloc((size_t)n * 4);
  for (int64_t i = 0; i < n; i++) v[i] = (int32_t)(i * 7);
  sm_st_tensor t[3] = {{"a", SMELT_I32, 1, {n}, v, (size_t)n * 4},
                       {"b", SMELT_I32, 2, {2, n / 2}, v, (size_t)n * 4},
                       {"c", SMELT_BOOL, 1, {3}, "\1\0\1", 3}};
  void *img;
  size_t len;
  ck_assert_int_eq(sm_st_encode(t, 3, NULL, 0, &img, &len, err, sizeof err), 0);
  ck_assert_msg(read_via_pipe(img, len, &f, err, sizeof err) == 0, "%s", err);
  ck_assert_uint_eq(f.ntensors, 3);
  ck_assert(memcmp(sm_st_find(&f, "a")->data, v, (size_t)n * 4) == 0);
  ck_assert(memcmp(sm_st_find(&f, "b")->data, v, (size_t)n * 4) == 0);
  sm_st_free(&f);
  /* cut short */
  ck_assert_int_eq(read_via_pipe(img, len - 100, &f, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "truncated: the tensors need 2097155 bytes of data, the file has "
                            "2097055"),
                "%s", err);
  /* trailing data */
  unsigned char *longer = malloc(len + 1);
  memcpy(longer, img, len);
  longer[len] = 'x';
  ck_assert_int_eq(read_via_pipe(longer, len + 1, &f, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "unexpected bytes after the data (the tensors cover 2097155 bytes, "
                            "the file has more)"),
                "%s", err);
  free(longer);
  sm_free(img);
  free(v);

  /* a hostile header through a pipe: memory tracks the bytes that arrive */
  const char *h = "{\"x\":{\"dtype\":\"F64\",\"shape\":[1099511627776],"
                  "\"data_offsets\":[0,8796093022208]}}";
  unsigned char *b = make_image(h, strlen(h), NULL, 20, &len);
  ck_assert_int_eq(read_via_pipe(b, len, &f, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "truncated: the tensors need 8796093022208 bytes of data, the file "
                            "has 20"),
                "%s", err);
  free(b);
  /* a header length past the end */
  ck_assert_int_eq(read_via_pipe(st_mixed, 50, &f, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "truncated: header length 368 runs past the end of the file"), "%s",
                err);
  /* an over-long header length, refused before reading it */
  ck_assert_int_eq(read_via_pipe("\xff\xff\xff\xff\0\0\0\0{}", 10, &f, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "header length 4294967295 is over the limit of 100000000 bytes"), "%s",
                err);
}
END_TEST

/* --------------------------------------------------- allocation failure */

/* Makes the k-th allocation fail for k = 0, 1, ... until the call
 * succeeds; each failure must be a clean "out of memory" error (leaks show
 * under valgrind and ASan). */
START_TEST(allocation_failures) {
  char err[512];
  sm_st_file f;
  int k;
  for (int i = 0; i < N_FROM_PYTHON; i++) {
    for (k = 0; k < 100; k++) {
      sm_alloc_fail_after(k);
      int rc = sm_st_read_mem(from_python[i].bytes, from_python[i].len, "t.st", &f, err,
                              sizeof err);
      sm_alloc_fail_after(-1);
      if (rc == 0) break;
      ck_assert_msg(strstr(err, "t.st: out of memory"), "%s", err);
      ck_assert_ptr_null(f.tensors);
    }
    ck_assert_int_ge(k, 4); /* arena, by_offset, data, tensors (+ lists) */
    check_fixture(&f, i);
    sm_st_free(&f);
  }

  /* many tensors and metadata: the growing lists fail too */
  rt_case c;
  rt_make(&c, 7);
  sm_st_meta meta[20];
  char keys[20][8];
  for (int i = 0; i < 20; i++) {
    snprintf(keys[i], sizeof keys[i], "k%02d", i);
    meta[i] = (sm_st_meta){keys[i], "v"};
  }
  void *img;
  size_t len;
  for (k = 0; k < 100; k++) {
    sm_alloc_fail_after(k);
    int rc = sm_st_encode(c.t, 6, meta, 20, &img, &len, err, sizeof err);
    sm_alloc_fail_after(-1);
    if (rc == 0) break;
    ck_assert_msg(strstr(err, "<memory>: out of memory"), "%s", err);
    ck_assert_ptr_null(img);
  }
  ck_assert_int_ge(k, 3); /* order lists, header, image */
  for (k = 0; k < 100; k++) {
    sm_alloc_fail_after(k);
    int rc = sm_st_read_mem(img, len, "t.st", &f, err, sizeof err);
    sm_alloc_fail_after(-1);
    if (rc == 0) break;
    ck_assert_msg(strstr(err, "t.st: out of memory"), "%s", err);
  }
  ck_assert_int_ge(k, 6);
  sm_st_free(&f);
  sm_free(img);

  char path[512];
  make_tmpdir();
  tmp_path(path, sizeof path, "x.st");
  for (k = 0; k < 100; k++) {
    sm_alloc_fail_after(k);
    int rc = sm_st_write_file(path, c.t, 6, meta, 20, err, sizeof err);
    sm_alloc_fail_after(-1);
    if (rc == 0) break;
    ck_assert_msg(strstr(err, "x.st: out of memory"), "%s", err);
    ck_assert_int_eq(tmpdir_entries(), 0); /* nothing written */
  }
  ck_assert_int_ge(k, 4); /* order lists, header, file names */
  for (k = 0; k < 100; k++) {
    sm_alloc_fail_after(k);
    int rc = sm_st_read_file(path, &f, err, sizeof err);
    sm_alloc_fail_after(-1);
    if (rc == 0) break;
    ck_assert_msg(strstr(err, "x.st: out of memory"), "%s", err);
  }
  ck_assert_int_ge(k, 7); /* header, arena, lists, by_offset, data, tensors */
  ck_assert_uint_eq(f.ntensors, 6);
  ck_assert_uint_eq(f.nmeta, 20);
  ck_assert_str_eq(f.meta[19].key, "k19");
  sm_st_free(&f);
  rt_free(&c);
  remove_tmpdir();
}
END_TEST

/* ---------------------------------------------------------------- main */

static Suite *st_suite(void) {
  Suite *s = suite_create("safetensors");
  TCase *tc = tcase_create("python");
  tcase_add_loop_test(tc, reads_python_files, 0, N_FROM_PYTHON);
  tcase_add_loop_test(tc, writes_like_python, 0, N_FROM_PYTHON);
  tcase_add_test(tc, writer_layout);
  tcase_add_test(tc, dtype_names);
  suite_add_tcase(s, tc);

  tc = tcase_create("round_trip");
  tcase_add_loop_test(tc, round_trip_memory, 0, SMELT_DTYPE_COUNT * (SMELT_MAX_RANK + 1) * 2);
  tcase_add_loop_test(tc, round_trip_file, 0, SMELT_DTYPE_COUNT * (SMELT_MAX_RANK + 1) * 2);
  tcase_add_test(tc, many_tensors);
  suite_add_tcase(s, tc);

  tc = tcase_create("accepted");
  tcase_add_loop_test(tc, accepts_variations, 0, (int)(sizeof accepted / sizeof accepted[0]));
  tcase_add_test(tc, bool_bytes_normalized);
  suite_add_tcase(s, tc);

  tc = tcase_create("malformed");
  tcase_add_loop_test(tc, rejects_raw, 0, (int)(sizeof bad_raw / sizeof bad_raw[0]));
  tcase_add_loop_test(tc, rejects_header, 0, (int)(sizeof bad_header / sizeof bad_header[0]));
  tcase_add_loop_test(tc, every_truncation_fails, 0, N_FROM_PYTHON);
  tcase_add_loop_test(tc, corrupted_bytes_never_crash, 0, N_FROM_PYTHON);
  tcase_add_test(tc, arguments);
  tcase_add_loop_test(tc, rejects_writes, 0, (int)(sizeof bad_write / sizeof bad_write[0]));
  tcase_add_test(tc, write_arguments);
  suite_add_tcase(s, tc);

  tc = tcase_create("files");
  tcase_add_test(tc, file_errors);
  tcase_add_test(tc, atomic_writes);
  tcase_add_test(tc, pipes);
  tcase_add_test(tc, allocation_failures);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(st_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
