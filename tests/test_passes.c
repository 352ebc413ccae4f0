/* Graph-to-graph passes: each case is a text graph in and the exact
 * canonical text out; the split_sums pass also against the interpreter on
 * the unsplit graph, and the cpu target against the interpreter (bit for
 * bit: both sum in the blocked order). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocked_sum.h"
#include "passes/passes.h"
#include "testutil.h"

typedef smelt_graph *(*pass_fn)(const smelt_graph *, size_t, const uint32_t *, uint32_t *);

/* Runs a pass over the graph's outputs and returns its printed result. */
static char *run_pass(pass_fn pass, const char *text) {
  char err[512] = "";
  smelt_graph *g = smelt_graph_parse(text, strlen(text), "t.smelt", err, sizeof err);
  ck_assert_msg(g != NULL, "parse: %s", err);
  size_t n = smelt_graph_output_count(g);
  uint32_t roots[16];
  ck_assert(n <= 16);
  for (size_t k = 0; k < n; k++) roots[k] = smelt_graph_output(g, k, NULL).index - 1;
  smelt_graph *h = pass(g, n, roots, NULL);
  ck_assert_ptr_nonnull(h);
  ck_assert_ptr_null(smelt_graph_error(h));
  char *out = smelt_graph_print(h);
  /* the result parses back to itself */
  smelt_graph *back = smelt_graph_parse(out, strlen(out), "out", err, sizeof err);
  ck_assert_msg(back != NULL, "reparse: %s", err);
  char *again = smelt_graph_print(back);
  ck_assert_str_eq(again, out);
  smelt_free(again);
  smelt_graph_free(back);
  smelt_graph_free(h);
  smelt_graph_free(g);
  return out;
}

static const struct {
  const char *name, *in, *want;
} simplify_cases[] = {
    {"exact identities vanish",
     "input %x : f32[3]\n%a = mul %x, 1\n%b = add %a, -0.0\n%c = sub %b, 0\n%d = div %c, 1\n"
     "%e = neg %d\n%f = neg %e\n%g = pow %f, 1\noutput y = %g\n",
     "# smelt graph\ninput %x : f32[3]\noutput y = %x\n"},
    {"x + (+0) stays: it turns -0 into +0",
     "input %x : f32[3]\n%a = add %x, 0\noutput y = %a\n",
     "# smelt graph\ninput %x : f32[3]\n%1 = const [0] : f32[1]\n%2 = expand %1 : f32[3]\n"
     "%a = add %x, %2 : f32[3]\noutput y = %a\n"},
    {"integer x + 0 goes",
     "input %x : i32[3]\n%a = add %x, 0\noutput y = %a\n",
     "# smelt graph\ninput %x : i32[3]\noutput y = %x\n"},
    {"constants fold, a splat stays a broadcast scalar",
     "%a = const [1,2,3] : f32[3]\n%b = mul %a, 2\n%c = sum %b\n%d = full value=4 shape=[2,2]\n"
     "%e = sqrt %d\noutput c = %c\noutput e = %e\n",
     "# smelt graph\n%0 = const 2 : f32[]\n%c = const 12 : f32[]\n%2 = reshape %0 : f32[1,1]\n"
     "%e = expand %2 : f32[2,2]\noutput c = %c\noutput e = %e\n"},
    {"dead code and equal nodes merge",
     "input %x : f32[3]\n%a = exp %x\n%b = mul %x, 1\n%c = exp %b\n%d = add %a, %c\n"
     "%dead = log %x\noutput y = %d\n",
     "# smelt graph\ninput %x : f32[3]\n%a = exp %x : f32[3]\n%d = add %a, %a : f32[3]\n"
     "output y = %d\n"},
    {"where with equal branches or a constant condition",
     "input %x : f32[2]\ninput %y : f32[2]\ninput %c : bool[2]\n%a = where %c, %x, %x\n"
     "%b = where true, %a, %y\noutput r = %b\n",
     "# smelt graph\ninput %x : f32[2]\ninput %y : f32[2]\ninput %c : bool[2]\noutput r = %x\n"},
    {"an index out of range is left for run time",
     "%x = const [1,2,3] : f32[3]\n%i = const [5] : i64[1]\n%g = gather %x, %i axis=0 : f32[1]\n"
     "output y = %g\n",
     "# smelt graph\n%x = const [1,2,3] : f32[3]\n%i = const [5] : i64[1]\n"
     "%g = gather %x, %i axis=0 : f32[1]\noutput y = %g\n"},
};

START_TEST(simplify_exact) {
  char *out = run_pass(sm_pass_simplify, simplify_cases[_i].in);
  ck_assert_msg(strcmp(out, simplify_cases[_i].want) == 0, "%s:\n--- got\n%s--- want\n%s",
                simplify_cases[_i].name, out, simplify_cases[_i].want);
  smelt_free(out);
}
END_TEST

START_TEST(dce_keeps_interface_and_updates) {
  /* inputs and params stay; what only dead nodes use goes */
  char *out = run_pass(sm_pass_dce,
                       "input %x : f32[2]\ninput %unused : f32[2]\nparam %w : f32[2]\n"
                       "%a = mul %x, %w\n%b = exp %a\n%dead = log %a\noutput y = %b\n");
  ck_assert_str_eq(out, "# smelt graph\ninput %x : f32[2]\ninput %unused : f32[2]\n"
                        "param %w : f32[2] init=zeros\n%a = mul %x, %w : f32[2]\n"
                        "%b = exp %a : f32[2]\noutput y = %b\n");
  smelt_free(out);
}
END_TEST

START_TEST(simplify_preserves_values) {
  /* the simplified graph computes what the original computes */
  const char *text = "input %x : f64[4]\n%a = mul %x, 1\n%b = add %a, -0.0\n%c = exp %b\n"
                     "%k = const [1,2,3,4] : f64[4]\n%d = mul %k, 0.5\n%e = add %c, %d\n"
                     "%s = sum %e\noutput s = %s\n";
  char err[256];
  smelt_graph *g = smelt_graph_parse(text, strlen(text), "t", err, sizeof err);
  uint32_t root = smelt_graph_output(g, 0, NULL).index - 1;
  smelt_graph *h = sm_pass_simplify(g, 1, &root, NULL);
  double x[4] = {0.5, -1, 2, 0}, a, b;
  smelt_graph *gs[2] = {g, h};
  double *res[2] = {&a, &b};
  for (int k = 0; k < 2; k++) {
    smelt_interp *it = smelt_interp_new(gs[k]);
    ck_assert_int_eq(smelt_interp_bind(it, "x", SMELT_F64, 1, (int64_t[]){4}, x, sizeof x), 0);
    ck_assert_int_eq(smelt_interp_run(it), 0);
    ck_assert_int_eq(smelt_interp_read(it, "s", SMELT_F64, res[k], 8), 0);
    smelt_interp_free(it);
  }
  ck_assert(a == b);
  smelt_graph_free(h);
  smelt_graph_free(g);
}
END_TEST

/* ---------------------------------------------------------- split_sums */

START_TEST(split_sums_text) {
  /* per row, R = 4200: one full block of 64 rows of 64 lanes, a tail of
   * 104 padded to 2 rows; the partials in f64, summed, cast back */
  char *out = run_pass(sm_pass_split_sums,
                       "input %x : f32[2,4200]\n%s = reduce_sum %x axes=[1]\noutput y = %s\n");
  const char *want =
      "# smelt graph\ninput %x : f32[2,4200]\n"
      "%1 = slice %x start=[0,0] stop=[2,4096] step=[1,1] : f32[2,4096]\n"
      "%2 = reshape %1 : f32[2,1,64,64]\n%3 = cast %2 : f64[2,1,64,64]\n"
      "%4 = reduce_sum %3 axes=[2] : f64[2,1,1,64]\n%5 = reshape %4 : f64[2,64]\n"
      "%6 = slice %x start=[0,4096] stop=[2,4200] step=[1,1] : f32[2,104]\n"
      "%7 = pad %6 lo=[0,0] hi=[0,24] value=0 : f32[2,128]\n%8 = reshape %7 : f32[2,2,64]\n"
      "%9 = cast %8 : f64[2,2,64]\n%10 = reduce_sum %9 axes=[1] : f64[2,1,64]\n"
      "%11 = reshape %10 : f64[2,64]\n%12 = concat %5, %11 axis=1 : f64[2,128]\n"
      "%13 = reduce_sum %12 axes=[1] : f64[2,1]\n%s = cast %13 : f32[2,1]\noutput y = %s\n";
  ck_assert_msg(strcmp(out, want) == 0, "--- got\n%s--- want\n%s", out, want);
  smelt_free(out);
  /* a column sum stays in place (the lanes merge with the kept axis after
   * them, the kernel's inner loop), R = 2^19
   * needs a second stage, no tail, f64 needs no casts; non-adjacent
   * reduced axes are permuted next to each other, to where the last one
   * is; integer sums and R <= 4096 stay */
  out = run_pass(sm_pass_split_sums,
                 "input %x : f64[524288,2]\n%s = reduce_sum %x axes=[0]\noutput y = %s\n"
                 "input %v : f32[70,3,61,2]\n%q = reduce_sum %v axes=[0,2]\noutput q = %q\n"
                 "input %i : i32[8192]\n%t = reduce_sum %i axes=[0]\noutput z = %t\n"
                 "input %w : f32[4096,3]\n%u = reduce_sum %w axes=[0]\noutput w = %u\n");
  want = "# smelt graph\ninput %x : f64[524288,2]\n%1 = reshape %x : f64[128,64,128]\n"
         "%2 = reduce_sum %1 axes=[1] : f64[128,1,128]\n%3 = reshape %2 : f64[2,64,128]\n"
         "%4 = reduce_sum %3 axes=[1] : f64[2,1,128]\n%5 = reshape %4 : f64[128,2]\n"
         "%s = reduce_sum %5 axes=[0] : f64[1,2]\ninput %v : f32[70,3,61,2]\n"
         "%8 = permute %v perm=[1,0,2,3] : f32[3,70,61,2]\n%9 = reshape %8 : f32[3,4270,2]\n"
         "%10 = slice %9 start=[0,0,0] stop=[3,4096,2] step=[1,1,1] : f32[3,4096,2]\n"
         "%11 = reshape %10 : f32[3,1,64,128]\n%12 = cast %11 : f64[3,1,64,128]\n"
         "%13 = reduce_sum %12 axes=[2] : f64[3,1,1,128]\n%14 = reshape %13 : f64[3,64,2]\n"
         "%15 = slice %9 start=[0,4096,0] stop=[3,4270,2] step=[1,1,1] : f32[3,174,2]\n"
         "%16 = pad %15 lo=[0,0,0] hi=[0,18,0] value=0 : f32[3,192,2]\n"
         "%17 = reshape %16 : f32[3,3,64,2]\n%18 = cast %17 : f64[3,3,64,2]\n"
         "%19 = reduce_sum %18 axes=[1] : f64[3,1,64,2]\n%20 = reshape %19 : f64[3,64,2]\n"
         "%21 = concat %14, %20 axis=1 : f64[3,128,2]\n%22 = reduce_sum %21 axes=[1] : f64[3,1,2]\n"
         "%23 = reshape %22 : f64[1,3,1,2]\n%q = cast %23 : f32[1,3,1,2]\n"
         "input %i : i32[8192]\n%t = reduce_sum %i axes=[0] : i32[1]\n"
         "input %w : f32[4096,3]\n%u = reduce_sum %w axes=[0] : f32[1,3]\n"
         "output y = %s\noutput q = %q\noutput z = %t\noutput w = %u\n";
  ck_assert_msg(strcmp(out, want) == 0, "--- got\n%s--- want\n%s", out, want);
  smelt_free(out);
}
END_TEST

/* Output "y" (nbytes) of g with input "x" bound to data: on the
 * interpreter (target -1), or compiled for a target with 2 threads. */
static void *run_y(smelt_graph *g, int target, const void *data, size_t xbytes, size_t nbytes) {
  smelt_node xn = smelt_find(g, "x");
  int rank;
  const int64_t *dims = smelt_node_shape(g, xn, &rank);
  smelt_dtype dt = smelt_node_dtype(g, xn);
  smelt_dtype ydt = smelt_node_dtype(g, smelt_graph_output(g, 0, NULL));
  void *y = malloc(nbytes ? nbytes : 1);
  if (target < 0) {
    smelt_interp *it = smelt_interp_new(g);
    ck_assert_int_eq(smelt_interp_bind(it, "x", dt, rank, dims, data, xbytes), 0);
    ck_assert_msg(smelt_interp_run(it) == 0, "%s", smelt_interp_error(it));
    ck_assert_int_eq(smelt_interp_read(it, "y", ydt, y, nbytes), 0);
    smelt_interp_free(it);
    return y;
  }
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = smelt_compile_defaults();
  o.target = (smelt_target)target;
  o.cache_dir = NULL;
  o.num_threads = 2;
  smelt_program *pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  ck_assert_msg(pr && !smelt_program_error(pr), "compile: %s",
                pr ? smelt_program_error(pr) : "NULL");
  ck_assert_int_eq(smelt_program_bind(pr, "x", dt, rank, dims, data, xbytes), 0);
  ck_assert_msg(smelt_program_run(pr) == 0, "%s", smelt_program_error(pr));
  ck_assert_int_eq(smelt_program_read(pr, "y", ydt, y, nbytes), 0);
  smelt_program_free(pr);
  smelt_params_free(p);
  return y;
}

/* The split graph computes the unsplit graph's bits on the interpreter,
 * and the cpu target computes them too. */
START_TEST(split_sums_exact) {
  const bs_case *c = &bs_cases[_i];
  void *data = bs_input(c);
  size_t xbytes = (size_t)bs_numel(c) * smelt_dtype_size(c->dt);
  smelt_graph *g = smelt_graph_new();
  smelt_node x = smelt_input(g, "x", c->dt, c->rank, c->dims);
  smelt_node y = smelt_sum(g, x, c->naxes, c->axes, false);
  smelt_output(g, "y", y);
  ck_assert_ptr_null(smelt_graph_error(g));
  size_t nbytes = (size_t)smelt_node_numel(g, y) * smelt_dtype_size(c->dt);
  void *want = run_y(g, -1, data, xbytes, nbytes);
  uint32_t root = y.index - 1;
  smelt_graph *h = sm_pass_split_sums(g, 1, &root, NULL);
  ck_assert_ptr_nonnull(h);
  void *got = run_y(h, -1, data, xbytes, nbytes);
  ck_assert_msg(memcmp(got, want, nbytes) == 0, "%s: the split graph differs", c->name);
  free(got);
  if (tu_have_cpu()) {
    got = run_y(g, SMELT_TARGET_CPU, data, xbytes, nbytes);
    ck_assert_msg(memcmp(got, want, nbytes) == 0, "%s: the cpu target differs", c->name);
    free(got);
  } else {
    fprintf(stderr, "skipped the cpu target: this libsmelt has no LLVM\n");
  }
  free(want);
  smelt_graph_free(h);
  smelt_graph_free(g);
  free(data);
}
END_TEST

/* Sums inside other graphs: mean, a gradient (a bias broadcast over 4100
 * rows sums its gradient over them), a sum read twice, on the cpu target
 * against the interpreter. */
START_TEST(split_sums_in_graphs) {
  if (!tu_have_cpu()) {
    fprintf(stderr, "skipped %s: this libsmelt has no LLVM\n", __func__);
    return;
  }
  enum { ROWS = 4100, COLS = 3 };
  static float xd[ROWS * COLS];
  for (int i = 0; i < ROWS * COLS; i++) xd[i] = (float)bs_value(i / COLS, ROWS) * 1e-8f;
  for (int k = 0; k < 3; k++) {
    smelt_graph *g = smelt_graph_new();
    smelt_node x = smelt_input(g, "x", SMELT_F32, 2, (const int64_t[]){ROWS, COLS}), y;
    if (k == 0) {
      y = smelt_mean(g, x, 1, (const int[]){0}, false);
    } else if (k == 1) {
      smelt_node b = smelt_param(g, "b", SMELT_F32, 1, (const int64_t[]){COLS}, smelt_init_ones());
      smelt_node t = smelt_add(g, x, b), gb;
      smelt_node loss = smelt_sum(g, smelt_mul(g, t, t), 0, NULL, false);
      ck_assert_int_eq(smelt_grad(g, loss, 1, &b, &gb), 0);
      y = gb;
    } else {
      smelt_node s = smelt_sum(g, x, 1, (const int[]){0}, true);
      y = smelt_add(g, smelt_mul(g, x, s), s);
    }
    smelt_output(g, "y", y);
    ck_assert_ptr_null(smelt_graph_error(g));
    size_t nbytes = (size_t)smelt_node_numel(g, y) * 4;
    void *want = run_y(g, -1, xd, sizeof xd, nbytes);
    void *got = run_y(g, SMELT_TARGET_CPU, xd, sizeof xd, nbytes);
    ck_assert_msg(memcmp(got, want, nbytes) == 0, "graph %d: the cpu target differs", k);
    free(got);
    free(want);
    smelt_graph_free(g);
  }
}
END_TEST

static Suite *passes_suite(void) {
  Suite *s = suite_create("passes");
  TCase *tc = tcase_create("simplify");
  tcase_add_loop_test(tc, simplify_exact, 0,
                      (int)(sizeof simplify_cases / sizeof simplify_cases[0]));
  tcase_add_test(tc, simplify_preserves_values);
  tcase_add_test(tc, dce_keeps_interface_and_updates);
  suite_add_tcase(s, tc);
  tc = tcase_create("split_sums");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, split_sums_text);
  tcase_add_loop_test(tc, split_sums_exact, 0, BS_NCASES);
  tcase_add_test(tc, split_sums_in_graphs);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(passes_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
