/* libFuzzer harness: the IDX reader of the Fashion-MNIST sample
 * (samples/fashion_mnist/idx.c), which reads the dataset files a user
 * downloads.
 *
 * The bytes are read as an images file (3 dimensions) and as a labels file
 * (1 dimension), plain and gzip'ed (zlib reads both): each read succeeds
 * with dims whose product is the data's length, or fails with a message
 * that starts with the file's path; the plain and the gzip'ed file give
 * the same result (the same message, path aside). An input that is itself
 * gzip data is read once, as given (zlib inflates it; its length after
 * inflating is unknown here). Runs under a 512 MiB
 * malloc limit (scripts/fuzz), so a header that claims more data than
 * the file holds must not be allocated up front. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_common.h"
#include "idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char gz_path[300];
static void gz_remove(void) { unlink(gz_path); }

/* The input gzip'ed into a second scratch file beside the first. */
static const char *write_gz(const char *plain, const uint8_t *data, size_t size) {
  if (!gz_path[0]) {
    snprintf(gz_path, sizeof gz_path, "%s.gz", plain);
    atexit(gz_remove);
  }
  gzFile f = gzopen(gz_path, "wb");
  if (!f) fuzz_fail("cannot create the gzip scratch file", gz_path);
  if (size && gzwrite(f, data, (unsigned)size) != (int)size)
    fuzz_fail("cannot write the gzip scratch file", NULL);
  if (gzclose(f) != Z_OK) fuzz_fail("cannot write the gzip scratch file", NULL);
  return gz_path;
}

/* One read: checks the promises and returns rc; the message after the
 * path in *rest. An IDX file of ndims dimensions holds data_bytes bytes of
 * data after its header (-1: unknown). */
static int read_one(const char *path, int ndims, int64_t data_bytes, idx_file *out, char *err,
                    size_t errlen, const char **rest) {
  err[0] = 0;
  int rc = idx_read(path, ndims, out, err, errlen);
  *rest = err;
  if (rc) {
    size_t n = strlen(path);
    if (!err[0]) fuzz_fail("the IDX reader failed without a message", path);
    if (strncmp(err, path, n) != 0 || strncmp(err + n, ": ", 2) != 0)
      fuzz_fail("an IDX error does not start with the file's path", err);
    *rest = err + n + 2;
    return rc;
  }
  if (out->ndims != ndims || !out->data) fuzz_fail("a successful read gave no data", path);
  int64_t bytes = 1;
  for (int i = 0; i < ndims; i++) {
    if (out->dims[i] < 0) fuzz_fail("a successful read gave a negative dimension", path);
    bytes *= out->dims[i];
  }
  if (data_bytes >= 0 && bytes != data_bytes) fuzz_fail("the dims do not give the data's length", path);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *plain = fuzz_scratch_write(data, size, ".idx");
  if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
    for (int ndims = 1; ndims <= 3; ndims += 2) {
      idx_file a;
      char ea[512];
      const char *ra;
      if (read_one(plain, ndims, -1, &a, ea, sizeof ea, &ra) == 0) idx_free(&a);
    }
    return 0;
  }
  const char *gz = write_gz(plain, data, size);
  for (int ndims = 1; ndims <= 3; ndims += 2) {
    idx_file a, b;
    char ea[512], eb[512];
    const char *ra, *rb;
    int64_t header = 4 + 4 * (int64_t)ndims, data_bytes = (int64_t)size - header;
    int rca = read_one(plain, ndims, data_bytes, &a, ea, sizeof ea, &ra);
    int rcb = read_one(gz, ndims, data_bytes, &b, eb, sizeof eb, &rb);
    if (rca != rcb || (rca && strcmp(ra, rb) != 0)) {
      fprintf(stderr, "plain: %s\ngzip: %s\n", rca ? ea : "ok", rcb ? eb : "ok");
      fuzz_fail("the plain and the gzip'ed file read differently", NULL);
    }
    if (rca == 0) {
      if (memcmp(a.dims, b.dims, sizeof a.dims) != 0 ||
          memcmp(a.data, data + header, (size_t)data_bytes) != 0 ||
          memcmp(b.data, a.data, (size_t)data_bytes) != 0)
        fuzz_fail("a successful read does not hold the file's data", NULL);
      idx_free(&a);
      idx_free(&b);
    }
  }
  return 0;
}
