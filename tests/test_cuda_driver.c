/* The CUDA driver layer (runtime/cuda_driver.c) and the device memory
 * helpers of the cuda target (runtime/cuda.c). Without a driver (most
 * machines, CI) the driver must fail with a clear message; the device
 * cases skip, with a message, unless a CUDA device is present.
 *
 * The driver and the device are set up once per process, so tests that
 * set SMELT_CUDA_DRIVER or SMELT_CUDA_DEVICE need a fresh process: they
 * rely on Check forking each test (its default) and skip under
 * CK_FORK=no. The main process itself never touches CUDA, so that every
 * forked test starts with an uninitialized driver. */
#include "testutil.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/cuda.h"
#include "../runtime/cuda_driver.h"
#include "internal.h"

static bool forked = true; /* set in main from the runner */

static bool starts_with(const char *s, const char *prefix) {
  return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The device, or NULL after printing why the test is skipped. */
static const sm_cuda_device *need_device(const char *test, const sm_cuda_driver **d) {
  char *err = NULL;
  const sm_cuda_device *dev = sm_cu_device(d, &err);
  if (!dev) fprintf(stderr, "no CUDA device: skipping %s (%s)\n", test, err ? err : "?");
  sm_free(err);
  return dev;
}

#define NEED_DEVICE(d)                                                                     \
  const sm_cuda_driver *d = NULL;                                                          \
  const sm_cuda_device *dev = need_device(__func__, &d);                                   \
  if (!dev) return

#define NEED_FORK()                                                                        \
  do {                                                                                     \
    if (!forked) {                                                                         \
      fprintf(stderr, "skipping %s: it sets the environment of a fresh process "           \
                      "(run without CK_FORK=no)\n", __func__);                             \
      return;                                                                              \
    }                                                                                      \
  } while (0)

/* --------------------------------------------------------- no driver */

/* Whatever this machine has, the outcome is one of the documented ones:
 * no library at all gives "no CUDA driver found (libcuda.so.1: ...)". */
START_TEST(test_driver_outcome) {
  void *lib = getenv("SMELT_CUDA_DRIVER") ? NULL : dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  bool loadable = lib != NULL;
  if (lib) dlclose(lib);
  char *err = NULL;
  const sm_cuda_driver *d = sm_cu_driver(&err);
  if (!loadable && !getenv("SMELT_CUDA_DRIVER")) {
    ck_assert_ptr_null(d);
    ck_assert_msg(starts_with(err, "no CUDA driver found (libcuda.so.1: "), "got: %s", err);
  } else if (!d) {
    ck_assert_msg(starts_with(err, "no CUDA driver found (") ||
                      starts_with(err, "CUDA driver: cuInit failed: "),
                  "got: %s", err);
  } else {
    ck_assert_ptr_null(err);
  }
  /* A failure is remembered: the same answer again. */
  char *err2 = NULL;
  ck_assert_ptr_eq(sm_cu_driver(&err2), d);
  if (err) ck_assert_str_eq(err, err2);
  sm_free(err);
  sm_free(err2);
}
END_TEST

/* A missing library, forced, so GPU machines exercise this path too. */
START_TEST(test_driver_forced_missing) {
  NEED_FORK();
  setenv("SMELT_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  char *err = NULL;
  ck_assert_ptr_null(sm_cu_driver(&err));
  ck_assert_msg(starts_with(err, "no CUDA driver found (/nonexistent/libcuda.so.1: "), "got: %s",
                err);
  sm_free(err);
  /* The device and the memory helpers say the same. */
  err = NULL;
  const sm_cuda_driver *d = (const sm_cuda_driver *)1;
  ck_assert_ptr_null(sm_cu_device(&d, &err));
  ck_assert_ptr_null(d);
  ck_assert_msg(starts_with(err, "no CUDA driver found"), "got: %s", err);
  sm_free(err);
  uint64_t p = 1;
  err = NULL;
  ck_assert_int_eq(sm_cuda_alloc(64, &p, &err), -1);
  ck_assert_msg(p == 0 && starts_with(err, "no CUDA driver found"), "got: %s", err);
  sm_free(err);
  sm_cuda_release(0);
  sm_cuda_release(4096); /* no driver: nothing to release, no crash */
}
END_TEST

/* The compiler fails fast, before planning, on a machine without a GPU. */
START_TEST(test_compile_without_driver) {
  NEED_FORK();
  setenv("SMELT_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  smelt_graph *g = TU_GRAPH();
  smelt_node x = tu_input(g, "x", SMELT_F32, 1, 4);
  smelt_node y = smelt_neg(g, x);
  TU_ASSERT_OK(g);
  smelt_compile_options o = smelt_compile_defaults();
  o.cache_dir = NULL;
  o.dump = NULL;
  char *err = NULL;
  uint32_t root = y.index - 1;
  sm_cuda_program *c = sm_cuda_compile(g, 1, &root, 1, &o, &err);
  ck_assert_ptr_null(c);
  ck_assert_msg(starts_with(err, "no CUDA driver found"), "got: %s", err);
  sm_free(err);
  smelt_graph_free(g);
}
END_TEST

/* A failed allocation (fault injection) is never remembered as a failure
 * of the driver. */
START_TEST(test_driver_oom_not_sticky) {
  char *err = NULL;
  sm_alloc_fail_after(0);
  const sm_cuda_driver *d1 = sm_cu_driver(&err);
  sm_alloc_fail_after(-1);
  sm_free(err);
  err = NULL;
  const sm_cuda_driver *d2 = sm_cu_driver(&err);
  ck_assert_ptr_eq(d1, d2);
  if (!d2)
    ck_assert_msg(starts_with(err, "no CUDA driver found") || starts_with(err, "CUDA driver: "),
                  "got: %s", err);
  sm_free(err);
}
END_TEST

START_TEST(test_error_text) {
  /* Without a driver table the code is printed as a number. */
  char *e = sm_cu_error(NULL, 700, "cuLaunchKernel", "k3");
  ck_assert_str_eq(e, "CUDA: cuLaunchKernel (kernel k3) failed: CUDA error 700");
  sm_free(e);
  e = sm_cu_error(NULL, 2, "cuMemAlloc of 256 bytes (the arena)", NULL);
  ck_assert_str_eq(e, "CUDA: cuMemAlloc of 256 bytes (the arena) failed: CUDA error 2");
  sm_free(e);
  char *err = NULL;
  const sm_cuda_driver *d = sm_cu_driver(&err);
  sm_free(err);
  if (!d) {
    fprintf(stderr, "no CUDA device: skipping the driver's error names in %s\n", __func__);
    return;
  }
  e = sm_cu_error(d, 100, "cuInit", NULL);
  ck_assert_msg(starts_with(e, "CUDA: cuInit failed: CUDA_ERROR_NO_DEVICE ("), "got: %s", e);
  sm_free(e);
  e = sm_cu_error(d, 1, "cuLaunchKernel", "k3");
  ck_assert_msg(
      starts_with(e, "CUDA: cuLaunchKernel (kernel k3) failed: CUDA_ERROR_INVALID_VALUE ("),
      "got: %s", e);
  sm_free(e);
}
END_TEST

/* ------------------------------------------------------------ device */

START_TEST(test_device_properties) {
  NEED_DEVICE(d);
  fprintf(stderr,
          "device %d: %s, sm_%d%d, %d SMs, %d threads/block, %d threads/SM, grid "
          "[%d,%d,%d], shared %d (opt-in %d) bytes/block, warp %d, %zu MiB, driver %d\n",
          dev->ordinal, dev->name, dev->cc_major, dev->cc_minor, dev->sm_count,
          dev->max_threads_per_block, dev->max_threads_per_sm, dev->max_grid[0], dev->max_grid[1],
          dev->max_grid[2], dev->max_smem_per_block, dev->max_smem_per_block_optin,
          dev->warp_size, dev->total_mem >> 20, dev->driver_version);
  ck_assert(dev->name[0] != 0);
  ck_assert_int_ge(dev->cc_major, 3);
  ck_assert_int_ge(dev->cc_minor, 0);
  ck_assert_int_ge(dev->sm_count, 1);
  ck_assert_int_ge(dev->max_threads_per_block, 256);
  ck_assert_int_ge(dev->max_threads_per_sm, dev->max_threads_per_block);
  ck_assert_int_ge(dev->max_grid[0], 65535);
  ck_assert_int_ge(dev->max_grid[1], 1);
  ck_assert_int_ge(dev->max_grid[2], 1);
  ck_assert_int_ge(dev->max_smem_per_block, 16 * 1024);
  ck_assert_int_ge(dev->max_smem_per_block_optin, dev->max_smem_per_block);
  ck_assert_int_eq(dev->warp_size, 32);
  ck_assert(dev->total_mem >= ((size_t)256 << 20));
  ck_assert_int_ge(dev->driver_version, 9000);
  /* The primary context is current on this thread. */
  sm_cu_context cur = NULL;
  ck_assert_int_eq(d->CtxGetCurrent(&cur), SM_CU_SUCCESS);
  ck_assert_ptr_eq(cur, dev->ctx);
  size_t free_b = 0, total_b = 0;
  ck_assert_int_eq(d->MemGetInfo(&free_b, &total_b), SM_CU_SUCCESS);
  ck_assert(free_b > 0 && free_b <= total_b);
  /* Set up once: the same device again. */
  char *err = NULL;
  ck_assert_ptr_eq(sm_cu_device(NULL, &err), dev);
  ck_assert_ptr_null(err);
}
END_TEST

/* alloc, upload, copy, download, memset, release; odd sizes and zero. */
START_TEST(test_memory_round_trip) {
  NEED_DEVICE(d);
  static const size_t sizes[] = {1, 3, 255, 256, 257, 4099, (size_t)1 << 20};
  for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
    size_t n = sizes[t];
    unsigned char *src = malloc(n), *back = malloc(n);
    ck_assert(src && back);
    for (size_t i = 0; i < n; i++) src[i] = (unsigned char)(i * 131 + t * 7 + 1);
    char *err = NULL;
    uint64_t a = 0, b = 0;
    ck_assert_msg(sm_cuda_alloc(n, &a, &err) == 0, "%s", err);
    ck_assert_msg(sm_cuda_alloc(n, &b, &err) == 0, "%s", err);
    ck_assert(a && b && a != b);
    ck_assert_msg(a % 256 == 0 && b % 256 == 0, "unaligned: %llx %llx", (unsigned long long)a,
                  (unsigned long long)b);
    ck_assert_msg(sm_cuda_upload(a, src, n, &err) == 0, "%s", err);
    ck_assert_msg(sm_cuda_copy(b, a, n, &err) == 0, "%s", err);
    memset(back, 0xee, n);
    ck_assert_msg(sm_cuda_download(back, b, n, &err) == 0, "%s", err);
    ck_assert_msg(memcmp(src, back, n) == 0, "%zu bytes: the copy differs", n);
    /* The allocation is rounded up to 256 bytes: the whole grain is ours. */
    size_t grain = (n + 255) / 256 * 256;
    ck_assert_int_eq(d->MemsetD8(b, 0, grain), SM_CU_SUCCESS);
    ck_assert_int_eq(d->StreamSynchronize(NULL), SM_CU_SUCCESS);
    ck_assert_msg(sm_cuda_download(back, b, n, &err) == 0, "%s", err);
    size_t nz = 0;
    while (nz < n && back[nz] == 0) nz++;
    ck_assert_msg(nz == n, "%zu bytes: byte %zu is %d after memset", n, nz, nz < n ? back[nz] : 0);
    /* a is untouched */
    ck_assert_msg(sm_cuda_download(back, a, n, &err) == 0, "%s", err);
    ck_assert(memcmp(src, back, n) == 0);
    sm_cuda_release(a);
    sm_cuda_release(b);
    free(src);
    free(back);
  }
  /* Zero bytes: no allocation, address 0; transfers of nothing succeed. */
  char *err = NULL;
  uint64_t z = 1;
  ck_assert_int_eq(sm_cuda_alloc(0, &z, &err), 0);
  ck_assert(z == 0);
  ck_assert_int_eq(sm_cuda_upload(0, "", 0, &err), 0);
  ck_assert_int_eq(sm_cuda_download(NULL, 0, 0, &err), 0);
  ck_assert_int_eq(sm_cuda_copy(0, 0, 0, &err), 0);
  sm_cuda_release(0);
  ck_assert_ptr_null(err);
}
END_TEST

/* More than the device has: an error naming the call and the size. */
START_TEST(test_alloc_too_much) {
  NEED_DEVICE(d);
  (void)d;
  char *err = NULL;
  uint64_t p = 1;
  ck_assert_int_eq(sm_cuda_alloc(dev->total_mem * 4, &p, &err), -1);
  ck_assert(p == 0);
  ck_assert_msg(starts_with(err, "CUDA: cuMemAlloc of ") && strstr(err, "CUDA_ERROR_OUT_OF_MEMORY"),
                "got: %s", err);
  sm_free(err);
  /* The context is still usable. */
  err = NULL;
  ck_assert_msg(sm_cuda_alloc(16, &p, &err) == 0, "%s", err);
  sm_cuda_release(p);
}
END_TEST

static void *thread_round_trip(void *arg) {
  (void)arg;
  char *err = NULL;
  uint64_t p = 0;
  int v = 12345, back = 0;
  if (sm_cuda_alloc(sizeof v, &p, &err) || sm_cuda_upload(p, &v, sizeof v, &err) ||
      sm_cuda_download(&back, p, sizeof v, &err) || back != v) {
    sm_cuda_release(p);
    return err ? err : sm_strdup("wrong value");
  }
  sm_cuda_release(p);
  return NULL;
}

/* A thread that has not used CUDA gets the context made current for it. */
START_TEST(test_other_thread) {
  NEED_DEVICE(d);
  (void)d;
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, thread_round_trip, NULL), 0);
  void *res = NULL;
  ck_assert_int_eq(pthread_join(t, &res), 0);
  ck_assert_msg(res == NULL, "%s", (char *)res);
}
END_TEST

/* The driver, without touching the device; false (printing why) when
 * there is none. */
static bool have_driver(const char *test) {
  char *err = NULL;
  const sm_cuda_driver *d = sm_cu_driver(&err);
  if (!d) fprintf(stderr, "no CUDA device: skipping %s (%s)\n", test, err ? err : "?");
  sm_free(err);
  return d != NULL;
}

START_TEST(test_bad_device_word) {
  NEED_FORK();
  if (!have_driver(__func__)) return;
  setenv("SMELT_CUDA_DEVICE", "gpu0", 1);
  char *err = NULL;
  ck_assert_ptr_null(sm_cu_device(NULL, &err));
  ck_assert_msg(starts_with(err, "SMELT_CUDA_DEVICE=\"gpu0\" is not a device ordinal"), "got: %s",
                err);
  sm_free(err);
  /* Remembered, and the memory helpers say the same. */
  uint64_t p;
  err = NULL;
  ck_assert_int_eq(sm_cuda_alloc(16, &p, &err), -1);
  ck_assert_msg(starts_with(err, "SMELT_CUDA_DEVICE=\"gpu0\""), "got: %s", err);
  sm_free(err);
}
END_TEST

START_TEST(test_bad_device_ordinal) {
  NEED_FORK();
  if (!have_driver(__func__)) return;
  setenv("SMELT_CUDA_DEVICE", "999", 1);
  char *err = NULL;
  ck_assert_ptr_null(sm_cu_device(NULL, &err));
  ck_assert_msg(starts_with(err, "SMELT_CUDA_DEVICE=999, but this machine has "), "got: %s", err);
  sm_free(err);
}
END_TEST

START_TEST(test_bad_device_negative) {
  NEED_FORK();
  if (!have_driver(__func__)) return;
  setenv("SMELT_CUDA_DEVICE", "-1", 1);
  char *err = NULL;
  ck_assert_ptr_null(sm_cu_device(NULL, &err));
  ck_assert_msg(starts_with(err, "SMELT_CUDA_DEVICE=\"-1\" is not a device ordinal"), "got: %s",
                err);
  sm_free(err);
}
END_TEST

int main(void) {
  Suite *s = suite_create("cuda_driver");
  TCase *none = tcase_create("no driver");
  tcase_add_test(none, test_driver_outcome);
  tcase_add_test(none, test_driver_forced_missing);
  tcase_add_test(none, test_compile_without_driver);
  tcase_add_test(none, test_driver_oom_not_sticky);
  tcase_add_test(none, test_error_text);
  suite_add_tcase(s, none);
  TCase *dev = tcase_create("device");
  tcase_add_test(dev, test_device_properties);
  tcase_add_test(dev, test_memory_round_trip);
  tcase_add_test(dev, test_alloc_too_much);
  tcase_add_test(dev, test_other_thread);
  tcase_add_test(dev, test_bad_device_word);
  tcase_add_test(dev, test_bad_device_ordinal);
  tcase_add_test(dev, test_bad_device_negative);
  suite_add_tcase(s, dev);
  SRunner *sr = srunner_create(s);
  forked = srunner_fork_status(sr) != CK_NOFORK;
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
