/* Training and running a model compiled ahead of time, with nothing but a
 * C compiler: no smelt, no LLVM at run time.
 *
 *   smeltc compile spirals.smelt -o spirals.o --header spirals.h
 *   cc -O2 main.c spirals.o -lm -o spirals          (add -fopenmp for threads)
 *   ./spirals [checkpoint.safetensors]
 *
 * It makes three interleaved spirals of 2-D points, trains the classifier
 * of spirals.smelt on them with the object's train_step, measures its
 * accuracy on fresh points with predict, and saves the params as a
 * safetensors checkpoint (loadable by smelt_params_load and by PyTorch's
 * safetensors). It exits non-zero when the accuracy is below 95%. */
#include "spirals.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

enum { BATCH = SPIRALS_INPUT_X_DIM0, CLASSES = 3, TRAIN = 3072, TEST = 1536, EPOCHS = 60 };

/* Point i of a data set: class i % 3, on that class's arm of the spiral
 * at radius t, with noise (a small deterministic generator). */
static void make_points(int n, unsigned seed, float *xy, int64_t *label) {
  unsigned s = seed;
  for (int i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    float t = (float)(s >> 8) / 16777216.0f; /* [0, 1) */
    s = s * 1664525u + 1013904223u;
    float noise = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.3f;
    int c = i % CLASSES;
    float angle = 4.0f * t + 2.0943951f * (float)c + noise;
    xy[2 * i] = t * cosf(angle);
    xy[2 * i + 1] = t * sinf(angle);
    label[i] = c;
  }
}

#ifdef _OPENMP
/* Threads through OpenMP: one contiguous run of grain-sized pieces per
 * thread (a matmul packs its panels once per call, so one call per piece
 * would repeat that work). */
static void omp_parallel_for(void *pool, int64_t n, int64_t grain,
                             void (*task)(void *arg, int64_t begin, int64_t end), void *arg) {
  (void)pool;
  int64_t pieces = (n + grain - 1) / grain;
#pragma omp parallel
  {
    int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t lo = pieces * t / nt, hi = pieces * (t + 1) / nt;
    if (lo < hi) task(arg, lo * grain, hi * grain < n ? hi * grain : n);
  }
}
#endif

int main(int argc, char **argv) {
  const char *ckpt = argc > 1 ? argv[1] : "spirals.safetensors";
  /* All the memory the model needs, sized by the header. */
  static _Alignas(64) unsigned char params[SPIRALS_PARAMS_BYTES];
  static _Alignas(64) unsigned char arena[SPIRALS_ARENA_BYTES];
  static float train_x[TRAIN * 2], test_x[TEST * 2], probs[BATCH * CLASSES];
  static int64_t train_y[TRAIN], test_y[TEST], predicted[BATCH];
  spirals_ctx ctx = {0};
  ctx.params = params;
  ctx.arena = arena;
#ifdef _OPENMP
  ctx.parallel_for = omp_parallel_for;
#endif
  if (spirals_params_init(&ctx)) {
    fprintf(stderr, "init: %s\n", ctx.error);
    return 1;
  }
  make_points(TRAIN, 1, train_x, train_y);
  make_points(TEST, 2, test_x, test_y);

  for (int epoch = 1; epoch <= EPOCHS; epoch++) {
    double sum = 0;
    for (int b = 0; b < TRAIN / BATCH; b++) {
      float loss;
      if (spirals_train_step(&ctx, train_x + 2 * b * BATCH, train_y + b * BATCH, &loss)) {
        fprintf(stderr, "train_step: %s\n", ctx.error);
        return 1;
      }
      sum += loss;
    }
    if (epoch == 1 || epoch % 10 == 0)
      printf("epoch %2d  mean loss %.4f\n", epoch, sum / (TRAIN / BATCH));
  }

  int correct = 0;
  for (int b = 0; b < TEST / BATCH; b++) {
    if (spirals_predict(&ctx, test_x + 2 * b * BATCH, probs, predicted)) {
      fprintf(stderr, "predict: %s\n", ctx.error);
      return 1;
    }
    for (int i = 0; i < BATCH; i++) correct += predicted[i] == test_y[b * BATCH + i];
  }
  double accuracy = (double)correct / TEST;
  printf("test accuracy %.1f%% (%d of %d points)\n", 100 * accuracy, correct, TEST);

  char err[512];
  if (spirals_params_save(params, ckpt, err, sizeof err)) {
    fprintf(stderr, "save: %s\n", err);
    return 1;
  }
  printf("params saved to %s (%d tensors)\n", ckpt, SPIRALS_NUM_PARAMS);
  return accuracy >= 0.95 ? 0 : 1;
}
