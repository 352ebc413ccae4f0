/* Optimizers as graph builders: update nodes with PyTorch's formulas
 * (torch.optim.SGD, Adam, AdamW, single-tensor code path), their state as
 * params named like PyTorch's state_dict entries. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

smelt_sgd_options smelt_sgd_defaults(double lr) {
  return (smelt_sgd_options){.lr = lr};
}

smelt_adam_options smelt_adam_defaults(void) {
  return (smelt_adam_options){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}

smelt_adam_options smelt_adamw_defaults(void) {
  smelt_adam_options o = smelt_adam_defaults();
  o.weight_decay = 1e-2;
  o.decoupled_weight_decay = true;
  return o;
}

/* Checks the param/grad lists; returns false with the error recorded.
 * out names the output list (updates or accumulate) in messages. */
static bool check_lists(smelt_graph *g, const char *op, int n, const smelt_node *params,
                        const smelt_node *grads, const void *opts, smelt_node *updates,
                        const char *out) {
  if (!g || g->error) return false;
  const char *null = !params ? "params" : !grads ? "grads" : !updates ? out : NULL;
  if (n < 0) {
    sm_fail(g, "%s: n %d is negative", op, n);
    return false;
  }
  if (n > 0 && null) {
    sm_fail(g, "%s: %s is NULL (n = %d)", op, null, n);
    return false;
  }
  if (!opts) {
    sm_fail(g, "%s: the options are NULL", op);
    return false;
  }
  for (int i = 0; i < n; i++) {
    char what[32];
    snprintf(what, sizeof what, "param %d", i);
    const sm_node *p = sm_arg(g, op, params[i], what);
    if (!p) return false;
    if (p->op != OP_PARAM || !sm_is_float((smelt_dtype)p->dtype)) {
      char id[128];
      sm_node_id(g, p, id, sizeof id);
      sm_fail(g, "%s: %s (%s) is not a float param", op, what, id);
      return false;
    }
    snprintf(what, sizeof what, "grad %d", i);
    const sm_node *gr = sm_arg(g, op, grads[i], what);
    if (!gr) return false;
    p = &g->nodes[params[i].index - 1];
    if (!sm_is_float((smelt_dtype)gr->dtype)) {
      sm_fail(g, "%s: grad %d of param \"%s\" is not a float tensor", op, i, p->name);
      return false;
    }
    if (gr->rank != p->rank || memcmp(gr->shape, p->shape, sizeof(int64_t) * p->rank)) {
      sm_fail(g, "%s: grad %d does not have the shape of param \"%s\"", op, i, p->name);
      return false;
    }
  }
  return true;
}

/* A zero-initialized state param named "<base>.<what>" shaped like like. */
static smelt_node state_like(smelt_graph *g, smelt_node like, const char *base, const char *what) {
  const sm_node *n = sm_get(g, like);
  char name[256];
  if ((size_t)snprintf(name, sizeof name, "%s.%s", base, what) >= sizeof name)
    return sm_fail(g, "optimizer: the state name \"%s.%s\" is too long", base, what);
  int64_t shape[SMELT_MAX_RANK];
  memcpy(shape, n->shape, sizeof shape);
  return smelt_param(g, name, (smelt_dtype)n->dtype, n->rank, shape, smelt_init_zeros());
}

/* The step counter: an f64 scalar param, as PyTorch keeps step as a float
 * and computes bias corrections in double. */
static smelt_node step_counter(smelt_graph *g, const char *prefix) {
  char name[256];
  if ((size_t)snprintf(name, sizeof name, "%s.step", prefix) >= sizeof name)
    return sm_fail(g, "optimizer: the prefix \"%s\" is too long", prefix);
  return smelt_param(g, name, SMELT_F64, 0, NULL, smelt_init_zeros());
}

static smelt_node axpy(smelt_graph *g, smelt_node y, double a, smelt_node x) {
  /* y + a*x, as torch's y.add(x, alpha=a) */
  return smelt_add(g, y, smelt_mul(g, x, smelt_scalar(g, a)));
}

int smelt_sgd(smelt_graph *g, const char *prefix, int n, const smelt_node *params,
              const smelt_node *grads, const smelt_sgd_options *o, smelt_node *updates) {
  if (!check_lists(g, "sgd", n, params, grads, o, updates, "updates")) return -1;
  if (!(o->lr >= 0) || !(o->momentum >= 0) || !(o->weight_decay >= 0))
    return sm_fail(g, "sgd: lr, momentum and weight_decay must be >= 0"), -1;
  if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
    return sm_fail(g, "sgd: nesterov momentum requires a momentum and zero dampening"), -1;
  int m = 0;
  /* The first step copies the gradient into the momentum buffer; with
   * dampening 0 that is what the general formula gives from zeros, so the
   * step counter is only needed with dampening. */
  smelt_node step = SMELT_INVALID, first = SMELT_INVALID;
  bool counted = o->momentum != 0 && o->dampening != 0;
  if (counted) {
    step = step_counter(g, prefix ? prefix : "sgd");
    first = smelt_eq(g, step, smelt_scalar(g, 0.0));
  }
  for (int i = 0; i < n; i++) {
    smelt_node p = params[i];
    smelt_node d = o->maximize ? smelt_neg(g, grads[i]) : grads[i];
    if (o->weight_decay != 0) d = axpy(g, d, o->weight_decay, p);
    if (o->momentum != 0) {
      smelt_node buf = state_like(g, p, smelt_node_name(g, p), "momentum_buffer");
      smelt_node next =
          axpy(g, smelt_mul(g, buf, smelt_scalar(g, o->momentum)), 1 - o->dampening, d);
      if (counted) next = smelt_where(g, first, d, next);
      updates[m++] = smelt_assign(g, buf, next);
      d = o->nesterov ? axpy(g, d, o->momentum, next) : next;
    }
    updates[m++] = smelt_assign(g, p, axpy(g, p, -o->lr, d));
  }
  if (counted) updates[m++] = smelt_assign(g, step, smelt_add(g, step, smelt_scalar(g, 1.0)));
  return g->error ? -1 : m;
}

int smelt_adam(smelt_graph *g, const char *prefix, int n, const smelt_node *params,
               const smelt_node *grads, const smelt_adam_options *o, smelt_node *updates) {
  const char *op = o && o->decoupled_weight_decay ? "adamw" : "adam";
  if (!check_lists(g, op, n, params, grads, o, updates, "updates")) return -1;
  if (!(o->lr >= 0) || !(o->eps >= 0) || !(o->weight_decay >= 0) || !(o->beta1 >= 0) ||
      !(o->beta1 < 1) || !(o->beta2 >= 0) || !(o->beta2 < 1))
    return sm_fail(g, "%s: need lr, eps, weight_decay >= 0 and betas in [0, 1)", op), -1;
  int m = 0;
  smelt_node step = step_counter(g, prefix ? prefix : op);
  smelt_node t = smelt_add(g, step, smelt_scalar(g, 1.0));
  /* bias corrections in double, as PyTorch computes them from a float step */
  smelt_node bc1 = smelt_sub(g, smelt_scalar(g, 1.0), smelt_pow(g, smelt_const(g, SMELT_F64, o->beta1), t));
  smelt_node bc2 = smelt_sub(g, smelt_scalar(g, 1.0), smelt_pow(g, smelt_const(g, SMELT_F64, o->beta2), t));
  smelt_node step_size = smelt_div(g, smelt_scalar(g, o->lr), bc1);
  smelt_node bc2_sqrt = smelt_sqrt(g, bc2);
  for (int i = 0; i < n; i++) {
    smelt_node p = params[i];
    const char *name = smelt_node_name(g, p);
    smelt_node gr = o->maximize ? smelt_neg(g, grads[i]) : grads[i];
    smelt_node base = p;
    if (o->weight_decay != 0) {
      if (o->decoupled_weight_decay)
        base = smelt_mul(g, p, smelt_scalar(g, 1 - o->lr * o->weight_decay));
      else
        gr = axpy(g, gr, o->weight_decay, p);
    }
    smelt_node m1 = state_like(g, p, name, "exp_avg");
    smelt_node m2 = state_like(g, p, name, "exp_avg_sq");
    smelt_node m1n = axpy(g, smelt_mul(g, m1, smelt_scalar(g, o->beta1)), 1 - o->beta1, gr);
    smelt_node m2n = smelt_add(g, smelt_mul(g, m2, smelt_scalar(g, o->beta2)),
                               smelt_mul(g, smelt_mul(g, gr, gr), smelt_scalar(g, 1 - o->beta2)));
    smelt_node denom = smelt_add(g, smelt_div(g, smelt_sqrt(g, m2n), bc2_sqrt), smelt_scalar(g, o->eps));
    smelt_node delta = smelt_mul(g, smelt_div(g, m1n, denom), smelt_neg(g, step_size));
    updates[m++] = smelt_assign(g, p, smelt_add(g, base, delta));
    updates[m++] = smelt_assign(g, m1, m1n);
    updates[m++] = smelt_assign(g, m2, m2n);
  }
  updates[m++] = smelt_assign(g, step, t);
  return g->error ? -1 : m;
}

int smelt_grad_accumulators(smelt_graph *g, int n, const smelt_node *params,
                            const smelt_node *grads, smelt_node *accumulate,
                            smelt_node *accumulated, smelt_node *zero) {
  static const int no_options = 0;
  if (!check_lists(g, "grad_accumulators", n, params, grads, &no_options, accumulate,
                   "accumulate"))
    return -1;
  if (n > 0 && (!accumulated || !zero)) {
    sm_fail(g, "grad_accumulators: %s is NULL (n = %d)", accumulated ? "zero" : "accumulated",
            n);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    smelt_node acc = state_like(g, params[i], smelt_node_name(g, params[i]), "grad_acc");
    accumulate[i] = smelt_assign(g, acc, smelt_add(g, acc, grads[i]));
    accumulated[i] = acc;
    zero[i] = smelt_assign(g, acc, smelt_scalar(g, 0.0));
  }
  return g->error ? -1 : 0;
}
