/*
 * broadcasting: the classic NumPy/PyTorch broadcasting and reduction
 * examples, built as smelt graphs, compiled and run.
 *
 * Every example follows the same steps:
 *   1. build a graph with the smelt_* builders (each call infers its dtype
 *      and shape immediately, broadcasting as NumPy and PyTorch do);
 *   2. check smelt_graph_error() once, after building (errors are sticky);
 *   3. compile the graph's outputs into a program and run it
 *      (smelt_program_*: machine code on the cpu target by default);
 *   4. read the outputs back and compare them with the expected values.
 *
 * The program prints each result and exits non-zero when any result differs
 * from what NumPy/PyTorch give, so it doubles as a smoke test.
 *
 * Build and run:  ./scripts/demo   (or: meson compile -C build broadcasting
 *                                   && ./build/samples/broadcasting)
 */
#include <smelt/smelt.h>

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Output layout: label, then dtype and shape, then the values. */
enum { LABEL_WIDTH = 40, TYPE_WIDTH = 18 };

static int n_checked; /* results compared with their expected values */
static int n_failed;  /* ... and how many of them differed */

/* ------------------------------------------------------------- helpers */

static void die(const char *what, const char *msg) {
  fprintf(stderr, "broadcasting: %s: %s\n", what, msg ? msg : "(no message)");
  exit(2);
}

static smelt_graph *new_graph(void) {
  smelt_graph *g = smelt_graph_new();
  if (!g) die("smelt_graph_new", "out of memory");
  return g;
}

/* Step 2: one check after building. A failed builder call anywhere above
 * made every later call return an invalid handle; the first message says
 * what went wrong. */
static void check_graph(const smelt_graph *g, const char *what) {
  const char *err = smelt_graph_error(g);
  if (err) die(what, err);
}

/* Step 3: a compiled program computing every output of g (the cpu target
 * when libsmelt has LLVM, else the interpreter; $SMELT_TARGET chooses).
 * Inputs, if any, are bound by the caller before run_program. */
typedef struct runner {
  smelt_params *params; /* none of these graphs has params, but programs take a store */
  smelt_program *pr;
} runner;

static runner *new_program(smelt_graph *g) {
  size_t n = smelt_graph_output_count(g);
  const char **names = malloc((n ? n : 1) * sizeof *names);
  runner *r = malloc(sizeof *r);
  if (!names || !r) die("new_program", "out of memory");
  for (size_t i = 0; i < n; i++) smelt_graph_output(g, i, &names[i]);
  r->params = smelt_params_new(g);
  if (!r->params) die("smelt_params_new", "out of memory");
  r->pr = smelt_program_new_eval(g, r->params, (int)n, names);
  free(names);
  if (!r->pr) die("smelt_program_new_eval", "out of memory");
  if (smelt_program_error(r->pr)) die("compiling", smelt_program_error(r->pr));
  return r;
}

static void run_program(runner *r) {
  if (smelt_program_run(r->pr) != 0) die("smelt_program_run", smelt_program_error(r->pr));
}

static void free_program(runner *r) {
  smelt_program_free(r->pr);
  smelt_params_free(r->params);
  free(r);
}

/* Step 4: reads output `name` (node n) and converts it to doubles for
 * printing and comparing. The caller frees the result. */
static double *read_output(runner *it, const smelt_graph *g, const char *name,
                           smelt_node n) {
  smelt_dtype dt = smelt_node_dtype(g, n);
  size_t numel = (size_t)smelt_node_numel(g, n);
  size_t nbytes = numel * smelt_dtype_size(dt);
  void *raw = malloc(nbytes ? nbytes : 1);
  double *v = malloc((numel ? numel : 1) * sizeof *v);
  if (!raw || !v) die("read_output", "out of memory");
  if (smelt_program_read(it->pr, name, dt, raw, nbytes) != 0)
    die(name, smelt_program_error(it->pr));
  for (size_t i = 0; i < numel; i++) {
    switch (dt) {
    case SMELT_F32: v[i] = ((const float *)raw)[i]; break;
    case SMELT_F64: v[i] = ((const double *)raw)[i]; break;
    case SMELT_I32: v[i] = ((const int32_t *)raw)[i]; break;
    case SMELT_I64: v[i] = (double)((const int64_t *)raw)[i]; break;
    default: v[i] = ((const unsigned char *)raw)[i]; break;
    }
  }
  free(raw);
  return v;
}

/* A small string builder for the printed values. */
typedef struct text {
  char s[4096];
  size_t len;
} text;

static void put(text *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(t->s + t->len, sizeof t->s - t->len, fmt, ap);
  va_end(ap);
  if (k > 0) t->len += (size_t)k;
  if (t->len >= sizeof t->s) t->len = sizeof t->s - 1;
}

static void put_number(text *t, double v, bool is_int) {
  if (is_int)
    put(t, "%" PRId64, (int64_t)v);
  else
    put(t, "%.5g", v);
}

/* "f32[2,3]" */
static void put_type(text *t, const smelt_graph *g, smelt_node n) {
  int rank = 0;
  const int64_t *dims = smelt_node_shape(g, n, &rank);
  put(t, "%s[", smelt_dtype_name(smelt_node_dtype(g, n)));
  for (int i = 0; i < rank; i++) put(t, i ? ",%" PRId64 : "%" PRId64, dims[i]);
  put(t, "]");
}

/* Nested brackets as NumPy prints them: rows of a matrix on their own
 * lines, aligned under the first '['. indent is the column of that '['. */
static void put_values(text *t, const double *v, size_t *pos, int rank, const int64_t *dims,
                       int depth, bool is_int, int indent) {
  if (depth == rank) {
    put_number(t, v[(*pos)++], is_int);
    return;
  }
  put(t, "[");
  for (int64_t i = 0; i < dims[depth]; i++) {
    if (i > 0 && depth == rank - 1) put(t, ", ");
    if (i > 0 && depth < rank - 1) put(t, ",\n%*s", indent + depth + 1, "");
    put_values(t, v, pos, rank, dims, depth + 1, is_int, indent);
  }
  put(t, "]");
}

static bool close_enough(double got, double want) {
  if (isnan(want)) return isnan(got);
  return fabs(got - want) <= 1e-5 * fmax(1.0, fabs(want));
}

/* Prints one result line and compares got with want (numel values of node
 * n). With note == NULL the values themselves are printed; otherwise the
 * note is (for tensors too large to print). */
static void report(const char *label, const smelt_graph *g, smelt_node n, const double *got,
                   const double *want, const char *note) {
  text t = {.len = 0};
  put(&t, "  %-*s ", LABEL_WIDTH, label);
  size_t type_at = t.len;
  put_type(&t, g, n);
  int pad = TYPE_WIDTH - (int)(t.len - type_at);
  put(&t, "%*s", pad > 1 ? pad : 1, "");
  if (note) {
    put(&t, "%s", note);
  } else {
    int rank = 0;
    const int64_t *dims = smelt_node_shape(g, n, &rank);
    smelt_dtype dt = smelt_node_dtype(g, n);
    size_t pos = 0;
    put_values(&t, got, &pos, rank, dims, 0, dt != SMELT_F32 && dt != SMELT_F64, (int)t.len);
  }
  puts(t.s);

  int64_t numel = smelt_node_numel(g, n);
  n_checked++;
  for (int64_t i = 0; i < numel; i++) {
    if (!close_enough(got[i], want[i])) {
      printf("  %*s MISMATCH at element %" PRId64 ": got %.9g, expected %.9g\n", LABEL_WIDTH, "",
             i, got[i], want[i]);
      n_failed++;
      return;
    }
  }
}

/* Prints a shape-only result (no data needed: shapes are inferred when the
 * node is built) and compares the shape with the expected one. */
static void report_shape(const char *label, const smelt_graph *g, smelt_node n, int want_rank,
                         const int64_t *want_dims) {
  text t = {.len = 0};
  put(&t, "  %-*s ", LABEL_WIDTH, label);
  size_t type_at = t.len;
  put_type(&t, g, n);
  int pad = TYPE_WIDTH - (int)(t.len - type_at);
  put(&t, "%*s(shape only: inferred when built)", pad > 1 ? pad : 1, "");
  puts(t.s);
  int rank = 0;
  const int64_t *dims = smelt_node_shape(g, n, &rank);
  n_checked++;
  if (rank != want_rank || memcmp(dims, want_dims, (size_t)rank * sizeof *dims) != 0) {
    printf("  %*s MISMATCH: wrong shape\n", LABEL_WIDTH, "");
    n_failed++;
  }
}

/* The common case: a graph with one output "out" and no inputs; run it and
 * compare with want. */
static void run_and_report(smelt_graph *g, smelt_node out, const char *label, const double *want) {
  smelt_output(g, "out", out);
  check_graph(g, label);
  runner *it = new_program(g);
  run_program(it);
  double *got = read_output(it, g, "out", out);
  report(label, g, out, got, want, NULL);
  free(got);
  free_program(it);
}

static void section(const char *title) { printf("\n%s\n", title); }

/* -------------------------------------------------------- broadcasting */

static void small_examples(void) {
  section("Broadcasting: shapes align from the right; each pair of dims is equal or 1");

  { /* A literal scalar stretches to any shape (and does not widen f32). */
    smelt_graph *g = new_graph();
    const float a[] = {1, 2, 3};
    smelt_node x = smelt_const_array(g, SMELT_F32, 1, (int64_t[]){3}, a);
    run_and_report(g, smelt_mul(g, x, smelt_scalar(g, 2)), "[1, 2, 3] * 2",
                   (double[]){2, 4, 6});
    smelt_graph_free(g);
  }
  { /* A size-1 dim stretches. */
    smelt_graph *g = new_graph();
    const float a[] = {1, 2, 3, 4}, b[] = {3};
    smelt_node x = smelt_const_array(g, SMELT_F32, 1, (int64_t[]){4}, a);
    smelt_node y = smelt_const_array(g, SMELT_F32, 1, (int64_t[]){1}, b);
    run_and_report(g, smelt_add(g, x, y), "[1, 2, 3, 4] + [3]", (double[]){4, 5, 6, 7});
    smelt_graph_free(g);
  }
  { /* A row vector applies to every row. */
    smelt_graph *g = new_graph();
    const float a[] = {1, 2, 3, 4}, b[] = {2, 4};
    smelt_node x = smelt_const_array(g, SMELT_F32, 2, (int64_t[]){2, 2}, a);
    smelt_node y = smelt_const_array(g, SMELT_F32, 1, (int64_t[]){2}, b);
    run_and_report(g, smelt_mul(g, x, y), "[[1, 2], [3, 4]] * [2, 4]",
                   (double[]){2, 8, 6, 16});
    smelt_graph_free(g);
  }
  { /* Division is true division. */
    smelt_graph *g = new_graph();
    const float a[] = {1, 2, 3, 4}, b[] = {3};
    smelt_node x = smelt_const_array(g, SMELT_F32, 2, (int64_t[]){2, 2}, a);
    smelt_node y = smelt_const_array(g, SMELT_F32, 1, (int64_t[]){1}, b);
    run_and_report(g, smelt_div(g, x, y), "[[1, 2], [3, 4]] / [3]",
                   (double[]){1.0 / 3, 2.0 / 3, 1, 4.0 / 3});
    smelt_graph_free(g);
  }
  { /* A column vector applies to every column. */
    smelt_graph *g = new_graph();
    const float a[] = {1, 2, 3, 4}, b[] = {3, 2};
    smelt_node x = smelt_const_array(g, SMELT_F32, 2, (int64_t[]){2, 2}, a);
    smelt_node y = smelt_const_array(g, SMELT_F32, 2, (int64_t[]){2, 1}, b);
    run_and_report(g, smelt_mul(g, x, y), "[[1, 2], [3, 4]] * [[3], [2]]",
                   (double[]){3, 6, 6, 8});
    smelt_graph_free(g);
  }
  { /* ones(6,5) + arange(5).reshape(1,5): each row is 1 + [0..4]. */
    smelt_graph *g = new_graph();
    smelt_node ones = smelt_ones(g, SMELT_F32, 2, (int64_t[]){6, 5});
    smelt_node r = smelt_arange(g, SMELT_F32, 0, 5, 1);
    smelt_node row = smelt_reshape(g, r, 2, (int64_t[]){1, 5});
    double want[30];
    for (int i = 0; i < 30; i++) want[i] = 1 + i % 5;
    run_and_report(g, smelt_add(g, ones, row), "ones(6, 5) + arange(5).reshape(1, 5)", want);
    smelt_graph_free(g);
  }
}

/* Shapes alone: inputs have a dtype and a shape but no data until run
 * time, and the result's shape is known as soon as the node is built. */
static void shape_examples(void) {
  smelt_graph *g = new_graph();
  smelt_node a = smelt_input(g, "a", SMELT_F32, 6, (int64_t[]){1, 6, 4, 1, 7, 2});
  smelt_node b = smelt_input(g, "b", SMELT_F32, 6, (int64_t[]){5, 6, 1, 3, 1, 2});
  smelt_node c = smelt_input(g, "c", SMELT_F32, 3, (int64_t[]){3, 1, 2});
  smelt_node d = smelt_input(g, "d", SMELT_F32, 3, (int64_t[]){1, 8, 1});
  smelt_node ab = smelt_add(g, a, b);
  smelt_node cd = smelt_mul(g, c, d);
  check_graph(g, "shape examples");
  report_shape("(1,6,4,1,7,2) + (5,6,1,3,1,2)", g, ab, 6, (int64_t[]){5, 6, 4, 3, 7, 2});
  report_shape("(3,1,2) * (1,8,1)", g, cd, 3, (int64_t[]){3, 8, 2});
  smelt_graph_free(g);
}

/* An RGB image scaled per channel: [256,256,3] * [3]. The image is an input
 * bound to caller memory at run time. */
static void image_example(void) {
  printf("  (large results: every value is checked against plain C; one element is shown)\n");
  enum { H = 256, W = 256, C = 3, N = H * W * C };
  const float scale[C] = {0.5f, 1.5f, 1.0f};
  float *image = malloc(N * sizeof *image);
  if (!image) die("image", "out of memory");
  for (int i = 0; i < N; i++) image[i] = (float)(i % 251) / 250.0f; /* a test pattern */

  smelt_graph *g = new_graph();
  smelt_node img = smelt_input(g, "image", SMELT_F32, 3, (int64_t[]){H, W, C});
  smelt_node s = smelt_const_array(g, SMELT_F32, 1, (int64_t[]){C}, scale);
  smelt_node out = smelt_output(g, "scaled", smelt_mul(g, img, s));
  check_graph(g, "image * scale");

  runner *it = new_program(g);
  if (smelt_program_bind(it->pr, "image", SMELT_F32, 3, (int64_t[]){H, W, C}, image,
                         N * sizeof *image) != 0)
    die("bind image", smelt_program_error(it->pr));
  run_program(it);
  double *got = read_output(it, g, "scaled", out);
  double *want = malloc(N * sizeof *want);
  if (!want) die("image", "out of memory");
  for (int i = 0; i < N; i++) want[i] = (double)image[i] * scale[i % C];
  char note[128];
  snprintf(note, sizeof note, "pixel[1,0,:] = [%.4g, %.4g, %.4g] -> [%.4g, %.4g, %.4g]",
           image[W * C], image[W * C + 1], image[W * C + 2], got[W * C], got[W * C + 1],
           got[W * C + 2]);
  report("image[256,256,3] * [0.5, 1.5, 1]", g, out, got, want, note);
  free(want);
  free(got);
  free_program(it);
  smelt_graph_free(g);
  free(image);
}

/* Two images, each with its own per-channel scale: [2,256,256,3] *
 * [2,1,1,3]. The images come from the counter-based generator (rand with a
 * seed), so the graph needs no inputs; both tensors are outputs. */
static void images_example(void) {
  enum { B = 2, H = 256, W = 256, C = 3, N = B * H * W * C };
  const float scale[B * C] = {0.5f, 1.0f, 2.0f, 2.0f, 1.0f, 0.5f};
  smelt_graph *g = new_graph();
  smelt_node imgs =
      smelt_output(g, "images", smelt_rand(g, SMELT_F32, 4, (int64_t[]){B, H, W, C}, 7));
  smelt_node s = smelt_const_array(g, SMELT_F32, 4, (int64_t[]){B, 1, 1, C}, scale);
  smelt_node out = smelt_output(g, "scaled", smelt_mul(g, imgs, s));
  check_graph(g, "images * scales");

  runner *it = new_program(g);
  run_program(it);
  double *x = read_output(it, g, "images", imgs);
  double *got = read_output(it, g, "scaled", out);
  double *want = malloc(N * sizeof *want);
  if (!want) die("images", "out of memory");
  for (int i = 0; i < N; i++) want[i] = x[i] * scale[(i / (H * W * C)) * C + i % C];
  char note[128];
  snprintf(note, sizeof note, "image 0 x [0.5, 1, 2], image 1 x [2, 1, 0.5]");
  report("images[2,256,256,3] * scales[2,1,1,3]", g, out, got, want, note);
  free(want);
  free(got);
  free(x);
  free_program(it);
  smelt_graph_free(g);
}

/* ---------------------------------------------------------- reductions */

/* Five random 256x256 RGB images: mean over the batch, mean over the
 * channels, and the max over the channels with its index. One graph, five
 * outputs; expected values are computed here in plain C. */
static void image_reductions(void) {
  enum { B = 5, P = 256 * 256, C = 3, N = B * P * C };
  section("Reductions: over one or more axes (negative axes count from the end)");
  smelt_graph *g = new_graph();
  smelt_node x = smelt_output(g, "x", smelt_rand(g, SMELT_F32, 4, (int64_t[]){B, 256, 256, C}, 42));
  smelt_node mean0 = smelt_output(g, "mean0", smelt_mean(g, x, 1, (int[]){0}, false));
  smelt_node mean_c = smelt_output(g, "mean_c", smelt_mean(g, x, 1, (int[]){-1}, false));
  smelt_node values, indices;
  smelt_max_dim(g, x, -1, false, &values, &indices);
  smelt_output(g, "max_values", values);
  smelt_output(g, "max_indices", indices);
  check_graph(g, "image reductions");

  runner *it = new_program(g);
  run_program(it);
  double *xv = read_output(it, g, "x", x);
  double *want = malloc(N * sizeof *want); /* big enough for every result */
  if (!want) die("reductions", "out of memory");
  char note[128];

  double *got = read_output(it, g, "mean0", mean0);
  for (int i = 0; i < P * C; i++) {
    double s = 0;
    for (int b = 0; b < B; b++) s += xv[b * P * C + i];
    want[i] = s / B;
  }
  snprintf(note, sizeof note, "x[:,0,0,0] = [%.3g, %.3g, %.3g, %.3g, %.3g] -> %.4g", xv[0],
           xv[P * C], xv[2 * P * C], xv[3 * P * C], xv[4 * P * C], got[0]);
  report("x[5,256,256,3].mean(0)", g, mean0, got, want, note);
  free(got);

  got = read_output(it, g, "mean_c", mean_c);
  for (int i = 0; i < B * P; i++) want[i] = (xv[3 * i] + xv[3 * i + 1] + xv[3 * i + 2]) / 3;
  snprintf(note, sizeof note, "x[0,0,0,:] = [%.3g, %.3g, %.3g] -> %.4g", xv[0], xv[1], xv[2],
           got[0]);
  report("x.mean(-1)", g, mean_c, got, want, note);
  free(got);

  double *got_idx = read_output(it, g, "max_indices", indices);
  got = read_output(it, g, "max_values", values);
  double *want_idx = malloc(B * P * sizeof *want_idx);
  if (!want_idx) die("reductions", "out of memory");
  for (int i = 0; i < B * P; i++) {
    int k = 0; /* the first maximum, as PyTorch */
    for (int c = 1; c < C; c++)
      if (xv[3 * i + c] > xv[3 * i + k]) k = c;
    want[i] = xv[3 * i + k];
    want_idx[i] = k;
  }
  snprintf(note, sizeof note, "x[0,0,0,:] = [%.3g, %.3g, %.3g] -> %.4g", xv[0], xv[1], xv[2],
           got[0]);
  report("x.max(-1).values", g, values, got, want, note);
  snprintf(note, sizeof note, "x[0,0,0,:] = [%.3g, %.3g, %.3g] -> %.0f", xv[0], xv[1], xv[2],
           got_idx[0]);
  report("x.max(-1).indices", g, indices, got_idx, want_idx, note);

  free(want_idx);
  free(got_idx);
  free(got);
  free(want);
  free(xv);
  free_program(it);
  smelt_graph_free(g);
}

/* Whole-tensor statistics of [0.5, 1, 1, 3]: naxes == 0 reduces over all
 * axes and gives a rank-0 tensor. std uses Bessel's correction (1), as
 * PyTorch's default. */
static void small_reductions(void) {
  smelt_graph *g = new_graph();
  const float a[] = {0.5f, 1, 1, 3};
  smelt_node x = smelt_const_array(g, SMELT_F32, 1, (int64_t[]){4}, a);
  smelt_node mean = smelt_output(g, "mean", smelt_mean(g, x, 0, NULL, false));
  smelt_node std = smelt_output(g, "std", smelt_std(g, x, 0, NULL, 1, false));
  smelt_node max = smelt_output(g, "max", smelt_max(g, x, 0, NULL, false));
  smelt_node min = smelt_output(g, "min", smelt_min(g, x, 0, NULL, false));
  check_graph(g, "statistics");

  runner *it = new_program(g);
  run_program(it);
  const struct {
    const char *name, *label;
    smelt_node node;
    double want;
  } stats[] = {
      {"mean", "[0.5, 1, 1, 3].mean()", mean, 1.375},
      {"std", "[0.5, 1, 1, 3].std()", std, 1.1086778913041726},
      {"max", "[0.5, 1, 1, 3].max()", max, 3},
      {"min", "[0.5, 1, 1, 3].min()", min, 0.5},
  };
  for (size_t i = 0; i < sizeof stats / sizeof stats[0]; i++) {
    double *got = read_output(it, g, stats[i].name, stats[i].node);
    report(stats[i].label, g, stats[i].node, got, &stats[i].want, NULL);
    free(got);
  }
  free_program(it);
  smelt_graph_free(g);

  { /* linspace: n evenly spaced values, both ends included. */
    smelt_graph *lg = new_graph();
    run_and_report(lg, smelt_linspace(lg, SMELT_F32, 0, 1, 5), "linspace(0, 1, 5)",
                   (double[]){0, 0.25, 0.5, 0.75, 1});
    smelt_graph_free(lg);
  }
  { /* Column means of a 4x5 matrix. */
    smelt_graph *mg = new_graph();
    smelt_node r = smelt_arange(mg, SMELT_F32, 0, 20, 1);
    smelt_node m = smelt_reshape(mg, r, 2, (int64_t[]){4, 5});
    run_and_report(mg, smelt_mean(mg, m, 1, (int[]){0}, false), "arange(20).reshape(4, 5).mean(0)",
                   (double[]){7.5, 8.5, 9.5, 10.5, 11.5});
    smelt_graph_free(mg);
  }
}

/* ------------------------------------------------------ sticky errors */

/* [3,4] + [5] cannot broadcast (4 vs 5 in the last dim). The failing call
 * returns an invalid handle and records one message; later calls that use
 * it return invalid handles too, without crashing, so one check after
 * building is enough. */
static void error_example(void) {
  section("Errors are sticky: check smelt_graph_error() once, after building");
  smelt_graph *g = new_graph();
  smelt_node a = smelt_input(g, "a", SMELT_F32, 2, (int64_t[]){3, 4});
  smelt_node b = smelt_input(g, "b", SMELT_F32, 1, (int64_t[]){5});
  smelt_node c = smelt_add(g, a, b);               /* fails: records the error */
  smelt_node d = smelt_exp(g, smelt_mul(g, c, a)); /* invalid in, invalid out */
  const char *err = smelt_graph_error(g);
  printf("  %-*s %s\n", LABEL_WIDTH, "c = a[3,4] + b[5]",
         smelt_node_valid(c) ? "a valid handle (wrong!)" : "an invalid handle; error recorded");
  printf("  %-*s %s\n", LABEL_WIDTH, "exp(c * a)",
         smelt_node_valid(d) ? "a valid handle (wrong!)" : "an invalid handle, no crash");
  printf("  smelt_graph_error(g):\n    %s\n", err ? err : "(NULL: no error recorded!)");
  n_checked++;
  if (!err || !strstr(err, "[3,4]") || !strstr(err, "[5]") || smelt_node_valid(c) ||
      smelt_node_valid(d)) {
    printf("  %*s MISMATCH: expected an error naming both shapes and invalid handles\n",
           LABEL_WIDTH, "");
    n_failed++;
  }
  smelt_graph_free(g);
}

/* ------------------------------------------------------ canonical text */

/* Broadcasting is explicit in the graph: the builder inserted a reshape
 * ([3] -> [1,1,3]) and an expand (stride 0, no copy) before the mul. */
static void text_example(void) {
  section("Canonical text of image * [0.5, 1.5, 1] (smelt_graph_print)");
  smelt_graph *g = new_graph();
  const float scale[] = {0.5f, 1.5f, 1.0f};
  smelt_node img = smelt_input(g, "image", SMELT_F32, 3, (int64_t[]){256, 256, 3});
  smelt_node s = smelt_const_array(g, SMELT_F32, 1, (int64_t[]){3}, scale);
  smelt_output(g, "scaled", smelt_mul(g, img, s));
  check_graph(g, "text example");
  char *txt = smelt_graph_print(g);
  if (!txt) die("smelt_graph_print", "out of memory");
  /* Indent every line by four spaces. */
  for (const char *p = txt; *p;) {
    const char *nl = strchr(p, '\n');
    int len = nl ? (int)(nl - p) : (int)strlen(p);
    printf("    %.*s\n", len, p);
    p += len + (nl != NULL);
  }
  smelt_free(txt);
  smelt_graph_free(g);
}

int main(void) {
  printf("smelt %s: broadcasting and reductions, compiled and run as programs\n",
         smelt_version());
  small_examples();
  shape_examples();
  image_example();
  images_example();
  image_reductions();
  small_reductions();
  error_example();
  text_example();

  if (n_failed) {
    printf("\n%d of %d results differ from the expected values\n", n_failed, n_checked);
    return 1;
  }
  printf("\nall %d results as expected\n", n_checked);
  return 0;
}
