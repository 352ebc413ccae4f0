/* safetensors checkpoints: a reader that never trusts the file and a
 * writer whose output matches the Python library byte for byte. See
 * safetensors.h for what is accepted.
 *
 * Reading goes in three steps:
 *   1. the 8-byte header length, checked against the file's size and the
 *      100 MB limit before anything is allocated;
 *   2. the header, parsed by a small recursive-descent parser that knows
 *      the one shape a header has (an object of tensor descriptions and an
 *      optional "__metadata__" object of strings): every string is decoded
 *      into one arena as large as the header (decoded strings are never
 *      longer than their JSON text), every tensor is checked on its own
 *      (dtype, rank, byte size, range), then all of them together (unique
 *      names, contiguous data_offsets that cover the data exactly);
 *   3. the data, read in file order into one buffer in which every tensor
 *      starts at a multiple of ALIGN bytes.
 */
#include "safetensors.h"

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Alignment of each tensor's data in memory. */
#define ALIGN ((size_t)16)
#define META_KEY "__metadata__"

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

/* Length of the valid UTF-8 sequence at s (avail bytes), 0 when invalid:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t avail) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (avail < len || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if ((s[i] & 0xc0) != 0x80) return 0;
  return len;
}

static bool utf8_valid(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq(p + i, n - i);
    if (!k) return false;
    i += k;
  }
  return true;
}

/* Copies n bytes of text into dst (cap bytes) for a message: printable
 * ASCII as is, anything else as \xNN, cut with "..." when too long. A name
 * (shown in double quotes, already checked to be UTF-8) keeps its UTF-8
 * characters and has its '"' escaped too. */
static void show(char *dst, size_t cap, const char *s, size_t n, bool name) {
  if (!cap) return;
  const unsigned char *p = (const unsigned char *)s;
  size_t o = 0;
  const size_t room = cap > 8 ? cap - 8 : 0; /* keep space for "\xNN..." */
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    size_t k = c >= 0x80 && name ? utf8_seq(p + i, n - i) : 0;
    bool plain = c >= 0x20 && c < 0x7f && c != '\\' && !(name && c == '"');
    size_t w = k ? k : plain ? 1 : 4;
    if (o + w > room) {
      if (cap >= 4 && o + 4 <= cap) memcpy(dst + o, "...", 4);
      else dst[o < cap ? o : cap - 1] = 0;
      return;
    }
    if (k) {
      memcpy(dst + o, p + i, k);
      i += k;
    } else if (w == 1) {
      dst[o] = (char)c;
      i++;
    } else {
      snprintf(dst + o, cap - o, "\\x%02x", c);
      i++;
    }
    o += w;
  }
  dst[o < cap ? o : cap - 1] = 0;
}

/* A tensor name for messages. */
typedef struct shown {
  char s[96];
} shown;
static shown show_name(const char *name) {
  shown r;
  show(r.s, sizeof r.s, name, strlen(name), true);
  return r;
}

/* "f32[2,3]", "i64[]" */
static void type_str(char *dst, size_t cap, smelt_dtype dt, int rank, const int64_t *dims) {
  size_t o = (size_t)snprintf(dst, cap, "%s[", smelt_dtype_name(dt));
  for (int i = 0; i < rank && o < cap; i++)
    o += (size_t)snprintf(dst + o, cap - o, i ? ",%" PRId64 : "%" PRId64, dims[i]);
  if (o < cap) snprintf(dst + o, cap - o, "]");
}

/* -------------------------------------------------------------- dtypes */

static bool host_is_little(void) {
  const uint16_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

static const char *const st_names[SMELT_DTYPE_COUNT] = {"F32", "F64", "I32", "I64", "BOOL"};

const char *sm_st_dtype_name(smelt_dtype dt) {
  return (unsigned)dt < SMELT_DTYPE_COUNT ? st_names[dt] : NULL;
}

/* The safetensors dtypes smelt has no counterpart for. */
static const char *const other_dtypes[] = {
    "U8",   "I8",      "I16",     "U16",      "F16",      "BF16",     "U32",
    "U64",  "C64",     "F8_E5M2", "F8_E4M3",  "F8_E8M0",  "F4",       "F6_E2M3",
    "F6_E3M2"};

/* The writer's order, the Python library's: its Dtype enum (BOOL < ... <
 * I32 < F32 < F64 < I64), widest first. */
static int write_rank(smelt_dtype dt) {
  switch (dt) {
  case SMELT_I64: return 0;
  case SMELT_F64: return 1;
  case SMELT_F32: return 2;
  case SMELT_I32: return 3;
  default: return 4; /* bool */
  }
}

/* numel * item for a shape, or false when that overflows int64 or size_t
 * (the product of the non-zero dims must fit, as in npy.c). */
static bool byte_size(smelt_dtype dt, int rank, const int64_t *dims, size_t *nbytes) {
  size_t item = smelt_dtype_size(dt);
  int64_t limit = INT64_MAX / (int64_t)item;
  if ((uint64_t)limit > SIZE_MAX / item) limit = (int64_t)(SIZE_MAX / item);
  int64_t prod = 1;
  bool zero = false;
  for (int i = 0; i < rank; i++) {
    if (dims[i] == 0) {
      zero = true;
      continue;
    }
    if (prod > limit / dims[i]) return false;
    prod *= dims[i];
  }
  *nbytes = zero ? 0 : (size_t)prod * item;
  return true;
}

static uint64_t get_le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static void put_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void swap_bytes(unsigned char *d, size_t count, size_t item) {
  for (size_t i = 0; i < count; i++, d += item)
    for (size_t a = 0, b = item - 1; a < b; a++, b--) {
      unsigned char t = d[a];
      d[a] = d[b];
      d[b] = t;
    }
}

/* --------------------------------------------------------------- header */

/* A tensor as the header describes it. */
typedef struct entry {
  const char *name; /* in the arena */
  smelt_dtype dtype;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  uint64_t begin, end; /* data_offsets */
  size_t nbytes;
  size_t pos; /* where its data goes in the data buffer */
} entry;

/* Everything a read builds before it hands it over. */
typedef struct parsed {
  char *arena; /* decoded strings */
  size_t arena_len;
  entry *ents; /* sorted by name once parsed */
  size_t nents, ents_cap;
  sm_st_meta *meta; /* sorted by key once parsed */
  size_t nmeta, meta_cap;
  entry **by_offset; /* the entries in data order */
  size_t data_total; /* bytes of data the tensors cover */
  size_t packed;     /* bytes of the data buffer (with alignment) */
} parsed;

static void parsed_free(parsed *ps) {
  sm_free(ps->arena);
  sm_free(ps->ents);
  sm_free(ps->meta);
  sm_free(ps->by_offset);
  memset(ps, 0, sizeof *ps);
}

typedef struct parser {
  const char *name; /* the file, for messages */
  const char *s;    /* the header */
  size_t n, pos;
  parsed *ps;
  char *errbuf;
  size_t errlen;
} parser;

static int bad(parser *p, const char *what) {
  if (p->pos >= p->n)
    return fail(p->errbuf, p->errlen, "%s: malformed header: %s at the end of the header", p->name,
                what);
  char near[48];
  size_t left = p->n - p->pos;
  show(near, sizeof near, p->s + p->pos, left < 24 ? left : 24, false);
  return fail(p->errbuf, p->errlen,
              "%s: malformed header: %s at byte %zu of the header (near '%s')", p->name, what,
              p->pos, near);
}

static int oom(parser *p, const char *what) {
  return fail(p->errbuf, p->errlen, "%s: out of memory (%s)", p->name, what);
}

/* JSON whitespace. */
static void skip_ws(parser *p) {
  while (p->pos < p->n) {
    char c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->pos++;
  }
}

static bool peek(parser *p, char c) { return p->pos < p->n && p->s[p->pos] == c; }

static int hex4(parser *p, size_t at, unsigned *out) {
  if (p->n - at < 4) return -1;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p->s[at + (size_t)i];
    unsigned d;
    if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
    else return -1;
    v = v << 4 | d;
  }
  *out = v;
  return 0;
}

/* A JSON string, decoded (escapes, UTF-8 checked) into the arena as a
 * NUL-terminated string. what names the expected thing for messages. */
static int parse_string(parser *p, const char **out, const char *what) {
  if (!peek(p, '"')) return bad(p, what);
  p->pos++;
  parsed *ps = p->ps;
  char *dst = ps->arena + ps->arena_len; /* room guaranteed: see arena */
  size_t o = 0;
  for (;;) {
    if (p->pos >= p->n) return bad(p, "unterminated string");
    unsigned char c = (unsigned char)p->s[p->pos];
    if (c == '"') {
      p->pos++;
      break;
    }
    if (c < 0x20) return bad(p, "control character in a string (JSON needs an escape)");
    if (c != '\\') {
      size_t k = utf8_seq((const unsigned char *)p->s + p->pos, p->n - p->pos);
      if (!k) return bad(p, "invalid UTF-8 in a string");
      memcpy(dst + o, p->s + p->pos, k);
      o += k;
      p->pos += k;
      continue;
    }
    if (p->pos + 1 >= p->n) {
      p->pos = p->n;
      return bad(p, "unterminated string");
    }
    char e = p->s[p->pos + 1];
    const char *simple = strchr("\"\\/bfnrt", e);
    if (e && simple) {
      static const char to[] = "\"\\/\b\f\n\r\t";
      dst[o++] = to[simple - "\"\\/bfnrt"];
      p->pos += 2;
      continue;
    }
    if (e != 'u') {
      return bad(p, "invalid escape in a string");
    }
    unsigned cp, lo;
    if (hex4(p, p->pos + 2, &cp)) {
      p->pos += 2;
      return bad(p, "expected 4 hex digits after \\u");
    }
    if (cp >= 0xdc00 && cp <= 0xdfff) return bad(p, "lone low surrogate \\u escape");
    if (cp >= 0xd800 && cp <= 0xdbff) {
      if (p->n - p->pos < 12 || p->s[p->pos + 6] != '\\' || p->s[p->pos + 7] != 'u' ||
          hex4(p, p->pos + 8, &lo) || lo < 0xdc00 || lo > 0xdfff)
        return bad(p, "lone high surrogate \\u escape (no low surrogate after it)");
      cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      p->pos += 6;
    }
    if (cp == 0) return bad(p, "\\u0000 (NUL) in a string (smelt's names cannot hold it)");
    if (cp < 0x80) {
      dst[o++] = (char)cp;
    } else if (cp < 0x800) {
      dst[o++] = (char)(0xc0 | cp >> 6);
      dst[o++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      dst[o++] = (char)(0xe0 | cp >> 12);
      dst[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
      dst[o++] = (char)(0x80 | (cp & 0x3f));
    } else {
      dst[o++] = (char)(0xf0 | cp >> 18);
      dst[o++] = (char)(0x80 | (cp >> 12 & 0x3f));
      dst[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
      dst[o++] = (char)(0x80 | (cp & 0x3f));
    }
    p->pos += 6;
  }
  dst[o] = 0;
  ps->arena_len += o + 1;
  *out = dst;
  return 0;
}

/* A JSON number that must be a non-negative integer (uint64). what: "shape"
 * or "data_offsets", for messages; tensor: its name. */
static int parse_uint(parser *p, uint64_t *out, const char *what, const char *tensor) {
  size_t start = p->pos;
  if (peek(p, '-')) {
    p->pos++;
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    char num[40];
    show(num, sizeof num, p->s + start, p->pos - start, false);
    return fail(p->errbuf, p->errlen, "%s: tensor \"%s\": negative number (%s) in %s", p->name,
                show_name(tensor).s, num, what);
  }
  if (!(p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
    return bad(p, strcmp(what, "shape") == 0 ? "expected a dimension (an integer) in \"shape\""
                                             : "expected an integer in \"data_offsets\"");
  if (p->s[p->pos] == '0' && p->pos + 1 < p->n && p->s[p->pos + 1] >= '0' &&
      p->s[p->pos + 1] <= '9')
    return bad(p, "number with a leading zero");
  uint64_t v = 0;
  bool too_big = false;
  while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
    unsigned d = (unsigned)(p->s[p->pos++] - '0');
    if (v > (UINT64_MAX - d) / 10) too_big = true;
    else v = v * 10 + d;
  }
  if (peek(p, '.') || peek(p, 'e') || peek(p, 'E'))
    return bad(p, "expected an integer (not a fraction or an exponent)");
  if (too_big) {
    char num[40];
    show(num, sizeof num, p->s + start, p->pos - start, false);
    return fail(p->errbuf, p->errlen, "%s: tensor \"%s\": number %s in %s is too large", p->name,
                show_name(tensor).s, num, what);
  }
  *out = v;
  return 0;
}

/* "[1, 2, 3]": up to cap numbers are stored; *count gets how many there
 * were. */
static int parse_uints(parser *p, uint64_t *vals, size_t cap, size_t *count, const char *what,
                       const char *tensor) {
  if (!peek(p, '[')) {
    char msg[64];
    snprintf(msg, sizeof msg, "expected '[' after \"%s\"", what);
    return bad(p, msg);
  }
  p->pos++;
  size_t k = 0;
  skip_ws(p);
  if (peek(p, ']')) {
    p->pos++;
    *count = 0;
    return 0;
  }
  for (;;) {
    skip_ws(p);
    uint64_t v = 0;
    if (parse_uint(p, &v, what, tensor)) return -1;
    if (k < cap) vals[k] = v;
    k++;
    skip_ws(p);
    if (peek(p, ',')) {
      p->pos++;
      continue;
    }
    if (peek(p, ']')) {
      p->pos++;
      break;
    }
    return bad(p, "expected ',' or ']'");
  }
  *count = k;
  return 0;
}

/* The members of an object: calls member(p, key, ctx) with the cursor on
 * each value. The cursor starts on '{'. */
static int parse_object(parser *p, const char *key_what,
                        int (*member)(parser *p, const char *key, void *ctx), void *ctx) {
  p->pos++; /* '{' */
  skip_ws(p);
  if (peek(p, '}')) {
    p->pos++;
    return 0;
  }
  for (;;) {
    skip_ws(p);
    const char *key;
    if (parse_string(p, &key, key_what)) return -1;
    skip_ws(p);
    if (!peek(p, ':')) return bad(p, "expected ':' after a key");
    p->pos++;
    skip_ws(p);
    if (member(p, key, ctx)) return -1;
    skip_ws(p);
    if (peek(p, ',')) {
      p->pos++;
      continue;
    }
    if (peek(p, '}')) {
      p->pos++;
      return 0;
    }
    return bad(p, "expected ',' or '}'");
  }
}

enum { F_DTYPE = 1, F_SHAPE = 2, F_OFFSETS = 4 };

typedef struct tensor_ctx {
  entry *e;
  unsigned seen;
  const char *dtype; /* as written */
  size_t rank;
  uint64_t dims[SMELT_MAX_RANK];
  size_t noffsets;
  uint64_t offsets[2];
} tensor_ctx;

static int tensor_member(parser *p, const char *key, void *vctx) {
  tensor_ctx *t = vctx;
  unsigned which = strcmp(key, "dtype") == 0          ? F_DTYPE
                   : strcmp(key, "shape") == 0        ? F_SHAPE
                   : strcmp(key, "data_offsets") == 0 ? F_OFFSETS
                                                      : 0;
  if (!which)
    return fail(p->errbuf, p->errlen,
                "%s: tensor \"%s\": unexpected key \"%s\" (expected \"dtype\", \"shape\" and "
                "\"data_offsets\")",
                p->name, show_name(t->e->name).s, show_name(key).s);
  if (t->seen & which)
    return fail(p->errbuf, p->errlen, "%s: tensor \"%s\": key \"%s\" appears twice", p->name,
                show_name(t->e->name).s, key);
  t->seen |= which;
  if (which == F_DTYPE) return parse_string(p, &t->dtype, "expected a string for \"dtype\"");
  if (which == F_SHAPE)
    return parse_uints(p, t->dims, SMELT_MAX_RANK, &t->rank, "shape", t->e->name);
  return parse_uints(p, t->offsets, 2, &t->noffsets, "data_offsets", t->e->name);
}

/* Checks one tensor's description once its object is parsed. data_len:
 * the bytes of data in the file, when known. */
static int check_tensor(parser *p, tensor_ctx *t, bool known, uint64_t data_len) {
  entry *e = t->e;
  const shown name_shown = show_name(e->name);
  const char *nm = name_shown.s;
  static const struct {
    unsigned bit;
    const char *key;
  } need[] = {{F_DTYPE, "dtype"}, {F_SHAPE, "shape"}, {F_OFFSETS, "data_offsets"}};
  for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
    if (!(t->seen & need[i].bit))
      return fail(p->errbuf, p->errlen, "%s: tensor \"%s\" has no \"%s\"", p->name, nm,
                  need[i].key);
  /* dtype */
  bool found = false;
  for (int d = 0; d < SMELT_DTYPE_COUNT; d++)
    if (strcmp(t->dtype, st_names[d]) == 0) {
      e->dtype = (smelt_dtype)d;
      found = true;
    }
  if (!found) {
    for (size_t i = 0; i < sizeof other_dtypes / sizeof other_dtypes[0]; i++)
      if (strcmp(t->dtype, other_dtypes[i]) == 0)
        return fail(p->errbuf, p->errlen,
                    "%s: tensor \"%s\": dtype %s is not supported (smelt reads F32, F64, I32, "
                    "I64 and BOOL)",
                    p->name, nm, other_dtypes[i]);
    return fail(p->errbuf, p->errlen, "%s: tensor \"%s\": unknown dtype \"%s\"", p->name, nm,
                show_name(t->dtype).s);
  }
  /* shape */
  if (t->rank > SMELT_MAX_RANK)
    return fail(p->errbuf, p->errlen, "%s: tensor \"%s\": rank %zu is more than smelt's %d",
                p->name, nm, t->rank, SMELT_MAX_RANK);
  e->rank = (int)t->rank;
  for (int i = 0; i < e->rank; i++) {
    if (t->dims[i] > (uint64_t)INT64_MAX)
      return fail(p->errbuf, p->errlen, "%s: tensor \"%s\": dimension %" PRIu64 " is too large",
                  p->name, nm, t->dims[i]);
    e->dims[i] = (int64_t)t->dims[i];
  }
  char ty[256];
  type_str(ty, sizeof ty, e->dtype, e->rank, e->dims);
  if (!byte_size(e->dtype, e->rank, e->dims, &e->nbytes))
    return fail(p->errbuf, p->errlen,
                "%s: tensor \"%s\": %s is too large (its byte size overflows)", p->name, nm, ty);
  /* data_offsets */
  if (t->noffsets != 2)
    return fail(p->errbuf, p->errlen,
                "%s: tensor \"%s\": data_offsets must be [begin, end], not %zu numbers", p->name,
                nm, t->noffsets);
  e->begin = t->offsets[0];
  e->end = t->offsets[1];
  if (e->end < e->begin)
    return fail(p->errbuf, p->errlen,
                "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin",
                p->name, nm, e->begin, e->end);
  if (e->end - e->begin != e->nbytes)
    return fail(p->errbuf, p->errlen,
                "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                " bytes, but %s needs %zu",
                p->name, nm, e->begin, e->end, e->end - e->begin, ty, e->nbytes);
  if (known && e->end > data_len)
    return fail(p->errbuf, p->errlen,
                "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                "] run past the end of the data (%" PRIu64 " bytes)",
                p->name, nm, e->begin, e->end, data_len);
  return 0;
}

static int meta_member(parser *p, const char *key, void *ctx) {
  (void)ctx;
  parsed *ps = p->ps;
  const char *value;
  if (parse_string(p, &value, "expected a string (metadata values are strings)")) return -1;
  if (ps->nmeta == ps->meta_cap) {
    size_t cap = ps->meta_cap ? ps->meta_cap * 2 : 8;
    sm_st_meta *m = sm_realloc(ps->meta, cap * sizeof *m);
    if (!m) return oom(p, "metadata");
    ps->meta = m;
    ps->meta_cap = cap;
  }
  ps->meta[ps->nmeta].key = key;
  ps->meta[ps->nmeta].value = value;
  ps->nmeta++;
  return 0;
}

typedef struct top_ctx {
  bool have_meta;
  bool known;
  uint64_t data_len;
} top_ctx;

static int top_member(parser *p, const char *key, void *vctx) {
  top_ctx *top = vctx;
  parsed *ps = p->ps;
  if (strcmp(key, META_KEY) == 0) {
    if (top->have_meta)
      return fail(p->errbuf, p->errlen, "%s: \"" META_KEY "\" appears twice in the header",
                  p->name);
    top->have_meta = true;
    if (p->n - p->pos >= 4 && memcmp(p->s + p->pos, "null", 4) == 0) {
      p->pos += 4; /* as the Python library: no metadata */
      return 0;
    }
    if (!peek(p, '{')) return bad(p, "expected '{' (the metadata, an object of strings)");
    return parse_object(p, "expected a metadata key (a string) or '}'", meta_member, NULL);
  }
  if (ps->nents == ps->ents_cap) {
    size_t cap = ps->ents_cap ? ps->ents_cap * 2 : 16;
    entry *e = sm_realloc(ps->ents, cap * sizeof *e);
    if (!e) return oom(p, "tensor list");
    ps->ents = e;
    ps->ents_cap = cap;
  }
  tensor_ctx t;
  memset(&t, 0, sizeof t);
  t.e = &ps->ents[ps->nents];
  memset(t.e, 0, sizeof *t.e);
  t.e->name = key;
  if (!peek(p, '{')) return bad(p, "expected '{' (a tensor's dtype, shape and data_offsets)");
  if (parse_object(p, "expected a key (\"dtype\", \"shape\" or \"data_offsets\") or '}'",
                   tensor_member, &t))
    return -1;
  if (check_tensor(p, &t, top->known, top->data_len)) return -1;
  ps->nents++;
  return 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}
static int by_key(const void *a, const void *b) {
  return strcmp(((const sm_st_meta *)a)->key, ((const sm_st_meta *)b)->key);
}
static int by_offsets(const void *a, const void *b) {
  const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* The tensors together: unique names and keys, data_offsets that tile the
 * data, and where each tensor goes in the data buffer. */
static int check_layout(const char *name, parsed *ps, bool known, uint64_t data_len,
                        char *errbuf, size_t errlen) {
  if (ps->nents > 1) qsort(ps->ents, ps->nents, sizeof *ps->ents, by_name);
  for (size_t i = 1; i < ps->nents; i++)
    if (strcmp(ps->ents[i - 1].name, ps->ents[i].name) == 0)
      return fail(errbuf, errlen, "%s: tensor \"%s\" appears twice in the header", name,
                  show_name(ps->ents[i].name).s);
  if (ps->nmeta > 1) qsort(ps->meta, ps->nmeta, sizeof *ps->meta, by_key);
  for (size_t i = 1; i < ps->nmeta; i++)
    if (strcmp(ps->meta[i - 1].key, ps->meta[i].key) == 0)
      return fail(errbuf, errlen, "%s: metadata key \"%s\" appears twice in the header", name,
                  show_name(ps->meta[i].key).s);

  ps->by_offset = sm_malloc(ps->nents * sizeof *ps->by_offset);
  if (!ps->by_offset) return fail(errbuf, errlen, "%s: out of memory (tensor list)", name);
  for (size_t i = 0; i < ps->nents; i++) ps->by_offset[i] = &ps->ents[i];
  if (ps->nents > 1) qsort(ps->by_offset, ps->nents, sizeof *ps->by_offset, by_offsets);
  uint64_t at = 0;
  size_t packed = 0;
  for (size_t i = 0; i < ps->nents; i++) {
    entry *e = ps->by_offset[i];
    if (e->begin > at)
      return fail(errbuf, errlen,
                  "%s: bytes %" PRIu64 " to %" PRIu64 " of the data belong to no tensor (a gap "
                  "before tensor \"%s\" at [%" PRIu64 ", %" PRIu64 "])",
                  name, at, e->begin, show_name(e->name).s, e->begin, e->end);
    if (e->begin < at) {
      const entry *prev = ps->by_offset[i - 1]; /* at is its end */
      shown a = show_name(e->name);
      return fail(errbuf, errlen,
                  "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 "] overlap tensor "
                  "\"%s\" at [%" PRIu64 ", %" PRIu64 "]",
                  name, a.s, e->begin, e->end, show_name(prev->name).s, prev->begin, prev->end);
    }
    at = e->end;
    /* at <= data_len (known) or the sum of sizes that each fit size_t */
    if (packed > SIZE_MAX - ALIGN || e->nbytes > SIZE_MAX - ALIGN - packed)
      return fail(errbuf, errlen, "%s: the data is too large for this machine", name);
    packed = (packed + ALIGN - 1) / ALIGN * ALIGN;
    e->pos = packed;
    packed += e->nbytes;
  }
  if (known && at != data_len)
    return fail(errbuf, errlen,
                "%s: %" PRIu64 " bytes after the last tensor's data (the tensors cover %" PRIu64
                " of the %" PRIu64 " bytes of data)",
                name, data_len - at, at, data_len);
  ps->data_total = (size_t)at;
  ps->packed = packed;
  return 0;
}

/* Parses and checks the header s[0..n). data_len is the size of the data
 * section when known. */
static int parse_header(const char *name, const char *s, size_t n, bool known, uint64_t data_len,
                        parsed *ps, char *errbuf, size_t errlen) {
  memset(ps, 0, sizeof *ps);
  const char *nul = memchr(s, 0, n);
  if (nul)
    return fail(errbuf, errlen, "%s: malformed header: NUL byte at byte %zu of the header", name,
                (size_t)(nul - s));
  /* Every decoded string with its NUL fits in the JSON text it came from
   * (2 quotes), so an arena of n bytes holds them all. */
  ps->arena = sm_malloc(n);
  if (!ps->arena) return fail(errbuf, errlen, "%s: out of memory (%zu bytes for names)", name, n);
  parser p = {name, s, n, 0, ps, errbuf, errlen};
  top_ctx top = {false, known, data_len};
  skip_ws(&p);
  if (!peek(&p, '{')) return bad(&p, "expected '{' (a safetensors header is a JSON object)");
  if (parse_object(&p, "expected a tensor name (a string) or '}'", top_member, &top)) return -1;
  skip_ws(&p);
  if (p.pos != n) return bad(&p, "unexpected text after the header's JSON object");
  return check_layout(name, ps, known, data_len, errbuf, errlen);
}

/* ----------------------------------------------------------- the result */

/* Byte order and bool bytes of the data as read. */
static void finish_data(parsed *ps, unsigned char *data) {
  bool swap = !host_is_little();
  for (size_t i = 0; i < ps->nents; i++) {
    entry *e = &ps->ents[i];
    unsigned char *d = data + e->pos;
    size_t item = smelt_dtype_size(e->dtype);
    if (e->dtype == SMELT_BOOL)
      for (size_t k = 0; k < e->nbytes; k++) d[k] = d[k] != 0;
    else if (swap)
      swap_bytes(d, e->nbytes / item, item);
  }
}

/* Hands everything over to out; on failure (out of memory) frees nothing
 * of ps and leaves out empty. */
static int build_result(const char *name, parsed *ps, unsigned char *data, sm_st_file *out,
                        char *errbuf, size_t errlen) {
  sm_st_tensor *t = sm_malloc(ps->nents * sizeof *t);
  if (!t) return fail(errbuf, errlen, "%s: out of memory (tensor list)", name);
  for (size_t i = 0; i < ps->nents; i++) {
    const entry *e = &ps->ents[i];
    t[i].name = e->name;
    t[i].dtype = e->dtype;
    t[i].rank = e->rank;
    memset(t[i].dims, 0, sizeof t[i].dims);
    for (int k = 0; k < e->rank; k++) t[i].dims[k] = e->dims[k];
    t[i].data = data + e->pos;
    t[i].nbytes = e->nbytes;
  }
  finish_data(ps, data);
  out->tensors = t;
  out->ntensors = ps->nents;
  out->meta = ps->meta;
  out->nmeta = ps->nmeta;
  out->strings_ = ps->arena;
  out->data_ = data;
  ps->meta = NULL;
  ps->arena = NULL;
  parsed_free(ps);
  return 0;
}

static void header_past_end(const char *name, uint64_t hlen, bool known, uint64_t after,
                            char *errbuf, size_t errlen) {
  if (known)
    fail(errbuf, errlen,
         "%s: truncated: header length %" PRIu64 " runs past the end of the file (%" PRIu64
         " bytes after the 8-byte length)",
         name, hlen, after);
  else
    fail(errbuf, errlen, "%s: truncated: header length %" PRIu64 " runs past the end of the file",
         name, hlen);
}

/* The 8-byte length in the first avail bytes. */
static int parse_length(const char *name, const unsigned char *p, size_t avail, uint64_t *hlen,
                        char *errbuf, size_t errlen) {
  if (avail == 0) return fail(errbuf, errlen, "%s: empty file (not a safetensors file)", name);
  if (avail < 8)
    return fail(errbuf, errlen,
                "%s: truncated: the file has %zu bytes, less than the 8-byte header length", name,
                avail);
  *hlen = get_le64(p);
  return 0;
}

static int header_too_large(const char *name, uint64_t hlen, char *errbuf, size_t errlen) {
  return fail(errbuf, errlen,
              "%s: header length %" PRIu64 " is over the limit of %u bytes (not a safetensors "
              "file?)",
              name, hlen, SM_ST_MAX_HEADER);
}

/* -------------------------------------------------------------- reading */

int sm_st_read_mem(const void *buf, size_t len, const char *name, sm_st_file *out, char *errbuf,
                   size_t errlen) {
  if (!name) name = "<memory>";
  if (out) memset(out, 0, sizeof *out);
  if (!out) return fail(errbuf, errlen, "%s: no output", name);
  if (!buf && len) return fail(errbuf, errlen, "%s: no data", name);
  const unsigned char *p = buf;
  uint64_t hlen;
  if (parse_length(name, p, len, &hlen, errbuf, errlen)) return -1;
  if (hlen > len - 8) {
    header_past_end(name, hlen, true, len - 8, errbuf, errlen);
    return -1;
  }
  if (hlen > SM_ST_MAX_HEADER) return header_too_large(name, hlen, errbuf, errlen);
  size_t off = 8 + (size_t)hlen;
  parsed ps;
  if (parse_header(name, (const char *)p + 8, (size_t)hlen, true, len - off, &ps, errbuf,
                   errlen))
    goto fail;
  unsigned char *data = sm_malloc(ps.packed);
  if (!data) {
    fail(errbuf, errlen, "%s: out of memory (%zu bytes of data)", name, ps.packed);
    goto fail;
  }
  for (size_t i = 0; i < ps.nents; i++) {
    const entry *e = &ps.ents[i];
    if (e->nbytes) memcpy(data + e->pos, p + off + e->begin, e->nbytes);
  }
  if (build_result(name, &ps, data, out, errbuf, errlen)) {
    sm_free(data);
    goto fail;
  }
  return 0;
fail:
  parsed_free(&ps);
  return -1;
}

static int read_error(const char *name, char *errbuf, size_t errlen) {
  return fail(errbuf, errlen, "%s: read error: %s", name, strerror(errno ? errno : EIO));
}

/* Reads the data section (tensors in file order) into a new buffer laid
 * out as ps says. Known size: one allocation; otherwise the buffer grows
 * as bytes arrive. */
static int read_data(FILE *f, const char *name, parsed *ps, bool known, unsigned char **out,
                     char *errbuf, size_t errlen) {
  *out = NULL;
  size_t cap = known || ps->packed < SM_READ_CHUNK ? ps->packed : SM_READ_CHUNK;
  unsigned char *b = sm_malloc(cap);
  if (!b) return fail(errbuf, errlen, "%s: out of memory (%zu bytes of data)", name, cap);
  size_t from = 0; /* bytes of the data section read so far */
  for (size_t i = 0; i < ps->nents; i++) {
    const entry *e = ps->by_offset[i];
    size_t done = 0;
    while (done < e->nbytes) {
      size_t at = e->pos + done;
      if (at >= cap) { /* only when the size is unknown */
        size_t ncap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
        size_t need = at + (e->nbytes - done < SM_READ_CHUNK ? e->nbytes - done : SM_READ_CHUNK);
        if (ncap < need) ncap = need;
        if (ncap > ps->packed) ncap = ps->packed;
        unsigned char *nb = sm_realloc(b, ncap);
        if (!nb) {
          sm_free(b);
          return fail(errbuf, errlen, "%s: out of memory (%zu bytes of data)", name, ncap);
        }
        b = nb;
        cap = ncap;
      }
      size_t want = cap - at < e->nbytes - done ? cap - at : e->nbytes - done;
      errno = 0;
      size_t r = fread(b + at, 1, want, f);
      done += r;
      if (r < want) {
        sm_free(b);
        if (ferror(f)) return read_error(name, errbuf, errlen);
        return fail(errbuf, errlen,
                    "%s: truncated: the tensors need %zu bytes of data, the file has %zu", name,
                    ps->data_total, from + done);
      }
    }
    from += e->nbytes;
  }
  if (fgetc(f) != EOF) {
    sm_free(b);
    if (known)
      return fail(errbuf, errlen,
                  "%s: unexpected bytes after the data (the file grew while it was read)", name);
    return fail(errbuf, errlen,
                "%s: unexpected bytes after the data (the tensors cover %zu bytes, the file has "
                "more)",
                name, ps->data_total);
  }
  if (ferror(f)) {
    sm_free(b);
    return read_error(name, errbuf, errlen);
  }
  *out = b;
  return 0;
}

int sm_st_read_file(const char *path, sm_st_file *out, char *errbuf, size_t errlen) {
  if (out) memset(out, 0, sizeof *out);
  if (!path) return fail(errbuf, errlen, "<null>: no file name");
  if (!out) return fail(errbuf, errlen, "%s: no output", path);
  const char *name = path;
  bool known;
  uint64_t fsize;
  FILE *f = sm_open_input(path, &known, &fsize, errbuf, errlen);
  if (!f) return -1;
  int rc = -1;
  unsigned char *hbuf = NULL, *data = NULL;
  parsed ps;
  memset(&ps, 0, sizeof ps);
  unsigned char pre[8];
  errno = 0;
  size_t got = fread(pre, 1, 8, f);
  if (ferror(f)) {
    read_error(name, errbuf, errlen);
    goto done;
  }
  uint64_t hlen;
  if (parse_length(name, pre, got, &hlen, errbuf, errlen)) goto done;
  if (known && hlen > fsize - 8) {
    header_past_end(name, hlen, true, fsize - 8, errbuf, errlen);
    goto done;
  }
  if (hlen > SM_ST_MAX_HEADER) {
    header_too_large(name, hlen, errbuf, errlen);
    goto done;
  }
  errno = 0;
  if (sm_read_bounded(f, (size_t)hlen, known, (size_t)hlen, &hbuf, &got)) {
    fail(errbuf, errlen, "%s: out of memory (%" PRIu64 " bytes of header)", name, hlen);
    goto done;
  }
  if (ferror(f)) {
    read_error(name, errbuf, errlen);
    goto done;
  }
  if (got < hlen) {
    header_past_end(name, hlen, false, 0, errbuf, errlen);
    goto done;
  }
  uint64_t data_len = known ? fsize - 8 - hlen : 0;
  if (parse_header(name, (const char *)hbuf, (size_t)hlen, known, data_len, &ps, errbuf, errlen))
    goto done;
  sm_free(hbuf);
  hbuf = NULL;
  if (read_data(f, name, &ps, known, &data, errbuf, errlen)) goto done;
  if (build_result(name, &ps, data, out, errbuf, errlen)) goto done;
  data = NULL;
  rc = 0;
done:
  parsed_free(&ps);
  sm_free(hbuf);
  sm_free(data);
  fclose(f);
  return rc;
}

void sm_st_free(sm_st_file *f) {
  if (!f) return;
  sm_free(f->tensors);
  sm_free(f->meta);
  sm_free(f->strings_);
  sm_free(f->data_);
  memset(f, 0, sizeof *f);
}

const sm_st_tensor *sm_st_find(const sm_st_file *f, const char *name) {
  if (!f || !name) return NULL;
  size_t lo = 0, hi = f->ntensors;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(f->tensors[mid].name, name);
    if (c == 0) return &f->tensors[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

const char *sm_st_meta_get(const sm_st_file *f, const char *key) {
  if (!f || !key) return NULL;
  size_t lo = 0, hi = f->nmeta;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(f->meta[mid].key, key);
    if (c == 0) return f->meta[mid].value;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

/* -------------------------------------------------------------- writing */

/* A JSON string as serde_json writes it: '"' and '\\' escaped, control
 * characters as \b \t \n \f \r or \u00xx, everything else (UTF-8
 * included) as is. */
static void put_json_string(sm_buf *b, const char *s) {
  char chunk[256];
  size_t o = 0;
  chunk[o++] = '"';
  for (const unsigned char *p = (const unsigned char *)s;; p++) {
    if (o > sizeof chunk - 8 || !*p) {
      sm_buf_printf(b, "%.*s", (int)o, chunk);
      o = 0;
      if (!*p) break;
    }
    unsigned char c = *p;
    const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b"
                    : c == '\f' ? "\\f" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                    : c == '\t' ? "\\t" : NULL;
    if (esc) {
      chunk[o++] = esc[0];
      chunk[o++] = esc[1];
    } else if (c < 0x20) {
      o += (size_t)snprintf(chunk + o, sizeof chunk - o, "\\u%04x", c);
    } else {
      chunk[o++] = (char)c;
    }
  }
  sm_buf_puts(b, "\"");
}

static int cmp_name(const void *a, const void *b) {
  return strcmp((*(const sm_st_tensor *const *)a)->name, (*(const sm_st_tensor *const *)b)->name);
}
static int cmp_write(const void *a, const void *b) {
  const sm_st_tensor *x = *(const sm_st_tensor *const *)a, *y = *(const sm_st_tensor *const *)b;
  int rx = write_rank(x->dtype), ry = write_rank(y->dtype);
  if (rx != ry) return rx < ry ? -1 : 1;
  return strcmp(x->name, y->name);
}
static int cmp_key(const void *a, const void *b) {
  return strcmp((*(const sm_st_meta *const *)a)->key, (*(const sm_st_meta *const *)b)->key);
}

/* An image being written: the header (length included) and the tensors
 * in file order. */
typedef struct image {
  unsigned char *head; /* 8-byte length + header */
  size_t head_len;
  const sm_st_tensor **order;
  size_t n;
  size_t data_len;
} image;

static void image_free(image *im) {
  sm_free(im->head);
  sm_free((void *)im->order);
  memset(im, 0, sizeof *im);
}

/* Checks the arguments and builds the header. */
static int make_image(const char *name, const sm_st_tensor *tensors, size_t n,
                      const sm_st_meta *meta, size_t nmeta, image *im, char *errbuf,
                      size_t errlen) {
  memset(im, 0, sizeof *im);
  if (n && !tensors) return fail(errbuf, errlen, "%s: no tensors", name);
  if (nmeta && !meta) return fail(errbuf, errlen, "%s: no metadata", name);
  for (size_t i = 0; i < n; i++) {
    const sm_st_tensor *t = &tensors[i];
    if (!t->name) return fail(errbuf, errlen, "%s: tensor %zu has no name", name, i);
    const shown name_shown = show_name(t->name);
    const char *nm = name_shown.s;
    if (!utf8_valid(t->name))
      return fail(errbuf, errlen, "%s: tensor \"%s\": the name is not valid UTF-8", name, nm);
    if (strcmp(t->name, META_KEY) == 0)
      return fail(errbuf, errlen,
                  "%s: \"" META_KEY "\" cannot name a tensor (the format keeps it for metadata)",
                  name);
    if ((unsigned)t->dtype >= SMELT_DTYPE_COUNT)
      return fail(errbuf, errlen, "%s: tensor \"%s\": invalid dtype %d", name, nm, (int)t->dtype);
    if (t->rank < 0 || t->rank > SMELT_MAX_RANK)
      return fail(errbuf, errlen, "%s: tensor \"%s\": rank %d out of range (0 to %d)", name, nm,
                  t->rank, SMELT_MAX_RANK);
    for (int d = 0; d < t->rank; d++)
      if (t->dims[d] < 0)
        return fail(errbuf, errlen, "%s: tensor \"%s\": negative dimension %" PRId64, name, nm,
                    t->dims[d]);
    char ty[256];
    type_str(ty, sizeof ty, t->dtype, t->rank, t->dims);
    size_t nbytes;
    if (!byte_size(t->dtype, t->rank, t->dims, &nbytes))
      return fail(errbuf, errlen, "%s: tensor \"%s\": %s is too large", name, nm, ty);
    if (t->nbytes != nbytes)
      return fail(errbuf, errlen, "%s: tensor \"%s\": nbytes is %zu, but %s has %zu", name, nm,
                  t->nbytes, ty, nbytes);
    if (nbytes && !t->data) return fail(errbuf, errlen, "%s: tensor \"%s\": no data", name, nm);
  }
  for (size_t i = 0; i < nmeta; i++) {
    if (!meta[i].key || !meta[i].value)
      return fail(errbuf, errlen, "%s: metadata pair %zu has no %s", name, i,
                  meta[i].key ? "value" : "key");
    if (!utf8_valid(meta[i].key) || !utf8_valid(meta[i].value))
      return fail(errbuf, errlen, "%s: metadata \"%s\": the %s is not valid UTF-8", name,
                  show_name(meta[i].key).s, utf8_valid(meta[i].key) ? "value" : "key");
  }

  const sm_st_tensor **order = sm_malloc(n * sizeof *order);
  const sm_st_meta **mord = sm_malloc(nmeta * sizeof *mord);
  if (!order || !mord) {
    sm_free((void *)order);
    sm_free((void *)mord);
    return fail(errbuf, errlen, "%s: out of memory (tensor list)", name);
  }
  im->order = order;
  im->n = n;
  for (size_t i = 0; i < n; i++) order[i] = &tensors[i];
  for (size_t i = 0; i < nmeta; i++) mord[i] = &meta[i];
  if (n > 1) qsort((void *)order, n, sizeof *order, cmp_name);
  for (size_t i = 1; i < n; i++)
    if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
      const char *dup = order[i]->name; /* the caller's */
      sm_free((void *)mord);
      image_free(im);
      return fail(errbuf, errlen, "%s: tensor \"%s\" appears twice", name, show_name(dup).s);
    }
  if (nmeta > 1) qsort((void *)mord, nmeta, sizeof *mord, cmp_key);
  for (size_t i = 1; i < nmeta; i++)
    if (strcmp(mord[i - 1]->key, mord[i]->key) == 0) {
      const char *k = mord[i]->key;
      sm_free((void *)mord);
      image_free(im);
      return fail(errbuf, errlen, "%s: metadata key \"%s\" appears twice", name, show_name(k).s);
    }
  if (n > 1) qsort((void *)order, n, sizeof *order, cmp_write);

  sm_buf b = {0};
  sm_buf_puts(&b, "01234567{"); /* room for the length */
  if (nmeta) {
    sm_buf_puts(&b, "\"" META_KEY "\":{");
    for (size_t i = 0; i < nmeta; i++) {
      if (i) sm_buf_puts(&b, ",");
      put_json_string(&b, mord[i]->key);
      sm_buf_puts(&b, ":");
      put_json_string(&b, mord[i]->value);
    }
    sm_buf_puts(&b, "}");
  }
  sm_free((void *)mord);
  uint64_t at = 0;
  for (size_t i = 0; i < n; i++) {
    const sm_st_tensor *t = order[i];
    if (i || nmeta) sm_buf_puts(&b, ",");
    put_json_string(&b, t->name);
    sm_buf_printf(&b, ":{\"dtype\":\"%s\",\"shape\":[", st_names[t->dtype]);
    for (int d = 0; d < t->rank; d++) sm_buf_printf(&b, d ? ",%" PRId64 : "%" PRId64, t->dims[d]);
    sm_buf_printf(&b, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", at, at + t->nbytes);
    if (t->nbytes > SIZE_MAX - at) {
      sm_buf_free(&b);
      image_free(im);
      return fail(errbuf, errlen, "%s: the tensors are too large together", name);
    }
    at += t->nbytes;
  }
  sm_buf_puts(&b, "}");
  while (!b.oom && (b.len - 8) % 8) sm_buf_puts(&b, " ");
  size_t len = b.len;
  char *head = sm_buf_take(&b);
  if (!head) {
    image_free(im);
    return fail(errbuf, errlen, "%s: out of memory (header)", name);
  }
  im->head = (unsigned char *)head;
  im->head_len = len;
  if (len - 8 > SM_ST_MAX_HEADER) {
    image_free(im);
    return fail(errbuf, errlen,
                "%s: the header would have %zu bytes, over the limit of %u bytes of safetensors "
                "readers",
                name, len - 8, SM_ST_MAX_HEADER);
  }
  put_le64(im->head, (uint64_t)(len - 8));
  im->data_len = (size_t)at;
  return 0;
}

/* Whether a tensor's bytes need changing on their way out: bool bytes
 * other than 0 and 1, multi-byte values on a big-endian host. */
static bool needs_transform(const sm_st_tensor *t) {
  return t->dtype == SMELT_BOOL || (!host_is_little() && smelt_dtype_size(t->dtype) > 1);
}

/* n bytes of t's data from byte off on, as the file holds them, to dst
 * (off and n are multiples of the element size). */
static void transform(const sm_st_tensor *t, size_t off, size_t n, unsigned char *dst) {
  const unsigned char *src = (const unsigned char *)t->data + off;
  if (t->dtype == SMELT_BOOL) {
    for (size_t k = 0; k < n; k++) dst[k] = src[k] != 0;
    return;
  }
  memcpy(dst, src, n);
  if (!host_is_little()) {
    size_t item = smelt_dtype_size(t->dtype);
    swap_bytes(dst, n / item, item);
  }
}

int sm_st_encode(const sm_st_tensor *tensors, size_t n, const sm_st_meta *meta, size_t nmeta,
                 void **out, size_t *outlen, char *errbuf, size_t errlen) {
  const char *name = "<memory>";
  if (out) *out = NULL;
  if (outlen) *outlen = 0;
  if (!out || !outlen) return fail(errbuf, errlen, "%s: no output buffer", name);
  image im;
  if (make_image(name, tensors, n, meta, nmeta, &im, errbuf, errlen)) return -1;
  if (im.data_len > SIZE_MAX - im.head_len) {
    image_free(&im);
    return fail(errbuf, errlen, "%s: the tensors are too large together", name);
  }
  size_t total = im.head_len + im.data_len;
  unsigned char *b = sm_malloc(total);
  if (!b) {
    image_free(&im);
    return fail(errbuf, errlen, "%s: out of memory (%zu bytes)", name, total);
  }
  memcpy(b, im.head, im.head_len);
  size_t o = im.head_len;
  for (size_t i = 0; i < im.n; i++) {
    const sm_st_tensor *t = im.order[i];
    if (needs_transform(t)) transform(t, 0, t->nbytes, b + o);
    else if (t->nbytes) memcpy(b + o, t->data, t->nbytes);
    o += t->nbytes;
  }
  image_free(&im);
  *out = b;
  *outlen = total;
  return 0;
}

static bool write_tensor(int fd, const sm_st_tensor *t) {
  if (!needs_transform(t)) return sm_write_all(fd, t->data, t->nbytes);
  unsigned char chunk[16384]; /* a multiple of every element size */
  for (size_t off = 0; off < t->nbytes; off += sizeof chunk) {
    size_t k = t->nbytes - off < sizeof chunk ? t->nbytes - off : sizeof chunk;
    transform(t, off, k, chunk);
    if (!sm_write_all(fd, chunk, k)) return false;
  }
  return true;
}

int sm_st_write_file(const char *path, const sm_st_tensor *tensors, size_t n,
                     const sm_st_meta *meta, size_t nmeta, char *errbuf, size_t errlen) {
  if (!path) return fail(errbuf, errlen, "<null>: no file name");
  image im;
  if (make_image(path, tensors, n, meta, nmeta, &im, errbuf, errlen)) return -1;
  /* The temporary file's name, allocated before any file is touched. */
  size_t tcap = strlen(path) + 48;
  char *tmp = sm_malloc(tcap);
  if (!tmp) {
    image_free(&im);
    return fail(errbuf, errlen, "%s: out of memory (file name)", path);
  }

  int rc = -1;
  errno = 0;
  int fd = sm_create_temp(path, tmp, tcap);
  if (fd < 0) {
    fail(errbuf, errlen, "%s: cannot create a temporary file next to it: %s", path,
         strerror(errno ? errno : EEXIST));
    goto done;
  }
  bool ok = sm_write_all(fd, im.head, im.head_len);
  for (size_t i = 0; ok && i < im.n; i++) ok = write_tensor(fd, im.order[i]);
  if (sm_commit_temp(fd, ok, tmp, path, errbuf, errlen)) goto done;
  rc = 0;
done:
  sm_free(tmp);
  image_free(&im);
  return rc;
}
