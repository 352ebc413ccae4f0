/* NumPy .npy files: a reader that never trusts the file and a writer whose
 * output is byte-identical to numpy.save (numpy >= 1.24) for the dtypes
 * smelt has. See npy.h for what is accepted.
 *
 * Layout of a .npy file:
 *   "\x93NUMPY" major minor            8 bytes
 *   header length, little-endian       2 bytes (1.0) or 4 bytes (2.0, 3.0)
 *   header: a Python dict literal      {'descr': '<f4', 'fortran_order':
 *                                        False, 'shape': (3, 4), }
 *                                      padded with spaces, ending in '\n'
 *   data: numel * itemsize bytes
 */
#include "npy.h"

#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6

/* ------------------------------------------------------------- errors */

static int fail(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *errbuf, size_t errlen, const char *fmt, ...) {
  if (errbuf && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* Copies n bytes of untrusted text into dst (cap bytes) for a message:
 * non-printable bytes as \xNN, cut with "..." when too long. */
static void show(char *dst, size_t cap, const char *s, size_t n) {
  size_t o = 0;
  const size_t room = cap > 8 ? cap - 8 : 0; /* keep space for "\xNN..." */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (o >= room) {
      if (cap >= 4) memcpy(dst + o, "...", 4);
      return;
    }
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      dst[o++] = (char)c;
    } else {
      snprintf(dst + o, cap - o, "\\x%02x", c);
      o += 4;
    }
  }
  if (cap) dst[o < cap ? o : cap - 1] = 0;
}

/* "(3, 4)", "(3,)", "()" */
static void shape_str(char *dst, size_t cap, int rank, const int64_t *dims) {
  size_t o = 0;
  o += (size_t)snprintf(dst + o, cap - o, "(");
  for (int i = 0; i < rank && o < cap; i++)
    o += (size_t)snprintf(dst + o, cap - o, i ? ", %" PRId64 : "%" PRId64, dims[i]);
  if (o < cap) snprintf(dst + o, cap - o, rank == 1 ? ",)" : ")");
}

/* -------------------------------------------------------------- dtypes */

static bool host_is_little(void) {
  const uint16_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

const char *sm_npy_descr(smelt_dtype dt) {
  static const char *const le[SMELT_DTYPE_COUNT] = {"<f4", "<f8", "<i4", "<i8", "|b1"};
  static const char *const be[SMELT_DTYPE_COUNT] = {">f4", ">f8", ">i4", ">i8", "|b1"};
  if ((unsigned)dt >= SMELT_DTYPE_COUNT) return NULL;
  return host_is_little() ? le[dt] : be[dt];
}

/* Maps a descr string to a dtype; *swap tells whether the file's byte order
 * differs from the host's. */
static bool descr_dtype(const char *s, size_t n, smelt_dtype *dt, bool *swap) {
  if (n != 3) return false;
  char order = s[0];
  if (s[1] == 'b' && s[2] == '1') {
    if (order != '|' && order != '<' && order != '>' && order != '=') return false;
    *dt = SMELT_BOOL;
    *swap = false;
    return true;
  }
  if (order != '<' && order != '>' && order != '=') return false;
  if (s[1] == 'f' && s[2] == '4')
    *dt = SMELT_F32;
  else if (s[1] == 'f' && s[2] == '8')
    *dt = SMELT_F64;
  else if (s[1] == 'i' && s[2] == '4')
    *dt = SMELT_I32;
  else if (s[1] == 'i' && s[2] == '8')
    *dt = SMELT_I64;
  else
    return false;
  *swap = order == '=' ? false : (order == '<') != host_is_little();
  return true;
}

/* -------------------------------------------------------------- header */

typedef struct npy_header {
  smelt_dtype dtype;
  bool swap;
  bool fortran;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  int64_t numel;
  size_t nbytes;
} npy_header;

typedef struct scanner {
  const char *name; /* the file, for messages */
  const char *s;
  size_t n, pos;
  char *errbuf;
  size_t errlen;
} scanner;

static int bad(scanner *sc, const char *what) {
  char near[48];
  size_t left = sc->n - sc->pos;
  show(near, sizeof near, sc->s + sc->pos, left < 24 ? left : 24);
  if (sc->pos >= sc->n)
    return fail(sc->errbuf, sc->errlen, "%s: malformed header: %s at the end of the header",
                sc->name, what);
  return fail(sc->errbuf, sc->errlen, "%s: malformed header: %s at byte %zu of the header (near '%s')",
              sc->name, what, sc->pos, near);
}

static void skip_ws(scanner *sc) {
  while (sc->pos < sc->n) {
    char c = sc->s[sc->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') break;
    sc->pos++;
  }
}

static bool peek(scanner *sc, char c) { return sc->pos < sc->n && sc->s[sc->pos] == c; }

/* A quoted string without escapes, as in '...' or "..."; sets *str and *len. */
static int scan_string(scanner *sc, const char **str, size_t *len, const char *what) {
  if (!(peek(sc, '\'') || peek(sc, '"'))) return bad(sc, what);
  char q = sc->s[sc->pos++];
  size_t start = sc->pos;
  while (sc->pos < sc->n && sc->s[sc->pos] != q) {
    char c = sc->s[sc->pos];
    if (c == '\\') return bad(sc, "escape sequence in a string (not supported)");
    if (c == '\n' || c == '\r' || c == 0) return bad(sc, "unterminated string");
    sc->pos++;
  }
  if (sc->pos >= sc->n) return bad(sc, "unterminated string");
  *str = sc->s + start;
  *len = sc->pos - start;
  sc->pos++;
  return 0;
}

static bool is_ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int scan_descr(scanner *sc, npy_header *h) {
  if (peek(sc, '['))
    return fail(sc->errbuf, sc->errlen,
                "%s: unsupported dtype: structured dtypes (a list 'descr') are not supported",
                sc->name);
  const char *s;
  size_t n;
  if (scan_string(sc, &s, &n, "expected a string for 'descr'")) return -1;
  if (!descr_dtype(s, n, &h->dtype, &h->swap)) {
    char shown[40];
    show(shown, sizeof shown, s, n);
    return fail(sc->errbuf, sc->errlen,
                "%s: unsupported dtype '%s' (supported: '<f4', '<f8', '<i4', '<i8', '|b1', "
                "also big-endian)",
                sc->name, shown);
  }
  return 0;
}

static int scan_fortran(scanner *sc, npy_header *h) {
  size_t start = sc->pos;
  while (sc->pos < sc->n && is_ident_char(sc->s[sc->pos])) sc->pos++;
  size_t n = sc->pos - start;
  if (n == 4 && memcmp(sc->s + start, "True", 4) == 0) {
    h->fortran = true;
    return 0;
  }
  if (n == 5 && memcmp(sc->s + start, "False", 5) == 0) {
    h->fortran = false;
    return 0;
  }
  sc->pos = start;
  return bad(sc, "'fortran_order' must be True or False");
}

static int scan_shape(scanner *sc, npy_header *h) {
  if (!peek(sc, '(')) return bad(sc, "'shape' must be a tuple such as (3, 4)");
  sc->pos++;
  skip_ws(sc);
  int count = 0;
  bool trailing_comma = false;
  while (!peek(sc, ')')) {
    size_t start = sc->pos;
    bool neg = false;
    if (peek(sc, '-')) {
      neg = true;
      sc->pos++;
    }
    if (!(sc->pos < sc->n && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9'))
      return bad(sc, "expected a dimension (a non-negative integer) in 'shape'");
    int64_t v = 0;
    bool too_big = false;
    while (sc->pos < sc->n && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9') {
      int d = sc->s[sc->pos++] - '0';
      if (v > (INT64_MAX - d) / 10) too_big = true;
      else v = v * 10 + d;
    }
    if (peek(sc, 'L') || peek(sc, 'l')) sc->pos++; /* Python 2 long */
    if (neg) {
      char shown[40];
      show(shown, sizeof shown, sc->s + start, sc->pos - start);
      return fail(sc->errbuf, sc->errlen, "%s: shape has a negative dimension (%s)", sc->name,
                  shown);
    }
    if (too_big) {
      char shown[40];
      show(shown, sizeof shown, sc->s + start, sc->pos - start);
      return fail(sc->errbuf, sc->errlen, "%s: shape dimension %s is too large", sc->name,
                  shown);
    }
    if (count < SMELT_MAX_RANK) h->dims[count] = v;
    if (count < INT32_MAX) count++;
    skip_ws(sc);
    if (peek(sc, ',')) {
      sc->pos++;
      skip_ws(sc);
      trailing_comma = true;
    } else if (peek(sc, ')')) {
      trailing_comma = false;
    } else {
      return bad(sc, "expected ',' or ')' in 'shape'");
    }
  }
  sc->pos++; /* ')' */
  if (count == 0 && trailing_comma) return bad(sc, "expected a dimension in 'shape'");
  if (count == 1 && !trailing_comma)
    return fail(sc->errbuf, sc->errlen,
                "%s: 'shape' (%" PRId64 ") is not a tuple (a 1-d shape is written (%" PRId64 ",))",
                sc->name, h->dims[0], h->dims[0]);
  if (count > SMELT_MAX_RANK)
    return fail(sc->errbuf, sc->errlen, "%s: shape has %d dims (at most %d)", sc->name, count,
                SMELT_MAX_RANK);
  h->rank = count;
  return 0;
}

enum { KEY_DESCR = 1, KEY_FORTRAN = 2, KEY_SHAPE = 4 };

static int parse_header(const char *name, const char *s, size_t n, npy_header *h, char *errbuf,
                        size_t errlen) {
  scanner sc = {name, s, n, 0, errbuf, errlen};
  memset(h, 0, sizeof *h);
  unsigned seen = 0;
  skip_ws(&sc);
  if (!peek(&sc, '{')) return bad(&sc, "expected '{'");
  sc.pos++;
  for (;;) {
    skip_ws(&sc);
    if (peek(&sc, '}')) break;
    const char *key = NULL;
    size_t klen = 0;
    if (scan_string(&sc, &key, &klen, "expected a key (a quoted string) or '}'")) return -1;
    unsigned which = 0;
    if (klen == 5 && memcmp(key, "descr", 5) == 0) which = KEY_DESCR;
    else if (klen == 13 && memcmp(key, "fortran_order", 13) == 0) which = KEY_FORTRAN;
    else if (klen == 5 && memcmp(key, "shape", 5) == 0) which = KEY_SHAPE;
    char shown[40];
    show(shown, sizeof shown, key, klen);
    if (!which)
      return fail(errbuf, errlen,
                  "%s: unexpected key '%s' in the header (expected 'descr', 'fortran_order' "
                  "and 'shape')",
                  name, shown);
    if (seen & which) return fail(errbuf, errlen, "%s: key '%s' appears twice in the header", name, shown);
    seen |= which;
    skip_ws(&sc);
    if (!peek(&sc, ':')) return bad(&sc, "expected ':' after a key");
    sc.pos++;
    skip_ws(&sc);
    int r = which == KEY_DESCR ? scan_descr(&sc, h)
            : which == KEY_FORTRAN ? scan_fortran(&sc, h)
                                   : scan_shape(&sc, h);
    if (r) return -1;
    skip_ws(&sc);
    if (peek(&sc, ',')) {
      sc.pos++;
      continue;
    }
    if (peek(&sc, '}')) break;
    return bad(&sc, "expected ',' or '}'");
  }
  sc.pos++; /* '}' */
  skip_ws(&sc);
  if (sc.pos != sc.n) return bad(&sc, "unexpected text after the header dict");
  static const struct {
    unsigned bit;
    const char *key;
  } need[] = {{KEY_DESCR, "descr"}, {KEY_FORTRAN, "fortran_order"}, {KEY_SHAPE, "shape"}};
  for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
    if (!(seen & need[i].bit))
      return fail(errbuf, errlen, "%s: the header has no '%s' key", name, need[i].key);

  /* Sizes, without overflow: the product of the nonzero dims must fit, so
   * that nothing downstream multiplies its way past INT64_MAX. */
  size_t item = smelt_dtype_size(h->dtype);
  int64_t limit = INT64_MAX / (int64_t)item;
  if ((uint64_t)limit > SIZE_MAX / item) limit = (int64_t)(SIZE_MAX / item);
  int64_t prod = 1;
  bool zero = false;
  for (int i = 0; i < h->rank; i++) {
    if (h->dims[i] == 0) {
      zero = true;
      continue;
    }
    if (prod > limit / h->dims[i]) {
      char sh[256];
      shape_str(sh, sizeof sh, h->rank, h->dims);
      return fail(errbuf, errlen, "%s: shape %s is too large (its byte size overflows)", name, sh);
    }
    prod *= h->dims[i];
  }
  h->numel = zero ? 0 : prod;
  h->nbytes = (size_t)h->numel * item;
  return 0;
}

/* Checks the fixed preamble (magic, version, header length) in the first
 * avail bytes of a file of file_size bytes (for messages). On success sets
 * *prelen (10 or 12) and *hlen. */
static int parse_preamble(const char *name, const unsigned char *p, size_t avail,
                          size_t *prelen, size_t *hlen, char *errbuf, size_t errlen) {
  if (avail == 0) return fail(errbuf, errlen, "%s: empty file (not a .npy file)", name);
  size_t m = avail < MAGIC_LEN ? avail : MAGIC_LEN;
  if (memcmp(p, MAGIC, m) != 0) {
    char shown[40];
    show(shown, sizeof shown, (const char *)p, m);
    return fail(errbuf, errlen, "%s: not a .npy file (bad magic '%s', expected '\\x93NUMPY')",
                name, shown);
  }
  if (avail < 8)
    return fail(errbuf, errlen, "%s: truncated: file has %zu bytes, a .npy preamble has at least 10",
                name, avail);
  unsigned major = p[6], minor = p[7];
  if (major < 1 || major > 3 || minor != 0)
    return fail(errbuf, errlen,
                "%s: unsupported .npy format version %u.%u (1.0, 2.0 and 3.0 are supported)",
                name, major, minor);
  *prelen = major == 1 ? 10 : 12;
  if (avail < *prelen)
    return fail(errbuf, errlen, "%s: truncated: file has %zu bytes, a version %u.0 preamble has %zu",
                name, avail, major, *prelen);
  if (major == 1)
    *hlen = (size_t)p[8] | (size_t)p[9] << 8;
  else
    *hlen = (size_t)((uint32_t)p[8] | (uint32_t)p[9] << 8 | (uint32_t)p[10] << 16 |
                     (uint32_t)p[11] << 24);
  return 0;
}

static void header_too_long(const char *name, size_t hlen, size_t prelen, uint64_t file_size,
                            bool known, char *errbuf, size_t errlen) {
  if (known)
    fail(errbuf, errlen,
         "%s: truncated: header length %zu runs past the end of the file (%" PRIu64
         " bytes after the %zu-byte preamble)",
         name, hlen, file_size - prelen, prelen);
  else
    fail(errbuf, errlen, "%s: truncated: header length %zu runs past the end of the file",
         name, hlen);
}

/* ----------------------------------------------------------- converting */

static void swap_bytes(unsigned char *d, size_t count, size_t item) {
  for (size_t i = 0; i < count; i++, d += item)
    for (size_t a = 0, b = item - 1; a < b; a++, b--) {
      unsigned char t = d[a];
      d[a] = d[b];
      d[b] = t;
    }
}

/* Turns raw file data (*data, owned) into C-order, host-order values:
 * byte swap, bool normalization, Fortran-order transpose. */
static int finish(const char *name, const npy_header *h, void **data, char *errbuf,
                  size_t errlen) {
  size_t item = smelt_dtype_size(h->dtype);
  size_t count = (size_t)h->numel;
  if (h->swap && item > 1) swap_bytes(*data, count, item);
  if (h->dtype == SMELT_BOOL) {
    unsigned char *b = *data;
    for (size_t i = 0; i < count; i++) b[i] = b[i] != 0;
  }
  if (h->fortran && h->rank >= 2 && count > 0) {
    unsigned char *dst = sm_malloc(h->nbytes);
    if (!dst)
      return fail(errbuf, errlen, "%s: out of memory (%zu bytes to reorder Fortran-order data)",
                  name, h->nbytes);
    const unsigned char *src = *data;
    /* Fortran strides (in elements): axis 0 varies fastest. */
    int64_t fstride[SMELT_MAX_RANK], idx[SMELT_MAX_RANK] = {0};
    int64_t s = 1;
    for (int k = 0; k < h->rank; k++) {
      fstride[k] = s;
      s *= h->dims[k];
    }
    int64_t off = 0; /* source element of the current C-order index */
    for (size_t i = 0; i < count; i++) {
      memcpy(dst + i * item, src + (size_t)off * item, item);
      for (int k = h->rank - 1; k >= 0; k--) {
        if (++idx[k] < h->dims[k]) {
          off += fstride[k];
          break;
        }
        off -= (idx[k] - 1) * fstride[k];
        idx[k] = 0;
      }
    }
    sm_free(*data);
    *data = dst;
  }
  return 0;
}

static void fill_out(sm_npy *out, const npy_header *h, void *data) {
  out->dtype = h->dtype;
  out->rank = h->rank;
  for (int i = 0; i < h->rank; i++) out->dims[i] = h->dims[i];
  out->numel = h->numel;
  out->nbytes = h->nbytes;
  out->data = data;
}

static int data_size_error(const char *name, const npy_header *h, uint64_t have, char *errbuf,
                           size_t errlen) {
  if (have < h->nbytes)
    return fail(errbuf, errlen, "%s: truncated: header says %zu bytes of data, file has %" PRIu64,
                name, h->nbytes, have);
  return fail(errbuf, errlen,
              "%s: %" PRIu64 " unexpected bytes after the data (header says %zu bytes of data, "
              "file has %" PRIu64 ")",
              name, have - h->nbytes, h->nbytes, have);
}

/* -------------------------------------------------------------- reading */

int sm_npy_read_mem(const void *buf, size_t len, const char *name, sm_npy *out, char *errbuf,
                    size_t errlen) {
  if (!name) name = "<memory>";
  if (out) memset(out, 0, sizeof *out);
  if (!out) return fail(errbuf, errlen, "%s: no output array", name);
  if (!buf && len) return fail(errbuf, errlen, "%s: no data", name);
  const unsigned char *p = buf;
  size_t prelen = 0, hlen = 0;
  if (parse_preamble(name, p, len, &prelen, &hlen, errbuf, errlen)) return -1;
  if (hlen > len - prelen) {
    header_too_long(name, hlen, prelen, len, true, errbuf, errlen);
    return -1;
  }
  npy_header h;
  if (parse_header(name, (const char *)p + prelen, hlen, &h, errbuf, errlen)) return -1;
  size_t off = prelen + hlen;
  if (len - off != h.nbytes) return data_size_error(name, &h, len - off, errbuf, errlen);
  void *data = sm_malloc(h.nbytes);
  if (!data) return fail(errbuf, errlen, "%s: out of memory (%zu bytes of data)", name, h.nbytes);
  if (h.nbytes) memcpy(data, p + off, h.nbytes);
  if (finish(name, &h, &data, errbuf, errlen)) {
    sm_free(data);
    return -1;
  }
  fill_out(out, &h, data);
  return 0;
}

static int read_error(const char *name, FILE *f, char *errbuf, size_t errlen) {
  (void)f;
  return fail(errbuf, errlen, "%s: read error: %s", name, strerror(errno ? errno : EIO));
}

int sm_npy_read_file(const char *path, sm_npy *out, char *errbuf, size_t errlen) {
  if (out) memset(out, 0, sizeof *out);
  if (!path) return fail(errbuf, errlen, "<null>: no file name");
  if (!out) return fail(errbuf, errlen, "%s: no output array", path);
  const char *name = path;
  bool known;
  uint64_t fsize;
  FILE *f = sm_open_input(path, &known, &fsize, errbuf, errlen);
  if (!f) return -1;
  int rc = -1;
  unsigned char *hbuf = NULL;
  void *data = NULL;

  /* Preamble: 8 bytes, then 2 or 4 bytes of header length. */
  unsigned char pre[12];
  errno = 0;
  size_t got = fread(pre, 1, 8, f);
  if (ferror(f)) {
    read_error(name, f, errbuf, errlen);
    goto done;
  }
  size_t prelen = 0, hlen = 0;
  if (got < 8 || pre[6] < 1 || pre[6] > 3 || pre[7] != 0) {
    parse_preamble(name, pre, got, &prelen, &hlen, errbuf, errlen);
    goto done;
  }
  size_t extra = pre[6] == 1 ? 2 : 4;
  got += fread(pre + 8, 1, extra, f);
  if (ferror(f)) {
    read_error(name, f, errbuf, errlen);
    goto done;
  }
  if (parse_preamble(name, pre, got, &prelen, &hlen, errbuf, errlen)) goto done;

  /* Header. */
  if (known && (fsize < prelen || hlen > fsize - prelen)) {
    header_too_long(name, hlen, prelen, fsize < prelen ? prelen : fsize, true, errbuf, errlen);
    goto done;
  }
  if (sm_read_bounded(f, hlen, known, known ? fsize - prelen : 0, &hbuf, &got)) {
    fail(errbuf, errlen, "%s: out of memory (%zu bytes of header)", name, hlen);
    goto done;
  }
  if (ferror(f)) {
    read_error(name, f, errbuf, errlen);
    goto done;
  }
  if (got < hlen) {
    header_too_long(name, hlen, prelen, 0, false, errbuf, errlen);
    goto done;
  }
  npy_header h;
  if (parse_header(name, (const char *)hbuf, hlen, &h, errbuf, errlen)) goto done;
  sm_free(hbuf);
  hbuf = NULL;

  /* Data: checked against the file's size before allocating. */
  uint64_t off = (uint64_t)prelen + hlen;
  if (known && fsize - off != h.nbytes) {
    data_size_error(name, &h, fsize - off, errbuf, errlen);
    goto done;
  }
  unsigned char *raw;
  if (sm_read_bounded(f, h.nbytes, known, known ? fsize - off : 0, &raw, &got)) {
    fail(errbuf, errlen, "%s: out of memory (%zu bytes of data)", name, h.nbytes);
    goto done;
  }
  data = raw;
  if (ferror(f)) {
    read_error(name, f, errbuf, errlen);
    goto done;
  }
  if (got < h.nbytes) {
    data_size_error(name, &h, got, errbuf, errlen);
    goto done;
  }
  if (fgetc(f) != EOF) {
    if (known)
      fail(errbuf, errlen,
           "%s: unexpected bytes after the data (the file grew while it was read)", name);
    else
      fail(errbuf, errlen,
           "%s: unexpected bytes after the data (header says %zu bytes of data, file has more)",
           name, h.nbytes);
    goto done;
  }
  if (finish(name, &h, &data, errbuf, errlen)) goto done;
  fill_out(out, &h, data);
  data = NULL;
  rc = 0;
done:
  sm_free(hbuf);
  sm_free(data);
  fclose(f);
  return rc;
}

void sm_npy_free(sm_npy *a) {
  if (!a) return;
  sm_free(a->data);
  memset(a, 0, sizeof *a);
}

/* -------------------------------------------------------------- writing */

/* Checks the arguments and builds the preamble + header (*pre, *prelen
 * bytes, in a caller buffer of cap bytes). Sets *nbytes to the data size. */
static int make_header(smelt_dtype dt, int rank, const int64_t *dims, const void *data,
                       unsigned char *pre, size_t cap, size_t *prelen, size_t *nbytes,
                       const char *name, char *errbuf, size_t errlen) {
  if ((unsigned)dt >= SMELT_DTYPE_COUNT)
    return fail(errbuf, errlen, "%s: invalid dtype %d", name, (int)dt);
  if (rank < 0 || rank > SMELT_MAX_RANK)
    return fail(errbuf, errlen, "%s: rank %d out of range (0 to %d)", name, rank, SMELT_MAX_RANK);
  if (rank > 0 && !dims) return fail(errbuf, errlen, "%s: no dims", name);
  size_t item = smelt_dtype_size(dt);
  int64_t limit = INT64_MAX / (int64_t)item;
  if ((uint64_t)limit > SIZE_MAX / item) limit = (int64_t)(SIZE_MAX / item);
  int64_t prod = 1;
  bool zero = false;
  for (int i = 0; i < rank; i++) {
    if (dims[i] < 0)
      return fail(errbuf, errlen, "%s: negative dimension %" PRId64, name, dims[i]);
    if (dims[i] == 0) {
      zero = true;
      continue;
    }
    if (prod > limit / dims[i]) return fail(errbuf, errlen, "%s: shape is too large", name);
    prod *= dims[i];
  }
  *nbytes = zero ? 0 : (size_t)prod * item;
  if (*nbytes && !data) return fail(errbuf, errlen, "%s: no data", name);

  char dict[400];
  char sh[256];
  shape_str(sh, sizeof sh, rank, dims);
  int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                   sm_npy_descr(dt), sh);
  /* numpy.save leaves room for the first dim to grow in place. */
  if (rank > 0) {
    char first[24];
    int w = snprintf(first, sizeof first, "%" PRId64, dims[0]);
    for (int i = w; i < 21; i++) dict[n++] = ' ';
    dict[n] = 0;
  }
  /* Total preamble + header: a multiple of 64, the header ending in '\n'
   * (numpy adds a full 64 bytes of padding when it is already aligned). */
  size_t base = 10;
  size_t hl = (size_t)n + 1;
  size_t pad = 64 - (base + hl) % 64;
  if (hl + pad > 65535) { /* does not happen for rank <= 8; version 2.0 */
    base = 12;
    pad = 64 - (base + hl) % 64;
  }
  size_t total = base + hl + pad;
  if (total > cap) return fail(errbuf, errlen, "%s: header too long", name);
  memcpy(pre, MAGIC, MAGIC_LEN);
  pre[6] = base == 10 ? 1 : 2;
  pre[7] = 0;
  size_t h = hl + pad;
  pre[8] = (unsigned char)(h & 0xff);
  pre[9] = (unsigned char)(h >> 8 & 0xff);
  if (base == 12) {
    pre[10] = (unsigned char)(h >> 16 & 0xff);
    pre[11] = (unsigned char)(h >> 24 & 0xff);
  }
  memcpy(pre + base, dict, (size_t)n);
  memset(pre + base + n, ' ', pad);
  pre[total - 1] = '\n';
  *prelen = total;
  return 0;
}

#define HEADER_CAP 512

int sm_npy_encode(smelt_dtype dt, int rank, const int64_t *dims, const void *data, void **out,
                  size_t *outlen, char *errbuf, size_t errlen) {
  const char *name = "<memory>";
  if (out) *out = NULL;
  if (outlen) *outlen = 0;
  if (!out || !outlen) return fail(errbuf, errlen, "%s: no output buffer", name);
  unsigned char pre[HEADER_CAP];
  size_t prelen = 0, nbytes = 0;
  if (make_header(dt, rank, dims, data, pre, sizeof pre, &prelen, &nbytes, name, errbuf, errlen))
    return -1;
  if (nbytes > SIZE_MAX - prelen) return fail(errbuf, errlen, "%s: array too large", name);
  unsigned char *b = sm_malloc(prelen + nbytes);
  if (!b) return fail(errbuf, errlen, "%s: out of memory (%zu bytes)", name, prelen + nbytes);
  memcpy(b, pre, prelen);
  if (nbytes) memcpy(b + prelen, data, nbytes);
  *out = b;
  *outlen = prelen + nbytes;
  return 0;
}

int sm_npy_write_file(const char *path, smelt_dtype dt, int rank, const int64_t *dims,
                      const void *data, char *errbuf, size_t errlen) {
  if (!path) return fail(errbuf, errlen, "<null>: no file name");
  unsigned char pre[HEADER_CAP];
  size_t prelen = 0, nbytes = 0;
  if (make_header(dt, rank, dims, data, pre, sizeof pre, &prelen, &nbytes, path, errbuf, errlen))
    return -1;
  errno = 0;
  FILE *f = fopen(path, "wb");
  if (!f) return fail(errbuf, errlen, "%s: cannot create: %s", path, strerror(errno));
  bool ok = fwrite(pre, 1, prelen, f) == prelen;
  if (ok && nbytes) ok = fwrite(data, 1, nbytes, f) == nbytes;
  int saved = errno;
  if (fclose(f) != 0 && ok) {
    ok = false;
    saved = errno;
  }
  if (!ok) {
    remove(path);
    return fail(errbuf, errlen, "%s: write error: %s", path, strerror(saved ? saved : EIO));
  }
  return 0;
}
