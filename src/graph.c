/* The graph: an arena of immutable SSA nodes, hash-consed, with names,
 * outputs and one sticky error. */
#include "internal.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

struct sm_chunk {
  struct sm_chunk *next;
  size_t used, cap;
  _Alignas(16) unsigned char mem[];
};

static _Atomic uint32_t next_serial = 1;
static const char oom_message[] = "out of memory";

static void free_decl(struct sm_program_decl *p);

#define SM_STR2(x) #x
#define SM_STR(x) SM_STR2(x)
const char *smelt_version(void) {
  return SM_STR(SMELT_VERSION_MAJOR) "." SM_STR(SMELT_VERSION_MINOR) "." SM_STR(SMELT_VERSION_PATCH);
}

smelt_graph *smelt_graph_new(void) {
  smelt_graph *g = sm_calloc(1, sizeof *g);
  if (!g) return NULL;
  uint32_t s = atomic_fetch_add(&next_serial, 1);
  if (s == 0) s = atomic_fetch_add(&next_serial, 1); /* 0 never names a graph */
  g->serial = s;
  return g;
}

void smelt_graph_free(smelt_graph *g) {
  if (!g) return;
  for (struct sm_chunk *c = g->arena, *n; c; c = n) {
    n = c->next;
    sm_free(c);
  }
  for (size_t i = 0; i < g->noutputs; i++) sm_free(g->outputs[i].name);
  sm_free(g->outputs);
  for (size_t i = 0; i < g->nprograms; i++) free_decl(&g->programs[i]);
  sm_free(g->programs);
  sm_free(g->nodes);
  sm_free(g->table);
  sm_free(g->names);
  if (g->error != oom_message) sm_free(g->error);
  sm_free(g);
}

void *sm_arena_alloc(smelt_graph *g, size_t n) {
  n = (n + 15) & ~(size_t)15;
  struct sm_chunk *c = g->arena;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > 16384 ? n : 16384;
    c = sm_malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->cap = cap;
    c->used = 0;
    c->next = g->arena;
    g->arena = c;
  }
  void *p = c->mem + c->used;
  c->used += n;
  return p;
}

/* ---------------------------------------------------------------- errors */

const char *smelt_graph_error(const smelt_graph *g) {
  if (!g) return "graph is NULL";
  return g->error;
}

/* Keeps the first error; without memory even for the message, a static
 * "out of memory" stands in. */
static void set_error(smelt_graph *g, char *msg) {
  if (g->error) {
    sm_free(msg);
    return;
  }
  g->error = msg ? msg : (char *)oom_message;
}

smelt_node sm_fail(smelt_graph *g, const char *fmt, ...) {
  if (!g || g->error) return SMELT_INVALID;
  va_list ap;
  va_start(ap, fmt);
  char *msg = sm_vfmt(fmt, ap);
  va_end(ap);
  set_error(g, msg);
  return SMELT_INVALID;
}

smelt_node sm_fail_oom(smelt_graph *g, const char *op) {
  if (!g || g->error) return SMELT_INVALID;
  return sm_fail(g, "%s: out of memory", op);
}

/* ----------------------------------------------------------------- nodes */

const sm_node *sm_get(const smelt_graph *g, smelt_node n) {
  if (!g || n.graph != g->serial || n.index == 0 || n.index > g->nnodes) return NULL;
  return &g->nodes[n.index - 1];
}

const sm_node *sm_arg(smelt_graph *g, const char *op, smelt_node h, const char *what) {
  if (!g || g->error) return NULL;
  const sm_node *n = sm_get(g, h);
  if (n) return n;
  if (h.index == 0) sm_fail(g, "%s: %s is an invalid handle", op, what);
  else if (h.graph != g->serial) sm_fail(g, "%s: %s is a node of another graph", op, what);
  else sm_fail(g, "%s: %s is not a node of this graph", op, what);
  return NULL;
}

void sm_node_id(const smelt_graph *g, const sm_node *n, char *out, size_t outlen) {
  if (n->name)
    snprintf(out, outlen, "%%%s", n->name);
  else
    snprintf(out, outlen, "%%%zu", (size_t)(n - g->nodes));
}

void sm_buf_describe(sm_buf *b, const smelt_graph *g, const sm_node *n) {
  char id[128];
  sm_node_id(g, n, id, sizeof id);
  sm_buf_printf(b, "%s: %s", id, smelt_dtype_name((smelt_dtype)n->dtype));
  sm_buf_shape(b, n->rank, n->shape);
}

void sm_describe(const smelt_graph *g, const sm_node *n, char *out, size_t len) {
  sm_buf b = {0};
  sm_buf_describe(&b, g, n);
  snprintf(out, len, "%s", b.data && !b.oom ? b.data : "?");
  sm_buf_free(&b);
}

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdull;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *s = p;
  for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
  return h;
}

static uint64_t desc_hash(const sm_node_desc *d) {
  uint64_t h = mix(0xcbf29ce484222325ull, (uint64_t)d->op);
  h = mix(h, (uint64_t)d->dtype);
  h = mix(h, (uint64_t)d->rank);
  for (int i = 0; i < d->rank; i++) h = mix(h, (uint64_t)d->shape[i]);
  for (int i = 0; i < d->ninputs; i++) h = mix(h, d->inputs[i]);
  h = mix(h, (uint64_t)d->niattr);
  for (int i = 0; i < d->niattr; i++) h = mix(h, (uint64_t)d->iattr[i]);
  h = hash_bytes(h, d->fattr, sizeof d->fattr);
  if (d->data_bytes) h = hash_bytes(h, d->data, d->data_bytes);
  return h;
}

static bool desc_equal(const sm_node_desc *d, const sm_node *n, uint64_t h) {
  if (n->hash != h || n->op != d->op || n->dtype != d->dtype || n->rank != d->rank ||
      n->ninputs != (uint32_t)d->ninputs || n->niattr != (uint32_t)d->niattr)
    return false;
  if (d->rank && memcmp(n->shape, d->shape, sizeof(int64_t) * (size_t)d->rank)) return false;
  if (d->ninputs && memcmp(n->inputs, d->inputs, sizeof(uint32_t) * (size_t)d->ninputs))
    return false;
  if (d->niattr && memcmp(n->iattr, d->iattr, sizeof(int64_t) * (size_t)d->niattr)) return false;
  if (memcmp(n->fattr, d->fattr, sizeof d->fattr)) return false;
  size_t nbytes = n->data ? (size_t)sm_numel(n->rank, n->shape) * smelt_dtype_size(n->dtype) : 0;
  if (nbytes != d->data_bytes) return false;
  if (nbytes && memcmp(n->data, d->data, nbytes)) return false;
  return true;
}

/* Grows an open-addressing table of node index + 1 to hold one more. */
static bool table_grow(uint32_t **table, size_t *cap, size_t count,
                       uint64_t (*key)(const smelt_graph *, uint32_t), const smelt_graph *g) {
  if ((count + 1) * 2 <= *cap) return true;
  size_t ncap = *cap ? *cap * 2 : 64;
  uint32_t *t = sm_calloc(ncap, sizeof *t);
  if (!t) return false;
  for (size_t i = 0; i < *cap; i++) {
    uint32_t v = (*table)[i];
    if (!v) continue;
    size_t j = key(g, v - 1) & (ncap - 1);
    while (t[j]) j = (j + 1) & (ncap - 1);
    t[j] = v;
  }
  sm_free(*table);
  *table = t;
  *cap = ncap;
  return true;
}

static uint64_t node_key(const smelt_graph *g, uint32_t i) { return g->nodes[i].hash; }

static uint64_t name_hash(const char *s) { return hash_bytes(0xcbf29ce484222325ull, s, strlen(s)); }
static uint64_t name_key(const smelt_graph *g, uint32_t i) { return name_hash(g->nodes[i].name); }

smelt_node smelt_find(const smelt_graph *g, const char *name) {
  if (!g || !name || !g->names_cap) return SMELT_INVALID;
  size_t mask = g->names_cap - 1;
  for (size_t j = name_hash(name) & mask; g->names[j]; j = (j + 1) & mask) {
    uint32_t i = g->names[j] - 1;
    if (strcmp(g->nodes[i].name, name) == 0) return sm_handle(g, i);
  }
  return SMELT_INVALID;
}

static bool valid_name(const char *s) {
  if (!s || !*s) return false;
  if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_')) return false;
  for (const char *p = s + 1; *p; p++)
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == '.'))
      return false;
  return strlen(s) <= 200;
}

/* The error for a name that valid_name refused. */
static smelt_node bad_name(smelt_graph *g, const char *op, const char *name) {
  if (!name) return sm_fail(g, "%s: the name is NULL", op);
  return sm_fail(g, "%s: invalid name \"%s\" (names are [A-Za-z_][A-Za-z0-9_.]*)", op, name);
}

/* Inserts node i (already named) into the name table. */
static bool name_insert(smelt_graph *g, uint32_t i) {
  if (!table_grow(&g->names, &g->names_cap, g->nnames, name_key, g)) return false;
  size_t mask = g->names_cap - 1;
  size_t j = name_hash(g->nodes[i].name) & mask;
  while (g->names[j]) j = (j + 1) & mask;
  g->names[j] = i + 1;
  g->nnames++;
  return true;
}

static void name_remove(smelt_graph *g, uint32_t i) {
  /* Backward-shift deletion keeps probe chains intact. */
  size_t mask = g->names_cap - 1;
  size_t j = name_hash(g->nodes[i].name) & mask;
  while (g->names[j] != i + 1) j = (j + 1) & mask;
  g->names[j] = 0;
  for (size_t k = (j + 1) & mask; g->names[k]; k = (k + 1) & mask) {
    uint32_t v = g->names[k];
    g->names[k] = 0;
    size_t h = name_key(g, v - 1) & mask;
    while (g->names[h]) h = (h + 1) & mask;
    g->names[h] = v;
  }
  g->nnames--;
}

smelt_node sm_intern(smelt_graph *g, const sm_node_desc *desc) {
  const char *opname = sm_ops[desc->op].name;
  /* The shape may point into g->nodes, which moves when it grows. */
  sm_node_desc local = *desc;
  int64_t shape[SMELT_MAX_RANK];
  if (local.rank) memcpy(shape, local.shape, sizeof(int64_t) * (size_t)local.rank);
  local.shape = shape;
  const sm_node_desc *d = &local;
  uint64_t h = desc_hash(d);
  if (!d->name && g->table_cap) {
    size_t mask = g->table_cap - 1;
    for (size_t j = h & mask; g->table[j]; j = (j + 1) & mask) {
      uint32_t i = g->table[j] - 1;
      if (desc_equal(d, &g->nodes[i], h)) {
        /* forward code built this value too: it is not only a gradient */
        if (g->grad_depth == 0) g->nodes[i].flags &= (uint8_t)~SM_NODE_GRAD;
        return sm_handle(g, i);
      }
    }
  }
  if (d->name) {
    if (!valid_name(d->name)) return bad_name(g, opname, d->name);
    if (smelt_node_valid(smelt_find(g, d->name)))
      return sm_fail(g, "%s: the name \"%s\" is already used by another node", opname, d->name);
  }
  if (g->nnodes >= UINT32_MAX - 1) return sm_fail(g, "%s: too many nodes in one graph", opname);
  if (g->nnodes == g->cap) {
    size_t cap = g->cap ? g->cap * 2 : 64;
    sm_node *nodes = sm_realloc(g->nodes, cap * sizeof *nodes);
    if (!nodes) return sm_fail_oom(g, opname);
    g->nodes = nodes;
    g->cap = cap;
  }
  if (!d->name && !table_grow(&g->table, &g->table_cap, g->nnodes, node_key, g))
    return sm_fail_oom(g, opname);

  sm_node n;
  memset(&n, 0, sizeof n);
  n.op = (uint16_t)d->op;
  n.dtype = (uint8_t)d->dtype;
  n.rank = (uint8_t)d->rank;
  n.ninputs = (uint32_t)d->ninputs;
  n.niattr = (uint32_t)d->niattr;
  n.hash = h;
  n.flags = g->grad_depth > 0 ? SM_NODE_GRAD : 0;
  n.fattr[0] = d->fattr[0];
  n.fattr[1] = d->fattr[1];
  if (d->rank) memcpy(n.shape, d->shape, sizeof(int64_t) * (size_t)d->rank);
  if (d->ninputs) {
    n.inputs = sm_arena_alloc(g, sizeof(uint32_t) * (size_t)d->ninputs);
    if (!n.inputs) return sm_fail_oom(g, opname);
    memcpy(n.inputs, d->inputs, sizeof(uint32_t) * (size_t)d->ninputs);
  }
  if (d->niattr) {
    n.iattr = sm_arena_alloc(g, sizeof(int64_t) * (size_t)d->niattr);
    if (!n.iattr) return sm_fail_oom(g, opname);
    memcpy(n.iattr, d->iattr, sizeof(int64_t) * (size_t)d->niattr);
  }
  if (d->data_bytes) {
    n.data = sm_arena_alloc(g, d->data_bytes);
    if (!n.data) return sm_fail_oom(g, opname);
    memcpy(n.data, d->data, d->data_bytes);
  } else if (d->data) {
    n.data = sm_arena_alloc(g, 1); /* zero-size const: non-NULL marker */
    if (!n.data) return sm_fail_oom(g, opname);
  }
  if (d->name) {
    n.name = sm_arena_alloc(g, strlen(d->name) + 1);
    if (!n.name) return sm_fail_oom(g, opname);
    strcpy(n.name, d->name);
  }
  uint32_t i = (uint32_t)g->nnodes;
  g->nodes[g->nnodes++] = n;
  if (d->name) {
    if (!name_insert(g, i)) {
      g->nnodes--;
      return sm_fail_oom(g, opname);
    }
  } else {
    size_t mask = g->table_cap - 1;
    size_t j = h & mask;
    while (g->table[j]) j = (j + 1) & mask;
    g->table[j] = i + 1;
  }
  return sm_handle(g, i);
}

smelt_node smelt_set_name(smelt_graph *g, smelt_node n, const char *name) {
  if (!g || g->error) return SMELT_INVALID;
  const sm_node *cn = sm_get(g, n);
  if (!cn) return sm_fail(g, "set_name: invalid node handle");
  sm_node *node = &g->nodes[n.index - 1];
  if (!valid_name(name)) return bad_name(g, "set_name", name);
  if (node->name && strcmp(node->name, name) == 0) return n;

  smelt_node other = smelt_find(g, name);
  if (smelt_node_valid(other))
    return sm_fail(g, "set_name: the name \"%s\" is already used by another node", name);
  if (node->op == OP_INPUT || node->op == OP_PARAM)
    return sm_fail(g, "set_name: %s \"%s\" cannot be renamed", sm_ops[node->op].name, node->name);
  char *copy = sm_arena_alloc(g, strlen(name) + 1);
  if (!copy) return sm_fail_oom(g, "set_name");
  strcpy(copy, name);
  char *old = node->name;
  if (old) name_remove(g, n.index - 1);
  node->name = copy;
  if (!name_insert(g, n.index - 1)) {
    node->name = old;
    if (old) name_insert(g, n.index - 1); /* cannot fail: the slot was just freed */
    return sm_fail_oom(g, "set_name");
  }
  return n;
}

/* --------------------------------------------------------------- queries */

size_t smelt_graph_node_count(const smelt_graph *g) { return g ? g->nnodes : 0; }

smelt_node smelt_graph_node(const smelt_graph *g, size_t i) {
  if (!g || i >= g->nnodes) return SMELT_INVALID;
  return sm_handle(g, (uint32_t)i);
}

smelt_dtype smelt_node_dtype(const smelt_graph *g, smelt_node n) {
  const sm_node *p = sm_get(g, n);
  return p ? (smelt_dtype)p->dtype : SMELT_F32;
}

int smelt_node_rank(const smelt_graph *g, smelt_node n) {
  const sm_node *p = sm_get(g, n);
  return p ? p->rank : 0;
}

int64_t smelt_node_dim(const smelt_graph *g, smelt_node n, int i) {
  const sm_node *p = sm_get(g, n);
  int a;
  if (!p || !sm_norm_axis(i, p->rank, &a)) return -1;
  return p->shape[a];
}

const int64_t *smelt_node_shape(const smelt_graph *g, smelt_node n, int *rank) {
  const sm_node *p = sm_get(g, n);
  if (rank) *rank = p ? p->rank : 0;
  return p ? p->shape : NULL;
}

int64_t smelt_node_numel(const smelt_graph *g, smelt_node n) {
  const sm_node *p = sm_get(g, n);
  return p ? sm_numel(p->rank, p->shape) : 0;
}

const char *smelt_node_op(const smelt_graph *g, smelt_node n) {
  const sm_node *p = sm_get(g, n);
  return p ? sm_ops[p->op].name : NULL;
}

const char *smelt_node_name(const smelt_graph *g, smelt_node n) {
  const sm_node *p = sm_get(g, n);
  return p ? p->name : NULL;
}

/* --------------------------------------------------------------- outputs */

smelt_node smelt_output(smelt_graph *g, const char *name, smelt_node n) {
  if (!g || g->error) return SMELT_INVALID;
  if (!sm_get(g, n))
    return sm_fail(g, "output \"%s\": invalid node handle", name ? name : "(null)");
  if (!valid_name(name)) return bad_name(g, "output", name);
  for (size_t i = 0; i < g->noutputs; i++)
    if (strcmp(g->outputs[i].name, name) == 0)
      return sm_fail(g, "output: the name \"%s\" is already an output", name);
  if (g->noutputs == g->outputs_cap) {
    size_t cap = g->outputs_cap ? g->outputs_cap * 2 : 8;
    struct sm_output *o = sm_realloc(g->outputs, cap * sizeof *o);
    if (!o) return sm_fail_oom(g, "output");
    g->outputs = o;
    g->outputs_cap = cap;
  }
  char *copy = sm_strdup(name);
  if (!copy) return sm_fail_oom(g, "output");
  g->outputs[g->noutputs].name = copy;
  g->outputs[g->noutputs].node = n.index - 1;
  g->noutputs++;
  return n;
}

size_t smelt_graph_output_count(const smelt_graph *g) { return g ? g->noutputs : 0; }

smelt_node smelt_graph_output(const smelt_graph *g, size_t i, const char **name) {
  if (!g || i >= g->noutputs) {
    if (name) *name = NULL;
    return SMELT_INVALID;
  }
  if (name) *name = g->outputs[i].name;
  return sm_handle(g, g->outputs[i].node);
}

/* -------------------------------------------------- program declarations */

/* Appends the graph's output names ("a, b") for an error message. */
static void list_outputs(sm_buf *b, const smelt_graph *g) {
  if (!g->noutputs) sm_buf_puts(b, "the graph has no outputs");
  for (size_t i = 0; i < g->noutputs; i++)
    sm_buf_printf(b, "%s%s", i ? ", " : "the graph's outputs: ", g->outputs[i].name);
}

static void free_decl(struct sm_program_decl *p) {
  for (int k = 0; p->outputs && k < p->noutputs; k++) sm_free(p->outputs[k]);
  sm_free(p->outputs);
  sm_free(p->updates);
  sm_free(p->name);
}

/* The checks of smelt_program_new, done once when the program is declared. */
static int check_program_decl(smelt_graph *g, const char *name, int noutputs,
                              const char *const *outputs, int nupdates, const smelt_node *updates,
                              bool eval, int *culprit) {
  *culprit = -1;
  if (!valid_name(name)) {
    bad_name(g, "program", name);
    return -1;
  }
  for (size_t i = 0; i < g->nprograms; i++)
    if (strcmp(g->programs[i].name, name) == 0) {
      sm_fail(g, "program: the name \"%s\" is already a program", name);
      return -1;
    }
  if (noutputs < 0 || nupdates < 0 || (noutputs && !outputs) || (nupdates && !updates)) {
    sm_fail(g,
            "program \"%s\": bad output or update list (noutputs %d, outputs %s; nupdates %d, "
            "updates %s)",
            name, noutputs, outputs ? "given" : "NULL", nupdates, updates ? "given" : "NULL");
    return -1;
  }
  for (int k = 0; k < noutputs; k++) {
    *culprit = k;
    const char *o = outputs[k];
    size_t j = 0;
    while (o && j < g->noutputs && strcmp(g->outputs[j].name, o) != 0) j++;
    if (!o || j == g->noutputs) {
      sm_buf b = {0};
      list_outputs(&b, g);
      sm_fail(g, "program \"%s\": unknown output \"%s\" (%s)", name, o ? o : "(null)",
              b.oom || !b.data ? "?" : b.data);
      sm_buf_free(&b);
      return -1;
    }
    for (int m = 0; m < k; m++)
      if (strcmp(outputs[m], o) == 0) {
        sm_fail(g, "program \"%s\": output \"%s\" is listed twice", name, o);
        return -1;
      }
  }
  if (eval && nupdates) {
    *culprit = noutputs;
    sm_fail(g, "program \"%s\": an evaluation program takes no updates", name);
    return -1;
  }
  for (int k = 0; k < nupdates; k++) {
    *culprit = noutputs + k;
    const sm_node *u = sm_get(g, updates[k]);
    if (!u) {
      sm_fail(g, "program \"%s\": update %d is %s", name, k,
              updates[k].index == 0 ? "an invalid handle" : "not a node of this graph");
      return -1;
    }
    char id[128];
    sm_node_id(g, u, id, sizeof id);
    if (u->op != OP_ASSIGN) {
      sm_fail(g, "program \"%s\": update %s is a %s node, not an assign", name, id,
              sm_ops[u->op].name);
      return -1;
    }
    for (int m = 0; m < k; m++)
      if (g->nodes[updates[m].index - 1].inputs[0] == u->inputs[0]) {
        sm_fail(g, "program \"%s\": param \"%s\" is updated twice", name,
                g->nodes[u->inputs[0]].name);
        return -1;
      }
  }
  return 0;
}

int sm_graph_add_program(smelt_graph *g, const char *name, int noutputs,
                         const char *const *outputs, int nupdates, const smelt_node *updates,
                         bool eval, int *culprit) {
  int dummy;
  if (!culprit) culprit = &dummy;
  *culprit = -1;
  if (!g || g->error) return -1;
  if (check_program_decl(g, name, noutputs, outputs, nupdates, updates, eval, culprit))
    return -1;
  *culprit = -1;
  if (g->nprograms == g->programs_cap) {
    size_t cap = g->programs_cap ? g->programs_cap * 2 : 4;
    struct sm_program_decl *p = sm_realloc(g->programs, cap * sizeof *p);
    if (!p) {
      sm_fail_oom(g, "program");
      return -1;
    }
    g->programs = p;
    g->programs_cap = cap;
  }
  struct sm_program_decl d;
  memset(&d, 0, sizeof d);
  d.eval = eval;
  d.name = sm_strdup(name);
  d.outputs = sm_calloc(noutputs ? (size_t)noutputs : 1, sizeof *d.outputs);
  d.updates = sm_malloc(sizeof *d.updates * (nupdates ? (size_t)nupdates : 1));
  bool ok = d.name && d.outputs && d.updates;
  for (int k = 0; ok && k < noutputs; k++) {
    ok = (d.outputs[k] = sm_strdup(outputs[k])) != NULL;
    d.noutputs = k + 1;
  }
  if (!ok) {
    free_decl(&d);
    sm_fail_oom(g, "program");
    return -1;
  }
  d.noutputs = noutputs;
  d.nupdates = nupdates;
  if (nupdates) memcpy(d.updates, updates, sizeof *d.updates * (size_t)nupdates);
  g->programs[g->nprograms++] = d;
  return 0;
}

int smelt_graph_add_program(smelt_graph *g, const char *name, int noutputs,
                            const char *const *outputs, int nupdates, const smelt_node *updates,
                            bool eval) {
  return sm_graph_add_program(g, name, noutputs, outputs, nupdates, updates, eval, NULL);
}

size_t smelt_graph_program_count(const smelt_graph *g) { return g ? g->nprograms : 0; }

int smelt_graph_program(const smelt_graph *g, size_t i, smelt_program_decl *decl) {
  if (!g || !decl || i >= g->nprograms) return -1;
  const struct sm_program_decl *p = &g->programs[i];
  decl->name = p->name;
  decl->eval = p->eval;
  decl->noutputs = p->noutputs;
  decl->outputs = (const char *const *)p->outputs;
  decl->nupdates = p->nupdates;
  decl->updates = p->updates;
  return 0;
}

long smelt_graph_find_program(const smelt_graph *g, const char *name) {
  for (size_t i = 0; g && name && i < g->nprograms; i++)
    if (strcmp(g->programs[i].name, name) == 0) return (long)i;
  return -1;
}
