/* libFuzzer harness: the safetensors reader (src/safetensors.c) and
 * smelt_params_load.
 *
 * The bytes are read as a safetensors image from memory and as a file; both
 * must agree, fail with a message naming the file, or give tensors that
 * re-encode (sm_st_encode) and read back the same. The file is then loaded
 * into the params of a small fixed graph: a failed load must leave every
 * param as it was, a successful one must hold the file's values. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(const char *err, const char *name) {
  if (!err[0]) fuzz_fail("the safetensors reader failed without a message", NULL);
  if (strncmp(err, name, strlen(name)) != 0)
    fuzz_fail("a safetensors error does not start with the file name", err);
}

static bool same_tensor(const sm_st_tensor *a, const sm_st_tensor *b) {
  return strcmp(a->name, b->name) == 0 && a->dtype == b->dtype && a->rank == b->rank &&
         a->nbytes == b->nbytes &&
         memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank) == 0 &&
         (a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0);
}

static bool same_file(const sm_st_file *a, const sm_st_file *b) {
  if (a->ntensors != b->ntensors || a->nmeta != b->nmeta) return false;
  for (size_t i = 0; i < a->ntensors; i++)
    if (!same_tensor(&a->tensors[i], &b->tensors[i])) return false;
  for (size_t i = 0; i < a->nmeta; i++)
    if (strcmp(a->meta[i].key, b->meta[i].key) || strcmp(a->meta[i].value, b->meta[i].value))
      return false;
  return true;
}

/* The params the files are loaded into: one of each dtype, ranks 0 to 3
 * (the corpus holds files that fit them). */
static const struct {
  const char *name;
  smelt_dtype dt;
  int rank;
  int64_t dims[3];
} params[] = {
    {"w", SMELT_F32, 2, {2, 3}},   {"b", SMELT_F64, 1, {3}},      {"step", SMELT_I64, 0, {0}},
    {"n", SMELT_I32, 3, {1, 2, 1}}, {"mask", SMELT_BOOL, 1, {2}},
};
#define NPARAMS (sizeof params / sizeof params[0])

static void check_params_load(const char *path, const sm_st_file *file, bool readable) {
  smelt_graph *g = smelt_graph_new();
  if (!g) abort();
  for (size_t i = 0; i < NPARAMS; i++)
    smelt_param(g, params[i].name, params[i].dt, params[i].rank, params[i].dims,
                params[i].dt == SMELT_F32 || params[i].dt == SMELT_F64
                    ? smelt_init_uniform(-1, 1, 7 + i)
                    : smelt_init_ones());
  if (smelt_graph_error(g)) fuzz_fail("building the params' graph failed", smelt_graph_error(g));
  smelt_params *p = smelt_params_new(g);
  if (!p || smelt_params_error(p)) fuzz_fail("smelt_params_new failed", NULL);
  unsigned char before[NPARAMS][64], after[64];
  size_t nbytes[NPARAMS];
  for (size_t i = 0; i < NPARAMS; i++) {
    nbytes[i] = (size_t)sm_numel(params[i].rank, params[i].dims) * smelt_dtype_size(params[i].dt);
    if (smelt_params_read(p, params[i].name, params[i].dt, before[i], nbytes[i]))
      fuzz_fail("smelt_params_read failed", smelt_params_error(p));
  }
  int rc = smelt_params_load(p, path);
  const char *err = smelt_params_error(p);
  if (rc && (!err || !*err)) fuzz_fail("smelt_params_load failed without a message", NULL);
  if (rc && readable) {
    /* the file is fine: the params must not fit it (extra or missing or
     * differently typed tensors) */
    if (!strstr(err, "load:")) fuzz_fail("a load error does not say load", err);
  }
  if (!rc && !readable) fuzz_fail("smelt_params_load accepted an unreadable file", NULL);
  for (size_t i = 0; i < NPARAMS; i++) {
    if (smelt_params_read(p, params[i].name, params[i].dt, after, nbytes[i]))
      fuzz_fail("smelt_params_read failed", smelt_params_error(p));
    if (rc && memcmp(before[i], after, nbytes[i]))
      fuzz_fail("a failed smelt_params_load changed a param", params[i].name);
    if (!rc) {
      const sm_st_tensor *t = sm_st_find(file, params[i].name);
      if (!t || t->nbytes != nbytes[i] || memcmp(t->data, after, nbytes[i]))
        fuzz_fail("smelt_params_load did not load the file's values", params[i].name);
    }
  }
  smelt_params_free(p);
  smelt_graph_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512] = "", ferr[512] = "";
  sm_st_file mem, file;
  int rc = sm_st_read_mem(data, size, "fuzz.safetensors", &mem, err, sizeof err);
  if (rc) check_error(err, "fuzz.safetensors");

  const char *path = fuzz_scratch_write(data, size, ".safetensors");
  int frc = sm_st_read_file(path, &file, ferr, sizeof ferr);
  if (frc) check_error(ferr, path);
  if ((rc == 0) != (frc == 0)) {
    fprintf(stderr, "memory: %s\nfile: %s\n", rc ? err : "ok", frc ? ferr : "ok");
    fuzz_fail("the memory and file readers disagree", NULL);
  }
  if (rc == 0 && !same_file(&mem, &file))
    fuzz_fail("the memory and file readers read different tensors", NULL);

  if (rc == 0) {
    void *img = NULL;
    size_t len = 0;
    if (sm_st_encode(mem.tensors, mem.ntensors, mem.meta, mem.nmeta, &img, &len, err,
                     sizeof err))
      fuzz_fail("tensors that were read do not encode", err);
    sm_st_file back;
    if (sm_st_read_mem(img, len, "encoded", &back, err, sizeof err))
      fuzz_fail("encoded tensors do not read back", err);
    if (!same_file(&mem, &back)) fuzz_fail("the re-encoded tensors differ", NULL);
    sm_st_free(&back);
    sm_free(img);
  }
  check_params_load(path, &mem, rc == 0);
  sm_st_free(&mem);
  sm_st_free(&file);
  return 0;
}
