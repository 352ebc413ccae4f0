/* Every op of smelt.h against independent expected values: hand-computed
 * numbers (from the definitions, checked against PyTorch's documented
 * behaviour) or a direct C loop over the same data. Edge cases: size-0 and
 * size-1 dims, rank 0, negative axes, NaN and inf.
 *
 * Tolerances: results that are exact in the dtype are compared exactly
 * (tolerance 0). f64 transcendental results within 1e-12 (absolute +
 * relative); f32 within 1e-6 (absolute + relative) unless a test states
 * otherwise. NaN only matches NaN, an infinity only the same infinity. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define F32 SMELT_F32
#define F64 SMELT_F64
#define I32 SMELT_I32
#define I64 SMELT_I64
#define BOOL SMELT_BOOL
#define E1 2.718281828459045
#define PI 3.141592653589793

/* =============================================================== sources */

START_TEST(const_arrays_all_dtypes) {
  smelt_graph *g = TU_GRAPH();
  float f[4] = {1.5f, -2, 0, 3e38f};
  double d[3] = {0.1, -1e300, 5e-324};
  int32_t i[3] = {INT32_MIN, -1, INT32_MAX};
  int64_t l[3] = {INT64_MIN, 0, INT64_MAX};
  uint8_t b[3] = {1, 0, 1};
  smelt_node cf = tu_const_f32(g, 2, TU_DIMS(2, 2), f);
  smelt_node cd = tu_const_f64(g, 1, TU_DIMS(3), d);
  smelt_node ci = tu_const_i32(g, 1, TU_DIMS(3), i);
  smelt_node cl = tu_const_i64(g, 1, TU_DIMS(3), l);
  smelt_node cb = tu_const_bool(g, 1, TU_DIMS(3), b);
  TU_ASSERT_SHAPE(g, cf, 2, 2, 2);
  TU_ASSERT_DTYPE(g, cb, BOOL);
  float *rf = TU_RUN1(g, cf);
  ck_assert(memcmp(rf, f, sizeof f) == 0);
  double *rd = TU_RUN1(g, cd);
  ck_assert(memcmp(rd, d, sizeof d) == 0);
  int32_t *ri = TU_RUN1(g, ci);
  ck_assert(memcmp(ri, i, sizeof i) == 0);
  int64_t *rl = TU_RUN1(g, cl);
  ck_assert(memcmp(rl, l, sizeof l) == 0);
  uint8_t *rb = TU_RUN1(g, cb);
  ck_assert(memcmp(rb, b, sizeof b) == 0);
  free(rf), free(rd), free(ri), free(rl), free(rb);
  /* the data is copied: changing the caller's array later changes nothing */
  float tmp[2] = {1, 2};
  smelt_node ct = tu_const_f32(g, 1, TU_DIMS(2), tmp);
  tmp[0] = 99;
  TU_ASSERT_VALUES(g, ct, 0, 1, 2);
  /* rank 0 and size 0 */
  smelt_node c0 = smelt_const_array(g, F64, 0, NULL, (double[]){4.25});
  TU_ASSERT_SHAPE(g, c0, 0);
  TU_ASSERT_VALUES(g, c0, 0, 4.25);
  smelt_node ce = smelt_const_array(g, F32, 2, TU_DIMS(3, 0), NULL);
  TU_ASSERT_SHAPE(g, ce, 2, 3, 0);
  free(TU_RUN1(g, ce));
  smelt_graph_free(g);
}
END_TEST

START_TEST(scalar_consts) {
  smelt_graph *g = TU_GRAPH();
  TU_ASSERT_VALUES(g, smelt_const(g, F32, 2.5), 0, 2.5);
  TU_ASSERT_VALUES(g, smelt_const(g, F64, 0.1), 0, 0.1);
  TU_ASSERT_VALUES(g, smelt_const(g, I64, -7), 0, -7);
  TU_ASSERT_VALUES(g, smelt_const(g, BOOL, 1), 0, 1);
  TU_ASSERT_VALUES(g, smelt_const(g, F32, NAN), 0, NAN);
  TU_ASSERT_VALUES(g, smelt_const(g, F64, -INFINITY), 0, -INFINITY);
  TU_ASSERT_VALUES(g, smelt_scalar(g, 1.25), 0, 1.25);
  TU_ASSERT_VALUES(g, smelt_scalar_int(g, -3), 0, -3);
  smelt_graph_free(g);
}
END_TEST

START_TEST(full_zeros_ones) {
  smelt_graph *g = TU_GRAPH();
  smelt_node f = smelt_full(g, F32, 2, TU_DIMS(2, 3), 1.5);
  TU_ASSERT_SHAPE(g, f, 2, 2, 3);
  TU_ASSERT_VALUES(g, f, 0, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5);
  TU_ASSERT_VALUES(g, smelt_zeros(g, I32, 1, TU_DIMS(3)), 0, 0, 0, 0);
  TU_ASSERT_VALUES(g, smelt_ones(g, F64, 3, TU_DIMS(1, 2, 1)), 0, 1, 1);
  TU_ASSERT_VALUES(g, smelt_full(g, F64, 0, NULL, -2), 0, -2);
  TU_ASSERT_SHAPE(g, smelt_full(g, F64, 0, NULL, -2), 0);
  smelt_node e = smelt_zeros(g, F32, 2, TU_DIMS(0, 4));
  TU_ASSERT_SHAPE(g, e, 2, 0, 4);
  free(TU_RUN1(g, e));
  TU_ASSERT_VALUES(g, smelt_full(g, F32, 1, TU_DIMS(2), INFINITY), 0, INFINITY, INFINITY);
  smelt_graph_free(g);
}
END_TEST

/* full() never copies: its node is an expand of a single-element const
 * (through at most a reshape), and no const of more than one element is
 * built. */
START_TEST(full_is_expand_of_const) {
  smelt_graph *g = TU_GRAPH();
  smelt_node f = smelt_full(g, F32, 3, TU_DIMS(64, 64, 8), 3.0);
  TU_ASSERT_OK(g);
  ck_assert_str_eq(smelt_node_op(g, f), "expand");
  smelt_node cur = tu_node_input(g, f, 0);
  int steps = 0;
  while (strcmp(smelt_node_op(g, cur), "const") != 0) {
    ck_assert_str_eq(smelt_node_op(g, cur), "reshape");
    cur = tu_node_input(g, cur, 0);
    ck_assert_int_lt(++steps, 3);
  }
  ck_assert_int_eq(smelt_node_numel(g, cur), 1);
  size_t n = smelt_graph_node_count(g);
  ck_assert_uint_le(n, 3);
  for (size_t i = 0; i < n; i++) {
    smelt_node v = smelt_graph_node(g, i);
    if (strcmp(smelt_node_op(g, v), "const") == 0) ck_assert_int_eq(smelt_node_numel(g, v), 1);
  }
  /* ones and zeros too */
  smelt_node o = smelt_ones(g, F64, 2, TU_DIMS(100, 100));
  ck_assert_str_eq(smelt_node_op(g, o), "expand");
  smelt_graph_free(g);
}
END_TEST

START_TEST(arange_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = smelt_arange(g, F32, 0, 5, 1);
  TU_ASSERT_SHAPE(g, a, 1, 5);
  TU_ASSERT_VALUES(g, a, 0, 0, 1, 2, 3, 4);
  TU_ASSERT_VALUES(g, smelt_arange(g, F64, 1, 2.5, 0.5), 0, 1, 1.5, 2);
  /* ceil((0 - 5) / -1.5) = 4 elements */
  TU_ASSERT_VALUES(g, smelt_arange(g, F64, 5, 0, -1.5), 0, 5, 3.5, 2, 0.5);
  TU_ASSERT_VALUES(g, smelt_arange(g, I32, -2, 3, 2), 0, -2, 0, 2);
  TU_ASSERT_VALUES(g, smelt_arange(g, I64, 0, 3, 1), 0, 0, 1, 2);
  /* torch.arange(0, 1, 0.1): 10 elements, value i = 0 + i * 0.1 in double */
  smelt_node t = smelt_arange(g, F64, 0, 1, 0.1);
  TU_ASSERT_SHAPE(g, t, 1, 10);
  double want[10];
  for (int i = 0; i < 10; i++) want[i] = 0 + i * 0.1;
  TU_ASSERT_VALUES_A(g, t, 0, 10, want);
  /* empty */
  smelt_node e = smelt_arange(g, F32, 3, 3, 1);
  TU_ASSERT_SHAPE(g, e, 1, 0);
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_arange(g, F32, 0, 5, 0)));
  TU_ASSERT_ERROR(g, "arange", "step");
  smelt_graph_free(g);
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_arange(g, F32, 0, 5, -1)));
  TU_ASSERT_ERROR(g, "arange");
  smelt_graph_free(g);
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_arange(g, F32, 0, INFINITY, 1)));
  TU_ASSERT_ERROR(g, "arange");
  smelt_graph_free(g);
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_arange(g, F32, NAN, 1, 1)));
  TU_ASSERT_ERROR(g, "arange");
  smelt_graph_free(g);
}
END_TEST

START_TEST(linspace_values) {
  smelt_graph *g = TU_GRAPH();
  TU_ASSERT_VALUES(g, smelt_linspace(g, F32, 0, 1, 5), 0, 0, 0.25, 0.5, 0.75, 1);
  TU_ASSERT_VALUES(g, smelt_linspace(g, F64, 1, 0, 3), 0, 1, 0.5, 0);
  TU_ASSERT_VALUES(g, smelt_linspace(g, F64, -10, 10, 5), 0, -10, -5, 0, 5, 10);
  smelt_node one = smelt_linspace(g, F32, -1, 1, 1);
  TU_ASSERT_SHAPE(g, one, 1, 1);
  TU_ASSERT_VALUES(g, one, 0, -1);
  smelt_node zero = smelt_linspace(g, F32, 0, 1, 0);
  TU_ASSERT_SHAPE(g, zero, 1, 0);
  /* the last value is stop, the first start */
  smelt_node l = smelt_linspace(g, F64, 0.1, 0.7, 7);
  double *v = TU_EVAL(g, l);
  ck_assert(v[0] == 0.1);
  ck_assert(fabs(v[6] - 0.7) < 1e-15);
  for (int i = 0; i < 7; i++) ck_assert(fabs(v[i] - (0.1 + 0.1 * i)) < 1e-15);
  free(v);
  TU_ASSERT_VALUES(g, smelt_linspace(g, I64, 0, 10, 6), 0, 0, 2, 4, 6, 8, 10);
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_linspace(g, F32, 0, 1, -1)));
  TU_ASSERT_ERROR(g, "linspace");
  smelt_graph_free(g);
}
END_TEST

START_TEST(eye_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node e = smelt_eye(g, F32, 3, 3);
  TU_ASSERT_SHAPE(g, e, 2, 3, 3);
  TU_ASSERT_VALUES(g, e, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1);
  smelt_node r = smelt_eye(g, I64, 2, 4);
  TU_ASSERT_SHAPE(g, r, 2, 2, 4);
  TU_ASSERT_VALUES(g, r, 0, 1, 0, 0, 0, 0, 1, 0, 0);
  smelt_node c = smelt_eye(g, BOOL, 3, 2);
  TU_ASSERT_VALUES(g, c, 0, 1, 0, 0, 1, 0, 0);
  TU_ASSERT_SHAPE(g, smelt_eye(g, F64, 0, 0), 2, 0, 0);
  TU_ASSERT_VALUES(g, smelt_eye(g, F64, 1, 1), 0, 1);
  smelt_graph_free(g);
}
END_TEST

START_TEST(rand_randn_basics) {
  smelt_graph *g = TU_GRAPH();
  smelt_node r = smelt_rand(g, F32, 2, TU_DIMS(100, 100), 7);
  smelt_node n = smelt_randn(g, F64, 1, TU_DIMS(10000), 7);
  TU_ASSERT_SHAPE(g, r, 2, 100, 100);
  double *rv = TU_EVAL(g, r), *nv = TU_EVAL(g, n);
  double s = 0, sn = 0, sn2 = 0;
  for (int i = 0; i < 10000; i++) {
    ck_assert(rv[i] >= 0 && rv[i] < 1);
    s += rv[i];
    sn += nv[i];
    sn2 += nv[i] * nv[i];
  }
  /* 5 standard errors: 0.0144 (uniform mean), 0.05 (normal mean), 0.035 (var) */
  ck_assert_msg(fabs(s / 1e4 - 0.5) < 0.0144, "mean %g", s / 1e4);
  ck_assert_msg(fabs(sn / 1e4) < 0.05, "normal mean %g", sn / 1e4);
  ck_assert_msg(fabs(sn2 / 1e4 - 1) < 0.07, "normal var %g", sn2 / 1e4);
  /* deterministic: a second graph gives the same numbers */
  smelt_graph *g2 = TU_GRAPH();
  double *rv2 = TU_EVAL(g2, smelt_rand(g2, F32, 2, TU_DIMS(100, 100), 7));
  ck_assert(memcmp(rv, rv2, 10000 * sizeof(double)) == 0);
  free(rv), free(rv2), free(nv);
  smelt_graph_free(g2);
  smelt_graph_free(g);
}
END_TEST

/* ============================================================ elementwise */

START_TEST(unary_specials_f64) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F64, 0, 1, -1, INFINITY, -INFINITY, NAN);
  TU_ASSERT_VALUES(g, smelt_neg(g, x), 0, 0, -1, 1, -INFINITY, INFINITY, NAN);
  TU_ASSERT_VALUES(g, smelt_abs(g, x), 0, 0, 1, 1, INFINITY, INFINITY, NAN);
  /* sign(NaN) = 0, as torch.sign (pytorch/pytorch#41245; NumPy gives NaN) */
  TU_ASSERT_VALUES(g, smelt_sign(g, x), 0, 0, 1, -1, 1, -1, 0);
  TU_ASSERT_VALUES(g, smelt_exp(g, x), 1e-12, 1, E1, 1 / E1, INFINITY, 0, NAN);
  TU_ASSERT_VALUES(g, smelt_relu(g, x), 0, 0, 1, 0, INFINITY, 0, NAN);
  TU_ASSERT_VALUES(g, smelt_tanh(g, x), 1e-12, 0, tanh(1.0), -tanh(1.0), 1, -1, NAN);
  TU_ASSERT_VALUES(g, smelt_sin(g, x), 1e-12, 0, sin(1.0), -sin(1.0), NAN, NAN, NAN);
  TU_ASSERT_VALUES(g, smelt_cos(g, x), 1e-12, 1, cos(1.0), cos(1.0), NAN, NAN, NAN);
  TU_ASSERT_VALUES(g, smelt_sigmoid(g, x), 1e-12, 0.5, 1 / (1 + 1 / E1), 1 / (1 + E1), 1, 0, NAN);
  TU_ASSERT_VALUES(g, smelt_reciprocal(g, x), 0, INFINITY, 1, -1, 0, 0, NAN);
  smelt_node y = TU_VEC(g, F64, 1, E1, 0, -1, INFINITY, 4);
  TU_ASSERT_VALUES(g, smelt_log(g, y), 1e-12, 0, 1, -INFINITY, NAN, INFINITY, log(4.0));
  TU_ASSERT_VALUES(g, smelt_sqrt(g, y), 1e-12, 1, sqrt(E1), 0, NAN, INFINITY, 2);
  TU_ASSERT_VALUES(g, smelt_rsqrt(g, y), 1e-12, 1, 1 / sqrt(E1), INFINITY, NAN, 0, 0.5);
  smelt_graph_free(g);
}
END_TEST

START_TEST(unary_f32_values) {
  /* f32 against C float math from the same inputs (tolerance 1e-6) */
  static const float in[] = {-3.5f, -1, -0.25f, 0.5f, 1, 2, 7.25f};
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_const_f32(g, 1, TU_DIMS(7), in);
  double we[7], ws[7], wc[7], wt[7], wsg[7], wab[7];
  for (int i = 0; i < 7; i++) {
    we[i] = expf(in[i]);
    ws[i] = sinf(in[i]);
    wc[i] = cosf(in[i]);
    wt[i] = tanhf(in[i]);
    wsg[i] = 1.0 / (1.0 + exp(-(double)in[i]));
    wab[i] = fabsf(in[i]);
  }
  TU_ASSERT_VALUES_A(g, smelt_exp(g, x), 1e-6, 7, we);
  TU_ASSERT_VALUES_A(g, smelt_sin(g, x), 1e-6, 7, ws);
  TU_ASSERT_VALUES_A(g, smelt_cos(g, x), 1e-6, 7, wc);
  TU_ASSERT_VALUES_A(g, smelt_tanh(g, x), 1e-6, 7, wt);
  TU_ASSERT_VALUES_A(g, smelt_sigmoid(g, x), 1e-6, 7, wsg);
  TU_ASSERT_VALUES_A(g, smelt_abs(g, x), 0, 7, wab);
  /* -0.0 keeps its value 0 for sign and relu */
  smelt_node z = TU_VEC(g, F32, -0.0, 0.0);
  TU_ASSERT_VALUES(g, smelt_sign(g, z), 0, 0, 0);
  TU_ASSERT_VALUES(g, smelt_relu(g, z), 0, 0, 0);
  smelt_graph_free(g);
}
END_TEST

START_TEST(sigmoid_extremes) {
  /* stable for large |x|: no NaN from inf/inf */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F64, 100, -100, 800, -800, 40);
  TU_ASSERT_VALUES(g, smelt_sigmoid(g, x), 1e-15, 1, exp(-100.0) / (1 + exp(-100.0)), 1,
                   exp(-800.0), 1 / (1 + exp(-40.0)));
  double *v = TU_EVAL(g, smelt_sigmoid(g, x));
  ck_assert(v[1] > 0 && fabs(v[1] - 3.720075976020836e-44) < 1e-56); /* not flushed to 0 */
  free(v);
  smelt_node xf = TU_VEC(g, F32, 100, -100, 1e30, -1e30);
  TU_ASSERT_VALUES(g, smelt_sigmoid(g, xf), 1e-6, 1, 0, 1, 0);
  smelt_graph_free(g);
}
END_TEST

START_TEST(exp_log_edge) {
  smelt_graph *g = TU_GRAPH();
  /* exp overflows to inf in f32 at 89, not in f64 */
  TU_ASSERT_VALUES(g, smelt_exp(g, TU_VEC(g, F32, 89, -104)), 0, INFINITY, 0);
  TU_ASSERT_VALUES(g, smelt_exp(g, TU_VEC(g, F64, 89)), 1e-12, exp(89.0));
  TU_ASSERT_VALUES(g, smelt_log(g, TU_VEC(g, F32, 0, -0.0, 1e-45)), 1e-5, -INFINITY, -INFINITY,
                   log((double)1e-45f));
  smelt_graph_free(g);
}
END_TEST

static double gelu_ref(double x) {
  return 0.5 * x * (1 + tanh(sqrt(2 / PI) * (x + 0.044715 * x * x * x)));
}

START_TEST(gelu_values) {
  static const double in[] = {-5, -3, -1, -0.5, 0, 0.5, 1, 3, 5, 20};
  smelt_graph *g = TU_GRAPH();
  double want[10];
  for (int i = 0; i < 10; i++) want[i] = gelu_ref(in[i]);
  /* hand check of one value: gelu(1) = 0.8411919906082768 */
  ck_assert(fabs(want[6] - 0.8411919906082768) < 1e-15);
  smelt_node x = tu_const_f64(g, 1, TU_DIMS(10), in);
  TU_ASSERT_VALUES_A(g, smelt_gelu(g, x), 1e-12, 10, want);
  smelt_node xf = tu_const_d(g, F32, 1, TU_DIMS(10), in);
  smelt_node r = smelt_gelu(g, xf);
  TU_ASSERT_DTYPE(g, r, F32);
  TU_ASSERT_VALUES_A(g, r, 1e-6, 10, want);
  TU_ASSERT_VALUES(g, smelt_gelu(g, TU_VEC(g, F64, NAN)), 0, NAN);
  smelt_graph_free(g);
}
END_TEST

START_TEST(stop_gradient_identity) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F32, 1, -2, NAN);
  smelt_node s = smelt_stop_gradient(g, x);
  TU_ASSERT_DTYPE(g, s, F32);
  TU_ASSERT_VALUES(g, s, 0, 1, -2, NAN);
  ck_assert_uint_eq(smelt_stop_gradient(g, s).index, s.index);
  TU_ASSERT_VALUES(g, smelt_stop_gradient(g, TU_VEC(g, BOOL, 1, 0)), 0, 1, 0);
  smelt_graph_free(g);
}
END_TEST

START_TEST(binary_arith_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = TU_VEC(g, F64, 1, -2, 0.5, INFINITY, NAN, 0);
  smelt_node b = TU_VEC(g, F64, 3, 4, -0.25, INFINITY, 1, 0);
  TU_ASSERT_VALUES(g, smelt_add(g, a, b), 0, 4, 2, 0.25, INFINITY, NAN, 0);
  TU_ASSERT_VALUES(g, smelt_sub(g, a, b), 0, -2, -6, 0.75, NAN, NAN, 0);
  TU_ASSERT_VALUES(g, smelt_mul(g, a, b), 0, 3, -8, -0.125, INFINITY, NAN, 0);
  TU_ASSERT_VALUES(g, smelt_div(g, a, b), 0, 1.0 / 3, -0.5, -2, NAN, NAN, NAN);
  /* integer arithmetic wraps around like PyTorch's int32 */
  smelt_node i = TU_VEC(g, I32, 2147483647.0, -2147483648.0, 7);
  smelt_node j = TU_VEC(g, I32, 1, 1, -3);
  TU_ASSERT_VALUES(g, smelt_add(g, i, j), 0, -2147483648.0, -2147483647.0, 4);
  TU_ASSERT_VALUES(g, smelt_sub(g, i, j), 0, 2147483646.0, 2147483647.0, 10);
  TU_ASSERT_VALUES(g, smelt_mul(g, i, j), 0, 2147483647.0, -2147483648.0, -21);
  smelt_graph_free(g);
}
END_TEST

START_TEST(pow_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = TU_VEC(g, F64, 2, 4, -8, 0, 0, -2, 1);
  smelt_node b = TU_VEC(g, F64, 3, 0.5, 1.0 / 3, 0, -1, 2, NAN);
  TU_ASSERT_VALUES(g, smelt_pow(g, a, b), 1e-12, 8, 2, NAN, 1, INFINITY, 4, 1);
  smelt_node i = smelt_pow(g, TU_VEC(g, I64, 3, -2, 0, 10), TU_VEC(g, I64, 4, 3, 0, 18));
  TU_ASSERT_DTYPE(g, i, I64);
  int64_t *iv = TU_RUN1(g, i);
  ck_assert(iv[0] == 81 && iv[1] == -8 && iv[2] == 1 && iv[3] == 1000000000000000000LL);
  free(iv);
  smelt_graph_free(g);
}
END_TEST

START_TEST(maximum_minimum_nan) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = TU_VEC(g, F32, 1, NAN, 3, NAN, -INFINITY, 2);
  smelt_node b = TU_VEC(g, F32, 2, 1, NAN, NAN, 0, 2);
  TU_ASSERT_VALUES(g, smelt_maximum(g, a, b), 0, 2, NAN, NAN, NAN, 0, 2);
  TU_ASSERT_VALUES(g, smelt_minimum(g, a, b), 0, 1, NAN, NAN, NAN, -INFINITY, 2);
  smelt_node i = TU_VEC(g, I64, -5, 7), j = TU_VEC(g, I64, 3, 7);
  TU_ASSERT_VALUES(g, smelt_maximum(g, i, j), 0, 3, 7);
  TU_ASSERT_VALUES(g, smelt_minimum(g, i, j), 0, -5, 7);
  smelt_graph_free(g);
}
END_TEST

START_TEST(comparisons_inf) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = TU_VEC(g, F64, -INFINITY, INFINITY, 1, -0.0);
  smelt_node b = TU_VEC(g, F64, -INFINITY, 1e308, 1, 0.0);
  TU_ASSERT_VALUES(g, smelt_eq(g, a, b), 0, 1, 0, 1, 1);
  TU_ASSERT_VALUES(g, smelt_gt(g, a, b), 0, 0, 1, 0, 0);
  TU_ASSERT_VALUES(g, smelt_le(g, a, b), 0, 1, 0, 1, 1);
  smelt_graph_free(g);
}
END_TEST

START_TEST(where_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node c = TU_VEC(g, BOOL, 1, 0, 1, 0);
  smelt_node a = TU_VEC(g, F32, 1, 2, 3, 4);
  smelt_node b = TU_VEC(g, F32, NAN, -2, INFINITY, -4);
  /* the unselected NaN / inf do not leak */
  TU_ASSERT_VALUES(g, smelt_where(g, c, a, b), 0, 1, -2, 3, -4);
  /* rank 0 everywhere */
  smelt_node r = smelt_where(g, smelt_const(g, BOOL, 0), smelt_scalar(g, 1.0), smelt_scalar(g, 2.0));
  TU_ASSERT_SHAPE(g, r, 0);
  TU_ASSERT_VALUES(g, r, 0, 2);
  /* size 0 */
  smelt_node e = smelt_where(g, smelt_zeros(g, BOOL, 1, TU_DIMS(0)), smelt_scalar(g, 1.0),
                             smelt_zeros(g, F32, 2, TU_DIMS(3, 1)));
  TU_ASSERT_SHAPE(g, e, 2, 3, 0);
  smelt_graph_free(g);
}
END_TEST

START_TEST(clamp_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F32, -2, 0.5, 3, NAN, INFINITY, -INFINITY);
  smelt_node c = smelt_clamp(g, x, 0, 1);
  TU_ASSERT_DTYPE(g, c, F32);
  TU_ASSERT_VALUES(g, c, 0, 0, 0.5, 1, NAN, 1, 0);
  /* lo > hi gives hi everywhere (torch.clamp) */
  TU_ASSERT_VALUES(g, smelt_clamp(g, TU_VEC(g, F64, -1, 1.5, 5), 2, 1), 0, 1, 1, 1);
  /* infinite bounds: identity */
  TU_ASSERT_VALUES(g, smelt_clamp(g, x, -INFINITY, INFINITY), 0, -2, 0.5, 3, NAN, INFINITY,
                   -INFINITY);
  /* integer tensors with integral bounds stay integer */
  smelt_node i = smelt_clamp(g, TU_VEC(g, I32, -5, 3, 10), 0, 5);
  TU_ASSERT_DTYPE(g, i, I32);
  TU_ASSERT_VALUES(g, i, 0, 0, 3, 5);
  /* a fractional bound on an integer tensor gives float (result_type) */
  smelt_node fi = smelt_clamp(g, TU_VEC(g, I64, -5, 3), 0.5, 2.5);
  TU_ASSERT_DTYPE(g, fi, F32);
  TU_ASSERT_VALUES(g, fi, 0, 0.5, 2.5);
  smelt_graph_free(g);

  /* a NaN bound gives NaN everywhere, as PyTorch */
  g = TU_GRAPH();
  smelt_node nb = smelt_clamp(g, TU_VEC(g, F32, 1, -3), NAN, 1);
  TU_ASSERT_OK(g);
  double *nv = TU_EVAL(g, nb);
  ck_assert(isnan(nv[0]) && isnan(nv[1]));
  free(nv);
  smelt_graph_free(g);
}
END_TEST

/* ============================================================ reductions */

/* Reference reduction over the axes flagged in `red` of a [2,3,4] f64
 * tensor; out in row-major order of the kept axes. */
enum { R_SUM, R_PROD, R_MAX, R_MIN, R_MEAN, R_COUNT };
static const char *rnames[R_COUNT] = {"sum", "prod", "max", "min", "mean"};

static void ref_reduce(const double *x, const bool red[3], int op, double *out, int64_t *nout) {
  static const int D[3] = {2, 3, 4};
  int od[3];
  for (int k = 0; k < 3; k++) od[k] = red[k] ? 1 : D[k];
  int64_t n = od[0] * od[1] * od[2];
  for (int64_t o = 0; o < n; o++) {
    int oi = (int)(o / (od[1] * od[2])), oj = (int)(o / od[2] % od[1]), ok = (int)(o % od[2]);
    double acc = op == R_PROD ? 1 : op == R_MAX ? -INFINITY : op == R_MIN ? INFINITY : 0;
    int cnt = 0;
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 3; j++)
        for (int k = 0; k < 4; k++) {
          if ((!red[0] && i != oi) || (!red[1] && j != oj) || (!red[2] && k != ok)) continue;
          double v = x[(i * 3 + j) * 4 + k];
          cnt++;
          switch (op) {
          case R_SUM:
          case R_MEAN: acc += v; break;
          case R_PROD: acc *= v; break;
          case R_MAX: acc = v > acc ? v : acc; break;
          default: acc = v < acc ? v : acc; break;
          }
        }
    out[o] = op == R_MEAN ? acc / cnt : acc;
  }
  *nout = n;
}

/* Axis lists to test, with their normalized flags. */
static const struct {
  int naxes;
  int axes[3];
} axis_sets[] = {
    {0, {0}},      {1, {0}},      {1, {1}},        {1, {2}},     {1, {-1}},     {1, {-3}},
    {2, {0, 2}},   {2, {-1, -3}}, {2, {2, 1}},     {3, {0, 1, 2}}, {3, {2, -2, 0}}, {2, {1, -1}},
};
#define NSETS ((int)(sizeof axis_sets / sizeof axis_sets[0]))

START_TEST(reductions_table) {
  int set = _i % NSETS, op = _i / NSETS % R_COUNT;
  bool keepdim = _i / NSETS / R_COUNT;
  double x[24];
  for (int i = 0; i < 24; i++) x[i] = (double)((i * 37) % 11) - 5 + 0.5 * (i % 3);
  bool red[3] = {false, false, false};
  if (axis_sets[set].naxes == 0) red[0] = red[1] = red[2] = true;
  for (int k = 0; k < axis_sets[set].naxes; k++) red[(axis_sets[set].axes[k] + 3) % 3] = true;
  double want[24];
  int64_t nw;
  ref_reduce(x, red, op, want, &nw);

  smelt_graph *g = TU_GRAPH();
  smelt_node in = tu_const_f64(g, 3, TU_DIMS(2, 3, 4), x);
  smelt_node (*fns[R_COUNT])(smelt_graph *, smelt_node, int, const int *, bool) = {
      smelt_sum, smelt_prod, smelt_max, smelt_min, smelt_mean};
  smelt_node r = fns[op](g, in, axis_sets[set].naxes, axis_sets[set].axes, keepdim);
  ck_assert_msg(smelt_node_valid(r), "%s set %d: %s", rnames[op], set, smelt_graph_error(g));
  /* shape: reduced axes dropped or kept as 1 */
  int64_t ws[3];
  int wr = 0;
  static const int64_t D[3] = {2, 3, 4};
  for (int k = 0; k < 3; k++)
    if (!red[k])
      ws[wr++] = D[k];
    else if (keepdim)
      ws[wr++] = 1;
  char s1[64], s2[64];
  ck_assert_msg(tu_shape_eq(g, r, wr, ws), "%s set %d keepdim %d: shape %s, want %s", rnames[op],
                set, keepdim,
                tu_shape_str(smelt_node_rank(g, r), smelt_node_shape(g, r, NULL), s1, sizeof s1),
                tu_shape_str(wr, ws, s2, sizeof s2));
  TU_ASSERT_DTYPE(g, r, F64);
  TU_ASSERT_VALUES_A(g, r, 1e-12, nw, want);
  smelt_graph_free(g);
}
END_TEST

START_TEST(reduction_errors) {
  int ax[2];
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F32, 2, 2, 3);
  ax[0] = 2;
  ck_assert(!smelt_node_valid(smelt_sum(g, x, 1, ax, false)));
  TU_ASSERT_ERROR(g, "sum", "axis 2");
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 2, 3);
  ax[0] = 1, ax[1] = -1; /* the same axis twice */
  ck_assert(!smelt_node_valid(smelt_sum(g, x, 2, ax, false)));
  TU_ASSERT_ERROR(g, "sum", "repeat");
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 2, 3);
  ck_assert(!smelt_node_valid(smelt_argmax(g, x, 2, false)));
  TU_ASSERT_ERROR(g, "argmax", "2");
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 2, 3);
  ck_assert(!smelt_node_valid(smelt_sum(g, x, -1, ax, false)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 2, 3);
  ck_assert(!smelt_node_valid(smelt_sum(g, x, 1, NULL, false)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);

  /* the message names the op the caller used */
  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 2, 3);
  ax[0] = -3;
  ck_assert(!smelt_node_valid(smelt_mean(g, x, 1, ax, false)));
  TU_ASSERT_ERROR(g, "mean", "-3");
  smelt_graph_free(g);
}
END_TEST

START_TEST(reductions_rank0_and_size1) {
  smelt_graph *g = TU_GRAPH();
  smelt_node s = smelt_const(g, F64, 2.5);
  /* reducing a scalar over all (no) axes gives the scalar */
  TU_ASSERT_SHAPE(g, smelt_sum(g, s, 0, NULL, false), 0);
  TU_ASSERT_VALUES(g, smelt_sum(g, s, 0, NULL, false), 0, 2.5);
  TU_ASSERT_VALUES(g, smelt_max(g, s, 0, NULL, true), 0, 2.5);
  TU_ASSERT_VALUES(g, smelt_mean(g, s, 0, NULL, false), 0, 2.5);
  TU_ASSERT_VALUES(g, smelt_prod(g, s, 0, NULL, false), 0, 2.5);
  /* a size-1 axis */
  smelt_node x = TU_ARR(g, F32, 3, TU_DIMS(2, 1, 2), 1, 2, 3, 4);
  int ax1[1] = {1}, axm2[1] = {-2};
  smelt_node r = smelt_sum(g, x, 1, ax1, false);
  TU_ASSERT_SHAPE(g, r, 2, 2, 2);
  TU_ASSERT_VALUES(g, r, 0, 1, 2, 3, 4);
  r = smelt_max(g, x, 1, axm2, true);
  TU_ASSERT_SHAPE(g, r, 3, 2, 1, 2);
  TU_ASSERT_VALUES(g, r, 0, 1, 2, 3, 4);
  smelt_graph_free(g);
}
END_TEST

START_TEST(reductions_empty) {
  smelt_graph *g = TU_GRAPH();
  smelt_node e = smelt_zeros(g, F32, 1, TU_DIMS(0));
  /* sum of empty = 0, prod of empty = 1, mean of empty = NaN */
  TU_ASSERT_VALUES(g, smelt_sum(g, e, 0, NULL, false), 0, 0);
  TU_ASSERT_VALUES(g, smelt_prod(g, e, 0, NULL, false), 0, 1);
  TU_ASSERT_VALUES(g, smelt_mean(g, e, 0, NULL, false), 0, NAN);
  smelt_node m = smelt_zeros(g, I32, 2, TU_DIMS(2, 0));
  int ax1[1] = {1}, ax0[1] = {0};
  smelt_node s = smelt_sum(g, m, 1, ax1, false);
  TU_ASSERT_SHAPE(g, s, 1, 2);
  TU_ASSERT_DTYPE(g, s, I64);
  TU_ASSERT_VALUES(g, s, 0, 0, 0);
  TU_ASSERT_VALUES(g, smelt_prod(g, m, 1, ax1, false), 0, 1, 1);
  /* reducing a non-empty axis of an empty tensor: an empty result */
  smelt_node mx = smelt_max(g, m, 1, ax0, false);
  TU_ASSERT_SHAPE(g, mx, 1, 0);
  smelt_graph_free(g);

  /* max / min / argmax over an empty axis: build errors */
  for (int k = 0; k < 4; k++) {
    g = TU_GRAPH();
    smelt_node z = smelt_zeros(g, F32, 2, TU_DIMS(3, 0));
    int axis[1] = {1};
    smelt_node r = k == 0   ? smelt_max(g, z, 1, axis, false)
                   : k == 1 ? smelt_min(g, z, 0, NULL, false)
                   : k == 2 ? smelt_argmax(g, z, -1, false)
                            : smelt_argmin(g, z, 1, true);
    ck_assert_msg(!smelt_node_valid(r), "reduction %d of an empty axis should fail", k);
    ck_assert_ptr_nonnull(smelt_graph_error(g));
    TU_ASSERT_ERROR(g, "[3,0]");
    smelt_graph_free(g);
  }
}
END_TEST

START_TEST(max_min_nan) {
  /* max and min propagate NaN (torch.max) */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_ARR(g, F32, 2, TU_DIMS(2, 3), 1, NAN, 3, -1, -2, -3);
  int ax1[1] = {1};
  TU_ASSERT_VALUES(g, smelt_max(g, x, 1, ax1, false), 0, NAN, -1);
  TU_ASSERT_VALUES(g, smelt_min(g, x, 1, ax1, false), 0, NAN, -3);
  TU_ASSERT_VALUES(g, smelt_max(g, x, 0, NULL, false), 0, NAN);
  TU_ASSERT_VALUES(g, smelt_sum(g, x, 1, ax1, false), 0, NAN, -6);
  /* infinities are ordinary values */
  smelt_node y = TU_VEC(g, F64, -INFINITY, -INFINITY);
  TU_ASSERT_VALUES(g, smelt_max(g, y, 0, NULL, false), 0, -INFINITY);
  TU_ASSERT_VALUES(g, smelt_sum(g, TU_VEC(g, F64, INFINITY, -INFINITY), 0, NULL, false), 0, NAN);
  smelt_graph_free(g);
}
END_TEST

START_TEST(argmax_argmin_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_ARR(g, F32, 2, TU_DIMS(3, 4), 1, 3, 3, 2, /* tie: first */
                        -1, -5, -5, 0,                          /* argmin tie */
                        NAN, 4, NAN, 9);                        /* NaN wins */
  smelt_node am = smelt_argmax(g, x, 1, false);
  TU_ASSERT_SHAPE(g, am, 1, 3);
  TU_ASSERT_DTYPE(g, am, I64);
  TU_ASSERT_VALUES(g, am, 0, 1, 3, 0);
  TU_ASSERT_VALUES(g, smelt_argmin(g, x, -1, false), 0, 0, 1, 0);
  smelt_node k = smelt_argmax(g, x, -1, true);
  TU_ASSERT_SHAPE(g, k, 2, 3, 1);
  /* along axis 0: column-wise, NaN counts as the max and the min */
  TU_ASSERT_VALUES(g, smelt_argmax(g, x, 0, false), 0, 2, 2, 2, 2);
  TU_ASSERT_VALUES(g, smelt_argmin(g, x, 0, false), 0, 2, 1, 2, 1);
  /* -inf only: the first */
  TU_ASSERT_VALUES(g, smelt_argmax(g, TU_VEC(g, F64, -INFINITY, -INFINITY), 0, false), 0, 0);
  /* integers and bools */
  TU_ASSERT_VALUES(g, smelt_argmax(g, TU_VEC(g, I32, -3, 7, 7), 0, false), 0, 1);
  TU_ASSERT_VALUES(g, smelt_argmax(g, TU_VEC(g, BOOL, 0, 1, 1), 0, false), 0, 1);
  /* size-1 axis */
  TU_ASSERT_VALUES(g, smelt_argmin(g, TU_ARR(g, F32, 2, TU_DIMS(2, 1), 5, 6), 1, false), 0, 0, 0);
  /* rank 0: the index 0, as torch.tensor(5.).argmax(0) */
  smelt_node s = smelt_argmax(g, smelt_const(g, F32, 5), 0, false);
  TU_ASSERT_SHAPE(g, s, 0);
  TU_ASSERT_VALUES(g, s, 0, 0);
  smelt_graph_free(g);
}
END_TEST

START_TEST(max_dim_pairs) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_ARR(g, F64, 2, TU_DIMS(2, 3), 4, 9, 9, -1, -7, -7);
  smelt_node v, i, vn, in;
  smelt_node ret = smelt_max_dim(g, x, -1, false, &v, &i);
  ck_assert_uint_eq(ret.index, v.index);
  TU_ASSERT_VALUES(g, v, 0, 9, -1);
  TU_ASSERT_VALUES(g, i, 0, 1, 0);
  smelt_min_dim(g, x, 1, true, &vn, &in);
  TU_ASSERT_SHAPE(g, vn, 2, 2, 1);
  TU_ASSERT_SHAPE(g, in, 2, 2, 1);
  TU_ASSERT_VALUES(g, vn, 0, 4, -7);
  TU_ASSERT_VALUES(g, in, 0, 0, 1);
  /* either output pointer may be NULL */
  smelt_node only = smelt_max_dim(g, x, 0, false, NULL, NULL);
  TU_ASSERT_VALUES(g, only, 0, 4, 9, 9);
  smelt_node idx;
  smelt_min_dim(g, x, 0, false, NULL, &idx);
  TU_ASSERT_VALUES(g, idx, 0, 1, 1, 1);
  smelt_graph_free(g);
}
END_TEST

START_TEST(var_std_corrections) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F64, 1, 2, 3, 4); /* mean 2.5, sum of squares 5 */
  TU_ASSERT_VALUES(g, smelt_var(g, x, 0, NULL, 0, false), 1e-15, 1.25);
  TU_ASSERT_VALUES(g, smelt_var(g, x, 0, NULL, 1, false), 1e-15, 5.0 / 3);
  TU_ASSERT_VALUES(g, smelt_var(g, x, 0, NULL, 2, false), 1e-15, 2.5);
  TU_ASSERT_VALUES(g, smelt_std(g, x, 0, NULL, 0, false), 1e-15, sqrt(1.25));
  TU_ASSERT_VALUES(g, smelt_std(g, x, 0, NULL, 1, false), 1e-15, sqrt(5.0 / 3));
  TU_ASSERT_VALUES(g, smelt_std(g, x, 0, NULL, 2, false), 1e-15, sqrt(2.5));
  /* over an axis with keepdim: rows [1,2,3] and [2,4,6] */
  smelt_node m = TU_ARR(g, F32, 2, TU_DIMS(2, 3), 1, 2, 3, 2, 4, 6);
  int axm1[1] = {-1}, ax0[1] = {0};
  smelt_node v = smelt_var(g, m, 1, axm1, 1, true);
  TU_ASSERT_SHAPE(g, v, 2, 2, 1);
  TU_ASSERT_VALUES(g, v, 1e-6, 1, 4);
  smelt_node s0 = smelt_std(g, m, 1, ax0, 0, false);
  TU_ASSERT_SHAPE(g, s0, 1, 3);
  TU_ASSERT_VALUES(g, s0, 1e-6, 0.5, 1, 1.5);
  /* N - correction <= 0: 0/0 = NaN for constant data, x/0 = inf otherwise */
  smelt_node one = TU_VEC(g, F64, 5);
  TU_ASSERT_VALUES(g, smelt_var(g, one, 0, NULL, 1, false), 0, NAN);
  TU_ASSERT_VALUES(g, smelt_std(g, one, 0, NULL, 1, false), 0, NAN);
  TU_ASSERT_VALUES(g, smelt_var(g, one, 0, NULL, 0, false), 0, 0);
  smelt_node two = TU_VEC(g, F64, 1, 2);
  TU_ASSERT_VALUES(g, smelt_var(g, two, 0, NULL, 2, false), 0, INFINITY);
  TU_ASSERT_VALUES(g, smelt_var(g, two, 0, NULL, 3, false), 0, INFINITY);
  TU_ASSERT_VALUES(g, smelt_std(g, two, 0, NULL, 2, false), 0, INFINITY);
  TU_ASSERT_VALUES(g, smelt_var(g, TU_VEC(g, F64, 3, 3), 0, NULL, 2, false), 0, NAN);
  /* numerically stable: a large offset does not cancel the variance */
  smelt_node big = TU_VEC(g, F64, 1e9 + 1, 1e9 + 2, 1e9 + 3, 1e9 + 4);
  TU_ASSERT_VALUES(g, smelt_var(g, big, 0, NULL, 1, false), 1e-9, 5.0 / 3);
  /* NaN propagates */
  TU_ASSERT_VALUES(g, smelt_var(g, TU_VEC(g, F32, 1, NAN), 0, NULL, 1, false), 0, NAN);
  smelt_graph_free(g);
}
END_TEST

START_TEST(logsumexp_values) {
  smelt_graph *g = TU_GRAPH();
  TU_ASSERT_VALUES(g, smelt_logsumexp(g, TU_VEC(g, F64, 1, 2, 3), 0, NULL, false), 1e-14,
                   3.4076059644443806);
  /* stable for large values (naive exp overflows) */
  TU_ASSERT_VALUES(g, smelt_logsumexp(g, TU_VEC(g, F32, 1000, 1000), 0, NULL, false), 1e-6,
                   1000 + log(2.0));
  TU_ASSERT_VALUES(g, smelt_logsumexp(g, TU_VEC(g, F64, -1000, -1000), 0, NULL, false), 1e-12,
                   -1000 + log(2.0));
  TU_ASSERT_VALUES(g, smelt_logsumexp(g, TU_VEC(g, F64, 800, 0), 0, NULL, false), 1e-12, 800);
  /* all -inf: -inf (not NaN); +inf: +inf; NaN: NaN */
  TU_ASSERT_VALUES(g, smelt_logsumexp(g, TU_VEC(g, F64, -INFINITY, -INFINITY), 0, NULL, false), 0,
                   -INFINITY);
  TU_ASSERT_VALUES(g, smelt_logsumexp(g, TU_VEC(g, F64, INFINITY, 1), 0, NULL, false), 0, INFINITY);
  TU_ASSERT_VALUES(g, smelt_logsumexp(g, TU_VEC(g, F64, -INFINITY, 0), 0, NULL, false), 1e-15, 0);
  TU_ASSERT_VALUES(g, smelt_logsumexp(g, TU_VEC(g, F64, NAN, 1), 0, NULL, false), 0, NAN);
  /* empty: log(0) = -inf */
  TU_ASSERT_VALUES(g, smelt_logsumexp(g, smelt_zeros(g, F32, 1, TU_DIMS(0)), 0, NULL, false), 0,
                   -INFINITY);
  /* per row with keepdim, mixed rows */
  smelt_node m = TU_ARR(g, F64, 2, TU_DIMS(2, 2), 0, 0, -INFINITY, -INFINITY);
  int ax1[1] = {1};
  smelt_node r = smelt_logsumexp(g, m, 1, ax1, true);
  TU_ASSERT_SHAPE(g, r, 2, 2, 1);
  TU_ASSERT_VALUES(g, r, 1e-15, log(2.0), -INFINITY);
  smelt_graph_free(g);
}
END_TEST

/* ================================================================== nn */

START_TEST(softmax_values) {
  smelt_graph *g = TU_GRAPH();
  static const double want[3] = {0.09003057317038046, 0.24472847105479767, 0.6652409557748219};
  TU_ASSERT_VALUES_A(g, smelt_softmax(g, TU_VEC(g, F64, 1, 2, 3), 0), 1e-15, 3, want);
  /* shift invariance / stability: large logits */
  TU_ASSERT_VALUES_A(g, smelt_softmax(g, TU_VEC(g, F32, 1001, 1002, 1003), -1), 1e-6, 3, want);
  TU_ASSERT_VALUES_A(g, smelt_softmax(g, TU_VEC(g, F64, -1e4 + 1, -1e4 + 2, -1e4 + 3), 0), 1e-12,
                     3, want);
  /* -inf entries get 0 */
  TU_ASSERT_VALUES(g, smelt_softmax(g, TU_VEC(g, F64, -INFINITY, 0, 0), 0), 1e-15, 0, 0.5, 0.5);
  /* along axis 0 of a matrix: columns */
  smelt_node m = TU_ARR(g, F64, 2, TU_DIMS(2, 2), 0, 1, 0, 1);
  TU_ASSERT_VALUES(g, smelt_softmax(g, m, 0), 1e-15, 0.5, 0.5, 0.5, 0.5);
  TU_ASSERT_VALUES(g, smelt_softmax(g, m, 1), 1e-15, 1 / (1 + E1), E1 / (1 + E1), 1 / (1 + E1),
                   E1 / (1 + E1));
  /* size-1 axis: all ones */
  TU_ASSERT_VALUES(g, smelt_softmax(g, TU_ARR(g, F32, 2, TU_DIMS(2, 1), 7, -7), 1), 0, 1, 1);
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_softmax(g, TU_VEC(g, F32, 1), 1)));
  TU_ASSERT_ERROR(g, "1");
  smelt_graph_free(g);
}
END_TEST

START_TEST(log_softmax_values) {
  smelt_graph *g = TU_GRAPH();
  const double lse = 3.4076059644443806;
  TU_ASSERT_VALUES(g, smelt_log_softmax(g, TU_VEC(g, F64, 1, 2, 3), 0), 1e-14, 1 - lse, 2 - lse,
                   3 - lse);
  /* large logit gaps: exact, not log(0) */
  TU_ASSERT_VALUES(g, smelt_log_softmax(g, TU_VEC(g, F64, 1000, 0), 0), 1e-12, 0, -1000);
  TU_ASSERT_VALUES(g, smelt_log_softmax(g, TU_VEC(g, F32, 1000, 0), 0), 1e-4, 0, -1000);
  TU_ASSERT_VALUES(g, smelt_log_softmax(g, TU_VEC(g, F64, -INFINITY, 0), 0), 0, -INFINITY, 0);
  smelt_node m = TU_ARR(g, F32, 2, TU_DIMS(2, 2), 0, 0, 5, 5);
  TU_ASSERT_VALUES(g, smelt_log_softmax(g, m, -1), 1e-6, -log(2.0), -log(2.0), -log(2.0),
                   -log(2.0));
  smelt_graph_free(g);
}
END_TEST

START_TEST(cross_entropy_values) {
  smelt_graph *g = TU_GRAPH();
  /* rows: -(3 - lse(1,2,3)) = 0.40760596..., -(1 - (1 + log 3)) = log 3 */
  smelt_node logits = TU_ARR(g, F32, 2, TU_DIMS(2, 3), 1, 2, 3, 1, 1, 1);
  smelt_node labels = TU_VEC(g, I64, 2, 0);
  smelt_node l = smelt_cross_entropy(g, logits, labels);
  TU_ASSERT_SHAPE(g, l, 0);
  TU_ASSERT_DTYPE(g, l, F32);
  TU_ASSERT_VALUES(g, l, 1e-6, (0.4076059644443806 + log(3.0)) / 2);
  /* i32 labels, f64 logits, one sample [C] with a label [] */
  smelt_node l1 = smelt_cross_entropy(g, TU_VEC(g, F64, 1, 2, 3), smelt_const(g, I32, 0));
  TU_ASSERT_VALUES(g, l1, 1e-14, 3.4076059644443806 - 1);
  /* confident and right: ~0; confident and wrong: ~the gap */
  smelt_node l2 = smelt_cross_entropy(g, TU_ARR(g, F64, 2, TU_DIMS(1, 2), 1000, 0),
                                      TU_VEC(g, I64, 1));
  TU_ASSERT_VALUES(g, l2, 1e-9, 1000);
  smelt_graph_free(g);

  /* label out of range: a run-time error */
  g = TU_GRAPH();
  smelt_node bad = smelt_cross_entropy(g, smelt_zeros(g, F32, 2, TU_DIMS(2, 3)), TU_VEC(g, I64, 0, 3));
  TU_ASSERT_OK(g);
  TU_ASSERT_RUN_ERROR(g, bad, 0, NULL, "out of range");
  smelt_graph_free(g);

  /* shape mismatch */
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(
      smelt_cross_entropy(g, smelt_zeros(g, F32, 2, TU_DIMS(2, 3)), TU_VEC(g, I64, 0, 1, 2))));
  TU_ASSERT_ERROR(g, "cross_entropy", "[2,3]", "[3]");
  smelt_graph_free(g);
}
END_TEST

START_TEST(mse_loss_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node l = smelt_mse_loss(g, TU_VEC(g, F32, 1, 2, 3), TU_VEC(g, F32, 1, 1, 1));
  TU_ASSERT_SHAPE(g, l, 0);
  TU_ASSERT_VALUES(g, l, 1e-7, 5.0 / 3);
  /* broadcast: [2,2] against [2] */
  smelt_node l2 = smelt_mse_loss(g, TU_ARR(g, F64, 2, TU_DIMS(2, 2), 1, 2, 3, 4), TU_VEC(g, F64, 1, 2));
  TU_ASSERT_VALUES(g, l2, 1e-15, (0 + 0 + 4 + 4) / 4.0);
  TU_ASSERT_VALUES(g, smelt_mse_loss(g, TU_VEC(g, F64, INFINITY), TU_VEC(g, F64, 0)), 0, INFINITY);
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_mse_loss(g, TU_VEC(g, F32, 1, 2), TU_VEC(g, F32, 1, 2, 3))));
  TU_ASSERT_ERROR(g, "[2]", "[3]");
  smelt_graph_free(g);
}
END_TEST

START_TEST(dropout_identity_when_not_training) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F32, 2, 4, 5);
  ck_assert_uint_eq(smelt_dropout(g, x, 0.5, 1, false).index, x.index);
  ck_assert_uint_eq(smelt_dropout(g, x, 0.0, 1, true).index, x.index);
  TU_ASSERT_OK(g);
  smelt_graph_free(g);
}
END_TEST

START_TEST(dropout_training) {
  const int64_t n = 100000;
  const double p = 0.3;
  smelt_graph *g = TU_GRAPH();
  smelt_node x = smelt_ones(g, F32, 1, &n);
  smelt_node d = smelt_dropout(g, x, p, 42, true);
  smelt_node d2 = smelt_dropout(g, x, p, 42, true);
  smelt_node d3 = smelt_dropout(g, x, p, 43, true);
  smelt_node u = smelt_rand(g, F32, 1, &n, 42);
  TU_ASSERT_DTYPE(g, d, F32);
  TU_ASSERT_SHAPE(g, d, 1, 100000);
  ck_assert_uint_eq(d.index, d2.index); /* hash-consed: same seed, same node */
  smelt_node outs[3] = {d, d3, u};
  void *res[3];
  char *err = tu_run(g, 3, outs, res, 0, NULL);
  ck_assert_msg(!err, "%s", err);
  const float *v = res[0], *v3 = res[1], *uv = res[2];
  int64_t zeros = 0, diff = 0, below = 0, mask_below = 0;
  const float scale = (float)(1.0 / (1.0 - p));
  for (int64_t i = 0; i < n; i++) {
    if (v[i] == 0) {
      zeros++;
    } else {
      ck_assert_msg(fabsf(v[i] - scale) <= 1e-6f * scale, "kept value %g, want %g", v[i], scale);
    }
    diff += (v[i] == 0) != (v3[i] == 0);
    below += uv[i] < p;
    mask_below += (v[i] == 0) == (uv[i] < p);
  }
  /* fraction zeroed: p within 5 standard errors (0.00145 each) */
  ck_assert_msg(fabs(zeros / (double)n - p) < 0.0075, "zeroed %.4f", zeros / (double)n);
  /* another seed gives another mask (2p(1-p) = 42% disagree) */
  ck_assert_msg(diff > n / 4, "seeds 42 and 43 differ in %lld places", (long long)diff);
  /* the mask comes from smelt_rand with the seed: zero exactly where u < p */
  ck_assert_msg(mask_below == n, "mask disagrees with rand(seed) < p in %lld places",
                (long long)(n - mask_below));
  (void)below;
  for (int k = 0; k < 3; k++) free(res[k]);
  smelt_graph_free(g);

  /* deterministic across graphs, and values scale the input */
  g = TU_GRAPH();
  smelt_node y = smelt_dropout(g, TU_VEC(g, F64, 1, 2, 3, 4, 5, 6, 7, 8), 0.5, 9, true);
  double *a = TU_EVAL(g, y);
  smelt_graph *g2 = TU_GRAPH();
  double *b = TU_EVAL(g2, smelt_dropout(g2, TU_VEC(g2, F64, 1, 2, 3, 4, 5, 6, 7, 8), 0.5, 9, true));
  for (int i = 0; i < 8; i++) {
    ck_assert(a[i] == b[i]);
    ck_assert(a[i] == 0 || a[i] == 2.0 * (i + 1));
  }
  free(a), free(b);
  smelt_graph_free(g2);
  smelt_graph_free(g);
}
END_TEST

START_TEST(dropout_bad_p) {
  static const double bad[] = {-0.1, 1.5, NAN, -INFINITY};
  for (int k = 0; k < 4; k++) {
    smelt_graph *g = TU_GRAPH();
    ck_assert_msg(!smelt_node_valid(smelt_dropout(g, TU_VEC(g, F32, 1, 2), bad[k], 1, true)),
                  "dropout p = %g should fail (0 <= p <= 1)", bad[k]);
    TU_ASSERT_ERROR(g, "dropout");
    smelt_graph_free(g);
  }
  /* p = 1 gives zeros (PyTorch) */
  smelt_graph *g = TU_GRAPH();
  smelt_node z = smelt_dropout(g, TU_VEC(g, F32, 1, -2, 3e30), 1.0, 1, true);
  TU_ASSERT_DTYPE(g, z, F32);
  TU_ASSERT_VALUES(g, z, 0, 0, 0, 0);
  smelt_graph_free(g);
}
END_TEST

/* ================================================================ views */

START_TEST(reshape_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = smelt_arange(g, F32, 0, 24, 1);
  smelt_node r = smelt_reshape(g, a, 3, TU_DIMS(2, 3, 4));
  TU_ASSERT_SHAPE(g, r, 3, 2, 3, 4);
  smelt_node r2 = smelt_reshape(g, r, 2, TU_DIMS(4, -1));
  TU_ASSERT_SHAPE(g, r2, 2, 4, 6);
  smelt_node r3 = smelt_reshape(g, r, 3, TU_DIMS(-1, 2, 3));
  TU_ASSERT_SHAPE(g, r3, 3, 4, 2, 3);
  smelt_node r4 = smelt_reshape(g, r, 1, TU_DIMS(-1));
  TU_ASSERT_SHAPE(g, r4, 1, 24);
  double want[24];
  for (int i = 0; i < 24; i++) want[i] = i;
  TU_ASSERT_VALUES_A(g, r2, 0, 24, want);
  TU_ASSERT_VALUES_A(g, r3, 0, 24, want);
  /* scalar <-> [1,1,1] */
  smelt_node s = smelt_reshape(g, smelt_const(g, F64, 3), 3, TU_DIMS(1, 1, 1));
  TU_ASSERT_SHAPE(g, s, 3, 1, 1, 1);
  smelt_node s0 = smelt_reshape(g, s, 0, NULL);
  TU_ASSERT_SHAPE(g, s0, 0);
  TU_ASSERT_VALUES(g, s0, 0, 3);
  TU_ASSERT_SHAPE(g, smelt_reshape(g, s, 1, TU_DIMS(-1)), 1, 1);
  /* size 0 */
  smelt_node e = smelt_zeros(g, F32, 2, TU_DIMS(0, 3));
  TU_ASSERT_SHAPE(g, smelt_reshape(g, e, 3, TU_DIMS(3, 0, 5)), 3, 3, 0, 5);
  TU_ASSERT_SHAPE(g, smelt_reshape(g, e, 2, TU_DIMS(-1, 3)), 2, 0, 3);
  /* reshape to the same shape: the node itself */
  ck_assert_uint_eq(smelt_reshape(g, r, 3, TU_DIMS(2, 3, 4)).index, r.index);
  /* a view of a view of a permuted tensor keeps row-major order of the view */
  smelt_node t = smelt_transpose(g, smelt_reshape(g, a, 2, TU_DIMS(4, 6)), 0, 1); /* [6,4] */
  smelt_node tf = smelt_reshape(g, t, 1, TU_DIMS(24));
  double wt[24];
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 4; j++) wt[i * 4 + j] = j * 6 + i;
  TU_ASSERT_VALUES_A(g, tf, 0, 24, wt);
  smelt_graph_free(g);
}
END_TEST

START_TEST(reshape_errors) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F32, 3, 2, 3, 4);
  ck_assert(!smelt_node_valid(smelt_reshape(g, x, 2, TU_DIMS(5, 5))));
  TU_ASSERT_ERROR(g, "reshape", "[2,3,4]", "[5,5]");
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 3, 2, 3, 4);
  ck_assert(!smelt_node_valid(smelt_reshape(g, x, 2, TU_DIMS(-1, -1))));
  TU_ASSERT_ERROR(g, "reshape", "-1");
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 3, 2, 3, 4);
  ck_assert(!smelt_node_valid(smelt_reshape(g, x, 2, TU_DIMS(5, -1)))); /* 24 % 5 != 0 */
  TU_ASSERT_ERROR(g, "reshape");
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 3, 2, 3, 4);
  ck_assert(!smelt_node_valid(smelt_reshape(g, x, 2, TU_DIMS(-2, 12))));
  TU_ASSERT_ERROR(g, "reshape");
  smelt_graph_free(g);

  /* -1 with zero elements is ambiguous (PyTorch refuses) */
  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 0, 3);
  ck_assert(!smelt_node_valid(smelt_reshape(g, x, 2, TU_DIMS(0, -1))));
  TU_ASSERT_ERROR(g, "reshape");
  smelt_graph_free(g);
}
END_TEST

START_TEST(permute_transpose_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = smelt_reshape(g, smelt_arange(g, F64, 0, 24, 1), 3, TU_DIMS(2, 3, 4));
  smelt_node p = smelt_permute(g, x, (const int[]){2, 0, 1});
  TU_ASSERT_SHAPE(g, p, 3, 4, 2, 3);
  double want[24];
  for (int k = 0; k < 4; k++)
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 3; j++) want[(k * 2 + i) * 3 + j] = (i * 3 + j) * 4 + k;
  TU_ASSERT_VALUES_A(g, p, 0, 24, want);
  /* negative entries name the same perm */
  smelt_node pn = smelt_permute(g, x, (const int[]){-1, 0, -2});
  TU_ASSERT_VALUES_A(g, pn, 0, 24, want);
  /* transpose of the last two axes */
  smelt_node t = smelt_transpose(g, x, -1, -2);
  TU_ASSERT_SHAPE(g, t, 3, 2, 4, 3);
  double wt[24];
  for (int i = 0; i < 2; i++)
    for (int k = 0; k < 4; k++)
      for (int j = 0; j < 3; j++) wt[(i * 4 + k) * 3 + j] = (i * 3 + j) * 4 + k;
  TU_ASSERT_VALUES_A(g, t, 0, 24, wt);
  /* transposing twice is the identity */
  double id[24];
  for (int i = 0; i < 24; i++) id[i] = i;
  TU_ASSERT_VALUES_A(g, smelt_transpose(g, t, 1, 2), 0, 24, id);
  TU_ASSERT_VALUES_A(g, smelt_transpose(g, x, 1, 1), 0, 24, id);
  /* identity perm and rank 0 */
  TU_ASSERT_VALUES_A(g, smelt_permute(g, x, (const int[]){0, 1, 2}), 0, 24, id);
  TU_ASSERT_VALUES(g, smelt_permute(g, smelt_const(g, F32, 4), NULL), 0, 4);
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 2, 3);
  ck_assert(!smelt_node_valid(smelt_permute(g, x, (const int[]){0, 0})));
  TU_ASSERT_ERROR(g, "permute");
  smelt_graph_free(g);
  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 2, 3);
  ck_assert(!smelt_node_valid(smelt_permute(g, x, (const int[]){0, 2})));
  TU_ASSERT_ERROR(g, "permute");
  smelt_graph_free(g);
  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 2, 3);
  ck_assert(!smelt_node_valid(smelt_transpose(g, x, 0, 2)));
  TU_ASSERT_ERROR(g, "transpose");
  smelt_graph_free(g);
}
END_TEST

START_TEST(expand_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node c = TU_ARR(g, F32, 2, TU_DIMS(3, 1), 1, 2, 3);
  smelt_node e = smelt_expand(g, c, 2, TU_DIMS(3, 4));
  TU_ASSERT_SHAPE(g, e, 2, 3, 4);
  ck_assert_str_eq(smelt_node_op(g, e), "expand");
  TU_ASSERT_VALUES(g, e, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  /* -1 keeps a dim */
  smelt_node k = smelt_expand(g, c, 2, TU_DIMS(-1, 2));
  TU_ASSERT_SHAPE(g, k, 2, 3, 2);
  TU_ASSERT_VALUES(g, k, 0, 1, 1, 2, 2, 3, 3);
  /* new leading dims */
  smelt_node l = smelt_expand(g, c, 3, TU_DIMS(2, -1, 2));
  TU_ASSERT_SHAPE(g, l, 3, 2, 3, 2);
  TU_ASSERT_VALUES(g, l, 0, 1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3);
  /* scalar to anything, size 1 to 0 */
  TU_ASSERT_SHAPE(g, smelt_expand(g, smelt_const(g, F32, 1), 2, TU_DIMS(2, 2)), 2, 2, 2);
  TU_ASSERT_SHAPE(g, smelt_expand(g, c, 2, TU_DIMS(3, 0)), 2, 3, 0);
  /* the same shape: the node itself */
  ck_assert_uint_eq(smelt_expand(g, c, 2, TU_DIMS(3, 1)).index, c.index);
  smelt_graph_free(g);

  /* errors: a non-1 dim changes, fewer dims, -1 in a new leading dim */
  static const struct {
    int rank;
    int64_t dims[3];
  } bad[] = {{2, {4, 4}}, {1, {3}}, {3, {-1, 3, 4}}, {2, {3, -2}}};
  for (int i = 0; i < 4; i++) {
    g = TU_GRAPH();
    c = tu_input(g, "c", F32, 2, 3, 1);
    ck_assert_msg(!smelt_node_valid(smelt_expand(g, c, bad[i].rank, bad[i].dims)), "bad %d", i);
    TU_ASSERT_ERROR(g, "expand");
    smelt_graph_free(g);
  }
}
END_TEST

START_TEST(squeeze_unsqueeze_flatten) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = smelt_reshape(g, smelt_arange(g, F32, 0, 6, 1), 4, TU_DIMS(1, 3, 1, 2));
  TU_ASSERT_SHAPE(g, smelt_squeeze(g, x, 0, NULL), 2, 3, 2);
  TU_ASSERT_SHAPE(g, smelt_squeeze(g, x, 1, (const int[]){0}), 3, 3, 1, 2);
  TU_ASSERT_SHAPE(g, smelt_squeeze(g, x, 1, (const int[]){-2}), 3, 1, 3, 2);
  TU_ASSERT_SHAPE(g, smelt_squeeze(g, x, 2, (const int[]){2, 0}), 2, 3, 2);
  TU_ASSERT_VALUES(g, smelt_squeeze(g, x, 0, NULL), 0, 0, 1, 2, 3, 4, 5);
  /* nothing to squeeze, and rank 0 */
  smelt_node y = tu_input(g, "y", F32, 2, 2, 3);
  TU_ASSERT_SHAPE(g, smelt_squeeze(g, y, 0, NULL), 2, 2, 3);
  TU_ASSERT_SHAPE(g, smelt_squeeze(g, smelt_const(g, F32, 1), 0, NULL), 0);
  TU_ASSERT_SHAPE(g, smelt_squeeze(g, smelt_ones(g, F32, 2, TU_DIMS(1, 1)), 0, NULL), 0);

  TU_ASSERT_SHAPE(g, smelt_unsqueeze(g, y, 0), 3, 1, 2, 3);
  TU_ASSERT_SHAPE(g, smelt_unsqueeze(g, y, 1), 3, 2, 1, 3);
  TU_ASSERT_SHAPE(g, smelt_unsqueeze(g, y, 2), 3, 2, 3, 1);
  TU_ASSERT_SHAPE(g, smelt_unsqueeze(g, y, -1), 3, 2, 3, 1);
  TU_ASSERT_SHAPE(g, smelt_unsqueeze(g, y, -3), 3, 1, 2, 3);
  TU_ASSERT_SHAPE(g, smelt_unsqueeze(g, smelt_const(g, F32, 1), 0), 1, 1);
  TU_ASSERT_SHAPE(g, smelt_unsqueeze(g, smelt_const(g, F32, 1), -1), 1, 1);

  smelt_node z = tu_input(g, "z", F32, 3, 2, 3, 4);
  TU_ASSERT_SHAPE(g, smelt_flatten(g, z, 0, -1), 1, 24);
  TU_ASSERT_SHAPE(g, smelt_flatten(g, z, 1, 2), 2, 2, 12);
  TU_ASSERT_SHAPE(g, smelt_flatten(g, z, 0, 1), 2, 6, 4);
  TU_ASSERT_SHAPE(g, smelt_flatten(g, z, -2, -1), 2, 2, 12);
  TU_ASSERT_SHAPE(g, smelt_flatten(g, z, 1, 1), 3, 2, 3, 4);
  TU_ASSERT_SHAPE(g, smelt_flatten(g, smelt_zeros(g, F32, 3, TU_DIMS(2, 0, 3)), 1, 2), 2, 2, 0);
  TU_ASSERT_OK(g);
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 2, 1);
  ck_assert(!smelt_node_valid(smelt_squeeze(g, x, 1, (const int[]){0})));
  TU_ASSERT_ERROR(g, "squeeze", "2");
  smelt_graph_free(g);
  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 2, 1);
  ck_assert(!smelt_node_valid(smelt_unsqueeze(g, x, 3)));
  TU_ASSERT_ERROR(g, "unsqueeze");
  smelt_graph_free(g);
  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 2, 1);
  ck_assert(!smelt_node_valid(smelt_unsqueeze(g, x, -4)));
  TU_ASSERT_ERROR(g, "unsqueeze");
  smelt_graph_free(g);
  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 3, 2, 1, 4);
  ck_assert(!smelt_node_valid(smelt_flatten(g, x, 2, 1)));
  TU_ASSERT_ERROR(g, "flatten");
  smelt_graph_free(g);
}
END_TEST

START_TEST(slice_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = smelt_arange(g, F32, 0, 10, 1);
  TU_ASSERT_VALUES(g, smelt_slice_axis(g, a, 0, 2, 7, 2), 0, 2, 4, 6);
  TU_ASSERT_VALUES(g, smelt_slice_axis(g, a, 0, -3, SMELT_END, 1), 0, 7, 8, 9);
  TU_ASSERT_VALUES(g, smelt_slice_axis(g, a, 0, -100, 3, 1), 0, 0, 1, 2);
  TU_ASSERT_VALUES(g, smelt_slice_axis(g, a, 0, 7, 100, 1), 0, 7, 8, 9);
  TU_ASSERT_VALUES(g, smelt_slice_axis(g, a, 0, 0, -7, 1), 0, 0, 1, 2);
  TU_ASSERT_VALUES(g, smelt_slice_axis(g, a, -1, 0, SMELT_END, 3), 0, 0, 3, 6, 9);
  TU_ASSERT_VALUES(g, smelt_slice_axis(g, a, 0, 1, SMELT_END, 4), 0, 1, 5, 9);
  TU_ASSERT_VALUES(g, smelt_slice_axis(g, a, 0, -1, SMELT_END, 1), 0, 9);
  TU_ASSERT_VALUES(g, smelt_slice_axis(g, a, 0, 9, 10, 100), 0, 9);
  /* empty slices */
  TU_ASSERT_SHAPE(g, smelt_slice_axis(g, a, 0, 7, 2, 1), 1, 0);
  TU_ASSERT_SHAPE(g, smelt_slice_axis(g, a, 0, 12, 20, 1), 1, 0);
  TU_ASSERT_SHAPE(g, smelt_slice_axis(g, a, 0, -1, -1, 1), 1, 0);
  /* the whole axis: the node itself or the same values */
  double all[10];
  for (int i = 0; i < 10; i++) all[i] = i;
  TU_ASSERT_VALUES_A(g, smelt_slice(g, a, NULL, NULL, NULL), 0, 10, all);
  /* 2-D with arrays */
  smelt_node m = smelt_reshape(g, smelt_arange(g, F64, 0, 20, 1), 2, TU_DIMS(4, 5));
  smelt_node s = smelt_slice(g, m, TU_DIMS(1, -4), TU_DIMS(SMELT_END, 5), TU_DIMS(2, 2));
  TU_ASSERT_SHAPE(g, s, 2, 2, 2);
  TU_ASSERT_VALUES(g, s, 0, 6, 8, 16, 18);
  smelt_node s2 = smelt_slice_axis(g, m, 1, 1, 3, 1);
  TU_ASSERT_SHAPE(g, s2, 2, 4, 2);
  TU_ASSERT_VALUES(g, s2, 0, 1, 2, 6, 7, 11, 12, 16, 17);
  /* a slice of a slice */
  smelt_node ss = smelt_slice_axis(g, smelt_slice_axis(g, a, 0, 1, 9, 2), 0, 1, SMELT_END, 2);
  TU_ASSERT_VALUES(g, ss, 0, 3, 7);
  smelt_graph_free(g);

  g = TU_GRAPH();
  a = tu_input(g, "a", F32, 1, 10);
  ck_assert(!smelt_node_valid(smelt_slice_axis(g, a, 0, 0, 5, 0)));
  TU_ASSERT_ERROR(g, "slice", "step");
  smelt_graph_free(g);
  g = TU_GRAPH();
  a = tu_input(g, "a", F32, 1, 10);
  ck_assert(!smelt_node_valid(smelt_slice_axis(g, a, 0, 5, 0, -1)));
  TU_ASSERT_ERROR(g, "slice", "step");
  smelt_graph_free(g);
  g = TU_GRAPH();
  a = tu_input(g, "a", F32, 1, 10);
  ck_assert(!smelt_node_valid(smelt_slice_axis(g, a, 1, 0, 5, 1)));
  TU_ASSERT_ERROR(g, "slice", "axis");
  smelt_graph_free(g);
}
END_TEST

START_TEST(flip_values) {
  smelt_graph *g = TU_GRAPH();
  TU_ASSERT_VALUES(g, smelt_flip(g, TU_VEC(g, I32, 1, 2, 3), 1, (const int[]){0}), 0, 3, 2, 1);
  smelt_node m = TU_ARR(g, F32, 2, TU_DIMS(2, 3), 1, 2, 3, 4, 5, 6);
  TU_ASSERT_VALUES(g, smelt_flip(g, m, 1, (const int[]){0}), 0, 4, 5, 6, 1, 2, 3);
  TU_ASSERT_VALUES(g, smelt_flip(g, m, 1, (const int[]){-1}), 0, 3, 2, 1, 6, 5, 4);
  TU_ASSERT_VALUES(g, smelt_flip(g, m, 2, (const int[]){1, 0}), 0, 6, 5, 4, 3, 2, 1);
  /* flip then slice: a reversed step */
  smelt_node r = smelt_slice_axis(g, smelt_flip(g, smelt_arange(g, F32, 0, 6, 1), 1, (const int[]){0}),
                                  0, 0, SMELT_END, 2);
  TU_ASSERT_VALUES(g, r, 0, 5, 3, 1);
  /* size 0 and size 1 */
  TU_ASSERT_SHAPE(g, smelt_flip(g, smelt_zeros(g, F32, 1, TU_DIMS(0)), 1, (const int[]){0}), 1, 0);
  TU_ASSERT_VALUES(g, smelt_flip(g, TU_VEC(g, F32, 7), 1, (const int[]){0}), 0, 7);
  smelt_graph_free(g);

  g = TU_GRAPH();
  m = tu_input(g, "m", F32, 2, 2, 3);
  ck_assert(!smelt_node_valid(smelt_flip(g, m, 1, (const int[]){2})));
  TU_ASSERT_ERROR(g, "flip");
  smelt_graph_free(g);
  g = TU_GRAPH();
  m = tu_input(g, "m", F32, 2, 2, 3);
  ck_assert(!smelt_node_valid(smelt_flip(g, m, 2, (const int[]){1, -1})));
  TU_ASSERT_ERROR(g, "flip");
  smelt_graph_free(g);
}
END_TEST

START_TEST(pad_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node v = TU_VEC(g, F32, 1, 2, 3);
  smelt_node p = smelt_pad(g, v, TU_DIMS(1), TU_DIMS(2), 0);
  TU_ASSERT_SHAPE(g, p, 1, 6);
  TU_ASSERT_VALUES(g, p, 0, 0, 1, 2, 3, 0, 0);
  smelt_node m = TU_ARR(g, I64, 2, TU_DIMS(2, 2), 1, 2, 3, 4);
  smelt_node pm = smelt_pad(g, m, TU_DIMS(1, 0), TU_DIMS(0, 1), -1);
  TU_ASSERT_SHAPE(g, pm, 2, 3, 3);
  TU_ASSERT_DTYPE(g, pm, I64);
  TU_ASSERT_VALUES(g, pm, 0, -1, -1, -1, 1, 2, -1, 3, 4, -1);
  TU_ASSERT_VALUES(g, smelt_pad(g, v, TU_DIMS(0), TU_DIMS(0), 5), 0, 1, 2, 3);
  TU_ASSERT_VALUES(g, smelt_pad(g, v, TU_DIMS(1), TU_DIMS(0), NAN), 0, NAN, 1, 2, 3);
  /* padding an empty axis */
  smelt_node e = smelt_pad(g, smelt_zeros(g, F32, 1, TU_DIMS(0)), TU_DIMS(2), TU_DIMS(1), 7);
  TU_ASSERT_VALUES(g, e, 0, 7, 7, 7);
  /* rank 0: nothing to pad */
  TU_ASSERT_VALUES(g, smelt_pad(g, smelt_const(g, F32, 2), NULL, NULL, 0), 0, 2);
  smelt_graph_free(g);

  g = TU_GRAPH();
  v = tu_input(g, "v", F32, 1, 3);
  ck_assert(!smelt_node_valid(smelt_pad(g, v, TU_DIMS(-1), TU_DIMS(0), 0)));
  TU_ASSERT_ERROR(g, "pad", "-1");
  smelt_graph_free(g);
}
END_TEST

START_TEST(concat_stack_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = TU_VEC(g, F32, 1, 2), b = TU_VEC(g, F32, 3, 4, 5);
  smelt_node c = smelt_concat(g, 2, (smelt_node[]){a, b}, 0);
  TU_ASSERT_SHAPE(g, c, 1, 5);
  TU_ASSERT_VALUES(g, c, 0, 1, 2, 3, 4, 5);
  smelt_node m = TU_ARR(g, F32, 2, TU_DIMS(2, 2), 1, 2, 3, 4);
  smelt_node n = TU_ARR(g, F32, 2, TU_DIMS(2, 1), 5, 6);
  smelt_node c1 = smelt_concat(g, 2, (smelt_node[]){m, n}, 1);
  TU_ASSERT_SHAPE(g, c1, 2, 2, 3);
  TU_ASSERT_VALUES(g, c1, 0, 1, 2, 5, 3, 4, 6);
  smelt_node c2 = smelt_concat(g, 3, (smelt_node[]){n, m, n}, -1);
  TU_ASSERT_VALUES(g, c2, 0, 5, 1, 2, 5, 6, 3, 4, 6);
  smelt_node c0 = smelt_concat(g, 2, (smelt_node[]){m, smelt_transpose(g, m, 0, 1)}, 0);
  TU_ASSERT_VALUES(g, c0, 0, 1, 2, 3, 4, 1, 3, 2, 4);
  /* one tensor; an empty piece */
  TU_ASSERT_VALUES(g, smelt_concat(g, 1, &a, 0), 0, 1, 2);
  smelt_node e = smelt_concat(g, 2, (smelt_node[]){smelt_zeros(g, F32, 2, TU_DIMS(0, 2)), m}, 0);
  TU_ASSERT_SHAPE(g, e, 2, 2, 2);
  TU_ASSERT_VALUES(g, e, 0, 1, 2, 3, 4);

  smelt_node s = smelt_stack(g, 2, (smelt_node[]){TU_VEC(g, F32, 1, 2, 3), TU_VEC(g, F32, 4, 5, 6)}, 0);
  TU_ASSERT_SHAPE(g, s, 2, 2, 3);
  TU_ASSERT_VALUES(g, s, 0, 1, 2, 3, 4, 5, 6);
  smelt_node s1 = smelt_stack(g, 2, (smelt_node[]){TU_VEC(g, F32, 1, 2, 3), TU_VEC(g, F32, 4, 5, 6)}, 1);
  TU_ASSERT_SHAPE(g, s1, 2, 3, 2);
  TU_ASSERT_VALUES(g, s1, 0, 1, 4, 2, 5, 3, 6);
  smelt_node sm = smelt_stack(g, 2, (smelt_node[]){TU_VEC(g, F32, 1, 2, 3), TU_VEC(g, F32, 4, 5, 6)}, -1);
  TU_ASSERT_SHAPE(g, sm, 2, 3, 2);
  smelt_node sc = smelt_stack(g, 3, (smelt_node[]){smelt_const(g, F32, 1), smelt_const(g, F32, 2),
                                                     smelt_const(g, F32, 3)}, 0);
  TU_ASSERT_SHAPE(g, sc, 1, 3);
  TU_ASSERT_VALUES(g, sc, 0, 1, 2, 3);
  smelt_graph_free(g);

  /* errors name the mismatching dim */
  g = TU_GRAPH();
  m = tu_input(g, "m", F32, 2, 2, 2);
  n = tu_input(g, "n", F32, 2, 3, 1);
  ck_assert(!smelt_node_valid(smelt_concat(g, 2, (smelt_node[]){m, n}, 1)));
  TU_ASSERT_ERROR(g, "concat", "[2,2]", "[3,1]");
  smelt_graph_free(g);
  g = TU_GRAPH();
  m = tu_input(g, "m", F32, 2, 2, 2);
  ck_assert(!smelt_node_valid(smelt_concat(g, 2, (smelt_node[]){m, m}, 2)));
  TU_ASSERT_ERROR(g, "concat", "axis");
  smelt_graph_free(g);
  g = TU_GRAPH();
  m = tu_input(g, "m", F32, 2, 2, 2);
  ck_assert(!smelt_node_valid(smelt_concat(g, 2, (smelt_node[]){m, TU_VEC(g, F32, 1, 2)}, 0)));
  TU_ASSERT_ERROR(g, "concat");
  smelt_graph_free(g);
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_concat(g, 1, (smelt_node[]){smelt_const(g, F32, 1)}, 0)));
  TU_ASSERT_ERROR(g, "concat");
  smelt_graph_free(g);
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(
      smelt_stack(g, 2, (smelt_node[]){TU_VEC(g, F32, 1, 2), TU_VEC(g, F32, 1, 2, 3)}, 0)));
  TU_ASSERT_ERROR(g, "stack", "[2]", "[3]");
  smelt_graph_free(g);
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_stack(g, 1, (smelt_node[]){TU_VEC(g, F32, 1, 2)}, 2)));
  TU_ASSERT_ERROR(g, "stack");
  smelt_graph_free(g);
}
END_TEST

/* =============================================================== matmul */

/* C reference: batched [.., M, K] x [.., K, N] with broadcast batch dims. */
static void ref_matmul(const double *a, const double *b, int batch, int a_bstride, int b_bstride,
                       int M, int K, int N, double *out) {
  for (int t = 0; t < batch; t++)
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += a[t * a_bstride + i * K + k] * b[t * b_bstride + k * N + j];
        out[(t * M + i) * N + j] = s;
      }
}

START_TEST(matmul_numpy_cases) {
  smelt_graph *g = TU_GRAPH();
  smelt_node v3 = TU_VEC(g, F32, 1, 2, 3), w3 = TU_VEC(g, F32, 4, 5, 6);
  smelt_node d = smelt_matmul(g, v3, w3);
  TU_ASSERT_SHAPE(g, d, 0);
  TU_ASSERT_VALUES(g, d, 0, 32);
  smelt_node m23 = TU_ARR(g, F32, 2, TU_DIMS(2, 3), 1, 2, 3, 4, 5, 6);
  /* 1-D x 2-D: [2] x [2,3] -> [3] */
  smelt_node r1 = smelt_matmul(g, TU_VEC(g, F32, 1, 2), m23);
  TU_ASSERT_SHAPE(g, r1, 1, 3);
  TU_ASSERT_VALUES(g, r1, 0, 9, 12, 15);
  /* 2-D x 1-D: [2,3] x [3] -> [2] */
  smelt_node r2 = smelt_matmul(g, m23, TU_VEC(g, F32, 1, 0, -1));
  TU_ASSERT_SHAPE(g, r2, 1, 2);
  TU_ASSERT_VALUES(g, r2, 0, -2, -2);
  /* 2-D x 2-D */
  smelt_node m32 = TU_ARR(g, F32, 2, TU_DIMS(3, 2), 1, 0, 0, 1, 1, 1);
  smelt_node r3 = smelt_matmul(g, m23, m32);
  TU_ASSERT_SHAPE(g, r3, 2, 2, 2);
  TU_ASSERT_VALUES(g, r3, 0, 4, 5, 10, 11);
  /* 1-D x 3-D: [3] x [2,3,4] -> [2,4]; 3-D x 1-D: [2,3,4] x [4] -> [2,3] */
  smelt_node t = smelt_reshape(g, smelt_arange(g, F32, 0, 24, 1), 3, TU_DIMS(2, 3, 4));
  smelt_node r4 = smelt_matmul(g, v3, t);
  TU_ASSERT_SHAPE(g, r4, 2, 2, 4);
  TU_ASSERT_VALUES(g, r4, 0, 32, 38, 44, 50, 104, 110, 116, 122);
  smelt_node r5 = smelt_matmul(g, t, TU_VEC(g, F32, 1, 1, 1, 1));
  TU_ASSERT_SHAPE(g, r5, 2, 2, 3);
  TU_ASSERT_VALUES(g, r5, 0, 6, 22, 38, 54, 70, 86);
  /* K = 0 gives zeros, M = 0 gives an empty result */
  smelt_node z = smelt_matmul(g, smelt_ones(g, F32, 2, TU_DIMS(2, 0)), smelt_ones(g, F32, 2, TU_DIMS(0, 3)));
  TU_ASSERT_SHAPE(g, z, 2, 2, 3);
  TU_ASSERT_VALUES(g, z, 0, 0, 0, 0, 0, 0, 0);
  TU_ASSERT_SHAPE(g, smelt_matmul(g, smelt_ones(g, F32, 2, TU_DIMS(0, 3)), m32), 2, 0, 2);
  /* NaN and inf propagate */
  TU_ASSERT_VALUES(g, smelt_matmul(g, TU_VEC(g, F64, NAN, 1), TU_VEC(g, F64, 0, 1)), 0, NAN);
  /* integers stay integer */
  smelt_node ii = smelt_matmul(g, TU_ARR(g, I32, 2, TU_DIMS(1, 2), 3, 4), TU_ARR(g, I32, 2, TU_DIMS(2, 1), 5, 6));
  TU_ASSERT_DTYPE(g, ii, I32);
  TU_ASSERT_VALUES(g, ii, 0, 39);
  smelt_graph_free(g);
}
END_TEST

START_TEST(matmul_batched_broadcast) {
  /* [2,1,2,3] x [3,3,2] -> [2,3,2,2] (batch dims [2,1] and [3] broadcast) */
  double a[12], b[18];
  for (int i = 0; i < 12; i++) a[i] = i - 5;
  for (int i = 0; i < 18; i++) b[i] = (i * 7) % 5 - 2;
  smelt_graph *g = TU_GRAPH();
  smelt_node A = tu_const_f64(g, 4, TU_DIMS(2, 1, 2, 3), a);
  smelt_node B = tu_const_f64(g, 3, TU_DIMS(3, 3, 2), b);
  smelt_node r = smelt_matmul(g, A, B);
  TU_ASSERT_SHAPE(g, r, 4, 2, 3, 2, 2);
  double want[24];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 3; j++)
      ref_matmul(a + i * 6, b + j * 6, 1, 0, 0, 2, 3, 2, want + (i * 3 + j) * 4);
  TU_ASSERT_VALUES_A(g, r, 0, 24, want);
  /* [4,2,3] x [3,5] -> [4,2,5]: the matrix is shared by the batch */
  double c[24], d[15], w2[40];
  for (int i = 0; i < 24; i++) c[i] = (i % 7) * 0.5;
  for (int i = 0; i < 15; i++) d[i] = i % 4 - 1.5;
  ref_matmul(c, d, 4, 6, 0, 2, 3, 5, w2);
  smelt_node r2 = smelt_matmul(g, tu_const_f64(g, 3, TU_DIMS(4, 2, 3), c), tu_const_f64(g, 2, TU_DIMS(3, 5), d));
  TU_ASSERT_SHAPE(g, r2, 3, 4, 2, 5);
  TU_ASSERT_VALUES_A(g, r2, 0, 40, w2);
  /* [2] x [4,2,3] -> [4,3]; [4,2,3] x [3] -> [4,2] */
  TU_ASSERT_SHAPE(g, smelt_matmul(g, TU_VEC(g, F64, 1, 1), tu_const_f64(g, 3, TU_DIMS(4, 2, 3), c)), 2, 4, 3);
  TU_ASSERT_SHAPE(g, smelt_matmul(g, tu_const_f64(g, 3, TU_DIMS(4, 2, 3), c), TU_VEC(g, F64, 1, 1, 1)), 2, 4, 2);
  smelt_graph_free(g);
}
END_TEST

START_TEST(matmul_errors) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = tu_input(g, "a", F32, 2, 2, 3);
  smelt_node b = tu_input(g, "b", F32, 2, 4, 2);
  ck_assert(!smelt_node_valid(smelt_matmul(g, a, b)));
  TU_ASSERT_ERROR(g, "matmul", "[2,3]", "[4,2]", "3", "4");
  smelt_graph_free(g);

  g = TU_GRAPH();
  a = tu_input(g, "a", F32, 1, 3);
  b = tu_input(g, "b", F32, 1, 4);
  ck_assert(!smelt_node_valid(smelt_matmul(g, a, b)));
  TU_ASSERT_ERROR(g, "matmul", "[3]", "[4]");
  smelt_graph_free(g);

  g = TU_GRAPH();
  a = tu_input(g, "a", F32, 3, 2, 2, 3);
  b = tu_input(g, "b", F32, 3, 3, 3, 2);
  ck_assert(!smelt_node_valid(smelt_matmul(g, a, b)));
  TU_ASSERT_ERROR(g, "matmul", "[2,2,3]", "[3,3,2]");
  smelt_graph_free(g);

  g = TU_GRAPH();
  a = tu_input(g, "a", F32, 2, 2, 3);
  ck_assert(!smelt_node_valid(smelt_matmul(g, smelt_const(g, F32, 2), a)));
  TU_ASSERT_ERROR(g, "matmul");
  smelt_graph_free(g);

  g = TU_GRAPH();
  a = tu_input(g, "a", BOOL, 2, 2, 2);
  ck_assert(!smelt_node_valid(smelt_matmul(g, a, a)));
  TU_ASSERT_ERROR(g, "matmul", "bool");
  smelt_graph_free(g);
}
END_TEST

/* ============================================================= indexing */

START_TEST(scatter_add_values) {
  /* expected values from torch.Tensor.scatter_add */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_ARR(g, F32, 2, TU_DIMS(2, 3), 1, 2, 3, 4, 5, 6);
  smelt_node i1 = TU_ARR(g, I64, 2, TU_DIMS(2, 2), 0, 0, 2, 1);
  smelt_node s1 = TU_ARR(g, F32, 2, TU_DIMS(2, 2), 10, 20, 30, 40);
  smelt_node r1 = smelt_scatter_add(g, x, 1, i1, s1);
  TU_ASSERT_SHAPE(g, r1, 2, 2, 3);
  TU_ASSERT_VALUES(g, r1, 0, 31, 2, 3, 4, 45, 36);
  smelt_node i0 = TU_ARR(g, I32, 2, TU_DIMS(1, 3), 1, 0, 1);
  smelt_node s0 = TU_ARR(g, F32, 2, TU_DIMS(1, 3), 7, 8, 9);
  TU_ASSERT_VALUES(g, smelt_scatter_add(g, x, 0, i0, s0), 0, 1, 10, 3, 11, 5, 15);
  smelt_graph_free(g);

  /* out of range at run time; a float index or mismatched shapes at build time */
  g = TU_GRAPH();
  x = smelt_zeros(g, F32, 1, TU_DIMS(3));
  smelt_node bad = smelt_scatter_add(g, x, 0, TU_VEC(g, I64, 3), TU_VEC(g, F32, 1));
  TU_ASSERT_OK(g);
  TU_ASSERT_RUN_ERROR(g, bad, 0, NULL, "scatter_add: index 3 is out of range");
  smelt_graph_free(g);
  g = TU_GRAPH();
  x = smelt_zeros(g, F32, 1, TU_DIMS(3));
  ck_assert(!smelt_node_valid(smelt_scatter_add(g, x, 0, TU_VEC(g, F32, 1), TU_VEC(g, F32, 1))));
  TU_ASSERT_ERROR(g, "scatter_add", "i32 or i64");
  smelt_graph_free(g);
  g = TU_GRAPH();
  x = smelt_zeros(g, F32, 1, TU_DIMS(3));
  ck_assert(!smelt_node_valid(smelt_scatter_add(g, x, 0, TU_VEC(g, I64, 1), TU_VEC(g, F32, 1, 2))));
  TU_ASSERT_ERROR(g, "scatter_add", "one shape");
  smelt_graph_free(g);
}
END_TEST

START_TEST(gather_values) {
  smelt_graph *g = TU_GRAPH();
  /* torch.gather documentation example */
  smelt_node x = TU_ARR(g, F32, 2, TU_DIMS(2, 2), 1, 2, 3, 4);
  smelt_node i1 = TU_ARR(g, I64, 2, TU_DIMS(2, 2), 0, 0, 1, 0);
  smelt_node r = smelt_gather(g, x, 1, i1);
  TU_ASSERT_SHAPE(g, r, 2, 2, 2);
  TU_ASSERT_DTYPE(g, r, F32);
  TU_ASSERT_VALUES(g, r, 0, 1, 1, 4, 3);
  /* along axis 0 with a smaller index (index.dim(1) <= x.dim(1)) */
  smelt_node i0 = TU_ARR(g, I32, 2, TU_DIMS(1, 2), 1, 0);
  TU_ASSERT_VALUES(g, smelt_gather(g, x, 0, i0), 0, 3, 2);
  TU_ASSERT_SHAPE(g, smelt_gather(g, x, -2, i0), 2, 1, 2);
  /* the index may be longer than the axis along axis */
  smelt_node il = TU_ARR(g, I64, 2, TU_DIMS(2, 3), 1, 1, 0, 0, 0, 1);
  TU_ASSERT_VALUES(g, smelt_gather(g, x, 1, il), 0, 2, 2, 1, 3, 3, 4);
  /* 3-D, checked with a loop */
  double xv[24];
  int64_t iv[12];
  for (int i = 0; i < 24; i++) xv[i] = i * 1.5;
  for (int i = 0; i < 12; i++) iv[i] = (i * 5) % 3;
  smelt_node x3 = tu_const_f64(g, 3, TU_DIMS(2, 3, 4), xv);
  smelt_node i3 = tu_const_i64(g, 3, TU_DIMS(2, 2, 3), iv);
  smelt_node r3 = smelt_gather(g, x3, 1, i3);
  TU_ASSERT_SHAPE(g, r3, 3, 2, 2, 3);
  double want[12];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++)
      for (int k = 0; k < 3; k++) want[(i * 2 + j) * 3 + k] = xv[(i * 3 + iv[(i * 2 + j) * 3 + k]) * 4 + k];
  TU_ASSERT_VALUES_A(g, r3, 0, 12, want);
  smelt_graph_free(g);

  /* out of range at run time: too large, or negative (as torch.gather) */
  static const double badi[] = {2, -1, -3};
  for (int k = 0; k < 3; k++) {
    g = TU_GRAPH();
    x = TU_ARR(g, F32, 2, TU_DIMS(2, 2), 1, 2, 3, 4);
    smelt_node bad = smelt_gather(g, x, 1, TU_ARR(g, I64, 2, TU_DIMS(2, 1), 0, badi[k]));
    TU_ASSERT_OK(g);
    TU_ASSERT_RUN_ERROR(g, bad, 0, NULL, "out of range");
    smelt_graph_free(g);
  }
  /* build errors: rank mismatch, index larger than x outside axis */
  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 2, 2);
  ck_assert(!smelt_node_valid(smelt_gather(g, x, 0, TU_VEC(g, I64, 0))));
  TU_ASSERT_ERROR(g, "gather");
  smelt_graph_free(g);
  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 2, 2);
  ck_assert(!smelt_node_valid(smelt_gather(g, x, 1, smelt_zeros(g, I64, 2, TU_DIMS(3, 1)))));
  TU_ASSERT_ERROR(g, "gather");
  smelt_graph_free(g);
}
END_TEST

START_TEST(take_along_axis_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_ARR(g, F32, 2, TU_DIMS(2, 3), 10, 30, 20, 60, 40, 50);
  smelt_node idx = TU_ARR(g, I64, 2, TU_DIMS(2, 3), 0, 2, 1, 1, 2, 0);
  TU_ASSERT_VALUES(g, smelt_take_along_axis(g, x, idx, 1), 0, 10, 20, 30, 40, 50, 60);
  /* the index broadcasts against x outside the axis: [1,2] with [2,3] */
  smelt_node ib = TU_ARR(g, I64, 2, TU_DIMS(1, 2), 2, 0);
  smelt_node r = smelt_take_along_axis(g, x, ib, -1);
  TU_ASSERT_SHAPE(g, r, 2, 2, 2);
  TU_ASSERT_VALUES(g, r, 0, 20, 10, 50, 60);
  /* and x broadcasts against the index: x [1,3], index [2,1] */
  smelt_node xr = TU_ARR(g, F32, 2, TU_DIMS(1, 3), 7, 8, 9);
  smelt_node r2 = smelt_take_along_axis(g, xr, TU_ARR(g, I32, 2, TU_DIMS(2, 1), 2, 0), 1);
  TU_ASSERT_SHAPE(g, r2, 2, 2, 1);
  TU_ASSERT_VALUES(g, r2, 0, 9, 7);
  /* along axis 0 with argmax-style keepdim indices */
  smelt_node am = smelt_argmax(g, x, 0, true);
  TU_ASSERT_VALUES(g, smelt_take_along_axis(g, x, am, 0), 0, 60, 40, 50);
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 2, 3);
  ck_assert(!smelt_node_valid(smelt_take_along_axis(g, x, TU_ARR(g, I64, 2, TU_DIMS(3, 1), 0, 0, 0), 1)));
  TU_ASSERT_ERROR(g, "take_along_axis");
  smelt_graph_free(g);
}
END_TEST

START_TEST(index_select_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_ARR(g, F64, 2, TU_DIMS(3, 2), 1, 2, 3, 4, 5, 6);
  smelt_node r = smelt_index_select(g, x, 0, TU_VEC(g, I64, 2, 0, 2));
  TU_ASSERT_SHAPE(g, r, 2, 3, 2);
  TU_ASSERT_VALUES(g, r, 0, 5, 6, 1, 2, 5, 6);
  smelt_node c = smelt_index_select(g, x, -1, TU_VEC(g, I32, 1));
  TU_ASSERT_SHAPE(g, c, 2, 3, 1);
  TU_ASSERT_VALUES(g, c, 0, 2, 4, 6);
  smelt_node e = smelt_index_select(g, x, 0, smelt_zeros(g, I64, 1, TU_DIMS(0)));
  TU_ASSERT_SHAPE(g, e, 2, 0, 2);
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = TU_ARR(g, F64, 2, TU_DIMS(3, 2), 1, 2, 3, 4, 5, 6);
  smelt_node bad = smelt_index_select(g, x, 0, TU_VEC(g, I64, 0, 3));
  TU_ASSERT_OK(g);
  TU_ASSERT_RUN_ERROR(g, bad, 0, NULL, "out of range");
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", F32, 2, 3, 2);
  ck_assert(!smelt_node_valid(smelt_index_select(g, x, 0, smelt_zeros(g, I64, 2, TU_DIMS(2, 2)))));
  TU_ASSERT_ERROR(g, "index_select");
  smelt_graph_free(g);
}
END_TEST

START_TEST(one_hot_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node h = smelt_one_hot(g, TU_VEC(g, I64, 0, 2, 1), 3);
  TU_ASSERT_SHAPE(g, h, 2, 3, 3);
  TU_ASSERT_DTYPE(g, h, I64);
  TU_ASSERT_VALUES(g, h, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0);
  smelt_node h2 = smelt_one_hot(g, TU_ARR(g, I32, 2, TU_DIMS(2, 1), 3, 0), 4);
  TU_ASSERT_SHAPE(g, h2, 3, 2, 1, 4);
  TU_ASSERT_VALUES(g, h2, 0, 0, 0, 0, 1, 1, 0, 0, 0);
  smelt_node h0 = smelt_one_hot(g, smelt_const(g, I64, 1), 2);
  TU_ASSERT_SHAPE(g, h0, 1, 2);
  TU_ASSERT_VALUES(g, h0, 0, 0, 1);
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_one_hot(g, TU_VEC(g, I64, 0), 0)));
  TU_ASSERT_ERROR(g, "one_hot");
  smelt_graph_free(g);

  /* out of range (>= num_classes or negative, as PyTorch): a run error */
  static const double bad[] = {3, -1};
  for (int k = 0; k < 2; k++) {
    g = TU_GRAPH();
    smelt_node b = smelt_one_hot(g, TU_VEC(g, I64, 0, bad[k]), 3);
    TU_ASSERT_OK(g);
    TU_ASSERT_RUN_ERROR(g, b, 0, NULL, "out of range");
    smelt_graph_free(g);
  }
}
END_TEST

START_TEST(embedding_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node w = smelt_reshape(g, smelt_arange(g, F32, 0, 8, 1), 2, TU_DIMS(4, 2));
  smelt_node e = smelt_embedding(g, w, TU_ARR(g, I64, 2, TU_DIMS(2, 2), 0, 3, 1, 1));
  TU_ASSERT_SHAPE(g, e, 3, 2, 2, 2);
  TU_ASSERT_DTYPE(g, e, F32);
  TU_ASSERT_VALUES(g, e, 0, 0, 1, 6, 7, 2, 3, 2, 3);
  smelt_node e0 = smelt_embedding(g, w, smelt_const(g, I32, 2));
  TU_ASSERT_SHAPE(g, e0, 1, 2);
  TU_ASSERT_VALUES(g, e0, 0, 4, 5);
  smelt_node ee = smelt_embedding(g, w, smelt_zeros(g, I64, 2, TU_DIMS(0, 3)));
  TU_ASSERT_SHAPE(g, ee, 3, 0, 3, 2);
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_embedding(g, TU_VEC(g, F32, 1, 2), TU_VEC(g, I64, 0))));
  TU_ASSERT_ERROR(g, "embedding");
  smelt_graph_free(g);

  /* out of range (>= V or negative, as torch.nn.functional.embedding) */
  static const double bad[] = {4, -1};
  for (int k = 0; k < 2; k++) {
    g = TU_GRAPH();
    w = smelt_ones(g, F32, 2, TU_DIMS(4, 2));
    smelt_node b = smelt_embedding(g, w, TU_VEC(g, I64, 1, bad[k]));
    TU_ASSERT_OK(g);
    TU_ASSERT_RUN_ERROR(g, b, 0, NULL, "out of range");
    smelt_graph_free(g);
  }
}
END_TEST

/* ========================================================= hash-consing */

START_TEST(hash_consing_ops) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F32, 2, 3, 4);
  int ax[1] = {1};
  /* every builder returns the same handle for the same arguments */
  ck_assert_uint_eq(smelt_sin(g, x).index, smelt_sin(g, x).index);
  ck_assert_uint_eq(smelt_mul(g, x, x).index, smelt_mul(g, x, x).index);
  ck_assert_uint_eq(smelt_mul(g, x, smelt_scalar(g, 2)).index,
                    smelt_mul(g, x, smelt_scalar(g, 2)).index);
  ck_assert_uint_ne(smelt_mul(g, x, smelt_scalar(g, 2)).index,
                    smelt_mul(g, x, smelt_scalar(g, 3)).index);
  ck_assert_uint_eq(smelt_mean(g, x, 1, ax, false).index, smelt_mean(g, x, 1, ax, false).index);
  ck_assert_uint_ne(smelt_mean(g, x, 1, ax, false).index, smelt_mean(g, x, 1, ax, true).index);
  ck_assert_uint_eq(smelt_transpose(g, x, 0, 1).index, smelt_permute(g, x, (const int[]){1, 0}).index);
  ck_assert_uint_eq(smelt_slice_axis(g, x, 1, 0, 2, 1).index, smelt_slice_axis(g, x, 1, 0, 2, 1).index);
  ck_assert_uint_eq(smelt_cast(g, x, F64).index, smelt_cast(g, x, F64).index);
  ck_assert_uint_eq(smelt_matmul(g, x, smelt_transpose(g, x, 0, 1)).index,
                    smelt_matmul(g, x, smelt_transpose(g, x, 0, 1)).index);
  ck_assert_uint_eq(smelt_full(g, F32, 1, TU_DIMS(3), 1).index, smelt_ones(g, F32, 1, TU_DIMS(3)).index);
  ck_assert_uint_eq(smelt_arange(g, F32, 0, 3, 1).index, smelt_arange(g, F32, 0, 3, 1).index);
  /* a view that changes nothing is the node itself */
  ck_assert_uint_eq(smelt_squeeze(g, x, 0, NULL).index, x.index);
  ck_assert_uint_eq(smelt_flatten(g, x, 1, 1).index, x.index);
  size_t n = smelt_graph_node_count(g);
  smelt_sin(g, x);
  smelt_gelu(g, x);
  size_t n2 = smelt_graph_node_count(g);
  smelt_gelu(g, x);
  ck_assert_uint_eq(smelt_graph_node_count(g), n2);
  ck_assert_uint_gt(n2, n);
  TU_ASSERT_OK(g);
  smelt_graph_free(g);
}
END_TEST

/* ======================================================= composed views */

/* Views feeding views and ops: the interpreter must follow the index maps
 * (permute, slice with steps, flip, expand with stride 0, pad) exactly. */
START_TEST(views_compose) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = smelt_reshape(g, smelt_arange(g, F64, 0, 24, 1), 3, TU_DIMS(2, 3, 4));
  smelt_node p = smelt_permute(g, x, (const int[]){2, 0, 1});                  /* [4,2,3] */
  smelt_node sl = smelt_slice(g, p, TU_DIMS(1, 0, 0), TU_DIMS(SMELT_END, 2, 3), TU_DIMS(2, 1, 2));
  TU_ASSERT_SHAPE(g, sl, 3, 2, 2, 2);
  smelt_node f = smelt_flip(g, sl, 2, (const int[]){0, 2});
  /* f[a][b][c] = sl[1-a][b][1-c] = p[1+2(1-a)][b][2(1-c)] = x[b][2(1-c)][1+2(1-a)] */
  double want[8];
  for (int a = 0; a < 2; a++)
    for (int b = 0; b < 2; b++)
      for (int c = 0; c < 2; c++) want[(a * 2 + b) * 2 + c] = (b * 3 + 2 * (1 - c)) * 4 + 1 + 2 * (1 - a);
  TU_ASSERT_VALUES_A(g, f, 0, 8, want);
  /* a reduction over the composed view */
  int ax1[1] = {1};
  double ws[4];
  for (int a = 0; a < 2; a++)
    for (int c = 0; c < 2; c++) ws[a * 2 + c] = want[(a * 2 + 0) * 2 + c] + want[(a * 2 + 1) * 2 + c];
  TU_ASSERT_VALUES_A(g, smelt_sum(g, f, 1, ax1, false), 0, 4, ws);
  /* elementwise on two differently permuted views of the same data */
  smelt_node t = smelt_transpose(g, smelt_reshape(g, x, 2, TU_DIMS(4, 6)), 0, 1); /* [6,4] */
  smelt_node u = smelt_reshape(g, smelt_arange(g, F64, 0, 24, 1), 2, TU_DIMS(6, 4));
  double wd[24];
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 4; j++) wd[i * 4 + j] = (j * 6 + i) - (i * 4 + j);
  TU_ASSERT_VALUES_A(g, smelt_sub(g, t, u), 0, 24, wd);
  /* expand of a strided slice: [1,3,5] as a column, repeated */
  smelt_node col = smelt_reshape(g, smelt_slice_axis(g, smelt_arange(g, F32, 0, 6, 1), 0, 1, 6, 2), 2,
                                 TU_DIMS(3, 1));
  smelt_node e = smelt_expand(g, col, 2, TU_DIMS(3, 2));
  TU_ASSERT_VALUES(g, e, 0, 1, 1, 3, 3, 5, 5);
  /* argmax over an expanded (stride-0) axis: the first index */
  TU_ASSERT_VALUES(g, smelt_argmax(g, e, 1, false), 0, 0, 0, 0);
  TU_ASSERT_VALUES(g, smelt_sum(g, e, 0, NULL, false), 0, 18);
  /* pad of a flip; flip of a pad */
  smelt_node v = TU_VEC(g, F32, 1, 2, 3);
  TU_ASSERT_VALUES(g, smelt_pad(g, smelt_flip(g, v, 1, (const int[]){0}), TU_DIMS(1), TU_DIMS(2), 9), 0,
                   9, 3, 2, 1, 9, 9);
  TU_ASSERT_VALUES(g, smelt_flip(g, smelt_pad(g, v, TU_DIMS(1), TU_DIMS(2), 9), 1, (const int[]){0}), 0,
                   9, 9, 3, 2, 1, 9);
  /* concat of views */
  TU_ASSERT_VALUES(g, smelt_concat(g, 2, (smelt_node[]){smelt_flip(g, v, 1, (const int[]){0}),
                                                         smelt_slice_axis(g, v, 0, 0, 3, 2)}, 0),
                   0, 3, 2, 1, 1, 3);
  smelt_graph_free(g);
}
END_TEST

START_TEST(views_feed_matmul_gather) {
  double a[6] = {1, 2, 3, 4, 5, 6}; /* [3,2] */
  double b[6] = {1, -1, 2, 0, 3, 1}; /* [3,2] */
  smelt_graph *g = TU_GRAPH();
  smelt_node A = tu_const_f64(g, 2, TU_DIMS(3, 2), a);
  smelt_node B = tu_const_f64(g, 2, TU_DIMS(3, 2), b);
  /* A^T B: [2,3] x [3,2] */
  smelt_node r = smelt_matmul(g, smelt_transpose(g, A, 0, 1), B);
  double want[4];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) {
      double s = 0;
      for (int k = 0; k < 3; k++) s += a[k * 2 + i] * b[k * 2 + j];
      want[i * 2 + j] = s;
    }
  TU_ASSERT_VALUES_A(g, r, 0, 4, want);
  /* matmul with a broadcast (expanded) operand */
  smelt_node ones = smelt_ones(g, F64, 2, TU_DIMS(2, 3));
  TU_ASSERT_VALUES(g, smelt_matmul(g, ones, A), 0, 9, 12, 9, 12);
  /* gather from a transposed view: x^T = [[1,3,5],[2,4,6]] */
  smelt_node gt = smelt_gather(g, smelt_transpose(g, A, 0, 1), 1,
                               TU_ARR(g, I64, 2, TU_DIMS(2, 2), 2, 0, 1, 1));
  TU_ASSERT_VALUES(g, gt, 0, 5, 1, 4, 4);
  /* gather with an expanded index */
  smelt_node ie = smelt_expand(g, TU_ARR(g, I64, 2, TU_DIMS(1, 2), 1, 0), 2, TU_DIMS(3, 2));
  TU_ASSERT_VALUES(g, smelt_gather(g, A, 1, ie), 0, 2, 1, 4, 3, 6, 5);
  smelt_graph_free(g);
}
END_TEST

/* ================================================================ params */

START_TEST(param_initializers) {
  smelt_graph *g = TU_GRAPH();
  float data[4] = {1.5f, -2, 0, 8};
  smelt_node pd = smelt_param(g, "pd", F32, 2, TU_DIMS(2, 2), smelt_init_data(data));
  data[0] = 99; /* copied at build time */
  smelt_node pz = smelt_param(g, "pz", F64, 1, TU_DIMS(3), smelt_init_zeros());
  smelt_node po = smelt_param(g, "po", I32, 1, TU_DIMS(2), smelt_init_ones());
  smelt_node pc = smelt_param(g, "pc", F32, 1, TU_DIMS(2), smelt_init_constant(-0.25));
  smelt_node pci = smelt_param(g, "pci", I64, 0, NULL, smelt_init_constant(7));
  smelt_node pu = smelt_param(g, "pu", F64, 1, TU_DIMS(1000), smelt_init_uniform(2, 2.5, 1));
  smelt_node pe = smelt_param(g, "pe", F32, 2, TU_DIMS(0, 3), smelt_init_normal(0, 1, 1));
  TU_ASSERT_OK(g);
  ck_assert_str_eq(smelt_node_op(g, pd), "param");
  ck_assert_str_eq(smelt_node_name(g, pd), "pd");
  ck_assert_uint_eq(smelt_find(g, "pd").index, pd.index);
  TU_ASSERT_VALUES(g, pd, 0, 1.5, -2, 0, 8);
  TU_ASSERT_VALUES(g, pz, 0, 0, 0, 0);
  TU_ASSERT_VALUES(g, po, 0, 1, 1);
  TU_ASSERT_DTYPE(g, po, I32);
  TU_ASSERT_VALUES(g, pc, 0, -0.25, -0.25);
  TU_ASSERT_VALUES(g, pci, 0, 7);
  double *u = TU_EVAL(g, pu);
  for (int i = 0; i < 1000; i++) ck_assert(u[i] >= 2 && u[i] < 2.5);
  free(u);
  TU_ASSERT_SHAPE(g, pe, 2, 0, 3);
  /* params take part in ops like any tensor */
  TU_ASSERT_VALUES(g, smelt_sum(g, pd, 0, NULL, false), 0, 7.5);
  /* two params with identical attributes are distinct nodes */
  smelt_node pz2 = smelt_param(g, "pz2", F64, 1, TU_DIMS(3), smelt_init_zeros());
  ck_assert_uint_ne(pz2.index, pz.index);
  smelt_graph_free(g);

  /* random initializers need a float dtype; bad bounds */
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_param(g, "w", I32, 1, TU_DIMS(2), smelt_init_normal(0, 1, 1))));
  TU_ASSERT_ERROR(g, "w", "i32");
  smelt_graph_free(g);
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_param(g, "w", F32, 1, TU_DIMS(2), smelt_init_normal(0, -1, 1))));
  TU_ASSERT_ERROR(g, "w");
  smelt_graph_free(g);
}
END_TEST

/* Out-of-range float-to-int casts are undefined in C: the interpreter must
 * not execute that UB (the suite runs under UBSan). Values are left
 * unspecified, as in PyTorch. */
START_TEST(cast_out_of_range_defined) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F64, NAN, INFINITY, -INFINITY, 1e20, -1e20, 3e9);
  free(TU_RUN1(g, smelt_cast(g, x, I32)));
  free(TU_RUN1(g, smelt_cast(g, x, I64)));
  free(TU_RUN1(g, smelt_cast(g, smelt_cast(g, x, F32), I32)));
  /* and in-range values still truncate */
  TU_ASSERT_VALUES(g, smelt_cast(g, TU_VEC(g, F64, 2147483647.9, -2147483648.9), I32), 0,
                   2147483647.0, -2147483648.0);
  smelt_graph_free(g);
}
END_TEST

/* ================================================================ suite */

static Suite *ops_suite(void) {
  Suite *s = suite_create("ops");
  TCase *tc = tcase_create("sources");
  tcase_add_test(tc, const_arrays_all_dtypes);
  tcase_add_test(tc, scalar_consts);
  tcase_add_test(tc, full_zeros_ones);
  tcase_add_test(tc, full_is_expand_of_const);
  tcase_add_test(tc, arange_values);
  tcase_add_test(tc, linspace_values);
  tcase_add_test(tc, eye_values);
  tcase_add_test(tc, rand_randn_basics);
  tcase_add_test(tc, param_initializers);
  suite_add_tcase(s, tc);

  tc = tcase_create("elementwise");
  tcase_add_test(tc, unary_specials_f64);
  tcase_add_test(tc, unary_f32_values);
  tcase_add_test(tc, sigmoid_extremes);
  tcase_add_test(tc, exp_log_edge);
  tcase_add_test(tc, gelu_values);
  tcase_add_test(tc, stop_gradient_identity);
  tcase_add_test(tc, binary_arith_values);
  tcase_add_test(tc, pow_values);
  tcase_add_test(tc, maximum_minimum_nan);
  tcase_add_test(tc, comparisons_inf);
  tcase_add_test(tc, where_values);
  tcase_add_test(tc, clamp_values);
  tcase_add_test(tc, cast_out_of_range_defined);
  suite_add_tcase(s, tc);

  tc = tcase_create("reductions");
  tcase_add_loop_test(tc, reductions_table, 0, NSETS * R_COUNT * 2);
  tcase_add_test(tc, reduction_errors);
  tcase_add_test(tc, reductions_rank0_and_size1);
  tcase_add_test(tc, reductions_empty);
  tcase_add_test(tc, max_min_nan);
  tcase_add_test(tc, argmax_argmin_values);
  tcase_add_test(tc, max_dim_pairs);
  tcase_add_test(tc, var_std_corrections);
  tcase_add_test(tc, logsumexp_values);
  suite_add_tcase(s, tc);

  tc = tcase_create("nn");
  tcase_add_test(tc, softmax_values);
  tcase_add_test(tc, log_softmax_values);
  tcase_add_test(tc, cross_entropy_values);
  tcase_add_test(tc, mse_loss_values);
  tcase_add_test(tc, dropout_identity_when_not_training);
  tcase_add_test(tc, dropout_training);
  tcase_add_test(tc, dropout_bad_p);
  suite_add_tcase(s, tc);

  tc = tcase_create("views");
  tcase_add_test(tc, reshape_values);
  tcase_add_test(tc, reshape_errors);
  tcase_add_test(tc, permute_transpose_values);
  tcase_add_test(tc, expand_values);
  tcase_add_test(tc, squeeze_unsqueeze_flatten);
  tcase_add_test(tc, slice_values);
  tcase_add_test(tc, flip_values);
  tcase_add_test(tc, pad_values);
  tcase_add_test(tc, concat_stack_values);
  tcase_add_test(tc, views_compose);
  tcase_add_test(tc, views_feed_matmul_gather);
  suite_add_tcase(s, tc);

  tc = tcase_create("linalg_indexing");
  tcase_add_test(tc, matmul_numpy_cases);
  tcase_add_test(tc, matmul_batched_broadcast);
  tcase_add_test(tc, matmul_errors);
  tcase_add_test(tc, gather_values);
  tcase_add_test(tc, scatter_add_values);
  tcase_add_test(tc, take_along_axis_values);
  tcase_add_test(tc, index_select_values);
  tcase_add_test(tc, one_hot_values);
  tcase_add_test(tc, embedding_values);
  tcase_add_test(tc, hash_consing_ops);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ops_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
