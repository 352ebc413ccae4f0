/* Graph-to-graph passes: each case is a text graph in and the exact
 * canonical text out. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

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

static Suite *passes_suite(void) {
  Suite *s = suite_create("passes");
  TCase *tc = tcase_create("simplify");
  tcase_add_loop_test(tc, simplify_exact, 0,
                      (int)(sizeof simplify_cases / sizeof simplify_cases[0]));
  tcase_add_test(tc, simplify_preserves_values);
  tcase_add_test(tc, dce_keeps_interface_and_updates);
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
