/* Reading and writing NumPy .npy files (internal to libsmelt; used by
 * smeltc and the tests).
 *
 * Read: format versions 1.0, 2.0 and 3.0; dtypes '<f4' '<f8' '<i4' '<i8'
 * (f32 f64 i32 i64) and '|b1' (bool). Big-endian ('>f4', ...) and native
 * ('=f4') byte orders are accepted and converted to the host's order.
 * fortran_order True is accepted: the data is transposed to row-major (C
 * order). Bool bytes other than 0 are read as 1. Anything else (another
 * dtype, a structured dtype, a malformed or truncated file, trailing bytes
 * after the data) is an error whose message names the file and the problem.
 * The declared data size is checked against the bytes actually present
 * before the data buffer is allocated, so a hostile header cannot make the
 * reader allocate more than about the size of the input.
 *
 * Write: format 1.0 (2.0 when the header would not fit in 1.0), the host's
 * byte order, C order, header padded so that the data starts at a multiple
 * of 64 bytes, as numpy.save does.
 *
 * Errors: functions return 0 on success, -1 on error with a message written
 * to errbuf (errbuf may be NULL; the message is truncated to errlen - 1
 * characters). Messages start with the file name ("x.npy: ..."). Allocation
 * goes through sm_malloc / sm_free; the library never prints.
 */
#ifndef SMELT_NPY_H
#define SMELT_NPY_H

#include "smelt/smelt.h"

#include <stddef.h>
#include <stdint.h>

/* A dense, row-major array read from a .npy file. */
typedef struct sm_npy {
  smelt_dtype dtype;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  int64_t numel;
  void *data;    /* nbytes bytes, owned (sm_malloc); never NULL after a read */
  size_t nbytes; /* numel * smelt_dtype_size(dtype) */
} sm_npy;

/* Parses the .npy image buf[0..len). name is used in error messages (NULL:
 * "<memory>"). On success fills *out (free with sm_npy_free); on error
 * leaves *out empty (safe to sm_npy_free). */
int sm_npy_read_mem(const void *buf, size_t len, const char *name, sm_npy *out, char *errbuf,
                    size_t errlen);
/* Reads the .npy file at path (a regular file, a pipe, /dev/stdin...). */
int sm_npy_read_file(const char *path, sm_npy *out, char *errbuf, size_t errlen);
/* Frees the array's data and empties it; NULL allowed. */
void sm_npy_free(sm_npy *a);

/* Encodes an array as a .npy image: *out (sm_malloc'ed, the caller frees
 * with sm_free) of *outlen bytes. data holds numel(dims) elements of dt
 * (may be NULL when there are none). */
int sm_npy_encode(smelt_dtype dt, int rank, const int64_t *dims, const void *data, void **out,
                  size_t *outlen, char *errbuf, size_t errlen);
/* Writes an array to path as a .npy file (replacing it). On a write error
 * the partial file is removed. */
int sm_npy_write_file(const char *path, smelt_dtype dt, int rank, const int64_t *dims,
                      const void *data, char *errbuf, size_t errlen);

/* The .npy descr of a dtype in the host's byte order ("<f4", "|b1", ...). */
const char *sm_npy_descr(smelt_dtype dt);

#endif
