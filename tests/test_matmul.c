/* The blocked matmul of the LLVM backend (codegen/llvm_matmul.c) against a
 * naive one. The function is emitted into a module with an external
 * wrapper of the same signature, optimized at O3 for the host, JIT-compiled
 * with ORC LLJIT once for the suite, and run on every kind of shape and
 * layout (also for AVX2 and SSE2 tile sizes on an x86-64 host). Each
 * result is checked twice: within K*eps*sum|a||b| of a sum in
 * double, and bit for bit against the FMA chain over k in increasing order
 * that the interface promises (which also makes split row ranges exact).
 *
 * SMELT_MM_BENCH=1 prints a table of GFLOP/s, SMELT_MM_SHAPE=M,K,N,ta,tb
 * with it the rate of that one product (docs/matmul.md). */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "../codegen/llvm_matmul.h"
#include "testutil.h"

typedef void (*mm_f32_fn)(const float *A, const float *B, float *C, int64_t M, int64_t N, int64_t K,
                          int64_t sam, int64_t sak, int64_t sbk, int64_t sbn, int64_t ldc,
                          int64_t m_begin, int64_t m_end);
typedef void (*mm_f64_fn)(const double *A, const double *B, double *C, int64_t M, int64_t N,
                          int64_t K, int64_t sam, int64_t sak, int64_t sbk, int64_t sbn,
                          int64_t ldc, int64_t m_begin, int64_t m_end);

/* Built once by the unchecked fixture (in the parent, before any fork). */
static struct {
  LLVMOrcLLJITRef jit;
  mm_f32_fn f32, v32[3]; /* f32, f64: the variant under test (v32[0] = host) */
  mm_f64_fn f64, v64[3];
  int nvariants;
  bool same_fn;     /* a second sm_llvm_matmul_fn call returned the first function */
  bool others_null; /* integer dtypes gave NULL */
  char *setup_err;  /* malloc'ed; a test fails with it */
} J;

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

/* Takes an LLVMErrorRef: NULL on success, else a malloc'ed message. */
static char *take_error(LLVMErrorRef e, const char *what) {
  if (!e)
    return NULL;
  char *msg = LLVMGetErrorMessage(e);
  char *out = malloc(strlen(what) + strlen(msg) + 3);
  if (out)
    sprintf(out, "%s: %s", what, msg);
  LLVMDisposeErrorMessage(msg);
  return out;
}

/* An external function "name" with the same signature that calls fn. */
static void add_wrapper(LLVMModuleRef m, LLVMValueRef fn, const char *name) {
  LLVMTypeRef ty = LLVMGlobalGetValueType(fn);
  LLVMValueRef w = LLVMAddFunction(m, name, ty);
  LLVMContextRef cx = LLVMGetModuleContext(m);
  LLVMBuilderRef b = LLVMCreateBuilderInContext(cx);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(cx, w, "entry"));
  LLVMValueRef args[13];
  for (unsigned i = 0; i < 13; i++)
    args[i] = LLVMGetParam(w, i);
  LLVMBuildCall2(b, ty, fn, args, 13, "");
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);
}

/* A target machine for this host's triple with the given CPU and features
 * (the host's own when cpu is NULL). */
static LLVMTargetMachineRef make_machine(const char *cpu, const char *features, char **err) {
  char *triple = LLVMGetDefaultTargetTriple();
  char *hcpu = LLVMGetHostCPUName(), *hfeatures = LLVMGetHostCPUFeatures();
  LLVMTargetRef target;
  char *msg = NULL;
  LLVMTargetMachineRef tm = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &msg) != 0) {
    *err = dup_str(msg);
  } else {
    tm = LLVMCreateTargetMachine(target, triple, cpu ? cpu : hcpu, cpu ? features : hfeatures,
                                 LLVMCodeGenLevelAggressive, LLVMRelocPIC, LLVMCodeModelJITDefault);
    if (!tm)
      *err = dup_str("cannot create a target machine");
  }
  if (msg)
    LLVMDisposeMessage(msg);
  LLVMDisposeMessage(triple);
  LLVMDisposeMessage(hcpu);
  LLVMDisposeMessage(hfeatures);
  return tm;
}

/* Emits both functions for variant v's target machine into a module with
 * wrappers mm_f32_<v> and mm_f64_<v>, optimizes it and adds it to the JIT. */
static char *add_variant(int v, LLVMTargetMachineRef tm) {
  LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
  LLVMContextRef cx = LLVMOrcThreadSafeContextGetContext(tsc);
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("test_matmul", cx);
  char *triple = LLVMGetTargetMachineTriple(tm);
  LLVMSetTarget(m, triple);
  LLVMDisposeMessage(triple);
  LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
  LLVMSetModuleDataLayout(m, dl);
  LLVMDisposeTargetData(dl);

  LLVMValueRef f32 = sm_llvm_matmul_fn(m, tm, SMELT_F32);
  LLVMValueRef f64 = sm_llvm_matmul_fn(m, tm, SMELT_F64);
  if (v == 0) {
    J.same_fn = f32 && f64 && sm_llvm_matmul_fn(m, tm, SMELT_F32) == f32 &&
                sm_llvm_matmul_fn(m, tm, SMELT_F64) == f64;
    J.others_null = !sm_llvm_matmul_fn(m, tm, SMELT_I32) && !sm_llvm_matmul_fn(m, tm, SMELT_I64) &&
                    !sm_llvm_matmul_fn(m, tm, SMELT_BOOL);
  }
  char n32[32], n64[32];
  snprintf(n32, sizeof n32, "mm_f32_%d", v);
  snprintf(n64, sizeof n64, "mm_f64_%d", v);
  if (f32)
    add_wrapper(m, f32, n32);
  if (f64)
    add_wrapper(m, f64, n64);

  char *err = NULL, *msg = NULL;
  if (LLVMVerifyModule(m, LLVMReturnStatusAction, &msg))
    err = dup_str(msg);
  LLVMDisposeMessage(msg);
  if (!err) {
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    err = take_error(LLVMRunPasses(m, "default<O3>", tm, opts), "passes");
    LLVMDisposePassBuilderOptions(opts);
  }
  if (err) {
    LLVMDisposeModule(m);
    LLVMOrcDisposeThreadSafeContext(tsc);
    return err;
  }
  LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m, tsc); /* takes m */
  LLVMOrcDisposeThreadSafeContext(tsc); /* the module keeps the context alive */
  err = take_error(LLVMOrcLLJITAddLLVMIRModule(J.jit, LLVMOrcLLJITGetMainJITDylib(J.jit), tsm),
                   "add module");
  if (err) {
    LLVMOrcDisposeThreadSafeModule(tsm);
    return err;
  }
  LLVMOrcJITTargetAddress a32 = 0, a64 = 0;
  err = take_error(LLVMOrcLLJITLookup(J.jit, &a32, n32), "lookup");
  if (!err)
    err = take_error(LLVMOrcLLJITLookup(J.jit, &a64, n64), "lookup");
  if (err)
    return err;
  /* ISO C has no function/object pointer conversion; POSIX guarantees it */
  memcpy(&J.v32[v], &(void *){(void *)(uintptr_t)a32}, sizeof J.v32[v]);
  memcpy(&J.v64[v], &(void *){(void *)(uintptr_t)a64}, sizeof J.v64[v]);
  return NULL;
}

/* Variant 0 is tuned for the host. On x86-64 two more are emitted for
 * narrower targets (AVX2: 6x16 f32 tiles; SSE2: 6x8) and run here too, so
 * that every tile configuration is checked on this machine. */
static const char *const variant_cpu[] = {NULL, "haswell", "x86-64"};

static char *build_jit(void) {
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  LLVMOrcJITTargetMachineBuilderRef jtmb = NULL;
  char *err = take_error(LLVMOrcJITTargetMachineBuilderDetectHost(&jtmb), "host");
  if (err)
    return err;
  LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, jtmb);   /* takes jtmb */
  err = take_error(LLVMOrcCreateLLJIT(&J.jit, jb), "LLJIT"); /* takes jb */
  if (err)
    return err;

  char *triple = LLVMGetDefaultTargetTriple();
  bool x86 = strncmp(triple, "x86_64", 6) == 0;
  LLVMDisposeMessage(triple);
  /* without AVX-512 (as under valgrind, which hides it) the host variant
   * already has the AVX2 sizes: skip the copy, it only costs compile time */
  char *features = LLVMGetHostCPUFeatures();
  bool avx512 = strstr(features, "+avx512f") != NULL;
  LLVMDisposeMessage(features);
  J.nvariants = x86 ? 3 : 1;
  for (int v = 0; v < J.nvariants && !err; v++) {
    if (v == 1 && !avx512) {
      J.v32[v] = J.v32[0];
      J.v64[v] = J.v64[0];
      continue;
    }
    LLVMTargetMachineRef tm = make_machine(variant_cpu[v], "", &err);
    if (!tm)
      break;
    err = add_variant(v, tm);
    LLVMDisposeTargetMachine(tm);
  }
  J.f32 = J.v32[0];
  J.f64 = J.v64[0];
  return err;
}

static void jit_setup(void) { J.setup_err = build_jit(); }

static void jit_teardown(void) {
  if (J.jit) {
    char *err = take_error(LLVMOrcDisposeLLJIT(J.jit), "dispose");
    free(err);
    J.jit = NULL;
  }
  free(J.setup_err);
  J.setup_err = NULL;
}

static void need_jit(void) {
  ck_assert_msg(!J.setup_err, "JIT setup: %s", J.setup_err ? J.setup_err : "");
  ck_assert(J.f32 && J.f64);
}

static void use_variant(int v) {
  J.f32 = J.v32[v];
  J.f64 = J.v64[v];
}

/* ------------------------------------------------------------- layouts */

/* How an operand is laid out in memory. */
enum {
  L_ROW,  /* row-major: A[m*K + k], B[k*N + n] */
  L_T,    /* transposed view: A[m + k*M], B[k + n*K] */
  L_BC0,  /* stride 0 along the first index (A rows / B rows all the same) */
  L_BC1,  /* stride 0 along the second index */
  L_FLIP, /* first index reversed: a negative stride from the last row */
  L_COUNT
};

/* Strides (s0 along the first index, s1 along the second) of an R x S
 * operand in layout l, the offset of element (0,0) and the storage size. */
static void layout(int l, int64_t R, int64_t S, int64_t *s0, int64_t *s1, int64_t *off,
                   int64_t *size) {
  *off = 0;
  *size = R * S;
  switch (l) {
  case L_ROW:
    *s0 = S, *s1 = 1;
    break;
  case L_T:
    *s0 = 1, *s1 = R;
    break;
  case L_BC0:
    *s0 = 0, *s1 = 1, *size = S;
    break;
  case L_BC1:
    *s0 = 1, *s1 = 0, *size = R;
    break;
  default:
    *s0 = -S, *s1 = 1, *off = (R - 1) * S;
    break;
  }
  if (*size < 1)
    *size = 1;
  if (*off < 0)
    *off = 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static double urand(void) { /* xorshift64*, uniform in [-1, 1) */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 2685821657736338717u) >> 11) * 0x1p-52 - 1.0;
}

/* One case: M x K (layout la) times K x N (layout lb), C with ldc = N + 3.
 * split < 0: one call over [0, M); otherwise two calls [0, split) and
 * [split, M), compared bit for bit with the single call too. */
static void check_case(bool f64, int64_t M, int64_t N, int64_t K, int la, int lb, int64_t split) {
  int64_t sam, sak, aoff, asz, sbk, sbn, boff, bsz;
  layout(la, M, K, &sam, &sak, &aoff, &asz);
  layout(lb, K, N, &sbk, &sbn, &boff, &bsz);
  int64_t ldc = N + 3, csz = (M > 0 ? M : 1) * ldc;
  size_t es = f64 ? sizeof(double) : sizeof(float);
  void *A = malloc((size_t)asz * es), *B = malloc((size_t)bsz * es);
  void *C = malloc((size_t)csz * es), *C1 = malloc((size_t)csz * es);
  ck_assert(A && B && C && C1);
  for (int64_t i = 0; i < asz; i++) {
    double v = urand() * ldexp(1.0, (int)(i % 5) - 2);
    if (f64)
      ((double *)A)[i] = v;
    else
      ((float *)A)[i] = (float)v;
  }
  for (int64_t i = 0; i < bsz; i++) {
    double v = urand();
    if (f64)
      ((double *)B)[i] = v;
    else
      ((float *)B)[i] = (float)v;
  }
  /* a sentinel everywhere: the padding columns must keep it */
  memset(C, 0x7f, (size_t)csz * es);
  memset(C1, 0x7f, (size_t)csz * es);

  const char *a = (const char *)A + aoff * (int64_t)es, *b = (const char *)B + boff * (int64_t)es;
  if (split < 0) {
    if (f64)
      J.f64((const double *)a, (const double *)b, C, M, N, K, sam, sak, sbk, sbn, ldc, 0, M);
    else
      J.f32((const float *)a, (const float *)b, C, M, N, K, sam, sak, sbk, sbn, ldc, 0, M);
  } else {
    if (f64) {
      J.f64((const double *)a, (const double *)b, C, M, N, K, sam, sak, sbk, sbn, ldc, split, M);
      J.f64((const double *)a, (const double *)b, C, M, N, K, sam, sak, sbk, sbn, ldc, 0, split);
      J.f64((const double *)a, (const double *)b, C1, M, N, K, sam, sak, sbk, sbn, ldc, 0, M);
    } else {
      J.f32((const float *)a, (const float *)b, C, M, N, K, sam, sak, sbk, sbn, ldc, split, M);
      J.f32((const float *)a, (const float *)b, C, M, N, K, sam, sak, sbk, sbn, ldc, 0, split);
      J.f32((const float *)a, (const float *)b, C1, M, N, K, sam, sak, sbk, sbn, ldc, 0, M);
    }
    TU_CHECK(memcmp(C, C1, (size_t)csz * es) == 0,
             "%s %lldx%lldx%lld la=%d lb=%d: rows [0,%lld)+[%lld,M) differ from one call",
             f64 ? "f64" : "f32", (long long)M, (long long)N, (long long)K, la, lb,
             (long long)split, (long long)split);
  }

  double eps = f64 ? DBL_EPSILON : FLT_EPSILON;
  for (int64_t m = 0; m < M; m++) {
    for (int64_t n = 0; n < ldc; n++) {
      const char *cell = (const char *)C + (m * ldc + n) * (int64_t)es;
      if (n >= N) {
        unsigned char want[8];
        memset(want, 0x7f, sizeof want);
        TU_CHECK(memcmp(cell, want, es) == 0, "padding C[%lld,%lld] was written", (long long)m,
                 (long long)n);
        continue;
      }
      double ref = 0, bound = 0, got;
      double chain64 = 0;
      float chain32 = 0;
      for (int64_t k = 0; k < K; k++) {
        int64_t ia = aoff + m * sam + k * sak, ib = boff + k * sbk + n * sbn;
        double x = f64 ? ((double *)A)[ia] : ((float *)A)[ia];
        double y = f64 ? ((double *)B)[ib] : ((float *)B)[ib];
        ref += x * y;
        bound += fabs(x * y);
        if (f64)
          chain64 = fma(x, y, chain64);
        else
          chain32 = fmaf((float)x, (float)y, chain32);
      }
      bool exact;
      if (f64) {
        got = *(const double *)cell;
        exact = memcmp(cell, &chain64, es) == 0;
      } else {
        got = *(const float *)cell;
        exact = memcmp(cell, &chain32, es) == 0;
      }
      TU_CHECK(fabs(got - ref) <= (double)K * eps * bound,
               "%s %lldx%lldx%lld la=%d lb=%d: C[%lld,%lld] = %.17g, want %.17g",
               f64 ? "f64" : "f32", (long long)M, (long long)N, (long long)K, la, lb, (long long)m,
               (long long)n, got, ref);
      TU_CHECK(exact,
               "%s %lldx%lldx%lld la=%d lb=%d: C[%lld,%lld] = %.17g, not the FMA chain %.17g",
               f64 ? "f64" : "f32", (long long)M, (long long)N, (long long)K, la, lb, (long long)m,
               (long long)n, got, f64 ? chain64 : (double)chain32);
    }
  }
  free(A);
  free(B);
  free(C);
  free(C1);
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_interface) {
  need_jit();
  ck_assert_msg(J.same_fn, "a second call must return the function already in the module");
  ck_assert_msg(J.others_null, "integer and bool dtypes must give NULL");
}
END_TEST

/* Shapes around the tile sizes (MR 6 or 12, NR 8 to 32, KC 128 to 256,
 * NC 256 to 1024, MC 4*MR), primes, vectors, K = 0. */
static const int64_t shapes[][3] = {
    {1, 1, 1},     {7, 13, 17},   {31, 37, 41},  {1, 100, 50},  {100, 1, 50},
    {5, 6, 0},     {1, 1, 0},     {12, 32, 5},   {6, 16, 3},    {13, 33, 257},
    {11, 31, 513}, {24, 64, 300}, {3, 600, 7},   {100, 40, 10}, {1, 1, 1000},
    {50, 17, 1},   {2, 1100, 3},  {49, 48, 129}, {97, 65, 2},   {36, 96, 256},
};

START_TEST(test_shapes) {
  need_jit();
  for (int v = 0; v < J.nvariants; v++) {
    use_variant(v);
    for (int f = 0; f < 2; f++)
      for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_case(f, shapes[i][0], shapes[i][1], shapes[i][2], L_ROW, L_ROW, -1);
  }
  use_variant(0);
}
END_TEST

START_TEST(test_layouts) {
  need_jit();
  static const int64_t few[][3] = {{31, 37, 41}, {13, 33, 257}, {1, 17, 5},
                                   {17, 1, 5},   {25, 70, 3},   {40, 10, 20}};
  for (int v = 0; v < J.nvariants; v++) {
    use_variant(v);
    for (int f = 0; f < 2; f++)
      for (int la = 0; la < L_COUNT; la++)
        for (int lb = 0; lb < L_COUNT; lb++)
          for (size_t i = 0; i < sizeof few / sizeof few[0]; i++)
            check_case(f, few[i][0], few[i][1], few[i][2], la, lb, -1);
  }
  use_variant(0);
}
END_TEST

/* Larger than every block in each dimension, both transposed layouts. */
START_TEST(test_large) {
  need_jit();
  for (int f = 0; f < 2; f++) {
    check_case(f, 257, 263, 129, L_ROW, L_ROW, -1);
    check_case(f, 257, 263, 129, L_T, L_ROW, -1);
    check_case(f, 257, 263, 129, L_ROW, L_T, -1);
  }
  check_case(false, 14, 1030, 300, L_ROW, L_ROW, 5);
  check_case(false, 257, 10, 300, L_ROW, L_ROW, -1); /* N <= NR: A read in place */
  check_case(true, 257, 10, 300, L_T, L_ROW, -1);
}
END_TEST

/* Two row ranges give the bits of one call (each thread of the runtime
 * computes a range), including empty and one-row ranges. */
START_TEST(test_row_ranges) {
  need_jit();
  static const int64_t splits[] = {0, 1, 5, 12, 13, 48, 49, 60};
  for (int f = 0; f < 2; f++)
    for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++) {
      check_case(f, 60, 45, 300, L_ROW, L_ROW, splits[i]);
      check_case(f, 60, 45, 37, L_T, L_T, splits[i]);
      check_case(f, 60, 10, 300, L_ROW, L_ROW, splits[i]);
    }
}
END_TEST

/* K = 0 writes zeros over whatever C held; an empty range writes nothing. */
START_TEST(test_k_zero_and_empty) {
  need_jit();
  float A[1] = {1}, B[1] = {1}, C[4 * 5];
  for (int i = 0; i < 20; i++)
    C[i] = NAN;
  J.f32(A, B, C, 4, 3, 0, 0, 0, 0, 0, 5, 1, 3);
  for (int m = 0; m < 4; m++)
    for (int n = 0; n < 5; n++) {
      bool written = m >= 1 && m < 3 && n < 3;
      if (written)
        ck_assert_msg(C[m * 5 + n] == 0 && !signbit(C[m * 5 + n]), "C[%d,%d]", m, n);
      else
        ck_assert_msg(isnan(C[m * 5 + n]), "C[%d,%d] outside the range was written", m, n);
    }
  J.f32(A, B, C, 4, 3, 2, 0, 0, 0, 0, 5, 3, 3); /* empty row range */
  J.f32(A, B, C, 4, 0, 2, 0, 0, 0, 0, 5, 0, 4); /* N = 0 */
  ck_assert(isnan(C[3 * 5]) && isnan(C[0]));
  double Ad[1] = {1}, Bd[1] = {1}, Cd[2] = {NAN, NAN};
  J.f64(Ad, Bd, Cd, 2, 1, 0, 0, 0, 0, 0, 1, 0, 2);
  ck_assert(Cd[0] == 0 && Cd[1] == 0);
}
END_TEST

/* An infinity in B spoils only its column: the zero padding of the packed
 * panels never meets real data in a stored element. */
START_TEST(test_nonfinite) {
  need_jit();
  enum { M = 13, N = 35, K = 9 };
  static float A[M * K], B[K * N], C[M * N];
  for (int i = 0; i < M * K; i++)
    A[i] = 1.0f + (float)(i % 7);
  for (int i = 0; i < K * N; i++)
    B[i] = (float)(i % 5) - 2.0f;
  B[4 * N + 33] = INFINITY;
  J.f32(A, B, C, M, N, K, K, 1, N, 1, N, 0, M);
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++)
      if (n == 33)
        ck_assert_msg(isinf(C[m * N + n]), "C[%d,%d] = %g", m, n, C[m * N + n]);
      else
        ck_assert_msg(isfinite(C[m * N + n]), "C[%d,%d] = %g", m, n, C[m * N + n]);
}
END_TEST

/* Bytes of the largest static frame (allocas of the entry block) among the
 * module's functions. */
static uint64_t max_static_frame(LLVMModuleRef m, LLVMTargetDataRef dl) {
  uint64_t most = 0;
  for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
    if (LLVMIsDeclaration(f))
      continue;
    uint64_t bytes = 0;
    for (LLVMValueRef i = LLVMGetFirstInstruction(LLVMGetEntryBasicBlock(f)); i;
         i = LLVMGetNextInstruction(i)) {
      if (!LLVMIsAAllocaInst(i))
        continue;
      LLVMValueRef n = LLVMGetOperand(i, 0);
      uint64_t count = LLVMIsAConstantInt(n) ? LLVMConstIntGetZExtValue(n) : 0;
      bytes += count * LLVMABISizeOfType(dl, LLVMGetAllocatedType(i));
    }
    if (bytes > most)
      most = bytes;
  }
  return most;
}

/* The packing buffers must never be part of a static frame, not even once
 * every argument is a constant and the function is inlined: a frame over
 * 8 pages makes LLVM 19's x86 prologue probe the stack with a loop that
 * clobbers r11, which shrink-wrapping may leave live across it (the
 * failure of test_batched_epilogue_programs). A caller with constant
 * arguments, optimized at O3 for each variant's target. */
START_TEST(test_static_frame) {
  need_jit();
  for (int v = 0; v < J.nvariants; v++) {
    char *err = NULL;
    LLVMTargetMachineRef tm = make_machine(variant_cpu[v], "", &err);
    ck_assert_msg(tm, "target machine: %s", err ? err : "");
    LLVMContextRef cx = LLVMContextCreate();
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("frame", cx);
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(m, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(m, dl);
    for (int d = 0; d < 2; d++) {
      LLVMValueRef fn = sm_llvm_matmul_fn(m, tm, d ? SMELT_F64 : SMELT_F32);
      ck_assert(fn);
      LLVMTypeRef ptr = LLVMPointerTypeInContext(cx, 0), i64 = LLVMInt64TypeInContext(cx);
      LLVMValueRef caller = LLVMAddFunction(
          m, d ? "caller64" : "caller32",
          LLVMFunctionType(LLVMVoidTypeInContext(cx), (LLVMTypeRef[]){ptr, ptr, ptr}, 3, 0));
      LLVMBuilderRef b = LLVMCreateBuilderInContext(cx);
      LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(cx, caller, "entry"));
      /* 512 x 512 x 512 row-major, all rows */
      LLVMValueRef args[13] = {LLVMGetParam(caller, 0), LLVMGetParam(caller, 1),
                               LLVMGetParam(caller, 2)};
      static const int64_t vals[10] = {512, 512, 512, 512, 1, 512, 1, 512, 0, 512};
      for (int i = 0; i < 10; i++)
        args[3 + i] = LLVMConstInt(i64, (unsigned long long)vals[i], 0);
      LLVMBuildCall2(b, LLVMGlobalGetValueType(fn), fn, args, 13, "");
      LLVMBuildRetVoid(b);
      LLVMDisposeBuilder(b);
    }
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    err = take_error(LLVMRunPasses(m, "default<O3>", tm, opts), "passes");
    LLVMDisposePassBuilderOptions(opts);
    ck_assert_msg(!err, "%s", err ? err : "");
    uint64_t frame = max_static_frame(m, dl);
    ck_assert_msg(frame <= 4096, "variant %d: a static frame of %llu bytes", v,
                  (unsigned long long)frame);
    LLVMDisposeTargetData(dl);
    LLVMDisposeModule(m);
    LLVMContextDispose(cx);
    LLVMDisposeTargetMachine(tm);
  }
}
END_TEST

/* Batched M = 1 products with a sin/cos epilogue, compiled whole at O3 for
 * the cpu target (difftest seed 384). The blocked kernel inlined into the
 * kernel function made its 300 KiB packing frame part of that function's
 * prologue; shrink-wrapping sank the prologue past the `begin >= end` exit,
 * whose trip count lived in r11, and LLVM's inline stack-probe loop (which
 * hard-codes r11) overwrote it: the epilogue ran on past the output. The
 * shapes around N = 48 gave that register assignment; each is checked
 * against a product in double. */
START_TEST(test_batched_epilogue_programs) {
  static const int64_t ns[] = {47, 48, 49, 50, 51, 56, 63, 64, 65};
  static const char *const ops[] = {"sin", "cos"};
  for (int oi = 0; oi < 2; oi++)
    for (int64_t batch = 2; batch <= 3; batch++)
      for (int64_t M = 1; M <= 2; M++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
          const int64_t K = 3, N = ns[ni];
          char text[256], err[256] = "";
          snprintf(text, sizeof text,
                   "input %%a : f32[%lld,%lld,%lld]\ninput %%b : f32[%lld,%lld,%lld]\n"
                   "%%m = matmul %%a, %%b\n%%s = %s %%m\noutput out0 = %%s\n",
                   (long long)batch, (long long)M, (long long)K, (long long)batch,
                   (long long)K, (long long)N, ops[oi]);
          smelt_graph *g = smelt_graph_parse(text, strlen(text), NULL, err, sizeof err);
          ck_assert_msg(g, "parse: %s", err);
          smelt_compile_options o = smelt_compile_defaults();
          o.target = SMELT_TARGET_CPU;
          o.opt_level = 3;
          o.cache_dir = NULL;
          o.dump = NULL;
          o.dump_dir = NULL;
          smelt_params *params = smelt_params_new(g);
          smelt_program *pr =
              smelt_program_compile_eval(g, params, 1, (const char *[]){"out0"}, &o);
          ck_assert_msg(pr && !smelt_program_error(pr), "compile: %s",
                        pr ? smelt_program_error(pr) : "out of memory");
          int64_t na = batch * M * K, nb = batch * K * N, nc = batch * M * N;
          float *a = malloc((size_t)na * sizeof *a), *b = malloc((size_t)nb * sizeof *b);
          float *c = malloc((size_t)nc * sizeof *c);
          ck_assert(a && b && c);
          for (int64_t i = 0; i < na; i++)
            a[i] = (float)urand();
          for (int64_t i = 0; i < nb; i++)
            b[i] = (float)urand();
          ck_assert_int_eq(smelt_program_bind(pr, "a", SMELT_F32, 3, (int64_t[]){batch, M, K}, a,
                                              (size_t)na * sizeof *a),
                           0);
          ck_assert_int_eq(smelt_program_bind(pr, "b", SMELT_F32, 3, (int64_t[]){batch, K, N}, b,
                                              (size_t)nb * sizeof *b),
                           0);
          ck_assert_msg(smelt_program_run(pr) == 0, "run: %s", smelt_program_error(pr));
          ck_assert_int_eq(smelt_program_read(pr, "out0", SMELT_F32, c, (size_t)nc * sizeof *c),
                           0);
          for (int64_t p = 0; p < batch; p++)
            for (int64_t m = 0; m < M; m++)
              for (int64_t n = 0; n < N; n++) {
                double dot = 0;
                for (int64_t k = 0; k < K; k++)
                  dot += (double)a[(p * M + m) * K + k] * b[(p * K + k) * N + n];
                double want = oi == 0 ? sin(dot) : cos(dot), got = c[(p * M + m) * N + n];
                ck_assert_msg(fabs(got - want) <= 1e-5, "%s: [%lld,%lld,%lld] of %lldx%lldx%lld: "
                              "%.9g, want %.9g", ops[oi], (long long)p, (long long)m,
                              (long long)n, (long long)batch, (long long)M, (long long)N, got,
                              want);
              }
          free(a);
          free(b);
          free(c);
          smelt_program_free(pr);
          smelt_params_free(params);
          smelt_graph_free(g);
        }
}
END_TEST

/* -------------------------------------------------------------- timing */

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Best GFLOP/s of M x K @ K x N over a few repetitions (single thread). */
static double gflops(bool f64, int64_t M, int64_t N, int64_t K, bool ta, bool tb, double budget) {
  size_t es = f64 ? sizeof(double) : sizeof(float);
  char *A = malloc((size_t)(M * K) * es), *B = malloc((size_t)(K * N) * es);
  char *C = malloc((size_t)(M * N) * es);
  if (!A || !B || !C) {
    free(A), free(B), free(C);
    return 0;
  }
  for (int64_t i = 0; i < M * K; i++)
    if (f64)
      ((double *)A)[i] = urand();
    else
      ((float *)A)[i] = (float)urand();
  for (int64_t i = 0; i < K * N; i++)
    if (f64)
      ((double *)B)[i] = urand();
    else
      ((float *)B)[i] = (float)urand();
  int64_t sam = ta ? 1 : K, sak = ta ? M : 1, sbk = tb ? 1 : N, sbn = tb ? K : 1;
  double flop = 2.0 * (double)M * (double)N * (double)K, best = 1e30, spent = 0;
  for (int rep = 0; rep < 1000 && (rep < 1 || spent < budget); rep++) {
    double t = now();
    if (f64)
      J.f64((double *)A, (double *)B, (double *)C, M, N, K, sam, sak, sbk, sbn, N, 0, M);
    else
      J.f32((float *)A, (float *)B, (float *)C, M, N, K, sam, sak, sbk, sbn, N, 0, M);
    t = now() - t;
    spent += t;
    if (t < best)
      best = t;
  }
  free(A), free(B), free(C);
  return flop / best * 1e-9;
}

/* Information only: the figure depends on the machine. Skipped when a
 * small product is slow (valgrind, a loaded machine): it would only take time. */
START_TEST(test_speed_info) {
  need_jit();
  double probe = gflops(false, 128, 128, 128, 0, 0, 0.0);
  if (probe < 1.0)
    printf("matmul: 512x512x512 f32 timing skipped (128^3 ran at %.2f GFLOP/s)\n", probe);
  else
    printf("matmul: 512x512x512 f32, one thread: %.1f GFLOP/s\n",
           gflops(false, 512, 512, 512, 0, 0, 0.3));
}
END_TEST

static void bench_table(void) {
  static const struct {
    int64_t M, K, N;
    bool ta, tb, f64;
    const char *what;
  } rows[] = {
      {256, 256, 256, 0, 0, 0, "square"},
      {512, 512, 512, 0, 0, 0, "square"},
      {1000, 1000, 1000, 0, 0, 0, "square"},
      {1024, 1024, 1024, 0, 0, 0, "square"},
      {256, 784, 512, 0, 0, 0, "MLP layer 1: x @ W1"},
      {256, 512, 10, 0, 0, 0, "MLP layer 2: h @ W2"},
      {784, 256, 512, 1, 0, 0, "dW1 = x^T @ dh"},
      {512, 256, 10, 1, 0, 0, "dW2 = h^T @ dy"},
      {256, 10, 512, 0, 1, 0, "dh = dy @ W2^T"},
      {256, 512, 784, 0, 1, 0, "dx = dh @ W1^T"},
      {1024, 1024, 1024, 0, 0, 1, "square f64"},
  };
  const char *one = getenv("SMELT_MM_SHAPE"); /* "M,K,N,ta,tb": that product only */
  long long M1, K1, N1;
  int ta1, tb1;
  if (one && sscanf(one, "%lld,%lld,%lld,%d,%d", &M1, &K1, &N1, &ta1, &tb1) == 5) {
    for (int r = 0; r < 3; r++)
      printf("%lldx%lld @ %lldx%lld%s%s %6.1f GFLOP/s\n", M1, K1, K1, N1, ta1 ? " (A^T)" : "",
             tb1 ? " (B^T)" : "", gflops(false, M1, N1, K1, ta1, tb1, 1.0));
    return;
  }
  printf("%-28s %-24s %s\n", "shape (M x K @ K x N)", "", "GFLOP/s, 1 thread");
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    char shape[64];
    snprintf(shape, sizeof shape, "%lldx%lld @ %lldx%lld%s%s", (long long)rows[i].M,
             (long long)rows[i].K, (long long)rows[i].K, (long long)rows[i].N,
             rows[i].ta ? " (A^T)" : "", rows[i].tb ? " (B^T)" : "");
    printf("%-28s %-24s %6.1f\n", shape, rows[i].what,
           gflops(rows[i].f64, rows[i].M, rows[i].N, rows[i].K, rows[i].ta, rows[i].tb, 1.0));
  }
}

int main(void) {
  const char *bench = getenv("SMELT_MM_BENCH");
  if (bench && *bench && strcmp(bench, "0") != 0) {
    jit_setup();
    if (J.setup_err) {
      fprintf(stderr, "JIT setup: %s\n", J.setup_err);
      jit_teardown();
      return EXIT_FAILURE;
    }
    bench_table();
    jit_teardown();
    return EXIT_SUCCESS;
  }
  Suite *s = suite_create("matmul");
  TCase *tc = tcase_create("core");
  tcase_add_unchecked_fixture(tc, jit_setup, jit_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_interface);
  tcase_add_test(tc, test_shapes);
  tcase_add_test(tc, test_layouts);
  tcase_add_test(tc, test_large);
  tcase_add_test(tc, test_row_ranges);
  tcase_add_test(tc, test_k_zero_and_empty);
  tcase_add_test(tc, test_nonfinite);
  tcase_add_test(tc, test_batched_epilogue_programs);
  tcase_add_test(tc, test_static_frame);
  tcase_add_test(tc, test_speed_info);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
