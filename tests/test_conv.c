/* Convolution, pooling, batch normalization and the unfold view
 * (include/smelt/smelt.h; docs/ops.md, "Convolution and pooling").
 *
 * 1. Reference values of small cases worked out by hand: unfold windows
 *    (overlapping, step > size, size 0, a padded input, views of views,
 *    integers and bools); conv2d with stride, padding, dilation, groups,
 *    bias and unbatched [C, H, W] input; max_pool2d and avg_pool2d with
 *    ceil_mode (and the last window PyTorch drops), padding (-inf never
 *    wins a max; count_include_pad), dilation; batch_norm's batch and
 *    running statistics. Then a grid of configurations against direct
 *    loops written here from PyTorch's definitions (output size, divisor,
 *    padding), in f32 and f64, all outputs of a grid in one run.
 * 2. Every error message of the five builders, compared exactly, and that
 *    the error is sticky (nothing crashes afterwards).
 * 3. Gradients against central differences in f64 (GC of tests/gradcheck.h,
 *    as in the grad suite: y = sum(op(x) * R), h = 1e-5,
 *    |a - n| <= 1e-7 + 1e-6 |n|), including second order through unfold (the
 *    gradient of its gradient), conv2d, the pools and batch_norm; exact
 *    gradients of unfold (window counts), the tie rule of max_pool2d (the
 *    first maximum of each window).
 * 4. Programs: one graph of every op and its gradients compiled for the
 *    target of smelt_compile_defaults() ($SMELT_TARGET: the cpu target in
 *    conv-cpu, the interpreter target under valgrind) against a plain
 *    interpreter run; batch_norm in a training program (the running
 *    statistics move by momentum, with the unbiased variance, run after
 *    run) and in an evaluation program sharing its params (uses them).
 *
 * Tests evaluate through tu_run, so conv-cpu runs every case on the cpu
 * target too; sizes are small so that the suite stays fast under valgrind.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "testutil.h"

#define F32 SMELT_F32
#define F64 SMELT_F64
#define I64 SMELT_I64
#define BOOL SMELT_BOOL
#define NONE SMELT_INVALID
#define K2(a, b) ((const int64_t[]){(a), (b)})

/* ================================================================ values */

static double *xmalloc_d(int64_t n) {
  double *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
  ck_assert_ptr_nonnull(p);
  return p;
}

/* n values uniform in [lo, hi] rounded to f32 (so f32 and f64 runs see the
 * same numbers), or, with distinct, a shuffled ladder without ties. */
static double *rnd_values(uint64_t seed, int64_t n, double lo, double hi, bool distinct) {
  double *v = xmalloc_d(n);
  for (int64_t i = 0; i < n; i++) v[i] = (float)rnd_unif(&seed, lo, hi);
  if (distinct) {
    for (int64_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * ((double)i + 0.5) / (double)n;
    for (int64_t i = n - 1; i > 0; i--) {
      int64_t j = (int64_t)(rnd_next(&seed) % (uint64_t)(i + 1));
      double t = v[i];
      v[i] = v[j], v[j] = t;
    }
    for (int64_t i = 0; i < n; i++) v[i] = (float)v[i];
  }
  return v;
}

/* A constant 0, 1, 2, ... (times step, plus start) of any dtype. */
static smelt_node seq(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims, double start,
                      double step) {
  int64_t n = numel_of(rank, dims);
  double *v = xmalloc_d(n);
  for (int64_t i = 0; i < n; i++) v[i] = start + step * (double)i;
  smelt_node r = tu_const_d(g, dt, rank, dims, v);
  free(v);
  return r;
}

/* ====================================================== checking values */

/* A node and its expected values (row-major). */
typedef struct expect {
  smelt_node n;
  int64_t count;
  const double *want;
} expect;
#define EXPECT(node, ...)                                                                   \
  ((expect){(node), TU_NARGS_F64(__VA_ARGS__), (const double[]){__VA_ARGS__}})

/* Runs every node of e in one tu_run (one program on a compiled target)
 * and compares each with its values: |got - want| <= tol (1 + |want|). */
static void check_all_(const char *file, int line, smelt_graph *g, double tol, int n,
                       const expect *e, int nbind, const tu_bind *binds) {
  if (smelt_graph_error(g))
    _ck_assert_failed(file, line, "values", "graph error: %s", smelt_graph_error(g));
  smelt_node *nodes = malloc(sizeof *nodes * (size_t)n);
  void **res = malloc(sizeof *res * (size_t)n);
  ck_assert_ptr_nonnull(nodes);
  ck_assert_ptr_nonnull(res);
  for (int i = 0; i < n; i++) {
    nodes[i] = e[i].n;
    int64_t numel = smelt_node_numel(g, e[i].n);
    if (numel != e[i].count)
      _ck_assert_failed(file, line, "values", "check %d: the node has %lld elements, %lld expected",
                        i, (long long)numel, (long long)e[i].count);
  }
  char *err = tu_run(g, n, nodes, res, nbind, binds);
  if (err) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", err);
    free(err);
    _ck_assert_failed(file, line, "run", "running the graph failed: %s", msg);
  }
  for (int i = 0; i < n; i++) {
    double *got = tu_to_double(smelt_node_dtype(g, e[i].n), res[i], e[i].count);
    for (int64_t k = 0; k < e[i].count; k++)
      if (!tu_close(got[k], e[i].want[k], tol, tol))
        _ck_assert_failed(file, line, "values", "check %d, element %lld: got %.17g, want %.17g (tol %g)",
                          i, (long long)k, got[k], e[i].want[k], tol);
    free(got);
    free(res[i]);
  }
  free(res);
  free(nodes);
}
#define CHECK_ALL(g, tol, ...)                                                               \
  check_all_(__FILE__, __LINE__, (g), (tol), (int)(sizeof((expect[]){__VA_ARGS__}) / sizeof(expect)), \
             (expect[]){__VA_ARGS__}, 0, NULL)

/* ================================================================ unfold */

START_TEST(unfold_windows) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = seq(g, F32, 1, TU_DIMS(7), 0, 1);
  smelt_node over = smelt_unfold(g, x, 0, 3, 2); /* overlapping: 2 and 4 twice */
  smelt_node gaps = smelt_unfold(g, x, 0, 2, 3); /* step > size: 2, 5 and 6 unused */
  smelt_node all = smelt_unfold(g, x, -1, 3, 1);
  smelt_node one = smelt_unfold(g, x, 0, 7, 5);  /* one window, the whole axis */
  smelt_node ones = smelt_unfold(g, x, 0, 1, 1); /* [7, 1] */
  smelt_node far = smelt_unfold(g, x, 0, 2, 100);
  TU_ASSERT_SHAPE(g, over, 2, 3, 3);
  TU_ASSERT_SHAPE(g, gaps, 2, 2, 2);
  TU_ASSERT_SHAPE(g, all, 2, 5, 3);
  TU_ASSERT_SHAPE(g, one, 2, 1, 7);
  TU_ASSERT_SHAPE(g, ones, 2, 7, 1);
  TU_ASSERT_SHAPE(g, far, 2, 1, 2);
  TU_ASSERT_DTYPE(g, over, F32);
  CHECK_ALL(g, 0, EXPECT(over, 0, 1, 2, 2, 3, 4, 4, 5, 6), EXPECT(gaps, 0, 1, 3, 4),
            EXPECT(all, 0, 1, 2, 1, 2, 3, 2, 3, 4, 3, 4, 5, 4, 5, 6),
            EXPECT(one, 0, 1, 2, 3, 4, 5, 6), EXPECT(ones, 0, 1, 2, 3, 4, 5, 6), EXPECT(far, 0, 1));
  smelt_graph_free(g);
}
END_TEST

/* Axes before and after the unfolded one; the window axis goes last. */
START_TEST(unfold_inner_axes) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = seq(g, F64, 2, TU_DIMS(2, 5), 0, 1); /* [[0..4], [5..9]] */
  smelt_node a1 = smelt_unfold(g, x, 1, 2, 2);        /* [2, 2, 2] */
  smelt_node a0 = smelt_unfold(g, x, 0, 2, 1);        /* [1, 5, 2]: [0, j, k] = x[k, j] */
  smelt_node y = seq(g, F64, 3, TU_DIMS(2, 4, 2), 0, 1);
  smelt_node mid = smelt_unfold(g, y, -2, 3, 1); /* [2, 2, 2, 3]: [a, w, c, k] = y[a, w+k, c] */
  TU_ASSERT_SHAPE(g, a1, 3, 2, 2, 2);
  TU_ASSERT_SHAPE(g, a0, 3, 1, 5, 2);
  TU_ASSERT_SHAPE(g, mid, 4, 2, 2, 2, 3);
  double want_mid[24];
  for (int a = 0, i = 0; a < 2; a++)
    for (int w = 0; w < 2; w++)
      for (int c = 0; c < 2; c++)
        for (int k = 0; k < 3; k++) want_mid[i++] = a * 8 + (w + k) * 2 + c;
  CHECK_ALL(g, 0, EXPECT(a1, 0, 1, 2, 3, 5, 6, 7, 8), EXPECT(a0, 0, 5, 1, 6, 2, 7, 3, 8, 4, 9),
            ((expect){mid, 24, want_mid}));
  smelt_graph_free(g);
}
END_TEST

/* size 0: one empty window per position (n + 1 of them with step 1), and
 * axes of size 0. */
START_TEST(unfold_size_zero) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = seq(g, F32, 1, TU_DIMS(7), 0, 1);
  smelt_node z1 = smelt_unfold(g, x, 0, 0, 1);
  smelt_node z3 = smelt_unfold(g, x, 0, 0, 3);
  smelt_node e = tu_input(g, "e", F32, 2, 2, 0);
  smelt_node e0 = smelt_unfold(g, e, 1, 0, 1);
  smelt_node e1 = smelt_unfold(g, e, 0, 1, 1);
  smelt_node e2 = smelt_unfold(g, e, 0, 2, 1);
  TU_ASSERT_SHAPE(g, z1, 2, 8, 0);
  TU_ASSERT_SHAPE(g, z3, 2, 3, 0);
  TU_ASSERT_SHAPE(g, e0, 3, 2, 1, 0);
  TU_ASSERT_SHAPE(g, e1, 3, 2, 0, 1);
  TU_ASSERT_SHAPE(g, e2, 3, 1, 0, 2);
  /* the gradient of an empty unfold is zeros */
  smelt_node xi = tu_input(g, "xi", F64, 1, 4);
  smelt_node s = smelt_sum(g, smelt_unfold(g, xi, 0, 0, 2), 0, NULL, false);
  smelt_node gx;
  ck_assert_int_eq(smelt_grad(g, s, 1, &xi, &gx), 0);
  const double xv[4] = {1, 2, 3, 4};
  const float ev[1] = {0};
  tu_bind b[2] = {{"xi", xv}, {"e", ev}};
  smelt_node outs[6] = {z1, z3, e0, e1, e2, gx};
  void *res[6];
  char *err = tu_run(g, 6, outs, res, 2, b);
  ck_assert_msg(!err, "%s", err ? err : "");
  double *gv = tu_to_double(F64, res[5], 4);
  for (int i = 0; i < 4; i++) ck_assert(gv[i] == 0);
  free(gv);
  for (int i = 0; i < 6; i++) free(res[i]);
  smelt_graph_free(g);
}
END_TEST

/* Windows over padding (conv2d's way), with steps, then used by a
 * reduction (a fused consumer on compiled targets). */
START_TEST(unfold_padded) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F32, 1, 2, 3);
  smelt_node p = smelt_pad(g, x, TU_DIMS(1), TU_DIMS(1), -1); /* [-1, 1, 2, 3, -1] */
  smelt_node w1 = smelt_unfold(g, p, 0, 3, 1);
  smelt_node w2 = smelt_unfold(g, p, 0, 2, 2); /* [-1, 1], [2, 3] */
  smelt_node s2 = smelt_sum(g, w2, 1, (int[]){1}, false);
  smelt_node m = TU_ARR(g, F64, 2, TU_DIMS(2, 2), 1, 2, 3, 4);
  smelt_node mp = smelt_pad(g, m, TU_DIMS(1, 1), TU_DIMS(1, 1), 0); /* 4x4 */
  smelt_node win = smelt_unfold(g, smelt_unfold(g, mp, 0, 3, 1), 1, 3, 1); /* [2, 2, 3, 3] */
  smelt_node wsum = smelt_sum(g, win, 2, (int[]){2, 3}, false);            /* all 10 */
  /* stride 2 over a padded axis of odd length: the last element unused */
  smelt_node q = smelt_pad(g, seq(g, F64, 2, TU_DIMS(2, 3), 1, 1), TU_DIMS(0, 2), TU_DIMS(0, 1), 9);
  smelt_node qw = smelt_unfold(g, q, 1, 2, 2); /* q rows [9,9,1,2,3,9]: [9,9],[1,2],[3,9] */
  smelt_node qmax = smelt_max(g, qw, 1, (int[]){-1}, false);
  CHECK_ALL(g, 0, EXPECT(w1, -1, 1, 2, 1, 2, 3, 2, 3, -1), EXPECT(w2, -1, 1, 2, 3),
            EXPECT(s2, 0, 5),
            EXPECT(win, 0, 0, 0, 0, 1, 2, 0, 3, 4, /**/ 0, 0, 0, 1, 2, 0, 3, 4, 0,
                   /**/ 0, 1, 2, 0, 3, 4, 0, 0, 0, /**/ 1, 2, 0, 3, 4, 0, 0, 0, 0),
            EXPECT(wsum, 10, 10, 10, 10),
            EXPECT(qw, 9, 9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9), EXPECT(qmax, 9, 2, 9, 9, 5, 9));
  smelt_graph_free(g);
}
END_TEST

/* unfold composed with other views: transposed, flipped, strided,
 * expanded inputs, an unfold of an unfold, and a reshape of overlapping
 * windows (which must copy). Integers and bools are windows too. */
START_TEST(unfold_of_views) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = seq(g, F32, 2, TU_DIMS(3, 4), 0, 1);
  smelt_node t = smelt_unfold(g, smelt_transpose(g, x, 0, 1), 0, 2, 1); /* [3, 3, 2] */
  double want_t[18];
  for (int w = 0, i = 0; w < 3; w++)
    for (int j = 0; j < 3; j++)
      for (int k = 0; k < 2; k++) want_t[i++] = 4 * j + w + k;
  smelt_node tr = smelt_reshape(g, t, 1, TU_DIMS(18));
  smelt_node f = smelt_unfold(g, smelt_flip(g, seq(g, F32, 1, TU_DIMS(6), 0, 1), 1, (int[]){0}),
                              0, 2, 2);
  smelt_node s = smelt_unfold(g, smelt_slice_axis(g, seq(g, F32, 1, TU_DIMS(10), 0, 1), 0, 1,
                                                  SMELT_END, 2),
                              0, 3, 2);
  smelt_node u = smelt_unfold(g, seq(g, F32, 1, TU_DIMS(6), 0, 1), 0, 3, 1); /* [4, 3] */
  smelt_node uu0 = smelt_unfold(g, u, 0, 2, 2); /* [2, 3, 2]: [w, j, k] = 2w + k + j */
  smelt_node uu1 = smelt_unfold(g, u, 1, 2, 1); /* [4, 2, 2]: w + v + k */
  double want0[12], want1[16];
  for (int w = 0, i = 0; w < 2; w++)
    for (int j = 0; j < 3; j++)
      for (int k = 0; k < 2; k++) want0[i++] = 2 * w + k + j;
  for (int w = 0, i = 0; w < 4; w++)
    for (int v = 0; v < 2; v++)
      for (int k = 0; k < 2; k++) want1[i++] = w + v + k;
  smelt_node e = smelt_expand(g, smelt_reshape(g, TU_VEC(g, F32, 1, 2, 3), 2, TU_DIMS(3, 1)), 2,
                              TU_DIMS(3, 4));
  smelt_node eu = smelt_unfold(g, e, 1, 2, 2);
  smelt_node pu = smelt_permute(g, smelt_unfold(g, seq(g, F32, 1, TU_DIMS(4), 0, 1), 0, 2, 1),
                                (int[]){1, 0}); /* [2, 3]: [[0,1,2],[1,2,3]] */
  smelt_node iu = smelt_unfold(g, seq(g, I64, 1, TU_DIMS(5), 10, 1), 0, 2, 3);
  smelt_node bu = smelt_unfold(g, TU_VEC(g, BOOL, 0, 1, 1), 0, 2, 1);
  TU_ASSERT_DTYPE(g, iu, I64);
  TU_ASSERT_DTYPE(g, bu, BOOL);
  CHECK_ALL(g, 0, ((expect){t, 18, want_t}), ((expect){tr, 18, want_t}),
            EXPECT(f, 5, 4, 3, 2, 1, 0), EXPECT(s, 1, 3, 5, 5, 7, 9),
            ((expect){uu0, 12, want0}), ((expect){uu1, 16, want1}),
            EXPECT(eu, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), EXPECT(pu, 0, 1, 2, 1, 2, 3),
            EXPECT(iu, 10, 11, 13, 14), EXPECT(bu, 0, 1, 1, 1));
  smelt_graph_free(g);
}
END_TEST

/* The gradient of unfold counts the windows that hold each element: one
 * padded run of gy per i < ceil(size/step). */
START_TEST(unfold_gradient_counts) {
  static const struct {
    int64_t n, size, step;
    double want[9];
  } c[] = {
      {5, 3, 1, {1, 2, 3, 2, 1}},          /* 3 runs */
      {7, 3, 2, {1, 1, 2, 1, 2, 1, 1}},    /* 2 runs, the second padded */
      {7, 2, 3, {1, 1, 0, 1, 1, 0, 0}},    /* step > size: gaps, a tail */
      {8, 3, 4, {1, 1, 1, 0, 1, 1, 1, 0}}, /* one run */
      {9, 5, 2, {1, 1, 2, 2, 3, 2, 2, 1, 1}},
      {4, 4, 1, {1, 1, 1, 1}},
      {6, 1, 2, {1, 0, 1, 0, 1, 0}},
  };
  smelt_graph *g = TU_GRAPH();
  expect e[sizeof c / sizeof c[0]];
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    char name[16];
    snprintf(name, sizeof name, "x%zu", i);
    smelt_node x = smelt_input(g, name, F64, 1, &c[i].n);
    smelt_node s = smelt_sum(g, smelt_unfold(g, x, 0, c[i].size, c[i].step), 0, NULL, false);
    smelt_node gx;
    ck_assert_int_eq(smelt_grad(g, s, 1, &x, &gx), 0);
    e[i] = (expect){gx, c[i].n, c[i].want};
  }
  /* inputs are never read by the gradient: bind zeros */
  const double zero[9] = {0};
  tu_bind b[7];
  char names[7][16];
  for (int i = 0; i < 7; i++) {
    snprintf(names[i], sizeof names[i], "x%d", i);
    b[i] = (tu_bind){names[i], zero};
  }
  check_all_(__FILE__, __LINE__, g, 0, 7, e, 7, b);
  smelt_graph_free(g);

  /* an inner axis: the counts broadcast over the others */
  g = TU_GRAPH();
  smelt_node x = seq(g, F32, 3, TU_DIMS(2, 5, 2), 0, 1);
  smelt_node s = smelt_sum(g, smelt_unfold(g, x, 1, 2, 1), 0, NULL, false);
  smelt_node gx;
  ck_assert_int_eq(smelt_grad(g, s, 1, &x, &gx), 0);
  TU_ASSERT_SHAPE(g, gx, 3, 2, 5, 2);
  TU_ASSERT_DTYPE(g, gx, F32);
  CHECK_ALL(g, 0, EXPECT(gx, 1, 1, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 1, 1));
  smelt_graph_free(g);
}
END_TEST

/* ================================================================ conv2d */

START_TEST(conv2d_hand) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = seq(g, F32, 4, TU_DIMS(1, 1, 3, 3), 1, 1); /* [[1,2,3],[4,5,6],[7,8,9]] */
  smelt_node diag = TU_ARR(g, F32, 4, TU_DIMS(1, 1, 2, 2), 1, 0, 0, 1);
  smelt_node ones = smelt_ones(g, F32, 4, TU_DIMS(1, 1, 2, 2));
  smelt_node plain = smelt_conv2d(g, x, diag, NONE, K2(1, 1), NULL, NULL, 1);
  smelt_node bias = smelt_conv2d(g, x, diag, TU_VEC(g, F32, 0.5), K2(1, 1), NULL, NULL, 1);
  /* stride 2, padding 1: windows of the padded 5x5 at rows/cols -1 and 1 */
  smelt_node sp = smelt_conv2d(g, x, ones, NONE, K2(2, 2), K2(1, 1), NULL, 1);
  /* dilation 2 on 5x5: x[i,j] + x[i,j+2] + x[i+2,j] + x[i+2,j+2] = 20i + 4j + 24 */
  smelt_node x5 = seq(g, F32, 4, TU_DIMS(1, 1, 5, 5), 0, 1);
  smelt_node dil = smelt_conv2d(g, x5, ones, NONE, K2(1, 1), NULL, K2(2, 2), 1);
  /* asymmetric stride and padding */
  smelt_node x23 = seq(g, F32, 4, TU_DIMS(1, 1, 2, 3), 1, 1);
  smelt_node row = TU_ARR(g, F32, 4, TU_DIMS(1, 1, 1, 2), 1, 1);
  smelt_node asym = smelt_conv2d(g, x23, row, NONE, K2(1, 2), K2(0, 1), NULL, 1);
  /* unbatched [C, H, W] */
  smelt_node x3 = seq(g, F32, 3, TU_DIMS(1, 3, 3), 1, 1);
  smelt_node unb = smelt_conv2d(g, x3, diag, NONE, K2(1, 1), NULL, NULL, 1);
  TU_ASSERT_SHAPE(g, plain, 4, 1, 1, 2, 2);
  TU_ASSERT_SHAPE(g, sp, 4, 1, 1, 2, 2);
  TU_ASSERT_SHAPE(g, dil, 4, 1, 1, 3, 3);
  TU_ASSERT_SHAPE(g, asym, 4, 1, 1, 2, 2);
  TU_ASSERT_SHAPE(g, unb, 3, 1, 2, 2);
  CHECK_ALL(g, 0, EXPECT(plain, 6, 8, 12, 14), EXPECT(bias, 6.5, 8.5, 12.5, 14.5),
            EXPECT(sp, 1, 5, 11, 28), EXPECT(dil, 24, 28, 32, 44, 48, 52, 64, 68, 72),
            EXPECT(asym, 1, 5, 4, 11), EXPECT(unb, 6, 8, 12, 14));
  smelt_graph_free(g);
}
END_TEST

/* Channels: a sum over input channels; groups split them; a batch of two. */
START_TEST(conv2d_channels_groups) {
  smelt_graph *g = TU_GRAPH();
  /* x [2, 2, 2, 2]: image 0 channels [1..4] and [5..8], image 1 the same * 10 */
  smelt_node x = TU_ARR(g, F64, 4, TU_DIMS(2, 2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8, 10, 20, 30, 40,
                        50, 60, 70, 80);
  smelt_node mix = smelt_conv2d(g, x, TU_ARR(g, F64, 4, TU_DIMS(1, 2, 1, 1), 1, 10), NONE, K2(1, 1),
                                NULL, NULL, 1);
  smelt_node dw = smelt_conv2d(g, x, TU_ARR(g, F64, 4, TU_DIMS(2, 1, 1, 1), 2, 3),
                               TU_VEC(g, F64, 0, 1), K2(1, 1), NULL, NULL, 2); /* depthwise */
  smelt_node g2 = smelt_conv2d(g, x, TU_ARR(g, F64, 4, TU_DIMS(4, 1, 1, 1), 1, 2, 3, 4), NONE,
                               K2(1, 1), NULL, NULL, 2); /* 2 outputs per group */
  /* a 2x2 kernel over both channels: the sum of everything weighted */
  smelt_node full = smelt_conv2d(g, x, smelt_ones(g, F64, 4, TU_DIMS(1, 2, 2, 2)), NONE, K2(1, 1),
                                 NULL, NULL, 1);
  TU_ASSERT_SHAPE(g, mix, 4, 2, 1, 2, 2);
  TU_ASSERT_SHAPE(g, g2, 4, 2, 4, 2, 2);
  TU_ASSERT_SHAPE(g, full, 4, 2, 1, 1, 1);
  CHECK_ALL(g, 1e-15, EXPECT(mix, 51, 62, 73, 84, 510, 620, 730, 840),
            EXPECT(dw, 2, 4, 6, 8, 16, 19, 22, 25, 20, 40, 60, 80, 151, 181, 211, 241),
            EXPECT(g2, 1, 2, 3, 4, 2, 4, 6, 8, 15, 18, 21, 24, 20, 24, 28, 32, /**/ 10, 20, 30,
                   40, 20, 40, 60, 80, 150, 180, 210, 240, 200, 240, 280, 320),
            EXPECT(full, 36, 360));
  smelt_graph_free(g);
}
END_TEST

/* NULL pairs are the defaults: stride 1, padding 0, dilation 1 (for
 * pooling the stride defaults to the kernel size instead). */
START_TEST(conv2d_default_pairs) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = seq(g, F32, 4, TU_DIMS(1, 1, 3, 3), 1, 1);
  smelt_node diag = TU_ARR(g, F32, 4, TU_DIMS(1, 1, 2, 2), 1, 0, 0, 1);
  smelt_node y = smelt_conv2d(g, x, diag, NONE, NULL, NULL, NULL, 1);
  smelt_node u = smelt_conv2d(g, smelt_reshape(g, x, 3, TU_DIMS(1, 3, 3)), diag, NONE, NULL,
                              K2(0, 0), NULL, 1);
  smelt_node m = smelt_max_pool2d(g, seq(g, F32, 4, TU_DIMS(1, 1, 4, 4), 0, 1), K2(2, 2), NULL,
                                  NULL, NULL, false);
  TU_ASSERT_SHAPE(g, y, 4, 1, 1, 2, 2);
  TU_ASSERT_SHAPE(g, u, 3, 1, 2, 2);
  TU_ASSERT_SHAPE(g, m, 4, 1, 1, 2, 2);
  CHECK_ALL(g, 0, EXPECT(y, 6, 8, 12, 14), EXPECT(u, 6, 8, 12, 14), EXPECT(m, 5, 7, 13, 15));
  smelt_graph_free(g);
}
END_TEST

/* conv2d is im2col through views: pad, two unfolds, one matmul. */
START_TEST(conv2d_structure) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F32, 4, 2, 4, 6, 6);
  smelt_node w = tu_input(g, "w", F32, 4, 6, 2, 3, 3);
  smelt_node y = smelt_conv2d(g, x, w, NONE, K2(2, 1), K2(1, 1), K2(1, 2), 2);
  TU_ASSERT_SHAPE(g, y, 4, 2, 6, 3, 4);
  ck_assert_int_eq(tu_count_op(g, "unfold"), 2);
  ck_assert_int_eq(tu_count_op(g, "matmul"), 1);
  ck_assert_int_eq(tu_count_op(g, "pad"), 1);
  smelt_graph_free(g);
}
END_TEST

/* ============================================================== pooling */

START_TEST(max_pool2d_hand) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = seq(g, F32, 4, TU_DIMS(1, 1, 4, 4), 0, 1);
  smelt_node k2 = smelt_max_pool2d(g, x, K2(2, 2), NULL, NULL, NULL, false);
  /* kernel 3, stride 2: one window, or two with ceil_mode (the second
   * crosses the edge) */
  smelt_node floor3 = smelt_max_pool2d(g, x, K2(3, 3), K2(2, 2), NULL, NULL, false);
  smelt_node ceil3 = smelt_max_pool2d(g, x, K2(3, 3), K2(2, 2), NULL, NULL, true);
  /* dilation 2: max(x[i,j], x[i,j+2], x[i+2,j], x[i+2,j+2]) */
  smelt_node dil = smelt_max_pool2d(g, x, K2(2, 2), K2(1, 1), NULL, K2(2, 2), false);
  /* negative values with padding 1: -inf padding never wins */
  smelt_node neg = seq(g, F32, 4, TU_DIMS(1, 1, 3, 3), -1, -1);
  smelt_node pad = smelt_max_pool2d(g, neg, K2(2, 2), K2(2, 2), K2(1, 1), NULL, false);
  /* unbatched, rectangular kernel, stride 1 */
  smelt_node x3 = seq(g, F64, 3, TU_DIMS(2, 2, 3), 0, 1);
  smelt_node rect = smelt_max_pool2d(g, x3, K2(1, 2), K2(1, 1), NULL, NULL, false);
  /* NaN wins its windows */
  smelt_node n = TU_ARR(g, F32, 4, TU_DIMS(1, 1, 2, 3), 1, NAN, 2, 3, 4, 5);
  smelt_node nan = smelt_max_pool2d(g, n, K2(2, 2), K2(1, 1), NULL, NULL, false);
  TU_ASSERT_SHAPE(g, floor3, 4, 1, 1, 1, 1);
  TU_ASSERT_SHAPE(g, ceil3, 4, 1, 1, 2, 2);
  TU_ASSERT_SHAPE(g, rect, 3, 2, 2, 2);
  CHECK_ALL(g, 0, EXPECT(k2, 5, 7, 13, 15), EXPECT(floor3, 10), EXPECT(ceil3, 10, 11, 14, 15),
            EXPECT(dil, 10, 11, 14, 15), EXPECT(pad, -1, -2, -4, -5),
            EXPECT(rect, 1, 2, 4, 5, 7, 8, 10, 11), EXPECT(nan, NAN, NAN));
  smelt_graph_free(g);
}
END_TEST

/* ceil_mode never starts a window in the right padding (PyTorch drops it):
 * in 5, kernel 2, stride 2, padding 1 gives 3 windows, not 4. */
START_TEST(pool_ceil_mode_shapes) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F32, 4, 1, 1, 5, 5);
  TU_ASSERT_SHAPE(g, smelt_max_pool2d(g, x, K2(2, 2), K2(2, 2), K2(1, 1), NULL, true), 4, 1, 1, 3, 3);
  TU_ASSERT_SHAPE(g, smelt_max_pool2d(g, x, K2(2, 2), K2(2, 2), K2(1, 1), NULL, false), 4, 1, 1, 3, 3);
  TU_ASSERT_SHAPE(g, smelt_avg_pool2d(g, x, K2(2, 2), K2(2, 2), NULL, true, true), 4, 1, 1, 3, 3);
  TU_ASSERT_SHAPE(g, smelt_avg_pool2d(g, x, K2(2, 2), K2(2, 2), NULL, false, true), 4, 1, 1, 2, 2);
  TU_ASSERT_SHAPE(g, smelt_max_pool2d(g, x, K2(3, 2), K2(3, 3), NULL, NULL, true), 4, 1, 1, 2, 2);
  TU_ASSERT_SHAPE(g, smelt_max_pool2d(g, x, K2(2, 2), K2(4, 4), K2(1, 1), NULL, true), 4, 1, 1, 2, 2);
  TU_ASSERT_OK(g);
  smelt_graph_free(g);
}
END_TEST

START_TEST(avg_pool2d_hand) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = seq(g, F32, 4, TU_DIMS(1, 1, 4, 4), 0, 1);
  smelt_node k2 = smelt_avg_pool2d(g, x, K2(2, 2), NULL, NULL, false, true);
  smelt_node ones = smelt_ones(g, F64, 4, TU_DIMS(1, 1, 3, 3));
  /* kernel 3, padding 1: corners see 4 of 9, edges 6 */
  smelt_node inc = smelt_avg_pool2d(g, ones, K2(3, 3), K2(1, 1), K2(1, 1), false, true);
  smelt_node exc = smelt_avg_pool2d(g, ones, K2(3, 3), K2(1, 1), K2(1, 1), false, false);
  /* ceil_mode without padding: windows clipped to the input divide by
   * what they cover, either way */
  smelt_node x3 = seq(g, F64, 4, TU_DIMS(1, 1, 3, 3), 1, 1);
  smelt_node c1 = smelt_avg_pool2d(g, x3, K2(2, 2), K2(2, 2), NULL, true, true);
  smelt_node c0 = smelt_avg_pool2d(g, x3, K2(2, 2), K2(2, 2), NULL, true, false);
  /* ceil_mode with padding: in 4, kernel 3, stride 2, padding 1: windows
   * at -1, 1, 3; the last covers 3 and the padding 4 (divisor 2 with
   * count_include_pad, the part beyond the padding never counts) */
  smelt_node o4 = smelt_ones(g, F64, 4, TU_DIMS(1, 1, 4, 4));
  smelt_node cp1 = smelt_avg_pool2d(g, o4, K2(3, 3), K2(2, 2), K2(1, 1), true, true);
  smelt_node cp0 = smelt_avg_pool2d(g, o4, K2(3, 3), K2(2, 2), K2(1, 1), true, false);
  /* unbatched */
  smelt_node u = smelt_avg_pool2d(g, seq(g, F32, 3, TU_DIMS(2, 2, 2), 0, 1), K2(2, 1), NULL, NULL,
                                  false, true);
  TU_ASSERT_SHAPE(g, cp1, 4, 1, 1, 3, 3);
  TU_ASSERT_SHAPE(g, u, 3, 2, 1, 2);
  const double a = 4.0 / 9, b = 6.0 / 9, q = 3.0 / 6;
  CHECK_ALL(g, 1e-7, EXPECT(k2, 2.5, 4.5, 10.5, 12.5), EXPECT(inc, a, b, a, b, 1, b, a, b, a),
            EXPECT(exc, 1, 1, 1, 1, 1, 1, 1, 1, 1), EXPECT(c1, 3, 4.5, 7.5, 9),
            EXPECT(c0, 3, 4.5, 7.5, 9),
            EXPECT(cp1, 4.0 / 9, b, 2.0 / 6, b, 1, q, 2.0 / 6, q, 1.0 / 4),
            EXPECT(cp0, 1, 1, 1, 1, 1, 1, 1, 1, 1), EXPECT(u, 1, 2, 5, 6));
  smelt_graph_free(g);
}
END_TEST

/* ========================================= grids against direct loops */

/* PyTorch's output size of one axis (pooling_output_shape). */
static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  int64_t o = (in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0)) / s + 1;
  if (ceil_mode && (o - 1) * s >= in + p) o--;
  return o;
}

typedef struct convcfg {
  int64_t n, c, h, w, o, kh, kw, s[2], p[2], d[2], groups;
  bool bias, unbatched;
} convcfg;

static void ref_conv(const convcfg *q, const double *x, const double *wt, const double *b,
                     double *y, int64_t oh, int64_t ow) {
  int64_t cg = q->c / q->groups, og = q->o / q->groups;
  for (int64_t n = 0; n < q->n; n++)
    for (int64_t o = 0; o < q->o; o++)
      for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < ow; j++) {
          int64_t grp = o / og;
          double acc = q->bias ? b[o] : 0;
          for (int64_t c = 0; c < cg; c++)
            for (int64_t ki = 0; ki < q->kh; ki++)
              for (int64_t kj = 0; kj < q->kw; kj++) {
                int64_t ih = i * q->s[0] - q->p[0] + ki * q->d[0];
                int64_t iw = j * q->s[1] - q->p[1] + kj * q->d[1];
                if (ih < 0 || ih >= q->h || iw < 0 || iw >= q->w) continue;
                acc += x[((n * q->c + grp * cg + c) * q->h + ih) * q->w + iw] *
                       wt[((o * cg + c) * q->kh + ki) * q->kw + kj];
              }
          y[((n * q->o + o) * oh + i) * ow + j] = acc;
        }
}

typedef struct poolcfg {
  int64_t n, c, h, w, k[2], s[2], p[2], d[2];
  bool ceil_mode, include_pad, unbatched;
} poolcfg;

/* max_pool2d as PyTorch's CPU kernel (values only). */
static void ref_max_pool(const poolcfg *q, const double *x, double *y, int64_t oh, int64_t ow) {
  for (int64_t nc = 0; nc < q->n * q->c; nc++)
    for (int64_t i = 0; i < oh; i++)
      for (int64_t j = 0; j < ow; j++) {
        double m = -INFINITY;
        for (int64_t ki = 0; ki < q->k[0]; ki++)
          for (int64_t kj = 0; kj < q->k[1]; kj++) {
            int64_t ih = i * q->s[0] - q->p[0] + ki * q->d[0];
            int64_t iw = j * q->s[1] - q->p[1] + kj * q->d[1];
            if (ih < 0 || ih >= q->h || iw < 0 || iw >= q->w) continue;
            double v = x[(nc * q->h + ih) * q->w + iw];
            if (v > m || isnan(v)) m = v;
          }
        y[(nc * oh + i) * ow + j] = m;
      }
}

/* avg_pool2d as PyTorch's CPU kernel: the divisor is the window clipped to
 * the padded input (count_include_pad) or to the input. */
static void ref_avg_pool(const poolcfg *q, const double *x, double *y, int64_t oh, int64_t ow) {
  for (int64_t nc = 0; nc < q->n * q->c; nc++)
    for (int64_t i = 0; i < oh; i++)
      for (int64_t j = 0; j < ow; j++) {
        int64_t h0 = i * q->s[0] - q->p[0], w0 = j * q->s[1] - q->p[1];
        int64_t h1 = h0 + q->k[0], w1 = w0 + q->k[1];
        if (h1 > q->h + q->p[0]) h1 = q->h + q->p[0];
        if (w1 > q->w + q->p[1]) w1 = q->w + q->p[1];
        int64_t pool = (h1 - h0) * (w1 - w0);
        if (h0 < 0) h0 = 0;
        if (w0 < 0) w0 = 0;
        if (h1 > q->h) h1 = q->h;
        if (w1 > q->w) w1 = q->w;
        double sum = 0;
        for (int64_t a = h0; a < h1; a++)
          for (int64_t b = w0; b < w1; b++) sum += x[(nc * q->h + a) * q->w + b];
        y[(nc * oh + i) * ow + j] = sum / (double)(q->include_pad ? pool : (h1 - h0) * (w1 - w0));
      }
}

static const convcfg conv_grid[] = {
    /* n c  h  w  o kh kw  stride  padding dilation groups bias unbatched */
    {2, 3, 5, 6, 4, 3, 3, {1, 1}, {0, 0}, {1, 1}, 1, true, false},
    {1, 2, 7, 5, 3, 3, 2, {2, 1}, {1, 0}, {1, 1}, 1, false, false},
    {2, 4, 6, 6, 6, 2, 3, {2, 2}, {1, 2}, {2, 1}, 2, true, false},
    {1, 4, 5, 5, 4, 3, 3, {1, 1}, {1, 1}, {1, 1}, 4, true, false}, /* depthwise */
    {1, 3, 8, 7, 2, 1, 1, {3, 2}, {0, 0}, {1, 1}, 1, true, false}, /* 1x1, strided */
    {1, 2, 4, 4, 3, 4, 4, {1, 1}, {0, 0}, {1, 1}, 1, true, false}, /* one position */
    {1, 2, 6, 7, 2, 2, 2, {1, 3}, {2, 1}, {3, 2}, 1, false, true},
    {1, 6, 3, 4, 4, 2, 1, {1, 1}, {1, 1}, {1, 1}, 2, true, true},  /* unbatched */
    {1, 1, 9, 3, 1, 3, 3, {4, 1}, {0, 1}, {1, 1}, 1, false, false},
};
#define N_CONV (int)(sizeof conv_grid / sizeof conv_grid[0])

static const poolcfg pool_grid[] = {
    /* n c  h  w  kernel  stride  padding dilation ceil  include_pad unbatched */
    {2, 2, 5, 6, {2, 2}, {2, 2}, {0, 0}, {1, 1}, false, true, false},
    {1, 3, 5, 5, {3, 3}, {2, 2}, {1, 1}, {1, 1}, true, true, false},
    {1, 3, 5, 5, {3, 3}, {2, 2}, {1, 1}, {1, 1}, true, false, false},
    {1, 2, 7, 6, {3, 2}, {2, 3}, {1, 1}, {2, 1}, true, true, false},
    {2, 1, 6, 7, {2, 3}, {1, 2}, {1, 0}, {1, 2}, false, false, false},
    {1, 2, 4, 4, {4, 4}, {4, 4}, {2, 2}, {1, 1}, true, true, false},
    {1, 1, 5, 5, {2, 2}, {2, 2}, {1, 1}, {1, 1}, true, false, false},
    {1, 3, 6, 5, {3, 1}, {3, 1}, {0, 0}, {1, 1}, true, true, true},
    {1, 2, 3, 8, {1, 3}, {1, 3}, {0, 1}, {1, 1}, false, true, true},
};
#define N_POOL (int)(sizeof pool_grid / sizeof pool_grid[0])

/* Input data kept for binding by name. */
typedef struct binds {
  int n;
  char names[64][16];
  void *data[64];
  tu_bind b[64];
} binds;

/* A new input of dtype dt with values v (converted), bound by name. */
static smelt_node bound_input(smelt_graph *g, binds *B, smelt_dtype dt, int rank,
                              const int64_t *dims, const double *v) {
  ck_assert_int_lt(B->n, 64);
  int k = B->n++;
  snprintf(B->names[k], sizeof B->names[k], "in%d", k);
  int64_t n = numel_of(rank, dims);
  void *p = malloc((size_t)(n > 0 ? n : 1) * 8);
  ck_assert_ptr_nonnull(p);
  for (int64_t i = 0; i < n; i++) {
    if (dt == F32) ((float *)p)[i] = (float)v[i];
    else ((double *)p)[i] = v[i];
  }
  B->data[k] = p;
  B->b[k] = (tu_bind){B->names[k], p};
  return smelt_input(g, B->names[k], dt, rank, dims);
}

static void binds_free(binds *B) {
  for (int i = 0; i < B->n; i++) free(B->data[i]);
  B->n = 0;
}

/* A grid: every configuration's outputs in one graph, checked in one run. */
enum { GRID_MAX = 32 };
typedef struct grid {
  smelt_graph *g;
  binds B; /* the inputs */
  int n;   /* outputs so far */
  expect e[GRID_MAX];
  double *want[GRID_MAX];
} grid;

/* An input [N, C, H, W] (or [C, H, W] when unbatched) with values v. */
static smelt_node grid_input(grid *G, smelt_dtype dt, bool unbatched, const int64_t d[4],
                             const double *v) {
  return unbatched ? bound_input(G->g, &G->B, dt, 3, d + 1, v)
                   : bound_input(G->g, &G->B, dt, 4, d, v);
}

/* y, which must be [N, C, OH, OW] (or [C, OH, OW] when unbatched), is the
 * grid's next output (configuration i of the `what` grid). Returns the
 * buffer of its expected values, for a reference loop to fill. */
static double *grid_output(grid *G, const char *what, int i, smelt_node y, bool unbatched,
                           const int64_t yd[4]) {
  ck_assert_msg(unbatched ? tu_shape_eq(G->g, y, 3, yd + 1) : tu_shape_eq(G->g, y, 4, yd),
                "%s grid %d: wrong shape (%s)", what, i,
                smelt_graph_error(G->g) ? smelt_graph_error(G->g) : "no error");
  ck_assert_int_lt(G->n, GRID_MAX);
  int64_t n = numel_of(4, yd);
  double *want = G->want[G->n] = xmalloc_d(n);
  G->e[G->n++] = (expect){y, n, want};
  return want;
}

/* Runs the grid's outputs against their expected values; frees the grid. */
static void grid_check(grid *G, double tol) {
  check_all_(__FILE__, __LINE__, G->g, tol, G->n, G->e, G->B.n, G->B.b);
  for (int i = 0; i < G->n; i++) free(G->want[i]);
  binds_free(&G->B);
  smelt_graph_free(G->g);
}

static void conv_grid_check(smelt_dtype dt) {
  grid G = {.g = TU_GRAPH()};
  for (int i = 0; i < N_CONV; i++) {
    const convcfg *q = &conv_grid[i];
    int64_t xd[4] = {q->n, q->c, q->h, q->w}, wd[4] = {q->o, q->c / q->groups, q->kh, q->kw};
    double *xv = rnd_values(100 + (uint64_t)i, numel_of(4, xd), -2, 2, false);
    double *wv = rnd_values(200 + (uint64_t)i, numel_of(4, wd), -1, 1, false);
    double *bv = rnd_values(300 + (uint64_t)i, q->o, -1, 1, false);
    smelt_node x = grid_input(&G, dt, q->unbatched, xd, xv);
    smelt_node w = bound_input(G.g, &G.B, dt, 4, wd, wv);
    smelt_node b = q->bias ? bound_input(G.g, &G.B, dt, 1, &q->o, bv) : NONE;
    smelt_node y = smelt_conv2d(G.g, x, w, b, q->s, q->p, q->d, q->groups);
    int64_t oh = out_size(q->h, q->kh, q->s[0], q->p[0], q->d[0], false);
    int64_t ow = out_size(q->w, q->kw, q->s[1], q->p[1], q->d[1], false);
    int64_t yd[4] = {q->n, q->o, oh, ow};
    ref_conv(q, xv, wv, bv, grid_output(&G, "conv", i, y, q->unbatched, yd), oh, ow);
    free(xv), free(wv), free(bv);
  }
  grid_check(&G, dt == F32 ? 2e-5 : 1e-12);
}

START_TEST(conv2d_grid) {
  conv_grid_check(F64);
  conv_grid_check(F32);
}
END_TEST

/* max_pool2d of every configuration, avg_pool2d of those without dilation. */
static void pool_grid_check(smelt_dtype dt) {
  grid G = {.g = TU_GRAPH()};
  for (int i = 0; i < N_POOL; i++) {
    const poolcfg *q = &pool_grid[i];
    int64_t xd[4] = {q->n, q->c, q->h, q->w};
    double *xv = rnd_values(400 + (uint64_t)i, numel_of(4, xd), -3, 3, i % 2 == 0);
    smelt_node x = grid_input(&G, dt, q->unbatched, xd, xv);
    int64_t oh = out_size(q->h, q->k[0], q->s[0], q->p[0], q->d[0], q->ceil_mode);
    int64_t ow = out_size(q->w, q->k[1], q->s[1], q->p[1], q->d[1], q->ceil_mode);
    int64_t yd[4] = {q->n, q->c, oh, ow};
    smelt_node ym = smelt_max_pool2d(G.g, x, q->k, q->s, q->p, q->d, q->ceil_mode);
    ref_max_pool(q, xv, grid_output(&G, "max_pool", i, ym, q->unbatched, yd), oh, ow);
    if (q->d[0] == 1 && q->d[1] == 1) {
      smelt_node ya = smelt_avg_pool2d(G.g, x, q->k, q->s, q->p, q->ceil_mode, q->include_pad);
      ref_avg_pool(q, xv, grid_output(&G, "avg_pool", i, ya, q->unbatched, yd), oh, ow);
    }
    free(xv);
  }
  grid_check(&G, dt == F32 ? 2e-6 : 1e-14);
}

START_TEST(pools_grid) {
  pool_grid_check(F64);
  pool_grid_check(F32);
}
END_TEST

/* ============================================================ batch_norm */

/* Per channel of x [N, C, L] (row-major): mean and biased variance. */
static void bn_stats(const double *x, int64_t n, int64_t c, int64_t l, double *mean, double *var) {
  for (int64_t ch = 0; ch < c; ch++) {
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++)
      for (int64_t k = 0; k < l; k++) s += x[(i * c + ch) * l + k];
    mean[ch] = s / (double)(n * l);
    for (int64_t i = 0; i < n; i++)
      for (int64_t k = 0; k < l; k++) {
        double d = x[(i * c + ch) * l + k] - mean[ch];
        ss += d * d;
      }
    var[ch] = ss / (double)(n * l);
  }
}

static void bn_apply(const double *x, int64_t n, int64_t c, int64_t l, const double *mean,
                     const double *var, const double *w, const double *b, double eps, double *y) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t ch = 0; ch < c; ch++)
      for (int64_t k = 0; k < l; k++) {
        int64_t at = (i * c + ch) * l + k;
        y[at] = (x[at] - mean[ch]) / sqrt(var[ch] + eps) * (w ? w[ch] : 1) + (b ? b[ch] : 0);
      }
}

/* Batch statistics in a plain interpreter run (training true), running
 * ones with training false; rank 2, 3 and 4 inputs; weight and bias. */
START_TEST(batch_norm_values) {
  smelt_graph *g = TU_GRAPH();
  /* x [4, 2]: channel 0 = 1, 2, 3, 6 (mean 3, var 3.5); channel 1 = 0, 0,
   * 2, 2 (mean 1, var 1) */
  const double xv[8] = {1, 0, 2, 0, 3, 2, 6, 2};
  smelt_node x = tu_const_f64(g, 2, TU_DIMS(4, 2), xv);
  smelt_node w = TU_VEC(g, F64, 2, -1), b = TU_VEC(g, F64, 0.5, 3);
  const double rmv[2] = {0.5, -1}, rvv[2] = {2, 0.25};
  smelt_node rm = smelt_param(g, "rm", F64, 1, TU_DIMS(2), smelt_init_data(rmv));
  smelt_node rv = smelt_param(g, "rv", F64, 1, TU_DIMS(2), smelt_init_data(rvv));
  const double eps = 1e-5;
  smelt_node plain = smelt_batch_norm(g, x, NONE, NONE, NONE, NONE, true, 0.1, eps, NULL);
  smelt_node affine = smelt_batch_norm(g, x, w, b, rm, rv, true, 0.1, eps, NULL);
  smelt_node run = smelt_batch_norm(g, x, w, b, rm, rv, false, 0.1, eps, NULL);
  smelt_node big = smelt_batch_norm(g, x, NONE, NONE, NONE, NONE, true, 0.1, 0.5, NULL);
  double mean[2], var[2], y0[8], y1[8], y2[8], y3[8];
  const double wv[2] = {2, -1}, bv[2] = {0.5, 3};
  bn_stats(xv, 4, 2, 1, mean, var);
  ck_assert(mean[0] == 3 && var[0] == 3.5 && mean[1] == 1 && var[1] == 1);
  bn_apply(xv, 4, 2, 1, mean, var, NULL, NULL, eps, y0);
  bn_apply(xv, 4, 2, 1, mean, var, wv, bv, eps, y1);
  bn_apply(xv, 4, 2, 1, rmv, rvv, wv, bv, eps, y2);
  bn_apply(xv, 4, 2, 1, mean, var, NULL, NULL, 0.5, y3);
  TU_ASSERT_SHAPE(g, affine, 2, 4, 2);
  CHECK_ALL(g, 1e-14, ((expect){plain, 8, y0}), ((expect){affine, 8, y1}),
            ((expect){run, 8, y2}), ((expect){big, 8, y3}));
  smelt_graph_free(g);

  /* [N, C, H, W] and [N, C, L] in f32: statistics over N and the rest */
  g = TU_GRAPH();
  double *x4 = rnd_values(7, 2 * 3 * 2 * 2, -2, 2, false);
  smelt_node xa = tu_const_d(g, F32, 4, TU_DIMS(2, 3, 2, 2), x4);
  smelt_node xb = tu_const_d(g, F32, 3, TU_DIMS(2, 3, 4), x4);
  smelt_node ya = smelt_batch_norm(g, xa, TU_VEC(g, F32, 1, 2, 3), NONE, NONE, NONE, true, 0.1,
                                   1e-5, NULL);
  smelt_node yb = smelt_batch_norm(g, xb, NONE, TU_VEC(g, F32, -1, 0, 1), NONE, NONE, true, 0.1,
                                   1e-5, NULL);
  double m3[3], v3[3], wa[24], wb[24];
  bn_stats(x4, 2, 3, 4, m3, v3);
  bn_apply(x4, 2, 3, 4, m3, v3, (const double[]){1, 2, 3}, NULL, 1e-5, wa);
  bn_apply(x4, 2, 3, 4, m3, v3, NULL, (const double[]){-1, 0, 1}, 1e-5, wb);
  TU_ASSERT_DTYPE(g, ya, F32);
  CHECK_ALL(g, 5e-6, ((expect){ya, 24, wa}), ((expect){yb, 24, wb}));
  free(x4);
  smelt_graph_free(g);
}
END_TEST

/* Compiles one program (target from smelt_compile_defaults) or an
 * evaluation program; fails the test on an error. */
static smelt_program *compile_prog(smelt_graph *g, smelt_params *p, int nout,
                                   const char *const *outs, int nupd, const smelt_node *upd,
                                   bool eval) {
  smelt_compile_options o = smelt_compile_defaults();
  o.cache_dir = NULL;
  smelt_program *pr = eval ? smelt_program_compile_eval(g, p, nout, outs, &o)
                           : smelt_program_compile(g, p, nout, outs, nupd, upd, &o);
  ck_assert_ptr_nonnull(pr);
  ck_assert_msg(!smelt_program_error(pr), "compile: %s", smelt_program_error(pr));
  return pr;
}

static void prog_run_read(smelt_program *pr, const char *name, double *out, size_t n) {
  ck_assert_msg(smelt_program_run(pr) == 0, "run: %s", smelt_program_error(pr));
  ck_assert_msg(smelt_program_read(pr, name, F64, out, n * sizeof(double)) == 0, "read: %s",
                smelt_program_error(pr));
}

/* A training program applies the running statistics' updates (momentum,
 * unbiased variance) and normalizes with the batch's; an evaluation
 * program sharing the params normalizes with the running statistics. */
START_TEST(batch_norm_programs) {
  smelt_graph *g = TU_GRAPH();
  const double xv[8] = {1, 0, 2, 0, 3, 2, 6, 2};
  smelt_node x = tu_input(g, "x", F64, 2, 4, 2);
  const double rm0[2] = {0.5, -1}, rv0[2] = {2, 0.5}, wv[2] = {2, -1}, bv[2] = {0.5, 3};
  smelt_node rm = smelt_param(g, "rm", F64, 1, TU_DIMS(2), smelt_init_data(rm0));
  smelt_node rv = smelt_param(g, "rv", F64, 1, TU_DIMS(2), smelt_init_data(rv0));
  smelt_node w = smelt_param(g, "w", F64, 1, TU_DIMS(2), smelt_init_data(wv));
  smelt_node b = smelt_param(g, "b", F64, 1, TU_DIMS(2), smelt_init_data(bv));
  const double momentum = 0.25, eps = 1e-3;
  smelt_node upd[2];
  smelt_node y = smelt_batch_norm(g, x, w, b, rm, rv, true, momentum, eps, upd);
  TU_ASSERT_OK(g);
  ck_assert(smelt_node_valid(upd[0]) && smelt_node_valid(upd[1]));
  /* no updates without running statistics, or with training false */
  smelt_node none[2] = {x, x};
  smelt_batch_norm(g, x, NONE, NONE, NONE, NONE, true, momentum, eps, none);
  ck_assert(!smelt_node_valid(none[0]) && !smelt_node_valid(none[1]));
  none[0] = none[1] = x;
  smelt_node yfixed = smelt_batch_norm(g, x, NONE, NONE, rm, rv, false, momentum, eps, none);
  ck_assert(!smelt_node_valid(none[0]) && !smelt_node_valid(none[1]));
  /* track_running_stats=False: batch statistics in every program */
  smelt_node ybatch = smelt_batch_norm(g, x, NONE, NONE, NONE, NONE, true, momentum, eps, NULL);
  smelt_output(g, "y", y);
  smelt_output(g, "yfixed", yfixed);
  smelt_output(g, "ybatch", ybatch);
  TU_ASSERT_OK(g);

  smelt_params *p = smelt_params_new(g);
  ck_assert_ptr_nonnull(p);
  const char *const names[3] = {"y", "yfixed", "ybatch"};
  smelt_program *train = compile_prog(g, p, 3, names, 2, upd, false);
  smelt_program *eval = compile_prog(g, p, 3, names, 0, NULL, true);
  ck_assert_int_eq(smelt_program_bind(train, "x", F64, 2, TU_DIMS(4, 2), xv, sizeof xv), 0);
  ck_assert_int_eq(smelt_program_bind(eval, "x", F64, 2, TU_DIMS(4, 2), xv, sizeof xv), 0);

  double mean[2], var[2], unbiased[2], rm_want[2], rv_want[2], want[8], got[8];
  bn_stats(xv, 4, 2, 1, mean, var);
  for (int c = 0; c < 2; c++) {
    unbiased[c] = var[c] * 4 / 3;
    rm_want[c] = rm0[c], rv_want[c] = rv0[c];
  }
  /* got is batch_norm of xv by statistics m, v and affine w, b */
#define BN_CLOSE(got, m, v, w, b)                                                         \
  do {                                                                                     \
    bn_apply(xv, 4, 2, 1, (m), (v), (w), (b), eps, want);                                  \
    TU_ASSERT_CLOSE((got), want, 8, 1e-13, 1e-13);                                         \
  } while (0)
  for (int step = 0; step < 3; step++) {
    /* the evaluation program sees the running statistics so far */
    double ev[8];
    prog_run_read(eval, "y", ev, 8);
    BN_CLOSE(ev, rm_want, rv_want, wv, bv);
    prog_run_read(eval, "yfixed", ev, 8);
    BN_CLOSE(ev, rm_want, rv_want, NULL, NULL);
    prog_run_read(eval, "ybatch", ev, 8);
    BN_CLOSE(ev, mean, var, NULL, NULL);
    /* a training step: batch statistics, then the updates */
    prog_run_read(train, "y", got, 8);
    BN_CLOSE(got, mean, var, wv, bv);
    ck_assert_int_eq(smelt_program_read(train, "yfixed", F64, got, sizeof got), 0);
    BN_CLOSE(got, rm_want, rv_want, NULL, NULL);
    for (int c = 0; c < 2; c++) {
      rm_want[c] = (1 - momentum) * rm_want[c] + momentum * mean[c];
      rv_want[c] = (1 - momentum) * rv_want[c] + momentum * unbiased[c];
    }
    double rmg[2], rvg[2];
    ck_assert_int_eq(smelt_params_read(p, "rm", F64, rmg, sizeof rmg), 0);
    ck_assert_int_eq(smelt_params_read(p, "rv", F64, rvg, sizeof rvg), 0);
    TU_ASSERT_CLOSE(rmg, rm_want, 2, 1e-14, 1e-14);
    TU_ASSERT_CLOSE(rvg, rv_want, 2, 1e-14, 1e-14);
  }
#undef BN_CLOSE
  smelt_program_free(train);
  smelt_program_free(eval);
  smelt_params_free(p);
  smelt_graph_free(g);
}
END_TEST

/* momentum 0 keeps the running statistics, momentum 1 replaces them with
 * the batch's (f32). */
START_TEST(batch_norm_momentum_bounds) {
  smelt_graph *g = TU_GRAPH();
  const float xv[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  smelt_node x = tu_input(g, "x", F32, 3, 2, 2, 3); /* channel 0: 1,2,3,7,8,9 */
  smelt_node rm[2], rv[2], upd[4];
  for (int k = 0; k < 2; k++) {
    char a[8], b[8];
    snprintf(a, sizeof a, "rm%d", k);
    snprintf(b, sizeof b, "rv%d", k);
    rm[k] = smelt_param(g, a, F32, 1, TU_DIMS(2), smelt_init_constant(0.5));
    rv[k] = smelt_param(g, b, F32, 1, TU_DIMS(2), smelt_init_constant(2));
    smelt_node y = smelt_batch_norm(g, x, NONE, NONE, rm[k], rv[k], true, k, 1e-5, upd + 2 * k);
    char o[8];
    snprintf(o, sizeof o, "y%d", k);
    smelt_output(g, o, y);
  }
  TU_ASSERT_OK(g);
  smelt_params *p = smelt_params_new(g);
  smelt_program *pr = compile_prog(g, p, 2, (const char *const[]){"y0", "y1"}, 4, upd, false);
  ck_assert_int_eq(smelt_program_bind(pr, "x", F32, 3, TU_DIMS(2, 2, 3), xv, sizeof xv), 0);
  ck_assert_int_eq(smelt_program_run(pr), 0);
  float got[2];
  ck_assert_int_eq(smelt_params_read(p, "rm0", F32, got, sizeof got), 0);
  ck_assert(got[0] == 0.5f && got[1] == 0.5f);
  ck_assert_int_eq(smelt_params_read(p, "rv0", F32, got, sizeof got), 0);
  ck_assert(got[0] == 2 && got[1] == 2);
  /* channel 0: mean 5, unbiased var ((16+9+4)*2)/5 = 11.6; channel 1: 8, 11.6 */
  ck_assert_int_eq(smelt_params_read(p, "rm1", F32, got, sizeof got), 0);
  ck_assert_msg(fabsf(got[0] - 5) < 1e-6f && fabsf(got[1] - 8) < 1e-6f, "%g %g", got[0], got[1]);
  ck_assert_int_eq(smelt_params_read(p, "rv1", F32, got, sizeof got), 0);
  ck_assert_msg(fabsf(got[0] - 11.6f) < 1e-5f && fabsf(got[1] - 11.6f) < 1e-5f, "%g %g", got[0],
                got[1]);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}
END_TEST

/* ============================================================== errors */

typedef struct egraph {
  smelt_graph *g;
  smelt_node x, x3, xi, x2, x1, x8, w, w64, w3, b, b5, c4, c5, c4d, one, in4;
} egraph;

static egraph eg_new(void) {
  egraph E;
  smelt_graph *g = E.g = TU_GRAPH();
  E.x = smelt_input(g, "x", F32, 4, TU_DIMS(2, 4, 5, 5));
  E.x3 = smelt_input(g, "x3", F32, 3, TU_DIMS(4, 5, 5));
  E.xi = smelt_input(g, "xi", SMELT_I32, 4, TU_DIMS(2, 4, 5, 5));
  E.x2 = smelt_input(g, "x2", F32, 2, TU_DIMS(5, 5));
  E.x1 = smelt_input(g, "x1", F32, 1, TU_DIMS(7));
  E.x8 = smelt_input(g, "x8", F32, 8, TU_DIMS(1, 1, 1, 1, 1, 1, 1, 2));
  E.w = smelt_input(g, "w", F32, 4, TU_DIMS(6, 2, 3, 3));
  E.w64 = smelt_input(g, "w64", F64, 4, TU_DIMS(6, 2, 3, 3));
  E.w3 = smelt_input(g, "w3", F32, 3, TU_DIMS(6, 2, 3));
  E.b = smelt_input(g, "b", F32, 1, TU_DIMS(6));
  E.b5 = smelt_input(g, "b5", F32, 1, TU_DIMS(5));
  E.c4 = smelt_param(g, "c4", F32, 1, TU_DIMS(4), smelt_init_zeros());
  E.c5 = smelt_param(g, "c5", F32, 1, TU_DIMS(5), smelt_init_zeros());
  E.c4d = smelt_param(g, "c4d", F64, 1, TU_DIMS(4), smelt_init_zeros());
  E.one = smelt_input(g, "one", F32, 4, TU_DIMS(1, 4, 1, 1));
  E.in4 = smelt_input(g, "in4", F32, 1, TU_DIMS(4));
  TU_ASSERT_OK(g);
  return E;
}

/* The call fails with exactly msg; the error sticks (later calls return
 * invalid handles and keep the first message); printing still works. */
#define ERR(call, msg)                                                                     \
  do {                                                                                     \
    egraph E = eg_new();                                                                   \
    smelt_graph *g = E.g;                                                                  \
    smelt_node r_ = (call);                                                                \
    ck_assert_msg(!smelt_node_valid(r_), "%s: accepted", #call);                           \
    ck_assert_msg(smelt_graph_error(g), "%s: no error recorded", #call);                   \
    ck_assert_str_eq(smelt_graph_error(g), (msg));                                         \
    ck_assert(!smelt_node_valid(smelt_conv2d(g, E.x, E.w, NONE, NULL, NULL, NULL, 2)));    \
    ck_assert(!smelt_node_valid(smelt_unfold(g, E.x1, 0, 2, 1)));                          \
    ck_assert_str_eq(smelt_graph_error(g), (msg));                                         \
    char *t_ = smelt_graph_print(g);                                                       \
    smelt_free(t_);                                                                        \
    smelt_graph_free(g);                                                                   \
  } while (0)

START_TEST(errors_unfold) {
  ERR(smelt_unfold(g, E.x1, 1, 2, 1), "unfold: axis 1 is out of range for %x1: f32[7]");
  ERR(smelt_unfold(g, E.x1, -2, 2, 1), "unfold: axis -2 is out of range for %x1: f32[7]");
  ERR(smelt_unfold(g, E.x1, 0, -1, 1), "unfold: size -1 is negative");
  ERR(smelt_unfold(g, E.x1, 0, 2, 0), "unfold: step 0 must be at least 1");
  ERR(smelt_unfold(g, E.x1, 0, 2, -3), "unfold: step -3 must be at least 1");
  ERR(smelt_unfold(g, E.x1, 0, 8, 1), "unfold: size 8 is larger than axis 0 of %x1: f32[7]");
  ERR(smelt_unfold(g, E.x8, 0, 1, 1),
      "unfold: %x8: f32[1,1,1,1,1,1,1,2] already has the most axes a tensor may have (8)");
  ERR(smelt_unfold(g, NONE, 0, 1, 1), "unfold: the operand is an invalid handle");
  /* a rank-0 tensor has no axis to unfold */
  {
    smelt_graph *g = TU_GRAPH();
    smelt_unfold(g, smelt_const(g, F32, 1), 0, 1, 1);
    TU_ASSERT_ERROR(g, "unfold: axis 0 is out of range for %0: f32[]");
    smelt_graph_free(g);
  }
}
END_TEST

START_TEST(errors_conv2d) {
  ERR(smelt_conv2d(g, E.x2, E.w, E.b, NULL, NULL, NULL, 1),
      "conv2d: the input must be [N, C, H, W] or [C, H, W], got %x2: f32[5,5]");
  ERR(smelt_conv2d(g, E.xi, E.w, E.b, NULL, NULL, NULL, 1),
      "conv2d: needs a float input, got %xi: i32[2,4,5,5] (cast it first)");
  ERR(smelt_conv2d(g, E.x, E.w3, E.b, NULL, NULL, NULL, 2),
      "conv2d: the weight must be [out_channels, in_channels / groups, KH, KW] of the input's "
      "dtype f32, got %w3: f32[6,2,3]");
  ERR(smelt_conv2d(g, E.x, E.w64, E.b, NULL, NULL, NULL, 2),
      "conv2d: the weight must be [out_channels, in_channels / groups, KH, KW] of the input's "
      "dtype f32, got %w64: f64[6,2,3,3]");
  ERR(smelt_conv2d(g, E.x, E.w, E.b, NULL, NULL, NULL, 0), "conv2d: groups 0 must be at least 1");
  ERR(smelt_conv2d(g, E.x, E.w, E.b, NULL, NULL, NULL, 3),
      "conv2d: groups 3 must divide the input channels (4) and the output channels (6)");
  ERR(smelt_conv2d(g, E.x, E.w, E.b, NULL, NULL, NULL, 4),
      "conv2d: groups 4 must divide the input channels (4) and the output channels (6)");
  ERR(smelt_conv2d(g, E.x, E.w, E.b, NULL, NULL, NULL, 1),
      "conv2d: the weight %w: f32[6,2,3,3] has 2 input channels per group; the input has 4 "
      "channels in 1 groups (4 each)");
  ERR(smelt_conv2d(g, E.x, E.w, E.b5, NULL, NULL, NULL, 2),
      "conv2d: the bias must be f32[6], got %b5: f32[5]");
  ERR(smelt_conv2d(g, E.x, E.w, E.in4, NULL, NULL, NULL, 2),
      "conv2d: the bias must be f32[6], got %in4: f32[4]");
  ERR(smelt_conv2d(g, E.x, E.w, E.x1, NULL, NULL, NULL, 2),
      "conv2d: the bias must be f32[6], got %x1: f32[7]");
  ERR(smelt_conv2d(g, E.x, E.w, E.b, K2(0, 1), NULL, NULL, 2),
      "conv2d: stride 0 (height) must be at least 1");
  ERR(smelt_conv2d(g, E.x, E.w, E.b, K2(1, -1), NULL, NULL, 2),
      "conv2d: stride -1 (width) must be at least 1");
  ERR(smelt_conv2d(g, E.x, E.w, E.b, NULL, K2(-1, 0), NULL, 2),
      "conv2d: padding -1 (height) is negative");
  ERR(smelt_conv2d(g, E.x, E.w, E.b, NULL, NULL, K2(1, 0), 2),
      "conv2d: dilation 0 (width) must be at least 1");
  /* the kernel (3, dilated 3 apart: 7) does not fit the padded 5 */
  ERR(smelt_conv2d(g, E.x, E.w, E.b, NULL, NULL, K2(3, 1), 2),
      "conv2d: the window (3 with dilation 3) is larger than the padded input's height (5)");
  ERR(smelt_conv2d(g, E.x3, E.w, E.b, NULL, K2(0, 0), K2(1, 3), 2),
      "conv2d: the window (3 with dilation 3) is larger than the padded input's width (5)");
  ERR(smelt_conv2d(g, E.x, E.w, E.b, K2(1LL << 40, 1), NULL, NULL, 2),
      "conv2d: the window's height sizes are too large");
  ERR(smelt_conv2d(g, E.x, NONE, E.b, NULL, NULL, NULL, 2), "conv2d: the weight is an invalid handle");
  ERR(smelt_conv2d(g, NONE, E.w, E.b, NULL, NULL, NULL, 2), "conv2d: the input is an invalid handle");
  /* padding makes room: the same kernel fits */
  egraph E = eg_new();
  TU_ASSERT_SHAPE(E.g, smelt_conv2d(E.g, E.x, E.w, E.b, K2(1, 1), K2(1, 0), K2(3, 1), 2), 4, 2, 6, 1, 3);
  smelt_graph_free(E.g);
}
END_TEST

START_TEST(errors_pool) {
  ERR(smelt_max_pool2d(g, E.x, NULL, NULL, NULL, NULL, false), "max_pool2d: the kernel size is required");
  ERR(smelt_avg_pool2d(g, E.x, NULL, NULL, NULL, false, true), "avg_pool2d: the kernel size is required");
  ERR(smelt_max_pool2d(g, E.x1, K2(2, 2), NULL, NULL, NULL, false),
      "max_pool2d: the input must be [N, C, H, W] or [C, H, W], got %x1: f32[7]");
  ERR(smelt_avg_pool2d(g, E.x2, K2(2, 2), NULL, NULL, false, true),
      "avg_pool2d: the input must be [N, C, H, W] or [C, H, W], got %x2: f32[5,5]");
  ERR(smelt_max_pool2d(g, E.xi, K2(2, 2), NULL, NULL, NULL, false),
      "max_pool2d: needs a float input, got %xi: i32[2,4,5,5] (cast it first)");
  ERR(smelt_avg_pool2d(g, E.xi, K2(2, 2), NULL, NULL, false, true),
      "avg_pool2d: needs a float input, got %xi: i32[2,4,5,5] (cast it first)");
  ERR(smelt_max_pool2d(g, E.x, K2(0, 2), NULL, NULL, NULL, false),
      "max_pool2d: kernel height 0 must be at least 1");
  ERR(smelt_avg_pool2d(g, E.x, K2(2, -1), NULL, NULL, false, true),
      "avg_pool2d: kernel width -1 must be at least 1");
  ERR(smelt_max_pool2d(g, E.x, K2(2, 2), K2(2, 0), NULL, NULL, false),
      "max_pool2d: stride 0 (width) must be at least 1");
  ERR(smelt_max_pool2d(g, E.x, K2(2, 2), NULL, NULL, K2(0, 1), false),
      "max_pool2d: dilation 0 (height) must be at least 1");
  /* padding at most half the (dilated) window, as PyTorch */
  ERR(smelt_max_pool2d(g, E.x, K2(2, 2), NULL, K2(2, 0), NULL, false),
      "max_pool2d: padding 2 (height) must be at most half the window (2 with dilation 1)");
  ERR(smelt_max_pool2d(g, E.x, K2(3, 3), NULL, K2(1, 2), K2(1, 1), false),
      "max_pool2d: padding 2 (width) must be at most half the window (3 with dilation 1)");
  ERR(smelt_avg_pool2d(g, E.x, K2(2, 2), NULL, K2(2, 0), false, true),
      "avg_pool2d: padding 2 (height) must be at most half the window (2 with dilation 1)");
  ERR(smelt_max_pool2d(g, E.x, K2(6, 2), NULL, NULL, NULL, false),
      "max_pool2d: the window (6 with dilation 1) is larger than the padded input's height (5)");
  ERR(smelt_max_pool2d(g, E.x, K2(3, 3), NULL, NULL, K2(3, 1), false),
      "max_pool2d: the window (3 with dilation 3) is larger than the padded input's height (5)");
  ERR(smelt_avg_pool2d(g, E.x3, K2(2, 6), NULL, NULL, true, false),
      "avg_pool2d: the window (6 with dilation 1) is larger than the padded input's width (5)");
  ERR(smelt_max_pool2d(g, NONE, K2(2, 2), NULL, NULL, NULL, false),
      "max_pool2d: the input is an invalid handle");
  /* avg_pool2d's divisors are computed in the graph (per axis, from an
   * arange): a hostile size builds without a table as large as its
   * output (fuzz_api found the table) */
  {
    smelt_graph *g = smelt_graph_new();
    smelt_node big = smelt_input(g, "big", F32, 4, TU_DIMS(1, 1, 3, 1ll << 40));
    smelt_node y = smelt_avg_pool2d(g, big, K2(2, 2), NULL, K2(1, 1), false, false);
    TU_ASSERT_OK(g);
    ck_assert(tu_shape_eq(g, y, 4, TU_DIMS(1, 1, 2, (1ll << 39) + 1)));
    smelt_graph_free(g);
  }
  /* within the limit: a dilated window allows more padding */
  egraph E = eg_new();
  TU_ASSERT_SHAPE(E.g, smelt_max_pool2d(E.g, E.x, K2(2, 2), NULL, K2(2, 1), K2(3, 1), false), 4,
                  2, 4, 3, 3);
  smelt_graph_free(E.g);
}
END_TEST

START_TEST(errors_batch_norm) {
#define BN(x, w, b, rm, rv, tr, mom, eps) smelt_batch_norm(g, x, w, b, rm, rv, tr, mom, eps, NULL)
  ERR(BN(E.x1, NONE, NONE, NONE, NONE, true, 0.1, 1e-5),
      "batch_norm: the input must be a float tensor [N, C, ...], got %x1: f32[7]");
  ERR(BN(E.xi, NONE, NONE, NONE, NONE, true, 0.1, 1e-5),
      "batch_norm: the input must be a float tensor [N, C, ...], got %xi: i32[2,4,5,5]");
  ERR(BN(E.x, NONE, NONE, E.c4, NONE, true, 0.1, 1e-5),
      "batch_norm: give both running_mean and running_var, or neither");
  ERR(BN(E.x, NONE, NONE, NONE, E.c4, true, 0.1, 1e-5),
      "batch_norm: give both running_mean and running_var, or neither");
  ERR(BN(E.x, NONE, NONE, NONE, NONE, false, 0.1, 1e-5),
      "batch_norm: without training, running_mean and running_var are needed");
  ERR(BN(E.x, NONE, NONE, NONE, NONE, true, 0.1, 0), "batch_norm: eps = 0 must be positive");
  ERR(BN(E.x, NONE, NONE, NONE, NONE, true, 0.1, -1), "batch_norm: eps = -1 must be positive");
  ERR(BN(E.x, NONE, NONE, NONE, NONE, true, 0.1, NAN), "batch_norm: eps = nan must be positive");
  ERR(BN(E.x, NONE, NONE, NONE, NONE, true, 0.1, INFINITY),
      "batch_norm: eps = inf must be positive");
  ERR(BN(E.x, NONE, NONE, NONE, NONE, true, -0.1, 1e-5),
      "batch_norm: momentum = -0.1 must be in [0, 1]");
  ERR(BN(E.x, NONE, NONE, NONE, NONE, true, 1.5, 1e-5),
      "batch_norm: momentum = 1.5 must be in [0, 1]");
  ERR(BN(E.x, NONE, NONE, NONE, NONE, true, NAN, 1e-5),
      "batch_norm: momentum = nan must be in [0, 1]");
  ERR(BN(E.one, NONE, NONE, NONE, NONE, true, 0.1, 1e-5),
      "batch_norm: training needs more than one value per channel (input %one: f32[1,4,1,1])");
  ERR(BN(E.x, E.c5, NONE, NONE, NONE, true, 0.1, 1e-5),
      "batch_norm: weight must be f32[4] (one per channel), got %c5: f32[5]");
  ERR(BN(E.x, E.x, NONE, NONE, NONE, true, 0.1, 1e-5),
      "batch_norm: weight must be f32[4] (one per channel), got %x: f32[2,4,5,5]");
  ERR(BN(E.x, NONE, E.c4d, NONE, NONE, true, 0.1, 1e-5),
      "batch_norm: bias must be f32[4] (one per channel), got %c4d: f64[4]");
  ERR(BN(E.x, NONE, NONE, E.c5, E.c5, true, 0.1, 1e-5),
      "batch_norm: running_mean must be f32[4] (one per channel), got %c5: f32[5]");
  ERR(BN(E.x, NONE, NONE, E.c4, E.b5, true, 0.1, 1e-5),
      "batch_norm: running_var must be f32[4] (one per channel), got %b5: f32[5]");
  ERR(BN(NONE, NONE, NONE, NONE, NONE, true, 0.1, 1e-5), "batch_norm: the input is an invalid handle");
#undef BN
}
END_TEST

/* Running statistics that are not params cannot be updated; without
 * updates requested they are plain inputs. One value per channel is
 * fine without training. */
START_TEST(errors_batch_norm_updates) {
  egraph E = eg_new();
  smelt_node up[2] = {E.x, E.x};
  smelt_node y = smelt_batch_norm(E.g, E.x, NONE, NONE, E.in4, E.in4, true, 0.1, 1e-5, up);
  ck_assert(!smelt_node_valid(y));
  ck_assert(!smelt_node_valid(up[0]) && !smelt_node_valid(up[1]));
  ck_assert_str_eq(smelt_graph_error(E.g),
                   "assign: the target %in4: f32[4] is not a param (only params are updated)");
  smelt_graph_free(E.g);
  E = eg_new();
  TU_ASSERT_SHAPE(E.g, smelt_batch_norm(E.g, E.x, NONE, NONE, E.in4, E.in4, true, 0.1, 1e-5, NULL),
                  4, 2, 4, 5, 5);
  TU_ASSERT_SHAPE(E.g, smelt_batch_norm(E.g, E.one, NONE, NONE, E.c4, E.c4, false, 0.1, 1e-5, NULL),
                  4, 1, 4, 1, 1);
  smelt_graph_free(E.g);
}
END_TEST

/* ========================================================== gradients */

typedef struct opctx {
  int axis;
  int64_t size, step;
  int64_t lo, hi; /* unfold: pad the axis first */
  bool square;    /* unfold: times itself (nonlinear, for second order) */
  convcfg conv;
  poolcfg pool;
  bool bn_affine, bn_running;
} opctx;
#define OPC(...) (&(opctx){__VA_ARGS__})

static smelt_node b_unfold(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opctx *o = c;
  smelt_node v = x[0];
  if (o->lo || o->hi) {
    int rank;
    smelt_node_shape(g, v, &rank);
    int64_t lo[SMELT_MAX_RANK] = {0}, hi[SMELT_MAX_RANK] = {0};
    int a = o->axis < 0 ? o->axis + rank : o->axis;
    lo[a] = o->lo, hi[a] = o->hi;
    v = smelt_pad(g, v, lo, hi, 0.5);
  }
  smelt_node u = smelt_unfold(g, v, o->axis, o->size, o->step);
  return o->square ? smelt_mul(g, u, smelt_sin(g, u)) : u;
}

static smelt_node b_conv(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  const convcfg *q = &((const opctx *)c)->conv;
  return smelt_conv2d(g, x[0], x[1], n > 2 ? x[2] : NONE, q->s, q->p, q->d, q->groups);
}

/* conv2d followed by tanh: nonlinear in x and w together (second order). */
static smelt_node b_conv_tanh(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  return smelt_tanh(g, b_conv(g, n, x, c));
}

static smelt_node b_max_pool(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const poolcfg *q = &((const opctx *)c)->pool;
  return smelt_max_pool2d(g, x[0], q->k, q->s, q->p, q->d, q->ceil_mode);
}

static smelt_node b_avg_pool(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const poolcfg *q = &((const opctx *)c)->pool;
  return smelt_avg_pool2d(g, x[0], q->k, q->s, q->p, q->ceil_mode, q->include_pad);
}

/* pooling of x^2 (second order: the pooled gradient is 2x, and its own
 * gradient goes through the pool again) */
static smelt_node b_pool_sq(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  smelt_node sq[1] = {smelt_mul(g, x[0], x[0])};
  const opctx *o = c;
  return o->pool.include_pad ? b_avg_pool(g, n, sq, c) : b_max_pool(g, n, sq, c);
}

static smelt_node b_bn(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  const opctx *o = c;
  smelt_node rm = NONE, rv = NONE;
  if (o->bn_running) {
    int rank;
    const int64_t *d = smelt_node_shape(g, x[0], &rank);
    rm = smelt_param(g, "rm", F64, 1, d + 1, smelt_init_constant(0.25));
    rv = smelt_param(g, "rv", F64, 1, d + 1, smelt_init_constant(2));
  }
  return smelt_batch_norm(g, x[0], n > 1 ? x[1] : NONE, n > 2 ? x[2] : NONE, rm, rv, true, 0.1,
                          o->size ? 0.5 : 1e-5, NULL);
}

START_TEST(gradcheck_unfold) {
  GC("unfold overlapping", b_unfold, OPC(.axis = 0, .size = 3, .step = 1), UNIF(-1, 1, "6"));
  GC("unfold step 2", b_unfold, OPC(.axis = 1, .size = 3, .step = 2), UNIF(-1, 1, "2,7"));
  GC("unfold step > size", b_unfold, OPC(.axis = -1, .size = 2, .step = 3), UNIF(-1, 1, "3,8"));
  GC("unfold size 5 step 2", b_unfold, OPC(.axis = 0, .size = 5, .step = 2), UNIF(-1, 1, "9,2"));
  GC("unfold inner axis", b_unfold, OPC(.axis = 1, .size = 2, .step = 1), UNIF(-1, 1, "2,4,3"));
  GC("unfold padded", b_unfold, OPC(.axis = 1, .size = 3, .step = 2, .lo = 1, .hi = 2),
     UNIF(-1, 1, "2,5"));
  GC("unfold whole axis", b_unfold, OPC(.axis = 0, .size = 4, .step = 1), UNIF(-1, 1, "4"));
  GC("unfold nonlinear", b_unfold, OPC(.axis = 0, .size = 3, .step = 2, .square = true),
     UNIF(-1, 1, "7,2"));
}
END_TEST

/* Second order: the gradient of vjp_unfold's graph (permute, pad, slice,
 * reshape, add) is an unfold again. */
START_TEST(gradcheck_unfold_second_order) {
  GC("d2 unfold overlapping", b_grad_of,
     GO(b_unfold, OPC(.axis = 0, .size = 3, .step = 1, .square = true), 0), UNIF(-1, 1, "6"));
  GC("d2 unfold size 5 step 2", b_grad_of,
     GO(b_unfold, OPC(.axis = 1, .size = 5, .step = 2, .square = true), 0), UNIF(-1, 1, "2,9"));
  GC("d2 unfold gaps padded", b_grad_of,
     GO(b_unfold, OPC(.axis = 0, .size = 2, .step = 3, .lo = 2, .hi = 1, .square = true), 0),
     UNIF(-1, 1, "7,2"));
  /* third order through two unfolds */
  GC("d3 unfold", b_grad_of,
     GO(b_grad_of, GO(b_unfold, OPC(.axis = 0, .size = 2, .step = 1, .square = true), 0), 0),
     UNIF(-1, 1, "5"));
}
END_TEST

START_TEST(gradcheck_conv2d) {
  GC("conv2d plain + bias", b_conv, OPC(.conv = {.s = {1, 1}, .p = {0, 0}, .d = {1, 1}, .groups = 1}),
     UNIF(-1, 1, "2,2,4,4"), UNIF(-1, 1, "3,2,2,3"), UNIF(-1, 1, "3"));
  GC("conv2d stride padding dilation", b_conv,
     OPC(.conv = {.s = {2, 1}, .p = {1, 2}, .d = {2, 1}, .groups = 1}), UNIF(-1, 1, "1,2,5,4"),
     UNIF(-1, 1, "2,2,2,2"));
  GC("conv2d groups", b_conv, OPC(.conv = {.s = {1, 2}, .p = {1, 1}, .d = {1, 1}, .groups = 2}),
     UNIF(-1, 1, "1,4,4,5"), UNIF(-1, 1, "4,2,3,2"), UNIF(-1, 1, "4"));
  GC("conv2d unbatched", b_conv, OPC(.conv = {.s = {1, 1}, .p = {0, 1}, .d = {1, 1}, .groups = 1}),
     UNIF(-1, 1, "2,3,3"), UNIF(-1, 1, "2,2,2,2"));
  GC("conv2d stride 3 gaps", b_conv, OPC(.conv = {.s = {3, 3}, .p = {0, 0}, .d = {1, 1}, .groups = 1}),
     UNIF(-1, 1, "1,1,7,7"), UNIF(-1, 1, "1,1,2,2"));
  GC("d2 conv2d tanh, d/dx first", b_grad_of,
     GO(b_conv_tanh, OPC(.conv = {.s = {1, 1}, .p = {1, 0}, .d = {1, 1}, .groups = 1}), 0),
     UNIF(-1, 1, "1,2,3,3"), UNIF(-1, 1, "2,2,2,2"));
  GC("d2 conv2d tanh, d/dw first", b_grad_of,
     GO(b_conv_tanh, OPC(.conv = {.s = {2, 1}, .p = {0, 1}, .d = {1, 2}, .groups = 1}), 1),
     UNIF(-1, 1, "1,1,4,4"), UNIF(-1, 1, "2,1,2,2"), UNIF(-1, 1, "2"));
}
END_TEST

START_TEST(gradcheck_pool) {
  GC("max_pool2d", b_max_pool, OPC(.pool = {.k = {2, 2}, .s = {2, 2}, .d = {1, 1}}),
     DISTINCT(-2, 2, "1,2,4,5"));
  GC("max_pool2d overlapping padded ceil", b_max_pool,
     OPC(.pool = {.k = {3, 2}, .s = {2, 1}, .p = {1, 1}, .d = {1, 1}, .ceil_mode = true}),
     DISTINCT(-2, 2, "2,1,5,4"));
  GC("max_pool2d dilated unbatched", b_max_pool,
     OPC(.pool = {.k = {2, 2}, .s = {1, 2}, .p = {0, 1}, .d = {2, 2}}), DISTINCT(-2, 2, "2,5,5"));
  GC("avg_pool2d include_pad ceil", b_avg_pool,
     OPC(.pool = {.k = {3, 3}, .s = {2, 2}, .p = {1, 1}, .ceil_mode = true, .include_pad = true}),
     UNIF(-1, 1, "1,2,4,5"));
  GC("avg_pool2d exclude_pad", b_avg_pool,
     OPC(.pool = {.k = {2, 3}, .s = {1, 2}, .p = {1, 1}, .include_pad = false}),
     UNIF(-1, 1, "1,1,4,5"));
  GC("d2 max_pool2d of x^2", b_grad_of,
     GO(b_pool_sq, OPC(.pool = {.k = {2, 2}, .s = {1, 1}, .d = {1, 1}}), 0),
     DISTINCT(0.5, 2, "1,1,3,4"));
  GC("d2 avg_pool2d of x^2", b_grad_of,
     GO(b_pool_sq, OPC(.pool = {.k = {2, 2}, .s = {2, 1}, .p = {1, 0}, .include_pad = true}), 0),
     UNIF(-1, 1, "1,1,3,4"));
}
END_TEST

START_TEST(gradcheck_batch_norm) {
  GC("batch_norm [N,C]", b_bn, OPC(.bn_affine = true), UNIF(-2, 2, "4,3"), UNIF(0.5, 1.5, "3"),
     UNIF(-1, 1, "3"));
  GC("batch_norm [N,C,H,W] running", b_bn, OPC(.bn_running = true), UNIF(-2, 2, "2,2,2,3"),
     UNIF(0.5, 1.5, "2"));
  GC("batch_norm [N,C,L] eps 0.5", b_bn, OPC(.size = 1), UNIF(-2, 2, "3,2,2"));
  GC("d2 batch_norm", b_grad_of, GO(b_bn, OPC(.bn_affine = true), 0), UNIF(-2, 2, "3,2"),
     UNIF(0.5, 1.5, "2"));
}
END_TEST

/* max_pool2d's gradient goes to the first maximum of each window (as
 * PyTorch), whole, also where windows overlap; ties in a max reduction
 * would split it instead. */
START_TEST(max_pool2d_gradient_ties) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F64, 4, 1, 1, 2, 3);
  smelt_node a = smelt_max_pool2d(g, x, K2(2, 2), K2(1, 1), NULL, NULL, false);
  smelt_node b = smelt_max_pool2d(g, x, K2(1, 2), K2(1, 1), NULL, NULL, false);
  smelt_node c = smelt_max_pool2d(g, x, K2(2, 2), K2(2, 2), K2(1, 1), NULL, false);
  smelt_node gr[3];
  ck_assert_int_eq(smelt_grad(g, smelt_sum(g, a, 0, NULL, false), 1, &x, &gr[0]), 0);
  ck_assert_int_eq(smelt_grad(g, smelt_sum(g, b, 0, NULL, false), 1, &x, &gr[1]), 0);
  ck_assert_int_eq(smelt_grad(g, smelt_sum(g, c, 0, NULL, false), 1, &x, &gr[2]), 0);
  const double ones[6] = {1, 1, 1, 1, 1, 1};
  tu_bind bind = {"x", ones};
  /* all equal: window (0,0) picks x[0,0], window (0,1) x[0,1]; padding
   * never wins (padded windows: each picks its first real element) */
  check_all_(__FILE__, __LINE__, g, 0, 3,
             (expect[]){EXPECT(gr[0], 1, 1, 0, 0, 0, 0), EXPECT(gr[1], 1, 1, 0, 1, 1, 0),
                        EXPECT(gr[2], 1, 1, 0, 1, 1, 0)},
             1, &bind);
  /* two maxima per window: the first; a later larger value wins outright */
  const double v[6] = {3, 1, 3, 3, 3, 5};
  bind.data = v;
  check_all_(__FILE__, __LINE__, g, 0, 3,
             (expect[]){EXPECT(gr[0], 1, 0, 0, 0, 0, 1), EXPECT(gr[1], 1, 0, 1, 1, 0, 1),
                        EXPECT(gr[2], 1, 0, 1, 1, 0, 1)},
             1, &bind);
  smelt_graph_free(g);
}
END_TEST

/* avg_pool2d's gradient spreads gy / divisor over each window; batch
 * norm's gradient sums to zero per channel (without affine). */
START_TEST(pool_and_bn_gradient_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F64, 4, 1, 1, 3, 3);
  smelt_node a = smelt_avg_pool2d(g, x, K2(2, 2), K2(1, 1), NULL, false, true);
  smelt_node ga;
  ck_assert_int_eq(smelt_grad(g, smelt_sum(g, a, 0, NULL, false), 1, &x, &ga), 0);
  smelt_node p = smelt_avg_pool2d(g, x, K2(3, 3), K2(1, 1), K2(1, 1), false, false);
  smelt_node gp;
  ck_assert_int_eq(smelt_grad(g, smelt_sum(g, p, 0, NULL, false), 1, &x, &gp), 0);
  smelt_node bx = tu_input(g, "bx", F64, 2, 4, 2);
  smelt_node bn = smelt_batch_norm(g, bx, NONE, NONE, NONE, NONE, true, 0.1, 1e-5, NULL);
  smelt_node wsum = smelt_sum(g, smelt_mul(g, bn, seq(g, F64, 2, TU_DIMS(4, 2), 1, 1)), 0, NULL, false);
  smelt_node gb;
  ck_assert_int_eq(smelt_grad(g, wsum, 1, &bx, &gb), 0);
  smelt_node gbs = smelt_sum(g, gb, 1, (int[]){0}, false);
  const double xv[9] = {0}, bxv[8] = {1, 0, 2, 0, 3, 2, 6, 2};
  tu_bind b[2] = {{"x", xv}, {"bx", bxv}};
  /* corners in 1 window, edges 2, the center 4 (each / 4); with padding 1
   * and count_include_pad false each window divides by what it covers */
  const double c = 1.0 / 4 + 2.0 / 6 + 1.0 / 9, e = 2.0 / 4 + 3.0 / 6 + 1.0 / 9,
               m = 4.0 / 4 + 4.0 / 6 + 1.0 / 9;
  check_all_(__FILE__, __LINE__, g, 1e-14, 3,
             (expect[]){EXPECT(ga, 0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25),
                        EXPECT(gp, c, e, c, e, m, e, c, e, c),
                        EXPECT(gbs, 0, 0)},
             2, b);
  smelt_graph_free(g);
}
END_TEST

/* ================================================ programs vs interpreter */

/* Every op with several configurations and the gradients of a loss over
 * all of them, compiled (smelt_compile_defaults: $SMELT_TARGET) and
 * compared with a plain interpreter run. */
static void program_matches_interp(smelt_dtype dt) {
  smelt_graph *g = TU_GRAPH();
  binds B = {0};
  double *v;
  smelt_node leaves[8];
  int nl = 0;
#define LEAF(var, rank, dims, lo, hi, distinct)                                             \
  do {                                                                                      \
    v = rnd_values(900 + (uint64_t)B.n, numel_of((rank), (dims)), (lo), (hi), (distinct)); \
    var = leaves[nl++] = bound_input(g, &B, dt, (rank), (dims), v);                         \
    free(v);                                                                                \
  } while (0)
  smelt_node x, w, b, wg, xu, xb, bw, bb;
  LEAF(x, 4, TU_DIMS(2, 4, 6, 7), -2, 2, true);
  LEAF(w, 4, TU_DIMS(3, 4, 3, 2), -1, 1, false);
  LEAF(b, 1, TU_DIMS(3), -1, 1, false);
  LEAF(wg, 4, TU_DIMS(4, 2, 2, 3), -1, 1, false);
  LEAF(xu, 3, TU_DIMS(2, 5, 9), -2, 2, true);
  LEAF(xb, 4, TU_DIMS(3, 4, 2, 3), -2, 2, false);
  LEAF(bw, 1, TU_DIMS(4), 0.5, 1.5, false);
  LEAF(bb, 1, TU_DIMS(4), -1, 1, false);
#undef LEAF
  smelt_node outs[24];
  int no = 0;
  outs[no++] = smelt_conv2d(g, x, w, b, K2(2, 1), K2(1, 2), K2(1, 2), 1);
  outs[no++] = smelt_conv2d(g, x, wg, NONE, K2(1, 2), K2(2, 0), K2(2, 1), 2);
  outs[no++] = smelt_conv2d(g, xu, smelt_slice_axis(g, w, 1, 0, 2, 1), NONE, K2(1, 1), K2(1, 1), NULL, 1);
  outs[no++] = smelt_max_pool2d(g, x, K2(3, 2), K2(2, 2), K2(1, 1), NULL, true);
  outs[no++] = smelt_max_pool2d(g, xu, K2(2, 2), K2(1, 3), K2(1, 0), K2(2, 2), true);
  outs[no++] = smelt_avg_pool2d(g, x, K2(3, 3), K2(2, 2), K2(1, 1), true, true);
  outs[no++] = smelt_avg_pool2d(g, xu, K2(2, 3), K2(2, 2), K2(1, 1), true, false);
  outs[no++] = smelt_batch_norm(g, xb, bw, bb, NONE, NONE, true, 0.1, 1e-5, NULL);
  outs[no++] = smelt_unfold(g, smelt_pad(g, xu, TU_DIMS(0, 1, 2), TU_DIMS(0, 0, 1), -1), 2, 4, 3);
  outs[no++] = smelt_unfold(g, smelt_unfold(g, smelt_transpose(g, x, 2, 3), 2, 3, 2), 3, 2, 1);
  /* a loss over all of them, and its gradients with respect to every leaf */
  smelt_node loss = SMELT_INVALID;
  for (int i = 0; i < no; i++) {
    smelt_node t = smelt_sum(g, smelt_mul(g, outs[i], smelt_tanh(g, outs[i])), 0, NULL, false);
    loss = i ? smelt_add(g, loss, t) : t;
  }
  smelt_node grads[8];
  ck_assert_int_eq(smelt_grad(g, loss, nl, leaves, grads), 0);
  for (int i = 0; i < nl; i++) outs[no++] = grads[i];
  char names[24][8];
  const char *nm[24];
  for (int i = 0; i < no; i++) {
    snprintf(names[i], sizeof names[i], "o%d", i);
    nm[i] = names[i];
    smelt_output(g, names[i], outs[i]);
  }
  TU_ASSERT_OK(g);

  smelt_interp *it = smelt_interp_new(g);
  ck_assert_ptr_nonnull(it);
  smelt_params *p = smelt_params_new(g);
  smelt_program *pr = compile_prog(g, p, no, nm, 0, NULL, false);
  for (int i = 0; i < B.n; i++) {
    int rank;
    const int64_t *d = smelt_node_shape(g, leaves[i], &rank);
    size_t nb = (size_t)numel_of(rank, d) * smelt_dtype_size(dt);
    ck_assert_int_eq(smelt_interp_bind(it, B.names[i], dt, rank, d, B.data[i], nb), 0);
    ck_assert_int_eq(smelt_program_bind(pr, B.names[i], dt, rank, d, B.data[i], nb), 0);
  }
  ck_assert_msg(smelt_interp_run(it) == 0, "%s", smelt_interp_error(it));
  ck_assert_msg(smelt_program_run(pr) == 0, "%s", smelt_program_error(pr));
  double tol = dt == F32 ? 2e-5 : 1e-12;
  for (int i = 0; i < no; i++) {
    int64_t n = smelt_node_numel(g, outs[i]);
    size_t nb = (size_t)n * smelt_dtype_size(dt);
    void *a = malloc(nb ? nb : 1), *c = malloc(nb ? nb : 1);
    ck_assert_int_eq(smelt_interp_read(it, nm[i], dt, a, nb), 0);
    ck_assert_int_eq(smelt_program_read(pr, nm[i], dt, c, nb), 0);
    double *da = tu_to_double(dt, a, n), *dc = tu_to_double(dt, c, n), scale = 1;
    for (int64_t k = 0; k < n; k++) scale = fmax(scale, fabs(da[k]));
    for (int64_t k = 0; k < n; k++)
      ck_assert_msg(tu_close(dc[k], da[k], tol * scale, tol),
                    "%s output %d [%lld]: program %.17g, interpreter %.17g", smelt_dtype_name(dt),
                    i, (long long)k, dc[k], da[k]);
    free(a), free(c), free(da), free(dc);
  }
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_interp_free(it);
  binds_free(&B);
  smelt_graph_free(g);
}

/* f32 (f64 programs are checked by the gradient checks, whose analytic
 * side runs on the target under test) */
START_TEST(program_matches_interp_f32) { program_matches_interp(F32); }
END_TEST

/* ================================================================ suite */

static Suite *conv_suite(void) {
  Suite *s = suite_create("conv");
  TCase *tc = tcase_create("unfold");
  tcase_add_test(tc, unfold_windows);
  tcase_add_test(tc, unfold_inner_axes);
  tcase_add_test(tc, unfold_size_zero);
  tcase_add_test(tc, unfold_padded);
  tcase_add_test(tc, unfold_of_views);
  tcase_add_test(tc, unfold_gradient_counts);
  suite_add_tcase(s, tc);

  tc = tcase_create("conv_pool");
  tcase_add_test(tc, conv2d_hand);
  tcase_add_test(tc, conv2d_channels_groups);
  tcase_add_test(tc, conv2d_structure);
  tcase_add_test(tc, conv2d_default_pairs);
  tcase_add_test(tc, max_pool2d_hand);
  tcase_add_test(tc, pool_ceil_mode_shapes);
  tcase_add_test(tc, avg_pool2d_hand);
  tcase_add_test(tc, conv2d_grid);
  tcase_add_test(tc, pools_grid);
  suite_add_tcase(s, tc);

  tc = tcase_create("batch_norm");
  tcase_add_test(tc, batch_norm_values);
  tcase_add_test(tc, batch_norm_programs);
  tcase_add_test(tc, batch_norm_momentum_bounds);
  suite_add_tcase(s, tc);

  tc = tcase_create("errors");
  tcase_add_test(tc, errors_unfold);
  tcase_add_test(tc, errors_conv2d);
  tcase_add_test(tc, errors_pool);
  tcase_add_test(tc, errors_batch_norm);
  tcase_add_test(tc, errors_batch_norm_updates);
  suite_add_tcase(s, tc);

  tc = tcase_create("gradients");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, gradcheck_unfold);
  tcase_add_test(tc, gradcheck_unfold_second_order);
  tcase_add_test(tc, gradcheck_conv2d);
  tcase_add_test(tc, gradcheck_pool);
  tcase_add_test(tc, gradcheck_batch_norm);
  tcase_add_test(tc, max_pool2d_gradient_ties);
  tcase_add_test(tc, pool_and_bn_gradient_values);
  suite_add_tcase(s, tc);

  tc = tcase_create("programs");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, program_matches_interp_f32);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(conv_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
