/* Movement-op cleanup: chains of views collapse into one view. The builders
 * already collapse what they build, but other passes (simplify removing an
 * x*1 between two reshapes, autodiff, the text of an earlier pass) leave
 * chains behind, and every extra view is one more index map for codegen.
 * All rewrites are exact (they change no value):
 *  - reshape(reshape x) = reshape x; a reshape to x's own shape is x;
 *  - permute(permute x) = permute x with the composed perm; identity goes;
 *  - expand(expand x) = expand x; an expand to x's own shape is x;
 *  - expand(reshape(expand x)) where the reshape only adds or removes
 *    size-1 dims = expand(reshape' x): the unit dims move below the inner
 *    expand, and the two expands meet. */
#include "passes.h"

#include "../dump.h"

#include <string.h>

static bool same_shape(int ra, const int64_t *a, int rb, const int64_t *b) {
  return ra == rb && (ra == 0 || memcmp(a, b, sizeof *a * (size_t)ra) == 0);
}

/* A view node of dst with one input (no attributes but its shape). */
static smelt_node view(smelt_graph *g, sm_op op, const sm_node *like, int rank,
                       const int64_t *shape, uint32_t in, int niattr, const int64_t *iattr) {
  sm_node_desc d = {0};
  d.op = op;
  d.dtype = (smelt_dtype)like->dtype;
  d.rank = rank;
  d.shape = shape;
  d.ninputs = 1;
  d.inputs = &in;
  d.niattr = niattr;
  d.iattr = iattr;
  return sm_intern(g, &d);
}

/* reshape of node `in` to shape, collapsing onto a reshape below it. */
static smelt_node reshape_of(smelt_graph *g, uint32_t in, int rank, const int64_t *shape) {
  const sm_node *s = &g->nodes[in];
  if (s->op == OP_RESHAPE) in = s->inputs[0];
  s = &g->nodes[in];
  if (same_shape(s->rank, s->shape, rank, shape)) return sm_handle(g, in);
  return view(g, OP_RESHAPE, s, rank, shape, in, 0, NULL);
}

/* For a reshape from a (rank ra) to b (rank rb) that only adds or removes
 * size-1 dims: the shape b' the same reshape gives when applied to ap, a
 * shape that an expand grows to a. False when the reshape moves other dims. */
static bool unit_reshape(int ra, const int64_t *a, const int64_t *ap, int rb, const int64_t *b,
                         int64_t *bp) {
  int i = 0;
  for (int j = 0; j < rb; j++) {
    if (b[j] == 1) {
      bp[j] = 1;
      continue;
    }
    while (i < ra && a[i] == 1) i++;
    if (i == ra || a[i] != b[j]) return false;
    bp[j] = ap[i++];
  }
  while (i < ra && a[i] == 1) i++;
  return i == ra;
}

static smelt_node views_rule(smelt_graph *g, const sm_node_desc *d, void *ctx) {
  (void)ctx;
  if (d->op != OP_RESHAPE && d->op != OP_PERMUTE && d->op != OP_EXPAND) return SMELT_INVALID;
  uint32_t in = d->inputs[0];
  const sm_node *s = &g->nodes[in];
  if (same_shape(s->rank, s->shape, d->rank, d->shape) && d->op != OP_PERMUTE)
    return sm_handle(g, in);
  switch (d->op) {
  case OP_RESHAPE: return reshape_of(g, in, d->rank, d->shape);
  case OP_PERMUTE: {
    int64_t p[SMELT_MAX_RANK];
    memcpy(p, d->iattr, sizeof *p * (size_t)d->rank);
    if (s->op == OP_PERMUTE) {
      for (int i = 0; i < d->rank; i++) p[i] = s->iattr[d->iattr[i]];
      in = s->inputs[0];
    }
    bool identity = true;
    for (int i = 0; i < d->rank; i++) identity = identity && p[i] == i;
    if (identity) return sm_handle(g, in);
    if (in == d->inputs[0]) return SMELT_INVALID;
    return view(g, OP_PERMUTE, s, d->rank, d->shape, in, d->rank, p);
  }
  default: break; /* OP_EXPAND */
  }
  if (s->op == OP_RESHAPE) {
    const sm_node *t = &g->nodes[s->inputs[0]];
    int64_t bp[SMELT_MAX_RANK];
    if (t->op == OP_EXPAND) {
      const sm_node *x = &g->nodes[t->inputs[0]];
      if (unit_reshape(t->rank, t->shape, x->shape, s->rank, s->shape, bp)) {
        smelt_node r = reshape_of(g, t->inputs[0], s->rank, bp);
        if (!smelt_node_valid(r)) return r;
        in = r.index - 1;
        s = &g->nodes[in];
      }
    }
  }
  if (s->op == OP_EXPAND) in = s->inputs[0];
  s = &g->nodes[in];
  if (same_shape(s->rank, s->shape, d->rank, d->shape)) return sm_handle(g, in);
  if (in == d->inputs[0]) return SMELT_INVALID;
  return view(g, OP_EXPAND, s, d->rank, d->shape, in, 0, NULL);
}

smelt_graph *sm_pass_views(const smelt_graph *src, size_t nroots, const uint32_t *roots,
                           uint32_t *map) {
  return sm_rewrite_pass(src, nroots, roots, views_rule, NULL, map);
}

/* ------------------------------------------------------------ sm_optimize */
/* The pass pipeline (here until it gets a file of its own in meson.build):
 * simplify, split sums, then views; each pass's result is dumped as graph
 * text. A pass with a `wanted` test that finds nothing to do is skipped. */
typedef smelt_graph *(*pass_fn)(const smelt_graph *, size_t, const uint32_t *, uint32_t *);

smelt_graph *sm_optimize(const smelt_graph *src, size_t nroots, const uint32_t *roots,
                         uint32_t *map, const sm_dump *dump) {
  static const struct {
    const char *name;
    pass_fn run;
    bool (*wanted)(const smelt_graph *); /* NULL: always runs */
  } passes[] = {{"simplify", sm_pass_simplify, NULL},
                {"split_sums", sm_pass_split_sums, sm_split_sums_wanted},
                {"views", sm_pass_views, NULL}};
  size_t nn = src->nnodes;
  uint32_t *total = sm_malloc(sizeof *total * (nn ? nn : 1)); /* src node -> cur index + 1 */
  uint32_t *r = sm_malloc(sizeof *r * (nroots ? nroots : 1));
  if (!total || !r) goto fail;
  for (size_t i = 0; i < nn; i++) total[i] = (uint32_t)i + 1;
  if (nroots) memcpy(r, roots, sizeof *r * nroots);
  const smelt_graph *cur = src;
  smelt_graph *owned = NULL;
  for (size_t p = 0; p < sizeof passes / sizeof passes[0]; p++) {
    if (passes[p].wanted && !passes[p].wanted(cur)) continue; /* (not dumped either) */
    uint32_t *m = sm_calloc(cur->nnodes ? cur->nnodes : 1, sizeof *m);
    smelt_graph *next = m ? passes[p].run(cur, nroots, r, m) : NULL;
    if (!next) {
      sm_free(m);
      smelt_graph_free(owned);
      goto fail;
    }
    for (size_t i = 0; i < nn; i++) total[i] = total[i] ? m[total[i] - 1] : 0;
    for (size_t k = 0; k < nroots; k++) r[k] = m[r[k]] - 1;
    sm_free(m);
    smelt_graph_free(owned);
    cur = owned = next;
    if (sm_dump_wants(dump, SM_DUMP_PASSES)) {
      char *text = smelt_graph_print(cur);
      sm_dump_write(dump, SM_DUMP_PASSES, passes[p].name, text);
      smelt_free(text);
    }
  }
  if (map && nn) memcpy(map, total, sizeof *map * nn);
  sm_free(total);
  sm_free(r);
  return owned;

fail:
  sm_free(total);
  sm_free(r);
  return NULL;
}
