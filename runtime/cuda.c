/* The cuda target: a program's plan (runtime/plan.c, the same as the cpu
 * target's) printed as CUDA C (codegen/cuda.c) and compiled to a cubin for
 * the device by NVRTC (codegen/nvrtc.c), both through runtime/cuda_build.c,
 * then loaded and launched in order on one stream through the driver API
 * (runtime/cuda_driver.c).
 *
 * Device memory of a program: the arena (intermediates and KA_SCRATCH
 * args, at the plan's offsets), one buffer per graph input that a kernel
 * or a root reads (filled from the host each run unless the caller gives
 * a device address), one per constant (uploaded at compile time), one per
 * root (the results), the kernels' shared scratch (zeroed once; kernels
 * leave it zeroed) and the run context (sm_kctx).
 *
 * Ordering: runs use a non-blocking stream and end synchronized; the
 * synchronous helpers (sm_cuda_upload, ...) and the compile-time uploads
 * use the legacy default stream and wait for it, since the driver may
 * return from a "synchronous" copy or memset before the device has
 * finished it and a non-blocking stream does not wait for the default
 * one. So no work of one ever overlaps work of the other. */
#include "cuda.h"

#include "cuda_build.h"
#include "cuda_driver.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

_Static_assert(sizeof(sm_kctx) == SM_CUDA_CTX_BYTES, "sm_kctx is the device context's layout");

/* Every allocation is a multiple of this: the generated code may touch
 * the whole 4-byte word around a bool element, and the driver aligns
 * allocations at least this much anyway. */
#define DEV_GRAIN 256

bool sm_cuda_available(void) { return true; }

struct sm_cuda_program {
  sm_cuda_image img;     /* the plan and the launch configurations (code freed once loaded) */
  const sm_plan *plan;   /* img.plan */
  sm_cu_module module;
  sm_cu_function *fns;   /* per kernel of the plan */
  sm_cu_stream stream;
  sm_cu_ptr arena, scratch, ctx;
  sm_cu_ptr *node_buf;   /* per node of opt: our copy of an input or constant (0: none) */
  sm_cu_ptr *results;    /* per root */
  sm_kctx hctx;          /* host side of the context's async copies */
  uint64_t *argv;        /* a launch's parameter values and pointers to them */
  void **params;
  double compile_ms;
  bool sync_each;        /* SMELT_CUDA_SYNC=1: wait after every kernel */
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------- memory */

/* bytes rounded up to DEV_GRAIN into *p; 0 bytes allocate nothing (0). */
static int dev_alloc(const sm_cuda_driver *d, size_t bytes, sm_cu_ptr *p, const char *what,
                     char **err) {
  *p = 0;
  if (!bytes) return 0;
  if (bytes > SIZE_MAX - DEV_GRAIN) {
    *err = sm_fmt("CUDA: %zu bytes of device memory (%s) is too large", bytes, what);
    return -1;
  }
  size_t n = (bytes + DEV_GRAIN - 1) / DEV_GRAIN * DEV_GRAIN;
  int r = d->MemAlloc(p, n);
  if (r != SM_CU_SUCCESS) {
    *p = 0;
    char call[160];
    snprintf(call, sizeof call, "cuMemAlloc of %zu bytes (%s)", n, what);
    *err = sm_cu_error(d, r, call, NULL);
    return -1;
  }
  return 0;
}

static void dev_free(const sm_cuda_driver *d, sm_cu_ptr *p) {
  if (*p) d->MemFree(*p);
  *p = 0;
}

/* Waits for the legacy default stream (see the top of the file). */
static int sync_default(const sm_cuda_driver *d, const char *after, char **err) {
  int r = d->StreamSynchronize(NULL);
  if (r == SM_CU_SUCCESS) return 0;
  char call[96];
  snprintf(call, sizeof call, "cuStreamSynchronize after %s", after);
  *err = sm_cu_error(d, r, call, NULL);
  return -1;
}

int sm_cuda_alloc(size_t bytes, uint64_t *ptr, char **err) {
  *ptr = 0;
  const sm_cuda_driver *d;
  if (!sm_cu_device(&d, err)) return -1;
  sm_cu_ptr p;
  if (dev_alloc(d, bytes, &p, "device memory", err)) return -1;
  *ptr = p;
  return 0;
}

void sm_cuda_release(uint64_t ptr) {
  if (!ptr) return;
  const sm_cuda_driver *d;
  char *err = NULL;
  if (sm_cu_device(&d, &err)) d->MemFree(ptr);
  sm_free(err);
}

int sm_cuda_upload(uint64_t dst, const void *src, size_t bytes, char **err) {
  const sm_cuda_driver *d;
  if (!sm_cu_device(&d, err)) return -1;
  if (!bytes) return 0;
  int r = d->MemcpyHtoD(dst, src, bytes);
  if (r != SM_CU_SUCCESS) {
    *err = sm_cu_error(d, r, "cuMemcpyHtoD", NULL);
    return -1;
  }
  return sync_default(d, "cuMemcpyHtoD", err);
}

int sm_cuda_download(void *dst, uint64_t src, size_t bytes, char **err) {
  const sm_cuda_driver *d;
  if (!sm_cu_device(&d, err)) return -1;
  if (!bytes) return 0;
  int r = d->MemcpyDtoH(dst, src, bytes);
  if (r != SM_CU_SUCCESS) {
    *err = sm_cu_error(d, r, "cuMemcpyDtoH", NULL);
    return -1;
  }
  return 0; /* returns when the data is in dst */
}

int sm_cuda_copy(uint64_t dst, uint64_t src, size_t bytes, char **err) {
  const sm_cuda_driver *d;
  if (!sm_cu_device(&d, err)) return -1;
  if (!bytes || dst == src) return 0;
  int r = d->MemcpyDtoD(dst, src, bytes);
  if (r != SM_CU_SUCCESS) {
    *err = sm_cu_error(d, r, "cuMemcpyDtoD", NULL);
    return -1;
  }
  return sync_default(d, "cuMemcpyDtoD", err);
}

/* ------------------------------------------------------------ program */

void sm_cuda_free(sm_cuda_program *c) {
  if (!c) return;
  const sm_cuda_driver *d = NULL;
  char *err = NULL;
  /* A program exists only after the device was set up, so this fails
   * only if the context cannot be made current; then the device memory
   * is lost with it. */
  if (sm_cu_device(&d, &err)) {
    if (c->stream) {
      d->StreamSynchronize(c->stream);
      d->StreamDestroy(c->stream);
    }
    if (c->module) d->ModuleUnload(c->module);
    dev_free(d, &c->arena);
    dev_free(d, &c->scratch);
    dev_free(d, &c->ctx);
    for (size_t i = 0; c->node_buf && i < c->plan->opt->nnodes; i++) dev_free(d, &c->node_buf[i]);
    for (size_t k = 0; c->results && k < c->plan->nroots; k++) dev_free(d, &c->results[k]);
  }
  sm_free(err);
  sm_free(c->fns);
  sm_free(c->node_buf);
  sm_free(c->results);
  sm_free(c->argv);
  sm_free(c->params);
  sm_cuda_image_free(&c->img);
  sm_free(c);
}

void sm_cuda_stats(const sm_cuda_program *c, smelt_program_stats *s) {
  s->kernels = (int)c->plan->nkernels;
  s->buffers = c->plan->nbuffers;
  s->arena_bytes = c->plan->arena_bytes;
  s->unplanned_bytes = c->plan->unplanned_bytes;
  s->compile_ms = c->compile_ms;
  s->from_cache = c->img.from_cache;
}

uint64_t sm_cuda_result(const sm_cuda_program *c, size_t root) { return c->results[root]; }

static bool domain_empty(const sm_cuda_kernel *ck) {
  return ck->grid[0] <= 0 || ck->grid[1] <= 0 || ck->grid[2] <= 0;
}

/* Refuses launch configurations the device cannot run, at compile time
 * (grids and blocks depend only on the shapes). */
static int check_launch(const sm_cuda_kernel *ck, const sm_cuda_device *dev, char **err) {
  if (ck->block < 1 || ck->block > dev->max_threads_per_block) {
    *err = sm_fmt("kernel %s wants blocks of %d threads; device %d (%s) allows 1 to %d", ck->name,
                  ck->block, dev->ordinal, dev->name, dev->max_threads_per_block);
    return -1;
  }
  if (domain_empty(ck)) return 0;
  for (int i = ck->grid_stride ? 1 : 0; i < 3; i++) {
    if (ck->grid[i] > dev->max_grid[i]) {
      *err = sm_fmt("kernel %s needs a grid of [%" PRId64 ",%" PRId64 ",%" PRId64
                    "] blocks; device %d (%s) allows at most [%d,%d,%d]",
                    ck->name, ck->grid[0], ck->grid[1], ck->grid[2], dev->ordinal, dev->name,
                    dev->max_grid[0], dev->max_grid[1], dev->max_grid[2]);
      return -1;
    }
  }
  return 0;
}

/* The architecture to compile for: o->cuda_arch (SMELT_CUDA_ARCH), else
 * the device's own, checked against NVRTC so that a device newer than
 * NVRTC gets a message listing what NVRTC supports. */
static int pick_arch(const smelt_compile_options *o, const sm_cuda_device *dev, int *cc,
                     char **err) {
  if (o->cuda_arch && *o->cuda_arch) return sm_cuda_pick_arch(o, 0, cc, err);
  char own[16];
  snprintf(own, sizeof own, "sm_%d", dev->cc_major * 10 + dev->cc_minor);
  return sm_nvrtc_parse_arch(own, cc, err);
}

/* Loads the cubin and looks up each kernel. */
static int load_module(sm_cuda_program *c, const sm_cuda_driver *d, const sm_cuda_device *dev,
                       int cc, char **err) {
  const sm_cuda_source *src = &c->img.src;
  size_t n = c->plan->nkernels;
  if (src->nkernels != n) {
    *err = sm_fmt("the CUDA printer gave %zu kernels for %zu", src->nkernels, n);
    return -1;
  }
  int r = d->ModuleLoadData(&c->module, c->img.code);
  sm_free(c->img.code);
  c->img.code = NULL;
  if (r != SM_CU_SUCCESS) {
    c->module = NULL;
    char call[400];
    snprintf(call, sizeof call, "cuModuleLoadData (a cubin for sm_%d on device %d, %s, sm_%d%d)",
             cc, dev->ordinal, dev->name, dev->cc_major, dev->cc_minor);
    *err = sm_cu_error(d, r, call, NULL);
    return -1;
  }
  c->fns = sm_calloc(n, sizeof *c->fns);
  if (!c->fns) return -1;
  for (size_t i = 0; i < n; i++) {
    const sm_cuda_kernel *ck = &src->kernels[i];
    r = d->ModuleGetFunction(&c->fns[i], c->module, ck->name);
    if (r != SM_CU_SUCCESS) {
      *err = sm_cu_error(d, r, "cuModuleGetFunction", ck->name);
      return -1;
    }
    if (check_launch(ck, dev, err)) return -1;
  }
  return 0;
}

/* Which nodes of opt a kernel or a root reads (scratch args are not nodes). */
static bool *used_nodes(const sm_plan *p) {
  bool *used = sm_calloc(p->opt->nnodes, sizeof *used);
  if (!used) return NULL;
  for (size_t s = 0; s < p->nkernels; s++)
    for (int a = 0; a < p->kernels[s].k->nargs; a++)
      if (p->kernels[s].k->args[a].role != KA_SCRATCH) used[p->kernels[s].k->args[a].node] = true;
  for (size_t k = 0; k < p->nroots; k++) used[p->roots[k]] = true;
  return used;
}

static int alloc_buffers(sm_cuda_program *c, const sm_cuda_driver *d, char **err) {
  const sm_plan *p = c->plan;
  const smelt_graph *g = p->opt;
  int rc = -1;
  bool *used = used_nodes(p);
  c->node_buf = sm_calloc(g->nnodes, sizeof *c->node_buf);
  c->results = sm_calloc(p->nroots, sizeof *c->results);
  int maxargs = 0;
  for (size_t s = 0; s < p->nkernels; s++)
    if (p->kernels[s].k->nargs > maxargs) maxargs = p->kernels[s].k->nargs;
  c->argv = sm_malloc(sizeof *c->argv * (size_t)(maxargs + 2));
  c->params = sm_malloc(sizeof *c->params * (size_t)(maxargs + 2));
  if (!used || !c->node_buf || !c->results || !c->argv || !c->params) goto out;
  if (dev_alloc(d, p->arena_bytes, &c->arena, "the arena", err)) goto out;
  char what[128];
  for (size_t i = 0; i < g->nnodes; i++) {
    const sm_node *n = &g->nodes[i];
    sm_buf_kind kind = p->bufs[i].kind;
    if (!used[i] || (kind != SM_BUF_INPUT && kind != SM_BUF_CONST)) continue;
    size_t nb = sm_plan_node_bytes(n);
    if (kind == SM_BUF_INPUT) snprintf(what, sizeof what, "input \"%s\"", n->name ? n->name : "?");
    else snprintf(what, sizeof what, "a constant");
    if (dev_alloc(d, nb, &c->node_buf[i], what, err)) goto out;
    if (kind == SM_BUF_CONST && nb) {
      int r = d->MemcpyHtoD(c->node_buf[i], n->data, nb);
      if (r != SM_CU_SUCCESS) {
        *err = sm_cu_error(d, r, "cuMemcpyHtoD of a constant", NULL);
        goto out;
      }
    }
  }
  for (size_t k = 0; k < p->nroots; k++) {
    snprintf(what, sizeof what, "result %zu", k);
    if (dev_alloc(d, sm_plan_node_bytes(&g->nodes[p->roots[k]]), &c->results[k], what, err))
      goto out;
  }
  size_t scratch = 0;
  for (size_t s = 0; s < c->img.src.nkernels; s++)
    if (c->img.src.kernels[s].scratch_bytes > scratch)
      scratch = c->img.src.kernels[s].scratch_bytes;
  if (dev_alloc(d, scratch, &c->scratch, "the kernels' scratch", err)) goto out;
  if (scratch) {
    /* Kernels leave it zeroed (the counters of two-stage reductions). */
    int r = d->MemsetD8(c->scratch, 0, (scratch + DEV_GRAIN - 1) / DEV_GRAIN * DEV_GRAIN);
    if (r != SM_CU_SUCCESS) {
      *err = sm_cu_error(d, r, "cuMemsetD8 of the kernels' scratch", NULL);
      goto out;
    }
  }
  if (dev_alloc(d, SM_CUDA_CTX_BYTES, &c->ctx, "the run context", err)) goto out;
  rc = sync_default(d, "uploading constants", err);
out:
  sm_free(used);
  return rc;
}

sm_cuda_program *sm_cuda_compile(const smelt_graph *g, size_t nroots, const uint32_t *roots,
                                 size_t nout, const smelt_compile_options *o, char **err) {
  double t0 = now_ms();
  (void)nout; /* an output that is an assign yields its new value, as an update */
  *err = NULL;
  /* The driver first: a machine without a GPU fails before any work. */
  const sm_cuda_driver *d;
  const sm_cuda_device *dev = sm_cu_device(&d, err);
  if (!dev) return NULL;
  sm_dump dump;
  if (sm_dump_init(&dump, o->dump, o->dump_dir, err)) return NULL;
  sm_cuda_program *c = sm_calloc(1, sizeof *c);
  if (!c) return NULL;
  const char *sync = getenv("SMELT_CUDA_SYNC");
  c->sync_each = sync && strcmp(sync, "1") == 0;
  int cc;
  if (pick_arch(o, dev, &cc, err)) goto fail;
  /* plan, print, dump, compile: the same path as smeltc --emit */
  if (sm_cuda_build(g, nroots, roots, o, cc, SM_NVRTC_CUBIN, &dump, &c->img, err)) goto fail;
  c->plan = c->img.plan;
  if (c->plan->nkernels && load_module(c, d, dev, cc, err)) goto fail;
  if (alloc_buffers(c, d, err)) goto fail;
  int r = d->StreamCreate(&c->stream, SM_CU_STREAM_NON_BLOCKING);
  if (r != SM_CU_SUCCESS) {
    c->stream = NULL;
    *err = sm_cu_error(d, r, "cuStreamCreate", NULL);
    goto fail;
  }
  c->compile_ms = now_ms() - t0;
  return c;
fail:
  sm_cuda_free(c);
  return NULL;
}

/* ---------------------------------------------------------------- run */

/* The device address of node i's value during a run (not for results). */
static sm_cu_ptr node_addr(const sm_cuda_program *c, uint32_t i, const uint64_t *dev_inputs,
                           const uint64_t *params) {
  const sm_buf_info *b = &c->plan->bufs[i];
  switch (b->kind) {
  case SM_BUF_INPUT:
    return dev_inputs && dev_inputs[b->orig] ? dev_inputs[b->orig] : c->node_buf[i];
  case SM_BUF_PARAM: return params ? params[b->orig] : 0;
  case SM_BUF_CONST: return c->node_buf[i];
  case SM_BUF_RESULT: return c->results[b->root];
  case SM_BUF_ARENA: return c->arena ? c->arena + b->offset : 0;
  case SM_BUF_NONE: break;
  }
  return 0;
}

/* The kernel an index error came from. The context keeps the first
 * failing check's index and bound but not its kernel, and kernels run in
 * order on one stream, so: the first kernel with a check of that bound,
 * else the first kernel with any check. SIZE_MAX when none has one. */
static size_t failed_kernel(const sm_plan *p, int64_t bound) {
  size_t first = SIZE_MAX;
  for (size_t s = 0; s < p->nkernels; s++) {
    const sm_kernel *k = p->kernels[s].k;
    for (int v = 0; v < k->nvals; v++) {
      if (k->vals[v].kind != KV_CHECK) continue;
      if (k->vals[v].ival == bound) return s;
      if (first == SIZE_MAX) first = s;
    }
  }
  return first;
}

/* Blocks along x for a launch: grid-stride kernels get a couple of waves
 * of the device at most. */
static unsigned grid_x(const sm_cuda_kernel *ck, const sm_cuda_device *dev) {
  int64_t gx = ck->grid[0];
  if (ck->grid_stride) {
    int64_t per_sm = dev->max_threads_per_sm / ck->block;
    if (per_sm < 1) per_sm = 1;
    int64_t cap = (int64_t)dev->sm_count * per_sm * 2;
    if (cap < 1) cap = 1;
    if (gx > cap) gx = cap;
    if (gx > dev->max_grid[0]) gx = dev->max_grid[0];
  }
  return (unsigned)gx;
}

int sm_cuda_run(sm_cuda_program *c, const void *const *host_inputs, const uint64_t *dev_inputs,
                const uint64_t *params, bool training, uint64_t rng_step, char **err) {
  *err = NULL;
  const sm_cuda_driver *d;
  const sm_cuda_device *dev = sm_cu_device(&d, err);
  if (!dev) return -1;
  const sm_plan *p = c->plan;
  const smelt_graph *g = p->opt;
  /* Inputs: every one we hold a buffer for is used; check all first. */
  for (size_t i = 0; i < g->nnodes; i++) {
    const sm_buf_info *b = &p->bufs[i];
    if (b->kind != SM_BUF_INPUT || !c->node_buf[i]) continue;
    if (dev_inputs && dev_inputs[b->orig]) continue;
    if (!host_inputs || !host_inputs[b->orig]) {
      *err = sm_fmt("input \"%s\" is not bound", g->nodes[i].name);
      return -1;
    }
  }
  int r;
  const char *call = NULL, *kname = NULL;
  char detail[160];
  c->hctx = (sm_kctx){rng_step, training, 0, 0, 0};
  call = "cuMemcpyHtoDAsync of the run context";
  if ((r = d->MemcpyHtoDAsync(c->ctx, &c->hctx, sizeof c->hctx, c->stream))) goto fail;
  for (size_t i = 0; i < g->nnodes; i++) {
    const sm_buf_info *b = &p->bufs[i];
    if (b->kind != SM_BUF_INPUT || !c->node_buf[i] || (dev_inputs && dev_inputs[b->orig]))
      continue;
    snprintf(detail, sizeof detail, "cuMemcpyHtoDAsync of input \"%s\"", g->nodes[i].name);
    call = detail;
    r = d->MemcpyHtoDAsync(c->node_buf[i], host_inputs[b->orig], sm_plan_node_bytes(&g->nodes[i]),
                           c->stream);
    if (r) goto fail;
  }
  for (size_t s = 0; s < p->nkernels; s++) {
    const sm_plan_kernel *pk = &p->kernels[s];
    const sm_kernel *k = pk->k;
    const sm_cuda_kernel *ck = &c->img.src.kernels[s];
    kname = k->name;
    for (int a = 0; a < k->nargs; a++) {
      const sm_karg *arg = &k->args[a];
      if (arg->role == KA_SCRATCH) c->argv[a] = c->arena ? c->arena + pk->scratch_off[a] : 0;
      else c->argv[a] = node_addr(c, arg->node, dev_inputs, params);
      c->params[a] = &c->argv[a];
    }
    c->argv[k->nargs] = c->ctx;
    c->argv[k->nargs + 1] = c->scratch;
    c->params[k->nargs] = &c->argv[k->nargs];
    c->params[k->nargs + 1] = &c->argv[k->nargs + 1];
    /* Zeroed even when the domain is empty: a scatter_add of nothing is
     * still zeros. */
    call = "cuMemsetD8Async";
    for (int z = 0; z < ck->nzero; z++) {
      int a = ck->zero_args[z];
      size_t nb = (size_t)k->args[a].numel * smelt_dtype_size((smelt_dtype)k->args[a].dtype);
      if (nb && (r = d->MemsetD8Async(c->argv[a], 0, nb, c->stream))) goto fail;
    }
    if (domain_empty(ck)) continue;
    call = "cuLaunchKernel";
    r = d->LaunchKernel(c->fns[s], grid_x(ck, dev), (unsigned)ck->grid[1], (unsigned)ck->grid[2],
                        (unsigned)ck->block, 1, 1, 0, c->stream, c->params, NULL);
    if (r) goto fail;
    if (c->sync_each) {
      call = "cuStreamSynchronize";
      if ((r = d->StreamSynchronize(c->stream))) goto fail;
    }
  }
  kname = NULL;
  /* Roots not written by a kernel: copies of inputs, params, constants, or
   * of a value an earlier root received (as sm_cpu_run). */
  call = "cuMemcpyDtoDAsync of a result";
  for (size_t k = 0; k < p->nroots; k++) {
    uint32_t n = p->roots[k];
    const sm_buf_info *b = &p->bufs[n];
    if (b->kind == SM_BUF_NONE || (b->kind == SM_BUF_RESULT && b->root == k)) continue;
    sm_cu_ptr src = node_addr(c, n, dev_inputs, params);
    size_t nb = sm_plan_node_bytes(&g->nodes[n]);
    if (src && nb && src != c->results[k] &&
        (r = d->MemcpyDtoDAsync(c->results[k], src, nb, c->stream)))
      goto fail;
  }
  call = "cuMemcpyDtoHAsync of the run context";
  if ((r = d->MemcpyDtoHAsync(&c->hctx, c->ctx, sizeof c->hctx, c->stream))) goto fail;
  if ((r = d->StreamSynchronize(c->stream))) {
    /* Launches are asynchronous: a kernel's fault shows up here. */
    char *e = sm_cu_error(d, r, "cuStreamSynchronize", NULL);
    if (e && p->nkernels && !c->sync_each) {
      *err = sm_fmt("%s (a kernel failed: set SMELT_CUDA_SYNC=1 to find which)", e);
      sm_free(e);
    } else {
      *err = e;
    }
    return -1;
  }
  if (c->hctx.error) {
    size_t s = failed_kernel(p, c->hctx.bad_bound);
    *err = sm_fmt("%s: index %" PRId64 " is out of range for a dimension of size %" PRId64
                  " (kernel %s)",
                  s == SIZE_MAX ? "index check" : sm_plan_check_op(p, s), c->hctx.bad_index,
                  c->hctx.bad_bound, s == SIZE_MAX ? "?" : p->kernels[s].k->name);
    return -1;
  }
  return 0;
fail:
  *err = sm_cu_error(d, r, call, kname);
  /* Let whatever was queued finish before the caller reuses its memory
   * (our context copy, the host inputs). */
  d->StreamSynchronize(c->stream);
  return -1;
}

/* The device's compute capability x10 (smeltc --emit's default), 80 when
 * there is none. Weak only while runtime/cuda_build.c keeps its temporary
 * definition; drop the attribute when that goes. */
int sm_cuda_device_arch(void) {
  char *err = NULL;
  const sm_cuda_device *dev = sm_cu_device(NULL, &err);
  sm_free(err);
  return dev ? dev->cc_major * 10 + dev->cc_minor : 80;
}
