/* The cuda suite: graphs generated as CUDA C (codegen/cuda.c) and compiled
 * by NVRTC for sm_80 and sm_90 through sm_cuda_build (runtime/cuda_build.c),
 * with no GPU and no driver:
 *  - every graph file under $SMELT_TEST_GRAPHS (tests/graphs) and its
 *    sibling graphs_cli/: the outputs, and each declared program (outputs
 *    then the updates' assign nodes, as src/program.c plans them);
 *  - graphs built here with the C API that reach every strategy of
 *    sm_cuda_kernel (pointwise, thread-reduce, block-reduce,
 *    two-stage-reduce, tiled-matmul, scatter; serial from a hand-built
 *    kernel, as no graph lowers to one), every dtype and
 *    every elementwise op, casts, random numbers, index checks, 64-bit
 *    indexing (compiled, never run) and a training step;
 *  - the errors and the cuda and ptx dump stages.
 * Any source NVRTC rejects fails the suite, with the graph and NVRTC's
 * log. In a libsmelt built without NVRTC the compiling tests print
 * "NVRTC not available: skipping" and check what needs no NVRTC (the
 * printed CUDA C, SM_CUDA_PRINT_ONLY). SMELT_TEST_VERBOSE=1 prints each
 * kernel's strategy. */
#include <check.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../codegen/scalar_ops.h"
#include "../runtime/cuda_build.h"
#include "dump.h"
#include "internal.h"
#include "testutil.h"

/* The architectures every graph is compiled for. */
static const int ARCHS[] = {80, 90};
enum { NARCHS = (int)(sizeof ARCHS / sizeof ARCHS[0]) };

/* ------------------------------------------------------------ helpers */

/* True when NVRTC is there; otherwise says so (once per test). */
static bool have_nvrtc(void) {
  if (sm_nvrtc_available()) return true;
  printf("NVRTC not available: skipping the NVRTC part of this test\n");
  fflush(stdout);
  return false;
}

static bool verbose(void) {
  const char *v = getenv("SMELT_TEST_VERBOSE");
  return v && *v && strcmp(v, "0") != 0;
}

static smelt_compile_options cuda_options(void) {
  smelt_compile_options o = smelt_compile_defaults();
  o.target = SMELT_TARGET_CUDA;
  o.cache_dir = NULL; /* every compile is NVRTC's, never the disk cache's */
  o.dump = NULL;
  o.dump_dir = NULL;
  o.cuda_arch = NULL;
  return o;
}

/* A growing message (failures collected over many graphs). */
typedef struct msgbuf {
  char *s;
  size_t len, cap;
  int count;
} msgbuf;

__attribute__((format(printf, 2, 3))) static void msg_add(msgbuf *m, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (m->len + (size_t)n + 1 > m->cap) {
    size_t cap = (m->cap ? m->cap * 2 : 4096) + (size_t)n;
    char *s = realloc(m->s, cap);
    ck_assert_ptr_nonnull(s);
    m->s = s;
    m->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(m->s + m->len, m->cap - m->len, fmt, ap);
  va_end(ap);
  m->len += (size_t)n;
}

/* Fails the test with every collected failure. */
static void msg_check(msgbuf *m) {
  if (m->count) {
    /* all of it on stdout; Check's message has a size limit */
    printf("%s", m->s);
    fflush(stdout);
    if (m->len > 3000) strcpy(m->s + 3000 - 40, "\n... (the rest is on stdout)\n");
    ck_abort_msg("%d failure(s):\n%s", m->count, m->s);
  }
  free(m->s);
  memset(m, 0, sizeof *m);
}

static bool has(const char *text, const char *piece) { return text && strstr(text, piece); }

/* The roots of a graph's outputs (malloc'ed; *n of them). */
static uint32_t *output_roots(const smelt_graph *g, size_t *n) {
  *n = smelt_graph_output_count(g);
  uint32_t *r = malloc(sizeof *r * (*n ? *n : 1));
  ck_assert_ptr_nonnull(r);
  for (size_t j = 0; j < *n; j++) r[j] = smelt_graph_output(g, j, NULL).index - 1;
  return r;
}

/* The roots of declared program i: its outputs, then its updates (as
 * src/program.c). NULL with a message when an output is unknown. */
static uint32_t *program_roots(const smelt_graph *g, size_t i, size_t *n, const char **name,
                               msgbuf *m) {
  smelt_program_decl d;
  ck_assert_int_eq(smelt_graph_program(g, i, &d), 0);
  *name = d.name;
  *n = (size_t)d.noutputs + (size_t)d.nupdates;
  uint32_t *r = malloc(sizeof *r * (*n ? *n : 1));
  ck_assert_ptr_nonnull(r);
  for (int k = 0; k < d.noutputs; k++) {
    size_t j = 0, nout = smelt_graph_output_count(g);
    const char *on = NULL;
    for (; j < nout; j++) {
      smelt_graph_output(g, j, &on);
      if (on && !strcmp(on, d.outputs[k])) break;
    }
    if (j == nout) {
      m->count++;
      msg_add(m, "program \"%s\": unknown output \"%s\"\n", d.name, d.outputs[k]);
      free(r);
      return NULL;
    }
    r[k] = smelt_graph_output(g, j, NULL).index - 1;
  }
  for (int k = 0; k < d.nupdates; k++) r[d.noutputs + k] = d.updates[k].index - 1;
  return r;
}

/* Looks like a cubin: a 64-bit ELF for EM_CUDA. */
static bool is_cubin(const unsigned char *p, size_t len) {
  return p && len > 64 && !memcmp(p, "\x7f" "ELF", 4) && p[4] == 2 && (p[18] | p[19] << 8) == 190;
}

/* What a build is expected to show. */
typedef struct expect {
  const char *strategies[8]; /* each must be the strategy of some kernel */
  const char *text[4];       /* each must occur in the CUDA C */
  size_t min_kernels;
} expect;

/* Builds the roots of g for every arch: cubins (or print only without
 * NVRTC), PTX too when `ptx`. Failures go to m, with the graph's text and
 * NVRTC's log. `what` names the graph in messages. The kernels' strategy
 * names are checked against e (may be NULL) on the first arch. */
static void build_all(const smelt_graph *g, size_t nroots, const uint32_t *roots, const char *what,
                      bool ptx, const expect *e, msgbuf *m) {
  smelt_compile_options o = cuda_options();
  bool nv = sm_nvrtc_available();
  for (int a = 0; a < NARCHS; a++) {
    int cc = ARCHS[a];
    for (int pass = 0; pass < (ptx && nv ? 2 : 1); pass++) {
      int out = !nv ? SM_CUDA_PRINT_ONLY : pass ? SM_NVRTC_PTX : SM_NVRTC_CUBIN;
      const char *kind = !nv ? "print" : pass ? "ptx" : "cubin";
      sm_cuda_image img;
      char *err = NULL;
      if (sm_cuda_build(g, nroots, roots, &o, cc, out, NULL, &img, &err)) {
        char *text = smelt_graph_print(g);
        m->count++;
        msg_add(m, "==== %s: sm_cuda_build for sm_%d (%s) failed:\n%s\n---- the graph:\n%s\n", what,
                cc, kind, err ? err : "(out of memory)", text ? text : "(no text)\n");
        smelt_free(text);
        sm_free(err);
        continue;
      }
      const sm_plan *p = img.plan;
      bool ok = true;
      if (img.src.nkernels != p->nkernels || !img.src.text) {
        ok = false;
        msg_add(m, "==== %s: %zu kernels planned, %zu printed\n", what, p->nkernels,
                img.src.nkernels);
      }
      if (p->nkernels && !has(img.src.text, "extern \"C\" __global__")) {
        ok = false;
        msg_add(m, "==== %s: no extern \"C\" __global__ in the CUDA C\n", what);
      }
      if (nv && p->nkernels) {
        if (out == SM_NVRTC_CUBIN && !is_cubin(img.code, img.code_len)) {
          ok = false;
          msg_add(m, "==== %s: sm_%d: NVRTC's output (%zu bytes) is not a CUDA ELF\n", what, cc,
                  img.code_len);
        }
        if (out == SM_NVRTC_PTX) {
          char target[32];
          snprintf(target, sizeof target, ".target sm_%d", cc);
          if (!has(img.code, ".entry") || !has(img.code, target)) {
            ok = false;
            msg_add(m, "==== %s: sm_%d: the PTX lacks .entry or %s\n", what, cc, target);
          }
        }
        if (img.from_cache) {
          ok = false;
          msg_add(m, "==== %s: a build without cache_dir came from the cache\n", what);
        }
      }
      if (a == 0 && pass == 0 && e) {
        if (p->nkernels < e->min_kernels) {
          ok = false;
          msg_add(m, "==== %s: %zu kernels, expected at least %zu\n", what, p->nkernels,
                  e->min_kernels);
        }
        for (int s = 0; s < 8 && e->strategies[s]; s++) {
          bool found = false;
          for (size_t k = 0; k < img.src.nkernels; k++)
            found |= img.src.kernels[k].strategy &&
                     !strcmp(img.src.kernels[k].strategy, e->strategies[s]);
          if (!found) {
            ok = false;
            msg_add(m, "==== %s: no kernel has the strategy \"%s\"; the kernels:", what,
                    e->strategies[s]);
            for (size_t k = 0; k < img.src.nkernels; k++)
              msg_add(m, " %s (%s)", img.src.kernels[k].name, img.src.kernels[k].strategy);
            msg_add(m, "\n");
          }
        }
        for (int t = 0; t < 4 && e->text[t]; t++)
          if (!has(img.src.text, e->text[t])) {
            ok = false;
            msg_add(m, "==== %s: the CUDA C lacks \"%s\"\n", what, e->text[t]);
          }
      }
      if (verbose() && a == 0 && pass == 0) {
        printf("%s: %zu kernels:", what, img.src.nkernels);
        for (size_t k = 0; k < img.src.nkernels; k++)
          printf(" %s (%s)", img.src.kernels[k].name, img.src.kernels[k].strategy);
        printf("\n");
      }
      if (!ok) {
        m->count++;
        char *text = smelt_graph_print(g);
        msg_add(m, "---- the graph:\n%s---- the CUDA C:\n%s\n", text ? text : "(no text)\n",
                img.src.text ? img.src.text : "(none)\n");
        smelt_free(text);
      }
      sm_cuda_image_free(&img);
    }
  }
}

/* Builds the outputs of g, then each declared program. */
static void build_graph(const smelt_graph *g, const char *what, bool ptx, const expect *e,
                        msgbuf *m) {
  size_t n;
  uint32_t *roots = output_roots(g, &n);
  if (n) build_all(g, n, roots, what, ptx, e, m);
  free(roots);
  for (size_t i = 0; i < smelt_graph_program_count(g); i++) {
    const char *name;
    uint32_t *r = program_roots(g, i, &n, &name, m);
    if (!r) continue;
    char label[512];
    snprintf(label, sizeof label, "%s, program \"%s\"", what, name);
    build_all(g, n, r, label, false, NULL, m);
    free(r);
  }
}

/* ------------------------------------------------ (a) the graph files */

/* The graphs directory: $SMELT_TEST_GRAPHS, else tests/graphs next to
 * this file (as test_text.c). */
static bool graphs_dir(char *buf, size_t n) {
  const char *env = getenv("SMELT_TEST_GRAPHS");
  if (env && *env) {
    snprintf(buf, n, "%s", env);
    return true;
  }
  char here[1024];
  snprintf(here, sizeof here, "%s", __FILE__);
  char *slash = strrchr(here, '/');
  if (slash) slash[1] = 0;
  else here[0] = 0;
  const char *cands[3] = {here, "tests/", "../tests/"};
  for (int i = 0; i < 3; i++) {
    snprintf(buf, n, "%sgraphs", cands[i]);
    DIR *d = opendir(buf);
    if (d) {
      closedir(d);
      return true;
    }
  }
  return false;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  ck_assert_ptr_nonnull(b);
  size_t got = fread(b, 1, (size_t)n, f);
  fclose(f);
  b[got] = 0;
  *len = got;
  return b;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Builds every .smelt file of dir. must_parse: a file that does not parse
 * is a failure (graphs_cli holds deliberately broken ones: skipped).
 * Returns the number of graphs built. */
static int build_dir(const char *dir, bool must_parse, msgbuf *m) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  char *names[256];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 256) {
    size_t l = strlen(e->d_name);
    if (l > 6 && !strcmp(e->d_name + l - 6, ".smelt")) names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof *names, cmp_str);
  int built = 0;
  for (int i = 0; i < n; i++) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    size_t len;
    char *text = slurp(path, &len);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    char perr[512] = "";
    smelt_graph *g = smelt_graph_parse(text, len, path, perr, sizeof perr);
    free(text);
    if (!g || smelt_graph_error(g)) {
      if (must_parse) {
        m->count++;
        msg_add(m, "==== %s does not parse: %s\n", path,
                g ? smelt_graph_error(g) : perr);
      } else if (verbose()) {
        printf("%s: not a valid graph (skipped): %s\n", path, g ? smelt_graph_error(g) : perr);
      }
      smelt_graph_free(g);
      free(names[i]);
      continue;
    }
    if (smelt_graph_output_count(g) || smelt_graph_program_count(g)) {
      build_graph(g, path, must_parse, NULL, m);
      built++;
    }
    smelt_graph_free(g);
    free(names[i]);
  }
  return built;
}

START_TEST(graph_files) {
  if (!have_nvrtc()) printf("(printing the CUDA C only)\n");
  char dir[1024];
  ck_assert_msg(graphs_dir(dir, sizeof dir), "tests/graphs not found: set SMELT_TEST_GRAPHS");
  msgbuf m = {0};
  int built = build_dir(dir, true, &m);
  ck_assert_msg(built >= 5, "only %d graphs under %s", built, dir);
  /* graphs_cli beside graphs: the command-line tool's test graphs */
  char cli[1100];
  snprintf(cli, sizeof cli, "%s/../graphs_cli", dir);
  int built_cli = build_dir(cli, false, &m);
  if (verbose()) printf("built %d graphs of %s, %d of %s\n", built, dir, built_cli, cli);
  msg_check(&m);
}
END_TEST

/* ---------------------------------------- (b) graphs built in code */

static smelt_node in(smelt_graph *g, const char *name, smelt_dtype dt, int rank,
                     const int64_t *dims) {
  return smelt_input(g, name, dt, rank, dims);
}

static void out(smelt_graph *g, const char *name, smelt_node n) { smelt_output(g, name, n); }

static int nout_(smelt_graph *g) { return (int)smelt_graph_output_count(g); }
/* An output with a fresh name. */
static void out_(smelt_graph *g, smelt_node n) {
  char name[32];
  snprintf(name, sizeof name, "o%d", nout_(g));
  out(g, name, n);
}

typedef struct ccase {
  const char *name;
  void (*build)(smelt_graph *g);
  expect e;
} ccase;

static void b_pointwise(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F32, 2, TU_DIMS(300, 7));
  smelt_node y = in(g, "y", SMELT_F32, 1, TU_DIMS(7));
  out(g, "z", smelt_tanh(g, smelt_add(g, smelt_mul(g, x, y), smelt_scalar(g, 1.5))));
}

static void b_thread_reduce(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F32, 2, TU_DIMS(100, 16));
  out(g, "s", smelt_sum(g, x, 1, (const int[]){1}, false));
}

static void b_thread_reduce_many(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F64, 2, TU_DIMS(40000, 100));
  out(g, "m", smelt_max(g, x, 1, (const int[]){1}, false));
}

static void b_block_reduce(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F32, 2, TU_DIMS(100, 1000));
  out(g, "s", smelt_sum(g, smelt_exp(g, x), 1, (const int[]){1}, true));
}

static void b_block_reduce_short(smelt_graph *g) {
  /* fewer reduced points than a block: 128 threads */
  smelt_node x = in(g, "x", SMELT_I32, 2, TU_DIMS(100, 200));
  out(g, "m", smelt_min(g, x, 1, (const int[]){1}, false));
}

static void b_two_stage(smelt_graph *g) {
  /* a max: float sums this long are split into blocks (split_sums) */
  smelt_node x = in(g, "x", SMELT_F32, 2, TU_DIMS(4, 100000));
  out(g, "s", smelt_max(g, x, 1, (const int[]){1}, false));
}

static void b_two_stage_full(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F64, 1, TU_DIMS(1 << 20));
  out(g, "mean", smelt_mean(g, x, 0, NULL, false));
  smelt_node b = in(g, "b", SMELT_BOOL, 1, TU_DIMS(1 << 18));
  out(g, "count", smelt_sum(g, b, 0, NULL, false)); /* bool summed as i64 */
}

static void b_arg_reduce(smelt_graph *g) {
  smelt_node a = in(g, "a", SMELT_F32, 2, TU_DIMS(50, 8));
  smelt_node b = in(g, "b", SMELT_F64, 2, TU_DIMS(100, 1000));
  smelt_node c = in(g, "c", SMELT_I32, 2, TU_DIMS(4, 100000));
  smelt_node d = in(g, "d", SMELT_I64, 3, TU_DIMS(3, 5, 7));
  out(g, "a_max", smelt_argmax(g, a, 1, false));
  out(g, "a_min", smelt_argmin(g, a, 0, true));
  out(g, "b_max", smelt_argmax(g, b, 1, false));
  out(g, "c_min", smelt_argmin(g, c, 1, false));
  out(g, "d_max", smelt_argmax(g, d, 1, false));
  smelt_node idx;
  out(g, "max_dim", smelt_max_dim(g, b, -1, false, NULL, &idx));
  out(g, "max_dim_i", idx);
  out(g, "min_dim", smelt_min_dim(g, d, 2, true, NULL, &idx));
  out(g, "min_dim_i", idx);
}

static void b_reductions(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F32, 3, TU_DIMS(6, 50, 9));
  smelt_node i = in(g, "i", SMELT_I32, 2, TU_DIMS(20, 30));
  smelt_node l = in(g, "l", SMELT_I64, 1, TU_DIMS(77));
  smelt_node bo = in(g, "bo", SMELT_BOOL, 2, TU_DIMS(5, 6));
  out_(g, smelt_prod(g, x, 1, (const int[]){-1}, false));
  out_(g, smelt_var(g, x, 2, (const int[]){0, 2}, 1, false));
  out_(g, smelt_std(g, x, 1, (const int[]){1}, 0, true));
  out_(g, smelt_logsumexp(g, x, 1, (const int[]){1}, false));
  out_(g, smelt_softmax(g, x, -1));
  out_(g, smelt_log_softmax(g, x, 1));
  out_(g, smelt_sum(g, i, 0, NULL, false));
  out_(g, smelt_prod(g, i, 1, (const int[]){0}, false));
  out_(g, smelt_max(g, l, 0, NULL, false));
  out_(g, smelt_min(g, l, 0, NULL, true));
  out_(g, smelt_sum(g, bo, 1, (const int[]){1}, false));
  out_(g, smelt_prod(g, bo, 0, NULL, false));
  out_(g, smelt_max(g, bo, 1, (const int[]){0}, false));
  out_(g, smelt_mean(g, smelt_cast(g, i, SMELT_F64), 0, NULL, false));
}

static void b_matmul(smelt_graph *g) {
  smelt_node a = in(g, "a", SMELT_F32, 2, TU_DIMS(64, 32));
  smelt_node b = in(g, "b", SMELT_F32, 2, TU_DIMS(32, 48));
  out(g, "c", smelt_matmul(g, a, b));
}

static void b_matmul_f64_ragged(smelt_graph *g) {
  /* sizes that are not multiples of the 64x64x16 tile */
  smelt_node a = in(g, "a", SMELT_F64, 2, TU_DIMS(67, 33));
  smelt_node b = in(g, "b", SMELT_F64, 2, TU_DIMS(33, 129));
  out(g, "c", smelt_matmul(g, a, b));
}

static void b_matmul_batched(smelt_graph *g) {
  smelt_node a = in(g, "a", SMELT_F32, 3, TU_DIMS(3, 64, 32));
  smelt_node b = in(g, "b", SMELT_F32, 3, TU_DIMS(3, 32, 48));
  out(g, "c", smelt_matmul(g, a, b));
  /* batch dims broadcast against a matrix */
  smelt_node c = in(g, "x", SMELT_F32, 4, TU_DIMS(2, 3, 40, 24));
  smelt_node w = in(g, "w", SMELT_F32, 2, TU_DIMS(24, 72));
  out(g, "d", smelt_matmul(g, c, w));
}

static void b_matmul_transposed(smelt_graph *g) {
  smelt_node at = in(g, "at", SMELT_F32, 2, TU_DIMS(32, 64)); /* A^T stored */
  smelt_node b = in(g, "b", SMELT_F32, 2, TU_DIMS(32, 48));
  smelt_node bt = in(g, "bt", SMELT_F32, 2, TU_DIMS(48, 32)); /* B^T stored */
  smelt_node a = in(g, "a", SMELT_F32, 2, TU_DIMS(64, 32));
  out(g, "ta", smelt_matmul(g, smelt_transpose(g, at, 0, 1), b));
  out(g, "tb", smelt_matmul(g, a, smelt_transpose(g, bt, 0, 1)));
  out(g, "tab", smelt_matmul(g, smelt_transpose(g, at, 0, 1), smelt_transpose(g, bt, 0, 1)));
  smelt_node x = in(g, "x", SMELT_F64, 3, TU_DIMS(4, 20, 70));
  out(g, "xtx", smelt_matmul(g, smelt_transpose(g, x, 1, 2), x));
}

static void b_matmul_epilogue(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F32, 2, TU_DIMS(128, 96));
  smelt_node w = in(g, "w", SMELT_F32, 2, TU_DIMS(96, 80));
  smelt_node b = in(g, "b", SMELT_F32, 1, TU_DIMS(80));
  out(g, "h", smelt_gelu(g, smelt_add(g, smelt_matmul(g, x, w), b)));
}

static void b_matmul_other(smelt_graph *g) {
  /* integer matmul and vector operands: not the tiled kernel */
  smelt_node a = in(g, "a", SMELT_I32, 2, TU_DIMS(20, 30));
  smelt_node b = in(g, "b", SMELT_I64, 2, TU_DIMS(30, 10));
  out(g, "ab", smelt_matmul(g, a, b));
  smelt_node v = in(g, "v", SMELT_F32, 1, TU_DIMS(30));
  smelt_node m = in(g, "m", SMELT_F32, 2, TU_DIMS(30, 12));
  out(g, "vm", smelt_matmul(g, v, m));
  out(g, "mv", smelt_matmul(g, smelt_transpose(g, m, 0, 1), v));
  out(g, "dot", smelt_matmul(g, v, v));
}

static void scatter_of(smelt_graph *g, smelt_dtype dt, smelt_dtype it, const char *tag) {
  char nx[16], ni[16], ns[16], no[16];
  snprintf(nx, sizeof nx, "x_%s", tag);
  snprintf(ni, sizeof ni, "i_%s", tag);
  snprintf(ns, sizeof ns, "s_%s", tag);
  snprintf(no, sizeof no, "y_%s", tag);
  smelt_node x = in(g, nx, dt, 2, TU_DIMS(10, 6));
  smelt_node idx = in(g, ni, it, 2, TU_DIMS(40, 6));
  smelt_node src = in(g, ns, dt, 2, TU_DIMS(40, 6));
  out(g, no, smelt_scatter_add(g, x, 0, idx, src));
}

static void b_scatter_f32(smelt_graph *g) { scatter_of(g, SMELT_F32, SMELT_I64, "f32"); }
static void b_scatter_f64(smelt_graph *g) { scatter_of(g, SMELT_F64, SMELT_I32, "f64"); }
static void b_scatter_i32(smelt_graph *g) { scatter_of(g, SMELT_I32, SMELT_I32, "i32"); }
static void b_scatter_i64(smelt_graph *g) { scatter_of(g, SMELT_I64, SMELT_I64, "i64"); }
static void b_scatter_bool(smelt_graph *g) { scatter_of(g, SMELT_BOOL, SMELT_I64, "bool"); }

static void b_scatter_axis1(smelt_graph *g) {
  /* along the last axis, a source computed in the same kernel */
  smelt_node x = in(g, "x", SMELT_F32, 3, TU_DIMS(4, 5, 9));
  smelt_node idx = in(g, "i", SMELT_I32, 3, TU_DIMS(4, 5, 20));
  smelt_node s = in(g, "s", SMELT_F32, 3, TU_DIMS(4, 5, 20));
  out(g, "y", smelt_scatter_add(g, x, -1, idx, smelt_exp(g, s)));
}

static void b_embedding_grad(smelt_graph *g) {
  /* the gradient of an embedding (a scatter), and a scatter_add of a
   * reduced source */
  smelt_node w = smelt_param(g, "w", SMELT_F32, 2, TU_DIMS(16, 8), smelt_init_normal(0, 1, 3));
  smelt_node idx = in(g, "i", SMELT_I64, 2, TU_DIMS(12, 5));
  smelt_node e = smelt_embedding(g, w, idx); /* [12, 5, 8] */
  smelt_node loss = smelt_sum(g, smelt_mul(g, e, e), 0, NULL, false);
  smelt_node dw;
  smelt_grad(g, loss, 1, &w, &dw);
  out(g, "dw", dw);
  /* scatter_add of a sum over a further axis */
  smelt_node x = in(g, "x", SMELT_F32, 2, TU_DIMS(10, 6));
  smelt_node ix = in(g, "ix", SMELT_I32, 2, TU_DIMS(40, 6));
  smelt_node s = in(g, "s", SMELT_F32, 3, TU_DIMS(40, 6, 30));
  out(g, "y", smelt_scatter_add(g, x, 0, ix, smelt_sum(g, s, 1, (const int[]){2}, false)));
}

static void b_gather(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F32, 2, TU_DIMS(10, 6));
  smelt_node i32 = in(g, "i32", SMELT_I32, 2, TU_DIMS(7, 6));
  smelt_node i64 = in(g, "i64", SMELT_I64, 2, TU_DIMS(10, 3));
  out(g, "g0", smelt_gather(g, x, 0, i32));
  out(g, "g1", smelt_gather(g, smelt_cast(g, x, SMELT_F64), 1, i64));
  smelt_node v = in(g, "v", SMELT_I64, 1, TU_DIMS(4));
  out(g, "sel", smelt_index_select(g, x, 1, v));
  out(g, "take", smelt_take_along_axis(g, x, smelt_argmax(g, x, 1, true), 1));
  smelt_node lab = in(g, "lab", SMELT_I32, 1, TU_DIMS(5));
  out(g, "hot", smelt_one_hot(g, lab, 9));
  smelt_node table = in(g, "table", SMELT_I64, 2, TU_DIMS(30, 4));
  out(g, "emb", smelt_embedding(g, table, i64));
  smelt_node bx = in(g, "bx", SMELT_BOOL, 2, TU_DIMS(10, 6));
  out(g, "gb", smelt_gather(g, bx, 0, i32));
}

static void b_random(smelt_graph *g) {
  out(g, "u32", smelt_rand(g, SMELT_F32, 2, TU_DIMS(33, 7), 1));
  out(g, "u64", smelt_rand(g, SMELT_F64, 1, TU_DIMS(100), 2));
  out(g, "n32", smelt_randn(g, SMELT_F32, 3, TU_DIMS(2, 3, 5), 3));
  out(g, "n64", smelt_randn(g, SMELT_F64, 0, NULL, 4));
  smelt_node x = in(g, "x", SMELT_F32, 2, TU_DIMS(50, 20));
  smelt_node y = in(g, "y", SMELT_F64, 1, TU_DIMS(20));
  out(g, "drop", smelt_dropout(g, x, 0.25, 5, true));
  out(g, "drop_eval", smelt_dropout(g, x, 0.5, 6, false));
  out(g, "drop_all", smelt_dropout(g, y, 1.0, 7, true));
  out(g, "drop_sum", smelt_sum(g, smelt_dropout(g, y, 0.1, 8, true), 0, NULL, false));
  /* an evaluation program (dropout off) beside the training outputs */
  smelt_graph_add_program(g, "eval", 1, (const char *[]){"drop"}, 0, NULL, true);
}

static void b_sources(smelt_graph *g) {
  out_(g, smelt_arange(g, SMELT_I64, 0, 100, 3));
  out_(g, smelt_arange(g, SMELT_F32, -1, 1, 0.25));
  out_(g, smelt_linspace(g, SMELT_F64, 0, 1, 11));
  out_(g, smelt_eye(g, SMELT_F32, 5, 7));
  out_(g, smelt_eye(g, SMELT_BOOL, 3, 3));
  out_(g, smelt_full(g, SMELT_I32, 2, TU_DIMS(3, 4), 7));
  smelt_node x = in(g, "x", SMELT_F32, 1, TU_DIMS(4));
  out_(g, smelt_add(g, x, smelt_const_array(g, SMELT_F32, 1, TU_DIMS(4),
                                              (const float[]){1, -2, 0.5f, 1e30f})));
  out_(g, smelt_mul(g, x, smelt_const(g, SMELT_F64, 0.1)));
}

static void b_views(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F32, 3, TU_DIMS(4, 5, 6));
  smelt_node y = in(g, "y", SMELT_I32, 2, TU_DIMS(5, 6));
  out_(g, smelt_permute(g, x, (const int[]){2, 0, 1}));
  out_(g, smelt_reshape(g, smelt_transpose(g, x, 0, 2), 2, TU_DIMS(30, -1)));
  out_(g, smelt_slice(g, x, TU_DIMS(1, 0, -4), TU_DIMS(4, 5, 100), TU_DIMS(2, 1, 3)));
  out_(g, smelt_flip(g, x, 2, (const int[]){0, 2}));
  out_(g, smelt_pad(g, y, TU_DIMS(1, 0), TU_DIMS(2, 3), -1));
  out_(g, smelt_concat(g, 2, (smelt_node[]){smelt_cast(g, y, SMELT_F32), smelt_sum(g, x, 1, (const int[]){0}, false)}, 0));
  out_(g, smelt_stack(g, 2, (smelt_node[]){y, y}, 1));
  out_(g, smelt_expand(g, smelt_unsqueeze(g, y, 0), 3, TU_DIMS(3, 5, 6)));
  out_(g, smelt_flatten(g, x, 1, 2));
  out_(g, smelt_squeeze(g, smelt_reshape(g, y, 3, TU_DIMS(5, 1, 6)), 1, (const int[]){1}));
}

/* The unary and binary ops of smelt.h, tried on every dtype. */
typedef smelt_node (*unary_fn)(smelt_graph *, smelt_node);
typedef smelt_node (*binary_fn)(smelt_graph *, smelt_node, smelt_node);
static const struct {
  const char *name;
  unary_fn f;
} UNARY[] = {
    {"neg", smelt_neg},         {"abs", smelt_abs},       {"sign", smelt_sign},
    {"exp", smelt_exp},         {"log", smelt_log},       {"sqrt", smelt_sqrt},
    {"rsqrt", smelt_rsqrt},     {"reciprocal", smelt_reciprocal}, {"sin", smelt_sin},
    {"cos", smelt_cos},         {"tanh", smelt_tanh},     {"sigmoid", smelt_sigmoid},
    {"relu", smelt_relu},       {"gelu", smelt_gelu},     {"logical_not", smelt_logical_not},
    {"stop_gradient", smelt_stop_gradient},
};
static const struct {
  const char *name;
  binary_fn f;
} BINARY[] = {
    {"add", smelt_add},           {"sub", smelt_sub},         {"mul", smelt_mul},
    {"div", smelt_div},           {"pow", smelt_pow},         {"maximum", smelt_maximum},
    {"minimum", smelt_minimum},   {"lt", smelt_lt},           {"le", smelt_le},
    {"gt", smelt_gt},             {"ge", smelt_ge},           {"eq", smelt_eq},
    {"ne", smelt_ne},             {"logical_and", smelt_logical_and},
    {"logical_or", smelt_logical_or},
};
static const smelt_dtype DTYPES[] = {SMELT_F32, SMELT_F64, SMELT_I32, SMELT_I64, SMELT_BOOL};
enum { NDTYPES = 5 };

/* Whether op applies to dtype dt: tried on a scratch graph, so that the
 * real graph never gets a sticky error. */
static bool unary_ok(unary_fn f, smelt_dtype dt) {
  smelt_graph *s = smelt_graph_new();
  smelt_node r = f(s, smelt_input(s, "x", dt, 1, TU_DIMS(3)));
  bool ok = smelt_node_valid(r) && !smelt_graph_error(s);
  smelt_graph_free(s);
  return ok;
}
static bool binary_ok(binary_fn f, smelt_dtype a, smelt_dtype b) {
  smelt_graph *s = smelt_graph_new();
  smelt_node r = f(s, smelt_input(s, "a", a, 1, TU_DIMS(3)), smelt_input(s, "b", b, 1, TU_DIMS(3)));
  bool ok = smelt_node_valid(r) && !smelt_graph_error(s);
  smelt_graph_free(s);
  return ok;
}

/* Every unary op, every binary op (with itself and with every other dtype,
 * broadcasting), clamp, where and casts to every dtype, on inputs of one
 * dtype. */
static void elementwise_of(smelt_graph *g, smelt_dtype dt, int64_t inner) {
  smelt_node x = in(g, "x", dt, 2, TU_DIMS(17, inner));
  smelt_node y = in(g, "y", dt, 1, TU_DIMS(inner));
  smelt_node c = in(g, "c", SMELT_BOOL, 2, TU_DIMS(17, 1));
  int nu = 0, nb = 0;
  for (size_t i = 0; i < sizeof UNARY / sizeof UNARY[0]; i++)
    if (unary_ok(UNARY[i].f, dt)) {
      char name[48];
      snprintf(name, sizeof name, "%s", UNARY[i].name);
      out(g, name, UNARY[i].f(g, x));
      nu++;
    }
  for (size_t i = 0; i < sizeof BINARY / sizeof BINARY[0]; i++)
    for (int j = 0; j < NDTYPES; j++) {
      smelt_dtype dj = DTYPES[j];
      if (!binary_ok(BINARY[i].f, dt, dj)) continue;
      char nm[16], name[64];
      snprintf(nm, sizeof nm, "y_%s", smelt_dtype_name(dj));
      smelt_node yj = dj == dt ? y : smelt_find(g, nm);
      if (!smelt_node_valid(yj)) yj = in(g, nm, dj, 1, TU_DIMS(inner));
      snprintf(name, sizeof name, "%s_%s", BINARY[i].name, smelt_dtype_name(dj));
      out(g, name, BINARY[i].f(g, x, yj));
      nb++;
    }
  /* with weak literals and a rank-0 constant */
  out(g, "add_lit", smelt_add(g, x, smelt_scalar_int(g, 3)));
  if (dt != SMELT_BOOL) out(g, "mul_lit", smelt_mul(g, x, smelt_scalar(g, 0.5)));
  out(g, "pow_lit", smelt_pow(g, x, smelt_scalar_int(g, 3)));
  if (dt != SMELT_BOOL) out(g, "sub_const", smelt_sub(g, smelt_const(g, SMELT_F64, 2.0), x));
  else out(g, "and_const", smelt_logical_and(g, smelt_const(g, SMELT_BOOL, 1), x));
  if (dt != SMELT_BOOL) out(g, "clamp", smelt_clamp(g, x, -1.5, 2.5));
  out(g, "where", smelt_where(g, c, x, y));
  out(g, "where_lit", smelt_where(g, smelt_ne(g, x, y), x, smelt_scalar(g, 0)));
  for (int j = 0; j < NDTYPES; j++) {
    char name[32];
    snprintf(name, sizeof name, "cast_%s", smelt_dtype_name(DTYPES[j]));
    out(g, name, smelt_cast(g, x, DTYPES[j]));
  }
  ck_assert_msg(dt == SMELT_BOOL || nu >= 13, "%s: only %d unary ops", smelt_dtype_name(dt), nu);
  ck_assert_int_ge(nb, 7);
}

static void b_elem_f32(smelt_graph *g) { elementwise_of(g, SMELT_F32, 5); }
static void b_elem_f64(smelt_graph *g) { elementwise_of(g, SMELT_F64, 5); }
static void b_elem_i32(smelt_graph *g) { elementwise_of(g, SMELT_I32, 5); }
static void b_elem_i64(smelt_graph *g) { elementwise_of(g, SMELT_I64, 5); }
static void b_elem_bool(smelt_graph *g) { elementwise_of(g, SMELT_BOOL, 5); }
/* an innermost extent of 8: the vector path of codegen/cuda.c, every op in
 * its lanes */
static void b_elem_f32_vec(smelt_graph *g) { elementwise_of(g, SMELT_F32, 8); }
static void b_elem_f64_vec(smelt_graph *g) { elementwise_of(g, SMELT_F64, 8); }
static void b_elem_i32_vec(smelt_graph *g) { elementwise_of(g, SMELT_I32, 8); }

/* Contiguous float operands: the vector path (float4; double2). */
static void b_vec_f32(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F32, 2, TU_DIMS(64, 32));
  smelt_node b = in(g, "b", SMELT_F32, 1, TU_DIMS(32));
  smelt_node c = in(g, "c", SMELT_F32, 2, TU_DIMS(64, 1));
  out(g, "y", smelt_tanh(g, smelt_add(g, smelt_mul(g, x, b), c)));
}
static void b_vec_f64(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F64, 2, TU_DIMS(64, 32));
  smelt_node b = in(g, "b", SMELT_F64, 1, TU_DIMS(32));
  out(g, "y", smelt_sub(g, smelt_mul(g, x, b), smelt_scalar(g, 0.5)));
}
/* A permuted operand (strided along the innermost axis): no vector path. */
static void b_vec_permuted(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F32, 2, TU_DIMS(64, 32));
  smelt_node w = in(g, "w", SMELT_F32, 2, TU_DIMS(32, 64));
  out(g, "y", smelt_add(g, x, smelt_transpose(g, w, 0, 1)));
}
/* An innermost extent that is not a multiple of 4: no vector path. */
static void b_vec_odd(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F32, 2, TU_DIMS(64, 31));
  smelt_node b = in(g, "b", SMELT_F32, 1, TU_DIMS(31));
  out(g, "y", smelt_mul(g, x, b));
}

static void b_casts_fused(smelt_graph *g) {
  /* a chain through every dtype in one kernel, plus losses */
  smelt_node x = in(g, "x", SMELT_F64, 2, TU_DIMS(8, 3));
  smelt_node v = x;
  for (int k = 0; k < 2; k++)
    for (int j = 0; j < NDTYPES; j++) v = smelt_add(g, smelt_cast(g, v, DTYPES[j]), smelt_scalar_int(g, 1));
  out(g, "chain", v);
  smelt_node lab = in(g, "lab", SMELT_I64, 1, TU_DIMS(8));
  out(g, "ce", smelt_cross_entropy(g, smelt_cast(g, x, SMELT_F32), lab));
  out(g, "mse", smelt_mse_loss(g, x, smelt_sin(g, x)));
}

static void b_index64(smelt_graph *g) {
  /* a broadcast domain of 2^32 elements: indices need 64 bits. Compiled
   * only: the result would take 16 GiB. */
  smelt_node r = in(g, "r", SMELT_F32, 2, TU_DIMS(1, 65536));
  smelt_node c = in(g, "c", SMELT_F32, 2, TU_DIMS(65536, 1));
  smelt_node big = smelt_mul(g, smelt_expand(g, r, 2, TU_DIMS(65536, 65536)),
                             smelt_expand(g, c, 2, TU_DIMS(65536, 65536)));
  out(g, "total", smelt_sum(g, big, 0, NULL, false)); /* split into blocks */
  out(g, "rows", smelt_sum(g, big, 1, (const int[]){1}, false));
  out(g, "top", smelt_min(g, big, 0, NULL, false));          /* two-stage */
  out(g, "cols", smelt_max(g, big, 1, (const int[]){0}, false));
  out(g, "arg", smelt_argmax(g, big, 1, false));
}

static void b_index64_pointwise(smelt_graph *g) {
  smelt_node r = in(g, "r", SMELT_F32, 2, TU_DIMS(1, 65536));
  smelt_node c = in(g, "c", SMELT_F32, 2, TU_DIMS(65536, 1));
  out(g, "big", smelt_add(g, r, c)); /* 2^32 elements, never run */
}

static void b_empty(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F32, 2, TU_DIMS(0, 4));
  out(g, "s0", smelt_sum(g, x, 1, (const int[]){0}, false)); /* zeros of [4] */
  out(g, "s1", smelt_sum(g, x, 1, (const int[]){1}, false)); /* [0] */
  out(g, "e", smelt_exp(g, x));
  smelt_node y = in(g, "y", SMELT_I64, 1, TU_DIMS(3));
  out(g, "same", y); /* an input as an output: no kernel */
}

/* A two-layer MLP: cross-entropy, its gradients, SGD with momentum, and an
 * Adam program on a second copy of the weights. */
static void b_mlp_train(smelt_graph *g) {
  smelt_node x = in(g, "x", SMELT_F32, 2, TU_DIMS(32, 20));
  smelt_node lab = in(g, "labels", SMELT_I64, 1, TU_DIMS(32));
  smelt_node w1 = smelt_param(g, "w1", SMELT_F32, 2, TU_DIMS(20, 64), smelt_init_normal(0, 0.2, 1));
  smelt_node b1 = smelt_param(g, "b1", SMELT_F32, 1, TU_DIMS(64), smelt_init_zeros());
  smelt_node w2 = smelt_param(g, "w2", SMELT_F32, 2, TU_DIMS(64, 10), smelt_init_uniform(-0.1, 0.1, 2));
  smelt_node b2 = smelt_param(g, "b2", SMELT_F32, 1, TU_DIMS(10), smelt_init_constant(0.01));
  smelt_node h = smelt_relu(g, smelt_add(g, smelt_matmul(g, x, w1), b1));
  h = smelt_dropout(g, h, 0.1, 9, true);
  smelt_node logits = smelt_add(g, smelt_matmul(g, h, w2), b2);
  smelt_node loss = smelt_cross_entropy(g, logits, lab);
  out(g, "loss", loss);
  out(g, "pred", smelt_argmax(g, logits, 1, false));
  smelt_node ps[4] = {w1, b1, w2, b2}, gs[4];
  ck_assert_int_eq(smelt_grad(g, loss, 4, ps, gs), 0);
  for (int i = 0; i < 4; i++) {
    char name[16];
    snprintf(name, sizeof name, "d%d", i);
    out(g, name, gs[i]);
  }
  smelt_sgd_options so = smelt_sgd_defaults(0.1);
  so.momentum = 0.9;
  so.weight_decay = 1e-4;
  smelt_node upd[SMELT_OPTIM_MAX_UPDATES(4)];
  int nu = smelt_sgd(g, NULL, 4, ps, gs, &so, upd);
  ck_assert_int_gt(nu, 0);
  smelt_graph_add_program(g, "train_sgd", 1, (const char *[]){"loss"}, nu, upd, false);
  smelt_adam_options ao = smelt_adamw_defaults();
  smelt_node aupd[SMELT_OPTIM_MAX_UPDATES(4)];
  int na = smelt_adam(g, NULL, 4, ps, gs, &ao, aupd);
  ck_assert_int_gt(na, 0);
  smelt_graph_add_program(g, "train_adamw", 2, (const char *[]){"loss", "pred"}, na, aupd, false);
  smelt_graph_add_program(g, "eval", 1, (const char *[]){"pred"}, 0, NULL, true);
}

/* Second-order: the gradient of a gradient norm. */
static void b_grad_of_grad(smelt_graph *g) {
  smelt_node w = smelt_param(g, "w", SMELT_F64, 2, TU_DIMS(6, 4), smelt_init_normal(0, 1, 5));
  smelt_node x = in(g, "x", SMELT_F64, 2, TU_DIMS(9, 6));
  smelt_node y = smelt_sum(g, smelt_tanh(g, smelt_matmul(g, x, w)), 0, NULL, false);
  smelt_node dw, ddw;
  ck_assert_int_eq(smelt_grad(g, y, 1, &w, &dw), 0);
  smelt_node n2 = smelt_sum(g, smelt_mul(g, dw, dw), 0, NULL, false);
  ck_assert_int_eq(smelt_grad(g, n2, 1, &w, &ddw), 0);
  out(g, "dw", dw);
  out(g, "ddw", ddw);
}

#define S(...) {__VA_ARGS__}
static const ccase CASES[] = {
    {"pointwise", b_pointwise, {S("pointwise"), S("__global__"), 1}},
    {"thread_reduce", b_thread_reduce, {S("thread-reduce"), {0}, 1}},
    {"thread_reduce_many_points", b_thread_reduce_many, {S("thread-reduce"), {0}, 1}},
    {"block_reduce", b_block_reduce, {S("block-reduce"), S("__shfl_"), 1}},
    {"block_reduce_short", b_block_reduce_short, {S("block-reduce"), S("__launch_bounds__(128)"), 1}},
    {"two_stage_reduce", b_two_stage, {S("two-stage-reduce"), {0}, 1}},
    {"two_stage_reduce_full", b_two_stage_full, {S("two-stage-reduce"), {0}, 1}},
    {"arg_reduce", b_arg_reduce, {S("thread-reduce", "block-reduce", "two-stage-reduce"), {0}, 3}},
    {"reductions", b_reductions, {S("thread-reduce"), {0}, 1}},
    {"tiled_matmul", b_matmul, {S("tiled-matmul"), S("__shared__"), 1}},
    {"tiled_matmul_f64_ragged", b_matmul_f64_ragged, {S("tiled-matmul"), S("double"), 1}},
    {"tiled_matmul_batched", b_matmul_batched, {S("tiled-matmul"), S("blockIdx.z"), 2}},
    {"tiled_matmul_transposed", b_matmul_transposed, {S("tiled-matmul"), {0}, 1}},
    {"tiled_matmul_epilogue", b_matmul_epilogue, {S("tiled-matmul"), {0}, 1}},
    {"matmul_untiled", b_matmul_other, {{0}, {0}, 1}},
    {"scatter_f32", b_scatter_f32, {S("scatter"), S("atomicAdd"), 1}},
    {"scatter_f64", b_scatter_f64, {S("scatter"), {0}, 1}},
    {"scatter_i32", b_scatter_i32, {S("scatter"), {0}, 1}},
    {"scatter_i64", b_scatter_i64, {S("scatter"), S("unsigned long long"), 1}},
    {"scatter_bool", b_scatter_bool, {S("scatter"), S("atomicOr"), 1}},
    {"scatter_last_axis", b_scatter_axis1, {S("scatter"), {0}, 1}},
    {"embedding_grad_scatter", b_embedding_grad, {S("scatter", "thread-reduce"), {0}, 2}},
    {"gather_index_checks", b_gather, {S("pointwise"), S("bad_index", "bad_bound"), 1}},
    {"random", b_random, {S("pointwise"), S("rng_step", "training"), 1}},
    {"sources", b_sources, {{0}, {0}, 1}},
    {"views", b_views, {{0}, {0}, 1}},
    {"elementwise_f32", b_elem_f32, {S("pointwise"), {0}, 1}},
    {"elementwise_f64", b_elem_f64, {S("pointwise"), {0}, 1}},
    {"elementwise_i32", b_elem_i32, {S("pointwise"), {0}, 1}},
    {"elementwise_i64", b_elem_i64, {S("pointwise"), {0}, 1}},
    {"elementwise_bool", b_elem_bool, {S("pointwise"), {0}, 1}},
    {"elementwise_f32_vector", b_elem_f32_vec, {S("pointwise"), S("vector path: 4"), 1}},
    {"elementwise_f64_vector", b_elem_f64_vec, {S("pointwise"), S("vector path"), 1}},
    {"elementwise_i32_vector", b_elem_i32_vec, {S("pointwise"), {0}, 1}},
    {"vector_f32", b_vec_f32, {S("pointwise"), S("float4", "sm_set_lane"), 1}},
    {"vector_f64", b_vec_f64, {S("pointwise"), S("double2", "sm_set_lane"), 1}},
    {"casts_and_losses", b_casts_fused, {{0}, {0}, 1}},
    {"index_64bit_reduce", b_index64, {S("two-stage-reduce"), S("long long"), 1}},
    {"index_64bit_pointwise", b_index64_pointwise, {S("pointwise"), S("long long"), 1}},
    {"empty_dims", b_empty, {{0}, {0}, 0}},
    {"mlp_grad_sgd_adam", b_mlp_train, {S("tiled-matmul"), {0}, 3}},
    {"grad_of_grad", b_grad_of_grad, {{0}, {0}, 2}},
};
enum { NCASES = (int)(sizeof CASES / sizeof CASES[0]) };

START_TEST(built_graphs) {
  const ccase *c = &CASES[_i];
  if (!sm_nvrtc_available())
    printf("NVRTC not available: skipping the NVRTC compile of %s (printing the CUDA C only)\n",
           c->name);
  smelt_graph *g = TU_GRAPH();
  c->build(g);
  TU_ASSERT_OK(g);
  msgbuf m = {0};
  build_graph(g, c->name, _i == 0, &c->e, &m);
  smelt_graph_free(g);
  msg_check(&m);
}
END_TEST

/* The serial strategy: a reduction kernel with accumulating stores, one
 * thread in domain order. The lowering makes no such kernel from a graph
 * today (scatter kernels have no reduced axes), so it is built by hand:
 * domain [8, 16r]; out[idx[i0]] += sum_i1 x[i0, i1] (outer), hist[bin[i0,
 * i1]] += 1 (inner, i32), and the plain sums (outer). */
START_TEST(serial_hand_built) {
  const int64_t ext[2] = {8, 16};
  const uint8_t red[2] = {0, 1};
  sm_kernel *k = sm_kernel_new("k0", SM_KERNEL_REDUCE, 2, ext, red);
  ck_assert_ptr_nonnull(k);
  int x = sm_kernel_arg(k, 1, SMELT_F32, KA_IN, 128);
  int idx = sm_kernel_arg(k, 2, SMELT_I64, KA_IN, 8);
  int bin = sm_kernel_arg(k, 3, SMELT_I32, KA_IN, 128);
  int outp = sm_kernel_arg(k, 4, SMELT_F32, KA_OUT, 4);
  int hist = sm_kernel_arg(k, 5, SMELT_I32, KA_OUT, 10);
  int sums = sm_kernel_arg(k, 6, SMELT_F32, KA_OUT, 8);
  int i0 = sm_kv_idx(k, 0);
  int off = sm_kv_affine(k, 0, (const int64_t[]){16, 1});
  int v = sm_kv_load(k, x, off, -1, 0, 0);
  int a = sm_kernel_acc(k, OP_REDUCE_SUM, SMELT_F32, SMELT_F64, v, -1, -1, -1);
  int av = sm_kv_acc(k, a);
  int j = sm_kv_check(k, sm_kv_load(k, idx, i0, -1, 0, 0), 4);
  ck_assert_int_ge(sm_kernel_store(k, outp, j, av, true, true), 0);
  int b = sm_kv_check(k, sm_kv_elem(k, OP_CAST, SMELT_I64, sm_kv_load(k, bin, off, -1, 0, 0), -1, -1), 10);
  ck_assert_int_ge(sm_kernel_store(k, hist, b, sm_kv_const_i(k, SMELT_I32, 1), false, true), 0);
  ck_assert_int_ge(sm_kernel_store(k, sums, i0, av, true, false), 0);
  ck_assert(!k->oom);
  sm_kernel *ks[1] = {k};
  sm_cuda_source src;
  char *err = NULL;
  ck_assert_msg(sm_cuda_emit(ks, 1, &src, &err) == 0, "%s", err);
  ck_assert_str_eq(src.kernels[0].strategy, "serial");
  ck_assert_int_eq(src.kernels[0].block, 32);
  ck_assert_int_eq(src.kernels[0].grid[0], 1);
  ck_assert_int_eq(src.kernels[0].nzero, 2); /* out and hist start at zero */
  ck_assert(has(src.text, "extern \"C\" __global__"));
  if (verbose()) printf("%s", src.text);
  if (have_nvrtc())
    for (int i = 0; i < NARCHS; i++) {
      sm_nvrtc_request r = {src.text, "serial.cu", ARCHS[i], SM_NVRTC_CUBIN, NULL};
      size_t len = 0;
      void *cubin = sm_nvrtc_compile(&r, &len, NULL, &err);
      ck_assert_msg(cubin != NULL, "sm_%d: %s\n%s", ARCHS[i], err, src.text);
      ck_assert(is_cubin(cubin, len));
      sm_free(cubin);
    }
  sm_cuda_source_free(&src);
  sm_kernel_free(k);
}
END_TEST

/* Every printing strategy is reached by some case above (serial by
 * serial_hand_built). */
START_TEST(every_strategy_reached) {
  static const char *all[] = {"pointwise", "thread-reduce", "block-reduce", "two-stage-reduce",
                              "tiled-matmul", "scatter"};
  for (size_t s = 0; s < sizeof all / sizeof all[0]; s++) {
    bool found = false;
    for (int i = 0; i < NCASES && !found; i++)
      for (int k = 0; k < 8 && CASES[i].e.strategies[k] && !found; k++)
        found = !strcmp(CASES[i].e.strategies[k], all[s]);
    ck_assert_msg(found, "no case expects the strategy %s", all[s]);
  }
}
END_TEST

/* The vector path of pointwise kernels (codegen/cuda.c): printed for
 * contiguous float operands, with a grid of groups of 4 (f32) or 2 (f64
 * only) elements; not for a permuted operand or an odd innermost extent. */
START_TEST(vector_path) {
  static const struct {
    const char *name;
    void (*build)(smelt_graph *);
    int vector;
    const char *text;
  } cases[] = {
      {"f32", b_vec_f32, 4, "reinterpret_cast<const float4 *>"},
      {"f64", b_vec_f64, 2, "reinterpret_cast<const double2 *>"},
      {"permuted", b_vec_permuted, 0, NULL},
      {"odd", b_vec_odd, 0, NULL},
  };
  smelt_compile_options o = cuda_options();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    smelt_graph *g = TU_GRAPH();
    cases[i].build(g);
    TU_ASSERT_OK(g);
    size_t n;
    uint32_t *roots = output_roots(g, &n);
    sm_cuda_image img;
    char *err = NULL;
    ck_assert_msg(sm_cuda_build(g, n, roots, &o, 80, SM_CUDA_PRINT_ONLY, NULL, &img, &err) == 0,
                  "%s: %s", cases[i].name, err);
    ck_assert_uint_eq(img.src.nkernels, 1);
    const sm_cuda_kernel *kk = &img.src.kernels[0];
    if (verbose()) printf("%s: vector %d, grid %lld\n%s", cases[i].name, kk->vector,
                          (long long)kk->grid[0], img.src.text);
    ck_assert_str_eq(kk->strategy, "pointwise");
    ck_assert_msg(kk->vector == cases[i].vector, "%s: vector %d, want %d", cases[i].name,
                  kk->vector, cases[i].vector);
    /* 2048 elements (1984 for odd): one thread per group, 256 per block */
    int64_t numel = cases[i].build == b_vec_odd ? 64 * 31 : 64 * 32;
    int64_t per = cases[i].vector ? cases[i].vector : 1;
    ck_assert_int_eq(kk->grid[0], (numel / per + 255) / 256);
    ck_assert(kk->grid_stride);
    ck_assert_msg(has(img.src.text, "vector path") == (cases[i].vector != 0), "%s:\n%s",
                  cases[i].name, img.src.text);
    if (cases[i].text) {
      ck_assert_msg(has(img.src.text, cases[i].text), "%s:\n%s", cases[i].name, img.src.text);
      /* the alignment check and the scalar loop it falls back to */
      ck_assert(has(img.src.text, "& 15ull) == 0ull"));
      ck_assert(has(img.src.text, "p < (int)2048"));
      /* each allocation failing in turn: an error or the same text */
      bool done = false;
      for (long f = 0; !done && f < 100000; f++) {
        sm_cuda_image again;
        sm_alloc_fail_after(f);
        int rc = sm_cuda_build(g, n, roots, &o, 80, SM_CUDA_PRINT_ONLY, NULL, &again, &err);
        sm_alloc_fail_after(-1);
        if (rc == 0) {
          ck_assert_str_eq(again.src.text, img.src.text);
          done = true;
        } else {
          ck_assert_ptr_null(again.src.text);
          sm_free(err);
        }
        sm_cuda_image_free(&again);
      }
      ck_assert(done);
    }
    sm_cuda_image_free(&img);
    free(roots);
    smelt_graph_free(g);
  }
}
END_TEST

/* The scalar op tables: the shared one (codegen/scalar_ops.c) against the
 * graph op table, and cuda_ops against it: a row for every op. */
START_TEST(op_tables) {
  char *why = NULL;
  ck_assert_msg(sm_scalar_ops_check(&why) == 0, "%s", why);
  ck_assert_msg(sm_cuda_ops_check(&why) == 0, "%s", why);
}
END_TEST

/* ----------------------------------------------------- (c) errors, dumps */

START_TEST(bad_arch_lists_supported) {
  smelt_compile_options o = cuda_options();
  int cc = -1;
  char *err = NULL;
  /* no arch asked for: the fallback */
  ck_assert_int_eq(sm_cuda_pick_arch(&o, 80, &cc, &err), 0);
  ck_assert_int_eq(cc, 80);
  ck_assert_ptr_null(err);
  ck_assert_int_eq(sm_cuda_pick_arch(NULL, 90, &cc, &err), 0);
  ck_assert_int_eq(cc, 90);
  if (!have_nvrtc()) {
    o.cuda_arch = "sm_80";
    ck_assert_int_eq(sm_cuda_pick_arch(&o, 80, &cc, &err), -1);
    ck_assert_msg(has(err, "without NVRTC"), "%s", err);
    sm_free(err);
    return;
  }
  static const struct {
    const char *arch;
    int cc;
  } good[] = {{"sm_80", 80}, {"sm_90", 90}, {"sm_90a", 90}, {"compute_80", 80}, {"86", 86}};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    o.cuda_arch = good[i].arch;
    ck_assert_msg(sm_cuda_pick_arch(&o, 70, &cc, &err) == 0, "%s: %s", good[i].arch, err);
    ck_assert_int_eq(cc, good[i].cc);
  }
  /* well formed but unsupported: the message lists what is */
  static const char *bad[] = {"sm_35", "sm_10", "compute_50"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    o.cuda_arch = bad[i];
    cc = -1;
    ck_assert_int_eq(sm_cuda_pick_arch(&o, 80, &cc, &err), -1);
    char want[64];
    snprintf(want, sizeof want, "CUDA arch \"%s\" is not supported", bad[i]);
    ck_assert_msg(has(err, want), "%s", err);
    ck_assert_msg(has(err, "supported: sm_") && has(err, "sm_80") && has(err, "sm_90"), "%s", err);
    sm_free(err);
  }
  /* not an arch at all */
  o.cuda_arch = "gfx90a";
  ck_assert_int_eq(sm_cuda_pick_arch(&o, 80, &cc, &err), -1);
  ck_assert_msg(has(err, "unknown CUDA arch \"gfx90a\""), "%s", err);
  sm_free(err);
  /* sm_cuda_build with an unsupported cc: NVRTC's check, no image left */
  smelt_graph *g = TU_GRAPH();
  smelt_node x = in(g, "x", SMELT_F32, 1, TU_DIMS(8));
  out(g, "y", smelt_exp(g, x));
  size_t n;
  uint32_t *roots = output_roots(g, &n);
  sm_cuda_image img;
  o.cuda_arch = NULL;
  ck_assert_int_eq(sm_cuda_build(g, n, roots, &o, 35, SM_NVRTC_CUBIN, NULL, &img, &err), -1);
  ck_assert_msg(has(err, "CUDA arch \"sm_35\" is not supported") && has(err, "sm_90"), "%s", err);
  ck_assert_ptr_null(img.plan);
  ck_assert_ptr_null(img.code);
  ck_assert_ptr_null(img.src.text);
  sm_free(err);
  free(roots);
  smelt_graph_free(g);
}
END_TEST

/* A graph with a reduction and a matmul for the dump tests. */
static smelt_graph *dump_graph(size_t *n, uint32_t **roots) {
  smelt_graph *g = TU_GRAPH();
  smelt_node a = in(g, "a", SMELT_F32, 2, TU_DIMS(64, 32));
  smelt_node b = in(g, "b", SMELT_F32, 2, TU_DIMS(32, 16));
  smelt_node c = smelt_matmul(g, a, b);
  out(g, "c", c);
  out(g, "s", smelt_sum(g, smelt_exp(g, c), 1, (const int[]){1}, false));
  *roots = output_roots(g, n);
  return g;
}

START_TEST(dump_capture_cuda_and_ptx) {
  size_t n;
  uint32_t *roots;
  smelt_graph *g = dump_graph(&n, &roots);
  smelt_compile_options o = cuda_options();
  bool nv = have_nvrtc();
  o.dump = nv ? "cuda,ptx" : "cuda";
  sm_dump d;
  char *err = NULL;
  ck_assert_msg(sm_dump_init(&d, o.dump, NULL, &err) == 0, "%s", err);
  ck_assert(sm_dump_wants(&d, SM_DUMP_CUDA));
  ck_assert(sm_dump_wants(&d, SM_DUMP_PTX) == nv);
  sm_dump_capture_begin(d.stages);
  sm_cuda_image img;
  int rc = sm_cuda_build(g, n, roots, &o, 80, nv ? SM_NVRTC_CUBIN : SM_CUDA_PRINT_ONLY, &d, &img,
                         &err);
  char *text = sm_dump_capture_end();
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_msg(has(text, "extern \"C\" __global__"), "%s", text);
  ck_assert_msg(has(text, "smelt_ctx"), "%s", text);
  if (nv) {
    ck_assert_msg(has(text, ".entry"), "%s", text);
    ck_assert_msg(has(text, ".target sm_80"), "%s", text);
    ck_assert(is_cubin(img.code, img.code_len));
    /* the PTX names each kernel */
    for (size_t k = 0; k < img.src.nkernels; k++) {
      char entry[64];
      snprintf(entry, sizeof entry, ".entry %s(", img.src.kernels[k].name);
      ck_assert_msg(has(text, entry), "no %s in the dump", entry);
    }
  }
  sm_free(text);
  sm_cuda_image_free(&img);
  /* the ptx stage alone, with PTX as the output: compiled once */
  if (nv) {
    d.stages = SM_DUMP_PTX;
    sm_dump_capture_begin(d.stages);
    ck_assert_int_eq(sm_cuda_build(g, n, roots, &o, 90, SM_NVRTC_PTX, &d, &img, &err), 0);
    text = sm_dump_capture_end();
    ck_assert_msg(has(text, ".target sm_90") && !has(text, "__global__"), "%s", text);
    ck_assert_str_eq(text, (const char *)img.code);
    sm_free(text);
    sm_cuda_image_free(&img);
  }
  /* nothing captured when the stages are not asked for */
  d.stages = 0;
  sm_dump_capture_begin(SM_DUMP_CUDA | SM_DUMP_PTX);
  ck_assert_int_eq(sm_cuda_build(g, n, roots, &o, 80, SM_CUDA_PRINT_ONLY, &d, &img, &err), 0);
  text = sm_dump_capture_end();
  ck_assert_ptr_null(text);
  sm_cuda_image_free(&img);
  free(roots);
  smelt_graph_free(g);
}
END_TEST

/* SMELT_DUMP=cuda,ptx with SMELT_DUMP_DIR: one file per stage. */
START_TEST(dump_files_cuda_and_ptx) {
  size_t n;
  uint32_t *roots;
  smelt_graph *g = dump_graph(&n, &roots);
  char dir[] = "/tmp/smelt-cuda-dump-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  smelt_compile_options o = cuda_options();
  bool nv = have_nvrtc();
  o.dump = nv ? "cuda,ptx" : "cuda";
  o.dump_dir = dir;
  sm_dump d;
  char *err = NULL;
  ck_assert_msg(sm_dump_init(&d, o.dump, o.dump_dir, &err) == 0, "%s", err);
  sm_cuda_image img;
  ck_assert_msg(sm_cuda_build(g, n, roots, &o, 90, nv ? SM_NVRTC_CUBIN : SM_CUDA_PRINT_ONLY, &d,
                              &img, &err) == 0,
                "%s", err);
  sm_cuda_image_free(&img);
  char path[256];
  size_t len;
  snprintf(path, sizeof path, "%s/p%u.cuda.cu", dir, d.program);
  char *cu = slurp(path, &len);
  ck_assert_msg(cu != NULL, "no %s", path);
  ck_assert_msg(has(cu, "extern \"C\" __global__"), "%s", cu);
  free(cu);
  snprintf(path, sizeof path, "%s/p%u.ptx.ptx", dir, d.program);
  char *ptx = slurp(path, &len);
  if (nv) {
    ck_assert_msg(ptx != NULL, "no %s", path);
    ck_assert_msg(has(ptx, ".entry") && has(ptx, ".target sm_90"), "%s", ptx);
  } else {
    ck_assert_ptr_null(ptx);
  }
  free(ptx);
  tu_rm_tree(dir);
  free(roots);
  smelt_graph_free(g);
}
END_TEST

/* Without NVRTC a PTX or cubin build fails with the stub's message, and
 * printing still works. With NVRTC, print-only needs no compile. */
START_TEST(print_only_and_stub) {
  size_t n;
  uint32_t *roots;
  smelt_graph *g = dump_graph(&n, &roots);
  smelt_compile_options o = cuda_options();
  sm_cuda_image img;
  char *err = NULL;
  ck_assert_msg(sm_cuda_build(g, n, roots, &o, 80, SM_CUDA_PRINT_ONLY, NULL, &img, &err) == 0, "%s",
                err);
  ck_assert_ptr_null(img.code);
  ck_assert_uint_eq(img.code_len, 0);
  ck_assert_uint_ge(img.src.nkernels, 2);
  ck_assert(has(img.src.text, "extern \"C\" __global__"));
  for (size_t k = 0; k < img.src.nkernels; k++) {
    const sm_cuda_kernel *kk = &img.src.kernels[k];
    ck_assert(has(img.src.text, kk->name));
    ck_assert_int_gt(kk->block, 0);
    ck_assert_ptr_nonnull(kk->strategy);
  }
  sm_cuda_image_free(&img);
  if (!sm_nvrtc_available()) {
    printf("NVRTC not available: checking the stub's message\n");
    for (int out = SM_NVRTC_PTX; out <= SM_NVRTC_CUBIN; out++) {
      ck_assert_int_eq(sm_cuda_build(g, n, roots, &o, 80, out, NULL, &img, &err), -1);
      ck_assert_msg(has(err, "built without NVRTC"), "%s", err);
      ck_assert_ptr_null(img.plan);
      sm_free(err);
    }
  }
  free(roots);
  smelt_graph_free(g);
}
END_TEST

/* A graph with no kernels builds to nothing, with or without NVRTC. */
START_TEST(no_kernels) {
  smelt_graph *g = TU_GRAPH();
  smelt_node x = in(g, "x", SMELT_F32, 1, TU_DIMS(8));
  out(g, "y", x);
  size_t n;
  uint32_t *roots = output_roots(g, &n);
  smelt_compile_options o = cuda_options();
  sm_cuda_image img;
  char *err = NULL;
  ck_assert_msg(sm_cuda_build(g, n, roots, &o, 80, SM_NVRTC_CUBIN, NULL, &img, &err) == 0, "%s",
                err);
  ck_assert_uint_eq(img.src.nkernels, 0);
  ck_assert_ptr_null(img.code);
  sm_cuda_image_free(&img);
  free(roots);
  smelt_graph_free(g);
}
END_TEST

/* Each allocation of a print-only build fails in turn: an error or the
 * same text, never a crash or a leak (ASan, valgrind). */
START_TEST(allocation_failures) {
  size_t n;
  uint32_t *roots;
  smelt_graph *g = dump_graph(&n, &roots);
  smelt_compile_options o = cuda_options();
  sm_cuda_image img;
  char *err = NULL;
  ck_assert_int_eq(sm_cuda_build(g, n, roots, &o, 80, SM_CUDA_PRINT_ONLY, NULL, &img, &err), 0);
  char *want = strdup(img.src.text);
  sm_cuda_image_free(&img);
  bool done = false;
  long k;
  for (k = 0; !done && k < 100000; k++) {
    sm_alloc_fail_after(k);
    int rc = sm_cuda_build(g, n, roots, &o, 80, SM_CUDA_PRINT_ONLY, NULL, &img, &err);
    sm_alloc_fail_after(-1);
    if (rc == 0) {
      ck_assert_str_eq(img.src.text, want);
      sm_cuda_image_free(&img);
      done = true;
    } else {
      ck_assert_ptr_null(img.plan);
      ck_assert_ptr_null(img.src.text);
      sm_free(err);
    }
  }
  ck_assert_msg(done, "never succeeded");
  if (verbose()) printf("allocation_failures: succeeded after %ld failing allocations\n", k - 1);
  free(want);
  free(roots);
  smelt_graph_free(g);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("cuda");
  /* NVRTC takes 0.1-1 s per compile: more than Check's default 4 s */
  TCase *t = tcase_create("graph_files");
  tcase_set_timeout(t, 300);
  tcase_add_test(t, graph_files);
  suite_add_tcase(s, t);
  t = tcase_create("built");
  tcase_set_timeout(t, 120);
  tcase_add_loop_test(t, built_graphs, 0, NCASES);
  tcase_add_test(t, serial_hand_built);
  tcase_add_test(t, every_strategy_reached);
  tcase_add_test(t, vector_path);
  tcase_add_test(t, op_tables);
  suite_add_tcase(s, t);
  t = tcase_create("errors_and_dumps");
  tcase_set_timeout(t, 120);
  tcase_add_test(t, bad_arch_lists_supported);
  tcase_add_test(t, dump_capture_cuda_and_ptx);
  tcase_add_test(t, dump_files_cuda_and_ptx);
  tcase_add_test(t, print_only_and_stub);
  tcase_add_test(t, no_kernels);
  tcase_add_test(t, allocation_failures);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
