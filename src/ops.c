/* The op table: one row per primitive. A row says how the op is written in
 * text, its class (which decides shape inference in build.c and evaluation
 * in interp.c), its dtype rule and its scalar semantics. Later stages add
 * their columns here (gradient rule, lowering). */
#include "internal.h"

#include <math.h>
#include <string.h>

/* Float semantics follow IEEE and PyTorch on the CPU. */
static double f_neg(double a, double b) { (void)b; return -a; }
static double f_abs(double a, double b) { (void)b; return fabs(a); }
/* sign(NaN) is 0 in PyTorch (NumPy gives NaN); we follow PyTorch. */
static double f_sign(double a, double b) {
  (void)b;
  return (a > 0) - (a < 0);
}
static double f_exp(double a, double b) { (void)b; return exp(a); }
static double f_log(double a, double b) { (void)b; return log(a); }
static double f_sqrt(double a, double b) { (void)b; return sqrt(a); }
static double f_rsqrt(double a, double b) { (void)b; return 1.0 / sqrt(a); }
static double f_recip(double a, double b) { (void)b; return 1.0 / a; }
static double f_sin(double a, double b) { (void)b; return sin(a); }
static double f_cos(double a, double b) { (void)b; return cos(a); }
static double f_tanh(double a, double b) { (void)b; return tanh(a); }
static double f_sigmoid(double a, double b) {
  (void)b;
  /* Stable for large |a|: never exp of a large positive number. */
  if (a >= 0) return 1.0 / (1.0 + exp(-a));
  double e = exp(a);
  return e / (1.0 + e);
}
/* NaN and -0 pass through, as PyTorch's relu (clamp_min(x, 0)). */
static double f_relu(double a, double b) { (void)b; return a < 0 ? 0.0 : a; }
static double f_not(double a, double b) { (void)b; return a == 0; }
static double f_id(double a, double b) { (void)b; return a; }
static double f_add(double a, double b) { return a + b; }
static double f_sub(double a, double b) { return a - b; }
static double f_mul(double a, double b) { return a * b; }
static double f_div(double a, double b) { return a / b; }
static double f_pow(double a, double b) { return pow(a, b); }
static double f_max(double a, double b) { return isnan(a) || isnan(b) ? NAN : (a > b ? a : b); }
static double f_min(double a, double b) { return isnan(a) || isnan(b) ? NAN : (a < b ? a : b); }
static double f_lt(double a, double b) { return a < b; }
static double f_le(double a, double b) { return a <= b; }
static double f_gt(double a, double b) { return a > b; }
static double f_ge(double a, double b) { return a >= b; }
static double f_eq(double a, double b) { return a == b; }
static double f_ne(double a, double b) { return a != b; }
static double f_and(double a, double b) { return a != 0 && b != 0; }
static double f_or(double a, double b) { return a != 0 || b != 0; }

/* Integer semantics: two's complement wrap-around as PyTorch's int tensors
 * (computed in unsigned to keep C's overflow rules out of it). */
static int64_t i_neg(int64_t a, int64_t b) { (void)b; return (int64_t)(0 - (uint64_t)a); }
static int64_t i_abs(int64_t a, int64_t b) { (void)b; return a < 0 ? (int64_t)(0 - (uint64_t)a) : a; }
static int64_t i_sign(int64_t a, int64_t b) { (void)b; return (a > 0) - (a < 0); }
static int64_t i_relu(int64_t a, int64_t b) { (void)b; return a > 0 ? a : 0; }
static int64_t i_not(int64_t a, int64_t b) { (void)b; return a == 0; }
static int64_t i_id(int64_t a, int64_t b) { (void)b; return a; }
static int64_t i_add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static int64_t i_sub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static int64_t i_mul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
static int64_t i_pow(int64_t a, int64_t b) {
  /* Negative exponents: 1/a^|b| truncated, as integer pow in PyTorch for
   * a = 1 or -1, and 0 otherwise. */
  if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
  uint64_t r = 1, x = (uint64_t)a;
  while (b) {
    if (b & 1) r *= x;
    x *= x;
    b >>= 1;
  }
  return (int64_t)r;
}
static int64_t i_max(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t i_min(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t i_lt(int64_t a, int64_t b) { return a < b; }
static int64_t i_le(int64_t a, int64_t b) { return a <= b; }
static int64_t i_gt(int64_t a, int64_t b) { return a > b; }
static int64_t i_ge(int64_t a, int64_t b) { return a >= b; }
static int64_t i_eq(int64_t a, int64_t b) { return a == b; }
static int64_t i_ne(int64_t a, int64_t b) { return a != b; }
static int64_t i_and(int64_t a, int64_t b) { return a != 0 && b != 0; }
static int64_t i_or(int64_t a, int64_t b) { return a != 0 || b != 0; }

#define SRC(n, af) {n, OPC_SOURCE, 0, DTR_NONE, af, NULL, NULL}
#define UN(n, rule, f, i) {n, OPC_UNARY, 1, rule, ATF_NONE, f, i}
#define BIN(n, rule, f, i) {n, OPC_BINARY, 2, rule, ATF_NONE, f, i}

const sm_op_info sm_ops[OP_COUNT] = {
    [OP_INPUT] = SRC("input", ATF_NONE),
    [OP_PARAM] = SRC("param", ATF_PARAM),
    [OP_CONST] = SRC("const", ATF_CONST),
    [OP_IOTA] = SRC("iota", ATF_IOTA),
    [OP_RAND] = SRC("rand", ATF_RAND),
    [OP_RANDN] = SRC("randn", ATF_RAND),
    [OP_TRAINING] = SRC("training", ATF_NONE),

    [OP_NEG] = UN("neg", DTR_SAME, f_neg, i_neg),
    [OP_ABS] = UN("abs", DTR_SAME, f_abs, i_abs),
    [OP_SIGN] = UN("sign", DTR_SAME, f_sign, i_sign),
    [OP_EXP] = UN("exp", DTR_FLOAT, f_exp, NULL),
    [OP_LOG] = UN("log", DTR_FLOAT, f_log, NULL),
    [OP_SQRT] = UN("sqrt", DTR_FLOAT, f_sqrt, NULL),
    [OP_RSQRT] = UN("rsqrt", DTR_FLOAT, f_rsqrt, NULL),
    [OP_RECIPROCAL] = UN("reciprocal", DTR_FLOAT, f_recip, NULL),
    [OP_SIN] = UN("sin", DTR_FLOAT, f_sin, NULL),
    [OP_COS] = UN("cos", DTR_FLOAT, f_cos, NULL),
    [OP_TANH] = UN("tanh", DTR_FLOAT, f_tanh, NULL),
    [OP_SIGMOID] = UN("sigmoid", DTR_FLOAT, f_sigmoid, NULL),
    [OP_RELU] = UN("relu", DTR_SAME, f_relu, i_relu),
    [OP_NOT] = UN("logical_not", DTR_LOGICAL, f_not, i_not),
    [OP_STOP_GRADIENT] = UN("stop_gradient", DTR_SAME_BOOL, f_id, i_id),
    [OP_CAST] = UN("cast", DTR_NONE, f_id, i_id),

    [OP_ADD] = BIN("add", DTR_SAME_BOOL, f_add, i_add),
    [OP_SUB] = BIN("sub", DTR_NO_BOOL, f_sub, i_sub),
    [OP_MUL] = BIN("mul", DTR_SAME_BOOL, f_mul, i_mul),
    [OP_DIV] = BIN("div", DTR_FLOAT, f_div, NULL),
    [OP_POW] = BIN("pow", DTR_SAME, f_pow, i_pow),
    [OP_MAXIMUM] = BIN("maximum", DTR_SAME_BOOL, f_max, i_max),
    [OP_MINIMUM] = BIN("minimum", DTR_SAME_BOOL, f_min, i_min),
    [OP_LT] = BIN("lt", DTR_COMPARE, f_lt, i_lt),
    [OP_LE] = BIN("le", DTR_COMPARE, f_le, i_le),
    [OP_GT] = BIN("gt", DTR_COMPARE, f_gt, i_gt),
    [OP_GE] = BIN("ge", DTR_COMPARE, f_ge, i_ge),
    [OP_EQ] = BIN("eq", DTR_COMPARE, f_eq, i_eq),
    [OP_NE] = BIN("ne", DTR_COMPARE, f_ne, i_ne),
    [OP_AND] = BIN("logical_and", DTR_LOGICAL, f_and, i_and),
    [OP_OR] = BIN("logical_or", DTR_LOGICAL, f_or, i_or),

    [OP_WHERE] = {"where", OPC_TERNARY, 3, DTR_NONE, ATF_NONE, NULL, NULL},

    [OP_REDUCE_SUM] = {"reduce_sum", OPC_REDUCE, 1, DTR_NONE, ATF_AXES, f_add, i_add},
    [OP_REDUCE_PROD] = {"reduce_prod", OPC_REDUCE, 1, DTR_NONE, ATF_AXES, f_mul, i_mul},
    [OP_REDUCE_MAX] = {"reduce_max", OPC_REDUCE, 1, DTR_NONE, ATF_AXES, f_max, i_max},
    [OP_REDUCE_MIN] = {"reduce_min", OPC_REDUCE, 1, DTR_NONE, ATF_AXES, f_min, i_min},
    [OP_ARGMAX] = {"reduce_argmax", OPC_ARGREDUCE, 1, DTR_NONE, ATF_AXIS, NULL, NULL},
    [OP_ARGMIN] = {"reduce_argmin", OPC_ARGREDUCE, 1, DTR_NONE, ATF_AXIS, NULL, NULL},

    [OP_RESHAPE] = {"reshape", OPC_VIEW, 1, DTR_NONE, ATF_NONE, NULL, NULL},
    [OP_PERMUTE] = {"permute", OPC_VIEW, 1, DTR_NONE, ATF_PERM, NULL, NULL},
    [OP_EXPAND] = {"expand", OPC_VIEW, 1, DTR_NONE, ATF_NONE, NULL, NULL},
    [OP_SLICE] = {"slice", OPC_VIEW, 1, DTR_NONE, ATF_SLICE, NULL, NULL},
    [OP_FLIP] = {"flip", OPC_VIEW, 1, DTR_NONE, ATF_AXES, NULL, NULL},
    [OP_UNFOLD] = {"unfold", OPC_VIEW, 1, DTR_NONE, ATF_UNFOLD, NULL, NULL},
    [OP_PAD] = {"pad", OPC_PAD, 1, DTR_NONE, ATF_PAD, NULL, NULL},
    [OP_CONCAT] = {"concat", OPC_CONCAT, -1, DTR_NONE, ATF_AXIS, NULL, NULL},

    [OP_MATMUL] = {"matmul", OPC_MATMUL, 2, DTR_NONE, ATF_NONE, NULL, NULL},
    [OP_GATHER] = {"gather", OPC_GATHER, 2, DTR_NONE, ATF_AXIS, NULL, NULL},
    [OP_SCATTER_ADD] = {"scatter_add", OPC_SCATTER, 2, DTR_NONE, ATF_AXIS, NULL, NULL},
    [OP_ASSIGN] = {"assign", OPC_ASSIGN, 2, DTR_NONE, ATF_NONE, NULL, NULL},
};

sm_op sm_op_by_name(const char *name) {
  for (int i = 0; i < OP_COUNT; i++)
    if (strcmp(sm_ops[i].name, name) == 0) return (sm_op)i;
  return OP_COUNT;
}
