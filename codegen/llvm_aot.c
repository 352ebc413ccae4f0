/* The object of an ahead-of-time model: the kernels of every program
 * (codegen/llvm.c), their constant buffers, and one driver per program.
 *
 * A driver is what runtime/cpu.c does for one run, written out as code:
 *   int PREFIX_NAME(PREFIX_ctx *ctx, const T *input..., T *output...)
 * It checks its pointers, takes the run's draw number from ctx->step,
 * points each kernel's args at the caller's inputs and outputs, the param
 * storage, the arena or the constants, launches the kernels in order
 * (through ctx->parallel_for when the caller gives one), copies the roots
 * no kernel wrote, and finally writes the updates into the params. The
 * layout of PREFIX_ctx here and in the header (src/aot_header.c) is the
 * same struct; field order matters. */
#include "llvm_aot.h"

#include "llvm.h"
#include "llvm_targets.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <stdint.h>
#include <string.h>

/* PREFIX_ctx fields */
enum { CTX_PARAMS, CTX_ARENA, CTX_STEP, CTX_PARALLEL_FOR, CTX_POOL, CTX_ERROR, CTX_BAD_INDEX,
       CTX_BAD_BOUND, CTX_NFIELDS };
/* sm_kctx fields (codegen/kernel.h) */
enum { KC_STEP, KC_TRAINING, KC_ERROR, KC_BAD_INDEX, KC_BAD_BOUND, KC_NFIELDS };
/* a launch handed to parallel_for: {kernel, args, kctx} */
enum { TASK_FN, TASK_ARGS, TASK_KCTX, TASK_NFIELDS };

typedef struct drv {
  LLVMContextRef cx;
  LLVMModuleRef m;
  LLVMBuilderRef b;
  LLVMTypeRef t_ptr, t_i64, t_i32, t_i8, t_void;
  LLVMTypeRef t_ctx, t_kctx, t_task, t_kfn, t_taskfn, t_pfor;
  LLVMValueRef task_fn; /* void PREFIX.task(ptr task, i64 begin, i64 end) */
  const sm_aot_model *md;
  /* the driver being emitted */
  const sm_aot_program *pr;
  size_t pi;
  LLVMValueRef fn, ctx, params, arena, kctx, args, task;
  LLVMValueRef *in_ptr;   /* per model input: its parameter, or NULL */
  LLVMValueRef *consts;   /* per node of the plan's graph: its constant */
  bool oom;               /* a message could not be made: emission fails */
} drv;

static LLVMValueRef ci64(drv *d, int64_t v) { return LLVMConstInt(d->t_i64, (uint64_t)v, 1); }
static LLVMValueRef ci32(drv *d, int32_t v) { return LLVMConstInt(d->t_i32, (uint64_t)v, 1); }

static LLVMValueRef field_ptr(drv *d, LLVMTypeRef t, LLVMValueRef base, unsigned i) {
  return LLVMBuildStructGEP2(d->b, t, base, i, "");
}
static LLVMValueRef ctx_load(drv *d, unsigned i, LLVMTypeRef t) {
  return LLVMBuildLoad2(d->b, t, field_ptr(d, d->t_ctx, d->ctx, i), "");
}
static void ctx_store(drv *d, unsigned i, LLVMValueRef v) {
  LLVMBuildStore(d->b, v, field_ptr(d, d->t_ctx, d->ctx, i));
}
static LLVMValueRef byte_ptr(drv *d, LLVMValueRef base, size_t off) {
  if (!off) return base;
  return LLVMBuildGEP2(d->b, d->t_i8, base, (LLVMValueRef[]){ci64(d, (int64_t)off)}, 1, "");
}

static void add_attr(drv *d, LLVMValueRef fn, LLVMAttributeIndex idx, const char *name) {
  unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
  LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(d->cx, kind, 0));
}

static void init_types(drv *d) {
  LLVMContextRef cx = d->cx;
  d->t_ptr = LLVMPointerTypeInContext(cx, 0);
  d->t_i64 = LLVMInt64TypeInContext(cx);
  d->t_i32 = LLVMInt32TypeInContext(cx);
  d->t_i8 = LLVMInt8TypeInContext(cx);
  d->t_void = LLVMVoidTypeInContext(cx);
  LLVMTypeRef ctx[CTX_NFIELDS] = {d->t_ptr, d->t_ptr, d->t_i64, d->t_ptr,
                                  d->t_ptr, d->t_ptr, d->t_i64, d->t_i64};
  d->t_ctx = LLVMStructTypeInContext(cx, ctx, CTX_NFIELDS, 0);
  LLVMTypeRef kc[KC_NFIELDS] = {d->t_i64, d->t_i32, d->t_i32, d->t_i64, d->t_i64};
  d->t_kctx = LLVMStructTypeInContext(cx, kc, KC_NFIELDS, 0);
  LLVMTypeRef task[TASK_NFIELDS] = {d->t_ptr, d->t_ptr, d->t_ptr};
  d->t_task = LLVMStructTypeInContext(cx, task, TASK_NFIELDS, 0);
  LLVMTypeRef kp[4] = {d->t_ptr, d->t_i64, d->t_i64, d->t_ptr};
  d->t_kfn = LLVMFunctionType(d->t_void, kp, 4, 0);
  LLVMTypeRef tp[3] = {d->t_ptr, d->t_i64, d->t_i64};
  d->t_taskfn = LLVMFunctionType(d->t_void, tp, 3, 0);
  LLVMTypeRef pp[5] = {d->t_ptr, d->t_i64, d->t_i64, d->t_ptr, d->t_ptr};
  d->t_pfor = LLVMFunctionType(d->t_void, pp, 5, 0);
}

/* void PREFIX.task(ptr task, i64 begin, i64 end): runs one piece of a
 * launch that the caller's parallel_for split. */
static void emit_task_fn(drv *d) {
  char name[128];
  snprintf(name, sizeof name, "%s.task", d->md->prefix);
  LLVMValueRef f = d->task_fn = LLVMAddFunction(d->m, name, d->t_taskfn);
  LLVMSetLinkage(f, LLVMInternalLinkage);
  add_attr(d, f, LLVMAttributeFunctionIndex, "nounwind");
  LLVMPositionBuilderAtEnd(d->b, LLVMAppendBasicBlockInContext(d->cx, f, "entry"));
  LLVMValueRef t = LLVMGetParam(f, 0);
  LLVMValueRef kfn = LLVMBuildLoad2(d->b, d->t_ptr, field_ptr(d, d->t_task, t, TASK_FN), "");
  LLVMValueRef args[4] = {
      LLVMBuildLoad2(d->b, d->t_ptr, field_ptr(d, d->t_task, t, TASK_ARGS), ""),
      LLVMGetParam(f, 1), LLVMGetParam(f, 2),
      LLVMBuildLoad2(d->b, d->t_ptr, field_ptr(d, d->t_task, t, TASK_KCTX), "")};
  LLVMBuildCall2(d->b, d->t_kfn, kfn, args, 4, "");
  LLVMBuildRetVoid(d->b);
}

/* A private constant string; its address. */
static LLVMValueRef cstring(drv *d, const char *s) {
  LLVMValueRef init = LLVMConstStringInContext(d->cx, s, (unsigned)strlen(s), 0);
  LLVMValueRef gv = LLVMAddGlobal(d->m, LLVMTypeOf(init), "smelt.msg");
  LLVMSetInitializer(gv, init);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
  return gv;
}

/* Records msg in ctx->error and returns 1 from the driver. */
static void fail_with(drv *d, const char *msg) {
  ctx_store(d, CTX_ERROR, cstring(d, msg));
  LLVMBuildRet(d->b, ci32(d, 1));
}

/* Continues in a new block when cond holds; otherwise fails with msg. */
static void check_or_fail(drv *d, LLVMValueRef ok, const char *msg) {
  LLVMBasicBlockRef pass = LLVMAppendBasicBlockInContext(d->cx, d->fn, "ok");
  LLVMBasicBlockRef fail = LLVMAppendBasicBlockInContext(d->cx, d->fn, "fail");
  LLVMBuildCondBr(d->b, ok, pass, fail);
  LLVMPositionBuilderAtEnd(d->b, fail);
  fail_with(d, msg);
  LLVMPositionBuilderAtEnd(d->b, pass);
}

static LLVMValueRef not_null(drv *d, LLVMValueRef p) {
  return LLVMBuildIsNotNull(d->b, p, "");
}

/* The constant buffer of node n of the plan's graph. */
static LLVMValueRef const_buffer(drv *d, uint32_t n) {
  if (d->consts[n]) return d->consts[n];
  const sm_node *x = &d->pr->plan->opt->nodes[n];
  size_t nb = sm_plan_node_bytes(x);
  LLVMValueRef init = LLVMConstStringInContext(d->cx, (const char *)x->data, (unsigned)nb, 1);
  LLVMValueRef gv = LLVMAddGlobal(d->m, LLVMTypeOf(init), "smelt.const");
  LLVMSetInitializer(gv, init);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  LLVMSetAlignment(gv, SM_AOT_ALIGN);
  return d->consts[n] = gv;
}

static size_t param_offset(const drv *d, uint32_t node) {
  for (size_t i = 0; i < d->md->nparams; i++)
    if (d->md->params[i].node == node) return d->md->params[i].offset;
  return 0; /* not reached: every param of the graph is in the model */
}

/* Where root r's result goes: the caller's output, the param it
 * initializes, or its place in the arena (updates). */
static LLVMValueRef result_ptr(drv *d, size_t r) {
  const sm_aot_program *pr = d->pr;
  if (pr->init) return byte_ptr(d, d->params, d->md->params[r].offset);
  if (r < pr->noutputs) return LLVMGetParam(d->fn, (unsigned)(1 + pr->ninputs + r));
  return byte_ptr(d, d->arena, pr->plan->result_offset[r]);
}

/* The address of node n's buffer (NULL when it has none). */
static LLVMValueRef buffer_ptr(drv *d, uint32_t n) {
  const sm_buf_info *b = &d->pr->plan->bufs[n];
  switch (b->kind) {
  case SM_BUF_INPUT:
    for (size_t i = 0; i < d->md->ninputs; i++)
      if (d->md->inputs[i].node == b->orig && d->in_ptr[i]) return d->in_ptr[i];
    return LLVMConstPointerNull(d->t_ptr);
  case SM_BUF_PARAM: return byte_ptr(d, d->params, param_offset(d, b->orig));
  case SM_BUF_CONST: return const_buffer(d, n);
  case SM_BUF_RESULT: return result_ptr(d, b->root);
  case SM_BUF_ARENA: return byte_ptr(d, d->arena, b->offset);
  case SM_BUF_NONE: break;
  }
  return LLVMConstPointerNull(d->t_ptr);
}

static bool has_checks(const sm_kernel *k) {
  for (int v = 0; v < k->nvals; v++)
    if (k->vals[v].kind == KV_CHECK) return true;
  return false;
}

/* One kernel launch: its args, the call (split by parallel_for when the
 * caller gave one and the range is worth it), its index check. */
static void emit_launch(drv *d, size_t s) {
  const sm_plan *p = d->pr->plan;
  const sm_plan_kernel *pk = &p->kernels[s];
  const sm_kernel *k = pk->k;
  LLVMValueRef kfn = LLVMGetNamedFunction(d->m, k->name);
  for (int a = 0; a < k->nargs; a++) {
    const sm_karg *arg = &k->args[a];
    LLVMValueRef v = arg->role == KA_SCRATCH ? byte_ptr(d, d->arena, pk->scratch_off[a])
                                             : buffer_ptr(d, arg->node);
    LLVMValueRef slot =
        LLVMBuildGEP2(d->b, d->t_ptr, d->args, (LLVMValueRef[]){ci64(d, a)}, 1, "");
    LLVMBuildStore(d->b, v, slot);
  }
  if (k->par_axis < 0) {
    LLVMBuildCall2(d->b, d->t_kfn, kfn, (LLVMValueRef[]){d->args, ci64(d, 0), ci64(d, 1), d->kctx},
                   4, "");
  } else {
    int64_t ext = k->extent[k->par_axis];
    if (ext == 0) return;
    /* pieces of at least grain indices that start at multiples of align */
    int64_t grain = (pk->grain + pk->align - 1) / pk->align * pk->align;
    LLVMBasicBlockRef seq = LLVMAppendBasicBlockInContext(d->cx, d->fn, "seq");
    LLVMBasicBlockRef par = LLVMAppendBasicBlockInContext(d->cx, d->fn, "par");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(d->cx, d->fn, "next");
    LLVMValueRef pfor = ctx_load(d, CTX_PARALLEL_FOR, d->t_ptr);
    LLVMValueRef split = ext > grain ? not_null(d, pfor) : LLVMConstInt(LLVMInt1TypeInContext(d->cx), 0, 0);
    LLVMBuildCondBr(d->b, split, par, seq);
    LLVMPositionBuilderAtEnd(d->b, par);
    LLVMBuildStore(d->b, kfn, field_ptr(d, d->t_task, d->task, TASK_FN));
    LLVMBuildStore(d->b, d->args, field_ptr(d, d->t_task, d->task, TASK_ARGS));
    LLVMBuildStore(d->b, d->kctx, field_ptr(d, d->t_task, d->task, TASK_KCTX));
    LLVMValueRef pargs[5] = {ctx_load(d, CTX_POOL, d->t_ptr), ci64(d, ext), ci64(d, grain),
                             d->task_fn, d->task};
    LLVMBuildCall2(d->b, d->t_pfor, pfor, pargs, 5, "");
    LLVMBuildBr(d->b, next);
    LLVMPositionBuilderAtEnd(d->b, seq);
    LLVMBuildCall2(d->b, d->t_kfn, kfn,
                   (LLVMValueRef[]){d->args, ci64(d, 0), ci64(d, ext), d->kctx}, 4, "");
    LLVMBuildBr(d->b, next);
    LLVMPositionBuilderAtEnd(d->b, next);
  }
  if (!has_checks(k)) return;
  LLVMValueRef e = LLVMBuildLoad2(d->b, d->t_i32, field_ptr(d, d->t_kctx, d->kctx, KC_ERROR), "");
  LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(d->cx, d->fn, "ok");
  LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(d->cx, d->fn, "index_error");
  LLVMBuildCondBr(d->b, LLVMBuildICmp(d->b, LLVMIntEQ, e, ci32(d, 0), ""), ok, bad);
  LLVMPositionBuilderAtEnd(d->b, bad);
  for (unsigned f = 0; f < 2; f++) {
    LLVMValueRef v = LLVMBuildLoad2(d->b, d->t_i64,
                                    field_ptr(d, d->t_kctx, d->kctx, KC_BAD_INDEX + f), "");
    ctx_store(d, CTX_BAD_INDEX + f, v);
  }
  char *msg = sm_fmt("%s: %s: an index is out of range (kernel %s; see bad_index and bad_bound)",
                     d->pr->name, sm_plan_check_op(p, s), k->name);
  if (!msg) d->oom = true; /* not an object with a vaguer message */
  fail_with(d, msg ? msg : "an index is out of range");
  sm_free(msg);
  LLVMPositionBuilderAtEnd(d->b, ok);
}

/* Roots that no kernel wrote (inputs, params, constants, a value another
 * root received) are copied, as sm_cpu_run does; then the updates land in
 * the params, all at once. */
static void emit_epilogue(drv *d) {
  const sm_aot_program *pr = d->pr;
  const sm_plan *p = pr->plan;
  for (size_t r = 0; r < p->nroots; r++) {
    uint32_t n = p->roots[r];
    const sm_buf_info *b = &p->bufs[n];
    size_t nb = sm_plan_node_bytes(&p->opt->nodes[n]);
    if (!nb || b->kind == SM_BUF_NONE || (b->kind == SM_BUF_RESULT && b->root == r)) continue;
    LLVMBuildMemCpy(d->b, result_ptr(d, r), 1, buffer_ptr(d, n), 1, ci64(d, (int64_t)nb));
  }
  for (size_t u = 0; u < pr->nupdates; u++) {
    const sm_aot_tensor *t = &d->md->params[pr->updates[u]];
    if (!t->bytes) continue;
    LLVMBuildMemCpy(d->b, byte_ptr(d, d->params, t->offset), SM_AOT_ALIGN,
                    result_ptr(d, pr->noutputs + u), SM_AOT_ALIGN, ci64(d, (int64_t)t->bytes));
  }
}

static int emit_driver(drv *d, size_t pi) {
  const sm_aot_model *md = d->md;
  const sm_aot_program *pr = d->pr = &md->programs[pi];
  const sm_plan *p = pr->plan;
  d->pi = pi;
  unsigned np = (unsigned)(1 + pr->ninputs + pr->noutputs);
  LLVMTypeRef *ps = sm_malloc(sizeof *ps * np);
  d->in_ptr = sm_calloc(md->ninputs ? md->ninputs : 1, sizeof *d->in_ptr);
  d->consts = sm_calloc(p->opt->nnodes ? p->opt->nnodes : 1, sizeof *d->consts);
  if (!ps || !d->in_ptr || !d->consts) {
    sm_free(ps);
    return -1;
  }
  for (unsigned i = 0; i < np; i++) ps[i] = d->t_ptr;
  char name[256];
  snprintf(name, sizeof name, "%s_%s", md->prefix, pr->cname);
  d->fn = LLVMAddFunction(d->m, name, LLVMFunctionType(d->t_i32, ps, np, 0));
  sm_free(ps);
  add_attr(d, d->fn, LLVMAttributeFunctionIndex, "nounwind");
  d->ctx = LLVMGetParam(d->fn, 0);
  for (size_t i = 0; i < pr->ninputs; i++) d->in_ptr[pr->inputs[i]] = LLVMGetParam(d->fn, (unsigned)(1 + i));

  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(d->cx, d->fn, "entry");
  LLVMPositionBuilderAtEnd(d->b, entry);
  int maxargs = 1;
  for (size_t s = 0; s < p->nkernels; s++)
    if (p->kernels[s].k->nargs > maxargs) maxargs = p->kernels[s].k->nargs;
  d->args = LLVMBuildArrayAlloca(d->b, d->t_ptr, ci64(d, maxargs), "args");
  d->kctx = LLVMBuildAlloca(d->b, d->t_kctx, "kctx");
  d->task = LLVMBuildAlloca(d->b, d->t_task, "task");

  /* a NULL ctx cannot even hold the message */
  LLVMBasicBlockRef has_ctx = LLVMAppendBasicBlockInContext(d->cx, d->fn, "has_ctx");
  LLVMBasicBlockRef no_ctx = LLVMAppendBasicBlockInContext(d->cx, d->fn, "no_ctx");
  LLVMBuildCondBr(d->b, not_null(d, d->ctx), has_ctx, no_ctx);
  LLVMPositionBuilderAtEnd(d->b, no_ctx);
  LLVMBuildRet(d->b, ci32(d, -1));
  LLVMPositionBuilderAtEnd(d->b, has_ctx);
  ctx_store(d, CTX_ERROR, LLVMConstPointerNull(d->t_ptr));
  d->params = ctx_load(d, CTX_PARAMS, d->t_ptr);
  d->arena = ctx_load(d, CTX_ARENA, d->t_ptr);
  char *msg = NULL;
  if (md->nparams) {
    msg = sm_fmt("%s: ctx->params is NULL (%zu bytes needed)", pr->name, md->params_bytes);
    if (!msg) return -1;
    check_or_fail(d, not_null(d, d->params), msg);
    sm_free(msg);
  }
  if (p->arena_bytes) {
    msg = sm_fmt("%s: ctx->arena is NULL (%zu bytes needed)", pr->name, md->arena_bytes);
    if (!msg) return -1;
    check_or_fail(d, not_null(d, d->arena), msg);
    sm_free(msg);
  }
  for (size_t i = 0; i < pr->ninputs + pr->noutputs; i++) {
    bool in = i < pr->ninputs;
    const sm_aot_tensor *t = in ? &md->inputs[pr->inputs[i]] : &md->outputs[pr->outputs[i - pr->ninputs]];
    if (!t->bytes) continue;
    msg = sm_fmt("%s: %s \"%s\" is NULL", pr->name, in ? "input" : "output", t->name);
    if (!msg) return -1;
    check_or_fail(d, not_null(d, LLVMGetParam(d->fn, (unsigned)(1 + i))), msg);
    sm_free(msg);
  }
  /* The run's draw number: ctx->step, then one more (the initializer
   * draws number 0, as smelt_params_new, and counts no run). */
  LLVMValueRef step = ci64(d, 0);
  if (!pr->init) {
    step = ctx_load(d, CTX_STEP, d->t_i64);
    ctx_store(d, CTX_STEP, LLVMBuildAdd(d->b, step, ci64(d, 1), ""));
  }
  LLVMValueRef kc[KC_NFIELDS] = {step, ci32(d, pr->eval || pr->init ? 0 : 1), ci32(d, 0), ci64(d, 0),
                                 ci64(d, 0)};
  for (unsigned f = 0; f < KC_NFIELDS; f++)
    LLVMBuildStore(d->b, kc[f], field_ptr(d, d->t_kctx, d->kctx, f));
  for (size_t s = 0; s < p->nkernels; s++) emit_launch(d, s);
  if (d->oom) return -1;
  emit_epilogue(d);
  LLVMBuildRet(d->b, ci32(d, 0));
  sm_free(d->in_ptr);
  sm_free(d->consts);
  d->in_ptr = NULL;
  d->consts = NULL;
  return 0;
}

/* Everything but the drivers gets internal linkage: two models' objects
 * (or a model and smelt itself) link into one program. */
static void internalize(drv *d) {
  for (LLVMValueRef f = LLVMGetFirstFunction(d->m); f; f = LLVMGetNextFunction(f)) {
    if (LLVMIsDeclaration(f)) continue;
    size_t len = 0;
    const char *name = LLVMGetValueName2(f, &len);
    bool driver = false;
    for (size_t i = 0; i < d->md->nprograms && !driver; i++) {
      char want[256];
      snprintf(want, sizeof want, "%s_%s", d->md->prefix, d->md->programs[i].cname);
      driver = strlen(want) == len && memcmp(want, name, len) == 0;
    }
    if (!driver) LLVMSetLinkage(f, LLVMInternalLinkage);
  }
  for (LLVMValueRef g = LLVMGetFirstGlobal(d->m); g; g = LLVMGetNextGlobal(g))
    if (!LLVMIsDeclaration(g)) LLVMSetLinkage(g, LLVMPrivateLinkage);
}

/* Objects assume 64-bit pointers (the ctx layout of the header) and
 * little-endian data (safetensors). */
static int check_target(LLVMTargetMachineRef tm, char **err) {
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  unsigned ptr = LLVMPointerSize(td);
  enum LLVMByteOrdering order = LLVMByteOrder(td);
  LLVMDisposeTargetData(td);
  char *triple = LLVMGetTargetMachineTriple(tm);
  if (ptr != 8 || order != LLVMLittleEndian)
    *err = sm_fmt("target %s: ahead-of-time objects need a 64-bit little-endian target "
                  "(x86-64 or AArch64)", triple);
  LLVMDisposeMessage(triple);
  return *err ? -1 : 0;
}

static bool listed(const char *const *list, const char *name, size_t len) {
  for (; *list; list++)
    if (strlen(*list) == len && strncmp(*list, name, len) == 0) return true;
  return false;
}

/* Checks the triple's architecture and the CPU and feature names against
 * what LLVM knows (codegen/llvm_targets.c): LLVM itself only warns on
 * stderr, or aborts. */
static int check_names(const smelt_aot_options *o, char **err) {
  char *host = o->triple ? NULL : LLVMGetDefaultTargetTriple();
  const char *triple = o->triple ? o->triple : host;
  const sm_llvm_target_names *t = NULL;
  if (strncmp(triple, "x86_64", 6) == 0 || strncmp(triple, "amd64", 5) == 0)
    t = &sm_llvm_targets[0];
  else if (strncmp(triple, "aarch64", 7) == 0 || strncmp(triple, "arm64", 5) == 0)
    t = &sm_llvm_targets[1];
  if (!t)
    *err = sm_fmt("target %s: ahead-of-time objects are made for x86-64 and AArch64 "
                  "(triples x86_64-... and aarch64-...)", triple);
  else if (o->cpu && strcmp(o->cpu, "generic") != 0 && !listed(t->cpus, o->cpu, strlen(o->cpu)))
    *err = sm_fmt("unknown CPU \"%s\" for %s (llc-19 -mtriple=%s -mcpu=help lists the CPUs "
                  "LLVM knows)", o->cpu, t->arch, t->arch);
  for (const char *f = o->features; !*err && f && *f;) {
    size_t len = strcspn(f, ",");
    if ((f[0] != '+' && f[0] != '-') || !listed(t->features, f + 1, len - 1))
      *err = sm_fmt("unknown feature \"%.*s\" for %s (features are +name or -name, comma "
                    "separated; llc-19 -mtriple=%s -mattr=help lists them)", (int)len, f,
                    t->arch, t->arch);
    f += len + (f[len] == ',');
  }
  if (host) LLVMDisposeMessage(host);
  return *err ? -1 : 0;
}

/* A target machine: the host's CPU and features for the host triple, the
 * named CPU's own features otherwise. */
static LLVMTargetMachineRef target_machine(const smelt_aot_options *o, char **target,
                                           char **err) {
  if (check_names(o, err)) return NULL;
  const char *cpu = o->cpu, *feat = o->features;
  if (o->triple && !cpu) cpu = "generic";
  if (cpu && !feat) feat = "";
  LLVMTargetMachineRef tm = sm_llvm_target_machine(o->triple, cpu, feat, o->opt_level, err);
  if (!tm) return NULL;
  if (check_target(tm, err)) {
    LLVMDisposeTargetMachine(tm);
    return NULL;
  }
  char *t = LLVMGetTargetMachineTriple(tm), *c = LLVMGetTargetMachineCPU(tm);
  *target = sm_fmt("%s, cpu %s%s%s", t, c, o->features && *o->features ? ", features " : "",
                   o->features ? o->features : "");
  LLVMDisposeMessage(t);
  LLVMDisposeMessage(c);
  if (!*target) { /* out of memory (*err NULL): the header would say "the host" */
    LLVMDisposeTargetMachine(tm);
    return NULL;
  }
  return tm;
}

static int emit_object(const sm_aot_model *md, LLVMTargetMachineRef tm, int opt_level,
                       const char *path, sm_dump *dump, char **err) {
  drv d = {0};
  d.md = md;
  d.cx = LLVMContextCreate();
  d.m = LLVMModuleCreateWithNameInContext(md->prefix, d.cx);
  d.b = LLVMCreateBuilderInContext(d.cx);
  init_types(&d);
  int rc = -1;
  char *msg = NULL;
  LLVMMemoryBufferRef buf = NULL;
  /* kernel names unique across programs: p<program>.<kernel> */
  for (size_t i = 0; i < md->nprograms; i++) {
    const sm_plan *p = md->programs[i].plan;
    sm_kernel **ks = sm_malloc(sizeof *ks * (p->nkernels ? p->nkernels : 1));
    if (!ks) goto out;
    for (size_t s = 0; s < p->nkernels; s++) {
      sm_kernel *k = ks[s] = p->kernels[s].k;
      char name[64];
      int len = snprintf(name, sizeof name, "p%zu.%s", i, k->name);
      if (len < 0 || (size_t)len >= sizeof k->name) {
        sm_free(ks);
        *err = sm_fmt("kernel name %s is too long", name);
        goto out;
      }
      memcpy(k->name, name, (size_t)len + 1);
    }
    int e = sm_llvm_emit(d.m, tm, ks, p->nkernels, err);
    sm_free(ks);
    if (e) goto out;
  }
  emit_task_fn(&d);
  for (size_t i = 0; i < md->nprograms; i++)
    if (emit_driver(&d, i)) goto out;
  internalize(&d);
  sm_llvm_dump_module(dump, "before", d.m);
  if (LLVMVerifyModule(d.m, LLVMReturnStatusAction, &msg)) {
    *err = sm_fmt("LLVM IR of the object is invalid (a backend bug): %s", msg);
    goto out;
  }
  if (sm_llvm_optimize(d.m, tm, opt_level, err)) goto out;
  sm_llvm_dump_module(dump, "after", d.m);
  sm_llvm_dump_asm(dump, tm, d.m);
  if (msg) LLVMDisposeMessage(msg);
  msg = NULL;
  if (LLVMTargetMachineEmitToMemoryBuffer(tm, d.m, LLVMObjectFile, &msg, &buf)) {
    *err = sm_fmt("LLVM object emission: %s", msg ? msg : "failed");
    buf = NULL;
    goto out;
  }
  rc = sm_write_file_atomic(path, LLVMGetBufferStart(buf), LLVMGetBufferSize(buf), err);
out:
  if (buf) LLVMDisposeMemoryBuffer(buf);
  if (msg) LLVMDisposeMessage(msg);
  sm_free(d.in_ptr);
  sm_free(d.consts);
  LLVMDisposeBuilder(d.b);
  LLVMDisposeModule(d.m);
  LLVMContextDispose(d.cx);
  return rc;
}

int sm_aot_object(const sm_aot_model *m, const smelt_aot_options *o, sm_dump *dump,
                  char **target, char **err) {
  *err = NULL;
  LLVMTargetMachineRef tm = target_machine(o, target, err);
  if (!tm) return -1;
  int rc = emit_object(m, tm, o->opt_level, o->object_path, dump, err);
  LLVMDisposeTargetMachine(tm);
  return rc;
}
