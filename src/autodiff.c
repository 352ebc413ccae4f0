/* Reverse-mode autodiff as graph rewriting: the backward graph is built
 * from the gradient table (src/vjp.c) into the same graph, as ordinary
 * nodes. Walking node indices downwards from y visits every consumer of a
 * node before the node itself (inputs always have smaller indices), so each
 * node's gradient is complete when its rule runs. */
#include "vjp.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void describe(const smelt_graph *g, const sm_node *n, char *out, size_t len) {
  sm_buf b = {0};
  sm_buf_describe(&b, g, n);
  snprintf(out, len, "%s", b.data && !b.oom ? b.data : "?");
  sm_buf_free(&b);
}

/* Gradient for a wrt that y does not depend on: zeros of its shape. */
static smelt_node zeros_like(smelt_graph *g, uint32_t i) {
  const sm_node *n = &g->nodes[i];
  int64_t shape[SMELT_MAX_RANK];
  memcpy(shape, n->shape, sizeof shape);
  return smelt_zeros(g, (smelt_dtype)n->dtype, n->rank, shape);
}

static int fail_all(int n, smelt_node *out) {
  for (int i = 0; i < n; i++) out[i] = SMELT_INVALID;
  return -1;
}

static int vjp(smelt_graph *g, smelt_node y, smelt_node seed, int n, const smelt_node *wrt,
               smelt_node *grads_out, unsigned flags) {
  if ((!grads_out && n > 0) || n < 0) {
    if (g && !g->error) {
      if (n < 0) sm_fail(g, "grad: n %d is negative", n);
      else sm_fail(g, "grad: grads_out is NULL (n = %d)", n);
    }
    return -1;
  }
  if (!g || g->error) return fail_all(n, grads_out);
  if (n > 0 && !wrt) {
    sm_fail(g, "grad: wrt is NULL (n = %d)", n);
    return fail_all(n, grads_out);
  }
  const sm_node *yn = sm_arg(g, "grad", y, "y");
  if (!yn) return fail_all(n, grads_out);
  char yd[200];
  describe(g, yn, yd, sizeof yd);
  if (!sm_is_float((smelt_dtype)yn->dtype)) {
    sm_fail(g, "grad: y %s is not a float tensor; only float tensors are differentiable", yd);
    return fail_all(n, grads_out);
  }
  bool seeded = smelt_node_valid(seed);
  if (!seeded && sm_numel(yn->rank, yn->shape) != 1) {
    sm_buf b = {0};
    sm_buf_shape(&b, yn->rank, yn->shape);
    sm_fail(g, "grad: y has shape %s; reverse mode needs a scalar or an explicit seed",
            b.data && !b.oom ? b.data : "?");
    sm_buf_free(&b);
    return fail_all(n, grads_out);
  }
  for (int j = 0; j < n; j++) {
    char what[32];
    snprintf(what, sizeof what, "wrt %d", j);
    const sm_node *w = sm_arg(g, "grad", wrt[j], what);
    if (!w) return fail_all(n, grads_out);
    if (!sm_is_float((smelt_dtype)w->dtype)) {
      char d[200];
      describe(g, w, d, sizeof d);
      sm_fail(g, "grad: wrt %d (%s) is not a float tensor; only float tensors have gradients", j,
              d);
      return fail_all(n, grads_out);
    }
  }
  uint32_t top = y.index - 1; /* nodes above y cannot influence it */
  int yrank = yn->rank;
  int64_t yshape[SMELT_MAX_RANK];
  memcpy(yshape, yn->shape, sizeof yshape);
  smelt_dtype ydt = (smelt_dtype)yn->dtype;

  /* needs[i]: node i is a float value that depends on some wrt. */
  size_t count = (size_t)top + 1;
  bool *needs = sm_calloc(count, sizeof *needs);
  smelt_node *grads = sm_calloc(count, sizeof *grads);
  if (!needs || !grads) {
    sm_free(needs);
    sm_free(grads);
    sm_fail_oom(g, "grad");
    return fail_all(n, grads_out);
  }
  for (int j = 0; j < n; j++)
    if (wrt[j].index - 1 <= top) needs[wrt[j].index - 1] = true;
  for (uint32_t i = 0; i <= top; i++) {
    const sm_node *ni = &g->nodes[i];
    if (needs[i] || !sm_is_float((smelt_dtype)ni->dtype) || !sm_vjp_rules[ni->op]) continue;
    for (uint32_t k = 0; k < ni->ninputs; k++)
      if (needs[ni->inputs[k]]) needs[i] = true;
  }

  /* The seed: ones for a scalar y, else the given output gradient. */
  smelt_node gy;
  if (seeded) {
    const sm_node *sn = sm_arg(g, "grad", seed, "the seed");
    if (!sn) goto fail;
    if (sn->rank != yrank || memcmp(sn->shape, yshape, sizeof(int64_t) * (size_t)yrank)) {
      char sd[200];
      describe(g, sn, sd, sizeof sd);
      sm_fail(g, "grad: the seed %s must have y's shape (y is %s)", sd, yd);
      goto fail;
    }
    gy = smelt_cast(g, seed, ydt);
  } else {
    gy = smelt_ones(g, ydt, yrank, yshape);
  }
  grads[top] = gy;

  for (uint32_t i = top + 1; i-- > 0;) {
    if (g->error) goto fail;
    if (!needs[i] || !smelt_node_valid(grads[i])) continue;
    sm_node copy = g->nodes[i]; /* the array moves as rules add nodes */
    sm_vjp_fn rule = sm_vjp_rules[copy.op];
    if (!rule) continue;
    for (uint32_t k = 0; k < copy.ninputs; k++) {
      uint32_t src = copy.inputs[k];
      if (!needs[src]) continue;
      smelt_node c = rule(g, &copy, sm_handle(g, i), (int)k, grads[i]);
      if (g->error) goto fail;
      if (!smelt_node_valid(c)) continue; /* no gradient flows to this input */
      grads[src] = smelt_node_valid(grads[src]) ? smelt_add(g, grads[src], c) : c;
    }
  }
  if (g->error) goto fail;

  for (int j = 0; j < n; j++) {
    uint32_t w = wrt[j].index - 1;
    smelt_node r = w <= top ? grads[w] : SMELT_INVALID;
    if (!smelt_node_valid(r)) {
      if (flags & SMELT_GRAD_STRICT) {
        char d[200];
        describe(g, &g->nodes[w], d, sizeof d);
        sm_fail(g, "grad: y %s does not depend on wrt %d (%s)", yd, j, d);
        goto fail;
      }
      r = zeros_like(g, w);
    }
    grads_out[j] = r;
  }
  if (g->error) goto fail;
  sm_free(needs);
  sm_free(grads);
  return 0;

fail:
  sm_free(needs);
  sm_free(grads);
  return fail_all(n, grads_out);
}

int smelt_vjp(smelt_graph *g, smelt_node y, smelt_node seed, int n, const smelt_node *wrt,
              smelt_node *grads_out, unsigned flags) {
  /* every node created meanwhile is part of the backward graph */
  if (g) g->grad_depth++;
  int rc = vjp(g, y, seed, n, wrt, grads_out, flags);
  if (g) g->grad_depth--;
  return rc;
}

int smelt_grad(smelt_graph *g, smelt_node y, int n, const smelt_node *wrt, smelt_node *grads_out) {
  return smelt_vjp(g, y, SMELT_INVALID, n, wrt, grads_out, 0);
}
