/* libFuzzer harness: graph building from random sequences of public API
 * calls.
 *
 * The bytes are a program: each step reads an action byte and its
 * arguments (operands picked from the values built so far, dtypes, small
 * or hostile dims and axes, numbers with specials), and calls one builder:
 * sources, elementwise, reductions, views, matmul, indexing, nn composites,
 * conv and pooling, assign, smelt_grad / smelt_vjp, optimizers, names,
 * outputs and program declarations. Invalid handles, bad axes and bad
 * shapes are part of the mix. Reading past the end gives zeros, so every
 * input is a complete program.
 *
 * Then: a failed graph must carry a message and stay failed (sticky); a
 * good one must print and parse back to the same text and, when small, run
 * on the interpreter and as an interpreter-target program with its updates
 * (twice). Nothing may crash or leak. */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Caps that keep one input to milliseconds: steps, gradient calls (each
 * may double the graph) and nodes. */
#define MAX_STEPS 200
#define MAX_GRADS 4
#define MAX_NODES 4000
#define POOL 64

typedef struct fuzz {
  const uint8_t *p;
  size_t n, pos;
  smelt_graph *g;
  smelt_node pool[POOL]; /* values built so far (a ring) */
  int npool;
  smelt_node updates[POOL]; /* assign nodes, for programs */
  int nupdates;
  int noutputs, ngrads, ninputs;
} fuzz;

static uint8_t u8(fuzz *f) { return f->pos < f->n ? f->p[f->pos++] : 0; }
static bool flag(fuzz *f) { return u8(f) & 1; }

static void keep(fuzz *f, smelt_node n) {
  if (!smelt_node_valid(n)) return;
  if (f->npool < POOL)
    f->pool[f->npool++] = n;
  else
    f->pool[u8(f) % POOL] = n;
}

/* An operand: mostly the latest value or an earlier one, sometimes an
 * invalid handle, one of another graph or one past the graph's end. */
static smelt_node pick(fuzz *f) {
  uint8_t b = u8(f);
  if (f->npool == 0 || b == 255) return SMELT_INVALID;
  if (b == 254) return (smelt_node){f->pool[0].graph + 1, f->pool[0].index};
  if (b == 253) return (smelt_node){f->pool[0].graph, 0x7fffffffu};
  if (b < 96) return f->pool[f->npool - 1];
  return f->pool[b % f->npool];
}

static smelt_dtype dtype(fuzz *f) {
  uint8_t b = u8(f);
  if (b == 255) return (smelt_dtype)77; /* out of range */
  return (smelt_dtype)(b % SMELT_DTYPE_COUNT);
}
static smelt_dtype float_dtype(fuzz *f) { return u8(f) % 8 == 7 ? dtype(f) : SMELT_F32 + (u8(f) & 1); }

static int64_t dim(fuzz *f) {
  static const int64_t dims[] = {1, 2, 3, 4, 2, 3, 1, 5, 0, 1, 2, 3, 7, 2, 4, -1,
                                 -2, 1 << 20, (int64_t)1 << 40, INT64_MAX, (int64_t)1 << 31, 6};
  return dims[u8(f) % (sizeof dims / sizeof dims[0])];
}

/* A rank: 0-4 mostly, sometimes the maximum, above it or negative. */
static int rank(fuzz *f) {
  static const int ranks[] = {0, 1, 2, 2, 3, 1, 2, 3, 4, 1, 2, SMELT_MAX_RANK, SMELT_MAX_RANK + 1,
                              -1};
  return ranks[u8(f) % (sizeof ranks / sizeof ranks[0])];
}

static void dims_of(fuzz *f, int r, int64_t *out) {
  for (int i = 0; i < SMELT_MAX_RANK + 2; i++) out[i] = 1;
  for (int i = 0; i < r && i < SMELT_MAX_RANK + 2; i++) out[i] = dim(f);
}

static int axis(fuzz *f) {
  uint8_t b = u8(f);
  if (b < 240) return (int)(b % 11) - 5;
  static const int odd[] = {INT_MIN, INT_MAX, 8, -9, 100, -100, 9, -8,
                            INT_MIN + 1, 64, -64, 31, 32, -33, 1000000, 7};
  return odd[b - 240];
}

static int64_t i64(fuzz *f) {
  uint8_t b = u8(f);
  if (b < 224) return (int64_t)(b % 13) - 6;
  static const int64_t odd[] = {INT64_MIN, INT64_MAX, INT64_MIN + 1, INT64_MAX - 1,
                                (int64_t)1 << 32, -((int64_t)1 << 32), 1 << 20, 100,
                                -100, (int64_t)1 << 62, INT32_MAX, INT32_MIN,
                                SMELT_END, 9, -9, 1000};
  return odd[(b - 224) % 16];
}

static double num(fuzz *f) {
  static const double nums[] = {0.0, 1.0, -1.0, 0.5, 2.0, NAN, INFINITY, -INFINITY,
                                1e300, -0.0, 1e-30, 3.0, 0.25, 1e10, -2.5, 100.0,
                                0.1, 0.9, 1e-8, 4e-324, 1.5, -3.0, 7.0, 1e6};
  return nums[u8(f) % (sizeof nums / sizeof nums[0])];
}

static int axes_of(fuzz *f, int *axes) {
  int n = u8(f) % 5;
  if (n == 4) n = u8(f) % (SMELT_MAX_RANK + 3);
  for (int i = 0; i < n; i++) axes[i] = axis(f);
  return n;
}

static const char *name_of(fuzz *f, char *buf, size_t cap, const char *stem) {
  uint8_t b = u8(f);
  if (b == 255) return NULL;
  if (b == 254) return "";
  if (b == 253) return "9bad name";
  if (b == 252) return "__metadata__";
  snprintf(buf, cap, "%s%u", stem, b % 24);
  return buf;
}

/* Pairs of conv/pool sizes: NULL (the default) or two small values. */
static const int64_t *pair(fuzz *f, int64_t *buf) {
  uint8_t b = u8(f);
  if (b % 4 == 0) return NULL;
  buf[0] = (b & 0x10) ? i64(f) : (int64_t)(u8(f) % 4);
  buf[1] = (b & 0x20) ? i64(f) : (int64_t)(u8(f) % 4);
  return buf;
}

typedef smelt_node (*unary_fn)(smelt_graph *, smelt_node);
typedef smelt_node (*binary_fn)(smelt_graph *, smelt_node, smelt_node);
typedef smelt_node (*reduce_fn)(smelt_graph *, smelt_node, int, const int *, bool);

static const unary_fn unary_ops[] = {
    smelt_neg, smelt_abs, smelt_sign, smelt_exp, smelt_log, smelt_sqrt, smelt_rsqrt,
    smelt_reciprocal, smelt_sin, smelt_cos, smelt_tanh, smelt_sigmoid, smelt_relu, smelt_gelu,
    smelt_stop_gradient, smelt_logical_not,
};
static const binary_fn binary_ops[] = {
    smelt_add, smelt_sub, smelt_mul, smelt_div, smelt_pow, smelt_maximum, smelt_minimum,
    smelt_lt, smelt_le, smelt_gt, smelt_ge, smelt_eq, smelt_ne, smelt_logical_and,
    smelt_logical_or, smelt_matmul, smelt_mse_loss,
};
static const reduce_fn reduce_ops[] = {smelt_sum, smelt_mean, smelt_prod, smelt_max, smelt_min,
                                       smelt_logsumexp};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void act_source(fuzz *f) {
  char nb[32];
  int64_t d[SMELT_MAX_RANK + 2];
  smelt_graph *g = f->g;
  switch (u8(f) % 14) {
  case 0: {
    int r = rank(f);
    dims_of(f, r, d);
    const char *name = name_of(f, nb, sizeof nb, "x");
    smelt_dtype dt = dtype(f);
    keep(f, smelt_input(g, name, dt, r, d));
    f->ninputs++;
    break;
  }
  case 1: {
    int r = rank(f);
    dims_of(f, r, d);
    smelt_dtype dt = float_dtype(f);
    const char *name = name_of(f, nb, sizeof nb, "w");
    smelt_init init;
    uint8_t k = u8(f) % 6;
    if (k == 0) init = smelt_init_zeros();
    else if (k == 1) init = smelt_init_ones();
    else if (k == 2) init = smelt_init_constant(num(f));
    else if (k == 3 || k == 4) {
      double a = num(f), b = num(f);
      uint64_t seed = u8(f);
      init = k == 3 ? smelt_init_normal(a, b, seed) : smelt_init_uniform(a, b, seed);
    } else {
      /* data only where it fits the buffer: the API reads numel elements */
      static double buf[64];
      for (int i = 0; i < 64; i++) buf[i] = i * 0.25 - 3;
      int64_t numel = fuzz_numel_capped(r > 0 ? r : 0, d, 1 << 30);
      if (r < 0 || r > SMELT_MAX_RANK || numel < 0 || numel * 8 > (int64_t)sizeof buf) return;
      init = smelt_init_data(buf);
    }
    keep(f, smelt_param(g, name, dt, r, d, init));
    break;
  }
  case 2: keep(f, smelt_scalar(g, num(f))); break;
  case 3: keep(f, smelt_scalar_int(g, i64(f))); break;
  case 4: {
    smelt_dtype dt = dtype(f);
    keep(f, smelt_const(g, dt, num(f)));
    break;
  }
  case 5: {
    int r = rank(f);
    dims_of(f, r, d);
    smelt_dtype dt = dtype(f);
    keep(f, smelt_full(g, dt, r, d, num(f)));
    break;
  }
  case 6: {
    int r = rank(f);
    dims_of(f, r, d);
    keep(f, flag(f) ? smelt_zeros(g, dtype(f), r, d) : smelt_ones(g, dtype(f), r, d));
    break;
  }
  case 7:
  case 8: {
    smelt_dtype dt = dtype(f);
    double start = num(f), stop = num(f);
    if (u8(f) & 1)
      keep(f, smelt_arange(g, dt, start, stop, num(f)));
    else
      keep(f, smelt_linspace(g, dt, start, stop, i64(f)));
    break;
  }
  case 9: {
    smelt_dtype dt = dtype(f);
    int64_t n = i64(f);
    keep(f, smelt_eye(g, dt, n, i64(f)));
    break;
  }
  case 10:
  case 11: {
    int r = rank(f);
    dims_of(f, r, d);
    smelt_dtype dt = float_dtype(f);
    uint64_t seed = u8(f);
    keep(f, (u8(f) & 1) ? smelt_rand(g, dt, r, d, seed) : smelt_randn(g, dt, r, d, seed));
    break;
  }
  case 12: {
    /* an array constant: data only where it fits the buffer */
    int r = rank(f);
    dims_of(f, r, d);
    static const int64_t idata[16] = {0, 1, 2, -1, 3, 1, 0, 2, 5, -3, 1, 1, 0, 4, 2, 1};
    int64_t numel = fuzz_numel_capped(r > 0 ? r : 0, d, 1 << 30);
    if (r < 0 || r > SMELT_MAX_RANK || numel < 0 || numel * 8 > (int64_t)sizeof idata) return;
    keep(f, smelt_const_array(g, dtype(f), r, d, idata));
    break;
  }
  default: keep(f, smelt_const(g, SMELT_I64, (double)(u8(f) % 4))); break;
  }
}

static void act_elementwise(fuzz *f) {
  smelt_graph *g = f->g;
  switch (u8(f) % 6) {
  case 0: {
    unary_fn fn = unary_ops[u8(f) % COUNT(unary_ops)];
    keep(f, fn(g, pick(f)));
    break;
  }
  case 1:
  case 2: {
    binary_fn fn = binary_ops[u8(f) % COUNT(binary_ops)];
    smelt_node a = pick(f);
    smelt_node b = pick(f);
    /* matmul's operands rarely fit by chance: often a with its own
     * transpose ([.., M, K] x [.., K, M]) */
    if (fn == smelt_matmul && smelt_node_rank(g, a) >= 2 && u8(f) % 2)
      b = smelt_transpose(g, a, -1, -2);
    keep(f, fn(g, a, b));
    break;
  }
  case 3: {
    smelt_node c = pick(f), a = pick(f);
    /* mostly a bool condition, so that where builds */
    if (smelt_node_dtype(g, c) != SMELT_BOOL && u8(f) % 4) c = smelt_ne(g, c, smelt_scalar(g, 0));
    keep(f, smelt_where(g, c, a, pick(f)));
    break;
  }
  case 4: {
    smelt_node x = pick(f);
    keep(f, smelt_cast(g, x, dtype(f)));
    break;
  }
  default: {
    smelt_node x = pick(f);
    double lo = num(f);
    keep(f, smelt_clamp(g, x, lo, num(f)));
    break;
  }
  }
}

static void act_reduce(fuzz *f) {
  smelt_graph *g = f->g;
  int axes[SMELT_MAX_RANK + 3];
  smelt_node x = pick(f);
  switch (u8(f) % 5) {
  case 0:
  case 1: {
    reduce_fn fn = reduce_ops[u8(f) % COUNT(reduce_ops)];
    int n = axes_of(f, axes);
    keep(f, fn(g, x, n, axes, flag(f)));
    break;
  }
  case 2: {
    int n = axes_of(f, axes);
    int64_t corr = i64(f);
    bool kd = flag(f);
    keep(f, flag(f) ? smelt_var(g, x, n, axes, corr, kd) : smelt_std(g, x, n, axes, corr, kd));
    break;
  }
  case 3: {
    int a = axis(f);
    bool kd = flag(f);
    keep(f, flag(f) ? smelt_argmax(g, x, a, kd) : smelt_argmin(g, x, a, kd));
    break;
  }
  default: {
    int a = axis(f);
    bool kd = flag(f);
    smelt_node v = SMELT_INVALID, i = SMELT_INVALID;
    if (flag(f))
      smelt_max_dim(g, x, a, kd, &v, &i);
    else
      smelt_min_dim(g, x, a, kd, flag(f) ? &v : NULL, &i);
    keep(f, v);
    keep(f, i);
    break;
  }
  }
}

static void act_view(fuzz *f) {
  smelt_graph *g = f->g;
  int64_t d[SMELT_MAX_RANK + 2], e[SMELT_MAX_RANK + 2], s[SMELT_MAX_RANK + 2];
  int axes[SMELT_MAX_RANK + 3];
  smelt_node x = pick(f);
  int xr = smelt_node_rank(g, x);
  switch (u8(f) % 14) {
  case 0: {
    int r = rank(f);
    dims_of(f, r, d);
    keep(f, smelt_reshape(g, x, r, d));
    break;
  }
  case 1: {
    /* a permutation of x's axes, sometimes broken */
    int perm[SMELT_MAX_RANK];
    for (int i = 0; i < SMELT_MAX_RANK; i++) perm[i] = i;
    for (int i = xr - 1; i > 0; i--) {
      int j = u8(f) % (i + 1), t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    if (xr > 0 && u8(f) % 8 == 0) {
      int k = u8(f) % xr;
      perm[k] = axis(f);
    }
    keep(f, smelt_permute(g, x, perm));
    break;
  }
  case 2: {
    int a = axis(f);
    keep(f, smelt_transpose(g, x, a, axis(f)));
    break;
  }
  case 3:
  case 4: {
    /* expand or broadcast_to a shape grown from x's */
    int r = xr + u8(f) % 2;
    if (u8(f) % 8 == 0) r = rank(f);
    dims_of(f, r, d);
    for (int i = 0; i < r && i < SMELT_MAX_RANK; i++) {
      int xi = i - (r - xr);
      if (xi >= 0 && u8(f) % 2) d[i] = smelt_node_dim(g, x, xi) == 1 ? d[i] : smelt_node_dim(g, x, xi);
    }
    keep(f, (u8(f) & 1) ? smelt_expand(g, x, r, d) : smelt_broadcast_to(g, x, r, d));
    break;
  }
  case 5: {
    int n = axes_of(f, axes);
    keep(f, smelt_squeeze(g, x, n, axes));
    break;
  }
  case 6: keep(f, smelt_unsqueeze(g, x, axis(f))); break;
  case 7: {
    int a = axis(f);
    keep(f, smelt_flatten(g, x, a, axis(f)));
    break;
  }
  case 8: {
    for (int i = 0; i < SMELT_MAX_RANK; i++) {
      d[i] = i64(f);
      e[i] = u8(f) % 3 == 0 ? SMELT_END : i64(f);
      s[i] = u8(f) % 4 == 0 ? i64(f) : 1 + u8(f) % 3;
    }
    uint8_t b = u8(f);
    keep(f, smelt_slice(g, x, (b & 1) ? d : NULL, (b & 2) ? e : NULL, (b & 4) ? s : NULL));
    break;
  }
  case 9: {
    int a = axis(f);
    int64_t start = i64(f), stop = i64(f);
    keep(f, smelt_slice_axis(g, x, a, start, stop, u8(f) % 4 == 0 ? i64(f) : 1 + u8(f) % 3));
    break;
  }
  case 10: {
    int a = axis(f);
    int64_t size = u8(f) % 4 == 0 ? i64(f) : u8(f) % 4;
    keep(f, smelt_unfold(g, x, a, size, u8(f) % 4 == 0 ? i64(f) : 1 + u8(f) % 3));
    break;
  }
  case 11: {
    int n = axes_of(f, axes);
    keep(f, smelt_flip(g, x, n, axes));
    break;
  }
  case 12: {
    for (int i = 0; i < SMELT_MAX_RANK; i++) {
      d[i] = u8(f) % 8 == 0 ? i64(f) : u8(f) % 3;
      e[i] = u8(f) % 8 == 0 ? i64(f) : u8(f) % 3;
    }
    keep(f, smelt_pad(g, x, d, e, num(f)));
    break;
  }
  default: {
    smelt_node xs[5];
    int n = u8(f) % 5;
    if (u8(f) % 16 == 0) n = -1;
    for (int i = 0; i < 5; i++) xs[i] = i == 0 ? x : (u8(f) % 2 ? x : pick(f));
    int a = axis(f);
    keep(f, flag(f) ? smelt_concat(g, n, n > 0 ? xs : NULL, a) : smelt_stack(g, n, xs, a));
    break;
  }
  }
}

static void act_index(fuzz *f) {
  smelt_graph *g = f->g;
  smelt_node x = pick(f);
  smelt_node idx = pick(f);
  /* valid indices of x's rank rarely come by chance: often the arg-max
   * along an axis (i64, that axis kept with size 1) */
  if (u8(f) % 2) idx = smelt_argmax(g, x, axis(f), true);
  switch (u8(f) % 6) {
  case 0: keep(f, smelt_gather(g, x, axis(f), idx)); break;
  case 1: {
    int a = axis(f);
    keep(f, smelt_scatter_add(g, x, a, idx, pick(f)));
    break;
  }
  case 2: keep(f, smelt_take_along_axis(g, x, idx, axis(f))); break;
  case 3: keep(f, smelt_index_select(g, x, axis(f), idx)); break;
  case 4: keep(f, smelt_one_hot(g, idx, u8(f) % 8 == 0 ? i64(f) : u8(f) % 6)); break;
  default: keep(f, smelt_embedding(g, x, idx)); break;
  }
}

static void act_nn(fuzz *f) {
  smelt_graph *g = f->g;
  int64_t p1[2], p2[2], p3[2], p4[2];
  smelt_node x = pick(f);
  switch (u8(f) % 8) {
  case 0: keep(f, smelt_softmax(g, x, axis(f))); break;
  case 1: keep(f, smelt_log_softmax(g, x, axis(f))); break;
  case 2: keep(f, smelt_cross_entropy(g, x, pick(f))); break;
  case 3: {
    double p = u8(f) % 4 == 0 ? num(f) : (u8(f) % 5) * 0.25;
    uint64_t seed = u8(f);
    keep(f, smelt_dropout(g, x, p, seed, flag(f)));
    break;
  }
  case 4: {
    smelt_node w = pick(f);
    smelt_node b = flag(f) ? pick(f) : SMELT_INVALID;
    const int64_t *st = pair(f, p1), *pd = pair(f, p2), *dl = pair(f, p3);
    keep(f, smelt_conv2d(g, x, w, b, st, pd, dl, u8(f) % 8 == 0 ? i64(f) : 1 + u8(f) % 2));
    break;
  }
  case 5: {
    const int64_t *k = pair(f, p1);
    if (!k && flag(f)) {
      p1[0] = p1[1] = 2;
      k = p1;
    }
    const int64_t *st = pair(f, p2), *pd = pair(f, p3), *dl = pair(f, p4);
    keep(f, smelt_max_pool2d(g, x, k, st, pd, dl, flag(f)));
    break;
  }
  case 6: {
    const int64_t *k = pair(f, p1);
    const int64_t *st = pair(f, p2), *pd = pair(f, p3);
    bool ceil = flag(f);
    keep(f, smelt_avg_pool2d(g, x, k, st, pd, ceil, flag(f)));
    break;
  }
  default: {
    smelt_node w = flag(f) ? pick(f) : SMELT_INVALID, b = flag(f) ? pick(f) : SMELT_INVALID;
    smelt_node rm = flag(f) ? pick(f) : SMELT_INVALID, rv = flag(f) ? pick(f) : SMELT_INVALID;
    bool training = flag(f);
    double momentum = u8(f) % 4 == 0 ? num(f) : 0.1, eps = u8(f) % 4 == 0 ? num(f) : 1e-5;
    smelt_node upd[2] = {SMELT_INVALID, SMELT_INVALID};
    keep(f, smelt_batch_norm(g, x, w, b, rm, rv, training, momentum, eps, flag(f) ? upd : NULL));
    for (int i = 0; i < 2; i++)
      if (smelt_node_valid(upd[i]) && f->nupdates < POOL) f->updates[f->nupdates++] = upd[i];
    break;
  }
  }
}

/* Params among the values built so far (up to max), for optimizers. */
static int find_params(fuzz *f, smelt_node *out, int max) {
  int n = 0;
  for (int i = 0; i < f->npool && n < max; i++) {
    const char *op = smelt_node_op(f->g, f->pool[i]);
    if (op && strcmp(op, "param") == 0) {
      bool dup = false;
      for (int k = 0; k < n; k++) dup |= out[k].index == f->pool[i].index;
      if (!dup) out[n++] = f->pool[i];
    }
  }
  return n;
}

static void act_grad(fuzz *f) {
  smelt_graph *g = f->g;
  if (f->ngrads >= MAX_GRADS) return;
  f->ngrads++;
  smelt_node y = pick(f);
  /* mostly a scalar loss, so that the gradients build */
  if (u8(f) % 4) y = smelt_sum(g, y, 0, NULL, false);
  smelt_node wrt[4], grads[4];
  int n = u8(f) % 5;
  if (u8(f) % 2) {
    n = find_params(f, wrt, 4);
    if (n == 0) wrt[n++] = pick(f);
  } else {
    for (int i = 0; i < n; i++) wrt[i] = pick(f);
  }
  if (u8(f) % 3 == 0) {
    smelt_node seed = u8(f) % 2 ? SMELT_INVALID : pick(f);
    smelt_vjp(g, y, seed, n, wrt, grads, flag(f) ? SMELT_GRAD_STRICT : 0);
  } else {
    smelt_grad(g, y, n, wrt, grads);
  }
  for (int i = 0; i < n; i++) keep(f, grads[i]);
}

static void act_update(fuzz *f) {
  smelt_graph *g = f->g;
  smelt_node params[4], grads[4], upd[SMELT_OPTIM_MAX_UPDATES(4)];
  switch (u8(f) % 4) {
  case 0: {
    smelt_node p = pick(f);
    smelt_node u = smelt_assign(g, p, pick(f));
    if (smelt_node_valid(u) && f->nupdates < POOL) f->updates[f->nupdates++] = u;
    keep(f, u);
    return;
  }
  case 1:
  case 2: {
    /* an optimizer over the params so far, with their gradients of a loss */
    if (f->ngrads >= MAX_GRADS) return;
    int n = find_params(f, params, 4);
    if (n == 0) return;
    f->ngrads++;
    smelt_node loss = smelt_sum(g, pick(f), 0, NULL, false);
    if (smelt_grad(g, loss, n, params, grads) != 0) return;
    if (u8(f) % 8 == 0) {
      int k = u8(f) % n;
      grads[k] = pick(f);
    }
    char nb[32];
    const char *prefix = flag(f) ? name_of(f, nb, sizeof nb, "opt") : NULL;
    int count;
    if (flag(f)) {
      smelt_sgd_options o = smelt_sgd_defaults(u8(f) % 4 == 0 ? num(f) : 0.1);
      o.momentum = u8(f) % 2 ? 0.9 : (u8(f) % 4 == 0 ? num(f) : 0);
      o.dampening = u8(f) % 4 == 0 ? num(f) : 0;
      o.weight_decay = u8(f) % 4 == 0 ? num(f) : 0;
      o.nesterov = flag(f);
      o.maximize = flag(f);
      count = smelt_sgd(g, prefix, n, params, grads, &o, upd);
    } else {
      smelt_adam_options o = flag(f) ? smelt_adam_defaults() : smelt_adamw_defaults();
      if (u8(f) % 4 == 0) o.lr = num(f);
      if (u8(f) % 4 == 0) o.beta1 = num(f);
      if (u8(f) % 4 == 0) o.beta2 = num(f);
      if (u8(f) % 4 == 0) o.eps = num(f);
      o.maximize = flag(f);
      count = smelt_adam(g, prefix, n, params, grads, &o, upd);
    }
    for (int i = 0; i < count && f->nupdates < POOL; i++) f->updates[f->nupdates++] = upd[i];
    return;
  }
  default: {
    int n = find_params(f, params, 4);
    if (n == 0) return;
    smelt_node acc[4], accd[4], zero[4];
    for (int i = 0; i < n; i++) grads[i] = u8(f) % 8 == 0 ? pick(f) : params[i];
    if (smelt_grad_accumulators(g, n, params, grads, acc, accd, zero) == 0)
      for (int i = 0; i < n; i++) {
        keep(f, accd[i]);
        if (f->nupdates < POOL) f->updates[f->nupdates++] = acc[i];
      }
    return;
  }
  }
}

static void act_names(fuzz *f) {
  smelt_graph *g = f->g;
  char nb[32];
  switch (u8(f) % 4) {
  case 0: {
    smelt_node x = pick(f);
    smelt_set_name(g, x, name_of(f, nb, sizeof nb, "h"));
    break;
  }
  case 1: keep(f, smelt_find(g, name_of(f, nb, sizeof nb, "x"))); break;
  case 2: {
    smelt_node x = pick(f);
    if (smelt_node_valid(smelt_output(g, name_of(f, nb, sizeof nb, "out"), x))) f->noutputs++;
    break;
  }
  default: {
    /* declare a program over some outputs and updates */
    const char *outs[4];
    char ob[4][32];
    int no = u8(f) % 3;
    for (int i = 0; i < no; i++) outs[i] = name_of(f, ob[i], sizeof ob[i], "out");
    int nu = f->nupdates ? u8(f) % (f->nupdates + 1) : 0;
    const char *name = name_of(f, nb, sizeof nb, "prog");
    smelt_graph_add_program(g, name, no, outs, nu, f->updates, flag(f));
    break;
  }
  }
}

/* Compiles the graph's outputs and updates as an interpreter-target program
 * and runs it twice; errors must come with a message. */
static void run_program(fuzz *f) {
  smelt_graph *g = f->g;
  smelt_params *params = smelt_params_new(g);
  if (!params) fuzz_fail("smelt_params_new returned NULL", NULL);
  const char *outs[64];
  int no = 0;
  for (size_t i = 0; i < g->noutputs && no < 64; i++) outs[no++] = g->outputs[i].name;
  smelt_compile_options o = smelt_compile_defaults();
  o.target = SMELT_TARGET_INTERP;
  o.cache_dir = NULL;
  o.dump = NULL;
  o.num_threads = 1;
  bool eval = u8(f) % 4 == 0;
  smelt_program *pr = eval ? smelt_program_compile_eval(g, params, no, outs, &o)
                           : smelt_program_compile(g, params, no, outs, f->nupdates, f->updates, &o);
  if (!pr) fuzz_fail("smelt_program_compile returned NULL", NULL);
  const char *err = smelt_program_error(pr);
  if (!err) {
    void *bufs[POOL * 2] = {0};
    int nb = 0;
    for (size_t i = 0; i < g->nnodes && nb < POOL * 2; i++) {
      const sm_node *n = &g->nodes[i];
      if (n->op != OP_INPUT) continue;
      int64_t numel = fuzz_numel_capped(n->rank, n->shape, FUZZ_MAX_NODE_ELEMS);
      size_t nbytes = (size_t)numel * smelt_dtype_size((smelt_dtype)n->dtype);
      void *b = malloc(nbytes ? nbytes : 1);
      if (!b) abort();
      bufs[nb++] = b;
      fuzz_fill((smelt_dtype)n->dtype, b, numel, (uint32_t)i);
      if (smelt_program_bind(pr, n->name, (smelt_dtype)n->dtype, n->rank, n->shape, b, nbytes))
        fuzz_fail("binding a program input of the declared type failed", smelt_program_error(pr));
    }
    for (int run = 0; run < 2; run++)
      if (smelt_program_run(pr) != 0) {
        const char *e = smelt_program_error(pr);
        if (!e || !*e) fuzz_fail("smelt_program_run failed without a message", NULL);
        break;
      }
    for (int i = 0; i < nb; i++) free(bufs[i]);
  } else if (!*err) {
    fuzz_fail("a program error is empty", NULL);
  }
  smelt_program_free(pr);
  smelt_params_free(params);
}

/* Checks a finished graph (see the top of the file) and frees it. */
static void finish_graph(fuzz *f, uint32_t seed) {
  smelt_graph *g = f->g;
  const char *err = smelt_graph_error(g);
  /* SMELT_FUZZ_VERBOSE=1: what each graph built (tuning the decoder); 2:
   * its text too */
  if (getenv("SMELT_FUZZ_VERBOSE"))
    fprintf(stderr, "api: %zu nodes, %zu outputs, %d updates, %d grads%s; %s\n",
            smelt_graph_node_count(g), smelt_graph_output_count(g), f->nupdates, f->ngrads,
            !err && fuzz_graph_is_small(g) ? ", run" : "", err ? err : "built");
  if (getenv("SMELT_FUZZ_VERBOSE") && atoi(getenv("SMELT_FUZZ_VERBOSE")) > 1) {
    char *text = smelt_graph_print(g);
    fprintf(stderr, "%s", text ? text : "(print failed)\n");
    smelt_free(text);
  }
  if (err) {
    if (!*err) fuzz_fail("a graph error is empty", NULL);
    /* sticky: later builders give invalid handles and keep the first error */
    char *first = strdup(err);
    if (!first) abort();
    if (smelt_node_valid(smelt_add(g, f->pool[0], f->pool[0])) ||
        smelt_node_valid(smelt_input(g, "late", SMELT_F32, 0, NULL)))
      fuzz_fail("a builder succeeded on a failed graph", first);
    if (!smelt_graph_error(g) || strcmp(first, smelt_graph_error(g)) != 0)
      fuzz_fail("the first error of a graph changed", first);
    free(first);
    char *text = smelt_graph_print(g);
    smelt_free(text);
  } else {
    fuzz_check_round_trip(g);
    if (fuzz_graph_is_small(g)) {
      fuzz_interp_run(g, seed);
      run_program(f);
    }
  }
  smelt_graph_free(g);
  f->g = NULL;
}

/* The bytes build graphs one after the other: a graph ends at its first
 * error (errors are sticky), and the rest of the bytes build the next. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz f;
  memset(&f, 0, sizeof f);
  f.p = data;
  f.n = size;
  int steps = 0;
  do {
    f.npool = f.nupdates = f.noutputs = f.ngrads = f.ninputs = 0;
    f.g = smelt_graph_new();
    if (!f.g) abort();
    /* one input to start from, so that most programs do something */
    int64_t d0[2] = {2, 3};
    keep(&f, smelt_input(f.g, "x", SMELT_F32, 2, d0));
    while (steps < MAX_STEPS && f.pos < f.n && !smelt_graph_error(f.g) &&
           smelt_graph_node_count(f.g) <= MAX_NODES) {
      steps++;
      switch (u8(&f) % 12) {
      case 0: act_source(&f); break;
      case 1:
      case 2: act_elementwise(&f); break;
      case 3: act_reduce(&f); break;
      case 4:
      case 5: act_view(&f); break;
      case 6: act_index(&f); break;
      case 7: act_nn(&f); break;
      case 8: act_grad(&f); break;
      case 9: act_update(&f); break;
      default: act_names(&f); break;
      }
    }
    finish_graph(&f, (uint32_t)size + (uint32_t)f.pos);
  } while (steps < MAX_STEPS && f.pos < f.n);
  return 0;
}
