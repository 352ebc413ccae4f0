/* Fusion: partitions the nodes a program needs into kernels (groups).
 *
 * 1. Materialization. Buffers are given (inputs, params, constants with
 *    more than one element), the roots, every reduction, matmul and
 *    scatter_add (until step 4 shows one is used only by its own epilogue),
 *    the nodes a matmul or a gather reads through views, and the shared
 *    nodes that the cost rule (docs/fusion.md) finds too expensive to
 *    recompute. Everything else is inlined: computed in each kernel that
 *    uses it. Views are always inlined.
 * 2. Units. Each materialized computed node (a "head") starts as its own
 *    unit: a pointwise unit, or the unit of its reduction, matmul or
 *    scatter. A unit's members are its heads and what they inline.
 * 3. Merges, each kept only when the unit graph stays acyclic (convex):
 *    vertical (a pointwise unit into its consumer of the same shape when the
 *    consumer reads it at the same index; into a reduction that reads it at
 *    the points of its input; a consumer of a reduction's or matmul's
 *    result into that unit as an epilogue, e.g. a gather at an argmax),
 *    reductions over the same input
 *    shape and axes, then pointwise units of one shape (horizontal).
 * 4. Outputs: a head is stored when it is a root or something outside its
 *    group reads it. Groups are ordered topologically. */
#include "fusion.h"

#include "../../codegen/lower.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The cost rule: recompute a node shared by several kernels when its
 * inlined cone weighs at most this much (weights in op_weight). */
enum { SM_RECOMPUTE_MAX = 6 };

enum { ROLE_INNER = 0, ROLE_OUTER = 1 };
#define NONE UINT32_MAX

typedef struct vec {
  uint32_t *v;
  size_t n, cap;
} vec;

typedef struct fz {
  const smelt_graph *g;
  size_t nn;
  bool oom;
  bool *need, *root, *mat;
  uint32_t *cstart, *cons; /* consumers (CSR, needed nodes only) */
  /* units: union-find over node ids; lists of heads per unit root */
  uint32_t *uf, *hfirst, *hlast, *hnext, *anchor;
  uint8_t *kind, *role;
  /* scratch marks */
  uint32_t *mark, *mark2, *umark;
  uint32_t stamp, stamp2, ustamp;
  vec stack, members, inputs;
  /* unit graph */
  vec units;
  uint32_t *pstart, *sstart; /* successors per unit index (CSR) */
  vec succ;
  uint32_t *uidx;                   /* unit root -> index in units */
  vec edges;                        /* pairs (from unit index, to unit index) */
} fz;

static void push(fz *z, vec *a, uint32_t x) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 16;
    uint32_t *p = sm_realloc(a->v, sizeof *p * cap);
    if (!p) {
      z->oom = true;
      return;
    }
    a->v = p;
    a->cap = cap;
  }
  a->v[a->n++] = x;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* ---------------------------------------------------------- op classes */
static sm_op_class cls(const sm_node *n) { return sm_ops[n->op].cls; }
static bool is_view(const sm_node *n) { return cls(n) == OPC_VIEW || cls(n) == OPC_PAD; }
static bool is_elementwise(const sm_node *n) {
  sm_op_class c = cls(n);
  return c == OPC_UNARY || c == OPC_BINARY || c == OPC_TERNARY;
}
static bool is_anchor(const sm_node *n) {
  sm_op_class c = cls(n);
  return c == OPC_REDUCE || c == OPC_ARGREDUCE || c == OPC_MATMUL || c == OPC_SCATTER;
}
static bool is_reduction(const sm_node *n) {
  return cls(n) == OPC_REDUCE || cls(n) == OPC_ARGREDUCE;
}
static int64_t numel(const sm_node *n) { return sm_numel(n->rank, n->shape); }
/* A buffer the program provides: input, param, constant of 2+ elements. */
static bool is_buffer(const sm_node *n) {
  return n->op == OP_INPUT || n->op == OP_PARAM || (n->op == OP_CONST && numel(n) > 1);
}
static bool is_literal(const sm_node *n) { return n->op == OP_CONST && numel(n) <= 1; }
static bool same_shape(const sm_node *a, const sm_node *b) {
  return a->rank == b->rank && memcmp(a->shape, b->shape, sizeof *a->shape * a->rank) == 0;
}

/* Cost of computing a node once, for the recompute rule. */
static int op_weight(const sm_node *n) {
  switch (n->op) {
  case OP_EXP: case OP_LOG: case OP_SIN: case OP_COS: case OP_TANH: case OP_SIGMOID:
  case OP_POW: return 4;
  case OP_DIV: case OP_SQRT: case OP_RSQRT: case OP_RECIPROCAL: return 2;
  case OP_RAND: case OP_RANDN: return 8;
  case OP_GATHER: return 2;
  case OP_IOTA: case OP_TRAINING: case OP_CONST: case OP_STOP_GRADIENT: return 0;
  default: return is_view(n) ? 0 : 1;
  }
}

static sm_group_kind anchor_kind(const sm_node *n) {
  switch (cls(n)) {
  case OPC_REDUCE:
  case OPC_ARGREDUCE: return SM_GROUP_REDUCE;
  case OPC_MATMUL: return SM_GROUP_MATMUL;
  case OPC_SCATTER: return SM_GROUP_SCATTER;
  default: return SM_GROUP_POINTWISE;
  }
}

static void *fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void *fail(char **err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  *err = sm_vfmt(fmt, ap);
  va_end(ap);
  return NULL;
}

/* ------------------------------------------------------ materialization */
static uint32_t bump(uint32_t *stamp, uint32_t *marks, size_t n) {
  if (++*stamp == 0) { /* wrapped: clear */
    memset(marks, 0, sizeof *marks * n);
    *stamp = 1;
  }
  return *stamp;
}

/* Weight of the cone n inlines (down to materialized nodes), stopping
 * early once it exceeds the limit. */
static int cone_cost(fz *z, uint32_t n) {
  uint32_t s = bump(&z->stamp, z->mark, z->nn);
  int cost = 0;
  z->stack.n = 0;
  push(z, &z->stack, n);
  z->mark[n] = s;
  while (z->stack.n && cost <= SM_RECOMPUTE_MAX && !z->oom) {
    const sm_node *x = &z->g->nodes[z->stack.v[--z->stack.n]];
    cost += op_weight(x);
    for (uint32_t k = 0; k < x->ninputs; k++) {
      uint32_t i = x->inputs[k];
      if (z->mark[i] == s || z->mat[i]) continue;
      z->mark[i] = s;
      push(z, &z->stack, i);
    }
  }
  return cost;
}

/* True when some consumer reads n through views that broadcast it
 * (expand, when `expand`) or through overlapping windows (unfold with
 * size > step: a convolution's input is read k*k times). */
static bool broadcast_read(fz *z, uint32_t n, bool expand) {
  z->stack.n = 0;
  push(z, &z->stack, n);
  while (z->stack.n && !z->oom) {
    uint32_t x = z->stack.v[--z->stack.n];
    for (uint32_t k = z->cstart[x]; k < z->cstart[x + 1]; k++) {
      const sm_node *c = &z->g->nodes[z->cons[k]];
      if (!is_view(c) || z->mat[z->cons[k]]) continue;
      if (expand && c->op == OP_EXPAND && numel(c) > numel(&z->g->nodes[x])) return true;
      if (c->op == OP_UNFOLD && c->iattr[1] > c->iattr[2]) return true;
      push(z, &z->stack, z->cons[k]);
    }
  }
  return false;
}

/* The node a matmul or gather reads through views: materialized. A
 * matmul operand whose views do not compose into one unmasked strided view
 * (a padded or overlapping window, a reshape of a transpose: im2col) is
 * itself materialized, by a copy kernel, so that the matmul reads it
 * contiguously and keeps its blocked kernel. When the operand is a reshape
 * of such views, the view under the reshapes is the one copied: its copy
 * kernel then indexes the source without div/mod (im2col's
 * [N, C, KH, KW, OH, OW] rather than [N, C*KH*KW, OH*OW]), and a reshape
 * of a contiguous buffer is strided. The check stops at nodes already
 * materialized: the weight gradient's transposed columns are a strided
 * view of the forward's im2col copy, not a second copy. */
static void mat_base(fz *z, uint32_t i, bool matmul) {
  const sm_node *nodes = z->g->nodes;
  if (matmul && is_view(&nodes[i]) && !sm_views_strided(z->g, i, z->mat)) {
    while (nodes[i].op == OP_RESHAPE && is_view(&nodes[nodes[i].inputs[0]]))
      i = nodes[i].inputs[0];
    z->mat[i] = true;
    return;
  }
  while (is_view(&z->g->nodes[i])) i = z->g->nodes[i].inputs[0];
  if (!is_literal(&z->g->nodes[i])) z->mat[i] = true;
}

static void materialize(fz *z) {
  const smelt_graph *g = z->g;
  for (size_t i = 0; i < z->nn; i++) {
    if (!z->need[i]) continue;
    const sm_node *n = &g->nodes[i];
    if (is_buffer(n) || is_anchor(n) || (z->root[i] && !is_literal(n))) z->mat[i] = true;
    if (n->op == OP_MATMUL) {
      mat_base(z, n->inputs[0], true);
      mat_base(z, n->inputs[1], true);
    }
    if (n->op == OP_GATHER) mat_base(z, n->inputs[0], false);
  }
  /* Shared nodes: consumers before producers, so each node knows which
   * units use it; repeated until no decision changes. */
  uint32_t *user = z->mark2; /* unit using the node; NONE + multi as below */
  bool changed = true;
  while (changed && !z->oom) {
    changed = false;
    for (size_t i = z->nn; i-- > 0;) {
      if (!z->need[i]) continue;
      uint32_t u = NONE - 1; /* NONE - 1: no user yet; NONE: several */
      for (uint32_t k = z->cstart[i]; k < z->cstart[i + 1]; k++) {
        uint32_t c = z->cons[k];
        uint32_t cu = z->mat[c] ? c : user[c];
        if (cu == NONE - 1) continue;
        if (u == NONE - 1) u = cu;
        else if (u != cu) u = NONE;
      }
      const sm_node *n = &g->nodes[i];
      if (!z->mat[i] && u != NONE - 1 && !is_view(n) && !is_literal(n)) {
        /* shared: recomputed in each unit unless too costly or broadcast;
         * one user: inlined unless it reads overlapping windows of it */
        int cost = cone_cost(z, (uint32_t)i);
        bool shared = u == NONE;
        if ((shared && cost > SM_RECOMPUTE_MAX) ||
            (cost > 0 && broadcast_read(z, (uint32_t)i, shared))) {
          z->mat[i] = true;
          changed = true;
        }
      }
      user[i] = z->mat[i] ? (uint32_t)i : u;
    }
  }
}

/* ------------------------------------------------------------------ units */
static uint32_t find(fz *z, uint32_t x) {
  while (z->uf[x] != x) x = z->uf[x] = z->uf[z->uf[x]];
  return x;
}

static bool is_head(fz *z, uint32_t i) { return z->mat[i] && !is_buffer(&z->g->nodes[i]); }

/* Merges unit b into unit a (roots). */
static void unite(fz *z, uint32_t a, uint32_t b) {
  z->uf[b] = a;
  z->hnext[z->hlast[a]] = z->hfirst[b];
  z->hlast[a] = z->hlast[b];
  if (z->anchor[b] < z->anchor[a]) z->anchor[a] = z->anchor[b];
  if (z->kind[a] == SM_GROUP_POINTWISE) z->kind[a] = z->kind[b];
}

/* Collects the members of unit u (marks them with z->stamp) and the
 * materialized nodes it reads (z->inputs). */
static void collect(fz *z, uint32_t u) {
  uint32_t s = bump(&z->stamp, z->mark, z->nn);
  z->members.n = z->inputs.n = z->stack.n = 0;
  for (uint32_t h = z->hfirst[u]; h != NONE; h = z->hnext[h]) {
    z->mark[h] = s;
    push(z, &z->stack, h);
  }
  while (z->stack.n && !z->oom) {
    uint32_t x = z->stack.v[--z->stack.n];
    push(z, &z->members, x);
    const sm_node *n = &z->g->nodes[x];
    for (uint32_t k = 0; k < n->ninputs; k++) {
      uint32_t i = n->inputs[k];
      if (z->mark[i] == s) continue;
      z->mark[i] = s;
      if (z->mat[i] && !(is_head(z, i) && find(z, i) == u))
        push(z, &z->inputs, i);
      else
        push(z, &z->stack, i);
    }
  }
  /* inputs were marked too: unmark them so mark == stamp means member */
  for (size_t k = 0; k < z->inputs.n; k++) z->mark[z->inputs.v[k]] = 0;
}

static bool in_unit(fz *z, uint32_t i) { return z->mark[i] == z->stamp; }

/* Rebuilds the list of units and the unit graph (edges producer ->
 * consumer, deduplicated). */
static void build_dag(fz *z) {
  z->units.n = z->edges.n = 0;
  for (size_t i = 0; i < z->nn; i++)
    if (z->need[i] && is_head(z, (uint32_t)i) && find(z, (uint32_t)i) == i) {
      z->uidx[i] = (uint32_t)z->units.n;
      push(z, &z->units, (uint32_t)i);
    }
  for (size_t ui = 0; ui < z->units.n && !z->oom; ui++) {
    collect(z, z->units.v[ui]);
    uint32_t s = bump(&z->ustamp, z->umark, z->nn);
    for (size_t k = 0; k < z->inputs.n; k++) {
      uint32_t i = z->inputs.v[k];
      if (!is_head(z, i)) continue;
      uint32_t p = find(z, i);
      if (z->umark[p] == s) continue;
      z->umark[p] = s;
      push(z, &z->edges, z->uidx[p]);
      push(z, &z->edges, (uint32_t)ui);
    }
  }
  if (z->oom) return;
  size_t nu = z->units.n, ne = z->edges.n / 2;
  memset(z->sstart, 0, sizeof *z->sstart * (nu + 1));
  for (size_t e = 0; e < ne; e++) z->sstart[z->edges.v[2 * e] + 1]++;
  for (size_t u = 0; u < nu; u++) z->sstart[u + 1] += z->sstart[u];
  memcpy(z->pstart, z->sstart, sizeof *z->pstart * (nu + 1));
  z->succ.n = 0;
  for (size_t e = 0; e < ne; e++) push(z, &z->succ, 0);
  if (z->oom) return;
  for (size_t e = 0; e < ne; e++)
    z->succ.v[z->pstart[z->edges.v[2 * e]]++] = z->edges.v[2 * e + 1];
}

/* A path from unit index a to unit index b (skipping the direct edge). */
static bool reaches(fz *z, uint32_t a, uint32_t b, bool skip_direct) {
  uint32_t s = bump(&z->ustamp, z->umark, z->nn);
  z->stack.n = 0;
  for (uint32_t k = z->sstart[a]; k < z->sstart[a + 1]; k++)
    if (!(skip_direct && z->succ.v[k] == b)) push(z, &z->stack, z->succ.v[k]);
  while (z->stack.n && !z->oom) {
    uint32_t x = z->stack.v[--z->stack.n];
    if (x == b) return true;
    if (z->umark[x] == s) continue;
    z->umark[x] = s;
    for (uint32_t k = z->sstart[x]; k < z->sstart[x + 1]; k++) push(z, &z->stack, z->succ.v[k]);
  }
  return false;
}

/* Marks (mark2) the members of the unit just collected that are computed
 * at the index of the domain point: from the starts, through elementwise
 * ops (and reshapes when allowed). For a reduction the start is the
 * anchor, whose input is read at the point of the reduced domain. */
static void mark_ident(fz *z, uint32_t u, bool reduce_inner, bool allow_reshape) {
  uint32_t s = bump(&z->stamp2, z->mark2, z->nn);
  z->stack.n = 0;
  for (uint32_t h = z->hfirst[u]; h != NONE; h = z->hnext[h]) {
    bool start = reduce_inner ? is_reduction(&z->g->nodes[h]) : true;
    if (start) {
      z->mark2[h] = s;
      push(z, &z->stack, h);
    }
  }
  while (z->stack.n && !z->oom) {
    const sm_node *n = &z->g->nodes[z->stack.v[--z->stack.n]];
    /* an epilogue's gather reads its index at its own point (x elsewhere) */
    bool gather = allow_reshape && n->op == OP_GATHER;
    bool through = is_elementwise(n) || (reduce_inner && is_reduction(n)) ||
                   (allow_reshape && n->op == OP_RESHAPE) || gather;
    if (!through) continue;
    for (uint32_t k = 0; k < n->ninputs; k++) {
      uint32_t i = n->inputs[k];
      if (z->mark2[i] == s || !in_unit(z, i)) continue;
      if (reduce_inner && is_reduction(n) && k > 0) continue;
      if (gather && k != 1) continue;
      z->mark2[i] = s;
      push(z, &z->stack, i);
    }
  }
}

/* The shape of a unit's domain: a pointwise unit's heads, a reduction's
 * input (inner) or result (outer). */
static const sm_node *domain(fz *z, uint32_t u, bool outer) {
  const sm_node *a = &z->g->nodes[z->anchor[u] != NONE ? z->anchor[u] : z->hfirst[u]];
  if (z->kind[u] == SM_GROUP_REDUCE && !outer) return &z->g->nodes[a->inputs[0]];
  return a;
}

/* Producer unit p, consumer unit c (roots, edge p -> c): can c's reads of
 * p be served inside one kernel? mode 0: pointwise into pointwise, 1:
 * pointwise into a reduction's input, 2: c as p's epilogue. */
static bool reads_ok(fz *z, uint32_t p, uint32_t c, int mode) {
  collect(z, c);
  mark_ident(z, c, mode == 1, mode == 2);
  uint32_t s2 = z->stamp2;
  /* every member of c reading a head of p reads it at its own point */
  bool any = false;
  for (size_t k = 0; k < z->members.n; k++) {
    const sm_node *n = &z->g->nodes[z->members.v[k]];
    for (uint32_t j = 0; j < n->ninputs; j++) {
      uint32_t i = n->inputs[j];
      if (!is_head(z, i) || find(z, i) != p || in_unit(z, i)) continue;
      if (mode == 2 && z->role[i] != ROLE_OUTER) return false;
      bool direct = is_elementwise(n) || (mode == 1 && is_reduction(n) && j == 0) ||
                    (mode == 2 && (n->op == OP_RESHAPE || (n->op == OP_GATHER && j == 1)));
      if (!direct || z->mark2[z->members.v[k]] != s2) return false;
      any = true;
    }
  }
  if (!any || mode != 2) return any;
  /* an epilogue's stores all depend on the result (so they are outer) */
  uint32_t s = bump(&z->stamp2, z->mark2, z->nn);
  qsort(z->members.v, z->members.n, sizeof *z->members.v, cmp_u32);
  for (size_t k = 0; k < z->members.n; k++) {
    uint32_t x = z->members.v[k];
    const sm_node *n = &z->g->nodes[x];
    for (uint32_t j = 0; j < n->ninputs; j++) {
      uint32_t i = n->inputs[j];
      bool from_p = is_head(z, i) && find(z, i) == p && !in_unit(z, i);
      if (from_p || z->mark2[i] == s) z->mark2[x] = s;
    }
  }
  for (uint32_t h = z->hfirst[c]; h != NONE; h = z->hnext[h])
    if (z->mark2[h] != s) return false;
  return true;
}

/* Tries to merge unit p into its consumer c (unit indices). */
static bool try_vertical(fz *z, uint32_t pi, uint32_t ci) {
  uint32_t p = z->units.v[pi], c = z->units.v[ci];
  sm_group_kind kp = z->kind[p], kc = z->kind[c];
  int mode;
  if (kp == SM_GROUP_POINTWISE && kc == SM_GROUP_POINTWISE) {
    if (!same_shape(domain(z, p, false), domain(z, c, false))) return false;
    mode = 0;
  } else if (kp == SM_GROUP_POINTWISE && kc == SM_GROUP_REDUCE) {
    if (!same_shape(domain(z, p, false), domain(z, c, false))) return false;
    mode = 1;
  } else if ((kp == SM_GROUP_REDUCE || kp == SM_GROUP_MATMUL) && kc == SM_GROUP_POINTWISE) {
    if (numel(domain(z, p, true)) != numel(domain(z, c, false))) return false;
    mode = 2;
  } else {
    return false;
  }
  if (reaches(z, pi, ci, true) || !reads_ok(z, p, c, mode)) return false;
  if (mode == 2)
    for (uint32_t h = z->hfirst[c]; h != NONE; h = z->hnext[h]) z->role[h] = ROLE_OUTER;
  if (mode == 2) unite(z, p, c);
  else if (mode == 1) unite(z, c, p);
  else unite(z, p, c);
  return true;
}

static bool same_axes(const sm_node *a, const sm_node *b) {
  if (a->niattr != b->niattr) return false;
  for (uint32_t k = 0; k < a->niattr; k++)
    if (a->iattr[k] != b->iattr[k]) return false;
  return true;
}

/* Tries to merge units a and b that no path joins (unit indices). */
static bool try_horizontal(fz *z, uint32_t ai, uint32_t bi) {
  uint32_t a = z->units.v[ai], b = z->units.v[bi];
  if (z->kind[a] != z->kind[b]) return false;
  if (z->kind[a] == SM_GROUP_REDUCE) {
    const sm_node *ra = &z->g->nodes[z->anchor[a]], *rb = &z->g->nodes[z->anchor[b]];
    if (!same_shape(domain(z, a, false), domain(z, b, false)) || !same_axes(ra, rb)) return false;
  } else if (z->kind[a] == SM_GROUP_POINTWISE) {
    if (!same_shape(domain(z, a, false), domain(z, b, false))) return false;
  } else {
    return false;
  }
  if (reaches(z, ai, bi, false) || reaches(z, bi, ai, false)) return false;
  unite(z, a, b);
  return true;
}

/* Runs merges of one kind until none applies. */
static void merge_all(fz *z, bool horizontal, sm_group_kind only) {
  bool again = true;
  while (again && !z->oom) {
    again = false;
    build_dag(z);
    size_t nu = z->units.n;
    for (uint32_t ci = 0; ci < nu && !again && !z->oom; ci++) {
      if (horizontal) {
        if (z->kind[z->units.v[ci]] != only) continue;
        for (uint32_t bi = ci + 1; bi < nu && !again; bi++) again = try_horizontal(z, ci, bi);
      } else {
        for (uint32_t pi = 0; pi < nu && !again; pi++) {
          bool edge = false;
          for (uint32_t k = z->sstart[pi]; k < z->sstart[pi + 1]; k++) edge |= z->succ.v[k] == ci;
          if (edge) again = try_vertical(z, pi, ci);
        }
      }
    }
  }
}

/* -------------------------------------------------------------- results */
static uint32_t *copy_vec(fz *z, const vec *a, size_t *n) {
  *n = a->n;
  uint32_t *p = sm_malloc(sizeof *p * (a->n ? a->n : 1));
  if (!p) {
    z->oom = true;
    return NULL;
  }
  if (a->n) memcpy(p, a->v, sizeof *p * a->n);
  qsort(p, a->n, sizeof *p, cmp_u32);
  return p;
}

void sm_fusion_free(sm_fusion *f) {
  if (!f) return;
  for (size_t k = 0; k < f->ngroups; k++) {
    sm_free(f->groups[k].members);
    sm_free(f->groups[k].outputs);
    sm_free(f->groups[k].inputs);
  }
  sm_free(f->groups);
  sm_free(f->stored_by);
  sm_free(f->materialized);
  sm_free(f->roots);
  sm_free(f);
}

/* Fills f's groups from the final units, in topological order. */
static void emit(fz *z, sm_fusion *f) {
  build_dag(z);
  size_t nu = z->units.n, ne = z->edges.n / 2;
  if (z->oom) return;
  f->groups = sm_calloc(nu ? nu : 1, sizeof *f->groups);
  uint32_t *indeg = sm_calloc(nu ? nu : 1, sizeof *indeg);
  bool *done = sm_calloc(nu ? nu : 1, sizeof *done);
  if (!f->groups || !indeg || !done) {
    z->oom = true;
    goto out;
  }
  for (size_t e = 0; e < ne; e++) indeg[z->edges.v[2 * e + 1]]++;
  /* Kahn's order; among ready units the one with the lowest node first */
  for (size_t k = 0; k < nu; k++) {
    size_t pick = nu;
    for (size_t u = 0; u < nu && pick == nu; u++)
      if (!done[u] && indeg[u] == 0) pick = u;
    if (pick == nu) break; /* cannot happen: merges keep the graph acyclic */
    done[pick] = true;
    for (uint32_t s = z->sstart[pick]; s < z->sstart[pick + 1]; s++) indeg[z->succ.v[s]]--;
    uint32_t u = z->units.v[pick];
    sm_group *gr = &f->groups[f->ngroups++];
    gr->kind = (sm_group_kind)z->kind[u];
    collect(z, u);
    /* the unit's heads (stored candidates), kept in outputs for now */
    vec heads = {0};
    for (uint32_t h = z->hfirst[u]; h != NONE; h = z->hnext[h]) push(z, &heads, h);
    gr->members = copy_vec(z, &z->members, &gr->nmembers);
    gr->inputs = copy_vec(z, &z->inputs, &gr->ninputs);
    gr->outputs = copy_vec(z, &heads, &gr->noutputs);
    sm_free(heads.v);
    if (z->oom) goto out;
    for (size_t k2 = 0; k2 < gr->ninputs; k2++) f->materialized[gr->inputs[k2]] = true;
    gr->anchor = z->anchor[u];
  }
  /* Stored: the heads that are roots or that another kernel reads. A
   * consumer's membership is not enough to tell: an inlined node may be
   * recomputed in several kernels, each of which then reads its inputs. */
  for (size_t k = 0; k < f->ngroups; k++) {
    sm_group *gr = &f->groups[k];
    size_t n = 0;
    for (size_t j = 0; j < gr->noutputs; j++) {
      uint32_t h = gr->outputs[j];
      if (z->root[h] || f->materialized[h]) gr->outputs[n++] = h;
    }
    gr->noutputs = n;
    for (size_t j = 0; j < n; j++) f->stored_by[gr->outputs[j]] = (int32_t)k;
    if (gr->anchor == NONE) gr->anchor = n ? gr->outputs[0] : gr->members[0];
  }
out:
  sm_free(indeg);
  sm_free(done);
}

sm_fusion *sm_fuse(const smelt_graph *g, size_t nroots, const uint32_t *roots, char **err) {
  *err = NULL;
  if (!g) return fail(err, "fusion: the graph is NULL");
  if (g->error) return fail(err, "fusion: the graph has an error: %s", g->error);
  if (nroots && !roots) return fail(err, "fusion: %zu roots but the root array is NULL", nroots);
  for (size_t k = 0; k < nroots; k++) {
    if (roots[k] >= g->nnodes)
      return fail(err, "fusion: root %zu is node %u but the graph has %zu nodes", k, roots[k],
                  g->nnodes);
    if (g->nodes[roots[k]].op == OP_ASSIGN) {
      char id[128];
      sm_node_id(g, &g->nodes[roots[k]], id, sizeof id);
      return fail(err, "fusion: root %zu (%s) is an assign; pass the value it writes", k, id);
    }
  }
  fz z0 = {0}, *z = &z0;
  z->g = g;
  size_t nn = z->nn = g->nnodes, n1 = nn ? nn : 1;
  sm_fusion *f = sm_calloc(1, sizeof *f);
  z->need = sm_calloc(n1, sizeof *z->need);
  z->root = sm_calloc(n1, sizeof *z->root);
  z->mat = sm_calloc(n1, sizeof *z->mat);
  z->cstart = sm_calloc(nn + 1, sizeof *z->cstart);
  z->uf = sm_malloc(sizeof *z->uf * n1);
  z->hfirst = sm_malloc(sizeof *z->hfirst * n1);
  z->hlast = sm_malloc(sizeof *z->hlast * n1);
  z->hnext = sm_malloc(sizeof *z->hnext * n1);
  z->anchor = sm_malloc(sizeof *z->anchor * n1);
  z->kind = sm_calloc(n1, sizeof *z->kind);
  z->role = sm_calloc(n1, sizeof *z->role);
  z->mark = sm_calloc(n1, sizeof *z->mark);
  z->mark2 = sm_calloc(n1, sizeof *z->mark2);
  z->umark = sm_calloc(n1, sizeof *z->umark);
  z->uidx = sm_calloc(n1, sizeof *z->uidx);
  z->sstart = sm_calloc(nn + 1, sizeof *z->sstart);
  z->pstart = sm_calloc(nn + 1, sizeof *z->pstart);
  if (f) {
    f->g = g;
    f->stored_by = sm_malloc(sizeof *f->stored_by * n1);
    f->materialized = sm_calloc(n1, sizeof *f->materialized);
    f->roots = sm_malloc(sizeof *f->roots * (nroots ? nroots : 1));
  }
  if (!f || !z->need || !z->root || !z->mat || !z->cstart || !z->uf || !z->hfirst || !z->hlast ||
      !z->hnext || !z->anchor || !z->kind || !z->role || !z->mark || !z->mark2 || !z->umark ||
      !z->uidx || !z->sstart || !z->pstart || !f->stored_by || !f->materialized || !f->roots)
    goto oom;
  f->nroots = nroots;
  if (nroots) memcpy(f->roots, roots, sizeof *roots * nroots);
  /* what the roots need, and who consumes what */
  for (size_t k = 0; k < nroots; k++) z->need[roots[k]] = z->root[roots[k]] = true;
  size_t ncons = 0;
  for (size_t i = nn; i-- > 0;) {
    if (!z->need[i]) continue;
    const sm_node *n = &g->nodes[i];
    if (n->op == OP_ASSIGN) {
      char id[128];
      sm_node_id(g, n, id, sizeof id);
      fail(err, "fusion: %s is an assign that another node reads", id);
      goto fail;
    }
    for (uint32_t k = 0; k < n->ninputs; k++) {
      z->need[n->inputs[k]] = true;
      z->cstart[n->inputs[k] + 1]++;
      ncons++;
    }
  }
  for (size_t i = 0; i < nn; i++) z->cstart[i + 1] += z->cstart[i];
  z->cons = sm_malloc(sizeof *z->cons * (ncons ? ncons : 1));
  if (!z->cons) goto oom;
  memcpy(z->pstart, z->cstart, sizeof *z->cstart * (nn + 1));
  for (size_t i = 0; i < nn; i++) {
    if (!z->need[i]) continue;
    const sm_node *n = &g->nodes[i];
    for (uint32_t k = 0; k < n->ninputs; k++) z->cons[z->pstart[n->inputs[k]]++] = (uint32_t)i;
  }
  materialize(z);
  if (z->oom) goto oom;
  memset(z->mark2, 0, sizeof *z->mark2 * n1); /* held the users */
  for (size_t i = 0; i < nn; i++) {
    f->stored_by[i] = -1;
    z->uf[i] = z->hfirst[i] = z->hlast[i] = (uint32_t)i;
    z->hnext[i] = z->anchor[i] = NONE;
    if (is_anchor(&g->nodes[i])) {
      z->anchor[i] = (uint32_t)i;
      z->kind[i] = (uint8_t)anchor_kind(&g->nodes[i]);
      z->role[i] = ROLE_OUTER;
    }
  }
  /* reductions share first: an epilogue reading both would join one */
  merge_all(z, true, SM_GROUP_REDUCE);
  merge_all(z, false, SM_GROUP_POINTWISE);
  merge_all(z, true, SM_GROUP_REDUCE);
  merge_all(z, true, SM_GROUP_POINTWISE);
  if (z->oom) goto oom;
  emit(z, f);
  if (z->oom) goto oom;
  for (size_t k = 0; k < nroots; k++) f->materialized[roots[k]] = true;
  for (size_t i = 0; i < nn; i++)
    if (f->stored_by[i] >= 0) f->materialized[i] = true;
  goto done;

oom:
  *err = NULL;
fail:
  sm_fusion_free(f);
  f = NULL;
done:
  sm_free(z->need);
  sm_free(z->root);
  sm_free(z->mat);
  sm_free(z->cstart);
  sm_free(z->cons);
  sm_free(z->uf);
  sm_free(z->hfirst);
  sm_free(z->hlast);
  sm_free(z->hnext);
  sm_free(z->anchor);
  sm_free(z->kind);
  sm_free(z->role);
  sm_free(z->mark);
  sm_free(z->mark2);
  sm_free(z->umark);
  sm_free(z->uidx);
  sm_free(z->sstart);
  sm_free(z->pstart);
  sm_free(z->succ.v);
  sm_free(z->stack.v);
  sm_free(z->members.v);
  sm_free(z->inputs.v);
  sm_free(z->units.v);
  sm_free(z->edges.v);
  return f;
}

/* ------------------------------------------------------------- printing */
static const char *kind_name(sm_group_kind k) {
  static const char *names[] = {"pointwise", "reduce", "matmul", "scatter"};
  return names[k];
}

static void put_ids(sm_buf *b, const smelt_graph *g, const char *label, const uint32_t *v,
                    size_t n) {
  sm_buf_printf(b, "  %s:", label);
  for (size_t k = 0; k < n; k++) {
    char id[128];
    sm_node_id(g, &g->nodes[v[k]], id, sizeof id);
    sm_buf_printf(b, " %s", id);
  }
  sm_buf_puts(b, "\n");
}

/* Buffers written by kernels that no root asks for. */
static size_t intermediates(const sm_fusion *f) {
  size_t n = 0;
  for (size_t i = 0; i < f->g->nnodes; i++) {
    if (f->stored_by[i] < 0) continue;
    bool is_root = false;
    for (size_t k = 0; k < f->nroots && !is_root; k++) is_root = f->roots[k] == i;
    n += !is_root;
  }
  return n;
}

char *sm_fusion_print(const sm_fusion *f) {
  sm_buf b = {0};
  const smelt_graph *g = f->g;
  for (size_t k = 0; k < f->ngroups; k++) {
    const sm_group *gr = &f->groups[k];
    char id[128];
    sm_node_id(g, &g->nodes[gr->anchor], id, sizeof id);
    sm_buf_printf(&b, "kernel k%zu %s anchor=%s\n", k, kind_name(gr->kind), id);
    put_ids(&b, g, "members", gr->members, gr->nmembers);
    put_ids(&b, g, "inputs", gr->inputs, gr->ninputs);
    put_ids(&b, g, "outputs", gr->outputs, gr->noutputs);
  }
  size_t ni = intermediates(f);
  sm_buf_printf(&b, "%zu kernel%s, %zu intermediate buffer%s\n", f->ngroups,
                f->ngroups == 1 ? "" : "s", ni, ni == 1 ? "" : "s");
  return sm_buf_take(&b);
}

/* DOT: one cluster per kernel; an inlined node shows in each kernel that
 * computes it (as k<group>_n<node>), buffers not written by a kernel
 * (inputs, params, constants) outside every cluster (as n<node>). */
char *sm_fusion_print_dot(const sm_fusion *f) {
  sm_buf b = {0};
  const smelt_graph *g = f->g;
  sm_buf_puts(&b, "digraph fusion {\n  node [shape=box, fontname=\"monospace\"];\n");
  for (size_t i = 0; i < g->nnodes; i++) {
    if (!f->materialized[i] || f->stored_by[i] >= 0) continue;
    char id[128];
    sm_node_id(g, &g->nodes[i], id, sizeof id);
    sm_buf_printf(&b, "  n%zu [label=\"%s %s\", style=filled, fillcolor=lightgrey];\n", i, id,
                  sm_ops[g->nodes[i].op].name);
  }
  for (size_t k = 0; k < f->ngroups; k++) {
    const sm_group *gr = &f->groups[k];
    sm_buf_printf(&b, "  subgraph cluster_k%zu {\n    label=\"k%zu %s\";\n", k, k,
                  kind_name(gr->kind));
    for (size_t m = 0; m < gr->nmembers; m++) {
      uint32_t i = gr->members[m];
      char id[128];
      sm_node_id(g, &g->nodes[i], id, sizeof id);
      bool stored = f->stored_by[i] == (int32_t)k;
      sm_buf_printf(&b, "    k%zu_n%u [label=\"%s %s\"%s];\n", k, i, id, sm_ops[g->nodes[i].op].name,
                    stored ? ", penwidth=3" : "");
    }
    sm_buf_puts(&b, "  }\n");
  }
  for (size_t k = 0; k < f->ngroups; k++) {
    const sm_group *gr = &f->groups[k];
    for (size_t m = 0; m < gr->nmembers; m++) {
      uint32_t i = gr->members[m];
      const sm_node *n = &g->nodes[i];
      for (uint32_t j = 0; j < n->ninputs; j++) {
        uint32_t in = n->inputs[j];
        /* a member input is computed here; otherwise it is a buffer */
        bool inside = bsearch(&in, gr->members, gr->nmembers, sizeof in, cmp_u32) != NULL;
        if (inside)
          sm_buf_printf(&b, "  k%zu_n%u -> k%zu_n%u;\n", k, in, k, i);
        else if (f->stored_by[in] >= 0)
          sm_buf_printf(&b, "  k%d_n%u -> k%zu_n%u;\n", f->stored_by[in], in, k, i);
        else
          sm_buf_printf(&b, "  n%u -> k%zu_n%u;\n", in, k, i);
      }
    }
  }
  sm_buf_puts(&b, "}\n");
  return sm_buf_take(&b);
}
