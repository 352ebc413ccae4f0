/* Vector-Jacobian products: one rule per differentiable primitive (the vjp
 * column of the op table in ops.c). A rule gets the node (a copy: the node
 * array moves while rules add nodes), its handle and the gradient gy of its
 * output, and returns the gradient of one input, built from ordinary ops so
 * that the backward graph can be printed, optimized and differentiated
 * again. Formulas follow PyTorch's derivatives.yaml so that ties and kinks
 * behave as there (docs/autodiff.md). */
#include "vjp.h"

#include <string.h>

/* Handle of input k of n. */
static smelt_node in(smelt_graph *g, const sm_node *n, int k) { return sm_handle(g, n->inputs[k]); }
static const sm_node *node_of(smelt_graph *g, const sm_node *n, int k) {
  return &g->nodes[n->inputs[k]];
}
static smelt_node lit(smelt_graph *g, double v) { return smelt_scalar(g, v); }
static smelt_node keep_where(smelt_graph *g, smelt_node cond, smelt_node a, bool a_if_true) {
  return a_if_true ? smelt_where(g, cond, a, lit(g, 0.0)) : smelt_where(g, cond, lit(g, 0.0), a);
}

/* ------------------------------------------------------------- unary */

static smelt_node vjp_neg(VJP_ARGS) {
  (void)n, (void)self, (void)k;
  return smelt_neg(g, gy);
}
static smelt_node vjp_abs(VJP_ARGS) {
  (void)self, (void)k;
  return smelt_mul(g, gy, smelt_sign(g, in(g, n, 0))); /* abs'(0) = 0 */
}
static smelt_node vjp_exp(VJP_ARGS) {
  (void)n, (void)k;
  return smelt_mul(g, gy, self);
}
static smelt_node vjp_log(VJP_ARGS) {
  (void)self, (void)k;
  return smelt_div(g, gy, in(g, n, 0));
}
static smelt_node vjp_sqrt(VJP_ARGS) {
  (void)n, (void)k;
  return smelt_div(g, gy, smelt_mul(g, self, lit(g, 2.0)));
}
static smelt_node vjp_rsqrt(VJP_ARGS) {
  (void)n, (void)k;
  smelt_node y3 = smelt_mul(g, smelt_mul(g, self, self), self);
  return smelt_mul(g, smelt_mul(g, gy, lit(g, -0.5)), y3);
}
static smelt_node vjp_reciprocal(VJP_ARGS) {
  (void)n, (void)k;
  return smelt_mul(g, smelt_neg(g, gy), smelt_mul(g, self, self));
}
static smelt_node vjp_sin(VJP_ARGS) {
  (void)self, (void)k;
  return smelt_mul(g, gy, smelt_cos(g, in(g, n, 0)));
}
static smelt_node vjp_cos(VJP_ARGS) {
  (void)self, (void)k;
  return smelt_mul(g, gy, smelt_neg(g, smelt_sin(g, in(g, n, 0))));
}
static smelt_node vjp_tanh(VJP_ARGS) {
  (void)n, (void)k;
  return smelt_mul(g, gy, smelt_sub(g, lit(g, 1.0), smelt_mul(g, self, self)));
}
static smelt_node vjp_sigmoid(VJP_ARGS) {
  (void)n, (void)k;
  return smelt_mul(g, smelt_mul(g, gy, smelt_sub(g, lit(g, 1.0), self)), self);
}
static smelt_node vjp_relu(VJP_ARGS) {
  (void)n, (void)k;
  /* where the result is positive: relu'(0) = 0 and NaN passes none */
  return keep_where(g, smelt_gt(g, self, lit(g, 0.0)), gy, true);
}
static smelt_node vjp_cast(VJP_ARGS) {
  (void)self, (void)k;
  /* float to float only: casts to integers pass no gradient */
  smelt_dtype from = (smelt_dtype)node_of(g, n, 0)->dtype;
  if (!sm_is_float(from)) return SMELT_INVALID;
  return smelt_cast(g, gy, from);
}

/* ------------------------------------------------------------ binary */

static smelt_node vjp_add(VJP_ARGS) {
  (void)g, (void)n, (void)self, (void)k;
  return gy;
}
static smelt_node vjp_sub(VJP_ARGS) {
  (void)n, (void)self;
  return k == 0 ? gy : smelt_neg(g, gy);
}
static smelt_node vjp_mul(VJP_ARGS) {
  (void)self;
  return smelt_mul(g, gy, in(g, n, 1 - k));
}
static smelt_node vjp_div(VJP_ARGS) {
  smelt_node a = in(g, n, 0), b = in(g, n, 1);
  (void)self;
  if (k == 0) return smelt_div(g, gy, b);
  return smelt_div(g, smelt_mul(g, smelt_neg(g, gy), a), smelt_mul(g, b, b));
}
static smelt_node vjp_pow(VJP_ARGS) {
  smelt_node a = in(g, n, 0), b = in(g, n, 1);
  if (k == 0) {
    /* b * a^(b-1), and exactly 0 where b == 0 (also at a == 0). The masked
     * branch uses exponent 1 - 1 = 0 there, so that it stays finite and its
     * own gradient (second derivatives) is not 0 * inf = NaN at a == 0. */
    smelt_node b0 = smelt_eq(g, b, lit(g, 0.0));
    smelt_node bs = smelt_where(g, b0, lit(g, 1.0), b);
    smelt_node d = smelt_mul(g, smelt_mul(g, gy, b), smelt_pow(g, a, smelt_sub(g, bs, lit(g, 1.0))));
    return keep_where(g, b0, d, false);
  }
  /* y log a, and 0 where a == 0 and b >= 0 (the limit) */
  smelt_node d = smelt_mul(g, smelt_mul(g, gy, self), smelt_log(g, a));
  smelt_node at0 = smelt_logical_and(g, smelt_eq(g, a, lit(g, 0.0)), smelt_ge(g, b, lit(g, 0.0)));
  return keep_where(g, at0, d, false);
}
static smelt_node vjp_maximum_minimum(VJP_ARGS) {
  (void)self;
  /* As PyTorch: ties split the gradient in halves; the losing side gets 0
   * (and a NaN operand gets the gradient on both sides). */
  smelt_node me = in(g, n, k), other = in(g, n, 1 - k);
  smelt_node lose = n->op == OP_MAXIMUM ? smelt_lt(g, me, other) : smelt_gt(g, me, other);
  smelt_node half = smelt_where(g, smelt_eq(g, me, other), smelt_mul(g, gy, lit(g, 0.5)), gy);
  return keep_where(g, lose, half, false);
}
static smelt_node vjp_where(VJP_ARGS) {
  (void)self;
  if (k == 0) return SMELT_INVALID; /* the condition */
  return keep_where(g, in(g, n, 0), gy, k == 1);
}

/* -------------------------------------------------------- reductions */

static smelt_node vjp_reduce_sum(VJP_ARGS) {
  (void)self, (void)k;
  const sm_node *x = node_of(g, n, 0);
  int64_t shape[SMELT_MAX_RANK];
  memcpy(shape, x->shape, sizeof shape);
  return smelt_expand(g, gy, x->rank, shape);
}

static smelt_node vjp_reduce_prod(VJP_ARGS) {
  (void)self, (void)k;
  /* d prod / d x_i = the product of the others, exact with zeros: with no
   * zero it is y / x_i; with one zero it is the product of the nonzeros at
   * the zero and 0 elsewhere; with more zeros it is 0 everywhere. Written so
   * that second derivatives are exact too (and never 0 / 0): p is the
   * product of the nonzeros (x with its zeros replaced by 1) and z the
   * product of the zeros (x with its nonzeros replaced by 1), so
   *   at a nonzero x_i:  p / x_i * z
   *   at a zero x_i:     p * (the product of the other zeros)
   * where the product of the other zeros is 1 with one zero, the other zero
   * with two (written sum(zeros) - x_i, which is 0 but has the right
   * derivative), and 0 with more. */
  smelt_node x = in(g, n, 0);
  int naxes = (int)n->niattr;
  int axes[SMELT_MAX_RANK];
  for (int i = 0; i < naxes; i++) axes[i] = (int)n->iattr[i];
  smelt_node zero = lit(g, 0.0), one = lit(g, 1.0);
  smelt_node is0 = smelt_eq(g, x, zero);
  smelt_node count = smelt_sum(g, smelt_cast(g, is0, SMELT_I64), naxes, axes, true);
  smelt_node x1 = smelt_where(g, is0, one, x);
  smelt_node p = smelt_prod(g, x1, naxes, axes, true);
  smelt_node z = smelt_prod(g, smelt_where(g, is0, x, one), naxes, axes, true);
  smelt_node s0 = smelt_sum(g, smelt_where(g, is0, x, zero), naxes, axes, true);
  smelt_node other =
      smelt_where(g, smelt_eq(g, count, smelt_scalar_int(g, 1)), one,
                  smelt_where(g, smelt_eq(g, count, smelt_scalar_int(g, 2)), smelt_sub(g, s0, x), zero));
  smelt_node at_zero = smelt_mul(g, p, other);
  smelt_node elsewhere = smelt_mul(g, smelt_div(g, p, x1), z);
  return smelt_mul(g, gy, smelt_where(g, is0, at_zero, elsewhere));
}

static smelt_node vjp_reduce_max_min(VJP_ARGS) {
  (void)k;
  /* As torch.amax / amin: the gradient is split evenly among the elements
   * equal to the result. A NaN result equals no element: the gradient is
   * zero (docs/autodiff.md). */
  smelt_node x = in(g, n, 0);
  int naxes = (int)n->niattr;
  int axes[SMELT_MAX_RANK];
  for (int i = 0; i < naxes; i++) axes[i] = (int)n->iattr[i];
  smelt_node hit = smelt_eq(g, x, self);
  smelt_dtype dt = (smelt_dtype)n->dtype;
  smelt_node count = smelt_sum(g, smelt_cast(g, hit, dt), naxes, axes, true);
  return keep_where(g, hit, smelt_div(g, gy, count), true);
}

/* ---------------------------------------------------------- movement */

static smelt_node vjp_reshape(VJP_ARGS) {
  (void)self, (void)k;
  const sm_node *x = node_of(g, n, 0);
  int64_t shape[SMELT_MAX_RANK];
  memcpy(shape, x->shape, sizeof shape);
  return sm_reshape(g, gy, x->rank, shape);
}

static smelt_node vjp_expand(VJP_ARGS) {
  (void)self, (void)k;
  /* The gradient of a broadcast sums back over the expanded dims. */
  const sm_node *x = node_of(g, n, 0);
  int axes[SMELT_MAX_RANK], m = 0;
  for (int i = 0; i < n->rank; i++)
    if (x->shape[i] != n->shape[i]) axes[m++] = i;
  return m ? sm_reduce(g, OP_REDUCE_SUM, gy, m, axes) : gy;
}

static smelt_node vjp_permute(VJP_ARGS) {
  (void)self, (void)k;
  int inv[SMELT_MAX_RANK];
  for (int i = 0; i < n->rank; i++) inv[n->iattr[i]] = i;
  return smelt_permute(g, gy, inv);
}

static smelt_node vjp_flip(VJP_ARGS) {
  (void)self, (void)k;
  int axes[SMELT_MAX_RANK];
  for (uint32_t i = 0; i < n->niattr; i++) axes[i] = (int)n->iattr[i];
  return smelt_flip(g, gy, (int)n->niattr, axes);
}

static smelt_node vjp_slice(VJP_ARGS) {
  (void)self, (void)k;
  /* Scatter gy back into zeros of x's shape: spread strided axes with
   * interior zeros (unsqueeze, pad, reshape), then pad to place the start
   * and slice off what runs past the end. */
  const sm_node *x = node_of(g, n, 0);
  int rank = n->rank;
  int64_t xs[SMELT_MAX_RANK], start[SMELT_MAX_RANK] = {0}, step[SMELT_MAX_RANK] = {0},
          len[SMELT_MAX_RANK] = {0};
  memcpy(xs, x->shape, sizeof xs);
  for (int i = 0; i < rank; i++) {
    start[i] = n->iattr[i];
    step[i] = n->iattr[rank + i];
    len[i] = n->shape[i];
  }
  if (sm_numel(rank, len) == 0) return smelt_zeros(g, (smelt_dtype)n->dtype, rank, xs);
  smelt_node r = gy;
  int64_t cur[SMELT_MAX_RANK];
  memcpy(cur, len, sizeof cur);
  for (int a = 0; a < rank; a++) {
    if (step[a] == 1) continue;
    int64_t lo[SMELT_MAX_RANK + 1] = {0}, hi[SMELT_MAX_RANK + 1] = {0};
    r = smelt_unsqueeze(g, r, a + 1);
    hi[a + 1] = step[a] - 1;
    r = smelt_pad(g, r, lo, hi, 0.0);
    cur[a] *= step[a];
    r = sm_reshape(g, r, rank, cur);
  }
  int64_t lo[SMELT_MAX_RANK] = {0}, hi[SMELT_MAX_RANK] = {0}, stop[SMELT_MAX_RANK] = {0};
  bool trim = false;
  for (int a = 0; a < rank; a++) {
    lo[a] = start[a];
    int64_t rest = xs[a] - start[a] - cur[a];
    hi[a] = rest > 0 ? rest : 0;
    stop[a] = xs[a];
    if (rest < 0) trim = true;
  }
  r = smelt_pad(g, r, lo, hi, 0.0);
  if (trim) r = smelt_slice(g, r, NULL, stop, NULL);
  return r;
}

static smelt_node vjp_unfold(VJP_ARGS) {
  (void)self, (void)k;
  /* Window element (w, j) came from input position w*step + j. Pad the
   * window axis to m*step (m = ceil(size/step)) and split it as (i, r):
   * position (w + i)*step + r. For each i the [nwin, step] block is a
   * contiguous run of nwin*step positions starting at i*step; the m runs,
   * padded into place, sum to the gradient. Non-overlapping windows
   * (step >= size) give one run; a kxk convolution's step-1 windows k. */
  const sm_node *x = node_of(g, n, 0);
  int rin = x->rank, a = (int)n->iattr[0];
  int64_t size = n->iattr[1], step = n->iattr[2], nwin = n->shape[a], len = x->shape[a];
  smelt_dtype dt = (smelt_dtype)n->dtype;
  int64_t xs[SMELT_MAX_RANK];
  memcpy(xs, x->shape, sizeof xs);
  if (size == 0 || nwin == 0 || sm_numel(rin, xs) == 0) return smelt_zeros(g, dt, rin, xs);
  /* [pre, nwin, post, size] -> [pre, nwin, size, post] */
  int perm[SMELT_MAX_RANK], r = 0;
  for (int d = 0; d <= a; d++) perm[r++] = d;
  perm[r++] = rin;
  for (int d = a + 1; d < rin; d++) perm[r++] = d;
  smelt_node t = smelt_permute(g, gy, perm);
  int64_t m = (size + step - 1) / step;
  if (m * step != size) {
    int64_t lo[SMELT_MAX_RANK] = {0}, hi[SMELT_MAX_RANK] = {0};
    hi[a + 1] = m * step - size;
    t = smelt_pad(g, t, lo, hi, 0.0);
  }
  /* [pre, nwin, m, step, post] */
  int64_t split[SMELT_MAX_RANK + 1];
  for (int d = 0; d <= a; d++) split[d] = xs[d];
  split[a] = nwin, split[a + 1] = m, split[a + 2] = step;
  for (int d = a + 1; d < rin; d++) split[d + 2] = xs[d];
  t = sm_reshape(g, t, rin + 2, split);
  smelt_node sum = SMELT_INVALID;
  for (int64_t i = 0; i < m; i++) {
    /* run i: [pre, nwin, step, post] -> [pre, nwin*step, post] */
    smelt_node run = smelt_slice_axis(g, t, a + 1, i, i + 1, 1);
    int64_t rs[SMELT_MAX_RANK];
    memcpy(rs, xs, sizeof rs);
    rs[a] = nwin * step;
    run = sm_reshape(g, run, rin, rs);
    int64_t lo[SMELT_MAX_RANK] = {0}, hi[SMELT_MAX_RANK] = {0};
    int64_t start = i * step, rest = len - start - nwin * step;
    /* positions past the end hold only the padding added above */
    if (rest < 0) run = smelt_slice_axis(g, run, a, 0, len - start, 1);
    lo[a] = start, hi[a] = rest > 0 ? rest : 0;
    if (lo[a] || hi[a]) run = smelt_pad(g, run, lo, hi, 0.0);
    sum = i == 0 ? run : smelt_add(g, sum, run);
  }
  return sum;
}

static smelt_node vjp_pad(VJP_ARGS) {
  (void)self, (void)k;
  const sm_node *x = node_of(g, n, 0);
  int rank = n->rank;
  int64_t start[SMELT_MAX_RANK], stop[SMELT_MAX_RANK];
  for (int i = 0; i < rank; i++) {
    start[i] = n->iattr[i];
    stop[i] = n->iattr[i] + x->shape[i];
  }
  return smelt_slice(g, gy, start, stop, NULL);
}

static smelt_node vjp_concat(VJP_ARGS) {
  (void)self;
  int axis = (int)n->iattr[0];
  int64_t off = 0;
  for (int i = 0; i < k; i++) off += node_of(g, n, i)->shape[axis];
  return smelt_slice_axis(g, gy, axis, off, off + node_of(g, n, k)->shape[axis], 1);
}

/* ------------------------------------------------------------- other */

static smelt_node transpose_last2(smelt_graph *g, smelt_node x, int rank) {
  return smelt_transpose(g, x, rank - 2, rank - 1);
}

static smelt_node vjp_matmul(VJP_ARGS) {
  (void)self;
  int rank = n->rank;
  if (k == 0) return smelt_matmul(g, gy, transpose_last2(g, in(g, n, 1), rank));
  return smelt_matmul(g, transpose_last2(g, in(g, n, 0), rank), gy);
}

static smelt_node vjp_gather(VJP_ARGS) {
  (void)self;
  if (k == 1) return SMELT_INVALID; /* the index */
  const sm_node *x = node_of(g, n, 0), *ix = node_of(g, n, 1);
  int a = (int)n->iattr[0];
  int64_t shape[SMELT_MAX_RANK];
  memcpy(shape, x->shape, sizeof shape);
  /* One index per row along the axis (argmax picks, max_pool2d): each
   * element's gradient is gy where it was picked, an elementwise select
   * that runs in parallel, instead of a scatter. */
  bool one_per_row = ix->shape[a] == 1;
  for (int d = 0; d < x->rank; d++)
    if (d != a && ix->shape[d] != x->shape[d]) one_per_row = false;
  if (one_per_row) {
    smelt_node pos = sm_iota(g, (smelt_dtype)ix->dtype, x->rank, shape, a, 0, 1);
    return keep_where(g, smelt_eq(g, pos, in(g, n, 1)), gy, true);
  }
  return sm_scatter_add(g, x->rank, shape, a, in(g, n, 1), gy);
}

static smelt_node vjp_scatter_add(VJP_ARGS) {
  (void)self;
  if (k == 0) return SMELT_INVALID; /* the index */
  return smelt_gather(g, gy, (int)n->iattr[0], in(g, n, 0));
}

const sm_vjp_fn sm_vjp_rules[OP_COUNT] = {
    [OP_NEG] = vjp_neg,
    [OP_ABS] = vjp_abs,
    [OP_EXP] = vjp_exp,
    [OP_LOG] = vjp_log,
    [OP_SQRT] = vjp_sqrt,
    [OP_RSQRT] = vjp_rsqrt,
    [OP_RECIPROCAL] = vjp_reciprocal,
    [OP_SIN] = vjp_sin,
    [OP_COS] = vjp_cos,
    [OP_TANH] = vjp_tanh,
    [OP_SIGMOID] = vjp_sigmoid,
    [OP_RELU] = vjp_relu,
    [OP_CAST] = vjp_cast,
    [OP_ADD] = vjp_add,
    [OP_SUB] = vjp_sub,
    [OP_MUL] = vjp_mul,
    [OP_DIV] = vjp_div,
    [OP_POW] = vjp_pow,
    [OP_MAXIMUM] = vjp_maximum_minimum,
    [OP_MINIMUM] = vjp_maximum_minimum,
    [OP_WHERE] = vjp_where,
    [OP_REDUCE_SUM] = vjp_reduce_sum,
    [OP_REDUCE_PROD] = vjp_reduce_prod,
    [OP_REDUCE_MAX] = vjp_reduce_max_min,
    [OP_REDUCE_MIN] = vjp_reduce_max_min,
    [OP_RESHAPE] = vjp_reshape,
    [OP_PERMUTE] = vjp_permute,
    [OP_EXPAND] = vjp_expand,
    [OP_SLICE] = vjp_slice,
    [OP_FLIP] = vjp_flip,
    [OP_UNFOLD] = vjp_unfold,
    [OP_PAD] = vjp_pad,
    [OP_CONCAT] = vjp_concat,
    [OP_MATMUL] = vjp_matmul,
    [OP_GATHER] = vjp_gather,
    [OP_SCATTER_ADD] = vjp_scatter_add,
    /* No gradient: sources, sign (0 almost everywhere), comparisons and
     * logical ops, stop_gradient, arg-reductions, assign. */
};
