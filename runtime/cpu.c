/* The cpu target: compiles a program's roots (passes, fusion, lowering,
 * LLVM, JIT), plans the arena of intermediates, and runs the kernels on
 * the thread pool. */
#include "cpu.h"

#include "../codegen/lower.h"
#include "../src/passes/fusion.h"
#include "../src/dump.h"
#include "../src/passes/passes.h"
#include "jit.h"
#include "memplan.h"
#include "threads.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

bool sm_cpu_available(void) { return true; }

/* Where a buffer of the optimized graph lives during a run. */
typedef enum buf_kind {
  BUF_NONE,    /* not needed */
  BUF_INPUT,   /* a graph input: the caller's binding */
  BUF_PARAM,   /* a param: the params store */
  BUF_CONST,   /* constant data in the optimized graph */
  BUF_RESULT,  /* stored straight into results[root] */
  BUF_ARENA    /* an intermediate at arena + offset */
} buf_kind;

typedef struct buf_info {
  buf_kind kind;
  uint32_t orig;   /* BUF_INPUT / BUF_PARAM: the node in the user's graph */
  size_t root;     /* BUF_RESULT: the root index */
  size_t offset;   /* BUF_ARENA */
} buf_info;

typedef struct compiled_kernel {
  sm_kernel *k;
  sm_kernel_fn fn;
  int64_t grain, align; /* thread split of par_axis */
  size_t *scratch_off;          /* per arg: arena offset of KA_SCRATCH args */
} compiled_kernel;

struct sm_cpu_program {
  smelt_graph *opt;      /* the optimized graph (owns constant data) */
  sm_fusion *fusion;
  compiled_kernel *kernels;
  size_t nkernels;
  sm_jit *jit;
  buf_info *bufs;        /* per node of opt */
  size_t nroots;
  uint32_t *roots;       /* per root: node of opt holding its value */
  size_t arena_bytes, unplanned_bytes;
  int nbuffers;
  void *arena;
  int nthreads;
  double compile_ms;
  bool from_cache;
};

/* Threads pay off above this many domain points per piece. */
enum { PAR_MIN_POINTS = 1 << 15 };

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t node_bytes(const sm_node *n) {
  return (size_t)sm_numel(n->rank, n->shape) * smelt_dtype_size((smelt_dtype)n->dtype);
}

void sm_cpu_free(sm_cpu_program *c) {
  if (!c) return;
  for (size_t i = 0; i < c->nkernels; i++) {
    sm_kernel_free(c->kernels[i].k);
    sm_free(c->kernels[i].scratch_off);
  }
  sm_free(c->kernels);
  sm_jit_free(c->jit);
  sm_fusion_free(c->fusion);
  smelt_graph_free(c->opt);
  sm_free(c->bufs);
  sm_free(c->roots);
  sm_free(c->arena);
  sm_free(c);
}

void sm_cpu_stats(const sm_cpu_program *c, smelt_program_stats *s) {
  s->kernels = (int)c->nkernels;
  s->buffers = c->nbuffers;
  s->arena_bytes = c->arena_bytes;
  s->unplanned_bytes = c->unplanned_bytes;
  s->compile_ms = c->compile_ms;
  s->from_cache = c->from_cache;
}

/* How a kernel's outer range is split: pieces of at least PAR_MIN_POINTS
 * domain points, aligned for the vector loop when par_axis is innermost. */
static void choose_split(compiled_kernel *ck) {
  const sm_kernel *k = ck->k;
  ck->grain = 1;
  ck->align = 1;
  if (k->par_axis < 0) return;
  int64_t ext = k->extent[k->par_axis], total = 1;
  for (int d = 0; d < k->ndim; d++) total *= k->extent[d];
  int64_t per = ext ? total / ext : 0; /* points per index of par_axis */
  ck->grain = per ? (PAR_MIN_POINTS + per - 1) / per : ext;
  if (ck->grain < 1) ck->grain = 1;
  if (k->order[k->ndim - 1] == k->par_axis) ck->align = 16;
}

/* Places intermediates (group outputs that are not roots, and kernel
 * scratch) in one arena by their lifetimes in kernel steps. */
static int plan_arena(sm_cpu_program *c, char **err) {
  const smelt_graph *g = c->opt;
  size_t nn = g->nnodes;
  int *first = sm_malloc(sizeof *first * (nn ? nn : 1));
  int *last = sm_malloc(sizeof *last * (nn ? nn : 1));
  size_t nreq = 0;
  for (size_t i = 0; i < c->nkernels; i++)
    for (int a = 0; a < c->kernels[i].k->nargs; a++) nreq++;
  sm_mem_req *reqs = sm_calloc(nreq ? nreq : 1, sizeof *reqs);
  /* which request a node or scratch arg owns */
  int *req_of_node = sm_malloc(sizeof *req_of_node * (nn ? nn : 1));
  if (!first || !last || !reqs || !req_of_node) goto oom;
  for (size_t i = 0; i < nn; i++) first[i] = last[i] = -1, req_of_node[i] = -1;
  for (size_t s = 0; s < c->nkernels; s++) {
    const sm_kernel *k = c->kernels[s].k;
    for (int a = 0; a < k->nargs; a++) {
      const sm_karg *arg = &k->args[a];
      if (arg->role == KA_SCRATCH) continue;
      uint32_t n = arg->node;
      if (first[n] < 0) first[n] = (int)s;
      last[n] = (int)s;
    }
  }
  size_t r = 0;
  for (size_t i = 0; i < nn; i++) {
    if (c->bufs[i].kind != BUF_ARENA) continue;
    reqs[r] = (sm_mem_req){node_bytes(&g->nodes[i]), first[i], last[i], 0};
    req_of_node[i] = (int)r++;
  }
  size_t nodes_end = r;
  for (size_t s = 0; s < c->nkernels; s++) {
    compiled_kernel *ck = &c->kernels[s];
    for (int a = 0; a < ck->k->nargs; a++) {
      const sm_karg *arg = &ck->k->args[a];
      if (arg->role != KA_SCRATCH) continue;
      size_t bytes = (size_t)arg->numel * smelt_dtype_size((smelt_dtype)arg->dtype);
      reqs[r] = (sm_mem_req){bytes, (int)s, (int)s, 0};
      ck->scratch_off[a] = r++; /* request index for now */
    }
  }
  /* without reuse: every buffer at its own 64-byte aligned place */
  c->unplanned_bytes = 0;
  for (size_t i = 0; i < r; i++) c->unplanned_bytes += (reqs[i].bytes + 63) & ~(size_t)63;
  c->nbuffers = (int)r;
  size_t size = sm_plan_memory(reqs, r, 64);
  if (size == (size_t)-1) goto oom;
  for (size_t i = 0; i < nn; i++)
    if (req_of_node[i] >= 0) c->bufs[i].offset = reqs[req_of_node[i]].offset;
  for (size_t s = 0; s < c->nkernels; s++) {
    compiled_kernel *ck = &c->kernels[s];
    for (int a = 0; a < ck->k->nargs; a++)
      if (ck->k->args[a].role == KA_SCRATCH) ck->scratch_off[a] = reqs[ck->scratch_off[a]].offset;
  }
  (void)nodes_end;
  c->arena_bytes = size;
  if (size) {
    c->arena = sm_malloc(size);
    if (!c->arena) goto oom;
  }
  sm_free(first);
  sm_free(last);
  sm_free(reqs);
  sm_free(req_of_node);
  return 0;
oom:
  sm_free(first);
  sm_free(last);
  sm_free(reqs);
  sm_free(req_of_node);
  *err = sm_fmt("out of memory planning the arena");
  return -1;
}

/* Decides where each materialized node of the optimized graph lives. */
static int assign_buffers(sm_cpu_program *c, const uint32_t *to_orig, char **err) {
  const smelt_graph *g = c->opt;
  c->bufs = sm_calloc(g->nnodes ? g->nnodes : 1, sizeof *c->bufs);
  if (!c->bufs) {
    *err = NULL;
    return -1;
  }
  for (size_t i = 0; i < g->nnodes; i++) {
    const sm_node *n = &g->nodes[i];
    buf_info *b = &c->bufs[i];
    if (n->op == OP_INPUT) *b = (buf_info){BUF_INPUT, to_orig[i], 0, 0};
    else if (n->op == OP_PARAM) *b = (buf_info){BUF_PARAM, to_orig[i], 0, 0};
    else if (n->op == OP_CONST && n->data) b->kind = BUF_CONST;
    else if (c->fusion->stored_by[i] >= 0) b->kind = BUF_ARENA;
  }
  /* A node stored by a kernel and asked for as a root goes straight into
   * the first root's result (the others are copied after the run). */
  for (size_t k = 0; k < c->nroots; k++) {
    buf_info *b = &c->bufs[c->roots[k]];
    if (b->kind == BUF_ARENA) *b = (buf_info){BUF_RESULT, 0, k, 0};
  }
  return 0;
}

sm_cpu_program *sm_cpu_compile(const smelt_graph *g, size_t nroots, const uint32_t *roots,
                               size_t nout, const smelt_compile_options *o, char **err) {
  double t0 = now_ms();
  (void)nout; /* an output that is an assign yields its new value, as an update */
  *err = NULL;
  sm_dump dump;
  if (sm_dump_init(&dump, o->dump, o->dump_dir, err)) return NULL;
  sm_cpu_program *c = sm_calloc(1, sizeof *c);
  uint32_t *want = sm_malloc(sizeof *want * (nroots ? nroots : 1));
  uint32_t *map = sm_malloc(sizeof *map * (g->nnodes ? g->nnodes : 1));
  uint32_t *to_orig = NULL;
  sm_kernel **ks = NULL;
  if (!c || !want || !map) goto oom;
  c->nroots = nroots;
  c->nthreads = o->num_threads > 0 ? o->num_threads : sm_default_threads();
  /* An update's root is its assign; the value it writes is what we compute. */
  for (size_t k = 0; k < nroots; k++)
    want[k] = g->nodes[roots[k]].op == OP_ASSIGN ? g->nodes[roots[k]].inputs[1] : roots[k];
  if (sm_dump_wants(&dump, SM_DUMP_GRAPH)) {
    char *t = smelt_graph_print(g);
    sm_dump_write(&dump, SM_DUMP_GRAPH, NULL, t);
    smelt_free(t);
  }
  c->opt = sm_optimize(g, nroots, want, map, &dump);
  if (!c->opt) goto oom;
  c->roots = sm_malloc(sizeof *c->roots * (nroots ? nroots : 1));
  to_orig = sm_malloc(sizeof *to_orig * (c->opt->nnodes ? c->opt->nnodes : 1));
  if (!c->roots || !to_orig) goto oom;
  for (size_t k = 0; k < nroots; k++) c->roots[k] = map[want[k]] - 1;
  /* Inputs and params find their storage by their node in g (other nodes
   * of g may map onto them too: a rewrite of mul(w, 1) is w). */
  for (size_t i = 0; i < g->nnodes; i++)
    if (map[i] && (g->nodes[i].op == OP_INPUT || g->nodes[i].op == OP_PARAM))
      to_orig[map[i] - 1] = (uint32_t)i;
  c->fusion = sm_fuse(c->opt, nroots, c->roots, err);
  if (!c->fusion) goto fail;
  if (sm_dump_wants(&dump, SM_DUMP_FUSION)) {
    char *t = sm_fusion_print(c->fusion);
    sm_dump_write(&dump, SM_DUMP_FUSION, NULL, t);
    sm_free(t);
  }
  if (sm_dump_wants(&dump, SM_DUMP_DOT)) {
    char *t = sm_fusion_print_dot(c->fusion);
    sm_dump_write(&dump, SM_DUMP_DOT, NULL, t);
    sm_free(t);
  }
  c->nkernels = c->fusion->ngroups;
  c->kernels = sm_calloc(c->nkernels ? c->nkernels : 1, sizeof *c->kernels);
  ks = sm_malloc(sizeof *ks * (c->nkernels ? c->nkernels : 1));
  if (!c->kernels || !ks) goto oom;
  sm_buf kt = {0};
  for (size_t i = 0; i < c->nkernels; i++) {
    compiled_kernel *ck = &c->kernels[i];
    ck->k = sm_lower_group(c->fusion, i, o->reassociate, err);
    if (!ck->k) {
      sm_buf_free(&kt);
      goto fail;
    }
    ck->scratch_off = sm_calloc((size_t)(ck->k->nargs ? ck->k->nargs : 1), sizeof *ck->scratch_off);
    if (!ck->scratch_off) {
      sm_buf_free(&kt);
      goto oom;
    }
    ks[i] = ck->k;
    choose_split(ck);
    if (sm_dump_wants(&dump, SM_DUMP_KERNELS)) sm_kernel_print_buf(&kt, ck->k);
  }
  if (sm_dump_wants(&dump, SM_DUMP_KERNELS)) {
    char *t = sm_buf_take(&kt);
    sm_dump_write(&dump, SM_DUMP_KERNELS, NULL, t);
    sm_free(t);
  }
  sm_buf_free(&kt);
  if (assign_buffers(c, to_orig, err)) goto fail;
  if (plan_arena(c, err)) goto fail;
  if (c->nkernels) {
    c->jit = sm_jit_compile(ks, c->nkernels, o, &dump, err);
    if (!c->jit) goto fail;
    c->from_cache = sm_jit_from_cache(c->jit);
    for (size_t i = 0; i < c->nkernels; i++) {
      c->kernels[i].fn = sm_jit_lookup(c->jit, c->kernels[i].k->name);
      if (!c->kernels[i].fn) {
        *err = sm_fmt("compiled code has no kernel %s", c->kernels[i].k->name);
        goto fail;
      }
    }
  }
  sm_free(want);
  sm_free(map);
  sm_free(to_orig);
  sm_free(ks);
  c->compile_ms = now_ms() - t0;
  return c;
oom:
  sm_free(*err);
  *err = NULL; /* the caller says "out of memory" */
fail:
  sm_free(want);
  sm_free(map);
  sm_free(to_orig);
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

int sm_cpu_run(sm_cpu_program *c, const void *const *inputs, const void *const *params,
               bool training, uint64_t rng_step, void *const *results, char **err) {
  *err = NULL;
  const smelt_graph *g = c->opt;
  int maxargs = 1;
  for (size_t i = 0; i < c->nkernels; i++)
    if (c->kernels[i].k->nargs > maxargs) maxargs = c->kernels[i].k->nargs;
  void **args = sm_malloc(sizeof *args * (size_t)maxargs);
  if (!args) return -1;
  /* Every buffer's address for this run. */
  for (size_t i = 0; i < g->nnodes; i++) {
    const buf_info *b = &c->bufs[i];
    if (b->kind == BUF_INPUT && !inputs[b->orig] && node_bytes(&g->nodes[i])) {
      bool used = false;
      for (size_t s = 0; s < c->nkernels && !used; s++)
        for (int a = 0; a < c->kernels[s].k->nargs; a++)
          if (c->kernels[s].k->args[a].node == i) used = true;
      for (size_t k = 0; k < c->nroots; k++)
        if (c->roots[k] == i) used = true;
      if (used) {
        *err = sm_fmt("input \"%s\" is not bound", g->nodes[i].name);
        sm_free(args);
        return -1;
      }
    }
  }
  sm_kctx ctx = {rng_step, training, 0, 0, 0};
  for (size_t s = 0; s < c->nkernels; s++) {
    compiled_kernel *ck = &c->kernels[s];
    const sm_kernel *k = ck->k;
    for (int a = 0; a < k->nargs; a++) {
      const sm_karg *arg = &k->args[a];
      if (arg->role == KA_SCRATCH) {
        args[a] = (char *)c->arena + ck->scratch_off[a];
        continue;
      }
      const buf_info *b = &c->bufs[arg->node];
      switch (b->kind) {
      case BUF_INPUT: args[a] = (void *)inputs[b->orig]; break;
      case BUF_PARAM: args[a] = (void *)params[b->orig]; break;
      case BUF_CONST: args[a] = g->nodes[arg->node].data; break;
      case BUF_RESULT: args[a] = results[b->root]; break;
      case BUF_ARENA: args[a] = (char *)c->arena + b->offset; break;
      case BUF_NONE: args[a] = NULL; break;
      }
    }
    launch l = {ck->fn, args, &ctx};
    if (k->par_axis < 0) {
      ck->fn(args, 0, 1, &ctx);
    } else {
      int64_t ext = k->extent[k->par_axis];
      if (ext == 0) continue;
      sm_parallel_for(c->nthreads, ext, ck->grain, ck->align, run_range, &l);
    }
    if (__atomic_load_n(&ctx.error, __ATOMIC_RELAXED)) {
      /* name the op as the interpreter does (the kernel knows only its checks) */
      const sm_group *gr = &c->fusion->groups[s];
      const char *op = NULL;
      for (size_t m = 0; m < gr->nmembers; m++) {
        uint16_t o = g->nodes[gr->members[m]].op;
        if (o != OP_GATHER && o != OP_SCATTER_ADD) continue;
        op = !op || strcmp(op, sm_ops[o].name) == 0 ? sm_ops[o].name : "gather or scatter_add";
      }
      *err = sm_fmt("%s: index %" PRId64 " is out of range for a dimension of size %" PRId64
                     " (kernel %s)",
                     op ? op : "index check", ctx.bad_index, ctx.bad_bound, k->name);
      sm_free(args);
      return -1;
    }
  }
  sm_free(args);
  /* Roots not written by a kernel: copies of inputs, params, constants, or
   * of a value an earlier root received. */
  for (size_t k = 0; k < c->nroots; k++) {
    uint32_t n = c->roots[k];
    const buf_info *b = &c->bufs[n];
    size_t nb = node_bytes(&g->nodes[n]);
    const void *src = NULL;
    switch (b->kind) {
    case BUF_INPUT: src = inputs[b->orig]; break;
    case BUF_PARAM: src = params[b->orig]; break;
    case BUF_CONST: src = g->nodes[n].data; break;
    case BUF_RESULT: src = b->root == k ? NULL : results[b->root]; break;
    case BUF_ARENA: src = (char *)c->arena + b->offset; break;
    case BUF_NONE: break;
    }
    if (src && nb) memcpy(results[k], src, nb);
  }
  return 0;
}
