/* The kernel IR evaluator and the fusion + lowering pipeline of the tests
 * (see kernel_eval.h). Written to be obviously right, not fast. */
#include "kernel_eval.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/passes/passes.h"

enum { KD = SMELT_MAX_RANK + 1 };

static char *msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *msg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = malloc((size_t)n + 1);
  if (!s) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* ------------------------------------------------- scalars (as interp.c) */

typedef union kv {
  double f;
  int64_t i;
} kv;

static bool isf(int dt) { return sm_is_float((smelt_dtype)dt); }

/* int64 to f32 rounded once (interp.c's i64_to_f32). */
static float i64_to_f32(int64_t v) {
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  int shift = 0;
  while ((u >> shift) >= (1ull << 53)) shift++;
  uint64_t t = u >> shift;
  if (shift && (u & ((1ull << shift) - 1))) t |= 1;
  double d = ldexp((double)t, shift);
  return (float)(v < 0 ? -d : d);
}

/* Converts between dtypes as the interpreter's stores do. */
static kv conv(kv x, int from, int to) {
  kv r;
  if (isf(from)) {
    double v = x.f;
    switch (to) {
    case SMELT_F32: r.f = (float)v; break;
    case SMELT_F64: r.f = v; break;
    case SMELT_I32: r.i = sm_f_to_i32(v); break;
    case SMELT_I64: r.i = sm_f_to_i64(v); break;
    default: r.i = v != 0; break;
    }
  } else {
    int64_t v = x.i;
    switch (to) {
    case SMELT_F32: r.f = i64_to_f32(v); break;
    case SMELT_F64: r.f = (double)v; break;
    case SMELT_I32: r.i = (int32_t)(uint32_t)(uint64_t)v; break;
    case SMELT_I64: r.i = v; break;
    default: r.i = v != 0; break;
    }
  }
  return r;
}

static double as_f(kv x, int dt) { return isf(dt) ? x.f : (double)x.i; }

static kv read_el(const void *buf, int dt, int64_t off) {
  const unsigned char *p = (const unsigned char *)buf + (size_t)off * smelt_dtype_size((smelt_dtype)dt);
  kv r;
  switch (dt) {
  case SMELT_F32: { float v; memcpy(&v, p, 4); r.f = v; break; }
  case SMELT_F64: memcpy(&r.f, p, 8); break;
  case SMELT_I32: { int32_t v; memcpy(&v, p, 4); r.i = v; break; }
  case SMELT_I64: memcpy(&r.i, p, 8); break;
  default: r.i = *p != 0; break;
  }
  return r;
}

static void write_el(void *buf, int dt, int64_t off, kv x) {
  unsigned char *p = (unsigned char *)buf + (size_t)off * smelt_dtype_size((smelt_dtype)dt);
  switch (dt) {
  case SMELT_F32: { float v = (float)x.f; memcpy(p, &v, 4); break; }
  case SMELT_F64: memcpy(p, &x.f, 8); break;
  case SMELT_I32: { int32_t v = (int32_t)x.i; memcpy(p, &v, 4); break; }
  case SMELT_I64: memcpy(p, &x.i, 8); break;
  default: *p = x.i != 0; break;
  }
}

/* ----------------------------------------------------------- evaluator */

typedef struct ev {
  const sm_kernel *k;
  void *const *args;
  sm_kctx *ctx;
  char *err;
  int64_t idx[KD];
  kv *v;
  uint8_t *need_in, *need_out;
  int p; /* position in order of the first reduced loop (ndim: none) */
  int64_t nout; /* points of D \ R */
  kv *accv;     /* per acc and point of D \ R (register accumulators) */
  int64_t *acci;
} ev;

static void mark(const sm_kernel *k, int v, uint8_t *seen) {
  if (v < 0 || seen[v]) return;
  seen[v] = 1;
  const sm_kval *x = &k->vals[v];
  mark(k, x->a, seen), mark(k, x->b, seen), mark(k, x->c, seen);
}

/* Row-major position of the current point in D \ R (axis order). */
static int64_t outer_pos(const ev *e) {
  int64_t pos = 0;
  for (int d = 0; d < e->k->ndim; d++)
    if (!e->k->reduce[d]) pos = pos * e->k->extent[d] + e->idx[d];
  return pos;
}

static kv acc_get(ev *e, int a, int64_t pos, int64_t *index) {
  const sm_kacc *ac = &e->k->accs[a];
  if (ac->scratch >= 0) {
    if (index) *index = ac->scratch2 >= 0 ? read_el(e->args[ac->scratch2], SMELT_I64, pos).i : 0;
    return read_el(e->args[ac->scratch], ac->acc_dtype, pos);
  }
  if (index) *index = e->acci[a * e->nout + pos];
  return e->accv[a * e->nout + pos];
}

static void acc_set(ev *e, int a, int64_t pos, kv x, int64_t index) {
  const sm_kacc *ac = &e->k->accs[a];
  if (ac->scratch >= 0) {
    write_el(e->args[ac->scratch], ac->acc_dtype, pos, x);
    if (ac->scratch2 >= 0) write_el(e->args[ac->scratch2], SMELT_I64, pos, (kv){.i = index});
    return;
  }
  e->accv[a * e->nout + pos] = x;
  e->acci[a * e->nout + pos] = index;
}

static bool is_arg(int op) { return op == OP_ARGMAX || op == OP_ARGMIN; }

static bool in_bounds(ev *e, int arg, int64_t off, const char *what) {
  if (off >= 0 && off < e->k->args[arg].numel) return true;
  if (!e->err)
    e->err = msg("%s of b%d at offset %" PRId64 " outside [0, %" PRId64 ")", what, arg, off,
                 e->k->args[arg].numel);
  return false;
}

static kv eval_val(ev *e, int id) {
  const sm_kernel *k = e->k;
  const sm_kval *x = &k->vals[id];
  kv r = {.i = 0};
  switch ((sm_kval_kind)x->kind) {
  case KV_IDX: r.i = e->idx[x->axis]; break;
  case KV_AFFINE: {
    uint64_t s = (uint64_t)x->ival;
    for (int d = 0; d < k->ndim; d++) s += (uint64_t)x->coef[d] * (uint64_t)e->idx[d];
    r.i = (int64_t)s;
    break;
  }
  case KV_CONST:
    if (isf(x->dtype)) r.f = x->fval;
    else if (x->dtype == SMELT_BOOL) r.i = x->fval != 0;
    else r.i = x->ival;
    break;
  case KV_LOAD:
    if (x->b >= 0 && e->v[x->b].i == 0) {
      if (isf(x->dtype)) r.f = x->fval;
      else if (x->dtype == SMELT_BOOL) r.i = x->fval != 0;
      else r.i = x->ival;
    } else if (in_bounds(e, x->arg, e->v[x->a].i, "load")) {
      r = read_el(e->args[x->arg], x->dtype, e->v[x->a].i);
    }
    break;
  case KV_ELEM: {
    const sm_op_info *op = &sm_ops[x->op];
    if (x->op == OP_WHERE) {
      int pick = e->v[x->a].i != 0 ? x->b : x->c;
      r = conv(e->v[pick], k->vals[pick].dtype, x->dtype);
      break;
    }
    if (x->op == OP_CAST || x->op == OP_STOP_GRADIENT) {
      r = conv(e->v[x->a], k->vals[x->a].dtype, x->dtype);
      break;
    }
    int ops[2] = {x->a, x->b};
    bool use_f = !op->eval_i;
    for (int j = 0; j < 2; j++)
      if (ops[j] >= 0 && isf(k->vals[ops[j]].dtype)) use_f = true;
    if (use_f) {
      double a = as_f(e->v[x->a], k->vals[x->a].dtype);
      double b = x->b >= 0 ? as_f(e->v[x->b], k->vals[x->b].dtype) : 0.0;
      r = conv((kv){.f = op->eval_f(a, b)}, SMELT_F64, x->dtype);
    } else {
      int64_t a = e->v[x->a].i, b = x->b >= 0 ? e->v[x->b].i : 0;
      r = conv((kv){.i = op->eval_i(a, b)}, SMELT_I64, x->dtype);
    }
    break;
  }
  case KV_IDIV:
  case KV_IMOD: {
    int64_t a = e->v[x->a].i, b = e->v[x->b].i;
    if (b <= 0) {
      if (!e->err) e->err = msg("%%%d: division by %" PRId64, id, b);
      break;
    }
    r.i = x->kind == KV_IDIV ? a / b : a % b;
    break;
  }
  case KV_RAND: {
    uint64_t i = (uint64_t)e->v[x->a].i, seed = (uint64_t)x->ival;
    smelt_dtype dt = (smelt_dtype)x->dtype;
    double u = x->op == OP_RAND
                   ? x->fattr[0] + (x->fattr[1] - x->fattr[0]) * sm_rand_uniform_at(seed, e->ctx->rng_step, i, dt)
                   : x->fattr[0] + x->fattr[1] * sm_rand_normal_at(seed, e->ctx->rng_step, i, dt);
    r = conv((kv){.f = u}, SMELT_F64, dt);
    break;
  }
  case KV_TRAINING: r.i = e->ctx->training != 0; break;
  case KV_CHECK: {
    int64_t a = e->v[x->a].i;
    if (a >= 0 && a < x->ival) r.i = a;
    else if (!e->ctx->error) {
      e->ctx->error = 1;
      e->ctx->bad_index = a;
      e->ctx->bad_bound = x->ival;
    }
    break;
  }
  case KV_ACC: {
    const sm_kacc *ac = &k->accs[x->acc];
    int64_t index;
    kv a = acc_get(e, x->acc, outer_pos(e), &index);
    r = is_arg(ac->op) ? (kv){.i = index} : conv(a, ac->acc_dtype, x->dtype);
    break;
  }
  }
  return r;
}

static void do_store(ev *e, const sm_kstore *s) {
  int64_t off = e->v[s->index].i;
  if (!in_bounds(e, s->arg, off, "store")) return;
  int adt = e->k->args[s->arg].dtype;
  kv x = conv(e->v[s->value], e->k->vals[s->value].dtype, adt);
  if (s->accumulate) {
    kv cur = read_el(e->args[s->arg], adt, off);
    if (isf(adt)) x = conv((kv){.f = cur.f + x.f}, SMELT_F64, adt);
    else x = conv((kv){.i = (int64_t)((uint64_t)cur.i + (uint64_t)x.i)}, SMELT_I64, adt);
  }
  write_el(e->args[s->arg], adt, off, x);
}

static bool stopped(const ev *e) { return e->err || e->ctx->error; }

/* One point of D. */
static void body_inner(ev *e) {
  const sm_kernel *k = e->k;
  for (int i = 0; i < k->nvals && !stopped(e); i++)
    if (e->need_in[i] && !k->vals[i].outer) e->v[i] = eval_val(e, i);
  if (stopped(e)) return;
  int64_t pos = outer_pos(e);
  for (int a = 0; a < k->naccs; a++) {
    const sm_kacc *ac = &k->accs[a];
    int vdt = k->vals[ac->value].dtype;
    kv x = conv(e->v[ac->value], vdt, ac->acc_dtype);
    int64_t index;
    kv cur = acc_get(e, a, pos, &index);
    const sm_op_info *op = &sm_ops[ac->op];
    if (is_arg(ac->op)) {
      bool mx = ac->op == OP_ARGMAX, take;
      if (isf(ac->acc_dtype))
        take = !isnan(cur.f) && (isnan(x.f) || (mx ? x.f > cur.f : x.f < cur.f));
      else
        take = mx ? x.i > cur.i : x.i < cur.i;
      if (take) acc_set(e, a, pos, x, e->idx[ac->axis]);
    } else if (isf(ac->acc_dtype)) {
      acc_set(e, a, pos, conv((kv){.f = op->eval_f(cur.f, x.f)}, SMELT_F64, ac->acc_dtype), 0);
    } else {
      acc_set(e, a, pos, conv((kv){.i = op->eval_i(cur.i, x.i)}, SMELT_I64, ac->acc_dtype), 0);
    }
  }
  for (int i = 0; i < k->nstores && !stopped(e); i++)
    if (!k->stores[i].outer) do_store(e, &k->stores[i]);
}

static void acc_init(ev *e) {
  int64_t pos = outer_pos(e);
  for (int a = 0; a < e->k->naccs; a++) {
    const sm_kacc *ac = &e->k->accs[a];
    kv x;
    if (isf(ac->acc_dtype)) x.f = sm_reduce_identity_f((sm_op)ac->op);
    else x.i = sm_reduce_identity_i((sm_op)ac->op, (smelt_dtype)ac->acc_dtype);
    acc_set(e, a, pos, x, 0);
  }
}

/* One point of D \ R, after the reductions (reduced indices 0). */
static void body_outer(ev *e) {
  const sm_kernel *k = e->k;
  for (int i = 0; i < k->nvals && !stopped(e); i++)
    if (e->need_out[i]) e->v[i] = eval_val(e, i);
  for (int i = 0; i < k->nstores && !stopped(e); i++)
    if (k->stores[i].outer) do_store(e, &k->stores[i]);
}

enum { DO_INIT, DO_INNER, DO_FINAL };

/* Loops from position i of the order. DO_INNER runs every loop; the others
 * walk only the non-reduced ones (reduced indices at 0). */
static void loops(ev *e, int i, int what) {
  const sm_kernel *k = e->k;
  if (stopped(e)) return;
  if (i == k->ndim) {
    if (what == DO_INIT) acc_init(e);
    else if (what == DO_INNER) body_inner(e);
    else body_outer(e);
    return;
  }
  int d = k->order[i];
  if (what != DO_INNER && k->reduce[d]) {
    e->idx[d] = 0;
    loops(e, i + 1, what);
    return;
  }
  for (e->idx[d] = 0; e->idx[d] < k->extent[d] && !stopped(e); e->idx[d]++) loops(e, i + 1, what);
  e->idx[d] = 0;
}

/* The loops outside the first reduced one; inside, the accumulators of
 * the enclosed points of D \ R are initialized, reduced and finished. */
static void outer_loops(ev *e, int i) {
  const sm_kernel *k = e->k;
  if (stopped(e)) return;
  if (i == e->p) {
    loops(e, i, DO_INIT);
    loops(e, i, DO_INNER);
    loops(e, i, DO_FINAL);
    return;
  }
  int d = k->order[i];
  for (e->idx[d] = 0; e->idx[d] < k->extent[d] && !stopped(e); e->idx[d]++) outer_loops(e, i + 1);
  e->idx[d] = 0;
}

int ke_run(const sm_kernel *k, void *const *args, sm_kctx *ctx, char **err) {
  *err = NULL;
  ev e;
  memset(&e, 0, sizeof e);
  e.k = k;
  e.args = args;
  e.ctx = ctx;
  /* the order must be a permutation */
  bool seen[KD] = {false};
  for (int i = 0; i < k->ndim; i++) {
    int d = k->order[i];
    if (d < 0 || d >= k->ndim || seen[d]) {
      *err = msg("kernel %s: order is not a permutation", k->name);
      return -1;
    }
    seen[d] = true;
  }
  e.nout = 1;
  for (int d = 0; d < k->ndim; d++)
    if (!k->reduce[d]) e.nout *= k->extent[d];
  e.p = k->ndim;
  for (int i = k->ndim - 1; i >= 0; i--)
    if (k->reduce[k->order[i]]) e.p = i;
  size_t nv = (size_t)(k->nvals ? k->nvals : 1), na = (size_t)(k->naccs ? k->naccs : 1);
  size_t no = (size_t)(e.nout ? e.nout : 1);
  e.v = calloc(nv, sizeof *e.v);
  e.need_in = calloc(nv, 1);
  e.need_out = calloc(nv, 1);
  e.accv = calloc(na * no, sizeof *e.accv);
  e.acci = calloc(na * no, sizeof *e.acci);
  if (!e.v || !e.need_in || !e.need_out || !e.accv || !e.acci) {
    e.err = msg("out of memory");
  } else {
    for (int a = 0; a < k->naccs; a++) mark(k, k->accs[a].value, e.need_in);
    for (int i = 0; i < k->nstores; i++) {
      uint8_t *need = k->stores[i].outer ? e.need_out : e.need_in;
      mark(k, k->stores[i].index, need);
      mark(k, k->stores[i].value, need);
    }
    /* stores that accumulate start from zeros */
    for (int i = 0; i < k->nstores; i++)
      if (k->stores[i].accumulate) {
        const sm_karg *a = &k->args[k->stores[i].arg];
        memset(args[k->stores[i].arg], 0, (size_t)a->numel * smelt_dtype_size((smelt_dtype)a->dtype));
      }
    bool empty = false;
    for (int d = 0; d < k->ndim; d++)
      if (!k->reduce[d] && k->extent[d] == 0) empty = true;
    if (!empty) outer_loops(&e, 0);
  }
  free(e.v), free(e.need_in), free(e.need_out), free(e.accv), free(e.acci);
  if (e.err) {
    *err = e.err;
    return -1;
  }
  if (ctx->error) {
    *err = msg("index %" PRId64 " is out of range for an axis of size %" PRId64, ctx->bad_index,
               ctx->bad_bound);
    return -1;
  }
  return 0;
}

/* ----------------------------------------------------------- partitions */

void ke_fusion_free(sm_fusion *f) {
  if (!f) return;
  for (size_t i = 0; i < f->ngroups; i++) {
    sm_free(f->groups[i].members);
    sm_free(f->groups[i].outputs);
    sm_free(f->groups[i].inputs);
  }
  sm_free(f->groups);
  sm_free(f->stored_by);
  sm_free(f->materialized);
  sm_free(f->roots);
  sm_free(f);
}

static bool is_buffer_source(const sm_node *n) {
  return n->op == OP_INPUT || n->op == OP_PARAM ||
         (n->op == OP_CONST && sm_numel(n->rank, n->shape) != 1);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static uint32_t *dup_sorted(int n, const uint32_t *v) {
  uint32_t *p = sm_malloc(sizeof *p * (size_t)(n ? n : 1));
  memcpy(p, v, sizeof *p * (size_t)n);
  qsort(p, (size_t)n, sizeof *p, cmp_u32);
  return p;
}

/* Fills inputs of group gr: materialized non-members reached from its
 * members. */
static void group_inputs(sm_fusion *f, sm_group *gr) {
  const smelt_graph *g = f->g;
  bool *in = calloc(g->nnodes, 1), *mem = calloc(g->nnodes, 1);
  for (size_t i = 0; i < gr->nmembers; i++) mem[gr->members[i]] = true;
  for (size_t i = 0; i < gr->nmembers; i++) {
    const sm_node *n = &g->nodes[gr->members[i]];
    for (uint32_t j = 0; j < n->ninputs; j++)
      if (!mem[n->inputs[j]] && f->materialized[n->inputs[j]]) in[n->inputs[j]] = true;
  }
  gr->inputs = sm_malloc(sizeof(uint32_t) * (g->nnodes ? g->nnodes : 1));
  gr->ninputs = 0;
  for (size_t i = 0; i < g->nnodes; i++)
    if (in[i]) gr->inputs[gr->ninputs++] = (uint32_t)i;
  free(in), free(mem);
}

sm_fusion *ke_fusion_new(const smelt_graph *g, int ngroups, const ke_group_desc *groups,
                         int nroots, const uint32_t *roots) {
  sm_fusion *f = sm_calloc(1, sizeof *f);
  size_t nn = g->nnodes;
  f->g = g;
  f->groups = sm_calloc((size_t)(ngroups ? ngroups : 1), sizeof *f->groups);
  f->ngroups = (size_t)ngroups;
  f->stored_by = sm_malloc(sizeof *f->stored_by * nn);
  f->materialized = sm_calloc(nn, sizeof *f->materialized);
  f->roots = dup_sorted(nroots, roots);
  memcpy(f->roots, roots, sizeof *roots * (size_t)nroots);
  f->nroots = (size_t)nroots;
  for (size_t i = 0; i < nn; i++) f->stored_by[i] = -1;
  for (int r = 0; r < nroots; r++) f->materialized[roots[r]] = true;
  for (int gi = 0; gi < ngroups; gi++) {
    sm_group *gr = &f->groups[gi];
    gr->kind = groups[gi].kind;
    gr->anchor = groups[gi].anchor;
    gr->members = dup_sorted(groups[gi].nmembers, groups[gi].members);
    gr->nmembers = (size_t)groups[gi].nmembers;
    gr->outputs = dup_sorted(groups[gi].noutputs, groups[gi].outputs);
    gr->noutputs = (size_t)groups[gi].noutputs;
    for (size_t j = 0; j < gr->noutputs; j++) {
      f->materialized[gr->outputs[j]] = true;
      f->stored_by[gr->outputs[j]] = gi;
    }
  }
  for (size_t i = 0; i < nn; i++)
    if (is_buffer_source(&g->nodes[i])) f->materialized[i] = true;
  for (int gi = 0; gi < ngroups; gi++) group_inputs(f, &f->groups[gi]);
  return f;
}

/* Collects into mem the nodes computed inline for node ni: ni and its
 * producers up to materialized ones. */
static void closure(const smelt_graph *g, const bool *mat, uint32_t ni, bool *mem, bool top) {
  if (mem[ni] || (!top && mat[ni])) return;
  const sm_node *n = &g->nodes[ni];
  if (is_buffer_source(n)) return;
  mem[ni] = true;
  for (uint32_t j = 0; j < n->ninputs; j++) closure(g, mat, n->inputs[j], mem, false);
}

static sm_fusion *simple_partition(const smelt_graph *g, int nroots, const uint32_t *roots,
                                   ke_fuse_mode mode) {
  size_t nn = g->nnodes;
  bool *need = calloc(nn, 1), *mat = calloc(nn, 1);
  for (int r = 0; r < nroots; r++) need[roots[r]] = true;
  for (size_t i = nn; i-- > 0;)
    if (need[i])
      for (uint32_t j = 0; j < g->nodes[i].ninputs; j++) need[g->nodes[i].inputs[j]] = true;
  for (size_t i = 0; i < nn; i++) {
    if (!need[i]) continue;
    const sm_node *n = &g->nodes[i];
    int cls = sm_ops[n->op].cls;
    if (is_buffer_source(n)) mat[i] = true;
    else if (n->op == OP_CONST) continue;
    else if (cls == OPC_REDUCE || cls == OPC_ARGREDUCE || cls == OPC_MATMUL || cls == OPC_SCATTER)
      mat[i] = true;
    else if (mode == KE_FUSE_NONE && cls != OPC_VIEW && cls != OPC_PAD)
      mat[i] = true;
  }
  for (int r = 0; r < nroots; r++) mat[roots[r]] = true;
  ke_group_desc *gd = calloc(nn ? nn : 1, sizeof *gd);
  uint32_t *mbuf = calloc(nn ? nn : 1, sizeof *mbuf * nn), *obuf = calloc(nn ? nn : 1, sizeof *obuf);
  bool *mem = calloc(nn, 1);
  int ng = 0;
  size_t used = 0;
  for (size_t i = 0; i < nn; i++) {
    const sm_node *n = &g->nodes[i];
    if (!mat[i] || is_buffer_source(n) || n->op == OP_CONST) continue;
    memset(mem, 0, nn);
    closure(g, mat, (uint32_t)i, mem, true);
    int cls = sm_ops[n->op].cls;
    ke_group_desc *d = &gd[ng++];
    d->kind = cls == OPC_REDUCE || cls == OPC_ARGREDUCE ? SM_GROUP_REDUCE
              : cls == OPC_MATMUL                      ? SM_GROUP_MATMUL
              : cls == OPC_SCATTER                     ? SM_GROUP_SCATTER
                                                       : SM_GROUP_POINTWISE;
    d->anchor = (uint32_t)i;
    d->members = mbuf + used;
    for (size_t j = 0; j < nn; j++)
      if (mem[j]) mbuf[used + (size_t)d->nmembers++] = (uint32_t)j;
    used += (size_t)d->nmembers;
    obuf[i] = (uint32_t)i;
    d->outputs = &obuf[i];
    d->noutputs = 1;
  }
  sm_fusion *f = ke_fusion_new(g, ng, gd, nroots, roots);
  free(need), free(mat), free(gd), free(mbuf), free(obuf), free(mem);
  return f;
}

/* ------------------------------------------------------------ pipeline */

ke_opts ke_defaults(void) {
  ke_opts o;
  memset(&o, 0, sizeof o);
  o.mode = KE_FUSE_REAL;
  o.training = true;
  return o;
}

char *ke_run_graph(smelt_graph *g, int nroots, const smelt_node *roots, void **results,
                   int nbind, const tu_bind *binds, const ke_opts *opts, int *nkernels) {
  ke_opts o = opts ? *opts : ke_defaults();
  for (int i = 0; i < nroots; i++) results[i] = NULL;
  if (nkernels) *nkernels = 0;
  if (smelt_graph_error(g)) return msg("graph error: %s", smelt_graph_error(g));
  char *err = NULL;
  uint32_t *r0 = calloc((size_t)nroots + 1, sizeof *r0), *r2 = calloc((size_t)nroots + 1, sizeof *r2);
  uint32_t *map = calloc(g->nnodes + 1, sizeof *map);
  for (int i = 0; i < nroots; i++) {
    const sm_node *n = sm_get(g, roots[i]);
    if (!n) {
      free(r0), free(r2), free(map);
      return msg("root %d is invalid", i);
    }
    r0[i] = (uint32_t)(n - g->nodes);
  }
  smelt_graph *g2 = sm_pass_simplify(g, (size_t)nroots, r0, map);
  sm_fusion *f = NULL;
  void **bufs = NULL;
  bool *owned = NULL;
  smelt_interp *it = NULL;
  if (!g2) {
    err = msg("simplify failed");
    goto done;
  }
  for (int i = 0; i < nroots; i++) r2[i] = map[r0[i]] - 1;
  if (o.mode == KE_FUSE_REAL) {
    char *ferr = NULL;
    f = sm_fuse(g2, (size_t)nroots, r2, &ferr);
    if (!f) {
      err = msg("fuse: %s", ferr ? ferr : "out of memory");
      sm_free(ferr);
      goto done;
    }
  } else {
    f = simple_partition(g2, nroots, r2, o.mode);
  }
  size_t nn = g2->nnodes;
  bufs = calloc(nn, sizeof *bufs);
  owned = calloc(nn, sizeof *owned);
  /* params: their initial values, from the interpreter */
  uint32_t *params = calloc(nn + 1, sizeof *params);
  size_t np = 0;
  for (size_t i = 0; i < nn; i++)
    if (f->materialized[i] && g2->nodes[i].op == OP_PARAM) params[np++] = (uint32_t)i;
  if (np) {
    it = smelt_interp_new(g2);
    if (sm_interp_run_roots(it, np, params, NULL)) {
      err = msg("params: %s", smelt_interp_error(it));
      free(params);
      goto done;
    }
  }
  size_t pk = 0;
  for (size_t i = 0; i < nn && !err; i++) {
    const sm_node *n = &g2->nodes[i];
    if (!f->materialized[i]) continue;
    size_t bytes = (size_t)sm_numel(n->rank, n->shape) * smelt_dtype_size((smelt_dtype)n->dtype);
    if (n->op == OP_INPUT) {
      for (int b = 0; b < nbind; b++)
        if (strcmp(binds[b].name, n->name) == 0) bufs[i] = (void *)(uintptr_t)binds[b].data;
      if (!bufs[i] && bytes) err = msg("input %s is not bound", n->name);
      continue;
    }
    if (n->op == OP_CONST) {
      bufs[i] = n->data;
      continue;
    }
    bufs[i] = calloc(bytes ? bytes : 1, 1);
    owned[i] = true;
    if (n->op == OP_PARAM) sm_interp_read_root(it, pk++, (uint32_t)i, bufs[i]);
  }
  free(params);
  if (err) goto done;
  for (size_t gi = 0; gi < f->ngroups && !err; gi++) {
    char *lerr = NULL;
    sm_kernel *k = sm_lower_group(f, gi, o.reassociate, &lerr);
    if (!k) {
      err = msg("lower group %zu: %s", gi, lerr ? lerr : "out of memory");
      sm_free(lerr);
      break;
    }
    if (nkernels) (*nkernels)++;
    if (o.print) {
      char *t = sm_kernel_print(k);
      fprintf(stderr, "%s", t ? t : "(oom)\n");
      sm_free(t);
    }
    void **args = calloc((size_t)k->nargs + 1, sizeof *args);
    bool *scr = calloc((size_t)k->nargs + 1, 1);
    for (int a = 0; a < k->nargs && !err; a++) {
      const sm_karg *ka = &k->args[a];
      size_t es = smelt_dtype_size((smelt_dtype)ka->dtype);
      if (ka->role == KA_SCRATCH) {
        args[a] = calloc((size_t)ka->numel * es + 1, 1);
        scr[a] = true;
        continue;
      }
      const sm_node *n = &g2->nodes[ka->node];
      if (ka->node >= nn || !f->materialized[ka->node] || ka->dtype != n->dtype ||
          ka->numel != sm_numel(n->rank, n->shape))
        err = msg("kernel %s: arg b%d does not match node %" PRIu32, k->name, a, ka->node);
      args[a] = bufs[ka->node];
    }
    if (!err) {
      sm_kctx ctx = {o.rng_step, o.training, 0, 0, 0};
      char *kerr = NULL;
      if (ke_run(k, args, &ctx, &kerr)) err = kerr;
    }
    for (int a = 0; a < k->nargs; a++)
      if (scr[a]) free(args[a]);
    free(args), free(scr);
    sm_kernel_free(k);
  }
  for (int r = 0; r < nroots && !err; r++) {
    const sm_node *n = &g2->nodes[r2[r]];
    size_t bytes = (size_t)sm_numel(n->rank, n->shape) * smelt_dtype_size((smelt_dtype)n->dtype);
    results[r] = malloc(bytes ? bytes : 1);
    if (bytes) memcpy(results[r], bufs[r2[r]], bytes);
  }
done:
  if (err)
    for (int r = 0; r < nroots; r++) free(results[r]), results[r] = NULL;
  if (bufs)
    for (size_t i = 0; i < g2->nnodes; i++)
      if (owned[i]) free(bufs[i]);
  free(bufs), free(owned);
  smelt_interp_free(it);
  if (f) {
    if (o.mode == KE_FUSE_REAL) sm_fusion_free(f);
    else ke_fusion_free(f);
  }
  smelt_graph_free(g2);
  free(r0), free(r2), free(map);
  return err;
}
