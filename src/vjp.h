/* The gradient table: one vector-Jacobian product rule per differentiable
 * primitive (src/vjp.c), used by reverse-mode autodiff (src/autodiff.c). */
#ifndef SMELT_VJP_H
#define SMELT_VJP_H

#include "internal.h"

/* n: a copy of the node; self: its handle; k: which input; gy: the gradient
 * of n's output. Returns the gradient of input k (its shape and dtype), or
 * an invalid handle without an error when no gradient flows to it. */
#define VJP_ARGS smelt_graph *g, const sm_node *n, smelt_node self, int k, smelt_node gy
typedef smelt_node (*sm_vjp_fn)(VJP_ARGS);

/* Indexed by op; NULL: the op passes no gradient to any input. */
extern const sm_vjp_fn sm_vjp_rules[OP_COUNT];

#endif
