/* The transcendental functions of codegen/llvm_math.c: emitted into loops,
 * optimized at O3, JIT-compiled with ORC LLJIT and run over millions of
 * inputs. The reference is the graph's own semantics (sm_ops[op].eval_f,
 * libm in double) for f32, and long double libm for f64.
 *
 * Error measure: |got - ref| / ulp(ref), ref unrounded, ulp taken in the
 * result format's binade of ref (subnormal spacing below the normals).
 * Special results must match exactly: when the rounded reference is NaN,
 * +-inf or +-0 (overflow, underflow, special inputs) the result must be the
 * same (any NaN for NaN), and a result of inf/0/NaN where the reference has
 * none is a failure.
 *
 * Two code variants run: the host (its CPU and features, FMA) and baseline
 * x86-64 (SSE2: no FMA, no roundps), the target where a careless llvm.fma
 * or llvm.floor would become a libm call. The assembly of both must hold
 * packed instructions and no calls.
 *
 * SMELT_TEST_QUICK (or a sanitizer build) samples 8x fewer points.
 * SMELT_MATH_EXHAUSTIVE=1 adds a run of every f32 input of the unary
 * functions (minutes; the numbers of docs/math.md). */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "../codegen/llvm_math.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

/* ------------------------------------------------------------ functions */
typedef struct fn_desc {
  sm_op op;
  const char *name;
} fn_desc;
static const fn_desc FNS[] = {{OP_EXP, "exp"},   {OP_LOG, "log"},         {OP_SIN, "sin"},
                              {OP_COS, "cos"},   {OP_TANH, "tanh"},       {OP_SIGMOID, "sigmoid"},
                              {OP_POW, "pow"}};
#define NFNS ((int)(sizeof FNS / sizeof FNS[0]))

enum { K_F32, K_V8F32, K_F64, NKINDS };
static const char *KIND_NAME[NKINDS] = {"f32", "v8f32", "f64"};

typedef void (*kern32)(const float *, const float *, float *, int64_t);
typedef void (*kern64)(const double *, const double *, double *, int64_t);

/* One JIT per code variant. */
typedef struct variant {
  const char *name;
  LLVMOrcLLJITRef jit;
  char *asm_text;
  void *fn[8][NKINDS]; /* NULL: not emitted (f64 pow) */
} variant;
enum { V_HOST, V_BASE, NVARIANTS };
static variant V[NVARIANTS];

static void check_err(LLVMErrorRef e, const char *what) {
  if (!e) return;
  char *msg = LLVMGetErrorMessage(e);
  fprintf(stderr, "%s: %s\n", what, msg);
  LLVMDisposeErrorMessage(msg);
  abort();
}

static LLVMTargetMachineRef make_tm(int host) {
  char *triple = LLVMGetDefaultTargetTriple();
  LLVMTargetRef target;
  char *err = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &err)) {
    fprintf(stderr, "target: %s\n", err);
    abort();
  }
  char *cpu = host ? LLVMGetHostCPUName() : NULL;
  char *features = host ? LLVMGetHostCPUFeatures() : NULL;
  int x86 = strncmp(triple, "x86_64", 6) == 0;
  LLVMTargetMachineRef tm = LLVMCreateTargetMachine(
      target, triple, host ? cpu : (x86 ? "x86-64" : "generic"), host ? features : "",
      LLVMCodeGenLevelAggressive, LLVMRelocDefault, LLVMCodeModelJITDefault);
  LLVMDisposeMessage(triple);
  if (cpu) LLVMDisposeMessage(cpu);
  if (features) LLVMDisposeMessage(features);
  return tm;
}

/* void name(const T *x, const T *y, T *out, i64 n): out[i] = op(x[i], y[i]);
 * for the vector kind, n counts <8 x float> groups. */
static int add_kernel(LLVMModuleRef m, sm_op op, const char *name, int kind) {
  LLVMContextRef ctx = LLVMGetModuleContext(m);
  LLVMTypeRef f32 = LLVMFloatTypeInContext(ctx), f64 = LLVMDoubleTypeInContext(ctx);
  LLVMTypeRef t = kind == K_F64 ? f64 : kind == K_V8F32 ? LLVMVectorType(f32, 8) : f32;
  LLVMTypeRef i64 = LLVMInt64TypeInContext(ctx), ptr = LLVMPointerTypeInContext(ctx, 0);
  LLVMTypeRef params[4] = {ptr, ptr, ptr, i64};
  LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(ctx), params, 4, 0);
  LLVMValueRef fn = LLVMAddFunction(m, name, fty);
  unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
  for (unsigned i = 1; i <= 3; i++)
    LLVMAddAttributeAtIndex(fn, i, LLVMCreateEnumAttribute(ctx, noalias, 0));
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(ctx, fn, "entry");
  LLVMBasicBlockRef loop = LLVMAppendBasicBlockInContext(ctx, fn, "loop");
  LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(ctx, fn, "exit");
  LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
  LLVMPositionBuilderAtEnd(b, entry);
  LLVMValueRef n = LLVMGetParam(fn, 3);
  LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSGT, n, LLVMConstInt(i64, 0, 0), ""), loop, exit);
  LLVMPositionBuilderAtEnd(b, loop);
  LLVMValueRef i = LLVMBuildPhi(b, i64, "i");
  LLVMValueRef v[2];
  for (int k = 0; k < 2; k++) {
    LLVMValueRef p = LLVMBuildGEP2(b, t, LLVMGetParam(fn, (unsigned)k), &i, 1, "");
    v[k] = LLVMBuildLoad2(b, t, p, "");
    LLVMSetAlignment(v[k], kind == K_F64 ? 8 : 4);
  }
  LLVMValueRef r = sm_llvm_math(m, b, op, v[0], v[1]);
  int ok = r != NULL;
  if (ok) {
    LLVMValueRef st = LLVMBuildStore(b, r, LLVMBuildGEP2(b, t, LLVMGetParam(fn, 2), &i, 1, ""));
    LLVMSetAlignment(st, kind == K_F64 ? 8 : 4);
  }
  LLVMValueRef i1 = LLVMBuildAdd(b, i, LLVMConstInt(i64, 1, 0), "");
  LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, i1, n, ""), loop, exit);
  LLVMValueRef inc[2] = {LLVMConstInt(i64, 0, 0), i1};
  LLVMBasicBlockRef from[2] = {entry, loop};
  LLVMAddIncoming(i, inc, from, 2);
  LLVMPositionBuilderAtEnd(b, exit);
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);
  if (!ok) LLVMDeleteFunction(fn);
  return ok;
}

static void build_variant(variant *v, const char *name, int host) {
  v->name = name;
  LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("math", LLVMOrcThreadSafeContextGetContext(tsc));
  int have[8][NKINDS];
  char fname[64];
  for (int f = 0; f < NFNS; f++)
    for (int k = 0; k < NKINDS; k++) {
      snprintf(fname, sizeof fname, "%s_%s", FNS[f].name, KIND_NAME[k]);
      have[f][k] = add_kernel(m, FNS[f].op, fname, k);
    }
  char *msg = NULL;
  if (LLVMVerifyModule(m, LLVMReturnStatusAction, &msg)) {
    fprintf(stderr, "verify: %s\n", msg);
    abort();
  }
  LLVMDisposeMessage(msg);

  LLVMTargetMachineRef tm = make_tm(host);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  char *triple = LLVMGetTargetMachineTriple(tm);
  LLVMSetTarget(m, triple);
  LLVMDisposeMessage(triple);
  LLVMSetModuleDataLayout(m, td);
  LLVMDisposeTargetData(td);
  LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
  check_err(LLVMRunPasses(m, "default<O3>", tm, opts), "O3");
  LLVMDisposePassBuilderOptions(opts);

  /* Assembly of a clone: code generation may change the module. */
  LLVMModuleRef clone = LLVMCloneModule(m);
  LLVMMemoryBufferRef buf = NULL;
  if (LLVMTargetMachineEmitToMemoryBuffer(tm, clone, LLVMAssemblyFile, &msg, &buf)) {
    fprintf(stderr, "asm: %s\n", msg);
    abort();
  }
  size_t len = LLVMGetBufferSize(buf);
  v->asm_text = malloc(len + 1);
  memcpy(v->asm_text, LLVMGetBufferStart(buf), len);
  v->asm_text[len] = 0;
  LLVMDisposeMemoryBuffer(buf);
  LLVMDisposeModule(clone);

  /* The JIT compiles for the same machine (it takes tm). */
  LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(
      jb, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
  check_err(LLVMOrcCreateLLJIT(&v->jit, jb), "LLJIT");
  LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m, tsc);
  LLVMOrcDisposeThreadSafeContext(tsc);
  check_err(LLVMOrcLLJITAddLLVMIRModule(v->jit, LLVMOrcLLJITGetMainJITDylib(v->jit), tsm), "add");
  for (int f = 0; f < NFNS; f++)
    for (int k = 0; k < NKINDS; k++) {
      v->fn[f][k] = NULL;
      if (!have[f][k]) continue;
      snprintf(fname, sizeof fname, "%s_%s", FNS[f].name, KIND_NAME[k]);
      LLVMOrcExecutorAddress a = 0;
      check_err(LLVMOrcLLJITLookup(v->jit, &a, fname), fname);
      v->fn[f][k] = (void *)(uintptr_t)a;
    }
}

static void setup(void) {
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  build_variant(&V[V_HOST], "host", 1);
  build_variant(&V[V_BASE], "base", 0);
}

static void teardown(void) {
  for (int i = 0; i < NVARIANTS; i++) {
    if (V[i].jit) check_err(LLVMOrcDisposeLLJIT(V[i].jit), "dispose");
    free(V[i].asm_text);
    memset(&V[i], 0, sizeof V[i]);
  }
  LLVMShutdown();
}

/* --------------------------------------------------------------- inputs */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}
static double unif(void) { return (double)(rnd() >> 11) * 0x1p-53; }

static int64_t npoints(int64_t n) {
  const char *q = getenv("SMELT_TEST_QUICK");
  return (q && *q && strcmp(q, "0")) || UNDER_SANITIZER ? n / 8 : n;
}

/* Floats ordered as unsigned keys (monotonic in the value). */
static uint32_t key32(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}
static float unkey32(uint32_t k) {
  uint32_t u = (k & 0x80000000u) ? k & 0x7fffffffu : ~k;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static uint64_t key64(double f) {
  uint64_t u;
  memcpy(&u, &f, 8);
  return (u >> 63) ? ~u : u | (1ull << 63);
}
static double unkey64(uint64_t k) {
  uint64_t u = (k >> 63) ? k & ~(1ull << 63) : ~k;
  double f;
  memcpy(&f, &u, 8);
  return f;
}

/* n inputs in [lo, hi]: half evenly spaced in the ordered bit patterns
 * (every binade, subnormals included, gets its share), half evenly spaced
 * in value, each point jittered randomly within its step. */
static void fill32(float *x, int64_t n, double lo, double hi) {
  uint32_t a = key32((float)lo), b = key32((float)hi);
  int64_t h = n / 2;
  for (int64_t i = 0; i < h; i++) {
    double t = ((double)i + unif()) / (double)h;
    x[i] = unkey32(a + (uint32_t)(t * (double)(b - a)));
  }
  for (int64_t i = h; i < n; i++) x[i] = (float)(lo + (hi - lo) * (((double)(i - h) + unif()) / (double)(n - h)));
}
static void fill64(double *x, int64_t n, double lo, double hi) {
  uint64_t a = key64(lo), b = key64(hi);
  int64_t h = n / 2;
  for (int64_t i = 0; i < h; i++) {
    long double t = ((long double)i + unif()) / (long double)h;
    x[i] = unkey64(a + (uint64_t)(t * (long double)(b - a)));
  }
  for (int64_t i = h; i < n; i++) x[i] = lo + (hi - lo) * (((double)(i - h) + unif()) / (double)(n - h));
}

/* ------------------------------------------------------------ reference */
static double ref32(sm_op op, float x, float y) { return sm_ops[op].eval_f(x, y); }

static long double ref64(sm_op op, double x) {
  long double a = x;
  switch (op) {
  case OP_EXP: return expl(a);
  case OP_LOG: return logl(a);
  case OP_SIN: return sinl(a);
  case OP_COS: return cosl(a);
  case OP_TANH: return tanhl(a);
  case OP_SIGMOID:
    if (a >= 0) return 1.0L / (1.0L + expl(-a));
    return expl(a) / (1.0L + expl(a));
  default: return NAN;
  }
}

/* Error of got against ref in ulps of float; -1 for a special mismatch. */
static double ulp_err32(float got, double ref) {
  float rf = (float)ref;
  if (isnan(rf)) return isnan(got) ? 0 : -1;
  if (isinf(rf) || rf == 0) return memcmp(&rf, &got, 4) == 0 ? 0 : -1;
  if (isnan(got) || isinf(got) || got == 0) return -1;
  int e = ilogb(ref);
  if (e < -126) e = -126;
  return fabs((double)got - ref) / ldexp(1.0, e - 23);
}
static double ulp_err64(double got, long double ref) {
  double rd = (double)ref;
  if (isnan(rd)) return isnan(got) ? 0 : -1;
  if (isinf(rd) || rd == 0) return memcmp(&rd, &got, 8) == 0 ? 0 : -1;
  if (isnan(got) || isinf(got) || got == 0) return -1;
  int e = ilogbl(ref);
  if (e < -1022) e = -1022;
  return (double)(fabsl((long double)got - ref) / ldexpl(1.0L, e - 52));
}

/* Max error of one run; worst input and count of special mismatches. */
typedef struct stat {
  double max;
  double wx, wy;
  double wx64;
  int64_t bad, n;
} stat;

static void stat32(stat *s, const float *x, const float *y, const float *got, const double *ref,
                   int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    double e = ulp_err32(got[i], ref[i]);
    if (e < 0) {
      if (s->bad < 5)
        fprintf(stderr, "  special mismatch: x=%a y=%a got=%a want=%a\n", x[i], y ? y[i] : 0.0f,
                got[i], (float)ref[i]);
      s->bad++;
    } else if (e > s->max) {
      s->max = e;
      s->wx = x[i];
      s->wy = y ? y[i] : 0;
    }
  }
  s->n += n;
}

/* Runs the f32 kernels of fn (scalar loop and <8 x float>) of variant v on
 * x, y (n a multiple of 8) and accumulates the errors into s[0], s[1]. */
static void run32(const variant *v, int f, const float *x, const float *y, const double *ref,
                  int64_t n, stat s[2], float *out) {
  const float *yy = y ? y : x;
  ((kern32)v->fn[f][K_F32])(x, yy, out, n);
  stat32(&s[0], x, y, out, ref, n);
  ((kern32)v->fn[f][K_V8F32])(x, yy, out, n / 8);
  stat32(&s[1], x, y, out, ref, n);
}

static void print_row(const char *fn, const char *kind, const char *var, const char *range,
                      const stat *s) {
  printf("| %-7s | %-5s | %-4s | %-28s | %9lld | %6.3f | %-13a %-13a |%s\n", fn, kind, var, range,
         (long long)s->n, s->max, s->wx, s->wy, s->bad ? " SPECIAL MISMATCH" : "");
  fflush(stdout);
}

/* ------------------------------------------------------------ f32 tests */
typedef struct range32 {
  double lo, hi;
  const char *label;
  int assert_ulp; /* 0: reported, only sanity asserted */
} range32;

static const float SPECIALS32[] = {0.0f,     -0.0f,    INFINITY, -INFINITY, NAN,      -NAN,
                                   1.0f,     -1.0f,    0.5f,     -0.5f,     2.0f,     -2.0f,
                                   3.0f,     -3.0f,    2.5f,     -2.5f,     0x1p-149f, -0x1p-149f,
                                   FLT_MIN,  -FLT_MIN, FLT_MAX,  -FLT_MAX,  88.72283f, 88.72284f,
                                   -103.97f, -103.98f, -87.33655f, 0x1p24f, 0x1p24f + 2, 0x1p23f + 1,
                                   -0x1p23f - 1, 1e4f,  -1e4f,   1e-20f,    -1e-20f,  9.0f,
                                   0.1f,     -0.1f,    1e30f,    -1e30f};
#define NSPEC32 ((int)(sizeof SPECIALS32 / sizeof SPECIALS32[0]))

static void sweep_unary32(int f, const range32 *rg, int nrg, int64_t n) {
  sm_op op = FNS[f].op;
  n = (npoints(n) + 7) / 8 * 8;
  float *x = malloc(sizeof(float) * (size_t)n), *out = malloc(sizeof(float) * (size_t)n);
  double *ref = malloc(sizeof(double) * (size_t)n);
  for (int r = 0; r < nrg; r++) {
    fill32(x, n, rg[r].lo, rg[r].hi);
    for (int64_t i = 0; i < n; i++) ref[i] = ref32(op, x[i], 0);
    for (int vi = 0; vi < NVARIANTS; vi++) {
      stat s[2];
      memset(s, 0, sizeof s);
      run32(&V[vi], f, x, NULL, ref, n, s, out);
      for (int k = 0; k < 2; k++) {
        print_row(FNS[f].name, KIND_NAME[k], V[vi].name, rg[r].label, &s[k]);
        ck_assert_msg(s[k].bad == 0, "%s %s: special mismatch", FNS[f].name, rg[r].label);
        if (rg[r].assert_ulp)
          ck_assert_msg(s[k].max <= 2.0, "%s %s %s on %s: %.3f ulp at x=%a", FNS[f].name,
                        KIND_NAME[k], V[vi].name, rg[r].label, s[k].max, s[k].wx);
      }
      if (!rg[r].assert_ulp) { /* finite and in [-1, 1] at least */
        /* (one ck_assert per point would write to Check's pipe each time) */
        int64_t bad = -1;
        for (int64_t i = 0; i < n && bad < 0; i++)
          if (!(isfinite(out[i]) && fabsf(out[i]) <= 1.0f)) bad = i;
        ck_assert_msg(bad < 0, "%s(%a) = %a", FNS[f].name, bad < 0 ? 0.0f : x[bad],
                      bad < 0 ? 0.0f : out[bad]);
      }
    }
  }
  free(x);
  free(out);
  free(ref);
}

static void print_header(void) {
  printf("| fn      | kind  | code | range                        |    points | maxulp | worst x       y             |\n");
  fflush(stdout);
}

START_TEST(test_exp_f32) {
  print_header();
  range32 r[] = {{-120, 100, "[-120, 100] (all finite)", 1}, {-1, 1, "[-1, 1]", 1}};
  sweep_unary32(0, r, 2, 4000000);
}
END_TEST

START_TEST(test_log_f32) {
  range32 r[] = {{0x1p-149, FLT_MAX, "(0, FLT_MAX] (all positive)", 1},
                 {0.5, 2, "[0.5, 2]", 1}};
  sweep_unary32(1, r, 2, 4000000);
}
END_TEST

static const range32 TRIG[] = {{-1e4, 1e4, "[-1e4, 1e4]", 1},
                               {-4, 4, "[-4, 4]", 1},
                               {1e4, 1.6e6, "[1e4, 1.6e6]", 1},
                               {1.6e6, 1e9, "[1.6e6, 1e9] (reported)", 0},
                               {-FLT_MAX, FLT_MAX, "all finite (reported)", 0}};

START_TEST(test_sin_f32) { sweep_unary32(2, TRIG, 5, 4000000); }
END_TEST

START_TEST(test_cos_f32) { sweep_unary32(3, TRIG, 5, 4000000); }
END_TEST

START_TEST(test_tanh_f32) {
  range32 r[] = {{-FLT_MAX, FLT_MAX, "all finite", 1}, {-10, 10, "[-10, 10]", 1}};
  sweep_unary32(4, r, 2, 4000000);
}
END_TEST

START_TEST(test_sigmoid_f32) {
  range32 r[] = {{-FLT_MAX, FLT_MAX, "all finite", 1}, {-110, 30, "[-110, 30]", 1}};
  sweep_unary32(5, r, 2, 4000000);
}
END_TEST

/* pow: several grids, asserted everywhere. */
START_TEST(test_pow_f32) {
  int f = 6;
  int64_t n = (npoints(4000000) + 7) / 8 * 8;
  float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
  float *out = malloc(sizeof(float) * (size_t)n);
  double *ref = malloc(sizeof(double) * (size_t)n);
  for (int g = 0; g < 4; g++) {
    const char *label = "";
    int64_t side = (int64_t)sqrt((double)n);
    for (int64_t i = 0; i < n; i++) {
      switch (g) {
      case 0: /* dense: x in [0, 4] x y in [-10, 10] */
        label = "x [0,4] * y [-10,10]";
        x[i] = (float)(4.0 * (double)(i / side) / (double)side + 1e-3 * unif());
        y[i] = (float)(-10.0 + 20.0 * (double)(i % side) / (double)side + 1e-3 * unif());
        break;
      case 1: { /* any positive x, y so that x^y spans the float range */
        label = "x>0 any, abs(y log x)<=110";
        x[i] = unkey32(key32(0x1p-149f) + (uint32_t)(unif() * (key32(FLT_MAX) - key32(0x1p-149f))));
        double l = fabs(log(x[i]));
        y[i] = (float)((2 * unif() - 1) * 110.0 / (l > 1e-3 ? l : 1e-3));
        break;
      }
      case 2: /* negative x, integer y */
        label = "x<0, y integer in [-60,60]";
        x[i] = (float)-(0.01 + 10 * unif());
        y[i] = (float)(int)(121 * unif() - 60);
        break;
      default: /* near 1 with large y (the error amplification case) */
        label = "x [0.9,1.1], abs(y)<=1000";
        x[i] = (float)(0.9 + 0.2 * unif());
        y[i] = (float)(2000 * unif() - 1000);
      }
      ref[i] = ref32(OP_POW, x[i], y[i]);
    }
    for (int vi = 0; vi < NVARIANTS; vi++) {
      stat s[2];
      memset(s, 0, sizeof s);
      run32(&V[vi], f, x, y, ref, n, s, out);
      for (int k = 0; k < 2; k++) {
        print_row("pow", KIND_NAME[k], V[vi].name, label, &s[k]);
        ck_assert_msg(s[k].bad == 0, "pow %s: special mismatch", label);
        ck_assert_msg(s[k].max <= 2.0, "pow %s: %.3f ulp at x=%a y=%a", label, s[k].max, s[k].wx,
                      s[k].wy);
      }
    }
  }
  free(x);
  free(y);
  free(out);
  free(ref);
}
END_TEST

/* Every special value against every other (pow) or alone: exact. */
START_TEST(test_specials_f32) {
  int64_t n = (int64_t)NSPEC32 * NSPEC32;
  int64_t np = (n + 7) / 8 * 8;
  float *x = calloc((size_t)np, sizeof(float)), *y = calloc((size_t)np, sizeof(float));
  float *out = calloc((size_t)np, sizeof(float));
  double *ref = calloc((size_t)np, sizeof(double));
  for (int64_t i = 0; i < np; i++) {
    x[i] = SPECIALS32[(i / NSPEC32) % NSPEC32];
    y[i] = SPECIALS32[i % NSPEC32];
  }
  for (int f = 0; f < NFNS; f++) {
    for (int64_t i = 0; i < np; i++) ref[i] = ref32(FNS[f].op, x[i], y[i]);
    for (int vi = 0; vi < NVARIANTS; vi++) {
      stat s[2];
      memset(s, 0, sizeof s);
      run32(&V[vi], f, x, FNS[f].op == OP_POW ? y : NULL, ref, np, s, out);
      for (int k = 0; k < 2; k++) {
        ck_assert_msg(s[k].bad == 0, "%s %s %s: special value mismatch", FNS[f].name,
                      KIND_NAME[k], V[vi].name);
        /* sin/cos of huge specials (FLT_MAX) are only sane, not accurate. */
        int trig = FNS[f].op == OP_SIN || FNS[f].op == OP_COS;
        ck_assert_msg(trig || s[k].max <= 2.0, "%s: %.3f ulp at x=%a y=%a", FNS[f].name,
                      s[k].max, s[k].wx, s[k].wy);
      }
    }
  }
  free(x);
  free(y);
  free(out);
  free(ref);
}
END_TEST

/* ------------------------------------------------------------ f64 tests */
static void sweep_unary64(int f, double lo, double hi, const char *label, int64_t n,
                          double bound) {
  n = npoints(n);
  double *x = malloc(sizeof(double) * (size_t)n), *out = malloc(sizeof(double) * (size_t)n);
  long double *ref = malloc(sizeof(long double) * (size_t)n);
  fill64(x, n, lo, hi);
  static const double sp[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 1.0, -1.0, 0x1p-1074,
                              DBL_MIN, DBL_MAX, -DBL_MAX, 709.782712893384, 709.7827128933841,
                              -745.1332191019411, -745.1332191019412, 1e-300, -1e-300};
  int nsp = (int)(sizeof sp / sizeof sp[0]);
  for (int i = 0; i < nsp && i < n; i++) x[i] = sp[i];
  for (int64_t i = 0; i < n; i++) ref[i] = ref64(FNS[f].op, x[i]);
  /* Valgrind computes long double in double precision: the reference then
   * carries up to ~1 ulp of its own, allowed for here. */
  volatile long double one = 1.0L, tiny = 0x1p-60L;
  if (one + tiny == one && bound > 0) bound += 1.5;
  char fail[256] = "";
  for (int vi = 0; vi < NVARIANTS; vi++) {
    ((kern64)V[vi].fn[f][K_F64])(x, x, out, n);
    stat s;
    memset(&s, 0, sizeof s);
    for (int64_t i = 0; i < n; i++) {
      /* Specials follow the graph's semantics exactly (libm in double). */
      double e = ulp_err64(out[i], ref[i]);
      double want = sm_ops[FNS[f].op].eval_f(x[i], 0);
      int special = isnan(want) || isinf(want) || want == 0 || !isfinite(x[i]) || x[i] == 0;
      if (special) e = (isnan(want) && isnan(out[i])) || memcmp(&want, &out[i], 8) == 0 ? 0 : -1;
      else if (x[i] < lo || x[i] > hi) e = 0; /* a special input outside the range */
      if (e < 0) {
        if (s.bad < 5) fprintf(stderr, "  f64 %s(%a) = %a, want %a\n", FNS[f].name, x[i], out[i], want);
        s.bad++;
      } else if (e > s.max) {
        s.max = e;
        s.wx = x[i];
        s.wx64 = x[i];
      }
    }
    s.n = n;
    print_row(FNS[f].name, "f64", V[vi].name, label, &s);
    /* Failures are recorded and asserted after freeing (no leak). */
    if (*fail) continue;
    if (bound > 0) {
      if (s.bad)
        snprintf(fail, sizeof fail, "f64 %s: special mismatch", FNS[f].name);
      else if (s.max > bound)
        snprintf(fail, sizeof fail, "f64 %s %s: %.3f ulp at x=%a", FNS[f].name, V[vi].name, s.max,
                 s.wx64);
    } else {
      for (int64_t i = 0; i < n && !*fail; i++)
        if (isfinite(x[i]) && !(isfinite(out[i]) && fabs(out[i]) <= 1.0))
          snprintf(fail, sizeof fail, "%s(%a) = %a", FNS[f].name, x[i], out[i]);
    }
  }
  free(x);
  free(out);
  free(ref);
  ck_assert_msg(!*fail, "%s", fail);
}

START_TEST(test_f64) {
  int64_t n = 1000000;
  sweep_unary64(0, -750, 720, "[-750, 720] (all finite)", n, 2.0);
  sweep_unary64(0, -1, 1, "[-1, 1]", n, 2.0);
  sweep_unary64(1, 0x1p-1074, DBL_MAX, "(0, DBL_MAX]", n, 2.0);
  sweep_unary64(1, 0.5, 2, "[0.5, 2]", n, 2.0);
  sweep_unary64(2, -1e4, 1e4, "[-1e4, 1e4]", n, 2.0);
  sweep_unary64(2, -1.6e6, 1.6e6, "[-1.6e6, 1.6e6]", n, 2.0);
  sweep_unary64(2, -DBL_MAX, DBL_MAX, "all finite (reported)", n, 0);
  sweep_unary64(3, -1e4, 1e4, "[-1e4, 1e4]", n, 2.0);
  sweep_unary64(3, -1.6e6, 1.6e6, "[-1.6e6, 1.6e6]", n, 2.0);
  sweep_unary64(3, -DBL_MAX, DBL_MAX, "all finite (reported)", n, 0);
  sweep_unary64(4, -DBL_MAX, DBL_MAX, "all finite", n, 3.0);
  sweep_unary64(4, -5, 5, "[-5, 5]", n, 3.0);
  sweep_unary64(5, -DBL_MAX, DBL_MAX, "all finite", n, 3.0);
  sweep_unary64(5, -40, 40, "[-40, 40]", n, 3.0);
  sweep_unary64(5, -745, -700, "[-745, -700]", n, 3.0);
}
END_TEST

/* ---------------------------------------------------------- exhaustive */
START_TEST(test_exhaustive_f32) {
  const int64_t chunk = 1 << 22;
  float *x = malloc(sizeof(float) * chunk), *out = malloc(sizeof(float) * chunk);
  double *ref = malloc(sizeof(double) * chunk);
  for (int f = 0; f < NFNS - 1; f++) {
    stat s[2];
      memset(s, 0, sizeof s);
    for (uint64_t base = 0; base < (1ull << 32); base += (uint64_t)chunk) {
      for (int64_t i = 0; i < chunk; i++) {
        uint32_t u = (uint32_t)(base + (uint64_t)i);
        memcpy(&x[i], &u, 4);
        /* sin/cos: exhaustive within the accurate range only. */
        if ((FNS[f].op == OP_SIN || FNS[f].op == OP_COS) && fabsf(x[i]) > 1.6e6f) x[i] = 0;
        ref[i] = ref32(FNS[f].op, x[i], 0);
      }
      run32(&V[V_HOST], f, x, NULL, ref, chunk, s, out);
    }
    for (int k = 0; k < 2; k++)
      print_row(FNS[f].name, KIND_NAME[k], "host",
                FNS[f].op == OP_SIN || FNS[f].op == OP_COS ? "every float |x|<=1.6e6"
                                                            : "every float", &s[k]);
    for (int k = 0; k < 2; k++) ck_assert(s[k].bad == 0 && s[k].max <= 2.0);
  }
  free(x);
  free(out);
  free(ref);
}
END_TEST

/* -------------------------------------------------------- vectorization */
/* The text of one function in the assembly. */
static char *function_asm(const char *text, const char *name) {
  char label[80];
  snprintf(label, sizeof label, "\n%s:", name);
  const char *a = strstr(text, label);
  if (!a) return NULL;
  const char *e = strstr(a + 1, ".Lfunc_end");
  if (!e) e = a + strlen(a);
  char *s = malloc((size_t)(e - a) + 1);
  memcpy(s, a, (size_t)(e - a));
  s[e - a] = 0;
  return s;
}

/* Arithmetic instructions on packed float/double lanes (x86: add, sub, mul,
 * div, fused multiply-add, ps/pd suffix). */
static int count_packed(const char *s) {
  int n = 0;
  for (const char *l = s; l && *l; l = strchr(l, '\n')) {
    l++;
    while (*l == ' ' || *l == '\t') l++;
    char mn[32];
    int k = 0;
    while (l[k] && l[k] != ' ' && l[k] != '\t' && l[k] != '\n' && k < 31) mn[k] = l[k], k++;
    mn[k] = 0;
    if (k < 4 || (strcmp(mn + k - 2, "ps") && strcmp(mn + k - 2, "pd"))) continue;
    if (strstr(mn, "add") || strstr(mn, "sub") || strstr(mn, "mul") || strstr(mn, "div") ||
        strstr(mn, "fma"))
      n++;
  }
  return n;
}

START_TEST(test_vectorizes) {
  for (int vi = 0; vi < NVARIANTS; vi++) {
    char *triple = LLVMGetDefaultTargetTriple();
    int x86 = strncmp(triple, "x86_64", 6) == 0;
    LLVMDisposeMessage(triple);
    for (int f = 0; f < NFNS; f++)
      for (int k = 0; k < NKINDS; k++) {
        if (!V[vi].fn[f][k]) continue;
        char name[64];
        snprintf(name, sizeof name, "%s_%s", FNS[f].name, KIND_NAME[k]);
        char *s = function_asm(V[vi].asm_text, name);
        ck_assert_msg(s != NULL, "no assembly for %s", name);
        int calls = strstr(s, "call") != NULL || strstr(s, "\tbl\t") != NULL ||
                    strstr(s, "expf") != NULL || strstr(s, "logf") != NULL;
        int packed = x86 ? count_packed(s) : -1;
        printf("asm %-4s %-14s packed arithmetic: %4d  calls: %s\n", V[vi].name, name, packed,
               calls ? "YES" : "none");
        ck_assert_msg(!calls, "%s (%s) calls a function", name, V[vi].name);
        if (x86) ck_assert_msg(packed >= 10, "%s (%s) not vectorized", name, V[vi].name);
        free(s);
      }
  }
  fflush(stdout);
}
END_TEST

/* What sm_llvm_math declines: other ops, other types, f64 pow. */
START_TEST(test_unsupported) {
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("u", ctx);
  LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
  LLVMTypeRef f32 = LLVMFloatTypeInContext(ctx), f64 = LLVMDoubleTypeInContext(ctx);
  LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx), f16 = LLVMHalfTypeInContext(ctx);
  LLVMTypeRef args[3] = {f32, f64, i32};
  LLVMValueRef fn = LLVMAddFunction(m, "u", LLVMFunctionType(LLVMVoidTypeInContext(ctx), args, 3, 0));
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, fn, "e"));
  LLVMValueRef x32 = LLVMGetParam(fn, 0), x64 = LLVMGetParam(fn, 1), xi = LLVMGetParam(fn, 2);
  ck_assert_ptr_null(sm_llvm_math(m, b, OP_ADD, x32, x32));
  ck_assert_ptr_null(sm_llvm_math(m, b, OP_SQRT, x32, NULL));
  ck_assert_ptr_null(sm_llvm_math(m, b, OP_EXP, xi, NULL));
  ck_assert_ptr_null(sm_llvm_math(m, b, OP_EXP, LLVMGetUndef(f16), NULL));
  ck_assert_ptr_null(sm_llvm_math(m, b, OP_POW, x64, x64)); /* libm's pow */
  ck_assert_ptr_null(sm_llvm_math(m, b, OP_POW, x32, NULL));
  ck_assert_ptr_null(sm_llvm_math(m, b, OP_POW, x32, x64));
  ck_assert_ptr_nonnull(sm_llvm_math(m, b, OP_EXP, x64, NULL));
  ck_assert_ptr_nonnull(sm_llvm_math(m, b, OP_SIN, x32, NULL));
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);
  LLVMDisposeModule(m);
  LLVMContextDispose(ctx);
}
END_TEST

int main(void) {
  Suite *s = suite_create("math");
  TCase *tc = tcase_create("core");
  tcase_add_unchecked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_unsupported);
  tcase_add_test(tc, test_vectorizes);
  tcase_add_test(tc, test_specials_f32);
  tcase_add_test(tc, test_exp_f32);
  tcase_add_test(tc, test_log_f32);
  tcase_add_test(tc, test_sin_f32);
  tcase_add_test(tc, test_cos_f32);
  tcase_add_test(tc, test_tanh_f32);
  tcase_add_test(tc, test_sigmoid_f32);
  tcase_add_test(tc, test_pow_f32);
  tcase_add_test(tc, test_f64);
  const char *ex = getenv("SMELT_MATH_EXHAUSTIVE");
  if (ex && *ex && strcmp(ex, "0")) tcase_add_test(tc, test_exhaustive_f32);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
