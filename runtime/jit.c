/* Machine code for a program's kernels. Each kernel is its own LLVM
 * module, and so is each blocked matmul function they call (one per
 * dtype, specialized for the arguments all the calls share); the modules
 * are emitted (codegen/llvm.c), verified, optimized and turned into
 * objects in memory on the runtime's thread pool, each in its own LLVM
 * context with its own target machine; each object is kept in the disk
 * cache under its own key; all are linked into one ORC LLJIT, where the
 * kernels' calls of smelt_mm_f32/f64 resolve. See docs/cpu-backend.md. */
#include "jit.h"

#include "../codegen/llvm.h"
#include "disk_cache.h"
#include "threads.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Object.h>
#include <llvm-c/Orc.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
 * not unrolled; 4: one object per kernel and per matmul dtype; 5: 512 KiB
 * packed B panels). */
#define SM_CODEGEN_REVISION 5

struct sm_jit {
  LLVMOrcLLJITRef lljit;
  size_t n;
  char (*names)[32];
  sm_kernel_fn *fns;
  size_t nmodules, ncached;
};

/* "what: LLVM's message", consuming the error. */
static char *llvm_err(const char *what, LLVMErrorRef e) {
  char *msg = LLVMGetErrorMessage(e);
  char *s = sm_fmt("%s: %s", what, msg);
  LLVMDisposeErrorMessage(msg);
  return s;
}

/* One module: a kernel, or the blocked matmul of one dtype. */
typedef struct unit {
  const sm_kernel *k; /* NULL: the matmul of dt */
  smelt_dtype dt;
  sm_mm_consts consts; /* the matmul's: arguments all its calls pass the same */
  char key[33];
  bool keyed;
  LLVMMemoryBufferRef obj;
  bool from_cache;
  char *err;                 /* why it failed (sm_malloc'ed) */
  char *before, *after, *as; /* dumps (sm_malloc'ed) */
} unit;

static const char *mm_name(smelt_dtype dt) {
  return dt == SMELT_F32 ? "smelt_mm_f32" : "smelt_mm_f64";
}

static const char *unit_name(const unit *u) { return u->k ? u->k->name : mm_name(u->dt); }

/* What every worker needs. */
typedef struct job {
  unit *units;
  size_t *todo; /* indices of the units to compile, in the order taken */
  size_t ntodo;
  atomic_size_t next;
  const char *triple, *cpu, *features;
  int opt_level;
  const char *cache_dir; /* write compiled objects here (keyed units) */
  bool dump_llvm, dump_asm;
} job;

/* ---------------------------------------------------------- the cache */

/* Entries are DIR/<key>.o (runtime/disk_cache.c), this magic. */
#define CACHE_MAGIC "SMELTOBJ"

/* The fields every key starts with: the format, the versions, the target
 * and the opt level. */
static void key_base(sm_hasher *h, const job *jb) {
  char line[64];
  sm_hasher_init(h);
  snprintf(line, sizeof line, "smelt-cpu-object %d", SM_CODEGEN_REVISION);
  sm_hasher_str(h, line);
  sm_hasher_str(h, SM_SMELT_VERSION);
  sm_hasher_str(h, SMELT_LLVM_VERSION);
  sm_hasher_str(h, jb->triple);
  sm_hasher_str(h, jb->cpu);
  sm_hasher_str(h, jb->features);
  snprintf(line, sizeof line, "O%d", jb->opt_level);
  sm_hasher_str(h, line);
}

/* The unit's key as 32 hex digits: the base, then the kernel's printed IR
 * and the options that change its code, or the matmul's dtype. False when
 * out of memory. */
static bool unit_key(unit *u, const sm_hasher *base, bool reassociate) {
  sm_hasher h = *base;
  if (!u->k) {
    sm_hasher_str(&h, "matmul");
    sm_hasher_str(&h, smelt_dtype_name(u->dt));
    char line[64];
    for (int i = 4; i <= 10; i++) {
      if (u->consts.mask >> i & 1) snprintf(line, sizeof line, "%d=%" PRId64, i, u->consts.v[i]);
      else snprintf(line, sizeof line, "%d=any", i);
      sm_hasher_str(&h, line);
    }
  } else {
    char line[64];
    snprintf(line, sizeof line, "kernel reassociate=%d matmul=%s", reassociate,
             sm_llvm_use_blocked_matmul() ? "blocked" : "generic");
    sm_hasher_str(&h, line);
    char *text = sm_kernel_print(u->k);
    if (!text) return false;
    sm_hasher_str(&h, text);
    sm_free(text);
  }
  sm_hasher_hex(&h, u->key);
  return true;
}

/* --------------------------------------------------------- compilation */

static char *llvm_text(char *msg) {
  char *s = sm_strdup(msg ? msg : "");
  if (msg) LLVMDisposeMessage(msg);
  return s;
}

/* The unit's module to an object in memory (u->obj), with its dumps; or
 * u->err. Runs on a worker thread: everything LLVM here is its own. */
static void compile_unit(unit *u, const job *jb) {
  char *err = NULL, *msg = NULL;
  LLVMTargetMachineRef tm =
      sm_llvm_target_machine(jb->triple, jb->cpu, jb->features, jb->opt_level, &err);
  if (!tm) {
    u->err = err;
    return;
  }
  LLVMContextRef cx = LLVMContextCreate();
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext(unit_name(u), cx);
  sm_kernel *k = (sm_kernel *)u->k;
  if (k ? sm_llvm_emit_split(m, tm, &k, 1, &err)
        : sm_llvm_emit_matmul(m, tm, u->dt, &u->consts, &err))
    goto out;
  if (jb->dump_llvm) u->before = llvm_text(LLVMPrintModuleToString(m));
  if (LLVMVerifyModule(m, LLVMReturnStatusAction, &msg)) {
    err = sm_fmt("LLVM IR is invalid (a backend bug): %s", msg);
    goto out;
  }
  if (k ? sm_llvm_optimize(m, tm, jb->opt_level, &err)
        : sm_llvm_optimize_matmul(m, tm, jb->opt_level, &u->consts, &err))
    goto out;
  if (jb->dump_llvm) u->after = llvm_text(LLVMPrintModuleToString(m));
  if (jb->dump_asm) u->as = sm_llvm_asm_text(tm, m);
  if (msg) LLVMDisposeMessage(msg);
  msg = NULL;
  if (LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMObjectFile, &msg, &u->obj)) {
    err = sm_fmt("LLVM object emission: %s", msg ? msg : "failed");
    u->obj = NULL;
  } else if (jb->cache_dir && u->keyed) {
    sm_cache_write(jb->cache_dir, u->key, "o", CACHE_MAGIC, LLVMGetBufferStart(u->obj),
                   LLVMGetBufferSize(u->obj));
  }
out:
  if (msg) LLVMDisposeMessage(msg);
  LLVMDisposeModule(m);
  LLVMContextDispose(cx);
  LLVMDisposeTargetMachine(tm);
  if (!u->obj) u->err = err ? err : sm_strdup("out of memory");
  else sm_free(err);
}

/* One participant of the pool: compiles the next module not taken yet
 * until none is left (so the pieces sm_parallel_for hands out only say
 * who takes part; the modules go to whoever is free). */
static void worker(void *arg, int64_t begin, int64_t end) {
  (void)begin, (void)end;
  job *jb = arg;
  for (;;) {
    size_t i = atomic_fetch_add(&jb->next, 1);
    if (i >= jb->ntodo) return;
    compile_unit(&jb->units[jb->todo[i]], jb);
  }
}

/* Compiles the job's units on up to nthreads threads of the runtime's
 * pool (runtime/threads.c), the caller's one of them; on the caller alone
 * when the pool is busy or cannot be started. */
static void run_job(job *jb, int nthreads) {
  if ((size_t)nthreads > jb->ntodo) nthreads = (int)jb->ntodo;
  sm_parallel_for(nthreads, nthreads, 1, 1, worker, jb);
}

/* The units' texts of one dump part, concatenated in unit order. */
static void dump_parts(sm_dump *dump, unsigned stage, const char *part, const unit *units,
                       size_t nu, size_t which) {
  sm_buf b = {0};
  for (size_t i = 0; i < nu; i++) {
    const char *t = which == 0 ? units[i].before : which == 1 ? units[i].after : units[i].as;
    if (!t) continue;
    sm_buf_puts(&b, t);
    size_t len = strlen(t);
    if (len && t[len - 1] != '\n') sm_buf_puts(&b, "\n");
  }
  char *text = sm_buf_take(&b);
  if (text) sm_dump_write(dump, stage, part, text);
  sm_free(text);
}

/* The unit's error, naming the kernel (or matmul) it came from. */
static char *unit_error(unit *u) {
  char *e = u->err;
  u->err = NULL;
  char prefix[64];
  if (u->k) snprintf(prefix, sizeof prefix, "kernel %s:", u->k->name);
  else snprintf(prefix, sizeof prefix, "blocked matmul %s:", mm_name(u->dt));
  if (!strncmp(e, prefix, strlen(prefix))) return e;
  char *s = sm_fmt("%s %s", prefix, e);
  if (!s) return e;
  sm_free(e);
  return s;
}

/* Links the objects (taking them) in one JITDylib and looks the kernels up. */
static int link_objects(sm_jit *j, sm_kernel *const *kernels, size_t n, unit *units, size_t nu,
                        char **err) {
  sm_llvm_init_targets(); /* there may have been nothing to compile */
  LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
  LLVMErrorRef e = LLVMOrcCreateLLJIT(&j->lljit, builder); /* takes builder */
  if (e) {
    j->lljit = NULL;
    *err = llvm_err("LLVM JIT", e);
    return -1;
  }
  /* symbols of the process (libm's log, cos, ...) resolve for the objects */
  LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(j->lljit);
  LLVMOrcDefinitionGeneratorRef gen = NULL;
  e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
      &gen, LLVMOrcLLJITGetGlobalPrefix(j->lljit), NULL, NULL);
  if (e) {
    *err = llvm_err("LLVM JIT process symbols", e);
    return -1;
  }
  LLVMOrcJITDylibAddGenerator(jd, gen);
  for (size_t i = 0; i < nu; i++) {
    LLVMMemoryBufferRef obj = units[i].obj;
    units[i].obj = NULL;
    e = LLVMOrcLLJITAddObjectFile(j->lljit, jd, obj); /* takes obj */
    if (e) {
      char what[96];
      snprintf(what, sizeof what, "LLVM JIT adding the object of %s", unit_name(&units[i]));
      *err = llvm_err(what, e);
      return -1;
    }
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

static void free_units(unit *units, size_t nu) {
  for (size_t i = 0; units && i < nu; i++) {
    if (units[i].obj) LLVMDisposeMemoryBuffer(units[i].obj);
    sm_free(units[i].err);
    sm_free(units[i].before);
    sm_free(units[i].after);
    sm_free(units[i].as);
  }
  sm_free(units);
}

sm_jit *sm_jit_compile(sm_kernel *const *kernels, size_t n, const smelt_compile_options *o,
                       sm_dump *dump, char **err) {
  *err = NULL;
  int opt_level = o ? o->opt_level : 3;
  bool reassociate = o && o->reassociate;
  const char *cache_dir = o && o->cache_dir && *o->cache_dir ? o->cache_dir : NULL;
  sm_jit *j = sm_calloc(1, sizeof *j);
  unit *units = NULL;
  size_t *todo = NULL, nu = 0;
  char *triple = NULL, *cpu = NULL, *features = NULL;
  if (!j) return *err = sm_strdup("out of memory"), NULL;
  j->n = n;
  j->names = sm_calloc(n ? n : 1, sizeof *j->names);
  j->fns = sm_calloc(n ? n : 1, sizeof *j->fns);
  /* the kernels, then a matmul per dtype they call */
  units = sm_calloc(n + 2, sizeof *units);
  todo = sm_calloc(n + 2, sizeof *todo);
  if (!j->names || !j->fns || !units || !todo) goto oom;
  /* per matmul dtype (f32, f64): whether it is called, and the arguments
   * N..ldc that all its calls agree on (what constant propagation found
   * when the function was in every kernel's module) */
  bool mm[2] = {false, false};
  sm_mm_consts mmc[2];
  memset(mmc, 0, sizeof mmc);
  for (size_t i = 0; i < n; i++) {
    for (size_t q = 0; q < i; q++)
      if (!strcmp(kernels[q]->name, kernels[i]->name)) {
        *err = sm_fmt("kernel %s: name used twice", kernels[i]->name);
        goto fail;
      }
    units[nu++].k = kernels[i];
    int64_t args[13];
    int dt = sm_llvm_kernel_matmul(kernels[i], args);
    if (dt != SMELT_F32 && dt != SMELT_F64) continue;
    int d = dt == SMELT_F64;
    if (!mm[d]) {
      mm[d] = true;
      mmc[d].mask = SM_MM_SHAPE; /* N..ldc: 4..10 */
      memcpy(mmc[d].v, args, sizeof args);
    }
    for (int a = 4; a <= 10; a++)
      if (mmc[d].v[a] != args[a]) mmc[d].mask &= ~(1u << a);
  }
  for (int d = 0; d < 2; d++)
    if (mm[d]) {
      units[nu].dt = d ? SMELT_F64 : SMELT_F32;
      units[nu++].consts = mmc[d];
    }
  j->nmodules = nu;

  /* the host, as sm_llvm_target_machine would take it */
  triple = LLVMGetDefaultTargetTriple();
  cpu = LLVMGetHostCPUName();
  features = LLVMGetHostCPUFeatures();
  job jb = {.units = units,
            .todo = todo,
            .triple = triple,
            .cpu = cpu,
            .features = features,
            .opt_level = opt_level,
            .cache_dir = cache_dir,
            .dump_llvm = sm_dump_wants(dump, SM_DUMP_LLVM),
            .dump_asm = sm_dump_wants(dump, SM_DUMP_ASM)};
  atomic_init(&jb.next, 0);
  if (cache_dir) {
    sm_hasher base;
    key_base(&base, &jb);
    for (size_t i = 0; i < nu; i++) units[i].keyed = unit_key(&units[i], &base, reassociate);
  }
  /* dumps of IR and assembly need a compilation: they skip the lookup */
  bool read_cache = cache_dir && !jb.dump_llvm && !jb.dump_asm;
  for (size_t i = 0; i < nu; i++) {
    unit *u = &units[i];
    if (!read_cache || !u->keyed) continue;
    size_t len = 0;
    unsigned char *data = sm_cache_read(cache_dir, u->key, "o", CACHE_MAGIC, &len);
    if (!data) continue;
    u->obj = LLVMCreateMemoryBufferWithMemoryRangeCopy((const char *)data, len, "smelt-cached.o");
    sm_free(data);
    /* an entry whose checks pass but that holds no object file (forged:
     * the hash is no defence) is a miss too, not an error of the JIT */
    char *why = NULL;
    LLVMBinaryRef bin = u->obj ? LLVMCreateBinary(u->obj, NULL, &why) : NULL;
    if (bin) {
      LLVMDisposeBinary(bin);
    } else if (u->obj) {
      LLVMDisposeMemoryBuffer(u->obj);
      u->obj = NULL;
    }
    if (why) LLVMDisposeMessage(why);
    u->from_cache = u->obj != NULL;
    j->ncached += u->from_cache;
  }
  /* the matmuls first: they take longest */
  for (size_t i = nu; i-- > n;)
    if (!units[i].obj) todo[jb.ntodo++] = i;
  for (size_t i = 0; i < n; i++)
    if (!units[i].obj) todo[jb.ntodo++] = i;
  if (jb.ntodo) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int nthreads = o && o->num_threads > 0 ? o->num_threads : sm_default_threads();
    if (cores >= 1 && nthreads > cores) nthreads = (int)cores;
    run_job(&jb, nthreads < 1 ? 1 : nthreads);
  }
  /* what the modules got to, also when one failed (IR that does not
   * verify is dumped before the error) */
  if (jb.dump_llvm) {
    dump_parts(dump, SM_DUMP_LLVM, "before", units, nu, 0);
    dump_parts(dump, SM_DUMP_LLVM, "after", units, nu, 1);
  }
  if (jb.dump_asm) dump_parts(dump, SM_DUMP_ASM, NULL, units, nu, 2);
  /* the first failure in the modules' order, whatever the threads did */
  for (size_t i = 0; i < nu; i++)
    if (!units[i].obj) {
      if (!units[i].err) goto oom;
      *err = unit_error(&units[i]);
      goto fail;
    }
  if (link_objects(j, kernels, n, units, nu, err)) goto fail;
  LLVMDisposeMessage(triple);
  LLVMDisposeMessage(cpu);
  LLVMDisposeMessage(features);
  free_units(units, nu);
  sm_free(todo);
  return j;
oom:
  *err = sm_strdup("out of memory");
fail:
  if (triple) LLVMDisposeMessage(triple);
  if (cpu) LLVMDisposeMessage(cpu);
  if (features) LLVMDisposeMessage(features);
  free_units(units, nu);
  sm_free(todo);
  sm_jit_free(j);
  return NULL;
}

sm_kernel_fn sm_jit_lookup(sm_jit *j, const char *name) {
  if (!j || !name) return NULL;
  for (size_t i = 0; i < j->n; i++)
    if (strcmp(j->names[i], name) == 0) return j->fns[i];
  return NULL;
}

bool sm_jit_from_cache(const sm_jit *j) { return j && j->nmodules && j->ncached == j->nmodules; }

size_t sm_jit_modules(const sm_jit *j, size_t *cached) {
  if (cached) *cached = j ? j->ncached : 0;
  return j ? j->nmodules : 0;
}

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
