/* A small driver of src/safetensors.c for tests/crosscheck/safetensors_interop.py.
 *
 *   st_tool dump FILE        reads FILE with smelt and prints one JSON
 *                            object: {"metadata": {...}, "tensors": [{"name",
 *                            "dtype" (F32...), "shape", "hex" (the data as
 *                            little-endian bytes)}, ...]} in smelt's order
 *   st_tool copy IN OUT      reads IN and writes its tensors and metadata
 *                            to OUT with smelt's writer
 *   st_tool write OUT [-m KEY VALUE]... [NAME FILE.npy]...
 *                            writes the .npy arrays (read with smelt's npy
 *                            reader) as tensors NAME, with metadata pairs
 *
 * Errors go to stderr with exit status 1 (2 for a usage error).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "safetensors.h"

static void put_json_string(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') printf("\\%c", *p);
    else if (*p < 0x20) printf("\\u%04x", *p);
    else putchar(*p);
  }
  putchar('"');
}

static bool host_is_little(void) {
  const unsigned short one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

static int dump(const char *path) {
  sm_st_file f;
  char err[1024];
  if (sm_st_read_file(path, &f, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  printf("{\"metadata\": {");
  for (size_t i = 0; i < f.nmeta; i++) {
    printf(i ? ", " : "");
    put_json_string(f.meta[i].key);
    printf(": ");
    put_json_string(f.meta[i].value);
  }
  printf("}, \"tensors\": [");
  for (size_t i = 0; i < f.ntensors; i++) {
    const sm_st_tensor *t = &f.tensors[i];
    printf(i ? ",\n  {\"name\": " : "\n  {\"name\": ");
    put_json_string(t->name);
    printf(", \"dtype\": \"%s\", \"shape\": [", sm_st_dtype_name(t->dtype));
    for (int d = 0; d < t->rank; d++) printf(d ? ", %lld" : "%lld", (long long)t->dims[d]);
    printf("], \"hex\": \"");
    size_t item = smelt_dtype_size(t->dtype);
    const unsigned char *b = t->data;
    for (size_t k = 0; k < t->nbytes; k++) {
      size_t e = k / item * item, j = k % item;
      printf("%02x", b[host_is_little() ? k : e + item - 1 - j]);
    }
    printf("\"}");
  }
  printf("]}\n");
  if (sm_st_find(&f, f.ntensors ? f.tensors[0].name : "") != (f.ntensors ? &f.tensors[0] : NULL)) {
    fprintf(stderr, "st_tool: sm_st_find does not find the first tensor\n");
    sm_st_free(&f);
    return 1;
  }
  sm_st_free(&f);
  return ferror(stdout) ? 1 : 0;
}

static int copy(const char *in, const char *out) {
  sm_st_file f;
  char err[1024];
  if (sm_st_read_file(in, &f, err, sizeof err) ||
      sm_st_write_file(out, f.tensors, f.ntensors, f.meta, f.nmeta, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    sm_st_free(&f);
    return 1;
  }
  sm_st_free(&f);
  return 0;
}

static int write_npys(int argc, char **argv) {
  const char *out = argv[0];
  int n = 0, nm = 0;
  sm_st_tensor *t = calloc((size_t)argc, sizeof *t);
  sm_npy *arrays = calloc((size_t)argc, sizeof *arrays);
  sm_st_meta *meta = calloc((size_t)argc, sizeof *meta);
  char err[1024];
  int rc = 1;
  if (!t || !arrays || !meta) {
    fprintf(stderr, "st_tool: out of memory\n");
    goto done;
  }
  for (int i = 1; i < argc; i += 2) {
    if (strcmp(argv[i], "-m") == 0) {
      if (i + 2 >= argc) {
        fprintf(stderr, "st_tool: -m needs KEY VALUE\n");
        rc = 2;
        goto done;
      }
      meta[nm].key = argv[i + 1];
      meta[nm].value = argv[i + 2];
      nm++;
      i++;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "st_tool: tensor %s has no .npy file\n", argv[i]);
      rc = 2;
      goto done;
    }
    if (sm_npy_read_file(argv[i + 1], &arrays[n], err, sizeof err)) {
      fprintf(stderr, "%s\n", err);
      goto done;
    }
    t[n].name = argv[i];
    t[n].dtype = arrays[n].dtype;
    t[n].rank = arrays[n].rank;
    memcpy(t[n].dims, arrays[n].dims, sizeof t[n].dims);
    t[n].data = arrays[n].data;
    t[n].nbytes = arrays[n].nbytes;
    n++;
  }
  if (sm_st_write_file(out, t, (size_t)n, meta, (size_t)nm, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    goto done;
  }
  rc = 0;
done:
  for (int i = 0; i < n; i++) sm_npy_free(&arrays[i]);
  free(arrays);
  free(t);
  free(meta);
  return rc;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "dump") == 0) return dump(argv[2]);
  if (argc == 4 && strcmp(argv[1], "copy") == 0) return copy(argv[2], argv[3]);
  if (argc >= 3 && strcmp(argv[1], "write") == 0) return write_npys(argc - 2, argv + 2);
  fprintf(stderr,
          "usage: st_tool dump FILE | st_tool copy IN OUT |\n"
          "       st_tool write OUT [-m KEY VALUE]... [NAME FILE.npy]...\n");
  return 2;
}
