/* Ahead-of-time compilation (src/aot.c): a graph's declared programs
 * planned for one object file (codegen/llvm_aot.c emits it) and described
 * by a C header (src/aot_header.c). docs/aot.md is the user's view. */
#ifndef SMELT_AOT_H
#define SMELT_AOT_H

#include "../runtime/plan.h"
#include "internal.h"

/* Every param's storage (and the arena) starts at a multiple of this. */
#define SM_AOT_ALIGN 64

/* A tensor the header names: a param, an input or an output. */
typedef struct sm_aot_tensor {
  const char *name;   /* as in the graph */
  char *cname;        /* a C identifier made of the name, unique in its kind */
  uint32_t node;      /* the node in the user's graph */
  smelt_dtype dtype;
  int rank;
  int64_t shape[SMELT_MAX_RANK];
  size_t bytes;
  size_t offset;      /* params: the byte offset in the param storage */
} sm_aot_tensor;

typedef struct sm_aot_program {
  const char *name;   /* the declared name ("params_init" for the initializer) */
  char *cname;
  bool eval;          /* training flag off, no updates */
  bool init;          /* the params' initializer: results go to the params */
  size_t *inputs;     /* indices into the model's inputs, in graph order */
  size_t ninputs;
  size_t *outputs;    /* indices into the model's outputs */
  size_t noutputs;
  size_t *updates;    /* per update: the index of the param it writes */
  size_t nupdates;
  /* roots of plan: outputs, then updates (init: one per param) */
  sm_plan *plan;
  smelt_graph *own;   /* the graph planned when it is not the user's (init) */
} sm_aot_program;

typedef struct sm_aot_model {
  const char *prefix;  /* "model" */
  char *upper;         /* "MODEL" */
  const char *source;  /* the graph's file name, or NULL */
  char *target;        /* "x86_64-pc-linux-gnu, cpu znver3" */
  sm_aot_tensor *params, *inputs, *outputs;
  size_t nparams, ninputs, noutputs;
  size_t params_bytes, arena_bytes;
  sm_aot_program *programs; /* the declared ones, then the initializer */
  size_t nprograms;         /* the initializer included (it is last) */
} sm_aot_model;

/* Writes the object of m to o->object_path (codegen/llvm_aot.c) for the
 * target of o; *target receives its description ("triple, cpu NAME") for
 * the header. Returns 0, or -1 with *err set (NULL when out of memory). */
int sm_aot_object(const sm_aot_model *m, const smelt_aot_options *o, sm_dump *dump,
                  char **target, char **err);

/* The header text, NULL when out of memory (docs/aot.md). */
char *sm_aot_header(const sm_aot_model *m);

/* The smelt dtype's C type ("float", "int64_t", "uint8_t" for bool). */
const char *sm_aot_ctype(smelt_dtype dt);

#endif
