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
