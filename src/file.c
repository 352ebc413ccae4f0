/* Opening untrusted input files, shared by the readers (.npy,
 * safetensors): every declared size is checked against the real file size
 * before anything is allocated. */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int sm_make_dirs(const char *dir) {
  char *p = sm_strdup(dir);
  if (!p) return ENOMEM;
  int rc = 0;
  for (char *s = p + 1; *s && !rc; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, 0777) && errno != EEXIST) rc = errno;
    *s = '/';
  }
  if (!rc && mkdir(p, 0777) && errno != EEXIST) rc = errno;
  sm_free(p);
  struct stat st;
  if (!rc && stat(dir, &st)) rc = errno;
  else if (!rc && !S_ISDIR(st.st_mode)) rc = ENOTDIR;
  return rc;
}

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


/* ------------------------------------------------------------ writing */

/* write(2) until done; false with errno set on error. */
bool sm_write_all(int fd, const void *buf, size_t n) {
  const unsigned char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (w == 0) {
      errno = EIO;
      return false;
    }
    p += w;
    n -= (size_t)w;
  }
  return true;
}

/* A new temporary file next to path: its name in tmp (cap bytes). */
int sm_create_temp(const char *path, char *tmp, size_t cap) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)tmp;
  for (int attempt = 0; attempt < 100; attempt++) {
    x = x * 6364136223846793005u + 1442695040888963407u;
    snprintf(tmp, cap, "%s.%ld.%06x.tmp", path, (long)getpid(), (unsigned)(x >> 40));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  return -1;
}

/* The directory part of path ("." when none) into dir (cap bytes). */
static void dir_of(const char *path, char *dir, size_t cap) {
  const char *slash = strrchr(path, '/');
  if (!slash) {
    snprintf(dir, cap, ".");
  } else {
    size_t dl = slash == path ? 1 : (size_t)(slash - path);
    snprintf(dir, cap, "%.*s", (int)dl, path);
  }
}

int sm_commit_temp(int fd, bool written, const char *tmp, const char *path, char *errbuf,
                   size_t errlen) {
  const char *step = "write error";
  bool ok = written;
  int saved = errno;
  if (ok) {
    step = "fsync failed";
    while (!(ok = fsync(fd) == 0) && errno == EINTR) {
    }
    saved = errno;
  }
  if (close(fd) != 0 && ok) {
    ok = false;
    step = "write error";
    saved = errno;
  }
  if (ok) {
    step = "cannot rename the temporary file into place";
    ok = rename(tmp, path) == 0;
    saved = errno;
  }
  if (!ok) {
    unlink(tmp);
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "%s: %s: %s", path, step, strerror(saved ? saved : EIO));
    return -1;
  }
  /* Makes the rename itself durable; best effort (not every file system
   * can fsync a directory, and the new file is in place either way). */
  size_t plen = strlen(path);
  char *dir = sm_malloc(plen + 2);
  if (dir) {
    dir_of(path, dir, plen + 2);
    int dfd = open(dir, O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)fsync(dfd);
      close(dfd);
    }
    sm_free(dir);
  }
  return 0;
}

int sm_write_file_atomic(const char *path, const void *data, size_t len, char **err) {
  *err = NULL;
  size_t tcap = strlen(path) + 48;
  char *tmp = sm_malloc(tcap);
  if (!tmp) return -1;
  errno = 0;
  int fd = sm_create_temp(path, tmp, tcap);
  char msg[1024];
  int rc = -1;
  if (fd < 0)
    snprintf(msg, sizeof msg, "%s: cannot create a temporary file next to it: %s", path,
             strerror(errno ? errno : EEXIST));
  else
    rc = sm_commit_temp(fd, sm_write_all(fd, data, len), tmp, path, msg, sizeof msg);
  if (rc) *err = sm_strdup(msg);
  sm_free(tmp);
  return rc;
}
