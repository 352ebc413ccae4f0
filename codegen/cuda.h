/* The CUDA backend's printer: kernels of the kernel IR as one CUDA C
 * translation unit (codegen/cuda.c), to be compiled by NVRTC
 * (codegen/nvrtc.c) and launched by runtime/cuda.c. Printing needs no GPU
 * and no CUDA installation. See docs/cuda.md.
 *
 * Every kernel prints as
 *   extern "C" __global__ void __launch_bounds__(block)
 *   NAME(T0 *a0, const T1 *__restrict__ a1, ..., smelt_ctx *ctx, char *scratch)
 * where aI is the device address of buffer arg I of the kernel IR (k->args,
 * bool as unsigned char), ctx the run's context in device memory (the
 * layout of sm_kctx: rng_step, training, error, bad_index, bad_bound) and
 * scratch a device temporary of scratch_bytes (sm_cuda_kernel) that starts
 * zeroed when allocated and that kernels leave zeroed (the counters of
 * two-stage reductions). */
#ifndef SMELT_CODEGEN_CUDA_H
#define SMELT_CODEGEN_CUDA_H

#include "kernel.h"

/* The sm_kctx layout the generated code assumes (checked in cuda.c). */
#define SM_CUDA_CTX_BYTES 32

/* How runtime/cuda.c launches one kernel. */
typedef struct sm_cuda_kernel {
  char name[32];        /* the kernel's name (k->name) */
  int block;            /* threads per block (1-D blocks) */
  /* Blocks wanted along x, y, z. grid_stride: the kernel loops over x with
   * a grid stride, so the runtime may launch fewer blocks along x (it caps
   * them to a few waves of the device); otherwise exactly grid[] blocks. */
  int64_t grid[3];
  bool grid_stride;
  size_t scratch_bytes; /* device temporary the kernel needs (0: none) */
  /* Args the runtime zeroes before the launch (accumulating stores add
   * into zeros), as a list of arg indices. */
  int nzero;
  int *zero_args;
  const char *strategy; /* "pointwise", "thread-reduce", "block-reduce",
                           "two-stage-reduce", "tiled-matmul", "scatter" */
  /* Pointwise kernels with a vector path: the consecutive elements of the
   * innermost axis each thread computes there (4: float4 accesses, 2: f64
   * only, double2), and grid[0] counts those groups; the scalar path the
   * kernel falls back to (a misaligned buffer) covers the domain with the
   * same grid, as grid-stride loops do. 0: no vector path. */
  int vector;
} sm_cuda_kernel;

typedef struct sm_cuda_source {
  char *text;              /* the translation unit, NUL-terminated */
  size_t nkernels;
  sm_cuda_kernel *kernels; /* per input kernel, in order */
} sm_cuda_source;

/* Prints kernels as CUDA C. 0, or -1 with *err set (sm_malloc'ed; NULL
 * when out of memory) for a kernel the printer cannot handle. */
int sm_cuda_emit(sm_kernel *const *kernels, size_t n, sm_cuda_source *out, char **err);
void sm_cuda_source_free(sm_cuda_source *s);

#endif
