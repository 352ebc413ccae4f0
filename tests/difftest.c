/*
 * difftest: differential testing of a compiled target against the
 * reference interpreter on random graphs.
 *
 *   difftest [--count N] [--seed S] [--target cpu|cuda|interp] [--ops LIST]
 *            [--verbose] [--save DIR] [--max-failures N] [--cuda-compile ARCHS]
 *
 * Graph i is built from seed S+i alone (splitmix64, our own generator, so a
 * seed gives the same graph on every machine): `--seed S+i --count 1`
 * reruns it. Each graph is built through the public API only: random
 * inputs and params of rank 0-4 (size-1 and, rarely, size-0 dims), every
 * op of smelt.h on operands picked from what was built so far, 1-4 named
 * outputs, often gradients (smelt_grad) of a random scalar loss and
 * optimizer updates; sometimes (group `long`) a float sum or mean over more
 * than 4096 elements per output (the blocked summation order) of a leaf
 * larger than the other values. The outputs are compiled for the target
 * under test and for the interpreter target with smelt_program_compile;
 * both run on the same inputs and are compared: integers and bools
 * exactly, floats within a tolerance computed for each output by a
 * first-order error analysis done while the graph is built (docs/testing.md
 * explains the rule). A run error on one side must be a run error on the
 * other. With --target interp the interp target is compared with a plain
 * smelt_interp, bit for bit.
 *
 * With --cuda-compile ARCHS (e.g. sm_80,sm_90) nothing runs: each graph's
 * program (outputs, then updates) is planned, printed as CUDA C and
 * compiled to a cubin by NVRTC for each arch (sm_cuda_build, no disk
 * cache, no GPU needed); a graph fails when any build fails, and the
 * failure shows the graph's text and NVRTC's log. The graphs are those of
 * the cpu target's run with the same seeds.
 *
 * Exit status: 0 when everything agrees, 1 on any mismatch, 2 on a usage
 * error, 77 (skipped) when the target is not available in this build
 * (with --cuda-compile: when libsmelt was built without NVRTC).
 */
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "smelt/smelt.h"
/* --cuda-compile: the cuda target's compilation without a device */
#include "../runtime/cuda_build.h"

/* ------------------------------------------------------------------ PRNG */
/* splitmix64: tiny, and the same sequence everywhere (no libc rand). */
typedef struct rng {
  uint64_t s;
} rng;

static uint64_t rnext(rng *r) {
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
/* Uniform integer in [lo, hi] (inclusive). */
static int64_t rint_(rng *r, int64_t lo, int64_t hi) {
  return lo + (int64_t)(rnext(r) % (uint64_t)(hi - lo + 1));
}
static double runit(rng *r) { return (double)(rnext(r) >> 11) * 0x1p-53; }
static bool rp(rng *r, double p) { return runit(r) < p; }
static double rnormal(rng *r) {
  double u = runit(r), v = runit(r);
  return sqrt(-2.0 * log(u > 0 ? u : 1e-300)) * cos(6.283185307179586 * v);
}

/* --------------------------------------------------------------- limits */
enum {
  MAX_POOL = 160,
  MAX_LEAVES = 32, /* leaves are tracked in a 32-bit dependency mask */
  MAX_OUTS = 16,
  MAX_UPD = 48,
  MAX_NUMEL = 4096, /* largest tensor the generator builds (but op_long's leaves) */
  GEN_RANK = 5      /* largest rank the generator builds */
};
#define MAG_MAX 1e6 /* float values beyond this estimate make tolerances vacuous */

/* ------------------------------------------------------------ values */
/* A value of the graph with what the error analysis knows of it. The
 * difference between two correct implementations is bounded by
 * R*|value| + A (+ min(sqrt(Asq), Asq/|value|) for std); R == A == Asq == 0
 * means exact: the same bits on every correct backend. */
typedef struct val {
  smelt_node n;
  smelt_dtype dt;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  int64_t numel;
  double mag;     /* estimated bound of |finite values| */
  double lo;      /* lower bound of |value| (0: none known) */
  double R, A, Asq;
  bool special;   /* may hold NaN, inf or -0 */
  bool gradlike;  /* tolerance relative to the output's largest value */
  bool product;   /* an f32 product (or its negation): an add or sub of it may
                     be contracted into an FMA by the cpu target (one rounding
                     fewer, codegen/llvm.c), so it is not exact */
  uint32_t deps;  /* the leaves it depends on (bit i: leaf i) */
} val;

static bool is_float(smelt_dtype dt) { return dt == SMELT_F32 || dt == SMELT_F64; }
static bool exact(const val *v) {
  return !is_float(v->dt) || (v->R == 0 && v->A == 0 && v->Asq == 0 && !v->gradlike);
}
/* Unit roundoff of a float dtype. */
static double uround(smelt_dtype dt) {
  return dt == SMELT_F64 ? 0x1p-53 : dt == SMELT_F32 ? 0x1p-24 : 0;
}
/* The error of v as one absolute bound. */
static double abserr(const val *v) { return v->A + v->R * v->mag + sqrt(v->Asq); }

/* ---------------------------------------------------------------- leaves */
enum dom {
  DOM_NORMAL, /* floats ~ N(0, s) clipped; ints in [-9, 9]; bools 50/50 */
  DOM_POS,    /* floats in [0.1, 4]; ints in [1, 9] */
  DOM_SPECIAL,/* as NORMAL with NaN, +-inf, +-0, tiny and subnormal values */
  DOM_INDEX,  /* ints in [0, hi) (with `bad`: one value out of range) */
  DOM_EXPO    /* pow exponents: floats in [-2, 3], ints in [0, 4] */
};

typedef struct leaf {
  char name[24];
  bool param;
  smelt_dtype dt;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  int dom;
  double scale; /* NORMAL/SPECIAL: standard deviation */
  int64_t hi;   /* INDEX: values in [0, hi) */
  bool bad;     /* INDEX: one value out of range: a run-time error */
  bool nograd;  /* batch_norm's running statistics: updated by their own assigns */
  smelt_node n;
  void *data;
  size_t nbytes;
} leaf;

typedef struct out {
  char name[32];
  val v;
} out;

/* One op the generator can use: --ops names it or its group. */
typedef struct opdesc {
  const char *name, *group;
  int weight;
} opdesc;

static const opdesc OPS[] = {
    {"neg", "unary", 2},        {"abs", "unary", 2},         {"sign", "unary", 1},
    {"exp", "unary", 2},        {"log", "unary", 2},         {"sqrt", "unary", 2},
    {"rsqrt", "unary", 1},      {"reciprocal", "unary", 1},  {"sin", "unary", 1},
    {"cos", "unary", 1},        {"tanh", "unary", 2},        {"sigmoid", "unary", 2},
    {"relu", "unary", 2},       {"gelu", "unary", 1},        {"logical_not", "unary", 1},
    {"stop_gradient", "unary", 1}, {"cast", "unary", 3},     {"clamp", "unary", 2},
    {"add", "binary", 4},       {"sub", "binary", 3},        {"mul", "binary", 4},
    {"div", "binary", 2},       {"pow", "binary", 2},        {"maximum", "binary", 2},
    {"minimum", "binary", 2},   {"lt", "compare", 1},        {"le", "compare", 1},
    {"gt", "compare", 1},       {"ge", "compare", 1},        {"eq", "compare", 1},
    {"ne", "compare", 1},       {"logical_and", "logical", 1}, {"logical_or", "logical", 1},
    {"where", "where", 3},      {"sum", "reduce", 3},        {"prod", "reduce", 1},
    {"max", "reduce", 2},       {"min", "reduce", 1},        {"mean", "reduce", 2},
    {"var", "reduce", 1},       {"std", "reduce", 1},        {"logsumexp", "reduce", 1},
    {"argmax", "reduce", 1},    {"argmin", "reduce", 1},     {"max_dim", "reduce", 1},
    {"min_dim", "reduce", 1},   {"reshape", "view", 3},      {"permute", "view", 2},
    {"transpose", "view", 2},   {"expand", "view", 2},       {"broadcast_to", "view", 1},
    {"squeeze", "view", 1},     {"unsqueeze", "view", 1},    {"flatten", "view", 1},
    {"slice", "view", 3},       {"flip", "view", 2},         {"pad", "view", 2},
    {"concat", "view", 2},      {"stack", "view", 1},        {"matmul", "matmul", 4},
    {"gather", "index", 1},     {"scatter_add", "index", 1}, {"take_along_axis", "index", 1},
    {"index_select", "index", 1}, {"one_hot", "index", 1},   {"embedding", "index", 1},
    {"arange", "source", 1},    {"linspace", "source", 1},   {"eye", "source", 1},
    {"rand", "source", 1},      {"randn", "source", 1},      {"full", "source", 1},
    {"const", "source", 1},     {"softmax", "nn", 2},        {"log_softmax", "nn", 2},
    {"cross_entropy", "nn", 1}, {"mse_loss", "nn", 1},       {"dropout", "nn", 1},
    {"unfold", "view", 2},      {"conv2d", "conv", 2},       {"max_pool2d", "conv", 1},
    {"avg_pool2d", "conv", 1},  {"batch_norm", "conv", 1},  {"long_sum", "long", 1},
};
enum { NOPS = (int)(sizeof OPS / sizeof OPS[0]) };

/* ------------------------------------------------------------- settings */
typedef struct config {
  long count;
  uint64_t seed;
  smelt_target target;
  bool ops_on[NOPS];
  bool grad_on, update_on; /* "grad" and "update" in --ops (or no --ops) */
  bool verbose;
  const char *save;
  long max_failures;
  /* --cuda-compile: compile for these compute capabilities instead of
   * running (ncuda == 0: off) */
  int ncuda;
  int cuda_cc[8];
} config;

/* ------------------------------------------------------------ generator */
typedef struct gen {
  const config *cfg;
  smelt_graph *g;
  rng r;
  val pool[MAX_POOL];
  int np;
  leaf lv[MAX_LEAVES];
  int nl;
  out outs[MAX_OUTS];
  int nout;
  smelt_node upd[MAX_UPD];
  int nupd;
  double upd_atol; /* absolute tolerance of updated params (Adam's steps) */
  int nliteral;    /* counter for unique names */
  bool specials;   /* this graph's float inputs hold special values */
  bool eval;       /* compile evaluation programs */
  bool has_f32;    /* some value is f32: f64 gradients may inherit f32 rounding */
  uint32_t nograd_deps; /* leaves upstream of a batch_norm with batch statistics */
} gen;

static val *push(gen *G, val v) {
  if (G->np == MAX_POOL) return NULL;
  if (v.dt == SMELT_F32) G->has_f32 = true;
  G->pool[G->np] = v;
  return &G->pool[G->np++];
}

/* Fills the shape fields of v from the graph. */
static bool describe(gen *G, val *v, smelt_node n) {
  if (!smelt_node_valid(n)) return false;
  v->n = n;
  v->dt = smelt_node_dtype(G->g, n);
  const int64_t *d = smelt_node_shape(G->g, n, &v->rank);
  memset(v->dims, 0, sizeof v->dims);
  if (v->rank) memcpy(v->dims, d, sizeof(int64_t) * (size_t)v->rank);
  v->numel = smelt_node_numel(G->g, n);
  return true;
}

/* A new value built from node n: error fields start exact; the caller
 * sets them. Returns NULL when the build failed (graph error). */
static val *add_val(gen *G, smelt_node n, double mag, uint32_t deps) {
  val v;
  memset(&v, 0, sizeof v);
  if (!describe(G, &v, n)) return NULL;
  v.mag = mag;
  v.deps = deps;
  return push(G, v);
}

static int64_t numel_of(int rank, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  return n;
}

/* Picks a dim: mostly 1..8, sometimes a prime up to 13, rarely 0. */
static int64_t rand_dim(gen *G) {
  double u = runit(&G->r);
  if (u < 0.015) return 0;
  if (u < 0.25) return 1;
  if (u < 0.30) return (int64_t[]){11, 13}[rint_(&G->r, 0, 1)];
  return rint_(&G->r, 2, 8);
}

static void rand_shape(gen *G, int *rank, int64_t *dims, int64_t cap) {
  static const int ranks[] = {0, 1, 1, 2, 2, 2, 3, 3, 3, 4};
  for (;;) {
    *rank = ranks[rint_(&G->r, 0, 9)];
    for (int i = 0; i < *rank; i++) dims[i] = rand_dim(G);
    if (numel_of(*rank, dims) <= cap) return;
  }
}

/* A shape that broadcasts with (rank, dims): some dims become 1, some
 * size-1 dims grow, leading dims are dropped or added. The result shape
 * stays under the numel cap. */
static void partner_shape(gen *G, int rank, const int64_t *dims, int *prank, int64_t *pdims) {
  for (int tries = 0;; tries++) {
    int drop = rp(&G->r, 0.2) ? (int)rint_(&G->r, 0, rank) : 0;
    /* New leading dims only when none were dropped (they would align with
     * a's dims otherwise). */
    int add = drop == 0 && rank < GEN_RANK && rp(&G->r, 0.12) ? 1 : 0;
    int pr = rank - drop + add;
    int64_t out[SMELT_MAX_RANK];
    for (int i = 0; i < add; i++) pdims[i] = rp(&G->r, 0.5) ? 1 : rint_(&G->r, 2, 4);
    for (int i = drop; i < rank; i++) {
      int64_t d = dims[i];
      int64_t p = d;
      if (d == 1 && rp(&G->r, 0.3)) p = rint_(&G->r, 2, 5);
      else if (rp(&G->r, 0.25)) p = 1;
      pdims[add + i - drop] = p;
    }
    /* The broadcast result must stay small. */
    int rr = pr > rank ? pr : rank;
    for (int i = 0; i < rr; i++) {
      int ia = i - (rr - rank), ib = i - (rr - pr);
      int64_t a = ia >= 0 ? dims[ia] : 1, b = ib >= 0 ? pdims[ib] : 1;
      out[i] = a == 1 ? b : a;
    }
    *prank = pr;
    if (numel_of(rr, out) <= MAX_NUMEL || tries > 20) {
      if (numel_of(rr, out) > MAX_NUMEL) { /* give up: the same shape */
        *prank = rank;
        memcpy(pdims, dims, sizeof(int64_t) * (size_t)rank);
      }
      return;
    }
  }
}

static bool broadcastable(const val *a, const val *b, int64_t *out_numel) {
  int rr = a->rank > b->rank ? a->rank : b->rank;
  int64_t n = 1;
  for (int i = 0; i < rr; i++) {
    int ia = i - (rr - a->rank), ib = i - (rr - b->rank);
    int64_t x = ia >= 0 ? a->dims[ia] : 1, y = ib >= 0 ? b->dims[ib] : 1;
    if (x != y && x != 1 && y != 1) return false;
    n *= x == 1 ? y : x;
  }
  if (out_numel) *out_numel = n;
  return true;
}

static smelt_dtype rand_dtype(gen *G) {
  static const smelt_dtype dts[] = {SMELT_F32, SMELT_F32, SMELT_F32, SMELT_F64,
                                    SMELT_I32, SMELT_I64, SMELT_BOOL};
  return dts[rint_(&G->r, 0, 6)];
}
static smelt_dtype rand_float(gen *G) { return rp(&G->r, 0.75) ? SMELT_F32 : SMELT_F64; }

/* ------------------------------------------------------------ input data */
static const double SPECIALS[] = {NAN, INFINITY, -INFINITY, -0.0, 0.0, 1e-30, 1e-40, -1e-310};

static void fill_leaf(rng *r, leaf *l) {
  int64_t n = numel_of(l->rank, l->dims);
  size_t es = smelt_dtype_size(l->dt);
  l->nbytes = (size_t)n * es;
  l->data = malloc(l->nbytes ? l->nbytes : 1);
  if (!l->data) return;
  for (int64_t i = 0; i < n; i++) {
    double v = 0;
    int64_t iv = 0;
    switch (l->dom) {
    case DOM_NORMAL:
    case DOM_SPECIAL:
      v = rnormal(r) * l->scale;
      if (v > 8) v = 8;
      if (v < -8) v = -8;
      if (l->dom == DOM_SPECIAL && rp(r, 0.25))
        v = SPECIALS[rint_(r, 0, (int)(sizeof SPECIALS / sizeof SPECIALS[0]) - 1)];
      iv = rint_(r, -9, 9);
      if (l->dom == DOM_SPECIAL && rp(r, 0.1))
        iv = l->dt == SMELT_I32 ? (rp(r, .5) ? INT32_MAX : INT32_MIN)
                                : (rp(r, .5) ? INT64_MAX : INT64_MIN);
      break;
    case DOM_POS:
      v = 0.1 + 3.9 * runit(r);
      iv = rint_(r, 1, 9);
      break;
    case DOM_INDEX: iv = rint_(r, 0, l->hi - 1); break;
    case DOM_EXPO:
      v = -2 + 5 * runit(r);
      iv = rint_(r, 0, 4);
      break;
    }
    unsigned char *p = (unsigned char *)l->data + (size_t)i * es;
    switch (l->dt) {
    case SMELT_F32: { float f = (float)v; memcpy(p, &f, 4); break; }
    case SMELT_F64: memcpy(p, &v, 8); break;
    case SMELT_I32: { int32_t x = (int32_t)iv; memcpy(p, &x, 4); break; }
    case SMELT_I64: memcpy(p, &iv, 8); break;
    default: *p = (unsigned char)(rnext(r) & 1); break;
    }
  }
  if (l->dom == DOM_INDEX && l->bad && n > 0) {
    int64_t bad = rp(r, 0.5) ? -1 : l->hi;
    int64_t k = rint_(r, 0, n - 1);
    if (l->dt == SMELT_I32) {
      int32_t x = (int32_t)bad;
      memcpy((unsigned char *)l->data + k * 4, &x, 4);
    } else {
      memcpy((unsigned char *)l->data + k * 8, &bad, 8);
    }
  }
}

/* A new input (or, for floats, sometimes a param) of the given dtype,
 * shape and domain, added to the pool. */
static val *new_leaf(gen *G, smelt_dtype dt, int rank, const int64_t *dims, int dom, int64_t hi,
                     bool allow_param) {
  if (G->nl == MAX_LEAVES) return NULL;
  leaf *l = &G->lv[G->nl];
  memset(l, 0, sizeof *l);
  l->dt = dt;
  l->rank = rank;
  if (rank) memcpy(l->dims, dims, sizeof(int64_t) * (size_t)rank);
  if (dom == DOM_NORMAL && G->specials && rp(&G->r, 0.5)) dom = DOM_SPECIAL;
  l->dom = dom;
  l->hi = hi;
  l->scale = (double[]){0.5, 1, 2, 3}[rint_(&G->r, 0, 3)];
  l->bad = dom == DOM_INDEX && rp(&G->r, 0.03);
  l->param = allow_param && is_float(dt) && dom == DOM_NORMAL && rp(&G->r, 0.25);
  snprintf(l->name, sizeof l->name, "%s%d", l->param ? "w" : "x", G->nl);
  double mag = 0, lo = 0;
  if (l->param) {
    smelt_init init;
    switch (rint_(&G->r, 0, 2)) {
    case 0: init = smelt_init_normal(0, l->scale, rnext(&G->r) % 1000); break;
    case 1: init = smelt_init_uniform(-l->scale, l->scale, rnext(&G->r) % 1000); break;
    default: init = smelt_init_constant((double)rint_(&G->r, -3, 3) / 2); break;
    }
    /* normal init is not clipped: 6 sigma bounds it for our sizes */
    mag = 6 * l->scale;
    l->n = smelt_param(G->g, l->name, dt, rank, dims, init);
  } else {
    l->n = smelt_input(G->g, l->name, dt, rank, dims);
    switch (dom) {
    case DOM_NORMAL:
    case DOM_SPECIAL:
      mag = is_float(dt) ? fmin(8, 4 * l->scale) : dt == SMELT_BOOL ? 1 : 9;
      if (dom == DOM_SPECIAL && !is_float(dt) && dt != SMELT_BOOL) mag = 1e300;
      break;
    case DOM_POS: mag = is_float(dt) ? 4 : 9, lo = is_float(dt) ? 0.1 : 1; break;
    case DOM_INDEX: mag = (double)hi; break;
    case DOM_EXPO: mag = is_float(dt) ? 3 : 4; break;
    }
  }
  val *v = add_val(G, l->n, mag, 1u << G->nl);
  if (!v) return NULL;
  v->lo = lo;
  v->special = dom == DOM_SPECIAL;
  G->nl++;
  return v;
}

static val *new_input(gen *G, smelt_dtype dt, int rank, const int64_t *dims) {
  return new_leaf(G, dt, rank, dims, DOM_NORMAL, 0, true);
}

/* Index data: values in [0, hi). */
static val *new_index(gen *G, int rank, const int64_t *dims, int64_t hi) {
  return new_leaf(G, rp(&G->r, 0.5) ? SMELT_I32 : SMELT_I64, rank, dims, DOM_INDEX, hi, false);
}

/* ------------------------------------------------------- picking operands */
typedef bool (*pred)(const gen *G, const val *v, const void *ctx);

/* A pool value satisfying p: half the time the most recent one (so ops
 * chain into deep expressions), else any. NULL when none does. */
static val *pick(gen *G, pred p, const void *ctx) {
  int cand[MAX_POOL], nc = 0;
  for (int i = 0; i < G->np; i++)
    if (!p || p(G, &G->pool[i], ctx)) cand[nc++] = i;
  if (!nc) return NULL;
  if (rp(&G->r, 0.5)) return &G->pool[cand[nc - 1]];
  return &G->pool[cand[rint_(&G->r, 0, nc - 1)]];
}

static bool p_any(const gen *G, const val *v, const void *ctx) {
  (void)G, (void)ctx;
  return v->numel <= MAX_NUMEL;
}
static bool p_nonbool(const gen *G, const val *v, const void *ctx) {
  return p_any(G, v, ctx) && v->dt != SMELT_BOOL;
}
static bool p_float(const gen *G, const val *v, const void *ctx) {
  return p_any(G, v, ctx) && is_float(v->dt);
}
static bool p_exact(const gen *G, const val *v, const void *ctx) {
  return p_any(G, v, ctx) && exact(v);
}
static bool p_ranked(const gen *G, const val *v, const void *ctx) {
  return p_any(G, v, ctx) && v->rank >= 1;
}
static bool p_ranked_nonbool(const gen *G, const val *v, const void *ctx) {
  return p_ranked(G, v, ctx) && v->dt != SMELT_BOOL;
}
static bool p_ranked_nonempty(const gen *G, const val *v, const void *ctx) {
  return p_ranked(G, v, ctx) && v->numel > 0;
}
/* Broadcasts with ctx (a val) within the numel cap. */
static bool p_bcast(const gen *G, const val *v, const void *ctx) {
  int64_t n;
  return p_any(G, v, ctx) && broadcastable(v, (const val *)ctx, &n) && n <= MAX_NUMEL;
}
static bool p_bool(const gen *G, const val *v, const void *ctx) {
  return p_bcast(G, v, ctx) && v->dt == SMELT_BOOL;
}

/* Some value of the pool, or a new input when the pool has none. */
static val *operand(gen *G, pred p, const void *ctx, smelt_dtype dt) {
  val *v = rp(&G->r, 0.85) ? pick(G, p, ctx) : NULL;
  if (v) return v;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  rand_shape(G, &rank, dims, 256);
  v = new_input(G, dt, rank, dims);
  if (v && p && !p(G, v, ctx)) return pick(G, p, ctx);
  return v;
}

/* A second operand for a binary op with a: a pool value that broadcasts
 * with a, or a new input of a partner shape. */
static val *partner(gen *G, const val *a, smelt_dtype dt) {
  val *b = rp(&G->r, 0.45) ? pick(G, p_bcast, a) : NULL;
  if (b && (dt == SMELT_DTYPE_COUNT || b->dt == dt)) return b;
  int pr;
  int64_t pd[SMELT_MAX_RANK];
  partner_shape(G, a->rank, a->dims, &pr, pd);
  return new_input(G, dt == SMELT_DTYPE_COUNT ? rand_dtype(G) : dt, pr, pd);
}

/* A float version of v (a cast when v is not float; exact). */
static val *as_float(gen *G, val *v) {
  if (is_float(v->dt)) return v;
  val c = *v;
  smelt_dtype dt = rand_float(G);
  if (!describe(G, &c, smelt_cast(G->g, v->n, dt))) return NULL;
  if (c.mag > MAG_MAX) return NULL;
  return push(G, c);
}

/* |x| + 0.5: the safe domain of log, sqrt, division... for an operand
 * that is not exact (a tiny rounding difference near 0 would be amplified
 * without bound). Exact operands keep their raw domain (NaN and inf
 * included): both sides must give the same bits there. */
static val *safe_pos(gen *G, val *x) {
  if (exact(x) && (x->lo > 0 || !is_float(x->dt))) return x;
  if (exact(x) && rp(&G->r, 0.6)) return x;
  val v = *x;
  if (!describe(G, &v, smelt_add(G->g, smelt_abs(G->g, x->n), smelt_scalar(G->g, 0.5))))
    return NULL;
  double u = uround(v.dt);
  v.A = abserr(x);
  v.R = exact(x) ? 0 : u;
  v.Asq = 0;
  v.lo = 0.5;
  v.mag = x->mag + 0.5;
  return push(G, v);
}

/* ---------------------------------------------------------------- ops */
/* Each builder returns false when it does not apply to the pool (another
 * op is tried) or when its result would be out of bounds. */

static bool op_unary(gen *G, const char *op) {
  bool needs_nonbool = !strcmp(op, "neg") || !strcmp(op, "abs") || !strcmp(op, "sign") ||
                       !strcmp(op, "relu") || !strcmp(op, "clamp");
  bool discont = !strcmp(op, "sign") || !strcmp(op, "logical_not");
  val *x = operand(G, discont ? p_exact : needs_nonbool ? p_nonbool : p_any, NULL,
                   rand_dtype(G));
  if (!x || (needs_nonbool && x->dt == SMELT_BOOL) || (discont && !exact(x))) return false;
  smelt_graph *g = G->g;
  double Ein = abserr(x);
  val r;
  memset(&r, 0, sizeof r);
  smelt_node n = SMELT_INVALID;
  double mag = x->mag, lo = 0, R = 0, A = 0, Asq = 0;
  bool special = x->special;
  /* The result dtype: float math of ints computes in f32. */
  smelt_dtype fdt = is_float(x->dt) ? x->dt : SMELT_F32;
  double u = uround(fdt);
  bool ex = exact(x);
  if (!strcmp(op, "neg") || !strcmp(op, "abs") || !strcmp(op, "relu") ||
      !strcmp(op, "stop_gradient")) {
    n = !strcmp(op, "neg") ? smelt_neg(g, x->n)
        : !strcmp(op, "abs") ? smelt_abs(g, x->n)
        : !strcmp(op, "relu") ? smelt_relu(g, x->n) : smelt_stop_gradient(g, x->n);
    R = x->R, A = x->A, Asq = x->Asq, lo = !strcmp(op, "relu") ? 0 : x->lo;
  } else if (!strcmp(op, "sign")) {
    n = smelt_sign(g, x->n), mag = 1;
  } else if (!strcmp(op, "logical_not")) {
    n = smelt_logical_not(g, x->n), mag = 1;
  } else if (!strcmp(op, "exp")) {
    if (x->mag > 13) return false;
    n = smelt_exp(g, x->n);
    mag = exp(x->mag), lo = exp(-x->mag);
    R = Ein + 4 * u, A = 16 * u * 1e-30; /* near underflow only */
  } else if (!strcmp(op, "log") || !strcmp(op, "sqrt") || !strcmp(op, "rsqrt") ||
             !strcmp(op, "reciprocal")) {
    val *y = safe_pos(G, x);
    if (!y) return false;
    Ein = abserr(y), ex = exact(y), special = y->special;
    double l = y->lo, raw = l == 0; /* raw exact domain: no lower bound */
    fdt = is_float(y->dt) ? y->dt : SMELT_F32, u = uround(fdt);
    if (!strcmp(op, "log")) {
      n = smelt_log(g, y->n);
      mag = raw ? 100 : fmax(fabs(log(l)), log(fmax(y->mag, 1)));
      R = 4 * u, A = u + (ex ? 0 : y->R + y->A / l);
    } else if (!strcmp(op, "sqrt")) {
      n = smelt_sqrt(g, y->n);
      mag = sqrt(y->mag), lo = sqrt(l);
      if (!ex) R = y->R / 2 + u, A = y->A / (2 * sqrt(l));
    } else if (!strcmp(op, "rsqrt")) {
      n = smelt_rsqrt(g, y->n);
      mag = raw ? 1e3 : 1 / sqrt(l), lo = 1 / sqrt(fmax(y->mag, 1e-30));
      R = 2 * u + (ex ? 0 : y->R / 2), A = ex ? 0 : y->A / (2 * l * sqrt(l));
    } else {
      n = smelt_reciprocal(g, y->n);
      mag = raw ? 1e3 : 1 / l, lo = 1 / fmax(y->mag, 1e-30);
      if (!ex) R = y->R + u, A = y->A / (l * l);
    }
    (void)Ein;
  } else if (!strcmp(op, "sin") || !strcmp(op, "cos")) {
    n = !strcmp(op, "sin") ? smelt_sin(g, x->n) : smelt_cos(g, x->n);
    mag = 1, R = 4 * u, A = Ein + 4 * u + 4 * u * x->mag / 64;
  } else if (!strcmp(op, "tanh") || !strcmp(op, "sigmoid")) {
    n = !strcmp(op, "tanh") ? smelt_tanh(g, x->n) : smelt_sigmoid(g, x->n);
    mag = 1, R = 4 * u, A = Ein + 4 * u;
  } else if (!strcmp(op, "gelu")) {
    n = smelt_gelu(g, x->n);
    R = 8 * u, A = 1.2 * Ein + 8 * u * fmax(1, x->mag);
  } else if (!strcmp(op, "cast")) {
    smelt_dtype to = rand_dtype(G);
    if (is_float(x->dt) && !is_float(to) && !ex) return false; /* truncation jumps */
    if (is_float(to) && !is_float(x->dt) && x->mag > MAG_MAX) return false;
    n = smelt_cast(g, x->n, to);
    fdt = to;
    if (is_float(to)) {
      R = x->R, A = x->A, Asq = x->Asq, lo = x->lo;
      if (!ex || (x->dt == SMELT_F64 && to == SMELT_F32)) R += uround(to);
      if (x->dt == SMELT_F64 && to == SMELT_F32) { /* rounding is exact on both sides */
        R = ex ? 0 : R;
      }
    } else {
      special = special && to != SMELT_BOOL;
      mag = to == SMELT_BOOL ? 1 : x->dt == SMELT_BOOL ? 1 : fmax(x->mag, is_float(x->dt) ? 1e300 : 0);
    }
  } else if (!strcmp(op, "clamp")) {
    static const double b[] = {-2, -1, -0.5, 0, 0.5, 1, 3};
    double l = b[rint_(&G->r, 0, 6)], h = b[rint_(&G->r, 0, 6)];
    if (!is_float(x->dt) && rp(&G->r, 0.5)) l = floor(l), h = floor(h);
    n = smelt_clamp(g, x->n, l, h);
    mag = fmin(fmax(x->mag, 1), fmax(fabs(l), fabs(h)));
    R = x->R, A = x->A, Asq = x->Asq;
  }
  if (!describe(G, &r, n)) return false;
  if (is_float(r.dt) && !is_float(x->dt) && (!strcmp(op, "exp") || !strcmp(op, "log")))
    (void)0;
  r.mag = mag, r.lo = lo, r.R = R, r.A = A, r.Asq = Asq;
  r.special = special, r.deps = x->deps, r.gradlike = x->gradlike;
  r.product = !strcmp(op, "neg") && x->product && r.dt == SMELT_F32;
  if (!is_float(r.dt)) r.R = r.A = r.Asq = 0;
  if (is_float(r.dt) && r.mag > MAG_MAX && !exact(&r)) return false;
  (void)fdt;
  return push(G, r) != NULL;
}

/* The literals binary ops meet: weak scalars of a few kinds. */
static smelt_node literal(gen *G, const val *a, double *mag) {
  static const double fl[] = {2.5, -1.5, 0.5, 3, 1e-3, -7};
  if (!is_float(a->dt) && rp(&G->r, 0.6)) {
    int64_t k = rint_(&G->r, -5, 5);
    *mag = fabs((double)k);
    return smelt_scalar_int(G->g, k);
  }
  double v = fl[rint_(&G->r, 0, 5)];
  *mag = fabs(v);
  return smelt_scalar(G->g, v);
}

static bool op_binary(gen *G, const char *op) {
  bool cmp = !strcmp(op, "lt") || !strcmp(op, "le") || !strcmp(op, "gt") || !strcmp(op, "ge") ||
             !strcmp(op, "eq") || !strcmp(op, "ne");
  bool logical = !strcmp(op, "logical_and") || !strcmp(op, "logical_or");
  bool nobool = !strcmp(op, "sub") || !strcmp(op, "pow");
  smelt_dtype want = rand_dtype(G);
  val *a = operand(G, cmp || logical ? p_exact : nobool ? p_nonbool : p_any, NULL, want);
  if (!a || ((cmp || logical) && !exact(a)) || (nobool && a->dt == SMELT_BOOL)) return false;
  smelt_graph *g = G->g;
  /* The second operand: same dtype mostly, a literal sometimes. */
  val bl;
  memset(&bl, 0, sizeof bl);
  val *b = NULL;
  smelt_node bn;
  if (!strcmp(op, "pow")) {
    if (rp(&G->r, 0.6)) {
      static const double e[] = {2, 3, 0.5, -1, -0.5, 1.5, 0};
      double v = e[rint_(&G->r, 0, 6)];
      if (!is_float(a->dt) && v != floor(v)) v = 2;
      bn = v == floor(v) ? smelt_scalar_int(g, (int64_t)v) : smelt_scalar(g, v);
      bl.mag = fabs(v), bl.dt = is_float(a->dt) ? a->dt : SMELT_I64;
    } else {
      int pr;
      int64_t pd[SMELT_MAX_RANK];
      partner_shape(G, a->rank, a->dims, &pr, pd);
      b = new_leaf(G, is_float(a->dt) && rp(&G->r, 0.5) ? a->dt : rand_dtype(G), pr, pd,
                   DOM_EXPO, 0, false);
      if (!b || b->dt == SMELT_BOOL) return false;
      bn = b->n;
    }
  } else if (rp(&G->r, 0.15) && !logical) {
    bn = literal(G, a, &bl.mag);
    bl.dt = a->dt;
  } else {
    smelt_dtype bdt = rp(&G->r, 0.6) ? a->dt : rand_dtype(G);
    b = partner(G, a, bdt);
    if (!b) return false;
    bn = b->n;
  }
  if (b && (cmp || logical) && !exact(b)) return false;
  if (b && nobool && b->dt == SMELT_BOOL) return false;
  if (!b) b = &bl;
  /* Division and pow need a safe base/denominator when not exact. */
  if (!strcmp(op, "div") && b != &bl) {
    b = safe_pos(G, b);
    if (!b) return false;
    bn = b->n;
  }
  if (!strcmp(op, "pow") && is_float(a->dt)) {
    a = safe_pos(G, a);
    if (!a) return false;
  }
  smelt_node n = SMELT_INVALID;
#define B(name, fn) else if (!strcmp(op, name)) n = fn(g, a->n, bn);
  if (0) {}
  B("add", smelt_add) B("sub", smelt_sub) B("mul", smelt_mul) B("div", smelt_div)
  B("pow", smelt_pow) B("maximum", smelt_maximum) B("minimum", smelt_minimum)
  B("lt", smelt_lt) B("le", smelt_le) B("gt", smelt_gt) B("ge", smelt_ge) B("eq", smelt_eq)
  B("ne", smelt_ne) B("logical_and", smelt_logical_and) B("logical_or", smelt_logical_or)
#undef B
  val r;
  memset(&r, 0, sizeof r);
  if (!describe(G, &r, n)) return false;
  r.deps = a->deps | b->deps;
  r.special = a->special || b->special;
  r.gradlike = a->gradlike || b->gradlike;
  double u = uround(r.dt), Ea = abserr(a), Eb = abserr(b);
  bool ex = exact(a) && exact(b);
  if (cmp || logical) {
    r.mag = 1;
  } else if (!strcmp(op, "add") || !strcmp(op, "sub")) {
    r.mag = a->mag + b->mag;
    if (!ex) r.A = Ea + Eb, r.R = u;
    /* a*b + c as an FMA skips the product's rounding (u |a*b|) */
    if (r.dt == SMELT_F32 && (a->product || b->product)) {
      r.A += u * ((a->product ? a->mag : 0) + (b->product ? b->mag : 0));
      r.R = u;
    }
  } else if (!strcmp(op, "mul")) {
    r.product = r.dt == SMELT_F32;
    r.mag = a->mag * b->mag;
    if (!ex) r.R = a->R + b->R + u, r.A = (a->A + sqrt(a->Asq)) * b->mag + (b->A + sqrt(b->Asq)) * a->mag;
  } else if (!strcmp(op, "div")) {
    double l = b->lo;
    r.mag = l > 0 ? a->mag / l : 1e3 * a->mag;
    if (!ex) {
      if (l <= 0) return false;
      r.R = a->R + b->R + u, r.A = (a->A + sqrt(a->Asq)) / l + (b->A + sqrt(b->Asq)) * a->mag / (l * l);
    }
  } else if (!strcmp(op, "pow")) {
    if (is_float(r.dt)) {
      double l = a->lo, base = fmax(a->mag, l > 0 ? 1 / l : 1e3), e = fmax(b->mag, 1);
      r.mag = pow(base, e);
      double lg = fmax(fabs(log(fmax(a->mag, 1e-30))), l > 0 ? fabs(log(l)) : 100);
      r.R = 8 * u * fmax(1, e * lg);
      if (!ex) {
        if (l <= 0 && !exact(a)) return false;
        r.R += e * (a->R + (exact(a) ? 0 : abserr(a) / l)) + lg * Eb;
      }
    } else {
      r.mag = 1e300; /* integer pow wraps: exact, but no float bound */
    }
  } else { /* maximum, minimum */
    r.mag = fmax(a->mag, b->mag);
    r.R = fmax(a->R, b->R), r.A = fmax(a->A, b->A), r.Asq = fmax(a->Asq, b->Asq);
  }
  if (!is_float(r.dt)) {
    r.R = r.A = r.Asq = 0;
    if (!cmp && !logical) r.mag = fmin(1e300, r.mag);
  }
  if (is_float(r.dt) && r.mag > MAG_MAX) return false;
  return push(G, r) != NULL;
}

static bool op_where(gen *G) {
  val *a = operand(G, p_any, NULL, rand_dtype(G));
  if (!a) return false;
  val *c = rp(&G->r, 0.6) ? pick(G, p_bool, a) : NULL;
  if (!c) {
    int pr;
    int64_t pd[SMELT_MAX_RANK];
    partner_shape(G, a->rank, a->dims, &pr, pd);
    c = new_leaf(G, SMELT_BOOL, pr, pd, DOM_NORMAL, 0, false);
  }
  if (!c || !broadcastable(a, c, NULL)) return false;
  val ac;
  memset(&ac, 0, sizeof ac);
  int64_t nn;
  broadcastable(a, c, &nn);
  val bl;
  memset(&bl, 0, sizeof bl);
  val *b;
  smelt_node bn;
  if (rp(&G->r, 0.2)) {
    bn = literal(G, a, &bl.mag);
    bl.dt = a->dt;
    b = &bl;
  } else {
    b = partner(G, a, rp(&G->r, 0.7) ? a->dt : rand_dtype(G));
    if (!b) return false;
    int64_t n3;
    if (!broadcastable(b, c, &n3) || n3 > MAX_NUMEL) return false;
    bn = b->n;
  }
  val r;
  memset(&r, 0, sizeof r);
  if (!describe(G, &r, smelt_where(G->g, c->n, a->n, bn))) return false;
  if (r.numel > MAX_NUMEL) return false;
  r.mag = fmax(a->mag, b->mag);
  r.R = fmax(a->R, b->R), r.A = fmax(a->A, b->A), r.Asq = fmax(a->Asq, b->Asq);
  r.special = a->special || b->special;
  r.gradlike = a->gradlike || b->gradlike;
  r.deps = a->deps | b->deps | c->deps;
  if (!is_float(r.dt)) r.R = r.A = r.Asq = 0;
  if (is_float(r.dt) && (!is_float(a->dt) || !is_float(b->dt)) && r.mag > MAG_MAX) return false;
  return push(G, r) != NULL;
}

/* Random axes of x (no repeats, some negative); *naxes 0 means all. The
 * reduction length goes to *len. */
static void rand_axes(gen *G, const val *x, int *naxes, int *axes, int64_t *len, bool nonempty) {
  *naxes = 0;
  *len = 1;
  if (x->rank == 0 || rp(&G->r, 0.2)) {
    *len = x->numel;
    if (nonempty && x->numel == 0) *naxes = -1;
    return;
  }
  int k = (int)rint_(&G->r, 1, x->rank);
  int perm[SMELT_MAX_RANK];
  for (int i = 0; i < x->rank; i++) perm[i] = i;
  for (int i = x->rank - 1; i > 0; i--) {
    int j = (int)rint_(&G->r, 0, i), t = perm[i];
    perm[i] = perm[j], perm[j] = t;
  }
  for (int i = 0; i < k; i++) {
    axes[i] = perm[i] - (rp(&G->r, 0.3) ? x->rank : 0);
    *len *= x->dims[perm[i]];
    if (nonempty && x->dims[perm[i]] == 0) *naxes = -1;
  }
  if (*naxes == 0) *naxes = k;
}

static bool op_reduce(gen *G, const char *op) {
  bool arg = !strcmp(op, "argmax") || !strcmp(op, "argmin");
  bool dimpair = !strcmp(op, "max_dim") || !strcmp(op, "min_dim");
  bool fl = !strcmp(op, "mean") || !strcmp(op, "var") || !strcmp(op, "std");
  bool mm = !strcmp(op, "max") || !strcmp(op, "min");
  val *x = operand(G, arg ? p_exact : (arg || dimpair) ? p_ranked_nonempty : p_any, NULL,
                   rand_dtype(G));
  if (!x) return false;
  if (arg && !exact(x)) return false;
  if ((arg || dimpair) && (x->rank == 0 && rp(&G->r, 0.5))) return false;
  if (fl || !strcmp(op, "logsumexp")) {
    if (!strcmp(op, "logsumexp") && !is_float(x->dt) && x->mag > MAG_MAX) return false;
    if (fl && !(x = as_float(G, x))) return false;
  }
  smelt_graph *g = G->g;
  bool keep = rp(&G->r, 0.4);
  int axes[SMELT_MAX_RANK], naxes;
  int64_t len;
  smelt_node n = SMELT_INVALID, idx = SMELT_INVALID;
  if (arg || dimpair) {
    int ax = x->rank ? (int)rint_(&G->r, -x->rank, x->rank - 1) : 0;
    if (x->rank == 0) ax = rp(&G->r, .5) ? 0 : -1;
    len = x->rank ? x->dims[ax < 0 ? ax + x->rank : ax] : 1;
    if (len == 0) return false;
    if (arg) n = (!strcmp(op, "argmax") ? smelt_argmax : smelt_argmin)(g, x->n, ax, keep);
    else
      n = (!strcmp(op, "max_dim") ? smelt_max_dim : smelt_min_dim)(g, x->n, ax, keep, NULL, &idx);
  } else {
    rand_axes(G, x, &naxes, axes, &len, mm);
    if (naxes < 0) return false;
    if (!strcmp(op, "sum")) n = smelt_sum(g, x->n, naxes, axes, keep);
    else if (!strcmp(op, "mean")) n = smelt_mean(g, x->n, naxes, axes, keep);
    else if (!strcmp(op, "prod")) n = smelt_prod(g, x->n, naxes, axes, keep);
    else if (!strcmp(op, "max")) n = smelt_max(g, x->n, naxes, axes, keep);
    else if (!strcmp(op, "min")) n = smelt_min(g, x->n, naxes, axes, keep);
    else if (!strcmp(op, "logsumexp")) n = smelt_logsumexp(g, x->n, naxes, axes, keep);
    else {
      int64_t c = rp(&G->r, 0.7) ? 1 : rint_(&G->r, 0, 2);
      /* N - c <= 0 divides a rounding residue by 0 (inf vs NaN) unless N == 1. */
      if (len - c <= 0 && !(len == 1 && c == 1)) c = 0;
      if (len == 0) return false;
      n = (!strcmp(op, "var") ? smelt_var : smelt_std)(g, x->n, naxes, axes, c, keep);
      len = len - c > 0 ? len : 1; /* the divisor below */
    }
  }
  val r;
  memset(&r, 0, sizeof r);
  if (!describe(G, &r, n)) return false;
  r.deps = x->deps, r.special = x->special, r.gradlike = x->gradlike;
  double u = uround(r.dt), E = abserr(x), dn = (double)(len > 0 ? len : 1), m = x->mag;
  if (arg) {
    r.mag = dn;
  } else if (mm || dimpair) {
    r.mag = m, r.R = x->R, r.A = x->A, r.Asq = x->Asq;
  } else if (!strcmp(op, "sum")) {
    r.mag = dn * m;
    if (is_float(r.dt)) r.A = dn * E + 4 * u * sqrt(dn) * dn * m, r.R = u;
  } else if (!strcmp(op, "mean")) {
    r.mag = m, r.A = E + 4 * u * sqrt(dn) * m, r.R = u;
  } else if (!strcmp(op, "prod")) {
    r.mag = pow(fmax(m, 1), dn);
    if (is_float(r.dt)) r.R = dn * x->R + 2 * dn * u, r.A = dn * (x->A + sqrt(x->Asq)) * pow(fmax(m, 1), dn - 1);
  } else if (!strcmp(op, "logsumexp")) {
    r.mag = m + log(dn + 1), r.R = 4 * u, r.A = E + 4 * u * (m + log(dn + 1) + sqrt(dn));
  } else { /* var, std: sum((x - mean)^2) / (N - c) */
    double Ed = 2 * E + 4 * u * sqrt(dn) * m, md = 2 * m;
    double Av = 2 * md * Ed + 4 * u * sqrt(dn) * md * md;
    if (!exact(x) || true) {
      r.mag = md * md * dn;
      if (!strcmp(op, "var")) r.A = Av, r.R = u;
      else r.Asq = Av, r.R = 2 * u, r.mag = md * sqrt(dn);
    }
  }
  if (!is_float(r.dt)) r.R = r.A = r.Asq = 0;
  if (is_float(r.dt) && r.mag > MAG_MAX) return false;
  if (!push(G, r)) return false;
  if (dimpair && exact(x)) {
    val ri;
    memset(&ri, 0, sizeof ri);
    if (!describe(G, &ri, idx)) return false;
    ri.mag = dn, ri.deps = x->deps;
    push(G, ri);
  }
  return true;
}

/* A float sum or mean over more than 4096 elements per output (the only
 * tensors above MAX_NUMEL: a leaf of up to 2^18+ elements, never put in the
 * pool for other ops), which follows the blocked summation order
 * (docs/ops.md). Either a small pool value x broadcast over a long leading
 * axis (sum(L + x) over it: the gradient of x is a long sum too), or a
 * long leaf reduced over all its axes, its last, its first (non-trailing)
 * or two non-adjacent axes. */
static bool op_long(gen *G) {
  smelt_graph *g = G->g;
  bool mean = rp(&G->r, 0.4), keep = rp(&G->r, 0.3);
  int64_t len = rint_(&G->r, 4097, 9000);
  int rank, naxes, axes[3];
  int64_t dims[SMELT_MAX_RANK];
  val *x = rp(&G->r, 0.5) ? pick(G, p_float, NULL) : NULL;
  if (x && x->numel >= 1 && x->numel <= 8 && x->rank < GEN_RANK) {
    rank = x->rank + 1;
    dims[0] = len;
    memcpy(dims + 1, x->dims, sizeof(int64_t) * (size_t)x->rank);
    naxes = 1, axes[0] = 0;
  } else {
    x = NULL;
    int64_t k = rint_(&G->r, 1, 3), a = rint_(&G->r, 65, 130);
    switch (rint_(&G->r, 0, 4)) {
    case 0: /* all; rarely long enough for two levels of partials */
      if (rp(&G->r, 0.1)) len = rint_(&G->r, 262145, 263000), mean = true;
      rank = 1, dims[0] = len, naxes = 0;
      break;
    case 1: rank = 2, dims[0] = k, dims[1] = len, naxes = 1, axes[0] = -1; break;
    case 2: rank = 2, dims[0] = len, dims[1] = k, naxes = 1, axes[0] = 0; break;
    case 3:
      rank = 3, dims[0] = a, dims[1] = k + 1, dims[2] = len / a + 1, naxes = 2;
      axes[0] = 0, axes[1] = 2;
      break;
    default:
      rank = 3, dims[0] = k, dims[1] = a, dims[2] = len / a + 1, naxes = 2;
      axes[0] = 1, axes[1] = 2;
      break;
    }
  }
  smelt_dtype dt = x ? x->dt : rand_float(G);
  int np = G->np;
  val *l = new_leaf(G, dt, rank, dims, DOM_NORMAL, 0, false);
  if (!l) return false;
  val lv = *l;
  G->np = np; /* too large for other ops: only this reduction reads it */
  double u = uround(dt), m = lv.mag, E = 0;
  uint32_t deps = lv.deps;
  bool special = lv.special;
  smelt_node t = lv.n;
  if (x) {
    t = smelt_add(g, t, x->n);
    m += x->mag, E = abserr(x) + u * m, deps |= x->deps, special = special || x->special;
  }
  int64_t dn = 1;
  for (int d = 0; d < rank; d++) {
    bool red = naxes == 0;
    for (int j = 0; j < naxes; j++) red = red || axes[j] == d || axes[j] + rank == d;
    if (red) dn *= dims[d];
  }
  smelt_node n = (mean ? smelt_mean : smelt_sum)(g, t, naxes, axes, keep);
  val r;
  memset(&r, 0, sizeof r);
  if (!describe(G, &r, n)) return false;
  r.deps = deps, r.special = special, r.gradlike = x && x->gradlike;
  double sq = sqrt((double)dn);
  if (mean) r.mag = m, r.A = E + 4 * u * sq * m, r.R = u;
  else r.mag = (double)dn * m, r.A = (double)dn * E + 4 * u * sq * (double)dn * m, r.R = u;
  if (r.mag > MAG_MAX || r.numel > MAX_NUMEL) return false;
  return push(G, r) != NULL;
}

/* ----------------------------------------------------------------- views */
static void shuffle(gen *G, int *p, int n) {
  for (int i = 0; i < n; i++) p[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)rint_(&G->r, 0, i), t = p[i];
    p[i] = p[j], p[j] = t;
  }
}

/* A view keeps its input's error and bounds; only the shape changes. */
static bool push_like(gen *G, const val *x, smelt_node n) {
  val r = *x;
  if (!describe(G, &r, n)) return false;
  if (r.numel > MAX_NUMEL) return false;
  return push(G, r) != NULL;
}

static bool op_view(gen *G, const char *op) {
  smelt_graph *g = G->g;
  bool needs_rank = strcmp(op, "reshape") && strcmp(op, "unsqueeze") && strcmp(op, "expand") &&
                    strcmp(op, "broadcast_to") && strcmp(op, "squeeze") && strcmp(op, "concat") &&
                    strcmp(op, "stack");
  val *x = operand(G, needs_rank ? p_ranked : p_any, NULL, rand_dtype(G));
  if (!x || (needs_rank && x->rank == 0)) return false;
  int r = x->rank;
  int64_t dims[SMELT_MAX_RANK];
  smelt_node n = SMELT_INVALID;
  if (!strcmp(op, "reshape")) {
    /* Spread the prime factors of numel over k dims, with 1s between. */
    int k = (int)rint_(&G->r, 0, 4);
    int64_t left = x->numel;
    if (k == 0 && left != 1) k = 1;
    for (int i = 0; i < k; i++) dims[i] = 1;
    if (left == 0) {
      if (k == 0) return false;
      for (int i = 0; i < k; i++) dims[i] = rint_(&G->r, 1, 3);
      dims[rint_(&G->r, 0, k - 1)] = 0;
    } else {
      for (int64_t p = 2; left > 1;) {
        if (left % p == 0) {
          dims[rint_(&G->r, 0, k - 1)] *= p;
          left /= p;
        } else {
          p++;
        }
      }
      if (k && x->numel > 0 && rp(&G->r, 0.2)) dims[rint_(&G->r, 0, k - 1)] = -1;
    }
    n = smelt_reshape(g, x->n, k, dims);
  } else if (!strcmp(op, "permute")) {
    int perm[SMELT_MAX_RANK];
    shuffle(G, perm, r);
    for (int i = 0; i < r; i++)
      if (rp(&G->r, 0.2)) perm[i] -= r;
    n = smelt_permute(g, x->n, perm);
  } else if (!strcmp(op, "transpose")) {
    n = smelt_transpose(g, x->n, (int)rint_(&G->r, -r, r - 1), (int)rint_(&G->r, -r, r - 1));
  } else if (!strcmp(op, "expand") || !strcmp(op, "broadcast_to")) {
    int add = r < GEN_RANK ? (int)rint_(&G->r, 0, r < GEN_RANK - 1 ? 2 : 1) : 0;
    for (int i = 0; i < add; i++) dims[i] = rint_(&G->r, 1, 3);
    for (int i = 0; i < r; i++) {
      int64_t d = x->dims[i];
      dims[add + i] = d == 1 && rp(&G->r, 0.6) ? rint_(&G->r, 2, 5) : d;
      if (!strcmp(op, "expand") && dims[add + i] == d && rp(&G->r, 0.3)) dims[add + i] = -1;
    }
    int64_t nn = 1;
    for (int i = 0; i < add + r; i++) nn *= dims[i] < 0 ? x->dims[i - add] : dims[i];
    if (nn > MAX_NUMEL) return false;
    n = (!strcmp(op, "expand") ? smelt_expand : smelt_broadcast_to)(g, x->n, add + r, dims);
  } else if (!strcmp(op, "squeeze")) {
    int axes[SMELT_MAX_RANK], k = 0;
    for (int i = 0; i < r; i++)
      if (x->dims[i] == 1 && rp(&G->r, 0.6)) axes[k++] = i - (rp(&G->r, 0.3) ? r : 0);
    n = smelt_squeeze(g, x->n, k, axes);
  } else if (!strcmp(op, "unsqueeze")) {
    if (r >= GEN_RANK) return false;
    n = smelt_unsqueeze(g, x->n, (int)rint_(&G->r, -(r + 1), r));
  } else if (!strcmp(op, "flatten")) {
    int a = (int)rint_(&G->r, 0, r - 1), b = (int)rint_(&G->r, a, r - 1);
    n = smelt_flatten(g, x->n, a - (rp(&G->r, .3) ? r : 0), b - (rp(&G->r, .3) ? r : 0));
  } else if (!strcmp(op, "slice")) {
    if (rp(&G->r, 0.3)) {
      int a = (int)rint_(&G->r, 0, r - 1);
      int64_t d = x->dims[a];
      n = smelt_slice_axis(g, x->n, a - (rp(&G->r, .3) ? r : 0), rint_(&G->r, -d - 1, d),
                           rp(&G->r, .3) ? SMELT_END : rint_(&G->r, -d - 1, d + 1),
                           rint_(&G->r, 1, 3));
    } else {
      int64_t st[SMELT_MAX_RANK], sp[SMELT_MAX_RANK], step[SMELT_MAX_RANK];
      for (int i = 0; i < r; i++) {
        int64_t d = x->dims[i];
        st[i] = rp(&G->r, 0.4) ? 0 : rint_(&G->r, -d - 2, d + 1);
        sp[i] = rp(&G->r, 0.4) ? SMELT_END : rint_(&G->r, -d - 1, d + 2);
        step[i] = rp(&G->r, 0.5) ? 1 : rint_(&G->r, 1, 3);
      }
      n = smelt_slice(g, x->n, st, sp, rp(&G->r, 0.2) ? NULL : step);
    }
  } else if (!strcmp(op, "unfold")) {
    /* windows of size 0..n (overlapping, adjacent or with gaps) */
    if (r >= GEN_RANK) return false;
    int a = (int)rint_(&G->r, 0, r - 1);
    int64_t d = x->dims[a];
    int64_t size = rp(&G->r, 0.08) ? 0 : rint_(&G->r, d > 0 ? 1 : 0, d < 4 ? d : 4);
    int64_t step = rp(&G->r, 0.1) ? rint_(&G->r, 4, 9) : rint_(&G->r, 1, 3);
    if (size > d) size = d;
    if (((d - size) / step + 1) * size * (x->numel / (d ? d : 1)) > MAX_NUMEL) return false;
    n = smelt_unfold(g, x->n, a - (rp(&G->r, .3) ? r : 0), size, step);
  } else if (!strcmp(op, "flip")) {
    int perm[SMELT_MAX_RANK], axes[SMELT_MAX_RANK];
    shuffle(G, perm, r);
    int k = (int)rint_(&G->r, 1, r);
    for (int i = 0; i < k; i++) axes[i] = perm[i] - (rp(&G->r, .3) ? r : 0);
    n = smelt_flip(g, x->n, k, axes);
  } else if (!strcmp(op, "pad")) {
    int64_t lo[SMELT_MAX_RANK], hi[SMELT_MAX_RANK], nn = 1;
    for (int i = 0; i < r; i++) {
      lo[i] = rp(&G->r, 0.5) ? 0 : rint_(&G->r, 1, 2);
      hi[i] = rp(&G->r, 0.5) ? 0 : rint_(&G->r, 1, 2);
      nn *= x->dims[i] + lo[i] + hi[i];
    }
    if (nn > MAX_NUMEL) return false;
    double v;
    if (x->dt == SMELT_BOOL) v = (double)rint_(&G->r, 0, 1);
    else if (!is_float(x->dt)) v = (double)rint_(&G->r, -3, 3);
    else v = (double[]){0, 1.5, -2, NAN, -INFINITY}[rint_(&G->r, 0, 4)];
    val rr = *x;
    if (!describe(G, &rr, smelt_pad(g, x->n, lo, hi, v))) return false;
    if (!isfinite(v)) rr.special = true;
    else if (fabs(v) > rr.mag) rr.mag = fabs(v);
    return push(G, rr) != NULL;
  } else if (!strcmp(op, "concat") || !strcmp(op, "stack")) {
    bool st = !strcmp(op, "stack");
    if (!st && r == 0) return false;
    if (st && r >= GEN_RANK) return false;
    int axis = st ? (int)rint_(&G->r, -(r + 1), r) : (int)rint_(&G->r, -r, r - 1);
    int k = (int)rint_(&G->r, 2, 3);
    smelt_node xs[3] = {x->n};
    val acc = *x;
    int64_t total = x->numel;
    int a = axis < 0 ? axis + r : axis;
    for (int i = 1; i < k; i++) {
      int64_t d2[SMELT_MAX_RANK];
      memcpy(d2, x->dims, sizeof d2);
      if (!st) d2[a] = rint_(&G->r, 0, 4);
      smelt_dtype dt = rp(&G->r, 0.7) ? x->dt : rand_dtype(G);
      val *y = NULL;
      /* A pool value of the right shape when there is one. */
      for (int j = G->np - 1; j >= 0 && !y; j--) {
        val *c = &G->pool[j];
        if (c->rank != r || c == x || !rp(&G->r, 0.5)) continue;
        bool ok = true;
        for (int q = 0; q < r; q++)
          if (c->dims[q] != x->dims[q] && (st || q != a)) ok = false;
        if (ok) y = c;
      }
      if (!y) y = new_input(G, dt, r, d2);
      if (!y) return false;
      xs[i] = y->n;
      total += y->numel;
      acc.mag = fmax(acc.mag, y->mag);
      acc.R = fmax(acc.R, y->R), acc.A = fmax(acc.A, y->A), acc.Asq = fmax(acc.Asq, y->Asq);
      acc.special |= y->special, acc.gradlike |= y->gradlike, acc.deps |= y->deps;
      if (!is_float(x->dt) && is_float(y->dt)) acc.lo = 0;
      if (is_float(x->dt) != is_float(y->dt) || x->dt == SMELT_BOOL || y->dt == SMELT_BOOL)
        acc.lo = 0;
    }
    if (total > MAX_NUMEL) return false;
    n = (st ? smelt_stack : smelt_concat)(g, k, xs, axis);
    if (!describe(G, &acc, n)) return false;
    acc.lo = fmin(acc.lo, x->lo);
    if (!is_float(acc.dt)) acc.R = acc.A = acc.Asq = 0;
    if (is_float(acc.dt) && acc.mag > MAG_MAX) return false;
    return push(G, acc) != NULL;
  }
  return push_like(G, x, n);
}

/* ---------------------------------------------------------------- matmul */
static int64_t mm_dim(gen *G) {
  static const int64_t d[] = {1, 1, 2, 3, 4, 5, 7, 8, 8, 11, 13, 16};
  return d[rint_(&G->r, 0, 11)];
}

static bool op_matmul(gen *G) {
  smelt_graph *g = G->g;
  val *a = rp(&G->r, 0.6) ? pick(G, p_ranked_nonbool, NULL) : NULL;
  int64_t K;
  if (a && a->dims[a->rank - 1] > 16) a = NULL;
  if (!a) {
    int nb = (int)rint_(&G->r, 0, 2);
    int64_t d[SMELT_MAX_RANK];
    int rank = rp(&G->r, 0.15) ? 1 : nb + 2;
    for (int i = 0; i < rank; i++) d[i] = i < rank - 2 ? rint_(&G->r, 1, 3) : mm_dim(G);
    smelt_dtype dt = rp(&G->r, 0.8) ? rand_float(G) : (rp(&G->r, .5) ? SMELT_I32 : SMELT_I64);
    if (rank >= 2 && rp(&G->r, 0.3)) { /* a transposed operand */
      int64_t t = d[rank - 1];
      d[rank - 1] = d[rank - 2], d[rank - 2] = t;
      val *at = new_input(G, dt, rank, d);
      if (!at) return false;
      val tv = *at;
      if (!describe(G, &tv, smelt_transpose(g, at->n, -1, -2))) return false;
      a = push(G, tv);
    } else {
      a = new_input(G, dt, rank, d);
    }
    if (!a) return false;
  }
  K = a->dims[a->rank - 1];
  /* b: [K] or [..batch, K, N], batch dims broadcasting against a's. */
  int64_t bd[SMELT_MAX_RANK];
  int brank;
  int64_t N = mm_dim(G);
  if (rp(&G->r, 0.15)) {
    brank = 1, bd[0] = K;
  } else {
    int abatch = a->rank > 2 ? a->rank - 2 : 0;
    int pr;
    int64_t pd[SMELT_MAX_RANK];
    partner_shape(G, abatch, a->dims, &pr, pd);
    if (pr + 2 > GEN_RANK + 1) pr = abatch, memcpy(pd, a->dims, sizeof(int64_t) * (size_t)abatch);
    brank = pr + 2;
    memcpy(bd, pd, sizeof(int64_t) * (size_t)pr);
    bd[pr] = K, bd[pr + 1] = N;
  }
  smelt_dtype bdt = rp(&G->r, 0.75) ? a->dt : rp(&G->r, 0.7) ? rand_float(G) : SMELT_I64;
  val *b;
  if (brank >= 2 && rp(&G->r, 0.3)) {
    int64_t t = bd[brank - 1];
    bd[brank - 1] = bd[brank - 2], bd[brank - 2] = t;
    val *bt = new_input(G, bdt, brank, bd);
    if (!bt) return false;
    val tv = *bt;
    if (!describe(G, &tv, smelt_transpose(g, bt->n, -1, -2))) return false;
    b = push(G, tv);
  } else {
    b = new_input(G, bdt, brank, bd);
  }
  if (!b || b->dt == SMELT_BOOL) return false;
  val r;
  memset(&r, 0, sizeof r);
  if (!describe(G, &r, smelt_matmul(g, a->n, b->n))) return false;
  if (r.numel > MAX_NUMEL) return false;
  double k = (double)(K ? K : 1), u = uround(r.dt);
  r.deps = a->deps | b->deps, r.special = a->special || b->special;
  r.gradlike = a->gradlike || b->gradlike;
  r.mag = k * a->mag * b->mag;
  if (is_float(r.dt)) {
    r.R = u;
    r.A = k * (abserr(a) * b->mag + abserr(b) * a->mag) + 4 * u * sqrt(k) * k * a->mag * b->mag;
    if (r.mag > MAG_MAX) return false;
  } else {
    r.mag = fmin(r.mag, 1e300);
  }
  return push(G, r) != NULL;
}

/* -------------------------------------------------------------- indexing */
static bool op_index(gen *G, const char *op) {
  smelt_graph *g = G->g;
  val r;
  memset(&r, 0, sizeof r);
  if (!strcmp(op, "one_hot")) {
    int rank;
    int64_t d[SMELT_MAX_RANK];
    rand_shape(G, &rank, d, 64);
    int64_t c = rint_(&G->r, 1, 6);
    val *ix = new_index(G, rank, d, c);
    if (!ix) return false;
    if (!describe(G, &r, smelt_one_hot(g, ix->n, c))) return false;
    r.mag = 1, r.deps = ix->deps;
    return push(G, r) != NULL;
  }
  if (!strcmp(op, "embedding")) {
    val *w = pick(G, p_float, NULL);
    if (!w || w->rank != 2 || w->dims[0] == 0 || rp(&G->r, 0.3)) {
      int64_t d[2] = {rint_(&G->r, 1, 8), rint_(&G->r, 1, 6)};
      w = new_input(G, rand_float(G), 2, d);
      if (!w) return false;
    }
    int rank;
    int64_t d[SMELT_MAX_RANK];
    rand_shape(G, &rank, d, 32);
    if (rank > 3) rank = 3;
    val *ix = new_index(G, rank, d, w->dims[0]);
    if (!ix) return false;
    r = *w;
    if (!describe(G, &r, smelt_embedding(g, w->n, ix->n))) return false;
    if (r.numel > MAX_NUMEL) return false;
    r.deps |= ix->deps;
    return push(G, r) != NULL;
  }
  val *x = operand(G, p_ranked, NULL, rand_dtype(G));
  if (!x || x->rank == 0) return false;
  int rk = x->rank;
  int ax = (int)rint_(&G->r, 0, rk - 1);
  int axarg = ax - (rp(&G->r, 0.3) ? rk : 0);
  int64_t size = x->dims[ax];
  if (!strcmp(op, "index_select")) {
    int64_t len = rint_(&G->r, 0, 6);
    if (size == 0) len = 0;
    val *ix = new_index(G, 1, &len, size ? size : 1);
    if (!ix) return false;
    r = *x;
    if (!describe(G, &r, smelt_index_select(g, x->n, axarg, ix->n))) return false;
    if (r.numel > MAX_NUMEL) return false;
    r.deps |= ix->deps;
    return push(G, r) != NULL;
  }
  if (!strcmp(op, "take_along_axis") && exact(x) && size > 0 && rp(&G->r, 0.3)) {
    /* The classic pairing: values at the argmax. */
    smelt_node am = smelt_argmax(g, x->n, axarg, true);
    r = *x;
    if (!describe(G, &r, smelt_take_along_axis(g, x->n, am, axarg))) return false;
    return push(G, r) != NULL;
  }
  int64_t id[SMELT_MAX_RANK];
  for (int d = 0; d < rk; d++) {
    if (d == ax) id[d] = rint_(&G->r, 1, 5);
    else if (!strcmp(op, "take_along_axis")) id[d] = x->dims[d] == 1 ? rint_(&G->r, 1, 3) : (rp(&G->r, .3) ? 1 : x->dims[d]);
    else id[d] = rp(&G->r, 0.6) ? x->dims[d] : rint_(&G->r, 0, x->dims[d]);
  }
  if (size == 0) id[ax] = 0;
  int64_t in = numel_of(rk, id);
  if (in > MAX_NUMEL) return false;
  val *ix = new_index(G, rk, id, size ? size : 1);
  if (!ix) return false;
  smelt_node n;
  if (!strcmp(op, "gather")) {
    n = smelt_gather(g, x->n, axarg, ix->n);
    r = *x;
  } else if (!strcmp(op, "take_along_axis")) {
    n = smelt_take_along_axis(g, x->n, ix->n, axarg);
    r = *x;
  } else { /* scatter_add: x + src summed into the indexed places */
    if (x->dt == SMELT_BOOL) return false;
    val *src = new_input(G, rp(&G->r, 0.8) ? x->dt : rand_dtype(G), rk, id);
    if (!src || src->dt == SMELT_BOOL) return false;
    n = smelt_scatter_add(g, x->n, axarg, ix->n, src->n);
    r = *x;
    if (!describe(G, &r, n)) return false;
    double c = (double)id[ax], u = uround(r.dt);
    r.mag = x->mag + c * src->mag;
    r.deps |= src->deps, r.special |= src->special, r.gradlike |= src->gradlike;
    r.lo = 0;
    if (is_float(r.dt)) {
      r.R = u;
      r.A = abserr(x) + c * abserr(src) + 4 * u * c * r.mag;
      r.Asq = 0;
      if (r.mag > MAG_MAX) return false;
    } else {
      r.R = r.A = r.Asq = 0;
      r.mag = fmin(r.mag, 1e300);
    }
    r.deps |= ix->deps;
    return push(G, r) != NULL;
  }
  if (!describe(G, &r, n)) return false;
  r.deps |= ix->deps;
  return push(G, r) != NULL;
}

/* --------------------------------------------------------------- sources */
static bool op_source(gen *G, const char *op) {
  smelt_graph *g = G->g;
  val r;
  memset(&r, 0, sizeof r);
  smelt_node n = SMELT_INVALID;
  int rank;
  int64_t d[SMELT_MAX_RANK];
  rand_shape(G, &rank, d, 128);
  if (!strcmp(op, "arange")) {
    smelt_dtype dt = rand_dtype(G);
    if (dt == SMELT_BOOL) dt = SMELT_I64;
    double start = (double)rint_(&G->r, -5, 5), step = (double)rint_(&G->r, 1, 3);
    if (is_float(dt) && rp(&G->r, 0.5)) start += 0.5, step = (double[]){0.25, 0.5, 1.5, 0.1}[rint_(&G->r, 0, 3)];
    if (rp(&G->r, 0.3)) step = -step;
    double stop = start + step * (double)rint_(&G->r, 0, 12) + (rp(&G->r, .5) ? step / 2 : 0);
    n = smelt_arange(g, dt, start, stop, step);
    r.mag = fmax(fabs(start), fabs(stop)) + fabs(step);
  } else if (!strcmp(op, "linspace")) {
    smelt_dtype dt = rp(&G->r, 0.8) ? rand_float(G) : SMELT_I64;
    double a = (double)rint_(&G->r, -8, 8) / 2, b = (double)rint_(&G->r, -8, 8) / 2;
    n = smelt_linspace(g, dt, a, b, rint_(&G->r, 0, 9));
    r.mag = fmax(fabs(a), fabs(b));
  } else if (!strcmp(op, "eye")) {
    n = smelt_eye(g, rand_dtype(G), rint_(&G->r, 0, 6), rint_(&G->r, 1, 6));
    r.mag = 1;
  } else if (!strcmp(op, "rand") || !strcmp(op, "randn")) {
    smelt_dtype dt = rand_float(G);
    uint64_t seed = rnext(&G->r) % 100000;
    if (!strcmp(op, "rand")) {
      n = smelt_rand(g, dt, rank, d, seed), r.mag = 1;
    } else {
      /* Box-Muller uses log and cos: a few ulps apart across backends. */
      n = smelt_randn(g, dt, rank, d, seed), r.mag = 8;
      r.R = 4 * uround(dt), r.A = 16 * uround(dt);
    }
  } else if (!strcmp(op, "full")) {
    smelt_dtype dt = rand_dtype(G);
    double v = dt == SMELT_BOOL ? 1 : is_float(dt) ? 2.5 : -3;
    int k = (int)rint_(&G->r, 0, 2);
    n = k == 0 ? smelt_full(g, dt, rank, d, v) : k == 1 ? smelt_zeros(g, dt, rank, d)
                                                        : smelt_ones(g, dt, rank, d);
    r.mag = 3;
  } else { /* const: an array constant, or a rank-0 one */
    smelt_dtype dt = rand_dtype(G);
    if (rp(&G->r, 0.3)) {
      n = smelt_const(g, dt, dt == SMELT_BOOL ? 1 : is_float(dt) ? -1.25 : 4);
      r.mag = 4;
    } else {
      if (numel_of(rank, d) > 64) return false;
      leaf tmp;
      memset(&tmp, 0, sizeof tmp);
      tmp.dt = dt, tmp.rank = rank, tmp.dom = DOM_NORMAL, tmp.scale = 2;
      memcpy(tmp.dims, d, sizeof d);
      rng sub = {rnext(&G->r)};
      fill_leaf(&sub, &tmp);
      if (!tmp.data) return false;
      n = smelt_const_array(g, dt, rank, d, tmp.data);
      free(tmp.data);
      r.mag = is_float(dt) ? 8 : 9;
    }
  }
  if (!describe(G, &r, n)) return false;
  return push(G, r) != NULL;
}

/* -------------------------------------------------------------------- nn */
static bool op_nn(gen *G, const char *op) {
  smelt_graph *g = G->g;
  val r;
  memset(&r, 0, sizeof r);
  if (!strcmp(op, "cross_entropy")) {
    val *lg = pick(G, p_float, NULL);
    if (!lg || lg->rank < 1 || lg->rank > 2 || lg->dims[lg->rank - 1] == 0 || rp(&G->r, 0.3)) {
      int64_t d[2] = {rint_(&G->r, 1, 6), rint_(&G->r, 1, 7)};
      int rank = rp(&G->r, 0.2) ? 1 : 2;
      lg = new_input(G, rand_float(G), rank, rank == 1 ? d + 1 : d);
      if (!lg) return false;
    }
    int64_t C = lg->dims[lg->rank - 1];
    val *lab = new_index(G, lg->rank - 1, lg->dims, C);
    if (!lab) return false;
    if (!describe(G, &r, smelt_cross_entropy(g, lg->n, lab->n))) return false;
    double u = uround(r.dt);
    r.deps = lg->deps | lab->deps, r.special = lg->special, r.gradlike = lg->gradlike;
    r.mag = 2 * lg->mag + log((double)C) + 1;
    r.R = 4 * u, r.A = 2 * abserr(lg) + 8 * u * (lg->mag + log((double)C) + 1);
    return push(G, r) != NULL;
  }
  val *x = operand(G, p_any, NULL, rand_float(G));
  if (!x) return false;
  if (!(x = as_float(G, x))) return false;
  double u = uround(x->dt), E = abserr(x);
  if (!strcmp(op, "mse_loss")) {
    val *b = partner(G, x, rp(&G->r, 0.7) ? x->dt : rand_float(G));
    if (!b || !(b = as_float(G, b))) return false;
    if (!describe(G, &r, smelt_mse_loss(g, x->n, b->n))) return false;
    double md = x->mag + b->mag, n = (double)(x->numel > b->numel ? x->numel : b->numel);
    u = uround(r.dt);
    r.deps = x->deps | b->deps, r.special = x->special || b->special;
    r.gradlike = x->gradlike || b->gradlike;
    r.mag = md * md, r.R = 2 * u;
    r.A = 2 * md * (E + abserr(b)) + 4 * u * sqrt(n + 1) * md * md;
    return push(G, r) != NULL;
  }
  if (!strcmp(op, "dropout")) {
    double p = (double[]){0, 0.25, 0.5, 1}[rint_(&G->r, 0, 3)];
    val rr = *x;
    if (!describe(G, &rr, smelt_dropout(g, x->n, p, rnext(&G->r) % 1000, rp(&G->r, 0.8))))
      return false;
    if (p > 0 && p < 1) {
      rr.mag = x->mag / (1 - p);
      if (!exact(x)) rr.R = x->R + u, rr.A = x->A / (1 - p), rr.Asq = x->Asq / ((1 - p) * (1 - p));
    }
    rr.lo = 0;
    return push(G, rr) != NULL;
  }
  if (x->rank == 0) return false;
  int ax = (int)rint_(&G->r, -x->rank, x->rank - 1);
  int64_t n = x->dims[ax < 0 ? ax + x->rank : ax];
  bool soft = !strcmp(op, "softmax");
  if (!describe(G, &r, (soft ? smelt_softmax : smelt_log_softmax)(g, x->n, ax))) return false;
  r.deps = x->deps, r.special = x->special, r.gradlike = x->gradlike;
  double ln = log((double)(n ? n : 1)) + 1;
  if (soft) {
    r.mag = 1, r.R = 2 * E + (8 + 2 * sqrt((double)n)) * u, r.A = 4 * u;
  } else {
    r.mag = 2 * x->mag + ln, r.R = 4 * u, r.A = 2 * E + 8 * u * (x->mag + ln);
  }
  return push(G, r) != NULL;
}

/* ------------------------------------------------ convolution, pooling */
/* A float [N, C, H, W] or [C, H, W] (rank rlo..rhi) operand: a pool value
 * of moderate size, or a new input with small channels and spatial dims
 * up to 8. */
static val *conv_operand(gen *G, int rlo, int rhi) {
  for (int t = 0; t < 4 && rp(&G->r, 0.6); t++) {
    val *c = pick(G, p_float, NULL);
    if (c && c->rank >= rlo && c->rank <= rhi && c->numel <= 1024) return c;
  }
  int rank = (int)rint_(&G->r, rlo, rhi);
  int64_t d[4];
  for (int i = 0; i < rank; i++)
    d[i] = i >= rank - 2 ? rint_(&G->r, 1, 8) : rint_(&G->r, 1, i == rank - 3 ? 4 : 2);
  if (rank == 4 && rp(&G->r, 0.02)) d[0] = 0; /* an empty batch */
  return new_input(G, rand_float(G), rank, d);
}

/* A window over the last two axes of x with sizes hw: kernel, stride,
 * padding, dilation that the builders accept (padding at most half the
 * window for pooling; the window fits the padded input); false when none
 * was found. out: the output size (PyTorch's rule, ceil_mode included). */
typedef struct win2 {
  int64_t k[2], s[2], p[2], d[2], out[2];
  bool default_stride;
} win2;

static bool rand_window(gen *G, const int64_t hw[2], bool pool, bool dilate, bool ceil_mode,
                        win2 *w) {
  w->default_stride = pool && rp(&G->r, 0.3);
  for (int i = 0; i < 2; i++) {
    bool ok = false;
    for (int t = 0; t < 8 && !ok; t++) {
      int64_t k = rp(&G->r, 0.1) ? rint_(&G->r, 4, 5) : rint_(&G->r, 1, 3);
      int64_t d = dilate && rp(&G->r, 0.25) ? rint_(&G->r, 2, 3) : 1;
      int64_t span = d * (k - 1) + 1;
      int64_t p = rp(&G->r, 0.5) ? 0 : rint_(&G->r, 1, pool ? (span / 2 > 0 ? span / 2 : 1) : 2);
      if (pool && p > span / 2) p = span / 2;
      int64_t s = w->default_stride ? k : rp(&G->r, 0.5) ? 1 : rint_(&G->r, 2, 3);
      int64_t room = hw[i] + 2 * p - span;
      if (room < 0) continue;
      int64_t o = (ceil_mode ? (room + s - 1) / s : room / s) + 1;
      if (ceil_mode && (o - 1) * s >= hw[i] + p) o--;
      w->k[i] = k, w->s[i] = s, w->p[i] = p, w->d[i] = d, w->out[i] = o;
      ok = true;
    }
    if (!ok) return false;
  }
  return true;
}

/* conv2d (im2col: a matmul over K = C/groups * KH * KW), max_pool2d and
 * avg_pool2d (a max and a mean over the window), batch_norm (batch or
 * running statistics, with their updates in training programs). */
static bool op_conv(gen *G, const char *op) {
  smelt_graph *g = G->g;
  bool bn = !strcmp(op, "batch_norm");
  val *x = conv_operand(G, bn ? 2 : 3, 4);
  if (!x || !(x = as_float(G, x))) return false;
  int r = x->rank;
  smelt_dtype dt = x->dt;
  double u = uround(dt), E = abserr(x), m = x->mag;
  val res;
  memset(&res, 0, sizeof res);
  smelt_node n = SMELT_INVALID;
  uint32_t deps = x->deps;
  bool special = x->special, gradlike = x->gradlike;
  if (bn) {
    int64_t c = x->dims[1], per = c ? x->numel / c : 0;
    if (c == 0 || x->numel > 2048) return false;
    bool training = per > 1 && rp(&G->r, 0.8);
    bool running = !training || rp(&G->r, 0.5);
    double momentum = (double[]){0, 0.1, 0.5, 1}[rint_(&G->r, 0, 3)];
    double eps = (double[]){1e-5, 1e-3, 0.1, 1}[rint_(&G->r, 0, 3)];
    val *w = rp(&G->r, 0.5) ? new_leaf(G, dt, 1, &c, DOM_NORMAL, 0, true) : NULL;
    val *b = rp(&G->r, 0.5) ? new_leaf(G, dt, 1, &c, DOM_NORMAL, 0, true) : NULL;
    smelt_node rs[2] = {SMELT_INVALID, SMELT_INVALID};
    if (running) {
      /* params (PyTorch's buffers): the mean ~ N(0, 1), the variance in [0.5, 2] */
      for (int k = 0; k < 2; k++) {
        if (G->nl == MAX_LEAVES) return false;
        leaf *l = &G->lv[G->nl];
        memset(l, 0, sizeof *l);
        l->dt = dt, l->rank = 1, l->dims[0] = c, l->param = true, l->nograd = true;
        snprintf(l->name, sizeof l->name, "%s%d", k ? "rv" : "rm", G->nl);
        l->n = rs[k] = smelt_param(g, l->name, dt, 1, &c,
                                   k ? smelt_init_uniform(0.5, 2, rnext(&G->r) % 1000)
                                     : smelt_init_normal(0, 1, rnext(&G->r) % 1000));
        val *v = add_val(G, l->n, k ? 2 : 6, 1u << G->nl);
        if (!v) return false;
        G->nl++;
      }
    }
    bool want_upd = training && running && G->cfg->update_on &&
                    G->cfg->target != SMELT_TARGET_INTERP && G->nupd + 2 <= MAX_UPD;
    smelt_node upd[2];
    n = smelt_batch_norm(g, x->n, w ? w->n : SMELT_INVALID, b ? b->n : SMELT_INVALID, rs[0], rs[1],
                         training, momentum, eps, want_upd ? upd : NULL);
    if (!smelt_node_valid(n)) return false;
    if (want_upd) G->upd[G->nupd++] = upd[0], G->upd[G->nupd++] = upd[1];
    /* Batch statistics make the output invariant to a per-channel scale
     * and shift of x: gradients through x with respect to what only
     * scales or shifts its channels (a conv bias, an earlier batch_norm's
     * weight) are exactly 0 and come out as rounding residue amplified by
     * 1 / sqrt(var + eps), beyond any absolute floor. No gradients with
     * respect to the leaves x depends on, then (the gradient checks of
     * tests/test_conv.c cover batch_norm's backward on every target). */
    if (training) G->nograd_deps |= x->deps;
    /* Batch statistics: y = d * rsqrt(var + eps) with d = x - mean and
     * |y| <= sqrt(n). An error Ed of d moves y by Ed / sqrt(var + eps)
     * directly and, through the variance (2 Ed sigma), by at most
     * sqrt(n) Ed / sqrt(eps) more; the variance's own rounding by 2 u n.
     * Running statistics: |x - rm| / sqrt(rv + eps) with rv >= 0.5. */
    double dn = (double)per, se = sqrt(eps), magy = 0, Ay = 0;
    if (training) {
      double Ed = 2 * E + 4 * u * sqrt(dn) * m + 2 * u * m;
      magy = sqrt(dn);
      Ay = (1 + sqrt(dn)) * Ed / se + (2 * dn + 8) * u + 4 * u * magy;
    }
    if (running) {
      double sv = sqrt(0.5 + eps), my = (m + 6) / sv;
      magy = fmax(magy, my);
      Ay = fmax(Ay, (E + u * (m + 6)) / sv + 4 * u * my);
      deps |= 3u << (G->nl - 2);
    }
    if (w) {
      Ay = Ay * w->mag + abserr(w) * magy + u * magy * w->mag;
      magy *= w->mag;
      deps |= w->deps, special |= w->special, gradlike |= w->gradlike;
    }
    if (b) {
      magy += b->mag;
      Ay += abserr(b) + u * magy;
      deps |= b->deps, special |= b->special, gradlike |= b->gradlike;
    }
    if (!describe(G, &res, n)) return false;
    res.mag = magy, res.A = Ay, res.R = u;
  } else {
    int64_t hw[2] = {x->dims[r - 2], x->dims[r - 1]};
    bool maxp = !strcmp(op, "max_pool2d"), conv = !strcmp(op, "conv2d");
    bool ceil_mode = !conv && rp(&G->r, 0.4);
    win2 w;
    if (!rand_window(G, hw, !conv, !strcmp(op, "avg_pool2d") ? false : true, ceil_mode, &w))
      return false;
    int64_t batch = r == 4 ? x->dims[0] : 1, c = x->dims[r - 3];
    if (conv) {
      /* groups: a divisor of the channels; 1-3 outputs per group */
      int64_t div[8], nd = 0;
      for (int64_t k = 1; k <= c && nd < 8; k++)
        if (c % k == 0) div[nd++] = k;
      int64_t groups = nd ? div[rint_(&G->r, 0, nd - 1)] : 1;
      int64_t o = groups * rint_(&G->r, 1, 3), cg = c / groups;
      if (batch * o * w.out[0] * w.out[1] > MAX_NUMEL) return false;
      int64_t wd[4] = {o, cg, w.k[0], w.k[1]};
      val *wt = new_leaf(G, dt, 4, wd, DOM_NORMAL, 0, true);
      val *b = wt && rp(&G->r, 0.5) ? new_leaf(G, dt, 1, &o, DOM_NORMAL, 0, true) : NULL;
      if (!wt) return false;
      n = smelt_conv2d(g, x->n, wt->n, b ? b->n : SMELT_INVALID, w.s, w.p, w.d, groups);
      if (!describe(G, &res, n)) return false;
      double K = (double)(cg * w.k[0] * w.k[1]);
      res.mag = K * m * wt->mag + (b ? b->mag : 0);
      res.R = u;
      res.A = K * (E * wt->mag + abserr(wt) * m) + 4 * u * sqrt(K) * K * m * wt->mag +
              (b ? abserr(b) + u * res.mag : 0);
      deps |= wt->deps | (b ? b->deps : 0);
      special |= wt->special || (b && b->special);
      gradlike |= wt->gradlike || (b && b->gradlike);
    } else {
      if (batch * c * w.out[0] * w.out[1] > MAX_NUMEL ||
          batch * c * w.out[0] * w.out[1] * w.k[0] * w.k[1] > 4 * MAX_NUMEL)
        return false;
      const int64_t *st = w.default_stride ? NULL : w.s;
      if (maxp) {
        n = smelt_max_pool2d(g, x->n, w.k, st, w.p, w.d, ceil_mode);
        if (!describe(G, &res, n)) return false;
        res.mag = m, res.R = x->R, res.A = x->A, res.Asq = x->Asq;
      } else {
        n = smelt_avg_pool2d(g, x->n, w.k, st, w.p, ceil_mode, rp(&G->r, 0.6));
        if (!describe(G, &res, n)) return false;
        double k = (double)(w.k[0] * w.k[1]);
        res.mag = m, res.R = u, res.A = E + 4 * u * sqrt(k) * m;
      }
    }
  }
  res.deps = deps, res.special = special, res.gradlike = gradlike, res.lo = 0;
  if (res.numel > MAX_NUMEL || res.mag > MAG_MAX) return false;
  return push(G, res) != NULL;
}

/* ------------------------------------------------------ gradients, updates */
/* A random scalar loss of a float value that depends on float leaves, and
 * its gradients with respect to some of those leaves, as outputs. */
static bool add_grads(gen *G) {
  smelt_graph *g = G->g;
  val *y = NULL;
  for (int t = 0; t < 8 && !y; t++) {
    val *c = pick(G, p_float, NULL);
    uint32_t fl = 0;
    for (int i = 0; c && i < G->nl; i++)
      if ((c->deps >> i & 1) && is_float(G->lv[i].dt)) fl |= 1u << i;
    if (c && fl) y = c;
  }
  if (!y) return false;
  smelt_node loss;
  switch (rint_(&G->r, 0, 3)) {
  case 0: loss = smelt_sum(g, y->n, 0, NULL, false); break;
  case 1: loss = smelt_mean(g, y->n, 0, NULL, false); break;
  case 2: loss = smelt_sum(g, smelt_mul(g, y->n, y->n), 0, NULL, false); break;
  default: {
    /* weights make each element's gradient different */
    val *w = new_leaf(G, y->dt, y->rank, y->dims, DOM_NORMAL, 0, false);
    if (!w) return false;
    loss = smelt_mean(g, smelt_mul(g, y->n, w->n), 0, NULL, false);
    break;
  }
  }
  smelt_node wrt[MAX_LEAVES], grads[MAX_LEAVES];
  int idx[MAX_LEAVES], k = 0;
  for (int i = 0; i < G->nl; i++) {
    if (!is_float(G->lv[i].dt) || G->lv[i].dom == DOM_EXPO || G->lv[i].nograd ||
        (G->nograd_deps >> i & 1))
      continue;
    bool dep = y->deps >> i & 1;
    if ((dep && rp(&G->r, 0.8)) || (!dep && rp(&G->r, 0.1))) idx[k] = i, wrt[k++] = G->lv[i].n;
  }
  if (!k || G->nout + k > MAX_OUTS) return false;
  if (smelt_grad(g, loss, k, wrt, grads)) return false;
  /* Sometimes a gradient of a gradient (double backward). */
  if (rp(&G->r, 0.15) && G->nout + k + 1 <= MAX_OUTS) {
    smelt_node l2 = smelt_sum(g, smelt_mul(g, grads[0], grads[0]), 0, NULL, false);
    smelt_node gg;
    if (smelt_grad(g, l2, 1, &wrt[0], &gg)) return false;
    out *o = &G->outs[G->nout++];
    char lname[sizeof G->lv[0].name];
    memcpy(lname, G->lv[idx[0]].name, sizeof lname);
    snprintf(o->name, sizeof o->name, "dd_%s", lname);
    memset(&o->v, 0, sizeof o->v);
    if (!describe(G, &o->v, smelt_output(g, o->name, gg))) return false;
    o->v.gradlike = true;
  }
  for (int i = 0; i < k; i++) {
    out *o = &G->outs[G->nout++];
    char lname[sizeof G->lv[0].name];
    memcpy(lname, G->lv[idx[i]].name, sizeof lname);
    snprintf(o->name, sizeof o->name, "d_%s", lname);
    memset(&o->v, 0, sizeof o->v);
    if (!describe(G, &o->v, smelt_output(g, o->name, grads[i]))) return false;
    o->v.gradlike = true;
  }
  /* Optimizer updates of the params among them (compared after runs). */
  if (G->cfg->update_on && G->cfg->target != SMELT_TARGET_INTERP && rp(&G->r, 0.6)) {
    smelt_node ps[MAX_LEAVES], gs[MAX_LEAVES];
    int np = 0;
    for (int i = 0; i < k; i++)
      if (G->lv[idx[i]].param) ps[np] = wrt[i], gs[np++] = grads[i];
    if (np) {
      smelt_node upd[SMELT_OPTIM_MAX_UPDATES(MAX_LEAVES)];
      int nu;
      if (rp(&G->r, 0.5)) {
        smelt_sgd_options o = smelt_sgd_defaults(0.1);
        o.momentum = rp(&G->r, 0.5) ? 0.9 : 0;
        o.nesterov = o.momentum > 0 && rp(&G->r, 0.5);
        o.weight_decay = rp(&G->r, 0.3) ? 0.01 : 0;
        nu = smelt_sgd(g, NULL, np, ps, gs, &o, upd);
      } else {
        smelt_adam_options o = rp(&G->r, 0.5) ? smelt_adam_defaults() : smelt_adamw_defaults();
        nu = smelt_adam(g, NULL, np, ps, gs, &o, upd);
        /* Adam's step is about lr * sign(grad): a gradient that is a
         * rounding residue near 0 may flip it. */
        G->upd_atol = 2 * o.lr;
      }
      if (nu < 0 || G->nupd + nu > MAX_UPD) return false;
      memcpy(G->upd + G->nupd, upd, sizeof(smelt_node) * (size_t)nu);
      G->nupd += nu;
    }
  }
  return true;
}

/* ----------------------------------------------------------- a whole graph */
static bool op_enabled(const config *c, int i) { return c->ops_on[i]; }

static bool apply_op(gen *G, int i) {
  const char *name = OPS[i].name, *grp = OPS[i].group;
  if (!strcmp(grp, "unary")) return op_unary(G, name);
  if (!strcmp(grp, "binary") || !strcmp(grp, "compare") || !strcmp(grp, "logical"))
    return op_binary(G, name);
  if (!strcmp(grp, "where")) return op_where(G);
  if (!strcmp(grp, "reduce")) return op_reduce(G, name);
  if (!strcmp(grp, "view")) return op_view(G, name);
  if (!strcmp(grp, "matmul")) return op_matmul(G);
  if (!strcmp(grp, "index")) return op_index(G, name);
  if (!strcmp(grp, "source")) return op_source(G, name);
  if (!strcmp(grp, "conv")) return op_conv(G, name);
  if (!strcmp(grp, "long")) return op_long(G);
  return op_nn(G, name);
}

static int pick_op(gen *G) {
  int total = 0;
  for (int i = 0; i < NOPS; i++)
    if (op_enabled(G->cfg, i)) total += OPS[i].weight;
  if (!total) return -1;
  int64_t k = rint_(&G->r, 0, total - 1);
  for (int i = 0; i < NOPS; i++)
    if (op_enabled(G->cfg, i) && (k -= OPS[i].weight) < 0) return i;
  return -1;
}

static void gen_free(gen *G) {
  for (int i = 0; i < G->nl; i++) free(G->lv[i].data);
  smelt_graph_free(G->g);
  G->g = NULL;
}

/* Builds graph `seed`. Returns 0, or -1 with G->g holding a graph error
 * (a generator bug or a builder bug: reported, not compared). */
static int gen_graph(gen *G, const config *cfg, uint64_t seed) {
  memset(G, 0, sizeof *G);
  G->cfg = cfg;
  G->r.s = seed * 0x2545F4914F6CDD1Dull + 1;
  G->g = smelt_graph_new();
  if (!G->g) return -1;
  G->specials = rp(&G->r, 0.15);
  /* A few inputs to start from. */
  int nin = (int)rint_(&G->r, 1, 3);
  for (int i = 0; i < nin; i++) {
    int rank;
    int64_t dims[SMELT_MAX_RANK];
    rand_shape(G, &rank, dims, 256);
    smelt_dtype dt = rand_dtype(G);
    int dom = rp(&G->r, 0.2) && dt != SMELT_BOOL ? DOM_POS : DOM_NORMAL;
    if (!new_leaf(G, dt, rank, dims, dom, 0, true)) return -1;
  }
  int nops = (int)rint_(&G->r, 2, 10), done = 0;
  for (int tries = 0; done < nops && tries < 200 && G->np < MAX_POOL - 8; tries++) {
    int i = pick_op(G);
    if (i < 0) break;
    if (apply_op(G, i)) done++;
    if (smelt_graph_error(G->g)) return -1;
  }
  /* Outputs: the last value and a few others (not bare leaves). */
  int nouts = (int)rint_(&G->r, 1, 4);
  for (int k = 0; k < nouts; k++) {
    int j = k == 0 ? G->np - 1 : (int)rint_(&G->r, G->nl < G->np ? 0 : 0, G->np - 1);
    val *v = &G->pool[j];
    out *o = &G->outs[G->nout++];
    snprintf(o->name, sizeof o->name, "out%d", k);
    o->v = *v;
    smelt_output(G->g, o->name, v->n);
  }
  /* Plain interpreter runs have dropout on: no evaluation programs then. */
  G->eval = rp(&G->r, 0.15) && cfg->target != SMELT_TARGET_INTERP;
  if (cfg->grad_on && !G->eval && rp(&G->r, 0.45)) {
    if (!add_grads(G) && smelt_graph_error(G->g)) return -1;
  }
  if (smelt_graph_error(G->g)) return -1;
  /* Data for every input (a stream of its own, so the data do not shift
   * when the generator's choices change). */
  rng dr = {seed ^ 0xD1B54A32D192ED03ull};
  for (int i = 0; i < G->nl; i++)
    if (!G->lv[i].param) {
      fill_leaf(&dr, &G->lv[i]);
      if (!G->lv[i].data) return -1;
    }
  return 0;
}

/* ------------------------------------------------------------- comparing */
static double load_d(smelt_dtype dt, const void *p, int64_t i) {
  switch (dt) {
  case SMELT_F32: { float f; memcpy(&f, (const char *)p + i * 4, 4); return f; }
  case SMELT_F64: { double d; memcpy(&d, (const char *)p + i * 8, 8); return d; }
  case SMELT_I32: { int32_t x; memcpy(&x, (const char *)p + i * 4, 4); return x; }
  case SMELT_I64: { int64_t x; memcpy(&x, (const char *)p + i * 8, 8); return (double)x; }
  default: return ((const unsigned char *)p)[i];
  }
}
static int64_t load_i(smelt_dtype dt, const void *p, int64_t i) {
  switch (dt) {
  case SMELT_I32: { int32_t x; memcpy(&x, (const char *)p + i * 4, 4); return x; }
  case SMELT_I64: { int64_t x; memcpy(&x, (const char *)p + i * 8, 8); return x; }
  default: return ((const unsigned char *)p)[i];
  }
}

/* Compares got with want (n elements of dt) under v's tolerance (NULL:
 * bit for bit, NaN matching NaN). Returns the first bad index, or -1. */
static int64_t compare(smelt_dtype dt, const void *got, const void *want, int64_t n,
                       const val *v, double atol_extra, bool f32_grads, double *tol_out) {
  *tol_out = 0;
  if (!is_float(dt)) {
    for (int64_t i = 0; i < n; i++)
      if (load_i(dt, got, i) != load_i(dt, want, i)) return i;
    return -1;
  }
  double u = uround(dt), scale = 0;
  if (v && v->gradlike)
    for (int64_t i = 0; i < n; i++) {
      double w = fabs(load_d(dt, want, i));
      if (isfinite(w) && w > scale) scale = w;
    }
  for (int64_t i = 0; i < n; i++) {
    double a = load_d(dt, got, i), b = load_d(dt, want, i);
    if (isnan(a) || isnan(b)) {
      if (isnan(a) != isnan(b)) return i;
      continue;
    }
    if (isinf(a) || isinf(b)) {
      if (a != b) return i;
      continue;
    }
    if (!v) { /* bit for bit, but -0 == +0 is not asked of the caller here */
      if (memcmp((const char *)got + i * (int64_t)smelt_dtype_size(dt),
                 (const char *)want + i * (int64_t)smelt_dtype_size(dt), smelt_dtype_size(dt)))
        return i;
      continue;
    }
    double tol = atol_extra;
    if (v->gradlike) {
      /* Backward graphs: relative to the output's largest value. */
      double rg = dt == SMELT_F64 && !f32_grads ? 1e-10 : 2e-4;
      tol += rg * (fabs(b) + scale) + 64 * u;
    } else if (!exact(v)) {
      tol += v->R * fabs(b) + v->A + 2 * u * fabs(b);
      if (v->Asq > 0) tol += fmin(sqrt(v->Asq), v->Asq / fmax(fabs(b), 1e-300));
      tol *= 2; /* a margin over the first-order estimate */
      tol += dt == SMELT_F64 ? 1e-300 : 1e-37; /* subnormal flushing of tiny results */
    }
    /* equal values agree even where the estimate is NaN (an inf magnitude
     * times 0, e.g. downstream of an integer prod that overflows) */
    if (a != b && !(fabs(a - b) <= tol)) {
      *tol_out = tol;
      return i;
    }
  }
  return -1;
}

/* --------------------------------------------------------------- running */
typedef struct side {
  smelt_params *params;
  smelt_program *prog;
  smelt_interp *it;
  void *res[MAX_OUTS];
  char err[512];
  bool failed;
} side;

static void side_free(side *s, int nout) {
  for (int k = 0; k < nout; k++) free(s->res[k]), s->res[k] = NULL;
  smelt_program_free(s->prog);
  smelt_interp_free(s->it);
  smelt_params_free(s->params);
  memset(s, 0, sizeof *s);
}

static size_t out_bytes(const val *v) { return (size_t)v->numel * smelt_dtype_size(v->dt); }

/* One run: binds every input, runs and reads every output. */
static void side_run(side *s, gen *G) {
  s->failed = false;
  s->err[0] = 0;
  for (int i = 0; i < G->nl && !s->failed; i++) {
    const leaf *l = &G->lv[i];
    if (l->param) continue;
    int rc = s->prog ? smelt_program_bind(s->prog, l->name, l->dt, l->rank, l->dims, l->data,
                                          l->nbytes)
                     : smelt_interp_bind(s->it, l->name, l->dt, l->rank, l->dims, l->data,
                                         l->nbytes);
    /* An input no output needs is unknown to nothing: bind errors count. */
    if (rc) {
      s->failed = true;
      snprintf(s->err, sizeof s->err, "bind %s: %s", l->name,
               s->prog ? smelt_program_error(s->prog) : smelt_interp_error(s->it));
    }
  }
  if (!s->failed && (s->prog ? smelt_program_run(s->prog) : smelt_interp_run(s->it))) {
    s->failed = true;
    snprintf(s->err, sizeof s->err, "run: %s",
             s->prog ? smelt_program_error(s->prog) : smelt_interp_error(s->it));
  }
  for (int k = 0; k < G->nout && !s->failed; k++) {
    const out *o = &G->outs[k];
    size_t nb = out_bytes(&o->v);
    free(s->res[k]);
    s->res[k] = malloc(nb ? nb : 1);
    if (!s->res[k]) {
      s->failed = true;
      snprintf(s->err, sizeof s->err, "out of memory");
      break;
    }
    int rc = s->prog ? smelt_program_read(s->prog, o->name, o->v.dt, s->res[k], nb)
                     : smelt_interp_read(s->it, o->name, o->v.dt, s->res[k], nb);
    if (rc) {
      s->failed = true;
      snprintf(s->err, sizeof s->err, "read %s: %s", o->name,
               s->prog ? smelt_program_error(s->prog) : smelt_interp_error(s->it));
    }
  }
}

static const char *const *out_names(gen *G, const char **names) {
  for (int k = 0; k < G->nout; k++) names[k] = G->outs[k].name;
  return names;
}

static bool side_compile(side *s, gen *G, smelt_target target) {
  smelt_compile_options o = smelt_compile_defaults();
  o.target = target;
  o.cache_dir = NULL; /* no disk writes */
  o.dump = NULL;
  const char *names[MAX_OUTS];
  s->params = smelt_params_new(G->g);
  if (!s->params) {
    snprintf(s->err, sizeof s->err, "out of memory");
    return false;
  }
  s->prog = G->eval ? smelt_program_compile_eval(G->g, s->params, G->nout, out_names(G, names), &o)
                    : smelt_program_compile(G->g, s->params, G->nout, out_names(G, names),
                                            G->nupd, G->upd, &o);
  if (!s->prog || smelt_program_error(s->prog)) {
    snprintf(s->err, sizeof s->err, "%s",
             s->prog ? smelt_program_error(s->prog) : "out of memory");
    return false;
  }
  return true;
}

/* ------------------------------------------------------------- reporting */
typedef struct stats {
  long graphs, ok, mismatches, build_errors, compile_errors, both_failed, vacuous;
  double secs;
  long cuda_builds, cuda_kernels; /* --cuda-compile */
  double cuda_secs;              /* time in sm_cuda_build */
} stats;

static void write_npy(const char *path, const leaf *l) {
  static const char *descr[] = {"<f4", "<f8", "<i4", "<i8", "|b1"};
  char shape[256] = "(";
  size_t o = 1;
  for (int i = 0; i < l->rank; i++)
    o += (size_t)snprintf(shape + o, sizeof shape - o, "%" PRId64 "%s", l->dims[i],
                          l->rank == 1 ? "," : i + 1 < l->rank ? ", " : "");
  snprintf(shape + o, sizeof shape - o, ")");
  char hdr[512];
  int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                   descr[l->dt], shape);
  int total = 10 + n + 1, pad = (64 - total % 64) % 64;
  FILE *f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "difftest: cannot write %s: %s\n", path, strerror(errno));
    return;
  }
  uint16_t hl = (uint16_t)(n + pad + 1);
  unsigned char magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff),
                             (unsigned char)(hl >> 8)};
  fwrite(magic, 1, 10, f);
  fwrite(hdr, 1, (size_t)n, f);
  for (int i = 0; i < pad; i++) fputc(' ', f);
  fputc('\n', f);
  if (l->nbytes) fwrite(l->data, 1, l->nbytes, f);
  fclose(f);
}

/* The files of graph `seed` under --save: the text and one .npy a input. */
static void save_path(char *buf, size_t n, const config *cfg, uint64_t seed, const char *input) {
  if (input) snprintf(buf, n, "%s/g%" PRIu64 ".%s.npy", cfg->save, seed, input);
  else snprintf(buf, n, "%s/g%" PRIu64 ".smelt", cfg->save, seed);
}

/* Written before the run (a crash leaves them behind) and removed when the
 * graph agrees. */
static void save_files(gen *G, const config *cfg, uint64_t seed, const char *text, bool remove) {
  char path[600];
  save_path(path, sizeof path, cfg, seed, NULL);
  if (remove) {
    unlink(path);
  } else {
    FILE *f = fopen(path, "w");
    if (f) {
      fputs(text, f);
      fclose(f);
    } else {
      fprintf(stderr, "difftest: cannot write %s: %s\n", path, strerror(errno));
    }
  }
  for (int i = 0; i < G->nl; i++)
    if (!G->lv[i].param) {
      save_path(path, sizeof path, cfg, seed, G->lv[i].name);
      if (remove) unlink(path);
      else write_npy(path, &G->lv[i]);
    }
}

static void print_repro(gen *G, const config *cfg, uint64_t seed) {
  const char *dir = cfg->save ? cfg->save : "DIR";
  printf("reproduce: difftest --seed %" PRIu64 " --count 1 --target %s --verbose\n", seed,
         smelt_target_name(cfg->target));
  printf("       or: smeltc run %s/g%" PRIu64 ".smelt --target %s", dir, seed,
         smelt_target_name(cfg->target));
  for (int i = 0; i < G->nl; i++)
    if (!G->lv[i].param)
      printf(" --input %s=%s/g%" PRIu64 ".%s.npy", G->lv[i].name, dir, seed, G->lv[i].name);
  printf("%s\n", cfg->save ? "" : "   (files written with --save DIR)");
  if (G->nupd) printf("   (the graph has %d updates: run 2 reads updated params)\n", G->nupd);
}

static void fmt_val(char *buf, size_t n, smelt_dtype dt, const void *p, int64_t i) {
  if (is_float(dt)) snprintf(buf, n, "%.9g", load_d(dt, p, i));
  else snprintf(buf, n, "%" PRId64, load_i(dt, p, i));
}

static void index_str(char *buf, size_t n, const val *v, int64_t i) {
  size_t o = (size_t)snprintf(buf, n, "[");
  int64_t rem = i;
  int64_t idx[SMELT_MAX_RANK];
  for (int d = v->rank - 1; d >= 0; d--) {
    idx[d] = v->dims[d] ? rem % v->dims[d] : 0;
    rem = v->dims[d] ? rem / v->dims[d] : 0;
  }
  for (int d = 0; d < v->rank && o < n; d++)
    o += (size_t)snprintf(buf + o, n - o, d ? ",%" PRId64 : "%" PRId64, idx[d]);
  if (o < n) snprintf(buf + o, n - o, "] (flat %" PRId64 ")", i);
}

/* ------------------------------------------------------------ crashes */
/* A crash in a backend is a failure like any other: the handler reports
 * the graph being run (prepared before the run, so the handler only calls
 * write), then re-raises the signal with its default action. */
static char crash_head[256];
static const char *volatile crash_text;

static void on_crash(int sig) {
  if (crash_text) {
    ssize_t w = write(1, crash_head, strlen(crash_head));
    w = write(1, crash_text, strlen(crash_text));
    (void)w;
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

static void catch_crashes(void) {
  static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sa.sa_flags = SA_RESETHAND;
    sigaction(sigs[i], &sa, NULL);
  }
}

/* ------------------------------------------------------------- one graph */
enum { RES_OK, RES_MISMATCH, RES_BUILD, RES_COMPILE, RES_BOTHFAIL };

static double now_secs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* --cuda-compile: the graph's program (outputs, then updates, as
 * smelt_program_compile plans them) built as a cubin for each arch. */
static int cuda_graph(const config *cfg, uint64_t seed, long number, stats *st) {
  gen *G = calloc(1, sizeof *G);
  if (!G) return RES_BUILD;
  if (gen_graph(G, cfg, seed)) {
    printf("graph %ld (seed %" PRIu64 "): build error: %s\n", number, seed,
           G->g && smelt_graph_error(G->g) ? smelt_graph_error(G->g) : "out of memory");
    st->build_errors++;
    gen_free(G);
    free(G);
    return RES_BUILD;
  }
  char *text = smelt_graph_print(G->g);
  if (cfg->verbose)
    printf("---- graph %ld (seed %" PRIu64 ")%s\n%s", number, seed, G->eval ? " eval" : "",
           text ? text : "(no text)\n");
  snprintf(crash_head, sizeof crash_head,
           "\n==== FAIL: graph %ld, seed %" PRIu64 ": crashed while compiling for CUDA (rerun: "
           "difftest --cuda-compile sm_%d --seed %" PRIu64 " --count 1 --verbose)\n",
           number, seed, cfg->cuda_cc[0], seed);
  crash_text = text;
  if (cfg->save) save_files(G, cfg, seed, text ? text : "", false);
  uint32_t roots[MAX_OUTS + MAX_UPD];
  size_t nroots = 0;
  for (int k = 0; k < G->nout; k++) roots[nroots++] = G->outs[k].v.n.index - 1;
  for (int k = 0; k < G->nupd; k++) roots[nroots++] = G->upd[k].index - 1;
  smelt_compile_options o = smelt_compile_defaults();
  o.target = SMELT_TARGET_CUDA;
  o.cache_dir = NULL; /* every compile is NVRTC's */
  o.dump = NULL;
  o.dump_dir = NULL;
  o.cuda_arch = NULL;
  int result = RES_OK;
  for (int a = 0; a < cfg->ncuda && result == RES_OK; a++) {
    int cc = cfg->cuda_cc[a];
    sm_cuda_image img;
    char *err = NULL;
    double t0 = now_secs();
    int rc = sm_cuda_build(G->g, nroots, roots, &o, cc, SM_NVRTC_CUBIN, NULL, &img, &err);
    st->cuda_secs += now_secs() - t0;
    st->cuda_builds++;
    const char *why = rc ? (err ? err : "out of memory") : NULL;
    if (!rc && img.plan->nkernels &&
        (img.code_len < 64 || memcmp(img.code, "\x7f" "ELF", 4) != 0))
      why = "NVRTC's output is not an ELF cubin";
    if (!rc) st->cuda_kernels += (long)img.plan->nkernels;
    if (why) {
      result = RES_COMPILE;
      printf("==== FAIL: graph %ld, seed %" PRIu64 ": CUDA build for sm_%d failed (%zu roots: "
             "%d outputs, %d updates%s)\n%s\n",
             number, seed, cc, nroots, G->nout, G->nupd, G->eval ? ", evaluation program" : "",
             why);
      if (!rc && img.src.text) printf("---- the CUDA C:\n%s", img.src.text);
      printf("---- the graph:\n%s", text ? text : "(graph text unavailable)\n");
      printf("reproduce: difftest --cuda-compile sm_%d --seed %" PRIu64 " --count 1 --verbose\n"
             "       or: smeltc compile %s/g%" PRIu64 ".smelt --target cuda --arch sm_%d "
             "--emit cuda%s\n\n",
             cc, seed, cfg->save ? cfg->save : "DIR", seed, cc,
             cfg->save ? "" : "   (files written with --save DIR)");
    }
    if (!rc) sm_cuda_image_free(&img);
    sm_free(err);
  }
  if (cfg->save && result == RES_OK) save_files(G, cfg, seed, NULL, true);
  if (result == RES_COMPILE) st->compile_errors++;
  else st->ok++;
  crash_text = NULL;
  smelt_free(text);
  gen_free(G);
  free(G);
  return result;
}

static int run_graph(const config *cfg, uint64_t seed, long number, stats *st) {
  gen *G = calloc(1, sizeof *G);
  if (!G) return RES_BUILD;
  int result = RES_OK;
  char *text = NULL;
  if (gen_graph(G, cfg, seed)) {
    printf("graph %ld (seed %" PRIu64 "): build error: %s\n", number, seed,
             G->g && smelt_graph_error(G->g) ? smelt_graph_error(G->g) : "out of memory");
    st->build_errors++;
    gen_free(G);
    free(G);
    return RES_BUILD;
  }
  text = smelt_graph_print(G->g);
  if (cfg->verbose)
    printf("---- graph %ld (seed %" PRIu64 ")%s\n%s", number, seed, G->eval ? " eval" : "",
           text ? text : "(no text)\n");
  snprintf(crash_head, sizeof crash_head,
           "\n==== FAIL: graph %ld, seed %" PRIu64 ": crashed (rerun: difftest --seed %" PRIu64
           " --count 1 --target %s)\n",
           number, seed, seed, smelt_target_name(cfg->target));
  crash_text = text;
  if (cfg->save) save_files(G, cfg, seed, text ? text : "", false);
  side t, r;
  memset(&t, 0, sizeof t);
  memset(&r, 0, sizeof r);
  bool plain = cfg->target == SMELT_TARGET_INTERP; /* reference: plain interpreter */
  bool tok = side_compile(&t, G, cfg->target);
  bool rok;
  if (plain) {
    r.it = smelt_interp_new(G->g);
    rok = r.it != NULL;
    if (!rok) snprintf(r.err, sizeof r.err, "out of memory");
  } else {
    rok = side_compile(&r, G, SMELT_TARGET_INTERP);
  }
  const char *what = NULL;
  char detail[1024] = "";
  if (!tok || !rok) {
    result = RES_COMPILE;
    snprintf(detail, sizeof detail, "compile failed: %s: %s", !tok ? "target" : "interp",
             !tok ? t.err : r.err);
    what = "compile error";
  }
  /* Plain interpreter runs know no updates nor eval mode: one run then. */
  int runs = plain || (!G->nupd && !G->eval) ? 1 : 2;
  if (!plain && G->nupd == 0) runs = 2; /* a second run checks draw numbering */
  for (int run = 0; run < runs && result == RES_OK; run++) {
    side_run(&t, G);
    side_run(&r, G);
    if (t.failed || r.failed) {
      if (t.failed && r.failed) {
        result = RES_BOTHFAIL; /* e.g. an index out of range: both must fail */
        break;
      }
      result = RES_MISMATCH;
      what = "one side failed";
      snprintf(detail, sizeof detail, "run %d: %s: %s (the %s side ran)", run,
               t.failed ? smelt_target_name(cfg->target) : "interp", t.failed ? t.err : r.err,
               t.failed ? "interp" : smelt_target_name(cfg->target));
      break;
    }
    for (int k = 0; k < G->nout && result == RES_OK; k++) {
      const out *o = &G->outs[k];
      double tol;
      const val *tv = plain ? NULL : &o->v;
      /* After a run with updates the params differ by the updates'
       * tolerance: nothing downstream is exact any more. */
      val loose;
      if (tv && run > 0 && G->nupd) {
        loose = *tv;
        loose.gradlike = true;
        tv = &loose;
      }
      if (tv && is_float(tv->dt) && !exact(tv) && !tv->gradlike && tv->mag > MAG_MAX) st->vacuous++;
      int64_t bad = compare(o->v.dt, t.res[k], r.res[k], o->v.numel, tv, 0, G->has_f32, &tol);
      if (bad >= 0) {
        char a[64], b[64], ix[128];
        fmt_val(a, sizeof a, o->v.dt, t.res[k], bad);
        fmt_val(b, sizeof b, o->v.dt, r.res[k], bad);
        index_str(ix, sizeof ix, &o->v, bad);
        result = RES_MISMATCH;
        what = "values differ";
        snprintf(detail, sizeof detail,
                 "run %d: output %s (%s, %" PRId64 " elements) at %s: %s %s, interp%s %s "
                 "(diff %.3g, tolerance %.3g)",
                 run, o->name, smelt_dtype_name(o->v.dt), o->v.numel, ix,
                 smelt_target_name(cfg->target), a, plain ? " (plain)" : "", b,
                 fabs(load_d(o->v.dt, t.res[k], bad) - load_d(o->v.dt, r.res[k], bad)), tol);
      }
    }
    /* Updated params: the same after each run. */
    for (int i = 0; i < G->nl && result == RES_OK && G->nupd; i++) {
      const leaf *l = &G->lv[i];
      if (!l->param) continue;
      size_t nb = (size_t)numel_of(l->rank, l->dims) * smelt_dtype_size(l->dt);
      void *pa = malloc(nb ? nb : 1), *pb = malloc(nb ? nb : 1);
      if (pa && pb && !smelt_params_read(t.params, l->name, l->dt, pa, nb) &&
          !smelt_params_read(r.params, l->name, l->dt, pb, nb)) {
        val pv;
        memset(&pv, 0, sizeof pv);
        pv.dt = l->dt, pv.rank = l->rank, pv.gradlike = true;
        memcpy(pv.dims, l->dims, sizeof pv.dims);
        pv.numel = numel_of(l->rank, l->dims);
        double tol;
        int64_t bad = compare(l->dt, pa, pb, pv.numel, &pv, G->upd_atol, G->has_f32, &tol);
        if (bad >= 0) {
          char a[64], b[64], ix[128];
          fmt_val(a, sizeof a, l->dt, pa, bad);
          fmt_val(b, sizeof b, l->dt, pb, bad);
          index_str(ix, sizeof ix, &pv, bad);
          result = RES_MISMATCH;
          what = "updated params differ";
          snprintf(detail, sizeof detail, "after run %d: param %s at %s: %s %s, interp %s "
                   "(tolerance %.3g)", run, l->name, ix, smelt_target_name(cfg->target), a, b, tol);
        }
      }
      free(pa);
      free(pb);
    }
  }
  if (result == RES_MISMATCH || result == RES_COMPILE) {
    printf("==== FAIL: graph %ld, seed %" PRIu64 ": %s\n%s\n", number, seed, what, detail);
    printf("%s", text ? text : "(graph text unavailable)\n");
    print_repro(G, cfg, seed);
    printf("\n");
  }
  if (cfg->save && result != RES_MISMATCH && result != RES_COMPILE)
    save_files(G, cfg, seed, NULL, true);
  if (result == RES_MISMATCH) st->mismatches++;
  else if (result == RES_COMPILE) st->compile_errors++;
  else if (result == RES_BOTHFAIL) st->both_failed++, st->ok++;
  else st->ok++;
  side_free(&t, G->nout);
  side_free(&r, G->nout);
  crash_text = NULL;
  smelt_free(text);
  gen_free(G);
  free(G);
  return result;
}

/* ----------------------------------------------------------------- main */
static int usage(FILE *f, int rc) {
  fprintf(f,
          "usage: difftest [--count N] [--seed S] [--target cpu|cuda|interp] [--ops LIST]\n"
          "                [--verbose] [--save DIR] [--max-failures N] [--cuda-compile ARCHS]\n"
          "Random graphs compiled for a target and compared with the interpreter.\n"
          "Graph i uses seed S+i: rerun one with --seed S+i --count 1 --verbose.\n"
          "  --cuda-compile ARCHS  run nothing: compile each graph as CUDA with NVRTC for\n"
          "               each arch of the comma-separated list (e.g. sm_80,sm_90)\n"
          "  --ops LIST   comma-separated op names or groups (unary binary compare\n"
          "               logical where reduce view matmul index source nn conv long grad\n"
          "               update; long: float sums over more than 4096 elements)\n"
          "  --save DIR   write failing graphs (DIR/g<seed>.smelt) and inputs (.npy)\n"
          "exit: 0 all agree, 1 a mismatch, 2 usage, 77 target unavailable (skip)\n"
          "      (--cuda-compile: 1 a CUDA build failed, 77 built without NVRTC)\n");
  return rc;
}

/* The target is usable when a trivial graph compiles for it. */
static bool target_available(smelt_target t, char *why, size_t n) {
  smelt_graph *g = smelt_graph_new();
  smelt_node x = smelt_input(g, "x", SMELT_F32, 1, (const int64_t[]){4});
  smelt_output(g, "y", smelt_add(g, x, x));
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = smelt_compile_defaults();
  o.target = t;
  o.cache_dir = NULL;
  const char *names[] = {"y"};
  smelt_program *pr = smelt_program_compile(g, p, 1, names, 0, NULL, &o);
  bool ok = pr && !smelt_program_error(pr);
  if (!ok) snprintf(why, n, "%s", pr ? smelt_program_error(pr) : "out of memory");
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
  return ok;
}

int main(int argc, char **argv) {
  config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.count = 100;
  cfg.seed = 1;
  cfg.target = SMELT_TARGET_CPU;
  cfg.max_failures = 10;
  const char *ops = NULL, *cuda_archs = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout, 0);
    if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
      cfg.verbose = true;
      continue;
    }
    if (!v) return usage(stderr, 2);
    i++;
    char *end = NULL;
    if (!strcmp(a, "--count")) cfg.count = strtol(v, &end, 10);
    else if (!strcmp(a, "--seed")) cfg.seed = strtoull(v, &end, 10);
    else if (!strcmp(a, "--max-failures")) cfg.max_failures = strtol(v, &end, 10);
    else if (!strcmp(a, "--save")) cfg.save = v;
    else if (!strcmp(a, "--ops")) ops = v;
    else if (!strcmp(a, "--cuda-compile")) cuda_archs = v;
    else if (!strcmp(a, "--target")) {
      if (!strcmp(v, "cpu")) cfg.target = SMELT_TARGET_CPU;
      else if (!strcmp(v, "interp")) cfg.target = SMELT_TARGET_INTERP;
      else if (!strcmp(v, "cuda")) cfg.target = SMELT_TARGET_CUDA;
      else {
        fprintf(stderr, "difftest: unknown target \"%s\" (cpu, cuda or interp)\n", v);
        return 2;
      }
    } else {
      fprintf(stderr, "difftest: unknown option %s\n", a);
      return usage(stderr, 2);
    }
    if (end && *end) {
      fprintf(stderr, "difftest: %s: not a number: %s\n", a, v);
      return 2;
    }
  }
  if (cfg.count < 0) return usage(stderr, 2);
  if (!ops) {
    for (int i = 0; i < NOPS; i++) cfg.ops_on[i] = true;
    cfg.grad_on = cfg.update_on = true;
  } else {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", ops);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
      bool found = false;
      if (!strcmp(tok, "grad")) cfg.grad_on = found = true;
      if (!strcmp(tok, "update")) cfg.update_on = cfg.grad_on = found = true;
      for (int i = 0; i < NOPS; i++)
        if (!strcmp(tok, OPS[i].name) || !strcmp(tok, OPS[i].group)) cfg.ops_on[i] = found = true;
      if (!found) {
        fprintf(stderr, "difftest: --ops: unknown op or group \"%s\"\n", tok);
        return 2;
      }
    }
  }
  if (cfg.save && mkdir(cfg.save, 0777) && errno != EEXIST) {
    fprintf(stderr, "difftest: cannot create %s: %s\n", cfg.save, strerror(errno));
    return 2;
  }
  char why[512];
  if (cuda_archs) {
    if (!sm_nvrtc_available()) {
      printf("difftest: SKIP: --cuda-compile needs NVRTC, and this libsmelt was built without "
             "it\n");
      return 77;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", cuda_archs);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
      char *err = NULL;
      int cc;
      if (cfg.ncuda == (int)(sizeof cfg.cuda_cc / sizeof cfg.cuda_cc[0])) {
        fprintf(stderr, "difftest: --cuda-compile: too many archs\n");
        return 2;
      }
      if (sm_nvrtc_parse_arch(tok, &cc, &err)) {
        fprintf(stderr, "difftest: --cuda-compile: %s\n", err ? err : "out of memory");
        sm_free(err);
        return 2;
      }
      cfg.cuda_cc[cfg.ncuda++] = cc;
    }
    if (!cfg.ncuda) {
      fprintf(stderr, "difftest: --cuda-compile: no arch given\n");
      return 2;
    }
  } else if (!target_available(cfg.target, why, sizeof why)) {
    printf("difftest: SKIP: the %s target is not available in this build: %s\n",
           smelt_target_name(cfg.target), why);
    return 77;
  }
  catch_crashes();
  stats st;
  memset(&st, 0, sizeof st);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  clock_t c0 = clock(); /* CPU time too: a loaded machine inflates wall time */
  long failures = 0;
  for (long i = 0; i < cfg.count; i++) {
    int rc = cfg.ncuda ? cuda_graph(&cfg, cfg.seed + (uint64_t)i, i, &st)
                       : run_graph(&cfg, cfg.seed + (uint64_t)i, i, &st);
    st.graphs++;
    if (rc == RES_MISMATCH || rc == RES_COMPILE) failures++;
    fflush(stdout);
    if (cfg.max_failures > 0 && failures >= cfg.max_failures) {
      printf("difftest: stopping after %ld failures (--max-failures)\n", failures);
      break;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  st.secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  double cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
  if (cfg.ncuda) {
    printf("difftest: %ld graphs (seeds %" PRIu64 "..%" PRIu64 ") compiled as CUDA for",
           st.graphs, cfg.seed, cfg.seed + (uint64_t)(st.graphs ? st.graphs - 1 : 0));
    for (int a = 0; a < cfg.ncuda; a++) printf("%s sm_%d", a ? "," : "", cfg.cuda_cc[a]);
    printf(": %ld built, %ld CUDA build failures, %ld graph build errors; %ld cubins of %ld "
           "kernels in all, %.3f s per build; %.1f s wall, %.1f s CPU\n",
           st.ok, st.compile_errors, st.build_errors, st.cuda_builds, st.cuda_kernels,
           st.cuda_builds ? st.cuda_secs / (double)st.cuda_builds : 0.0, st.secs, cpu);
    return st.compile_errors || st.build_errors ? 1 : 0;
  }
  printf("difftest: %ld graphs (seeds %" PRIu64 "..%" PRIu64 ") on %s against the %s: "
         "%ld agree (%ld of them failing on both sides), %ld mismatches, %ld compile errors, "
         "%ld build errors; %.1f s wall (%.1f graphs/s), %.1f s CPU (%.1f graphs/CPU s)\n",
         st.graphs, cfg.seed, cfg.seed + (uint64_t)(st.graphs ? st.graphs - 1 : 0),
         smelt_target_name(cfg.target),
         cfg.target == SMELT_TARGET_INTERP ? "plain interpreter" : "interp target", st.ok,
         st.both_failed, st.mismatches, st.compile_errors, st.build_errors, st.secs,
         st.secs > 0 ? (double)st.graphs / st.secs : 0.0, cpu,
         cpu > 0 ? (double)st.graphs / cpu : 0.0);
  return st.mismatches || st.compile_errors || st.build_errors ? 1 : 0;
}
