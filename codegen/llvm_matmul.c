/* The blocked matmul of the LLVM backend, emitted as LLVM IR.
 *
 * Structure (GotoBLAS / BLIS, written for row-major C with vectors along n):
 *
 *   for jc over N in panels of NC columns
 *     for pc over K in blocks of KC
 *       pack B[pc:pc+kc, jc:jc+nc] into NR-wide micro-panels  (L2 resident)
 *       for ic over [m_begin, m_end) in blocks of MC rows
 *         pack A[ic:ic+mc, pc:pc+kc] into MR-tall micro-panels
 *         for ir over the block in steps of MR     (A micro-panel stays in L1)
 *           for jr over the panel in steps of NR   (B micro-panels stream from L2)
 *             micro-kernel: an MR x NR tile of C in MR*NV vector registers,
 *             per k one vector load per NR/lanes and MR broadcasts of A
 *
 * The first k-block starts its accumulators at zero, later ones at the C
 * tile they reload, so every C element is one FMA chain over k in increasing
 * order: the bits do not depend on the blocking or on the row range. Edge
 * tiles run masked variants of the kernel on the zero-padded panels; when B
 * is a single micro-panel wide, A is read in place instead of packed. See
 * docs/matmul.md for the sizes, the reasons and measurements.
 */
#include "llvm_matmul.h"

#include <llvm-c/DebugInfo.h>
#include <string.h>

/* Tile sizes for one dtype on one target. */
typedef struct mm_cfg {
  int lanes; /* elements per vector */
  int nv;    /* vectors per micro-tile row: NR = nv * lanes */
  int mr, nr;
  int kc, nc, mc;
} mm_cfg;

/* What the emitters share. */
typedef struct mm_gen {
  LLVMContextRef cx;
  LLVMModuleRef m;
  LLVMBuilderRef b;
  LLVMValueRef fn; /* function being emitted */
  LLVMTypeRef i1, i64, ptr, el, vec, vvoid;
  unsigned el_size;
  mm_cfg c;
  char name[32]; /* "smelt_mm_f32" */
  const sm_mm_consts *consts; /* NULL: none */
} mm_gen;

/* ------------------------------------------------------ target features */

/* +1 when the comma-separated feature string enables `name`, -1 when it
 * disables it, 0 when it does not say. */
static int feature_state(const char *features, const char *name) {
  size_t n = strlen(name);
  int state = 0;
  for (const char *p = features; p && *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n + 1 && (p[0] == '+' || p[0] == '-') && memcmp(p + 1, name, n) == 0)
      state = p[0] == '+' ? 1 : -1; /* the last mention wins, as in LLVM */
    p = end ? end + 1 : p + len;
  }
  return state;
}

static bool name_in(const char *s, const char *const *list) {
  for (; *list; list++)
    if (strcmp(s, *list) == 0)
      return true;
  return false;
}

/* Vector register width in bits and the number of vector registers, from
 * the features, else from the CPU name (a target machine created with a
 * CPU and no feature string). */
static void target_vectors(LLVMTargetMachineRef tm, int *bits, int *nregs) {
  static const char *const avx512_cpus[] = {"skylake-avx512",
                                            "cascadelake",
                                            "cooperlake",
                                            "cannonlake",
                                            "icelake-client",
                                            "icelake-server",
                                            "tigerlake",
                                            "rocketlake",
                                            "sapphirerapids",
                                            "emeraldrapids",
                                            "graniterapids",
                                            "graniterapids-d",
                                            "znver4",
                                            "znver5",
                                            "knl",
                                            "knm",
                                            "x86-64-v4",
                                            NULL};
  static const char *const avx_cpus[] = {
      "sandybridge",  "ivybridge",  "haswell",          "broadwell",   "skylake",   "alderlake",
      "raptorlake",   "meteorlake", "arrowlake",        "arrowlake-s", "lunarlake", "gracemont",
      "sierraforest", "grandridge", "clearwaterforest", "pantherlake", "znver1",    "znver2",
      "znver3",       "bdver1",     "bdver2",           "bdver3",      "bdver4",    "btver2",
      "x86-64-v3",    NULL};
  char *triple = LLVMGetTargetMachineTriple(tm);
  char *cpu = LLVMGetTargetMachineCPU(tm);
  char *features = LLVMGetTargetMachineFeatureString(tm);
  *bits = 128; /* SSE2 and NEON are the baselines of x86-64 and AArch64 */
  *nregs = 16;
  bool x86 = strncmp(triple, "x86_64", 6) == 0 || strncmp(triple, "i686", 4) == 0 ||
             strncmp(triple, "i386", 4) == 0;
  if (x86) {
    char *host = NULL;
    const char *c = cpu;
    if (strcmp(cpu, "native") == 0)
      c = host = LLVMGetHostCPUName();
    int f512 = feature_state(features, "avx512f"), f256 = feature_state(features, "avx");
    if (f512 > 0 || (f512 == 0 && name_in(c, avx512_cpus))) {
      *bits = 512;
      *nregs = 32;
    } else if (f256 > 0 || (f256 == 0 && (name_in(c, avx_cpus) || name_in(c, avx512_cpus)))) {
      *bits = 256;
    }
    if (host)
      LLVMDisposeMessage(host);
  } else if (strncmp(triple, "aarch64", 7) == 0 || strncmp(triple, "arm64", 5) == 0) {
    *nregs = 32;
  }
  LLVMDisposeMessage(triple);
  LLVMDisposeMessage(cpu);
  LLVMDisposeMessage(features);
}

/* Tile sizes. The micro-tile uses about three quarters of the vector
 * registers for accumulators (the rest hold B vectors and a broadcast);
 * KC keeps an MR x KC micro-panel of A near 12 KiB so it stays in a 32 KiB
 * L1 while B micro-panels stream past it; NC bounds the packed B panel
 * (KC x NC, the L2-resident block) at 512 KiB of stack: half of a 1 MiB
 * L2 (256 KiB left the 4096 product at 0.88x OpenBLAS on a Zen 4, 512 KiB
 * takes it to 0.95x; docs/matmul.md). */
static mm_cfg choose_cfg(int bits, int nregs, unsigned el_size) {
  mm_cfg c;
  c.lanes = bits / 8 / (int)el_size;
  c.nv = 2;
  c.mr = nregs >= 32 ? 12 : 6;
  c.nr = c.nv * c.lanes;
  int kc = 12288 / (c.mr * (int)el_size);
  if (kc > 256)
    kc = 256;
  c.kc = kc / 8 * 8;
  int nc = 524288 / (c.kc * (int)el_size);
  c.nc = nc / c.nr * c.nr;
  c.mc = 4 * c.mr;
  return c;
}

/* --------------------------------------------------------------- helpers */

static LLVMValueRef k64(mm_gen *g, int64_t v) {
  return LLVMConstInt(g->i64, (unsigned long long)v, 1);
}

static LLVMValueRef add(mm_gen *g, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildAdd(g->b, a, b, "");
}
static LLVMValueRef mul(mm_gen *g, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildMul(g->b, a, b, "");
}
static LLVMValueRef sub(mm_gen *g, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSub(g->b, a, b, "");
}

static LLVMValueRef eq(mm_gen *g, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildICmp(g->b, LLVMIntEQ, a, b, "");
}

static LLVMValueRef smin(mm_gen *g, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, a, b, ""), a, b, "");
}

/* Element pointer p + i. Plain GEP for caller pointers (strides of any
 * sign), inbounds for the packed buffers. */
static LLVMValueRef elp(mm_gen *g, LLVMValueRef p, LLVMValueRef i, bool inbounds) {
  return inbounds ? LLVMBuildInBoundsGEP2(g->b, g->el, p, &i, 1, "")
                  : LLVMBuildGEP2(g->b, g->el, p, &i, 1, "");
}

static LLVMValueRef load(mm_gen *g, LLVMTypeRef t, LLVMValueRef p, unsigned align) {
  LLVMValueRef v = LLVMBuildLoad2(g->b, t, p, "");
  LLVMSetAlignment(v, align);
  return v;
}

static void store(mm_gen *g, LLVMValueRef v, LLVMValueRef p, unsigned align) {
  LLVMSetAlignment(LLVMBuildStore(g->b, v, p), align);
}

static LLVMBasicBlockRef block(mm_gen *g, const char *name) {
  return LLVMAppendBasicBlockInContext(g->cx, g->fn, name);
}

/* A counted loop for (iv = lo; iv < hi; iv += step): loop_open leaves the
 * builder in the body, loop_close after the loop. */
typedef struct mm_loop {
  LLVMValueRef iv;
  LLVMBasicBlockRef head, exit;
} mm_loop;

static void loop_open(mm_gen *g, mm_loop *l, LLVMValueRef lo, LLVMValueRef hi, const char *name) {
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(g->b);
  l->head = block(g, name);
  LLVMBasicBlockRef body = block(g, "body");
  l->exit = LLVMCreateBasicBlockInContext(g->cx, "done"); /* appended at close: readable order */
  LLVMBuildBr(g->b, l->head);
  LLVMPositionBuilderAtEnd(g->b, l->head);
  l->iv = LLVMBuildPhi(g->b, g->i64, name);
  LLVMAddIncoming(l->iv, &lo, &pre, 1);
  LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, l->iv, hi, ""), body, l->exit);
  LLVMPositionBuilderAtEnd(g->b, body);
}

/* Marks a loop's back edge "llvm.loop.unroll.disable", and with
 * `vectorize` "llvm.loop.vectorize.enable" and
 * "llvm.loop.vectorize.predicate.enable". The micro-kernel is unrolled by
 * hand (MR x NV vector FMAs per k step) and the packing loops are bounded
 * by memory: LLVM's unroller would multiply the code (and the time to
 * compile it, by about four) for no measured gain. The vectorize hints
 * mark the scalar copies of the packing routines, the only loops here that
 * LLVM's loop vectorizer improves (columns of transposed B and rows of
 * row-major A: vector loads and scatters; zero padding): the JIT runs the
 * vectorizer on marked loops only (sm_llvm_optimize_matmul), and the
 * remainder is folded into the vector loop with masks instead of becoming
 * two more loops, which keeps the code, and its compile time, small. */
static void loop_hints(mm_gen *g, LLVMValueRef backedge, bool vectorize) {
  LLVMMetadataRef tmp = LLVMTemporaryMDNode(g->cx, NULL, 0);
  LLVMMetadataRef unroll = LLVMMDStringInContext2(g->cx, "llvm.loop.unroll.disable", 24);
  LLVMMetadataRef on = LLVMValueAsMetadata(LLVMConstInt(LLVMInt1TypeInContext(g->cx), 1, 0));
  LLVMMetadataRef vec[2] = {LLVMMDStringInContext2(g->cx, "llvm.loop.vectorize.enable", 26), on};
  LLVMMetadataRef pred[2] = {
      LLVMMDStringInContext2(g->cx, "llvm.loop.vectorize.predicate.enable", 36), on};
  LLVMMetadataRef ops[] = {tmp, LLVMMDNodeInContext2(g->cx, &unroll, 1),
                           LLVMMDNodeInContext2(g->cx, vec, 2),
                           LLVMMDNodeInContext2(g->cx, pred, 2)};
  LLVMMetadataRef loop_id = LLVMMDNodeInContext2(g->cx, ops, vectorize ? 4 : 2);
  LLVMMetadataReplaceAllUsesWith(tmp, loop_id); /* the loop id names itself */
  LLVMSetMetadata(backedge, LLVMGetMDKindIDInContext(g->cx, "llvm.loop", 9),
                  LLVMMetadataAsValue(g->cx, loop_id));
}

static void close_loop(mm_gen *g, mm_loop *l, LLVMValueRef step, bool vectorize) {
  LLVMValueRef next = LLVMBuildNSWAdd(g->b, l->iv, step, "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b);
  loop_hints(g, LLVMBuildBr(g->b, l->head), vectorize);
  LLVMAddIncoming(l->iv, &next, &latch, 1);
  LLVMAppendExistingBasicBlock(g->fn, l->exit);
  LLVMPositionBuilderAtEnd(g->b, l->exit);
}

static void loop_close(mm_gen *g, mm_loop *l, LLVMValueRef step) {
  close_loop(g, l, step, false);
}

/* loop_close for a scalar packing copy that the loop vectorizer should
 * take (loop_hints). */
static void loop_close_vec(mm_gen *g, mm_loop *l, LLVMValueRef step) {
  close_loop(g, l, step, true);
}

/* if (cond) { then } else { else }: if_open leaves the builder in the
 * then-branch, if_else in the else-branch, if_close after both. */
typedef struct mm_if {
  LLVMBasicBlockRef other, join;
} mm_if;

static void if_open(mm_gen *g, mm_if *f, LLVMValueRef cond) {
  LLVMBasicBlockRef then = block(g, "then");
  f->other = block(g, "else");
  f->join = block(g, "join");
  LLVMBuildCondBr(g->b, cond, then, f->other);
  LLVMPositionBuilderAtEnd(g->b, then);
}

static void if_else(mm_gen *g, mm_if *f) {
  LLVMBuildBr(g->b, f->join);
  LLVMPositionBuilderAtEnd(g->b, f->other);
}

static void if_close(mm_gen *g, mm_if *f) {
  LLVMBuildBr(g->b, f->join);
  LLVMMoveBasicBlockAfter(f->join, LLVMGetInsertBlock(g->b));
  LLVMPositionBuilderAtEnd(g->b, f->join);
}

/* An internal function named "<name>.<suffix>" with these parameter types,
 * the builder at its entry. */
static LLVMValueRef begin_fn(mm_gen *g, const char *suffix, LLVMTypeRef *params, unsigned n) {
  char name[64];
  snprintf(name, sizeof name, "%s.%s", g->name, suffix);
  LLVMTypeRef ty = LLVMFunctionType(g->vvoid, params, n, 0);
  g->fn = LLVMAddFunction(g->m, name, ty);
  LLVMSetLinkage(g->fn, LLVMInternalLinkage);
  LLVMAddAttributeAtIndex(
      g->fn, LLVMAttributeFunctionIndex,
      LLVMCreateEnumAttribute(g->cx, LLVMGetEnumAttributeKindForName("nounwind", 8), 0));
  LLVMPositionBuilderAtEnd(g->b, block(g, "entry"));
  return g->fn;
}

static void add_attr(mm_gen *g, LLVMValueRef fn, unsigned idx, const char *kind) {
  unsigned id = LLVMGetEnumAttributeKindForName(kind, strlen(kind));
  LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(g->cx, id, 0));
}

/* Parameter idx (1-based) of fn points to memory that no other pointer
 * the function uses reaches (the packed buffers are the driver's own, C
 * overlaps neither A nor B); read only when `readonly`. Without it the
 * SLP vectorizer may not turn pack_a's contiguous copies into vector ones,
 * for fear that a store changes a later load. */
static void param_noalias(mm_gen *g, LLVMValueRef fn, unsigned idx, bool readonly) {
  add_attr(g, fn, idx, "noalias");
  add_attr(g, fn, idx, "nocapture");
  if (readonly)
    add_attr(g, fn, idx, "readonly");
}

static LLVMValueRef call(mm_gen *g, LLVMValueRef fn, LLVMValueRef *args, unsigned n) {
  return LLVMBuildCall2(g->b, LLVMGlobalGetValueType(fn), fn, args, n, "");
}

/* ----------------------------------------------------------- the pieces */

/* kernel(Ap, Bp, kc, C, ldc, first): C[r*ldc + j] (r < MR, j < nvk*lanes) =
 * (first ? 0 : C) + sum_k Ap[k*MR + r] * Bp[k*NR + j], one FMA per k.
 * The edge variant (masked) takes mr and nr too and loads and stores only
 * r < mr, j < nr with masked vector operations; nvk < nv serves narrow
 * edges (N = 10 computes one vector per row, not two). The direct variant
 * (masked too) reads A in place, A[r*ars + k*aks], rows r >= mr clamped to
 * the last valid row so that nothing outside A is read. */
static LLVMValueRef emit_kernel(mm_gen *g, LLVMValueRef fma, int nvk, bool masked, bool direct) {
  const mm_cfg *c = &g->c;
  LLVMTypeRef ps[] = {g->ptr, g->ptr, g->i64, g->ptr, g->i64,
                      g->i1,  g->i64, g->i64, g->i64, g->i64};
  char suffix[32];
  snprintf(suffix, sizeof suffix, masked ? "edge%d%s" : "kernel", nvk, direct ? "_direct" : "");
  LLVMValueRef fn = begin_fn(g, suffix, ps, direct ? 10 : masked ? 8 : 6);
  param_noalias(g, fn, 1, true); /* Ap (A in place: direct) */
  param_noalias(g, fn, 2, true); /* Bp */
  param_noalias(g, fn, 4, false); /* C */
  if (c->lanes * (int)g->el_size * 8 >= 512)
    LLVMAddTargetDependentFunctionAttr(fn, "min-legal-vector-width", "512");
  LLVMValueRef ap = LLVMGetParam(fn, 0), bp = LLVMGetParam(fn, 1), kc = LLVMGetParam(fn, 2);
  LLVMValueRef cp = LLVMGetParam(fn, 3), ldc = LLVMGetParam(fn, 4), first = LLVMGetParam(fn, 5);
  enum { MAXACC = 64 };
  int nacc = c->mr * nvk;
  LLVMValueRef init[MAXACC], acc[MAXACC], next[MAXACC], cptr[MAXACC], mask[MAXACC];
  unsigned valign = (unsigned)c->lanes * g->el_size;
  LLVMValueRef zero = LLVMConstNull(g->vec), z64 = k64(g, 0);
  LLVMValueRef mload = NULL, mstore = NULL;

  /* the C tile addresses, needed to load (later k-blocks) and to store */
  for (int r = 0; r < c->mr; r++)
    for (int v = 0; v < nvk; v++)
      cptr[r * nvk + v] = elp(g, cp, add(g, mul(g, k64(g, r), ldc), k64(g, v * c->lanes)), false);
  if (masked) {
    /* lane j of vector v in row r is valid when j < (r < mr ? nr : 0) - v*lanes */
    LLVMTypeRef tys[] = {g->vec, g->ptr};
    mload =
        LLVMGetIntrinsicDeclaration(g->m, LLVMLookupIntrinsicID("llvm.masked.load", 16), tys, 2);
    mstore =
        LLVMGetIntrinsicDeclaration(g->m, LLVMLookupIntrinsicID("llvm.masked.store", 17), tys, 2);
    LLVMTypeRef ivec = LLVMVectorType(g->i64, (unsigned)c->lanes);
    LLVMValueRef iota[64];
    for (int j = 0; j < c->lanes; j++)
      iota[j] = k64(g, j);
    LLVMValueRef lane = LLVMConstVector(iota, (unsigned)c->lanes);
    LLVMValueRef mr = LLVMGetParam(fn, 6), nr = LLVMGetParam(fn, 7);
    for (int r = 0; r < c->mr; r++) {
      LLVMValueRef lim =
          LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, k64(g, r), mr, ""), nr, z64, "");
      for (int v = 0; v < nvk; v++) {
        LLVMValueRef l = sub(g, lim, k64(g, v * c->lanes));
        LLVMValueRef l1 = LLVMBuildInsertElement(g->b, LLVMGetPoison(ivec), l, z64, "");
        LLVMValueRef ls = LLVMBuildShuffleVector(
            g->b, l1, LLVMGetPoison(ivec),
            LLVMConstNull(LLVMVectorType(LLVMInt32TypeInContext(g->cx), (unsigned)c->lanes)), "");
        mask[r * nvk + v] = LLVMBuildICmp(g->b, LLVMIntSLT, lane, ls, "");
      }
    }
  }
  LLVMValueRef arow_off[64];
  for (int r = 0; r < c->mr; r++)
    arow_off[r] = k64(g, r);
  if (direct) {
    LLVMValueRef mr = LLVMGetParam(fn, 6), ars = LLVMGetParam(fn, 8);
    for (int r = 0; r < c->mr; r++) {
      LLVMValueRef row = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, k64(g, r), mr, ""),
                                         k64(g, r), sub(g, mr, k64(g, 1)), "");
      arow_off[r] = mul(g, row, ars);
    }
  }
  LLVMValueRef align_arg = LLVMConstInt(LLVMInt32TypeInContext(g->cx), g->el_size, 0);

  LLVMBasicBlockRef entry = LLVMGetInsertBlock(g->b);
  LLVMBasicBlockRef load_c = block(g, "load_c"), head = block(g, "k"), body = block(g, "fma"),
                    out = block(g, "store_c");
  LLVMBuildCondBr(g->b, first, head, load_c);
  LLVMPositionBuilderAtEnd(g->b, load_c);
  for (int i = 0; i < nacc; i++) {
    if (masked) {
      LLVMValueRef args[] = {cptr[i], align_arg, mask[i], zero};
      init[i] = call(g, mload, args, 4);
    } else {
      init[i] = load(g, g->vec, cptr[i], g->el_size);
    }
  }
  LLVMBuildBr(g->b, head);

  LLVMPositionBuilderAtEnd(g->b, head);
  LLVMValueRef k = LLVMBuildPhi(g->b, g->i64, "k");
  LLVMAddIncoming(k, &z64, &entry, 1);
  LLVMAddIncoming(k, &z64, &load_c, 1);
  for (int i = 0; i < nacc; i++) {
    acc[i] = LLVMBuildPhi(g->b, g->vec, "acc");
    LLVMAddIncoming(acc[i], &zero, &entry, 1);
    LLVMAddIncoming(acc[i], &init[i], &load_c, 1);
  }
  LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, k, kc, ""), body, out);

  LLVMPositionBuilderAtEnd(g->b, body);
  LLVMValueRef bv[8];
  LLVMValueRef brow = elp(g, bp, mul(g, k, k64(g, c->nr)), true);
  for (int v = 0; v < nvk; v++)
    bv[v] = load(g, g->vec, elp(g, brow, k64(g, v * c->lanes), true), valign);
  LLVMValueRef arow = direct ? elp(g, ap, mul(g, k, LLVMGetParam(fn, 9)), false)
                             : elp(g, ap, mul(g, k, k64(g, c->mr)), true);
  LLVMValueRef splat_mask =
      LLVMConstNull(LLVMVectorType(LLVMInt32TypeInContext(g->cx), (unsigned)c->lanes));
  LLVMTypeRef fma_ty = LLVMGlobalGetValueType(fma);
  for (int r = 0; r < c->mr; r++) {
    LLVMValueRef a = load(g, g->el, elp(g, arow, arow_off[r], !direct), g->el_size);
    LLVMValueRef a1 = LLVMBuildInsertElement(g->b, LLVMGetPoison(g->vec), a, z64, "");
    LLVMValueRef as = LLVMBuildShuffleVector(g->b, a1, LLVMGetPoison(g->vec), splat_mask, "");
    for (int v = 0; v < nvk; v++) {
      LLVMValueRef args[] = {as, bv[v], acc[r * nvk + v]};
      next[r * nvk + v] = LLVMBuildCall2(g->b, fma_ty, fma, args, 3, "");
    }
  }
  LLVMValueRef k1 = LLVMBuildNSWAdd(g->b, k, k64(g, 1), "");
  LLVMAddIncoming(k, &k1, &body, 1);
  for (int i = 0; i < nacc; i++)
    LLVMAddIncoming(acc[i], &next[i], &body, 1);
  loop_hints(g, LLVMBuildBr(g->b, head), false);

  LLVMPositionBuilderAtEnd(g->b, out);
  for (int i = 0; i < nacc; i++) {
    if (masked) {
      LLVMValueRef args[] = {acc[i], cptr[i], align_arg, mask[i]};
      call(g, mstore, args, 4);
    } else {
      store(g, acc[i], cptr[i], g->el_size);
    }
  }
  LLVMBuildRetVoid(g->b);
  return fn;
}

/* dst[k*dstep] = src[k*sstep] for 0 <= k < n (dstep a constant), and
 * dst[k*dstep] = 0 when src is NULL. The copy with sstep = 1 (rows of
 * row-major A, columns of transposed B) is a loop of its own that the
 * vectorizer takes (contiguous vector loads, then scatters or shuffles);
 * with a stride known only at run time it would have to version the loop
 * on the stride, which takes longer to compile and rarely pays. */
static void copy_strided(mm_gen *g, LLVMValueRef src, LLVMValueRef sstep, LLVMValueRef dst,
                         int dstep, LLVMValueRef n) {
  mm_loop k;
  if (!src) {
    loop_open(g, &k, k64(g, 0), n, "k");
    store(g, LLVMConstNull(g->el), elp(g, dst, mul(g, k.iv, k64(g, dstep)), true),
          g->el_size);
    loop_close_vec(g, &k, k64(g, 1));
    return;
  }
  mm_if unit;
  if_open(g, &unit, eq(g, sstep, k64(g, 1)));
  for (int pass = 0; pass < 2; pass++) {
    loop_open(g, &k, k64(g, 0), n, "k");
    LLVMValueRef x =
        load(g, g->el, elp(g, src, pass == 0 ? k.iv : mul(g, k.iv, sstep), false), g->el_size);
    store(g, x, elp(g, dst, mul(g, k.iv, k64(g, dstep)), true), g->el_size);
    if (pass == 0) {
      loop_close_vec(g, &k, k64(g, 1));
      if_else(g, &unit);
    } else {
      loop_close(g, &k, k64(g, 1));
    }
  }
  if_close(g, &unit);
}

/* pack_b(B, sbk, sbn, kc, nc, Bp): Bp[q*NR*kc + k*NR + j] = B[k*sbk + (q*NR+j)*sbn]
 * for q*NR + j < nc, zero in the padding up to a multiple of NR. */
static LLVMValueRef emit_pack_b(mm_gen *g) {
  const mm_cfg *c = &g->c;
  LLVMTypeRef ps[] = {g->ptr, g->i64, g->i64, g->i64, g->i64, g->ptr};
  LLVMValueRef fn = begin_fn(g, "pack_b", ps, 6);
  param_noalias(g, fn, 1, true);  /* B */
  param_noalias(g, fn, 6, false); /* Bp */
  LLVMValueRef B = LLVMGetParam(fn, 0), sbk = LLVMGetParam(fn, 1), sbn = LLVMGetParam(fn, 2);
  LLVMValueRef kc = LLVMGetParam(fn, 3), nc = LLVMGetParam(fn, 4), Bp = LLVMGetParam(fn, 5);
  LLVMValueRef NR = k64(g, c->nr);
  unsigned valign = (unsigned)c->lanes * g->el_size;
  mm_loop q, k, j;
  loop_open(g, &q, k64(g, 0), nc, "n0");
  LLVMValueRef dst = elp(g, Bp, mul(g, q.iv, kc), true);
  LLVMValueRef w = smin(g, NR, sub(g, nc, q.iv));
  mm_if f;
  if_open(g, &f, LLVMBuildAnd(g->b, eq(g, sbn, k64(g, 1)), eq(g, w, NR), ""));
  {
    /* unit stride along n, a whole micro-panel: vector copies of rows */
    LLVMValueRef src = elp(g, B, q.iv, false);
    loop_open(g, &k, k64(g, 0), kc, "k");
    LLVMValueRef s = elp(g, src, mul(g, k.iv, sbk), false);
    LLVMValueRef d = elp(g, dst, mul(g, k.iv, NR), true);
    for (int v = 0; v < c->nv; v++) {
      LLVMValueRef x = load(g, g->vec, elp(g, s, k64(g, v * c->lanes), false), g->el_size);
      store(g, x, elp(g, d, k64(g, v * c->lanes), true), valign);
    }
    loop_close(g, &k, k64(g, 1));
  }
  if_else(g, &f);
  {
    /* any strides, or the last partial micro-panel: column by column (the
     * k loop reads contiguously when B is transposed) */
    loop_open(g, &j, k64(g, 0), NR, "j");
    LLVMValueRef d = elp(g, dst, j.iv, true);
    mm_if inside;
    if_open(g, &inside, LLVMBuildICmp(g->b, LLVMIntSLT, j.iv, w, ""));
    copy_strided(g, elp(g, B, mul(g, add(g, q.iv, j.iv), sbn), false), sbk, d, c->nr, kc);
    if_else(g, &inside);
    copy_strided(g, NULL, NULL, d, c->nr, kc);
    if_close(g, &inside);
    loop_close(g, &j, k64(g, 1));
  }
  if_close(g, &f);
  loop_close(g, &q, NR);
  LLVMBuildRetVoid(g->b);
  return fn;
}

/* pack_a(A, sam, sak, mc, kc, Ap): Ap[p*MR*kc + k*MR + r] = A[(p*MR+r)*sam + k*sak]
 * for p*MR + r < mc, zero in the padding up to a multiple of MR. */
static LLVMValueRef emit_pack_a(mm_gen *g) {
  const mm_cfg *c = &g->c;
  LLVMTypeRef ps[] = {g->ptr, g->i64, g->i64, g->i64, g->i64, g->ptr};
  LLVMValueRef fn = begin_fn(g, "pack_a", ps, 6);
  param_noalias(g, fn, 1, true);  /* A */
  param_noalias(g, fn, 6, false); /* Ap */
  LLVMValueRef A = LLVMGetParam(fn, 0), sam = LLVMGetParam(fn, 1), sak = LLVMGetParam(fn, 2);
  LLVMValueRef mc = LLVMGetParam(fn, 3), kc = LLVMGetParam(fn, 4), Ap = LLVMGetParam(fn, 5);
  LLVMValueRef MR = k64(g, c->mr);
  mm_loop p, k, r;
  loop_open(g, &p, k64(g, 0), mc, "m0");
  LLVMValueRef dst = elp(g, Ap, mul(g, p.iv, kc), true);
  LLVMValueRef h = smin(g, MR, sub(g, mc, p.iv));
  mm_if f, unit;
  if_open(g, &f, eq(g, h, MR));
  {
    /* a whole micro-panel: per k, MR loads (one per row) and one
     * contiguous MR-element store. With unit stride along m (transposed A)
     * the loads are contiguous too and the SLP vectorizer makes vector
     * copies of them; with unit stride along k (row-major A) the loop
     * vectorizer takes it along k (MR contiguous vector loads, then
     * scatters); any other strides stay scalar. */
    mm_if rowmajor;
    if_open(g, &unit, eq(g, sam, k64(g, 1)));
    for (int pass = 0; pass < 3; pass++) {
      LLVMValueRef src = elp(g, A, mul(g, p.iv, sam), false);
      LLVMValueRef rowoff[64];
      for (int i = 0; i < c->mr; i++)
        rowoff[i] = pass == 0 ? k64(g, i) : mul(g, k64(g, i), sam);
      loop_open(g, &k, k64(g, 0), kc, "k");
      LLVMValueRef s = elp(g, src, pass == 1 ? k.iv : mul(g, k.iv, sak), false);
      LLVMValueRef d = elp(g, dst, mul(g, k.iv, MR), true);
      for (int i = 0; i < c->mr; i++)
        store(g, load(g, g->el, elp(g, s, rowoff[i], false), g->el_size),
              elp(g, d, k64(g, i), true), g->el_size);
      if (pass == 1)
        loop_close_vec(g, &k, k64(g, 1));
      else
        loop_close(g, &k, k64(g, 1));
      if (pass == 0) {
        if_else(g, &unit);
        if_open(g, &rowmajor, eq(g, sak, k64(g, 1)));
      } else if (pass == 1) {
        if_else(g, &rowmajor);
      }
    }
    if_close(g, &rowmajor);
    if_close(g, &unit);
  }
  if_else(g, &f);
  {
    /* the last partial micro-panel: row by row, zero rows after h */
    loop_open(g, &r, k64(g, 0), MR, "r");
    LLVMValueRef d = elp(g, dst, r.iv, true);
    mm_if inside;
    if_open(g, &inside, LLVMBuildICmp(g->b, LLVMIntSLT, r.iv, h, ""));
    copy_strided(g, elp(g, A, mul(g, add(g, p.iv, r.iv), sam), false), sak, d, c->mr, kc);
    if_else(g, &inside);
    copy_strided(g, NULL, NULL, d, c->mr, kc);
    if_close(g, &inside);
    loop_close(g, &r, k64(g, 1));
  }
  if_close(g, &f);
  loop_close(g, &p, MR);
  LLVMBuildRetVoid(g->b);
  return fn;
}

/* The entry: the loops of the header comment around the pieces. */
static LLVMValueRef emit_driver(mm_gen *g, LLVMValueRef kernel, const LLVMValueRef *edge,
                                const LLVMValueRef *direct, LLVMValueRef pack_a,
                                LLVMValueRef pack_b) {
  const mm_cfg *c = &g->c;
  LLVMTypeRef ps[13] = {g->ptr, g->ptr, g->ptr};
  for (int i = 3; i < 13; i++)
    ps[i] = g->i64;
  LLVMTypeRef ty = LLVMFunctionType(g->vvoid, ps, 13, 0);
  LLVMValueRef fn = g->fn = LLVMAddFunction(g->m, g->name, ty);
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  add_attr(g, fn, LLVMAttributeFunctionIndex, "nounwind");
  for (unsigned i = 1; i <= 3; i++) {
    add_attr(g, fn, i, "noalias");
    add_attr(g, fn, i, "nocapture");
  }
  add_attr(g, fn, 1, "readonly");
  add_attr(g, fn, 2, "readonly");
  /* packing buffers of up to a few hundred KiB on the stack: probe them
   * page by page so that an overflow hits the guard page instead of
   * jumping past it */
  LLVMAddTargetDependentFunctionAttr(fn, "probe-stack", "inline-asm");
  LLVMValueRef A = LLVMGetParam(fn, 0), B = LLVMGetParam(fn, 1), C = LLVMGetParam(fn, 2);
  /* the arguments every caller passes the same are constants (sm_mm_consts) */
  LLVMValueRef arg[11];
  for (int i = 4; i <= 10; i++)
    arg[i] = g->consts && (g->consts->mask >> i & 1) ? k64(g, g->consts->v[i])
                                                     : LLVMGetParam(fn, (unsigned)i);
  LLVMValueRef N = arg[4], K = arg[5];
  LLVMValueRef sam = arg[6], sak = arg[7], sbk = arg[8];
  LLVMValueRef sbn = arg[9], ldc = arg[10];
  LLVMValueRef m_begin = LLVMGetParam(fn, 11), m_end = LLVMGetParam(fn, 12);
  LLVMValueRef zero = k64(g, 0), one = k64(g, 1);

  LLVMPositionBuilderAtEnd(g->b, block(g, "entry"));
  LLVMValueRef size_slot = LLVMBuildAlloca(g->b, g->i64, "size");
  LLVMBasicBlockRef ret = LLVMCreateBasicBlockInContext(g->cx, "ret");
  LLVMBasicBlockRef work = block(g, "work"), kzero = block(g, "kzero"),
                    blocked = block(g, "blocked");
  LLVMValueRef empty = LLVMBuildOr(g->b, LLVMBuildICmp(g->b, LLVMIntSGE, m_begin, m_end, ""),
                                   LLVMBuildICmp(g->b, LLVMIntSLE, N, zero, ""), "");
  LLVMBuildCondBr(g->b, empty, ret, work);
  LLVMPositionBuilderAtEnd(g->b, work);
  LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLE, K, zero, ""), kzero, blocked);

  /* K = 0: an empty sum */
  LLVMPositionBuilderAtEnd(g->b, kzero);
  mm_loop zm, zn;
  loop_open(g, &zm, m_begin, m_end, "m");
  LLVMValueRef crow = elp(g, C, mul(g, zm.iv, ldc), false);
  loop_open(g, &zn, zero, N, "n");
  store(g, LLVMConstNull(g->el), elp(g, crow, zn.iv, false), g->el_size);
  loop_close(g, &zn, one);
  loop_close(g, &zm, one);
  LLVMBuildBr(g->b, ret);

  LLVMPositionBuilderAtEnd(g->b, blocked);
  /* Equal-sized blocks (784 = 4 x 196, not 3 x 256 + 16), NC rounded up
   * to whole micro-panels; both stay within the buffers. */
  LLVMValueRef KC = k64(g, c->kc), NC = k64(g, c->nc), NR = k64(g, c->nr), MR = k64(g, c->mr);
  LLVMValueRef nkb = LLVMBuildSDiv(g->b, add(g, K, k64(g, c->kc - 1)), KC, "");
  LLVMValueRef kstep = LLVMBuildSDiv(g->b, add(g, K, sub(g, nkb, one)), nkb, "kstep");
  LLVMValueRef nnb = LLVMBuildSDiv(g->b, add(g, N, k64(g, c->nc - 1)), NC, "");
  LLVMValueRef nstep = LLVMBuildSDiv(g->b, add(g, N, sub(g, nnb, one)), nnb, "");
  nstep = mul(g, LLVMBuildSDiv(g->b, add(g, nstep, k64(g, c->nr - 1)), NR, ""), NR);
  /* The packing buffers, sized to the blocks (at most KC x NC and MC x KC)
   * and aligned for vector loads, are dynamic allocas, never part of a
   * static frame: a static frame over 8 pages makes LLVM 19's x86 prologue
   * probe the stack with a loop that uses r11 as scratch without checking
   * that it is free, and shrink-wrapping may place that prologue after code
   * holding a live value in r11 (it was the trip count of the epilogue of
   * the kernel this function had been inlined into: the epilogue ran past
   * the output). Dynamic allocas are probed with allocated registers. The
   * sizes go through a volatile slot so that constant shapes cannot fold
   * them into fixed-size allocas that end up in an entry block (which also
   * keeps this function out of its callers). */
  LLVMValueRef asize = mul(g, k64(g, c->mc), kstep), bsize = mul(g, kstep, nstep);
  LLVMSetVolatile(LLVMBuildStore(g->b, bsize, size_slot), 1);
  LLVMValueRef bn = LLVMBuildLoad2(g->b, g->i64, size_slot, "");
  LLVMSetVolatile(bn, 1);
  LLVMValueRef Bp = LLVMBuildArrayAlloca(g->b, g->el, bn, "Bp");
  LLVMSetVolatile(LLVMBuildStore(g->b, asize, size_slot), 1);
  LLVMValueRef an = LLVMBuildLoad2(g->b, g->i64, size_slot, "");
  LLVMSetVolatile(an, 1);
  LLVMValueRef Ap = LLVMBuildArrayAlloca(g->b, g->el, an, "Ap");
  LLVMSetAlignment(Bp, 64);
  LLVMSetAlignment(Ap, 64);

  LLVMValueRef one_panel = LLVMBuildICmp(g->b, LLVMIntSLE, N, NR, "");
  mm_loop jc, pc, ic, ir, jr;
  loop_open(g, &jc, zero, N, "jc");
  LLVMValueRef nc = smin(g, nstep, sub(g, N, jc.iv));
  loop_open(g, &pc, zero, K, "pc");
  LLVMValueRef kc = smin(g, kstep, sub(g, K, pc.iv));
  LLVMValueRef first = eq(g, pc.iv, zero);
  LLVMValueRef bsrc = elp(g, B, add(g, mul(g, pc.iv, sbk), mul(g, jc.iv, sbn)), false);
  call(g, pack_b, (LLVMValueRef[]){bsrc, sbk, sbn, kc, nc, Bp}, 6);
  loop_open(g, &ic, m_begin, m_end, "ic");
  LLVMValueRef mc = smin(g, k64(g, c->mc), sub(g, m_end, ic.iv));
  LLVMValueRef asrc = elp(g, A, add(g, mul(g, ic.iv, sam), mul(g, pc.iv, sak)), false);
  /* N <= NR: one micro-panel of B, so a packed A micro-panel would be
   * read once; the direct kernels read A in place instead */
  mm_if packing;
  if_open(g, &packing, LLVMBuildNot(g->b, one_panel, ""));
  call(g, pack_a, (LLVMValueRef[]){asrc, sam, sak, mc, kc, Ap}, 6);
  if_else(g, &packing);
  if_close(g, &packing);
  loop_open(g, &ir, zero, mc, "ir");
  LLVMValueRef mr = smin(g, MR, sub(g, mc, ir.iv));
  LLVMValueRef ap = elp(g, Ap, mul(g, ir.iv, kc), true);
  LLVMValueRef cr = elp(g, C, add(g, mul(g, add(g, ic.iv, ir.iv), ldc), jc.iv), false);
  loop_open(g, &jr, zero, nc, "jr");
  LLVMValueRef nr = smin(g, NR, sub(g, nc, jr.iv));
  LLVMValueRef bp = elp(g, Bp, mul(g, jr.iv, kc), true);
  LLVMValueRef ct = elp(g, cr, jr.iv, false);
  mm_if full, in_place;
  if_open(g, &in_place, one_panel);
  {
    LLVMValueRef a_in = elp(g, asrc, mul(g, ir.iv, sam), false);
    LLVMValueRef args[] = {a_in, bp, kc, ct, ldc, first, mr, nr, sam, sak};
    mm_if narrow[8];
    for (int v = 1; v < c->nv; v++) {
      if_open(g, &narrow[v], LLVMBuildICmp(g->b, LLVMIntSLE, nr, k64(g, v * c->lanes), ""));
      call(g, direct[v], args, 10);
      if_else(g, &narrow[v]);
    }
    call(g, direct[c->nv], args, 10);
    for (int v = c->nv - 1; v >= 1; v--)
      if_close(g, &narrow[v]);
  }
  if_else(g, &in_place);
  if_open(g, &full, LLVMBuildAnd(g->b, eq(g, mr, MR), eq(g, nr, NR), ""));
  call(g, kernel, (LLVMValueRef[]){ap, bp, kc, ct, ldc, first}, 6);
  if_else(g, &full);
  {
    /* an edge tile: the narrowest masked kernel that covers nr columns */
    LLVMValueRef args[] = {ap, bp, kc, ct, ldc, first, mr, nr};
    mm_if narrow[8];
    for (int v = 1; v < c->nv; v++) {
      if_open(g, &narrow[v], LLVMBuildICmp(g->b, LLVMIntSLE, nr, k64(g, v * c->lanes), ""));
      call(g, edge[v], args, 8);
      if_else(g, &narrow[v]);
    }
    call(g, edge[c->nv], args, 8);
    for (int v = c->nv - 1; v >= 1; v--)
      if_close(g, &narrow[v]);
  }
  if_close(g, &full);
  if_close(g, &in_place);
  loop_close(g, &jr, NR);
  loop_close(g, &ir, MR);
  loop_close(g, &ic, k64(g, c->mc));
  loop_close(g, &pc, kstep);
  loop_close(g, &jc, nstep);
  LLVMBuildBr(g->b, ret);

  LLVMAppendExistingBasicBlock(fn, ret);
  LLVMPositionBuilderAtEnd(g->b, ret);
  LLVMBuildRetVoid(g->b);
  return fn;
}

LLVMValueRef sm_llvm_matmul_fn(LLVMModuleRef m, LLVMTargetMachineRef tm, smelt_dtype dt) {
  return sm_llvm_matmul_fn_consts(m, tm, dt, NULL);
}

LLVMValueRef sm_llvm_matmul_fn_consts(LLVMModuleRef m, LLVMTargetMachineRef tm, smelt_dtype dt,
                                      const sm_mm_consts *consts) {
  if (dt != SMELT_F32 && dt != SMELT_F64)
    return NULL;
  mm_gen g = {0};
  g.consts = consts && consts->mask ? consts : NULL;
  snprintf(g.name, sizeof g.name, "smelt_mm_%s", dt == SMELT_F32 ? "f32" : "f64");
  LLVMValueRef fn = LLVMGetNamedFunction(m, g.name);
  if (fn)
    return fn;

  g.m = m;
  g.cx = LLVMGetModuleContext(m);
  g.i1 = LLVMInt1TypeInContext(g.cx);
  g.i64 = LLVMInt64TypeInContext(g.cx);
  g.ptr = LLVMPointerTypeInContext(g.cx, 0);
  g.vvoid = LLVMVoidTypeInContext(g.cx);
  g.el = dt == SMELT_F32 ? LLVMFloatTypeInContext(g.cx) : LLVMDoubleTypeInContext(g.cx);
  g.el_size = dt == SMELT_F32 ? 4 : 8;
  int bits, nregs;
  target_vectors(tm, &bits, &nregs);
  g.c = choose_cfg(bits, nregs, g.el_size);
  g.vec = LLVMVectorType(g.el, (unsigned)g.c.lanes);

  unsigned fma_id = LLVMLookupIntrinsicID("llvm.fma", 8);
  LLVMValueRef fma = LLVMGetIntrinsicDeclaration(m, fma_id, &g.vec, 1);

  g.b = LLVMCreateBuilderInContext(g.cx);
  LLVMValueRef kernel = emit_kernel(&g, fma, g.c.nv, false, false), edge[8], direct[8];
  for (int v = 1; v <= g.c.nv; v++) {
    edge[v] = emit_kernel(&g, fma, v, true, false);
    direct[v] = emit_kernel(&g, fma, v, true, true);
  }
  LLVMValueRef pack_a = emit_pack_a(&g);
  LLVMValueRef pack_b = emit_pack_b(&g);
  fn = emit_driver(&g, kernel, edge, direct, pack_a, pack_b);
  LLVMDisposeBuilder(g.b);
  return fn;
}
