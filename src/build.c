/* Builders of the primitive ops: argument checks, dtype promotion, shape
 * inference and explicit broadcasting (reshape + expand nodes), then
 * hash-consing through sm_intern. Composites live in composite.c. */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ operands */

/* A snapshot of an operand (g->nodes may move while nodes are added). */
typedef struct val {
  smelt_node h;
  smelt_dtype dt;
  int rank;
  int64_t shape[SMELT_MAX_RANK];
  bool weak;       /* a literal (smelt_scalar / smelt_scalar_int) */
  double weak_f;   /* its value when a float literal */
  int64_t weak_i;  /* its value when an integer literal */
  char id[72];     /* "%name" or "%7" for messages */
} val;

static void snap(const smelt_graph *g, smelt_node h, val *v) {
  const sm_node *n = &g->nodes[h.index - 1];
  v->h = h;
  v->dt = (smelt_dtype)n->dtype;
  v->rank = n->rank;
  memcpy(v->shape, n->shape, sizeof v->shape);
  v->weak = n->op == OP_CONST && n->niattr == 1 && n->iattr[0] == 1;
  v->weak_f = v->weak && sm_is_float(v->dt) ? n->fattr[0] : 0;
  v->weak_i = v->weak && !sm_is_float(v->dt) ? *(const int64_t *)n->data : 0;
  sm_node_id(g, n, v->id, sizeof v->id);
}

/* Checks a handle argument; records the error and returns false when bad
 * (silently when the graph already failed: errors are sticky). */
static bool get(smelt_graph *g, const char *op, smelt_node h, const char *what, val *v) {
  if (!sm_arg(g, op, h, what)) return false;
  snap(g, h, v);
  return true;
}

/* "%x: f32[3,4]" into a caller's buffer. */
static const char *desc(const val *v, char *out, size_t len) {
  sm_buf b = {0};
  sm_buf_printf(&b, "%s: %s", v->id, smelt_dtype_name(v->dt));
  sm_buf_shape(&b, v->rank, v->shape);
  snprintf(out, len, "%s", b.data && !b.oom ? b.data : v->id);
  sm_buf_free(&b);
  return out;
}
#define DESC(v) desc((v), (char[160]){0}, 160)

static const char *shape_str(int rank, const int64_t *dims, char *out, size_t len) {
  sm_buf b = {0};
  sm_buf_shape(&b, rank, dims);
  snprintf(out, len, "%s", b.data && !b.oom ? b.data : "[?]");
  sm_buf_free(&b);
  return out;
}
#define SHAPE(r, d) shape_str((r), (d), (char[160]){0}, 160)

static bool same_shape(int ra, const int64_t *a, int rb, const int64_t *b) {
  return ra == rb && memcmp(a, b, sizeof(int64_t) * (size_t)ra) == 0;
}

/* Checks a caller's shape (rank, dims >= 0, addressable element count) and
 * copies it: the caller's dims may point into the graph (smelt_node_shape),
 * which moves when nodes are added. */
static bool take_dims(smelt_graph *g, const char *op, int rank, const int64_t *dims,
                      int64_t *out, int64_t *numel) {
  if (rank < 0 || rank > SMELT_MAX_RANK) {
    sm_fail(g, "%s: rank %d is out of range (0 to %d)", op, rank, SMELT_MAX_RANK);
    return false;
  }
  if (rank > 0 && !dims) {
    sm_fail(g, "%s: dims is NULL for rank %d", op, rank);
    return false;
  }
  int64_t n = 1;
  for (int i = 0; i < rank; i++) {
    if (dims[i] < 0) {
      sm_fail(g, "%s: dim %d of %s is negative", op, i, SHAPE(rank, dims));
      return false;
    }
    if (dims[i] && n > SM_MAX_NUMEL / dims[i]) {
      sm_fail(g, "%s: shape %s has too many elements (more than 2^59)", op, SHAPE(rank, dims));
      return false;
    }
    n *= dims[i];
    out[i] = dims[i];
  }
  if (numel) *numel = n;
  return true;
}

/* Whether a double converts to an integer dtype without overflow (the
 * conversion truncates toward zero). */
static bool fits_int(double v, smelt_dtype dt) {
  if (dt == SMELT_I32) return v > -2147483649.0 && v < 2147483648.0;
  return v >= -0x1p63 && v < 0x1p63;
}

/* Interns a node after checking that its element count is addressable. */
static smelt_node mk(smelt_graph *g, sm_node_desc *d) {
  const char *op = sm_ops[d->op].name;
  int64_t n = 1;
  for (int i = 0; i < d->rank; i++) {
    if (d->shape[i] && n > SM_MAX_NUMEL / d->shape[i])
      return sm_fail(g, "%s: result shape %s has too many elements (more than 2^59)", op,
                     SHAPE(d->rank, d->shape));
    n *= d->shape[i];
  }
  return sm_intern(g, d);
}

static smelt_node mk_simple(smelt_graph *g, sm_op op, smelt_dtype dt, int rank,
                            const int64_t *shape, int nin, const uint32_t *in, int niattr,
                            const int64_t *iattr) {
  sm_node_desc d = {0};
  d.op = op;
  d.dtype = dt;
  d.rank = rank;
  d.shape = shape;
  d.ninputs = nin;
  d.inputs = in;
  d.niattr = niattr;
  d.iattr = iattr;
  return mk(g, &d);
}

/* ------------------------------------------------------------ promotion */

static int category(smelt_dtype dt) { return dt == SMELT_BOOL ? 0 : sm_is_int(dt) ? 1 : 2; }
static int priority(const val *v) { return v->weak ? 0 : v->rank == 0 ? 1 : 2; }

/* torch.result_type: the highest category wins; its dtype comes from the
 * highest-priority group (ranked > rank-0 > literal) holding that category,
 * the widest dtype of the group. A float literal counts as f32, an integer
 * literal as i64. */
static smelt_dtype promote(const val *vs, int n) {
  int cat = 0;
  for (int i = 0; i < n; i++)
    if (category(vs[i].dt) > cat) cat = category(vs[i].dt);
  for (int prio = 2; prio >= 0; prio--) {
    bool found = false;
    smelt_dtype best = SMELT_BOOL;
    for (int i = 0; i < n; i++) {
      if (priority(&vs[i]) != prio || category(vs[i].dt) != cat) continue;
      smelt_dtype dt = vs[i].dt;
      if (!found || smelt_dtype_size(dt) > smelt_dtype_size(best)) best = dt;
      found = true;
    }
    if (found) return best;
  }
  return vs[0].dt;
}

/* A rank-0 constant holding value in dtype dt. */
static smelt_node scalar_const(smelt_graph *g, smelt_dtype dt, double f, int64_t i, bool from_int,
                               bool weak, double weak_f) {
  unsigned char bytes[8];
  switch (dt) {
  case SMELT_F32: {
    float x = from_int ? (float)i : (float)f;
    memcpy(bytes, &x, 4);
    break;
  }
  case SMELT_F64: {
    double x = from_int ? (double)i : f;
    memcpy(bytes, &x, 8);
    break;
  }
  case SMELT_I32: {
    int32_t x = from_int ? (int32_t)(uint32_t)(uint64_t)i : (int32_t)f;
    memcpy(bytes, &x, 4);
    break;
  }
  case SMELT_I64: {
    int64_t x = from_int ? i : (int64_t)f;
    memcpy(bytes, &x, 8);
    break;
  }
  default: {
    bytes[0] = from_int ? i != 0 : f != 0;
    break;
  }
  }
  sm_node_desc d = {0};
  d.op = OP_CONST;
  d.dtype = dt;
  d.data = bytes;
  d.data_bytes = smelt_dtype_size(dt);
  int64_t one = 1;
  if (weak) {
    d.niattr = 1;
    d.iattr = &one;
    d.fattr[0] = weak_f;
  }
  return mk(g, &d);
}

/* Whether a literal operand fits dtype dt; else records the error, which
 * names the op when the caller knows it (op may be NULL). */
static bool literal_fits(smelt_graph *g, const char *op, const val *v, smelt_dtype dt) {
  if (!v->weak) return true;
  const char *sep = op ? ": " : "";
  op = op ? op : "";
  bool from_int = !sm_is_float(v->dt);
  if (!from_int && sm_is_int(dt) && !fits_int(v->weak_f, dt)) {
    sm_fail(g, "%s%sthe literal %g does not fit %s (literals must fit the tensor's dtype)", op,
            sep, v->weak_f, smelt_dtype_name(dt));
    return false;
  }
  if (from_int && dt == SMELT_I32 && (v->weak_i < INT32_MIN || v->weak_i > INT32_MAX)) {
    sm_fail(g, "%s%sthe literal %" PRId64 " does not fit i32 (literals must fit the tensor's dtype)",
            op, sep, v->weak_i);
    return false;
  }
  return true;
}

/* Converts an operand to dtype dt: a literal becomes a typed constant, a
 * tensor of another dtype gets a cast node. */
static bool convert(smelt_graph *g, val *v, smelt_dtype dt) {
  if (v->dt == dt && !v->weak) return true;
  smelt_node h;
  if (v->weak) {
    bool from_int = !sm_is_float(v->dt);
    if (!literal_fits(g, NULL, v, dt)) return false;
    h = scalar_const(g, dt, v->weak_f, v->weak_i, from_int, false, 0);
  } else {
    uint32_t in = v->h.index - 1;
    h = mk_simple(g, OP_CAST, dt, v->rank, v->shape, 1, &in, 0, NULL);
  }
  if (!smelt_node_valid(h)) return false;
  snap(g, h, v);
  return true;
}

/* Broadcasts an operand to shape (already known compatible): reshape to add
 * leading 1s, then expand the size-1 dims (stride 0, never a copy). */
static bool bcast(smelt_graph *g, val *v, int rank, const int64_t *shape) {
  if (same_shape(v->rank, v->shape, rank, shape)) return true;
  smelt_node h = v->h;
  if (v->rank != rank) {
    int64_t s[SMELT_MAX_RANK];
    int lead = rank - v->rank;
    for (int i = 0; i < rank; i++) s[i] = i < lead ? 1 : v->shape[i - lead];
    h = sm_reshape(g, h, rank, s);
    if (!smelt_node_valid(h)) return false;
  }
  h = sm_expand(g, h, rank, shape);
  if (!smelt_node_valid(h)) return false;
  snap(g, h, v);
  return true;
}

static bool broadcast2(smelt_graph *g, const char *op, const val *a, const val *b, int *rank,
                       int64_t *shape) {
  int k = sm_broadcast_shapes(a->rank, a->shape, b->rank, b->shape, rank, shape);
  if (k < 0) return true;
  int64_t da = k <= a->rank ? a->shape[a->rank - k] : 1;
  int64_t db = k <= b->rank ? b->shape[b->rank - k] : 1;
  sm_fail(g,
          "%s: cannot broadcast %s with %s: dim -%d is %" PRId64 " in the first and %" PRId64
          " in the second (dims must be equal or 1)",
          op, DESC(a), DESC(b), k, da, db);
  return false;
}

/* ---------------------------------------------------------- elementwise */

static bool result_dtypes(smelt_graph *g, sm_op op, const val *vs, int n, smelt_dtype *compute,
                          smelt_dtype *out) {
  smelt_dtype pt = promote(vs, n);
  const char *name = sm_ops[op].name;
  switch (sm_ops[op].dtype_rule) {
  case DTR_NO_BOOL:
    for (int i = 0; i < n; i++)
      if (vs[i].dt == SMELT_BOOL) {
        sm_fail(g, "%s: a bool operand is not supported (%s); use logical ops on bools", name,
                DESC(&vs[i]));
        return false;
      }
    *compute = *out = pt;
    return true;
  case DTR_SAME:
    if (pt == SMELT_BOOL) {
      sm_fail(g, "%s: needs numeric operands, got bool (%s%s%s)", name, DESC(&vs[0]),
              n > 1 ? ", " : "", n > 1 ? DESC(&vs[1]) : "");
      return false;
    }
    *compute = *out = pt;
    return true;
  case DTR_FLOAT:
    *compute = *out = sm_is_float(pt) ? pt : SMELT_F32;
    return true;
  case DTR_COMPARE:
  case DTR_LOGICAL:
    *compute = pt;
    *out = SMELT_BOOL;
    return true;
  default:
    *compute = *out = pt;
    return true;
  }
}

/* Arithmetic on literals alone gives a literal, as Python arithmetic on
 * Python numbers does (so neg(0.1) keeps the double 0.1 for an f64 tensor).
 * Returns an invalid handle when the op does not fold (bool results). */
static smelt_node fold_literals(smelt_graph *g, sm_op op, const val *vs, int n,
                                smelt_dtype out) {
  for (int i = 0; i < n; i++)
    if (!vs[i].weak) return SMELT_INVALID;
  const sm_op_info *info = &sm_ops[op];
  double f[2] = {0, 0};
  int64_t k[2] = {0, 0};
  bool all_int = true;
  for (int i = 0; i < n; i++) {
    bool is_int = !sm_is_float(vs[i].dt);
    f[i] = is_int ? (double)vs[i].weak_i : vs[i].weak_f;
    k[i] = vs[i].weak_i;
    all_int = all_int && is_int;
  }
  if (out == SMELT_F32 && info->eval_f) return smelt_scalar(g, info->eval_f(f[0], f[1]));
  if (out == SMELT_I64 && all_int && info->eval_i)
    return smelt_scalar_int(g, info->eval_i(k[0], k[1]));
  return SMELT_INVALID;
}

static smelt_node unary(smelt_graph *g, sm_op op, smelt_node x) {
  val v;
  if (!get(g, sm_ops[op].name, x, "the operand", &v)) return SMELT_INVALID;
  smelt_dtype compute, out;
  if (!result_dtypes(g, op, &v, 1, &compute, &out)) return SMELT_INVALID;
  smelt_node folded = fold_literals(g, op, &v, 1, out);
  if (smelt_node_valid(folded) || g->error) return folded;
  if (!convert(g, &v, compute)) return SMELT_INVALID;
  uint32_t in = v.h.index - 1;
  return mk_simple(g, op, out, v.rank, v.shape, 1, &in, 0, NULL);
}

static smelt_node binary(smelt_graph *g, sm_op op, smelt_node a, smelt_node b) {
  const char *name = sm_ops[op].name;
  val v[2];
  if (!get(g, name, a, "operand 1", &v[0]) || !get(g, name, b, "operand 2", &v[1]))
    return SMELT_INVALID;
  smelt_dtype compute, out;
  if (!result_dtypes(g, op, v, 2, &compute, &out)) return SMELT_INVALID;
  smelt_node folded = fold_literals(g, op, v, 2, out);
  if (smelt_node_valid(folded) || g->error) return folded;
  int rank;
  int64_t shape[SMELT_MAX_RANK];
  if (!broadcast2(g, name, &v[0], &v[1], &rank, shape)) return SMELT_INVALID;
  for (int i = 0; i < 2; i++)
    if (!literal_fits(g, name, &v[i], compute) || !convert(g, &v[i], compute) ||
        !bcast(g, &v[i], rank, shape))
      return SMELT_INVALID;
  uint32_t in[2] = {v[0].h.index - 1, v[1].h.index - 1};
  return mk_simple(g, op, out, rank, shape, 2, in, 0, NULL);
}

smelt_node smelt_neg(smelt_graph *g, smelt_node x) { return unary(g, OP_NEG, x); }
smelt_node smelt_abs(smelt_graph *g, smelt_node x) { return unary(g, OP_ABS, x); }
smelt_node smelt_sign(smelt_graph *g, smelt_node x) { return unary(g, OP_SIGN, x); }
smelt_node smelt_exp(smelt_graph *g, smelt_node x) { return unary(g, OP_EXP, x); }
smelt_node smelt_log(smelt_graph *g, smelt_node x) { return unary(g, OP_LOG, x); }
smelt_node smelt_sqrt(smelt_graph *g, smelt_node x) { return unary(g, OP_SQRT, x); }
smelt_node smelt_rsqrt(smelt_graph *g, smelt_node x) { return unary(g, OP_RSQRT, x); }
smelt_node smelt_reciprocal(smelt_graph *g, smelt_node x) { return unary(g, OP_RECIPROCAL, x); }
smelt_node smelt_sin(smelt_graph *g, smelt_node x) { return unary(g, OP_SIN, x); }
smelt_node smelt_cos(smelt_graph *g, smelt_node x) { return unary(g, OP_COS, x); }
smelt_node smelt_tanh(smelt_graph *g, smelt_node x) { return unary(g, OP_TANH, x); }
smelt_node smelt_sigmoid(smelt_graph *g, smelt_node x) { return unary(g, OP_SIGMOID, x); }
smelt_node smelt_relu(smelt_graph *g, smelt_node x) { return unary(g, OP_RELU, x); }
smelt_node smelt_logical_not(smelt_graph *g, smelt_node x) { return unary(g, OP_NOT, x); }

smelt_node smelt_stop_gradient(smelt_graph *g, smelt_node x) {
  val v;
  if (!get(g, "stop_gradient", x, "the operand", &v)) return SMELT_INVALID;
  if (g->nodes[x.index - 1].op == OP_STOP_GRADIENT) return x;
  return unary(g, OP_STOP_GRADIENT, x);
}

smelt_node smelt_add(smelt_graph *g, smelt_node a, smelt_node b) { return binary(g, OP_ADD, a, b); }
smelt_node smelt_sub(smelt_graph *g, smelt_node a, smelt_node b) { return binary(g, OP_SUB, a, b); }
smelt_node smelt_mul(smelt_graph *g, smelt_node a, smelt_node b) { return binary(g, OP_MUL, a, b); }
smelt_node smelt_div(smelt_graph *g, smelt_node a, smelt_node b) { return binary(g, OP_DIV, a, b); }
smelt_node smelt_pow(smelt_graph *g, smelt_node a, smelt_node b) { return binary(g, OP_POW, a, b); }
smelt_node smelt_maximum(smelt_graph *g, smelt_node a, smelt_node b) {
  return binary(g, OP_MAXIMUM, a, b);
}
smelt_node smelt_minimum(smelt_graph *g, smelt_node a, smelt_node b) {
  return binary(g, OP_MINIMUM, a, b);
}
smelt_node smelt_lt(smelt_graph *g, smelt_node a, smelt_node b) { return binary(g, OP_LT, a, b); }
smelt_node smelt_le(smelt_graph *g, smelt_node a, smelt_node b) { return binary(g, OP_LE, a, b); }
smelt_node smelt_gt(smelt_graph *g, smelt_node a, smelt_node b) { return binary(g, OP_GT, a, b); }
smelt_node smelt_ge(smelt_graph *g, smelt_node a, smelt_node b) { return binary(g, OP_GE, a, b); }
smelt_node smelt_eq(smelt_graph *g, smelt_node a, smelt_node b) { return binary(g, OP_EQ, a, b); }
smelt_node smelt_ne(smelt_graph *g, smelt_node a, smelt_node b) { return binary(g, OP_NE, a, b); }
smelt_node smelt_logical_and(smelt_graph *g, smelt_node a, smelt_node b) {
  return binary(g, OP_AND, a, b);
}
smelt_node smelt_logical_or(smelt_graph *g, smelt_node a, smelt_node b) {
  return binary(g, OP_OR, a, b);
}

smelt_node smelt_where(smelt_graph *g, smelt_node cond, smelt_node a, smelt_node b) {
  val v[3];
  if (!get(g, "where", cond, "the condition", &v[0]) || !get(g, "where", a, "operand 2", &v[1]) ||
      !get(g, "where", b, "operand 3", &v[2]))
    return SMELT_INVALID;
  if (v[0].dt != SMELT_BOOL)
    return sm_fail(g, "where: the condition must be bool, got %s (compare it with ne(x, 0))",
                   DESC(&v[0]));
  smelt_dtype dt = promote(&v[1], 2);
  int rank;
  int64_t shape[SMELT_MAX_RANK], s2[SMELT_MAX_RANK];
  int r2;
  if (!broadcast2(g, "where", &v[1], &v[2], &r2, s2)) return SMELT_INVALID;
  int k = sm_broadcast_shapes(v[0].rank, v[0].shape, r2, s2, &rank, shape);
  if (k >= 0)
    return sm_fail(g, "where: cannot broadcast the condition %s with the values' shape %s (dim -%d)",
                   DESC(&v[0]), SHAPE(r2, s2), k);
  if (!convert(g, &v[0], SMELT_BOOL) || !bcast(g, &v[0], rank, shape)) return SMELT_INVALID;
  for (int i = 1; i < 3; i++)
    if (!literal_fits(g, "where", &v[i], dt) || !convert(g, &v[i], dt) ||
        !bcast(g, &v[i], rank, shape))
      return SMELT_INVALID;
  uint32_t in[3] = {v[0].h.index - 1, v[1].h.index - 1, v[2].h.index - 1};
  return mk_simple(g, OP_WHERE, dt, rank, shape, 3, in, 0, NULL);
}

smelt_node smelt_cast(smelt_graph *g, smelt_node x, smelt_dtype dt) {
  val v;
  if (!get(g, "cast", x, "the operand", &v)) return SMELT_INVALID;
  if ((unsigned)dt >= SMELT_DTYPE_COUNT) return sm_fail(g, "cast: unknown dtype %d", (int)dt);
  if (!convert(g, &v, dt)) return SMELT_INVALID;
  return v.h;
}

/* -------------------------------------------------------------- sources */

static smelt_node named_source(smelt_graph *g, sm_op op, const char *name, smelt_dtype dt,
                               int rank, const int64_t *dims, sm_node_desc *d) {
  const char *opname = sm_ops[op].name;
  if (!g || g->error) return SMELT_INVALID;
  if (!name) return sm_fail(g, "%s: the name is NULL", opname);
  if ((unsigned)dt >= SMELT_DTYPE_COUNT)
    return sm_fail(g, "%s \"%s\": unknown dtype %d", opname, name, (int)dt);
  int64_t shape[SMELT_MAX_RANK];
  if (!take_dims(g, opname, rank, dims, shape, NULL)) return SMELT_INVALID;
  d->op = op;
  d->dtype = dt;
  d->rank = rank;
  d->shape = shape;
  d->name = name;
  return mk(g, d);
}

smelt_node smelt_input(smelt_graph *g, const char *name, smelt_dtype dt, int rank,
                       const int64_t *dims) {
  sm_node_desc d = {0};
  return named_source(g, OP_INPUT, name, dt, rank, dims, &d);
}

smelt_init smelt_init_zeros(void) { return (smelt_init){SMELT_INIT_ZEROS, 0, 0, 0, NULL}; }
smelt_init smelt_init_ones(void) { return (smelt_init){SMELT_INIT_ONES, 0, 0, 0, NULL}; }
smelt_init smelt_init_constant(double v) { return (smelt_init){SMELT_INIT_CONSTANT, v, 0, 0, NULL}; }
smelt_init smelt_init_normal(double mean, double std, uint64_t seed) {
  return (smelt_init){SMELT_INIT_NORMAL, mean, std, seed, NULL};
}
smelt_init smelt_init_uniform(double lo, double hi, uint64_t seed) {
  return (smelt_init){SMELT_INIT_UNIFORM, lo, hi, seed, NULL};
}
smelt_init smelt_init_data(const void *data) {
  return (smelt_init){SMELT_INIT_DATA, 0, 0, 0, data};
}

smelt_node smelt_param(smelt_graph *g, const char *name, smelt_dtype dt, int rank,
                       const int64_t *dims, smelt_init init) {
  if (!g || g->error) return SMELT_INVALID;
  const char *nm = name ? name : "(null)";
  sm_node_desc d = {0};
  int64_t iattr[2] = {(int64_t)init.kind, (int64_t)init.seed};
  d.niattr = 2;
  d.iattr = iattr;
  d.fattr[0] = init.a;
  d.fattr[1] = init.b;
  switch (init.kind) {
  case SMELT_INIT_ZEROS:
  case SMELT_INIT_ONES:
    d.fattr[0] = d.fattr[1] = 0;
    iattr[1] = 0;
    break;
  case SMELT_INIT_CONSTANT:
    d.fattr[1] = 0;
    iattr[1] = 0;
    if (sm_is_int(dt) && !fits_int(init.a, dt))
      return sm_fail(g, "param \"%s\": constant %g does not fit %s", nm, init.a,
                     smelt_dtype_name(dt));
    break;
  case SMELT_INIT_NORMAL:
  case SMELT_INIT_UNIFORM:
    if (!sm_is_float(dt))
      return sm_fail(g, "param \"%s\": %s initialization needs a float dtype, got %s", nm,
                     init.kind == SMELT_INIT_NORMAL ? "normal" : "uniform", smelt_dtype_name(dt));
    if (!isfinite(init.a) || !isfinite(init.b))
      return sm_fail(g, "param \"%s\": initializer parameters must be finite", nm);
    if (init.kind == SMELT_INIT_NORMAL && init.b < 0)
      return sm_fail(g, "param \"%s\": normal std %g is negative", nm, init.b);
    if (init.kind == SMELT_INIT_UNIFORM && init.a > init.b)
      return sm_fail(g, "param \"%s\": uniform bounds lo %g > hi %g", nm, init.a, init.b);
    break;
  case SMELT_INIT_DATA:
    d.fattr[0] = d.fattr[1] = 0;
    iattr[1] = 0;
    if (!init.data) return sm_fail(g, "param \"%s\": initializer data is NULL", nm);
    break;
  default:
    return sm_fail(g, "param \"%s\": unknown initializer kind %d", nm, (int)init.kind);
  }
  if (init.kind == SMELT_INIT_DATA) {
    if ((unsigned)dt >= SMELT_DTYPE_COUNT)
      return sm_fail(g, "param \"%s\": unknown dtype %d", nm, (int)dt);
    int64_t shape[SMELT_MAX_RANK], n;
    if (!take_dims(g, "param", rank, dims, shape, &n)) return SMELT_INVALID;
    d.data = init.data;
    d.data_bytes = (size_t)n * smelt_dtype_size(dt);
  }
  return named_source(g, OP_PARAM, name, dt, rank, dims, &d);
}

smelt_node smelt_scalar(smelt_graph *g, double value) {
  if (!g || g->error) return SMELT_INVALID;
  return scalar_const(g, SMELT_F32, value, 0, false, true, value);
}

smelt_node smelt_scalar_int(smelt_graph *g, int64_t value) {
  if (!g || g->error) return SMELT_INVALID;
  return scalar_const(g, SMELT_I64, 0, value, true, true, 0);
}

smelt_node smelt_const(smelt_graph *g, smelt_dtype dt, double value) {
  if (!g || g->error) return SMELT_INVALID;
  if ((unsigned)dt >= SMELT_DTYPE_COUNT) return sm_fail(g, "const: unknown dtype %d", (int)dt);
  if (sm_is_int(dt) && !fits_int(value, dt))
    return sm_fail(g, "const: %g does not fit %s", value, smelt_dtype_name(dt));
  return scalar_const(g, dt, value, 0, false, false, 0);
}

smelt_node sm_const_raw(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims,
                        const void *data, bool weak) {
  if (!g || g->error) return SMELT_INVALID;
  if ((unsigned)dt >= SMELT_DTYPE_COUNT) return sm_fail(g, "const: unknown dtype %d", (int)dt);
  int64_t shape[SMELT_MAX_RANK], n;
  if (!take_dims(g, "const", rank, dims, shape, &n)) return SMELT_INVALID;
  if (n > 0 && !data) return sm_fail(g, "const: data is NULL");
  if (weak) {
    /* Literals: a float literal is given as a double, an integer one as an
     * int64 (see internal.h). */
    if (rank != 0 || (dt != SMELT_F32 && dt != SMELT_I64))
      return sm_fail(g, "const: a weak literal must be f32[] or i64[]");
    if (dt == SMELT_F32) return smelt_scalar(g, *(const double *)data);
    return smelt_scalar_int(g, *(const int64_t *)data);
  }
  size_t bytes = (size_t)n * smelt_dtype_size(dt);
  sm_node_desc d = {0};
  d.op = OP_CONST;
  d.dtype = dt;
  d.rank = rank;
  d.shape = shape;
  unsigned char *norm = NULL;
  if (dt == SMELT_BOOL && n > 0) {
    /* bools are stored as 0 / 1 so equal values hash equal */
    norm = sm_malloc(bytes);
    if (!norm) return sm_fail_oom(g, "const");
    for (int64_t i = 0; i < n; i++) norm[i] = ((const unsigned char *)data)[i] != 0;
    data = norm;
  }
  static const unsigned char empty[1];
  d.data = n > 0 ? data : empty;
  d.data_bytes = bytes;
  smelt_node r = mk(g, &d);
  sm_free(norm);
  return r;
}

smelt_node smelt_const_array(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims,
                             const void *data) {
  return sm_const_raw(g, dt, rank, dims, data, false);
}

smelt_node sm_iota(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims, int axis,
                   double start, double step) {
  if (!g || g->error) return SMELT_INVALID;
  if ((unsigned)dt >= SMELT_DTYPE_COUNT) return sm_fail(g, "iota: unknown dtype %d", (int)dt);
  int64_t shape[SMELT_MAX_RANK];
  if (!take_dims(g, "iota", rank, dims, shape, NULL)) return SMELT_INVALID;
  dims = shape;
  int a;
  if (!sm_norm_axis(axis, rank, &a))
    return sm_fail(g, "iota: axis %d is out of range for shape %s", axis, SHAPE(rank, dims));
  if (!isfinite(start) || !isfinite(step))
    return sm_fail(g, "iota: start and step must be finite");
  int64_t ax = a;
  sm_node_desc d = {0};
  d.op = OP_IOTA;
  d.dtype = dt;
  d.rank = rank;
  d.shape = dims;
  d.niattr = 1;
  d.iattr = &ax;
  d.fattr[0] = start;
  d.fattr[1] = step;
  return mk(g, &d);
}

smelt_node sm_training(smelt_graph *g) {
  if (!g || g->error) return SMELT_INVALID;
  return mk_simple(g, OP_TRAINING, SMELT_BOOL, 0, NULL, 0, NULL, 0, NULL);
}

smelt_node sm_rng(smelt_graph *g, sm_op op, smelt_dtype dt, int rank, const int64_t *dims,
                  uint64_t seed, double a, double b) {
  if (!g || g->error) return SMELT_INVALID;
  const char *name = op == OP_RAND ? "rand" : "randn";
  if (op != OP_RAND && op != OP_RANDN) return sm_fail(g, "rng: op is not rand or randn");
  if (!sm_is_float(dt))
    return sm_fail(g, "%s: needs a float dtype (f32 or f64), got %s", name, smelt_dtype_name(dt));
  int64_t shape[SMELT_MAX_RANK];
  if (!take_dims(g, name, rank, dims, shape, NULL)) return SMELT_INVALID;
  dims = shape;
  if (!isfinite(a) || !isfinite(b)) return sm_fail(g, "%s: parameters must be finite", name);
  int64_t s = (int64_t)seed;
  sm_node_desc d = {0};
  d.op = op;
  d.dtype = dt;
  d.rank = rank;
  d.shape = dims;
  d.niattr = 1;
  d.iattr = &s;
  d.fattr[0] = a;
  d.fattr[1] = b;
  return mk(g, &d);
}

smelt_node smelt_rand(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims,
                      uint64_t seed) {
  return sm_rng(g, OP_RAND, dt, rank, dims, seed, 0, 1);
}

smelt_node smelt_randn(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims,
                       uint64_t seed) {
  return sm_rng(g, OP_RANDN, dt, rank, dims, seed, 0, 1);
}

/* ----------------------------------------------------------- reductions */

/* Normalizes a list of axes: in range, no repeats, sorted; naxes 0 means
 * all. Returns the count or -1 with the error recorded. */
static int norm_axes(smelt_graph *g, const char *op, const val *v, int naxes, const int *axes,
                     int64_t *out) {
  if (naxes < 0 || naxes > SMELT_MAX_RANK) {
    sm_fail(g, "%s: bad axis list (%d axes) for %s", op, naxes, DESC(v));
    return -1;
  }
  if (naxes > 0 && !axes) {
    sm_fail(g, "%s: axes is NULL for naxes %d (%s)", op, naxes, DESC(v));
    return -1;
  }
  if (naxes == 0) {
    for (int i = 0; i < v->rank; i++) out[i] = i;
    return v->rank;
  }
  if (v->rank == 0) {
    /* PyTorch lets a 0-dim tensor reduce over dim 0 or -1: nothing to do */
    for (int i = 0; i < naxes; i++)
      if (axes[i] != 0 && axes[i] != -1) {
        sm_fail(g, "%s: axis %d is out of range for %s (rank 0)", op, axes[i], DESC(v));
        return -1;
      }
    return 0;
  }
  bool seen[SMELT_MAX_RANK] = {0};
  for (int i = 0; i < naxes; i++) {
    int a;
    if (!sm_norm_axis(axes[i], v->rank, &a)) {
      sm_fail(g, "%s: axis %d is out of range for %s (rank %d)", op, axes[i], DESC(v), v->rank);
      return -1;
    }
    if (seen[a]) {
      sm_fail(g, "%s: axis %d is repeated in the axis list for %s", op, axes[i], DESC(v));
      return -1;
    }
    seen[a] = true;
  }
  int n = 0;
  for (int a = 0; a < v->rank; a++)
    if (seen[a]) out[n++] = a;
  return n;
}

int sm_axes(smelt_graph *g, const char *op, smelt_node x, int naxes, const int *axes,
            int64_t *out) {
  val v;
  if (!get(g, op, x, "the operand", &v)) return -1;
  return norm_axes(g, op, &v, naxes, axes, out);
}

smelt_node sm_reduce(smelt_graph *g, sm_op op, smelt_node x, int naxes, const int *axes) {
  return sm_reduce_as(g, op < OP_COUNT ? sm_ops[op].name : "reduce", op, x, naxes, axes);
}

smelt_node sm_reduce_as(smelt_graph *g, const char *name, sm_op op, smelt_node x, int naxes,
                        const int *axes) {
  val v;
  if (!get(g, name, x, "the operand", &v)) return SMELT_INVALID;
  if (op < OP_REDUCE_SUM || op > OP_REDUCE_MIN)
    return sm_fail(g, "reduce: %s is not a reduction", name);
  int64_t ax[SMELT_MAX_RANK];
  int n = norm_axes(g, name, &v, naxes, axes, ax);
  if (n < 0) return SMELT_INVALID;
  if (v.weak && !convert(g, &v, v.dt)) return SMELT_INVALID;
  if (n == 0) return v.h; /* a rank-0 tensor reduces to itself */
  int64_t shape[SMELT_MAX_RANK];
  memcpy(shape, v.shape, sizeof shape);
  for (int i = 0; i < n; i++) {
    if (v.shape[ax[i]] == 0 && (op == OP_REDUCE_MAX || op == OP_REDUCE_MIN))
      return sm_fail(g, "%s: cannot reduce axis %d of size 0 of %s: %s has no identity", name,
                     (int)ax[i], DESC(&v), op == OP_REDUCE_MAX ? "max" : "min");
    shape[ax[i]] = 1;
  }
  uint32_t in = v.h.index - 1;
  return mk_simple(g, op, v.dt, v.rank, shape, 1, &in, n, ax);
}

smelt_node sm_argreduce(smelt_graph *g, sm_op op, smelt_node x, int axis) {
  const char *name = op == OP_ARGMIN ? "argmin" : "argmax";
  val v;
  if (!get(g, name, x, "the operand", &v)) return SMELT_INVALID;
  if (op != OP_ARGMAX && op != OP_ARGMIN)
    return sm_fail(g, "argreduce: op is not argmax or argmin");
  if (v.weak && !convert(g, &v, v.dt)) return SMELT_INVALID;
  if (v.rank == 0) {
    /* torch.argmax of a scalar along 0 / -1 is 0 */
    if (axis != 0 && axis != -1)
      return sm_fail(g, "%s: axis %d is out of range for %s (rank 0)", name, axis, DESC(&v));
    return scalar_const(g, SMELT_I64, 0, 0, true, false, 0);
  }
  int a;
  if (!sm_norm_axis(axis, v.rank, &a))
    return sm_fail(g, "%s: axis %d is out of range for %s (rank %d)", name, axis, DESC(&v),
                   v.rank);
  if (v.shape[a] == 0)
    return sm_fail(g, "%s: cannot reduce axis %d of size 0 of %s", name, a, DESC(&v));
  int64_t shape[SMELT_MAX_RANK];
  memcpy(shape, v.shape, sizeof shape);
  shape[a] = 1;
  int64_t ax = a;
  uint32_t in = v.h.index - 1;
  return mk_simple(g, op, SMELT_I64, v.rank, shape, 1, &in, 1, &ax);
}

/* ---------------------------------------------------------------- views */

smelt_node sm_reshape(smelt_graph *g, smelt_node x, int rank, const int64_t *dims) {
  val v;
  if (!get(g, "reshape", x, "the operand", &v)) return SMELT_INVALID;
  int64_t shape[SMELT_MAX_RANK], n;
  if (!take_dims(g, "reshape", rank, dims, shape, &n)) return SMELT_INVALID;
  dims = shape;
  if (v.weak && !convert(g, &v, v.dt)) return SMELT_INVALID;
  int64_t have = sm_numel(v.rank, v.shape);
  if (n != have)
    return sm_fail(g,
                   "reshape: cannot reshape %s (%" PRId64 " elements) to %s (%" PRId64
                   " elements)",
                   DESC(&v), have, SHAPE(rank, dims), n);
  if (same_shape(v.rank, v.shape, rank, dims)) return v.h;
  uint32_t in = v.h.index - 1;
  /* A reshape of a reshape is one reshape of the original. */
  const sm_node *src = &g->nodes[in];
  if (src->op == OP_RESHAPE) {
    in = src->inputs[0];
    const sm_node *s0 = &g->nodes[in];
    if (same_shape(s0->rank, s0->shape, rank, dims)) return sm_handle(g, in);
  }
  return mk_simple(g, OP_RESHAPE, v.dt, rank, dims, 1, &in, 0, NULL);
}

smelt_node smelt_reshape(smelt_graph *g, smelt_node x, int rank, const int64_t *dims) {
  val v;
  if (!get(g, "reshape", x, "the operand", &v)) return SMELT_INVALID;
  if (rank < 0 || rank > SMELT_MAX_RANK)
    return sm_fail(g, "reshape: rank %d is out of range (0 to %d)", rank, SMELT_MAX_RANK);
  if (rank > 0 && !dims) return sm_fail(g, "reshape: dims is NULL for rank %d", rank);
  int64_t d[SMELT_MAX_RANK];
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < rank; i++) {
    d[i] = dims[i];
    if (dims[i] == -1) {
      if (infer >= 0)
        return sm_fail(g, "reshape: only one dim of %s may be -1", SHAPE(rank, dims));
      infer = i;
    } else if (dims[i] < 0) {
      return sm_fail(g, "reshape: dim %d of %s is negative", i, SHAPE(rank, dims));
    } else {
      if (dims[i] && known > SM_MAX_NUMEL / dims[i])
        return sm_fail(g, "reshape: shape %s has too many elements (more than 2^59)",
                       SHAPE(rank, dims));
      known *= dims[i];
    }
  }
  if (infer >= 0) {
    int64_t have = sm_numel(v.rank, v.shape);
    if (known == 0 || have % known)
      return sm_fail(g, "reshape: cannot reshape %s (%" PRId64 " elements) to %s", DESC(&v), have,
                     SHAPE(rank, dims));
    d[infer] = have / known;
  }
  return sm_reshape(g, x, rank, d);
}

smelt_node sm_expand(smelt_graph *g, smelt_node x, int rank, const int64_t *dims) {
  val v;
  if (!get(g, "expand", x, "the operand", &v)) return SMELT_INVALID;
  int64_t shape[SMELT_MAX_RANK];
  if (!take_dims(g, "expand", rank, dims, shape, NULL)) return SMELT_INVALID;
  dims = shape;
  if (v.weak && !convert(g, &v, v.dt)) return SMELT_INVALID;
  if (rank != v.rank)
    return sm_fail(g, "expand: %s has rank %d but the target %s has rank %d", DESC(&v), v.rank,
                   SHAPE(rank, dims), rank);
  for (int i = 0; i < rank; i++)
    if (v.shape[i] != dims[i] && v.shape[i] != 1)
      return sm_fail(g,
                     "expand: cannot expand %s to %s: dim %d is %" PRId64
                     " (only size-1 dims expand)",
                     DESC(&v), SHAPE(rank, dims), i, v.shape[i]);
  if (same_shape(v.rank, v.shape, rank, dims)) return v.h;
  uint32_t in = v.h.index - 1;
  /* An expand of an expand is one expand of the original. */
  if (g->nodes[in].op == OP_EXPAND) in = g->nodes[in].inputs[0];
  return mk_simple(g, OP_EXPAND, v.dt, rank, dims, 1, &in, 0, NULL);
}

smelt_node smelt_expand(smelt_graph *g, smelt_node x, int rank, const int64_t *dims) {
  val v;
  if (!get(g, "expand", x, "the operand", &v)) return SMELT_INVALID;
  if (rank > SMELT_MAX_RANK || rank < 0)
    return sm_fail(g, "expand: rank %d is out of range (0 to %d)", rank, SMELT_MAX_RANK);
  if (rank > 0 && !dims) return sm_fail(g, "expand: dims is NULL for rank %d", rank);
  if (rank < v.rank)
    return sm_fail(g, "expand: cannot expand %s to rank %d (the target needs at least rank %d)",
                   DESC(&v), rank, v.rank);
  int64_t d[SMELT_MAX_RANK];
  int lead = rank - v.rank;
  for (int i = 0; i < rank; i++) {
    d[i] = dims[i];
    if (dims[i] == -1) {
      if (i < lead)
        return sm_fail(g, "expand: -1 is not allowed in the new leading dim %d of %s", i,
                       SHAPE(rank, dims));
      d[i] = v.shape[i - lead];
    }
  }
  if (lead) {
    int64_t s[SMELT_MAX_RANK];
    for (int i = 0; i < rank; i++) s[i] = i < lead ? 1 : v.shape[i - lead];
    x = sm_reshape(g, x, rank, s);
  }
  return sm_expand(g, x, rank, d);
}

smelt_node smelt_broadcast_to(smelt_graph *g, smelt_node x, int rank, const int64_t *dims) {
  val v;
  if (!get(g, "broadcast_to", x, "the operand", &v)) return SMELT_INVALID;
  int64_t shape[SMELT_MAX_RANK];
  if (!take_dims(g, "broadcast_to", rank, dims, shape, NULL)) return SMELT_INVALID;
  dims = shape;
  int r;
  int64_t s[SMELT_MAX_RANK];
  int k = sm_broadcast_shapes(v.rank, v.shape, rank, dims, &r, s);
  if (k >= 0 || !same_shape(r, s, rank, dims))
    return sm_fail(g, "broadcast_to: cannot broadcast %s to %s", DESC(&v), SHAPE(rank, dims));
  if (v.weak && !convert(g, &v, v.dt)) return SMELT_INVALID;
  if (!bcast(g, &v, rank, dims)) return SMELT_INVALID;
  return v.h;
}

smelt_node smelt_permute(smelt_graph *g, smelt_node x, const int *perm) {
  val v;
  if (!get(g, "permute", x, "the operand", &v)) return SMELT_INVALID;
  if (v.rank > 0 && !perm) return sm_fail(g, "permute: perm is NULL for %s", DESC(&v));
  int64_t p[SMELT_MAX_RANK];
  bool seen[SMELT_MAX_RANK] = {0};
  bool identity = true;
  int64_t shape[SMELT_MAX_RANK];
  for (int i = 0; i < v.rank; i++) {
    int a;
    if (!sm_norm_axis(perm[i], v.rank, &a))
      return sm_fail(g, "permute: entry %d (%d) is out of range for %s", i, perm[i], DESC(&v));
    if (seen[a])
      return sm_fail(g, "permute: axis %d appears twice, perm is not a permutation of %s", a,
                     DESC(&v));
    seen[a] = true;
    p[i] = a;
    shape[i] = v.shape[a];
    if (a != i) identity = false;
  }
  if (identity) return v.h;
  if (v.weak && !convert(g, &v, v.dt)) return SMELT_INVALID;
  uint32_t in = v.h.index - 1;
  /* A permute of a permute composes into one. */
  const sm_node *src = &g->nodes[in];
  if (src->op == OP_PERMUTE) {
    int64_t q[SMELT_MAX_RANK];
    bool id2 = true;
    for (int i = 0; i < v.rank; i++) {
      q[i] = src->iattr[p[i]];
      if (q[i] != i) id2 = false;
    }
    in = src->inputs[0];
    if (id2) return sm_handle(g, in);
    memcpy(p, q, sizeof q);
  }
  return mk_simple(g, OP_PERMUTE, v.dt, v.rank, shape, 1, &in, v.rank, p);
}

smelt_node smelt_transpose(smelt_graph *g, smelt_node x, int axis0, int axis1) {
  val v;
  if (!get(g, "transpose", x, "the operand", &v)) return SMELT_INVALID;
  int a, b;
  if (v.rank == 0 && (axis0 == 0 || axis0 == -1) && (axis1 == 0 || axis1 == -1)) return v.h;
  if (!sm_norm_axis(axis0, v.rank, &a) || !sm_norm_axis(axis1, v.rank, &b))
    return sm_fail(g, "transpose: axes %d and %d are out of range for %s", axis0, axis1,
                   DESC(&v));
  int perm[SMELT_MAX_RANK];
  for (int i = 0; i < v.rank; i++) perm[i] = i;
  perm[a] = b;
  perm[b] = a;
  return smelt_permute(g, x, perm);
}

smelt_node smelt_squeeze(smelt_graph *g, smelt_node x, int naxes, const int *axes) {
  val v;
  if (!get(g, "squeeze", x, "the operand", &v)) return SMELT_INVALID;
  bool drop[SMELT_MAX_RANK] = {0};
  if (naxes == 0) {
    for (int i = 0; i < v.rank; i++) drop[i] = v.shape[i] == 1;
  } else {
    int64_t ax[SMELT_MAX_RANK];
    int n = norm_axes(g, "squeeze", &v, naxes, axes, ax);
    if (n < 0) return SMELT_INVALID;
    for (int i = 0; i < n; i++) {
      if (v.shape[ax[i]] != 1)
        return sm_fail(g, "squeeze: axis %d of %s has size %" PRId64 ", not 1", (int)ax[i],
                       DESC(&v), v.shape[ax[i]]);
      drop[ax[i]] = true;
    }
  }
  int64_t s[SMELT_MAX_RANK];
  int r = 0;
  for (int i = 0; i < v.rank; i++)
    if (!drop[i]) s[r++] = v.shape[i];
  return sm_reshape(g, x, r, s);
}

smelt_node smelt_unsqueeze(smelt_graph *g, smelt_node x, int axis) {
  val v;
  if (!get(g, "unsqueeze", x, "the operand", &v)) return SMELT_INVALID;
  int a;
  if (v.rank >= SMELT_MAX_RANK)
    return sm_fail(g, "unsqueeze: %s already has the maximum rank %d", DESC(&v), SMELT_MAX_RANK);
  if (!sm_norm_axis(axis, v.rank + 1, &a))
    return sm_fail(g, "unsqueeze: axis %d is out of range for %s (rank %d result)", axis,
                   DESC(&v), v.rank + 1);
  int64_t s[SMELT_MAX_RANK];
  for (int i = 0, j = 0; i <= v.rank; i++) s[i] = i == a ? 1 : v.shape[j++];
  return sm_reshape(g, x, v.rank + 1, s);
}

smelt_node smelt_flatten(smelt_graph *g, smelt_node x, int start_axis, int end_axis) {
  val v;
  if (!get(g, "flatten", x, "the operand", &v)) return SMELT_INVALID;
  if (v.rank == 0) {
    int64_t one = 1;
    return sm_reshape(g, x, 1, &one);
  }
  int a, b;
  if (!sm_norm_axis(start_axis, v.rank, &a) || !sm_norm_axis(end_axis, v.rank, &b) || a > b)
    return sm_fail(g, "flatten: axes %d..%d are out of range or reversed for %s", start_axis,
                   end_axis, DESC(&v));
  int64_t s[SMELT_MAX_RANK];
  int r = 0;
  for (int i = 0; i < v.rank; i++) {
    if (i <= a || i > b)
      s[r++] = v.shape[i];
    else
      s[r - 1] *= v.shape[i];
  }
  return sm_reshape(g, x, r, s);
}

smelt_node smelt_slice(smelt_graph *g, smelt_node x, const int64_t *starts, const int64_t *stops,
                       const int64_t *steps) {
  val v;
  if (!get(g, "slice", x, "the operand", &v)) return SMELT_INVALID;
  int64_t at[2 * SMELT_MAX_RANK], shape[SMELT_MAX_RANK];
  bool whole = true;
  for (int i = 0; i < v.rank; i++) {
    int64_t dim = v.shape[i];
    int64_t start = starts ? starts[i] : 0, stop = stops ? stops[i] : SMELT_END;
    int64_t step = steps ? steps[i] : 1;
    if (step < 1)
      return sm_fail(g, "slice: step %" PRId64 " on axis %d of %s must be >= 1 (use flip to reverse)",
                     step, i, DESC(&v));
    /* Python semantics: negative counts from the end, then clamp. */
    if (start < 0) start = start < -dim ? 0 : start + dim;
    if (stop < 0) stop = stop < -dim ? 0 : stop + dim;
    if (start > dim) start = dim;
    if (stop > dim) stop = dim;
    int64_t len = stop > start ? (stop - start - 1) / step + 1 : 0;
    if (len == 0) start = 0, step = 1;
    if (len == 1) step = 1;
    at[i] = start;
    at[v.rank + i] = step;
    shape[i] = len;
    if (len != dim) whole = false;
  }
  if (whole) return v.h;
  if (v.weak && !convert(g, &v, v.dt)) return SMELT_INVALID;
  uint32_t in = v.h.index - 1;
  return mk_simple(g, OP_SLICE, v.dt, v.rank, shape, 1, &in, 2 * v.rank, at);
}

smelt_node smelt_slice_axis(smelt_graph *g, smelt_node x, int axis, int64_t start, int64_t stop,
                            int64_t step) {
  val v;
  if (!get(g, "slice", x, "the operand", &v)) return SMELT_INVALID;
  int a;
  if (!sm_norm_axis(axis, v.rank, &a))
    return sm_fail(g, "slice: axis %d is out of range for %s", axis, DESC(&v));
  int64_t st[SMELT_MAX_RANK], sp[SMELT_MAX_RANK], sz[SMELT_MAX_RANK];
  for (int i = 0; i < v.rank; i++) st[i] = 0, sp[i] = SMELT_END, sz[i] = 1;
  st[a] = start, sp[a] = stop, sz[a] = step;
  return smelt_slice(g, x, st, sp, sz);
}

smelt_node smelt_flip(smelt_graph *g, smelt_node x, int naxes, const int *axes) {
  val v;
  if (!get(g, "flip", x, "the operand", &v)) return SMELT_INVALID;
  if (naxes == 0) return v.h;
  int64_t ax[SMELT_MAX_RANK];
  int n = norm_axes(g, "flip", &v, naxes, axes, ax);
  if (n < 0) return SMELT_INVALID;
  int m = 0;
  for (int i = 0; i < n; i++)
    if (v.shape[ax[i]] > 1) ax[m++] = ax[i]; /* flipping a size-1 axis changes nothing */
  if (m == 0) return v.h;
  if (v.weak && !convert(g, &v, v.dt)) return SMELT_INVALID;
  uint32_t in = v.h.index - 1;
  return mk_simple(g, OP_FLIP, v.dt, v.rank, v.shape, 1, &in, m, ax);
}

smelt_node smelt_unfold(smelt_graph *g, smelt_node x, int axis, int64_t size, int64_t step) {
  val v;
  if (!get(g, "unfold", x, "the operand", &v)) return SMELT_INVALID;
  int a;
  if (!sm_norm_axis(axis, v.rank, &a))
    return sm_fail(g, "unfold: axis %d is out of range for %s", axis, DESC(&v));
  if (v.rank + 1 > SMELT_MAX_RANK)
    return sm_fail(g, "unfold: %s already has the most axes a tensor may have (%d)", DESC(&v),
                   SMELT_MAX_RANK);
  if (size < 0) return sm_fail(g, "unfold: size %" PRId64 " is negative", size);
  if (step < 1) return sm_fail(g, "unfold: step %" PRId64 " must be at least 1", step);
  if (size > v.shape[a])
    return sm_fail(g, "unfold: size %" PRId64 " is larger than axis %d of %s", size, a, DESC(&v));
  int64_t shape[SMELT_MAX_RANK];
  memcpy(shape, v.shape, sizeof(int64_t) * (size_t)v.rank);
  shape[a] = (v.shape[a] - size) / step + 1;
  shape[v.rank] = size;
  if (v.weak && !convert(g, &v, v.dt)) return SMELT_INVALID;
  uint32_t in = v.h.index - 1;
  int64_t at[3] = {a, size, step};
  return mk_simple(g, OP_UNFOLD, v.dt, v.rank + 1, shape, 1, &in, 3, at);
}

smelt_node smelt_pad(smelt_graph *g, smelt_node x, const int64_t *lo, const int64_t *hi,
                     double value) {
  val v;
  if (!get(g, "pad", x, "the operand", &v)) return SMELT_INVALID;
  if (v.rank > 0 && (!lo || !hi))
    return sm_fail(g, "pad: %s is NULL for %s", lo ? "hi" : "lo", DESC(&v));
  if (sm_is_int(v.dt) && !fits_int(value, v.dt))
    return sm_fail(g, "pad: value %g does not fit %s", value, DESC(&v));
  int64_t at[2 * SMELT_MAX_RANK], shape[SMELT_MAX_RANK];
  bool none = true;
  for (int i = 0; i < v.rank; i++) {
    if (lo[i] < 0 || hi[i] < 0)
      return sm_fail(g, "pad: padding of axis %d of %s is negative (%" PRId64 ", %" PRId64
                     "); use slice to crop",
                     i, DESC(&v), lo[i], hi[i]);
    if (lo[i] > INT64_MAX / 4 || hi[i] > INT64_MAX / 4 - lo[i] - v.shape[i])
      return sm_fail(g, "pad: padding of axis %d of %s is too large", i, DESC(&v));
    at[i] = lo[i];
    at[v.rank + i] = hi[i];
    shape[i] = v.shape[i] + lo[i] + hi[i];
    if (lo[i] || hi[i]) none = false;
  }
  if (none) return v.h;
  if (v.weak && !convert(g, &v, v.dt)) return SMELT_INVALID;
  /* The value is stored as the tensor's dtype would hold it. */
  double stored = value;
  if (v.dt == SMELT_F32) stored = (float)value;
  else if (v.dt == SMELT_BOOL) stored = value != 0;
  else if (sm_is_int(v.dt)) stored = trunc(value) + 0.0; /* no -0 for integers */
  sm_node_desc d = {0};
  uint32_t in = v.h.index - 1;
  d.op = OP_PAD;
  d.dtype = v.dt;
  d.rank = v.rank;
  d.shape = shape;
  d.ninputs = 1;
  d.inputs = &in;
  d.niattr = 2 * v.rank;
  d.iattr = at;
  d.fattr[0] = stored;
  return mk(g, &d);
}

smelt_node smelt_concat(smelt_graph *g, int n, const smelt_node *xs, int axis) {
  if (!g || g->error) return SMELT_INVALID;
  if (n < 1) return sm_fail(g, "concat: needs at least one tensor");
  if (!xs) return sm_fail(g, "concat: xs is NULL (n = %d)", n);
  if (n > 4096) return sm_fail(g, "concat: %d tensors is too many (at most 4096)", n);
  val *v = sm_malloc(sizeof(val) * (size_t)n);
  uint32_t *in = sm_malloc(sizeof(uint32_t) * (size_t)n);
  smelt_node r = SMELT_INVALID;
  if (!v || !in) {
    sm_fail_oom(g, "concat");
    goto done;
  }
  for (int i = 0; i < n; i++) {
    char what[32];
    snprintf(what, sizeof what, "tensor %d", i + 1);
    if (!get(g, "concat", xs[i], what, &v[i])) goto done;
    if (v[i].rank == 0) {
      sm_fail(g, "concat: %s is zero-dimensional and cannot be concatenated", DESC(&v[i]));
      goto done;
    }
  }
  int a;
  if (!sm_norm_axis(axis, v[0].rank, &a)) {
    sm_fail(g, "concat: axis %d is out of range for %s", axis, DESC(&v[0]));
    goto done;
  }
  int64_t shape[SMELT_MAX_RANK];
  memcpy(shape, v[0].shape, sizeof shape);
  shape[a] = 0;
  for (int i = 0; i < n; i++) {
    if (v[i].rank != v[0].rank) {
      sm_fail(g, "concat: %s and %s have different ranks", DESC(&v[0]), DESC(&v[i]));
      goto done;
    }
    for (int d = 0; d < v[0].rank; d++)
      if (d != a && v[i].shape[d] != v[0].shape[d]) {
        sm_fail(g, "concat: %s and %s differ in dim %d (only the concat axis %d may differ)",
                DESC(&v[0]), DESC(&v[i]), d, a);
        goto done;
      }
    if (v[i].shape[a] > SM_MAX_NUMEL - shape[a]) {
      sm_fail(g, "concat: the result has too many elements");
      goto done;
    }
    shape[a] += v[i].shape[a];
  }
  smelt_dtype dt = promote(v, n);
  if (n == 1) {
    r = v[0].h;
    goto done;
  }
  for (int i = 0; i < n; i++) {
    if (!convert(g, &v[i], dt)) goto done;
    in[i] = v[i].h.index - 1;
  }
  int64_t ax = a;
  r = mk_simple(g, OP_CONCAT, dt, v[0].rank, shape, n, in, 1, &ax);
done:
  sm_free(v);
  sm_free(in);
  return r;
}

/* --------------------------------------------------------------- matmul */

smelt_node smelt_matmul(smelt_graph *g, smelt_node a, smelt_node b) {
  val v[2];
  if (!get(g, "matmul", a, "operand 1", &v[0]) || !get(g, "matmul", b, "operand 2", &v[1]))
    return SMELT_INVALID;
  if (v[0].rank == 0 || v[1].rank == 0)
    return sm_fail(g, "matmul: both operands need at least 1 dim, got %s and %s", DESC(&v[0]),
                   DESC(&v[1]));
  smelt_dtype dt = promote(v, 2);
  if (dt == SMELT_BOOL)
    return sm_fail(g, "matmul: needs numeric operands, got %s and %s", DESC(&v[0]), DESC(&v[1]));
  int ra = v[0].rank, rb = v[1].rank;
  /* 1-D operands: a row vector on the left, a column vector on the right. */
  int64_t sa[SMELT_MAX_RANK + 1], sb[SMELT_MAX_RANK + 1];
  int pa = ra == 1 ? 2 : ra, pb = rb == 1 ? 2 : rb;
  if (ra == 1) sa[0] = 1, sa[1] = v[0].shape[0];
  else memcpy(sa, v[0].shape, sizeof(int64_t) * (size_t)ra);
  if (rb == 1) sb[0] = v[1].shape[0], sb[1] = 1;
  else memcpy(sb, v[1].shape, sizeof(int64_t) * (size_t)rb);
  int64_t M = sa[pa - 2], K = sa[pa - 1], K2 = sb[pb - 2], N = sb[pb - 1];
  if (K != K2)
    return sm_fail(g,
                   "matmul: inner dims differ: %s has %" PRId64 " columns but %s has %" PRId64
                   " rows",
                   DESC(&v[0]), K, DESC(&v[1]), K2);
  int rbatch;
  int64_t batch[SMELT_MAX_RANK];
  int k = sm_broadcast_shapes(pa - 2, sa, pb - 2, sb, &rbatch, batch);
  if (k >= 0)
    return sm_fail(g, "matmul: batch dims of %s and %s do not broadcast (batch dim -%d)",
                   DESC(&v[0]), DESC(&v[1]), k);
  if (rbatch + 2 > SMELT_MAX_RANK)
    return sm_fail(g, "matmul: result of %s and %s has rank > %d", DESC(&v[0]), DESC(&v[1]),
                   SMELT_MAX_RANK);
  int64_t ta[SMELT_MAX_RANK], tb[SMELT_MAX_RANK], out[SMELT_MAX_RANK];
  memcpy(ta, batch, sizeof(int64_t) * (size_t)rbatch);
  memcpy(tb, batch, sizeof(int64_t) * (size_t)rbatch);
  memcpy(out, batch, sizeof(int64_t) * (size_t)rbatch);
  ta[rbatch] = M, ta[rbatch + 1] = K;
  tb[rbatch] = K, tb[rbatch + 1] = N;
  out[rbatch] = M, out[rbatch + 1] = N;
  for (int i = 0; i < 2; i++) {
    if (!convert(g, &v[i], dt)) return SMELT_INVALID;
    if (v[i].rank == 1) {
      smelt_node h = sm_reshape(g, v[i].h, 2, i == 0 ? sa : sb);
      if (!smelt_node_valid(h)) return SMELT_INVALID;
      snap(g, h, &v[i]);
    }
    if (!bcast(g, &v[i], rbatch + 2, i == 0 ? ta : tb)) return SMELT_INVALID;
  }
  uint32_t in[2] = {v[0].h.index - 1, v[1].h.index - 1};
  smelt_node r = mk_simple(g, OP_MATMUL, dt, rbatch + 2, out, 2, in, 0, NULL);
  if (ra == 1 || rb == 1) {
    int64_t s[SMELT_MAX_RANK];
    int n = 0;
    for (int i = 0; i < rbatch; i++) s[n++] = batch[i];
    if (ra != 1) s[n++] = M;
    if (rb != 1) s[n++] = N;
    r = sm_reshape(g, r, n, s);
  }
  return r;
}

/* --------------------------------------------------------------- gather */

smelt_node smelt_gather(smelt_graph *g, smelt_node x, int axis, smelt_node index) {
  val v, ix;
  if (!get(g, "gather", x, "the operand", &v) || !get(g, "gather", index, "the index", &ix))
    return SMELT_INVALID;
  if (!sm_is_int(ix.dt))
    return sm_fail(g, "gather: the index must be i32 or i64, got %s", DESC(&ix));
  if (v.rank == 0) return sm_fail(g, "gather: %s needs at least 1 dim", DESC(&v));
  if (ix.rank != v.rank)
    return sm_fail(g, "gather: the index %s must have the rank of %s", DESC(&ix), DESC(&v));
  int a;
  if (!sm_norm_axis(axis, v.rank, &a))
    return sm_fail(g, "gather: axis %d is out of range for %s", axis, DESC(&v));
  for (int d = 0; d < v.rank; d++)
    if (d != a && ix.shape[d] > v.shape[d])
      return sm_fail(g, "gather: the index %s is larger than %s in dim %d", DESC(&ix), DESC(&v),
                     d);
  if (v.weak && !convert(g, &v, v.dt)) return SMELT_INVALID;
  if (ix.weak && !convert(g, &ix, ix.dt)) return SMELT_INVALID;
  uint32_t in[2] = {v.h.index - 1, ix.h.index - 1};
  int64_t ax = a;
  return mk_simple(g, OP_GATHER, v.dt, ix.rank, ix.shape, 2, in, 1, &ax);
}

smelt_node sm_scatter_add(smelt_graph *g, int rank, const int64_t *dims, int axis, smelt_node index,
                          smelt_node src) {
  val ix, sv;
  if (!get(g, "scatter_add", index, "the index", &ix) || !get(g, "scatter_add", src, "the source", &sv))
    return SMELT_INVALID;
  int64_t shape[SMELT_MAX_RANK];
  if (!take_dims(g, "scatter_add", rank, dims, shape, NULL)) return SMELT_INVALID;
  if (!sm_is_int(ix.dt))
    return sm_fail(g, "scatter_add: the index must be i32 or i64, got %s", DESC(&ix));
  if (rank == 0) return sm_fail(g, "scatter_add: the result needs at least 1 dim");
  if (ix.rank != rank || !same_shape(ix.rank, ix.shape, sv.rank, sv.shape))
    return sm_fail(g, "scatter_add: the index %s and the source %s need one shape of rank %d",
                   DESC(&ix), DESC(&sv), rank);
  int a;
  if (!sm_norm_axis(axis, rank, &a))
    return sm_fail(g, "scatter_add: axis %d is out of range for rank %d", axis, rank);
  for (int d = 0; d < rank; d++)
    if (d != a && ix.shape[d] > shape[d])
      return sm_fail(g, "scatter_add: the index %s is larger than the result %s in dim %d",
                     DESC(&ix), SHAPE(rank, shape), d);
  if (ix.weak && !convert(g, &ix, ix.dt)) return SMELT_INVALID;
  if (sv.weak && !convert(g, &sv, sv.dt)) return SMELT_INVALID;
  uint32_t in[2] = {ix.h.index - 1, sv.h.index - 1};
  int64_t ax = a;
  return mk_simple(g, OP_SCATTER_ADD, sv.dt, rank, shape, 2, in, 1, &ax);
}

smelt_node smelt_scatter_add(smelt_graph *g, smelt_node x, int axis, smelt_node index,
                             smelt_node src) {
  val v;
  if (!get(g, "scatter_add", x, "the operand", &v)) return SMELT_INVALID;
  int64_t shape[SMELT_MAX_RANK];
  memcpy(shape, v.shape, sizeof shape);
  smelt_node s = sm_scatter_add(g, v.rank, shape, axis, index, src);
  return smelt_add(g, x, s);
}

/* -------------------------------------------------------------- updates */

smelt_node smelt_assign(smelt_graph *g, smelt_node param, smelt_node value) {
  val p, v;
  if (!get(g, "assign", param, "the target", &p) || !get(g, "assign", value, "the value", &v))
    return SMELT_INVALID;
  if (g->nodes[param.index - 1].op != OP_PARAM)
    return sm_fail(g, "assign: the target %s is not a param (only params are updated)",
                   DESC(&p));
  /* PyTorch's can_cast: the value may not come from a higher category. */
  if (category(v.dt) > category(p.dt))
    return sm_fail(g, "assign: cannot store %s into the %s param %s", DESC(&v),
                   smelt_dtype_name(p.dt), DESC(&p));
  int r;
  int64_t s[SMELT_MAX_RANK];
  int k = sm_broadcast_shapes(v.rank, v.shape, p.rank, p.shape, &r, s);
  if (k >= 0 || !same_shape(r, s, p.rank, p.shape))
    return sm_fail(g,
                   "assign: the value %s does not broadcast to the param %s (the target's shape "
                   "never changes)",
                   DESC(&v), DESC(&p));
  if (!convert(g, &v, p.dt) || !bcast(g, &v, p.rank, p.shape)) return SMELT_INVALID;
  uint32_t in[2] = {p.h.index - 1, v.h.index - 1};
  return mk_simple(g, OP_ASSIGN, p.dt, p.rank, p.shape, 2, in, 0, NULL);
}
