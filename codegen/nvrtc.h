/* NVRTC: CUDA C to PTX or cubin at run time (codegen/nvrtc.c), with an
 * optional disk cache. NVRTC is found at build time (meson option cuda);
 * without it codegen/nvrtc_stub.c answers every call with a clear error.
 * Compiling needs no GPU and no driver. */
#ifndef SMELT_CODEGEN_NVRTC_H
#define SMELT_CODEGEN_NVRTC_H

#include "../src/internal.h"

/* True when libsmelt was built with NVRTC. */
bool sm_nvrtc_available(void);
/* NVRTC's version (e.g. 13, 0); -1 with *err set when unavailable. */
int sm_nvrtc_version(int *major, int *minor, char **err);

/* Parses an architecture ("sm_90", "sm_90a", "compute_90", "90") into its
 * compute capability times ten (90) and checks it against
 * nvrtcGetSupportedArchs. 0, or -1 with *err naming the arch and listing
 * the supported ones. */
int sm_nvrtc_parse_arch(const char *arch, int *cc, char **err);

typedef enum sm_nvrtc_output { SM_NVRTC_PTX, SM_NVRTC_CUBIN } sm_nvrtc_output;

typedef struct sm_nvrtc_request {
  const char *src;        /* the translation unit */
  const char *name;       /* its file name in messages, e.g. "smelt.cu" */
  int cc;                 /* compute capability x10 (sm_80: 80) */
  sm_nvrtc_output output;
  const char *cache_dir;  /* NULL: no disk cache */
} sm_nvrtc_request;

/* Compiles. Returns sm_malloc'ed bytes (PTX is NUL-terminated text, *len
 * excluding the NUL) or NULL with *err set: NVRTC's log, with the source
 * line of each error quoted. *from_cache (may be NULL) says whether the
 * bytes came from the disk cache. */
void *sm_nvrtc_compile(const sm_nvrtc_request *r, size_t *len, bool *from_cache, char **err);

#endif
