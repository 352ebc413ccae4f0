/* Params (persistent storage shared by the programs of a graph) and
 * programs (outputs plus updates), run for now by the reference
 * interpreter; compiled backends implement the same contract later. */
#include "dump.h"
#include "internal.h"
#include "safetensors.h"
#include "../runtime/cpu.h"
#include "../runtime/cuda.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- errors */

static char oom_msg[] = "out of memory";

static void set_error(char **slot, char *msg) {
  if (*slot != oom_msg) sm_free(*slot);
  *slot = msg ? msg : oom_msg;
}

static void clear(char **slot) {
  if (*slot != oom_msg) sm_free(*slot);
  *slot = NULL;
}

static int failv(char **slot, const char *fmt, va_list ap) {
  set_error(slot, sm_vfmt(fmt, ap));
  return -1;
}

/* ---------------------------------------------------------------- params */

typedef struct param_slot {
  uint32_t node;
  void *data;
  size_t nbytes;
  /* The copy in GPU memory for cuda programs (0: none yet). on_dev: it
   * holds the current value; host_stale: data is older (a cuda program
   * updated the param), so host readers download it first. */
  uint64_t dev;
  bool on_dev, host_stale;
} param_slot;

struct smelt_params {
  const smelt_graph *g;
  param_slot *slots;
  size_t n, cap;
  size_t scanned; /* graph nodes looked at so far */
  /* runs of default contexts on this store: the draw number of rand nodes
   * (atomic: runs that only read the params share the lock) */
  _Atomic uint64_t draws;
  /* Held by every run of a program on these params (write: it updates
   * them; read: it only reads them) and by the smelt_params_* calls. */
  pthread_rwlock_t lock;
  char *error;
};

__attribute__((format(printf, 2, 3))) static int pfail(smelt_params *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = failv(&p->error, fmt, ap);
  va_end(ap);
  return rc;
}

static void pclear(smelt_params *p) { clear(&p->error); }

static size_t node_bytes(const sm_node *n) {
  return (size_t)sm_numel(n->rank, n->shape) * smelt_dtype_size((smelt_dtype)n->dtype);
}

/* Fills slots [from, to) with their initializers' values (the interpreter
 * evaluates the param nodes without storage). */
static int init_slots(smelt_params *p, size_t from, size_t to) {
  if (from == to) return 0;
  smelt_interp *it = smelt_interp_new(p->g);
  uint32_t *roots = sm_malloc(sizeof *roots * (to - from));
  if (!it || !roots) {
    smelt_interp_free(it);
    sm_free(roots);
    return pfail(p, "out of memory");
  }
  for (size_t i = from; i < to; i++) roots[i - from] = p->slots[i].node;
  /* initializers do not depend on whatever failed in the graph */
  sm_run_opts opts = {NULL, true, 0, true};
  int rc = sm_interp_run_roots(it, to - from, roots, &opts);
  if (rc) rc = pfail(p, "initializing params: %s", smelt_interp_error(it));
  for (size_t i = from; i < to && !rc; i++) {
    sm_interp_read_root(it, i - from, p->slots[i].node, p->slots[i].data);
    p->slots[i].on_dev = p->slots[i].host_stale = false;
  }
  smelt_interp_free(it);
  sm_free(roots);
  return rc;
}

/* Picks up params added to the graph since the last call. On failure
 * nothing is added, so a later call tries again (no slot is ever left
 * uninitialized). A graph with a build error still has consistent nodes (a
 * failed builder adds none), so its params stay usable: trained weights
 * can still be read and saved. */
static int sync_params(smelt_params *p) {
  const smelt_graph *g = p->g;
  size_t first = p->n, scan0 = p->scanned;
  int rc = 0;
  for (; p->scanned < g->nnodes && !rc; p->scanned++) {
    const sm_node *n = &g->nodes[p->scanned];
    if (n->op != OP_PARAM) continue;
    if (p->n == p->cap) {
      size_t cap = p->cap ? 2 * p->cap : 16;
      param_slot *s = sm_realloc(p->slots, cap * sizeof *s);
      if (!s) {
        rc = pfail(p, "out of memory");
        break;
      }
      p->slots = s;
      p->cap = cap;
    }
    size_t nb = node_bytes(n);
    void *data = sm_malloc(nb ? nb : 1);
    if (!data) {
      /* name the param and its size: a huge shape is metadata until here */
      sm_buf b = {0};
      sm_buf_printf(&b, "%s", smelt_dtype_name((smelt_dtype)n->dtype));
      sm_buf_shape(&b, n->rank, n->shape);
      rc = pfail(p, "param \"%s\": out of memory (%s needs %zu bytes)", n->name,
                 b.data && !b.oom ? b.data : "?", nb);
      sm_buf_free(&b);
      break;
    }
    p->slots[p->n++] = (param_slot){(uint32_t)p->scanned, data, nb, 0, false, false};
  }
  if (!rc) rc = init_slots(p, first, p->n);
  if (rc) {
    for (size_t i = first; i < p->n; i++) sm_free(p->slots[i].data);
    p->n = first;
    p->scanned = scan0;
  }
  return rc;
}

smelt_params *smelt_params_new(const smelt_graph *g) {
  smelt_params *p = sm_calloc(1, sizeof *p);
  if (!p) return NULL;
  if (pthread_rwlock_init(&p->lock, NULL)) { /* out of memory or similar */
    sm_free(p);
    return NULL;
  }
  p->g = g;
  if (!g) {
    pfail(p, "the graph is NULL");
    return p;
  }
  sync_params(p);
  return p;
}

/* Brings a slot's host copy up to date after a cuda program updated it. */
static int slot_to_host(smelt_params *p, param_slot *s) {
  if (!s->host_stale) return 0;
  char *err = NULL;
  if (s->nbytes && sm_cuda_download(s->data, s->dev, s->nbytes, &err)) {
    pfail(p, "reading param \"%s\" back from the GPU: %s", p->g->nodes[s->node].name,
          err ? err : "out of memory");
    sm_free(err);
    return -1;
  }
  s->host_stale = false;
  return 0;
}

static int params_to_host(smelt_params *p) {
  for (size_t i = 0; i < p->n; i++)
    if (slot_to_host(p, &p->slots[i])) return -1;
  return 0;
}

void smelt_params_free(smelt_params *p) {
  if (!p) return;
  for (size_t i = 0; i < p->n; i++) {
    sm_free(p->slots[i].data);
    if (p->slots[i].dev) sm_cuda_release(p->slots[i].dev);
  }
  sm_free(p->slots);
  clear(&p->error);
  pthread_rwlock_destroy(&p->lock);
  sm_free(p);
}

const char *smelt_params_error(const smelt_params *p) {
  if (!p) return "params is NULL";
  return p->error;
}

static int params_reset(smelt_params *p) {
  if (!p) return -1;
  pclear(p);
  if (!p->g) return pfail(p, "the graph is NULL");
  if (sync_params(p)) return -1;
  return init_slots(p, 0, p->n);
}

/* The smelt_params_* calls hold the write lock, so that they may run while
 * other threads run programs on the same params (docs/api.md). */
int smelt_params_reset(smelt_params *p) {
  if (!p) return -1;
  pthread_rwlock_wrlock(&p->lock);
  int rc = params_reset(p);
  pthread_rwlock_unlock(&p->lock);
  return rc;
}

/* The slot of param `name`, with the error set when there is none. */
static param_slot *find_slot(smelt_params *p, const char *name, const char *what) {
  if (!p->g) {
    pfail(p, "the graph is NULL");
    return NULL;
  }
  if (sync_params(p)) return NULL;
  if (!name) {
    pfail(p, "%s: the param name is NULL", what);
    return NULL;
  }
  for (size_t i = 0; i < p->n; i++)
    if (strcmp(p->g->nodes[p->slots[i].node].name, name) == 0) return &p->slots[i];
  pfail(p, "%s: no param named \"%s\"", what, name);
  return NULL;
}

static int check_access(smelt_params *p, const param_slot *s, const char *what, smelt_dtype dt,
                        const void *data, size_t nbytes) {
  const sm_node *n = &p->g->nodes[s->node];
  sm_buf b = {0};
  sm_buf_printf(&b, "%s", smelt_dtype_name((smelt_dtype)n->dtype));
  sm_buf_shape(&b, n->rank, n->shape);
  const char *ty = b.data && !b.oom ? b.data : "?";
  int rc = 0;
  if (dt != n->dtype)
    rc = pfail(p, "%s \"%s\": dtype %s does not match the param's %s", what, n->name,
               smelt_dtype_name(dt), ty);
  else if (nbytes != s->nbytes)
    rc = pfail(p, "%s \"%s\": %zu bytes given, %s needs %zu", what, n->name, nbytes, ty,
               s->nbytes);
  else if (!data && nbytes)
    rc = pfail(p, "%s \"%s\": data is NULL", what, n->name);
  sm_buf_free(&b);
  return rc;
}

static int params_read(smelt_params *p, const char *name, smelt_dtype dt, void *data,
                       size_t nbytes) {
  if (!p) return -1;
  pclear(p);
  param_slot *s = find_slot(p, name, "read");
  if (!s || check_access(p, s, "read", dt, data, nbytes) || slot_to_host(p, s)) return -1;
  if (nbytes) memcpy(data, s->data, nbytes);
  return 0;
}

int smelt_params_read(smelt_params *p, const char *name, smelt_dtype dt, void *data,
                      size_t nbytes) {
  if (!p) return -1;
  pthread_rwlock_wrlock(&p->lock);
  int rc = params_read(p, name, dt, data, nbytes);
  pthread_rwlock_unlock(&p->lock);
  return rc;
}

static int params_write(smelt_params *p, const char *name, smelt_dtype dt,
                        const void *data, size_t nbytes) {
  if (!p) return -1;
  pclear(p);
  param_slot *s = find_slot(p, name, "write");
  if (!s || check_access(p, s, "write", dt, data, nbytes)) return -1;
  if (nbytes) memcpy(s->data, data, nbytes);
  s->on_dev = s->host_stale = false;
  return 0;
}

int smelt_params_write(smelt_params *p, const char *name, smelt_dtype dt, const void *data,
                       size_t nbytes) {
  if (!p) return -1;
  pthread_rwlock_wrlock(&p->lock);
  int rc = params_write(p, name, dt, data, nbytes);
  pthread_rwlock_unlock(&p->lock);
  return rc;
}

static int params_save(smelt_params *p, const char *path) {
  if (!p) return -1;
  pclear(p);
  if (!p->g) return pfail(p, "the graph is NULL");
  if (!path) return pfail(p, "save: the path is NULL");
  if (sync_params(p) || params_to_host(p)) return -1;
  sm_st_tensor *t = sm_calloc(p->n ? p->n : 1, sizeof *t);
  if (!t) return pfail(p, "out of memory");
  for (size_t i = 0; i < p->n; i++) {
    const sm_node *n = &p->g->nodes[p->slots[i].node];
    t[i].name = n->name;
    t[i].dtype = (smelt_dtype)n->dtype;
    t[i].rank = n->rank;
    memcpy(t[i].dims, n->shape, sizeof t[i].dims);
    t[i].data = p->slots[i].data;
    t[i].nbytes = p->slots[i].nbytes;
  }
  char err[512];
  int rc = sm_st_write_file(path, t, p->n, NULL, 0, err, sizeof err);
  sm_free(t);
  return rc ? pfail(p, "save: %s", err) : 0;
}

int smelt_params_save(smelt_params *p, const char *path) {
  if (!p) return -1;
  pthread_rwlock_wrlock(&p->lock);
  int rc = params_save(p, path);
  pthread_rwlock_unlock(&p->lock);
  return rc;
}

static int params_load(smelt_params *p, const char *path) {
  if (!p) return -1;
  pclear(p);
  if (!p->g) return pfail(p, "the graph is NULL");
  if (!path) return pfail(p, "load: the path is NULL");
  if (sync_params(p)) return -1;
  sm_st_file f = {0};
  char err[512];
  if (sm_st_read_file(path, &f, err, sizeof err)) return pfail(p, "load: %s", err);
  int rc = 0;
  /* Check everything before changing anything. */
  for (size_t i = 0; i < p->n && !rc; i++) {
    const sm_node *n = &p->g->nodes[p->slots[i].node];
    const sm_st_tensor *t = sm_st_find(&f, n->name);
    sm_buf want = {0}, got = {0};
    sm_buf_printf(&want, "%s", smelt_dtype_name((smelt_dtype)n->dtype));
    sm_buf_shape(&want, n->rank, n->shape);
    if (t) {
      sm_buf_printf(&got, "%s", smelt_dtype_name(t->dtype));
      sm_buf_shape(&got, t->rank, t->dims);
    }
    const char *w = want.data && !want.oom ? want.data : "?";
    const char *gt = got.data && !got.oom ? got.data : "?";
    if (!t)
      rc = pfail(p, "load: %s has no tensor \"%s\" (the param is %s)", path, n->name, w);
    else if (t->dtype != n->dtype || t->rank != n->rank ||
             memcmp(t->dims, n->shape, sizeof(int64_t) * (size_t)n->rank))
      rc = pfail(p, "load: %s: tensor \"%s\" is %s, the param is %s", path, n->name, gt, w);
    sm_buf_free(&want);
    sm_buf_free(&got);
  }
  for (size_t k = 0; k < f.ntensors && !rc; k++) {
    bool known = false;
    for (size_t i = 0; i < p->n && !known; i++)
      known = strcmp(p->g->nodes[p->slots[i].node].name, f.tensors[k].name) == 0;
    if (!known)
      rc = pfail(p, "load: %s holds \"%s\", which is not a param of this graph", path,
                 f.tensors[k].name);
  }
  for (size_t i = 0; i < p->n && !rc; i++) {
    const sm_st_tensor *t = sm_st_find(&f, p->g->nodes[p->slots[i].node].name);
    if (t->nbytes) memcpy(p->slots[i].data, t->data, t->nbytes);
    p->slots[i].on_dev = p->slots[i].host_stale = false;
  }
  sm_st_free(&f);
  return rc;
}

int smelt_params_load(smelt_params *p, const char *path) {
  if (!p) return -1;
  pthread_rwlock_wrlock(&p->lock);
  int rc = params_load(p, path);
  pthread_rwlock_unlock(&p->lock);
  return rc;
}

/* -------------------------------------------------------------- programs */

/* Everything one run changes: bindings, results, the cpu target's arena
 * and the draw counter. The compiled code beside it is only read, so
 * threads can run one program at once, each with its own context
 * (smelt_context_new). A program holds one itself, its default context,
 * behind smelt_program_bind/run/read. */
struct smelt_context {
  smelt_program *pr;
  smelt_interp *it;     /* the bindings, and the interp target's run state */
  void **out_data;      /* the outputs of the last run */
  void **upd_data;      /* per update: the new value, before it is applied */
  param_slot **targets; /* per update: the param it writes (resolved per run) */
  void *arena;          /* cpu target: the intermediates (NULL: the program's own) */
  uint64_t *dev_in;     /* cuda: per graph node, an input bound in device memory (0: none) */
  uint64_t draws;       /* own_draws: the draw number of the next run */
  bool own_draws;       /* false (default context): draws are counted per params store */
  bool have_run;
  char **error;         /* the message slot: the program's for its default context */
  char *own_error;
};

struct smelt_program {
  smelt_graph *g;
  smelt_params *params;
  smelt_interp *it;       /* the default context's bindings; NULL: setup failed */
  size_t nout, nupd;
  uint32_t *roots;        /* outputs, then update (assign) nodes */
  char **out_names;       /* copies */
  bool eval;         /* an evaluation program: no updates, no gradients, dropout off */
  smelt_target target;
  sm_cpu_program *cpu; /* the compiled code (cpu target) */
  sm_cuda_program *cuda; /* the compiled code (cuda target) */
  smelt_context ctx;   /* the default context */
  char *error;
};

__attribute__((format(printf, 2, 3))) static int prfail(smelt_program *pr, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = failv(&pr->error, fmt, ap);
  va_end(ap);
  return rc;
}

static void prclear(smelt_program *pr) { clear(&pr->error); }

__attribute__((format(printf, 2, 3))) static int cfail(smelt_context *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = failv(c->error, fmt, ap);
  va_end(ap);
  return rc;
}

static void free_run_data(smelt_context *c) {
  size_t nout = c->pr ? c->pr->nout : 0, nupd = c->pr ? c->pr->nupd : 0;
  for (size_t k = 0; c->out_data && k < nout; k++) sm_free(c->out_data[k]), c->out_data[k] = NULL;
  for (size_t k = 0; c->upd_data && k < nupd; k++) sm_free(c->upd_data[k]), c->upd_data[k] = NULL;
  c->have_run = false;
}

/* The per-run lists of a context of pr (its interpreter is the caller's).
 * Returns -1 when out of memory; ctx_release frees what was made. */
static int ctx_alloc(smelt_context *c, smelt_program *pr) {
  c->pr = pr;
  c->out_data = sm_calloc(pr->nout ? pr->nout : 1, sizeof *c->out_data);
  c->upd_data = sm_calloc(pr->nupd ? pr->nupd : 1, sizeof *c->upd_data);
  c->targets = sm_calloc(pr->nupd ? pr->nupd : 1, sizeof *c->targets);
  return c->out_data && c->upd_data && c->targets ? 0 : -1;
}

static void ctx_release(smelt_context *c) {
  free_run_data(c);
  sm_free(c->out_data);
  sm_free(c->upd_data);
  sm_free(c->targets);
  sm_free(c->arena);
  sm_free(c->dev_in);
  clear(&c->own_error);
}

void smelt_program_free(smelt_program *pr) {
  if (!pr) return;
  ctx_release(&pr->ctx);
  for (size_t k = 0; pr->out_names && k < pr->nout; k++) sm_free(pr->out_names[k]);
  sm_free(pr->out_names);
  sm_free(pr->roots);
  smelt_interp_free(pr->it);
  sm_cpu_free(pr->cpu);
  sm_cuda_free(pr->cuda);
  clear(&pr->error);
  sm_free(pr);
}

sm_cpu_program *sm_program_cpu(smelt_program *pr) { return pr ? pr->cpu : NULL; }

const char *smelt_program_error(const smelt_program *pr) {
  if (!pr) return "program is NULL";
  return pr->error;
}

static int setup_lists(smelt_program *pr, int noutputs, const char *const *outputs,
                       int nupdates, const smelt_node *updates) {
  smelt_graph *g = pr->g;
  if (!g) return prfail(pr, "the graph is NULL");
  if (!pr->params) return prfail(pr, "params is NULL");
  if (pr->params->g != g) return prfail(pr, "the params belong to another graph");
  if (smelt_graph_error(g)) return prfail(pr, "the graph has an error: %s", smelt_graph_error(g));
  if (noutputs < 0 || nupdates < 0 || (noutputs && !outputs) || (nupdates && !updates))
    return prfail(pr,
                  "program: bad output or update list (noutputs %d, outputs %s; nupdates %d, "
                  "updates %s)",
                  noutputs, outputs ? "given" : "NULL", nupdates, updates ? "given" : "NULL");
  pr->nout = (size_t)noutputs;
  pr->nupd = (size_t)nupdates;
  size_t nroots = pr->nout + pr->nupd;
  pr->roots = sm_malloc(sizeof *pr->roots * (nroots ? nroots : 1));
  pr->out_names = sm_calloc(pr->nout ? pr->nout : 1, sizeof *pr->out_names);
  pr->ctx.error = &pr->error; /* the default context's messages are the program's */
  int lists = ctx_alloc(&pr->ctx, pr);
  pr->it = smelt_interp_new(g);
  if (!pr->roots || !pr->out_names || lists || !pr->it) return prfail(pr, "out of memory");
  for (size_t k = 0; k < pr->nout; k++) {
    const char *name = outputs[k];
    size_t j = 0;
    while (name && j < g->noutputs && strcmp(g->outputs[j].name, name) != 0) j++;
    if (!name || j == g->noutputs)
      return prfail(pr, "program: unknown output \"%s\" (name it with smelt_output first)",
                    name ? name : "(null)");
    for (size_t m = 0; m < k; m++)
      if (strcmp(pr->out_names[m], name) == 0)
        return prfail(pr, "program: output \"%s\" is listed twice", name);
    pr->roots[k] = g->outputs[j].node;
    if (!(pr->out_names[k] = sm_strdup(name))) return prfail(pr, "out of memory");
  }
  for (size_t k = 0; k < pr->nupd; k++) {
    const sm_node *u = sm_get(g, updates[k]);
    if (!u) return prfail(pr, "program: update %zu is an invalid handle", k);
    if (u->op != OP_ASSIGN) {
      char id[128];
      sm_node_id(g, u, id, sizeof id);
      return prfail(pr, "program: update %zu (%s, a %s node) is not an assign", k, id,
                    sm_ops[u->op].name);
    }
    for (size_t m = 0; m < k; m++)
      if (g->nodes[pr->roots[pr->nout + m]].inputs[0] == u->inputs[0])
        return prfail(pr, "program: param \"%s\" is updated twice",
                      g->nodes[u->inputs[0]].name);
    pr->roots[pr->nout + k] = updates[k].index - 1;
  }
  return 0;
}

/* Sets the program up; on failure drops the interpreter, so that every
 * later call reports the error (check_program) instead of running. */
static int setup(smelt_program *pr, int noutputs, const char *const *outputs, int nupdates,
                 const smelt_node *updates) {
  int rc = setup_lists(pr, noutputs, outputs, nupdates, updates);
  if (rc) {
    smelt_interp_free(pr->it);
    pr->it = NULL;
  }
  return rc;
}

/* ------------------------------------------------------------- targets */

const char *smelt_target_name(smelt_target t) {
  switch (t) {
  case SMELT_TARGET_AUTO: return "auto";
  case SMELT_TARGET_INTERP: return "interp";
  case SMELT_TARGET_CPU: return "cpu";
  case SMELT_TARGET_CUDA: return "cuda";
  }
  return "unknown";
}

static const char *env_or_null(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

/* $SMELT_CACHE_DIR, else $XDG_CACHE_HOME/smelt, else $HOME/.cache/smelt
 * (NULL without any of them). Resolved once: the string lives as long as
 * the process, as the options' other strings do. */
static char cache_path[4096];
static const char *cache_dir_value;

static void find_cache_dir(void) {
  const char *dir = env_or_null("SMELT_CACHE_DIR");
  if (dir) {
    cache_dir_value = dir;
    return;
  }
  const char *xdg = env_or_null("XDG_CACHE_HOME"), *home = env_or_null("HOME");
  int n = -1;
  if (xdg) n = snprintf(cache_path, sizeof cache_path, "%s/smelt", xdg);
  else if (home) n = snprintf(cache_path, sizeof cache_path, "%s/.cache/smelt", home);
  if (n > 0 && (size_t)n < sizeof cache_path) cache_dir_value = cache_path;
}

static const char *default_cache_dir(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, find_cache_dir);
  return cache_dir_value;
}

smelt_compile_options smelt_compile_defaults(void) {
  smelt_compile_options o;
  memset(&o, 0, sizeof o);
  o.target = SMELT_TARGET_AUTO;
  o.opt_level = 3;
  o.dump = env_or_null("SMELT_DUMP");
  o.dump_dir = env_or_null("SMELT_DUMP_DIR");
  const char *off = env_or_null("SMELT_CACHE");
  if (!off || strcmp(off, "0") != 0) o.cache_dir = default_cache_dir();
  o.cuda_arch = env_or_null("SMELT_CUDA_ARCH");
  return o;
}

/* The target a program gets: AUTO follows $SMELT_TARGET, else the best
 * one built. Returns -1 with the error set for a target that cannot run. */
static int resolve_target(smelt_program *pr, smelt_target want) {
  if (want == SMELT_TARGET_AUTO) {
    const char *env = env_or_null("SMELT_TARGET");
    if (!env) want = sm_cpu_available() ? SMELT_TARGET_CPU : SMELT_TARGET_INTERP;
    else if (strcmp(env, "cpu") == 0) want = SMELT_TARGET_CPU;
    else if (strcmp(env, "interp") == 0) want = SMELT_TARGET_INTERP;
    else if (strcmp(env, "cuda") == 0) want = SMELT_TARGET_CUDA;
    else
      return prfail(pr, "SMELT_TARGET=\"%s\" is not a target (cpu, interp or cuda)", env);
  }
  if (want == SMELT_TARGET_CPU && !sm_cpu_available())
    return prfail(pr, "the cpu target needs LLVM, and this libsmelt was built without it "
                      "(use the interp target, or rebuild with -Dllvm=enabled)");
  if (want == SMELT_TARGET_CUDA && !sm_cuda_available())
    return prfail(pr, "the cuda target needs NVRTC, and this libsmelt was built without it "
                      "(install CUDA or set CUDA_HOME, then rebuild; see docs/cuda.md)");
  if (want != SMELT_TARGET_INTERP && want != SMELT_TARGET_CPU && want != SMELT_TARGET_CUDA)
    return prfail(pr, "unknown target %d", (int)want);
  pr->target = want;
  return 0;
}

/* Resolves the target and compiles; on failure drops the interpreter, so
 * that every later call reports the error. */
static void compile(smelt_program *pr, const smelt_compile_options *options) {
  smelt_compile_options o = options ? *options : smelt_compile_defaults();
  int rc = resolve_target(pr, o.target);
  if (!rc && pr->target == SMELT_TARGET_INTERP) {
    /* The interpreter runs the graph as built: graph is its one stage. The
     * dump options are checked as on the other targets, so that a typo
     * does not wait for a change of target to show. */
    sm_dump dump;
    char *err = NULL;
    if (sm_dump_init(&dump, o.dump, o.dump_dir, &err)) {
      rc = prfail(pr, "%s", err ? err : "out of memory");
      sm_free(err);
    } else if (sm_dump_wants(&dump, SM_DUMP_GRAPH)) {
      char *t = smelt_graph_print(pr->g);
      sm_dump_write(&dump, SM_DUMP_GRAPH, NULL, t);
      smelt_free(t);
    }
  } else if (!rc && pr->target == SMELT_TARGET_CPU) {
    char *err = NULL;
    pr->cpu = sm_cpu_compile(pr->g, pr->nout + pr->nupd, pr->roots, pr->nout, &o, &err);
    if (!pr->cpu) rc = prfail(pr, "%s", err ? err : "out of memory");
    sm_free(err);
  } else if (!rc && pr->target == SMELT_TARGET_CUDA) {
    char *err = NULL;
    pr->cuda = sm_cuda_compile(pr->g, pr->nout + pr->nupd, pr->roots, pr->nout, &o, &err);
    pr->ctx.dev_in = sm_calloc(pr->g->nnodes ? pr->g->nnodes : 1, sizeof *pr->ctx.dev_in);
    if (!pr->cuda) rc = prfail(pr, "%s", err ? err : "out of memory");
    else if (!pr->ctx.dev_in) rc = prfail(pr, "out of memory");
    sm_free(err);
  }
  if (rc) {
    smelt_interp_free(pr->it);
    pr->it = NULL;
  }
}

smelt_program *smelt_program_compile(smelt_graph *g, smelt_params *params, int noutputs,
                                     const char *const *outputs, int nupdates,
                                     const smelt_node *updates,
                                     const smelt_compile_options *options) {
  smelt_program *pr = sm_calloc(1, sizeof *pr);
  if (!pr) return NULL;
  pr->g = g;
  pr->params = params;
  if (setup(pr, noutputs, outputs, nupdates, updates) == 0) compile(pr, options);
  return pr;
}

smelt_program *smelt_program_new(smelt_graph *g, smelt_params *params, int noutputs,
                                 const char *const *outputs, int nupdates,
                                 const smelt_node *updates) {
  return smelt_program_compile(g, params, noutputs, outputs, nupdates, updates, NULL);
}

int smelt_program_get_stats(const smelt_program *pr, smelt_program_stats *stats) {
  if (!pr || !stats || !pr->it) return -1;
  memset(stats, 0, sizeof *stats);
  stats->target = pr->target;
  if (pr->cpu) sm_cpu_stats(pr->cpu, stats);
  if (pr->cuda) sm_cuda_stats(pr->cuda, stats);
  return 0;
}

int sm_uses_gradient(const smelt_graph *g, uint32_t root, uint32_t *culprit) {
  bool *seen = sm_calloc(root + 1, sizeof *seen);
  if (!seen) return -1;
  seen[root] = true;
  bool found = false;
  for (uint32_t i = root + 1; i-- > 0 && !found;) {
    if (!seen[i]) continue;
    const sm_node *n = &g->nodes[i];
    if (n->flags & SM_NODE_GRAD) {
      found = true;
      *culprit = i;
    }
    for (uint32_t k = 0; k < n->ninputs; k++) seen[n->inputs[k]] = true;
  }
  sm_free(seen);
  return found ? 1 : 0;
}

smelt_program *smelt_program_new_eval(smelt_graph *g, smelt_params *params, int noutputs,
                                      const char *const *outputs) {
  return smelt_program_compile_eval(g, params, noutputs, outputs, NULL);
}

smelt_program *smelt_program_compile_eval(smelt_graph *g, smelt_params *params, int noutputs,
                                          const char *const *outputs,
                                          const smelt_compile_options *options) {
  smelt_program *pr = sm_calloc(1, sizeof *pr);
  if (!pr) return NULL;
  pr->g = g;
  pr->params = params;
  pr->eval = true;
  if (setup(pr, noutputs, outputs, 0, NULL)) return pr;
  for (size_t k = 0; k < pr->nout; k++) {
    uint32_t culprit;
    int used = sm_uses_gradient(g, pr->roots[k], &culprit);
    if (used < 0) {
      prfail(pr, "out of memory");
      smelt_interp_free(pr->it);
      pr->it = NULL;
      return pr;
    }
    if (used) {
      char id[128];
      sm_node_id(g, &g->nodes[culprit], id, sizeof id);
      prfail(pr,
             "evaluation program: output \"%s\" depends on %s of a backward graph (evaluation "
             "programs compute no gradients; use smelt_program_new)",
             pr->out_names[k], id);
      smelt_interp_free(pr->it);
      pr->it = NULL;
      return pr;
    }
  }
  compile(pr, options);
  return pr;
}

/* A program that failed to set up reports that on every call. */
static int check_program(smelt_program *pr) {
  if (pr->it && pr->roots) {
    prclear(pr);
    return 0;
  }
  if (!pr->error) prfail(pr, "the program could not be created");
  return -1;
}

/* The program's default context (its bindings are the program's). */
static smelt_context *default_ctx(smelt_program *pr) {
  pr->ctx.it = pr->it;
  return &pr->ctx;
}

static int ctx_bind(smelt_context *c, const char *name, smelt_dtype dt, int rank,
                    const int64_t *dims, const void *data, size_t nbytes) {
  if (smelt_interp_bind(c->it, name, dt, rank, dims, data, nbytes))
    return cfail(c, "%s", smelt_interp_error(c->it));
  if (c->dev_in) c->dev_in[smelt_find(c->pr->g, name).index - 1] = 0;
  return 0;
}

int smelt_program_bind(smelt_program *pr, const char *name, smelt_dtype dt, int rank,
                       const int64_t *dims, const void *data, size_t nbytes) {
  if (!pr || check_program(pr)) return -1;
  return ctx_bind(default_ctx(pr), name, dt, rank, dims, data, nbytes);
}

int smelt_program_bind_device(smelt_program *pr, const char *name, smelt_dtype dt, int rank,
                              const int64_t *dims, uint64_t device_ptr, size_t nbytes) {
  if (!pr || check_program(pr)) return -1;
  if (!name) return prfail(pr, "bind_device: the input name is NULL");
  if (!pr->cuda)
    return prfail(pr, "bind_device \"%s\": the program runs on the %s target; device memory is "
                      "for the cuda target",
                  name, smelt_target_name(pr->target));
  /* the interpreter's checks of name, dtype, shape and size; the device
   * address stands in for the data it never reads */
  if (smelt_interp_bind(pr->it, name, dt, rank, dims, (const void *)(uintptr_t)device_ptr,
                        nbytes))
    return prfail(pr, "%s", smelt_interp_error(pr->it));
  pr->ctx.dev_in[smelt_find(pr->g, name).index - 1] = device_ptr;
  return 0;
}

/* The draw number of this run: the context's own count, or (the default
 * context) the params store's, so that programs sharing it (or a program
 * made anew) never repeat a dropout mask. */
static uint64_t next_draw(smelt_context *c) {
  return c->own_draws ? c->draws++ : c->pr->params->draws++; /* the latter is atomic */
}

/* Commits the new values of the updated params (computed into upd_data). */
static void apply_updates(smelt_context *c, bool keep) {
  for (size_t k = 0; k < c->pr->nupd; k++) {
    memcpy(c->targets[k]->data, c->upd_data[k], c->targets[k]->nbytes);
    c->targets[k]->on_dev = false;
    if (!keep) {
      sm_free(c->upd_data[k]);
      c->upd_data[k] = NULL;
    }
  }
  c->have_run = true;
}

/* A run of compiled code: results go to fresh buffers first (outputs may
 * alias params, and every update sees the values from before the run). */
static int run_compiled(smelt_context *c, const void **pdata) {
  smelt_program *pr = c->pr;
  const smelt_graph *g = pr->g;
  size_t nroots = pr->nout + pr->nupd;
  const void **inputs = sm_calloc(g->nnodes ? g->nnodes : 1, sizeof *inputs);
  void **results = sm_calloc(nroots ? nroots : 1, sizeof *results);
  int rc = 0;
  if (!inputs || !results) rc = cfail(c, "out of memory");
  for (size_t i = 0; i < g->nnodes && !rc; i++)
    if (g->nodes[i].op == OP_INPUT) inputs[i] = sm_interp_bound(c->it, (uint32_t)i);
  for (size_t k = 0; k < nroots && !rc; k++) {
    void **slot = k < pr->nout ? &c->out_data[k] : &c->upd_data[k - pr->nout];
    if (!*slot) {
      size_t nb = node_bytes(&g->nodes[pr->roots[k]]);
      *slot = sm_malloc(nb ? nb : 1);
    }
    if (!*slot) rc = cfail(c, "out of memory");
    results[k] = *slot;
  }
  if (!rc) {
    char *err = NULL;
    if (sm_cpu_run(pr->cpu, c->arena, inputs, pdata, !pr->eval, next_draw(c), results, &err))
      rc = cfail(c, "%s", err ? err : "out of memory");
    sm_free(err);
  }
  sm_free(inputs);
  sm_free(results);
  if (rc) return rc; /* have_run stays false; the buffers are reused */
  apply_updates(c, true);
  return 0;
}

/* A run on the GPU (the default context only): params move to device
 * memory when their copy there is not current; results stay on the device
 * until read; updates are copied to the params' device copies after every
 * kernel has run (each sees the values from before the run). */
static int run_cuda(smelt_context *c) {
  smelt_program *pr = c->pr;
  smelt_params *p = pr->params;
  const smelt_graph *g = pr->g;
  const void **inputs = sm_calloc(g->nnodes ? g->nnodes : 1, sizeof *inputs);
  uint64_t *pdev = sm_calloc(g->nnodes ? g->nnodes : 1, sizeof *pdev);
  char *err = NULL;
  int rc = 0;
  if (!inputs || !pdev) rc = cfail(c, "out of memory");
  for (size_t i = 0; i < p->n && !rc; i++) {
    param_slot *s = &p->slots[i];
    if (!s->on_dev && s->nbytes) {
      if ((!s->dev && sm_cuda_alloc(s->nbytes, &s->dev, &err)) ||
          sm_cuda_upload(s->dev, s->data, s->nbytes, &err))
        rc = cfail(c, "param \"%s\" to the GPU: %s", g->nodes[s->node].name,
                   err ? err : "out of memory");
      else s->on_dev = true;
    }
    pdev[s->node] = s->dev;
  }
  for (size_t i = 0; i < g->nnodes && !rc; i++)
    if (g->nodes[i].op == OP_INPUT && !c->dev_in[i]) inputs[i] = sm_interp_bound(c->it, (uint32_t)i);
  if (!rc && sm_cuda_run(pr->cuda, inputs, c->dev_in, pdev, !pr->eval, next_draw(c), &err))
    rc = cfail(c, "%s", err ? err : "out of memory");
  for (size_t k = 0; k < pr->nupd && !rc; k++) {
    param_slot *t = c->targets[k];
    if (t->nbytes && sm_cuda_copy(t->dev, sm_cuda_result(pr->cuda, pr->nout + k), t->nbytes, &err))
      rc = cfail(c, "updating param \"%s\" on the GPU: %s", g->nodes[t->node].name,
                 err ? err : "out of memory");
    else t->host_stale = true;
  }
  sm_free(err);
  sm_free(inputs);
  sm_free(pdev);
  c->have_run = rc == 0;
  return rc;
}

/* One run, with the params' lock held (ctx_run). */
static int run_locked(smelt_context *c) {
  smelt_program *pr = c->pr;
  smelt_params *p = pr->params;
  const smelt_graph *g = pr->g;
  if (sync_params(p)) return cfail(c, "%s", p->error);
  /* Each param node reads its storage. */
  const void **pdata = sm_calloc(g->nnodes ? g->nnodes : 1, sizeof *pdata);
  if (!pdata) return cfail(c, "out of memory");
  for (size_t i = 0; i < p->n; i++) pdata[p->slots[i].node] = p->slots[i].data;
  for (size_t k = 0; k < pr->nupd; k++) {
    uint32_t target = g->nodes[pr->roots[pr->nout + k]].inputs[0];
    c->targets[k] = NULL;
    for (size_t i = 0; i < p->n; i++)
      if (p->slots[i].node == target) c->targets[k] = &p->slots[i];
  }
  if (pr->cuda) {
    sm_free(pdata);
    return run_cuda(c);
  }
  if (params_to_host(p)) {
    sm_free(pdata);
    return cfail(c, "%s", p->error);
  }
  if (pr->cpu) {
    int rc = run_compiled(c, pdata);
    sm_free(pdata);
    return rc;
  }
  sm_run_opts opts = {(const void *const *)pdata, !pr->eval, next_draw(c), false};
  int rc = sm_interp_run_roots(c->it, pr->nout + pr->nupd, pr->roots, &opts);
  sm_free(pdata);
  if (rc) return cfail(c, "%s", smelt_interp_error(c->it));
  /* Copy everything out first: outputs may alias param storage, and every
   * update must see the values from before the run. */
  for (size_t k = 0; k < pr->nout + pr->nupd; k++) {
    const sm_node *n = &g->nodes[pr->roots[k]];
    size_t nb = node_bytes(n);
    void *buf = sm_malloc(nb ? nb : 1);
    if (!buf) {
      free_run_data(c);
      return cfail(c, "out of memory");
    }
    sm_interp_read_root(c->it, k, pr->roots[k], buf);
    if (k < pr->nout) c->out_data[k] = buf;
    else c->upd_data[k - pr->nout] = buf;
  }
  apply_updates(c, false);
  return 0;
}

/* True when a run must hold the params' write lock although it updates
 * nothing: params added to the graph since are to be picked up, or a
 * cuda program left newer values on the GPU than in host memory. */
static bool params_need_write(const smelt_params *p) {
  if (p->scanned < p->g->nnodes) return true;
  for (size_t i = 0; i < p->n; i++)
    if (p->slots[i].host_stale) return true;
  return false;
}

/* A run holds its params' lock throughout: the write lock when it updates
 * params (and on the cuda target, which moves them to and from the GPU),
 * else the read lock. So runs of programs without updates share the
 * params, and no run ever sees half-applied updates. */
static int ctx_run(smelt_context *c) {
  smelt_program *pr = c->pr;
  /* compiled programs keep their result buffers from run to run (fresh
   * pages on every run would cost more than small kernels) */
  if (pr->cpu) c->have_run = false;
  else free_run_data(c);
  smelt_params *p = pr->params;
  bool write = pr->nupd > 0 || pr->cuda;
  if (!write) {
    pthread_rwlock_rdlock(&p->lock);
    if (params_need_write(p)) {
      pthread_rwlock_unlock(&p->lock);
      write = true;
    }
  }
  if (write) pthread_rwlock_wrlock(&p->lock);
  int rc = run_locked(c);
  pthread_rwlock_unlock(&p->lock);
  return rc;
}

int smelt_program_run(smelt_program *pr) {
  if (!pr || check_program(pr)) return -1;
  return ctx_run(default_ctx(pr));
}

static int ctx_read(smelt_context *c, const char *name, smelt_dtype dt, void *data,
                    size_t nbytes) {
  smelt_program *pr = c->pr;
  if (!name) return cfail(c, "read: the output name is NULL");
  size_t k = 0;
  while (k < pr->nout && strcmp(pr->out_names[k], name) != 0) k++;
  if (k == pr->nout) return cfail(c, "read: \"%s\" is not an output of this program", name);
  if (!c->have_run)
    return cfail(c, "read \"%s\": no results yet (%s has not succeeded)", name,
                 c->own_draws ? "smelt_context_run" : "smelt_program_run");
  const sm_node *n = &pr->g->nodes[pr->roots[k]];
  size_t nb = node_bytes(n);
  if (dt != n->dtype)
    return cfail(c, "read \"%s\": dtype %s does not match the output's %s", name,
                 smelt_dtype_name(dt), smelt_dtype_name((smelt_dtype)n->dtype));
  if (nbytes != nb)
    return cfail(c, "read \"%s\": %zu bytes given, the output needs %zu", name, nbytes, nb);
  if (!data && nb) return cfail(c, "read \"%s\": data is NULL", name);
  if (nb && pr->cuda) {
    char *err = NULL;
    if (sm_cuda_download(data, sm_cuda_result(pr->cuda, k), nb, &err)) {
      cfail(c, "read \"%s\": %s", name, err ? err : "out of memory");
      sm_free(err);
      return -1;
    }
    return 0;
  }
  if (nb) memcpy(data, c->out_data[k], nb);
  return 0;
}

int smelt_program_read(smelt_program *pr, const char *name, smelt_dtype dt, void *data,
                       size_t nbytes) {
  if (!pr || check_program(pr)) return -1;
  return ctx_read(default_ctx(pr), name, dt, data, nbytes);
}

int smelt_program_read_device(smelt_program *pr, const char *name, smelt_dtype dt,
                              uint64_t device_ptr, size_t nbytes) {
  if (!pr || check_program(pr)) return -1;
  if (!name) return prfail(pr, "read_device: the output name is NULL");
  if (!pr->cuda)
    return prfail(pr, "read_device \"%s\": the program runs on the %s target; device memory is "
                      "for the cuda target",
                  name, smelt_target_name(pr->target));
  size_t k = 0;
  while (k < pr->nout && strcmp(pr->out_names[k], name) != 0) k++;
  if (k == pr->nout)
    return prfail(pr, "read_device: \"%s\" is not an output of this program", name);
  if (!pr->ctx.have_run)
    return prfail(pr, "read_device \"%s\": no results yet (smelt_program_run has not succeeded)",
                  name);
  const sm_node *n = &pr->g->nodes[pr->roots[k]];
  size_t nb = node_bytes(n);
  if (dt != n->dtype)
    return prfail(pr, "read_device \"%s\": dtype %s does not match the output's %s", name,
                  smelt_dtype_name(dt), smelt_dtype_name((smelt_dtype)n->dtype));
  if (nbytes != nb)
    return prfail(pr, "read_device \"%s\": %zu bytes given, the output needs %zu", name, nbytes,
                  nb);
  if (!device_ptr && nb) return prfail(pr, "read_device \"%s\": the device address is 0", name);
  char *err = NULL;
  if (nb && sm_cuda_copy(device_ptr, sm_cuda_result(pr->cuda, k), nb, &err)) {
    prfail(pr, "read_device \"%s\": %s", name, err ? err : "out of memory");
    sm_free(err);
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------------- run contexts */

/* Why a context cannot run: its program is NULL or failed, or runs on the
 * cuda target. Clears the last message otherwise. */
static int context_check(smelt_context *c) {
  clear(&c->own_error);
  smelt_program *pr = c->pr;
  if (!pr) return cfail(c, "context: the program is NULL");
  if (!pr->it || !pr->roots)
    return cfail(c, "context: the program could not be created: %s",
                 pr->error ? pr->error : "unknown error");
  if (pr->cuda)
    return cfail(c, "context: run contexts are not supported on the cuda target (its results "
                    "and arena live in the program's device memory); run the program itself "
                    "(smelt_program_run), from one thread at a time");
  return 0;
}

smelt_context *smelt_context_new(smelt_program *pr) {
  smelt_context *c = sm_calloc(1, sizeof *c);
  if (!c) return NULL;
  c->pr = pr;
  c->error = &c->own_error;
  c->own_draws = true;
  /* a context of a program that cannot run reports why on every call */
  if (context_check(c)) {
    clear(&c->own_error);
    return c;
  }
  size_t arena = pr->cpu ? sm_cpu_arena_bytes(pr->cpu) : 0;
  c->it = smelt_interp_new(pr->g);
  if (!c->it || ctx_alloc(c, pr) || (arena && !(c->arena = sm_malloc(arena)))) {
    smelt_context_free(c);
    return NULL;
  }
  return c;
}

void smelt_context_free(smelt_context *c) {
  if (!c) return;
  ctx_release(c);
  smelt_interp_free(c->it);
  sm_free(c);
}

const char *smelt_context_error(const smelt_context *c) {
  if (!c) return "context is NULL";
  return c->own_error;
}

int smelt_context_bind(smelt_context *c, const char *name, smelt_dtype dt, int rank,
                       const int64_t *dims, const void *data, size_t nbytes) {
  if (!c || context_check(c)) return -1;
  return ctx_bind(c, name, dt, rank, dims, data, nbytes);
}

int smelt_context_run(smelt_context *c) {
  if (!c || context_check(c)) return -1;
  return ctx_run(c);
}

int smelt_context_read(smelt_context *c, const char *name, smelt_dtype dt, void *data,
                       size_t nbytes) {
  if (!c || context_check(c)) return -1;
  return ctx_read(c, name, dt, data, nbytes);
}

int smelt_context_set_draw(smelt_context *c, uint64_t draw) {
  if (!c || context_check(c)) return -1;
  c->draws = draw;
  return 0;
}

uint64_t smelt_context_draw(const smelt_context *c) { return c ? c->draws : 0; }

/* ------------------------------------------------------ declared programs */

smelt_program *smelt_program_compile_named(smelt_graph *g, smelt_params *params,
                                           const char *name,
                                           const smelt_compile_options *options) {
  long i = smelt_graph_find_program(g, name);
  if (i < 0) {
    /* a program that only reports why it could not be made */
    smelt_program *pr = sm_calloc(1, sizeof *pr);
    if (!pr) return NULL;
    pr->g = g;
    pr->params = params;
    if (!g) {
      prfail(pr, "the graph is NULL");
      return pr;
    }
    if (!name) {
      prfail(pr, "compile_named: the program name is NULL");
      return pr;
    }
    sm_buf b = {0};
    for (size_t k = 0; k < g->nprograms; k++)
      sm_buf_printf(&b, "%s%s", k ? ", " : "declared: ", g->programs[k].name);
    if (!g->nprograms) sm_buf_puts(&b, "the graph declares no programs");
    prfail(pr, "no program named \"%s\" (%s)", name, b.oom || !b.data ? "?" : b.data);
    sm_buf_free(&b);
    return pr;
  }
  smelt_program_decl d;
  smelt_graph_program(g, (size_t)i, &d);
  smelt_program *pr =
      d.eval ? smelt_program_compile_eval(g, params, d.noutputs, d.outputs, options)
             : smelt_program_compile(g, params, d.noutputs, d.outputs, d.nupdates, d.updates,
                                     options);
  /* name the program in its error */
  if (pr && pr->error && pr->error != oom_msg) {
    char *m = sm_fmt("program \"%s\": %s", d.name, pr->error);
    if (m) set_error(&pr->error, m);
  }
  return pr;
}
