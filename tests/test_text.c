/* The text format: canonical printing, parsing, round trips over graphs
 * that cover every op and attribute kind, byte-exact output of small
 * graphs, the parser's error messages, allocation failures and a
 * deterministic fuzz of malformed inputs.
 *
 * Graph files: the .smelt files of tests/graphs are read from the directory named by
 * the environment variable SMELT_TEST_GRAPHS; without it, from "graphs"
 * next to this source file as the compiler names it (__FILE__, which meson
 * gives relative to the build directory the tests run in), then
 * "tests/graphs" and "../tests/graphs". canonical_*.smelt files must print
 * back byte for byte; the others are hand-written (with sugar) and must
 * round-trip once parsed. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

/* ------------------------------------------------------------ helpers */

static smelt_graph *parse_str(const char *text, char *err, size_t errlen) {
  return smelt_graph_parse(text, strlen(text), "t.smelt", err, errlen);
}

/* print(parse(print(g))) == print(g), with the same node and output
 * counts; the constants' bytes survive exactly. */
static void check_round_trip_(const char *file, int line, smelt_graph *g, const char *what) {
  if (smelt_graph_error(g))
    _ck_assert_failed(file, line, "graph error", "%s: %s", what, smelt_graph_error(g));
  char *t1 = smelt_graph_print(g);
  ck_assert_ptr_nonnull(t1);
  char err[1024];
  smelt_graph *g2 = smelt_graph_parse(t1, strlen(t1), what, err, sizeof err);
  if (!g2) _ck_assert_failed(file, line, "parse failed", "%s\n--- text:\n%s", err, t1);
  char *t2 = smelt_graph_print(g2);
  ck_assert_ptr_nonnull(t2);
  if (strcmp(t1, t2) != 0)
    _ck_assert_failed(file, line, "round trip", "%s: texts differ\n--- first:\n%s--- second:\n%s",
                      what, t1, t2);
  ck_assert_uint_eq(smelt_graph_node_count(g), smelt_graph_node_count(g2));
  ck_assert_uint_eq(smelt_graph_output_count(g), smelt_graph_output_count(g2));
  for (size_t i = 0; i < g->nnodes; i++) {
    const sm_node *a = &g->nodes[i], *b = &g2->nodes[i];
    ck_assert_int_eq(a->op, b->op);
    ck_assert_uint_eq(a->niattr, b->niattr);
    if (a->niattr) ck_assert(memcmp(a->iattr, b->iattr, a->niattr * sizeof(int64_t)) == 0);
    if (a->op == OP_CONST || (a->op == OP_PARAM && a->data)) {
      size_t n = (size_t)sm_numel(a->rank, a->shape) * smelt_dtype_size((smelt_dtype)a->dtype);
      bool nan_inside = false;
      for (size_t k = 0; a->dtype == SMELT_F32 && k < n / 4; k++)
        nan_inside = nan_inside || isnan(((const float *)a->data)[k]);
      for (size_t k = 0; a->dtype == SMELT_F64 && k < n / 8; k++)
        nan_inside = nan_inside || isnan(((const double *)a->data)[k]);
      if (!nan_inside && a->dtype != SMELT_BOOL)
        ck_assert_msg(n == 0 || memcmp(a->data, b->data, n) == 0, "%s: data of node %zu differs",
                      what, i);
    }
    if (!isnan(a->fattr[0]) && !isnan(a->fattr[1]))
      ck_assert_msg(memcmp(a->fattr, b->fattr, sizeof a->fattr) == 0,
                    "%s: fattr of node %zu differs", what, i);
  }
  smelt_free(t1);
  smelt_free(t2);
  smelt_graph_free(g2);
}
#define check_round_trip(g, what) check_round_trip_(__FILE__, __LINE__, (g), (what))

/* ------------------------------------------------- graphs by the API */

static smelt_graph *g_elementwise(void) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = tu_input(g, "a", SMELT_F32, 2, 2, 3);
  smelt_node b = tu_input(g, "b", SMELT_F32, 1, 3);
  smelt_node ia = tu_input(g, "ia", SMELT_I32, 2, 2, 3);
  smelt_node s = tu_input(g, "s", SMELT_I64, 0);
  smelt_node m = tu_input(g, "m", SMELT_BOOL, 2, 2, 3);
  smelt_node d = tu_input(g, "d", SMELT_F64, 2, 1, 3);
  smelt_node (*un[])(smelt_graph *, smelt_node) = {
      smelt_neg,  smelt_abs, smelt_sign, smelt_exp,  smelt_log,     smelt_sqrt,
      smelt_rsqrt, smelt_reciprocal, smelt_sin, smelt_cos, smelt_tanh, smelt_sigmoid,
      smelt_relu, smelt_gelu, smelt_stop_gradient};
  smelt_node (*bin[])(smelt_graph *, smelt_node, smelt_node) = {
      smelt_add, smelt_sub, smelt_mul, smelt_div, smelt_pow, smelt_maximum, smelt_minimum,
      smelt_lt,  smelt_le,  smelt_gt,  smelt_ge,  smelt_eq,  smelt_ne};
  int k = 0;
  char name[32];
  for (size_t i = 0; i < sizeof un / sizeof un[0]; i++) {
    snprintf(name, sizeof name, "u%d", k++);
    smelt_output(g, name, un[i](g, a));
    snprintf(name, sizeof name, "u%d", k++);
    smelt_output(g, name, un[i](g, ia));
  }
  for (size_t i = 0; i < sizeof bin / sizeof bin[0]; i++) {
    snprintf(name, sizeof name, "b%d", k++);
    smelt_output(g, name, bin[i](g, a, b));
    snprintf(name, sizeof name, "b%d", k++);
    smelt_output(g, name, bin[i](g, ia, d));
    snprintf(name, sizeof name, "b%d", k++);
    smelt_output(g, name, bin[i](g, ia, s));
    snprintf(name, sizeof name, "b%d", k++);
    smelt_output(g, name, bin[i](g, a, smelt_scalar(g, 2.5)));
    snprintf(name, sizeof name, "b%d", k++);
    smelt_output(g, name, bin[i](g, smelt_scalar_int(g, -3), ia));
  }
  smelt_output(g, "not", smelt_logical_not(g, m));
  smelt_output(g, "and", smelt_logical_and(g, m, a));
  smelt_output(g, "or", smelt_logical_or(g, ia, m));
  smelt_output(g, "where", smelt_where(g, m, a, b));
  smelt_output(g, "where2", smelt_where(g, smelt_gt(g, a, smelt_scalar(g, 0)), smelt_scalar(g, 1),
                                        smelt_scalar_int(g, 0)));
  for (int dt = 0; dt < SMELT_DTYPE_COUNT; dt++) {
    snprintf(name, sizeof name, "cast%d", dt);
    smelt_output(g, name, smelt_cast(g, a, (smelt_dtype)dt));
  }
  smelt_output(g, "clamp", smelt_clamp(g, a, -0.5, 0.25));
  smelt_output(g, "clamp_i", smelt_clamp(g, ia, -1, INFINITY));
  /* a float literal keeps its double value when it meets f64 */
  smelt_output(g, "precise", smelt_mul(g, d, smelt_scalar(g, 1.0000000001)));
  smelt_output(g, "tiny", smelt_add(g, d, smelt_scalar(g, 1e-310)));
  smelt_output(g, "nanlit", smelt_add(g, a, smelt_scalar(g, NAN)));
  smelt_output(g, "inflit", smelt_minimum(g, a, smelt_scalar(g, -INFINITY)));
  smelt_output(g, "big", smelt_add(g, s, smelt_scalar_int(g, INT64_MIN)));
  smelt_node named = smelt_mul(g, a, a);
  smelt_set_name(g, named, "sq.a_1");
  smelt_output(g, "named", smelt_add(g, named, smelt_mul(g, a, a)));
  return g;
}

static smelt_graph *g_reductions(void) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 3, 2, 3, 4);
  smelt_node xi = tu_input(g, "xi", SMELT_I32, 2, 2, 3);
  smelt_node xb = tu_input(g, "xb", SMELT_BOOL, 1, 5);
  smelt_node (*red[])(smelt_graph *, smelt_node, int, const int *, bool) = {
      smelt_sum, smelt_mean, smelt_prod, smelt_max, smelt_min, smelt_logsumexp};
  char name[32];
  int k = 0;
  for (size_t i = 0; i < sizeof red / sizeof red[0]; i++) {
    snprintf(name, sizeof name, "r%d", k++);
    smelt_output(g, name, red[i](g, x, 1, (int[]){1}, false));
    snprintf(name, sizeof name, "r%d", k++);
    smelt_output(g, name, red[i](g, x, 2, (int[]){-1, 0}, true));
    snprintf(name, sizeof name, "r%d", k++);
    smelt_output(g, name, red[i](g, x, 0, NULL, false));
  }
  smelt_output(g, "sum_i", smelt_sum(g, xi, 1, (int[]){0}, false));
  smelt_output(g, "sum_b", smelt_sum(g, xb, 0, NULL, false));
  smelt_output(g, "prod_i", smelt_prod(g, xi, 0, NULL, true));
  smelt_output(g, "max_i", smelt_max(g, xi, 1, (int[]){1}, false));
  for (int c = 0; c < 3; c++) {
    snprintf(name, sizeof name, "var%d", c);
    smelt_output(g, name, smelt_var(g, x, 1, (int[]){2}, c, c == 1));
    snprintf(name, sizeof name, "std%d", c);
    smelt_output(g, name, smelt_std(g, x, 2, (int[]){0, 2}, c, c != 1));
  }
  smelt_output(g, "argmax", smelt_argmax(g, x, -1, false));
  smelt_output(g, "argmin", smelt_argmin(g, x, 0, true));
  smelt_node v, ix;
  smelt_max_dim(g, x, 1, false, &v, &ix);
  smelt_output(g, "maxv", v);
  smelt_output(g, "maxi", ix);
  smelt_min_dim(g, xi, -1, true, &v, &ix);
  smelt_output(g, "minv", v);
  smelt_output(g, "mini", ix);
  return g;
}

static smelt_graph *g_views(void) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 3, 2, 3, 4);
  smelt_node y = tu_input(g, "y", SMELT_I32, 3, 2, 1, 4);
  smelt_output(g, "reshape", smelt_reshape(g, x, 2, TU_DIMS(-1, 4)));
  smelt_output(g, "permute", smelt_permute(g, x, (int[]){2, 0, 1}));
  smelt_output(g, "transpose", smelt_transpose(g, x, 0, -1));
  smelt_output(g, "expand", smelt_expand(g, y, 4, TU_DIMS(5, -1, 3, 4)));
  smelt_output(g, "broadcast_to", smelt_broadcast_to(g, y, 3, TU_DIMS(2, 7, 4)));
  smelt_output(g, "squeeze", smelt_squeeze(g, y, 0, NULL));
  smelt_output(g, "squeeze1", smelt_squeeze(g, y, 1, (int[]){1}));
  smelt_output(g, "unsqueeze", smelt_unsqueeze(g, x, -1));
  smelt_output(g, "flatten", smelt_flatten(g, x, 0, 1));
  smelt_output(g, "slice", smelt_slice(g, x, TU_DIMS(-1, 0, 1), TU_DIMS(SMELT_END, -1, 100),
                                       TU_DIMS(1, 2, 2)));
  smelt_output(g, "slice_empty", smelt_slice_axis(g, x, 1, 2, 1, 1));
  smelt_output(g, "slice_one", smelt_slice_axis(g, x, 2, -2, -1, 5));
  smelt_output(g, "flip", smelt_flip(g, x, 2, (int[]){0, -1}));
  smelt_output(g, "pad", smelt_pad(g, x, TU_DIMS(1, 0, 2), TU_DIMS(0, 3, 0), 0.1));
  smelt_output(g, "pad_i", smelt_pad(g, y, TU_DIMS(0, 1, 0), TU_DIMS(2, 0, 0), -7));
  smelt_output(g, "pad_nan", smelt_pad(g, x, TU_DIMS(0, 0, 1), TU_DIMS(0, 0, 1), NAN));
  smelt_node xs[3] = {x, smelt_cast(g, x, SMELT_F64), y};
  xs[2] = smelt_expand(g, y, 3, TU_DIMS(2, 3, 4));
  smelt_output(g, "concat", smelt_concat(g, 3, xs, 1));
  smelt_output(g, "stack", smelt_stack(g, 2, xs, -1));
  smelt_output(g, "unfold", smelt_unfold(g, x, 1, 2, 1));
  smelt_output(g, "unfold_step", smelt_unfold(g, y, -1, 2, 3));
  smelt_output(g, "unfold_empty", smelt_unfold(g, x, 2, 0, 2));
  smelt_output(g, "unfold_padded",
               smelt_unfold(g, smelt_pad(g, x, TU_DIMS(0, 1, 0), TU_DIMS(0, 1, 0), -1), 1, 3, 2));
  return g;
}

static smelt_graph *g_linalg(void) {
  smelt_graph *g = TU_GRAPH();
  smelt_node v = tu_input(g, "v", SMELT_F32, 1, 4);
  smelt_node a = tu_input(g, "a", SMELT_F32, 2, 3, 4);
  smelt_node b = tu_input(g, "b", SMELT_F32, 2, 4, 5);
  smelt_node c = tu_input(g, "c", SMELT_F32, 4, 2, 1, 3, 4);
  smelt_node d = tu_input(g, "d", SMELT_F64, 3, 6, 4, 2);
  smelt_node i = tu_input(g, "i", SMELT_I64, 2, 4, 4);
  smelt_output(g, "vv", smelt_matmul(g, v, v));
  smelt_output(g, "va", smelt_matmul(g, v, b));
  smelt_output(g, "av", smelt_matmul(g, a, v));
  smelt_output(g, "ab", smelt_matmul(g, a, b));
  smelt_output(g, "cd", smelt_matmul(g, c, d));
  smelt_output(g, "ii", smelt_matmul(g, i, i));
  smelt_output(g, "ai", smelt_matmul(g, a, i));
  return g;
}

static smelt_graph *g_indexing(void) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 5);
  smelt_node idx = tu_input(g, "idx", SMELT_I64, 2, 4, 2);
  smelt_node idx32 = tu_input(g, "idx32", SMELT_I32, 1, 3);
  smelt_node lab = tu_input(g, "lab", SMELT_I64, 2, 2, 3);
  smelt_output(g, "gather", smelt_gather(g, x, 1, idx));
  smelt_output(g, "scatter_add",
               smelt_scatter_add(g, x, 1, idx, tu_input(g, "src", SMELT_F32, 2, 4, 2)));
  smelt_output(g, "index_select", smelt_index_select(g, x, 0, idx32));
  smelt_output(g, "take", smelt_take_along_axis(g, x, idx, -1));
  smelt_output(g, "one_hot", smelt_one_hot(g, lab, 7));
  smelt_output(g, "embedding", smelt_embedding(g, x, lab));
  return g;
}

static smelt_graph *g_nn(void) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 8, 3);
  smelt_node v = tu_input(g, "v", SMELT_F64, 1, 3);
  smelt_node lab = tu_input(g, "lab", SMELT_I64, 1, 8);
  smelt_node l0 = tu_input(g, "l0", SMELT_I32, 0);
  smelt_output(g, "softmax", smelt_softmax(g, x, -1));
  smelt_output(g, "log_softmax", smelt_log_softmax(g, x, 0));
  smelt_output(g, "ce", smelt_cross_entropy(g, x, lab));
  smelt_output(g, "ce1", smelt_cross_entropy(g, v, l0));
  smelt_output(g, "mse", smelt_mse_loss(g, x, v));
  smelt_output(g, "drop", smelt_dropout(g, x, 0.25, 99, true));
  smelt_output(g, "drop_eval", smelt_dropout(g, x, 0.25, 99, false));
  return g;
}

static smelt_graph *g_sources(void) {
  smelt_graph *g = TU_GRAPH();
  const float f[] = {1.5f, -0.0f, NAN, -INFINITY, 1e-45f, 3.4028235e38f, 0.1f, 16777217.0f};
  const double dd[] = {0.1, 5e-324, -1.7976931348623157e308, INFINITY, 1.0 / 3, 1e22};
  const int32_t i32[] = {INT32_MIN, INT32_MAX, 0, -1};
  const int64_t i64[] = {INT64_MIN, INT64_MAX, 9007199254740993, -1};
  const uint8_t bl[] = {1, 0, 1, 1, 0, 0};
  smelt_output(g, "cf", smelt_const_array(g, SMELT_F32, 3, TU_DIMS(2, 2, 2), f));
  smelt_output(g, "cd", smelt_const_array(g, SMELT_F64, 2, TU_DIMS(3, 2), dd));
  smelt_output(g, "ci", smelt_const_array(g, SMELT_I32, 1, TU_DIMS(4), i32));
  smelt_output(g, "cl", smelt_const_array(g, SMELT_I64, 2, TU_DIMS(2, 2), i64));
  smelt_output(g, "cb", smelt_const_array(g, SMELT_BOOL, 2, TU_DIMS(2, 3), bl));
  smelt_output(g, "c0", smelt_const_array(g, SMELT_F32, 1, TU_DIMS(0), f));
  smelt_output(g, "c03", smelt_const_array(g, SMELT_I32, 2, TU_DIMS(0, 3), i32));
  smelt_output(g, "c20", smelt_const_array(g, SMELT_F64, 3, TU_DIMS(2, 0, 5), dd));
  smelt_output(g, "c1", smelt_const_array(g, SMELT_F32, 4, TU_DIMS(1, 1, 1, 1), f));
  smelt_output(g, "s0", smelt_const(g, SMELT_F64, 0.3));
  smelt_output(g, "s1", smelt_const(g, SMELT_BOOL, 1));
  smelt_output(g, "s2", smelt_const(g, SMELT_I32, -5));
  smelt_output(g, "lit", smelt_scalar(g, 0.1));
  smelt_output(g, "lit_i", smelt_scalar_int(g, INT64_MAX));
  smelt_output(g, "zeros", smelt_zeros(g, SMELT_I64, 2, TU_DIMS(2, 3)));
  smelt_output(g, "ones", smelt_ones(g, SMELT_BOOL, 1, TU_DIMS(3)));
  smelt_output(g, "full", smelt_full(g, SMELT_F32, 0, NULL, -2.5));
  smelt_output(g, "arange", smelt_arange(g, SMELT_F32, 0, 1, 0.1));
  smelt_output(g, "arange_i", smelt_arange(g, SMELT_I32, 10, 0, -3));
  smelt_output(g, "linspace", smelt_linspace(g, SMELT_F64, -1, 1, 7));
  smelt_output(g, "linspace1", smelt_linspace(g, SMELT_F32, 2, 3, 1));
  smelt_output(g, "eye", smelt_eye(g, SMELT_I32, 3, 2));
  smelt_output(g, "rand", smelt_rand(g, SMELT_F32, 2, TU_DIMS(2, 2), 0));
  smelt_output(g, "randn", smelt_randn(g, SMELT_F64, 1, TU_DIMS(5), UINT64_MAX));
  smelt_output(g, "iota", sm_iota(g, SMELT_F32, 2, TU_DIMS(2, 3), 1, 0.1, -1e-20));
  smelt_output(g, "rng", sm_rng(g, OP_RAND, SMELT_F64, 1, TU_DIMS(3), 42, -0.5, 1.0 / 3));
  smelt_param(g, "pz", SMELT_F32, 1, TU_DIMS(3), smelt_init_zeros());
  smelt_param(g, "po", SMELT_I32, 0, NULL, smelt_init_ones());
  smelt_param(g, "pc", SMELT_F64, 2, TU_DIMS(2, 2), smelt_init_constant(0.1));
  smelt_param(g, "pn", SMELT_F32, 2, TU_DIMS(3, 4),
              smelt_init_normal(-1, 0.02, 12345678901234567ull));
  smelt_param(g, "pu", SMELT_F64, 1, TU_DIMS(7), smelt_init_uniform(-1.0 / 3, 1e-3, 0));
  smelt_param(g, "pdf", SMELT_F32, 2, TU_DIMS(2, 4), smelt_init_data(f));
  smelt_param(g, "pdd", SMELT_F64, 1, TU_DIMS(6), smelt_init_data(dd));
  smelt_param(g, "pdi", SMELT_I32, 2, TU_DIMS(2, 2), smelt_init_data(i32));
  smelt_param(g, "pdl", SMELT_I64, 1, TU_DIMS(4), smelt_init_data(i64));
  smelt_param(g, "pdb", SMELT_BOOL, 2, TU_DIMS(3, 2), smelt_init_data(bl));
  smelt_param(g, "pd0", SMELT_F32, 0, NULL, smelt_init_data(f));
  smelt_param(g, "pde", SMELT_F32, 2, TU_DIMS(0, 2), smelt_init_data(f));
  return g;
}

static smelt_graph *g_updates(void) {
  smelt_graph *g = TU_GRAPH();
  smelt_node w = smelt_param(g, "w", SMELT_F32, 2, TU_DIMS(2, 3), smelt_init_normal(0, 1, 5));
  smelt_node n = smelt_param(g, "n", SMELT_I32, 0, NULL, smelt_init_zeros());
  smelt_node gr = tu_input(g, "grad", SMELT_F32, 1, 3);
  smelt_node step = smelt_sub(g, w, smelt_mul(g, gr, smelt_scalar(g, 0.01)));
  smelt_output(g, "w_new", smelt_assign(g, w, step));
  smelt_output(g, "n_new", smelt_assign(g, n, smelt_add(g, n, smelt_scalar_int(g, 1))));
  smelt_output(g, "w_zero", smelt_assign(g, w, smelt_scalar_int(g, 0)));
  return g;
}

/* Convolution, pooling and batch normalization: composites of pad, unfold,
 * matmul, reductions, gather and (avg_pool2d's divisors) array constants;
 * the running statistics' updates in a declared program. */
static smelt_graph *g_conv(void) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 4, 2, 4, 5, 5);
  smelt_node x3 = tu_input(g, "x3", SMELT_F64, 3, 2, 6, 5);
  smelt_node w = smelt_param(g, "w", SMELT_F32, 4, TU_DIMS(6, 2, 3, 3),
                             smelt_init_normal(0, 0.1, 3));
  smelt_node b = smelt_param(g, "b", SMELT_F32, 1, TU_DIMS(6), smelt_init_zeros());
  smelt_node w3 = smelt_param(g, "w3", SMELT_F64, 4, TU_DIMS(3, 2, 2, 2),
                              smelt_init_uniform(-1, 1, 4));
  const int64_t s21[2] = {2, 1}, p10[2] = {1, 0}, d12[2] = {1, 2}, k3[2] = {3, 3}, k23[2] = {2, 3},
                one[2] = {1, 1}, s2[2] = {2, 2};
  smelt_output(g, "conv", smelt_conv2d(g, x, w, b, s21, p10, d12, 2));
  smelt_output(g, "conv3", smelt_conv2d(g, x3, w3, SMELT_INVALID, one, one, NULL, 1));
  smelt_output(g, "max", smelt_max_pool2d(g, x, k3, s2, one, one, true));
  smelt_output(g, "avg", smelt_avg_pool2d(g, x, k23, NULL, one, true, false));
  smelt_output(g, "avg3", smelt_avg_pool2d(g, x3, k23, one, one, false, true));
  smelt_node gamma = smelt_param(g, "gamma", SMELT_F32, 1, TU_DIMS(4), smelt_init_ones());
  smelt_node beta = smelt_param(g, "beta", SMELT_F32, 1, TU_DIMS(4), smelt_init_zeros());
  smelt_node rm = smelt_param(g, "rm", SMELT_F32, 1, TU_DIMS(4), smelt_init_zeros());
  smelt_node rv = smelt_param(g, "rv", SMELT_F32, 1, TU_DIMS(4), smelt_init_ones());
  smelt_node upd[2];
  smelt_output(g, "bn", smelt_batch_norm(g, x, gamma, beta, rm, rv, true, 0.1, 1e-5, upd));
  smelt_output(g, "bn_eval", smelt_batch_norm(g, x, SMELT_INVALID, SMELT_INVALID, rm, rv, false,
                                              0.1, 1e-3, NULL));
  ck_assert_int_eq(
      smelt_graph_add_program(g, "train", 1, (const char *[]){"bn"}, 2, upd, false), 0);
  ck_assert_int_eq(
      smelt_graph_add_program(g, "eval", 2, (const char *[]){"bn", "conv"}, 0, NULL, true), 0);
  return g;
}

/* Declared programs: a train step (outputs and updates) and an eval one. */
static smelt_graph *g_programs(void) {
  smelt_graph *g = TU_GRAPH();
  smelt_node w = smelt_param(g, "w", SMELT_F32, 1, TU_DIMS(3), smelt_init_constant(0.5));
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 3);
  smelt_node y = tu_input(g, "y", SMELT_F32, 1, 4);
  smelt_node pred = smelt_matmul(g, x, w);
  smelt_node loss = smelt_mse_loss(g, pred, y), grad, upd[SMELT_OPTIM_MAX_UPDATES(1)];
  smelt_output(g, "loss", loss);
  smelt_output(g, "pred", pred);
  smelt_grad(g, loss, 1, &w, &grad);
  smelt_sgd_options o = smelt_sgd_defaults(0.1);
  o.momentum = 0.9;
  int n = smelt_sgd(g, NULL, 1, &w, &grad, &o, upd);
  ck_assert_int_gt(n, 1);
  ck_assert_int_eq(
      smelt_graph_add_program(g, "train", 1, (const char *[]){"loss"}, n, upd, false), 0);
  ck_assert_int_eq(smelt_graph_add_program(g, "predict", 2, (const char *[]){"pred", "loss"}, 0,
                                           NULL, true),
                   0);
  ck_assert_int_eq(smelt_graph_add_program(g, "nothing", 0, NULL, 0, NULL, false), 0);
  return g;
}

/* Random bit patterns: every finite float and double must survive. */
static smelt_graph *g_random_consts(void) {
  smelt_graph *g = TU_GRAPH();
  enum { N = 2000 };
  float *f = malloc(N * sizeof *f);
  double *d = malloc(N * sizeof *d);
  int64_t *l = malloc(N * sizeof *l);
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < N; i++) {
    uint64_t r[2];
    for (int k = 0; k < 2; k++) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      r[k] = s;
    }
    uint32_t fb = (uint32_t)r[0];
    memcpy(&f[i], &fb, 4);
    if (!isfinite(f[i])) f[i] = (float)i;
    memcpy(&d[i], &r[1], 8);
    if (!isfinite(d[i])) d[i] = -(double)i;
    l[i] = (int64_t)(r[0] ^ r[1]);
  }
  smelt_output(g, "f", smelt_const_array(g, SMELT_F32, 2, TU_DIMS(40, 50), f));
  smelt_output(g, "d", smelt_const_array(g, SMELT_F64, 3, TU_DIMS(10, 10, 20), d));
  smelt_output(g, "l", smelt_const_array(g, SMELT_I64, 1, TU_DIMS(N), l));
  for (int i = 0; i < 50; i++) smelt_scalar(g, d[i]);
  free(f);
  free(d);
  free(l);
  return g;
}

static smelt_graph *g_empty(void) { return TU_GRAPH(); }

static const struct {
  const char *name;
  smelt_graph *(*build)(void);
} api_graphs[] = {
    {"elementwise", g_elementwise}, {"reductions", g_reductions},
    {"views", g_views},             {"linalg", g_linalg},
    {"indexing", g_indexing},       {"nn", g_nn},
    {"sources", g_sources},         {"updates", g_updates},
    {"random_consts", g_random_consts}, {"empty", g_empty},
    {"programs", g_programs},       {"conv", g_conv},
};
#define N_API_GRAPHS ((int)(sizeof api_graphs / sizeof api_graphs[0]))

START_TEST(round_trip_api) {
  smelt_graph *g = api_graphs[_i].build();
  check_round_trip(g, api_graphs[_i].name);
  smelt_graph_free(g);
}
END_TEST

/* Every primitive op appears in some graph above (so its line form is
 * covered by the round trip). */
START_TEST(every_op_covered) {
  bool seen[OP_COUNT] = {0};
  for (int i = 0; i < N_API_GRAPHS; i++) {
    smelt_graph *g = api_graphs[i].build();
    for (size_t k = 0; k < g->nnodes; k++) seen[g->nodes[k].op] = true;
    smelt_graph_free(g);
  }
  for (int op = 0; op < OP_COUNT; op++)
    ck_assert_msg(seen[op], "op %s is in no test graph", sm_ops[op].name);
}
END_TEST

/* ---------------------------------------------------------- graph files */

static char graphs_dir[1024];

static bool find_graphs_dir(void) {
  const char *env = getenv("SMELT_TEST_GRAPHS");
  if (env && *env) {
    snprintf(graphs_dir, sizeof graphs_dir, "%s", env);
    return true;
  }
  char here[1024];
  snprintf(here, sizeof here, "%s", __FILE__);
  char *slash = strrchr(here, '/');
  if (slash)
    slash[1] = 0;
  else
    here[0] = 0;
  const char *cands[3] = {here, "tests/", "../tests/"};
  for (int i = 0; i < 3; i++) {
    snprintf(graphs_dir, sizeof graphs_dir, "%sgraphs", cands[i]);
    DIR *d = opendir(graphs_dir);
    if (d) {
      closedir(d);
      return true;
    }
  }
  return false;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  size_t k;
  while ((k = fread(buf + n, 1, cap - n, f)) > 0) {
    n += k;
    if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
  }
  fclose(f);
  buf[n] = 0;
  *len = n;
  return buf;
}

START_TEST(round_trip_files) {
  ck_assert_msg(find_graphs_dir(), "tests/graphs not found: set SMELT_TEST_GRAPHS");
  DIR *d = opendir(graphs_dir);
  ck_assert_ptr_nonnull(d);
  int count = 0, canonical = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t nl = strlen(e->d_name);
    if (nl < 7 || strcmp(e->d_name + nl - 6, ".smelt") != 0) continue;
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", graphs_dir, e->d_name);
    size_t len;
    char *text = read_file(path, &len);
    ck_assert_msg(text, "cannot read %s", path);
    char err[1024];
    smelt_graph *g = smelt_graph_parse(text, len, e->d_name, err, sizeof err);
    ck_assert_msg(g, "%s", err);
    check_round_trip(g, e->d_name);
    if (strncmp(e->d_name, "canonical_", 10) == 0) {
      char *t = smelt_graph_print(g);
      ck_assert_msg(strcmp(t, text) == 0, "%s does not print back as itself:\n%s", e->d_name, t);
      smelt_free(t);
      canonical++;
    }
    smelt_graph_free(g);
    free(text);
    count++;
  }
  closedir(d);
  ck_assert_int_ge(count, 5);
  ck_assert_int_ge(canonical, 2);
}
END_TEST

/* ------------------------------------------------------ exact outputs */

START_TEST(print_exact_small) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 3, 4);
  smelt_node w = smelt_param(g, "w", SMELT_F32, 1, TU_DIMS(4), smelt_init_normal(0, 0.02, 1));
  smelt_node y = smelt_mul(g, x, w);
  smelt_node s = smelt_sum(g, y, 1, (int[]){1}, true);
  smelt_output(g, "y", smelt_mul(g, s, smelt_scalar(g, 2.5)));
  char *t = smelt_graph_print(g);
  ck_assert_str_eq(t, "# smelt graph\n"
                      "input %x : f32[3,4]\n"
                      "param %w : f32[4] init=normal(mean=0, std=0.02, seed=1)\n"
                      "%2 = reshape %w : f32[1,4]\n"
                      "%3 = expand %2 : f32[3,4]\n"
                      "%4 = mul %x, %3 : f32[3,4]\n"
                      "%5 = reduce_sum %4 axes=[1] : f32[3,1]\n"
                      "%6 = const 2.5 weak : f32[]\n"
                      "%7 = const 2.5 : f32[]\n"
                      "%8 = reshape %7 : f32[1,1]\n"
                      "%9 = expand %8 : f32[3,1]\n"
                      "%10 = mul %5, %9 : f32[3,1]\n"
                      "output y = %10\n");
  smelt_free(t);
  smelt_graph_free(g);
}
END_TEST

START_TEST(print_exact_consts) {
  smelt_graph *g = TU_GRAPH();
  smelt_const_array(g, SMELT_I32, 2, TU_DIMS(2, 2), (int32_t[]){1, 2, 3, 4});
  smelt_const_array(g, SMELT_F32, 1, TU_DIMS(4), (float[]){0.1f, NAN, -INFINITY, -0.0f});
  smelt_const_array(g, SMELT_BOOL, 1, TU_DIMS(2), (uint8_t[]){0, 7});
  smelt_const_array(g, SMELT_F64, 2, TU_DIMS(2, 0), NULL);
  smelt_const_array(g, SMELT_I64, 2, TU_DIMS(0, 2), NULL);
  smelt_node n = smelt_const(g, SMELT_F64, 0.1);
  smelt_set_name(g, n, "tenth");
  smelt_param(g, "p", SMELT_I64, 1, TU_DIMS(2), smelt_init_data((int64_t[]){-1, INT64_MAX}));
  smelt_param(g, "q", SMELT_F32, 0, NULL, smelt_init_constant(-0.5));
  smelt_param(g, "r", SMELT_F64, 1, TU_DIMS(2), smelt_init_uniform(-1, 1, 18446744073709551615ull));
  smelt_param(g, "z", SMELT_BOOL, 1, TU_DIMS(1), smelt_init_ones());
  char *t = smelt_graph_print(g);
  ck_assert_str_eq(t, "# smelt graph\n"
                      "%0 = const [[1,2],[3,4]] : i32[2,2]\n"
                      "%1 = const [0.1,nan,-inf,-0] : f32[4]\n"
                      "%2 = const [false,true] : bool[2]\n"
                      "%3 = const [] : f64[2,0]\n"
                      "%4 = const [] : i64[0,2]\n"
                      "%tenth = const 0.1 : f64[]\n"
                      "param %p : i64[2] init=data([-1,9223372036854775807])\n"
                      "param %q : f32[] init=constant(-0.5)\n"
                      "param %r : f64[2] init=uniform(lo=-1, hi=1, seed=18446744073709551615)\n"
                      "param %z : bool[1] init=ones\n");
  smelt_free(t);
  smelt_graph_free(g);
}
END_TEST

/* Arrays without elements print as a lone [] whatever their shape (found
 * by fuzz_api: nesting [[],[],...] along huge leading axes printed without
 * bound); the lone [] parses back for any type without elements. */
START_TEST(print_empty_arrays) {
  smelt_graph *g = TU_GRAPH();
  smelt_const_array(g, SMELT_F32, 2, TU_DIMS((int64_t)1 << 40, 0), NULL);
  smelt_param(g, "p", SMELT_I64, 3, TU_DIMS(3, (int64_t)1 << 50, 0),
              smelt_init_data((int64_t[]){0}));
  ck_assert_ptr_null(smelt_graph_error(g));
  char *t = smelt_graph_print(g);
  ck_assert_str_eq(t, "# smelt graph\n"
                      "%0 = const [] : f32[1099511627776,0]\n"
                      "param %p : i64[3,1125899906842624,0] init=data([])\n");
  char err[512];
  smelt_graph *back = parse_str(t, err, sizeof err);
  ck_assert_msg(back, "%s", err);
  char *t2 = smelt_graph_print(back);
  ck_assert_str_eq(t, t2);
  smelt_free(t2);
  smelt_graph_free(back);
  smelt_free(t);
  smelt_graph_free(g);

  /* the nested form still parses, and prints as [] */
  back = parse_str("%c = const [[],[]] : f64[2,0]\n%d = const [] : i32[2,0,3]\n", err, sizeof err);
  ck_assert_msg(back, "%s", err);
  t = smelt_graph_print(back);
  ck_assert_str_eq(t, "# smelt graph\n%c = const [] : f64[2,0]\n%d = const [] : i32[2,0,3]\n");
  smelt_free(t);
  smelt_graph_free(back);
  /* a literal of another shape is still an error */
  ck_assert_ptr_null(parse_str("%c = const [[]] : f64[2,0]\n", err, sizeof err));
  ck_assert_str_eq(err, "t.smelt:1:12: the array literal has shape [1,0] but the type is f64[2,0]");
  ck_assert_ptr_null(parse_str("%c = const [] : f64[2]\n", err, sizeof err));
}
END_TEST

/* A NaN keeps its sign through text (found by fuzz_api: -nan printed as
 * nan parsed into the other NaN's node, and the graph lost a node). */
START_TEST(print_negative_nan) {
  smelt_graph *g = TU_GRAPH();
  smelt_scalar(g, NAN);
  smelt_scalar(g, -NAN);
  smelt_const_array(g, SMELT_F32, 1, TU_DIMS(2), (float[]){-NAN, NAN});
  ck_assert_int_eq(smelt_graph_node_count(g), 3);
  char *t = smelt_graph_print(g);
  ck_assert_str_eq(t, "# smelt graph\n"
                      "%0 = const nan weak : f32[]\n"
                      "%1 = const -nan weak : f32[]\n"
                      "%2 = const [-nan,nan] : f32[2]\n");
  char err[512];
  smelt_graph *back = parse_str(t, err, sizeof err);
  ck_assert_msg(back, "%s", err);
  ck_assert_int_eq(smelt_graph_node_count(back), 3);
  char *t2 = smelt_graph_print(back);
  ck_assert_str_eq(t, t2);
  const float *f = back->nodes[2].data;
  ck_assert(isnan(f[0]) && signbit(f[0]) && isnan(f[1]) && !signbit(f[1]));
  smelt_free(t2);
  smelt_free(t);
  smelt_graph_free(back);
  smelt_graph_free(g);
}
END_TEST

/* Sugar expands into primitives; numbered ids of the text need not be the
 * node indices; comments, blank lines and CRLF are fine. */
START_TEST(parse_sugar_exact) {
  const char *text = "# a comment\r\n"
                     "\n"
                     "input %x : f32[2,3]   # trailing comment\r\n"
                     "%10 = mean %x axes=[0]\n"
                     "%7 = mul %10, 2\n"
                     "output m = %7\n";
  char err[512];
  smelt_graph *g = parse_str(text, err, sizeof err);
  ck_assert_msg(g, "%s", err);
  char *t = smelt_graph_print(g);
  ck_assert_str_eq(t, "# smelt graph\n"
                      "input %x : f32[2,3]\n"
                      "%1 = reduce_sum %x axes=[0] : f32[1,3]\n"
                      "%2 = const 2 weak : f32[]\n"
                      "%3 = const 2 : f32[]\n"
                      "%4 = reshape %3 : f32[1,1]\n"
                      "%5 = expand %4 : f32[1,3]\n"
                      "%6 = div %1, %5 : f32[1,3]\n"
                      "%7 = reshape %6 : f32[3]\n"
                      "%8 = const 2 weak : i64[]\n"
                      "%9 = reshape %3 : f32[1]\n"
                      "%10 = expand %9 : f32[3]\n"
                      "%11 = mul %7, %10 : f32[3]\n"
                      "output m = %11\n");
  smelt_free(t);
  smelt_graph_free(g);
}
END_TEST

/* unfold's canonical line (the axis normalized, step always printed) and
 * the sugar lines of conv2d, max_pool2d, avg_pool2d and batch_norm: each
 * parses to the graph the C function builds with the same arguments (the
 * defaults of the omitted attributes included). */
START_TEST(parse_conv_sugar) {
  const char *text = "input %x : f32[2,4,5,5]\n"
                     "input %w : f32[6,2,3,3]\n"
                     "input %b : f32[6]\n"
                     "param %rm : f32[4] init=zeros\n"
                     "param %rv : f32[4] init=ones\n"
                     "%u = unfold %x axis=-1 size=3 step=2\n"
                     "%u1 = unfold %x axis=1 size=2 : f32[2,3,5,5,2]\n"
                     "%c = conv2d %x, %w, %b stride=[2,1] padding=1 dilation=[1,2] groups=2\n"
                     "%c0 = conv2d %x, %w groups=2\n"
                     "%m = max_pool2d %x kernel=3 stride=2 padding=1 dilation=[1,2] ceil_mode\n"
                     "%m0 = max_pool2d %x kernel=[2,3]\n"
                     "%a = avg_pool2d %x kernel=[2,3] stride=1 padding=[1,1] ceil_mode "
                     "count_include_pad=false\n"
                     "%a0 = avg_pool2d %x kernel=2\n"
                     "%n = batch_norm %x, %rm, %rv, %rm, %rv training=false momentum=0.2 "
                     "eps=0.001\n"
                     "%n0 = batch_norm %x\n"
                     "%n1 = batch_norm %x, %rm, %rv training=true\n"
                     "output n = %n\n";
  char err[512];
  smelt_graph *g = parse_str(text, err, sizeof err);
  ck_assert_msg(g, "%s", err);
  ck_assert(tu_text_contains(g, "%u = unfold %x axis=3 size=3 step=2 : f32[2,4,5,2,3]\n"));
  ck_assert(tu_text_contains(g, "%u1 = unfold %x axis=1 size=2 step=1 : f32[2,3,5,5,2]\n"));

  smelt_graph *a = TU_GRAPH();
  smelt_node x = tu_input(a, "x", SMELT_F32, 4, 2, 4, 5, 5);
  smelt_node w = tu_input(a, "w", SMELT_F32, 4, 6, 2, 3, 3);
  smelt_node b = tu_input(a, "b", SMELT_F32, 1, 6);
  smelt_node rm = smelt_param(a, "rm", SMELT_F32, 1, TU_DIMS(4), smelt_init_zeros());
  smelt_node rv = smelt_param(a, "rv", SMELT_F32, 1, TU_DIMS(4), smelt_init_ones());
  const int64_t one[2] = {1, 1}, zero[2] = {0, 0};
  struct {
    const char *name;
    smelt_node n;
  } v[] = {
      {"u", smelt_unfold(a, x, -1, 3, 2)},
      {"u1", smelt_unfold(a, x, 1, 2, 1)},
      {"c", smelt_conv2d(a, x, w, b, TU_DIMS(2, 1), one, TU_DIMS(1, 2), 2)},
      {"c0", smelt_conv2d(a, x, w, SMELT_INVALID, one, zero, one, 2)},
      {"m", smelt_max_pool2d(a, x, TU_DIMS(3, 3), TU_DIMS(2, 2), one, TU_DIMS(1, 2), true)},
      {"m0", smelt_max_pool2d(a, x, TU_DIMS(2, 3), NULL, zero, one, false)},
      {"a", smelt_avg_pool2d(a, x, TU_DIMS(2, 3), one, one, true, false)},
      {"a0", smelt_avg_pool2d(a, x, TU_DIMS(2, 2), NULL, zero, false, true)},
      {"n", smelt_batch_norm(a, x, rm, rv, rm, rv, false, 0.2, 0.001, NULL)},
      {"n0", smelt_batch_norm(a, x, SMELT_INVALID, SMELT_INVALID, SMELT_INVALID, SMELT_INVALID,
                              true, 0.1, 1e-5, NULL)},
      {"n1", smelt_batch_norm(a, x, rm, rv, SMELT_INVALID, SMELT_INVALID, true, 0.1, 1e-5, NULL)},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) smelt_set_name(a, v[i].n, v[i].name);
  smelt_output(a, "n", v[8].n);
  TU_ASSERT_OK(a);
  char *ta = smelt_graph_print(a), *tg = smelt_graph_print(g);
  ck_assert_str_eq(tg, ta);
  smelt_free(ta);
  smelt_free(tg);
  check_round_trip(g, "conv sugar");
  smelt_graph_free(a);
  smelt_graph_free(g);
}
END_TEST

START_TEST(parse_names_and_literals) {
  const char *text = "input %x : f32[3]\n"
                     "input %i : i32[3]\n"
                     "%y = mul %x, 2.5 : f32[3]\n"
                     "%z = add %i, 2 : i32[3]\n"
                     "%h = div %i, 2 : f32[3]\n"
                     "%c = where true, %x, -inf : f32[3]\n"
                     "%same = cast %x : f32[3]\n"
                     "output y = %y\n"
                     "output same = %same\n";
  char err[512];
  smelt_graph *g = parse_str(text, err, sizeof err);
  ck_assert_msg(g, "%s", err);
  ck_assert(smelt_node_valid(smelt_find(g, "y")));
  ck_assert(smelt_node_valid(smelt_find(g, "z")));
  ck_assert_int_eq(smelt_node_dtype(g, smelt_find(g, "h")), SMELT_F32);
  /* a no-op cast gives back %x: %same is an alias of it */
  ck_assert(!smelt_node_valid(smelt_find(g, "same")));
  const char *oname;
  smelt_node o = smelt_graph_output(g, 1, &oname);
  ck_assert_str_eq(oname, "same");
  ck_assert_uint_eq(o.index, smelt_find(g, "x").index);
  check_round_trip(g, "names");
  smelt_graph_free(g);
}
END_TEST

START_TEST(print_dot_exact) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 2);
  smelt_node c = smelt_const_array(g, SMELT_F32, 1, TU_DIMS(2), (float[]){1, 2});
  smelt_output(g, "y", smelt_sub(g, x, c));
  char *t = smelt_graph_print_dot(g);
  ck_assert_str_eq(t, "digraph smelt {\n"
                      "  rankdir=TB;\n"
                      "  node [shape=box, fontname=\"monospace\"];\n"
                      "  n0 [shape=invhouse, label=\"input %x\\nf32[2]\"];\n"
                      "  n1 [shape=ellipse, label=\"%1 = const [1,2]\\nf32[2]\"];\n"
                      "  n2 [shape=box, label=\"%2 = sub\\nf32[2]\"];\n"
                      "  n0 -> n2 [label=\"0\"];\n"
                      "  n1 -> n2 [label=\"1\"];\n"
                      "  out0 [shape=doubleoctagon, label=\"output y\"];\n"
                      "  n2 -> out0;\n"
                      "}\n");
  smelt_free(t);
  smelt_graph_free(g);
  ck_assert_ptr_null(smelt_graph_print(NULL));
  ck_assert_ptr_null(smelt_graph_print_dot(NULL));
}
END_TEST

/* DOT of every test graph: balanced braces, one line per node at least. */
START_TEST(print_dot_all) {
  smelt_graph *g = api_graphs[_i].build();
  char *t = smelt_graph_print_dot(g);
  ck_assert_ptr_nonnull(t);
  ck_assert(strncmp(t, "digraph smelt {\n", 16) == 0);
  ck_assert(strcmp(t + strlen(t) - 2, "}\n") == 0);
  size_t nodes = 0;
  for (const char *p = t; (p = strstr(p, "\n  n")); p++)
    if (strstr(p, " [shape=") && strchr(p + 1, '\n') > strstr(p, " [shape=")) nodes++;
  ck_assert_uint_ge(nodes, smelt_graph_node_count(g));
  smelt_free(t);
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------- errors */

static const struct {
  const char *text;
  const char *want;
} errors[] = {
    /* structure */
    {"", "t.smelt:1:1: empty input"},
    {" \n\t\r\n", "t.smelt:1:1: empty input"},
    {"input %x : f32[2]\n%y = frob %x\n", "t.smelt:2:6: unknown op 'frob'"},
    {"%y = neg %x\n", "t.smelt:1:10: unknown id %x"},
    {"output y = %nope\n", "t.smelt:1:12: unknown id %nope"},
    {"input %x : f16[2]\n", "t.smelt:1:12: unknown dtype 'f16' (f32, f64, i32, i64, bool)"},
    {"%y neg %x\n", "t.smelt:1:4: expected '=' after the id but found 'neg'"},
    {"%y = \n", "t.smelt:1:6: expected an op name but found end of line"},
    {"y = neg %x\n", "t.smelt:1:1: expected a node id: ids start with '%' (%y)"},
    {"42\n", "t.smelt:1:1: expected a node ('%id = op ...'), 'input', 'param', 'output' or "
             "'program' but found '42'"},
    {"input %x : f32[2] ]\n", "t.smelt:1:19: expected the end of the line but found ']'"},
    {"input %x : f32[2]\n%y = neg %x : f32[2] 7\n",
     "t.smelt:2:22: expected the end of the line but found '7'"},
    {"input %x : f32[2]\n%y = add %x %x\n", "t.smelt:2:13: expected ',' between operands but "
                                            "found '%x'"},
    {"input %x : f32[2]\n%y = neg %x,\n",
     "t.smelt:2:13: expected an operand after ',' but found end of line"},
    {"input %x :", "t.smelt:1:11: expected a dtype (f32, f64, i32, i64, bool) but found end of "
                   "input"},
    {"input %x : f32[2", "t.smelt:1:12: unterminated shape (missing ']')"},
    {"input %x f32[2]\n", "t.smelt:1:10: expected ':' and the type but found 'f32'"},
    {"input %3 : f32[2]\n", "t.smelt:1:7: an input needs a name, not a number (%3)"},
    {"input %3a : f32[2]\n",
     "t.smelt:1:7: invalid id (a name starts with a letter or '_', a number has only digits)"},
    {"%01 = const 1 : f32[]\n", "t.smelt:1:1: invalid id (a number id has no leading zeros)"},
    {"input %x : f32[2] @\n", "t.smelt:1:19: unexpected character"},
    {"input %x : f32[2]\n%y = neg % x\n", "t.smelt:2:10: expected a name or a number after '%'"},
    /* names */
    {"input %x : f32[2]\ninput %x : f32[3]\n", "t.smelt:2:7: %x is already defined"},
    {"%1 = const 1 : f32[]\n%1 = const 2 : f32[]\n", "t.smelt:2:1: %1 is already defined"},
    {"input %x : f32[2]\noutput y = %x\noutput y = %x\n",
     "t.smelt:3:1: output: the name \"y\" is already an output"},
    /* types and shapes */
    {"input %x : f32[3,4]\n%y = neg %x : f32[3]\n",
     "t.smelt:2:15: declared f32[3] but the op gives f32[3,4]"},
    {"input %x : f32[3]\n%y = lt %x, 1 : f32[3]\n",
     "t.smelt:2:17: declared f32[3] but the op gives bool[3]"},
    {"input %a : f32[2,3]\ninput %b : f32[4]\n%c = add %a, %b\n",
     "t.smelt:3:6: add: cannot broadcast %a: f32[2,3] with %b: f32[4]: dim -1 is 3 in the first "
     "and 4 in the second (dims must be equal or 1)"},
    {"input %x : f32[2,3]\n%r = reshape %x : f32[4]\n",
     "t.smelt:2:6: reshape: cannot reshape %x: f32[2,3] (6 elements) to [4] (4 elements)"},
    {"input %x : f32[2,3]\n%p = permute %x perm=[0] : f32[2,3]\n",
     "t.smelt:2:6: permute: perm has 1 entry but the operand has rank 2"},
    {"input %x : f32[2,3]\n%p = pad %x lo=[1,1] hi=[0]\n",
     "t.smelt:2:6: pad: hi has 1 entry but the operand has rank 2"},
    {"input %x : f32[99999999999999999999]\n", "t.smelt:1:16: integer out of range for a dim"},
    {"input %x : f32[4294967296,4294967296]\n",
     "t.smelt:1:12: shape has too many elements (more than 2^59)"},
    {"input %x : f32[1,1,1,1,1,1,1,1,1]\n", "t.smelt:1:32: rank exceeds 8"},
    {"input %x : f32[-1]\n",
     "t.smelt:1:16: a dim out of range (-1 not in [0, 9223372036854775807])"},
    {"%x = zeros\n", "t.smelt:1:6: zeros needs a shape: shape=[...] or ': dtype[...]'"},
    /* literals */
    {"%c = const [1,2\n", "t.smelt:1:12: unterminated array literal (missing ']')"},
    {"%c = const [1,2 : f32[2]\n",
     "t.smelt:1:17: expected ',' or ']' in the array literal but found ':'"},
    {"%c = const [[[[[[[[[1]]]]]]]]] : f32[1,1,1,1,1,1,1,1,1]\n",
     "t.smelt:1:20: array literal nested deeper than 8 levels"},
    {"%c = const [[1,2],[3]] : f32[2,2]\n",
     "t.smelt:1:19: ragged array literal (the elements have different shapes)"},
    {"%c = const [1,2,3] : f32[2]\n",
     "t.smelt:1:12: the array literal has shape [3] but the type is f32[2]"},
    {"%c = const 1 : f32[2]\n", "t.smelt:1:12: a value of type f32[2] needs an array literal"},
    {"%c = const 1\n",
     "t.smelt:1:6: const needs its type: ': dtype[shape]' at the end of the line"},
    {"%c = const 2147483648 : i32[]\n",
     "t.smelt:1:12: an i32 value out of range (2147483648 not in [-2147483648, 2147483647])"},
    {"%c = const 1.5 : i64[]\n", "t.smelt:1:12: expected an integer for an i64 value"},
    {"%c = const 1 : bool[]\n", "t.smelt:1:12: expected true or false for a bool value"},
    {"%c = const 1.2.3 : f32[]\n", "t.smelt:1:12: invalid number"},
    {"%c = const 1e : f32[]\n", "t.smelt:1:12: invalid number"},
    {"%c = const 1e39 : f32[]\n", "t.smelt:1:12: value out of range for f32"},
    {"%c = const 1e999 : f64[]\n", "t.smelt:1:12: number out of range for an f64 value"},
    {"%c = const 1 weak : f64[]\n", "t.smelt:1:6: const: a weak literal must be f32[] or i64[]"},
    {"input %x : i64[2]\n%y = add %x, 99999999999999999999\n",
     "t.smelt:2:14: integer out of range for an integer literal"},
    {"input %x : f32[2]\n%y = add %x, [1,2]\n",
     "t.smelt:2:14: add: an array literal is not an operand (write it as a const line)"},
    /* programs */
#define PG "param %w : f32[2]\ninput %x : f32[2]\n%u = assign %w, %x\n%v = neg %x\noutput v = %v\n"
    {PG "program p outputs=[nope]\n",
     "t.smelt:6:20: program \"p\": unknown output \"nope\" (the graph's outputs: v)"},
    {PG "program p outputs=[v, v]\n", "t.smelt:6:23: program \"p\": output \"v\" is listed twice"},
    {PG "program p updates=[%u, %v]\n",
     "t.smelt:6:24: program \"p\": update %v is a neg node, not an assign"},
    {PG "%u2 = assign %w, %v\nprogram p updates=[%u, %u2]\n",
     "t.smelt:7:24: program \"p\": param \"w\" is updated twice"},
    {PG "program p\nprogram p outputs=[v]\n",
     "t.smelt:7:9: program: the name \"p\" is already a program"},
    {PG "eval program p outputs=[v] updates=[%u]\n",
     "t.smelt:6:37: program \"p\": an evaluation program takes no updates"},
    {PG "program p updates=[%q]\n", "t.smelt:6:20: unknown id %q"},
    {PG "program p outputs=[v] outputs=[v]\n", "t.smelt:6:23: duplicate attribute 'outputs'"},
    {PG "program p inputs=[x]\n",
     "t.smelt:6:11: program has no attribute 'inputs' (outputs=[...], updates=[...])"},
    {PG "program p outputs=[v\n", "t.smelt:6:19: unterminated list (missing ']')"},
    {PG "program p outputs=[%v]\n", "t.smelt:6:20: expected an output name but found '%v'"},
    {PG "program p updates=[u]\n",
     "t.smelt:6:20: expected a %id (an assign node) but found 'u'"},
    {PG "program p outputs=v\n",
     "t.smelt:6:19: expected '[' and a list of output names but found 'v'"},
    {PG "program outputs=[v]\n", "t.smelt:6:9: expected a program name before 'outputs='"},
    {PG "program\n", "t.smelt:6:8: expected a program name but found end of line"},
    {PG "eval p\n", "t.smelt:6:6: expected 'program' after 'eval' but found 'p'"},
    {PG "program p outputs=[v] v\n",
     "t.smelt:6:23: program has no attribute 'v' (outputs=[...], updates=[...])"},
#undef PG
    /* attributes and operands */
    {"input %x : f32[2]\n%y = neg %x foo=1\n", "t.smelt:2:13: neg has no attribute 'foo'"},
    {"input %x : f32[2]\n%y = neg %x fast\n", "t.smelt:2:13: neg has no attribute 'fast'"},
    {"input %x : f32[2]\n%y = add %x\n", "t.smelt:2:6: add takes 2 operands, got 1"},
    {"%y = iota %q : f32[2]\n", "t.smelt:1:6: iota takes no operands"},
    {"input %x : f32[2,3]\n%y = sum %x axes=[0] axes=[1]\n",
     "t.smelt:2:22: duplicate attribute 'axes'"},
    {"input %x : f32[2,3]\n%y = argmax %x\n", "t.smelt:2:6: argmax needs axis=N"},
    {"input %x : f32[2,3]\n%y = argmax %x axis=1.5\n",
     "t.smelt:2:21: expected an integer for axis"},
    {"input %x : f32[2,3]\n%y = sum %x axes=[[0]]\n",
     "t.smelt:2:18: axes: expected a list of integers [...]"},
    {"input %x : f32[2,3]\n%y = sum %x axes=\n",
     "t.smelt:2:18: expected a value after '=' but found end of line"},
    {"input %x : f32[2,3]\n%y = sum %x keepdim=maybe\n",
     "t.smelt:2:21: keepdim: expected true or false"},
    {"input %x : f32[2,3]\n%y = sum %x axes=[5]\n",
     "t.smelt:2:6: sum: axis 5 is out of range for %x: f32[2,3] (rank 2)"},
    {"%i = input : f32[2]\n", "t.smelt:1:6: input is declared as 'input %name : dtype[shape]'"},
    {"%r = rand : f32[2]\n", "t.smelt:1:6: rand needs seed=N"},
    {"%r = rand seed=-1 : f32[2]\n",
     "t.smelt:1:16: expected a non-negative integer for seed"},
    {"%r = rand seed=18446744073709551616 : f32[2]\n",
     "t.smelt:1:16: integer out of range for seed"},
    {"%r = rand seed=1 : i32[2]\n",
     "t.smelt:1:6: rand: needs a float dtype (f32 or f64), got i32"},
    /* params */
    {"param %w : f32[2] init=gauss(1)\n",
     "t.smelt:1:24: unknown initializer 'gauss' (zeros, ones, constant, normal, uniform, data)"},
    {"param %w : f32[2] init=normal(mean=0, std=1)\n", "t.smelt:1:24: normal needs seed"},
    {"param %w : f32[2] init=normal(0, 1, 2, 3)\n", "t.smelt:1:40: normal takes 3 arguments"},
    {"param %w : f32[2] init=normal(mean=0, mean=1, seed=1)\n",
     "t.smelt:1:39: normal: 'mean' given twice"},
    {"param %w : f32[2] init=uniform(lo=0, high=1, seed=1)\n",
     "t.smelt:1:38: uniform has no argument 'high'"},
    {"param %w : i32[2] init=normal(0, 1, 3)\n",
     "t.smelt:1:1: param \"w\": normal initialization needs a float dtype, got i32"},
    {"param %w : f32[2] init=data([1,2,3])\n",
     "t.smelt:1:29: the array literal has shape [3] but the type is f32[2]"},
    {"param %w : f32[2] init=normal(0, 1, 2\n", "t.smelt:1:24: unterminated call (missing ')')"},
    {"param %w : f32[2] init=ones seed=3\n", "t.smelt:1:29: param has no attribute 'seed'"},
    {"param %w : f32[2]\n%a = assign %w, %w, %w\n", "t.smelt:2:6: assign takes 2 operands, got 3"},
    /* unfold and the convolution sugar */
#define CX "input %x : f32[2,4,5,5]\ninput %w : f32[6,2,3,3]\n"
    {CX "%u = unfold %x size=2\n", "t.smelt:3:6: unfold needs axis=N"},
    {CX "%u = unfold %x axis=1\n", "t.smelt:3:6: unfold needs size=N"},
    {CX "%u = unfold %x axis=1 size=-1\n", "t.smelt:3:6: unfold: size -1 is negative"},
    {CX "%u = unfold %x axis=1 size=2 step=0\n", "t.smelt:3:6: unfold: step 0 must be at least 1"},
    {CX "%u = unfold %x axis=1 size=9\n",
     "t.smelt:3:6: unfold: size 9 is larger than axis 1 of %x: f32[2,4,5,5]"},
    {CX "%u = unfold %x axis=1 size=2 : f32[2,3,5,5]\n",
     "t.smelt:3:32: declared f32[2,3,5,5] but the op gives f32[2,3,5,5,2]"},
    {CX "%u = unfold %x axis=1 size=2 step=2 dim=3\n", "t.smelt:3:37: unfold has no attribute 'dim'"},
    {CX "%u = unfold %x, %w axis=1 size=2\n", "t.smelt:3:6: unfold takes 1 operand, got 2"},
    {CX "%c = conv2d %x\n", "t.smelt:3:6: conv2d takes 2 to 3 operands, got 1"},
    {CX "%c = conv2d %x, %w, %w, %w\n", "t.smelt:3:6: conv2d takes 2 to 3 operands, got 4"},
    {CX "%c = conv2d %x, %w stride=[1,2,3] groups=2\n",
     "t.smelt:3:27: stride: too many entries (3, at most 2)"},
    {CX "%c = conv2d %x, %w stride=[] groups=2\n",
     "t.smelt:3:6: conv2d: stride needs one or two integers"},
    {CX "%c = conv2d %x, %w stride=0 groups=2\n",
     "t.smelt:3:6: conv2d: stride 0 (height) must be at least 1"},
    {CX "%c = conv2d %x, %w padding=1.5 groups=2\n", "t.smelt:3:28: expected an integer for padding"},
    {CX "%c = conv2d %x, %w kernel=3 groups=2\n", "t.smelt:3:20: conv2d has no attribute 'kernel'"},
    {CX "%c = conv2d %x, %w groups=3\n",
     "t.smelt:3:6: conv2d: groups 3 must divide the input channels (4) and the output channels (6)"},
    {CX "%c = conv2d %x, %w groups=2 : f32[2,6,3,4]\n",
     "t.smelt:3:31: declared f32[2,6,3,4] but the op gives f32[2,6,3,3]"},
    {CX "%m = max_pool2d %x\n", "t.smelt:3:6: max_pool2d needs kernel=[KH,KW]"},
    {CX "%m = avg_pool2d %x stride=2\n", "t.smelt:3:6: avg_pool2d needs kernel=[KH,KW]"},
    {CX "%m = max_pool2d %x, %w kernel=2\n", "t.smelt:3:6: max_pool2d takes 1 operand, got 2"},
    {CX "%m = max_pool2d %x kernel=2 count_include_pad=false\n",
     "t.smelt:3:29: max_pool2d has no attribute 'count_include_pad'"},
    {CX "%m = avg_pool2d %x kernel=2 dilation=2\n",
     "t.smelt:3:29: avg_pool2d has no attribute 'dilation'"},
    {CX "%m = avg_pool2d %x kernel=[2,2,2]\n", "t.smelt:3:27: kernel: too many entries (3, at most 2)"},
    {CX "%m = max_pool2d %x kernel=2 ceil_mode=2\n", "t.smelt:3:39: ceil_mode: expected true or false"},
    {CX "%m = max_pool2d %x kernel=2 padding=2\n",
     "t.smelt:3:6: max_pool2d: padding 2 (height) must be at most half the window (2 with "
     "dilation 1)"},
    {CX "%n = batch_norm %x, %w\n",
     "t.smelt:3:6: batch_norm takes %x, then optionally %weight, %bias, then optionally "
     "%running_mean, %running_var (1, 3 or 5 operands), got 2"},
    {CX "%n = batch_norm %x, %w, %w, %w\n",
     "t.smelt:3:6: batch_norm takes %x, then optionally %weight, %bias, then optionally "
     "%running_mean, %running_var (1, 3 or 5 operands), got 4"},
    {CX "%n = batch_norm %x, %w, %w, %w, %w, %w\n", "t.smelt:3:6: batch_norm takes 1 to 5 operands, got 6"},
    {CX "%n = batch_norm\n", "t.smelt:3:6: batch_norm takes 1 to 5 operands, got 0"},
    {CX "%n = batch_norm %x training=maybe\n", "t.smelt:3:29: training: expected true or false"},
    {CX "%n = batch_norm %x momentum=2\n", "t.smelt:3:6: batch_norm: momentum = 2 must be in [0, 1]"},
    {CX "%n = batch_norm %x eps=0\n", "t.smelt:3:6: batch_norm: eps = 0 must be positive"},
    {CX "%n = batch_norm %x training=false\n",
     "t.smelt:3:6: batch_norm: without training, running_mean and running_var are needed"},
    {CX "%n = batch_norm %x, %w, %w\n",
     "t.smelt:3:6: batch_norm: weight must be f32[4] (one per channel), got %w: f32[6,2,3,3]"},
    {CX "%n = batch_norm %x foo=1\n", "t.smelt:3:20: batch_norm has no attribute 'foo'"},
#undef CX
};
#define N_ERRORS ((int)(sizeof errors / sizeof errors[0]))

START_TEST(parse_errors) {
  char err[1024];
  memset(err, 'x', sizeof err);
  smelt_graph *g = parse_str(errors[_i].text, err, sizeof err);
  if (g) smelt_graph_free(g);
  ck_assert_msg(!g, "parsed: %s", errors[_i].text);
  ck_assert_str_eq(err, errors[_i].want);
}
END_TEST

START_TEST(parse_errors_special) {
  char err[256];
  /* a NUL byte inside the text */
  static const char nul[] = "input %x\0 : f32[2]\n";
  ck_assert_ptr_null(smelt_graph_parse(nul, sizeof nul - 1, "t.smelt", err, sizeof err));
  ck_assert_str_eq(err, "t.smelt:1:9: NUL byte in the input");
  static const char nul2[] = "# comment \0 more\n";
  ck_assert_ptr_null(smelt_graph_parse(nul2, sizeof nul2 - 1, "t.smelt", err, sizeof err));
  ck_assert_str_eq(err, "t.smelt:1:11: NUL byte in the input");
  /* the text ends where len says, even without a NUL */
  static const char cut[] = "input %x : f32[2]\noutput y = %x\nGARBAGE";
  smelt_graph *g = smelt_graph_parse(cut, sizeof cut - 8, NULL, err, sizeof err);
  ck_assert_ptr_nonnull(g);
  smelt_graph_free(g);
  /* no filename */
  ck_assert_ptr_null(smelt_graph_parse("", 0, NULL, err, sizeof err));
  ck_assert_str_eq(err, "<input>:1:1: empty input");
  ck_assert_ptr_null(smelt_graph_parse(NULL, 0, NULL, err, sizeof err));
  ck_assert_str_eq(err, "<input>:1:1: empty input");
  ck_assert_ptr_null(smelt_graph_parse(NULL, 5, NULL, err, sizeof err));
  ck_assert_str_eq(err, "<input>:1:1: no text (NULL)");
  /* no error buffer, or a tiny one */
  ck_assert_ptr_null(smelt_graph_parse("%y = neg %x", 11, NULL, NULL, 0));
  ck_assert_ptr_null(smelt_graph_parse("%y = neg %x", 11, NULL, err, 0));
  ck_assert_ptr_null(smelt_graph_parse("%y = neg %x", 11, NULL, err, 8));
  ck_assert_str_eq(err, "<input>");
  /* success clears the buffer */
  strcpy(err, "old");
  g = smelt_graph_parse("# smelt graph\n", 14, NULL, err, sizeof err);
  ck_assert_ptr_nonnull(g);
  ck_assert_str_eq(err, "");
  ck_assert_uint_eq(smelt_graph_node_count(g), 0);
  smelt_graph_free(g);
  /* very long names and numbers */
  char big[2048];
  memset(big, 'a', sizeof big);
  memcpy(big, "input %", 7);
  memcpy(big + 1500, " : f32[]", 8);
  ck_assert_ptr_null(smelt_graph_parse(big, 1508, NULL, err, sizeof err));
  ck_assert_str_eq(err, "<input>:1:7: name too long");
  memset(big, '1', sizeof big);
  memcpy(big, "%c = const ", 11);
  ck_assert_ptr_null(smelt_graph_parse(big, 600, NULL, err, sizeof err));
  ck_assert_str_eq(err, "<input>:1:12: number too long");
  /* a name the graph rejects (over 200 characters) */
  memset(big, 'b', sizeof big);
  big[0] = '%';
  memcpy(big + 230, " = const 1 : f32[]", 18);
  ck_assert_ptr_null(smelt_graph_parse(big, 248, NULL, err, sizeof err));
  ck_assert(strncmp(err, "<input>:1:1: set_name: invalid name \"bbb", 40) == 0);
  /* deep nesting far beyond the limit does not recurse further */
  memset(big, '[', sizeof big);
  memcpy(big, "%c = const ", 11);
  ck_assert_ptr_null(smelt_graph_parse(big, sizeof big, NULL, err, sizeof err));
  ck_assert_str_eq(err, "<input>:1:20: array literal nested deeper than 8 levels");
}
END_TEST

/* --------------------------------------------------- allocation failure */

static const char *oom_text =
    "input %x : f32[4,3]\n"
    "input %l : i64[4]\n"
    "param %w : f32[3,5] init=data([[1,2,3,4,5],[6,7,8,9,10],[1,1,1,1,1]])\n"
    "param %b : f32[5] init=normal(mean=0, std=1, seed=3)\n"
    "%h = matmul %x, %w\n"
    "%y = add %h, %b : f32[4,5]\n"
    "%loss = cross_entropy %y, %l\n"
    "%c = const [[1,2],[3,4]] : f64[2,2]\n"
    "%s = slice %x start=[0,1] stop=[4,3] step=[2,1] : f32[2,2]\n"
    "%u = assign %b, %b\n"
    "output loss = %loss\n"
    "output s = %s\n"
    "program step outputs=[loss] updates=[%u]\n"
    "eval program look outputs=[s, loss]\n";

START_TEST(parse_oom) {
  char err[512];
  smelt_graph *ref = parse_str(oom_text, err, sizeof err);
  ck_assert_msg(ref, "%s", err);
  char *want = smelt_graph_print(ref);
  smelt_graph_free(ref);
  long failed_before = sm_alloc_failures();
  for (long n = 0;; n++) {
    sm_alloc_fail_after(n);
    smelt_graph *g = parse_str(oom_text, err, sizeof err);
    sm_alloc_fail_after(-1);
    if (g) {
      char *t = smelt_graph_print(g);
      ck_assert_str_eq(t, want);
      smelt_free(t);
      smelt_graph_free(g);
      ck_assert_int_gt(n, 10);
      break;
    }
    ck_assert_msg(strstr(err, "out of memory") != NULL, "n=%ld: %s", n, err);
    ck_assert(strncmp(err, "t.smelt:", 8) == 0);
    ck_assert_int_lt(n, 100000);
  }
  ck_assert_int_gt(sm_alloc_failures(), failed_before);
  smelt_free(want);
}
END_TEST

START_TEST(print_oom) {
  smelt_graph *g = g_sources();
  char *want = smelt_graph_print(g);
  char *want_dot = smelt_graph_print_dot(g);
  for (int dot = 0; dot < 2; dot++) {
    for (long n = 0;; n++) {
      sm_alloc_fail_after(n);
      char *t = dot ? smelt_graph_print_dot(g) : smelt_graph_print(g);
      sm_alloc_fail_after(-1);
      if (t) {
        ck_assert_str_eq(t, dot ? want_dot : want);
        smelt_free(t);
        break;
      }
      ck_assert_int_lt(n, 10000);
    }
  }
  smelt_free(want);
  smelt_free(want_dot);
  smelt_graph_free(g);
}
END_TEST

/* ----------------------------------------------------------------- fuzz */

/* Any successfully parsed text must print canonically and round-trip;
 * any failure must give a "t.smelt:L:C: message" error. Never a crash. */
static void fuzz_one(const char *text, size_t len) {
  char err[512];
  err[0] = 0;
  smelt_graph *g = smelt_graph_parse(text, len, "t.smelt", err, sizeof err);
  if (g) {
    check_round_trip(g, "fuzzed");
    smelt_graph_free(g);
    return;
  }
  unsigned line, col;
  int used = 0;
  ck_assert_msg(sscanf(err, "t.smelt:%u:%u: %n", &line, &col, &used) == 2 && used > 0 &&
                    err[used] != 0,
                "bad error message: %s", err);
}

static char *fuzz_corpus(size_t *len) {
  smelt_graph *g = g_views();
  char *a = smelt_graph_print(g);
  smelt_graph_free(g);
  size_t la = strlen(a), lb = strlen(oom_text);
  char *t = malloc(la + lb + 1);
  memcpy(t, oom_text, lb);
  memcpy(t + lb, a, la + 1);
  smelt_free(a);
  *len = la + lb;
  return t;
}

START_TEST(fuzz_truncations) {
  size_t len;
  char *t = fuzz_corpus(&len);
  for (size_t n = 0; n <= len; n++) {
    char *c = malloc(n ? n : 1); /* exactly n bytes: ASan catches overreads */
    memcpy(c, t, n);
    fuzz_one(c, n);
    free(c);
  }
  free(t);
}
END_TEST

START_TEST(fuzz_mutations) {
  static const char alphabet[] = "[]%,=:#\n \t0123456789-.e+axy_wfinbool32641()\"\\\x01\xff";
  size_t len;
  char *t = fuzz_corpus(&len);
  uint64_t s = 0x243f6a8885a308d3ull + (uint64_t)_i;
#define RND() (s ^= s << 13, s ^= s >> 7, s ^= s << 17, s)
  for (int iter = 0; iter < 400; iter++) {
    size_t n = len;
    char *c = malloc(len + 64);
    memcpy(c, t, len);
    int muts = 1 + (int)(RND() % 4);
    for (int m = 0; m < muts; m++) {
      size_t at = n ? RND() % n : 0;
      switch (RND() % 4) {
      case 0: /* replace a byte */
        if (n) c[at] = (RND() % 8 == 0) ? 0 : alphabet[RND() % (sizeof alphabet - 1)];
        break;
      case 1: /* delete a span */
        if (n) {
          size_t k = 1 + RND() % 8;
          if (k > n - at) k = n - at;
          memmove(c + at, c + at + k, n - at - k);
          n -= k;
        }
        break;
      case 2: /* insert a byte */
        if (n < len + 60) {
          memmove(c + at + 1, c + at, n - at);
          c[at] = alphabet[RND() % (sizeof alphabet - 1)];
          n++;
        }
        break;
      default: /* swap two bytes */
        if (n) {
          size_t b = RND() % n;
          char tmp = c[at];
          c[at] = c[b];
          c[b] = tmp;
        }
        break;
      }
    }
    char *exact = malloc(n ? n : 1);
    memcpy(exact, c, n);
    fuzz_one(exact, n);
    free(exact);
    free(c);
  }
#undef RND
  free(t);
}
END_TEST

/* ------------------------------------------------------------ programs */

/* Program lines print after the outputs, in declaration order, with
 * updates=[...] only when there are updates; either order of the lists and
 * any spacing parse. */
START_TEST(print_programs_exact) {
  static const char text[] =
      "param %w : f32[2]\n"
      "input %x : f32[2]\n"
      "%u = assign %w, %x\n"
      "%v = neg %x\n"
      "output v = %v\n"
      "output w = %w\n"
      "eval program look   outputs=[ v,w ]\n"
      "program step updates=[%u] outputs=[v]\n"
      "program empty\n";
  static const char want[] =
      "# smelt graph\n"
      "param %w : f32[2] init=zeros\n"
      "input %x : f32[2]\n"
      "%u = assign %w, %x : f32[2]\n"
      "%v = neg %x : f32[2]\n"
      "output v = %v\n"
      "output w = %w\n"
      "eval program look outputs=[v, w]\n"
      "program step outputs=[v] updates=[%u]\n"
      "program empty outputs=[]\n";
  char err[512];
  smelt_graph *g = parse_str(text, err, sizeof err);
  ck_assert_msg(g, "%s", err);
  char *t = smelt_graph_print(g);
  ck_assert_str_eq(t, want);
  smelt_free(t);
  ck_assert_uint_eq(smelt_graph_program_count(g), 3);
  smelt_program_decl d;
  ck_assert_int_eq(smelt_graph_program(g, 1, &d), 0);
  ck_assert_str_eq(d.name, "step");
  ck_assert(!d.eval);
  ck_assert_int_eq(d.noutputs, 1);
  ck_assert_str_eq(d.outputs[0], "v");
  ck_assert_int_eq(d.nupdates, 1);
  ck_assert_str_eq(smelt_node_op(g, d.updates[0]), "assign");
  ck_assert_int_eq(smelt_graph_program(g, 0, &d), 0);
  ck_assert(d.eval);
  ck_assert_int_eq(d.nupdates, 0);
  ck_assert_int_eq(smelt_graph_program(g, 3, &d), -1);
  ck_assert_int_eq(smelt_graph_find_program(g, "empty"), 2);
  ck_assert_int_eq(smelt_graph_find_program(g, "nope"), -1);
  check_round_trip(g, "programs");
  smelt_graph_free(g);
}
END_TEST

/* ----------------------------------------------------------------- main */

static Suite *text_suite(void) {
  Suite *s = suite_create("text");
  TCase *tc = tcase_create("round_trip");
  tcase_add_loop_test(tc, round_trip_api, 0, N_API_GRAPHS);
  tcase_add_test(tc, every_op_covered);
  tcase_add_test(tc, round_trip_files);
  suite_add_tcase(s, tc);

  tc = tcase_create("exact");
  tcase_add_test(tc, print_exact_small);
  tcase_add_test(tc, print_exact_consts);
  tcase_add_test(tc, print_empty_arrays);
  tcase_add_test(tc, print_negative_nan);
  tcase_add_test(tc, parse_sugar_exact);
  tcase_add_test(tc, parse_conv_sugar);
  tcase_add_test(tc, parse_names_and_literals);
  tcase_add_test(tc, print_dot_exact);
  tcase_add_test(tc, print_programs_exact);
  tcase_add_loop_test(tc, print_dot_all, 0, N_API_GRAPHS);
  suite_add_tcase(s, tc);

  tc = tcase_create("errors");
  tcase_add_loop_test(tc, parse_errors, 0, N_ERRORS);
  tcase_add_test(tc, parse_errors_special);
  tcase_add_test(tc, parse_oom);
  tcase_add_test(tc, print_oom);
  suite_add_tcase(s, tc);

  tc = tcase_create("fuzz");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, fuzz_truncations);
  tcase_add_loop_test(tc, fuzz_mutations, 0, 8);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(text_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
