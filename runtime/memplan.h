/* Memory planning (runtime/memplan.c): places a program's intermediate
 * buffers in one arena, reusing the space of buffers whose lifetimes
 * ended. */
#ifndef SMELT_RUNTIME_MEMPLAN_H
#define SMELT_RUNTIME_MEMPLAN_H

#include <stddef.h>

typedef struct sm_mem_req {
  size_t bytes;        /* size (0 allowed: gets offset 0) */
  int first, last;     /* live from step first to step last, inclusive */
  size_t offset;       /* out: byte offset in the arena, a multiple of align */
} sm_mem_req;

/* Assigns offsets so that buffers live at the same step never overlap.
 * Returns the arena size (a multiple of align), or (size_t)-1 when out of
 * memory. align is a power of two. */
size_t sm_plan_memory(sm_mem_req *reqs, size_t n, size_t align);

#endif
