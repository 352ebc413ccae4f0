/* The runtime suite: the thread pool (runtime/threads.c) and memory
 * planning (runtime/memplan.c). Nothing here is timed: the pool's overhead
 * is printed by the "overhead" test for information only. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../runtime/memplan.h"
#include "../runtime/threads.h"
#include "internal.h"

/* ------------------------------------------------------------ coverage */

#define MAX_PIECES 4096

/* What one parallel_for call saw: how often each index was visited and
 * the pieces it was split into. */
typedef struct cover {
  atomic_int *hits;
  int64_t n;
  atomic_int npieces;
  int64_t begin[MAX_PIECES], end[MAX_PIECES];
} cover;

static void cover_fn(void *ctx, int64_t b, int64_t e) {
  cover *c = ctx;
  int k = atomic_fetch_add(&c->npieces, 1);
  if (k < MAX_PIECES) {
    c->begin[k] = b;
    c->end[k] = e;
  }
  for (int64_t i = b; i < e; i++) atomic_fetch_add_explicit(&c->hits[i], 1, memory_order_relaxed);
}

/* Runs one split and checks it: every index exactly once, at most nthreads
 * pieces, boundaries multiples of align, pieces at least grain long except
 * the last. */
static void check_split(int nthreads, int64_t n, int64_t grain, int64_t align) {
  static cover c; /* large: keep it off the stack */
  memset(&c, 0, sizeof c);
  c.n = n;
  c.hits = calloc((size_t)(n ? n : 1), sizeof *c.hits);
  ck_assert_ptr_nonnull(c.hits);
  sm_parallel_for(nthreads, n, grain, align, cover_fn, &c);
  /* Check's assertions cost a system call each: find the first bad index
   * first. */
  int64_t bad = 0;
  while (bad < n && atomic_load(&c.hits[bad]) == 1) bad++;
  ck_assert_msg(bad == n, "nthreads %d n %lld grain %lld align %lld: index %lld hit %d times",
                nthreads, (long long)n, (long long)grain, (long long)align, (long long)bad,
                bad < n ? atomic_load(&c.hits[bad]) : 1);
  int np = atomic_load(&c.npieces);
  if (n == 0) ck_assert_int_eq(np, 0);
  else ck_assert_int_ge(np, 1);
  ck_assert_int_le(np, nthreads < 1 ? 1 : nthreads);
  int64_t g = grain < 1 ? 1 : grain, a = align < 1 ? 1 : align;
  for (int k = 0; k < np; k++) {
    int64_t b = c.begin[k], e = c.end[k];
    ck_assert(b < e);
    ck_assert_msg(b % a == 0 && (e == n || e % a == 0), "piece [%lld, %lld) not aligned to %lld",
                  (long long)b, (long long)e, (long long)a);
    ck_assert_msg(e == n || e - b >= g, "piece [%lld, %lld) shorter than grain %lld",
                  (long long)b, (long long)e, (long long)g);
  }
  free(c.hits);
}

START_TEST(test_cover_combos) {
  static const int64_t ns[] = {0, 1, 2, 3, 5, 7, 16, 64, 100, 1000, 4097, 100003};
  static const int64_t grains[] = {0, 1, 3, 64, 1000};
  static const int64_t aligns[] = {0, 1, 4, 16, 1024};
  static const int threads[] = {0, 1, 2, 3, 4, 8, 17, 64};
  for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
    for (size_t b = 0; b < sizeof grains / sizeof *grains; b++)
      for (size_t c = 0; c < sizeof aligns / sizeof *aligns; c++)
        for (size_t d = 0; d < sizeof threads / sizeof *threads; d++)
          check_split(threads[d], ns[a], grains[b], aligns[c]);
}
END_TEST

/* The split uses as many pieces as it may: n = 1000 over 4 threads with
 * grain 1 is 4 pieces of 250. */
START_TEST(test_split_shape) {
  static cover c;
  memset(&c, 0, sizeof c);
  c.hits = calloc(1000, sizeof *c.hits);
  ck_assert_ptr_nonnull(c.hits);
  sm_parallel_for(4, 1000, 1, 1, cover_fn, &c);
  ck_assert_int_eq(atomic_load(&c.npieces), 4);
  for (int k = 0; k < 4; k++) ck_assert_int_eq(c.end[k] - c.begin[k], 250);
  free(c.hits);
  /* Grain 400: pieces of at least 400, so 400 + 400 + 200. */
  memset(&c, 0, sizeof c);
  c.hits = calloc(1000, sizeof *c.hits);
  ck_assert_ptr_nonnull(c.hits);
  sm_parallel_for(4, 1000, 400, 1, cover_fn, &c);
  ck_assert_int_eq(atomic_load(&c.npieces), 3);
  for (int k = 0; k < 3; k++)
    ck_assert_int_eq(c.end[k] - c.begin[k], c.begin[k] == 800 ? 200 : 400);
  free(c.hits);
}
END_TEST

/* Many n, stressing the dispatch: thousands of back-to-back calls. */
static void add_fn(void *ctx, int64_t b, int64_t e) {
  atomic_llong *sum = ctx;
  long long s = 0;
  for (int64_t i = b; i < e; i++) s += i;
  atomic_fetch_add(sum, s);
}

START_TEST(test_back_to_back) {
  for (int rep = 0; rep < 3000; rep++) {
    int64_t n = 1 + rep % 997;
    atomic_llong sum = 0;
    sm_parallel_for(1 + rep % 6, n, 1, 1, add_fn, &sum);
    ck_assert_int_eq(atomic_load(&sum), n * (n - 1) / 2);
  }
}
END_TEST

/* Helpers really run pieces: slow pieces spread over several threads. */
typedef struct who {
  atomic_int n;
  pthread_t ids[64];
} who;

static void who_fn(void *ctx, int64_t b, int64_t e) {
  (void)b, (void)e;
  who *w = ctx;
  int k = atomic_fetch_add(&w->n, 1);
  if (k < 64) w->ids[k] = pthread_self();
  struct timespec ts = {0, 50 * 1000 * 1000}; /* long enough for a helper to wake */
  nanosleep(&ts, NULL);
}

START_TEST(test_uses_threads) {
  who w;
  memset(&w, 0, sizeof w);
  sm_parallel_for(4, 4, 1, 1, who_fn, &w);
  ck_assert_int_eq(atomic_load(&w.n), 4);
  int distinct = 0;
  for (int i = 0; i < 4; i++) {
    bool seen = false;
    for (int j = 0; j < i; j++) seen = seen || pthread_equal(w.ids[i], w.ids[j]);
    distinct += !seen;
  }
  ck_assert_int_ge(distinct, 2);
}
END_TEST

/* Several threads call sm_parallel_for at once: each call is complete and
 * exact (the pool serves one, the others run inline). */
typedef struct caller_arg {
  int id;
  int failures;
} caller_arg;

static void *caller_main(void *p) {
  caller_arg *a = p;
  for (int rep = 0; rep < 300; rep++) {
    int64_t n = 1000 + a->id * 37 + rep;
    atomic_llong sum = 0;
    sm_parallel_for(4, n, 16, 4, add_fn, &sum);
    if (atomic_load(&sum) != n * (n - 1) / 2) a->failures++;
  }
  return NULL;
}

START_TEST(test_concurrent_callers) {
  enum { N = 6 };
  pthread_t t[N];
  caller_arg args[N];
  for (int i = 0; i < N; i++) {
    args[i] = (caller_arg){i, 0};
    ck_assert_int_eq(pthread_create(&t[i], NULL, caller_main, &args[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    ck_assert_int_eq(args[i].failures, 0);
  }
}
END_TEST

/* Nested calls (from helpers and from the caller's own piece) run inline
 * and still cover their ranges. */
typedef struct nest {
  atomic_llong inner[64];
} nest;

static void nested_fn(void *ctx, int64_t b, int64_t e) {
  nest *ns = ctx;
  for (int64_t i = b; i < e; i++) {
    sm_parallel_for(4, 1000, 1, 1, add_fn, &ns->inner[i]);
  }
}

START_TEST(test_nested) {
  static nest ns;
  memset(&ns, 0, sizeof ns);
  sm_parallel_for(8, 64, 1, 1, nested_fn, &ns);
  for (int i = 0; i < 64; i++) ck_assert_int_eq(atomic_load(&ns.inner[i]), 1000 * 999 / 2);
}
END_TEST

/* ThreadSanitizer cannot start threads in the child of a multi-threaded
 * fork, so the fork test is left out of that build. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

/* After fork() the child has no workers; its calls must still work. */
START_TEST(test_fork) {
#ifdef UNDER_TSAN
  return;
#endif
  atomic_llong sum = 0;
  sm_parallel_for(4, 10000, 1, 1, add_fn, &sum);
  ck_assert_int_eq(atomic_load(&sum), 10000LL * 9999 / 2);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    atomic_llong s = 0;
    sm_parallel_for(4, 10000, 1, 1, add_fn, &s);
    /* exit, not _exit: the child's workers are stopped and joined, as
     * valgrind's leak check (which follows the child) wants. */
    exit(atomic_load(&s) == 10000LL * 9999 / 2 ? 0 : 1);
  }
  int status = 0;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

START_TEST(test_default_threads) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int want_default = cores < 1 ? 1 : (int)cores;
  unsetenv("SMELT_NUM_THREADS");
  ck_assert_int_eq(sm_default_threads(), want_default);
  setenv("SMELT_NUM_THREADS", "3", 1);
  ck_assert_int_eq(sm_default_threads(), 3);
  setenv("SMELT_NUM_THREADS", "1", 1);
  ck_assert_int_eq(sm_default_threads(), 1);
  setenv("SMELT_NUM_THREADS", "64", 1);
  ck_assert_int_eq(sm_default_threads(), 64);
  static const char *bad[] = {"", "0", "-2", "abc", "4x", "2.5", "99999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    setenv("SMELT_NUM_THREADS", bad[i], 1);
    ck_assert_msg(sm_default_threads() == want_default, "SMELT_NUM_THREADS=\"%s\" gave %d",
                  bad[i], sm_default_threads());
  }
  unsetenv("SMELT_NUM_THREADS");
}
END_TEST

/* Prints what one call costs (information, never a pass/fail criterion):
 * an empty body, which the caller may finish alone before a helper looks,
 * and a body that waits (up to 0.2 ms) until every piece has started, which
 * is the full fork-join round trip with every thread taking part. */
static void noop_fn(void *ctx, int64_t b, int64_t e) { (void)ctx, (void)b, (void)e; }

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

typedef struct rendezvous {
  atomic_int started;
  int pieces;
  atomic_int timeouts;
} rendezvous;

static void rendezvous_fn(void *ctx, int64_t b, int64_t e) {
  (void)b, (void)e;
  rendezvous *r = ctx;
  atomic_fetch_add(&r->started, 1);
  double t0 = now_us();
  while (atomic_load(&r->started) < r->pieces)
    if (now_us() - t0 > 200) {
      atomic_fetch_add(&r->timeouts, 1);
      break;
    }
}

START_TEST(test_overhead) {
  int nt = sm_default_threads();
  if (nt < 2) nt = 2;
  enum { REPS = 2000, ROUNDS = 200 };
  sm_parallel_for(nt, 1 << 20, 1, 1, noop_fn, NULL); /* start the pool */
  double t0 = now_us();
  for (int i = 0; i < REPS; i++) sm_parallel_for(nt, 1 << 20, 1, 1, noop_fn, NULL);
  double t1 = now_us();
  rendezvous r = {0, nt, 0};
  double t2 = now_us();
  for (int i = 0; i < ROUNDS; i++) {
    atomic_store(&r.started, 0);
    sm_parallel_for(nt, nt, 1, 1, rendezvous_fn, &r);
  }
  double t3 = now_us();
  fprintf(stderr,
          "runtime: sm_parallel_for with %d threads: %.2f us per empty call, %.2f us per "
          "call with every thread taking part (%d of %d pieces waited in vain)\n",
          nt, (t1 - t0) / REPS, (t3 - t2) / ROUNDS, atomic_load(&r.timeouts), ROUNDS * nt);
}
END_TEST

/* ------------------------------------------------------------ planner */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void) { /* xorshift64*: reproducible instances */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1du;
}

static bool live_together(const sm_mem_req *a, const sm_mem_req *b) {
  return a->first <= b->last && b->first <= a->last;
}

/* Checks a plan against its definition, by brute force (the loops test
 * first and assert once: each Check assertion is a system call). */
static void check_plan(const sm_mem_req *r, size_t n, size_t align, size_t arena) {
  ck_assert(arena != (size_t)-1);
  ck_assert_uint_eq(arena % align, 0);
  size_t sum = 0;
  for (size_t i = 0; i < n; i++) {
    if (r[i].offset % align || (r[i].bytes == 0 && r[i].offset) || r[i].offset + r[i].bytes > arena)
      ck_abort_msg("buffer %zu [%zu,+%zu) misplaced (align %zu, arena %zu)", i, r[i].offset,
                   r[i].bytes, align, arena);
    sum += (r[i].bytes + align - 1) / align * align;
    for (size_t j = 0; j < i; j++) {
      if (!r[i].bytes || !r[j].bytes || !live_together(&r[i], &r[j])) continue;
      if (r[i].offset + r[i].bytes > r[j].offset && r[j].offset + r[j].bytes > r[i].offset)
        ck_abort_msg("buffers %zu [%zu,+%zu) and %zu [%zu,+%zu) overlap", i, r[i].offset,
                     r[i].bytes, j, r[j].offset, r[j].bytes);
    }
  }
  /* Never worse than no reuse at all, never better than the peak of live
   * bytes at any one step. */
  ck_assert_uint_le(arena, sum);
  int maxstep = 0;
  for (size_t i = 0; i < n; i++)
    if (r[i].last > maxstep) maxstep = r[i].last;
  for (int s = 0; s <= maxstep; s++) {
    size_t live = 0;
    for (size_t i = 0; i < n; i++)
      if (r[i].first <= s && s <= r[i].last) live += r[i].bytes;
    if (arena < live) ck_abort_msg("arena %zu below the %zu bytes live at step %d", arena, live, s);
  }
}

START_TEST(test_plan_random) {
  static const size_t aligns[] = {1, 8, 64};
  for (int inst = 0; inst < 600; inst++) {
    size_t n = rnd() % 60, align = aligns[inst % 3];
    sm_mem_req r[60], again[60];
    for (size_t i = 0; i < n; i++) {
      int a = (int)(rnd() % 30), b = (int)(rnd() % 30);
      r[i].bytes = rnd() % 8 == 0 ? 0 : (size_t)(rnd() % (inst % 2 ? 100 : 5000));
      r[i].first = a < b ? a : b;
      r[i].last = a < b ? b : a;
      r[i].offset = 12345;
    }
    memcpy(again, r, n * sizeof *r);
    size_t arena = sm_plan_memory(r, n, align);
    check_plan(r, n, align, arena);
    /* Deterministic. */
    ck_assert_uint_eq(sm_plan_memory(again, n, align), arena);
    for (size_t i = 0; i < n; i++)
      if (again[i].offset != r[i].offset) ck_abort_msg("instance %d: plans differ", inst);
  }
}
END_TEST

/* A chain of buffers that never live together shares one slot. */
START_TEST(test_plan_reuse) {
  sm_mem_req r[5] = {{100, 0, 0, 0}, {400, 1, 1, 0}, {50, 2, 2, 0}, {300, 3, 3, 0},
                     {400, 4, 4, 0}};
  size_t arena = sm_plan_memory(r, 5, 1);
  ck_assert_uint_eq(arena, 400);
  for (int i = 0; i < 5; i++) ck_assert_uint_eq(r[i].offset, 0);
  /* A producer-consumer chain (each buffer lives while the next is made):
   * two slots suffice. */
  sm_mem_req c[6];
  for (int i = 0; i < 6; i++) c[i] = (sm_mem_req){1000, i, i + 1, 0};
  arena = sm_plan_memory(c, 6, 64);
  check_plan(c, 6, 64, arena);
  ck_assert_uint_eq(arena, 2048);
}
END_TEST

/* All live at once: stacked, largest first, each aligned. */
START_TEST(test_plan_all_live) {
  sm_mem_req r[4] = {{10, 0, 3, 0}, {100, 0, 3, 0}, {1, 1, 2, 0}, {64, 2, 3, 0}};
  size_t arena = sm_plan_memory(r, 4, 32);
  check_plan(r, 4, 32, arena);
  ck_assert_uint_eq(r[1].offset, 0);   /* 100 -> [0, 100) */
  ck_assert_uint_eq(r[3].offset, 128); /* 64 -> [128, 192) */
  ck_assert_uint_eq(r[0].offset, 192); /* 10 -> [192, 202) */
  ck_assert_uint_eq(r[2].offset, 224); /* 1 */
  ck_assert_uint_eq(arena, 256);
}
END_TEST

/* A small buffer fills the gap between two larger ones that do not live
 * together with it. */
START_TEST(test_plan_gap) {
  sm_mem_req r[3] = {{100, 0, 1, 0}, {100, 1, 2, 0}, {50, 2, 3, 0}};
  size_t arena = sm_plan_memory(r, 3, 1);
  check_plan(r, 3, 1, arena);
  ck_assert_uint_eq(r[0].offset, 0);
  ck_assert_uint_eq(r[1].offset, 100);
  ck_assert_uint_eq(r[2].offset, 0); /* lives with r[1] only */
  ck_assert_uint_eq(arena, 200);
}
END_TEST

START_TEST(test_plan_edges) {
  ck_assert_uint_eq(sm_plan_memory(NULL, 0, 64), 0);
  sm_mem_req z[3] = {{0, 0, 5, 7}, {0, 1, 1, 7}, {0, 0, 0, 7}};
  ck_assert_uint_eq(sm_plan_memory(z, 3, 64), 0);
  for (int i = 0; i < 3; i++) ck_assert_uint_eq(z[i].offset, 0);
  /* One byte, large alignment: the arena is one aligned unit. */
  sm_mem_req one = {1, 0, 0, 9};
  ck_assert_uint_eq(sm_plan_memory(&one, 1, 4096), 4096);
  ck_assert_uint_eq(one.offset, 0);
  /* Too big for size_t together. */
  sm_mem_req big[2] = {{SIZE_MAX / 2 + 1, 0, 1, 0}, {SIZE_MAX / 2 + 1, 1, 2, 0}};
  ck_assert_uint_eq(sm_plan_memory(big, 2, 1), (size_t)-1);
  /* A size that does not round up to the alignment. */
  sm_mem_req huge = {SIZE_MAX - 3, 0, 0, 0};
  ck_assert_uint_eq(sm_plan_memory(&huge, 1, 64), (size_t)-1);
}
END_TEST

/* Every allocation failure gives (size_t)-1 and leaks nothing (the leak
 * checkers of the ASan and valgrind runs see to the second part). */
START_TEST(test_plan_oom) {
  sm_mem_req r[20];
  for (int i = 0; i < 20; i++)
    r[i] = (sm_mem_req){(size_t)(i * 37 % 11 + 1) * 64, i % 5, i % 5 + 3, 0};
  size_t want = sm_plan_memory(r, 20, 16);
  ck_assert(want != (size_t)-1);
  bool succeeded = false;
  for (long k = 0; k < 10 && !succeeded; k++) {
    sm_alloc_fail_after(k);
    long before = sm_alloc_failures();
    size_t got = sm_plan_memory(r, 20, 16);
    bool failed = sm_alloc_failures() > before;
    sm_alloc_fail_after(-1);
    if (failed) ck_assert_uint_eq(got, (size_t)-1);
    else {
      ck_assert_uint_eq(got, want);
      succeeded = true;
    }
  }
  ck_assert(succeeded);
}
END_TEST

/* The pool when allocations fail: it runs inline and stays correct. */
START_TEST(test_pool_oom) {
  sm_alloc_fail_after(0);
  atomic_llong sum = 0;
  sm_parallel_for(4, 5000, 1, 1, add_fn, &sum);
  sm_alloc_fail_after(-1);
  ck_assert_int_eq(atomic_load(&sum), 5000LL * 4999 / 2);
  sum = 0;
  sm_parallel_for(4, 5000, 1, 1, add_fn, &sum);
  ck_assert_int_eq(atomic_load(&sum), 5000LL * 4999 / 2);
}
END_TEST

int main(void) {
  Suite *s = suite_create("runtime");
  TCase *pool = tcase_create("threads");
  tcase_add_test(pool, test_cover_combos);
  tcase_add_test(pool, test_split_shape);
  tcase_add_test(pool, test_back_to_back);
  tcase_add_test(pool, test_uses_threads);
  tcase_add_test(pool, test_concurrent_callers);
  tcase_add_test(pool, test_nested);
  tcase_add_test(pool, test_fork);
  tcase_add_test(pool, test_default_threads);
  tcase_add_test(pool, test_pool_oom);
  tcase_add_test(pool, test_overhead);
  suite_add_tcase(s, pool);
  TCase *plan = tcase_create("memplan");
  tcase_add_test(plan, test_plan_random);
  tcase_add_test(plan, test_plan_reuse);
  tcase_add_test(plan, test_plan_all_live);
  tcase_add_test(plan, test_plan_gap);
  tcase_add_test(plan, test_plan_edges);
  tcase_add_test(plan, test_plan_oom);
  suite_add_tcase(s, plan);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
