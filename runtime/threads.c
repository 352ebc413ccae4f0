/* The process-wide thread pool behind sm_parallel_for.
 *
 * Kernels of a training step run back to back, so one parallel_for must
 * cost microseconds, not the tens of microseconds of a condition-variable
 * round trip. A worker that has just run a piece therefore spins for a
 * while (a few pauses, then yielding, so that an oversubscribed machine
 * still makes progress) and only then sleeps on its own condition
 * variable; workers a job does not need are not woken at all.
 *
 * One job at a time: a caller that finds the pool busy (another thread is
 * dispatching) runs its whole range inline instead of queueing behind it,
 * and so do nested calls (from a worker, or from the caller's own piece).
 * Two programs run from two threads thus never deadlock or wait on each
 * other; the second simply gets one core.
 *
 * Publishing a job: the caller writes the job's fields, then the claim
 * word (generation, piece count, next piece), then the signal word
 * (generation, number of helpers). Helper k < helpers wakes, and the
 * helpers and the caller claim pieces by compare-and-swap on the claim
 * word, which succeeds only for the current generation: a helper that
 * wakes late finds the job gone and touches nothing. The caller waits
 * only for the pieces that were claimed to finish, never for a helper to
 * wake up, so on a loaded machine it simply does the pieces itself.
 *
 * Shutting down: workers hold no heap memory of ours, but a thread still
 * running at exit leaves glibc's per-thread TLS block behind, which
 * valgrind reports as possibly lost. So a destructor (not atexit, which a
 * library must not call: it could be unloaded first) stops and joins the
 * workers when the process exits or libsmelt is unloaded with dlclose,
 * which also keeps workers from running unmapped code. Calls after that
 * run inline. After fork() the child has no workers: an atfork handler
 * resets the pool, which the child starts again on its first call. */
#include "threads.h"

#include "../src/internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* The claim word: generation | pieces | next piece, PIECE_BITS each. */
#define PIECE_BITS 11
#define PIECE_MASK ((UINT64_C(1) << PIECE_BITS) - 1)
/* Pieces (threads, the caller included) of one call. */
#define MAX_THREADS 1024
#define MAX_WORKERS (MAX_THREADS - 1)
/* How long a worker spins after its last piece before it sleeps: longer
 * than the gap between two kernels of a step, short enough not to burn a
 * core once the program is done. */
#define SPIN_NS 300000
/* Pauses before yielding is mixed in (a pause is 10 to 150 cycles). */
#define SPIN_PAUSES 200

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------------------ pool state */

typedef struct worker {
  pthread_cond_t cv;     /* signalled when a job needs this worker */
  atomic_bool sleeping;  /* waiting on cv (set under lock) */
  uint64_t start_gen;    /* the generation when it was started */
  pthread_t tid;
} worker;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* growth, sleeping */
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER; /* the caller's sleep */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static worker workers[MAX_WORKERS]; /* static: no heap memory to leak or fail */
static atomic_int nworkers;         /* started workers (grows only) */
/* Workers that spin after a job: one per core besides the caller's. More
 * threads than cores spinning (SMELT_NUM_THREADS above the core count)
 * would take turns on the cores and starve the ones with work, so the
 * rest go straight to sleep. */
static atomic_int spinners;

static atomic_bool busy;             /* held by the dispatching caller */
static atomic_bool stopping;         /* workers exit (process exit) */
static _Atomic uint64_t signal_word; /* generation << PIECE_BITS | helpers */
static _Atomic uint64_t claim_word;  /* (generation << PIECE_BITS | pieces) << PIECE_BITS | next */
static atomic_int job_done;          /* pieces finished */
static atomic_bool caller_sleeping;  /* the caller waits on done_cv */

/* The current job: written by the caller before it publishes the claim
 * word, read by whoever claims a piece of it. */
static sm_range_fn job_fn;
static void *job_ctx;
static int64_t job_n, job_chunk;

/* Set on pool threads and while a caller dispatches: nested calls run
 * inline. */
static _Thread_local bool in_pool;

/* Claims pieces of generation gen and runs them; returns how many. */
static int run_pieces(uint64_t gen) {
  int ran = 0;
  uint64_t w = atomic_load_explicit(&claim_word, memory_order_acquire);
  for (;;) {
    uint64_t next = w & PIECE_MASK, pieces = (w >> PIECE_BITS) & PIECE_MASK;
    if (w >> (2 * PIECE_BITS) != gen || next >= pieces) return ran;
    if (!atomic_compare_exchange_weak_explicit(&claim_word, &w, w + 1, memory_order_acquire,
                                               memory_order_acquire))
      continue;
    /* Ours: the caller cannot move on before this piece is done. */
    int64_t b = (int64_t)next * job_chunk;
    int64_t e = job_n - b < job_chunk ? job_n : b + job_chunk;
    job_fn(job_ctx, b, e);
    ran++;
    if (atomic_fetch_add(&job_done, 1) + 1 == (int)pieces && atomic_load(&caller_sleeping)) {
      pthread_mutex_lock(&lock);
      pthread_cond_signal(&done_cv);
      pthread_mutex_unlock(&lock);
    }
    w = atomic_load_explicit(&claim_word, memory_order_acquire);
  }
}

/* True when signal s is a job after generation gen that needs worker k. */
static bool wanted(uint64_t s, uint64_t gen, int k) {
  return s >> PIECE_BITS != gen && (uint64_t)k < (s & PIECE_MASK);
}

/* Waits for a job after generation gen that needs worker k: spins until
 * deadline, then sleeps. Returns its signal word. */
static uint64_t wait_job(int k, uint64_t gen, int64_t deadline) {
  worker *me = &workers[k];
  uint64_t s;
  for (unsigned i = 0;; i++) {
    s = atomic_load_explicit(&signal_word, memory_order_acquire);
    if (wanted(s, gen, k) || atomic_load_explicit(&stopping, memory_order_relaxed)) return s;
    if (i < SPIN_PAUSES) {
      cpu_relax();
      continue;
    }
    if (now_ns() > deadline) break;
    sched_yield();
  }
  /* Dekker with the caller (seq_cst): either we see its signal here, or
   * it sees sleeping and signals cv under the lock. */
  pthread_mutex_lock(&lock);
  atomic_store(&me->sleeping, true);
  while (!wanted(s = atomic_load(&signal_word), gen, k) && !atomic_load(&stopping))
    pthread_cond_wait(&me->cv, &lock);
  atomic_store(&me->sleeping, false);
  pthread_mutex_unlock(&lock);
  return s;
}

static void *worker_main(void *arg) {
  int index = (int)((worker *)arg - workers);
  in_pool = true;
  uint64_t gen = workers[index].start_gen;
  int64_t deadline = 0; /* no spinning before the first job */
  for (;;) {
    uint64_t s = wait_job(index, gen, deadline);
    if (atomic_load(&stopping)) return NULL;
    gen = s >> PIECE_BITS;
    run_pieces(gen);
    bool spin = index < atomic_load_explicit(&spinners, memory_order_relaxed);
    deadline = spin ? now_ns() + SPIN_NS : 0;
  }
}

/* fork(): hold the lock across it so that the child sees a consistent
 * pool; the child has none of the workers, so it starts afresh. */
static void atfork_prepare(void) { pthread_mutex_lock(&lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&lock); }
static void atfork_child(void) {
  int n = atomic_load(&nworkers);
  for (int k = 0; k < n; k++) {
    pthread_cond_init(&workers[k].cv, NULL);
    atomic_store(&workers[k].sleeping, false);
  }
  pthread_cond_init(&done_cv, NULL);
  atomic_store(&nworkers, 0);
  atomic_store(&caller_sleeping, false);
  atomic_store(&busy, false);
  pthread_mutex_unlock(&lock); /* held by the forking thread, the child's only one */
}
static void register_atfork(void) {
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Starts workers until there are `want` (called with busy held, so no job
 * is in flight). Stops early when a thread cannot be started. */
static void grow(int want) {
  if (want > MAX_WORKERS) want = MAX_WORKERS;
  if (atomic_load(&nworkers) >= want) return;
  pthread_once(&atfork_once, register_atfork);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  atomic_store(&spinners, cores > 1 ? (int)(cores > MAX_THREADS ? MAX_WORKERS : cores - 1) : 0);
  pthread_attr_t attr;
  if (pthread_attr_init(&attr)) return;
  /* Kernels keep their scratch on the stack (the blocked matmul packs
   * ~300 KiB of panels there): do not inherit a small RLIMIT_STACK. */
  pthread_attr_setstacksize(&attr, (size_t)8 << 20);
  /* Workers take no signals: handlers run on the application's threads. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_mutex_lock(&lock);
  for (int k = atomic_load(&nworkers); k < want; k++) {
    worker *w = &workers[k];
    if (pthread_cond_init(&w->cv, NULL)) break;
    atomic_store(&w->sleeping, false);
    w->start_gen = atomic_load(&signal_word) >> PIECE_BITS;
    if (pthread_create(&w->tid, &attr, worker_main, w)) {
      pthread_cond_destroy(&w->cv);
      break;
    }
    atomic_store(&nworkers, k + 1);
  }
  pthread_mutex_unlock(&lock);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
}

/* Stops and joins the workers at exit or dlclose (see the top). Skipped
 * when exit is called from a piece or while another thread dispatches:
 * waiting could then deadlock, and the process is ending anyway. */
__attribute__((destructor)) static void stop_pool(void) {
  if (in_pool || atomic_exchange(&busy, true)) return;
  int n = atomic_load(&nworkers);
  atomic_store(&stopping, true);
  pthread_mutex_lock(&lock);
  for (int k = 0; k < n; k++) pthread_cond_signal(&workers[k].cv);
  pthread_mutex_unlock(&lock);
  for (int k = 0; k < n; k++) {
    pthread_join(workers[k].tid, NULL);
    pthread_cond_destroy(&workers[k].cv);
  }
  atomic_store(&nworkers, 0);
  /* busy stays set: calls from later destructors run inline. */
}

/* ------------------------------------------------------------ public */

int sm_default_threads(void) {
  const char *s = getenv("SMELT_NUM_THREADS");
  if (s && *s) {
    /* A whole decimal number >= 1; anything else is ignored. */
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!errno && *end == '\0' && v >= 1) return v > MAX_THREADS ? MAX_THREADS : (int)v;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) return 1;
  return n > MAX_THREADS ? MAX_THREADS : (int)n;
}

void sm_parallel_for(int nthreads, int64_t n, int64_t grain, int64_t align, sm_range_fn fn,
                     void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (align < 1) align = 1;
  if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
  if (nthreads <= 1 || grain >= n || align >= n || in_pool) {
    fn(ctx, 0, n);
    return;
  }
  /* The split: nthreads equal pieces, each rounded up to at least grain
   * and to a multiple of align (unsigned: no overflow near INT64_MAX). */
  uint64_t un = (uint64_t)n, ua = (uint64_t)align;
  uint64_t chunk = un / (uint64_t)nthreads + (un % (uint64_t)nthreads != 0);
  if (chunk < (uint64_t)grain) chunk = (uint64_t)grain;
  chunk = (chunk + ua - 1) / ua * ua;
  if (chunk >= un) {
    fn(ctx, 0, n);
    return;
  }
  int pieces = (int)((un + chunk - 1) / chunk);

  /* Take the pool, or run inline when another caller has it. */
  if (atomic_exchange(&busy, true)) {
    fn(ctx, 0, n);
    return;
  }
  if (atomic_load(&nworkers) < nthreads - 1) {
    int want = sm_default_threads() - 1;
    grow(want > nthreads - 1 ? want : nthreads - 1);
  }
  int helpers = pieces - 1, have = atomic_load(&nworkers);
  if (helpers > have) helpers = have;
  if (helpers == 0) {
    atomic_store(&busy, false);
    fn(ctx, 0, n);
    return;
  }

  in_pool = true;
  job_fn = fn;
  job_ctx = ctx;
  job_n = n;
  job_chunk = (int64_t)chunk;
  atomic_store_explicit(&job_done, 0, memory_order_relaxed);
  uint64_t gen = (atomic_load_explicit(&signal_word, memory_order_relaxed) >> PIECE_BITS) + 1;
  /* The generation wraps after 2^42 calls; a worker asleep through exactly
   * that many would be the only one confused. */
  gen &= (UINT64_C(1) << (64 - 2 * PIECE_BITS)) - 1;
  atomic_store_explicit(&claim_word, (gen << PIECE_BITS | (uint64_t)pieces) << PIECE_BITS,
                        memory_order_release);
  atomic_store(&signal_word, gen << PIECE_BITS | (uint64_t)helpers); /* seq_cst: Dekker */
  bool locked = false;
  for (int k = 0; k < helpers; k++) {
    if (!atomic_load(&workers[k].sleeping)) continue;
    if (!locked) pthread_mutex_lock(&lock), locked = true;
    pthread_cond_signal(&workers[k].cv);
  }
  if (locked) pthread_mutex_unlock(&lock);

  run_pieces(gen);

  /* Wait for the pieces that helpers claimed: they are no longer than
   * ours, so spin first, then sleep. */
  int64_t deadline = 0;
  for (unsigned i = 0; atomic_load_explicit(&job_done, memory_order_acquire) < pieces; i++) {
    if (i < SPIN_PAUSES) {
      cpu_relax();
      continue;
    }
    if (i == SPIN_PAUSES) {
      deadline = now_ns() + SPIN_NS;
    } else if (now_ns() > deadline) {
      pthread_mutex_lock(&lock);
      atomic_store(&caller_sleeping, true);
      while (atomic_load(&job_done) < pieces) pthread_cond_wait(&done_cv, &lock);
      atomic_store(&caller_sleeping, false);
      pthread_mutex_unlock(&lock);
      break;
    }
    sched_yield();
  }
  in_pool = false;
  atomic_store(&busy, false);
}
