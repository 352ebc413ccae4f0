/* The LLVM backend: kernel IR to LLVM IR through the C API
 * (codegen/llvm.c). It only prints what the kernel IR says: loops in the
 * kernel's order, loads and stores, the scalar expressions (transcendentals
 * from codegen/llvm_math.c), accumulators, and blocked matmul kernels. */
#ifndef SMELT_CODEGEN_LLVM_H
#define SMELT_CODEGEN_LLVM_H

#include "../src/dump.h"
#include "kernel.h"
#include "llvm_matmul.h"

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

/* Adds one function per kernel to module m (named after the kernel, with
 * the ABI of sm_kernel_fn, kernel.h). The buffers become noalias
 * arguments of an inner function that the entry inlines. tm gives the
 * target's vector width and features. Returns 0, or -1 with *err set. */
int sm_llvm_emit(LLVMModuleRef m, LLVMTargetMachineRef tm, sm_kernel *const *kernels, size_t n,
                 char **err);

/* sm_llvm_emit for a program compiled as several modules (runtime/jit.c):
 * the blocked matmul functions the kernels call (smelt_mm_f32/f64) are
 * only declared here, external, and defined once per dtype in a module of
 * their own by sm_llvm_emit_matmul; the linker joins them. */
int sm_llvm_emit_split(LLVMModuleRef m, LLVMTargetMachineRef tm, sm_kernel *const *kernels,
                       size_t n, char **err);
/* Defines smelt_mm_<dt> (f32 or f64, codegen/llvm_matmul.h) in m with
 * external linkage, specialized for the arguments in consts (may be NULL:
 * none) that every caller passes the same. Returns 0, or -1 with *err. */
int sm_llvm_emit_matmul(LLVMModuleRef m, LLVMTargetMachineRef tm, smelt_dtype dt,
                        const sm_mm_consts *consts, char **err);
/* The dtype of the blocked matmul function kernel k calls (SMELT_F32 or
 * SMELT_F64), or -1 when it calls none; args (may be NULL) receives the
 * constant arguments of the call, M..ldc at 3..10 (others 0). Depends on
 * $SMELT_LLVM_MATMUL. */
int sm_llvm_kernel_matmul(const sm_kernel *k, int64_t args[13]);

/* Runs the new pass manager pipeline default<O{opt_level}> over m (loop
 * and SLP vectorization on). Returns 0, or -1 with *err set. */
int sm_llvm_optimize(LLVMModuleRef m, LLVMTargetMachineRef tm, int opt_level, char **err);

/* The passes for a module of sm_llvm_emit_matmul with these constants (may
 * be NULL): sm_llvm_optimize when they are the whole shape (SM_MM_SHAPE:
 * most of the code folds away), else a short pipeline (the kernel is
 * vectorized by hand; the loop vectorizer only takes the packing loops
 * marked for it); default<O0> at level 0. Returns 0, or -1 with *err. */
int sm_llvm_optimize_matmul(LLVMModuleRef m, LLVMTargetMachineRef tm, int opt_level,
                            const sm_mm_consts *consts, char **err);

/* Writes the module's LLVM IR (stage "llvm", labelled part) and its
 * assembly for tm (stage "asm") when dump wants them. */
void sm_llvm_dump_module(sm_dump *dump, const char *part, LLVMModuleRef m);
void sm_llvm_dump_asm(sm_dump *dump, LLVMTargetMachineRef tm, LLVMModuleRef m);
/* The module's assembly for tm (sm_malloc'ed; m is left as it was), or
 * why it could not be printed; NULL when out of memory. */
char *sm_llvm_asm_text(LLVMTargetMachineRef tm, LLVMModuleRef m);

/* Initializes every target LLVM was built with, once per process (thread
 * safe; sm_llvm_target_machine does it too). ORC needs it to link objects
 * when no target machine was made, e.g. all of them came from the cache. */
void sm_llvm_init_targets(void);

/* A target machine for the host (or cpu/triple when not NULL), PIC,
 * optimization level opt_level. NULL with *err set. */
LLVMTargetMachineRef sm_llvm_target_machine(const char *triple, const char *cpu,
                                            const char *features, int opt_level, char **err);

/* Whether eligible matmul kernels use the blocked kernel of
 * codegen/llvm_matmul.c: true unless $SMELT_LLVM_MATMUL is "generic" (tests
 * and comparisons run the generic reduce loops that way). Part of the
 * disk cache's key. */
bool sm_llvm_use_blocked_matmul(void);

#endif
