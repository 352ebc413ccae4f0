/* A host program built with nothing but a C compiler and libm:
 *   cc plain_host.c model.o -lm
 * It trains the thermometer model of model.h (smeltc compile
 * thermometer.smelt --prefix model), saves and reloads the params, and
 * exits 0 when the loss fell as it should. Run by tests/aot/plain_cc.sh. */
#include "model.h"

#include <stdio.h>

int main(int argc, char **argv) {
  static const float t_c[11] = {0.5f, 14.0f, 15.0f, 28.0f, 11.0f, 8.0f,
                                3.0f, -4.0f, 6.0f, 13.0f, 21.0f};
  static const float t_u[11] = {35.7f, 55.9f, 58.2f, 81.9f, 56.3f, 48.9f,
                                33.9f, 21.8f, 48.4f, 60.4f, 68.4f};
  static _Alignas(64) unsigned char params[MODEL_PARAMS_BYTES];
  static _Alignas(64) unsigned char arena[MODEL_ARENA_BYTES];
  const char *ckpt = argc > 1 ? argv[1] : "model.safetensors";
  char err[256];
  model_ctx ctx = {0};
  ctx.params = params;
  ctx.arena = arena;
  if (model_params_init(&ctx)) {
    fprintf(stderr, "init: %s\n", ctx.error);
    return 1;
  }
  float loss = 0, first = 0;
  for (int step = 0; step < 5000; step++) {
    if (model_train_step(&ctx, t_u, t_c, &loss)) {
      fprintf(stderr, "train_step: %s\n", ctx.error);
      return 1;
    }
    if (step == 0) first = loss;
  }
  float w = *model_param_w(params), b = *model_param_b(params);
  printf("loss %.6f -> %.6f, w %.6f, b %.6f\n", first, loss, w, b);
  /* Deep Learning with PyTorch's answer: w 5.367, b -17.30, loss 2.928 */
  if (!(loss < 2.95f && w > 5.3f && w < 5.4f && b > -17.4f && b < -17.2f)) return 1;
  if (model_params_save(params, ckpt, err, sizeof err)) {
    fprintf(stderr, "save: %s\n", err);
    return 1;
  }
  *model_param_w(params) = 0;
  if (model_params_load(params, ckpt, err, sizeof err) || *model_param_w(params) != w) {
    fprintf(stderr, "load: %s\n", err);
    return 1;
  }
  return 0;
}
