/* The cpu target: a program's plan (runtime/plan.c: passes, fusion,
 * lowering, buffers, arena) JIT-compiled through LLVM, and its kernels
 * run on the thread pool. */
#include "cpu.h"

#include "jit.h"
#include "plan.h"
#include "threads.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool sm_cpu_available(void) { return true; }

struct sm_cpu_program {
  sm_plan *plan;
  sm_kernel_fn *fns;     /* per kernel of the plan */
  sm_jit *jit;
  void *arena;           /* the default context's (see sm_cpu_run) */
  int nthreads;
  double compile_ms;
  bool from_cache;
  /* $SMELT_PROFILE: time per kernel over all runs, printed when freed;
   * runs of several contexts add to it under prof_lock */
  double *prof_ms;
  uint64_t prof_runs;
};

static pthread_mutex_t prof_lock = PTHREAD_MUTEX_INITIALIZER;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The profile: kernels by time spent, with their domains, on stderr. */
static void print_profile(const sm_cpu_program *c) {
  const sm_plan *p = c->plan;
  double total = 0;
  for (size_t s = 0; s < p->nkernels; s++) total += c->prof_ms[s];
  fprintf(stderr, "profile: %zu kernel%s, %" PRIu64 " run%s, %.3f ms per run\n", p->nkernels,
          p->nkernels == 1 ? "" : "s", c->prof_runs, c->prof_runs == 1 ? "" : "s",
          c->prof_runs ? total / (double)c->prof_runs : 0.0);
  size_t *order = sm_malloc(sizeof *order * (p->nkernels ? p->nkernels : 1));
  if (!order) return;
  for (size_t s = 0; s < p->nkernels; s++) order[s] = s;
  for (size_t i = 1; i < p->nkernels; i++)
    for (size_t j = i; j > 0 && c->prof_ms[order[j]] > c->prof_ms[order[j - 1]]; j--) {
      size_t t = order[j];
      order[j] = order[j - 1], order[j - 1] = t;
    }
  for (size_t i = 0; i < p->nkernels; i++) {
    const sm_kernel *k = p->kernels[order[i]].k;
    char dom[160];
    int at = 0;
    for (int d = 0; d < k->ndim && at < (int)sizeof dom - 24; d++)
      at += snprintf(dom + at, sizeof dom - (size_t)at, "%s%" PRId64 "%s", d ? "," : "",
                     k->extent[d], k->reduce[d] ? "r" : "");
    double ms = c->prof_ms[order[i]];
    fprintf(stderr, "profile: %-5s %-9s [%s] %9.3f ms per run %5.1f%%\n", k->name,
            sm_kernel_kind_name(k->kind), dom, c->prof_runs ? ms / (double)c->prof_runs : 0.0,
            total > 0 ? 100.0 * ms / total : 0.0);
  }
  sm_free(order);
}

void sm_cpu_free(sm_cpu_program *c) {
  if (!c) return;
  if (c->prof_ms) {
    if (c->prof_runs) print_profile(c);
    sm_free(c->prof_ms);
  }
  sm_plan_free(c->plan);
  sm_free(c->fns);
  sm_jit_free(c->jit);
  sm_free(c->arena);
  sm_free(c);
}

size_t sm_cpu_arena_bytes(const sm_cpu_program *c) { return c->plan->arena_bytes; }

const sm_plan *sm_cpu_plan(const sm_cpu_program *c) { return c->plan; }

sm_kernel_fn *sm_cpu_kernel_fns(sm_cpu_program *c) { return c->fns; }

void sm_cpu_stats(const sm_cpu_program *c, smelt_program_stats *s) {
  s->kernels = (int)c->plan->nkernels;
  s->buffers = c->plan->nbuffers;
  s->arena_bytes = c->plan->arena_bytes;
  s->unplanned_bytes = c->plan->unplanned_bytes;
  s->compile_ms = c->compile_ms;
  s->from_cache = c->from_cache;
}

sm_cpu_program *sm_cpu_compile(const smelt_graph *g, size_t nroots, const uint32_t *roots,
                               size_t nout, const smelt_compile_options *o, char **err) {
  double t0 = now_ms();
  (void)nout; /* an output that is an assign yields its new value, as an update */
  *err = NULL;
  sm_dump dump;
  if (sm_dump_init(&dump, o->dump, o->dump_dir, err)) return NULL;
  sm_cpu_program *c = sm_calloc(1, sizeof *c);
  sm_kernel **ks = NULL;
  if (!c) return NULL;
  c->nthreads = o->num_threads > 0 ? o->num_threads : sm_default_threads();
  /* $SMELT_ARENA_GUARD: guard zones around the arena's buffers (see run) */
  const char *guard = getenv("SMELT_ARENA_GUARD");
  bool guarded = guard && *guard && strcmp(guard, "0") != 0;
  c->plan = sm_plan_new_guarded(g, nroots, roots, NULL, o, guarded ? SM_ARENA_GUARD_BYTES : 0,
                                &dump, err);
  if (!c->plan) goto fail;
  const sm_plan *p = c->plan;
  c->fns = sm_calloc(p->nkernels ? p->nkernels : 1, sizeof *c->fns);
  ks = sm_malloc(sizeof *ks * (p->nkernels ? p->nkernels : 1));
  if (!c->fns || !ks || (p->arena_bytes && !(c->arena = sm_malloc(p->arena_bytes)))) {
    sm_free(*err);
    *err = sm_fmt("out of memory (an arena of %zu bytes)", p->arena_bytes);
    goto fail;
  }
  for (size_t i = 0; i < p->nkernels; i++) ks[i] = p->kernels[i].k;
  if (p->nkernels) {
    c->jit = sm_jit_compile(ks, p->nkernels, o, &dump, err);
    if (!c->jit) goto fail;
    c->from_cache = sm_jit_from_cache(c->jit);
    for (size_t i = 0; i < p->nkernels; i++) {
      c->fns[i] = sm_jit_lookup(c->jit, ks[i]->name);
      if (!c->fns[i]) {
        *err = sm_fmt("compiled code has no kernel %s", ks[i]->name);
        goto fail;
      }
    }
  }
  sm_free(ks);
  const char *prof = getenv("SMELT_PROFILE");
  if (prof && *prof && strcmp(prof, "0") != 0 && p->nkernels)
    c->prof_ms = sm_calloc(p->nkernels, sizeof *c->prof_ms); /* none: no profile */
  c->compile_ms = now_ms() - t0;
  return c;
fail:
  sm_free(ks);
  sm_cpu_free(c);
  return NULL;
}

/* ------------------------------------------------------------------ run */

typedef struct launch {
  sm_kernel_fn fn;
  void *const *args;
  sm_kctx *ctx;
} launch;

static void run_range(void *p, int64_t begin, int64_t end) {
  launch *l = p;
  l->fn(l->args, begin, end, l->ctx);
}

/* ------------------------------------------------------- arena guard */

/* $SMELT_ARENA_GUARD: the zones around a buffer get this byte when the
 * buffer becomes live (before its first kernel: the space may have held
 * another buffer before), and every kernel is followed by a check of the
 * zones of the buffers live during it. The kernels are not instrumented
 * (ASan and valgrind see the arena as one allocation), so this is what
 * catches a kernel that writes past its buffer into a neighbour. */
enum { GUARD_BYTE = 0xa5 };

static void guard_fill(const sm_plan *p, char *arena, int s) {
  for (size_t i = 0; i < p->nzones; i++) {
    const sm_arena_zone *z = &p->zones[i];
    if (z->first != s) continue;
    memset(arena + z->lo, GUARD_BYTE, z->data - z->lo);
    memset(arena + z->data + z->bytes, GUARD_BYTE, z->hi - z->data - z->bytes);
  }
}

/* The first and last changed byte of [lo, hi), false when none is. */
static bool guard_damage(const unsigned char *m, size_t lo, size_t hi, size_t *a, size_t *b) {
  size_t i = lo;
  while (i < hi && m[i] == GUARD_BYTE) i++;
  if (i == hi) return false;
  *a = *b = i;
  for (; i < hi; i++)
    if (m[i] != GUARD_BYTE) *b = i;
  return true;
}

/* "pointwise: add+mul": the kernel's kind and the ops it computes. */
static void kernel_what(const sm_plan *p, size_t s, sm_buf *b) {
  const sm_group *gr = &p->fusion->groups[s];
  const smelt_graph *g = p->opt;
  sm_buf_printf(b, "%s", sm_kernel_kind_name(p->kernels[s].k->kind));
  int n = 0;
  for (size_t m = 0; m < gr->nmembers; m++) {
    uint16_t op = g->nodes[gr->members[m]].op;
    if (sm_ops[op].cls == OPC_SOURCE || sm_ops[op].cls == OPC_VIEW) continue;
    bool seen = false;
    for (size_t j = 0; j < m && !seen; j++) seen = g->nodes[gr->members[j]].op == op;
    if (seen) continue;
    if (n == 6) {
      sm_buf_puts(b, "+...");
      break;
    }
    sm_buf_printf(b, "%s%s", n++ ? "+" : ": ", sm_ops[op].name);
  }
}

/* Checks the zones of the buffers live during kernel s: true when one is
 * damaged, with *err naming the kernel and the buffer (NULL when out of
 * memory). */
static bool guard_check(const sm_plan *p, const char *arena, int s, char **err) {
  const unsigned char *m = (const unsigned char *)arena;
  for (size_t i = 0; i < p->nzones; i++) {
    const sm_arena_zone *z = &p->zones[i];
    if (z->first > s || z->last < s) continue;
    size_t end = z->data + z->bytes, a, b;
    bool after = guard_damage(m, end, z->hi, &a, &b);
    if (!after && !guard_damage(m, z->lo, z->data, &a, &b)) continue;
    sm_buf t = {0};
    const smelt_graph *g = p->opt;
    const sm_node *n = &g->nodes[z->node];
    char id[128];
    sm_node_id(g, n, id, sizeof id);
    sm_buf_printf(&t, "arena guard: kernel %s (", p->kernels[s].k->name);
    kernel_what(p, (size_t)s, &t);
    sm_buf_printf(&t, ") wrote %s ", after ? "past" : "before");
    if (z->kernel >= 0) {
      const sm_karg *arg = &p->kernels[z->kernel].k->args[z->arg];
      sm_buf_printf(&t, "the scratch buffer of kernel %s for %s (%s[%" PRId64 "], %zu bytes)",
                    p->kernels[z->kernel].k->name, id, smelt_dtype_name((smelt_dtype)arg->dtype),
                    arg->numel, z->bytes);
    } else {
      sm_buf_printf(&t, "buffer %s (%s", id, smelt_dtype_name((smelt_dtype)n->dtype));
      sm_buf_shape(&t, n->rank, n->shape);
      sm_buf_printf(&t, ", %zu bytes)", z->bytes);
    }
    /* offsets from the buffer's end (past) or start (before) */
    long long fa = after ? (long long)(a - end) : -(long long)(z->data - a);
    long long fb = after ? (long long)(b - end) : -(long long)(z->data - b);
    if (a == b) sm_buf_printf(&t, " at offset %+lld", fa);
    else sm_buf_printf(&t, " at offsets %+lld..%+lld", fa, fb);
    *err = sm_buf_take(&t);
    return true;
  }
  return false;
}

int sm_cpu_run(sm_cpu_program *c, void *arena, const void *const *inputs,
               const void *const *params, bool training, uint64_t rng_step,
               void *const *results, char **err) {
  *err = NULL;
  if (!arena) arena = c->arena;
  const sm_plan *p = c->plan;
  const smelt_graph *g = p->opt;
  int maxargs = 1;
  for (size_t i = 0; i < p->nkernels; i++)
    if (p->kernels[i].k->nargs > maxargs) maxargs = p->kernels[i].k->nargs;
  void **args = sm_malloc(sizeof *args * (size_t)maxargs);
  if (!args) return -1;
  /* Every buffer's address for this run. */
  for (size_t i = 0; i < g->nnodes; i++) {
    const sm_buf_info *b = &p->bufs[i];
    if (b->kind == SM_BUF_INPUT && !inputs[b->orig] && sm_plan_node_bytes(&g->nodes[i])) {
      bool used = false;
      for (size_t s = 0; s < p->nkernels && !used; s++)
        for (int a = 0; a < p->kernels[s].k->nargs; a++)
          if (p->kernels[s].k->args[a].node == i) used = true;
      for (size_t k = 0; k < p->nroots; k++)
        if (p->roots[k] == i) used = true;
      if (used) {
        *err = sm_fmt("input \"%s\" is not bound", g->nodes[i].name);
        sm_free(args);
        return -1;
      }
    }
  }
  sm_kctx ctx = {rng_step, training, 0, 0, 0};
  bool guard = p->nzones > 0;
  if (c->prof_ms) {
    pthread_mutex_lock(&prof_lock);
    c->prof_runs++;
    pthread_mutex_unlock(&prof_lock);
  }
  for (size_t s = 0; s < p->nkernels; s++) {
    if (guard) guard_fill(p, arena, (int)s);
    double t0 = c->prof_ms ? now_ms() : 0;
    const sm_plan_kernel *ck = &p->kernels[s];
    const sm_kernel *k = ck->k;
    sm_kernel_fn fn = c->fns[s];
    for (int a = 0; a < k->nargs; a++) {
      const sm_karg *arg = &k->args[a];
      if (arg->role == KA_SCRATCH) {
        args[a] = (char *)arena + ck->scratch_off[a];
        continue;
      }
      const sm_buf_info *b = &p->bufs[arg->node];
      switch (b->kind) {
      case SM_BUF_INPUT: args[a] = (void *)inputs[b->orig]; break;
      case SM_BUF_PARAM: args[a] = (void *)params[b->orig]; break;
      case SM_BUF_CONST: args[a] = g->nodes[arg->node].data; break;
      case SM_BUF_RESULT: args[a] = results[b->root]; break;
      case SM_BUF_ARENA: args[a] = (char *)arena + b->offset; break;
      case SM_BUF_NONE: args[a] = NULL; break;
      }
    }
    launch l = {fn, args, &ctx};
    if (k->par_axis < 0) {
      fn(args, 0, 1, &ctx);
    } else {
      int64_t ext = k->extent[k->par_axis];
      if (ext == 0) continue;
      sm_parallel_for(c->nthreads, ext, ck->grain, ck->align, run_range, &l);
    }
    if (c->prof_ms) {
      pthread_mutex_lock(&prof_lock);
      c->prof_ms[s] += now_ms() - t0;
      pthread_mutex_unlock(&prof_lock);
    }
    if (guard && guard_check(p, arena, (int)s, err)) {
      sm_free(args);
      return -1;
    }
    if (__atomic_load_n(&ctx.error, __ATOMIC_RELAXED)) {
      /* name the op as the interpreter does (the kernel knows only its checks) */
      *err = sm_fmt("%s: index %" PRId64 " is out of range for a dimension of size %" PRId64
                     " (kernel %s)",
                     sm_plan_check_op(p, s), ctx.bad_index, ctx.bad_bound, k->name);
      sm_free(args);
      return -1;
    }
  }
  sm_free(args);
  /* Roots not written by a kernel: copies of inputs, params, constants, or
   * of a value an earlier root received. */
  for (size_t k = 0; k < p->nroots; k++) {
    uint32_t n = p->roots[k];
    const sm_buf_info *b = &p->bufs[n];
    size_t nb = sm_plan_node_bytes(&g->nodes[n]);
    const void *src = NULL;
    switch (b->kind) {
    case SM_BUF_INPUT: src = inputs[b->orig]; break;
    case SM_BUF_PARAM: src = params[b->orig]; break;
    case SM_BUF_CONST: src = g->nodes[n].data; break;
    case SM_BUF_RESULT: src = b->root == k ? NULL : results[b->root]; break;
    case SM_BUF_ARENA: src = (char *)arena + b->offset; break;
    case SM_BUF_NONE: break;
    }
    if (src && nb) memcpy(results[k], src, nb);
  }
  return 0;
}
