/* Transcendental functions emitted as straight-line LLVM IR.
 *
 * Why: LLVM does not vectorize calls to libm, so a fused loop that uses exp
 * would run one element at a time. Everything here is plain arithmetic,
 * integer bit manipulation and selects (no calls besides the intrinsics
 * fmuladd, fabs and copysign, which lower to instructions; no branches), so
 * the loop vectorizer widens it like any other expression.
 *
 * Portability choices:
 *  - Rounding to an integer uses the "magic number" trick, (v + 1.5*2^p) -
 *    1.5*2^p, not llvm.rint/llvm.floor: those become calls to rintf/floorf
 *    on x86-64 without SSE4.1.
 *  - Polynomials use llvm.fmuladd (fused where the target has FMA, a
 *    multiply and an add elsewhere; llvm.fma would call fmaf there). The
 *    range reductions never rely on a fused multiply-add: their constants
 *    are split (Cody-Waite) so that the products that must be exact are.
 *  - No fast-math flags: the special cases are selects on fcmp results that
 *    nnan/ninf would let LLVM delete.
 *
 * f32: exp and log are computed in float. sin, cos, tanh, sigmoid and pow
 * are computed in double and rounded once (vectors are widened), which keeps
 * them within 1 ulp with simple formulas. f64: every function but pow (the
 * backend calls libm for that one: this file returns NULL).
 *
 * The polynomial coefficients are minimax fits (Remez exchange on the
 * relative error, mpmath at 60 digits); the script is in docs/math.md with
 * the measured errors (tests/test_math.c prints them). */
#include "llvm_math.h"

#include "scalar_ops.h"

#include <math.h>
#include <string.h>

/* Vectors longer than this are not supported (NULL): constants are splatted
 * through a stack array. */
#define MAX_LANES 256

typedef struct mc {
  LLVMModuleRef m;
  LLVMBuilderRef b;
  LLVMContextRef ctx;
  LLVMTypeRef ty;  /* float, double or a vector of them */
  LLVMTypeRef ety; /* element type */
  LLVMTypeRef ity; /* integer type of the same shape (i32 or i64 lanes) */
  LLVMTypeRef iety;
  unsigned lanes; /* 0: scalar */
  int dbl;        /* element is double */
  int mant;       /* explicit mantissa bits: 23 or 52 */
  int bias;       /* exponent bias: 127 or 1023 */
  int wide;       /* double computing an f32 result: ~2^-35 is enough */
} mc;

static int mc_init(mc *c, LLVMModuleRef m, LLVMBuilderRef b, LLVMTypeRef ty) {
  memset(c, 0, sizeof *c);
  c->m = m;
  c->b = b;
  c->ctx = LLVMGetTypeContext(ty);
  c->ty = ty;
  c->ety = ty;
  if (LLVMGetTypeKind(ty) == LLVMVectorTypeKind) {
    c->lanes = LLVMGetVectorSize(ty);
    if (c->lanes == 0 || c->lanes > MAX_LANES) return 0;
    c->ety = LLVMGetElementType(ty);
  }
  LLVMTypeKind k = LLVMGetTypeKind(c->ety);
  if (k != LLVMFloatTypeKind && k != LLVMDoubleTypeKind) return 0;
  c->dbl = k == LLVMDoubleTypeKind;
  c->mant = c->dbl ? 52 : 23;
  c->bias = c->dbl ? 1023 : 127;
  c->iety = LLVMIntTypeInContext(c->ctx, c->dbl ? 64 : 32);
  c->ity = c->lanes ? LLVMVectorType(c->iety, c->lanes) : c->iety;
  return 1;
}

/* The same shape with double lanes (f32 functions computed in double). */
static void mc_widen(const mc *c, mc *w) {
  LLVMTypeRef d = LLVMDoubleTypeInContext(c->ctx);
  mc_init(w, c->m, c->b, c->lanes ? LLVMVectorType(d, c->lanes) : d);
  w->wide = 1;
}

static LLVMValueRef splat(const mc *c, LLVMValueRef s) {
  if (!c->lanes) return s;
  LLVMValueRef v[MAX_LANES];
  for (unsigned i = 0; i < c->lanes; i++) v[i] = s;
  return LLVMConstVector(v, c->lanes);
}
static LLVMValueRef K(const mc *c, double v) { return splat(c, LLVMConstReal(c->ety, v)); }
static LLVMValueRef KI(const mc *c, long long v) {
  return splat(c, LLVMConstInt(c->iety, (unsigned long long)v, 1));
}

static LLVMValueRef intrinsic(const mc *c, const char *name, LLVMValueRef *args, unsigned n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMTypeRef ty = c->ty;
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(c->m, id, &ty, 1);
  LLVMTypeRef fty = LLVMIntrinsicGetType(c->ctx, id, &ty, 1);
  return LLVMBuildCall2(c->b, fty, fn, args, n, "");
}

/* Floating point. */
static LLVMValueRef add(const mc *c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFAdd(c->b, a, b, "");
}
static LLVMValueRef sub(const mc *c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFSub(c->b, a, b, "");
}
static LLVMValueRef mul(const mc *c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFMul(c->b, a, b, "");
}
static LLVMValueRef fquo(const mc *c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFDiv(c->b, a, b, "");
}
static LLVMValueRef neg(const mc *c, LLVMValueRef a) { return LLVMBuildFNeg(c->b, a, ""); }
static LLVMValueRef fmad(const mc *c, LLVMValueRef a, LLVMValueRef b, LLVMValueRef d) {
  LLVMValueRef args[3] = {a, b, d};
  return intrinsic(c, "llvm.fmuladd", args, 3);
}
static LLVMValueRef fabsv(const mc *c, LLVMValueRef a) { return intrinsic(c, "llvm.fabs", &a, 1); }
static LLVMValueRef copysignv(const mc *c, LLVMValueRef mag, LLVMValueRef sgn) {
  LLVMValueRef args[2] = {mag, sgn};
  return intrinsic(c, "llvm.copysign", args, 2);
}
static LLVMValueRef cmp(const mc *c, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFCmp(c->b, p, a, b, "");
}
static LLVMValueRef sel(const mc *c, LLVMValueRef cond, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(c->b, cond, a, b, "");
}
static LLVMValueRef isnan_(const mc *c, LLVMValueRef a) { return cmp(c, LLVMRealUNO, a, a); }
/* Clamp to [lo, hi]; NaN passes through (the comparisons are false). */
static LLVMValueRef clamp(const mc *c, LLVMValueRef a, double lo, double hi) {
  a = sel(c, cmp(c, LLVMRealOGT, a, K(c, hi)), K(c, hi), a);
  return sel(c, cmp(c, LLVMRealOLT, a, K(c, lo)), K(c, lo), a);
}

/* Integer views. */
static LLVMValueRef as_int(const mc *c, LLVMValueRef a) { return LLVMBuildBitCast(c->b, a, c->ity, ""); }
static LLVMValueRef as_fp(const mc *c, LLVMValueRef a) { return LLVMBuildBitCast(c->b, a, c->ty, ""); }
static LLVMValueRef iadd(const mc *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(c->b, a, b, ""); }
static LLVMValueRef isub(const mc *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSub(c->b, a, b, ""); }
static LLVMValueRef ishl(const mc *c, LLVMValueRef a, int s) { return LLVMBuildShl(c->b, a, KI(c, s), ""); }
static LLVMValueRef iashr(const mc *c, LLVMValueRef a, int s) { return LLVMBuildAShr(c->b, a, KI(c, s), ""); }
static LLVMValueRef iand(const mc *c, LLVMValueRef a, long long k) { return LLVMBuildAnd(c->b, a, KI(c, k), ""); }
static LLVMValueRef ine0(const mc *c, LLVMValueRef a) {
  return LLVMBuildICmp(c->b, LLVMIntNE, a, KI(c, 0), "");
}
static LLVMValueRef or1(const mc *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildOr(c->b, a, b, ""); }
static LLVMValueRef and1(const mc *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAnd(c->b, a, b, ""); }
static LLVMValueRef not1(const mc *c, LLVMValueRef a) { return LLVMBuildNot(c->b, a, ""); }

/* 2^n for integer lanes n in the normal exponent range. */
static LLVMValueRef pow2i(const mc *c, LLVMValueRef n) {
  return as_fp(c, ishl(c, iadd(c, n, KI(c, c->bias)), c->mant));
}

/* Horner: k[0] + x*(k[1] + x*(...)). */
static LLVMValueRef horner(const mc *c, LLVMValueRef x, const double *k, int n) {
  LLVMValueRef p = K(c, k[n - 1]);
  for (int i = n - 2; i >= 0; i--) p = fmad(c, p, x, K(c, k[i]));
  return p;
}

/* Round to the nearest integer (ties to even) for |v| < 2^(mant-1): adding
 * 1.5*2^mant leaves the integer in the low mantissa bits. Returns it as a
 * float (*kf) and as an integer. */
static LLVMValueRef round_int(const mc *c, LLVMValueRef v, LLVMValueRef *kf) {
  double magic = 1.5 * (c->dbl ? 4503599627370496.0 : 8388608.0);
  LLVMValueRef t = add(c, v, K(c, magic));
  *kf = sub(c, t, K(c, magic));
  return isub(c, as_int(c, t), as_int(c, K(c, magic)));
}

/* ------------------------------------------------------------------ exp */
/* (e^r - 1 - r)/r^2 on |r| <= 1.01*ln2/2, minimax (docs/math.md). The
 * relative error of the fit is 1.3e-7 (f32) and 2.3e-16 (f64); it enters
 * e^r multiplied by r^2/2 <= 0.06. */
static const double EXP_F32[] = {0.499999995253630125700, 0.166665736943738097467,
                                 0.0416668609333245111773, 0.00836373984865624658990,
                                 0.00139015337960149763583};
static const double EXP_F64[] = {
    0.500000000000000112032,     0.166666666666666415786,     0.0416666666666208382563,
    0.00833333333335807344766,   0.00138888889188576370010,   0.000198412697812213717792,
    0.0000248015187479050574200, 0.00000275573569655761857521, 2.76212951933963721668e-7,
    2.50684881282030502695e-8};
/* For f32 results computed in double: relative error 5.5e-11. */
static const double EXP_W[] = {0.500000000002260696296,    0.166666667219726444012,
                               0.0416666663893530840336,   0.00833329714794096369118,
                               0.00138889251550314954246,  0.000199003888745033072113,
                               0.0000248212604390128202880};

/* Cody-Waite: x = n*ln2 + r with |r| <= ln2/2. ln2_hi has its low bits
 * zero (16 significant bits for f32, 32 for f64), so n*ln2_hi is exact for
 * every n of the clamped range and x - n*ln2_hi is exact too; ln2_lo
 * carries the rest. Returns q = e^r - 1 (kept apart from the 1 so that
 * expm1 stays accurate) and the scale 2^n split in two factors s1*s2 (each
 * a normal number, so the result rounds once, also into the subnormals).
 * *s is 2^n itself where n is small enough (expm1). */
static LLVMValueRef exp_core(const mc *c, LLVMValueRef x, LLVMValueRef *s1, LLVMValueRef *s2,
                             LLVMValueRef *s) {
  const double log2e = 1.44269504088896340736;
  double ln2_hi = c->dbl ? 6.93147180369123816490e-01 : 0.693145751953125;
  double ln2_lo = c->dbl ? 1.90821492927058770002e-10 : 1.428606765330187045e-06;
  LLVMValueRef kf;
  LLVMValueRef n = round_int(c, mul(c, x, K(c, log2e)), &kf);
  LLVMValueRef r = sub(c, x, mul(c, kf, K(c, ln2_hi)));
  r = sub(c, r, mul(c, kf, K(c, ln2_lo)));
  LLVMValueRef p = c->wide  ? horner(c, r, EXP_W, 7)
                   : c->dbl ? horner(c, r, EXP_F64, 10)
                            : horner(c, r, EXP_F32, 5);
  LLVMValueRef q = fmad(c, mul(c, r, r), p, r);
  LLVMValueRef n1 = iashr(c, n, 1);
  *s1 = pow2i(c, n1);
  *s2 = pow2i(c, isub(c, n, n1));
  if (s) *s = pow2i(c, n);
  return q;
}

static LLVMValueRef emit_exp(const mc *c, LLVMValueRef x) {
  /* Beyond these bounds the result is inf or 0 (f32: e^89 > FLT_MAX,
   * e^-110 < 2^-150; f64: e^710 > DBL_MAX, e^-750 < 2^-1075); clamping keeps
   * n and both halves of 2^n in range. */
  LLVMValueRef xc = c->dbl ? clamp(c, x, -750.0, 710.0) : clamp(c, x, -110.0, 89.0);
  LLVMValueRef s1, s2;
  LLVMValueRef q = exp_core(c, xc, &s1, &s2, NULL);
  LLVMValueRef e = mul(c, mul(c, add(c, q, K(c, 1.0)), s1), s2);
  return sel(c, isnan_(c, x), x, e);
}

/* e^x - 1 for x in [-40, 0] (tanh only): 2^n*q + (2^n - 1), exact for
 * n = 0, so small arguments keep their relative accuracy. */
static LLVMValueRef emit_expm1_neg(const mc *c, LLVMValueRef x) {
  LLVMValueRef s1, s2, s;
  LLVMValueRef q = exp_core(c, x, &s1, &s2, &s);
  return fmad(c, s, q, sub(c, s, K(c, 1.0)));
}

/* ------------------------------------------------------------------ log */
/* R(z) = (2*atanh(s)/s - 2)/z with z = s^2 on [0, 1.01*0.02944], minimax;
 * relative error 2.9e-7 (f32), 4.9e-16 (f64), entering log1p(f) through a
 * term about 1/100 of it. */
static const double LOG_F32[] = {0.666666856661724061760, 0.399885339590117749162,
                                 0.295908913393544807523};
static const double LOG_F64[] = {0.666666666666666992157, 0.399999999998928684390,
                                 0.285714286289498994397, 0.222222106542772383591,
                                 0.181829238097251622645, 0.153305785202785739769,
                                 0.146304665237784784929};

static LLVMValueRef emit_log(const mc *c, LLVMValueRef x) {
  /* Subnormals: scale by 2^mant into the normals (exact), correct k. */
  double tiny = c->dbl ? 2.2250738585072014e-308 : 1.17549435e-38;
  LLVMValueRef sub_ = cmp(c, LLVMRealOLT, x, K(c, tiny));
  LLVMValueRef xs = sel(c, sub_, mul(c, x, K(c, c->dbl ? 4503599627370496.0 : 8388608.0)), x);
  LLVMValueRef kadj = sel(c, sub_, KI(c, -c->mant), KI(c, 0));
  /* x = 2^k * m with m in [sqrt(2)/2, sqrt(2)): subtracting the bits of
   * sqrt(2)/2 moves the exponent boundary there. */
  LLVMValueRef ix = as_int(c, xs);
  LLVMValueRef lo = as_int(c, K(c, 0.70710678118654752440));
  LLVMValueRef k = iashr(c, isub(c, ix, lo), c->mant);
  LLVMValueRef m = as_fp(c, isub(c, ix, ishl(c, k, c->mant)));
  k = iadd(c, k, kadj);
  LLVMValueRef kf = LLVMBuildSIToFP(c->b, k, c->ty, "");
  /* log1p(f) = 2*atanh(s), s = f/(2+f), written as
   * f - f^2/2 + s*(f^2/2 + R(z)): the leading f is exact, and only the
   * small correction carries rounding errors. */
  LLVMValueRef f = sub(c, m, K(c, 1.0));
  LLVMValueRef s = fquo(c, f, add(c, f, K(c, 2.0)));
  LLVMValueRef z = mul(c, s, s);
  LLVMValueRef R = mul(c, z, c->dbl ? horner(c, z, LOG_F64, 7) : horner(c, z, LOG_F32, 3));
  LLVMValueRef hfsq = mul(c, mul(c, f, f), K(c, 0.5));
  /* ln2 split as in exp (Cody-Waite): k*ln2_hi is exact for |k| < 1100. */
  double ln2_hi = c->dbl ? 6.93147180369123816490e-01 : 0.693145751953125;
  double ln2_lo = c->dbl ? 1.90821492927058770002e-10 : 1.428606765330187045e-06;
  LLVMValueRef t = fmad(c, s, add(c, hfsq, R), mul(c, kf, K(c, ln2_lo)));
  LLVMValueRef r = sub(c, mul(c, kf, K(c, ln2_hi)), sub(c, sub(c, hfsq, t), f));
  /* log(+inf) = +inf, log(+-0) = -inf, log(x < 0) = log(NaN) = NaN. */
  r = sel(c, cmp(c, LLVMRealOEQ, x, K(c, HUGE_VAL)), x, r);
  r = sel(c, cmp(c, LLVMRealOEQ, x, K(c, 0.0)), K(c, -HUGE_VAL), r);
  return sel(c, cmp(c, LLVMRealULT, x, K(c, 0.0)), K(c, NAN), r);
}

/* ------------------------------------------------------------- sin, cos */
/* S(z) = (sin r - r)/r^3 and C(z) = (cos r - 1 + z/2)/z^2, z = r^2 on
 * [0, 1.01*(pi/4)^2], minimax; relative errors 1.3e-16 and 3.3e-17. */
static const double SIN_F64[] = {-0.166666666666666644665,     0.00833333333333080177794,
                                 -0.000198412698365433756593,  0.00000275573159936589929814,
                                 -2.50511096130013440557e-8,   1.59165555692990029983e-10};
static const double COS_F64[] = {0.0416666666666666652975,  -0.00138888888888873110305,
                                 0.0000248015872986381963321, -2.75573172068066941425e-7,
                                 2.08761329462366962080e-9,  -1.13816854889325373768e-11};
/* For f32 results computed in double: relative errors 1.8e-10, 5.9e-11. */
static const double SIN_W[] = {-0.166666666637013986421, 0.00833333181913012347771,
                               -0.000198400581291402655962, 0.00000272463438062297653511};
static const double COS_W[] = {0.0416666666642049143518, -0.00138888876291157317151,
                               0.0000248005779890674843238, -2.72981283721508835116e-7};

/* In double. x = n*pi/2 + r, |r| <= pi/4, by Cody-Waite with pi/2 in four
 * parts: the first three have 33 significant bits, so n*P1 is exact and
 * x - n*P1 exact (Sterbenz) for |n| < 2^20, i.e. |x| < 1.6e6; each later
 * subtraction rounds relative to its own result, which is already close to
 * r. Beyond 1.6e6 the reduction loses accuracy gradually (n*P1 rounds:
 * about 1e-7 absolute at 1e9), and past 2^51 n itself is meaningless, so r
 * is clamped to [-pi/4, pi/4]: the result stays finite and in [-1, 1] but
 * is not sin x there (no Payne-Hanek reduction). */
static LLVMValueRef emit_sincos(const mc *c, LLVMValueRef x, int cosine) {
  const double P1 = 1.57079632673412561417e+00, P2 = 6.07710050630396597660e-11,
               P3 = 2.02226624871116645580e-21, P4 = 8.47842766036889956997e-32;
  LLVMValueRef ax = fabsv(c, x);
  LLVMValueRef kf;
  LLVMValueRef n = round_int(c, mul(c, x, K(c, 0.63661977236758134308)), &kf);
  /* r = rh + rl. For f32 results (wide) rounding r once is plenty; for
   * f64 the rounding error of the first inexact subtraction is kept (2Sum)
   * and the later, tiny terms go to rl, or the reduction alone would cost
   * up to 1.5 ulp. */
  LLVMValueRef r1 = sub(c, x, mul(c, kf, K(c, P1)));
  LLVMValueRef w2 = mul(c, kf, K(c, P2));
  LLVMValueRef rh = sub(c, r1, w2), rl;
  if (c->wide) {
    rh = sub(c, rh, mul(c, kf, K(c, P3)));
    rl = NULL;
  } else {
    LLVMValueRef bb = sub(c, rh, r1);
    rl = add(c, sub(c, r1, sub(c, rh, bb)), sub(c, neg(c, w2), bb));
    rl = sub(c, rl, mul(c, kf, K(c, P3)));
    rl = sub(c, rl, mul(c, kf, K(c, P4)));
    LLVMValueRef y = add(c, rh, rl);
    rl = sub(c, rl, sub(c, y, rh));
    rh = y;
    /* |rl| <= ulp(rh)/2 where the reduction means anything; beyond 2^51
     * it is garbage and must not leave [-1, 1]. */
    rl = clamp(c, rl, -0x1p-50, 0x1p-50);
  }
  LLVMValueRef r = clamp(c, rh, -0.78539816339744830962, 0.78539816339744830962);
  LLVMValueRef z = mul(c, r, r);
  LLVMValueRef hz = mul(c, z, K(c, 0.5));
  /* sin(r + rl) = sin r + rl*cos r, cos r ~ 1 - z/2 is enough for rl. */
  LLVMValueRef S = c->wide ? horner(c, z, SIN_W, 4) : horner(c, z, SIN_F64, 6);
  LLVMValueRef sr = c->wide ? fmad(c, mul(c, z, r), S, r)
                            : add(c, r, fmad(c, mul(c, z, r), S, fmad(c, neg(c, hz), rl, rl)));
  /* cos r = 1 - z/2 + z^2 C(z): w = 1 - z/2 rounded, and its rounding
   * error (1 - w) - z/2 added back with the tail; cos(r + rl) adds
   * -rl*sin r ~ -rl*r. */
  LLVMValueRef C = c->wide ? horner(c, z, COS_W, 4) : horner(c, z, COS_F64, 6);
  LLVMValueRef w = sub(c, K(c, 1.0), hz);
  LLVMValueRef lo = sub(c, sub(c, K(c, 1.0), w), hz);
  if (!c->wide) lo = fmad(c, neg(c, r), rl, lo);
  LLVMValueRef cr = add(c, w, fmad(c, mul(c, z, z), C, lo));
  /* Quadrant: sin x = sin r, cos r, -sin r, -cos r for n mod 4 = 0..3;
   * cos x = sin(x + pi/2) shifts n by one. */
  if (cosine) n = iadd(c, n, KI(c, 1));
  LLVMValueRef v = sel(c, ine0(c, iand(c, n, 1)), cr, sr);
  v = sel(c, ine0(c, iand(c, n, 2)), neg(c, v), v);
  /* sin(-0) = -0: r + r^3 S(z) would add +0 to it. */
  if (!cosine) v = sel(c, cmp(c, LLVMRealOEQ, x, K(c, 0.0)), x, v);
  /* sin(+-inf) = cos(+-inf) = NaN; NaN stays NaN. */
  LLVMValueRef bad = cmp(c, LLVMRealUEQ, ax, K(c, HUGE_VAL));
  return sel(c, bad, sel(c, isnan_(c, x), x, K(c, NAN)), v);
}

/* ------------------------------------------------------- tanh, sigmoid */
/* tanh|x| = -u/(2 + u) with u = expm1(-2|x|): no cancellation anywhere
 * (u in (-1, 0]), and |x| >= 20 gives 1 in double. */
static LLVMValueRef emit_tanh(const mc *c, LLVMValueRef x) {
  LLVMValueRef a = clamp(c, fabsv(c, x), 0.0, 20.0);
  LLVMValueRef u = emit_expm1_neg(c, mul(c, a, K(c, -2.0)));
  LLVMValueRef t = fquo(c, neg(c, u), add(c, u, K(c, 2.0)));
  t = copysignv(c, t, x);
  return sel(c, isnan_(c, x), x, t);
}

/* The graph's definition: 1/(1 + e^-x) for x >= 0, e^x/(1 + e^x) below,
 * i.e. e = e^-|x| <= 1 never overflows and tiny results stay relative. */
static LLVMValueRef emit_sigmoid(const mc *c, LLVMValueRef x) {
  LLVMValueRef e = emit_exp(c, neg(c, fabsv(c, x)));
  LLVMValueRef d = add(c, e, K(c, 1.0));
  LLVMValueRef pos = cmp(c, LLVMRealOGE, x, K(c, 0.0));
  return sel(c, pos, fquo(c, K(c, 1.0), d), fquo(c, e, d));
}

/* ------------------------------------------------------------------ pow */
/* f32 only, in double: |x|^y = e^(y*log|x|). The double log and exp are
 * accurate to ~1e-16 relative, so the product's error, |y*log|x|| * 2^-52
 * <= 2^-42 for any result within float range, vanishes when rounding to
 * float. The special cases follow C99 Annex F (as libm's pow). */
static LLVMValueRef emit_pow_wide(const mc *c, LLVMValueRef x, LLVMValueRef y) {
  LLVMValueRef ax = fabsv(c, x);
  LLVMValueRef r = emit_exp(c, mul(c, y, emit_log(c, ax)));
  /* y integer / odd: (|y| + 2^52) - 2^52 rounds |y| to an integer, whose
   * low bit is the mantissa's last bit (read from |y| itself once
   * |y| >= 2^52); every |y| >= 2^53 (and inf) is even. */
  const double two52 = 4503599627370496.0;
  LLVMValueRef ay = fabsv(c, y);
  LLVMValueRef big = cmp(c, LLVMRealOGE, ay, K(c, two52));
  LLVMValueRef t = add(c, ay, K(c, two52));
  LLVMValueRef yint = or1(c, big, cmp(c, LLVMRealOEQ, sub(c, t, K(c, two52)), ay));
  LLVMValueRef low = ine0(c, iand(c, as_int(c, sel(c, big, ay, t)), 1));
  LLVMValueRef yodd = and1(c, and1(c, yint, low), cmp(c, LLVMRealOLT, ay, K(c, 2 * two52)));
  /* A negative base (sign bit set: -0 and -inf too) with an odd y. */
  LLVMValueRef xneg = LLVMBuildICmp(c->b, LLVMIntSLT, as_int(c, x), KI(c, 0), "");
  r = sel(c, and1(c, xneg, yodd), neg(c, r), r);
  /* Finite x < 0 with finite non-integer y: NaN. */
  LLVMValueRef xfneg = and1(c, cmp(c, LLVMRealOLT, x, K(c, 0.0)),
                            cmp(c, LLVMRealOGT, x, K(c, -HUGE_VAL)));
  LLVMValueRef yfin = cmp(c, LLVMRealOLT, ay, K(c, HUGE_VAL));
  r = sel(c, and1(c, and1(c, xfneg, yfin), not1(c, yint)), K(c, NAN), r);
  /* pow(x, +-0) = 1 and pow(1, y) = 1 even for NaN; pow(-1, +-inf) = 1. */
  LLVMValueRef one = or1(c, cmp(c, LLVMRealOEQ, y, K(c, 0.0)), cmp(c, LLVMRealOEQ, x, K(c, 1.0)));
  one = or1(c, one, and1(c, cmp(c, LLVMRealOEQ, x, K(c, -1.0)),
                         cmp(c, LLVMRealOEQ, ay, K(c, HUGE_VAL))));
  return sel(c, one, K(c, 1.0), r);
}

/* ----------------------------------------------------------- dispatch */
/* One row per op this file emits (the ops flagged SOP_MATH in
 * codegen/scalar_ops.c): the function, whether an f32 result is computed in
 * double and rounded once, and whether it has an f64 version (else NULL:
 * the LLVM backend calls libm). The operands' count is the shared table's
 * arity. */
typedef struct math_fn {
  LLVMValueRef (*f)(const mc *c, LLVMValueRef x, LLVMValueRef y);
  unsigned char wide;
  unsigned char f64;
} math_fn;

static LLVMValueRef m_exp(const mc *c, LLVMValueRef x, LLVMValueRef y) {
  (void)y;
  return emit_exp(c, x);
}
static LLVMValueRef m_log(const mc *c, LLVMValueRef x, LLVMValueRef y) {
  (void)y;
  return emit_log(c, x);
}
static LLVMValueRef m_sin(const mc *c, LLVMValueRef x, LLVMValueRef y) {
  (void)y;
  return emit_sincos(c, x, 0);
}
static LLVMValueRef m_cos(const mc *c, LLVMValueRef x, LLVMValueRef y) {
  (void)y;
  return emit_sincos(c, x, 1);
}
static LLVMValueRef m_tanh(const mc *c, LLVMValueRef x, LLVMValueRef y) {
  (void)y;
  return emit_tanh(c, x);
}
static LLVMValueRef m_sigmoid(const mc *c, LLVMValueRef x, LLVMValueRef y) {
  (void)y;
  return emit_sigmoid(c, x);
}

static const math_fn math_fns[OP_COUNT] = {
    [OP_EXP] = {m_exp, 0, 1},     [OP_LOG] = {m_log, 0, 1},
    [OP_SIN] = {m_sin, 1, 1},     [OP_COS] = {m_cos, 1, 1},
    [OP_TANH] = {m_tanh, 1, 1},   [OP_SIGMOID] = {m_sigmoid, 1, 1},
    [OP_POW] = {emit_pow_wide, 1, 0},
};

LLVMValueRef sm_llvm_math(LLVMModuleRef m, LLVMBuilderRef b, sm_op op, LLVMValueRef x,
                          LLVMValueRef y) {
  mc c;
  if (!m || !b || !x || !mc_init(&c, m, b, LLVMTypeOf(x))) return NULL;
  if ((unsigned)op >= OP_COUNT || !math_fns[op].f) return NULL;
  const math_fn *fn = &math_fns[op];
  bool binary = sm_scalar_ops[op].arity == 2;
  if (binary && (!y || LLVMTypeOf(y) != c.ty)) return NULL;
  if (c.dbl) return fn->f64 ? fn->f(&c, x, y) : NULL;
  if (!fn->wide) return fn->f(&c, x, y);
  /* f32 through double, rounded once. */
  mc w;
  mc_widen(&c, &w);
  LLVMValueRef xd = LLVMBuildFPExt(b, x, w.ty, "");
  LLVMValueRef yd = binary ? LLVMBuildFPExt(b, y, w.ty, "") : NULL;
  return LLVMBuildFPTrunc(b, fn->f(&w, xd, yd), c.ty, "");
}
