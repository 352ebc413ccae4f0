/* Reading (Fashion-)MNIST from its IDX files, gzip'ed or not.
 *
 * An IDX file is a 4-byte magic (two zero bytes, a type byte, 0x08 for
 * unsigned bytes, and the number of dimensions), one big-endian uint32 per
 * dimension, then the data, row-major. The image files have 3 dimensions
 * (count, rows, columns), the label files 1 (count).
 *
 * Every function here returns 0, or -1 with a message in err that names
 * the file and says what is wrong (missing, not gzip, truncated, a bad
 * magic, a wrong dimension count, sizes that disagree with the length,
 * label counts that disagree with image counts, labels out of range). */
#ifndef FASHION_MNIST_IDX_H
#define FASHION_MNIST_IDX_H

#include <stddef.h>
#include <stdint.h>

/* The dataset's pixel statistics (over the 60000 training images, pixels
 * in [0, 1]). */
#define FMNIST_MEAN 0.2860f
#define FMNIST_STD 0.3530f
#define FMNIST_CLASSES 10

/* The contents of one IDX file of unsigned bytes. */
typedef struct idx_file {
  int ndims;
  int64_t dims[3];
  uint8_t *data; /* product of dims bytes, malloc'ed */
} idx_file;

/* Reads path (gzip'ed or plain: zlib reads both) and checks that it is an
 * IDX file of unsigned bytes with ndims dimensions whose sizes match its
 * length exactly. */
int idx_read(const char *path, int ndims, idx_file *out, char *err, size_t errlen);
void idx_free(idx_file *f);

/* One split of the dataset: count images of rows x cols pixels, scaled to
 * [0, 1] and normalized ((p - FMNIST_MEAN) / FMNIST_STD), and their labels
 * in 0..9. */
typedef struct fmnist_split {
  int64_t count, rows, cols;
  float *images;   /* count * rows * cols */
  int64_t *labels; /* count */
} fmnist_split;

/* Reads an images file and a labels file and checks that they fit
 * together (as many labels as images, labels < 10). */
int fmnist_read_split(const char *images_path, const char *labels_path, fmnist_split *out,
                      char *err, size_t errlen);
/* Reads DIR/<prefix>-images-idx3-ubyte.gz and DIR/<prefix>-labels-idx1-ubyte.gz
 * (prefix "train" or "t10k"; each falls back to the name without .gz when
 * only that exists) and checks the images are 28x28. */
int fmnist_load(const char *dir, const char *prefix, fmnist_split *out, char *err,
                size_t errlen);
void fmnist_free(fmnist_split *s);

#endif
