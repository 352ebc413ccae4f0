/* The scalar ops of the kernel IR, one row per op (see scalar_ops.h). */
#include "scalar_ops.h"

#define ROW(form, arity, dom, nan, flags) {form, arity, dom, nan, flags, 0}
#define UNF(flags) ROW(SOP_ARITH, 1, SOP_F, SOP_NAN_IEEE, flags)    /* float-only unary */
#define UNX(nan) ROW(SOP_ARITH, 1, SOP_FIB, nan, SOP_EXACT)          /* unary, every dtype */
#define CMP(nan) ROW(SOP_COMPARE, 2, SOP_FIB, nan, SOP_EXACT)
#define RED(op, nan) {SOP_REDUCE, 1, SOP_FIB, nan, 0, op}

const sm_scalar_op sm_scalar_ops[OP_COUNT] = {
    [OP_NEG] = UNX(SOP_NAN_IEEE),
    [OP_ABS] = UNX(SOP_NAN_IEEE),
    [OP_SIGN] = UNX(SOP_NAN_ZERO),
    [OP_EXP] = UNF(SOP_MATH),
    [OP_LOG] = UNF(SOP_MATH),
    [OP_SQRT] = UNF(SOP_EXACT),
    [OP_RSQRT] = UNF(SOP_EXACT),      /* 1 / sqrt(x): two roundings, the same on every backend */
    [OP_RECIPROCAL] = UNF(SOP_EXACT),
    [OP_SIN] = UNF(SOP_MATH),
    [OP_COS] = UNF(SOP_MATH),
    [OP_TANH] = UNF(SOP_MATH),
    [OP_SIGMOID] = UNF(SOP_MATH),
    [OP_RELU] = UNX(SOP_NAN_IEEE),    /* relu(NaN) = NaN */
    [OP_NOT] = ROW(SOP_LOGIC, 1, SOP_B, SOP_NAN_NA, SOP_EXACT),
    [OP_STOP_GRADIENT] = UNX(SOP_NAN_IEEE),
    [OP_CAST] = ROW(SOP_CAST, 1, SOP_FIB, SOP_NAN_NA, SOP_EXACT),

    [OP_ADD] = ROW(SOP_ARITH, 2, SOP_FIB, SOP_NAN_IEEE, SOP_EXACT | SOP_FMA),
    [OP_SUB] = ROW(SOP_ARITH, 2, SOP_FIB, SOP_NAN_IEEE, SOP_EXACT | SOP_FMA),
    [OP_MUL] = ROW(SOP_ARITH, 2, SOP_FIB, SOP_NAN_IEEE, SOP_EXACT | SOP_FMA),
    [OP_DIV] = ROW(SOP_ARITH, 2, SOP_F, SOP_NAN_IEEE, SOP_EXACT),
    [OP_POW] = ROW(SOP_ARITH, 2, SOP_FIB, SOP_NAN_IEEE, SOP_MATH), /* integers: exact, wrapping */
    [OP_MAXIMUM] = ROW(SOP_ARITH, 2, SOP_FIB, SOP_NAN_ANY, SOP_EXACT),
    [OP_MINIMUM] = ROW(SOP_ARITH, 2, SOP_FIB, SOP_NAN_ANY, SOP_EXACT),
    [OP_LT] = CMP(SOP_NAN_FALSE),
    [OP_LE] = CMP(SOP_NAN_FALSE),
    [OP_GT] = CMP(SOP_NAN_FALSE),
    [OP_GE] = CMP(SOP_NAN_FALSE),
    [OP_EQ] = CMP(SOP_NAN_FALSE),
    [OP_NE] = CMP(SOP_NAN_TRUE),
    [OP_AND] = ROW(SOP_LOGIC, 2, SOP_B, SOP_NAN_NA, SOP_EXACT),
    [OP_OR] = ROW(SOP_LOGIC, 2, SOP_B, SOP_NAN_NA, SOP_EXACT),

    [OP_WHERE] = ROW(SOP_SELECT, 3, SOP_FIB, SOP_NAN_NA, SOP_EXACT),

    [OP_REDUCE_SUM] = RED(OP_ADD, SOP_NAN_IEEE),
    [OP_REDUCE_PROD] = RED(OP_MUL, SOP_NAN_IEEE),
    [OP_REDUCE_MAX] = RED(OP_MAXIMUM, SOP_NAN_ANY),
    [OP_REDUCE_MIN] = RED(OP_MINIMUM, SOP_NAN_ANY),
    [OP_ARGMAX] = ROW(SOP_ARGREDUCE, 1, SOP_FIB, SOP_NAN_ANY, 0),
    [OP_ARGMIN] = ROW(SOP_ARGREDUCE, 1, SOP_FIB, SOP_NAN_ANY, 0),
};

#undef ROW
#undef UNF
#undef UNX
#undef CMP
#undef RED

const sm_scalar_op *sm_scalar_op_of(sm_op op) {
  if ((unsigned)op >= OP_COUNT || sm_scalar_ops[op].form == SOP_NONE) return NULL;
  return &sm_scalar_ops[op];
}

bool sm_scalar_elementwise(sm_op op) {
  const sm_scalar_op *s = sm_scalar_op_of(op);
  return s && s->form >= SOP_ARITH && s->form <= SOP_CAST;
}

int sm_scalar_domain_bit(smelt_dtype dt) {
  return sm_is_float(dt) ? SOP_F : dt == SMELT_BOOL ? SOP_B : SOP_I;
}

smelt_dtype sm_scalar_domain(sm_op op, smelt_dtype dt, smelt_dtype adt) {
  const sm_scalar_op *s = sm_scalar_op_of(op);
  if (!s) return dt;
  switch ((sm_sop_form)s->form) {
  case SOP_COMPARE: return adt;
  case SOP_LOGIC: return SMELT_BOOL;
  default: return dt;
  }
}

smelt_dtype sm_scalar_operand(sm_op op, int i, smelt_dtype dt, smelt_dtype adt) {
  const sm_scalar_op *s = sm_scalar_op_of(op);
  if (s && s->form == SOP_SELECT && i == 0) return SMELT_BOOL;
  return sm_scalar_domain(op, dt, adt);
}

int sm_scalar_ops_check(char **why) {
  *why = NULL;
  for (int op = 0; op < OP_COUNT; op++) {
    const sm_op_info *g = &sm_ops[op];
    const sm_scalar_op *s = &sm_scalar_ops[op];
    bool elem = g->cls == OPC_UNARY || g->cls == OPC_BINARY || g->cls == OPC_TERNARY;
    bool red = g->cls == OPC_REDUCE, arg = g->cls == OPC_ARGREDUCE;
    const char *bad = NULL;
    if (elem && !sm_scalar_elementwise((sm_op)op)) bad = "elementwise, but no elementwise row";
    else if (red && s->form != SOP_REDUCE) bad = "a reduction, but no reduction row";
    else if (arg && s->form != SOP_ARGREDUCE) bad = "an arg-reduction, but no arg-reduction row";
    else if (!elem && !red && !arg && s->form != SOP_NONE) bad = "not a scalar op, but has a row";
    else if (s->form != SOP_NONE && s->arity != (g->arity < 0 ? 0 : g->arity))
      bad = "its arity differs from the op table's";
    else if (s->form != SOP_NONE && (s->domains == 0 || (s->domains & ~SOP_FIB)))
      bad = "bad domains";
    else if (s->form == SOP_LOGIC && s->domains != SOP_B) bad = "a logic op outside bool";
    else if (s->form == SOP_REDUCE && (!sm_scalar_elementwise((sm_op)s->combine) ||
                                       sm_scalar_ops[s->combine].arity != 2 ||
                                       (sm_scalar_ops[s->combine].domains & s->domains) !=
                                           s->domains))
      bad = "its combining op is not binary in every domain of the reduction";
    if (bad) {
      *why = sm_fmt("scalar op table: %s: %s", g->name, bad);
      return -1;
    }
  }
  return 0;
}
