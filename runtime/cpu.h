/* Programs compiled for the cpu target: the driver that takes a graph's
 * roots through the passes, fusion, lowering and the LLVM backend, plans
 * the arena and runs the kernels on the thread pool (runtime/cpu.c). */
#ifndef SMELT_RUNTIME_CPU_H
#define SMELT_RUNTIME_CPU_H

#include "../src/internal.h"
#include "../codegen/kernel.h"

typedef struct sm_cpu_program sm_cpu_program;

/* True when libsmelt was built with the LLVM backend. */
bool sm_cpu_available(void);

/* Compiles the roots of g (the first nout are outputs, the rest assign
 * nodes whose value input is the new param value). NULL with *err set
 * (sm_malloc'ed, may stay NULL when out of memory). */
sm_cpu_program *sm_cpu_compile(const smelt_graph *g, size_t nroots, const uint32_t *roots,
                               size_t nout, const smelt_compile_options *o, char **err);
void sm_cpu_free(sm_cpu_program *c);
void sm_cpu_stats(const sm_cpu_program *c, smelt_program_stats *stats);

/* Bytes of the arena (intermediates) a run needs. */
size_t sm_cpu_arena_bytes(const sm_cpu_program *c);

/* For tests: the plan, and the compiled function of each of its kernels
 * (replaceable: a test puts a faulty kernel there to see
 * $SMELT_ARENA_GUARD catch it); the compiled code of a program (NULL but
 * on the cpu target). NULL without LLVM. */
typedef struct sm_plan sm_plan;
const sm_plan *sm_cpu_plan(const sm_cpu_program *c);
sm_kernel_fn *sm_cpu_kernel_fns(sm_cpu_program *c);
sm_cpu_program *sm_program_cpu(smelt_program *pr);

/* One run. arena: sm_cpu_arena_bytes of scratch for the intermediates
 * (NULL: the program's own, allocated when it was compiled); runs with
 * different arenas may go on in several threads at once: the program is
 * only read (but for $SMELT_PROFILE's sums, taken under a lock). inputs
 * and params give each graph node's storage (by node index, NULL where
 * none); results[k] receives root k's value (dense, the node's byte size;
 * for an assign root, the new value of its param). The params are only
 * read. Returns 0 or -1 with *err set. */
int sm_cpu_run(sm_cpu_program *c, void *arena, const void *const *inputs,
               const void *const *params, bool training, uint64_t rng_step,
               void *const *results, char **err);

#endif
