/* The LLVM backend: kernel IR to LLVM IR through the C API.
 *
 * Per kernel an internal, always-inlined body with one noalias pointer per
 * buffer, and the exported entry of the kernel ABI (kernel.h) that loads
 * the pointers and calls it. The body is a loop nest in k->order; each
 * value is emitted in the innermost loop where its operands are available
 * (loop-invariant code lands in outer loops). Accumulators live in
 * registers (allocas that mem2reg promotes) when every reduced loop is
 * inside every non-reduced one, else in the kernel's scratch buffers with
 * an init nest and an epilogue nest. See docs/cpu-backend.md. */
#include "llvm.h"

#include "llvm_math.h"
#include "llvm_matmul.h"
#include "scalar_ops.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAXLOOPS (SMELT_MAX_RANK + 2)

bool sm_llvm_use_blocked_matmul(void) {
  const char *s = getenv("SMELT_LLVM_MATMUL");
  if (s && strcmp(s, "generic") == 0) return false;
  return true;
}

/* ------------------------------------------------------------ emitter */

typedef struct loop {
  int axis;
  LLVMBasicBlockRef pre, header; /* pre: the block that branches into header */
  LLVMValueRef iv, start, end;
} loop;

enum { ACC_REG, ACC_SCRATCH, ACC_MM };

typedef struct emitter {
  LLVMModuleRef m;
  LLVMContextRef cx;
  LLVMBuilderRef b;
  LLVMTargetMachineRef tm;
  const sm_kernel *k;
  LLVMValueRef fn, ctx, begin, end;
  LLVMValueRef *bufs;  /* per arg */
  bool *written;       /* per arg: stored by this kernel */
  LLVMValueRef *cache; /* per value: the emitted value, valid at cdepth */
  int *cdepth;
  int *lvl;            /* memo of level(), valid while lvl_epoch == epoch */
  unsigned *lvl_epoch;
  unsigned epoch;
  int depth;
  loop loops[MAXLOOPS];
  LLVMBasicBlockRef hoist[MAXLOOPS + 1]; /* where code of each depth goes */
  bool outer_phase; /* reduced axes read as index 0 */
  int acc_mode;
  LLVMValueRef *acc_val, *acc_idx; /* ACC_REG: allocas */
  LLVMValueRef mm_c;               /* ACC_MM: the product matrix */
  int64_t mm_coef[MAXLOOPS];
  int64_t mm_off;
  int64_t sstride[MAXLOOPS]; /* scratch strides (row-major over non-reduced axes) */
  bool mm_extern;            /* matmul functions declared, defined in another module */
  LLVMTypeRef t_i1, t_i8, t_i32, t_i64, t_f32, t_f64, t_ptr, t_void;
  char *err;
} emitter;

static LLVMTypeRef ty(emitter *e, smelt_dtype dt) {
  switch (dt) {
  case SMELT_F32: return e->t_f32;
  case SMELT_F64: return e->t_f64;
  case SMELT_I32: return e->t_i32;
  case SMELT_I64: return e->t_i64;
  default: return e->t_i1;
  }
}
/* In memory a bool is one byte. */
static LLVMTypeRef mty(emitter *e, smelt_dtype dt) {
  return dt == SMELT_BOOL ? e->t_i8 : ty(e, dt);
}
static LLVMValueRef ci64(emitter *e, int64_t v) {
  return LLVMConstInt(e->t_i64, (unsigned long long)v, 1);
}
static LLVMValueRef const_of(emitter *e, smelt_dtype dt, double f, int64_t i) {
  if (sm_is_float(dt)) return LLVMConstReal(ty(e, dt), dt == SMELT_F32 ? (double)(float)f : f);
  if (dt == SMELT_BOOL) return LLVMConstInt(e->t_i1, f != 0, 0);
  return LLVMConstInt(ty(e, dt), (unsigned long long)i, 1);
}

static void set_err(emitter *e, char *msg) {
  if (!e->err) e->err = msg;
  else sm_free(msg);
}

static LLVMValueRef call_intr(emitter *e, const char *name, LLVMTypeRef *tys, size_t ntys,
                              LLVMValueRef *args, unsigned nargs) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(e->m, id, tys, ntys);
  LLVMTypeRef ft = LLVMIntrinsicGetType(e->cx, id, tys, ntys);
  return LLVMBuildCall2(e->b, ft, f, args, nargs, "");
}

/* A call of a C library function (libm), declared on first use. */
static LLVMValueRef call_libm(emitter *e, const char *name, LLVMTypeRef t, LLVMValueRef *args,
                              unsigned nargs) {
  LLVMTypeRef ps[2] = {t, t};
  LLVMTypeRef ft = LLVMFunctionType(t, ps, nargs, 0);
  LLVMValueRef f = LLVMGetNamedFunction(e->m, name);
  if (!f) f = LLVMAddFunction(e->m, name, ft);
  return LLVMBuildCall2(e->b, ft, f, args, nargs, "");
}

static void add_attr(emitter *e, LLVMValueRef fn, LLVMAttributeIndex idx, const char *name) {
  unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
  LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(e->cx, kind, 0));
}

/* f32 arithmetic may contract a*b+c into an FMA (one rounding instead of
 * two: within the f32 tolerance, and faster); f64 arithmetic stays exact
 * IEEE, so f64 values (and f32 values computed in f64, such as iota's
 * start + i*step) match the interpreter bit for bit. */
static LLVMValueRef fcontract(LLVMValueRef v) {
  LLVMTypeRef t = LLVMTypeOf(v);
  if (LLVMGetTypeKind(t) == LLVMVectorTypeKind) t = LLVMGetElementType(t);
  if (LLVMGetTypeKind(t) == LLVMFloatTypeKind && LLVMIsAInstruction(v) &&
      LLVMCanValueUseFastMathFlags(v))
    LLVMSetFastMathFlags(v, LLVMFastMathAllowContract);
  return v;
}

/* ------------------------------------------------------------ casts */

/* Converts x of dtype from to dtype to with the interpreter's rules:
 * float to int truncates, NaN gives 0 and out-of-range saturates; float to
 * bool is x != 0 (NaN is true). */
static LLVMValueRef convert(emitter *e, LLVMValueRef x, smelt_dtype from, smelt_dtype to) {
  if (from == to) return x;
  LLVMBuilderRef b = e->b;
  LLVMTypeRef t = ty(e, to);
  if (sm_is_float(from)) {
    if (sm_is_float(to))
      return to == SMELT_F64 ? LLVMBuildFPExt(b, x, t, "") : LLVMBuildFPTrunc(b, x, t, "");
    if (to == SMELT_BOOL) return LLVMBuildFCmp(b, LLVMRealUNE, x, LLVMConstNull(ty(e, from)), "");
    LLVMTypeRef tys[2] = {t, ty(e, from)};
    LLVMValueRef args[1] = {x};
    return call_intr(e, "llvm.fptosi.sat", tys, 2, args, 1);
  }
  if (from == SMELT_BOOL) {
    if (sm_is_float(to)) return LLVMBuildUIToFP(b, x, t, "");
    return LLVMBuildZExt(b, x, t, "");
  }
  /* from an integer */
  if (sm_is_float(to)) return LLVMBuildSIToFP(b, x, t, "");
  if (to == SMELT_BOOL) return LLVMBuildICmp(b, LLVMIntNE, x, LLVMConstNull(ty(e, from)), "");
  return to == SMELT_I64 ? LLVMBuildSExt(b, x, t, "") : LLVMBuildTrunc(b, x, t, "");
}

/* ------------------------------------------------------- module helpers */

/* i64 integer pow with src/ops.c's i_pow semantics, one per module. */
static LLVMValueRef ipow_fn(emitter *e) {
  const char *name = "smelt.ipow";
  LLVMValueRef f = LLVMGetNamedFunction(e->m, name);
  if (f) return f;
  LLVMTypeRef ps[2] = {e->t_i64, e->t_i64};
  LLVMTypeRef ft = LLVMFunctionType(e->t_i64, ps, 2, 0);
  f = LLVMAddFunction(e->m, name, ft);
  LLVMSetLinkage(f, LLVMInternalLinkage);
  add_attr(e, f, LLVMAttributeFunctionIndex, "nounwind");
  LLVMBuilderRef b = LLVMCreateBuilderInContext(e->cx);
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(e->cx, f, "entry");
  LLVMBasicBlockRef neg = LLVMAppendBasicBlockInContext(e->cx, f, "neg");
  LLVMBasicBlockRef loop = LLVMAppendBasicBlockInContext(e->cx, f, "loop");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(e->cx, f, "done");
  LLVMValueRef a = LLVMGetParam(f, 0), x = LLVMGetParam(f, 1);
  LLVMValueRef zero = LLVMConstInt(e->t_i64, 0, 0), one = LLVMConstInt(e->t_i64, 1, 0);
  LLVMValueRef mone = LLVMConstInt(e->t_i64, (unsigned long long)-1, 1);
  LLVMPositionBuilderAtEnd(b, entry);
  LLVMValueRef isneg = LLVMBuildICmp(b, LLVMIntSLT, x, zero, "");
  LLVMBuildCondBr(b, isneg, neg, loop);
  /* b < 0: 1 for a = 1, +-1 for a = -1 by parity, else 0 */
  LLVMPositionBuilderAtEnd(b, neg);
  LLVMValueRef odd = LLVMBuildTrunc(b, x, e->t_i1, "");
  LLVMValueRef pm = LLVMBuildSelect(b, odd, mone, one, "");
  LLVMValueRef r_neg = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, a, one, ""), one,
                                       LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, a, mone, ""),
                                                       pm, zero, ""),
                                       "");
  LLVMBuildRet(b, r_neg);
  /* square and multiply, wrapping */
  LLVMPositionBuilderAtEnd(b, loop);
  LLVMValueRef r = LLVMBuildPhi(b, e->t_i64, "r");
  LLVMValueRef xb = LLVMBuildPhi(b, e->t_i64, "x");
  LLVMValueRef bb = LLVMBuildPhi(b, e->t_i64, "b");
  LLVMValueRef bit = LLVMBuildTrunc(b, bb, e->t_i1, "");
  LLVMValueRef r2 = LLVMBuildSelect(b, bit, LLVMBuildMul(b, r, xb, ""), r, "");
  LLVMValueRef x2 = LLVMBuildMul(b, xb, xb, "");
  LLVMValueRef b2 = LLVMBuildLShr(b, bb, one, "");
  LLVMValueRef more = LLVMBuildICmp(b, LLVMIntNE, b2, zero, "");
  LLVMBuildCondBr(b, more, loop, done);
  LLVMValueRef inr[2] = {one, r2}, inx[2] = {a, x2}, inb[2] = {x, b2};
  LLVMBasicBlockRef from[2] = {entry, loop};
  LLVMAddIncoming(r, inr, from, 2);
  LLVMAddIncoming(xb, inx, from, 2);
  LLVMAddIncoming(bb, inb, from, 2);
  /* b = 0 enters the loop too (one step with bit 0): r stays 1 */
  LLVMPositionBuilderAtEnd(b, done);
  LLVMBuildRet(b, r2);
  LLVMDisposeBuilder(b);
  return f;
}

/* The cold path of a failing KV_CHECK: the first failure records itself. */
static LLVMValueRef check_fail_fn(emitter *e) {
  const char *name = "smelt.check_fail";
  LLVMValueRef f = LLVMGetNamedFunction(e->m, name);
  if (f) return f;
  LLVMTypeRef ps[3] = {e->t_ptr, e->t_i64, e->t_i64};
  f = LLVMAddFunction(e->m, name, LLVMFunctionType(e->t_void, ps, 3, 0));
  LLVMSetLinkage(f, LLVMInternalLinkage);
  add_attr(e, f, LLVMAttributeFunctionIndex, "cold");
  add_attr(e, f, LLVMAttributeFunctionIndex, "noinline");
  add_attr(e, f, LLVMAttributeFunctionIndex, "nounwind");
  LLVMBuilderRef b = LLVMCreateBuilderInContext(e->cx);
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(e->cx, f, "entry");
  LLVMBasicBlockRef rec = LLVMAppendBasicBlockInContext(e->cx, f, "record");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(e->cx, f, "done");
  LLVMPositionBuilderAtEnd(b, entry);
  LLVMValueRef ctx = LLVMGetParam(f, 0);
  LLVMValueRef perr = LLVMBuildGEP2(b, e->t_i8, ctx, (LLVMValueRef[]){ci64(e, 12)}, 1, "");
  LLVMValueRef cx = LLVMBuildAtomicCmpXchg(b, perr, LLVMConstInt(e->t_i32, 0, 0),
                                           LLVMConstInt(e->t_i32, 1, 0),
                                           LLVMAtomicOrderingSequentiallyConsistent,
                                           LLVMAtomicOrderingSequentiallyConsistent, 0);
  LLVMValueRef won = LLVMBuildExtractValue(b, cx, 1, "");
  LLVMBuildCondBr(b, won, rec, done);
  LLVMPositionBuilderAtEnd(b, rec);
  LLVMValueRef pi = LLVMBuildGEP2(b, e->t_i8, ctx, (LLVMValueRef[]){ci64(e, 16)}, 1, "");
  LLVMValueRef pb = LLVMBuildGEP2(b, e->t_i8, ctx, (LLVMValueRef[]){ci64(e, 24)}, 1, "");
  LLVMBuildStore(b, LLVMGetParam(f, 1), pi);
  LLVMBuildStore(b, LLVMGetParam(f, 2), pb);
  LLVMBuildBr(b, done);
  LLVMPositionBuilderAtEnd(b, done);
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);
  return f;
}

/* ------------------------------------------------------------- levels */

static void position(emitter *e, int level) {
  LLVMBasicBlockRef bb = e->hoist[level];
  LLVMValueRef term = LLVMGetBasicBlockTerminator(bb);
  if (term) LLVMPositionBuilderBefore(e->b, term);
  else LLVMPositionBuilderAtEnd(e->b, bb);
}

/* The depth at which axis's index is defined: 0 when it reads as 0 (a
 * reduced axis in the outer phase), -1 when no open loop defines it. */
static int axis_level(emitter *e, int axis) {
  if (e->outer_phase && e->k->reduce[axis]) return 0;
  for (int i = 0; i < e->depth; i++)
    if (e->loops[i].axis == axis) return i + 1;
  return -1;
}

static LLVMValueRef axis_value(emitter *e, int axis) {
  int l = axis_level(e, axis);
  if (l <= 0) {
    if (l < 0) set_err(e, sm_fmt("kernel %s: axis %d is used outside its loop", e->k->name, axis));
    return ci64(e, 0);
  }
  return e->loops[l - 1].iv;
}

static int level(emitter *e, int v) {
  if (e->cache[v]) return e->cdepth[v];
  if (e->lvl_epoch[v] == e->epoch) return e->lvl[v];
  const sm_kernel *k = e->k;
  const sm_kval *x = &k->vals[v];
  int l = 0;
  switch ((sm_kval_kind)x->kind) {
  case KV_IDX: l = axis_level(e, x->axis); break;
  case KV_AFFINE:
    for (int d = 0; d < k->ndim; d++)
      if (x->coef[d]) {
        int al = axis_level(e, d);
        if (al > l) l = al;
      }
    break;
  case KV_ACC: l = e->depth; break;
  default: {
    int ops[3] = {x->a, x->b, x->c};
    for (int i = 0; i < 3; i++)
      if (ops[i] >= 0) {
        int ol = level(e, ops[i]);
        if (ol > l) l = ol;
      }
    /* a buffer this kernel writes is read where it is used, never hoisted */
    if (x->kind == KV_LOAD && e->written[x->arg]) l = e->depth;
  }
  }
  if (l < 0) l = 0;
  e->lvl[v] = l;
  e->lvl_epoch[v] = e->epoch;
  return l;
}

/* off + sum coef[d]*idx_d, each partial sum emitted at the depth where
 * its terms are known (outer index math computed once per outer step). */
static LLVMValueRef emit_affine(emitter *e, int64_t off, const int64_t *coef) {
  LLVMValueRef acc = ci64(e, off);
  bool done[MAXLOOPS] = {0};
  for (int lv = 1; lv <= e->depth; lv++) {
    bool any = false;
    for (int d = 0; d < e->k->ndim; d++) {
      if (!coef[d] || done[d] || axis_level(e, d) != lv) continue;
      if (!any) position(e, lv), any = true;
      LLVMValueRef t = e->loops[lv - 1].iv;
      if (coef[d] != 1) t = LLVMBuildMul(e->b, t, ci64(e, coef[d]), "");
      acc = LLVMIsAConstantInt(acc) && LLVMConstIntGetSExtValue(acc) == 0
                ? t
                : LLVMBuildAdd(e->b, acc, t, "");
      done[d] = true;
    }
  }
  for (int d = 0; d < e->k->ndim; d++)
    if (coef[d] && !done[d] && axis_level(e, d) < 0)
      set_err(e, sm_fmt("kernel %s: axis %d is used outside its loop", e->k->name, d));
  return acc;
}

static LLVMValueRef emit(emitter *e, int v);

static LLVMValueRef buf_ptr(emitter *e, int arg, LLVMValueRef idx) {
  smelt_dtype dt = (smelt_dtype)e->k->args[arg].dtype;
  return LLVMBuildGEP2(e->b, mty(e, dt), e->bufs[arg], &idx, 1, "");
}

static LLVMValueRef load_elem(emitter *e, int arg, LLVMValueRef idx) {
  smelt_dtype dt = (smelt_dtype)e->k->args[arg].dtype;
  LLVMValueRef x = LLVMBuildLoad2(e->b, mty(e, dt), buf_ptr(e, arg, idx), "");
  if (dt == SMELT_BOOL) x = LLVMBuildICmp(e->b, LLVMIntNE, x, LLVMConstInt(e->t_i8, 0, 0), "");
  return x;
}

static void store_elem(emitter *e, int arg, LLVMValueRef idx, LLVMValueRef x) {
  smelt_dtype dt = (smelt_dtype)e->k->args[arg].dtype;
  if (dt == SMELT_BOOL) x = LLVMBuildZExt(e->b, x, e->t_i8, "");
  LLVMBuildStore(e->b, x, buf_ptr(e, arg, idx));
}

/* The ctx field at byte offset off, loaded once at the function's entry. */
static LLVMValueRef ctx_field(emitter *e, int off, LLVMTypeRef t) {
  position(e, 0);
  LLVMValueRef p = LLVMBuildGEP2(e->b, e->t_i8, e->ctx, (LLVMValueRef[]){ci64(e, off)}, 1, "");
  return LLVMBuildLoad2(e->b, t, p, "");
}

/* --------------------------------------------------------- scalar ops */

/* maximum/minimum of floats: NaN when either is NaN */
static LLVMValueRef fmax_sem(emitter *e, LLVMValueRef a, LLVMValueRef b, bool is_max) {
  LLVMBuilderRef B = e->b;
  LLVMValueRef c = LLVMBuildFCmp(B, is_max ? LLVMRealOGT : LLVMRealOLT, a, b, "");
  LLVMValueRef r = LLVMBuildSelect(B, c, a, b, "");
  LLVMValueRef uno = LLVMBuildFCmp(B, LLVMRealUNO, a, b, "");
  return LLVMBuildSelect(B, uno, LLVMConstReal(LLVMTypeOf(a), NAN), r, "");
}

static LLVMValueRef imax_sem(emitter *e, LLVMValueRef a, LLVMValueRef b, bool is_max) {
  LLVMValueRef c = LLVMBuildICmp(e->b, is_max ? LLVMIntSGT : LLVMIntSLT, a, b, "");
  return LLVMBuildSelect(e->b, c, a, b, "");
}

/* The emitters of the table below: x holds the operands, converted to dt
 * (the op's domain) as the shared table says. */
typedef LLVMValueRef (*op_fn)(emitter *e, smelt_dtype dt, LLVMValueRef *x);

static LLVMValueRef f_neg(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  (void)dt;
  return LLVMBuildFNeg(e->b, x[0], "");
}
static LLVMValueRef f_sign(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  LLVMBuilderRef B = e->b;
  LLVMTypeRef t = ty(e, dt);
  LLVMValueRef a = x[0], zero = LLVMConstNull(t), one = LLVMConstReal(t, 1.0);
  LLVMValueRef gt = LLVMBuildFCmp(B, LLVMRealOGT, a, zero, "");
  LLVMValueRef lt = LLVMBuildFCmp(B, LLVMRealOLT, a, zero, "");
  return LLVMBuildSelect(B, gt, one, LLVMBuildSelect(B, lt, LLVMConstReal(t, -1.0), zero, ""), "");
}
static LLVMValueRef f_rsqrt(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  LLVMTypeRef t = ty(e, dt);
  return LLVMBuildFDiv(e->b, LLVMConstReal(t, 1.0), call_intr(e, "llvm.sqrt", &t, 1, x, 1), "");
}
static LLVMValueRef f_recip(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  return LLVMBuildFDiv(e->b, LLVMConstReal(ty(e, dt), 1.0), x[0], "");
}
static LLVMValueRef f_relu(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  LLVMBuilderRef B = e->b;
  LLVMValueRef zero = LLVMConstNull(ty(e, dt));
  return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, x[0], zero, ""), zero, x[0], "");
}
static LLVMValueRef f_max(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  (void)dt;
  return fmax_sem(e, x[0], x[1], true);
}
static LLVMValueRef f_min(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  (void)dt;
  return fmax_sem(e, x[0], x[1], false);
}
/* Fallbacks of transcendentals where llvm_math.c has no IR (and LLVM no
 * intrinsic): libm's tanh, and sigmoid as src/ops.c's f_sigmoid computes
 * it. */
static LLVMValueRef f_tanh_libm(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  return call_libm(e, dt == SMELT_F32 ? "tanhf" : "tanh", ty(e, dt), x, 1);
}
static LLVMValueRef f_sigmoid_exp(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  /* never exp of a large positive number */
  LLVMTypeRef t = ty(e, dt);
  LLVMValueRef a = x[0], one = LLVMConstReal(t, 1.0);
  LLVMValueRef na = LLVMBuildFNeg(e->b, call_intr(e, "llvm.fabs", &t, 1, x, 1), "");
  LLVMValueRef ex = call_intr(e, "llvm.exp", &t, 1, &na, 1);
  LLVMValueRef den = LLVMBuildFAdd(e->b, one, ex, "");
  LLVMValueRef pos = LLVMBuildFDiv(e->b, one, den, "");
  LLVMValueRef neg = LLVMBuildFDiv(e->b, ex, den, "");
  LLVMValueRef ge = LLVMBuildFCmp(e->b, LLVMRealOGE, a, LLVMConstNull(t), "");
  /* NaN: e/(1+e) with e = NaN */
  return LLVMBuildSelect(e->b, ge, pos, neg, "");
}

static LLVMValueRef i_neg(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  return LLVMBuildSub(e->b, LLVMConstNull(ty(e, dt)), x[0], "");
}
static LLVMValueRef i_abs(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  LLVMBuilderRef B = e->b;
  LLVMValueRef a = x[0], zero = LLVMConstNull(ty(e, dt));
  return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, a, zero, ""),
                         LLVMBuildSub(B, zero, a, ""), a, "");
}
static LLVMValueRef i_sign(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  LLVMBuilderRef B = e->b;
  LLVMTypeRef t = ty(e, dt);
  LLVMValueRef a = x[0], zero = LLVMConstNull(t);
  LLVMValueRef gt = LLVMBuildZExt(B, LLVMBuildICmp(B, LLVMIntSGT, a, zero, ""), t, "");
  LLVMValueRef lt = LLVMBuildZExt(B, LLVMBuildICmp(B, LLVMIntSLT, a, zero, ""), t, "");
  return LLVMBuildSub(B, gt, lt, "");
}
static LLVMValueRef i_relu(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  LLVMBuilderRef B = e->b;
  LLVMValueRef a = x[0], zero = LLVMConstNull(ty(e, dt));
  return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, a, zero, ""), a, zero, "");
}
/* src/ops.c's i_pow in i64 (wrapping), then back to dt */
static LLVMValueRef i_pow(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  LLVMValueRef f = ipow_fn(e);
  LLVMTypeRef ps[2] = {e->t_i64, e->t_i64};
  LLVMValueRef args[2] = {convert(e, x[0], dt, SMELT_I64), convert(e, x[1], dt, SMELT_I64)};
  LLVMValueRef r = LLVMBuildCall2(e->b, LLVMFunctionType(e->t_i64, ps, 2, 0), f, args, 2, "");
  return convert(e, r, SMELT_I64, dt);
}
static LLVMValueRef i_max(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  (void)dt;
  return imax_sem(e, x[0], x[1], true);
}
static LLVMValueRef i_min(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  (void)dt;
  return imax_sem(e, x[0], x[1], false);
}
/* bool pow: the int64 result as bool; 0^0 = 1 */
static LLVMValueRef b_pow(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  (void)dt;
  return LLVMBuildOr(e->b, x[0], LLVMBuildNot(e->b, x[1], ""), "");
}
static LLVMValueRef b_not(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  (void)dt;
  return LLVMBuildNot(e->b, x[0], "");
}
static LLVMValueRef select3(emitter *e, smelt_dtype dt, LLVMValueRef *x) {
  (void)dt;
  return LLVMBuildSelect(e->b, x[0], x[1], x[2], "");
}

/* How each scalar op is emitted, one row per op (designated by the op),
 * one form per domain (float, integer, bool: the domain of the shared
 * table, codegen/scalar_ops.h, whose form also says how the operands are
 * converted first). sm_llvm_ops_check checks the rows against it. */
enum {
  L_NONE,  /* not defined in this domain */
  L_ID,    /* the (converted) operand itself */
  L_BIN,   /* one instruction: LLVMOpcode code */
  L_FCMP,  /* fcmp with predicate code */
  L_ICMP,  /* icmp with predicate code */
  L_INTR,  /* the intrinsic name, overloaded on the type */
  L_MATH,  /* codegen/llvm_math.c's IR (it vectorizes), else the intrinsic
              name (lowered to a libm call), else fn */
  L_FN     /* fn */
};
typedef struct llvm_form {
  uint8_t how;
  int code;
  const char *name;
  op_fn fn;
} llvm_form;
typedef struct llvm_op {
  llvm_form flt, num, boo;
} llvm_op;

#define ID {L_ID, 0, NULL, NULL}
#define BIN(o) {L_BIN, o, NULL, NULL}
#define FCMP(p) {L_FCMP, p, NULL, NULL}
#define ICMP(p) {L_ICMP, p, NULL, NULL}
#define INTR(n) {L_INTR, 0, n, NULL}
#define MATH(n, f) {L_MATH, 0, n, f}
#define FN(f) {L_FN, 0, NULL, f}
#define NONE {L_NONE, 0, NULL, NULL}
/* comparisons: floats ordered (false with NaN) but ne; bool as unsigned
 * (false < true) */
#define CMP(fp, ip, up) {FCMP(fp), ICMP(ip), ICMP(up)}
static const llvm_op llvm_ops[OP_COUNT] = {
    [OP_NEG] = {FN(f_neg), FN(i_neg), ID},
    [OP_ABS] = {INTR("llvm.fabs"), FN(i_abs), ID},
    [OP_SIGN] = {FN(f_sign), FN(i_sign), ID},
    [OP_EXP] = {MATH("llvm.exp", NULL), NONE, NONE},
    [OP_LOG] = {MATH("llvm.log", NULL), NONE, NONE},
    [OP_SQRT] = {INTR("llvm.sqrt"), NONE, NONE},
    [OP_RSQRT] = {FN(f_rsqrt), NONE, NONE},
    [OP_RECIPROCAL] = {FN(f_recip), NONE, NONE},
    [OP_SIN] = {MATH("llvm.sin", NULL), NONE, NONE},
    [OP_COS] = {MATH("llvm.cos", NULL), NONE, NONE},
    [OP_TANH] = {MATH(NULL, f_tanh_libm), NONE, NONE},
    [OP_SIGMOID] = {MATH(NULL, f_sigmoid_exp), NONE, NONE},
    [OP_RELU] = {FN(f_relu), FN(i_relu), ID},
    [OP_NOT] = {NONE, NONE, FN(b_not)},
    [OP_STOP_GRADIENT] = {ID, ID, ID},
    [OP_CAST] = {ID, ID, ID}, /* the conversion of the operand is the cast */
    /* bool arithmetic: the int64 result stored as bool (nonzero) */
    [OP_ADD] = {BIN(LLVMFAdd), BIN(LLVMAdd), BIN(LLVMOr)},
    [OP_SUB] = {BIN(LLVMFSub), BIN(LLVMSub), BIN(LLVMXor)},
    [OP_MUL] = {BIN(LLVMFMul), BIN(LLVMMul), BIN(LLVMAnd)},
    [OP_DIV] = {BIN(LLVMFDiv), NONE, NONE},
    [OP_POW] = {MATH("llvm.pow", NULL), FN(i_pow), FN(b_pow)},
    [OP_MAXIMUM] = {FN(f_max), FN(i_max), BIN(LLVMOr)},
    [OP_MINIMUM] = {FN(f_min), FN(i_min), BIN(LLVMAnd)},
    [OP_LT] = CMP(LLVMRealOLT, LLVMIntSLT, LLVMIntULT),
    [OP_LE] = CMP(LLVMRealOLE, LLVMIntSLE, LLVMIntULE),
    [OP_GT] = CMP(LLVMRealOGT, LLVMIntSGT, LLVMIntUGT),
    [OP_GE] = CMP(LLVMRealOGE, LLVMIntSGE, LLVMIntUGE),
    [OP_EQ] = CMP(LLVMRealOEQ, LLVMIntEQ, LLVMIntEQ),
    [OP_NE] = CMP(LLVMRealUNE, LLVMIntNE, LLVMIntNE),
    [OP_AND] = {NONE, NONE, BIN(LLVMAnd)},
    [OP_OR] = {NONE, NONE, BIN(LLVMOr)},
    [OP_WHERE] = {FN(select3), FN(select3), FN(select3)},
};
#undef ID
#undef BIN
#undef FCMP
#undef ICMP
#undef INTR
#undef MATH
#undef FN
#undef NONE
#undef CMP
_Static_assert(sizeof llvm_ops / sizeof llvm_ops[0] == OP_COUNT, "one row per op");

static const llvm_form *op_form(sm_op op, smelt_dtype dt) {
  if ((unsigned)op >= OP_COUNT) return NULL;
  const llvm_op *r = &llvm_ops[op];
  return sm_is_float(dt) ? &r->flt : dt == SMELT_BOOL ? &r->boo : &r->num;
}

/* op on operands x already in its domain dt, at the builder's position;
 * NULL where the op has no form there. No fast-math flags: the callers
 * add what they allow. */
static LLVMValueRef emit_op(emitter *e, sm_op op, smelt_dtype dt, LLVMValueRef *x) {
  const llvm_form *f = op_form(op, dt);
  if (!f) return NULL;
  unsigned n = sm_scalar_ops[op].arity;
  LLVMTypeRef t = ty(e, dt);
  switch (f->how) {
  case L_ID: return x[0];
  case L_BIN: return LLVMBuildBinOp(e->b, (LLVMOpcode)f->code, x[0], x[1], "");
  case L_FCMP: return LLVMBuildFCmp(e->b, (LLVMRealPredicate)f->code, x[0], x[1], "");
  case L_ICMP: return LLVMBuildICmp(e->b, (LLVMIntPredicate)f->code, x[0], x[1], "");
  case L_INTR: return call_intr(e, f->name, &t, 1, x, n);
  case L_MATH: {
    LLVMValueRef r = sm_llvm_math(e->m, e->b, op, x[0], n > 1 ? x[1] : NULL);
    if (r) return r;
    if (f->name) return call_intr(e, f->name, &t, 1, x, n);
    return f->fn ? f->fn(e, dt, x) : NULL;
  }
  case L_FN: return f->fn(e, dt, x);
  default: return NULL;
  }
}

int sm_llvm_ops_check(char **why) {
  *why = NULL;
  for (int op = 0; op < OP_COUNT; op++) {
    const sm_scalar_op *s = &sm_scalar_ops[op];
    bool elem = sm_scalar_elementwise((sm_op)op);
    const llvm_form *f[3] = {&llvm_ops[op].flt, &llvm_ops[op].num, &llvm_ops[op].boo};
    static const int bits[3] = {SOP_F, SOP_I, SOP_B};
    static const char *names[3] = {"float", "integer", "bool"};
    for (int d = 0; d < 3; d++) {
      const char *bad = NULL;
      bool want = elem && (s->domains & bits[d]);
      int how = f[d]->how;
      if (want && how == L_NONE) bad = "no form where the shared table defines the op";
      else if (!want && how != L_NONE) bad = "a form where the shared table does not define the op";
      else if ((how == L_FN && !f[d]->fn) || (how == L_INTR && !f[d]->name) ||
               (how == L_MATH && !f[d]->name && !f[d]->fn))
        bad = "an incomplete form";
      else if (how != L_NONE && (how == L_BIN || how == L_FCMP || how == L_ICMP) != 0 &&
               s->arity != 2)
        bad = "a binary form for an op that is not binary";
      else if (d == 0 && how != L_NONE && (how == L_MATH) != ((s->flags & SOP_MATH) != 0))
        bad = "transcendentals (SOP_MATH) and only they go through llvm_math.c";
      else if (d == 0 && how == L_FCMP &&
               !(s->nan == SOP_NAN_FALSE ? f[d]->code >= LLVMRealOEQ && f[d]->code <= LLVMRealONE
                 : s->nan == SOP_NAN_TRUE ? f[d]->code >= LLVMRealUEQ && f[d]->code <= LLVMRealUNE
                                          : false))
        bad = "its predicate's NaN rule differs from the shared table's";
      else if (how != L_NONE && s->form == SOP_COMPARE && how != L_FCMP && how != L_ICMP)
        bad = "a comparison that is not a compare instruction";
      if (bad) {
        *why = sm_fmt("llvm_ops: %s (%s): %s", sm_ops[op].name, names[d], bad);
        return -1;
      }
    }
  }
  return 0;
}

/* KV_ELEM at the builder's position; operands already emitted. */
static LLVMValueRef emit_elem(emitter *e, const sm_kval *x, LLVMValueRef a, LLVMValueRef b,
                              LLVMValueRef c) {
  const sm_kernel *k = e->k;
  sm_op op = (sm_op)x->op;
  if (!sm_scalar_elementwise(op)) return NULL;
  const sm_scalar_op *s = &sm_scalar_ops[op];
  smelt_dtype dt = (smelt_dtype)x->dtype;
  smelt_dtype adt = (smelt_dtype)k->vals[x->a].dtype;
  const int ids[3] = {x->a, x->b, x->c};
  LLVMValueRef in[3] = {a, b, c};
  for (int i = 0; i < s->arity; i++) {
    if (!in[i]) return NULL;
    in[i] = convert(e, in[i], (smelt_dtype)k->vals[ids[i]].dtype,
                    sm_scalar_operand(op, i, dt, adt));
  }
  smelt_dtype odt = sm_scalar_domain(op, dt, adt);
  if (!(s->domains & sm_scalar_domain_bit(odt))) return NULL;
  LLVMValueRef r = emit_op(e, op, odt, in);
  return r && (s->flags & SOP_FMA) ? fcontract(r) : r;
}

/* Philox 4x32-10 on counter (i, step) with key seed (src/philox.c). */
static void philox(emitter *e, LLVMValueRef i, LLVMValueRef step, uint64_t seed,
                   LLVMValueRef w[4]) {
  LLVMBuilderRef B = e->b;
  LLVMValueRef c32 = ci64(e, 32);
  LLVMValueRef x0 = LLVMBuildTrunc(B, i, e->t_i32, "");
  LLVMValueRef x1 = LLVMBuildTrunc(B, LLVMBuildLShr(B, i, c32, ""), e->t_i32, "");
  LLVMValueRef x2 = LLVMBuildTrunc(B, step, e->t_i32, "");
  LLVMValueRef x3 = LLVMBuildTrunc(B, LLVMBuildLShr(B, step, c32, ""), e->t_i32, "");
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  LLVMValueRef m0 = ci64(e, 0xD2511F53), m1 = ci64(e, 0xCD9E8D57);
  for (int r = 0; r < 10; r++) {
    LLVMValueRef p0 = LLVMBuildMul(B, LLVMBuildZExt(B, x0, e->t_i64, ""), m0, "");
    LLVMValueRef p1 = LLVMBuildMul(B, LLVMBuildZExt(B, x2, e->t_i64, ""), m1, "");
    LLVMValueRef h1 = LLVMBuildTrunc(B, LLVMBuildLShr(B, p1, c32, ""), e->t_i32, "");
    LLVMValueRef h0 = LLVMBuildTrunc(B, LLVMBuildLShr(B, p0, c32, ""), e->t_i32, "");
    LLVMValueRef y0 = LLVMBuildXor(B, LLVMBuildXor(B, h1, x1, ""),
                                   LLVMConstInt(e->t_i32, k0, 0), "");
    LLVMValueRef y1 = LLVMBuildTrunc(B, p1, e->t_i32, "");
    LLVMValueRef y2 = LLVMBuildXor(B, LLVMBuildXor(B, h0, x3, ""),
                                   LLVMConstInt(e->t_i32, k1, 0), "");
    LLVMValueRef y3 = LLVMBuildTrunc(B, p0, e->t_i32, "");
    x0 = y0, x1 = y1, x2 = y2, x3 = y3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  w[0] = x0, w[1] = x1, w[2] = x2, w[3] = x3;
}

/* Uniform [0, 1) in double from words w (f32: 24 bits, f64: 53 bits). */
static LLVMValueRef uniform01(emitter *e, LLVMValueRef *w, smelt_dtype dt) {
  LLVMBuilderRef B = e->b;
  if (dt == SMELT_F32) {
    LLVMValueRef v = LLVMBuildLShr(B, w[0], LLVMConstInt(e->t_i32, 8, 0), "");
    return LLVMBuildFMul(B, LLVMBuildUIToFP(B, v, e->t_f64, ""),
                         LLVMConstReal(e->t_f64, 1.0 / 16777216.0), "");
  }
  LLVMValueRef hi = LLVMBuildShl(B, LLVMBuildZExt(B, w[0], e->t_i64, ""), ci64(e, 21), "");
  LLVMValueRef lo =
      LLVMBuildZExt(B, LLVMBuildLShr(B, w[1], LLVMConstInt(e->t_i32, 11, 0), ""), e->t_i64, "");
  LLVMValueRef v = LLVMBuildAnd(B, LLVMBuildXor(B, hi, lo, ""),
                                ci64(e, (int64_t)((1ull << 53) - 1)), "");
  return LLVMBuildFMul(B, LLVMBuildUIToFP(B, v, e->t_f64, ""),
                       LLVMConstReal(e->t_f64, 1.0 / 9007199254740992.0), "");
}

static LLVMValueRef emit_rand(emitter *e, const sm_kval *x, LLVMValueRef i, LLVMValueRef step) {
  LLVMBuilderRef B = e->b;
  smelt_dtype dt = (smelt_dtype)x->dtype;
  smelt_dtype udt = dt == SMELT_F32 ? SMELT_F32 : SMELT_F64;
  LLVMValueRef w[4];
  philox(e, i, step, (uint64_t)x->ival, w);
  LLVMValueRef r;
  if (x->op == OP_RAND) {
    /* a + (b - a)*u in double, as gen_uniform */
    LLVMValueRef u = uniform01(e, w, udt);
    r = LLVMBuildFAdd(B, LLVMConstReal(e->t_f64, x->fattr[0]),
                      LLVMBuildFMul(B, LLVMConstReal(e->t_f64, x->fattr[1] - x->fattr[0]), u, ""),
                      "");
  } else {
    /* Box-Muller in double with libm's log and cos, as sm_rand_normal_at */
    LLVMValueRef u1 =
        LLVMBuildFSub(B, LLVMConstReal(e->t_f64, 1.0), uniform01(e, w, udt), "");
    LLVMValueRef u2 = uniform01(e, w + 2, udt);
    LLVMValueRef lg = call_libm(e, "log", e->t_f64, &u1, 1);
    LLVMValueRef rad = LLVMBuildFMul(B, LLVMConstReal(e->t_f64, -2.0), lg, "");
    LLVMValueRef sq = call_intr(e, "llvm.sqrt", &e->t_f64, 1, &rad, 1);
    LLVMValueRef ang = LLVMBuildFMul(B, LLVMConstReal(e->t_f64, 6.283185307179586), u2, "");
    LLVMValueRef cs = call_libm(e, "cos", e->t_f64, &ang, 1);
    LLVMValueRef z = LLVMBuildFMul(B, sq, cs, "");
    r = LLVMBuildFAdd(B, LLVMConstReal(e->t_f64, x->fattr[0]),
                      LLVMBuildFMul(B, LLVMConstReal(e->t_f64, x->fattr[1]), z, ""), "");
  }
  return convert(e, r, SMELT_F64, dt);
}

/* KV_CHECK: a branch to a cold call on failure; splits the block of depth
 * l (moving its terminator, which may be the branch into loop l). */
static LLVMValueRef emit_check(emitter *e, int l, LLVMValueRef a, int64_t bound) {
  LLVMBuilderRef B = e->b;
  LLVMValueRef ok = LLVMBuildICmp(B, LLVMIntULT, a, ci64(e, bound), "");
  LLVMValueRef r = LLVMBuildSelect(B, ok, a, ci64(e, 0), "");
  LLVMBasicBlockRef bb = e->hoist[l];
  LLVMValueRef term = LLVMGetBasicBlockTerminator(bb);
  LLVMBasicBlockRef fail = LLVMAppendBasicBlockInContext(e->cx, e->fn, "check.fail");
  LLVMBasicBlockRef cont = LLVMAppendBasicBlockInContext(e->cx, e->fn, "check.ok");
  if (term) LLVMInstructionRemoveFromParent(term);
  LLVMPositionBuilderAtEnd(B, bb);
  LLVMValueRef br = LLVMBuildCondBr(B, ok, cont, fail);
  (void)br;
  LLVMPositionBuilderAtEnd(B, fail);
  LLVMValueRef f = check_fail_fn(e);
  LLVMTypeRef ps[3] = {e->t_ptr, e->t_i64, e->t_i64};
  LLVMValueRef args[3] = {e->ctx, a, ci64(e, bound)};
  LLVMBuildCall2(B, LLVMFunctionType(e->t_void, ps, 3, 0), f, args, 3, "");
  LLVMBuildBr(B, cont);
  if (term) {
    LLVMPositionBuilderAtEnd(B, cont);
    LLVMInsertIntoBuilder(B, term);
    if (l < e->depth) e->loops[l].pre = cont;
  }
  e->hoist[l] = cont;
  return r;
}

static LLVMValueRef acc_result(emitter *e, int acc);

static LLVMValueRef emit(emitter *e, int v) {
  if (e->err) return NULL;
  if (e->cache[v]) return e->cache[v];
  const sm_kernel *k = e->k;
  const sm_kval *x = &k->vals[v];
  LLVMValueRef a = NULL, b = NULL, c = NULL, r = NULL;
  if (x->kind != KV_AFFINE && x->kind != KV_IDX && x->kind != KV_ACC) {
    if (x->a >= 0) a = emit(e, x->a);
    if (x->b >= 0) b = emit(e, x->b);
    if (x->c >= 0) c = emit(e, x->c);
    if (e->err) return NULL;
  }
  int l = level(e, v);
  position(e, l);
  switch ((sm_kval_kind)x->kind) {
  case KV_IDX: r = axis_value(e, x->axis); break;
  case KV_AFFINE: r = emit_affine(e, x->ival, x->coef); break;
  case KV_CONST: r = const_of(e, (smelt_dtype)x->dtype, x->fval, x->ival); break;
  case KV_LOAD: {
    smelt_dtype dt = (smelt_dtype)x->dtype;
    LLVMValueRef fill = const_of(e, dt, x->fval, x->ival);
    if (x->b < 0) {
      r = load_elem(e, x->arg, a);
    } else if (k->args[x->arg].numel == 0) {
      r = fill; /* nothing to read */
    } else {
      /* read element 0 where invalid (in bounds), then pick the fill:
       * no branch, so the loop still vectorizes */
      LLVMValueRef idx = LLVMBuildSelect(e->b, b, a, ci64(e, 0), "");
      r = LLVMBuildSelect(e->b, b, load_elem(e, x->arg, idx), fill, "");
    }
    break;
  }
  case KV_ELEM:
    r = emit_elem(e, x, a, b, c);
    if (!r)
      set_err(e, sm_fmt("kernel %s: %%%d: op %s is not elementwise", k->name, v,
                         sm_ops[x->op].name));
    break;
  case KV_IDIV: r = LLVMBuildUDiv(e->b, a, b, ""); break; /* both >= 0 */
  case KV_IMOD: r = LLVMBuildURem(e->b, a, b, ""); break;
  case KV_RAND: {
    LLVMValueRef step = ctx_field(e, 0, e->t_i64);
    position(e, l);
    r = emit_rand(e, x, a, step);
    break;
  }
  case KV_TRAINING: {
    LLVMValueRef t = ctx_field(e, 8, e->t_i32);
    r = LLVMBuildICmp(e->b, LLVMIntNE, t, LLVMConstInt(e->t_i32, 0, 0), "");
    break;
  }
  case KV_CHECK: r = emit_check(e, l, a, x->ival); break;
  case KV_ACC: r = acc_result(e, x->acc); break;
  }
  if (!r) {
    if (!e->err) set_err(e, sm_fmt("kernel %s: %%%d: cannot emit this value", k->name, v));
    return NULL;
  }
  e->cache[v] = r;
  e->cdepth[v] = l;
  return r;
}

/* --------------------------------------------------------------- loops */

static void open_loop(emitter *e, int axis, LLVMValueRef start, LLVMValueRef end) {
  LLVMBasicBlockRef pre = e->hoist[e->depth];
  position(e, e->depth);
  char name[16];
  snprintf(name, sizeof name, "i%d", axis);
  LLVMBasicBlockRef header = LLVMAppendBasicBlockInContext(e->cx, e->fn, name);
  LLVMBuildBr(e->b, header);
  LLVMPositionBuilderAtEnd(e->b, header);
  LLVMValueRef iv = LLVMBuildPhi(e->b, e->t_i64, name);
  e->loops[e->depth] = (loop){axis, pre, header, iv, start, end};
  e->depth++;
  e->hoist[e->depth] = header;
  e->epoch++;
}

/* Loops run at least once (empty ranges return before the nest). */
static void close_loop(emitter *e) {
  loop *lp = &e->loops[e->depth - 1];
  LLVMBasicBlockRef latch = e->hoist[e->depth];
  LLVMPositionBuilderAtEnd(e->b, latch);
  LLVMValueRef next = LLVMBuildAdd(e->b, lp->iv, ci64(e, 1), "");
  LLVMValueRef more = LLVMBuildICmp(e->b, LLVMIntSLT, next, lp->end, "");
  LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(e->cx, e->fn, "");
  LLVMBuildCondBr(e->b, more, lp->header, exit);
  LLVMValueRef vals[2] = {lp->start, next};
  LLVMBasicBlockRef from[2] = {lp->pre, latch};
  LLVMAddIncoming(lp->iv, vals, from, 2);
  e->depth--;
  e->hoist[e->depth] = exit;
  for (int v = 0; v < e->k->nvals; v++)
    if (e->cache[v] && e->cdepth[v] > e->depth) e->cache[v] = NULL;
  e->epoch++;
}

static void open_axis(emitter *e, int d) {
  const sm_kernel *k = e->k;
  if (d == k->par_axis) open_loop(e, d, e->begin, e->end);
  else open_loop(e, d, ci64(e, 0), ci64(e, k->extent[d]));
}

static void close_all(emitter *e, int to_depth) {
  while (e->depth > to_depth) close_loop(e);
}

/* ------------------------------------------------------- accumulators */

static bool is_arg_op(sm_op op) {
  const sm_scalar_op *r = sm_scalar_op_of(op);
  return r && r->form == SOP_ARGREDUCE;
}

static LLVMValueRef acc_identity(emitter *e, const sm_kacc *a) {
  smelt_dtype adt = (smelt_dtype)a->acc_dtype;
  sm_op op = (sm_op)a->op;
  if (sm_is_float(adt)) return LLVMConstReal(ty(e, adt), sm_reduce_identity_f(op));
  if (adt == SMELT_BOOL) return LLVMConstInt(e->t_i1, sm_reduce_identity_i(op, adt) != 0, 0);
  return LLVMConstInt(ty(e, adt), (unsigned long long)sm_reduce_identity_i(op, adt), 1);
}

/* acc <- acc (op) x, all in acc_dtype: the reduction's combining op
 * (codegen/scalar_ops.c), reassociable where the kernel allows it. */
static LLVMValueRef combine(emitter *e, const sm_kacc *a, LLVMValueRef acc, LLVMValueRef x) {
  smelt_dtype adt = (smelt_dtype)a->acc_dtype;
  const sm_scalar_op *s = sm_scalar_op_of((sm_op)a->op);
  LLVMValueRef in[2] = {acc, x};
  LLVMValueRef r = s && s->form == SOP_REDUCE ? emit_op(e, (sm_op)s->combine, adt, in) : NULL;
  if (!r) {
    set_err(e, sm_fmt("kernel %s: reduction %s has no LLVM form for %s", e->k->name,
                      sm_ops[a->op].name, smelt_dtype_name(adt)));
    return acc;
  }
  if (sm_is_float(adt) && (sm_scalar_ops[s->combine].flags & SOP_FMA) && e->k->reassociate &&
      LLVMIsAInstruction(r))
    LLVMSetFastMathFlags(r, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
  return r;
}

/* Whether the arg-reduction takes x over the best bv (src/interp.c: the
 * first extreme wins; the first NaN wins and is never replaced). */
static LLVMValueRef arg_takes(emitter *e, const sm_kacc *a, LLVMValueRef bv, LLVMValueRef x) {
  smelt_dtype adt = (smelt_dtype)a->acc_dtype;
  bool is_max = a->op == OP_ARGMAX;
  LLVMBuilderRef B = e->b;
  if (sm_is_float(adt)) {
    LLVMValueRef better = LLVMBuildFCmp(B, is_max ? LLVMRealOGT : LLVMRealOLT, x, bv, "");
    LLVMValueRef xnan = LLVMBuildFCmp(B, LLVMRealUNO, x, x, "");
    LLVMValueRef bord = LLVMBuildFCmp(B, LLVMRealORD, bv, bv, "");
    return LLVMBuildAnd(B, bord, LLVMBuildOr(B, xnan, better, ""), "");
  }
  bool u = adt == SMELT_BOOL;
  LLVMIntPredicate p = is_max ? (u ? LLVMIntUGT : LLVMIntSGT) : (u ? LLVMIntULT : LLVMIntSLT);
  return LLVMBuildICmp(B, p, x, bv, "");
}

/* Pointers to the state of accumulator i at the current point: allocas
 * (registers) or scratch[flat] (memory). */
static void acc_slots(emitter *e, int i, LLVMValueRef flat, LLVMValueRef *pv, LLVMValueRef *pi) {
  const sm_kacc *a = &e->k->accs[i];
  if (e->acc_mode == ACC_REG) {
    *pv = e->acc_val[i];
    *pi = e->acc_idx[i];
    return;
  }
  *pv = buf_ptr(e, a->scratch, flat);
  *pi = a->scratch2 >= 0 ? buf_ptr(e, a->scratch2, flat) : NULL;
}

static LLVMValueRef slot_load(emitter *e, LLVMValueRef p, smelt_dtype dt, bool mem) {
  if (dt == SMELT_BOOL && mem)
    return LLVMBuildICmp(e->b, LLVMIntNE, LLVMBuildLoad2(e->b, e->t_i8, p, ""),
                         LLVMConstInt(e->t_i8, 0, 0), "");
  return LLVMBuildLoad2(e->b, ty(e, dt), p, "");
}
static void slot_store(emitter *e, LLVMValueRef p, LLVMValueRef x, smelt_dtype dt, bool mem) {
  if (dt == SMELT_BOOL && mem) x = LLVMBuildZExt(e->b, x, e->t_i8, "");
  LLVMBuildStore(e->b, x, p);
}

/* The dtype a slot holds: the scratch buffer's, or acc_dtype / i64. */
static smelt_dtype slot_dtype(emitter *e, int i, bool idx) {
  const sm_kacc *a = &e->k->accs[i];
  if (e->acc_mode == ACC_SCRATCH) {
    int arg = idx ? a->scratch2 : a->scratch;
    return (smelt_dtype)e->k->args[arg].dtype;
  }
  return idx ? SMELT_I64 : (smelt_dtype)a->acc_dtype;
}

static LLVMValueRef scratch_flat(emitter *e) {
  int64_t coef[MAXLOOPS];
  for (int d = 0; d < e->k->ndim; d++) coef[d] = e->k->reduce[d] ? 0 : e->sstride[d];
  return emit_affine(e, 0, coef);
}

static void init_accs(emitter *e) {
  const sm_kernel *k = e->k;
  LLVMValueRef flat = e->acc_mode == ACC_SCRATCH ? scratch_flat(e) : NULL;
  position(e, e->depth);
  bool mem = e->acc_mode == ACC_SCRATCH;
  for (int i = 0; i < k->naccs; i++) {
    const sm_kacc *a = &k->accs[i];
    LLVMValueRef pv, pi;
    acc_slots(e, i, flat, &pv, &pi);
    smelt_dtype vdt = slot_dtype(e, i, false);
    slot_store(e, pv, convert(e, acc_identity(e, a), (smelt_dtype)a->acc_dtype, vdt), vdt, mem);
    if (is_arg_op((sm_op)a->op) && pi) {
      smelt_dtype idt = slot_dtype(e, i, true);
      slot_store(e, pi, convert(e, ci64(e, 0), SMELT_I64, idt), idt, mem);
    }
  }
}

static void update_accs(emitter *e) {
  const sm_kernel *k = e->k;
  LLVMValueRef flat = NULL;
  bool mem = e->acc_mode == ACC_SCRATCH;
  for (int i = 0; i < k->naccs && !e->err; i++) {
    const sm_kacc *a = &k->accs[i];
    LLVMValueRef x = emit(e, a->value);
    if (!x) return;
    if (mem && !flat) flat = scratch_flat(e);
    position(e, e->depth);
    smelt_dtype adt = (smelt_dtype)a->acc_dtype;
    x = convert(e, x, (smelt_dtype)k->vals[a->value].dtype, adt);
    LLVMValueRef pv, pi;
    acc_slots(e, i, flat, &pv, &pi);
    smelt_dtype vdt = slot_dtype(e, i, false);
    LLVMValueRef cur = convert(e, slot_load(e, pv, vdt, mem), vdt, adt);
    if (!is_arg_op((sm_op)a->op)) {
      slot_store(e, pv, convert(e, combine(e, a, cur, x), adt, vdt), vdt, mem);
      continue;
    }
    if (!pi) {
      set_err(e, sm_fmt("kernel %s: arg-reduction a%d has no index scratch", k->name, i));
      return;
    }
    smelt_dtype idt = slot_dtype(e, i, true);
    LLVMValueRef take = arg_takes(e, a, cur, x);
    LLVMValueRef idx = axis_value(e, a->axis);
    position(e, e->depth);
    LLVMValueRef ci = slot_load(e, pi, idt, mem);
    slot_store(e, pv, convert(e, LLVMBuildSelect(e->b, take, x, cur, ""), adt, vdt), vdt, mem);
    slot_store(e, pi, LLVMBuildSelect(e->b, take, convert(e, idx, SMELT_I64, idt), ci, ""), idt,
               mem);
  }
}

/* KV_ACC: the accumulator's result in its dtype, at the current point of
 * the outer phase. */
static LLVMValueRef acc_result(emitter *e, int i) {
  const sm_kernel *k = e->k;
  const sm_kacc *a = &k->accs[i];
  smelt_dtype dt = (smelt_dtype)a->dtype;
  if (e->acc_mode == ACC_MM) {
    LLVMValueRef idx = emit_affine(e, e->mm_off, e->mm_coef);
    position(e, e->depth);
    smelt_dtype cdt = (smelt_dtype)k->vals[k->mm_a].dtype;
    LLVMValueRef p = LLVMBuildGEP2(e->b, ty(e, cdt), e->mm_c, &idx, 1, "");
    return convert(e, LLVMBuildLoad2(e->b, ty(e, cdt), p, ""), cdt, dt);
  }
  bool mem = e->acc_mode == ACC_SCRATCH;
  LLVMValueRef flat = mem ? scratch_flat(e) : NULL;
  position(e, e->depth);
  LLVMValueRef pv, pi;
  acc_slots(e, i, flat, &pv, &pi);
  if (is_arg_op((sm_op)a->op)) {
    if (!pi) return NULL;
    smelt_dtype idt = slot_dtype(e, i, true);
    return convert(e, slot_load(e, pi, idt, mem), idt, dt);
  }
  smelt_dtype vdt = slot_dtype(e, i, false);
  return convert(e, slot_load(e, pv, vdt, mem), vdt, dt);
}

static void do_store(emitter *e, const sm_kstore *s) {
  LLVMValueRef idx = emit(e, s->index);
  LLVMValueRef v = emit(e, s->value);
  if (!idx || !v) return;
  position(e, e->depth);
  smelt_dtype adt = (smelt_dtype)e->k->args[s->arg].dtype;
  v = convert(e, v, (smelt_dtype)e->k->vals[s->value].dtype, adt);
  if (s->accumulate) {
    LLVMValueRef in[2] = {load_elem(e, s->arg, idx), v};
    v = emit_op(e, OP_ADD, adt, in);
  }
  store_elem(e, s->arg, idx, v);
}

static void stores(emitter *e, bool outer) {
  for (int i = 0; i < e->k->nstores && !e->err; i++)
    if (e->k->stores[i].outer == outer) do_store(e, &e->k->stores[i]);
}

static void outer_body(emitter *e) {
  const sm_kernel *k = e->k;
  e->outer_phase = true;
  e->epoch++;
  stores(e, true);
  /* values that read reduced indices as 0 are not for the inner phase */
  for (int v = 0; v < k->nvals; v++)
    for (int d = 0; d < k->ndim && e->cache[v]; d++)
      if (k->reduce[d] && !sm_kval_invariant(k, v, d)) e->cache[v] = NULL;
  e->outer_phase = false;
  e->epoch++;
}

/* -------------------------------------------------------------- matmul */


static bool reads_arg(const sm_kernel *k, int arg) {
  for (int v = 0; v < k->nvals; v++)
    if (k->vals[v].kind == KV_LOAD && k->vals[v].arg == arg) return true;
  return false;
}

typedef struct mm_plan {
  LLVMValueRef fn;
  smelt_dtype dt;
  int64_t aoff, acoef[MAXLOOPS], boff, bcoef[MAXLOOPS];
  int carg;            /* the buffer C lives in */
  int64_t coff, ccoef[MAXLOOPS];
  bool epilogue;       /* outer stores still to run over C */
} mm_plan;

/* Scratch strides: row-major over the non-reduced axes in axis order. */
static void scratch_strides(const sm_kernel *k, int64_t *sstride) {
  int64_t s = 1;
  for (int d = k->ndim - 1; d >= 0; d--) {
    sstride[d] = k->reduce[d] ? 0 : s;
    if (!k->reduce[d]) s *= k->extent[d];
  }
}

/* Whether the kernel can use the blocked matmul, and how (p->fn left
 * NULL): what sm_llvm_kernel_matmul reports and emit_body follows. */
static bool mm_plan_of(const sm_kernel *k, mm_plan *p) {
  sm_mm_operands op;
  memset(p, 0, sizeof *p);
  if (!sm_llvm_use_blocked_matmul() || !sm_kernel_matmul_operands(k, &op)) return false;
  int mm = k->mm_m, mn = k->mm_n, mk = k->mm_k;
  if (k->par_axis != mm && k->par_axis != -1) return false;
  for (int d = 0; d < k->ndim; d++)
    if (k->extent[d] == 0) return false; /* empty, or K = 0: the generic loops */
  smelt_dtype dt = op.dt;
  if (dt != SMELT_F32 && dt != SMELT_F64) return false;
  p->aoff = op.aoff, p->boff = op.boff;
  memcpy(p->acoef, op.acoef, sizeof p->acoef);
  memcpy(p->bcoef, op.bcoef, sizeof p->bcoef);
  int nouter = k->nstores, last = k->nstores - 1; /* all outer (checked above) */
  p->dt = dt;
  /* C: the output itself when the only store writes the product's layout
   * (n contiguous) and nothing reads it back; else the scratch. */
  p->carg = -1;
  if (nouter == 1) {
    const sm_kstore *s = &k->stores[last];
    const sm_karg *ca = &k->args[s->arg];
    if (ca->dtype == dt && ca->role == KA_OUT && s->arg != op.aarg && s->arg != op.barg &&
        !reads_arg(k, s->arg) && sm_kernel_affine_of(k, s->index, &p->coff, p->ccoef) &&
        p->ccoef[mn] == 1 && p->ccoef[mk] == 0) {
      p->carg = s->arg;
      const sm_kval *sv = &k->vals[s->value];
      p->epilogue = !(sv->kind == KV_ACC && sv->acc == 0);
    }
  }
  if (p->carg < 0) {
    int sc = k->accs[0].scratch;
    if (sc < 0 || k->args[sc].dtype != dt || sc == op.aarg || sc == op.barg) return false;
    int64_t sstride[MAXLOOPS];
    scratch_strides(k, sstride);
    for (int d = 0; d < k->ndim; d++) p->ccoef[d] = k->reduce[d] ? 0 : sstride[d];
    if (p->ccoef[mn] != 1) return false;
    p->coff = 0;
    p->carg = sc;
    p->epilogue = true;
  }
  return true;
}

/* The arguments M..ldc (3..10) of the kernel's call (llvm_matmul.h). */
static void mm_shape(const sm_kernel *k, const mm_plan *p, int64_t v[13]) {
  int mm = k->mm_m, mn = k->mm_n, mk = k->mm_k;
  v[3] = k->extent[mm], v[4] = k->extent[mn], v[5] = k->extent[mk];
  v[6] = p->acoef[mm], v[7] = p->acoef[mk];
  v[8] = p->bcoef[mk], v[9] = p->bcoef[mn];
  v[10] = p->ccoef[mm];
}

int sm_llvm_kernel_matmul(const sm_kernel *k, int64_t args[13]) {
  mm_plan p;
  if (!mm_plan_of(k, &p)) return -1;
  if (args) {
    memset(args, 0, 13 * sizeof *args);
    mm_shape(k, &p, args);
  }
  return (int)p.dt;
}

/* The type of smelt_mm_f32/f64 (llvm_matmul.h). */
static LLVMTypeRef mm_fn_type(LLVMContextRef cx) {
  LLVMTypeRef ps[13];
  for (int i = 0; i < 13; i++)
    ps[i] = i < 3 ? LLVMPointerTypeInContext(cx, 0) : LLVMInt64TypeInContext(cx);
  return LLVMFunctionType(LLVMVoidTypeInContext(cx), ps, 13, 0);
}

/* smelt_mm_<dt> declared (defined in another module, sm_llvm_emit_matmul)
 * with what its definition guarantees: it does not unwind, touches only
 * memory through its arguments, reads A and B, and keeps no pointer. */
static LLVMValueRef mm_declare(emitter *e, smelt_dtype dt) {
  const char *name = dt == SMELT_F32 ? "smelt_mm_f32" : "smelt_mm_f64";
  LLVMValueRef fn = LLVMGetNamedFunction(e->m, name);
  if (fn) return fn;
  fn = LLVMAddFunction(e->m, name, mm_fn_type(e->cx));
  add_attr(e, fn, LLVMAttributeFunctionIndex, "nounwind");
  /* memory(argmem: readwrite): two bits per location, argument memory first */
  unsigned memory = LLVMGetEnumAttributeKindForName("memory", 6);
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                          LLVMCreateEnumAttribute(e->cx, memory, 3));
  for (unsigned i = 1; i <= 3; i++) {
    add_attr(e, fn, i, "noalias");
    add_attr(e, fn, i, "nocapture");
  }
  add_attr(e, fn, 1, "readonly");
  add_attr(e, fn, 2, "readonly");
  return fn;
}

/* mm_plan_of, and the function to call. */
static bool mm_eligible(emitter *e, mm_plan *p) {
  if (!mm_plan_of(e->k, p)) return false;
  p->fn = e->mm_extern ? mm_declare(e, p->dt) : sm_llvm_matmul_fn(e->m, e->tm, p->dt);
  return p->fn != NULL;
}

static void emit_matmul(emitter *e, mm_plan *p) {
  const sm_kernel *k = e->k;
  int mm = k->mm_m, mn = k->mm_n, mk = k->mm_k;
  /* batch loops in the kernel's order */
  for (int i = 0; i < k->ndim; i++) {
    int d = k->order[i];
    if (d != mm && d != mn && d != mk) open_axis(e, d);
  }
  int64_t ac[MAXLOOPS], bc[MAXLOOPS], cc[MAXLOOPS];
  for (int d = 0; d < k->ndim; d++) {
    bool batch = d != mm && d != mn && d != mk;
    ac[d] = batch ? p->acoef[d] : 0;
    bc[d] = batch ? p->bcoef[d] : 0;
    cc[d] = batch ? p->ccoef[d] : 0;
  }
  LLVMValueRef abase = emit_affine(e, p->aoff, ac);
  LLVMValueRef bbase = emit_affine(e, p->boff, bc);
  LLVMValueRef cbase = emit_affine(e, p->coff, cc);
  position(e, e->depth);
  LLVMTypeRef et = ty(e, p->dt);
  const sm_kval *va = &k->vals[k->mm_a], *vb = &k->vals[k->mm_b];
  LLVMValueRef pa = LLVMBuildGEP2(e->b, et, e->bufs[va->arg], &abase, 1, "");
  LLVMValueRef pb = LLVMBuildGEP2(e->b, et, e->bufs[vb->arg], &bbase, 1, "");
  LLVMValueRef pc = LLVMBuildGEP2(e->b, et, e->bufs[p->carg], &cbase, 1, "");
  bool whole = k->par_axis < 0;
  LLVMValueRef mb = whole ? ci64(e, 0) : e->begin, me = whole ? ci64(e, k->extent[mm]) : e->end;
  int64_t shape[13];
  mm_shape(k, p, shape);
  LLVMValueRef args[13] = {pa, pb, pc};
  for (int i = 3; i <= 10; i++) args[i] = ci64(e, shape[i]);
  args[11] = mb, args[12] = me;
  LLVMTypeRef ps[13] = {e->t_ptr, e->t_ptr, e->t_ptr};
  for (int i = 3; i < 13; i++) ps[i] = e->t_i64;
  LLVMBuildCall2(e->b, LLVMFunctionType(e->t_void, ps, 13, 0), p->fn, args, 13, "");
  if (p->epilogue) {
    /* the epilogue over the rows just produced, while they are in cache */
    e->acc_mode = ACC_MM;
    e->mm_c = e->bufs[p->carg];
    e->mm_off = p->coff;
    memcpy(e->mm_coef, p->ccoef, sizeof e->mm_coef);
    int base = e->depth;
    if (whole) open_loop(e, mm, ci64(e, 0), ci64(e, k->extent[mm]));
    else open_loop(e, mm, e->begin, e->end);
    open_axis(e, mn);
    outer_body(e);
    close_all(e, base);
  }
  close_all(e, 0);
}

/* -------------------------------------------------------------- kernel */

/* What the cpu runtime needs beyond the IR's own rules: an accumulating
 * store zeroes its target once per call, so such a kernel runs in one
 * piece. */
static bool kernel_valid(const sm_kernel *k, char **why) {
  if (!sm_kernel_check(k, why)) return false;
  for (int i = 0; i < k->nstores; i++)
    if (k->stores[i].accumulate && k->par_axis >= 0)
      return *why = sm_fmt("kernel %s: accumulating stores need a single-threaded kernel "
                            "(parallel -1)",
                            k->name),
             false;
  return true;
}

static void emit_body(emitter *e) {
  const sm_kernel *k = e->k;
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(e->cx, e->fn, "entry");
  LLVMBasicBlockRef ret = LLVMAppendBasicBlockInContext(e->cx, e->fn, "ret");
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(e->cx, e->fn, "body");
  LLVMPositionBuilderAtEnd(e->b, ret);
  LLVMBuildRetVoid(e->b);
  LLVMPositionBuilderAtEnd(e->b, entry);
  /* accumulating stores add into zeros */
  for (int i = 0; i < k->nstores; i++) {
    const sm_kstore *s = &k->stores[i];
    const sm_karg *a = &k->args[s->arg];
    bool first = true;
    for (int j = 0; j < i; j++)
      if (k->stores[j].accumulate && k->stores[j].arg == s->arg) first = false;
    if (s->accumulate && first && a->numel > 0)
      LLVMBuildMemSet(e->b, e->bufs[s->arg], LLVMConstInt(e->t_i8, 0, 0),
                      ci64(e, a->numel * (int64_t)smelt_dtype_size((smelt_dtype)a->dtype)), 1);
  }
  bool empty = false, red_empty = false;
  int nred = 0;
  for (int d = 0; d < k->ndim; d++) {
    if (k->extent[d] == 0 && k->reduce[d]) red_empty = true;
    if (k->extent[d] == 0 && !k->reduce[d]) empty = true;
    nred += k->reduce[d] != 0;
  }
  if (empty) {
    LLVMBuildBr(e->b, ret);
    LLVMDeleteBasicBlock(body);
    return;
  }
  /* allocas of register accumulators, in the entry block */
  for (int i = 0; i < k->naccs; i++) {
    e->acc_val[i] = LLVMBuildAlloca(e->b, ty(e, (smelt_dtype)k->accs[i].acc_dtype), "acc");
    e->acc_idx[i] = LLVMBuildAlloca(e->b, e->t_i64, "acc.idx");
  }
  if (k->par_axis >= 0)
    LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSGE, e->begin, e->end, ""), ret, body);
  else LLVMBuildBr(e->b, body);
  e->hoist[0] = body;
  e->depth = 0;

  scratch_strides(k, e->sstride);

  mm_plan plan;
  if (!red_empty && mm_eligible(e, &plan)) {
    emit_matmul(e, &plan);
  } else {
    /* registers when every reduced loop is inside every non-reduced one */
    int nnr = k->ndim - nred;
    bool regs = true;
    for (int i = 0; i < nnr; i++)
      if (k->reduce[k->order[i]]) regs = false;
    if (regs) {
      e->acc_mode = ACC_REG;
      for (int i = 0; i < nnr; i++) open_axis(e, k->order[i]);
      init_accs(e);
      if (!red_empty) {
        for (int i = nnr; i < k->ndim; i++) open_axis(e, k->order[i]);
        update_accs(e);
        stores(e, false);
        close_all(e, nnr);
      }
      outer_body(e);
      close_all(e, 0);
    } else {
      e->acc_mode = ACC_SCRATCH;
      for (int i = 0; i < k->naccs; i++)
        if (k->accs[i].scratch < 0 || (is_arg_op((sm_op)k->accs[i].op) && k->accs[i].scratch2 < 0))
          set_err(e, sm_fmt("kernel %s: accumulator a%d needs scratch (a reduced loop encloses "
                             "a non-reduced one)",
                             k->name, i));
      if (e->err) return;
      if (k->naccs) {
        for (int i = 0; i < k->ndim; i++)
          if (!k->reduce[k->order[i]]) open_axis(e, k->order[i]);
        init_accs(e);
        close_all(e, 0);
      }
      if (!red_empty) {
        for (int i = 0; i < k->ndim; i++) open_axis(e, k->order[i]);
        update_accs(e);
        stores(e, false);
        close_all(e, 0);
      }
      for (int i = 0; i < k->ndim; i++)
        if (!k->reduce[k->order[i]]) open_axis(e, k->order[i]);
      outer_body(e);
      close_all(e, 0);
    }
  }
  position(e, 0);
  LLVMBuildBr(e->b, ret);
}

static int emit_kernel(LLVMModuleRef m, LLVMTargetMachineRef tm, const sm_kernel *k,
                       bool mm_extern, char **err) {
  if (!kernel_valid(k, err)) return -1;
  emitter e;
  memset(&e, 0, sizeof e);
  e.m = m;
  e.mm_extern = mm_extern;
  e.cx = LLVMGetModuleContext(m);
  e.tm = tm;
  e.k = k;
  e.t_i1 = LLVMInt1TypeInContext(e.cx);
  e.t_i8 = LLVMInt8TypeInContext(e.cx);
  e.t_i32 = LLVMInt32TypeInContext(e.cx);
  e.t_i64 = LLVMInt64TypeInContext(e.cx);
  e.t_f32 = LLVMFloatTypeInContext(e.cx);
  e.t_f64 = LLVMDoubleTypeInContext(e.cx);
  e.t_ptr = LLVMPointerTypeInContext(e.cx, 0);
  e.t_void = LLVMVoidTypeInContext(e.cx);
  size_t nv = (size_t)k->nvals + 1, na = (size_t)k->nargs + 1, nacc = (size_t)k->naccs + 1;
  e.bufs = sm_calloc(na, sizeof *e.bufs);
  e.written = sm_calloc(na, sizeof *e.written);
  e.cache = sm_calloc(nv, sizeof *e.cache);
  e.cdepth = sm_calloc(nv, sizeof *e.cdepth);
  e.lvl = sm_calloc(nv, sizeof *e.lvl);
  e.lvl_epoch = sm_calloc(nv, sizeof *e.lvl_epoch);
  e.acc_val = sm_calloc(nacc, sizeof *e.acc_val);
  e.acc_idx = sm_calloc(nacc, sizeof *e.acc_idx);
  int rc = -1;
  if (!e.bufs || !e.written || !e.cache || !e.cdepth || !e.lvl || !e.lvl_epoch || !e.acc_val ||
      !e.acc_idx) {
    *err = sm_fmt("kernel %s: out of memory", k->name);
    goto done;
  }
  e.epoch = 1;
  for (int i = 0; i < k->nstores; i++) e.written[k->stores[i].arg] = true;
  for (int i = 0; i < k->naccs; i++) {
    if (k->accs[i].scratch >= 0) e.written[k->accs[i].scratch] = true;
    if (k->accs[i].scratch2 >= 0) e.written[k->accs[i].scratch2] = true;
  }

  /* inner: void NAME.body(ptr noalias b0, ..., i64 begin, i64 end, ptr ctx) */
  int np = k->nargs + 3;
  LLVMTypeRef *ps = sm_malloc(sizeof *ps * (size_t)np);
  if (!ps) {
    *err = sm_fmt("kernel %s: out of memory", k->name);
    goto done;
  }
  for (int i = 0; i < k->nargs; i++) ps[i] = e.t_ptr;
  ps[k->nargs] = e.t_i64;
  ps[k->nargs + 1] = e.t_i64;
  ps[k->nargs + 2] = e.t_ptr;
  LLVMTypeRef ift = LLVMFunctionType(e.t_void, ps, (unsigned)np, 0);
  sm_free(ps);
  char name[64];
  snprintf(name, sizeof name, "%s.body", k->name);
  e.fn = LLVMAddFunction(m, name, ift);
  LLVMSetLinkage(e.fn, LLVMInternalLinkage);
  add_attr(&e, e.fn, LLVMAttributeFunctionIndex, "alwaysinline");
  add_attr(&e, e.fn, LLVMAttributeFunctionIndex, "nounwind");
  for (int i = 0; i < k->nargs; i++) {
    add_attr(&e, e.fn, (LLVMAttributeIndex)(i + 1), "noalias");
    add_attr(&e, e.fn, (LLVMAttributeIndex)(i + 1), "nocapture");
    e.bufs[i] = LLVMGetParam(e.fn, (unsigned)i);
  }
  e.begin = LLVMGetParam(e.fn, (unsigned)k->nargs);
  e.end = LLVMGetParam(e.fn, (unsigned)k->nargs + 1);
  e.ctx = LLVMGetParam(e.fn, (unsigned)k->nargs + 2);
  e.b = LLVMCreateBuilderInContext(e.cx);
  emit_body(&e);

  /* entry: void NAME(ptr args, i64 begin, i64 end, ptr ctx) */
  if (!e.err) {
    LLVMTypeRef eps[4] = {e.t_ptr, e.t_i64, e.t_i64, e.t_ptr};
    LLVMValueRef entry = LLVMAddFunction(m, k->name, LLVMFunctionType(e.t_void, eps, 4, 0));
    add_attr(&e, entry, LLVMAttributeFunctionIndex, "nounwind");
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(e.cx, entry, "entry");
    LLVMPositionBuilderAtEnd(e.b, bb);
    LLVMValueRef *cargs = sm_malloc(sizeof *cargs * (size_t)np);
    if (!cargs) {
      *err = sm_fmt("kernel %s: out of memory", k->name);
    } else {
      LLVMValueRef av = LLVMGetParam(entry, 0);
      for (int i = 0; i < k->nargs; i++) {
        LLVMValueRef p = LLVMBuildGEP2(e.b, e.t_ptr, av, (LLVMValueRef[]){ci64(&e, i)}, 1, "");
        cargs[i] = LLVMBuildLoad2(e.b, e.t_ptr, p, "");
      }
      for (int i = 0; i < 3; i++) cargs[k->nargs + i] = LLVMGetParam(entry, (unsigned)i + 1);
      LLVMBuildCall2(e.b, ift, e.fn, cargs, (unsigned)np, "");
      LLVMBuildRetVoid(e.b);
      sm_free(cargs);
      rc = 0;
    }
  } else {
    *err = e.err;
    e.err = NULL;
  }
  LLVMDisposeBuilder(e.b);
done:
  sm_free(e.err);
  sm_free(e.bufs);
  sm_free(e.written);
  sm_free(e.cache);
  sm_free(e.cdepth);
  sm_free(e.lvl);
  sm_free(e.lvl_epoch);
  sm_free(e.acc_val);
  sm_free(e.acc_idx);
  return rc;
}

/* The module's target triple and data layout, from tm. */
static void set_target(LLVMModuleRef m, LLVMTargetMachineRef tm) {
  if (!tm) return;
  char *triple = LLVMGetTargetMachineTriple(tm);
  LLVMSetTarget(m, triple);
  LLVMDisposeMessage(triple);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  LLVMSetModuleDataLayout(m, td);
  LLVMDisposeTargetData(td);
}

static int emit_all(LLVMModuleRef m, LLVMTargetMachineRef tm, sm_kernel *const *kernels,
                    size_t n, bool mm_extern, char **err) {
  *err = NULL;
  set_target(m, tm);
  for (size_t i = 0; i < n; i++) {
    if (LLVMGetNamedFunction(m, kernels[i]->name)) {
      *err = sm_fmt("kernel %s: name used twice", kernels[i]->name);
      return -1;
    }
    if (emit_kernel(m, tm, kernels[i], mm_extern, err)) {
      if (!*err) *err = sm_strdup("out of memory");
      return -1;
    }
  }
  return 0;
}

int sm_llvm_emit(LLVMModuleRef m, LLVMTargetMachineRef tm, sm_kernel *const *kernels, size_t n,
                 char **err) {
  return emit_all(m, tm, kernels, n, false, err);
}

int sm_llvm_emit_split(LLVMModuleRef m, LLVMTargetMachineRef tm, sm_kernel *const *kernels,
                       size_t n, char **err) {
  return emit_all(m, tm, kernels, n, true, err);
}

int sm_llvm_emit_matmul(LLVMModuleRef m, LLVMTargetMachineRef tm, smelt_dtype dt,
                        const sm_mm_consts *consts, char **err) {
  *err = NULL;
  set_target(m, tm);
  LLVMValueRef fn = sm_llvm_matmul_fn_consts(m, tm, dt, consts);
  if (!fn) {
    *err = sm_fmt("no blocked matmul for %s", smelt_dtype_name(dt));
    return -1;
  }
  LLVMSetLinkage(fn, LLVMExternalLinkage);
  return 0;
}

/* ------------------------------------------------------------- dumps */

void sm_llvm_dump_module(sm_dump *dump, const char *part, LLVMModuleRef m) {
  if (!sm_dump_wants(dump, SM_DUMP_LLVM)) return;
  char *text = LLVMPrintModuleToString(m);
  sm_dump_write(dump, SM_DUMP_LLVM, part, text);
  LLVMDisposeMessage(text);
}

char *sm_llvm_asm_text(LLVMTargetMachineRef tm, LLVMModuleRef m) {
  /* codegen changes the module it runs on: print a copy */
  LLVMModuleRef copy = LLVMCloneModule(m);
  char *msg = NULL, *text = NULL;
  LLVMMemoryBufferRef buf = NULL;
  if (LLVMTargetMachineEmitToMemoryBuffer(tm, copy, LLVMAssemblyFile, &msg, &buf)) {
    text = sm_strdup(msg ? msg : "assembly could not be printed");
  } else {
    size_t n = LLVMGetBufferSize(buf);
    text = sm_malloc(n + 1);
    if (text) {
      memcpy(text, LLVMGetBufferStart(buf), n);
      text[n] = 0;
    }
    LLVMDisposeMemoryBuffer(buf);
  }
  if (msg) LLVMDisposeMessage(msg);
  LLVMDisposeModule(copy);
  return text;
}

void sm_llvm_dump_asm(sm_dump *dump, LLVMTargetMachineRef tm, LLVMModuleRef m) {
  if (!sm_dump_wants(dump, SM_DUMP_ASM)) return;
  char *text = sm_llvm_asm_text(tm, m);
  sm_dump_write(dump, SM_DUMP_ASM, NULL, text);
  sm_free(text);
}

/* ------------------------------------------------------------ passes */

static int run_passes(LLVMModuleRef m, LLVMTargetMachineRef tm, const char *pipeline,
                      char **err) {
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
  LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
  LLVMPassBuilderOptionsSetLoopInterleaving(po, 1);
  LLVMPassBuilderOptionsSetLoopUnrolling(po, 1);
  LLVMErrorRef e = LLVMRunPasses(m, pipeline, tm, po);
  LLVMDisposePassBuilderOptions(po);
  if (e) {
    char *msg = LLVMGetErrorMessage(e);
    *err = sm_fmt("LLVM passes %s: %s", pipeline, msg);
    LLVMDisposeErrorMessage(msg);
    return -1;
  }
  return 0;
}

int sm_llvm_optimize(LLVMModuleRef m, LLVMTargetMachineRef tm, int opt_level, char **err) {
  *err = NULL;
  if (opt_level < 0) opt_level = 0;
  if (opt_level > 3) opt_level = 3;
  char pipeline[32];
  snprintf(pipeline, sizeof pipeline, "default<O%d>", opt_level);
  return run_passes(m, tm, pipeline, err);
}

/* The blocked matmul is vectorized, register-tiled and unrolled by hand
 * (llvm_matmul.c). What it needs from LLVM: the constant arguments
 * (sm_mm_consts) propagated from the driver into the pieces, each called
 * once, and the pieces left unused removed; clean-up (constants and
 * addresses folded, the control flow simplified); loop-invariant code
 * hoisted; redundant loads removed; the packing copies that llvm_matmul.c
 * marks (llvm.loop.vectorize.enable) vectorized, and pack_a's contiguous
 * scalar copies merged by the SLP vectorizer. Code generation does the
 * rest (strength reduction of the addresses, register allocation).
 * On the general function default<O3> makes it no faster
 * (docs/cpu-backend.md) and takes about 2.5 times longer: inlining the
 * pieces into one function, unswitching the driver's loops and vectorizing
 * every loop cost time in every later pass. When every argument but M is a
 * constant, though, most of the code folds away, default<O3> takes no
 * longer than this pipeline on the general function, and what it does
 * with the known shape makes the product about 3% faster; the JIT then
 * runs it instead (sm_llvm_optimize_matmul).
 * "instcombine" spelled in a pipeline string checks that one round reached
 * a fixpoint and aborts the process when not (a check for LLVM's own
 * tests), hence no-verify-fixpoint. */
#define MATMUL_PIPELINE                                                                  \
  "ipsccp<no-func-spec>,globaldce,"                                                       \
  "function(sroa,early-cse,instcombine<no-verify-fixpoint>,simplifycfg,loop(loop-rotate),"\
  "loop-mssa(licm),gvn,loop-vectorize<interleave-forced-only;vectorize-forced-only>,"     \
  "slp-vectorizer,instcombine<no-verify-fixpoint>,simplifycfg)"

int sm_llvm_optimize_matmul(LLVMModuleRef m, LLVMTargetMachineRef tm, int opt_level,
                            const sm_mm_consts *consts, char **err) {
  *err = NULL;
  bool shape = consts && (consts->mask & SM_MM_SHAPE) == SM_MM_SHAPE;
  if (opt_level <= 0 || shape) return sm_llvm_optimize(m, tm, opt_level, err);
  return run_passes(m, tm, MATMUL_PIPELINE, err);
}

/* ------------------------------------------------------------ targets */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void init_targets(void) {
  /* every target LLVM was built with: the host, and AArch64 (and others)
   * for cross-compiled AOT objects */
  LLVMInitializeAllTargetInfos();
  LLVMInitializeAllTargets();
  LLVMInitializeAllTargetMCs();
  LLVMInitializeAllAsmPrinters();
  LLVMInitializeAllAsmParsers();
}

void sm_llvm_init_targets(void) { pthread_once(&init_once, init_targets); }

LLVMTargetMachineRef sm_llvm_target_machine(const char *triple, const char *cpu,
                                            const char *features, int opt_level, char **err) {
  *err = NULL;
  sm_llvm_init_targets();
  char *host_triple = NULL, *host_cpu = NULL, *host_feat = NULL;
  if (!triple) triple = host_triple = LLVMGetDefaultTargetTriple();
  if (!cpu) cpu = host_cpu = LLVMGetHostCPUName();
  if (!features) features = host_feat = LLVMGetHostCPUFeatures();
  LLVMTargetRef t = NULL;
  char *msg = NULL;
  LLVMTargetMachineRef tm = NULL;
  if (LLVMGetTargetFromTriple(triple, &t, &msg)) {
    *err = sm_fmt("LLVM target %s: %s", triple, msg ? msg : "unknown");
  } else {
    LLVMCodeGenOptLevel lv = opt_level <= 0   ? LLVMCodeGenLevelNone
                             : opt_level == 1 ? LLVMCodeGenLevelLess
                             : opt_level == 2 ? LLVMCodeGenLevelDefault
                                              : LLVMCodeGenLevelAggressive;
    tm = LLVMCreateTargetMachine(t, triple, cpu, features, lv, LLVMRelocPIC,
                                 LLVMCodeModelDefault);
    if (!tm) *err = sm_fmt("LLVM target machine for %s (cpu %s) could not be created", triple, cpu);
  }
  if (msg) LLVMDisposeMessage(msg);
  if (host_triple) LLVMDisposeMessage(host_triple);
  if (host_cpu) LLVMDisposeMessage(host_cpu);
  if (host_feat) LLVMDisposeMessage(host_feat);
  return tm;
}
