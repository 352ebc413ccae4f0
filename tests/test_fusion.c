/* Fusion: how graphs are partitioned into kernels (kernel and buffer
 * counts, exact text), the views pass and the sm_optimize pipeline, errors
 * and allocation failures. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "dump.h"
#include "passes/fusion.h"
#include "passes/passes.h"
#include "testutil.h"

/* ------------------------------------------------------------- helpers */

/* A fused program: the optimized graph, its roots and the partition. */
typedef struct fused {
  smelt_graph *opt;
  sm_fusion *f;
  uint32_t roots[64];
  size_t nroots;
} fused;

/* Optimizes g for the given nodes (sm_optimize) and fuses the result;
 * fails the test on any error. */
static fused fuse_nodes(smelt_graph *g, size_t n, const smelt_node *nodes) {
  TU_ASSERT_OK(g);
  fused r = {0};
  ck_assert(n <= 64);
  uint32_t want[64];
  for (size_t k = 0; k < n; k++) want[k] = nodes[k].index - 1;
  uint32_t *map = malloc(sizeof *map * smelt_graph_node_count(g));
  r.opt = sm_optimize(g, n, want, map, NULL);
  ck_assert_ptr_nonnull(r.opt);
  for (size_t k = 0; k < n; k++) {
    ck_assert_uint_ne(map[want[k]], 0);
    r.roots[k] = map[want[k]] - 1;
  }
  r.nroots = n;
  free(map);
  char *err = NULL;
  r.f = sm_fuse(r.opt, n, r.roots, &err);
  ck_assert_msg(r.f != NULL, "sm_fuse: %s", err ? err : "out of memory");
  return r;
}

/* The graph's outputs as roots. */
static fused fuse_outputs(smelt_graph *g) {
  smelt_node outs[64];
  size_t n = smelt_graph_output_count(g);
  ck_assert(n <= 64);
  for (size_t k = 0; k < n; k++) outs[k] = smelt_graph_output(g, k, NULL);
  return fuse_nodes(g, n, outs);
}

static void fused_free(fused *r) {
  sm_fusion_free(r->f);
  smelt_graph_free(r->opt);
}

static bool has(const uint32_t *v, size_t n, uint32_t x) {
  for (size_t k = 0; k < n; k++)
    if (v[k] == x) return true;
  return false;
}

static bool is_source_buffer(const sm_node *n) {
  return n->op == OP_INPUT || n->op == OP_PARAM ||
         (n->op == OP_CONST && sm_numel(n->rank, n->shape) > 1);
}

/* The invariants of fusion.h: every member's inputs are members or buffers
 * written by earlier groups (so the order is valid and no path leaves a
 * group and comes back: convexity), views are never stored unless roots,
 * stored_by and materialized agree with the groups, every root is
 * materialized. */
static void check_partition(const sm_fusion *f) {
  const smelt_graph *g = f->g;
  for (size_t k = 0; k < f->ngroups; k++) {
    const sm_group *gr = &f->groups[k];
    ck_assert_uint_gt(gr->noutputs, 0);
    ck_assert(has(gr->members, gr->nmembers, gr->anchor));
    for (size_t m = 1; m < gr->nmembers; m++) ck_assert_uint_lt(gr->members[m - 1], gr->members[m]);
    for (size_t o = 0; o < gr->noutputs; o++) {
      ck_assert(has(gr->members, gr->nmembers, gr->outputs[o]));
      ck_assert_int_eq(f->stored_by[gr->outputs[o]], (int)k);
      ck_assert(f->materialized[gr->outputs[o]]);
    }
    for (size_t m = 0; m < gr->nmembers; m++) {
      const sm_node *n = &g->nodes[gr->members[m]];
      for (uint32_t j = 0; j < n->ninputs; j++) {
        uint32_t in = n->inputs[j];
        if (has(gr->members, gr->nmembers, in)) continue;
        ck_assert_msg(has(gr->inputs, gr->ninputs, in), "k%zu: %u reads %u, not an input", k,
                      gr->members[m], in);
        ck_assert(f->materialized[in]);
        if (f->stored_by[in] >= 0)
          ck_assert_msg(f->stored_by[in] < (int)k, "k%zu reads %u of a later kernel", k, in);
        else
          ck_assert(is_source_buffer(&g->nodes[in]));
      }
    }
  }
  for (size_t k = 0; k < f->nroots; k++) ck_assert(f->materialized[f->roots[k]]);
}

static size_t count_intermediates(const sm_fusion *f) {
  size_t n = 0;
  for (size_t i = 0; i < f->g->nnodes; i++)
    if (f->stored_by[i] >= 0 && !has(f->roots, f->nroots, (uint32_t)i)) n++;
  return n;
}

static char *fusion_text(const fused *r) {
  char *t = sm_fusion_print(r->f);
  ck_assert_ptr_nonnull(t);
  return t;
}

/* Prints the optimized graph and the partition (for failures). */
static __attribute__((unused)) void show(const char *what, const fused *r) {
  char *gt = smelt_graph_print(r->opt);
  char *t = fusion_text(r);
  printf("== %s\n%s%s", what, gt, t);
  smelt_free(gt);
  sm_free(t);
}

static fused mlp_step(smelt_graph *g, int64_t batch, int64_t in, int64_t hidden, int64_t out) {
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, (int)batch, (int)in);
  smelt_node y = tu_input(g, "labels", SMELT_I64, 1, (int)batch);
  smelt_node w1 = smelt_param(g, "w1", SMELT_F32, 2, TU_DIMS(in, hidden), smelt_init_normal(0, 0.05, 1));
  smelt_node b1 = smelt_param(g, "b1", SMELT_F32, 1, TU_DIMS(hidden), smelt_init_zeros());
  smelt_node w2 = smelt_param(g, "w2", SMELT_F32, 2, TU_DIMS(hidden, out), smelt_init_normal(0, 0.05, 2));
  smelt_node b2 = smelt_param(g, "b2", SMELT_F32, 1, TU_DIMS(out), smelt_init_zeros());
  smelt_node h = smelt_relu(g, smelt_add(g, smelt_matmul(g, x, w1), b1));
  smelt_node logits = smelt_add(g, smelt_matmul(g, h, w2), b2);
  smelt_node loss = smelt_output(g, "loss", smelt_cross_entropy(g, logits, y));
  smelt_node params[4] = {w1, b1, w2, b2}, grads[4], upd[SMELT_OPTIM_MAX_UPDATES(4)];
  ck_assert_int_eq(smelt_grad(g, loss, 4, params, grads), 0);
  smelt_sgd_options o = smelt_sgd_defaults(0.1);
  int nu = smelt_sgd(g, "sgd", 4, params, grads, &o, upd);
  ck_assert_int_ge(nu, 4);
  smelt_node roots[1 + SMELT_OPTIM_MAX_UPDATES(4)];
  roots[0] = loss;
  for (int k = 0; k < nu; k++) roots[1 + k] = tu_node_input(g, upd[k], 1);
  return fuse_nodes(g, 1 + (size_t)nu, roots);
}

/* Asserts the partition's text exactly (printing both on failure). */
#define ASSERT_FUSION_TEXT(r, want)                                                     \
  do {                                                                                  \
    char *got_ = fusion_text(r);                                                        \
    ck_assert_msg(strcmp(got_, (want)) == 0, "--- got\n%s--- want\n%s", got_, (want));  \
    sm_free(got_);                                                                      \
  } while (0)

START_TEST(elementwise_chain_is_one_kernel) {
  /* 8 elementwise ops, three of them on broadcast operands */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 16, 32);
  smelt_node b = tu_input(g, "b", SMELT_F32, 1, 32);
  smelt_node c = tu_input(g, "c", SMELT_F32, 2, 16, 1);
  smelt_node t = smelt_mul(g, x, b);
  t = smelt_add(g, t, c);
  t = smelt_exp(g, t);
  t = smelt_sub(g, t, smelt_scalar(g, 1));
  t = smelt_tanh(g, t);
  t = smelt_mul(g, t, b);
  t = smelt_maximum(g, t, c);
  t = smelt_sqrt(g, t);
  smelt_output(g, "y", t);
  fused r = fuse_outputs(g);
  check_partition(r.f);
  ck_assert_uint_eq(r.f->ngroups, 1);
  ck_assert_uint_eq(count_intermediates(r.f), 0);
  ck_assert_uint_eq(r.f->groups[0].noutputs, 1);
  fused_free(&r);
  smelt_graph_free(g);
}
END_TEST

START_TEST(image_times_scale_stores_only_the_output) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 4, 2, 256, 256, 3);
  smelt_node s = tu_input(g, "scale", SMELT_F32, 4, 2, 1, 1, 3);
  smelt_node y = smelt_output(g, "y", smelt_mul(g, x, s));
  fused r = fuse_outputs(g);
  check_partition(r.f);
  ck_assert_uint_eq(r.f->ngroups, 1);
  size_t stored = 0;
  for (size_t i = 0; i < r.opt->nnodes; i++) stored += r.f->stored_by[i] >= 0;
  ck_assert_uint_eq(stored, 1);
  ck_assert_int_eq(r.f->stored_by[r.roots[0]], 0);
  ck_assert_str_eq(smelt_node_op(r.opt, sm_handle(r.opt, r.roots[0])), "mul");
  (void)y;
  fused_free(&r);
  smelt_graph_free(g);
}
END_TEST

START_TEST(softmax_three_kernels) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 8);
  smelt_output(g, "y", smelt_softmax(g, x, -1));
  fused r = fuse_outputs(g);
  check_partition(r.f);
  ck_assert_uint_le(r.f->ngroups, 3);
  ASSERT_FUSION_TEXT(&r, "kernel k0 reduce anchor=%1\n"
                         "  members: %1\n"
                         "  inputs: %x\n"
                         "  outputs: %1\n"
                         "kernel k1 reduce anchor=%6\n"
                         "  members: %2 %3 %4 %5 %6\n"
                         "  inputs: %x %1\n"
                         "  outputs: %6\n"
                         "kernel k2 pointwise anchor=%8\n"
                         "  members: %2 %3 %4 %5 %7 %8\n"
                         "  inputs: %x %1 %6\n"
                         "  outputs: %8\n"
                         "3 kernels, 2 intermediate buffers\n");
  fused_free(&r);
  smelt_graph_free(g);
}
END_TEST

START_TEST(mean_is_one_kernel) {
  /* mean = reduce_sum * (1/n): the scale is the reduction's epilogue */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 8);
  const int ax = 1;
  smelt_output(g, "m", smelt_mean(g, x, 1, &ax, false));
  fused r = fuse_outputs(g);
  check_partition(r.f);
  ck_assert_uint_eq(r.f->ngroups, 1);
  ck_assert_int_eq(r.f->groups[0].kind, SM_GROUP_REDUCE);
  ck_assert_uint_eq(count_intermediates(r.f), 0);
  fused_free(&r);
  smelt_graph_free(g);
}
END_TEST

START_TEST(matmul_bias_relu_is_one_kernel) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 8, 16);
  smelt_node w = smelt_param(g, "w", SMELT_F32, 2, TU_DIMS(16, 4), smelt_init_zeros());
  smelt_node b = smelt_param(g, "b", SMELT_F32, 1, TU_DIMS(4), smelt_init_zeros());
  smelt_output(g, "y", smelt_relu(g, smelt_add(g, smelt_matmul(g, x, w), b)));
  fused r = fuse_outputs(g);
  check_partition(r.f);
  ASSERT_FUSION_TEXT(&r, "kernel k0 matmul anchor=%3\n"
                         "  members: %3 %4 %5 %6 %7\n"
                         "  inputs: %x %w %b\n"
                         "  outputs: %7\n"
                         "1 kernel, 0 intermediate buffers\n");
  fused_free(&r);
  smelt_graph_free(g);
}
END_TEST

START_TEST(mlp_training_step) {
  smelt_graph *g = TU_GRAPH();
  fused r = mlp_step(g, 64, 784, 256, 10);
  check_partition(r.f);
  size_t inter = count_intermediates(r.f);
  printf("MLP 784-256-10 training step: %zu kernels, %zu intermediate buffers\n", r.f->ngroups,
         inter);
  /* the label pick's gradient is a select, not a scatter kernel */
  ck_assert_uint_eq(r.f->ngroups, 11);
  ck_assert_uint_eq(inter, 8);
  /* each update is stored by the kernel of its gradient (an epilogue) */
  size_t epi = 0;
  for (size_t k = 1; k < r.nroots; k++) {
    int32_t s = r.f->stored_by[r.roots[k]];
    ck_assert_int_ge(s, 0);
    epi += r.f->groups[s].kind != SM_GROUP_POINTWISE;
  }
  ck_assert_uint_eq(epi, 4);
  fused_free(&r);
  smelt_graph_free(g);
}
END_TEST

START_TEST(diamond_stays_convex) {
  /* a feeds both the reduction and its consumer c; a, c and d have one
   * shape, but a and c cannot share a kernel (a -> s -> c), d can join c */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 8);
  smelt_node a = smelt_set_name(g, smelt_exp(g, x), "a");
  const int ax = 1;
  smelt_node s = smelt_sum(g, a, 1, &ax, true);
  smelt_output(g, "a", a);
  smelt_output(g, "c", smelt_set_name(g, smelt_mul(g, a, s), "c"));
  smelt_output(g, "d", smelt_set_name(g, smelt_log(g, x), "d"));
  fused r = fuse_outputs(g);
  check_partition(r.f);
  ASSERT_FUSION_TEXT(&r, "kernel k0 reduce anchor=%2\n"
                         "  members: %a %2\n"
                         "  inputs: %x\n"
                         "  outputs: %a %2\n"
                         "kernel k1 pointwise anchor=%c\n"
                         "  members: %3 %c %d\n"
                         "  inputs: %x %a %2\n"
                         "  outputs: %c %d\n"
                         "2 kernels, 1 intermediate buffer\n");
  fused_free(&r);
  smelt_graph_free(g);
}
END_TEST

START_TEST(view_root_gets_a_copy_kernel) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 8);
  smelt_output(g, "y", smelt_transpose(g, x, 0, 1));
  smelt_output(g, "x", x); /* an input root: copied by the runtime */
  fused r = fuse_outputs(g);
  check_partition(r.f);
  ASSERT_FUSION_TEXT(&r, "kernel k0 pointwise anchor=%1\n"
                         "  members: %1\n"
                         "  inputs: %x\n"
                         "  outputs: %1\n"
                         "1 kernel, 0 intermediate buffers\n");
  ck_assert_int_eq(r.f->stored_by[r.roots[1]], -1);
  ck_assert(r.f->materialized[r.roots[1]]);
  fused_free(&r);
  smelt_graph_free(g);
}
END_TEST

START_TEST(reductions_share_a_kernel) {
  /* sum and max over the same input and axes, plus their epilogues */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 8);
  const int ax = 1;
  smelt_node s = smelt_sum(g, smelt_exp(g, x), 1, &ax, false);
  smelt_node m = smelt_max(g, smelt_exp(g, x), 1, &ax, false);
  smelt_output(g, "r", smelt_div(g, s, m));
  smelt_output(g, "m", m);
  fused r = fuse_outputs(g);
  check_partition(r.f);
  ck_assert_uint_eq(r.f->ngroups, 1);
  ck_assert_int_eq(r.f->groups[0].kind, SM_GROUP_REDUCE);
  ck_assert_uint_eq(count_intermediates(r.f), 0);
  fused_free(&r);
  smelt_graph_free(g);
}
END_TEST

START_TEST(cost_rule) {
  /* cheap a (one add) read by two kernels is recomputed; expensive b
   * (three exps) is stored once; a shared rand is stored */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 8);
  const int ax = 1;
  smelt_node a = smelt_add(g, x, smelt_scalar(g, 1));
  smelt_output(g, "sa", smelt_sum(g, a, 1, &ax, false));
  smelt_output(g, "pa", smelt_mul(g, a, a));
  smelt_node b = smelt_exp(g, smelt_exp(g, smelt_exp(g, x)));
  smelt_output(g, "sb", smelt_min(g, b, 1, &(int){0}, false));
  smelt_output(g, "pb", smelt_neg(g, b));
  smelt_node u = smelt_rand(g, SMELT_F32, 2, TU_DIMS(4, 8), 7);
  smelt_output(g, "su", smelt_prod(g, u, 1, &(int){0}, false));
  smelt_output(g, "pu", smelt_add(g, u, x));
  fused r = fuse_outputs(g);
  check_partition(r.f);
  const sm_node *nodes = r.opt->nodes;
  bool stored_exp = false, stored_rand = false, stored_add1 = false;
  for (size_t i = 0; i < r.opt->nnodes; i++) {
    if (r.f->stored_by[i] < 0 || has(r.roots, r.nroots, (uint32_t)i)) continue;
    stored_exp |= nodes[i].op == OP_EXP;
    stored_rand |= nodes[i].op == OP_RAND;
    stored_add1 |= nodes[i].op == OP_ADD;
  }
  ck_assert(stored_exp);
  ck_assert(stored_rand);
  ck_assert(!stored_add1);
  fused_free(&r);
  smelt_graph_free(g);
}
END_TEST

START_TEST(gather_and_scatter) {
  /* gather reads its x from a buffer (materialized), the index inline;
   * scatter_add anchors its own kernel */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 8);
  smelt_node i = tu_input(g, "i", SMELT_I64, 2, 4, 2);
  smelt_node e = smelt_exp(g, x);
  smelt_node ga = smelt_gather(g, e, 1, smelt_add(g, i, smelt_scalar_int(g, 1)));
  smelt_output(g, "g", ga);
  smelt_output(g, "s", smelt_scatter_add(g, smelt_zeros(g, SMELT_F32, 2, TU_DIMS(4, 8)), 1, i, ga));
  fused r = fuse_outputs(g);
  check_partition(r.f);
  bool scatter = false;
  for (size_t k = 0; k < r.f->ngroups; k++) scatter |= r.f->groups[k].kind == SM_GROUP_SCATTER;
  ck_assert(scatter);
  for (size_t n = 0; n < r.opt->nnodes; n++) {
    if (r.opt->nodes[n].op == OP_EXP) ck_assert_int_ge(r.f->stored_by[n], 0);
    if (r.opt->nodes[n].op == OP_SCATTER_ADD) ck_assert_int_ge(r.f->stored_by[n], 0);
  }
  fused_free(&r);
  smelt_graph_free(g);
}
END_TEST

/* max_pool2d is an argmax and a gather of the window at it: the gather
 * reads the argmax at its own point, so it is the reduction's epilogue and
 * the pooled value is stored by the argmax's kernel. */
START_TEST(max_pool_gathers_in_the_argmax_kernel) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 4, 2, 3, 4, 4);
  smelt_output(g, "y", smelt_max_pool2d(g, x, TU_DIMS(2, 2), NULL, NULL, NULL, false));
  fused r = fuse_outputs(g);
  check_partition(r.f);
  ck_assert_uint_eq(r.f->ngroups, 1);
  ck_assert_int_eq(r.f->groups[0].kind, SM_GROUP_REDUCE);
  ck_assert_int_eq(r.opt->nodes[r.f->groups[0].outputs[0]].op, OP_RESHAPE);
  fused_free(&r);
  smelt_graph_free(g);
}
END_TEST

/* A convolution's im2col is copied once: the weight gradient's matmul
 * reads the forward's copy through a transposed (strided) view instead of
 * copying the transposed columns again. */
START_TEST(conv_columns_are_copied_once) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 4, 2, 3, 6, 6);
  smelt_node w = smelt_param(g, "w", SMELT_F32, 4, TU_DIMS(4, 3, 3, 3), smelt_init_normal(0, 0.1, 1));
  smelt_node y = smelt_conv2d(g, x, w, SMELT_INVALID, NULL, TU_DIMS(1, 1), NULL, 1);
  smelt_node loss = smelt_output(g, "loss", smelt_sum(g, smelt_mul(g, y, y), 0, NULL, false));
  smelt_node dw;
  ck_assert_int_eq(smelt_grad(g, loss, 1, &w, &dw), 0);
  smelt_node roots[] = {loss, dw};
  fused r = fuse_nodes(g, 2, roots);
  check_partition(r.f);
  int copies = 0, matmuls = 0;
  for (size_t k = 0; k < r.f->ngroups; k++) {
    const sm_group *gr = &r.f->groups[k];
    const sm_node *a = &r.opt->nodes[gr->anchor];
    matmuls += gr->kind == SM_GROUP_MATMUL;
    copies += gr->kind == SM_GROUP_POINTWISE && (sm_ops[a->op].cls == OPC_VIEW || sm_ops[a->op].cls == OPC_PAD);
  }
  ck_assert_int_eq(matmuls, 2);
  ck_assert_int_eq(copies, 1);
  fused_free(&r);
  smelt_graph_free(g);
}
END_TEST

START_TEST(dot_has_clusters) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 2, 4, 8);
  smelt_output(g, "y", smelt_softmax(g, x, -1));
  fused r = fuse_outputs(g);
  char *dot = sm_fusion_print_dot(r.f);
  ck_assert_ptr_nonnull(dot);
  ck_assert_ptr_nonnull(strstr(dot, "digraph fusion {"));
  ck_assert_ptr_nonnull(strstr(dot, "subgraph cluster_k0 {"));
  ck_assert_ptr_nonnull(strstr(dot, "subgraph cluster_k2 {"));
  ck_assert_ptr_null(strstr(dot, "subgraph cluster_k3 {"));
  ck_assert_ptr_nonnull(strstr(dot, "n0 [label=\"%x input\""));
  ck_assert_ptr_nonnull(strstr(dot, "k0_n1 -> k1_n2;")); /* the max, read by k1 */
  sm_free(dot);
  fused_free(&r);
  smelt_graph_free(g);
}
END_TEST

START_TEST(errors_are_clear) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 3);
  smelt_node w = smelt_param(g, "w", SMELT_F32, 1, TU_DIMS(3), smelt_init_zeros());
  smelt_node up = smelt_assign(g, w, smelt_exp(g, x));
  char *err = NULL;
  uint32_t bad = 99;
  ck_assert_ptr_null(sm_fuse(g, 1, &bad, &err));
  ck_assert_str_eq(err, "fusion: root 0 is node 99 but the graph has 4 nodes");
  sm_free(err);
  uint32_t a = up.index - 1;
  ck_assert_ptr_null(sm_fuse(g, 1, &a, &err));
  ck_assert_str_eq(err, "fusion: root 0 (%3) is an assign; pass the value it writes");
  sm_free(err);
  ck_assert_ptr_null(sm_fuse(g, 1, NULL, &err));
  ck_assert_str_eq(err, "fusion: 1 roots but the root array is NULL");
  sm_free(err);
  smelt_add(g, x, tu_input(g, "y", SMELT_F32, 1, 4)); /* a sticky error */
  uint32_t r0 = x.index - 1;
  ck_assert_ptr_null(sm_fuse(g, 1, &r0, &err));
  ck_assert_ptr_nonnull(strstr(err, "fusion: the graph has an error: add: cannot broadcast"));
  sm_free(err);
  smelt_graph_free(g);
}
END_TEST

START_TEST(allocation_failures) {
  /* every allocation of optimize, fuse and print fails in turn: NULL, no
   * leak (ASan and valgrind check), and then success */
  smelt_graph *g = TU_GRAPH();
  fused ref = mlp_step(g, 4, 6, 5, 3);
  char *want = fusion_text(&ref);
  char *want_dot = sm_fusion_print_dot(ref.f);
  size_t n = ref.nroots;
  uint32_t roots[64];
  smelt_node outs[64];
  for (size_t k = 0; k < n; k++) outs[k] = smelt_graph_output(g, 0, NULL);
  (void)outs;
  /* the roots of the original graph (fuse_nodes mapped them) */
  memcpy(roots, ref.roots, sizeof *roots * n);
  bool done = false;
  for (long fail_at = 0; !done; fail_at++) {
    ck_assert_int_lt(fail_at, 100000);
    sm_alloc_fail_after(fail_at);
    char *err = NULL;
    sm_fusion *f = sm_fuse(ref.opt, n, roots, &err);
    char *text = f ? sm_fusion_print(f) : NULL;
    char *dot = f ? sm_fusion_print_dot(f) : NULL;
    sm_alloc_fail_after(-1);
    if (!f) ck_assert_ptr_null(err); /* out of memory has no message */
    if (f && text && dot) {
      ck_assert_str_eq(text, want);
      ck_assert_str_eq(dot, want_dot);
      done = true;
    }
    sm_free(text);
    sm_free(dot);
    sm_fusion_free(f);
  }
  sm_free(want);
  sm_free(want_dot);
  fused_free(&ref);
  smelt_graph_free(g);
}
END_TEST

START_TEST(optimize_allocation_failures) {
  const char *text = "input %x : f32[2,3]\n%a = reshape %x : f32[3,2]\n%b = mul %a, 1\n"
                     "%c = reshape %b : f32[6]\n%d = exp %c\noutput y = %d\n";
  char err[256];
  smelt_graph *g = smelt_graph_parse(text, strlen(text), "t", err, sizeof err);
  ck_assert_ptr_nonnull(g);
  uint32_t root = smelt_graph_output(g, 0, NULL).index - 1;
  bool done = false;
  for (long fail_at = 0; !done; fail_at++) {
    ck_assert_int_lt(fail_at, 100000);
    sm_alloc_fail_after(fail_at);
    smelt_graph *h = sm_optimize(g, 1, &root, NULL, NULL);
    sm_alloc_fail_after(-1);
    done = h != NULL;
    smelt_graph_free(h);
  }
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------------ views, optimize */

/* Runs a pass on a text graph (roots = its outputs) and returns the
 * printed result. */
static char *run_text(smelt_graph *(*pass)(const smelt_graph *, size_t, const uint32_t *,
                                           uint32_t *),
                      const char *text) {
  char err[512] = "";
  smelt_graph *g = smelt_graph_parse(text, strlen(text), "t.smelt", err, sizeof err);
  ck_assert_msg(g != NULL, "parse: %s", err);
  size_t n = smelt_graph_output_count(g);
  uint32_t roots[16];
  for (size_t k = 0; k < n; k++) roots[k] = smelt_graph_output(g, k, NULL).index - 1;
  smelt_graph *h = pass(g, n, roots, NULL);
  ck_assert_ptr_nonnull(h);
  char *out = smelt_graph_print(h);
  smelt_graph_free(h);
  smelt_graph_free(g);
  return out;
}

static smelt_graph *optimize_nodump(const smelt_graph *g, size_t n, const uint32_t *r,
                                    uint32_t *map) {
  return sm_optimize(g, n, r, map, NULL);
}

static const struct {
  const char *name, *in, *want;
} view_cases[] = {
    {"reshape of reshape is one reshape",
     "input %x : f32[2,3]\n%a = reshape %x : f32[3,2]\n%b = mul %a, 1\n"
     "%c = reshape %b : f32[6]\noutput y = %c\n",
     "# smelt graph\ninput %x : f32[2,3]\n%c = reshape %x : f32[6]\noutput y = %c\n"},
    {"a reshape back to the start vanishes",
     "input %x : f32[2,3]\n%a = reshape %x : f32[6]\n%b = mul %a, 1\n"
     "%c = reshape %b : f32[2,3]\n%d = exp %c\noutput y = %d\n",
     "# smelt graph\ninput %x : f32[2,3]\n%d = exp %x : f32[2,3]\noutput y = %d\n"},
    {"permutes compose",
     "input %x : f32[2,3,4]\n%a = permute %x perm=[1,2,0]\n%b = mul %a, 1\n"
     "%c = permute %b perm=[0,2,1]\noutput y = %c\n",
     "# smelt graph\ninput %x : f32[2,3,4]\n%c = permute %x perm=[1,0,2] : f32[3,2,4]\n"
     "output y = %c\n"},
    {"inverse permutes vanish",
     "input %x : f32[2,3]\n%a = permute %x perm=[1,0]\n%b = mul %a, 1\n"
     "%c = permute %b perm=[1,0]\n%d = neg %c\noutput y = %d\n",
     "# smelt graph\ninput %x : f32[2,3]\n%d = neg %x : f32[2,3]\noutput y = %d\n"},
    {"expand of expand is one expand",
     "input %x : f32[1,1]\n%a = expand %x : f32[1,3]\n%b = mul %a, 1\n"
     "%c = expand %b : f32[2,3]\noutput y = %c\n",
     "# smelt graph\ninput %x : f32[1,1]\n%c = expand %x : f32[2,3]\noutput y = %c\n"},
    {"unit dims move below an expand, and the expands meet",
     "input %x : f32[3]\n%a = reshape %x : f32[1,3]\n%b = expand %a : f32[4,3]\n"
     "%c = mul %b, 1\n%d = reshape %c : f32[1,4,3]\n%e = expand %d : f32[2,4,3]\noutput y = %e\n",
     "# smelt graph\ninput %x : f32[3]\n%1 = reshape %x : f32[1,1,3]\n"
     "%e = expand %1 : f32[2,4,3]\noutput y = %e\n"},
};

START_TEST(views_exact) {
  char *out = run_text(optimize_nodump, view_cases[_i].in);
  ck_assert_msg(strcmp(out, view_cases[_i].want) == 0, "%s:\n--- got\n%s--- want\n%s",
                view_cases[_i].name, out, view_cases[_i].want);
  smelt_free(out);
}
END_TEST

START_TEST(views_alone_keep_other_ops) {
  /* without simplify, the mul keeps the reshapes apart */
  char *out = run_text(sm_pass_views, "input %x : f32[2,3]\n%a = reshape %x : f32[3,2]\n"
                                      "%b = mul %a, 1\n%c = reshape %b : f32[6]\noutput y = %c\n");
  ck_assert_str_eq(out, "# smelt graph\ninput %x : f32[2,3]\n%a = reshape %x : f32[3,2]\n"
                        "%2 = const 1 : f32[]\n%3 = reshape %2 : f32[1,1]\n"
                        "%4 = expand %3 : f32[3,2]\n%b = mul %a, %4 : f32[3,2]\n%c = reshape %b : f32[6]\noutput y = %c\n");
  smelt_free(out);
}
END_TEST

START_TEST(optimize_dumps_each_pass_and_maps) {
  const char *text = "input %x : f32[2,3]\n%a = reshape %x : f32[3,2]\n%b = mul %a, 1\n"
                     "%c = reshape %b : f32[6]\noutput y = %c\n";
  char err[256];
  smelt_graph *g = smelt_graph_parse(text, strlen(text), "t", err, sizeof err);
  ck_assert_ptr_nonnull(g);
  uint32_t root = smelt_graph_output(g, 0, NULL).index - 1;
  uint32_t map[16];
  ck_assert_uint_le(g->nnodes, 16);
  sm_dump d = {.stages = SM_DUMP_PASSES};
  sm_dump_capture_begin(SM_DUMP_PASSES);
  smelt_graph *h = sm_optimize(g, 1, &root, map, &d);
  char *dumped = sm_dump_capture_end();
  ck_assert_ptr_nonnull(h);
  ck_assert_ptr_nonnull(dumped);
  ck_assert_str_eq(dumped, "; passes simplify\n# smelt graph\ninput %x : f32[2,3]\n"
                           "%a = reshape %x : f32[3,2]\n%c = reshape %a : f32[6]\noutput y = %c\n"
                           "; passes views\n# smelt graph\ninput %x : f32[2,3]\n"
                           "%c = reshape %x : f32[6]\noutput y = %c\n");
  /* old node -> new index + 1: x stays 0, a is gone, c is node 1 */
  ck_assert_uint_eq(map[0], 1);
  ck_assert_uint_eq(map[1], 0);
  ck_assert_uint_eq(map[root], 2);
  sm_free(dumped);
  smelt_graph_free(h);
  smelt_graph_free(g);
}
END_TEST

int main(void) {
  Suite *s = suite_create("fusion");
  TCase *tc = tcase_create("partition");
  tcase_add_test(tc, elementwise_chain_is_one_kernel);
  tcase_add_test(tc, image_times_scale_stores_only_the_output);
  tcase_add_test(tc, softmax_three_kernels);
  tcase_add_test(tc, mean_is_one_kernel);
  tcase_add_test(tc, matmul_bias_relu_is_one_kernel);
  tcase_add_test(tc, mlp_training_step);
  tcase_add_test(tc, diamond_stays_convex);
  tcase_add_test(tc, view_root_gets_a_copy_kernel);
  tcase_add_test(tc, reductions_share_a_kernel);
  tcase_add_test(tc, cost_rule);
  tcase_add_test(tc, gather_and_scatter);
  tcase_add_test(tc, max_pool_gathers_in_the_argmax_kernel);
  tcase_add_test(tc, conv_columns_are_copied_once);
  tcase_add_test(tc, dot_has_clusters);
  tcase_add_test(tc, errors_are_clear);
  suite_add_tcase(s, tc);
  TCase *oom = tcase_create("allocation failures");
  tcase_set_timeout(oom, 600);
  tcase_add_test(oom, allocation_failures);
  tcase_add_test(oom, optimize_allocation_failures);
  suite_add_tcase(s, oom);
  TCase *views = tcase_create("views and optimize");
  tcase_add_loop_test(views, views_exact, 0, (int)(sizeof view_cases / sizeof view_cases[0]));
  tcase_add_test(views, views_alone_keep_other_ops);
  tcase_add_test(views, optimize_dumps_each_pass_and_maps);
  suite_add_tcase(s, views);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
