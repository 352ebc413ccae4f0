/* Tests of the IDX reader (idx.c): good files, gzip'ed and plain, and every
 * kind of bad file gives a message that names the file and says what is
 * wrong. The files are made here, in a temporary directory. */
#include "idx.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char dir[] = "/tmp/fmnist-idx-test.XXXXXX";
static int failures, checks;

static const char *path_of(const char *name) {
  static char buf[8][512];
  static int next;
  char *p = buf[next++ % 8];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

/* Writes bytes to dir/name, gzip'ed when the name ends in .gz. */
static void write_file(const char *name, const void *data, size_t n) {
  const char *path = path_of(name);
  size_t len = strlen(name);
  if (len > 3 && !strcmp(name + len - 3, ".gz")) {
    gzFile f = gzopen(path, "wb");
    if (!f || (n && gzwrite(f, data, (unsigned)n) != (int)n) || gzclose(f) != Z_OK) {
      fprintf(stderr, "cannot write %s\n", path);
      exit(1);
    }
  } else {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f)) {
      fprintf(stderr, "cannot write %s\n", path);
      exit(1);
    }
  }
}

/* An IDX file of unsigned bytes: header for dims, then ndata bytes
 * (value i % 256 at i, or the labels given). */
static void write_idx(const char *name, int ndims, const uint32_t *dims, size_t ndata,
                      const uint8_t *data) {
  size_t n = 4 + 4 * (size_t)ndims + ndata;
  uint8_t *b = malloc(n);
  b[0] = 0, b[1] = 0, b[2] = 0x08, b[3] = (uint8_t)ndims;
  for (int i = 0; i < ndims; i++) {
    uint8_t *d = b + 4 + 4 * i;
    d[0] = (uint8_t)(dims[i] >> 24), d[1] = (uint8_t)(dims[i] >> 16);
    d[2] = (uint8_t)(dims[i] >> 8), d[3] = (uint8_t)dims[i];
  }
  for (size_t i = 0; i < ndata; i++) b[4 + 4 * ndims + i] = data ? data[i] : (uint8_t)(i % 256);
  write_file(name, b, n);
  free(b);
}

static void check(int cond, const char *what) {
  checks++;
  if (!cond) {
    failures++;
    fprintf(stderr, "FAIL: %s\n", what);
  }
}

/* Reading name must fail with a message naming the file and containing
 * each of the expected pieces. */
static void expect_idx_error(const char *name, int ndims, const char *expect) {
  idx_file f;
  char err[1024] = "";
  const char *path = path_of(name);
  int rc = idx_read(path, ndims, &f, err, sizeof err);
  char what[1400];
  snprintf(what, sizeof what, "%s: expected an error with \"%s\", got rc %d \"%s\"", name, expect,
           rc, err);
  check(rc == -1 && strstr(err, path) == err && strstr(err, expect), what);
  if (rc == 0) idx_free(&f);
  else printf("ok: %s\n", err);
}

static void expect_split_error(const char *images, const char *labels, const char *who,
                               const char *expect) {
  fmnist_split s;
  char err[1024] = "";
  int rc = fmnist_read_split(path_of(images), path_of(labels), &s, err, sizeof err);
  char what[1400];
  snprintf(what, sizeof what, "%s + %s: expected an error about %s with \"%s\", got rc %d \"%s\"",
           images, labels, who, expect, rc, err);
  check(rc == -1 && strstr(err, path_of(who)) == err && strstr(err, expect), what);
  if (rc == 0) fmnist_free(&s);
  else printf("ok: %s\n", err);
}

int main(void) {
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  const uint32_t img_dims[3] = {3, 28, 28}, lab3[1] = {3};
  const uint8_t labels_ok[3] = {0, 9, 4}, labels_bad[3] = {0, 12, 4};

  /* good files, gzip'ed and plain, read back with their values */
  write_idx("train-images-idx3-ubyte.gz", 3, img_dims, 3 * 784, NULL);
  write_idx("train-labels-idx1-ubyte.gz", 1, lab3, 3, labels_ok);
  write_idx("t10k-images-idx3-ubyte", 3, img_dims, 3 * 784, NULL);
  write_idx("t10k-labels-idx1-ubyte", 1, lab3, 3, labels_ok);
  char err[1024] = "";
  for (int k = 0; k < 2; k++) {
    fmnist_split s;
    int rc = fmnist_load(dir, k ? "t10k" : "train", &s, err, sizeof err);
    check(rc == 0, k ? "plain files load" : "gzip'ed files load");
    if (rc) {
      fprintf(stderr, "  %s\n", err);
      continue;
    }
    check(s.count == 3 && s.rows == 28 && s.cols == 28, "dims");
    check(s.labels[0] == 0 && s.labels[1] == 9 && s.labels[2] == 4, "labels");
    /* byte 255 (index 255) and byte 0 (index 256), normalized */
    check(fabsf(s.images[255] - (1.0f - FMNIST_MEAN) / FMNIST_STD) < 1e-6f, "pixel 255");
    check(fabsf(s.images[256] - (0.0f - FMNIST_MEAN) / FMNIST_STD) < 1e-6f, "pixel 0");
    fmnist_free(&s);
  }

  /* a missing file */
  expect_idx_error("nothing-here.gz", 3, "No such file");
  /* empty, or shorter than the header */
  write_file("empty.gz", "", 0);
  expect_idx_error("empty.gz", 3, "truncated");
  write_file("short", "\0\0\x08", 3);
  expect_idx_error("short", 3, "truncated");
  /* not an IDX file at all (plain text, and gzip'ed text) */
  write_file("text", "hello, world\n", 13);
  expect_idx_error("text", 3, "not an IDX file");
  write_file("text.gz", "hello, world\n", 13);
  expect_idx_error("text.gz", 3, "not an IDX file");
  /* a type other than unsigned bytes */
  write_file("floats", "\0\0\x0d\x01\0\0\0\x01\0\0\0\0", 12);
  expect_idx_error("floats", 1, "data type 0x0d");
  /* a labels file where images are expected, and the reverse */
  expect_idx_error("train-labels-idx1-ubyte.gz", 3, "1 dimension, expected 3");
  expect_idx_error("train-images-idx3-ubyte.gz", 1, "3 dimensions, expected 1");
  /* truncated in the dims */
  write_file("cut-dims", "\0\0\x08\x03\0\0\0\x03\0\0", 10);
  expect_idx_error("cut-dims", 3, "truncated in the IDX header");
  /* less data than the header says */
  write_idx("cut-data.gz", 3, img_dims, 1000, NULL);
  expect_idx_error("cut-data.gz", 3, "truncated: the IDX header says 3x28x28 (2352 bytes of data) "
                                     "but only 1000 bytes follow");
  /* more data than the header says */
  write_idx("long-data.gz", 3, img_dims, 3 * 784 + 5, NULL);
  expect_idx_error("long-data.gz", 3, "5 more bytes follow");
  /* a long tail is not inflated to its end to be counted */
  write_idx("long-tail.gz", 3, img_dims, 3 * 784 + 100000, NULL);
  expect_idx_error("long-tail.gz", 3, "but at least 16384 more bytes follow");
  /* a header that claims 2 GiB over 10 bytes: truncated (the reader
   * allocates as the data arrives, not what the header claims; the fuzz
   * harness, tests/fuzz/fuzz_idx.c, runs under a 512 MiB malloc limit) */
  const uint32_t claims[3] = {32768, 256, 256};
  write_idx("claims-2gib", 3, claims, 10, NULL);
  expect_idx_error("claims-2gib", 3, "truncated: the IDX header says 32768x256x256 (2147483648 "
                                     "bytes of data) but only 10 bytes follow");
  /* data over several of the reader's chunks (its buffer grows) */
  {
    const uint32_t dims[3] = {12, 512, 513};
    size_t n = (size_t)12 * 512 * 513;
    write_idx("chunks.gz", 3, dims, n, NULL);
    idx_file f;
    char err[512] = "";
    int rc = idx_read(path_of("chunks.gz"), 3, &f, err, sizeof err);
    int ok = rc == 0 && f.dims[0] == 12 && f.dims[1] == 512 && f.dims[2] == 513;
    for (size_t i = 0; ok && i < n; i++) ok = f.data[i] == (uint8_t)(i % 256);
    check(ok, "chunks.gz: 3 MiB of data read back");
    if (rc == 0) idx_free(&f);
  }
  /* absurd dims */
  const uint32_t huge[3] = {4000000000u, 28, 28};
  write_idx("huge", 3, huge, 0, NULL);
  expect_idx_error("huge", 3, "more than 2 GiB");
  /* a gzip stream cut in the middle, and one with a corrupt byte */
  {
    FILE *f = fopen(path_of("train-images-idx3-ubyte.gz"), "rb");
    static uint8_t gz[1 << 16];
    size_t n = f ? fread(gz, 1, sizeof gz, f) : 0;
    if (f) fclose(f);
    check(n > 40, "the gzip'ed file reads back");
    write_file("cut-gzip", gz, n / 2);
    expect_idx_error("cut-gzip", 3, "corrupt or truncated gzip data (zlib: ");
    write_file("cut-gzip-trailer", gz, n - 4); /* every byte of data, no length */
    expect_idx_error("cut-gzip-trailer", 3, "corrupt or truncated gzip data (zlib: ");
    gz[n - 8] ^= 0xff; /* the CRC */
    write_file("bad-crc", gz, n);
    expect_idx_error("bad-crc", 3, "corrupt or truncated gzip data (zlib: ");
  }

  /* files that do not fit together */
  const uint32_t lab2[1] = {2};
  write_idx("labels2.gz", 1, lab2, 2, labels_ok);
  expect_split_error("train-images-idx3-ubyte.gz", "labels2.gz", "labels2.gz",
                     "2 labels, but");
  write_idx("labels-bad.gz", 1, lab3, 3, labels_bad);
  expect_split_error("train-images-idx3-ubyte.gz", "labels-bad.gz", "labels-bad.gz",
                     "label 1 is 12 (labels are 0 to 9)");
  expect_split_error("train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz",
                     "train-labels-idx1-ubyte.gz", "expected 3");
  /* images of another size */
  const uint32_t small[3] = {3, 8, 8};
  write_idx("small-images-idx3-ubyte.gz", 3, small, 3 * 64, NULL);
  write_idx("small-labels-idx1-ubyte.gz", 1, lab3, 3, labels_ok);
  {
    fmnist_split s;
    int rc = fmnist_load(dir, "small", &s, err, sizeof err);
    check(rc == -1 && strstr(err, "small-images-idx3-ubyte.gz: the images are 8x8"),
          "8x8 images are refused");
    if (rc == 0) fmnist_free(&s);
    else printf("ok: %s\n", err);
  }
  /* a missing directory names the file it looked for */
  {
    fmnist_split s;
    int rc = fmnist_load("/nonexistent-fmnist", "train", &s, err, sizeof err);
    check(rc == -1 && strstr(err, "/nonexistent-fmnist/train-images-idx3-ubyte.gz: No such file"),
          "a missing directory");
    if (rc == 0) fmnist_free(&s);
    else printf("ok: %s\n", err);
  }

  /* clean up */
  DIR *d = opendir(dir);
  for (struct dirent *e; d && (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(path_of(e->d_name));
  if (d) closedir(d);
  if (rmdir(dir)) fprintf(stderr, "warning: could not remove %s\n", dir);
  printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
