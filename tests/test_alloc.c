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
  /* 1: every allocation fails in turn; k: every k-th (allocations 0, k,
   * 2k, ...), for the cpu compiles whose every run costs a whole LLVM
   * compilation; the output says so */
  int stride;
} scenario;

static double clock_s(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Fails the 1st, 2nd, ... allocation of the scenario until a run sees no
 * injected failure; prints the number of allocation points. */
static void inject_each(const scenario *s) {
  double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
  ck_assert_msg(s->run(-1) == NOT_HIT, "%s: the reference run failed", s->name);
  long n, reported = 0, absorbed = 0, runs = 0;
  long stride = s->stride > 1 ? s->stride : 1;
  for (n = 0;; n += stride, runs++) {
    ck_assert_msg(n < MAX_POINTS, "%s: still failing after %d injections", s->name, MAX_POINTS);
    double ci = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    outcome o = s->run(n);
    if (getenv("SMELT_ALLOC_TIMES"))
      fprintf(stderr, "  %s %ld %.4f\n", s->name, n, clock_s(CLOCK_PROCESS_CPUTIME_ID) - ci);
    if (o == NOT_HIT) break;
    if (o == REPORTED) reported++;
    else absorbed++;
    if (o == ABSORBED && verbose()) fprintf(stderr, "  %s: allocation %ld absorbed\n", s->name, n);
  }
  /* CPU time too: the wall time of a loaded machine says little */
  char every[64] = "", count_text[24];
  snprintf(count_text, sizeof count_text, "%s%ld", stride > 1 ? "~" : "", n);
  if (stride > 1) snprintf(every, sizeof every, ", every %ldth failed: %ld runs", stride, runs);
  fprintf(stderr,
          "alloc: %-15s %6s allocation points%s: %5ld reported, %4ld absorbed "
          "(%.1f s, %.1f s CPU)\n",
          s->name, count_text, every, reported, absorbed,
          clock_s(CLOCK_MONOTONIC) - t0, clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0);
  /* every scenario allocates: zero points means the window missed */
  ck_assert_int_gt(n, 0);
}

/* ---------------------------------------------------------------- data */

enum { B = 4, D_IN = 3, D_H = 5, D_OUT = 3 };
static const float x_data[B * D_IN] = {0.5f, -1.0f, 2.0f, 1.5f, 0.25f, -0.5f,
                                       -2.0f, 1.0f, 0.75f, 0.0f, -0.25f, 1.25f};
static const int64_t label_data[B] = {0, 2, 1, 0};
static const char *const param_names[] = {"w1", "b1", "w2", "b2"};
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

/* The results of one training step: outputs, then every param's value
 * (in param_names order: the updated weights). */
enum { NLOSS = 1, NPROBS = B * D_OUT, NROWMAX = B };
typedef struct step_result {
  float loss[NLOSS], probs[NPROBS], rowmax[NROWMAX];
  float w1[D_IN * D_H], b1[D_H], w2[D_H * D_OUT], b2[D_OUT];
} step_result;

static void *param_field(step_result *r, int i) {
  void *f[NPARAMS] = {r->w1, r->b1, r->w2, r->b2};
  return f[i];
}
static size_t param_bytes(int i) {
  size_t b[NPARAMS] = {sizeof(float) * D_IN * D_H, sizeof(float) * D_H,
                       sizeof(float) * D_H * D_OUT, sizeof(float) * D_OUT};
  return b[i];
}

static bool same_result(const step_result *a, const step_result *b) {
  return memcmp(a, b, sizeof *a) == 0;
}

static int bind_inputs(smelt_program *pr) {
  if (smelt_program_bind(pr, "x", SMELT_F32, 2, TU_DIMS(B, D_IN), x_data, sizeof x_data))
    return -1;
  return smelt_program_bind(pr, "labels", SMELT_I64, 1, TU_DIMS(B), label_data,
                            sizeof label_data);
}

/* Reads the outputs of the last run (pr NULL: none) and the params. 0, or
 * -1 (the error is the program's or the params'). */
static int read_result(smelt_program *pr, smelt_params *p, step_result *r) {
  if (pr && (smelt_program_read(pr, "loss", SMELT_F32, r->loss, sizeof r->loss) ||
             smelt_program_read(pr, "probs", SMELT_F32, r->probs, sizeof r->probs) ||
             smelt_program_read(pr, "rowmax", SMELT_F32, r->rowmax, sizeof r->rowmax)))
    return -1;
  for (int i = 0; i < NPARAMS; i++)
    if (smelt_params_read(p, param_names[i], SMELT_F32, param_field(r, i), param_bytes(i)))
      return -1;
  return 0;
}

/* Compiles "train" with o (no injection), runs one step from p's current
 * values and reads everything; fails the test on any error. */
static void step_or_fail(smelt_graph *g, smelt_params *p, const smelt_compile_options *o,
                         step_result *r, long n) {
  smelt_program *pr = smelt_program_compile_named(g, p, "train", o);
  ck_assert_ptr_nonnull(pr);
  TU_CHECK(!smelt_program_error(pr), "after allocation %ld: compile: %s", n,
           smelt_program_error(pr));
  TU_CHECK(bind_inputs(pr) == 0 && smelt_program_run(pr) == 0, "after allocation %ld: run: %s",
           n, smelt_program_error(pr));
  TU_CHECK(read_result(pr, p, r) == 0, "after allocation %ld: read: %s / %s", n,
           smelt_program_error(pr), smelt_params_error(p));
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

/* Building the MLP and declaring a program: smelt_graph_new and every
 * builder under injection. A failed builder leaves a sticky "<op>: out of
 * memory"; the graph still prints and frees. */
static outcome sc_build(long n) {
  static char *want;
  inj j;
  arm(&j, n);
  smelt_graph *g = smelt_graph_new();
  smelt_node loss = SMELT_INVALID, wrt[NPARAMS];
  if (g) {
    build_mlp_into(g, &loss, wrt);
    smelt_graph_add_program(g, "eval", 2, (const char *[]){"loss", "probs"}, 0, NULL, true);
  }
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
    check_oom(e, n, "build");
    /* sticky: later builders return invalid handles, the error stays */
    TU_CHECK(!smelt_node_valid(smelt_exp(g, smelt_find(g, "x"))), "not sticky");
    TU_CHECK(strcmp(smelt_graph_error(g), e) == 0, "the first error changed");
    if (verbose()) fprintf(stderr, "  build %ld: %s\n", n, e);
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
  smelt_node upd[16];
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
    rc = smelt_params_read(p, param_names[i], SMELT_F32, param_field(&got, i), param_bytes(i));
  /* write the values back and reset: the same values again */
  for (int i = 0; i < NPARAMS && !rc; i++)
    rc = smelt_params_write(p, param_names[i], SMELT_F32, param_field(&got, i), param_bytes(i));
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
    TU_CHECK(smelt_params_read(p, param_names[i], SMELT_F32, param_field(&got, i),
                               param_bytes(i)) == 0,
             "allocation %ld: read %s afterwards: %s", n, param_names[i], smelt_params_error(p));
  if (n < 0) want = got;
  else TU_CHECK(same_result(&got, &want), "allocation %ld: params differ", n);
  smelt_params_free(p);
  smelt_graph_free(g);
  return o;
}

/* The text format: print, parse the text back, print again, and DOT. */
static outcome sc_text(long n) {
  static char *want;
  smelt_node upd[16];
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
  smelt_node upd[16];
  int nupd;
  smelt_graph *g = train_graph(upd, &nupd);
  smelt_params *p = smelt_params_new(g), *q = smelt_params_new(g);
  ck_assert(p && q);
  step_result pv, qv, got;
  memset(&pv, 0, sizeof pv);
  memset(&qv, 0, sizeof qv);
  for (int i = 0; i < NPARAMS; i++) {
    ck_assert_int_eq(smelt_params_read(p, param_names[i], SMELT_F32, param_field(&pv, i),
                                       param_bytes(i)), 0);
    float *v = param_field(&qv, i);
    for (size_t k = 0; k < param_bytes(i) / sizeof(float); k++) v[k] = 42.0f + (float)k;
    ck_assert_int_eq(smelt_params_write(q, param_names[i], SMELT_F32, v, param_bytes(i)), 0);
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
    TU_CHECK(smelt_params_read(q, param_names[i], SMELT_F32, param_field(&got, i),
                               param_bytes(i)) == 0,
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

/* The reference step of the target under test (first run from fresh
 * params), computed once per process. */
static step_result ref_step;
static bool have_ref_step;

static const step_result *reference_step(void) {
  if (!have_ref_step) {
    smelt_node upd[16];
    int nupd;
    smelt_graph *g = train_graph(upd, &nupd);
    smelt_params *p = smelt_params_new(g);
    ck_assert_ptr_nonnull(p);
    smelt_compile_options o = test_options();
    step_or_fail(g, p, &o, &ref_step, -1);
    smelt_params_free(p);
    smelt_graph_free(g);
    have_ref_step = true;
  }
  return &ref_step;
}

/* The train graph's text and its params' initial values (computed once). */
static const char *train_text(void) {
  static char *text;
  if (!text) {
    smelt_node upd[16];
    int nupd;
    smelt_graph *g = train_graph(upd, &nupd);
    char *t = smelt_graph_print(g);
    ck_assert_ptr_nonnull(t);
    text = strdup(t); /* kept to the end of the process, outside the library */
    smelt_free(t);
    smelt_graph_free(g);
  }
  return text;
}

static const step_result *initial_params(void) {
  static step_result init;
  static bool have;
  if (!have) {
    smelt_node upd[16];
    int nupd;
    smelt_graph *g = train_graph(upd, &nupd);
    smelt_params *p = smelt_params_new(g);
    ck_assert_int_eq(read_result(NULL, p, &init), 0);
    smelt_params_free(p);
    smelt_graph_free(g);
    have = true;
  }
  return &init;
}

/* Full checks after every `recheck`-th failure of the cpu target: a
 * compile that JIT-compiles the whole program costs LLVM's time. */
static long recheck_every(void) {
  const char *e = getenv("SMELT_ALLOC_RECHECK");
  if (e && *e) return atol(e) > 0 ? atol(e) : 1;
  return test_options().target == SMELT_TARGET_CPU ? 16 : 1;
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  int count = 0;
  for (struct dirent *e; d && (e = readdir(d));) count += e->d_name[0] != '.';
  if (d) closedir(d);
  return count;
}

/* Compiling "train" (and, on the interpreter, "eval") with options o under
 * injection (for the cpu target: passes, fusion, kernel IR, LLVM emission
 * and the JIT glue). NULL (documented) or a program error, the graph and
 * the params unchanged; then they still compile and run to the reference
 * numbers. A program that compiled under injection runs to them. */
static outcome compile_scenario(long n, const smelt_compile_options *o, const char *what) {
  const step_result *want = reference_step();
  bool empty_cache = o->cache_dir && count_entries(o->cache_dir) == 0;
  smelt_node upd[16];
  int nupd;
  smelt_graph *g = train_graph(upd, &nupd);
  smelt_params *p = smelt_params_new(g);
  ck_assert_ptr_nonnull(p);
  inj j;
  arm(&j, n);
  smelt_program *pr = smelt_program_compile_named(g, p, "train", o);
  /* the evaluation program too on the interpreter (on the cpu target it
   * would double LLVM's time for the same code paths) */
  bool with_eval = o->target != SMELT_TARGET_CPU;
  smelt_program *ev = with_eval && pr && !smelt_program_error(pr)
                          ? smelt_program_compile_eval(g, p, 2, (const char *[]){"loss", "probs"},
                                                       o)
                          : NULL;
  bool hit = disarm(&j);
  bool failed = !pr || smelt_program_error(pr) || (with_eval && (!ev || smelt_program_error(ev)));
  if (failed) {
    TU_CHECK(hit, "%s failed with no failure injected: %s", what,
             pr ? smelt_program_error(pr) : "NULL");
    if (pr && smelt_program_error(pr)) check_oom(smelt_program_error(pr), n, what);
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
    TU_CHECK(bind_inputs(pr) == 0 && smelt_program_run(pr) == 0 &&
                 read_result(pr, p, &got) == 0,
             "%s: run: %s", what, smelt_program_error(pr));
  }
  smelt_program_free(pr);
  smelt_program_free(ev);
  if (failed) {
    /* the graph and the params are as before */
    char *text = smelt_graph_print(g);
    TU_CHECK(text && strcmp(text, train_text()) == 0, "allocation %ld: %s changed the graph", n,
             what);
    smelt_free(text);
    step_result before;
    memset(&before, 0, sizeof before);
    TU_CHECK(read_result(NULL, p, &before) == 0, "read params: %s", smelt_params_error(p));
    TU_CHECK(memcmp(before.w1, initial_params()->w1, sizeof before - offsetof(step_result, w1)) == 0,
             "allocation %ld: %s changed the params", n, what);
  }
  if (failed && n % recheck_every() == 0) step_or_fail(g, p, o, &got, n);
  else if (failed) got = *want;
  TU_CHECK(same_result(&got, want), "allocation %ld: %s: the step differs", n, what);
  smelt_params_free(p);
  /* whatever the failure left in the cache compiles to the same step:
   * checked where the cache may have been written under injection (a
   * compile that coped, entries in what was an empty cache) and every
   * `recheck`-th failure */
  if (o->cache_dir && n >= 0 &&
      (!failed || n % recheck_every() == 0 || (empty_cache && count_entries(o->cache_dir)))) {
    p = smelt_params_new(g);
    ck_assert_ptr_nonnull(p);
    step_or_fail(g, p, o, &got, n);
    TU_CHECK(same_result(&got, want), "allocation %ld: %s: the step from the cache differs", n,
             what);
    smelt_params_free(p);
  }
  smelt_graph_free(g);
  return hit ? (failed ? REPORTED : ABSORBED) : NOT_HIT;
}

static outcome sc_compile(long n) {
  smelt_compile_options o = test_options();
  return compile_scenario(n, &o, "compile");
}

/* The same with every dump stage written to files: the printers of each
 * stage under injection. */
static outcome sc_compile_dump(long n) {
  smelt_compile_options o = test_options();
  o.dump = "all";
  o.dump_dir = scratch_dir;
  return compile_scenario(n, &o, "compile+dump");
}

/* The modules compiled on two threads: failures on the pool's threads
 * (the order of allocations varies, their number does not). */
static outcome sc_compile_threads(long n) {
  smelt_compile_options o = test_options();
  o.num_threads = 2;
  return compile_scenario(n, &o, "compile-threads");
}

/* The disk cache: a compile that writes the cache (a fresh directory each
 * time) and one that reads it. */
static char *cache_dir;

static outcome sc_cache_miss(long n) {
  smelt_compile_options o = test_options();
  tu_rm_tree(cache_dir);
  mkdir(cache_dir, 0700);
  o.cache_dir = cache_dir;
  return compile_scenario(n, &o, "cache-miss");
}

static outcome sc_cache_hit(long n) {
  smelt_compile_options o = test_options();
  o.cache_dir = cache_dir;
  if (n < 0) {
    /* fill the cache once: every later compile hits */
    tu_rm_tree(cache_dir);
    mkdir(cache_dir, 0700);
    ck_assert(compile_scenario(-1, &o, "cache fill") == NOT_HIT);
    smelt_node upd[16];
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
  return compile_scenario(n, &o, "cache-hit");
}

/* A run: bind, run and read under injection. A failed run changes no
 * param, and a run without injection then gives the reference step. */
static outcome sc_run(long n) {
  const step_result *want = reference_step();
  smelt_node upd[16];
  int nupd;
  smelt_graph *g = train_graph(upd, &nupd);
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = test_options();
  smelt_program *pr = smelt_program_compile_named(g, p, "train", &o);
  ck_assert_msg(pr && !smelt_program_error(pr), "%s", pr ? smelt_program_error(pr) : "NULL");
  step_result got;
  memset(&got, 0, sizeof got);
  inj j;
  arm(&j, n);
  int rb = bind_inputs(pr);
  int rr = rb ? -1 : smelt_program_run(pr);
  bool hit = disarm(&j);
  outcome o2 = hit ? (rb || rr ? REPORTED : ABSORBED) : NOT_HIT;
  if (rb || rr) {
    TU_CHECK(hit, "run failed with no failure injected: %s", smelt_program_error(pr));
    check_oom(smelt_program_error(pr), n, rb ? "bind" : "run");
    if (verbose()) fprintf(stderr, "  run %ld: %s\n", n, smelt_program_error(pr));
    /* nothing to read from a failed run */
    float loss;
    TU_CHECK(smelt_program_read(pr, "loss", SMELT_F32, &loss, sizeof loss) == -1,
             "allocation %ld: read after a failed run succeeded", n);
    /* and the same program runs again */
    TU_CHECK(bind_inputs(pr) == 0 && smelt_program_run(pr) == 0,
             "allocation %ld: run afterwards: %s", n, smelt_program_error(pr));
  }
  TU_CHECK(read_result(pr, p, &got) == 0, "allocation %ld: read: %s / %s", n,
           smelt_program_error(pr), smelt_params_error(p));
  TU_CHECK(same_result(&got, want), "allocation %ld: run: the step differs", n);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
  return o2;
}

/* Reading outputs and params after a run, under injection; reads without
 * injection then give the reference. */
static outcome sc_read(long n) {
  const step_result *want = reference_step();
  smelt_node upd[16];
  int nupd;
  smelt_graph *g = train_graph(upd, &nupd);
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = test_options();
  smelt_program *pr = smelt_program_compile_named(g, p, "train", &o);
  ck_assert_msg(pr && !smelt_program_error(pr), "%s", pr ? smelt_program_error(pr) : "NULL");
  ck_assert_int_eq(bind_inputs(pr), 0);
  ck_assert_int_eq(smelt_program_run(pr), 0);
  step_result got;
  memset(&got, 0, sizeof got);
  inj j;
  arm(&j, n);
  int rc = read_result(pr, p, &got);
  bool hit = disarm(&j);
  if (rc) {
    TU_CHECK(hit, "read failed with no failure injected");
    const char *e = smelt_program_error(pr) ? smelt_program_error(pr) : smelt_params_error(p);
    check_oom(e, n, "read");
    TU_CHECK(read_result(pr, p, &got) == 0, "allocation %ld: read afterwards: %s / %s", n,
             smelt_program_error(pr), smelt_params_error(p));
  }
  TU_CHECK(same_result(&got, want), "allocation %ld: read: the values differ", n);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
  return hit ? (rc ? REPORTED : ABSORBED) : NOT_HIT;
}

/* The plain interpreter: new, bind, run, read. */
static outcome sc_interp(long n) {
  static float want[NPROBS];
  smelt_node upd[16];
  int nupd;
  smelt_graph *g = train_graph(upd, &nupd);
  float probs[NPROBS];
  memset(probs, 0, sizeof probs);
  inj j;
  arm(&j, n);
  smelt_interp *it = smelt_interp_new(g);
  int rc = it ? 0 : -1;
  if (!rc) rc = smelt_interp_bind(it, "x", SMELT_F32, 2, TU_DIMS(B, D_IN), x_data, sizeof x_data);
  if (!rc)
    rc = smelt_interp_bind(it, "labels", SMELT_I64, 1, TU_DIMS(B), label_data,
                           sizeof label_data);
  if (!rc) rc = smelt_interp_run(it);
  if (!rc) rc = smelt_interp_read(it, "probs", SMELT_F32, probs, sizeof probs);
  bool hit = disarm(&j);
  if (rc) {
    TU_CHECK(hit, "interp failed with no failure injected: %s",
             it ? smelt_interp_error(it) : "NULL");
    if (it) {
      check_oom(smelt_interp_error(it), n, "interp");
      /* usable: bound again, run and read without injection */
      TU_CHECK(smelt_interp_bind(it, "x", SMELT_F32, 2, TU_DIMS(B, D_IN), x_data,
                                 sizeof x_data) == 0 &&
                   smelt_interp_bind(it, "labels", SMELT_I64, 1, TU_DIMS(B), label_data,
                                     sizeof label_data) == 0 &&
                   smelt_interp_run(it) == 0 &&
                   smelt_interp_read(it, "probs", SMELT_F32, probs, sizeof probs) == 0,
               "allocation %ld: interp afterwards: %s", n, smelt_interp_error(it));
      TU_CHECK(memcmp(probs, want, sizeof want) == 0, "allocation %ld: interp values differ", n);
    }
  } else if (n < 0) {
    memcpy(want, probs, sizeof want);
  } else {
    TU_CHECK(memcmp(probs, want, sizeof want) == 0, "allocation %ld: interp values differ", n);
  }
  smelt_interp_free(it);
  smelt_graph_free(g);
  return hit ? (rc ? REPORTED : ABSORBED) : NOT_HIT;
}

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
  smelt_node upd[16];
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
  smelt_node upd[16];
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
    {"grad", sc_grad, 1},
    {"grad2", sc_grad2, 1},
    {"optim", sc_optim, 1},
    {"params", sc_params, 1},
    {"text", sc_text, 1},
    {"npy", sc_npy, 1},
    {"safetensors", sc_safetensors, 1},
    {"interp", sc_interp, 1},
    {"plan", sc_plan, 1},
    {"compile", sc_compile, 1},
    {"run", sc_run, 1},
    {"read", sc_read, 1},
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
static void count_points(const scenario *s) {
  double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
  ck_assert(s->run(-1) == NOT_HIT);
  double one = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
  long lo = 0, hi = 1; /* runs with n < lo hit; a run with n = hi does not */
  while (s->run(hi) != NOT_HIT) lo = hi, hi *= 2;
  while (lo < hi) {
    long mid = lo + (hi - lo) / 2;
    if (s->run(mid) != NOT_HIT) lo = mid + 1;
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
