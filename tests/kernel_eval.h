/* A straightforward evaluator of the kernel IR (codegen/kernel.h), for the
 * tests only: it follows the IR's semantics literally (loops in `order`,
 * accumulators in acc_dtype, in scratch args when the kernel has them,
 * outer stores after the reductions, checks recording errors in the
 * context) so that lowering can be checked against the interpreter without
 * a backend. Elementwise ops use the op table (src/ops.c) in double or
 * int64 and round to the value's dtype, as the interpreter does. */
#ifndef SMELT_TESTS_KERNEL_EVAL_H
#define SMELT_TESTS_KERNEL_EVAL_H

#include "../codegen/kernel.h"
#include "../codegen/lower.h"
#include "../src/passes/fusion.h"
#include "testutil.h"

/* Runs kernel k on args (one buffer per k->args, of its dtype and numel;
 * scratch args too). Returns 0, or -1 with *err (malloc'ed, free()) set:
 * a failed check (also recorded in ctx) or a load or store out of its
 * buffer (a lowering bug). */
int ke_run(const sm_kernel *k, void *const *args, sm_kctx *ctx, char **err);

/* How ke_run_graph partitions the graph. */
typedef enum ke_fuse_mode {
  KE_FUSE_REAL,   /* sm_fuse (src/passes/fusion.c) */
  KE_FUSE_NONE,   /* one kernel per computing node: only views inlined */
  KE_FUSE_INLINE  /* kernels only for roots, reductions, matmuls and
                     scatters; everything else recomputed inline */
} ke_fuse_mode;

typedef struct ke_opts {
  ke_fuse_mode mode;
  bool training;     /* the training flag (default true) */
  uint64_t rng_step; /* draw number */
  bool reassociate;
  bool print;        /* print the kernels to stderr */
} ke_opts;
ke_opts ke_defaults(void);

/* The pipeline: sm_pass_simplify, partition, sm_lower_group per group, a
 * buffer per materialized node, kernels run in order. results[i] receives
 * a malloc'ed dense copy of root i in its dtype. Returns NULL, or a
 * malloc'ed message (every results[i] NULL). *nkernels (may be NULL): the
 * number of kernels. */
char *ke_run_graph(smelt_graph *g, int nroots, const smelt_node *roots, void **results,
                   int nbind, const tu_bind *binds, const ke_opts *opts, int *nkernels);

/* A partition built by hand (tests of lowering without sm_fuse): groups
 * with the given kinds, anchors, members and outputs; inputs and
 * materialized computed from them. Free with ke_fusion_free. */
typedef struct ke_group_desc {
  sm_group_kind kind;
  uint32_t anchor;
  int nmembers;
  const uint32_t *members;
  int noutputs;
  const uint32_t *outputs;
} ke_group_desc;
sm_fusion *ke_fusion_new(const smelt_graph *g, int ngroups, const ke_group_desc *groups,
                         int nroots, const uint32_t *roots);
void ke_fusion_free(sm_fusion *f);

#endif
