/* Gradients: smelt_grad and smelt_vjp (include/smelt/smelt.h, "autodiff").
 *
 * 1. Gradient check of every differentiable public op and composite against
 *    central differences, in f64, on random inputs (a fixed seed per case),
 *    with several shapes per op including broadcasting, rank 0 and size-1
 *    dims. Method (GC, tests/gradcheck.c, shared with the conv suite):
 *    build out = op(x0, x1, ...) with the inputs as named graph inputs,
 *    then y = sum(out * R) with a fixed random R of out's shape (entries
 *    +-[0.5, 1.5]) so that every output element matters; the analytic
 *    gradients come from smelt_grad on that graph, run through tu_run (the
 *    target under test: the interpreter after a text round trip, or
 *    $SMELT_TEST_TARGET as in grad-cpu). The numeric gradient of element i
 *    is (f(x + h e_i) - f(x - h e_i)) / 2h with h = 1e-5 (absolute: an
 *    input near 500 needs no larger step, its derivatives are not smaller),
 *    evaluated by the interpreter on a second, independently built forward
 *    graph whose inputs are bound to the same buffers (perturbed in place).
 *
 *    TOLERANCE: |analytic - numeric| <= GC_ATOL + GC_RTOL * |numeric| with
 *    GC_RTOL = 1e-6 (relative) and GC_ATOL = 1e-7 (absolute floor for
 *    near-zero gradients). With h = 1e-5 the truncation error is about
 *    h^2/6 * |f'''| ~ 1e-11 |f'''| and the rounding error about
 *    eps * |f| / h ~ 2e-11 |f|, both far below the tolerance for the
 *    magnitudes used here (|f| < 1e3).
 *    Inputs stay away from kinks and singularities: relu/abs inputs away
 *    from 0, max/min reductions on distinct values, maximum/minimum operands
 *    at least 0.25 apart, clamp inputs off the bounds, log/sqrt/div inputs
 *    bounded away from 0.
 *    Second and third derivatives are checked the same way on the first
 *    (second) gradient graph: out = grad(sum(op(x) * R1), x).
 * 2. Exact reference results: sum(x^3) at [[5,4],[3,2]] gives
 *    [[75,48],[27,12]]; sum(2*w^2) at [1,2] gives [4,8]; sum(x^2) at [1,2,3]
 *    gives [2,4,6]; d2/dx2 x^3 = 6x, d3/dx3 = 6. Integers: tolerance 1e-12.
 * 3. Kinks, with exact expectations as PyTorch: relu'(0) = 0, abs'(0) = 0,
 *    max/min reductions split the gradient evenly among tied extrema
 *    (torch.amax/amin), maximum/minimum ties give 0.5/0.5, clamp passes the
 *    gradient where lo <= x <= hi (bounds included), max_dim/min_dim values
 *    send it to the selected (first) index (torch.max(x, dim)), prod with
 *    zeros and pow at 0 as PyTorch's formulas.
 * 4. Semantics and errors: y not scalar, int/bool wrt, int/bool y, invalid
 *    and foreign handles, unrelated wrt (zeros; an error with
 *    SMELT_GRAD_STRICT), stop_gradient, comparisons/argmax/int casts pass no
 *    gradient, gradient shapes of broadcast operands, vjp seeds, expand sums
 *    back, intermediate and repeated wrt, f32 gradients stay f32, size-0
 *    tensors, hash-consing keeps backward graphs small, sticky errors, and
 *    allocation failure injection around smelt_grad.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "internal.h" /* sm_alloc_fail_after, sm_alloc_failures */
#include "testutil.h"

#define F32 SMELT_F32
#define F64 SMELT_F64
#define I32 SMELT_I32
#define I64 SMELT_I64
#define BOOL SMELT_BOOL

/* ============================================================= builders */

/* Arguments of the op builders below; each uses the fields it needs. */
typedef struct opa {
  smelt_node (*u)(smelt_graph *, smelt_node);
  smelt_node (*b)(smelt_graph *, smelt_node, smelt_node);
  smelt_node (*r)(smelt_graph *, smelt_node, int, const int *, bool);
  int naxes;
  int axes[SMELT_MAX_RANK];
  bool keep;
  bool flag;
  int64_t corr;
  const char *shape; /* target shape, or the shape of the index / condition */
  int64_t s0[SMELT_MAX_RANK], s1[SMELT_MAX_RANK], s2[SMELT_MAX_RANK];
  int axis, axis2, form;
  double lo, hi, v;
  smelt_dtype idt;
  int64_t l[48]; /* index or condition data */
  uint64_t seed;
} opa;

#define A(...) (&(opa){__VA_ARGS__})

static smelt_node shape_node(smelt_graph *g, const opa *a, smelt_dtype dt) {
  int64_t dims[SMELT_MAX_RANK];
  int rank = parse_shape(a->shape, dims);
  int64_t n = numel_of(rank, dims);
  double v[48];
  ck_assert_int_le(n, 48);
  for (int64_t i = 0; i < n; i++) v[i] = (double)a->l[i];
  return tu_const_d(g, dt, rank, dims, v);
}

static smelt_node b_un(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  return ((const opa *)c)->u(g, x[0]);
}

static smelt_node b_bin(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  return ((const opa *)c)->b(g, x[0], x[1]);
}

/* A binary op with a literal (weak scalar) operand. */
enum { LIT_MUL, LIT_RSUB, LIT_RDIV, LIT_POW, LIT_RPOW, LIT_ADD, LIT_DIV };
static smelt_node b_lit(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  smelt_node s = smelt_scalar(g, a->v);
  switch (a->form) {
  case LIT_MUL: return smelt_mul(g, x[0], s);
  case LIT_RSUB: return smelt_sub(g, s, x[0]);
  case LIT_RDIV: return smelt_div(g, s, x[0]);
  case LIT_POW: return smelt_pow(g, x[0], s);
  case LIT_RPOW: return smelt_pow(g, s, x[0]);
  case LIT_ADD: return smelt_add(g, x[0], s);
  case LIT_DIV: return smelt_div(g, x[0], s);
  }
  return SMELT_INVALID;
}

/* where(cond, x0, x1) with a constant bool condition; with one input,
 * where(cond, x0, literal v) (form 0) or where(cond, literal v, x0) (1). */
static smelt_node b_where(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  const opa *a = c;
  smelt_node cond = shape_node(g, a, BOOL);
  if (n == 2) return smelt_where(g, cond, x[0], x[1]);
  smelt_node s = smelt_scalar(g, a->v);
  return a->form ? smelt_where(g, cond, s, x[0]) : smelt_where(g, cond, x[0], s);
}

static smelt_node b_clamp(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return smelt_clamp(g, x[0], a->lo, a->hi);
}

static smelt_node b_red(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return a->r(g, x[0], a->naxes, a->axes, a->keep);
}

/* var (flag false) or std (flag true) */
static smelt_node b_var(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return a->flag ? smelt_std(g, x[0], a->naxes, a->axes, a->corr, a->keep)
                 : smelt_var(g, x[0], a->naxes, a->axes, a->corr, a->keep);
}

/* max_dim (flag false) or min_dim (flag true) values */
static smelt_node b_vdim(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  smelt_node v = SMELT_INVALID;
  if (a->flag)
    smelt_min_dim(g, x[0], a->axis, a->keep, &v, NULL);
  else
    smelt_max_dim(g, x[0], a->axis, a->keep, &v, NULL);
  return v;
}

static smelt_node b_reshape(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  int64_t d[SMELT_MAX_RANK];
  int r = parse_shape(((const opa *)c)->shape, d);
  return smelt_reshape(g, x[0], r, d);
}

static smelt_node b_expand(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  int64_t d[SMELT_MAX_RANK];
  const opa *a = c;
  int r = parse_shape(a->shape, d);
  return a->flag ? smelt_broadcast_to(g, x[0], r, d) : smelt_expand(g, x[0], r, d);
}

static smelt_node b_permute(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  return smelt_permute(g, x[0], ((const opa *)c)->axes);
}

static smelt_node b_transpose(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return smelt_transpose(g, x[0], a->axis, a->axis2);
}

static smelt_node b_squeeze(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return smelt_squeeze(g, x[0], a->naxes, a->axes);
}

static smelt_node b_unsqueeze(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  return smelt_unsqueeze(g, x[0], ((const opa *)c)->axis);
}

static smelt_node b_flatten(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return smelt_flatten(g, x[0], a->axis, a->axis2);
}

/* slice with starts s0, stops s1, steps s2 (NULL steps when flag) */
static smelt_node b_slice(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return smelt_slice(g, x[0], a->s0, a->s1, a->flag ? NULL : a->s2);
}

/* slice_axis(axis, s0[0]:s0[1]:s0[2]) */
static smelt_node b_slice_axis(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return smelt_slice_axis(g, x[0], a->axis, a->s0[0], a->s0[1], a->s0[2]);
}

static smelt_node b_flip(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return smelt_flip(g, x[0], a->naxes, a->axes);
}

/* pad with lo s0, hi s1, value v */
static smelt_node b_pad(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return smelt_pad(g, x[0], a->s0, a->s1, a->v);
}

static smelt_node b_concat(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  return smelt_concat(g, n, x, ((const opa *)c)->axis);
}

static smelt_node b_stack(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  return smelt_stack(g, n, x, ((const opa *)c)->axis);
}

/* A chain of views: reshape [2,3,4] -> [6,1,4], expand to [6,5,4], permute
 * (2,0,1), slice 1::2 / ::-ish / 1:4, flip axis 1, unsqueeze, squeeze. */
static smelt_node b_view_chain(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n, (void)c;
  smelt_node v = smelt_reshape(g, x[0], 3, TU_DIMS(6, 1, 4));
  v = smelt_expand(g, v, 3, TU_DIMS(6, 5, 4));
  v = smelt_permute(g, v, (const int[]){2, 0, 1});
  v = smelt_slice(g, v, TU_DIMS(1, 0, -4), TU_DIMS(SMELT_END, 5, SMELT_END), TU_DIMS(2, 2, 1));
  v = smelt_flip(g, v, 1, (const int[]){1});
  v = smelt_unsqueeze(g, v, 1);
  return smelt_squeeze(g, v, 1, (const int[]){1});
}

static smelt_node b_gather(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return smelt_gather(g, x[0], a->axis, shape_node(g, a, a->idt));
}

static smelt_node b_take(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return smelt_take_along_axis(g, x[0], shape_node(g, a, a->idt), a->axis);
}

static smelt_node b_isel(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return smelt_index_select(g, x[0], a->axis, shape_node(g, a, a->idt));
}

static smelt_node b_embed(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return smelt_embedding(g, x[0], shape_node(g, a, a->idt));
}

/* softmax (flag false) or log_softmax (flag true) */
static smelt_node b_softmax(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return a->flag ? smelt_log_softmax(g, x[0], a->axis) : smelt_softmax(g, x[0], a->axis);
}

static smelt_node b_ce(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return smelt_cross_entropy(g, x[0], shape_node(g, a, a->idt));
}

static smelt_node b_dropout(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n;
  const opa *a = c;
  return smelt_dropout(g, x[0], a->v, a->seed, true);
}

/* Layer norm over the last axis: (x - mean) / sqrt(var(corr 0) + 1e-5) *
 * gamma + beta (x [N,D], gamma and beta [D]). */
static smelt_node b_layernorm(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n, (void)c;
  int ax = -1;
  smelt_node m = smelt_mean(g, x[0], 1, &ax, true);
  smelt_node v = smelt_var(g, x[0], 1, &ax, 0, true);
  smelt_node xn =
      smelt_div(g, smelt_sub(g, x[0], m), smelt_sqrt(g, smelt_add(g, v, smelt_scalar(g, 1e-5))));
  return smelt_add(g, smelt_mul(g, xn, x[1]), x[2]);
}

/* A one-hidden-layer classifier: cross_entropy(tanh(x W1 + b1) W2, labels)
 * with x [4,3], W1 [3,5], b1 [5], W2 [5,3], labels {0,2,1,2}. */
static smelt_node b_mlp_ce(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n, (void)c;
  smelt_node h = smelt_tanh(g, smelt_add(g, smelt_matmul(g, x[0], x[1]), x[2]));
  smelt_node logits = smelt_matmul(g, h, x[3]);
  smelt_node labels = tu_const_i64(g, 1, TU_DIMS(4), (const int64_t[]){0, 2, 1, 2});
  return smelt_cross_entropy(g, logits, labels);
}

/* Several uses of x: x*x + sin(x) * x - exp(x)/(1 + x*x): gradient
 * accumulation over many paths. */
static smelt_node b_fanout(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  (void)n, (void)c;
  smelt_node xx = smelt_mul(g, x[0], x[0]);
  smelt_node t = smelt_add(g, xx, smelt_mul(g, smelt_sin(g, x[0]), x[0]));
  smelt_node q = smelt_div(g, smelt_exp(g, x[0]), smelt_add(g, smelt_scalar(g, 1), xx));
  return smelt_sub(g, t, q);
}

/* ================================================ gradient checks: unary */

static const char *const unary_shapes[] = {"", "7", "2,1,3", "1,4"};
#define NSHAPES (int)(sizeof unary_shapes / sizeof unary_shapes[0])

typedef struct unary_case {
  const char *name;
  smelt_node (*u)(smelt_graph *, smelt_node);
  gen_kind kind;
  double lo, hi;
} unary_case;

static const unary_case unary_cases[] = {
    {"neg", smelt_neg, GEN_UNIF, -2, 2},
    {"abs", smelt_abs, GEN_AWAY0, 0.1, 2},
    {"exp", smelt_exp, GEN_UNIF, -2, 2},
    {"log", smelt_log, GEN_UNIF, 0.2, 3},
    {"sqrt", smelt_sqrt, GEN_UNIF, 0.2, 3},
    {"rsqrt", smelt_rsqrt, GEN_UNIF, 0.3, 3},
    {"reciprocal", smelt_reciprocal, GEN_AWAY0, 0.3, 2},
    {"sin", smelt_sin, GEN_UNIF, -3, 3},
    {"cos", smelt_cos, GEN_UNIF, -3, 3},
    {"tanh", smelt_tanh, GEN_UNIF, -2, 2},
    {"sigmoid", smelt_sigmoid, GEN_UNIF, -4, 4},
    {"relu", smelt_relu, GEN_AWAY0, 0.05, 2},
    {"gelu", smelt_gelu, GEN_UNIF, -3, 3},
    {"x*x", NULL, GEN_UNIF, -2, 2},
    {"pow(x, x)", NULL, GEN_UNIF, 0.5, 2},
    {"x/x", NULL, GEN_AWAY0, 0.5, 2},
};

/* One operand used twice. */
static smelt_node self_mul(smelt_graph *g, smelt_node x) { return smelt_mul(g, x, x); }
static smelt_node self_pow(smelt_graph *g, smelt_node x) { return smelt_pow(g, x, x); }
static smelt_node self_div(smelt_graph *g, smelt_node x) { return smelt_div(g, x, x); }
static smelt_node (*const self_ops[])(smelt_graph *, smelt_node) = {self_mul, self_pow, self_div};

START_TEST(gc_unary) {
  int nself = 0;
  for (size_t k = 0; k < sizeof unary_cases / sizeof unary_cases[0]; k++) {
    const unary_case *u = &unary_cases[k];
    smelt_node (*f)(smelt_graph *, smelt_node) = u->u ? u->u : self_ops[nself++];
    for (int s = 0; s < NSHAPES; s++) {
      char label[96];
      snprintf(label, sizeof label, "%s [%s]", u->name, unary_shapes[s]);
      gc_in in = {u->kind, u->lo, u->hi, 0, 0, unary_shapes[s]};
      GC(label, b_un, A(.u = f), in);
    }
  }
}
END_TEST

START_TEST(gc_clamp) {
  /* inputs are multiples of 0.1 plus 0.05: never on a bound */
  GC("clamp(-0.5, 0.7) [3,4]", b_clamp, A(.lo = -0.5, .hi = 0.7), STEP(-15, 15, 0.1, 0.05, "3,4"));
  GC("clamp(-0.5, 0.7) []", b_clamp, A(.lo = -0.5, .hi = 0.7), STEP(-4, 6, 0.1, 0.05, ""));
  GC("clamp(0, inf) [2,1,3]", b_clamp, A(.lo = 0, .hi = INFINITY), STEP(-10, 10, 0.1, 0.05, "2,1,3"));
  GC("clamp(-inf, 0.3) [5]", b_clamp, A(.lo = -INFINITY, .hi = 0.3), STEP(-10, 10, 0.1, 0.05, "5"));
}
END_TEST

/* =============================================== gradient checks: binary */

static const char *const bin_shapes[][2] = {
    {"2,3", "2,3"}, {"2,3", "3"}, {"2,1", "1,3"}, {"", "2,2"},
    {"4,1,3", "2,1"}, {"1", "3,1"}, {"2,2", ""},
};
#define NBIN (int)(sizeof bin_shapes / sizeof bin_shapes[0])

START_TEST(gc_binary) {
  static const struct {
    const char *name;
    smelt_node (*b)(smelt_graph *, smelt_node, smelt_node);
    gen_kind ka, kb;
    double alo, ahi, blo, bhi;
  } cases[] = {
      {"add", smelt_add, GEN_UNIF, GEN_UNIF, -2, 2, -2, 2},
      {"sub", smelt_sub, GEN_UNIF, GEN_UNIF, -2, 2, -2, 2},
      {"mul", smelt_mul, GEN_UNIF, GEN_UNIF, -2, 2, -2, 2},
      {"div", smelt_div, GEN_UNIF, GEN_AWAY0, -2, 2, 0.5, 2},
      {"pow", smelt_pow, GEN_UNIF, GEN_UNIF, 0.5, 2, -2, 2},
      {"mse_loss", smelt_mse_loss, GEN_UNIF, GEN_UNIF, -2, 2, -2, 2},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
    for (int s = 0; s < NBIN; s++) {
      char label[96];
      snprintf(label, sizeof label, "%s [%s] [%s]", cases[k].name, bin_shapes[s][0],
               bin_shapes[s][1]);
      gc_in a = {cases[k].ka, cases[k].alo, cases[k].ahi, 0, 0, bin_shapes[s][0]};
      gc_in b = {cases[k].kb, cases[k].blo, cases[k].bhi, 0, 0, bin_shapes[s][1]};
      GC(label, b_bin, A(.b = cases[k].b), a, b);
    }
}
END_TEST

START_TEST(gc_maximum_minimum) {
  /* operands are k/2 + 1/8 and k/2 + 3/8: at least 0.25 apart */
  for (int s = 0; s < NBIN; s++) {
    char label[96];
    snprintf(label, sizeof label, "maximum [%s] [%s]", bin_shapes[s][0], bin_shapes[s][1]);
    GC(label, b_bin, A(.b = smelt_maximum), STEP(-4, 4, 0.5, 0.125, bin_shapes[s][0]),
       STEP(-4, 4, 0.5, 0.375, bin_shapes[s][1]));
    snprintf(label, sizeof label, "minimum [%s] [%s]", bin_shapes[s][0], bin_shapes[s][1]);
    GC(label, b_bin, A(.b = smelt_minimum), STEP(-4, 4, 0.5, 0.125, bin_shapes[s][0]),
       STEP(-4, 4, 0.5, 0.375, bin_shapes[s][1]));
  }
}
END_TEST

START_TEST(gc_literals) {
  GC("x * 2.5", b_lit, A(.form = LIT_MUL, .v = 2.5), UNIF(-2, 2, "2,3"));
  GC("1.5 - x", b_lit, A(.form = LIT_RSUB, .v = 1.5), UNIF(-2, 2, "2,3"));
  GC("3 / x", b_lit, A(.form = LIT_RDIV, .v = 3), AWAY0(0.5, 2, "4"));
  GC("x / 4", b_lit, A(.form = LIT_DIV, .v = 4), UNIF(-2, 2, ""));
  GC("x + 1", b_lit, A(.form = LIT_ADD, .v = 1), UNIF(-2, 2, "3,1"));
  /* integer exponents work for negative bases too (torch.pow) */
  GC("pow(x, 3), x < 0 too", b_lit, A(.form = LIT_POW, .v = 3), AWAY0(0.3, 2, "2,3"));
  GC("pow(x, 2)", b_lit, A(.form = LIT_POW, .v = 2), AWAY0(0.3, 2, "5"));
  GC("pow(x, -2)", b_lit, A(.form = LIT_POW, .v = -2), AWAY0(0.5, 2, "5"));
  GC("pow(x, 0.5)", b_lit, A(.form = LIT_POW, .v = 0.5), UNIF(0.3, 3, "5"));
  GC("pow(x, -1.5)", b_lit, A(.form = LIT_POW, .v = -1.5), UNIF(0.3, 3, "2,2"));
  GC("pow(2, x)", b_lit, A(.form = LIT_RPOW, .v = 2), UNIF(-2, 2, "5"));
  GC("pow(0.7, x)", b_lit, A(.form = LIT_RPOW, .v = 0.7), UNIF(-2, 2, ""));
}
END_TEST

START_TEST(gc_where) {
  /* cond [2,1,3], x0 [1,3], x1 [2,2,1] -> [2,2,3] */
  GC("where [2,1,3] [1,3] [2,2,1]", b_where, A(.shape = "2,1,3", .l = {1, 0, 1, 0, 0, 1}),
     UNIF(-2, 2, "1,3"), UNIF(-2, 2, "2,2,1"));
  GC("where [3,4] [3,4] [3,4]", b_where,
     A(.shape = "3,4", .l = {1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 1}), UNIF(-2, 2, "3,4"),
     UNIF(-2, 2, "3,4"));
  GC("where [3,1] [] [4]", b_where, A(.shape = "3,1", .l = {1, 0, 1}), UNIF(-2, 2, ""),
     UNIF(-2, 2, "4"));
  GC("where(cond, x, 0.5)", b_where, A(.shape = "4", .l = {1, 0, 0, 1}, .v = 0.5),
     UNIF(-2, 2, "3,4"));
  GC("where(cond, 0.5, x)", b_where, A(.shape = "4", .l = {1, 0, 0, 1}, .v = 0.5, .form = 1),
     UNIF(-2, 2, "3,4"));
}
END_TEST

/* ============================================ gradient checks: reductions */

typedef struct red_case {
  const char *shape;
  int naxes;
  int axes[3];
  bool keep;
} red_case;

static const red_case red_cases[] = {
    {"2,3,4", 0, {0}, false},  {"2,3,4", 1, {1}, false}, {"2,3,4", 2, {0, 2}, true},
    {"2,3,4", 1, {-1}, true},  {"5", 0, {0}, false},     {"1,5", 1, {0}, false},
    {"3,1", 1, {1}, true},     {"4,1,2", 2, {-1, 0}, false},
};
#define NRED (int)(sizeof red_cases / sizeof red_cases[0])

static void red_label(char *buf, size_t len, const char *op, const red_case *c) {
  size_t k = (size_t)snprintf(buf, len, "%s [%s] axes (", op, c->shape);
  for (int i = 0; i < c->naxes; i++) k += (size_t)snprintf(buf + k, len - k, "%s%d", i ? "," : "", c->axes[i]);
  snprintf(buf + k, len - k, ")%s", c->keep ? " keepdim" : "");
}

START_TEST(gc_reductions) {
  static const struct {
    const char *name;
    smelt_node (*r)(smelt_graph *, smelt_node, int, const int *, bool);
    gen_kind kind;
    double lo, hi;
  } ops[] = {
      {"sum", smelt_sum, GEN_UNIF, -2, 2},
      {"mean", smelt_mean, GEN_UNIF, -2, 2},
      {"prod", smelt_prod, GEN_AWAY0, 0.5, 1.5},
      {"max", smelt_max, GEN_DISTINCT, -3, 3},
      {"min", smelt_min, GEN_DISTINCT, -3, 3},
      {"logsumexp", smelt_logsumexp, GEN_UNIF, -3, 3},
  };
  for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
    for (int c = 0; c < NRED; c++) {
      char label[128];
      const red_case *rc = &red_cases[c];
      red_label(label, sizeof label, ops[k].name, rc);
      opa a = {.r = ops[k].r, .naxes = rc->naxes, .keep = rc->keep};
      memcpy(a.axes, rc->axes, sizeof rc->axes);
      gc_in in = {ops[k].kind, ops[k].lo, ops[k].hi, 0, 0, rc->shape};
      GC(label, b_red, &a, in);
    }
  GC("sum [] (rank 0)", b_red, A(.r = smelt_sum), UNIF(-1, 1, ""));
  GC("mean [] (rank 0)", b_red, A(.r = smelt_mean), UNIF(-1, 1, ""));
  /* prod at zeros (values k/2, k in -2..2: about one in five is 0; the
   * product is multilinear, so central differences are exact there) */
  GC("prod with zeros [3,4] axis 1", b_red, A(.r = smelt_prod, .naxes = 1, .axes = {1}),
     STEP(-2, 2, 0.5, 0, "3,4"));
  GC("prod with zeros [6]", b_red, A(.r = smelt_prod), STEP(-2, 2, 0.5, 0, "6"));
  GC("logsumexp large values", b_red, A(.r = smelt_logsumexp, .naxes = 1, .axes = {1}),
     UNIF(500, 510, "2,3"));
}
END_TEST

START_TEST(gc_var_std) {
  static const struct {
    const char *shape;
    int naxes;
    int axes[2];
    int64_t corr;
    bool keep;
  } cases[] = {
      {"2,3,4", 1, {1}, 1, false}, {"2,3,4", 2, {0, 2}, 0, true}, {"6", 0, {0}, 2, false},
      {"3,4", 1, {-1}, 1, true},   {"1,5", 1, {1}, 1, false},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
    for (int s = 0; s < 2; s++) {
      char label[96];
      snprintf(label, sizeof label, "%s [%s] naxes %d correction %lld", s ? "std" : "var",
               cases[k].shape, cases[k].naxes, (long long)cases[k].corr);
      opa a = {.flag = s, .naxes = cases[k].naxes, .corr = cases[k].corr, .keep = cases[k].keep};
      memcpy(a.axes, cases[k].axes, sizeof cases[k].axes);
      GC(label, b_var, &a, UNIF(-2, 2, cases[k].shape));
    }
}
END_TEST

START_TEST(gc_max_min_dim_values) {
  GC("max_dim [3,4] axis 1", b_vdim, A(.axis = 1), DISTINCT(-3, 3, "3,4"));
  GC("max_dim [3,4] axis 0 keepdim", b_vdim, A(.axis = 0, .keep = true), DISTINCT(-3, 3, "3,4"));
  GC("max_dim [2,3,2] axis -2", b_vdim, A(.axis = -2), DISTINCT(-3, 3, "2,3,2"));
  GC("max_dim [5] axis 0", b_vdim, A(.axis = 0), DISTINCT(-3, 3, "5"));
  GC("min_dim [3,4] axis 1", b_vdim, A(.axis = 1, .flag = true), DISTINCT(-3, 3, "3,4"));
  GC("min_dim [2,3,2] axis 2 keepdim", b_vdim, A(.axis = 2, .flag = true, .keep = true),
     DISTINCT(-3, 3, "2,3,2"));
}
END_TEST

/* ================================================= gradient checks: views */

START_TEST(gc_views) {
  GC("reshape [2,3,4] -> [4,6]", b_reshape, A(.shape = "4,6"), UNIF(-1, 1, "2,3,4"));
  GC("reshape [2,3,4] -> [24]", b_reshape, A(.shape = "24"), UNIF(-1, 1, "2,3,4"));
  GC("reshape [2,3,4] -> [-1,2]", b_reshape, A(.shape = "-1,2"), UNIF(-1, 1, "2,3,4"));
  GC("reshape [] -> [1,1]", b_reshape, A(.shape = "1,1"), UNIF(-1, 1, ""));
  GC("reshape [1,1] -> []", b_reshape, A(.shape = ""), UNIF(-1, 1, "1,1"));
  GC("permute [2,3,4] (2,0,1)", b_permute, A(.axes = {2, 0, 1}), UNIF(-1, 1, "2,3,4"));
  GC("permute [2,3,4] (-1,-3,-2)", b_permute, A(.axes = {-1, -3, -2}), UNIF(-1, 1, "2,3,4"));
  GC("transpose [2,3] (0,1)", b_transpose, A(.axis = 0, .axis2 = 1), UNIF(-1, 1, "2,3"));
  GC("transpose [2,3,4] (0,-1)", b_transpose, A(.axis = 0, .axis2 = -1), UNIF(-1, 1, "2,3,4"));
  GC("expand [1,3,1] -> [2,3,4]", b_expand, A(.shape = "2,3,4"), UNIF(-1, 1, "1,3,1"));
  GC("expand [3] -> [2,3]", b_expand, A(.shape = "2,3"), UNIF(-1, 1, "3"));
  GC("expand [3,1] -> [2,-1,5]", b_expand, A(.shape = "2,-1,5"), UNIF(-1, 1, "3,1"));
  GC("expand [] -> [2,2]", b_expand, A(.shape = "2,2"), UNIF(-1, 1, ""));
  GC("broadcast_to [3,1] -> [2,3,5]", b_expand, A(.shape = "2,3,5", .flag = true),
     UNIF(-1, 1, "3,1"));
  GC("broadcast_to [] -> [4]", b_expand, A(.shape = "4", .flag = true), UNIF(-1, 1, ""));
  GC("broadcast_to [1] -> [2,3]", b_expand, A(.shape = "2,3", .flag = true), UNIF(-1, 1, "1"));
  GC("squeeze [1,3,1] all", b_squeeze, A(.naxes = 0), UNIF(-1, 1, "1,3,1"));
  GC("squeeze [1,3,1] axis -1", b_squeeze, A(.naxes = 1, .axes = {-1}), UNIF(-1, 1, "1,3,1"));
  GC("squeeze [1] -> []", b_squeeze, A(.naxes = 0), UNIF(-1, 1, "1"));
  GC("unsqueeze [2,3] 0", b_unsqueeze, A(.axis = 0), UNIF(-1, 1, "2,3"));
  GC("unsqueeze [2,3] -1", b_unsqueeze, A(.axis = -1), UNIF(-1, 1, "2,3"));
  GC("unsqueeze [2,3] 1", b_unsqueeze, A(.axis = 1), UNIF(-1, 1, "2,3"));
  GC("unsqueeze [] 0", b_unsqueeze, A(.axis = 0), UNIF(-1, 1, ""));
  GC("flatten [2,3,4] 0..1", b_flatten, A(.axis = 0, .axis2 = 1), UNIF(-1, 1, "2,3,4"));
  GC("flatten [2,3,4] 1..-1", b_flatten, A(.axis = 1, .axis2 = -1), UNIF(-1, 1, "2,3,4"));
  GC("flatten [2,1,3,2] 0..-1", b_flatten, A(.axis = 0, .axis2 = -1), UNIF(-1, 1, "2,1,3,2"));
  GC("view chain", b_view_chain, A(.v = 0), UNIF(-1, 1, "2,3,4"));
}
END_TEST

START_TEST(gc_slice_flip_pad) {
  /* x[-4::2, 1:-1:3] of [5,7] */
  GC("slice [5,7] [-4::2, 1:-1:3]", b_slice,
     A(.s0 = {-4, 1}, .s1 = {SMELT_END, -1}, .s2 = {2, 3}), UNIF(-1, 1, "5,7"));
  /* x[1:3, :, ::2] of [4,2,5] */
  GC("slice [4,2,5] [1:3, :, ::2]", b_slice, A(.s0 = {1, 0, 0}, .s1 = {3, SMELT_END, SMELT_END}, .s2 = {1, 1, 2}),
     UNIF(-1, 1, "4,2,5"));
  /* out of range indices clamp: x[-100:100, 2:] of [3,4], steps NULL */
  GC("slice [3,4] [-100:100, 2:]", b_slice, A(.s0 = {-100, 2}, .s1 = {100, SMELT_END}, .flag = true),
     UNIF(-1, 1, "3,4"));
  /* x[:, -3:-1] */
  GC("slice [2,6] [:, -3:-1]", b_slice, A(.s0 = {0, -3}, .s1 = {SMELT_END, -1}, .flag = true),
     UNIF(-1, 1, "2,6"));
  GC("slice_axis [3,8] axis 1 -7:-1:3", b_slice_axis, A(.axis = 1, .s0 = {-7, -1, 3}),
     UNIF(-1, 1, "3,8"));
  GC("slice_axis [6] axis 0 1::4", b_slice_axis, A(.axis = 0, .s0 = {1, SMELT_END, 4}),
     UNIF(-1, 1, "6"));
  GC("slice_axis [4,3] axis -2 ::2", b_slice_axis, A(.axis = -2, .s0 = {0, SMELT_END, 2}),
     UNIF(-1, 1, "4,3"));
  GC("flip [2,3,4] (0)", b_flip, A(.naxes = 1, .axes = {0}), UNIF(-1, 1, "2,3,4"));
  GC("flip [2,3,4] (0,2)", b_flip, A(.naxes = 2, .axes = {0, 2}), UNIF(-1, 1, "2,3,4"));
  GC("flip [5] (-1)", b_flip, A(.naxes = 1, .axes = {-1}), UNIF(-1, 1, "5"));
  GC("pad [2,3] lo (1,0) hi (0,2) value 0.5", b_pad, A(.s0 = {1, 0}, .s1 = {0, 2}, .v = 0.5),
     UNIF(-1, 1, "2,3"));
  GC("pad [2,1,3] lo (0,2,1) hi (1,0,1)", b_pad, A(.s0 = {0, 2, 1}, .s1 = {1, 0, 1}),
     UNIF(-1, 1, "2,1,3"));
  GC("pad [4] lo 3 hi 0", b_pad, A(.s0 = {3}, .s1 = {0}, .v = -1), UNIF(-1, 1, "4"));
}
END_TEST

START_TEST(gc_concat_stack) {
  GC("concat axis 1 [2,1] [2,3] [2,2]", b_concat, A(.axis = 1), UNIF(-1, 1, "2,1"),
     UNIF(-1, 1, "2,3"), UNIF(-1, 1, "2,2"));
  GC("concat axis 0 [1,3] [2,3]", b_concat, A(.axis = 0), UNIF(-1, 1, "1,3"), UNIF(-1, 1, "2,3"));
  GC("concat axis -1 [2,2,1] [2,2,2]", b_concat, A(.axis = -1), UNIF(-1, 1, "2,2,1"),
     UNIF(-1, 1, "2,2,2"));
  GC("concat one tensor [3]", b_concat, A(.axis = 0), UNIF(-1, 1, "3"));
  GC("concat [3] [1] [2]", b_concat, A(.axis = 0), UNIF(-1, 1, "3"), UNIF(-1, 1, "1"),
     UNIF(-1, 1, "2"));
  GC("stack axis 0 [2,3] x3", b_stack, A(.axis = 0), UNIF(-1, 1, "2,3"), UNIF(-1, 1, "2,3"),
     UNIF(-1, 1, "2,3"));
  GC("stack axis 1 [2,3] x2", b_stack, A(.axis = 1), UNIF(-1, 1, "2,3"), UNIF(-1, 1, "2,3"));
  GC("stack axis -1 [3] x2", b_stack, A(.axis = -1), UNIF(-1, 1, "3"), UNIF(-1, 1, "3"));
  GC("stack [] x3", b_stack, A(.axis = 0), UNIF(-1, 1, ""), UNIF(-1, 1, ""), UNIF(-1, 1, ""));
}
END_TEST

/* ================================================ gradient checks: matmul */

START_TEST(gc_matmul) {
  static const char *const cases[][2] = {
      {"4", "4"},             /* dot product -> [] */
      {"3", "3,5"},           /* vector x matrix -> [5] */
      {"2,3", "3"},           /* matrix x vector -> [2] */
      {"2,3", "3,4"},         /* matrix x matrix */
      {"1,3", "3,1"},         /* size-1 dims */
      {"2,2,3", "3,4"},       /* batch x matrix */
      {"3,4", "2,4,2"},       /* matrix x batch */
      {"3", "2,3,4"},         /* vector x batch -> [2,4] */
      {"2,3,4", "4"},         /* batch x vector -> [2,3] */
      {"2,1,3,4", "3,4,2"},   /* batch broadcast -> [2,3,3,2] */
      {"1,2,3", "4,3,2"},     /* batch 1 against 4 -> [4,2,2] */
      {"5,1,2,3", "1,4,3,2"}, /* both sides broadcast -> [5,4,2,2] */
      {"2,2,3", "2,3,2"},     /* equal batches */
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char label[96];
    snprintf(label, sizeof label, "matmul [%s] [%s]", cases[k][0], cases[k][1]);
    GC(label, b_bin, A(.b = smelt_matmul), UNIF(-1, 1, cases[k][0]), UNIF(-1, 1, cases[k][1]));
  }
}
END_TEST

/* ============================================== gradient checks: indexing */

START_TEST(gc_indexing) {
  /* repeated indices: the gradient accumulates */
  GC("gather [3,4] axis 1 i64 [3,2]", b_gather,
     A(.axis = 1, .idt = I64, .shape = "3,2", .l = {0, 3, 3, 3, 1, 0}), UNIF(-1, 1, "3,4"));
  GC("gather [3,4] axis 0 i32 [2,4]", b_gather,
     A(.axis = 0, .idt = I32, .shape = "2,4", .l = {2, 0, 1, 2, 2, 2, 0, 1}), UNIF(-1, 1, "3,4"));
  /* index smaller than x in a non-gather dim */
  GC("gather [3,4] axis 1 [2,2]", b_gather, A(.axis = 1, .idt = I64, .shape = "2,2", .l = {1, 1, 0, 2}),
     UNIF(-1, 1, "3,4"));
  GC("gather [5] axis 0 [7]", b_gather,
     A(.axis = 0, .idt = I64, .shape = "7", .l = {4, 4, 0, 1, 4, 2, 0}), UNIF(-1, 1, "5"));
  GC("take_along_axis [3,4] [1,2] axis 1", b_take,
     A(.axis = 1, .idt = I64, .shape = "1,2", .l = {3, 1}), UNIF(-1, 1, "3,4"));
  GC("take_along_axis [3,1] [3,5] axis 0", b_take,
     A(.axis = 0, .idt = I32, .shape = "3,5", .l = {0, 1, 2, 2, 1, 1, 1, 0, 0, 2, 2, 2, 2, 0, 1}),
     UNIF(-1, 1, "3,1"));
  GC("take_along_axis [2,3,4] [2,3,1] axis -1", b_take,
     A(.axis = -1, .idt = I64, .shape = "2,3,1", .l = {0, 3, 2, 2, 1, 1}), UNIF(-1, 1, "2,3,4"));
  GC("index_select [4,3] axis 0 {3,0,3,1,3}", b_isel,
     A(.axis = 0, .idt = I64, .shape = "5", .l = {3, 0, 3, 1, 3}), UNIF(-1, 1, "4,3"));
  GC("index_select [2,5] axis -1 {4,4}", b_isel, A(.axis = -1, .idt = I32, .shape = "2", .l = {4, 4}),
     UNIF(-1, 1, "2,5"));
  GC("index_select [2,3,2] axis 1 {2,0}", b_isel, A(.axis = 1, .idt = I64, .shape = "2", .l = {2, 0}),
     UNIF(-1, 1, "2,3,2"));
  GC("embedding [5,3] index [2,3]", b_embed, A(.idt = I64, .shape = "2,3", .l = {1, 4, 1, 0, 1, 3}),
     UNIF(-1, 1, "5,3"));
  GC("embedding [4,2] index []", b_embed, A(.idt = I32, .shape = "", .l = {2}), UNIF(-1, 1, "4,2"));
  GC("embedding [4,2] index [6]", b_embed, A(.idt = I32, .shape = "6", .l = {3, 3, 3, 0, 3, 2}),
     UNIF(-1, 1, "4,2"));
}
END_TEST

/* ==================================================== gradient checks: nn */

START_TEST(gc_nn) {
  GC("softmax [3,4] axis -1", b_softmax, A(.axis = -1), UNIF(-3, 3, "3,4"));
  GC("softmax [3,4] axis 0", b_softmax, A(.axis = 0), UNIF(-3, 3, "3,4"));
  GC("softmax [5]", b_softmax, A(.axis = 0), UNIF(-3, 3, "5"));
  GC("softmax [2,1,3] axis 1 (size 1)", b_softmax, A(.axis = 1), UNIF(-3, 3, "2,1,3"));
  GC("softmax large logits", b_softmax, A(.axis = -1), UNIF(300, 305, "2,3"));
  GC("log_softmax [3,4] axis -1", b_softmax, A(.axis = -1, .flag = true), UNIF(-3, 3, "3,4"));
  GC("log_softmax [2,3,2] axis 1", b_softmax, A(.axis = 1, .flag = true), UNIF(-3, 3, "2,3,2"));
  GC("log_softmax [4]", b_softmax, A(.axis = -1, .flag = true), UNIF(-3, 3, "4"));
  GC("log_softmax large logits", b_softmax, A(.axis = -1, .flag = true), UNIF(-305, -300, "2,3"));
  GC("cross_entropy [4,5] i64", b_ce, A(.idt = I64, .shape = "4", .l = {0, 4, 2, 4}),
     UNIF(-3, 3, "4,5"));
  GC("cross_entropy [3,2] i32", b_ce, A(.idt = I32, .shape = "3", .l = {1, 0, 1}),
     UNIF(-3, 3, "3,2"));
  GC("cross_entropy [5] label []", b_ce, A(.idt = I64, .shape = "", .l = {3}), UNIF(-3, 3, "5"));
  GC("cross_entropy [1,3]", b_ce, A(.idt = I64, .shape = "1", .l = {2}), UNIF(-3, 3, "1,3"));
  GC("dropout p 0.3 training", b_dropout, A(.v = 0.3, .seed = 7), UNIF(-2, 2, "4,5"));
  GC("dropout p 0 training", b_dropout, A(.v = 0, .seed = 7), UNIF(-2, 2, "3"));
  GC("layernorm [3,4]", b_layernorm, A(.v = 0), UNIF(-2, 2, "3,4"), UNIF(0.5, 1.5, "4"),
     UNIF(-1, 1, "4"));
  GC("mlp + cross_entropy", b_mlp_ce, A(.v = 0), UNIF(-1, 1, "4,3"), UNIF(-1, 1, "3,5"),
     UNIF(-0.5, 0.5, "5"), UNIF(-1, 1, "5,3"));
  GC("fan-out x*x + sin(x)*x - exp(x)/(1+x*x)", b_fanout, A(.v = 0), UNIF(-2, 2, "2,3"));
}
END_TEST

/* ================================================ higher derivatives */

START_TEST(gc_second_order) {
  static const struct {
    const char *name;
    smelt_node (*u)(smelt_graph *, smelt_node);
    double lo, hi;
  } un[] = {
      {"exp", smelt_exp, -2, 2},        {"log", smelt_log, 0.3, 3},
      {"sqrt", smelt_sqrt, 0.3, 3},     {"rsqrt", smelt_rsqrt, 0.3, 3},
      {"reciprocal", smelt_reciprocal, 0.4, 2}, {"sin", smelt_sin, -3, 3},
      {"cos", smelt_cos, -3, 3},        {"tanh", smelt_tanh, -2, 2},
      {"sigmoid", smelt_sigmoid, -3, 3}, {"gelu", smelt_gelu, -3, 3},
      {"neg", smelt_neg, -2, 2},
  };
  for (size_t k = 0; k < sizeof un / sizeof un[0]; k++) {
    char label[96];
    snprintf(label, sizeof label, "d2 %s [2,3]", un[k].name);
    GC(label, b_grad_of, GO(b_un, A(.u = un[k].u), 0), UNIF(un[k].lo, un[k].hi, "2,3"));
  }
  for (int w = 0; w < 2; w++) {
    char label[96];
    snprintf(label, sizeof label, "d2 mul [2,3] [3], d/dx%d first", w);
    GC(label, b_grad_of, GO(b_bin, A(.b = smelt_mul), w), UNIF(-2, 2, "2,3"), UNIF(-2, 2, "3"));
    snprintf(label, sizeof label, "d2 div [2,3] [2,1], d/dx%d first", w);
    GC(label, b_grad_of, GO(b_bin, A(.b = smelt_div), w), UNIF(-2, 2, "2,3"),
       AWAY0(0.5, 2, "2,1"));
    snprintf(label, sizeof label, "d2 pow [3] [3], d/dx%d first", w);
    GC(label, b_grad_of, GO(b_bin, A(.b = smelt_pow), w), UNIF(0.5, 2, "3"), UNIF(-2, 2, "3"));
    snprintf(label, sizeof label, "d2 matmul [2,3] [3,2], d/dx%d first", w);
    GC(label, b_grad_of, GO(b_bin, A(.b = smelt_matmul), w), UNIF(-1, 1, "2,3"),
       UNIF(-1, 1, "3,2"));
  }
  GC("d2 pow(x, 3)", b_grad_of, GO(b_lit, A(.form = LIT_POW, .v = 3), 0), AWAY0(0.3, 2, "5"));
  GC("d2 softmax [2,3]", b_grad_of, GO(b_softmax, A(.axis = -1), 0), UNIF(-2, 2, "2,3"));
  GC("d2 log_softmax [2,3]", b_grad_of, GO(b_softmax, A(.axis = -1, .flag = true), 0),
     UNIF(-2, 2, "2,3"));
  GC("d2 logsumexp [2,3] axis 1", b_grad_of,
     GO(b_red, A(.r = smelt_logsumexp, .naxes = 1, .axes = {1}), 0), UNIF(-2, 2, "2,3"));
  GC("d2 var [2,3] axis 1", b_grad_of, GO(b_var, A(.naxes = 1, .axes = {1}, .corr = 1), 0),
     UNIF(-2, 2, "2,3"));
  GC("d2 std [4]", b_grad_of, GO(b_var, A(.flag = true, .corr = 1), 0), UNIF(-2, 2, "4"));
  GC("d2 prod [2,3] axis 1", b_grad_of, GO(b_red, A(.r = smelt_prod, .naxes = 1, .axes = {1}), 0),
     AWAY0(0.5, 1.5, "2,3"));
  GC("d2 prod with zeros [3,4] axis 1", b_grad_of,
     GO(b_red, A(.r = smelt_prod, .naxes = 1, .axes = {1}), 0), STEP(-2, 2, 0.5, 0, "3,4"));
  GC("d2 cross_entropy [3,4]", b_grad_of, GO(b_ce, A(.idt = I64, .shape = "3", .l = {0, 3, 1}), 0),
     UNIF(-2, 2, "3,4"));
  GC("d2 layernorm, d/dx first", b_grad_of, GO(b_layernorm, A(.v = 0), 0), UNIF(-2, 2, "2,3"),
     UNIF(0.5, 1.5, "3"), UNIF(-1, 1, "3"));
  GC("d2 fan-out", b_grad_of, GO(b_fanout, A(.v = 0), 0), UNIF(-2, 2, "5"));
  GC("d2 mlp + cross_entropy, d/dW1 first", b_grad_of, GO(b_mlp_ce, A(.v = 0), 1),
     UNIF(-1, 1, "4,3"), UNIF(-1, 1, "3,5"), UNIF(-0.5, 0.5, "5"), UNIF(-1, 1, "5,3"));
  GC("d2 gather (linear: zero)", b_grad_of,
     GO(b_gather, A(.axis = 1, .idt = I64, .shape = "2,3", .l = {0, 1, 1, 2, 2, 0}), 0),
     UNIF(-1, 1, "2,3"));
}
END_TEST

START_TEST(gc_third_order) {
  const go_ctx *tanh2 = GO(b_un, A(.u = smelt_tanh), 0);
  GC("d3 tanh [5]", b_grad_of, GO(b_grad_of, tanh2, 0), UNIF(-2, 2, "5"));
  const go_ctx *sig2 = GO(b_un, A(.u = smelt_sigmoid), 0);
  GC("d3 sigmoid [2,2]", b_grad_of, GO(b_grad_of, sig2, 0), UNIF(-3, 3, "2,2"));
  const go_ctx *sm2 = GO(b_softmax, A(.axis = 0), 0);
  GC("d3 softmax [4]", b_grad_of, GO(b_grad_of, sm2, 0), UNIF(-2, 2, "4"));
  const go_ctx *mul2 = GO(b_bin, A(.b = smelt_mul), 0);
  GC("d3 x*y mixed", b_grad_of, GO(b_grad_of, mul2, 1), UNIF(-2, 2, "3"), UNIF(-2, 2, "3"));
}
END_TEST

/* ======================================================= exact references */

/* grads of y with respect to one node, checked to tol */
#define ASSERT_GRAD1(g, y, x, tol, ...)                                                    \
  do {                                                                                     \
    smelt_node gr_ = SMELT_INVALID;                                                        \
    ck_assert_msg(smelt_grad((g), (y), 1, &(x), &gr_) == 0, "smelt_grad: %s",              \
                  smelt_graph_error(g) ? smelt_graph_error(g) : "(no message)");          \
    TU_ASSERT_VALUES((g), gr_, (tol), __VA_ARGS__);                                        \
  } while (0)

START_TEST(ref_sum_x_cubed) {
  /* x = [[5,4],[3,2]] (f64 input), y = sum(x^3) with the literal 3 */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F64, 2, 2, 2);
  smelt_node y = smelt_sum(g, smelt_pow(g, x, smelt_scalar(g, 3)), 0, NULL, false);
  smelt_node gx;
  ck_assert_int_eq(smelt_grad(g, y, 1, &x, &gx), 0);
  TU_ASSERT_SHAPE(g, gx, 2, 2, 2);
  TU_ASSERT_DTYPE(g, gx, F64);
  const double xv[4] = {5, 4, 3, 2};
  tu_bind b = {"x", xv};
  TU_ASSERT_VALUES_WITH(g, y, 1, &b, 1e-12, 224);
  TU_ASSERT_VALUES_WITH(g, gx, 1, &b, 1e-12, 75, 48, 27, 12);
  smelt_graph_free(g);

  /* the same with x*x*x, and with x a constant */
  g = TU_GRAPH();
  smelt_node xc = TU_ARR(g, F64, 2, TU_DIMS(2, 2), 5, 4, 3, 2);
  y = smelt_sum(g, smelt_mul(g, smelt_mul(g, xc, xc), xc), 0, NULL, false);
  ASSERT_GRAD1(g, y, xc, 1e-12, 75, 48, 27, 12);
  smelt_graph_free(g);
}
END_TEST

START_TEST(ref_sum_2w_squared) {
  /* w = [1,2] a param, z = sum(2*w^2) */
  smelt_graph *g = TU_GRAPH();
  const double wv[2] = {1, 2};
  smelt_node w = smelt_param(g, "w", F64, 1, TU_DIMS(2), smelt_init_data(wv));
  smelt_node z = smelt_sum(g, smelt_mul(g, smelt_scalar(g, 2), smelt_pow(g, w, smelt_scalar(g, 2))),
                           0, NULL, false);
  TU_ASSERT_VALUES(g, z, 1e-12, 10);
  ASSERT_GRAD1(g, z, w, 1e-12, 4, 8);
  smelt_graph_free(g);
  /* an f32 param: the gradient is f32 */
  g = TU_GRAPH();
  const float wf[2] = {1, 2};
  w = smelt_param(g, "w", F32, 1, TU_DIMS(2), smelt_init_data(wf));
  z = smelt_sum(g, smelt_mul(g, smelt_scalar(g, 2), smelt_mul(g, w, w)), 0, NULL, false);
  smelt_node gw;
  ck_assert_int_eq(smelt_grad(g, z, 1, &w, &gw), 0);
  TU_ASSERT_DTYPE(g, gw, F32);
  TU_ASSERT_VALUES(g, gw, 0, 4, 8);
  smelt_graph_free(g);
}
END_TEST

START_TEST(ref_sum_x_squared) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F64, 1, 3);
  smelt_node y = smelt_sum(g, smelt_pow(g, x, smelt_scalar(g, 2)), 0, NULL, false);
  smelt_node y2 = smelt_sum(g, smelt_mul(g, x, x), 0, NULL, false);
  smelt_node gr[2];
  ck_assert_int_eq(smelt_grad(g, y, 1, &x, &gr[0]), 0);
  ck_assert_int_eq(smelt_grad(g, y2, 1, &x, &gr[1]), 0);
  const double xv[3] = {1, 2, 3};
  tu_bind b = {"x", xv};
  TU_ASSERT_VALUES_WITH(g, gr[0], 1, &b, 1e-12, 2, 4, 6);
  TU_ASSERT_VALUES_WITH(g, gr[1], 1, &b, 1e-12, 2, 4, 6);
  smelt_graph_free(g);
}
END_TEST

/* d/dx x^3 = 3x^2, d2 = 6x, d3 = 6, by differentiating the gradient graph
 * again (grad of sum(grad)), with pow and with x*x*x, at points including
 * 0 and negatives. */
START_TEST(ref_higher_derivatives_x_cubed) {
  const double xv[5] = {-2, -0.5, 0, 1, 3};
  tu_bind b = {"x", xv};
  for (int form = 0; form < 2; form++) {
    smelt_graph *g = TU_GRAPH();
    smelt_node x = tu_input(g, "x", F64, 1, 5);
    smelt_node c = form ? smelt_mul(g, smelt_mul(g, x, x), x) : smelt_pow(g, x, smelt_scalar(g, 3));
    smelt_node d1, d2, d3, d4;
    ck_assert_int_eq(smelt_grad(g, smelt_sum(g, c, 0, NULL, false), 1, &x, &d1), 0);
    ck_assert_int_eq(smelt_grad(g, smelt_sum(g, d1, 0, NULL, false), 1, &x, &d2), 0);
    ck_assert_int_eq(smelt_grad(g, smelt_sum(g, d2, 0, NULL, false), 1, &x, &d3), 0);
    ck_assert_int_eq(smelt_grad(g, smelt_sum(g, d3, 0, NULL, false), 1, &x, &d4), 0);
    TU_ASSERT_VALUES_WITH(g, d1, 1, &b, 1e-12, 12, 0.75, 0, 3, 27);
    TU_ASSERT_VALUES_WITH(g, d2, 1, &b, 1e-12, -12, -3, 0, 6, 18);
    TU_ASSERT_VALUES_WITH(g, d3, 1, &b, 1e-12, 6, 6, 6, 6, 6);
    TU_ASSERT_VALUES_WITH(g, d4, 1, &b, 1e-12, 0, 0, 0, 0, 0);
    for (smelt_node *d = (smelt_node[]){d1, d2, d3, d4}, *e = d + 4; d < e; d++) {
      TU_ASSERT_SHAPE(g, *d, 1, 5);
      TU_ASSERT_DTYPE(g, *d, F64);
    }
    smelt_graph_free(g);
  }
}
END_TEST

/* Second derivatives of composites against closed forms:
 * tanh'' = -2 tanh (1 - tanh^2), sigmoid'' = s (1 - s)(1 - 2s). */
START_TEST(ref_second_derivative_closed_forms) {
  const double xv[4] = {-1.5, -0.2, 0.4, 2};
  tu_bind b = {"x", xv};
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F64, 1, 4);
  smelt_node d1, d2, s1, s2;
  ck_assert_int_eq(smelt_grad(g, smelt_sum(g, smelt_tanh(g, x), 0, NULL, false), 1, &x, &d1), 0);
  ck_assert_int_eq(smelt_grad(g, smelt_sum(g, d1, 0, NULL, false), 1, &x, &d2), 0);
  ck_assert_int_eq(smelt_grad(g, smelt_sum(g, smelt_sigmoid(g, x), 0, NULL, false), 1, &x, &s1), 0);
  ck_assert_int_eq(smelt_grad(g, smelt_sum(g, s1, 0, NULL, false), 1, &x, &s2), 0);
  double want[4], wants[4];
  for (int i = 0; i < 4; i++) {
    double t = tanh(xv[i]), s = 1 / (1 + exp(-xv[i]));
    want[i] = -2 * t * (1 - t * t);
    wants[i] = s * (1 - s) * (1 - 2 * s);
  }
  double *got = TU_EVAL_WITH(g, d2, 1, &b);
  TU_ASSERT_CLOSE(got, want, 4, 1e-14, 1e-12);
  free(got);
  got = TU_EVAL_WITH(g, s2, 1, &b);
  TU_ASSERT_CLOSE(got, wants, 4, 1e-14, 1e-12);
  free(got);
  smelt_graph_free(g);
}
END_TEST

/* ================================================================ kinks */

START_TEST(kink_relu_abs) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F64, -1, 0, 2, -0.0);
  ASSERT_GRAD1(g, smelt_sum(g, smelt_relu(g, x), 0, NULL, false), x, 0, 0, 0, 1, 0);
  ASSERT_GRAD1(g, smelt_sum(g, smelt_abs(g, x), 0, NULL, false), x, 0, -1, 0, 1, 0);
  /* f32 too */
  smelt_node xf = TU_VEC(g, F32, -3, 0, 0.5);
  ASSERT_GRAD1(g, smelt_sum(g, smelt_relu(g, xf), 0, NULL, false), xf, 0, 0, 0, 1);
  ASSERT_GRAD1(g, smelt_sum(g, smelt_abs(g, xf), 0, NULL, false), xf, 0, -1, 0, 1);
  smelt_graph_free(g);
}
END_TEST

/* Ties in max/min reductions split the gradient evenly among the tied
 * extrema (torch.amax/amin; the rule of docs/autodiff.md). */
START_TEST(kink_max_min_reduction_ties) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F64, 1, 3, 3, 2);
  ASSERT_GRAD1(g, smelt_max(g, x, 0, NULL, false), x, 0, 0, 0.5, 0.5, 0);
  smelt_node x3 = TU_VEC(g, F64, 4, 4, 4);
  ASSERT_GRAD1(g, smelt_max(g, x3, 0, NULL, false), x3, 1e-15, 1.0 / 3, 1.0 / 3, 1.0 / 3);
  ASSERT_GRAD1(g, smelt_min(g, x3, 0, NULL, false), x3, 1e-15, 1.0 / 3, 1.0 / 3, 1.0 / 3);
  smelt_node m = TU_ARR(g, F64, 2, TU_DIMS(2, 3), 1, 3, 3, 2, 2, 0);
  /* per row, weighted so each row's share is visible: y = sum(max(m, 1) * [1, 10]) */
  smelt_node mx = smelt_max(g, m, 1, (const int[]){1}, false);
  smelt_node y = smelt_sum(g, smelt_mul(g, mx, TU_VEC(g, F64, 1, 10)), 0, NULL, false);
  ASSERT_GRAD1(g, y, m, 0, 0, 0.5, 0.5, 5, 5, 0);
  /* keepdim, min over axis 0: columns (1,2) (3,2) (3,0) */
  smelt_node m2 = TU_ARR(g, F64, 2, TU_DIMS(2, 3), 2, 3, 0, 2, 2, 0);
  smelt_node mn = smelt_min(g, m2, 1, (const int[]){0}, true);
  ASSERT_GRAD1(g, smelt_sum(g, mn, 0, NULL, false), m2, 0, 0.5, 0, 0.5, 0.5, 1, 0.5);
  /* over all axes: ties across rows */
  smelt_node t = TU_ARR(g, F64, 2, TU_DIMS(2, 2), 3, 1, 2, 3);
  ASSERT_GRAD1(g, smelt_max(g, t, 0, NULL, false), t, 0, 0.5, 0, 0, 0.5);
  smelt_graph_free(g);
}
END_TEST

/* maximum/minimum ties give each operand half (PyTorch). */
START_TEST(kink_maximum_minimum_ties) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = TU_VEC(g, F64, 1, 2, 3), b = TU_VEC(g, F64, 3, 2, 1);
  smelt_node gr[2];
  smelt_node y = smelt_sum(g, smelt_maximum(g, a, b), 0, NULL, false);
  ck_assert_int_eq(smelt_grad(g, y, 2, (smelt_node[]){a, b}, gr), 0);
  TU_ASSERT_VALUES(g, gr[0], 0, 0, 0.5, 1);
  TU_ASSERT_VALUES(g, gr[1], 0, 1, 0.5, 0);
  y = smelt_sum(g, smelt_minimum(g, a, b), 0, NULL, false);
  ck_assert_int_eq(smelt_grad(g, y, 2, (smelt_node[]){a, b}, gr), 0);
  TU_ASSERT_VALUES(g, gr[0], 0, 1, 0.5, 0);
  TU_ASSERT_VALUES(g, gr[1], 0, 0, 0.5, 1);
  /* against a broadcast literal: maximum(x, 2) at [1,2,3] */
  smelt_node x = TU_VEC(g, F64, 1, 2, 3);
  ASSERT_GRAD1(g, smelt_sum(g, smelt_maximum(g, x, smelt_scalar(g, 2)), 0, NULL, false), x, 0, 0,
               0.5, 1);
  ASSERT_GRAD1(g, smelt_sum(g, smelt_minimum(g, x, smelt_scalar(g, 2)), 0, NULL, false), x, 0, 1,
               0.5, 0);
  /* maximum(x, x) = x: 0.5 + 0.5 */
  ASSERT_GRAD1(g, smelt_sum(g, smelt_maximum(g, x, x), 0, NULL, false), x, 0, 1, 1, 1);
  smelt_graph_free(g);
}
END_TEST

/* clamp passes the gradient where lo <= x <= hi, bounds included; lo > hi
 * gives hi everywhere and no gradient. */
START_TEST(kink_clamp_bounds) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F64, -2, -1, 0, 1, 2);
  ASSERT_GRAD1(g, smelt_sum(g, smelt_clamp(g, x, -1, 1), 0, NULL, false), x, 0, 0, 1, 1, 1, 0);
  ASSERT_GRAD1(g, smelt_sum(g, smelt_clamp(g, x, 1, -1), 0, NULL, false), x, 0, 0, 0, 0, 0, 0);
  ASSERT_GRAD1(g, smelt_sum(g, smelt_clamp(g, x, 0, 0), 0, NULL, false), x, 0, 0, 0, 1, 0, 0);
  smelt_graph_free(g);
}
END_TEST

/* max_dim/min_dim values: the gradient goes to the selected (first) index,
 * as torch.max(x, dim). */
START_TEST(kink_max_dim_first_index) {
  smelt_graph *g = TU_GRAPH();
  smelt_node m = TU_ARR(g, F64, 2, TU_DIMS(2, 3), 1, 3, 3, 2, 2, 0);
  smelt_node v;
  smelt_max_dim(g, m, 1, false, &v, NULL);
  ASSERT_GRAD1(g, smelt_sum(g, v, 0, NULL, false), m, 0, 0, 1, 0, 1, 0, 0);
  smelt_max_dim(g, m, 0, true, &v, NULL);
  ASSERT_GRAD1(g, smelt_sum(g, v, 0, NULL, false), m, 0, 0, 1, 1, 1, 0, 0);
  smelt_node n = TU_ARR(g, F64, 2, TU_DIMS(2, 3), 1, 0, 0, 2, 5, 2);
  smelt_min_dim(g, n, 1, false, &v, NULL);
  ASSERT_GRAD1(g, smelt_sum(g, v, 0, NULL, false), n, 0, 0, 1, 0, 1, 0, 0);
  /* rank 0: its own maximum */
  smelt_node s = smelt_const(g, F64, 2.5);
  smelt_max_dim(g, s, 0, false, &v, NULL);
  ASSERT_GRAD1(g, v, s, 0, 1);
  smelt_graph_free(g);
}
END_TEST

/* prod with zeros: PyTorch's prod backward is exact there (no division by
 * the zero): d/dx_i prod = product of the others. */
START_TEST(kink_prod_with_zeros) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F64, 2, 0, 3);
  ASSERT_GRAD1(g, smelt_prod(g, x, 0, NULL, false), x, 0, 0, 6, 0);
  smelt_node x2 = TU_VEC(g, F64, 0, 0, 3);
  ASSERT_GRAD1(g, smelt_prod(g, x2, 0, NULL, false), x2, 0, 0, 0, 0);
  smelt_node m = TU_ARR(g, F64, 2, TU_DIMS(2, 3), 1, 2, 3, 4, 0, 5);
  ASSERT_GRAD1(g, smelt_sum(g, smelt_prod(g, m, 1, (const int[]){1}, false), 0, NULL, false), m,
               0, 6, 3, 2, 0, 20, 0);
  smelt_graph_free(g);
}
END_TEST

/* The second derivative of prod at a zero is finite (the Hessian of
 * x0 x1 x2 is [[0,x2,x1],[x2,0,x0],[x1,x0,0]]): at x = [0,2,3] with
 * v = [1,2,3], H v = [12, 3, 2] (PyTorch 1.13 gives the same). */
START_TEST(kink_prod_second_derivative_at_zero) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F64, 0, 2, 3);
  smelt_node d1, d2;
  ck_assert_int_eq(smelt_grad(g, smelt_prod(g, x, 0, NULL, false), 1, &x, &d1), 0);
  TU_ASSERT_VALUES(g, d1, 0, 6, 0, 0);
  smelt_node hv = smelt_sum(g, smelt_mul(g, d1, TU_VEC(g, F64, 1, 2, 3)), 0, NULL, false);
  ck_assert_int_eq(smelt_grad(g, hv, 1, &x, &d2), 0);
  TU_ASSERT_VALUES(g, d2, 0, 12, 3, 2);
  /* no zero: H v at [1,2,4] = [4*2+2*3, 4*1+1*3, 2*1+1*2] = [14, 7, 4]
   * (x2 must differ from v: equal constants are one node) */
  smelt_node x2 = TU_VEC(g, F64, 1, 2, 4);
  ck_assert_int_eq(smelt_grad(g, smelt_prod(g, x2, 0, NULL, false), 1, &x2, &d1), 0);
  hv = smelt_sum(g, smelt_mul(g, d1, TU_VEC(g, F64, 1, 2, 3)), 0, NULL, false);
  ck_assert_int_eq(smelt_grad(g, hv, 1, &x2, &d2), 0);
  TU_ASSERT_VALUES(g, d2, 1e-15, 14, 7, 4);
  smelt_graph_free(g);
}
END_TEST

/* pow at 0, as PyTorch: d/dx x^0 = 0 (masked where the exponent is 0),
 * d/dx x^2 at 0 = 0, d/dy 0^y = 0 for y >= 0 (masked where the base is 0),
 * and d/dx x^1 = 1 at 0. */
START_TEST(kink_pow_at_zero) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F64, 0, 2);
  ASSERT_GRAD1(g, smelt_sum(g, smelt_pow(g, x, smelt_scalar(g, 0)), 0, NULL, false), x, 0, 0, 0);
  ASSERT_GRAD1(g, smelt_sum(g, smelt_pow(g, x, smelt_scalar(g, 2)), 0, NULL, false), x, 0, 0, 4);
  ASSERT_GRAD1(g, smelt_sum(g, smelt_pow(g, x, smelt_scalar(g, 1)), 0, NULL, false), x, 0, 1, 1);
  smelt_node e = TU_VEC(g, F64, 2, 0);
  smelt_node base = TU_VEC(g, F64, 0, 0);
  ASSERT_GRAD1(g, smelt_sum(g, smelt_pow(g, base, e), 0, NULL, false), e, 0, 0, 0);
  smelt_graph_free(g);
}
END_TEST

/* Stable backward passes: softmax/log_softmax/logsumexp/cross_entropy of
 * huge logits give the same gradients as the shifted logits, and -inf
 * entries get zero gradient. */
START_TEST(stable_backward) {
  smelt_graph *g = TU_GRAPH();
  smelt_node big = TU_VEC(g, F64, 1000, 1001, 1002);
  smelt_node small = TU_VEC(g, F64, 0, 1, 2);
  smelt_node w = TU_VEC(g, F64, 1, 2, 3);
  smelt_node gb, gs;
  for (int k = 0; k < 3; k++) {
    smelt_node yb, ys;
    if (k == 0) {
      yb = smelt_sum(g, smelt_mul(g, smelt_softmax(g, big, 0), w), 0, NULL, false);
      ys = smelt_sum(g, smelt_mul(g, smelt_softmax(g, small, 0), w), 0, NULL, false);
    } else if (k == 1) {
      yb = smelt_sum(g, smelt_mul(g, smelt_log_softmax(g, big, 0), w), 0, NULL, false);
      ys = smelt_sum(g, smelt_mul(g, smelt_log_softmax(g, small, 0), w), 0, NULL, false);
    } else {
      yb = smelt_logsumexp(g, big, 0, NULL, false);
      ys = smelt_logsumexp(g, small, 0, NULL, false);
    }
    ck_assert_int_eq(smelt_grad(g, yb, 1, &big, &gb), 0);
    ck_assert_int_eq(smelt_grad(g, ys, 1, &small, &gs), 0);
    double *a = TU_EVAL(g, gb), *b = TU_EVAL(g, gs);
    TU_ASSERT_CLOSE(a, b, 3, 1e-14, 1e-12);
    free(a), free(b);
  }
  smelt_node lab = smelt_const(g, I64, 2);
  ck_assert_int_eq(smelt_grad(g, smelt_cross_entropy(g, big, lab), 1, &big, &gb), 0);
  ck_assert_int_eq(smelt_grad(g, smelt_cross_entropy(g, small, lab), 1, &small, &gs), 0);
  double *a = TU_EVAL(g, gb), *b = TU_EVAL(g, gs);
  TU_ASSERT_CLOSE(a, b, 3, 1e-14, 1e-12);
  free(a), free(b);
  /* logsumexp([-inf, 0, log 3]) : softmax = [0, 1/4, 3/4] */
  smelt_node m = TU_VEC(g, F64, -INFINITY, 0, log(3.0));
  ASSERT_GRAD1(g, smelt_logsumexp(g, m, 0, NULL, false), m, 1e-15, 0, 0.25, 0.75);
  smelt_graph_free(g);
}
END_TEST

/* ================================================================= casts */

START_TEST(cast_float_gradients) {
  /* f64 -> f32: the gradient is the f32 upstream gradient widened to f64 */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F64, 1, 3);
  smelt_node r32 = TU_VEC(g, F32, 0.5, -1.25, 3);
  smelt_node y = smelt_sum(g, smelt_mul(g, smelt_cast(g, x, F32), r32), 0, NULL, false);
  TU_ASSERT_DTYPE(g, y, F32);
  smelt_node gx;
  ck_assert_int_eq(smelt_grad(g, y, 1, &x, &gx), 0);
  TU_ASSERT_DTYPE(g, gx, F64);
  TU_ASSERT_SHAPE(g, gx, 1, 3);
  const double xv[3] = {0.1, 0.2, 0.3};
  tu_bind b = {"x", xv};
  TU_ASSERT_VALUES_WITH(g, gx, 1, &b, 0, 0.5, -1.25, 3);
  smelt_graph_free(g);

  /* f32 -> f64 */
  g = TU_GRAPH();
  smelt_node xf = tu_input(g, "xf", F32, 2, 2, 1);
  smelt_node r64 = TU_ARR(g, F64, 2, TU_DIMS(2, 2), 0.25, 2, -4, 8);
  y = smelt_sum(g, smelt_mul(g, smelt_cast(g, xf, F64), r64), 0, NULL, false);
  TU_ASSERT_DTYPE(g, y, F64);
  ck_assert_int_eq(smelt_grad(g, y, 1, &xf, &gx), 0);
  TU_ASSERT_DTYPE(g, gx, F32);
  TU_ASSERT_SHAPE(g, gx, 2, 2, 1);
  const float xfv[2] = {1, 2};
  tu_bind bf = {"xf", xfv};
  TU_ASSERT_VALUES_WITH(g, gx, 1, &bf, 0, 2.25, 4);
  smelt_graph_free(g);

  /* f64 -> f32 -> f64 round trip and f64 -> f64 */
  g = TU_GRAPH();
  x = TU_VEC(g, F64, 1, 2);
  y = smelt_sum(g, smelt_mul(g, smelt_cast(g, smelt_cast(g, x, F32), F64), TU_VEC(g, F64, 3, 5)),
                0, NULL, false);
  ASSERT_GRAD1(g, y, x, 0, 3, 5);
  y = smelt_sum(g, smelt_mul(g, smelt_cast(g, x, F64), TU_VEC(g, F64, 3, 5)), 0, NULL, false);
  ASSERT_GRAD1(g, y, x, 0, 3, 5);
  smelt_graph_free(g);
}
END_TEST

/* ====================================================== no-gradient paths */

/* Comparisons, argmax/argmin, sign and casts to int or bool pass no
 * gradient: the wrt gets zeros of its shape (not an error). */
START_TEST(no_gradient_paths) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_ARR(g, F64, 2, TU_DIMS(2, 3), 0.5, -1, 2, 3, 0.1, -2);
  smelt_node ys[] = {
      smelt_sum(g, smelt_cast(g, smelt_gt(g, x, smelt_scalar(g, 0)), F64), 0, NULL, false),
      smelt_sum(g, smelt_cast(g, smelt_eq(g, x, x), F64), 0, NULL, false),
      smelt_sum(g, smelt_cast(g, smelt_argmax(g, x, 1, false), F64), 0, NULL, false),
      smelt_sum(g, smelt_cast(g, smelt_argmin(g, x, 0, true), F64), 0, NULL, false),
      smelt_sum(g, smelt_cast(g, smelt_cast(g, x, I64), F64), 0, NULL, false),
      smelt_sum(g, smelt_cast(g, smelt_cast(g, x, I32), F32), 0, NULL, false),
      smelt_sum(g, smelt_cast(g, smelt_cast(g, x, BOOL), F64), 0, NULL, false),
      smelt_sum(g, smelt_sign(g, x), 0, NULL, false),
      smelt_sum(g, smelt_where(g, smelt_gt(g, x, smelt_scalar(g, 0)), smelt_scalar(g, 1.0),
                               smelt_scalar(g, 2.0)),
                0, NULL, false),
      smelt_sum(g, smelt_cast(g, smelt_logical_not(g, smelt_lt(g, x, smelt_scalar(g, 1))), F64), 0,
                NULL, false),
      smelt_sum(g, smelt_stop_gradient(g, smelt_mul(g, x, x)), 0, NULL, false),
  };
  TU_ASSERT_OK(g);
  for (size_t k = 0; k < sizeof ys / sizeof ys[0]; k++) {
    smelt_node gx = SMELT_INVALID;
    ck_assert_msg(smelt_grad(g, ys[k], 1, &x, &gx) == 0, "case %zu: %s", k,
                  smelt_graph_error(g) ? smelt_graph_error(g) : "?");
    TU_ASSERT_SHAPE(g, gx, 2, 2, 3);
    TU_ASSERT_DTYPE(g, gx, F64);
    double *v = TU_EVAL(g, gx);
    for (int i = 0; i < 6; i++) ck_assert_msg(v[i] == 0, "case %zu element %d: %g", k, i, v[i]);
    free(v);
  }
  /* an index computed from x: no gradient to x, the usual one to w */
  smelt_node w = TU_ARR(g, F64, 2, TU_DIMS(3, 2), 1, 2, 3, 4, 5, 6);
  smelt_node idx = smelt_argmax(g, x, 1, true); /* [[2],[0]] */
  smelt_node picked = smelt_gather(g, smelt_transpose(g, w, 0, 1), 1, idx);
  smelt_node y = smelt_sum(g, picked, 0, NULL, false);
  smelt_node gr[2];
  ck_assert_int_eq(smelt_grad(g, y, 2, (smelt_node[]){x, w}, gr), 0);
  TU_ASSERT_VALUES(g, gr[0], 0, 0, 0, 0, 0, 0, 0);
  TU_ASSERT_VALUES(g, gr[1], 0, 0, 1, 0, 0, 1, 0);
  /* one_hot of an argmax */
  smelt_node oh = smelt_cast(g, smelt_one_hot(g, smelt_argmax(g, x, 1, false), 3), F64);
  ASSERT_GRAD1(g, smelt_sum(g, oh, 0, NULL, false), x, 0, 0, 0, 0, 0, 0, 0);
  smelt_graph_free(g);
}
END_TEST

START_TEST(stop_gradient_blocks) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F64, 1, 2, 3);
  /* sum(stop(x) * x) = sum(x^2) in value, gradient x (not 2x) */
  smelt_node y = smelt_sum(g, smelt_mul(g, smelt_stop_gradient(g, x), x), 0, NULL, false);
  TU_ASSERT_VALUES(g, y, 0, 14);
  ASSERT_GRAD1(g, y, x, 0, 1, 2, 3);
  /* stop_gradient of a whole branch */
  smelt_node y2 = smelt_sum(g, smelt_add(g, smelt_stop_gradient(g, smelt_exp(g, x)), x), 0, NULL,
                            false);
  ASSERT_GRAD1(g, y2, x, 0, 1, 1, 1);
  /* a second derivative through stop_gradient: d/dx sum(stop(x) * x^2)
   * = 2 x stop(x); d2 = 2 stop(x) */
  smelt_node y3 = smelt_sum(g, smelt_mul(g, smelt_stop_gradient(g, x), smelt_mul(g, x, x)), 0,
                            NULL, false);
  smelt_node d1, d2;
  ck_assert_int_eq(smelt_grad(g, y3, 1, &x, &d1), 0);
  ck_assert_int_eq(smelt_grad(g, smelt_sum(g, d1, 0, NULL, false), 1, &x, &d2), 0);
  TU_ASSERT_VALUES(g, d1, 0, 2, 8, 18);
  TU_ASSERT_VALUES(g, d2, 0, 2, 4, 6);
  smelt_graph_free(g);
}
END_TEST

/* ==================================================== shapes and seeds */

/* Every gradient has exactly its wrt's shape, whatever broadcasting did. */
START_TEST(broadcast_gradient_shapes) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_ARR(g, F64, 2, TU_DIMS(3, 1), 1, 2, 3);
  smelt_node b = TU_VEC(g, F64, 1, 10, 100, 1000);
  smelt_node c = smelt_const(g, F64, 0.5);
  smelt_node d = TU_ARR(g, F64, 3, TU_DIMS(1, 1, 4), 1, 2, 3, 4);
  smelt_node e = TU_ARR(g, F64, 1, TU_DIMS(1), 7);
  /* [3,1]*[4] + [] - [1,1,4] + [1] -> [1,3,4] */
  smelt_node s = smelt_add(g, smelt_sub(g, smelt_add(g, smelt_mul(g, x, b), c), d), e);
  TU_ASSERT_SHAPE(g, s, 3, 1, 3, 4);
  smelt_node y = smelt_sum(g, s, 0, NULL, false);
  smelt_node gr[5];
  ck_assert_int_eq(smelt_grad(g, y, 5, (smelt_node[]){x, b, c, d, e}, gr), 0);
  TU_ASSERT_SHAPE(g, gr[0], 2, 3, 1);
  TU_ASSERT_SHAPE(g, gr[1], 1, 4);
  TU_ASSERT_SHAPE(g, gr[2], 0);
  TU_ASSERT_SHAPE(g, gr[3], 3, 1, 1, 4);
  TU_ASSERT_SHAPE(g, gr[4], 1, 1);
  TU_ASSERT_VALUES(g, gr[0], 0, 1111, 1111, 1111);
  TU_ASSERT_VALUES(g, gr[1], 0, 6, 6, 6, 6);
  TU_ASSERT_VALUES(g, gr[2], 0, 12);
  TU_ASSERT_VALUES(g, gr[3], 0, -3, -3, -3, -3);
  TU_ASSERT_VALUES(g, gr[4], 0, 12);
  smelt_graph_free(g);
}
END_TEST

/* The gradient of an expand sums back over the expanded dims. */
START_TEST(expand_sums_back) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_ARR(g, F64, 2, TU_DIMS(3, 1), 1, 2, 3);
  smelt_node ex = smelt_expand(g, x, 3, TU_DIMS(2, 3, 4));
  double rv[24], want[3] = {0, 0, 0};
  for (int i = 0; i < 24; i++) {
    rv[i] = (double)(i * 7 % 11) - 5;
    want[(i / 4) % 3] += rv[i];
  }
  smelt_node r = tu_const_f64(g, 3, TU_DIMS(2, 3, 4), rv);
  smelt_node y = smelt_sum(g, smelt_mul(g, ex, r), 0, NULL, false);
  smelt_node gx;
  ck_assert_int_eq(smelt_grad(g, y, 1, &x, &gx), 0);
  TU_ASSERT_SHAPE(g, gx, 2, 3, 1);
  TU_ASSERT_VALUES_A(g, gx, 0, 3, want);
  /* full() of a rank-0 wrt: the gradient is the sum of everything */
  smelt_node s = smelt_const(g, F64, 2);
  smelt_node y2 = smelt_sum(g, smelt_mul(g, smelt_broadcast_to(g, s, 3, TU_DIMS(2, 3, 4)), r), 0,
                            NULL, false);
  double tot = 0;
  for (int i = 0; i < 24; i++) tot += rv[i];
  ASSERT_GRAD1(g, y2, s, 0, tot);
  smelt_graph_free(g);
}
END_TEST

/* smelt_vjp with an explicit seed equals the gradient of sum(y * seed). */
START_TEST(vjp_seed) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_ARR(g, F64, 2, TU_DIMS(2, 3), 0.5, -1, 2, 1.5, 0.25, -0.75);
  smelt_node w = TU_VEC(g, F64, 2, -1, 0.5);
  smelt_node y = smelt_tanh(g, smelt_mul(g, x, w)); /* [2,3] */
  smelt_node seed = TU_ARR(g, F64, 2, TU_DIMS(2, 3), 1, -2, 0.5, 3, 0, -1);
  smelt_node gv[2], gs[2];
  ck_assert_int_eq(smelt_vjp(g, y, seed, 2, (smelt_node[]){x, w}, gv, 0), 0);
  smelt_node ys = smelt_sum(g, smelt_mul(g, y, seed), 0, NULL, false);
  ck_assert_int_eq(smelt_grad(g, ys, 2, (smelt_node[]){x, w}, gs), 0);
  TU_ASSERT_SHAPE(g, gv[0], 2, 2, 3);
  TU_ASSERT_SHAPE(g, gv[1], 1, 3);
  for (int i = 0; i < 2; i++) {
    double *a = TU_EVAL(g, gv[i]), *b = TU_EVAL(g, gs[i]);
    TU_ASSERT_CLOSE(a, b, smelt_node_numel(g, gv[i]), 1e-15, 1e-14);
    free(a), free(b);
  }
  /* an f32 seed for an f64 y is cast (values exact in f32) */
  smelt_node seed32 = TU_ARR(g, F32, 2, TU_DIMS(2, 3), 1, -2, 0.5, 3, 0, -1);
  smelt_node gv32[2];
  ck_assert_int_eq(smelt_vjp(g, y, seed32, 2, (smelt_node[]){x, w}, gv32, 0), 0);
  TU_ASSERT_DTYPE(g, gv32[0], F64);
  for (int i = 0; i < 2; i++) {
    double *a = TU_EVAL(g, gv32[i]), *b = TU_EVAL(g, gs[i]);
    TU_ASSERT_CLOSE(a, b, smelt_node_numel(g, gv[i]), 1e-15, 1e-14);
    free(a), free(b);
  }
  /* a scalar y with a seed: seed * grad */
  smelt_node yx = smelt_sum(g, smelt_mul(g, x, x), 0, NULL, false);
  smelt_node g1;
  ck_assert_int_eq(smelt_vjp(g, yx, smelt_const(g, F64, 2.5), 1, &x, &g1, 0), 0);
  TU_ASSERT_VALUES(g, g1, 0, 2.5, -5, 10, 7.5, 1.25, -3.75);
  /* SMELT_INVALID as seed is smelt_grad */
  ck_assert_int_eq(smelt_vjp(g, yx, SMELT_INVALID, 1, &x, &g1, 0), 0);
  TU_ASSERT_VALUES(g, g1, 0, 1, -2, 4, 3, 0.5, -1.5);
  smelt_graph_free(g);

  /* a seed of the wrong shape is an error (also when it would broadcast) */
  g = TU_GRAPH();
  x = tu_input(g, "x", F64, 2, 3, 4);
  y = smelt_exp(g, x);
  smelt_node bad = TU_VEC(g, F64, 1, 2, 3, 4);
  smelt_node out = x;
  ck_assert_int_eq(smelt_vjp(g, y, bad, 1, &x, &out, 0), -1);
  ck_assert(!smelt_node_valid(out));
  TU_ASSERT_ERROR(g, "seed", "[4]", "[3,4]");
  smelt_graph_free(g);
}
END_TEST

/* ======================================================== wrt semantics */

START_TEST(wrt_intermediate_repeated_and_y) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F64, 1, 2, -1);
  smelt_node h = smelt_mul(g, x, x);
  smelt_node y = smelt_sum(g, smelt_add(g, smelt_mul(g, h, h), x), 0, NULL, false);
  smelt_node gr[4];
  /* dy/dh (h as a variable) = 2h; dy/dx (total) = 4x^3 + 1 */
  ck_assert_int_eq(smelt_grad(g, y, 2, (smelt_node[]){h, x}, gr), 0);
  TU_ASSERT_VALUES(g, gr[0], 0, 2, 8, 2);
  TU_ASSERT_VALUES(g, gr[1], 0, 5, 33, -3);
  /* the same wrt twice gives the same gradient twice */
  ck_assert_int_eq(smelt_grad(g, y, 4, (smelt_node[]){x, h, x, h}, gr), 0);
  TU_ASSERT_VALUES(g, gr[0], 0, 5, 33, -3);
  TU_ASSERT_VALUES(g, gr[2], 0, 5, 33, -3);
  TU_ASSERT_VALUES(g, gr[1], 0, 2, 8, 2);
  TU_ASSERT_VALUES(g, gr[3], 0, 2, 8, 2);
  /* y with respect to itself is 1 */
  ck_assert_int_eq(smelt_grad(g, y, 1, &y, gr), 0);
  TU_ASSERT_SHAPE(g, gr[0], 0);
  TU_ASSERT_VALUES(g, gr[0], 0, 1);
  /* n == 0 is fine */
  ck_assert_int_eq(smelt_grad(g, y, 0, &x, gr), 0);
  TU_ASSERT_OK(g);
  /* a y of one element at rank 1 and rank 3 */
  smelt_node y1 = smelt_reshape(g, y, 1, TU_DIMS(1));
  ck_assert_int_eq(smelt_grad(g, y1, 1, &x, gr), 0);
  TU_ASSERT_VALUES(g, gr[0], 0, 5, 33, -3);
  smelt_node y3 = smelt_reshape(g, y, 3, TU_DIMS(1, 1, 1));
  ck_assert_int_eq(smelt_grad(g, y3, 1, &x, gr), 0);
  TU_ASSERT_VALUES(g, gr[0], 0, 5, 33, -3);
  smelt_graph_free(g);
}
END_TEST

/* A wrt that y does not depend on gets zeros of its shape and dtype; with
 * SMELT_GRAD_STRICT it is an error naming it. */
START_TEST(unrelated_wrt) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F64, 1, 3);
  smelt_node z = tu_input(g, "z", F64, 2, 2, 3);
  smelt_node zf = tu_input(g, "zf", F32, 0);
  smelt_node y = smelt_sum(g, smelt_mul(g, x, x), 0, NULL, false);
  smelt_node later = smelt_mul(g, y, smelt_scalar(g, 2)); /* built from y */
  smelt_node gr[4];
  ck_assert_int_eq(smelt_grad(g, y, 4, (smelt_node[]){z, x, zf, later}, gr), 0);
  TU_ASSERT_SHAPE(g, gr[0], 2, 2, 3);
  TU_ASSERT_DTYPE(g, gr[0], F64);
  TU_ASSERT_SHAPE(g, gr[2], 0);
  TU_ASSERT_DTYPE(g, gr[2], F32);
  TU_ASSERT_SHAPE(g, gr[3], 0);
  const double xv[3] = {1, 2, 3};
  tu_bind b = {"x", xv};
  /* (every run binds x: tu_run keeps earlier nodes as outputs) */
  TU_ASSERT_VALUES_WITH(g, gr[0], 1, &b, 0, 0, 0, 0, 0, 0, 0);
  TU_ASSERT_VALUES_WITH(g, gr[1], 1, &b, 0, 2, 4, 6);
  TU_ASSERT_VALUES_WITH(g, gr[2], 1, &b, 0, 0);
  TU_ASSERT_VALUES_WITH(g, gr[3], 1, &b, 0, 0);
  /* strict: fine when every wrt is used */
  ck_assert_int_eq(smelt_vjp(g, y, SMELT_INVALID, 1, &x, gr, SMELT_GRAD_STRICT), 0);
  TU_ASSERT_OK(g);
  /* strict: an error naming the unused wrt */
  gr[0] = gr[1] = x;
  ck_assert_int_eq(smelt_vjp(g, y, SMELT_INVALID, 2, (smelt_node[]){x, z}, gr, SMELT_GRAD_STRICT),
                   -1);
  ck_assert(!smelt_node_valid(gr[0]) && !smelt_node_valid(gr[1]));
  TU_ASSERT_ERROR(g, "grad", "%z");
  smelt_graph_free(g);
}
END_TEST

/* ================================================================ errors */

START_TEST(error_y_not_scalar) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F64, 2, 3, 4);
  smelt_node y = smelt_exp(g, x);
  smelt_node gx = x;
  ck_assert_int_eq(smelt_grad(g, y, 1, &x, &gx), -1);
  ck_assert(!smelt_node_valid(gx));
  TU_ASSERT_ERROR(g, "grad: y has shape [3,4]; reverse mode needs a scalar or an explicit seed");
  /* sticky */
  ck_assert(!smelt_node_valid(smelt_exp(g, x)));
  ck_assert_int_eq(smelt_grad(g, smelt_sum(g, x, 0, NULL, false), 1, &x, &gx), -1);
  TU_ASSERT_ERROR(g, "grad: y has shape [3,4]");
  smelt_graph_free(g);
  /* smelt_vjp without a seed says the same */
  g = TU_GRAPH();
  x = tu_input(g, "x", F64, 1, 2);
  ck_assert_int_eq(smelt_vjp(g, smelt_exp(g, x), SMELT_INVALID, 1, &x, &gx, 0), -1);
  TU_ASSERT_ERROR(g, "grad: y has shape [2]; reverse mode needs a scalar or an explicit seed");
  smelt_graph_free(g);
  /* a size-0 y is not a scalar either */
  g = TU_GRAPH();
  x = tu_input(g, "x", F64, 2, 0, 3);
  ck_assert_int_eq(smelt_grad(g, smelt_exp(g, x), 1, &x, &gx), -1);
  TU_ASSERT_ERROR(g, "grad: y has shape [0,3]");
  smelt_graph_free(g);
}
END_TEST

START_TEST(error_int_bool_wrt) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F64, 1, 3);
  smelt_node k = tu_input(g, "k", I64, 1, 3);
  smelt_node y = smelt_sum(g, smelt_mul(g, x, k), 0, NULL, false);
  smelt_node gr[2] = {x, x};
  ck_assert_int_eq(smelt_grad(g, y, 2, (smelt_node[]){x, k}, gr), -1);
  ck_assert(!smelt_node_valid(gr[0]) && !smelt_node_valid(gr[1]));
  TU_ASSERT_ERROR(g, "grad", "%k", "i64");
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", F64, 1, 3);
  smelt_node bm = tu_input(g, "bm", BOOL, 1, 3);
  y = smelt_sum(g, smelt_where(g, bm, x, smelt_scalar(g, 0)), 0, NULL, false);
  ck_assert_int_eq(smelt_grad(g, y, 1, &bm, gr), -1);
  TU_ASSERT_ERROR(g, "grad", "%bm", "bool");
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", F64, 1, 3);
  smelt_node k32 = smelt_cast(g, x, I32);
  y = smelt_sum(g, smelt_cast(g, k32, F64), 0, NULL, false);
  ck_assert_int_eq(smelt_grad(g, y, 1, &k32, gr), -1);
  TU_ASSERT_ERROR(g, "grad", "i32");
  smelt_graph_free(g);
}
END_TEST

START_TEST(error_int_bool_y) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F64, 1, 3);
  smelt_node y = smelt_sum(g, smelt_cast(g, x, I64), 0, NULL, false);
  smelt_node gx = x;
  ck_assert_int_eq(smelt_grad(g, y, 1, &x, &gx), -1);
  ck_assert(!smelt_node_valid(gx));
  TU_ASSERT_ERROR(g, "grad", "i64");
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", F64, 1, 3);
  y = smelt_gt(g, smelt_sum(g, x, 0, NULL, false), smelt_scalar(g, 0));
  ck_assert_int_eq(smelt_grad(g, y, 1, &x, &gx), -1);
  TU_ASSERT_ERROR(g, "grad", "bool");
  smelt_graph_free(g);
}
END_TEST

START_TEST(error_invalid_handles) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F64, 1, 3);
  smelt_node y = smelt_sum(g, x, 0, NULL, false);
  smelt_node gx = x;
  /* NULL graph: no crash */
  ck_assert_int_eq(smelt_grad(NULL, y, 1, &x, &gx), -1);
  ck_assert_int_eq(smelt_vjp(NULL, y, SMELT_INVALID, 1, &x, &gx, 0), -1);
  ck_assert(!smelt_node_valid(gx));
  TU_ASSERT_OK(g);
  smelt_graph_free(g);

  /* an invalid y */
  g = TU_GRAPH();
  x = tu_input(g, "x", F64, 1, 3);
  gx = x;
  ck_assert_int_eq(smelt_grad(g, SMELT_INVALID, 1, &x, &gx), -1);
  ck_assert(!smelt_node_valid(gx));
  TU_ASSERT_ERROR(g, "grad");
  smelt_graph_free(g);

  /* an invalid wrt */
  g = TU_GRAPH();
  x = tu_input(g, "x", F64, 1, 3);
  y = smelt_sum(g, x, 0, NULL, false);
  smelt_node gr[2] = {x, x};
  ck_assert_int_eq(smelt_grad(g, y, 2, (smelt_node[]){x, SMELT_INVALID}, gr), -1);
  ck_assert(!smelt_node_valid(gr[0]) && !smelt_node_valid(gr[1]));
  TU_ASSERT_ERROR(g, "grad");
  smelt_graph_free(g);

  /* an index past the end */
  g = TU_GRAPH();
  x = tu_input(g, "x", F64, 1, 3);
  y = smelt_sum(g, x, 0, NULL, false);
  smelt_node past = {x.graph, 1000};
  ck_assert_int_eq(smelt_grad(g, y, 1, &past, &gx), -1);
  TU_ASSERT_ERROR(g, "grad");
  smelt_graph_free(g);

  /* a wrt (and a y) from another graph, with an index valid in this one */
  g = TU_GRAPH();
  smelt_graph *other = TU_GRAPH();
  x = tu_input(g, "x", F64, 1, 3);
  y = smelt_sum(g, x, 0, NULL, false);
  smelt_node ox = tu_input(other, "x", F64, 1, 3);
  ck_assert_uint_eq(ox.index, x.index);
  gx = x;
  ck_assert_int_eq(smelt_grad(g, y, 1, &ox, &gx), -1);
  ck_assert(!smelt_node_valid(gx));
  TU_ASSERT_ERROR(g, "grad");
  smelt_graph_free(g);
  g = TU_GRAPH();
  x = tu_input(g, "x", F64, 1, 3);
  smelt_node oy = smelt_sum(other, ox, 0, NULL, false);
  ck_assert_int_eq(smelt_grad(g, oy, 1, &x, &gx), -1);
  TU_ASSERT_ERROR(g, "grad");
  smelt_graph_free(g);
  smelt_graph_free(other);

  /* bad counts and NULL arrays */
  g = TU_GRAPH();
  x = tu_input(g, "x", F64, 1, 3);
  y = smelt_sum(g, x, 0, NULL, false);
  ck_assert_int_eq(smelt_grad(g, y, -1, &x, &gx), -1);
  TU_ASSERT_ERROR(g, "grad");
  smelt_graph_free(g);
  g = TU_GRAPH();
  x = tu_input(g, "x", F64, 1, 3);
  y = smelt_sum(g, x, 0, NULL, false);
  ck_assert_int_eq(smelt_grad(g, y, 1, NULL, &gx), -1);
  TU_ASSERT_ERROR(g, "grad");
  smelt_graph_free(g);
  g = TU_GRAPH();
  x = tu_input(g, "x", F64, 1, 3);
  y = smelt_sum(g, x, 0, NULL, false);
  ck_assert_int_eq(smelt_grad(g, y, 1, &x, NULL), -1);
  TU_ASSERT_ERROR(g, "grad");
  smelt_graph_free(g);
  /* a seed from another graph */
  g = TU_GRAPH();
  other = TU_GRAPH();
  x = tu_input(g, "x", F64, 1, 3);
  smelt_node os = tu_input(other, "s", F64, 1, 3);
  ck_assert_int_eq(smelt_vjp(g, smelt_exp(g, x), os, 1, &x, &gx, 0), -1);
  TU_ASSERT_ERROR(g, "grad");
  smelt_graph_free(g);
  smelt_graph_free(other);
}
END_TEST

/* A graph that already failed: smelt_grad returns -1 with invalid
 * gradients and keeps the first message. */
START_TEST(error_sticky) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F64, 1, 3);
  smelt_node y = smelt_sum(g, smelt_mul(g, x, x), 0, NULL, false);
  smelt_add(g, x, tu_input(g, "w", F64, 1, 4)); /* fails */
  const char *e = smelt_graph_error(g);
  ck_assert_ptr_nonnull(e);
  char first[512];
  snprintf(first, sizeof first, "%s", e);
  size_t nodes = smelt_graph_node_count(g);
  smelt_node gx = x;
  ck_assert_int_eq(smelt_grad(g, y, 1, &x, &gx), -1);
  ck_assert(!smelt_node_valid(gx));
  gx = x;
  ck_assert_int_eq(smelt_vjp(g, y, SMELT_INVALID, 1, &x, &gx, 0), -1);
  ck_assert(!smelt_node_valid(gx));
  ck_assert_str_eq(smelt_graph_error(g), first);
  ck_assert_uint_eq(smelt_graph_node_count(g), nodes);
  smelt_graph_free(g);
}
END_TEST

/* ======================================================== f32 gradients */

/* f32 graphs give f32 gradients (rank 0 included: no f64 constant may
 * promote them), equal to the f64 gradients within f32 precision
 * (1e-5 relative, 1e-6 absolute). */
static void f32_matches_f64(smelt_node (*u)(smelt_graph *, smelt_node), const char *name, int rank,
                            const int64_t *dims, const double *xv) {
  double got[2][8];
  int64_t n = numel_of(rank, dims);
  for (int pass = 0; pass < 2; pass++) {
    smelt_dtype dt = pass ? F64 : F32;
    smelt_graph *g = TU_GRAPH();
    smelt_node x = tu_const_d(g, dt, rank, dims, xv);
    double rv[8] = {0.75, -1.25, 1.5, 0.5, -0.625, 1.125, 1, -1};
    smelt_node r = tu_const_d(g, dt, rank, dims, rv);
    smelt_node y = smelt_sum(g, smelt_mul(g, u(g, x), r), 0, NULL, false);
    smelt_node gx;
    ck_assert_msg(smelt_grad(g, y, 1, &x, &gx) == 0, "%s: %s", name, smelt_graph_error(g));
    ck_assert_msg(smelt_node_dtype(g, gx) == dt, "%s rank %d: the gradient of an %s input is %s",
                  name, rank, smelt_dtype_name(dt), smelt_dtype_name(smelt_node_dtype(g, gx)));
    ck_assert(tu_shape_eq(g, gx, rank, dims));
    double *v = TU_EVAL(g, gx);
    memcpy(got[pass], v, (size_t)n * sizeof(double));
    free(v);
    smelt_graph_free(g);
  }
  for (int64_t i = 0; i < n; i++)
    ck_assert_msg(tu_close(got[0][i], got[1][i], 1e-6, 1e-5), "%s element %lld: f32 %.9g, f64 %.17g",
                  name, (long long)i, got[0][i], got[1][i]);
}

static smelt_node softmax0(smelt_graph *g, smelt_node x) { return smelt_softmax(g, x, 0); }
static smelt_node log_softmax0(smelt_graph *g, smelt_node x) { return smelt_log_softmax(g, x, 0); }
static smelt_node pow_lit(smelt_graph *g, smelt_node x) { return smelt_pow(g, x, smelt_scalar(g, 2.5)); }
static smelt_node lit_div(smelt_graph *g, smelt_node x) { return smelt_div(g, smelt_scalar(g, 3), x); }
static smelt_node mean_all(smelt_graph *g, smelt_node x) { return smelt_mean(g, x, 0, NULL, false); }
static smelt_node var_all(smelt_graph *g, smelt_node x) { return smelt_var(g, x, 0, NULL, 1, false); }
static smelt_node std_all(smelt_graph *g, smelt_node x) { return smelt_std(g, x, 0, NULL, 1, false); }
static smelt_node lse_all(smelt_graph *g, smelt_node x) { return smelt_logsumexp(g, x, 0, NULL, false); }
static smelt_node clamp01(smelt_graph *g, smelt_node x) { return smelt_clamp(g, x, 0.2, 1.5); }

START_TEST(f32_gradients_stay_f32) {
  static const struct {
    const char *name;
    smelt_node (*u)(smelt_graph *, smelt_node);
    bool vector_only;
  } ops[] = {
      {"exp", smelt_exp, false},         {"log", smelt_log, false},
      {"sqrt", smelt_sqrt, false},       {"rsqrt", smelt_rsqrt, false},
      {"reciprocal", smelt_reciprocal, false}, {"sin", smelt_sin, false},
      {"cos", smelt_cos, false},         {"tanh", smelt_tanh, false},
      {"sigmoid", smelt_sigmoid, false}, {"relu", smelt_relu, false},
      {"gelu", smelt_gelu, false},       {"abs", smelt_abs, false},
      {"neg", smelt_neg, false},         {"pow(x, 2.5)", pow_lit, false},
      {"3 / x", lit_div, false},         {"mean", mean_all, false},
      {"logsumexp", lse_all, false},     {"clamp", clamp01, false},
      {"softmax", softmax0, true},       {"log_softmax", log_softmax0, true},
      {"var", var_all, true},            {"std", std_all, true},
  };
  const double xv[4] = {0.75, 1.25, 0.5, 2};
  for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
    if (!ops[k].vector_only) f32_matches_f64(ops[k].u, ops[k].name, 0, NULL, xv);
    f32_matches_f64(ops[k].u, ops[k].name, 1, TU_DIMS(4), xv);
  }
}
END_TEST

/* ============================================================== size 0 */

START_TEST(size_zero) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", F64, 2, 0, 3);
  smelt_node y = smelt_sum(g, smelt_exp(g, x), 0, NULL, false);
  smelt_node gx;
  ck_assert_int_eq(smelt_grad(g, y, 1, &x, &gx), 0);
  TU_ASSERT_SHAPE(g, gx, 2, 0, 3);
  tu_bind b = {"x", NULL};
  free(TU_RUN1_WITH(g, gx, 1, &b));
  smelt_graph_free(g);
  /* an empty inner dimension: matmul [2,0] x [0,3] is zeros [2,3] */
  g = TU_GRAPH();
  smelt_node a = tu_input(g, "a", F64, 2, 2, 0);
  smelt_node m = tu_input(g, "m", F64, 2, 0, 3);
  smelt_node c = TU_ARR(g, F64, 2, TU_DIMS(2, 3), 1, 2, 3, 4, 5, 6);
  y = smelt_sum(g, smelt_mul(g, smelt_add(g, smelt_matmul(g, a, m), c), c), 0, NULL, false);
  smelt_node gr[3];
  ck_assert_int_eq(smelt_grad(g, y, 3, (smelt_node[]){a, m, c}, gr), 0);
  TU_ASSERT_SHAPE(g, gr[0], 2, 2, 0);
  TU_ASSERT_SHAPE(g, gr[1], 2, 0, 3);
  tu_bind bs[2] = {{"a", NULL}, {"m", NULL}};
  TU_ASSERT_VALUES_WITH(g, gr[2], 2, bs, 0, 2, 4, 6, 8, 10, 12);
  free(TU_RUN1_WITH(g, gr[0], 2, bs));
  free(TU_RUN1_WITH(g, gr[1], 2, bs));
  smelt_graph_free(g);
}
END_TEST

/* ============================================ graph size and hash-consing */

/* An L-layer tanh MLP on x [4,8]: h = tanh(h W_i + b_i) with params W_i
 * [8,8] and b_i [8]; y = mean(h). wrt gets W_0, b_0, ..., W_{L-1}, b_{L-1}
 * and x. Returns y. */
static smelt_node build_mlp(smelt_graph *g, int layers, smelt_dtype dt, smelt_node *wrt) {
  smelt_node x = smelt_input(g, "x", dt, 2, TU_DIMS(4, 8));
  smelt_node h = x;
  for (int i = 0; i < layers; i++) {
    char wn[16], bn[16];
    snprintf(wn, sizeof wn, "W%d", i);
    snprintf(bn, sizeof bn, "b%d", i);
    smelt_node w = smelt_param(g, wn, dt, 2, TU_DIMS(8, 8), smelt_init_normal(0, 0.4, 100 + (uint64_t)i));
    smelt_node b = smelt_param(g, bn, dt, 1, TU_DIMS(8), smelt_init_uniform(-0.1, 0.1, 200 + (uint64_t)i));
    h = smelt_tanh(g, smelt_add(g, smelt_matmul(g, h, w), b));
    wrt[2 * i] = w;
    wrt[2 * i + 1] = b;
  }
  wrt[2 * layers] = x;
  return smelt_mean(g, h, 0, NULL, false);
}

/* Backward graph size, for the per-layer rule count:
 *   tanh:   g * (1 - t*t)      mul, sub, mul (+ a shared constant)   3
 *   add:    the bias gradient  reduce_sum + reshape                   2
 *   matmul: g W^T and h^T g    2 permutes + 2 matmuls                 4
 * that is 9 nodes per layer (measured: 96 nodes for 10 layers, 186 for
 * 20). The bound allows BACKWARD_PER_LAYER = 11 per layer plus
 * BACKWARD_FIXED = 12 for the seed and mean's rule: a rule that duplicates
 * work (no hash-consing, a gradient built twice) breaks it. */
enum { BACKWARD_PER_LAYER = 11, BACKWARD_FIXED = 12 };

static size_t backward_nodes(int layers) {
  smelt_graph *g = TU_GRAPH();
  smelt_node wrt[2 * 20 + 1], gr[2 * 20 + 1];
  smelt_node y = build_mlp(g, layers, F64, wrt);
  TU_ASSERT_OK(g);
  size_t before = smelt_graph_node_count(g);
  ck_assert_int_eq(smelt_grad(g, y, 2 * layers + 1, wrt, gr), 0);
  size_t after = smelt_graph_node_count(g);
  smelt_graph_free(g);
  return after - before;
}

START_TEST(backward_graph_is_small) {
  size_t b10 = backward_nodes(10), b20 = backward_nodes(20);
  if (getenv("GC_VERBOSE"))
    fprintf(stderr, "backward nodes: 10 layers %zu, 20 layers %zu\n", b10, b20);
  ck_assert_msg(b10 <= 10 * BACKWARD_PER_LAYER + BACKWARD_FIXED,
                "the backward graph of a 10-layer tanh MLP has %zu nodes (bound %d)", b10,
                10 * BACKWARD_PER_LAYER + BACKWARD_FIXED);
  /* linear in depth: ten more layers cost the same as the first ten */
  ck_assert_msg(b20 - b10 <= 10 * BACKWARD_PER_LAYER, "20 layers: %zu nodes, 10 layers: %zu", b20,
                b10);
}
END_TEST

/* Hash-consing: a second smelt_grad of the same y and wrt adds no node and
 * returns the same handles. */
START_TEST(grad_twice_adds_nothing) {
  smelt_graph *g = TU_GRAPH();
  smelt_node wrt[7], g1[7], g2[7];
  smelt_node y = build_mlp(g, 3, F64, wrt);
  ck_assert_int_eq(smelt_grad(g, y, 7, wrt, g1), 0);
  size_t n1 = smelt_graph_node_count(g);
  ck_assert_int_eq(smelt_grad(g, y, 7, wrt, g2), 0);
  ck_assert_uint_eq(smelt_graph_node_count(g), n1);
  for (int i = 0; i < 7; i++) ck_assert_uint_eq(g1[i].index, g2[i].index);
  /* asking for a subset adds nothing either */
  ck_assert_int_eq(smelt_grad(g, y, 2, wrt + 2, g2), 0);
  ck_assert_uint_eq(smelt_graph_node_count(g), n1);
  ck_assert_uint_eq(g2[0].index, g1[2].index);
  smelt_graph_free(g);
}
END_TEST

/* Params as wrt: the gradients of the classifier of b_mlp_ce with its
 * weights as params (initialized from data) equal those with the weights
 * as bound inputs (whose gradients the gradient check verifies). */
START_TEST(param_gradients_equal_input_gradients) {
  static const char *const names[4] = {"x", "W1", "b1", "W2"};
  static const int ranks[4] = {2, 2, 1, 2};
  static const int64_t dims[4][2] = {{4, 3}, {3, 5}, {5, 0}, {5, 3}};
  double vals[4][15];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 15; j++) vals[i][j] = sin(1.7 * i + 0.9 * j);
  double *got[2][4];
  for (int pass = 0; pass < 2; pass++) {
    smelt_graph *g = TU_GRAPH();
    smelt_node v[4];
    for (int i = 0; i < 4; i++)
      v[i] = pass && i > 0 ? smelt_param(g, names[i], F64, ranks[i], dims[i], smelt_init_data(vals[i]))
                           : smelt_input(g, names[i], F64, ranks[i], dims[i]);
    smelt_node y = b_mlp_ce(g, 4, v, NULL);
    smelt_node gr[4];
    ck_assert_int_eq(smelt_grad(g, y, 4, v, gr), 0);
    tu_bind b[4];
    for (int i = 0; i < 4; i++) b[i] = (tu_bind){names[i], vals[i]};
    void *res[4];
    char *err = tu_run(g, 4, gr, res, pass ? 1 : 4, b);
    ck_assert_msg(err == NULL, "%s", err);
    for (int i = 0; i < 4; i++) got[pass][i] = res[i];
    smelt_graph_free(g);
  }
  for (int i = 0; i < 4; i++) {
    int64_t n = dims[i][0] * (ranks[i] == 2 ? dims[i][1] : 1);
    double norm = 0;
    for (int64_t j = 0; j < n; j++) norm += fabs(got[0][i][j]);
    ck_assert_msg(norm > 0, "gradient %d is all zeros", i);
    TU_ASSERT_CLOSE(got[1][i], got[0][i], n, 0, 0);
    free(got[0][i]), free(got[1][i]);
  }
}
END_TEST

/* ===================================================== allocation failure */

#define MAX_INJECT 200000

static smelt_graph *mlp_for_injection(smelt_node *y, smelt_node *wrt) {
  smelt_graph *g = smelt_graph_new();
  ck_assert_ptr_nonnull(g);
  smelt_node x = smelt_input(g, "x", F32, 2, TU_DIMS(4, 3));
  smelt_node w1 = smelt_param(g, "W1", F32, 2, TU_DIMS(3, 5), smelt_init_normal(0, 0.5, 1));
  smelt_node b1 = smelt_param(g, "b1", F32, 1, TU_DIMS(5), smelt_init_zeros());
  smelt_node w2 = smelt_param(g, "W2", F32, 2, TU_DIMS(5, 3), smelt_init_normal(0, 0.5, 2));
  smelt_node h = smelt_relu(g, smelt_add(g, smelt_matmul(g, x, w1), b1));
  smelt_node logits = smelt_softmax(g, smelt_matmul(g, h, w2), -1);
  smelt_node labels = tu_const_i64(g, 1, TU_DIMS(4), (const int64_t[]){0, 2, 1, 2});
  *y = smelt_add(g, smelt_cross_entropy(g, logits, labels),
                 smelt_mse_loss(g, logits, smelt_zeros(g, F32, 2, TU_DIMS(4, 3))));
  wrt[0] = w1, wrt[1] = b1, wrt[2] = w2, wrt[3] = x;
  TU_ASSERT_OK(g);
  return g;
}

/* Every injected failure inside smelt_grad gives -1 with "out of memory"
 * and invalid gradients (or, for a benign failure, exactly the graph a
 * build without failures gives), and the graph frees cleanly (ASan and
 * valgrind check the leaks). */
START_TEST(alloc_failure_grad) {
  smelt_node y, wrt[4], gr[4];
  smelt_graph *ref = mlp_for_injection(&y, wrt);
  ck_assert_int_eq(smelt_grad(ref, y, 4, wrt, gr), 0);
  char *ref_text = smelt_graph_print(ref);
  ck_assert_ptr_nonnull(ref_text);
  smelt_graph_free(ref);
  long n;
  int injected = 0;
  for (n = 0; n < MAX_INJECT; n++) {
    smelt_graph *g = mlp_for_injection(&y, wrt);
    for (int i = 0; i < 4; i++) gr[i] = wrt[i];
    long before = sm_alloc_failures();
    sm_alloc_fail_after(n);
    int rc = smelt_grad(g, y, 4, wrt, gr);
    sm_alloc_fail_after(-1);
    bool failed = sm_alloc_failures() > before;
    if (!failed) {
      ck_assert_int_eq(rc, 0);
      char *t = smelt_graph_print(g);
      ck_assert_str_eq(t, ref_text);
      smelt_free(t);
      smelt_graph_free(g);
      break;
    }
    injected++;
    if (rc != 0) {
      const char *e = smelt_graph_error(g);
      ck_assert_msg(e && strstr(e, "out of memory"), "allocation %ld: error \"%s\"", n,
                    e ? e : "(none)");
      for (int i = 0; i < 4; i++)
        ck_assert_msg(!smelt_node_valid(gr[i]), "allocation %ld: gradient %d valid after failure",
                      n, i);
      /* sticky */
      ck_assert(!smelt_node_valid(smelt_exp(g, wrt[0])));
    } else {
      ck_assert_msg(smelt_graph_error(g) == NULL, "allocation %ld: rc 0 with error %s", n,
                    smelt_graph_error(g));
      char *t = smelt_graph_print(g);
      ck_assert_ptr_nonnull(t);
      ck_assert_msg(strcmp(t, ref_text) == 0,
                    "allocation %ld failed without an error and the graph differs", n);
      smelt_free(t);
    }
    (void)smelt_graph_node_count(g);
    smelt_graph_free(g);
  }
  smelt_free(ref_text);
  ck_assert_msg(n < MAX_INJECT, "still failing after %d injections", MAX_INJECT);
  /* smelt_grad allocates its two work arrays and grows the node arena */
  ck_assert_int_ge(injected, 3);
}
END_TEST

/* The same around a second-order gradient and a seeded vjp. */
START_TEST(alloc_failure_grad_of_grad) {
  char *ref_text = NULL;
  long n;
  for (n = -1; n < MAX_INJECT; n++) {
    smelt_graph *g = smelt_graph_new();
    ck_assert_ptr_nonnull(g);
    smelt_node x = smelt_input(g, "x", F64, 1, TU_DIMS(3));
    smelt_node yv = smelt_mul(g, smelt_tanh(g, x), smelt_softmax(g, x, 0));
    smelt_node seed = TU_VEC(g, F64, 1, 2, 3);
    TU_ASSERT_OK(g);
    long before = sm_alloc_failures();
    if (n >= 0) sm_alloc_fail_after(n);
    smelt_node g1 = SMELT_INVALID, g2 = SMELT_INVALID;
    int rc = smelt_vjp(g, yv, seed, 1, &x, &g1, 0);
    if (rc == 0) rc = smelt_grad(g, smelt_sum(g, g1, 0, NULL, false), 1, &x, &g2);
    sm_alloc_fail_after(-1);
    bool failed = n >= 0 && sm_alloc_failures() > before;
    if (n < 0) {
      ck_assert_int_eq(rc, 0);
      ref_text = smelt_graph_print(g);
      ck_assert_ptr_nonnull(ref_text);
      smelt_graph_free(g);
      continue;
    }
    if (!failed) {
      ck_assert_int_eq(rc, 0);
      smelt_graph_free(g);
      break;
    }
    if (rc != 0) {
      const char *e = smelt_graph_error(g);
      ck_assert_msg(e && strstr(e, "out of memory"), "allocation %ld: error \"%s\"", n,
                    e ? e : "(none)");
    } else {
      char *t = smelt_graph_print(g);
      ck_assert_ptr_nonnull(t);
      ck_assert_msg(strcmp(t, ref_text) == 0,
                    "allocation %ld failed without an error and the graph differs", n);
      smelt_free(t);
    }
    smelt_graph_free(g);
  }
  smelt_free(ref_text);
  ck_assert(n < MAX_INJECT);
}
END_TEST

/* ================================================================ suite */

static Suite *grad_suite(void) {
  Suite *s = suite_create("grad");
  TCase *tc = tcase_create("gradcheck");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, gc_unary);
  tcase_add_test(tc, gc_clamp);
  tcase_add_test(tc, gc_binary);
  tcase_add_test(tc, gc_maximum_minimum);
  tcase_add_test(tc, gc_literals);
  tcase_add_test(tc, gc_where);
  tcase_add_test(tc, gc_reductions);
  tcase_add_test(tc, gc_var_std);
  tcase_add_test(tc, gc_max_min_dim_values);
  tcase_add_test(tc, gc_views);
  tcase_add_test(tc, gc_slice_flip_pad);
  tcase_add_test(tc, gc_concat_stack);
  tcase_add_test(tc, gc_matmul);
  tcase_add_test(tc, gc_indexing);
  tcase_add_test(tc, gc_nn);
  tcase_add_test(tc, gc_second_order);
  tcase_add_test(tc, gc_third_order);
  suite_add_tcase(s, tc);

  tc = tcase_create("reference");
  tcase_add_test(tc, ref_sum_x_cubed);
  tcase_add_test(tc, ref_sum_2w_squared);
  tcase_add_test(tc, ref_sum_x_squared);
  tcase_add_test(tc, ref_higher_derivatives_x_cubed);
  tcase_add_test(tc, ref_second_derivative_closed_forms);
  suite_add_tcase(s, tc);

  tc = tcase_create("kinks");
  tcase_add_test(tc, kink_relu_abs);
  tcase_add_test(tc, kink_max_min_reduction_ties);
  tcase_add_test(tc, kink_maximum_minimum_ties);
  tcase_add_test(tc, kink_clamp_bounds);
  tcase_add_test(tc, kink_max_dim_first_index);
  tcase_add_test(tc, kink_prod_with_zeros);
  tcase_add_test(tc, kink_prod_second_derivative_at_zero);
  tcase_add_test(tc, kink_pow_at_zero);
  tcase_add_test(tc, stable_backward);
  suite_add_tcase(s, tc);

  tc = tcase_create("semantics");
  tcase_add_test(tc, cast_float_gradients);
  tcase_add_test(tc, no_gradient_paths);
  tcase_add_test(tc, stop_gradient_blocks);
  tcase_add_test(tc, broadcast_gradient_shapes);
  tcase_add_test(tc, expand_sums_back);
  tcase_add_test(tc, vjp_seed);
  tcase_add_test(tc, wrt_intermediate_repeated_and_y);
  tcase_add_test(tc, unrelated_wrt);
  tcase_add_test(tc, f32_gradients_stay_f32);
  tcase_add_test(tc, size_zero);
  tcase_add_test(tc, param_gradients_equal_input_gradients);
  suite_add_tcase(s, tc);

  tc = tcase_create("errors");
  tcase_add_test(tc, error_y_not_scalar);
  tcase_add_test(tc, error_int_bool_wrt);
  tcase_add_test(tc, error_int_bool_y);
  tcase_add_test(tc, error_invalid_handles);
  tcase_add_test(tc, error_sticky);
  suite_add_tcase(s, tc);

  tc = tcase_create("graph_size_and_memory");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, backward_graph_is_small);
  tcase_add_test(tc, grad_twice_adds_nothing);
  tcase_add_test(tc, alloc_failure_grad);
  tcase_add_test(tc, alloc_failure_grad_of_grad);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(grad_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
