/* Machine code for a program's kernels: LLVM emission, optimization,
 * object code, the disk cache and ORC LLJIT (runtime/jit.c). */
#ifndef SMELT_RUNTIME_JIT_H
#define SMELT_RUNTIME_JIT_H

#include "../codegen/kernel.h"
#include "../src/dump.h"

typedef struct sm_jit sm_jit;

/* Compiles the kernels (or loads their object code from the cache under
 * o->cache_dir, keyed by a hash of their printed IR, the target triple,
 * CPU name and features, LLVM and smelt versions and the options) and
 * links them in a JIT. Dumps "llvm" (IR before and after optimization) and
 * "asm" through dump. NULL with *err set. */
sm_jit *sm_jit_compile(sm_kernel *const *kernels, size_t n, const smelt_compile_options *o,
                       sm_dump *dump, char **err);
/* The entry of kernel `name`, NULL when absent. */
sm_kernel_fn sm_jit_lookup(sm_jit *j, const char *name);
/* True when the code came from the disk cache. */
bool sm_jit_from_cache(const sm_jit *j);
void sm_jit_free(sm_jit *j);

#endif
