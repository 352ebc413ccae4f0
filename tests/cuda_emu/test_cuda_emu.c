/* The cuda_emu suite: the CUDA C that codegen/cuda.c prints, run on the
 * CPU through a CUDA emulation layer (tests/cuda_emu/emu.h) and compared
 * with the reference interpreter. No GPU is needed.
 *
 * For each graph: plan it as the cpu and cuda targets do (sm_plan_new),
 * print the kernels (sm_cuda_emit), append one extern "C" trampoline per
 * kernel (the generated kernels take a varying number of typed pointers),
 * compile the translation unit as host C++ into a shared object with the
 * C++ compiler found when the tests were built (-include emu.h), dlopen
 * it, and run the plan as runtime/cuda.c does: buffers placed as
 * sm_cpu_run places them, one shared scratch zeroed once (kernels must
 * leave it zeroed), accumulating outputs zeroed before their launch, the
 * run context checked after each kernel. Each graph runs twice: training
 * at draw number 0 with grid-stride kernels on 3 blocks along x (their
 * contract: any number of blocks works), then not training at draw
 * number 1 with every kernel on its full grid (grid-stride ones on at
 * most 64 blocks along x). Each time every root must equal the
 * interpreter's value (floats within 1e-5 relative for f32 and 1e-10 for
 * f64 that no f32 math feeds, integers and bools exactly), or both sides
 * must fail with the same index error.
 *
 * Buffers are checked too: results and the arena start filled with 0xff
 * bytes (NaN, -1: a kernel that reads what it never wrote shows), every
 * buffer has a guard area after its end that must stay untouched, and
 * inputs, params and constants must not change.
 *
 * Environment: CUDA_EMU_CXX overrides the compiler (empty: the suite is
 * skipped), CUDA_EMU_KEEP=1 keeps each graph's directory (gen.cu, the
 * compiler's log) and prints its path, CUDA_EMU_VERBOSE=1 prints each
 * kernel's strategy and grid and each graph's times, CUDA_EMU_ONLY=NAME
 * runs only that case, CUDA_EMU_GRAPH=FILE.smelt runs that graph instead
 * of the cases (inputs from FILE.NAME.npy next to it, as difftest --save
 * writes them, else named as fill_input describes), CUDA_EMU_SCRATCH=
 * ignore does not check that kernels leave the scratch zeroed (as the
 * runtime, which only trusts it) and =zero zeroes it after every kernel. */
#include <check.h>
#include <dlfcn.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../codegen/cuda.h"
#include "../../runtime/plan.h"
#include "internal.h"
#include "npy.h"

#ifndef CUDA_EMU_CXX
#define CUDA_EMU_CXX ""
#endif
#ifndef CUDA_EMU_CXXFLAGS
#define CUDA_EMU_CXXFLAGS ""
#endif
#ifndef CUDA_EMU_DIR
#define CUDA_EMU_DIR "."
#endif

/* Blocks along x of grid-stride kernels: in the first run, and at most in
 * the second (every block costs a few milliseconds: its threads are real
 * threads, and a grid-stride kernel computes the same on any grid). */
enum { FEW_BLOCKS = 3, MAX_BLOCKS = 64 };
/* Every buffer is a multiple of this, plus a guard area of as much. */
enum { PAD = 256 };

static const char *cxx(void) {
  const char *e = getenv("CUDA_EMU_CXX");
  return e ? e : CUDA_EMU_CXX;
}

static bool env_on(const char *name) {
  const char *e = getenv(name);
  return e && *e && strcmp(e, "0") != 0;
}

/* ------------------------------------------------------------ buffers */

static size_t padded(size_t n) { return (n + PAD - 1) / PAD * PAD + PAD; }

/* n bytes (copied from init, else filled with fill), then a guard area of
 * 0xa5 bytes up to padded(n). */
static void *buf_new(size_t n, const void *init, int fill) {
  unsigned char *p = aligned_alloc(PAD, padded(n));
  ck_assert_ptr_nonnull(p);
  if (init && n) memcpy(p, init, n);
  else memset(p, fill, n);
  memset(p + n, 0xa5, padded(n) - n);
  return p;
}

/* The first byte of the guard area that changed, or -1. */
static long buf_guard(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = n; i < padded(n); i++)
    if (b[i] != 0xa5) return (long)(i - n);
  return -1;
}

/* ---------------------------------------------------------- input data */

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Input data from the input's name (deterministic):
 *   ixN...   integers in [0, N) (indices)
 *   badN...  indices in [0, N) except element 5, which is N
 *   negN...  indices in [0, N) except element 5, which is -1
 *   sp...    floats: specials first (NaN, infinities, zeros, values just
 *            inside and outside the integer ranges), then as default
 *   ie...    integers: extremes first, then values over the whole range
 *   tie...   floats: small integers 0..40, so maxima repeat
 *   tienan.. the same with NaN at elements n/4 + 1 and 2n/3
 *   pos...   floats in [0.5, 4.5)
 *   default  floats k/256 in [-3.9, 3.9], integers 0..2, bools at random */
static void fill_input(const char *name, smelt_dtype dt, int64_t n, void *out) {
  uint64_t s = 1469598103934665603ull;
  for (const char *c = name; *c; c++) s = (s ^ (unsigned char)*c) * 1099511628211ull;
  uint64_t shift = s; /* two ie.. inputs meet their extremes in different pairs */
  static const double specials[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5,
                                    2.5, -2.5, 2147483520.0, 2147483648.0, -2147483648.0,
                                    -2147483904.0, 3e9, -3e9, 9.2233715e18, 9.3e18, -9.3e18,
                                    1e30, -1e30, 1e-45, -1e-40, 65504.0, 16777217.0, 1e300};
  static const int64_t extremes[] = {INT32_MIN, INT32_MAX, INT64_MIN, INT64_MAX, -1, 0, 1, 2,
                                     -2, 3, 46341, -46341, 65536, 3037000500LL, 4294967296LL};
  const int nsp = (int)(sizeof specials / sizeof *specials);
  const int nex = (int)(sizeof extremes / sizeof *extremes);
  long lim = 0;
  bool ix = sscanf(name, "ix%ld", &lim) == 1 && lim > 0;
  bool bad = sscanf(name, "bad%ld", &lim) == 1 && lim > 0;
  bool neg = sscanf(name, "neg%ld", &lim) == 1 && lim > 0;
  for (int64_t i = 0; i < n; i++) {
    uint64_t r = splitmix(&s);
    double f = ((double)(r % 2001) - 1000.0) / 256.0;
    int64_t v = dt == SMELT_BOOL ? (int64_t)(r & 1) : (int64_t)(r % 3);
    if (ix || bad || neg)
      v = i == 5 && bad ? lim : i == 5 && neg ? -1 : (int64_t)(r % (uint64_t)lim);
    else if (!strncmp(name, "ie", 2))
      v = i < nex ? extremes[(i + (int64_t)(shift % nex)) % nex] : (int64_t)r;
    else if (!strncmp(name, "sp", 2) && i < nsp) f = specials[i];
    else if (!strncmp(name, "tienan", 6) && (i == n / 4 + 1 || i == 2 * n / 3)) f = NAN;
    else if (!strncmp(name, "tie", 3)) f = (double)(r % 41);
    else if (!strncmp(name, "pos", 3)) f = 0.5 + (double)(r % 1024) / 256.0;
    switch (dt) {
    case SMELT_F32: /* beyond the float range: infinity (a plain conversion is undefined) */
      ((float *)out)[i] =
          fabs(f) > FLT_MAX && isfinite(f) ? (f < 0 ? -INFINITY : INFINITY) : (float)f;
      break;
    case SMELT_F64: ((double *)out)[i] = f; break;
    case SMELT_I32: ((int32_t *)out)[i] = (int32_t)(uint32_t)(uint64_t)v; break; /* wraps */
    case SMELT_I64: ((int64_t *)out)[i] = v; break;
    default: ((uint8_t *)out)[i] = v != 0; break;
    }
  }
}

/* ------------------------------------------------------------- a case */

typedef struct emu_case {
  const char *name;
  const char *text;       /* the graph, or NULL: file */
  const char *file;       /* a file of tests/graphs */
  const char *strategies; /* each of these (comma-separated) must be printed */
  const char *error;      /* the interpreter's error contains this: both must fail */
  const char *source;     /* the printed source contains this ("!...": does not) */
} emu_case;

/* One graph: what both sides need. */
typedef struct emu_graph {
  smelt_graph *g;
  size_t nroots;
  uint32_t *roots;  /* node indices of g: every output of the graph */
  void **inputs;    /* per node of g: input data (padded) */
  void **params;    /* per node of g: param data (padded) */
  size_t *in_bytes; /* per node of g: bytes of inputs and params */
} emu_graph;

/* Reads input `name` of a graph file from FILE.name.npy next to it (as
 * difftest --save writes them) when there is one. */
static bool read_npy_input(const char *graph_path, const sm_node *n, void *data) {
  char path[4200];
  size_t len = strlen(graph_path);
  if (len > 6 && !strcmp(graph_path + len - 6, ".smelt")) len -= 6;
  snprintf(path, sizeof path, "%.*s.%s.npy", (int)len, graph_path, n->name);
  if (access(path, R_OK)) return false;
  sm_npy a;
  char err[512];
  ck_assert_msg(!sm_npy_read_file(path, &a, err, sizeof err), "%s", err);
  ck_assert_msg(a.dtype == n->dtype && a.nbytes == sm_plan_node_bytes(n),
                "%s: not a %s input of %" PRId64 " elements", path,
                smelt_dtype_name((smelt_dtype)n->dtype), sm_numel(n->rank, n->shape));
  memcpy(data, a.data, a.nbytes);
  sm_npy_free(&a);
  return true;
}

static void graph_load(emu_graph *eg, const emu_case *c) {
  memset(eg, 0, sizeof *eg);
  char errbuf[512] = "", path[4096] = "";
  if (c->text) {
    eg->g = smelt_graph_parse(c->text, strlen(c->text), c->name, errbuf, sizeof errbuf);
  } else {
    const char *dir = getenv("SMELT_TEST_GRAPHS");
    if (c->file[0] == '/') snprintf(path, sizeof path, "%s", c->file);
    else if (dir && *dir) snprintf(path, sizeof path, "%s/%s", dir, c->file);
    else snprintf(path, sizeof path, "%s/../graphs/%s", CUDA_EMU_DIR, c->file);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: cannot open it (SMELT_TEST_GRAPHS names the directory)", path);
    char *text = NULL;
    size_t len = 0, cap = 0, got;
    do {
      if (len + 4096 > cap) text = realloc(text, cap = 2 * cap + 4096);
      ck_assert_ptr_nonnull(text);
      got = fread(text + len, 1, cap - len, f);
      len += got;
    } while (got);
    fclose(f);
    eg->g = smelt_graph_parse(text, len, path, errbuf, sizeof errbuf);
    free(text);
  }
  ck_assert_msg(eg->g != NULL, "%s: %s", c->name, errbuf);
  ck_assert_msg(!smelt_graph_error(eg->g), "%s: %s", c->name, smelt_graph_error(eg->g));
  const smelt_graph *g = eg->g;
  eg->nroots = smelt_graph_output_count(g);
  eg->roots = calloc(eg->nroots + 1, sizeof *eg->roots);
  for (size_t k = 0; k < eg->nroots; k++) eg->roots[k] = smelt_graph_output(g, k, NULL).index - 1;
  eg->inputs = calloc(g->nnodes + 1, sizeof *eg->inputs);
  eg->params = calloc(g->nnodes + 1, sizeof *eg->params);
  eg->in_bytes = calloc(g->nnodes + 1, sizeof *eg->in_bytes);
  smelt_params *ps = smelt_params_new(g);
  ck_assert_msg(ps && !smelt_params_error(ps), "params: %s", ps ? smelt_params_error(ps) : "oom");
  for (size_t i = 0; i < g->nnodes; i++) {
    const sm_node *n = &g->nodes[i];
    if (n->op != OP_INPUT && n->op != OP_PARAM) continue;
    size_t nb = sm_plan_node_bytes(n);
    eg->in_bytes[i] = nb;
    void *data = malloc(nb + 1);
    if (n->op == OP_INPUT) {
      if (!path[0] || !read_npy_input(path, n, data))
        fill_input(n->name, (smelt_dtype)n->dtype, sm_numel(n->rank, n->shape), data);
      eg->inputs[i] = buf_new(nb, data, 0);
    } else {
      ck_assert_msg(!smelt_params_read(ps, n->name, (smelt_dtype)n->dtype, data, nb),
                    "param %s: %s", n->name, smelt_params_error(ps));
      eg->params[i] = buf_new(nb, data, 0);
    }
    free(data);
  }
  smelt_params_free(ps);
}

static void graph_free(emu_graph *eg) {
  for (size_t i = 0; eg->g && i < eg->g->nnodes; i++) free(eg->inputs[i]), free(eg->params[i]);
  free(eg->inputs), free(eg->params), free(eg->in_bytes), free(eg->roots);
  smelt_graph_free(eg->g);
}

/* The interpreter's values of the roots (malloc'ed per root), or NULL with
 * its error in *err (malloc'ed). */
static void **oracle(const emu_graph *eg, bool training, uint64_t step, char **err) {
  const smelt_graph *g = eg->g;
  *err = NULL;
  smelt_interp *it = smelt_interp_new(g);
  ck_assert_ptr_nonnull(it);
  for (size_t i = 0; i < g->nnodes; i++) {
    const sm_node *n = &g->nodes[i];
    if (n->op != OP_INPUT) continue;
    ck_assert_msg(!smelt_interp_bind(it, n->name, (smelt_dtype)n->dtype, n->rank, n->shape,
                                     eg->inputs[i], eg->in_bytes[i]),
                  "bind %s: %s", n->name, smelt_interp_error(it));
  }
  sm_run_opts opts = {(const void *const *)eg->params, training, step, false};
  void **want = NULL;
  if (sm_interp_run_roots(it, eg->nroots, eg->roots, &opts)) {
    *err = strdup(smelt_interp_error(it));
  } else {
    want = calloc(eg->nroots + 1, sizeof *want);
    for (size_t k = 0; k < eg->nroots; k++) {
      want[k] = malloc(sm_plan_node_bytes(&g->nodes[eg->roots[k]]) + 1);
      sm_interp_read_root(it, k, eg->roots[k], want[k]);
    }
  }
  smelt_interp_free(it);
  return want;
}

/* ------------------------------------------------ compiling the source */

typedef int (*emu_call)(void *const *args, void *ctx, char *scratch, const long long *grid,
                        int block);

typedef struct emu_prog {
  sm_plan *plan;
  sm_cuda_source src;
  void *so;
  emu_call *calls;
  char dir[64];
} emu_prog;

static const char *mem_type(smelt_dtype dt) {
  switch (dt) {
  case SMELT_F32: return "float";
  case SMELT_F64: return "double";
  case SMELT_I32: return "int";
  case SMELT_I64: return "long long";
  default: return "unsigned char";
  }
}

/* The generated source plus one trampoline per kernel:
 *   extern "C" int emu_call_k3(void *const *a, void *ctx, char *scratch,
 *                              const long long *grid, int block)
 * launching k3 with its args cast to the types of its signature. */
static char *full_source(sm_kernel *const *ks, size_t n, const sm_cuda_source *src) {
  sm_buf b = {0};
  sm_buf_puts(&b, src->text);
  sm_buf_puts(&b, "\n/* ---- trampolines added by tests/cuda_emu ---- */\n");
  for (size_t s = 0; s < n; s++) {
    const sm_kernel *k = ks[s];
    sm_buf_printf(&b,
                  "extern \"C\" int emu_call_%s(void *const *a, void *ctx, char *scratch,\n"
                  "                             const long long *grid, int block) {\n"
                  "  return emu_launch(\"%s\", grid, block, [&] {\n    %s(",
                  k->name, k->name, k->name);
    for (int a = 0; a < k->nargs; a++)
      sm_buf_printf(&b, "(%s%s *)a[%d], ", k->args[a].role == KA_IN ? "const " : "",
                    mem_type((smelt_dtype)k->args[a].dtype), a);
    sm_buf_puts(&b, "(smelt_ctx *)ctx, scratch);\n  });\n}\n");
  }
  char *t = sm_buf_take(&b);
  ck_assert_ptr_nonnull(t);
  return t;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "cannot write %s", path);
  ck_assert(fwrite(text, 1, strlen(text), f) == strlen(text));
  ck_assert(fclose(f) == 0);
}

static char *read_head(const char *path, size_t max) {
  char *s = calloc(max + 1, 1);
  FILE *f = fopen(path, "rb");
  if (f) {
    size_t n = fread(s, 1, max, f);
    s[n] = 0;
    fclose(f);
  }
  return s;
}

/* Compiles source (a path) into dir/gen.so and loads it. */
static void *compile_and_load(const char *source, const char *dir) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd,
           "%s -std=c++17 -O1 -fPIC -shared -pthread -ffp-contract=off -fno-strict-aliasing "
           "-Wl,-Bsymbolic %s "
           "-include '%s/emu.h' -x c++ '%s' -o '%s/gen.so' > '%s/cc.log' 2>&1",
           cxx(), CUDA_EMU_CXXFLAGS, CUDA_EMU_DIR, source, dir, dir);
  int rc = system(cmd);
  if (rc != 0) {
    char log[4096];
    snprintf(log, sizeof log, "%s/cc.log", dir);
    char *head = read_head(log, 3000);
    ck_abort_msg("%s does not compile as host C++ (%s, status %d):\n%s\n(set CUDA_EMU_KEEP=1 to "
                 "keep it)",
                 source, cxx(), rc, head);
  }
  char so[256];
  snprintf(so, sizeof so, "%s/gen.so", dir);
  void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  ck_assert_msg(h != NULL, "dlopen %s: %s", so, dlerror());
  return h;
}

static void remove_dir(const char *dir) {
  static const char *files[] = {"gen.cu", "gen.so", "cc.log"};
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, files[i]);
    unlink(p);
  }
  rmdir(dir);
}

/* Plans, prints, compiles and loads the graph's roots; checks that every
 * expected strategy was printed. */
static void prog_build(emu_prog *ep, const emu_graph *eg, const emu_case *c) {
  memset(ep, 0, sizeof *ep);
  smelt_compile_options o = smelt_compile_defaults();
  o.dump = NULL;
  o.cache_dir = NULL;
  sm_dump dump;
  char *err = NULL;
  ck_assert(!sm_dump_init(&dump, NULL, NULL, &err));
  ep->plan = sm_plan_new(eg->g, eg->nroots, eg->roots, NULL, &o, &dump, &err);
  ck_assert_msg(ep->plan != NULL, "%s: planning: %s", c->name, err ? err : "out of memory");
  const sm_plan *p = ep->plan;
  sm_kernel **ks = calloc(p->nkernels + 1, sizeof *ks);
  for (size_t s = 0; s < p->nkernels; s++) ks[s] = p->kernels[s].k;
  int rc = sm_cuda_emit(ks, p->nkernels, &ep->src, &err);
  ck_assert_msg(rc == 0, "%s: sm_cuda_emit: %s", c->name, err ? err : "out of memory");
  /* the strategies this graph must exercise */
  char printed[1024] = "";
  for (size_t s = 0; s < p->nkernels; s++) {
    const sm_cuda_kernel *ck = &ep->src.kernels[s];
    if (strlen(printed) + strlen(ck->strategy) + 2 < sizeof printed)
      strcat(strcat(printed, ck->strategy), " ");
    if (env_on("CUDA_EMU_VERBOSE"))
      printf("%s: %s: %s, block %d, grid [%" PRId64 ",%" PRId64 ",%" PRId64 "]%s, scratch %zu\n",
             c->name, ck->name, ck->strategy, ck->block, ck->grid[0], ck->grid[1], ck->grid[2],
             ck->grid_stride ? " (grid-stride)" : "", ck->scratch_bytes);
  }
  for (const char *w = c->strategies; w && *w;) {
    size_t n = strcspn(w, ",");
    bool found = false;
    for (size_t s = 0; s < p->nkernels && !found; s++) {
      const char *st = ep->src.kernels[s].strategy;
      found = strlen(st) == n && !strncmp(st, w, n);
    }
    ck_assert_msg(found, "%s: no kernel printed as %.*s (printed: %s)", c->name, (int)n, w,
                  printed);
    w += n + (w[n] == ',');
  }
  if (c->source) {
    bool lacks = c->source[0] == '!';
    const char *piece = c->source + lacks;
    ck_assert_msg((strstr(ep->src.text, piece) == NULL) == lacks, "%s: the source %s \"%s\"",
                  c->name, lacks ? "has" : "lacks", piece);
  }
  snprintf(ep->dir, sizeof ep->dir, "/tmp/smelt-cuda-emu-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(ep->dir));
  char path[256];
  snprintf(path, sizeof path, "%s/gen.cu", ep->dir);
  char *text = full_source(ks, p->nkernels, &ep->src);
  write_file(path, text);
  free(text);
  free(ks);
  if (env_on("CUDA_EMU_KEEP")) printf("%s: %s/gen.cu\n", c->name, ep->dir);
  ep->so = compile_and_load(path, ep->dir);
  ep->calls = calloc(p->nkernels + 1, sizeof *ep->calls);
  for (size_t s = 0; s < p->nkernels; s++) {
    char sym[64];
    snprintf(sym, sizeof sym, "emu_call_%s", p->kernels[s].k->name);
    *(void **)&ep->calls[s] = dlsym(ep->so, sym);
    ck_assert_msg(ep->calls[s] != NULL, "%s: no %s in the shared object", c->name, sym);
  }
}

static void prog_free(emu_prog *ep) {
  if (ep->so) dlclose(ep->so);
  if (ep->dir[0] && !env_on("CUDA_EMU_KEEP")) remove_dir(ep->dir);
  free(ep->calls);
  sm_cuda_source_free(&ep->src);
  sm_plan_free(ep->plan);
}

/* ------------------------------------------------------------- running */

/* Runs the plan as runtime/cuda.c does. results: per root (padded). 0, or
 * -1 with a message in err (an index error, recorded in ctx). Buffer
 * misuse fails the test. */
static int prog_run(const emu_prog *ep, const emu_graph *eg, const char *what, bool training,
                    uint64_t step, bool full_grid, void **results, char *scratch,
                    size_t scratch_bytes, char *err, size_t errcap) {
  const sm_plan *p = ep->plan;
  const smelt_graph *g = p->opt;
  void **consts = calloc(g->nnodes + 1, sizeof *consts);
  for (size_t i = 0; i < g->nnodes; i++)
    if (p->bufs[i].kind == SM_BUF_CONST)
      consts[i] = buf_new(sm_plan_node_bytes(&g->nodes[i]), g->nodes[i].data, 0);
  char *arena = buf_new(p->arena_bytes, NULL, 0xff);
  int maxargs = 1;
  for (size_t s = 0; s < p->nkernels; s++)
    if (p->kernels[s].k->nargs > maxargs) maxargs = p->kernels[s].k->nargs;
  void **args = calloc((size_t)maxargs, sizeof *args);
  sm_kctx ctx = {step, training, 0, 0, 0};
  int rc = 0;
  for (size_t s = 0; s < p->nkernels && !rc; s++) {
    const sm_plan_kernel *pk = &p->kernels[s];
    const sm_kernel *k = pk->k;
    const sm_cuda_kernel *ck = &ep->src.kernels[s];
    for (int a = 0; a < k->nargs; a++) {
      const sm_karg *arg = &k->args[a];
      if (arg->role == KA_SCRATCH) {
        args[a] = arena + pk->scratch_off[a];
        continue;
      }
      const sm_buf_info *b = &p->bufs[arg->node];
      switch (b->kind) {
      case SM_BUF_INPUT: args[a] = eg->inputs[b->orig]; break;
      case SM_BUF_PARAM: args[a] = eg->params[b->orig]; break;
      case SM_BUF_CONST: args[a] = consts[arg->node]; break;
      case SM_BUF_RESULT: args[a] = results[b->root]; break;
      case SM_BUF_ARENA: args[a] = arena + b->offset; break;
      case SM_BUF_NONE: args[a] = NULL; break;
      }
      ck_assert_msg(args[a] != NULL || arg->numel == 0, "%s: kernel %s: arg %d has no buffer",
                    what, k->name, a);
    }
    for (int z = 0; z < ck->nzero; z++) {
      const sm_karg *arg = &k->args[ck->zero_args[z]];
      memset(args[ck->zero_args[z]], 0, (size_t)arg->numel * smelt_dtype_size(arg->dtype));
    }
    long long grid[3] = {ck->grid[0], ck->grid[1], ck->grid[2]};
    if (grid[0] <= 0 || grid[1] <= 0 || grid[2] <= 0) continue;
    long long cap = full_grid ? MAX_BLOCKS : FEW_BLOCKS;
    if (ck->grid_stride && grid[0] > cap) grid[0] = cap;
    ck_assert_msg(ep->calls[s](args, &ctx, scratch, grid, ck->block) == 0,
                  "%s: kernel %s: the emulator refused the launch (see stderr)", what, k->name);
    const char *sm = getenv("CUDA_EMU_SCRATCH");
    if (sm && !strcmp(sm, "zero")) memset(scratch, 0, scratch_bytes);
    for (size_t i = 0; i < scratch_bytes && !(sm && *sm); i++)
      ck_assert_msg(scratch[i] == 0,
                    "%s: kernel %s (%s) left byte %zu of the scratch (%zu bytes) nonzero: "
                    "kernels must leave it zeroed (codegen/cuda.h), a later kernel's counters "
                    "may lie there",
                    what, k->name, ck->strategy, i, scratch_bytes);
    if (ctx.error) {
      snprintf(err, errcap,
               "%s: index %" PRId64 " is out of range for a dimension of size %" PRId64
               " (kernel %s)",
               sm_plan_check_op(p, s), ctx.bad_index, ctx.bad_bound, k->name);
      rc = -1;
    }
  }
  /* roots not written by a kernel (as sm_cpu_run) */
  for (size_t k = 0; k < p->nroots && !rc; k++) {
    uint32_t n = p->roots[k];
    const sm_buf_info *b = &p->bufs[n];
    size_t nb = sm_plan_node_bytes(&g->nodes[n]);
    const void *src = NULL;
    switch (b->kind) {
    case SM_BUF_INPUT: src = eg->inputs[b->orig]; break;
    case SM_BUF_PARAM: src = eg->params[b->orig]; break;
    case SM_BUF_CONST: src = consts[n]; break;
    case SM_BUF_RESULT: src = b->root == k ? NULL : results[b->root]; break;
    case SM_BUF_ARENA: src = arena + b->offset; break;
    case SM_BUF_NONE: break;
    }
    if (src && nb) memcpy(results[k], src, nb);
  }
  /* nothing written out of bounds, nothing read-only written */
  long at = buf_guard(arena, p->arena_bytes);
  ck_assert_msg(at < 0, "%s: a kernel wrote %ld bytes past the arena's end", what, at + 1);
  for (size_t i = 0; i < g->nnodes; i++) {
    if (!consts[i]) continue;
    size_t nb = sm_plan_node_bytes(&g->nodes[i]);
    ck_assert_msg(!memcmp(consts[i], g->nodes[i].data, nb) && buf_guard(consts[i], nb) < 0,
                  "%s: a kernel wrote into a constant", what);
    free(consts[i]);
  }
  free(consts);
  free(arena);
  free(args);
  return rc;
}

/* ------------------------------------------------------------ comparing */

static double elem(smelt_dtype dt, const void *p, int64_t i) {
  switch (dt) {
  case SMELT_F32: return ((const float *)p)[i];
  case SMELT_F64: return ((const double *)p)[i];
  case SMELT_I32: return ((const int32_t *)p)[i];
  case SMELT_I64: return (double)((const int64_t *)p)[i];
  default: return ((const uint8_t *)p)[i];
  }
}

static bool float_ok(double x, double w, double rtol, double big) {
  if (isnan(w) || isnan(x)) return isnan(w) && isnan(x);
  if (isinf(w) || isinf(x)) return x == w;
  return fabs(x - w) <= rtol * fabs(w) + 0.1 * rtol * big;
}

/* Whether node `root`'s value depends on an f32 value that was computed
 * (rounded in f32: transcendentals there may differ by an ulp from the
 * interpreter's). */
static bool uses_f32_math(const smelt_graph *g, uint32_t root) {
  bool *seen = calloc(g->nnodes + 1, 1), found = false;
  seen[root] = true;
  for (size_t i = root + 1; i-- > 0 && !found;) {
    if (!seen[i]) continue;
    const sm_node *n = &g->nodes[i];
    found = n->dtype == SMELT_F32 && n->ninputs > 0;
    for (uint32_t j = 0; j < n->ninputs; j++) seen[n->inputs[j]] = true;
  }
  free(seen);
  return found;
}

/* Root k: floats within rtol (relative to the element, plus a tenth of
 * that relative to the largest magnitude of the output, for cancellation
 * near zero), NaN only as NaN; integers and bools bit for bit. rtol is
 * 1e-5 for f32, 1e-10 for f64 unless f32 math went into it (then 1e-5). */
static void compare_root(const emu_graph *eg, size_t k, const void *got, const void *want,
                         const char *what) {
  const sm_node *n = &eg->g->nodes[eg->roots[k]];
  smelt_dtype dt = (smelt_dtype)n->dtype;
  int64_t count = sm_numel(n->rank, n->shape);
  const char *oname = NULL;
  smelt_graph_output(eg->g, k, &oname);
  if (!sm_is_float(dt)) {
    size_t es = smelt_dtype_size(dt);
    for (int64_t i = 0; i < count; i++) {
      if (!memcmp((const char *)got + i * es, (const char *)want + i * es, es)) continue;
      int64_t bad = 0;
      for (int64_t j = i; j < count; j++)
        bad += memcmp((const char *)got + j * es, (const char *)want + j * es, es) != 0;
      if (dt == SMELT_I64)
        ck_abort_msg("%s: output %s (%s, %" PRId64 " elements): [%" PRId64 "] got %" PRId64
                     ", want %" PRId64 " (%" PRId64 " elements differ)",
                     what, oname, smelt_dtype_name(dt), count, i, ((const int64_t *)got)[i],
                     ((const int64_t *)want)[i], bad);
      ck_abort_msg("%s: output %s (%s, %" PRId64 " elements): [%" PRId64 "] got %.17g, want "
                   "%.17g (%" PRId64 " elements differ)",
                   what, oname, smelt_dtype_name(dt), count, i, elem(dt, got, i),
                   elem(dt, want, i), bad);
    }
    return;
  }
  double rtol = dt == SMELT_F32 || uses_f32_math(eg->g, eg->roots[k]) ? 1e-5 : 1e-10, big = 0;
  for (int64_t i = 0; i < count; i++) {
    double w = fabs(elem(dt, want, i));
    if (isfinite(w) && w > big) big = w;
  }
  for (int64_t i = 0; i < count; i++) {
    double x = elem(dt, got, i), w = elem(dt, want, i);
    if (float_ok(x, w, rtol, big)) continue;
    int64_t bad = 0;
    for (int64_t j = i; j < count; j++)
      bad += !float_ok(elem(dt, got, j), elem(dt, want, j), rtol, big);
    ck_abort_msg("%s: output %s (%s, %" PRId64 " elements): [%" PRId64 "] got %.9g, want %.9g "
                 "(%" PRId64 " elements differ)",
                 what, oname, smelt_dtype_name(dt), count, i, x, w, bad);
  }
}

/* The "index N" and "size M" of an index error message. */
static bool index_error(const char *msg, int64_t *index, int64_t *size) {
  const char *i = strstr(msg, "index "), *s = strstr(msg, "size ");
  return i && s && sscanf(i, "index %" SCNd64, index) == 1 &&
         sscanf(s, "size %" SCNd64, size) == 1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_case(const emu_case *c) {
  if (!*cxx()) return; /* main skips the suite */
  const char *only = getenv("CUDA_EMU_ONLY");
  if (only && *only && strcmp(only, c->name) != 0) return;
  double t0 = now_s();
  emu_graph eg;
  graph_load(&eg, c);
  emu_prog ep;
  prog_build(&ep, &eg, c);
  double t1 = now_s();
  const sm_plan *p = ep.plan;
  size_t scratch_bytes = 0;
  for (size_t s = 0; s < p->nkernels; s++)
    if (ep.src.kernels[s].scratch_bytes > scratch_bytes)
      scratch_bytes = ep.src.kernels[s].scratch_bytes;
  /* one scratch for every kernel and both runs, zeroed once */
  char *scratch = buf_new(scratch_bytes, NULL, 0);
  for (int run = 0; run < 2; run++) {
    bool full = run == 1, training = run == 0;
    char what[160];
    snprintf(what, sizeof what, "%s, run %d (%s)", c->name, run,
             full ? "full grids, not training" : "grid-stride kernels on 3 blocks, training");
    char *ierr = NULL;
    void **want = oracle(&eg, training, (uint64_t)run, &ierr);
    void **got = calloc(eg.nroots + 1, sizeof *got);
    for (size_t k = 0; k < eg.nroots; k++)
      got[k] = buf_new(sm_plan_node_bytes(&eg.g->nodes[eg.roots[k]]), NULL, 0xff);
    char err[512] = "";
    int rc = prog_run(&ep, &eg, what, training, (uint64_t)run, full, got, scratch, scratch_bytes,
                      err, sizeof err);
    /* a graph file (CUDA_EMU_GRAPH) may fail on an index: then both must */
    const char *expect = c->error ? c->error
                         : !c->text && ierr && strstr(ierr, "out of range") ? "out of range"
                                                                             : NULL;
    if (expect) {
      ck_assert_msg(ierr && strstr(ierr, expect),
                    "%s: the interpreter should fail with \"%s\": %s", what, expect,
                    ierr ? ierr : "it ran");
      ck_assert_msg(rc != 0, "%s: the interpreter failed (%s), the emulated kernels did not", what,
                    ierr);
      int64_t wi, ws, gi, gs;
      ck_assert(index_error(ierr, &wi, &ws));
      ck_assert(index_error(err, &gi, &gs));
      ck_assert_msg(wi == gi && ws == gs,
                    "%s: the error differs: interpreter \"%s\", emulated \"%s\"", what, ierr,
                    err);
    } else {
      ck_assert_msg(!ierr, "%s: the interpreter failed: %s", what, ierr);
      ck_assert_msg(rc == 0, "%s: %s", what, err);
      for (size_t k = 0; k < eg.nroots; k++) {
        size_t nb = sm_plan_node_bytes(&eg.g->nodes[eg.roots[k]]);
        long at = buf_guard(got[k], nb);
        ck_assert_msg(at < 0, "%s: root %zu: a kernel wrote %ld bytes past its end", what, k,
                      at + 1);
        compare_root(&eg, k, got[k], want[k], what);
      }
    }
    for (size_t i = 0; i < eg.g->nnodes; i++) {
      void *d = eg.inputs[i] ? eg.inputs[i] : eg.params[i];
      if (d)
        ck_assert_msg(buf_guard(d, eg.in_bytes[i]) < 0, "%s: a kernel wrote past input or param %s",
                      what, eg.g->nodes[i].name);
    }
    for (size_t k = 0; k < eg.nroots; k++) free(got[k]), free(want ? want[k] : NULL);
    free(got), free(want), free(ierr);
  }
  free(scratch);
  prog_free(&ep);
  graph_free(&eg);
  if (env_on("CUDA_EMU_VERBOSE"))
    printf("%s: %.2f s to build, %.2f s to run\n", c->name, t1 - t0, now_s() - t1);
}

/* ---------------------------------------------------------------- cases */

/* Input names choose their data (fill_input): sp.. specials, ie.. integer
 * extremes, ixN.. indices below N, badN.. one index out of range, tie..
 * repeated maxima, tienan.. with NaN, pos.. positive floats. */
static const emu_case cases[] = {
    /* the graphs of tests/graphs */
    {"canonical_basic", NULL, "canonical_basic.smelt", "thread-reduce,tiled-matmul", NULL, NULL},
    {"canonical_mlp", NULL, "canonical_mlp.smelt", NULL, NULL, NULL},
    {"mlp", NULL, "mlp.smelt", NULL, NULL, NULL},
    {"sources", NULL, "sources.smelt", NULL, NULL, NULL},
    {"tutorial", NULL, "tutorial.smelt", NULL, NULL, NULL},
    {"views", NULL, "views.smelt", NULL, NULL, NULL},

    /* elementwise math: every unary and binary float op, specials included */
    {"pointwise_f32",
     "input %sp : f32[64]\n"
     "input %y : f32[64]\n"
     "input %pos : f32[64]\n"
     "%e = exp %sp\n%l = log %sp\n%sq = sqrt %sp\n%rs = rsqrt %sp\n%rc = reciprocal %sp\n"
     "%sn = sin %y\n%cs = cos %y\n%th = tanh %sp\n%sg = sigmoid %sp\n%re = relu %sp\n"
     "%ng = neg %sp\n%ab = abs %sp\n%sgn = sign %sp\n%ge = gelu %y\n%cl = clamp %sp lo=-1 hi=2\n"
     "%a = add %sp, %y\n%s = sub %sp, %y\n%m = mul %sp, %y\n%d = div %sp, %y\n"
     "%mx = maximum %sp, %y\n%mn = minimum %sp, %y\n%pw = pow %sp, %y\n%pp = pow %pos, %y\n"
     "%p3 = pow %y, 3\n%lp = log %pos\n"
     "output e = %e\noutput l = %l\noutput sq = %sq\noutput rs = %rs\noutput rc = %rc\n"
     "output sn = %sn\noutput cs = %cs\noutput th = %th\noutput sg = %sg\noutput re = %re\n"
     "output ng = %ng\noutput ab = %ab\noutput sgn = %sgn\noutput ge = %ge\noutput cl = %cl\n"
     "output a = %a\noutput s = %s\noutput m = %m\noutput d = %d\noutput mx = %mx\n"
     "output mn = %mn\noutput pw = %pw\noutput pp = %pp\noutput p3 = %p3\noutput lp = %lp\n",
     NULL, "pointwise", NULL, NULL},
    {"pointwise_f64",
     "input %sp : f64[64]\n"
     "input %y : f64[64]\n"
     "%e = exp %sp\n%l = log %sp\n%sq = sqrt %sp\n%rs = rsqrt %sp\n%th = tanh %sp\n"
     "%sg = sigmoid %sp\n%sn = sin %y\n%sgn = sign %sp\n%ab = abs %sp\n"
     "%d = div %sp, %y\n%mx = maximum %sp, %y\n%mn = minimum %sp, %y\n%pw = pow %sp, %y\n"
     "output e = %e\noutput l = %l\noutput sq = %sq\noutput rs = %rs\noutput th = %th\n"
     "output sg = %sg\noutput sn = %sn\noutput sgn = %sgn\noutput ab = %ab\noutput d = %d\n"
     "output mx = %mx\noutput mn = %mn\noutput pw = %pw\n",
     NULL, "pointwise", NULL, NULL},
    /* wrapping integer arithmetic at the extremes */
    {"integers",
     "input %ie : i32[48]\n"
     "input %ieb : i32[48]\n"
     "input %iel : i64[48]\n"
     "input %ielb : i64[48]\n"
     "%a = add %ie, %ieb\n%s = sub %ie, %ieb\n%m = mul %ie, %ieb\n%n = neg %ie\n%ab = abs %ie\n"
     "%sg = sign %ie\n%re = relu %ie\n%mx = maximum %ie, %ieb\n%mn = minimum %ie, %ieb\n"
     "%pw = pow %ie, %ieb\n%lt = lt %ie, %ieb\n%eq = eq %ie, %ieb\n%d = div %ie, %ieb\n"
     "%al = add %iel, %ielb\n%sl = sub %iel, %ielb\n%ml = mul %iel, %ielb\n%nl = neg %iel\n"
     "%abl = abs %iel\n%pwl = pow %iel, %ielb\n%p2 = pow %iel, 2\n%ge = ge %iel, %ielb\n"
     "%mix = add %ie, %iel\n%c = mul %ie, 3\n"
     "output a = %a\noutput s = %s\noutput m = %m\noutput n = %n\noutput ab = %ab\n"
     "output sg = %sg\noutput re = %re\noutput mx = %mx\noutput mn = %mn\noutput pw = %pw\n"
     "output lt = %lt\noutput eq = %eq\noutput d = %d\noutput al = %al\noutput sl = %sl\n"
     "output ml = %ml\noutput nl = %nl\noutput abl = %abl\noutput pwl = %pwl\n"
     "output p2 = %p2\noutput ge = %ge\noutput mix = %mix\noutput c = %c\n",
     NULL, "pointwise", NULL, NULL},
    /* conversions: NaN, infinities and out-of-range values to integers */
    {"casts",
     "input %sp : f32[32]\n"
     "input %spd : f64[32]\n"
     "input %iel : i64[32]\n"
     "input %b : bool[32]\n"
     "%c1 = cast %sp dtype=i32\n%c2 = cast %sp dtype=i64\n%c3 = cast %sp dtype=bool\n"
     "%c4 = cast %spd dtype=i32\n%c5 = cast %spd dtype=i64\n%c6 = cast %spd dtype=f32\n"
     "%c7 = cast %iel dtype=i32\n%c8 = cast %iel dtype=f32\n%c9 = cast %iel dtype=f64\n"
     "%c10 = cast %iel dtype=bool\n%c11 = cast %b dtype=f32\n%c12 = cast %b dtype=i64\n"
     "%c13 = cast %sp dtype=f64\n%c14 = cast %c7 dtype=bool\n"
     "output c1 = %c1\noutput c2 = %c2\noutput c3 = %c3\noutput c4 = %c4\noutput c5 = %c5\n"
     "output c6 = %c6\noutput c7 = %c7\noutput c8 = %c8\noutput c9 = %c9\noutput c10 = %c10\n"
     "output c11 = %c11\noutput c12 = %c12\noutput c13 = %c13\noutput c14 = %c14\n",
     NULL, "pointwise", NULL, NULL},
    /* comparisons with NaN, where, logic */
    {"compare_where",
     "input %sp : f32[32]\n"
     "input %y : f32[32]\n"
     "input %b : bool[32]\n"
     "%lt = lt %sp, %y\n%le = le %sp, %y\n%gt = gt %sp, %y\n%ge = ge %sp, %y\n"
     "%eq = eq %sp, %sp\n%ne = ne %sp, %sp\n%w = where %lt, %sp, %y\n%w2 = where %b, %sp, 0.5\n"
     "%and = logical_and %lt, %b\n%or = logical_or %sp, %b\n%not = logical_not %sp\n"
     "%bb = add %b, %lt\n%bm = mul %b, %ge\n"
     "output lt = %lt\noutput le = %le\noutput gt = %gt\noutput ge = %ge\noutput eq = %eq\n"
     "output ne = %ne\noutput w = %w\noutput w2 = %w2\noutput and = %and\noutput or = %or\n"
     "output not = %not\noutput bb = %bb\noutput bm = %bm\n",
     NULL, "pointwise", NULL, NULL},

    /* reductions, one strategy each */
    {"thread_reduce",
     "input %x : f32[300,17]\n"
     "input %xt : f32[40,300]\n"
     "input %sp : f32[9,3]\n"
     "input %i : i32[300,17]\n"
     "input %b : bool[300,17]\n"
     "input %x3 : f32[4,300,5]\n"
     "%s = sum %x axes=[1]\n%p = prod %x axes=[1]\n%mx = max %x axes=[1]\n%mn = min %x axes=[1]\n"
     "%am = argmax %x axis=1\n%an = argmin %x axis=1\n%me = mean %x axes=[1]\n"
     "%va = var %x axes=[1]\n%s0 = sum %xt axes=[0]\n%am0 = argmax %xt axis=0\n"
     "%si = sum %i axes=[1]\n%mi = max %i axes=[1]\n%sb = sum %b axes=[1]\n%mb = max %b axes=[1]\n"
     "%nb = min %b axes=[1]\n%spm = max %sp axes=[1]\n%spa = argmax %sp axis=1\n"
     "%s02 = sum %x3 axes=[0,2]\n%m02 = max %x3 axes=[0,2] keepdim\n"
     "%spn = argmin %sp axis=1\n%spi = min %sp axes=[1]\n"
     "output s = %s\noutput p = %p\noutput mx = %mx\noutput mn = %mn\noutput am = %am\n"
     "output an = %an\noutput me = %me\noutput va = %va\noutput s0 = %s0\noutput am0 = %am0\n"
     "output si = %si\noutput mi = %mi\noutput sb = %sb\noutput mb = %mb\noutput nb = %nb\n"
     "output spm = %spm\noutput spa = %spa\noutput spn = %spn\noutput spi = %spi\n"
     "output s02 = %s02\noutput m02 = %m02\n",
     NULL, "thread-reduce", NULL, NULL},
    {"block_reduce",
     "input %x : f32[64,4096]\n"
     "input %tie : f32[6,100]\n"
     "input %tienan : f32[4,3000]\n"
     "input %bb : bool[5,500]\n"
     "input %iel : i64[4,1000]\n"
     "input %y : f32[4,1000]\n"
     "input %ie : i32[3,500]\n"
     "input %x3 : f32[8,3,40]\n"
     "input %col : f32[3000,4]\n"
     "%s = sum %x axes=[1]\n%me = mean %x axes=[1]\n%va = var %y axes=[1]\n"
     "%lse = logsumexp %y axes=[1]\n%am = argmax %tie axis=1\n%an = argmin %tie axis=1\n"
     "%mx = max %tie axes=[1]\n%amn = argmax %tienan axis=1\n%mxn = max %tienan axes=[1]\n"
     "%ann = argmin %tienan axis=1\n%any = max %bb axes=[1]\n%all = min %bb axes=[1]\n"
     "%si = sum %iel axes=[1]\n%mi = max %iel axes=[1]\n%ai = argmin %iel axis=1\n"
     "%q = mul %y, 0.001\n%q1 = add %q, 1\n%pr = prod %q1 axes=[1]\n%ls = log_softmax %y axis=1\n"
     "%sj = sum %ie axes=[1]\n%mj = min %ie axes=[1]\n%s02 = sum %x3 axes=[0,2]\n"
     "%sc = sum %col axes=[0]\n%ac = argmax %col axis=0\n"
     "output s = %s\noutput me = %me\noutput va = %va\noutput lse = %lse\noutput am = %am\n"
     "output an = %an\noutput mx = %mx\noutput amn = %amn\noutput mxn = %mxn\n"
     "output ann = %ann\noutput any = %any\noutput all = %all\noutput si = %si\n"
     "output mi = %mi\noutput ai = %ai\noutput pr = %pr\noutput ls = %ls\noutput sj = %sj\n"
     "output mj = %mj\noutput s02 = %s02\noutput sc = %sc\noutput ac = %ac\n",
     NULL, "block-reduce", NULL, NULL},
    {"two_stage_sum",
     "input %x : f32[262144]\n"
     "input %xd : f64[262144]\n"
     "input %r : f32[3,100000]\n"
     "input %ie : i32[70000]\n"
     "input %x3 : f32[300,3,400]\n"
     "%s = sum %x\n%m = mean %x\n%sd = sum %xd\n%sr = sum %r axes=[1]\n%mr = max %r axes=[1]\n"
     "%sm = softmax %r axis=1\n%si = sum %ie\n%mi = max %ie\n%s02 = sum %x3 axes=[0,2]\n"
     "output s = %s\noutput m = %m\noutput sd = %sd\noutput sr = %sr\noutput mr = %mr\n"
     "output sm = %sm\noutput si = %si\noutput mi = %mi\noutput s02 = %s02\n",
     NULL, "two-stage-reduce", NULL, NULL},
    {"two_stage_arg",
     "input %tienan : f32[70000]\n"
     "input %tie : f32[70000]\n"
     "input %bb : bool[70000]\n"
     "input %iel : i64[66000]\n"
     "input %tienand : f64[66000]\n"
     "%am = argmax %tienan axis=0\n%an = argmin %tienan axis=0\n%mx = max %tienan\n"
     "%am2 = argmax %tie axis=0\n%an2 = argmin %tie axis=0\n%any = max %bb\n%all = min %bb\n"
     "%ami = argmax %iel axis=0\n%ani = argmin %iel axis=0\n%mi = min %iel\n"
     "%amd = argmax %tienand axis=0\n%mxd = max %tienand\n"
     "output am = %am\noutput an = %an\noutput mx = %mx\noutput am2 = %am2\noutput an2 = %an2\n"
     "output any = %any\noutput all = %all\noutput ami = %ami\noutput ani = %ani\n"
     "output mi = %mi\noutput amd = %amd\noutput mxd = %mxd\n",
     NULL, "two-stage-reduce", NULL, NULL},

    /* matmul: odd sizes, a fused bias + relu, batches, transposed operands */
    {"matmul",
     "input %a : f32[67,45]\n"
     "input %b : f32[45,70]\n"
     "input %bias : f32[70]\n"
     "input %ba : f32[3,67,45]\n"
     "input %bb : f32[3,45,70]\n"
     "input %at : f32[45,67]\n"
     "input %bt : f32[70,45]\n"
     "input %ad : f64[33,130]\n"
     "input %bd : f64[130,17]\n"
     "input %bc1 : f32[2,1,20,30]\n"
     "input %bc2 : f32[4,30,10]\n"
     "input %v : f32[45]\n"
     "input %ia : i32[13,7]\n"
     "input %ib : i32[7,11]\n"
     "%mm = matmul %a, %b\n%h = add %mm, %bias\n%r = relu %h\n"
     "%bm = matmul %ba, %bb\n"
     "%att = transpose %at axis0=0 axis1=1\n%btt = transpose %bt axis0=0 axis1=1\n"
     "%tm = matmul %att, %btt\n%dm = matmul %ad, %bd\n"
     "%bc = matmul %bc1, %bc2\n%mv = matmul %a, %v\n%vm = matmul %v, %b\n%im = matmul %ia, %ib\n"
     "output r = %r\noutput mm = %mm\noutput bm = %bm\noutput tm = %tm\noutput dm = %dm\n"
     "output bc = %bc\noutput mv = %mv\noutput vm = %vm\noutput im = %im\n",
     NULL, "tiled-matmul", NULL, NULL},

    /* a backward graph: matmul transposes, broadcast sums, and the
     * gradient of cross_entropy's gather (a select) */
    {"grad",
     "input %x : f32[37,20]\n"
     "input %w : f32[20,9]\n"
     "input %bias : f32[9]\n"
     "input %ix9 : i64[37]\n"
     "%h = matmul %x, %w\n%hb = add %h, %bias\n%t = tanh %hb\n%l = cross_entropy %t, %ix9\n"
     "%gw = grad %l, %w\n%gx = grad %l, %x\n%gb = grad %l, %bias\n"
     "output l = %l\noutput gw = %gw\noutput gx = %gx\noutput gb = %gb\n",
     NULL, "tiled-matmul", NULL, NULL},

    /* scatter_add of every dtype, gathers, an index out of range */
    {"scatter",
     "input %x : f32[10,5]\n"
     "input %ix10 : i64[30,5]\n"
     "input %src : f32[30,5]\n"
     "input %srci : i64[30,5]\n"
     "input %srcj : i32[30,5]\n"
     "input %ix5 : i32[10,7]\n"
     "input %srcd : f64[10,7]\n"
     "%sa = scatter_add %ix10, %src axis=0 : f32[10,5]\n%sx = add %x, %sa\n"
     "%si = scatter_add %ix10, %srci axis=0 : i64[10,5]\n"
     "%sj = scatter_add %ix10, %srcj axis=0 : i32[10,5]\n"
     "%sd = scatter_add %ix5, %srcd axis=1 : f64[10,5]\n"
     "output sx = %sx\noutput si = %si\noutput sj = %sj\noutput sd = %sd\n",
     NULL, "scatter", NULL, NULL},
    {"scatter_bool",
     "input %ix10 : i64[30,5]\n"
     "input %b : bool[30,5]\n"
     "%sb = scatter_add %ix10, %b axis=0 : bool[10,5]\n"
     "output sb = %sb\n",
     NULL, "scatter", NULL, NULL},
    {"gather",
     "input %x : f32[10,6]\n"
     "input %ix10 : i64[4,6]\n"
     "input %ix6 : i32[10,3]\n"
     "input %ix6v : i64[4]\n"
     "input %w : f32[12,5]\n"
     "input %ix12 : i32[2,3]\n"
     "%g = gather %x, %ix10 axis=0\n%g2 = gather %x, %ix6 axis=1\n"
     "%is = index_select %x, %ix6v axis=1\n%oh = one_hot %ix6v num_classes=6\n"
     "%em = embedding %w, %ix12\n"
     "output g = %g\noutput g2 = %g2\noutput is = %is\noutput oh = %oh\noutput em = %em\n",
     NULL, "pointwise", NULL, NULL},
    {"gather_out_of_range",
     "input %x : f32[10,6]\n"
     "input %bad6 : i64[10,3]\n"
     "%g = gather %x, %bad6 axis=1\n%y = mul %g, 2\n"
     "output y = %y\n",
     NULL, "pointwise", "out of range", NULL},

    {"scatter_out_of_range",
     "input %neg10 : i32[30,5]\n"
     "input %src : f32[30,5]\n"
     "%sa = scatter_add %neg10, %src axis=0 : f32[10,5]\n"
     "output sa = %sa\n",
     NULL, "scatter", "out of range", NULL},

    /* random numbers: the interpreter's Philox draws */
    {"random",
     "input %x : f32[1000]\n"
     "%r = rand seed=5 shape=[1000] dtype=f32 lo=-2 hi=3\n"
     "%rd = rand seed=6 shape=[1000] dtype=f64\n"
     "%n = randn seed=7 shape=[1000] dtype=f32 mean=1 std=2\n"
     "%nd = randn seed=8 shape=[1000] dtype=f64\n"
     "%d = dropout %x p=0.3 seed=9 training\n%rx = add %r, %x\n"
     "output r = %r\noutput rd = %rd\noutput n = %n\noutput nd = %nd\noutput d = %d\n"
     "output rx = %rx\n",
     NULL, "pointwise", NULL, NULL},
    /* the vector path of pointwise kernels (codegen/cuda.c): float4 with
     * broadcast operands (a row and a column), integer loads and bool
     * stores per lane, NaN and infinities, a 1-D kernel, a domain of
     * several blocks (grid-stride on 3 of them in the first run) */
    {"vector_f32",
     "input %x : f32[6,16]\n"
     "input %b : f32[16]\n"
     "input %c : f32[6,1]\n"
     "input %sp : f32[6,16]\n"
     "input %i : i32[6,16]\n"
     "input %v : f32[64]\n"
     "input %big : f32[40,256]\n"
     "input %bb : f32[256]\n"
     "%y = mul %x, %b\n%z = add %y, %c\n%t = tanh %z\n%m = maximum %sp, %z\n%e = exp %sp\n"
     "%f = cast %i dtype=f32\n%g = add %f, %sp\n%lt = lt %x, %sp\n%w = where %lt, %x, %b\n"
     "%ve = sigmoid %v\n%bg = sub %big, %bb\n%bs = mul %bg, %bg\n"
     "output t = %t\noutput m = %m\noutput e = %e\noutput g = %g\noutput lt = %lt\n"
     "output w = %w\noutput ve = %ve\noutput bs = %bs\n",
     NULL, "pointwise", NULL, "vector path: 4"},
    /* f64: double2; a column broadcast; f32 into f64 (4 lanes, two double2
     * per group) */
    {"vector_f64",
     "input %x : f64[5,8]\n"
     "input %b : f64[8]\n"
     "input %c : f64[5,1]\n"
     "input %sp : f64[5,8]\n"
     "%y = mul %x, %b\n%z = sub %y, %c\n%d = div %z, %sp\n%s = sqrt %sp\n%n = minimum %sp, %x\n"
     "output d = %d\noutput s = %s\noutput n = %n\n",
     NULL, "pointwise", NULL, "vector path: 2"},
    {"vector_mixed",
     "input %x : f32[3,12]\n"
     "input %y : f64[3,12]\n"
     "input %r : f64[12]\n"
     "%xd = cast %x dtype=f64\n%s = add %xd, %y\n%p = mul %s, %r\n%h = cast %p dtype=f32\n"
     "output p = %p\noutput h = %h\n",
     NULL, "pointwise", NULL, "sm_lane(w"},
    /* an operand one element off its buffer's start: the vector path is
     * printed, its alignment check fails, the scalar loop runs */
    {"vector_misaligned",
     "input %x : f32[6,20]\n"
     "input %b : f32[16]\n"
     "%s = slice %x start=[0,1] stop=[6,17] step=[1,1]\n%y = mul %s, %b\n"
     "output y = %y\n",
     NULL, "pointwise", NULL, "vector path: 4"},
    /* no vector path: an odd innermost extent, a transposed operand */
    {"vector_odd",
     "input %x : f32[5,7]\n"
     "input %b : f32[7]\n"
     "%y = mul %x, %b\n"
     "output y = %y\n",
     NULL, "pointwise", NULL, "!vector path"},
    {"vector_transposed",
     "input %x : f32[8,8]\n"
     "%t = transpose %x axis0=0 axis1=1\n%y = add %t, %x\n"
     "output y = %y\n",
     NULL, "pointwise", NULL, "!vector path"},

    /* empty tensors: reductions over nothing, empty results */
    {"empty",
     "input %e : f32[0,5]\n"
     "input %x : f32[4,5]\n"
     "input %ix4 : i64[0,5]\n"
     "input %src : f32[0,5]\n"
     "%s = sum %e axes=[0]\n%p = prod %e axes=[0]\n%s1 = sum %e axes=[1]\n%m = exp %e\n"
     "%sa = scatter_add %ix4, %src axis=0 : f32[4,5]\n%sx = add %x, %sa\n"
     "output s = %s\noutput p = %p\noutput s1 = %s1\noutput m = %m\noutput sx = %sx\n",
     NULL, NULL, NULL, NULL},
};

START_TEST(test_case) { run_case(&cases[_i]); }
END_TEST

/* The serial strategy (a kernel with both reductions and accumulating
 * stores), which fusion never produces today, on a kernel built by hand:
 * per row i of x[5][7], the row's sum added into out[idx[i]] (outer, +=),
 * its argmax stored at arg[i], and each element added into all[idx[i]]
 * (inner, +=); idx[2] may be out of range. */
static void serial_kernel(bool bad) {
  const int64_t ext[2] = {5, 7};
  const uint8_t red[2] = {0, 1};
  sm_kernel *k = sm_kernel_new("ks", SM_KERNEL_REDUCE, 2, ext, red);
  ck_assert_ptr_nonnull(k);
  int ax = sm_kernel_arg(k, 1, SMELT_F32, KA_IN, 35);
  int aidx = sm_kernel_arg(k, 2, SMELT_I64, KA_IN, 5);
  int aout = sm_kernel_arg(k, 3, SMELT_F32, KA_OUT, 3);
  int aarg = sm_kernel_arg(k, 4, SMELT_I64, KA_OUT, 5);
  int aall = sm_kernel_arg(k, 5, SMELT_F64, KA_OUT, 3);
  const int64_t coef[2] = {7, 1};
  int x = sm_kv_load(k, ax, sm_kv_affine(k, 0, coef), -1, 0, 0);
  int sum = sm_kernel_acc(k, OP_REDUCE_SUM, SMELT_F32, SMELT_F64, x, -1, -1, -1);
  int am = sm_kernel_acc(k, OP_ARGMAX, SMELT_I64, SMELT_F32, x, 1, -1, -1);
  int i0 = sm_kv_idx(k, 0);
  int at = sm_kv_check(k, sm_kv_load(k, aidx, i0, -1, 0, 0), 3);
  sm_kernel_store(k, aout, at, sm_kv_acc(k, sum), true, true);
  sm_kernel_store(k, aarg, i0, sm_kv_acc(k, am), true, false);
  sm_kernel_store(k, aall, at, sm_kv_elem(k, OP_CAST, SMELT_F64, x, -1, -1), false, true);
  ck_assert(!k->oom);
  sm_cuda_source src;
  char *err = NULL;
  ck_assert_msg(!sm_cuda_emit(&k, 1, &src, &err), "sm_cuda_emit: %s", err);
  ck_assert_str_eq(src.kernels[0].strategy, "serial");
  ck_assert_int_eq(src.kernels[0].nzero, 2);
  char dir[64] = "/tmp/smelt-cuda-emu-XXXXXX", path[256];
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/gen.cu", dir);
  char *text = full_source(&k, 1, &src);
  write_file(path, text);
  free(text);
  void *so = compile_and_load(path, dir);
  emu_call call;
  *(void **)&call = dlsym(so, "emu_call_ks");
  ck_assert_ptr_nonnull(call);
  float xs[35];
  int64_t idx[5] = {2, 0, bad ? 3 : 2, 1, 0}, arg[5];
  float out[3];
  double all[3];
  for (int i = 0; i < 35; i++) xs[i] = (float)((i * 37) % 11) * 0.37f - 1.0f;
  void *args[5] = {xs, idx, out, arg, all};
  memset(arg, 0xff, sizeof arg);
  for (int z = 0; z < src.kernels[0].nzero; z++) {
    int a = src.kernels[0].zero_args[z];
    memset(args[a], 0, (size_t)k->args[a].numel * smelt_dtype_size(k->args[a].dtype));
  }
  sm_kctx ctx = {0, 1, 0, 0, 0};
  char scratch[8] = {0};
  long long grid[3] = {src.kernels[0].grid[0], src.kernels[0].grid[1], src.kernels[0].grid[2]};
  ck_assert(!call(args, &ctx, scratch, grid, src.kernels[0].block));
  dlclose(so);
  if (!env_on("CUDA_EMU_KEEP")) remove_dir(dir);
  if (bad) {
    ck_assert_msg(ctx.error == 1 && ctx.bad_index == 3 && ctx.bad_bound == 3,
                  "the index error: error %d, index %" PRId64 ", bound %" PRId64, ctx.error,
                  ctx.bad_index, ctx.bad_bound);
  } else {
    float want[3] = {0, 0, 0};
    double wall[3] = {0, 0, 0};
    for (int i = 0; i < 5; i++) { /* in domain order, as the kernel IR says */
      double s = 0;
      int64_t best = 0;
      for (int j = 0; j < 7; j++) {
        s += xs[i * 7 + j], wall[idx[i]] += xs[i * 7 + j];
        if (xs[i * 7 + j] > xs[i * 7 + best]) best = j;
      }
      want[idx[i]] += (float)s;
      ck_assert_msg(arg[i] == best, "argmax of row %d: got %" PRId64 ", want %" PRId64, i, arg[i],
                    best);
    }
    ck_assert_msg(ctx.error == 0, "an index error was recorded");
    for (int p = 0; p < 3; p++)
      ck_assert_msg(out[p] == want[p] && all[p] == wall[p],
                    "out[%d]: got %.9g and %.17g, want %.9g and %.17g", p, out[p], all[p], want[p],
                    wall[p]);
  }
  sm_cuda_source_free(&src);
  sm_kernel_free(k);
}

START_TEST(test_serial) {
  if (!*cxx()) return;
  serial_kernel(_i == 1);
}
END_TEST

/* The vector path on a kernel built by hand, domain [5, 12]:
 *   out[i,j] = m[i,j] > 0 ? y : -y,  y = (ot)(x[i,j] * b[j]) + c[i]
 *   pos[i,j] = m[i,j] > 0                  (bool, stored per lane)
 * with x, b of dtype xt and c, out of dtype ot (c is read with stride 0
 * along the innermost axis, m is an i32 buffer read per lane). It runs
 * with every buffer aligned (the vector path), then three times with one
 * buffer one element off (x, b, out: the scalar loop): every result must
 * be the same bits, those of the same arithmetic in C. */
static void vector_kernel(smelt_dtype xt, smelt_dtype ot) {
  const int64_t ext[2] = {5, 12};
  sm_kernel *k = sm_kernel_new("kv", SM_KERNEL_POINTWISE, 2, ext, NULL);
  ck_assert_ptr_nonnull(k);
  int ax = sm_kernel_arg(k, 1, xt, KA_IN, 60);
  int ab = sm_kernel_arg(k, 2, xt, KA_IN, 12);
  int ac = sm_kernel_arg(k, 3, ot, KA_IN, 5);
  int am = sm_kernel_arg(k, 4, SMELT_I32, KA_IN, 60);
  int ao = sm_kernel_arg(k, 5, ot, KA_OUT, 60);
  int ap = sm_kernel_arg(k, 6, SMELT_BOOL, KA_OUT, 60);
  int off = sm_kv_affine(k, 0, (const int64_t[]){12, 1});
  int x = sm_kv_load(k, ax, off, -1, 0, 0);
  int b = sm_kv_load(k, ab, sm_kv_idx(k, 1), -1, 0, 0);
  int c = sm_kv_load(k, ac, sm_kv_idx(k, 0), -1, 0, 0);
  int m = sm_kv_load(k, am, off, -1, 0, 0);
  int xb = sm_kv_elem(k, OP_MUL, xt, x, b, -1);
  int y = sm_kv_elem(k, OP_ADD, ot, sm_kv_elem(k, OP_CAST, ot, xb, -1, -1), c, -1);
  int pos = sm_kv_elem(k, OP_GT, SMELT_BOOL, m, sm_kv_const_i(k, SMELT_I32, 0), -1);
  int r = sm_kv_elem(k, OP_WHERE, ot, pos, y, sm_kv_elem(k, OP_NEG, ot, y, -1, -1));
  sm_kernel_store(k, ao, off, r, false, false);
  sm_kernel_store(k, ap, off, pos, false, false);
  ck_assert(!k->oom);
  sm_cuda_source src;
  char *err = NULL;
  ck_assert_msg(!sm_cuda_emit(&k, 1, &src, &err), "sm_cuda_emit: %s", err);
  const sm_cuda_kernel *ck = &src.kernels[0];
  int w = xt == SMELT_F32 || ot == SMELT_F32 ? 4 : 2;
  ck_assert_str_eq(ck->strategy, "pointwise");
  ck_assert_int_eq(ck->vector, w);
  ck_assert_int_eq(ck->grid[0], 1);
  ck_assert_msg(strstr(src.text, "vector path") != NULL, "%s", src.text);
  char dir[64] = "/tmp/smelt-cuda-emu-XXXXXX", path[256];
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/gen.cu", dir);
  char *text = full_source(&k, 1, &src);
  write_file(path, text);
  free(text);
  void *so = compile_and_load(path, dir);
  emu_call call;
  *(void **)&call = dlsym(so, "emu_call_kv");
  ck_assert_ptr_nonnull(call);
  /* the data, as double; each buffer has room for one more element */
  double X[60], B[12], C[5];
  int32_t M[60];
  for (int i = 0; i < 60; i++) {
    X[i] = (double)((i * 37) % 23) * 0.37 - 3.1 + 1e-9 * i;
    M[i] = (i * 7) % 5 - 2;
  }
  for (int j = 0; j < 12; j++) B[j] = 1.0 / (j + 3.0);
  for (int i = 0; i < 5; i++) C[i] = i * 0.3 - 0.7;
  X[7] = NAN, X[20] = INFINITY, B[5] = -0.0;
  size_t xs = smelt_dtype_size(xt), os = smelt_dtype_size(ot);
  unsigned char *bx = buf_new(61 * xs, NULL, 0), *bb = buf_new(13 * xs, NULL, 0);
  unsigned char *bc = buf_new(5 * os, NULL, 0), *bm = buf_new(sizeof M, M, 0);
  unsigned char *bo[4], *bp[4];
  for (int run = 0; run < 4; run++) {
    int sx = run == 1, sb = run == 2, so_ = run == 3;
    for (int i = 0; i < 60; i++) {
      if (xt == SMELT_F32) ((float *)bx)[i + sx] = (float)X[i];
      else ((double *)bx)[i + sx] = X[i];
    }
    for (int j = 0; j < 12; j++) {
      if (xt == SMELT_F32) ((float *)bb)[j + sb] = (float)B[j];
      else ((double *)bb)[j + sb] = B[j];
    }
    for (int i = 0; i < 5; i++) {
      if (ot == SMELT_F32) ((float *)bc)[i] = (float)C[i];
      else ((double *)bc)[i] = C[i];
    }
    bo[run] = buf_new(61 * os, NULL, 0xff);
    bp[run] = buf_new(60, NULL, 0xff);
    void *args[6] = {bx + sx * xs, bb + sb * xs, bc, bm, bo[run] + so_ * os, bp[run]};
    sm_kctx ctx = {0, 0, 0, 0, 0};
    char scratch[8] = {0};
    long long grid[3] = {ck->grid[0], ck->grid[1], ck->grid[2]};
    ck_assert(!call(args, &ctx, scratch, grid, ck->block));
    if (so_) memmove(bo[run], bo[run] + os, 60 * os);
  }
  for (int i = 0; i < 60; i++) {
    double want, got[4];
    bool p = M[i] > 0;
    if (ot == SMELT_F32) {
      float xb_ = xt == SMELT_F32 ? (float)X[i] * (float)B[i % 12] : (float)(X[i] * B[i % 12]);
      float y_ = xb_ + (float)C[i / 12];
      want = p ? y_ : -y_;
      for (int run = 0; run < 4; run++) got[run] = ((float *)bo[run])[i];
    } else {
      double xb_ = xt == SMELT_F32 ? (double)((float)X[i] * (float)B[i % 12]) : X[i] * B[i % 12];
      double y_ = xb_ + C[i / 12];
      want = p ? y_ : -y_;
      for (int run = 0; run < 4; run++) got[run] = ((double *)bo[run])[i];
    }
    static const char *how[4] = {"aligned", "x misaligned", "b misaligned", "out misaligned"};
    for (int run = 0; run < 4; run++) {
      ck_assert_msg(!memcmp(&got[run], &want, sizeof want) || (isnan(got[run]) && isnan(want)),
                    "%s -> %s, %s: element %d is %.17g, want %.17g", smelt_dtype_name(xt),
                    smelt_dtype_name(ot), how[run], i, got[run], want);
      ck_assert_int_eq(bp[run][i], p);
    }
  }
  for (int run = 0; run < 4; run++) free(bo[run]), free(bp[run]);
  free(bx), free(bb), free(bc), free(bm);
  dlclose(so);
  if (!env_on("CUDA_EMU_KEEP")) remove_dir(dir);
  sm_cuda_source_free(&src);
  sm_kernel_free(k);
}

START_TEST(test_vector) {
  if (!*cxx()) return;
  static const smelt_dtype types[][2] = {
      {SMELT_F32, SMELT_F32}, {SMELT_F64, SMELT_F64}, {SMELT_F32, SMELT_F64}, {SMELT_F64, SMELT_F32}};
  vector_kernel(types[_i][0], types[_i][1]);
}
END_TEST

/* The emulator's own checks (selftest.cu). */
START_TEST(test_emulator) {
  char dir[64] = "/tmp/smelt-cuda-emu-XXXXXX", src[256], msg[512] = "";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(src, sizeof src, "%s/selftest.cu", CUDA_EMU_DIR);
  void *so = compile_and_load(src, dir);
  int (*selftest)(char *, size_t);
  *(void **)&selftest = dlsym(so, "emu_selftest");
  ck_assert_ptr_nonnull(selftest);
  int rc = selftest(msg, sizeof msg);
  dlclose(so);
  remove_dir(dir);
  ck_assert_msg(rc == 0, "the emulator is wrong: %s", msg);
}
END_TEST

/* CUDA_EMU_GRAPH=FILE: that graph alone (absolute, or under tests/graphs). */
START_TEST(test_file) {
  emu_case c = {getenv("CUDA_EMU_GRAPH"), NULL, getenv("CUDA_EMU_GRAPH"), NULL, NULL, NULL};
  run_case(&c);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("cuda_emu");
  TCase *tc = tcase_create("graphs");
  tcase_set_timeout(tc, 300); /* compiling C++ under a sanitizer or valgrind takes a while */
  const char *file = getenv("CUDA_EMU_GRAPH");
  if (file && *file) {
    tcase_add_test(tc, test_file);
  } else {
    tcase_add_test(tc, test_emulator);
    tcase_add_loop_test(tc, test_serial, 0, 2);
    tcase_add_loop_test(tc, test_vector, 0, 4);
    tcase_add_loop_test(tc, test_case, 0, (int)(sizeof cases / sizeof *cases));
  }
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  if (!*cxx()) {
    printf("cuda_emu: skipped: no C++ compiler was found when the tests were built "
           "(set CUDA_EMU_CXX to one)\n");
    return 77;
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* verbose lines survive a failing (forked) test */
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
