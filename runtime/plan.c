/* Planning a program for compiled code: passes, fusion, lowering, the
 * thread split of each kernel, where every buffer lives, and the arena of
 * intermediates planned by lifetimes (runtime/memplan.c). */
#include "plan.h"

#include "../codegen/lower.h"
#include "../src/passes/passes.h"
#include "memplan.h"

#include <stdint.h>
#include <string.h>

/* Threads pay off above this many domain points per piece. */
enum { PAR_MIN_POINTS = 1 << 15 };

size_t sm_plan_node_bytes(const sm_node *n) {
  return (size_t)sm_numel(n->rank, n->shape) * smelt_dtype_size((smelt_dtype)n->dtype);
}

void sm_plan_free(sm_plan *p) {
  if (!p) return;
  for (size_t i = 0; p->kernels && i < p->nkernels; i++) {
    sm_kernel_free(p->kernels[i].k);
    sm_free(p->kernels[i].scratch_off);
  }
  sm_free(p->kernels);
  sm_fusion_free(p->fusion);
  smelt_graph_free(p->opt);
  sm_free(p->bufs);
  sm_free(p->roots);
  sm_free(p->result_offset);
  sm_free(p->zones);
  sm_free(p);
}

const char *sm_plan_check_op(const sm_plan *p, size_t s) {
  const sm_group *gr = &p->fusion->groups[s];
  const char *op = NULL;
  for (size_t m = 0; m < gr->nmembers; m++) {
    uint16_t o = p->opt->nodes[gr->members[m]].op;
    if (o != OP_GATHER && o != OP_SCATTER_ADD) continue;
    op = !op || strcmp(op, sm_ops[o].name) == 0 ? sm_ops[o].name : "gather or scatter_add";
  }
  return op ? op : "index check";
}

/* How a kernel's outer range is split: pieces of at least PAR_MIN_POINTS
 * domain points, aligned for the vector loop when par_axis is innermost. */
static void choose_split(sm_plan_kernel *pk) {
  const sm_kernel *k = pk->k;
  pk->grain = 1;
  pk->align = 1;
  if (k->par_axis < 0) return;
  int64_t ext = k->extent[k->par_axis], total = 1;
  for (int d = 0; d < k->ndim; d++) total *= k->extent[d];
  int64_t per = ext ? total / ext : 0; /* points per index of par_axis */
  pk->grain = per ? (PAR_MIN_POINTS + per - 1) / per : ext;
  if (pk->grain < 1) pk->grain = 1;
  if (k->order[k->ndim - 1] == k->par_axis) pk->align = 16;
}

/* Places intermediates (group outputs that are not roots, kernel scratch,
 * and results asked for in the arena) in one arena by their lifetimes in
 * kernel steps; step nkernels is the end of the run, when results not
 * written by a kernel are copied. With p->guard, each buffer of nonzero
 * size is planned as guard + bytes + guard and listed in p->zones. */
static int plan_arena(sm_plan *p, const bool *in_arena, char **err) {
  const smelt_graph *g = p->opt;
  size_t nn = g->nnodes, nk = p->nkernels;
  int *first = sm_malloc(sizeof *first * (nn ? nn : 1));
  int *last = sm_malloc(sizeof *last * (nn ? nn : 1));
  size_t nreq = p->nroots;
  for (size_t i = 0; i < nk; i++) nreq += (size_t)p->kernels[i].k->nargs;
  sm_mem_req *reqs = sm_calloc(nreq ? nreq : 1, sizeof *reqs);
  int *req_of_node = sm_malloc(sizeof *req_of_node * (nn ? nn : 1));
  size_t guard = p->guard;
  if (guard) p->zones = sm_calloc(nreq ? nreq : 1, sizeof *p->zones);
  int rc = -1;
  if (!first || !last || !reqs || !req_of_node || (guard && !p->zones)) goto out;
  for (size_t i = 0; i < nn; i++) first[i] = last[i] = -1, req_of_node[i] = -1;
  for (size_t s = 0; s < nk; s++) {
    const sm_kernel *k = p->kernels[s].k;
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
    if (p->bufs[i].kind != SM_BUF_ARENA) continue;
    reqs[r] = (sm_mem_req){sm_plan_node_bytes(&g->nodes[i]), first[i], last[i], 0};
    if (guard) p->zones[r] = (sm_arena_zone){.node = (uint32_t)i, .kernel = -1, .arg = -1};
    req_of_node[i] = (int)r++;
  }
  for (size_t s = 0; s < nk; s++) {
    sm_plan_kernel *pk = &p->kernels[s];
    for (int a = 0; a < pk->k->nargs; a++) {
      const sm_karg *arg = &pk->k->args[a];
      if (arg->role != KA_SCRATCH) continue;
      size_t bytes = (size_t)arg->numel * smelt_dtype_size((smelt_dtype)arg->dtype);
      reqs[r] = (sm_mem_req){bytes, (int)s, (int)s, 0};
      if (guard) p->zones[r] = (sm_arena_zone){.node = arg->node, .kernel = (int)s, .arg = a};
      pk->scratch_off[a] = r++; /* the request's index for now */
    }
  }
  /* Results in the arena live from the kernel that writes them (or the
   * end-of-run copy) to the end. */
  size_t root_req0 = r;
  for (size_t k = 0; k < p->nroots; k++) {
    if (!in_arena || !in_arena[k]) continue;
    uint32_t n = p->roots[k];
    const sm_buf_info *b = &p->bufs[n];
    int from = b->kind == SM_BUF_RESULT && b->root == k && first[n] >= 0 ? first[n] : (int)nk;
    if (guard) p->zones[r] = (sm_arena_zone){.node = n, .kernel = -1, .arg = -1};
    reqs[r++] = (sm_mem_req){sm_plan_node_bytes(&g->nodes[n]), from, (int)nk, 0};
  }
  /* A guarded buffer's request covers its zones too (the sizes are
   * checked: hostile shapes must not wrap). */
  for (size_t i = 0; guard && i < r; i++) {
    sm_arena_zone *z = &p->zones[i];
    z->bytes = reqs[i].bytes;
    z->first = reqs[i].first, z->last = reqs[i].last;
    if (!z->bytes) continue;
    if (z->bytes > SIZE_MAX - 2 * guard - 63) {
      *err = sm_fmt("the program's intermediates need an arena larger than 2^64 bytes "
                    "(%zu buffers)",
                    r);
      goto out;
    }
    reqs[i].bytes += 2 * guard;
  }
  /* without reuse: every buffer at its own 64-byte aligned place (the sum
   * saturates: buffers of hostile sizes may add up past SIZE_MAX) */
  p->unplanned_bytes = 0;
  for (size_t i = 0; i < r; i++) {
    size_t b = (reqs[i].bytes + 63) & ~(size_t)63;
    p->unplanned_bytes = b > SIZE_MAX - p->unplanned_bytes ? SIZE_MAX : p->unplanned_bytes + b;
  }
  p->nbuffers = (int)r;
  size_t size = sm_plan_memory(reqs, r, 64);
  if (size == (size_t)-1) {
    /* an arena that does not fit in size_t, or (when the buffers' sum fits)
     * out of memory for the planner's own small arrays */
    if (p->unplanned_bytes == SIZE_MAX)
      *err = sm_fmt("the program's intermediates need an arena larger than 2^64 bytes "
                    "(%zu buffers)",
                    r);
    goto out;
  }
  /* A guarded buffer starts after its front zone; the zone after it runs
   * to the end of its request, rounded up as the planner did. */
  size_t nz = 0;
  for (size_t i = 0; guard && i < r; i++) {
    if (!p->zones[i].bytes) continue;
    sm_arena_zone z = p->zones[i];
    z.lo = reqs[i].offset;
    z.data = reqs[i].offset += guard;
    z.hi = z.lo + ((reqs[i].bytes + 63) & ~(size_t)63);
    p->zones[nz++] = z;
  }
  p->nzones = nz;
  for (size_t i = 0; i < nn; i++)
    if (req_of_node[i] >= 0) p->bufs[i].offset = reqs[req_of_node[i]].offset;
  for (size_t s = 0; s < nk; s++) {
    sm_plan_kernel *pk = &p->kernels[s];
    for (int a = 0; a < pk->k->nargs; a++)
      if (pk->k->args[a].role == KA_SCRATCH) pk->scratch_off[a] = reqs[pk->scratch_off[a]].offset;
  }
  for (size_t k = 0, q = root_req0; k < p->nroots; k++)
    p->result_offset[k] = in_arena && in_arena[k] ? reqs[q++].offset : SIZE_MAX;
  p->arena_bytes = size;
  rc = 0;
out:
  sm_free(first);
  sm_free(last);
  sm_free(reqs);
  sm_free(req_of_node);
  return rc;
}

/* Decides where each materialized node of the optimized graph lives. */
static int assign_buffers(sm_plan *p, const uint32_t *to_orig) {
  const smelt_graph *g = p->opt;
  p->bufs = sm_calloc(g->nnodes ? g->nnodes : 1, sizeof *p->bufs);
  if (!p->bufs) return -1;
  for (size_t i = 0; i < g->nnodes; i++) {
    const sm_node *n = &g->nodes[i];
    sm_buf_info *b = &p->bufs[i];
    if (n->op == OP_INPUT) *b = (sm_buf_info){SM_BUF_INPUT, to_orig[i], 0, 0};
    else if (n->op == OP_PARAM) *b = (sm_buf_info){SM_BUF_PARAM, to_orig[i], 0, 0};
    else if (n->op == OP_CONST && n->data) b->kind = SM_BUF_CONST;
    else if (p->fusion->stored_by[i] >= 0) b->kind = SM_BUF_ARENA;
  }
  /* A node stored by a kernel and asked for as a root goes straight into
   * the first root's result (the others are copied after the run). */
  for (size_t k = 0; k < p->nroots; k++) {
    sm_buf_info *b = &p->bufs[p->roots[k]];
    if (b->kind == SM_BUF_ARENA) *b = (sm_buf_info){SM_BUF_RESULT, 0, k, 0};
  }
  return 0;
}

/* Lowers every group to a kernel and dumps the kernels. */
static int lower_kernels(sm_plan *p, const smelt_compile_options *o, sm_dump *dump,
                         char **err) {
  p->nkernels = p->fusion->ngroups;
  p->kernels = sm_calloc(p->nkernels ? p->nkernels : 1, sizeof *p->kernels);
  if (!p->kernels) return -1;
  bool want = sm_dump_wants(dump, SM_DUMP_KERNELS);
  sm_buf kt = {0};
  size_t i = 0;
  for (; i < p->nkernels; i++) {
    sm_plan_kernel *pk = &p->kernels[i];
    pk->k = sm_lower_group(p->fusion, i, o->reassociate, err);
    if (!pk->k) break;
    pk->scratch_off = sm_calloc((size_t)(pk->k->nargs ? pk->k->nargs : 1), sizeof *pk->scratch_off);
    if (!pk->scratch_off) break;
    choose_split(pk);
    if (want) sm_kernel_print_buf(&kt, pk->k);
  }
  bool ok = i == p->nkernels;
  if (ok && want) {
    char *t = sm_buf_take(&kt);
    sm_dump_write(dump, SM_DUMP_KERNELS, NULL, t);
    sm_free(t);
  }
  sm_buf_free(&kt);
  return ok ? 0 : -1;
}

sm_plan *sm_plan_new(const smelt_graph *g, size_t nroots, const uint32_t *roots,
                     const bool *in_arena, const smelt_compile_options *o, sm_dump *dump,
                     char **err) {
  return sm_plan_new_guarded(g, nroots, roots, in_arena, o, 0, dump, err);
}

sm_plan *sm_plan_new_guarded(const smelt_graph *g, size_t nroots, const uint32_t *roots,
                             const bool *in_arena, const smelt_compile_options *o,
                             size_t guard, sm_dump *dump, char **err) {
  *err = NULL;
  sm_plan *p = sm_calloc(1, sizeof *p);
  uint32_t *want = sm_malloc(sizeof *want * (nroots ? nroots : 1));
  uint32_t *map = sm_malloc(sizeof *map * (g->nnodes ? g->nnodes : 1));
  uint32_t *to_orig = NULL;
  if (!p || !want || !map) goto fail;
  p->nroots = nroots;
  p->guard = guard;
  /* An update's root is its assign; the value it writes is what we compute. */
  for (size_t k = 0; k < nroots; k++)
    want[k] = g->nodes[roots[k]].op == OP_ASSIGN ? g->nodes[roots[k]].inputs[1] : roots[k];
  if (sm_dump_wants(dump, SM_DUMP_GRAPH)) {
    char *t = smelt_graph_print(g);
    sm_dump_write(dump, SM_DUMP_GRAPH, NULL, t);
    smelt_free(t);
  }
  p->opt = sm_optimize(g, nroots, want, map, dump);
  if (!p->opt) goto fail;
  p->roots = sm_malloc(sizeof *p->roots * (nroots ? nroots : 1));
  p->result_offset = sm_malloc(sizeof *p->result_offset * (nroots ? nroots : 1));
  to_orig = sm_malloc(sizeof *to_orig * (p->opt->nnodes ? p->opt->nnodes : 1));
  if (!p->roots || !p->result_offset || !to_orig) goto fail;
  for (size_t k = 0; k < nroots; k++) p->roots[k] = map[want[k]] - 1;
  /* Inputs and params find their storage by their node in g (other nodes
   * of g may map onto them too: a rewrite of mul(w, 1) is w). */
  for (size_t i = 0; i < g->nnodes; i++)
    if (map[i] && (g->nodes[i].op == OP_INPUT || g->nodes[i].op == OP_PARAM))
      to_orig[map[i] - 1] = (uint32_t)i;
  p->fusion = sm_fuse(p->opt, nroots, p->roots, err);
  if (!p->fusion) goto fail;
  if (sm_dump_wants(dump, SM_DUMP_FUSION)) {
    char *t = sm_fusion_print(p->fusion);
    sm_dump_write(dump, SM_DUMP_FUSION, NULL, t);
    sm_free(t);
  }
  if (sm_dump_wants(dump, SM_DUMP_DOT)) {
    char *t = sm_fusion_print_dot(p->fusion);
    sm_dump_write(dump, SM_DUMP_DOT, NULL, t);
    sm_free(t);
  }
  if (lower_kernels(p, o, dump, err)) goto fail;
  if (assign_buffers(p, to_orig) || plan_arena(p, in_arena, err)) goto fail;
  sm_free(want);
  sm_free(map);
  sm_free(to_orig);
  return p;
fail:
  sm_free(want);
  sm_free(map);
  sm_free(to_orig);
  sm_plan_free(p);
  return NULL;
}
