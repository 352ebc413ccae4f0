/* The LLVM backend: kernel IR to LLVM IR through the C API
 * (codegen/llvm.c). It only prints what the kernel IR says: loops in the
 * kernel's order, loads and stores, the scalar expressions (transcendentals
 * from codegen/llvm_math.c), accumulators, and blocked matmul kernels. */
#ifndef SMELT_CODEGEN_LLVM_H
#define SMELT_CODEGEN_LLVM_H

#include "../src/dump.h"
#include "kernel.h"

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

/* Adds one function per kernel to module m (named after the kernel, with
 * the ABI of sm_kernel_fn, kernel.h). The buffers become noalias
 * arguments of an inner function that the entry inlines. tm gives the
 * target's vector width and features. Returns 0, or -1 with *err set. */
int sm_llvm_emit(LLVMModuleRef m, LLVMTargetMachineRef tm, sm_kernel *const *kernels, size_t n,
                 char **err);

/* Runs the new pass manager pipeline default<O{opt_level}> over m (loop
 * and SLP vectorization on). Returns 0, or -1 with *err set. */
int sm_llvm_optimize(LLVMModuleRef m, LLVMTargetMachineRef tm, int opt_level, char **err);

/* Writes the module's LLVM IR (stage "llvm", labelled part) and its
 * assembly for tm (stage "asm") when dump wants them. */
void sm_llvm_dump_module(sm_dump *dump, const char *part, LLVMModuleRef m);
void sm_llvm_dump_asm(sm_dump *dump, LLVMTargetMachineRef tm, LLVMModuleRef m);

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
