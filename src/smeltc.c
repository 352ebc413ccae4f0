/* smeltc: the command-line tool.
 *
 *   smeltc run FILE [--input NAME=FILE.npy ...] [--output-dir DIR] [--quiet]
 *              [--program NAME] [--steps N] [--target T] [--threads N] [--stats] ...
 *   smeltc compile FILE -o FILE.o [--header FILE.h] [--prefix NAME] ...
 *   smeltc compile FILE --emit STAGE[,STAGE...] [-o PATH] [--target cpu] ...
 *   smeltc dump FILE [--dot]
 *
 * run parses a graph in the text format, compiles its outputs as a program
 * for a target (cpu by default, or the reference interpreter), binds its
 * inputs from .npy files, runs it and prints its outputs (and writes them
 * as DIR/NAME.npy); with --program, a program the graph declares, run
 * --steps times with its updates applied in memory. compile writes an
 * ahead-of-time object and header (smelt_aot_compile), or the text of
 * compiler stages (the dumps of SMELT_DUMP, captured). dump
 * prints the canonical text or Graphviz DOT.
 *
 * Every problem is one message on stderr starting with "smeltc: ", and the
 * exit status is 1 (an error in the input) or 2 (a command-line usage
 * error). Everything allocated is freed before exit, errors included, so
 * that the tool runs clean under valgrind and ASan. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "dump.h"
#include "../runtime/cuda_build.h"
#include "npy.h"
#include "smelt/smelt.h"

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2 };

/* Outputs up to this many elements print in full; larger ones as a
 * summary (first and last values, min, max, mean). */
#define PRINT_FULL_MAX 100
/* Graph files larger than this are refused (say, /dev/zero by mistake). */
#define MAX_GRAPH_FILE ((size_t)1 << 30)
/* Lines of printed arrays wrap at this width. */
#define LINE_WIDTH 80

/* ----------------------------------------------------------- messages */

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("smeltc: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static const char usage_main[] =
    "usage: smeltc <command> [options]\n"
    "\n"
    "smelt's command-line tool: runs, compiles and prints tensor graphs\n"
    "written in the smelt text format (docs/text-format.md).\n"
    "\n"
    "commands:\n"
    "  run FILE [--input NAME=FILE.npy ...] [--output-dir DIR]\n"
    "                 compile the graph's outputs for a target (cpu by default,\n"
    "                 or the reference interpreter with --target interp), run\n"
    "                 them and print them\n"
    "  compile FILE -o FILE.o [--header FILE.h]\n"
    "                 compile the programs the graph declares ahead of time: an\n"
    "                 object that needs libc and libm only, and its C header\n"
    "  compile FILE --emit STAGE [-o PATH]\n"
    "                 compile the graph's outputs and write a stage of the\n"
    "                 compiler as text: graph, passes, fusion, kernels, llvm,\n"
    "                 asm or dot\n"
    "  dump FILE [--dot]\n"
    "                 print the graph in canonical text form, or as Graphviz DOT\n"
    "  help [COMMAND] show this help, or a command's\n"
    "\n"
    "options:\n"
    "  -h, --help     show this help\n"
    "  --version      show the version\n"
    "\n"
    "FILE may be '-' for standard input. Exit status: 0 on success, 1 on an\n"
    "error in the input, 2 on a command-line usage error.\n"
    "\n"
    "environment:\n"
    "  SMELT_TARGET=cpu|interp|cuda\n"
    "                 the target of 'run' without --target (default: cpu when\n"
    "                 libsmelt was built with LLVM, else interp)\n"
    "  SMELT_NUM_THREADS=N\n"
    "                 threads of the cpu target without --threads (default:\n"
    "                 every core)\n"
    "  SMELT_DUMP=STAGE,...\n"
    "                 print these stages of every compilation on stderr: graph,\n"
    "                 passes, fusion, kernels, llvm, asm, cuda, ptx, dot, or\n"
    "                 all ('compile --emit' writes its own stages instead)\n"
    "  SMELT_DUMP_DIR=DIR\n"
    "                 write the SMELT_DUMP stages to files in DIR instead\n"
    "  SMELT_CACHE_DIR=DIR\n"
    "                 the disk cache of compiled code (default:\n"
    "                 $XDG_CACHE_HOME/smelt, else ~/.cache/smelt)\n"
    "  SMELT_CACHE=0  do not use the disk cache (as --no-cache)\n"
    "  SMELT_PROFILE=1\n"
    "                 time every kernel of the cpu target and print them,\n"
    "                 slowest first, when the program is freed\n"
    "  SMELT_ARENA_GUARD=1\n"
    "                 debugging: guard zones around the cpu target's arena\n"
    "                 buffers, checked after every kernel (a kernel that\n"
    "                 writes past its buffer fails the run, naming both)\n"
    "  SMELT_NVRTC=PATH\n"
    "                 the NVRTC library to load (default: the one found when\n"
    "                 libsmelt was built)\n"
    "  SMELT_CUDA_ARCH=sm_XY\n"
    "                 the architecture of the cuda target (default: the device's)\n"
    "  SMELT_CUDA_DEVICE=N\n"
    "                 the GPU the cuda target uses (default 0)\n"
    "  SMELT_CUDA_DRIVER=PATH\n"
    "                 the CUDA driver library to load (default libcuda.so.1)\n";

static const char usage_run[] =
    "usage: smeltc run FILE [--input NAME=FILE.npy ...] [--output-dir DIR] [--quiet]\n"
    "                  [--program NAME] [--steps N]\n"
    "                  [--target cpu|cuda|interp] [--threads N] [--stats]\n"
    "\n"
    "Parses the graph in FILE ('-' for standard input), compiles its outputs\n"
    "as a program for the target, binds each of its inputs from a NumPy .npy\n"
    "file, runs it and prints every output: in full up to 100 elements,\n"
    "otherwise as a summary (the first and last values, min, max and mean).\n"
    "With --program it compiles a program the graph declares instead (a\n"
    "'program' line of the text format) and prints that program's outputs;\n"
    "its updates change the params, which start from their initializers and\n"
    "live in memory for the whole command (nothing is written back).\n"
    "\n"
    "options:\n"
    "  -p, --program NAME\n"
    "                 run the program the graph declares as NAME (outputs and\n"
    "                 updates) instead of every output\n"
    "  --steps N      run the program N times (default 1), each run seeing the\n"
    "                 params the one before updated; prints the outputs of\n"
    "                 the last run\n"
    "  -i, --input NAME=FILE.npy\n"
    "                 bind graph input NAME to the array in FILE.npy; its dtype\n"
    "                 ('<f4' f32, '<f8' f64, '<i4' i32, '<i8' i64, '|b1' bool)\n"
    "                 and shape must match the input's exactly. Every input of\n"
    "                 the graph must be given.\n"
    "  -o, --output-dir DIR\n"
    "                 also write each output as DIR/NAME.npy (DIR is created\n"
    "                 when missing)\n"
    "  -q, --quiet    do not print the outputs\n"
    "  --target TARGET\n"
    "                 where the program runs: cpu (code generated with LLVM),\n"
    "                 cuda (CUDA C through NVRTC, on the GPU) or interp (the\n"
    "                 reference interpreter). Default:\n"
    "                 $SMELT_TARGET, else cpu when libsmelt was built with\n"
    "                 LLVM, else interp.\n"
    "  --threads N    run the cpu target's kernels on N threads (default:\n"
    "                 $SMELT_NUM_THREADS, else every core)\n"
    "  --opt-level N  LLVM optimization level, 0 to 3 (default 3)\n"
    "  --reassociate  let float reductions be reordered (vectorized); by\n"
    "                 default sums follow a fixed order\n"
    "  --no-cache     neither read nor write the disk cache of compiled code\n"
    "  --stats        print what the program is made of on stderr: target,\n"
    "                 kernels, buffers, arena bytes, compile time, cache hit\n"
    "  -h, --help     show this help\n"
    "\n"
    "examples:\n"
    "  smeltc run model.smelt --input x=x.npy --output-dir out\n"
    "  smeltc run model.smelt --input x=x.npy --target interp\n"
    "  smeltc run train.smelt --program train_step --steps 100 --input x=x.npy\n";

static const char usage_compile[] =
    "usage: smeltc compile FILE -o FILE.o [--header FILE.h] [--prefix NAME]\n"
    "                      [--weights FILE.safetensors] [--target cpu]\n"
    "                      [--triple TRIPLE] [--cpu NAME] [--features LIST]\n"
    "                      [--opt-level N] [--reassociate]\n"
    "       smeltc compile FILE --emit STAGE[,STAGE...] [-o PATH]\n"
    "                      [--target cpu|cuda] [--arch sm_XY] [--threads N]\n"
    "                      [--opt-level N] [--reassociate] [--no-cache] [--stats]\n"
    "\n"
    "Ahead of time (the first form): compiles every program the graph in FILE\n"
    "declares ('program' lines) into one relocatable, position-independent\n"
    "object that needs libc and libm only, and a C header that declares one\n"
    "function per program, the params' initializer, safetensors load and save,\n"
    "and the sizes of the memory the caller provides (docs/aot.md):\n"
    "  cc host.c model.o -lm\n"
    "\n"
    "Stages (the second form, with --emit or --stats): compiles the outputs of\n"
    "the graph as one program, as 'smeltc run' would, and writes the text of\n"
    "stages of the compiler to standard output or PATH. No inputs are needed:\n"
    "only their declared types matter. The graph must have at least one output.\n"
    "\n"
    "stages:\n"
    "  graph          the graph as given, in the text format\n"
    "  passes         the graph after the optimization passes\n"
    "  fusion         the optimized graph partitioned into kernels\n"
    "  kernels        the kernel IR: loops, loads, scalar expressions, stores\n"
    "  llvm           the kernels' LLVM IR, before and after optimization (cpu)\n"
    "  asm            the kernels' machine code as assembly (cpu)\n"
    "  cuda           the kernels as CUDA C (cuda)\n"
    "  ptx            that CUDA C compiled by NVRTC to PTX (cuda)\n"
    "  cubin          the device code NVRTC makes (cuda; binary, emitted alone,\n"
    "                 not part of 'all')\n"
    "  dot            the fused graph as Graphviz DOT, a cluster per kernel\n"
    "  all            every stage above that the target makes, in this order\n"
    "\n"
    "ahead-of-time options:\n"
    "  -o, --output FILE.o\n"
    "                 the object file to write (required)\n"
    "  --header FILE.h\n"
    "                 also write the C header that describes the object\n"
    "  --prefix NAME  the C prefix of every generated name: functions NAME_PROGRAM,\n"
    "                 types NAME_ctx, macros NAME_PARAMS_BYTES... (default: the\n"
    "                 object's file name without .o when that is a C identifier,\n"
    "                 else 'model')\n"
    "  --weights FILE.safetensors\n"
    "                 start the params at these values instead of their\n"
    "                 initializers (every tensor must be a param of that dtype and\n"
    "                 shape; params it lacks keep their initializers)\n"
    "  --target cpu   the target: cpu, the default and the only one for objects\n"
    "  --triple TRIPLE\n"
    "                 compile for this target triple, e.g. x86_64-linux-gnu or\n"
    "                 aarch64-linux-gnu (default: the host's); 64-bit\n"
    "                 little-endian targets only\n"
    "  --cpu NAME     the CPU to tune and select instructions for, e.g. x86-64-v3,\n"
    "                 znver4, neoverse-v1 (default: the host's CPU for the host\n"
    "                 triple, else the triple's generic CPU)\n"
    "  --features LIST\n"
    "                 LLVM feature string, e.g. +avx2,+fma (default: the CPU's)\n"
    "  --opt-level N  LLVM optimization level, 0 to 3 (default 3)\n"
    "  --reassociate  let float reductions be reordered (vectorized); by\n"
    "                 default sums follow a fixed order\n"
    "\n"
    "stage options:\n"
    "  -e, --emit STAGE[,STAGE...]\n"
    "                 the stages to write, in the order given; may be given\n"
    "                 several times. With more than one stage, each starts\n"
    "                 with a line '=== STAGE ==='.\n"
    "  -o, --output PATH\n"
    "                 write to PATH instead of standard output ('-': standard\n"
    "                 output); nothing is written when compilation fails\n"
    "  --target cpu|cuda\n"
    "                 the target to compile for: cpu, the default, or cuda (the\n"
    "                 interp target runs the graph as it is and compiles\n"
    "                 nothing). The cuda stages need no GPU.\n"
    "  --arch sm_XY   cuda: the architecture NVRTC compiles for (default:\n"
    "                 $SMELT_CUDA_ARCH, else the device's, else sm_80)\n"
    "  --threads N    split the kernels for N threads (default:\n"
    "                 $SMELT_NUM_THREADS, else every core)\n"
    "  --opt-level N, --reassociate\n"
    "                 as above\n"
    "  --no-cache     neither read nor write the disk cache of compiled code\n"
    "                 (the llvm and asm stages are always generated afresh)\n"
    "  --stats        print what the program is made of on stderr: target,\n"
    "                 kernels, buffers, arena bytes, compile time, cache hit\n"
    "                 (with --stats alone, --emit may be left out)\n"
    "  -h, --help     show this help\n"
    "\n"
    "Each stage is compiled on its own; SMELT_DUMP and SMELT_DUMP_DIR are not\n"
    "used there. Ahead of time, SMELT_DUMP=llvm (or any stage) prints what the\n"
    "object is made of.\n"
    "\n"
    "examples:\n"
    "  smeltc compile model.smelt -o model.o --header model.h\n"
    "  smeltc compile model.smelt --triple aarch64-linux-gnu --cpu neoverse-n1 \\\n"
    "    -o model-arm64.o --header model.h --weights trained.safetensors\n"
    "  smeltc compile model.smelt --emit=kernels\n"
    "  smeltc compile model.smelt --emit=fusion,llvm -o model.txt\n"
    "  smeltc compile model.smelt --emit=dot | dot -Tsvg >model.svg\n";

static const char usage_dump[] =
    "usage: smeltc dump FILE [--dot]\n"
    "\n"
    "Parses the graph in FILE ('-' for standard input) and prints it in the\n"
    "canonical text form, which parses back to the same graph.\n"
    "\n"
    "options:\n"
    "  --dot          print Graphviz DOT instead (smeltc dump g.smelt --dot | dot -Tsvg)\n"
    "  -h, --help     show this help\n"
    "\n"
    "'smeltc compile FILE --emit=dot' prints the graph as compiled instead:\n"
    "optimized, with a cluster per kernel.\n";

static int usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("smeltc: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (cmd)
    fprintf(stderr, " (see 'smeltc %s --help')\n", cmd);
  else
    fputs(" (see 'smeltc --help')\n", stderr);
  return EXIT_USAGE;
}

/* ------------------------------------------------------------- files */

/* Reads a whole file ("-": standard input) into a malloc'ed buffer with a
 * NUL after the end. Returns NULL after printing an error. */
static char *read_all(const char *path, size_t *len) {
  bool is_stdin = strcmp(path, "-") == 0;
  FILE *f = is_stdin ? stdin : fopen(path, "rb");
  if (!f) {
    msg("%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    msg("%s: is a directory", path);
    if (!is_stdin) fclose(f);
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  bool oom = buf == NULL, too_big = false;
  while (!oom) {
    if (n + 1 >= cap) {
      if (cap >= MAX_GRAPH_FILE) {
        too_big = true;
        break;
      }
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        oom = true;
        break;
      }
      buf = nb;
      cap *= 2;
    }
    size_t r = fread(buf + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) break;
  }
  bool err = !oom && ferror(f);
  int saved = errno;
  if (!is_stdin) fclose(f);
  if (oom || err || too_big) {
    if (too_big)
      msg("%s: too large for a graph (more than %d MiB)", is_stdin ? "<stdin>" : path,
          (int)(MAX_GRAPH_FILE >> 20));
    else if (oom)
      msg("%s: out of memory reading the file", is_stdin ? "<stdin>" : path);
    else
      msg("%s: read error: %s", is_stdin ? "<stdin>" : path, strerror(saved));
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  *len = n;
  return buf;
}

/* mkdir -p: creates dir and its missing parents. Returns 0, or -1 after
 * printing an error. */
static int make_dirs(const char *dir) {
  size_t n = strlen(dir);
  char *p = malloc(n + 1);
  if (!p) {
    msg("out of memory");
    return -1;
  }
  memcpy(p, dir, n + 1);
  int rc = 0;
  for (size_t i = 1; i <= n && rc == 0; i++) {
    if (p[i] != '/' && p[i] != 0) continue;
    char saved = p[i];
    p[i] = 0;
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      msg("--output-dir %s: cannot create %s: %s", dir, p, strerror(errno));
      rc = -1;
    }
    p[i] = saved;
  }
  free(p);
  if (rc) return rc;
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    msg("--output-dir %s: not a directory", dir);
    return -1;
  }
  return 0;
}

/* Parses the graph in path; prints the error and returns NULL on failure. */
static smelt_graph *load_graph(const char *path) {
  size_t len = 0;
  char *text = read_all(path, &len);
  if (!text) return NULL;
  const char *display = strcmp(path, "-") == 0 ? "<stdin>" : path;
  char err[1024] = "";
  smelt_graph *g = smelt_graph_parse(text, len, display, err, sizeof err);
  free(text);
  if (!g) {
    if (err[0])
      msg("%s", err);
    else
      msg("%s: cannot parse the graph (out of memory?)", display);
    return NULL;
  }
  if (smelt_graph_error(g)) {
    msg("%s: %s", display, smelt_graph_error(g));
    smelt_graph_free(g);
    return NULL;
  }
  return g;
}

/* ------------------------------------------------------------ printing */

static void type_str(char *dst, size_t cap, smelt_dtype dt, int rank, const int64_t *dims) {
  size_t o = (size_t)snprintf(dst, cap, "%s[", smelt_dtype_name(dt));
  for (int i = 0; i < rank && o < cap; i++)
    o += (size_t)snprintf(dst + o, cap - o, i ? ",%" PRId64 : "%" PRId64, dims[i]);
  if (o < cap) snprintf(dst + o, cap - o, "]");
}

/* A float with at most 8 significant digits: the shortest digits that read
 * back to the same value when there are such, as NumPy prints. */
static void fmt_float(char *out, size_t cap, double v, bool as_f32) {
  if (isnan(v)) {
    snprintf(out, cap, "nan");
    return;
  }
  if (isinf(v)) {
    snprintf(out, cap, v > 0 ? "inf" : "-inf");
    return;
  }
  int prec = 1;
  for (; prec < 8; prec++) {
    snprintf(out, cap, "%.*g", prec, v);
    double r = strtod(out, NULL);
    if (as_f32 ? (float)r == (float)v : r == v) break;
  }
  /* %g writes 10 as 1e+01 at precision 1: keep plain notation for
   * magnitudes from 1e-4 to 1e9, as people write them. */
  double a = fabs(v);
  if (a >= 1e-4 && a < 1e9) {
    int digits = a >= 1 ? (int)floor(log10(a)) + 1 : 1;
    if (digits > prec) prec = digits;
  }
  snprintf(out, cap, "%.*g", prec, v);
}

static double elem_double(smelt_dtype dt, const void *data, int64_t i) {
  switch (dt) {
  case SMELT_F32: return ((const float *)data)[i];
  case SMELT_F64: return ((const double *)data)[i];
  case SMELT_I32: return ((const int32_t *)data)[i];
  case SMELT_I64: return (double)((const int64_t *)data)[i];
  case SMELT_BOOL: return ((const uint8_t *)data)[i] ? 1 : 0;
  default: return 0;
  }
}

static void fmt_elem(char *out, size_t cap, smelt_dtype dt, const void *data, int64_t i) {
  switch (dt) {
  case SMELT_F32: fmt_float(out, cap, ((const float *)data)[i], true); break;
  case SMELT_F64: fmt_float(out, cap, ((const double *)data)[i], false); break;
  case SMELT_I32: snprintf(out, cap, "%" PRId32, ((const int32_t *)data)[i]); break;
  case SMELT_I64: snprintf(out, cap, "%" PRId64, ((const int64_t *)data)[i]); break;
  case SMELT_BOOL: snprintf(out, cap, "%s", ((const uint8_t *)data)[i] ? "true" : "false"); break;
  default: snprintf(out, cap, "?"); break;
  }
}

enum { ELEM_CAP = 32 };

/* State of printing one array in full. */
typedef struct printer {
  FILE *out;
  int rank;
  const int64_t *dims;
  char (*text)[ELEM_CAP]; /* every element, formatted */
  int width;              /* widest element */
  int indent;             /* column of the outermost '[' */
  int col;                /* current column */
} printer;

static void newline(printer *p, int depth) {
  fputc('\n', p->out);
  fprintf(p->out, "%*s", p->indent + depth, "");
  p->col = p->indent + depth;
}

/* Prints the block of axis `axis` starting at element `offset`, NumPy
 * style: right-aligned elements, one row a line, a blank line between
 * blocks of rank 3 and more, long rows wrapped. */
static void print_block(printer *p, int axis, int64_t offset) {
  fputc('[', p->out);
  p->col++;
  int64_t n = p->dims[axis];
  int64_t stride = 1;
  for (int k = axis + 1; k < p->rank; k++) stride *= p->dims[k];
  for (int64_t i = 0; i < n; i++) {
    if (axis == p->rank - 1) {
      if (i > 0) {
        if (p->col + 2 + p->width + 1 > LINE_WIDTH) {
          fputc(',', p->out);
          newline(p, axis + 1);
        } else {
          fputs(", ", p->out);
          p->col += 2;
        }
      }
      fprintf(p->out, "%*s", p->width, p->text[offset + i]);
      p->col += p->width;
    } else {
      if (i > 0) {
        fputc(',', p->out);
        for (int k = 0; k < p->rank - 2 - axis; k++) fputc('\n', p->out);
        newline(p, axis + 1);
      }
      print_block(p, axis + 1, offset + i * stride);
    }
  }
  fputc(']', p->out);
  p->col++;
}

static int print_full(FILE *out, const char *prefix, smelt_dtype dt, int rank,
                      const int64_t *dims, const void *data, int64_t numel) {
  fputs(prefix, out);
  if (rank == 0) {
    char s[ELEM_CAP];
    fmt_elem(s, sizeof s, dt, data, 0);
    fprintf(out, "%s\n", s);
    return 0;
  }
  char (*text)[ELEM_CAP] = malloc((size_t)(numel ? numel : 1) * ELEM_CAP);
  if (!text) {
    fputc('\n', out);
    msg("out of memory");
    return -1;
  }
  int width = 0;
  for (int64_t i = 0; i < numel; i++) {
    fmt_elem(text[i], ELEM_CAP, dt, data, i);
    int w = (int)strlen(text[i]);
    if (w > width) width = w;
  }
  printer p = {out, rank, dims, text, width, (int)strlen(prefix), (int)strlen(prefix)};
  /* An empty array prints as [] (NumPy prints any shape with a 0 so). */
  if (numel == 0)
    fputs("[]", out);
  else
    print_block(&p, 0, 0);
  fputc('\n', out);
  free(text);
  return 0;
}

/* Large arrays: the first and last values in row-major order, then the
 * range and mean (of the non-NaN values, with the NaN count). */
static void print_summary(FILE *out, const char *prefix, smelt_dtype dt, const void *data,
                          int64_t numel) {
  enum { HEAD = 6, TAIL = 3 };
  char s[ELEM_CAP];
  fprintf(out, "%s[", prefix);
  for (int64_t i = 0; i < HEAD; i++) {
    fmt_elem(s, sizeof s, dt, data, i);
    fprintf(out, "%s, ", s);
  }
  fputs("...", out);
  for (int64_t i = numel - TAIL; i < numel; i++) {
    fmt_elem(s, sizeof s, dt, data, i);
    fprintf(out, ", %s", s);
  }
  fputs("]\n", out);

  int64_t nans = 0, count = 0;
  double lo = INFINITY, hi = -INFINITY;
  long double sum = 0;
  int64_t ilo = INT64_MAX, ihi = INT64_MIN;
  for (int64_t i = 0; i < numel; i++) {
    if (dt == SMELT_I64) {
      int64_t v = ((const int64_t *)data)[i];
      if (v < ilo) ilo = v;
      if (v > ihi) ihi = v;
    }
    double v = elem_double(dt, data, i);
    if (isnan(v)) {
      nans++;
      continue;
    }
    count++;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
    sum += v;
  }
  fprintf(out, "%*s(%" PRId64 " values", (int)strlen(prefix), "", numel);
  if (count == 0) {
    fputs(", all NaN)\n", out);
    return;
  }
  char a[ELEM_CAP], b[ELEM_CAP], m[ELEM_CAP];
  if (dt == SMELT_I64) {
    snprintf(a, sizeof a, "%" PRId64, ilo);
    snprintf(b, sizeof b, "%" PRId64, ihi);
  } else if (dt == SMELT_BOOL) {
    snprintf(a, sizeof a, "%s", lo != 0 ? "true" : "false");
    snprintf(b, sizeof b, "%s", hi != 0 ? "true" : "false");
  } else {
    fmt_float(a, sizeof a, lo, dt == SMELT_F32);
    fmt_float(b, sizeof b, hi, dt == SMELT_F32);
  }
  fmt_float(m, sizeof m, (double)(sum / (long double)count), false);
  fprintf(out, "; min %s, max %s, mean %s", a, b, m);
  if (nans) fprintf(out, "; %" PRId64 " NaN, not counted", nans);
  fputs(")\n", out);
}

static int print_output(FILE *out, const char *name, smelt_dtype dt, int rank,
                        const int64_t *dims, const void *data, int64_t numel) {
  char type[256], prefix[512];
  type_str(type, sizeof type, dt, rank, dims);
  snprintf(prefix, sizeof prefix, "%s: %s = ", name, type);
  if (numel <= PRINT_FULL_MAX) return print_full(out, prefix, dt, rank, dims, data, numel);
  print_summary(out, prefix, dt, data, numel);
  return 0;
}

/* ------------------------------------------------------------------ run */

typedef struct input_arg {
  const char *arg;  /* NAME=PATH as given */
  char *name;       /* malloc'ed */
  const char *path; /* into arg */
  sm_npy array;
} input_arg;

/* Splits "NAME=PATH"; returns false on a malformed argument. */
static bool split_input(const char *arg, input_arg *in) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg || eq[1] == 0) return false;
  size_t n = (size_t)(eq - arg);
  in->name = malloc(n + 1);
  if (!in->name) return false;
  memcpy(in->name, arg, n);
  in->name[n] = 0;
  in->path = eq + 1;
  in->arg = arg;
  return true;
}

/* Takes an option's value: "--opt VALUE" or "--opt=VALUE". Returns the
 * value or NULL when this argument is not the option. *i advances past
 * a separate value; *missing tells that the option came without one. */
static const char *opt_value(int argc, char **argv, int *i, const char *lng, const char *shrt,
                             bool *missing) {
  const char *a = argv[*i];
  size_t n = strlen(lng);
  *missing = false;
  if (strcmp(a, lng) == 0 || (shrt && strcmp(a, shrt) == 0)) {
    if (*i + 1 >= argc) {
      *missing = true;
      return NULL;
    }
    return argv[++*i];
  }
  if (strncmp(a, lng, n) == 0 && a[n] == '=') return a + n + 1;
  return NULL;
}

static bool is_help(const char *a) { return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0; }

/* --------------------------------------------------- compile options */

/* The options run and compile share: how the program is compiled. */
typedef struct compile_args {
  smelt_compile_options o; /* from smelt_compile_defaults() */
  bool target_given;
  bool stats;
} compile_args;

static const char target_list[] = "cpu, interp, cuda, auto";

/* A whole number in [lo, hi]; false when v is anything else. */
static bool parse_int(const char *v, long lo, long hi, int *out) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (!v[0] || *end || errno || n < lo || n > hi) return false;
  *out = (int)n;
  return true;
}

/* Takes argv[*i] when it is a compile option. Returns 1 when it was one,
 * 0 when not, and -1 after printing a usage error. */
static int compile_option(const char *cmd, int argc, char **argv, int *i, compile_args *c) {
  const char *a = argv[*i], *v;
  bool missing;
  if ((v = opt_value(argc, argv, i, "--target", NULL, &missing)) || missing) {
    if (missing) {
      usage_error(cmd, "%s: --target needs a value (targets: %s)", cmd, target_list);
      return -1;
    }
    smelt_target t = SMELT_TARGET_AUTO;
    while (t <= SMELT_TARGET_CUDA && strcmp(smelt_target_name(t), v) != 0) t++;
    if (t > SMELT_TARGET_CUDA) {
      usage_error(cmd, "%s: unknown target '%s' (targets: %s)", cmd, v, target_list);
      return -1;
    }
    c->o.target = t;
    c->target_given = true;
  } else if ((v = opt_value(argc, argv, i, "--threads", NULL, &missing)) || missing) {
    if (missing || !parse_int(v, 1, 4096, &c->o.num_threads)) {
      usage_error(cmd, "%s: --threads needs a number of threads from 1 to 4096%s%s%s", cmd,
                  v ? ", not '" : "", v ? v : "", v ? "'" : "");
      return -1;
    }
  } else if ((v = opt_value(argc, argv, i, "--opt-level", NULL, &missing)) || missing) {
    if (missing || !parse_int(v, 0, 3, &c->o.opt_level)) {
      usage_error(cmd, "%s: --opt-level needs 0, 1, 2 or 3%s%s%s", cmd, v ? ", not '" : "",
                  v ? v : "", v ? "'" : "");
      return -1;
    }
  } else if (strcmp(a, "--reassociate") == 0) {
    c->o.reassociate = true;
  } else if (strcmp(a, "--no-cache") == 0) {
    c->o.cache_dir = NULL;
  } else if (strcmp(a, "--stats") == 0) {
    c->stats = true;
  } else {
    return 0;
  }
  return 1;
}

/* Prints smelt_program_get_stats on stderr, one "stats: " line a field. */
static void print_stats(const smelt_program *pr) {
  smelt_program_stats st;
  if (smelt_program_get_stats(pr, &st)) return;
  fprintf(stderr,
          "stats: target      %s\n"
          "stats: kernels     %d\n"
          "stats: buffers     %d\n"
          "stats: arena bytes %zu (%zu without reuse)\n"
          "stats: compile ms  %.3f\n"
          "stats: cache hit   %s\n",
          smelt_target_name(st.target), st.kernels, st.buffers, st.arena_bytes,
          st.unplanned_bytes, st.compile_ms, st.from_cache ? "yes" : "no");
}

/* The names of the graph's outputs (*n of them) in a malloc'ed array;
 * NULL when out of memory (after printing that). */
static const char **output_names(const smelt_graph *g, size_t *n) {
  *n = smelt_graph_output_count(g);
  const char **names = malloc((*n ? *n : 1) * sizeof *names);
  if (!names) {
    msg("out of memory");
    return NULL;
  }
  for (size_t i = 0; i < *n; i++) smelt_graph_output(g, i, &names[i]);
  return names;
}

/* New params for g; NULL after printing an error. */
static smelt_params *new_params(const smelt_graph *g, const char *display) {
  smelt_params *p = smelt_params_new(g);
  if (!p) {
    msg("out of memory");
    return NULL;
  }
  if (smelt_params_error(p)) {
    msg("%s: params: %s", display, smelt_params_error(p));
    smelt_params_free(p);
    return NULL;
  }
  return p;
}

/* Compiles the outputs of g; NULL after printing the program's error. */
static smelt_program *compile_outputs(smelt_graph *g, smelt_params *params, const char *display,
                                      const smelt_compile_options *o) {
  size_t n = 0;
  const char **names = output_names(g, &n);
  if (!names) return NULL;
  smelt_program *pr = smelt_program_compile(g, params, (int)n, names, 0, NULL, o);
  free(names);
  if (!pr) {
    msg("out of memory");
    return NULL;
  }
  if (smelt_program_error(pr)) {
    msg("%s: %s", display, smelt_program_error(pr));
    smelt_program_free(pr);
    return NULL;
  }
  return pr;
}

/* Lists the graph's input nodes (by index) into idx; returns the count. */
static size_t graph_inputs(const smelt_graph *g, size_t **idx) {
  size_t n = smelt_graph_node_count(g), count = 0;
  *idx = malloc((n ? n : 1) * sizeof **idx);
  if (!*idx) return 0;
  for (size_t i = 0; i < n; i++) {
    smelt_node nd = smelt_graph_node(g, i);
    const char *op = smelt_node_op(g, nd);
    if (op && strcmp(op, "input") == 0) (*idx)[count++] = i;
  }
  return count;
}

static void node_type(const smelt_graph *g, smelt_node n, char *dst, size_t cap) {
  int rank = 0;
  const int64_t *dims = smelt_node_shape(g, n, &rank);
  type_str(dst, cap, smelt_node_dtype(g, n), rank, dims);
}

/* The node of output `name` (invalid when there is none). */
static smelt_node find_output(const smelt_graph *g, const char *name) {
  for (size_t j = 0; j < smelt_graph_output_count(g); j++) {
    const char *oname = NULL;
    smelt_node n = smelt_graph_output(g, j, &oname);
    if (strcmp(oname, name) == 0) return n;
  }
  return SMELT_INVALID;
}

/* What run does besides compiling: a declared program (NULL: every
 * output), and how many times it runs. */
typedef struct run_args {
  const char *program;
  long steps;
} run_args;

static int run_graph(const char *file, input_arg *ins, int nin, const char *outdir, bool quiet,
                     const compile_args *ca, const run_args *ra) {
  int rc = EXIT_ERR;
  smelt_graph *g = NULL;
  smelt_params *params = NULL;
  smelt_program *pr = NULL;
  size_t *inputs = NULL;
  void *buf = NULL;
  const char *display = strcmp(file, "-") == 0 ? "<stdin>" : file;

  g = load_graph(file);
  if (!g) goto done;
  size_t ninputs = graph_inputs(g, &inputs);
  if (!inputs) {
    msg("out of memory");
    goto done;
  }

  /* Every --input names an input of the graph, once. */
  for (int k = 0; k < nin; k++) {
    for (int j = 0; j < k; j++)
      if (strcmp(ins[j].name, ins[k].name) == 0) {
        msg("input '%s' is given twice (--input %s and --input %s)", ins[k].name, ins[j].arg,
            ins[k].arg);
        goto done;
      }
    smelt_node nd = smelt_find(g, ins[k].name);
    const char *op = smelt_node_valid(nd) ? smelt_node_op(g, nd) : NULL;
    if (!op || strcmp(op, "input") != 0) {
      char list[512] = "";
      size_t o = 0;
      for (size_t i = 0; i < ninputs && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "",
                              smelt_node_name(g, smelt_graph_node(g, inputs[i])));
      if (ninputs)
        msg("--input %s: %s has no input named '%s' (its inputs: %s)", ins[k].arg, display,
            ins[k].name, list);
      else
        msg("--input %s: %s has no input named '%s' (it has no inputs)", ins[k].arg, display,
            ins[k].name);
      goto done;
    }
  }
  /* Every input of the graph is given. */
  int missing = 0;
  for (size_t i = 0; i < ninputs; i++) {
    smelt_node nd = smelt_graph_node(g, inputs[i]);
    const char *name = smelt_node_name(g, nd);
    bool given = false;
    for (int k = 0; k < nin && !given; k++) given = strcmp(ins[k].name, name) == 0;
    if (!given) {
      char type[256];
      node_type(g, nd, type, sizeof type);
      msg("missing input '%s' (%s): pass it with --input %s=FILE.npy", name, type, name);
      missing++;
    }
  }
  if (missing) goto done;

  /* Read and check every input before compiling (which takes a while). */
  for (int k = 0; k < nin; k++) {
    char err[1024];
    input_arg *in = &ins[k];
    if (sm_npy_read_file(in->path, &in->array, err, sizeof err)) {
      msg("input '%s': %s", in->name, err);
      goto done;
    }
    smelt_node nd = smelt_find(g, in->name);
    int rank = 0;
    const int64_t *dims = smelt_node_shape(g, nd, &rank);
    smelt_dtype dt = smelt_node_dtype(g, nd);
    bool same = dt == in->array.dtype && rank == in->array.rank;
    for (int d = 0; same && d < rank; d++) same = dims[d] == in->array.dims[d];
    if (!same) {
      char want[256], have[256];
      type_str(want, sizeof want, dt, rank, dims);
      type_str(have, sizeof have, in->array.dtype, in->array.rank, in->array.dims);
      char hint[64] = "";
      if (dt != in->array.dtype && (unsigned)dt < SMELT_DTYPE_COUNT) {
        static const char *const np[SMELT_DTYPE_COUNT] = {"float32", "float64", "int32",
                                                          "int64", "bool_"};
        snprintf(hint, sizeof hint, " (convert it with .astype(numpy.%s))", np[dt]);
      }
      msg("input '%s': %s holds %s, but the graph's input is %s%s", in->name, in->path, have,
          want, hint);
      goto done;
    }
  }

  /* The outputs to print: the declared program's, or every output. */
  smelt_program_decl decl = {0};
  long pi = ra->program ? smelt_graph_find_program(g, ra->program) : -1;
  if (pi >= 0) smelt_graph_program(g, (size_t)pi, &decl);
  size_t nout = ra->program ? (size_t)decl.noutputs : smelt_graph_output_count(g);
  if (nout == 0 && !ra->program) {
    msg("note: %s has no outputs", display);
    rc = EXIT_OK;
    goto done;
  }
  params = new_params(g, display);
  if (!params) goto done;
  if (ra->program) {
    pr = smelt_program_compile_named(g, params, ra->program, &ca->o);
    if (!pr) {
      msg("out of memory");
      goto done;
    }
    if (smelt_program_error(pr)) {
      msg("%s: %s", display, smelt_program_error(pr));
      goto done;
    }
  } else {
    pr = compile_outputs(g, params, display, &ca->o);
  }
  if (!pr) goto done;
  if (ca->stats) print_stats(pr);
  for (int k = 0; k < nin; k++) {
    input_arg *in = &ins[k];
    if (smelt_program_bind(pr, in->name, in->array.dtype, in->array.rank, in->array.dims,
                           in->array.data, in->array.nbytes)) {
      const char *e = smelt_program_error(pr);
      msg("input '%s': %s", in->name, e ? e : "cannot bind");
      goto done;
    }
  }
  /* Params live in memory for this process: each run sees the updates of
   * the one before. */
  for (long step = 1; step <= ra->steps; step++)
    if (smelt_program_run(pr)) {
      const char *e = smelt_program_error(pr);
      if (ra->steps > 1) msg("%s: run %ld: %s", display, step, e ? e : "run failed");
      else msg("%s: %s", display, e ? e : "run failed");
      goto done;
    }

  if (outdir && make_dirs(outdir)) goto done;
  for (size_t i = 0; i < nout; i++) {
    const char *name = ra->program ? decl.outputs[i] : NULL;
    smelt_node nd = ra->program ? find_output(g, name) : smelt_graph_output(g, i, &name);
    int rank = 0;
    const int64_t *dims = smelt_node_shape(g, nd, &rank);
    smelt_dtype dt = smelt_node_dtype(g, nd);
    int64_t numel = smelt_node_numel(g, nd);
    size_t nbytes = (size_t)numel * smelt_dtype_size(dt);
    buf = malloc(nbytes ? nbytes : 1);
    if (!buf) {
      msg("output '%s': out of memory (%zu bytes)", name, nbytes);
      goto done;
    }
    if (smelt_program_read(pr, name, dt, buf, nbytes)) {
      const char *e = smelt_program_error(pr);
      msg("output '%s': %s", name, e ? e : "cannot read");
      goto done;
    }
    if (!quiet && print_output(stdout, name, dt, rank, dims, buf, numel)) goto done;
    if (outdir) {
      if (strchr(name, '/')) {
        msg("output '%s': the name cannot be a file name", name);
        goto done;
      }
      size_t plen = strlen(outdir) + strlen(name) + 6;
      char *path = malloc(plen);
      if (!path) {
        msg("out of memory");
        goto done;
      }
      snprintf(path, plen, "%s/%s.npy", outdir, name);
      char err[1024];
      int w = sm_npy_write_file(path, dt, rank, dims, buf, err, sizeof err);
      free(path);
      if (w) {
        msg("output '%s': %s", name, err);
        goto done;
      }
    }
    free(buf);
    buf = NULL;
  }
  rc = EXIT_OK;
done:
  free(buf);
  free(inputs);
  smelt_program_free(pr);
  smelt_params_free(params);
  smelt_graph_free(g);
  return rc;
}

static int cmd_run(int argc, char **argv) {
  const char *file = NULL, *outdir = NULL;
  bool quiet = false, options_done = false;
  compile_args ca = {smelt_compile_defaults(), false, false};
  run_args ra = {NULL, 1};
  int known;
  input_arg *ins = calloc((size_t)argc + 1, sizeof *ins);
  int nin = 0, rc = EXIT_USAGE;
  if (!ins) {
    msg("out of memory");
    return EXIT_ERR;
  }
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    bool missing;
    const char *v;
    if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
      if (file) {
        rc = usage_error("run", "run: unexpected argument '%s' (FILE is already '%s')", a, file);
        goto done;
      }
      file = a;
    } else if (strcmp(a, "--") == 0) {
      options_done = true;
    } else if (is_help(a)) {
      fputs(usage_run, stdout);
      rc = EXIT_OK;
      goto done;
    } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
      quiet = true;
    } else if ((v = opt_value(argc, argv, &i, "--input", "-i", &missing)) || missing) {
      if (missing) {
        rc = usage_error("run", "run: %s needs a value NAME=FILE.npy", a);
        goto done;
      }
      if (!split_input(v, &ins[nin])) {
        free(ins[nin].name);
        ins[nin].name = NULL;
        rc = usage_error("run", "run: malformed --input '%s': expected NAME=FILE.npy", v);
        goto done;
      }
      nin++;
    } else if ((v = opt_value(argc, argv, &i, "--output-dir", "-o", &missing)) || missing) {
      if (missing || !v[0]) {
        rc = usage_error("run", "run: %s needs a directory", a);
        goto done;
      }
      outdir = v;
    } else if ((v = opt_value(argc, argv, &i, "--program", "-p", &missing)) || missing) {
      if (missing || !v[0]) {
        rc = usage_error("run", "run: %s needs the name of a program the graph declares", a);
        goto done;
      }
      ra.program = v;
    } else if ((v = opt_value(argc, argv, &i, "--steps", NULL, &missing)) || missing) {
      int n = 0;
      if (missing || !parse_int(v, 1, 1000000000, &n)) {
        rc = usage_error("run", "run: --steps needs a number of runs from 1 to 1000000000%s%s%s",
                         v ? ", not '" : "", v ? v : "", v ? "'" : "");
        goto done;
      }
      ra.steps = n;
    } else if ((known = compile_option("run", argc, argv, &i, &ca)) != 0) {
      if (known < 0) goto done;
    } else {
      rc = usage_error("run", "run: unknown option '%s'", a);
      goto done;
    }
  }
  if (!file) {
    rc = usage_error("run", "run: missing FILE (the graph to run)");
    goto done;
  }
  rc = run_graph(file, ins, nin, outdir, quiet, &ca, &ra);
done:
  for (int k = 0; k < nin; k++) {
    free(ins[k].name);
    sm_npy_free(&ins[k].array);
  }
  free(ins);
  return rc;
}

/* -------------------------------------------------------------- compile */

/* The stages of --emit, in pipeline order (as "all" lists them). */
/* The stages of --emit, in pipeline order (as "all" lists them). The
 * backend stages belong to one target; cubin (binary) is not a dump stage. */
#define STAGE_CUBIN 0u
#define ANY_TARGET 0
static const struct {
  const char *name;
  unsigned bit;
  smelt_target target; /* ANY_TARGET, or the one target that makes it */
} stage_table[] = {
    {"graph", SM_DUMP_GRAPH, ANY_TARGET},     {"passes", SM_DUMP_PASSES, ANY_TARGET},
    {"fusion", SM_DUMP_FUSION, ANY_TARGET},   {"kernels", SM_DUMP_KERNELS, ANY_TARGET},
    {"llvm", SM_DUMP_LLVM, SMELT_TARGET_CPU}, {"asm", SM_DUMP_ASM, SMELT_TARGET_CPU},
    {"cuda", SM_DUMP_CUDA, SMELT_TARGET_CUDA}, {"ptx", SM_DUMP_PTX, SMELT_TARGET_CUDA},
    {"cubin", STAGE_CUBIN, SMELT_TARGET_CUDA}, {"dot", SM_DUMP_DOT, ANY_TARGET},
};
enum { NSTAGES = sizeof stage_table / sizeof stage_table[0] };
static const char stage_list[] =
    "graph, passes, fusion, kernels, llvm, asm (cpu), cuda, ptx, cubin (cuda), dot, all";

/* Adds the stages of a comma list to order[] (each once, in the order
 * first given). Returns 0, or -1 after printing a usage error. */
static int add_stages(const char *list, int *order, int *n, bool *named) {
  const char *p = list;
  for (;;) {
    size_t len = strcspn(p, ",");
    int first = 0, last = -1;
    if (len == 3 && strncmp(p, "all", 3) == 0) {
      last = NSTAGES - 1; /* cubin and the other target's stages are dropped later */
    } else {
      for (int s = 0; s < NSTAGES && last < 0; s++)
        if (strlen(stage_table[s].name) == len && strncmp(p, stage_table[s].name, len) == 0)
          first = last = s, named[s] = true;
    }
    if (last < 0) {
      if (len == 0)
        usage_error("compile", "compile: --emit '%s' has an empty stage (stages: %s)", list,
                    stage_list);
      else
        usage_error("compile", "compile: unknown stage '%.*s' in --emit (stages: %s)", (int)len,
                    p, stage_list);
      return -1;
    }
    for (int s = first; s <= last; s++) {
      bool seen = false;
      for (int k = 0; k < *n && !seen; k++) seen = order[k] == s;
      if (!seen) order[(*n)++] = s;
    }
    if (!p[len]) return 0;
    p += len + 1;
  }
}

/* Writes the captured stages to path ("-" or NULL: standard output), each
 * after a header line when there are several. Returns 0, or -1 after
 * printing an error. */
static int write_stages(const char *path, const int *order, int n, char *const *texts,
                        size_t binlen) {
  bool to_stdout = !path || strcmp(path, "-") == 0;
  FILE *f = to_stdout ? stdout : fopen(path, "w");
  if (!f) {
    msg("-o %s: cannot open for writing: %s", path, strerror(errno));
    return -1;
  }
  for (int k = 0; k < n; k++) {
    if (n > 1) fprintf(f, "=== %s ===\n", stage_table[order[k]].name);
    if (texts[k] && binlen) fwrite(texts[k], 1, binlen, f); /* cubin, alone */
    else if (texts[k]) fputs(texts[k], f);
  }
  if (to_stdout) return 0; /* main checks the writes to stdout */
  int bad = ferror(f);
  if (fclose(f) != 0 || bad) {
    msg("-o %s: error writing: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

static int compile_graph(const char *file, const int *order, int n, const char *outpath,
                         const compile_args *ca) {
  int rc = EXIT_ERR;
  const char *display = strcmp(file, "-") == 0 ? "<stdin>" : file;
  smelt_params *params = NULL;
  smelt_program *pr = NULL;
  char *texts[NSTAGES] = {0};
  smelt_graph *g = load_graph(file);
  if (!g) goto done;
  if (smelt_graph_output_count(g) == 0) {
    msg("%s: the graph has no outputs, so there is nothing to compile (declare one with "
        "'output NAME = %%id')",
        display);
    goto done;
  }
  params = new_params(g, display);
  if (!params) goto done;
  /* One compilation per stage, its dump captured; the llvm and asm stages
   * are generated afresh, never taken from the cache. */
  smelt_compile_options o = ca->o;
  o.dump = NULL;
  o.dump_dir = NULL;
  for (int k = 0; k < (n ? n : 1); k++) {
    smelt_program_free(pr);
    if (n) {
      unsigned bit = stage_table[order[k]].bit;
      o.dump = stage_table[order[k]].name;
      o.cache_dir = bit & (SM_DUMP_LLVM | SM_DUMP_ASM) ? NULL : ca->o.cache_dir;
      sm_dump_capture_begin(bit);
    }
    pr = compile_outputs(g, params, display, &o);
    if (n) texts[k] = sm_dump_capture_end();
    if (!pr) goto done;
  }
  smelt_program_stats st = {0};
  if (smelt_program_get_stats(pr, &st) == 0 && st.target == SMELT_TARGET_INTERP && n) {
    msg("%s: the program was made for the interp target, which compiles nothing (use --target "
        "cpu)",
        display);
    goto done;
  }
  if (ca->stats) print_stats(pr);
  for (int k = 0; k < n; k++)
    if (!texts[k]) {
      if (st.kernels == 0)
        msg("note: the %s stage is empty: the program has no kernels",
            stage_table[order[k]].name);
      else
        msg("note: the %s stage is empty", stage_table[order[k]].name);
    }
  if (n && write_stages(outpath, order, n, texts, 0)) goto done;
  rc = EXIT_OK;
done:
  for (int k = 0; k < n; k++) smelt_free(texts[k]);
  smelt_program_free(pr);
  smelt_params_free(params);
  smelt_graph_free(g);
  return rc;
}

/* The stages of the cuda target, which need no GPU: the graph planned,
 * printed as CUDA C and compiled by NVRTC for --arch (default: the
 * device's when there is one, else sm_80), each stage compiled on its own
 * with its dump captured. */
static int compile_graph_cuda(const char *file, const int *order, int n, const char *outpath,
                              const compile_args *ca) {
  int rc = EXIT_ERR;
  const char *display = strcmp(file, "-") == 0 ? "<stdin>" : file;
  char *texts[NSTAGES] = {0};
  uint32_t *roots = NULL;
  smelt_graph *g = load_graph(file);
  if (!g) goto done;
  size_t nout = smelt_graph_output_count(g);
  if (nout == 0) {
    msg("%s: the graph has no outputs, so there is nothing to compile (declare one with "
        "'output NAME = %%id')",
        display);
    goto done;
  }
  roots = malloc(sizeof *roots * nout);
  if (!roots) {
    msg("out of memory");
    goto done;
  }
  for (size_t j = 0; j < nout; j++) roots[j] = smelt_graph_output(g, j, NULL).index - 1;
  char *err = NULL;
  int cc = 0;
  if (sm_cuda_pick_arch(&ca->o, sm_cuda_device_arch(), &cc, &err)) {
    msg("%s", err ? err : "out of memory");
    smelt_free(err);
    goto done;
  }
  smelt_compile_options o = ca->o;
  double ms = 0;
  bool from_cache = false;
  size_t nkernels = 0, cubin_len = 0;
  for (int k = 0; k < (n ? n : 1); k++) {
    sm_cuda_image img;
    sm_dump dump = {0};
    bool cubin = n && stage_table[order[k]].bit == STAGE_CUBIN;
    if (n && !cubin) {
      dump.stages = stage_table[order[k]].bit;
      sm_dump_capture_begin(dump.stages);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int out = cubin || !n ? SM_NVRTC_CUBIN
              : dump.stages == SM_DUMP_PTX ? SM_NVRTC_PTX
                                           : SM_CUDA_PRINT_ONLY;
    int failed = sm_cuda_build(g, nout, roots, &o, cc, out, &dump, &img, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (n && !cubin) texts[k] = sm_dump_capture_end();
    if (failed) {
      msg("%s: %s", display, err ? err : "out of memory");
      smelt_free(err);
      goto done;
    }
    nkernels = img.plan->nkernels;
    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    from_cache = img.from_cache;
    if (cubin && img.code) {
      texts[k] = malloc(img.code_len + 1);
      if (texts[k]) memcpy(texts[k], img.code, img.code_len);
      if (!texts[k]) msg("out of memory");
      cubin_len = img.code_len;
    }
    sm_cuda_image_free(&img);
  }
  if (ca->stats)
    fprintf(stderr,
            "stats: target      cuda\n"
            "stats: arch        sm_%d\n"
            "stats: kernels     %zu\n"
            "stats: compile ms  %.3f\n"
            "stats: cache hit   %s\n",
            cc, nkernels, ms, from_cache ? "yes" : "no");
  for (int k = 0; k < n; k++)
    if (!texts[k]) msg("note: the %s stage is empty%s", stage_table[order[k]].name,
                       nkernels ? "" : ": the program has no kernels");
  if (n && write_stages(outpath, order, n, texts, cubin_len)) goto done;
  rc = EXIT_OK;
done:
  for (int k = 0; k < n; k++) free(texts[k]);
  free(roots);
  smelt_graph_free(g);
  return rc;
}

/* The default prefix: the object's file name without its extension when
 * that is a C identifier, else "model". */
static const char *default_prefix(const char *objpath, char *buf, size_t cap) {
  const char *base = strrchr(objpath, '/');
  base = base ? base + 1 : objpath;
  size_t n = strcspn(base, ".");
  bool ok = n > 0 && n < cap && (isalpha((unsigned char)base[0]) || base[0] == '_');
  for (size_t i = 0; ok && i < n; i++) ok = isalnum((unsigned char)base[i]) || base[i] == '_';
  if (!ok) return "model";
  memcpy(buf, base, n);
  buf[n] = 0;
  return buf;
}

/* smeltc compile FILE -o FILE.o ...: the ahead-of-time object. */
static int compile_object(const char *file, smelt_aot_options *ao) {
  const char *display = strcmp(file, "-") == 0 ? "<stdin>" : file;
  smelt_graph *g = load_graph(file);
  if (!g) return EXIT_ERR;
  char prefix[128];
  if (!ao->prefix) ao->prefix = default_prefix(ao->object_path, prefix, sizeof prefix);
  const char *slash = strrchr(display, '/');
  ao->source_name = slash ? slash + 1 : display;
  char *err = NULL;
  int rc = EXIT_OK;
  if (smelt_aot_compile(g, ao, &err)) {
    msg("%s: %s", display, err ? err : "out of memory");
    rc = EXIT_ERR;
  }
  smelt_free(err);
  smelt_graph_free(g);
  return rc;
}

static int cmd_compile(int argc, char **argv) {
  const char *file = NULL, *outpath = NULL;
  bool options_done = false;
  compile_args ca = {smelt_compile_defaults(), false, false};
  smelt_aot_options ao = smelt_aot_defaults();
  ao.prefix = NULL;
  const char *aot_flag = NULL, *stage_flag = NULL; /* one of each form's own options */
  int order[NSTAGES], n = 0, known;
  bool named[NSTAGES] = {0}; /* stages given by name (not through "all") */
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    bool missing;
    const char *v;
    if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
      if (file)
        return usage_error("compile", "compile: unexpected argument '%s' (FILE is already '%s')",
                           a, file);
      file = a;
    } else if (strcmp(a, "--") == 0) {
      options_done = true;
    } else if (is_help(a)) {
      fputs(usage_compile, stdout);
      return EXIT_OK;
    } else if ((v = opt_value(argc, argv, &i, "--emit", "-e", &missing)) || missing) {
      if (missing)
        return usage_error("compile", "compile: %s needs a stage (stages: %s)", a, stage_list);
      if (add_stages(v, order, &n, named)) return EXIT_USAGE;
      stage_flag = "--emit";
    } else if ((v = opt_value(argc, argv, &i, "--output", "-o", &missing)) || missing) {
      if (missing || !v[0]) return usage_error("compile", "compile: %s needs a file name", a);
      outpath = v;
    } else if ((v = opt_value(argc, argv, &i, "--header", NULL, &missing)) || missing) {
      if (missing || !v[0]) return usage_error("compile", "compile: --header needs a file name");
      ao.header_path = v;
      aot_flag = "--header";
    } else if ((v = opt_value(argc, argv, &i, "--prefix", NULL, &missing)) || missing) {
      if (missing || !v[0]) return usage_error("compile", "compile: --prefix needs a C identifier");
      ao.prefix = v;
      aot_flag = "--prefix";
    } else if ((v = opt_value(argc, argv, &i, "--weights", NULL, &missing)) || missing) {
      if (missing || !v[0])
        return usage_error("compile", "compile: --weights needs a .safetensors file");
      ao.weights_path = v;
      aot_flag = "--weights";
    } else if ((v = opt_value(argc, argv, &i, "--triple", NULL, &missing)) || missing) {
      if (missing || !v[0]) return usage_error("compile", "compile: --triple needs a target triple");
      ao.triple = v;
      aot_flag = "--triple";
    } else if ((v = opt_value(argc, argv, &i, "--cpu", NULL, &missing)) || missing) {
      if (missing || !v[0]) return usage_error("compile", "compile: --cpu needs a CPU name");
      ao.cpu = v;
      aot_flag = "--cpu";
    } else if ((v = opt_value(argc, argv, &i, "--features", NULL, &missing)) || missing) {
      if (missing) return usage_error("compile", "compile: --features needs a feature list");
      ao.features = v;
      aot_flag = "--features";
    } else if ((v = opt_value(argc, argv, &i, "--arch", NULL, &missing)) || missing) {
      if (missing || !v[0])
        return usage_error("compile", "compile: --arch needs a CUDA architecture such as sm_90");
      ca.o.cuda_arch = v;
      stage_flag = "--arch";
    } else if ((known = compile_option("compile", argc, argv, &i, &ca)) != 0) {
      if (known < 0) return EXIT_USAGE;
      if (strcmp(a, "--threads") == 0 || strcmp(a, "--no-cache") == 0 ||
          strcmp(a, "--stats") == 0 || strncmp(a, "--threads=", 10) == 0)
        stage_flag = a;
    } else {
      return usage_error("compile", "compile: unknown option '%s'", a);
    }
  }
  if (!file) return usage_error("compile", "compile: missing FILE (the graph to compile)");
  if (ca.o.target == SMELT_TARGET_INTERP)
    return usage_error("compile",
                       "compile: the interp target runs the graph as it is and compiles "
                       "nothing (compile for --target cpu)");
  if (!ca.target_given) ca.o.target = SMELT_TARGET_CPU;
  if (stage_flag) {
    if (aot_flag)
      return usage_error("compile",
                         "compile: %s writes an object, and %s writes compiler stages: "
                         "use one form at a time",
                         aot_flag, stage_flag);
    if (n == 0 && !ca.stats)
      return usage_error("compile", "compile: missing --emit STAGE (stages: %s)", stage_list);
    if (ca.o.cuda_arch && ca.o.target != SMELT_TARGET_CUDA)
      return usage_error("compile", "compile: --arch is for --target cuda (not %s)",
                         smelt_target_name(ca.o.target));
    /* keep the stages this target makes: one named for another target is
     * an error, "all" just skips them (and cubin, which is binary) */
    int kept = 0;
    for (int k = 0; k < n; k++) {
      int st = order[k];
      bool other = stage_table[st].target != ANY_TARGET && stage_table[st].target != ca.o.target;
      if (other && named[st])
        return usage_error("compile", "compile: the %s stage is made by --target %s (not %s)",
                           stage_table[st].name, smelt_target_name(stage_table[st].target),
                           smelt_target_name(ca.o.target));
      if (other || (stage_table[st].bit == STAGE_CUBIN && !named[st])) continue;
      order[kept++] = st;
    }
    n = kept;
    for (int k = 0; k < n; k++)
      if (stage_table[order[k]].bit == STAGE_CUBIN && n > 1)
        return usage_error("compile", "compile: cubin is binary: emit it alone (--emit cubin -o "
                                      "FILE.cubin)");
    if (ca.o.target == SMELT_TARGET_CUDA) return compile_graph_cuda(file, order, n, outpath, &ca);
    return compile_graph(file, order, n, outpath, &ca);
  }
  if (!outpath)
    return usage_error("compile", "compile: missing -o FILE.o (the object to write), or "
                                  "--emit STAGE to print compiler stages");
  if (strcmp(outpath, "-") == 0)
    return usage_error("compile", "compile: an object is not written to standard output "
                                  "(give -o FILE.o)");
  if (ca.o.target != SMELT_TARGET_CPU)
    return usage_error("compile", "compile: objects are compiled for --target cpu only (not %s)",
                       smelt_target_name(ca.o.target));
  ao.object_path = outpath;
  ao.opt_level = ca.o.opt_level;
  ao.reassociate = ca.o.reassociate;
  return compile_object(file, &ao);
}

/* ----------------------------------------------------------------- dump */

static int cmd_dump(int argc, char **argv) {
  const char *file = NULL;
  bool dot = false, options_done = false;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
      if (file)
        return usage_error("dump", "dump: unexpected argument '%s' (FILE is already '%s')", a,
                           file);
      file = a;
    } else if (strcmp(a, "--") == 0) {
      options_done = true;
    } else if (is_help(a)) {
      fputs(usage_dump, stdout);
      return EXIT_OK;
    } else if (strcmp(a, "--dot") == 0) {
      dot = true;
    } else {
      return usage_error("dump", "dump: unknown option '%s'", a);
    }
  }
  if (!file) return usage_error("dump", "dump: missing FILE (the graph to print)");
  smelt_graph *g = load_graph(file);
  if (!g) return EXIT_ERR;
  char *text = dot ? smelt_graph_print_dot(g) : smelt_graph_print(g);
  smelt_graph_free(g);
  if (!text) {
    msg("out of memory printing the graph");
    return EXIT_ERR;
  }
  size_t n = strlen(text);
  fputs(text, stdout);
  if (n == 0 || text[n - 1] != '\n') fputc('\n', stdout);
  smelt_free(text);
  return EXIT_OK;
}

/* ----------------------------------------------------------------- main */

static int help(int argc, char **argv) {
  if (argc == 0) {
    fputs(usage_main, stdout);
    return EXIT_OK;
  }
  if (argc > 1) return usage_error(NULL, "help: too many arguments");
  if (strcmp(argv[0], "run") == 0) fputs(usage_run, stdout);
  else if (strcmp(argv[0], "compile") == 0) fputs(usage_compile, stdout);
  else if (strcmp(argv[0], "dump") == 0) fputs(usage_dump, stdout);
  else if (strcmp(argv[0], "help") == 0) fputs(usage_main, stdout);
  else return usage_error(NULL, "help: unknown command '%s'", argv[0]);
  return EXIT_OK;
}

int main(int argc, char **argv) {
  int rc;
  if (argc < 2) {
    msg("missing command");
    fputs(usage_main, stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (is_help(cmd))
    rc = help(0, NULL);
  else if (strcmp(cmd, "help") == 0)
    rc = help(argc - 2, argv + 2);
  else if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
    printf("smeltc %s\n", smelt_version());
    rc = EXIT_OK;
  } else if (strcmp(cmd, "run") == 0)
    rc = cmd_run(argc - 2, argv + 2);
  else if (strcmp(cmd, "compile") == 0)
    rc = cmd_compile(argc - 2, argv + 2);
  else if (strcmp(cmd, "dump") == 0)
    rc = cmd_dump(argc - 2, argv + 2);
  else if (cmd[0] == '-')
    rc = usage_error(NULL, "unknown option '%s'", cmd);
  else
    rc = usage_error(NULL, "unknown command '%s'", cmd);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    msg("error writing to standard output: %s", strerror(errno));
    if (rc == EXIT_OK) rc = EXIT_ERR;
  }
  return rc;
}
