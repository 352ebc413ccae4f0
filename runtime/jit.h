/* Machine code for a program's kernels: LLVM emission, optimization,
 * object code, the disk cache and ORC LLJIT (runtime/jit.c). */
#ifndef SMELT_RUNTIME_JIT_H
#define SMELT_RUNTIME_JIT_H

#include "../codegen/kernel.h"
#include "../src/dump.h"

typedef struct sm_jit sm_jit;

/* Compiles the kernels and links them in a JIT. Each kernel is its own
 * LLVM module, and so is each blocked matmul function they call (one per
 * dtype, specialized for the arguments all their calls share); the
 * modules are compiled in parallel on up to o->num_threads threads of the
 * runtime's pool (0: sm_default_threads()), at most one per core. With
 * o->cache_dir, each module's object is loaded from (or stored in) the
 * disk cache under its own key: a hash of its kernel's printed IR (or the
 * matmul's dtype and constant arguments), the target triple, CPU name and
 * features, LLVM and smelt versions and the options. Dumps "llvm" (IR before and after
 * optimization) and "asm" through dump, the modules in order (kernels,
 * then matmuls); dumps skip reading the cache. NULL with *err set (a
 * module's error names its kernel). */
sm_jit *sm_jit_compile(sm_kernel *const *kernels, size_t n, const smelt_compile_options *o,
                       sm_dump *dump, char **err);
/* The entry of kernel `name`, NULL when absent. */
sm_kernel_fn sm_jit_lookup(sm_jit *j, const char *name);
/* True when all the code came from the disk cache. */
bool sm_jit_from_cache(const sm_jit *j);
/* The number of modules (objects) linked, and in *cached (may be NULL)
 * how many of them came from the disk cache. */
size_t sm_jit_modules(const sm_jit *j, size_t *cached);
void sm_jit_free(sm_jit *j);

#endif
