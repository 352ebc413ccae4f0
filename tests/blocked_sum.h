/* The blocked summation order of float reduce_sum (docs/ops.md, "Summation
 * order"), written out independently for the tests: a reference, inputs on
 * which the order matters, and the cases the interp suite (interpreter
 * against the reference) and the passes suite (split_sums pass and cpu
 * target against the interpreter) share. Header-only: each suite includes
 * it once. */
#ifndef SMELT_TEST_BLOCKED_SUM_H
#define SMELT_TEST_BLOCKED_SUM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smelt/smelt.h"

enum { BS_BLOCK = 4096, BS_LANES = 64, BS_ROWS = BS_BLOCK / BS_LANES };

/* The sum of v[0..n) in the blocked order: n <= 4096 sequentially from
 * +0.0; else partial (b, c) = rows j = 0..63 of lane c in block b in
 * increasing j from +0.0, and the nb*64 partials summed by the same rule. */
static inline double bs_reference(const double *v, int64_t n) {
  if (n <= BS_BLOCK) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    return s;
  }
  int64_t nb = (n + BS_BLOCK - 1) / BS_BLOCK;
  double *p = malloc(sizeof *p * (size_t)(nb * BS_LANES));
  for (int64_t b = 0; b < nb; b++)
    for (int64_t c = 0; c < BS_LANES; c++) {
      double acc = 0.0;
      for (int64_t j = 0; j < BS_ROWS; j++) {
        int64_t r = b * BS_BLOCK + j * BS_LANES + c;
        if (r < n) acc += v[r];
      }
      p[b * BS_LANES + c] = acc;
    }
  double s = bs_reference(p, nb * BS_LANES);
  free(p);
  return s;
}

/* The sequential sum (the order before blocking), to show that a case
 * tells the two apart. */
static inline double bs_sequential(const double *v, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i++) s += v[i];
  return s;
}

/* Element r of a sum of len on which the order matters: pairs of 1e16 and
 * -1e16 (45 apart, so they cancel in the exact sum) among small values,
 * which a running sum near 1e16 loses (its ulp is 2). */
static inline double bs_value(int64_t r, int64_t len) {
  if (r % 97 == 5 && r + 45 < len) return 1e16;
  if (r % 97 == 50) return -1e16;
  return 1.0 + (double)(r % 5) * 0.25;
}

typedef struct bs_case {
  const char *name;
  smelt_dtype dt;
  int rank;
  int64_t dims[8];
  int naxes; /* 0: all */
  int axes[8];
} bs_case;

static const bs_case bs_cases[] = {
    {"R = 4096: sequential", SMELT_F32, 1, {4096}, 0, {0}},
    {"R = 4097", SMELT_F32, 1, {4097}, 0, {0}},
    {"R = 2^16+3 f32", SMELT_F32, 1, {65539}, 0, {0}},
    {"R = 2^16+3 f64", SMELT_F64, 1, {65539}, 0, {0}},
    {"R = 2^18+5: two levels", SMELT_F64, 1, {262149}, 0, {0}},
    {"R = 4096+128: a tail of whole rows", SMELT_F32, 1, {4224}, 0, {0}},
    {"all axes of a rank-3 tensor", SMELT_F32, 3, {17, 33, 9}, 0, {0}},
    {"per row", SMELT_F32, 2, {3, 4097}, 1, {1}},
    {"per column: a non-trailing axis", SMELT_F32, 2, {4097, 3}, 1, {0}},
    {"the middle axis, no tail", SMELT_F32, 3, {2, 8192, 3}, 1, {1}},
    {"two non-adjacent axes", SMELT_F64, 3, {70, 3, 61}, 2, {0, 2}},
    {"non-adjacent axes, a kept axis after them", SMELT_F32, 4, {70, 3, 61, 2}, 2, {0, 2}},
    {"two adjacent axes in the middle", SMELT_F32, 4, {2, 65, 64, 3}, 2, {1, 2}},
    {"rank 8: the kept dims merged", SMELT_F32, 8, {2, 1, 2, 4097, 1, 2, 1, 3}, 1, {3}},
};
enum { BS_NCASES = sizeof bs_cases / sizeof bs_cases[0] };

static inline int64_t bs_numel(const bs_case *c) {
  int64_t n = 1;
  for (int d = 0; d < c->rank; d++) n *= c->dims[d];
  return n;
}

static inline bool bs_reduced(const bs_case *c, int d) {
  if (c->naxes == 0) return true;
  for (int k = 0; k < c->naxes; k++)
    if (c->axes[k] == d) return true;
  return false;
}

/* Flat element i of a case: its output slot (row-major over the kept
 * axes) and its position r in that slot's sum (row-major over the reduced
 * axes); *len receives the number of reduced elements per slot. */
static inline void bs_coords(const bs_case *c, int64_t i, int64_t *slot, int64_t *r, int64_t *len) {
  int64_t rest = i, ks = 1, rs = 1;
  *slot = *r = 0;
  for (int d = c->rank - 1; d >= 0; d--) {
    int64_t q = rest % c->dims[d];
    rest /= c->dims[d];
    if (bs_reduced(c, d)) *r += q * rs, rs *= c->dims[d];
    else *slot += q * ks, ks *= c->dims[d];
  }
  *len = rs;
}

/* The input of a case in its dtype (malloc'ed, row-major). */
static inline void *bs_input(const bs_case *c) {
  int64_t n = bs_numel(c);
  size_t es = smelt_dtype_size(c->dt);
  unsigned char *p = malloc((size_t)n * es);
  for (int64_t i = 0; i < n; i++) {
    int64_t slot, r, len;
    bs_coords(c, i, &slot, &r, &len);
    double v = bs_value(r, len);
    if (c->dt == SMELT_F32) {
      float f = (float)v;
      memcpy(p + (size_t)i * 4, &f, 4);
    } else {
      memcpy(p + (size_t)i * 8, &v, 8);
    }
  }
  return p;
}

/* The expected result per output slot (row-major over the kept axes), as
 * doubles rounded to the case's dtype; with seq, the sequential sums
 * instead. *nslots receives the count (malloc'ed). */
static inline double *bs_expected(const bs_case *c, const void *data, bool seq, int64_t *nslots) {
  int64_t n = bs_numel(c), slot, r, len;
  bs_coords(c, 0, &slot, &r, &len);
  int64_t slots = len ? n / len : 0;
  double *bucket = malloc(sizeof *bucket * (size_t)n);
  for (int64_t i = 0; i < n; i++) {
    bs_coords(c, i, &slot, &r, &len);
    double v;
    if (c->dt == SMELT_F32) {
      float f;
      memcpy(&f, (const unsigned char *)data + (size_t)i * 4, 4);
      v = f;
    } else {
      memcpy(&v, (const unsigned char *)data + (size_t)i * 8, 8);
    }
    bucket[slot * len + r] = v;
  }
  double *out = malloc(sizeof *out * (size_t)(slots ? slots : 1));
  for (int64_t s = 0; s < slots; s++) {
    double v = seq ? bs_sequential(bucket + s * len, len) : bs_reference(bucket + s * len, len);
    out[s] = c->dt == SMELT_F32 ? (double)(float)v : v;
  }
  free(bucket);
  *nslots = slots;
  return out;
}

#endif
