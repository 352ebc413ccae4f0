/* Programs compiled for the cuda target (runtime/cuda.c): the same plan as
 * the cpu target (runtime/plan.c), printed as CUDA C (codegen/cuda.c),
 * compiled by NVRTC for the device's architecture, loaded and launched
 * through the driver API (runtime/cuda_driver.c, dlopen'ed). */
#ifndef SMELT_RUNTIME_CUDA_H
#define SMELT_RUNTIME_CUDA_H

#include "../src/internal.h"

typedef struct sm_cuda_program sm_cuda_program;

/* True when libsmelt was built with NVRTC (the driver may still be
 * missing at run time). */
bool sm_cuda_available(void);

/* Compiles the roots of g (as sm_cpu_compile) for the current device.
 * NULL with *err set ("no CUDA driver found ..." without a driver). */
sm_cuda_program *sm_cuda_compile(const smelt_graph *g, size_t nroots, const uint32_t *roots,
                                 size_t nout, const smelt_compile_options *o, char **err);
void sm_cuda_free(sm_cuda_program *c);
void sm_cuda_stats(const sm_cuda_program *c, smelt_program_stats *stats);

/* One run. Per graph node: host_inputs (host addresses, copied to the
 * device) or dev_inputs (device addresses used in place; NULL array or 0
 * entry: use host_inputs); params: device addresses of the params. After
 * a successful run (the stream synchronized) root k's value is at
 * sm_cuda_result(c, k) in device memory. 0 or -1 with *err set. */
int sm_cuda_run(sm_cuda_program *c, const void *const *host_inputs, const uint64_t *dev_inputs,
                const uint64_t *params, bool training, uint64_t rng_step, char **err);
uint64_t sm_cuda_result(const sm_cuda_program *c, size_t root);

/* Device memory of the current device, for the params' device copies and
 * callers' transfers. Each returns 0 or -1 with *err set. */
int sm_cuda_alloc(size_t bytes, uint64_t *ptr, char **err);
void sm_cuda_release(uint64_t ptr);
int sm_cuda_upload(uint64_t dst, const void *src, size_t bytes, char **err);
int sm_cuda_download(void *dst, uint64_t src, size_t bytes, char **err);
int sm_cuda_copy(uint64_t dst, uint64_t src, size_t bytes, char **err);

#endif
