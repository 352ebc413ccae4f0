/* The thread pool (runtime/threads.c): one per process, created on first
 * use, shared by every program; safe to call from several threads. */
#ifndef SMELT_RUNTIME_THREADS_H
#define SMELT_RUNTIME_THREADS_H

#include <stdint.h>

typedef void (*sm_range_fn)(void *ctx, int64_t begin, int64_t end);

/* SMELT_NUM_THREADS when set (>= 1), else the number of online cores. */
int sm_default_threads(void);

/* Calls fn over [0, n) in pieces: at most nthreads at once (the caller
 * runs one), each piece at least grain long (except the last) with every
 * boundary a multiple of align. Runs fn(ctx, 0, n) on the calling thread
 * when one piece suffices or the pool cannot be used (another caller holds
 * it, or threads could not be started). Returns when every piece is done. */
void sm_parallel_for(int nthreads, int64_t n, int64_t grain, int64_t align, sm_range_fn fn,
                     void *ctx);

#endif
