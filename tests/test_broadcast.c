/* Broadcasting: a table of shape pairs (result shape or error, structure of
 * the inserted reshape/expand nodes, values against a direct C loop), the
 * PyTorch broadcasting tutorial examples with their exact results, the
 * reduction examples that go with them, and assign (the value broadcasts to
 * the target; the target never changes shape).
 *
 * Tolerances: integer-valued f32/f64 results are compared exactly; other
 * f32 results within 1e-6 absolute + 1e-6 relative unless stated. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* --------------------------------------------------------- the table */

typedef struct bcase {
  int ra;
  int64_t a[SMELT_MAX_RANK];
  int rb;
  int64_t b[SMELT_MAX_RANK];
  int rr; /* -1: incompatible */
  int64_t r[SMELT_MAX_RANK];
} bcase;

#define ERR -1, {0}
static const bcase cases[] = {
    /* rank 0 */
    {0, {0}, 0, {0}, 0, {0}},
    {0, {0}, 1, {3}, 1, {3}},
    {1, {3}, 0, {0}, 1, {3}},
    {0, {0}, 3, {2, 3, 4}, 3, {2, 3, 4}},
    {2, {1, 1}, 0, {0}, 2, {1, 1}},
    /* equal and size-1 */
    {1, {3}, 1, {3}, 1, {3}},
    {1, {3}, 1, {1}, 1, {3}},
    {1, {1}, 1, {3}, 1, {3}},
    {1, {1}, 1, {1}, 1, {1}},
    {2, {2, 3}, 1, {3}, 2, {2, 3}},
    {2, {2, 3}, 2, {2, 1}, 2, {2, 3}},
    {2, {2, 1}, 2, {1, 3}, 2, {2, 3}},
    {2, {4, 1}, 1, {3}, 2, {4, 3}},
    {1, {1}, 3, {2, 3, 4}, 3, {2, 3, 4}},
    {3, {7, 1, 1}, 3, {1, 1, 9}, 3, {7, 1, 9}},
    {3, {5, 1, 4}, 2, {3, 1}, 3, {5, 3, 4}},
    {3, {1, 2, 3}, 3, {2, 2, 3}, 3, {2, 2, 3}},
    /* NumPy documentation examples */
    {4, {8, 1, 6, 1}, 3, {7, 1, 5}, 4, {8, 7, 6, 5}},
    {3, {15, 3, 5}, 3, {15, 1, 5}, 3, {15, 3, 5}},
    {3, {15, 3, 5}, 2, {3, 5}, 3, {15, 3, 5}},
    {3, {15, 3, 5}, 2, {3, 1}, 3, {15, 3, 5}},
    {2, {5, 4}, 1, {1}, 2, {5, 4}},
    {2, {5, 4}, 1, {4}, 2, {5, 4}},
    /* PyTorch tutorial */
    {6, {1, 6, 4, 1, 7, 2}, 6, {5, 6, 1, 3, 1, 2}, 6, {5, 6, 4, 3, 7, 2}},
    {3, {3, 1, 2}, 3, {1, 8, 1}, 3, {3, 8, 2}},
    {3, {256, 256, 3}, 1, {3}, 3, {256, 256, 3}},
    {4, {2, 256, 256, 3}, 4, {2, 1, 1, 3}, 4, {2, 256, 256, 3}},
    /* size 0 */
    {1, {0}, 1, {1}, 1, {0}},
    {1, {0}, 0, {0}, 1, {0}},
    {1, {0}, 1, {0}, 1, {0}},
    {2, {0, 3}, 1, {3}, 2, {0, 3}},
    {2, {0, 3}, 2, {1, 3}, 2, {0, 3}},
    {2, {2, 0}, 2, {2, 1}, 2, {2, 0}},
    {2, {1, 0}, 2, {5, 1}, 2, {5, 0}},
    /* rank 8 */
    {8, {1, 2, 1, 2, 1, 2, 1, 2}, 8, {2, 1, 2, 1, 2, 1, 2, 1}, 8, {2, 2, 2, 2, 2, 2, 2, 2}},
    {8, {1, 2, 1, 2, 1, 2, 1, 2}, 0, {0}, 8, {1, 2, 1, 2, 1, 2, 1, 2}},
    {8, {2, 1, 1, 1, 1, 1, 1, 3}, 2, {4, 1}, 8, {2, 1, 1, 1, 1, 1, 4, 3}},
    {1, {3}, 8, {2, 1, 1, 1, 1, 1, 1, 1}, 8, {2, 1, 1, 1, 1, 1, 1, 3}},
    /* incompatible */
    {1, {3}, 1, {4}, ERR},
    {2, {2, 1}, 3, {8, 4, 3}, ERR},
    {2, {2, 3}, 2, {3, 2}, ERR},
    {1, {0}, 1, {2}, ERR},
    {1, {2}, 1, {0}, ERR},
    {2, {0, 3}, 2, {2, 3}, ERR},
    {2, {2, 3}, 1, {2}, ERR},
    {2, {4, 3}, 1, {4}, ERR},
    {2, {5, 4}, 1, {5}, ERR},
    {3, {3, 1, 2}, 3, {4, 1, 1}, ERR},
    {8, {2, 2, 2, 2, 2, 2, 2, 2}, 2, {3, 2}, ERR},
    {8, {3, 1, 1, 1, 1, 1, 1, 1}, 8, {2, 1, 1, 1, 1, 1, 1, 1}, ERR},
    {3, {256, 256, 3}, 1, {4}, ERR},
    {4, {2, 256, 256, 3}, 4, {3, 1, 1, 3}, ERR},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* The result axis (counted from the end, 1 = last) where a and b clash. */
static int clash_axis(const bcase *c) {
  int r = c->ra > c->rb ? c->ra : c->rb;
  for (int k = 1; k <= r; k++) {
    int64_t da = k <= c->ra ? c->a[c->ra - k] : 1;
    int64_t db = k <= c->rb ? c->b[c->rb - k] : 1;
    if (da != db && da != 1 && db != 1) return k;
  }
  return 0;
}

START_TEST(table_shapes) {
  const bcase *c = &cases[_i];
  char sa[64], sb[64], sr[64];
  tu_shape_str(c->ra, c->a, sa, sizeof sa);
  tu_shape_str(c->rb, c->b, sb, sizeof sb);
  smelt_graph *g = TU_GRAPH();
  smelt_node a = smelt_input(g, "a", SMELT_F32, c->ra, c->a);
  smelt_node b = smelt_input(g, "b", SMELT_F32, c->rb, c->b);
  TU_ASSERT_OK(g);
  smelt_node r = smelt_add(g, a, b);
  if (c->rr < 0) {
    ck_assert_msg(!smelt_node_valid(r), "case %d: %s + %s should fail", _i, sa, sb);
    /* The message names the op, both shapes and the dim. */
    TU_ASSERT_ERROR(g, "add", sa, sb, "dim");
    ck_assert_int_gt(clash_axis(c), 0);
  } else {
    ck_assert_msg(smelt_node_valid(r), "case %d: %s + %s: %s", _i, sa, sb,
                  smelt_graph_error(g) ? smelt_graph_error(g) : "invalid");
    ck_assert_msg(tu_shape_eq(g, r, c->rr, c->r), "case %d: %s + %s gives %s, want %s", _i, sa,
                  sb, tu_shape_str(smelt_node_rank(g, r), smelt_node_shape(g, r, NULL), sr, sizeof sr),
                  tu_shape_str(c->rr, c->r, sa, sizeof sa));
    TU_ASSERT_OK(g);
  }
  smelt_graph_free(g);
}
END_TEST

/* Both operand orders, and several ops: the same result shape or error. */
START_TEST(table_symmetric_ops) {
  const bcase *c = &cases[_i];
  smelt_node (*ops[])(smelt_graph *, smelt_node, smelt_node) = {smelt_sub, smelt_mul, smelt_maximum,
                                                                smelt_lt, smelt_logical_and};
  const char *names[] = {"sub", "mul", "maximum", "lt", "logical_and"};
  for (int k = 0; k < 5; k++) {
    smelt_graph *g = TU_GRAPH();
    smelt_node a = smelt_input(g, "a", SMELT_F32, c->ra, c->a);
    smelt_node b = smelt_input(g, "b", SMELT_F32, c->rb, c->b);
    smelt_node r = ops[k](g, b, a);
    if (c->rr < 0) {
      ck_assert(!smelt_node_valid(r));
      TU_ASSERT_ERROR(g, names[k]);
    } else {
      ck_assert_msg(tu_shape_eq(g, r, c->rr, c->r), "case %d op %s: %s", _i, names[k],
                    smelt_graph_error(g) ? smelt_graph_error(g) : "wrong shape");
    }
    smelt_graph_free(g);
  }
}
END_TEST

/* The inserted nodes: an operand whose shape differs from the result's is
 * reached through at most a reshape (adding leading 1s) and an expand to
 * the result shape; an operand with the result's shape is used directly.
 * No other ops (no copies) appear. */
START_TEST(table_structure) {
  const bcase *c = &cases[_i];
  if (c->rr < 0) return;
  smelt_graph *g = TU_GRAPH();
  smelt_node a = smelt_input(g, "a", SMELT_F32, c->ra, c->a);
  smelt_node b = smelt_input(g, "b", SMELT_F32, c->rb, c->b);
  smelt_node r = smelt_add(g, a, b);
  TU_ASSERT_OK(g);
  ck_assert_str_eq(smelt_node_op(g, r), "add");
  ck_assert_int_eq(tu_node_ninputs(g, r), 2);
  smelt_node ops[2] = {a, b};
  const bcase *cc = c;
  for (int k = 0; k < 2; k++) {
    smelt_node in = tu_node_input(g, r, k);
    int rank = k ? cc->rb : cc->ra;
    const int64_t *dims = k ? cc->b : cc->a;
    ck_assert(tu_shape_eq(g, in, c->rr, c->r));
    bool same = rank == c->rr && tu_shape_eq(g, ops[k], c->rr, c->r);
    if (same) {
      ck_assert_msg(in.index == ops[k].index, "case %d operand %d: %s inserted for an equal shape",
                    _i, k, smelt_node_op(g, in));
      continue;
    }
    /* walk back through view nodes to the operand */
    smelt_node cur = in;
    int steps = 0;
    bool saw_expand = false;
    while (cur.index != ops[k].index) {
      const char *op = smelt_node_op(g, cur);
      ck_assert_msg(op && (strcmp(op, "expand") == 0 || strcmp(op, "reshape") == 0),
                    "case %d operand %d: unexpected op %s on the broadcast path", _i, k,
                    op ? op : "(invalid)");
      saw_expand |= strcmp(op, "expand") == 0;
      ck_assert_int_eq(tu_node_ninputs(g, cur), 1);
      cur = tu_node_input(g, cur, 0);
      ck_assert_int_le(++steps, 2);
    }
    /* an expand is needed unless only leading 1s were added (reshape) */
    bool grows = false;
    for (int d = 0; d < c->rr; d++) {
      int src = d - (c->rr - rank);
      int64_t have = src >= 0 ? dims[src] : 1;
      if (have != c->r[d]) grows = true;
    }
    if (grows) ck_assert_msg(saw_expand, "case %d operand %d: no expand node", _i, k);
  }
  /* no other op in the graph */
  size_t n = smelt_graph_node_count(g);
  for (size_t i = 0; i < n; i++) {
    const char *op = smelt_node_op(g, smelt_graph_node(g, i));
    ck_assert_msg(strcmp(op, "input") == 0 || strcmp(op, "reshape") == 0 ||
                      strcmp(op, "expand") == 0 || strcmp(op, "add") == 0,
                  "case %d: unexpected op %s", _i, op);
  }
  smelt_graph_free(g);
}
END_TEST

/* Values against a direct C loop: a[i] = i + 1, b[j] = 1000 * (j + 1). */
static int64_t bidx(int rr, const int64_t *r, const int64_t *idx, int rank, const int64_t *dims) {
  int64_t off = 0;
  for (int d = 0; d < rank; d++) {
    int64_t i = dims[d] == 1 ? 0 : idx[d + (rr - rank)];
    off = off * dims[d] + i;
  }
  (void)r;
  return off;
}

START_TEST(table_values) {
  const bcase *c = &cases[_i];
  if (c->rr < 0) return;
  int64_t na = 1, nb = 1, nr = 1;
  for (int d = 0; d < c->ra; d++) na *= c->a[d];
  for (int d = 0; d < c->rb; d++) nb *= c->b[d];
  for (int d = 0; d < c->rr; d++) nr *= c->r[d];
  double *av = malloc(sizeof(double) * (size_t)(na ? na : 1));
  double *bv = malloc(sizeof(double) * (size_t)(nb ? nb : 1));
  for (int64_t i = 0; i < na; i++) av[i] = (double)(i + 1);
  for (int64_t i = 0; i < nb; i++) bv[i] = 1000.0 * (double)(i + 1);
  smelt_graph *g = TU_GRAPH();
  smelt_node a = smelt_input(g, "a", SMELT_F64, c->ra, c->a);
  smelt_node b = smelt_input(g, "b", SMELT_F64, c->rb, c->b);
  smelt_node r = smelt_add(g, a, b);
  tu_bind binds[2] = {{"a", av}, {"b", bv}};
  double *got = TU_EVAL_WITH(g, r, 2, binds);
  int64_t idx[SMELT_MAX_RANK] = {0};
  for (int64_t i = 0; i < nr; i++) {
    double want = av[bidx(c->rr, c->r, idx, c->ra, c->a)] + bv[bidx(c->rr, c->r, idx, c->rb, c->b)];
    TU_CHECK(got[i] == want, "case %d element %lld: got %g want %g", _i, (long long)i, got[i],
                  want);
    for (int d = c->rr - 1; d >= 0; d--) {
      if (++idx[d] < c->r[d]) break;
      idx[d] = 0;
    }
  }
  free(got);
  free(av);
  free(bv);
  smelt_graph_free(g);
}
END_TEST

START_TEST(table_has_enough_cases) {
  int ok = 0, bad = 0;
  for (int i = 0; i < NCASES; i++) *(cases[i].rr < 0 ? &bad : &ok) += 1;
  ck_assert_int_ge(NCASES, 40);
  ck_assert_int_ge(bad, 10);
  ck_assert_int_ge(ok, 30);
}
END_TEST

START_TEST(where_three_way) {
  /* where broadcasts all three operands: cond [3,1], a [4], b [] */
  smelt_graph *g = TU_GRAPH();
  smelt_node cond = TU_ARR(g, SMELT_BOOL, 2, TU_DIMS(3, 1), 1, 0, 1);
  smelt_node a = TU_VEC(g, SMELT_F32, 1, 2, 3, 4);
  smelt_node b = smelt_const(g, SMELT_F32, -1);
  smelt_node r = smelt_where(g, cond, a, b);
  TU_ASSERT_SHAPE(g, r, 2, 3, 4);
  TU_ASSERT_VALUES(g, r, 0, 1, 2, 3, 4, -1, -1, -1, -1, 1, 2, 3, 4);
  /* incompatible condition */
  smelt_node bad = smelt_where(g, TU_ARR(g, SMELT_BOOL, 1, TU_DIMS(2), 1, 0), a, b);
  ck_assert(!smelt_node_valid(bad));
  TU_ASSERT_ERROR(g, "where", "[2]", "[4]");
  smelt_graph_free(g);
}
END_TEST

START_TEST(broadcast_to) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, SMELT_I32, 1, 2, 3);
  smelt_node y = smelt_broadcast_to(g, x, 2, TU_DIMS(2, 3));
  TU_ASSERT_SHAPE(g, y, 2, 2, 3);
  ck_assert_str_eq(smelt_node_op(g, y), "expand");
  TU_ASSERT_VALUES(g, y, 0, 1, 2, 3, 1, 2, 3);
  /* to its own shape: the node itself */
  ck_assert_uint_eq(smelt_broadcast_to(g, x, 1, TU_DIMS(3)).index, x.index);
  smelt_node s = smelt_broadcast_to(g, smelt_const(g, SMELT_F64, 2.5), 2, TU_DIMS(2, 2));
  TU_ASSERT_VALUES(g, s, 0, 2.5, 2.5, 2.5, 2.5);
  smelt_node e = smelt_broadcast_to(g, TU_ARR(g, SMELT_F32, 2, TU_DIMS(1, 1), 7), 3, TU_DIMS(2, 0, 4));
  TU_ASSERT_SHAPE(g, e, 3, 2, 0, 4);
  smelt_graph_free(g);

  /* broadcasting never shrinks */
  g = TU_GRAPH();
  x = tu_input(g, "x", SMELT_F32, 2, 2, 3);
  ck_assert(!smelt_node_valid(smelt_broadcast_to(g, x, 1, TU_DIMS(3))));
  TU_ASSERT_ERROR(g, "broadcast_to", "[2,3]", "[3]");
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", SMELT_F32, 1, 3);
  ck_assert(!smelt_node_valid(smelt_broadcast_to(g, x, 2, TU_DIMS(2, 4))));
  TU_ASSERT_ERROR(g, "broadcast_to", "[3]", "[2,4]");
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------- tutorial examples */

START_TEST(tut_scalar_times_vector) {
  /* [1,2,3] * 2 = [2,4,6], the literal does not widen the tensor */
  smelt_graph *g = TU_GRAPH();
  smelt_node a = TU_VEC(g, SMELT_F32, 1, 2, 3);
  smelt_node r = smelt_mul(g, a, smelt_scalar_int(g, 2));
  TU_ASSERT_DTYPE(g, r, SMELT_F32);
  TU_ASSERT_SHAPE(g, r, 1, 3);
  TU_ASSERT_VALUES(g, r, 0, 2, 4, 6);
  smelt_node r2 = smelt_mul(g, smelt_scalar(g, 2.0), a);
  TU_ASSERT_DTYPE(g, r2, SMELT_F32);
  TU_ASSERT_VALUES(g, r2, 0, 2, 4, 6);
  smelt_graph_free(g);
}
END_TEST

START_TEST(tut_vector_plus_one) {
  /* [1,2,3,4] + [3] = [4,5,6,7] */
  smelt_graph *g = TU_GRAPH();
  smelt_node r = smelt_add(g, TU_VEC(g, SMELT_F32, 1, 2, 3, 4), TU_VEC(g, SMELT_F32, 3));
  TU_ASSERT_SHAPE(g, r, 1, 4);
  TU_ASSERT_VALUES(g, r, 0, 4, 5, 6, 7);
  smelt_graph_free(g);
}
END_TEST

START_TEST(tut_matrix_times_row) {
  /* [[1,2],[3,4]] * [2,4] = [[2,8],[6,16]] */
  smelt_graph *g = TU_GRAPH();
  smelt_node m = TU_ARR(g, SMELT_F32, 2, TU_DIMS(2, 2), 1, 2, 3, 4);
  smelt_node r = smelt_mul(g, m, TU_VEC(g, SMELT_F32, 2, 4));
  TU_ASSERT_SHAPE(g, r, 2, 2, 2);
  TU_ASSERT_VALUES(g, r, 0, 2, 8, 6, 16);
  smelt_graph_free(g);
}
END_TEST

START_TEST(tut_matrix_div_one) {
  /* [[1,2],[3,4]] / [3] = [[1/3, 2/3], [1, 4/3]]; also for integer
   * tensors, where div is true division giving f32. */
  smelt_graph *g = TU_GRAPH();
  smelt_node m = TU_ARR(g, SMELT_F32, 2, TU_DIMS(2, 2), 1, 2, 3, 4);
  smelt_node r = smelt_div(g, m, TU_VEC(g, SMELT_F32, 3));
  TU_ASSERT_SHAPE(g, r, 2, 2, 2);
  TU_ASSERT_VALUES(g, r, 1e-7, 1.0 / 3, 2.0 / 3, 1, 4.0 / 3);
  smelt_node mi = TU_ARR(g, SMELT_I64, 2, TU_DIMS(2, 2), 1, 2, 3, 4);
  smelt_node ri = smelt_div(g, mi, TU_VEC(g, SMELT_I64, 3));
  TU_ASSERT_DTYPE(g, ri, SMELT_F32);
  TU_ASSERT_VALUES(g, ri, 1e-7, 1.0 / 3, 2.0 / 3, 1, 4.0 / 3);
  smelt_graph_free(g);
}
END_TEST

START_TEST(tut_matrix_times_column) {
  /* [[1,2],[3,4]] * [[3],[2]] = [[3,6],[6,8]] */
  smelt_graph *g = TU_GRAPH();
  smelt_node m = TU_ARR(g, SMELT_F32, 2, TU_DIMS(2, 2), 1, 2, 3, 4);
  smelt_node c = TU_ARR(g, SMELT_F32, 2, TU_DIMS(2, 1), 3, 2);
  smelt_node r = smelt_mul(g, m, c);
  TU_ASSERT_SHAPE(g, r, 2, 2, 2);
  TU_ASSERT_VALUES(g, r, 0, 3, 6, 6, 8);
  smelt_graph_free(g);
}
END_TEST

START_TEST(tut_ones_plus_arange_row) {
  /* ones(6,5) + arange(5).reshape(1,5): every row is [1,2,3,4,5] */
  smelt_graph *g = TU_GRAPH();
  smelt_node ones = smelt_ones(g, SMELT_F32, 2, TU_DIMS(6, 5));
  smelt_node ar = smelt_reshape(g, smelt_arange(g, SMELT_F32, 0, 5, 1), 2, TU_DIMS(1, 5));
  smelt_node r = smelt_add(g, ones, ar);
  TU_ASSERT_SHAPE(g, r, 2, 6, 5);
  double want[30];
  for (int i = 0; i < 30; i++) want[i] = i % 5 + 1;
  TU_ASSERT_VALUES_A(g, r, 0, 30, want);
  smelt_graph_free(g);
}
END_TEST

START_TEST(tut_shape_examples) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = smelt_zeros(g, SMELT_F32, 6, TU_DIMS(1, 6, 4, 1, 7, 2));
  smelt_node b = smelt_ones(g, SMELT_F32, 6, TU_DIMS(5, 6, 1, 3, 1, 2));
  smelt_node r = smelt_add(g, a, b);
  TU_ASSERT_SHAPE(g, r, 6, 5, 6, 4, 3, 7, 2);
  smelt_node c = smelt_arange(g, SMELT_F32, 0, 6, 1);
  smelt_node x = smelt_reshape(g, c, 3, TU_DIMS(3, 1, 2));
  smelt_node y = smelt_reshape(g, smelt_arange(g, SMELT_F32, 1, 9, 1), 3, TU_DIMS(1, 8, 1));
  smelt_node p = smelt_mul(g, x, y);
  TU_ASSERT_SHAPE(g, p, 3, 3, 8, 2);
  double want[48];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 8; j++)
      for (int k = 0; k < 2; k++) want[(i * 8 + j) * 2 + k] = (double)(i * 2 + k) * (j + 1);
  TU_ASSERT_VALUES_A(g, p, 0, 48, want);
  smelt_graph_free(g);
}
END_TEST

/* Deterministic image data in [0, 1]. */
static float *image(int64_t n) {
  float *v = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) v[i] = (float)((i * 7919 + 13) % 256) / 255.0f;
  return v;
}

START_TEST(tut_image_times_channels) {
  /* a 256x256x3 image times [0.5, 1.5, 1] scales each channel */
  const int64_t n = 256 * 256 * 3;
  float *img = image(n);
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "img", SMELT_F32, 3, 256, 256, 3);
  smelt_node r = smelt_mul(g, x, TU_VEC(g, SMELT_F32, 0.5, 1.5, 1));
  TU_ASSERT_SHAPE(g, r, 3, 256, 256, 3);
  TU_ASSERT_DTYPE(g, r, SMELT_F32);
  tu_bind bind = {"img", img};
  float *got = TU_RUN1_WITH(g, r, 1, &bind);
  static const float scale[3] = {0.5f, 1.5f, 1.0f};
  for (int64_t i = 0; i < n; i++) {
    float want = img[i] * scale[i % 3];
    TU_CHECK(got[i] == want, "element %lld: got %.9g want %.9g", (long long)i, got[i], want);
  }
  free(got);
  free(img);
  smelt_graph_free(g);
}
END_TEST

START_TEST(tut_batch_times_scale) {
  /* 2x256x256x3 images times a 2x1x1x3 per-image, per-channel scale */
  const int64_t n = 2 * 256 * 256 * 3;
  float *img = image(n);
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "img", SMELT_F32, 4, 2, 256, 256, 3);
  smelt_node s = TU_ARR(g, SMELT_F32, 4, TU_DIMS(2, 1, 1, 3), 0.5, 1.5, 1, 2, 0.25, 3);
  smelt_node r = smelt_mul(g, x, s);
  TU_ASSERT_SHAPE(g, r, 4, 2, 256, 256, 3);
  tu_bind bind = {"img", img};
  float *got = TU_RUN1_WITH(g, r, 1, &bind);
  static const float scale[6] = {0.5f, 1.5f, 1.0f, 2.0f, 0.25f, 3.0f};
  for (int64_t i = 0; i < n; i++) {
    int64_t b = i / (256 * 256 * 3);
    float want = img[i] * scale[b * 3 + i % 3];
    TU_CHECK(got[i] == want, "element %lld: got %.9g want %.9g", (long long)i, got[i], want);
  }
  free(got);
  free(img);
  smelt_graph_free(g);
}
END_TEST

START_TEST(tut_batch_reductions) {
  /* 5x256x256x3: mean over axis 0 gives 256x256x3, mean over -1 gives
   * 5x256x256, max over -1 gives values and indices of shape 5x256x256.
   * f32 results from double accumulation: within 1e-6 relative. */
  const int64_t hw = 256 * 256, n = 5 * hw * 3;
  float *img = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) img[i] = (float)((i * 7919 + 13) % 11) / 4.0f; /* many ties */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "img", SMELT_F32, 4, 5, 256, 256, 3);
  int ax0[1] = {0}, axm1[1] = {-1};
  smelt_node m0 = smelt_mean(g, x, 1, ax0, false);
  smelt_node m1 = smelt_mean(g, x, 1, axm1, false);
  smelt_node vals = SMELT_INVALID, idx = SMELT_INVALID;
  smelt_node ret = smelt_max_dim(g, x, -1, false, &vals, &idx);
  TU_ASSERT_OK(g);
  ck_assert_uint_eq(ret.index, vals.index);
  TU_ASSERT_SHAPE(g, m0, 3, 256, 256, 3);
  TU_ASSERT_SHAPE(g, m1, 3, 5, 256, 256);
  TU_ASSERT_SHAPE(g, vals, 3, 5, 256, 256);
  TU_ASSERT_SHAPE(g, idx, 3, 5, 256, 256);
  TU_ASSERT_DTYPE(g, m0, SMELT_F32);
  TU_ASSERT_DTYPE(g, vals, SMELT_F32);
  TU_ASSERT_DTYPE(g, idx, SMELT_I64);

  smelt_node outs[4] = {m0, m1, vals, idx};
  void *res[4];
  tu_bind bind = {"img", img};
  char *err = tu_run(g, 4, outs, res, 1, &bind);
  ck_assert_msg(err == NULL, "%s", err);
  const float *gm0 = res[0], *gm1 = res[1], *gv = res[2];
  const int64_t *gi = res[3];
  for (int64_t p = 0; p < hw * 3; p++) {
    double s = 0;
    for (int b = 0; b < 5; b++) s += img[b * hw * 3 + p];
    TU_CHECK(tu_close(gm0[p], s / 5, 0, 1e-6), "mean0[%lld] = %.9g want %.9g", (long long)p,
                  gm0[p], s / 5);
  }
  for (int64_t q = 0; q < 5 * hw; q++) {
    const float *px = img + q * 3;
    double s = (double)px[0] + px[1] + px[2];
    TU_CHECK(tu_close(gm1[q], s / 3, 0, 1e-6), "mean-1[%lld] = %.9g want %.9g", (long long)q,
                  gm1[q], s / 3);
    int best = 0;
    for (int c = 1; c < 3; c++)
      if (px[c] > px[best]) best = c;
    TU_CHECK(gv[q] == px[best], "max[%lld] = %g want %g", (long long)q, gv[q], px[best]);
    TU_CHECK(gi[q] == best, "argmax[%lld] = %lld want %d (first maximum)", (long long)q,
                  (long long)gi[q], best);
  }
  for (int k = 0; k < 4; k++) free(res[k]);
  free(img);
  smelt_graph_free(g);
}
END_TEST

START_TEST(tut_small_stats) {
  /* mean, std, max, min of [0.5, 1, 1, 3] = 1.375, 1.1087 (4 places), 3, 0.5 */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = TU_VEC(g, SMELT_F32, 0.5, 1, 1, 3);
  smelt_node mean = smelt_mean(g, x, 0, NULL, false);
  smelt_node sd = smelt_std(g, x, 0, NULL, 1, false);
  smelt_node mx = smelt_max(g, x, 0, NULL, false);
  smelt_node mn = smelt_min(g, x, 0, NULL, false);
  TU_ASSERT_SHAPE(g, mean, 0);
  TU_ASSERT_SHAPE(g, sd, 0);
  TU_ASSERT_VALUES(g, mean, 0, 1.375);
  TU_ASSERT_VALUES(g, sd, 5e-5, 1.1087);
  TU_ASSERT_VALUES(g, sd, 1e-6, 1.1086778913041726); /* sqrt(3.6875 / 3) */
  TU_ASSERT_VALUES(g, mx, 0, 3);
  TU_ASSERT_VALUES(g, mn, 0, 0.5);
  smelt_graph_free(g);
}
END_TEST

START_TEST(tut_linspace) {
  smelt_graph *g = TU_GRAPH();
  smelt_node l = smelt_linspace(g, SMELT_F32, 0, 1, 5);
  TU_ASSERT_SHAPE(g, l, 1, 5);
  TU_ASSERT_DTYPE(g, l, SMELT_F32);
  TU_ASSERT_VALUES(g, l, 0, 0, 0.25, 0.5, 0.75, 1);
  smelt_graph_free(g);
}
END_TEST

START_TEST(tut_arange_reshape_mean) {
  /* arange(20).reshape(4,5).mean(0) = [7.5, 8.5, 9.5, 10.5, 11.5] */
  smelt_graph *g = TU_GRAPH();
  int ax0[1] = {0};
  smelt_node a = smelt_reshape(g, smelt_arange(g, SMELT_F32, 0, 20, 1), 2, TU_DIMS(4, 5));
  smelt_node m = smelt_mean(g, a, 1, ax0, false);
  TU_ASSERT_SHAPE(g, m, 1, 5);
  TU_ASSERT_VALUES(g, m, 0, 7.5, 8.5, 9.5, 10.5, 11.5);
  /* integer arange cast to float, as torch.arange(20).float() */
  smelt_node ai = smelt_reshape(g, smelt_arange(g, SMELT_I64, 0, 20, 1), 2, TU_DIMS(4, 5));
  TU_ASSERT_DTYPE(g, ai, SMELT_I64);
  smelt_node mi = smelt_mean(g, smelt_cast(g, ai, SMELT_F32), 1, ax0, false);
  TU_ASSERT_VALUES(g, mi, 0, 7.5, 8.5, 9.5, 10.5, 11.5);
  smelt_node keep = smelt_mean(g, a, 1, ax0, true);
  TU_ASSERT_SHAPE(g, keep, 2, 1, 5);
  smelt_graph_free(g);
}
END_TEST

/* -------------------------------------------------------------- assign */

typedef struct acase {
  int rv;
  int64_t v[SMELT_MAX_RANK];
  bool ok;
} acase;

static const acase assign_cases[] = {
    {2, {2, 3}, true}, {1, {3}, true},      {0, {0}, true},          {2, {2, 1}, true},
    {2, {1, 3}, true}, {2, {1, 1}, true},   {1, {1}, true},          {1, {4}, false},
    {1, {2}, false},   {3, {1, 2, 3}, false}, {3, {2, 3, 1}, false}, {2, {3, 3}, false},
    {2, {4, 3}, false}, {3, {2, 2, 3}, false}, {2, {0, 3}, false},
};

START_TEST(assign_table) {
  const acase *c = &assign_cases[_i];
  char sv[64];
  tu_shape_str(c->rv, c->v, sv, sizeof sv);
  smelt_graph *g = TU_GRAPH();
  smelt_node p = smelt_param(g, "w", SMELT_F32, 2, TU_DIMS(2, 3), smelt_init_zeros());
  int64_t n = 1;
  for (int d = 0; d < c->rv; d++) n *= c->v[d];
  double vals[16];
  ck_assert_int_le(n, 16);
  for (int64_t i = 0; i < n; i++) vals[i] = (double)(i + 1);
  smelt_node v = tu_const_d(g, SMELT_F32, c->rv, c->v, vals);
  TU_ASSERT_OK(g);
  smelt_node a = smelt_assign(g, p, v);
  if (!c->ok) {
    ck_assert_msg(!smelt_node_valid(a), "assign of %s into [2,3] should fail", sv);
    TU_ASSERT_ERROR(g, "assign", sv, "[2,3]");
  } else {
    ck_assert_msg(smelt_node_valid(a), "assign of %s: %s", sv, smelt_graph_error(g));
    TU_ASSERT_SHAPE(g, a, 2, 2, 3);
    TU_ASSERT_DTYPE(g, a, SMELT_F32);
    ck_assert_str_eq(smelt_node_op(g, a), "assign");
    /* the value broadcast to [2,3] */
    double want[6];
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 3; j++) {
        int64_t idx[2] = {i, j}, off = 0;
        for (int d = 0; d < c->rv; d++) {
          int64_t k = c->v[d] == 1 ? 0 : idx[d + 2 - c->rv];
          off = off * c->v[d] + k;
        }
        want[i * 3 + j] = vals[off];
      }
    TU_ASSERT_VALUES_A(g, a, 0, 6, want);
  }
  smelt_graph_free(g);
}
END_TEST

START_TEST(assign_literal_and_target_kinds) {
  smelt_graph *g = TU_GRAPH();
  smelt_node p = smelt_param(g, "w", SMELT_F64, 1, TU_DIMS(3), smelt_init_ones());
  smelt_node a = smelt_assign(g, p, smelt_scalar(g, 2.5));
  TU_ASSERT_SHAPE(g, a, 1, 3);
  TU_ASSERT_DTYPE(g, a, SMELT_F64);
  TU_ASSERT_VALUES(g, a, 0, 2.5, 2.5, 2.5);
  /* p + 1 computed from the param's initial value */
  smelt_node b = smelt_assign(g, p, smelt_add(g, p, smelt_scalar_int(g, 1)));
  TU_ASSERT_VALUES(g, b, 0, 2, 2, 2);
  smelt_graph_free(g);

  /* only params can be assigned */
  g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 3);
  ck_assert(!smelt_node_valid(smelt_assign(g, x, smelt_scalar(g, 1.0))));
  TU_ASSERT_ERROR(g, "assign", "param");
  smelt_graph_free(g);

  g = TU_GRAPH();
  smelt_node c = TU_VEC(g, SMELT_F32, 1, 2, 3);
  ck_assert(!smelt_node_valid(smelt_assign(g, smelt_exp(g, c), smelt_scalar(g, 1.0))));
  TU_ASSERT_ERROR(g, "assign");
  smelt_graph_free(g);
}
END_TEST

static Suite *broadcast_suite(void) {
  Suite *s = suite_create("broadcast");
  TCase *tc = tcase_create("table");
  tcase_add_test(tc, table_has_enough_cases);
  tcase_add_loop_test(tc, table_shapes, 0, NCASES);
  tcase_add_loop_test(tc, table_symmetric_ops, 0, NCASES);
  tcase_add_loop_test(tc, table_structure, 0, NCASES);
  tcase_add_loop_test(tc, table_values, 0, NCASES);
  tcase_add_test(tc, where_three_way);
  tcase_add_test(tc, broadcast_to);
  suite_add_tcase(s, tc);

  tc = tcase_create("tutorial");
  tcase_add_test(tc, tut_scalar_times_vector);
  tcase_add_test(tc, tut_vector_plus_one);
  tcase_add_test(tc, tut_matrix_times_row);
  tcase_add_test(tc, tut_matrix_div_one);
  tcase_add_test(tc, tut_matrix_times_column);
  tcase_add_test(tc, tut_ones_plus_arange_row);
  tcase_add_test(tc, tut_shape_examples);
  tcase_add_test(tc, tut_image_times_channels);
  tcase_add_test(tc, tut_batch_times_scale);
  tcase_add_test(tc, tut_batch_reductions);
  tcase_add_test(tc, tut_small_stats);
  tcase_add_test(tc, tut_linspace);
  tcase_add_test(tc, tut_arange_reshape_mean);
  suite_add_tcase(s, tc);

  tc = tcase_create("assign");
  tcase_add_loop_test(tc, assign_table, 0, (int)(sizeof assign_cases / sizeof assign_cases[0]));
  tcase_add_test(tc, assign_literal_and_target_kinds);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(broadcast_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
