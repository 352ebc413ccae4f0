/* Transcendental functions emitted as LLVM IR (range reduction plus
 * polynomial) so that loops using them vectorize (codegen/llvm_math.c).
 * The maximum error against libm is measured by tests/test_math.c. */
#ifndef SMELT_CODEGEN_LLVM_MATH_H
#define SMELT_CODEGEN_LLVM_MATH_H

#include "../src/internal.h"

#include <llvm-c/Core.h>

/* Emits op (OP_EXP, OP_LOG, OP_SIN, OP_COS, OP_TANH, OP_SIGMOID, OP_POW)
 * at the builder's position on x (and y for pow): float, double, or
 * vectors of them. Returns the result, or NULL when op is not one of these
 * or the type is not supported. */
LLVMValueRef sm_llvm_math(LLVMModuleRef m, LLVMBuilderRef b, sm_op op, LLVMValueRef x,
                          LLVMValueRef y);

#endif
