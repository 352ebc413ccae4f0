/* Graph core: handles, sticky errors, names, outputs, node queries, shape
 * limits, hash-consing, and allocation failure injection (every allocation
 * of building, printing and interpreting a representative graph is failed in
 * turn; each failure must give a clean "out of memory" error, and the suite
 * runs under ASan and valgrind to show nothing leaks). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

/* ------------------------------------------------------------- basics */

START_TEST(empty_graph) {
  smelt_graph *g = TU_GRAPH();
  ck_assert_ptr_null(smelt_graph_error(g));
  ck_assert_uint_eq(smelt_graph_node_count(g), 0);
  ck_assert_uint_eq(smelt_graph_output_count(g), 0);
  ck_assert(!smelt_node_valid(smelt_graph_node(g, 0)));
  const char *name = "x";
  ck_assert(!smelt_node_valid(smelt_graph_output(g, 0, &name)));
  ck_assert_ptr_null(name);
  ck_assert(!smelt_node_valid(smelt_find(g, "x")));
  smelt_graph_free(g);
  smelt_graph_free(NULL);
}
END_TEST

START_TEST(version_and_dtype_names) {
  ck_assert_str_eq(smelt_version(), "0.1.0");
  static const char *names[] = {"f32", "f64", "i32", "i64", "bool"};
  static const size_t sizes[] = {4, 8, 4, 8, 1};
  for (int i = 0; i < SMELT_DTYPE_COUNT; i++) {
    ck_assert_str_eq(smelt_dtype_name((smelt_dtype)i), names[i]);
    ck_assert_uint_eq(smelt_dtype_size((smelt_dtype)i), sizes[i]);
    smelt_dtype d = SMELT_DTYPE_COUNT;
    ck_assert(smelt_dtype_parse(names[i], &d));
    ck_assert_int_eq(d, i);
  }
  ck_assert_str_eq(smelt_dtype_name((smelt_dtype)99), "?");
  ck_assert_str_eq(smelt_dtype_name((smelt_dtype)-1), "?");
  ck_assert_uint_eq(smelt_dtype_size((smelt_dtype)99), 0);
  smelt_dtype d = SMELT_I32;
  ck_assert(!smelt_dtype_parse("float", &d));
  ck_assert(!smelt_dtype_parse("F32", &d));
  ck_assert(!smelt_dtype_parse("", &d));
  ck_assert(!smelt_dtype_parse(NULL, &d));
  ck_assert_int_eq(d, SMELT_I32);
}
END_TEST

/* ------------------------------------------------------------ handles */

START_TEST(null_graph_is_harmless) {
  smelt_node x = smelt_input(NULL, "x", SMELT_F32, 1, TU_DIMS(3));
  ck_assert(!smelt_node_valid(x));
  ck_assert(!smelt_node_valid(smelt_scalar(NULL, 1.0)));
  ck_assert(!smelt_node_valid(smelt_add(NULL, x, x)));
  ck_assert(!smelt_node_valid(smelt_neg(NULL, x)));
  ck_assert(!smelt_node_valid(smelt_sum(NULL, x, 0, NULL, false)));
  ck_assert(!smelt_node_valid(smelt_reshape(NULL, x, 1, TU_DIMS(3))));
  ck_assert(!smelt_node_valid(smelt_matmul(NULL, x, x)));
  ck_assert(!smelt_node_valid(smelt_output(NULL, "y", x)));
  ck_assert(!smelt_node_valid(smelt_set_name(NULL, x, "y")));
  ck_assert(!smelt_node_valid(smelt_find(NULL, "y")));
  ck_assert(!smelt_node_valid(smelt_graph_node(NULL, 0)));
  ck_assert_uint_eq(smelt_graph_node_count(NULL), 0);
  ck_assert_uint_eq(smelt_graph_output_count(NULL), 0);
  ck_assert_ptr_null(smelt_graph_print(NULL));
  ck_assert_ptr_null(smelt_graph_print_dot(NULL));
  ck_assert_ptr_null(smelt_node_op(NULL, x));
  ck_assert_int_eq(smelt_node_rank(NULL, x), 0);
  (void)smelt_graph_error(NULL); /* must not crash */
  smelt_node vals = SMELT_INVALID, idx = SMELT_INVALID;
  ck_assert(!smelt_node_valid(smelt_max_dim(NULL, x, 0, false, &vals, &idx)));
  ck_assert(!smelt_node_valid(vals));
  ck_assert(!smelt_node_valid(idx));
}
END_TEST

START_TEST(invalid_handle_unary) {
  smelt_graph *g = TU_GRAPH();
  smelt_node r = smelt_neg(g, SMELT_INVALID);
  ck_assert(!smelt_node_valid(r));
  TU_ASSERT_ERROR(g, "neg", "invalid");
  smelt_graph_free(g);
}
END_TEST

START_TEST(invalid_handle_binary) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 3);
  smelt_node r = smelt_add(g, x, SMELT_INVALID);
  ck_assert(!smelt_node_valid(r));
  TU_ASSERT_ERROR(g, "add", "invalid");
  smelt_graph_free(g);
}
END_TEST

START_TEST(out_of_range_handle) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 3);
  smelt_node bogus = x;
  bogus.index = 1000;
  ck_assert(!smelt_node_valid(smelt_exp(g, bogus)));
  TU_ASSERT_ERROR(g, "exp", "node");
  /* queries on the bogus handle are safe */
  ck_assert_ptr_null(smelt_node_op(g, bogus));
  ck_assert_ptr_null(smelt_node_shape(g, bogus, NULL));
  smelt_graph_free(g);
}
END_TEST

START_TEST(handle_from_another_graph) {
  smelt_graph *g1 = TU_GRAPH();
  smelt_graph *g2 = TU_GRAPH();
  smelt_node x1 = tu_input(g1, "x", SMELT_F32, 1, 3);
  smelt_node x2 = tu_input(g2, "x", SMELT_F32, 1, 3);
  /* Same index in both graphs: only the graph serial tells them apart. */
  ck_assert_uint_eq(x1.index, x2.index);
  ck_assert_uint_ne(x1.graph, x2.graph);
  smelt_node r = smelt_add(g2, x2, x1);
  ck_assert(!smelt_node_valid(r));
  TU_ASSERT_ERROR(g2, "add", "graph");
  ck_assert_ptr_null(smelt_graph_error(g1));
  /* queries refuse the foreign handle */
  ck_assert_ptr_null(smelt_node_op(g2, x1));
  ck_assert_int_eq(smelt_node_numel(g2, x1), 0);
  /* output of a foreign node */
  ck_assert(!smelt_node_valid(smelt_output(g1, "y", x2)));
  ck_assert_ptr_nonnull(smelt_graph_error(g1));
  smelt_graph_free(g1);
  smelt_graph_free(g2);
}
END_TEST

START_TEST(graph_serials_unique) {
  smelt_graph *g[16];
  for (int i = 0; i < 16; i++) {
    g[i] = TU_GRAPH();
    smelt_node x = smelt_scalar(g[i], 1.0);
    ck_assert(smelt_node_valid(x));
    ck_assert_uint_ne(x.graph, 0);
    for (int j = 0; j < i; j++) {
      smelt_node y = smelt_scalar(g[j], 1.0);
      ck_assert_uint_ne(x.graph, y.graph);
    }
  }
  for (int i = 0; i < 16; i++) smelt_graph_free(g[i]);
}
END_TEST

/* ------------------------------------------------------ sticky errors */

START_TEST(sticky_error_first_kept) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = tu_input(g, "a", SMELT_F32, 2, 2, 3);
  smelt_node b = tu_input(g, "b", SMELT_F32, 1, 4);
  smelt_node c = tu_input(g, "c", SMELT_F32, 1, 3);
  TU_ASSERT_OK(g);
  size_t count = smelt_graph_node_count(g);
  smelt_node bad = smelt_add(g, a, b);
  ck_assert(!smelt_node_valid(bad));
  const char *e1 = smelt_graph_error(g);
  ck_assert_ptr_nonnull(e1);
  char first[512];
  snprintf(first, sizeof first, "%s", e1);
  ck_assert_ptr_nonnull(strstr(first, "add"));

  /* A second, different error is dropped. */
  ck_assert(!smelt_node_valid(smelt_matmul(g, b, c)));
  /* Valid calls now return invalid handles too. */
  ck_assert(!smelt_node_valid(smelt_add(g, a, c)));
  ck_assert(!smelt_node_valid(tu_input(g, "d", SMELT_F32, 1, 3)));
  ck_assert(!smelt_node_valid(smelt_scalar(g, 1.0)));
  ck_assert(!smelt_node_valid(smelt_exp(g, bad)));
  ck_assert(!smelt_node_valid(smelt_output(g, "o", a)));
  ck_assert(!smelt_node_valid(smelt_set_name(g, a, "z")));
  ck_assert_str_eq(smelt_graph_error(g), first);
  ck_assert_uint_eq(smelt_graph_node_count(g), count);
  ck_assert_uint_eq(smelt_graph_output_count(g), 0);
  /* Queries on earlier, valid nodes still work. */
  TU_ASSERT_SHAPE(g, a, 2, 2, 3);
  ck_assert_str_eq(smelt_node_op(g, a), "input");
  /* Printing a failed graph does not crash (NULL or text, both fine). */
  char *t = smelt_graph_print(g);
  smelt_free(t);
  smelt_graph_free(g);
}
END_TEST

START_TEST(invalid_chain_never_crashes) {
  /* Invalid handles flow through every kind of builder without crashing. */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 2, 3);
  smelt_node bad = smelt_reshape(g, x, 1, TU_DIMS(7));
  ck_assert(!smelt_node_valid(bad));
  TU_ASSERT_ERROR(g, "reshape");
  int ax[1] = {0};
  int perm[2] = {1, 0};
  smelt_node v = SMELT_INVALID, i = SMELT_INVALID;
  smelt_node rs[] = {
      smelt_add(g, bad, x), smelt_where(g, bad, x, x), smelt_cast(g, bad, SMELT_I32),
      smelt_clamp(g, bad, 0, 1), smelt_sum(g, bad, 1, ax, false), smelt_mean(g, bad, 0, NULL, true),
      smelt_var(g, bad, 0, NULL, 1, false), smelt_logsumexp(g, bad, 1, ax, false),
      smelt_argmax(g, bad, 0, false), smelt_max_dim(g, bad, 0, false, &v, &i),
      smelt_permute(g, bad, perm), smelt_transpose(g, bad, 0, 1),
      smelt_expand(g, bad, 2, TU_DIMS(2, 3)), smelt_squeeze(g, bad, 0, NULL),
      smelt_unsqueeze(g, bad, 0), smelt_flatten(g, bad, 0, -1),
      smelt_slice(g, bad, NULL, NULL, NULL), smelt_flip(g, bad, 1, ax),
      smelt_pad(g, bad, TU_DIMS(1, 1), TU_DIMS(1, 1), 0), smelt_concat(g, 2, (smelt_node[]){bad, x}, 0),
      smelt_stack(g, 2, (smelt_node[]){x, bad}, 0), smelt_matmul(g, bad, x),
      smelt_gather(g, bad, 0, x), smelt_one_hot(g, bad, 3), smelt_embedding(g, bad, x),
      smelt_softmax(g, bad, -1), smelt_log_softmax(g, bad, -1), smelt_cross_entropy(g, bad, x),
      smelt_mse_loss(g, bad, x), smelt_dropout(g, bad, 0.5, 1, true), smelt_assign(g, bad, x),
      smelt_gelu(g, bad), smelt_stop_gradient(g, bad), smelt_broadcast_to(g, bad, 2, TU_DIMS(2, 3)),
  };
  for (size_t k = 0; k < sizeof rs / sizeof rs[0]; k++)
    ck_assert_msg(!smelt_node_valid(rs[k]), "builder %zu returned a valid node", k);
  ck_assert(!smelt_node_valid(v));
  ck_assert(!smelt_node_valid(i));
  TU_ASSERT_ERROR(g, "reshape");
  smelt_graph_free(g);
}
END_TEST

/* -------------------------------------------------------------- names */

START_TEST(names_set_find) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 3);
  ck_assert_str_eq(smelt_node_name(g, x), "x");
  smelt_node y = smelt_exp(g, x);
  ck_assert_ptr_null(smelt_node_name(g, y));
  ck_assert(smelt_set_name(g, y, "layer1.out_0").index == y.index);
  ck_assert_str_eq(smelt_node_name(g, y), "layer1.out_0");
  ck_assert_uint_eq(smelt_find(g, "layer1.out_0").index, y.index);
  ck_assert_uint_eq(smelt_find(g, "x").index, x.index);
  ck_assert(!smelt_node_valid(smelt_find(g, "nope")));
  ck_assert(!smelt_node_valid(smelt_find(g, NULL)));
  ck_assert(!smelt_node_valid(smelt_find(g, "")));
  /* renaming: the old name is gone */
  ck_assert(smelt_node_valid(smelt_set_name(g, y, "_y2")));
  ck_assert(!smelt_node_valid(smelt_find(g, "layer1.out_0")));
  ck_assert_uint_eq(smelt_find(g, "_y2").index, y.index);
  /* naming a node again with its own name is fine */
  ck_assert(smelt_node_valid(smelt_set_name(g, y, "_y2")));
  TU_ASSERT_OK(g);
  smelt_graph_free(g);
}
END_TEST

START_TEST(names_many) {
  /* Many names: the lookup table grows and every name stays findable. */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 0);
  smelt_node nodes[300];
  char nm[32];
  for (int i = 0; i < 300; i++) {
    nodes[i] = smelt_add(g, x, smelt_scalar(g, (double)i));
    snprintf(nm, sizeof nm, "n%d", i);
    ck_assert(smelt_node_valid(smelt_set_name(g, nodes[i], nm)));
  }
  /* rename every third one */
  for (int i = 0; i < 300; i += 3) {
    snprintf(nm, sizeof nm, "r%d", i);
    ck_assert(smelt_node_valid(smelt_set_name(g, nodes[i], nm)));
  }
  for (int i = 0; i < 300; i++) {
    snprintf(nm, sizeof nm, "%c%d", i % 3 == 0 ? 'r' : 'n', i);
    ck_assert_uint_eq(smelt_find(g, nm).index, nodes[i].index);
    snprintf(nm, sizeof nm, "%c%d", i % 3 == 0 ? 'n' : 'r', i);
    ck_assert(!smelt_node_valid(smelt_find(g, nm)));
  }
  TU_ASSERT_OK(g);
  smelt_graph_free(g);
}
END_TEST

static const char *bad_names[] = {"", "1x", "a-b", "a b", "x!", ".x", "é", "a/b", "a:b"};

START_TEST(names_invalid_set_name) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 3);
  smelt_node y = smelt_exp(g, x);
  ck_assert(!smelt_node_valid(smelt_set_name(g, y, bad_names[_i])));
  TU_ASSERT_ERROR(g, "name");
  smelt_graph_free(g);
}
END_TEST

START_TEST(names_invalid_input) {
  smelt_graph *g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_input(g, bad_names[_i], SMELT_F32, 1, TU_DIMS(3))));
  TU_ASSERT_ERROR(g, "name");
  smelt_graph_free(g);
}
END_TEST

START_TEST(names_null) {
  smelt_graph *g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_input(g, NULL, SMELT_F32, 1, TU_DIMS(3))));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);
  g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 3);
  ck_assert(!smelt_node_valid(smelt_set_name(g, smelt_exp(g, x), NULL)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_param(g, NULL, SMELT_F32, 1, TU_DIMS(3), smelt_init_zeros())));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);
}
END_TEST

START_TEST(names_unique) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 3);
  smelt_node y = smelt_exp(g, x);
  smelt_node z = smelt_log(g, x);
  ck_assert(smelt_node_valid(smelt_set_name(g, y, "y")));
  ck_assert(!smelt_node_valid(smelt_set_name(g, z, "y")));
  TU_ASSERT_ERROR(g, "y", "already");
  ck_assert_uint_eq(smelt_find(g, "y").index, y.index);
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", SMELT_F32, 1, 3);
  y = smelt_exp(g, x);
  ck_assert(!smelt_node_valid(smelt_set_name(g, y, "x"))); /* an input's name */
  TU_ASSERT_ERROR(g, "\"x\"");
  smelt_graph_free(g);
}
END_TEST

START_TEST(input_param_duplicate_names) {
  smelt_graph *g = TU_GRAPH();
  tu_input(g, "x", SMELT_F32, 1, 3);
  ck_assert(!smelt_node_valid(tu_input(g, "x", SMELT_F32, 1, 3)));
  TU_ASSERT_ERROR(g, "x", "already");
  smelt_graph_free(g);

  g = TU_GRAPH();
  tu_input(g, "w", SMELT_F32, 1, 3);
  ck_assert(!smelt_node_valid(smelt_param(g, "w", SMELT_F32, 1, TU_DIMS(3), smelt_init_ones())));
  TU_ASSERT_ERROR(g, "w", "already");
  smelt_graph_free(g);

  g = TU_GRAPH();
  smelt_param(g, "w", SMELT_F32, 1, TU_DIMS(3), smelt_init_ones());
  ck_assert(!smelt_node_valid(smelt_param(g, "w", SMELT_F32, 1, TU_DIMS(3), smelt_init_ones())));
  TU_ASSERT_ERROR(g, "w", "already");
  smelt_graph_free(g);

  /* An identical input twice is an error too (inputs are not hash-consed). */
  g = TU_GRAPH();
  smelt_node a = tu_input(g, "a", SMELT_F32, 1, 3);
  smelt_node b = tu_input(g, "b", SMELT_F32, 1, 3);
  ck_assert_uint_ne(a.index, b.index);
  TU_ASSERT_OK(g);
  smelt_graph_free(g);
}
END_TEST

START_TEST(error_message_names_node) {
  /* Errors name the operand nodes by name and describe their shapes. */
  smelt_graph *g = TU_GRAPH();
  smelt_node a = tu_input(g, "alpha", SMELT_F32, 2, 2, 3);
  smelt_node b = tu_input(g, "beta", SMELT_F32, 1, 4);
  ck_assert(!smelt_node_valid(smelt_mul(g, a, b)));
  TU_ASSERT_ERROR(g, "mul", "alpha", "beta", "[2,3]", "[4]");
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------ outputs */

START_TEST(outputs_basic) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 3);
  smelt_node y = smelt_exp(g, x);
  ck_assert_uint_eq(smelt_output(g, "y", y).index, y.index);
  ck_assert_uint_eq(smelt_output(g, "also_y", y).index, y.index);
  ck_assert_uint_eq(smelt_output(g, "x_out", x).index, x.index);
  ck_assert_uint_eq(smelt_graph_output_count(g), 3);
  const char *nm = NULL;
  ck_assert_uint_eq(smelt_graph_output(g, 0, &nm).index, y.index);
  ck_assert_str_eq(nm, "y");
  ck_assert_uint_eq(smelt_graph_output(g, 1, &nm).index, y.index);
  ck_assert_str_eq(nm, "also_y");
  ck_assert_uint_eq(smelt_graph_output(g, 2, NULL).index, x.index);
  ck_assert(!smelt_node_valid(smelt_graph_output(g, 3, &nm)));
  ck_assert_ptr_null(nm);
  TU_ASSERT_OK(g);
  smelt_graph_free(g);
}
END_TEST

START_TEST(outputs_errors) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 3);
  smelt_output(g, "y", x);
  ck_assert(!smelt_node_valid(smelt_output(g, "y", smelt_exp(g, x))));
  TU_ASSERT_ERROR(g, "y", "already");
  ck_assert_uint_eq(smelt_graph_output_count(g), 1);
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", SMELT_F32, 1, 3);
  ck_assert(!smelt_node_valid(smelt_output(g, "9y", x)));
  TU_ASSERT_ERROR(g, "name");
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", SMELT_F32, 1, 3);
  ck_assert(!smelt_node_valid(smelt_output(g, NULL, x)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_output(g, "y", SMELT_INVALID)));
  TU_ASSERT_ERROR(g, "output", "invalid");
  ck_assert_uint_eq(smelt_graph_output_count(g), 0);
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------- node queries */

START_TEST(node_queries) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_I32, 3, 2, 3, 4);
  ck_assert_int_eq(smelt_node_dtype(g, x), SMELT_I32);
  ck_assert_int_eq(smelt_node_rank(g, x), 3);
  ck_assert_int_eq(smelt_node_dim(g, x, 0), 2);
  ck_assert_int_eq(smelt_node_dim(g, x, 2), 4);
  ck_assert_int_eq(smelt_node_dim(g, x, -1), 4);
  ck_assert_int_eq(smelt_node_dim(g, x, -3), 2);
  ck_assert_int_eq(smelt_node_dim(g, x, 3), -1);
  ck_assert_int_eq(smelt_node_dim(g, x, -4), -1);
  ck_assert_int_eq(smelt_node_numel(g, x), 24);
  int rank = -1;
  const int64_t *d = smelt_node_shape(g, x, &rank);
  ck_assert_int_eq(rank, 3);
  ck_assert(d[0] == 2 && d[1] == 3 && d[2] == 4);
  ck_assert_str_eq(smelt_node_op(g, x), "input");

  smelt_node s = smelt_const(g, SMELT_F64, 2.0);
  ck_assert_int_eq(smelt_node_rank(g, s), 0);
  ck_assert_int_eq(smelt_node_numel(g, s), 1);
  ck_assert_int_eq(smelt_node_dim(g, s, 0), -1);
  ck_assert_str_eq(smelt_node_op(g, s), "const");
  ck_assert_int_eq(smelt_node_dtype(g, s), SMELT_F64);

  smelt_node e = tu_input(g, "e", SMELT_F32, 2, 0, 5);
  ck_assert_int_eq(smelt_node_numel(g, e), 0);

  /* invalid handle */
  rank = 7;
  ck_assert_int_eq(smelt_node_dtype(g, SMELT_INVALID), SMELT_F32);
  ck_assert_int_eq(smelt_node_rank(g, SMELT_INVALID), 0);
  ck_assert_int_eq(smelt_node_dim(g, SMELT_INVALID, 0), -1);
  ck_assert_ptr_null(smelt_node_shape(g, SMELT_INVALID, &rank));
  ck_assert_int_eq(rank, 0);
  ck_assert_int_eq(smelt_node_numel(g, SMELT_INVALID), 0);
  ck_assert_ptr_null(smelt_node_op(g, SMELT_INVALID));
  ck_assert_ptr_null(smelt_node_name(g, SMELT_INVALID));
  /* queries do not set errors */
  TU_ASSERT_OK(g);
  smelt_graph_free(g);
}
END_TEST

START_TEST(node_iteration_topological) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = tu_input(g, "a", SMELT_F32, 2, 2, 3);
  smelt_node b = tu_input(g, "b", SMELT_F32, 1, 3);
  smelt_node c = smelt_add(g, a, b); /* inserts broadcast nodes for b */
  smelt_node d = smelt_exp(g, c);
  TU_ASSERT_OK(g);
  size_t n = smelt_graph_node_count(g);
  ck_assert_uint_ge(n, 5); /* a, b, expand of b, add, exp */
  ck_assert_uint_eq(smelt_graph_node(g, 0).index, a.index);
  ck_assert_uint_eq(smelt_graph_node(g, 1).index, b.index);
  ck_assert_uint_eq(smelt_graph_node(g, n - 1).index, d.index);
  ck_assert(!smelt_node_valid(smelt_graph_node(g, n)));
  /* every input of a node comes before it */
  for (size_t i = 0; i < n; i++) {
    smelt_node v = smelt_graph_node(g, i);
    ck_assert_uint_eq(v.index, i + 1);
    for (int k = 0; k < tu_node_ninputs(g, v); k++)
      ck_assert_uint_lt(tu_node_input(g, v, k).index, v.index);
  }
  (void)c;
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------- shapes */

START_TEST(rank_limits) {
  smelt_graph *g = TU_GRAPH();
  int64_t dims9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  smelt_node x8 = smelt_input(g, "x8", SMELT_F32, 8, dims9);
  TU_ASSERT_SHAPE(g, x8, 8, 1, 1, 1, 1, 1, 1, 1, 1);
  ck_assert(!smelt_node_valid(smelt_input(g, "x9", SMELT_F32, 9, dims9)));
  TU_ASSERT_ERROR(g, "rank");
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_input(g, "x", SMELT_F32, -1, dims9)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);

  /* views that would exceed rank 8 */
  g = TU_GRAPH();
  x8 = smelt_input(g, "x8", SMELT_F32, 8, dims9);
  ck_assert(!smelt_node_valid(smelt_unsqueeze(g, x8, 0)));
  TU_ASSERT_ERROR(g, "unsqueeze");
  smelt_graph_free(g);

  g = TU_GRAPH();
  x8 = smelt_input(g, "x8", SMELT_F32, 8, dims9);
  ck_assert(!smelt_node_valid(smelt_stack(g, 2, (smelt_node[]){x8, x8}, 0)));
  TU_ASSERT_ERROR(g, "stack");
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_reshape(g, smelt_scalar(g, 1), 9, dims9)));
  TU_ASSERT_ERROR(g, "reshape");
  smelt_graph_free(g);
}
END_TEST

START_TEST(negative_dims) {
  smelt_graph *g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_input(g, "x", SMELT_F32, 2, TU_DIMS(2, -3))));
  TU_ASSERT_ERROR(g, "-3");
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_zeros(g, SMELT_F32, 1, TU_DIMS(-1))));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(
      smelt_param(g, "w", SMELT_F32, 2, TU_DIMS(-2, 2), smelt_init_zeros())));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_const_array(g, SMELT_F32, 1, TU_DIMS(-4), NULL)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_eye(g, SMELT_F32, -1, 2)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);
}
END_TEST

START_TEST(bad_arguments) {
  /* NULL dims with rank > 0, NULL data, bad dtype */
  smelt_graph *g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_input(g, "x", SMELT_F32, 2, NULL)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_const_array(g, SMELT_F32, 1, TU_DIMS(3), NULL)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_input(g, "x", (smelt_dtype)17, 1, TU_DIMS(3))));
  TU_ASSERT_ERROR(g, "dtype");
  smelt_graph_free(g);

  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_param(g, "w", SMELT_F32, 1, TU_DIMS(3), smelt_init_data(NULL))));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);

  g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 3);
  ck_assert(!smelt_node_valid(smelt_concat(g, 0, &x, 0)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);

  g = TU_GRAPH();
  x = tu_input(g, "x", SMELT_F32, 1, 3);
  ck_assert(!smelt_node_valid(smelt_concat(g, 2, NULL, 0)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------- hash-consing */

START_TEST(hash_consing) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 2, 3);
  smelt_node y = tu_input(g, "y", SMELT_F32, 1, 3);
  smelt_node a1 = smelt_add(g, x, y);
  size_t n = smelt_graph_node_count(g);
  smelt_node a2 = smelt_add(g, x, y);
  ck_assert_uint_eq(a1.index, a2.index);
  ck_assert_uint_eq(smelt_graph_node_count(g), n); /* nothing new, not even the expand */
  /* different op, order, or attributes give new nodes */
  ck_assert_uint_ne(smelt_sub(g, x, y).index, a1.index);
  int ax0[1] = {0}, ax1[1] = {1};
  ck_assert_uint_eq(smelt_sum(g, x, 1, ax0, false).index, smelt_sum(g, x, 1, ax0, false).index);
  ck_assert_uint_ne(smelt_sum(g, x, 1, ax0, false).index, smelt_sum(g, x, 1, ax1, false).index);
  /* negative and positive spelling of the same axis: same node */
  int axm1[1] = {-1};
  ck_assert_uint_eq(smelt_sum(g, x, 1, axm1, true).index, smelt_sum(g, x, 1, ax1, true).index);
  /* constants with the same value and dtype */
  ck_assert_uint_eq(smelt_const(g, SMELT_F32, 2.0).index, smelt_const(g, SMELT_F32, 2.0).index);
  ck_assert_uint_ne(smelt_const(g, SMELT_F32, 2.0).index, smelt_const(g, SMELT_F64, 2.0).index);
  ck_assert_uint_ne(smelt_const(g, SMELT_F32, 2.0).index, smelt_const(g, SMELT_F32, 3.0).index);
  float data[3] = {1, 2, 3};
  ck_assert_uint_eq(smelt_const_array(g, SMELT_F32, 1, TU_DIMS(3), data).index,
                    smelt_const_array(g, SMELT_F32, 1, TU_DIMS(3), data).index);
  /* a composite built twice: no new nodes the second time */
  smelt_node s1 = smelt_softmax(g, x, -1);
  n = smelt_graph_node_count(g);
  smelt_node s2 = smelt_softmax(g, x, -1);
  ck_assert_uint_eq(s1.index, s2.index);
  ck_assert_uint_eq(smelt_graph_node_count(g), n);
  TU_ASSERT_OK(g);
  smelt_graph_free(g);
}
END_TEST

/* ---------------------------------------------- allocation failure */

/* Builds a graph that touches most allocation sites: inputs, params,
 * constants, names, broadcasting, composites, many nodes (table growth),
 * outputs. Returns the graph (possibly with an error), NULL when
 * smelt_graph_new failed. */
static smelt_graph *build_representative(void) {
  smelt_graph *g = smelt_graph_new();
  if (!g) return NULL;
  static const float bdata[5] = {0.1f, -0.2f, 0.3f, -0.4f, 0.5f};
  smelt_node x = smelt_input(g, "x", SMELT_F32, 2, TU_DIMS(4, 3));
  smelt_node labels = smelt_input(g, "labels", SMELT_I64, 1, TU_DIMS(4));
  smelt_node w = smelt_param(g, "w", SMELT_F32, 2, TU_DIMS(3, 5), smelt_init_normal(0, 0.5, 7));
  smelt_node b = smelt_param(g, "b", SMELT_F32, 1, TU_DIMS(5), smelt_init_data(bdata));
  smelt_node h = smelt_relu(g, smelt_add(g, smelt_matmul(g, x, w), b));
  smelt_node loss = smelt_cross_entropy(g, h, labels);
  smelt_set_name(g, loss, "loss_value");
  int ax0[1] = {0};
  smelt_node m = smelt_mean(g, h, 1, ax0, true);
  smelt_node v = smelt_std(g, h, 0, NULL, 1, false);
  smelt_node c = smelt_concat(g, 3, (smelt_node[]){h, m, h}, 0);
  smelt_node sl = smelt_slice_axis(g, c, 0, 1, -1, 2);
  smelt_node d = smelt_dropout(g, sl, 0.25, 3, true);
  smelt_node acc = x;
  char nm[32];
  for (int i = 0; i < 80; i++) {
    acc = smelt_add(g, acc, smelt_scalar(g, (double)i));
    if (i % 2 == 0) {
      snprintf(nm, sizeof nm, "acc%d", i);
      smelt_set_name(g, acc, nm);
    }
  }
  smelt_node e = smelt_embedding(g, w, smelt_const_array(g, SMELT_I64, 1, TU_DIMS(2),
                                                         (const int64_t[]){2, 0}));
  smelt_node upd = smelt_assign(g, b, smelt_sub(g, b, smelt_mul(g, b, smelt_scalar(g, 0.5))));
  smelt_output(g, "loss", loss);
  smelt_output(g, "m", m);
  smelt_output(g, "v", v);
  smelt_output(g, "d", d);
  smelt_output(g, "acc", acc);
  smelt_output(g, "e", e);
  smelt_output(g, "upd", upd);
  return g;
}

#define MAX_INJECT 100000

/* Each injected failure must either give a clean "out of memory" error, or
 * (a benign failure, e.g. of a message buffer) leave exactly the graph that
 * a build without failures gives: the same canonical text. */
START_TEST(alloc_failure_build) {
  smelt_graph *refg = build_representative();
  TU_ASSERT_OK(refg);
  char *ref = smelt_graph_print(refg);
  ck_assert_ptr_nonnull(ref);
  smelt_graph_free(refg);
  long n;
  int injected = 0, benign = 0;
  for (n = 0; n < MAX_INJECT; n++) {
    long before = sm_alloc_failures();
    sm_alloc_fail_after(n);
    smelt_graph *g = build_representative();
    sm_alloc_fail_after(-1);
    bool failed = sm_alloc_failures() > before;
    if (!failed) {
      ck_assert_ptr_nonnull(g);
      ck_assert_msg(smelt_graph_error(g) == NULL, "no failure injected, error: %s",
                    smelt_graph_error(g));
      ck_assert_uint_eq(smelt_graph_output_count(g), 7);
      smelt_graph_free(g);
      break;
    }
    injected++;
    if (g) {
      const char *e = smelt_graph_error(g);
      if (e) {
        ck_assert_msg(strstr(e, "out of memory") != NULL, "allocation %ld: error \"%s\"", n, e);
      } else {
        benign++;
        char *t = smelt_graph_print(g);
        ck_assert_ptr_nonnull(t);
        ck_assert_msg(strcmp(t, ref) == 0,
                      "allocation %ld failed without an error and the graph differs", n);
        smelt_free(t);
      }
      /* the graph stays usable for queries and freeing */
      (void)smelt_graph_node_count(g);
      smelt_graph_free(g);
    }
  }
  smelt_free(ref);
  ck_assert_msg(n < MAX_INJECT, "still failing after %d injections", MAX_INJECT);
  ck_assert_int_gt(injected - benign, 5);
}
END_TEST

START_TEST(alloc_failure_print) {
  smelt_graph *g = build_representative();
  TU_ASSERT_OK(g);
  char *ref = smelt_graph_print(g);
  ck_assert_ptr_nonnull(ref);
  char *refdot = smelt_graph_print_dot(g);
  ck_assert_ptr_nonnull(refdot);
  for (int dot = 0; dot < 2; dot++) {
    long n;
    for (n = 0; n < MAX_INJECT; n++) {
      long before = sm_alloc_failures();
      sm_alloc_fail_after(n);
      char *t = dot ? smelt_graph_print_dot(g) : smelt_graph_print(g);
      sm_alloc_fail_after(-1);
      bool failed = sm_alloc_failures() > before;
      if (!failed) {
        ck_assert_ptr_nonnull(t);
        ck_assert_str_eq(t, dot ? refdot : ref);
        smelt_free(t);
        break;
      }
      ck_assert_msg(t == NULL, "allocation %ld failed during printing but text came back", n);
    }
    ck_assert(n < MAX_INJECT);
  }
  smelt_free(ref);
  smelt_free(refdot);
  smelt_graph_free(g);
}
END_TEST

/* Runs the representative graph; returns 0 and fills out (loss, acc[0])
 * or -1 with the failing step's message in err. */
static int run_representative(smelt_graph *g, double out[2], char *err, size_t errlen) {
  static const float xv[12] = {1, 2, 3, -1, 0.5f, 2, 0, 0, 1, 3, -2, 1};
  static const int64_t lv[4] = {0, 4, 2, 1};
  err[0] = 0;
  smelt_interp *it = smelt_interp_new(g);
  if (!it) {
    snprintf(err, errlen, "interp_new returned NULL");
    return -1;
  }
  int rc = -1;
  float loss = 0, acc[12];
  if (smelt_interp_error(it)) goto fail;
  if (smelt_interp_bind(it, "x", SMELT_F32, 2, TU_DIMS(4, 3), xv, sizeof xv)) goto fail;
  if (smelt_interp_bind(it, "labels", SMELT_I64, 1, TU_DIMS(4), lv, sizeof lv)) goto fail;
  if (smelt_interp_run(it)) goto fail;
  if (smelt_interp_read(it, "loss", SMELT_F32, &loss, sizeof loss)) goto fail;
  if (smelt_interp_read(it, "acc", SMELT_F32, acc, sizeof acc)) goto fail;
  out[0] = loss;
  out[1] = acc[0];
  rc = 0;
  goto done;
fail:
  snprintf(err, errlen, "%s", smelt_interp_error(it) ? smelt_interp_error(it) : "(no message)");
done:
  smelt_interp_free(it);
  return rc;
}

START_TEST(alloc_failure_interp) {
  smelt_graph *g = build_representative();
  TU_ASSERT_OK(g);
  double ref[2];
  char err[512];
  ck_assert_msg(run_representative(g, ref, err, sizeof err) == 0, "%s", err);
  /* acc[0] = x[0] + sum(0..79) = 1 + 3160 */
  ck_assert(fabs(ref[1] - 3161.0) < 1e-3);
  long n;
  for (n = 0; n < MAX_INJECT; n++) {
    long before = sm_alloc_failures();
    double out[2];
    sm_alloc_fail_after(n);
    int rc = run_representative(g, out, err, sizeof err);
    sm_alloc_fail_after(-1);
    bool failed = sm_alloc_failures() > before;
    if (!failed) {
      ck_assert_msg(rc == 0, "%s", err);
      ck_assert(out[0] == ref[0] && out[1] == ref[1]);
      break;
    }
    ck_assert_msg(rc != 0, "allocation %ld failed but the run succeeded", n);
    ck_assert_msg(strstr(err, "out of memory") || strstr(err, "interp_new returned NULL"),
                  "allocation %ld: error \"%s\"", n, err);
  }
  ck_assert(n < MAX_INJECT);
  smelt_graph_free(g);
}
END_TEST

START_TEST(alloc_failure_graph_new) {
  sm_alloc_fail_after(0);
  smelt_graph *g = smelt_graph_new();
  sm_alloc_fail_after(-1);
  ck_assert_ptr_null(g);
}
END_TEST


/* ------------------------------------------------------------ regressions */

START_TEST(shape_pointer_from_graph_is_accepted) {
  /* smelt_node_shape points into the graph's node array, which moves when
   * it grows; every builder must copy dims before adding nodes. */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 3, 4);
  for (int i = 0; i < 200; i++) smelt_add(g, x, smelt_scalar(g, (double)i));
  int r;
  const int64_t *s = smelt_node_shape(g, x, &r);
  smelt_node a = smelt_randn(g, SMELT_F32, r, s, 1);
  s = smelt_node_shape(g, x, &r);
  smelt_node b = smelt_full(g, SMELT_F32, r, s, 2.0);
  s = smelt_node_shape(g, x, &r);
  smelt_node c = smelt_input(g, "y", SMELT_F32, r, s);
  s = smelt_node_shape(g, x, &r);
  smelt_node d = smelt_broadcast_to(g, smelt_scalar(g, 1.0), r, s);
  TU_ASSERT_OK(g);
  smelt_node all[] = {a, b, c, d};
  for (int i = 0; i < 4; i++) TU_ASSERT_SHAPE(g, all[i], 2, 3, 4);
  smelt_graph_free(g);
}
END_TEST

START_TEST(int_conversion_bounds) {
  /* 2^63 does not fit i64 (a C cast would be undefined), 2^63 - 1024 does */
  smelt_graph *g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_const(g, SMELT_I64, 9.25e18)));
  TU_ASSERT_ERROR(g, "const", "does not fit i64");
  smelt_graph_free(g);
  g = TU_GRAPH();
  ck_assert(smelt_node_valid(smelt_const(g, SMELT_I64, 9.2233720368547748e18)));
  ck_assert(!smelt_node_valid(smelt_const(g, SMELT_I32, 2147483648.0)));
  TU_ASSERT_ERROR(g, "does not fit i32");
  smelt_graph_free(g);
}
END_TEST

START_TEST(literal_arithmetic_stays_literal) {
  /* neg(0.1) is the literal -0.1 (a double), not an f32 rank-0 tensor */
  smelt_graph *g = TU_GRAPH();
  smelt_node z = tu_input(g, "z", SMELT_F64, 0);
  smelt_node a = smelt_mul(g, z, smelt_neg(g, smelt_scalar(g, 0.1)));
  smelt_node b = smelt_mul(g, z, smelt_scalar(g, -0.1));
  TU_ASSERT_OK(g);
  ck_assert_uint_eq(a.index, b.index); /* hash-consed: the same computation */
  ck_assert_int_eq(smelt_node_dtype(g, a), SMELT_F64);
  smelt_node c = smelt_add(g, smelt_scalar_int(g, 2), smelt_scalar_int(g, 3));
  smelt_node i = tu_input(g, "i", SMELT_I32, 0);
  ck_assert_int_eq(smelt_node_dtype(g, smelt_mul(g, i, c)), SMELT_I32);
  smelt_graph_free(g);
}
END_TEST

START_TEST(rank0_reduce_axis0) {
  /* PyTorch accepts dim 0 and -1 on 0-dim tensors */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = smelt_const(g, SMELT_F32, 2.5);
  smelt_node s = smelt_sum(g, x, 1, (int[]){0}, false);
  smelt_node m = smelt_max(g, x, 1, (int[]){-1}, true);
  smelt_node v = smelt_mean(g, x, 1, (int[]){0}, false);
  TU_ASSERT_OK(g);
  TU_ASSERT_SHAPE(g, s, 0);
  TU_ASSERT_SHAPE(g, m, 0);
  TU_ASSERT_SHAPE(g, v, 0);
  ck_assert(!smelt_node_valid(smelt_sum(g, x, 1, (int[]){1}, false)));
  TU_ASSERT_ERROR(g, "sum", "axis 1 is out of range");
  smelt_graph_free(g);
}
END_TEST

static Suite *graph_suite(void) {
  Suite *s = suite_create("graph");
  TCase *tc = tcase_create("basics");
  tcase_add_test(tc, empty_graph);
  tcase_add_test(tc, version_and_dtype_names);
  tcase_add_test(tc, null_graph_is_harmless);
  tcase_add_test(tc, invalid_handle_unary);
  tcase_add_test(tc, invalid_handle_binary);
  tcase_add_test(tc, out_of_range_handle);
  tcase_add_test(tc, handle_from_another_graph);
  tcase_add_test(tc, graph_serials_unique);
  suite_add_tcase(s, tc);

  tc = tcase_create("errors");
  tcase_add_test(tc, sticky_error_first_kept);
  tcase_add_test(tc, invalid_chain_never_crashes);
  tcase_add_test(tc, error_message_names_node);
  tcase_add_test(tc, rank_limits);
  tcase_add_test(tc, negative_dims);
  tcase_add_test(tc, bad_arguments);
  suite_add_tcase(s, tc);

  tc = tcase_create("names");
  tcase_add_test(tc, names_set_find);
  tcase_add_test(tc, names_many);
  tcase_add_loop_test(tc, names_invalid_set_name, 0, (int)(sizeof bad_names / sizeof *bad_names));
  tcase_add_loop_test(tc, names_invalid_input, 0, (int)(sizeof bad_names / sizeof *bad_names));
  tcase_add_test(tc, names_null);
  tcase_add_test(tc, names_unique);
  tcase_add_test(tc, input_param_duplicate_names);
  tcase_add_test(tc, outputs_basic);
  tcase_add_test(tc, outputs_errors);
  suite_add_tcase(s, tc);

  tc = tcase_create("nodes");
  tcase_add_test(tc, node_queries);
  tcase_add_test(tc, node_iteration_topological);
  tcase_add_test(tc, hash_consing);
  suite_add_tcase(s, tc);

  tc = tcase_create("regressions");
  tcase_add_test(tc, shape_pointer_from_graph_is_accepted);
  tcase_add_test(tc, int_conversion_bounds);
  tcase_add_test(tc, literal_arithmetic_stays_literal);
  tcase_add_test(tc, rank0_reduce_axis0);
  suite_add_tcase(s, tc);

  tc = tcase_create("alloc");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, alloc_failure_graph_new);
  tcase_add_test(tc, alloc_failure_build);
  tcase_add_test(tc, alloc_failure_print);
  tcase_add_test(tc, alloc_failure_interp);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(graph_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
