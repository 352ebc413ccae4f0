/* Numerical gradient checks (see gradcheck.h): central differences on an
 * independently built forward graph run by the interpreter, against the
 * analytic gradients of smelt_grad run through tu_run on the target under
 * test. */
#include "gradcheck.h"

#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define F64 SMELT_F64

/* ====================================================== random numbers */

uint64_t rnd_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double rnd_unif(uint64_t *s, double lo, double hi) {
  return lo + (hi - lo) * ((double)(rnd_next(s) >> 11) * 0x1.0p-53);
}

/* FNV-1a, to seed a check from its label. */
static uint64_t hash_str(const char *s, uint64_t h) {
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return h;
}

/* =============================================================== shapes */

int parse_shape(const char *s, int64_t *dims) {
  int r = 0;
  while (s && *s && r < SMELT_MAX_RANK) {
    char *e;
    long long v = strtoll(s, &e, 10);
    if (e == s) break;
    dims[r++] = v;
    s = e;
    while (*s == ',' || *s == ' ') s++;
  }
  return r;
}

int64_t numel_of(int rank, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  return n;
}

smelt_node rand_const_like(smelt_graph *g, smelt_node n, uint64_t seed) {
  int rank = 0;
  const int64_t *d = smelt_node_shape(g, n, &rank);
  if (!d && rank) return SMELT_INVALID;
  int64_t dims[SMELT_MAX_RANK];
  for (int i = 0; i < rank; i++) dims[i] = d[i];
  int64_t cnt = numel_of(rank, dims);
  double *v = malloc((size_t)(cnt > 0 ? cnt : 1) * sizeof *v);
  for (int64_t i = 0; i < cnt; i++) {
    double m = rnd_unif(&seed, 0.5, 1.5);
    v[i] = (rnd_next(&seed) & 1) ? m : -m;
  }
  smelt_node r = tu_const_f64(g, rank, dims, v);
  free(v);
  return r;
}

/* =========================================================== the checks */

/* n values of input in, drawn from the stream s. */
static void gen_values(const gc_in *in, int64_t n, double *v, uint64_t *s) {
  switch (in->kind) {
  case GEN_UNIF:
    for (int64_t i = 0; i < n; i++) v[i] = rnd_unif(s, in->lo, in->hi);
    break;
  case GEN_AWAY0:
    for (int64_t i = 0; i < n; i++) {
      double m = rnd_unif(s, in->lo, in->hi);
      v[i] = (rnd_next(s) & 1) ? m : -m;
    }
    break;
  case GEN_DISTINCT: {
    int64_t *perm = malloc((size_t)(n > 0 ? n : 1) * sizeof *perm);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
      int64_t j = (int64_t)(rnd_next(s) % (uint64_t)(i + 1));
      int64_t t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    double step = (in->hi - in->lo) / (double)(n > 0 ? n : 1);
    for (int64_t i = 0; i < n; i++)
      v[i] = in->lo + ((double)perm[i] + rnd_unif(s, 0.25, 0.75)) * step;
    free(perm);
    break;
  }
  case GEN_STEP: {
    int64_t lo = (int64_t)in->lo, hi = (int64_t)in->hi;
    for (int64_t i = 0; i < n; i++) {
      int64_t k = lo + (int64_t)(rnd_next(s) % (uint64_t)(hi - lo + 1));
      v[i] = (double)k * in->step + in->off;
    }
    break;
  }
  }
}

typedef struct gc_graph {
  smelt_graph *g;
  smelt_node x[GC_MAXIN];
  smelt_node out, y;
} gc_graph;

static const char *const gc_names[GC_MAXIN] = {"x0", "x1", "x2", "x3"};

/* Inputs x0.. (f64), out = build(...), y = sum(out * R) registered as
 * output "gc_y". Fails the test on a graph error. */
static void gc_make(const char *file, int line, const char *label, gc_graph *G, int nin,
                    const int *ranks, int64_t (*dims)[SMELT_MAX_RANK], gc_build build,
                    const void *ctx, uint64_t rseed) {
  G->g = tu_graph_new_(file, line);
  for (int i = 0; i < nin; i++) G->x[i] = smelt_input(G->g, gc_names[i], F64, ranks[i], dims[i]);
  G->out = build(G->g, nin, G->x, ctx);
  smelt_node r = rand_const_like(G->g, G->out, rseed);
  G->y = smelt_sum(G->g, smelt_mul(G->g, G->out, r), 0, NULL, false);
  smelt_output(G->g, "gc_y", G->y);
  const char *e = smelt_graph_error(G->g);
  if (e) _ck_assert_failed(file, line, label, "%s: building the graph failed: %s", label, e);
  if (smelt_node_dtype(G->g, G->y) != F64)
    _ck_assert_failed(file, line, label, "%s: y is %s, not f64", label,
                      smelt_dtype_name(smelt_node_dtype(G->g, G->y)));
}

static bool gc_verbose(void) {
  const char *v = getenv("GC_VERBOSE");
  return v && *v && strcmp(v, "0") != 0;
}

void gc_check_(const char *file, int line, const char *label, gc_build build, const void *ctx,
               int nin, const gc_in *ins) {
  int ranks[GC_MAXIN] = {0};
  int64_t dims[GC_MAXIN][SMELT_MAX_RANK];
  int64_t numel[GC_MAXIN];
  double *data[GC_MAXIN];
  uint64_t seed = hash_str(label, 0xcbf29ce484222325ull) ^ (uint64_t)line * 0x9e3779b97f4a7c15ull;
  uint64_t rseed = seed ^ 0x5eed5eed5eedull;
  ck_assert_int_le(nin, GC_MAXIN);
  for (int i = 0; i < nin; i++) {
    ranks[i] = parse_shape(ins[i].shape, dims[i]);
    numel[i] = numel_of(ranks[i], dims[i]);
    data[i] = malloc((size_t)(numel[i] > 0 ? numel[i] : 1) * sizeof(double));
    gen_values(&ins[i], numel[i], data[i], &seed);
  }

  /* analytic */
  gc_graph A;
  gc_make(file, line, label, &A, nin, ranks, dims, build, ctx, rseed);
  smelt_node gr[GC_MAXIN];
  if (smelt_grad(A.g, A.y, nin, A.x, gr) != 0)
    _ck_assert_failed(file, line, label, "%s: smelt_grad failed: %s", label,
                      smelt_graph_error(A.g) ? smelt_graph_error(A.g) : "(no message)");
  for (int i = 0; i < nin; i++) {
    char ws[128], gs[128];
    int gr_rank = 0;
    const int64_t *gd = smelt_node_shape(A.g, gr[i], &gr_rank);
    if (!tu_shape_eq(A.g, gr[i], ranks[i], dims[i]) || smelt_node_dtype(A.g, gr[i]) != F64)
      _ck_assert_failed(file, line, label, "%s: gradient %d is %s%s, want f64%s", label, i,
                        smelt_dtype_name(smelt_node_dtype(A.g, gr[i])),
                        gd ? tu_shape_str(gr_rank, gd, gs, sizeof gs) : "(invalid)",
                        tu_shape_str(ranks[i], dims[i], ws, sizeof ws));
  }
  tu_bind binds[GC_MAXIN];
  for (int i = 0; i < nin; i++) binds[i] = (tu_bind){gc_names[i], data[i]};
  void *res[GC_MAXIN];
  char *err = tu_run(A.g, nin, gr, res, nin, binds);
  if (err) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", err);
    free(err);
    _ck_assert_failed(file, line, label, "%s: running the gradients failed: %s", label, msg);
  }

  /* numeric, on an independently built forward graph */
  gc_graph N;
  gc_make(file, line, label, &N, nin, ranks, dims, build, ctx, rseed);
  smelt_interp *it = smelt_interp_new(N.g);
  ck_assert_ptr_nonnull(it);
  for (int i = 0; i < nin; i++)
    if (smelt_interp_bind(it, gc_names[i], F64, ranks[i], dims[i], data[i],
                          (size_t)numel[i] * sizeof(double)) != 0)
      _ck_assert_failed(file, line, label, "%s: bind: %s", label, smelt_interp_error(it));
  int nbad = 0, bad_in = -1;
  int64_t bad_el = -1;
  double bad_a = 0, bad_n = 0, worst_rel = 0;
  for (int i = 0; i < nin; i++) {
    const double *an = res[i];
    for (int64_t j = 0; j < numel[i]; j++) {
      double v = data[i][j];
      double h = GC_H;
      double xp = v + h, xm = v - h, fp, fm;
      data[i][j] = xp;
      if (smelt_interp_run(it) != 0 || smelt_interp_read(it, "gc_y", F64, &fp, sizeof fp) != 0)
        _ck_assert_failed(file, line, label, "%s: run: %s", label, smelt_interp_error(it));
      data[i][j] = xm;
      if (smelt_interp_run(it) != 0 || smelt_interp_read(it, "gc_y", F64, &fm, sizeof fm) != 0)
        _ck_assert_failed(file, line, label, "%s: run: %s", label, smelt_interp_error(it));
      data[i][j] = v;
      double num = (fp - fm) / (xp - xm);
      double d = fabs(an[j] - num);
      double rel = d / (GC_ATOL / GC_RTOL + fabs(num));
      if (rel > worst_rel || isnan(d)) worst_rel = isnan(d) ? INFINITY : rel;
      if (!(d <= GC_ATOL + GC_RTOL * fabs(num))) {
        if (nbad++ == 0) {
          bad_in = i;
          bad_el = j;
          bad_a = an[j];
          bad_n = num;
        }
      }
    }
  }
  if (gc_verbose())
    fprintf(stderr, "gradcheck %-44s worst |a-n|/(%g+|n|) = %.3g\n", label, GC_ATOL / GC_RTOL,
            worst_rel);
  smelt_interp_free(it);
  smelt_graph_free(N.g);
  smelt_graph_free(A.g);
  for (int i = 0; i < nin; i++) free(res[i]);
  char shapes[512] = "";
  size_t k = 0;
  for (int i = 0; i < nin && k < sizeof shapes; i++) {
    char s[128];
    k += (size_t)snprintf(shapes + k, sizeof shapes - k, "%sx%d%s", i ? ", " : "", i,
                          tu_shape_str(ranks[i], dims[i], s, sizeof s));
  }
  double bad_x = bad_in >= 0 ? data[bad_in][bad_el] : 0;
  for (int i = 0; i < nin; i++) free(data[i]);
  if (nbad)
    _ck_assert_failed(file, line, label,
                      "%s (%s): %d gradient element(s) differ from central differences; first: "
                      "d/dx%d[%lld] at x = %.17g: analytic %.17g, numeric %.17g (atol %g, rtol %g)",
                      label, shapes, nbad, bad_in, (long long)bad_el, bad_x, bad_a, bad_n, GC_ATOL,
                      GC_RTOL);
}

/* ================================================== higher derivatives */

smelt_node b_grad_of(smelt_graph *g, int n, const smelt_node *x, const void *c) {
  const go_ctx *o = c;
  smelt_node out = o->inner(g, n, x, o->ictx);
  smelt_node r = rand_const_like(g, out, o->seed);
  smelt_node s = smelt_sum(g, smelt_mul(g, out, r), 0, NULL, false);
  smelt_node gr[GC_MAXIN];
  if (smelt_grad(g, s, n, x, gr) != 0) return SMELT_INVALID;
  return gr[o->which];
}

