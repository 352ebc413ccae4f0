/* The C header of an ahead-of-time model: the memory the caller provides,
 * the context of a run, the params' layout, every input and output, one
 * function per program, and the checkpoint functions
 * (src/aot_safetensors.c). docs/aot.md shows a complete one. */
#include "aot.h"
#include "aot_safetensors.h"

#include <ctype.h>
#include <inttypes.h>
#include <string.h>

const char *sm_aot_ctype(smelt_dtype dt) {
  switch (dt) {
  case SMELT_F32: return "float";
  case SMELT_F64: return "double";
  case SMELT_I32: return "int32_t";
  case SMELT_I64: return "int64_t";
  case SMELT_BOOL: return "uint8_t";
  default: return "void";
  }
}

/* s in upper case into a static buffer (names are short). */
static const char *upper(const char *s) {
  static _Thread_local char buf[512];
  size_t i = 0;
  for (; s[i] && i + 1 < sizeof buf; i++) buf[i] = (char)toupper((unsigned char)s[i]);
  buf[i] = 0;
  return buf;
}

/* "f32[64,784]" */
static void type_text(sm_buf *b, const sm_aot_tensor *t) {
  sm_buf_printf(b, "%s", smelt_dtype_name(t->dtype));
  sm_buf_shape(b, t->rank, t->shape);
}

/* A C string literal of s (names may hold any UTF-8). */
static void c_string(sm_buf *b, const char *s) {
  sm_buf_puts(b, "\"");
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') sm_buf_printf(b, "\\%c", *p);
    else if (*p < 32 || *p >= 127) sm_buf_printf(b, "\\%03o", *p);
    else sm_buf_printf(b, "%c", *p);
  }
  sm_buf_puts(b, "\"");
}

/* Comments must not end early: a name holding the end of a comment is
 * shown with its '/' replaced. */
static void comment_text(sm_buf *b, const char *s) {
  for (; *s; s++) sm_buf_printf(b, "%c", s[0] == '*' && s[1] == '/' ? '+' : *s);
}

static void tensor_macros(sm_buf *b, const sm_aot_model *m, const char *kind,
                          const sm_aot_tensor *t, size_t index) {
  sm_buf_printf(b, "/* %s ", kind);
  comment_text(b, t->name);
  sm_buf_puts(b, ": ");
  type_text(b, t);
  sm_buf_puts(b, " */\n");
  char pre[600];
  snprintf(pre, sizeof pre, "%s_%s_", m->upper, upper(kind));
  size_t n = strlen(pre);
  snprintf(pre + n, sizeof pre - n, "%s", upper(t->cname));
  sm_buf_printf(b, "#define %s_INDEX %zu\n", pre, index);
  sm_buf_printf(b, "#define %s_DTYPE \"%s\" /* %s */\n", pre, smelt_dtype_name(t->dtype),
                sm_aot_ctype(t->dtype));
  sm_buf_printf(b, "#define %s_RANK %d\n", pre, t->rank);
  for (int d = 0; d < t->rank; d++)
    sm_buf_printf(b, "#define %s_DIM%d %" PRId64 "\n", pre, d, t->shape[d]);
  int64_t numel = 1;
  for (int d = 0; d < t->rank; d++) numel *= t->shape[d];
  sm_buf_printf(b, "#define %s_NUMEL %" PRId64 "\n", pre, numel);
  sm_buf_printf(b, "#define %s_BYTES %zu\n", pre, t->bytes);
  if (strcmp(kind, "param") == 0) {
    sm_buf_printf(b, "#define %s_OFFSET %zu\n", pre, t->offset);
    sm_buf_printf(b, "static inline %s *%s_param_%s(void *params) {\n", sm_aot_ctype(t->dtype),
                  m->prefix, t->cname);
    sm_buf_printf(b, "  return (%s *)((char *)params + %s_OFFSET);\n}\n", sm_aot_ctype(t->dtype),
                  pre);
  }
}

static void info_table(sm_buf *b, const sm_aot_model *m, const char *what,
                       const sm_aot_tensor *t, size_t n) {
  sm_buf_printf(b, "static const %s_tensor_info %s_%s_info[%zu] = {\n", m->prefix, m->prefix,
                what, n ? n : 1);
  for (size_t i = 0; i < n; i++) {
    sm_buf_puts(b, "    {");
    c_string(b, t[i].name);
    sm_buf_printf(b, ", \"%s\", %d, {", smelt_dtype_name(t[i].dtype), t[i].rank);
    for (int d = 0; d < t[i].rank; d++) sm_buf_printf(b, "%s%" PRId64, d ? ", " : "", t[i].shape[d]);
    if (!t[i].rank) sm_buf_puts(b, "0");
    sm_buf_printf(b, "}, %zu, %zu},\n", t[i].bytes, t[i].offset);
  }
  if (!n) sm_buf_puts(b, "    {\"\", \"f32\", 0, {0}, 0, 0}, /* none */\n");
  sm_buf_puts(b, "};\n");
}

static void names_list(sm_buf *b, const sm_aot_tensor *t, const size_t *idx, size_t n) {
  for (size_t i = 0; i < n; i++) {
    sm_buf_puts(b, i ? ", " : "");
    comment_text(b, t[idx[i]].name);
  }
  if (!n) sm_buf_puts(b, "none");
}

static void program_decl(sm_buf *b, const sm_aot_model *m, const sm_aot_program *pr) {
  if (pr->init) {
    sm_buf_printf(b,
                  "/* Initializes every param from its initializer: the same numbers as\n"
                  " * smelt_params_new (draw 0 of its random initializers; ctx->step is left\n"
                  " * as it is), or the values given with --weights. */\n"
                  "int %s_params_init(%s_ctx *ctx);\n\n",
                  m->prefix, m->prefix);
    return;
  }
  sm_buf_puts(b, "/* program ");
  comment_text(b, pr->name);
  sm_buf_printf(b, " (%s): outputs ", pr->eval ? "evaluation" : "training");
  names_list(b, m->outputs, pr->outputs, pr->noutputs);
  if (pr->nupdates) {
    sm_buf_puts(b, "; updates ");
    names_list(b, m->params, pr->updates, pr->nupdates);
  }
  sm_buf_puts(b, " */\n");
  sm_buf_printf(b, "int %s_%s(%s_ctx *ctx", m->prefix, pr->cname, m->prefix);
  for (size_t i = 0; i < pr->ninputs; i++) {
    const sm_aot_tensor *t = &m->inputs[pr->inputs[i]];
    sm_buf_printf(b, ",\n    const %s *%s /* ", sm_aot_ctype(t->dtype), t->cname);
    type_text(b, t);
    sm_buf_puts(b, " */");
  }
  for (size_t i = 0; i < pr->noutputs; i++) {
    const sm_aot_tensor *t = &m->outputs[pr->outputs[i]];
    sm_buf_printf(b, ",\n    %s *%s /* ", sm_aot_ctype(t->dtype), t->cname);
    type_text(b, t);
    sm_buf_puts(b, ", output */");
  }
  sm_buf_puts(b, ");\n\n");
}

char *sm_aot_header(const sm_aot_model *m) {
  sm_buf b = {0};
  const char *p = m->prefix, *P = m->upper;
  sm_buf_printf(&b, "/* %s.h: the C interface of an object compiled by smeltc %d.%d.%d", p,
                SMELT_VERSION_MAJOR, SMELT_VERSION_MINOR, SMELT_VERSION_PATCH);
  if (m->source) {
    sm_buf_puts(&b, "\n * from ");
    comment_text(&b, m->source);
  }
  sm_buf_puts(&b, " for ");
  comment_text(&b, m->target ? m->target : "the host");
  sm_buf_printf(&b,
                ". Generated: do not edit.\n"
                " *\n"
                " * The object needs libc and libm only: cc host.c %s.o -lm. The caller\n"
                " * provides all memory: the params (every weight and optimizer state) and an\n"
                " * arena for intermediates, whose sizes are below; a run allocates nothing.\n"
                " *\n"
                " *   static _Alignas(64) unsigned char params[%s_PARAMS_BYTES];\n"
                " *   static _Alignas(64) unsigned char arena[%s_ARENA_BYTES];\n"
                " *   %s_ctx ctx = {0};\n"
                " *   ctx.params = params;\n"
                " *   ctx.arena = arena;\n"
                " *   if (%s_params_init(&ctx)) fprintf(stderr, \"%%s\\n\", ctx.error);\n"
                " *\n"
                " * Every program function returns 0, or 1 with ctx->error set (-1 when ctx\n"
                " * is NULL). Runs on one ctx must not overlap; runs on contexts with their\n"
                " * own params and arena may. smelt's docs/aot.md explains the rest. */\n",
                p, P, P, p, p);
  sm_buf_printf(&b, "#ifndef SMELT_AOT_%s_H\n#define SMELT_AOT_%s_H\n\n", P, P);
  sm_buf_puts(&b, "#include <errno.h>\n#include <stdarg.h>\n#include <stddef.h>\n"
                  "#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
                  "#include <string.h>\n#include <time.h>\n\n"
                  "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
  sm_buf_printf(&b,
                "/* Memory the caller provides: multiples of the alignment, at least 64\n"
                " * bytes (the arena fits the largest program). */\n"
                "#define %s_PARAMS_BYTES %zu\n#define %s_PARAMS_ALIGN %d\n"
                "#define %s_ARENA_BYTES %zu\n#define %s_ARENA_ALIGN %d\n\n",
                P, m->params_bytes, P, SM_AOT_ALIGN, P, m->arena_bytes, P, SM_AOT_ALIGN);
  sm_buf_printf(
      &b,
      "/* The context of a run. Zero it, then set params and arena. */\n"
      "typedef struct %s_ctx {\n"
      "  void *params;   /* %s_PARAMS_BYTES at a %s_PARAMS_ALIGN boundary */\n"
      "  void *arena;    /* %s_ARENA_BYTES at a %s_ARENA_ALIGN boundary */\n"
      "  uint64_t step;  /* the draw number of the next run (rand, randn, dropout);\n"
      "                     each run of a program adds one */\n"
      "  /* Threads, optional: NULL runs everything on the calling thread. Else a\n"
      "   * kernel calls parallel_for(pool, n, grain, task, arg), which must call\n"
      "   * task(arg, begin, end) on ranges that cover [0, n) exactly once, at once\n"
      "   * on several threads if it likes, and return when all have returned.\n"
      "   * Ranges should start at multiples of grain. Threads need 1 MiB of stack. */\n"
      "  void (*parallel_for)(void *pool, int64_t n, int64_t grain,\n"
      "                       void (*task)(void *arg, int64_t begin, int64_t end), void *arg);\n"
      "  void *pool;     /* handed to parallel_for */\n"
      "  const char *error;  /* why the last run failed (a static string), or NULL */\n"
      "  int64_t bad_index, bad_bound; /* an index out of range: the index, its bound */\n"
      "} %s_ctx;\n\n",
      p, P, P, P, P, p);
  sm_buf_printf(&b,
                "/* A param, input or output: its name in the graph, dtype (\"f32\", \"f64\",\n"
                " * \"i32\", \"i64\", \"bool\": one byte, 0 or 1), shape, byte size and, for a\n"
                " * param, its byte offset in the param storage. Data is dense, row-major. */\n"
                "typedef struct %s_tensor_info {\n"
                "  const char *name;\n  const char *dtype;\n  int rank;\n"
                "  int64_t shape[8];\n  size_t bytes;\n  size_t offset;\n"
                "} %s_tensor_info;\n\n",
                p, p);

  sm_buf_printf(&b, "/* ---------------------------------------------------------- params */\n\n"
                    "#define %s_NUM_PARAMS %zu\n",
                P, m->nparams);
  for (size_t i = 0; i < m->nparams; i++) tensor_macros(&b, m, "param", &m->params[i], i);
  info_table(&b, m, "params", m->params, m->nparams);

  sm_buf_printf(&b, "\n/* ------------------------------------------------ inputs, outputs */\n\n"
                    "#define %s_NUM_INPUTS %zu\n",
                P, m->ninputs);
  for (size_t i = 0; i < m->ninputs; i++) tensor_macros(&b, m, "input", &m->inputs[i], i);
  info_table(&b, m, "inputs", m->inputs, m->ninputs);
  sm_buf_printf(&b, "\n#define %s_NUM_OUTPUTS %zu\n", P, m->noutputs);
  for (size_t i = 0; i < m->noutputs; i++) tensor_macros(&b, m, "output", &m->outputs[i], i);
  info_table(&b, m, "outputs", m->outputs, m->noutputs);

  sm_buf_puts(&b, "\n/* -------------------------------------------------------- programs */\n"
                  "/* Inputs are read, outputs written, in the dtypes and shapes shown;\n"
                  " * outputs must not overlap inputs, the params or the arena. A failed run\n"
                  " * changes no param (its outputs may be partly written). */\n\n");
  for (size_t i = 0; i < m->nprograms; i++) program_decl(&b, m, &m->programs[i]);

  sm_buf_puts(&b, "/* ----------------------------------------------------- checkpoints */\n\n");
  sm_aot_safetensors_c(&b, p, P);
  sm_buf_printf(&b, "\n#ifdef __cplusplus\n}\n#endif\n\n#endif /* SMELT_AOT_%s_H */\n", P);
  return sm_buf_take(&b);
}
