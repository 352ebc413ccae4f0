/* NULL arguments: every pointer argument of every public function
 * (include/smelt/smelt.h), one at a time, with the other arguments valid.
 * One table row per function and argument: a small function that makes
 * the call and checks its return value (the documented failure value:
 * SMELT_INVALID, NULL, -1, 0, false), and the exact message the call
 * leaves on its error channel (the graph's sticky error, smelt_params_error,
 * smelt_program_error, smelt_context_error, smelt_interp_error, an errbuf,
 * a char **error), or "(no error)" where NULL is documented as meaningful
 * (options NULL means the defaults, *_free(NULL) does nothing, error and
 * errbuf may be NULL, NULL pairs of conv and pooling are the defaults, ...)
 * and the call succeeds as documented. want NULL: the call has no error
 * channel (a NULL graph, params, program, context or interpreter itself, a
 * query); the row checks the return value only.
 *
 * Each row runs on a fresh fixture (a graph with an input, a param, an
 * output and a declared program; params, a program, a context and an
 * interpreter made only for the rows that use them), freed afterwards, so
 * that ASan, UBSan and valgrind see every path on its own. Rows that pass
 * a NULL graph to a builder also check that the fixture's graph is left
 * without an error. Rows run twenty to a forked test (a fork per row
 * would cost more than the rows); a failed check names its row.
 *
 * tests/nullargs_cover.py (the meson test nullargs_cover) checks that the
 * rows cover every pointer argument of the header's prototypes, so that a
 * new function cannot go without its rows.
 *
 * SMELT_NULLARGS_PRINT=1 prints every row's name before its call and its
 * message as it is now after it (with CK_FORK=no, the row a crash happens
 * in is the last name printed). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define F32 SMELT_F32
#define D(...) ((const int64_t[]){__VA_ARGS__})
#define AX(...) ((const int[]){__VA_ARGS__})

/* ---------------------------------------------------------- fixture */

typedef struct fx {
  smelt_graph *g;
  smelt_node x;   /* input "x": f32[2,3] */
  smelt_node w;   /* param "w": f32[2,3], zeros */
  smelt_node y;   /* sum(x * w), output "y" */
  smelt_node up;  /* assign(w, w - x): the update of program "train" */
  smelt_node c;   /* x > w: bool[2,3] */
  smelt_node idx; /* i64[2,3] zeros: gather / scatter index */
  smelt_node lab; /* i64[2] {0, 1}: labels, index_select, embedding */
  smelt_node img; /* input "img": f32[1,1,4,4] */
  smelt_node k;   /* param "k": f32[1,1,2,2] */
  smelt_node rm;  /* params "rm", "rv": f32[3] (batch_norm's running stats) */
  smelt_node rv;
  smelt_params *p;
  smelt_program *pr;
  smelt_context *ctx;
  smelt_interp *it;
  smelt_node out[2]; /* room for the results given through pointers */
  float buf[6];
  char *err; /* a message returned through a char ** */
  char *tmpdir; /* for the rows that write files */
} fx;

typedef struct row {
  const char *fn;  /* the public function */
  const char *arg; /* the argument passed as NULL */
  void (*call)(fx *f);
  const char *want; /* the message; NULL: no error channel */
} row;

/* The row being run: the checks of the helpers below name it (a check in
 * a row's own function is named by its line). */
static const row *cur;
#define CHECK(cond) ck_assert_msg(cond, "%s(%s = NULL): '%s' failed", cur->fn, cur->arg, #cond)

static fx *fixture(void) {
  fx *f = calloc(1, sizeof *f);
  ck_assert_ptr_nonnull(f);
  smelt_graph *g = f->g = smelt_graph_new();
  ck_assert_ptr_nonnull(g);
  f->x = smelt_input(g, "x", F32, 2, D(2, 3));
  f->w = smelt_param(g, "w", F32, 2, D(2, 3), smelt_init_zeros());
  f->y = smelt_sum(g, smelt_mul(g, f->x, f->w), 0, NULL, false);
  smelt_output(g, "y", f->y);
  f->up = smelt_assign(g, f->w, smelt_sub(g, f->w, f->x));
  f->c = smelt_gt(g, f->x, f->w);
  f->idx = smelt_zeros(g, SMELT_I64, 2, D(2, 3));
  f->lab = smelt_const_array(g, SMELT_I64, 1, D(2), (const int64_t[]){0, 1});
  f->img = smelt_input(g, "img", F32, 4, D(1, 1, 4, 4));
  f->k = smelt_param(g, "k", F32, 4, D(1, 1, 2, 2), smelt_init_ones());
  f->rm = smelt_param(g, "rm", F32, 1, D(3), smelt_init_zeros());
  f->rv = smelt_param(g, "rv", F32, 1, D(3), smelt_init_ones());
  smelt_graph_add_program(g, "train", 1, (const char *[]){"y"}, 1, &f->up, false);
  TU_ASSERT_OK(g);
  return f;
}

static smelt_params *P(fx *f) {
  if (!f->p) f->p = smelt_params_new(f->g);
  CHECK(f->p && !smelt_params_error(f->p));
  return f->p;
}

static smelt_program *PR(fx *f) {
  if (!f->pr) f->pr = smelt_program_new(f->g, P(f), 1, (const char *[]){"y"}, 1, &f->up);
  CHECK(f->pr && !smelt_program_error(f->pr));
  return f->pr;
}

static smelt_context *CTX(fx *f) {
  if (!f->ctx) f->ctx = smelt_context_new(PR(f));
  CHECK(f->ctx != NULL);
  return f->ctx;
}

static smelt_interp *IT(fx *f) {
  if (!f->it) f->it = smelt_interp_new(f->g);
  CHECK(f->it != NULL);
  return f->it;
}

static const char *DIR_(fx *f) {
  if (!f->tmpdir) f->tmpdir = tu_temp_dir("nullargs");
  return f->tmpdir;
}

static void fixture_free(fx *f) {
  smelt_context_free(f->ctx);
  smelt_program_free(f->pr);
  smelt_interp_free(f->it);
  smelt_params_free(f->p);
  smelt_graph_free(f->g);
  smelt_free(f->err);
  if (f->tmpdir) tu_rm_tree(f->tmpdir);
  free(f->tmpdir);
  free(f);
}

/* ---------------------------------------------------------- messages */

static char got[2048]; /* the row's message; empty: no channel read */

static void keep(const char *s) { snprintf(got, sizeof got, "%s", s ? s : "(no error)"); }

/* A builder given a NULL graph: an invalid handle, and the fixture's
 * graph untouched. */
static void no_node(fx *f, smelt_node n) {
  CHECK(!smelt_node_valid(n));
  CHECK(!smelt_graph_error(f->g));
}

/* A builder call on the fixture's graph that fails: keeps its error. */
static void node_fails(fx *f, smelt_node n) {
  CHECK(!smelt_node_valid(n));
  keep(smelt_graph_error(f->g));
}

/* A builder call on the fixture's graph that succeeds. */
static void node_ok(fx *f, smelt_node n) {
  keep(smelt_graph_error(f->g));
  CHECK(smelt_node_valid(n));
}

/* An int-returning graph call that fails: -1 and the graph's error. */
static void graph_rc(fx *f, int rc) {
  CHECK(rc == -1);
  keep(smelt_graph_error(f->g));
}

/* A program that failed to set up: not NULL, its error kept, a run says
 * the same, and the graph is untouched. */
static void program_fails(fx *f, smelt_program *pr) {
  CHECK(pr != NULL);
  keep(smelt_program_error(pr));
  CHECK(smelt_program_error(pr) != NULL);
  CHECK(smelt_program_run(pr) == -1);
  CHECK(strcmp(smelt_program_error(pr), got) == 0);
  smelt_program_free(pr);
  CHECK(!smelt_graph_error(f->g));
}

/* A program compiled as documented: it runs. */
static void program_ok(fx *f, smelt_program *pr) {
  CHECK(pr != NULL);
  keep(smelt_program_error(pr));
  if (!smelt_program_error(pr)) {
    CHECK(smelt_program_bind(pr, "x", F32, 2, D(2, 3), f->buf, sizeof f->buf) == 0);
    CHECK(smelt_program_run(pr) == 0);
  }
  smelt_program_free(pr);
}

/* ------------------------------------------------ builders, graph NULL */
/* Every builder with a NULL graph and otherwise valid arguments (nodes of
 * the fixture's graph): an invalid handle, nothing recorded anywhere. */
#define NULL_GRAPH_BUILDERS(X)                                                             \
  X(smelt_set_name, f->y, "z")                                                             \
  X(smelt_output, "z", f->y)                                                               \
  X(smelt_input, "i", F32, 1, D(2))                                                        \
  X(smelt_param, "q", F32, 1, D(2), smelt_init_zeros())                                    \
  X(smelt_scalar, 1.5)                                                                     \
  X(smelt_scalar_int, 2)                                                                   \
  X(smelt_const, F32, 1.5)                                                                 \
  X(smelt_const_array, F32, 1, D(2), (const float[]){1, 2})                                \
  X(smelt_full, F32, 1, D(2), 1.5)                                                         \
  X(smelt_zeros, F32, 1, D(2))                                                             \
  X(smelt_ones, F32, 1, D(2))                                                              \
  X(smelt_arange, F32, 0, 4, 1)                                                            \
  X(smelt_linspace, F32, 0, 1, 5)                                                          \
  X(smelt_eye, F32, 2, 3)                                                                  \
  X(smelt_rand, F32, 1, D(2), 7)                                                           \
  X(smelt_randn, F32, 1, D(2), 7)                                                          \
  X(smelt_neg, f->x)                                                                       \
  X(smelt_abs, f->x)                                                                       \
  X(smelt_sign, f->x)                                                                      \
  X(smelt_exp, f->x)                                                                       \
  X(smelt_log, f->x)                                                                       \
  X(smelt_sqrt, f->x)                                                                      \
  X(smelt_rsqrt, f->x)                                                                     \
  X(smelt_reciprocal, f->x)                                                                \
  X(smelt_sin, f->x)                                                                       \
  X(smelt_cos, f->x)                                                                       \
  X(smelt_tanh, f->x)                                                                      \
  X(smelt_sigmoid, f->x)                                                                   \
  X(smelt_relu, f->x)                                                                      \
  X(smelt_gelu, f->x)                                                                      \
  X(smelt_stop_gradient, f->x)                                                             \
  X(smelt_add, f->x, f->w)                                                                 \
  X(smelt_sub, f->x, f->w)                                                                 \
  X(smelt_mul, f->x, f->w)                                                                 \
  X(smelt_div, f->x, f->w)                                                                 \
  X(smelt_pow, f->x, f->w)                                                                 \
  X(smelt_maximum, f->x, f->w)                                                             \
  X(smelt_minimum, f->x, f->w)                                                             \
  X(smelt_lt, f->x, f->w)                                                                  \
  X(smelt_le, f->x, f->w)                                                                  \
  X(smelt_gt, f->x, f->w)                                                                  \
  X(smelt_ge, f->x, f->w)                                                                  \
  X(smelt_eq, f->x, f->w)                                                                  \
  X(smelt_ne, f->x, f->w)                                                                  \
  X(smelt_logical_and, f->c, f->c)                                                         \
  X(smelt_logical_or, f->c, f->c)                                                          \
  X(smelt_logical_not, f->c)                                                               \
  X(smelt_where, f->c, f->x, f->w)                                                         \
  X(smelt_cast, f->x, SMELT_F64)                                                           \
  X(smelt_clamp, f->x, 0, 1)                                                               \
  X(smelt_sum, f->x, 1, AX(0), false)                                                      \
  X(smelt_mean, f->x, 1, AX(0), false)                                                     \
  X(smelt_prod, f->x, 1, AX(0), false)                                                     \
  X(smelt_max, f->x, 1, AX(0), false)                                                      \
  X(smelt_min, f->x, 1, AX(0), false)                                                      \
  X(smelt_var, f->x, 1, AX(0), 1, false)                                                   \
  X(smelt_std, f->x, 1, AX(0), 1, false)                                                   \
  X(smelt_logsumexp, f->x, 1, AX(0), false)                                                \
  X(smelt_argmax, f->x, 0, false)                                                          \
  X(smelt_argmin, f->x, 0, false)                                                          \
  X(smelt_max_dim, f->x, 0, false, &f->out[0], &f->out[1])                                 \
  X(smelt_min_dim, f->x, 0, false, &f->out[0], &f->out[1])                                 \
  X(smelt_reshape, f->x, 1, D(6))                                                          \
  X(smelt_permute, f->x, AX(1, 0))                                                         \
  X(smelt_transpose, f->x, 0, 1)                                                           \
  X(smelt_expand, f->x, 3, D(4, 2, 3))                                                     \
  X(smelt_broadcast_to, f->x, 3, D(4, 2, 3))                                               \
  X(smelt_squeeze, f->x, 0, NULL)                                                          \
  X(smelt_unsqueeze, f->x, 0)                                                              \
  X(smelt_flatten, f->x, 0, 1)                                                             \
  X(smelt_slice, f->x, D(0, 0), D(1, 2), D(1, 1))                                          \
  X(smelt_slice_axis, f->x, 1, 0, 2, 1)                                                    \
  X(smelt_unfold, f->x, 1, 2, 1)                                                           \
  X(smelt_flip, f->x, 1, AX(0))                                                            \
  X(smelt_pad, f->x, D(1, 1), D(0, 0), 0)                                                  \
  X(smelt_concat, 2, ((const smelt_node[]){f->x, f->w}), 0)                                \
  X(smelt_stack, 2, ((const smelt_node[]){f->x, f->w}), 0)                                 \
  X(smelt_matmul, f->x, smelt_transpose(f->g, f->w, 0, 1))                                 \
  X(smelt_gather, f->x, 1, f->idx)                                                         \
  X(smelt_scatter_add, f->x, 1, f->idx, f->w)                                              \
  X(smelt_take_along_axis, f->x, f->idx, 1)                                                \
  X(smelt_index_select, f->x, 1, f->lab)                                                   \
  X(smelt_one_hot, f->lab, 3)                                                              \
  X(smelt_embedding, f->x, f->lab)                                                         \
  X(smelt_softmax, f->x, 1)                                                                \
  X(smelt_log_softmax, f->x, 1)                                                            \
  X(smelt_cross_entropy, f->x, f->lab)                                                     \
  X(smelt_mse_loss, f->x, f->w)                                                            \
  X(smelt_dropout, f->x, 0.5, 7, true)                                                     \
  X(smelt_conv2d, f->img, f->k, SMELT_INVALID, D(1, 1), D(0, 0), D(1, 1), 1)               \
  X(smelt_max_pool2d, f->img, D(2, 2), D(2, 2), D(0, 0), D(1, 1), false)                   \
  X(smelt_avg_pool2d, f->img, D(2, 2), D(2, 2), D(0, 0), false, true)                      \
  X(smelt_batch_norm, f->x, SMELT_INVALID, SMELT_INVALID, f->rm, f->rv, true, 0.1, 1e-5,   \
    f->out)                                                                                \
  X(smelt_assign, f->w, f->x)

#define NULL_GRAPH_FN(fn, ...) \
  static void ng_##fn(fx *f) { no_node(f, fn(NULL, __VA_ARGS__)); }
NULL_GRAPH_BUILDERS(NULL_GRAPH_FN)
#define NULL_GRAPH_ROW(fn, ...) {#fn, "g", ng_##fn, NULL},

/* ------------------------------------------------------------- rows */
/* One function per row, named after the function and the NULL argument. */
#define ROW_FN(name, ...) \
  static void name(fx *f) {  \
    (void)f;                  \
    __VA_ARGS__;              \
  }

/* dtypes */
ROW_FN(dtype_parse_name, {
  smelt_dtype dt = SMELT_I32;
  ck_assert(!smelt_dtype_parse(NULL, &dt));
  ck_assert_int_eq(dt, SMELT_I32);
})
/* out NULL: the name is only checked */
ROW_FN(dtype_parse_out, {
  ck_assert(smelt_dtype_parse("f32", NULL));
  ck_assert(!smelt_dtype_parse("f16", NULL));
})

/* graphs and node queries */
ROW_FN(graph_free_g, smelt_graph_free(NULL))
ROW_FN(graph_error_g, keep(smelt_graph_error(NULL)))
ROW_FN(graph_node_count_g, ck_assert_uint_eq(smelt_graph_node_count(NULL), 0))
ROW_FN(graph_node_g, ck_assert(!smelt_node_valid(smelt_graph_node(NULL, 0))))
ROW_FN(node_dtype_g, ck_assert_int_eq(smelt_node_dtype(NULL, f->lab), F32))
ROW_FN(node_rank_g, ck_assert_int_eq(smelt_node_rank(NULL, f->x), 0))
ROW_FN(node_dim_g, ck_assert_int_eq(smelt_node_dim(NULL, f->x, 0), -1))
ROW_FN(node_shape_g, {
  int rank = 5;
  ck_assert_ptr_null(smelt_node_shape(NULL, f->x, &rank));
  ck_assert_int_eq(rank, 0);
})
/* rank NULL: the dims are returned, the rank not written */
ROW_FN(node_shape_rank, {
  const int64_t *dims = smelt_node_shape(f->g, f->x, NULL);
  ck_assert_ptr_nonnull(dims);
  ck_assert_int_eq(dims[0], 2);
  ck_assert_int_eq(dims[1], 3);
})
ROW_FN(node_numel_g, ck_assert_int_eq(smelt_node_numel(NULL, f->x), 0))
ROW_FN(node_op_g, ck_assert_ptr_null(smelt_node_op(NULL, f->x)))
ROW_FN(node_name_g, ck_assert_ptr_null(smelt_node_name(NULL, f->x)))
ROW_FN(set_name_name, node_fails(f, smelt_set_name(f->g, f->y, NULL)))
ROW_FN(find_g, ck_assert(!smelt_node_valid(smelt_find(NULL, "x"))))
ROW_FN(find_name, {
  ck_assert(!smelt_node_valid(smelt_find(f->g, NULL)));
  ck_assert_ptr_null(smelt_graph_error(f->g));
})
ROW_FN(output_name, node_fails(f, smelt_output(f->g, NULL, f->y)))
ROW_FN(graph_output_count_g, ck_assert_uint_eq(smelt_graph_output_count(NULL), 0))
ROW_FN(graph_output_g, {
  const char *name = "?";
  ck_assert(!smelt_node_valid(smelt_graph_output(NULL, 0, &name)));
  ck_assert_ptr_null(name);
})
/* name NULL: the node alone */
ROW_FN(graph_output_name, {
  smelt_node n = smelt_graph_output(f->g, 0, NULL);
  ck_assert_uint_eq(n.index, f->y.index);
})

/* program declarations */
ROW_FN(add_program_g,
       ck_assert_int_eq(smelt_graph_add_program(NULL, "p", 1, (const char *[]){"y"}, 0, NULL,
                                                true), -1))
ROW_FN(add_program_name,
       graph_rc(f, smelt_graph_add_program(f->g, NULL, 1, (const char *[]){"y"}, 0, NULL, true)))
ROW_FN(add_program_outputs, graph_rc(f, smelt_graph_add_program(f->g, "p", 1, NULL, 0, NULL, true)))
ROW_FN(add_program_updates,
       graph_rc(f, smelt_graph_add_program(f->g, "p", 1, (const char *[]){"y"}, 1, NULL, false)))
ROW_FN(graph_program_count_g, ck_assert_uint_eq(smelt_graph_program_count(NULL), 0))
ROW_FN(graph_program_g, {
  smelt_program_decl d;
  ck_assert_int_eq(smelt_graph_program(NULL, 0, &d), -1);
})
ROW_FN(graph_program_decl, ck_assert_int_eq(smelt_graph_program(f->g, 0, NULL), -1))
ROW_FN(find_program_g, ck_assert_int_eq(smelt_graph_find_program(NULL, "train"), -1))
ROW_FN(find_program_name, ck_assert_int_eq(smelt_graph_find_program(f->g, NULL), -1))

/* sources */
ROW_FN(input_name, node_fails(f, smelt_input(f->g, NULL, F32, 1, D(2))))
ROW_FN(input_dims, node_fails(f, smelt_input(f->g, "i", F32, 1, NULL)))
/* rank 0 takes no dims */
ROW_FN(input_dims_rank0, node_ok(f, smelt_input(f->g, "i", F32, 0, NULL)))
ROW_FN(param_name, node_fails(f, smelt_param(f->g, NULL, F32, 1, D(2), smelt_init_zeros())))
ROW_FN(param_dims, node_fails(f, smelt_param(f->g, "q", F32, 1, NULL, smelt_init_zeros())))
ROW_FN(init_data_data,
       node_fails(f, smelt_param(f->g, "q", F32, 1, D(2), smelt_init_data(NULL))))
ROW_FN(const_array_dims,
       node_fails(f, smelt_const_array(f->g, F32, 1, NULL, (const float[]){1, 2})))
ROW_FN(const_array_data, node_fails(f, smelt_const_array(f->g, F32, 1, D(2), NULL)))
/* no elements: no data needed */
ROW_FN(const_array_data_empty, node_ok(f, smelt_const_array(f->g, F32, 1, D(0), NULL)))
ROW_FN(full_dims, node_fails(f, smelt_full(f->g, F32, 1, NULL, 1.5)))
ROW_FN(zeros_dims, node_fails(f, smelt_zeros(f->g, F32, 1, NULL)))
ROW_FN(ones_dims, node_fails(f, smelt_ones(f->g, F32, 1, NULL)))
ROW_FN(rand_dims, node_fails(f, smelt_rand(f->g, F32, 1, NULL, 7)))
ROW_FN(randn_dims, node_fails(f, smelt_randn(f->g, F32, 1, NULL, 7)))

/* reductions: axes NULL with naxes > 0 (naxes 0 with NULL reduces over
 * every axis, the ordinary call) */
ROW_FN(sum_axes, node_fails(f, smelt_sum(f->g, f->x, 1, NULL, false)))
ROW_FN(mean_axes, node_fails(f, smelt_mean(f->g, f->x, 1, NULL, false)))
ROW_FN(prod_axes, node_fails(f, smelt_prod(f->g, f->x, 1, NULL, false)))
ROW_FN(max_axes, node_fails(f, smelt_max(f->g, f->x, 1, NULL, false)))
ROW_FN(min_axes, node_fails(f, smelt_min(f->g, f->x, 1, NULL, false)))
ROW_FN(var_axes, node_fails(f, smelt_var(f->g, f->x, 1, NULL, 1, false)))
ROW_FN(std_axes, node_fails(f, smelt_std(f->g, f->x, 1, NULL, 1, false)))
ROW_FN(logsumexp_axes, node_fails(f, smelt_logsumexp(f->g, f->x, 1, NULL, false)))
/* values / indices NULL: documented, the values are returned */
ROW_FN(max_dim_values, {
  smelt_node i = SMELT_INVALID;
  smelt_node v = smelt_max_dim(f->g, f->x, 1, false, NULL, &i);
  node_ok(f, v);
  ck_assert(smelt_node_valid(i));
  TU_ASSERT_SHAPE(f->g, v, 1, 2);
})
ROW_FN(max_dim_indices, {
  smelt_node v2 = SMELT_INVALID;
  smelt_node v = smelt_max_dim(f->g, f->x, 1, false, &v2, NULL);
  node_ok(f, v);
  ck_assert_uint_eq(v.index, v2.index);
})
ROW_FN(min_dim_values, {
  smelt_node i = SMELT_INVALID;
  node_ok(f, smelt_min_dim(f->g, f->x, 1, false, NULL, &i));
  ck_assert(smelt_node_valid(i));
})
ROW_FN(min_dim_indices, node_ok(f, smelt_min_dim(f->g, f->x, 1, false, NULL, NULL)))

/* views */
ROW_FN(reshape_dims, node_fails(f, smelt_reshape(f->g, f->x, 1, NULL)))
ROW_FN(permute_perm, node_fails(f, smelt_permute(f->g, f->x, NULL)))
ROW_FN(expand_dims, node_fails(f, smelt_expand(f->g, f->x, 3, NULL)))
ROW_FN(broadcast_to_dims, node_fails(f, smelt_broadcast_to(f->g, f->x, 3, NULL)))
ROW_FN(squeeze_axes, node_fails(f, smelt_squeeze(f->g, f->x, 1, NULL)))
/* slice: NULL starts, stops or steps mean 0, SMELT_END and 1 */
ROW_FN(slice_starts, {
  smelt_node s = smelt_slice(f->g, f->x, NULL, D(1, 2), D(1, 1));
  node_ok(f, s);
  TU_ASSERT_SHAPE(f->g, s, 2, 1, 2);
})
ROW_FN(slice_stops, {
  smelt_node s = smelt_slice(f->g, f->x, D(1, 1), NULL, D(1, 1));
  node_ok(f, s);
  TU_ASSERT_SHAPE(f->g, s, 2, 1, 2);
})
ROW_FN(slice_steps, {
  smelt_node s = smelt_slice(f->g, f->x, D(0, 1), D(2, 3), NULL);
  node_ok(f, s);
  TU_ASSERT_SHAPE(f->g, s, 2, 2, 2);
})
ROW_FN(flip_axes, node_fails(f, smelt_flip(f->g, f->x, 1, NULL)))
ROW_FN(pad_lo, node_fails(f, smelt_pad(f->g, f->x, NULL, D(0, 0), 0)))
ROW_FN(pad_hi, node_fails(f, smelt_pad(f->g, f->x, D(0, 0), NULL, 0)))
ROW_FN(concat_xs, node_fails(f, smelt_concat(f->g, 2, NULL, 0)))
ROW_FN(stack_xs, node_fails(f, smelt_stack(f->g, 2, NULL, 0)))

/* conv and pooling: a NULL pair is the default; the kernel has none */
ROW_FN(conv2d_stride, {
  smelt_node y = smelt_conv2d(f->g, f->img, f->k, SMELT_INVALID, NULL, D(0, 0), D(1, 1), 1);
  node_ok(f, y);
  TU_ASSERT_SHAPE(f->g, y, 4, 1, 1, 3, 3);
})
ROW_FN(conv2d_padding, {
  smelt_node y = smelt_conv2d(f->g, f->img, f->k, SMELT_INVALID, D(1, 1), NULL, D(1, 1), 1);
  node_ok(f, y);
  TU_ASSERT_SHAPE(f->g, y, 4, 1, 1, 3, 3);
})
ROW_FN(conv2d_dilation, {
  smelt_node y = smelt_conv2d(f->g, f->img, f->k, SMELT_INVALID, D(1, 1), D(0, 0), NULL, 1);
  node_ok(f, y);
  TU_ASSERT_SHAPE(f->g, y, 4, 1, 1, 3, 3);
})
ROW_FN(max_pool2d_kernel,
       node_fails(f, smelt_max_pool2d(f->g, f->img, NULL, D(2, 2), D(0, 0), D(1, 1), false)))
ROW_FN(max_pool2d_stride, {
  smelt_node y = smelt_max_pool2d(f->g, f->img, D(2, 2), NULL, D(0, 0), D(1, 1), false);
  node_ok(f, y);
  TU_ASSERT_SHAPE(f->g, y, 4, 1, 1, 2, 2);
})
ROW_FN(max_pool2d_padding, {
  smelt_node y = smelt_max_pool2d(f->g, f->img, D(2, 2), D(1, 1), NULL, D(1, 1), false);
  node_ok(f, y);
  TU_ASSERT_SHAPE(f->g, y, 4, 1, 1, 3, 3);
})
ROW_FN(max_pool2d_dilation, {
  smelt_node y = smelt_max_pool2d(f->g, f->img, D(2, 2), D(2, 2), D(0, 0), NULL, false);
  node_ok(f, y);
  TU_ASSERT_SHAPE(f->g, y, 4, 1, 1, 2, 2);
})
ROW_FN(avg_pool2d_kernel,
       node_fails(f, smelt_avg_pool2d(f->g, f->img, NULL, D(2, 2), D(0, 0), false, true)))
ROW_FN(avg_pool2d_stride, {
  smelt_node y = smelt_avg_pool2d(f->g, f->img, D(2, 2), NULL, D(0, 0), false, true);
  node_ok(f, y);
  TU_ASSERT_SHAPE(f->g, y, 4, 1, 1, 2, 2);
})
ROW_FN(avg_pool2d_padding, {
  smelt_node y = smelt_avg_pool2d(f->g, f->img, D(2, 2), D(1, 1), NULL, false, true);
  node_ok(f, y);
  TU_ASSERT_SHAPE(f->g, y, 4, 1, 1, 3, 3);
})
/* updates NULL: documented, no update nodes */
ROW_FN(batch_norm_updates,
       node_ok(f, smelt_batch_norm(f->g, f->x, SMELT_INVALID, SMELT_INVALID, f->rm, f->rv, true,
                                   0.1, 1e-5, NULL)))

/* autodiff */
ROW_FN(grad_g, {
  smelt_node d = f->x;
  ck_assert_int_eq(smelt_grad(NULL, f->y, 1, &f->w, &d), -1);
  ck_assert(!smelt_node_valid(d));
  ck_assert_ptr_null(smelt_graph_error(f->g));
})
ROW_FN(grad_wrt, {
  smelt_node d = f->x;
  graph_rc(f, smelt_grad(f->g, f->y, 1, NULL, &d));
  ck_assert(!smelt_node_valid(d));
})
ROW_FN(grad_grads_out, graph_rc(f, smelt_grad(f->g, f->y, 1, &f->w, NULL)))
ROW_FN(vjp_g, {
  smelt_node d = f->x;
  ck_assert_int_eq(smelt_vjp(NULL, f->y, SMELT_INVALID, 1, &f->w, &d, 0), -1);
  ck_assert(!smelt_node_valid(d));
  ck_assert_ptr_null(smelt_graph_error(f->g));
})
ROW_FN(vjp_wrt, {
  smelt_node d = f->x;
  graph_rc(f, smelt_vjp(f->g, f->y, SMELT_INVALID, 1, NULL, &d, 0));
  ck_assert(!smelt_node_valid(d));
})
ROW_FN(vjp_grads_out, graph_rc(f, smelt_vjp(f->g, f->y, SMELT_INVALID, 1, &f->w, NULL, 0)))

/* params */
ROW_FN(params_new_g, {
  smelt_params *p = smelt_params_new(NULL);
  ck_assert_ptr_nonnull(p);
  keep(smelt_params_error(p));
  ck_assert_int_eq(smelt_params_reset(p), -1);
  ck_assert_str_eq(smelt_params_error(p), got);
  smelt_params_free(p);
})
ROW_FN(params_free_p, smelt_params_free(NULL))
ROW_FN(params_error_p, keep(smelt_params_error(NULL)))
ROW_FN(params_reset_p, ck_assert_int_eq(smelt_params_reset(NULL), -1))
ROW_FN(params_read_p, ck_assert_int_eq(smelt_params_read(NULL, "w", F32, f->buf, 24), -1))
ROW_FN(params_read_name, {
  ck_assert_int_eq(smelt_params_read(P(f), NULL, F32, f->buf, 24), -1);
  keep(smelt_params_error(f->p));
})
ROW_FN(params_read_data, {
  ck_assert_int_eq(smelt_params_read(P(f), "w", F32, NULL, 24), -1);
  keep(smelt_params_error(f->p));
})
ROW_FN(params_write_p, ck_assert_int_eq(smelt_params_write(NULL, "w", F32, f->buf, 24), -1))
ROW_FN(params_write_name, {
  ck_assert_int_eq(smelt_params_write(P(f), NULL, F32, f->buf, 24), -1);
  keep(smelt_params_error(f->p));
})
ROW_FN(params_write_data, {
  ck_assert_int_eq(smelt_params_write(P(f), "w", F32, NULL, 24), -1);
  keep(smelt_params_error(f->p));
})
ROW_FN(params_save_p, {
  char path[128];
  snprintf(path, sizeof path, "%s/w.safetensors", DIR_(f));
  ck_assert_int_eq(smelt_params_save(NULL, path), -1);
  ck_assert_int_ne(access(path, F_OK), 0);
})
ROW_FN(params_save_path, {
  ck_assert_int_eq(smelt_params_save(P(f), NULL), -1);
  keep(smelt_params_error(f->p));
})
ROW_FN(params_load_p, {
  char path[128];
  snprintf(path, sizeof path, "%s/w.safetensors", DIR_(f));
  ck_assert_int_eq(smelt_params_save(P(f), path), 0);
  ck_assert_int_eq(smelt_params_load(NULL, path), -1);
})
ROW_FN(params_load_path, {
  ck_assert_int_eq(smelt_params_load(P(f), NULL), -1);
  keep(smelt_params_error(f->p));
})

/* programs */
static const char *const outs_y[] = {"y"};
ROW_FN(program_new_g, program_fails(f, smelt_program_new(NULL, P(f), 1, outs_y, 1, &f->up)))
ROW_FN(program_new_params, program_fails(f, smelt_program_new(f->g, NULL, 1, outs_y, 1, &f->up)))
ROW_FN(program_new_outputs, program_fails(f, smelt_program_new(f->g, P(f), 1, NULL, 1, &f->up)))
ROW_FN(program_new_updates, program_fails(f, smelt_program_new(f->g, P(f), 1, outs_y, 1, NULL)))
ROW_FN(program_new_eval_g, program_fails(f, smelt_program_new_eval(NULL, P(f), 1, outs_y)))
ROW_FN(program_new_eval_params, program_fails(f, smelt_program_new_eval(f->g, NULL, 1, outs_y)))
ROW_FN(program_new_eval_outputs, program_fails(f, smelt_program_new_eval(f->g, P(f), 1, NULL)))
ROW_FN(program_compile_g,
       program_fails(f, smelt_program_compile(NULL, P(f), 1, outs_y, 1, &f->up, NULL)))
ROW_FN(program_compile_params,
       program_fails(f, smelt_program_compile(f->g, NULL, 1, outs_y, 1, &f->up, NULL)))
ROW_FN(program_compile_outputs,
       program_fails(f, smelt_program_compile(f->g, P(f), 1, NULL, 1, &f->up, NULL)))
ROW_FN(program_compile_updates,
       program_fails(f, smelt_program_compile(f->g, P(f), 1, outs_y, 1, NULL, NULL)))
/* options NULL: the defaults */
ROW_FN(program_compile_options,
       program_ok(f, smelt_program_compile(f->g, P(f), 1, outs_y, 1, &f->up, NULL)))
ROW_FN(program_compile_eval_g,
       program_fails(f, smelt_program_compile_eval(NULL, P(f), 1, outs_y, NULL)))
ROW_FN(program_compile_eval_params,
       program_fails(f, smelt_program_compile_eval(f->g, NULL, 1, outs_y, NULL)))
ROW_FN(program_compile_eval_outputs,
       program_fails(f, smelt_program_compile_eval(f->g, P(f), 1, NULL, NULL)))
ROW_FN(program_compile_eval_options,
       program_ok(f, smelt_program_compile_eval(f->g, P(f), 1, outs_y, NULL)))
ROW_FN(program_compile_named_g,
       program_fails(f, smelt_program_compile_named(NULL, P(f), "train", NULL)))
ROW_FN(program_compile_named_params,
       program_fails(f, smelt_program_compile_named(f->g, NULL, "train", NULL)))
ROW_FN(program_compile_named_name,
       program_fails(f, smelt_program_compile_named(f->g, P(f), NULL, NULL)))
ROW_FN(program_compile_named_options,
       program_ok(f, smelt_program_compile_named(f->g, P(f), "train", NULL)))
ROW_FN(program_free_pr, smelt_program_free(NULL))
ROW_FN(program_error_pr, keep(smelt_program_error(NULL)))
ROW_FN(program_bind_pr,
       ck_assert_int_eq(smelt_program_bind(NULL, "x", F32, 2, D(2, 3), f->buf, 24), -1))
ROW_FN(program_bind_name, {
  ck_assert_int_eq(smelt_program_bind(PR(f), NULL, F32, 2, D(2, 3), f->buf, 24), -1);
  keep(smelt_program_error(f->pr));
})
ROW_FN(program_bind_dims, {
  ck_assert_int_eq(smelt_program_bind(PR(f), "x", F32, 2, NULL, f->buf, 24), -1);
  keep(smelt_program_error(f->pr));
})
ROW_FN(program_bind_data, {
  ck_assert_int_eq(smelt_program_bind(PR(f), "x", F32, 2, D(2, 3), NULL, 24), -1);
  keep(smelt_program_error(f->pr));
})
ROW_FN(program_run_pr, ck_assert_int_eq(smelt_program_run(NULL), -1))
ROW_FN(program_read_pr, ck_assert_int_eq(smelt_program_read(NULL, "y", F32, f->buf, 4), -1))
/* read after a run, so that only the NULL is wrong */
static void run_program(fx *f) {
  ck_assert_int_eq(smelt_program_bind(PR(f), "x", F32, 2, D(2, 3), f->buf, 24), 0);
  ck_assert_int_eq(smelt_program_run(f->pr), 0);
}
ROW_FN(program_read_name, {
  run_program(f);
  ck_assert_int_eq(smelt_program_read(f->pr, NULL, F32, f->buf, 4), -1);
  keep(smelt_program_error(f->pr));
})
ROW_FN(program_read_data, {
  run_program(f);
  ck_assert_int_eq(smelt_program_read(f->pr, "y", F32, NULL, 4), -1);
  keep(smelt_program_error(f->pr));
})
ROW_FN(program_bind_device_pr,
       ck_assert_int_eq(smelt_program_bind_device(NULL, "x", F32, 2, D(2, 3), 4096, 24), -1);)
ROW_FN(program_bind_device_name, {
  ck_assert_int_eq(smelt_program_bind_device(PR(f), NULL, F32, 2, D(2, 3), 4096, 24), -1);
  keep(smelt_program_error(f->pr));
})
ROW_FN(program_bind_device_dims, {
  ck_assert_int_eq(smelt_program_bind_device(PR(f), "x", F32, 2, NULL, 4096, 24), -1);
  keep(smelt_program_error(f->pr));
})
ROW_FN(program_read_device_pr,
       ck_assert_int_eq(smelt_program_read_device(NULL, "y", F32, 4096, 4), -1))
ROW_FN(program_read_device_name, {
  run_program(f);
  ck_assert_int_eq(smelt_program_read_device(f->pr, NULL, F32, 4096, 4), -1);
  keep(smelt_program_error(f->pr));
})
ROW_FN(program_get_stats_pr, {
  smelt_program_stats st;
  ck_assert_int_eq(smelt_program_get_stats(NULL, &st), -1);
})
ROW_FN(program_get_stats_stats, ck_assert_int_eq(smelt_program_get_stats(PR(f), NULL), -1))

/* run contexts */
ROW_FN(context_new_pr, {
  smelt_context *c = smelt_context_new(NULL);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(smelt_context_run(c), -1);
  keep(smelt_context_error(c));
  ck_assert_int_eq(smelt_context_set_draw(c, 3), -1);
  ck_assert_str_eq(smelt_context_error(c), got);
  smelt_context_free(c);
})
ROW_FN(context_free_ctx, smelt_context_free(NULL))
ROW_FN(context_error_ctx, keep(smelt_context_error(NULL)))
ROW_FN(context_bind_ctx,
       ck_assert_int_eq(smelt_context_bind(NULL, "x", F32, 2, D(2, 3), f->buf, 24), -1))
ROW_FN(context_bind_name, {
  ck_assert_int_eq(smelt_context_bind(CTX(f), NULL, F32, 2, D(2, 3), f->buf, 24), -1);
  keep(smelt_context_error(f->ctx));
})
ROW_FN(context_bind_dims, {
  ck_assert_int_eq(smelt_context_bind(CTX(f), "x", F32, 2, NULL, f->buf, 24), -1);
  keep(smelt_context_error(f->ctx));
})
ROW_FN(context_bind_data, {
  ck_assert_int_eq(smelt_context_bind(CTX(f), "x", F32, 2, D(2, 3), NULL, 24), -1);
  keep(smelt_context_error(f->ctx));
})
ROW_FN(context_run_ctx, ck_assert_int_eq(smelt_context_run(NULL), -1))
ROW_FN(context_read_ctx, ck_assert_int_eq(smelt_context_read(NULL, "y", F32, f->buf, 4), -1))
static void run_context(fx *f) {
  ck_assert_int_eq(smelt_context_bind(CTX(f), "x", F32, 2, D(2, 3), f->buf, 24), 0);
  ck_assert_int_eq(smelt_context_run(f->ctx), 0);
}
ROW_FN(context_read_name, {
  run_context(f);
  ck_assert_int_eq(smelt_context_read(f->ctx, NULL, F32, f->buf, 4), -1);
  keep(smelt_context_error(f->ctx));
})
ROW_FN(context_read_data, {
  run_context(f);
  ck_assert_int_eq(smelt_context_read(f->ctx, "y", F32, NULL, 4), -1);
  keep(smelt_context_error(f->ctx));
})
ROW_FN(context_draw_ctx, ck_assert_uint_eq(smelt_context_draw(NULL), 0))
ROW_FN(context_set_draw_ctx, ck_assert_int_eq(smelt_context_set_draw(NULL, 3), -1))

/* ahead of time: a build without LLVM refuses before looking at any
 * argument, and the rows with a message are skipped there */
static void keep_aot(const char *msg) {
  const char *refusal = "ahead-of-time compilation needs LLVM";
  keep(msg && strncmp(msg, refusal, strlen(refusal)) == 0 ? "SKIP" : msg);
}
static smelt_aot_options aot_opts(fx *f) {
  static char obj[128];
  snprintf(obj, sizeof obj, "%s/m.o", DIR_(f));
  smelt_aot_options o = smelt_aot_defaults();
  o.object_path = obj;
  return o;
}
ROW_FN(aot_compile_g, {
  smelt_aot_options o = aot_opts(f);
  ck_assert_int_eq(smelt_aot_compile(NULL, &o, &f->err), -1);
  keep_aot(f->err);
  ck_assert_int_ne(access(o.object_path, F_OK), 0);
})
ROW_FN(aot_compile_options, {
  ck_assert_int_eq(smelt_aot_compile(f->g, NULL, &f->err), -1);
  keep_aot(f->err);
})
/* error NULL: the failure is still reported by the return value */
ROW_FN(aot_compile_error, {
  smelt_aot_options o = aot_opts(f);
  ck_assert_int_eq(smelt_aot_compile(NULL, &o, NULL), -1);
})
/* options->object_path NULL: the one required field */
ROW_FN(aot_compile_object_path, {
  smelt_aot_options o = aot_opts(f);
  o.object_path = NULL;
  ck_assert_int_eq(smelt_aot_compile(f->g, &o, &f->err), -1);
  keep_aot(f->err);
})

/* gradient accumulation and optimizers */
static const smelt_node *W(fx *f) { return &f->w; }
static const smelt_node *GR(fx *f) { return &f->x; } /* a float tensor of w's shape */
#define ACC_ROW(name, params, grads, a, b, z)                                           \
  ROW_FN(name, {                                                                        \
    smelt_node o1[1], o2[1], o3[1];                                                     \
    (void)o1, (void)o2, (void)o3;                                                       \
    graph_rc(f, smelt_grad_accumulators(f->g, 1, params, grads, a, b, z));              \
  })
ROW_FN(grad_accumulators_g, {
  smelt_node o1[1], o2[1], o3[1];
  ck_assert_int_eq(smelt_grad_accumulators(NULL, 1, W(f), GR(f), o1, o2, o3), -1);
  ck_assert_ptr_null(smelt_graph_error(f->g));
})
ACC_ROW(grad_accumulators_params, NULL, GR(f), o1, o2, o3)
ACC_ROW(grad_accumulators_grads, W(f), NULL, o1, o2, o3)
ACC_ROW(grad_accumulators_accumulate, W(f), GR(f), NULL, o2, o3)
ACC_ROW(grad_accumulators_accumulated, W(f), GR(f), o1, NULL, o3)
ACC_ROW(grad_accumulators_zero, W(f), GR(f), o1, o2, NULL)

static const smelt_sgd_options *SGD(void) {
  static smelt_sgd_options o;
  o = smelt_sgd_defaults(0.1);
  return &o;
}
static const smelt_adam_options *ADAM(void) {
  static smelt_adam_options o;
  o = smelt_adam_defaults();
  return &o;
}
ROW_FN(sgd_g, {
  smelt_node u[SMELT_OPTIM_MAX_UPDATES(1)];
  ck_assert_int_eq(smelt_sgd(NULL, "opt", 1, W(f), GR(f), SGD(), u), -1);
  ck_assert_ptr_null(smelt_graph_error(f->g));
})
/* prefix NULL: "sgd" */
ROW_FN(sgd_prefix, {
  smelt_node u[SMELT_OPTIM_MAX_UPDATES(1)];
  smelt_sgd_options o = smelt_sgd_defaults(0.1);
  o.momentum = 0.9;
  o.dampening = 0.5;
  ck_assert_int_eq(smelt_sgd(f->g, NULL, 1, W(f), GR(f), &o, u), 3);
  keep(smelt_graph_error(f->g));
  ck_assert(smelt_node_valid(smelt_find(f->g, "sgd.step")));
})
ROW_FN(sgd_params, {
  smelt_node u[SMELT_OPTIM_MAX_UPDATES(1)];
  graph_rc(f, smelt_sgd(f->g, "opt", 1, NULL, GR(f), SGD(), u));
})
ROW_FN(sgd_grads, {
  smelt_node u[SMELT_OPTIM_MAX_UPDATES(1)];
  graph_rc(f, smelt_sgd(f->g, "opt", 1, W(f), NULL, SGD(), u));
})
ROW_FN(sgd_o, {
  smelt_node u[SMELT_OPTIM_MAX_UPDATES(1)];
  graph_rc(f, smelt_sgd(f->g, "opt", 1, W(f), GR(f), NULL, u));
})
ROW_FN(sgd_updates, graph_rc(f, smelt_sgd(f->g, "opt", 1, W(f), GR(f), SGD(), NULL)))
ROW_FN(adam_g, {
  smelt_node u[SMELT_OPTIM_MAX_UPDATES(1)];
  ck_assert_int_eq(smelt_adam(NULL, "opt", 1, W(f), GR(f), ADAM(), u), -1);
  ck_assert_ptr_null(smelt_graph_error(f->g));
})
/* prefix NULL: "adam" */
ROW_FN(adam_prefix, {
  smelt_node u[SMELT_OPTIM_MAX_UPDATES(1)];
  ck_assert_int_eq(smelt_adam(f->g, NULL, 1, W(f), GR(f), ADAM(), u), 4);
  keep(smelt_graph_error(f->g));
  ck_assert(smelt_node_valid(smelt_find(f->g, "adam.step")));
})
ROW_FN(adam_params, {
  smelt_node u[SMELT_OPTIM_MAX_UPDATES(1)];
  graph_rc(f, smelt_adam(f->g, "opt", 1, NULL, GR(f), ADAM(), u));
})
ROW_FN(adam_grads, {
  smelt_node u[SMELT_OPTIM_MAX_UPDATES(1)];
  graph_rc(f, smelt_adam(f->g, "opt", 1, W(f), NULL, ADAM(), u));
})
ROW_FN(adam_o, {
  smelt_node u[SMELT_OPTIM_MAX_UPDATES(1)];
  graph_rc(f, smelt_adam(f->g, "opt", 1, W(f), GR(f), NULL, u));
})
ROW_FN(adam_updates, graph_rc(f, smelt_adam(f->g, "opt", 1, W(f), GR(f), ADAM(), NULL)))

/* text format */
ROW_FN(graph_print_g, ck_assert_ptr_null(smelt_graph_print(NULL)))
ROW_FN(graph_print_dot_g, ck_assert_ptr_null(smelt_graph_print_dot(NULL)))
static const char text[] = "input %x : f32[2]\n%y = neg %x : f32[2]\noutput y = %y\n";
ROW_FN(graph_parse_text, {
  char err[256] = "unchanged";
  ck_assert_ptr_null(smelt_graph_parse(NULL, 5, "m.smelt", err, sizeof err));
  keep(err);
})
/* text NULL with length 0: as the empty text */
ROW_FN(graph_parse_text_empty, {
  char err[256] = "unchanged";
  ck_assert_ptr_null(smelt_graph_parse(NULL, 0, "m.smelt", err, sizeof err));
  keep(err);
})
/* filename NULL: "<input>" in messages */
ROW_FN(graph_parse_filename, {
  char err[256] = "";
  ck_assert_ptr_null(smelt_graph_parse("x = nosuchop()\n", 15, NULL, err, sizeof err));
  keep(err);
})
/* errbuf NULL: NULL returned, nothing written */
ROW_FN(graph_parse_errbuf, {
  ck_assert_ptr_null(smelt_graph_parse("x = nosuchop()\n", 15, "m.smelt", NULL, 64));
  smelt_graph *g = smelt_graph_parse(text, sizeof text - 1, "m.smelt", NULL, 0);
  ck_assert_ptr_nonnull(g);
  ck_assert_uint_eq(smelt_graph_output_count(g), 1);
  smelt_graph_free(g);
})
ROW_FN(free_p, smelt_free(NULL))

/* reference interpreter */
ROW_FN(interp_new_g, {
  smelt_interp *it = smelt_interp_new(NULL);
  ck_assert_ptr_nonnull(it);
  ck_assert_int_eq(smelt_interp_run(it), -1);
  keep(smelt_interp_error(it));
  smelt_interp_free(it);
})
ROW_FN(interp_free_it, smelt_interp_free(NULL))
ROW_FN(interp_error_it, keep(smelt_interp_error(NULL)))
ROW_FN(interp_bind_it,
       ck_assert_int_eq(smelt_interp_bind(NULL, "x", F32, 2, D(2, 3), f->buf, 24), -1))
ROW_FN(interp_bind_name, {
  ck_assert_int_eq(smelt_interp_bind(IT(f), NULL, F32, 2, D(2, 3), f->buf, 24), -1);
  keep(smelt_interp_error(f->it));
})
ROW_FN(interp_bind_dims, {
  ck_assert_int_eq(smelt_interp_bind(IT(f), "x", F32, 2, NULL, f->buf, 24), -1);
  keep(smelt_interp_error(f->it));
})
ROW_FN(interp_bind_data, {
  ck_assert_int_eq(smelt_interp_bind(IT(f), "x", F32, 2, D(2, 3), NULL, 24), -1);
  keep(smelt_interp_error(f->it));
})
ROW_FN(interp_run_it, ck_assert_int_eq(smelt_interp_run(NULL), -1))
ROW_FN(interp_read_it, ck_assert_int_eq(smelt_interp_read(NULL, "y", F32, f->buf, 4), -1))
static void run_interp(fx *f) {
  ck_assert_int_eq(smelt_interp_bind(IT(f), "x", F32, 2, D(2, 3), f->buf, 24), 0);
  ck_assert_msg(smelt_interp_run(f->it) == 0, "%s", smelt_interp_error(f->it));
}
ROW_FN(interp_read_name, {
  run_interp(f);
  ck_assert_int_eq(smelt_interp_read(f->it, NULL, F32, f->buf, 4), -1);
  keep(smelt_interp_error(f->it));
})
ROW_FN(interp_read_data, {
  run_interp(f);
  ck_assert_int_eq(smelt_interp_read(f->it, "y", F32, NULL, 4), -1);
  keep(smelt_interp_error(f->it));
})

/* --------------------------------------------------------------- table */

#define NO_ERROR "(no error)"

static const row rows[] = {
    NULL_GRAPH_BUILDERS(NULL_GRAPH_ROW)
    {"smelt_dtype_parse", "name", dtype_parse_name, NULL},
    {"smelt_dtype_parse", "out", dtype_parse_out, NULL},
    {"smelt_graph_free", "g", graph_free_g, NULL},
    {"smelt_graph_error", "g", graph_error_g, "graph is NULL"},
    {"smelt_graph_node_count", "g", graph_node_count_g, NULL},
    {"smelt_graph_node", "g", graph_node_g, NULL},
    {"smelt_node_dtype", "g", node_dtype_g, NULL},
    {"smelt_node_rank", "g", node_rank_g, NULL},
    {"smelt_node_dim", "g", node_dim_g, NULL},
    {"smelt_node_shape", "g", node_shape_g, NULL},
    {"smelt_node_shape", "rank", node_shape_rank, NULL},
    {"smelt_node_numel", "g", node_numel_g, NULL},
    {"smelt_node_op", "g", node_op_g, NULL},
    {"smelt_node_name", "g", node_name_g, NULL},
    {"smelt_set_name", "name", set_name_name, "set_name: the name is NULL"},
    {"smelt_find", "g", find_g, NULL},
    {"smelt_find", "name", find_name, NULL},
    {"smelt_output", "name", output_name, "output: the name is NULL"},
    {"smelt_graph_output_count", "g", graph_output_count_g, NULL},
    {"smelt_graph_output", "g", graph_output_g, NULL},
    {"smelt_graph_output", "name", graph_output_name, NULL},
    {"smelt_graph_add_program", "g", add_program_g, NULL},
    {"smelt_graph_add_program", "name", add_program_name, "program: the name is NULL"},
    {"smelt_graph_add_program", "outputs", add_program_outputs,
     "program \"p\": bad output or update list (noutputs 1, outputs NULL; nupdates 0,"
     " updates NULL)"},
    {"smelt_graph_add_program", "updates", add_program_updates,
     "program \"p\": bad output or update list (noutputs 1, outputs given; nupdates 1,"
     " updates NULL)"},
    {"smelt_graph_program_count", "g", graph_program_count_g, NULL},
    {"smelt_graph_program", "g", graph_program_g, NULL},
    {"smelt_graph_program", "decl", graph_program_decl, NULL},
    {"smelt_graph_find_program", "g", find_program_g, NULL},
    {"smelt_graph_find_program", "name", find_program_name, NULL},
    {"smelt_input", "name", input_name, "input: the name is NULL"},
    {"smelt_input", "dims", input_dims, "input: dims is NULL for rank 1"},
    {"smelt_input", "dims (rank 0)", input_dims_rank0, NO_ERROR},
    {"smelt_param", "name", param_name, "param: the name is NULL"},
    {"smelt_param", "dims", param_dims, "param: dims is NULL for rank 1"},
    {"smelt_init_data", "data", init_data_data, "param \"q\": initializer data is NULL"},
    {"smelt_const_array", "dims", const_array_dims, "const: dims is NULL for rank 1"},
    {"smelt_const_array", "data", const_array_data, "const: data is NULL"},
    {"smelt_const_array", "data (no elements)", const_array_data_empty, NO_ERROR},
    {"smelt_full", "dims", full_dims, "full: dims is NULL for rank 1"},
    {"smelt_zeros", "dims", zeros_dims, "full: dims is NULL for rank 1"},
    {"smelt_ones", "dims", ones_dims, "full: dims is NULL for rank 1"},
    {"smelt_rand", "dims", rand_dims, "rand: dims is NULL for rank 1"},
    {"smelt_randn", "dims", randn_dims, "randn: dims is NULL for rank 1"},
    {"smelt_sum", "axes", sum_axes, "sum: axes is NULL for naxes 1 (%x: f32[2,3])"},
    {"smelt_mean", "axes", mean_axes, "mean: axes is NULL for naxes 1 (%x: f32[2,3])"},
    {"smelt_prod", "axes", prod_axes, "prod: axes is NULL for naxes 1 (%x: f32[2,3])"},
    {"smelt_max", "axes", max_axes, "max: axes is NULL for naxes 1 (%x: f32[2,3])"},
    {"smelt_min", "axes", min_axes, "min: axes is NULL for naxes 1 (%x: f32[2,3])"},
    {"smelt_var", "axes", var_axes, "var: axes is NULL for naxes 1 (%x: f32[2,3])"},
    {"smelt_std", "axes", std_axes, "std: axes is NULL for naxes 1 (%x: f32[2,3])"},
    {"smelt_logsumexp", "axes", logsumexp_axes,
     "logsumexp: axes is NULL for naxes 1 (%x: f32[2,3])"},
    {"smelt_max_dim", "values", max_dim_values, NO_ERROR},
    {"smelt_max_dim", "indices", max_dim_indices, NO_ERROR},
    {"smelt_min_dim", "values", min_dim_values, NO_ERROR},
    {"smelt_min_dim", "indices", min_dim_indices, NO_ERROR},
    {"smelt_reshape", "dims", reshape_dims, "reshape: dims is NULL for rank 1"},
    {"smelt_permute", "perm", permute_perm, "permute: perm is NULL for %x: f32[2,3]"},
    {"smelt_expand", "dims", expand_dims, "expand: dims is NULL for rank 3"},
    {"smelt_broadcast_to", "dims", broadcast_to_dims, "broadcast_to: dims is NULL for rank 3"},
    {"smelt_squeeze", "axes", squeeze_axes, "squeeze: axes is NULL for naxes 1 (%x: f32[2,3])"},
    {"smelt_slice", "starts", slice_starts, NO_ERROR},
    {"smelt_slice", "stops", slice_stops, NO_ERROR},
    {"smelt_slice", "steps", slice_steps, NO_ERROR},
    {"smelt_flip", "axes", flip_axes, "flip: axes is NULL for naxes 1 (%x: f32[2,3])"},
    {"smelt_pad", "lo", pad_lo, "pad: lo is NULL for %x: f32[2,3]"},
    {"smelt_pad", "hi", pad_hi, "pad: hi is NULL for %x: f32[2,3]"},
    {"smelt_concat", "xs", concat_xs, "concat: xs is NULL (n = 2)"},
    {"smelt_stack", "xs", stack_xs, "stack: xs is NULL (n = 2)"},
    {"smelt_conv2d", "stride", conv2d_stride, NO_ERROR},
    {"smelt_conv2d", "padding", conv2d_padding, NO_ERROR},
    {"smelt_conv2d", "dilation", conv2d_dilation, NO_ERROR},
    {"smelt_max_pool2d", "kernel", max_pool2d_kernel, "max_pool2d: the kernel size is required"},
    {"smelt_max_pool2d", "stride", max_pool2d_stride, NO_ERROR},
    {"smelt_max_pool2d", "padding", max_pool2d_padding, NO_ERROR},
    {"smelt_max_pool2d", "dilation", max_pool2d_dilation, NO_ERROR},
    {"smelt_avg_pool2d", "kernel", avg_pool2d_kernel, "avg_pool2d: the kernel size is required"},
    {"smelt_avg_pool2d", "stride", avg_pool2d_stride, NO_ERROR},
    {"smelt_avg_pool2d", "padding", avg_pool2d_padding, NO_ERROR},
    {"smelt_batch_norm", "updates", batch_norm_updates, NO_ERROR},
    {"smelt_grad", "g", grad_g, NULL},
    {"smelt_grad", "wrt", grad_wrt, "grad: wrt is NULL (n = 1)"},
    {"smelt_grad", "grads_out", grad_grads_out, "grad: grads_out is NULL (n = 1)"},
    {"smelt_vjp", "g", vjp_g, NULL},
    {"smelt_vjp", "wrt", vjp_wrt, "grad: wrt is NULL (n = 1)"},
    {"smelt_vjp", "grads_out", vjp_grads_out, "grad: grads_out is NULL (n = 1)"},
    {"smelt_params_new", "g", params_new_g, "the graph is NULL"},
    {"smelt_params_free", "p", params_free_p, NULL},
    {"smelt_params_error", "p", params_error_p, "params is NULL"},
    {"smelt_params_reset", "p", params_reset_p, NULL},
    {"smelt_params_read", "p", params_read_p, NULL},
    {"smelt_params_read", "name", params_read_name, "read: the param name is NULL"},
    {"smelt_params_read", "data", params_read_data, "read \"w\": data is NULL"},
    {"smelt_params_write", "p", params_write_p, NULL},
    {"smelt_params_write", "name", params_write_name, "write: the param name is NULL"},
    {"smelt_params_write", "data", params_write_data, "write \"w\": data is NULL"},
    {"smelt_params_save", "p", params_save_p, NULL},
    {"smelt_params_save", "path", params_save_path, "save: the path is NULL"},
    {"smelt_params_load", "p", params_load_p, NULL},
    {"smelt_params_load", "path", params_load_path, "load: the path is NULL"},
    {"smelt_program_new", "g", program_new_g, "the graph is NULL"},
    {"smelt_program_new", "params", program_new_params, "params is NULL"},
    {"smelt_program_new", "outputs", program_new_outputs,
     "program: bad output or update list (noutputs 1, outputs NULL; nupdates 1, updates given)"},
    {"smelt_program_new", "updates", program_new_updates,
     "program: bad output or update list (noutputs 1, outputs given; nupdates 1, updates NULL)"},
    {"smelt_program_new_eval", "g", program_new_eval_g, "the graph is NULL"},
    {"smelt_program_new_eval", "params", program_new_eval_params, "params is NULL"},
    {"smelt_program_new_eval", "outputs", program_new_eval_outputs,
     "program: bad output or update list (noutputs 1, outputs NULL; nupdates 0, updates NULL)"},
    {"smelt_program_compile", "g", program_compile_g, "the graph is NULL"},
    {"smelt_program_compile", "params", program_compile_params, "params is NULL"},
    {"smelt_program_compile", "outputs", program_compile_outputs,
     "program: bad output or update list (noutputs 1, outputs NULL; nupdates 1, updates given)"},
    {"smelt_program_compile", "updates", program_compile_updates,
     "program: bad output or update list (noutputs 1, outputs given; nupdates 1, updates NULL)"},
    {"smelt_program_compile", "options", program_compile_options, NO_ERROR},
    {"smelt_program_compile_eval", "g", program_compile_eval_g, "the graph is NULL"},
    {"smelt_program_compile_eval", "params", program_compile_eval_params, "params is NULL"},
    {"smelt_program_compile_eval", "outputs", program_compile_eval_outputs,
     "program: bad output or update list (noutputs 1, outputs NULL; nupdates 0, updates NULL)"},
    {"smelt_program_compile_eval", "options", program_compile_eval_options, NO_ERROR},
    {"smelt_program_compile_named", "g", program_compile_named_g, "the graph is NULL"},
    {"smelt_program_compile_named", "params", program_compile_named_params,
     "program \"train\": params is NULL"},
    {"smelt_program_compile_named", "name", program_compile_named_name,
     "compile_named: the program name is NULL"},
    {"smelt_program_compile_named", "options", program_compile_named_options, NO_ERROR},
    {"smelt_program_free", "pr", program_free_pr, NULL},
    {"smelt_program_error", "pr", program_error_pr, "program is NULL"},
    {"smelt_program_bind", "pr", program_bind_pr, NULL},
    {"smelt_program_bind", "name", program_bind_name, "bind: the input name is NULL"},
    {"smelt_program_bind", "dims", program_bind_dims, "input \"x\": dims is NULL for rank 2"},
    {"smelt_program_bind", "data", program_bind_data, "input \"x\": data is NULL"},
    {"smelt_program_run", "pr", program_run_pr, NULL},
    {"smelt_program_read", "pr", program_read_pr, NULL},
    {"smelt_program_read", "name", program_read_name, "read: the output name is NULL"},
    {"smelt_program_read", "data", program_read_data, "read \"y\": data is NULL"},
    {"smelt_program_bind_device", "pr", program_bind_device_pr, NULL},
    {"smelt_program_bind_device", "name", program_bind_device_name,
     "bind_device: the input name is NULL"},
    {"smelt_program_bind_device", "dims", program_bind_device_dims,
     "bind_device \"x\": the program runs on the interp target; device memory is for the"
     " cuda target"},
    {"smelt_program_read_device", "pr", program_read_device_pr, NULL},
    {"smelt_program_read_device", "name", program_read_device_name,
     "read_device: the output name is NULL"},
    {"smelt_program_get_stats", "pr", program_get_stats_pr, NULL},
    {"smelt_program_get_stats", "stats", program_get_stats_stats, NULL},
    {"smelt_context_new", "pr", context_new_pr, "context: the program is NULL"},
    {"smelt_context_free", "ctx", context_free_ctx, NULL},
    {"smelt_context_error", "ctx", context_error_ctx, "context is NULL"},
    {"smelt_context_bind", "ctx", context_bind_ctx, NULL},
    {"smelt_context_bind", "name", context_bind_name, "bind: the input name is NULL"},
    {"smelt_context_bind", "dims", context_bind_dims, "input \"x\": dims is NULL for rank 2"},
    {"smelt_context_bind", "data", context_bind_data, "input \"x\": data is NULL"},
    {"smelt_context_run", "ctx", context_run_ctx, NULL},
    {"smelt_context_read", "ctx", context_read_ctx, NULL},
    {"smelt_context_read", "name", context_read_name, "read: the output name is NULL"},
    {"smelt_context_read", "data", context_read_data, "read \"y\": data is NULL"},
    {"smelt_context_draw", "ctx", context_draw_ctx, NULL},
    {"smelt_context_set_draw", "ctx", context_set_draw_ctx, NULL},
    {"smelt_aot_compile", "g", aot_compile_g, "the graph is NULL"},
    {"smelt_aot_compile", "options", aot_compile_options, "no object file path given"},
    {"smelt_aot_compile", "error", aot_compile_error, NULL},
    {"smelt_aot_compile", "options->object_path", aot_compile_object_path,
     "no object file path given"},
    {"smelt_grad_accumulators", "g", grad_accumulators_g, NULL},
    {"smelt_grad_accumulators", "params", grad_accumulators_params,
     "grad_accumulators: params is NULL (n = 1)"},
    {"smelt_grad_accumulators", "grads", grad_accumulators_grads,
     "grad_accumulators: grads is NULL (n = 1)"},
    {"smelt_grad_accumulators", "accumulate", grad_accumulators_accumulate,
     "grad_accumulators: accumulate is NULL (n = 1)"},
    {"smelt_grad_accumulators", "accumulated", grad_accumulators_accumulated,
     "grad_accumulators: accumulated is NULL (n = 1)"},
    {"smelt_grad_accumulators", "zero", grad_accumulators_zero,
     "grad_accumulators: zero is NULL (n = 1)"},
    {"smelt_sgd", "g", sgd_g, NULL},
    {"smelt_sgd", "prefix", sgd_prefix, NO_ERROR},
    {"smelt_sgd", "params", sgd_params, "sgd: params is NULL (n = 1)"},
    {"smelt_sgd", "grads", sgd_grads, "sgd: grads is NULL (n = 1)"},
    {"smelt_sgd", "o", sgd_o, "sgd: the options are NULL"},
    {"smelt_sgd", "updates", sgd_updates, "sgd: updates is NULL (n = 1)"},
    {"smelt_adam", "g", adam_g, NULL},
    {"smelt_adam", "prefix", adam_prefix, NO_ERROR},
    {"smelt_adam", "params", adam_params, "adam: params is NULL (n = 1)"},
    {"smelt_adam", "grads", adam_grads, "adam: grads is NULL (n = 1)"},
    {"smelt_adam", "o", adam_o, "adam: the options are NULL"},
    {"smelt_adam", "updates", adam_updates, "adam: updates is NULL (n = 1)"},
    {"smelt_graph_print", "g", graph_print_g, NULL},
    {"smelt_graph_print_dot", "g", graph_print_dot_g, NULL},
    {"smelt_graph_parse", "text", graph_parse_text, "m.smelt:1:1: no text (NULL)"},
    {"smelt_graph_parse", "text (length 0)", graph_parse_text_empty, "m.smelt:1:1: empty input"},
    {"smelt_graph_parse", "filename", graph_parse_filename,
     "<input>:1:1: expected a node id: ids start with '%' (%x)"},
    {"smelt_graph_parse", "errbuf", graph_parse_errbuf, NULL},
    {"smelt_free", "p", free_p, NULL},
    {"smelt_interp_new", "g", interp_new_g, "the graph is NULL"},
    {"smelt_interp_free", "it", interp_free_it, NULL},
    {"smelt_interp_error", "it", interp_error_it, "interpreter is NULL"},
    {"smelt_interp_bind", "it", interp_bind_it, NULL},
    {"smelt_interp_bind", "name", interp_bind_name, "bind: the input name is NULL"},
    {"smelt_interp_bind", "dims", interp_bind_dims, "input \"x\": dims is NULL for rank 2"},
    {"smelt_interp_bind", "data", interp_bind_data, "input \"x\": data is NULL"},
    {"smelt_interp_run", "it", interp_run_it, NULL},
    {"smelt_interp_read", "it", interp_read_it, NULL},
    {"smelt_interp_read", "name", interp_read_name, "read: the output name is NULL"},
    {"smelt_interp_read", "data", interp_read_data, "output \"y\": data is NULL"},
};
#define NROWS (sizeof rows / sizeof *rows)

/* Runs one row on a fresh fixture and compares its message. */
static void run_row(const row *r) {
  bool print = getenv("SMELT_NULLARGS_PRINT") != NULL;
  cur = r;
  got[0] = 0;
  if (print) { /* before the call: a crash shows which row it was */
    printf("@@ %s(%s = NULL)\n", r->fn, r->arg);
    fflush(stdout);
  }
  fx *f = fixture();
  r->call(f);
  if (print) {
    printf("%s\n", got[0] ? got : "(no channel)");
  } else if (strcmp(got, "SKIP") == 0) {
    printf("%s(%s = NULL): skipped in this build\n", r->fn, r->arg);
  } else if (!r->want) {
    ck_assert_msg(!got[0], "%s(%s = NULL): a message where none was expected: %s", r->fn,
                  r->arg, got);
  } else {
    ck_assert_msg(strcmp(got, r->want) == 0, "%s(%s = NULL):\n  got:  %s\n  want: %s", r->fn,
                  r->arg, got, r->want);
  }
  fixture_free(f);
}

/* Rows run CHUNK to a forked test: a fork costs about 2 ms with libLLVM
 * mapped, one per row would be most of the suite's time. */
enum { CHUNK = 20 };
#define NCHUNKS ((int)((NROWS + CHUNK - 1) / CHUNK))

START_TEST(null_arguments) {
  for (size_t i = (size_t)_i * CHUNK; i < NROWS && i < (size_t)(_i + 1) * CHUNK; i++)
    run_row(&rows[i]);
}
END_TEST

/* Every row names a public function and an argument once. */
START_TEST(rows_unique) {
  for (size_t i = 0; i < NROWS; i++)
    for (size_t j = 0; j < i; j++)
      ck_assert_msg(strcmp(rows[i].fn, rows[j].fn) || strcmp(rows[i].arg, rows[j].arg),
                    "two rows for %s(%s = NULL)", rows[i].fn, rows[i].arg);
}
END_TEST

int main(int argc, char **argv) {
  /* --list: the rows, "function argument" a line, for nullargs_cover.py,
   * which checks them against the header's prototypes */
  if (argc == 2 && strcmp(argv[1], "--list") == 0) {
    for (size_t i = 0; i < NROWS; i++) printf("%s %s\n", rows[i].fn, rows[i].arg);
    return 0;
  }
  /* programs run on the interpreter and leave no cache behind */
  setenv("SMELT_TARGET", "interp", 1);
  setenv("SMELT_CACHE", "0", 1);
  unsetenv("SMELT_DUMP");
  Suite *s = suite_create("nullargs");
  TCase *tc = tcase_create("table");
  tcase_add_loop_test(tc, null_arguments, 0, NCHUNKS);
  tcase_add_test(tc, rows_unique);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, getenv("SMELT_NULLARGS_PRINT") ? CK_SILENT : CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
