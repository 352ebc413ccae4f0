/* Helpers shared by the Check suites.
 *
 * Conventions
 *  - Helpers that can fail a test take the caller's file and line through a
 *    macro (TU_*), so a failure points at the test, not at this file.
 *  - Evaluation helpers run the reference interpreter and return malloc'ed
 *    memory the test frees with free() (the library's allocator is not
 *    involved). A graph error or an interpreter error fails the test with
 *    the message.
 *  - Tolerances: TU_ASSERT_CLOSE compares |got - want| <= atol + rtol*|want|.
 *    NaN matches NaN only; an infinity matches only the same infinity.
 *  - Dims passed through `...` are read as int (va_arg(ap, int)); pass
 *    literal ints or cast to int. Use the *_a variants with an int64_t
 *    array for anything else.
 *
 * Tests link the static library, so src/internal.h is reachable: see
 * tu_node_input for the one place this file uses it.
 */
#ifndef SMELT_TESTUTIL_H
#define SMELT_TESTUTIL_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smelt/smelt.h"

/* A dims array literal: TU_DIMS(2, 3) is (const int64_t[]){2, 3}. For rank
 * 0 pass NULL. */
#define TU_DIMS(...) ((const int64_t[]){__VA_ARGS__})
/* Number of elements of a compound-literal argument list. */
#define TU_NARGS_F64(...) ((int)(sizeof((double[]){__VA_ARGS__}) / sizeof(double)))

/* --------------------------------------------------------------- graphs */
/* A new graph; fails the test when NULL. */
#define TU_GRAPH() tu_graph_new_(__FILE__, __LINE__)
smelt_graph *tu_graph_new_(const char *file, int line);

/* ------------------------------------------------------------- sources */
/* An input with dims given as ints: tu_input(g, "x", SMELT_F32, 2, 3, 4). */
smelt_node tu_input(smelt_graph *g, const char *name, smelt_dtype dt, int rank, ...);

/* Array constants from typed C arrays (numel(dims) elements). */
smelt_node tu_const_f32(smelt_graph *g, int rank, const int64_t *dims, const float *v);
smelt_node tu_const_f64(smelt_graph *g, int rank, const int64_t *dims, const double *v);
smelt_node tu_const_i32(smelt_graph *g, int rank, const int64_t *dims, const int32_t *v);
smelt_node tu_const_i64(smelt_graph *g, int rank, const int64_t *dims, const int64_t *v);
smelt_node tu_const_bool(smelt_graph *g, int rank, const int64_t *dims, const uint8_t *v);
/* Any dtype from double values (converted with a C cast; bool is v != 0). */
smelt_node tu_const_d(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims,
                      const double *v);

/* 1-D constants from literals: TU_VEC(g, SMELT_F32, 1, 2, 3) is a
 * [3] f32 constant. Values are written as doubles and converted. */
#define TU_VEC(g, dt, ...)                                                              \
  tu_const_d((g), (dt), 1, TU_DIMS(TU_NARGS_F64(__VA_ARGS__)), (const double[]){__VA_ARGS__})
/* N-D constant from literals: TU_ARR(g, SMELT_F32, 2, TU_DIMS(2, 2), 1, 2, 3, 4).
 * The number of values must equal numel(dims) (checked: fails the test). */
#define TU_ARR(g, dt, rank, dims, ...)                                                  \
  tu_const_checked_(__FILE__, __LINE__, (g), (dt), (rank), (dims),                       \
                    TU_NARGS_F64(__VA_ARGS__), (const double[]){__VA_ARGS__})
smelt_node tu_const_checked_(const char *file, int line, smelt_graph *g, smelt_dtype dt,
                             int rank, const int64_t *dims, int nvals, const double *v);

/* ----------------------------------------------------------- evaluation */
/* An input binding for tu_run: the input's dtype, rank and dims are taken
 * from the graph's input node of that name; data must hold its numel. */
typedef struct tu_bind {
  const char *name;
  const void *data;
} tu_bind;

/* Registers each node as an output (fresh names "tu_out<k>"), binds the
 * inputs, runs the interpreter and stores malloc'ed dense copies of the
 * results (in each node's dtype) in results[i]. Returns NULL on success,
 * or a malloc'ed error message (graph error, bind error, run error) with
 * every results[i] NULL; the caller frees it. */
char *tu_run(smelt_graph *g, int nout, const smelt_node *outs, void **results, int nbind,
             const tu_bind *binds);

/* One output, no inputs: the result in the node's dtype; fails the test on
 * any error. */
#define TU_RUN1(g, n) tu_run1_(__FILE__, __LINE__, (g), (n), 0, NULL)
#define TU_RUN1_WITH(g, n, nbind, binds) tu_run1_(__FILE__, __LINE__, (g), (n), (nbind), (binds))
void *tu_run1_(const char *file, int line, smelt_graph *g, smelt_node n, int nbind,
               const tu_bind *binds);

/* One output converted to double (any dtype; bool gives 0/1); fails the
 * test on any error. numel elements (at least one byte allocated). */
#define TU_EVAL(g, n) tu_eval_(__FILE__, __LINE__, (g), (n), 0, NULL)
#define TU_EVAL_WITH(g, n, nbind, binds) tu_eval_(__FILE__, __LINE__, (g), (n), (nbind), (binds))
double *tu_eval_(const char *file, int line, smelt_graph *g, smelt_node n, int nbind,
                 const tu_bind *binds);

/* Runs n expecting a run-time error: fails the test when the run succeeds
 * or the message does not contain `substr`. */
#define TU_ASSERT_RUN_ERROR(g, n, nbind, binds, substr)                                  \
  tu_assert_run_error_(__FILE__, __LINE__, (g), (n), (nbind), (binds), (substr))
void tu_assert_run_error_(const char *file, int line, smelt_graph *g, smelt_node n, int nbind,
                          const tu_bind *binds, const char *substr);

/* Converts n elements of dtype dt at p to double (malloc'ed). */
double *tu_to_double(smelt_dtype dt, const void *p, int64_t n);

/* ------------------------------------------------------------ asserting */
/* Compares n doubles; fails naming the first bad index and both values. */
#define TU_ASSERT_CLOSE(got, want, n, atol, rtol)                                        \
  tu_assert_close_(__FILE__, __LINE__, (got), (want), (int64_t)(n), (atol), (rtol))
void tu_assert_close_(const char *file, int line, const double *got, const double *want,
                      int64_t n, double atol, double rtol);
/* True when a and b match under the rule above. */
bool tu_close(double got, double want, double atol, double rtol);

/* Evaluates node n, checks its numel equals the number of listed values
 * and every value matches within atol (absolute) + atol*|want| (relative):
 *   TU_ASSERT_VALUES(g, y, 1e-6, 2, 4, 6);
 * Use NAN / INFINITY for specials. */
#define TU_ASSERT_VALUES(g, n, atol, ...)                                               \
  tu_assert_values_(__FILE__, __LINE__, (g), (n), (atol), TU_NARGS_F64(__VA_ARGS__),     \
                    (const double[]){__VA_ARGS__}, 0, NULL)
/* Same with input bindings. */
#define TU_ASSERT_VALUES_WITH(g, n, nbind, binds, atol, ...)                            \
  tu_assert_values_(__FILE__, __LINE__, (g), (n), (atol), TU_NARGS_F64(__VA_ARGS__),     \
                    (const double[]){__VA_ARGS__}, (nbind), (binds))
/* Same with an expected array. */
#define TU_ASSERT_VALUES_A(g, n, atol, count, want)                                     \
  tu_assert_values_(__FILE__, __LINE__, (g), (n), (atol), (count), (want), 0, NULL)
void tu_assert_values_(const char *file, int line, smelt_graph *g, smelt_node n, double atol,
                       int64_t count, const double *want, int nbind, const tu_bind *binds);

/* Shapes: TU_ASSERT_SHAPE(g, n, rank, dims...) with int dims, e.g.
 * TU_ASSERT_SHAPE(g, y, 2, 3, 4) or TU_ASSERT_SHAPE(g, s, 0). Also fails on
 * an invalid node (printing the graph's error). */
#define TU_ASSERT_SHAPE(g, n, ...) tu_assert_shape_(__FILE__, __LINE__, (g), (n), __VA_ARGS__)
void tu_assert_shape_(const char *file, int line, const smelt_graph *g, smelt_node n, int rank,
                      ...);
/* True when n has exactly this shape (int64 dims array; NULL for rank 0). */
bool tu_shape_eq(const smelt_graph *g, smelt_node n, int rank, const int64_t *dims);
/* "[2,3]" into buf (returns buf). */
char *tu_shape_str(int rank, const int64_t *dims, char *buf, size_t len);

/* The node is valid, has dtype dt, and the graph has no error. */
#define TU_ASSERT_DTYPE(g, n, dt) tu_assert_dtype_(__FILE__, __LINE__, (g), (n), (dt))
void tu_assert_dtype_(const char *file, int line, const smelt_graph *g, smelt_node n,
                      smelt_dtype dt);

/* The graph has no error (prints it otherwise). */
#define TU_ASSERT_OK(g) tu_assert_ok_(__FILE__, __LINE__, (g))
void tu_assert_ok_(const char *file, int line, const smelt_graph *g);

/* The graph has an error whose message contains every listed substring
 * (case-sensitive): TU_ASSERT_ERROR(g, "add", "[2,3]", "[4]"). */
#define TU_ASSERT_ERROR(g, ...)                                                          \
  tu_assert_error_(__FILE__, __LINE__, (g), (const char *[]){__VA_ARGS__, NULL})
void tu_assert_error_(const char *file, int line, const smelt_graph *g, const char **substrs);

/* ------------------------------------------------------- graph structure */
/* Input i (0-based) of node n, through the internal node table; invalid
 * when out of range. */
smelt_node tu_node_input(const smelt_graph *g, smelt_node n, int i);
int tu_node_ninputs(const smelt_graph *g, smelt_node n);
/* Number of nodes in g whose op is `op` ("expand", "reshape", ...). */
int tu_count_op(const smelt_graph *g, const char *op);
/* True when the printed text of g contains substr (false when printing
 * fails). */
bool tu_text_contains(const smelt_graph *g, const char *substr);

/* ck_assert_msg for hot loops: Check records every passing ck_assert
 * (a write to its pipe), which makes million-element loops slow under
 * valgrind; this only calls into Check on failure. */
#define TU_CHECK(cond, ...)                                                                \
  do {                                                                                     \
    if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                \
  } while (0)

/* A fresh directory /tmp/smelt-<tag>-XXXXXX (malloc'ed); fails the test when
 * it cannot be made. */
char *tu_temp_dir(const char *tag);
/* Removes dir and everything below it (symlinks are removed, not followed). */
void tu_rm_tree(const char *dir);

/* True when programs compile for the cpu target (libsmelt was built with
 * LLVM): a scalar neg compiled without a cache. */
bool tu_have_cpu(void);

#endif
