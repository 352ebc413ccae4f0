/* Split sums: a float reduce_sum over R > SM_SUM_BLOCK elements per output
 * slot becomes the stages of its blocked summation order (internal.h,
 * docs/ops.md "Summation order"), so that compiled targets sum in the
 * interpreter's order and still run in parallel over the blocks:
 *
 *   x [pre..., reduced..., post...]: the reduced axes are merged into one
 *     axis of R where the last of them is (pre: the kept axes before it,
 *     post: those after it; a permute only when they are not adjacent),
 *     so a contiguous kept axis after them stays the kernels' inner axis:
 *     [pre..., R, post...]                                      (views)
 *   the F = R / 4096 full blocks: slice [F*4096] of the axis, reshape
 *     [pre..., F, 64, 64*P] (P = numel(post): the lanes merged with the
 *     post axes), cast to f64, reduce_sum over the 64 rows, reshaped to
 *     [pre..., F*64, post...]
 *   the tail of t = R % 4096 elements (when t > 0): slice it, pad it with
 *     zeros to q whole rows of 64, reshape [pre..., q, 64, post...], cast,
 *     reduce_sum over the q rows: [pre..., 64, post...]
 *   the partials: concat of the two, [pre..., nb*64, post...] f64
 *   while nb*64 > 4096: the same split on the partials
 *   final: reduce_sum of the axis in f64, reshape to the original result
 *     shape, cast to the original dtype.
 *
 * Each stage sums at most 64 rows (or the final <= 4096 partials) in order
 * from +0.0 in f64, so the interpreter computes the same bits on the split
 * graph as on the original one, and the padding zeros (added to
 * accumulators that start at +0.0 and never hold -0.0) change nothing. The
 * full blocks are read without a mask (a masked load selects its address
 * per element, which does not vectorize as a plain load); only the small
 * tail is padded. The first stage is one kernel that reads x once, in
 * parallel over [pre..., F], with the 64 lanes (times the post axes) as
 * its inner loop, so rows of x are read in order. The stages add 3 dims;
 * when that exceeds SMELT_MAX_RANK the pre and the post axes are merged.
 * Integer sums are exact (they wrap) and are left alone. */
#include "passes.h"

#include <string.h>

/* The kept dims around the reduced axis: x is [pre..., len, post...]. */
typedef struct layout {
  int npre, npost;
  int64_t pre[SMELT_MAX_RANK], post[SMELT_MAX_RANK];
} layout;

/* [pre..., mid..., post...] into sh; returns the rank. */
static int shape_of(const layout *L, int nmid, const int64_t *mid, int64_t *sh) {
  int r = 0;
  for (int i = 0; i < L->npre; i++) sh[r++] = L->pre[i];
  for (int i = 0; i < nmid; i++) sh[r++] = mid[i];
  for (int i = 0; i < L->npost; i++) sh[r++] = L->post[i];
  return r;
}

/* Slice [lo, hi) of the reduced axis of x [pre..., len, post...]. */
static smelt_node slice_len(smelt_graph *g, smelt_node x, const layout *L, int64_t len,
                            int64_t lo, int64_t hi) {
  int64_t start[SMELT_MAX_RANK] = {0}, stop[SMELT_MAX_RANK], step[SMELT_MAX_RANK];
  int rank = shape_of(L, 1, &len, stop);
  for (int d = 0; d < rank; d++) step[d] = 1;
  start[L->npre] = lo, stop[L->npre] = hi;
  return smelt_slice(g, x, start, stop, step);
}

/* x [pre..., len, post...] of a float dtype -> its partials
 * [pre..., nb*64, post...] f64 (nb = ceil(len / 4096)). */
static smelt_node stage(smelt_graph *g, smelt_node x, const layout *L, int64_t len) {
  const int64_t B = SM_SUM_BLOCK, C = SM_SUM_LANES;
  int64_t full = len / B, tail = len % B, sh[SMELT_MAX_RANK];
  int p = L->npre, rank;
  smelt_node parts[2];
  int np = 0;
  /* the full blocks: [pre..., full, 64 rows, 64 lanes * post...], the
   * lanes merged with the post axes (both contiguous in x, when it is):
   * one inner loop over them, and consecutive rows of x read in order */
  smelt_node v = tail ? slice_len(g, x, L, len, 0, full * B) : x;
  layout M = *L;
  M.npost = 0;
  rank = shape_of(&M, 3, (const int64_t[]){full, C, C * sm_numel(L->npost, L->post)}, sh);
  v = smelt_cast(g, smelt_reshape(g, v, rank, sh), SMELT_F64);
  v = sm_reduce(g, OP_REDUCE_SUM, v, 1, (const int[]){p + 1});
  rank = shape_of(L, 1, (const int64_t[]){full * C}, sh);
  parts[np++] = smelt_reshape(g, v, rank, sh);
  /* the tail: whole rows of 64, zeros after its end (the lanes are not
   * merged with post here: a reshape of a padded view is a view stack) */
  if (tail) {
    int64_t rows = (tail + C - 1) / C;
    v = slice_len(g, x, L, len, full * B, len);
    if (rows * C != tail) {
      int64_t lo[SMELT_MAX_RANK] = {0}, hi[SMELT_MAX_RANK] = {0};
      hi[p] = rows * C - tail;
      v = smelt_pad(g, v, lo, hi, 0.0);
    }
    rank = shape_of(L, 2, (const int64_t[]){rows, C}, sh);
    v = smelt_cast(g, smelt_reshape(g, v, rank, sh), SMELT_F64);
    v = sm_reduce(g, OP_REDUCE_SUM, v, 1, (const int[]){p});
    rank = shape_of(L, 1, (const int64_t[]){C}, sh);
    parts[np++] = smelt_reshape(g, v, rank, sh);
  }
  return np == 1 ? parts[0] : smelt_concat(g, np, parts, p);
}

/* The number of elements per output slot of a reduction of x (op, dtype,
 * result shape, reduced axes) when it is a sum to split, else 0 (not a
 * float sum, at most SM_SUM_BLOCK elements, or an empty result). */
static int64_t split_len(const sm_node *x, sm_op op, smelt_dtype dt, int rank,
                         const int64_t *shape, int niattr, const int64_t *axes) {
  if (op != OP_REDUCE_SUM || !sm_is_float(dt) || sm_numel(rank, shape) == 0) return 0;
  int64_t len = 1;
  for (int j = 0; j < niattr; j++) len *= x->shape[axes[j]];
  return len > SM_SUM_BLOCK ? len : 0;
}

bool sm_split_sums_wanted(const smelt_graph *g) {
  for (size_t i = 0; i < g->nnodes; i++) {
    const sm_node *n = &g->nodes[i];
    if (n->op == OP_REDUCE_SUM &&
        split_len(&g->nodes[n->inputs[0]], (sm_op)n->op, (smelt_dtype)n->dtype, n->rank,
                  n->shape, (int)n->niattr, n->iattr))
      return true;
  }
  return false;
}

static smelt_node split_rule(smelt_graph *g, const sm_node_desc *d, void *ctx) {
  (void)ctx;
  if (d->op != OP_REDUCE_SUM) return SMELT_INVALID;
  const sm_node *x = &g->nodes[d->inputs[0]];
  int64_t len = split_len(x, d->op, d->dtype, d->rank, d->shape, d->niattr, d->iattr);
  if (!len) return SMELT_INVALID;
  /* The reduced axes are merged where the last of them is: the kept axes
   * before it are pre, those after it post (a permute only when the
   * reduced axes are not adjacent), so a contiguous post axis stays the
   * kernels' contiguous inner axis. */
  int rank = x->rank, last = d->iattr[d->niattr - 1], k = 0;
  int perm[SMELT_MAX_RANK];
  bool red[SMELT_MAX_RANK] = {false};
  layout L = {0};
  for (int j = 0; j < d->niattr; j++) red[d->iattr[j]] = true;
  for (int a = 0; a < last; a++)
    if (!red[a]) L.pre[L.npre++] = x->shape[a], perm[k++] = a;
  for (int a = 0; a <= last; a++)
    if (red[a]) perm[k++] = a;
  for (int a = last + 1; a < rank; a++) L.post[L.npost++] = x->shape[a], perm[k++] = a;
  smelt_node v = sm_handle(g, d->inputs[0]);
  bool moved = false;
  for (int a = 0; a < rank; a++) moved = moved || perm[a] != a;
  if (moved) v = smelt_permute(g, v, perm);
  /* the stages add 3 dims: merge pre and post when that is too many */
  if (L.npre + L.npost + 3 > SMELT_MAX_RANK) {
    L.pre[0] = sm_numel(L.npre, L.pre), L.npre = L.npre ? 1 : 0;
    L.post[0] = sm_numel(L.npost, L.post), L.npost = L.npost ? 1 : 0;
  }
  int64_t sh[SMELT_MAX_RANK];
  int r = shape_of(&L, 1, &len, sh);
  v = smelt_reshape(g, v, r, sh);
  while (len > SM_SUM_BLOCK) {
    v = stage(g, v, &L, len);
    len = (len + SM_SUM_BLOCK - 1) / SM_SUM_BLOCK * SM_SUM_LANES;
  }
  v = sm_reduce(g, OP_REDUCE_SUM, v, 1, (const int[]){L.npre});
  v = smelt_reshape(g, v, d->rank, d->shape);
  return smelt_cast(g, v, d->dtype);
}

smelt_graph *sm_pass_split_sums(const smelt_graph *src, size_t nroots, const uint32_t *roots,
                                uint32_t *map) {
  return sm_rewrite_pass(src, nroots, roots, split_rule, NULL, map);
}
