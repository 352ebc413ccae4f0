/* The safetensors load and save functions of an AOT header (src/aot.c
 * writes the rest of the header). */
#ifndef SMELT_AOT_SAFETENSORS_H
#define SMELT_AOT_SAFETENSORS_H

#include "internal.h"

/* Appends to b the C99 source of the header's checkpoint functions for
 * generated names starting with prefix (PREFIX: the same in upper case):
 *
 *   static inline int prefix_params_save(const void *params, const char *path,
 *                                        char *err, size_t errlen);
 *   static inline int prefix_params_load(void *params, const char *path,
 *                                        char *err, size_t errlen);
 *
 * They use what the header defines before this code: the struct
 * prefix_tensor_info (name, dtype, rank, shape[8], bytes, offset), the
 * table `static const prefix_tensor_info prefix_params_info[]` and the
 * macro PREFIX_NUM_PARAMS. The code includes the libc headers it needs
 * (errno, stdarg, stdint, stdio, stdlib, string, time); every other name
 * it defines starts with prefix_st_. See docs/aot.md. */
void sm_aot_safetensors_c(sm_buf *b, const char *prefix, const char *PREFIX);

#endif
