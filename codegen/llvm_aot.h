/* The object file of an ahead-of-time model (codegen/llvm_aot.c): every
 * program's kernels (codegen/llvm.c), its constants, and one driver
 * function per program that launches the kernels in order, on the
 * caller's memory, optionally through the caller's parallel-for. */
#ifndef SMELT_CODEGEN_LLVM_AOT_H
#define SMELT_CODEGEN_LLVM_AOT_H

#include "../src/aot.h"

#include <llvm-c/TargetMachine.h>

/* sm_aot_object (src/aot.h) is defined here. */

#endif
