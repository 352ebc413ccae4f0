/* libFuzzer harness: the .npy reader (src/npy.c).
 *
 * The bytes are read as a .npy image from memory (sm_npy_read_mem) and as a
 * file (sm_npy_read_file, through a scratch file): both must agree, fail
 * with a message that names the file, or give an array that re-encodes
 * (sm_npy_encode) and reads back to the same dtype, shape and bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(const char *err, const char *name) {
  if (!err[0]) fuzz_fail("the .npy reader failed without a message", NULL);
  if (strncmp(err, name, strlen(name)) != 0)
    fuzz_fail("a .npy error does not start with the file name", err);
}

static bool same_array(const sm_npy *a, const sm_npy *b) {
  return a->dtype == b->dtype && a->rank == b->rank && a->numel == b->numel &&
         a->nbytes == b->nbytes &&
         memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank) == 0 &&
         (a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512] = "", ferr[512] = "";
  sm_npy mem, file;
  int rc = sm_npy_read_mem(data, size, "fuzz.npy", &mem, err, sizeof err);
  if (rc) check_error(err, "fuzz.npy");

  const char *path = fuzz_scratch_write(data, size, ".npy");
  int frc = sm_npy_read_file(path, &file, ferr, sizeof ferr);
  if (frc) check_error(ferr, path);
  if ((rc == 0) != (frc == 0)) {
    fprintf(stderr, "memory: %s\nfile: %s\n", rc ? err : "ok", frc ? ferr : "ok");
    fuzz_fail("the memory and file readers disagree", NULL);
  }
  if (rc == 0 && !same_array(&mem, &file))
    fuzz_fail("the memory and file readers read different arrays", NULL);

  if (rc == 0) {
    if (!mem.data) fuzz_fail("a successful read gave NULL data", NULL);
    void *img = NULL;
    size_t len = 0;
    if (sm_npy_encode(mem.dtype, mem.rank, mem.dims, mem.data, &img, &len, err, sizeof err))
      fuzz_fail("an array that was read does not encode", err);
    sm_npy back;
    if (sm_npy_read_mem(img, len, "encoded", &back, err, sizeof err))
      fuzz_fail("an encoded array does not read back", err);
    if (!same_array(&mem, &back)) fuzz_fail("the re-encoded array differs", NULL);
    sm_npy_free(&back);
    sm_free(img);
  }
  sm_npy_free(&mem);
  sm_npy_free(&file);
  return 0;
}
