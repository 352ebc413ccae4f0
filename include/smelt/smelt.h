/*
 * smelt: a tensor graph compiler.
 *
 * Public C API. A program builds a static graph of tensor operations with
 * the smelt_* builder functions; every call checks its arguments and infers
 * the result's dtype and shape immediately (NumPy/PyTorch broadcasting and
 * PyTorch type promotion). The graph can be printed as text, parsed back, and
 * run by the reference interpreter.
 *
 * Conventions
 *  - Every exported name starts with smelt_. Handles are opaque.
 *  - Whoever calls *_new calls the matching *_free.
 *  - Errors are sticky: a builder call that fails records one message on the
 *    graph and returns an invalid handle; every later builder call on that
 *    graph returns an invalid handle too. Check smelt_graph_error() once after
 *    building. The library never prints and never aborts on bad input.
 *  - Axes may be negative (counted from the end), as in PyTorch.
 *  - Shapes have rank 0 to SMELT_MAX_RANK and int64 dims >= 0.
 */
#ifndef SMELT_SMELT_H
#define SMELT_SMELT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SMELT_VERSION_MAJOR 0
#define SMELT_VERSION_MINOR 1
#define SMELT_VERSION_PATCH 0
/* Version string of the library that is linked, e.g. "0.1.0". */
const char *smelt_version(void);

#define SMELT_MAX_RANK 8
/* "To the end of the axis" for smelt_slice stops. */
#define SMELT_END INT64_MAX

/* ------------------------------------------------------------------ dtypes */

typedef enum smelt_dtype {
  SMELT_F32 = 0,
  SMELT_F64 = 1,
  SMELT_I32 = 2,
  SMELT_I64 = 3,
  SMELT_BOOL = 4, /* one byte per element, 0 or 1 */
  SMELT_DTYPE_COUNT
} smelt_dtype;

/* "f32", "f64", "i32", "i64", "bool"; "?" for an out-of-range value. */
const char *smelt_dtype_name(smelt_dtype dt);
/* Bytes per element (4, 8, 4, 8, 1); 0 for an out-of-range value. */
size_t smelt_dtype_size(smelt_dtype dt);
/* Parses a dtype name; returns false when the name is unknown. */
bool smelt_dtype_parse(const char *name, smelt_dtype *out);

/*
 * Type promotion, as PyTorch (torch.result_type):
 *  - categories order bool < integer < float; the result takes the highest
 *    category among the operands;
 *  - operands are ranked tensor (rank >= 1) > rank-0 tensor > literal
 *    (smelt_scalar, smelt_scalar_int); within the result's category the
 *    dtype comes from the highest-ranked group that has that category, and
 *    the widest dtype in that group (i32 < i64, f32 < f64);
 *  - so f32 * 2.5 stays f32, i32 + i64 gives i64, i64 * f32 gives f32, an
 *    integer tensor times a float literal gives f32 (the default float).
 */

/* ------------------------------------------------------------- handles */

typedef struct smelt_graph smelt_graph;

/* A node handle: a value in the graph. Invalid when index == 0. */
typedef struct smelt_node {
  uint32_t graph; /* serial number of the owning graph */
  uint32_t index; /* 1-based position in the graph; 0 = invalid */
} smelt_node;

static inline bool smelt_node_valid(smelt_node n) { return n.index != 0; }
#define SMELT_INVALID ((smelt_node){0, 0})

/* ------------------------------------------------------------- graphs */

/* A new, empty graph; NULL when out of memory. */
smelt_graph *smelt_graph_new(void);
/* Frees the graph and all its nodes. NULL is allowed. */
void smelt_graph_free(smelt_graph *g);
/* The first error recorded on the graph, NULL when none. The string lives
 * as long as the graph. */
const char *smelt_graph_error(const smelt_graph *g);
/* Number of nodes in the graph (including ones inserted by broadcasting). */
size_t smelt_graph_node_count(const smelt_graph *g);
/* The handle of the i-th node (0-based, in creation order, which is a
 * topological order); invalid when i is out of range. */
smelt_node smelt_graph_node(const smelt_graph *g, size_t i);

/* Node queries. On an invalid handle they return 0 / NULL / SMELT_F32. */
smelt_dtype smelt_node_dtype(const smelt_graph *g, smelt_node n);
int smelt_node_rank(const smelt_graph *g, smelt_node n);
/* Dim i (negative counts from the end); -1 when out of range. */
int64_t smelt_node_dim(const smelt_graph *g, smelt_node n, int i);
/* Pointer to rank dims; *rank receives it. Valid until the next node is
 * added to the graph (builders accept it: they copy dims first). */
const int64_t *smelt_node_shape(const smelt_graph *g, smelt_node n, int *rank);
/* Number of elements (product of dims; 1 for rank 0). */
int64_t smelt_node_numel(const smelt_graph *g, smelt_node n);
/* The op's name as in the text format ("add", "reshape", ...). */
const char *smelt_node_op(const smelt_graph *g, smelt_node n);
/* The node's name, or NULL when it has none. */
const char *smelt_node_name(const smelt_graph *g, smelt_node n);
/* Names a node (used in printing and in error messages). Names are unique in
 * a graph: [A-Za-z_][A-Za-z0-9_.]*. A node has one name: naming it again
 * renames it (and since building the same op on the same inputs returns the
 * same node, naming an equal computation renames that node). Inputs and
 * params keep their names. Returns n, or invalid on error. */
smelt_node smelt_set_name(smelt_graph *g, smelt_node n, const char *name);
/* Looks a node up by name; invalid when there is none. */
smelt_node smelt_find(const smelt_graph *g, const char *name);

/* Registers n as a named output of the graph (what the interpreter and,
 * later, compiled programs compute). Output names are unique. Returns n. */
smelt_node smelt_output(smelt_graph *g, const char *name, smelt_node n);
size_t smelt_graph_output_count(const smelt_graph *g);
/* The i-th output's node and name (NULL name when i is out of range). */
smelt_node smelt_graph_output(const smelt_graph *g, size_t i, const char **name);

/* ------------------------------------------------- program declarations */
/* A graph may declare its programs by name (what smelt_program_new or
 * smelt_program_new_eval would be given), so that the graph alone, or its
 * text, says what to compile: `smeltc run --program NAME` and ahead-of-time
 * compilation need nothing else. */

/* Declares program `name` (names as node names, unique among the graph's
 * programs): outputs by output name (registered with smelt_output), updates
 * as smelt_assign nodes (at most one per param); eval declares an
 * evaluation program (smelt_program_new_eval's meaning), which takes no
 * updates. The lists are copied. Returns 0, or -1 with the error recorded
 * on the graph (sticky, as a builder's). */
int smelt_graph_add_program(smelt_graph *g, const char *name, int noutputs,
                            const char *const *outputs, int nupdates, const smelt_node *updates,
                            bool eval);
size_t smelt_graph_program_count(const smelt_graph *g);

/* A declared program, as given to smelt_graph_add_program. Its pointers
 * live as long as the graph. */
typedef struct smelt_program_decl {
  const char *name;
  bool eval;
  int noutputs;
  const char *const *outputs; /* output names */
  int nupdates;
  const smelt_node *updates;  /* assign nodes */
} smelt_program_decl;
/* Fills *decl with the i-th declared program (declaration order). Returns
 * 0, or -1 when i is out of range (or g or decl is NULL). */
int smelt_graph_program(const smelt_graph *g, size_t i, smelt_program_decl *decl);
/* The index of the program declared as `name`, -1 when there is none. */
long smelt_graph_find_program(const smelt_graph *g, const char *name);

/* ------------------------------------------------------------- sources */

/* A tensor bound at run time, by name. */
smelt_node smelt_input(smelt_graph *g, const char *name, smelt_dtype dt, int rank,
                       const int64_t *dims);

/* How a param is initialized. Use the smelt_init_* constructors. */
typedef enum smelt_init_kind {
  SMELT_INIT_ZEROS,
  SMELT_INIT_ONES,
  SMELT_INIT_CONSTANT, /* a */
  SMELT_INIT_NORMAL,   /* mean a, std b, seed */
  SMELT_INIT_UNIFORM,  /* [a, b), seed */
  SMELT_INIT_DATA      /* numel elements of the param's dtype at data (copied) */
} smelt_init_kind;

typedef struct smelt_init {
  smelt_init_kind kind;
  double a, b;
  uint64_t seed;
  const void *data;
} smelt_init;

smelt_init smelt_init_zeros(void);
smelt_init smelt_init_ones(void);
smelt_init smelt_init_constant(double value);
smelt_init smelt_init_normal(double mean, double std, uint64_t seed);
smelt_init smelt_init_uniform(double lo, double hi, uint64_t seed);
smelt_init smelt_init_data(const void *data);

/* A persistent, named tensor with an initializer (weights). */
smelt_node smelt_param(smelt_graph *g, const char *name, smelt_dtype dt, int rank,
                       const int64_t *dims, smelt_init init);

/* Literals: weak scalars that take the dtype of the tensor they meet
 * (f32 tensor * smelt_scalar(g, 2.5) stays f32). Alone, a float literal is
 * f32 and an integer literal is i64. */
/* A literal must fit the dtype it meets: i32 tensor + 2^40 is an error
 * (PyTorch wraps in some ops and raises in others). */
smelt_node smelt_scalar(smelt_graph *g, double value);
smelt_node smelt_scalar_int(smelt_graph *g, int64_t value);
/* A rank-0 constant of the given dtype (takes part in promotion as a rank-0
 * tensor, as torch.tensor(v, dtype=...)). */
smelt_node smelt_const(smelt_graph *g, smelt_dtype dt, double value);
/* An array constant: numel(dims) elements of dtype dt at data (copied). */
smelt_node smelt_const_array(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims,
                             const void *data);
/* A tensor filled with value; one scalar broadcast (stride 0), never a copy. */
smelt_node smelt_full(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims,
                      double value);
smelt_node smelt_zeros(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims);
smelt_node smelt_ones(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims);
/* [start, stop) in steps of step, as torch.arange: ceil((stop-start)/step)
 * elements, value i = start + i*step computed in double and converted to dt
 * (for integer dtypes PyTorch truncates start, stop and step first; the two
 * agree when they are whole numbers). */
smelt_node smelt_arange(smelt_graph *g, smelt_dtype dt, double start, double stop,
                        double step);
/* n evenly spaced values from start to stop inclusive, as torch.linspace. */
smelt_node smelt_linspace(smelt_graph *g, smelt_dtype dt, double start, double stop,
                          int64_t n);
/* n x m identity matrix. */
smelt_node smelt_eye(smelt_graph *g, smelt_dtype dt, int64_t n, int64_t m);
/* Counter-based random numbers (Philox 4x32-10, key = seed, counter = the
 * element's linear index), the same on every backend. rand: uniform [0,1);
 * randn: standard normal (Box-Muller). dt must be f32 or f64. */
smelt_node smelt_rand(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims,
                      uint64_t seed);
smelt_node smelt_randn(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims,
                       uint64_t seed);

/* ---------------------------------------------------------- elementwise */
/* Unary math (exp, log, sqrt, rsqrt, reciprocal, sin, cos, tanh, sigmoid,
 * gelu) of an integer or bool tensor computes in f32, as PyTorch. neg, abs,
 * sign and relu keep the dtype and reject bool. */
smelt_node smelt_neg(smelt_graph *g, smelt_node x);
smelt_node smelt_abs(smelt_graph *g, smelt_node x);
/* -1, 0 or 1; sign(NaN) is 0 as in PyTorch (NumPy gives NaN). */
smelt_node smelt_sign(smelt_graph *g, smelt_node x);
smelt_node smelt_exp(smelt_graph *g, smelt_node x);
smelt_node smelt_log(smelt_graph *g, smelt_node x);
smelt_node smelt_sqrt(smelt_graph *g, smelt_node x);
smelt_node smelt_rsqrt(smelt_graph *g, smelt_node x);
smelt_node smelt_reciprocal(smelt_graph *g, smelt_node x);
smelt_node smelt_sin(smelt_graph *g, smelt_node x);
smelt_node smelt_cos(smelt_graph *g, smelt_node x);
smelt_node smelt_tanh(smelt_graph *g, smelt_node x);
smelt_node smelt_sigmoid(smelt_graph *g, smelt_node x);
smelt_node smelt_relu(smelt_graph *g, smelt_node x);
/* gelu, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
smelt_node smelt_gelu(smelt_graph *g, smelt_node x);
/* Stops gradients (detach); the identity on values. */
smelt_node smelt_stop_gradient(smelt_graph *g, smelt_node x);

/* Binary ops broadcast their operands and promote their dtypes. div is true
 * division (integers give f32). Comparisons give bool. maximum and minimum
 * propagate NaN. pow of integers stays integer. */
smelt_node smelt_add(smelt_graph *g, smelt_node a, smelt_node b);
smelt_node smelt_sub(smelt_graph *g, smelt_node a, smelt_node b);
smelt_node smelt_mul(smelt_graph *g, smelt_node a, smelt_node b);
smelt_node smelt_div(smelt_graph *g, smelt_node a, smelt_node b);
smelt_node smelt_pow(smelt_graph *g, smelt_node a, smelt_node b);
smelt_node smelt_maximum(smelt_graph *g, smelt_node a, smelt_node b);
smelt_node smelt_minimum(smelt_graph *g, smelt_node a, smelt_node b);
smelt_node smelt_lt(smelt_graph *g, smelt_node a, smelt_node b);
smelt_node smelt_le(smelt_graph *g, smelt_node a, smelt_node b);
smelt_node smelt_gt(smelt_graph *g, smelt_node a, smelt_node b);
smelt_node smelt_ge(smelt_graph *g, smelt_node a, smelt_node b);
smelt_node smelt_eq(smelt_graph *g, smelt_node a, smelt_node b);
smelt_node smelt_ne(smelt_graph *g, smelt_node a, smelt_node b);
/* Logical ops treat any nonzero value as true and give bool. */
smelt_node smelt_logical_and(smelt_graph *g, smelt_node a, smelt_node b);
smelt_node smelt_logical_or(smelt_graph *g, smelt_node a, smelt_node b);
smelt_node smelt_logical_not(smelt_graph *g, smelt_node x);
/* cond ? a : b, elementwise; cond must be bool; all three broadcast. */
smelt_node smelt_where(smelt_graph *g, smelt_node cond, smelt_node a, smelt_node b);
/* Conversion: float to int truncates toward zero; to bool is x != 0. */
smelt_node smelt_cast(smelt_graph *g, smelt_node x, smelt_dtype dt);
/* min(max(x, lo), hi) as torch.clamp (NaN propagates; gradient flows where
 * lo <= x <= hi). */
smelt_node smelt_clamp(smelt_graph *g, smelt_node x, double lo, double hi);

/* ----------------------------------------------------------- reductions */
/* Reduce over naxes axes (negative allowed, no repeats); naxes == 0 reduces
 * over all axes. keepdim keeps the reduced axes with size 1.
 * sum and prod of integers and bool give i64; mean, var, std and logsumexp
 * need a float tensor (logsumexp computes integers in f32, as PyTorch); max
 * and min keep the dtype and need a non-empty axis.
 * var and std use Bessel's correction (N - correction in the divisor;
 * correction 1 as PyTorch's default); N - correction <= 0 gives NaN or inf
 * as PyTorch. var and std square the deviations in the input's dtype, so
 * for f32 a deviation beyond about 1.8e19 overflows to inf (PyTorch's CPU
 * kernel works in double there; its CUDA kernel in float, as we do). */
smelt_node smelt_sum(smelt_graph *g, smelt_node x, int naxes, const int *axes, bool keepdim);
smelt_node smelt_mean(smelt_graph *g, smelt_node x, int naxes, const int *axes, bool keepdim);
smelt_node smelt_prod(smelt_graph *g, smelt_node x, int naxes, const int *axes, bool keepdim);
smelt_node smelt_max(smelt_graph *g, smelt_node x, int naxes, const int *axes, bool keepdim);
smelt_node smelt_min(smelt_graph *g, smelt_node x, int naxes, const int *axes, bool keepdim);
smelt_node smelt_var(smelt_graph *g, smelt_node x, int naxes, const int *axes, int64_t correction,
                     bool keepdim);
smelt_node smelt_std(smelt_graph *g, smelt_node x, int naxes, const int *axes, int64_t correction,
                     bool keepdim);
/* log(sum(exp(x))), computed stably (max subtracted first). */
smelt_node smelt_logsumexp(smelt_graph *g, smelt_node x, int naxes, const int *axes,
                           bool keepdim);
/* Index (i64) of the first maximum / minimum along one axis; NaN counts as
 * the maximum (and the minimum), as PyTorch. */
smelt_node smelt_argmax(smelt_graph *g, smelt_node x, int axis, bool keepdim);
smelt_node smelt_argmin(smelt_graph *g, smelt_node x, int axis, bool keepdim);
/* PyTorch's torch.max(x, dim) pair: values and their (first) indices. Either
 * output pointer may be NULL. Returns the values. */
smelt_node smelt_max_dim(smelt_graph *g, smelt_node x, int axis, bool keepdim,
                         smelt_node *values, smelt_node *indices);
smelt_node smelt_min_dim(smelt_graph *g, smelt_node x, int axis, bool keepdim,
                         smelt_node *values, smelt_node *indices);

/* ---------------------------------------------------------------- views */
/* Views never copy: they are index maps over their input. */
/* New shape with the same number of elements; one dim may be -1. */
smelt_node smelt_reshape(smelt_graph *g, smelt_node x, int rank, const int64_t *dims);
/* perm is a permutation of 0..rank-1 (negative entries allowed). */
smelt_node smelt_permute(smelt_graph *g, smelt_node x, const int *perm);
smelt_node smelt_transpose(smelt_graph *g, smelt_node x, int axis0, int axis1);
/* As torch.expand: size-1 dims grow (stride 0), new leading dims may be
 * added, -1 keeps a dim. */
smelt_node smelt_expand(smelt_graph *g, smelt_node x, int rank, const int64_t *dims);
/* Broadcast x to a shape with the NumPy rules (reshape + expand). */
smelt_node smelt_broadcast_to(smelt_graph *g, smelt_node x, int rank, const int64_t *dims);
/* Removes the given size-1 axes (all size-1 axes when naxes == 0); naming
 * an axis whose size is not 1 is an error. */
smelt_node smelt_squeeze(smelt_graph *g, smelt_node x, int naxes, const int *axes);
/* Inserts a size-1 axis at position axis in the result (-1 appends). */
smelt_node smelt_unsqueeze(smelt_graph *g, smelt_node x, int axis);
/* Flattens axes start..end (inclusive, negative allowed) into one. */
smelt_node smelt_flatten(smelt_graph *g, smelt_node x, int start_axis, int end_axis);
/* Python slicing on every axis: starts, stops and steps are arrays of
 * rank entries (NULL means 0, SMELT_END and 1 everywhere). Negative indices
 * count from the end; out-of-range indices clamp; steps must be >= 1 (use
 * smelt_flip to reverse). */
smelt_node smelt_slice(smelt_graph *g, smelt_node x, const int64_t *starts, const int64_t *stops,
                       const int64_t *steps);
/* Python slicing start:stop:step of a single axis. */
smelt_node smelt_slice_axis(smelt_graph *g, smelt_node x, int axis, int64_t start, int64_t stop,
                            int64_t step);
/* As torch.Tensor.unfold(axis, size, step): the windows of `size`
 * consecutive elements starting every `step` along axis, as a view (no
 * copy; windows may overlap). The axis becomes (n - size) / step + 1 long
 * and a last axis of length size is appended. size >= 0, step >= 1,
 * size <= n. */
smelt_node smelt_unfold(smelt_graph *g, smelt_node x, int axis, int64_t size, int64_t step);
/* Reverses the given axes. */
smelt_node smelt_flip(smelt_graph *g, smelt_node x, int naxes, const int *axes);
/* Constant padding: lo[i] and hi[i] (>= 0) elements before and after axis i
 * (arrays of rank entries, in axis order, unlike torch.nn.functional.pad). */
smelt_node smelt_pad(smelt_graph *g, smelt_node x, const int64_t *lo, const int64_t *hi,
                     double value);
/* Joins n tensors along an existing axis (dtypes promote; other dims must
 * be equal). */
smelt_node smelt_concat(smelt_graph *g, int n, const smelt_node *xs, int axis);
/* Joins n tensors of equal shape along a new axis. */
smelt_node smelt_stack(smelt_graph *g, int n, const smelt_node *xs, int axis);

/* --------------------------------------------------------------- linalg */
/* numpy.matmul / torch.matmul: 1-D operands are promoted (a row vector on
 * the left, a column vector on the right) and the added dim removed from the
 * result; batch dims broadcast. */
smelt_node smelt_matmul(smelt_graph *g, smelt_node a, smelt_node b);

/* ------------------------------------------------------------- indexing */
/* torch.gather: index (i32 or i64) has x's rank, index.dim(d) <= x.dim(d)
 * for d != axis; out[i][j][k] = x[i][index[i][j][k]][k] for axis 1. An index
 * outside [0, size), negative included, is a run-time error, as PyTorch
 * (this holds for every indexing op below). */
smelt_node smelt_gather(smelt_graph *g, smelt_node x, int axis, smelt_node index);
/* torch.scatter_add: x plus src (of index's shape) summed into the places
 * the index names along axis: out[i][index[i][j][k]][k] += src[i][j][k] for
 * axis 1. The transpose of gather (its gradient). */
smelt_node smelt_scatter_add(smelt_graph *g, smelt_node x, int axis, smelt_node index,
                             smelt_node src);
/* numpy.take_along_axis: like gather, but index and x broadcast against
 * each other in every dim except axis. */
smelt_node smelt_take_along_axis(smelt_graph *g, smelt_node x, smelt_node index, int axis);
/* torch.index_select: picks entries index[i] (a 1-D integer tensor) of axis. */
smelt_node smelt_index_select(smelt_graph *g, smelt_node x, int axis, smelt_node index);
/* torch.nn.functional.one_hot: i64 result of shape index.shape + [classes]. */
smelt_node smelt_one_hot(smelt_graph *g, smelt_node index, int64_t num_classes);
/* Rows of weight [V, D] picked by an integer index of any shape: result
 * index.shape + [D]. */
smelt_node smelt_embedding(smelt_graph *g, smelt_node weight, smelt_node index);

/* ------------------------------------------------------------------- nn */
smelt_node smelt_softmax(smelt_graph *g, smelt_node x, int axis);
smelt_node smelt_log_softmax(smelt_graph *g, smelt_node x, int axis);
/* Mean cross-entropy of logits [N, C] (or [C]) against integer class
 * labels [N] (or []), as torch.nn.functional.cross_entropy. */
smelt_node smelt_cross_entropy(smelt_graph *g, smelt_node logits, smelt_node labels);
/* Mean squared error, as torch.nn.functional.mse_loss (operands broadcast). */
smelt_node smelt_mse_loss(smelt_graph *g, smelt_node a, smelt_node b);
/* Inverted dropout: zeroes each element with probability p (mask from
 * smelt_rand with seed, fresh on every run of a program) and scales the
 * rest by 1/(1-p). With training false it is the identity; with training
 * true it is active in training programs and plain interpreter runs and the
 * identity in evaluation programs (smelt_program_new_eval), as PyTorch's
 * module.eval(). 0 <= p <= 1 (p = 1 gives zeros, as PyTorch). */
smelt_node smelt_dropout(smelt_graph *g, smelt_node x, double p, uint64_t seed, bool training);

/* Convolution and pooling over the last two axes of x, [N, C, H, W] or
 * unbatched [C, H, W], as torch.nn.functional. Each pair of sizes is
 * {height, width}; a NULL pair means the default (stride 1 or, for
 * pooling, the kernel size; padding 0; dilation 1). Output size per axis:
 * floor((in + 2 padding - dilation (kernel - 1) - 1) / stride) + 1 (pooling
 * with ceil_mode rounds up, and a last window that would start in the
 * right padding is dropped, as PyTorch). */

/* F.conv2d: weight [O, C / groups, KH, KW]; bias [O] or SMELT_INVALID for
 * none; groups divides C and O. Built from unfold views and one batched
 * matmul per group (im2col with no copy until the matmul reads it). */
smelt_node smelt_conv2d(smelt_graph *g, smelt_node x, smelt_node weight, smelt_node bias,
                        const int64_t stride[2], const int64_t padding[2],
                        const int64_t dilation[2], int64_t groups);
/* F.max_pool2d: the maximum of each window; padding (at most half the
 * kernel) counts as -inf. The gradient goes to the first maximum of each
 * window, as PyTorch. */
smelt_node smelt_max_pool2d(smelt_graph *g, smelt_node x, const int64_t kernel[2],
                            const int64_t stride[2], const int64_t padding[2],
                            const int64_t dilation[2], bool ceil_mode);
/* F.avg_pool2d: the mean of each window; count_include_pad counts the
 * zero padding in the divisor (PyTorch's default is true). */
smelt_node smelt_avg_pool2d(smelt_graph *g, smelt_node x, const int64_t kernel[2],
                            const int64_t stride[2], const int64_t padding[2], bool ceil_mode,
                            bool count_include_pad);

/* F.batch_norm over axis 1 of x [N, C, ...]: (x - mean) / sqrt(var + eps)
 * * weight + bias per channel. weight and bias ([C]) may be SMELT_INVALID
 * (1 and 0). With training true the statistics are the batch's (variance
 * biased) in training programs and plain interpreter runs, and the running
 * ones in evaluation programs (smelt_program_new_eval), as PyTorch's
 * train()/eval(); with training false they are always the running ones.
 * running_mean and running_var are params [C] (SMELT_INVALID: none, then
 * training must be true and evaluation also uses batch statistics, as
 * track_running_stats=False). When updates is not NULL and there are
 * running stats and training is true, updates[0] and updates[1] receive
 * the assign nodes that move them by momentum (running = (1 - momentum)
 * running + momentum batch, the variance unbiased, as PyTorch): pass them
 * as updates of the training program. */
smelt_node smelt_batch_norm(smelt_graph *g, smelt_node x, smelt_node weight, smelt_node bias,
                            smelt_node running_mean, smelt_node running_var, bool training,
                            double momentum, double eps, smelt_node updates[2]);

/* -------------------------------------------------------------- updates */
/* An in-place update of a param: value (cast to the param's dtype, which may
 * not be a lower category: float into int is an error) broadcasts to the
 * param's shape; the target's shape never changes. Returns the update node
 * (its value is the new value of the param). */
smelt_node smelt_assign(smelt_graph *g, smelt_node param, smelt_node value);

/* ------------------------------------------------------------- autodiff */
/* Reverse-mode autodiff as graph rewriting: adds the backward graph of y
 * with respect to each of the n nodes in wrt to the same graph, as ordinary
 * nodes (printable, differentiable again), and stores the gradient of y
 * with respect to wrt[i] in grads_out[i]. Each gradient has exactly its
 * wrt's shape and dtype. y must be a float scalar (rank 0, or one element
 * of any rank); every wrt must be a float tensor. A wrt that y does not
 * depend on gets zeros. Returns 0, or -1 with the error recorded on the
 * graph (and grads_out set invalid). Gradient rules: docs/autodiff.md. */
int smelt_grad(smelt_graph *g, smelt_node y, int n, const smelt_node *wrt, smelt_node *grads_out);

/* Options of smelt_vjp. */
enum {
  /* A wrt that y does not depend on is an error instead of zeros. */
  SMELT_GRAD_STRICT = 1u << 0
};
/* The vector-Jacobian product: as smelt_grad, with an explicit output
 * gradient seed of y's shape (its dtype is cast to y's); y may then have any
 * shape. Pass SMELT_INVALID as seed for smelt_grad's behaviour. */
int smelt_vjp(smelt_graph *g, smelt_node y, smelt_node seed, int n, const smelt_node *wrt,
              smelt_node *grads_out, unsigned flags);

/* ------------------------------------------------------ params, programs */
/* Storage for every param of a graph (weights, optimizer state), created
 * from their initializers (same seeds, same numbers on every backend).
 * Several programs of one graph share one smelt_params: a train program and
 * an eval program see the same weights. Params added to the graph later are
 * picked up (initialized) by the next program or params call. */
typedef struct smelt_params smelt_params;

/* NULL when out of memory; other problems go to smelt_params_error. The
 * graph must outlive the params, and the params every program using them.
 * A build error recorded on the graph leaves its params readable, writable
 * and savable (programs refuse to run). */
smelt_params *smelt_params_new(const smelt_graph *g);
void smelt_params_free(smelt_params *p);
/* The last error, NULL when the last call succeeded. */
const char *smelt_params_error(const smelt_params *p);
/* Re-initializes every param from its initializer. Returns 0 or -1. */
int smelt_params_reset(smelt_params *p);
/* Copies param `name` (dense, row-major) out of / into the storage; dt must
 * be its dtype and nbytes its byte size. Return 0 or -1. */
int smelt_params_read(smelt_params *p, const char *name, smelt_dtype dt, void *data,
                      size_t nbytes);
int smelt_params_write(smelt_params *p, const char *name, smelt_dtype dt, const void *data,
                       size_t nbytes);

/* Checkpoints in the safetensors format (8-byte header length, JSON
 * header, raw little-endian data), readable and writable by PyTorch's
 * safetensors package. save writes every param (optimizer state included)
 * under its name, atomically (a temporary file renamed into place). load is
 * strict, as load_state_dict(strict=True): every param must be in the file
 * with its dtype and shape and the file may hold nothing else; on any error
 * no param changes. Return 0 or -1. */
int smelt_params_save(smelt_params *p, const char *path);
int smelt_params_load(smelt_params *p, const char *path);

/* A program: outputs plus updates, as Theano's function(inputs, outputs,
 * updates). A run computes the named graph outputs, then applies every
 * update at once: all of them see the params' values from before the run.
 * Each run computes fresh gradients (nothing accumulates between runs
 * unless the graph says so, see smelt_grad_accumulators), and rand/randn
 * nodes draw fresh numbers on every run (run k uses draw number k). */
typedef struct smelt_program smelt_program;

/* outputs: names given to smelt_output; updates: smelt_assign nodes (at
 * most one per param). NULL when out of memory; other problems (unknown
 * names, a node that is not an assign, two updates of one param, a graph
 * error) go to smelt_program_error. */
smelt_program *smelt_program_new(smelt_graph *g, smelt_params *params, int noutputs,
                                 const char *const *outputs, int nupdates,
                                 const smelt_node *updates);
/* An evaluation program: outputs only, no updates, dropout inactive, and
 * no output may depend on a backward graph (PyTorch's eval() and no_grad,
 * by construction). */
smelt_program *smelt_program_new_eval(smelt_graph *g, smelt_params *params, int noutputs,
                                      const char *const *outputs);
void smelt_program_free(smelt_program *pr);
const char *smelt_program_error(const smelt_program *pr);
/* As smelt_interp_bind / _run / _read. */
int smelt_program_bind(smelt_program *pr, const char *name, smelt_dtype dt, int rank,
                       const int64_t *dims, const void *data, size_t nbytes);
int smelt_program_run(smelt_program *pr);
int smelt_program_read(smelt_program *pr, const char *name, smelt_dtype dt, void *data,
                       size_t nbytes);
/* The cuda target with data kept on the GPU (docs/cuda.md): binds an
 * input to device memory (a CUdeviceptr of the current device's primary
 * context, read in place by every later run until bound again), and
 * copies an output of the last run into device memory. The checks are
 * smelt_program_bind's and smelt_program_read's; other targets refuse. */
int smelt_program_bind_device(smelt_program *pr, const char *name, smelt_dtype dt, int rank,
                              const int64_t *dims, uint64_t device_ptr, size_t nbytes);
int smelt_program_read_device(smelt_program *pr, const char *name, smelt_dtype dt,
                              uint64_t device_ptr, size_t nbytes);

/* Run contexts: several threads may run one program at once, each with
 * its own context. A context holds everything a run changes: bindings,
 * the intermediates (the arena), the outputs of its last run, its error
 * message and its draw counter; the compiled code is shared and only read.
 * smelt_program_bind/run/read use the program's own (default) context.
 *  - One context (and the program's default context) is used by one
 *    thread at a time; different contexts of one program, and different
 *    programs, may run in different threads at once.
 *  - Runs hold their params' lock: the write lock when the program has
 *    updates, else the read lock. So runs of programs without updates on
 *    shared params go on together, a run with updates waits for the
 *    others and no run sees half-applied updates. smelt_params_* calls
 *    take the write lock too (one thread at a time per params object).
 *  - rand/randn draws: a context counts its own runs (its first run uses
 *    draw number 0, then 1, ...), so its results do not depend on what
 *    other threads run; smelt_context_set_draw chooses the next number
 *    (e.g. distinct numbers per thread for distinct dropout masks). The
 *    default context numbers draws per params store, as before.
 *  - The program (and its graph and params) must outlive its contexts.
 *  - The cuda target does not support contexts (its results live in the
 *    program's device memory): every call on such a context fails with a
 *    message saying so. */
typedef struct smelt_context smelt_context;
/* A context of pr. NULL when out of memory; a NULL or failed program or
 * one of the cuda target gives a context whose every call fails with the
 * reason (smelt_context_error). */
smelt_context *smelt_context_new(smelt_program *pr);
void smelt_context_free(smelt_context *ctx);
/* The last call's error, NULL after a call that succeeded; the string
 * lives until the next call on the context. */
const char *smelt_context_error(const smelt_context *ctx);
/* As smelt_program_bind / _run / _read, on the context's own bindings and
 * results. Return 0, or -1 with smelt_context_error set. */
int smelt_context_bind(smelt_context *ctx, const char *name, smelt_dtype dt, int rank,
                       const int64_t *dims, const void *data, size_t nbytes);
int smelt_context_run(smelt_context *ctx);
int smelt_context_read(smelt_context *ctx, const char *name, smelt_dtype dt, void *data,
                       size_t nbytes);
/* The draw number of the context's next run (rand, randn, dropout), and
 * setting it. set returns 0, or -1 (a context that cannot run). */
uint64_t smelt_context_draw(const smelt_context *ctx);
int smelt_context_set_draw(smelt_context *ctx, uint64_t draw);

/* ------------------------------------------------------------ compiling */
/* Where a program runs. AUTO: $SMELT_TARGET ("cpu", "interp" or "cuda")
 * when set, else cpu when libsmelt was built with LLVM, else interp. */
typedef enum smelt_target {
  SMELT_TARGET_AUTO = 0,
  SMELT_TARGET_INTERP, /* the reference interpreter */
  SMELT_TARGET_CPU,    /* LLVM-generated code, JIT-compiled (ORC) */
  SMELT_TARGET_CUDA    /* CUDA C through NVRTC, run through the CUDA driver */
} smelt_target;
/* "auto", "interp", "cpu", "cuda". */
const char *smelt_target_name(smelt_target t);

/* How a program is compiled. Start from smelt_compile_defaults() (which
 * reads the environment) and change fields: new fields may be added at
 * the end, and the defaults function fills them. */
typedef struct smelt_compile_options {
  smelt_target target;
  int opt_level;     /* LLVM pipeline default<O0..O3>; default 3 */
  int num_threads;   /* kernels split over this many threads (and the cpu
                        target's modules compiled on as many); 0:
                        $SMELT_NUM_THREADS, else every core */
  bool reassociate;  /* let float reductions be reordered (vectorized);
                        off by default: sums follow a fixed order */
  const char *dump;  /* stages to dump, as $SMELT_DUMP: a comma list of graph,
                        passes, fusion, kernels, llvm, asm, cuda, ptx (or "all");
                        NULL: none */
  const char *dump_dir; /* directory for dump files; NULL: stderr */
  const char *cache_dir; /* disk cache of compiled code; NULL: none */
  const char *cuda_arch; /* cuda target: the architecture to compile for
                            ("sm_90"); NULL: the device's own */
} smelt_compile_options;
/* target AUTO, opt_level 3, num_threads 0, reassociate false; dump from
 * $SMELT_DUMP, dump_dir from $SMELT_DUMP_DIR, cache_dir from
 * $SMELT_CACHE_DIR, else $XDG_CACHE_HOME/smelt, else ~/.cache/smelt, and
 * NULL when $SMELT_CACHE=0; cuda_arch from $SMELT_CUDA_ARCH. The strings
 * live as long as the process. */
smelt_compile_options smelt_compile_defaults(void);

/* smelt_program_new / smelt_program_new_eval with options (NULL: the
 * defaults). smelt_program_new(...) is smelt_program_compile(..., NULL). */
smelt_program *smelt_program_compile(smelt_graph *g, smelt_params *params, int noutputs,
                                     const char *const *outputs, int nupdates,
                                     const smelt_node *updates,
                                     const smelt_compile_options *options);
smelt_program *smelt_program_compile_eval(smelt_graph *g, smelt_params *params, int noutputs,
                                          const char *const *outputs,
                                          const smelt_compile_options *options);
/* Compiles the program that g declares as `name` (smelt_graph_add_program,
 * or a `program` line of the text format), as smelt_program_compile or
 * smelt_program_compile_eval would; options NULL: the defaults. An unknown
 * name gives a program whose error names it and lists the declared ones. */
smelt_program *smelt_program_compile_named(smelt_graph *g, smelt_params *params,
                                           const char *name,
                                           const smelt_compile_options *options);

/* What a compiled program is made of. */
typedef struct smelt_program_stats {
  smelt_target target;     /* the target it runs on (never AUTO) */
  int kernels;             /* kernels launched per run */
  int buffers;             /* intermediate buffers placed in the arena */
  size_t arena_bytes;      /* arena size: the peak bytes of intermediates */
  size_t unplanned_bytes;  /* the intermediates' total size without reuse */
  double compile_ms;       /* wall time of compilation */
  bool from_cache;         /* machine code came from the disk cache */
} smelt_program_stats;
/* Returns 0, or -1 when the program failed to compile. */
int smelt_program_get_stats(const smelt_program *pr, smelt_program_stats *stats);

/* ------------------------------------------------------ ahead of time */
/* Compiles every program the graph declares (smelt_graph_add_program, or
 * `program` lines of the text format) into one relocatable, position-
 * independent object file and a C header, for the host or a named x86-64
 * or AArch64 target. The object needs libc and libm only (no LLVM, no
 * libsmelt); the caller provides all memory (the header states the sizes).
 * The header declares one function per program, the params' initializer
 * (the same numbers as smelt_params_new) and safetensors load and save
 * functions. docs/aot.md describes the header and the object. */
typedef struct smelt_aot_options {
  const char *object_path; /* the object file to write (required) */
  const char *header_path; /* the C header to write; NULL: none */
  const char *prefix;      /* C prefix of every generated name; NULL: "model" */
  const char *triple;      /* target triple; NULL: the host's */
  const char *cpu;         /* CPU name (e.g. "x86-64-v3", "neoverse-n1"); NULL:
                              the host's CPU for the host triple, else generic */
  const char *features;    /* LLVM feature string ("+avx2,..."); NULL: those of
                              the CPU (the host's for the host CPU) */
  const char *weights_path; /* safetensors file whose tensors become the
                               initial values of the params of that name */
  const char *source_name;  /* named in the header's first comment; may be NULL */
  int opt_level;           /* 0..3, default 3 */
  bool reassociate;        /* as smelt_compile_options */
  const char *dump;        /* stages to dump, as smelt_compile_options */
  const char *dump_dir;
} smelt_aot_options;
/* prefix "model", opt_level 3, dump and dump_dir from the environment,
 * everything else NULL or false. */
smelt_aot_options smelt_aot_defaults(void);
/* Returns 0, or -1 with *error set to a message (free it with smelt_free;
 * error may be NULL). Nothing is left at the paths on failure. */
int smelt_aot_compile(const smelt_graph *g, const smelt_aot_options *options, char **error);

/* Gradient accumulation over micro-batches, opt-in (PyTorch accumulates
 * into .grad by default; smelt computes fresh gradients on every run). For
 * each param it adds an accumulator param "<param>.grad_acc" (zeros) and
 * writes, per param i:
 *   accumulate[i]:  assign(acc_i, acc_i + grads[i]): run these once per
 *                   micro-batch (a program with these updates);
 *   accumulated[i]: acc_i, the summed gradient: give it to an optimizer in
 *                   place of grads;
 *   zero[i]:        assign(acc_i, 0): put these in the step program beside
 *                   the optimizer's updates (all updates see the values from
 *                   before the run, so the step uses the sums, then zeroes).
 * k micro-batches then a step equal PyTorch's k backward() calls, step()
 * and zero_grad(). Returns 0, or -1 with the error on the graph. */
int smelt_grad_accumulators(smelt_graph *g, int n, const smelt_node *params,
                            const smelt_node *grads, smelt_node *accumulate,
                            smelt_node *accumulated, smelt_node *zero);

/* ----------------------------------------------------------- optimizers */
/* Optimizers are graph builders: given params and their gradients they add
 * update nodes (and their own state params, named after the param, e.g.
 * "w.momentum_buffer", "w.exp_avg", plus one "<prefix>.step" counter; a NULL
 * prefix means "sgd", "adam" or "adamw"), with PyTorch's formulas and
 * defaults. Grads must be float tensors of their param's shape. They write the updates to `updates`
 * (room for SMELT_OPTIM_MAX_UPDATES(n) handles) and return their count, or
 * -1 with the error on the graph. */
#define SMELT_OPTIM_MAX_UPDATES(n) (3 * (n) + 1)

typedef struct smelt_sgd_options {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize;
} smelt_sgd_options;
/* torch.optim.SGD(lr=lr): momentum 0, dampening 0, weight_decay 0. */
smelt_sgd_options smelt_sgd_defaults(double lr);
int smelt_sgd(smelt_graph *g, const char *prefix, int n, const smelt_node *params,
              const smelt_node *grads, const smelt_sgd_options *o, smelt_node *updates);

typedef struct smelt_adam_options {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled_weight_decay; /* AdamW */
  bool maximize;
} smelt_adam_options;
/* torch.optim.Adam(): lr 1e-3, betas (0.9, 0.999), eps 1e-8, no decay. */
smelt_adam_options smelt_adam_defaults(void);
/* torch.optim.AdamW(): as Adam with decoupled weight_decay 1e-2. */
smelt_adam_options smelt_adamw_defaults(void);
int smelt_adam(smelt_graph *g, const char *prefix, int n, const smelt_node *params,
               const smelt_node *grads, const smelt_adam_options *o, smelt_node *updates);

/* ---------------------------------------------------------- text format */
/* The canonical text form of the graph (docs/text-format.md). Returns a
 * malloc'ed string the caller frees with smelt_free, or NULL when out of
 * memory or when g is NULL. */
char *smelt_graph_print(const smelt_graph *g);
/* Graphviz DOT of the graph. Same ownership as smelt_graph_print. */
char *smelt_graph_print_dot(const smelt_graph *g);
/* Parses text into a new graph. On error returns NULL and, when errbuf is
 * not NULL, writes "file:line:col: message" into it (filename may be NULL:
 * then "<input>" is used). */
smelt_graph *smelt_graph_parse(const char *text, size_t len, const char *filename, char *errbuf,
                               size_t errlen);
/* Frees memory returned by the library (strings from smelt_graph_print). */
void smelt_free(void *p);

/* ------------------------------------------------- reference interpreter */
/* Runs a graph's outputs directly on the CPU: simple and obviously right,
 * reductions accumulated in double. The oracle for every backend. */
typedef struct smelt_interp smelt_interp;

/* An interpreter over g (which must outlive it and have no error). NULL
 * when out of memory; other problems are reported by smelt_interp_error. */
smelt_interp *smelt_interp_new(const smelt_graph *g);
void smelt_interp_free(smelt_interp *it);
/* Binds input `name`: dtype, rank and dims must match the input's exactly
 * and nbytes must equal its byte size. The data is read during run (not
 * copied). Returns 0, or -1 with smelt_interp_error set. */
int smelt_interp_bind(smelt_interp *it, const char *name, smelt_dtype dt, int rank,
                      const int64_t *dims, const void *data, size_t nbytes);
/* Computes every output of the graph. Returns 0, or -1 with the error set
 * (a missing input, an index out of range, out of memory). */
int smelt_interp_run(smelt_interp *it);
/* Copies output `name` (dense, row-major) into data; dt must be the
 * output's dtype and nbytes its byte size. Returns 0 or -1. */
int smelt_interp_read(smelt_interp *it, const char *name, smelt_dtype dt, void *data,
                      size_t nbytes);
/* The last error message of the interpreter, NULL when the last call
 * succeeded. */
const char *smelt_interp_error(const smelt_interp *it);

#ifdef __cplusplus
}
#endif
#endif
