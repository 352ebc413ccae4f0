/* Type promotion and dtype rules, as PyTorch (torch.result_type): every
 * pair of dtypes for tensor-tensor ops, rank-0 tensors against ranked ones,
 * weak literals, integer division, comparisons, unary float math on
 * integers, reductions, casts, where, and the misuse errors.
 *
 * Expected dtypes are written out by hand from PyTorch's behaviour, not
 * computed by a copy of the rule. Values: exact unless a tolerance is
 * stated. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define F32 SMELT_F32
#define F64 SMELT_F64
#define I32 SMELT_I32
#define I64 SMELT_I64
#define BOOL SMELT_BOOL
#define NDT SMELT_DTYPE_COUNT

/* torch.result_type(tensor_a, tensor_b) for two tensors of rank >= 1 (or
 * two rank-0 tensors), in the order f32, f64, i32, i64, bool. */
static const smelt_dtype tensor_tensor[NDT][NDT] = {
    /*          f32  f64  i32  i64  bool */
    /* f32 */ {F32, F64, F32, F32, F32},
    /* f64 */ {F64, F64, F64, F64, F64},
    /* i32 */ {F32, F64, I32, I64, I32},
    /* i64 */ {F32, F64, I64, I64, I64},
    /* bool */ {F32, F64, I32, I64, BOOL},
};

/* torch.result_type(ranked tensor of dtype row, rank-0 tensor of dtype
 * column): the rank-0 tensor decides only when its category is higher. */
static const smelt_dtype ranked_rank0[NDT][NDT] = {
    /*          f32  f64  i32  i64  bool */
    /* f32 */ {F32, F32, F32, F32, F32},
    /* f64 */ {F64, F64, F64, F64, F64},
    /* i32 */ {F32, F64, I32, I32, I32},
    /* i64 */ {F32, F64, I64, I64, I64},
    /* bool */ {F32, F64, I32, I64, BOOL},
};

/* A small tensor of dtype dt with values 1, 2, 3 (bool: 1, 0, 1). */
static smelt_node vec(smelt_graph *g, smelt_dtype dt) {
  if (dt == BOOL) return TU_VEC(g, dt, 1, 0, 1);
  return TU_VEC(g, dt, 1, 2, 3);
}

START_TEST(promote_tensor_tensor) {
  smelt_dtype a = (smelt_dtype)(_i / NDT), b = (smelt_dtype)(_i % NDT);
  smelt_graph *g = TU_GRAPH();
  smelt_node x = vec(g, a), y = vec(g, b);
  smelt_node r = smelt_add(g, x, y);
  ck_assert_msg(smelt_node_valid(r), "%s + %s: %s", smelt_dtype_name(a), smelt_dtype_name(b),
                smelt_graph_error(g));
  ck_assert_msg(smelt_node_dtype(g, r) == tensor_tensor[a][b], "%s + %s gives %s, want %s",
                smelt_dtype_name(a), smelt_dtype_name(b), smelt_dtype_name(smelt_node_dtype(g, r)),
                smelt_dtype_name(tensor_tensor[a][b]));
  /* values: bool + bool is logical or (PyTorch), everything else adds */
  double va[3] = {1, a == BOOL ? 0 : 2, a == BOOL ? 1 : 3};
  double vb[3] = {1, b == BOOL ? 0 : 2, b == BOOL ? 1 : 3};
  double want[3];
  for (int i = 0; i < 3; i++) want[i] = a == BOOL && b == BOOL ? (va[i] || vb[i]) : va[i] + vb[i];
  TU_ASSERT_VALUES_A(g, r, 0, 3, want);
  /* mul and maximum follow the same rule */
  ck_assert_int_eq(smelt_node_dtype(g, smelt_mul(g, x, y)), tensor_tensor[a][b]);
  ck_assert_int_eq(smelt_node_dtype(g, smelt_maximum(g, x, y)), tensor_tensor[a][b]);
  /* the rule is symmetric */
  ck_assert_int_eq(smelt_node_dtype(g, smelt_add(g, y, x)), tensor_tensor[a][b]);
  TU_ASSERT_OK(g);
  smelt_graph_free(g);
}
END_TEST

START_TEST(promote_rank0_rank0) {
  smelt_dtype a = (smelt_dtype)(_i / NDT), b = (smelt_dtype)(_i % NDT);
  smelt_graph *g = TU_GRAPH();
  smelt_node r = smelt_add(g, smelt_const(g, a, 1), smelt_const(g, b, 1));
  TU_ASSERT_DTYPE(g, r, tensor_tensor[a][b]);
  TU_ASSERT_SHAPE(g, r, 0);
  smelt_graph_free(g);
}
END_TEST

START_TEST(promote_ranked_rank0) {
  smelt_dtype a = (smelt_dtype)(_i / NDT), b = (smelt_dtype)(_i % NDT);
  smelt_graph *g = TU_GRAPH();
  smelt_node x = vec(g, a), s = smelt_const(g, b, 1);
  smelt_node r1 = smelt_add(g, x, s), r2 = smelt_mul(g, s, x);
  ck_assert_msg(smelt_node_dtype(g, r1) == ranked_rank0[a][b], "%s[3] + %s[] gives %s, want %s",
                smelt_dtype_name(a), smelt_dtype_name(b), smelt_dtype_name(smelt_node_dtype(g, r1)),
                smelt_dtype_name(ranked_rank0[a][b]));
  TU_ASSERT_DTYPE(g, r2, ranked_rank0[a][b]);
  TU_ASSERT_SHAPE(g, r1, 1, 3);
  smelt_graph_free(g);
}
END_TEST

/* Literals: f32 * 2.5 stays f32, i32 * 2.5 -> f32, i32 + 2 stays i32,
 * bool + 2 -> i64, bool * 2.5 -> f32. Both for ranked and rank-0 tensors
 * and both operand orders. */
static const smelt_dtype with_float_literal[NDT] = {F32, F64, F32, F32, F32};
static const smelt_dtype with_int_literal[NDT] = {F32, F64, I32, I64, I64};

START_TEST(promote_literals) {
  smelt_dtype a = (smelt_dtype)_i;
  for (int rank0 = 0; rank0 < 2; rank0++) {
    smelt_graph *g = TU_GRAPH();
    smelt_node x = rank0 ? smelt_const(g, a, 1) : vec(g, a);
    smelt_node f = smelt_scalar(g, 2.5), n = smelt_scalar_int(g, 2);
    TU_ASSERT_DTYPE(g, smelt_mul(g, x, f), with_float_literal[a]);
    TU_ASSERT_DTYPE(g, smelt_mul(g, f, x), with_float_literal[a]);
    TU_ASSERT_DTYPE(g, smelt_add(g, x, n), with_int_literal[a]);
    TU_ASSERT_DTYPE(g, smelt_add(g, n, x), with_int_literal[a]);
    smelt_graph_free(g);
  }
}
END_TEST

START_TEST(literal_values) {
  smelt_graph *g = TU_GRAPH();
  /* i32 [1,2,3] * 2.5 = [2.5, 5, 7.5] f32 */
  smelt_node r = smelt_mul(g, vec(g, I32), smelt_scalar(g, 2.5));
  TU_ASSERT_DTYPE(g, r, F32);
  TU_ASSERT_VALUES(g, r, 0, 2.5, 5, 7.5);
  /* i32 + 2 stays i32 */
  r = smelt_add(g, vec(g, I32), smelt_scalar_int(g, 2));
  TU_ASSERT_DTYPE(g, r, I32);
  TU_ASSERT_VALUES(g, r, 0, 3, 4, 5);
  /* bool [1,0,1] + 2 = [3,2,3] i64 */
  r = smelt_add(g, vec(g, BOOL), smelt_scalar_int(g, 2));
  TU_ASSERT_DTYPE(g, r, I64);
  TU_ASSERT_VALUES(g, r, 0, 3, 2, 3);
  /* bool * 2.5 = [2.5, 0, 2.5] f32 */
  r = smelt_mul(g, vec(g, BOOL), smelt_scalar(g, 2.5));
  TU_ASSERT_DTYPE(g, r, F32);
  TU_ASSERT_VALUES(g, r, 0, 2.5, 0, 2.5);
  /* f64 * 0.1: the literal keeps its double value (not rounded to f32) */
  r = smelt_mul(g, TU_VEC(g, F64, 1, 3), smelt_scalar(g, 0.1));
  TU_ASSERT_DTYPE(g, r, F64);
  TU_ASSERT_VALUES(g, r, 0, 0.1, 3 * 0.1);
  /* f32 * 0.1 rounds to f32 */
  r = smelt_mul(g, TU_VEC(g, F32, 1), smelt_scalar(g, 0.1));
  TU_ASSERT_VALUES(g, r, 0, (double)0.1f);
  /* a large integer literal with an i64 tensor stays exact */
  r = smelt_add(g, TU_VEC(g, I64, 1), smelt_scalar_int(g, (int64_t)1 << 53));
  TU_ASSERT_DTYPE(g, r, I64);
  int64_t *iv = TU_RUN1(g, r);
  ck_assert(iv[0] == ((int64_t)1 << 53) + 1);
  free(iv);
  /* the comparison happens in the promoted dtype: i32 2 < 2.5 is true */
  r = smelt_lt(g, TU_VEC(g, I32, 2, 3), smelt_scalar(g, 2.5));
  TU_ASSERT_DTYPE(g, r, BOOL);
  TU_ASSERT_VALUES(g, r, 0, 1, 0);
  smelt_graph_free(g);
}
END_TEST

START_TEST(literals_alone) {
  smelt_graph *g = TU_GRAPH();
  smelt_node f = smelt_scalar(g, 2.5), n = smelt_scalar_int(g, 7);
  TU_ASSERT_DTYPE(g, f, F32);
  TU_ASSERT_DTYPE(g, n, I64);
  TU_ASSERT_SHAPE(g, f, 0);
  TU_ASSERT_SHAPE(g, n, 0);
  TU_ASSERT_DTYPE(g, smelt_add(g, f, n), F32);
  TU_ASSERT_DTYPE(g, smelt_add(g, n, n), I64);
  TU_ASSERT_DTYPE(g, smelt_mul(g, f, f), F32);
  TU_ASSERT_VALUES(g, smelt_add(g, f, n), 0, 9.5);
  /* a literal against a rank-0 const: the const's dtype wins in its category */
  TU_ASSERT_DTYPE(g, smelt_add(g, smelt_const(g, I32, 3), n), I32);
  TU_ASSERT_DTYPE(g, smelt_add(g, smelt_const(g, I32, 3), f), F32);
  TU_ASSERT_DTYPE(g, smelt_add(g, smelt_const(g, F64, 3), f), F64);
  TU_ASSERT_DTYPE(g, smelt_add(g, smelt_const(g, BOOL, 1), n), I64);
  smelt_graph_free(g);
}
END_TEST

START_TEST(literal_out_of_range) {
  /* an integer literal that does not fit the tensor's dtype is an error
   * (PyTorch: "value cannot be converted to type int32 without overflow");
   * a float literal too large for f32 just rounds to inf */
  smelt_graph *g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_add(g, vec(g, I32), smelt_scalar_int(g, (int64_t)1 << 40))));
  TU_ASSERT_ERROR(g, "i32");
  smelt_graph_free(g);
  g = TU_GRAPH();
  smelt_node r = smelt_mul(g, vec(g, F32), smelt_scalar(g, 1e300));
  TU_ASSERT_DTYPE(g, r, F32);
  TU_ASSERT_VALUES(g, r, 0, INFINITY, INFINITY, INFINITY);
  /* a float literal into an integer computation is not possible: it
   * promotes, so 2^40 * 0.5 stays exact in i64 */
  r = smelt_add(g, vec(g, I64), smelt_scalar_int(g, (int64_t)1 << 40));
  TU_ASSERT_DTYPE(g, r, I64);
  TU_ASSERT_VALUES(g, r, 0, 1099511627777.0, 1099511627778.0, 1099511627779.0);
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------ div */

START_TEST(div_is_true_division) {
  static const smelt_dtype want[NDT] = {F32, F64, F32, F32, F32};
  smelt_dtype a = (smelt_dtype)_i;
  smelt_graph *g = TU_GRAPH();
  smelt_node x = a == BOOL ? TU_VEC(g, a, 1, 0) : TU_VEC(g, a, 7, -7);
  smelt_node y = a == BOOL ? TU_VEC(g, a, 1, 1) : TU_VEC(g, a, 2, 2);
  smelt_node r = smelt_div(g, x, y);
  TU_ASSERT_DTYPE(g, r, want[a]);
  if (a == BOOL)
    TU_ASSERT_VALUES(g, r, 0, 1, 0);
  else
    TU_ASSERT_VALUES(g, r, 0, 3.5, -3.5);
  smelt_graph_free(g);
}
END_TEST

START_TEST(div_int_by_zero) {
  smelt_graph *g = TU_GRAPH();
  smelt_node r = smelt_div(g, TU_VEC(g, I32, 1, -1, 0), TU_VEC(g, I32, 0, 0, 0));
  TU_ASSERT_DTYPE(g, r, F32);
  TU_ASSERT_VALUES(g, r, 0, INFINITY, -INFINITY, NAN);
  /* mixed: i64 / f64 -> f64 */
  TU_ASSERT_DTYPE(g, smelt_div(g, vec(g, I64), vec(g, F64)), F64);
  /* int / int literal -> f32 */
  r = smelt_div(g, vec(g, I64), smelt_scalar_int(g, 2));
  TU_ASSERT_DTYPE(g, r, F32);
  TU_ASSERT_VALUES(g, r, 0, 0.5, 1, 1.5);
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------ comparisons */

START_TEST(comparisons_give_bool) {
  smelt_dtype a = (smelt_dtype)(_i / NDT), b = (smelt_dtype)(_i % NDT);
  smelt_graph *g = TU_GRAPH();
  smelt_node x = vec(g, a), y = vec(g, b);
  smelt_node (*ops[])(smelt_graph *, smelt_node, smelt_node) = {
      smelt_lt, smelt_le, smelt_gt, smelt_ge, smelt_eq, smelt_ne, smelt_logical_and,
      smelt_logical_or};
  for (int k = 0; k < 8; k++) {
    smelt_node r = ops[k](g, x, y);
    TU_ASSERT_DTYPE(g, r, BOOL);
  }
  /* x == x elementwise, including across dtypes (1 == 1.0) */
  smelt_node e = smelt_eq(g, x, y);
  if ((a == BOOL) == (b == BOOL))
    TU_ASSERT_VALUES(g, e, 0, 1, 1, 1);
  else
    TU_ASSERT_VALUES(g, e, 0, 1, 0, 0);
  TU_ASSERT_DTYPE(g, smelt_logical_not(g, x), BOOL);
  smelt_graph_free(g);
}
END_TEST

START_TEST(comparison_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = TU_VEC(g, F32, 1, 2, 3, NAN);
  smelt_node b = TU_VEC(g, I64, 2, 2, 2, 2);
  TU_ASSERT_VALUES(g, smelt_lt(g, a, b), 0, 1, 0, 0, 0);
  TU_ASSERT_VALUES(g, smelt_le(g, a, b), 0, 1, 1, 0, 0);
  TU_ASSERT_VALUES(g, smelt_gt(g, a, b), 0, 0, 0, 1, 0);
  TU_ASSERT_VALUES(g, smelt_ge(g, a, b), 0, 0, 1, 1, 0);
  TU_ASSERT_VALUES(g, smelt_eq(g, a, b), 0, 0, 1, 0, 0);
  TU_ASSERT_VALUES(g, smelt_ne(g, a, b), 0, 1, 0, 1, 1); /* NaN != x */
  /* logical ops: any nonzero is true, NaN is nonzero */
  smelt_node c = TU_VEC(g, F64, 0, 0.5, -2, NAN);
  smelt_node d = TU_VEC(g, I32, 0, 0, 3, 0);
  TU_ASSERT_VALUES(g, smelt_logical_and(g, c, d), 0, 0, 0, 1, 0);
  TU_ASSERT_VALUES(g, smelt_logical_or(g, c, d), 0, 0, 1, 1, 1);
  TU_ASSERT_VALUES(g, smelt_logical_not(g, c), 0, 1, 0, 0, 0);
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------ unary */

typedef smelt_node (*unary_fn)(smelt_graph *, smelt_node);
static const unary_fn float_unary[] = {smelt_exp,  smelt_log,        smelt_sqrt, smelt_rsqrt,
                                       smelt_reciprocal, smelt_sin, smelt_cos, smelt_tanh,
                                       smelt_sigmoid, smelt_gelu};
static const char *float_unary_names[] = {"exp", "log", "sqrt", "rsqrt", "reciprocal",
                                          "sin", "cos", "tanh", "sigmoid", "gelu"};

START_TEST(unary_float_ops_on_ints) {
  static const smelt_dtype want[NDT] = {F32, F64, F32, F32, F32};
  smelt_dtype a = (smelt_dtype)_i;
  smelt_graph *g = TU_GRAPH();
  smelt_node x = vec(g, a);
  for (size_t k = 0; k < sizeof float_unary / sizeof *float_unary; k++) {
    smelt_node r = float_unary[k](g, x);
    ck_assert_msg(smelt_node_valid(r), "%s(%s): %s", float_unary_names[k], smelt_dtype_name(a),
                  smelt_graph_error(g));
    ck_assert_msg(smelt_node_dtype(g, r) == want[a], "%s(%s) gives %s", float_unary_names[k],
                  smelt_dtype_name(a), smelt_dtype_name(smelt_node_dtype(g, r)));
  }
  /* values: sqrt of i32 [1,2,3] in f32 */
  if (a == I32) TU_ASSERT_VALUES(g, smelt_sqrt(g, x), 1e-7, 1, sqrt(2.0), sqrt(3.0));
  if (a == BOOL) TU_ASSERT_VALUES(g, smelt_exp(g, x), 1e-7, exp(1.0), 1, exp(1.0));
  smelt_graph_free(g);
}
END_TEST

START_TEST(unary_same_dtype_ops) {
  /* neg, abs, sign, relu keep the dtype and reject bool */
  static const unary_fn fns[] = {smelt_neg, smelt_abs, smelt_sign, smelt_relu};
  static const char *names[] = {"neg", "abs", "sign", "relu"};
  smelt_dtype a = (smelt_dtype)_i;
  for (int k = 0; k < 4; k++) {
    smelt_graph *g = TU_GRAPH();
    smelt_node r = fns[k](g, vec(g, a));
    if (a == BOOL) {
      ck_assert_msg(!smelt_node_valid(r), "%s(bool) should fail", names[k]);
      TU_ASSERT_ERROR(g, names[k], "bool");
    } else {
      TU_ASSERT_DTYPE(g, r, a);
    }
    smelt_graph_free(g);
  }
}
END_TEST

START_TEST(unary_int_values) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, I32, -3, 0, 5);
  TU_ASSERT_VALUES(g, smelt_neg(g, x), 0, 3, 0, -5);
  TU_ASSERT_VALUES(g, smelt_abs(g, x), 0, 3, 0, 5);
  TU_ASSERT_VALUES(g, smelt_sign(g, x), 0, -1, 0, 1);
  TU_ASSERT_VALUES(g, smelt_relu(g, x), 0, 0, 0, 5);
  /* integer wrap-around as PyTorch: -INT32_MIN == INT32_MIN */
  smelt_node m = TU_VEC(g, I32, -2147483648.0);
  TU_ASSERT_VALUES(g, smelt_neg(g, m), 0, -2147483648.0);
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------- pow, bools */

START_TEST(pow_dtypes) {
  smelt_graph *g = TU_GRAPH();
  smelt_node r = smelt_pow(g, TU_VEC(g, I32, 2, 3, -2), TU_VEC(g, I32, 10, 2, 3));
  TU_ASSERT_DTYPE(g, r, I32);
  TU_ASSERT_VALUES(g, r, 0, 1024, 9, -8);
  r = smelt_pow(g, TU_VEC(g, I64, 2, 4), smelt_scalar(g, 0.5));
  TU_ASSERT_DTYPE(g, r, F32);
  TU_ASSERT_VALUES(g, r, 1e-7, sqrt(2.0), 2);
  r = smelt_pow(g, TU_VEC(g, F64, 2, 4), smelt_scalar_int(g, 3));
  TU_ASSERT_DTYPE(g, r, F64);
  TU_ASSERT_VALUES(g, r, 0, 8, 64);
  r = smelt_pow(g, TU_VEC(g, I64, 3), smelt_scalar_int(g, 3));
  TU_ASSERT_DTYPE(g, r, I64);
  TU_ASSERT_VALUES(g, r, 0, 27);
  smelt_graph_free(g);
}
END_TEST

START_TEST(bool_arith_errors) {
  /* PyTorch: "Subtraction, the - operator, with a bool tensor is not
   * supported", whichever operand is bool. */
  smelt_graph *g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_sub(g, vec(g, BOOL), vec(g, BOOL))));
  TU_ASSERT_ERROR(g, "sub", "bool");
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_sub(g, vec(g, BOOL), vec(g, I32))));
  TU_ASSERT_ERROR(g, "sub", "bool");
  smelt_graph_free(g);
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_sub(g, vec(g, F32), smelt_const(g, SMELT_BOOL, 1))));
  TU_ASSERT_ERROR(g, "sub", "bool");
  smelt_graph_free(g);

  g = TU_GRAPH();
  /* bool max / mul stay bool */
  TU_ASSERT_DTYPE(g, smelt_maximum(g, vec(g, BOOL), vec(g, BOOL)), BOOL);
  TU_ASSERT_DTYPE(g, smelt_mul(g, vec(g, BOOL), vec(g, BOOL)), BOOL);
  TU_ASSERT_VALUES(g, smelt_mul(g, vec(g, BOOL), TU_VEC(g, BOOL, 1, 1, 0)), 0, 1, 0, 0);
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------- reductions */

START_TEST(reduction_dtypes) {
  static const smelt_dtype sum_want[NDT] = {F32, F64, I64, I64, I64};
  smelt_dtype a = (smelt_dtype)_i;
  smelt_graph *g = TU_GRAPH();
  smelt_node x = vec(g, a);
  TU_ASSERT_DTYPE(g, smelt_sum(g, x, 0, NULL, false), sum_want[a]);
  TU_ASSERT_DTYPE(g, smelt_prod(g, x, 0, NULL, false), sum_want[a]);
  TU_ASSERT_DTYPE(g, smelt_max(g, x, 0, NULL, false), a);
  TU_ASSERT_DTYPE(g, smelt_min(g, x, 0, NULL, false), a);
  TU_ASSERT_DTYPE(g, smelt_argmax(g, x, 0, false), I64);
  TU_ASSERT_DTYPE(g, smelt_argmin(g, x, 0, false), I64);
  smelt_node v, i;
  smelt_max_dim(g, x, 0, false, &v, &i);
  TU_ASSERT_DTYPE(g, v, a);
  TU_ASSERT_DTYPE(g, i, I64);
  if (a == BOOL) TU_ASSERT_VALUES(g, smelt_sum(g, x, 0, NULL, false), 0, 2); /* counts trues */
  if (a == I32) TU_ASSERT_VALUES(g, smelt_prod(g, x, 0, NULL, false), 0, 6);
  smelt_graph_free(g);
}
END_TEST

START_TEST(sum_i32_no_overflow) {
  /* sum of i32 accumulates in i64 */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, I32, 2147483647.0, 2147483647.0, 2);
  smelt_node s = smelt_sum(g, x, 0, NULL, false);
  TU_ASSERT_DTYPE(g, s, I64);
  int64_t *v = TU_RUN1(g, s);
  ck_assert(v[0] == 4294967296LL);
  free(v);
  smelt_graph_free(g);
}
END_TEST

START_TEST(logsumexp_of_ints) {
  smelt_graph *g = TU_GRAPH();
  smelt_node r = smelt_logsumexp(g, TU_VEC(g, I32, 1, 2, 3), 0, NULL, false);
  TU_ASSERT_DTYPE(g, r, F32);
  TU_ASSERT_VALUES(g, r, 1e-6, 3.4076059644443806);
  r = smelt_logsumexp(g, TU_VEC(g, BOOL, 0, 0), 0, NULL, false);
  TU_ASSERT_DTYPE(g, r, F32);
  TU_ASSERT_VALUES(g, r, 1e-6, log(2.0));
  TU_ASSERT_DTYPE(g, smelt_logsumexp(g, TU_VEC(g, I64, 1), 0, NULL, false), F32);
  smelt_graph_free(g);
}
END_TEST

START_TEST(float_reductions_reject_ints) {
  /* mean, var, std need a float tensor; logsumexp computes integers and
   * bool in f32 (as PyTorch) */
  smelt_dtype a = (smelt_dtype)(2 + _i); /* i32, i64, bool */
  const char *names[] = {"mean", "var", "std"};
  /* both floats are accepted and keep their dtype */
  smelt_graph *g0 = TU_GRAPH();
  TU_ASSERT_DTYPE(g0, smelt_mean(g0, vec(g0, F64), 0, NULL, false), F64);
  TU_ASSERT_DTYPE(g0, smelt_std(g0, vec(g0, F32), 0, NULL, 1, false), F32);
  TU_ASSERT_DTYPE(g0, smelt_logsumexp(g0, vec(g0, F64), 0, NULL, false), F64);
  smelt_graph_free(g0);
  for (int k = 0; k < 3; k++) {
    smelt_graph *g = TU_GRAPH();
    smelt_node x = vec(g, a), r;
    switch (k) {
    case 0: r = smelt_mean(g, x, 0, NULL, false); break;
    case 1: r = smelt_var(g, x, 0, NULL, 1, false); break;
    default: r = smelt_std(g, x, 0, NULL, 1, false); break;
    }
    ck_assert_msg(!smelt_node_valid(r), "%s(%s) should fail", names[k], smelt_dtype_name(a));
    TU_ASSERT_ERROR(g, names[k], smelt_dtype_name(a));
    smelt_graph_free(g);
  }
}
END_TEST

/* ------------------------------------------------------------- cast */

START_TEST(cast_float_to_int_truncates) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, F32, -2.7, -0.5, 0.5, 2.7, -3, 1e6);
  smelt_node i = smelt_cast(g, x, I32);
  TU_ASSERT_DTYPE(g, i, I32);
  TU_ASSERT_VALUES(g, i, 0, -2, 0, 0, 2, -3, 1e6);
  smelt_node l = smelt_cast(g, TU_VEC(g, F64, -9.99, 9.99, 4e15 + 0.5), I64);
  TU_ASSERT_VALUES(g, l, 0, -9, 9, 4e15);
  smelt_graph_free(g);
}
END_TEST

START_TEST(cast_to_bool_is_nonzero) {
  smelt_graph *g = TU_GRAPH();
  smelt_node b = smelt_cast(g, TU_VEC(g, F32, 0, -0.0, 0.1, -3, NAN, INFINITY), BOOL);
  TU_ASSERT_DTYPE(g, b, BOOL);
  TU_ASSERT_VALUES(g, b, 0, 0, 0, 1, 1, 1, 1);
  smelt_node bi = smelt_cast(g, TU_VEC(g, I64, 0, 2, -1), BOOL);
  TU_ASSERT_VALUES(g, bi, 0, 0, 1, 1);
  /* bool stored as exactly 0 or 1 */
  uint8_t *raw = TU_RUN1(g, bi);
  ck_assert(raw[0] == 0 && raw[1] == 1 && raw[2] == 1);
  free(raw);
  smelt_graph_free(g);
}
END_TEST

START_TEST(cast_widen_and_from_bool) {
  smelt_graph *g = TU_GRAPH();
  TU_ASSERT_VALUES(g, smelt_cast(g, TU_VEC(g, BOOL, 1, 0), F32), 0, 1, 0);
  TU_ASSERT_VALUES(g, smelt_cast(g, TU_VEC(g, BOOL, 1, 0), I64), 0, 1, 0);
  TU_ASSERT_VALUES(g, smelt_cast(g, TU_VEC(g, I32, -5, 7), F64), 0, -5, 7);
  /* f64 -> f32 rounds to nearest */
  smelt_node r = smelt_cast(g, TU_VEC(g, F64, 0.1), F32);
  TU_ASSERT_DTYPE(g, r, F32);
  TU_ASSERT_VALUES(g, r, 0, (double)0.1f);
  /* i64 -> i32 wraps (two's complement), as PyTorch */
  r = smelt_cast(g, TU_VEC(g, I64, 4294967297.0), I32);
  TU_ASSERT_VALUES(g, r, 0, 1);
  /* cast to the same dtype keeps values */
  TU_ASSERT_VALUES(g, smelt_cast(g, TU_VEC(g, F32, 1.5), F32), 0, 1.5);
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_cast(g, TU_VEC(g, F32, 1), (smelt_dtype)9)));
  TU_ASSERT_ERROR(g, "cast", "dtype");
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------ where */

START_TEST(where_dtypes) {
  smelt_graph *g = TU_GRAPH();
  smelt_node c = TU_VEC(g, BOOL, 1, 0);
  smelt_node r = smelt_where(g, c, TU_VEC(g, I32, 1, 2), TU_VEC(g, F32, 0.5, 0.25));
  TU_ASSERT_DTYPE(g, r, F32);
  TU_ASSERT_VALUES(g, r, 0, 1, 0.25);
  r = smelt_where(g, c, TU_VEC(g, I32, 1, 2), smelt_scalar(g, 2.5));
  TU_ASSERT_DTYPE(g, r, F32);
  TU_ASSERT_VALUES(g, r, 0, 1, 2.5);
  r = smelt_where(g, c, TU_VEC(g, I32, 1, 2), smelt_scalar_int(g, -1));
  TU_ASSERT_DTYPE(g, r, I32);
  TU_ASSERT_VALUES(g, r, 0, 1, -1);
  r = smelt_where(g, c, TU_VEC(g, F64, 1, 2), TU_VEC(g, F32, 3, 4));
  TU_ASSERT_DTYPE(g, r, F64);
  r = smelt_where(g, c, TU_VEC(g, I64, 1, 2), TU_VEC(g, I32, 3, 4));
  TU_ASSERT_DTYPE(g, r, I64);
  r = smelt_where(g, c, smelt_scalar(g, 1.0), smelt_scalar(g, 0.0));
  TU_ASSERT_DTYPE(g, r, F32);
  TU_ASSERT_VALUES(g, r, 0, 1, 0);
  smelt_graph_free(g);

  static const smelt_dtype bad[] = {F32, F64, I32, I64};
  for (int k = 0; k < 4; k++) {
    g = TU_GRAPH();
    ck_assert(!smelt_node_valid(
        smelt_where(g, vec(g, bad[k]), TU_VEC(g, F32, 1, 2, 3), TU_VEC(g, F32, 1, 2, 3))));
    TU_ASSERT_ERROR(g, "where", "bool", smelt_dtype_name(bad[k]));
    smelt_graph_free(g);
  }
}
END_TEST

/* ----------------------------------------------------- other misuse */

START_TEST(misuse_errors) {
  smelt_graph *g;
  /* indices must be integers */
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_one_hot(g, TU_VEC(g, F32, 0, 1), 3)));
  TU_ASSERT_ERROR(g, "one_hot", "f32");
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_gather(g, vec(g, F32), 0, TU_VEC(g, F32, 0, 1))));
  TU_ASSERT_ERROR(g, "gather");
  smelt_graph_free(g);


  /* cross_entropy: float logits, integer labels */
  g = TU_GRAPH();
  smelt_node logits = smelt_zeros(g, F32, 2, TU_DIMS(2, 3));
  ck_assert(!smelt_node_valid(smelt_cross_entropy(g, logits, TU_VEC(g, F32, 0, 1))));
  TU_ASSERT_ERROR(g, "cross_entropy", "labels");
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(
      smelt_cross_entropy(g, smelt_zeros(g, I64, 2, TU_DIMS(2, 3)), TU_VEC(g, I64, 0, 1))));
  TU_ASSERT_ERROR(g, "cross_entropy", "logits");
  smelt_graph_free(g);

  /* random numbers need a float dtype */
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_rand(g, I32, 1, TU_DIMS(3), 1)));
  TU_ASSERT_ERROR(g, "rand", "i32");
  smelt_graph_free(g);

  /* unknown dtypes */
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_zeros(g, (smelt_dtype)5, 1, TU_DIMS(3))));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_const(g, (smelt_dtype)-1, 1)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_arange(g, (smelt_dtype)42, 0, 3, 1)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);
}
END_TEST

/* Index dtype errors of composites name the op the caller used (and the
 * dtype), not the primitive they are built from. */
START_TEST(index_dtype_errors_name_op) {
  smelt_graph *g = TU_GRAPH();
  smelt_node r;
  const char *op;
  if (_i == 0) {
    op = "index_select";
    r = smelt_index_select(g, vec(g, F32), 0, TU_VEC(g, BOOL, 0, 1));
  } else {
    op = "embedding";
    r = smelt_embedding(g, smelt_ones(g, F32, 2, TU_DIMS(4, 2)), TU_VEC(g, F64, 0, 1));
  }
  ck_assert(!smelt_node_valid(r));
  TU_ASSERT_ERROR(g, _i == 0 ? "bool" : "f64");
  TU_ASSERT_ERROR(g, op);
  smelt_graph_free(g);
}
END_TEST

START_TEST(assign_dtypes) {
  /* value cast to the param's dtype; a higher category is an error */
  smelt_graph *g = TU_GRAPH();
  smelt_node pf = smelt_param(g, "pf", F32, 1, TU_DIMS(2), smelt_init_zeros());
  smelt_node a = smelt_assign(g, pf, TU_VEC(g, I64, 3, -4));
  TU_ASSERT_DTYPE(g, a, F32);
  TU_ASSERT_VALUES(g, a, 0, 3, -4);
  smelt_node pd = smelt_param(g, "pd", F64, 1, TU_DIMS(2), smelt_init_zeros());
  TU_ASSERT_DTYPE(g, smelt_assign(g, pd, TU_VEC(g, F32, 0.5, 1)), F64);
  smelt_node pi = smelt_param(g, "pi", I32, 1, TU_DIMS(2), smelt_init_zeros());
  smelt_node b = smelt_assign(g, pi, TU_VEC(g, I64, 7, 8));
  TU_ASSERT_DTYPE(g, b, I32);
  TU_ASSERT_VALUES(g, b, 0, 7, 8);
  TU_ASSERT_DTYPE(g, smelt_assign(g, pi, smelt_scalar_int(g, 5)), I32);
  TU_ASSERT_DTYPE(g, smelt_assign(g, pi, TU_VEC(g, BOOL, 1, 0)), I32);
  smelt_graph_free(g);

  g = TU_GRAPH();
  pi = smelt_param(g, "pi", I32, 1, TU_DIMS(2), smelt_init_zeros());
  ck_assert(!smelt_node_valid(smelt_assign(g, pi, TU_VEC(g, F32, 1.5, 2))));
  TU_ASSERT_ERROR(g, "assign", "f32", "i32");
  smelt_graph_free(g);

  g = TU_GRAPH();
  pi = smelt_param(g, "pi", I64, 1, TU_DIMS(2), smelt_init_zeros());
  ck_assert(!smelt_node_valid(smelt_assign(g, pi, smelt_scalar(g, 1.5))));
  TU_ASSERT_ERROR(g, "assign");
  smelt_graph_free(g);

  g = TU_GRAPH();
  smelt_node pb = smelt_param(g, "pb", BOOL, 1, TU_DIMS(2), smelt_init_zeros());
  ck_assert(!smelt_node_valid(smelt_assign(g, pb, TU_VEC(g, I32, 1, 0))));
  TU_ASSERT_ERROR(g, "assign");
  smelt_graph_free(g);
}
END_TEST

START_TEST(concat_matmul_promote) {
  smelt_graph *g = TU_GRAPH();
  smelt_node c = smelt_concat(g, 3, (smelt_node[]){vec(g, I32), vec(g, F32), vec(g, BOOL)}, 0);
  TU_ASSERT_DTYPE(g, c, F32);
  TU_ASSERT_VALUES(g, c, 0, 1, 2, 3, 1, 2, 3, 1, 0, 1);
  c = smelt_concat(g, 2, (smelt_node[]){vec(g, I32), vec(g, I64)}, 0);
  TU_ASSERT_DTYPE(g, c, I64);
  smelt_node s = smelt_stack(g, 2, (smelt_node[]){vec(g, I32), vec(g, F64)}, 0);
  TU_ASSERT_DTYPE(g, s, F64);
  TU_ASSERT_SHAPE(g, s, 2, 2, 3);
  smelt_node m = smelt_matmul(g, vec(g, I32), vec(g, F32));
  TU_ASSERT_DTYPE(g, m, F32);
  TU_ASSERT_VALUES(g, m, 0, 14);
  m = smelt_matmul(g, vec(g, I64), vec(g, I64));
  TU_ASSERT_DTYPE(g, m, I64);
  TU_ASSERT_VALUES(g, m, 0, 14);
  smelt_graph_free(g);
}
END_TEST

START_TEST(sources_dtypes) {
  smelt_graph *g = TU_GRAPH();
  for (int d = 0; d < NDT; d++) {
    smelt_dtype dt = (smelt_dtype)d;
    TU_ASSERT_DTYPE(g, smelt_zeros(g, dt, 1, TU_DIMS(2)), dt);
    TU_ASSERT_DTYPE(g, smelt_ones(g, dt, 1, TU_DIMS(2)), dt);
    TU_ASSERT_DTYPE(g, smelt_full(g, dt, 1, TU_DIMS(2), 1), dt);
    TU_ASSERT_DTYPE(g, smelt_eye(g, dt, 2, 2), dt);
    TU_ASSERT_DTYPE(g, smelt_const(g, dt, 1), dt);
  }
  TU_ASSERT_DTYPE(g, smelt_arange(g, I32, 0, 3, 1), I32);
  TU_ASSERT_DTYPE(g, smelt_arange(g, F64, 0, 3, 1), F64);
  TU_ASSERT_DTYPE(g, smelt_linspace(g, F64, 0, 1, 3), F64);
  TU_ASSERT_VALUES(g, smelt_full(g, I32, 1, TU_DIMS(2), 7), 0, 7, 7);
  TU_ASSERT_VALUES(g, smelt_ones(g, BOOL, 1, TU_DIMS(2)), 0, 1, 1);
  TU_ASSERT_VALUES(g, smelt_arange(g, I64, 0, 3, 1), 0, 0, 1, 2);
  smelt_graph_free(g);
}
END_TEST

static Suite *dtype_suite(void) {
  Suite *s = suite_create("dtype");
  TCase *tc = tcase_create("promotion");
  tcase_add_loop_test(tc, promote_tensor_tensor, 0, NDT * NDT);
  tcase_add_loop_test(tc, promote_rank0_rank0, 0, NDT * NDT);
  tcase_add_loop_test(tc, promote_ranked_rank0, 0, NDT * NDT);
  tcase_add_loop_test(tc, promote_literals, 0, NDT);
  tcase_add_test(tc, literal_values);
  tcase_add_test(tc, literals_alone);
  tcase_add_test(tc, literal_out_of_range);
  tcase_add_loop_test(tc, div_is_true_division, 0, NDT);
  tcase_add_test(tc, div_int_by_zero);
  tcase_add_loop_test(tc, comparisons_give_bool, 0, NDT * NDT);
  tcase_add_test(tc, comparison_values);
  tcase_add_test(tc, concat_matmul_promote);
  tcase_add_test(tc, sources_dtypes);
  suite_add_tcase(s, tc);

  tc = tcase_create("ops");
  tcase_add_loop_test(tc, unary_float_ops_on_ints, 0, NDT);
  tcase_add_loop_test(tc, unary_same_dtype_ops, 0, NDT);
  tcase_add_test(tc, unary_int_values);
  tcase_add_test(tc, pow_dtypes);
  tcase_add_test(tc, bool_arith_errors);
  tcase_add_loop_test(tc, reduction_dtypes, 0, NDT);
  tcase_add_test(tc, sum_i32_no_overflow);
  tcase_add_loop_test(tc, float_reductions_reject_ints, 0, 3);
  tcase_add_test(tc, logsumexp_of_ints);
  suite_add_tcase(s, tc);

  tc = tcase_create("cast");
  tcase_add_test(tc, cast_float_to_int_truncates);
  tcase_add_test(tc, cast_to_bool_is_nonzero);
  tcase_add_test(tc, cast_widen_and_from_bool);
  tcase_add_test(tc, where_dtypes);
  tcase_add_test(tc, misuse_errors);
  tcase_add_loop_test(tc, index_dtype_errors_name_op, 0, 2);
  tcase_add_test(tc, assign_dtypes);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(dtype_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
