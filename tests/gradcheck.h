/* Numerical gradient checks, shared by the grad and conv suites.
 *
 * GC(label, build, ctx, inputs...) builds out = build(x0, x1, ...) on f64
 * inputs drawn as the gc_in list says, then y = sum(out * R) with a fixed
 * random R of out's shape (entries +-[0.5, 1.5]) so that every output
 * element matters. The analytic gradients of y come from smelt_grad, run
 * through tu_run: on the target under test (SMELT_TEST_TARGET). The numeric
 * ones are central differences (f(x + h e_i) - f(x - h e_i)) / 2h with
 * h = GC_H, evaluated by the interpreter on a second, independently built
 * forward graph whose inputs are bound to the same buffers (perturbed in
 * place). An element passes when
 * |analytic - numeric| <= GC_ATOL + GC_RTOL * |numeric| (tests/test_grad.c
 * explains the tolerance). Values and R are seeded from the label and the
 * line of the check. GC_VERBOSE=1 prints each check's worst error.
 */
#ifndef SMELT_GRADCHECK_H
#define SMELT_GRADCHECK_H

#include <stdint.h>

#include "smelt/smelt.h"

#define GC_RTOL 1e-6 /* relative */
#define GC_ATOL 1e-7 /* absolute floor, for near-zero gradients */
#define GC_H 1e-5    /* the step of the central differences */

/* ------------------------------------------------------ random numbers */

/* splitmix64: a fixed, platform-independent sequence. */
uint64_t rnd_next(uint64_t *s);
/* uniform in [lo, hi) */
double rnd_unif(uint64_t *s, double lo, double hi);

/* ---------------------------------------------------------------- shapes */

/* "2,3,4" -> rank 3, dims {2,3,4}; "" -> rank 0. */
int parse_shape(const char *s, int64_t *dims);
int64_t numel_of(int rank, const int64_t *dims);

/* A constant of n's shape with random entries +-[0.5, 1.5] (f64). */
smelt_node rand_const_like(smelt_graph *g, smelt_node n, uint64_t seed);

/* ---------------------------------------------------------- the checks */

typedef enum { GEN_UNIF, GEN_AWAY0, GEN_DISTINCT, GEN_STEP } gen_kind;

/* One f64 input of a gradient check: how its values are drawn, and its
 * shape as a string ("2,3"; "" for rank 0). */
typedef struct gc_in {
  gen_kind kind;
  double lo, hi, step, off;
  const char *shape;
} gc_in;

/* uniform in [lo, hi] */
#define UNIF(lo, hi, shape) ((gc_in){GEN_UNIF, (lo), (hi), 0, 0, (shape)})
/* +-uniform in [lo, hi] (random sign): away from 0 */
#define AWAY0(lo, hi, shape) ((gc_in){GEN_AWAY0, (lo), (hi), 0, 0, (shape)})
/* pairwise distinct values in [lo, hi] (at least (hi-lo)/(2n) apart), in
 * random order: no ties for max/min */
#define DISTINCT(lo, hi, shape) ((gc_in){GEN_DISTINCT, (lo), (hi), 0, 0, (shape)})
/* k*step + off for a random integer k in [lo, hi] */
#define STEP(lo, hi, step, off, shape) ((gc_in){GEN_STEP, (lo), (hi), (step), (off), (shape)})

/* Builds op(x[0..n-1]) on graph g; returns the op's (float) output. */
typedef smelt_node (*gc_build)(smelt_graph *g, int n, const smelt_node *x, const void *ctx);

enum { GC_MAXIN = 4 };

void gc_check_(const char *file, int line, const char *label, gc_build build, const void *ctx,
               int nin, const gc_in *ins);

/* GC("label", build, ctx, inputs...): a gradient check of build(ctx) on the
 * listed inputs (at most GC_MAXIN). */
#define GC(label, build, ctx, ...)                                                         \
  gc_check_(__FILE__, __LINE__, (label), (build), (ctx),                                  \
            (int)(sizeof((gc_in[]){__VA_ARGS__}) / sizeof(gc_in)), (const gc_in[]){__VA_ARGS__})

/* Higher derivatives: b_grad_of with GO(inner, ictx, which) builds
 * out = grad(sum(inner(x) * R1), x)[which] (R1 seeded by which). Nested
 * for third derivatives. */
typedef struct go_ctx {
  gc_build inner;
  const void *ictx;
  int which;
  uint64_t seed;
} go_ctx;

smelt_node b_grad_of(smelt_graph *g, int n, const smelt_node *x, const void *ctx);

#define GO(inner, ictx, which) (&(go_ctx){(inner), (ictx), (which), 0x1234u + (which)})

#endif
