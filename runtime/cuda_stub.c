/* The cuda target when libsmelt is built without NVRTC: every call says
 * so (smelt_program_* then report it, or fall back where the caller asks
 * for any target). */
#include "cuda.h"
#include "cuda_build.h"

#define NO_NVRTC                                                                          \
  "the cuda target needs NVRTC, and this libsmelt was built without it (install CUDA or " \
  "set CUDA_HOME, then rebuild; see docs/cuda.md)"

bool sm_cuda_available(void) { return false; }

sm_cuda_program *sm_cuda_compile(const smelt_graph *g, size_t nroots, const uint32_t *roots,
                                 size_t nout, const smelt_compile_options *o, char **err) {
  (void)g, (void)nroots, (void)roots, (void)nout, (void)o;
  *err = sm_strdup(NO_NVRTC);
  return NULL;
}

void sm_cuda_free(sm_cuda_program *c) { (void)c; }

void sm_cuda_stats(const sm_cuda_program *c, smelt_program_stats *stats) { (void)c, (void)stats; }

int sm_cuda_run(sm_cuda_program *c, const void *const *host_inputs, const uint64_t *dev_inputs,
                const uint64_t *params, bool training, uint64_t rng_step, char **err) {
  (void)c, (void)host_inputs, (void)dev_inputs, (void)params, (void)training, (void)rng_step;
  *err = sm_strdup(NO_NVRTC);
  return -1;
}

uint64_t sm_cuda_result(const sm_cuda_program *c, size_t root) {
  (void)c, (void)root;
  return 0;
}

int sm_cuda_alloc(size_t bytes, uint64_t *ptr, char **err) {
  (void)bytes;
  *ptr = 0;
  *err = sm_strdup(NO_NVRTC);
  return -1;
}

void sm_cuda_release(uint64_t ptr) { (void)ptr; }

int sm_cuda_upload(uint64_t dst, const void *src, size_t bytes, char **err) {
  (void)dst, (void)src, (void)bytes;
  *err = sm_strdup(NO_NVRTC);
  return -1;
}

int sm_cuda_download(void *dst, uint64_t src, size_t bytes, char **err) {
  (void)dst, (void)src, (void)bytes;
  *err = sm_strdup(NO_NVRTC);
  return -1;
}

int sm_cuda_copy(uint64_t dst, uint64_t src, size_t bytes, char **err) {
  (void)dst, (void)src, (void)bytes;
  *err = sm_strdup(NO_NVRTC);
  return -1;
}

/* No driver without NVRTC: smeltc --emit's default architecture. Weak only
 * while runtime/cuda_build.c keeps its temporary definition. */
int sm_cuda_device_arch(void) { return 80; }
