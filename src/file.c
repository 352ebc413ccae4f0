/* Opening untrusted input files, shared by the readers (.npy,
 * safetensors): every declared size is checked against the real file size
 * before anything is allocated. */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

FILE *sm_open_input(const char *path, bool *known, uint64_t *size, char *errbuf, size_t errlen) {
  *known = false;
  *size = 0;
  errno = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errbuf && errlen) snprintf(errbuf, errlen, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fileno(f), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      if (errbuf && errlen) snprintf(errbuf, errlen, "%s: is a directory", path);
      fclose(f);
      return NULL;
    }
    /* Pipes and devices have no size: their readers grow buffers as bytes
     * arrive instead. */
    if (S_ISREG(st.st_mode) && st.st_size >= 0) {
      *known = true;
      *size = (uint64_t)st.st_size;
    }
  }
  return f;
}

/* Reads up to want bytes from f into a new buffer (*buf, sm_malloc'ed,
 * *got bytes). When the size of the rest of the file is known (avail) the
 * buffer is allocated at once; otherwise it grows as bytes arrive, so a
 * lying header costs no more memory than the input itself. Returns 0, or
 * -1 when out of memory (*buf freed). Read errors show in ferror(f). */
int sm_read_bounded(FILE *f, size_t want, bool known, uint64_t avail, unsigned char **buf,
                    size_t *got) {
  *buf = NULL;
  *got = 0;
  size_t cap;
  if (known)
    cap = avail < want ? (size_t)avail : want;
  else
    cap = want < SM_READ_CHUNK ? want : SM_READ_CHUNK;
  unsigned char *b = sm_malloc(cap);
  if (!b) return -1;
  size_t n = 0;
  for (;;) {
    if (n < cap) {
      size_t r = fread(b + n, 1, cap - n, f);
      n += r;
      if (n < cap) break; /* end of file or error */
    }
    if (n == want || known) break;
    size_t ncap = cap > want / 2 ? want : cap * 2;
    unsigned char *nb = sm_realloc(b, ncap);
    if (!nb) {
      sm_free(b);
      return -1;
    }
    b = nb;
    cap = ncap;
  }
  *buf = b;
  *got = n;
  return 0;
}

