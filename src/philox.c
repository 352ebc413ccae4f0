/* Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC'11): a counter-based generator, so element i of a random tensor is
 * a pure function of (seed, i) and every backend produces the same numbers. */
#include "internal.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void sm_philox4x32(uint32_t c[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t k0 = key[0], k1 = key[1];
  uint32_t x0 = c[0], x1 = c[1], x2 = c[2], x3 = c[3];
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * x0;
    uint64_t p1 = (uint64_t)PHILOX_M1 * x2;
    uint32_t y0 = (uint32_t)(p1 >> 32) ^ x1 ^ k0;
    uint32_t y1 = (uint32_t)p1;
    uint32_t y2 = (uint32_t)(p0 >> 32) ^ x3 ^ k1;
    uint32_t y3 = (uint32_t)p0;
    x0 = y0, x1 = y1, x2 = y2, x3 = y3;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = x0, out[1] = x1, out[2] = x2, out[3] = x3;
}

/* The four words for element i of draw `step`: counter (i_lo, i_hi, step_lo,
 * step_hi), key = seed. Programs draw fresh numbers on each run (step = the
 * run's number); step 0 is what a plain interpreter run draws. */
static void words(uint64_t seed, uint64_t step, uint64_t i, uint32_t w[4]) {
  uint32_t c[4] = {(uint32_t)i, (uint32_t)(i >> 32), (uint32_t)step, (uint32_t)(step >> 32)};
  uint32_t k[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  sm_philox4x32(c, k, w);
}

/* Uniform in [0, 1): f32 from the top 24 bits of word 0, f64 from 53 bits
 * of words 0 and 1. Exactly representable in the target dtype. */
static double uniform(const uint32_t *w, smelt_dtype dt) {
  if (dt == SMELT_F32) return (double)(w[0] >> 8) * (1.0 / 16777216.0);
  uint64_t v = ((uint64_t)w[0] << 21) ^ (w[1] >> 11);
  return (double)(v & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

double sm_rand_uniform_at(uint64_t seed, uint64_t step, uint64_t i, smelt_dtype dt) {
  uint32_t w[4];
  words(seed, step, i, w);
  return uniform(w, dt);
}

double sm_rand_uniform(uint64_t seed, uint64_t i, smelt_dtype dt) {
  return sm_rand_uniform_at(seed, 0, i, dt);
}

/* Box-Muller on two uniforms from the same counter (words 0-1 and 2-3):
 * u1 in (0, 1] so the log is finite. */
double sm_rand_normal(uint64_t seed, uint64_t i, smelt_dtype dt) {
  return sm_rand_normal_at(seed, 0, i, dt);
}

double sm_rand_normal_at(uint64_t seed, uint64_t step, uint64_t i, smelt_dtype dt) {
  uint32_t w[4];
  words(seed, step, i, w);
  double u1 = 1.0 - uniform(w, dt);
  double u2 = uniform(w + 2, dt);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
