/* A program planned for compiled code (runtime/plan.c): a graph's roots
 * taken through the passes, fusion and lowering to kernels, with every
 * buffer placed (caller's inputs, params, constants, results, or the
 * arena of intermediates). The JIT (runtime/cpu.c) and ahead-of-time
 * objects (src/aot.c) run the same plan. */
#ifndef SMELT_RUNTIME_PLAN_H
#define SMELT_RUNTIME_PLAN_H

#include "../codegen/kernel.h"
#include "../src/dump.h"
#include "../src/passes/fusion.h"

/* Where a buffer of the optimized graph lives during a run. */
typedef enum sm_buf_kind {
  SM_BUF_NONE,    /* not needed */
  SM_BUF_INPUT,   /* a graph input: the caller's binding */
  SM_BUF_PARAM,   /* a param: the params store */
  SM_BUF_CONST,   /* constant data in the optimized graph */
  SM_BUF_RESULT,  /* stored straight into the result of root `root` */
  SM_BUF_ARENA    /* an intermediate at arena + offset */
} sm_buf_kind;

typedef struct sm_buf_info {
  sm_buf_kind kind;
  uint32_t orig;   /* SM_BUF_INPUT / SM_BUF_PARAM: the node in the user's graph */
  size_t root;     /* SM_BUF_RESULT: the root index */
  size_t offset;   /* SM_BUF_ARENA */
} sm_buf_info;

typedef struct sm_plan_kernel {
  sm_kernel *k;
  int64_t grain, align; /* the thread split of par_axis: pieces of at least
                           grain indices, starting at multiples of align */
  size_t *scratch_off;  /* per arg: arena offset of KA_SCRATCH args */
} sm_plan_kernel;

/* $SMELT_ARENA_GUARD (runtime/cpu.c): an arena buffer with its guard
 * zones, [lo, data) before it and [data + bytes, hi) after it (the guard
 * bytes plus the padding to the next multiple of 64), both filled with a
 * known pattern when the buffer becomes live and checked while it is. */
enum { SM_ARENA_GUARD_BYTES = 64 }; /* per side, when $SMELT_ARENA_GUARD is set */

typedef struct sm_arena_zone {
  size_t lo, data, bytes, hi; /* arena offsets; bytes > 0 */
  int first, last;            /* live from kernel first to kernel last (nkernels: the end) */
  uint32_t node;              /* the node of opt whose value it holds */
  int kernel, arg;            /* a scratch buffer: its kernel and arg (else -1) */
} sm_arena_zone;

typedef struct sm_plan {
  smelt_graph *opt;      /* the optimized graph (owns constant data) */
  sm_fusion *fusion;
  sm_plan_kernel *kernels; /* in launch order */
  size_t nkernels;
  sm_buf_info *bufs;     /* per node of opt */
  size_t nroots;
  uint32_t *roots;       /* per root: the node of opt holding its value */
  /* per root: the arena offset of its result when the caller asked for
   * results in the arena (in_arena), else SIZE_MAX: the caller's storage */
  size_t *result_offset;
  size_t arena_bytes, unplanned_bytes;
  int nbuffers;          /* buffers placed in the arena */
  size_t guard;          /* guard bytes on each side of an arena buffer (0: none) */
  sm_arena_zone *zones;  /* guard > 0: the buffers of nonzero size, with their zones */
  size_t nzones;
} sm_plan;

/* Plans the roots of g: the first nout are outputs, the rest assign nodes
 * whose value input is the new param value. in_arena (NULL: none) says
 * per root that its result lives in the arena until the end of the run
 * instead of in storage the caller provides. Dumps the graph, passes,
 * fusion, dot and kernels stages. NULL with *err set (may stay NULL when
 * out of memory). */
sm_plan *sm_plan_new(const smelt_graph *g, size_t nroots, const uint32_t *roots,
                     const bool *in_arena, const smelt_compile_options *o, sm_dump *dump,
                     char **err);
/* sm_plan_new with `guard` bytes (a multiple of 64; 0: none, the plan of
 * sm_plan_new) on both sides of every arena buffer, listed in zones: no
 * two buffers live at the same time are then adjacent. */
sm_plan *sm_plan_new_guarded(const smelt_graph *g, size_t nroots, const uint32_t *roots,
                             const bool *in_arena, const smelt_compile_options *o,
                             size_t guard, sm_dump *dump, char **err);
void sm_plan_free(sm_plan *p);

/* The op whose index check can fail in kernel s ("gather", "scatter_add",
 * "gather or scatter_add", or "index check"), for error messages. */
const char *sm_plan_check_op(const sm_plan *p, size_t s);

/* The bytes of a node's dense value. */
size_t sm_plan_node_bytes(const sm_node *n);

#endif
