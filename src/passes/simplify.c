/* Simplification by rewrite rules, applied while the pass driver copies
 * the graph (so every node sees its inputs already simplified). Only
 * identities that are exact in IEEE arithmetic, for every input including
 * -0, NaN and inf: x*1, x/1, x-(+0), x+(-0) (x+(+0) turns -0 into +0),
 * integer x+0 and x-0, neg(neg x), pow(x, 1), where(c, a, a), where with a
 * constant condition. Constant folding evaluates nodes whose inputs are all
 * constants with the reference interpreter. */
#include "passes.h"

#include <math.h>
#include <string.h>

/* The single value of a constant seen through views (a splat), as a
 * double; false when i is not a constant with all elements equal. */
static bool splat(const smelt_graph *g, uint32_t i, double *v) {
  const sm_node *n = &g->nodes[i];
  while (n->op == OP_RESHAPE || n->op == OP_EXPAND || n->op == OP_PERMUTE ||
         n->op == OP_FLIP || n->op == OP_SLICE || n->op == OP_UNFOLD)
    n = &g->nodes[n->inputs[0]];
  if (n->op != OP_CONST || !n->data) return false;
  if (n->niattr == 1 && n->iattr[0] == 1) return false; /* a weak literal: never an operand */
  int64_t count = sm_numel(n->rank, n->shape);
  if (count == 0) return false;
  size_t es = smelt_dtype_size((smelt_dtype)n->dtype);
  const unsigned char *p = n->data;
  for (int64_t k = 1; k < count; k++)
    if (memcmp(p, p + (size_t)k * es, es)) return false;
  switch ((smelt_dtype)n->dtype) {
  case SMELT_F32: {
    float f;
    memcpy(&f, p, 4);
    *v = f;
    return true;
  }
  case SMELT_F64: memcpy(v, p, 8); return true;
  case SMELT_I32: {
    int32_t x;
    memcpy(&x, p, 4);
    *v = x;
    return true;
  }
  case SMELT_I64: {
    int64_t x;
    memcpy(&x, p, 8);
    *v = (double)x;
    return (int64_t)*v == x; /* only values a double holds exactly */
  }
  default: *v = p[0]; return true;
  }
}

static bool is_value(const smelt_graph *g, uint32_t i, double want, bool want_neg_zero) {
  double v;
  if (!splat(g, i, &v) || v != want) return false;
  if (want == 0 && sm_is_float((smelt_dtype)g->nodes[i].dtype))
    return (signbit(v) != 0) == want_neg_zero;
  return true;
}

/* A constant (through views) or a constant-folded source: foldable. */
static bool constant(const smelt_graph *g, uint32_t i) {
  const sm_node *n = &g->nodes[i];
  while (sm_ops[n->op].cls == OPC_VIEW) n = &g->nodes[n->inputs[0]];
  return n->op == OP_CONST && !(n->niattr == 1 && n->iattr[0] == 1);
}

enum { FOLD_MAX_ELEMENTS = 1 << 16 };

/* Evaluates node h of g with the interpreter and returns a constant with its
 * value (a splat stays one scalar broadcast, never a buffer of copies). */
static smelt_node fold(smelt_graph *g, smelt_node h) {
  const sm_node *n = &g->nodes[h.index - 1];
  smelt_dtype dt = (smelt_dtype)n->dtype;
  int rank = n->rank;
  int64_t shape[SMELT_MAX_RANK];
  memcpy(shape, n->shape, sizeof shape);
  int64_t count = sm_numel(rank, shape);
  size_t es = smelt_dtype_size(dt);
  void *buf = sm_malloc((size_t)(count ? count : 1) * es);
  smelt_interp *it = smelt_interp_new(g);
  if (!buf || !it) {
    sm_free(buf);
    smelt_interp_free(it);
    return sm_fail_oom(g, "simplify");
  }
  uint32_t root = h.index - 1;
  smelt_node r = SMELT_INVALID;
  /* A run error (an index out of range) leaves the node for run time. */
  if (sm_interp_run_roots(it, 1, &root, NULL) == 0 && sm_interp_read_root(it, 0, root, buf) == 0) {
    bool same = true;
    for (int64_t k = 1; k < count && same; k++)
      same = memcmp(buf, (unsigned char *)buf + (size_t)k * es, es) == 0;
    if (count > 1 && same) {
      smelt_node c = sm_const_raw(g, dt, 0, NULL, buf, false);
      r = smelt_broadcast_to(g, c, rank, shape);
    } else {
      r = sm_const_raw(g, dt, rank, shape, buf, false);
    }
  } else if (strstr(smelt_interp_error(it) ? smelt_interp_error(it) : "", "out of memory")) {
    /* not a run error to leave for run time: the compile fails */
    r = sm_fail_oom(g, "simplify");
  }
  smelt_interp_free(it);
  sm_free(buf);
  return r;
}

static smelt_node simplify_rule(smelt_graph *g, const sm_node_desc *d, void *ctx) {
  (void)ctx;
  const sm_op_info *info = &sm_ops[d->op];
  const uint32_t *in = d->inputs;
  bool isint = !sm_is_float(d->dtype);
  switch (d->op) {
  case OP_MUL:
    if (is_value(g, in[1], 1, false)) return sm_handle(g, in[0]);
    if (is_value(g, in[0], 1, false)) return sm_handle(g, in[1]);
    break;
  case OP_DIV:
  case OP_POW:
    if (is_value(g, in[1], 1, false)) return sm_handle(g, in[0]);
    break;
  case OP_ADD:
    if (is_value(g, in[1], 0, !isint)) return sm_handle(g, in[0]);
    if (is_value(g, in[0], 0, !isint)) return sm_handle(g, in[1]);
    break;
  case OP_SUB:
    if (is_value(g, in[1], 0, false)) return sm_handle(g, in[0]);
    break;
  case OP_NEG:
    if (g->nodes[in[0]].op == OP_NEG) return sm_handle(g, g->nodes[in[0]].inputs[0]);
    break;
  case OP_RESHAPE: {
    /* a reshape of a constant is that constant with another shape */
    const sm_node *c = &g->nodes[in[0]];
    if (c->op == OP_CONST && c->data && !(c->niattr == 1 && c->iattr[0] == 1))
      return sm_const_raw(g, d->dtype, d->rank, d->shape, c->data, false);
    break;
  }
  case OP_WHERE: {
    if (in[1] == in[2]) return sm_handle(g, in[1]);
    double c;
    if (splat(g, in[0], &c)) return sm_handle(g, c != 0 ? in[1] : in[2]);
    break;
  }
  default: break;
  }
  /* Constant folding: an op (not a source, not a view, which is free
   * anyway) whose inputs are all constants. */
  if (info->cls == OPC_SOURCE || info->cls == OPC_VIEW || info->cls == OPC_ASSIGN ||
      d->op == OP_STOP_GRADIENT || d->ninputs == 0)
    return SMELT_INVALID;
  if (sm_numel(d->rank, d->shape) > FOLD_MAX_ELEMENTS) return SMELT_INVALID;
  for (int k = 0; k < d->ninputs; k++)
    if (!constant(g, in[k])) return SMELT_INVALID;
  smelt_node h = sm_intern(g, d);
  if (!smelt_node_valid(h)) return h;
  smelt_node r = fold(g, h);
  return smelt_node_valid(r) ? r : h;
}

smelt_graph *sm_pass_dce(const smelt_graph *src, size_t nroots, const uint32_t *roots,
                         uint32_t *map) {
  return sm_rebuild(src, nroots, roots, NULL, NULL, map);
}

smelt_graph *sm_pass_simplify(const smelt_graph *src, size_t nroots, const uint32_t *roots,
                              uint32_t *map) {
  return sm_rewrite_pass(src, nroots, roots, simplify_rule, NULL, map);
}
