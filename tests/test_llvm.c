/* The LLVM backend: hand-built kernels (codegen/kernel.h) compiled with
 * sm_jit_compile and run through the kernel ABI, against the op table's
 * scalar semantics (src/ops.c), the Philox reference (src/philox.c) and
 * hand-computed values. Also the disk cache, dumps and vectorization. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../codegen/kernel.h"
#include "../codegen/llvm.h"
#include "../codegen/scalar_ops.h"
#include "../runtime/jit.h"
#include "internal.h"
#include "testutil.h"

/* ------------------------------------------------------------ helpers */

static smelt_compile_options opts(void) {
  smelt_compile_options o;
  memset(&o, 0, sizeof o);
  o.opt_level = 3;
  return o;
}

#define COMPILE(ks, n, o, d) compile_(__FILE__, __LINE__, (ks), (n), (o), (d))
static sm_jit *compile_(const char *file, int line, sm_kernel **ks, size_t n,
                        const smelt_compile_options *o, sm_dump *d) {
  smelt_compile_options def = opts();
  char *err = NULL;
  sm_jit *j = sm_jit_compile(ks, n, o ? o : &def, d, &err);
  if (!j) ck_abort_msg("%s:%d: compile failed: %s", file, line, err ? err : "(no message)");
  ck_assert_ptr_null(err);
  return j;
}

static sm_kernel_fn fn_of(sm_jit *j, const char *name) {
  sm_kernel_fn f = sm_jit_lookup(j, name);
  ck_assert_msg(f != NULL, "kernel %s not found", name);
  return f;
}

/* Compiles one kernel and runs it on its whole range. */
static void run1(sm_kernel *k, void **args, sm_kctx *ctx) {
  sm_jit *j = COMPILE(&k, 1, NULL, NULL);
  sm_kctx local = {0};
  int64_t end = k->par_axis >= 0 ? k->extent[k->par_axis] : 0;
  fn_of(j, k->name)(args, 0, end, ctx ? ctx : &local);
  sm_jit_free(j);
}

static sm_kernel *knew(const char *name, sm_kernel_kind kind, int ndim, const int64_t *ext,
                       const uint8_t *red) {
  sm_kernel *k = sm_kernel_new(name, kind, ndim, ext, red);
  ck_assert_ptr_nonnull(k);
  return k;
}

/* off + sum c_d * i_d for a 1-, 2- or 3-axis domain */
static int aff(sm_kernel *k, int64_t off, int64_t c0, int64_t c1, int64_t c2) {
  int64_t c[SMELT_MAX_RANK + 1] = {c0, c1, c2};
  int v = sm_kv_affine(k, off, c);
  ck_assert_int_ge(v, 0);
  return v;
}

static bool same_f(double got, double want) {
  if (isnan(want)) return isnan(got);
  if (got != want) return false;
  return signbit(got) == signbit(want);
}

/* --------------------------------------------------- broadcast + split */

START_TEST(broadcast_add) {
  /* out[i,j] = a[i,j] + b[j]: b is read with stride 0 along i */
  sm_kernel *k = knew("badd", SM_KERNEL_POINTWISE, 2, TU_DIMS(3, 4), NULL);
  int a = sm_kernel_arg(k, 0, SMELT_F32, KA_IN, 12);
  int b = sm_kernel_arg(k, 1, SMELT_F32, KA_IN, 4);
  int o = sm_kernel_arg(k, 2, SMELT_F32, KA_OUT, 12);
  int ij = aff(k, 0, 4, 1, 0);
  int la = sm_kv_load(k, a, ij, -1, 0, 0);
  int lb = sm_kv_load(k, b, sm_kv_idx(k, 1), -1, 0, 0);
  sm_kernel_store(k, o, ij, sm_kv_elem(k, OP_ADD, SMELT_F32, la, lb, -1), false, false);
  float A[12], B[4] = {10, 20, 30, 40}, O[12], O2[12];
  for (int i = 0; i < 12; i++) A[i] = (float)i * 0.5f;
  void *args[3] = {A, B, O};
  sm_jit *j = COMPILE(&k, 1, NULL, NULL);
  sm_kctx ctx = {0};
  fn_of(j, "badd")(args, 0, 3, &ctx);
  for (int i = 0; i < 12; i++) ck_assert(O[i] == A[i] + B[i % 4]);
  /* split: [0,1) and [1,3) give the same */
  memset(O2, 0, sizeof O2);
  args[2] = O2;
  fn_of(j, "badd")(args, 0, 1, &ctx);
  fn_of(j, "badd")(args, 1, 3, &ctx);
  ck_assert(memcmp(O, O2, sizeof O) == 0);
  /* an empty range writes nothing */
  O2[0] = -1;
  fn_of(j, "badd")(args, 2, 2, &ctx);
  ck_assert(O2[0] == -1);
  sm_jit_free(j);
  sm_kernel_free(k);
}
END_TEST

/* ------------------------------------------------- elementwise vs ops.c */

static const double fspecial[] = {NAN, 0.0, -0.0, INFINITY, -INFINITY, 1.0, -1.0, 0.5, -2.5, 3.0,
                                  1e30, -1e-30, 100.0, 7.25, -0.75, 2.0};
enum { NF = sizeof fspecial / sizeof fspecial[0] };
static const int64_t ispecial[] = {0, 1, -1, 2, -3, 7, 31, 63, 64, INT32_MAX, INT32_MIN,
                                   INT64_MAX, INT64_MIN, 1000003, -65536};
enum { NI = sizeof ispecial / sizeof ispecial[0] };

static bool exact_op(sm_op op) {
  switch (op) {
  case OP_EXP:
  case OP_LOG:
  case OP_SIN:
  case OP_COS:
  case OP_TANH:
  case OP_SIGMOID:
  case OP_POW:
  case OP_RSQRT: return false;
  default: return true;
  }
}

static bool is_result_bool(sm_op op) {
  sm_dtype_rule r = sm_ops[op].dtype_rule;
  return r == DTR_COMPARE || r == DTR_LOGICAL;
}

/* Whether op applies to dtype dt (the builder's dtype rules). */
static bool op_applies(sm_op op, smelt_dtype dt) {
  switch (sm_ops[op].dtype_rule) {
  case DTR_SAME: return dt != SMELT_BOOL;
  case DTR_NO_BOOL: return dt != SMELT_BOOL;
  case DTR_FLOAT: return sm_is_float(dt);
  default: return true;
  }
}

static double load_as_double(smelt_dtype dt, const void *p, int64_t i) {
  switch (dt) {
  case SMELT_F32: return ((const float *)p)[i];
  case SMELT_F64: return ((const double *)p)[i];
  case SMELT_I32: return ((const int32_t *)p)[i];
  case SMELT_I64: return (double)((const int64_t *)p)[i];
  default: return ((const uint8_t *)p)[i];
  }
}

/* Fills n values of dt from the specials (cycling). */
static void *specials(smelt_dtype dt, int n) {
  void *p = calloc((size_t)n, 8);
  for (int i = 0; i < n; i++) {
    switch (dt) {
    case SMELT_F32: ((float *)p)[i] = (float)fspecial[i % NF]; break;
    case SMELT_F64: ((double *)p)[i] = fspecial[i % NF]; break;
    case SMELT_I32: ((int32_t *)p)[i] = (int32_t)ispecial[i % NI]; break;
    case SMELT_I64: ((int64_t *)p)[i] = ispecial[i % NI]; break;
    default: ((uint8_t *)p)[i] = (uint8_t)(i & 1); break;
    }
  }
  return p;
}
static int nspecial(smelt_dtype dt) {
  return sm_is_float(dt) ? NF : dt == SMELT_BOOL ? 2 : NI;
}

/* The expected result of op on (a, b) in dtype dt as a double (the
 * integer value for ints), following the interpreter. */
static double expect(sm_op op, smelt_dtype dt, smelt_dtype rdt, const void *pa, int64_t ia,
                     const void *pb, int64_t ib) {
  const sm_op_info *info = &sm_ops[op];
  if (sm_is_float(dt)) {
    double a = load_as_double(dt, pa, ia), b = pb ? load_as_double(dt, pb, ib) : 0;
    double r = info->eval_f(a, b);
    if (rdt == SMELT_BOOL) return r != 0;
    return rdt == SMELT_F32 ? (double)(float)r : r;
  }
  int64_t a, b = 0;
  if (dt == SMELT_I32) a = ((const int32_t *)pa)[ia];
  else if (dt == SMELT_I64) a = ((const int64_t *)pa)[ia];
  else a = ((const uint8_t *)pa)[ia];
  if (pb) {
    if (dt == SMELT_I32) b = ((const int32_t *)pb)[ib];
    else if (dt == SMELT_I64) b = ((const int64_t *)pb)[ib];
    else b = ((const uint8_t *)pb)[ib];
  }
  int64_t r = info->eval_i(a, b);
  if (rdt == SMELT_BOOL) return r != 0;
  if (rdt == SMELT_I32) return (double)(int32_t)(uint32_t)(uint64_t)r;
  return (double)r; /* compared as int64 below */
}

static int64_t expect_i(sm_op op, smelt_dtype dt, const void *pa, int64_t ia, const void *pb,
                        int64_t ib) {
  int64_t a = dt == SMELT_I32 ? ((const int32_t *)pa)[ia] : ((const int64_t *)pa)[ia];
  int64_t b = 0;
  if (pb) b = dt == SMELT_I32 ? ((const int32_t *)pb)[ib] : ((const int64_t *)pb)[ib];
  int64_t r = sm_ops[op].eval_i(a, b);
  return dt == SMELT_I32 ? (int64_t)(int32_t)(uint32_t)(uint64_t)r : r;
}

static void check_result(sm_op op, smelt_dtype dt, smelt_dtype rdt, const void *pa, int64_t ia,
                         const void *pb, int64_t ib, const void *out, int64_t io) {
  char what[96];
  snprintf(what, sizeof what, "%s %s (a[%lld], b[%lld])", sm_ops[op].name,
           smelt_dtype_name(dt), (long long)ia, (long long)ib);
  if (rdt == SMELT_I64 || rdt == SMELT_I32) {
    int64_t want = expect_i(op, dt, pa, ia, pb, ib);
    int64_t got = rdt == SMELT_I32 ? ((const int32_t *)out)[io] : ((const int64_t *)out)[io];
    TU_CHECK(got == want, "%s: got %lld want %lld", what, (long long)got, (long long)want);
    return;
  }
  double want = expect(op, dt, rdt, pa, ia, pb, ib);
  double got = load_as_double(rdt, out, io);
  if (rdt == SMELT_BOOL) {
    TU_CHECK(((const uint8_t *)out)[io] == (uint8_t)want, "%s: got %g want %g", what, got, want);
    return;
  }
  /* llvm_math.c reduces sin/cos arguments accurately up to about 1.6e6
   * (no Payne-Hanek): bigger ones are its documented limit, not tested */
  if ((op == OP_SIN || op == OP_COS) && fabs(load_as_double(dt, pa, ia)) > 1e6) return;
  if (exact_op(op)) {
    TU_CHECK(same_f(got, want), "%s: a=%g b=%g: got %.9g want %.9g", what,
             load_as_double(dt, pa, ia), pb ? load_as_double(dt, pb, ib) : 0.0, got, want);
  } else {
    double tol = rdt == SMELT_F32 ? 4e-6 : 1e-12;
    bool ok = isnan(want) ? isnan(got)
              : isinf(want) ? got == want
                            : fabs(got - want) <= tol * fabs(want) + 1e-30 ||
                                  (rdt == SMELT_F32 && fabs(want) < 1e-30 && fabs(got) < 1e-30);
    TU_CHECK(ok, "%s: a=%g b=%g: got %.9g want %.9g", what, load_as_double(dt, pa, ia),
             pb ? load_as_double(dt, pb, ib) : 0.0, got, want);
  }
}

static const sm_op unary_ops[] = {OP_NEG,  OP_ABS, OP_SIGN, OP_EXP,  OP_LOG,        OP_SQRT,
                                  OP_RSQRT, OP_RECIPROCAL, OP_SIN, OP_COS, OP_TANH, OP_SIGMOID,
                                  OP_RELU, OP_NOT, OP_STOP_GRADIENT};
static const sm_op binary_ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_MAXIMUM, OP_MINIMUM,
                                   OP_LT,  OP_LE,  OP_GT,  OP_GE,  OP_EQ,  OP_NE, OP_AND, OP_OR};

START_TEST(unary_ops_all_dtypes) {
  for (int d = 0; d < SMELT_DTYPE_COUNT; d++) {
    smelt_dtype dt = (smelt_dtype)d;
    int n = nspecial(dt);
    /* one kernel per dtype holding every op that applies */
    sm_kernel *k = knew("un", SM_KERNEL_POINTWISE, 1, TU_DIMS(n), NULL);
    int x = sm_kernel_arg(k, 0, dt, KA_IN, n);
    int i0 = sm_kv_idx(k, 0);
    int lx = sm_kv_load(k, x, i0, -1, 0, 0);
    int nops = (int)(sizeof unary_ops / sizeof unary_ops[0]);
    void *outs[32] = {0};
    void *args[40];
    void *in = specials(dt, n);
    args[0] = in;
    int used[32], nused = 0;
    for (int i = 0; i < nops; i++) {
      sm_op op = unary_ops[i];
      if (!op_applies(op, dt)) continue;
      smelt_dtype rdt = is_result_bool(op) ? SMELT_BOOL : dt;
      int o = sm_kernel_arg(k, (uint32_t)(100 + i), rdt, KA_OUT, n);
      sm_kernel_store(k, o, i0, sm_kv_elem(k, op, rdt, lx, -1, -1), false, false);
      outs[nused] = calloc((size_t)n, 8);
      args[o] = outs[nused];
      used[nused++] = i;
    }
    ck_assert(!k->oom);
    run1(k, args, NULL);
    for (int u = 0; u < nused; u++) {
      sm_op op = unary_ops[used[u]];
      smelt_dtype rdt = is_result_bool(op) ? SMELT_BOOL : dt;
      for (int e = 0; e < n; e++) check_result(op, dt, rdt, in, e, NULL, 0, outs[u], e);
      free(outs[u]);
    }
    free(in);
    sm_kernel_free(k);
  }
}
END_TEST

START_TEST(binary_ops_all_dtypes) {
  for (int d = 0; d < SMELT_DTYPE_COUNT; d++) {
    smelt_dtype dt = (smelt_dtype)d;
    int n = nspecial(dt);
    /* every pair of specials: a along axis 0, b along axis 1 (broadcast) */
    sm_kernel *k = knew("bin", SM_KERNEL_POINTWISE, 2, TU_DIMS(n, n), NULL);
    int xa = sm_kernel_arg(k, 0, dt, KA_IN, n);
    int xb = sm_kernel_arg(k, 1, dt, KA_IN, n);
    int la = sm_kv_load(k, xa, sm_kv_idx(k, 0), -1, 0, 0);
    int lb = sm_kv_load(k, xb, sm_kv_idx(k, 1), -1, 0, 0);
    int ij = aff(k, 0, n, 1, 0);
    int nops = (int)(sizeof binary_ops / sizeof binary_ops[0]);
    void *outs[32] = {0}, *args[40];
    void *A = specials(dt, n), *B = specials(dt, n);
    args[0] = A, args[1] = B;
    int used[32], nused = 0;
    for (int i = 0; i < nops; i++) {
      sm_op op = binary_ops[i];
      if (!op_applies(op, dt) || (dt == SMELT_BOOL && op == OP_POW)) continue;
      smelt_dtype rdt = is_result_bool(op) ? SMELT_BOOL : dt;
      int o = sm_kernel_arg(k, (uint32_t)(100 + i), rdt, KA_OUT, (int64_t)n * n);
      sm_kernel_store(k, o, ij, sm_kv_elem(k, op, rdt, la, lb, -1), false, false);
      outs[nused] = calloc((size_t)n * (size_t)n, 8);
      args[o] = outs[nused];
      used[nused++] = i;
    }
    ck_assert(!k->oom);
    run1(k, args, NULL);
    for (int u = 0; u < nused; u++) {
      sm_op op = binary_ops[used[u]];
      smelt_dtype rdt = is_result_bool(op) ? SMELT_BOOL : dt;
      for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++) check_result(op, dt, rdt, A, a, B, b, outs[u], a * n + b);
      free(outs[u]);
    }
    free(A);
    free(B);
    sm_kernel_free(k);
  }
}
END_TEST

/* The interpreter's casts (src/interp.c store_f / store_i). */
static double cast_expect(smelt_dtype from, smelt_dtype to, const void *p, int64_t i) {
  double v = load_as_double(from, p, i);
  int64_t iv = from == SMELT_I64 ? ((const int64_t *)p)[i] : (int64_t)v;
  if (to == SMELT_BOOL) return sm_is_float(from) ? (v != 0 || isnan(v)) : iv != 0;
  if (sm_is_float(from) && !sm_is_float(to)) {
    if (isnan(v)) return 0;
    if (to == SMELT_I32) return v >= 2147483648.0 ? INT32_MAX : v <= -2147483649.0 ? INT32_MIN
                                                                                  : (double)(int32_t)v;
    return v; /* i64: compared through cast_expect_i64 */
  }
  if (to == SMELT_F32) return from == SMELT_I64 ? (double)(float)iv : (double)(float)v;
  if (to == SMELT_F64) return from == SMELT_I64 ? (double)iv : v;
  if (to == SMELT_I32) return (double)(int32_t)(uint32_t)(uint64_t)iv;
  return (double)iv;
}

START_TEST(casts_all_pairs) {
  for (int f = 0; f < SMELT_DTYPE_COUNT; f++) {
    smelt_dtype from = (smelt_dtype)f;
    int n = nspecial(from);
    sm_kernel *k = knew("cast", SM_KERNEL_POINTWISE, 1, TU_DIMS(n), NULL);
    int x = sm_kernel_arg(k, 0, from, KA_IN, n);
    int i0 = sm_kv_idx(k, 0);
    int lx = sm_kv_load(k, x, i0, -1, 0, 0);
    void *args[8], *outs[8];
    void *in = specials(from, n);
    args[0] = in;
    for (int t = 0; t < SMELT_DTYPE_COUNT; t++) {
      int o = sm_kernel_arg(k, (uint32_t)(10 + t), (smelt_dtype)t, KA_OUT, n);
      sm_kernel_store(k, o, i0, sm_kv_elem(k, OP_CAST, (smelt_dtype)t, lx, -1, -1), false, false);
      outs[t] = calloc((size_t)n, 8);
      args[o] = outs[t];
    }
    run1(k, args, NULL);
    for (int t = 0; t < SMELT_DTYPE_COUNT; t++) {
      smelt_dtype to = (smelt_dtype)t;
      for (int e = 0; e < n; e++) {
        if (to == SMELT_I64) {
          int64_t want = sm_is_float(from) ? sm_f_to_i64(load_as_double(from, in, e))
                         : from == SMELT_I64 ? ((int64_t *)in)[e]
                                             : (int64_t)load_as_double(from, in, e);
          TU_CHECK(((int64_t *)outs[t])[e] == want, "cast %s->i64 [%d]: got %lld want %lld",
                   smelt_dtype_name(from), e, (long long)((int64_t *)outs[t])[e],
                   (long long)want);
          continue;
        }
        double want = cast_expect(from, to, in, e), got = load_as_double(to, outs[t], e);
        TU_CHECK(same_f(got, want) || (isnan(want) && isnan(got)),
                 "cast %s->%s [%d]: got %.17g want %.17g", smelt_dtype_name(from),
                 smelt_dtype_name(to), e, got, want);
      }
      free(outs[t]);
    }
    free(in);
    sm_kernel_free(k);
  }
}
END_TEST

START_TEST(where_and_masked_load) {
  /* out[i] = where(c[i], x[i-1] if 1 <= i <= 4 else 7.5, -x2[i]) : a pad */
  sm_kernel *k = knew("pad", SM_KERNEL_POINTWISE, 1, TU_DIMS(6), NULL);
  int x = sm_kernel_arg(k, 0, SMELT_F64, KA_IN, 4);
  int c = sm_kernel_arg(k, 1, SMELT_BOOL, KA_IN, 6);
  int o = sm_kernel_arg(k, 2, SMELT_F64, KA_OUT, 6);
  int i0 = sm_kv_idx(k, 0);
  int ge = sm_kv_elem(k, OP_GE, SMELT_BOOL, i0, sm_kv_const_i(k, SMELT_I64, 1), -1);
  int le = sm_kv_elem(k, OP_LE, SMELT_BOOL, i0, sm_kv_const_i(k, SMELT_I64, 4), -1);
  int valid = sm_kv_elem(k, OP_AND, SMELT_BOOL, ge, le, -1);
  int lx = sm_kv_load(k, x, aff(k, -1, 1, 0, 0), valid, 7.5, 0);
  int lc = sm_kv_load(k, c, i0, -1, 0, 0);
  int neg = sm_kv_elem(k, OP_NEG, SMELT_F64, lx, -1, -1);
  sm_kernel_store(k, o, i0, sm_kv_elem(k, OP_WHERE, SMELT_F64, lc, lx, neg), false, false);
  double X[4] = {1, 2, 3, 4}, O[6];
  uint8_t C[6] = {1, 1, 0, 1, 0, 1};
  void *args[3] = {X, C, O};
  run1(k, args, NULL);
  double want[6] = {7.5, 1, -2, 3, -4, 7.5};
  for (int i = 0; i < 6; i++) ck_assert_msg(O[i] == want[i], "[%d] %g", i, O[i]);
  sm_kernel_free(k);
}
END_TEST

/* ----------------------------------------------------------- reductions */

START_TEST(sum_inner_axis_registers) {
  /* out[i] = sum_j x[i,j], f32 accumulated in f64 */
  sm_kernel *k = knew("sum", SM_KERNEL_REDUCE, 2, TU_DIMS(3, 5), (const uint8_t[]){0, 1});
  int x = sm_kernel_arg(k, 0, SMELT_F32, KA_IN, 15);
  int o = sm_kernel_arg(k, 1, SMELT_F32, KA_OUT, 3);
  int lx = sm_kv_load(k, x, aff(k, 0, 5, 1, 0), -1, 0, 0);
  int a = sm_kernel_acc(k, OP_REDUCE_SUM, SMELT_F32, SMELT_F64, lx, -1, -1, -1);
  sm_kernel_store(k, o, sm_kv_idx(k, 0), sm_kv_acc(k, a), true, false);
  float X[15], O[3];
  for (int i = 0; i < 15; i++) X[i] = 1.0f / (float)(i + 1) + (i == 7 ? 1e8f : 0);
  void *args[2] = {X, O};
  run1(k, args, NULL);
  for (int i = 0; i < 3; i++) {
    double s = 0;
    for (int j = 0; j < 5; j++) s += X[i * 5 + j];
    ck_assert_msg(O[i] == (float)s, "row %d: %.9g vs %.9g", i, O[i], (float)s);
  }
  sm_kernel_free(k);
}
END_TEST

START_TEST(sum_outer_axis_scratch) {
  /* out[j] = sum_i x[i,j] with i (reduced) the outer loop: scratch */
  sm_kernel *k = knew("colsum", SM_KERNEL_REDUCE, 2, TU_DIMS(7, 5), (const uint8_t[]){1, 0});
  k->par_axis = 1;
  int x = sm_kernel_arg(k, 0, SMELT_F32, KA_IN, 35);
  int o = sm_kernel_arg(k, 1, SMELT_F32, KA_OUT, 5);
  int s = sm_kernel_arg(k, 2, SMELT_F64, KA_SCRATCH, 5);
  int lx = sm_kv_load(k, x, aff(k, 0, 5, 1, 0), -1, 0, 0);
  int a = sm_kernel_acc(k, OP_REDUCE_SUM, SMELT_F32, SMELT_F64, lx, -1, s, -1);
  /* the outer store also reads x at the reduced index 0: x[0,j] */
  int v = sm_kv_elem(k, OP_ADD, SMELT_F32, sm_kv_acc(k, a), lx, -1);
  sm_kernel_store(k, o, sm_kv_idx(k, 1), v, true, false);
  float X[35], O[5], O2[5];
  double S[5];
  for (int i = 0; i < 35; i++) X[i] = (float)(i % 9) - 3.25f;
  void *args[3] = {X, O, S};
  sm_jit *j = COMPILE(&k, 1, NULL, NULL);
  sm_kctx ctx = {0};
  fn_of(j, "colsum")(args, 0, 5, &ctx);
  for (int c = 0; c < 5; c++) {
    double sum = 0;
    for (int r = 0; r < 7; r++) sum += X[r * 5 + c];
    float want = (float)sum + X[c];
    ck_assert_msg(O[c] == want, "col %d: %g vs %g", c, O[c], want);
  }
  /* split ranges [0,3) and [3,5) */
  args[1] = O2;
  fn_of(j, "colsum")(args, 0, 3, &ctx);
  fn_of(j, "colsum")(args, 3, 5, &ctx);
  ck_assert(memcmp(O, O2, sizeof O) == 0);
  sm_jit_free(j);
  sm_kernel_free(k);
}
END_TEST

START_TEST(prod_max_min_nan) {
  /* rows of 4: prod (i32, wraps), max and min (f32 with NaN) */
  sm_kernel *k = knew("pmm", SM_KERNEL_REDUCE, 2, TU_DIMS(4, 4), (const uint8_t[]){0, 1});
  int xi = sm_kernel_arg(k, 0, SMELT_I32, KA_IN, 16);
  int xf = sm_kernel_arg(k, 1, SMELT_F32, KA_IN, 16);
  int op = sm_kernel_arg(k, 2, SMELT_I32, KA_OUT, 4);
  int omax = sm_kernel_arg(k, 3, SMELT_F32, KA_OUT, 4);
  int omin = sm_kernel_arg(k, 4, SMELT_F32, KA_OUT, 4);
  int ij = aff(k, 0, 4, 1, 0), i0 = sm_kv_idx(k, 0);
  int li = sm_kv_load(k, xi, ij, -1, 0, 0), lf = sm_kv_load(k, xf, ij, -1, 0, 0);
  int ap = sm_kernel_acc(k, OP_REDUCE_PROD, SMELT_I32, SMELT_I32, li, -1, -1, -1);
  int amax = sm_kernel_acc(k, OP_REDUCE_MAX, SMELT_F32, SMELT_F32, lf, -1, -1, -1);
  int amin = sm_kernel_acc(k, OP_REDUCE_MIN, SMELT_F32, SMELT_F32, lf, -1, -1, -1);
  sm_kernel_store(k, op, i0, sm_kv_acc(k, ap), true, false);
  sm_kernel_store(k, omax, i0, sm_kv_acc(k, amax), true, false);
  sm_kernel_store(k, omin, i0, sm_kv_acc(k, amin), true, false);
  int32_t XI[16] = {2, 3, 4, 5, 65536, 65536, 3, 1, -1, -1, -1, 7, 0, 9, 9, 9};
  float XF[16] = {1, NAN, 3, -2, -INFINITY, -INFINITY, -INFINITY, -INFINITY,
                  5, -0.0f, 2, 8, 0.0f, -0.0f, 0.0f, -0.0f};
  int32_t OP[4];
  float OMAX[4], OMIN[4];
  void *args[5] = {XI, XF, OP, OMAX, OMIN};
  run1(k, args, NULL);
  ck_assert_int_eq(OP[0], 120);
  ck_assert_int_eq(OP[1], 0); /* 2^32 * 3 wraps to 0 */
  ck_assert_int_eq(OP[2], -7);
  ck_assert_int_eq(OP[3], 0);
  ck_assert(isnan(OMAX[0]) && isnan(OMIN[0]));
  ck_assert(OMAX[1] == -INFINITY && OMIN[1] == -INFINITY);
  ck_assert(OMAX[2] == 8 && OMIN[2] == -0.0f);
  /* ops.c order: acc = f(acc, x); ties keep x */
  double m = -INFINITY, mn = INFINITY;
  for (int j = 0; j < 4; j++) {
    m = sm_ops[OP_MAXIMUM].eval_f(m, XF[12 + j]);
    mn = sm_ops[OP_MINIMUM].eval_f(mn, XF[12 + j]);
  }
  ck_assert(same_f(OMAX[3], (float)m) && same_f(OMIN[3], (float)mn));
  sm_kernel_free(k);
}
END_TEST

/* argmax/argmin: the first extreme wins, the first NaN wins. Both in
 * registers (reduced inner) and in scratch (reduced outer). */
static void argreduce_case(bool scratch) {
  const int R = 5, L = 4; /* rows, reduced length */
  float X[5][4] = {{1, 3, 3, 2},
                   {NAN, 5, NAN, 1},
                   {2, NAN, 9, 9},
                   {-INFINITY, -INFINITY, -INFINITY, -INFINITY},
                   {INFINITY, 0, INFINITY, -1}};
  int64_t want_max[5] = {1, 0, 1, 0, 0}, want_min[5] = {0, 0, 1, 0, 3};
  sm_kernel *k;
  int ij;
  if (!scratch) {
    k = knew("arg", SM_KERNEL_REDUCE, 2, TU_DIMS(R, L), (const uint8_t[]){0, 1});
    ij = aff(k, 0, L, 1, 0);
  } else {
    /* domain [L r, R] with the reduced axis outer */
    k = knew("arg", SM_KERNEL_REDUCE, 2, TU_DIMS(L, R), (const uint8_t[]){1, 0});
    ij = aff(k, 0, 1, L, 0);
  }
  int raxis = scratch ? 0 : 1, oaxis = scratch ? 1 : 0;
  int x = sm_kernel_arg(k, 0, SMELT_F32, KA_IN, R * L);
  int omax = sm_kernel_arg(k, 1, SMELT_I64, KA_OUT, R);
  int omin = sm_kernel_arg(k, 2, SMELT_I64, KA_OUT, R);
  int s1 = -1, s2 = -1, s3 = -1, s4 = -1;
  if (scratch) {
    s1 = sm_kernel_arg(k, 10, SMELT_F32, KA_SCRATCH, R);
    s2 = sm_kernel_arg(k, 11, SMELT_I64, KA_SCRATCH, R);
    s3 = sm_kernel_arg(k, 12, SMELT_F32, KA_SCRATCH, R);
    s4 = sm_kernel_arg(k, 13, SMELT_I64, KA_SCRATCH, R);
  }
  int lx = sm_kv_load(k, x, ij, -1, 0, 0);
  int a1 = sm_kernel_acc(k, OP_ARGMAX, SMELT_I64, SMELT_F32, lx, raxis, s1, s2);
  int a2 = sm_kernel_acc(k, OP_ARGMIN, SMELT_I64, SMELT_F32, lx, raxis, s3, s4);
  int oi = sm_kv_idx(k, oaxis);
  sm_kernel_store(k, omax, oi, sm_kv_acc(k, a1), true, false);
  sm_kernel_store(k, omin, oi, sm_kv_acc(k, a2), true, false);
  ck_assert(!k->oom);
  int64_t OMAX[5], OMIN[5];
  float S1[5];
  int64_t S2[5], S4[5];
  float S3[5];
  void *args[8] = {X, OMAX, OMIN, S1, S2, S3, S4};
  run1(k, args, NULL);
  for (int r = 0; r < R; r++) {
    ck_assert_msg(OMAX[r] == want_max[r], "%s argmax row %d: %lld", scratch ? "scratch" : "regs",
                  r, (long long)OMAX[r]);
    ck_assert_msg(OMIN[r] == want_min[r], "%s argmin row %d: %lld", scratch ? "scratch" : "regs",
                  r, (long long)OMIN[r]);
  }
  sm_kernel_free(k);
}

START_TEST(argmax_argmin_ties_nan) {
  argreduce_case(false);
  argreduce_case(true);
}
END_TEST

START_TEST(outer_store_epilogue) {
  /* out[i] = sqrt(sum_j x[i,j]^2) * w[i] + x[i,0]; also an inner store
   * y[i,j] = 2*x[i,j] in the same kernel */
  sm_kernel *k = knew("norm", SM_KERNEL_REDUCE, 2, TU_DIMS(4, 6), (const uint8_t[]){0, 1});
  int x = sm_kernel_arg(k, 0, SMELT_F64, KA_IN, 24);
  int w = sm_kernel_arg(k, 1, SMELT_F64, KA_IN, 4);
  int o = sm_kernel_arg(k, 2, SMELT_F64, KA_OUT, 4);
  int y = sm_kernel_arg(k, 3, SMELT_F64, KA_OUT, 24);
  int ij = aff(k, 0, 6, 1, 0), i0 = sm_kv_idx(k, 0);
  int lx = sm_kv_load(k, x, ij, -1, 0, 0);
  int sq = sm_kv_elem(k, OP_MUL, SMELT_F64, lx, lx, -1);
  int a = sm_kernel_acc(k, OP_REDUCE_SUM, SMELT_F64, SMELT_F64, sq, -1, -1, -1);
  int r = sm_kv_elem(k, OP_SQRT, SMELT_F64, sm_kv_acc(k, a), -1, -1);
  int lw = sm_kv_load(k, w, i0, -1, 0, 0);
  int v = sm_kv_elem(k, OP_ADD, SMELT_F64, sm_kv_elem(k, OP_MUL, SMELT_F64, r, lw, -1), lx, -1);
  sm_kernel_store(k, o, i0, v, true, false);
  int two = sm_kv_const_f(k, SMELT_F64, 2.0);
  sm_kernel_store(k, y, ij, sm_kv_elem(k, OP_MUL, SMELT_F64, two, lx, -1), false, false);
  double X[24], W[4] = {1, 2, -1, 0.5}, O[4], Y[24];
  for (int i = 0; i < 24; i++) X[i] = (double)(i % 5) - 1.5;
  void *args[4] = {X, W, O, Y};
  run1(k, args, NULL);
  for (int i = 0; i < 4; i++) {
    double s = 0;
    for (int j = 0; j < 6; j++) s += X[i * 6 + j] * X[i * 6 + j];
    double want = sqrt(s) * W[i] + X[i * 6];
    ck_assert_msg(fabs(O[i] - want) <= 1e-12 * fabs(want), "[%d] %.17g vs %.17g", i, O[i], want);
  }
  for (int i = 0; i < 24; i++) ck_assert(Y[i] == 2 * X[i]);
  sm_kernel_free(k);
}
END_TEST

START_TEST(full_reduction_and_empty_axis) {
  /* a rank-0 result: sum over both axes, par_axis -1; and a sum over an
   * axis of extent 0 writes the identity */
  sm_kernel *k = knew("all", SM_KERNEL_REDUCE, 2, TU_DIMS(3, 4), (const uint8_t[]){1, 1});
  int x = sm_kernel_arg(k, 0, SMELT_I64, KA_IN, 12);
  int o = sm_kernel_arg(k, 1, SMELT_I64, KA_OUT, 1);
  int lx = sm_kv_load(k, x, aff(k, 0, 4, 1, 0), -1, 0, 0);
  int a = sm_kernel_acc(k, OP_REDUCE_SUM, SMELT_I64, SMELT_I64, lx, -1, -1, -1);
  sm_kernel_store(k, o, sm_kv_const_i(k, SMELT_I64, 0), sm_kv_acc(k, a), true, false);
  int64_t X[12], O = -1;
  for (int i = 0; i < 12; i++) X[i] = i * 1000;
  void *args[2] = {X, &O};
  run1(k, args, NULL);
  ck_assert_int_eq(O, 66000);
  sm_kernel_free(k);

  k = knew("empty", SM_KERNEL_REDUCE, 2, TU_DIMS(3, 0), (const uint8_t[]){0, 1});
  x = sm_kernel_arg(k, 0, SMELT_F32, KA_IN, 0);
  o = sm_kernel_arg(k, 1, SMELT_F32, KA_OUT, 3);
  lx = sm_kv_load(k, x, aff(k, 0, 0, 1, 0), -1, 0, 0);
  int p = sm_kernel_acc(k, OP_REDUCE_PROD, SMELT_F32, SMELT_F32, lx, -1, -1, -1);
  sm_kernel_store(k, o, sm_kv_idx(k, 0), sm_kv_acc(k, p), true, false);
  float OF[3] = {0, 0, 0};
  void *args2[2] = {NULL, OF};
  run1(k, args2, NULL);
  ck_assert(OF[0] == 1 && OF[1] == 1 && OF[2] == 1);
  sm_kernel_free(k);
}
END_TEST

/* --------------------------------------------------------------- random */

START_TEST(rand_randn_bit_exact) {
  const int R = 3, C = 37;
  sm_kernel *k = knew("rng", SM_KERNEL_POINTWISE, 2, TU_DIMS(R, C), NULL);
  int o1 = sm_kernel_arg(k, 0, SMELT_F32, KA_OUT, R * C);
  int o2 = sm_kernel_arg(k, 1, SMELT_F64, KA_OUT, R * C);
  int o3 = sm_kernel_arg(k, 2, SMELT_F32, KA_OUT, R * C);
  int o4 = sm_kernel_arg(k, 3, SMELT_F64, KA_OUT, R * C);
  int lin = aff(k, 0, C, 1, 0);
  /* a linear index past 2^32 exercises the counter's high word */
  int big = aff(k, (int64_t)5 << 32, C, 1, 0);
  uint64_t seed = 0x123456789abcull;
  sm_kernel_store(k, o1, lin, sm_kv_rand(k, OP_RAND, SMELT_F32, seed, -1.0, 3.0, lin), false,
                  false);
  sm_kernel_store(k, o2, lin, sm_kv_rand(k, OP_RAND, SMELT_F64, 42, 0.0, 1.0, big), false, false);
  sm_kernel_store(k, o3, lin, sm_kv_rand(k, OP_RANDN, SMELT_F32, 7, 1.0, 2.0, lin), false, false);
  sm_kernel_store(k, o4, lin, sm_kv_rand(k, OP_RANDN, SMELT_F64, seed, -0.5, 0.25, big), false,
                  false);
  float A[111], Cc[111];
  double B[111], D[111];
  void *args[4] = {A, B, Cc, D};
  for (uint64_t step = 0; step < 3; step += 2) {
    sm_kctx ctx = {0};
    ctx.rng_step = step == 2 ? ((uint64_t)3 << 32) | 9 : 0;
    run1(k, args, &ctx);
    for (int i = 0; i < R * C; i++) {
      uint64_t s = ctx.rng_step, bi = ((uint64_t)5 << 32) + (uint64_t)i;
      float w1 = (float)(-1.0 + 4.0 * sm_rand_uniform_at(seed, s, (uint64_t)i, SMELT_F32));
      double w2 = 0.0 + 1.0 * sm_rand_uniform_at(42, s, bi, SMELT_F64);
      float w3 = (float)(1.0 + 2.0 * sm_rand_normal_at(7, s, (uint64_t)i, SMELT_F32));
      double w4 = -0.5 + 0.25 * sm_rand_normal_at(seed, s, bi, SMELT_F64);
      TU_CHECK(memcmp(&A[i], &w1, 4) == 0, "rand f32 [%d]: %.9g vs %.9g", i, A[i], w1);
      TU_CHECK(memcmp(&B[i], &w2, 8) == 0, "rand f64 [%d]: %.17g vs %.17g", i, B[i], w2);
      TU_CHECK(memcmp(&Cc[i], &w3, 4) == 0, "randn f32 [%d]: %.9g vs %.9g", i, Cc[i], w3);
      TU_CHECK(memcmp(&D[i], &w4, 8) == 0, "randn f64 [%d]: %.17g vs %.17g", i, D[i], w4);
    }
  }
  sm_kernel_free(k);
}
END_TEST

START_TEST(training_flag) {
  sm_kernel *k = knew("tr", SM_KERNEL_POINTWISE, 1, TU_DIMS(2), NULL);
  int o = sm_kernel_arg(k, 0, SMELT_BOOL, KA_OUT, 2);
  sm_kernel_store(k, o, sm_kv_idx(k, 0), sm_kv_training(k), false, false);
  uint8_t O[2] = {7, 7};
  void *args[1] = {O};
  sm_kctx ctx = {0};
  ctx.training = 1;
  run1(k, args, &ctx);
  ck_assert(O[0] == 1 && O[1] == 1);
  ctx.training = 0;
  run1(k, args, &ctx);
  ck_assert(O[0] == 0 && O[1] == 0);
  sm_kernel_free(k);
}
END_TEST

/* ---------------------------------------------------- checks and scatter */

START_TEST(check_reports_bad_index) {
  /* gather: out[i] = table[check(idx[i] < 4)] */
  sm_kernel *k = knew("gath", SM_KERNEL_POINTWISE, 1, TU_DIMS(6), NULL);
  int t = sm_kernel_arg(k, 0, SMELT_F32, KA_IN, 4);
  int ix = sm_kernel_arg(k, 1, SMELT_I64, KA_IN, 6);
  int o = sm_kernel_arg(k, 2, SMELT_F32, KA_OUT, 6);
  int i0 = sm_kv_idx(k, 0);
  int chk = sm_kv_check(k, sm_kv_load(k, ix, i0, -1, 0, 0), 4);
  sm_kernel_store(k, o, i0, sm_kv_load(k, t, chk, -1, 0, 0), false, false);
  float T[4] = {10, 11, 12, 13}, O[6];
  int64_t IX[6] = {3, 0, 2, 1, 1, 2};
  void *args[3] = {T, IX, O};
  sm_kctx ctx = {0};
  run1(k, args, &ctx);
  ck_assert_int_eq(ctx.error, 0);
  ck_assert(O[0] == 13 && O[2] == 12);
  IX[2] = 9;
  IX[4] = -1;
  run1(k, args, &ctx);
  ck_assert_int_eq(ctx.error, 1);
  ck_assert_int_eq(ctx.bad_index, 9);
  ck_assert_int_eq(ctx.bad_bound, 4);
  ck_assert(O[2] == 10 && O[4] == 10 && O[3] == 11); /* bad indices read as 0 */
  sm_kernel_free(k);
}
END_TEST

START_TEST(scatter_accumulate) {
  /* out[idx[i]] += src[i]; out starts as garbage: the kernel zeroes it */
  sm_kernel *k = knew("scat", SM_KERNEL_SCATTER, 1, TU_DIMS(7), NULL);
  k->par_axis = -1;
  int ix = sm_kernel_arg(k, 0, SMELT_I32, KA_IN, 7);
  int src = sm_kernel_arg(k, 1, SMELT_F64, KA_IN, 7);
  int o = sm_kernel_arg(k, 2, SMELT_F64, KA_OUT, 4);
  int i0 = sm_kv_idx(k, 0);
  int li = sm_kv_elem(k, OP_CAST, SMELT_I64, sm_kv_load(k, ix, i0, -1, 0, 0), -1, -1);
  sm_kernel_store(k, o, sm_kv_check(k, li, 4), sm_kv_load(k, src, i0, -1, 0, 0), false, true);
  int32_t IX[7] = {0, 3, 3, 1, 0, 3, 2};
  double S[7] = {1, 2, 4, 8, 16, 32, 64}, O[4] = {99, 99, 99, 99};
  void *args[3] = {IX, S, O};
  sm_kctx ctx = {0};
  run1(k, args, &ctx);
  ck_assert_int_eq(ctx.error, 0);
  ck_assert(O[0] == 17 && O[1] == 8 && O[2] == 64 && O[3] == 38);
  sm_kernel_free(k);
}
END_TEST

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  size_t got = fread(s, 1, (size_t)n, f);
  s[got] = 0;
  fclose(f);
  return s;
}

/* --------------------------------------------------------------- matmul */

/* C[b,m,n] = relu(sum_k A[b,m,k] * B[b,k,n] + bias[n]) (epilogue) or the
 * plain product; domain [batch, M, N, K r], par_axis m. */
static sm_kernel *mm_kernel(int64_t batch, int64_t M, int64_t N, int64_t K, bool epilogue,
                            smelt_dtype dt) {
  int64_t ext[4] = {batch, M, N, K};
  sm_kernel *k = knew("mm", SM_KERNEL_MATMUL, 4, ext, (const uint8_t[]){0, 0, 0, 1});
  k->par_axis = 1;
  int a = sm_kernel_arg(k, 0, dt, KA_IN, batch * M * K);
  int b = sm_kernel_arg(k, 1, dt, KA_IN, batch * K * N);
  int bias = sm_kernel_arg(k, 2, dt, KA_IN, N);
  int c = sm_kernel_arg(k, 3, dt, KA_OUT, batch * M * N);
  int64_t ca[4] = {M * K, K, 0, 1}, cb[4] = {K * N, 0, 1, N}, cc[4] = {M * N, N, 1, 0};
  int la = sm_kv_load(k, a, sm_kv_affine(k, 0, ca), -1, 0, 0);
  int lb = sm_kv_load(k, b, sm_kv_affine(k, 0, cb), -1, 0, 0);
  int prod = sm_kv_elem(k, OP_MUL, dt, la, lb, -1);
  int acc = sm_kernel_acc(k, OP_REDUCE_SUM, dt, dt, prod, -1, -1, -1);
  int v = sm_kv_acc(k, acc);
  if (epilogue) {
    int lbias = sm_kv_load(k, bias, sm_kv_idx(k, 2), -1, 0, 0);
    v = sm_kv_elem(k, OP_RELU, dt, sm_kv_elem(k, OP_ADD, dt, v, lbias, -1), -1, -1);
  }
  sm_kernel_store(k, c, sm_kv_affine(k, 0, cc), v, true, false);
  k->mm_m = 1, k->mm_n = 2, k->mm_k = 3, k->mm_a = la, k->mm_b = lb, k->mm_acc = acc;
  ck_assert(!k->oom);
  return k;
}

static void matmul_case(bool generic, bool epilogue, int64_t batch, int64_t M, int64_t N,
                        int64_t K) {
  if (generic) setenv("SMELT_LLVM_MATMUL", "generic", 1);
  else unsetenv("SMELT_LLVM_MATMUL");
  sm_kernel *k = mm_kernel(batch, M, N, K, epilogue, SMELT_F32);
  size_t na = (size_t)(batch * M * K), nb = (size_t)(batch * K * N), nc = (size_t)(batch * M * N);
  float *A = malloc(na * 4 + 4), *B = malloc(nb * 4 + 4), *C = malloc(nc * 4 + 4),
        *bias = malloc((size_t)N * 4 + 4);
  for (size_t i = 0; i < na; i++) A[i] = (float)((int)(i * 7 % 13) - 6) * 0.25f;
  for (size_t i = 0; i < nb; i++) B[i] = (float)((int)(i * 5 % 11) - 5) * 0.5f;
  for (int64_t i = 0; i < N; i++) bias[i] = (float)i - 2;
  void *args[4] = {A, B, bias, C};
  /* the IR before optimization shows which path was taken */
  char *dir = tu_temp_dir("llvm");
  sm_dump d;
  char *err = NULL;
  ck_assert_int_eq(sm_dump_init(&d, "llvm", dir, &err), 0);
  sm_jit *j = COMPILE(&k, 1, NULL, &d);
  char p[1024];
  snprintf(p, sizeof p, "%s/p%u.llvm.before.ll", dir, d.program);
  char *ir = read_text(p);
  ck_assert_ptr_nonnull(ir);
  bool blocked = strstr(ir, "call void @smelt_mm_f32") != NULL;
  ck_assert_msg(blocked == !generic, "matmul path: blocked=%d, generic wanted=%d", blocked,
                generic);
  free(ir);
  tu_rm_tree(dir);
  free(dir);
  sm_kctx ctx = {0};
  /* two chunks of rows, as the thread pool would call it */
  int64_t mid = M / 2;
  fn_of(j, "mm")(args, 0, mid, &ctx);
  fn_of(j, "mm")(args, mid, M, &ctx);
  for (int64_t b = 0; b < batch; b++)
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        double s = 0;
        for (int64_t q = 0; q < K; q++) s += (double)A[(b * M + m) * K + q] * B[(b * K + q) * N + n];
        if (epilogue) s = s + bias[n] > 0 ? s + bias[n] : 0;
        float got = C[(b * M + m) * N + n];
        TU_CHECK(fabs(got - s) <= 1e-4 * (1 + fabs(s)), "%s mm [%lld,%lld,%lld]: %g vs %g",
                 generic ? "generic" : "blocked", (long long)b, (long long)m, (long long)n, got,
                 s);
      }
  sm_jit_free(j);
  sm_kernel_free(k);
  free(A), free(B), free(C), free(bias);
  unsetenv("SMELT_LLVM_MATMUL");
}

START_TEST(matmul_generic_path) {
  matmul_case(true, false, 2, 5, 7, 9);
  matmul_case(true, true, 1, 17, 33, 20);
}
END_TEST

START_TEST(matmul_blocked_path) {
  matmul_case(false, false, 2, 5, 7, 9);
  matmul_case(false, true, 1, 17, 33, 20);
  matmul_case(false, true, 3, 64, 48, 31);
}
END_TEST

/* Runs the plain product kernel of mm_kernel (no epilogue) on all its
 * rows and compares with a float FMA chain over k. */
static void run_mm(sm_jit *j, const sm_kernel *k, int64_t batch, int64_t M, int64_t N,
                   int64_t K) {
  float *A = malloc(sizeof *A * (size_t)(batch * M * K)),
        *B = malloc(sizeof *B * (size_t)(batch * K * N)),
        *C = malloc(sizeof *C * (size_t)(batch * M * N));
  for (int64_t i = 0; i < batch * M * K; i++) A[i] = (float)(i % 7) - 3;
  for (int64_t i = 0; i < batch * K * N; i++) B[i] = (float)(i % 5) * 0.5f;
  void *args[4] = {A, B, NULL, C};
  sm_kctx ctx = {0};
  fn_of(j, k->name)(args, 0, M, &ctx);
  for (int64_t b = 0; b < batch; b++)
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        float s = 0;
        for (int64_t q = 0; q < K; q++)
          s = fmaf(A[(b * M + m) * K + q], B[(b * K + q) * N + n], s);
        ck_assert_msg(C[(b * M + m) * N + n] == s, "%s [%lld,%lld,%lld]: %g vs %g", k->name,
                      (long long)b, (long long)m, (long long)n, C[(b * M + m) * N + n], s);
      }
  free(A), free(B), free(C);
}

/* The blocked matmul is a module of its own per dtype, specialized for the
 * arguments that all of the program's calls pass the same (N, K, strides,
 * ldc: not M) and cached under them: a program whose matmul kernels agree
 * with an earlier one's (other M, other batch) loads it; other shapes give
 * another module; shapes that disagree leave those arguments free. Dumps
 * list the kernels' modules, then the matmuls'. */
START_TEST(matmul_module_cached_once) {
  unsetenv("SMELT_LLVM_MATMUL");
  char *dir = tu_temp_dir("llvm");
  smelt_compile_options o = opts();
  o.cache_dir = dir;
  o.num_threads = 2;
  sm_kernel *ks[4] = {mm_kernel(1, 17, 33, 20, false, SMELT_F32),
                      mm_kernel(2, 5, 33, 20, false, SMELT_F32),
                      mm_kernel(1, 6, 5, 4, false, SMELT_F64),
                      mm_kernel(2, 13, 7, 9, false, SMELT_F32)};
  snprintf(ks[1]->name, sizeof ks[1]->name, "mm2");
  snprintf(ks[2]->name, sizeof ks[2]->name, "mmd");
  snprintf(ks[3]->name, sizeof ks[3]->name, "mm3");
  size_t cached = 99;
  sm_jit *j = COMPILE(&ks[0], 1, &o, NULL);
  ck_assert_uint_eq(sm_jit_modules(j, &cached), 2); /* mm, smelt_mm_f32 */
  ck_assert_uint_eq(cached, 0);
  run_mm(j, ks[0], 1, 17, 33, 20);
  sm_jit_free(j);
  /* another kernel of the same N, K and strides: its module compiled, the
   * matmul's loaded */
  j = COMPILE(&ks[1], 1, &o, NULL);
  ck_assert_uint_eq(sm_jit_modules(j, &cached), 2);
  ck_assert_uint_eq(cached, 1);
  ck_assert(!sm_jit_from_cache(j));
  run_mm(j, ks[1], 2, 5, 33, 20);
  sm_jit_free(j);
  /* another N and K: another matmul */
  j = COMPILE(&ks[3], 1, &o, NULL);
  ck_assert_uint_eq(sm_jit_modules(j, &cached), 2);
  ck_assert_uint_eq(cached, 0);
  run_mm(j, ks[3], 2, 13, 7, 9);
  sm_jit_free(j);
  /* mm and mm2 agree: a module per kernel, then one per dtype, all but
   * the f64 ones cached */
  j = COMPILE(ks, 3, &o, NULL);
  ck_assert_uint_eq(sm_jit_modules(j, &cached), 5);
  ck_assert_uint_eq(cached, 3);
  sm_jit_free(j);
  j = COMPILE(ks, 3, &o, NULL);
  ck_assert_uint_eq(sm_jit_modules(j, &cached), 5);
  ck_assert_uint_eq(cached, 5);
  ck_assert(sm_jit_from_cache(j));
  run_mm(j, ks[0], 1, 17, 33, 20);
  run_mm(j, ks[1], 2, 5, 33, 20);
  sm_jit_free(j);
  /* mm and mm3 disagree on N, K, sam, sbk and ldc: one matmul for both,
   * specialized for the strides they share only */
  sm_kernel *mixed[2] = {ks[0], ks[3]};
  j = COMPILE(mixed, 2, &o, NULL);
  ck_assert_uint_eq(sm_jit_modules(j, &cached), 3);
  ck_assert_uint_eq(cached, 2); /* mm, mm3 */
  run_mm(j, ks[0], 1, 17, 33, 20);
  run_mm(j, ks[3], 2, 13, 7, 9);
  sm_jit_free(j);
  /* the dump: modules in order, whatever the threads did */
  char *ddir = tu_temp_dir("llvm");
  sm_dump d;
  char *err = NULL;
  ck_assert_int_eq(sm_dump_init(&d, "llvm", ddir, &err), 0);
  j = COMPILE(ks, 3, &o, &d);
  ck_assert_uint_eq(sm_jit_modules(j, &cached), 5);
  ck_assert_uint_eq(cached, 0); /* dumps do not read the cache */
  sm_jit_free(j);
  char p[1024];
  snprintf(p, sizeof p, "%s/p%u.llvm.after.ll", ddir, d.program);
  char *ir = read_text(p);
  ck_assert_ptr_nonnull(ir);
  const char *names[5] = {"mm", "mm2", "mmd", "smelt_mm_f32", "smelt_mm_f64"};
  const char *at = ir;
  for (int i = 0; i < 5; i++) {
    char id[64];
    snprintf(id, sizeof id, "; ModuleID = '%s'", names[i]);
    const char *next = strstr(at, id);
    ck_assert_msg(next != NULL, "module %s missing or out of order", names[i]);
    at = next + 1;
  }
  free(ir);
  tu_rm_tree(ddir);
  free(ddir);
  for (int i = 0; i < 4; i++) sm_kernel_free(ks[i]);
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

/* ------------------------------------------------ cache, dumps, vectors */

/* The one *.o file in dir (path into buf); false when none. */
static bool find_object(const char *dir, char *buf, size_t len) {
  DIR *d = opendir(dir);
  if (!d) return false;
  struct dirent *e;
  bool found = false;
  while ((e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n > 2 && e->d_name[0] != '.' && !strcmp(e->d_name + n - 2, ".o")) {
      snprintf(buf, len, "%s/%s", dir, e->d_name);
      found = true;
    }
  }
  closedir(d);
  return found;
}

static sm_kernel *scale_kernel(double factor) {
  sm_kernel *k = knew("scale", SM_KERNEL_POINTWISE, 1, TU_DIMS(8), NULL);
  int x = sm_kernel_arg(k, 0, SMELT_F64, KA_IN, 8);
  int o = sm_kernel_arg(k, 1, SMELT_F64, KA_OUT, 8);
  int i0 = sm_kv_idx(k, 0);
  int v = sm_kv_elem(k, OP_MUL, SMELT_F64, sm_kv_load(k, x, i0, -1, 0, 0),
                     sm_kv_const_f(k, SMELT_F64, factor), -1);
  sm_kernel_store(k, o, i0, v, false, false);
  return k;
}

static void run_scale(sm_jit *j, double factor) {
  double X[8], O[8];
  for (int i = 0; i < 8; i++) X[i] = i + 0.5;
  void *args[2] = {X, O};
  sm_kctx ctx = {0};
  fn_of(j, "scale")(args, 0, 8, &ctx);
  for (int i = 0; i < 8; i++) ck_assert(O[i] == X[i] * factor);
}

START_TEST(disk_cache_hit_and_recovery) {
  char *dir = tu_temp_dir("llvm");
  char sub[512];
  snprintf(sub, sizeof sub, "%s/a/b", dir); /* created on demand */
  smelt_compile_options o = opts();
  o.cache_dir = sub;
  sm_kernel *k = scale_kernel(3.0);
  sm_jit *j = COMPILE(&k, 1, &o, NULL);
  ck_assert(!sm_jit_from_cache(j));
  run_scale(j, 3.0);
  sm_jit_free(j);
  j = COMPILE(&k, 1, &o, NULL);
  ck_assert(sm_jit_from_cache(j));
  run_scale(j, 3.0);
  sm_jit_free(j);
  /* another kernel (another constant) is another key */
  sm_kernel *k2 = scale_kernel(5.0);
  j = COMPILE(&k2, 1, &o, NULL);
  ck_assert(!sm_jit_from_cache(j));
  run_scale(j, 5.0);
  sm_jit_free(j);
  sm_kernel_free(k2);
  /* other options are another key */
  o.opt_level = 1;
  j = COMPILE(&k, 1, &o, NULL);
  ck_assert(!sm_jit_from_cache(j));
  sm_jit_free(j);
  o.opt_level = 3;

  /* corrupt the object: flip a byte of the payload, then truncate */
  char path[1024];
  sm_kernel *k3 = scale_kernel(7.0);
  tu_rm_tree(sub);
  j = COMPILE(&k3, 1, &o, NULL);
  sm_jit_free(j);
  ck_assert(find_object(sub, path, sizeof path));
  FILE *f = fopen(path, "r+b");
  ck_assert_ptr_nonnull(f);
  fseek(f, 100, SEEK_SET);
  int c = fgetc(f);
  fseek(f, 100, SEEK_SET);
  fputc(c ^ 0x5a, f);
  fclose(f);
  j = COMPILE(&k3, 1, &o, NULL);
  ck_assert(!sm_jit_from_cache(j)); /* ignored and replaced */
  run_scale(j, 7.0);
  sm_jit_free(j);
  j = COMPILE(&k3, 1, &o, NULL);
  ck_assert(sm_jit_from_cache(j));
  sm_jit_free(j);
  ck_assert_int_eq(truncate(path, 30), 0);
  j = COMPILE(&k3, 1, &o, NULL);
  ck_assert(!sm_jit_from_cache(j));
  run_scale(j, 7.0);
  sm_jit_free(j);
  ck_assert_int_eq(truncate(path, 0), 0);
  j = COMPILE(&k3, 1, &o, NULL);
  ck_assert(!sm_jit_from_cache(j));
  sm_jit_free(j);
  j = COMPILE(&k3, 1, &o, NULL);
  ck_assert(sm_jit_from_cache(j));
  run_scale(j, 7.0);
  sm_jit_free(j);
  sm_kernel_free(k3);

  /* an unusable cache directory never fails compilation */
  o.cache_dir = "/proc/smelt-no-such-dir";
  j = COMPILE(&k, 1, &o, NULL);
  ck_assert(!sm_jit_from_cache(j));
  run_scale(j, 3.0);
  sm_jit_free(j);
  sm_kernel_free(k);
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

START_TEST(dumps_to_directory) {
  char *dir = tu_temp_dir("llvm");
  sm_dump d;
  char *err = NULL;
  ck_assert_int_eq(sm_dump_init(&d, "llvm,asm", dir, &err), 0);
  sm_kernel *k = scale_kernel(2.0);
  sm_jit *j = COMPILE(&k, 1, NULL, &d);
  run_scale(j, 2.0);
  sm_jit_free(j);
  sm_kernel_free(k);
  char p[1024];
  const char *parts[3] = {"llvm.before.ll", "llvm.after.ll", "asm.s"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/p%u.%s", dir, d.program, parts[i]);
    char *text = read_text(p);
    ck_assert_msg(text != NULL, "no dump %s", p);
    ck_assert_msg(strstr(text, "scale") != NULL, "%s does not name the kernel", p);
    free(text);
  }
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

START_TEST(fused_elementwise_vectorizes) {
  char *triple = LLVMGetDefaultTargetTriple();
  bool x86 = strncmp(triple, "x86_64", 6) == 0;
  LLVMDisposeMessage(triple);
  if (!x86) return; /* the registers looked for are x86's */
  /* 8 fused ops: out = relu((x*y + x - y) * 0.5 / y) max x, abs, neg */
  const int64_t n = 1024;
  sm_kernel *k = knew("fused8", SM_KERNEL_POINTWISE, 1, &n, NULL);
  int x = sm_kernel_arg(k, 0, SMELT_F32, KA_IN, n);
  int y = sm_kernel_arg(k, 1, SMELT_F32, KA_IN, n);
  int o = sm_kernel_arg(k, 2, SMELT_F32, KA_OUT, n);
  int i0 = sm_kv_idx(k, 0);
  int lx = sm_kv_load(k, x, i0, -1, 0, 0), ly = sm_kv_load(k, y, i0, -1, 0, 0);
  int v = sm_kv_elem(k, OP_MUL, SMELT_F32, lx, ly, -1);
  v = sm_kv_elem(k, OP_ADD, SMELT_F32, v, lx, -1);
  v = sm_kv_elem(k, OP_SUB, SMELT_F32, v, ly, -1);
  v = sm_kv_elem(k, OP_MUL, SMELT_F32, v, sm_kv_const_f(k, SMELT_F32, 0.5), -1);
  v = sm_kv_elem(k, OP_DIV, SMELT_F32, v, ly, -1);
  v = sm_kv_elem(k, OP_RELU, SMELT_F32, v, -1, -1);
  v = sm_kv_elem(k, OP_MAXIMUM, SMELT_F32, v, lx, -1);
  v = sm_kv_elem(k, OP_ABS, SMELT_F32, v, -1, -1);
  sm_kernel_store(k, o, i0, v, false, false);
  char *dir = tu_temp_dir("llvm");
  sm_dump d;
  char *err = NULL;
  ck_assert_int_eq(sm_dump_init(&d, "asm", dir, &err), 0);
  sm_jit *j = COMPILE(&k, 1, NULL, &d);
  float X[1024], Y[1024], O[1024];
  for (int i = 0; i < n; i++) X[i] = (float)(i % 17) - 8, Y[i] = (float)(i % 5) + 0.5f;
  void *args[3] = {X, Y, O};
  sm_kctx ctx = {0};
  fn_of(j, "fused8")(args, 0, n, &ctx);
  for (int i = 0; i < n; i++) {
    float t = (X[i] * Y[i] + X[i] - Y[i]) * 0.5f / Y[i];
    t = t < 0 ? 0 : t;
    t = t > X[i] ? t : X[i];
    TU_CHECK(fabsf(O[i] - fabsf(t)) <= 1e-5f * (1 + fabsf(t)), "[%d] %g vs %g", i, O[i],
             fabsf(t));
  }
  sm_jit_free(j);
  char p[1024];
  snprintf(p, sizeof p, "%s/p%u.asm.s", dir, d.program);
  char *text = read_text(p);
  ck_assert_ptr_nonnull(text);
  bool vec_regs = strstr(text, "ymm") || strstr(text, "zmm") || strstr(text, "xmm");
  bool packed = strstr(text, "vmulps") || strstr(text, "mulps") || strstr(text, "vfmadd") ||
                strstr(text, "vdivps") || strstr(text, "divps");
  ck_assert_msg(vec_regs && packed, "fused8 did not vectorize (no packed f32 ops)");
  free(text);
  tu_rm_tree(dir);
  free(dir);
  sm_kernel_free(k);
}
END_TEST

START_TEST(bad_kernels_report_errors) {
  /* accumulating stores on a split kernel are refused with a message */
  sm_kernel *k = knew("badscat", SM_KERNEL_SCATTER, 1, TU_DIMS(4), NULL);
  int o = sm_kernel_arg(k, 0, SMELT_F32, KA_OUT, 4);
  int i0 = sm_kv_idx(k, 0);
  sm_kernel_store(k, o, i0, sm_kv_const_f(k, SMELT_F32, 1), false, true);
  smelt_compile_options op = opts();
  char *err = NULL;
  sm_jit *j = sm_jit_compile(&k, 1, &op, NULL, &err);
  ck_assert_ptr_null(j);
  ck_assert_ptr_nonnull(err);
  ck_assert_msg(strstr(err, "badscat") != NULL, "%s", err);
  sm_free(err);
  sm_kernel_free(k);
  /* a reduced loop around a non-reduced one without scratch */
  k = knew("noscratch", SM_KERNEL_REDUCE, 2, TU_DIMS(3, 4), (const uint8_t[]){1, 0});
  int x = sm_kernel_arg(k, 0, SMELT_F32, KA_IN, 12);
  o = sm_kernel_arg(k, 1, SMELT_F32, KA_OUT, 4);
  int lx = sm_kv_load(k, x, aff(k, 0, 4, 1, 0), -1, 0, 0);
  int a = sm_kernel_acc(k, OP_REDUCE_SUM, SMELT_F32, SMELT_F32, lx, -1, -1, -1);
  sm_kernel_store(k, o, sm_kv_idx(k, 1), sm_kv_acc(k, a), true, false);
  err = NULL;
  j = sm_jit_compile(&k, 1, &op, NULL, &err);
  ck_assert_ptr_null(j);
  ck_assert_msg(err && strstr(err, "scratch"), "%s", err ? err : "");
  sm_free(err);
  sm_kernel_free(k);
}
END_TEST

START_TEST(several_kernels_one_module) {
  sm_kernel *ks[2] = {scale_kernel(2.0), scale_kernel(4.0)};
  snprintf(ks[1]->name, sizeof ks[1]->name, "scale4");
  sm_jit *j = COMPILE(ks, 2, NULL, NULL);
  run_scale(j, 2.0);
  double X[8], O[8];
  for (int i = 0; i < 8; i++) X[i] = i;
  void *args[2] = {X, O};
  sm_kctx ctx = {0};
  fn_of(j, "scale4")(args, 0, 8, &ctx);
  ck_assert(O[7] == 28);
  ck_assert(sm_jit_lookup(j, "nope") == NULL);
  sm_jit_free(j);
  sm_kernel_free(ks[0]);
  sm_kernel_free(ks[1]);
}
END_TEST

/* The number of cache entries (*.o) in dir. */
static int count_objects(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    n += len > 2 && e->d_name[0] != '.' && !strcmp(e->d_name + len - 2, ".o");
  }
  closedir(d);
  return n;
}

static sm_kernel *named_scale(const char *name, double factor) {
  sm_kernel *k = scale_kernel(factor);
  snprintf(k->name, sizeof k->name, "%s", name);
  return k;
}

static void run_named_scale(sm_jit *j, const char *name, double factor) {
  double X[8], O[8];
  for (int i = 0; i < 8; i++) X[i] = i + 0.25;
  void *args[2] = {X, O};
  sm_kctx ctx = {0};
  fn_of(j, name)(args, 0, 8, &ctx);
  for (int i = 0; i < 8; i++) ck_assert(O[i] == X[i] * factor);
}

/* Each kernel is cached on its own: a program that shares a kernel with
 * an earlier one loads that kernel's object and compiles only the rest. */
START_TEST(cache_per_kernel) {
  char *dir = tu_temp_dir("llvm");
  smelt_compile_options o = opts();
  o.cache_dir = dir;
  o.num_threads = 2;
  sm_kernel *first[2] = {named_scale("sa", 2.0), named_scale("sb", 3.0)};
  sm_kernel *second[2] = {named_scale("sb", 3.0), named_scale("sc", 5.0)};
  size_t cached = 99;
  sm_jit *j = COMPILE(first, 2, &o, NULL);
  ck_assert_uint_eq(sm_jit_modules(j, &cached), 2);
  ck_assert_uint_eq(cached, 0);
  ck_assert(!sm_jit_from_cache(j));
  sm_jit_free(j);
  ck_assert_int_eq(count_objects(dir), 2);
  j = COMPILE(second, 2, &o, NULL);
  ck_assert_uint_eq(sm_jit_modules(j, &cached), 2);
  ck_assert_uint_eq(cached, 1); /* sb */
  ck_assert(!sm_jit_from_cache(j)); /* only when every module is cached */
  run_named_scale(j, "sb", 3.0);
  run_named_scale(j, "sc", 5.0);
  sm_jit_free(j);
  ck_assert_int_eq(count_objects(dir), 3);
  j = COMPILE(second, 2, &o, NULL);
  ck_assert_uint_eq(sm_jit_modules(j, &cached), 2);
  ck_assert_uint_eq(cached, 2);
  ck_assert(sm_jit_from_cache(j));
  run_named_scale(j, "sb", 3.0);
  run_named_scale(j, "sc", 5.0);
  sm_jit_free(j);
  /* the name is part of the kernel (its symbol): another name, another key */
  sm_kernel *renamed = named_scale("sd", 3.0);
  j = COMPILE(&renamed, 1, &o, NULL);
  ck_assert(!sm_jit_from_cache(j));
  run_named_scale(j, "sd", 3.0);
  sm_jit_free(j);
  sm_kernel_free(renamed);
  for (int i = 0; i < 2; i++) sm_kernel_free(first[i]), sm_kernel_free(second[i]);
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

/* A process whose first compilation finds everything in the cache makes
 * no target machine, yet ORC needs LLVM's targets: a child process fills
 * the cache, then this one (which has not compiled anything when Check
 * forks a process per test) loads and links. */
START_TEST(all_cached_in_a_fresh_process) {
  char *dir = tu_temp_dir("llvm");
  smelt_compile_options o = opts();
  o.cache_dir = dir;
  sm_kernel *k = named_scale("fresh", 6.0);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    char *err = NULL;
    sm_jit *j = sm_jit_compile(&k, 1, &o, NULL, &err);
    _exit(j && !sm_jit_from_cache(j) ? 0 : 1);
  }
  int status = 0;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  sm_jit *j = COMPILE(&k, 1, &o, NULL);
  ck_assert(sm_jit_from_cache(j));
  run_named_scale(j, "fresh", 6.0);
  sm_jit_free(j);
  sm_kernel_free(k);
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

/* A split kernel with an accumulating store: refused by the emitter. */
static sm_kernel *bad_scatter(const char *name) {
  sm_kernel *k = knew(name, SM_KERNEL_SCATTER, 1, TU_DIMS(4), NULL);
  int o = sm_kernel_arg(k, 0, SMELT_F32, KA_OUT, 4);
  sm_kernel_store(k, o, sm_kv_idx(k, 0), sm_kv_const_f(k, SMELT_F32, 1), false, true);
  return k;
}

/* Modules compile on several threads, but the error reported is always
 * that of the first failing kernel in the program's order, naming it, and
 * the same as with one thread. */
START_TEST(errors_from_threads_name_the_kernel) {
  enum { N = 8 };
  sm_kernel *ks[N];
  char name[32];
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "k%d", i);
    ks[i] = i == 3 || i == 6 ? bad_scatter(name) : named_scale(name, i + 1.0);
  }
  char *one = NULL;
  for (int threads = 1; threads <= 4; threads++) {
    for (int rep = 0; rep < 3; rep++) {
      smelt_compile_options o = opts();
      o.num_threads = threads;
      char *err = NULL;
      sm_jit *j = sm_jit_compile(ks, N, &o, NULL, &err);
      ck_assert_ptr_null(j);
      ck_assert_ptr_nonnull(err);
      ck_assert_msg(strncmp(err, "kernel k3:", 10) == 0, "%d threads: %s", threads, err);
      if (!one) one = err;
      else {
        ck_assert_str_eq(err, one);
        sm_free(err);
      }
    }
  }
  sm_free(one);
  /* the later one once the first is gone */
  sm_kernel_free(ks[3]);
  ks[3] = named_scale("k3", 4.0);
  smelt_compile_options o = opts();
  o.num_threads = 4;
  char *err = NULL;
  ck_assert_ptr_null(sm_jit_compile(ks, N, &o, NULL, &err));
  ck_assert_msg(err && strncmp(err, "kernel k6:", 10) == 0, "%s", err ? err : "");
  sm_free(err);
  /* two kernels of one name: refused before anything is compiled */
  sm_kernel_free(ks[6]);
  ks[6] = named_scale("k2", 7.0);
  err = NULL;
  ck_assert_ptr_null(sm_jit_compile(ks, N, &o, NULL, &err));
  ck_assert_msg(err && strstr(err, "k2: name used twice"), "%s", err ? err : "");
  sm_free(err);
  for (int i = 0; i < N; i++) sm_kernel_free(ks[i]);
}
END_TEST

/* The same kernels compiled on one thread and on four: the same IR and
 * assembly, and the same results. */
START_TEST(threads_match_one_thread) {
  enum { N = 6 };
  sm_kernel *ks[N];
  char name[32];
  for (int i = 0; i < N - 1; i++) {
    snprintf(name, sizeof name, "s%d", i);
    ks[i] = named_scale(name, 0.5 + i);
  }
  /* and a reduction with f64 accumulation */
  sm_kernel *k = knew("rowsum", SM_KERNEL_REDUCE, 2, TU_DIMS(3, 5), (const uint8_t[]){0, 1});
  int x = sm_kernel_arg(k, 0, SMELT_F32, KA_IN, 15);
  int out = sm_kernel_arg(k, 1, SMELT_F32, KA_OUT, 3);
  int lx = sm_kv_load(k, x, aff(k, 0, 5, 1, 0), -1, 0, 0);
  int a = sm_kernel_acc(k, OP_REDUCE_SUM, SMELT_F32, SMELT_F64, lx, -1, -1, -1);
  sm_kernel_store(k, out, sm_kv_idx(k, 0), sm_kv_acc(k, a), true, false);
  ks[N - 1] = k;
  char *texts[2][2] = {{NULL}};
  float sums[2][3];
  for (int t = 0; t < 2; t++) {
    char *dir = tu_temp_dir("llvm");
    sm_dump d;
    char *err = NULL;
    ck_assert_int_eq(sm_dump_init(&d, "llvm,asm", dir, &err), 0);
    smelt_compile_options o = opts();
    o.num_threads = t ? 4 : 1;
    sm_jit *j = COMPILE(ks, N, &o, &d);
    for (int i = 0; i < N - 1; i++) {
      snprintf(name, sizeof name, "s%d", i);
      run_named_scale(j, name, 0.5 + i);
    }
    float X[15];
    for (int i = 0; i < 15; i++) X[i] = 1.0f / (float)(i + 1);
    void *args[2] = {X, sums[t]};
    sm_kctx ctx = {0};
    fn_of(j, "rowsum")(args, 0, k->par_axis >= 0 ? k->extent[k->par_axis] : 0, &ctx);
    sm_jit_free(j);
    char p[1024];
    snprintf(p, sizeof p, "%s/p%u.llvm.after.ll", dir, d.program);
    texts[t][0] = read_text(p);
    snprintf(p, sizeof p, "%s/p%u.asm.s", dir, d.program);
    texts[t][1] = read_text(p);
    ck_assert(texts[t][0] && texts[t][1]);
    tu_rm_tree(dir);
    free(dir);
  }
  ck_assert_str_eq(texts[0][0], texts[1][0]);
  ck_assert_str_eq(texts[0][1], texts[1][1]);
  ck_assert(memcmp(sums[0], sums[1], sizeof sums[0]) == 0);
  ck_assert(sums[0][0] == (float)(1.0 + 1 / 2.0f + 1 / 3.0f + 1 / 4.0f + 1 / 5.0f));
  for (int t = 0; t < 2; t++) free(texts[t][0]), free(texts[t][1]);
  for (int i = 0; i < N; i++) sm_kernel_free(ks[i]);
}
END_TEST

/* The scalar op tables: the shared one (codegen/scalar_ops.c) against the
 * graph op table, and llvm_ops against it: a form for every op in exactly
 * the domains it is defined in, comparisons whose NaN rule is the shared
 * one, transcendentals through llvm_math.c. */
START_TEST(op_tables) {
  char *why = NULL;
  ck_assert_msg(sm_scalar_ops_check(&why) == 0, "%s", why);
  ck_assert_msg(sm_llvm_ops_check(&why) == 0, "%s", why);
}
END_TEST

int main(void) {
  Suite *s = suite_create("llvm");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, broadcast_add);
  tcase_add_test(tc, unary_ops_all_dtypes);
  tcase_add_test(tc, binary_ops_all_dtypes);
  tcase_add_test(tc, casts_all_pairs);
  tcase_add_test(tc, where_and_masked_load);
  tcase_add_test(tc, sum_inner_axis_registers);
  tcase_add_test(tc, sum_outer_axis_scratch);
  tcase_add_test(tc, prod_max_min_nan);
  tcase_add_test(tc, argmax_argmin_ties_nan);
  tcase_add_test(tc, outer_store_epilogue);
  tcase_add_test(tc, full_reduction_and_empty_axis);
  tcase_add_test(tc, rand_randn_bit_exact);
  tcase_add_test(tc, training_flag);
  tcase_add_test(tc, check_reports_bad_index);
  tcase_add_test(tc, scatter_accumulate);
  tcase_add_test(tc, matmul_generic_path);
  tcase_add_test(tc, disk_cache_hit_and_recovery);
  tcase_add_test(tc, dumps_to_directory);
  tcase_add_test(tc, fused_elementwise_vectorizes);
  tcase_add_test(tc, bad_kernels_report_errors);
  tcase_add_test(tc, several_kernels_one_module);
  tcase_add_test(tc, op_tables);
  tcase_add_test(tc, cache_per_kernel);
  tcase_add_test(tc, all_cached_in_a_fresh_process);
  tcase_add_test(tc, errors_from_threads_name_the_kernel);
  tcase_add_test(tc, threads_match_one_thread);
  suite_add_tcase(s, tc);
  /* its own case: the blocked kernel's large unrolled blocks exceed what
   * valgrind's translator handles, so memcheck runs may skip it with
   * CK_RUN_CASE=core */
  TCase *mm = tcase_create("blocked_matmul");
  tcase_set_timeout(mm, 120);
  tcase_add_test(mm, matmul_blocked_path);
  tcase_add_test(mm, matmul_module_cached_once);
  suite_add_tcase(s, mm);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
