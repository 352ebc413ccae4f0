/* Reading (Fashion-)MNIST's IDX files with zlib. See idx.h. */
#include "idx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* The largest data this reader accepts (a bad header must not make it
 * allocate terabytes); the training images are 47 MB. */
#define IDX_MAX_BYTES ((int64_t)1 << 31)
/* The first allocation for the data; it doubles as the bytes arrive. */
#define IDX_CHUNK ((int64_t)1 << 20)

static int fail(char *err, size_t errlen, const char *path, const char *fmt, ...) {
  if (err && errlen) {
    int n = snprintf(err, errlen, "%s: ", path);
    if (n >= 0 && (size_t)n < errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return -1;
}

/* Reads up to n bytes; returns how many were read (fewer at the end of the
 * data), or -1 when zlib reports an error (the message in *zmsg). */
static int64_t read_bytes(gzFile f, const char *path, void *buf, int64_t n, const char **zmsg) {
  int64_t got = 0;
  while (got < n) {
    int64_t want = n - got;
    if (want > (1 << 30)) want = 1 << 30;
    int r = gzread(f, (char *)buf + got, (unsigned)want);
    if (r < 0) break;
    got += r;
    if (r < want) break;
  }
  int errnum = Z_OK;
  const char *msg = gzerror(f, &errnum);
  if (errnum != Z_OK) {
    *zmsg = errnum == Z_ERRNO ? strerror(errno) : msg;
    /* zlib's message starts with the path */
    size_t len = strlen(path);
    if (!strncmp(*zmsg, path, len) && !strncmp(*zmsg + len, ": ", 2)) *zmsg += len + 2;
    return -1;
  }
  return got;
}

static void dims_text(const int64_t *dims, int ndims, char *buf, size_t len) {
  size_t at = 0;
  buf[0] = 0;
  for (int i = 0; i < ndims && at < len; i++) {
    int n = snprintf(buf + at, len - at, "%s%" PRId64, i ? "x" : "", dims[i]);
    if (n < 0) break;
    at += (size_t)n;
  }
}

int idx_read(const char *path, int ndims, idx_file *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  const char *what = ndims == 3 ? "an images file: count, rows, columns"
                                : ndims == 1 ? "a labels file: count" : "this file";
  errno = 0;
  gzFile f = gzopen(path, "rb");
  if (!f) return fail(err, errlen, path, "%s", errno ? strerror(errno) : "cannot open");
  const char *zmsg = NULL;
  int rc = -1;
  uint8_t head[4 + 4 * 3];
  int64_t got = read_bytes(f, path, head, 4, &zmsg);
  if (got < 0) {
    fail(err, errlen, path, "corrupt or truncated gzip data (zlib: %s)", zmsg);
    goto done;
  }
  if (got < 4) {
    fail(err, errlen, path, "truncated: %" PRId64 " bytes, less than an IDX header", got);
    goto done;
  }
  if (head[0] != 0 || head[1] != 0) {
    fail(err, errlen, path,
         "not an IDX file: it starts with the bytes %02x %02x %02x %02x (an IDX file starts "
         "with 00 00, a type byte and a dimension count)",
         head[0], head[1], head[2], head[3]);
    goto done;
  }
  if (head[2] != 0x08) {
    fail(err, errlen, path, "IDX data type 0x%02x, expected 0x08 (unsigned bytes)", head[2]);
    goto done;
  }
  if (head[3] != ndims) {
    fail(err, errlen, path, "the IDX header has %d dimension%s, expected %d (%s)", head[3],
         head[3] == 1 ? "" : "s", ndims, what);
    goto done;
  }
  got = read_bytes(f, path, head + 4, 4 * ndims, &zmsg);
  if (got < 0) {
    fail(err, errlen, path, "corrupt or truncated gzip data (zlib: %s)", zmsg);
    goto done;
  }
  if (got < 4 * ndims) {
    fail(err, errlen, path, "truncated in the IDX header (%d dimensions need %d bytes)", ndims,
         4 + 4 * ndims);
    goto done;
  }
  int64_t bytes = 1;
  for (int i = 0; i < ndims; i++) {
    const uint8_t *d = head + 4 + 4 * i;
    out->dims[i] = (int64_t)d[0] << 24 | (int64_t)d[1] << 16 | (int64_t)d[2] << 8 | d[3];
    bytes = bytes > IDX_MAX_BYTES ? bytes : bytes * out->dims[i];
  }
  out->ndims = ndims;
  char shape[80];
  dims_text(out->dims, ndims, shape, sizeof shape);
  if (bytes > IDX_MAX_BYTES) {
    fail(err, errlen, path, "the IDX header says %s, more than 2 GiB of data: not a dataset file",
         shape);
    goto done;
  }
  /* The buffer grows as the bytes arrive (the length of gzip'ed data is
   * known only at its end), so that a header that lies about the sizes
   * costs no more memory than the file really holds. */
  int64_t cap = bytes < IDX_CHUNK ? bytes : IDX_CHUNK;
  got = 0;
  for (;;) {
    uint8_t *grown = realloc(out->data, cap ? (size_t)cap : 1);
    if (!grown) {
      fail(err, errlen, path, "out of memory for %" PRId64 " bytes", cap);
      goto done;
    }
    out->data = grown;
    int64_t r = read_bytes(f, path, out->data + got, cap - got, &zmsg);
    if (r < 0) {
      fail(err, errlen, path, "corrupt or truncated gzip data (zlib: %s)", zmsg);
      goto done;
    }
    got += r;
    if (got < cap || cap == bytes) break;
    cap = cap > bytes / 2 ? bytes : cap * 2;
  }
  if (got < bytes) {
    fail(err, errlen, path,
         "truncated: the IDX header says %s (%" PRId64 " bytes of data) but only %" PRId64
         " bytes follow it",
         shape, bytes, got);
    goto done;
  }
  /* Nothing may follow the data. One chunk tells: reading on to count the
   * rest would let a small gzip file make us inflate gigabytes. */
  char rest[1 << 14];
  int64_t extra = read_bytes(f, path, rest, sizeof rest, &zmsg);
  if (extra < 0) {
    fail(err, errlen, path, "corrupt or truncated gzip data (zlib: %s)", zmsg);
    goto done;
  }
  if (extra) {
    fail(err, errlen, path,
         "the IDX header says %s (%" PRId64 " bytes of data) but %s%" PRId64
         " more bytes follow: the sizes disagree with the file's length",
         shape, bytes, extra == (int64_t)sizeof rest ? "at least " : "", extra);
    goto done;
  }
  rc = 0;
done:
  gzclose_r(f);
  if (rc) idx_free(out);
  return rc;
}

void idx_free(idx_file *f) {
  free(f->data);
  memset(f, 0, sizeof *f);
}

int fmnist_read_split(const char *images_path, const char *labels_path, fmnist_split *out,
                      char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  idx_file im, lb;
  if (idx_read(images_path, 3, &im, err, errlen)) return -1;
  if (idx_read(labels_path, 1, &lb, err, errlen)) {
    idx_free(&im);
    return -1;
  }
  int rc = -1;
  if (lb.dims[0] != im.dims[0]) {
    fail(err, errlen, labels_path, "%" PRId64 " labels, but %s has %" PRId64 " images",
         lb.dims[0], images_path, im.dims[0]);
    goto done;
  }
  for (int64_t i = 0; i < lb.dims[0]; i++)
    if (lb.data[i] >= FMNIST_CLASSES) {
      fail(err, errlen, labels_path, "label %" PRId64 " is %d (labels are 0 to %d)", i,
           lb.data[i], FMNIST_CLASSES - 1);
      goto done;
    }
  int64_t n = im.dims[0] * im.dims[1] * im.dims[2];
  out->images = malloc((n ? (size_t)n : 1) * sizeof(float));
  out->labels = malloc((lb.dims[0] ? (size_t)lb.dims[0] : 1) * sizeof(int64_t));
  if (!out->images || !out->labels) {
    fail(err, errlen, images_path, "out of memory");
    goto done;
  }
  /* [0, 255] -> [0, 1] -> normalized, as torchvision's ToTensor and
   * Normalize((0.2860,), (0.3530,)) */
  for (int64_t i = 0; i < n; i++)
    out->images[i] = ((float)im.data[i] / 255.0f - FMNIST_MEAN) / FMNIST_STD;
  for (int64_t i = 0; i < lb.dims[0]; i++) out->labels[i] = lb.data[i];
  out->count = im.dims[0];
  out->rows = im.dims[1];
  out->cols = im.dims[2];
  rc = 0;
done:
  idx_free(&im);
  idx_free(&lb);
  if (rc) fmnist_free(out);
  return rc;
}

/* dir/name.gz, or dir/name when only that exists. */
static void data_path(const char *dir, const char *name, char *buf, size_t len) {
  snprintf(buf, len, "%s/%s", dir, name);
  if (access(buf, F_OK) == 0) return;
  char plain[4096];
  snprintf(plain, sizeof plain, "%s", buf);
  size_t n = strlen(plain);
  if (n > 3 && strcmp(plain + n - 3, ".gz") == 0) {
    plain[n - 3] = 0;
    if (access(plain, F_OK) == 0) snprintf(buf, len, "%s", plain);
  }
}

int fmnist_load(const char *dir, const char *prefix, fmnist_split *out, char *err,
                size_t errlen) {
  char images[4096], labels[4096], name[64];
  snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
  data_path(dir, name, images, sizeof images);
  snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
  data_path(dir, name, labels, sizeof labels);
  if (fmnist_read_split(images, labels, out, err, errlen)) return -1;
  if (out->rows != 28 || out->cols != 28) {
    fail(err, errlen, images, "the images are %" PRId64 "x%" PRId64 ", the models take 28x28",
         out->rows, out->cols);
    fmnist_free(out);
    return -1;
  }
  return 0;
}

void fmnist_free(fmnist_split *s) {
  free(s->images);
  free(s->labels);
  memset(s, 0, sizeof *s);
}
