/* Helpers shared by the fuzz harnesses (tests/fuzz/fuzz_*.c): a size check
 * that keeps interpreter runs to milliseconds, running a graph's outputs on
 * the interpreter with deterministic inputs, and a per-process scratch file
 * for the readers that take a path.
 *
 * A harness reports a broken promise of the library (a failure without a
 * message, a print/parse round trip that changes the text) with
 * fuzz_fail(), which aborts: libFuzzer and the replay test both see that as
 * a crash and keep the input. */
#ifndef SMELT_FUZZ_COMMON_H
#define SMELT_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Interpreter runs are skipped for graphs above these: a node of more
 * elements, or more element operations over all nodes (a matmul counts
 * its output times K). Enough for every op to show its behaviour. */
#define FUZZ_MAX_NODE_ELEMS 4096
#define FUZZ_MAX_TOTAL_WORK ((int64_t)1 << 17)

static inline void fuzz_fail(const char *what, const char *detail) {
  fprintf(stderr, "fuzz: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  abort();
}

/* numel of a node's shape, or -1 above limit (no overflow on hostile dims). */
static inline int64_t fuzz_numel_capped(int rank, const int64_t *dims, int64_t limit) {
  for (int i = 0; i < rank; i++)
    if (dims[i] == 0) return 0;
  int64_t n = 1;
  for (int i = 0; i < rank; i++) {
    if (dims[i] < 0 || dims[i] > limit) return -1;
    n *= dims[i];
    if (n > limit) return -1;
  }
  return n;
}

/* True when every node is small and the whole graph cheap to interpret. */
static inline bool fuzz_graph_is_small(const smelt_graph *g) {
  int64_t work = 0;
  for (size_t i = 0; i < g->nnodes; i++) {
    const sm_node *n = &g->nodes[i];
    int64_t numel = fuzz_numel_capped(n->rank, n->shape, FUZZ_MAX_NODE_ELEMS);
    if (numel < 0) return false;
    int64_t cost = numel > 0 ? numel : 1;
    if (n->op == OP_MATMUL && n->ninputs == 2) {
      const sm_node *a = &g->nodes[n->inputs[0]];
      int64_t k = a->rank ? a->shape[a->rank - 1] : 1;
      /* an empty product can still have a huge k: compare before multiplying */
      if (k > 0 && k > FUZZ_MAX_TOTAL_WORK / cost) return false;
      cost *= k > 0 ? k : 1;
    }
    work += cost;
    if (work > FUZZ_MAX_TOTAL_WORK) return false;
  }
  return true;
}

/* Fills a buffer of dtype dt with small values derived from seed: integers
 * in [-2, 5] (so index inputs are sometimes out of range), floats with a
 * few specials. */
static inline void fuzz_fill(smelt_dtype dt, void *data, int64_t numel, uint32_t seed) {
  static const double floats[] = {0.5, -1.25, 2.0, 0.0, 3.0, -0.0, 1e-3, -7.5};
  uint32_t s = seed * 2654435761u + 1;
  for (int64_t i = 0; i < numel; i++) {
    s = s * 1103515245u + 12345u;
    uint32_t r = s >> 16;
    switch (dt) {
    case SMELT_F32: ((float *)data)[i] = (float)floats[r % 8]; break;
    case SMELT_F64: ((double *)data)[i] = floats[r % 8]; break;
    case SMELT_I32: ((int32_t *)data)[i] = (int32_t)(r % 8) - 2; break;
    case SMELT_I64: ((int64_t *)data)[i] = (int64_t)(r % 8) - 2; break;
    case SMELT_BOOL: ((uint8_t *)data)[i] = (uint8_t)(r & 1); break;
    default: break;
    }
  }
}

/* Runs every output of g on the interpreter with inputs from fuzz_fill and
 * reads them back. g must have no error and be small. Errors (an index out
 * of range) are fine but must come with a message. */
static inline void fuzz_interp_run(const smelt_graph *g, uint32_t seed) {
  smelt_interp *it = smelt_interp_new(g);
  if (!it) fuzz_fail("smelt_interp_new returned NULL", NULL);
  if (smelt_interp_error(it)) {
    smelt_interp_free(it);
    return;
  }
  void **bufs = calloc(g->nnodes ? g->nnodes : 1, sizeof *bufs);
  if (!bufs) abort();
  for (size_t i = 0; i < g->nnodes; i++) {
    const sm_node *n = &g->nodes[i];
    if (n->op != OP_INPUT) continue;
    int64_t numel = fuzz_numel_capped(n->rank, n->shape, FUZZ_MAX_NODE_ELEMS);
    size_t nbytes = (size_t)numel * smelt_dtype_size((smelt_dtype)n->dtype);
    bufs[i] = malloc(nbytes ? nbytes : 1);
    if (!bufs[i]) abort();
    fuzz_fill((smelt_dtype)n->dtype, bufs[i], numel, seed + (uint32_t)i);
    if (smelt_interp_bind(it, n->name, (smelt_dtype)n->dtype, n->rank, n->shape, bufs[i],
                          nbytes) != 0)
      fuzz_fail("binding an input of the declared type failed", smelt_interp_error(it));
  }
  if (smelt_interp_run(it) != 0) {
    const char *e = smelt_interp_error(it);
    if (!e || !*e) fuzz_fail("smelt_interp_run failed without a message", NULL);
  } else {
    for (size_t k = 0; k < g->noutputs; k++) {
      const sm_node *n = &g->nodes[g->outputs[k].node];
      int64_t numel = fuzz_numel_capped(n->rank, n->shape, FUZZ_MAX_NODE_ELEMS);
      size_t nbytes = (size_t)numel * smelt_dtype_size((smelt_dtype)n->dtype);
      void *out = malloc(nbytes ? nbytes : 1);
      if (!out) abort();
      if (smelt_interp_read(it, g->outputs[k].name, (smelt_dtype)n->dtype, out, nbytes) != 0)
        fuzz_fail("reading an output after a successful run failed", smelt_interp_error(it));
      free(out);
    }
  }
  for (size_t i = 0; i < g->nnodes; i++) free(bufs[i]);
  free(bufs);
  smelt_interp_free(it);
}

/* print(parse(print(g))) must equal print(g) (docs/text-format.md). */
static inline void fuzz_check_round_trip(const smelt_graph *g) {
  char *text = smelt_graph_print(g);
  if (!text) fuzz_fail("smelt_graph_print returned NULL", NULL);
  char err[512];
  smelt_graph *back = smelt_graph_parse(text, strlen(text), "printed", err, sizeof err);
  if (!back) {
    fprintf(stderr, "%s\n", text);
    fuzz_fail("the printed text of a graph does not parse", err);
  }
  char *again = smelt_graph_print(back);
  if (!again) fuzz_fail("smelt_graph_print returned NULL", NULL);
  if (strcmp(text, again) != 0) {
    fprintf(stderr, "--- printed\n%s--- parsed and printed again\n%s", text, again);
    fuzz_fail("print(parse(print(g))) differs from print(g)", NULL);
  }
  smelt_free(again);
  smelt_graph_free(back);
  char *dot = smelt_graph_print_dot(g);
  if (!dot) fuzz_fail("smelt_graph_print_dot returned NULL", NULL);
  smelt_free(dot);
  smelt_free(text);
}

/* A scratch file of this process (for the readers that take a path),
 * rewritten for every input; removed at exit. */
static char fuzz_scratch_path[256];
static void fuzz_scratch_remove(void) {
  if (fuzz_scratch_path[0]) unlink(fuzz_scratch_path);
}
static inline const char *fuzz_scratch_write(const void *data, size_t size, const char *suffix) {
  if (!fuzz_scratch_path[0]) {
    /* memory-backed /dev/shm when there is one: a disk file per input
     * would spend most of the fuzzer's time in the kernel */
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_scratch_path, sizeof fuzz_scratch_path, "%s/smelt-fuzz-%ld%s", dir,
             (long)getpid(), suffix);
    atexit(fuzz_scratch_remove);
  }
  FILE *f = fopen(fuzz_scratch_path, "wb");
  if (!f) fuzz_fail("cannot create the scratch file", fuzz_scratch_path);
  if (size && fwrite(data, 1, size, f) != size) fuzz_fail("cannot write the scratch file", NULL);
  if (fclose(f) != 0) fuzz_fail("cannot write the scratch file", NULL);
  return fuzz_scratch_path;
}

#endif
