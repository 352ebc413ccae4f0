/* The pass driver: copies the part of a graph that some roots need into a
 * new graph, node by node in index order, through the hash-cons table (so
 * equal nodes merge: CSE) and through an optional rewrite hook (so
 * simplification sees every node with its inputs already rewritten). What
 * no root needs is not copied (DCE). Each pass is thus graph to graph and
 * both sides print as text. */
#include "passes.h"

#include <string.h>

smelt_graph *sm_rebuild(const smelt_graph *src, size_t nroots, const uint32_t *roots,
                        sm_rewrite_fn rewrite, void *ctx, uint32_t *map) {
  size_t nn = src->nnodes;
  bool *live = sm_calloc(nn ? nn : 1, sizeof *live);
  uint32_t *to = sm_calloc(nn ? nn : 1, sizeof *to); /* new index + 1 */
  smelt_graph *dst = smelt_graph_new();
  if (!live || !to || !dst) goto oom;
  for (size_t k = 0; k < nroots; k++) live[roots[k]] = true;
  /* Inputs and params are the graph's interface: they always survive. */
  for (size_t i = 0; i < nn; i++)
    if (src->nodes[i].op == OP_INPUT || src->nodes[i].op == OP_PARAM) live[i] = true;
  for (size_t i = nn; i-- > 0;) {
    if (!live[i]) continue;
    const sm_node *n = &src->nodes[i];
    for (uint32_t k = 0; k < n->ninputs; k++) live[n->inputs[k]] = true;
  }
  uint32_t ins[SM_REBUILD_MAX_INPUTS];
  for (size_t i = 0; i < nn; i++) {
    if (!live[i]) continue;
    const sm_node *n = &src->nodes[i];
    uint32_t *in = n->ninputs <= SM_REBUILD_MAX_INPUTS ? ins : sm_malloc(sizeof *in * n->ninputs);
    if (!in) goto oom;
    for (uint32_t k = 0; k < n->ninputs; k++) in[k] = to[n->inputs[k]] - 1;
    sm_node_desc d = {0};
    d.op = (sm_op)n->op;
    d.dtype = (smelt_dtype)n->dtype;
    d.rank = n->rank;
    d.shape = n->shape;
    d.ninputs = (int)n->ninputs;
    d.inputs = in;
    d.niattr = (int)n->niattr;
    d.iattr = n->iattr;
    d.fattr[0] = n->fattr[0];
    d.fattr[1] = n->fattr[1];
    d.data = n->data;
    d.data_bytes = n->data ? (size_t)sm_numel(n->rank, n->shape) * smelt_dtype_size(d.dtype) : 0;
    d.name = (n->op == OP_INPUT || n->op == OP_PARAM) ? n->name : NULL;
    smelt_node h = SMELT_INVALID;
    if (rewrite && !d.name) h = rewrite(dst, &d, ctx);
    if (!smelt_node_valid(h) && !dst->error) h = sm_intern(dst, &d);
    if (in != ins) sm_free(in);
    if (dst->error) goto fail;
    to[i] = h.index;
    /* Keep a user's name on the node it names, when that node is new. */
    const sm_node *nn2 = &dst->nodes[h.index - 1];
    if (n->name && !nn2->name && !smelt_node_valid(smelt_find(dst, n->name)))
      smelt_set_name(dst, h, n->name);
    if (dst->error) goto fail;
  }
  for (size_t k = 0; k < src->noutputs; k++) {
    uint32_t o = src->outputs[k].node;
    if (live[o] && to[o]) smelt_output(dst, src->outputs[k].name, sm_handle(dst, to[o] - 1));
  }
  if (dst->error) goto fail;
  if (map)
    for (size_t i = 0; i < nn; i++) map[i] = to[i];
  sm_free(live);
  sm_free(to);
  return dst;

oom:
fail:
  sm_free(live);
  sm_free(to);
  smelt_graph_free(dst);
  return NULL;
}

smelt_graph *sm_rewrite_pass(const smelt_graph *src, size_t nroots, const uint32_t *roots,
                             sm_rewrite_fn rewrite, void *ctx, uint32_t *map) {
  size_t nn = src->nnodes;
  uint32_t *m1 = sm_calloc(nn ? nn : 1, sizeof *m1);
  if (!m1) return NULL;
  smelt_graph *mid = sm_rebuild(src, nroots, roots, rewrite, ctx, m1);
  smelt_graph *out = NULL;
  if (mid) {
    /* The rewrites leave nodes dead (folded operands, inner views of a
     * collapsed chain): a second copy drops them. */
    uint32_t *r2 = sm_malloc(sizeof *r2 * (nroots ? nroots : 1));
    uint32_t *m2 = sm_calloc(mid->nnodes ? mid->nnodes : 1, sizeof *m2);
    if (r2 && m2) {
      for (size_t k = 0; k < nroots; k++) r2[k] = m1[roots[k]] - 1;
      out = sm_rebuild(mid, nroots, r2, NULL, NULL, m2);
      if (out && map)
        for (size_t i = 0; i < nn; i++) map[i] = m1[i] ? m2[m1[i] - 1] : 0;
    }
    sm_free(r2);
    sm_free(m2);
    smelt_graph_free(mid);
  }
  sm_free(m1);
  return out;
}
