/* The reference interpreter: binding and reading errors (each with its
 * message), views (expand is stride 0, permute, slice, flip, reshape of a
 * non-contiguous view), reductions, arg-reductions, matmul, gather, concat,
 * pad, sources and params, and clean failure (errors, out of memory).
 *
 * Graphs are built with the public API and the primitive builders of
 * internal.h, so each test pins down one primitive's interpretation. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocked_sum.h"
#include "internal.h"
#include "testutil.h"

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})

/* test_huge_result asks malloc for 2^58 bytes and expects NULL; under
 * AddressSanitizer that needs allocator_may_return_null (the default
 * options hook is only read when ASan is linked in). */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

/* ------------------------------------------------------------- helpers */

static smelt_node cf32(smelt_graph *g, int rank, const int64_t *dims, const float *v) {
  return smelt_const_array(g, SMELT_F32, rank, dims, v);
}
static smelt_node cf64(smelt_graph *g, int rank, const int64_t *dims, const double *v) {
  return smelt_const_array(g, SMELT_F64, rank, dims, v);
}
static smelt_node ci64(smelt_graph *g, int rank, const int64_t *dims, const int64_t *v) {
  return smelt_const_array(g, SMELT_I64, rank, dims, v);
}

static void check_graph_ok(const smelt_graph *g) {
  const char *e = smelt_graph_error(g);
  ck_assert_msg(e == NULL, "graph error: %s", e ? e : "");
}

/* Runs g with output `n` (registered as "out") and returns a malloc'ed
 * double copy of the result; *count receives numel. Inputs: nb names with
 * their data (dtype and shape taken from the graph). */
static double *eval(smelt_graph *g, smelt_node n, int64_t *count, int nb, const char **names,
                    const void **datas) {
  smelt_output(g, "out", n);
  check_graph_ok(g);
  smelt_interp *it = smelt_interp_new(g);
  ck_assert_ptr_nonnull(it);
  for (int i = 0; i < nb; i++) {
    smelt_node in = smelt_find(g, names[i]);
    int rank;
    const int64_t *dims = smelt_node_shape(g, in, &rank);
    smelt_dtype dt = smelt_node_dtype(g, in);
    size_t bytes = (size_t)smelt_node_numel(g, in) * smelt_dtype_size(dt);
    int rc = smelt_interp_bind(it, names[i], dt, rank, dims, datas[i], bytes);
    ck_assert_msg(rc == 0, "bind: %s", smelt_interp_error(it));
  }
  int rc = smelt_interp_run(it);
  ck_assert_msg(rc == 0, "run: %s", smelt_interp_error(it));
  smelt_dtype dt = smelt_node_dtype(g, n);
  int64_t m = smelt_node_numel(g, n);
  size_t es = smelt_dtype_size(dt);
  unsigned char *raw = malloc((size_t)m * es + 1);
  double *out = malloc(sizeof(double) * (size_t)m + 1);
  ck_assert_int_eq(smelt_interp_read(it, "out", dt, raw, (size_t)m * es), 0);
  for (int64_t i = 0; i < m; i++) {
    unsigned char *p = raw + (size_t)i * es;
    switch (dt) {
    case SMELT_F32: { float v; memcpy(&v, p, 4); out[i] = v; break; }
    case SMELT_F64: { double v; memcpy(&v, p, 8); out[i] = v; break; }
    case SMELT_I32: { int32_t v; memcpy(&v, p, 4); out[i] = v; break; }
    case SMELT_I64: { int64_t v; memcpy(&v, p, 8); out[i] = (double)v; break; }
    default: ck_assert_msg(*p <= 1, "bool byte %d", *p); out[i] = *p; break;
    }
  }
  free(raw);
  smelt_interp_free(it);
  if (count) *count = m;
  return out;
}

/* Exact comparison (NaN equals NaN) of the result of n with want. */
#define EXPECT(g, n, ...)                                                          \
  expect_((g), (n), (const double[]){__VA_ARGS__},                                 \
          (int64_t)(sizeof((const double[]){__VA_ARGS__}) / sizeof(double)), __LINE__)
static void expect_(smelt_graph *g, smelt_node n, const double *want, int64_t count, int line) {
  int64_t m;
  double *got = eval(g, n, &m, 0, NULL, NULL);
  ck_assert_msg(m == count, "line %d: %lld elements, want %lld", line, (long long)m,
                (long long)count);
  for (int64_t i = 0; i < m; i++)
    ck_assert_msg(got[i] == want[i] || (isnan(got[i]) && isnan(want[i])),
                  "line %d: element %lld is %.17g, want %.17g", line, (long long)i, got[i],
                  want[i]);
  free(got);
}

static void assert_contains(const char *s, const char *sub) {
  ck_assert_msg(s && strstr(s, sub), "message \"%s\" does not contain \"%s\"", s ? s : "(null)",
                sub);
}

static smelt_node arange_f32(smelt_graph *g, int rank, const int64_t *dims) {
  /* 0, 1, 2, ... in row-major order */
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  float *v = malloc(sizeof(float) * (size_t)n + 1);
  for (int64_t i = 0; i < n; i++) v[i] = (float)i;
  smelt_node r = cf32(g, rank, dims, v);
  free(v);
  return r;
}

/* ----------------------------------------------------- binding errors */

/* A graph y = x + 1 with x: f32[3,4] and an unused param w. */
static smelt_graph *bind_graph(void) {
  smelt_graph *g = smelt_graph_new();
  smelt_node x = smelt_input(g, "x", SMELT_F32, 2, DIMS(3, 4));
  smelt_input(g, "z", SMELT_I64, 1, DIMS(2));
  smelt_param(g, "w", SMELT_F32, 1, DIMS(4), smelt_init_zeros());
  smelt_output(g, "y", smelt_add(g, x, smelt_scalar(g, 1)));
  check_graph_ok(g);
  return g;
}

START_TEST(test_bind_errors) {
  smelt_graph *g = bind_graph();
  smelt_interp *it = smelt_interp_new(g);
  float data[12] = {0};
  const int64_t *d34 = DIMS(3, 4);

  ck_assert_int_eq(smelt_interp_bind(it, "q", SMELT_F32, 2, d34, data, sizeof data), -1);
  ck_assert_str_eq(smelt_interp_error(it), "unknown input \"q\" (inputs: \"x\", \"z\")");

  ck_assert_int_eq(smelt_interp_bind(it, "w", SMELT_F32, 1, DIMS(4), data, 16), -1);
  ck_assert_str_eq(smelt_interp_error(it),
                   "\"w\" is not an input: it names a node of op param (inputs: \"x\", \"z\")");

  ck_assert_int_eq(smelt_interp_bind(it, NULL, SMELT_F32, 2, d34, data, sizeof data), -1);
  assert_contains(smelt_interp_error(it), "name is NULL");

  ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_F64, 2, d34, data, 96), -1);
  ck_assert_str_eq(smelt_interp_error(it), "input \"x\": dtype f64 does not match the declared f32[3,4]");

  ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_F32, 2, DIMS(3, 5), data, 60), -1);
  ck_assert_str_eq(smelt_interp_error(it),
                   "input \"x\": shape [3,5] does not match the declared f32[3,4]");

  ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_F32, 1, DIMS(12), data, sizeof data), -1);
  ck_assert_str_eq(smelt_interp_error(it),
                   "input \"x\": shape [12] does not match the declared f32[3,4]");

  ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_F32, 9, d34, data, sizeof data), -1);
  assert_contains(smelt_interp_error(it), "input \"x\": invalid rank 9");

  ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_F32, 2, NULL, data, sizeof data), -1);
  assert_contains(smelt_interp_error(it), "input \"x\": dims is NULL");

  ck_assert_int_eq(smelt_interp_bind(it, "x", (smelt_dtype)42, 2, d34, data, sizeof data), -1);
  assert_contains(smelt_interp_error(it), "input \"x\": invalid dtype 42");

  ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_F32, 2, d34, data, 40), -1);
  ck_assert_str_eq(smelt_interp_error(it), "input \"x\": 40 bytes given, f32[3,4] needs 48");

  ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_F32, 2, d34, NULL, 48), -1);
  ck_assert_str_eq(smelt_interp_error(it), "input \"x\": data is NULL");

  /* Missing input at run time (after the failed binds, x is unbound). */
  ck_assert_int_eq(smelt_interp_run(it), -1);
  ck_assert_str_eq(smelt_interp_error(it), "input \"x\" is not bound");

  /* A good bind clears the error; z is unused and need not be bound. */
  ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_F32, 2, d34, data, sizeof data), 0);
  ck_assert_ptr_null(smelt_interp_error(it));
  ck_assert_int_eq(smelt_interp_run(it), 0);
  ck_assert_ptr_null(smelt_interp_error(it));

  /* A failed bind unbinds: the next run does not use stale data. */
  ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_F32, 2, d34, data, 4), -1);
  ck_assert_int_eq(smelt_interp_run(it), -1);
  ck_assert_str_eq(smelt_interp_error(it), "input \"x\" is not bound");

  smelt_interp_free(it);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_bind_no_inputs) {
  smelt_graph *g = smelt_graph_new();
  smelt_output(g, "c", smelt_const(g, SMELT_F32, 1));
  smelt_interp *it = smelt_interp_new(g);
  ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_F32, 0, NULL, "", 0), -1);
  ck_assert_str_eq(smelt_interp_error(it), "unknown input \"x\" (inputs: the graph has no inputs)");
  smelt_interp_free(it);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_read_errors) {
  smelt_graph *g = bind_graph();
  smelt_interp *it = smelt_interp_new(g);
  float x[12], y[12];
  for (int i = 0; i < 12; i++) x[i] = (float)i;

  ck_assert_int_eq(smelt_interp_read(it, "y", SMELT_F32, y, sizeof y), -1);
  assert_contains(smelt_interp_error(it), "output \"y\": no results yet");

  ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_F32, 2, DIMS(3, 4), x, sizeof x), 0);
  ck_assert_int_eq(smelt_interp_run(it), 0);

  ck_assert_int_eq(smelt_interp_read(it, "nope", SMELT_F32, y, sizeof y), -1);
  ck_assert_str_eq(smelt_interp_error(it), "unknown output \"nope\" (outputs: \"y\")");
  ck_assert_int_eq(smelt_interp_read(it, NULL, SMELT_F32, y, sizeof y), -1);
  assert_contains(smelt_interp_error(it), "name is NULL");
  ck_assert_int_eq(smelt_interp_read(it, "y", SMELT_I32, y, sizeof y), -1);
  ck_assert_str_eq(smelt_interp_error(it), "output \"y\": dtype i32 does not match the output's f32[3,4]");
  ck_assert_int_eq(smelt_interp_read(it, "y", SMELT_F32, y, 44), -1);
  ck_assert_str_eq(smelt_interp_error(it), "output \"y\": 44 bytes given, f32[3,4] needs 48");
  ck_assert_int_eq(smelt_interp_read(it, "y", SMELT_F32, NULL, 48), -1);
  ck_assert_str_eq(smelt_interp_error(it), "output \"y\": data is NULL");

  ck_assert_int_eq(smelt_interp_read(it, "y", SMELT_F32, y, sizeof y), 0);
  ck_assert_ptr_null(smelt_interp_error(it));
  for (int i = 0; i < 12; i++) ck_assert_float_eq(y[i], (float)i + 1);

  /* The input is read at run time, not at bind time. */
  x[5] = 100;
  ck_assert_int_eq(smelt_interp_run(it), 0);
  ck_assert_int_eq(smelt_interp_read(it, "y", SMELT_F32, y, sizeof y), 0);
  ck_assert_float_eq(y[5], 101);

  /* A failed run drops the results of the previous one. */
  ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_F32, 2, DIMS(3, 4), x, 1), -1);
  ck_assert_int_eq(smelt_interp_run(it), -1);
  ck_assert_int_eq(smelt_interp_read(it, "y", SMELT_F32, y, sizeof y), -1);
  assert_contains(smelt_interp_error(it), "no results yet");

  smelt_interp_free(it);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_graph_error) {
  smelt_graph *g = smelt_graph_new();
  smelt_node a = smelt_input(g, "a", SMELT_F32, 1, DIMS(3));
  smelt_node b = smelt_input(g, "b", SMELT_F32, 1, DIMS(4));
  smelt_add(g, a, b); /* incompatible: the graph fails */
  const char *ge = smelt_graph_error(g);
  ck_assert_ptr_nonnull(ge);
  smelt_interp *it = smelt_interp_new(g);
  ck_assert_ptr_nonnull(it);
  float d[3] = {0};
  ck_assert_int_eq(smelt_interp_bind(it, "a", SMELT_F32, 1, DIMS(3), d, sizeof d), -1);
  assert_contains(smelt_interp_error(it), "the graph has an error: ");
  assert_contains(smelt_interp_error(it), ge);
  ck_assert_int_eq(smelt_interp_run(it), -1);
  assert_contains(smelt_interp_error(it), ge);
  ck_assert_int_eq(smelt_interp_read(it, "y", SMELT_F32, d, sizeof d), -1);
  assert_contains(smelt_interp_error(it), ge);
  smelt_interp_free(it);
  smelt_graph_free(g);

  /* NULL handles never crash. */
  ck_assert_int_eq(smelt_interp_run(NULL), -1);
  ck_assert_int_eq(smelt_interp_bind(NULL, "x", SMELT_F32, 0, NULL, d, 4), -1);
  ck_assert_int_eq(smelt_interp_read(NULL, "x", SMELT_F32, d, 4), -1);
  ck_assert_ptr_nonnull(smelt_interp_error(NULL));
  smelt_interp_free(NULL);
  it = smelt_interp_new(NULL);
  ck_assert_int_eq(smelt_interp_run(it), -1);
  ck_assert_str_eq(smelt_interp_error(it), "the graph is NULL");
  smelt_interp_free(it);
}
END_TEST

START_TEST(test_outputs_misc) {
  /* An input as an output, the same node twice, a rank-0 and an empty one. */
  smelt_graph *g = smelt_graph_new();
  smelt_node x = smelt_input(g, "x", SMELT_I32, 1, DIMS(3));
  smelt_node e = smelt_input(g, "e", SMELT_F32, 2, DIMS(0, 3));
  smelt_output(g, "x1", x);
  smelt_output(g, "x2", x);
  smelt_output(g, "s", smelt_const(g, SMELT_F64, 2.5));
  smelt_output(g, "e2", smelt_mul(g, e, smelt_scalar(g, 2)));
  check_graph_ok(g);
  smelt_interp *it = smelt_interp_new(g);
  int32_t xv[3] = {7, -8, 9}, r1[3], r2[3];
  ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_I32, 1, DIMS(3), xv, sizeof xv), 0);
  ck_assert_int_eq(smelt_interp_bind(it, "e", SMELT_F32, 2, DIMS(0, 3), NULL, 0), 0);
  ck_assert_msg(smelt_interp_run(it) == 0, "%s", smelt_interp_error(it));
  ck_assert_int_eq(smelt_interp_read(it, "x1", SMELT_I32, r1, sizeof r1), 0);
  ck_assert_int_eq(smelt_interp_read(it, "x2", SMELT_I32, r2, sizeof r2), 0);
  ck_assert_mem_eq(r1, xv, sizeof xv);
  ck_assert_mem_eq(r2, xv, sizeof xv);
  double s = 0;
  ck_assert_int_eq(smelt_interp_read(it, "s", SMELT_F64, &s, 8), 0);
  ck_assert_double_eq(s, 2.5);
  ck_assert_int_eq(smelt_interp_read(it, "e2", SMELT_F32, NULL, 0), 0);
  smelt_interp_free(it);
  smelt_graph_free(g);
}
END_TEST

/* ---------------------------------------------------------------- views */

START_TEST(test_expand_stride0) {
  /* [[1],[2]] + [10,20,30]: both operands are expands of small buffers. */
  smelt_graph *g = smelt_graph_new();
  smelt_node a = cf32(g, 2, DIMS(2, 1), (const float[]){1, 2});
  smelt_node b = cf32(g, 1, DIMS(3), (const float[]){10, 20, 30});
  EXPECT(g, smelt_add(g, a, b), 11, 21, 31, 12, 22, 32);
  smelt_graph_free(g);

  /* An expand never copies: 2^56 elements (2^58 bytes) expanded from one
   * value, then a [2,3] corner sliced off and read back. */
  g = smelt_graph_new();
  smelt_node one = cf32(g, 2, DIMS(1, 1), (const float[]){4.5f});
  smelt_node big = smelt_expand(g, one, 2, DIMS(1ll << 28, 1ll << 28));
  smelt_node s = smelt_slice(g, big, DIMS(5, 7), DIMS(7, 10), NULL);
  EXPECT(g, s, 4.5, 4.5, 4.5, 4.5, 4.5, 4.5);
  smelt_graph_free(g);

  /* Expand of a permuted view keeps its strides. */
  g = smelt_graph_new();
  smelt_node m = arange_f32(g, 2, DIMS(1, 3));
  smelt_node t = smelt_transpose(g, m, 0, 1);                  /* [3,1] */
  smelt_node e = smelt_expand(g, t, 2, DIMS(3, 2));            /* [3,2] */
  EXPECT(g, e, 0, 0, 1, 1, 2, 2);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_permute_slice_flip) {
  smelt_graph *g = smelt_graph_new();
  smelt_node x = arange_f32(g, 3, DIMS(2, 3, 4));
  /* y[i][j][k] = x[k][i][j]... perm {2,0,1}: y dim i = x dim perm[i]. */
  smelt_node y = smelt_permute(g, x, (const int[]){2, 0, 1}); /* [4,2,3] */
  smelt_node y0 = smelt_slice(g, y, DIMS(1, 0, 0), DIMS(3, 2, 3), NULL);
  /* y[1..2][i][j] = x[i][j][1..2] */
  EXPECT(g, y0, 1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22);
  smelt_graph_free(g);

  g = smelt_graph_new();
  x = arange_f32(g, 1, DIMS(10));
  EXPECT(g, smelt_slice_axis(g, x, 0, 1, 9, 3), 1, 4, 7);
  smelt_graph_free(g);

  g = smelt_graph_new();
  x = arange_f32(g, 1, DIMS(10));
  EXPECT(g, smelt_slice_axis(g, x, 0, -3, SMELT_END, 1), 7, 8, 9);
  smelt_graph_free(g);

  g = smelt_graph_new();
  x = arange_f32(g, 2, DIMS(4, 5));
  /* rows 0,2 ; cols 1,3 */
  EXPECT(g, smelt_slice(g, x, DIMS(0, 1), DIMS(4, 5), DIMS(2, 2)), 1, 3, 11, 13);
  smelt_graph_free(g);

  g = smelt_graph_new();
  x = arange_f32(g, 2, DIMS(2, 3));
  EXPECT(g, smelt_flip(g, x, 1, (const int[]){1}), 2, 1, 0, 5, 4, 3);
  smelt_graph_free(g);

  g = smelt_graph_new();
  x = arange_f32(g, 2, DIMS(2, 3));
  EXPECT(g, smelt_flip(g, x, 2, (const int[]){0, -1}), 5, 4, 3, 2, 1, 0);
  smelt_graph_free(g);

  /* Flip of a slice with a step: negative stride from an offset. */
  g = smelt_graph_new();
  x = arange_f32(g, 1, DIMS(10));
  smelt_node s = smelt_slice_axis(g, x, 0, 1, 10, 4); /* 1,5,9 */
  EXPECT(g, smelt_flip(g, s, 1, (const int[]){0}), 9, 5, 1);
  smelt_graph_free(g);

  /* An empty slice. */
  g = smelt_graph_new();
  x = arange_f32(g, 1, DIMS(4));
  int64_t m;
  smelt_node es = smelt_slice_axis(g, x, 0, 3, 1, 1);
  double *r = eval(g, es, &m, 0, NULL, NULL);
  ck_assert_int_eq(m, 0);
  free(r);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_reshape_views) {
  /* Reshape of a transposed tensor must materialize: [[0,1,2],[3,4,5]]^T
   * flattened is 0,3,1,4,2,5. */
  smelt_graph *g = smelt_graph_new();
  smelt_node x = arange_f32(g, 2, DIMS(2, 3));
  smelt_node t = smelt_transpose(g, x, 0, 1);
  EXPECT(g, smelt_reshape(g, t, 1, DIMS(6)), 0, 3, 1, 4, 2, 5);
  smelt_graph_free(g);

  /* Reshape of a flipped tensor, then elementwise on the result. */
  g = smelt_graph_new();
  x = arange_f32(g, 2, DIMS(2, 3));
  smelt_node f = smelt_flip(g, x, 1, (const int[]){1});
  smelt_node r = smelt_reshape(g, f, 2, DIMS(3, 2));
  EXPECT(g, smelt_add(g, r, smelt_scalar(g, 100)), 102, 101, 100, 105, 104, 103);
  smelt_graph_free(g);

  /* Reshape of a contiguous row slice shares its offset. */
  g = smelt_graph_new();
  x = arange_f32(g, 2, DIMS(3, 4));
  smelt_node row = smelt_slice_axis(g, x, 0, 1, 3, 1); /* rows 1, 2 */
  EXPECT(g, smelt_reshape(g, row, 2, DIMS(4, 2)), 4, 5, 6, 7, 8, 9, 10, 11);
  smelt_graph_free(g);

  /* Reshape of an expanded tensor (materializes the broadcast). */
  g = smelt_graph_new();
  smelt_node v = cf32(g, 2, DIMS(1, 2), (const float[]){1, 2});
  smelt_node e = smelt_expand(g, v, 2, DIMS(3, 2));
  EXPECT(g, smelt_reshape(g, e, 1, DIMS(6)), 1, 2, 1, 2, 1, 2);
  smelt_graph_free(g);

  /* Views of an input read through the caller's buffer. */
  g = smelt_graph_new();
  smelt_node in = smelt_input(g, "in", SMELT_I64, 2, DIMS(2, 2));
  smelt_node tr = smelt_reshape(g, smelt_transpose(g, in, 0, 1), 1, DIMS(4));
  int64_t data[4] = {1, 2, 3, 4};
  int64_t cnt;
  double *res = eval(g, tr, &cnt, 1, (const char *[]){"in"}, (const void *[]){data});
  ck_assert_int_eq(cnt, 4);
  ck_assert(res[0] == 1 && res[1] == 3 && res[2] == 2 && res[3] == 4);
  free(res);
  smelt_graph_free(g);
}
END_TEST

/* ----------------------------------------------------------- elementwise */

START_TEST(test_elementwise_dtypes) {
  smelt_graph *g = smelt_graph_new();
  smelt_node x = cf64(g, 1, DIMS(8), (const double[]){-2.7, 2.7, NAN, INFINITY, -INFINITY, 1e300, -0.5, 3e9});
  EXPECT(g, smelt_cast(g, x, SMELT_I32), -2, 2, 0, INT32_MAX, INT32_MIN, INT32_MAX, 0, INT32_MAX);
  smelt_graph_free(g);

  g = smelt_graph_new();
  x = cf64(g, 1, DIMS(4), (const double[]){NAN, 1e300, -1e300, -7.9});
  EXPECT(g, smelt_cast(g, x, SMELT_I64), 0, (double)INT64_MAX, (double)INT64_MIN, -7);
  smelt_graph_free(g);

  g = smelt_graph_new();
  x = cf64(g, 1, DIMS(4), (const double[]){0, -0.0, NAN, 0.1});
  EXPECT(g, smelt_cast(g, x, SMELT_BOOL), 0, 0, 1, 1);
  smelt_graph_free(g);

  /* i64 -> i32 wraps; i64 -> f32 rounds once. */
  g = smelt_graph_new();
  smelt_node i = ci64(g, 1, DIMS(3), (const int64_t[]){(1ll << 32) + 5, -1, 16777217});
  EXPECT(g, smelt_cast(g, i, SMELT_I32), 5, -1, 16777217);
  smelt_graph_free(g);
  g = smelt_graph_new();
  i = ci64(g, 1, DIMS(1), (const int64_t[]){(1ll << 53) + (1ll << 29) + 1});
  /* Correct rounding gives 2^53 + 2^30; double rounding via f64 would tie
   * to 2^53. */
  EXPECT(g, smelt_cast(g, i, SMELT_F32), 9007199254740992.0 + 1073741824.0);
  smelt_graph_free(g);

  /* Integer arithmetic wraps without UB. */
  g = smelt_graph_new();
  i = ci64(g, 1, DIMS(2), (const int64_t[]){INT64_MAX, INT64_MIN});
  smelt_node s = smelt_add(g, i, smelt_scalar_int(g, 1));
  smelt_node n = smelt_neg(g, s);
  int64_t m;
  smelt_output(g, "s", s);
  double *r = eval(g, n, &m, 0, NULL, NULL);
  /* neg(INT64_MIN) = INT64_MIN; neg(INT64_MIN + 1) = INT64_MAX */
  ck_assert(r[0] == (double)INT64_MIN && r[1] == (double)INT64_MAX);
  free(r);
  smelt_graph_free(g);

  /* f32 arithmetic rounds once from double. */
  g = smelt_graph_new();
  smelt_node a = cf32(g, 1, DIMS(2), (const float[]){1.0f, 16777216.0f});
  smelt_node b = cf32(g, 1, DIMS(2), (const float[]){3.0f, 1.0f});
  EXPECT(g, smelt_div(g, a, b), (double)(1.0f / 3.0f), 16777216.0);
  smelt_graph_free(g);

  /* Comparisons and logical ops give bool; where picks. */
  g = smelt_graph_new();
  a = cf32(g, 1, DIMS(4), (const float[]){1, 2, NAN, 4});
  b = cf32(g, 1, DIMS(4), (const float[]){2, 2, 1, 3});
  smelt_node lt = smelt_lt(g, a, b);
  smelt_node ne = smelt_ne(g, a, b);
  EXPECT(g, smelt_where(g, smelt_logical_or(g, lt, smelt_logical_not(g, ne)), a, b), 1, 2, 1, 3);
  smelt_graph_free(g);

  g = smelt_graph_new();
  a = cf32(g, 1, DIMS(3), (const float[]){1, 2, NAN});
  EXPECT(g, smelt_ne(g, a, a), 0, 0, 1);
  smelt_graph_free(g);

  /* stop_gradient is the identity; unary int ops stay int. */
  g = smelt_graph_new();
  i = ci64(g, 1, DIMS(3), (const int64_t[]){-3, 0, 5});
  EXPECT(g, smelt_stop_gradient(g, smelt_abs(g, i)), 3, 0, 5);
  smelt_graph_free(g);
}
END_TEST

/* ----------------------------------------------------------- reductions */

START_TEST(test_reduce) {
  smelt_graph *g = smelt_graph_new();
  smelt_node x = arange_f32(g, 2, DIMS(2, 3));
  EXPECT(g, sm_reduce(g, OP_REDUCE_SUM, x, 1, (const int[]){0}), 3, 5, 7);
  smelt_graph_free(g);

  g = smelt_graph_new();
  x = arange_f32(g, 2, DIMS(2, 3));
  smelt_node r = sm_reduce(g, OP_REDUCE_SUM, x, 1, (const int[]){-1});
  TU_ASSERT_SHAPE(g, r, 2, 2, 1);
  EXPECT(g, r, 3, 12);
  smelt_graph_free(g);

  g = smelt_graph_new();
  x = arange_f32(g, 3, DIMS(2, 3, 2));
  EXPECT(g, sm_reduce(g, OP_REDUCE_SUM, x, 2, (const int[]){0, 2}), 14, 22, 30);
  smelt_graph_free(g);

  g = smelt_graph_new();
  x = cf32(g, 1, DIMS(4), (const float[]){2, -3, 0.5, 4});
  EXPECT(g, sm_reduce(g, OP_REDUCE_PROD, x, 0, NULL), -12);
  smelt_graph_free(g);

  /* Sums accumulate in double: 2^24 + 1 + 1 in f32 steps would stay 2^24. */
  g = smelt_graph_new();
  x = cf32(g, 1, DIMS(3), (const float[]){16777216.0f, 1, 1});
  EXPECT(g, sm_reduce(g, OP_REDUCE_SUM, x, 0, NULL), 16777218.0);
  smelt_graph_free(g);

  /* max / min propagate NaN; -inf and inf are ordinary values. */
  g = smelt_graph_new();
  x = cf64(g, 2, DIMS(2, 3), (const double[]){1, NAN, 3, -INFINITY, -INFINITY, -5});
  EXPECT(g, sm_reduce(g, OP_REDUCE_MAX, x, 1, (const int[]){1}), NAN, -5);
  smelt_graph_free(g);
  g = smelt_graph_new();
  x = cf64(g, 2, DIMS(2, 3), (const double[]){1, NAN, 3, INFINITY, 7, INFINITY});
  EXPECT(g, sm_reduce(g, OP_REDUCE_MIN, x, 1, (const int[]){1}), NAN, 7);
  smelt_graph_free(g);

  /* Empty axes: sum 0, prod 1. */
  g = smelt_graph_new();
  smelt_node e = smelt_input(g, "e", SMELT_F32, 2, DIMS(2, 0));
  r = sm_reduce(g, OP_REDUCE_SUM, e, 1, (const int[]){1});
  int64_t m;
  double *v = eval(g, r, &m, 1, (const char *[]){"e"}, (const void *[]){NULL});
  ck_assert_int_eq(m, 2);
  ck_assert(v[0] == 0 && v[1] == 0);
  free(v);
  smelt_graph_free(g);
  g = smelt_graph_new();
  e = smelt_input(g, "e", SMELT_F64, 2, DIMS(0, 3));
  r = sm_reduce(g, OP_REDUCE_PROD, e, 1, (const int[]){0});
  v = eval(g, r, &m, 1, (const char *[]){"e"}, (const void *[]){NULL});
  ck_assert_int_eq(m, 3);
  ck_assert(v[0] == 1 && v[1] == 1 && v[2] == 1);
  free(v);
  smelt_graph_free(g);

  /* Integer sums wrap (int64) and are exact beyond 2^53. */
  g = smelt_graph_new();
  smelt_node i = ci64(g, 1, DIMS(3), (const int64_t[]){INT64_MAX, 2, (1ll << 60)});
  smelt_node s = sm_reduce(g, OP_REDUCE_SUM, i, 0, NULL);
  smelt_output(g, "s", s);
  smelt_interp *it = smelt_interp_new(g);
  ck_assert_int_eq(smelt_interp_run(it), 0);
  int64_t got;
  ck_assert_int_eq(smelt_interp_read(it, "s", SMELT_I64, &got, 8), 0);
  ck_assert_int_eq(got, (int64_t)((uint64_t)INT64_MAX + 2 + (1ull << 60)));
  smelt_interp_free(it);
  smelt_graph_free(g);

  /* Reduction over a broadcast (stride-0) view. */
  g = smelt_graph_new();
  x = cf32(g, 2, DIMS(1, 3), (const float[]){1, 2, 3});
  e = smelt_expand(g, x, 2, DIMS(4, 3));
  EXPECT(g, sm_reduce(g, OP_REDUCE_SUM, e, 1, (const int[]){0}), 4, 8, 12);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_argreduce) {
  smelt_graph *g = smelt_graph_new();
  smelt_node x = cf32(g, 2, DIMS(2, 4), (const float[]){1, 5, 5, 2, 3, 3, 0, 0});
  smelt_node am = sm_argreduce(g, OP_ARGMAX, x, 1);
  TU_ASSERT_DTYPE(g, am, SMELT_I64);
  TU_ASSERT_SHAPE(g, am, 2, 2, 1);
  EXPECT(g, am, 1, 0); /* ties: first wins */
  smelt_graph_free(g);

  g = smelt_graph_new();
  x = cf32(g, 2, DIMS(2, 4), (const float[]){1, 5, 5, 2, 3, 3, 0, 0});
  EXPECT(g, sm_argreduce(g, OP_ARGMIN, x, 1), 0, 2);
  smelt_graph_free(g);

  g = smelt_graph_new();
  x = cf32(g, 2, DIMS(2, 4), (const float[]){1, 5, 5, 2, 3, 3, 0, 0});
  EXPECT(g, sm_argreduce(g, OP_ARGMAX, x, 0), 1, 0, 0, 0);
  smelt_graph_free(g);

  /* NaN is both the maximum and the minimum; the first NaN wins. */
  g = smelt_graph_new();
  x = cf64(g, 1, DIMS(5), (const double[]){1, INFINITY, NAN, 9, NAN});
  EXPECT(g, sm_argreduce(g, OP_ARGMAX, x, 0), 2);
  smelt_graph_free(g);
  g = smelt_graph_new();
  x = cf64(g, 1, DIMS(5), (const double[]){1, -INFINITY, NAN, 9, NAN});
  EXPECT(g, sm_argreduce(g, OP_ARGMIN, x, 0), 2);
  smelt_graph_free(g);
  g = smelt_graph_new();
  x = cf64(g, 1, DIMS(3), (const double[]){NAN, NAN, 1});
  EXPECT(g, sm_argreduce(g, OP_ARGMIN, x, 0), 0);
  smelt_graph_free(g);

  /* Integers, and a flipped view (indices count in the view). */
  g = smelt_graph_new();
  smelt_node i = ci64(g, 1, DIMS(4), (const int64_t[]){INT64_MIN, 4, 4, -1});
  EXPECT(g, sm_argreduce(g, OP_ARGMAX, smelt_flip(g, i, 1, (const int[]){0}), 0), 1);
  smelt_graph_free(g);
}
END_TEST

/* -------------------------------------------------------------- matmul */

START_TEST(test_matmul) {
  smelt_graph *g = smelt_graph_new();
  smelt_node a = arange_f32(g, 3, DIMS(2, 2, 3));
  smelt_node b = arange_f32(g, 3, DIMS(2, 3, 2));
  /* batch 0: [[0,1,2],[3,4,5]] x [[0,1],[2,3],[4,5]] = [[10,13],[28,40]]
   * batch 1: [[6,7,8],[9,10,11]] x [[6,7],[8,9],[10,11]]
   *        = [[172,193],[244,274]] */
  EXPECT(g, smelt_matmul(g, a, b), 10, 13, 28, 40, 172, 193, 244, 274);
  smelt_graph_free(g);

  /* Transposed operand (strided view) and a broadcast batch. */
  g = smelt_graph_new();
  a = arange_f32(g, 2, DIMS(3, 2));                 /* a^T = [[0,2,4],[1,3,5]] */
  smelt_node at = smelt_transpose(g, a, 0, 1);
  b = cf32(g, 3, DIMS(2, 3, 1), (const float[]){1, 1, 1, 1, 0, -1});
  EXPECT(g, smelt_matmul(g, at, b), 6, 9, -4, -4);
  smelt_graph_free(g);

  /* Integers: exact in int64. */
  g = smelt_graph_new();
  smelt_node ia = ci64(g, 2, DIMS(1, 2), (const int64_t[]){1ll << 40, 3});
  smelt_node ib = ci64(g, 2, DIMS(2, 1), (const int64_t[]){1ll << 12, 5});
  smelt_node p = smelt_matmul(g, ia, ib);
  smelt_output(g, "p", p);
  smelt_interp *it = smelt_interp_new(g);
  ck_assert_int_eq(smelt_interp_run(it), 0);
  int64_t got;
  ck_assert_int_eq(smelt_interp_read(it, "p", SMELT_I64, &got, 8), 0);
  ck_assert_int_eq(got, (1ll << 52) + 15);
  smelt_interp_free(it);
  smelt_graph_free(g);

  /* K = 0 gives zeros. */
  g = smelt_graph_new();
  a = smelt_input(g, "a", SMELT_F32, 2, DIMS(2, 0));
  b = smelt_input(g, "b", SMELT_F32, 2, DIMS(0, 2));
  int64_t m;
  double *r = eval(g, smelt_matmul(g, a, b), &m, 2, (const char *[]){"a", "b"},
                   (const void *[]){NULL, NULL});
  ck_assert_int_eq(m, 4);
  for (int k = 0; k < 4; k++) ck_assert(r[k] == 0);
  free(r);
  smelt_graph_free(g);
}
END_TEST

/* -------------------------------------------------------------- gather */

START_TEST(test_gather) {
  smelt_graph *g = smelt_graph_new();
  smelt_node x = arange_f32(g, 2, DIMS(3, 4));
  smelt_node ix = ci64(g, 2, DIMS(2, 2), (const int64_t[]){3, 0, 3, 1});
  /* axis 1: out[i][j] = x[i][ix[i][j]] */
  EXPECT(g, smelt_gather(g, x, 1, ix), 3, 0, 7, 5);
  smelt_graph_free(g);

  g = smelt_graph_new();
  x = arange_f32(g, 2, DIMS(3, 4));
  smelt_node i32 = smelt_const_array(g, SMELT_I32, 2, DIMS(1, 3), (const int32_t[]){2, 0, 0});
  /* axis 0: out[0][j] = x[ix[0][j]][j] */
  EXPECT(g, smelt_gather(g, x, 0, i32), 8, 1, 2);
  smelt_graph_free(g);

  /* Out of range at run time. */
  g = smelt_graph_new();
  x = arange_f32(g, 1, DIMS(5));
  smelt_node in = smelt_input(g, "i", SMELT_I64, 1, DIMS(2));
  smelt_node gt = smelt_gather(g, x, 0, in);
  smelt_output(g, "y", gt);
  smelt_interp *it = smelt_interp_new(g);
  int64_t idx[2] = {1, 7};
  ck_assert_int_eq(smelt_interp_bind(it, "i", SMELT_I64, 1, DIMS(2), idx, sizeof idx), 0);
  ck_assert_int_eq(smelt_interp_run(it), -1);
  assert_contains(smelt_interp_error(it), "gather: index 7 is out of range for axis 0 of size 5");
  idx[1] = -1; /* negative indices are errors, as in PyTorch */
  ck_assert_int_eq(smelt_interp_run(it), -1);
  assert_contains(smelt_interp_error(it), "gather: index -1 is out of range for axis 0 of size 5");
  idx[1] = INT64_MIN;
  ck_assert_int_eq(smelt_interp_run(it), -1);
  assert_contains(smelt_interp_error(it), "is out of range");
  idx[1] = 4;
  ck_assert_int_eq(smelt_interp_run(it), 0);
  float y[2];
  ck_assert_int_eq(smelt_interp_read(it, "y", SMELT_F32, y, sizeof y), 0);
  ck_assert(y[0] == 1 && y[1] == 4);
  smelt_interp_free(it);
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------ concat and pad */

START_TEST(test_concat_pad) {
  smelt_graph *g = smelt_graph_new();
  smelt_node a = arange_f32(g, 2, DIMS(2, 2));
  smelt_node b = cf32(g, 2, DIMS(2, 1), (const float[]){10, 11});
  EXPECT(g, smelt_concat(g, 2, (smelt_node[]){a, b}, 1), 0, 1, 10, 2, 3, 11);
  smelt_graph_free(g);

  /* Axis 0 with a transposed piece and a dtype promotion. */
  g = smelt_graph_new();
  a = arange_f32(g, 2, DIMS(2, 2));
  smelt_node t = smelt_transpose(g, a, 0, 1);
  smelt_node i = ci64(g, 2, DIMS(1, 2), (const int64_t[]){7, 8});
  EXPECT(g, smelt_concat(g, 3, (smelt_node[]){t, i, a}, 0), 0, 2, 1, 3, 7, 8, 0, 1, 2, 3);
  smelt_graph_free(g);

  g = smelt_graph_new();
  a = arange_f32(g, 2, DIMS(2, 2));
  smelt_node p = smelt_pad(g, a, DIMS(1, 0), DIMS(0, 2), -1);
  TU_ASSERT_SHAPE(g, p, 2, 3, 4);
  EXPECT(g, p, -1, -1, -1, -1, 0, 1, -1, -1, 2, 3, -1, -1);
  smelt_graph_free(g);

  /* Pad of a flipped view, integers. */
  g = smelt_graph_new();
  i = ci64(g, 1, DIMS(3), (const int64_t[]){1, 2, 3});
  smelt_node f = smelt_flip(g, i, 1, (const int[]){0});
  EXPECT(g, smelt_pad(g, f, DIMS(2), DIMS(1), 9), 9, 9, 3, 2, 1, 9);
  smelt_graph_free(g);

  /* Pad of an empty tensor is all padding. */
  g = smelt_graph_new();
  smelt_node e = smelt_input(g, "e", SMELT_F32, 1, DIMS(0));
  p = smelt_pad(g, e, DIMS(1), DIMS(2), 5);
  int64_t m;
  double *r = eval(g, p, &m, 1, (const char *[]){"e"}, (const void *[]){NULL});
  ck_assert_int_eq(m, 3);
  ck_assert(r[0] == 5 && r[1] == 5 && r[2] == 5);
  free(r);
  smelt_graph_free(g);
}
END_TEST

/* -------------------------------------------------------------- sources */

START_TEST(test_params) {
  const int64_t *d = DIMS(2, 3);
  smelt_graph *g = smelt_graph_new();
  EXPECT(g, smelt_param(g, "p", SMELT_F32, 2, d, smelt_init_zeros()), 0, 0, 0, 0, 0, 0);
  smelt_graph_free(g);
  g = smelt_graph_new();
  EXPECT(g, smelt_param(g, "p", SMELT_I32, 2, d, smelt_init_ones()), 1, 1, 1, 1, 1, 1);
  smelt_graph_free(g);
  g = smelt_graph_new();
  EXPECT(g, smelt_param(g, "p", SMELT_F64, 1, DIMS(2), smelt_init_constant(0.1)), 0.1, 0.1);
  smelt_graph_free(g);
  g = smelt_graph_new();
  EXPECT(g, smelt_param(g, "p", SMELT_F32, 1, DIMS(2), smelt_init_constant(0.1)),
         (double)0.1f, (double)0.1f);
  smelt_graph_free(g);
  g = smelt_graph_new();
  EXPECT(g, smelt_param(g, "p", SMELT_I64, 1, DIMS(2), smelt_init_data((const int64_t[]){-4, 9})),
         -4, 9);
  smelt_graph_free(g);

  /* normal: a + b*z, uniform: a + (b-a)*u, element k from counter k. */
  for (int dt = SMELT_F32; dt <= SMELT_F64; dt++) {
    g = smelt_graph_new();
    smelt_node pn = smelt_param(g, "n", (smelt_dtype)dt, 2, d, smelt_init_normal(1.5, 2, 77));
    smelt_node pu = smelt_param(g, "u", (smelt_dtype)dt, 2, d, smelt_init_uniform(-1, 3, 78));
    smelt_output(g, "n", pn);
    double *u = eval(g, pu, NULL, 0, NULL, NULL);
    smelt_interp *it = smelt_interp_new(g);
    ck_assert_int_eq(smelt_interp_run(it), 0);
    double nd[6];
    float nf[6];
    if (dt == SMELT_F32)
      ck_assert_int_eq(smelt_interp_read(it, "n", SMELT_F32, nf, sizeof nf), 0);
    else
      ck_assert_int_eq(smelt_interp_read(it, "n", SMELT_F64, nd, sizeof nd), 0);
    smelt_interp_free(it);
    for (int k = 0; k < 6; k++) {
      double zn = 1.5 + 2 * sm_rand_normal(77, (uint64_t)k, (smelt_dtype)dt);
      double zu = -1 + 4 * sm_rand_uniform(78, (uint64_t)k, (smelt_dtype)dt);
      if (dt == SMELT_F32) {
        ck_assert_float_eq(nf[k], (float)zn);
        ck_assert_double_eq(u[k], (double)(float)zu);
      } else {
        ck_assert_double_eq(nd[k], zn);
        ck_assert_double_eq(u[k], zu);
      }
      ck_assert(u[k] >= -1 && u[k] < 3);
    }
    /* Different elements differ (the counter is the index). */
    ck_assert(u[0] != u[1]);
    free(u);
    smelt_graph_free(g);
  }

  /* assign's value is the new value of the param. */
  g = smelt_graph_new();
  smelt_node p = smelt_param(g, "p", SMELT_F32, 2, d, smelt_init_ones());
  smelt_node upd = smelt_assign(g, p, smelt_add(g, p, smelt_scalar(g, 2)));
  EXPECT(g, upd, 3, 3, 3, 3, 3, 3);
  smelt_graph_free(g);
  g = smelt_graph_new();
  p = smelt_param(g, "p", SMELT_F32, 2, d, smelt_init_ones());
  smelt_node row = cf32(g, 1, DIMS(3), (const float[]){1, 2, 3});
  EXPECT(g, smelt_assign(g, p, row), 1, 2, 3, 1, 2, 3);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_rng_iota) {
  smelt_graph *g = smelt_graph_new();
  smelt_node r = sm_rng(g, OP_RAND, SMELT_F64, 1, DIMS(4), 5, 2, 4);
  double *v = eval(g, r, NULL, 0, NULL, NULL);
  for (int k = 0; k < 4; k++) ck_assert_double_eq(v[k], 2 + 2 * sm_rand_uniform(5, (uint64_t)k, SMELT_F64));
  free(v);
  smelt_graph_free(g);

  g = smelt_graph_new();
  r = sm_rng(g, OP_RANDN, SMELT_F32, 2, DIMS(2, 2), 9, -1, 0.5);
  v = eval(g, r, NULL, 0, NULL, NULL);
  for (int k = 0; k < 4; k++)
    ck_assert_double_eq(v[k], (double)(float)(-1 + 0.5 * sm_rand_normal(9, (uint64_t)k, SMELT_F32)));
  free(v);
  smelt_graph_free(g);

  /* iota along axis 1 of [2,3]: start 0.5 step 2; along axis 0 in i32. */
  g = smelt_graph_new();
  EXPECT(g, sm_iota(g, SMELT_F32, 2, DIMS(2, 3), 1, 0.5, 2), 0.5, 2.5, 4.5, 0.5, 2.5, 4.5);
  smelt_graph_free(g);
  g = smelt_graph_new();
  smelt_node io = sm_iota(g, SMELT_I32, 2, DIMS(3, 2), 0, 10, -3);
  EXPECT(g, io, 10, 10, 7, 7, 4, 4);
  smelt_graph_free(g);
  /* iota is a stride-0 view; a reshape of it materializes correctly. */
  g = smelt_graph_new();
  io = sm_iota(g, SMELT_I64, 2, DIMS(2, 3), 0, 0, 1);
  EXPECT(g, smelt_reshape(g, io, 2, DIMS(3, 2)), 0, 0, 0, 1, 1, 1);
  smelt_graph_free(g);
  /* A one-element iota is its start. */
  g = smelt_graph_new();
  io = sm_iota(g, SMELT_F64, 1, DIMS(1), 0, 4.25, 1);
  EXPECT(g, io, 4.25);
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------ big graphs and memory */

START_TEST(test_long_chain) {
  /* A chain of 2000 adds over a 64 KiB tensor: intermediates are freed as
   * their last consumer runs, so this needs a few buffers, not 2000. */
  smelt_graph *g = smelt_graph_new();
  smelt_node x = smelt_input(g, "x", SMELT_F32, 1, DIMS(1 << 14));
  smelt_node y = x;
  for (int k = 0; k < 2000; k++) y = smelt_add(g, y, smelt_scalar(g, 1));
  float *data = calloc(1 << 14, sizeof(float));
  int64_t m;
  double *r = eval(g, y, &m, 1, (const char *[]){"x"}, (const void *[]){data});
  ck_assert_int_eq(m, 1 << 14);
  ck_assert(r[0] == 2000 && r[(1 << 14) - 1] == 2000);
  free(r);
  free(data);
  smelt_graph_free(g);
}
END_TEST

/* Runs a small graph with every allocation failing in turn: each call
 * either succeeds or says "out of memory", and nothing leaks (checked by
 * ASan / valgrind). */
START_TEST(test_out_of_memory) {
  smelt_graph *g = smelt_graph_new();
  smelt_node x = smelt_input(g, "x", SMELT_F32, 2, DIMS(2, 3));
  smelt_node t = smelt_transpose(g, x, 0, 1);
  smelt_node s = sm_reduce(g, OP_REDUCE_SUM, smelt_reshape(g, t, 1, DIMS(6)), 0, NULL);
  smelt_node c = smelt_concat(
      g, 2, (smelt_node[]){smelt_reshape(g, x, 1, DIMS(6)), smelt_reshape(g, smelt_exp(g, t), 1, DIMS(6))}, 0);
  smelt_output(g, "s", s);
  smelt_output(g, "c", smelt_concat(g, 1, &c, 0));
  smelt_output(g, "p", smelt_pad(g, x, DIMS(1, 1), DIMS(0, 0), 0));
  check_graph_ok(g);
  float xv[6] = {1, 2, 3, 4, 5, 6};
  int ok_runs = 0;
  for (long k = 0; k < 200; k++) {
    sm_alloc_fail_after(k);
    smelt_interp *it = smelt_interp_new(g);
    if (!it) continue;
    int rc = smelt_interp_bind(it, "x", SMELT_F32, 2, DIMS(2, 3), xv, sizeof xv);
    if (rc == 0) rc = smelt_interp_run(it);
    float sv = 0;
    if (rc == 0) rc = smelt_interp_read(it, "s", SMELT_F32, &sv, 4);
    if (rc) {
      ck_assert_str_eq(smelt_interp_error(it), "out of memory");
      /* Still usable once memory is back. */
      sm_alloc_fail_after(-1);
      ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_F32, 2, DIMS(2, 3), xv, sizeof xv), 0);
      ck_assert_int_eq(smelt_interp_run(it), 0);
      ck_assert_int_eq(smelt_interp_read(it, "s", SMELT_F32, &sv, 4), 0);
    } else {
      ok_runs++;
    }
    ck_assert_float_eq(sv, 21);
    sm_alloc_fail_after(-1);
    smelt_interp_free(it);
  }
  ck_assert_int_gt(ok_runs, 0);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_huge_result) {
  /* A result too large to allocate is a clean error, not a crash. */
  smelt_graph *g = smelt_graph_new();
  smelt_node one = cf32(g, 2, DIMS(1, 1), (const float[]){1});
  smelt_node big = smelt_expand(g, one, 2, DIMS(1ll << 28, 1ll << 28));
  smelt_output(g, "y", smelt_add(g, big, big));
  check_graph_ok(g);
  smelt_interp *it = smelt_interp_new(g);
  ck_assert_int_eq(smelt_interp_run(it), -1);
  const char *e = smelt_interp_error(it);
  ck_assert_msg(strstr(e, "too large") || strstr(e, "add %2: out of memory (f32[268435456,268435456]"),
                "%s", e);
  smelt_interp_free(it);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_empty_huge_dims) {
  /* A tensor without elements whose other dims multiply past int64 (found
   * by fuzz_api: rand/randn of f64[2^40,0,2^40] overflowed the dense
   * strides; then fuzz_text: reshapes and sums of it): an empty result,
   * and ops on it too. */
  smelt_graph *g = smelt_graph_new();
  const int64_t *dims = DIMS(1ll << 40, 0, 1ll << 40);
  smelt_node r = smelt_randn(g, SMELT_F64, 3, dims, 54);
  smelt_node u = smelt_rand(g, SMELT_F32, 3, dims, 1);
  smelt_output(g, "r", r);
  smelt_output(g, "u", smelt_add(g, u, u));
  smelt_output(g, "s", smelt_sum(g, r, 1, (const int[]){0}, false));
  /* a sum of all of it (one 0), and a reshape of it (fuzz_text: the
   * contiguity check multiplied the dims after the 0) */
  smelt_output(g, "all", smelt_sum(g, r, 0, NULL, false));
  smelt_node wide = smelt_randn(g, SMELT_F64, 6,
                                DIMS(1099511627774, 0, 199511627774, 13, 657, 627776), 54);
  smelt_output(g, "re", smelt_sum(g, wide, 1, (const int[]){0}, false));
  /* eye of [0, 2^32] (fuzz_api): its iota along the long axis held a row
   * of 2^32 values (32 GiB) though the tensor has no elements */
  smelt_output(g, "eye", smelt_eye(g, SMELT_F32, 0, 1ll << 32));
  /* mean, var and logsumexp over the two huge axes (fuzz_api: their count
   * of reduced elements, 2^80, overflowed int64) */
  const int ends[2] = {0, 2};
  smelt_output(g, "mean", smelt_mean(g, r, 2, ends, false));
  smelt_output(g, "var", smelt_var(g, r, 2, ends, 1, false));
  smelt_output(g, "lse", smelt_logsumexp(g, r, 2, ends, false));
  check_graph_ok(g);
  smelt_interp *it = smelt_interp_new(g);
  ck_assert_msg(smelt_interp_run(it) == 0, "%s", smelt_interp_error(it));
  ck_assert_int_eq(smelt_interp_read(it, "r", SMELT_F64, NULL, 0), 0);
  ck_assert_int_eq(smelt_interp_read(it, "u", SMELT_F32, NULL, 0), 0);
  ck_assert_int_eq(smelt_interp_read(it, "s", SMELT_F64, NULL, 0), 0);
  ck_assert_int_eq(smelt_interp_read(it, "re", SMELT_F64, NULL, 0), 0);
  ck_assert_int_eq(smelt_interp_read(it, "eye", SMELT_F32, NULL, 0), 0);
  ck_assert_int_eq(smelt_interp_read(it, "mean", SMELT_F64, NULL, 0), 0);
  ck_assert_int_eq(smelt_interp_read(it, "var", SMELT_F64, NULL, 0), 0);
  ck_assert_int_eq(smelt_interp_read(it, "lse", SMELT_F64, NULL, 0), 0);
  double all = -1;
  ck_assert_int_eq(smelt_interp_read(it, "all", SMELT_F64, &all, sizeof all), 0);
  ck_assert(all == 0);
  smelt_interp_free(it);
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------ blocked sums */

/* Float sums over more than 4096 elements per slot follow the blocked
 * order (tests/blocked_sum.h has the reference), bit for bit. */
START_TEST(test_sum_blocked_order) {
  const bs_case *c = &bs_cases[_i];
  void *data = bs_input(c);
  smelt_graph *g = smelt_graph_new();
  smelt_node x = smelt_input(g, "x", c->dt, c->rank, c->dims);
  smelt_node y = sm_reduce(g, OP_REDUCE_SUM, x, c->naxes, c->axes);
  int64_t m, slots;
  double *got = eval(g, y, &m, 1, (const char *[]){"x"}, (const void *[]){data});
  double *want = bs_expected(c, data, false, &slots);
  double *seq = bs_expected(c, data, true, &slots);
  ck_assert_int_eq(m, slots);
  bool differs = false;
  for (int64_t k = 0; k < m; k++) {
    ck_assert_msg(got[k] == want[k], "%s: slot %lld is %.17g, want %.17g (sequential %.17g)",
                  c->name, (long long)k, got[k], want[k], seq[k]);
    differs = differs || seq[k] != want[k];
  }
  /* the input tells the orders apart (R = 4096 is summed sequentially) */
  ck_assert_msg(differs == (bs_numel(c) / m > BS_BLOCK), "%s: the order %s", c->name,
                differs ? "is not sequential" : "does not matter on this input");
  free(got);
  free(want);
  free(seq);
  free(data);
  smelt_graph_free(g);
}
END_TEST

/* mean is sum then scale: the sum is blocked; integer sums wrap as
 * before (exact, so any order gives them). */
START_TEST(test_sum_blocked_mean_int) {
  enum { N = 5000 };
  double v[N];
  for (int i = 0; i < N; i++) v[i] = bs_value(i, N);
  smelt_graph *g = smelt_graph_new();
  smelt_node x = cf64(g, 1, DIMS(N), v);
  double want = bs_reference(v, N) / N;
  ck_assert(bs_sequential(v, N) / N != want);
  EXPECT(g, smelt_mean(g, x, 0, NULL, false), want);
  smelt_graph_free(g);

  static int64_t w[N];
  for (int i = 0; i < N; i++) w[i] = INT64_MAX / 3 + i;
  uint64_t s = 0;
  for (int i = 0; i < N; i++) s += (uint64_t)w[i];
  g = smelt_graph_new();
  x = ci64(g, 1, DIMS(N), w);
  EXPECT(g, sm_reduce(g, OP_REDUCE_SUM, x, 0, NULL), (double)(int64_t)s);
  smelt_graph_free(g);
}
END_TEST

static Suite *interp_suite(void) {
  Suite *s = suite_create("interp");
  TCase *tc = tcase_create("bind");
  tcase_add_test(tc, test_bind_errors);
  tcase_add_test(tc, test_bind_no_inputs);
  tcase_add_test(tc, test_read_errors);
  tcase_add_test(tc, test_graph_error);
  tcase_add_test(tc, test_outputs_misc);
  suite_add_tcase(s, tc);
  tc = tcase_create("views");
  tcase_add_test(tc, test_expand_stride0);
  tcase_add_test(tc, test_permute_slice_flip);
  tcase_add_test(tc, test_reshape_views);
  suite_add_tcase(s, tc);
  tc = tcase_create("compute");
  tcase_add_test(tc, test_elementwise_dtypes);
  tcase_add_test(tc, test_reduce);
  tcase_add_test(tc, test_argreduce);
  tcase_add_test(tc, test_matmul);
  tcase_add_test(tc, test_gather);
  tcase_add_test(tc, test_concat_pad);
  suite_add_tcase(s, tc);
  tc = tcase_create("blocked sums");
  tcase_add_loop_test(tc, test_sum_blocked_order, 0, BS_NCASES);
  tcase_add_test(tc, test_sum_blocked_mean_int);
  suite_add_tcase(s, tc);
  tc = tcase_create("sources");
  tcase_add_test(tc, test_params);
  tcase_add_test(tc, test_rng_iota);
  suite_add_tcase(s, tc);
  tc = tcase_create("memory");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_long_chain);
  tcase_add_test(tc, test_out_of_memory);
  tcase_add_test(tc, test_huge_result);
  tcase_add_test(tc, test_empty_huge_dims);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(interp_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
