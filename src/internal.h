/* Internal declarations shared by the stages of libsmelt. Nothing here is
 * exported from the shared library (see src/libsmelt.map). */
#ifndef SMELT_INTERNAL_H
#define SMELT_INTERNAL_H

#include "smelt/smelt.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

/* The largest element count of a shape: byte sizes of every dtype (8
 * bytes at most) stay far inside int64. Builders and the text parser
 * refuse more, saying "(more than 2^59)". */
#define SM_MAX_NUMEL ((int64_t)1 << 59)

/* ------------------------------------------------------------ allocation */
/* Every allocation of the library goes through these, so that tests can
 * fail the n-th allocation (sm_alloc_fail_after) and check that the error
 * is clean and nothing leaks. */
void *sm_malloc(size_t n);
void *sm_calloc(size_t count, size_t size);
void *sm_realloc(void *p, size_t n);
void sm_free(void *p);
char *sm_strdup(const char *s);
/* Makes the allocation after the next n succeed-ones fail (n = 0: the next
 * one fails); a negative n turns failure injection off. Test-only. */
void sm_alloc_fail_after(long n);
/* Number of allocations failed by injection so far. */
long sm_alloc_failures(void);

/* A growable string buffer; on allocation failure it sets oom and keeps
 * accepting (and dropping) text so that callers check once at the end. */
typedef struct sm_buf {
  char *data;
  size_t len, cap;
  bool oom;
} sm_buf;
void sm_buf_printf(sm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sm_buf_puts(sm_buf *b, const char *s);
/* Takes the string (NUL-terminated) out of the buffer; NULL when oom. */
char *sm_buf_take(sm_buf *b);
void sm_buf_free(sm_buf *b);
/* A formatted string from sm_malloc, NULL when out of memory. */
char *sm_vfmt(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
char *sm_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Appends "[3,4]" */
void sm_buf_shape(sm_buf *b, int rank, const int64_t *dims);
/* Appends a double so that it parses back to the same value ("nan",
 * "inf", "-inf" for the specials). as_f32: shortest digits for a float. */
void sm_buf_number(sm_buf *b, double v, bool as_f32);

/* ------------------------------------------------------------------ ops */
/* One row per op in src/ops.c. The enum order is the table order. */
typedef enum sm_op {
  /* sources */
  OP_INPUT, OP_PARAM, OP_CONST, OP_IOTA, OP_RAND, OP_RANDN, OP_TRAINING,
  /* unary elementwise */
  OP_NEG, OP_ABS, OP_SIGN, OP_EXP, OP_LOG, OP_SQRT, OP_RSQRT, OP_RECIPROCAL, OP_SIN, OP_COS,
  OP_TANH, OP_SIGMOID, OP_RELU, OP_NOT, OP_STOP_GRADIENT, OP_CAST,
  /* binary elementwise */
  OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_MAXIMUM, OP_MINIMUM, OP_LT, OP_LE, OP_GT, OP_GE,
  OP_EQ, OP_NE, OP_AND, OP_OR,
  /* ternary elementwise */
  OP_WHERE,
  /* reductions: reduced axes are kept with size 1 (composites squeeze) */
  OP_REDUCE_SUM, OP_REDUCE_PROD, OP_REDUCE_MAX, OP_REDUCE_MIN, OP_ARGMAX, OP_ARGMIN,
  /* movement */
  OP_RESHAPE, OP_PERMUTE, OP_EXPAND, OP_SLICE, OP_FLIP, OP_UNFOLD, OP_PAD, OP_CONCAT,
  /* the rest */
  OP_MATMUL, OP_GATHER, OP_SCATTER_ADD, OP_ASSIGN,
  OP_COUNT
} sm_op;

typedef enum sm_op_class {
  OPC_SOURCE,
  OPC_UNARY,
  OPC_BINARY,
  OPC_TERNARY,
  OPC_REDUCE,    /* iattr = sorted axes */
  OPC_ARGREDUCE, /* iattr[0] = axis */
  OPC_VIEW,      /* reshape, permute, expand, slice, flip: an index map */
  OPC_PAD,
  OPC_CONCAT,
  OPC_MATMUL,
  OPC_GATHER,
  OPC_SCATTER,   /* iattr[0] = axis; inputs {index, src}; zeros + scattered sums */
  OPC_ASSIGN
} sm_op_class;

/* Result dtype rules of elementwise ops. */
typedef enum sm_dtype_rule {
  DTR_NONE,      /* not elementwise / decided by the builder */
  DTR_SAME,      /* the promoted dtype; bool rejected */
  DTR_NO_BOOL,   /* the promoted dtype; any bool operand rejected (sub) */
  DTR_SAME_BOOL, /* the promoted dtype; bool allowed */
  DTR_FLOAT,     /* the promoted dtype, integers and bool computed in f32 */
  DTR_COMPARE,   /* operands promoted, result bool */
  DTR_LOGICAL    /* any operands, result bool */
} sm_dtype_rule;

/* How a node's attributes are written in the text format. */
typedef enum sm_attr_format {
  ATF_NONE,
  ATF_AXES,  /* axes=[0,2] */
  ATF_AXIS,  /* axis=1 */
  ATF_PERM,  /* perm=[1,0] */
  ATF_SLICE, /* start=[..] step=[..] */
  ATF_PAD,   /* lo=[..] hi=[..] value=0 */
  ATF_UNFOLD, /* axis=2 size=3 step=1 */
  ATF_IOTA,  /* axis=0 start=0 step=1 */
  ATF_RAND,  /* seed=N (rand: lo/hi, randn: mean/std in fattr) */
  ATF_CONST, /* the value(s) */
  ATF_PARAM  /* init=... */
} sm_attr_format;

typedef struct sm_op_info {
  const char *name; /* text-format name */
  sm_op_class cls;
  int arity;        /* -1: any number >= 1 (concat) */
  sm_dtype_rule dtype_rule;
  sm_attr_format attrs;
  /* Elementwise semantics for the interpreter (and constant folding):
   * float math in double, integer math in int64. NULL where the op does not
   * apply to that domain. Unary ops ignore b. */
  double (*eval_f)(double a, double b);
  int64_t (*eval_i)(int64_t a, int64_t b);
} sm_op_info;

extern const sm_op_info sm_ops[OP_COUNT];
/* Looks an op up by its text name; OP_COUNT when unknown. */
sm_op sm_op_by_name(const char *name);

/* ---------------------------------------------------------------- nodes */
typedef struct sm_node {
  uint16_t op;
  uint8_t dtype;
  uint8_t rank;
  uint8_t flags; /* SM_NODE_* */
  uint32_t ninputs;
  uint32_t niattr;
  uint32_t *inputs; /* 0-based node indices, all smaller than this node's */
  int64_t *iattr;   /* op-specific integers (see below) */
  double fattr[2];  /* op-specific numbers */
  void *data;       /* const values / param init data (numel elements) */
  char *name;       /* NULL when unnamed */
  uint64_t hash;
  int64_t shape[SMELT_MAX_RANK];
} sm_node;
/* Created while building a backward graph (smelt_grad): evaluation
 * programs refuse outputs that depend on such nodes. */
#define SM_NODE_GRAD 1u

/*
 * Attributes by op:
 *  input:     name
 *  param:     name; iattr = {init kind, seed}; fattr = {a, b}; data (DATA)
 *  const:     data = numel values of dtype; iattr = {weak} (1 for literals)
 *  iota:      iattr = {axis}; fattr = {start, step}; value start + i*step
 *  rand:      iattr = {seed}; fattr = {lo, hi}
 *  randn:     iattr = {seed}; fattr = {mean, std}
 *  training:  bool[]: true in training programs (and plain interpreter runs),
 *             false in evaluation programs
 *  reduce_*:  iattr = axes, sorted ascending, kept with size 1
 *  argmax/min: iattr = {axis}, kept with size 1
 *  permute:   iattr = perm (result dim i is input dim perm[i])
 *  slice:     iattr = {start[rank], step[rank]} normalized (0 <= start, step >= 1)
 *  flip:      iattr = axes, sorted ascending
 *  pad:       iattr = {lo[rank], hi[rank]}; fattr[0] = value
 *  concat:    iattr = {axis}
 *  gather:    iattr = {axis}; inputs {x, index}, index has x's rank
 *  scatter_add: iattr = {axis}; inputs {index, src} of one shape; the result
 *             (its own shape) is zeros plus src summed at the indexed places
 *  matmul:    inputs [..., M, K] and [..., K, N] with equal batch dims
 *  assign:    inputs {param, value}; value has the param's dtype and shape
 * reshape and expand carry their result shape only; cast its dtype only.
 */

struct smelt_graph {
  uint32_t serial;
  sm_node *nodes;
  size_t nnodes, cap;
  /* hash-consing table: open addressing over node index + 1 (0 = empty) */
  uint32_t *table;
  size_t table_cap;
  /* name lookup: open addressing over node index + 1 (0 = empty) */
  uint32_t *names;
  size_t names_cap, nnames;
  /* outputs */
  struct sm_output {
    char *name;
    uint32_t node;
  } *outputs;
  size_t noutputs, outputs_cap;
  /* declared programs (smelt_graph_add_program) */
  struct sm_program_decl {
    char *name;
    bool eval;
    int noutputs, nupdates;
    char **outputs;       /* output names */
    smelt_node *updates;  /* assign nodes */
  } *programs;
  size_t nprograms, programs_cap;
  char *error;
  int grad_depth; /* > 0 while smelt_vjp builds: new nodes get SM_NODE_GRAD */
  /* arena for node payloads: a list of chunks */
  struct sm_chunk *arena;
};

/* The node behind a handle, NULL when the handle is invalid or foreign. */
const sm_node *sm_get(const smelt_graph *g, smelt_node n);
static inline smelt_node sm_handle(const smelt_graph *g, uint32_t index) {
  smelt_node h = {g->serial, index + 1};
  return h;
}
static inline int64_t sm_numel(int rank, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  return n;
}

/* The node behind a builder's argument; on a bad handle records "op: what
 * is an invalid handle" (or of another graph) and returns NULL. NULL without
 * a new error when the graph already failed (errors are sticky). */
const sm_node *sm_arg(smelt_graph *g, const char *op, smelt_node h, const char *what);
/* Normalizes a reduction's axis list for x under op's name: in range, no
 * repeats, sorted; naxes 0 = all axes; a 0-dim x accepts 0 and -1 (no
 * axes). Returns the count, or -1 with the error recorded. */
int sm_axes(smelt_graph *g, const char *op, smelt_node x, int naxes, const int *axes,
            int64_t *out);

/* Records the graph's first error (later ones are dropped) and returns
 * the invalid handle, so builders can `return sm_fail(g, ...)`. */
smelt_node sm_fail(smelt_graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
smelt_node sm_fail_oom(smelt_graph *g, const char *op);
/* Appends "%name: f32[3,4]" (or "%7: ...") describing a node. */
void sm_buf_describe(sm_buf *b, const smelt_graph *g, const sm_node *n);
/* The same into a fixed buffer ("?" when out of memory), for messages. */
void sm_describe(const smelt_graph *g, const sm_node *n, char *out, size_t len);
/* Node's printable id: its name or its index, written to out. */
void sm_node_id(const smelt_graph *g, const sm_node *n, char *out, size_t outlen);

/* 1 when root depends on a node of a backward graph (*culprit names it),
 * 0 when not, -1 when out of memory (evaluation programs refuse such
 * outputs). */
int sm_uses_gradient(const smelt_graph *g, uint32_t root, uint32_t *culprit);
/* smelt_graph_add_program that also tells which part failed: *culprit is
 * -1 for the program itself (its name), k < noutputs for output k, and
 * noutputs + k for update k (the text parser points at that token). */
int sm_graph_add_program(smelt_graph *g, const char *name, int noutputs,
                         const char *const *outputs, int nupdates, const smelt_node *updates,
                         bool eval, int *culprit);

/* Arena memory owned by the graph (freed with it). NULL on OOM. */
void *sm_arena_alloc(smelt_graph *g, size_t n);

/* Description of a node to be interned. */
typedef struct sm_node_desc {
  sm_op op;
  smelt_dtype dtype;
  int rank;
  const int64_t *shape;
  int ninputs;
  const uint32_t *inputs;
  int niattr;
  const int64_t *iattr;
  double fattr[2];
  const void *data;
  size_t data_bytes;
  const char *name; /* inputs and params: never hash-consed */
} sm_node_desc;
/* Returns the existing identical node or a new one (handle), or an invalid
 * handle with an error recorded (out of memory, name taken). */
smelt_node sm_intern(smelt_graph *g, const sm_node_desc *d);

/* ------------------------------------------------------------- shapes */
/* Broadcasts two shapes (NumPy rules). Returns -1 when compatible, else
 * the offending result axis counted from the end (1 = last). */
int sm_broadcast_shapes(int ra, const int64_t *a, int rb, const int64_t *b, int *rout,
                        int64_t *out);
/* Normalizes axis for a tensor of the given rank; false when out of range. */
bool sm_norm_axis(int axis, int rank, int *out);

/* ---------------------------------------------- the order of float sums */
/* A float reduce_sum over R > SM_SUM_BLOCK reduced elements (row-major
 * over the reduced axes, r = 0..R-1) is blocked: lane c = r mod
 * SM_SUM_LANES, block b = r div SM_SUM_BLOCK; each (b, c) partial sums its
 * SM_SUM_BLOCK / SM_SUM_LANES rows in increasing order in f64 from +0.0;
 * the partials, a flat f64 array in (b, c) order, are summed by the same
 * rule, and R <= SM_SUM_BLOCK elements sequentially from +0.0 (docs/ops.md,
 * "Summation order"). The interpreter (src/interp.c) sums so, and the
 * split_sums pass (src/passes/split_sums.c) writes the same order as graph
 * stages for the compiled targets. */
enum { SM_SUM_BLOCK = 4096, SM_SUM_LANES = 64 };

/* ------------------------------------------------------------- dtypes */
bool sm_is_float(smelt_dtype dt);
/* Float to integer: truncation toward zero as C and PyTorch. C leaves NaN
 * and out-of-range values undefined, so they are pinned down here: NaN
 * gives 0, values beyond the range saturate at its ends. The interpreter
 * converts so, and the backends' casts must agree. */
int64_t sm_f_to_i64(double v);
int32_t sm_f_to_i32(double v);
bool sm_is_int(smelt_dtype dt); /* i32, i64 (not bool) */

/* ------------------------------------------------- primitive builders */
/* Builders for primitives that the public API reaches only through
 * composites (used by the text parser and by composites). They check their
 * arguments like every builder and record errors on the graph. */
/* reduce_sum/prod/max/min over axes (any order, negative allowed; naxes 0 =
 * all), reduced axes kept with size 1; the dtype is x's. */
smelt_node sm_reduce(smelt_graph *g, sm_op op, smelt_node x, int naxes, const int *axes);
/* sm_reduce reporting errors under a composite's name (smelt_max: "max"). */
smelt_node sm_reduce_as(smelt_graph *g, const char *name, sm_op op, smelt_node x, int naxes,
                        const int *axes);
/* reduce_argmax / reduce_argmin along axis, kept with size 1, i64. */
smelt_node sm_argreduce(smelt_graph *g, sm_op op, smelt_node x, int axis);
/* iota: value start + i*step where i is the index along axis. */
smelt_node sm_iota(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims, int axis,
                   double start, double step);
/* The training-mode flag (bool rank 0), see OP_TRAINING. */
smelt_node sm_training(smelt_graph *g);
/* rand (uniform [a, b)) or randn (mean a, std b). */
smelt_node sm_rng(smelt_graph *g, sm_op op, smelt_dtype dt, int rank, const int64_t *dims,
                  uint64_t seed, double a, double b);
/* A constant from raw values of dtype dt (numel(dims) of them). weak makes
 * a literal instead (as smelt_scalar / smelt_scalar_int): rank 0, dt f32
 * with data pointing at a double (the exact literal), or dt i64 with data
 * pointing at an int64. */
smelt_node sm_const_raw(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims,
                        const void *data, bool weak);
/* The primitive movement ops with an explicit result (no -1, no implicit
 * leading dims): the checks of reshape / expand. */
smelt_node sm_reshape(smelt_graph *g, smelt_node x, int rank, const int64_t *dims);
smelt_node sm_expand(smelt_graph *g, smelt_node x, int rank, const int64_t *dims);
/* scatter_add into zeros of the given shape: out[.. index[q] ..] += src[q]
 * along axis (the transpose of gather). */
smelt_node sm_scatter_add(smelt_graph *g, int rank, const int64_t *dims, int axis, smelt_node index,
                          smelt_node src);

/* --------------------------------------------------------------- files */
/* Opens an input file for reading; *known and *size give its size when it
 * is a regular file (pipes have none). Directories are refused. NULL with
 * "path: ..." in errbuf on failure. */
FILE *sm_open_input(const char *path, bool *known, uint64_t *size, char *errbuf, size_t errlen);
/* mkdir -p: creates dir and its missing parents (mode 0777 less the
 * umask). 0 when dir is a directory afterwards, else an errno value
 * (ENOTDIR: it exists and is not a directory; ENOMEM). */
int sm_make_dirs(const char *dir);
/* Reads of pipes grow their buffer from this size, so that memory tracks
 * the bytes that actually arrive and not the size a header claims. */
#define SM_READ_CHUNK ((size_t)1 << 20)
/* Reads up to want bytes into a new sm_malloc'ed buffer (*buf, *got bytes).
 * When the rest of the file is known to hold avail bytes the buffer is
 * allocated at once; otherwise it grows as bytes arrive, so a lying header
 * costs no more memory than the input itself. Returns 0, or -1 when out of
 * memory (*buf freed). Read errors show in ferror(f). */
int sm_read_bounded(FILE *f, size_t want, bool known, uint64_t avail, unsigned char **buf,
                    size_t *got);
/* write(2) until done; false with errno set on error. */
bool sm_write_all(int fd, const void *buf, size_t n);
/* Creates a new temporary file next to path (0666 less the umask) and
 * opens it for writing; its name goes to tmp (cap bytes, at least
 * strlen(path) + 48). Returns the descriptor, or -1 with errno set. */
int sm_create_temp(const char *path, char *tmp, size_t cap);
/* Finishes a temporary file of sm_create_temp whose bytes were written
 * (written false: they were not, errno says why): fsync, close, rename
 * over path, fsync the directory. On failure the temporary file is removed
 * and errbuf gets "path: what failed: why". Returns 0 or -1. */
int sm_commit_temp(int fd, bool written, const char *tmp, const char *path, char *errbuf,
                   size_t errlen);
/* Writes a whole file atomically: a temporary file next to path, fsync'ed,
 * renamed over path. Returns 0, or -1 with *err set ("path: why"; NULL
 * when out of memory). */
int sm_write_file_atomic(const char *path, const void *data, size_t len, char **err);

/* ------------------------------------------------------- interpreter */
/* How a run sees the program around it. Without options: params from
 * their initializers, training mode, draw 0. */
typedef struct sm_run_opts {
  const void *const *param_data; /* per node index: a param's storage or NULL */
  bool training;                 /* the value of training nodes (dropout) */
  uint64_t rng_step;             /* draw number of rand / randn (fresh per run) */
  bool ignore_graph_error;       /* the roots are known good (param initializers) */
} sm_run_opts;
/* Runs the given root nodes (node indices); the roots' values stay for
 * sm_interp_read_root. Returns 0 or -1 with the error set. */
int sm_interp_run_roots(smelt_interp *it, size_t nroots, const uint32_t *roots,
                        const sm_run_opts *opts);
/* The data bound to input node `node`, NULL when it is not bound (an
 * empty input may be bound to NULL data: programs check emptiness). */
const void *sm_interp_bound(const smelt_interp *it, uint32_t node);
/* Copies root k (node index `node`) of the last run, dense, in its dtype. */
int sm_interp_read_root(smelt_interp *it, size_t k, uint32_t node, void *data);

/* --------------------------------------------------------------- rng */
/* Philox 4x32-10 */
void sm_philox4x32(uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);
/* The i-th value of rand / randn with a seed, in double (f32 uses the top
 * 24 bits of one word, f64 53 bits of two words). */
double sm_rand_uniform(uint64_t seed, uint64_t i, smelt_dtype dt);
double sm_rand_normal(uint64_t seed, uint64_t i, smelt_dtype dt);
/* The same for draw number `step` (counter words 2 and 3). */
double sm_rand_uniform_at(uint64_t seed, uint64_t step, uint64_t i, smelt_dtype dt);
double sm_rand_normal_at(uint64_t seed, uint64_t step, uint64_t i, smelt_dtype dt);

#endif
