/* Ahead-of-time objects: the graphs of this directory, compiled by smeltc
 * when the tests are built (tests/aot/meson.build), linked into this
 * program, and checked against the JIT (bit for bit: the same code) and
 * the interpreter (within tolerance), through every function of their
 * headers: programs, the params' initializer, threads, errors and
 * checkpoints. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smelt/smelt.h"

#include "lookup.h"
#include "mlp.h"
#include "thermo.h"
#include "wide.h"

/* ------------------------------------------------------------ helpers */

static smelt_graph *load(const char *name) {
  const char *dir = getenv("SMELT_AOT_GRAPHS");
  ck_assert_msg(dir != NULL, "SMELT_AOT_GRAPHS is not set");
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  static char text[1 << 16];
  size_t n = fread(text, 1, sizeof text, f);
  fclose(f);
  char err[512];
  smelt_graph *g = smelt_graph_parse(text, n, path, err, sizeof err);
  ck_assert_msg(g != NULL, "%s", err);
  return g;
}

/* A program of g compiled for target (the JIT with one thread, or the
 * interpreter). */
static smelt_program *compile(smelt_graph *g, smelt_params *p, const char *name,
                              smelt_target target) {
  smelt_compile_options o = smelt_compile_defaults();
  o.target = target;
  o.num_threads = 1;
  o.cache_dir = NULL;
  smelt_program *pr = smelt_program_compile_named(g, p, name, &o);
  ck_assert_ptr_nonnull(pr);
  ck_assert_msg(smelt_program_error(pr) == NULL, "%s", smelt_program_error(pr));
  return pr;
}

static void bind(smelt_program *pr, const char *name, smelt_dtype dt, int rank,
                 const int64_t *dims, const void *data, size_t nbytes) {
  ck_assert_msg(smelt_program_bind(pr, name, dt, rank, dims, data, nbytes) == 0, "%s",
                smelt_program_error(pr));
}

/* The thermometer's data, or a batch of the MLP's. */
static void bind_thermometer(smelt_program *pr, const float *t_u, const float *t_c) {
  bind(pr, "t_u", SMELT_F32, 1, (const int64_t[]){11}, t_u, 11 * sizeof(float));
  bind(pr, "t_c", SMELT_F32, 1, (const int64_t[]){11}, t_c, 11 * sizeof(float));
}

static void bind_mlp(smelt_program *pr, const float *x, const int64_t *labels) {
  bind(pr, "x", SMELT_F32, 2, (const int64_t[]){MLP_INPUT_X_DIM0, MLP_INPUT_X_DIM1}, x,
       MLP_INPUT_X_BYTES);
  bind(pr, "labels", SMELT_I64, 1, (const int64_t[]){MLP_INPUT_LABELS_DIM0}, labels,
       MLP_INPUT_LABELS_BYTES);
}

static void run(smelt_program *pr) {
  ck_assert_msg(smelt_program_run(pr) == 0, "%s", smelt_program_error(pr));
}

static void read_out(smelt_program *pr, const char *name, smelt_dtype dt, void *data, size_t n) {
  ck_assert_msg(smelt_program_read(pr, name, dt, data, n) == 0, "%s", smelt_program_error(pr));
}

static void read_param(smelt_params *p, const char *name, smelt_dtype dt, void *data, size_t n) {
  ck_assert_msg(smelt_params_read(p, name, dt, data, n) == 0, "%s", smelt_params_error(p));
}

static smelt_dtype dtype_of(const char *name) {
  smelt_dtype dt = SMELT_F32;
  ck_assert(smelt_dtype_parse(name, &dt));
  return dt;
}

/* Bitwise equality of n bytes, naming the first element that differs. */
static void same_bits(const char *what, const void *a, const void *b, size_t n) {
  if (memcmp(a, b, n) == 0) return;
  size_t i = 0;
  while (((const unsigned char *)a)[i] == ((const unsigned char *)b)[i]) i++;
  ck_abort_msg("%s: the bytes differ from byte %zu on", what, i);
}

static void close_f32(const char *what, const float *a, const float *b, size_t n, double tol) {
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(fabs((double)a[i] - (double)b[i]) <= tol * (1 + fabs((double)b[i])),
                  "%s[%zu]: %.9g vs %.9g", what, i, (double)a[i], (double)b[i]);
}

/* Storage with the header's alignment (and a canary after it). */
typedef struct storage {
  unsigned char *params, *arena;
} storage;

static storage new_storage(size_t params_bytes, size_t arena_bytes) {
  storage s;
  s.params = aligned_alloc(64, params_bytes);
  s.arena = aligned_alloc(64, arena_bytes);
  ck_assert(s.params && s.arena);
  memset(s.params, 0xAB, params_bytes);
  return s;
}

static void free_storage(storage *s) {
  free(s->params);
  free(s->arena);
}

/* ------------------------------------------------------- thermometer */

static const float T_C[11] = {0.5f, 14.0f, 15.0f, 28.0f, 11.0f, 8.0f,
                              3.0f, -4.0f, 6.0f, 13.0f, 21.0f};
static const float T_U[11] = {35.7f, 55.9f, 58.2f, 81.9f, 56.3f, 48.9f,
                              33.9f, 21.8f, 48.4f, 60.4f, 68.4f};

/* The thermometer trained by the object and by the JIT: the same losses,
 * w and b bit for bit at every step; the interpreter within tolerance. */
START_TEST(thermometer_matches_jit_and_interpreter) {
  smelt_graph *g = load("../graphs_cli/thermometer.smelt");
  smelt_params *pj = smelt_params_new(g), *pi = smelt_params_new(g);
  smelt_program *jit = compile(g, pj, "train_step", SMELT_TARGET_CPU);
  smelt_program *ref = compile(g, pi, "train_step", SMELT_TARGET_INTERP);
  bind_thermometer(jit, T_U, T_C);
  bind_thermometer(ref, T_U, T_C);

  storage s = new_storage(THERMO_PARAMS_BYTES, THERMO_ARENA_BYTES);
  thermo_ctx ctx = {0};
  ctx.params = s.params;
  ctx.arena = s.arena;
  ck_assert_int_eq(thermo_params_init(&ctx), 0);
  float first = 0;
  for (int step = 0; step < 500; step++) {
    float loss_aot, loss_jit, loss_ref, w, b;
    ck_assert_int_eq(thermo_train_step(&ctx, T_U, T_C, &loss_aot), 0);
    run(jit);
    run(ref);
    read_out(jit, "loss", SMELT_F32, &loss_jit, 4);
    read_out(ref, "loss", SMELT_F32, &loss_ref, 4);
    same_bits("loss", &loss_aot, &loss_jit, 4);
    read_param(pj, "w", SMELT_F32, &w, 4);
    read_param(pj, "b", SMELT_F32, &b, 4);
    same_bits("w", thermo_param_w(s.params), &w, 4);
    same_bits("b", thermo_param_b(s.params), &b, 4);
    close_f32("loss vs interpreter", &loss_aot, &loss_ref, 1, 1e-4);
    if (step == 0) first = loss_aot;
  }
  ck_assert_uint_eq(ctx.step, 500);
  float w, b;
  read_param(pi, "w", SMELT_F32, &w, 4);
  read_param(pi, "b", SMELT_F32, &b, 4);
  close_f32("w vs interpreter", thermo_param_w(s.params), &w, 1, 1e-4);
  close_f32("b vs interpreter", thermo_param_b(s.params), &b, 1, 1e-4);

  /* the evaluation program sees the trained weights */
  smelt_program *pred = compile(g, pj, "predict", SMELT_TARGET_CPU);
  bind(pred, "t_u", SMELT_F32, 1, (const int64_t[]){11}, T_U, sizeof T_U);
  run(pred);
  float tp_aot[11], tp_jit[11], loss;
  read_out(pred, "t_p", SMELT_F32, tp_jit, sizeof tp_jit);
  ck_assert_int_eq(thermo_predict(&ctx, T_U, tp_aot), 0);
  same_bits("t_p", tp_aot, tp_jit, sizeof tp_aot);
  ck_assert_int_eq(thermo_train_step(&ctx, T_U, T_C, &loss), 0);
  ck_assert_float_lt(loss, first / 10);

  smelt_program_free(pred);
  smelt_program_free(jit);
  smelt_program_free(ref);
  smelt_params_free(pj);
  smelt_params_free(pi);
  smelt_graph_free(g);
  free_storage(&s);
}
END_TEST

/* ---------------------------------------------------------------- MLP */

enum { MLP_B = 16, MLP_IN = 20, MLP_CLASSES = 5 };

static void mlp_data(float *x, int64_t *labels, int round) {
  for (int i = 0; i < MLP_B * MLP_IN; i++) x[i] = sinf(0.37f * (float)(i + 13 * round));
  for (int i = 0; i < MLP_B; i++) labels[i] = (i * 7 + round) % MLP_CLASSES;
}

/* Every param's bytes: the object's storage against a smelt_params. */
static void mlp_params_equal(const unsigned char *storage_, smelt_params *p, double tol) {
  for (int i = 0; i < MLP_NUM_PARAMS; i++) {
    const mlp_tensor_info *t = &mlp_params_info[i];
    void *want = malloc(t->bytes);
    read_param(p, t->name, dtype_of(t->dtype), want, t->bytes);
    if (tol == 0)
      same_bits(t->name, storage_ + t->offset, want, t->bytes);
    else
      close_f32(t->name, (const float *)(storage_ + t->offset), want, t->bytes / 4, tol);
    free(want);
  }
}

/* params_init gives what smelt_params_new gives (normal, uniform,
 * constant and zeros initializers). */
START_TEST(mlp_init_matches_params_new) {
  smelt_graph *g = load("mlp.smelt");
  smelt_params *p = smelt_params_new(g);
  ck_assert_ptr_null(smelt_params_error(p));
  storage s = new_storage(MLP_PARAMS_BYTES, MLP_ARENA_BYTES);
  mlp_ctx ctx = {0};
  ctx.params = s.params;
  ctx.arena = s.arena;
  ck_assert_int_eq(mlp_params_init(&ctx), 0);
  ck_assert_uint_eq(ctx.step, 0);
  mlp_params_equal(s.params, p, 0);
  /* the header's table agrees with the graph */
  ck_assert_int_eq(MLP_NUM_PARAMS, 5);
  ck_assert_str_eq(mlp_params_info[MLP_PARAM_W2_MOMENTUM_INDEX].name, "w2.momentum");
  ck_assert_int_eq(MLP_PARAM_W1_DIM0, 20);
  ck_assert_int_eq(MLP_PARAM_W1_DIM1, 32);
  ck_assert_int_eq(MLP_PARAM_W1_OFFSET % MLP_PARAMS_ALIGN, 0);
  ck_assert_int_eq(MLP_PARAM_B1_OFFSET % MLP_PARAMS_ALIGN, 0);
  ck_assert_int_eq(MLP_PARAMS_BYTES % MLP_PARAMS_ALIGN, 0);
  ck_assert_str_eq(MLP_INPUT_LABELS_DTYPE, "i64");
  ck_assert_int_eq(MLP_INPUT_X_DIM1, 20);
  ck_assert_int_eq(MLP_OUTPUT_PROBS_NUMEL, 80);
  ck_assert_str_eq(mlp_outputs_info[MLP_OUTPUT_PRED_INDEX].name, "pred");
  smelt_params_free(p);
  smelt_graph_free(g);
  free_storage(&s);
}
END_TEST

/* Training steps with dropout (fresh draws per run), momentum state and
 * an evaluation program over the same params: the object equals the JIT
 * bit for bit and the interpreter within tolerance. */
START_TEST(mlp_train_matches_jit_and_interpreter) {
  smelt_graph *g = load("mlp.smelt");
  smelt_params *pj = smelt_params_new(g), *pi = smelt_params_new(g);
  smelt_program *jit = compile(g, pj, "train_step", SMELT_TARGET_CPU);
  smelt_program *ref = compile(g, pi, "train_step", SMELT_TARGET_INTERP);
  storage s = new_storage(MLP_PARAMS_BYTES, MLP_ARENA_BYTES);
  mlp_ctx ctx = {0};
  ctx.params = s.params;
  ctx.arena = s.arena;
  ck_assert_int_eq(mlp_params_init(&ctx), 0);
  float x[MLP_B * MLP_IN];
  int64_t labels[MLP_B];
  for (int step = 0; step < 6; step++) {
    mlp_data(x, labels, step);
    bind_mlp(jit, x, labels);
    bind_mlp(ref, x, labels);
    float loss_aot, loss_jit, loss_ref;
    ck_assert_msg(mlp_train_step(&ctx, x, labels, &loss_aot) == 0, "%s", ctx.error);
    run(jit);
    run(ref);
    read_out(jit, "loss", SMELT_F32, &loss_jit, 4);
    read_out(ref, "loss", SMELT_F32, &loss_ref, 4);
    same_bits("loss", &loss_aot, &loss_jit, 4);
    close_f32("loss vs interpreter", &loss_aot, &loss_ref, 1, 1e-4);
    mlp_params_equal(s.params, pj, 0);
    mlp_params_equal(s.params, pi, 1e-4);
  }
  smelt_program *pred = compile(g, pj, "predict", SMELT_TARGET_CPU);
  bind(pred, "x", SMELT_F32, 2, (const int64_t[]){MLP_B, MLP_IN}, x, sizeof x);
  run(pred);
  float probs_aot[MLP_B * MLP_CLASSES], probs_jit[MLP_B * MLP_CLASSES];
  int64_t pred_aot[MLP_B], pred_jit[MLP_B];
  read_out(pred, "probs", SMELT_F32, probs_jit, sizeof probs_jit);
  read_out(pred, "pred", SMELT_I64, pred_jit, sizeof pred_jit);
  uint64_t before = ctx.step;
  ck_assert_int_eq(mlp_predict(&ctx, x, probs_aot, pred_aot), 0);
  ck_assert_uint_eq(ctx.step, before + 1);
  same_bits("probs", probs_aot, probs_jit, sizeof probs_aot);
  same_bits("pred", pred_aot, pred_jit, sizeof pred_aot);
  smelt_program_free(pred);
  smelt_program_free(jit);
  smelt_program_free(ref);
  smelt_params_free(pj);
  smelt_params_free(pi);
  smelt_graph_free(g);
  free_storage(&s);
}
END_TEST

/* ------------------------------------------------------------ threads */

/* A parallel_for on plain threads: n split into pieces at multiples of
 * grain, one thread per piece (at most 4), counting its calls. */
typedef struct piece {
  void (*task)(void *, int64_t, int64_t);
  void *arg;
  int64_t begin, end;
} piece;

static int pool_calls;

static void *run_piece(void *p) {
  piece *q = p;
  q->task(q->arg, q->begin, q->end);
  return NULL;
}

static void test_parallel_for(void *pool, int64_t n, int64_t grain,
                              void (*task)(void *, int64_t, int64_t), void *arg) {
  ck_assert_ptr_eq(pool, &pool_calls);
  ck_assert_int_gt(grain, 0);
  pool_calls++;
  int64_t per = (n + 3) / 4;
  per = (per + grain - 1) / grain * grain;
  pthread_t th[4];
  piece pc[4];
  int k = 0;
  for (int64_t b = 0; b < n; b += per, k++) {
    pc[k] = (piece){task, arg, b, b + per < n ? b + per : n};
    ck_assert_int_eq(pthread_create(&th[k], NULL, run_piece, &pc[k]), 0);
  }
  for (int i = 0; i < k; i++) pthread_join(th[i], NULL);
}

/* The same results on one thread, through the caller's parallel_for, and
 * from the JIT. */
START_TEST(threads_give_the_same_results) {
  enum { R = 256, C = 1024 };
  float *x = malloc(sizeof(float) * R * C);
  for (int i = 0; i < R * C; i++) x[i] = cosf(0.001f * (float)i) * 2 - 0.5f;
  float *y[3], *sm[3], *m[3];
  for (int v = 0; v < 3; v++) {
    y[v] = malloc(WIDE_OUTPUT_Y_BYTES);
    sm[v] = malloc(WIDE_OUTPUT_S_BYTES);
    m[v] = malloc(WIDE_OUTPUT_M_BYTES);
  }
  storage s = new_storage(WIDE_PARAMS_BYTES, WIDE_ARENA_BYTES);
  wide_ctx ctx = {0};
  ctx.params = s.params;
  ctx.arena = s.arena;
  ck_assert_int_eq(wide_params_init(&ctx), 0);
  ck_assert_int_eq(wide_forward(&ctx, x, y[0], sm[0], m[0]), 0);
  ctx.parallel_for = test_parallel_for;
  ctx.pool = &pool_calls;
  ck_assert_int_eq(wide_forward(&ctx, x, y[1], sm[1], m[1]), 0);
  ck_assert_int_ge(pool_calls, 2); /* the elementwise and matmul kernels at least */

  smelt_graph *g = load("wide.smelt");
  smelt_params *p = smelt_params_new(g);
  smelt_program *jit = compile(g, p, "forward", SMELT_TARGET_CPU);
  bind(jit, "x", SMELT_F32, 2, (const int64_t[]){R, C}, x, sizeof(float) * R * C);
  run(jit);
  read_out(jit, "y", SMELT_F32, y[2], WIDE_OUTPUT_Y_BYTES);
  read_out(jit, "s", SMELT_F32, sm[2], WIDE_OUTPUT_S_BYTES);
  read_out(jit, "m", SMELT_F32, m[2], WIDE_OUTPUT_M_BYTES);
  for (int v = 1; v < 3; v++) {
    same_bits("y", y[0], y[v], WIDE_OUTPUT_Y_BYTES);
    same_bits("s", sm[0], sm[v], WIDE_OUTPUT_S_BYTES);
    same_bits("m", m[0], m[v], WIDE_OUTPUT_M_BYTES);
  }
  smelt_program_free(jit);
  smelt_params_free(p);
  smelt_graph_free(g);
  for (int v = 0; v < 3; v++) free(y[v]), free(sm[v]), free(m[v]);
  free(x);
  free_storage(&s);
}
END_TEST

/* ------------------------------------------------------------- errors */

START_TEST(errors_are_reported_and_change_nothing) {
  storage s = new_storage(MLP_PARAMS_BYTES, MLP_ARENA_BYTES);
  mlp_ctx ctx = {0};
  ck_assert_int_eq(mlp_params_init(NULL), -1);
  ck_assert_int_eq(mlp_params_init(&ctx), 1);
  ck_assert_ptr_nonnull(strstr(ctx.error, "ctx->params is NULL"));
  ctx.params = s.params;
  ck_assert_int_eq(mlp_params_init(&ctx), 0);
  ck_assert_ptr_null(ctx.error);
  unsigned char *before = malloc(MLP_PARAMS_BYTES);
  memcpy(before, s.params, MLP_PARAMS_BYTES);
  float x[MLP_B * MLP_IN], loss;
  int64_t labels[MLP_B];
  mlp_data(x, labels, 0);
  /* no arena */
  ck_assert_int_eq(mlp_train_step(&ctx, x, labels, &loss), 1);
  ck_assert_ptr_nonnull(strstr(ctx.error, "train_step: ctx->arena is NULL"));
  ctx.arena = s.arena;
  ck_assert_int_eq(mlp_train_step(&ctx, NULL, labels, &loss), 1);
  ck_assert_str_eq(ctx.error, "train_step: input \"x\" is NULL");
  ck_assert_int_eq(mlp_train_step(&ctx, x, labels, NULL), 1);
  ck_assert_str_eq(ctx.error, "train_step: output \"loss\" is NULL");
  same_bits("params after failed runs", s.params, before, MLP_PARAMS_BYTES);
  ck_assert_int_eq(mlp_train_step(&ctx, x, labels, &loss), 0);
  ck_assert_ptr_null(ctx.error);
  free(before);
  free_storage(&s);

  /* an index out of range, found by the kernel */
  storage t = new_storage(LOOKUP_PARAMS_BYTES, LOOKUP_ARENA_BYTES);
  lookup_ctx lc = {0};
  lc.params = t.params;
  lc.arena = t.arena;
  ck_assert_int_eq(lookup_params_init(&lc), 0);
  float got[2];
  ck_assert_int_eq(lookup_lookup(&lc, (const int64_t[]){2, 0}, got), 0);
  ck_assert_float_eq(got[0], 3);
  ck_assert_float_eq(got[1], 1);
  ck_assert_int_eq(lookup_lookup(&lc, (const int64_t[]){1, 7}, got), 1);
  ck_assert_msg(strstr(lc.error, "lookup: gather: an index is out of range") != NULL, "%s",
                lc.error);
  ck_assert_int_eq(lc.bad_index, 7);
  ck_assert_int_eq(lc.bad_bound, 3);
  free_storage(&t);
}
END_TEST

/* -------------------------------------------------------- checkpoints */

/* The header's save and load against smelt_params_save / _load. */
START_TEST(checkpoints_round_trip_with_libsmelt) {
  char dir[] = "/tmp/smelt-aot-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char a[256], b[256], err[512];
  snprintf(a, sizeof a, "%s/aot.safetensors", dir);
  snprintf(b, sizeof b, "%s/lib.safetensors", dir);
  storage s = new_storage(MLP_PARAMS_BYTES, MLP_ARENA_BYTES);
  mlp_ctx ctx = {0};
  ctx.params = s.params;
  ctx.arena = s.arena;
  ck_assert_int_eq(mlp_params_init(&ctx), 0);
  float x[MLP_B * MLP_IN], loss;
  int64_t labels[MLP_B];
  mlp_data(x, labels, 3);
  ck_assert_int_eq(mlp_train_step(&ctx, x, labels, &loss), 0);
  ck_assert_msg(mlp_params_save(s.params, a, err, sizeof err) == 0, "%s", err);

  /* libsmelt loads what the object saved */
  smelt_graph *g = load("mlp.smelt");
  smelt_params *p = smelt_params_new(g);
  ck_assert_msg(smelt_params_load(p, a) == 0, "%s", smelt_params_error(p));
  mlp_params_equal(s.params, p, 0);

  /* and the object loads what libsmelt saved (the initial values) */
  smelt_params_reset(p);
  ck_assert_msg(smelt_params_save(p, b) == 0, "%s", smelt_params_error(p));
  ck_assert_msg(mlp_params_load(s.params, b, err, sizeof err) == 0, "%s", err);
  mlp_params_equal(s.params, p, 0);

  /* a file of another model is refused, naming what is wrong */
  storage t = new_storage(THERMO_PARAMS_BYTES, THERMO_ARENA_BYTES);
  ck_assert_int_eq(thermo_params_load(t.params, a, err, sizeof err), -1);
  ck_assert_msg(strstr(err, a) != NULL, "%s", err);
  free_storage(&t);

  unlink(a);
  unlink(b);
  rmdir(dir);
  smelt_params_free(p);
  smelt_graph_free(g);
  free_storage(&s);
}
END_TEST

static Suite *aot_suite(void) {
  Suite *s = suite_create("aot");
  TCase *tc = tcase_create("aot");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, thermometer_matches_jit_and_interpreter);
  tcase_add_test(tc, mlp_init_matches_params_new);
  tcase_add_test(tc, mlp_train_matches_jit_and_interpreter);
  tcase_add_test(tc, threads_give_the_same_results);
  tcase_add_test(tc, errors_are_reported_and_change_nothing);
  tcase_add_test(tc, checkpoints_round_trip_with_libsmelt);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(aot_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
