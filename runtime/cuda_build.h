/* The cuda target's compilation without a device (runtime/cuda_build.c):
 * plan, print as CUDA C, compile with NVRTC for a given architecture.
 * runtime/cuda.c loads the result on the device; smeltc --emit and the
 * tests use it alone, on machines without a GPU. */
#ifndef SMELT_RUNTIME_CUDA_BUILD_H
#define SMELT_RUNTIME_CUDA_BUILD_H

#include "../codegen/cuda.h"
#include "../codegen/nvrtc.h"
#include "plan.h"

typedef struct sm_cuda_image {
  sm_plan *plan;
  sm_cuda_source src; /* the CUDA C and how to launch each kernel */
  void *code;         /* NVRTC's output: cubin, or PTX text */
  size_t code_len;
  bool from_cache;
} sm_cuda_image;

/* Plans the roots of g (as sm_plan_new), prints the kernels and compiles
 * them for compute capability cc (x10) into out (NONE: print only).
 * Dumps the graph ... kernels stages, and cuda and ptx (ptx compiles a
 * second time when out is cubin). 0, or -1 with *err set. */
typedef enum { SM_CUDA_PRINT_ONLY = -1 } sm_cuda_build_kind;
int sm_cuda_build(const smelt_graph *g, size_t nroots, const uint32_t *roots,
                  const smelt_compile_options *o, int cc, int out, sm_dump *dump,
                  sm_cuda_image *img, char **err);
void sm_cuda_image_free(sm_cuda_image *img);

/* The architecture of o->cuda_arch (checked against NVRTC), or fallback_cc
 * when it is NULL. 0 or -1 with *err. */
int sm_cuda_pick_arch(const smelt_compile_options *o, int fallback_cc, int *cc, char **err);

/* The compute capability (x10) of the current CUDA device, or 80 when
 * there is no driver or device (smeltc --emit on machines without a GPU). */
int sm_cuda_device_arch(void);

#endif
