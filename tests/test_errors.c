/* The catalogue of bad inputs (docs/errors.md), one table row per entry:
 * its id, a function that provokes it and the exact message (or, for the
 * entries that are not errors, the exact outcome). The doc and this table
 * cannot drift: doc_agrees reads docs/errors.md ($SMELT_ERRORS_DOC) and
 * checks that every id there has a row here with the same message, and
 * every row an entry there. Files are written to a temporary directory
 * whose path reads as DIR in the messages. Hostile sizes (huge dims,
 * negative dims, header lengths past the end or near SIZE_MAX) run once
 * more in a child whose address space is limited (hostile_sizes_bounded),
 * so an attempt to allocate what the file only declares fails the test.
 *
 * SMELT_ERRORS_PRINT=1 prints every row's message as it is now (to write
 * a new entry's message into the doc). */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../codegen/nvrtc.h"
#include "../runtime/disk_cache.h"
#include "internal.h"
#include "npy.h"
#include "testutil.h"

/* Rows with sizes no machine has (E-param-5, E-compile-1) ask malloc for
 * them, and the message reports the failure: AddressSanitizer must return
 * NULL then instead of stopping the process (as in test_interp.c). */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

/* ---------------------------------------------------------- helpers */

static char got[8192];  /* the message of the row being run */
static char tmpdir[512]; /* where rows write their files */
static bool forked = true;

/* Keeps a message, with the temporary directory shown as DIR. */
static void keep(const char *s) {
  if (!s) s = "(no error)";
  size_t tl = strlen(tmpdir), n = 0;
  while (*s && n + 4 < sizeof got) {
    if (tl && strncmp(s, tmpdir, tl) == 0) {
      memcpy(got + n, "DIR", 3);
      n += 3;
      s += tl;
    } else {
      got[n++] = *s++;
    }
  }
  got[n] = 0;
}

static void keepf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void keepf(const char *fmt, ...) {
  char b[sizeof got];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b, sizeof b, fmt, ap);
  va_end(ap);
  keep(b);
}

/* DIR/name into buf. */
static const char *path_of(const char *name) {
  static char p[1024];
  snprintf(p, sizeof p, "%s/%s", tmpdir, name);
  return p;
}

static void write_bytes(const char *name, const void *data, size_t n) {
  FILE *f = fopen(path_of(name), "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(data, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
}

static smelt_graph *G(void) {
  smelt_graph *g = smelt_graph_new();
  ck_assert_ptr_nonnull(g);
  return g;
}

static smelt_node in(smelt_graph *g, const char *name, smelt_dtype dt, int rank,
                     const int64_t *dims) {
  return smelt_input(g, name, dt, rank, dims);
}
#define D(...) ((const int64_t[]){__VA_ARGS__})
#define AX(...) ((const int[]){__VA_ARGS__})

/* Keeps the graph's error and frees the graph. */
static void graph_msg(smelt_graph *g) {
  keep(smelt_graph_error(g));
  smelt_graph_free(g);
}

static smelt_compile_options interp_opts(void) {
  smelt_compile_options o = smelt_compile_defaults();
  o.target = SMELT_TARGET_INTERP;
  o.cache_dir = NULL;
  o.dump = NULL;
  return o;
}

/* ---------------------------------------------- graph building: shapes */

static void e_shape_1(void) {
  smelt_graph *g = G();
  smelt_add(g, in(g, "a", SMELT_F32, 2, D(3, 4)), in(g, "b", SMELT_F32, 1, D(5)));
  graph_msg(g);
}

static void e_shape_2(void) {
  smelt_graph *g = G();
  smelt_node c = in(g, "c", SMELT_BOOL, 1, D(3));
  smelt_where(g, c, in(g, "a", SMELT_F32, 1, D(3)), in(g, "b", SMELT_F32, 1, D(2)));
  graph_msg(g);
}

static void e_shape_3(void) {
  smelt_graph *g = G();
  in(g, "x", SMELT_F32, 2, D(2, -3));
  graph_msg(g);
}

static void e_shape_4(void) {
  smelt_graph *g = G();
  in(g, "x", SMELT_F32, 9, D(1, 1, 1, 1, 1, 1, 1, 1, 1));
  graph_msg(g);
}

static void e_shape_5(void) {
  smelt_graph *g = G();
  in(g, "x", SMELT_F32, 2, D((int64_t)1 << 40, (int64_t)1 << 40));
  graph_msg(g);
}

static void e_shape_6(void) {
  smelt_graph *g = G();
  smelt_node xs[2] = {in(g, "a", SMELT_F32, 2, D(2, 3)), in(g, "b", SMELT_F32, 2, D(4, 4))};
  smelt_concat(g, 2, xs, 0);
  graph_msg(g);
}

static void e_shape_7(void) {
  smelt_graph *g = G();
  smelt_node xs[2] = {in(g, "a", SMELT_F32, 1, D(3)), in(g, "b", SMELT_F32, 1, D(4))};
  smelt_stack(g, 2, xs, 0);
  graph_msg(g);
}

static void e_shape_8(void) {
  smelt_graph *g = G();
  smelt_node x = in(g, "x", SMELT_F32, 1, D(3));
  smelt_add(g, x, in(g, "y", SMELT_F32, 1, D(5)));
  smelt_mul(g, x, in(g, "z", SMELT_F32, 1, D(7))); /* not reported: the first error stays */
  graph_msg(g);
}

static void e_shape_9(void) {
  smelt_graph *a = G(), *b = G();
  smelt_node x = in(a, "x", SMELT_F32, 1, D(3));
  smelt_neg(b, x);
  keep(smelt_graph_error(b));
  smelt_graph_free(a);
  smelt_graph_free(b);
}

static void e_shape_10(void) {
  smelt_graph *g = G();
  smelt_node x = in(g, "x", SMELT_F32, 1, D(3));
  smelt_set_name(g, smelt_neg(g, x), "x");
  graph_msg(g);
}

static void e_shape_11(void) {
  smelt_graph *g = G();
  in(g, "1x", SMELT_F32, 1, D(3));
  graph_msg(g);
}

/* Composites check sizes under their own names (zeros is full). */
static void e_shape_12(void) {
  smelt_graph *g = G();
  smelt_zeros(g, SMELT_F32, 2, D((int64_t)1 << 40, (int64_t)1 << 20));
  graph_msg(g);
}

/* ------------------------------------------------ graph building: axes */

static void e_axis_1(void) {
  smelt_graph *g = G();
  smelt_sum(g, in(g, "x", SMELT_F32, 2, D(2, 3)), 1, AX(2), false);
  graph_msg(g);
}

static void e_axis_2(void) {
  smelt_graph *g = G();
  smelt_sum(g, in(g, "x", SMELT_F32, 2, D(2, 3)), 2, AX(0, -2), false);
  graph_msg(g);
}

static void e_axis_3(void) {
  smelt_graph *g = G();
  smelt_softmax(g, in(g, "x", SMELT_F32, 2, D(2, 3)), -3);
  graph_msg(g);
}

static void e_axis_4(void) {
  smelt_graph *g = G();
  smelt_permute(g, in(g, "x", SMELT_F32, 3, D(2, 3, 4)), AX(0, 1, 1));
  graph_msg(g);
}

static void e_axis_5(void) {
  smelt_graph *g = G();
  smelt_squeeze(g, in(g, "x", SMELT_F32, 2, D(2, 3)), 1, AX(1));
  graph_msg(g);
}

static void e_axis_6(void) {
  smelt_graph *g = G();
  smelt_max(g, in(g, "x", SMELT_F32, 2, D(0, 3)), 1, AX(0), false);
  graph_msg(g);
}

static void e_axis_7(void) {
  smelt_graph *g = G();
  smelt_argmax(g, in(g, "x", SMELT_F32, 2, D(2, 3)), 2, false);
  graph_msg(g);
}

/* ---------------------------------------------- graph building: dtypes */

static void e_dtype_1(void) {
  smelt_graph *g = G();
  smelt_node c = in(g, "c", SMELT_F32, 1, D(3));
  smelt_where(g, c, in(g, "a", SMELT_F32, 1, D(3)), in(g, "b", SMELT_F32, 1, D(3)));
  graph_msg(g);
}

static void e_dtype_2(void) {
  smelt_graph *g = G();
  smelt_neg(g, in(g, "m", SMELT_BOOL, 1, D(3)));
  graph_msg(g);
}

static void e_dtype_3(void) {
  smelt_graph *g = G();
  smelt_mean(g, in(g, "n", SMELT_I32, 1, D(3)), 0, NULL, false);
  graph_msg(g);
}

static void e_dtype_4(void) {
  smelt_graph *g = G();
  smelt_add(g, in(g, "n", SMELT_I32, 1, D(3)), smelt_scalar_int(g, (int64_t)1 << 40));
  graph_msg(g);
}

static void e_dtype_5(void) {
  smelt_graph *g = G();
  smelt_node w = smelt_param(g, "w", SMELT_I32, 1, D(3), smelt_init_zeros());
  smelt_assign(g, w, in(g, "x", SMELT_F32, 1, D(3)));
  graph_msg(g);
}

static void e_dtype_6(void) {
  smelt_graph *g = G();
  smelt_rand(g, SMELT_I32, 1, D(3), 1);
  graph_msg(g);
}

static void e_dtype_7(void) {
  smelt_graph *g = G();
  smelt_gather(g, in(g, "x", SMELT_F32, 1, D(3)), 0, in(g, "i", SMELT_F32, 1, D(3)));
  graph_msg(g);
}

static void e_dtype_8(void) {
  smelt_graph *g = G();
  smelt_cross_entropy(g, in(g, "logits", SMELT_F32, 2, D(4, 3)),
                      in(g, "labels", SMELT_F32, 1, D(4)));
  graph_msg(g);
}

static void e_dtype_9(void) {
  smelt_graph *g = G();
  smelt_cast(g, in(g, "x", SMELT_F32, 1, D(3)), (smelt_dtype)7);
  graph_msg(g);
}

/* --------------------------------- graph building: reshape, views, slices */

static void e_view_1(void) {
  smelt_graph *g = G();
  smelt_reshape(g, in(g, "x", SMELT_F32, 2, D(2, 3)), 1, D(4));
  graph_msg(g);
}

static void e_view_2(void) {
  smelt_graph *g = G();
  smelt_reshape(g, in(g, "x", SMELT_F32, 2, D(2, 3)), 2, D(-1, -1));
  graph_msg(g);
}

static void e_view_3(void) {
  smelt_graph *g = G();
  smelt_expand(g, in(g, "x", SMELT_F32, 2, D(2, 3)), 2, D(4, 3));
  graph_msg(g);
}

static void e_view_4(void) {
  smelt_graph *g = G();
  smelt_slice_axis(g, in(g, "x", SMELT_F32, 1, D(5)), 0, 0, 5, 0);
  graph_msg(g);
}

static void e_view_5(void) {
  smelt_graph *g = G();
  smelt_pad(g, in(g, "x", SMELT_F32, 1, D(5)), D(-1), D(0), 0);
  graph_msg(g);
}

static void e_view_6(void) {
  smelt_graph *g = G();
  smelt_unfold(g, in(g, "x", SMELT_F32, 1, D(5)), 0, 6, 1);
  graph_msg(g);
}

static void e_view_7(void) {
  smelt_graph *g = G();
  smelt_broadcast_to(g, in(g, "x", SMELT_F32, 1, D(3)), 2, D(2, 4));
  graph_msg(g);
}

/* -------------------------------------- graph building: matmul and conv */

static void e_matmul_1(void) {
  smelt_graph *g = G();
  smelt_matmul(g, in(g, "a", SMELT_F32, 2, D(2, 3)), in(g, "b", SMELT_F32, 2, D(4, 5)));
  graph_msg(g);
}

static void e_matmul_2(void) {
  smelt_graph *g = G();
  smelt_matmul(g, in(g, "a", SMELT_F32, 0, NULL), in(g, "b", SMELT_F32, 1, D(3)));
  graph_msg(g);
}

static void e_matmul_3(void) {
  smelt_graph *g = G();
  smelt_matmul(g, in(g, "a", SMELT_F32, 3, D(2, 2, 3)), in(g, "b", SMELT_F32, 3, D(3, 3, 4)));
  graph_msg(g);
}

static void e_conv_1(void) {
  smelt_graph *g = G();
  smelt_conv2d(g, in(g, "x", SMELT_F32, 4, D(1, 3, 8, 8)), in(g, "w", SMELT_F32, 4, D(4, 2, 3, 3)),
               SMELT_INVALID, NULL, NULL, NULL, 1);
  graph_msg(g);
}

static void e_conv_2(void) {
  smelt_graph *g = G();
  smelt_conv2d(g, in(g, "x", SMELT_F32, 4, D(1, 4, 8, 8)), in(g, "w", SMELT_F32, 4, D(6, 2, 3, 3)),
               SMELT_INVALID, NULL, NULL, NULL, 3);
  graph_msg(g);
}

static void e_conv_3(void) {
  smelt_graph *g = G();
  smelt_conv2d(g, in(g, "x", SMELT_F32, 4, D(1, 3, 2, 2)), in(g, "w", SMELT_F32, 4, D(4, 3, 3, 3)),
               SMELT_INVALID, NULL, NULL, NULL, 1);
  graph_msg(g);
}

static void e_conv_4(void) {
  smelt_graph *g = G();
  smelt_max_pool2d(g, in(g, "x", SMELT_F32, 4, D(1, 3, 8, 8)), D(2, 2), NULL, D(2, 2), NULL,
                   false);
  graph_msg(g);
}

/* ------------------------------------------------------------ autodiff */

static void e_grad_1(void) {
  smelt_graph *g = G();
  smelt_node x = in(g, "x", SMELT_F32, 1, D(3)), d;
  smelt_grad(g, smelt_mul(g, x, x), 1, &x, &d);
  graph_msg(g);
}

static void e_grad_2(void) {
  smelt_graph *g = G();
  smelt_node x = in(g, "x", SMELT_F32, 1, D(3)), d;
  smelt_grad(g, smelt_argmax(g, x, 0, false), 1, &x, &d);
  graph_msg(g);
}

static void e_grad_3(void) {
  smelt_graph *g = G();
  smelt_node n = in(g, "n", SMELT_I32, 1, D(3)), d;
  smelt_grad(g, smelt_sum(g, smelt_cast(g, n, SMELT_F32), 0, NULL, false), 1, &n, &d);
  graph_msg(g);
}

/* Not an error: a wrt the loss does not depend on gets zeros (PyTorch's
 * autograd.grad(..., allow_unused=True, materialize_grads=True)). */
static void e_grad_4(void) {
  smelt_graph *g = G();
  smelt_node x = in(g, "x", SMELT_F32, 1, D(3)), z = in(g, "z", SMELT_F32, 2, D(2, 2)), d[2];
  int rc = smelt_grad(g, smelt_sum(g, x, 0, NULL, false), 2, (smelt_node[]){x, z}, d);
  double *v = TU_EVAL(g, d[1]);
  int rank;
  const int64_t *dims = smelt_node_shape(g, d[1], &rank);
  keepf("rc %d, d_z: %s[%lld,%lld] = [%g, %g, %g, %g], graph error: %s", rc,
        smelt_dtype_name(smelt_node_dtype(g, d[1])), (long long)dims[0], (long long)dims[1], v[0],
        v[1], v[2], v[3], smelt_graph_error(g) ? smelt_graph_error(g) : "none");
  free(v);
  smelt_graph_free(g);
}

static void e_grad_5(void) {
  smelt_graph *g = G();
  smelt_node x = in(g, "x", SMELT_F32, 1, D(3)), z = in(g, "z", SMELT_F32, 1, D(3)), d;
  smelt_vjp(g, smelt_sum(g, x, 0, NULL, false), SMELT_INVALID, 1, &z, &d, SMELT_GRAD_STRICT);
  graph_msg(g);
}

/* Not an error: argmax, comparisons, sign, casts to integers and
 * stop_gradient pass no gradient, so the loss's gradient through them is
 * zero (PyTorch: those outputs do not require grad). */
static void e_grad_6(void) {
  smelt_graph *g = G();
  smelt_node x = in(g, "x", SMELT_F32, 1, D(3)), d;
  smelt_node idx = smelt_cast(g, smelt_argmax(g, x, 0, false), SMELT_F32);
  smelt_node y = smelt_add(g, idx, smelt_sum(g, smelt_sign(g, x), 0, NULL, false));
  int rc = smelt_grad(g, y, 1, &x, &d);
  double *v = TU_EVAL_WITH(g, d, 1, ((const tu_bind[]){{"x", (const float[]){1, 3, 2}}}));
  keepf("rc %d, d_x = [%g, %g, %g]", rc, v[0], v[1], v[2]);
  free(v);
  smelt_graph_free(g);
}

static void e_grad_7(void) {
  smelt_graph *g = G();
  smelt_node x = in(g, "x", SMELT_F32, 1, D(3)), d;
  smelt_node y = smelt_mul(g, x, x); /* in this order: the message numbers y */
  smelt_vjp(g, y, in(g, "s", SMELT_F32, 1, D(2)), 1, &x, &d, 0);
  graph_msg(g);
}

/* ------------------------------------------------------------ programs */

/* A graph y = x * w (x: input f32[2,3], w: param f32[3] = 1) with outputs
 * "y" and "s" = sum(y), and a program over it on the interpreter. */
typedef struct fixture {
  smelt_graph *g;
  smelt_params *p;
  smelt_program *pr;
  smelt_node x, w, y, s;
} fixture;

static fixture fix(void) {
  fixture f = {0};
  f.g = G();
  f.x = in(f.g, "x", SMELT_F32, 2, D(2, 3));
  f.w = smelt_param(f.g, "w", SMELT_F32, 1, D(3), smelt_init_ones());
  f.y = smelt_output(f.g, "y", smelt_mul(f.g, f.x, f.w));
  f.s = smelt_output(f.g, "s", smelt_sum(f.g, f.y, 0, NULL, false));
  ck_assert_ptr_null(smelt_graph_error(f.g));
  f.p = smelt_params_new(f.g);
  ck_assert_ptr_nonnull(f.p);
  return f;
}

static void fix_program(fixture *f) {
  smelt_compile_options o = interp_opts();
  f->pr = smelt_program_compile(f->g, f->p, 2, (const char *[]){"y", "s"}, 0, NULL, &o);
  ck_assert_ptr_nonnull(f->pr);
  ck_assert_ptr_null(smelt_program_error(f->pr));
}

static void unfix(fixture *f) {
  smelt_program_free(f->pr);
  smelt_params_free(f->p);
  smelt_graph_free(f->g);
}

static const float xdata[6] = {1, 2, 3, 4, 5, 6};

static void e_prog_1(void) {
  fixture f = fix();
  smelt_compile_options o = interp_opts();
  f.pr = smelt_program_compile(f.g, f.p, 1, (const char *[]){"loss"}, 0, NULL, &o);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

static void e_prog_2(void) {
  fixture f = fix();
  smelt_compile_options o = interp_opts();
  f.pr = smelt_program_compile(f.g, f.p, 2, (const char *[]){"y", "y"}, 0, NULL, &o);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

static void e_prog_3(void) {
  fixture f = fix();
  smelt_compile_options o = interp_opts();
  f.pr = smelt_program_compile(f.g, f.p, 1, (const char *[]){"s"}, 1, &f.y, &o);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

static void e_prog_4(void) {
  fixture f = fix();
  smelt_node u[2] = {smelt_assign(f.g, f.w, smelt_scalar(f.g, 0)),
                     smelt_assign(f.g, f.w, smelt_scalar(f.g, 1))};
  smelt_compile_options o = interp_opts();
  f.pr = smelt_program_compile(f.g, f.p, 1, (const char *[]){"s"}, 2, u, &o);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

static void e_prog_5(void) {
  fixture f = fix();
  smelt_add(f.g, f.x, in(f.g, "z", SMELT_F32, 1, D(4)));
  smelt_compile_options o = interp_opts();
  f.pr = smelt_program_compile(f.g, f.p, 1, (const char *[]){"s"}, 0, NULL, &o);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

static void e_prog_6(void) {
  fixture f = fix();
  fix_program(&f);
  smelt_program_run(f.pr);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

/* Binds input `name` with the given dtype, shape and byte count. */
static void bind_error(const char *name, smelt_dtype dt, int rank, const int64_t *dims,
                       size_t nbytes) {
  fixture f = fix();
  fix_program(&f);
  smelt_program_bind(f.pr, name, dt, rank, dims, xdata, nbytes);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

static void e_prog_7(void) { bind_error("X", SMELT_F32, 2, D(2, 3), sizeof xdata); }
static void e_prog_8(void) { bind_error("x", SMELT_F64, 2, D(2, 3), sizeof xdata); }
static void e_prog_9(void) { bind_error("x", SMELT_F32, 1, D(6), sizeof xdata); }
static void e_prog_10(void) { bind_error("x", SMELT_F32, 2, D(3, 2), sizeof xdata); }
static void e_prog_11(void) { bind_error("x", SMELT_F32, 2, D(2, 3), 16); }

static void e_prog_12(void) {
  fixture f = fix();
  fix_program(&f);
  float out[6];
  smelt_program_read(f.pr, "y", SMELT_F32, out, sizeof out);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

static void bind_run(fixture *f) {
  fix_program(f);
  ck_assert_int_eq(smelt_program_bind(f->pr, "x", SMELT_F32, 2, D(2, 3), xdata, sizeof xdata), 0);
  ck_assert_int_eq(smelt_program_run(f->pr), 0);
}

/* Reads output (or input) `name` as dt into nbytes after a good run. */
static void read_after_run(const char *name, smelt_dtype dt, size_t nbytes) {
  fixture f = fix();
  bind_run(&f);
  double out[8]; /* room for every read below */
  ck_assert_uint_le(nbytes, sizeof out);
  smelt_program_read(f.pr, name, dt, out, nbytes);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

static void e_prog_13(void) { read_after_run("x", SMELT_F32, 6 * sizeof(float)); }
static void e_prog_14(void) { read_after_run("y", SMELT_F64, 6 * sizeof(double)); }
static void e_prog_15(void) { read_after_run("y", SMELT_F32, 4 * sizeof(float)); }

static void e_prog_16(void) {
  fixture f = fix();
  smelt_graph_add_program(f.g, "predict", 1, (const char *[]){"y"}, 0, NULL, true);
  smelt_compile_options o = interp_opts();
  f.pr = smelt_program_compile_named(f.g, f.p, "predcit", &o);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

static void e_prog_17(void) {
  fixture f = fix();
  setenv("SMELT_TARGET", "gpu", 1);
  smelt_compile_options o = interp_opts();
  o.target = SMELT_TARGET_AUTO;
  f.pr = smelt_program_compile(f.g, f.p, 1, (const char *[]){"s"}, 0, NULL, &o);
  keep(smelt_program_error(f.pr));
  setenv("SMELT_TARGET", "interp", 1);
  unfix(&f);
}

static void e_prog_18(void) {
  fixture f = fix();
  smelt_node d;
  smelt_grad(f.g, f.s, 1, &f.w, &d);
  smelt_output(f.g, "d_w", d);
  smelt_compile_options o = interp_opts();
  f.pr = smelt_program_compile_eval(f.g, f.p, 1, (const char *[]){"d_w"}, &o);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

static void e_prog_19(void) {
  fixture f = fix();
  fix_program(&f);
  smelt_program_bind_device(f.pr, "x", SMELT_F32, 2, D(2, 3), 0x1000, sizeof xdata);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

static void e_prog_20(void) {
  smelt_graph *g = G();
  smelt_node x = in(g, "x", SMELT_F32, 1, D(3));
  smelt_node i = in(g, "i", SMELT_I64, 1, D(2));
  smelt_output(g, "y", smelt_gather(g, x, 0, i));
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = interp_opts();
  smelt_program *pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  const float xd[3] = {1, 2, 3};
  const int64_t id[2] = {0, 3};
  smelt_program_bind(pr, "x", SMELT_F32, 1, D(3), xd, sizeof xd);
  smelt_program_bind(pr, "i", SMELT_I64, 1, D(2), id, sizeof id);
  smelt_program_run(pr);
  keep(smelt_program_error(pr));
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}

/* A program compiled before the graph got an error refuses to run. */
static void e_prog_22(void) {
  fixture f = fix();
  fix_program(&f);
  smelt_program_bind(f.pr, "x", SMELT_F32, 2, D(2, 3), xdata, sizeof xdata);
  smelt_matmul(f.g, f.x, f.x);
  smelt_program_run(f.pr);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

/* A count with no list. */
static void e_prog_23(void) {
  fixture f = fix();
  smelt_compile_options o = interp_opts();
  f.pr = smelt_program_compile(f.g, f.p, 1, NULL, 0, NULL, &o);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

/* The interpreter reports as programs do, per call. */
static void e_prog_21(void) {
  smelt_graph *g = G();
  smelt_neg(g, in(g, "x", SMELT_BOOL, 1, D(3)));
  smelt_interp *it = smelt_interp_new(g);
  smelt_interp_run(it);
  keep(smelt_interp_error(it));
  smelt_interp_free(it);
  smelt_graph_free(g);
}

/* -------------------------------------------------------------- params */

static void e_param_1(void) {
  fixture f = fix();
  float w[3];
  smelt_params_read(f.p, "W", SMELT_F32, w, sizeof w);
  keep(smelt_params_error(f.p));
  unfix(&f);
}

static void e_param_2(void) {
  fixture f = fix();
  double w[3];
  smelt_params_read(f.p, "w", SMELT_F64, w, sizeof w);
  keep(smelt_params_error(f.p));
  unfix(&f);
}

static void e_param_3(void) {
  fixture f = fix();
  float w[4] = {0};
  smelt_params_write(f.p, "w", SMELT_F32, w, sizeof w);
  keep(smelt_params_error(f.p));
  unfix(&f);
}

static void e_param_4(void) {
  fixture f = fix();
  smelt_params_write(f.p, "w", SMELT_F32, NULL, 12);
  keep(smelt_params_error(f.p));
  unfix(&f);
}

/* A param too large for any machine: its storage is refused, not malloc'ed. */
static void e_param_5(void) {
  smelt_graph *g = G();
  smelt_param(g, "huge", SMELT_F32, 2, D((int64_t)1 << 30, (int64_t)1 << 28), smelt_init_zeros());
  smelt_params *p = smelt_params_new(g);
  keep(smelt_params_error(p));
  smelt_params_free(p);
  smelt_graph_free(g);
}

/* Checkpoints: a file saved from a graph with w: f32[3] and b: f32[2]
 * (st_save) loaded into the fixture (w: f32[3]). */
static void st_save(const char *name, smelt_dtype wdt, int wrank, const int64_t *wdims,
                    bool with_b) {
  smelt_graph *g = G();
  smelt_param(g, "w", wdt, wrank, wdims, smelt_init_zeros());
  if (with_b) smelt_param(g, "b", SMELT_F32, 1, D(2), smelt_init_zeros());
  smelt_params *p = smelt_params_new(g);
  ck_assert_int_eq(smelt_params_save(p, path_of(name)), 0);
  smelt_params_free(p);
  smelt_graph_free(g);
}

static void load_msg(const char *name) {
  fixture f = fix();
  smelt_params_load(f.p, path_of(name));
  keep(smelt_params_error(f.p));
  unfix(&f);
}

static void e_param_6(void) {
  smelt_graph *g = G();
  smelt_param(g, "v", SMELT_F32, 1, D(3), smelt_init_zeros());
  smelt_params *p = smelt_params_new(g);
  ck_assert_int_eq(smelt_params_save(p, path_of("v.safetensors")), 0);
  smelt_params_free(p);
  smelt_graph_free(g);
  load_msg("v.safetensors");
}

static void e_param_7(void) {
  st_save("wb.safetensors", SMELT_F32, 1, D(3), true);
  load_msg("wb.safetensors");
}

static void e_param_8(void) {
  st_save("w4.safetensors", SMELT_F32, 2, D(1, 4), false);
  load_msg("w4.safetensors");
}

static void e_param_9(void) {
  st_save("w64.safetensors", SMELT_F64, 1, D(3), false);
  load_msg("w64.safetensors");
}

static void e_param_10(void) { load_msg("missing.safetensors"); }

static void e_param_11(void) {
  fixture f = fix();
  smelt_params_save(f.p, path_of("no/such/dir/ckpt.safetensors"));
  keep(smelt_params_error(f.p));
  unfix(&f);
}

/* ---------------------------------------------------------- text format */

static void parse_msg(const char *text) {
  char err[1024] = "";
  smelt_graph *g = smelt_graph_parse(text, strlen(text), "t.smelt", err, sizeof err);
  if (g) {
    keepf("parsed (graph error: %s)", smelt_graph_error(g) ? smelt_graph_error(g) : "none");
    smelt_graph_free(g);
  } else {
    keep(err);
  }
}

static void e_text_1(void) { parse_msg("input %x : f32[3\n"); }
static void e_text_2(void) { parse_msg("input %x : f32[3]\n%y = frob %x : f32[3]\n"); }
static void e_text_3(void) { parse_msg("input %x : f32[3]\n%y = neg %x foo=1 : f32[3]\n"); }
static void e_text_4(void) {
  parse_msg("input %x : f32[2,3]\n%y = reduce_sum %x axes=[2] : f32[2]\n");
}
static void e_text_5(void) { parse_msg("%y = neg %x : f32[3]\n"); }
static void e_text_6(void) {
  parse_msg("input %a : f32[3,4]\ninput %b : f32[5]\n%c = add %a, %b\n");
}
static void e_text_7(void) { parse_msg("input %x : f32[3]\n%y = neg %x : f32[4]\n"); }
static void e_text_8(void) { parse_msg("input %x : f16[3]\n"); }
static void e_text_9(void) {
  const char text[] = "input %x : f32[3]\n%y = neg\0 %x\n";
  char err[1024] = "";
  smelt_graph *g = smelt_graph_parse(text, sizeof text - 1, "t.smelt", err, sizeof err);
  ck_assert_ptr_null(g);
  keep(err);
}
static void e_text_10(void) { parse_msg("input %x : f32[1099511627776,1099511627776]\n"); }
static void e_text_11(void) { parse_msg("input %x : f32[-3]\n"); }
static void e_text_12(void) { parse_msg("input %x : f32[99999999999999999999]\n"); }
static void e_text_13(void) { parse_msg(""); }
/* Shapes are metadata: a huge param parses; its storage is refused. */
static void e_text_14(void) {
  const char *text = "param %w : f32[1073741824,268435456] init=zeros\n";
  char err[1024] = "";
  smelt_graph *g = smelt_graph_parse(text, strlen(text), "t.smelt", err, sizeof err);
  ck_assert_msg(g != NULL, "%s", err);
  smelt_params *p = smelt_params_new(g);
  keep(smelt_params_error(p));
  smelt_params_free(p);
  smelt_graph_free(g);
}

/* ---------------------------------------------------------------- .npy */

/* A .npy image: preamble (version, header length as written) + header +
 * data bytes. */
static void npy_file(const char *name, int major, uint32_t hlen_field, const char *header,
                     size_t ndata) {
  unsigned char b[4096] = {0x93, 'N', 'U', 'M', 'P', 'Y', (unsigned char)major, 0};
  size_t n = 8;
  if (major == 1) {
    b[n++] = hlen_field & 0xff;
    b[n++] = (hlen_field >> 8) & 0xff;
  } else {
    for (int i = 0; i < 4; i++) b[n++] = (hlen_field >> (8 * i)) & 0xff;
  }
  size_t hl = strlen(header);
  memcpy(b + n, header, hl);
  n += hl;
  memset(b + n, 0, ndata);
  write_bytes(name, b, n + ndata);
}

/* A well-formed version 1.0 header for dict (padded, newline-terminated). */
static void npy_v1(const char *name, const char *dict, size_t ndata) {
  char h[1024];
  size_t dl = strlen(dict), total = 10 + dl + 1;
  size_t pad = (64 - total % 64) % 64;
  snprintf(h, sizeof h, "%s%*s\n", dict, (int)pad, "");
  npy_file(name, 1, (uint32_t)strlen(h), h, ndata);
}

static void npy_msg(const char *name) {
  char err[1024] = "";
  sm_npy a = {0};
  if (sm_npy_read_file(path_of(name), &a, err, sizeof err) == 0) {
    keepf("read: %s, rank %d, %zu bytes", smelt_dtype_name(a.dtype), a.rank, a.nbytes);
    sm_npy_free(&a);
  } else {
    keep(err);
  }
}

static void e_npy_1(void) {
  write_bytes("magic.npy", "PK\x03\x04 not numpy at all", 22);
  npy_msg("magic.npy");
}
static void e_npy_2(void) {
  npy_file("v4.npy", 4, 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 12);
  npy_msg("v4.npy");
}
static void e_npy_3(void) {
  npy_v1("f16.npy", "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }", 6);
  npy_msg("f16.npy");
}
static void e_npy_4(void) {
  npy_file("hlen.npy", 1, 60000, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 0);
  npy_msg("hlen.npy");
}
static void e_npy_5(void) {
  npy_v1("short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 8);
  npy_msg("short.npy");
}
static void e_npy_6(void) {
  npy_v1("neg.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", 0);
  npy_msg("neg.npy");
}
static void e_npy_7(void) {
  npy_v1("overflow.npy",
         "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 0);
  npy_msg("overflow.npy");
}
static void e_npy_8(void) {
  npy_v1("huge.npy", "{'descr': '<i4', 'fortran_order': False, 'shape': (1152921504606846976,), }",
         16);
  npy_msg("huge.npy");
}
static void e_npy_9(void) {
  npy_v1("dim.npy",
         "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 0);
  npy_msg("dim.npy");
}
static void e_npy_10(void) {
  npy_file("hlen2.npy", 2, 0xffffffffu,
           "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 0);
  npy_msg("hlen2.npy");
}
static void e_npy_11(void) {
  npy_v1("trail.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 13);
  npy_msg("trail.npy");
}
static void e_npy_12(void) {
  write_bytes("empty.npy", "", 0);
  npy_msg("empty.npy");
}
static void e_npy_13(void) {
  npy_v1("struct.npy", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", 12);
  npy_msg("struct.npy");
}
static void e_npy_14(void) {
  npy_v1("bad.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,) ", 12);
  npy_msg("bad.npy");
}
/* Not an error: Fortran order is read and transposed to C order. */
static void e_npy_15(void) {
  npy_v1("fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24);
  npy_msg("fortran.npy");
}
static void e_npy_16(void) { npy_msg("missing.npy"); }

/* --------------------------------------------------------- safetensors */

/* A safetensors image: the 8-byte length (as given), the header text,
 * ndata zero bytes. */
static void st_file(const char *name, uint64_t hlen_field, const char *header, size_t ndata) {
  unsigned char b[4096];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen_field >> (8 * i));
  size_t hl = strlen(header);
  memcpy(b + 8, header, hl);
  memset(b + 8 + hl, 0, ndata);
  write_bytes(name, b, 8 + hl + ndata);
}
static void st_ok(const char *name, const char *header, size_t ndata) {
  st_file(name, strlen(header), header, ndata);
}

static void e_st_1(void) {
  st_file("hlen.safetensors", 4096, "{}", 0);
  load_msg("hlen.safetensors");
}
static void e_st_2(void) {
  st_file("hmax.safetensors", UINT64_MAX, "{}", 0);
  load_msg("hmax.safetensors");
}
static void e_st_3(void) {
  st_ok("json.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [3]", 0);
  load_msg("json.safetensors");
}
static void e_st_4(void) {
  st_ok("range.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
        8);
  load_msg("range.safetensors");
}
static void e_st_5(void) {
  st_ok("overlap.safetensors",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
        "\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[4,16]}}",
        16);
  load_msg("overlap.safetensors");
}
static void e_st_6(void) {
  st_ok("shape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,12]}}",
        12);
  load_msg("shape.safetensors");
}
static void e_st_7(void) {
  st_ok("f16.safetensors", "{\"w\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]}}", 6);
  load_msg("f16.safetensors");
}
static void e_st_8(void) {
  st_ok("huge.safetensors",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,12]}}",
        12);
  load_msg("huge.safetensors");
}
static void e_st_9(void) {
  st_ok("neg.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-3],\"data_offsets\":[0,12]}}",
        12);
  load_msg("neg.safetensors");
}
static void e_st_10(void) {
  write_bytes("short.safetensors", "\x02\x00\x00", 3);
  load_msg("short.safetensors");
}
static void e_st_11(void) {
  st_ok("gap.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
        20);
  load_msg("gap.safetensors");
}
static void e_st_12(void) {
  st_ok("elems.safetensors",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1152921504606846976],\"data_offsets\":[0,12]}}", 12);
  load_msg("elems.safetensors");
}

/* ----------------------------------------------------- compile and AOT */

/* Not an error: a damaged disk-cache entry is a miss; the program is
 * compiled again and the entry rewritten. */
/* Every entry of dir rewritten with a valid header and hash around a
 * payload that is no object file (what only a forger could write). */
static void forge_entries(const char *dir) {
  static const char payload[] = "\x7f" "ELF, but not an object file";
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "ls '%s'", dir);
  FILE *ls = popen(cmd, "r");
  ck_assert_ptr_nonnull(ls);
  char name[512];
  while (fgets(name, sizeof name, ls)) {
    name[strcspn(name, "\n")] = 0;
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unsigned char hdr[40];
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fread(hdr, 1, sizeof hdr, f), sizeof hdr);
    fclose(f);
    uint64_t n = sizeof payload - 1;
    for (int i = 0; i < 8; i++) hdr[16 + i] = (unsigned char)(n >> (8 * i));
    sm_hash128(payload, n, hdr + 24);
    f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(hdr, 1, sizeof hdr, f), sizeof hdr);
    ck_assert_uint_eq(fwrite(payload, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
  }
  pclose(ls);
}

/* how: 0 truncates every entry, 1 writes garbage into it, 2 forges it. */
static void cache_case(int how) {
  if (!tu_have_cpu()) {
    keep("SKIP");
    return;
  }
  char dir[600];
  snprintf(dir, sizeof dir, "%s/cache%d", tmpdir, how);
  mkdir(dir, 0777);
  smelt_compile_options o = smelt_compile_defaults();
  o.target = SMELT_TARGET_CPU;
  o.cache_dir = dir;
  o.dump = NULL;
  o.num_threads = 1;
  fixture f = fix();
  fix_program(&f); /* keeps the fixture's shape; the cpu program below fills the cache */
  smelt_program_free(f.pr);
  f.pr = smelt_program_compile(f.g, f.p, 1, (const char *[]){"s"}, 0, NULL, &o);
  ck_assert_ptr_null(smelt_program_error(f.pr));
  smelt_program_free(f.pr);
  /* damage every entry */
  char cmd[1400];
  if (how == 0)
    snprintf(cmd, sizeof cmd, "for f in '%s'/*; do truncate -s 30 \"$f\"; done", dir);
  else
    snprintf(cmd, sizeof cmd,
             "for f in '%s'/*; do printf 'garbage garbage garbage garbage garbage garbage' "
             "| dd of=\"$f\" bs=1 seek=100 conv=notrunc 2>/dev/null; done",
             dir);
  if (how == 2)
    forge_entries(dir);
  else
    ck_assert_int_eq(system(cmd), 0);
  f.pr = smelt_program_compile(f.g, f.p, 1, (const char *[]){"s"}, 0, NULL, &o);
  smelt_program_stats st1 = {0}, st2 = {0};
  smelt_program_get_stats(f.pr, &st1);
  char e1[512];
  snprintf(e1, sizeof e1, "%s", smelt_program_error(f.pr) ? smelt_program_error(f.pr) : "none");
  float out = NAN;
  int rc = smelt_program_bind(f.pr, "x", SMELT_F32, 2, D(2, 3), xdata, sizeof xdata) ||
           smelt_program_run(f.pr) || smelt_program_read(f.pr, "s", SMELT_F32, &out, sizeof out);
  smelt_program_free(f.pr);
  f.pr = smelt_program_compile(f.g, f.p, 1, (const char *[]){"s"}, 0, NULL, &o);
  smelt_program_get_stats(f.pr, &st2);
  keepf("error: %s, from_cache %d, s = %g (rc %d); compiled again: from_cache %d",
        e1, st1.from_cache, out, rc, st2.from_cache);
  unfix(&f);
}
static void e_cache_1(void) { cache_case(0); }
static void e_cache_2(void) { cache_case(1); }
static void e_cache_3(void) { cache_case(2); }

/* A program whose intermediate cannot fit any machine (exp of a small
 * input expanded to 2^58 elements): refused with its size, at once. */
static void e_compile_1(void) {
  smelt_graph *g = G();
  smelt_node x = in(g, "x", SMELT_F32, 2, D(1, 1));
  smelt_node big = smelt_expand(g, x, 2, D((int64_t)1 << 30, (int64_t)1 << 28));
  smelt_output(g, "y", smelt_sum(g, smelt_exp(g, big), 0, NULL, false));
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = interp_opts();
  smelt_program *pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  const char *e = smelt_program_error(pr);
  if (!e) {
    const float one = 1;
    smelt_program_bind(pr, "x", SMELT_F32, 2, D(1, 1), &one, sizeof one);
    smelt_program_run(pr);
    e = smelt_program_error(pr);
  }
  keep(e);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}

static void e_compile_2(void) {
  if (!tu_have_cpu()) {
    keep("SKIP");
    return;
  }
  smelt_graph *g = G();
  smelt_node x = in(g, "x", SMELT_F32, 2, D((int64_t)1 << 30, (int64_t)1 << 28));
  smelt_output(g, "y", smelt_sum(g, smelt_exp(g, x), 0, NULL, false));
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = smelt_compile_defaults();
  o.target = SMELT_TARGET_CPU;
  o.cache_dir = NULL;
  o.dump = NULL;
  /* the message states the unguarded arena's size (the asan phase runs
   * with SMELT_ARENA_GUARD=1, which pads every buffer) */
  char *guard = getenv("SMELT_ARENA_GUARD") ? strdup(getenv("SMELT_ARENA_GUARD")) : NULL;
  unsetenv("SMELT_ARENA_GUARD");
  smelt_program *pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  if (guard) setenv("SMELT_ARENA_GUARD", guard, 1);
  free(guard);
  const char *e = smelt_program_error(pr);
  if (!e) {
    smelt_program_run(pr);
    e = smelt_program_error(pr);
  }
  keep(e);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}

/* Nine intermediates of 2^61 bytes alive at once (matmuls whose results
 * one elementwise kernel multiplies): the arena overflows size_t. */
static void e_compile_4(void) {
  if (!tu_have_cpu()) {
    keep("SKIP");
    return;
  }
  smelt_graph *g = G();
  smelt_node x = in(g, "x", SMELT_F64, 2, D((int64_t)1 << 29, 1));
  smelt_node y = in(g, "y", SMELT_F64, 2, D(1, (int64_t)1 << 29));
  smelt_node acc = SMELT_INVALID;
  for (int i = 0; i < 9; i++) {
    smelt_node m = smelt_matmul(g, smelt_add(g, x, smelt_scalar(g, i)), y);
    acc = i ? smelt_mul(g, acc, m) : m;
  }
  smelt_output(g, "s", smelt_sum(g, acc, 0, NULL, false));
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = smelt_compile_defaults();
  o.target = SMELT_TARGET_CPU;
  o.cache_dir = NULL;
  o.dump = NULL;
  smelt_program *pr = smelt_program_compile(g, p, 1, (const char *[]){"s"}, 0, NULL, &o);
  keep(smelt_program_error(pr));
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}

/* A dump stage that does not exist (options.dump or $SMELT_DUMP). */
static void e_compile_5(void) {
  fixture f = fix();
  smelt_compile_options o = interp_opts();
  o.dump = "graph,kernel";
  f.pr = smelt_program_compile(f.g, f.p, 1, (const char *[]){"s"}, 0, NULL, &o);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

/* A dump directory below a regular file. */
static void e_compile_6(void) {
  write_bytes("file", "x", 1);
  char dir[1100];
  snprintf(dir, sizeof dir, "%s/dumps", path_of("file"));
  fixture f = fix();
  smelt_compile_options o = interp_opts();
  o.dump = "graph";
  o.dump_dir = dir;
  f.pr = smelt_program_compile(f.g, f.p, 1, (const char *[]){"s"}, 0, NULL, &o);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

/* A libsmelt without LLVM asked for the cpu target. */
static void e_compile_3(void) {
  if (tu_have_cpu()) {
    keep("SKIP");
    return;
  }
  fixture f = fix();
  smelt_compile_options o = interp_opts();
  o.target = SMELT_TARGET_CPU;
  f.pr = smelt_program_compile(f.g, f.p, 1, (const char *[]){"s"}, 0, NULL, &o);
  keep(smelt_program_error(f.pr));
  unfix(&f);
}

static smelt_graph *aot_graph(void) {
  smelt_graph *g = G();
  smelt_node x = in(g, "x", SMELT_F32, 1, D(3));
  smelt_output(g, "y", smelt_neg(g, x));
  smelt_graph_add_program(g, "predict", 1, (const char *[]){"y"}, 0, NULL, true);
  return g;
}

static void aot_msg(const char *object, const char *triple, const char *cpu) {
  if (!tu_have_cpu()) {
    keep("SKIP");
    return;
  }
  smelt_graph *g = aot_graph();
  smelt_aot_options o = smelt_aot_defaults();
  char obj[1024];
  snprintf(obj, sizeof obj, "%s", path_of(object));
  o.object_path = obj;
  o.triple = triple;
  o.cpu = cpu;
  o.dump = NULL;
  char *err = NULL;
  if (smelt_aot_compile(g, &o, &err) == 0) keep("compiled");
  else keep(err);
  smelt_free(err);
  smelt_graph_free(g);
}
static void e_aot_1(void) { aot_msg("no/such/dir/model.o", NULL, NULL); }
static void e_aot_2(void) { aot_msg("model.o", "sparc64-sun-solaris", NULL); }
static void e_aot_3(void) { aot_msg("model.o", "x86_64-linux-gnu", "pentium9"); }
/* Initial weights from a checkpoint that does not match the graph. */
static void e_aot_5(void) {
  if (!tu_have_cpu()) {
    keep("SKIP");
    return;
  }
  smelt_graph *g = aot_graph();
  smelt_param(g, "w", SMELT_F32, 1, D(3), smelt_init_zeros());
  st_ok("aotw.safetensors",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
  smelt_aot_options o = smelt_aot_defaults();
  char obj[1024], weights[1024];
  snprintf(obj, sizeof obj, "%s", path_of("w.o"));
  snprintf(weights, sizeof weights, "%s", path_of("aotw.safetensors"));
  o.object_path = obj;
  o.weights_path = weights;
  o.dump = NULL;
  char *err = NULL;
  if (smelt_aot_compile(g, &o, &err) == 0) keep("compiled");
  else keep(err);
  smelt_free(err);
  smelt_graph_free(g);
}

static void e_aot_4(void) {
  if (!tu_have_cpu()) {
    keep("SKIP");
    return;
  }
  smelt_graph *g = G();
  smelt_output(g, "y", smelt_neg(g, in(g, "x", SMELT_F32, 1, D(3))));
  smelt_aot_options o = smelt_aot_defaults();
  o.object_path = path_of("none.o");
  char *err = NULL;
  smelt_aot_compile(g, &o, &err);
  keep(err);
  smelt_free(err);
  smelt_graph_free(g);
}

/* ---------------------------------------------------------------- CUDA */

/* The driver and NVRTC are loaded once per process: these rows run in
 * Check's forked children only. */
static void cuda_msg(const char *arch) {
  fixture f = fix();
  smelt_compile_options o = interp_opts();
  o.target = SMELT_TARGET_CUDA;
  o.cuda_arch = arch;
  f.pr = smelt_program_compile(f.g, f.p, 1, (const char *[]){"s"}, 0, NULL, &o);
  const char *e = smelt_program_error(f.pr);
  if (!e) {
    smelt_program_bind(f.pr, "x", SMELT_F32, 2, D(2, 3), xdata, sizeof xdata);
    smelt_program_run(f.pr);
    e = smelt_program_error(f.pr);
  }
  keep(e);
  unfix(&f);
}

static void e_cuda_1(void) {
  /* without NVRTC the cuda target is refused before any driver is looked
   * for (E-compile-3's kind of message) */
  if (!forked || !sm_nvrtc_available()) {
    keep("SKIP");
    return;
  }
  setenv("SMELT_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  cuda_msg(NULL);
}

/* The default driver on a machine without one (skipped where it loads). */
static void e_cuda_2(void) {
  if (!forked || getenv("SMELT_CUDA_DRIVER")) {
    keep("SKIP");
    return;
  }
  cuda_msg(NULL);
  if (strncmp(got, "no CUDA driver found (libcuda.so.1: ", 36) != 0) keep("SKIP");
}

/* smeltc FILE ARGS with env ENV: its stderr and exit status. */
static void smeltc_msg(const char *env, const char *args) {
  const char *smeltc = getenv("SMELTC");
  if (!smeltc) {
    keep("SKIP");
    return;
  }
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s '%s' %s 2>&1 >/dev/null", env, smeltc, args);
  FILE *f = popen(cmd, "r");
  ck_assert_ptr_nonnull(f);
  char out[4096];
  size_t n = fread(out, 1, sizeof out - 1, f);
  out[n] = 0;
  int st = pclose(f);
  while (n && out[n - 1] == '\n') out[--n] = 0;
  keepf("%s\nexit status %d", out, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void neg_graph_file(void) {
  const char *text = "input %x : f32[3]\n%y = neg %x : f32[3]\noutput y = %y\n";
  write_bytes("neg.smelt", text, strlen(text));
}

static void e_cuda_3(void) {
  if (!sm_nvrtc_available()) {
    keep("SKIP");
    return;
  }
  neg_graph_file();
  char args[1200];
  snprintf(args, sizeof args, "compile '%s' --target cuda --emit ptx --arch sm_80",
           path_of("neg.smelt"));
  smeltc_msg("SMELT_NVRTC=/nonexistent/libnvrtc.so", args);
}

static void e_cuda_4(void) {
  if (!sm_nvrtc_available()) {
    keep("SKIP");
    return;
  }
  neg_graph_file();
  char args[1200];
  snprintf(args, sizeof args, "compile '%s' --target cuda --emit ptx --arch sm_12",
           path_of("neg.smelt"));
  smeltc_msg("", args);
  /* NVRTC's version and its list of architectures vary: X.Y and ... */
  char *v = strstr(got, "by NVRTC "), *list = strstr(got, "(supported: ");
  char *end = list ? strchr(list, ')') : NULL;
  if (v && list && end && v < list) {
    char b[sizeof got];
    snprintf(b, sizeof b, "%.*sX.Y (supported: ...%s", (int)(v + 9 - got), got, end);
    keep(b);
  }
}

/* NVRTC rejects CUDA C (smelt's own never is; this is what a failure
 * looks like): the first line and the numbered source lines are smelt's,
 * NVRTC's log between them varies with its version, so only smelt's lines
 * are compared. */
static void e_cuda_5(void) {
  if (!sm_nvrtc_available()) {
    keep("SKIP");
    return;
  }
  sm_nvrtc_request r = {"extern \"C\" __global__ void k(float *p) {\n  p[0] = q;\n}\n",
                        "bad.cu", 80, SM_NVRTC_CUBIN, NULL};
  size_t len;
  char *err = NULL;
  void *out = sm_nvrtc_compile(&r, &len, NULL, &err);
  ck_assert_ptr_null(out);
  ck_assert_ptr_nonnull(err);
  char b[2048];
  size_t n = 0;
  for (const char *p = err; *p;) {
    size_t ll = strcspn(p, "\n");
    if (p == err || strncmp(p, "  2 | ", 6) == 0)
      n += (size_t)snprintf(b + n, sizeof b - n, "%s%.*s", n ? "\n" : "", (int)ll, p);
    p += ll + (p[ll] != 0);
  }
  keep(b);
  sm_free(err);
}

/* smeltc: a missing graph file, a missing input binding, a hostile .npy. */
static void e_cli_1(void) {
  smeltc_msg("", "run /nonexistent/model.smelt");
}
static void e_cli_2(void) {
  neg_graph_file();
  char args[1200];
  snprintf(args, sizeof args, "run '%s'", path_of("neg.smelt"));
  smeltc_msg("SMELT_TARGET=interp", args);
}
static void e_cli_3(void) {
  neg_graph_file();
  npy_v1("cli_huge.npy",
         "{'descr': '<f4', 'fortran_order': False, 'shape': (1152921504606846976,), }", 16);
  char args[2400], graph[1100];
  snprintf(graph, sizeof graph, "%s", path_of("neg.smelt"));
  snprintf(args, sizeof args, "run '%s' --input x='%s'", graph, path_of("cli_huge.npy"));
  smeltc_msg("SMELT_TARGET=interp", args);
}
static void e_cli_4(void) {
  neg_graph_file();
  npy_v1("cli_x.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 16);
  char args[2400], graph[1100];
  snprintf(graph, sizeof graph, "%s", path_of("neg.smelt"));
  snprintf(args, sizeof args, "run '%s' --input x='%s'", graph, path_of("cli_x.npy"));
  smeltc_msg("SMELT_TARGET=interp", args);
}

/* ------------------------------------------------------------- NaN etc */

/* The values of y, formatted exactly (NaN without its sign, which IEEE
 * leaves open), computed from inputs bound at run time ("a", "b") so that
 * a compiled target evaluates them in its kernels, not by folding. */
static void values(const char *what, smelt_graph *g, smelt_node y, int nbind,
                   const tu_bind *binds) {
  double *v = TU_EVAL_WITH(g, y, nbind, binds);
  char b[512];
  int n = snprintf(b, sizeof b, "%s = [", what);
  int64_t k = smelt_node_numel(g, y);
  for (int64_t i = 0; i < k; i++) {
    const char *sep = i ? ", " : "";
    if (isnan(v[i]))
      n += snprintf(b + n, sizeof b - (size_t)n, "%snan", sep);
    else if (v[i] == 0 && signbit(v[i]))
      n += snprintf(b + n, sizeof b - (size_t)n, "%s-0", sep);
    else if (v[i] == trunc(v[i]) && fabs(v[i]) < 1e15)
      n += snprintf(b + n, sizeof b - (size_t)n, "%s%.0f", sep, v[i]);
    else
      n += snprintf(b + n, sizeof b - (size_t)n, "%s%.9g", sep, v[i]);
  }
  snprintf(b + n, sizeof b - (size_t)n, "] (%s)", smelt_dtype_name(smelt_node_dtype(g, y)));
  keep(b);
  free(v);
  smelt_graph_free(g);
}

/* y = f(a) or f(a, b) of f32 (or i32) inputs of n elements. */
#define A1(dt, n) in(g, "a", dt, 1, D(n))
#define B1(dt, n) in(g, "b", dt, 1, D(n))

static void e_nan_1(void) {
  smelt_graph *g = G();
  values("log([-1, 0, inf, nan])", g, smelt_log(g, A1(SMELT_F32, 4)), 1,
         (const tu_bind[]){{"a", (const float[]){-1, 0, INFINITY, NAN}}});
}
static void e_nan_2(void) {
  smelt_graph *g = G();
  values("[0, 1, -1, 1] / [0, 0, 0, -0.0]", g, smelt_div(g, A1(SMELT_F32, 4), B1(SMELT_F32, 4)),
         2,
         (const tu_bind[]){{"a", (const float[]){0, 1, -1, 1}},
                           {"b", (const float[]){0, 0, 0, -0.0f}}});
}
static void e_nan_3(void) {
  smelt_graph *g = G();
  smelt_node a = A1(SMELT_F32, 2);
  values("sqrt([-1, -0.0]), rsqrt([-1, 0])", g,
         smelt_concat(g, 2,
                      (smelt_node[]){smelt_sqrt(g, a),
                                     smelt_rsqrt(g, smelt_add(g, a, smelt_scalar(g, 0)))},
                      0),
         1, (const tu_bind[]){{"a", (const float[]){-1, -0.0f}}});
}
static void e_nan_4(void) {
  smelt_graph *g = G();
  values("[7, -7, 0] / [0, 0, 0] (i32)", g, smelt_div(g, A1(SMELT_I32, 3), B1(SMELT_I32, 3)), 2,
         (const tu_bind[]){{"a", (const int32_t[]){7, -7, 0}}, {"b", (const int32_t[]){0, 0, 0}}});
}
static void e_nan_5(void) {
  smelt_graph *g = G();
  values("pow([-8, 0, 2], [1/3, -1, 1024])", g,
         smelt_pow(g, A1(SMELT_F32, 3), B1(SMELT_F32, 3)), 2,
         (const tu_bind[]){{"a", (const float[]){-8, 0, 2}},
                           {"b", (const float[]){1.0f / 3, -1, 1024}}});
}
static void e_nan_6(void) {
  smelt_graph *g = G();
  smelt_node e = in(g, "e", SMELT_F32, 1, D(0));
  smelt_node x = smelt_concat(g, 2,
                              (smelt_node[]){smelt_mean(g, e, 0, NULL, true),
                                             smelt_var(g, A1(SMELT_F32, 1), 0, NULL, 1, true)},
                              0);
  values("mean of [], var([5]) with correction 1", g, x, 2,
         (const tu_bind[]){{"e", (const float[]){0}}, {"a", (const float[]){5}}});
}
static void e_nan_7(void) {
  smelt_graph *g = G();
  values("cast([nan, inf, -inf, 3e9, -3e9], i32)", g, smelt_cast(g, A1(SMELT_F32, 5), SMELT_I32),
         1, (const tu_bind[]){{"a", (const float[]){NAN, INFINITY, -INFINITY, 3e9f, -3e9f}}});
}

/* --------------------------------------------------------------- table */

typedef struct row {
  const char *id;
  void (*provoke)(void);
  const char *want;
} row;

/* The expected messages: kept equal to docs/errors.md by doc_agrees. */
static const row rows[] = {
    {"E-shape-1", e_shape_1,
     "add: cannot broadcast %a: f32[3,4] with %b: f32[5]: dim -1 is 4 in"
     " the first and 5 in the second (dims must be equal or 1)"},
    {"E-shape-2", e_shape_2,
     "where: cannot broadcast %a: f32[3] with %b: f32[2]: dim -1 is 3 in"
     " the first and 2 in the second (dims must be equal or 1)"},
    {"E-shape-3", e_shape_3,
     "input: dim 1 of [2,-3] is negative"},
    {"E-shape-4", e_shape_4,
     "input: rank 9 is out of range (0 to 8)"},
    {"E-shape-5", e_shape_5,
     "input: shape [1099511627776,1099511627776] has too many elements (more"
     " than 2^59)"},
    {"E-shape-6", e_shape_6,
     "concat: %a: f32[2,3] and %b: f32[4,4] differ in dim 1 (only the"
     " concat axis 0 may differ)"},
    {"E-shape-7", e_shape_7,
     "stack: all tensors need the same shape, got %a: f32[3] and %b: f32[4]"},
    {"E-shape-8", e_shape_8,
     "add: cannot broadcast %x: f32[3] with %y: f32[5]: dim -1 is 3 in the"
     " first and 5 in the second (dims must be equal or 1)"},
    {"E-shape-9", e_shape_9,
     "neg: the operand is a node of another graph"},
    {"E-shape-10", e_shape_10,
     "set_name: the name \"x\" is already used by another node"},
    {"E-shape-11", e_shape_11,
     "input: invalid name \"1x\" (names are [A-Za-z_][A-Za-z0-9_.]*)"},
    {"E-shape-12", e_shape_12,
     "full: shape [1099511627776,1048576] has too many elements (more than"
     " 2^59)"},
    {"E-axis-1", e_axis_1,
     "sum: axis 2 is out of range for %x: f32[2,3] (rank 2)"},
    {"E-axis-2", e_axis_2,
     "sum: axis -2 is repeated in the axis list for %x: f32[2,3]"},
    {"E-axis-3", e_axis_3,
     "softmax: axis -3 is out of range for %x: f32[2,3] (rank 2)"},
    {"E-axis-4", e_axis_4,
     "permute: axis 1 appears twice, perm is not a permutation of %x:"
     " f32[2,3,4]"},
    {"E-axis-5", e_axis_5,
     "squeeze: axis 1 of %x: f32[2,3] has size 3, not 1"},
    {"E-axis-6", e_axis_6,
     "max: cannot reduce axis 0 of size 0 of %x: f32[0,3]: max has no identity"},
    {"E-axis-7", e_axis_7,
     "argmax: axis 2 is out of range for %x: f32[2,3] (rank 2)"},
    {"E-dtype-1", e_dtype_1,
     "where: the condition must be bool, got %c: f32[3] (compare it with"
     " ne(x, 0))"},
    {"E-dtype-2", e_dtype_2,
     "neg: needs numeric operands, got bool (%m: bool[3])"},
    {"E-dtype-3", e_dtype_3,
     "mean: needs a float tensor, got %n: i32[3] (cast it first)"},
    {"E-dtype-4", e_dtype_4,
     "add: the literal 1099511627776 does not fit i32 (literals must fit"
     " the tensor's dtype)"},
    {"E-dtype-5", e_dtype_5,
     "assign: cannot store %x: f32[3] into the i32 param %w: i32[3]"},
    {"E-dtype-6", e_dtype_6,
     "rand: needs a float dtype (f32 or f64), got i32"},
    {"E-dtype-7", e_dtype_7,
     "gather: the index must be i32 or i64, got %i: f32[3]"},
    {"E-dtype-8", e_dtype_8,
     "cross_entropy: the labels must be i32 or i64 class indices (logits"
     " %logits: f32[4,3], labels %labels: f32[4])"},
    {"E-dtype-9", e_dtype_9,
     "cast: unknown dtype 7"},
    {"E-view-1", e_view_1,
     "reshape: cannot reshape %x: f32[2,3] (6 elements) to [4] (4 elements)"},
    {"E-view-2", e_view_2,
     "reshape: only one dim of [-1,-1] may be -1"},
    {"E-view-3", e_view_3,
     "expand: cannot expand %x: f32[2,3] to [4,3]: dim 0 is 2 (only size-1"
     " dims expand)"},
    {"E-view-4", e_view_4,
     "slice: step 0 on axis 0 of %x: f32[5] must be >= 1 (use flip to"
     " reverse)"},
    {"E-view-5", e_view_5,
     "pad: padding of axis 0 of %x: f32[5] is negative (-1, 0); use slice"
     " to crop"},
    {"E-view-6", e_view_6,
     "unfold: size 6 is larger than axis 0 of %x: f32[5]"},
    {"E-view-7", e_view_7,
     "broadcast_to: cannot broadcast %x: f32[3] to [2,4]"},
    {"E-matmul-1", e_matmul_1,
     "matmul: inner dims differ: %a: f32[2,3] has 3 columns but %b:"
     " f32[4,5] has 4 rows"},
    {"E-matmul-2", e_matmul_2,
     "matmul: both operands need at least 1 dim, got %a: f32[] and %b:"
     " f32[3]"},
    {"E-matmul-3", e_matmul_3,
     "matmul: batch dims of %a: f32[2,2,3] and %b: f32[3,3,4] do not"
     " broadcast (batch dim -1)"},
    {"E-conv-1", e_conv_1,
     "conv2d: the weight %w: f32[4,2,3,3] has 2 input channels per group;"
     " the input has 3 channels in 1 groups (3 each)"},
    {"E-conv-2", e_conv_2,
     "conv2d: groups 3 must divide the input channels (4) and the output"
     " channels (6)"},
    {"E-conv-3", e_conv_3,
     "conv2d: the window (3 with dilation 1) is larger than the padded"
     " input's height (2)"},
    {"E-conv-4", e_conv_4,
     "max_pool2d: padding 2 (height) must be at most half the window (2"
     " with dilation 1)"},
    {"E-grad-1", e_grad_1,
     "grad: y has shape [3]; reverse mode needs a scalar or an explicit seed"},
    {"E-grad-2", e_grad_2,
     "grad: y %2: i64[] is not a float tensor; only float tensors are"
     " differentiable"},
    {"E-grad-3", e_grad_3,
     "grad: wrt 0 (%n: i32[3]) is not a float tensor; only float tensors"
     " have gradients"},
    {"E-grad-4", e_grad_4,
     "rc 0, d_z: f32[2,2] = [0, 0, 0, 0], graph error: none"},
    {"E-grad-5", e_grad_5,
     "grad: y %3: f32[] does not depend on wrt 0 (%z: f32[3])"},
    {"E-grad-6", e_grad_6,
     "rc 0, d_x = [0, 0, 0]"},
    {"E-grad-7", e_grad_7,
     "grad: the seed %s: f32[2] must have y's shape (y is %1: f32[3])"},
    {"E-prog-1", e_prog_1,
     "program: unknown output \"loss\" (name it with smelt_output first)"},
    {"E-prog-2", e_prog_2,
     "program: output \"y\" is listed twice"},
    {"E-prog-3", e_prog_3,
     "program: update 0 (%4, a mul node) is not an assign"},
    {"E-prog-4", e_prog_4,
     "program: param \"w\" is updated twice"},
    {"E-prog-5", e_prog_5,
     "the graph has an error: add: cannot broadcast %x: f32[2,3] with %z:"
     " f32[4]: dim -1 is 3 in the first and 4 in the second (dims must be"
     " equal or 1)"},
    {"E-prog-6", e_prog_6,
     "input \"x\" is not bound"},
    {"E-prog-7", e_prog_7,
     "unknown input \"X\" (inputs: \"x\")"},
    {"E-prog-8", e_prog_8,
     "input \"x\": dtype f64 does not match the declared f32[2,3]"},
    {"E-prog-9", e_prog_9,
     "input \"x\": shape [6] does not match the declared f32[2,3]"},
    {"E-prog-10", e_prog_10,
     "input \"x\": shape [3,2] does not match the declared f32[2,3]"},
    {"E-prog-11", e_prog_11,
     "input \"x\": 16 bytes given, f32[2,3] needs 24"},
    {"E-prog-12", e_prog_12,
     "read \"y\": no results yet (smelt_program_run has not succeeded)"},
    {"E-prog-13", e_prog_13,
     "read: \"x\" is not an output of this program"},
    {"E-prog-14", e_prog_14,
     "read \"y\": dtype f64 does not match the output's f32"},
    {"E-prog-15", e_prog_15,
     "read \"y\": 16 bytes given, the output needs 24"},
    {"E-prog-16", e_prog_16,
     "no program named \"predcit\" (declared: predict)"},
    {"E-prog-17", e_prog_17,
     "SMELT_TARGET=\"gpu\" is not a target (cpu, interp or cuda)"},
    {"E-prog-18", e_prog_18,
     "evaluation program: output \"d_w\" depends on %12 of a backward graph"
     " (evaluation programs compute no gradients; use smelt_program_new)"},
    {"E-prog-19", e_prog_19,
     "bind_device \"x\": the program runs on the interp target; device"
     " memory is for the cuda target"},
    {"E-prog-20", e_prog_20,
     "gather: index 3 is out of range for axis 0 of size 3 (node %2)"},
    {"E-prog-21", e_prog_21,
     "the graph has an error: neg: needs numeric operands, got bool (%x:"
     " bool[3])"},
    {"E-prog-22", e_prog_22,
     "the graph has an error: matmul: inner dims differ: %x: f32[2,3] has 3"
     " columns but %x: f32[2,3] has 2 rows"},
    {"E-prog-23", e_prog_23,
     "program: bad output or update list (noutputs 1, outputs NULL;"
     " nupdates 0, updates NULL)"},
    {"E-param-1", e_param_1,
     "read: no param named \"W\""},
    {"E-param-2", e_param_2,
     "read \"w\": dtype f64 does not match the param's f32[3]"},
    {"E-param-3", e_param_3,
     "write \"w\": 16 bytes given, f32[3] needs 12"},
    {"E-param-4", e_param_4,
     "write \"w\": data is NULL"},
    {"E-param-5", e_param_5,
     "param \"huge\": out of memory (f32[1073741824,268435456] needs"
     " 1152921504606846976 bytes)"},
    {"E-param-6", e_param_6,
     "load: DIR/v.safetensors has no tensor \"w\" (the param is f32[3])"},
    {"E-param-7", e_param_7,
     "load: DIR/wb.safetensors holds \"b\", which is not a param of this"
     " graph"},
    {"E-param-8", e_param_8,
     "load: DIR/w4.safetensors: tensor \"w\" is f32[1,4], the param is"
     " f32[3]"},
    {"E-param-9", e_param_9,
     "load: DIR/w64.safetensors: tensor \"w\" is f64[3], the param is f32[3]"},
    {"E-param-10", e_param_10,
     "load: DIR/missing.safetensors: cannot open: No such file or directory"},
    {"E-param-11", e_param_11,
     "save: DIR/no/such/dir/ckpt.safetensors: cannot create a temporary"
     " file next to it: No such file or directory"},
    {"E-text-1", e_text_1,
     "t.smelt:1:12: unterminated shape (missing ']')"},
    {"E-text-2", e_text_2,
     "t.smelt:2:6: unknown op 'frob'"},
    {"E-text-3", e_text_3,
     "t.smelt:2:13: neg has no attribute 'foo'"},
    {"E-text-4", e_text_4,
     "t.smelt:2:6: reduce_sum: axis 2 is out of range for %x: f32[2,3]"
     " (rank 2)"},
    {"E-text-5", e_text_5,
     "t.smelt:1:10: unknown id %x"},
    {"E-text-6", e_text_6,
     "t.smelt:3:6: add: cannot broadcast %a: f32[3,4] with %b: f32[5]: dim"
     " -1 is 4 in the first and 5 in the second (dims must be equal or 1)"},
    {"E-text-7", e_text_7,
     "t.smelt:2:15: declared f32[4] but the op gives f32[3]"},
    {"E-text-8", e_text_8,
     "t.smelt:1:12: unknown dtype 'f16' (f32, f64, i32, i64, bool)"},
    {"E-text-9", e_text_9,
     "t.smelt:2:9: NUL byte in the input"},
    {"E-text-10", e_text_10,
     "t.smelt:1:12: shape has too many elements (more than 2^59)"},
    {"E-text-11", e_text_11,
     "t.smelt:1:16: a dim out of range (-3 not in [0, 9223372036854775807])"},
    {"E-text-12", e_text_12,
     "t.smelt:1:16: integer out of range for a dim"},
    {"E-text-13", e_text_13,
     "t.smelt:1:1: empty input"},
    {"E-text-14", e_text_14,
     "param \"w\": out of memory (f32[1073741824,268435456] needs"
     " 1152921504606846976 bytes)"},
    {"E-npy-1", e_npy_1,
     "DIR/magic.npy: not a .npy file (bad magic 'PK\\x03\\x04 n', expected"
     " '\\x93NUMPY')"},
    {"E-npy-2", e_npy_2,
     "DIR/v4.npy: unsupported .npy format version 4.0 (1.0, 2.0 and 3.0 are"
     " supported)"},
    {"E-npy-3", e_npy_3,
     "DIR/f16.npy: unsupported dtype '<f2' (supported: '<f4', '<f8', '<i4',"
     " '<i8', '|b1', also big-endian)"},
    {"E-npy-4", e_npy_4,
     "DIR/hlen.npy: truncated: header length 60000 runs past the end of the"
     " file (57 bytes after the 10-byte preamble)"},
    {"E-npy-5", e_npy_5,
     "DIR/short.npy: truncated: header says 12 bytes of data, file has 8"},
    {"E-npy-6", e_npy_6,
     "DIR/neg.npy: shape has a negative dimension (-3)"},
    {"E-npy-7", e_npy_7,
     "DIR/overflow.npy: shape (4294967296, 4294967296) is too large (its"
     " byte size overflows)"},
    {"E-npy-8", e_npy_8,
     "DIR/huge.npy: truncated: header says 4611686018427387904 bytes of"
     " data, file has 16"},
    {"E-npy-9", e_npy_9,
     "DIR/dim.npy: shape dimension 99999999999999999999 is too large"},
    {"E-npy-10", e_npy_10,
     "DIR/hlen2.npy: truncated: header length 4294967295 runs past the end"
     " of the file (57 bytes after the 12-byte preamble)"},
    {"E-npy-11", e_npy_11,
     "DIR/trail.npy: 1 unexpected bytes after the data (header says 12"
     " bytes of data, file has 13)"},
    {"E-npy-12", e_npy_12,
     "DIR/empty.npy: empty file (not a .npy file)"},
    {"E-npy-13", e_npy_13,
     "DIR/struct.npy: unsupported dtype: structured dtypes (a list 'descr')"
     " are not supported"},
    {"E-npy-14", e_npy_14,
     "DIR/bad.npy: malformed header: expected ',' or '}' at the end of the"
     " header"},
    {"E-npy-15", e_npy_15,
     "read: f32, rank 2, 24 bytes"},
    {"E-npy-16", e_npy_16,
     "DIR/missing.npy: cannot open: No such file or directory"},
    {"E-st-1", e_st_1,
     "load: DIR/hlen.safetensors: truncated: header length 4096 runs past"
     " the end of the file (2 bytes after the 8-byte length)"},
    {"E-st-2", e_st_2,
     "load: DIR/hmax.safetensors: truncated: header length"
     " 18446744073709551615 runs past the end of the file (2 bytes after"
     " the 8-byte length)"},
    {"E-st-3", e_st_3,
     "load: DIR/json.safetensors: malformed header: expected ',' or '}' at"
     " the end of the header"},
    {"E-st-4", e_st_4,
     "load: DIR/range.safetensors: tensor \"w\": data_offsets [0, 12] run"
     " past the end of the data (8 bytes)"},
    {"E-st-5", e_st_5,
     "load: DIR/overlap.safetensors: tensor \"w\": data_offsets [4, 16]"
     " overlap tensor \"a\" at [0, 12]"},
    {"E-st-6", e_st_6,
     "load: DIR/shape.safetensors: tensor \"w\": data_offsets [0, 12] hold"
     " 12 bytes, but f32[2,3] needs 24"},
    {"E-st-7", e_st_7,
     "load: DIR/f16.safetensors: tensor \"w\": dtype F16 is not supported"
     " (smelt reads F32, F64, I32, I64 and BOOL)"},
    {"E-st-8", e_st_8,
     "load: DIR/huge.safetensors: tensor \"w\": f32[4294967296,4294967296]"
     " is too large (its byte size overflows)"},
    {"E-st-9", e_st_9,
     "load: DIR/neg.safetensors: tensor \"w\": negative number (-3) in shape"},
    {"E-st-10", e_st_10,
     "load: DIR/short.safetensors: truncated: the file has 3 bytes, less"
     " than the 8-byte header length"},
    {"E-st-11", e_st_11,
     "load: DIR/gap.safetensors: 8 bytes after the last tensor's data (the"
     " tensors cover 12 of the 20 bytes of data)"},
    {"E-st-12", e_st_12,
     "load: DIR/elems.safetensors: tensor \"w\": data_offsets [0, 12] hold"
     " 12 bytes, but f32[1152921504606846976] needs 4611686018427387904"},
    {"E-cache-1", e_cache_1,
     "error: none, from_cache 0, s = 21 (rc 0); compiled again: from_cache 1"},
    {"E-cache-2", e_cache_2,
     "error: none, from_cache 0, s = 21 (rc 0); compiled again: from_cache 1"},
    {"E-cache-3", e_cache_3,
     "error: none, from_cache 0, s = 21 (rc 0); compiled again: from_cache 1"},
    {"E-compile-1", e_compile_1,
     "exp %2: out of memory (f32[1073741824,268435456], 1152921504606846976"
     " bytes)"},
    {"E-compile-2", e_compile_2,
     "out of memory (an arena of 72057594037927936 bytes)"},
    {"E-compile-3", e_compile_3,
     "the cpu target needs LLVM, and this libsmelt was built without it"},
    {"E-compile-4", e_compile_4,
     "the program's intermediates need an arena larger than 2^64 bytes (43 buffers)"},
    {"E-compile-5", e_compile_5,
     "dump \"graph,kernel\" (SMELT_DUMP or the options' dump): unknown stage"
     " \"kernel\" (stages: graph, passes, fusion, kernels, llvm, asm, cuda, ptx,"
     " dot, all)"},
    {"E-compile-6", e_compile_6,
     "dump directory \"DIR/file/dumps\" (SMELT_DUMP_DIR or the options'"
     " dump_dir): Not a directory"},
    {"E-aot-1", e_aot_1,
     "DIR/no/such/dir/model.o: cannot create a temporary file next to it:"
     " No such file or directory"},
    {"E-aot-2", e_aot_2,
     "target sparc64-sun-solaris: ahead-of-time objects are made for x86-64"
     " and AArch64 (triples x86_64-... and aarch64-...)"},
    {"E-aot-3", e_aot_3,
     "unknown CPU \"pentium9\" for x86_64 (llc-19 -mtriple=x86_64"
     " -mcpu=help lists the CPUs LLVM knows)"},
    {"E-aot-4", e_aot_4,
     "the graph declares no programs (smelt_graph_add_program, or a line"
     " 'program NAME outputs=[...] updates=[...]' in the text format)"},
    {"E-aot-5", e_aot_5,
     "DIR/aotw.safetensors: tensor \"w\" is f32[2], the param is f32[3]"},
    {"E-cuda-1", e_cuda_1,
     "no CUDA driver found (/nonexistent/libcuda.so.1: cannot open shared"
     " object file: No such file or directory)"},
    {"E-cuda-2", e_cuda_2,
     "no CUDA driver found (libcuda.so.1: cannot open shared object file:"
     " No such file or directory)"},
    {"E-cuda-3", e_cuda_3,
     "smeltc: NVRTC could not be loaded (/nonexistent/libnvrtc.so: cannot"
     " open shared object file: No such file or directory); install CUDA's"
     " NVRTC or set SMELT_NVRTC to libnvrtc's path\n"
     "exit status 1"},
    {"E-cuda-4", e_cuda_4,
     "smeltc: CUDA arch \"sm_12\" is not supported by NVRTC X.Y (supported:"
     " ...)\n"
     "exit status 1"},
    {"E-cuda-5", e_cuda_5,
     "NVRTC: bad.cu for sm_80: compilation failed\n"
     "  2 |   p[0] = q;"},
    {"E-cli-1", e_cli_1,
     "smeltc: /nonexistent/model.smelt: cannot open: No such file or"
     " directory\n"
     "exit status 1"},
    {"E-cli-2", e_cli_2,
     "smeltc: missing input 'x' (f32[3]): pass it with --input x=FILE.npy\n"
     "exit status 1"},
    {"E-cli-3", e_cli_3,
     "smeltc: input 'x': DIR/cli_huge.npy: truncated: header says"
     " 4611686018427387904 bytes of data, file has 16\n"
     "exit status 1"},
    {"E-cli-4", e_cli_4,
     "smeltc: input 'x': DIR/cli_x.npy holds f32[4], but the graph's input"
     " is f32[3]\n"
     "exit status 1"},
    {"E-nan-1", e_nan_1,
     "log([-1, 0, inf, nan]) = [nan, -inf, inf, nan] (f32)"},
    {"E-nan-2", e_nan_2,
     "[0, 1, -1, 1] / [0, 0, 0, -0.0] = [nan, inf, -inf, -inf] (f32)"},
    {"E-nan-3", e_nan_3,
     "sqrt([-1, -0.0]), rsqrt([-1, 0]) = [nan, -0, nan, inf] (f32)"},
    {"E-nan-4", e_nan_4,
     "[7, -7, 0] / [0, 0, 0] (i32) = [inf, -inf, nan] (f32)"},
    {"E-nan-5", e_nan_5,
     "pow([-8, 0, 2], [1/3, -1, 1024]) = [nan, inf, inf] (f32)"},
    {"E-nan-6", e_nan_6,
     "mean of [], var([5]) with correction 1 = [nan, nan] (f32)"},
    {"E-nan-7", e_nan_7,
     "cast([nan, inf, -inf, 3e9, -3e9], i32) = [0, 2147483647, -2147483648,"
     " 2147483647, -2147483648] (i32)"},
};
#define NROWS (sizeof rows / sizeof *rows)

START_TEST(entry) {
  const row *r = &rows[_i];
  got[0] = 0;
  r->provoke();
  if (getenv("SMELT_ERRORS_PRINT")) {
    printf("@@ %s\n%s\n", r->id, got);
    return;
  }
  if (strcmp(got, "SKIP") == 0) {
    printf("%s: skipped in this build or runner\n", r->id);
    return;
  }
  ck_assert_msg(strcmp(got, r->want) == 0, "%s:\n  got:  %s\n  want: %s", r->id, got, r->want);
}
END_TEST

/* --------------------------------------------------------- doc checks */

/* Reads docs/errors.md: each entry is a line starting with "**E-...**",
 * followed (before the next entry) by a ```text block holding its message. */
typedef struct doc_entry {
  char id[64];
  char *msg;
} doc_entry;

static size_t read_doc(doc_entry *out, size_t cap) {
  const char *path = getenv("SMELT_ERRORS_DOC");
  ck_assert_msg(path != NULL, "SMELT_ERRORS_DOC is not set (meson sets it to docs/errors.md)");
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  size_t n = 0;
  char line[4096];
  bool want_block = false, in_block = false;
  while (fgets(line, sizeof line, f)) {
    size_t ll = strlen(line);
    if (ll && line[ll - 1] == '\n') line[--ll] = 0;
    if (in_block) {
      if (strcmp(line, "```") == 0) {
        in_block = false;
        want_block = false;
        continue;
      }
      doc_entry *e = &out[n - 1];
      size_t ml = e->msg ? strlen(e->msg) : 0;
      char *m = realloc(e->msg, ml + ll + 2);
      ck_assert_ptr_nonnull(m);
      if (ml) m[ml++] = '\n';
      memcpy(m + ml, line, ll + 1);
      e->msg = m;
      continue;
    }
    if (strncmp(line, "**E-", 4) == 0) {
      const char *end = strstr(line + 2, "**");
      ck_assert_msg(end && end - line - 2 < 64, "bad entry line: %s", line);
      ck_assert_msg(!want_block, "entry before %s has no ```text block", line);
      ck_assert_uint_lt(n, cap);
      snprintf(out[n].id, sizeof out[n].id, "%.*s", (int)(end - line - 2), line + 2);
      out[n].msg = NULL;
      n++;
      want_block = true;
    } else if (want_block && strcmp(line, "```text") == 0) {
      in_block = true;
      doc_entry *e = &out[n - 1];
      e->msg = calloc(1, 1);
    }
  }
  fclose(f);
  ck_assert_msg(!want_block && !in_block, "the last entry has no complete ```text block");
  return n;
}

START_TEST(doc_agrees) {
  if (getenv("SMELT_ERRORS_PRINT")) return;
  static doc_entry doc[512];
  size_t n = read_doc(doc, 512);
  ck_assert_uint_gt(n, 0);
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < i; j++)
      ck_assert_msg(strcmp(doc[i].id, doc[j].id), "%s appears twice in the doc", doc[i].id);
    const row *r = NULL;
    for (size_t k = 0; k < NROWS; k++)
      if (strcmp(rows[k].id, doc[i].id) == 0) r = &rows[k];
    ck_assert_msg(r != NULL, "%s is in docs/errors.md but has no row in tests/test_errors.c",
                  doc[i].id);
    ck_assert_msg(strcmp(r->want, doc[i].msg) == 0, "%s: the doc says\n  %s\nthe test wants\n  %s",
                  doc[i].id, doc[i].msg, r->want);
  }
  for (size_t k = 0; k < NROWS; k++) {
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) found = strcmp(rows[k].id, doc[i].id) == 0;
    ck_assert_msg(found, "%s has a row in tests/test_errors.c but no entry in docs/errors.md",
                  rows[k].id);
    for (size_t j = 0; j < k; j++)
      ck_assert_msg(strcmp(rows[k].id, rows[j].id), "row %s appears twice", rows[k].id);
  }
  for (size_t i = 0; i < n; i++) free(doc[i].msg);
}
END_TEST

/* ------------------------------------------------------ hostile sizes */

/* Every hostile-size row again in a child whose address space is limited
 * to what it holds now plus 256 MiB: a reader or planner that tried to
 * allocate what a file or a shape only declares would fail (or get
 * NULL and say "out of memory") instead of giving the row's message. */
static const char *const hostile[] = {
    "E-shape-5", "E-param-5", "E-compile-1", "E-text-10", "E-npy-4",  "E-npy-7", "E-npy-8",
    "E-npy-9",   "E-npy-10",  "E-st-1",      "E-st-2",    "E-st-8",   "E-st-12",
    "E-compile-2", "E-compile-4", "E-cli-3",
    /* negative dims */
    "E-shape-3", "E-text-11", "E-npy-6", "E-st-9",
};

static size_t vm_size(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long pages = 0;
  if (f) {
    if (fscanf(f, "%lu", &pages) != 1) pages = 0;
    fclose(f);
  }
  return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

START_TEST(hostile_sizes_bounded) {
  for (size_t h = 0; h < sizeof hostile / sizeof *hostile; h++) {
    const row *r = NULL;
    for (size_t k = 0; k < NROWS; k++)
      if (strcmp(rows[k].id, hostile[h]) == 0) r = &rows[k];
    ck_assert_ptr_nonnull(r);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
      struct rlimit lim = {vm_size() + ((size_t)256 << 20), RLIM_INFINITY};
      lim.rlim_max = lim.rlim_cur;
      if (setrlimit(RLIMIT_AS, &lim)) _exit(3);
      got[0] = 0;
      r->provoke();
      _exit(strcmp(got, r->want) == 0 ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "%s under a 256 MiB address-space limit: %s %d", r->id,
                  WIFEXITED(status) ? "exit" : "signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  }
}
END_TEST

/* ---------------------------------------------------------------- main */

/* mkdtemp, not tu_temp_dir: Check's asserts only work inside tests. */
static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/smelt-errors-XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    exit(EXIT_FAILURE);
  }
}

static void unmake_tmpdir(void) { tu_rm_tree(tmpdir); }

int main(void) {
  /* Rows that compile programs pick the interpreter unless they ask. */
  setenv("SMELT_TARGET", "interp", 1);
  make_tmpdir();
  Suite *s = suite_create("errors");
  TCase *tc = tcase_create("catalogue");
  tcase_add_loop_test(tc, entry, 0, (int)NROWS);
  tcase_add_test(tc, doc_agrees);
  tcase_add_test(tc, hostile_sizes_bounded);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  forked = srunner_fork_status(sr) != CK_NOFORK;
  srunner_run_all(sr, getenv("SMELT_ERRORS_PRINT") ? CK_SILENT : CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  unmake_tmpdir();
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
