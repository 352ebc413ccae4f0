/* Printers of a graph: the canonical text form (docs/text-format.md), which
 * src/text_parse.c reads back, and Graphviz DOT.
 *
 * Canonical text: every node in index order, one a line, with its dtype and
 * shape; then the outputs; then the declared programs. A node's id is
 * %name when it has a name, else %<index> (names never start with a
 * digit, so the two never collide). How a node's attributes are written
 * follows its op's row in sm_ops (the ATF_* format), so that printer and
 * parser agree on one description. */
#include "internal.h"

#include <inttypes.h>
#include <string.h>

/* ------------------------------------------------------------- pieces */

static void put_id(sm_buf *b, const smelt_graph *g, uint32_t index) {
  const sm_node *n = &g->nodes[index];
  if (n->name)
    sm_buf_printf(b, "%%%s", n->name);
  else
    sm_buf_printf(b, "%%%" PRIu32, index);
}

static void put_type(sm_buf *b, const sm_node *n) {
  sm_buf_puts(b, smelt_dtype_name((smelt_dtype)n->dtype));
  sm_buf_shape(b, n->rank, n->shape);
}

/* "[a,b,c]" from n int64 values. */
static void put_ints(sm_buf *b, const int64_t *v, size_t n) {
  sm_buf_puts(b, "[");
  for (size_t i = 0; i < n; i++) sm_buf_printf(b, i ? ",%" PRId64 : "%" PRId64, v[i]);
  sm_buf_puts(b, "]");
}

/* Attribute numbers are doubles: printed exactly (shortest round trip). */
static void put_num(sm_buf *b, double v) { sm_buf_number(b, v, false); }

/* One element of a const or data array. */
static void put_elem(sm_buf *b, smelt_dtype dt, const void *data, int64_t i) {
  switch (dt) {
  case SMELT_F32: sm_buf_number(b, ((const float *)data)[i], true); break;
  case SMELT_F64: sm_buf_number(b, ((const double *)data)[i], false); break;
  case SMELT_I32: sm_buf_printf(b, "%" PRId32, ((const int32_t *)data)[i]); break;
  case SMELT_I64: sm_buf_printf(b, "%" PRId64, ((const int64_t *)data)[i]); break;
  case SMELT_BOOL: sm_buf_puts(b, ((const uint8_t *)data)[i] ? "true" : "false"); break;
  default: sm_buf_puts(b, "?"); break;
  }
}

/* A scalar, or a nested array literal [[1,2],[3,4]] following the shape
 * (put_values prints arrays without elements). */
static void put_values_rec(sm_buf *b, smelt_dtype dt, const void *data, int rank,
                           const int64_t *dims, int depth, int64_t offset) {
  if (depth == rank) {
    put_elem(b, dt, data, offset);
    return;
  }
  int64_t stride = 1;
  for (int i = depth + 1; i < rank; i++) stride *= dims[i];
  sm_buf_puts(b, "[");
  for (int64_t i = 0; i < dims[depth] && !b->oom; i++) {
    if (i) sm_buf_puts(b, ",");
    put_values_rec(b, dt, data, rank, dims, depth + 1, offset + i * stride);
  }
  sm_buf_puts(b, "]");
}

static void put_values(sm_buf *b, const sm_node *n) {
  if (!n->data) {
    sm_buf_puts(b, "?");
    return;
  }
  /* An array without elements is [] whatever its shape: nesting [[],[],...]
   * along the axes before the empty one would take as many bytes as those
   * axes' product, unbounded for a hostile shape such as [2^40, 0]. */
  for (int i = 0; i < n->rank; i++)
    if (n->shape[i] == 0) {
      sm_buf_puts(b, "[]");
      return;
    }
  put_values_rec(b, (smelt_dtype)n->dtype, n->data, n->rank, n->shape, 0, 0);
}

static int64_t iattr(const sm_node *n, uint32_t i) { return i < n->niattr ? n->iattr[i] : 0; }

static void put_init(sm_buf *b, const sm_node *n) {
  uint64_t seed = (uint64_t)iattr(n, 1);
  sm_buf_puts(b, "init=");
  switch ((smelt_init_kind)iattr(n, 0)) {
  case SMELT_INIT_ZEROS: sm_buf_puts(b, "zeros"); break;
  case SMELT_INIT_ONES: sm_buf_puts(b, "ones"); break;
  case SMELT_INIT_CONSTANT:
    sm_buf_puts(b, "constant(");
    put_num(b, n->fattr[0]);
    sm_buf_puts(b, ")");
    break;
  case SMELT_INIT_NORMAL:
    sm_buf_puts(b, "normal(mean=");
    put_num(b, n->fattr[0]);
    sm_buf_puts(b, ", std=");
    put_num(b, n->fattr[1]);
    sm_buf_printf(b, ", seed=%" PRIu64 ")", seed);
    break;
  case SMELT_INIT_UNIFORM:
    sm_buf_puts(b, "uniform(lo=");
    put_num(b, n->fattr[0]);
    sm_buf_puts(b, ", hi=");
    put_num(b, n->fattr[1]);
    sm_buf_printf(b, ", seed=%" PRIu64 ")", seed);
    break;
  case SMELT_INIT_DATA:
    sm_buf_puts(b, "data(");
    put_values(b, n);
    sm_buf_puts(b, ")");
    break;
  default: sm_buf_puts(b, "?"); break;
  }
}

/* The attributes of a node after its operands, each preceded by a space,
 * as its op's attribute format says. Params are handled by the caller. */
static void put_attrs(sm_buf *b, const sm_node *n) {
  const sm_op_info *info = &sm_ops[n->op];
  uint32_t r = n->rank;
  switch (info->attrs) {
  case ATF_NONE:
  case ATF_PARAM: break;
  case ATF_AXES:
    sm_buf_puts(b, " axes=");
    put_ints(b, n->iattr, n->niattr);
    break;
  case ATF_AXIS: sm_buf_printf(b, " axis=%" PRId64, iattr(n, 0)); break;
  case ATF_PERM:
    sm_buf_puts(b, " perm=");
    put_ints(b, n->iattr, n->niattr);
    break;
  case ATF_SLICE: {
    /* Stored: normalized start and step per axis; the stop written is the
     * smallest one that gives the result's size. */
    int64_t stop[SMELT_MAX_RANK];
    uint32_t k = n->niattr / 2 < r ? n->niattr / 2 : r;
    for (uint32_t i = 0; i < k; i++) {
      int64_t start = n->iattr[i], step = n->iattr[k + i];
      stop[i] = n->shape[i] > 0 ? start + (n->shape[i] - 1) * step + 1 : start;
    }
    sm_buf_puts(b, " start=");
    put_ints(b, n->iattr, k);
    sm_buf_puts(b, " stop=");
    put_ints(b, stop, k);
    sm_buf_puts(b, " step=");
    put_ints(b, n->iattr + k, k);
    break;
  }
  case ATF_UNFOLD:
    sm_buf_printf(b, " axis=%" PRId64 " size=%" PRId64 " step=%" PRId64, iattr(n, 0), iattr(n, 1),
                  iattr(n, 2));
    break;
  case ATF_PAD: {
    uint32_t k = n->niattr / 2;
    sm_buf_puts(b, " lo=");
    put_ints(b, n->iattr, k);
    sm_buf_puts(b, " hi=");
    put_ints(b, n->iattr + k, k);
    sm_buf_puts(b, " value=");
    /* the builder stores the value as the tensor holds it: an f32 pad
     * value is a float, whose shortest form is exact */
    sm_buf_number(b, n->fattr[0], n->dtype == SMELT_F32);
    break;
  }
  case ATF_IOTA:
    sm_buf_printf(b, " axis=%" PRId64 " start=", iattr(n, 0));
    put_num(b, n->fattr[0]);
    sm_buf_puts(b, " step=");
    put_num(b, n->fattr[1]);
    break;
  case ATF_RAND:
    sm_buf_printf(b, " seed=%" PRIu64, (uint64_t)iattr(n, 0));
    sm_buf_puts(b, n->op == OP_RAND ? " lo=" : " mean=");
    put_num(b, n->fattr[0]);
    sm_buf_puts(b, n->op == OP_RAND ? " hi=" : " std=");
    put_num(b, n->fattr[1]);
    break;
  case ATF_CONST:
    sm_buf_puts(b, " ");
    /* A float literal keeps its value as written (a double in fattr[0]):
     * it meets f64 tensors at full precision. */
    if (iattr(n, 0) && n->dtype == SMELT_F32)
      put_num(b, n->fattr[0]);
    else
      put_values(b, n);
    if (iattr(n, 0)) sm_buf_puts(b, " weak");
    break;
  }
}

/* "op %a, %b attrs" without id and type. */
static void put_op(sm_buf *b, const smelt_graph *g, const sm_node *n) {
  sm_buf_puts(b, sm_ops[n->op].name);
  for (uint32_t i = 0; i < n->ninputs; i++) {
    sm_buf_puts(b, i ? ", " : " ");
    put_id(b, g, n->inputs[i]);
  }
  put_attrs(b, n);
}

/* ---------------------------------------------------------- canonical */

char *smelt_graph_print(const smelt_graph *g) {
  if (!g) return NULL;
  sm_buf b = {0};
  sm_buf_puts(&b, "# smelt graph\n");
  for (size_t i = 0; i < g->nnodes && !b.oom; i++) {
    const sm_node *n = &g->nodes[i];
    if (n->op == OP_INPUT || n->op == OP_PARAM) {
      sm_buf_printf(&b, "%s ", sm_ops[n->op].name);
      put_id(&b, g, (uint32_t)i);
      sm_buf_puts(&b, " : ");
      put_type(&b, n);
      if (n->op == OP_PARAM) {
        sm_buf_puts(&b, " ");
        put_init(&b, n);
      }
    } else {
      put_id(&b, g, (uint32_t)i);
      sm_buf_puts(&b, " = ");
      put_op(&b, g, n);
      sm_buf_puts(&b, " : ");
      put_type(&b, n);
    }
    sm_buf_puts(&b, "\n");
  }
  for (size_t i = 0; i < g->noutputs; i++) {
    sm_buf_printf(&b, "output %s = ", g->outputs[i].name);
    put_id(&b, g, g->outputs[i].node);
    sm_buf_puts(&b, "\n");
  }
  for (size_t i = 0; i < g->nprograms; i++) {
    const struct sm_program_decl *p = &g->programs[i];
    sm_buf_printf(&b, "%sprogram %s outputs=[", p->eval ? "eval " : "", p->name);
    for (int k = 0; k < p->noutputs; k++) sm_buf_printf(&b, k ? ", %s" : "%s", p->outputs[k]);
    sm_buf_puts(&b, "]");
    if (p->nupdates) {
      sm_buf_puts(&b, " updates=[");
      for (int k = 0; k < p->nupdates; k++) {
        if (k) sm_buf_puts(&b, ", ");
        put_id(&b, g, p->updates[k].index - 1);
      }
      sm_buf_puts(&b, "]");
    }
    sm_buf_puts(&b, "\n");
  }
  return sm_buf_take(&b);
}

/* ---------------------------------------------------------------- DOT */

/* Appends s to b escaped for a DOT string, with \n for newlines. */
static void put_dot_escaped(sm_buf *b, const char *s, size_t len) {
  for (size_t i = 0; i < len && !b->oom; i++) {
    char c = s[i];
    if (c == '"' || c == '\\')
      sm_buf_printf(b, "\\%c", c);
    else if (c == '\n')
      sm_buf_puts(b, "\\n");
    else
      sm_buf_printf(b, "%c", c);
  }
}

/* Consts with more elements than this show only their type in DOT. */
#define DOT_MAX_VALUES 16

char *smelt_graph_print_dot(const smelt_graph *g) {
  if (!g) return NULL;
  sm_buf b = {0}, label = {0};
  sm_buf_puts(&b, "digraph smelt {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n");
  for (size_t i = 0; i < g->nnodes && !b.oom; i++) {
    const sm_node *n = &g->nodes[i];
    label.len = 0;
    if (label.data) label.data[0] = 0;
    const char *shape = "box";
    if (n->op == OP_INPUT || n->op == OP_PARAM) {
      sm_buf_printf(&label, "%s %%%s", sm_ops[n->op].name, n->name ? n->name : "?");
      if (n->op == OP_PARAM) {
        sm_buf_puts(&label, "\n");
        if (iattr(n, 0) == SMELT_INIT_DATA && sm_numel(n->rank, n->shape) > DOT_MAX_VALUES)
          sm_buf_puts(&label, "init=data(...)");
        else
          put_init(&label, n);
      }
      shape = n->op == OP_INPUT ? "invhouse" : "cylinder";
    } else {
      put_id(&label, g, (uint32_t)i);
      sm_buf_puts(&label, " = ");
      if (n->op == OP_CONST && sm_numel(n->rank, n->shape) > DOT_MAX_VALUES) {
        sm_buf_printf(&label, "const ...%s", iattr(n, 0) ? " weak" : "");
      } else {
        sm_buf_puts(&label, sm_ops[n->op].name);
        put_attrs(&label, n);
      }
      if (sm_ops[n->op].cls == OPC_SOURCE) shape = "ellipse";
    }
    sm_buf_puts(&label, "\n");
    put_type(&label, n);
    if (label.oom) {
      b.oom = true;
      break;
    }
    sm_buf_printf(&b, "  n%zu [shape=%s, label=\"", i, shape);
    put_dot_escaped(&b, label.data, label.len);
    sm_buf_puts(&b, "\"];\n");
    for (uint32_t k = 0; k < n->ninputs; k++) {
      sm_buf_printf(&b, "  n%" PRIu32 " -> n%zu", n->inputs[k], i);
      if (n->ninputs > 1) sm_buf_printf(&b, " [label=\"%" PRIu32 "\"]", k);
      sm_buf_puts(&b, ";\n");
    }
  }
  sm_buf_free(&label);
  for (size_t i = 0; i < g->noutputs && !b.oom; i++) {
    sm_buf_printf(&b, "  out%zu [shape=doubleoctagon, label=\"output %s\"];\n", i,
                  g->outputs[i].name);
    sm_buf_printf(&b, "  n%" PRIu32 " -> out%zu;\n", g->outputs[i].node, i);
  }
  sm_buf_puts(&b, "}\n");
  return sm_buf_take(&b);
}
