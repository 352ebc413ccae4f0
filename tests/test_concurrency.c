/* Concurrency: run contexts (several threads running one compiled program,
 * each with its own smelt_context), params shared by concurrent runs (the
 * read/write lock: no run sees half-applied updates), compilation from
 * several threads (one graph and different graphs, with a shared disk
 * cache and dumps), and several processes compiling one graph into one
 * fresh cache directory at once, then a damaged entry recovered from.
 * Results are checked bit for bit against single-threaded runs of the
 * same target. Every case runs on the target under test ($SMELT_TEST_TARGET:
 * interp, or cpu as concurrency-cpu), the cache case on the cpu target
 * only (the interpreter has no compiled code to cache). scripts/test runs
 * both under ThreadSanitizer (phase tsan) and the interp half under
 * valgrind. */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NTHREADS 4
#define NINPUTS 6 /* input sets of the MLP */
#define BATCH 64
#define FEATURES 6
#define CLASSES 4
#define ROUNDS 30 /* runs per thread */
#define STEPS 6   /* training steps per thread */

/* ----------------------------------------------------------- the model */

/* A small MLP: x[8,6] -> relu(x w1 + b1) (with dropout when training) ->
 * logits[8,4] -> cross entropy against labels[8], SGD with momentum, and
 * a randn output that shows the draw numbering. */
typedef struct mlp {
  smelt_graph *g;
  smelt_node updates[SMELT_OPTIM_MAX_UPDATES(4)];
  int nupdates;
} mlp;

/* Without Check (the cache test's child processes run no test): the
 * graph's error or NULL. */
static const char *mlp_build_plain(mlp *m, int hidden, uint64_t seed) {
  smelt_graph *g = m->g = smelt_graph_new();
  if (!g) return "out of memory";
  smelt_node x = smelt_input(g, "x", SMELT_F32, 2, TU_DIMS(BATCH, FEATURES));
  smelt_node y = smelt_input(g, "labels", SMELT_I64, 1, TU_DIMS(BATCH));
  smelt_node w[4] = {
      smelt_param(g, "w1", SMELT_F32, 2, TU_DIMS(FEATURES, hidden),
                  smelt_init_normal(0, 0.4, seed)),
      smelt_param(g, "b1", SMELT_F32, 1, TU_DIMS(hidden), smelt_init_uniform(-0.1, 0.1, seed + 1)),
      smelt_param(g, "w2", SMELT_F32, 2, TU_DIMS(hidden, CLASSES),
                  smelt_init_normal(0, 0.4, seed + 2)),
      smelt_param(g, "b2", SMELT_F32, 1, TU_DIMS(CLASSES), smelt_init_zeros()),
  };
  smelt_node h = smelt_relu(g, smelt_add(g, smelt_matmul(g, x, w[0]), w[1]));
  h = smelt_dropout(g, h, 0.25, seed + 3, true);
  smelt_node logits = smelt_add(g, smelt_matmul(g, h, w[2]), w[3]);
  smelt_node loss = smelt_cross_entropy(g, logits, y);
  smelt_output(g, "logits", logits);
  smelt_output(g, "loss", loss);
  smelt_output(g, "noise", smelt_randn(g, SMELT_F32, 1, TU_DIMS(5), seed + 4));
  smelt_node grads[4];
  smelt_grad(g, loss, 4, w, grads);
  smelt_sgd_options o = smelt_sgd_defaults(0.1);
  o.momentum = 0.9;
  m->nupdates = smelt_sgd(g, NULL, 4, w, grads, &o, m->updates);
  return smelt_graph_error(g);
}

static void mlp_build(mlp *m, int hidden, uint64_t seed) {
  const char *err = mlp_build_plain(m, hidden, seed);
  ck_assert_msg(!err, "building the MLP: %s", err);
  ck_assert_int_gt(m->nupdates, 0);
}

/* Input set i (deterministic). */
static void mlp_inputs(int i, float x[BATCH * FEATURES], int64_t labels[BATCH]) {
  uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
  for (int k = 0; k < BATCH * FEATURES; k++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x[k] = (float)((int)(s >> 40) % 2001 - 1000) / 400.0f;
  }
  for (int k = 0; k < BATCH; k++) labels[k] = (k * 7 + i) % CLASSES;
}

/* What one run gives. */
typedef struct result {
  float logits[BATCH * CLASSES];
  float loss;
  float noise[5];
} result;

static const char *const EVAL_OUTS[] = {"logits", "loss", "noise"};
static const char *const TRAIN_OUTS[] = {"loss", "noise"};

static smelt_compile_options options_for(smelt_target t, const char *cache_dir) {
  smelt_compile_options o = smelt_compile_defaults();
  o.target = t;
  o.cache_dir = cache_dir;
  o.dump = NULL;
  o.dump_dir = NULL;
  o.num_threads = 2;
  return o;
}

/* The target under test: $SMELT_TEST_TARGET (interp when unset), as the
 * other suites: meson runs this suite as `concurrency` (interp, also under
 * valgrind) and, built with LLVM, as `concurrency-cpu`. */
static smelt_target test_target(void) {
  const char *t = getenv("SMELT_TEST_TARGET");
  return t && strcmp(t, "cpu") == 0 ? SMELT_TARGET_CPU : SMELT_TARGET_INTERP;
}

/* ------------------------------------------------ runs through contexts */

/* Binds input set i, runs, reads (eval: logits, loss, noise; else loss and
 * noise). Returns NULL or the error message (the context's). */
static const char *ctx_step(smelt_context *c, int i, bool eval, result *r) {
  float x[BATCH * FEATURES];
  int64_t labels[BATCH];
  mlp_inputs(i, x, labels);
  memset(r, 0, sizeof *r);
  if (smelt_context_bind(c, "x", SMELT_F32, 2, TU_DIMS(BATCH, FEATURES), x, sizeof x) ||
      smelt_context_bind(c, "labels", SMELT_I64, 1, TU_DIMS(BATCH), labels, sizeof labels) ||
      smelt_context_run(c) ||
      (eval && smelt_context_read(c, "logits", SMELT_F32, r->logits, sizeof r->logits)) ||
      smelt_context_read(c, "loss", SMELT_F32, &r->loss, sizeof r->loss) ||
      smelt_context_read(c, "noise", SMELT_F32, r->noise, sizeof r->noise))
    return smelt_context_error(c);
  return NULL;
}

/* The same through the program's own (default) context. */
static void program_step(smelt_program *pr, int i, bool eval, result *r) {
  float x[BATCH * FEATURES];
  int64_t labels[BATCH];
  mlp_inputs(i, x, labels);
  memset(r, 0, sizeof *r);
  ck_assert_int_eq(smelt_program_bind(pr, "x", SMELT_F32, 2, TU_DIMS(BATCH, FEATURES), x,
                                      sizeof x), 0);
  ck_assert_int_eq(smelt_program_bind(pr, "labels", SMELT_I64, 1, TU_DIMS(BATCH), labels,
                                      sizeof labels), 0);
  ck_assert_msg(smelt_program_run(pr) == 0, "run: %s", smelt_program_error(pr));
  if (eval)
    ck_assert_int_eq(smelt_program_read(pr, "logits", SMELT_F32, r->logits, sizeof r->logits), 0);
  ck_assert_int_eq(smelt_program_read(pr, "loss", SMELT_F32, &r->loss, sizeof r->loss), 0);
  ck_assert_int_eq(smelt_program_read(pr, "noise", SMELT_F32, r->noise, sizeof r->noise), 0);
}

/* A thread's verdict: Check's assertions belong to the test's thread, so
 * threads write what went wrong here and the test asserts afterwards. */
typedef struct verdict {
  char msg[512];
} verdict;

#define VFAIL(v, ...)                                                                      \
  do {                                                                                     \
    if (!(v)->msg[0]) snprintf((v)->msg, sizeof (v)->msg, __VA_ARGS__);                    \
  } while (0)

/* ---------------------------------------------------- eval: one program */

typedef struct eval_job {
  smelt_program *pr;
  const result *ref;      /* [NINPUTS] outputs per input set */
  const result *ref_draw; /* [ROUNDS] noise of a fresh context's run r */
  int thread;
  verdict v;
} eval_job;

static void *eval_thread(void *arg) {
  eval_job *j = arg;
  smelt_context *c = smelt_context_new(j->pr);
  if (!c) {
    VFAIL(&j->v, "smelt_context_new: out of memory");
    return NULL;
  }
  for (int r = 0; r < ROUNDS && !j->v.msg[0]; r++) {
    int i = (j->thread * 5 + r) % NINPUTS;
    result got;
    const char *err = ctx_step(c, i, true, &got);
    if (err) VFAIL(&j->v, "round %d: %s", r, err);
    else if (memcmp(got.logits, j->ref[i].logits, sizeof got.logits) ||
             memcmp(&got.loss, &j->ref[i].loss, sizeof got.loss))
      VFAIL(&j->v, "round %d, input %d: outputs differ from the single-threaded run (loss %.9g, "
                   "want %.9g)", r, i, got.loss, j->ref[i].loss);
    /* draws count per context: run r of every context draws the same */
    else if (memcmp(got.noise, j->ref_draw[r].noise, sizeof got.noise))
      VFAIL(&j->v, "round %d: the noise is not that of draw %d", r, r);
  }
  if (!j->v.msg[0] && smelt_context_draw(c) != ROUNDS)
    VFAIL(&j->v, "draw number %llu after %d runs", (unsigned long long)smelt_context_draw(c),
          ROUNDS);
  smelt_context_free(c);
  return NULL;
}

/* NTHREADS threads, each with its own context, run one evaluation program
 * on different inputs; every output equals the single-threaded run's. */
START_TEST(eval_program_from_threads) {
  smelt_target target = test_target();
  mlp m;
  mlp_build(&m, 512, 11); /* wide enough that runs overlap in time */
  smelt_params *p = smelt_params_new(m.g);
  smelt_compile_options o = options_for(target, NULL);
  smelt_program *pr = smelt_program_compile_eval(m.g, p, 3, EVAL_OUTS, &o);
  ck_assert_msg(!smelt_program_error(pr), "%s", smelt_program_error(pr));
  /* the reference: the program's own context, then one context's runs */
  result ref[NINPUTS], ref_draw[ROUNDS];
  for (int i = 0; i < NINPUTS; i++) program_step(pr, i, true, &ref[i]);
  smelt_context *c = smelt_context_new(pr);
  ck_assert_ptr_nonnull(c);
  ck_assert_uint_eq(smelt_context_draw(c), 0);
  for (int r = 0; r < ROUNDS; r++) {
    const char *err = ctx_step(c, 0, true, &ref_draw[r]);
    ck_assert_msg(!err, "%s", err);
    /* a context computes what the program computes */
    ck_assert_int_eq(memcmp(ref_draw[r].logits, ref[0].logits, sizeof ref[0].logits), 0);
  }
  ck_assert_int_ne(memcmp(ref_draw[0].noise, ref_draw[1].noise, sizeof ref_draw[0].noise), 0);
  /* set_draw goes back to an earlier draw */
  result again;
  ck_assert_int_eq(smelt_context_set_draw(c, 3), 0);
  ck_assert_ptr_null(ctx_step(c, 0, true, &again));
  ck_assert_int_eq(memcmp(again.noise, ref_draw[3].noise, sizeof again.noise), 0);
  smelt_context_free(c);

  pthread_t th[NTHREADS];
  eval_job jobs[NTHREADS];
  for (int t = 0; t < NTHREADS; t++) {
    jobs[t] = (eval_job){.pr = pr, .ref = ref, .ref_draw = ref_draw, .thread = t};
    ck_assert_int_eq(pthread_create(&th[t], NULL, eval_thread, &jobs[t]), 0);
  }
  /* the program's own context runs meanwhile, on this thread */
  for (int r = 0; r < ROUNDS; r++) {
    result got;
    program_step(pr, r % NINPUTS, true, &got);
    ck_assert_msg(!memcmp(got.logits, ref[r % NINPUTS].logits, sizeof got.logits),
                  "%s: the program's own context, run %d: logits differ from the "
                  "single-threaded run's", smelt_target_name(target), r);
  }
  for (int t = 0; t < NTHREADS; t++) ck_assert_int_eq(pthread_join(th[t], NULL), 0);
  for (int t = 0; t < NTHREADS; t++)
    ck_assert_msg(!jobs[t].v.msg[0], "%s, thread %d: %s", smelt_target_name(target), t,
                  jobs[t].v.msg);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(m.g);
}
END_TEST

/* ------------------------------------ training: separate params, threads */

typedef struct train_job {
  const mlp *m;
  smelt_target target;
  const result *ref; /* [STEPS] */
  const float *ref_w2; /* final w2 */
  size_t w2_bytes;
  verdict v;
} train_job;

/* Compiles its own training program on its own params (concurrently with
 * the other threads, from one graph) and trains through a context. */
static void *train_thread(void *arg) {
  train_job *j = arg;
  smelt_params *p = smelt_params_new(j->m->g);
  smelt_compile_options o = options_for(j->target, NULL);
  smelt_program *pr = p ? smelt_program_compile(j->m->g, p, 2, TRAIN_OUTS, j->m->nupdates,
                                                j->m->updates, &o)
                        : NULL;
  smelt_context *c = pr ? smelt_context_new(pr) : NULL;
  float *w2 = malloc(j->w2_bytes);
  if (!p || !pr || !c || !w2) VFAIL(&j->v, "out of memory");
  else if (smelt_program_error(pr)) VFAIL(&j->v, "compile: %s", smelt_program_error(pr));
  for (int s = 0; s < STEPS && !j->v.msg[0]; s++) {
    result got;
    const char *err = ctx_step(c, s % NINPUTS, false, &got);
    if (err) VFAIL(&j->v, "step %d: %s", s, err);
    else if (memcmp(&got.loss, &j->ref[s].loss, sizeof got.loss) ||
             memcmp(got.noise, j->ref[s].noise, sizeof got.noise))
      VFAIL(&j->v, "step %d: loss %.9g, the single-threaded run's %.9g", s, got.loss,
            j->ref[s].loss);
  }
  if (!j->v.msg[0]) {
    if (smelt_params_read(p, "w2", SMELT_F32, w2, j->w2_bytes))
      VFAIL(&j->v, "params_read: %s", smelt_params_error(p));
    else if (memcmp(w2, j->ref_w2, j->w2_bytes))
      VFAIL(&j->v, "the trained w2 differs from the single-threaded run's");
  }
  free(w2);
  smelt_context_free(c);
  smelt_program_free(pr);
  smelt_params_free(p);
  return NULL;
}

/* NTHREADS threads train on their own params (programs compiled at once
 * from one graph), each as the single-threaded reference does, dropout
 * included: the draws count per context as they count per fresh params. */
START_TEST(training_from_threads) {
  smelt_target target = test_target();
  mlp m;
  mlp_build(&m, 16, 21);
  smelt_params *p = smelt_params_new(m.g);
  smelt_compile_options o = options_for(target, NULL);
  smelt_program *pr =
      smelt_program_compile(m.g, p, 2, TRAIN_OUTS, m.nupdates, m.updates, &o);
  ck_assert_msg(!smelt_program_error(pr), "%s", smelt_program_error(pr));
  result ref[STEPS];
  for (int s = 0; s < STEPS; s++) program_step(pr, s % NINPUTS, false, &ref[s]);
  ck_assert_int_ne(memcmp(&ref[0].loss, &ref[STEPS - 1].loss, sizeof(float)), 0);
  float w2[16 * CLASSES];
  ck_assert_int_eq(smelt_params_read(p, "w2", SMELT_F32, w2, sizeof w2), 0);

  pthread_t th[NTHREADS];
  train_job jobs[NTHREADS];
  for (int t = 0; t < NTHREADS; t++) {
    jobs[t] = (train_job){.m = &m, .target = target, .ref = ref, .ref_w2 = w2,
                          .w2_bytes = sizeof w2};
    ck_assert_int_eq(pthread_create(&th[t], NULL, train_thread, &jobs[t]), 0);
  }
  for (int t = 0; t < NTHREADS; t++) ck_assert_int_eq(pthread_join(th[t], NULL), 0);
  for (int t = 0; t < NTHREADS; t++)
    ck_assert_msg(!jobs[t].v.msg[0], "%s, thread %d: %s", smelt_target_name(target), t,
                  jobs[t].v.msg);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(m.g);
}
END_TEST

/* ------------------------------- shared params: updates are never torn */

#define COUNTER 4096 /* elements of the counter param */
#define BUMPS 40     /* runs per updating thread */

typedef struct counter_job {
  smelt_program *pr;
  bool updates;
  int runs;
  int *seen; /* updating threads: the counter before each run */
  verdict v;
} counter_job;

static void *counter_thread(void *arg) {
  counter_job *j = arg;
  smelt_context *c = smelt_context_new(j->pr);
  float *val = malloc(COUNTER * sizeof *val);
  if (!c || !val) VFAIL(&j->v, "out of memory");
  float last = -1;
  for (int r = 0; r < j->runs && !j->v.msg[0]; r++) {
    if (smelt_context_run(c) ||
        smelt_context_read(c, "value", SMELT_F32, val, COUNTER * sizeof *val)) {
      VFAIL(&j->v, "run %d: %s", r, smelt_context_error(c));
      break;
    }
    for (int k = 1; k < COUNTER; k++)
      if (val[k] != val[0]) {
        VFAIL(&j->v, "run %d saw a half-applied update: [0] %g, [%d] %g", r, val[0], k, val[k]);
        break;
      }
    if (val[0] < last) VFAIL(&j->v, "run %d: the counter went back from %g to %g", r, last, val[0]);
    last = val[0];
    if (j->updates) j->seen[r] = (int)val[0];
  }
  free(val);
  smelt_context_free(c);
  return NULL;
}

/* One params store, a program that adds 1 to every element of a counter
 * and an evaluation program that reads it, run from several threads at
 * once through contexts: every reader sees all elements equal, and the
 * updating runs see each count exactly once (they hold the write lock). */
START_TEST(shared_params_updates_are_atomic) {
  smelt_target target = test_target();
  smelt_graph *g = TU_GRAPH();
  smelt_node cnt = smelt_param(g, "count", SMELT_F32, 1, TU_DIMS(COUNTER), smelt_init_zeros());
  smelt_node bump = smelt_assign(g, cnt, smelt_add(g, cnt, smelt_scalar(g, 1)));
  smelt_output(g, "value", smelt_mul(g, cnt, smelt_scalar(g, 1)));
  TU_ASSERT_OK(g);
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = options_for(target, NULL);
  const char *outs[] = {"value"};
  smelt_program *train = smelt_program_compile(g, p, 1, outs, 1, &bump, &o);
  smelt_program *eval = smelt_program_compile_eval(g, p, 1, outs, &o);
  ck_assert_msg(!smelt_program_error(train), "%s", smelt_program_error(train));
  ck_assert_msg(!smelt_program_error(eval), "%s", smelt_program_error(eval));
  enum { NUPD = 2, NREAD = 2 };
  int seen[NUPD][BUMPS];
  pthread_t th[NUPD + NREAD];
  counter_job jobs[NUPD + NREAD];
  for (int t = 0; t < NUPD + NREAD; t++) {
    bool upd = t < NUPD;
    jobs[t] = (counter_job){.pr = upd ? train : eval, .updates = upd, .runs = BUMPS,
                            .seen = upd ? seen[t] : NULL};
    ck_assert_int_eq(pthread_create(&th[t], NULL, counter_thread, &jobs[t]), 0);
  }
  /* params calls take the lock too: a read here is never torn either */
  float *val = malloc(COUNTER * sizeof *val);
  for (int r = 0; r < 10; r++) {
    ck_assert_int_eq(smelt_params_read(p, "count", SMELT_F32, val, COUNTER * sizeof *val), 0);
    for (int k = 1; k < COUNTER; k++)
      TU_CHECK(val[k] == val[0], "params_read saw a half-applied update");
  }
  for (int t = 0; t < NUPD + NREAD; t++) ck_assert_int_eq(pthread_join(th[t], NULL), 0);
  for (int t = 0; t < NUPD + NREAD; t++)
    ck_assert_msg(!jobs[t].v.msg[0], "%s, thread %d: %s", smelt_target_name(target), t,
                  jobs[t].v.msg);
  /* every count from 0 to NUPD*BUMPS-1 seen by exactly one updating run */
  int hits[NUPD * BUMPS] = {0};
  for (int t = 0; t < NUPD; t++)
    for (int r = 0; r < BUMPS; r++) {
      ck_assert_int_ge(seen[t][r], 0);
      ck_assert_int_lt(seen[t][r], NUPD * BUMPS);
      hits[seen[t][r]]++;
    }
  for (int k = 0; k < NUPD * BUMPS; k++)
    ck_assert_msg(hits[k] == 1, "%s: count %d seen %d times", smelt_target_name(target),
                  k, hits[k]);
  ck_assert_int_eq(smelt_params_read(p, "count", SMELT_F32, val, COUNTER * sizeof *val), 0);
  ck_assert_float_eq(val[0], NUPD * BUMPS);
  free(val);
  smelt_program_free(train);
  smelt_program_free(eval);
  smelt_params_free(p);
  smelt_graph_free(g);
}
END_TEST

/* Context errors: the program's checks, and programs that cannot run. */
START_TEST(context_errors) {
  mlp m;
  mlp_build(&m, 8, 5);
  smelt_params *p = smelt_params_new(m.g);
  smelt_compile_options o = options_for(SMELT_TARGET_INTERP, NULL);
  smelt_program *pr = smelt_program_compile_eval(m.g, p, 3, EVAL_OUTS, &o);
  smelt_context *c = smelt_context_new(pr);
  ck_assert_ptr_nonnull(c);
  ck_assert_ptr_null(smelt_context_error(c));
  float x[BATCH * FEATURES] = {0};
  ck_assert_int_eq(smelt_context_bind(c, "x", SMELT_F32, 2, TU_DIMS(BATCH, 5), x, sizeof x), -1);
  ck_assert_ptr_nonnull(strstr(smelt_context_error(c), "shape"));
  ck_assert_int_eq(smelt_context_run(c), -1);
  ck_assert_ptr_nonnull(strstr(smelt_context_error(c), "input \"x\" is not bound"));
  float loss;
  ck_assert_int_eq(smelt_context_read(c, "loss", SMELT_F32, &loss, sizeof loss), -1);
  ck_assert_ptr_nonnull(strstr(smelt_context_error(c), "smelt_context_run has not succeeded"));
  ck_assert_int_eq(smelt_context_read(c, "nope", SMELT_F32, &loss, sizeof loss), -1);
  ck_assert_ptr_nonnull(strstr(smelt_context_error(c), "\"nope\" is not an output"));
  /* the program's own context is not the context's */
  ck_assert_ptr_null(smelt_program_error(pr));
  ck_assert_int_eq(smelt_program_read(pr, "loss", SMELT_F32, &loss, sizeof loss), -1);
  ck_assert_ptr_nonnull(strstr(smelt_program_error(pr), "smelt_program_run has not succeeded"));
  smelt_context_free(c);
  smelt_program_free(pr);

  /* a failed program: every call says why */
  pr = smelt_program_compile_eval(m.g, p, 1, (const char *[]){"nope"}, &o);
  ck_assert_ptr_nonnull(smelt_program_error(pr));
  c = smelt_context_new(pr);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(smelt_context_run(c), -1);
  ck_assert_ptr_nonnull(strstr(smelt_context_error(c), "the program could not be created"));
  ck_assert_ptr_nonnull(strstr(smelt_context_error(c), "unknown output \"nope\""));
  ck_assert_int_eq(smelt_context_set_draw(c, 1), -1);
  smelt_context_free(c);
  smelt_program_free(pr);
  c = smelt_context_new(NULL);
  ck_assert_int_eq(smelt_context_run(c), -1);
  ck_assert_ptr_nonnull(strstr(smelt_context_error(c), "the program is NULL"));
  smelt_context_free(c);
  smelt_context_free(NULL);
  ck_assert_int_eq(smelt_context_run(NULL), -1);
  ck_assert_str_eq(smelt_context_error(NULL), "context is NULL");
  smelt_params_free(p);
  smelt_graph_free(m.g);
}
END_TEST

/* ------------------------------------------------ compiling from threads */

static int count_suffix(const char *dir, const char *suffix) {
  DIR *d = opendir(dir);
  int n = 0;
  if (!d) return 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name), s = strlen(suffix);
    if (e->d_name[0] != '.' && l >= s && strcmp(e->d_name + l - s, suffix) == 0) n++;
  }
  closedir(d);
  return n;
}

/* A graph of its own per thread: sum over rows of tanh(x w)^2, w[6,hidden]
 * (NULL when out of memory; errors on the graph). */
static smelt_graph *tanh_graph(int hidden) {
  smelt_graph *g = smelt_graph_new();
  if (!g) return NULL;
  smelt_node x = smelt_input(g, "x", SMELT_F32, 2, TU_DIMS(BATCH, FEATURES));
  smelt_node w = smelt_param(g, "w", SMELT_F32, 2, TU_DIMS(FEATURES, hidden),
                             smelt_init_normal(0, 0.5, (uint64_t)hidden));
  smelt_node h = smelt_tanh(g, smelt_matmul(g, x, w));
  smelt_output(g, "logits", smelt_sum(g, smelt_mul(g, h, h), 1, (int[]){1}, false));
  return g;
}

typedef struct compile_job {
  smelt_target target;
  const mlp *shared; /* the MLP to compile, or NULL: a tanh_graph of its own */
  int hidden;        /* its tanh_graph's hidden size */
  const char *cache_dir, *dump_dir;
  const result *ref; /* the single-threaded results for input set 0 */
  verdict v;
} compile_job;

static void *compile_thread(void *arg) {
  compile_job *j = arg;
  smelt_graph *g = j->shared ? j->shared->g : NULL;
  smelt_graph *made = NULL;
  if (!g) {
    made = g = tanh_graph(j->hidden);
    if (g && smelt_graph_error(g)) VFAIL(&j->v, "building: %s", smelt_graph_error(g));
  }
  smelt_params *p = g ? smelt_params_new(g) : NULL;
  smelt_compile_options o = options_for(j->target, j->cache_dir);
  if (j->dump_dir) {
    o.dump = "graph,kernels";
    o.dump_dir = j->dump_dir;
  }
  smelt_program *pr =
      p ? smelt_program_compile_eval(g, p, made ? 1 : 3, EVAL_OUTS, &o) : NULL;
  smelt_context *c = pr ? smelt_context_new(pr) : NULL;
  if (!c) VFAIL(&j->v, "out of memory");
  else if (smelt_program_error(pr)) VFAIL(&j->v, "compile: %s", smelt_program_error(pr));
  float x[BATCH * FEATURES];
  int64_t labels[BATCH];
  mlp_inputs(0, x, labels);
  result got;
  memset(&got, 0, sizeof got);
  if (j->v.msg[0]) {
    /* nothing to run */
  } else if (made) {
    if (smelt_context_bind(c, "x", SMELT_F32, 2, TU_DIMS(BATCH, FEATURES), x, sizeof x) ||
        smelt_context_run(c) ||
        smelt_context_read(c, "logits", SMELT_F32, got.logits, BATCH * sizeof(float)))
      VFAIL(&j->v, "%s", smelt_context_error(c));
    else if (memcmp(got.logits, j->ref->logits, BATCH * sizeof(float)))
      VFAIL(&j->v, "graph of hidden size %d: results differ from the single-threaded run's",
            j->hidden);
  } else {
    const char *err = ctx_step(c, 0, true, &got);
    if (err) VFAIL(&j->v, "%s", err);
    else if (memcmp(got.logits, j->ref->logits, sizeof got.logits) ||
             memcmp(&got.loss, &j->ref->loss, sizeof got.loss))
      VFAIL(&j->v, "results differ from the single-threaded run's");
  }
  smelt_context_free(c);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(made);
  return NULL;
}

/* The single-threaded result of a tanh_graph. */
static void own_graph_reference(smelt_target target, int hidden, result *r) {
  smelt_graph *g = tanh_graph(hidden);
  ck_assert_ptr_nonnull(g);
  TU_ASSERT_OK(g);
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = options_for(target, NULL);
  smelt_program *pr = smelt_program_compile_eval(g, p, 1, EVAL_OUTS, &o);
  ck_assert_msg(!smelt_program_error(pr), "%s", smelt_program_error(pr));
  float xd[BATCH * FEATURES];
  int64_t labels[BATCH];
  mlp_inputs(0, xd, labels);
  memset(r, 0, sizeof *r);
  ck_assert_int_eq(smelt_program_bind(pr, "x", SMELT_F32, 2, TU_DIMS(BATCH, FEATURES), xd,
                                      sizeof xd), 0);
  ck_assert_int_eq(smelt_program_run(pr), 0);
  ck_assert_int_eq(smelt_program_read(pr, "logits", SMELT_F32, r->logits,
                                      BATCH * sizeof(float)), 0);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}

/* NTHREADS threads compile at once: first one shared graph (into one
 * fresh disk cache), then each its own graph (with dumps into one
 * directory); every program computes what a single-threaded one does. */
START_TEST(compile_from_threads) {
  smelt_target target = test_target();
  bool cpu = target == SMELT_TARGET_CPU;
  mlp m;
  mlp_build(&m, 12, 31);
  smelt_params *p = smelt_params_new(m.g);
  smelt_compile_options o = options_for(target, NULL);
  smelt_program *pr = smelt_program_compile_eval(m.g, p, 3, EVAL_OUTS, &o);
  ck_assert_msg(!smelt_program_error(pr), "%s", smelt_program_error(pr));
  result ref;
  program_step(pr, 0, true, &ref);
  smelt_program_free(pr);

  char *cache = tu_temp_dir("conc-cache");
  pthread_t th[NTHREADS];
  compile_job jobs[NTHREADS];
  for (int t = 0; t < NTHREADS; t++) {
    jobs[t] = (compile_job){.target = target, .shared = &m, .cache_dir = cache, .ref = &ref};
    ck_assert_int_eq(pthread_create(&th[t], NULL, compile_thread, &jobs[t]), 0);
  }
  for (int t = 0; t < NTHREADS; t++) ck_assert_int_eq(pthread_join(th[t], NULL), 0);
  for (int t = 0; t < NTHREADS; t++)
    ck_assert_msg(!jobs[t].v.msg[0], "%s, same graph, thread %d: %s",
                  smelt_target_name(target), t, jobs[t].v.msg);
  if (cpu) {
    /* the threads' entries are whole: a compile now is all hits */
    ck_assert_int_gt(count_suffix(cache, ".o"), 0);
    o.cache_dir = cache;
    pr = smelt_program_compile_eval(m.g, p, 3, EVAL_OUTS, &o);
    smelt_program_stats st;
    ck_assert_int_eq(smelt_program_get_stats(pr, &st), 0);
    ck_assert_msg(st.from_cache, "the cache the threads wrote did not serve a compile");
    result got;
    program_step(pr, 0, true, &got); /* draw 1 of p: the noise differs */
    ck_assert_int_eq(memcmp(got.logits, ref.logits, sizeof got.logits), 0);
    ck_assert_int_eq(memcmp(&got.loss, &ref.loss, sizeof got.loss), 0);
    smelt_program_free(pr);
  }
  tu_rm_tree(cache);
  free(cache);

  result refs[NTHREADS];
  for (int t = 0; t < NTHREADS; t++) own_graph_reference(target, 5 + 3 * t, &refs[t]);
  char *dumps = tu_temp_dir("conc-dumps");
  for (int t = 0; t < NTHREADS; t++) {
    jobs[t] = (compile_job){.target = target, .hidden = 5 + 3 * t, .dump_dir = dumps,
                            .ref = &refs[t]};
    ck_assert_int_eq(pthread_create(&th[t], NULL, compile_thread, &jobs[t]), 0);
  }
  for (int t = 0; t < NTHREADS; t++) ck_assert_int_eq(pthread_join(th[t], NULL), 0);
  for (int t = 0; t < NTHREADS; t++)
    ck_assert_msg(!jobs[t].v.msg[0], "%s, own graphs, thread %d: %s",
                  smelt_target_name(target), t, jobs[t].v.msg);
  /* one numbered file per program and stage: no two programs share one */
  if (cpu) {
    ck_assert_int_eq(count_suffix(dumps, ".kernels.txt"), NTHREADS);
    ck_assert_int_eq(count_suffix(dumps, ".graph.txt"), NTHREADS);
  }
  tu_rm_tree(dumps);
  free(dumps);
  smelt_params_free(p);
  smelt_graph_free(m.g);
}
END_TEST

/* ------------------------------------------------ ahead of time, threads */

/* The bytes of a file (NULL when it cannot be read); *n its size. */
static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *data = NULL;
  if (fseek(f, 0, SEEK_END) == 0) {
    long size = ftell(f);
    data = size >= 0 ? malloc((size_t)size + 1) : NULL;
    rewind(f);
    if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
      free(data);
      data = NULL;
    }
    *n = (size_t)size;
  }
  fclose(f);
  return data;
}

typedef struct aot_job {
  const smelt_graph *g;
  char dir[4200]; /* writes dir/model.o and dir/model.h */
  const char *ref_dir;
  verdict v;
} aot_job;

static smelt_aot_options aot_options(const char *dir, char *obj, char *hdr, size_t n) {
  snprintf(obj, n, "%s/model.o", dir);
  snprintf(hdr, n, "%s/model.h", dir);
  smelt_aot_options o = smelt_aot_defaults();
  o.object_path = obj;
  o.header_path = hdr;
  o.source_name = "mlp";
  o.dump = NULL;
  o.dump_dir = NULL;
  return o;
}

static void *aot_thread(void *arg) {
  aot_job *j = arg;
  char obj[4300], hdr[4300];
  smelt_aot_options o = aot_options(j->dir, obj, hdr, sizeof obj);
  char *err = NULL;
  if (smelt_aot_compile(j->g, &o, &err)) {
    VFAIL(&j->v, "smelt_aot_compile: %s", err ? err : "(no message)");
    smelt_free(err);
    return NULL;
  }
  static const char *const files[] = {"model.o", "model.h"};
  for (int k = 0; k < 2 && !j->v.msg[0]; k++) {
    char a[4300], b[4300];
    snprintf(a, sizeof a, "%s/%s", j->dir, files[k]);
    snprintf(b, sizeof b, "%s/%s", j->ref_dir, files[k]);
    size_t na = 0, nb = 0;
    char *da = slurp(a, &na), *db = slurp(b, &nb);
    if (!da || !db) VFAIL(&j->v, "cannot read the thread's or the reference's %s", files[k]);
    else if (na != nb || memcmp(da, db, na))
      VFAIL(&j->v, "%s differs from the single-threaded compile's (%zu and %zu bytes)",
            files[k], na, nb);
    free(da);
    free(db);
  }
  return NULL;
}

/* NTHREADS threads compile one graph (the MLP with a training and an
 * evaluation program) ahead of time at once: each object and header is
 * byte for byte the single-threaded compile's. (cpu target: LLVM.) */
START_TEST(aot_from_threads) {
  if (test_target() != SMELT_TARGET_CPU) {
    fprintf(stderr, "skipped %s: ahead-of-time objects need LLVM (see concurrency-cpu)\n",
            __func__);
    return;
  }
  mlp m;
  mlp_build(&m, 32, 5);
  ck_assert_int_eq(smelt_graph_add_program(m.g, "train", 2, TRAIN_OUTS, m.nupdates,
                                           m.updates, false), 0);
  ck_assert_int_eq(smelt_graph_add_program(m.g, "eval", 3, EVAL_OUTS, 0, NULL, true), 0);
  char *dir = tu_temp_dir("conc-aot");
  char ref[4200];
  snprintf(ref, sizeof ref, "%s/ref", dir);
  ck_assert_int_eq(mkdir(ref, 0777), 0);
  char obj[4300], hdr[4300], *err = NULL;
  smelt_aot_options o = aot_options(ref, obj, hdr, sizeof obj);
  ck_assert_msg(smelt_aot_compile(m.g, &o, &err) == 0, "%s", err);
  pthread_t th[NTHREADS];
  aot_job jobs[NTHREADS];
  for (int t = 0; t < NTHREADS; t++) {
    jobs[t] = (aot_job){.g = m.g, .ref_dir = ref};
    snprintf(jobs[t].dir, sizeof jobs[t].dir, "%s/t%d", dir, t);
    ck_assert_int_eq(mkdir(jobs[t].dir, 0777), 0);
    ck_assert_int_eq(pthread_create(&th[t], NULL, aot_thread, &jobs[t]), 0);
  }
  for (int t = 0; t < NTHREADS; t++) ck_assert_int_eq(pthread_join(th[t], NULL), 0);
  for (int t = 0; t < NTHREADS; t++)
    ck_assert_msg(!jobs[t].v.msg[0], "thread %d: %s", t, jobs[t].v.msg);
  tu_rm_tree(dir);
  free(dir);
  smelt_graph_free(m.g);
}
END_TEST

/* ------------------------------------------- processes sharing one cache */

#define NPROCS 4

/* The child: compiles the MLP's evaluation program with the cache in dir,
 * runs input set 0 and writes the result's bytes to out. Exit 0 or 1. */
static int child_main(const char *dir, const char *out) {
  mlp m;
  const char *err = mlp_build_plain(&m, 16, 41);
  if (err) {
    fprintf(stderr, "child %d: building the MLP: %s\n", (int)getpid(), err);
    return 1;
  }
  smelt_params *p = smelt_params_new(m.g);
  smelt_compile_options o = options_for(SMELT_TARGET_CPU, dir);
  smelt_program *pr = smelt_program_compile_eval(m.g, p, 3, EVAL_OUTS, &o);
  if (smelt_program_error(pr)) {
    fprintf(stderr, "child %d: %s\n", (int)getpid(), smelt_program_error(pr));
    return 1;
  }
  smelt_context *c = smelt_context_new(pr);
  result r;
  err = c ? ctx_step(c, 0, true, &r) : "out of memory";
  if (err) {
    fprintf(stderr, "child %d: %s\n", (int)getpid(), err);
    return 1;
  }
  FILE *f = fopen(out, "wb");
  if (!f || fwrite(&r, sizeof r, 1, f) != 1 || fclose(f)) return 1;
  smelt_context_free(c);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(m.g);
  return 0;
}

static const char *self_exe;

/* The MLP's result compiled in this process with the cache in dir (NULL:
 * none); *from_cache tells whether the code came from the cache. */
static void cached_result(const char *dir, result *r, bool *from_cache) {
  mlp m;
  mlp_build(&m, 16, 41);
  smelt_params *p = smelt_params_new(m.g);
  smelt_compile_options o = options_for(SMELT_TARGET_CPU, dir);
  smelt_program *pr = smelt_program_compile_eval(m.g, p, 3, EVAL_OUTS, &o);
  ck_assert_msg(!smelt_program_error(pr), "%s", smelt_program_error(pr));
  smelt_program_stats st;
  ck_assert_int_eq(smelt_program_get_stats(pr, &st), 0);
  *from_cache = st.from_cache;
  program_step(pr, 0, true, r);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(m.g);
}

/* Damages cache entry `which` (in directory order) of dir: 0 truncated to
 * half, 1 a byte of its payload flipped, 2 emptied. Returns false when
 * there is no such entry. */
static bool damage_entry(const char *dir, int which) {
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  struct dirent *e;
  int k = 0;
  char path[4600] = "";
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (e->d_name[0] == '.' || l < 2 || strcmp(e->d_name + l - 2, ".o")) continue;
    if (k++ == which) {
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      break;
    }
  }
  closedir(d);
  if (!path[0]) return false;
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  if (which == 0) ck_assert_int_eq(truncate(path, st.st_size / 2), 0);
  else if (which == 2) ck_assert_int_eq(truncate(path, 0), 0);
  else {
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char b;
    off_t at = st.st_size - 7;
    ck_assert_int_eq(pread(fd, &b, 1, at), 1);
    b ^= 0x5a;
    ck_assert_int_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
  }
  return true;
}

/* NPROCS processes (this program, exec'd) compile one graph into one
 * fresh cache directory at once: all succeed with the results of a
 * compile without cache; then the warm cache serves a compile with the
 * same results, and damaged entries are compiled again and rewritten. */
START_TEST(processes_share_a_cache) {
  if (test_target() != SMELT_TARGET_CPU) {
    fprintf(stderr, "skipped %s: the interpreter has no compiled code to cache (see "
            "concurrency-cpu)\n", __func__);
    return;
  }
  result ref;
  bool hit;
  cached_result(NULL, &ref, &hit);
  ck_assert(!hit);
  char *dir = tu_temp_dir("conc-procs");
  char cache[4200];
  snprintf(cache, sizeof cache, "%s/cache", dir); /* made by the first writer */
  pid_t pids[NPROCS];
  char outs[NPROCS][4300];
  for (int k = 0; k < NPROCS; k++) {
    snprintf(outs[k], sizeof outs[k], "%s/out%d", dir, k);
    pids[k] = fork();
    ck_assert_int_ge(pids[k], 0);
    if (pids[k] == 0) {
      execl(self_exe, self_exe, "--compile-child", cache, outs[k], (char *)NULL);
      _exit(127);
    }
  }
  for (int k = 0; k < NPROCS; k++) {
    int status;
    ck_assert_int_eq(waitpid(pids[k], &status, 0), pids[k]);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "process %d: %s %d (its stderr above)", k,
                  WIFEXITED(status) ? "exit status" : "signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    result got;
    FILE *f = fopen(outs[k], "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fread(&got, sizeof got, 1, f), 1);
    fclose(f);
    ck_assert_msg(!memcmp(&got, &ref, sizeof got), "process %d: results differ", k);
  }
  int entries = count_suffix(cache, ".o");
  ck_assert_int_gt(entries, 0);
  /* no temporary file is left behind */
  DIR *d = opendir(cache);
  struct dirent *e;
  while ((e = readdir(d))) ck_assert_msg(!strstr(e->d_name, ".tmp."), "left over: %s", e->d_name);
  closedir(d);

  result got;
  cached_result(cache, &got, &hit);
  ck_assert_msg(hit, "the warm cache did not serve the compile");
  ck_assert_int_eq(memcmp(&got, &ref, sizeof got), 0);

  /* damaged entries: misses, compiled again and rewritten */
  int damaged = 0;
  for (int which = 0; which < 3; which++) damaged += damage_entry(cache, which);
  ck_assert_int_gt(damaged, 0);
  cached_result(cache, &got, &hit);
  ck_assert_msg(!hit, "a damaged entry was used");
  ck_assert_int_eq(memcmp(&got, &ref, sizeof got), 0);
  ck_assert_int_eq(count_suffix(cache, ".o"), entries);
  cached_result(cache, &got, &hit);
  ck_assert_msg(hit, "damaged entries were not rewritten");
  ck_assert_int_eq(memcmp(&got, &ref, sizeof got), 0);
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "--compile-child")) return child_main(argv[2], argv[3]);
  /* the program's path as run (under valgrind /proc/self/exe would be
   * valgrind's) */
  self_exe = strchr(argv[0], '/') ? argv[0] : "/proc/self/exe";
  if (test_target() == SMELT_TARGET_CPU && !tu_have_cpu()) {
    printf("this libsmelt has no cpu target (built without LLVM): skipping\n");
    return 77;
  }
  Suite *s = suite_create("concurrency");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, eval_program_from_threads);
  tcase_add_test(tc, training_from_threads);
  tcase_add_test(tc, shared_params_updates_are_atomic);
  tcase_add_test(tc, context_errors);
  tcase_add_test(tc, compile_from_threads);
  tcase_add_test(tc, aot_from_threads);
  tcase_add_test(tc, processes_share_a_cache);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
