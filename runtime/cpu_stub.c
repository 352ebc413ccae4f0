/* The cpu target when libsmelt is built without LLVM: it reports that it
 * is missing (smelt_program_* then fall back to what the caller asks). */
#include "cpu.h"
#include "../src/aot.h"

bool sm_cpu_available(void) { return false; }

sm_cpu_program *sm_cpu_compile(const smelt_graph *g, size_t nroots, const uint32_t *roots,
                               size_t nout, const smelt_compile_options *o, char **err) {
  (void)g, (void)nroots, (void)roots, (void)nout, (void)o;
  *err = sm_strdup("the cpu target needs LLVM, and this libsmelt was built without it");
  return NULL;
}

void sm_cpu_free(sm_cpu_program *c) { (void)c; }

void sm_cpu_stats(const sm_cpu_program *c, smelt_program_stats *stats) { (void)c, (void)stats; }

size_t sm_cpu_arena_bytes(const sm_cpu_program *c) {
  (void)c;
  return 0;
}

const sm_plan *sm_cpu_plan(const sm_cpu_program *c) {
  (void)c;
  return NULL;
}

sm_kernel_fn *sm_cpu_kernel_fns(sm_cpu_program *c) {
  (void)c;
  return NULL;
}

int sm_cpu_run(sm_cpu_program *c, void *arena, const void *const *inputs,
               const void *const *params, bool training, uint64_t rng_step,
               void *const *results, char **err) {
  (void)c, (void)arena, (void)inputs, (void)params, (void)training, (void)rng_step, (void)results;
  *err = sm_strdup("the cpu target is not available");
  return -1;
}

int sm_aot_object(const sm_aot_model *m, const smelt_aot_options *o, sm_dump *dump,
                  char **target, char **err) {
  (void)m, (void)o, (void)dump, (void)target;
  *err = sm_strdup("ahead-of-time compilation needs LLVM, and this libsmelt was built without it");
  return -1;
}
