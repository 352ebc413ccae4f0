/* Random numbers: Philox 4x32-10 known answers, the mapping to floats, and
 * rand / randn through the graph (determinism, ranges, statistics).
 *
 * Statistical tolerances are about 5 standard errors of the estimate, so a
 * correct generator fails with probability well under 1e-5 (and the seeds
 * are fixed, so the outcome is deterministic anyway). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

/* ------------------------------------------------ Philox known answers */

/* The Random123 KAT vectors for philox4x32_10 (kat_vectors in Random123). */
static const struct {
  uint32_t ctr[4], key[2], out[4];
} kat[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

START_TEST(philox_kat) {
  uint32_t ctr[4], out[4];
  memcpy(ctr, kat[_i].ctr, sizeof ctr);
  sm_philox4x32(ctr, kat[_i].key, out);
  for (int k = 0; k < 4; k++)
    ck_assert_msg(out[k] == kat[_i].out[k], "KAT %d word %d: got %08x, want %08x", _i, k, out[k],
                  kat[_i].out[k]);
}
END_TEST

/* rand f32 element i of seed s is the top 24 bits of word 0 of
 * philox(counter = (i, 0, 0, 0), key = (s_lo, s_hi)) over 2^24; f64 takes
 * 32 bits of word 0 and the top 21 of word 1 over 2^53 (src/internal.h). */
START_TEST(uniform_mapping_from_kat) {
  double f32 = sm_rand_uniform(0, 0, SMELT_F32);
  ck_assert_msg(f32 == (double)(0x6627e8d5u >> 8) / 16777216.0, "f32 got %.17g", f32);
  double f64 = sm_rand_uniform(0, 0, SMELT_F64);
  double want = ((double)0x6627e8d5u * 2097152.0 + (double)(0xe169c58du >> 11)) /
                9007199254740992.0;
  ck_assert_msg(f64 == want, "f64 got %.17g want %.17g", f64, want);
  /* The counter is the element index: low word first. */
  uint32_t ctr[4] = {7, 0, 0, 0}, key[2] = {0x2a, 0}, w[4];
  sm_philox4x32(ctr, key, w);
  ck_assert(sm_rand_uniform(42, 7, SMELT_F32) == (double)(w[0] >> 8) / 16777216.0);
  /* The seed's high word is the second key word. */
  uint32_t ctr2[4] = {3, 0, 0, 0}, key2[2] = {5, 1}, w2[4];
  sm_philox4x32(ctr2, key2, w2);
  ck_assert(sm_rand_uniform(((uint64_t)1 << 32) | 5, 3, SMELT_F32) ==
            (double)(w2[0] >> 8) / 16777216.0);
  /* The index's high word is the second counter word. */
  uint32_t ctr3[4] = {1, 2, 0, 0}, key3[2] = {9, 0}, w3[4];
  sm_philox4x32(ctr3, key3, w3);
  ck_assert(sm_rand_uniform(9, ((uint64_t)2 << 32) | 1, SMELT_F32) ==
            (double)(w3[0] >> 8) / 16777216.0);
}
END_TEST

/* ------------------------------------------------------------- helpers */

#define N_STAT 100000

/* Evaluates rand (normal = false) or randn of [n] with seed. */
static double *gen(smelt_dtype dt, bool normal, int64_t n, uint64_t seed) {
  smelt_graph *g = TU_GRAPH();
  smelt_node r = normal ? smelt_randn(g, dt, 1, &n, seed) : smelt_rand(g, dt, 1, &n, seed);
  TU_ASSERT_DTYPE(g, r, dt);
  TU_ASSERT_SHAPE(g, r, 1, (int)n);
  double *v = TU_EVAL(g, r);
  smelt_graph_free(g);
  return v;
}

static const smelt_dtype float_dts[2] = {SMELT_F32, SMELT_F64};

/* --------------------------------------------------------------- rand */

START_TEST(rand_range_and_moments) {
  smelt_dtype dt = float_dts[_i];
  double *v = gen(dt, false, N_STAT, 1234);
  double s = 0, s2 = 0;
  int below_quarter = 0;
  for (int i = 0; i < N_STAT; i++) {
    ck_assert_msg(v[i] >= 0.0 && v[i] < 1.0, "rand[%d] = %.17g outside [0,1)", i, v[i]);
    s += v[i];
    s2 += v[i] * v[i];
    below_quarter += v[i] < 0.25;
  }
  double mean = s / N_STAT, var = s2 / N_STAT - mean * mean;
  /* standard error of the mean: sqrt(1/12/1e5) = 0.00091 */
  ck_assert_msg(fabs(mean - 0.5) < 0.005, "mean %.6f", mean);
  /* variance 1/12 = 0.08333; its standard error is about 0.00024 */
  ck_assert_msg(fabs(var - 1.0 / 12) < 0.002, "var %.6f", var);
  /* P(u < 0.25) = 0.25, standard error 0.00137 */
  ck_assert_msg(fabs(below_quarter / (double)N_STAT - 0.25) < 0.007, "fraction < 0.25: %.5f",
                below_quarter / (double)N_STAT);
  free(v);
}
END_TEST

START_TEST(rand_matches_generator) {
  /* Element i of the graph's rand is the library generator's value i. */
  smelt_dtype dt = float_dts[_i];
  double *v = gen(dt, false, 1000, 77);
  for (int i = 0; i < 1000; i++) {
    double want = sm_rand_uniform(77, (uint64_t)i, dt);
    if (dt == SMELT_F32) want = (float)want;
    ck_assert_msg(v[i] == want, "rand[%d] = %.17g, generator %.17g", i, v[i], want);
  }
  free(v);
}
END_TEST

START_TEST(rand_f32_exact_24_bits) {
  /* f32 values are k / 2^24: exactly representable, never rounded to 1. */
  double *v = gen(SMELT_F32, false, 4096, 5);
  for (int i = 0; i < 4096; i++) {
    double k = v[i] * 16777216.0;
    ck_assert_msg(k == floor(k) && k < 16777216.0, "rand[%d] = %.17g", i, v[i]);
  }
  free(v);
}
END_TEST

START_TEST(rand_linear_index_counter) {
  /* A [3,4] tensor: element (i,j) uses counter i*4 + j. */
  smelt_graph *g = TU_GRAPH();
  for (int d = 0; d < 2; d++) {
    smelt_dtype dt = float_dts[d];
    smelt_node r = smelt_rand(g, dt, 2, TU_DIMS(3, 4), 9);
    double *v = TU_EVAL(g, r);
    for (int i = 0; i < 12; i++) {
      double want = sm_rand_uniform(9, (uint64_t)i, dt);
      if (dt == SMELT_F32) want = (float)want;
      ck_assert_msg(v[i] == want, "%s element %d: %.17g vs %.17g", smelt_dtype_name(dt), i, v[i],
                    want);
    }
    free(v);
  }
  smelt_graph_free(g);
}
END_TEST

START_TEST(rand_same_seed_same_values) {
  smelt_dtype dt = float_dts[_i];
  double *a = gen(dt, false, 5000, 31337);
  double *b = gen(dt, false, 5000, 31337);
  ck_assert(memcmp(a, b, 5000 * sizeof(double)) == 0);
  free(a);
  free(b);
  a = gen(dt, true, 5000, 31337);
  b = gen(dt, true, 5000, 31337);
  ck_assert(memcmp(a, b, 5000 * sizeof(double)) == 0);
  free(a);
  free(b);
}
END_TEST

START_TEST(rand_different_seeds_differ) {
  smelt_dtype dt = float_dts[_i];
  /* 1 and 2 differ in the low key word, 0 and 2^32 only in the high one. */
  const uint64_t pairs[][2] = {{1, 2}, {0, (uint64_t)1 << 32}, {123, 124}};
  for (int p = 0; p < 3; p++) {
    double *a = gen(dt, false, 2000, pairs[p][0]);
    double *b = gen(dt, false, 2000, pairs[p][1]);
    int same = 0;
    for (int i = 0; i < 2000; i++) same += a[i] == b[i];
    ck_assert_msg(same < 5, "seeds %llu and %llu: %d equal values of 2000",
                  (unsigned long long)pairs[p][0], (unsigned long long)pairs[p][1], same);
    free(a);
    free(b);
  }
}
END_TEST

START_TEST(rand_same_node_hash_consed) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = smelt_rand(g, SMELT_F32, 1, TU_DIMS(8), 3);
  smelt_node b = smelt_rand(g, SMELT_F32, 1, TU_DIMS(8), 3);
  smelt_node c = smelt_rand(g, SMELT_F32, 1, TU_DIMS(8), 4);
  TU_ASSERT_OK(g);
  ck_assert(a.index == b.index);
  ck_assert(a.index != c.index);
  ck_assert_str_eq(smelt_node_op(g, a), "rand");
  smelt_graph_free(g);
}
END_TEST

/* -------------------------------------------------------------- randn */

START_TEST(randn_moments) {
  smelt_dtype dt = float_dts[_i];
  double *v = gen(dt, true, N_STAT, 2024);
  double s = 0, s2 = 0, s4 = 0;
  int within1 = 0, neg = 0;
  for (int i = 0; i < N_STAT; i++) {
    ck_assert_msg(isfinite(v[i]), "randn[%d] = %g", i, v[i]);
    s += v[i];
    within1 += fabs(v[i]) < 1.0;
    neg += v[i] < 0;
  }
  double mean = s / N_STAT;
  for (int i = 0; i < N_STAT; i++) {
    double d = v[i] - mean;
    s2 += d * d;
    s4 += d * d * d * d;
  }
  double var = s2 / N_STAT, kurt = s4 / N_STAT / (var * var);
  /* standard errors: mean 0.0032, std 0.0022, P(|z|<1) 0.0015, kurtosis 0.015 */
  ck_assert_msg(fabs(mean) < 0.02, "mean %.5f", mean);
  ck_assert_msg(fabs(sqrt(var) - 1.0) < 0.015, "std %.5f", sqrt(var));
  ck_assert_msg(fabs(within1 / (double)N_STAT - 0.6827) < 0.008, "P(|z|<1) = %.5f",
                within1 / (double)N_STAT);
  ck_assert_msg(fabs(neg / (double)N_STAT - 0.5) < 0.008, "P(z<0) = %.5f", neg / (double)N_STAT);
  ck_assert_msg(fabs(kurt - 3.0) < 0.1, "kurtosis %.4f", kurt);
  free(v);
}
END_TEST

START_TEST(randn_matches_generator) {
  smelt_dtype dt = float_dts[_i];
  double *v = gen(dt, true, 1000, 8);
  for (int i = 0; i < 1000; i++) {
    double want = sm_rand_normal(8, (uint64_t)i, dt);
    if (dt == SMELT_F32) want = (float)want;
    /* f32: the interpreter may compute the transform in float or double */
    ck_assert_msg(tu_close(v[i], want, dt == SMELT_F32 ? 1e-5 : 1e-12, 1e-5),
                  "randn[%d] = %.17g, generator %.17g", i, v[i], want);
  }
  free(v);
}
END_TEST

START_TEST(randn_box_muller_from_uniforms) {
  /* randn(seed, i) = sqrt(-2 log(1 - u1)) cos(2 pi u2) with u1 from words
   * 0-1 and u2 from words 2-3 of the same counter (src/philox.c). Check the
   * f32 path from the raw Philox words. */
  uint32_t ctr[4] = {0, 0, 0, 0}, key[2] = {0, 0}, w[4];
  sm_philox4x32(ctr, key, w);
  double u1 = 1.0 - (double)(w[0] >> 8) / 16777216.0;
  double u2 = (double)(w[2] >> 8) / 16777216.0;
  double want = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
  double got = sm_rand_normal(0, 0, SMELT_F32);
  ck_assert_msg(fabs(got - want) < 1e-12, "got %.17g want %.17g", got, want);
}
END_TEST

/* ------------------------------------------------------------- errors */

START_TEST(rand_errors) {
  static const smelt_dtype bad[] = {SMELT_I32, SMELT_I64, SMELT_BOOL};
  for (int k = 0; k < 3; k++) {
    smelt_graph *g = TU_GRAPH();
    smelt_node r = smelt_rand(g, bad[k], 1, TU_DIMS(4), 1);
    ck_assert(!smelt_node_valid(r));
    TU_ASSERT_ERROR(g, "rand", smelt_dtype_name(bad[k]));
    smelt_graph_free(g);
    g = TU_GRAPH();
    r = smelt_randn(g, bad[k], 1, TU_DIMS(4), 1);
    ck_assert(!smelt_node_valid(r));
    TU_ASSERT_ERROR(g, "randn", smelt_dtype_name(bad[k]));
    smelt_graph_free(g);
  }
  smelt_graph *g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_rand(g, SMELT_F32, 1, TU_DIMS(-2), 1)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);
  g = TU_GRAPH();
  ck_assert(!smelt_node_valid(smelt_rand(g, SMELT_F32, 9, TU_DIMS(1, 1, 1, 1, 1, 1, 1, 1, 1), 1)));
  ck_assert_ptr_nonnull(smelt_graph_error(g));
  smelt_graph_free(g);
}
END_TEST

START_TEST(rand_empty_and_scalar) {
  smelt_graph *g = TU_GRAPH();
  smelt_node e = smelt_rand(g, SMELT_F32, 2, TU_DIMS(0, 3), 1);
  TU_ASSERT_SHAPE(g, e, 2, 0, 3);
  double *v = TU_EVAL(g, e);
  free(v);
  smelt_node s = smelt_randn(g, SMELT_F64, 0, NULL, 11);
  TU_ASSERT_SHAPE(g, s, 0);
  TU_ASSERT_VALUES(g, s, 1e-12, sm_rand_normal(11, 0, SMELT_F64));
  smelt_graph_free(g);
}
END_TEST

/* ------------------------------------------------ param initializers */

START_TEST(param_init_uniform_and_normal) {
  /* Params with random initializers: uniform in [lo, hi), normal with the
   * given mean and std, deterministic per seed. */
  smelt_graph *g = TU_GRAPH();
  int64_t n = 20000;
  smelt_node u = smelt_param(g, "u", SMELT_F32, 1, &n, smelt_init_uniform(-2.0, 3.0, 5));
  smelt_node z = smelt_param(g, "z", SMELT_F64, 1, &n, smelt_init_normal(10.0, 0.5, 6));
  TU_ASSERT_OK(g);
  double *uv = TU_EVAL(g, u);
  double *zv = TU_EVAL(g, z);
  double su = 0, sz = 0, sz2 = 0;
  for (int64_t i = 0; i < n; i++) {
    ck_assert_msg(uv[i] >= -2.0 && uv[i] < 3.0, "u[%lld] = %g", (long long)i, uv[i]);
    su += uv[i];
    sz += zv[i];
  }
  double mz = sz / n;
  for (int64_t i = 0; i < n; i++) sz2 += (zv[i] - mz) * (zv[i] - mz);
  /* uniform mean 0.5, standard error 5/sqrt(12*20000) = 0.0102 */
  ck_assert_msg(fabs(su / n - 0.5) < 0.06, "uniform mean %g", su / n);
  /* normal mean 10 (se 0.0035), std 0.5 (se 0.0025) */
  ck_assert_msg(fabs(mz - 10.0) < 0.02, "normal mean %g", mz);
  ck_assert_msg(fabs(sqrt(sz2 / n) - 0.5) < 0.015, "normal std %g", sqrt(sz2 / n));
  free(uv);
  free(zv);
  smelt_graph_free(g);
}
END_TEST

static Suite *rng_suite(void) {
  Suite *s = suite_create("rng");
  TCase *tc = tcase_create("philox");
  tcase_add_loop_test(tc, philox_kat, 0, (int)(sizeof kat / sizeof kat[0]));
  tcase_add_test(tc, uniform_mapping_from_kat);
  tcase_add_test(tc, randn_box_muller_from_uniforms);
  suite_add_tcase(s, tc);

  tc = tcase_create("rand");
  tcase_add_loop_test(tc, rand_range_and_moments, 0, 2);
  tcase_add_loop_test(tc, rand_matches_generator, 0, 2);
  tcase_add_test(tc, rand_f32_exact_24_bits);
  tcase_add_test(tc, rand_linear_index_counter);
  tcase_add_loop_test(tc, rand_same_seed_same_values, 0, 2);
  tcase_add_loop_test(tc, rand_different_seeds_differ, 0, 2);
  tcase_add_test(tc, rand_same_node_hash_consed);
  tcase_add_test(tc, rand_errors);
  tcase_add_test(tc, rand_empty_and_scalar);
  suite_add_tcase(s, tc);

  tc = tcase_create("randn");
  tcase_add_loop_test(tc, randn_moments, 0, 2);
  tcase_add_loop_test(tc, randn_matches_generator, 0, 2);
  tcase_add_test(tc, param_init_uniform_and_normal);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(rng_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
