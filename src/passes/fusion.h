/* Fusion: partitions an optimized graph into kernels (src/passes/fusion.c).
 *
 * Every node the roots need is either materialized (stored in a buffer:
 * graph inputs, params, constants with data, and each group's outputs) or
 * inlined: computed inside every kernel that uses it, at that kernel's
 * indices. Views (reshape, permute, expand, slice, flip, pad) are always
 * inlined: they become index expressions of the loads (codegen/lower.c).
 * A group is one kernel: an anchor and the nodes fused around it.
 *
 * Groups by kind (docs/fusion.md has the rules and the cost rule):
 *  - pointwise: elementwise ops, views, concat, gather, iota, rand, and
 *    scalar constants, over one output shape; may store several members of
 *    that shape (multi-output).
 *  - reduce: a reduction or arg-reduction (the anchor) whose input is
 *    computed inline (input fusion; members of the input's shape may also be
 *    stored), plus elementwise consumers of the reduced shape (output
 *    fusion). Several reductions over the same input shape and axes may
 *    share one group.
 *  - matmul: the matmul (anchor), its operands read through views, and an
 *    elementwise epilogue of the result's shape (bias, activation, scale).
 *  - scatter: scatter_add (anchor): zeros, then src added at the indices.
 * Groups are convex (no path leaves a group and comes back) and listed in
 * an order that runs them correctly.
 */
#ifndef SMELT_PASSES_FUSION_H
#define SMELT_PASSES_FUSION_H

#include "../internal.h"

typedef enum sm_group_kind {
  SM_GROUP_POINTWISE,
  SM_GROUP_REDUCE,
  SM_GROUP_MATMUL,
  SM_GROUP_SCATTER
} sm_group_kind;

typedef struct sm_group {
  sm_group_kind kind;
  /* The anchor: the reduction (the first one when several share the
   * group), matmul or scatter_add; for pointwise groups the first output. */
  uint32_t anchor;
  /* Nodes computed by this kernel, ascending node order (topological):
   * inlined producers, the anchor(s), epilogue nodes and stored outputs.
   * Inlined nodes may appear in several groups (recomputed). */
  uint32_t *members;
  size_t nmembers;
  /* Members this kernel stores (materializes), ascending. */
  uint32_t *outputs;
  size_t noutputs;
  /* Materialized nodes this kernel reads (inputs, params, constants with
   * data, outputs of earlier groups), ascending. */
  uint32_t *inputs;
  size_t ninputs;
} sm_group;

typedef struct sm_fusion {
  const smelt_graph *g;
  sm_group *groups; /* in execution order */
  size_t ngroups;
  /* Per node of g: the group that stores it, -1 when it is not stored by
   * a kernel (inlined, a view, a graph input, param or constant, or not
   * needed by the roots). */
  int32_t *stored_by;
  /* Per node of g: true when it lives in a buffer (stored by a group, or an
   * input, param or constant with data that some kernel or root reads). */
  bool *materialized;
  /* The roots, as given (a root is always materialized; a root that is an
   * input, param or constant is copied by the runtime, not by a kernel). */
  uint32_t *roots;
  size_t nroots;
} sm_fusion;

/* Partitions what the roots of g need (g must be free of errors; typically
 * the output of sm_pass_simplify). Roots are node indices (assign nodes
 * are not roots: pass the value they write). NULL with *err set
 * (sm_malloc'ed; NULL when out of memory). */
sm_fusion *sm_fuse(const smelt_graph *g, size_t nroots, const uint32_t *roots, char **err);
void sm_fusion_free(sm_fusion *f);

/* Text: one block per kernel with its kind, anchor, members, inputs and
 * outputs, then the buffer count. DOT: the graph with one cluster per
 * kernel. sm_malloc'ed strings, NULL when out of memory. */
char *sm_fusion_print(const sm_fusion *f);
char *sm_fusion_print_dot(const sm_fusion *f);

#endif
