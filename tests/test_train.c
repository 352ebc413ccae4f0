/* Training graphs: programs over shared params, fresh gradients per run,
 * opt-in gradient accumulation, evaluation programs, dropout and random
 * streams per run. */
#include <check.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

static const float X[6][3] = {{1, 2, 0.5f}, {-1, 0.5f, 2}, {0.3f, -0.7f, 1}, {2, 1, -1},
                              {0.5f, 0.5f, 0.5f}, {-2, 1, 0}};
static const float Y[6] = {1, -0.5f, 0.25f, 2, 0, -1};

/* sum over rows of (x . w - y)^2 for inputs named xname [rows,3], yname [rows] */
static smelt_node sq_loss(smelt_graph *g, smelt_node w, const char *xname, const char *yname,
                          int64_t rows) {
  smelt_node x = smelt_input(g, xname, SMELT_F32, 2, (int64_t[]){rows, 3});
  smelt_node y = smelt_input(g, yname, SMELT_F32, 1, (int64_t[]){rows});
  smelt_node d = smelt_sub(g, smelt_matmul(g, x, w), y);
  return smelt_sum(g, smelt_mul(g, d, d), 0, NULL, false);
}

START_TEST(accumulation_matches_one_big_step) {
  smelt_graph *g = TU_GRAPH();
  /* two copies of the weights (optimizer state is named after the param) */
  smelt_node w = smelt_param(g, "w", SMELT_F32, 1, (int64_t[]){3}, smelt_init_constant(0.5));
  smelt_node wf = smelt_param(g, "wf", SMELT_F32, 1, (int64_t[]){3}, smelt_init_constant(0.5));
  smelt_node full = sq_loss(g, wf, "X", "Y", 6), mb = sq_loss(g, w, "x", "y", 2);
  smelt_node gfull, gmb, acc_upd, acc, zero;
  smelt_grad(g, full, 1, &wf, &gfull);
  smelt_grad(g, mb, 1, &w, &gmb);
  ck_assert_int_eq(smelt_grad_accumulators(g, 1, &w, &gmb, &acc_upd, &acc, &zero), 0);
  smelt_sgd_options o = smelt_sgd_defaults(0.01);
  o.momentum = 0.9;
  smelt_node u_full[SMELT_OPTIM_MAX_UPDATES(1)], u_acc[SMELT_OPTIM_MAX_UPDATES(1) + 1];
  int nf = smelt_sgd(g, "full", 1, &wf, &gfull, &o, u_full);
  int na = smelt_sgd(g, "acc", 1, &w, &acc, &o, u_acc);
  ck_assert_int_gt(nf, 0);
  ck_assert_int_gt(na, 0);
  u_acc[na++] = zero;
  smelt_output(g, "full_loss", full);
  TU_ASSERT_OK(g);

  /* two independent stores of the same graph */
  smelt_params *pa = smelt_params_new(g), *pb = smelt_params_new(g);
  smelt_program *big = smelt_program_new(g, pa, 1, (const char *[]){"full_loss"}, nf, u_full);
  smelt_program *micro = smelt_program_new(g, pb, 0, NULL, 1, &acc_upd);
  smelt_program *step = smelt_program_new(g, pb, 0, NULL, na, u_acc);
  ck_assert_ptr_null(smelt_program_error(big));
  ck_assert_ptr_null(smelt_program_error(micro));
  ck_assert_ptr_null(smelt_program_error(step));
  ck_assert_int_eq(smelt_program_bind(big, "X", SMELT_F32, 2, (int64_t[]){6, 3}, X, sizeof X), 0);
  ck_assert_int_eq(smelt_program_bind(big, "Y", SMELT_F32, 1, (int64_t[]){6}, Y, sizeof Y), 0);
  for (int it = 0; it < 3; it++) {
    ck_assert_int_eq(smelt_program_run(big), 0);
    for (int b = 0; b < 3; b++) {
      ck_assert_int_eq(smelt_program_bind(micro, "x", SMELT_F32, 2, (int64_t[]){2, 3}, X[2 * b],
                                          sizeof(float) * 6), 0);
      ck_assert_int_eq(smelt_program_bind(micro, "y", SMELT_F32, 1, (int64_t[]){2}, &Y[2 * b],
                                          sizeof(float) * 2), 0);
      ck_assert_msg(smelt_program_run(micro) == 0, "%s", smelt_program_error(micro));
    }
    ck_assert_msg(smelt_program_run(step) == 0, "%s", smelt_program_error(step));
    float wa[3], wb[3], acc_after[3];
    ck_assert_int_eq(smelt_params_read(pa, "wf", SMELT_F32, wa, sizeof wa), 0);
    ck_assert_int_eq(smelt_params_read(pb, "w", SMELT_F32, wb, sizeof wb), 0);
    ck_assert_int_eq(smelt_params_read(pb, "w.grad_acc", SMELT_F32, acc_after, sizeof acc_after), 0);
    for (int i = 0; i < 3; i++) {
      /* the same sums in another order: f32 rounding only */
      ck_assert_msg(fabsf(wa[i] - wb[i]) <= 1e-5f * fmaxf(1.0f, fabsf(wa[i])),
                    "step %d w[%d]: %.9g vs %.9g", it, i, wa[i], wb[i]);
      ck_assert(acc_after[i] == 0); /* zeroed by the step */
    }
  }
  smelt_program_free(big);
  smelt_program_free(micro);
  smelt_program_free(step);
  smelt_params_free(pa);
  smelt_params_free(pb);
  smelt_graph_free(g);
}
END_TEST

START_TEST(fresh_gradients_every_run) {
  /* no forgotten zero_grad: the same inputs give the same gradient */
  smelt_graph *g = TU_GRAPH();
  smelt_node w = smelt_param(g, "w", SMELT_F32, 1, (int64_t[]){3}, smelt_init_ones());
  smelt_node l = sq_loss(g, w, "X", "Y", 6), gw;
  smelt_grad(g, l, 1, &w, &gw);
  smelt_output(g, "gw", gw);
  smelt_params *p = smelt_params_new(g);
  smelt_program *pr = smelt_program_new(g, p, 1, (const char *[]){"gw"}, 0, NULL);
  smelt_program_bind(pr, "X", SMELT_F32, 2, (int64_t[]){6, 3}, X, sizeof X);
  smelt_program_bind(pr, "Y", SMELT_F32, 1, (int64_t[]){6}, Y, sizeof Y);
  float a[3], b[3];
  ck_assert_int_eq(smelt_program_run(pr), 0);
  smelt_program_read(pr, "gw", SMELT_F32, a, sizeof a);
  ck_assert_int_eq(smelt_program_run(pr), 0);
  smelt_program_read(pr, "gw", SMELT_F32, b, sizeof b);
  ck_assert(memcmp(a, b, sizeof a) == 0);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}
END_TEST

START_TEST(eval_programs) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 1000);
  smelt_node w = smelt_param(g, "w", SMELT_F32, 0, NULL, smelt_init_constant(2));
  smelt_node y = smelt_dropout(g, smelt_mul(g, x, w), 0.5, 7, true);
  smelt_node l = smelt_sum(g, y, 0, NULL, false), gw;
  smelt_output(g, "y", y);
  smelt_grad(g, l, 1, &w, &gw);
  smelt_output(g, "gw", gw);
  TU_ASSERT_OK(g);
  smelt_params *p = smelt_params_new(g);
  float ones[1000], y1[1000], y2[1000], ye[1000];
  for (int i = 0; i < 1000; i++) ones[i] = 1;
  const int64_t n = 1000;

  smelt_program *train = smelt_program_new(g, p, 1, (const char *[]){"y"}, 0, NULL);
  smelt_program *eval = smelt_program_new_eval(g, p, 1, (const char *[]){"y"});
  ck_assert_ptr_null(smelt_program_error(eval));
  smelt_program_bind(train, "x", SMELT_F32, 1, &n, ones, sizeof ones);
  smelt_program_bind(eval, "x", SMELT_F32, 1, &n, ones, sizeof ones);
  ck_assert_int_eq(smelt_program_run(train), 0);
  smelt_program_read(train, "y", SMELT_F32, y1, sizeof y1);
  ck_assert_int_eq(smelt_program_run(train), 0);
  smelt_program_read(train, "y", SMELT_F32, y2, sizeof y2);
  ck_assert_int_eq(smelt_program_run(eval), 0);
  smelt_program_read(eval, "y", SMELT_F32, ye, sizeof ye);
  int zeros1 = 0, differ = 0;
  for (int i = 0; i < 1000; i++) {
    ck_assert(y1[i] == 0 || y1[i] == 4); /* 2 * 1 / (1 - 0.5) */
    zeros1 += y1[i] == 0;
    differ += y1[i] != y2[i];
    ck_assert(ye[i] == 2); /* dropout is off in evaluation */
  }
  ck_assert_msg(zeros1 > 400 && zeros1 < 600, "%d of 1000 dropped at p = 0.5", zeros1);
  ck_assert_msg(differ > 300, "the mask must change between runs (%d differ)", differ);
  smelt_program_free(train);
  smelt_program_free(eval);

  /* evaluation programs take no gradients and no updates */
  eval = smelt_program_new_eval(g, p, 1, (const char *[]){"gw"});
  ck_assert_ptr_nonnull(strstr(smelt_program_error(eval), "backward graph"));
  ck_assert_int_eq(smelt_program_run(eval), -1);
  smelt_program_free(eval);
  smelt_params_free(p);
  smelt_graph_free(g);
}
END_TEST

START_TEST(program_errors) {
  smelt_graph *g = TU_GRAPH();
  smelt_node w = smelt_param(g, "w", SMELT_F32, 0, NULL, smelt_init_ones());
  smelt_node v = smelt_param(g, "v", SMELT_F32, 0, NULL, smelt_init_zeros());
  smelt_output(g, "w2", smelt_mul(g, w, smelt_scalar(g, 2.0)));
  smelt_node a = smelt_assign(g, w, v), b = smelt_assign(g, v, w);
  smelt_params *p = smelt_params_new(g);
  smelt_program *pr = smelt_program_new(g, p, 1, (const char *[]){"nope"}, 0, NULL);
  ck_assert_ptr_nonnull(strstr(smelt_program_error(pr), "unknown output \"nope\""));
  smelt_program_free(pr);
  pr = smelt_program_new(g, p, 0, NULL, 1, (smelt_node[]){w});
  ck_assert_ptr_nonnull(strstr(smelt_program_error(pr), "is not an assign"));
  smelt_program_free(pr);
  pr = smelt_program_new(g, p, 0, NULL, 2, (smelt_node[]){a, smelt_assign(g, w, w)});
  ck_assert_ptr_nonnull(strstr(smelt_program_error(pr), "param \"w\" is updated twice"));
  smelt_program_free(pr);
  /* all updates see the values from before the run: a swap */
  pr = smelt_program_new(g, p, 1, (const char *[]){"w2"}, 2, (smelt_node[]){a, b});
  ck_assert_ptr_null(smelt_program_error(pr));
  float out, wv, vv;
  ck_assert_int_eq(smelt_program_run(pr), 0);
  smelt_program_read(pr, "w2", SMELT_F32, &out, sizeof out);
  ck_assert(out == 2); /* computed from the old w */
  smelt_params_read(p, "w", SMELT_F32, &wv, sizeof wv);
  smelt_params_read(p, "v", SMELT_F32, &vv, sizeof vv);
  ck_assert(wv == 0 && vv == 1);
  ck_assert_int_eq(smelt_program_read(pr, "x", SMELT_F32, &out, sizeof out), -1);
  ck_assert_ptr_nonnull(strstr(smelt_program_error(pr), "not an output"));
  ck_assert_int_eq(smelt_program_read(pr, "w2", SMELT_F64, &out, 8), -1);
  ck_assert_ptr_nonnull(strstr(smelt_program_error(pr), "dtype f64"));
  smelt_program_free(pr);
  /* params: unknown name, wrong dtype or size; reset */
  ck_assert_int_eq(smelt_params_read(p, "q", SMELT_F32, &out, 4), -1);
  ck_assert_str_eq(smelt_params_error(p), "read: no param named \"q\"");
  ck_assert_int_eq(smelt_params_write(p, "w", SMELT_F64, &out, 8), -1);
  ck_assert_ptr_nonnull(strstr(smelt_params_error(p), "dtype f64 does not match"));
  ck_assert_int_eq(smelt_params_write(p, "w", SMELT_F32, &out, 8), -1);
  ck_assert_ptr_nonnull(strstr(smelt_params_error(p), "8 bytes given"));
  ck_assert_int_eq(smelt_params_reset(p), 0);
  smelt_params_read(p, "w", SMELT_F32, &wv, sizeof wv);
  ck_assert(wv == 1);
  smelt_params_free(p);
  smelt_graph_free(g);
}
END_TEST

START_TEST(checkpoints) {
  char dir[] = "/tmp/smelt_ckpt_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char path[256], other[256], missing[256];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  snprintf(other, sizeof other, "%s/other.safetensors", dir);
  snprintf(missing, sizeof missing, "%s/none.safetensors", dir);

  smelt_graph *g = TU_GRAPH();
  smelt_param(g, "w", SMELT_F32, 2, (int64_t[]){2, 3}, smelt_init_normal(0, 1, 3));
  smelt_param(g, "step", SMELT_I64, 0, NULL, smelt_init_constant(7));
  smelt_params *p = smelt_params_new(g);
  float w0[6], w1[6], junk[6] = {1, 2, 3, 4, 5, 6};
  ck_assert_int_eq(smelt_params_read(p, "w", SMELT_F32, w0, sizeof w0), 0);
  ck_assert_msg(smelt_params_save(p, path) == 0, "%s", smelt_params_error(p));
  ck_assert_int_eq(smelt_params_write(p, "w", SMELT_F32, junk, sizeof junk), 0);
  ck_assert_msg(smelt_params_load(p, path) == 0, "%s", smelt_params_error(p));
  ck_assert_int_eq(smelt_params_read(p, "w", SMELT_F32, w1, sizeof w1), 0);
  ck_assert(memcmp(w0, w1, sizeof w0) == 0);
  int64_t st;
  ck_assert_int_eq(smelt_params_read(p, "step", SMELT_I64, &st, sizeof st), 0);
  ck_assert(st == 7);

  /* strict: a missing file, a param the file lacks, a tensor the graph lacks, a wrong shape;
   * nothing changes on error */
  ck_assert_int_eq(smelt_params_load(p, missing), -1);
  ck_assert_ptr_nonnull(strstr(smelt_params_error(p), "none.safetensors"));
  smelt_graph *g2 = TU_GRAPH();
  smelt_param(g2, "w", SMELT_F32, 2, (int64_t[]){3, 2}, smelt_init_zeros());
  smelt_params *p2 = smelt_params_new(g2);
  ck_assert_int_eq(smelt_params_save(p2, other), 0);
  ck_assert_int_eq(smelt_params_write(p, "w", SMELT_F32, junk, sizeof junk), 0);
  ck_assert_int_eq(smelt_params_load(p, other), -1);
  ck_assert_ptr_nonnull(strstr(smelt_params_error(p), "tensor \"w\" is f32[3,2], the param is f32[2,3]"));
  ck_assert_int_eq(smelt_params_read(p, "w", SMELT_F32, w1, sizeof w1), 0);
  ck_assert(memcmp(w1, junk, sizeof junk) == 0);
  smelt_graph *g3 = TU_GRAPH();
  smelt_param(g3, "w", SMELT_F32, 2, (int64_t[]){2, 3}, smelt_init_zeros());
  smelt_params *p3 = smelt_params_new(g3);
  ck_assert_int_eq(smelt_params_load(p3, path), -1);
  ck_assert_ptr_nonnull(strstr(smelt_params_error(p3), "\"step\", which is not a param"));
  smelt_params_free(p3);
  smelt_graph_free(g3);
  smelt_param(g2, "b", SMELT_F32, 0, NULL, smelt_init_zeros());
  ck_assert_int_eq(smelt_params_load(p2, other), -1);
  ck_assert_ptr_nonnull(strstr(smelt_params_error(p2), "has no tensor \"b\""));
  smelt_params_free(p2);
  smelt_graph_free(g2);
  smelt_params_free(p);
  smelt_graph_free(g);
  remove(path);
  remove(other);
  remove(dir);
}
END_TEST

START_TEST(eval_output_shared_with_backward) {
  /* gt(h, 0) is built by relu's gradient rule first and then by forward
   * code: it is a forward value, and an evaluation program may output it */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 3);
  smelt_node h = smelt_relu(g, x), gx;
  smelt_grad(g, smelt_sum(g, h, 0, NULL, false), 1, &x, &gx);
  smelt_output(g, "active", smelt_gt(g, h, smelt_scalar(g, 0.0)));
  smelt_params *p = smelt_params_new(g);
  smelt_program *ev = smelt_program_new_eval(g, p, 1, (const char *[]){"active"});
  ck_assert_msg(smelt_program_error(ev) == NULL, "%s", smelt_program_error(ev));
  smelt_program_free(ev);
  smelt_params_free(p);
  smelt_graph_free(g);
}
END_TEST

START_TEST(params_survive_allocation_failures) {
  /* a failed initialization leaves nothing half made: a later read either
   * fails or sees the initializer's values */
  for (long n = 0; n < 40; n++) {
    smelt_graph *g = TU_GRAPH();
    smelt_param(g, "w", SMELT_F32, 1, (int64_t[]){4}, smelt_init_ones());
    sm_alloc_fail_after(n);
    smelt_params *p = smelt_params_new(g);
    sm_alloc_fail_after(-1);
    if (p) {
      float w[4];
      if (smelt_params_read(p, "w", SMELT_F32, w, sizeof w) == 0)
        for (int i = 0; i < 4; i++) ck_assert_msg(w[i] == 1, "n = %ld: w[%d] = %g", n, i, w[i]);
    }
    smelt_params_free(p);
    smelt_graph_free(g);
  }
}
END_TEST

/* A declared program is the program smelt_program_new builds from the same
 * lists: the same losses and weights, run after run. */
START_TEST(declared_programs) {
  smelt_graph *g = TU_GRAPH();
  smelt_node w = smelt_param(g, "w", SMELT_F32, 1, (int64_t[]){3}, smelt_init_constant(0.5));
  smelt_node loss = sq_loss(g, w, "x", "y", 6), grad, upd[SMELT_OPTIM_MAX_UPDATES(1)];
  smelt_node pred = smelt_matmul(g, smelt_find(g, "x"), w);
  smelt_output(g, "loss", loss);
  smelt_output(g, "pred", pred);
  smelt_grad(g, loss, 1, &w, &grad);
  smelt_output(g, "grad", grad);
  smelt_adam_options o = smelt_adam_defaults();
  int n = smelt_adam(g, NULL, 1, &w, &grad, &o, upd);
  ck_assert_int_gt(n, 1);
  const char *outs[] = {"loss", "pred"};
  ck_assert_int_eq(smelt_graph_add_program(g, "train", 2, outs, n, upd, false), 0);
  ck_assert_int_eq(smelt_graph_add_program(g, "predict", 1, (const char *[]){"pred"}, 0, NULL,
                                           true),
                   0);
  ck_assert_int_eq(smelt_graph_add_program(g, "peek", 1, (const char *[]){"grad"}, 0, NULL, true),
                   0);
  TU_ASSERT_OK(g);
  ck_assert_uint_eq(smelt_graph_program_count(g), 3);

  smelt_params *pa = smelt_params_new(g), *pb = smelt_params_new(g);
  smelt_program *named = smelt_program_compile_named(g, pa, "train", NULL);
  smelt_program *plain = smelt_program_new(g, pb, 2, outs, n, upd);
  smelt_program *npred = smelt_program_compile_named(g, pa, "predict", NULL);
  smelt_program *ppred = smelt_program_new_eval(g, pb, 1, (const char *[]){"pred"});
  ck_assert_ptr_null(smelt_program_error(named));
  ck_assert_ptr_null(smelt_program_error(plain));
  ck_assert_ptr_null(smelt_program_error(npred));
  smelt_program *progs[4] = {named, plain, npred, ppred};
  for (int k = 0; k < 4; k++) {
    ck_assert_int_eq(
        smelt_program_bind(progs[k], "x", SMELT_F32, 2, (int64_t[]){6, 3}, X, sizeof X), 0);
    if (k < 2)
      ck_assert_int_eq(smelt_program_bind(progs[k], "y", SMELT_F32, 1, (int64_t[]){6}, Y, sizeof Y),
                       0);
  }
  for (int step = 0; step < 5; step++) {
    float la, lb, wa[3], wb[3], qa[6], qb[6];
    ck_assert_int_eq(smelt_program_run(named), 0);
    ck_assert_int_eq(smelt_program_run(plain), 0);
    ck_assert_int_eq(smelt_program_read(named, "loss", SMELT_F32, &la, sizeof la), 0);
    ck_assert_int_eq(smelt_program_read(plain, "loss", SMELT_F32, &lb, sizeof lb), 0);
    ck_assert(memcmp(&la, &lb, sizeof la) == 0);
    ck_assert_int_eq(smelt_params_read(pa, "w", SMELT_F32, wa, sizeof wa), 0);
    ck_assert_int_eq(smelt_params_read(pb, "w", SMELT_F32, wb, sizeof wb), 0);
    ck_assert(memcmp(wa, wb, sizeof wa) == 0);
    ck_assert_int_eq(smelt_program_run(npred), 0);
    ck_assert_int_eq(smelt_program_run(ppred), 0);
    ck_assert_int_eq(smelt_program_read(npred, "pred", SMELT_F32, qa, sizeof qa), 0);
    ck_assert_int_eq(smelt_program_read(ppred, "pred", SMELT_F32, qb, sizeof qb), 0);
    ck_assert(memcmp(qa, qb, sizeof qa) == 0);
  }
  /* an eval program's checks still apply, naming the program */
  smelt_program *peek = smelt_program_compile_named(g, pa, "peek", NULL);
  ck_assert_ptr_nonnull(smelt_program_error(peek));
  ck_assert_msg(strncmp(smelt_program_error(peek), "program \"peek\": evaluation program: output "
                        "\"grad\" depends on",
                        55) == 0,
                "%s", smelt_program_error(peek));
  ck_assert_int_eq(smelt_program_run(peek), -1);
  /* an unknown name lists the declared ones */
  smelt_program *none = smelt_program_compile_named(g, pa, "trian", NULL);
  ck_assert_str_eq(smelt_program_error(none),
                   "no program named \"trian\" (declared: train, predict, peek)");
  ck_assert_int_eq(smelt_program_run(none), -1);
  for (int k = 0; k < 4; k++) smelt_program_free(progs[k]);
  smelt_program_free(peek);
  smelt_program_free(none);
  smelt_params_free(pa);
  smelt_params_free(pb);
  smelt_graph_free(g);

  g = TU_GRAPH();
  smelt_params *p = smelt_params_new(g);
  none = smelt_program_compile_named(g, p, "train", NULL);
  ck_assert_str_eq(smelt_program_error(none),
                   "no program named \"train\" (the graph declares no programs)");
  smelt_program_free(none);
  smelt_params_free(p);
  smelt_graph_free(g);
}
END_TEST

/* smelt_graph_add_program checks what smelt_program_new checks, and its
 * errors are the graph's (sticky). */
START_TEST(declared_program_errors) {
  static const struct {
    const char *want;
  } cases[] = {
      {"program \"p\": unknown output \"nope\" (the graph's outputs: y, z)"},
      {"program \"p\": output \"y\" is listed twice"},
      {"program \"p\": update %z is a mul node, not an assign"},
      {"program \"p\": param \"w\" is updated twice"},
      {"program \"p\": an evaluation program takes no updates"},
      {"program: the name \"q\" is already a program"},
      {"program: invalid name \"1p\" (names are [A-Za-z_][A-Za-z0-9_.]*)"},
      {"program \"p\": update 0 is an invalid handle"},
      {"program \"p\": bad output or update list (noutputs -1, outputs NULL; nupdates 0, "
       "updates NULL)"},
  };
  for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++) {
    smelt_graph *g = TU_GRAPH();
    smelt_node w = smelt_param(g, "w", SMELT_F32, 0, NULL, smelt_init_ones());
    smelt_node y = smelt_output(g, "y", smelt_assign(g, w, smelt_scalar(g, 2.0)));
    smelt_node z = smelt_set_name(g, smelt_mul(g, w, smelt_scalar(g, 3.0)), "z");
    smelt_output(g, "z", z);
    smelt_node u2 = smelt_assign(g, w, z);
    ck_assert_int_eq(smelt_graph_add_program(g, "q", 1, (const char *[]){"z"}, 1, &y, false), 0);
    int rc = 0;
    switch (c) {
    case 0: rc = smelt_graph_add_program(g, "p", 1, (const char *[]){"nope"}, 0, NULL, 0); break;
    case 1: rc = smelt_graph_add_program(g, "p", 2, (const char *[]){"y", "y"}, 0, NULL, 0); break;
    case 2: rc = smelt_graph_add_program(g, "p", 0, NULL, 2, (smelt_node[]){y, z}, false); break;
    case 3: rc = smelt_graph_add_program(g, "p", 0, NULL, 2, (smelt_node[]){y, u2}, false); break;
    case 4: rc = smelt_graph_add_program(g, "p", 0, NULL, 1, &y, true); break;
    case 5: rc = smelt_graph_add_program(g, "q", 0, NULL, 0, NULL, true); break;
    case 6: rc = smelt_graph_add_program(g, "1p", 0, NULL, 0, NULL, true); break;
    case 7: rc = smelt_graph_add_program(g, "p", 0, NULL, 1, &SMELT_INVALID, false); break;
    default: rc = smelt_graph_add_program(g, "p", -1, NULL, 0, NULL, false); break;
    }
    ck_assert_int_eq(rc, -1);
    ck_assert_str_eq(smelt_graph_error(g), cases[c].want);
    /* sticky: nothing more is declared */
    ck_assert_int_eq(smelt_graph_add_program(g, "r", 0, NULL, 0, NULL, false), -1);
    ck_assert_str_eq(smelt_graph_error(g), cases[c].want);
    ck_assert_uint_eq(smelt_graph_program_count(g), 1);
    smelt_graph_free(g);
  }
  ck_assert_int_eq(smelt_graph_add_program(NULL, "p", 0, NULL, 0, NULL, false), -1);
  ck_assert_uint_eq(smelt_graph_program_count(NULL), 0);
  /* declarations survive allocation failures cleanly */
  for (long n = 0;; n++) {
    smelt_graph *g = TU_GRAPH();
    smelt_node w = smelt_param(g, "w", SMELT_F32, 0, NULL, smelt_init_ones());
    smelt_node y = smelt_output(g, "y", smelt_assign(g, w, smelt_scalar(g, 2.0)));
    sm_alloc_fail_after(n);
    int rc = smelt_graph_add_program(g, "p", 1, (const char *[]){"y"}, 1, &y, false);
    sm_alloc_fail_after(-1);
    if (rc == 0) {
      ck_assert_uint_eq(smelt_graph_program_count(g), 1);
      smelt_graph_free(g);
      break;
    }
    ck_assert_str_eq(smelt_graph_error(g), "program: out of memory");
    ck_assert_uint_eq(smelt_graph_program_count(g), 0);
    smelt_graph_free(g);
    ck_assert_int_lt(n, 100);
  }
}
END_TEST

static Suite *train_suite(void) {
  Suite *s = suite_create("train");
  TCase *tc = tcase_create("programs");
  tcase_add_test(tc, accumulation_matches_one_big_step);
  tcase_add_test(tc, fresh_gradients_every_run);
  tcase_add_test(tc, eval_programs);
  tcase_add_test(tc, program_errors);
  tcase_add_test(tc, checkpoints);
  tcase_add_test(tc, eval_output_shared_with_backward);
  tcase_add_test(tc, params_survive_allocation_failures);
  tcase_add_test(tc, declared_programs);
  tcase_add_test(tc, declared_program_errors);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(train_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
