/*
 * autograd_basics: gradients as graphs.
 *
 * smelt_grad(g, y, n, wrt, grads) adds the backward graph of a scalar y to
 * the same graph, as ordinary nodes: the gradients are computed by the same
 * compiled program as the forward values (fused and optimized with them),
 * and they can be differentiated again for higher derivatives.
 *
 * Every example follows the same steps:
 *   1. build the forward graph (inputs, params, ops);
 *   2. call smelt_grad for the gradients, and check smelt_graph_error()
 *      once (errors are sticky);
 *   3. register the values to compute as outputs, compile them into a
 *      program and run it;
 *   4. print each result and compare it with the expected values (the ones
 *      PyTorch's autograd gives).
 *
 * The program exits non-zero when any result differs, so it doubles as a
 * smoke test.
 *
 * Build and run:  meson compile -C build autograd_basics
 *                 && ./build/samples/autograd_basics
 */
#include <smelt/smelt.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_checked; /* results compared with their expected values */
static int n_failed;  /* ... and how many of them differed */

/* ------------------------------------------------------------- helpers */

static void die(const char *what, const char *msg) {
  fprintf(stderr, "autograd_basics: %s: %s\n", what, msg ? msg : "(no message)");
  exit(2);
}

static smelt_graph *new_graph(void) {
  smelt_graph *g = smelt_graph_new();
  if (!g) die("smelt_graph_new", "out of memory");
  return g;
}

/* Step 2: one check after building and differentiating. */
static void check_graph(const smelt_graph *g, const char *what) {
  const char *err = smelt_graph_error(g);
  if (err) die(what, err);
}

/* Steps 3 and 4 for one graph: registers each node as output names[i],
 * binds one f64 input (name may be NULL for none), runs, and reads every
 * output back as doubles (f64 outputs only: every example here is f64).
 * vals[i] is malloc'ed; the caller frees it. */
static void run(smelt_graph *g, int n, const smelt_node *nodes, const char *const *names,
                const char *input, const double *data, double **vals) {
  for (int i = 0; i < n; i++) smelt_output(g, names[i], nodes[i]);
  check_graph(g, "outputs");
  /* A program computes the outputs (compiled for the cpu target when
   * libsmelt has LLVM); an evaluation program cannot take gradients, so
   * this is a plain one with no updates. */
  smelt_params *params = smelt_params_new(g);
  if (!params) die("smelt_params_new", "out of memory");
  smelt_program *pr = smelt_program_new(g, params, n, names, 0, NULL);
  if (!pr) die("smelt_program_new", "out of memory");
  if (smelt_program_error(pr)) die("compiling", smelt_program_error(pr));
  if (input) {
    smelt_node in = smelt_find(g, input);
    int rank = 0;
    const int64_t *dims = smelt_node_shape(g, in, &rank);
    size_t nbytes = (size_t)smelt_node_numel(g, in) * sizeof(double);
    if (smelt_program_bind(pr, input, SMELT_F64, rank, dims, data, nbytes) != 0)
      die(input, smelt_program_error(pr));
  }
  if (smelt_program_run(pr) != 0) die("smelt_program_run", smelt_program_error(pr));
  for (int i = 0; i < n; i++) {
    size_t numel = (size_t)smelt_node_numel(g, nodes[i]);
    vals[i] = malloc((numel ? numel : 1) * sizeof(double));
    if (!vals[i]) die("run", "out of memory");
    if (smelt_program_read(pr, names[i], SMELT_F64, vals[i], numel * sizeof(double)) != 0)
      die(names[i], smelt_program_error(pr));
  }
  smelt_program_free(pr);
  smelt_params_free(params);
}

/* Prints "  label   [v0, v1, ...]" and compares with want (1e-12 relative:
 * these results are exact small numbers). */
static void report(const char *label, const double *got, const double *want, int n) {
  printf("  %-34s [", label);
  for (int i = 0; i < n; i++) printf(i ? ", %g" : "%g", got[i]);
  printf("]\n");
  n_checked++;
  for (int i = 0; i < n; i++) {
    if (!(fabs(got[i] - want[i]) <= 1e-12 * fmax(1.0, fabs(want[i])))) {
      printf("  %34s MISMATCH at element %d: got %.17g, expected %.17g\n", "", i, got[i],
             want[i]);
      n_failed++;
      return;
    }
  }
}

static smelt_node sum_all(smelt_graph *g, smelt_node x) { return smelt_sum(g, x, 0, NULL, false); }

/* ------------------------------------------------------------ examples */

/* y = sum(x^3) at x = [[5,4],[3,2]]: dy/dx = 3x^2 = [[75,48],[27,12]]. */
static void cube_example(void) {
  printf("\ny = sum(x^3), x = [[5, 4], [3, 2]] (f64)\n");
  smelt_graph *g = new_graph();
  smelt_node x = smelt_input(g, "x", SMELT_F64, 2, (int64_t[]){2, 2});
  /* The exponent is a literal: a weak scalar that takes x's dtype. */
  smelt_node y = sum_all(g, smelt_pow(g, x, smelt_scalar(g, 3)));
  smelt_node dy_dx;
  smelt_grad(g, y, 1, &x, &dy_dx); /* -1 on error, also recorded on g */
  check_graph(g, "sum(x^3)");

  const double xv[4] = {5, 4, 3, 2};
  double *v[2];
  run(g, 2, (smelt_node[]){y, dy_dx}, (const char *const[]){"y", "dy_dx"}, "x", xv, v);
  report("y", v[0], (double[]){224}, 1);
  report("dy/dx = 3x^2", v[1], (double[]){75, 48, 27, 12}, 4);
  free(v[0]), free(v[1]);
  smelt_graph_free(g);
}

/* z = sum(2 w^2) for a param w = [1, 2]: dz/dw = 4w = [4, 8]. Params are
 * the persistent tensors a training program updates; their gradients come
 * from the same call. */
static void param_example(void) {
  printf("\nz = sum(2 * w^2), w = [1, 2] (a param)\n");
  smelt_graph *g = new_graph();
  const double wv[2] = {1, 2};
  smelt_node w = smelt_param(g, "w", SMELT_F64, 1, (int64_t[]){2}, smelt_init_data(wv));
  smelt_node z = sum_all(g, smelt_mul(g, smelt_scalar(g, 2), smelt_pow(g, w, smelt_scalar(g, 2))));
  smelt_node dz_dw;
  smelt_grad(g, z, 1, &w, &dz_dw);
  check_graph(g, "sum(2 w^2)");

  double *v[2];
  run(g, 2, (smelt_node[]){z, dz_dw}, (const char *const[]){"z", "dz_dw"}, NULL, NULL, v);
  report("z", v[0], (double[]){10}, 1);
  report("dz/dw = 4w", v[1], (double[]){4, 8}, 2);
  free(v[0]), free(v[1]);
  smelt_graph_free(g);
}

/* y = sum(x^2) at [1, 2, 3]: dy/dx = 2x = [2, 4, 6]. The gradient is part
 * of the graph, so printing the graph shows the backward nodes. */
static void square_example(void) {
  printf("\ny = sum(x * x), x = [1, 2, 3]\n");
  smelt_graph *g = new_graph();
  smelt_node x = smelt_input(g, "x", SMELT_F64, 1, (int64_t[]){3});
  smelt_node y = sum_all(g, smelt_mul(g, x, x));
  smelt_node dy_dx;
  smelt_grad(g, y, 1, &x, &dy_dx);
  check_graph(g, "sum(x * x)");

  const double xv[3] = {1, 2, 3};
  double *v[1];
  run(g, 1, &dy_dx, (const char *const[]){"dy_dx"}, "x", xv, v);
  report("dy/dx = 2x", v[0], (double[]){2, 4, 6}, 3);
  free(v[0]);

  printf("  the graph with its backward nodes (smelt_graph_print):\n");
  char *txt = smelt_graph_print(g);
  if (!txt) die("smelt_graph_print", "out of memory");
  for (const char *p = txt; *p;) {
    const char *nl = strchr(p, '\n');
    int len = nl ? (int)(nl - p) : (int)strlen(p);
    printf("    %.*s\n", len, p);
    p += len + (nl != NULL);
  }
  smelt_free(txt);
  smelt_graph_free(g);
}

/* Higher derivatives: the gradient is a graph, so it can be differentiated
 * again. With y = x^3 elementwise, sum(dy/dx) has the gradient d2y/dx2,
 * and so on: 3x^2, 6x, 6. */
static void higher_derivatives_example(void) {
  printf("\nhigher derivatives of x^3 at x = [-2, -0.5, 0, 1, 2.5]\n");
  smelt_graph *g = new_graph();
  smelt_node x = smelt_input(g, "x", SMELT_F64, 1, (int64_t[]){5});
  smelt_node d1, d2, d3;
  smelt_grad(g, sum_all(g, smelt_pow(g, x, smelt_scalar(g, 3))), 1, &x, &d1);
  smelt_grad(g, sum_all(g, d1), 1, &x, &d2);
  smelt_grad(g, sum_all(g, d2), 1, &x, &d3);
  check_graph(g, "derivatives of x^3");

  const double xv[5] = {-2, -0.5, 0, 1, 2.5};
  double *v[3];
  run(g, 3, (smelt_node[]){d1, d2, d3}, (const char *const[]){"d1", "d2", "d3"}, "x", xv, v);
  double want[3][5];
  for (int i = 0; i < 5; i++) {
    want[0][i] = 3 * xv[i] * xv[i];
    want[1][i] = 6 * xv[i];
    want[2][i] = 6;
  }
  report("dy/dx     = 3x^2", v[0], want[0], 5);
  report("d2y/dx2   = 6x", v[1], want[1], 5);
  report("d3y/dx3   = 6", v[2], want[2], 5);
  for (int i = 0; i < 3; i++) free(v[i]);
  smelt_graph_free(g);
}

/* Errors: reverse mode needs a scalar y (or an explicit seed, with
 * smelt_vjp). The message says which shape y has. */
static void error_example(void) {
  printf("\nerrors: the gradient of a non-scalar y\n");
  smelt_graph *g = new_graph();
  smelt_node x = smelt_input(g, "x", SMELT_F64, 2, (int64_t[]){3, 4});
  smelt_node y = smelt_exp(g, x); /* [3,4], not a scalar */
  smelt_node dy_dx;
  int rc = smelt_grad(g, y, 1, &x, &dy_dx);
  const char *err = smelt_graph_error(g);
  printf("  smelt_grad returned %d; smelt_graph_error(g):\n    %s\n", rc,
         err ? err : "(NULL: no error recorded!)");
  n_checked++;
  if (rc != -1 || !err || !strstr(err, "[3,4]") || smelt_node_valid(dy_dx)) {
    printf("  MISMATCH: expected -1, an invalid gradient and a message naming [3,4]\n");
    n_failed++;
  }
  smelt_graph_free(g);
}

int main(void) {
  printf("smelt %s: gradients as graphs, compiled and run as programs\n", smelt_version());
  cube_example();
  param_example();
  square_example();
  higher_derivatives_example();
  error_example();

  if (n_failed) {
    printf("\n%d of %d results differ from the expected values\n", n_failed, n_checked);
    return 1;
  }
  printf("\nall %d results as expected\n", n_checked);
  return 0;
}
