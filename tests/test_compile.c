/* Compiled programs through the public API: targets, options, stats
 * (kernels, arena), dumps, the disk cache, threads. The cpu cases skip
 * (with a message) when libsmelt was built without LLVM. */
#include "testutil.h"
#include "../runtime/cpu.h"
#include "../runtime/plan.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NEED_CPU()                                                                      \
  do {                                                                                   \
    if (!tu_have_cpu()) {                                                                \
      fprintf(stderr, "skipped %s: this libsmelt has no cpu target (built without LLVM)\n", \
              __func__);                                                                 \
      return;                                                                            \
    }                                                                                    \
  } while (0)

static smelt_compile_options cpu_options(void) {
  smelt_compile_options o = smelt_compile_defaults();
  o.target = SMELT_TARGET_CPU;
  o.cache_dir = NULL;
  o.dump = NULL;
  o.dump_dir = NULL;
  return o;
}

static int count_files(const char *dir, const char *suffix) {
  DIR *d = opendir(dir);
  int n = 0;
  if (!d) return 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name), s = strlen(suffix);
    if (l >= s && strcmp(e->d_name + l - s, suffix) == 0) n++;
  }
  closedir(d);
  return n;
}

/* image[2,256,256,3] * scale[2,1,1,3]: one kernel that stores only its
 * output (no intermediate buffer: the arena is empty). */
START_TEST(broadcast_scale_allocates_only_output) {
  NEED_CPU();
  smelt_graph *g = TU_GRAPH();
  smelt_node x = smelt_input(g, "x", SMELT_F32, 4, (int64_t[]){2, 256, 256, 3});
  smelt_node s = smelt_input(g, "s", SMELT_F32, 4, (int64_t[]){2, 1, 1, 3});
  smelt_output(g, "y", smelt_mul(g, x, s));
  TU_ASSERT_OK(g);
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = cpu_options();
  smelt_program *pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  ck_assert_ptr_null(smelt_program_error(pr));
  smelt_program_stats st;
  ck_assert_int_eq(smelt_program_get_stats(pr, &st), 0);
  ck_assert_int_eq(st.target, SMELT_TARGET_CPU);
  ck_assert_int_eq(st.kernels, 1);
  ck_assert_int_eq(st.buffers, 0);
  ck_assert_uint_eq(st.arena_bytes, 0);
  size_t n = 2 * 256 * 256 * 3;
  float *xd = malloc(n * sizeof *xd), *yd = malloc(n * sizeof *yd);
  float sd[6] = {1, 2, 3, -1, -2, -3};
  for (size_t i = 0; i < n; i++) xd[i] = (float)(i % 97) * 0.25f;
  ck_assert_int_eq(smelt_program_bind(pr, "x", SMELT_F32, 4, (int64_t[]){2, 256, 256, 3}, xd,
                                      n * sizeof *xd), 0);
  ck_assert_int_eq(smelt_program_bind(pr, "s", SMELT_F32, 4, (int64_t[]){2, 1, 1, 3}, sd,
                                      sizeof sd), 0);
  ck_assert_int_eq(smelt_program_run(pr), 0);
  ck_assert_int_eq(smelt_program_read(pr, "y", SMELT_F32, yd, n * sizeof *yd), 0);
  for (size_t i = 0; i < n; i++) {
    float want = xd[i] * sd[(i / (256 * 256 * 3)) * 3 + i % 3];
    if (yd[i] != want) ck_abort_msg("y[%zu] = %g, want %g", i, yd[i], want);
  }
  free(xd);
  free(yd);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}
END_TEST

/* An MLP training step: the kernel and arena figures are printed (the
 * fusion suite locks the partition itself) and the arena reuses memory. */
START_TEST(mlp_step_stats) {
  NEED_CPU();
  smelt_graph *g = TU_GRAPH();
  smelt_node x = smelt_input(g, "x", SMELT_F32, 2, (int64_t[]){64, 784});
  smelt_node y = smelt_input(g, "y", SMELT_I64, 1, (int64_t[]){64});
  smelt_node w1 = smelt_param(g, "w1", SMELT_F32, 2, (int64_t[]){784, 256}, smelt_init_normal(0, 0.05, 1));
  smelt_node b1 = smelt_param(g, "b1", SMELT_F32, 1, (int64_t[]){256}, smelt_init_zeros());
  smelt_node w2 = smelt_param(g, "w2", SMELT_F32, 2, (int64_t[]){256, 10}, smelt_init_normal(0, 0.05, 2));
  smelt_node b2 = smelt_param(g, "b2", SMELT_F32, 1, (int64_t[]){10}, smelt_init_zeros());
  smelt_node h = smelt_relu(g, smelt_add(g, smelt_matmul(g, x, w1), b1));
  smelt_node logits = smelt_add(g, smelt_matmul(g, h, w2), b2);
  smelt_node loss = smelt_output(g, "loss", smelt_cross_entropy(g, logits, y));
  smelt_node ps[4] = {w1, b1, w2, b2}, gs[4], ups[SMELT_OPTIM_MAX_UPDATES(4)];
  smelt_grad(g, loss, 4, ps, gs);
  smelt_sgd_options so = smelt_sgd_defaults(0.1);
  int nu = smelt_sgd(g, NULL, 4, ps, gs, &so, ups);
  TU_ASSERT_OK(g);
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = cpu_options();
  smelt_program *pr = smelt_program_compile(g, p, 1, (const char *[]){"loss"}, nu, ups, &o);
  ck_assert_ptr_null(smelt_program_error(pr));
  smelt_program_stats st;
  ck_assert_int_eq(smelt_program_get_stats(pr, &st), 0);
  fprintf(stderr,
          "MLP 784-256-10 step (batch 64): %d kernels, %d arena buffers, arena %zu bytes "
          "(%zu without reuse), compiled in %.1f ms\n",
          st.kernels, st.buffers, st.arena_bytes, st.unplanned_bytes, st.compile_ms);
  ck_assert_int_ge(st.kernels, 4);
  ck_assert_int_le(st.kernels, 16);
  ck_assert_uint_le(st.arena_bytes, st.unplanned_bytes);
  ck_assert_uint_gt(st.arena_bytes, 0);
  /* and it trains: the loss of a fixed batch falls */
  float *xd = malloc(64 * 784 * sizeof *xd);
  int64_t yd[64];
  for (int i = 0; i < 64 * 784; i++) xd[i] = (float)(((long long)i * 7919) % 1000) / 1000.0f;
  for (int i = 0; i < 64; i++) yd[i] = i % 10;
  ck_assert_int_eq(smelt_program_bind(pr, "x", SMELT_F32, 2, (int64_t[]){64, 784}, xd,
                                      64 * 784 * sizeof *xd), 0);
  ck_assert_int_eq(smelt_program_bind(pr, "y", SMELT_I64, 1, (int64_t[]){64}, yd, sizeof yd), 0);
  float first = 0, last = 0;
  for (int it = 0; it < 20; it++) {
    ck_assert_int_eq(smelt_program_run(pr), 0);
    ck_assert_int_eq(smelt_program_read(pr, "loss", SMELT_F32, &last, sizeof last), 0);
    if (it == 0) first = last;
  }
  ck_assert_msg(last < first, "loss did not fall: %g -> %g", first, last);
  free(xd);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}
END_TEST

static smelt_graph *small_graph(void) {
  smelt_graph *g = smelt_graph_new();
  smelt_node a = smelt_input(g, "a", SMELT_F32, 1, (int64_t[]){1000});
  smelt_node e = smelt_exp(g, smelt_neg(g, a));
  smelt_output(g, "y", smelt_add(g, smelt_mul(g, smelt_relu(g, a), smelt_scalar(g, 0.5)), e));
  smelt_output(g, "s", smelt_sum(g, e, 0, NULL, false));
  return g;
}

START_TEST(dumps_every_stage) {
  NEED_CPU();
  char *dir = tu_temp_dir("test");
  smelt_graph *g = small_graph();
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = cpu_options();
  o.dump = "all";
  o.dump_dir = dir;
  smelt_program *pr = smelt_program_compile(g, p, 2, (const char *[]){"y", "s"}, 0, NULL, &o);
  ck_assert_ptr_null(smelt_program_error(pr));
  ck_assert_int_ge(count_files(dir, ".graph.txt"), 1);
  ck_assert_int_ge(count_files(dir, ".passes.simplify.txt"), 1);
  ck_assert_int_ge(count_files(dir, ".fusion.txt"), 1);
  ck_assert_int_ge(count_files(dir, ".kernels.txt"), 1);
  ck_assert_int_ge(count_files(dir, ".dot"), 1);
  ck_assert_int_ge(count_files(dir, ".ll"), 2); /* before and after optimization */
  ck_assert_int_ge(count_files(dir, ".s"), 1);
  smelt_program_free(pr);
  /* an unknown stage is an error that names it */
  o.dump = "fusion,bogus";
  pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  ck_assert_ptr_nonnull(smelt_program_error(pr));
  ck_assert_msg(strstr(smelt_program_error(pr), "bogus") != NULL, "%s", smelt_program_error(pr));
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

/* The interpreter's one dump stage is the graph it runs; a missing dump
 * directory is made with its parents. (Directories that cannot be made:
 * the errors suite, E-compile-6.) */
START_TEST(interp_dumps_the_graph_into_a_new_directory) {
  char *dir = tu_temp_dir("test");
  char sub[4200];
  snprintf(sub, sizeof sub, "%s/a/b", dir);
  smelt_graph *g = small_graph();
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = smelt_compile_defaults();
  o.target = SMELT_TARGET_INTERP;
  o.cache_dir = NULL;
  o.dump = "graph,kernels";
  o.dump_dir = sub;
  smelt_program *pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  ck_assert_ptr_null(smelt_program_error(pr));
  ck_assert_int_eq(count_files(sub, ".graph.txt"), 1);
  ck_assert_int_eq(count_files(sub, ".kernels.txt"), 0); /* no kernels: nothing */
  smelt_program_free(pr);
  o.dump = "graph,bogus";
  pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  ck_assert_ptr_nonnull(strstr(smelt_program_error(pr), "unknown stage \"bogus\""));
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

START_TEST(disk_cache_hits_and_survives_corruption) {
  NEED_CPU();
  char *dir = tu_temp_dir("test");
  smelt_graph *g = small_graph();
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = cpu_options();
  o.cache_dir = dir;
  smelt_program_stats st;
  float in[1000], y1[1000], y2[1000];
  for (int i = 0; i < 1000; i++) in[i] = (float)i / 100.0f - 5.0f;
  for (int round = 0; round < 3; round++) {
    smelt_program *pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
    ck_assert_ptr_null(smelt_program_error(pr));
    ck_assert_int_eq(smelt_program_get_stats(pr, &st), 0);
    /* round 0: cold; 1: from the cache; 2: after corrupting every file */
    ck_assert_int_eq(st.from_cache, round == 1);
    ck_assert_int_eq(smelt_program_bind(pr, "a", SMELT_F32, 1, (int64_t[]){1000}, in, sizeof in), 0);
    ck_assert_int_eq(smelt_program_run(pr), 0);
    ck_assert_int_eq(smelt_program_read(pr, "y", SMELT_F32, round ? y2 : y1, sizeof y1), 0);
    if (round) ck_assert(memcmp(y1, y2, sizeof y1) == 0);
    smelt_program_free(pr);
    if (round == 1) {
      DIR *d = opendir(dir);
      struct dirent *e;
      int n = 0;
      while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r+b");
        if (!f) continue;
        fseek(f, 40, SEEK_SET);
        fputs("garbage garbage garbage", f);
        fclose(f);
        n++;
      }
      closedir(d);
      ck_assert_int_ge(n, 1);
    }
  }
  smelt_params_free(p);
  smelt_graph_free(g);
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

/* The same results with 1 and 2 threads (splits change nothing). */
START_TEST(threads_do_not_change_results) {
  NEED_CPU();
  smelt_graph *g = smelt_graph_new();
  smelt_node a = smelt_input(g, "a", SMELT_F32, 2, (int64_t[]){300, 1000});
  smelt_output(g, "y", smelt_tanh(g, smelt_mul(g, a, a)));
  smelt_output(g, "m", smelt_mean(g, a, 1, (int[]){0}, false));
  smelt_output(g, "r", smelt_max(g, a, 1, (int[]){1}, false));
  TU_ASSERT_OK(g);
  smelt_params *p = smelt_params_new(g);
  float *in = malloc(300000 * sizeof *in);
  for (int i = 0; i < 300000; i++) in[i] = (float)(((long long)i * 7919) % 2001) / 1000.0f - 1.0f;
  float *out[2][3];
  for (int t = 0; t < 2; t++) {
    smelt_compile_options o = cpu_options();
    o.num_threads = t + 1;
    smelt_program *pr = smelt_program_compile(g, p, 3, (const char *[]){"y", "m", "r"}, 0, NULL, &o);
    ck_assert_ptr_null(smelt_program_error(pr));
    ck_assert_int_eq(smelt_program_bind(pr, "a", SMELT_F32, 2, (int64_t[]){300, 1000}, in,
                                        300000 * sizeof *in), 0);
    ck_assert_int_eq(smelt_program_run(pr), 0);
    size_t sizes[3] = {300000, 1000, 300};
    const char *names[3] = {"y", "m", "r"};
    for (int k = 0; k < 3; k++) {
      out[t][k] = malloc(sizes[k] * sizeof(float));
      ck_assert_int_eq(smelt_program_read(pr, names[k], SMELT_F32, out[t][k], sizes[k] * 4), 0);
    }
    smelt_program_free(pr);
  }
  size_t sizes[3] = {300000, 1000, 300};
  for (int k = 0; k < 3; k++) {
    ck_assert(memcmp(out[0][k], out[1][k], sizes[k] * sizeof(float)) == 0);
    free(out[0][k]);
    free(out[1][k]);
  }
  free(in);
  smelt_params_free(p);
  smelt_graph_free(g);
}
END_TEST

START_TEST(target_errors) {
  smelt_graph *g = small_graph();
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = smelt_compile_defaults();
  o.target = SMELT_TARGET_CUDA;
  smelt_program *pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  ck_assert_ptr_nonnull(smelt_program_error(pr));
  ck_assert_msg(strstr(smelt_program_error(pr), "cuda") != NULL, "%s", smelt_program_error(pr));
  ck_assert_int_eq(smelt_program_run(pr), -1);
  smelt_program_free(pr);
  o.target = (smelt_target)42;
  pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  ck_assert_ptr_nonnull(smelt_program_error(pr));
  smelt_program_free(pr);
  setenv("SMELT_TARGET", "tpu", 1);
  o.target = SMELT_TARGET_AUTO;
  pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  ck_assert_ptr_nonnull(smelt_program_error(pr));
  ck_assert_msg(strstr(smelt_program_error(pr), "tpu") != NULL, "%s", smelt_program_error(pr));
  smelt_program_free(pr);
  setenv("SMELT_TARGET", "interp", 1);
  pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  ck_assert_ptr_null(smelt_program_error(pr));
  smelt_program_stats st;
  ck_assert_int_eq(smelt_program_get_stats(pr, &st), 0);
  ck_assert_int_eq(st.target, SMELT_TARGET_INTERP);
  smelt_program_free(pr);
  unsetenv("SMELT_TARGET");
  ck_assert_str_eq(smelt_target_name(SMELT_TARGET_CPU), "cpu");
  smelt_params_free(p);
  smelt_graph_free(g);
}
END_TEST

/* An unbound input and a bad gather index fail cleanly on the cpu target. */
START_TEST(run_errors) {
  NEED_CPU();
  smelt_graph *g = smelt_graph_new();
  smelt_node x = smelt_input(g, "x", SMELT_F32, 1, (int64_t[]){4});
  smelt_node i = smelt_input(g, "i", SMELT_I64, 1, (int64_t[]){2});
  smelt_output(g, "y", smelt_gather(g, x, 0, i));
  TU_ASSERT_OK(g);
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = cpu_options();
  smelt_program *pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  ck_assert_ptr_null(smelt_program_error(pr));
  float xd[4] = {1, 2, 3, 4};
  ck_assert_int_eq(smelt_program_bind(pr, "x", SMELT_F32, 1, (int64_t[]){4}, xd, sizeof xd), 0);
  ck_assert_int_eq(smelt_program_run(pr), -1);
  ck_assert_msg(strstr(smelt_program_error(pr), "input \"i\" is not bound") != NULL, "%s",
                smelt_program_error(pr));
  int64_t id[2] = {3, 4};
  ck_assert_int_eq(smelt_program_bind(pr, "i", SMELT_I64, 1, (int64_t[]){2}, id, sizeof id), 0);
  ck_assert_int_eq(smelt_program_run(pr), -1);
  ck_assert_msg(strstr(smelt_program_error(pr), "gather: index 4 is out of range") != NULL, "%s",
                smelt_program_error(pr));
  id[1] = 0;
  ck_assert_int_eq(smelt_program_run(pr), 0);
  float yd[2];
  ck_assert_int_eq(smelt_program_read(pr, "y", SMELT_F32, yd, sizeof yd), 0);
  ck_assert(yd[0] == 4 && yd[1] == 1);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------- $SMELT_ARENA_GUARD */

/* Sets $SMELT_ARENA_GUARD (NULL: unset) and returns a copy of the value it
 * had, for guard_restore: the asan phase runs this suite with it set. */
static char *guard_set(const char *v) {
  const char *old = getenv("SMELT_ARENA_GUARD");
  char *keep = old ? strdup(old) : NULL;
  if (v) setenv("SMELT_ARENA_GUARD", v, 1);
  else unsetenv("SMELT_ARENA_GUARD");
  return keep;
}

static void guard_restore(char *old) {
  if (old) setenv("SMELT_ARENA_GUARD", old, 1);
  else unsetenv("SMELT_ARENA_GUARD");
  free(old);
}

/* A faulty kernel: the real one, then one byte written at `at` bytes from
 * the end of its output (at >= 0: past it) or before its start (at < 0). */
static sm_kernel_fn faulty_real;
static int faulty_arg;
static size_t faulty_bytes;
static long faulty_at;

static void faulty_kernel(void *const *args, int64_t begin, int64_t end, sm_kctx *ctx) {
  faulty_real(args, begin, end, ctx);
  unsigned char *out = args[faulty_arg];
  if (begin == 0) *(faulty_at >= 0 ? out + faulty_bytes + faulty_at : out + faulty_at) = 0;
}

/* x[64,128]: t = x*x + 1 is stored by k0 in the arena, y = t @ w is k1. */
static smelt_graph *guard_graph(void) {
  smelt_graph *g = smelt_graph_new();
  smelt_node x = smelt_input(g, "x", SMELT_F32, 2, (int64_t[]){64, 128});
  smelt_node w = smelt_input(g, "w", SMELT_F32, 2, (int64_t[]){128, 16});
  smelt_node t = smelt_add(g, smelt_mul(g, x, x), smelt_scalar(g, 1));
  smelt_set_name(g, t, "t");
  smelt_output(g, "y", smelt_matmul(g, t, w));
  return g;
}

/* With the guard on, a kernel that writes one byte past (or before) its
 * intermediate fails the run, on the program and on a context, with a
 * message naming the kernel and the buffer; the real kernel runs clean
 * (the zones are filled again on every run). */
START_TEST(arena_guard_catches_a_write_past_a_buffer) {
  NEED_CPU();
  smelt_graph *g = guard_graph();
  TU_ASSERT_OK(g);
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = cpu_options();
  o.num_threads = 1;
  char *old = guard_set("1");
  smelt_program *pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  guard_restore(old);
  ck_assert_ptr_null(smelt_program_error(pr));
  static float xd[64 * 128], wd[128 * 16], want[64 * 16], got[64 * 16];
  for (int i = 0; i < 64 * 128; i++) xd[i] = (float)(i % 13) * 0.25f - 1.0f;
  for (int i = 0; i < 128 * 16; i++) wd[i] = (float)(i % 7) * 0.5f - 1.5f;
  smelt_context *c = smelt_context_new(pr);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(smelt_program_bind(pr, "x", SMELT_F32, 2, (int64_t[]){64, 128}, xd, sizeof xd), 0);
  ck_assert_int_eq(smelt_program_bind(pr, "w", SMELT_F32, 2, (int64_t[]){128, 16}, wd, sizeof wd), 0);
  ck_assert_int_eq(smelt_context_bind(c, "x", SMELT_F32, 2, (int64_t[]){64, 128}, xd, sizeof xd), 0);
  ck_assert_int_eq(smelt_context_bind(c, "w", SMELT_F32, 2, (int64_t[]){128, 16}, wd, sizeof wd), 0);
  ck_assert_int_eq(smelt_program_run(pr), 0);
  ck_assert_int_eq(smelt_program_read(pr, "y", SMELT_F32, want, sizeof want), 0);

  /* the plan: t's buffer has its zones, k0 stores it */
  sm_cpu_program *cpu = sm_program_cpu(pr);
  const sm_plan *pl = sm_cpu_plan(cpu);
  ck_assert_uint_eq(pl->guard, 64);
  const sm_arena_zone *zt = NULL;
  for (size_t i = 0; i < pl->nzones; i++)
    if (pl->opt->nodes[pl->zones[i].node].name &&
        strcmp(pl->opt->nodes[pl->zones[i].node].name, "t") == 0)
      zt = &pl->zones[i];
  ck_assert_ptr_nonnull(zt);
  ck_assert_uint_eq(zt->bytes, 64 * 128 * 4);
  ck_assert_int_eq(zt->first, 0);
  const sm_kernel *k0 = pl->kernels[0].k;
  faulty_arg = -1;
  for (int a = 0; a < k0->nargs; a++)
    if (k0->args[a].role == KA_OUT && k0->args[a].node == zt->node) faulty_arg = a;
  ck_assert_int_ge(faulty_arg, 0);
  sm_kernel_fn *fns = sm_cpu_kernel_fns(cpu);
  faulty_real = fns[0];
  faulty_bytes = zt->bytes;
  fns[0] = faulty_kernel;

  const char *past = "arena guard: kernel k0 (pointwise: mul+add) wrote past buffer %t "
                     "(f32[64,128], 32768 bytes) at offset +4";
  faulty_at = 4;
  ck_assert_int_eq(smelt_program_run(pr), -1);
  ck_assert_str_eq(smelt_program_error(pr), past);
  ck_assert_int_eq(smelt_context_run(c), -1);
  ck_assert_str_eq(smelt_context_error(c), past);
  faulty_at = -1;
  ck_assert_int_eq(smelt_context_run(c), -1);
  ck_assert_str_eq(smelt_context_error(c),
                   "arena guard: kernel k0 (pointwise: mul+add) wrote before buffer %t "
                   "(f32[64,128], 32768 bytes) at offset -1");
  /* the last byte of the zone after it (the guard ends at a multiple of 64) */
  faulty_at = 63;
  ck_assert_int_eq(smelt_program_run(pr), -1);
  ck_assert_ptr_nonnull(strstr(smelt_program_error(pr), "wrote past buffer %t (f32[64,128], "
                                                        "32768 bytes) at offset +63"));

  /* the real kernel again: both arenas still had damaged zones, which the
   * next run fills again; results as before */
  fns[0] = faulty_real;
  ck_assert_int_eq(smelt_program_run(pr), 0);
  ck_assert_int_eq(smelt_program_read(pr, "y", SMELT_F32, got, sizeof got), 0);
  ck_assert(memcmp(got, want, sizeof got) == 0);
  ck_assert_int_eq(smelt_context_run(c), 0);
  ck_assert_int_eq(smelt_context_read(c, "y", SMELT_F32, got, sizeof got), 0);
  ck_assert(memcmp(got, want, sizeof got) == 0);
  smelt_context_free(c);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}
END_TEST

/* An MLP training step with dropout and a column mean (a reduction over
 * the outer axis), compiled with the guard unset, "0" and "1": the same
 * losses, outputs and params bit for bit, and the same code (the second
 * and third compilations find every kernel in the disk cache); off, the
 * plan is the one without the feature (no zones, the same offsets and
 * arena size); on, every buffer is 64-aligned between its two zones and
 * the zones of buffers live at the same time never overlap. */
START_TEST(arena_guard_changes_no_result) {
  NEED_CPU();
  smelt_graph *g = TU_GRAPH();
  smelt_node x = smelt_input(g, "x", SMELT_F32, 2, (int64_t[]){32, 100});
  smelt_node y = smelt_input(g, "y", SMELT_I64, 1, (int64_t[]){32});
  smelt_node w1 = smelt_param(g, "w1", SMELT_F32, 2, (int64_t[]){100, 48}, smelt_init_normal(0, 0.1, 1));
  smelt_node b1 = smelt_param(g, "b1", SMELT_F32, 1, (int64_t[]){48}, smelt_init_zeros());
  smelt_node w2 = smelt_param(g, "w2", SMELT_F32, 2, (int64_t[]){48, 10}, smelt_init_normal(0, 0.1, 2));
  smelt_node h = smelt_relu(g, smelt_add(g, smelt_matmul(g, x, w1), b1));
  h = smelt_dropout(g, h, 0.25, 7, true);
  smelt_node loss = smelt_output(g, "loss", smelt_cross_entropy(g, smelt_matmul(g, h, w2), y));
  smelt_output(g, "m", smelt_mean(g, smelt_exp(g, x), 1, (int[]){0}, false));
  smelt_node ps[3] = {w1, b1, w2}, gs[3], ups[SMELT_OPTIM_MAX_UPDATES(3)];
  smelt_grad(g, loss, 3, ps, gs);
  smelt_sgd_options so = smelt_sgd_defaults(0.1);
  so.momentum = 0.9;
  int nu = smelt_sgd(g, NULL, 3, ps, gs, &so, ups);
  TU_ASSERT_OK(g);
  static float xd[32 * 100];
  int64_t yd[32];
  for (int i = 0; i < 32 * 100; i++) xd[i] = (float)(((long long)i * 7919) % 1000) / 1000.0f;
  for (int i = 0; i < 32; i++) yd[i] = i % 10;
  const char *modes[3] = {NULL, "0", "1"};
  float loss_v[3][4], m_v[3][100], w_v[3][100 * 48];
  smelt_program_stats st[3];
  size_t *offsets[3];
  const smelt_graph *opt[3];
  smelt_program *prs[3];
  smelt_params *pss[3];
  char *dir = tu_temp_dir("test");
  for (int v = 0; v < 3; v++) {
    smelt_params *p = pss[v] = smelt_params_new(g);
    smelt_compile_options o = cpu_options();
    o.cache_dir = dir;
    char *old = guard_set(modes[v]);
    smelt_program *pr = prs[v] =
        smelt_program_compile(g, p, 2, (const char *[]){"loss", "m"}, nu, ups, &o);
    guard_restore(old);
    ck_assert_ptr_null(smelt_program_error(pr));
    ck_assert_int_eq(smelt_program_get_stats(pr, &st[v]), 0);
    ck_assert_int_eq(st[v].from_cache, v > 0);
    const sm_plan *pl = sm_cpu_plan(sm_program_cpu(pr));
    opt[v] = pl->opt;
    offsets[v] = malloc(pl->opt->nnodes * sizeof *offsets[v]);
    for (size_t i = 0; i < pl->opt->nnodes; i++) offsets[v][i] = pl->bufs[i].offset;
    ck_assert_uint_eq(pl->guard, v == 2 ? 64 : 0);
    ck_assert_uint_eq(pl->nzones, v == 2 ? (size_t)pl->nbuffers : 0);
    for (size_t i = 0; i < pl->nzones; i++) {
      const sm_arena_zone *a = &pl->zones[i];
      ck_assert_uint_eq(a->data % 64, 0);
      ck_assert_uint_eq(a->data - a->lo, 64);
      ck_assert_uint_ge(a->hi - a->data - a->bytes, 64);
      ck_assert_uint_le(a->hi, pl->arena_bytes);
      if (a->kernel < 0) ck_assert_uint_eq(pl->bufs[a->node].offset, a->data);
      else ck_assert_uint_eq(pl->kernels[a->kernel].scratch_off[a->arg], a->data);
      for (size_t j = 0; j < i; j++) {
        const sm_arena_zone *b = &pl->zones[j];
        if (a->first > b->last || b->first > a->last) continue;
        ck_assert_msg(a->hi <= b->lo || b->hi <= a->lo, "zones %zu and %zu overlap", i, j);
      }
    }
    ck_assert_int_eq(smelt_program_bind(pr, "x", SMELT_F32, 2, (int64_t[]){32, 100}, xd, sizeof xd), 0);
    ck_assert_int_eq(smelt_program_bind(pr, "y", SMELT_I64, 1, (int64_t[]){32}, yd, sizeof yd), 0);
    for (int it = 0; it < 4; it++) {
      ck_assert_int_eq(smelt_program_run(pr), 0);
      ck_assert_int_eq(smelt_program_read(pr, "loss", SMELT_F32, &loss_v[v][it], sizeof(float)), 0);
    }
    ck_assert_int_eq(smelt_program_read(pr, "m", SMELT_F32, m_v[v], sizeof m_v[v]), 0);
    ck_assert_int_eq(smelt_params_read(p, "w1", SMELT_F32, w_v[v], sizeof w_v[v]), 0);
  }
  fprintf(stderr, "arena guard: %d buffers, arena %zu bytes off, %zu bytes on\n", st[0].buffers,
          st[0].arena_bytes, st[2].arena_bytes);
  for (int v = 1; v < 3; v++) {
    ck_assert(memcmp(loss_v[0], loss_v[v], sizeof loss_v[0]) == 0);
    ck_assert(memcmp(m_v[0], m_v[v], sizeof m_v[0]) == 0);
    ck_assert(memcmp(w_v[0], w_v[v], sizeof w_v[0]) == 0);
    ck_assert_int_eq(st[v].kernels, st[0].kernels);
    ck_assert_int_eq(st[v].buffers, st[0].buffers);
  }
  ck_assert_uint_eq(st[1].arena_bytes, st[0].arena_bytes);
  ck_assert_uint_eq(st[1].unplanned_bytes, st[0].unplanned_bytes);
  ck_assert_uint_eq(opt[1]->nnodes, opt[0]->nnodes);
  ck_assert(memcmp(offsets[0], offsets[1], opt[0]->nnodes * sizeof *offsets[0]) == 0);
  ck_assert_uint_ge(st[2].arena_bytes, st[0].arena_bytes + 128);
  ck_assert_uint_le(st[2].arena_bytes, st[2].unplanned_bytes);
  for (int v = 0; v < 3; v++) {
    free(offsets[v]);
    smelt_program_free(prs[v]);
    smelt_params_free(pss[v]);
  }
  smelt_graph_free(g);
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

int main(void) {
  Suite *s = suite_create("compile");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, broadcast_scale_allocates_only_output);
  tcase_add_test(tc, mlp_step_stats);
  tcase_add_test(tc, dumps_every_stage);
  tcase_add_test(tc, interp_dumps_the_graph_into_a_new_directory);
  tcase_add_test(tc, disk_cache_hits_and_survives_corruption);
  tcase_add_test(tc, threads_do_not_change_results);
  tcase_add_test(tc, target_errors);
  tcase_add_test(tc, run_errors);
  tcase_add_test(tc, arena_guard_catches_a_write_past_a_buffer);
  tcase_add_test(tc, arena_guard_changes_no_result);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
