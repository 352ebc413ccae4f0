/* smelt-bench: times compiled programs on a few standard workloads, using
 * only the public API. Each workload is compiled once, run a few times to
 * warm up (first-touch page faults, caches, the thread pool), then timed
 * over N repeats; the median is reported, with the minimum beside it.
 *
 *   smelt-bench [--target cpu|interp] [--threads N] [--repeats N] [--quick]
 *               [--only SUBSTRING] [--json]
 *
 * The table goes to stdout; --json prints one JSON object per line instead
 * (what bench/peers.py reads). A workload whose program fails to compile
 * or to run, or whose result is wrong, is reported as an error and the
 * exit status is 1. See bench/README.md for what each workload is. */
#include <smelt/smelt.h>

#include <dirent.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

/* ------------------------------------------------------------- options */

typedef struct config {
  smelt_target target;
  int threads;  /* smelt_compile_options.num_threads (0: the default) */
  int repeats;  /* timed runs */
  int warmup;   /* untimed runs first */
  bool quick;   /* small sizes */
  bool json;
  const char *only;
} config;

static config cfg = {SMELT_TARGET_CPU, 0, 0, 0, false, false, NULL};
static int failures;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static bool wanted(const char *key) { return !cfg.only || strstr(key, cfg.only); }

/* Deterministic inputs (an LCG: the figures must not depend on libc). */
static uint64_t rng = 0x853c49e6748fea9bu;
static float frand(void) { /* [-1, 1) */
  rng = rng * 6364136223846793005u + 1442695040888963407u;
  return (float)((double)(rng >> 40) / (double)(1u << 23) - 1.0);
}
static float *random_f32(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  if (!p) {
    fprintf(stderr, "smelt-bench: out of memory\n");
    exit(2);
  }
  for (size_t i = 0; i < n; i++) p[i] = frand();
  return p;
}

/* -------------------------------------------------------------- output */

/* A JSON string value: the messages we print have no control characters
 * beyond newlines, but escape properly anyway. */
static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

static void print_header(void) {
  if (cfg.json) {
    printf("{\"meta\": true, \"smelt_version\": \"%s\", \"target\": \"%s\", \"threads\": %d, "
           "\"repeats\": %d, \"warmup\": %d, \"quick\": %s}\n",
           smelt_version(), smelt_target_name(cfg.target), cfg.threads, cfg.repeats, cfg.warmup,
           cfg.quick ? "true" : "false");
    return;
  }
  printf("smelt %s, target %s, threads %s%d, %d timed runs per workload%s\n\n",
         smelt_version(), smelt_target_name(cfg.target), cfg.threads ? "" : "default ",
         cfg.threads, cfg.repeats, cfg.quick ? ", quick sizes" : "");
  printf("%-26s %-18s %12s %12s %14s\n", "workload", "size", "median ms", "min ms", "rate");
  printf("%-26s %-18s %12s %12s %14s\n", "--------", "----", "---------", "------", "----");
}

/* One timed result. bytes (memory traffic) or flops give the rate. */
static void report(const char *key, const char *size, double med, double min, double bytes,
                   double flops) {
  if (cfg.json) {
    printf("{\"workload\": ");
    json_str(key);
    printf(", \"size\": ");
    json_str(size);
    printf(", \"target\": \"%s\", \"threads\": %d, \"repeats\": %d, \"median_ms\": %.6g, "
           "\"min_ms\": %.6g",
           smelt_target_name(cfg.target), cfg.threads, cfg.repeats, med, min);
    if (bytes > 0) printf(", \"bytes\": %.0f, \"gb_per_s\": %.6g", bytes, bytes / med / 1e6);
    if (flops > 0) printf(", \"flops\": %.0f, \"gflop_per_s\": %.6g", flops, flops / med / 1e6);
    printf("}\n");
  } else {
    char rate[64] = "";
    if (bytes > 0) snprintf(rate, sizeof rate, "%.2f GB/s", bytes / med / 1e6);
    else if (flops > 0) snprintf(rate, sizeof rate, "%.2f GFLOP/s", flops / med / 1e6);
    printf("%-26s %-18s %12.3f %12.3f %14s\n", key, size, med, min, rate);
  }
  fflush(stdout);
}

static void report_error(const char *key, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  failures++;
  if (cfg.json) {
    printf("{\"workload\": ");
    json_str(key);
    printf(", \"target\": \"%s\", \"error\": ", smelt_target_name(cfg.target));
    json_str(msg);
    printf("}\n");
    fflush(stdout);
  }
  fprintf(stderr, "smelt-bench: %s: %s\n", key, msg);
}

/* -------------------------------------------------------------- running */

static smelt_compile_options options(const char *cache_dir) {
  smelt_compile_options o = smelt_compile_defaults();
  o.target = cfg.target;
  o.num_threads = cfg.threads;
  o.cache_dir = cache_dir;
  return o;
}

/* Compiles g's outputs (and updates); NULL after reporting the error. */
static smelt_program *compile(const char *key, smelt_graph *g, smelt_params *params, int nout,
                              const char *const *outs, int nupd, const smelt_node *upd) {
  if (smelt_graph_error(g)) {
    report_error(key, "building the graph failed: %s", smelt_graph_error(g));
    return NULL;
  }
  smelt_compile_options o = options(NULL);
  smelt_program *pr = smelt_program_compile(g, params, nout, outs, nupd, upd, &o);
  if (!pr) {
    report_error(key, "out of memory");
    return NULL;
  }
  smelt_program_stats st;
  if (smelt_program_get_stats(pr, &st) != 0) {
    report_error(key, "compiling for the %s target failed: %s", smelt_target_name(cfg.target),
                 smelt_program_error(pr) ? smelt_program_error(pr) : "unknown error");
    smelt_program_free(pr);
    return NULL;
  }
  return pr;
}

/* Warm-up runs, then cfg.repeats timed runs of smelt_program_run. Returns
 * false after reporting a run error. */
static bool time_runs_n(const char *key, smelt_program *pr, int repeats, double *med,
                        double *min) {
  for (int i = 0; i < cfg.warmup; i++)
    if (smelt_program_run(pr) != 0) {
      report_error(key, "run failed: %s", smelt_program_error(pr));
      return false;
    }
  double *t = malloc((size_t)repeats * sizeof *t);
  if (!t) return false;
  for (int i = 0; i < repeats; i++) {
    double t0 = now_ms();
    int rc = smelt_program_run(pr);
    t[i] = now_ms() - t0;
    if (rc != 0) {
      report_error(key, "run failed: %s", smelt_program_error(pr));
      free(t);
      return false;
    }
  }
  *med = median(t, repeats);
  *min = t[0];
  free(t);
  return true;
}

static bool time_runs(const char *key, smelt_program *pr, double *med, double *min) {
  return time_runs_n(key, pr, cfg.repeats, med, min);
}

/* |got - want| <= tol * (1 + |want|) */
static bool close_to(double got, double want, double tol) {
  return fabs(got - want) <= tol * (1 + fabs(want)) || (isnan(got) && isnan(want));
}

/* Reads output "y" of n floats; NULL after reporting. */
static float *read_f32(const char *key, smelt_program *pr, const char *name, size_t n) {
  float *y = malloc((n ? n : 1) * sizeof *y);
  if (!y) return NULL;
  if (smelt_program_read(pr, name, SMELT_F32, y, n * sizeof *y) != 0) {
    report_error(key, "read failed: %s", smelt_program_error(pr));
    free(y);
    return NULL;
  }
  return y;
}

/* ------------------------------------------------------------ workloads */

/* The bandwidth reference: memcpy of n floats into another buffer (read +
 * write), measured in the same run as everything else. */
static void bench_memcpy(int64_t n, const char *size) {
  const char *key = "copy (memcpy)";
  if (!wanted(key)) return;
  float *a = random_f32((size_t)n), *b = random_f32((size_t)n);
  double *t = malloc((size_t)cfg.repeats * sizeof *t);
  if (!t) exit(2);
  for (int i = 0; i < cfg.warmup; i++) memcpy(b, a, (size_t)n * sizeof *a);
  for (int i = 0; i < cfg.repeats; i++) {
    a[i % n] += 1; /* the copy is not dead code */
    double t0 = now_ms();
    memcpy(b, a, (size_t)n * sizeof *a);
    t[i] = now_ms() - t0;
  }
  volatile float sink = b[n / 2];
  (void)sink;
  double med = median(t, cfg.repeats);
  report(key, size, med, t[0], 2.0 * (double)n * sizeof(float), 0);
  free(t);
  free(a);
  free(b);
}

/* The compute reference: the peak f32 FMA rate of this machine, from a
 * register-resident loop of independent vector FMAs (12 accumulators, the
 * widest vectors the CPU has) on every thread at once. Matmul rates are
 * read against it, as bandwidths are against memcpy's. */
#define PEAK_ACCS 12
/* The 12 accumulators are spelled out: compilers keep them in registers
 * then (at -O2 a loop over an array of them goes through memory). */
#define PEAK_BODY(FMA)                                                                    \
  for (long i = 0; i < iters; i++) {                                                      \
    a0 = FMA(a0, m, a), a1 = FMA(a1, m, a), a2 = FMA(a2, m, a), a3 = FMA(a3, m, a);         \
    a4 = FMA(a4, m, a), a5 = FMA(a5, m, a), a6 = FMA(a6, m, a), a7 = FMA(a7, m, a);         \
    a8 = FMA(a8, m, a), a9 = FMA(a9, m, a), a10 = FMA(a10, m, a), a11 = FMA(a11, m, a);     \
  }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
__attribute__((target("avx512f"))) static float fma_loop_512(long iters) {
  __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
  __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2),
         a3 = _mm512_set1_ps(3), a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5),
         a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7), a8 = _mm512_set1_ps(8),
         a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
  PEAK_BODY(_mm512_fmadd_ps)
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
  return _mm512_reduce_add_ps(s);
}
__attribute__((target("avx2,fma"))) static float fma_loop_256(long iters) {
  __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
  __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2),
         a3 = _mm256_set1_ps(3), a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5),
         a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7), a8 = _mm256_set1_ps(8),
         a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
  PEAK_BODY(_mm256_fmadd_ps)
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  float out[8], r = 0;
  _mm256_storeu_ps(out, s);
  for (int l = 0; l < 8; l++) r += out[l];
  return r;
}
#endif
static float fma_loop_scalar(long iters) {
  float m = 0.999999f, a = 1e-7f;
  float a0 = 0, a1 = 1, a2 = 2, a3 = 3, a4 = 4, a5 = 5, a6 = 6, a7 = 7, a8 = 8, a9 = 9,
        a10 = 10, a11 = 11;
  PEAK_BODY(fmaf)
  return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
}

/* Lanes per FMA of the loop this CPU runs, and its name. */
static int fma_lanes(const char **isa) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return *isa = "avx512", 16;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return *isa = "avx2", 8;
#endif
  return *isa = "scalar", 1;
}

typedef struct peak_job {
  long iters;
  int lanes;
  float sink;
} peak_job;

static void *peak_thread(void *arg) {
  peak_job *j = arg;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (j->lanes == 16) j->sink = fma_loop_512(j->iters);
  else if (j->lanes == 8) j->sink = fma_loop_256(j->iters);
  else
#endif
    j->sink = fma_loop_scalar(j->iters);
  return NULL;
}

static void bench_peak(void) {
  const char *key = "fma peak (C)";
  if (!wanted(key)) return;
  const char *isa;
  int lanes = fma_lanes(&isa);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int nt = cfg.threads ? cfg.threads : cores > 0 ? (int)cores : 1;
  if (nt > 256) nt = 256;
  long iters = (cfg.quick ? 20000000L : 200000000L) / lanes; /* ~50 ms */
  pthread_t th[256];
  peak_job jobs[256];
  int runs = cfg.quick ? 3 : 10;
  double *t = malloc((size_t)runs * sizeof *t);
  if (!t) exit(2);
  for (int r = 0; r < runs; r++) {
    double t0 = now_ms();
    int started = 0;
    for (int i = 0; i < nt; i++) {
      jobs[i] = (peak_job){iters, lanes, 0};
      if (pthread_create(&th[i], NULL, peak_thread, &jobs[i]) != 0) break;
      started++;
    }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    t[r] = now_ms() - t0;
    if (started < nt) {
      report_error(key, "cannot start %d threads", nt);
      free(t);
      return;
    }
  }
  median(t, runs); /* sorts */
  char size[64];
  snprintf(size, sizeof size, "%s, %d thread%s", isa, nt, nt > 1 ? "s" : "");
  /* A capability, not a typical time: the rate is the best run's (a
   * virtual machine's cores are sometimes shared with other guests). */
  report(key, size, t[0], t[0], 0, 2.0 * PEAK_ACCS * lanes * (double)iters * nt);
  free(t);
}

/* y = x as a smelt program: what a program costs beyond the copy itself. */
static void bench_identity(int64_t n, const char *size) {
  const char *key = "copy (smelt)";
  if (!wanted(key)) return;
  smelt_graph *g = smelt_graph_new();
  smelt_node x = smelt_input(g, "x", SMELT_F32, 1, &n);
  smelt_output(g, "y", x);
  smelt_params *p = smelt_params_new(g);
  float *xd = random_f32((size_t)n);
  smelt_program *pr = compile(key, g, p, 1, (const char *[]){"y"}, 0, NULL);
  double med, min;
  if (pr && smelt_program_bind(pr, "x", SMELT_F32, 1, &n, xd, (size_t)n * 4) != 0)
    report_error(key, "bind failed: %s", smelt_program_error(pr));
  else if (pr && time_runs(key, pr, &med, &min)) {
    float *y = read_f32(key, pr, "y", (size_t)n);
    if (y && memcmp(y, xd, (size_t)n * 4) != 0) report_error(key, "wrong result");
    else if (y) report(key, size, med, min, 2.0 * (double)n * 4, 0);
    free(y);
  }
  free(xd);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}

/* relu(a*b + c) * 0.5 + exp(-a): three reads and one write per element. */
static void bench_elementwise(int64_t n, const char *size) {
  const char *key = "elementwise";
  if (!wanted(key)) return;
  smelt_graph *g = smelt_graph_new();
  smelt_node a = smelt_input(g, "a", SMELT_F32, 1, &n);
  smelt_node b = smelt_input(g, "b", SMELT_F32, 1, &n);
  smelt_node c = smelt_input(g, "c", SMELT_F32, 1, &n);
  smelt_node r = smelt_relu(g, smelt_add(g, smelt_mul(g, a, b), c));
  smelt_node y = smelt_add(g, smelt_mul(g, r, smelt_scalar(g, 0.5)), smelt_exp(g, smelt_neg(g, a)));
  smelt_output(g, "y", y);
  smelt_params *p = smelt_params_new(g);
  float *ad = random_f32((size_t)n), *bd = random_f32((size_t)n), *cd = random_f32((size_t)n);
  smelt_program *pr = compile(key, g, p, 1, (const char *[]){"y"}, 0, NULL);
  size_t nb = (size_t)n * 4;
  double med, min;
  if (pr && (smelt_program_bind(pr, "a", SMELT_F32, 1, &n, ad, nb) ||
             smelt_program_bind(pr, "b", SMELT_F32, 1, &n, bd, nb) ||
             smelt_program_bind(pr, "c", SMELT_F32, 1, &n, cd, nb)))
    report_error(key, "bind failed: %s", smelt_program_error(pr));
  else if (pr && time_runs(key, pr, &med, &min)) {
    float *yd = read_f32(key, pr, "y", (size_t)n);
    bool ok = yd != NULL;
    for (int64_t i = 0; ok && i < n; i += n / 97 + 1) {
      double v = (double)ad[i] * bd[i] + cd[i];
      ok = close_to(yd[i], (v > 0 ? v : 0) * 0.5 + exp(-(double)ad[i]), 1e-5);
      if (!ok) report_error(key, "wrong result at %lld", (long long)i);
    }
    if (ok) report(key, size, med, min, 4.0 * (double)nb, 0);
    free(yd);
  }
  free(ad), free(bd), free(cd);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}

/* A reduction of x (dims) over the given axes, checked against a double
 * reference computed here. op: 's' sum, 'm' mean, 'x' max. */
static void bench_reduce(const char *key, char op, int rank, const int64_t *dims, int naxes,
                         const int *axes, const char *size) {
  if (!wanted(key)) return;
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  smelt_graph *g = smelt_graph_new();
  smelt_node x = smelt_input(g, "x", SMELT_F32, rank, dims);
  smelt_node y = op == 's'   ? smelt_sum(g, x, naxes, axes, false)
                 : op == 'm' ? smelt_mean(g, x, naxes, axes, false)
                             : smelt_max(g, x, naxes, axes, false);
  smelt_output(g, "y", y);
  int64_t ny = smelt_node_numel(g, y);
  smelt_params *p = smelt_params_new(g);
  float *xd = random_f32((size_t)n);
  smelt_program *pr = compile(key, g, p, 1, (const char *[]){"y"}, 0, NULL);
  double med, min;
  if (pr && smelt_program_bind(pr, "x", SMELT_F32, rank, dims, xd, (size_t)n * 4) != 0)
    report_error(key, "bind failed: %s", smelt_program_error(pr));
  else if (pr && time_runs(key, pr, &med, &min)) {
    float *yd = read_f32(key, pr, "y", (size_t)ny);
    bool ok = yd != NULL;
    /* Check the first output element: reduce over the reduced axes with
     * the kept axes at 0 (the workloads reduce axis 0, the last axis or
     * everything, so the first output element is easy to name). */
    if (ok) {
      int64_t count = 0, stride = 1, step;
      double acc = op == 'x' ? -INFINITY : 0;
      if (naxes == 0) count = n, step = 1;
      else if (axes[0] == 0) {
        count = dims[0];
        for (int i = 1; i < rank; i++) stride *= dims[i];
        step = stride;
      } else count = dims[rank - 1], step = 1;
      for (int64_t i = 0; i < count; i++) {
        double v = xd[i * step];
        acc = op == 'x' ? (v > acc ? v : acc) : acc + v;
      }
      if (op == 'm') acc /= (double)count;
      ok = close_to(yd[0], acc, 1e-4);
      if (!ok) report_error(key, "wrong result: %g, want %g", yd[0], acc);
    }
    if (ok) report(key, size, med, min, (double)(n + ny) * 4, 0);
    free(yd);
  }
  free(xd);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}

/* C = A B with A [M, K] and B [K, N] (stored transposed when ta / tb:
 * the program reads them through a transpose view, as a gradient does),
 * or, with linear_relu, relu(A B + bias) with bias [N]: the matmul with
 * its epilogue fused. Checked on a few entries. */
typedef struct gemm {
  const char *key, *size;
  int64_t m, n, k;
  bool ta, tb, linear_relu;
} gemm;

static void bench_gemm(const gemm *w) {
  if (!wanted(w->key)) return;
  int64_t M = w->m, N = w->n, K = w->k;
  int64_t ad[2] = {w->ta ? K : M, w->ta ? M : K}, bd[2] = {w->tb ? N : K, w->tb ? K : N};
  smelt_graph *g = smelt_graph_new();
  smelt_node a = smelt_input(g, "a", SMELT_F32, 2, ad);
  smelt_node b = smelt_input(g, "b", SMELT_F32, 2, bd);
  smelt_node bias = smelt_input(g, "bias", SMELT_F32, 1, &N);
  if (w->ta) a = smelt_transpose(g, a, 0, 1);
  if (w->tb) b = smelt_transpose(g, b, 0, 1);
  smelt_node y = smelt_matmul(g, a, b);
  if (w->linear_relu) y = smelt_relu(g, smelt_add(g, y, bias));
  smelt_output(g, "y", y);
  smelt_params *p = smelt_params_new(g);
  size_t na = (size_t)(M * K), nb = (size_t)(K * N), nc = (size_t)(M * N);
  float *a_ = random_f32(na), *b_ = random_f32(nb), *bias_ = random_f32((size_t)N);
  smelt_program *pr = compile(w->key, g, p, 1, (const char *[]){"y"}, 0, NULL);
  /* big products: fewer runs (the 4096 one takes most of a second) */
  double flops = 2.0 * (double)M * (double)N * (double)K;
  int repeats = flops > 1e11 && cfg.repeats > 5 ? 5 : cfg.repeats;
  double med, min;
  if (pr && (smelt_program_bind(pr, "a", SMELT_F32, 2, ad, a_, na * 4) ||
             smelt_program_bind(pr, "b", SMELT_F32, 2, bd, b_, nb * 4) ||
             (w->linear_relu &&
              smelt_program_bind(pr, "bias", SMELT_F32, 1, &N, bias_, (size_t)N * 4))))
    report_error(w->key, "bind failed: %s", smelt_program_error(pr));
  else if (pr && time_runs_n(w->key, pr, repeats, &med, &min)) {
    float *yd = read_f32(w->key, pr, "y", nc);
    bool ok = yd != NULL;
    for (int64_t t = 0; ok && t < 5; t++) { /* a few entries, by dot product */
      int64_t i = (t * 7919) % M, j = (t * 104729) % N;
      double want = 0;
      for (int64_t q = 0; q < K; q++)
        want += (double)a_[w->ta ? q * M + i : i * K + q] * b_[w->tb ? j * K + q : q * N + j];
      if (w->linear_relu) want = want + bias_[j] > 0 ? want + bias_[j] : 0;
      ok = close_to(yd[i * N + j], want, 1e-4 * sqrt((double)K));
      if (!ok) report_error(w->key, "wrong result at [%lld, %lld]", (long long)i, (long long)j);
    }
    if (ok) report(w->key, w->size, med, min, 0, flops);
    free(yd);
  }
  free(a_), free(b_), free(bias_);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}

/* The MLP training step: 784-hidden-10, ReLU, cross-entropy, SGD. */
typedef struct mlp {
  smelt_graph *g;
  smelt_params *p;
  int nupd;
  smelt_node upd[SMELT_OPTIM_MAX_UPDATES(4)];
  int64_t batch, in, hidden, out;
} mlp;

static bool mlp_build(mlp *m, int64_t batch, int64_t hidden) {
  memset(m, 0, sizeof *m);
  m->batch = batch, m->in = 784, m->hidden = hidden, m->out = 10;
  smelt_graph *g = m->g = smelt_graph_new();
  if (!g) return false;
  int64_t xd[2] = {batch, m->in}, w1[2] = {m->in, hidden}, w2[2] = {hidden, m->out};
  smelt_node x = smelt_input(g, "x", SMELT_F32, 2, xd);
  smelt_node labels = smelt_input(g, "labels", SMELT_I64, 1, &batch);
  /* PyTorch's nn.Linear initialisation scale, uniform(-1/sqrt(fan_in), ..) */
  double s1 = 1 / sqrt((double)m->in), s2 = 1 / sqrt((double)hidden);
  smelt_node params[4] = {
      smelt_param(g, "w1", SMELT_F32, 2, w1, smelt_init_uniform(-s1, s1, 1)),
      smelt_param(g, "b1", SMELT_F32, 1, &hidden, smelt_init_uniform(-s1, s1, 2)),
      smelt_param(g, "w2", SMELT_F32, 2, w2, smelt_init_uniform(-s2, s2, 3)),
      smelt_param(g, "b2", SMELT_F32, 1, &m->out, smelt_init_uniform(-s2, s2, 4))};
  smelt_node h = smelt_relu(g, smelt_add(g, smelt_matmul(g, x, params[0]), params[1]));
  smelt_node logits = smelt_add(g, smelt_matmul(g, h, params[2]), params[3]);
  smelt_node loss = smelt_output(g, "loss", smelt_cross_entropy(g, logits, labels));
  smelt_node grads[4];
  smelt_grad(g, loss, 4, params, grads);
  smelt_sgd_options sgd = smelt_sgd_defaults(0.01);
  m->nupd = smelt_sgd(g, "sgd", 4, params, grads, &sgd, m->upd);
  m->p = smelt_params_new(g);
  return m->p != NULL;
}

static void mlp_free(mlp *m) {
  smelt_params_free(m->p);
  smelt_graph_free(m->g);
}

static void bench_train(int64_t batch, int64_t hidden, const char *size) {
  const char *key = "mlp train step";
  if (!wanted(key)) return;
  mlp m;
  if (!mlp_build(&m, batch, hidden)) {
    report_error(key, "out of memory");
    mlp_free(&m);
    return;
  }
  smelt_program *pr =
      compile(key, m.g, m.p, 1, (const char *[]){"loss"}, m.nupd < 0 ? 0 : m.nupd, m.upd);
  size_t nx = (size_t)(batch * m.in);
  float *xd = random_f32(nx);
  int64_t *ld = malloc((size_t)batch * sizeof *ld);
  if (!ld) exit(2);
  for (int64_t i = 0; i < batch; i++) ld[i] = (int64_t)((frand() + 1) * 5) % 10;
  int64_t xdims[2] = {batch, m.in};
  double med, min;
  if (pr && (smelt_program_bind(pr, "x", SMELT_F32, 2, xdims, xd, nx * 4) ||
             smelt_program_bind(pr, "labels", SMELT_I64, 1, &batch, ld,
                                (size_t)batch * sizeof *ld)))
    report_error(key, "bind failed: %s", smelt_program_error(pr));
  else if (pr && time_runs(key, pr, &med, &min)) {
    float loss = NAN;
    if (smelt_program_read(pr, "loss", SMELT_F32, &loss, sizeof loss) != 0 || !isfinite(loss))
      report_error(key, "loss is %g", loss);
    else {
      /* Forward 2*B*(in*hidden + hidden*out) flops; backward about twice. */
      double fwd = 2.0 * (double)batch * (double)(m.in * hidden + hidden * m.out);
      report(key, size, med, min, 0, 3 * fwd);
    }
  }
  free(xd);
  free(ld);
  smelt_program_free(pr);
  mlp_free(&m);
}

/* The Fashion-MNIST CNN of samples/fashion_mnist: conv 1->32 (3x3, pad 1),
 * ReLU, 2x2 max pool, conv 32->64, ReLU, pool, linear 64*7*7 -> 10,
 * cross-entropy, SGD with momentum 0.9 (lr 0.01). One training step. */
static void bench_cnn(int64_t batch, const char *size) {
  const char *key = "cnn train step";
  if (!wanted(key)) return;
  smelt_graph *g = smelt_graph_new();
  int64_t xd[4] = {batch, 1, 28, 28};
  smelt_node x = smelt_input(g, "x", SMELT_F32, 4, xd);
  smelt_node labels = smelt_input(g, "labels", SMELT_I64, 1, &batch);
  const int64_t shapes[6][4] = {{32, 1, 3, 3}, {32}, {64, 32, 3, 3}, {64}, {64 * 7 * 7, 10},
                                {10}};
  const int ranks[6] = {4, 1, 4, 1, 2, 1};
  const double fan_in[6] = {9, 9, 32 * 9, 32 * 9, 64 * 7 * 7, 64 * 7 * 7};
  const char *names[6] = {"conv1.w", "conv1.b", "conv2.w", "conv2.b", "fc.w", "fc.b"};
  smelt_node params[6], grads[6], upd[SMELT_OPTIM_MAX_UPDATES(6)];
  for (int i = 0; i < 6; i++) {
    double s = 1 / sqrt(fan_in[i]);
    params[i] = smelt_param(g, names[i], SMELT_F32, ranks[i], shapes[i],
                            smelt_init_uniform(-s, s, (uint64_t)i + 1));
  }
  const int64_t stride[2] = {1, 1}, pad[2] = {1, 1}, pool[2] = {2, 2};
  smelt_node h = x;
  for (int i = 0; i < 4; i += 2) {
    h = smelt_relu(g, smelt_conv2d(g, h, params[i], params[i + 1], stride, pad, NULL, 1));
    h = smelt_max_pool2d(g, h, pool, NULL, NULL, NULL, false);
  }
  h = smelt_flatten(g, h, 1, -1);
  smelt_node logits = smelt_add(g, smelt_matmul(g, h, params[4]), params[5]);
  smelt_node loss = smelt_output(g, "loss", smelt_cross_entropy(g, logits, labels));
  smelt_grad(g, loss, 6, params, grads);
  smelt_sgd_options so = smelt_sgd_defaults(0.01);
  so.momentum = 0.9;
  int nupd = smelt_sgd(g, "sgd", 6, params, grads, &so, upd);
  smelt_params *p = smelt_params_new(g);
  smelt_program *pr =
      compile(key, g, p, 1, (const char *[]){"loss"}, nupd < 0 ? 0 : nupd, upd);
  size_t nx = (size_t)(batch * 784);
  float *x_ = random_f32(nx);
  int64_t *l_ = malloc((size_t)batch * sizeof *l_);
  if (!l_) exit(2);
  for (int64_t i = 0; i < batch; i++) l_[i] = (int64_t)((frand() + 1) * 5) % 10;
  double med, min;
  if (pr && (smelt_program_bind(pr, "x", SMELT_F32, 4, xd, x_, nx * 4) ||
             smelt_program_bind(pr, "labels", SMELT_I64, 1, &batch, l_,
                                (size_t)batch * sizeof *l_)))
    report_error(key, "bind failed: %s", smelt_program_error(pr));
  else if (pr && time_runs(key, pr, &med, &min)) {
    float loss_v = NAN;
    if (smelt_program_read(pr, "loss", SMELT_F32, &loss_v, sizeof loss_v) != 0 ||
        !isfinite(loss_v))
      report_error(key, "loss is %g", loss_v);
    else {
      /* forward flops of the two convolutions and the linear layer; the
       * backward about twice (conv1 needs no input gradient: close enough) */
      double fwd = 2.0 * (double)batch *
                   (28.0 * 28 * 32 * 9 + 14.0 * 14 * 64 * 32 * 9 + 64.0 * 7 * 7 * 10);
      report(key, size, med, min, 0, 3 * fwd);
    }
  }
  free(x_);
  free(l_);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
}

/* Removes a cache directory we made (files and subdirectories). */
static void remove_tree(const char *path) {
  DIR *d = opendir(path);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      char sub[4096];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      struct stat st;
      if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(sub);
      else unlink(sub);
    }
    closedir(d);
  }
  rmdir(path);
}

/* JIT compile time of the training program: cold (an empty cache
 * directory) and from the cache (the same directory again). */
static void bench_compile(int64_t batch, int64_t hidden, const char *size) {
  const char *cold = "compile (cold)", *cached = "compile (cached)";
  if (!wanted(cold) && !wanted(cached)) return;
  char dir[4096];
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/smelt-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    report_error(cold, "cannot make a cache directory: %s", strerror(errno));
    return;
  }
  for (int pass = 0; pass < 2; pass++) {
    const char *key = pass ? cached : cold;
    mlp m;
    if (!mlp_build(&m, batch, hidden) || smelt_graph_error(m.g)) {
      report_error(key, "building the graph failed: %s",
                   m.g && smelt_graph_error(m.g) ? smelt_graph_error(m.g) : "out of memory");
      mlp_free(&m);
      break;
    }
    smelt_compile_options o = options(dir);
    double t0 = now_ms();
    smelt_program *pr =
        smelt_program_compile(m.g, m.p, 1, (const char *[]){"loss"}, m.nupd, m.upd, &o);
    double wall = now_ms() - t0;
    smelt_program_stats st;
    if (!pr || smelt_program_get_stats(pr, &st) != 0) {
      report_error(key, "compiling for the %s target failed: %s", smelt_target_name(cfg.target),
                   pr && smelt_program_error(pr) ? smelt_program_error(pr) : "out of memory");
    } else if (wanted(key)) {
      if (cfg.json) {
        printf("{\"workload\": ");
        json_str(key);
        printf(", \"size\": ");
        json_str(size);
        printf(", \"target\": \"%s\", \"threads\": %d, \"compile_ms\": %.6g, \"wall_ms\": %.6g, "
               "\"from_cache\": %s, \"kernels\": %d, \"buffers\": %d, \"arena_bytes\": %zu, "
               "\"unplanned_bytes\": %zu}\n",
               smelt_target_name(st.target), cfg.threads, st.compile_ms, wall,
               st.from_cache ? "true" : "false", st.kernels, st.buffers, st.arena_bytes,
               st.unplanned_bytes);
      } else {
        if (pass == 0 || !wanted(cold)) printf("\ncompiling the training program (%s):\n", size);
        printf("  %-7s %10.3f ms compile_ms, %10.3f ms wall, %s", pass ? "cached" : "cold",
               st.compile_ms, wall,
               st.target == SMELT_TARGET_INTERP ? "interp: no code"
               : st.from_cache                  ? "from the cache"
                                                : "compiled");
        if (pass == 0)
          printf("; %d kernels, %d buffers, arena %.2f MB (%.2f MB without reuse)", st.kernels,
                 st.buffers, st.arena_bytes / 1e6, st.unplanned_bytes / 1e6);
        printf("\n");
      }
      fflush(stdout);
      if (pass == 1 && cfg.target == SMELT_TARGET_CPU && !st.from_cache)
        fprintf(stderr, "smelt-bench: note: the second compile did not come from the cache\n");
    }
    smelt_program_free(pr);
    mlp_free(&m);
  }
  remove_tree(dir);
}

/* Reads a "VmRSS:"-style field of /proc/self/status in bytes; -1 when
 * unavailable (not Linux). */
static long long proc_status_bytes(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long long v = -1;
  size_t n = strlen(field);
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, field, n) && line[n] == ':') {
      v = atoll(line + n + 1) * 1024;
      break;
    }
  fclose(f);
  return v;
}

/* Peak memory of the MLP training step, measured as PyTorch's is in
 * bench/peers.py: the growth of the resident set from just before the
 * program is made (compiled from a warm disk cache, so that LLVM's own
 * memory is not counted) to its peak over 5 runs (Linux's VmHWM, reset
 * through /proc/self/clear_refs). Also prints the planned arena. */
static void bench_memory(int64_t batch, int64_t hidden, const char *size) {
  const char *key = "mlp step memory";
  if (!wanted(key) || cfg.target != SMELT_TARGET_CPU) return;
  char dir[4096];
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/smelt-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    report_error(key, "cannot make a cache directory: %s", strerror(errno));
    return;
  }
  mlp m;
  if (!mlp_build(&m, batch, hidden) || smelt_graph_error(m.g)) {
    report_error(key, "building the graph failed");
    mlp_free(&m);
    remove_tree(dir);
    return;
  }
  size_t nx = (size_t)(batch * m.in);
  float *xd = random_f32(nx);
  int64_t *ld = calloc((size_t)batch, sizeof *ld);
  int64_t xdims[2] = {batch, m.in};
  smelt_compile_options o = options(dir);
  const char *outs[] = {"loss"};
  smelt_program *warm = smelt_program_compile(m.g, m.p, 1, outs, m.nupd, m.upd, &o);
  smelt_program_free(warm); /* fills the cache */
#ifdef __GLIBC__
  malloc_trim(0); /* what the warm-up program freed goes back to the system */
#endif
  FILE *cr = fopen("/proc/self/clear_refs", "w");
  bool reset = cr && fputs("5", cr) >= 0;
  if (cr) reset = fclose(cr) == 0 && reset;
  long long base = proc_status_bytes("VmRSS");
  smelt_program *pr = smelt_program_compile(m.g, m.p, 1, outs, m.nupd, m.upd, &o);
  smelt_program_stats st;
  bool ok = pr && smelt_program_get_stats(pr, &st) == 0 && ld &&
            !smelt_program_bind(pr, "x", SMELT_F32, 2, xdims, xd, nx * 4) &&
            !smelt_program_bind(pr, "labels", SMELT_I64, 1, &batch, ld,
                                (size_t)batch * sizeof *ld);
  for (int i = 0; ok && i < 5; i++) ok = smelt_program_run(pr) == 0;
  long long peak = proc_status_bytes("VmHWM");
  if (!ok)
    report_error(key, "%s", pr && smelt_program_error(pr) ? smelt_program_error(pr) : "failed");
  else if (!reset || base < 0 || peak < 0)
    report_error(key, "cannot measure: /proc/self/clear_refs or VmHWM unavailable");
  else if (cfg.json)
    printf("{\"workload\": \"%s\", \"size\": \"%s\", \"target\": \"cpu\", \"rss_growth_bytes\": "
           "%lld, \"arena_bytes\": %zu, \"unplanned_bytes\": %zu}\n",
           key, size, peak - base, st.arena_bytes, st.unplanned_bytes);
  else
    printf("\nmemory of the training step (%s): resident set grew %.2f MB over 5 runs "
           "(program made from the cache, then run); arena %.2f MB (%.2f MB without reuse)\n",
           size, (double)(peak - base) / 1e6, st.arena_bytes / 1e6, st.unplanned_bytes / 1e6);
  fflush(stdout);
  smelt_program_free(pr);
  free(xd);
  free(ld);
  mlp_free(&m);
  remove_tree(dir);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f) {
  fprintf(f,
          "usage: smelt-bench [--target cpu|interp] [--threads N] [--repeats N] [--quick]\n"
          "                   [--only SUBSTRING] [--json]\n"
          "  --target T    where programs run (default cpu)\n"
          "  --threads N   smelt_compile_options.num_threads (default 0: $SMELT_NUM_THREADS,\n"
          "                else every core)\n"
          "  --repeats N   timed runs per workload; the median is reported (default 20,\n"
          "                5 with --quick)\n"
          "  --quick       small sizes (a smoke test, also for the interp target)\n"
          "  --only S      only the workloads whose name contains S\n"
          "  --json        one JSON object per line instead of the table\n");
}

static int int_arg(const char *flag, const char *v, int lo) {
  char *end;
  long x = v ? strtol(v, &end, 10) : 0;
  if (!v || *end || x < lo || x > 1 << 20) {
    fprintf(stderr, "smelt-bench: %s needs an integer >= %d\n", flag, lo);
    exit(2);
  }
  return (int)x;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--target")) {
      if (v && !strcmp(v, "cpu")) cfg.target = SMELT_TARGET_CPU;
      else if (v && !strcmp(v, "interp")) cfg.target = SMELT_TARGET_INTERP;
      else {
        fprintf(stderr, "smelt-bench: --target is cpu or interp\n");
        return 2;
      }
      i++;
    } else if (!strcmp(a, "--threads")) cfg.threads = int_arg(a, v, 0), i++;
    else if (!strcmp(a, "--repeats")) cfg.repeats = int_arg(a, v, 1), i++;
    else if (!strcmp(a, "--only")) {
      if (!v) return usage(stderr), 2;
      cfg.only = v, i++;
    } else if (!strcmp(a, "--quick")) cfg.quick = true;
    else if (!strcmp(a, "--json")) cfg.json = true;
    else if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout), 0;
    else {
      fprintf(stderr, "smelt-bench: unknown argument '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (!cfg.repeats) cfg.repeats = cfg.quick ? 5 : 20;
  cfg.warmup = cfg.quick ? 1 : 3;

  print_header();
  /* Sizes: the full ones, or a quick smoke test. */
  int64_t big = cfg.quick ? (int64_t)1 << 16 : (int64_t)1 << 24;
  const char *big_s = cfg.quick ? "2^16 f32" : "2^24 f32";
  int64_t img[4] = {5, 256, 256, 3};
  if (cfg.quick) img[1] = img[2] = 32;
  const char *img_s = cfg.quick ? "5x32x32x3 f32" : "5x256x256x3 f32";
  int64_t batch = cfg.quick ? 32 : 256, hidden = cfg.quick ? 64 : 512;
  const char *mlp_s = cfg.quick ? "784-64-10 b32" : "784-512-10 b256";

  bench_memcpy(big, big_s);
  bench_peak();
  bench_identity(big, big_s);
  bench_elementwise(big, big_s);
  const int axis0 = 0, last = -1;
  bench_reduce("mean axis 0", 'm', 4, img, 1, &axis0, img_s);
  bench_reduce("max axis -1", 'x', 4, img, 1, &last, img_s);
  bench_reduce("sum", 's', 1, &big, 0, NULL, big_s);

  /* Square matmuls, the MLP's five products (forward, and the backward's
   * with a transposed operand), and bias+ReLU fused as an epilogue.
   * Keys carry the sizes; bench/peers.py names them the same way. */
  const int64_t full_sq[] = {256, 1000, 1024, 4096}, quick_sq[] = {64, 100, 128};
  const int64_t *sq = cfg.quick ? quick_sq : full_sq;
  int nsq = cfg.quick ? 3 : 4;
  char keys[16][48], sizes[16][48];
  gemm gm[16];
  int ng = 0;
  for (int i = 0; i < nsq; i++, ng++) {
    snprintf(keys[ng], sizeof keys[ng], "matmul %lld", (long long)sq[i]);
    snprintf(sizes[ng], sizeof sizes[ng], "%lldx%lld f32", (long long)sq[i], (long long)sq[i]);
    gm[ng] = (gemm){keys[ng], sizes[ng], sq[i], sq[i], sq[i], false, false, false};
  }
  const struct {
    const char *name;
    int64_t m, n, k;
    bool ta, tb, lr;
  } mlp_mm[] = {{"mlp x@w1", batch, hidden, 784, false, false, false},
                {"mlp h@w2", batch, 10, hidden, false, false, false},
                {"mlp x^T@gh", 784, hidden, batch, true, false, false},
                {"mlp h^T@g", hidden, 10, batch, true, false, false},
                {"mlp g@w2^T", batch, hidden, 10, false, true, false},
                {"linear+relu mlp", batch, hidden, 784, false, false, true},
                {"linear+relu square", cfg.quick ? 128 : 1024, cfg.quick ? 128 : 1024,
                 cfg.quick ? 128 : 1024, false, false, true}};
  for (size_t i = 0; i < sizeof mlp_mm / sizeof *mlp_mm; i++, ng++) {
    snprintf(keys[ng], sizeof keys[ng], "%s", mlp_mm[i].name);
    snprintf(sizes[ng], sizeof sizes[ng], "%lldx%lldx%lld", (long long)mlp_mm[i].m,
             (long long)mlp_mm[i].n, (long long)mlp_mm[i].k);
    gm[ng] = (gemm){keys[ng],    sizes[ng],      mlp_mm[i].m, mlp_mm[i].n,
                    mlp_mm[i].k, mlp_mm[i].ta, mlp_mm[i].tb, mlp_mm[i].lr};
  }
  for (int i = 0; i < ng; i++) bench_gemm(&gm[i]);

  bench_train(batch, hidden, mlp_s);
  bench_cnn(cfg.quick ? 8 : 64, cfg.quick ? "b8" : "b64");
  bench_compile(batch, hidden, mlp_s);
  bench_memory(batch, hidden, mlp_s);
  return failures ? 1 : 0;
}
