/* The blocked matmul of the LLVM backend (codegen/llvm_matmul.c): packed
 * panels, a register-tiled micro-kernel of vector FMAs, edges of any size.
 * codegen/llvm.c calls it for matmul kernels, then applies the epilogue to
 * the rows it produced while they are in cache. */
#ifndef SMELT_CODEGEN_LLVM_MATMUL_H
#define SMELT_CODEGEN_LLVM_MATMUL_H

#include "../src/internal.h"

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

/* Returns the function (created once per module and dtype, f32 or f64;
 * NULL for other dtypes)
 *   void smelt_mm_f32(const float *A, const float *B, float *C,
 *                     int64_t M, int64_t N, int64_t K,
 *                     int64_t sam, int64_t sak, int64_t sbk, int64_t sbn,
 *                     int64_t ldc, int64_t m_begin, int64_t m_end)
 * which writes C[m*ldc + n] = sum_k A[m*sam + k*sak] * B[k*sbk + n*sbn] for
 * m_begin <= m < m_end and 0 <= n < N (element strides, any sign or 0; the
 * sum runs over k in increasing order, each step one fused multiply-add;
 * K = 0 writes zeros). A and B are read only; C does not overlap them.
 * Its packing buffers live on the stack (no allocation). tm gives the
 * vector width (AVX-512, AVX2, SSE, NEON). */
LLVMValueRef sm_llvm_matmul_fn(LLVMModuleRef m, LLVMTargetMachineRef tm, smelt_dtype dt);

/* Arguments that every call of a program passes with the same value: bit
 * i of mask set (3 <= i <= 10: M, N, K, sam, sak, sbk, sbn, ldc) means
 * argument i is always v[i]. */
typedef struct sm_mm_consts {
  unsigned mask;
  int64_t v[13];
} sm_mm_consts;
/* The mask of a known shape: N, K, the strides and ldc (M is not used). */
#define SM_MM_SHAPE ((unsigned)0x7f0)

/* sm_llvm_matmul_fn whose driver takes the arguments in consts->mask as
 * those constants (the values passed for them are ignored), so that its
 * loops and the pieces it calls can be simplified for them: what the
 * optimizer's interprocedural constant propagation does when every call is
 * in the same module. The caller must only pass those values. consts NULL
 * or empty: sm_llvm_matmul_fn. */
LLVMValueRef sm_llvm_matmul_fn_consts(LLVMModuleRef m, LLVMTargetMachineRef tm, smelt_dtype dt,
                                      const sm_mm_consts *consts);

#endif
