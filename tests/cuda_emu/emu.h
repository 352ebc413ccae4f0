/* A CUDA emulation layer: just enough of CUDA C++ for the translation
 * units that codegen/cuda.c prints to compile as host C++ and run on the
 * CPU (tests/cuda_emu/test_cuda_emu.c). Force-included before the
 * generated source:
 *
 *   c++ -std=c++17 -shared -fPIC -pthread -include emu.h -x c++ gen.cu
 *
 * Execution model. emu_launch runs a grid one block at a time; the block's
 * blockDim.x threads are real threads (pthreads), created once per launch
 * and reused for every block. So:
 *  - __shared__ variables are function-scope statics: the block running
 *    now is the only one using them, and all its threads see one copy;
 *  - __syncthreads is a barrier over the block's threads, and each warp
 *    (32 consecutive threads) has its own barrier for the shuffles;
 *  - a thread that returns from the kernel leaves both barriers (exited
 *    threads do not hold up a bar.sync, as on the hardware);
 *  - atomics are real atomics (the threads of a block do run at once);
 *  - a barrier that waits for more than EMU_HANG_SECONDS reports which
 *    kernel, block and thread hang (a __syncthreads or a shuffle that not
 *    every thread reaches) and aborts.
 * Blocks never run at the same time, so a kernel that needs two blocks to
 * be resident together (a grid-wide spin) would hang here; smelt's kernels
 * never do that (two-stage reductions count finished blocks instead).
 *
 * Semantics follow the PTX ISA where it matters to smelt: float-to-integer
 * conversions truncate, saturate and give 0 for NaN (cvt.rzi); shuffles
 * of a lane past the warp's end return the caller's own value. Only 1-D
 * blocks whose size is a multiple of 32 (at most 1024) are supported. */
#ifndef SMELT_CUDA_EMU_H
#define SMELT_CUDA_EMU_H

/* Every system header first: the macros below (__noinline__ ...) must not
 * meet the attributes of library headers. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Yields before a waiting thread sleeps: a block's threads outnumber the
 * cores, and letting the missing ones run is cheaper than a futex sleep
 * and wake (several times so on 2 cores). */
#ifndef EMU_SPINS
#define EMU_SPINS 4
#endif
#ifndef EMU_HANG_SECONDS
#define EMU_HANG_SECONDS 60
#endif

/* ---------------------------------------------------------- keywords */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __shared__ static /* see the execution model above */
/* __restrict__ is a GNU C++ keyword already. */

/* --------------------------------------------------------- vector types */
/* The 16-byte vector types of the vector path (CUDA's are aligned so). */
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) double2 {
  double x, y;
};

/* ------------------------------------------------------ thread indices */
struct uint3 {
  unsigned x, y, z;
};
typedef uint3 dim3;

static thread_local uint3 threadIdx, blockIdx;
static dim3 blockDim, gridDim; /* set before the launch's threads start */

/* ------------------------------------------------------------ barriers */
/* A reusable barrier over `expected` threads (a futex on its generation
 * number: a condition variable would make all the woken threads take its
 * mutex one after another, and blocks run hundreds of barriers).
 * emu_barrier_leave removes a thread for good (it exited); when every
 * thread has left, the barrier is ready for the next block with its full
 * count. state: expected << 32 | arrived, changed by compare-and-swap. */
struct emu_barrier {
  unsigned long long state;
  unsigned gen;
  unsigned full;
  const char *what;
};

struct emu_launch_state {
  const char *kernel;
  void (*body)(void *);
  void *arg;
  emu_barrier block;      /* __syncthreads */
  emu_barrier warp[32];   /* per warp: shuffles */
  emu_barrier between;    /* every thread done with a block before the next */
  unsigned long long slot[2][1024]; /* shuffle exchange: two sets, one per thread */
};
static emu_launch_state emu_L;

static void emu_barrier_init(emu_barrier *b, unsigned n, const char *what) {
  b->state = (unsigned long long)n << 32;
  b->gen = 0;
  b->full = n;
  b->what = what;
}

static void emu_barrier_release(emu_barrier *b) {
  __atomic_fetch_add(&b->gen, 1u, __ATOMIC_SEQ_CST);
  syscall(SYS_futex, &b->gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void emu_barrier_wait(emu_barrier *b) {
  /* the generation cannot move before this thread arrives: it counts */
  unsigned gen = __atomic_load_n(&b->gen, __ATOMIC_SEQ_CST);
  unsigned long long s = __atomic_load_n(&b->state, __ATOMIC_SEQ_CST), n;
  unsigned expected, arrived;
  do {
    expected = (unsigned)(s >> 32);
    arrived = (unsigned)s + 1;
    n = (unsigned long long)expected << 32 | (arrived == expected ? 0 : arrived);
  } while (!__atomic_compare_exchange_n(&b->state, &s, n, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST));
  if (arrived == expected) return emu_barrier_release(b);
  for (int spin = 0; spin < EMU_SPINS && __atomic_load_n(&b->gen, __ATOMIC_SEQ_CST) == gen; spin++)
    sched_yield();
  struct timespec second = {1, 0};
  int waited = 0;
  while (__atomic_load_n(&b->gen, __ATOMIC_SEQ_CST) == gen) {
    if (syscall(SYS_futex, &b->gen, FUTEX_WAIT_PRIVATE, gen, &second, NULL, 0) == -1 &&
        errno == ETIMEDOUT && ++waited >= EMU_HANG_SECONDS) {
      s = __atomic_load_n(&b->state, __ATOMIC_SEQ_CST);
      fprintf(stderr,
              "cuda_emu: kernel %s hangs: thread %u of block (%u,%u,%u) waited %d s at %s "
              "(%u of %u threads arrived): a barrier that not every thread reaches\n",
              emu_L.kernel, threadIdx.x, blockIdx.x, blockIdx.y, blockIdx.z, waited, b->what,
              (unsigned)s, (unsigned)(s >> 32));
      abort();
    }
  }
}

static void emu_barrier_leave(emu_barrier *b) {
  unsigned long long s = __atomic_load_n(&b->state, __ATOMIC_SEQ_CST), n;
  unsigned expected, arrived;
  bool release;
  do {
    expected = (unsigned)(s >> 32) - 1;
    arrived = (unsigned)s;
    release = expected > 0 && arrived == expected;
    if (expected == 0) n = (unsigned long long)b->full << 32; /* ready for the next block */
    else n = (unsigned long long)expected << 32 | (release ? 0 : arrived);
  } while (!__atomic_compare_exchange_n(&b->state, &s, n, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST));
  if (release) emu_barrier_release(b);
}

static inline void __syncthreads(void) { emu_barrier_wait(&emu_L.block); }
static inline void __threadfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* ------------------------------------------------------------- shuffles */
/* __shfl_down_sync(mask, v, delta): lane l gets lane l+delta's v, or its
 * own v when l+delta is past the warp (width 32). Every lane of the warp
 * must call it (smelt always passes the full mask). The exchange slots
 * alternate between two sets, so one barrier per shuffle is enough: a lane
 * writes a set again only after the next shuffle's barrier, which every
 * lane reaches after reading. */
static thread_local unsigned emu_parity;
template <class T> static T emu_shfl_down(unsigned mask, T v, int delta) {
  (void)mask;
  unsigned t = threadIdx.x, lane = t & 31, p = emu_parity++ & 1;
  static_assert(sizeof(T) <= sizeof emu_L.slot[0][0], "shuffle of a wide type");
  memcpy(&emu_L.slot[p][t], &v, sizeof v);
  emu_barrier_wait(&emu_L.warp[t >> 5]);
  T r = v;
  if (delta >= 0 && lane + (unsigned)delta < 32) memcpy(&r, &emu_L.slot[p][t + delta], sizeof r);
  return r;
}
static inline int __shfl_down_sync(unsigned m, int v, int d) { return emu_shfl_down(m, v, d); }
static inline unsigned __shfl_down_sync(unsigned m, unsigned v, int d) {
  return emu_shfl_down(m, v, d);
}
static inline long long __shfl_down_sync(unsigned m, long long v, int d) {
  return emu_shfl_down(m, v, d);
}
static inline unsigned long long __shfl_down_sync(unsigned m, unsigned long long v, int d) {
  return emu_shfl_down(m, v, d);
}
static inline float __shfl_down_sync(unsigned m, float v, int d) { return emu_shfl_down(m, v, d); }
static inline double __shfl_down_sync(unsigned m, double v, int d) {
  return emu_shfl_down(m, v, d);
}

/* -------------------------------------------------------------- atomics */
/* The overloads CUDA has (there is no atomicAdd on long long). */
static inline int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned atomicAdd(unsigned *p, unsigned v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
template <class F, class U> static F emu_atomic_add_float(F *p, F v) {
  U *w = (U *)p, old = __atomic_load_n(w, __ATOMIC_SEQ_CST), next;
  F f;
  do {
    memcpy(&f, &old, sizeof f);
    F s = f + v;
    memcpy(&next, &s, sizeof next);
  } while (!__atomic_compare_exchange_n(w, &old, next, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST));
  return f;
}
static inline float atomicAdd(float *p, float v) {
  return emu_atomic_add_float<float, uint32_t>(p, v);
}
static inline double atomicAdd(double *p, double v) {
  return emu_atomic_add_float<double, uint64_t>(p, v);
}
static inline int atomicCAS(int *p, int compare, int val) {
  __atomic_compare_exchange_n(p, &compare, val, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return compare; /* the old value */
}
static inline unsigned atomicOr(unsigned *p, unsigned v) {
  return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST);
}

/* ---------------------------------------------------------- intrinsics */
static inline unsigned __umulhi(unsigned a, unsigned b) {
  return (unsigned)(((unsigned long long)a * b) >> 32);
}
static inline float __int_as_float(int x) {
  float f;
  memcpy(&f, &x, sizeof f);
  return f;
}
static inline double __longlong_as_double(long long x) {
  double d;
  memcpy(&d, &x, sizeof d);
  return d;
}

/* cvt.rzi: toward zero, saturating, NaN gives 0 (the bounds are powers
 * of two, exact in both float types). */
static inline int __float2int_rz(float x) {
  if (x != x) return 0;
  if (x >= 2147483648.0f) return INT_MAX;
  if (x < -2147483648.0f) return INT_MIN;
  return (int)x;
}
static inline int __double2int_rz(double x) {
  if (x != x) return 0;
  if (x >= 2147483648.0) return INT_MAX;
  if (x < -2147483648.0) return INT_MIN;
  return (int)x;
}
static inline long long __float2ll_rz(float x) {
  if (x != x) return 0;
  if (x >= 9223372036854775808.0f) return LLONG_MAX;
  if (x < -9223372036854775808.0f) return LLONG_MIN;
  return (long long)x;
}
static inline long long __double2ll_rz(double x) {
  if (x != x) return 0;
  if (x >= 9223372036854775808.0) return LLONG_MAX;
  if (x < -9223372036854775808.0) return LLONG_MIN;
  return (long long)x;
}

/* min and max of CUDA's math API, same-type overloads. */
#define EMU_MINMAX(T)                                                                       \
  static inline T min(T a, T b) { return a < b ? a : b; }                                   \
  static inline T max(T a, T b) { return a > b ? a : b; }
EMU_MINMAX(int)
EMU_MINMAX(unsigned)
EMU_MINMAX(long long)
EMU_MINMAX(unsigned long long)
#undef EMU_MINMAX
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }

/* -------------------------------------------------------------- launch */
static void *emu_thread(void *arg) {
  unsigned t = (unsigned)(uintptr_t)arg;
  threadIdx = uint3{t, 0, 0};
  for (unsigned z = 0; z < gridDim.z; z++)
    for (unsigned y = 0; y < gridDim.y; y++)
      for (unsigned x = 0; x < gridDim.x; x++) {
        blockIdx = uint3{x, y, z};
        emu_parity = 0;
        emu_L.body(emu_L.arg);
        emu_barrier_leave(&emu_L.block);
        emu_barrier_leave(&emu_L.warp[t >> 5]);
        emu_barrier_wait(&emu_L.between);
      }
  return NULL;
}

/* Runs f() as kernel `name` on a grid of grid[0..2] blocks of `block`
 * threads. 0, or -1 with a message on stderr (a bad configuration, or
 * threads that could not be created). */
template <class F>
static int emu_launch(const char *name, const long long *grid, int block, F f) {
  if (block < 32 || block > 1024 || block % 32) {
    fprintf(stderr, "cuda_emu: kernel %s: blocks of %d threads are not supported\n", name, block);
    return -1;
  }
  for (int i = 0; i < 3; i++)
    if (grid[i] < 1 || grid[i] > (i ? 65535 : 2147483647LL)) {
      fprintf(stderr, "cuda_emu: kernel %s: bad grid [%lld,%lld,%lld]\n", name, grid[0], grid[1],
              grid[2]);
      return -1;
    }
  emu_L.kernel = name;
  emu_L.body = [](void *p) { (*(F *)p)(); };
  emu_L.arg = &f;
  emu_barrier_init(&emu_L.block, block, "__syncthreads");
  for (int w = 0; w < block / 32; w++) emu_barrier_init(&emu_L.warp[w], 32, "a warp shuffle");
  emu_barrier_init(&emu_L.between, block, "the end of a block");
  blockDim = dim3{(unsigned)block, 1, 1};
  gridDim = dim3{(unsigned)grid[0], (unsigned)grid[1], (unsigned)grid[2]};
  pthread_t th[1024];
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  int made = 0;
  for (; made < block; made++)
    if (pthread_create(&th[made], &attr, emu_thread, (void *)(uintptr_t)made)) break;
  pthread_attr_destroy(&attr);
  if (made < block) {
    /* the threads made wait for the others at their first barrier */
    fprintf(stderr, "cuda_emu: kernel %s: could not create thread %d of %d\n", name, made, block);
    abort();
  }
  for (int i = 0; i < made; i++) pthread_join(th[i], NULL);
  return 0;
}

#endif
