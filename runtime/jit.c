/* Machine code for a program's kernels: emit LLVM IR (codegen/llvm.c),
 * verify, optimize, emit an object in memory, keep it in the disk cache,
 * and link it with ORC LLJIT. See docs/cpu-backend.md. */
#include "jit.h"

#include "../codegen/llvm.h"
#include "disk_cache.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <stdio.h>
#include <string.h>

#ifndef SMELT_LLVM_VERSION
#define SMELT_LLVM_VERSION "unknown"
#endif
#define SM_STR_(x) #x
#define SM_STR(x) SM_STR_(x)
#define SM_SMELT_VERSION                                                                  \
  SM_STR(SMELT_VERSION_MAJOR) "." SM_STR(SMELT_VERSION_MINOR) "." SM_STR(SMELT_VERSION_PATCH)
/* Bumped whenever the code this backend emits for the same kernel IR
 * changes, so that caches of older builds of one version are not reused
 * (2: keys and entries of runtime/disk_cache.c; 3: the matmul loops are
 * not unrolled). */
#define SM_CODEGEN_REVISION 3

struct sm_jit {
  LLVMOrcLLJITRef lljit;
  size_t n;
  char (*names)[32];
  sm_kernel_fn *fns;
  bool from_cache;
};

/* "what: LLVM's message", consuming the error. */
static char *llvm_err(const char *what, LLVMErrorRef e) {
  char *msg = LLVMGetErrorMessage(e);
  char *s = sm_fmt("%s: %s", what, msg);
  LLVMDisposeErrorMessage(msg);
  return s;
}

/* ---------------------------------------------------------- the cache */

/* Entries are DIR/<key>.o (runtime/disk_cache.c), this magic. */
#define CACHE_MAGIC "SMELTOBJ"

/* The cache key as 32 hex digits: the printed kernels, the target, the
 * versions and the options. -1 when out of memory. */
static int cache_key(sm_kernel *const *kernels, size_t n, LLVMTargetMachineRef tm, int opt_level,
                     bool reassociate, char hex[33]) {
  sm_hasher h;
  sm_hasher_init(&h);
  char line[128];
  snprintf(line, sizeof line, "smelt-cpu-object %d", SM_CODEGEN_REVISION);
  sm_hasher_str(&h, line);
  sm_hasher_str(&h, SM_SMELT_VERSION);
  sm_hasher_str(&h, SMELT_LLVM_VERSION);
  char *triple = LLVMGetTargetMachineTriple(tm);
  char *cpu = LLVMGetTargetMachineCPU(tm);
  char *feat = LLVMGetTargetMachineFeatureString(tm);
  sm_hasher_str(&h, triple);
  sm_hasher_str(&h, cpu);
  sm_hasher_str(&h, feat);
  LLVMDisposeMessage(triple);
  LLVMDisposeMessage(cpu);
  LLVMDisposeMessage(feat);
  snprintf(line, sizeof line, "O%d reassociate=%d matmul=%s", opt_level, reassociate,
           sm_llvm_use_blocked_matmul() ? "blocked" : "generic");
  sm_hasher_str(&h, line);
  for (size_t i = 0; i < n; i++) {
    char *text = sm_kernel_print(kernels[i]);
    if (!text) return -1;
    sm_hasher_str(&h, text);
    sm_free(text);
  }
  sm_hasher_hex(&h, hex);
  return 0;
}

/* --------------------------------------------------------- compilation */

/* Kernels to an object file in memory. NULL with *err set. */
static LLVMMemoryBufferRef compile_object(sm_kernel *const *kernels, size_t n,
                                          LLVMTargetMachineRef tm, int opt_level,
                                          sm_dump *dump, char **err) {
  LLVMContextRef cx = LLVMContextCreate();
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("smelt", cx);
  LLVMMemoryBufferRef buf = NULL;
  char *msg = NULL;
  if (sm_llvm_emit(m, tm, kernels, n, err)) goto out;
  sm_llvm_dump_module(dump, "before", m);
  if (LLVMVerifyModule(m, LLVMReturnStatusAction, &msg)) {
    *err = sm_fmt("LLVM IR of the kernels is invalid (a backend bug): %s", msg);
    goto out;
  }
  if (sm_llvm_optimize(m, tm, opt_level, err)) goto out;
  sm_llvm_dump_module(dump, "after", m);
  sm_llvm_dump_asm(dump, tm, m);
  if (msg) LLVMDisposeMessage(msg);
  msg = NULL;
  if (LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMObjectFile, &msg, &buf)) {
    *err = sm_fmt("LLVM object emission: %s", msg ? msg : "failed");
    buf = NULL;
  }
out:
  if (msg) LLVMDisposeMessage(msg);
  LLVMDisposeModule(m);
  LLVMContextDispose(cx);
  return buf;
}

/* Links the object (taking it) and looks the kernels up. */
static int link_object(sm_jit *j, sm_kernel *const *kernels, size_t n, LLVMMemoryBufferRef obj,
                       char **err) {
  LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
  LLVMErrorRef e = LLVMOrcCreateLLJIT(&j->lljit, builder); /* takes builder */
  if (e) {
    j->lljit = NULL;
    LLVMDisposeMemoryBuffer(obj);
    *err = llvm_err("LLVM JIT", e);
    return -1;
  }
  /* symbols of the process (libm's log, cos, ...) resolve for the object */
  LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(j->lljit);
  LLVMOrcDefinitionGeneratorRef gen = NULL;
  e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
      &gen, LLVMOrcLLJITGetGlobalPrefix(j->lljit), NULL, NULL);
  if (e) {
    LLVMDisposeMemoryBuffer(obj);
    *err = llvm_err("LLVM JIT process symbols", e);
    return -1;
  }
  LLVMOrcJITDylibAddGenerator(jd, gen);
  e = LLVMOrcLLJITAddObjectFile(j->lljit, jd, obj); /* takes obj */
  if (e) {
    *err = llvm_err("LLVM JIT adding the object", e);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    LLVMOrcExecutorAddress addr = 0;
    e = LLVMOrcLLJITLookup(j->lljit, &addr, kernels[i]->name);
    if (e) {
      char what[64];
      snprintf(what, sizeof what, "LLVM JIT lookup of %s", kernels[i]->name);
      *err = llvm_err(what, e);
      return -1;
    }
    snprintf(j->names[i], sizeof j->names[i], "%s", kernels[i]->name);
    j->fns[i] = (sm_kernel_fn)(uintptr_t)addr;
  }
  return 0;
}

sm_jit *sm_jit_compile(sm_kernel *const *kernels, size_t n, const smelt_compile_options *o,
                       sm_dump *dump, char **err) {
  *err = NULL;
  int opt_level = o ? o->opt_level : 3;
  bool reassociate = o && o->reassociate;
  const char *cache_dir = o && o->cache_dir && *o->cache_dir ? o->cache_dir : NULL;
  sm_jit *j = sm_calloc(1, sizeof *j);
  if (!j) return *err = sm_strdup("out of memory"), NULL;
  j->n = n;
  j->names = sm_calloc(n ? n : 1, sizeof *j->names);
  j->fns = sm_calloc(n ? n : 1, sizeof *j->fns);
  if (!j->names || !j->fns) {
    sm_jit_free(j);
    return *err = sm_strdup("out of memory"), NULL;
  }
  LLVMTargetMachineRef tm = sm_llvm_target_machine(NULL, NULL, NULL, opt_level, err);
  if (!tm) {
    sm_jit_free(j);
    return NULL;
  }
  char hex[33] = {0};
  bool keyed = cache_dir && !cache_key(kernels, n, tm, opt_level, reassociate, hex);
  LLVMMemoryBufferRef obj = NULL;
  /* dumps of IR and assembly need a compilation: they skip the lookup */
  if (keyed && !sm_dump_wants(dump, SM_DUMP_LLVM) && !sm_dump_wants(dump, SM_DUMP_ASM)) {
    size_t len = 0;
    unsigned char *data = sm_cache_read(cache_dir, hex, "o", CACHE_MAGIC, &len);
    if (data) {
      obj = LLVMCreateMemoryBufferWithMemoryRangeCopy((const char *)data, len, "smelt-cached.o");
      sm_free(data);
      j->from_cache = obj != NULL;
    }
  }
  if (!obj) {
    obj = compile_object(kernels, n, tm, opt_level, dump, err);
    if (obj && keyed)
      sm_cache_write(cache_dir, hex, "o", CACHE_MAGIC, LLVMGetBufferStart(obj),
                     LLVMGetBufferSize(obj));
  }
  LLVMDisposeTargetMachine(tm);
  if (!obj || link_object(j, kernels, n, obj, err)) {
    sm_jit_free(j);
    return NULL;
  }
  return j;
}

sm_kernel_fn sm_jit_lookup(sm_jit *j, const char *name) {
  if (!j || !name) return NULL;
  for (size_t i = 0; i < j->n; i++)
    if (strcmp(j->names[i], name) == 0) return j->fns[i];
  return NULL;
}

bool sm_jit_from_cache(const sm_jit *j) { return j && j->from_cache; }

void sm_jit_free(sm_jit *j) {
  if (!j) return;
  if (j->lljit) {
    LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->lljit);
    if (e) LLVMConsumeError(e);
  }
  sm_free(j->names);
  sm_free(j->fns);
  sm_free(j);
}
