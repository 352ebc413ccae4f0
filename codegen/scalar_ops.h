/* The scalar ops of the kernel IR: what every backend must know about an
 * op, in one table (codegen/scalar_ops.c), one row per op.
 *
 * A KV_ELEM value (codegen/kernel.h) applies a graph op to its operands;
 * an accumulator applies a reduction. Each backend has its own table of how
 * an op is written in its language, one row per op, indexed by the op
 * (cuda_ops in codegen/cuda.c, llvm_ops in codegen/llvm.c); what is common
 * to them lives here, so that no backend decides it again:
 *  - the form: which dtype each operand is converted to before the op, and
 *    so the domain (float, integer or bool) whose column of a backend's
 *    row is used;
 *  - the arity, the domains the op is defined in, what it does with NaN;
 *  - flags: exact IEEE arithmetic, FMA contraction, transcendentals;
 *  - for reductions, the elementwise op that combines two states.
 * The meaning itself is the interpreter's (sm_ops[op].eval_f / eval_i in
 * src/ops.c). sm_scalar_ops_check, sm_cuda_ops_check and sm_llvm_ops_check
 * check the tables against each other (tests/test_cuda.c, test_llvm.c);
 * docs/kernel-ir.md says how to add an op. */
#ifndef SMELT_CODEGEN_SCALAR_OPS_H
#define SMELT_CODEGEN_SCALAR_OPS_H

#include "../src/internal.h"

typedef enum sm_sop_form {
  SOP_NONE = 0,  /* not a scalar op of the kernel IR */
  SOP_ARITH,     /* operands converted to the result's dtype, computed there */
  SOP_COMPARE,   /* computed in the left operand's dtype (the right one is
                    converted to it); the result is bool */
  SOP_LOGIC,     /* operands converted to bool (x != 0; NaN is true) */
  SOP_SELECT,    /* where: the condition as bool, the others in the result's
                    dtype */
  SOP_CAST,      /* the operand converted to the result's dtype: the
                    conversion is the op (float to integer truncates,
                    saturates, NaN gives 0) */
  SOP_REDUCE,    /* an accumulator: states combine with `combine` */
  SOP_ARGREDUCE  /* an arg-accumulator: the first extreme's index (a NaN
                    is the extreme) */
} sm_sop_form;

/* Domains: the class of the dtype an op is computed in. */
enum { SOP_F = 1, SOP_I = 2, SOP_B = 4, SOP_FIB = 7 };

typedef enum sm_sop_nan {
  SOP_NAN_NA = 0,  /* no float operand of its own (logic, select, cast) */
  SOP_NAN_IEEE,    /* as the IEEE operation or libm: NaN in, NaN out */
  SOP_NAN_ANY,     /* NaN when either operand is NaN (maximum, minimum:
                      unlike C's fmax) */
  SOP_NAN_ZERO,    /* sign: 0 for NaN */
  SOP_NAN_FALSE,   /* comparisons but ne: false when either is NaN (ordered) */
  SOP_NAN_TRUE     /* ne: true when either is NaN (unordered) */
} sm_sop_nan;

enum {
  SOP_EXACT = 1, /* the correctly rounded (or exact) IEEE result in the
                    value's dtype: the same bits on every backend */
  SOP_FMA = 2,   /* + - *: f32 may contract with a multiply into an FMA (the
                    LLVM backend: `contract`); a reduction allowed to
                    reassociate (sm_kernel.reassociate) may reorder it */
  SOP_MATH = 4   /* a transcendental: the LLVM backend emits it as IR
                    (codegen/llvm_math.c), CUDA calls libdevice; within an
                    ulp or two of libm, not bit-identical across backends */
};

typedef struct sm_scalar_op {
  uint8_t form;     /* sm_sop_form */
  uint8_t arity;    /* operands: 1..3 (reductions: 1) */
  uint8_t domains;  /* SOP_F | SOP_I | SOP_B: where the op is defined */
  uint8_t nan;      /* sm_sop_nan */
  uint8_t flags;    /* SOP_EXACT, SOP_FMA, SOP_MATH */
  uint16_t combine; /* SOP_REDUCE: the elementwise op combining two states */
} sm_scalar_op;

extern const sm_scalar_op sm_scalar_ops[OP_COUNT];

/* The row of op, or NULL for an op that is not a scalar op (SOP_NONE, or
 * out of range). */
const sm_scalar_op *sm_scalar_op_of(sm_op op);

/* Whether op is elementwise (a KV_ELEM op: ARITH .. CAST). */
bool sm_scalar_elementwise(sm_op op);

/* The domain bit (SOP_F, SOP_I, SOP_B) of a dtype. */
int sm_scalar_domain_bit(smelt_dtype dt);

/* The dtype an elementwise op is computed in, for a result of dtype dt and
 * a first operand of dtype adt (its backend column: sm_scalar_domain_bit). */
smelt_dtype sm_scalar_domain(sm_op op, smelt_dtype dt, smelt_dtype adt);

/* The dtype operand i (0-based) is converted to before the op. */
smelt_dtype sm_scalar_operand(sm_op op, int i, smelt_dtype dt, smelt_dtype adt);

/* Checks the table against the graph op table (sm_ops): every elementwise
 * graph op has an elementwise row of its arity, every reduction a reduction
 * row, nothing else a row. 0, or -1 with *why set (sm_malloc'ed). */
int sm_scalar_ops_check(char **why);

/* Each backend's check of its own table against this one: a row for every
 * scalar op, with a form for exactly the domains the op is defined in.
 * sm_llvm_ops_check is defined in codegen/llvm.c (builds with LLVM only). */
int sm_cuda_ops_check(char **why);
int sm_llvm_ops_check(char **why);

#endif
