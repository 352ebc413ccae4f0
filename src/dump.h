/* SMELT_DUMP: the text of any compilation stage, to stderr or to files in
 * a directory (src/dump.c). Stages: graph, passes, fusion, kernels, llvm,
 * asm, cuda, ptx (and dot: the fused graph as DOT). */
#ifndef SMELT_DUMP_H
#define SMELT_DUMP_H

#include "internal.h"

typedef struct sm_dump {
  unsigned stages; /* bit per stage (SM_DUMP_*) */
  const char *dir; /* NULL: stderr */
  unsigned program; /* the program's number in this process (file names) */
} sm_dump;

enum {
  SM_DUMP_GRAPH = 1u << 0,
  SM_DUMP_PASSES = 1u << 1,
  SM_DUMP_FUSION = 1u << 2,
  SM_DUMP_KERNELS = 1u << 3,
  SM_DUMP_LLVM = 1u << 4,
  SM_DUMP_ASM = 1u << 5,
  SM_DUMP_DOT = 1u << 6,
  SM_DUMP_CUDA = 1u << 7, /* the CUDA C of the cuda target */
  SM_DUMP_PTX = 1u << 8,  /* its PTX, from NVRTC */
};

/* Parses a stage list ("graph,fusion", "all"); -1 with *bad pointing at
 * the unknown word. */
int sm_dump_parse(const char *list, unsigned *stages, const char **bad);
/* Sets d up from the options (numbering programs); 0, or -1 with *err. */
int sm_dump_init(sm_dump *d, const char *list, const char *dir, char **err);
static inline bool sm_dump_wants(const sm_dump *d, unsigned stage) {
  return d && (d->stages & stage);
}
/* Writes text for stage (name as in the list; part names a sub-step such
 * as "before" or a pass) to stderr or to DIR/p<program>.<stage>[.part].txt
 * (.ll, .s, .dot by stage). Errors writing are ignored (a dump never makes
 * a compilation fail). */
void sm_dump_write(const sm_dump *d, unsigned stage, const char *part, const char *text);

/* Capture (for smeltc compile --emit): while active on the calling
 * thread, the text of the given stages goes to a buffer instead of
 * stderr or files. end returns it (sm_malloc'ed; NULL when nothing was
 * written or out of memory) and stops capturing. */
void sm_dump_capture_begin(unsigned stages);
char *sm_dump_capture_end(void);

#endif
