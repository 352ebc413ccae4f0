/* Ahead-of-time compilation: every program a graph declares, plus the
 * params' initializer, planned as for the JIT (runtime/plan.c), then
 * written as one object (codegen/llvm_aot.c) and one C header
 * (src/aot_header.c). docs/aot.md is the user's view. */
#include "aot.h"

#include "../runtime/cpu.h"
#include "safetensors.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

smelt_aot_options smelt_aot_defaults(void) {
  smelt_aot_options o;
  memset(&o, 0, sizeof o);
  o.prefix = "model";
  o.opt_level = 3;
  smelt_compile_options c = smelt_compile_defaults();
  o.dump = c.dump;
  o.dump_dir = c.dump_dir;
  return o;
}

/* ------------------------------------------------------------- names */

/* Names the header gives a program's function after the prefix: a
 * program may not take one. */
static const char *const reserved[] = {"ctx", "tensor_info", "params_info", "inputs_info",
                                       "outputs_info", "params_init", "params_load",
                                       "params_save", "task", NULL};

static bool is_identifier(const char *s) {
  if (!s || !(isalpha((unsigned char)*s) || *s == '_')) return false;
  for (; *s; s++)
    if (!(isalnum((unsigned char)*s) || *s == '_')) return false;
  return true;
}

/* Keywords of C and C++ (the header is valid C++ too): a name that is
 * one gets a trailing '_'. */
static const char *const keywords[] = {
    "alignas", "alignof", "and", "asm", "auto", "bool", "break", "case", "catch", "char",
    "class", "const", "constexpr", "continue", "default", "delete", "do", "double", "else",
    "enum", "explicit", "export", "extern", "false", "float", "for", "friend", "goto", "if",
    "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not", "nullptr",
    "operator", "or", "private", "protected", "public", "register", "restrict", "return",
    "short", "signed", "sizeof", "static", "struct", "switch", "template", "this", "throw",
    "true", "try", "typedef", "typeid", "typename", "union", "unsigned", "using", "virtual",
    "void", "volatile", "while", "xor", NULL};

/* A C identifier made of name: other characters become '_', a name
 * starting with a digit gets a leading '_', a keyword a trailing one. */
static char *c_name(const char *name) {
  for (const char *const *k = keywords; *k; k++)
    if (strcmp(name, *k) == 0) return sm_fmt("%s_", name);
  size_t n = strlen(name);
  char *s = sm_malloc(n + 2);
  if (!s) return NULL;
  size_t o = 0;
  if (!n || isdigit((unsigned char)name[0])) s[o++] = '_';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    s[o++] = c < 128 && (isalnum(c) || c == '_') ? (char)c : '_';
  }
  s[o] = 0;
  return s;
}

/* C names for the tensors of one kind, made unique (case-insensitively:
 * macros use them in upper case) by a suffix _2, _3, ... Returns 0 or -1
 * when out of memory. */
static int name_tensors(sm_aot_tensor *t, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char *base = c_name(t[i].name);
    if (!base) return -1;
    char *s = base;
    for (int k = 2;; k++) {
      bool taken = false;
      for (size_t j = 0; j < i && !taken; j++) taken = strcasecmp(t[j].cname, s) == 0;
      if (!taken) break;
      if (s != base) sm_free(s);
      s = sm_fmt("%s_%d", base, k);
      if (!s) {
        sm_free(base);
        return -1;
      }
    }
    if (s != base) sm_free(base);
    t[i].cname = s;
  }
  return 0;
}

/* ------------------------------------------------------------- model */

typedef struct aot_job {
  const smelt_graph *g;
  smelt_aot_options o;
  sm_aot_model m;
  sm_dump dump;
  char *err;
} aot_job;

__attribute__((format(printf, 2, 3))) static int jfail(aot_job *j, const char *fmt, ...) {
  if (j->err) return -1;
  va_list ap;
  va_start(ap, fmt);
  j->err = sm_vfmt(fmt, ap);
  va_end(ap);
  return -1;
}

static void tensor_of(sm_aot_tensor *t, const smelt_graph *g, uint32_t node, const char *name) {
  const sm_node *n = &g->nodes[node];
  t->name = name;
  t->node = node;
  t->dtype = (smelt_dtype)n->dtype;
  t->rank = n->rank;
  memcpy(t->shape, n->shape, sizeof(int64_t) * (size_t)n->rank);
  t->bytes = sm_plan_node_bytes(n);
}

static void free_model(sm_aot_model *m) {
  for (size_t i = 0; i < m->nparams; i++) sm_free(m->params[i].cname);
  for (size_t i = 0; i < m->ninputs; i++) sm_free(m->inputs[i].cname);
  for (size_t i = 0; i < m->noutputs; i++) sm_free(m->outputs[i].cname);
  sm_free(m->params);
  sm_free(m->inputs);
  sm_free(m->outputs);
  for (size_t i = 0; m->programs && i < m->nprograms; i++) {
    sm_aot_program *p = &m->programs[i];
    sm_free(p->cname);
    sm_free(p->inputs);
    sm_free(p->outputs);
    sm_free(p->updates);
    sm_plan_free(p->plan);
    smelt_graph_free(p->own);
  }
  sm_free(m->programs);
  sm_free(m->upper);
  sm_free(m->target);
}

/* Every param of the graph, in node order, each at a 64-byte aligned
 * offset of the param storage. */
static int collect_params(aot_job *j) {
  const smelt_graph *g = j->g;
  sm_aot_model *m = &j->m;
  size_t n = 0;
  for (size_t i = 0; i < g->nnodes; i++) n += g->nodes[i].op == OP_PARAM;
  m->params = sm_calloc(n ? n : 1, sizeof *m->params);
  if (!m->params) return -1;
  size_t off = 0;
  for (size_t i = 0; i < g->nnodes; i++) {
    if (g->nodes[i].op != OP_PARAM) continue;
    if (strcmp(g->nodes[i].name, "__metadata__") == 0)
      return jfail(j, "param \"__metadata__\": safetensors files reserve that name, so "
                      "checkpoints could not hold it (rename the param)");
    sm_aot_tensor *t = &m->params[m->nparams++];
    tensor_of(t, g, (uint32_t)i, g->nodes[i].name);
    t->offset = off;
    off += (t->bytes + SM_AOT_ALIGN - 1) / SM_AOT_ALIGN * SM_AOT_ALIGN;
  }
  m->params_bytes = off;
  return name_tensors(m->params, m->nparams);
}

/* True when the plan reads node n of its graph (a kernel arg or a root). */
static bool plan_reads(const sm_plan *p, uint32_t n) {
  for (size_t r = 0; r < p->nroots; r++)
    if (p->roots[r] == n) return true;
  for (size_t s = 0; s < p->nkernels; s++)
    for (int a = 0; a < p->kernels[s].k->nargs; a++)
      if (p->kernels[s].k->args[a].role != KA_SCRATCH && p->kernels[s].k->args[a].node == n)
        return true;
  return false;
}

/* Plans declared program i. */
static int plan_program(aot_job *j, size_t i, const smelt_compile_options *co) {
  const smelt_graph *g = j->g;
  sm_aot_program *pr = &j->m.programs[i];
  smelt_program_decl d;
  smelt_graph_program(g, i, &d);
  pr->name = d.name;
  pr->eval = d.eval;
  pr->noutputs = (size_t)d.noutputs;
  pr->nupdates = (size_t)d.nupdates;
  size_t nroots = pr->noutputs + pr->nupdates;
  uint32_t *roots = sm_malloc(sizeof *roots * (nroots ? nroots : 1));
  bool *in_arena = sm_calloc(nroots ? nroots : 1, sizeof *in_arena);
  pr->outputs = sm_calloc(pr->noutputs ? pr->noutputs : 1, sizeof *pr->outputs);
  pr->updates = sm_calloc(pr->nupdates ? pr->nupdates : 1, sizeof *pr->updates);
  int rc = -1;
  if (!roots || !in_arena || !pr->outputs || !pr->updates) goto out;
  for (size_t k = 0; k < pr->noutputs; k++) {
    size_t o = 0;
    while (strcmp(g->outputs[o].name, d.outputs[k]) != 0) o++; /* checked when declared */
    roots[k] = g->outputs[o].node;
    pr->outputs[k] = o; /* graph output index for now */
    if (pr->eval) {
      uint32_t culprit;
      int used = sm_uses_gradient(g, roots[k], &culprit);
      if (used < 0) goto out;
      if (used) {
        char id[128];
        sm_node_id(g, &g->nodes[culprit], id, sizeof id);
        jfail(j, "program \"%s\": output \"%s\" depends on %s of a backward graph (evaluation "
                 "programs compute no gradients)", d.name, d.outputs[k], id);
        goto out;
      }
    }
  }
  for (size_t k = 0; k < pr->nupdates; k++) {
    uint32_t a = d.updates[k].index - 1, target = g->nodes[a].inputs[0];
    roots[pr->noutputs + k] = a;
    in_arena[pr->noutputs + k] = true; /* all updates land at the end */
    for (size_t q = 0; q < j->m.nparams; q++)
      if (j->m.params[q].node == target) pr->updates[k] = q;
  }
  pr->plan = sm_plan_new(g, nroots, roots, in_arena, co, &j->dump, &j->err);
  if (pr->plan) rc = 0;
  else if (j->err) {
    char *e = sm_fmt("program \"%s\": %s", d.name, j->err);
    sm_free(j->err);
    j->err = e;
  }
out:
  sm_free(roots);
  sm_free(in_arena);
  return rc;
}

/* The initializer's graph: one node per param giving its initial value as
 * the interpreter computes it (rand / randn with the param's seed at draw
 * 0, full, or the data), or the tensor of that name in the weights file. */
static smelt_graph *init_graph(aot_job *j, const sm_st_file *w, uint32_t *roots) {
  const smelt_graph *g = j->g;
  smelt_graph *ig = smelt_graph_new();
  if (!ig) return NULL;
  for (size_t i = 0; i < j->m.nparams; i++) {
    const sm_aot_tensor *t = &j->m.params[i];
    const sm_node *p = &g->nodes[t->node];
    const sm_st_tensor *wt = w ? sm_st_find(w, t->name) : NULL;
    smelt_node v;
    if (wt) {
      v = smelt_const_array(ig, t->dtype, t->rank, t->shape, wt->data);
    } else {
      switch ((smelt_init_kind)p->iattr[0]) {
      case SMELT_INIT_ZEROS: v = smelt_zeros(ig, t->dtype, t->rank, t->shape); break;
      case SMELT_INIT_ONES: v = smelt_ones(ig, t->dtype, t->rank, t->shape); break;
      case SMELT_INIT_CONSTANT: v = smelt_full(ig, t->dtype, t->rank, t->shape, p->fattr[0]); break;
      case SMELT_INIT_NORMAL:
        v = sm_rng(ig, OP_RANDN, t->dtype, t->rank, t->shape, (uint64_t)p->iattr[1], p->fattr[0],
                   p->fattr[1]);
        break;
      case SMELT_INIT_UNIFORM:
        v = sm_rng(ig, OP_RAND, t->dtype, t->rank, t->shape, (uint64_t)p->iattr[1], p->fattr[0],
                   p->fattr[1]);
        break;
      case SMELT_INIT_DATA:
      default: v = smelt_const_array(ig, t->dtype, t->rank, t->shape, p->data); break;
      }
    }
    if (smelt_graph_error(ig)) {
      jfail(j, "param \"%s\": its initializer: %s", t->name, smelt_graph_error(ig));
      smelt_graph_free(ig);
      return NULL;
    }
    roots[i] = v.index - 1;
  }
  return ig;
}

/* Checks the weights file against the params: every tensor must be a
 * param of that dtype and shape (params it lacks keep their initializers). */
static int check_weights(aot_job *j, const sm_st_file *w) {
  const char *path = j->o.weights_path;
  for (size_t k = 0; k < w->ntensors; k++) {
    const sm_st_tensor *wt = &w->tensors[k];
    const sm_aot_tensor *t = NULL;
    for (size_t i = 0; i < j->m.nparams && !t; i++)
      if (strcmp(j->m.params[i].name, wt->name) == 0) t = &j->m.params[i];
    if (!t) return jfail(j, "%s: tensor \"%s\" is not a param of the graph", path, wt->name);
    sm_buf want = {0}, got = {0};
    sm_buf_printf(&want, "%s", smelt_dtype_name(t->dtype));
    sm_buf_shape(&want, t->rank, t->shape);
    sm_buf_printf(&got, "%s", smelt_dtype_name(wt->dtype));
    sm_buf_shape(&got, wt->rank, wt->dims);
    int rc = 0;
    if (wt->dtype != t->dtype || wt->rank != t->rank ||
        memcmp(wt->dims, t->shape, sizeof(int64_t) * (size_t)t->rank))
      rc = jfail(j, "%s: tensor \"%s\" is %s, the param is %s", path, wt->name,
                 got.data && !got.oom ? got.data : "?", want.data && !want.oom ? want.data : "?");
    sm_buf_free(&want);
    sm_buf_free(&got);
    if (rc) return rc;
  }
  return 0;
}

static int plan_init(aot_job *j, const smelt_compile_options *co) {
  sm_aot_program *pr = &j->m.programs[j->m.nprograms - 1];
  pr->name = "params_init";
  pr->init = true;
  sm_st_file w = {0};
  if (j->o.weights_path) {
    char msg[512];
    if (sm_st_read_file(j->o.weights_path, &w, msg, sizeof msg)) return jfail(j, "%s", msg);
    if (check_weights(j, &w)) {
      sm_st_free(&w);
      return -1;
    }
  }
  size_t n = j->m.nparams;
  uint32_t *roots = sm_malloc(sizeof *roots * (n ? n : 1));
  int rc = -1;
  if (roots && (pr->own = init_graph(j, j->o.weights_path ? &w : NULL, roots))) {
    pr->plan = sm_plan_new(pr->own, n, roots, NULL, co, &j->dump, &j->err);
    rc = pr->plan ? 0 : -1;
  }
  sm_free(roots);
  sm_st_free(&w);
  return rc;
}

/* The inputs and outputs the programs use, in graph order, and each
 * program's lists as indices into them. */
static int collect_io(aot_job *j) {
  const smelt_graph *g = j->g;
  sm_aot_model *m = &j->m;
  size_t nin = 0;
  bool *used = sm_calloc(g->nnodes ? g->nnodes : 1, sizeof *used);
  bool *out_used = sm_calloc(g->noutputs ? g->noutputs : 1, sizeof *out_used);
  size_t *out_index = sm_calloc(g->noutputs ? g->noutputs : 1, sizeof *out_index);
  int rc = -1;
  if (!used || !out_used || !out_index) goto out;
  for (size_t i = 0; i + 1 < m->nprograms; i++) {
    const sm_plan *p = m->programs[i].plan;
    for (uint32_t n = 0; n < p->opt->nnodes; n++)
      if (p->bufs[n].kind == SM_BUF_INPUT && plan_reads(p, n)) used[p->bufs[n].orig] = true;
    for (size_t k = 0; k < m->programs[i].noutputs; k++) out_used[m->programs[i].outputs[k]] = true;
  }
  for (size_t i = 0; i < g->nnodes; i++) nin += used[i];
  m->inputs = sm_calloc(nin ? nin : 1, sizeof *m->inputs);
  m->outputs = sm_calloc(g->noutputs ? g->noutputs : 1, sizeof *m->outputs);
  if (!m->inputs || !m->outputs) goto out;
  for (size_t i = 0; i < g->nnodes; i++)
    if (used[i]) tensor_of(&m->inputs[m->ninputs++], g, (uint32_t)i, g->nodes[i].name);
  for (size_t o = 0; o < g->noutputs; o++) {
    if (!out_used[o]) continue;
    out_index[o] = m->noutputs;
    tensor_of(&m->outputs[m->noutputs++], g, g->outputs[o].node, g->outputs[o].name);
  }
  for (size_t i = 0; i + 1 < m->nprograms; i++) {
    sm_aot_program *pr = &m->programs[i];
    const sm_plan *p = pr->plan;
    for (size_t k = 0; k < pr->noutputs; k++) pr->outputs[k] = out_index[pr->outputs[k]];
    pr->inputs = sm_calloc(m->ninputs ? m->ninputs : 1, sizeof *pr->inputs);
    if (!pr->inputs) goto out;
    for (size_t q = 0; q < m->ninputs; q++) {
      bool reads = false;
      for (uint32_t n = 0; n < p->opt->nnodes && !reads; n++)
        reads = p->bufs[n].kind == SM_BUF_INPUT && p->bufs[n].orig == m->inputs[q].node &&
                plan_reads(p, n);
      if (reads) pr->inputs[pr->ninputs++] = q;
    }
  }
  if (name_tensors(m->inputs, m->ninputs) || name_tensors(m->outputs, m->noutputs)) goto out;
  rc = 0;
out:
  sm_free(used);
  sm_free(out_used);
  sm_free(out_index);
  return rc;
}

/* Programs' C names: identifiers, distinct, and none a generated name. */
static int name_programs(aot_job *j) {
  sm_aot_model *m = &j->m;
  for (size_t i = 0; i < m->nprograms; i++) {
    sm_aot_program *pr = &m->programs[i];
    if (!(pr->cname = pr->init ? sm_strdup(pr->name) : c_name(pr->name))) return -1;
    if (pr->init) continue;
    for (const char *const *r = reserved; *r; r++)
      if (strcmp(pr->cname, *r) == 0 || strncmp(pr->cname, "param_", 6) == 0)
        return jfail(j, "program \"%s\": its function %s_%s would clash with a function the "
                        "header defines (rename the program)", pr->name, m->prefix, pr->cname);
    for (size_t k = 0; k < i; k++)
      if (strcmp(m->programs[k].cname, pr->cname) == 0)
        return jfail(j, "programs \"%s\" and \"%s\" would both be the C function %s_%s "
                        "(rename one)", m->programs[k].name, pr->name, m->prefix, pr->cname);
  }
  return 0;
}

static int check_options(aot_job *j) {
  const smelt_aot_options *o = &j->o;
  const smelt_graph *g = j->g;
  if (!g) return jfail(j, "the graph is NULL");
  if (smelt_graph_error(g)) return jfail(j, "the graph has an error: %s", smelt_graph_error(g));
  if (!o->object_path || !*o->object_path) return jfail(j, "no object file path given");
  if (!is_identifier(o->prefix) || strlen(o->prefix) > 64)
    return jfail(j, "prefix \"%s\" is not a C identifier (letters, digits and _, at most 64)",
                 o->prefix ? o->prefix : "(null)");
  if (o->opt_level < 0 || o->opt_level > 3)
    return jfail(j, "optimization level %d is not 0 to 3", o->opt_level);
  if (g->nprograms == 0)
    return jfail(j, "the graph declares no programs (smelt_graph_add_program, or a line "
                    "'program NAME outputs=[...] updates=[...]' in the text format)");
  if (o->header_path && strcmp(o->header_path, o->object_path) == 0)
    return jfail(j, "the header and the object are the same file %s", o->object_path);
  return 0;
}

static int compile_model(aot_job *j) {
  sm_aot_model *m = &j->m;
  smelt_compile_options co = smelt_compile_defaults();
  co.target = SMELT_TARGET_CPU;
  co.opt_level = j->o.opt_level;
  co.reassociate = j->o.reassociate;
  co.num_threads = 1;
  if (!sm_cpu_available())
    return jfail(j, "ahead-of-time compilation needs LLVM, and this libsmelt was built without it");
  if (check_options(j) || sm_dump_init(&j->dump, j->o.dump, j->o.dump_dir, &j->err)) return -1;
  m->prefix = j->o.prefix;
  m->source = j->o.source_name;
  if (!(m->upper = sm_strdup(m->prefix))) return -1;
  for (char *s = m->upper; *s; s++) *s = (char)toupper((unsigned char)*s);
  m->nprograms = j->g->nprograms + 1;
  m->programs = sm_calloc(m->nprograms, sizeof *m->programs);
  if (!m->programs || collect_params(j)) return -1;
  for (size_t i = 0; i + 1 < m->nprograms; i++)
    if (plan_program(j, i, &co)) return -1;
  if (plan_init(j, &co) || collect_io(j) || name_programs(j)) return -1;
  for (size_t i = 0; i < m->nprograms; i++)
    if (m->programs[i].plan->arena_bytes > m->arena_bytes)
      m->arena_bytes = m->programs[i].plan->arena_bytes;
  /* sizes of at least one alignment unit: arrays of them are valid C */
  if (m->params_bytes < SM_AOT_ALIGN) m->params_bytes = SM_AOT_ALIGN;
  if (m->arena_bytes < SM_AOT_ALIGN) m->arena_bytes = SM_AOT_ALIGN;
  m->arena_bytes = (m->arena_bytes + SM_AOT_ALIGN - 1) / SM_AOT_ALIGN * SM_AOT_ALIGN;
  int rc = sm_aot_object(m, &j->o, &j->dump, &m->target, &j->err);
  if (rc || !j->o.header_path) return rc;
  char *h = sm_aot_header(m);
  if (!h || sm_write_file_atomic(j->o.header_path, h, strlen(h), &j->err)) {
    sm_free(h);
    unlink(j->o.object_path); /* nothing half done is left behind */
    return -1;
  }
  sm_free(h);
  return 0;
}

int smelt_aot_compile(const smelt_graph *g, const smelt_aot_options *options, char **error) {
  if (error) *error = NULL;
  aot_job j;
  memset(&j, 0, sizeof j);
  j.g = g;
  j.o = options ? *options : smelt_aot_defaults();
  if (!j.o.prefix) j.o.prefix = "model";
  int rc = compile_model(&j);
  free_model(&j.m);
  if (rc && error) *error = j.err ? j.err : sm_strdup("out of memory");
  else sm_free(j.err);
  return rc ? -1 : 0;
}
