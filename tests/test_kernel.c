/* The kernel IR and lowering (codegen/lower.c): exact printed kernels for
 * small groups, and the whole pipeline (simplify, fusion, lowering, the
 * kernel IR evaluator of kernel_eval.c) against the interpreter on graphs
 * covering every op class. Three partitions are checked: the real fusion
 * pass, one kernel per node (everything read through buffers) and maximal
 * inlining (everything recomputed inside the anchors' kernels). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_eval.h"
#include "passes/passes.h"

/* ------------------------------------------------------------- helpers */

static uint32_t nid(const smelt_graph *g, smelt_node n) {
  return (uint32_t)(sm_get(g, n) - g->nodes);
}

/* Lowers group 0 of a hand-built partition and compares its text. */
static void expect_kernel(const smelt_graph *g, ke_group_desc d, const char *want) {
  uint32_t root = d.outputs[0];
  sm_fusion *f = ke_fusion_new(g, 1, &d, 1, &root);
  char *err = NULL;
  sm_kernel *k = sm_lower_group(f, 0, false, &err);
  ck_assert_msg(k != NULL, "lower: %s", err ? err : "oom");
  char *got = sm_kernel_print(k);
  ck_assert_msg(strcmp(got, want) == 0, "kernel text:\n%s\nwanted:\n%s", got, want);
  sm_free(got);
  sm_kernel_free(k);
  ke_fusion_free(f);
}

static bool same_value(double a, double b, double tol) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
  if (tol == 0) return a == b && signbit(a) == signbit(b);
  return tu_close(a, b, tol, tol);
}

static const ke_fuse_mode modes[] = {KE_FUSE_REAL, KE_FUSE_NONE, KE_FUSE_INLINE};
static const char *mode_names[] = {"fusion", "unfused", "inlined"};

/* Runs outs with the interpreter and the pipeline in every partition mode;
 * tol 0 asks for bit-exact results. */
#define CHECK_GRAPH(g, n, outs, nb, binds, tol) check_graph_(__LINE__, g, n, outs, nb, binds, tol)
static void check_graph_(int line, smelt_graph *g, int n, const smelt_node *outs, int nb,
                         const tu_bind *binds, double tol) {
  TU_ASSERT_OK(g);
  void *want[32];
  ck_assert(n <= 32);
  char *err = tu_run(g, n, outs, want, nb, binds);
  ck_assert_msg(!err, "line %d: interpreter: %s", line, err);
  for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
    void *got[32];
    ke_opts o = ke_defaults();
    o.mode = modes[m];
    err = ke_run_graph(g, n, outs, got, nb, binds, &o, NULL);
    ck_assert_msg(!err, "line %d (%s): %s", line, mode_names[m], err);
    for (int i = 0; i < n; i++) {
      smelt_dtype dt = smelt_node_dtype(g, outs[i]);
      int64_t cnt = smelt_node_numel(g, outs[i]);
      double *a = tu_to_double(dt, got[i], cnt), *b = tu_to_double(dt, want[i], cnt);
      for (int64_t j = 0; j < cnt; j++)
        TU_CHECK(same_value(a[j], b[j], tol), "line %d (%s): output %d element %lld: got %.17g, want %.17g",
                 line, mode_names[m], i, (long long)j, a[j], b[j]);
      free(a), free(b), free(got[i]);
    }
  }
  for (int i = 0; i < n; i++) free(want[i]);
}

/* The interpreter and the pipeline both fail, mentioning substr. */
static void check_error(smelt_graph *g, smelt_node out, int nb, const tu_bind *binds,
                        const char *substr) {
  void *r;
  char *err = tu_run(g, 1, &out, &r, nb, binds);
  ck_assert_msg(err && strstr(err, substr), "interpreter: %s", err ? err : "no error");
  free(err);
  for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
    ke_opts o = ke_defaults();
    o.mode = modes[m];
    err = ke_run_graph(g, 1, &out, &r, nb, binds, &o, NULL);
    ck_assert_msg(err && strstr(err, substr), "%s: %s", mode_names[m], err ? err : "no error");
    free(err);
  }
}

/* Deterministic test data: a mix of signs, fractions and repeats. */
static void fill_data(smelt_dtype dt, void *p, int64_t n, int seed) {
  for (int64_t i = 0; i < n; i++) {
    int64_t h = (i * 7919 + seed * 104729) % 23 - 11;
    double v = (double)h / (sm_is_float(dt) ? 4.0 : 1.0);
    switch (dt) {
    case SMELT_F32: ((float *)p)[i] = (float)v; break;
    case SMELT_F64: ((double *)p)[i] = v; break;
    case SMELT_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case SMELT_I64: ((int64_t *)p)[i] = (int64_t)v; break;
    default: ((uint8_t *)p)[i] = h > 0; break;
    }
  }
}

enum { BUFN = 4096 };
static _Alignas(16) unsigned char data_x[BUFN * 8], data_y[BUFN * 8], data_z[BUFN * 8];

#define KERNEL_BROADCAST_ADD \
  "kernel k0 pointwise domain [3,4] order [0,1] parallel 1\n" \
  "  b0: in f32[12] node 0\n" \
  "  b1: in f32[4] node 1\n" \
  "  b2: out f32[12] node 4\n" \
  "  %0 = affine 0 +4*i0 +1*i1\n" \
  "  %1 = load f32 b0[%0]\n" \
  "  %2 = idx 1\n" \
  "  %3 = load f32 b1[%2]\n" \
  "  %4 = add f32 %1, %3\n" \
  "  store b2[%0] = %4\n"
#define KERNEL_TRANSPOSE \
  "kernel k0 pointwise domain [4,2,3] order [0,1,2] parallel 0\n" \
  "  b0: in f32[24] node 0\n" \
  "  b1: out f32[24] node 2\n" \
  "  %0 = affine 0 +1*i0 +12*i1 +4*i2\n" \
  "  %1 = load f32 b0[%0]\n" \
  "  %2 = exp f32 %1\n" \
  "  %3 = affine 0 +6*i0 +3*i1 +1*i2\n" \
  "  store b1[%3] = %2\n"
#define KERNEL_PAD \
  "kernel k0 pointwise domain [4,6] order [0,1] parallel 1\n" \
  "  b0: in f32[12] node 0\n" \
  "  b1: out f32[24] node 1\n" \
  "  %0 = idx 0\n" \
  "  %1 = const i64 1\n" \
  "  %2 = ge bool %0, %1\n" \
  "  %3 = idx 1\n" \
  "  %4 = const i64 4\n" \
  "  %5 = lt bool %3, %4\n" \
  "  %6 = logical_and bool %2, %5\n" \
  "  %7 = affine -4 +4*i0 +1*i1\n" \
  "  %8 = load f32 b0[%7] if %6 else -1.5\n" \
  "  %9 = affine 0 +6*i0 +1*i1\n" \
  "  store b1[%9] = %8\n"
#define KERNEL_VIEW_STACK \
  "kernel k0 pointwise domain [3,2] from [6] order [0,1] parallel 0\n" \
  "  b0: in f32[6] node 0\n" \
  "  b1: out f32[6] node 2\n" \
  "  %0 = affine 0 +1*i0 +3*i1\n" \
  "  %1 = load f32 b0[%0]\n" \
  "  %2 = affine 0 +2*i0 +1*i1\n" \
  "  store b1[%2] = %1\n"
#define KERNEL_RECOMBINE \
  "kernel k0 reduce domain [4r,6] order [0,1] parallel 1\n" \
  "  b0: in f32[24] node 0\n" \
  "  b1: in f32[6] node 1\n" \
  "  b2: out f32[6] node 5\n" \
  "  b3: scratch f64[6] node 2\n" \
  "  %0 = idx 1\n" \
  "  %1 = affine 0 +6*i0 +1*i1\n" \
  "  %2 = load f32 b0[%1]\n" \
  "  %3 = acc a0  ; outer\n" \
  "  %4 = load f32 b1[%0]\n" \
  "  %5 = add f32 %3, %4  ; outer\n" \
  "  a0 = reduce_sum f32 (in f64) %2 in b3\n" \
  "  store outer b2[%0] = %5\n"
#define KERNEL_REDUCE_INNER \
  "kernel k0 reduce domain [4,8r] order [0,1] parallel 0\n" \
  "  b0: in f32[32] node 0\n" \
  "  b1: out f32[4] node 6\n" \
  "  %0 = affine 0 +8*i0 +1*i1\n" \
  "  %1 = load f32 b0[%0]\n" \
  "  %2 = acc a0  ; outer\n" \
  "  %3 = const f32 8\n" \
  "  %4 = div f32 %2, %3  ; outer\n" \
  "  %5 = idx 0\n" \
  "  a0 = reduce_sum f32 (in f64) %1\n" \
  "  store outer b1[%5] = %4\n"
#define KERNEL_REDUCE_OUTER \
  "kernel k0 reduce domain [4r,8] order [0,1] parallel 1\n" \
  "  b0: in f32[32] node 0\n" \
  "  b1: out f32[8] node 12\n" \
  "  b2: scratch f64[8] node 7\n" \
  "  %0 = affine 0 +8*i0 +1*i1\n" \
  "  %1 = load f32 b0[%0]\n" \
  "  %2 = acc a0  ; outer\n" \
  "  %3 = const f32 4\n" \
  "  %4 = div f32 %2, %3  ; outer\n" \
  "  %5 = idx 1\n" \
  "  a0 = reduce_sum f32 (in f64) %1 in b2\n" \
  "  store outer b1[%5] = %4\n"
#define KERNEL_MATMUL \
  "kernel k0 matmul domain [2,4,3r] order [0,2,1] parallel 0 m=0 n=1 k=2 a=%1 b=%3 acc=a0\n" \
  "  b0: in f32[6] node 0\n" \
  "  b1: in f32[12] node 1\n" \
  "  b2: out f32[8] node 3\n" \
  "  b3: scratch f32[8] node 2\n" \
  "  %0 = affine 0 +3*i0 +1*i2\n" \
  "  %1 = load f32 b0[%0]\n" \
  "  %2 = affine 0 +1*i1 +4*i2\n" \
  "  %3 = load f32 b1[%2]\n" \
  "  %4 = mul f32 %1, %3\n" \
  "  %5 = acc a0  ; outer\n" \
  "  %6 = relu f32 %5  ; outer\n" \
  "  %7 = affine 0 +4*i0 +1*i1\n" \
  "  a0 = reduce_sum f32 (in f32) %4 in b3\n" \
  "  store outer b2[%7] = %6\n"

/* ------------------------------------------------------- printed kernels */

START_TEST(test_print_broadcast_add) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 3, 4);
  smelt_node b = tu_input(g, "b", SMELT_F32, 1, 4);
  smelt_node y = smelt_add(g, x, b); /* b: reshape [1,4], expand [3,4] */
  TU_ASSERT_OK(g);
  uint32_t out = nid(g, y), mem[] = {nid(g, y) - 2, nid(g, y) - 1, nid(g, y)};
  expect_kernel(g, (ke_group_desc){SM_GROUP_POINTWISE, out, 3, mem, 1, &out}, KERNEL_BROADCAST_ADD);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_print_transpose) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 3, 2, 3, 4);
  smelt_node y = smelt_exp(g, smelt_permute(g, x, (int[]){2, 0, 1}));
  TU_ASSERT_OK(g);
  uint32_t out = nid(g, y), mem[] = {out - 1, out};
  expect_kernel(g, (ke_group_desc){SM_GROUP_POINTWISE, out, 2, mem, 1, &out}, KERNEL_TRANSPOSE);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_print_pad) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 3, 4);
  smelt_node y = smelt_pad(g, x, (int64_t[]){1, 0}, (int64_t[]){0, 2}, -1.5);
  TU_ASSERT_OK(g);
  uint32_t out = nid(g, y);
  expect_kernel(g, (ke_group_desc){SM_GROUP_POINTWISE, out, 1, &out, 1, &out}, KERNEL_PAD);
  smelt_graph_free(g);
}
END_TEST

/* A reshape after a permute is no strided view: a second view, whose
 * offsets would need idiv/imod of the domain index; the domain is refined
 * instead ([6] as [3,2]) and both offsets are affine. */
START_TEST(test_print_view_stack) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 2, 3);
  smelt_node t = smelt_transpose(g, x, 0, 1);
  smelt_node y = smelt_reshape(g, t, 1, (int64_t[]){6});
  TU_ASSERT_OK(g);
  uint32_t out = nid(g, y), mem[] = {nid(g, t), out};
  expect_kernel(g, (ke_group_desc){SM_GROUP_POINTWISE, out, 2, mem, 1, &out}, KERNEL_VIEW_STACK);
  smelt_graph_free(g);
}
END_TEST

/* Over the contiguous axis: register accumulators, reduced loop innermost;
 * over the outer axis: the contiguous axis stays innermost and the sum
 * lives in scratch. The mean's division is an outer epilogue. */
START_TEST(test_print_reduce_inner_outer) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 8);
  smelt_node s1 = smelt_mean(g, x, 1, (int[]){1}, true);
  smelt_node s0 = smelt_mean(g, x, 1, (int[]){0}, true);
  TU_ASSERT_OK(g);
  /* mean = reduce_sum / N: the reduction is the division's first input */
  uint32_t d1 = nid(g, s1), r1 = g->nodes[d1].inputs[0], m1[] = {r1, d1};
  uint32_t d0 = nid(g, s0), r0 = g->nodes[d0].inputs[0], m0[] = {r0, d0};
  expect_kernel(g, (ke_group_desc){SM_GROUP_REDUCE, r1, 2, m1, 1, &d1}, KERNEL_REDUCE_INNER);
  expect_kernel(g, (ke_group_desc){SM_GROUP_REDUCE, r0, 2, m0, 1, &d0}, KERNEL_REDUCE_OUTER);
  smelt_graph_free(g);
}
END_TEST

/* The epilogue's output [2,3] is the reduced space [1,6] unravelled; the
 * load of b at those coordinates recombines them (3*(i/3) + i%3 = i): no
 * division is left. */
START_TEST(test_print_recombine) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 6);
  smelt_node b = tu_input(g, "b", SMELT_F32, 2, 2, 3);
  smelt_node s = smelt_sum(g, x, 1, (int[]){0}, false);
  smelt_node y = smelt_add(g, smelt_reshape(g, s, 2, (int64_t[]){2, 3}), b);
  TU_ASSERT_OK(g);
  /* sum squeezes: reduce_sum, then a reshape */
  uint32_t out = nid(g, y), red = g->nodes[nid(g, s)].inputs[0];
  ck_assert_int_eq(g->nodes[red].op, OP_REDUCE_SUM);
  uint32_t mem[8];
  int nm = 0;
  for (uint32_t i = red; i <= out; i++) mem[nm++] = i;
  expect_kernel(g, (ke_group_desc){SM_GROUP_REDUCE, red, nm, mem, 1, &out}, KERNEL_RECOMBINE);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_print_matmul) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = tu_input(g, "a", SMELT_F32, 2, 2, 3);
  smelt_node b = tu_input(g, "b", SMELT_F32, 2, 3, 4);
  smelt_node y = smelt_relu(g, smelt_matmul(g, a, b));
  TU_ASSERT_OK(g);
  uint32_t out = nid(g, y), mm = out - 1, mem[] = {mm, out};
  expect_kernel(g, (ke_group_desc){SM_GROUP_MATMUL, mm, 2, mem, 1, &out}, KERNEL_MATMUL);
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------ end to end */

static const smelt_dtype num_dtypes[] = {SMELT_F32, SMELT_F64, SMELT_I32, SMELT_I64};

START_TEST(test_elementwise_dtypes) {
  for (int t = 0; t < 4; t++) {
    smelt_dtype dt = num_dtypes[t];
    smelt_graph *g = TU_GRAPH();
    smelt_node x = tu_input(g, "x", dt, 3, 2, 3, 5);
    smelt_node y = tu_input(g, "y", dt, 3, 2, 3, 5);
    smelt_node z = tu_input(g, "z", dt, 1, 5); /* broadcast */
    smelt_node o[24];
    int n = 0;
    o[n++] = smelt_add(g, smelt_mul(g, x, y), z);
    o[n++] = smelt_sub(g, smelt_maximum(g, x, z), smelt_minimum(g, y, x));
    o[n++] = smelt_add(g, smelt_neg(g, smelt_abs(g, x)), smelt_sign(g, y));
    o[n++] = smelt_relu(g, smelt_sub(g, x, y));
    o[n++] = smelt_logical_or(g, smelt_lt(g, x, y), smelt_logical_and(g, smelt_ge(g, x, z), smelt_ne(g, y, z)));
    o[n++] = smelt_where(g, smelt_le(g, x, z), x, smelt_pow(g, y, smelt_scalar_int(g, 2)));
    o[n++] = smelt_logical_not(g, smelt_eq(g, x, smelt_gt(g, y, z)));
    if (sm_is_float(dt)) {
      o[n++] = smelt_add(g, smelt_div(g, x, y), smelt_exp(g, smelt_tanh(g, z)));
      o[n++] = smelt_add(g, smelt_log(g, smelt_abs(g, x)), smelt_sqrt(g, smelt_abs(g, y)));
      o[n++] = smelt_add(g, smelt_rsqrt(g, smelt_abs(g, x)), smelt_reciprocal(g, y));
      o[n++] = smelt_mul(g, smelt_sin(g, x), smelt_add(g, smelt_cos(g, y), smelt_sigmoid(g, z)));
      o[n++] = smelt_pow(g, smelt_abs(g, x), y);
    } else {
      o[n++] = smelt_div(g, x, y); /* f32 */
    }
    for (int c = 0; c < 5; c++) o[n++] = smelt_cast(g, smelt_mul(g, x, y), c == 4 ? SMELT_BOOL : num_dtypes[c]);
    fill_data(dt, data_x, 30, 1);
    fill_data(dt, data_y, 30, 2);
    fill_data(dt, data_z, 5, 3);
    tu_bind b[] = {{"x", data_x}, {"y", data_y}, {"z", data_z}};
    CHECK_GRAPH(g, n, o, 3, b, 0);
    smelt_graph_free(g);
  }
}
END_TEST

/* Casts of specials and large values saturate, wrap and round as the
 * interpreter does. */
START_TEST(test_casts) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F64, 1, 8);
  smelt_node i = tu_input(g, "i", SMELT_I64, 1, 4);
  smelt_node o[] = {smelt_cast(g, x, SMELT_I32), smelt_cast(g, x, SMELT_I64), smelt_cast(g, x, SMELT_F32),
                    smelt_cast(g, x, SMELT_BOOL), smelt_cast(g, i, SMELT_F32), smelt_cast(g, i, SMELT_I32),
                    smelt_cast(g, smelt_cast(g, i, SMELT_F32), SMELT_I64)};
  double xd[] = {NAN, INFINITY, -INFINITY, 3e10, -3e10, -2.7, 0.1, 16777217.0};
  int64_t id[] = {(1ll << 53) + 3, -((1ll << 40) + 1), 5000000000ll, -1};
  tu_bind b[] = {{"x", xd}, {"i", id}};
  CHECK_GRAPH(g, 7, o, 2, b, 0);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_views) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 3, 2, 3, 4);
  smelt_node o[16];
  int n = 0;
  smelt_node p = smelt_permute(g, x, (int[]){2, 0, 1});             /* [4,2,3] */
  o[n++] = smelt_reshape(g, p, 2, (int64_t[]){8, 3});               /* a view stack */
  o[n++] = smelt_reshape(g, smelt_exp(g, p), 2, (int64_t[]){4, 6}); /* merged */
  o[n++] = smelt_flip(g, smelt_slice(g, x, (int64_t[]){0, 1, 1}, (int64_t[]){2, 3, 4}, (int64_t[]){1, 1, 2}), 2, (int[]){0, 2});
  o[n++] = smelt_expand(g, smelt_reshape(g, smelt_slice_axis(g, x, 1, 1, 2, 1), 3, (int64_t[]){2, 1, 4}), 3, (int64_t[]){2, 5, 4});
  o[n++] = smelt_reshape(g, smelt_transpose(g, smelt_reshape(g, x, 2, (int64_t[]){6, 4}), 0, 1), 3, (int64_t[]){2, 2, 6});
  o[n++] = smelt_sum(g, smelt_reshape(g, smelt_flip(g, x, 1, (int[]){1}), 2, (int64_t[]){3, 8}), 1, (int[]){0}, false);
  /* views over a computed (inlined) value */
  smelt_node e = smelt_mul(g, x, x);
  o[n++] = smelt_add(g, smelt_reshape(g, smelt_permute(g, e, (int[]){1, 2, 0}), 2, (int64_t[]){3, 8}),
                     smelt_reshape(g, smelt_flip(g, e, 1, (int[]){2}), 2, (int64_t[]){3, 8}));
  o[n++] = smelt_slice(g, smelt_reshape(g, p, 1, (int64_t[]){24}), (int64_t[]){3}, (int64_t[]){20}, (int64_t[]){5});
  fill_data(SMELT_F32, data_x, 24, 4);
  tu_bind b[] = {{"x", data_x}};
  CHECK_GRAPH(g, n, o, 1, b, 0);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_pad_concat) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 3, 4);
  smelt_node y = tu_input(g, "y", SMELT_I32, 2, 3, 2);
  smelt_node o[16];
  int n = 0;
  o[n++] = smelt_pad(g, x, (int64_t[]){1, 2}, (int64_t[]){2, 0}, 0.5);
  /* nested pads with two fill values; pad of an inlined value */
  o[n++] = smelt_pad(g, smelt_pad(g, smelt_exp(g, x), (int64_t[]){0, 1}, (int64_t[]){1, 0}, 2.0),
                     (int64_t[]){1, 1}, (int64_t[]){1, 1}, -3.0);
  o[n++] = smelt_pad(g, y, (int64_t[]){0, 3}, (int64_t[]){1, 1}, 7.9); /* i32 fill 7 */
  /* pad then reshape (mask kept through a merge), then slice and flip */
  smelt_node pr = smelt_reshape(g, smelt_pad(g, x, (int64_t[]){1, 0}, (int64_t[]){1, 0}, 1.0), 3, (int64_t[]){5, 2, 2});
  o[n++] = smelt_flip(g, pr, 1, (int[]){0});
  o[n++] = smelt_slice(g, smelt_pad(g, x, (int64_t[]){2, 2}, (int64_t[]){2, 2}, 9.0), (int64_t[]){1, 0}, (int64_t[]){6, 8}, (int64_t[]){2, 3});
  /* pad then a reshape that no view expresses */
  o[n++] = smelt_reshape(g, smelt_transpose(g, smelt_pad(g, smelt_neg(g, x), (int64_t[]){1, 0}, (int64_t[]){0, 0}, 4.0), 0, 1), 1, (int64_t[]){16});
  smelt_node xs[] = {x, smelt_cast(g, y, SMELT_F32), smelt_neg(g, x)};
  o[n++] = smelt_concat(g, 3, xs, 1);
  smelt_node ys[] = {smelt_exp(g, x), x};
  o[n++] = smelt_concat(g, 2, ys, 0);
  smelt_node zs[] = {smelt_slice_axis(g, x, 1, 0, 0, 1), x}; /* an empty part */
  o[n++] = smelt_concat(g, 2, zs, 1);
  o[n++] = smelt_pad(g, smelt_concat(g, 2, ys, 0), (int64_t[]){1, 1}, (int64_t[]){1, 1}, 0.0);
  fill_data(SMELT_F32, data_x, 12, 5);
  fill_data(SMELT_I32, data_y, 6, 6);
  tu_bind b[] = {{"x", data_x}, {"y", data_y}};
  CHECK_GRAPH(g, n, o, 2, b, 0);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_gather_scatter) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 5);
  smelt_node i = tu_input(g, "i", SMELT_I64, 2, 3, 5);
  smelt_node j = tu_input(g, "j", SMELT_I32, 2, 4, 2);
  smelt_node o[8];
  int n = 0;
  o[n++] = smelt_gather(g, x, 0, i);
  o[n++] = smelt_gather(g, smelt_exp(g, x), 1, j);
  o[n++] = smelt_pad(g, smelt_gather(g, x, 0, i), (int64_t[]){1, 1}, (int64_t[]){1, 1}, 0.0);
  o[n++] = smelt_scatter_add(g, x, 0, i, smelt_neg(g, smelt_gather(g, x, 0, i)));
  o[n++] = smelt_embedding(g, x, i);
  float xd[20];
  for (int k = 0; k < 20; k++) xd[k] = (float)(k % 7) - 3;
  int64_t id[15];
  for (int k = 0; k < 15; k++) id[k] = (k * 3) % 4;
  int32_t jd[8] = {4, 0, 1, 1, 3, 2, 0, 4};
  tu_bind b[] = {{"x", xd}, {"i", id}, {"j", jd}};
  CHECK_GRAPH(g, n, o, 3, b, 0);
  /* out of range, negative */
  smelt_node bad = smelt_gather(g, x, 1, j);
  jd[5] = 5;
  check_error(g, bad, 3, b, "out of range");
  jd[5] = -1;
  check_error(g, bad, 3, b, "out of range");
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_sources) {
  smelt_graph *g = TU_GRAPH();
  smelt_node o[16];
  int n = 0;
  o[n++] = smelt_arange(g, SMELT_F32, 0.5, 7.5, 0.75);
  o[n++] = smelt_arange(g, SMELT_I64, -3, 20, 4);
  o[n++] = smelt_linspace(g, SMELT_F64, -1, 2, 7);
  o[n++] = smelt_eye(g, SMELT_I32, 3, 4);
  o[n++] = smelt_rand(g, SMELT_F32, 2, (int64_t[]){5, 7}, 11);
  o[n++] = smelt_randn(g, SMELT_F64, 2, (int64_t[]){3, 3}, 12);
  o[n++] = smelt_transpose(g, smelt_randn(g, SMELT_F32, 2, (int64_t[]){4, 3}, 13), 0, 1);
  o[n++] = smelt_dropout(g, smelt_ones(g, SMELT_F32, 2, (int64_t[]){6, 6}), 0.5, 14, true);
  o[n++] = smelt_full(g, SMELT_F64, 2, (int64_t[]){2, 3}, 2.5);
  o[n++] = smelt_add(g, smelt_const_array(g, SMELT_F32, 1, (int64_t[]){3}, (float[]){1, 2, 3}), smelt_scalar(g, 1));
  CHECK_GRAPH(g, n, o, 0, NULL, 0);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_reductions) {
  for (int t = 0; t < 4; t++) {
    smelt_dtype dt = num_dtypes[t];
    smelt_graph *g = TU_GRAPH();
    smelt_node x = tu_input(g, "x", dt, 3, 3, 4, 5);
    smelt_node o[16];
    int n = 0;
    o[n++] = smelt_sum(g, x, 1, (int[]){2}, false);
    o[n++] = smelt_sum(g, x, 2, (int[]){0, 2}, true);
    o[n++] = smelt_sum(g, x, 0, NULL, false);
    o[n++] = smelt_prod(g, x, 1, (int[]){1}, false);
    o[n++] = smelt_max(g, x, 1, (int[]){0}, false);
    o[n++] = smelt_min(g, x, 2, (int[]){1, 2}, false);
    o[n++] = smelt_argmax(g, x, 0, false);
    o[n++] = smelt_argmin(g, x, 2, true);
    o[n++] = smelt_argmax(g, smelt_transpose(g, x, 1, 2), 1, false);
    if (sm_is_float(dt)) {
      o[n++] = smelt_mean(g, x, 1, (int[]){1}, false);
      o[n++] = smelt_var(g, x, 1, (int[]){2}, 1, false);
      o[n++] = smelt_softmax(g, x, 0);
      o[n++] = smelt_logsumexp(g, x, 1, (int[]){2}, false);
    }
    fill_data(dt, data_x, 60, 7); /* many ties */
    tu_bind b[] = {{"x", data_x}};
    CHECK_GRAPH(g, n, o, 1, b, sm_is_float(dt) ? 1e-12 : 0);
    smelt_graph_free(g);
  }
}
END_TEST

/* NaN wins max/min and the arg-reductions (its first occurrence); ties go
 * to the first index; infinities; sums over empty axes. */
START_TEST(test_reduction_specials) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 3);
  smelt_node e = tu_input(g, "e", SMELT_F32, 2, 3, 0);
  smelt_node o[] = {smelt_max(g, x, 1, (int[]){1}, false), smelt_min(g, x, 1, (int[]){0}, false),
                    smelt_argmax(g, x, 1, false),          smelt_argmin(g, x, 0, false),
                    smelt_argmax(g, x, 0, false),          smelt_sum(g, x, 1, (int[]){0}, false),
                    smelt_sum(g, e, 1, (int[]){1}, false), smelt_prod(g, e, 1, (int[]){1}, false),
                    smelt_max(g, e, 1, (int[]){0}, false)};
  float xd[12] = {1, NAN, 3, -INFINITY, -INFINITY, -INFINITY, 2, NAN, 2, 5, 5, 1};
  tu_bind b[] = {{"x", xd}, {"e", data_x}};
  CHECK_GRAPH(g, 9, o, 2, b, 0);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_matmul) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = tu_input(g, "a", SMELT_F32, 3, 2, 3, 4);
  smelt_node b = tu_input(g, "b", SMELT_F32, 3, 2, 4, 5);
  smelt_node c = tu_input(g, "c", SMELT_F32, 2, 5, 4);
  smelt_node ia = tu_input(g, "ia", SMELT_I32, 2, 3, 4);
  smelt_node o[] = {
      smelt_matmul(g, a, b),
      smelt_relu(g, smelt_add(g, smelt_matmul(g, a, smelt_transpose(g, c, 0, 1)), smelt_scalar(g, 0.5))),
      smelt_matmul(g, smelt_transpose(g, b, 1, 2), smelt_transpose(g, a, 1, 2)),
      smelt_matmul(g, smelt_exp(g, a), smelt_reshape(g, smelt_slice_axis(g, c, 0, 1, 2, 1), 1, (int64_t[]){4})),
      smelt_matmul(g, ia, smelt_transpose(g, ia, 0, 1)),
      smelt_matmul(g, smelt_slice_axis(g, a, 2, 0, 0, 1), smelt_slice_axis(g, b, 1, 0, 0, 1)), /* K = 0 */
  };
  fill_data(SMELT_F32, data_x, 24, 8);
  fill_data(SMELT_F32, data_y, 40, 9);
  fill_data(SMELT_F32, data_z, 20, 10);
  static int32_t iad[12];
  fill_data(SMELT_I32, iad, 12, 11);
  tu_bind bd[] = {{"a", data_x}, {"b", data_y}, {"c", data_z}, {"ia", iad}};
  CHECK_GRAPH(g, 6, o, 4, bd, 1e-5); /* matmuls sum in f32 */
  smelt_graph_free(g);
}
END_TEST

/* The gradients of a small MLP's loss. */
START_TEST(test_mlp_gradient) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 3);
  smelt_node lab = tu_input(g, "lab", SMELT_I64, 1, 4);
  smelt_node w1 = smelt_param(g, "w1", SMELT_F32, 2, (int64_t[]){3, 5}, smelt_init_normal(0, 0.5, 1));
  smelt_node b1 = smelt_param(g, "b1", SMELT_F32, 1, (int64_t[]){5}, smelt_init_uniform(-0.1, 0.1, 2));
  smelt_node w2 = smelt_param(g, "w2", SMELT_F32, 2, (int64_t[]){5, 3}, smelt_init_normal(0, 0.5, 3));
  smelt_node h = smelt_relu(g, smelt_add(g, smelt_matmul(g, x, w1), b1));
  smelt_node logits = smelt_matmul(g, h, w2);
  smelt_node loss = smelt_cross_entropy(g, logits, lab);
  smelt_node grads[3];
  smelt_node wrt[] = {w1, b1, w2};
  ck_assert_int_eq(smelt_grad(g, loss, 3, wrt, grads), 0);
  smelt_node o[] = {loss, grads[0], grads[1], grads[2]};
  fill_data(SMELT_F32, data_x, 12, 12);
  int64_t labels[] = {0, 2, 1, 2};
  tu_bind b[] = {{"x", data_x}, {"lab", labels}};
  CHECK_GRAPH(g, 4, o, 2, b, 1e-5);
  smelt_graph_free(g);
}
END_TEST

START_TEST(test_empty_and_scalar) {
  smelt_graph *g = TU_GRAPH();
  smelt_node s = tu_input(g, "s", SMELT_F32, 0);
  smelt_node e = tu_input(g, "e", SMELT_F32, 2, 0, 3);
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 3);
  smelt_node o[] = {smelt_exp(g, s), smelt_add(g, e, x), smelt_sum(g, e, 1, (int[]){1}, false),
                    smelt_sum(g, e, 1, (int[]){0}, false), smelt_mul(g, x, s),
                    smelt_pad(g, e, (int64_t[]){1, 0}, (int64_t[]){1, 0}, 3.0), smelt_sum(g, s, 0, NULL, false)};
  float sd = 1.5f, xd[3] = {1, 2, 3};
  tu_bind b[] = {{"s", &sd}, {"e", data_x}, {"x", xd}};
  CHECK_GRAPH(g, 7, o, 3, b, 0);
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------ domain refinement */

/* The kernels of g's real partition (sm_optimize, sm_fuse, lowering) for
 * the given roots, as text (malloc'ed). */
static char *lower_all(smelt_graph *g, int n, const smelt_node *outs) {
  TU_ASSERT_OK(g);
  uint32_t want[16], roots[16];
  ck_assert(n <= 16);
  for (int k = 0; k < n; k++) want[k] = nid(g, outs[k]);
  uint32_t *map = malloc(sizeof *map * smelt_graph_node_count(g));
  smelt_graph *opt = sm_optimize(g, (size_t)n, want, map, NULL);
  ck_assert_ptr_nonnull(opt);
  for (int k = 0; k < n; k++) roots[k] = map[want[k]] - 1;
  free(map);
  char *err = NULL;
  sm_fusion *f = sm_fuse(opt, (size_t)n, roots, &err);
  ck_assert_msg(f != NULL, "sm_fuse: %s", err ? err : "oom");
  sm_buf b = {0};
  for (size_t i = 0; i < f->ngroups; i++) {
    sm_kernel *k = sm_lower_group(f, i, false, &err);
    ck_assert_msg(k != NULL, "lower: %s", err ? err : "oom");
    sm_kernel_print_buf(&b, k);
    sm_kernel_free(k);
  }
  sm_fusion_free(f);
  smelt_graph_free(opt);
  char *t = strdup(b.data ? b.data : "");
  sm_buf_free(&b);
  return t;
}

/* The text of the kernel whose header starts with `head` in the text of
 * lower_all (malloc'ed), failing when there is none. */
static char *kernel_with(const char *all, const char *head) {
  const char *p = strstr(all, head);
  ck_assert_msg(p != NULL, "no kernel \"%s\" in:\n%s", head, all);
  while (p > all && p[-1] != '\n') p--;
  const char *e = strstr(p + 1, "\nkernel ");
  size_t len = e ? (size_t)(e - p) + 1 : strlen(p);
  char *t = malloc(len + 1);
  memcpy(t, p, len);
  t[len] = 0;
  return t;
}

static void expect_no_division(const char *kernel) {
  ck_assert_msg(!strstr(kernel, "idiv") && !strstr(kernel, "imod"), "a division left:\n%s", kernel);
}

/* Lowers the outputs o of g; the kernel whose header starts with header
 * must compute without division. */
static void expect_refined(smelt_graph *g, int n, smelt_node *o, const char *header) {
  char *all = lower_all(g, n, o);
  char *k = kernel_with(all, header);
  expect_no_division(k);
  free(k);
  free(all);
}

/* The gradient of a 2x2 max pool scatters to the window's argmax: over
 * [2,3,4,6] it reads the pooled gradient at (h/2, w/2) and compares the
 * argmax with the window position (h%2)*2 + w%2. The domain is refined to
 * [2,3,2,2,3,2] (h as (h/2, h%2), w likewise): every index is affine, and
 * the window positions are the inner loops. */
START_TEST(test_refine_pool) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 4, 2, 3, 4, 6);
  smelt_node w = tu_input(g, "w", SMELT_F32, 4, 2, 3, 2, 3);
  smelt_node y = smelt_max_pool2d(g, smelt_relu(g, x), (int64_t[]){2, 2}, NULL, NULL, NULL, false);
  smelt_node loss = smelt_sum(g, smelt_mul(g, y, w), 0, NULL, false);
  smelt_node dx;
  ck_assert_int_eq(smelt_grad(g, loss, 1, &x, &dx), 0);
  smelt_node o[] = {y, dx};
  expect_refined(g, 2, o, "pointwise domain [2,3,2,2,3,2] from [2,3,4,6] order [0,1,2,4,3,5]");
  fill_data(SMELT_F32, data_x, 144, 13);
  fill_data(SMELT_F32, data_y, 36, 14);
  tu_bind b[] = {{"x", data_x}, {"w", data_y}};
  CHECK_GRAPH(g, 2, o, 2, b, 0);
  smelt_graph_free(g);
}
END_TEST

/* A convolution's input gradient sums the padded, overlapping windows of
 * the column gradient back (the vjp of unfold, then of pad): the masks of
 * the pads narrow each coordinate's range, so the offsets are unravelled
 * exactly, without division. */
START_TEST(test_refine_conv_input_grad) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 4, 2, 3, 5, 6);
  smelt_node w = tu_input(g, "w", SMELT_F32, 4, 4, 3, 3, 3);
  smelt_node y = smelt_conv2d(g, x, w, SMELT_INVALID, NULL, (int64_t[]){1, 1}, NULL, 1);
  smelt_node loss = smelt_sum(g, smelt_mul(g, y, y), 0, NULL, false);
  smelt_node dx;
  ck_assert_int_eq(smelt_grad(g, loss, 1, &x, &dx), 0);
  smelt_node o[] = {dx};
  expect_refined(g, 1, o, "pointwise domain [2,3,5,6]");
  fill_data(SMELT_F32, data_x, 180, 15);
  fill_data(SMELT_F32, data_y, 108, 16);
  tu_bind b[] = {{"x", data_x}, {"w", data_y}};
  CHECK_GRAPH(g, 1, o, 2, b, 1e-5); /* matmuls sum in f32 */
  smelt_graph_free(g);
}
END_TEST

/* [24] read as a permuted [4,2,3] needs one split only ([4,6]: 12a + 4b
 * = 4(3a + b)); a transpose of [5,7] read as [5,7] has no split that
 * divides its extents: it keeps one idiv (recombined with the remainder:
 * 7*(j%5) + j/5 = 7j - 34*(j/5)) and its domain. */
START_TEST(test_refine_limits) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 3, 2, 3, 4);
  smelt_node a = smelt_reshape(g, smelt_permute(g, x, (int[]){2, 0, 1}), 1, (int64_t[]){24});
  smelt_node v = tu_input(g, "v", SMELT_F32, 2, 5, 7);
  smelt_node c = smelt_reshape(g, smelt_transpose(g, v, 0, 1), 2, (int64_t[]){5, 7});
  smelt_node o[] = {smelt_exp(g, a), smelt_exp(g, c)};
  expect_refined(g, 2, o, "pointwise domain [4,6] from [24]");
  char *all = lower_all(g, 2, o);
  char *k = kernel_with(all, "pointwise domain [5,7]");
  ck_assert_msg(strstr(k, "idiv") && !strstr(k, "imod"), "%s", k);
  free(k);
  free(all);
  fill_data(SMELT_F32, data_x, 24, 17);
  fill_data(SMELT_F32, data_y, 35, 18);
  tu_bind b[] = {{"x", data_x}, {"v", data_y}};
  CHECK_GRAPH(g, 2, o, 2, b, 0);
  smelt_graph_free(g);
}
END_TEST

/* The evaluator catches out-of-bounds accesses and reports checks. */
START_TEST(test_evaluator_catches) {
  int64_t ext[] = {4};
  sm_kernel *k = sm_kernel_new("k", SM_KERNEL_POINTWISE, 1, ext, NULL);
  int in = sm_kernel_arg(k, 0, SMELT_F32, KA_IN, 3), out = sm_kernel_arg(k, 1, SMELT_F32, KA_OUT, 4);
  int i = sm_kv_idx(k, 0);
  sm_kernel_store(k, out, i, sm_kv_load(k, in, i, -1, 0, 0), false, false);
  float a[3] = {1, 2, 3}, b[4];
  void *args[] = {a, b};
  sm_kctx ctx = {0, 1, 0, 0, 0};
  char *err = NULL;
  ck_assert_int_eq(ke_run(k, args, &ctx, &err), -1);
  ck_assert_ptr_nonnull(strstr(err, "outside"));
  free(err);
  sm_kernel_free(k);
  k = sm_kernel_new("k", SM_KERNEL_POINTWISE, 1, ext, NULL);
  out = sm_kernel_arg(k, 1, SMELT_I64, KA_OUT, 4);
  i = sm_kv_idx(k, 0);
  sm_kernel_store(k, out, i, sm_kv_check(k, i, 3), false, false);
  int64_t c[4];
  args[0] = c;
  ck_assert_int_eq(ke_run(k, args, &ctx, &err), -1);
  ck_assert_int_eq(ctx.error, 1);
  ck_assert_int_eq(ctx.bad_index, 3);
  free(err);
  sm_kernel_free(k);
}
END_TEST

/* Every allocation of sm_lower_group may fail: NULL, no message or a
 * message, nothing leaked (valgrind and ASan check), then success. */
START_TEST(test_lower_alloc_failures) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 6);
  smelt_node p = smelt_reshape(g, smelt_transpose(g, smelt_pad(g, smelt_exp(g, x), (int64_t[]){1, 0}, (int64_t[]){0, 0}, 2.0), 0, 1), 2, (int64_t[]){3, 10});
  smelt_node y = smelt_argmax(g, p, 0, true);
  TU_ASSERT_OK(g);
  uint32_t out = nid(g, y), mem[16];
  int nm = 0;
  for (uint32_t i = nid(g, x) + 1; i <= out; i++) mem[nm++] = i;
  ke_group_desc d = {SM_GROUP_REDUCE, out, nm, mem, 1, &out};
  sm_fusion *f = ke_fusion_new(g, 1, &d, 1, &out);
  bool ok = false;
  for (long n = 0; n < 10000 && !ok; n++) {
    char *err = NULL;
    sm_alloc_fail_after(n);
    sm_kernel *k = sm_lower_group(f, 0, false, &err);
    sm_alloc_fail_after(-1);
    ok = k != NULL;
    ck_assert(!(k && err));
    sm_free(err);
    sm_kernel_free(k);
  }
  ck_assert(ok);
  ke_fusion_free(f);
  smelt_graph_free(g);
}
END_TEST

int main(void) {
  Suite *s = suite_create("kernel");
  TCase *tc = tcase_create("print");
  tcase_add_test(tc, test_print_broadcast_add);
  tcase_add_test(tc, test_print_transpose);
  tcase_add_test(tc, test_print_pad);
  tcase_add_test(tc, test_print_view_stack);
  tcase_add_test(tc, test_print_reduce_inner_outer);
  tcase_add_test(tc, test_print_recombine);
  tcase_add_test(tc, test_print_matmul);
  tcase_add_test(tc, test_lower_alloc_failures);
  suite_add_tcase(s, tc);
  tc = tcase_create("pipeline");
  tcase_add_test(tc, test_evaluator_catches);
  tcase_add_test(tc, test_elementwise_dtypes);
  tcase_add_test(tc, test_casts);
  tcase_add_test(tc, test_views);
  tcase_add_test(tc, test_pad_concat);
  tcase_add_test(tc, test_gather_scatter);
  tcase_add_test(tc, test_sources);
  tcase_add_test(tc, test_reductions);
  tcase_add_test(tc, test_reduction_specials);
  tcase_add_test(tc, test_matmul);
  tcase_add_test(tc, test_mlp_gradient);
  tcase_add_test(tc, test_empty_and_scalar);
  tcase_add_test(tc, test_refine_pool);
  tcase_add_test(tc, test_refine_conv_input_grad);
  tcase_add_test(tc, test_refine_limits);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
