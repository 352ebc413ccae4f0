/* dtypes: names, sizes, categories. Promotion lives in build.c where the
 * operands' ranks are known. */
#include "internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static const struct {
  const char *name;
  size_t size;
} dtypes[SMELT_DTYPE_COUNT] = {
    [SMELT_F32] = {"f32", 4}, [SMELT_F64] = {"f64", 8}, [SMELT_I32] = {"i32", 4},
    [SMELT_I64] = {"i64", 8}, [SMELT_BOOL] = {"bool", 1},
};

const char *smelt_dtype_name(smelt_dtype dt) {
  return (unsigned)dt < SMELT_DTYPE_COUNT ? dtypes[dt].name : "?";
}

size_t smelt_dtype_size(smelt_dtype dt) {
  return (unsigned)dt < SMELT_DTYPE_COUNT ? dtypes[dt].size : 0;
}

bool smelt_dtype_parse(const char *name, smelt_dtype *out) {
  for (int i = 0; i < SMELT_DTYPE_COUNT; i++)
    if (name && strcmp(name, dtypes[i].name) == 0) {
      if (out) *out = (smelt_dtype)i;
      return true;
    }
  return false;
}

bool sm_is_float(smelt_dtype dt) { return dt == SMELT_F32 || dt == SMELT_F64; }
bool sm_is_int(smelt_dtype dt) { return dt == SMELT_I32 || dt == SMELT_I64; }

int64_t sm_f_to_i64(double v) {
  if (isnan(v)) return 0;
  if (v >= 9223372036854775808.0) return INT64_MAX;
  if (v < -9223372036854775808.0) return INT64_MIN;
  return (int64_t)v;
}

int32_t sm_f_to_i32(double v) {
  if (isnan(v)) return 0;
  if (v >= 2147483648.0) return INT32_MAX;
  if (v <= -2147483649.0) return INT32_MIN;
  return (int32_t)v;
}
