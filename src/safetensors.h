/* Reading and writing safetensors files (internal to libsmelt; used for
 * param checkpoints, by the tests and by tests/st_tool.c).
 *
 * The format (https://github.com/huggingface/safetensors):
 *   N        8 bytes, little-endian unsigned: the header's length
 *   header   N bytes of UTF-8 JSON, an object:
 *              {"__metadata__": {"key": "value", ...},          (optional)
 *               "name": {"dtype": "F32", "shape": [2, 3],
 *                        "data_offsets": [begin, end]}, ...}
 *            padded with spaces (the Python library pads to a multiple of 8)
 *   data     the tensors' bytes, row-major, little-endian; data_offsets
 *            count from the first byte after the header. The tensors cover
 *            the data exactly: no gaps, no overlaps, nothing after the last.
 *
 * Dtypes: F32, F64, I32, I64 and BOOL (smelt's dtypes). Any other dtype
 * (F16, BF16, U8, I8, ...) is an error that names the tensor and the dtype.
 *
 * Read: the header is parsed by a strict parser for exactly this shape of
 * JSON (strings with every escape, \uXXXX and surrogate pairs included;
 * non-negative integers; no floats, no nesting beyond the shape above).
 * Rejected, each with its own message: duplicate tensor names, metadata
 * keys or fields, unknown fields, trailing text, invalid UTF-8, NUL bytes,
 * names holding \u0000, rank above SMELT_MAX_RANK, dims whose byte size
 * overflows, data_offsets that are reversed, disagree with the shape, run
 * past the data, overlap or leave gaps, and bytes after the last tensor.
 * "__metadata__": null is accepted as no metadata (as the Python library
 * does). The header length is checked against the file's size before
 * anything is allocated and is limited to 100,000,000 bytes (the Python
 * library's limit), and the data is allocated only once the header has been
 * checked against the file's size, so a hostile file cannot make the reader
 * allocate much more than its own size. Pipes work too: their buffers grow
 * as bytes arrive.
 * The Python library is more lenient: it accepts duplicate names (the last
 * wins), duplicate metadata keys and unknown fields; smelt refuses them.
 *
 * In memory every tensor's data is aligned to 16 bytes and in the host's
 * byte order; bool bytes other than 0 read as 1. Tensors are sorted by name
 * (bytewise) and metadata by key, whatever the order in the file.
 *
 * Write: byte-identical to the Python library's save_file (safetensors
 * 0.8.0) when there is at most one metadata pair (the library writes
 * several in the random order of a hash map; smelt sorts them by key):
 * compact JSON, "__metadata__" first, then the tensors in the library's
 * order -- by dtype (I64, F64, F32, I32, BOOL: widest first, so every
 * tensor is aligned to its element size) and by name within a dtype --
 * with contiguous data in that order and the header padded with spaces to
 * a multiple of 8 bytes. Files are written atomically: to a temporary file
 * in the same directory, fsync'ed, then renamed over the path, so a crash
 * leaves either the old file or the complete new one. The new file gets
 * the permissions of any file the process creates (0666 less the umask);
 * a symbolic link at path is replaced, not followed.
 *
 * Errors: functions return 0 on success, -1 on error with a message in
 * errbuf (errbuf may be NULL; the message is cut to errlen - 1 characters).
 * Messages start with the file name ("ckpt.safetensors: tensor \"w\":
 * data_offsets [0, 12] hold 12 bytes, but f32[2,3] needs 24"); "<memory>"
 * for in-memory images without a name. Allocation goes through sm_malloc /
 * sm_free; the library never prints and never aborts.
 */
#ifndef SMELT_SAFETENSORS_H
#define SMELT_SAFETENSORS_H

#include "smelt/smelt.h"

#include <stddef.h>
#include <stdint.h>

/* The Python library's limit on the header length, which smelt shares. */
#define SM_ST_MAX_HEADER 100000000u

/* One tensor: read from a file (every pointer then belongs to the
 * sm_st_file) or described by the caller for writing. */
typedef struct sm_st_tensor {
  const char *name; /* UTF-8, NUL-terminated */
  smelt_dtype dtype;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  const void *data; /* nbytes bytes, host byte order; never NULL after a read */
  size_t nbytes;    /* numel(dims) * smelt_dtype_size(dtype), exactly */
} sm_st_tensor;

/* One metadata pair ("__metadata__" in the header). */
typedef struct sm_st_meta {
  const char *key, *value; /* UTF-8, NUL-terminated */
} sm_st_meta;

/* The contents of a file. Fields after the public ones are private. */
typedef struct sm_st_file {
  sm_st_tensor *tensors; /* sorted by name */
  size_t ntensors;
  sm_st_meta *meta; /* sorted by key */
  size_t nmeta;
  char *strings_; /* names, keys and values */
  void *data_;    /* every tensor's data */
} sm_st_file;

/* Parses the safetensors image buf[0..len). name is used in messages
 * (NULL: "<memory>"). On success fills *out (free with sm_st_free); on
 * error leaves *out empty (safe to sm_st_free). */
int sm_st_read_mem(const void *buf, size_t len, const char *name, sm_st_file *out,
                   char *errbuf, size_t errlen);
/* Reads the file at path (a regular file, a pipe, /dev/stdin...). */
int sm_st_read_file(const char *path, sm_st_file *out, char *errbuf, size_t errlen);
/* Frees everything the file owns and empties it; NULL allowed. */
void sm_st_free(sm_st_file *f);

/* The tensor called name, NULL when there is none (binary search). */
const sm_st_tensor *sm_st_find(const sm_st_file *f, const char *name);
/* The metadata value of key, NULL when there is none. */
const char *sm_st_meta_get(const sm_st_file *f, const char *key);

/* Encodes n tensors and nmeta metadata pairs as a safetensors image: *out
 * (sm_malloc'ed, the caller frees it with sm_free) of *outlen bytes.
 * tensors and meta may be NULL when their count is 0. Each tensor's nbytes
 * must equal numel * dtype size (data may be NULL when that is 0). Names
 * and keys must be valid UTF-8 and unique; "__metadata__" is not a tensor
 * name. */
int sm_st_encode(const sm_st_tensor *tensors, size_t n, const sm_st_meta *meta, size_t nmeta,
                 void **out, size_t *outlen, char *errbuf, size_t errlen);
/* Writes the image to path atomically (see above), replacing any file
 * there. On error the path is untouched and no temporary file is left. */
int sm_st_write_file(const char *path, const sm_st_tensor *tensors, size_t n,
                     const sm_st_meta *meta, size_t nmeta, char *errbuf, size_t errlen);

/* The safetensors name of a dtype ("F32", "F64", "I32", "I64", "BOOL");
 * NULL for an out-of-range value. */
const char *sm_st_dtype_name(smelt_dtype dt);

#endif
