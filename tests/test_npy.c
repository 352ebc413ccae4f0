/* The .npy reader and writer (src/npy.c): files written by numpy, round
 * trips of every dtype and rank 0 to 8 (size-0 dims included), output that
 * is byte-identical to numpy.save, every malformed-input error with its
 * message, files, pipes, and allocation failures. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "npy.h"
#include "testutil.h"

/* ------------------------------------------------------------ fixtures */
/* Files written by numpy 1.24.2 (np.save, or numpy.lib.format.write_array for
 * versions 2.0 and 3.0), embedded as C strings; each comment is the array. */
/* np.array([1.5, -2, 3], np.float32) */
static const char np_f32_vec[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"
    "                                                            \n"
    "\x00\x00\xc0\?\x00\x00\x00\xc0\x00\x00@@";
/* np.arange(6, dtype=np.float64).reshape(2, 3) * 0.5 */
static const char np_f64_2x3[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"
    "                                                          \n"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xe0\?\x00\x00\x00\x00\x00\x00"
    "\xf0\?\x00\x00\x00\x00\x00\x00\xf8\?\x00\x00\x00\x00\x00\x00\x00@\x00\x00\x00\x00\x00"
    "\x00\x04@";
/* np.arange(-4, 4, dtype=np.int32).reshape(2, 2, 2) */
static const char np_i32_2x2x2[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2, 2), }"
    "                                                       \n"
    "\xfc\xff\xff\xff\xfd\xff\xff\xff\xfe\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x01\x00"
    "\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00";
/* np.array(-7, np.int64) */
static const char np_i64_scalar[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '<i8', 'fortran_order': False, 'shape': (), }"
    "                                                              \n"
    "\xf9\xff\xff\xff\xff\xff\xff\xff";
/* np.array([True, False, True, True]) */
static const char np_bool_vec[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '|b1', 'fortran_order': False, 'shape': (4,), }"
    "                                                            \n"
    "\x01\x00\x01\x01";
/* np.zeros((0, 3), np.float32) */
static const char np_f32_empty[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }"
    "                                                          \n";
/* np.array([1, 2], '>f4') */
static const char np_f32_be[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }"
    "                                                            \n"
    "\?\x80\x00\x00@\x00\x00\x00";
/* np.array([1, -2, 300], '>i8') */
static const char np_i64_be[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '>i8', 'fortran_order': False, 'shape': (3,), }"
    "                                                            \n"
    "\x00\x00\x00\x00\x00\x00\x00\x01\xff\xff\xff\xff\xff\xff\xff\xfe\x00\x00\x00\x00\x00\x00"
    "\x01,";
/* np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)) */
static const char np_f64_fortran[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }"
    "                                                           \n"
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08@\x00\x00\x00\x00\x00\x00"
    "\xf0\?\x00\x00\x00\x00\x00\x00\x10@\x00\x00\x00\x00\x00\x00\x00@\x00\x00\x00\x00\x00\x00"
    "\x14@";
/* np.asfortranarray(np.arange(24, dtype=np.int32).reshape(2, 3, 4)) */
static const char np_i32_fortran3[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3, 4), }"
    "                                                        \n"
    "\x00\x00\x00\x00\x0c\x00\x00\x00\x04\x00\x00\x00\x10\x00\x00\x00\x08\x00\x00\x00\x14\x00"
    "\x00\x00\x01\x00\x00\x00\x0d\x00\x00\x00\x05\x00\x00\x00\x11\x00\x00\x00\x09\x00\x00\x00"
    "\x15\x00\x00\x00\x02\x00\x00\x00\x0e\x00\x00\x00\x06\x00\x00\x00\x12\x00\x00\x00\n\x00"
    "\x00\x00\x16\x00\x00\x00\x03\x00\x00\x00\x0f\x00\x00\x00\x07\x00\x00\x00\x13\x00\x00\x00"
    "\x0b\x00\x00\x00\x17\x00\x00\x00";
/* write_array(f, np.array([[1, 2]], np.float32), version=(2, 0)) */
static const char np_f32_v2[] =
    "\x93NUMPY\x02\x00t\x00\x00\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), "
    "}"
    "                                                        \n"
    "\x00\x00\x80\?\x00\x00\x00@";
/* write_array(f, np.array([5, 6], np.int64), version=(3, 0)) */
static const char np_i64_v3[] =
    "\x93NUMPY\x03\x00t\x00\x00\x00{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }"
    "                                                          \n"
    "\x05\x00\x00\x00\x00\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x00";
/* np.arange(16, dtype=np.int32).reshape(1, 2, 1, 2, 1, 2, 1, 2) */
static const char np_i32_rank8[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2, 1, 2, 1, "
    "2, 1, 2), }"
    "                                        \n"
    "\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04\x00\x00\x00\x05\x00"
    "\x00\x00\x06\x00\x00\x00\x07\x00\x00\x00\x08\x00\x00\x00\x09\x00\x00\x00\n\x00\x00\x00"
    "\x0b\x00\x00\x00\x0c\x00\x00\x00\x0d\x00\x00\x00\x0e\x00\x00\x00\x0f\x00\x00\x00";
/* np.array([np.nan, np.inf, -np.inf, -0.0]) */
static const char np_f64_special[] =
    "\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }"
    "                                                            \n"
    "\x00\x00\x00\x00\x00\x00\xf8\x7f\x00\x00\x00\x00\x00\x00\xf0\x7f\x00\x00\x00\x00\x00\x00"
    "\xf0\xff\x00\x00\x00\x00\x00\x00\x00\x80";

#define FIX(a) a, sizeof a - 1

static bool host_little(void) {
  const uint16_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

/* Element i of an array as a double. */
static double elem(const sm_npy *a, int64_t i) {
  switch (a->dtype) {
  case SMELT_F32: return ((const float *)a->data)[i];
  case SMELT_F64: return ((const double *)a->data)[i];
  case SMELT_I32: return ((const int32_t *)a->data)[i];
  case SMELT_I64: return (double)((const int64_t *)a->data)[i];
  case SMELT_BOOL: return ((const uint8_t *)a->data)[i];
  default: return -12345;
  }
}

static void read_ok(const void *buf, size_t len, sm_npy *a) {
  char err[512] = "";
  int rc = sm_npy_read_mem(buf, len, "t.npy", a, err, sizeof err);
  ck_assert_msg(rc == 0, "read failed: %s", err);
}

/* Reads buf expecting an error whose message contains want; checks the
 * array is left empty. */
static void read_fails(const void *buf, size_t len, const char *want, const char *what) {
  char err[512] = "";
  sm_npy a;
  memset(&a, 0x55, sizeof a);
  int rc = sm_npy_read_mem(buf, len, "t.npy", &a, err, sizeof err);
  ck_assert_msg(rc == -1, "%s: read succeeded, expected an error containing \"%s\"", what, want);
  ck_assert_msg(strstr(err, want) != NULL, "%s: error \"%s\" lacks \"%s\"", what, err, want);
  ck_assert_msg(strncmp(err, "t.npy: ", 7) == 0, "%s: error \"%s\" does not name the file", what,
                err);
  ck_assert_ptr_null(a.data);
  ck_assert_int_eq(a.rank, 0);
  sm_npy_free(&a);
}

/* --------------------------------------------------- files from numpy */

static const struct {
  const char *name;
  const char *bytes;
  size_t len;
  smelt_dtype dt;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  int nvals;
  double vals[24];
} from_numpy[] = {
    {"f32_vec", FIX(np_f32_vec), SMELT_F32, 1, {3}, 3, {1.5, -2, 3}},
    {"f64_2x3", FIX(np_f64_2x3), SMELT_F64, 2, {2, 3}, 6, {0, 0.5, 1, 1.5, 2, 2.5}},
    {"i32_2x2x2", FIX(np_i32_2x2x2), SMELT_I32, 3, {2, 2, 2}, 8, {-4, -3, -2, -1, 0, 1, 2, 3}},
    {"i64_scalar", FIX(np_i64_scalar), SMELT_I64, 0, {0}, 1, {-7}},
    {"bool_vec", FIX(np_bool_vec), SMELT_BOOL, 1, {4}, 4, {1, 0, 1, 1}},
    {"f32_empty", FIX(np_f32_empty), SMELT_F32, 2, {0, 3}, 0, {0}},
    {"f32_be", FIX(np_f32_be), SMELT_F32, 1, {2}, 2, {1, 2}},
    {"i64_be", FIX(np_i64_be), SMELT_I64, 1, {3}, 3, {1, -2, 300}},
    {"f64_fortran", FIX(np_f64_fortran), SMELT_F64, 2, {2, 3}, 6, {0, 1, 2, 3, 4, 5}},
    {"i32_fortran3",
     FIX(np_i32_fortran3),
     SMELT_I32,
     3,
     {2, 3, 4},
     24,
     {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}},
    {"f32_v2", FIX(np_f32_v2), SMELT_F32, 2, {1, 2}, 2, {1, 2}},
    {"i64_v3", FIX(np_i64_v3), SMELT_I64, 1, {2}, 2, {5, 6}},
    {"i32_rank8",
     FIX(np_i32_rank8),
     SMELT_I32,
     8,
     {1, 2, 1, 2, 1, 2, 1, 2},
     16,
     {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},
    {"f64_special", FIX(np_f64_special), SMELT_F64, 1, {4}, 4, {NAN, INFINITY, -INFINITY, -0.0}},
};
#define N_FROM_NUMPY ((int)(sizeof from_numpy / sizeof from_numpy[0]))

static void check_fixture(const sm_npy *a, int i) {
  ck_assert_msg(a->dtype == from_numpy[i].dt, "%s: dtype %s", from_numpy[i].name,
                smelt_dtype_name(a->dtype));
  ck_assert_int_eq(a->rank, from_numpy[i].rank);
  for (int d = 0; d < a->rank; d++) ck_assert_int_eq(a->dims[d], from_numpy[i].dims[d]);
  ck_assert_int_eq(a->numel, from_numpy[i].nvals);
  ck_assert_uint_eq(a->nbytes, (size_t)from_numpy[i].nvals * smelt_dtype_size(a->dtype));
  ck_assert_ptr_nonnull(a->data);
  for (int k = 0; k < from_numpy[i].nvals; k++) {
    double got = elem(a, k), want = from_numpy[i].vals[k];
    if (isnan(want))
      ck_assert_msg(isnan(got), "%s[%d] = %g, want nan", from_numpy[i].name, k, got);
    else
      ck_assert_msg(got == want && signbit(got) == signbit(want), "%s[%d] = %g, want %g",
                    from_numpy[i].name, k, got, want);
  }
}

START_TEST(reads_numpy_files) {
  sm_npy a;
  read_ok(from_numpy[_i].bytes, from_numpy[_i].len, &a);
  check_fixture(&a, _i);
  sm_npy_free(&a);
  ck_assert_ptr_null(a.data);
}
END_TEST

/* numpy.save's exact bytes for the arrays smelt writes (C order, host
 * byte order, numpy >= 1.24 padding). */
START_TEST(writes_like_numpy) {
  static const int which[] = {0, 1, 2, 3, 4, 5, 12, 13}; /* C-order, little-endian, v1 */
  int i = which[_i];
  if (!host_little()) return;
  sm_npy a;
  read_ok(from_numpy[i].bytes, from_numpy[i].len, &a);
  void *out;
  size_t len;
  char err[256];
  ck_assert_msg(sm_npy_encode(a.dtype, a.rank, a.dims, a.data, &out, &len, err, sizeof err) == 0,
                "%s", err);
  ck_assert_uint_eq(len, from_numpy[i].len);
  ck_assert_msg(memcmp(out, from_numpy[i].bytes, len) == 0, "%s: bytes differ from numpy's",
                from_numpy[i].name);
  sm_free(out);
  sm_npy_free(&a);
}
END_TEST

/* ---------------------------------------------------------- round trips */

/* _i encodes dtype (5) x rank (0..8) x with a size-0 dim or not. */
static void round_trip_shape(int i, smelt_dtype *dt, int *rank, int64_t *dims) {
  *dt = (smelt_dtype)(i % SMELT_DTYPE_COUNT);
  i /= SMELT_DTYPE_COUNT;
  *rank = i % (SMELT_MAX_RANK + 1);
  bool zero = i / (SMELT_MAX_RANK + 1);
  for (int d = 0; d < *rank; d++) dims[d] = 1 + (d % 3);
  if (zero && *rank > 0) dims[*rank / 2] = 0;
}

static void *pattern(smelt_dtype dt, int64_t n) {
  size_t item = smelt_dtype_size(dt);
  unsigned char *p = malloc((size_t)(n ? n : 1) * item);
  ck_assert_ptr_nonnull(p);
  for (int64_t i = 0; i < n; i++) {
    double v = (double)(i * 37 % 101) - 50.25;
    switch (dt) {
    case SMELT_F32: ((float *)p)[i] = (float)v; break;
    case SMELT_F64: ((double *)p)[i] = v / 3; break;
    case SMELT_I32: ((int32_t *)p)[i] = (int32_t)(v * 1000); break;
    case SMELT_I64: ((int64_t *)p)[i] = (int64_t)v * 100000000000LL; break;
    case SMELT_BOOL: ((uint8_t *)p)[i] = i % 3 == 0; break;
    default: break;
    }
  }
  return p;
}

static void check_same(const sm_npy *a, smelt_dtype dt, int rank, const int64_t *dims,
                       const void *data) {
  ck_assert_int_eq(a->dtype, dt);
  ck_assert_int_eq(a->rank, rank);
  int64_t n = 1;
  for (int d = 0; d < rank; d++) {
    ck_assert_int_eq(a->dims[d], dims[d]);
    n *= dims[d];
  }
  ck_assert_int_eq(a->numel, n);
  ck_assert_uint_eq(a->nbytes, (size_t)n * smelt_dtype_size(dt));
  ck_assert_ptr_nonnull(a->data);
  if (n) ck_assert(memcmp(a->data, data, a->nbytes) == 0);
}

START_TEST(round_trip_memory) {
  smelt_dtype dt;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  round_trip_shape(_i, &dt, &rank, dims);
  void *data = pattern(dt, sm_numel(rank, dims));
  void *img;
  size_t len;
  char err[256];
  ck_assert_msg(sm_npy_encode(dt, rank, dims, data, &img, &len, err, sizeof err) == 0, "%s", err);
  /* The data starts at a multiple of 64 after a header ending in '\n'. */
  const unsigned char *b = img;
  size_t hl = (size_t)b[8] | (size_t)b[9] << 8;
  ck_assert_int_eq(b[6], 1);
  ck_assert_uint_eq((10 + hl) % 64, 0);
  ck_assert_int_eq(b[10 + hl - 1], '\n');
  sm_npy a;
  read_ok(img, len, &a);
  check_same(&a, dt, rank, dims, data);
  sm_npy_free(&a);
  sm_free(img);
  free(data);
}
END_TEST

static char tmpdir[256];

static void make_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/smelt-npy-XXXXXX", base && *base ? base : "/tmp");
  ck_assert_msg(mkdtemp(tmpdir) != NULL, "mkdtemp: %s", strerror(errno));
}

static void remove_tmpdir(void) {
  /* Only the files the tests create. */
  static const char *const names[] = {"a.npy", "big.npy", "trunc.npy", "hostile.npy", "x.npy"};
  char p[512];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
    unlink(p);
  }
  rmdir(tmpdir);
}

static void tmp_path(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", tmpdir, name);
}

static void write_bytes(const char *path, const void *b, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
  ck_assert_uint_eq(fwrite(b, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
}

START_TEST(round_trip_file) {
  smelt_dtype dt;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  round_trip_shape(_i, &dt, &rank, dims);
  void *data = pattern(dt, sm_numel(rank, dims));
  char path[512], err[512];
  make_tmpdir();
  tmp_path(path, sizeof path, "a.npy");
  ck_assert_msg(sm_npy_write_file(path, dt, rank, dims, data, err, sizeof err) == 0, "%s", err);
  sm_npy a;
  ck_assert_msg(sm_npy_read_file(path, &a, err, sizeof err) == 0, "%s", err);
  check_same(&a, dt, rank, dims, data);
  sm_npy_free(&a);
  free(data);
  remove_tmpdir();
}
END_TEST

START_TEST(descr_names) {
  ck_assert_str_eq(sm_npy_descr(SMELT_BOOL), "|b1");
  if (host_little()) {
    ck_assert_str_eq(sm_npy_descr(SMELT_F32), "<f4");
    ck_assert_str_eq(sm_npy_descr(SMELT_F64), "<f8");
    ck_assert_str_eq(sm_npy_descr(SMELT_I32), "<i4");
    ck_assert_str_eq(sm_npy_descr(SMELT_I64), "<i8");
  }
  ck_assert_ptr_null(sm_npy_descr(SMELT_DTYPE_COUNT));
  ck_assert_ptr_null(sm_npy_descr((smelt_dtype)-1));
}
END_TEST

/* ------------------------------------------------- accepted variations */

/* A version 1.0 image with header h (padded) followed by n bytes of data;
 * free() it. */
static unsigned char *make_v1(const char *h, const void *data, size_t n, size_t *len) {
  size_t hl = strlen(h);
  unsigned char *b = malloc(10 + hl + n + 1);
  ck_assert_ptr_nonnull(b);
  memcpy(b, "\x93NUMPY\x01\x00", 8);
  b[8] = (unsigned char)(hl & 0xff);
  b[9] = (unsigned char)(hl >> 8);
  memcpy(b + 10, h, hl);
  if (n) memcpy(b + 10 + hl, data, n);
  *len = 10 + hl + n;
  return b;
}

static const float two_f32[2] = {1.25f, -3.0f};

static const struct {
  const char *header;
  smelt_dtype dt;
  int rank;
  int64_t d0, d1;
} accepted[] = {
    /* double quotes, no spaces, no trailing comma, no newline */
    {"{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(2,)}", SMELT_F32, 1, 2, 0},
    /* keys in another order, newlines and tabs */
    {"{ 'shape' : ( 2 , ) ,\n\t'fortran_order': False,\t'descr': '<f4' }\n", SMELT_F32, 1, 2, 0},
    /* Python 2 longs */
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 1L), }\n", SMELT_F32, 2, 2, 1},
    /* native byte order and trailing spaces */
    {"{'descr': '=f4', 'fortran_order': False, 'shape': (1, 2), }         \n", SMELT_F32, 2, 1, 2},
    /* fortran order with a size-1 dim: same bytes */
    {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1), }\n", SMELT_F32, 2, 2, 1},
    /* Fortran order of rank 1 */
    {"{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }\n", SMELT_F32, 1, 2, 0},
};

START_TEST(accepts_variations) {
  if (!host_little()) return;
  size_t len;
  unsigned char *b = make_v1(accepted[_i].header, two_f32, sizeof two_f32, &len);
  sm_npy a;
  read_ok(b, len, &a);
  ck_assert_int_eq(a.dtype, accepted[_i].dt);
  ck_assert_int_eq(a.rank, accepted[_i].rank);
  ck_assert_int_eq(a.dims[0], accepted[_i].d0);
  if (a.rank > 1) ck_assert_int_eq(a.dims[1], accepted[_i].d1);
  ck_assert(memcmp(a.data, two_f32, sizeof two_f32) == 0);
  sm_npy_free(&a);
  free(b);
}
END_TEST

START_TEST(bool_bytes_normalized) {
  size_t len;
  unsigned char *b =
      make_v1("{'descr': '<b1', 'fortran_order': False, 'shape': (4,), }\n", "\x00\x02\xff\x01", 4,
              &len);
  sm_npy a;
  read_ok(b, len, &a);
  ck_assert_int_eq(a.dtype, SMELT_BOOL);
  const uint8_t *v = a.data;
  ck_assert_int_eq(v[0], 0);
  ck_assert_int_eq(v[1], 1);
  ck_assert_int_eq(v[2], 1);
  ck_assert_int_eq(v[3], 1);
  sm_npy_free(&a);
  free(b);
}
END_TEST

/* Big-endian f64 and i32 in Fortran order: swapped and transposed. */
START_TEST(big_endian_fortran) {
  const unsigned char data[] = {0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6};
  size_t len;
  unsigned char *b = make_v1("{'descr': '>i4', 'fortran_order': True, 'shape': (2, 3), }\n", data,
                             sizeof data, &len);
  sm_npy a;
  read_ok(b, len, &a);
  /* column-major 1..6 of a 2x3 is [[1, 3, 5], [2, 4, 6]] */
  static const double want[] = {1, 3, 5, 2, 4, 6};
  for (int i = 0; i < 6; i++) ck_assert_int_eq((int)elem(&a, i), (int)want[i]);
  sm_npy_free(&a);
  free(b);
}
END_TEST

/* ------------------------------------------------------ malformed input */

static const struct {
  const char *bytes;
  size_t len;
  const char *want;
} bad_raw[] = {
    {"", 0, "t.npy: empty file (not a .npy file)"},
    {FIX("hello world"), "t.npy: not a .npy file (bad magic 'hello ', expected '\\x93NUMPY')"},
    {FIX("\x89PNG\r\n\x1a\n"), "bad magic '\\x89PNG\\x0d\\x0a'"},
    {FIX("\x93NUM"), "t.npy: truncated: file has 4 bytes, a .npy preamble has at least 10"},
    {FIX("\x93NUMPY\x01"), "truncated: file has 7 bytes"},
    {FIX("\x93NUMPY\x04\x00\x10\x00"), "unsupported .npy format version 4.0 (1.0, 2.0 and 3.0"},
    {FIX("\x93NUMPY\x01\x01\x10\x00"), "unsupported .npy format version 1.1"},
    {FIX("\x93NUMPY\x00\x00\x10\x00"), "unsupported .npy format version 0.0"},
    {FIX("\x93NUMPY\x01\x00\x10"), "truncated: file has 9 bytes, a version 1.0 preamble has 10"},
    {FIX("\x93NUMPY\x02\x00\x10\x00\x00"), "truncated: file has 11 bytes, a version 2.0 preamble"},
    {FIX("\x93NUMPY\x01\x00\x76\x00{'descr'"),
     "truncated: header length 118 runs past the end of the file (8 bytes after the 10-byte "
     "preamble)"},
    {FIX("\x93NUMPY\x02\x00\xff\xff\xff\xff{'descr'"), "truncated: header length 4294967295 runs past"},
    {FIX("\x93NUMPY\x03\x00\x00\x00\x00\x00"), "expected '{' at the end of the header"},
    /* a NUL inside the header */
    {FIX("\x93NUMPY\x01\x00\x0f\x00{'descr\0': 1}  "), "unterminated string at byte 7"},
};

START_TEST(rejects_raw) {
  read_fails(bad_raw[_i].bytes, bad_raw[_i].len, bad_raw[_i].want, bad_raw[_i].want);
}
END_TEST

#define H(s) "{'descr': '<f4', 'fortran_order': False, 'shape': " s ", }"
static const struct {
  const char *header;
  size_t ndata;
  const char *want;
} bad_header[] = {
    {"[1, 2]", 0, "t.npy: malformed header: expected '{' at byte 0 of the header (near '[1, 2]')"},
    {"", 0, "expected '{' at the end of the header"},
    {"{", 0, "expected a key (a quoted string) or '}' at the end of the header"},
    {"{'descr': '<f4', 'fortran_order': False}", 0, "t.npy: the header has no 'shape' key"},
    {"{'fortran_order': False, 'shape': (2,)}", 0, "the header has no 'descr' key"},
    {"{'descr': '<f4', 'shape': (2,)}", 0, "the header has no 'fortran_order' key"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'foo': 1}", 0,
     "t.npy: unexpected key 'foo' in the header"},
    {"{'descr': '<f4', 'descr': '<f4'}", 0, "t.npy: key 'descr' appears twice in the header"},
    {"{'descr': '<c8', 'fortran_order': False, 'shape': (2,)}", 0, "t.npy: unsupported dtype '<c8'"},
    {"{'descr': '|f4', 'fortran_order': False, 'shape': (2,)}", 0, "unsupported dtype '|f4'"},
    {"{'descr': '<u1', 'fortran_order': False, 'shape': (2,)}", 0, "unsupported dtype '<u1'"},
    {"{'descr': '<f2', 'fortran_order': False, 'shape': (2,)}", 0, "unsupported dtype '<f2'"},
    {"{'descr': 'float32', 'fortran_order': False, 'shape': (2,)}", 0,
     "unsupported dtype 'float32'"},
    {"{'descr': '<U10', 'fortran_order': False, 'shape': (2,)}", 0, "unsupported dtype '<U10'"},
    {"{'descr': '|O', 'fortran_order': False, 'shape': (2,)}", 0, "unsupported dtype '|O'"},
    {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", 0,
     "structured dtypes (a list 'descr') are not supported"},
    {"{'descr': 3, 'fortran_order': False, 'shape': (2,)}", 0, "expected a string for 'descr'"},
    {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", 0,
     "'fortran_order' must be True or False"},
    {"{'descr': '<f4', 'fortran_order': true, 'shape': (2,)}", 0,
     "'fortran_order' must be True or False"},
    {H("(1, 1, 1, 1, 1, 1, 1, 1, 1)"), 4, "t.npy: shape has 9 dims (at most 8)"},
    {H("(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)"), 4,
     "shape has 20 dims (at most 8)"},
    {H("(2, -3)"), 0, "t.npy: shape has a negative dimension (-3)"},
    {H("(99999999999999999999,)"), 0, "shape dimension 99999999999999999999 is too large"},
    {H("(4294967296, 4294967296)"), 0,
     "t.npy: shape (4294967296, 4294967296) is too large (its byte size overflows)"},
    {H("(2305843009213693952,)"), 0, "shape (2305843009213693952,) is too large"},
    /* huge but representable: refused for want of data, not allocated */
    {H("(1048576, 1048576)"), 0, "t.npy: truncated: header says 4398046511104 bytes of data, file has 0"},
    {H("(3)"), 0, "'shape' (3) is not a tuple (a 1-d shape is written (3,))"},
    {H("[3]"), 0, "'shape' must be a tuple such as (3, 4)"},
    {H("(,)"), 0, "expected a dimension (a non-negative integer) in 'shape'"},
    {H("(3,,)"), 0, "expected a dimension (a non-negative integer) in 'shape'"},
    {H("(3 4)"), 0, "expected ',' or ')' in 'shape'"},
    {H("(3.5,)"), 0, "expected ',' or ')' in 'shape'"},
    {H("(3,"), 0, "expected a dimension"},
    {"{'descr: '<f4'}", 0, "unexpected key 'descr: '"},
    {"{'descr': '<f4}", 0, "unterminated string"},
    {"{'descr': '<f4", 0, "unterminated string at the end of the header"},
    {"{'de\\scr': '<f4'}", 0, "escape sequence in a string (not supported)"},
    {"{'descr' '<f4'}", 0, "expected ':' after a key at byte 9 of the header (near ''<f4'}')"},
    {"{'descr': '<f4' 'shape': (2,)}", 0, "expected ',' or '}'"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x", 0,
     "unexpected text after the header dict at byte 58 of the header (near 'x')"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }}", 0,
     "unexpected text after the header dict"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ,}", 0, "expected a key"},
    {"{'\x01\x02': 1}", 0, "unexpected key '\\x01\\x02'"},
    /* data size */
    {H("(3, 4)"), 20, "t.npy: truncated: header says 48 bytes of data, file has 20"},
    {H("(2,)"), 12, "t.npy: 4 unexpected bytes after the data (header says 8 bytes of data, file has 12)"},
    {H("(0, 5)"), 1, "1 unexpected bytes after the data"},
    {H("()"), 3, "truncated: header says 4 bytes of data, file has 3"},
};
#undef H

START_TEST(rejects_header) {
  static const unsigned char zeros[64];
  size_t len;
  unsigned char *b = make_v1(bad_header[_i].header, zeros, bad_header[_i].ndata, &len);
  read_fails(b, len, bad_header[_i].want, bad_header[_i].header);
  free(b);
}
END_TEST

/* Every truncation of every numpy file is an error, never a crash. */
START_TEST(every_truncation_fails) {
  for (size_t n = 0; n < from_numpy[_i].len; n++) {
    char err[512];
    sm_npy a;
    /* A copy of exactly n bytes, so ASan sees any read past the end. */
    char *copy = malloc(n ? n : 1);
    memcpy(copy, from_numpy[_i].bytes, n);
    int rc = sm_npy_read_mem(copy, n, "t.npy", &a, err, sizeof err);
    free(copy);
    /* a size-0 array's image has no data: only the full image is valid */
    ck_assert_msg(rc == -1, "%s cut to %zu bytes was accepted", from_numpy[_i].name, n);
    ck_assert_msg(strncmp(err, "t.npy: ", 7) == 0, "%s", err);
  }
}
END_TEST

/* Flipping bytes of a valid file: any result, but no crash (ASan). */
START_TEST(corrupted_bytes_never_crash) {
  size_t len = from_numpy[_i].len;
  unsigned char *b = malloc(len);
  static const unsigned char values[] = {0, '(', ')', ',', '\'', '9', '-', ' ', 0xff, '}'};
  for (size_t pos = 0; pos < len && pos < 140; pos++)
    for (size_t v = 0; v < sizeof values; v++) {
      memcpy(b, from_numpy[_i].bytes, len);
      b[pos] = values[v];
      sm_npy a;
      char err[512] = "";
      if (sm_npy_read_mem(b, len, "t.npy", &a, err, sizeof err) == 0)
        sm_npy_free(&a);
      else
        ck_assert_msg(strncmp(err, "t.npy: ", 7) == 0, "%s", err);
    }
  free(b);
}
END_TEST

START_TEST(arguments) {
  char err[256];
  sm_npy a;
  ck_assert_int_eq(sm_npy_read_mem(NULL, 10, NULL, &a, err, sizeof err), -1);
  ck_assert_str_eq(err, "<memory>: no data");
  ck_assert_int_eq(sm_npy_read_mem(np_f32_vec, 4, NULL, NULL, err, sizeof err), -1);
  /* errbuf may be NULL or tiny */
  ck_assert_int_eq(sm_npy_read_mem("x", 1, "t.npy", &a, NULL, 0), -1);
  char tiny[5];
  ck_assert_int_eq(sm_npy_read_mem("x", 1, "t.npy", &a, tiny, sizeof tiny), -1);
  ck_assert_str_eq(tiny, "t.np");
  sm_npy_free(NULL);

  void *out = (void *)1;
  size_t len = 7;
  int64_t dims[2] = {2, 3};
  float data[6] = {0};
  ck_assert_int_eq(sm_npy_encode(SMELT_DTYPE_COUNT, 1, dims, data, &out, &len, err, sizeof err), -1);
  ck_assert_ptr_null(out);
  ck_assert_uint_eq(len, 0);
  ck_assert_str_eq(err, "<memory>: invalid dtype 5");
  ck_assert_int_eq(sm_npy_encode(SMELT_F32, 9, dims, data, &out, &len, err, sizeof err), -1);
  ck_assert_str_eq(err, "<memory>: rank 9 out of range (0 to 8)");
  ck_assert_int_eq(sm_npy_encode(SMELT_F32, -1, dims, data, &out, &len, err, sizeof err), -1);
  ck_assert_int_eq(sm_npy_encode(SMELT_F32, 2, NULL, data, &out, &len, err, sizeof err), -1);
  ck_assert_str_eq(err, "<memory>: no dims");
  ck_assert_int_eq(sm_npy_encode(SMELT_F32, 2, dims, NULL, &out, &len, err, sizeof err), -1);
  ck_assert_str_eq(err, "<memory>: no data");
  int64_t neg[2] = {2, -1};
  ck_assert_int_eq(sm_npy_encode(SMELT_F32, 2, neg, data, &out, &len, err, sizeof err), -1);
  ck_assert_str_eq(err, "<memory>: negative dimension -1");
  int64_t huge[2] = {INT64_MAX, 2};
  ck_assert_int_eq(sm_npy_encode(SMELT_F32, 2, huge, data, &out, &len, err, sizeof err), -1);
  ck_assert_str_eq(err, "<memory>: shape is too large");
  ck_assert_int_eq(sm_npy_encode(SMELT_F32, 2, dims, data, NULL, &len, err, sizeof err), -1);
  /* no data is fine for an empty array */
  int64_t empty[2] = {0, 3};
  ck_assert_int_eq(sm_npy_encode(SMELT_F32, 2, empty, NULL, &out, &len, err, sizeof err), 0);
  sm_free(out);
  ck_assert_int_eq(sm_npy_write_file(NULL, SMELT_F32, 2, dims, data, err, sizeof err), -1);
  ck_assert_int_eq(sm_npy_read_file(NULL, &a, err, sizeof err), -1);
}
END_TEST

/* --------------------------------------------------------------- files */

START_TEST(file_errors) {
  char path[512], err[1024];
  sm_npy a;
  make_tmpdir();

  tmp_path(path, sizeof path, "missing.npy");
  ck_assert_int_eq(sm_npy_read_file(path, &a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "missing.npy: cannot open: No such file or directory"), "%s", err);

  ck_assert_int_eq(sm_npy_read_file(tmpdir, &a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, ": is a directory"), "%s", err);

  /* a header claiming 4 TB, and 20 bytes of data: refused before any
   * allocation of that size */
  size_t len;
  static const unsigned char zeros[20];
  unsigned char *b = make_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }\n",
                             zeros, sizeof zeros, &len);
  tmp_path(path, sizeof path, "hostile.npy");
  write_bytes(path, b, len);
  free(b);
  ck_assert_int_eq(sm_npy_read_file(path, &a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "hostile.npy: truncated: header says 4398046511104 bytes of data, file has 20"),
                "%s", err);
  ck_assert_ptr_null(a.data);

  tmp_path(path, sizeof path, "trunc.npy");
  write_bytes(path, np_f64_2x3, sizeof np_f64_2x3 - 1 - 5);
  ck_assert_int_eq(sm_npy_read_file(path, &a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "trunc.npy: truncated: header says 48 bytes of data, file has 43"), "%s",
                err);
  write_bytes(path, np_f64_2x3, 60);
  ck_assert_int_eq(sm_npy_read_file(path, &a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "trunc.npy: truncated: header length 118 runs past the end of the file (50 bytes after the 10-byte preamble)"),
                "%s", err);
  write_bytes(path, "\x93NUMPY\x01\x00", 8);
  ck_assert_int_eq(sm_npy_read_file(path, &a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "trunc.npy: truncated: file has 8 bytes, a version 1.0 preamble has 10"),
                "%s", err);
  write_bytes(path, "GIF89a", 6);
  ck_assert_int_eq(sm_npy_read_file(path, &a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "trunc.npy: not a .npy file (bad magic 'GIF89a'"), "%s", err);
  write_bytes(path, "", 0);
  ck_assert_int_eq(sm_npy_read_file(path, &a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "trunc.npy: empty file"), "%s", err);
  write_bytes(path, "\x93NUMPY\x05\x00\x00\x00", 10);
  ck_assert_int_eq(sm_npy_read_file(path, &a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "unsupported .npy format version 5.0"), "%s", err);
  /* trailing bytes */
  unsigned char *t = malloc(sizeof np_f32_vec + 2);
  memcpy(t, np_f32_vec, sizeof np_f32_vec - 1);
  memcpy(t + sizeof np_f32_vec - 1, "abc", 3);
  write_bytes(path, t, sizeof np_f32_vec + 2);
  free(t);
  ck_assert_int_eq(sm_npy_read_file(path, &a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "trunc.npy: 3 unexpected bytes after the data (header says 12 bytes of data, file has 15)"),
                "%s", err);

  /* every numpy fixture read back from a file */
  for (int i = 0; i < N_FROM_NUMPY; i++) {
    tmp_path(path, sizeof path, "x.npy");
    write_bytes(path, from_numpy[i].bytes, from_numpy[i].len);
    ck_assert_msg(sm_npy_read_file(path, &a, err, sizeof err) == 0, "%s", err);
    check_fixture(&a, i);
    sm_npy_free(&a);
  }

  /* writing where it cannot */
  tmp_path(path, sizeof path, "no/such/dir/y.npy");
  int64_t dims[1] = {2};
  ck_assert_int_eq(sm_npy_write_file(path, SMELT_F32, 1, dims, two_f32, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "y.npy: cannot create: No such file or directory"), "%s", err);
  remove_tmpdir();
}
END_TEST

/* Reads bytes through a pipe (not a regular file: the size is unknown and
 * the buffer grows as data arrives). A child process writes them. */
static int read_via_pipe(const void *bytes, size_t n, sm_npy *a, char *err, size_t errlen) {
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
  int rc = sm_npy_read_file(path, a, err, errlen);
  close(fd[0]);
  int status;
  waitpid(pid, &status, 0);
  return rc;
}

START_TEST(pipes) {
  char err[1024];
  sm_npy a;
  struct stat st;
  if (stat("/dev/fd/0", &st) != 0) return; /* no /dev/fd here */
  ck_assert_msg(read_via_pipe(np_i32_fortran3, sizeof np_i32_fortran3 - 1, &a, err, sizeof err) == 0,
                "%s", err);
  check_fixture(&a, 9);
  sm_npy_free(&a);

  /* 3 MiB of data: the buffer grows several times */
  int64_t n = 3 << 18;
  int32_t *v = malloc((size_t)n * 4);
  for (int64_t i = 0; i < n; i++) v[i] = (int32_t)(i * 7);
  void *img;
  size_t len;
  ck_assert_int_eq(sm_npy_encode(SMELT_I32, 1, &n, v, &img, &len, err, sizeof err), 0);
  ck_assert_msg(read_via_pipe(img, len, &a, err, sizeof err) == 0, "%s", err);
  check_same(&a, SMELT_I32, 1, &n, v);
  sm_npy_free(&a);
  /* cut short */
  ck_assert_int_eq(read_via_pipe(img, len - 100, &a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "truncated: header says 3145728 bytes of data, file has 3145628"), "%s",
                err);
  sm_free(img);
  free(v);

  /* a hostile header through a pipe: memory tracks the bytes that arrive */
  size_t hl;
  static const unsigned char zeros[20];
  unsigned char *b = make_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }\n",
                             zeros, sizeof zeros, &hl);
  ck_assert_int_eq(read_via_pipe(b, hl, &a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "truncated: header says 8796093022208 bytes of data, file has 20"), "%s",
                err);
  free(b);

  /* trailing data */
  unsigned char t[sizeof np_f32_vec + 1];
  memcpy(t, np_f32_vec, sizeof np_f32_vec - 1);
  t[sizeof np_f32_vec - 1] = 'x';
  ck_assert_int_eq(read_via_pipe(t, sizeof np_f32_vec, &a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "unexpected bytes after the data (header says 12 bytes of data, file has more)"),
                "%s", err);
  /* a header length past the end */
  ck_assert_int_eq(read_via_pipe(np_f32_vec, 50, &a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "truncated: header length 118 runs past the end of the file"), "%s", err);
}
END_TEST

/* --------------------------------------------------- allocation failure */

/* Makes the k-th allocation fail for k = 0, 1, ... until the call
 * succeeds; each failure must be a clean "out of memory" error. */
START_TEST(allocation_failures) {
  char err[512];
  sm_npy a;
  int k;
  for (k = 0; k < 100; k++) {
    sm_alloc_fail_after(k);
    int rc = sm_npy_read_mem(FIX(np_i32_fortran3), "t.npy", &a, err, sizeof err);
    sm_alloc_fail_after(-1);
    if (rc == 0) break;
    ck_assert_msg(strstr(err, "t.npy: out of memory"), "%s", err);
    ck_assert_ptr_null(a.data);
  }
  ck_assert_int_ge(k, 2); /* the data and the transposed copy */
  check_fixture(&a, 9);
  sm_npy_free(&a);

  void *img;
  size_t len;
  int64_t dims[2] = {2, 3};
  double data[6] = {1, 2, 3, 4, 5, 6};
  for (k = 0; k < 100; k++) {
    sm_alloc_fail_after(k);
    int rc = sm_npy_encode(SMELT_F64, 2, dims, data, &img, &len, err, sizeof err);
    sm_alloc_fail_after(-1);
    if (rc == 0) break;
    ck_assert_msg(strstr(err, "out of memory"), "%s", err);
    ck_assert_ptr_null(img);
  }
  ck_assert_int_ge(k, 1);
  sm_free(img);

  char path[512];
  make_tmpdir();
  tmp_path(path, sizeof path, "x.npy");
  write_bytes(path, np_i32_fortran3, sizeof np_i32_fortran3 - 1);
  for (k = 0; k < 100; k++) {
    sm_alloc_fail_after(k);
    int rc = sm_npy_read_file(path, &a, err, sizeof err);
    sm_alloc_fail_after(-1);
    if (rc == 0) break;
    ck_assert_msg(strstr(err, "x.npy: out of memory"), "%s", err);
  }
  ck_assert_int_ge(k, 3); /* header, data, transposed copy */
  check_fixture(&a, 9);
  sm_npy_free(&a);
  remove_tmpdir();
}
END_TEST

/* ---------------------------------------------------------------- main */

static Suite *npy_suite(void) {
  Suite *s = suite_create("npy");
  TCase *tc = tcase_create("numpy");
  tcase_add_loop_test(tc, reads_numpy_files, 0, N_FROM_NUMPY);
  tcase_add_loop_test(tc, writes_like_numpy, 0, 8);
  tcase_add_test(tc, descr_names);
  suite_add_tcase(s, tc);

  tc = tcase_create("round_trip");
  tcase_add_loop_test(tc, round_trip_memory, 0, SMELT_DTYPE_COUNT * (SMELT_MAX_RANK + 1) * 2);
  tcase_add_loop_test(tc, round_trip_file, 0, SMELT_DTYPE_COUNT * (SMELT_MAX_RANK + 1) * 2);
  suite_add_tcase(s, tc);

  tc = tcase_create("accepted");
  tcase_add_loop_test(tc, accepts_variations, 0, (int)(sizeof accepted / sizeof accepted[0]));
  tcase_add_test(tc, bool_bytes_normalized);
  tcase_add_test(tc, big_endian_fortran);
  suite_add_tcase(s, tc);

  tc = tcase_create("malformed");
  tcase_add_loop_test(tc, rejects_raw, 0, (int)(sizeof bad_raw / sizeof bad_raw[0]));
  tcase_add_loop_test(tc, rejects_header, 0, (int)(sizeof bad_header / sizeof bad_header[0]));
  tcase_add_loop_test(tc, every_truncation_fails, 0, N_FROM_NUMPY);
  tcase_add_loop_test(tc, corrupted_bytes_never_crash, 0, N_FROM_NUMPY);
  tcase_add_test(tc, arguments);
  suite_add_tcase(s, tc);

  tc = tcase_create("files");
  tcase_add_test(tc, file_errors);
  tcase_add_test(tc, pipes);
  tcase_add_test(tc, allocation_failures);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(npy_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
