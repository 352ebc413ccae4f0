/* The one allocation hook of the library: every allocation passes here so
 * that tests can make the n-th one fail (SQLite-style fault injection). */
#include "internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* -1: injection off; otherwise the number of allocations left to succeed. */
static _Atomic long fail_countdown = -1;
static _Atomic long failures = 0;

void sm_alloc_fail_after(long n) { atomic_store(&fail_countdown, n < 0 ? -1 : n); }
long sm_alloc_failures(void) { return atomic_load(&failures); }

static bool injected_failure(void) {
  long c = atomic_load(&fail_countdown);
  while (c >= 0) {
    if (atomic_compare_exchange_weak(&fail_countdown, &c, c - 1)) {
      if (c == 0) {
        atomic_fetch_add(&failures, 1);
        return true;
      }
      return false;
    }
  }
  return false;
}

void *sm_malloc(size_t n) {
  if (injected_failure()) return NULL;
  return malloc(n ? n : 1);
}

void *sm_calloc(size_t count, size_t size) {
  if (injected_failure()) return NULL;
  return calloc(count ? count : 1, size ? size : 1);
}

void *sm_realloc(void *p, size_t n) {
  if (injected_failure()) return NULL;
  return realloc(p, n ? n : 1);
}

void sm_free(void *p) { free(p); }

char *sm_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = sm_malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

void smelt_free(void *p) { sm_free(p); }
