/* The thermometer example (Deep Learning with PyTorch, chapter 5): fit
 * t_c = w * (0.1 * t_u) + b by full-batch SGD on the mean squared error.
 *
 * The whole training step is one graph: the forward pass, the loss, its
 * gradient (built symbolically by smelt_grad) and the SGD update nodes
 * (smelt_sgd). A program runs it: each run computes the loss and updates
 * w and b in their persistent storage (smelt_params). */
#include <math.h>
#include <smelt/smelt.h>
#include <stdio.h>

static const float t_c[] = {0.5f, 14.0f, 15.0f, 28.0f, 11.0f, 8.0f, 3.0f, -4.0f, 6.0f, 13.0f, 21.0f};
static const float t_u[] = {35.7f, 55.9f, 58.2f, 81.9f, 56.3f, 48.9f,
                            33.9f, 21.8f, 48.4f, 60.4f, 68.4f};
enum { N = 11, STEPS = 5000 };

int main(void) {
  smelt_graph *g = smelt_graph_new();
  if (!g) return 1;
  const int64_t n = N;
  smelt_node x = smelt_input(g, "t_u", SMELT_F32, 1, &n);
  smelt_node y = smelt_input(g, "t_c", SMELT_F32, 1, &n);
  smelt_node w = smelt_param(g, "w", SMELT_F32, 0, NULL, smelt_init_ones());
  smelt_node b = smelt_param(g, "b", SMELT_F32, 0, NULL, smelt_init_zeros());

  /* model and loss */
  smelt_node pred = smelt_add(g, smelt_mul(g, w, smelt_mul(g, x, smelt_scalar(g, 0.1))), b);
  smelt_node loss = smelt_mse_loss(g, pred, y);
  smelt_output(g, "loss", loss);

  /* gradients and the optimizer's updates, as graph */
  smelt_node params[2] = {w, b}, grads[2], updates[SMELT_OPTIM_MAX_UPDATES(2)];
  smelt_grad(g, loss, 2, params, grads);
  smelt_sgd_options sgd = smelt_sgd_defaults(1e-2);
  int nupdates = smelt_sgd(g, "sgd", 2, params, grads, &sgd, updates);
  if (smelt_graph_error(g)) {
    fprintf(stderr, "building the graph failed: %s\n", smelt_graph_error(g));
    smelt_graph_free(g);
    return 1;
  }

  smelt_params *state = smelt_params_new(g);
  const char *outputs[] = {"loss"};
  smelt_program *train = smelt_program_new(g, state, 1, outputs, nupdates, updates);
  int rc = 1;
  float l = NAN, wv = NAN, bv = NAN;
  if (!state || !train || smelt_program_error(train)) {
    fprintf(stderr, "program: %s\n", train ? smelt_program_error(train) : "out of memory");
    goto done;
  }
  if (smelt_program_bind(train, "t_u", SMELT_F32, 1, &n, t_u, sizeof t_u) ||
      smelt_program_bind(train, "t_c", SMELT_F32, 1, &n, t_c, sizeof t_c)) {
    fprintf(stderr, "bind: %s\n", smelt_program_error(train));
    goto done;
  }
  for (int step = 1; step <= STEPS; step++) {
    if (smelt_program_run(train) || smelt_program_read(train, "loss", SMELT_F32, &l, sizeof l)) {
      fprintf(stderr, "step %d: %s\n", step, smelt_program_error(train));
      goto done;
    }
    if (step == 1 || step % 500 == 0) printf("epoch %4d  loss %.4f\n", step, l);
  }
  /* the loss printed is the one before the last update; read the params */
  smelt_params_read(state, "w", SMELT_F32, &wv, sizeof wv);
  smelt_params_read(state, "b", SMELT_F32, &bv, sizeof bv);
  printf("w = %.4f, b = %.4f, loss = %.4f\n", wv, bv, l);
  /* PyTorch's result for the same run */
  rc = fabsf(wv - 5.3671f) < 1e-3f && fabsf(bv - -17.3012f) < 1e-3f && fabsf(l - 2.9276f) < 1e-3f
           ? 0
           : 1;
  if (rc) fprintf(stderr, "expected w = 5.3671, b = -17.3012, loss = 2.9276\n");
done:
  smelt_program_free(train);
  smelt_params_free(state);
  smelt_graph_free(g);
  return rc;
}
