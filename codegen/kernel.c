/* The kernel IR: builders (with hash-consing of values) and the printer. */
#include "kernel.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

sm_kernel *sm_kernel_new(const char *name, sm_kernel_kind kind, int ndim, const int64_t *extent,
                         const uint8_t *reduce) {
  if (ndim < 0 || ndim > SMELT_MAX_RANK + 1) return NULL;
  sm_kernel *k = sm_calloc(1, sizeof *k);
  if (!k) return NULL;
  snprintf(k->name, sizeof k->name, "%s", name ? name : "k");
  k->kind = kind;
  k->ndim = ndim;
  k->par_axis = -1;
  for (int d = 0; d < ndim; d++) {
    k->extent[d] = extent[d];
    k->reduce[d] = reduce ? reduce[d] : 0;
    k->order[d] = d;
    if (k->par_axis < 0 && !k->reduce[d]) k->par_axis = d;
  }
  k->mm_m = k->mm_n = k->mm_k = -1;
  k->mm_a = k->mm_b = k->mm_acc = -1;
  return k;
}

void sm_kernel_free(sm_kernel *k) {
  if (!k) return;
  for (int i = 0; i < k->nvals; i++) sm_free(k->vals[i].coef);
  sm_free(k->vals);
  sm_free(k->args);
  sm_free(k->accs);
  sm_free(k->stores);
  sm_free(k->table);
  sm_free(k);
}

/* Grows an array of elements of size sz to hold one more; false on OOM. */
static bool grow(sm_kernel *k, void **arr, int n, int *cap, size_t sz) {
  if (k->oom) return false;
  if (n < *cap) return true;
  int nc = *cap ? 2 * *cap : 16;
  void *p = sm_realloc(*arr, (size_t)nc * sz);
  if (!p) {
    k->oom = true;
    return false;
  }
  *arr = p;
  *cap = nc;
  return true;
}

int sm_kernel_arg(sm_kernel *k, uint32_t node, smelt_dtype dt, sm_karg_role role, int64_t numel) {
  for (int i = 0; i < k->nargs; i++)
    if (k->args[i].node == node && k->args[i].role == role) return i;
  if (!grow(k, (void **)&k->args, k->nargs, &k->cap_args, sizeof *k->args)) return -1;
  k->args[k->nargs] = (sm_karg){node, (uint8_t)dt, (uint8_t)role, numel};
  return k->nargs++;
}

int sm_kernel_scratch(sm_kernel *k, uint32_t node, smelt_dtype dt, int64_t numel) {
  if (!grow(k, (void **)&k->args, k->nargs, &k->cap_args, sizeof *k->args)) return -1;
  k->args[k->nargs] = (sm_karg){node, (uint8_t)dt, (uint8_t)KA_SCRATCH, numel};
  return k->nargs++;
}

/* ------------------------------------------------------ hash-consing */

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h;
}

static uint64_t val_hash(const sm_kernel *k, const sm_kval *v) {
  uint64_t h = mix(v->kind, v->dtype);
  h = mix(h, v->op);
  h = mix(h, (uint64_t)(uint32_t)v->a);
  h = mix(h, (uint64_t)(uint32_t)v->b);
  h = mix(h, (uint64_t)(uint32_t)v->c);
  h = mix(h, (uint64_t)(uint32_t)v->axis);
  h = mix(h, (uint64_t)(uint32_t)v->arg);
  h = mix(h, (uint64_t)(uint32_t)v->acc);
  h = mix(h, (uint64_t)v->ival);
  uint64_t f;
  memcpy(&f, &v->fval, sizeof f);
  h = mix(h, f);
  for (int i = 0; i < 2; i++) {
    memcpy(&f, &v->fattr[i], sizeof f);
    h = mix(h, f);
  }
  if (v->coef)
    for (int d = 0; d < k->ndim; d++) h = mix(h, (uint64_t)v->coef[d]);
  return h;
}

static bool val_equal(const sm_kernel *k, const sm_kval *x, const sm_kval *y) {
  if (x->kind != y->kind || x->dtype != y->dtype || x->op != y->op || x->a != y->a ||
      x->b != y->b || x->c != y->c || x->axis != y->axis || x->arg != y->arg ||
      x->acc != y->acc || x->ival != y->ival)
    return false;
  /* bitwise: -0.0 and 0.0 differ, NaN equals itself */
  if (memcmp(&x->fval, &y->fval, sizeof x->fval) || memcmp(x->fattr, y->fattr, sizeof x->fattr))
    return false;
  if (!x->coef != !y->coef) return false;
  return !x->coef || memcmp(x->coef, y->coef, sizeof(int64_t) * (size_t)k->ndim) == 0;
}

static bool rehash(sm_kernel *k, int cap) {
  int32_t *t = sm_calloc((size_t)cap, sizeof *t);
  if (!t) return false;
  for (int i = 0; i < k->nvals; i++) {
    uint64_t h = val_hash(k, &k->vals[i]);
    int j = (int)(h & (uint64_t)(cap - 1));
    while (t[j]) j = (j + 1) & (cap - 1);
    t[j] = i + 1;
  }
  sm_free(k->table);
  k->table = t;
  k->table_cap = cap;
  return true;
}

/* Interns *v (taking ownership of v->coef); returns its id or -1. */
static int intern(sm_kernel *k, sm_kval *v) {
  if (k->oom) {
    sm_free(v->coef);
    return -1;
  }
  if (2 * (k->nvals + 1) > k->table_cap && !rehash(k, k->table_cap ? 2 * k->table_cap : 64)) {
    k->oom = true;
    sm_free(v->coef);
    return -1;
  }
  uint64_t h = val_hash(k, v);
  int j = (int)(h & (uint64_t)(k->table_cap - 1));
  for (; k->table[j]; j = (j + 1) & (k->table_cap - 1)) {
    int id = k->table[j] - 1;
    if (val_equal(k, &k->vals[id], v)) {
      sm_free(v->coef);
      return id;
    }
  }
  if (!grow(k, (void **)&k->vals, k->nvals, &k->cap_vals, sizeof *k->vals)) {
    sm_free(v->coef);
    return -1;
  }
  v->outer = v->kind == KV_ACC;
  int ops[3] = {v->a, v->b, v->c};
  for (int i = 0; i < 3; i++)
    if (ops[i] >= 0 && k->vals[ops[i]].outer) v->outer = 1;
  k->vals[k->nvals] = *v;
  k->table[j] = k->nvals + 1;
  return k->nvals++;
}

static sm_kval blank(sm_kval_kind kind, smelt_dtype dt) {
  sm_kval v;
  memset(&v, 0, sizeof v);
  v.kind = (uint8_t)kind;
  v.dtype = (uint8_t)dt;
  v.a = v.b = v.c = v.axis = v.arg = v.acc = -1;
  return v;
}

static bool valid_id(const sm_kernel *k, int id) { return id >= 0 && id < k->nvals; }

int sm_kv_idx(sm_kernel *k, int axis) {
  if (axis < 0 || axis >= k->ndim) return -1;
  sm_kval v = blank(KV_IDX, SMELT_I64);
  v.axis = axis;
  return intern(k, &v);
}

int sm_kv_affine(sm_kernel *k, int64_t offset, const int64_t *coef) {
  int nz = 0, last = -1;
  for (int d = 0; d < k->ndim; d++)
    if (coef[d]) nz++, last = d;
  /* canonical forms: a constant, or a bare index */
  if (nz == 0) return sm_kv_const_i(k, SMELT_I64, offset);
  if (nz == 1 && offset == 0 && coef[last] == 1) return sm_kv_idx(k, last);
  sm_kval v = blank(KV_AFFINE, SMELT_I64);
  v.ival = offset;
  v.coef = sm_malloc(sizeof(int64_t) * (size_t)k->ndim);
  if (!v.coef) {
    k->oom = true;
    return -1;
  }
  memcpy(v.coef, coef, sizeof(int64_t) * (size_t)k->ndim);
  return intern(k, &v);
}

int sm_kv_const_f(sm_kernel *k, smelt_dtype dt, double x) {
  if (!sm_is_float(dt) && dt != SMELT_BOOL) return sm_kv_const_i(k, dt, (int64_t)x);
  sm_kval v = blank(KV_CONST, dt);
  v.fval = dt == SMELT_BOOL ? (x != 0) : dt == SMELT_F32 ? (double)(float)x : x;
  return intern(k, &v);
}

int sm_kv_const_i(sm_kernel *k, smelt_dtype dt, int64_t x) {
  if (sm_is_float(dt) || dt == SMELT_BOOL) return sm_kv_const_f(k, dt, (double)x);
  sm_kval v = blank(KV_CONST, dt);
  v.ival = dt == SMELT_I32 ? (int64_t)(int32_t)x : x;
  return intern(k, &v);
}

int sm_kv_load(sm_kernel *k, int arg, int index, int valid, double ffill, int64_t ifill) {
  if (arg < 0 || arg >= k->nargs || !valid_id(k, index) || (valid >= 0 && !valid_id(k, valid)))
    return -1;
  smelt_dtype dt = (smelt_dtype)k->args[arg].dtype;
  sm_kval v = blank(KV_LOAD, dt);
  v.arg = arg;
  v.a = index;
  v.b = valid;
  if (valid >= 0) {
    if (sm_is_float(dt) || dt == SMELT_BOOL) v.fval = dt == SMELT_BOOL ? (ffill != 0) : ffill;
    else v.ival = ifill;
  }
  return intern(k, &v);
}

int sm_kv_elem(sm_kernel *k, sm_op op, smelt_dtype dt, int a, int b, int c) {
  if ((unsigned)op >= OP_COUNT) return -1;
  int arity = sm_ops[op].arity;
  if (!valid_id(k, a) || (arity >= 2 && !valid_id(k, b)) || (arity >= 3 && !valid_id(k, c)))
    return -1;
  sm_kval v = blank(KV_ELEM, dt);
  v.op = (uint16_t)op;
  v.a = a;
  v.b = arity >= 2 ? b : -1;
  v.c = arity >= 3 ? c : -1;
  return intern(k, &v);
}

static int index_op(sm_kernel *k, sm_kval_kind kind, int a, int b) {
  if (!valid_id(k, a) || !valid_id(k, b)) return -1;
  sm_kval v = blank(kind, SMELT_I64);
  v.a = a;
  v.b = b;
  return intern(k, &v);
}
int sm_kv_idiv(sm_kernel *k, int a, int b) { return index_op(k, KV_IDIV, a, b); }
int sm_kv_imod(sm_kernel *k, int a, int b) { return index_op(k, KV_IMOD, a, b); }

int sm_kv_rand(sm_kernel *k, sm_op op, smelt_dtype dt, uint64_t seed, double p0, double p1,
               int linear_index) {
  if ((op != OP_RAND && op != OP_RANDN) || !valid_id(k, linear_index)) return -1;
  sm_kval v = blank(KV_RAND, dt);
  v.op = (uint16_t)op;
  v.ival = (int64_t)seed;
  v.fattr[0] = p0;
  v.fattr[1] = p1;
  v.a = linear_index;
  return intern(k, &v);
}

int sm_kv_training(sm_kernel *k) {
  sm_kval v = blank(KV_TRAINING, SMELT_BOOL);
  return intern(k, &v);
}

int sm_kv_check(sm_kernel *k, int a, int64_t bound) {
  if (!valid_id(k, a)) return -1;
  sm_kval v = blank(KV_CHECK, SMELT_I64);
  v.a = a;
  v.ival = bound;
  return intern(k, &v);
}

int sm_kernel_acc(sm_kernel *k, sm_op op, smelt_dtype dt, smelt_dtype acc_dtype, int value,
                  int axis, int scratch, int scratch2) {
  if (!valid_id(k, value) || k->vals[value].outer) return -1;
  if (!grow(k, (void **)&k->accs, k->naccs, &k->cap_accs, sizeof *k->accs)) return -1;
  k->accs[k->naccs] =
      (sm_kacc){(uint16_t)op, (uint8_t)dt, (uint8_t)acc_dtype, value, axis, scratch, scratch2};
  return k->naccs++;
}

int sm_kv_acc(sm_kernel *k, int acc) {
  if (acc < 0 || acc >= k->naccs) return -1;
  sm_kval v = blank(KV_ACC, (smelt_dtype)k->accs[acc].dtype);
  v.acc = acc;
  return intern(k, &v);
}

int sm_kernel_store(sm_kernel *k, int arg, int index, int value, bool outer, bool accumulate) {
  if (arg < 0 || arg >= k->nargs || !valid_id(k, index) || !valid_id(k, value)) return -1;
  if (!grow(k, (void **)&k->stores, k->nstores, &k->cap_stores, sizeof *k->stores)) return -1;
  k->stores[k->nstores] = (sm_kstore){arg, index, value, outer, accumulate};
  return k->nstores++;
}

static void sweep_mark(const sm_kernel *k, int v, int32_t *map) {
  while (v >= 0 && !map[v]) {
    map[v] = 1;
    const sm_kval *x = &k->vals[v];
    sweep_mark(k, x->b, map);
    sweep_mark(k, x->c, map);
    v = x->a;
  }
}

bool sm_kernel_sweep(sm_kernel *k) {
  if (k->oom) return false;
  int32_t *map = sm_calloc((size_t)k->nvals + 1, sizeof *map);
  if (!map) return false;
  for (int i = 0; i < k->nstores; i++) {
    sweep_mark(k, k->stores[i].index, map);
    sweep_mark(k, k->stores[i].value, map);
  }
  for (int i = 0; i < k->naccs; i++) sweep_mark(k, k->accs[i].value, map);
  sweep_mark(k, k->mm_a, map);
  sweep_mark(k, k->mm_b, map);
  int n = 0;
  for (int v = 0; v < k->nvals; v++) {
    if (!map[v]) {
      sm_free(k->vals[v].coef);
      map[v] = -1;
      continue;
    }
    /* operands come before their users: already renumbered */
    sm_kval x = k->vals[v];
    if (x.a >= 0) x.a = map[x.a];
    if (x.b >= 0) x.b = map[x.b];
    if (x.c >= 0) x.c = map[x.c];
    k->vals[n] = x;
    map[v] = n++;
  }
  bool changed = n != k->nvals;
  k->nvals = n;
  for (int i = 0; i < k->nstores; i++) {
    k->stores[i].index = map[k->stores[i].index];
    k->stores[i].value = map[k->stores[i].value];
  }
  for (int i = 0; i < k->naccs; i++) k->accs[i].value = map[k->accs[i].value];
  if (k->mm_a >= 0) k->mm_a = map[k->mm_a];
  if (k->mm_b >= 0) k->mm_b = map[k->mm_b];
  sm_free(map);
  if (changed && !rehash(k, k->table_cap ? k->table_cap : 64)) {
    k->oom = true;
    return false;
  }
  return true;
}

bool sm_kval_invariant(const sm_kernel *k, int v, int axis) {
  const sm_kval *x = &k->vals[v];
  switch ((sm_kval_kind)x->kind) {
  case KV_IDX: return x->axis != axis;
  case KV_AFFINE: return x->coef[axis] == 0;
  case KV_ACC: return k->reduce[axis] != 0; /* one value per output point */
  default: break;
  }
  int ops[3] = {x->a, x->b, x->c};
  for (int i = 0; i < 3; i++)
    if (ops[i] >= 0 && !sm_kval_invariant(k, ops[i], axis)) return false;
  return true;
}

/* ---------------------------------------------------------- identities */

double sm_reduce_identity_f(sm_op op) {
  switch (op) {
  case OP_REDUCE_SUM: return 0.0;
  case OP_REDUCE_PROD: return 1.0;
  case OP_REDUCE_MAX:
  case OP_ARGMAX: return -INFINITY;
  case OP_REDUCE_MIN:
  case OP_ARGMIN: return INFINITY;
  default: return 0.0;
  }
}

int64_t sm_reduce_identity_i(sm_op op, smelt_dtype dt) {
  bool wide = dt == SMELT_I64;
  switch (op) {
  case OP_REDUCE_SUM: return 0;
  case OP_REDUCE_PROD: return 1;
  case OP_REDUCE_MAX:
  case OP_ARGMAX: return dt == SMELT_BOOL ? 0 : wide ? INT64_MIN : INT32_MIN;
  case OP_REDUCE_MIN:
  case OP_ARGMIN: return dt == SMELT_BOOL ? 1 : wide ? INT64_MAX : INT32_MAX;
  default: return 0;
  }
}

/* -------------------------------------------------------------- printer */

bool sm_kernel_check(const sm_kernel *k, char **why) {
  if (k->oom) return *why = sm_fmt("kernel %s: incomplete (out of memory while built)", k->name), false;
  if (k->ndim < 0 || k->ndim > SMELT_MAX_RANK + 1)
    return *why = sm_fmt("kernel %s: bad rank %d", k->name, k->ndim), false;
  bool seen[SMELT_MAX_RANK + 1] = {0};
  for (int i = 0; i < k->ndim; i++) {
    int d = k->order[i];
    if (d < 0 || d >= k->ndim || seen[d])
      return *why = sm_fmt("kernel %s: loop order is not a permutation", k->name), false;
    seen[d] = true;
    if (k->extent[d] < 0) return *why = sm_fmt("kernel %s: negative extent", k->name), false;
  }
  for (int d = 0; d < k->ndim; d++)
    if (k->joined[d] && (d == 0 || k->reduce[d] != k->reduce[d - 1]))
      return *why = sm_fmt("kernel %s: axis %d joins no axis of its kind", k->name, d), false;
  if (k->par_axis < -1 || k->par_axis >= k->ndim || (k->par_axis >= 0 && k->reduce[k->par_axis]))
    return *why = sm_fmt("kernel %s: bad parallel axis %d", k->name, k->par_axis), false;
  for (int i = 0; i < k->naccs; i++) {
    const sm_kacc *a = &k->accs[i];
    if (a->value < 0 || a->value >= k->nvals || a->scratch >= k->nargs || a->scratch2 >= k->nargs)
      return *why = sm_fmt("kernel %s: bad accumulator a%d", k->name, i), false;
    bool arg = a->op == OP_ARGMAX || a->op == OP_ARGMIN;
    if (arg && (a->axis < 0 || a->axis >= k->ndim || !k->reduce[a->axis]))
      return *why = sm_fmt("kernel %s: a%d: bad axis", k->name, i), false;
  }
  for (int i = 0; i < k->nstores; i++)
    if (k->stores[i].arg < 0 || k->stores[i].arg >= k->nargs)
      return *why = sm_fmt("kernel %s: store %d: bad buffer", k->name, i), false;
  return true;
}

const char *sm_kernel_kind_name(sm_kernel_kind kind) {
  switch (kind) {
  case SM_KERNEL_POINTWISE: return "pointwise";
  case SM_KERNEL_REDUCE: return "reduce";
  case SM_KERNEL_MATMUL: return "matmul";
  case SM_KERNEL_SCATTER: return "scatter";
  }
  return "?";
}

static const char *role_name(sm_karg_role r) {
  switch (r) {
  case KA_IN: return "in";
  case KA_OUT: return "out";
  case KA_SCRATCH: return "scratch";
  }
  return "?";
}

static void print_const(sm_buf *b, smelt_dtype dt, double f, int64_t i) {
  if (dt == SMELT_BOOL) sm_buf_puts(b, f != 0 ? "true" : "false");
  else if (sm_is_float(dt)) sm_buf_number(b, f, dt == SMELT_F32);
  else sm_buf_printf(b, "%" PRId64, i);
}

static void print_val(sm_buf *b, const sm_kernel *k, int id) {
  const sm_kval *v = &k->vals[id];
  smelt_dtype dt = (smelt_dtype)v->dtype;
  sm_buf_printf(b, "  %%%d = ", id);
  switch ((sm_kval_kind)v->kind) {
  case KV_IDX: sm_buf_printf(b, "idx %d", v->axis); break;
  case KV_AFFINE:
    sm_buf_printf(b, "affine %" PRId64, v->ival);
    for (int d = 0; d < k->ndim; d++)
      if (v->coef[d]) sm_buf_printf(b, " %+" PRId64 "*i%d", v->coef[d], d);
    break;
  case KV_CONST:
    sm_buf_printf(b, "const %s ", smelt_dtype_name(dt));
    print_const(b, dt, v->fval, v->ival);
    break;
  case KV_LOAD:
    sm_buf_printf(b, "load %s b%d[%%%d]", smelt_dtype_name(dt), v->arg, v->a);
    if (v->b >= 0) {
      sm_buf_printf(b, " if %%%d else ", v->b);
      print_const(b, dt, v->fval, v->ival);
    }
    break;
  case KV_ELEM:
    sm_buf_printf(b, "%s %s %%%d", sm_ops[v->op].name, smelt_dtype_name(dt), v->a);
    if (v->b >= 0) sm_buf_printf(b, ", %%%d", v->b);
    if (v->c >= 0) sm_buf_printf(b, ", %%%d", v->c);
    break;
  case KV_IDIV: sm_buf_printf(b, "idiv %%%d, %%%d", v->a, v->b); break;
  case KV_IMOD: sm_buf_printf(b, "imod %%%d, %%%d", v->a, v->b); break;
  case KV_RAND:
    sm_buf_printf(b, "%s %s seed=%" PRIu64 " ", sm_ops[v->op].name, smelt_dtype_name(dt),
                  (uint64_t)v->ival);
    sm_buf_number(b, v->fattr[0], false);
    sm_buf_puts(b, " ");
    sm_buf_number(b, v->fattr[1], false);
    sm_buf_printf(b, " at %%%d", v->a);
    break;
  case KV_TRAINING: sm_buf_puts(b, "training"); break;
  case KV_CHECK: sm_buf_printf(b, "check %%%d < %" PRId64, v->a, v->ival); break;
  case KV_ACC: sm_buf_printf(b, "acc a%d", v->acc); break;
  }
  if (v->outer) sm_buf_puts(b, "  ; outer");
  sm_buf_puts(b, "\n");
}

void sm_kernel_print_buf(sm_buf *b, const sm_kernel *k) {
  sm_buf_printf(b, "kernel %s %s domain [", k->name, sm_kernel_kind_name(k->kind));
  for (int d = 0; d < k->ndim; d++)
    sm_buf_printf(b, "%s%" PRId64 "%s", d ? "," : "", k->extent[d], k->reduce[d] ? "r" : "");
  sm_buf_puts(b, "]");
  bool refined = false;
  for (int d = 0; d < k->ndim; d++) refined = refined || k->joined[d];
  if (refined) {
    /* the group's domain: runs of joined axes merged */
    sm_buf_puts(b, " from [");
    for (int d = 0; d < k->ndim;) {
      int64_t e = k->extent[d];
      int j = d + 1;
      for (; j < k->ndim && k->joined[j]; j++) e *= k->extent[j];
      sm_buf_printf(b, "%s%" PRId64 "%s", d ? "," : "", e, k->reduce[d] ? "r" : "");
      d = j;
    }
    sm_buf_puts(b, "]");
  }
  sm_buf_puts(b, " order [");
  for (int d = 0; d < k->ndim; d++) sm_buf_printf(b, "%s%d", d ? "," : "", k->order[d]);
  sm_buf_printf(b, "] parallel %d", k->par_axis);
  if (k->reassociate) sm_buf_puts(b, " reassociate");
  if (k->kind == SM_KERNEL_MATMUL)
    sm_buf_printf(b, " m=%d n=%d k=%d a=%%%d b=%%%d acc=a%d", k->mm_m, k->mm_n, k->mm_k, k->mm_a,
                  k->mm_b, k->mm_acc);
  sm_buf_puts(b, "\n");
  for (int i = 0; i < k->nargs; i++) {
    const sm_karg *a = &k->args[i];
    sm_buf_printf(b, "  b%d: %s %s[%" PRId64 "] node %" PRIu32 "\n", i,
                  role_name((sm_karg_role)a->role), smelt_dtype_name((smelt_dtype)a->dtype),
                  a->numel, a->node);
  }
  for (int i = 0; i < k->nvals; i++) print_val(b, k, i);
  for (int i = 0; i < k->naccs; i++) {
    const sm_kacc *a = &k->accs[i];
    sm_buf_printf(b, "  a%d = %s %s (in %s) %%%d", i, sm_ops[a->op].name,
                  smelt_dtype_name((smelt_dtype)a->dtype),
                  smelt_dtype_name((smelt_dtype)a->acc_dtype), a->value);
    if (a->op == OP_ARGMAX || a->op == OP_ARGMIN) sm_buf_printf(b, " axis %d", a->axis);
    if (a->scratch >= 0) sm_buf_printf(b, " in b%d", a->scratch);
    if (a->scratch2 >= 0) sm_buf_printf(b, ",b%d", a->scratch2);
    sm_buf_puts(b, "\n");
  }
  for (int i = 0; i < k->nstores; i++) {
    const sm_kstore *s = &k->stores[i];
    sm_buf_printf(b, "  store%s b%d[%%%d] %s %%%d\n", s->outer ? " outer" : "", s->arg, s->index,
                  s->accumulate ? "+=" : "=", s->value);
  }
}

char *sm_kernel_print(const sm_kernel *k) {
  sm_buf b = {0};
  sm_kernel_print_buf(&b, k);
  return sm_buf_take(&b);
}

bool sm_kernel_affine_of(const sm_kernel *k, int v, int64_t *off, int64_t *coef) {
  const sm_kval *x = &k->vals[v];
  for (int d = 0; d < k->ndim; d++) coef[d] = 0;
  if (x->kind == KV_IDX) {
    *off = 0;
    coef[x->axis] = 1;
    return true;
  }
  if (x->kind == KV_CONST && x->dtype == SMELT_I64) {
    *off = x->ival;
    return true;
  }
  if (x->kind != KV_AFFINE) return false;
  *off = x->ival;
  memcpy(coef, x->coef, sizeof(int64_t) * (size_t)k->ndim);
  return true;
}

bool sm_kernel_matmul_operands(const sm_kernel *k, sm_mm_operands *o) {
  if (k->kind != SM_KERNEL_MATMUL) return false;
  int m = k->mm_m, n = k->mm_n, kk = k->mm_k;
  if (m < 0 || n < 0 || kk < 0 || m >= k->ndim || n >= k->ndim || kk >= k->ndim) return false;
  if (k->naccs != 1 || k->mm_acc != 0 || k->accs[0].op != OP_REDUCE_SUM) return false;
  for (int d = 0; d < k->ndim; d++)
    if ((d == kk) != (k->reduce[d] != 0)) return false;
  if (k->mm_a < 0 || k->mm_b < 0 || k->mm_a >= k->nvals || k->mm_b >= k->nvals) return false;
  const sm_kval *va = &k->vals[k->mm_a], *vb = &k->vals[k->mm_b];
  const sm_kval *prod = &k->vals[k->accs[0].value];
  smelt_dtype dt = (smelt_dtype)va->dtype;
  if ((dt != SMELT_F32 && dt != SMELT_F64) || vb->dtype != dt || prod->dtype != dt ||
      k->accs[0].dtype != dt || k->accs[0].acc_dtype != dt)
    return false;
  if (va->kind != KV_LOAD || vb->kind != KV_LOAD || va->b >= 0 || vb->b >= 0) return false;
  if (prod->kind != KV_ELEM || prod->op != OP_MUL ||
      !((prod->a == k->mm_a && prod->b == k->mm_b) || (prod->a == k->mm_b && prod->b == k->mm_a)))
    return false;
  if (!sm_kernel_affine_of(k, va->a, &o->aoff, o->acoef) ||
      !sm_kernel_affine_of(k, vb->a, &o->boff, o->bcoef))
    return false;
  if (o->acoef[n] || o->bcoef[m]) return false;
  for (int i = 0; i < k->nstores; i++)
    if (!k->stores[i].outer || k->stores[i].accumulate) return false;
  o->dt = dt;
  o->aarg = va->arg;
  o->barg = vb->arg;
  return true;
}
