/* Lowering: one fusion group to one kernel of the kernel IR
 * (codegen/lower.c). Views compose into index expressions of the loads
 * (strided views with masks; a reshape that no strided view expresses
 * becomes a stack of views joined by div/mod, and a domain axis that
 * such a division splits is refined); the loop order puts the
 * axis that walks contiguous memory innermost. */
#ifndef SMELT_CODEGEN_LOWER_H
#define SMELT_CODEGEN_LOWER_H

#include "../src/passes/fusion.h"
#include "kernel.h"

/* Builds the kernel of group gi of f, named "k<gi>". Buffer args name the
 * graph nodes they hold (materialized nodes; scratch args the reduction
 * they serve). reassociate: float reductions may be reordered. NULL with
 * *err set (sm_malloc'ed; NULL when out of memory). */
sm_kernel *sm_lower_group(const sm_fusion *f, size_t gi, bool reassociate, char **err);

/* True when the chain of movement ops from node top down to its first
 * non-view node (or to a node below top that `materialized` marks: it is
 * read from its buffer; materialized may be NULL) composes into one
 * unmasked strided view: reading top then costs one affine offset per
 * element, with no div/mod and no bounds test. Fusion asks this of matmul
 * operands (docs/fusion.md). */
bool sm_views_strided(const smelt_graph *g, uint32_t top, const bool *materialized);

#endif
