/* The reference interpreter: runs the graph IR directly on the CPU, one
 * node at a time, no fusion. It is the oracle every backend is checked
 * against, so it is written to be obviously right rather than fast.
 *
 * Values are strided views over shared, refcounted storage: reshape of a
 * contiguous view, permute, expand (stride 0), slice and flip (negative
 * stride) never copy; everything else writes a new dense buffer. Only the
 * nodes the outputs need are evaluated, in index order (a topological
 * order), and a value is released as soon as its last consumer has run.
 *
 * Scalar semantics come from the op table (sm_ops[op].eval_f / eval_i):
 * float dtypes compute in double and round once at the store, integer and
 * bool dtypes compute in int64 with wrap-around. */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ storage */

/* A buffer shared by every view of it. Owned buffers live in mem; borrowed
 * ones (bound inputs, const data in the graph) point elsewhere. */
typedef struct storage {
  size_t refs;
  unsigned char *data;
  _Alignas(16) unsigned char mem[];
} storage;

/* A strided view: element (i0, .., ik) of a node's shape lives at element
 * off + sum(i_d * strides[d]) of st. Offsets and strides count elements. */
typedef struct view {
  storage *st; /* NULL: no value */
  int64_t off;
  int64_t strides[SMELT_MAX_RANK];
} view;

typedef struct binding {
  const void *data;
  bool set;
} binding;

struct smelt_interp {
  const smelt_graph *g;
  char *error; /* NULL, oom_msg, or owned */
  binding *binds; /* per node index */
  size_t nbinds;
  /* the outputs of the last successful run, in graph output order */
  view *outs;
  size_t nouts;
  bool have_run;
};

static char oom_msg[] = "out of memory";

/* ------------------------------------------------------------- errors */

static void clear_error(smelt_interp *it) {
  if (it->error != oom_msg) sm_free(it->error);
  it->error = NULL;
}

/* Records the message (replacing the last one) and returns -1. */
__attribute__((format(printf, 2, 3))) static int fail(smelt_interp *it, const char *fmt, ...) {
  clear_error(it);
  va_list ap;
  va_start(ap, fmt);
  char *msg = sm_vfmt(fmt, ap);
  va_end(ap);
  it->error = msg ? msg : oom_msg;
  return -1;
}

static int fail_oom(smelt_interp *it) {
  clear_error(it);
  it->error = oom_msg;
  return -1;
}

/* Takes a built message from an sm_buf (falls back to "out of memory"). */
static int fail_buf(smelt_interp *it, sm_buf *b) {
  char *msg = sm_buf_take(b);
  if (!msg) return fail_oom(it);
  clear_error(it);
  it->error = msg;
  return -1;
}

/* Every call starts here: a graph with a build error cannot be run. */
static int check_graph(smelt_interp *it) {
  clear_error(it);
  if (!it->g) return fail(it, "the graph is NULL");
  const char *ge = smelt_graph_error(it->g);
  if (ge) return fail(it, "the graph has an error: %s", ge);
  return 0;
}

/* "f32[3,4]" and "[3,4]" for messages, without allocating (8 dims of at
 * most 20 digits fit). */
enum { TYPE_STR = 256 };
static const char *shape_str(int rank, const int64_t *dims, char *buf) {
  size_t len = 0;
  buf[len++] = '[';
  for (int i = 0; i < rank && len < TYPE_STR - 32; i++)
    len += (size_t)snprintf(buf + len, TYPE_STR - len, i ? ",%" PRId64 : "%" PRId64, dims[i]);
  snprintf(buf + len, TYPE_STR - len, "]");
  return buf;
}

static const char *type_str(const sm_node *n, char *buf) {
  char sh[TYPE_STR];
  snprintf(buf, TYPE_STR, "%s%s", smelt_dtype_name((smelt_dtype)n->dtype),
           shape_str(n->rank, n->shape, sh));
  return buf;
}

/* ------------------------------------------------------- sizes, views */

static size_t esize(const sm_node *n) { return smelt_dtype_size((smelt_dtype)n->dtype); }

/* numel of a node, or -1 when it does not fit in int64. */
static int64_t safe_numel(const sm_node *n) {
  int64_t m = 1;
  for (int i = 0; i < n->rank; i++) {
    if (n->shape[i] < 0) return -1;
    if (n->shape[i] && m > INT64_MAX / n->shape[i]) return -1;
    m *= n->shape[i];
  }
  return m;
}

/* Byte size of a dense buffer for n; false when it overflows. */
static bool dense_bytes(const sm_node *n, size_t *out) {
  int64_t m = safe_numel(n);
  size_t es = esize(n);
  if (m < 0 || es == 0 || (uint64_t)m > (SIZE_MAX - sizeof(storage) - 16) / es) return false;
  *out = (size_t)m * es;
  return true;
}

static bool is_empty(const sm_node *n) {
  for (int i = 0; i < n->rank; i++)
    if (n->shape[i] == 0) return true;
  return false;
}

/* Size-0 dims count as 1. A tensor without elements may have other dims
 * whose product overflows (f32[2^40,2^40,0]); nothing is read through its
 * strides, so they saturate instead. */
static void dense_strides(int rank, const int64_t *shape, int64_t *strides) {
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; i--) {
    strides[i] = s;
    int64_t d = shape[i] ? shape[i] : 1;
    s = s > INT64_MAX / d ? INT64_MAX : s * d;
  }
}

static void retain(const view *v) {
  if (v->st) v->st->refs++;
}

static void release(view *v) {
  if (v->st && --v->st->refs == 0) sm_free(v->st);
  v->st = NULL;
}

/* A new dense, row-major buffer of n's dtype and the given shape (n names
 * the node in messages); contents undefined. */
static int alloc_shape(smelt_interp *it, const sm_node *n, int rank, const int64_t *shape,
                       view *out) {
  size_t bytes = esize(n);
  bool ok = bytes != 0;
  for (int d = 0; d < rank && ok; d++) {
    if (shape[d] < 0 || (shape[d] && bytes > (SIZE_MAX - sizeof(storage) - 16) / (uint64_t)shape[d]))
      ok = false;
    else
      bytes *= (size_t)shape[d];
  }
  if (!ok) {
    char id[128], ty[TYPE_STR];
    sm_node_id(it->g, n, id, sizeof id);
    return fail(it, "%s %s: a %s%s is too large to allocate", sm_ops[n->op].name, id,
                smelt_dtype_name((smelt_dtype)n->dtype), shape_str(rank, shape, ty));
  }
  storage *st = sm_malloc(sizeof *st + bytes);
  if (!st) {
    /* a small buffer: plain "out of memory"; a big one: which node and how big */
    if (bytes < ((size_t)1 << 20)) return fail_oom(it);
    char id[128], ty[TYPE_STR];
    sm_node_id(it->g, n, id, sizeof id);
    return fail(it, "%s %s: out of memory (%s%s, %zu bytes)", sm_ops[n->op].name, id,
                smelt_dtype_name((smelt_dtype)n->dtype), shape_str(rank, shape, ty), bytes);
  }
  st->refs = 1;
  st->data = st->mem;
  out->st = st;
  out->off = 0;
  dense_strides(rank, shape, out->strides);
  return 0;
}

static int alloc_dense(smelt_interp *it, const sm_node *n, view *out) {
  return alloc_shape(it, n, n->rank, n->shape, out);
}

/* A view over memory the interpreter does not own (contiguous). */
static int borrow(smelt_interp *it, const sm_node *n, const void *data, view *out) {
  storage *st = sm_malloc(sizeof *st);
  if (!st) return fail_oom(it);
  st->refs = 1;
  st->data = (unsigned char *)(uintptr_t)data; /* never written through */
  out->st = st;
  out->off = 0;
  dense_strides(n->rank, n->shape, out->strides);
  return 0;
}

/* Address of element `off` of a view's storage. */
static inline unsigned char *at(const view *v, int64_t off, size_t es) {
  return v->st->data + (size_t)off * es;
}

/* ----------------------------------------------------- scalar access */
/* memcpy keeps unaligned caller buffers (bound inputs) free of UB. */

static double load_f(const unsigned char *p, smelt_dtype dt) {
  switch (dt) {
  case SMELT_F32: { float v; memcpy(&v, p, 4); return v; }
  case SMELT_F64: { double v; memcpy(&v, p, 8); return v; }
  case SMELT_I32: { int32_t v; memcpy(&v, p, 4); return v; }
  case SMELT_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
  default: return *p != 0;
  }
}

static int64_t load_i(const unsigned char *p, smelt_dtype dt) {
  switch (dt) {
  case SMELT_I32: { int32_t v; memcpy(&v, p, 4); return v; }
  case SMELT_I64: { int64_t v; memcpy(&v, p, 8); return v; }
  case SMELT_BOOL: return *p != 0;
  default: return 0; /* callers load floats with load_f */
  }
}

static void store_f(unsigned char *p, smelt_dtype dt, double v) {
  switch (dt) {
  case SMELT_F32: { float x = (float)v; memcpy(p, &x, 4); break; }
  case SMELT_F64: memcpy(p, &v, 8); break;
  case SMELT_I32: { int32_t x = sm_f_to_i32(v); memcpy(p, &x, 4); break; }
  case SMELT_I64: { int64_t x = sm_f_to_i64(v); memcpy(p, &x, 8); break; }
  default: *p = v != 0; break; /* NaN is true, as bool(nan) */
  }
}

/* int64 to f32, rounded once (to nearest even). Above 2^53 the bits below
 * the 53rd are folded into a sticky bit (round to odd) so that the final
 * double -> float rounding is still correct; this does not rely on the
 * compiler's or an emulator's int64 -> float conversion (valgrind goes
 * through double and rounds twice). */
static float i64_to_f32(int64_t v) {
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  int shift = 0;
  while ((u >> shift) >= (1ull << 53)) shift++;
  uint64_t t = u >> shift;
  if (shift && (u & ((1ull << shift) - 1))) t |= 1;
  double d = ldexp((double)t, shift);
  return (float)(v < 0 ? -d : d);
}

static void store_i(unsigned char *p, smelt_dtype dt, int64_t v) {
  switch (dt) {
  case SMELT_F32: { float x = i64_to_f32(v); memcpy(p, &x, 4); break; }
  case SMELT_F64: { double x = (double)v; memcpy(p, &x, 8); break; }
  case SMELT_I32: {
    /* i64 -> i32 wraps (two's complement), as PyTorch's .to(int32). */
    uint32_t x = (uint32_t)(uint64_t)v;
    memcpy(p, &x, 4);
    break;
  }
  case SMELT_I64: memcpy(p, &v, 8); break;
  default: *p = v != 0; break;
  }
}

/* Copies one element between dtypes: load in the source's domain, store
 * with conversion (bit-exact when the dtypes are equal). */
static void convert(unsigned char *dst, smelt_dtype dd, const unsigned char *src, smelt_dtype sd) {
  if (dd == sd && dd != SMELT_BOOL) /* bool: normalize to 0/1 below */
    memcpy(dst, src, smelt_dtype_size(dd));
  else if (sm_is_float(sd))
    store_f(dst, dd, load_f(src, sd));
  else
    store_i(dst, dd, load_i(src, sd));
}

/* ----------------------------------------------------------- iteration */

/* Walks a shape in row-major order, keeping the element offset of each of
 * up to four views. Use: if (!empty) do { ... it.off[k] ... } while
 * (nd_next(&it)); rank 0 visits one element. */
enum { ND_MAX = 4 };
typedef struct nditer {
  int rank, n;
  const int64_t *shape;
  int64_t idx[SMELT_MAX_RANK];
  int64_t off[ND_MAX];
  int64_t strides[ND_MAX][SMELT_MAX_RANK];
} nditer;

static void nd_init(nditer *it, int rank, const int64_t *shape) {
  memset(it, 0, sizeof *it);
  it->rank = rank;
  it->shape = shape;
}

/* Adds a view (its first `rank` strides) and returns its slot. */
static int nd_add(nditer *it, int64_t off, const int64_t *strides) {
  int k = it->n++;
  it->off[k] = off;
  memcpy(it->strides[k], strides, sizeof(int64_t) * (size_t)it->rank);
  return k;
}

static bool nd_next(nditer *it) {
  for (int d = it->rank - 1; d >= 0; d--) {
    for (int k = 0; k < it->n; k++) it->off[k] += it->strides[k][d];
    if (++it->idx[d] < it->shape[d]) return true;
    for (int k = 0; k < it->n; k++) it->off[k] -= it->strides[k][d] * it->shape[d];
    it->idx[d] = 0;
  }
  return false;
}

/* Copies a view of shape (rank, shape) into another, converting dtypes. */
static void copy_view(const view *dst, smelt_dtype dd, const view *src, smelt_dtype sd, int rank,
                      const int64_t *shape) {
  for (int i = 0; i < rank; i++)
    if (shape[i] == 0) return;
  nditer nd;
  nd_init(&nd, rank, shape);
  int d = nd_add(&nd, dst->off, dst->strides);
  int s = nd_add(&nd, src->off, src->strides);
  size_t des = smelt_dtype_size(dd), ses = smelt_dtype_size(sd);
  do convert(at(dst, nd.off[d], des), dd, at(src, nd.off[s], ses), sd);
  while (nd_next(&nd));
}

/* ---------------------------------------------------------- evaluation */

typedef struct run_state {
  smelt_interp *it;
  const smelt_graph *g;
  view *vals;                     /* per node */
  const void *const *param_data;  /* per node: a param's current value, or NULL */
  bool training;                  /* the value of the training flag */
  uint64_t rng_step;              /* draw number of rand / randn */
} run_state;

static const sm_node *input_node(const run_state *rs, const sm_node *n, int k) {
  return &rs->g->nodes[n->inputs[k]];
}
static const view *input_val(const run_state *rs, const sm_node *n, int k) {
  return &rs->vals[n->inputs[k]];
}

static int node_fail(run_state *rs, const sm_node *n, const char *what) {
  char id[128];
  sm_node_id(rs->g, n, id, sizeof id);
  return fail(rs->it, "%s %s: %s", sm_ops[n->op].name, id, what);
}

/* ------------------------------------------------------------- sources */

static int eval_input(run_state *rs, const sm_node *n, uint32_t i, view *out) {
  smelt_interp *it = rs->it;
  /* Checked before the run starts; this guards a graph changed since. */
  if (i >= it->nbinds || !it->binds[i].set) return fail(it, "input \"%s\" is not bound", n->name);
  return borrow(it, n, it->binds[i].data, out);
}

/* Fills a dense buffer with f(k) for the linear index k; step is the draw
 * number of random generators. */
typedef double (*gen_fn)(const sm_node *, uint64_t step, uint64_t k);
static int fill_dense(run_state *rs, const sm_node *n, view *out, gen_fn f, uint64_t step) {
  if (alloc_dense(rs->it, n, out)) return -1;
  int64_t m = safe_numel(n);
  size_t es = esize(n);
  for (int64_t k = 0; k < m; k++)
    store_f(at(out, k, es), (smelt_dtype)n->dtype, f(n, step, (uint64_t)k));
  return 0;
}

static double gen_const_a(const sm_node *n, uint64_t s, uint64_t k) {
  (void)s, (void)k;
  return n->fattr[0];
}
static double gen_zero(const sm_node *n, uint64_t s, uint64_t k) {
  (void)n, (void)s, (void)k;
  return 0;
}
static double gen_one(const sm_node *n, uint64_t s, uint64_t k) {
  (void)n, (void)s, (void)k;
  return 1;
}
/* The seed: iattr[1] of a param, iattr[0] of rand / randn. */
/* normal: a + b*z (param init normal, randn) */
static double gen_normal(const sm_node *n, uint64_t s, uint64_t k) {
  uint64_t seed = (uint64_t)n->iattr[n->op == OP_PARAM ? 1 : 0];
  return n->fattr[0] + n->fattr[1] * sm_rand_normal_at(seed, s, k, (smelt_dtype)n->dtype);
}
/* uniform: a + (b - a)*u (param init uniform, rand) */
static double gen_uniform(const sm_node *n, uint64_t s, uint64_t k) {
  uint64_t seed = (uint64_t)n->iattr[n->op == OP_PARAM ? 1 : 0];
  return n->fattr[0] +
         (n->fattr[1] - n->fattr[0]) * sm_rand_uniform_at(seed, s, k, (smelt_dtype)n->dtype);
}

/* A param reads its storage when the run has one (programs), else its
 * initializer's values. */
static int eval_param(run_state *rs, const sm_node *n, view *out) {
  size_t i = (size_t)(n - rs->g->nodes);
  if (rs->param_data && rs->param_data[i]) return borrow(rs->it, n, rs->param_data[i], out);
  switch ((smelt_init_kind)n->iattr[0]) {
  case SMELT_INIT_ZEROS: return fill_dense(rs, n, out, gen_zero, 0);
  case SMELT_INIT_ONES: return fill_dense(rs, n, out, gen_one, 0);
  case SMELT_INIT_CONSTANT: return fill_dense(rs, n, out, gen_const_a, 0);
  case SMELT_INIT_NORMAL: return fill_dense(rs, n, out, gen_normal, 0);
  case SMELT_INIT_UNIFORM: return fill_dense(rs, n, out, gen_uniform, 0);
  case SMELT_INIT_DATA:
    if (!n->data && !is_empty(n)) return node_fail(rs, n, "initializer data is missing");
    return borrow(rs->it, n, n->data, out);
  }
  return node_fail(rs, n, "unknown initializer kind");
}

/* iota varies along one axis only: one row of shape[axis] values, stride 0
 * on every other axis. */
static int eval_iota(run_state *rs, const sm_node *n, view *out) {
  int axis = n->rank ? (int)n->iattr[0] : -1;
  /* an empty iota holds no values, however long its own axis (the row
   * of [0, 2^32] would be 32 GiB) */
  int64_t len = is_empty(n) ? 0 : axis >= 0 ? n->shape[axis] : 1;
  if (alloc_shape(rs->it, n, 1, &len, out)) return -1;
  size_t es = esize(n);
  for (int64_t k = 0; k < len; k++)
    store_f(at(out, k, es), (smelt_dtype)n->dtype, n->fattr[0] + (double)k * n->fattr[1]);
  for (int d = 0; d < n->rank; d++) out->strides[d] = d == axis ? 1 : 0;
  return 0;
}

static int eval_source(run_state *rs, const sm_node *n, uint32_t i, view *out) {
  uint32_t need = n->op == OP_PARAM ? 2 : n->op == OP_IOTA || n->op == OP_RAND || n->op == OP_RANDN;
  if (n->niattr < need) return node_fail(rs, n, "malformed node (missing attributes)");
  switch ((sm_op)n->op) {
  case OP_INPUT: return eval_input(rs, n, i, out);
  case OP_PARAM: return eval_param(rs, n, out);
  case OP_CONST:
    if (!n->data && !is_empty(n)) return node_fail(rs, n, "constant data is missing");
    return borrow(rs->it, n, n->data, out);
  case OP_IOTA: return eval_iota(rs, n, out);
  case OP_RAND: return fill_dense(rs, n, out, gen_uniform, rs->rng_step);
  case OP_RANDN: return fill_dense(rs, n, out, gen_normal, rs->rng_step);
  case OP_TRAINING:
    if (alloc_dense(rs->it, n, out)) return -1;
    *at(out, 0, 1) = rs->training;
    return 0;
  default: return node_fail(rs, n, "not a source op");
  }
}

/* --------------------------------------------------------- elementwise */

/* Unary and binary ops. The domain is the operands': any float operand
 * computes in double with eval_f, otherwise int64 with eval_i (an op
 * without an integer rule computes in double too). The result is stored
 * in the node's dtype, so comparisons store 0/1 into bool and cast is the
 * identity followed by the store's conversion. */
static int eval_elementwise(run_state *rs, const sm_node *n, view *out) {
  const sm_op_info *op = &sm_ops[n->op];
  int nin = (int)n->ninputs;
  bool use_f = false;
  for (int k = 0; k < nin; k++)
    if (sm_is_float((smelt_dtype)input_node(rs, n, k)->dtype)) use_f = true;
  if (!op->eval_i) use_f = true;
  if (use_f && !op->eval_f) return node_fail(rs, n, "no float semantics");
  if (alloc_dense(rs->it, n, out)) return -1;
  if (is_empty(n)) return 0;

  nditer nd;
  nd_init(&nd, n->rank, n->shape);
  int o = nd_add(&nd, out->off, out->strides);
  int src[2];
  smelt_dtype sdt[2];
  size_t ses[2];
  for (int k = 0; k < nin; k++) {
    src[k] = nd_add(&nd, input_val(rs, n, k)->off, input_val(rs, n, k)->strides);
    sdt[k] = (smelt_dtype)input_node(rs, n, k)->dtype;
    ses[k] = smelt_dtype_size(sdt[k]);
  }
  smelt_dtype dt = (smelt_dtype)n->dtype;
  size_t es = esize(n);
  do {
    const unsigned char *pa = at(input_val(rs, n, 0), nd.off[src[0]], ses[0]);
    const unsigned char *pb = nin > 1 ? at(input_val(rs, n, 1), nd.off[src[1]], ses[1]) : NULL;
    unsigned char *po = at(out, nd.off[o], es);
    if (use_f)
      store_f(po, dt, op->eval_f(load_f(pa, sdt[0]), pb ? load_f(pb, sdt[1]) : 0.0));
    else
      store_i(po, dt, op->eval_i(load_i(pa, sdt[0]), pb ? load_i(pb, sdt[1]) : 0));
  } while (nd_next(&nd));
  return 0;
}

/* where(cond, a, b): picks elements, converting to the node's dtype. */
static int eval_where(run_state *rs, const sm_node *n, view *out) {
  if (alloc_dense(rs->it, n, out)) return -1;
  if (is_empty(n)) return 0;
  nditer nd;
  nd_init(&nd, n->rank, n->shape);
  int o = nd_add(&nd, out->off, out->strides);
  int src[3];
  for (int k = 0; k < 3; k++)
    src[k] = nd_add(&nd, input_val(rs, n, k)->off, input_val(rs, n, k)->strides);
  smelt_dtype cdt = (smelt_dtype)input_node(rs, n, 0)->dtype;
  size_t es = esize(n), ces = smelt_dtype_size(cdt);
  do {
    bool c = load_f(at(input_val(rs, n, 0), nd.off[src[0]], ces), cdt) != 0;
    int k = c ? 1 : 2;
    smelt_dtype sd = (smelt_dtype)input_node(rs, n, k)->dtype;
    convert(at(out, nd.off[o], es), (smelt_dtype)n->dtype,
            at(input_val(rs, n, k), nd.off[src[k]], smelt_dtype_size(sd)), sd);
  } while (nd_next(&nd));
  return 0;
}

/* ---------------------------------------------------------- reductions */

/* The blocked sum of v[0..len) (SM_SUM_BLOCK, internal.h): up to
 * SM_SUM_BLOCK elements are summed in order from +0.0; longer arrays are
 * replaced by their partials (lane c = r mod SM_SUM_LANES of block b = r div
 * SM_SUM_BLOCK, rows in increasing order from +0.0; lanes past the end sum
 * nothing and are +0.0), which are summed by the same rule. The partials of
 * block b overwrite v[b*LANES..] in place: block b >= 1 has been read by
 * then, block 0 is kept in acc until it is written. */
static double blocked_sum(double *v, int64_t len) {
  while (len > SM_SUM_BLOCK) {
    int64_t nb = (len + SM_SUM_BLOCK - 1) / SM_SUM_BLOCK;
    for (int64_t b = 0; b < nb; b++) {
      double acc[SM_SUM_LANES];
      for (int c = 0; c < SM_SUM_LANES; c++) acc[c] = 0.0;
      int64_t end = (b + 1) * SM_SUM_BLOCK < len ? (b + 1) * SM_SUM_BLOCK : len;
      for (int64_t r = b * SM_SUM_BLOCK; r < end; r++) acc[r % SM_SUM_LANES] += v[r];
      for (int c = 0; c < SM_SUM_LANES; c++) v[b * SM_SUM_LANES + c] = acc[c];
    }
    len = nb * SM_SUM_LANES;
  }
  double s = 0.0;
  for (int64_t r = 0; r < len; r++) s += v[r];
  return s;
}

/* A float reduce_sum over more than SM_SUM_BLOCK elements per output slot:
 * the slot's elements are gathered as f64 in row-major order of the reduced
 * axes and summed in the blocked order. */
static int eval_sum_blocked(run_state *rs, const sm_node *n, view *out, int64_t len) {
  const sm_node *x = input_node(rs, n, 0);
  const view *xv = input_val(rs, n, 0);
  smelt_dtype xdt = (smelt_dtype)x->dtype;
  size_t xes = smelt_dtype_size(xdt), es = esize(n);
  /* the kept and the reduced axes of x, each with x's strides */
  int kr = 0, rr = 0;
  int64_t kshape[SMELT_MAX_RANK], kstr[SMELT_MAX_RANK], rshape[SMELT_MAX_RANK],
      rstr[SMELT_MAX_RANK];
  for (int d = 0; d < x->rank; d++) {
    bool red = false;
    for (uint32_t j = 0; j < n->niattr; j++) red = red || n->iattr[j] == d;
    if (red) rshape[rr] = x->shape[d], rstr[rr++] = xv->strides[d];
    else kshape[kr] = x->shape[d], kstr[kr++] = xv->strides[d];
  }
  if ((uint64_t)len > SIZE_MAX / sizeof(double)) return node_fail(rs, n, "reduction too large");
  double *buf = sm_malloc((size_t)len * sizeof *buf);
  if (!buf) return fail_oom(rs->it);
  nditer kept;
  nd_init(&kept, kr, kshape);
  int ks = nd_add(&kept, xv->off, kstr);
  int64_t slot = 0; /* the result is dense: its slots in row-major order */
  do {
    nditer red;
    nd_init(&red, rr, rshape);
    int s = nd_add(&red, kept.off[ks], rstr);
    int64_t r = 0;
    do buf[r++] = load_f(at(xv, red.off[s], xes), xdt);
    while (nd_next(&red));
    store_f(at(out, slot++, es), (smelt_dtype)n->dtype, blocked_sum(buf, len));
  } while (nd_next(&kept));
  sm_free(buf);
  return 0;
}

/* reduce_sum/prod/max/min: every input element is folded into its output
 * slot (the input index with the reduced axes zeroed) with the op's scalar
 * rule, in row-major order, in double or int64 accumulators; float sums
 * over more than SM_SUM_BLOCK elements per slot in the blocked order. */
static int eval_reduce(run_state *rs, const sm_node *n, view *out) {
  const sm_node *x = input_node(rs, n, 0);
  const view *xv = input_val(rs, n, 0);
  const sm_op_info *op = &sm_ops[n->op];
  smelt_dtype xdt = (smelt_dtype)x->dtype;
  bool use_f = sm_is_float(xdt) || !op->eval_i;
  if (alloc_dense(rs->it, n, out)) return -1;
  /* (an empty x sums to zeros below; its reduced dims may multiply past
   * int64 before reaching the 0) */
  if (n->op == OP_REDUCE_SUM && use_f && !is_empty(n) && !is_empty(x)) {
    int64_t len = 1;
    for (uint32_t j = 0; j < n->niattr; j++) len *= x->shape[n->iattr[j]];
    if (len > SM_SUM_BLOCK) {
      int rc = eval_sum_blocked(rs, n, out, len);
      if (rc) release(out);
      return rc;
    }
  }
  int64_t m = safe_numel(n);
  /* One 8-byte accumulator per output element; the output's own size
   * already fits, so this product can only overflow for 1-byte dtypes. */
  if ((uint64_t)m > SIZE_MAX / 8) return release(out), node_fail(rs, n, "result too large");
  union acc {
    double f;
    int64_t i;
  } *acc = sm_malloc((size_t)m * sizeof *acc);
  if (!acc) return release(out), fail_oom(rs->it);

  union acc init;
  switch ((sm_op)n->op) {
  case OP_REDUCE_PROD:
    if (use_f) init.f = 1; else init.i = 1;
    break;
  case OP_REDUCE_MAX: /* the identity of max; NaN still wins through eval_f */
    if (use_f) init.f = -INFINITY; else init.i = INT64_MIN;
    break;
  case OP_REDUCE_MIN:
    if (use_f) init.f = INFINITY; else init.i = INT64_MAX;
    break;
  default: /* sum: empty axes give 0 */
    if (use_f) init.f = 0; else init.i = 0;
    break;
  }
  for (int64_t k = 0; k < m; k++) acc[k] = init;

  if (!is_empty(x)) {
    /* The accumulator index: dense strides of the result, 0 on reduced
     * axes (where the result has size 1). */
    int64_t astr[SMELT_MAX_RANK];
    dense_strides(n->rank, n->shape, astr);
    for (uint32_t j = 0; j < n->niattr; j++) astr[n->iattr[j]] = 0;
    nditer nd;
    nd_init(&nd, x->rank, x->shape);
    int a = nd_add(&nd, 0, astr);
    int s = nd_add(&nd, xv->off, xv->strides);
    size_t xes = smelt_dtype_size(xdt);
    do {
      union acc *p = &acc[nd.off[a]];
      const unsigned char *px = at(xv, nd.off[s], xes);
      if (use_f)
        p->f = op->eval_f(p->f, load_f(px, xdt));
      else
        p->i = op->eval_i(p->i, load_i(px, xdt));
    } while (nd_next(&nd));
  }
  size_t es = esize(n);
  for (int64_t k = 0; k < m; k++) {
    if (use_f)
      store_f(at(out, k, es), (smelt_dtype)n->dtype, acc[k].f);
    else
      store_i(at(out, k, es), (smelt_dtype)n->dtype, acc[k].i);
  }
  sm_free(acc);
  return 0;
}

/* argmax / argmin along iattr[0]: the first extreme wins; NaN counts as
 * both the maximum and the minimum, so the first NaN wins (PyTorch). */
static int eval_argreduce(run_state *rs, const sm_node *n, view *out) {
  const sm_node *x = input_node(rs, n, 0);
  const view *xv = input_val(rs, n, 0);
  int axis = (int)n->iattr[0];
  int64_t len = x->shape[axis];
  bool is_max = n->op == OP_ARGMAX;
  if (len == 0 && !is_empty(n)) return node_fail(rs, n, "cannot reduce an axis of size 0");
  if (alloc_dense(rs->it, n, out)) return -1;
  if (is_empty(n)) return 0;
  smelt_dtype xdt = (smelt_dtype)x->dtype;
  size_t xes = smelt_dtype_size(xdt), es = esize(n);
  int64_t step = xv->strides[axis];
  nditer nd;
  nd_init(&nd, n->rank, n->shape);
  int o = nd_add(&nd, out->off, out->strides);
  int s = nd_add(&nd, xv->off, xv->strides);
  do {
    int64_t best = 0;
    if (sm_is_float(xdt)) {
      double bv = load_f(at(xv, nd.off[s], xes), xdt);
      for (int64_t k = 1; k < len && !isnan(bv); k++) {
        double v = load_f(at(xv, nd.off[s] + k * step, xes), xdt);
        if (isnan(v) || (is_max ? v > bv : v < bv)) bv = v, best = k;
      }
    } else {
      int64_t bv = load_i(at(xv, nd.off[s], xes), xdt);
      for (int64_t k = 1; k < len; k++) {
        int64_t v = load_i(at(xv, nd.off[s] + k * step, xes), xdt);
        if (is_max ? v > bv : v < bv) bv = v, best = k;
      }
    }
    store_i(at(out, nd.off[o], es), (smelt_dtype)n->dtype, best);
  } while (nd_next(&nd));
  return 0;
}

/* --------------------------------------------------------------- views */

/* True when the view is the row-major layout of shape (size-1 dims may
 * have any stride): then a reshape only changes the strides. */
static bool is_contiguous(const view *v, int rank, const int64_t *shape) {
  /* Without elements any layout will do; the dims after a 0 may multiply
   * past int64 (f64[2^40,0,2^40,2^40]). */
  for (int d = 0; d < rank; d++)
    if (shape[d] == 0) return true;
  int64_t want = 1;
  for (int d = rank - 1; d >= 0; d--) {
    if (shape[d] == 1) continue;
    if (v->strides[d] != want) return false;
    want *= shape[d];
  }
  return true;
}

static int eval_view(run_state *rs, const sm_node *n, view *out) {
  const sm_node *x = input_node(rs, n, 0);
  const view *xv = input_val(rs, n, 0);
  switch ((sm_op)n->op) {
  case OP_RESHAPE:
    if (is_contiguous(xv, x->rank, x->shape)) {
      *out = *xv;
      retain(out);
    } else {
      /* Not expressible as strides in general: copy to dense first. */
      if (alloc_dense(rs->it, x, out)) return -1;
      copy_view(out, (smelt_dtype)x->dtype, xv, (smelt_dtype)x->dtype, x->rank, x->shape);
    }
    dense_strides(n->rank, n->shape, out->strides);
    return 0;
  case OP_PERMUTE:
    *out = *xv;
    for (int d = 0; d < n->rank; d++) out->strides[d] = xv->strides[n->iattr[d]];
    break;
  case OP_EXPAND: {
    /* Align from the right; new leading dims and grown size-1 dims get
     * stride 0: an expand never copies. */
    *out = *xv;
    int lead = n->rank - x->rank;
    for (int d = 0; d < n->rank; d++) {
      int xd = d - lead;
      out->strides[d] =
          xd < 0 || (x->shape[xd] == 1 && n->shape[d] != 1) ? 0 : xv->strides[xd];
    }
    break;
  }
  case OP_SLICE:
    *out = *xv;
    for (int d = 0; d < n->rank; d++) {
      /* An empty result may start at the end; the offset is never read. */
      out->off += n->iattr[d] * xv->strides[d];
      out->strides[d] = xv->strides[d] * n->iattr[n->rank + d];
    }
    break;
  case OP_UNFOLD: {
    /* windows overlap freely: the window axis steps like the input axis,
     * the axis itself by step elements */
    int a = (int)n->iattr[0];
    *out = *xv;
    out->strides[a] = xv->strides[a] * n->iattr[2];
    out->strides[x->rank] = xv->strides[a];
    break;
  }
  case OP_FLIP:
    *out = *xv;
    for (uint32_t j = 0; j < n->niattr; j++) {
      int64_t d = n->iattr[j];
      if (n->shape[d] > 0) out->off += (n->shape[d] - 1) * xv->strides[d];
      out->strides[d] = -xv->strides[d];
    }
    break;
  default:
    return node_fail(rs, n, "not a view op");
  }
  retain(out);
  return 0;
}

/* ------------------------------------------------------ pad and concat */

static int eval_pad(run_state *rs, const sm_node *n, view *out) {
  const sm_node *x = input_node(rs, n, 0);
  if (alloc_dense(rs->it, n, out)) return -1;
  int64_t m = safe_numel(n);
  size_t es = esize(n);
  unsigned char fill[8];
  store_f(fill, (smelt_dtype)n->dtype, n->fattr[0]);
  for (int64_t k = 0; k < m; k++) memcpy(at(out, k, es), fill, es);
  view inner = *out;
  for (int d = 0; d < n->rank; d++) inner.off += n->iattr[d] * out->strides[d];
  copy_view(&inner, (smelt_dtype)n->dtype, input_val(rs, n, 0), (smelt_dtype)x->dtype, x->rank,
            x->shape);
  return 0;
}

static int eval_concat(run_state *rs, const sm_node *n, view *out) {
  int axis = (int)n->iattr[0];
  if (alloc_dense(rs->it, n, out)) return -1;
  int64_t pos = 0;
  for (uint32_t k = 0; k < n->ninputs; k++) {
    const sm_node *x = input_node(rs, n, (int)k);
    view part = *out;
    part.off += pos * out->strides[axis];
    copy_view(&part, (smelt_dtype)n->dtype, input_val(rs, n, (int)k), (smelt_dtype)x->dtype,
              x->rank, x->shape);
    pos += x->shape[axis];
  }
  return 0;
}

/* -------------------------------------------------------------- matmul */

/* [..., M, K] x [..., K, N] -> [..., M, N]; batch dims are equal. Dot
 * products accumulate in double (ints: int64, wrapping). */
static int eval_matmul(run_state *rs, const sm_node *n, view *out) {
  const sm_node *a = input_node(rs, n, 0), *b = input_node(rs, n, 1);
  const view *av = input_val(rs, n, 0), *bv = input_val(rs, n, 1);
  int r = n->rank;
  if (r < 2 || a->rank != r || b->rank != r) return node_fail(rs, n, "operands must have rank >= 2");
  int64_t M = n->shape[r - 2], N = n->shape[r - 1], K = a->shape[r - 1];
  /* The builder guarantees these; a violation would read out of bounds. */
  bool ok = a->shape[r - 2] == M && b->shape[r - 2] == K && b->shape[r - 1] == N;
  for (int d = 0; d < r - 2; d++) ok = ok && a->shape[d] == n->shape[d] && b->shape[d] == n->shape[d];
  if (!ok) return node_fail(rs, n, "operand shapes do not match the result");
  if (alloc_dense(rs->it, n, out)) return -1;
  if (is_empty(n)) return 0;
  smelt_dtype adt = (smelt_dtype)a->dtype, bdt = (smelt_dtype)b->dtype, dt = (smelt_dtype)n->dtype;
  size_t aes = smelt_dtype_size(adt), bes = smelt_dtype_size(bdt), es = esize(n);
  bool use_f = sm_is_float(adt) || sm_is_float(bdt);
  const int64_t *as = av->strides, *bs = bv->strides, *os = out->strides;

  nditer nd; /* over the batch dims */
  nd_init(&nd, r - 2, n->shape);
  int oa = nd_add(&nd, av->off, as), ob = nd_add(&nd, bv->off, bs), oo = nd_add(&nd, out->off, os);
  do {
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        int64_t pa = nd.off[oa] + i * as[r - 2], pb = nd.off[ob] + j * bs[r - 1];
        unsigned char *po = at(out, nd.off[oo] + i * os[r - 2] + j * os[r - 1], es);
        if (use_f) {
          double s = 0;
          for (int64_t k = 0; k < K; k++)
            s += load_f(at(av, pa + k * as[r - 1], aes), adt) *
                 load_f(at(bv, pb + k * bs[r - 2], bes), bdt);
          store_f(po, dt, s);
        } else {
          uint64_t s = 0;
          for (int64_t k = 0; k < K; k++)
            s += (uint64_t)load_i(at(av, pa + k * as[r - 1], aes), adt) *
                 (uint64_t)load_i(at(bv, pb + k * bs[r - 2], bes), bdt);
          store_i(po, dt, (int64_t)s);
        }
      }
  } while (nd_next(&nd));
  return 0;
}

/* -------------------------------------------------------------- gather */

/* out[p] = x[p with p[axis] replaced by index[p]]; out has index's shape.
 * x is walked with stride 0 on axis, the index then adds its offset. */
static int eval_gather(run_state *rs, const sm_node *n, view *out) {
  const sm_node *x = input_node(rs, n, 0), *ix = input_node(rs, n, 1);
  const view *xv = input_val(rs, n, 0), *iv = input_val(rs, n, 1);
  int axis = (int)n->iattr[0];
  int64_t len = x->shape[axis];
  if (alloc_dense(rs->it, n, out)) return -1;
  if (is_empty(n)) return 0;
  smelt_dtype xdt = (smelt_dtype)x->dtype, idt = (smelt_dtype)ix->dtype;
  size_t xes = smelt_dtype_size(xdt), ies = smelt_dtype_size(idt), es = esize(n);
  int64_t xstr[SMELT_MAX_RANK];
  memcpy(xstr, xv->strides, sizeof xstr);
  xstr[axis] = 0;
  nditer nd;
  nd_init(&nd, n->rank, n->shape);
  int o = nd_add(&nd, out->off, out->strides);
  int s = nd_add(&nd, xv->off, xstr);
  int q = nd_add(&nd, iv->off, iv->strides);
  do {
    int64_t k = load_i(at(iv, nd.off[q], ies), idt);
    int64_t kk = k; /* as PyTorch: negative indices are out of range too */
    if (kk < 0 || kk >= len) {
      char id[128];
      sm_node_id(rs->g, n, id, sizeof id);
      release(out);
      return fail(rs->it, "gather: index %" PRId64 " is out of range for axis %d of size %" PRId64
                  " (node %s)", k, axis, len, id);
    }
    convert(at(out, nd.off[o], es), (smelt_dtype)n->dtype,
            at(xv, nd.off[s] + kk * xv->strides[axis], xes), xdt);
  } while (nd_next(&nd));
  return 0;
}

/* --------------------------------------------------------- scatter_add */

/* out = zeros; out[p with p[axis] = index[q]] += src[q] for every q of the
 * index's shape. Sums are accumulated in double (int64 for integers), like
 * the reductions, then stored once. */
static int eval_scatter_add(run_state *rs, const sm_node *n, view *out) {
  const sm_node *ix = input_node(rs, n, 0), *src = input_node(rs, n, 1);
  const view *iv = input_val(rs, n, 0), *sv = input_val(rs, n, 1);
  int axis = (int)n->iattr[0];
  int64_t len = n->shape[axis];
  if (alloc_dense(rs->it, n, out)) return -1;
  int64_t total = sm_numel(n->rank, n->shape);
  bool isf = sm_is_float((smelt_dtype)n->dtype);
  union acc {
    double f;
    uint64_t i;
  } *acc = sm_calloc((size_t)(total ? total : 1), sizeof *acc);
  if (!acc) {
    release(out);
    return fail_oom(rs->it);
  }
  smelt_dtype idt = (smelt_dtype)ix->dtype, sdt = (smelt_dtype)src->dtype;
  size_t ies = smelt_dtype_size(idt), ses = smelt_dtype_size(sdt), es = esize(n);
  int64_t ostr[SMELT_MAX_RANK];
  dense_strides(n->rank, n->shape, ostr);
  int64_t walk[SMELT_MAX_RANK];
  memcpy(walk, ostr, sizeof walk);
  walk[axis] = 0;
  if (!is_empty(ix)) {
    nditer nd;
    nd_init(&nd, ix->rank, ix->shape);
    int q = nd_add(&nd, iv->off, iv->strides);
    int s = nd_add(&nd, sv->off, sv->strides);
    int o = nd_add(&nd, 0, walk);
    do {
      int64_t k = load_i(at(iv, nd.off[q], ies), idt);
      if (k < 0 || k >= len) {
        char id[128];
        sm_node_id(rs->g, n, id, sizeof id);
        sm_free(acc);
        release(out);
        return fail(rs->it, "scatter_add: index %" PRId64 " is out of range for axis %d of size %" PRId64
                    " (node %s)", k, axis, len, id);
      }
      int64_t pos = nd.off[o] + k * ostr[axis];
      const unsigned char *p = at(sv, nd.off[s], ses);
      if (isf) acc[pos].f += load_f(p, sdt);
      else acc[pos].i += (uint64_t)load_i(p, sdt);
    } while (nd_next(&nd));
  }
  for (int64_t pos = 0; pos < total; pos++) {
    if (isf) store_f(at(out, pos, es), (smelt_dtype)n->dtype, acc[pos].f);
    else store_i(at(out, pos, es), (smelt_dtype)n->dtype, (int64_t)acc[pos].i);
  }
  sm_free(acc);
  return 0;
}

/* ---------------------------------------------------------------- nodes */

/* The value of input k of n, shared (no copy). */
static int share(run_state *rs, const sm_node *n, int k, view *out) {
  *out = *input_val(rs, n, k);
  retain(out);
  return 0;
}

static int eval_node(run_state *rs, uint32_t i) {
  const sm_node *n = &rs->g->nodes[i];
  view *out = &rs->vals[i];
  switch (sm_ops[n->op].cls) {
  case OPC_SOURCE: return eval_source(rs, n, i, out);
  case OPC_UNARY:
    if (n->op == OP_STOP_GRADIENT) return share(rs, n, 0, out); /* the identity */
    return eval_elementwise(rs, n, out);
  case OPC_BINARY: return eval_elementwise(rs, n, out);
  case OPC_TERNARY: return eval_where(rs, n, out);
  case OPC_REDUCE: return eval_reduce(rs, n, out);
  case OPC_ARGREDUCE: return eval_argreduce(rs, n, out);
  case OPC_VIEW: return eval_view(rs, n, out);
  case OPC_PAD: return eval_pad(rs, n, out);
  case OPC_CONCAT: return eval_concat(rs, n, out);
  case OPC_MATMUL: return eval_matmul(rs, n, out);
  case OPC_GATHER: return eval_gather(rs, n, out);
  case OPC_SCATTER: return eval_scatter_add(rs, n, out);
  case OPC_ASSIGN: return share(rs, n, 1, out); /* the param's new value */
  }
  return node_fail(rs, n, "unknown op class");
}

/* ---------------------------------------------------------- public API */

smelt_interp *smelt_interp_new(const smelt_graph *g) {
  smelt_interp *it = sm_calloc(1, sizeof *it);
  if (!it) return NULL;
  it->g = g;
  return it;
}

static void drop_outputs(smelt_interp *it) {
  for (size_t k = 0; k < it->nouts; k++) release(&it->outs[k]);
  sm_free(it->outs);
  it->outs = NULL;
  it->nouts = 0;
  it->have_run = false;
}

void smelt_interp_free(smelt_interp *it) {
  if (!it) return;
  drop_outputs(it);
  sm_free(it->binds);
  clear_error(it);
  sm_free(it);
}

const char *smelt_interp_error(const smelt_interp *it) {
  if (!it) return "interpreter is NULL";
  return it->error;
}

/* Appends ' "a", "b"' naming the graph's inputs (or outputs). */
static void list_names(sm_buf *b, const smelt_graph *g, bool outputs) {
  size_t count = 0;
  size_t total = outputs ? g->noutputs : g->nnodes;
  for (size_t i = 0; i < total; i++) {
    const char *name;
    if (outputs)
      name = g->outputs[i].name;
    else if (g->nodes[i].op == OP_INPUT)
      name = g->nodes[i].name;
    else
      continue;
    if (count == 20) {
      sm_buf_puts(b, ", ...");
      break;
    }
    sm_buf_printf(b, count ? ", \"%s\"" : "\"%s\"", name);
    count++;
  }
  if (!count) sm_buf_puts(b, outputs ? "the graph has no outputs" : "the graph has no inputs");
}

const void *sm_interp_bound(const smelt_interp *it, uint32_t node) {
  if (!it || node >= it->nbinds || !it->binds[node].set) return NULL;
  return it->binds[node].data;
}

int smelt_interp_bind(smelt_interp *it, const char *name, smelt_dtype dt, int rank,
                      const int64_t *dims, const void *data, size_t nbytes) {
  if (!it) return -1;
  if (check_graph(it)) return -1;
  const smelt_graph *g = it->g;
  if (!name) return fail(it, "bind: the input name is NULL");
  const sm_node *n = sm_get(g, smelt_find(g, name));
  if (!n || n->op != OP_INPUT) {
    sm_buf b = {0};
    if (n)
      sm_buf_printf(&b, "\"%s\" is not an input: it names a node of op %s (inputs: ", name,
                    sm_ops[n->op].name);
    else
      sm_buf_printf(&b, "unknown input \"%s\" (inputs: ", name);
    list_names(&b, g, false);
    sm_buf_puts(&b, ")");
    return fail_buf(it, &b);
  }
  size_t i = (size_t)(n - g->nodes);
  if (i >= it->nbinds) {
    size_t cap = g->nnodes;
    binding *nb = sm_realloc(it->binds, cap * sizeof *nb);
    if (!nb) return fail_oom(it);
    memset(nb + it->nbinds, 0, (cap - it->nbinds) * sizeof *nb);
    it->binds = nb;
    it->nbinds = cap;
  }
  /* A failed bind leaves the input unbound: a run never uses stale data. */
  it->binds[i].set = false;
  it->binds[i].data = NULL;

  char ty[TYPE_STR], sh[TYPE_STR];
  if ((unsigned)dt >= SMELT_DTYPE_COUNT)
    return fail(it, "input \"%s\": invalid dtype %d", name, (int)dt);
  if (rank < 0 || rank > SMELT_MAX_RANK)
    return fail(it, "input \"%s\": invalid rank %d (0 to %d)", name, rank, SMELT_MAX_RANK);
  if (rank > 0 && !dims) return fail(it, "input \"%s\": dims is NULL for rank %d", name, rank);
  if (dt != n->dtype)
    return fail(it, "input \"%s\": dtype %s does not match the declared %s", name,
                smelt_dtype_name(dt), type_str(n, ty));
  if (rank != n->rank || (rank && memcmp(dims, n->shape, sizeof(int64_t) * (size_t)rank)))
    return fail(it, "input \"%s\": shape %s does not match the declared %s", name,
                shape_str(rank, dims, sh), type_str(n, ty));
  size_t need;
  if (!dense_bytes(n, &need)) return fail(it, "input \"%s\": %s is too large", name, type_str(n, ty));
  if (nbytes != need)
    return fail(it, "input \"%s\": %zu bytes given, %s needs %zu", name, nbytes, type_str(n, ty),
                need);
  if (!data && need) return fail(it, "input \"%s\": data is NULL", name);
  it->binds[i].set = true;
  it->binds[i].data = data;
  return 0;
}

/* Evaluates the given root nodes (the graph's outputs for smelt_interp_run,
 * outputs and update values for programs); keeps their values for reading. */
int sm_interp_run_roots(smelt_interp *it, size_t no, const uint32_t *roots,
                        const sm_run_opts *opts) {
  if (!it) return -1;
  drop_outputs(it);
  if (opts && opts->ignore_graph_error) clear_error(it);
  else if (check_graph(it)) return -1;
  const smelt_graph *g = it->g;
  size_t nn = g->nnodes;
  /* uses[i]: consumers of node i still to run (+1 per root naming it);
   * 0 for nodes the roots do not need. */
  size_t *uses = sm_calloc(nn, sizeof *uses);
  view *vals = sm_calloc(nn, sizeof *vals);
  view *outs = sm_calloc(no, sizeof *outs);
  if (!uses || !vals || !outs) {
    sm_free(uses), sm_free(vals), sm_free(outs);
    return fail_oom(it);
  }
  for (size_t k = 0; k < no; k++) uses[roots[k]]++;
  for (size_t i = nn; i-- > 0;) {
    if (!uses[i]) continue;
    const sm_node *n = &g->nodes[i];
    for (uint32_t k = 0; k < n->ninputs; k++) uses[n->inputs[k]]++;
  }
  int rc = 0;
  /* Missing inputs are reported before any work, in node order. */
  for (size_t i = 0; i < nn && !rc; i++)
    if (uses[i] && g->nodes[i].op == OP_INPUT && (i >= it->nbinds || !it->binds[i].set))
      rc = fail(it, "input \"%s\" is not bound", g->nodes[i].name);

  run_state rs = {it, g, vals, opts ? opts->param_data : NULL, opts ? opts->training : true,
                  opts ? opts->rng_step : 0};
  for (size_t i = 0; i < nn && !rc; i++) {
    if (!uses[i]) continue;
    rc = eval_node(&rs, (uint32_t)i);
    if (rc) break;
    const sm_node *n = &g->nodes[i];
    for (uint32_t k = 0; k < n->ninputs; k++)
      if (--uses[n->inputs[k]] == 0) release(&vals[n->inputs[k]]);
  }
  if (!rc) {
    for (size_t k = 0; k < no; k++) {
      outs[k] = vals[roots[k]];
      retain(&outs[k]);
    }
    it->outs = outs;
    it->nouts = no;
    it->have_run = true;
  } else {
    sm_free(outs);
  }
  for (size_t i = 0; i < nn; i++) release(&vals[i]);
  sm_free(vals);
  sm_free(uses);
  return rc;
}

int smelt_interp_run(smelt_interp *it) {
  if (!it) return -1;
  drop_outputs(it);
  if (check_graph(it)) return -1;
  const smelt_graph *g = it->g;
  size_t no = g->noutputs;
  uint32_t *roots = sm_malloc(sizeof *roots * (no ? no : 1));
  if (!roots) {
    drop_outputs(it);
    return fail_oom(it);
  }
  for (size_t k = 0; k < no; k++) roots[k] = g->outputs[k].node;
  int rc = sm_interp_run_roots(it, no, roots, NULL);
  sm_free(roots);
  return rc;
}

/* Copies root k of the last run (dense, in the node's dtype) to data, which
 * holds exactly its bytes. */
int sm_interp_read_root(smelt_interp *it, size_t k, uint32_t node, void *data) {
  if (!it || !it->have_run || k >= it->nouts) return -1;
  const sm_node *n = &it->g->nodes[node];
  view dst = {0};
  storage st = {.refs = 1, .data = data};
  dst.st = &st;
  dense_strides(n->rank, n->shape, dst.strides);
  copy_view(&dst, (smelt_dtype)n->dtype, &it->outs[k], (smelt_dtype)n->dtype, n->rank, n->shape);
  return 0;
}

int smelt_interp_read(smelt_interp *it, const char *name, smelt_dtype dt, void *data,
                      size_t nbytes) {
  if (!it) return -1;
  if (check_graph(it)) return -1;
  const smelt_graph *g = it->g;
  if (!name) return fail(it, "read: the output name is NULL");
  size_t k = 0;
  while (k < g->noutputs && strcmp(g->outputs[k].name, name) != 0) k++;
  if (k == g->noutputs) {
    sm_buf b = {0};
    sm_buf_printf(&b, "unknown output \"%s\" (outputs: ", name);
    list_names(&b, g, true);
    sm_buf_puts(&b, ")");
    return fail_buf(it, &b);
  }
  if (!it->have_run)
    return fail(it, "output \"%s\": no results yet (smelt_interp_run has not succeeded)", name);
  if (k >= it->nouts)
    return fail(it, "output \"%s\" was added after the last run; run again", name);
  const sm_node *n = &g->nodes[g->outputs[k].node];
  char ty[TYPE_STR];
  if ((unsigned)dt >= SMELT_DTYPE_COUNT)
    return fail(it, "output \"%s\": invalid dtype %d for the output's %s", name, (int)dt,
                type_str(n, ty));
  if (dt != n->dtype)
    return fail(it, "output \"%s\": dtype %s does not match the output's %s", name,
                smelt_dtype_name(dt), type_str(n, ty));
  size_t need;
  if (!dense_bytes(n, &need)) /* e.g. a huge expand: a view, never allocated */
    return fail(it, "output \"%s\": %s is too large to read", name, type_str(n, ty));
  if (nbytes != need)
    return fail(it, "output \"%s\": %zu bytes given, %s needs %zu", name, nbytes, type_str(n, ty),
                need);
  if (!data && need) return fail(it, "output \"%s\": data is NULL", name);
  view dst = {0};
  storage st = {.refs = 1, .data = data};
  dst.st = &st;
  dense_strides(n->rank, n->shape, dst.strides);
  copy_view(&dst, dt, &it->outs[k], dt, n->rank, n->shape);
  return 0;
}
