/* The nvrtc suite: CUDA C compiled by NVRTC (codegen/nvrtc.c) to PTX and
 * cubins, its error messages, architecture names and its disk cache; the
 * cache files themselves and their hash (runtime/disk_cache.c). No GPU is
 * needed. In a libsmelt built without NVRTC the NVRTC tests check the
 * stub's message instead, so the suite always runs. */
#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../codegen/nvrtc.h"
#include "../runtime/disk_cache.h"
#include "internal.h"
#include "testutil.h"

#define STUB_MESSAGE "this libsmelt was built without NVRTC"

/* A small kernel: y = a*x + y over n elements, with a division and a
 * square root (IEEE in smelt's options). */
static const char axpy_src[] =
    "extern \"C\" __global__ void smelt_test_axpy(float *y, const float *x, float a, int n) {\n"
    "  int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "  if (i < n) y[i] = a * x[i] + y[i] / sqrtf(x[i] + 1.0f);\n"
    "}\n";

/* Line 3 lacks its semicolon (NVRTC reports it on line 4); line 5 uses an
 * undeclared name. */
static const char bad_src[] =
    "extern \"C\" __global__ void broken(float *y) {\n"
    "  int i = threadIdx.x;\n"
    "  float v = y[i] * 2.0f\n"
    "  y[i] = v;\n"
    "  y[i] += not_declared_anywhere;\n"
    "}\n";

/* ------------------------------------------------------------ helpers */

/* Names of the regular files in dir with this suffix (hidden ones too);
 * returns their count, the first one's path in first (may be NULL). */
static int files_with(const char *dir, const char *suffix, char *first, size_t cap) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name), s = strlen(suffix);
    if (l < s || strcmp(e->d_name + l - s, suffix)) continue;
    if (n++ == 0 && first) snprintf(first, cap, "%s/%s", dir, e->d_name);
  }
  closedir(d);
  return n;
}

static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "%s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n + 1);
  ck_assert_int_eq(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return b;
}

static void write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "%s", path);
  ck_assert_int_eq(fwrite(data, 1, len, f), len);
  fclose(f);
}

/* Every NVRTC call of a stub build fails with the stub's message. */
static void check_stub(void) {
  ck_assert(!sm_nvrtc_available());
  char *err = NULL;
  int major, minor, cc;
  ck_assert_int_eq(sm_nvrtc_version(&major, &minor, &err), -1);
  ck_assert_msg(err && strstr(err, STUB_MESSAGE) && strstr(err, "CUDA_HOME"), "%s", err);
  sm_free(err);
  ck_assert_int_eq(sm_nvrtc_parse_arch("sm_80", &cc, &err), -1);
  ck_assert_msg(err && strstr(err, STUB_MESSAGE), "%s", err);
  sm_free(err);
  sm_nvrtc_request r = {axpy_src, "axpy.cu", 80, SM_NVRTC_PTX, NULL};
  size_t len = 1;
  bool from_cache = true;
  ck_assert_ptr_null(sm_nvrtc_compile(&r, &len, &from_cache, &err));
  ck_assert(!from_cache && len == 0);
  ck_assert_msg(err && strstr(err, STUB_MESSAGE) && strstr(err, "-Dcuda=enabled"), "%s", err);
  sm_free(err);
}

/* Tests of NVRTC itself check the stub's message in a build without it. */
#define NEED_NVRTC()                                                                     \
  do {                                                                                    \
    if (!sm_nvrtc_available()) {                                                          \
      check_stub();                                                                       \
      return;                                                                             \
    }                                                                                     \
  } while (0)

/* Compiles src; fails the test with NVRTC's message on error. */
static unsigned char *compile_ok(const char *src, int cc, sm_nvrtc_output output,
                                 const char *cache_dir, size_t *len, bool *from_cache) {
  sm_nvrtc_request r = {src, "test.cu", cc, output, cache_dir};
  char *err = NULL;
  unsigned char *out = sm_nvrtc_compile(&r, len, from_cache, &err);
  ck_assert_msg(out != NULL, "sm_%d: %s", cc, err ? err : "(out of memory)");
  ck_assert_ptr_null(err);
  return out;
}

/* An error message that contains every one of the given pieces. */
static void assert_has(const char *msg, const char *piece) {
  ck_assert_msg(msg && strstr(msg, piece), "expected \"%s\" in:\n%s", piece,
                msg ? msg : "(null)");
}

/* ---------------------------------------------------------- NVRTC */

/* True when each test runs in its own process (Check's default): a test
 * that sets the environment NVRTC is loaded with needs one. */
static bool forked = true;

/* libnvrtc is loaded on first use: a missing one is named, with the way
 * out, by every entry point, and the answer does not change. */
START_TEST(missing_library_is_named) {
  if (!forked) {
    fprintf(stderr, "skipping %s: it sets the environment of a fresh process "
                    "(run without CK_FORK=no)\n", __func__);
    return;
  }
#ifdef SMELT_NVRTC_LIBRARY
  setenv("SMELT_NVRTC", "/nonexistent/libnvrtc.so.13", 1);
  ck_assert(!sm_nvrtc_available());
  const char *want = "NVRTC could not be loaded (/nonexistent/libnvrtc.so.13: ";
  char *err = NULL;
  int major, minor, cc = -1;
  ck_assert_int_eq(sm_nvrtc_version(&major, &minor, &err), -1);
  ck_assert_int_eq(major, -1);
  assert_has(err, want);
  assert_has(err, "set SMELT_NVRTC to libnvrtc's path");
  sm_free(err);
  ck_assert_int_eq(sm_nvrtc_parse_arch("sm_80", &cc, &err), -1);
  assert_has(err, want);
  sm_free(err);
  sm_nvrtc_request r = {axpy_src, "axpy.cu", 80, SM_NVRTC_CUBIN, NULL};
  size_t len = 1;
  ck_assert_ptr_null(sm_nvrtc_compile(&r, &len, NULL, &err));
  ck_assert(len == 0);
  assert_has(err, want);
  sm_free(err);
  /* a malformed arch is still reported as such first */
  ck_assert_int_eq(sm_nvrtc_parse_arch("sm_9x", &cc, &err), -1);
  assert_has(err, "unknown CUDA arch \"sm_9x\"");
  sm_free(err);
#else
  check_stub();
#endif
}
END_TEST

START_TEST(version_and_availability) {
  NEED_NVRTC();
  int major = 0, minor = -1;
  char *err = NULL;
  ck_assert_int_eq(sm_nvrtc_version(&major, &minor, &err), 0);
  ck_assert_ptr_null(err);
  ck_assert_int_ge(major, 11);
  ck_assert_int_ge(minor, 0);
}
END_TEST

START_TEST(ptx_for_sm80_and_sm90) {
  NEED_NVRTC();
  for (int cc = 80; cc <= 90; cc += 10) {
    size_t len = 0;
    bool from_cache = true;
    char *ptx = (char *)compile_ok(axpy_src, cc, SM_NVRTC_PTX, NULL, &len, &from_cache);
    ck_assert(!from_cache);
    ck_assert_uint_eq(strlen(ptx), len);
    assert_has(ptx, ".entry smelt_test_axpy(");
    char target[32];
    snprintf(target, sizeof target, ".target sm_%d\n", cc);
    assert_has(ptx, target);
    /* IEEE division and square root: no approximate instructions */
    ck_assert_msg(!strstr(ptx, "div.approx") && !strstr(ptx, "sqrt.approx") &&
                      !strstr(ptx, ".ftz"),
                  "%s", ptx);
    sm_free(ptx);
  }
}
END_TEST

START_TEST(cubin_for_sm80_and_sm90) {
  NEED_NVRTC();
  for (int cc = 80; cc <= 90; cc += 10) {
    size_t len = 0;
    unsigned char *cubin = compile_ok(axpy_src, cc, SM_NVRTC_CUBIN, NULL, &len, NULL);
    ck_assert_uint_gt(len, 64);
    ck_assert(!memcmp(cubin, "\x7f" "ELF", 4));
    ck_assert_int_eq(cubin[4], 2); /* ELFCLASS64 */
    int machine = cubin[18] | cubin[19] << 8;
    ck_assert_int_eq(machine, 190); /* EM_CUDA */
    /* the kernel's symbol is in the string table */
    bool named = false;
    for (size_t i = 0; i + 15 <= len && !named; i++)
      named = !memcmp(cubin + i, "smelt_test_axpy", 15);
    ck_assert(named);
    sm_free(cubin);
  }
}
END_TEST

START_TEST(syntax_error_quotes_the_line) {
  NEED_NVRTC();
  char *dir = tu_temp_dir("nvrtc");
  sm_nvrtc_request r = {bad_src, "broken.cu", 80, SM_NVRTC_CUBIN, dir};
  char *err = NULL;
  size_t len = 7;
  bool from_cache = true;
  ck_assert_ptr_null(sm_nvrtc_compile(&r, &len, &from_cache, &err));
  ck_assert(!from_cache && len == 0);
  assert_has(err, "NVRTC: broken.cu for sm_80: compilation failed\n");
  assert_has(err, "\nbroken.cu(4): error: expected a \";\"\n  4 |   y[i] = v;\n    |   ^\n");
  assert_has(err, "broken.cu(5): error");
  assert_has(err, "\n  5 |   y[i] += not_declared_anywhere;\n    |           ^\n");
  assert_has(err, "not_declared_anywhere\" is undefined");
  /* the message does not end in blank lines */
  ck_assert(err[strlen(err) - 1] != '\n');
  sm_free(err);
  /* nothing was cached */
  ck_assert_int_eq(files_with(dir, "", NULL, 0), 2); /* . and .. */
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

START_TEST(parse_arch) {
  NEED_NVRTC();
  static const struct {
    const char *text;
    int cc;
  } good[] = {{"sm_90", 90}, {"sm_90a", 90}, {"compute_90", 90}, {"90", 90},
              {"sm_75", 75}, {"compute_80", 80}, {"86", 86}, {"sm_120", 120}};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    char *err = NULL;
    int cc = -1;
    ck_assert_msg(sm_nvrtc_parse_arch(good[i].text, &cc, &err) == 0, "%s: %s", good[i].text,
                  err);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(cc, good[i].cc);
  }
  static const char *junk[] = {"",      "sm_",   "sm",     "sm_9",    "sm_9x", "gfx90a",
                               "sm_090", "sm_90ab", " sm_90", "sm_90 ", "sm_1000", "compute_",
                               "SM_90", "sm-90"};
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
    char *err = NULL;
    int cc = -1;
    ck_assert_int_eq(sm_nvrtc_parse_arch(junk[i], &cc, &err), -1);
    ck_assert_int_eq(cc, 0);
    char want[64];
    snprintf(want, sizeof want, "unknown CUDA arch \"%s\"", junk[i]);
    assert_has(err, want);
    sm_free(err);
  }
  char *err = NULL;
  int cc;
  ck_assert_int_eq(sm_nvrtc_parse_arch(NULL, &cc, &err), -1);
  assert_has(err, "unknown CUDA arch");
  sm_free(err);
  /* well-formed but not supported: the message lists what is */
  int major, minor;
  ck_assert_int_eq(sm_nvrtc_version(&major, &minor, &err), 0);
  static const char *unsupported[] = {"sm_10", "sm_35", "compute_50", "99"};
  for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
    ck_assert_int_eq(sm_nvrtc_parse_arch(unsupported[i], &cc, &err), -1);
    char want[128];
    snprintf(want, sizeof want, "CUDA arch \"%s\" is not supported by NVRTC %d.%d (supported: sm_",
             unsupported[i], major, minor);
    assert_has(err, want);
    assert_has(err, "sm_80, ");
    ck_assert(err[strlen(err) - 1] == ')');
    sm_free(err);
  }
  /* the same check guards a request with an unsupported cc */
  sm_nvrtc_request r = {axpy_src, "axpy.cu", 35, SM_NVRTC_PTX, NULL};
  size_t len;
  ck_assert_ptr_null(sm_nvrtc_compile(&r, &len, NULL, &err));
  assert_has(err, "CUDA arch \"sm_35\" is not supported by NVRTC");
  sm_free(err);
  /* and a request without a source */
  r.src = NULL;
  r.cc = 80;
  ck_assert_ptr_null(sm_nvrtc_compile(&r, &len, NULL, &err));
  assert_has(err, "NVRTC: ");
  sm_free(err);
}
END_TEST

/* One cache round: compiles and checks from_cache and the bytes. */
static void cached_compile(const char *dir, sm_nvrtc_output output, bool want_cached,
                           const unsigned char *want, size_t want_len) {
  size_t len = 0;
  bool from_cache = !want_cached;
  unsigned char *out = compile_ok(axpy_src, 80, output, dir, &len, &from_cache);
  ck_assert_int_eq(from_cache, want_cached);
  ck_assert_uint_eq(len, want_len);
  ck_assert(!memcmp(out, want, len));
  ck_assert_int_eq(out[len], 0); /* NUL-terminated, cached or not */
  sm_free(out);
}

START_TEST(cache_hits_and_survives_corruption) {
  NEED_NVRTC();
  char *root = tu_temp_dir("nvrtc");
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/a/b", root); /* created on the first write */
  for (int k = 0; k < 2; k++) {
    sm_nvrtc_output output = k ? SM_NVRTC_CUBIN : SM_NVRTC_PTX;
    const char *ext = k ? ".cubin" : ".ptx";
    size_t len = 0;
    unsigned char *fresh = compile_ok(axpy_src, 80, output, NULL, &len, NULL);
    cached_compile(dir, output, false, fresh, len);
    cached_compile(dir, output, true, fresh, len);
    char path[4400];
    ck_assert_int_eq(files_with(dir, ext, path, sizeof path), 1);
    /* a corrupt payload is a miss, and the entry is rewritten */
    size_t flen;
    unsigned char *file = read_file(path, &flen);
    ck_assert_uint_eq(flen, 40 + len);
    ck_assert(!memcmp(file, "SMELTCU", 8));
    file[40 + len / 2] ^= 0x20;
    write_file(path, file, flen);
    cached_compile(dir, output, false, fresh, len);
    cached_compile(dir, output, true, fresh, len);
    /* so is a truncated one */
    write_file(path, file, flen / 2);
    cached_compile(dir, output, false, fresh, len);
    cached_compile(dir, output, true, fresh, len);
    free(file);
    sm_free(fresh);
  }
  /* PTX and cubins, other sources and other archs have their own keys */
  ck_assert_int_eq(files_with(dir, ".ptx", NULL, 0), 1);
  ck_assert_int_eq(files_with(dir, ".cubin", NULL, 0), 1);
  size_t len;
  bool from_cache = true;
  unsigned char *out = compile_ok(axpy_src, 90, SM_NVRTC_PTX, dir, &len, &from_cache);
  ck_assert(!from_cache);
  sm_free(out);
  char other[sizeof axpy_src + 16];
  snprintf(other, sizeof other, "%s// changed\n", axpy_src);
  out = compile_ok(other, 80, SM_NVRTC_PTX, dir, &len, &from_cache);
  ck_assert(!from_cache);
  sm_free(out);
  ck_assert_int_eq(files_with(dir, ".ptx", NULL, 0), 3);
  /* no temporary files are left behind */
  ck_assert_int_eq(files_with(dir, ".tmp", NULL, 0), 0);
  tu_rm_tree(root);
  free(root);
}
END_TEST

/* Each allocation of a compilation fails in turn: the result is then an
 * error or the right bytes, never a crash or a leak (ASan, valgrind). */
START_TEST(allocation_failures) {
  NEED_NVRTC();
  char *dir = tu_temp_dir("nvrtc");
  size_t want_len;
  unsigned char *want = compile_ok(axpy_src, 80, SM_NVRTC_PTX, NULL, &want_len, NULL);
  const char *srcs[] = {axpy_src, axpy_src, bad_src};
  for (int round = 0; round < 3; round++) {
    /* round 0: a cold cache each time; 1: a warm one; 2: an error */
    if (round == 1) sm_free(compile_ok(axpy_src, 80, SM_NVRTC_PTX, dir, &want_len, NULL));
    bool done = false;
    for (long k = 0; !done && k < 200; k++) {
      if (round == 0) tu_rm_tree(dir);
      sm_nvrtc_request r = {srcs[round], "t.cu", 80, SM_NVRTC_PTX, round < 2 ? dir : NULL};
      char *err = NULL;
      size_t len = 0;
      sm_alloc_fail_after(k);
      unsigned char *out = sm_nvrtc_compile(&r, &len, NULL, &err);
      sm_alloc_fail_after(-1);
      if (out) {
        ck_assert_int_lt(round, 2);
        ck_assert_ptr_null(err);
        ck_assert_uint_eq(len, want_len);
        ck_assert(!memcmp(out, want, len));
        sm_free(out);
        done = true;
      } else if (err && strcmp(err, "out of memory")) {
        /* anything but running out of memory is the whole message */
        ck_assert_int_eq(round, 2);
        assert_has(err, "NVRTC: t.cu for sm_80: compilation failed\n");
        assert_has(err, "\n  4 |   y[i] = v;");
        done = true;
      }
      sm_free(err);
    }
    ck_assert_msg(done, "round %d never succeeded", round);
  }
  sm_free(want);
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

typedef struct compile_job {
  const char *dir;
  unsigned char *out;
  size_t len;
  char *err;
} compile_job;

static void *compile_thread(void *arg) {
  compile_job *j = arg;
  sm_nvrtc_request r = {axpy_src, "axpy.cu", 80, SM_NVRTC_CUBIN, j->dir};
  j->out = sm_nvrtc_compile(&r, &j->len, NULL, &j->err);
  return NULL;
}

/* Threads compile at once, sharing one cache directory. */
START_TEST(threads_compile_at_once) {
  NEED_NVRTC();
  char *dir = tu_temp_dir("nvrtc");
  enum { NTHREADS = 4 };
  compile_job jobs[NTHREADS] = {{0}};
  pthread_t t[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    jobs[i].dir = dir;
    ck_assert_int_eq(pthread_create(&t[i], NULL, compile_thread, &jobs[i]), 0);
  }
  for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < NTHREADS; i++) {
    ck_assert_msg(jobs[i].out != NULL, "%s", jobs[i].err);
    ck_assert_uint_eq(jobs[i].len, jobs[0].len);
    ck_assert(!memcmp(jobs[i].out, jobs[0].out, jobs[0].len));
  }
  for (int i = 0; i < NTHREADS; i++) sm_free(jobs[i].out);
  ck_assert_int_eq(files_with(dir, ".cubin", NULL, 0), 1);
  ck_assert_int_eq(files_with(dir, ".tmp", NULL, 0), 0);
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

/* ------------------------------------------------------- disk cache */

static const char magic[] = "TESTMAG"; /* 8 bytes with its NUL */

START_TEST(disk_cache_round_trip) {
  char *root = tu_temp_dir("nvrtc");
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/x/y/z", root);
  const char *key = "0123456789abcdef0123456789abcdef";
  size_t len = 99;
  ck_assert_ptr_null(sm_cache_read(dir, key, "bin", magic, &len)); /* missing */
  ck_assert_uint_eq(len, 0);
  unsigned char payload[1000];
  for (size_t i = 0; i < sizeof payload; i++) payload[i] = (unsigned char)(i * 7 + 3);
  sm_cache_write(dir, key, "bin", magic, payload, sizeof payload);
  unsigned char *got = sm_cache_read(dir, key, "bin", magic, &len);
  ck_assert_ptr_nonnull(got);
  ck_assert_uint_eq(len, sizeof payload);
  ck_assert(!memcmp(got, payload, len));
  ck_assert_int_eq(got[len], 0);
  sm_free(got);
  /* another extension or magic is another entry */
  ck_assert_ptr_null(sm_cache_read(dir, key, "o", magic, &len));
  ck_assert_ptr_null(sm_cache_read(dir, key, "bin", "OTHERMAG", &len));
  /* rewriting replaces */
  payload[0] ^= 1;
  sm_cache_write(dir, key, "bin", magic, payload, 10);
  got = sm_cache_read(dir, key, "bin", magic, &len);
  ck_assert_ptr_nonnull(got);
  ck_assert_uint_eq(len, 10);
  ck_assert(!memcmp(got, payload, 10));
  sm_free(got);
  /* empty payloads are not stored */
  sm_cache_write(dir, "ffffffffffffffffffffffffffffffff", "bin", magic, payload, 0);
  char path[4400];
  ck_assert_int_eq(files_with(dir, ".bin", path, sizeof path), 1);
  ck_assert_int_eq(files_with(dir, ".tmp", NULL, 0), 0);
  /* a directory where the cache should be: writes are ignored */
  char file_dir[4400];
  snprintf(file_dir, sizeof file_dir, "%s/not-a-dir", root);
  write_file(file_dir, "x", 1);
  sm_cache_write(file_dir, key, "bin", magic, payload, 10);
  ck_assert_ptr_null(sm_cache_read(file_dir, key, "bin", magic, &len));
  snprintf(file_dir, sizeof file_dir, "%s/not-a-dir/below", root);
  sm_cache_write(file_dir, key, "bin", magic, payload, 10);
  ck_assert_ptr_null(sm_cache_read(file_dir, key, "bin", magic, &len));
  /* a FIFO by an entry's name is a miss, not a read that waits forever */
  char fifo[4400];
  snprintf(fifo, sizeof fifo, "%s/%s.fifo", dir, key);
  ck_assert_int_eq(mkfifo(fifo, 0600), 0);
  ck_assert_ptr_null(sm_cache_read(dir, key, "fifo", magic, &len));
  tu_rm_tree(root);
  free(root);
}
END_TEST

/* Damages the entry in one way and checks that the read is a miss. */
static void assert_rejected(const char *dir, const char *key, const char *path,
                            const unsigned char *good, size_t glen, size_t offset, int xor_with,
                            size_t keep, const char *what) {
  unsigned char *bad = malloc(glen);
  memcpy(bad, good, glen);
  if (offset < glen) bad[offset] ^= (unsigned char)xor_with;
  write_file(path, bad, keep);
  free(bad);
  size_t len = 5;
  unsigned char *got = sm_cache_read(dir, key, "bin", magic, &len);
  ck_assert_msg(got == NULL, "%s was accepted", what);
  ck_assert_uint_eq(len, 0);
  /* the intact file is accepted again */
  write_file(path, good, glen);
  got = sm_cache_read(dir, key, "bin", magic, &len);
  ck_assert_ptr_nonnull(got);
  sm_free(got);
}

START_TEST(disk_cache_rejects_damaged_files) {
  char *dir = tu_temp_dir("nvrtc");
  const char *key = "00000000000000000000000000000042";
  const char payload[] = "some payload of a cache entry, long enough to cut";
  size_t plen = sizeof payload - 1;
  sm_cache_write(dir, key, "bin", magic, payload, plen);
  char path[4400];
  ck_assert_int_eq(files_with(dir, ".bin", path, sizeof path), 1);
  size_t glen;
  unsigned char *good = read_file(path, &glen);
  ck_assert_uint_eq(glen, 40 + plen);
  /* the header: magic, format 2, zero, length, hash */
  ck_assert(!memcmp(good, magic, 8));
  ck_assert_int_eq(good[8], SM_CACHE_FORMAT);
  ck_assert_int_eq(good[16], plen);
  unsigned char sum[16];
  sm_hash128(payload, plen, sum);
  ck_assert(!memcmp(good + 24, sum, 16));
  ck_assert(!memcmp(good + 40, payload, plen));
  assert_rejected(dir, key, path, good, glen, 0, 0x01, glen, "a wrong magic");
  assert_rejected(dir, key, path, good, glen, 8, 0x07, glen, "another format");
  assert_rejected(dir, key, path, good, glen, 12, 0x01, glen, "a nonzero reserved word");
  assert_rejected(dir, key, path, good, glen, 16, 0x01, glen, "a longer length");
  assert_rejected(dir, key, path, good, glen, 23, 0x80, glen, "a huge length");
  assert_rejected(dir, key, path, good, glen, 30, 0x10, glen, "a wrong hash");
  assert_rejected(dir, key, path, good, glen, 40, 0x01, glen, "a changed first byte");
  assert_rejected(dir, key, path, good, glen, glen - 1, 0x40, glen, "a changed last byte");
  assert_rejected(dir, key, path, good, glen, glen, 0, glen - 1, "a truncated payload");
  assert_rejected(dir, key, path, good, glen, glen, 0, 40, "a header alone");
  assert_rejected(dir, key, path, good, glen, glen, 0, 39, "a truncated header");
  assert_rejected(dir, key, path, good, glen, glen, 0, 0, "an empty file");
  /* a file with extra bytes at the end */
  unsigned char *longer = malloc(glen + 3);
  memcpy(longer, good, glen);
  memcpy(longer + glen, "xyz", 3);
  write_file(path, longer, glen + 3);
  size_t len;
  ck_assert_ptr_null(sm_cache_read(dir, key, "bin", magic, &len));
  free(longer);
  /* a directory in the entry's place */
  unlink(path);
  mkdir(path, 0700);
  ck_assert_ptr_null(sm_cache_read(dir, key, "bin", magic, &len));
  rmdir(path);
  free(good);
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

/* The reads and writes of the cache under every allocation failure. */
START_TEST(disk_cache_allocation_failures) {
  char *dir = tu_temp_dir("nvrtc");
  const char *key = "0000000000000000000000000000abcd";
  bool written = false, read_back = false;
  for (long k = 0; k < 20 && !(written && read_back); k++) {
    sm_alloc_fail_after(k);
    sm_cache_write(dir, key, "bin", magic, "data", 4);
    sm_alloc_fail_after(-1);
    size_t len;
    unsigned char *got = sm_cache_read(dir, key, "bin", magic, &len);
    written = got != NULL;
    sm_free(got);
    if (!written) continue;
    sm_alloc_fail_after(k);
    got = sm_cache_read(dir, key, "bin", magic, &len);
    sm_alloc_fail_after(-1);
    read_back = got && len == 4 && !memcmp(got, "data", 4);
    sm_free(got);
  }
  ck_assert(written && read_back);
  ck_assert_int_eq(files_with(dir, ".tmp", NULL, 0), 0);
  tu_rm_tree(dir);
  free(dir);
}
END_TEST

/* ------------------------------------------------------------ hashing */

static void hex_of(const void *data, size_t len, char hex[33]) {
  sm_hasher h;
  sm_hasher_init(&h);
  sm_hasher_update(&h, data, len);
  sm_hasher_hex(&h, hex);
}

START_TEST(hash_known_answers) {
  /* Pinned: a change of the hash must bump SM_CACHE_FORMAT (entries'
   * checks) and the keys' revisions of its users. */
  char hex[33];
  hex_of("", 0, hex);
  ck_assert_str_eq(hex, "326af555085e1f92638471014b5e34dd");
  hex_of("smelt", 5, hex);
  ck_assert_str_eq(hex, "7c9d4c9b2d87759979e4d2b78d49d9e8");
  for (int i = 0; i < 32; i++) ck_assert(strchr("0123456789abcdef", hex[i]));
  ck_assert_int_eq(hex[32], 0);
}
END_TEST

START_TEST(hash_ignores_how_bytes_are_split) {
  unsigned char data[300];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i * 131 + 17);
  for (size_t len = 0; len <= sizeof data; len += 13) {
    unsigned char whole[16];
    sm_hash128(data, len, whole);
    /* fed in pieces of every size from 1 to 40 */
    for (size_t piece = 1; piece <= 40; piece++) {
      sm_hasher h;
      sm_hasher_init(&h);
      for (size_t at = 0; at < len; at += piece)
        sm_hasher_update(&h, data + at, len - at < piece ? len - at : piece);
      unsigned char split[16];
      sm_hasher_final(&h, split);
      ck_assert_msg(!memcmp(whole, split, 16), "len %zu piece %zu", len, piece);
    }
  }
  /* final leaves the hasher as it was */
  sm_hasher h;
  sm_hasher_init(&h);
  sm_hasher_update(&h, "abc", 3);
  unsigned char a[16], b[16], c[16];
  sm_hasher_final(&h, a);
  sm_hasher_final(&h, b);
  ck_assert(!memcmp(a, b, 16));
  sm_hasher_update(&h, "def", 3);
  sm_hasher_final(&h, b);
  sm_hash128("abcdef", 6, c);
  ck_assert(!memcmp(b, c, 16));
}
END_TEST

START_TEST(hash_fields_do_not_run_together) {
  const char *pairs[][2] = {{"ab", "c"}, {"a", "bc"}, {"abc", ""}, {"", "abc"}};
  char hex[4][33];
  for (int i = 0; i < 4; i++) {
    sm_hasher h;
    sm_hasher_init(&h);
    sm_hasher_str(&h, pairs[i][0]);
    sm_hasher_str(&h, pairs[i][1]);
    sm_hasher_hex(&h, hex[i]);
    for (int j = 0; j < i; j++) ck_assert_str_ne(hex[i], hex[j]);
  }
  /* NULL is the empty string; a field is its length and its bytes */
  sm_hasher h1, h2, h3;
  sm_hasher_init(&h1);
  sm_hasher_init(&h2);
  sm_hasher_init(&h3);
  sm_hasher_str(&h1, NULL);
  sm_hasher_str(&h2, "");
  sm_hasher_field(&h3, "x", 0);
  char a[33], b[33], c[33];
  sm_hasher_hex(&h1, a);
  sm_hasher_hex(&h2, b);
  sm_hasher_hex(&h3, c);
  ck_assert_str_eq(a, b);
  ck_assert_str_eq(a, c);
  /* trailing zero bytes count (the padding of the last block does not) */
  unsigned char zeros[20] = {0};
  for (size_t n = 0; n < 20; n++) {
    char x[33], y[33];
    hex_of(zeros, n, x);
    hex_of(zeros, n + 1, y);
    ck_assert_str_ne(x, y);
  }
}
END_TEST

static int popcount128(const unsigned char a[16], const unsigned char b[16]) {
  int n = 0;
  for (int i = 0; i < 16; i++) n += __builtin_popcount((unsigned)(a[i] ^ b[i]));
  return n;
}

/* Flipping any one input bit flips about half of the output bits. */
START_TEST(hash_avalanche) {
  for (size_t len = 1; len <= 64; len *= 4) {
    unsigned char data[64];
    for (size_t i = 0; i < len; i++) data[i] = (unsigned char)(i * 37 + 11);
    unsigned char base[16];
    sm_hash128(data, len, base);
    long total = 0;
    int least = 128, most = 0;
    for (size_t bit = 0; bit < 8 * len; bit++) {
      data[bit / 8] ^= (unsigned char)(1u << (bit % 8));
      unsigned char h[16];
      sm_hash128(data, len, h);
      data[bit / 8] ^= (unsigned char)(1u << (bit % 8));
      int d = popcount128(base, h);
      total += d;
      least = d < least ? d : least;
      most = d > most ? d : most;
    }
    double mean = (double)total / (double)(8 * len);
    ck_assert_msg(mean > 56 && mean < 72, "len %zu: mean %.1f", len, mean);
    ck_assert_msg(least >= 30 && most <= 98, "len %zu: %d..%d", len, least, most);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("nvrtc");
  TCase *tc = tcase_create("nvrtc");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, version_and_availability);
  tcase_add_test(tc, missing_library_is_named);
  tcase_add_test(tc, ptx_for_sm80_and_sm90);
  tcase_add_test(tc, cubin_for_sm80_and_sm90);
  tcase_add_test(tc, syntax_error_quotes_the_line);
  tcase_add_test(tc, parse_arch);
  tcase_add_test(tc, cache_hits_and_survives_corruption);
  tcase_add_test(tc, allocation_failures);
  tcase_add_test(tc, threads_compile_at_once);
  suite_add_tcase(s, tc);
  TCase *tcc = tcase_create("disk_cache");
  tcase_add_test(tcc, disk_cache_round_trip);
  tcase_add_test(tcc, disk_cache_rejects_damaged_files);
  tcase_add_test(tcc, disk_cache_allocation_failures);
  tcase_add_test(tcc, hash_known_answers);
  tcase_add_test(tcc, hash_ignores_how_bytes_are_split);
  tcase_add_test(tcc, hash_fields_do_not_run_together);
  tcase_add_test(tcc, hash_avalanche);
  suite_add_tcase(s, tcc);
  SRunner *sr = srunner_create(s);
  forked = srunner_fork_status(sr) != CK_NOFORK;
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
