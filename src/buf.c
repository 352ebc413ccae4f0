/* Growable text buffers used by every printer. */
#include "internal.h"

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool buf_reserve(sm_buf *b, size_t extra) {
  if (b->oom) return false;
  if (b->len + extra + 1 <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) cap *= 2;
  char *d = sm_realloc(b->data, cap);
  if (!d) {
    b->oom = true;
    return false;
  }
  b->data = d;
  b->cap = cap;
  return true;
}

void sm_buf_printf(sm_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n >= 0 && buf_reserve(b, (size_t)n)) {
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    b->len += (size_t)n;
  }
  va_end(ap2);
}

char *sm_vfmt(const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  char *msg = n >= 0 ? sm_malloc((size_t)n + 1) : NULL;
  if (msg) vsnprintf(msg, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  return msg;
}

void sm_buf_puts(sm_buf *b, const char *s) {
  size_t n = strlen(s);
  if (!buf_reserve(b, n)) return;
  memcpy(b->data + b->len, s, n + 1);
  b->len += n;
}

char *sm_buf_take(sm_buf *b) {
  if (b->oom || !buf_reserve(b, 0)) {
    sm_buf_free(b);
    return NULL;
  }
  b->data[b->len] = 0;
  char *s = b->data;
  b->data = NULL;
  b->len = b->cap = 0;
  return s;
}

void sm_buf_free(sm_buf *b) {
  sm_free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void sm_buf_shape(sm_buf *b, int rank, const int64_t *dims) {
  sm_buf_puts(b, "[");
  for (int i = 0; i < rank; i++) sm_buf_printf(b, i ? ",%" PRId64 : "%" PRId64, dims[i]);
  sm_buf_puts(b, "]");
}

/* snprintf and strtod follow LC_NUMERIC; the text format always uses '.'. */
static void to_c_locale(char *s, const char *dp) {
  if (dp[0] == '.' && dp[1] == 0) return;
  char *p = strstr(s, dp);
  if (!p) return;
  size_t n = strlen(dp);
  *p = '.';
  memmove(p + 1, p + n, strlen(p + n) + 1);
}

static double strtod_c(const char *s, const char *dp) {
  char tmp[64];
  snprintf(tmp, sizeof tmp, "%s", s);
  char *p = strchr(tmp, '.');
  if (p && !(dp[0] == '.' && dp[1] == 0) && strlen(tmp) + strlen(dp) < sizeof tmp) {
    memmove(p + strlen(dp), p + 1, strlen(p + 1) + 1);
    memcpy(p, dp, strlen(dp));
  }
  return strtod(tmp, NULL);
}

void sm_buf_number(sm_buf *b, double v, bool as_f32) {
  if (isnan(v)) {
    /* the sign survives a round trip (x86's default NaN is negative) */
    sm_buf_puts(b, signbit(v) ? "-nan" : "nan");
    return;
  }
  if (isinf(v)) {
    sm_buf_puts(b, v > 0 ? "inf" : "-inf");
    return;
  }
  char tmp[64];
  /* Whole numbers read best without an exponent (10, not 1e+01). */
  if (v == trunc(v) && fabs(v) < 1e16) {
    snprintf(tmp, sizeof tmp, "%.0f", v);
    if (v == 0 && signbit(v)) snprintf(tmp, sizeof tmp, "-0");
    sm_buf_puts(b, tmp);
    return;
  }
  /* Otherwise the shortest decimal that reads back to the same value. */
  const char *dp = localeconv()->decimal_point;
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    to_c_locale(tmp, dp);
    double r = strtod_c(tmp, dp);
    if (as_f32 ? (float)r == (float)v : r == v) break;
  }
  sm_buf_puts(b, tmp);
}

char *sm_fmt(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = sm_vfmt(fmt, ap);
  va_end(ap);
  return s;
}
