/* The kernel IR: one small loop-level IR that every backend consumes.
 *
 * A kernel is an iteration domain (a box of extents, some axes reduced), a
 * DAG of scalar values in SSA form (domain indices, affine index maps,
 * loads, constants, elementwise ops, random numbers, accumulator results),
 * accumulators (reductions), and stores. Fusion (src/passes/fusion.c)
 * decides what a kernel computes; lowering (codegen/lower.c) builds it and
 * chooses the loop order; the LLVM (codegen/llvm.c) and CUDA emitters only
 * print it. It prints as text (sm_kernel_print).
 *
 * Semantics. Let D be the domain axes, R the reduced ones (reduce[d]).
 *  - "inner" values are evaluated once per point of D; "outer" values once
 *    per point of D \ R (the reduced indices are 0 there), after every
 *    accumulator has seen all of R. A value that depends on an accumulator
 *    (KV_ACC) is outer (the builders set sm_kval.outer); others are
 *    evaluated wherever they are used, so an outer store may use values
 *    without accumulators (the lowering indexes them with reduced axes at 0).
 *  - An accumulator combines its inner value over R (sum, prod, max, min,
 *    argmax, argmin) for each point of D \ R, starting from the identity of
 *    its op, in the order of the loops (kernels that may reorder say so in
 *    reassociate).
 *  - An inner store writes at every point of D; an outer store once per
 *    point of D \ R. A store with accumulate adds into its target (+=), in
 *    domain order; such kernels zero their target first (zero_args).
 *  - Loads and stores index buffers by element (not byte) offsets. A load
 *    whose valid value is false reads nothing and yields fill.
 *  - Elementwise ops (KV_ELEM) mean exactly what the graph op means (the
 *    op table's eval_f / eval_i, src/ops.c), in the value's dtype: float
 *    ops on f32 values are computed in f32 (the interpreter's double is
 *    the oracle, not the contract).
 */
#ifndef SMELT_CODEGEN_KERNEL_H
#define SMELT_CODEGEN_KERNEL_H

#include "../src/internal.h"

typedef enum sm_kval_kind {
  KV_IDX,      /* i64: the index of domain axis `axis` */
  KV_AFFINE,   /* i64: ival + sum_d coef[d] * idx_d (coef has ndim entries) */
  KV_CONST,    /* a literal of dtype: fval (floats, bool) or ival (integers) */
  KV_LOAD,     /* arg `arg` at element offset a (i64); b: valid (bool) or -1
                  for always; fill (fval/ival) when not valid */
  KV_ELEM,     /* graph op `op` (unary, binary, where, cast) on a, b, c */
  KV_IDIV,     /* i64: a / b, both >= 0 (index arithmetic) */
  KV_IMOD,     /* i64: a % b, both >= 0 */
  KV_RAND,     /* rand (op OP_RAND: uniform [fattr0, fattr1)) or randn
                  (OP_RANDN: mean fattr0, std fattr1) with seed ival at
                  linear index a of the source, draw number from the run */
  KV_TRAINING, /* bool: the run's training flag */
  KV_CHECK,    /* i64: a when 0 <= a < ival; otherwise records an index
                  error in the run context (sm_kctx) and yields 0 */
  KV_ACC       /* the result of accumulator `acc` (outer) */
} sm_kval_kind;

typedef struct sm_kval {
  uint8_t kind;  /* sm_kval_kind */
  uint8_t dtype; /* smelt_dtype of the value */
  uint8_t outer; /* 1: depends on an accumulator (set by the builders) */
  uint16_t op;   /* KV_ELEM, KV_RAND: the sm_op */
  int32_t a, b, c; /* operand value ids (-1: none) */
  int32_t axis;  /* KV_IDX */
  int32_t arg;   /* KV_LOAD */
  int32_t acc;   /* KV_ACC */
  int64_t ival;  /* KV_AFFINE offset, KV_CONST integer, KV_RAND seed, KV_LOAD integer fill */
  double fval;   /* KV_CONST float or bool, KV_LOAD float fill */
  double fattr[2];  /* KV_RAND */
  int64_t *coef; /* KV_AFFINE: ndim coefficients (owned by the kernel) */
} sm_kval;

typedef struct sm_kacc {
  uint16_t op;       /* OP_REDUCE_SUM/PROD/MAX/MIN, OP_ARGMAX/ARGMIN */
  uint8_t dtype;     /* the result's dtype (i64 for arg-reductions) */
  uint8_t acc_dtype; /* the dtype accumulated in (f64 for f32 sums) */
  int32_t value;     /* the inner value reduced */
  int32_t axis;      /* arg-reductions: the domain axis whose index is returned */
  /* A KA_SCRATCH arg holding this accumulator per point of D \ R (row-major
   * over the non-reduced axes, in axis order; arg-reductions keep the best
   * value there and the index in scratch2), or -1: kept in registers. The
   * lowering adds scratch when a reduced loop encloses a non-reduced one. */
  int32_t scratch, scratch2;
} sm_kacc;

typedef struct sm_kstore {
  int32_t arg;
  int32_t index; /* i64 value: element offset */
  int32_t value;
  uint8_t outer;      /* after the reductions, once per point of D \ R */
  uint8_t accumulate; /* += (scatter_add); the kernel zeroes the arg first */
} sm_kstore;

typedef enum sm_karg_role {
  KA_IN,    /* read: a graph input, param, constant or an earlier kernel's result */
  KA_OUT,   /* written by this kernel (and maybe read back, e.g. accumulate) */
  KA_SCRATCH /* kernel-private temporary (accumulators kept in memory) */
} sm_karg_role;

typedef struct sm_karg {
  uint32_t node;  /* the graph node whose value this buffer holds (scratch: the reduction) */
  uint8_t dtype;
  uint8_t role;   /* sm_karg_role */
  int64_t numel;
} sm_karg;

typedef enum sm_kernel_kind {
  SM_KERNEL_POINTWISE, /* no reduced axes */
  SM_KERNEL_REDUCE,    /* accumulators over the reduced axes */
  SM_KERNEL_MATMUL,    /* a reduce kernel of the form sum_k A*B, see mm_* */
  SM_KERNEL_SCATTER    /* stores that accumulate at computed offsets */
} sm_kernel_kind;

typedef struct sm_kernel {
  char name[32];       /* "k3": unique in its program, a valid C identifier */
  sm_kernel_kind kind;
  int ndim;
  int64_t extent[SMELT_MAX_RANK + 1]; /* matmul domains have rank + 1 axes (K) */
  uint8_t reduce[SMELT_MAX_RANK + 1];
  /* Domain refinement (docs/kernel-ir.md): joined[d] = 1 when axis d is
   * an inner part of the axis that d-1 belongs to: the group's domain is
   * the domain with each run of joined axes merged (row-major). Only the
   * printer and the lowering's loop order read it. */
  uint8_t joined[SMELT_MAX_RANK + 1];
  /* Loop order, outermost first: order[0] is the outermost loop. The
   * innermost loop walks contiguous memory where the accesses allow. */
  int order[SMELT_MAX_RANK + 1];
  /* The axis whose range is split across threads (never a reduced one),
   * -1 when the kernel runs in one piece (scatter kernels). */
  int par_axis;
  bool reassociate; /* float reductions may be reordered */
  sm_karg *args;
  int nargs, cap_args;
  sm_kval *vals;
  int nvals, cap_vals;
  sm_kacc *accs;
  int naccs, cap_accs;
  sm_kstore *stores;
  int nstores, cap_stores;
  /* Matmul kernels (SM_KERNEL_MATMUL): axes m, n, k (k reduced, the last
   * axis; the others batch), the two loads multiplied and the accumulator
   * of their product. The generic reduce semantics still hold; a backend
   * may instead use a blocked kernel. */
  int mm_m, mm_n, mm_k;
  int32_t mm_a, mm_b, mm_acc;
  /* Set by builders when an allocation failed: the kernel is unusable. */
  bool oom;
  /* Hash-consing of values (open addressing over value id + 1). */
  int32_t *table;
  int table_cap;
} sm_kernel;

/* A new empty kernel over a domain (order defaults to 0..ndim-1, par_axis
 * to the outermost non-reduced axis or -1). NULL when out of memory. */
sm_kernel *sm_kernel_new(const char *name, sm_kernel_kind kind, int ndim, const int64_t *extent,
                         const uint8_t *reduce);
void sm_kernel_free(sm_kernel *k);

/* Builders. Each returns the id (value, arg, acc or store index) or -1 when
 * out of memory (then k->oom is set and later calls keep returning -1).
 * Identical values are shared (hash-consing), so callers need no CSE. */
int sm_kernel_arg(sm_kernel *k, uint32_t node, smelt_dtype dt, sm_karg_role role, int64_t numel);
/* A new KA_SCRATCH arg, never shared (unlike sm_kernel_arg: an
 * arg-reduction needs two for one node: the best value and its index). */
int sm_kernel_scratch(sm_kernel *k, uint32_t node, smelt_dtype dt, int64_t numel);
int sm_kv_idx(sm_kernel *k, int axis);
int sm_kv_affine(sm_kernel *k, int64_t offset, const int64_t *coef); /* coef: ndim entries */
int sm_kv_const_f(sm_kernel *k, smelt_dtype dt, double v);
int sm_kv_const_i(sm_kernel *k, smelt_dtype dt, int64_t v);
int sm_kv_load(sm_kernel *k, int arg, int index, int valid, double ffill, int64_t ifill);
int sm_kv_elem(sm_kernel *k, sm_op op, smelt_dtype dt, int a, int b, int c);
int sm_kv_idiv(sm_kernel *k, int a, int b);
int sm_kv_imod(sm_kernel *k, int a, int b);
int sm_kv_rand(sm_kernel *k, sm_op op, smelt_dtype dt, uint64_t seed, double p0, double p1,
               int linear_index);
int sm_kv_training(sm_kernel *k);
int sm_kv_check(sm_kernel *k, int a, int64_t bound);
/* scratch, scratch2: as sm_kacc (-1: registers). */
int sm_kernel_acc(sm_kernel *k, sm_op op, smelt_dtype dt, smelt_dtype acc_dtype, int value,
                  int axis, int scratch, int scratch2);
int sm_kv_acc(sm_kernel *k, int acc); /* the accumulator's result value (outer) */
int sm_kernel_store(sm_kernel *k, int arg, int index, int value, bool outer, bool accumulate);

/* Removes the values that no store, accumulator or matmul operand uses
 * (a builder may have made some it then did not need) and renumbers the
 * rest in order. false when out of memory (then k->oom is set). */
bool sm_kernel_sweep(sm_kernel *k);

/* True when value v does not depend on domain axis `axis` (used to hoist
 * loop invariants and to pick the loop order). */
bool sm_kval_invariant(const sm_kernel *k, int v, int axis);

/* The element-offset form off + coef . idx of an index value (idx, an i64
 * constant or affine); false for any other value. */
bool sm_kernel_affine_of(const sm_kernel *k, int v, int64_t *off, int64_t *coef);

/* A matmul kernel a backend may run as a blocked or tiled product: one
 * sum accumulator of A*B, A and B plain loads (no valid) of one float
 * dtype at affine offsets (A not depending on n, B not on m), k the only
 * reduced axis, and only outer, non-accumulating stores. */
typedef struct sm_mm_operands {
  smelt_dtype dt;
  int64_t aoff, acoef[SMELT_MAX_RANK + 1], boff, bcoef[SMELT_MAX_RANK + 1];
  int aarg, barg;
} sm_mm_operands;
bool sm_kernel_matmul_operands(const sm_kernel *k, sm_mm_operands *o);

/* Text form (docs/kernel-ir.md). A sm_malloc'ed string, NULL on OOM. */
char *sm_kernel_print(const sm_kernel *k);
/* The structural checks every backend makes before printing a kernel:
 * complete, rank in range, the loop order a permutation, extents >= 0, the
 * parallel axis a non-reduced one (or -1), accumulators and stores naming
 * existing values and buffers, arg-reductions over a reduced axis. true,
 * or false with *why set (sm_malloc'ed). */
bool sm_kernel_check(const sm_kernel *k, char **why);
/* "pointwise", "reduce", "matmul" or "scatter". */
const char *sm_kernel_kind_name(sm_kernel_kind kind);
void sm_kernel_print_buf(sm_buf *b, const sm_kernel *k);

/* The identity of a reduction op in dtype dt (0 for sum, 1 for prod,
 * -inf/min for max, ...), as a double for floats and bool. */
double sm_reduce_identity_f(sm_op op);
int64_t sm_reduce_identity_i(sm_op op, smelt_dtype dt);

/* ------------------------------------------------------------------ ABI */
/* What every backend's compiled kernel is called with (JIT, AOT, CUDA):
 *   void NAME(void *const *args, int64_t begin, int64_t end, sm_kctx *ctx)
 * args[i] points at buffer arg i (k->args); [begin, end) is the range of
 * par_axis this call computes (the whole extent when single-threaded;
 * ignored when par_axis is -1). Calls on disjoint ranges may run at once. */
typedef struct sm_kctx {
  uint64_t rng_step; /* the run's draw number (rand / randn) */
  int32_t training;  /* the training flag */
  int32_t error;     /* set to 1 (atomically) by a failing KV_CHECK */
  int64_t bad_index; /* the offending index of a failing KV_CHECK */
  int64_t bad_bound; /* its bound */
} sm_kctx;
typedef void (*sm_kernel_fn)(void *const *args, int64_t begin, int64_t end, sm_kctx *ctx);

#endif
