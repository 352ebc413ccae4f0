/* Graph-to-graph passes (src/passes/): each takes a graph and the nodes a
 * program needs (roots) and returns a new graph; both print as text. */
#ifndef SMELT_PASSES_H
#define SMELT_PASSES_H

#include "../internal.h"

struct sm_dump;

/* A rewrite hook: may return a node of dst that replaces the node d
 * describes (its inputs already in dst), or an invalid handle to keep it. */
typedef smelt_node (*sm_rewrite_fn)(smelt_graph *dst, const sm_node_desc *d, void *ctx);

enum { SM_REBUILD_MAX_INPUTS = 16 };

/* Copies the nodes of src that roots need (plus every input and param)
 * into a new graph: DCE, and CSE through hash-consing, with an optional
 * rewrite. map (src->nnodes entries, may be NULL) receives new index + 1
 * per old node (0: dropped). Outputs of src that survive are kept. NULL
 * when out of memory or when the rewrite failed. */
smelt_graph *sm_rebuild(const smelt_graph *src, size_t nroots, const uint32_t *roots,
                        sm_rewrite_fn rewrite, void *ctx, uint32_t *map);

/* A rewrite pass: sm_rebuild with the rewrite, then again without it to
 * drop what the rewrites left dead. map as sm_rebuild's. */
smelt_graph *sm_rewrite_pass(const smelt_graph *src, size_t nroots, const uint32_t *roots,
                             sm_rewrite_fn rewrite, void *ctx, uint32_t *map);

/* Dead-code elimination and CSE: sm_rebuild without a rewrite. */
smelt_graph *sm_pass_dce(const smelt_graph *src, size_t nroots, const uint32_t *roots,
                         uint32_t *map);
/* Simplification: identities exact in IEEE arithmetic (x*1, x/1, x-0,
 * x+(-0), integer x+0, neg(neg x), pow(x,1), where with equal or constant
 * branches), constant folding, then DCE of what the rewrites left dead. */
smelt_graph *sm_pass_simplify(const smelt_graph *src, size_t nroots, const uint32_t *roots,
                              uint32_t *map);

/* Views: chains of movement ops collapse (reshape of reshape, permute of
 * permute, expand of expand, an expand of a unit-dim reshape of an expand),
 * identity views vanish (src/passes/views.c), then DCE. */
smelt_graph *sm_pass_views(const smelt_graph *src, size_t nroots, const uint32_t *roots,
                           uint32_t *map);

/* Split sums: every float reduce_sum over more than SM_SUM_BLOCK elements
 * per output slot becomes the f64 stages of its blocked summation order
 * (src/passes/split_sums.c), the same order as the interpreter's; then DCE. */
smelt_graph *sm_pass_split_sums(const smelt_graph *src, size_t nroots, const uint32_t *roots,
                                uint32_t *map);
/* True when g has such a sum (sm_optimize runs the pass only then). */
bool sm_split_sums_wanted(const smelt_graph *g);

/* The optimization pipeline: simplify, split sums (when the graph has a
 * sum to split), then views. map (src->nnodes entries, may be NULL)
 * receives the final index + 1 per node of src (0: dropped). With
 * SM_DUMP_PASSES in dump (may be NULL) the graph text after each pass that
 * ran is dumped, part = the pass's name. NULL when out of memory. */
smelt_graph *sm_optimize(const smelt_graph *src, size_t nroots, const uint32_t *roots,
                         uint32_t *map, const struct sm_dump *dump);

#endif
