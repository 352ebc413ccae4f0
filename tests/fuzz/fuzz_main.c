/* Replays fuzz inputs through the harnesses without libFuzzer, so that the
 * corpus and the regression inputs run as an ordinary test in every build
 * (gcc, clang, ASan, valgrind).
 *
 *   fuzz_replay DIR                  every target: DIR/corpus/<target>/ and
 *                                    DIR/regressions/<target>/ (tests/fuzz)
 *   fuzz_replay --target T PATH...   target T on files or directories
 *
 * Each harness is built into this program under the name smelt_fuzz_<T>
 * (its LLVMFuzzerTestOneInput renamed by tests/fuzz/meson.build). A broken
 * promise aborts in the harness; the input being run is printed first. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef int (*fuzz_entry)(const uint8_t *data, size_t size);

int smelt_fuzz_text(const uint8_t *data, size_t size);
int smelt_fuzz_npy(const uint8_t *data, size_t size);
int smelt_fuzz_safetensors(const uint8_t *data, size_t size);
int smelt_fuzz_api(const uint8_t *data, size_t size);
#ifdef FUZZ_IDX
int smelt_fuzz_idx(const uint8_t *data, size_t size); /* built where zlib is */
#endif

static const struct {
  const char *name;
  fuzz_entry run;
} targets[] = {
    {"text", smelt_fuzz_text},
    {"npy", smelt_fuzz_npy},
    {"safetensors", smelt_fuzz_safetensors},
    {"api", smelt_fuzz_api},
#ifdef FUZZ_IDX
    {"idx", smelt_fuzz_idx},
#endif
};
#define NTARGETS (sizeof targets / sizeof targets[0])

/* Runs one file; the buffer is exactly its size, so that a read past the
 * end is caught by ASan and valgrind. Returns 0, or -1 when unreadable. */
static int run_file(fuzz_entry run, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  for (;;) {
    if (!buf) {
      fprintf(stderr, "fuzz_replay: out of memory\n");
      exit(1);
    }
    len += fread(buf + len, 1, cap - len, f);
    if (len < cap) break;
    cap *= 2;
    buf = realloc(buf, cap);
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    fprintf(stderr, "fuzz_replay: %s: read error\n", path);
    free(buf);
    return -1;
  }
  uint8_t *exact = malloc(len ? len : 1);
  if (!exact) exit(1);
  memcpy(exact, buf, len);
  free(buf);
  fprintf(stderr, "%s\n", path); /* the input being run, should it crash */
  run(exact, len);
  free(exact);
  return 0;
}

/* Runs a file, or every file of a directory (sorted, for a stable order).
 * Adds the number run to *count. A missing directory is an error only when
 * required. */
static int run_path(fuzz_entry run, const char *path, bool required, long *count) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (!required && errno == ENOENT) return 0;
    fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    if (run_file(run, path)) return -1;
    (*count)++;
    return 0;
  }
  struct dirent **ents;
  int n = scandir(path, &ents, NULL, alphasort);
  if (n < 0) {
    fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  int rc = 0;
  for (int i = 0; i < n; i++) {
    const char *name = ents[i]->d_name;
    if (name[0] != '.' && rc == 0) {
      size_t len = strlen(path) + strlen(name) + 2;
      char *full = malloc(len);
      if (!full) exit(1);
      snprintf(full, len, "%s/%s", path, name);
      if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
        if (run_file(run, full))
          rc = -1;
        else
          (*count)++;
      }
      free(full);
    }
    free(ents[i]);
  }
  free(ents);
  return rc;
}

static void usage(void) {
  fprintf(stderr, "usage: fuzz_replay DIR\n"
                  "       fuzz_replay --target TARGET PATH...\n"
                  "targets:");
  for (size_t i = 0; i < NTARGETS; i++) fprintf(stderr, " %s", targets[i].name);
  fprintf(stderr, "\n");
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "--target") == 0) {
    for (size_t t = 0; t < NTARGETS; t++) {
      if (strcmp(argv[2], targets[t].name) != 0) continue;
      long count = 0;
      for (int i = 3; i < argc; i++)
        if (run_path(targets[t].run, argv[i], true, &count)) return 1;
      printf("%s: %ld inputs replayed\n", targets[t].name, count);
      return 0;
    }
    fprintf(stderr, "fuzz_replay: unknown target '%s'\n", argv[2]);
    usage();
    return 2;
  }
  if (argc != 2 || argv[1][0] == '-') {
    usage();
    return 2;
  }
  for (size_t t = 0; t < NTARGETS; t++) {
    const char *kinds[2] = {"corpus", "regressions"};
    long counts[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
      size_t len = strlen(argv[1]) + strlen(kinds[k]) + strlen(targets[t].name) + 3;
      char *dir = malloc(len);
      if (!dir) return 1;
      snprintf(dir, len, "%s/%s/%s", argv[1], kinds[k], targets[t].name);
      int rc = run_path(targets[t].run, dir, k == 0, &counts[k]);
      free(dir);
      if (rc) return 1;
    }
    printf("%s: %ld corpus inputs and %ld regression inputs replayed\n", targets[t].name,
           counts[0], counts[1]);
  }
  return 0;
}
