/* Composite ops, each written once in terms of the primitives (build.c), so
 * autodiff and every backend need rules for the primitives only. */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define BAD(n) (!smelt_node_valid(n))

/* The node of a valid handle (call only after a successful builder call:
 * the pointer moves when nodes are added). */
static const sm_node *node(const smelt_graph *g, smelt_node n) { return sm_get(g, n); }


static smelt_node need_float(smelt_graph *g, const char *op, smelt_node x) {
  const sm_node *n = sm_arg(g, op, x, "the operand");
  if (!n) return SMELT_INVALID;
  if (!sm_is_float((smelt_dtype)n->dtype)) {
    char d[200];
    sm_describe(g, n, d, sizeof d);
    return sm_fail(g, "%s: needs a float tensor, got %s (cast it first)", op, d);
  }
  return x;
}

/* Checks a reduction's axis list under the composite's own name (the
 * primitive would report its own). */
static bool check_axes(smelt_graph *g, const char *op, smelt_node x, int naxes, const int *axes) {
  int64_t out[SMELT_MAX_RANK];
  return sm_axes(g, op, x, naxes, axes, out) >= 0;
}

/* Shape of x with the reduced axes removed (keepdim false) or kept as 1. */
static smelt_node finish_reduce(smelt_graph *g, smelt_node r, smelt_node x, int naxes,
                                const int *axes, bool keepdim) {
  if (BAD(r) || keepdim) return r;
  const sm_node *xn = node(g, x);
  int rank = xn->rank;
  bool drop[SMELT_MAX_RANK] = {0};
  if (naxes == 0)
    for (int i = 0; i < rank; i++) drop[i] = true;
  for (int i = 0; i < naxes; i++) {
    int a;
    if (sm_norm_axis(axes[i], rank, &a)) drop[a] = true;
  }
  int64_t s[SMELT_MAX_RANK];
  int n = 0;
  for (int i = 0; i < rank; i++)
    if (!drop[i]) s[n++] = xn->shape[i];
  return sm_reshape(g, r, n, s);
}

/* Number of elements reduced over: 0 when a reduced axis is empty, else
 * the product, saturated at INT64_MAX (a tensor with an empty axis that is
 * not reduced may have other dims whose product passes int64; its result
 * has no elements, so the count only has to be defined). */
static int64_t reduced_count(const smelt_graph *g, smelt_node x, int naxes, const int *axes) {
  const sm_node *xn = node(g, x);
  bool reduced[SMELT_MAX_RANK] = {0};
  for (int i = 0; i < xn->rank; i++) reduced[i] = naxes == 0;
  for (int i = 0; i < naxes; i++) {
    int a;
    if (sm_norm_axis(axes[i], xn->rank, &a)) reduced[a] = true;
  }
  int64_t n = 1;
  for (int a = 0; a < xn->rank; a++)
    if (reduced[a] && xn->shape[a] == 0) return 0;
  for (int a = 0; a < xn->rank; a++)
    if (reduced[a]) n = n > INT64_MAX / xn->shape[a] ? INT64_MAX : n * xn->shape[a];
  return n;
}

/* sum and prod of integers and bool accumulate in i64, as PyTorch. */
static smelt_node widen_int(smelt_graph *g, const char *op, smelt_node x) {
  const sm_node *n = sm_arg(g, op, x, "the operand");
  if (!n) return SMELT_INVALID;
  smelt_dtype dt = (smelt_dtype)n->dtype;
  if (dt == SMELT_I32 || dt == SMELT_BOOL) return smelt_cast(g, x, SMELT_I64);
  return x;
}

static smelt_node reduce(smelt_graph *g, sm_op op, const char *name, smelt_node x, int naxes,
                         const int *axes, bool keepdim) {
  if (!check_axes(g, name, x, naxes, axes)) return SMELT_INVALID;
  if (op == OP_REDUCE_SUM || op == OP_REDUCE_PROD) x = widen_int(g, name, x);
  smelt_node r = sm_reduce_as(g, name, op, x, naxes, axes);
  return finish_reduce(g, r, x, naxes, axes, keepdim);
}

smelt_node smelt_sum(smelt_graph *g, smelt_node x, int naxes, const int *axes, bool keepdim) {
  return reduce(g, OP_REDUCE_SUM, "sum", x, naxes, axes, keepdim);
}
smelt_node smelt_prod(smelt_graph *g, smelt_node x, int naxes, const int *axes, bool keepdim) {
  return reduce(g, OP_REDUCE_PROD, "prod", x, naxes, axes, keepdim);
}
smelt_node smelt_max(smelt_graph *g, smelt_node x, int naxes, const int *axes, bool keepdim) {
  return reduce(g, OP_REDUCE_MAX, "max", x, naxes, axes, keepdim);
}
smelt_node smelt_min(smelt_graph *g, smelt_node x, int naxes, const int *axes, bool keepdim) {
  return reduce(g, OP_REDUCE_MIN, "min", x, naxes, axes, keepdim);
}

smelt_node smelt_mean(smelt_graph *g, smelt_node x, int naxes, const int *axes, bool keepdim) {
  if (BAD(need_float(g, "mean", x)) || !check_axes(g, "mean", x, naxes, axes))
    return SMELT_INVALID;
  smelt_node s = sm_reduce(g, OP_REDUCE_SUM, x, naxes, axes);
  if (BAD(s)) return s;
  int64_t n = reduced_count(g, x, naxes, axes);
  smelt_node m = smelt_div(g, s, smelt_scalar(g, (double)n)); /* 0/0 = NaN for empty */
  return finish_reduce(g, m, x, naxes, axes, keepdim);
}

smelt_node smelt_var(smelt_graph *g, smelt_node x, int naxes, const int *axes, int64_t correction,
                     bool keepdim) {
  if (BAD(need_float(g, "var", x)) || !check_axes(g, "var", x, naxes, axes))
    return SMELT_INVALID;
  if (correction < 0) return sm_fail(g, "var: correction %" PRId64 " is negative", correction);
  smelt_node m = smelt_mean(g, x, naxes, axes, true);
  if (BAD(m)) return m;
  smelt_node d = smelt_sub(g, x, m);
  smelt_node ss = sm_reduce(g, OP_REDUCE_SUM, smelt_mul(g, d, d), naxes, axes);
  int64_t n = reduced_count(g, x, naxes, axes);
  /* PyTorch divides by max(0, N - correction). */
  double div = n > correction ? (double)(n - correction) : 0.0;
  smelt_node v = smelt_div(g, ss, smelt_scalar(g, div));
  return finish_reduce(g, v, x, naxes, axes, keepdim);
}

smelt_node smelt_std(smelt_graph *g, smelt_node x, int naxes, const int *axes, int64_t correction,
                     bool keepdim) {
  if (BAD(need_float(g, "std", x)) || !check_axes(g, "std", x, naxes, axes))
    return SMELT_INVALID;
  /* sqrt with PyTorch's gradient where the std is 0: zero (torch's
   * std_backward masks those positions) instead of 0 * inf = NaN */
  smelt_node v = smelt_var(g, x, naxes, axes, correction, keepdim);
  smelt_node z = smelt_eq(g, v, smelt_scalar(g, 0.0));
  smelt_node s = smelt_sqrt(g, smelt_where(g, z, smelt_scalar(g, 1.0), v));
  return smelt_where(g, z, smelt_scalar(g, 0.0), s);
}

smelt_node smelt_logsumexp(smelt_graph *g, smelt_node x, int naxes, const int *axes,
                           bool keepdim) {
  if (!check_axes(g, "logsumexp", x, naxes, axes)) return SMELT_INVALID;
  const sm_node *n = sm_get(g, x);
  if (!sm_is_float((smelt_dtype)n->dtype)) x = smelt_cast(g, x, SMELT_F32);
  if (BAD(x)) return x;
  if (reduced_count(g, x, naxes, axes) == 0) {
    /* log of an empty sum: -inf, as PyTorch */
    smelt_node s = sm_reduce(g, OP_REDUCE_SUM, smelt_exp(g, x), naxes, axes);
    return finish_reduce(g, smelt_log(g, s), x, naxes, axes, keepdim);
  }
  /* Subtract the max (without gradient; an infinite max is replaced by 0 so
   * that all -inf gives -inf and +inf gives +inf, not NaN). */
  smelt_node m = smelt_stop_gradient(g, sm_reduce(g, OP_REDUCE_MAX, x, naxes, axes));
  smelt_node inf = smelt_eq(g, smelt_abs(g, m), smelt_scalar(g, INFINITY));
  smelt_node ms = smelt_where(g, inf, smelt_scalar(g, 0.0), m);
  smelt_node s = sm_reduce(g, OP_REDUCE_SUM, smelt_exp(g, smelt_sub(g, x, ms)), naxes, axes);
  smelt_node r = smelt_add(g, smelt_log(g, s), ms);
  return finish_reduce(g, r, x, naxes, axes, keepdim);
}

static smelt_node argreduce(smelt_graph *g, sm_op op, smelt_node x, int axis, bool keepdim) {
  smelt_node r = sm_argreduce(g, op, x, axis);
  if (BAD(r) || keepdim || node(g, x)->rank == 0) return r;
  return finish_reduce(g, r, x, 1, &axis, false);
}

smelt_node smelt_argmax(smelt_graph *g, smelt_node x, int axis, bool keepdim) {
  return argreduce(g, OP_ARGMAX, x, axis, keepdim);
}
smelt_node smelt_argmin(smelt_graph *g, smelt_node x, int axis, bool keepdim) {
  return argreduce(g, OP_ARGMIN, x, axis, keepdim);
}

static smelt_node value_index(smelt_graph *g, bool is_max, smelt_node x, int axis, bool keepdim,
                              smelt_node *values, smelt_node *indices) {
  const char *name = is_max ? "max_dim" : "min_dim";
  const sm_node *xn = sm_arg(g, name, x, "the operand");
  smelt_node v = SMELT_INVALID, i = SMELT_INVALID;
  if (xn && xn->rank == 0) {
    /* a 0-dim tensor is its own maximum, at index 0 */
    v = smelt_max(g, x, 1, &axis, keepdim);
    i = BAD(v) ? v : argreduce(g, is_max ? OP_ARGMAX : OP_ARGMIN, x, axis, keepdim);
  } else if (xn) {
    /* The values are gathered at the indices, so the gradient goes to the
     * selected (first) position, as torch.max(x, dim). */
    smelt_node ik = sm_argreduce(g, is_max ? OP_ARGMAX : OP_ARGMIN, x, axis);
    smelt_node vk = BAD(ik) ? ik : smelt_gather(g, x, axis, ik);
    v = finish_reduce(g, vk, x, 1, &axis, keepdim);
    i = BAD(v) ? v : finish_reduce(g, ik, x, 1, &axis, keepdim);
  }
  if (BAD(i)) v = i;
  if (values) *values = v;
  if (indices) *indices = i;
  return v;
}

smelt_node smelt_max_dim(smelt_graph *g, smelt_node x, int axis, bool keepdim, smelt_node *values,
                         smelt_node *indices) {
  return value_index(g, true, x, axis, keepdim, values, indices);
}
smelt_node smelt_min_dim(smelt_graph *g, smelt_node x, int axis, bool keepdim, smelt_node *values,
                         smelt_node *indices) {
  return value_index(g, false, x, axis, keepdim, values, indices);
}

/* -------------------------------------------------------- sources */

/* The primitives' limit on a shape's element count (build.c's take_dims),
 * checked here so that a composite reports it under its own name. */
static bool shape_fits(smelt_graph *g, const char *op, int rank, const int64_t *dims) {
  for (int i = 0; i < rank; i++)
    if (dims[i] == 0) return true; /* empty: the primitives decide */
  int64_t n = 1;
  for (int i = 0; i < rank; i++) {
    if (dims[i] && n > SM_MAX_NUMEL / dims[i]) {
      sm_buf b = {0};
      sm_buf_shape(&b, rank, dims);
      sm_fail(g, "%s: shape %s has too many elements (more than 2^59)", op,
              b.data && !b.oom ? b.data : "");
      sm_buf_free(&b);
      return false;
    }
    n *= dims[i];
  }
  return true;
}

smelt_node smelt_full(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims,
                      double value) {
  if (!g || g->error) return SMELT_INVALID;
  if (rank < 0 || rank > SMELT_MAX_RANK)
    return sm_fail(g, "full: rank %d is out of range (0 to %d)", rank, SMELT_MAX_RANK);
  if (rank > 0 && !dims) return sm_fail(g, "full: dims is NULL for rank %d", rank);
  int64_t shape[SMELT_MAX_RANK]; /* dims may point into the graph, which moves */
  for (int i = 0; i < rank; i++) {
    if (dims[i] < 0) return sm_fail(g, "full: dim %d is negative (%" PRId64 ")", i, dims[i]);
    shape[i] = dims[i];
  }
  if (!shape_fits(g, "full", rank, dims)) return SMELT_INVALID;
  /* One scalar, broadcast with stride 0: never a copy. */
  smelt_node c = smelt_const(g, dt, value);
  return rank == 0 ? c : smelt_broadcast_to(g, c, rank, shape);
}

smelt_node smelt_zeros(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims) {
  return smelt_full(g, dt, rank, dims, 0.0);
}
smelt_node smelt_ones(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims) {
  return smelt_full(g, dt, rank, dims, 1.0);
}

smelt_node smelt_arange(smelt_graph *g, smelt_dtype dt, double start, double stop, double step) {
  if (!g || g->error) return SMELT_INVALID;
  if (!isfinite(start) || !isfinite(stop) || !isfinite(step))
    return sm_fail(g, "arange: start, stop and step must be finite (%g, %g, %g)", start, stop,
                   step);
  if (step == 0) return sm_fail(g, "arange: step must be nonzero");
  double len = ceil((stop - start) / step);
  if (len < 0)
    return sm_fail(g, "arange: the sign of step %g does not lead from %g to %g", step, start,
                   stop);
  if (len > 1e15) return sm_fail(g, "arange: %g elements is too many", len);
  int64_t n = (int64_t)len;
  return sm_iota(g, dt, 1, &n, 0, start, step);
}

smelt_node smelt_linspace(smelt_graph *g, smelt_dtype dt, double start, double stop, int64_t n) {
  if (!g || g->error) return SMELT_INVALID;
  if (n < 0) return sm_fail(g, "linspace: the number of steps %" PRId64 " is negative", n);
  if (!isfinite(start) || !isfinite(stop))
    return sm_fail(g, "linspace: start and stop must be finite (%g, %g)", start, stop);
  if (!shape_fits(g, "linspace", 1, &n)) return SMELT_INVALID;
  if (sm_is_int(dt)) {
    /* PyTorch converts the bounds to the dtype first (truncating), and
     * rejects bounds the dtype cannot hold. */
    double lim = dt == SMELT_I32 ? 2147483648.0 : 9223372036854775808.0;
    if (!(start > -lim - 1 && start < lim && stop > -lim - 1 && stop < lim))
      return sm_fail(g, "linspace: start %g or stop %g does not fit %s", start, stop,
                     smelt_dtype_name(dt));
    start = trunc(start);
    stop = trunc(stop);
  } else if (dt == SMELT_F32) {
    start = (float)start;
    stop = (float)stop;
  }
  double step = n > 1 ? (stop - start) / (double)(n - 1) : 0.0;
  if (n < 2) return sm_iota(g, dt, 1, &n, 0, start, step);
  /* As PyTorch: element i is start + i*step in the first half and
   * stop - (n-1-i)*step in the second, so both ends are exact. */
  smelt_node lo = sm_iota(g, dt, 1, &n, 0, start, step);
  smelt_node hi = smelt_flip(g, sm_iota(g, dt, 1, &n, 0, stop, -step), 1, (int[]){0});
  smelt_node first = smelt_lt(g, sm_iota(g, SMELT_I64, 1, &n, 0, 0, 1), smelt_scalar_int(g, n / 2));
  return smelt_where(g, first, lo, hi);
}

smelt_node smelt_eye(smelt_graph *g, smelt_dtype dt, int64_t n, int64_t m) {
  if (!g || g->error) return SMELT_INVALID;
  if (n < 0 || m < 0)
    return sm_fail(g, "eye: sizes must be non-negative (%" PRId64 ", %" PRId64 ")", n, m);
  int64_t s[2] = {n, m};
  if (!shape_fits(g, "eye", 2, s)) return SMELT_INVALID;
  smelt_node r = sm_iota(g, SMELT_I64, 2, s, 0, 0, 1);
  smelt_node c = sm_iota(g, SMELT_I64, 2, s, 1, 0, 1);
  return smelt_cast(g, smelt_eq(g, r, c), dt);
}

/* ------------------------------------------------------ elementwise */

smelt_node smelt_gelu(smelt_graph *g, smelt_node x) {
  const sm_node *n = sm_arg(g, "gelu", x, "the operand");
  if (!n) return SMELT_INVALID;
  if (!sm_is_float((smelt_dtype)n->dtype)) x = smelt_cast(g, x, SMELT_F32);
  /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
  smelt_node x3 = smelt_mul(g, smelt_mul(g, x, x), x);
  smelt_node inner = smelt_add(g, x, smelt_mul(g, x3, smelt_scalar(g, 0.044715)));
  smelt_node t = smelt_tanh(g, smelt_mul(g, inner, smelt_scalar(g, 0.7978845608028654)));
  smelt_node half_x = smelt_mul(g, x, smelt_scalar(g, 0.5));
  return smelt_mul(g, half_x, smelt_add(g, t, smelt_scalar(g, 1.0)));
}

/* A literal for a bound: an integer literal when the value is integral so
 * that integer tensors stay integer, as PyTorch's clamp. */
static smelt_node literal(smelt_graph *g, double v) {
  if (v == trunc(v) && fabs(v) < 9e18) return smelt_scalar_int(g, (int64_t)v);
  return smelt_scalar(g, v);
}

smelt_node smelt_clamp(smelt_graph *g, smelt_node x, double lo, double hi) {
  if (!sm_arg(g, "clamp", x, "the operand")) return SMELT_INVALID;
  if (isnan(lo) || isnan(hi)) /* NaN everywhere, as PyTorch: max/min propagate it */
    return smelt_minimum(g, smelt_maximum(g, x, literal(g, lo)), literal(g, hi));
  /* min(max(x, lo), hi) with where, so NaN propagates and the gradient
   * passes where lo <= x <= hi; lo > hi gives hi everywhere, as PyTorch. */
  smelt_node l = literal(g, lo), h = literal(g, hi);
  /* a NaN passes its value but no gradient (it is outside lo <= x <= hi) */
  if (sm_is_float((smelt_dtype)sm_get(g, x)->dtype))
    x = smelt_where(g, smelt_ne(g, x, x), smelt_stop_gradient(g, x), x);
  smelt_node t = smelt_where(g, smelt_lt(g, x, l), l, x);
  return smelt_where(g, smelt_gt(g, t, h), h, t);
}

/* ------------------------------------------------------- views */

smelt_node smelt_stack(smelt_graph *g, int n, const smelt_node *xs, int axis) {
  if (!g || g->error) return SMELT_INVALID;
  if (n < 1) return sm_fail(g, "stack: needs at least one tensor");
  if (!xs) return sm_fail(g, "stack: xs is NULL (n = %d)", n);
  if (n > 4096) return sm_fail(g, "stack: %d tensors is too many (at most 4096)", n);
  const sm_node *first = sm_arg(g, "stack", xs[0], "tensor 1");
  if (!first) return SMELT_INVALID;
  int rank = first->rank;
  int64_t shape[SMELT_MAX_RANK];
  memcpy(shape, first->shape, sizeof shape);
  for (int i = 1; i < n; i++) {
    const sm_node *xi = sm_arg(g, "stack", xs[i], "a tensor");
    if (!xi) return SMELT_INVALID;
    if (xi->rank != rank || memcmp(xi->shape, shape, sizeof(int64_t) * (size_t)rank)) {
      char a[200], b[200];
      sm_describe(g, node(g, xs[0]), a, sizeof a);
      sm_describe(g, xi, b, sizeof b);
      return sm_fail(g, "stack: all tensors need the same shape, got %s and %s", a, b);
    }
  }
  int a;
  if (rank >= SMELT_MAX_RANK || !sm_norm_axis(axis, rank + 1, &a))
    return sm_fail(g, "stack: axis %d is out of range for rank %d tensors", axis, rank);
  smelt_node *u = sm_malloc(sizeof(smelt_node) * (size_t)n);
  if (!u) return sm_fail_oom(g, "stack");
  for (int i = 0; i < n; i++) u[i] = smelt_unsqueeze(g, xs[i], a);
  smelt_node r = g->error ? SMELT_INVALID : smelt_concat(g, n, u, a);
  sm_free(u);
  return r;
}

/* ---------------------------------------------------- indexing */

smelt_node smelt_take_along_axis(smelt_graph *g, smelt_node x, smelt_node index, int axis) {
  const sm_node *xn = sm_arg(g, "take_along_axis", x, "the operand");
  const sm_node *in = xn ? sm_arg(g, "take_along_axis", index, "the index") : NULL;
  if (!in) return SMELT_INVALID;
  if (xn->rank != in->rank) {
    char a[200], b[200];
    sm_describe(g, xn, a, sizeof a);
    sm_describe(g, in, b, sizeof b);
    return sm_fail(g, "take_along_axis: the index %s must have the rank of %s", b, a);
  }
  int rank = xn->rank, ax;
  if (!sm_norm_axis(axis, rank, &ax))
    return sm_fail(g, "take_along_axis: axis %d is out of range for rank %d", axis, rank);
  /* Broadcast every dim but axis. */
  int64_t xs[SMELT_MAX_RANK], is[SMELT_MAX_RANK], bs[SMELT_MAX_RANK];
  memcpy(xs, xn->shape, sizeof xs);
  memcpy(is, in->shape, sizeof is);
  xs[ax] = 1, is[ax] = 1;
  int r;
  if (sm_broadcast_shapes(rank, xs, rank, is, &r, bs) >= 0) {
    char a[200], b[200];
    sm_describe(g, xn, a, sizeof a);
    sm_describe(g, in, b, sizeof b);
    return sm_fail(g, "take_along_axis: %s and the index %s do not broadcast outside axis %d", a,
                   b, ax);
  }
  memcpy(xs, bs, sizeof xs);
  memcpy(is, bs, sizeof is);
  xs[ax] = xn->shape[ax];
  is[ax] = in->shape[ax];
  smelt_node xb = smelt_broadcast_to(g, x, rank, xs);
  smelt_node ib = smelt_broadcast_to(g, index, rank, is);
  return smelt_gather(g, xb, ax, ib);
}

smelt_node smelt_index_select(smelt_graph *g, smelt_node x, int axis, smelt_node index) {
  const sm_node *xn = sm_arg(g, "index_select", x, "the operand");
  const sm_node *in = xn ? sm_arg(g, "index_select", index, "the index") : NULL;
  if (!in) return SMELT_INVALID;
  if (in->rank > 1 || !sm_is_int((smelt_dtype)in->dtype)) {
    char b[200];
    sm_describe(g, in, b, sizeof b);
    return sm_fail(g, "index_select: the index %s must be a 1-D i32 or i64 tensor", b);
  }
  int rank = xn->rank, ax;
  if (!sm_norm_axis(axis, rank, &ax))
    return sm_fail(g, "index_select: axis %d is out of range for rank %d", axis, rank);
  int64_t len = in->rank ? in->shape[0] : 1;
  int64_t s1[SMELT_MAX_RANK], s2[SMELT_MAX_RANK];
  for (int i = 0; i < rank; i++) {
    s1[i] = i == ax ? len : 1;
    s2[i] = i == ax ? len : xn->shape[i];
  }
  /* index [len] -> [1,..,len,..,1] -> expanded over the other dims. */
  smelt_node ib = smelt_expand(g, smelt_reshape(g, index, rank, s1), rank, s2);
  return smelt_gather(g, x, ax, ib);
}

smelt_node smelt_embedding(smelt_graph *g, smelt_node weight, smelt_node index) {
  const sm_node *wn = sm_arg(g, "embedding", weight, "the weight");
  const sm_node *in = wn ? sm_arg(g, "embedding", index, "the index") : NULL;
  if (!in) return SMELT_INVALID;
  if (wn->rank != 2) {
    char a[200];
    sm_describe(g, wn, a, sizeof a);
    return sm_fail(g, "embedding: the weight %s must be 2-D [num, dim]", a);
  }
  if (in->rank >= SMELT_MAX_RANK)
    return sm_fail(g, "embedding: the index has rank %d; the result would exceed rank %d",
                   in->rank, SMELT_MAX_RANK);
  if (!sm_is_int((smelt_dtype)in->dtype)) {
    char b[200];
    sm_describe(g, in, b, sizeof b);
    return sm_fail(g, "embedding: the index %s must be i32 or i64", b);
  }
  int64_t shape[SMELT_MAX_RANK];
  int rank = in->rank;
  memcpy(shape, in->shape, sizeof(int64_t) * (size_t)rank);
  shape[rank] = wn->shape[1];
  int64_t n = sm_numel(in->rank, in->shape);
  smelt_node flat = smelt_reshape(g, index, 1, &n);
  smelt_node rows = smelt_index_select(g, weight, 0, flat);
  return smelt_reshape(g, rows, rank + 1, shape);
}

smelt_node smelt_one_hot(smelt_graph *g, smelt_node index, int64_t num_classes) {
  const sm_node *in = sm_arg(g, "one_hot", index, "the index");
  if (!in) return SMELT_INVALID;
  if (!sm_is_int((smelt_dtype)in->dtype)) {
    char a[200];
    sm_describe(g, in, a, sizeof a);
    return sm_fail(g, "one_hot: the index must be i32 or i64, got %s", a);
  }
  if (num_classes < 1)
    return sm_fail(g, "one_hot: num_classes %" PRId64 " must be positive", num_classes);
  if (in->rank >= SMELT_MAX_RANK)
    return sm_fail(g, "one_hot: the index has rank %d; the result would exceed rank %d", in->rank,
                   SMELT_MAX_RANK);
  /* Picking the index out of iota(C) makes an out-of-range class a
   * run-time error (as PyTorch) at O(N) cost; then compare with iota(C). */
  int rank = in->rank;
  int64_t shape[SMELT_MAX_RANK];
  memcpy(shape, in->shape, sizeof(int64_t) * (size_t)rank);
  shape[rank] = num_classes;
  if (!shape_fits(g, "one_hot", rank + 1, shape)) return SMELT_INVALID;
  int64_t n = sm_numel(rank, in->shape);
  smelt_node classes = sm_iota(g, SMELT_I64, 1, &num_classes, 0, 0, 1);
  smelt_node flat = smelt_reshape(g, index, 1, &n);
  smelt_node checked = smelt_index_select(g, classes, 0, flat);
  smelt_node hot = smelt_eq(g, smelt_unsqueeze(g, checked, -1), classes);
  return smelt_reshape(g, smelt_cast(g, hot, SMELT_I64), rank + 1, shape);
}

/* ------------------------------------------------------------- nn */

/* True when axis is an axis of x of size 0: softmax over it is the empty
 * tensor itself (as PyTorch), while its max would have no identity. */
static bool empty_axis(const smelt_graph *g, smelt_node x, int axis) {
  const sm_node *n = sm_get(g, x);
  int a;
  return n && sm_norm_axis(axis, n->rank, &a) && n->shape[a] == 0;
}

smelt_node smelt_softmax(smelt_graph *g, smelt_node x, int axis) {
  if (BAD(need_float(g, "softmax", x)) || !check_axes(g, "softmax", x, 1, &axis)) return SMELT_INVALID;
  if (empty_axis(g, x, axis)) return x;
  smelt_node m = smelt_stop_gradient(g, smelt_max(g, x, 1, &axis, true));
  smelt_node e = smelt_exp(g, smelt_sub(g, x, m));
  return smelt_div(g, e, smelt_sum(g, e, 1, &axis, true));
}

smelt_node smelt_log_softmax(smelt_graph *g, smelt_node x, int axis) {
  if (BAD(need_float(g, "log_softmax", x)) || !check_axes(g, "log_softmax", x, 1, &axis)) return SMELT_INVALID;
  if (empty_axis(g, x, axis)) return x;
  smelt_node m = smelt_stop_gradient(g, smelt_max(g, x, 1, &axis, true));
  smelt_node d = smelt_sub(g, x, m);
  smelt_node lse = smelt_log(g, smelt_sum(g, smelt_exp(g, d), 1, &axis, true));
  return smelt_sub(g, d, lse);
}

smelt_node smelt_cross_entropy(smelt_graph *g, smelt_node logits, smelt_node labels) {
  const sm_node *ln = sm_arg(g, "cross_entropy", logits, "the logits");
  const sm_node *yn = ln ? sm_arg(g, "cross_entropy", labels, "the labels") : NULL;
  if (!yn) return SMELT_INVALID;
  bool batched = ln->rank == 2;
  const char *problem = NULL;
  if (!sm_is_float((smelt_dtype)ln->dtype)) problem = "the logits must be float";
  else if (!sm_is_int((smelt_dtype)yn->dtype)) problem = "the labels must be i32 or i64 class indices";
  else if (!(ln->rank == 2 && yn->rank == 1 && yn->shape[0] == ln->shape[0]) &&
           !(ln->rank == 1 && yn->rank == 0))
    problem = "logits and labels need shapes [N,C] and [N] (or [C] and [])";
  if (problem) {
    char a[200], b[200];
    sm_describe(g, ln, a, sizeof a);
    sm_describe(g, yn, b, sizeof b);
    return sm_fail(g, "cross_entropy: %s (logits %s, labels %s)", problem, a, b);
  }
  smelt_node lp = smelt_log_softmax(g, logits, -1);
  smelt_node idx = smelt_unsqueeze(g, labels, -1); /* [N,1] or [1] */
  smelt_node picked = smelt_gather(g, lp, batched ? 1 : 0, idx);
  return smelt_neg(g, smelt_mean(g, picked, 0, NULL, false));
}

smelt_node smelt_mse_loss(smelt_graph *g, smelt_node a, smelt_node b) {
  /* PyTorch broadcasts the operands to one shape before it subtracts, so a
   * rank-0 operand promotes as a ranked tensor: mse_loss(f64[], f32[3])
   * is f64. (Incompatible shapes are reported by sub.) */
  const sm_node *an = sm_arg(g, "mse_loss", a, "operand 1");
  const sm_node *bn = an ? sm_arg(g, "mse_loss", b, "operand 2") : NULL;
  if (!bn) return SMELT_INVALID;
  int rank;
  int64_t shape[SMELT_MAX_RANK];
  if (sm_broadcast_shapes(an->rank, an->shape, bn->rank, bn->shape, &rank, shape) < 0) {
    a = smelt_broadcast_to(g, a, rank, shape);
    b = smelt_broadcast_to(g, b, rank, shape);
  }
  smelt_node d = smelt_sub(g, a, b);
  if (BAD(d)) return d;
  if (BAD(need_float(g, "mse_loss", d))) return SMELT_INVALID;
  return smelt_mean(g, smelt_mul(g, d, d), 0, NULL, false);
}

smelt_node smelt_dropout(smelt_graph *g, smelt_node x, double p, uint64_t seed, bool training) {
  if (BAD(need_float(g, "dropout", x))) return SMELT_INVALID;
  if (!(p >= 0 && p <= 1)) return sm_fail(g, "dropout: p = %g must be in [0, 1]", p);
  if (!training || p == 0) return x;
  const sm_node *xn = node(g, x);
  smelt_dtype dt = (smelt_dtype)xn->dtype;
  int rank = xn->rank;
  int64_t shape[SMELT_MAX_RANK];
  memcpy(shape, xn->shape, sizeof shape);
  smelt_node dropped;
  if (p == 1) {
    dropped = smelt_mul(g, x, smelt_scalar(g, 0.0));
  } else {
    /* keep where u >= p: probability 1 - p */
    smelt_node keep = smelt_ge(g, smelt_rand(g, dt, rank, shape, seed), smelt_scalar(g, p));
    smelt_node scaled = smelt_mul(g, x, smelt_scalar(g, 1.0 / (1.0 - p)));
    dropped = smelt_where(g, keep, scaled, smelt_scalar(g, 0.0));
  }
  /* active only when the program trains: evaluation programs see x */
  return smelt_where(g, sm_training(g), dropped, x);
}
