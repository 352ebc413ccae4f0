/* Allocation failures, SQLite style: every allocation of libsmelt goes
 * through one hook (src/alloc.c), and each scenario below runs once to get
 * its reference results, then again with the 1st, 2nd, ... allocation of
 * the API calls under test failing, until a run passes with no failure
 * injected. Every injected failure must give the documented error (a
 * sticky graph error, a program or params error, NULL, -1 with a message)
 * that says "out of memory", must not crash, must leak nothing (the asan
 * and valgrind phases of scripts/test run this suite), and must leave the
 * objects usable (a later call without injection gives the reference
 * results) or at least freeable. A failure the library absorbs (a cache
 * that is not written, a buffer that is regrown later) must still give the
 * reference results; the counts print to stderr.
 *
 * Two models: an MLP, and a small CNN (conv2d, batch_norm with its
 * running statistics, max_pool2d, avg_pool2d, a linear layer, AdamW).
 * `alloc` runs the graph-level scenarios and programs on the interpreter
 * (and runs under valgrind); `alloc-cpu` (SMELT_TEST_TARGET=cpu, built with
 * LLVM) compiles and runs on the cpu target, with and without the disk
 * cache, and compiles ahead of time. LLVM's own (C++) allocations are not
 * injected: only libsmelt's. docs/testing.md, "Allocation failures", has
 * the number of allocation points of each scenario. */
#include "testutil.h"

#include "internal.h" /* sm_alloc_fail_after, sm_alloc_failures */
#include "npy.h"
#include "../runtime/plan.h"

#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A scenario that still sees injected failures after this many runs has
 * a failure that never stops (or grew past what this suite is for). */
enum { MAX_POINTS = 100000 };

/* ------------------------------------------------------------ injection */

/* One armed window: the n-th allocation after arm() fails (n < 0: none). */
typedef struct inj {
  long n;
  long before;
} inj;

static void arm(inj *j, long n) {
  j->n = n;
  j->before = sm_alloc_failures();
  if (n >= 0) sm_alloc_fail_after(n);
}

/* Ends the window; true when the failure was injected in it. */
static bool disarm(inj *j) {
  sm_alloc_fail_after(-1);
  return j->n >= 0 && sm_alloc_failures() > j->before;
}

static bool verbose(void) {
  const char *v = getenv("SMELT_TEST_VERBOSE");
  return v && *v && strcmp(v, "0") != 0;
}

/* An error message of an injected failure: present and clear. */
static void check_oom(const char *msg, long n, const char *what) {
  TU_CHECK(msg && strstr(msg, "out of memory"),
           "allocation %ld: %s: error \"%s\" does not say out of memory", n, what,
           msg ? msg : "(none)");
}

/* What one run with allocation n failing did. */
typedef enum outcome {
  NOT_HIT,  /* fewer than n + 1 allocations: the scenario is done */
  REPORTED, /* the failure was reported as an error (checked) */
  ABSORBED  /* the library coped: the results are the reference's (checked) */
} outcome;

/* A run of a scenario: n < 0 computes the reference (no injection). */
typedef outcome (*scenario_fn)(long n);

typedef struct scenario {
  const char *name;
  scenario_fn run;
  /* 1: every allocation fails in turn. k > 1, for the cpu compiles whose
   * runs past planning each cost a whole LLVM compilation: every
   * allocation up to the failures in the third module that LLVM compiles
   * (planning, the JIT's set-up, cache keys, two whole modules with their
   * dumps and cache writes) and from the last module's last failure on
   * (its dumps and cache write, the dumps of all modules, the JIT's
   * linking), every k-th between (the other modules: the same code paths
   * again); the output says so. SMELT_ALLOC_STRIDE overrides k. */
  int stride;
} scenario;

static double clock_s(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The module ("kernel k3", "blocked matmul f32") whose compilation
 * reported the failure of the last run, "" when none did: the cpu compile
 * scenarios set it. */
static char run_module[64];

static void note_module(const char *msg) {
  const char *m = msg ? strstr(msg, ": kernel ") : NULL;
  if (!m && msg) m = strstr(msg, ": blocked matmul ");
  if (!m) return;
  m += 2;
  size_t len = strcspn(m, ":");
  snprintf(run_module, sizeof run_module, "%.*s", (int)(len < 63 ? len : 63), m);
}

typedef struct tally {
  long reported, absorbed, runs;
} tally;

static outcome run_one(const scenario *s, long n, tally *t) {
  run_module[0] = 0;
  double ci = clock_s(CLOCK_PROCESS_CPUTIME_ID);
  outcome o = s->run(n);
  if (getenv("SMELT_ALLOC_TIMES"))
    fprintf(stderr, "  %s %ld %.4f %s\n", s->name, n, clock_s(CLOCK_PROCESS_CPUTIME_ID) - ci,
            run_module);
  t->runs++;
  if (o == REPORTED) t->reported++;
  else if (o == ABSORBED) t->absorbed++;
  if (o == ABSORBED && verbose()) fprintf(stderr, "  %s: allocation %ld absorbed\n", s->name, n);
  return o;
}

/* Fails the 1st, 2nd, ... allocation of the scenario until a run sees no
 * injected failure (for stride k > 1: see scenario); prints the number of
 * allocation points. */
static void inject_each(const scenario *s) {
  double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
  ck_assert_msg(s->run(-1) == NOT_HIT, "%s: the reference run failed", s->name);
  long stride = s->stride > 1 ? s->stride : 1;
  const char *e = getenv("SMELT_ALLOC_STRIDE");
  if (stride > 1 && e && *e) stride = atol(e) > 1 ? atol(e) : 1;
  static unsigned char done[MAX_POINTS];
  memset(done, 0, sizeof done);
  tally t = {0, 0, 0};
  char module[64] = "";
  int modules = 0;
  long n, step = 1, dense_to = -1, last_module = -1;
  for (n = 0;; n += step) {
    ck_assert_msg(n < MAX_POINTS, "%s: still failing after %d injections", s->name, MAX_POINTS);
    outcome o = run_one(s, n, &t);
    done[n] = 1;
    if (o == NOT_HIT) break;
    if (run_module[0]) {
      last_module = n;
      if (strcmp(run_module, module)) {
        modules++;
        snprintf(module, sizeof module, "%s", run_module);
      }
    }
    if (stride > 1 && step == 1 && modules >= 3) {
      step = stride;
      dense_to = n;
    }
  }
  /* the end densely: the last module's last points and what follows */
  long from = last_module > dense_to ? last_module + 1 : dense_to + 1;
  if (step > 1) {
    /* a scenario drops its reference at the run that is not hit: made
     * again for the points left, and dropped again at the end */
    ck_assert_msg(s->run(-1) == NOT_HIT, "%s: the reference run failed", s->name);
    bool ended = false;
    for (long m = from; m < n && !ended; m++) {
      if (done[m]) continue;
      if (run_one(s, m, &t) == NOT_HIT) n = m, ended = true;
    }
    if (!ended) s->run(n);
  }
  /* CPU time too: the wall time of a loaded machine says little */
  char every[96] = "";
  if (step > 1)
    snprintf(every, sizeof every, " (%ld runs: all to %ld and from %ld, every %ldth between)",
             t.runs, dense_to, from, stride);
  fprintf(stderr,
          "alloc: %-15s %6ld allocation points%s: %5ld reported, %4ld absorbed "
          "(%.1f s, %.1f s CPU)\n",
          s->name, n, every, t.reported, t.absorbed, clock_s(CLOCK_MONOTONIC) - t0,
          clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0);
  /* every scenario allocates: zero points means the window missed */
  ck_assert_int_gt(n, 0);
}

/* ---------------------------------------------------------------- models */

/* A model under test: a training graph that declares programs "train"
 * (outputs, then the updates) and "eval" (the first neval outputs), its
 * inputs, and what a step reads back: the outputs, then every param in
 * order (the updated weights). A step's numbers are compared bit for bit
 * with the reference run's. */
typedef struct input_desc {
  const char *name;
  smelt_dtype dt;
  int rank;
  int64_t dims[4];
  const void *data;
  size_t bytes;
} input_desc;

typedef struct tensor_desc {
  const char *name;
  size_t n; /* f32 elements */
} tensor_desc;

enum { MAX_FLOATS = 160, MAX_UPDATES = 32 };

typedef struct model {
  const char *name;
  /* builds the training graph (no injection; fails the test on errors):
   * updates[] gets the "train" program's assign nodes, *nupd of them */
  smelt_graph *(*train_graph)(smelt_node *updates, int *nupd);
  int ninputs;
  const input_desc *inputs;
  int nouts, neval;
  const tensor_desc *outs;
  int nparams;
  const tensor_desc *params;
  /* computed once per process (reference_step, initial_params,
   * train_text) */
  struct model_cache *cache;
} model;

/* The results of one step: m's outputs, then its params, as f32. */
typedef struct step_result {
  float v[MAX_FLOATS];
} step_result;

static size_t out_offset(const model *m, int i) {
  size_t o = 0;
  for (int k = 0; k < i; k++) o += m->outs[k].n;
  return o;
}
static size_t params_offset(const model *m) { return out_offset(m, m->nouts); }
static float *param_field(const model *m, step_result *r, int i) {
  size_t o = params_offset(m);
  for (int k = 0; k < i; k++) o += m->params[k].n;
  ck_assert(o + m->params[i].n <= MAX_FLOATS);
  return r->v + o;
}
static size_t param_bytes(const model *m, int i) { return m->params[i].n * sizeof(float); }

static bool same_result(const step_result *a, const step_result *b) {
  return memcmp(a, b, sizeof *a) == 0;
}

/* ------------------------------------------------------------------ MLP */

enum { B = 4, D_IN = 3, D_H = 5, D_OUT = 3 };
static const float x_data[B * D_IN] = {0.5f, -1.0f, 2.0f, 1.5f, 0.25f, -0.5f,
                                       -2.0f, 1.0f, 0.75f, 0.0f, -0.25f, 1.25f};
static const int64_t label_data[B] = {0, 2, 1, 0};
enum { NPARAMS = 4 };

/* An MLP with broadcasting (bias adds), reductions (mean, max, sum with
 * keepdim), softmax and softmax cross-entropy: loss, probs and rowmax are
 * outputs. wrt gets the four params. When a builder fails, invalid handles
 * and the error stay on the graph (sticky): the caller checks
 * smelt_graph_error. */
static void build_mlp_into(smelt_graph *g, smelt_node *loss, smelt_node wrt[NPARAMS]) {
  smelt_node x = smelt_input(g, "x", SMELT_F32, 2, TU_DIMS(B, D_IN));
  smelt_node labels = smelt_input(g, "labels", SMELT_I64, 1, TU_DIMS(B));
  smelt_node w1 = smelt_param(g, "w1", SMELT_F32, 2, TU_DIMS(D_IN, D_H),
                              smelt_init_normal(0, 0.5, 7));
  smelt_node b1 = smelt_param(g, "b1", SMELT_F32, 1, TU_DIMS(D_H), smelt_init_constant(0.1));
  smelt_node w2 = smelt_param(g, "w2", SMELT_F32, 2, TU_DIMS(D_H, D_OUT),
                              smelt_init_uniform(-0.5, 0.5, 8));
  smelt_node b2 = smelt_param(g, "b2", SMELT_F32, 1, TU_DIMS(D_OUT), smelt_init_zeros());
  smelt_node h = smelt_relu(g, smelt_add(g, smelt_matmul(g, x, w1), b1));
  smelt_node logits = smelt_add(g, smelt_matmul(g, h, w2), b2);
  /* centred logits: a keepdim sum broadcast back */
  smelt_node centred = smelt_sub(
      g, logits, smelt_div(g, smelt_sum(g, logits, 1, (int[]){1}, true), smelt_scalar(g, D_OUT)));
  smelt_node ce = smelt_cross_entropy(g, centred, labels);
  smelt_node reg = smelt_mul(g, smelt_scalar(g, 0.01), smelt_mean(g, smelt_mul(g, w1, w1), 0,
                                                                  NULL, false));
  *loss = smelt_set_name(g, smelt_add(g, ce, reg), "loss");
  smelt_output(g, "loss", *loss);
  smelt_output(g, "probs", smelt_softmax(g, logits, 1));
  smelt_output(g, "rowmax", smelt_max(g, h, 1, (int[]){1}, false));
  wrt[0] = w1;
  wrt[1] = b1;
  wrt[2] = w2;
  wrt[3] = b2;
}

/* A training graph (no injection): the MLP, its gradients, SGD with
 * momentum on w1 and b1 and Adam on w2 and b2; updates[] gets the assign
 * nodes (*nupd of them) and the graph declares them as program "train"
 * (outputs loss, probs, rowmax) and "eval" (loss and probs). */
static smelt_graph *train_graph(smelt_node *updates, int *nupd) {
  smelt_graph *g = TU_GRAPH();
  smelt_node loss, wrt[NPARAMS], grads[NPARAMS];
  build_mlp_into(g, &loss, wrt);
  ck_assert_int_eq(smelt_grad(g, loss, NPARAMS, wrt, grads), 0);
  smelt_sgd_options so = smelt_sgd_defaults(0.1);
  so.momentum = 0.9;
  int n1 = smelt_sgd(g, "sgd", 2, wrt, grads, &so, updates);
  smelt_adam_options ao = smelt_adam_defaults();
  ao.lr = 0.01;
  int n2 = smelt_adam(g, "adam", 2, wrt + 2, grads + 2, &ao, updates + n1);
  TU_ASSERT_OK(g);
  ck_assert(n1 > 0 && n2 > 0);
  *nupd = n1 + n2;
  ck_assert_int_eq(smelt_graph_add_program(g, "train", 3,
                                           (const char *[]){"loss", "probs", "rowmax"}, *nupd,
                                           updates, false),
                   0);
  ck_assert_int_eq(
      smelt_graph_add_program(g, "eval", 2, (const char *[]){"loss", "probs"}, 0, NULL, true),
      0);
  TU_ASSERT_OK(g);
  return g;
}

static struct model_cache {
  step_result ref[2], init;
  bool have_ref[2], have_init;
  char *text;
} mlp_cache, cnn_cache;

static const input_desc mlp_inputs[] = {
    {"x", SMELT_F32, 2, {B, D_IN}, x_data, sizeof x_data},
    {"labels", SMELT_I64, 1, {B}, label_data, sizeof label_data},
};
static const tensor_desc mlp_outs[] = {{"loss", 1}, {"probs", B * D_OUT}, {"rowmax", B}};
static const tensor_desc mlp_params[] = {
    {"w1", D_IN * D_H}, {"b1", D_H}, {"w2", D_H * D_OUT}, {"b2", D_OUT}};
static const model mlp = {"mlp", train_graph, 2, mlp_inputs, 3, 2, mlp_outs,
                          NPARAMS, mlp_params, &mlp_cache};

/* ------------------------------------------------------------------ CNN */

/* A small CNN: x f32[2, 1, 6, 6] -> conv2d (3 channels, 3x3, padding 1,
 * bias) -> batch_norm (training, affine, running statistics updated by
 * momentum) -> relu -> max_pool2d 2 -> avg_pool2d 2 with stride 2 and
 * padding 1, padding not counted (so the divisors differ per position:
 * computed in the graph) -> flatten -> linear -> cross-entropy. */
enum { CB = 2, CH = 6, CC = 3, CK = 3, CP = 2, CF = CC * CP * CP, NCLS = 3, CNN_NWRT = 6 };
static float cnn_x[CB * CH * CH];
static const int64_t cnn_labels[CB] = {1, 2};

static void cnn_fill_x(void) {
  for (int i = 0; i < CB * CH * CH; i++) cnn_x[i] = (float)((i * 7) % 13 - 6) / 4.0f;
}

/* The forward model: *loss, the six trainable params in wrt and the batch
 * norm's two running-statistics updates in bn (invalid when a builder
 * failed). Outputs "loss" and "logits". */
static void build_cnn_into(smelt_graph *g, smelt_node *loss, smelt_node wrt[CNN_NWRT],
                           smelt_node bn[2]) {
  smelt_node x = smelt_input(g, "x", SMELT_F32, 4, TU_DIMS(CB, 1, CH, CH));
  smelt_node labels = smelt_input(g, "labels", SMELT_I64, 1, TU_DIMS(CB));
  smelt_node cw = smelt_param(g, "conv_w", SMELT_F32, 4, TU_DIMS(CC, 1, CK, CK),
                              smelt_init_normal(0, 0.5, 11));
  smelt_node cb = smelt_param(g, "conv_b", SMELT_F32, 1, TU_DIMS(CC), smelt_init_constant(0.05));
  smelt_node bw = smelt_param(g, "bn_w", SMELT_F32, 1, TU_DIMS(CC), smelt_init_ones());
  smelt_node bb = smelt_param(g, "bn_b", SMELT_F32, 1, TU_DIMS(CC), smelt_init_zeros());
  smelt_node rm = smelt_param(g, "bn_mean", SMELT_F32, 1, TU_DIMS(CC), smelt_init_zeros());
  smelt_node rv = smelt_param(g, "bn_var", SMELT_F32, 1, TU_DIMS(CC), smelt_init_ones());
  smelt_node fw = smelt_param(g, "fc_w", SMELT_F32, 2, TU_DIMS(CF, NCLS),
                              smelt_init_uniform(-0.4, 0.4, 12));
  smelt_node fb = smelt_param(g, "fc_b", SMELT_F32, 1, TU_DIMS(NCLS), smelt_init_zeros());
  smelt_node h = smelt_conv2d(g, x, cw, cb, NULL, (const int64_t[]){1, 1}, NULL, 1);
  h = smelt_batch_norm(g, h, bw, bb, rm, rv, true, 0.1, 1e-5, bn);
  h = smelt_relu(g, h);
  h = smelt_max_pool2d(g, h, (const int64_t[]){2, 2}, NULL, NULL, NULL, false);
  h = smelt_avg_pool2d(g, h, (const int64_t[]){2, 2}, (const int64_t[]){2, 2},
                       (const int64_t[]){1, 1}, false, false);
  h = smelt_flatten(g, h, 1, -1);
  smelt_node logits = smelt_add(g, smelt_matmul(g, h, fw), fb);
  *loss = smelt_set_name(g, smelt_cross_entropy(g, logits, labels), "loss");
  smelt_output(g, "loss", *loss);
  smelt_output(g, "logits", logits);
  smelt_node w[CNN_NWRT] = {cw, cb, bw, bb, fw, fb};
  memcpy(wrt, w, sizeof w);
}

static const smelt_adam_options *cnn_adamw(void) {
  static smelt_adam_options ao;
  ao = smelt_adamw_defaults();
  ao.lr = 0.01;
  return &ao;
}

/* The CNN, its gradients with respect to the six params, AdamW on them and
 * the running statistics' updates: programs "train" (loss, logits) and
 * "eval" (loss, logits with the running statistics). */
static smelt_graph *cnn_train_graph(smelt_node *updates, int *nupd) {
  smelt_graph *g = TU_GRAPH();
  smelt_node loss, wrt[CNN_NWRT], grads[CNN_NWRT];
  build_cnn_into(g, &loss, wrt, updates);
  ck_assert_int_eq(smelt_grad(g, loss, CNN_NWRT, wrt, grads), 0);
  int k = smelt_adam(g, NULL, CNN_NWRT, wrt, grads, cnn_adamw(), updates + 2);
  TU_ASSERT_OK(g);
  ck_assert(k > 0 && 2 + k <= MAX_UPDATES);
  *nupd = 2 + k;
  ck_assert_int_eq(smelt_graph_add_program(g, "train", 2, (const char *[]){"loss", "logits"},
                                           *nupd, updates, false),
                   0);
  ck_assert_int_eq(
      smelt_graph_add_program(g, "eval", 2, (const char *[]){"loss", "logits"}, 0, NULL, true),
      0);
  TU_ASSERT_OK(g);
  return g;
}

static const input_desc cnn_inputs[] = {
    {"x", SMELT_F32, 4, {CB, 1, CH, CH}, cnn_x, sizeof cnn_x},
    {"labels", SMELT_I64, 1, {CB}, cnn_labels, sizeof cnn_labels},
};
static const tensor_desc cnn_outs[] = {{"loss", 1}, {"logits", CB * NCLS}};
static const tensor_desc cnn_params[] = {
    {"conv_w", CC * CK * CK}, {"conv_b", CC}, {"bn_w", CC},      {"bn_b", CC},
    {"bn_mean", CC},          {"bn_var", CC}, {"fc_w", CF * NCLS}, {"fc_b", NCLS}};
static const model cnn = {"cnn", cnn_train_graph, 2, cnn_inputs, 2, 2, cnn_outs,
                          8, cnn_params, &cnn_cache};

/* --------------------------------------------------------------- steps */

static int bind_inputs(const model *m, smelt_program *pr) {
  for (int i = 0; i < m->ninputs; i++) {
    const input_desc *in = &m->inputs[i];
    if (smelt_program_bind(pr, in->name, in->dt, in->rank, in->dims, in->data, in->bytes))
      return -1;
  }
  return 0;
}

/* Reads the first nouts outputs of the last run (pr NULL: none) and the
 * params. 0, or -1 (the error is the program's or the params'). */
static int read_result(const model *m, int nouts, smelt_program *pr, smelt_params *p,
                       step_result *r) {
  for (int i = 0; pr && i < nouts; i++)
    if (smelt_program_read(pr, m->outs[i].name, SMELT_F32, r->v + out_offset(m, i),
                           m->outs[i].n * sizeof(float)))
      return -1;
  for (int i = 0; i < m->nparams; i++)
    if (smelt_params_read(p, m->params[i].name, SMELT_F32, param_field(m, r, i),
                          param_bytes(m, i)))
      return -1;
  return 0;
}

/* The declared program `prog` ("train" or "eval") and its outputs. */
static int prog_outs(const model *m, const char *prog) {
  return strcmp(prog, "eval") == 0 ? m->neval : m->nouts;
}

/* Compiles `prog` with o (no injection), runs one step from p's current
 * values and reads everything; fails the test on any error. */
static void step_or_fail(const model *m, const char *prog, smelt_graph *g, smelt_params *p,
                         const smelt_compile_options *o, step_result *r, long n) {
  smelt_program *pr = smelt_program_compile_named(g, p, prog, o);
  ck_assert_ptr_nonnull(pr);
  TU_CHECK(!smelt_program_error(pr), "after allocation %ld: compile: %s", n,
           smelt_program_error(pr));
  TU_CHECK(bind_inputs(m, pr) == 0 && smelt_program_run(pr) == 0,
           "after allocation %ld: run: %s", n, smelt_program_error(pr));
  memset(r, 0, sizeof *r);
  TU_CHECK(read_result(m, prog_outs(m, prog), pr, p, r) == 0,
           "after allocation %ld: read: %s / %s", n, smelt_program_error(pr),
           smelt_params_error(p));
  smelt_program_free(pr);
}

/* The options of the target under test: $SMELT_TEST_TARGET (interp when
 * unset), one thread (so that the order of allocations is the same from
 * run to run), opt level 0, no dumps, no cache. */
static smelt_compile_options test_options(void) {
  smelt_compile_options o = smelt_compile_defaults();
  const char *t = getenv("SMELT_TEST_TARGET");
  o.target = t && strcmp(t, "cpu") == 0 ? SMELT_TARGET_CPU : SMELT_TARGET_INTERP;
  o.num_threads = 1;
  /* LLVM's time, not ours: libsmelt allocates the same at every level
   * (only the pass pipeline's name differs), and O0 compiles 6 times
   * faster than O3 */
  o.opt_level = 0;
  o.dump = NULL;
  o.dump_dir = NULL;
  o.cache_dir = NULL;
  return o;
}

/* ------------------------------------------------------ graph scenarios */

/* The MLP and its evaluation program declared. */
static void build_mlp(smelt_graph *g) {
  smelt_node loss = SMELT_INVALID, wrt[NPARAMS];
  build_mlp_into(g, &loss, wrt);
  smelt_graph_add_program(g, "eval", 2, (const char *[]){"loss", "probs"}, 0, NULL, true);
}

/* The CNN, a training program with only the running statistics' updates
 * and an evaluation program declared. */
static void build_cnn(smelt_graph *g) {
  smelt_node loss = SMELT_INVALID, wrt[CNN_NWRT], bn[2];
  build_cnn_into(g, &loss, wrt, bn);
  smelt_graph_add_program(g, "stats", 1, (const char *[]){"loss"}, 2, bn, false);
  smelt_graph_add_program(g, "eval", 2, (const char *[]){"loss", "logits"}, 0, NULL, true);
}

/* Building a model and declaring its programs: smelt_graph_new and every
 * builder under injection. A failed builder leaves a sticky "<op>: out of
 * memory"; the graph still prints and frees. */
static outcome build_scenario(long n, void (*build)(smelt_graph *), const char *what) {
  static char *want;
  inj j;
  arm(&j, n);
  smelt_graph *g = smelt_graph_new();
  if (g) build(g);
  bool hit = disarm(&j);
  if (n < 0) {
    TU_ASSERT_OK(g);
    want = smelt_graph_print(g);
    ck_assert_ptr_nonnull(want);
    smelt_graph_free(g);
    return NOT_HIT;
  }
  outcome o = NOT_HIT;
  if (!g) {
    TU_CHECK(hit, "smelt_graph_new returned NULL with no failure injected");
    return REPORTED;
  }
  const char *e = smelt_graph_error(g);
  char *text = smelt_graph_print(g);
  TU_CHECK(text, "allocation %ld: the graph does not print after the failure", n);
  if (hit && e) {
    check_oom(e, n, what);
    /* sticky: later builders return invalid handles, the error stays */
    TU_CHECK(!smelt_node_valid(smelt_exp(g, smelt_find(g, "x"))), "not sticky");
    TU_CHECK(strcmp(smelt_graph_error(g), e) == 0, "the first error changed");
    if (verbose()) fprintf(stderr, "  %s %ld: %s\n", what, n, e);
    o = REPORTED;
  } else {
    TU_CHECK(!e, "allocation %ld: error \"%s\" with no failure injected", n, e);
    TU_CHECK(strcmp(text, want) == 0, "allocation %ld: the graph differs", n);
    o = hit ? ABSORBED : NOT_HIT;
  }
  smelt_free(text);
  smelt_graph_free(g);
  if (o == NOT_HIT) {
    smelt_free(want);
    want = NULL;
  }
  return o;
}

static outcome sc_build(long n) { return build_scenario(n, build_mlp, "build"); }
static outcome sc_cnn_build(long n) { return build_scenario(n, build_cnn, "cnn-build"); }

/* Checks the graph after an injected failure inside a graph-rewriting
 * call that returned rc: -1 with "out of memory" sticky on the graph, or
 * 0 and exactly the reference graph. The graph prints either way. */
static outcome graph_after(smelt_graph *g, int rc, bool hit, long n, const char *what,
                           const char *want) {
  char *text = smelt_graph_print(g);
  TU_CHECK(text, "allocation %ld: %s: the graph does not print after the failure", n, what);
  outcome o;
  if (rc) {
    TU_CHECK(hit, "%s failed with no failure injected: %s", what, smelt_graph_error(g));
    check_oom(smelt_graph_error(g), n, what);
    TU_CHECK(!smelt_node_valid(smelt_exp(g, smelt_find(g, "x"))), "not sticky");
    if (verbose()) fprintf(stderr, "  %s %ld: %s\n", what, n, smelt_graph_error(g));
    o = REPORTED;
  } else {
    TU_CHECK(!smelt_graph_error(g), "allocation %ld: %s: rc 0 with error \"%s\"", n, what,
             smelt_graph_error(g));
    TU_CHECK(strcmp(text, want) == 0, "allocation %ld: %s: the graph differs", n, what);
    o = hit ? ABSORBED : NOT_HIT;
  }
  smelt_free(text);
  return o;
}

/* smelt_grad of the MLP's loss with respect to its four params. */
static outcome sc_grad(long n) {
  static char *want;
  smelt_graph *g = TU_GRAPH();
  smelt_node loss, wrt[NPARAMS], grads[NPARAMS];
  build_mlp_into(g, &loss, wrt);
  TU_ASSERT_OK(g);
  inj j;
  arm(&j, n);
  int rc = smelt_grad(g, loss, NPARAMS, wrt, grads);
  bool hit = disarm(&j);
  if (n < 0) {
    ck_assert_int_eq(rc, 0);
    want = smelt_graph_print(g);
    smelt_graph_free(g);
    return NOT_HIT;
  }
  if (rc)
    for (int i = 0; i < NPARAMS; i++)
      TU_CHECK(!smelt_node_valid(grads[i]), "allocation %ld: gradient %d valid", n, i);
  outcome o = graph_after(g, rc, hit, n, "grad", want);
  smelt_graph_free(g);
  if (o == NOT_HIT) smelt_free(want);
  return o;
}

/* smelt_grad of the CNN's loss with respect to its six params (through
 * the linear layer, avg_pool2d's divisors, max_pool2d's gather, relu,
 * batch_norm's batch statistics, conv2d's unfold and pad), then AdamW on
 * them (its state params and updates). */
static outcome sc_cnn_grad(long n) {
  static char *want;
  smelt_graph *g = TU_GRAPH();
  smelt_node loss, wrt[CNN_NWRT], grads[CNN_NWRT], bn[2];
  smelt_node upd[SMELT_OPTIM_MAX_UPDATES(CNN_NWRT)];
  build_cnn_into(g, &loss, wrt, bn);
  TU_ASSERT_OK(g);
  inj j;
  arm(&j, n);
  int rc = smelt_grad(g, loss, CNN_NWRT, wrt, grads);
  int k = smelt_adam(g, NULL, CNN_NWRT, wrt, grads, cnn_adamw(), upd);
  bool hit = disarm(&j);
  /* errors are sticky: once smelt_grad failed, AdamW fails too */
  if (rc) {
    TU_CHECK(k < 0, "allocation %ld: adamw succeeded after grad failed", n);
    for (int i = 0; i < CNN_NWRT; i++)
      TU_CHECK(!smelt_node_valid(grads[i]), "allocation %ld: gradient %d valid", n, i);
  }
  if (k < 0) rc = -1;
  if (n < 0) {
    ck_assert_int_eq(rc, 0);
    want = smelt_graph_print(g);
    smelt_graph_free(g);
    return NOT_HIT;
  }
  outcome o = graph_after(g, rc, hit, n, "cnn grad+adamw", want);
  smelt_graph_free(g);
  if (o == NOT_HIT) smelt_free(want);
  return o;
}

/* Builders allocate only where the graph grows (its node array and its
 * table of nodes double, its arena takes 16 KiB chunks), so cnn-build's
 * and cnn-grad's failures land on the few builders that happen to create
 * the node at a boundary. The shifted scenarios move the boundaries
 * across all of them: the graph starts with s unnamed constants (outside
 * the window), and allocation n fails in each of the graphs s = 0, 1, ...
 * 127. The CNN's forward (about 150 nodes) and smelt_grad through it
 * (about 100 more: the graph has about 250 nodes, and the node array
 * grows at 64, 128 and 256) lie within 128 nodes below a boundary, so
 * every node that conv2d, max_pool2d, avg_pool2d, batch_norm and their
 * gradient rules create is, in some graph, the one whose allocation
 * fails: each composite stops midway with the sticky error, and nothing
 * crashes or leaks. A scenario's points are the most of any shift. */
enum { SHIFTS = 128 };

/* One shifted graph: the CNN built (with_grad false) or its gradients
 * taken (true) under injection after s constants. n < 0: *want gets the
 * reference text. */
static outcome shifted_run(bool with_grad, int s, long n, char **want) {
  smelt_graph *g = TU_GRAPH();
  for (int i = 0; i < s; i++) smelt_scalar(g, 1000.0 + i);
  TU_ASSERT_OK(g);
  smelt_node loss = SMELT_INVALID, wrt[CNN_NWRT], grads[CNN_NWRT], bn[2];
  if (with_grad) {
    build_cnn_into(g, &loss, wrt, bn);
    TU_ASSERT_OK(g);
  }
  inj j;
  arm(&j, n);
  int rc;
  if (!with_grad) {
    build_cnn_into(g, &loss, wrt, bn);
    rc = smelt_graph_error(g) ? -1 : 0;
  } else {
    rc = smelt_grad(g, loss, CNN_NWRT, wrt, grads);
  }
  bool hit = disarm(&j);
  if (n < 0) {
    ck_assert_int_eq(rc, 0);
    *want = smelt_graph_print(g);
    ck_assert_ptr_nonnull(*want);
    smelt_graph_free(g);
    return NOT_HIT;
  }
  char what[64];
  snprintf(what, sizeof what, "%s (shift %d)", with_grad ? "cnn grad" : "cnn build", s);
  outcome o = graph_after(g, rc, hit, n, what, *want);
  smelt_graph_free(g);
  return o;
}

static outcome shift_scenario(bool with_grad, int nshifts, long n) {
  static char *want[SHIFTS];
  outcome o = NOT_HIT;
  for (int s = 0; s < nshifts; s++) {
    outcome r = shifted_run(with_grad, s, n, &want[s]);
    if (r == REPORTED || (r == ABSORBED && o == NOT_HIT)) o = r;
  }
  if (n >= 0 && o == NOT_HIT)
    for (int s = 0; s < nshifts; s++) {
      smelt_free(want[s]);
      want[s] = NULL;
    }
  return o;
}

static outcome sc_cnn_build_shift(long n) { return shift_scenario(false, SHIFTS, n); }
static outcome sc_cnn_grad_shift(long n) { return shift_scenario(true, SHIFTS, n); }

/* A gradient of a gradient: d/dx sum(d/dx sum(tanh(x) * softmax(x))). */
static outcome sc_grad2(long n) {
  static char *want;
  smelt_graph *g = TU_GRAPH();
  smelt_node x = smelt_input(g, "x", SMELT_F64, 1, TU_DIMS(3));
  smelt_node y = smelt_sum(g, smelt_mul(g, smelt_tanh(g, x), smelt_softmax(g, x, 0)), 0, NULL,
                           false);
  TU_ASSERT_OK(g);
  inj j;
  arm(&j, n);
  smelt_node g1 = SMELT_INVALID, g2 = SMELT_INVALID;
  int rc = smelt_grad(g, y, 1, &x, &g1);
  if (!rc) rc = smelt_grad(g, smelt_sum(g, g1, 0, NULL, false), 1, &x, &g2);
  bool hit = disarm(&j);
  if (n < 0) {
    ck_assert_int_eq(rc, 0);
    want = smelt_graph_print(g);
    smelt_graph_free(g);
    return NOT_HIT;
  }
  outcome o = graph_after(g, rc, hit, n, "grad of grad", want);
  smelt_graph_free(g);
  if (o == NOT_HIT) smelt_free(want);
  return o;
}

/* Optimizers adding their state params and updates: SGD with momentum on
 * w1, b1 and Adam on w2, b2. */
static outcome sc_optim(long n) {
  static char *want;
  smelt_graph *g = TU_GRAPH();
  smelt_node loss, wrt[NPARAMS], grads[NPARAMS], upd[SMELT_OPTIM_MAX_UPDATES(NPARAMS)];
  build_mlp_into(g, &loss, wrt);
  ck_assert_int_eq(smelt_grad(g, loss, NPARAMS, wrt, grads), 0);
  smelt_sgd_options so = smelt_sgd_defaults(0.1);
  so.momentum = 0.9;
  smelt_adam_options ao = smelt_adam_defaults();
  inj j;
  arm(&j, n);
  int n1 = smelt_sgd(g, NULL, 2, wrt, grads, &so, upd);
  int n2 = smelt_adam(g, NULL, 2, wrt + 2, grads + 2, &ao, upd + (n1 > 0 ? n1 : 0));
  bool hit = disarm(&j);
  int rc = n1 < 0 || n2 < 0 ? -1 : 0;
  /* errors are sticky: once SGD failed, Adam fails too */
  if (n1 < 0) TU_CHECK(n2 < 0, "allocation %ld: adam succeeded after sgd failed", n);
  if (n < 0) {
    ck_assert_int_eq(rc, 0);
    want = smelt_graph_print(g);
    smelt_graph_free(g);
    return NOT_HIT;
  }
  outcome o = graph_after(g, rc, hit, n, "optim", want);
  smelt_graph_free(g);
  if (o == NOT_HIT) smelt_free(want);
  return o;
}

/* smelt_params_new, reads, writes and reset. NULL is allowed (out of
 * memory); a params store whose calls failed still reads its initializers'
 * values afterwards. */
static outcome sc_params(long n) {
  static step_result want;
  smelt_node upd[MAX_UPDATES];
  int nupd;
  smelt_graph *g = train_graph(upd, &nupd);
  step_result got;
  memset(&got, 0, sizeof got);
  inj j;
  arm(&j, n);
  smelt_params *p = smelt_params_new(g);
  /* a failure inside smelt_params_new shows at once (the params it could
   * not initialize are picked up by the next call) */
  if (p && sm_alloc_failures() > j.before)
    check_oom(smelt_params_error(p), n, "smelt_params_new");
  int rc = p ? 0 : -1;
  for (int i = 0; i < NPARAMS && !rc; i++)
    rc = smelt_params_read(p, mlp.params[i].name, SMELT_F32, param_field(&mlp, &got, i),
                           param_bytes(&mlp, i));
  /* write the values back and reset: the same values again */
  for (int i = 0; i < NPARAMS && !rc; i++)
    rc = smelt_params_write(p, mlp.params[i].name, SMELT_F32, param_field(&mlp, &got, i),
                            param_bytes(&mlp, i));
  if (!rc) rc = smelt_params_reset(p);
  bool hit = disarm(&j);
  outcome o = hit ? (rc ? REPORTED : ABSORBED) : NOT_HIT;
  if (rc) {
    TU_CHECK(hit, "params failed with no failure injected: %s",
             p ? smelt_params_error(p) : "NULL");
    if (p) check_oom(smelt_params_error(p), n, "params");
  }
  if (!p) {
    smelt_graph_free(g);
    return o;
  }
  /* usable: every param reads its initializer's values */
  memset(&got, 0, sizeof got);
  for (int i = 0; i < NPARAMS; i++)
    TU_CHECK(smelt_params_read(p, mlp.params[i].name, SMELT_F32, param_field(&mlp, &got, i),
                               param_bytes(&mlp, i)) == 0,
             "allocation %ld: read %s afterwards: %s", n, mlp.params[i].name,
             smelt_params_error(p));
  if (n < 0) want = got;
  else TU_CHECK(same_result(&got, &want), "allocation %ld: params differ", n);
  smelt_params_free(p);
  smelt_graph_free(g);
  return o;
}

/* The text format: print, parse the text back, print again, and DOT. */
static outcome sc_text(long n) {
  static char *want;
  smelt_node upd[MAX_UPDATES];
  int nupd;
  smelt_graph *g = train_graph(upd, &nupd);
  char err[256] = "";
  inj j;
  arm(&j, n);
  char *text = smelt_graph_print(g);
  smelt_graph *h = text ? smelt_graph_parse(text, strlen(text), "t.smelt", err, sizeof err) : NULL;
  char *again = h ? smelt_graph_print(h) : NULL;
  char *dot = again ? smelt_graph_print_dot(h) : NULL;
  bool hit = disarm(&j);
  outcome o = NOT_HIT;
  if (n < 0) {
    ck_assert_msg(dot, "%s", err);
    ck_assert_str_eq(text, again);
    want = text;
    text = NULL;
  } else if (hit) {
    o = dot ? ABSORBED : REPORTED;
    /* print returns NULL (documented); parse NULL with the message */
    if (text && !h) check_oom(err, n, "parse");
    if (text) TU_CHECK(strcmp(text, want) == 0, "allocation %ld: printed text differs", n);
    if (again) TU_CHECK(strcmp(again, want) == 0, "allocation %ld: reprinted text differs", n);
    if (h) TU_ASSERT_OK(h);
  } else {
    TU_CHECK(dot && strcmp(again, want) == 0, "text: no failure and yet: %s", err);
    smelt_free(want);
  }
  smelt_free(text);
  smelt_free(again);
  smelt_free(dot);
  smelt_graph_free(h);
  smelt_graph_free(g);
  return o;
}

/* .npy: encode, write a file, read it back (file and memory). */
static char *scratch_dir;

static outcome sc_npy(long n) {
  char path[512], err[256] = "";
  snprintf(path, sizeof path, "%s/a.npy", scratch_dir);
  unlink(path);
  inj j;
  arm(&j, n);
  void *img = NULL;
  size_t len = 0;
  sm_npy a = {0}, b = {0};
  int rc = sm_npy_encode(SMELT_F32, 2, TU_DIMS(B, D_IN), x_data, &img, &len, err, sizeof err);
  if (!rc) rc = sm_npy_write_file(path, SMELT_F32, 2, TU_DIMS(B, D_IN), x_data, err, sizeof err);
  if (!rc) rc = sm_npy_read_file(path, &a, err, sizeof err);
  if (!rc) rc = sm_npy_read_mem(img, len, "img", &b, err, sizeof err);
  bool hit = disarm(&j);
  if (rc) {
    TU_CHECK(hit, "npy failed with no failure injected: %s", err);
    check_oom(err, n, "npy");
  } else {
    TU_CHECK(a.nbytes == sizeof x_data && memcmp(a.data, x_data, sizeof x_data) == 0,
             "allocation %ld: the file reads back wrong", n);
    TU_CHECK(b.nbytes == sizeof x_data && memcmp(b.data, x_data, sizeof x_data) == 0,
             "allocation %ld: the image reads back wrong", n);
  }
  sm_free(img);
  sm_npy_free(&a);
  sm_npy_free(&b);
  return hit ? (rc ? REPORTED : ABSORBED) : NOT_HIT;
}

/* safetensors: smelt_params_save, then _load into a params store whose
 * values differ. A failed save leaves no file (or the old one whole); a
 * failed load changes no param; afterwards save and load work. */
static outcome sc_safetensors(long n) {
  static step_result init;
  smelt_node upd[MAX_UPDATES];
  int nupd;
  smelt_graph *g = train_graph(upd, &nupd);
  smelt_params *p = smelt_params_new(g), *q = smelt_params_new(g);
  ck_assert(p && q);
  step_result pv, qv, got;
  memset(&pv, 0, sizeof pv);
  memset(&qv, 0, sizeof qv);
  for (int i = 0; i < NPARAMS; i++) {
    ck_assert_int_eq(smelt_params_read(p, mlp.params[i].name, SMELT_F32,
                                       param_field(&mlp, &pv, i), param_bytes(&mlp, i)),
                     0);
    float *v = param_field(&mlp, &qv, i);
    for (size_t k = 0; k < param_bytes(&mlp, i) / sizeof(float); k++) v[k] = 42.0f + (float)k;
    ck_assert_int_eq(
        smelt_params_write(q, mlp.params[i].name, SMELT_F32, v, param_bytes(&mlp, i)), 0);
  }
  char path[512];
  snprintf(path, sizeof path, "%s/ckpt.safetensors", scratch_dir);
  unlink(path);
  inj j;
  arm(&j, n);
  int rs = smelt_params_save(p, path);
  int rl = rs ? -1 : smelt_params_load(q, path);
  bool hit = disarm(&j);
  if (n < 0) init = pv;
  outcome o = hit ? (rs || rl ? REPORTED : ABSORBED) : NOT_HIT;
  if (rs) {
    TU_CHECK(hit, "save failed with no failure injected: %s", smelt_params_error(p));
    check_oom(smelt_params_error(p), n, "save");
    TU_CHECK(access(path, F_OK) != 0, "allocation %ld: a failed save left %s", n, path);
  } else if (rl) {
    TU_CHECK(hit, "load failed with no failure injected: %s", smelt_params_error(q));
    check_oom(smelt_params_error(q), n, "load");
  }
  /* q holds either its own values (failed load) or p's, nothing between */
  memset(&got, 0, sizeof got);
  for (int i = 0; i < NPARAMS; i++)
    TU_CHECK(smelt_params_read(q, mlp.params[i].name, SMELT_F32, param_field(&mlp, &got, i),
                               param_bytes(&mlp, i)) == 0,
             "read: %s", smelt_params_error(q));
  if (rl) TU_CHECK(same_result(&got, &qv), "allocation %ld: a failed load changed params", n);
  else TU_CHECK(same_result(&got, &init), "allocation %ld: loaded params differ", n);
  /* usable: save and load again without injection */
  TU_CHECK(smelt_params_save(p, path) == 0 && smelt_params_load(q, path) == 0,
           "allocation %ld: save/load afterwards: %s %s", n, smelt_params_error(p),
           smelt_params_error(q));
  smelt_params_free(p);
  smelt_params_free(q);
  smelt_graph_free(g);
  return o;
}

/* ---------------------------------------------------- program scenarios */

/* The reference step of the target under test for m's program `prog`
 * (first run from fresh params), computed once per process. */
static const step_result *reference_step(const model *m, const char *prog) {
  int e = strcmp(prog, "eval") == 0;
  if (!m->cache->have_ref[e]) {
    smelt_node upd[MAX_UPDATES];
    int nupd;
    smelt_graph *g = m->train_graph(upd, &nupd);
    smelt_params *p = smelt_params_new(g);
    ck_assert_ptr_nonnull(p);
    smelt_compile_options o = test_options();
    step_or_fail(m, prog, g, p, &o, &m->cache->ref[e], -1);
    smelt_params_free(p);
    smelt_graph_free(g);
    m->cache->have_ref[e] = true;
  }
  return &m->cache->ref[e];
}

/* The train graph's text and its params' initial values (computed once). */
static const char *train_text(const model *m) {
  if (!m->cache->text) {
    smelt_node upd[MAX_UPDATES];
    int nupd;
    smelt_graph *g = m->train_graph(upd, &nupd);
    char *t = smelt_graph_print(g);
    ck_assert_ptr_nonnull(t);
    /* kept to the end of the process, outside the library */
    m->cache->text = strdup(t);
    smelt_free(t);
    smelt_graph_free(g);
  }
  return m->cache->text;
}

static const step_result *initial_params(const model *m) {
  if (!m->cache->have_init) {
    smelt_node upd[MAX_UPDATES];
    int nupd;
    smelt_graph *g = m->train_graph(upd, &nupd);
    smelt_params *p = smelt_params_new(g);
    memset(&m->cache->init, 0, sizeof m->cache->init);
    ck_assert_int_eq(read_result(m, 0, NULL, p, &m->cache->init), 0);
    smelt_params_free(p);
    smelt_graph_free(g);
    m->cache->have_init = true;
  }
  return &m->cache->init;
}

/* Full checks after every `recheck`-th failure of the cpu target (16 for
 * `compile`, 64 for the compiles that repeat its code paths with dumps,
 * threads, a cache or the CNN): a compile that JIT-compiles the whole
 * program costs LLVM's time. */
static long recheck_every(long cpu) {
  const char *e = getenv("SMELT_ALLOC_RECHECK");
  if (e && *e) return atol(e) > 0 ? atol(e) : 1;
  return test_options().target == SMELT_TARGET_CPU ? cpu : 1;
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  int count = 0;
  for (struct dirent *e; d && (e = readdir(d));) count += e->d_name[0] != '.';
  if (d) closedir(d);
  return count;
}

/* Compiling m's program `prog` (and, on the interpreter, its evaluation
 * program too) with options o under injection (for the cpu target:
 * passes, fusion, kernel IR, LLVM emission and the JIT glue). NULL
 * (documented) or a program error, the graph and the params unchanged;
 * then they still compile and run to the reference numbers. A program that
 * compiled under injection runs to them. */
static outcome compile_scenario(const model *m, const char *prog, long n,
                                const smelt_compile_options *o, const char *what,
                                long recheck_cpu) {
  const step_result *want = reference_step(m, prog);
  long recheck = recheck_every(recheck_cpu);
  int nouts = prog_outs(m, prog);
  bool empty_cache = o->cache_dir && count_entries(o->cache_dir) == 0;
  smelt_node upd[MAX_UPDATES];
  int nupd;
  smelt_graph *g = m->train_graph(upd, &nupd);
  smelt_params *p = smelt_params_new(g);
  ck_assert_ptr_nonnull(p);
  const char *eval_outs[8];
  for (int i = 0; i < m->neval; i++) eval_outs[i] = m->outs[i].name;
  inj j;
  arm(&j, n);
  smelt_program *pr = smelt_program_compile_named(g, p, prog, o);
  /* the evaluation program too on the interpreter (on the cpu target it
   * would double LLVM's time for the same code paths) */
  bool with_eval = o->target != SMELT_TARGET_CPU;
  smelt_program *ev = with_eval && pr && !smelt_program_error(pr)
                          ? smelt_program_compile_eval(g, p, m->neval, eval_outs, o)
                          : NULL;
  bool hit = disarm(&j);
  bool failed = !pr || smelt_program_error(pr) || (with_eval && (!ev || smelt_program_error(ev)));
  if (failed) {
    TU_CHECK(hit, "%s failed with no failure injected: %s", what,
             pr ? smelt_program_error(pr) : "NULL");
    if (pr && smelt_program_error(pr)) check_oom(smelt_program_error(pr), n, what);
    if (pr) note_module(smelt_program_error(pr));
    if (ev && smelt_program_error(ev)) check_oom(smelt_program_error(ev), n, what);
    if (verbose() && pr)
      fprintf(stderr, "  %s %ld: %s\n", what, n,
              smelt_program_error(pr) ? smelt_program_error(pr)
                                      : ev ? smelt_program_error(ev) : "eval NULL");
    /* a failed program refuses to run, with its error */
    if (pr && smelt_program_error(pr)) TU_CHECK(smelt_program_run(pr) == -1, "ran anyway");
  }
  step_result got;
  memset(&got, 0, sizeof got);
  if (!failed) {
    /* the programs compiled under injection run to the reference */
    TU_CHECK(bind_inputs(m, pr) == 0 && smelt_program_run(pr) == 0 &&
                 read_result(m, nouts, pr, p, &got) == 0,
             "%s: run: %s", what, smelt_program_error(pr));
  }
  smelt_program_free(pr);
  smelt_program_free(ev);
  if (failed) {
    /* the graph and the params are as before */
    char *text = smelt_graph_print(g);
    TU_CHECK(text && strcmp(text, train_text(m)) == 0, "allocation %ld: %s changed the graph",
             n, what);
    smelt_free(text);
    step_result before;
    memset(&before, 0, sizeof before);
    TU_CHECK(read_result(m, 0, NULL, p, &before) == 0, "read params: %s", smelt_params_error(p));
    TU_CHECK(same_result(&before, initial_params(m)), "allocation %ld: %s changed the params", n,
             what);
  }
  if (failed && n % recheck == 0) step_or_fail(m, prog, g, p, o, &got, n);
  else if (failed) got = *want;
  TU_CHECK(same_result(&got, want), "allocation %ld: %s: the step differs", n, what);
  smelt_params_free(p);
  /* whatever the failure left in the cache compiles to the same step:
   * checked where the cache may have been written under injection (a
   * compile that coped, entries in what was an empty cache) and every
   * `recheck`-th failure */
  if (o->cache_dir && n >= 0 &&
      (!failed || n % recheck == 0 || (empty_cache && count_entries(o->cache_dir)))) {
    p = smelt_params_new(g);
    ck_assert_ptr_nonnull(p);
    step_or_fail(m, prog, g, p, o, &got, n);
    TU_CHECK(same_result(&got, want), "allocation %ld: %s: the step from the cache differs", n,
             what);
    smelt_params_free(p);
  }
  smelt_graph_free(g);
  return hit ? (failed ? REPORTED : ABSORBED) : NOT_HIT;
}

static outcome sc_compile(long n) {
  smelt_compile_options o = test_options();
  return compile_scenario(&mlp, "train", n, &o, "compile", 16);
}

static outcome sc_cnn_compile(long n) {
  smelt_compile_options o = test_options();
  return compile_scenario(&cnn, "train", n, &o, "cnn-compile", 64);
}

/* The same with every dump stage written to files: the printers of each
 * stage under injection. */
static outcome sc_compile_dump(long n) {
  smelt_compile_options o = test_options();
  o.dump = "all";
  o.dump_dir = scratch_dir;
  return compile_scenario(&mlp, "train", n, &o, "compile+dump", 64);
}

/* The modules compiled on two threads: failures on the pool's threads
 * (the order of allocations varies, their number does not). */
static outcome sc_compile_threads(long n) {
  smelt_compile_options o = test_options();
  o.num_threads = 2;
  return compile_scenario(&mlp, "train", n, &o, "compile-threads", 64);
}

/* The disk cache: a compile that writes the cache (a fresh directory each
 * time) and one that reads it. */
static char *cache_dir;

static outcome sc_cache_miss(long n) {
  smelt_compile_options o = test_options();
  tu_rm_tree(cache_dir);
  mkdir(cache_dir, 0700);
  o.cache_dir = cache_dir;
  return compile_scenario(&mlp, "train", n, &o, "cache-miss", 64);
}

static outcome sc_cache_hit(long n) {
  smelt_compile_options o = test_options();
  o.cache_dir = cache_dir;
  if (n < 0) {
    /* fill the cache once: every later compile hits */
    tu_rm_tree(cache_dir);
    mkdir(cache_dir, 0700);
    ck_assert(compile_scenario(&mlp, "train", -1, &o, "cache fill", 16) == NOT_HIT);
    smelt_node upd[MAX_UPDATES];
    int nupd;
    smelt_graph *g = train_graph(upd, &nupd);
    smelt_params *p = smelt_params_new(g);
    smelt_program *pr = smelt_program_compile_named(g, p, "train", &o);
    smelt_program_stats st;
    ck_assert_int_eq(smelt_program_get_stats(pr, &st), 0);
    ck_assert_msg(st.from_cache, "the second compile did not hit the cache");
    smelt_program_free(pr);
    smelt_params_free(p);
    smelt_graph_free(g);
  }
  return compile_scenario(&mlp, "train", n, &o, "cache-hit", 16);
}

/* A run: bind, run and read under injection. A failed run changes no
 * param, and a run without injection then gives the reference step. */
static outcome run_scenario(const model *m, long n, const char *what) {
  const step_result *want = reference_step(m, "train");
  smelt_node upd[MAX_UPDATES];
  int nupd;
  smelt_graph *g = m->train_graph(upd, &nupd);
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = test_options();
  smelt_program *pr = smelt_program_compile_named(g, p, "train", &o);
  ck_assert_msg(pr && !smelt_program_error(pr), "%s", pr ? smelt_program_error(pr) : "NULL");
  step_result got;
  memset(&got, 0, sizeof got);
  inj j;
  arm(&j, n);
  int rb = bind_inputs(m, pr);
  int rr = rb ? -1 : smelt_program_run(pr);
  bool hit = disarm(&j);
  outcome o2 = hit ? (rb || rr ? REPORTED : ABSORBED) : NOT_HIT;
  if (rb || rr) {
    TU_CHECK(hit, "%s failed with no failure injected: %s", what, smelt_program_error(pr));
    check_oom(smelt_program_error(pr), n, rb ? "bind" : what);
    if (verbose()) fprintf(stderr, "  %s %ld: %s\n", what, n, smelt_program_error(pr));
    /* nothing to read from a failed run */
    float loss;
    TU_CHECK(smelt_program_read(pr, "loss", SMELT_F32, &loss, sizeof loss) == -1,
             "allocation %ld: read after a failed run succeeded", n);
    /* and the same program runs again */
    TU_CHECK(bind_inputs(m, pr) == 0 && smelt_program_run(pr) == 0,
             "allocation %ld: %s afterwards: %s", n, what, smelt_program_error(pr));
  }
  TU_CHECK(read_result(m, m->nouts, pr, p, &got) == 0, "allocation %ld: read: %s / %s", n,
           smelt_program_error(pr), smelt_params_error(p));
  TU_CHECK(same_result(&got, want), "allocation %ld: %s: the step differs", n, what);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
  return o2;
}

static outcome sc_run(long n) { return run_scenario(&mlp, n, "run"); }
static outcome sc_cnn_run(long n) { return run_scenario(&cnn, n, "cnn-run"); }

/* Reading outputs and params after a run, under injection; reads without
 * injection then give the reference. */
static outcome read_scenario(const model *m, long n) {
  const step_result *want = reference_step(m, "train");
  smelt_node upd[MAX_UPDATES];
  int nupd;
  smelt_graph *g = m->train_graph(upd, &nupd);
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = test_options();
  smelt_program *pr = smelt_program_compile_named(g, p, "train", &o);
  ck_assert_msg(pr && !smelt_program_error(pr), "%s", pr ? smelt_program_error(pr) : "NULL");
  ck_assert_int_eq(bind_inputs(m, pr), 0);
  ck_assert_int_eq(smelt_program_run(pr), 0);
  step_result got;
  memset(&got, 0, sizeof got);
  inj j;
  arm(&j, n);
  int rc = read_result(m, m->nouts, pr, p, &got);
  bool hit = disarm(&j);
  if (rc) {
    TU_CHECK(hit, "read failed with no failure injected");
    const char *e = smelt_program_error(pr) ? smelt_program_error(pr) : smelt_params_error(p);
    check_oom(e, n, "read");
    TU_CHECK(read_result(m, m->nouts, pr, p, &got) == 0,
             "allocation %ld: read afterwards: %s / %s", n, smelt_program_error(pr),
             smelt_params_error(p));
  }
  TU_CHECK(same_result(&got, want), "allocation %ld: read: the values differ", n);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
  return hit ? (rc ? REPORTED : ABSORBED) : NOT_HIT;
}

static outcome sc_read(long n) { return read_scenario(&mlp, n); }
static outcome sc_cnn_read(long n) { return read_scenario(&cnn, n); }

/* The plain interpreter: new, bind, run, read (the model's second output:
 * the MLP's probs, the CNN's logits). */
static int interp_bind(const model *m, smelt_interp *it) {
  for (int i = 0; i < m->ninputs; i++) {
    const input_desc *in = &m->inputs[i];
    if (smelt_interp_bind(it, in->name, in->dt, in->rank, in->dims, in->data, in->bytes))
      return -1;
  }
  return 0;
}

static outcome interp_scenario(const model *m, long n) {
  static float want[MAX_FLOATS];
  const tensor_desc *out = &m->outs[1];
  size_t bytes = out->n * sizeof(float);
  smelt_node upd[MAX_UPDATES];
  int nupd;
  smelt_graph *g = m->train_graph(upd, &nupd);
  float got[MAX_FLOATS];
  memset(got, 0, sizeof got);
  inj j;
  arm(&j, n);
  smelt_interp *it = smelt_interp_new(g);
  int rc = it ? 0 : -1;
  if (!rc) rc = interp_bind(m, it);
  if (!rc) rc = smelt_interp_run(it);
  if (!rc) rc = smelt_interp_read(it, out->name, SMELT_F32, got, bytes);
  bool hit = disarm(&j);
  if (rc) {
    TU_CHECK(hit, "interp failed with no failure injected: %s",
             it ? smelt_interp_error(it) : "NULL");
    if (it) {
      check_oom(smelt_interp_error(it), n, "interp");
      /* usable: bound again, run and read without injection */
      TU_CHECK(interp_bind(m, it) == 0 && smelt_interp_run(it) == 0 &&
                   smelt_interp_read(it, out->name, SMELT_F32, got, bytes) == 0,
               "allocation %ld: interp afterwards: %s", n, smelt_interp_error(it));
      TU_CHECK(memcmp(got, want, bytes) == 0, "allocation %ld: interp values differ", n);
    }
  } else if (n < 0) {
    memcpy(want, got, bytes);
  } else {
    TU_CHECK(memcmp(got, want, bytes) == 0, "allocation %ld: interp values differ", n);
  }
  smelt_interp_free(it);
  smelt_graph_free(g);
  return hit ? (rc ? REPORTED : ABSORBED) : NOT_HIT;
}

static outcome sc_interp(long n) { return interp_scenario(&mlp, n); }
static outcome sc_cnn_interp(long n) { return interp_scenario(&cnn, n); }

/* What compiled targets share (runtime/plan.c): the graph passes, fusion,
 * lowering to kernel IR and memory planning of the train program, every
 * stage dumped to files. NULL with a message or none (out of memory); a
 * plan made under injection is the reference plan (dumps may be lost: a
 * dump never fails a compilation). */
static char *plan_text(const sm_plan *p) {
  sm_buf b = {0};
  char *f = sm_fusion_print(p->fusion);
  sm_buf_printf(&b, "%s\narena %zu, %d buffers\n", f ? f : "(oom)", p->arena_bytes, p->nbuffers);
  sm_free(f);
  for (size_t k = 0; k < p->nkernels; k++) sm_kernel_print_buf(&b, p->kernels[k].k);
  char *t = sm_buf_take(&b);
  sm_buf_free(&b);
  return t;
}

static outcome sc_plan(long n) {
  static char *want;
  smelt_node upd[MAX_UPDATES];
  int nupd;
  smelt_graph *g = train_graph(upd, &nupd);
  uint32_t roots[3 + 16];
  size_t nroots = 0;
  for (size_t i = 0; i < smelt_graph_output_count(g); i++)
    roots[nroots++] = smelt_graph_output(g, i, NULL).index - 1;
  for (int k = 0; k < nupd; k++) roots[nroots++] = upd[k].index - 1;
  smelt_compile_options o = test_options();
  sm_dump dump;
  char *err = NULL;
  ck_assert_int_eq(sm_dump_init(&dump, "all", scratch_dir, &err), 0);
  inj j;
  arm(&j, n);
  sm_plan *p = sm_plan_new(g, nroots, roots, NULL, &o, &dump, &err);
  bool hit = disarm(&j);
  outcome out = hit ? (p ? ABSORBED : REPORTED) : NOT_HIT;
  if (!p) {
    TU_CHECK(hit, "plan failed with no failure injected: %s", err ? err : "(no message)");
    if (err) check_oom(err, n, "plan");
  } else {
    char *t = plan_text(p);
    ck_assert_ptr_nonnull(t);
    if (n < 0) want = t, t = NULL;
    else if (strcmp(t, want) != 0) {
      if (verbose()) fprintf(stderr, "=== want\n%s\n=== got\n%s\n", want, t);
      ck_abort_msg("allocation %ld: the plan differs", n);
    }
    sm_free(t);
  }
  if (n >= 0 && !hit) sm_free(want);
  sm_free(err);
  sm_plan_free(p);
  smelt_graph_free(g);
  return out;
}

/* Ahead-of-time compilation of the declared programs to an object and a
 * header: -1 with a message (or NULL message: documented as out of
 * memory), nothing left at the paths. */
/* A whole file (NUL-terminated, malloc'ed; its size in file_bytes), or
 * NULL. */
static size_t file_bytes;
static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)len + 1);
  if (s && fread(s, 1, (size_t)len, f) != (size_t)len) {
    free(s);
    s = NULL;
  }
  fclose(f);
  if (s) s[len] = 0, file_bytes = (size_t)len;
  return s;
}

static outcome sc_aot(long n) {
  static char *want_hdr, *want_obj;
  static size_t want_obj_bytes;
  smelt_node upd[MAX_UPDATES];
  int nupd;
  smelt_graph *g = train_graph(upd, &nupd);
  char obj[512], hdr[512];
  snprintf(obj, sizeof obj, "%s/m.o", scratch_dir);
  snprintf(hdr, sizeof hdr, "%s/m.h", scratch_dir);
  unlink(obj);
  unlink(hdr);
  smelt_aot_options o = smelt_aot_defaults();
  o.object_path = obj;
  o.header_path = hdr;
  o.opt_level = 0; /* as test_options */
  o.dump = NULL;
  o.dump_dir = NULL;
  char *err = NULL;
  inj j;
  arm(&j, n);
  int rc = smelt_aot_compile(g, &o, &err);
  bool hit = disarm(&j);
  if (rc) {
    TU_CHECK(hit, "aot failed with no failure injected: %s", err ? err : "(no message)");
    check_oom(err, n, "aot");
    TU_CHECK(access(obj, F_OK) != 0 && access(hdr, F_OK) != 0,
             "allocation %ld: a failed aot compile left files", n);
    if (verbose()) fprintf(stderr, "  aot %ld: %s\n", n, err);
  } else {
    /* what was written is what a compile without failures writes */
    char *h = read_file(hdr), *ob = read_file(obj);
    if (n < 0) want_obj_bytes = file_bytes;
    TU_CHECK(h && ob, "aot: no files");
    if (n < 0) {
      want_hdr = h, want_obj = ob;
      h = ob = NULL;
    } else {
      TU_CHECK(strcmp(h, want_hdr) == 0, "allocation %ld: the header differs", n);
      TU_CHECK(file_bytes == want_obj_bytes && memcmp(ob, want_obj, file_bytes) == 0,
               "allocation %ld: the object differs", n);
    }
    free(h);
    free(ob);
  }
  if (n >= 0 && !hit) {
    free(want_hdr);
    free(want_obj);
  }
  smelt_free(err);
  smelt_graph_free(g);
  return hit ? (rc ? REPORTED : ABSORBED) : NOT_HIT;
}

/* ----------------------------------------------------------------- suite */

/* One row per scenario. `alloc` runs the first table (programs on the
 * interpreter), `alloc-cpu` the second (programs on the cpu target). */
static const scenario graph_scenarios[] = {
    {"build", sc_build, 1},
    {"cnn-build", sc_cnn_build, 1},
    {"grad", sc_grad, 1},
    {"cnn-grad", sc_cnn_grad, 1},
    {"cnn-build-shift", sc_cnn_build_shift, 1},
    {"cnn-grad-shift", sc_cnn_grad_shift, 1},
    {"grad2", sc_grad2, 1},
    {"optim", sc_optim, 1},
    {"params", sc_params, 1},
    {"text", sc_text, 1},
    {"npy", sc_npy, 1},
    {"safetensors", sc_safetensors, 1},
    {"interp", sc_interp, 1},
    {"cnn-interp", sc_cnn_interp, 1},
    {"plan", sc_plan, 1},
    {"compile", sc_compile, 1},
    {"run", sc_run, 1},
    {"read", sc_read, 1},
    {"cnn-compile", sc_cnn_compile, 1},
    {"cnn-run", sc_cnn_run, 1},
    {"cnn-read", sc_cnn_read, 1},
};
static const scenario cpu_scenarios[] = {
    {"compile", sc_compile, 1},
    {"compile-dump", sc_compile_dump, 4},
    {"compile-threads", sc_compile_threads, 4},
    {"cache-miss", sc_cache_miss, 4},
    {"cache-hit", sc_cache_hit, 1},
    {"run", sc_run, 1},
    {"read", sc_read, 1},
    {"aot", sc_aot, 1},
    {"cnn-compile", sc_cnn_compile, 4},
    {"cnn-run", sc_cnn_run, 1},
    {"cnn-read", sc_cnn_read, 1},
};

static const scenario *table;

static void setup_dirs(void) {
  scratch_dir = tu_temp_dir("alloc");
  cache_dir = malloc(strlen(scratch_dir) + 8);
  sprintf(cache_dir, "%s/cache", scratch_dir);
}

static void teardown_dirs(void) {
  tu_rm_tree(scratch_dir);
  free(scratch_dir);
  free(cache_dir);
  scratch_dir = cache_dir = NULL;
}

/* SMELT_ALLOC_COUNT=1: only counts each scenario's allocation points, by
 * bisection on the first n that no run reaches (for tuning the suite). */
/* One probe of the bisection. A scenario drops its reference results at
 * the run that is not hit (inject_each's last), so the reference is made
 * again before the next probe. */
static bool probe_hits(const scenario *s, long n, bool *have_ref) {
  if (!*have_ref) ck_assert(s->run(-1) == NOT_HIT);
  outcome o = s->run(n);
  *have_ref = o != NOT_HIT;
  return o != NOT_HIT;
}

static void count_points(const scenario *s) {
  double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
  ck_assert(s->run(-1) == NOT_HIT);
  double one = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
  bool have_ref = true;
  long lo = 0, hi = 1; /* runs with n < lo hit; a run with n = hi does not */
  while (probe_hits(s, hi, &have_ref)) lo = hi, hi *= 2;
  while (lo < hi) {
    long mid = lo + (hi - lo) / 2;
    if (probe_hits(s, mid, &have_ref)) lo = mid + 1;
    else hi = mid;
  }
  fprintf(stderr, "alloc: %-14s %5ld allocation points (one run %.2f s CPU)\n", s->name, lo, one);
}

START_TEST(each_allocation_fails) {
  /* SMELT_ALLOC_SCENARIO=name runs that scenario alone (debugging) */
  const char *only = getenv("SMELT_ALLOC_SCENARIO");
  if (only && *only && strcmp(only, table[_i].name) != 0) return;
  const char *count = getenv("SMELT_ALLOC_COUNT");
  if (count && *count && strcmp(count, "0") != 0) count_points(&table[_i]);
  else inject_each(&table[_i]);
}
END_TEST

int main(void) {
  cnn_fill_x();
  const char *t = getenv("SMELT_TEST_TARGET");
  bool cpu = t && strcmp(t, "cpu") == 0;
  int count;
  if (cpu) {
    if (!tu_have_cpu()) {
      printf("this libsmelt has no cpu target (built without LLVM): skipping\n");
      return 77;
    }
    table = cpu_scenarios;
    count = (int)(sizeof cpu_scenarios / sizeof *cpu_scenarios);
  } else {
    table = graph_scenarios;
    count = (int)(sizeof graph_scenarios / sizeof *graph_scenarios);
  }
  Suite *s = suite_create("alloc");
  TCase *tc = tcase_create("scenarios");
  tcase_add_checked_fixture(tc, setup_dirs, teardown_dirs);
  tcase_add_loop_test(tc, each_allocation_fails, 0, count);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
