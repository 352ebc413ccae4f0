/* Convolution, pooling and batch normalization as composites (PyTorch's
 * torch.nn.functional semantics). Windows are views: pad, then unfold the
 * height and the width (docs/ops.md, "Convolution and pooling"), so a
 * convolution is im2col without a copy until its matmul reads the columns,
 * pooling is a reduction over the window axes, and every gradient comes
 * from the primitives' rules (unfold's sums the overlapping windows). */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#define BAD(n) (!smelt_node_valid(n))

static const sm_node *node(const smelt_graph *g, smelt_node n) { return sm_get(g, n); }

/* A window over the last two axes: kernel, stride, padding, dilation per
 * axis, the output size, and the padding added on the right beyond
 * `padding` so that ceil_mode's last window fits. */
typedef struct win2d {
  int64_t k[2], s[2], p[2], d[2];
  int64_t out[2], extra[2];
} win2d;

static const char *const axis_name[2] = {"height", "width"};

/* Checks x (float, [N, C, H, W] or [C, H, W]) and returns it as 4-D;
 * *unbatched says whether an axis was added. */
static smelt_node as_batched(smelt_graph *g, const char *op, smelt_node x, bool *unbatched) {
  const sm_node *n = sm_arg(g, op, x, "the input");
  if (!n) return SMELT_INVALID;
  char d[200];
  if (n->rank != 3 && n->rank != 4) {
    sm_describe(g, n, d, sizeof d);
    return sm_fail(g, "%s: the input must be [N, C, H, W] or [C, H, W], got %s", op, d);
  }
  if (!sm_is_float((smelt_dtype)n->dtype)) {
    sm_describe(g, n, d, sizeof d);
    return sm_fail(g, "%s: needs a float input, got %s (cast it first)", op, d);
  }
  *unbatched = n->rank == 3;
  return *unbatched ? smelt_unsqueeze(g, x, 0) : x;
}

/* Fills w from the arguments and the input's height and width; NULL pairs
 * take the defaults: stride 1 for a convolution, the kernel for pooling
 * (pool), padding 0, dilation 1. 0, or -1 with the error recorded. */
static int plan(smelt_graph *g, const char *op, const int64_t in[2], const int64_t kernel[2],
                const int64_t stride[2], const int64_t padding[2], const int64_t dilation[2],
                bool pool, bool ceil_mode, win2d *w) {
  for (int i = 0; i < 2; i++) {
    w->k[i] = kernel[i];
    w->s[i] = stride ? stride[i] : pool ? kernel[i] : 1;
    w->p[i] = padding ? padding[i] : 0;
    w->d[i] = dilation ? dilation[i] : 1;
    if (w->k[i] < 1)
      return sm_fail(g, "%s: kernel %s %" PRId64 " must be at least 1", op, axis_name[i], w->k[i]),
             -1;
    if (w->s[i] < 1)
      return sm_fail(g, "%s: stride %" PRId64 " (%s) must be at least 1", op, w->s[i],
                     axis_name[i]),
             -1;
    if (w->p[i] < 0)
      return sm_fail(g, "%s: padding %" PRId64 " (%s) is negative", op, w->p[i], axis_name[i]), -1;
    if (w->d[i] < 1)
      return sm_fail(g, "%s: dilation %" PRId64 " (%s) must be at least 1", op, w->d[i],
                     axis_name[i]),
             -1;
    if (w->k[i] > INT32_MAX || w->s[i] > INT32_MAX || w->p[i] > INT32_MAX || w->d[i] > INT32_MAX)
      return sm_fail(g, "%s: the window's %s sizes are too large", op, axis_name[i]), -1;
    int64_t span = w->d[i] * (w->k[i] - 1) + 1, padded = in[i] + 2 * w->p[i];
    if (padded < span)
      return sm_fail(g,
                     "%s: the window (%" PRId64 " with dilation %" PRId64 ") is larger than the "
                     "padded input's %s (%" PRId64 ")",
                     op, w->k[i], w->d[i], axis_name[i], padded),
             -1;
    int64_t room = padded - span;
    w->out[i] = (ceil_mode ? (room + w->s[i] - 1) / w->s[i] : room / w->s[i]) + 1;
    /* as PyTorch: the last window must start inside the input or the left
     * padding */
    if (ceil_mode && (w->out[i] - 1) * w->s[i] >= in[i] + w->p[i]) w->out[i]--;
    int64_t need = (w->out[i] - 1) * w->s[i] + span - padded;
    w->extra[i] = need > 0 ? need : 0;
  }
  return 0;
}

/* The windows of x [N, C, H, W] as a view [N, C, OH, OW, KH, KW]: padded
 * with fill, unfolded along the height, then the width; dilation keeps
 * every d-th element of each window. */
static smelt_node windows(smelt_graph *g, smelt_node x, const win2d *w, double fill) {
  int64_t lo[4] = {0, 0, w->p[0], w->p[1]};
  int64_t hi[4] = {0, 0, w->p[0] + w->extra[0], w->p[1] + w->extra[1]};
  if (lo[2] || lo[3] || hi[2] || hi[3]) x = smelt_pad(g, x, lo, hi, fill);
  for (int i = 0; i < 2; i++) {
    int64_t span = w->d[i] * (w->k[i] - 1) + 1;
    x = smelt_unfold(g, x, 2 + i, span, w->s[i]);
    if (w->d[i] > 1) x = smelt_slice_axis(g, x, -1, 0, SMELT_END, w->d[i]);
  }
  return x;
}

/* The height and width of a 4-D node. */
static void spatial(const smelt_graph *g, smelt_node x, int64_t hw[2]) {
  const sm_node *n = node(g, x);
  hw[0] = n->shape[2], hw[1] = n->shape[3];
}

static smelt_node finish(smelt_graph *g, smelt_node y, bool unbatched) {
  return unbatched && !BAD(y) ? smelt_squeeze(g, y, 1, (const int[]){0}) : y;
}

/* ----------------------------------------------------------- conv2d */

smelt_node smelt_conv2d(smelt_graph *g, smelt_node x, smelt_node weight, smelt_node bias,
                        const int64_t stride[2], const int64_t padding[2],
                        const int64_t dilation[2], int64_t groups) {
  const char *op = "conv2d";
  bool unbatched = false;
  x = as_batched(g, op, x, &unbatched);
  if (BAD(x)) return x;
  const sm_node *wn = sm_arg(g, op, weight, "the weight");
  if (!wn) return SMELT_INVALID;
  const sm_node *xn = node(g, x);
  smelt_dtype dt = (smelt_dtype)xn->dtype;
  int64_t n = xn->shape[0], c = xn->shape[1], hw[2] = {xn->shape[2], xn->shape[3]};
  char d[200];
  if (wn->rank != 4 || wn->dtype != dt) {
    sm_describe(g, wn, d, sizeof d);
    return sm_fail(g, "%s: the weight must be [out_channels, in_channels / groups, KH, KW] of "
                      "the input's dtype %s, got %s",
                   op, smelt_dtype_name(dt), d);
  }
  int64_t o = wn->shape[0], cg = wn->shape[1], kernel[2] = {wn->shape[2], wn->shape[3]};
  if (groups < 1) return sm_fail(g, "%s: groups %" PRId64 " must be at least 1", op, groups);
  if (c % groups || o % groups)
    return sm_fail(g,
                   "%s: groups %" PRId64 " must divide the input channels (%" PRId64
                   ") and the output channels (%" PRId64 ")",
                   op, groups, c, o);
  if (cg * groups != c) {
    sm_describe(g, wn, d, sizeof d);
    return sm_fail(g,
                   "%s: the weight %s has %" PRId64 " input channels per group; the input has %" PRId64
                   " channels in %" PRId64 " groups (%" PRId64 " each)",
                   op, d, cg, c, groups, c / groups);
  }
  if (smelt_node_valid(bias)) {
    const sm_node *bn = sm_arg(g, op, bias, "the bias");
    if (!bn) return SMELT_INVALID;
    if (bn->rank != 1 || bn->shape[0] != o || bn->dtype != dt) {
      sm_describe(g, bn, d, sizeof d);
      return sm_fail(g, "%s: the bias must be %s[%" PRId64 "], got %s", op,
                     smelt_dtype_name(dt), o, d);
    }
  }
  win2d w;
  if (plan(g, op, hw, kernel, stride, padding, dilation, false, false, &w)) return SMELT_INVALID;
  int64_t kk = cg * kernel[0] * kernel[1], ohw = w.out[0] * w.out[1];
  /* columns [N, G, Cg*KH*KW, OH*OW]: one matmul per image and group with
   * the weight [G, O/G, Cg*KH*KW], whose result is NCHW already */
  smelt_node cols = windows(g, x, &w, 0.0);
  cols = smelt_permute(g, cols, (const int[]){0, 1, 4, 5, 2, 3});
  cols = smelt_reshape(g, cols, 4, (const int64_t[]){n, groups, kk, ohw});
  smelt_node wm = smelt_reshape(g, weight, 3, (const int64_t[]){groups, o / groups, kk});
  smelt_node y = smelt_matmul(g, wm, cols);
  y = smelt_reshape(g, y, 4, (const int64_t[]){n, o, w.out[0], w.out[1]});
  if (smelt_node_valid(bias))
    y = smelt_add(g, y, smelt_reshape(g, bias, 3, (const int64_t[]){o, 1, 1}));
  return finish(g, y, unbatched);
}

/* ---------------------------------------------------------- pooling */

/* PyTorch's limit on pooling padding: at most half the (dilated) window. */
static int check_pool_padding(smelt_graph *g, const char *op, const win2d *w) {
  for (int i = 0; i < 2; i++) {
    int64_t span = w->d[i] * (w->k[i] - 1) + 1;
    if (w->p[i] > span / 2)
      return sm_fail(g,
                     "%s: padding %" PRId64 " (%s) must be at most half the window (%" PRId64
                     " with dilation %" PRId64 ")",
                     op, w->p[i], axis_name[i], w->k[i], w->d[i]),
             -1;
  }
  return 0;
}

/* The checks and the window plan every pooling op starts with: x as 4-D
 * (SMELT_INVALID on an error, recorded). */
static smelt_node pool_setup(smelt_graph *g, const char *op, smelt_node x,
                             const int64_t kernel[2], const int64_t stride[2],
                             const int64_t padding[2], const int64_t dilation[2], bool ceil_mode,
                             win2d *w, bool *unbatched) {
  if (!kernel) return sm_fail(g, "%s: the kernel size is required", op);
  x = as_batched(g, op, x, unbatched);
  if (BAD(x)) return x;
  int64_t hw[2];
  spatial(g, x, hw);
  if (plan(g, op, hw, kernel, stride, padding, dilation, true, ceil_mode, w) ||
      check_pool_padding(g, op, w))
    return SMELT_INVALID;
  return x;
}

smelt_node smelt_max_pool2d(smelt_graph *g, smelt_node x, const int64_t kernel[2],
                            const int64_t stride[2], const int64_t padding[2],
                            const int64_t dilation[2], bool ceil_mode) {
  const char *op = "max_pool2d";
  bool unbatched = false;
  win2d w;
  x = pool_setup(g, op, x, kernel, stride, padding, dilation, ceil_mode, &w, &unbatched);
  if (BAD(x)) return x;
  const sm_node *xn = node(g, x);
  int64_t shape[5] = {xn->shape[0], xn->shape[1], w.out[0], w.out[1], w.k[0] * w.k[1]};
  /* padding never wins: -inf; the values are gathered at the first
   * maximum, so the gradient goes there (smelt_max_dim) */
  smelt_node win = smelt_reshape(g, windows(g, x, &w, -INFINITY), 5, shape);
  smelt_node y = SMELT_INVALID;
  smelt_max_dim(g, win, -1, false, &y, NULL);
  return finish(g, y, unbatched);
}

/* avg_pool2d's divisor along axis a at output position i, as PyTorch: the
 * window's length clipped to the padded input (count_include_pad) or to
 * the input itself. The divisor of position (i, j) is the product of the
 * two axes' (each window is a rectangle). */
static int64_t window_length(const win2d *w, int a, int64_t size, int64_t i, bool include_pad) {
  int64_t start = i * w->s[a] - w->p[a];
  int64_t end = start + w->k[a];
  if (include_pad) return (end < size + w->p[a] ? end : size + w->p[a]) - start;
  return (end < size ? end : size) - (start > 0 ? start : 0);
}

/* The divisors along axis a as a node of shape [out] (i64), computed in the
 * graph from an arange, so that no table as large as the output is built
 * in memory (a hostile shape costs nothing); a scalar when every window
 * has the same length. The length is non-increasing in i (include_pad) or
 * concave in i with maximum k (else), so the two ends decide that. */
static smelt_node axis_divisors(smelt_graph *g, const win2d *w, int a, int64_t size,
                                bool include_pad) {
  int64_t n = w->out[a];
  int64_t first = window_length(w, a, size, 0, include_pad);
  int64_t last = window_length(w, a, size, n > 0 ? n - 1 : 0, include_pad);
  if (n <= 1 || (first == last && (include_pad || first == w->k[a])))
    return smelt_const(g, SMELT_I64, (double)first);
  smelt_node start = smelt_sub(g,
                               smelt_mul(g, smelt_arange(g, SMELT_I64, 0, (double)n, 1),
                                         smelt_const(g, SMELT_I64, (double)w->s[a])),
                               smelt_const(g, SMELT_I64, (double)w->p[a]));
  smelt_node end = smelt_add(g, start, smelt_const(g, SMELT_I64, (double)w->k[a]));
  if (include_pad)
    return smelt_sub(
        g, smelt_minimum(g, end, smelt_const(g, SMELT_I64, (double)(size + w->p[a]))), start);
  return smelt_sub(g, smelt_minimum(g, end, smelt_const(g, SMELT_I64, (double)size)),
                   smelt_maximum(g, start, smelt_const(g, SMELT_I64, 0)));
}

smelt_node smelt_avg_pool2d(smelt_graph *g, smelt_node x, const int64_t kernel[2],
                            const int64_t stride[2], const int64_t padding[2], bool ceil_mode,
                            bool count_include_pad) {
  const char *op = "avg_pool2d";
  bool unbatched = false;
  win2d w;
  x = pool_setup(g, op, x, kernel, stride, padding, NULL, ceil_mode, &w, &unbatched);
  if (BAD(x)) return x;
  int64_t hw[2];
  spatial(g, x, hw);
  smelt_dtype dt = (smelt_dtype)node(g, x)->dtype;
  smelt_node sum = smelt_sum(g, windows(g, x, &w, 0.0), 2, (const int[]){4, 5}, false);
  /* rows [out0, 1] times columns [out1]: the divisor of every position,
   * exact integers (a window holds far fewer than 2^53 elements) */
  smelt_node rows = axis_divisors(g, &w, 0, hw[0], count_include_pad);
  smelt_node cols = axis_divisors(g, &w, 1, hw[1], count_include_pad);
  if (node(g, rows) && node(g, rows)->rank == 1)
    rows = smelt_reshape(g, rows, 2, (const int64_t[]){w.out[0], 1});
  smelt_node divisor = smelt_cast(g, smelt_mul(g, rows, cols), dt);
  return finish(g, smelt_div(g, sum, divisor), unbatched);
}

/* ------------------------------------------------------- batch_norm */

smelt_node smelt_batch_norm(smelt_graph *g, smelt_node x, smelt_node weight, smelt_node bias,
                            smelt_node running_mean, smelt_node running_var, bool training,
                            double momentum, double eps, smelt_node updates[2]) {
  const char *op = "batch_norm";
  if (updates) updates[0] = updates[1] = SMELT_INVALID;
  const sm_node *xn = sm_arg(g, op, x, "the input");
  if (!xn) return SMELT_INVALID;
  char d[200];
  if (xn->rank < 2 || !sm_is_float((smelt_dtype)xn->dtype)) {
    sm_describe(g, xn, d, sizeof d);
    return sm_fail(g, "%s: the input must be a float tensor [N, C, ...], got %s", op, d);
  }
  smelt_dtype dt = (smelt_dtype)xn->dtype;
  int rank = xn->rank;
  int64_t c = xn->shape[1], per_channel = sm_numel(rank, xn->shape) / (c ? c : 1);
  bool have_running = smelt_node_valid(running_mean) || smelt_node_valid(running_var);
  if (have_running && !(smelt_node_valid(running_mean) && smelt_node_valid(running_var)))
    return sm_fail(g, "%s: give both running_mean and running_var, or neither", op);
  if (!training && !have_running)
    return sm_fail(g, "%s: without training, running_mean and running_var are needed", op);
  if (!(eps > 0) || !isfinite(eps)) return sm_fail(g, "%s: eps = %g must be positive", op, eps);
  if (!(momentum >= 0 && momentum <= 1))
    return sm_fail(g, "%s: momentum = %g must be in [0, 1]", op, momentum);
  if (training && per_channel <= 1)
    return sm_fail(g, "%s: training needs more than one value per channel (input %s)", op,
                   (sm_describe(g, xn, d, sizeof d), d));
  const smelt_node opt[4] = {weight, bias, running_mean, running_var};
  static const char *const opt_name[4] = {"weight", "bias", "running_mean", "running_var"};
  for (int i = 0; i < 4; i++) {
    if (!smelt_node_valid(opt[i])) continue;
    const sm_node *p = sm_arg(g, op, opt[i], opt_name[i]);
    if (!p) return SMELT_INVALID;
    if (p->rank != 1 || p->shape[0] != c || p->dtype != dt) {
      sm_describe(g, p, d, sizeof d);
      return sm_fail(g, "%s: %s must be %s[%" PRId64 "] (one per channel), got %s", op,
                     opt_name[i], smelt_dtype_name(dt), c, d);
    }
  }
  /* statistics over every axis but the channels', broadcast as [C, 1...] */
  int axes[SMELT_MAX_RANK], naxes = 0;
  for (int i = 0; i < rank; i++)
    if (i != 1) axes[naxes++] = i;
  int64_t bshape[SMELT_MAX_RANK];
  for (int i = 0; i < rank - 1; i++) bshape[i] = i == 0 ? c : 1;
  smelt_node eps_n = smelt_scalar(g, eps);
  smelt_node y = SMELT_INVALID, mean = SMELT_INVALID;
  if (training) {
    mean = smelt_mean(g, x, naxes, axes, true);
    smelt_node var = smelt_var(g, x, naxes, axes, 0, true);
    y = smelt_mul(g, smelt_sub(g, x, mean), smelt_rsqrt(g, smelt_add(g, var, eps_n)));
  }
  if (have_running) {
    smelt_node rm = smelt_reshape(g, running_mean, rank - 1, bshape);
    smelt_node rv = smelt_reshape(g, running_var, rank - 1, bshape);
    smelt_node yr = smelt_mul(g, smelt_sub(g, x, rm), smelt_rsqrt(g, smelt_add(g, rv, eps_n)));
    /* evaluation programs use the running statistics (module.eval()) */
    y = training ? smelt_where(g, sm_training(g), y, yr) : yr;
  }
  if (smelt_node_valid(weight)) y = smelt_mul(g, y, smelt_reshape(g, weight, rank - 1, bshape));
  if (smelt_node_valid(bias)) y = smelt_add(g, y, smelt_reshape(g, bias, rank - 1, bshape));
  if (BAD(y)) return y;
  if (updates && training && have_running) {
    /* running = (1 - momentum) running + momentum batch; the variance
     * unbiased, as PyTorch; the statistics are values, not gradients */
    smelt_node bm = smelt_stop_gradient(g, smelt_reshape(g, mean, 1, &c));
    smelt_node bv = smelt_stop_gradient(
        g, smelt_reshape(g, smelt_var(g, x, naxes, axes, 1, true), 1, &c));
    smelt_node keep = smelt_scalar(g, 1.0 - momentum), take = smelt_scalar(g, momentum);
    updates[0] = smelt_assign(
        g, running_mean, smelt_add(g, smelt_mul(g, running_mean, keep), smelt_mul(g, bm, take)));
    updates[1] = smelt_assign(
        g, running_var, smelt_add(g, smelt_mul(g, running_var, keep), smelt_mul(g, bv, take)));
    if (BAD(updates[0]) || BAD(updates[1])) {
      updates[0] = updates[1] = SMELT_INVALID;
      return SMELT_INVALID;
    }
  }
  return y;
}
