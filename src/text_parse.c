/* The text format parser (docs/text-format.md): a hand-written lexer and a
 * recursive-descent parser, one statement a line.
 *
 * A line is first parsed into a small syntax record (id, op, operands,
 * attributes, type), then built through the public builders and the sm_*
 * primitive builders, so that every check of the builders applies to text
 * too; a builder's error becomes a parse error at that line. After a node
 * is built, a declared ": dtype[shape]" must equal what the builder
 * inferred.
 *
 * Robustness: the input is a (pointer, length) pair and may hold anything;
 * every index is checked, array literals nest at most SMELT_MAX_RANK deep,
 * numbers are range-checked, shapes whose element count overflows are
 * rejected, and every allocation failure ends the parse cleanly. */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest name or number token. Names are at most 200 characters. */
#define MAX_TOKEN 256

/* ================================================================ lexer */

typedef enum tkind {
  T_EOF,
  T_NL,
  T_IDENT, /* f32, add, axes, true, nan */
  T_ID,    /* %name or %123; pos/len exclude the '%' */
  T_NUM,   /* -1.5e3, 7, -inf, -nan ("nan" and "inf" alone lex as T_IDENT) */
  T_EQ,
  T_COMMA,
  T_COLON,
  T_LBRACK,
  T_RBRACK,
  T_LPAREN,
  T_RPAREN,
  T_BAD /* a lexical error; msg says which */
} tkind;

typedef struct tok {
  size_t pos;
  uint32_t len;
  uint8_t kind;
  const char *msg; /* T_BAD only */
} tok;

/* A scalar token kept for later conversion (array elements, numbers). */
typedef struct elem {
  size_t pos;
  uint32_t len;
  uint8_t kind; /* T_NUM or T_IDENT */
} elem;

typedef enum vkind { V_NUM, V_WORD, V_ID, V_ARRAY, V_CALL } vkind;

struct callarg;

/* A value: a scalar token, an id, an array literal (flattened, row-major,
 * with its shape) or a call such as normal(mean=0, std=1, seed=3). */
typedef struct value {
  vkind k;
  elem e; /* the token (V_NUM, V_WORD, V_ID), the '[' or the call's name */
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  size_t n, cap;
  elem *elems;
  int nargs;
  size_t args_cap;
  struct callarg *args;
} value;

typedef struct callarg {
  bool has_key;
  elem key;
  value v;
} callarg;

typedef struct attr {
  elem key;
  bool flag; /* written as a bare word: means true */
  bool used;
  value v;
} attr;

typedef struct line {
  tok id, op, type_tok;
  size_t npos, pos_cap;
  value *pos; /* operands */
  size_t nattr, attr_cap;
  attr *attrs;
  bool has_type;
  smelt_dtype dt;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
} line;

/* ids of the text -> handles in the new graph */
typedef struct idslot {
  size_t pos;
  uint32_t len; /* 0: empty slot */
  smelt_node h;
} idslot;

typedef struct parser {
  const char *src;
  size_t len, lexpos;
  tok cur, peek;
  const char *file;
  char *errbuf;
  size_t errlen;
  bool failed;
  smelt_graph *g;
  idslot *ids;
  size_t ids_cap, ids_count;
  char decimal_point;
} parser;

static bool is_alpha(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_idchar(char c) { return is_alpha(c) || is_digit(c) || c == '.'; }

static tok bad(size_t pos, size_t len, const char *msg) {
  tok t = {pos, (uint32_t)(len > MAX_TOKEN ? MAX_TOKEN : len), T_BAD, msg};
  return t;
}

static tok lex(parser *P) {
  const char *s = P->src;
  size_t n = P->len, i = P->lexpos;
  for (;;) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
    if (i < n && s[i] == '#') {
      while (i < n && s[i] != '\n' && s[i] != '\0') i++;
      continue;
    }
    break;
  }
  tok t = {i, 0, T_EOF, NULL};
  if (i >= n) {
    P->lexpos = i;
    return t;
  }
  char c = s[i];
  size_t j = i + 1;
  switch (c) {
  case '\n': t.kind = T_NL; break;
  case '=': t.kind = T_EQ; break;
  case ',': t.kind = T_COMMA; break;
  case ':': t.kind = T_COLON; break;
  case '[': t.kind = T_LBRACK; break;
  case ']': t.kind = T_RBRACK; break;
  case '(': t.kind = T_LPAREN; break;
  case ')': t.kind = T_RPAREN; break;
  case '%':
    while (j < n && is_idchar(s[j])) j++;
    if (j == i + 1) {
      t = bad(i, 1, "expected a name or a number after '%'");
    } else if (is_digit(s[i + 1])) {
      bool digits = true;
      for (size_t k = i + 1; k < j; k++) digits = digits && is_digit(s[k]);
      if (!digits)
        t = bad(i, j - i,
                "invalid id (a name starts with a letter or '_', a number has only digits)");
      else if (s[i + 1] == '0' && j - i > 2)
        t = bad(i, j - i, "invalid id (a number id has no leading zeros)");
      else
        t.kind = T_ID;
    } else {
      t.kind = T_ID;
    }
    if (t.kind == T_ID) {
      t.pos = i + 1;
      if (j - i - 1 > MAX_TOKEN) t = bad(i, j - i, "name too long");
    }
    break;
  default:
    if (is_alpha(c)) {
      while (j < n && is_idchar(s[j])) j++;
      t.kind = T_IDENT;
    } else if (is_digit(c) || c == '.' || c == '-') {
      j = i;
      if (s[j] == '-') j++;
      if (j < n && is_alpha(s[j])) {
        size_t k = j;
        while (k < n && is_idchar(s[k])) k++;
        if ((k - j == 3 && (memcmp(s + j, "inf", 3) == 0 || memcmp(s + j, "nan", 3) == 0))) {
          t.kind = T_NUM;
          j = k;
        } else {
          t = bad(i, 1, "unexpected '-'");
        }
        break;
      }
      size_t digits = 0;
      while (j < n && is_digit(s[j])) j++, digits++;
      if (j < n && s[j] == '.') {
        j++;
        while (j < n && is_digit(s[j])) j++, digits++;
      }
      if (digits == 0) {
        t = bad(i, 1, c == '-' ? "unexpected '-'" : "unexpected '.'");
        break;
      }
      bool ok = true;
      if (j < n && (s[j] == 'e' || s[j] == 'E')) {
        j++;
        if (j < n && (s[j] == '+' || s[j] == '-')) j++;
        size_t ed = 0;
        while (j < n && is_digit(s[j])) j++, ed++;
        ok = ed > 0;
      }
      if (j < n && is_idchar(s[j])) {
        ok = false;
        while (j < n && is_idchar(s[j])) j++;
      }
      if (ok)
        t.kind = T_NUM;
      else
        t = bad(i, j - i, "invalid number");
    } else if (c == '\0') {
      t = bad(i, 1, "NUL byte in the input");
    } else {
      t = bad(i, 1, "unexpected character");
    }
    break;
  }
  if (t.kind != T_BAD && t.kind != T_ID) {
    if (j - i > MAX_TOKEN)
      t = bad(i, j - i, t.kind == T_NUM ? "number too long" : "name too long");
    else
      t.len = (uint32_t)(j - i);
  } else if (t.kind == T_ID) {
    t.len = (uint32_t)(j - i - 1);
  }
  P->lexpos = j;
  return t;
}

/* ================================================================ errors */

static bool fail_at(parser *P, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail_at(parser *P, size_t pos, const char *fmt, ...) {
  if (P->failed) return false;
  P->failed = true;
  if (!P->errbuf || !P->errlen) return false;
  size_t lineno = 1, col = 1;
  if (pos > P->len) pos = P->len;
  for (size_t i = 0; i < pos; i++) {
    if (P->src[i] == '\n') {
      lineno++;
      col = 1;
    } else {
      col++;
    }
  }
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(P->errbuf, P->errlen, "%s:%zu:%zu: %s", P->file, lineno, col, msg);
  return false;
}

static bool oom(parser *P, size_t pos) { return fail_at(P, pos, "out of memory"); }

/* "'text'" of a token (shortened), "end of line" or "end of input". */
static const char *describe(const parser *P, tok t, char *out, size_t outlen) {
  if (t.kind == T_EOF) return "end of input";
  if (t.kind == T_NL) return "end of line";
  size_t pos = t.kind == T_ID ? t.pos - 1 : t.pos;
  size_t len = t.kind == T_ID ? (size_t)t.len + 1 : t.len;
  if (len > 32)
    snprintf(out, outlen, "'%.29s...'", P->src + pos);
  else
    snprintf(out, outlen, "'%.*s'", (int)len, P->src + pos);
  /* tokens are printable ASCII except for T_BAD, which is never described */
  return out;
}

static bool expected(parser *P, const char *what) {
  char d[48];
  return fail_at(P, P->cur.kind == T_ID ? P->cur.pos - 1 : P->cur.pos, "expected %s but found %s",
                 what, describe(P, P->cur, d, sizeof d));
}

static size_t tok_start(tok t) { return t.kind == T_ID ? t.pos - 1 : t.pos; }
static size_t elem_start(const elem *e) { return e->kind == T_ID ? e->pos - 1 : e->pos; }

/* Advances; a lexical error is reported when its token becomes current. */
static bool next(parser *P) {
  P->cur = P->peek;
  P->peek = lex(P);
  if (P->cur.kind == T_BAD) return fail_at(P, P->cur.pos, "%s", P->cur.msg);
  return !P->failed;
}

static bool tok_is(const parser *P, tok t, const char *s) {
  size_t n = strlen(s);
  return (t.kind == T_IDENT || t.kind == T_NUM) && t.len == n && memcmp(P->src + t.pos, s, n) == 0;
}

static bool elem_is(const parser *P, const elem *e, const char *s) {
  size_t n = strlen(s);
  return e->len == n && memcmp(P->src + e->pos, s, n) == 0;
}

static elem to_elem(tok t) {
  elem e = {t.pos, t.len, t.kind};
  return e;
}

/* Copies a token's text, NUL-terminated (tokens are at most MAX_TOKEN). */
static void elem_text(const parser *P, const elem *e, char *out) {
  size_t n = e->len > MAX_TOKEN ? MAX_TOKEN : e->len;
  memcpy(out, P->src + e->pos, n);
  out[n] = 0;
}

/* Words that are values, not attribute flags. */
static bool is_value_word(const parser *P, tok t) {
  return t.kind == T_IDENT && (tok_is(P, t, "true") || tok_is(P, t, "false") ||
                               tok_is(P, t, "nan") || tok_is(P, t, "inf"));
}

/* ================================================================ numbers */

static bool elem_is_number(const parser *P, const elem *e) {
  return e->kind == T_NUM || elem_is(P, e, "nan") || elem_is(P, e, "inf");
}

/* An integer in [lo, hi]; the token must be written as an integer. */
static bool elem_i64(parser *P, const elem *e, int64_t lo, int64_t hi, int64_t *out,
                     const char *what) {
  const char *s = P->src + e->pos;
  size_t n = e->len, i = 0;
  bool neg = false;
  if (e->kind != T_NUM) return fail_at(P, elem_start(e), "expected an integer for %s", what);
  if (i < n && s[i] == '-') neg = true, i++;
  if (i == n) return fail_at(P, e->pos, "expected an integer for %s", what);
  uint64_t v = 0;
  bool over = false;
  for (; i < n; i++) {
    if (!is_digit(s[i])) return fail_at(P, e->pos, "expected an integer for %s", what);
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) over = true;
    else v = v * 10 + d;
  }
  int64_t r;
  if (over || (neg && v > (uint64_t)INT64_MAX + 1) || (!neg && v > (uint64_t)INT64_MAX))
    return fail_at(P, e->pos, "integer out of range for %s", what);
  r = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
  if (r < lo || r > hi)
    return fail_at(P, e->pos, "%s out of range (%" PRId64 " not in [%" PRId64 ", %" PRId64 "])",
                   what, r, lo, hi);
  *out = r;
  return true;
}

static bool elem_u64(parser *P, const elem *e, uint64_t *out, const char *what) {
  const char *s = P->src + e->pos;
  if (e->kind != T_NUM || e->len == 0 || s[0] == '-')
    return fail_at(P, elem_start(e), "expected a non-negative integer for %s", what);
  uint64_t v = 0;
  for (size_t i = 0; i < e->len; i++) {
    if (!is_digit(s[i])) return fail_at(P, e->pos, "expected a non-negative integer for %s", what);
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return fail_at(P, e->pos, "integer out of range for %s", what);
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

static bool elem_double(parser *P, const elem *e, double *out, const char *what) {
  if (!elem_is_number(P, e)) return fail_at(P, elem_start(e), "expected a number for %s", what);
  char buf[MAX_TOKEN + 1];
  elem_text(P, e, buf);
  const char *t = buf[0] == '-' ? buf + 1 : buf;
  if (strcmp(t, "nan") == 0) {
    *out = buf[0] == '-' ? copysign(NAN, -1.0) : NAN;
    return true;
  }
  if (strcmp(t, "inf") == 0) {
    *out = buf[0] == '-' ? -INFINITY : INFINITY;
    return true;
  }
  /* strtod follows the C locale's decimal point; the format uses '.'. */
  if (P->decimal_point != '.')
    for (char *p = buf; *p; p++)
      if (*p == '.') *p = P->decimal_point;
  errno = 0;
  char *end;
  double v = strtod(buf, &end);
  if (*end) return fail_at(P, e->pos, "invalid number for %s", what);
  if (errno == ERANGE && isinf(v)) return fail_at(P, e->pos, "number out of range for %s", what);
  *out = v;
  return true;
}

static bool elem_is_int_syntax(const parser *P, const elem *e) {
  if (e->kind != T_NUM) return false;
  for (size_t i = 0; i < e->len; i++) {
    char c = P->src[e->pos + i];
    if (!is_digit(c) && !(i == 0 && c == '-')) return false;
  }
  return true;
}

/* One element of dtype dt into out[i]. */
static bool elem_store(parser *P, const elem *e, smelt_dtype dt, void *out, size_t i) {
  switch (dt) {
  case SMELT_F32: {
    double v;
    if (!elem_double(P, e, &v, "an f32 value")) return false;
    if (isfinite(v) && isinf((float)v)) return fail_at(P, e->pos, "value out of range for f32");
    ((float *)out)[i] = (float)v;
    return true;
  }
  case SMELT_F64: return elem_double(P, e, &((double *)out)[i], "an f64 value");
  case SMELT_I32: {
    int64_t v;
    if (!elem_i64(P, e, INT32_MIN, INT32_MAX, &v, "an i32 value")) return false;
    ((int32_t *)out)[i] = (int32_t)v;
    return true;
  }
  case SMELT_I64: return elem_i64(P, e, INT64_MIN, INT64_MAX, &((int64_t *)out)[i], "an i64 value");
  case SMELT_BOOL:
    if (elem_is(P, e, "true") || elem_is(P, e, "false")) {
      ((uint8_t *)out)[i] = elem_is(P, e, "true");
      return true;
    }
    return fail_at(P, elem_start(e), "expected true or false for a bool value");
  default: return fail_at(P, e->pos, "bad dtype");
  }
}

/* ================================================================ values */

static void value_free(value *v) {
  sm_free(v->elems);
  for (int i = 0; i < v->nargs; i++) sm_free(v->args[i].v.elems);
  sm_free(v->args);
  v->elems = NULL;
  v->args = NULL;
  v->n = v->cap = 0;
  v->nargs = 0;
  v->args_cap = 0;
}

static void line_free(line *L) {
  for (size_t i = 0; i < L->npos; i++) value_free(&L->pos[i]);
  for (size_t i = 0; i < L->nattr; i++) value_free(&L->attrs[i].v);
  sm_free(L->pos);
  sm_free(L->attrs);
}

/* Grows *p (of *cap items of size sz) to hold n + 1 items. */
static bool grow(void **p, size_t *cap, size_t n, size_t sz) {
  if (n < *cap) return true;
  size_t ncap = *cap ? *cap * 2 : 8;
  if (ncap > SIZE_MAX / sz) return false;
  void *q = sm_realloc(*p, ncap * sz);
  if (!q) return false;
  *p = q;
  *cap = ncap;
  return true;
}

static bool at_line_end(const parser *P) { return P->cur.kind == T_NL || P->cur.kind == T_EOF; }

/* '[' elements ']' with elements scalars or nested arrays, all of one
 * shape; the scalars are appended to v->elems in row-major order. */
static bool parse_array_rec(parser *P, value *v, int depth, int *rank, int64_t *dims) {
  size_t open = P->cur.pos;
  if (depth >= SMELT_MAX_RANK)
    return fail_at(P, open, "array literal nested deeper than %d levels", SMELT_MAX_RANK);
  if (!next(P)) return false;
  if (P->cur.kind == T_RBRACK) {
    *rank = 1;
    dims[0] = 0;
    return next(P);
  }
  int sub_rank = -1;
  int64_t sub_dims[SMELT_MAX_RANK];
  int64_t count = 0;
  for (;;) {
    int r = 0;
    int64_t d[SMELT_MAX_RANK];
    size_t epos = P->cur.pos;
    if (P->cur.kind == T_LBRACK) {
      if (!parse_array_rec(P, v, depth + 1, &r, d)) return false;
    } else if (P->cur.kind == T_NUM || is_value_word(P, P->cur)) {
      if (!grow((void **)&v->elems, &v->cap, v->n, sizeof *v->elems)) return oom(P, epos);
      v->elems[v->n++] = to_elem(P->cur);
      if (!next(P)) return false;
    } else if (at_line_end(P)) {
      return fail_at(P, open, "unterminated array literal (missing ']')");
    } else {
      return expected(P, "a number or '[' in the array literal");
    }
    if (sub_rank < 0) {
      sub_rank = r;
      memcpy(sub_dims, d, sizeof(int64_t) * (size_t)r);
    } else if (r != sub_rank || memcmp(sub_dims, d, sizeof(int64_t) * (size_t)r) != 0) {
      return fail_at(P, epos, "ragged array literal (the elements have different shapes)");
    }
    count++;
    if (P->cur.kind == T_COMMA) {
      if (!next(P)) return false;
      continue;
    }
    if (P->cur.kind == T_RBRACK) break;
    if (at_line_end(P)) return fail_at(P, open, "unterminated array literal (missing ']')");
    return expected(P, "',' or ']' in the array literal");
  }
  *rank = 1 + sub_rank;
  dims[0] = count;
  memcpy(dims + 1, sub_dims, sizeof(int64_t) * (size_t)sub_rank);
  return next(P);
}

/* A value. Ids only where allow_id; calls only where allow_call. */
static bool parse_value(parser *P, value *v, bool allow_id, bool allow_call) {
  memset(v, 0, sizeof *v);
  tok t = P->cur;
  v->e = to_elem(t);
  switch (t.kind) {
  case T_NUM:
    v->k = V_NUM;
    return next(P);
  case T_ID:
    if (!allow_id) return expected(P, "a value");
    v->k = V_ID;
    return next(P);
  case T_LBRACK:
    v->k = V_ARRAY;
    return parse_array_rec(P, v, 0, &v->rank, v->dims);
  case T_IDENT:
    if (P->peek.kind == T_LPAREN && allow_call) {
      v->k = V_CALL;
      if (!next(P) || !next(P)) return false;
      if (P->cur.kind == T_RPAREN) return next(P);
      for (;;) {
        callarg a;
        memset(&a, 0, sizeof a);
        if (P->cur.kind == T_IDENT && P->peek.kind == T_EQ) {
          a.has_key = true;
          a.key = to_elem(P->cur);
          if (!next(P) || !next(P)) return false;
        }
        size_t apos = P->cur.pos;
        if (v->nargs >= 64) return fail_at(P, apos, "too many arguments");
        if (!grow((void **)&v->args, &v->args_cap, (size_t)v->nargs, sizeof *v->args))
          return oom(P, apos);
        v->args[v->nargs] = a;
        v->nargs++;
        if (!parse_value(P, &v->args[v->nargs - 1].v, false, false)) return false;
        if (P->cur.kind == T_COMMA) {
          if (!next(P)) return false;
          continue;
        }
        if (P->cur.kind == T_RPAREN) return next(P);
        if (at_line_end(P)) return fail_at(P, t.pos, "unterminated call (missing ')')");
        return expected(P, "',' or ')'");
      }
    }
    v->k = V_WORD;
    return next(P);
  default: return expected(P, "a value");
  }
}

/* ================================================================ types */

/* dtype '[' dims ']' */
static bool parse_type(parser *P, smelt_dtype *dt, int *rank, int64_t *dims) {
  if (P->cur.kind != T_IDENT) return expected(P, "a dtype (f32, f64, i32, i64, bool)");
  char name[MAX_TOKEN + 1];
  elem e = to_elem(P->cur);
  elem_text(P, &e, name);
  if (!smelt_dtype_parse(name, dt))
    return fail_at(P, P->cur.pos, "unknown dtype '%s' (f32, f64, i32, i64, bool)", name);
  size_t tpos = P->cur.pos;
  if (!next(P)) return false;
  if (P->cur.kind != T_LBRACK) return expected(P, "'[' after the dtype");
  if (!next(P)) return false;
  int r = 0;
  int64_t numel = 1;
  if (P->cur.kind != T_RBRACK) {
    for (;;) {
      if (P->cur.kind != T_NUM) {
        if (at_line_end(P)) return fail_at(P, tpos, "unterminated shape (missing ']')");
        return expected(P, "a dim");
      }
      if (r >= SMELT_MAX_RANK)
        return fail_at(P, P->cur.pos, "rank exceeds %d", SMELT_MAX_RANK);
      e = to_elem(P->cur);
      int64_t d;
      if (!elem_i64(P, &e, 0, INT64_MAX, &d, "a dim")) return false;
      if (d > 0 && numel > SM_MAX_NUMEL / d)
        return fail_at(P, tpos, "shape has too many elements (more than 2^59)");
      numel *= d;
      dims[r++] = d;
      if (!next(P)) return false;
      if (P->cur.kind == T_COMMA) {
        if (!next(P)) return false;
        continue;
      }
      if (P->cur.kind == T_RBRACK) break;
      if (at_line_end(P)) return fail_at(P, tpos, "unterminated shape (missing ']')");
      return expected(P, "',' or ']' in the shape");
    }
  }
  *rank = r;
  return next(P);
}

static void type_str(char *out, size_t outlen, smelt_dtype dt, int rank, const int64_t *dims) {
  size_t k = (size_t)snprintf(out, outlen, "%s[", smelt_dtype_name(dt));
  for (int i = 0; i < rank && k < outlen; i++)
    k += (size_t)snprintf(out + k, outlen - k, i ? ",%" PRId64 : "%" PRId64, dims[i]);
  if (k < outlen) snprintf(out + k, outlen - k, "]");
}

static void shape_str(char *out, size_t outlen, int rank, const int64_t *dims) {
  size_t k = (size_t)snprintf(out, outlen, "[");
  for (int i = 0; i < rank && k < outlen; i++)
    k += (size_t)snprintf(out + k, outlen - k, i ? ",%" PRId64 : "%" PRId64, dims[i]);
  if (k < outlen) snprintf(out + k, outlen - k, "]");
}

/* ================================================================ ids */

static uint64_t id_hash(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
  return h;
}

static idslot *id_find(parser *P, tok t) {
  if (!P->ids_cap) return NULL;
  size_t mask = P->ids_cap - 1;
  for (size_t j = id_hash(P->src + t.pos, t.len) & mask; P->ids[j].len; j = (j + 1) & mask)
    if (P->ids[j].len == t.len && memcmp(P->src + P->ids[j].pos, P->src + t.pos, t.len) == 0)
      return &P->ids[j];
  return NULL;
}

static bool id_insert(parser *P, tok t, smelt_node h) {
  if ((P->ids_count + 1) * 2 > P->ids_cap) {
    size_t ncap = P->ids_cap ? P->ids_cap * 2 : 64;
    idslot *s = sm_calloc(ncap, sizeof *s);
    if (!s) return oom(P, tok_start(t));
    for (size_t i = 0; i < P->ids_cap; i++) {
      if (!P->ids[i].len) continue;
      size_t j = id_hash(P->src + P->ids[i].pos, P->ids[i].len) & (ncap - 1);
      while (s[j].len) j = (j + 1) & (ncap - 1);
      s[j] = P->ids[i];
    }
    sm_free(P->ids);
    P->ids = s;
    P->ids_cap = ncap;
  }
  size_t mask = P->ids_cap - 1;
  size_t j = id_hash(P->src + t.pos, t.len) & mask;
  while (P->ids[j].len) j = (j + 1) & mask;
  P->ids[j].pos = t.pos;
  P->ids[j].len = t.len;
  P->ids[j].h = h;
  P->ids_count++;
  return true;
}

static bool id_is_number(const parser *P, tok t) { return is_digit(P->src[t.pos]); }

/* A fresh id for a definition: reports a redefinition. */
static bool id_fresh(parser *P, tok t) {
  if (id_find(P, t))
    return fail_at(P, tok_start(t), "%%%.*s is already defined", (int)t.len, P->src + t.pos);
  return true;
}

/* ================================================================ lines */

static bool starts_operand(const parser *P) {
  return P->cur.kind == T_ID || P->cur.kind == T_NUM || P->cur.kind == T_LBRACK ||
         (is_value_word(P, P->cur) && P->peek.kind != T_EQ);
}

/* Operands, separated by commas. */
static bool parse_operands(parser *P, line *L) {
  if (!starts_operand(P)) return true;
  for (;;) {
    size_t opos = P->cur.pos;
    if (!grow((void **)&L->pos, &L->pos_cap, L->npos, sizeof *L->pos)) return oom(P, opos);
    memset(&L->pos[L->npos], 0, sizeof *L->pos);
    L->npos++;
    if (!parse_value(P, &L->pos[L->npos - 1], true, false)) return false;
    if (P->cur.kind != T_COMMA) break;
    if (!next(P)) return false;
    if (!starts_operand(P)) return expected(P, "an operand after ','");
  }
  if (P->cur.kind == T_ID || P->cur.kind == T_NUM || P->cur.kind == T_LBRACK)
    return expected(P, "',' between operands");
  return true;
}

/* Attributes: key=value or a bare flag (which means key=true). */
static bool parse_attrs(parser *P, line *L) {
  while (P->cur.kind == T_IDENT) {
    tok key = P->cur;
    for (size_t i = 0; i < L->nattr; i++)
      if (L->attrs[i].key.len == key.len &&
          memcmp(P->src + L->attrs[i].key.pos, P->src + key.pos, key.len) == 0)
        return fail_at(P, key.pos, "duplicate attribute '%.*s'", (int)key.len, P->src + key.pos);
    if (!grow((void **)&L->attrs, &L->attr_cap, L->nattr, sizeof *L->attrs))
      return oom(P, key.pos);
    attr *a = &L->attrs[L->nattr++];
    memset(a, 0, sizeof *a);
    a->key = to_elem(key);
    if (!next(P)) return false;
    if (P->cur.kind == T_EQ) {
      if (!next(P)) return false;
      if (at_line_end(P)) return expected(P, "a value after '='");
      if (!parse_value(P, &a->v, false, true)) return false;
    } else {
      a->flag = true;
    }
  }
  return true;
}

static bool expect_end(parser *P) {
  if (at_line_end(P)) return true;
  if (P->cur.kind == T_EQ) return expected(P, "an attribute name before '='");
  return expected(P, "the end of the line");
}

/* What follows the op: operands, attributes, [": type"], end of line. */
static bool parse_line_rest(parser *P, line *L) {
  if (!parse_operands(P, L) || !parse_attrs(P, L)) return false;
  if (P->cur.kind == T_COLON) {
    if (!next(P)) return false;
    L->type_tok = P->cur;
    L->has_type = true;
    if (!parse_type(P, &L->dt, &L->rank, L->dims)) return false;
  }
  return expect_end(P);
}

/* ================================================================ attrs */

typedef struct ctx {
  parser *P;
  line *L;
  smelt_graph *g;
  const char *opname;
} ctx;

static attr *attr_get(ctx *c, const char *key) {
  for (size_t i = 0; i < c->L->nattr; i++)
    if (elem_is(c->P, &c->L->attrs[i].key, key)) {
      c->L->attrs[i].used = true;
      return &c->L->attrs[i];
    }
  return NULL;
}

static size_t op_pos(const ctx *c) { return c->L->op.pos; }

static bool missing(ctx *c, const char *key, const char *example) {
  return fail_at(c->P, op_pos(c), "%s needs %s=%s", c->opname, key, example);
}

/* Every attribute the op did not ask for is an error. */
static bool attrs_done(ctx *c) {
  for (size_t i = 0; i < c->L->nattr; i++)
    if (!c->L->attrs[i].used)
      return fail_at(c->P, c->L->attrs[i].key.pos, "%s has no attribute '%.*s'", c->opname,
                     (int)c->L->attrs[i].key.len, c->P->src + c->L->attrs[i].key.pos);
  return true;
}

/* A scalar attribute's token, or an error at the attribute. */
static bool attr_scalar(ctx *c, attr *a, const char *key, elem *out) {
  if (a->flag) return fail_at(c->P, a->key.pos, "%s needs a value: %s=...", key, key);
  if (a->v.k != V_NUM && a->v.k != V_WORD)
    return fail_at(c->P, elem_start(&a->v.e), "%s: expected a number", key);
  *out = a->v.e;
  return true;
}

static bool attr_i64(ctx *c, const char *key, bool required, int64_t def, int64_t lo, int64_t hi,
                     int64_t *out) {
  attr *a = attr_get(c, key);
  if (!a) {
    if (required) return missing(c, key, "N");
    *out = def;
    return true;
  }
  elem e = {0, 0, 0};
  return attr_scalar(c, a, key, &e) && elem_i64(c->P, &e, lo, hi, out, key);
}

static bool attr_int(ctx *c, const char *key, bool required, int def, int *out) {
  int64_t v = 0;
  if (!attr_i64(c, key, required, def, INT_MIN, INT_MAX, &v)) return false;
  *out = (int)v;
  return true;
}

static bool attr_u64(ctx *c, const char *key, bool required, uint64_t def, uint64_t *out) {
  attr *a = attr_get(c, key);
  if (!a) {
    if (required) return missing(c, key, "N");
    *out = def;
    return true;
  }
  elem e = {0, 0, 0};
  return attr_scalar(c, a, key, &e) && elem_u64(c->P, &e, out, key);
}

static bool attr_num(ctx *c, const char *key, bool required, double def, double *out) {
  attr *a = attr_get(c, key);
  if (!a) {
    if (required) return missing(c, key, "V");
    *out = def;
    return true;
  }
  elem e = {0, 0, 0};
  return attr_scalar(c, a, key, &e) && elem_double(c->P, &e, out, key);
}

static bool attr_bool(ctx *c, const char *key, bool def, bool *out) {
  attr *a = attr_get(c, key);
  if (!a) {
    *out = def;
    return true;
  }
  if (a->flag) {
    *out = true;
    return true;
  }
  if (a->v.k == V_WORD && (elem_is(c->P, &a->v.e, "true") || elem_is(c->P, &a->v.e, "false"))) {
    *out = elem_is(c->P, &a->v.e, "true");
    return true;
  }
  return fail_at(c->P, elem_start(&a->v.e), "%s: expected true or false", key);
}

/* key=[a,b,...] (a single integer counts as a list of one), at most max
 * entries, each in [lo, hi]. *present tells whether it was given. */
static bool attr_list(ctx *c, const char *key, bool required, int max, int64_t lo, int64_t hi,
                      int64_t *out, int *n, bool *present) {
  attr *a = attr_get(c, key);
  *n = 0;
  if (present) *present = a != NULL;
  if (!a) return required ? missing(c, key, "[...]") : true;
  if (a->flag) return fail_at(c->P, a->key.pos, "%s needs a value: %s=[...]", key, key);
  if (a->v.k == V_NUM) {
    *n = 1;
    return elem_i64(c->P, &a->v.e, lo, hi, out, key);
  }
  if (a->v.k != V_ARRAY || a->v.rank != 1)
    return fail_at(c->P, elem_start(&a->v.e), "%s: expected a list of integers [...]", key);
  if (a->v.n > (size_t)max)
    return fail_at(c->P, a->v.e.pos, "%s: too many entries (%zu, at most %d)", key, a->v.n, max);
  for (size_t i = 0; i < a->v.n; i++)
    if (!elem_i64(c->P, &a->v.elems[i], lo, hi, &out[i], key)) return false;
  *n = (int)a->v.n;
  return true;
}

static bool attr_axes(ctx *c, const char *key, bool required, int *axes, int *n) {
  int64_t v[SMELT_MAX_RANK];
  if (!attr_list(c, key, required, SMELT_MAX_RANK, INT_MIN, INT_MAX, v, n, NULL)) return false;
  for (int i = 0; i < *n; i++) axes[i] = (int)v[i];
  return true;
}

static bool attr_dtype(ctx *c, bool *present, smelt_dtype *out) {
  attr *a = attr_get(c, "dtype");
  *present = a != NULL;
  if (!a) return true;
  char name[MAX_TOKEN + 1];
  if (a->flag || a->v.k != V_WORD)
    return fail_at(c->P, a->key.pos, "dtype: expected f32, f64, i32, i64 or bool");
  elem_text(c->P, &a->v.e, name);
  if (!smelt_dtype_parse(name, out))
    return fail_at(c->P, a->v.e.pos, "unknown dtype '%s' (f32, f64, i32, i64, bool)", name);
  return true;
}

/* The dtype of a source: dtype=, else the declared type, else def. */
static bool source_dtype(ctx *c, smelt_dtype def, smelt_dtype *out) {
  bool present;
  if (!attr_dtype(c, &present, out)) return false;
  if (!present) *out = c->L->has_type ? c->L->dt : def;
  return true;
}

/* The shape of a source: shape=[..], else the declared type's. */
static bool source_shape(ctx *c, int *rank, int64_t *dims) {
  bool present;
  if (!attr_list(c, "shape", false, SMELT_MAX_RANK, 0, INT64_MAX, dims, rank, &present))
    return false;
  if (present) {
    int64_t numel = 1;
    for (int i = 0; i < *rank; i++) {
      if (dims[i] > 0 && numel > SM_MAX_NUMEL / dims[i])
        return fail_at(c->P, op_pos(c), "shape has too many elements (more than 2^59)");
      numel *= dims[i];
    }
    return true;
  }
  if (!c->L->has_type)
    return fail_at(c->P, op_pos(c), "%s needs a shape: shape=[...] or ': dtype[...]'", c->opname);
  *rank = c->L->rank;
  memcpy(dims, c->L->dims, sizeof(int64_t) * (size_t)*rank);
  return true;
}

static bool need_type(ctx *c) {
  if (!c->L->has_type)
    return fail_at(c->P, op_pos(c), "%s needs its type: ': dtype[shape]' at the end of the line",
                   c->opname);
  return true;
}

/* ================================================================ operands */

static bool count_operands(ctx *c, size_t min, size_t max) {
  size_t n = c->L->npos;
  if (n >= min && n <= max) return true;
  if (max == 0) return fail_at(c->P, op_pos(c), "%s takes no operands", c->opname);
  if (min == max)
    return fail_at(c->P, op_pos(c), "%s takes %zu operand%s, got %zu", c->opname, min,
                   min == 1 ? "" : "s", n);
  if (max == SIZE_MAX)
    return fail_at(c->P, op_pos(c), "%s takes at least %zu operand%s, got %zu", c->opname, min,
                   min == 1 ? "" : "s", n);
  return fail_at(c->P, op_pos(c), "%s takes %zu to %zu operands, got %zu", c->opname, min, max, n);
}

/* The node of operand i: an id, or a number literal (a weak scalar), or
 * true/false (a bool rank-0 constant). */
static bool operand(ctx *c, size_t i, smelt_node *out) {
  value *v = &c->L->pos[i];
  parser *P = c->P;
  switch (v->k) {
  case V_ID: {
    tok t = {v->e.pos, v->e.len, T_ID, NULL};
    idslot *s = id_find(P, t);
    if (!s) return fail_at(P, v->e.pos - 1, "unknown id %%%.*s", (int)t.len, P->src + t.pos);
    *out = s->h;
    return true;
  }
  case V_NUM:
  case V_WORD:
    if (elem_is(P, &v->e, "true") || elem_is(P, &v->e, "false")) {
      *out = smelt_const(c->g, SMELT_BOOL, elem_is(P, &v->e, "true"));
      return true;
    }
    if (elem_is_int_syntax(P, &v->e)) {
      int64_t x;
      if (!elem_i64(P, &v->e, INT64_MIN, INT64_MAX, &x, "an integer literal")) return false;
      *out = smelt_scalar_int(c->g, x);
    } else {
      double x;
      if (!elem_double(P, &v->e, &x, "a number literal")) return false;
      *out = smelt_scalar(c->g, x);
    }
    return true;
  default:
    return fail_at(P, elem_start(&v->e),
                   "%s: an array literal is not an operand (write it as a const line)", c->opname);
  }
}

static bool operands(ctx *c, size_t n, smelt_node *out) {
  if (!count_operands(c, n, n)) return false;
  for (size_t i = 0; i < n; i++)
    if (!operand(c, i, &out[i])) return false;
  return true;
}

/* ================================================================ values */

/* Converts a scalar or array literal to a buffer of numel(dims) elements
 * of dt, checking its shape against the type. *buf is sm_malloc'ed. */
static bool literal_data(parser *P, const value *v, smelt_dtype dt, int rank, const int64_t *dims,
                         void **buf) {
  *buf = NULL;
  char want[160], got[160];
  if (v->k == V_NUM || v->k == V_WORD) {
    if (rank != 0) {
      type_str(want, sizeof want, dt, rank, dims);
      return fail_at(P, elem_start(&v->e), "a value of type %s needs an array literal", want);
    }
    *buf = sm_malloc(smelt_dtype_size(dt));
    if (!*buf) return oom(P, v->e.pos);
    return elem_store(P, &v->e, dt, *buf, 0);
  }
  if (v->k != V_ARRAY)
    return fail_at(P, elem_start(&v->e), "expected a number or an array literal");
  /* The literal's shape must be the type's; an empty list [] stands for
   * all the axes from its own on (it has no elements to show them), and a
   * lone [] for any type without elements (as the printer writes them). */
  bool type_empty = false;
  for (int i = 0; i < rank; i++) type_empty |= dims[i] == 0;
  bool ok = v->rank <= rank && memcmp(v->dims, dims, sizeof(int64_t) * (size_t)v->rank) == 0 &&
            (v->rank == rank || v->dims[v->rank - 1] == 0);
  ok |= type_empty && v->rank == 1 && v->dims[0] == 0;
  if (!ok) {
    type_str(want, sizeof want, dt, rank, dims);
    shape_str(got, sizeof got, v->rank, v->dims);
    return fail_at(P, v->e.pos, "the array literal has shape %s but the type is %s", got, want);
  }
  size_t esz = smelt_dtype_size(dt);
  if (v->n > SIZE_MAX / esz) return oom(P, v->e.pos);
  *buf = sm_malloc(v->n ? v->n * esz : 1);
  if (!*buf) return oom(P, v->e.pos);
  for (size_t i = 0; i < v->n; i++)
    if (!elem_store(P, &v->elems[i], dt, *buf, i)) return false;
  return true;
}

/* ================================================================ builders */

typedef smelt_node (*un_fn)(smelt_graph *, smelt_node);
typedef smelt_node (*bin_fn)(smelt_graph *, smelt_node, smelt_node);
typedef smelt_node (*red_fn)(smelt_graph *, smelt_node, int, const int *, bool);
typedef smelt_node (*vs_fn)(smelt_graph *, smelt_node, int, const int *, int64_t, bool);
typedef smelt_node (*arg_fn)(smelt_graph *, smelt_node, int, bool);
typedef smelt_node (*ax_fn)(smelt_graph *, smelt_node, int);
typedef smelt_node (*sel_fn)(smelt_graph *, smelt_node, int, smelt_node);
typedef smelt_node (*fill_fn)(smelt_graph *, smelt_dtype, int, const int64_t *);

/* Public builders of the unary and binary primitives, by op. */
static const un_fn unary_builders[OP_COUNT] = {
    [OP_NEG] = smelt_neg,         [OP_ABS] = smelt_abs,
    [OP_SIGN] = smelt_sign,       [OP_EXP] = smelt_exp,
    [OP_LOG] = smelt_log,         [OP_SQRT] = smelt_sqrt,
    [OP_RSQRT] = smelt_rsqrt,     [OP_RECIPROCAL] = smelt_reciprocal,
    [OP_SIN] = smelt_sin,         [OP_COS] = smelt_cos,
    [OP_TANH] = smelt_tanh,       [OP_SIGMOID] = smelt_sigmoid,
    [OP_RELU] = smelt_relu,       [OP_NOT] = smelt_logical_not,
    [OP_STOP_GRADIENT] = smelt_stop_gradient,
};
static const bin_fn binary_builders[OP_COUNT] = {
    [OP_ADD] = smelt_add,         [OP_SUB] = smelt_sub,         [OP_MUL] = smelt_mul,
    [OP_DIV] = smelt_div,         [OP_POW] = smelt_pow,         [OP_MAXIMUM] = smelt_maximum,
    [OP_MINIMUM] = smelt_minimum, [OP_LT] = smelt_lt,           [OP_LE] = smelt_le,
    [OP_GT] = smelt_gt,           [OP_GE] = smelt_ge,           [OP_EQ] = smelt_eq,
    [OP_NE] = smelt_ne,           [OP_AND] = smelt_logical_and, [OP_OR] = smelt_logical_or,
    [OP_MATMUL] = smelt_matmul,   [OP_ASSIGN] = smelt_assign,
};

/* Checks that an array attribute has one entry per axis of x. */
static bool per_axis(ctx *c, const char *key, int n, smelt_node x) {
  int r = smelt_node_rank(c->g, x);
  if (n != r)
    return fail_at(c->P, op_pos(c), "%s: %s has %d entr%s but the operand has rank %d", c->opname,
                   key, n, n == 1 ? "y" : "ies", r);
  return true;
}

/* -------------------------------------------------------- primitives */

static bool b_const(ctx *c, smelt_node *out) {
  bool weak;
  if (!need_type(c) || !count_operands(c, 1, 1) || !attr_bool(c, "weak", false, &weak) ||
      !attrs_done(c))
    return false;
  void *buf;
  /* sm_const_raw takes a float literal's value as a double (internal.h) */
  smelt_dtype dt = weak && c->L->dt == SMELT_F32 && c->L->rank == 0 ? SMELT_F64 : c->L->dt;
  bool ok = literal_data(c->P, &c->L->pos[0], dt, c->L->rank, c->L->dims, &buf);
  if (ok) *out = sm_const_raw(c->g, c->L->dt, c->L->rank, c->L->dims, buf, weak);
  sm_free(buf);
  return ok;
}

static bool b_iota(ctx *c, smelt_node *out) {
  int axis;
  double start, step;
  if (!need_type(c) || !count_operands(c, 0, 0) || !attr_int(c, "axis", false, 0, &axis) ||
      !attr_num(c, "start", false, 0, &start) || !attr_num(c, "step", false, 1, &step) ||
      !attrs_done(c))
    return false;
  *out = sm_iota(c->g, c->L->dt, c->L->rank, c->L->dims, axis, start, step);
  return true;
}

static bool b_rng(ctx *c, sm_op op, smelt_node *out) {
  smelt_dtype dt;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  uint64_t seed;
  double a, b;
  bool uni = op == OP_RAND;
  if (!count_operands(c, 0, 0) || !source_dtype(c, SMELT_F32, &dt) ||
      !source_shape(c, &rank, dims) || !attr_u64(c, "seed", true, 0, &seed) ||
      !attr_num(c, uni ? "lo" : "mean", false, 0, &a) ||
      !attr_num(c, uni ? "hi" : "std", false, 1, &b) || !attrs_done(c))
    return false;
  *out = sm_rng(c->g, op, dt, rank, dims, seed, a, b);
  return true;
}

static bool b_cast(ctx *c, smelt_node *out) {
  smelt_node x;
  bool present;
  smelt_dtype dt;
  if (!operands(c, 1, &x) || !attr_dtype(c, &present, &dt) || !attrs_done(c)) return false;
  if (!present) {
    if (!c->L->has_type)
      return fail_at(c->P, op_pos(c), "cast needs a dtype: dtype=... or ': dtype[shape]'");
    dt = c->L->dt;
  }
  *out = smelt_cast(c->g, x, dt);
  return true;
}

/* reshape / expand: to shape=[..] through the public builder (-1 allowed),
 * else to the declared shape through the primitive builder. */
static bool b_reshape_expand(ctx *c, sm_op op, smelt_node *out) {
  smelt_node x;
  int64_t dims[SMELT_MAX_RANK];
  int n;
  bool present;
  if (!operands(c, 1, &x) ||
      !attr_list(c, "shape", false, SMELT_MAX_RANK, -1, INT64_MAX, dims, &n, &present) ||
      !attrs_done(c))
    return false;
  if (present) {
    *out = op == OP_RESHAPE ? smelt_reshape(c->g, x, n, dims) : smelt_expand(c->g, x, n, dims);
    return true;
  }
  if (!need_type(c)) return false;
  *out = op == OP_RESHAPE ? sm_reshape(c->g, x, c->L->rank, c->L->dims)
                          : sm_expand(c->g, x, c->L->rank, c->L->dims);
  return true;
}

static bool b_permute(ctx *c, smelt_node *out) {
  smelt_node x;
  int64_t v[SMELT_MAX_RANK];
  int perm[SMELT_MAX_RANK], n;
  if (!operands(c, 1, &x) ||
      !attr_list(c, "perm", true, SMELT_MAX_RANK, INT_MIN, INT_MAX, v, &n, NULL) ||
      !attrs_done(c) || !per_axis(c, "perm", n, x))
    return false;
  for (int i = 0; i < n; i++) perm[i] = (int)v[i];
  *out = smelt_permute(c->g, x, perm);
  return true;
}

static bool b_slice(ctx *c, smelt_node *out) {
  smelt_node x;
  if (!operands(c, 1, &x)) return false;
  if (attr_get(c, "axis")) {
    /* one axis: axis=A start=S stop=E step=K */
    int axis;
    int64_t start, stop, step;
    if (!attr_int(c, "axis", true, 0, &axis) ||
        !attr_i64(c, "start", false, 0, INT64_MIN, INT64_MAX, &start) ||
        !attr_i64(c, "stop", false, SMELT_END, INT64_MIN, INT64_MAX, &stop) ||
        !attr_i64(c, "step", false, 1, INT64_MIN, INT64_MAX, &step) || !attrs_done(c))
      return false;
    *out = smelt_slice_axis(c->g, x, axis, start, stop, step);
    return true;
  }
  int64_t v[3][SMELT_MAX_RANK];
  int n[3];
  bool present[3];
  static const char *const keys[3] = {"start", "stop", "step"};
  for (int k = 0; k < 3; k++)
    if (!attr_list(c, keys[k], false, SMELT_MAX_RANK, INT64_MIN, INT64_MAX, v[k], &n[k],
                   &present[k]))
      return false;
  if (!attrs_done(c)) return false;
  for (int k = 0; k < 3; k++)
    if (present[k] && !per_axis(c, keys[k], n[k], x)) return false;
  *out = smelt_slice(c->g, x, present[0] ? v[0] : NULL, present[1] ? v[1] : NULL,
                     present[2] ? v[2] : NULL);
  return true;
}

static bool b_flip(ctx *c, smelt_node *out) {
  smelt_node x;
  int axes[SMELT_MAX_RANK], n;
  if (!operands(c, 1, &x) || !attr_axes(c, "axes", true, axes, &n) || !attrs_done(c)) return false;
  *out = smelt_flip(c->g, x, n, axes);
  return true;
}

static bool b_unfold(ctx *c, smelt_node *out) {
  smelt_node x;
  int axis;
  int64_t size, step;
  if (!operands(c, 1, &x) || !attr_int(c, "axis", true, 0, &axis) ||
      !attr_i64(c, "size", true, 0, INT64_MIN, INT64_MAX, &size) ||
      !attr_i64(c, "step", false, 1, INT64_MIN, INT64_MAX, &step) || !attrs_done(c))
    return false;
  *out = smelt_unfold(c->g, x, axis, size, step);
  return true;
}

static bool b_pad(ctx *c, smelt_node *out) {
  smelt_node x;
  int64_t lo[SMELT_MAX_RANK], hi[SMELT_MAX_RANK];
  int nlo, nhi;
  double pv;
  if (!operands(c, 1, &x) ||
      !attr_list(c, "lo", true, SMELT_MAX_RANK, INT64_MIN, INT64_MAX, lo, &nlo, NULL) ||
      !attr_list(c, "hi", true, SMELT_MAX_RANK, INT64_MIN, INT64_MAX, hi, &nhi, NULL) ||
      !attr_num(c, "value", false, 0, &pv) || !attrs_done(c) || !per_axis(c, "lo", nlo, x) ||
      !per_axis(c, "hi", nhi, x))
    return false;
  *out = smelt_pad(c->g, x, lo, hi, pv);
  return true;
}

/* concat and stack: any number of operands along axis (default 0). */
static bool b_join(ctx *c, bool stack, smelt_node *out) {
  int axis;
  size_t n = c->L->npos;
  if (!count_operands(c, 1, SIZE_MAX) || !attr_int(c, "axis", false, 0, &axis) || !attrs_done(c))
    return false;
  if (n > INT_MAX) return fail_at(c->P, op_pos(c), "%s: too many operands", c->opname);
  smelt_node *xs = sm_malloc(n * sizeof *xs);
  if (!xs) return oom(c->P, op_pos(c));
  bool ok = true;
  for (size_t i = 0; i < n && ok; i++) ok = operand(c, i, &xs[i]);
  if (ok)
    *out = stack ? smelt_stack(c->g, (int)n, xs, axis) : smelt_concat(c->g, (int)n, xs, axis);
  sm_free(xs);
  return ok;
}

static bool b_gather(ctx *c, smelt_node *out) {
  smelt_node xi[2];
  int axis;
  if (!operands(c, 2, xi) || !attr_int(c, "axis", true, 0, &axis) || !attrs_done(c)) return false;
  *out = smelt_gather(c->g, xi[0], axis, xi[1]);
  return true;
}

static bool b_scatter(ctx *c, smelt_node *out) {
  smelt_node xi[2];
  int axis;
  if (!operands(c, 2, xi) || !attr_int(c, "axis", true, 0, &axis) || !attrs_done(c) ||
      !need_type(c))
    return false;
  *out = sm_scatter_add(c->g, c->L->rank, c->L->dims, axis, xi[0], xi[1]);
  return true;
}

static bool b_reduce(ctx *c, sm_op op, smelt_node *out) {
  smelt_node x;
  int axes[SMELT_MAX_RANK], n;
  if (!operands(c, 1, &x) || !attr_axes(c, "axes", false, axes, &n) || !attrs_done(c))
    return false;
  *out = sm_reduce(c->g, op, x, n, axes);
  return true;
}

static bool b_argreduce(ctx *c, sm_op op, smelt_node *out) {
  smelt_node x;
  int axis;
  if (!operands(c, 1, &x) || !attr_int(c, "axis", true, 0, &axis) || !attrs_done(c)) return false;
  *out = sm_argreduce(c->g, op, x, axis);
  return true;
}

static bool b_where(ctx *c, smelt_node *out) {
  smelt_node v[3];
  if (!operands(c, 3, v) || !attrs_done(c)) return false;
  *out = smelt_where(c->g, v[0], v[1], v[2]);
  return true;
}

/* A primitive op, by its class and attribute format in sm_ops. */
static bool build_primitive(ctx *c, sm_op op, smelt_node *out) {
  const sm_op_info *info = &sm_ops[op];
  switch (info->cls) {
  case OPC_SOURCE:
    if (op == OP_CONST) return b_const(c, out);
    if (op == OP_IOTA) return b_iota(c, out);
    if (op == OP_RAND || op == OP_RANDN) return b_rng(c, op, out);
    if (op == OP_TRAINING) {
      if (!operands(c, 0, NULL) || !attrs_done(c)) return false;
      *out = sm_training(c->g);
      return true;
    }
    return fail_at(c->P, op_pos(c), "%s is declared as '%s %%name : dtype[shape]'", info->name,
                   info->name);
  case OPC_UNARY:
    if (op == OP_CAST) return b_cast(c, out);
    if (!unary_builders[op]) break;
    {
      smelt_node x;
      if (!operands(c, 1, &x) || !attrs_done(c)) return false;
      *out = unary_builders[op](c->g, x);
      return true;
    }
  case OPC_BINARY:
  case OPC_MATMUL:
  case OPC_ASSIGN:
    if (!binary_builders[op]) break;
    {
      smelt_node ab[2];
      if (!operands(c, 2, ab) || !attrs_done(c)) return false;
      *out = binary_builders[op](c->g, ab[0], ab[1]);
      return true;
    }
  case OPC_TERNARY: return b_where(c, out);
  case OPC_REDUCE: return b_reduce(c, op, out);
  case OPC_ARGREDUCE: return b_argreduce(c, op, out);
  case OPC_VIEW:
    switch (info->attrs) {
    case ATF_NONE: return b_reshape_expand(c, op, out);
    case ATF_PERM: return b_permute(c, out);
    case ATF_SLICE: return b_slice(c, out);
    case ATF_AXES: return b_flip(c, out);
    case ATF_UNFOLD: return b_unfold(c, out);
    default: break;
    }
    break;
  case OPC_PAD: return b_pad(c, out);
  case OPC_CONCAT: return b_join(c, false, out);
  case OPC_GATHER: return b_gather(c, out);
  case OPC_SCATTER: return b_scatter(c, out);
  }
  return fail_at(c->P, op_pos(c), "%s cannot be written in text", info->name);
}

/* -------------------------------------------------------------- sugar */

typedef struct sugar sugar;
typedef bool (*sugar_fn)(ctx *c, const sugar *s, smelt_node *out);
struct sugar {
  const char *name;
  sugar_fn build;
  union {
    un_fn un;
    bin_fn bin;
    red_fn red;
    vs_fn vs;
    arg_fn arg;
    ax_fn ax;
    sel_fn sel;
    fill_fn fill;
  } f;
};

static bool s_unary(ctx *c, const sugar *s, smelt_node *out) {
  smelt_node x;
  if (!operands(c, 1, &x) || !attrs_done(c)) return false;
  *out = s->f.un(c->g, x);
  return true;
}

static bool s_binary(ctx *c, const sugar *s, smelt_node *out) {
  smelt_node ab[2];
  if (!operands(c, 2, ab) || !attrs_done(c)) return false;
  *out = s->f.bin(c->g, ab[0], ab[1]);
  return true;
}

static bool s_reduce(ctx *c, const sugar *s, smelt_node *out) {
  smelt_node x;
  int axes[SMELT_MAX_RANK], n;
  bool keepdim;
  if (!operands(c, 1, &x) || !attr_axes(c, "axes", false, axes, &n) ||
      !attr_bool(c, "keepdim", false, &keepdim) || !attrs_done(c))
    return false;
  *out = s->f.red(c->g, x, n, axes, keepdim);
  return true;
}

static bool s_varstd(ctx *c, const sugar *s, smelt_node *out) {
  smelt_node x;
  int axes[SMELT_MAX_RANK], n;
  bool keepdim;
  int64_t corr;
  if (!operands(c, 1, &x) || !attr_axes(c, "axes", false, axes, &n) ||
      !attr_i64(c, "correction", false, 1, INT64_MIN, INT64_MAX, &corr) ||
      !attr_bool(c, "keepdim", false, &keepdim) || !attrs_done(c))
    return false;
  *out = s->f.vs(c->g, x, n, axes, corr, keepdim);
  return true;
}

static bool s_argfn(ctx *c, const sugar *s, smelt_node *out) {
  smelt_node x;
  int axis;
  bool keepdim;
  if (!operands(c, 1, &x) || !attr_int(c, "axis", true, 0, &axis) ||
      !attr_bool(c, "keepdim", false, &keepdim) || !attrs_done(c))
    return false;
  *out = s->f.arg(c->g, x, axis, keepdim);
  return true;
}

static bool s_axisfn(ctx *c, const sugar *s, smelt_node *out) {
  smelt_node x;
  int axis;
  if (!operands(c, 1, &x) || !attr_int(c, "axis", true, 0, &axis) || !attrs_done(c)) return false;
  *out = s->f.ax(c->g, x, axis);
  return true;
}

/* index_select and take_along_axis: operands (x, index), axis= */
static bool s_select(ctx *c, const sugar *s, smelt_node *out) {
  smelt_node xi[2];
  int axis;
  if (!operands(c, 2, xi) || !attr_int(c, "axis", true, 0, &axis) || !attrs_done(c)) return false;
  *out = s->f.sel(c->g, xi[0], axis, xi[1]);
  return true;
}

static smelt_node take_along(smelt_graph *g, smelt_node x, int axis, smelt_node index) {
  return smelt_take_along_axis(g, x, index, axis);
}

static bool s_clamp(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  smelt_node x;
  double lo, hi;
  if (!operands(c, 1, &x) || !attr_num(c, "lo", false, -INFINITY, &lo) ||
      !attr_num(c, "hi", false, INFINITY, &hi) || !attrs_done(c))
    return false;
  *out = smelt_clamp(c->g, x, lo, hi);
  return true;
}

static bool s_transpose(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  smelt_node x;
  int a0, a1;
  if (!operands(c, 1, &x) || !attr_int(c, "axis0", true, 0, &a0) ||
      !attr_int(c, "axis1", true, 0, &a1) || !attrs_done(c))
    return false;
  *out = smelt_transpose(c->g, x, a0, a1);
  return true;
}

static bool s_squeeze(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  smelt_node x;
  int axes[SMELT_MAX_RANK], n;
  if (!operands(c, 1, &x) || !attr_axes(c, "axes", false, axes, &n) || !attrs_done(c))
    return false;
  *out = smelt_squeeze(c->g, x, n, axes);
  return true;
}

static bool s_flatten(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  smelt_node x;
  int a0, a1;
  if (!operands(c, 1, &x) || !attr_int(c, "start_axis", false, 0, &a0) ||
      !attr_int(c, "end_axis", false, -1, &a1) || !attrs_done(c))
    return false;
  *out = smelt_flatten(c->g, x, a0, a1);
  return true;
}

static bool s_stack(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  return b_join(c, true, out);
}

static bool s_one_hot(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  smelt_node x;
  int64_t k;
  if (!operands(c, 1, &x) || !attr_i64(c, "num_classes", true, 0, INT64_MIN, INT64_MAX, &k) ||
      !attrs_done(c))
    return false;
  *out = smelt_one_hot(c->g, x, k);
  return true;
}

static bool s_dropout(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  smelt_node x;
  double p;
  uint64_t seed;
  bool training;
  if (!operands(c, 1, &x) || !attr_num(c, "p", true, 0, &p) ||
      !attr_u64(c, "seed", false, 0, &seed) || !attr_bool(c, "training", false, &training) ||
      !attrs_done(c))
    return false;
  *out = smelt_dropout(c->g, x, p, seed, training);
  return true;
}

/* key=N or key=[H,W] (PyTorch's int-or-pair); false on error. *given says
 * whether it was written (out keeps the default otherwise). */
static bool attr_pair(ctx *c, const char *key, int64_t lo, int64_t out[2], bool *given) {
  int64_t v[2];
  int n;
  bool present;
  if (!attr_list(c, key, false, 2, lo, INT32_MAX, v, &n, &present)) return false;
  if (given) *given = present;
  if (!present) return true;
  if (n == 0) return fail_at(c->P, op_pos(c), "%s: %s needs one or two integers", c->opname, key);
  out[0] = v[0];
  out[1] = n == 2 ? v[1] : v[0];
  return true;
}

/* conv2d %x, %w[, %b] stride= padding= dilation= groups= */
static bool s_conv2d(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  smelt_node xwb[3] = {SMELT_INVALID, SMELT_INVALID, SMELT_INVALID};
  int64_t stride[2] = {1, 1}, padding[2] = {0, 0}, dilation[2] = {1, 1}, groups;
  if (!count_operands(c, 2, 3)) return false;
  for (size_t i = 0; i < c->L->npos; i++)
    if (!operand(c, i, &xwb[i])) return false;
  if (!attr_pair(c, "stride", INT32_MIN, stride, NULL) ||
      !attr_pair(c, "padding", INT32_MIN, padding, NULL) ||
      !attr_pair(c, "dilation", INT32_MIN, dilation, NULL) ||
      !attr_i64(c, "groups", false, 1, INT64_MIN, INT64_MAX, &groups) || !attrs_done(c))
    return false;
  *out = smelt_conv2d(c->g, xwb[0], xwb[1], xwb[2], stride, padding, dilation, groups);
  return true;
}

/* max_pool2d / avg_pool2d %x kernel= stride= padding= [dilation=]
 * ceil_mode= [count_include_pad=] */
static bool s_pool2d(ctx *c, const sugar *s, smelt_node *out) {
  smelt_node x;
  int64_t kernel[2] = {0, 0}, stride[2], padding[2] = {0, 0}, dilation[2] = {1, 1};
  bool have_kernel, have_stride, ceil_mode, include_pad = true;
  bool is_max = !strcmp(s->name, "max_pool2d");
  if (!operands(c, 1, &x) || !attr_pair(c, "kernel", INT32_MIN, kernel, &have_kernel) ||
      !attr_pair(c, "stride", INT32_MIN, stride, &have_stride) ||
      !attr_pair(c, "padding", INT32_MIN, padding, NULL) ||
      (is_max && !attr_pair(c, "dilation", INT32_MIN, dilation, NULL)) ||
      !attr_bool(c, "ceil_mode", false, &ceil_mode) ||
      (!is_max && !attr_bool(c, "count_include_pad", true, &include_pad)) || !attrs_done(c))
    return false;
  if (!have_kernel) return missing(c, "kernel", "[KH,KW]");
  const int64_t *st = have_stride ? stride : NULL;
  *out = is_max ? smelt_max_pool2d(c->g, x, kernel, st, padding, dilation, ceil_mode)
                : smelt_avg_pool2d(c->g, x, kernel, st, padding, ceil_mode, include_pad);
  return true;
}

/* batch_norm %x[, %weight, %bias[, %running_mean, %running_var]]
 * training= momentum= eps= (the running statistics' updates are assign
 * lines of their own in text) */
static bool s_batch_norm(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  smelt_node v[5] = {SMELT_INVALID, SMELT_INVALID, SMELT_INVALID, SMELT_INVALID, SMELT_INVALID};
  double momentum, eps;
  bool training;
  if (!count_operands(c, 1, 5)) return false;
  size_t n = c->L->npos;
  if (n == 2 || n == 4)
    return fail_at(c->P, op_pos(c),
                   "batch_norm takes %%x, then optionally %%weight, %%bias, then optionally "
                   "%%running_mean, %%running_var (1, 3 or 5 operands), got %zu",
                   n);
  for (size_t i = 0; i < n; i++)
    if (!operand(c, i, &v[i])) return false;
  if (!attr_bool(c, "training", true, &training) ||
      !attr_num(c, "momentum", false, 0.1, &momentum) ||
      !attr_num(c, "eps", false, 1e-5, &eps) || !attrs_done(c))
    return false;
  *out = smelt_batch_norm(c->g, v[0], v[1], v[2], v[3], v[4], training, momentum, eps, NULL);
  return true;
}

static bool s_broadcast_to(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  smelt_node x;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  if (!operands(c, 1, &x) || !source_shape(c, &rank, dims) || !attrs_done(c)) return false;
  *out = smelt_broadcast_to(c->g, x, rank, dims);
  return true;
}

/* zeros / ones: shape and dtype from shape= dtype= or the declared type */
static bool s_fill(ctx *c, const sugar *s, smelt_node *out) {
  smelt_dtype dt;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  if (!count_operands(c, 0, 0) || !source_dtype(c, SMELT_F32, &dt) ||
      !source_shape(c, &rank, dims) || !attrs_done(c))
    return false;
  *out = s->f.fill(c->g, dt, rank, dims);
  return true;
}

static bool s_full(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  smelt_dtype dt;
  int rank;
  int64_t dims[SMELT_MAX_RANK];
  double v;
  if (!count_operands(c, 0, 0) || !attr_num(c, "value", true, 0, &v) ||
      !source_dtype(c, SMELT_F32, &dt) || !source_shape(c, &rank, dims) || !attrs_done(c))
    return false;
  *out = smelt_full(c->g, dt, rank, dims, v);
  return true;
}

static bool s_arange(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  smelt_dtype dt;
  double start, stop, step;
  /* as torch.arange: i64 when every bound is written as an integer */
  bool ints = true;
  static const char *const keys[3] = {"start", "stop", "step"};
  for (int k = 0; k < 3; k++) {
    attr *a = attr_get(c, keys[k]);
    if (a && (a->flag || !elem_is_int_syntax(c->P, &a->v.e))) ints = false;
  }
  if (!count_operands(c, 0, 0) || !attr_num(c, "start", false, 0, &start) ||
      !attr_num(c, "stop", true, 0, &stop) || !attr_num(c, "step", false, 1, &step) ||
      !source_dtype(c, ints ? SMELT_I64 : SMELT_F32, &dt) || !attrs_done(c))
    return false;
  *out = smelt_arange(c->g, dt, start, stop, step);
  return true;
}

static bool s_linspace(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  smelt_dtype dt;
  double start, stop;
  int64_t n;
  if (!count_operands(c, 0, 0) || !attr_num(c, "start", true, 0, &start) ||
      !attr_num(c, "stop", true, 0, &stop) ||
      !attr_i64(c, "n", true, 0, INT64_MIN, INT64_MAX, &n) || !source_dtype(c, SMELT_F32, &dt) ||
      !attrs_done(c))
    return false;
  *out = smelt_linspace(c->g, dt, start, stop, n);
  return true;
}

static bool s_eye(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  smelt_dtype dt;
  int64_t n, m;
  if (!count_operands(c, 0, 0) || !attr_i64(c, "n", true, 0, INT64_MIN, INT64_MAX, &n) ||
      !attr_i64(c, "m", false, n, INT64_MIN, INT64_MAX, &m) || !source_dtype(c, SMELT_F32, &dt) ||
      !attrs_done(c))
    return false;
  *out = smelt_eye(c->g, dt, n, m);
  return true;
}

/* Public-API names that are not primitives. Keywords are the parameter
 * names of the C functions (docs/text-format.md). */
/* grad %y, %x [, %seed]: the gradient of y (a scalar, or any shape with a
 * seed: a vector-Jacobian product) with respect to x, expanded into the
 * backward graph. */
static bool s_grad(ctx *c, const sugar *s, smelt_node *out) {
  (void)s;
  if (!count_operands(c, 2, 3) || !attrs_done(c)) return false;
  smelt_node v[3] = {SMELT_INVALID, SMELT_INVALID, SMELT_INVALID};
  for (size_t i = 0; i < c->L->npos; i++)
    if (!operand(c, i, &v[i])) return false;
  smelt_vjp(c->g, v[0], v[2], 1, &v[1], out, 0);
  return true;
}

static const sugar sugars[] = {
    {"sum", s_reduce, {.red = smelt_sum}},
    {"mean", s_reduce, {.red = smelt_mean}},
    {"prod", s_reduce, {.red = smelt_prod}},
    {"max", s_reduce, {.red = smelt_max}},
    {"min", s_reduce, {.red = smelt_min}},
    {"logsumexp", s_reduce, {.red = smelt_logsumexp}},
    {"var", s_varstd, {.vs = smelt_var}},
    {"std", s_varstd, {.vs = smelt_std}},
    {"argmax", s_argfn, {.arg = smelt_argmax}},
    {"argmin", s_argfn, {.arg = smelt_argmin}},
    {"softmax", s_axisfn, {.ax = smelt_softmax}},
    {"log_softmax", s_axisfn, {.ax = smelt_log_softmax}},
    {"unsqueeze", s_axisfn, {.ax = smelt_unsqueeze}},
    {"gelu", s_unary, {.un = smelt_gelu}},
    {"clamp", s_clamp, {.un = NULL}},
    {"cross_entropy", s_binary, {.bin = smelt_cross_entropy}},
    {"mse_loss", s_binary, {.bin = smelt_mse_loss}},
    {"embedding", s_binary, {.bin = smelt_embedding}},
    {"transpose", s_transpose, {.un = NULL}},
    {"squeeze", s_squeeze, {.un = NULL}},
    {"flatten", s_flatten, {.un = NULL}},
    {"stack", s_stack, {.un = NULL}},
    {"index_select", s_select, {.sel = smelt_index_select}},
    {"take_along_axis", s_select, {.sel = take_along}},
    {"one_hot", s_one_hot, {.un = NULL}},
    {"dropout", s_dropout, {.un = NULL}},
    {"conv2d", s_conv2d, {.un = NULL}},
    {"max_pool2d", s_pool2d, {.un = NULL}},
    {"avg_pool2d", s_pool2d, {.un = NULL}},
    {"batch_norm", s_batch_norm, {.un = NULL}},
    {"broadcast_to", s_broadcast_to, {.un = NULL}},
    {"zeros", s_fill, {.fill = smelt_zeros}},
    {"ones", s_fill, {.fill = smelt_ones}},
    {"full", s_full, {.un = NULL}},
    {"arange", s_arange, {.un = NULL}},
    {"linspace", s_linspace, {.un = NULL}},
    {"eye", s_eye, {.un = NULL}},
    {"grad", s_grad, {.un = NULL}},
};

/* ================================================================ statements */

/* After a builder call: its error becomes the parse error at the op. */
static bool built(ctx *c, smelt_node h) {
  const char *err = smelt_graph_error(c->g);
  if (err) return fail_at(c->P, op_pos(c), "%s", err);
  if (!sm_get(c->g, h)) return fail_at(c->P, op_pos(c), "%s: no node was built", c->opname);
  return true;
}

/* The declared type must be exactly what the builder inferred. */
static bool check_type(ctx *c, smelt_node h) {
  if (!c->L->has_type) return true;
  const sm_node *n = sm_get(c->g, h);
  if (n->dtype == c->L->dt && n->rank == c->L->rank &&
      memcmp(n->shape, c->L->dims, sizeof(int64_t) * (size_t)n->rank) == 0)
    return true;
  char want[160], got[160];
  type_str(want, sizeof want, c->L->dt, c->L->rank, c->L->dims);
  type_str(got, sizeof got, (smelt_dtype)n->dtype, n->rank, n->shape);
  return fail_at(c->P, c->L->type_tok.pos, "declared %s but the op gives %s", want, got);
}

/* %id = op operands attrs [: type] */
static bool parse_node_line(parser *P) {
  line L;
  memset(&L, 0, sizeof L);
  L.id = P->cur;
  if (!id_fresh(P, L.id) || !next(P)) return false;
  if (P->cur.kind != T_EQ) return expected(P, "'=' after the id");
  if (!next(P)) return false;
  if (P->cur.kind != T_IDENT) return expected(P, "an op name");
  L.op = P->cur;
  if (!next(P)) return false;
  bool ok = parse_line_rest(P, &L);
  smelt_node h = SMELT_INVALID;
  char opname[MAX_TOKEN + 1];
  elem oe = to_elem(L.op);
  elem_text(P, &oe, opname);
  ctx c = {P, &L, P->g, opname};
  if (ok) {
    sm_op op = sm_op_by_name(opname);
    if (op != OP_COUNT) {
      ok = build_primitive(&c, op, &h);
    } else {
      const sugar *s = NULL;
      for (size_t i = 0; i < sizeof sugars / sizeof sugars[0]; i++)
        if (strcmp(sugars[i].name, opname) == 0) s = &sugars[i];
      if (s)
        ok = s->build(&c, s, &h);
      else
        ok = fail_at(P, L.op.pos, "unknown op '%s'", opname);
    }
  }
  ok = ok && attrs_done(&c) && built(&c, h) && check_type(&c, h);
  if (ok && !id_is_number(P, L.id)) {
    /* A named id names the node; when the op gave back a node that has a
     * name already (a no-op cast or reshape), the id is an alias of it. */
    const sm_node *n = sm_get(P->g, h);
    if (!n->name) {
      char name[MAX_TOKEN + 1];
      memcpy(name, P->src + L.id.pos, L.id.len);
      name[L.id.len] = 0;
      smelt_set_name(P->g, h, name);
      const char *err = smelt_graph_error(P->g);
      if (err) ok = fail_at(P, tok_start(L.id), "%s", err);
    }
  }
  if (ok) ok = id_insert(P, L.id, h);
  line_free(&L);
  return ok;
}

/* input %name : type  |  param %name : type [init=...] */
static bool parse_decl(parser *P) {
  bool is_param = tok_is(P, P->cur, "param");
  const char *what = is_param ? "param" : "input";
  size_t kw = P->cur.pos;
  if (!next(P)) return false;
  if (P->cur.kind != T_ID) return expected(P, "a %name after the keyword");
  tok id = P->cur;
  if (id_is_number(P, id))
    return fail_at(P, tok_start(id), "an %s needs a name, not a number (%%%.*s)", what, (int)id.len,
                   P->src + id.pos);
  if (!id_fresh(P, id) || !next(P)) return false;
  if (P->cur.kind != T_COLON) return expected(P, "':' and the type");
  if (!next(P)) return false;
  line L;
  memset(&L, 0, sizeof L);
  L.op.pos = kw;
  L.type_tok = P->cur;
  L.has_type = true;
  bool ok = parse_type(P, &L.dt, &L.rank, L.dims);
  ok = ok && parse_attrs(P, &L) && expect_end(P);
  char name[MAX_TOKEN + 1];
  memcpy(name, P->src + id.pos, id.len);
  name[id.len] = 0;
  ctx c = {P, &L, P->g, what};
  smelt_node h = SMELT_INVALID;
  if (ok && !is_param) {
    ok = attrs_done(&c);
    if (ok) h = smelt_input(P->g, name, L.dt, L.rank, L.dims);
  } else if (ok) {
    smelt_init init = smelt_init_zeros();
    void *data = NULL;
    attr *a = attr_get(&c, "init");
    ok = attrs_done(&c);
    if (ok && a) {
      value *v = &a->v;
      if (a->flag || (v->k != V_WORD && v->k != V_CALL))
        ok = fail_at(P, a->key.pos,
                     "init: expected zeros, ones, constant(V), normal(mean=, std=, seed=), "
                     "uniform(lo=, hi=, seed=) or data([...])");
      else if (v->k == V_WORD && elem_is(P, &v->e, "zeros"))
        init = smelt_init_zeros();
      else if (v->k == V_WORD && elem_is(P, &v->e, "ones"))
        init = smelt_init_ones();
      else {
        /* calls: the argument slots by kind */
        static const struct {
          const char *name;
          int nargs;
          const char *keys[3];
        } kinds[] = {
            {"constant", 1, {"value", NULL, NULL}},
            {"normal", 3, {"mean", "std", "seed"}},
            {"uniform", 3, {"lo", "hi", "seed"}},
            {"data", 1, {"values", NULL, NULL}},
        };
        int kind = -1;
        for (int k = 0; k < 4; k++)
          if (v->k == V_CALL && elem_is(P, &v->e, kinds[k].name)) kind = k;
        if (kind < 0) {
          char w[MAX_TOKEN + 1];
          elem_text(P, &v->e, w);
          ok = fail_at(P, v->e.pos, "unknown initializer '%s' (zeros, ones, constant, normal, "
                                    "uniform, data)", w);
        }
        const value *slot[3] = {NULL, NULL, NULL};
        for (int i = 0; ok && i < v->nargs; i++) {
          const callarg *ca = &v->args[i];
          int k = i;
          if (ca->has_key) {
            k = -1;
            for (int j = 0; j < kinds[kind].nargs; j++)
              if (elem_is(P, &ca->key, kinds[kind].keys[j])) k = j;
            if (k < 0)
              ok = fail_at(P, ca->key.pos, "%s has no argument '%.*s'", kinds[kind].name,
                           (int)ca->key.len, P->src + ca->key.pos);
          } else if (k >= kinds[kind].nargs) {
            ok = fail_at(P, elem_start(&ca->v.e), "%s takes %d argument%s", kinds[kind].name,
                         kinds[kind].nargs, kinds[kind].nargs == 1 ? "" : "s");
          }
          if (ok && slot[k])
            ok = fail_at(P, ca->has_key ? ca->key.pos : elem_start(&ca->v.e),
                         "%s: '%s' given twice", kinds[kind].name,
                         kinds[kind].keys[k]);
          if (ok) slot[k] = &ca->v;
        }
        for (int j = 0; ok && j < (kind >= 0 ? kinds[kind].nargs : 0); j++)
          if (!slot[j])
            ok = fail_at(P, v->e.pos, "%s needs %s", kinds[kind].name, kinds[kind].keys[j]);
        double num[2] = {0, 0};
        uint64_t seed = 0;
        if (ok && (kind == 0 || kind == 1 || kind == 2)) {
          int nnum = kind == 0 ? 1 : 2;
          for (int j = 0; ok && j < nnum; j++) {
            if (slot[j]->k != V_NUM && slot[j]->k != V_WORD)
              ok = fail_at(P, elem_start(&slot[j]->e), "%s: expected a number for %s",
                           kinds[kind].name, kinds[kind].keys[j]);
            else
              ok = elem_double(P, &slot[j]->e, &num[j], kinds[kind].keys[j]);
          }
          if (ok && kind != 0) {
            if (slot[2]->k != V_NUM)
              ok = fail_at(P, elem_start(&slot[2]->e), "%s: expected an integer for seed",
                           kinds[kind].name);
            else
              ok = elem_u64(P, &slot[2]->e, &seed, "seed");
          }
        }
        if (ok) {
          if (kind == 0) init = smelt_init_constant(num[0]);
          if (kind == 1) init = smelt_init_normal(num[0], num[1], seed);
          if (kind == 2) init = smelt_init_uniform(num[0], num[1], seed);
          if (kind == 3) {
            ok = literal_data(P, slot[0], L.dt, L.rank, L.dims, &data);
            init = smelt_init_data(data);
          }
        }
      }
    }
    if (ok) h = smelt_param(P->g, name, L.dt, L.rank, L.dims, init);
    sm_free(data);
  }
  if (ok) {
    const char *err = smelt_graph_error(P->g);
    if (err) ok = fail_at(P, kw, "%s", err);
  }
  if (ok) ok = id_insert(P, id, h);
  line_free(&L);
  return ok;
}

/* output NAME = %id */
static bool parse_output(parser *P) {
  size_t kw = P->cur.pos;
  if (!next(P)) return false;
  if (P->cur.kind != T_IDENT) return expected(P, "an output name");
  tok name_tok = P->cur;
  if (!next(P)) return false;
  if (P->cur.kind != T_EQ) return expected(P, "'=' after the output name");
  if (!next(P)) return false;
  if (P->cur.kind != T_ID) return expected(P, "a %id");
  tok id = P->cur;
  idslot *s = id_find(P, id);
  if (!s) return fail_at(P, tok_start(id), "unknown id %%%.*s", (int)id.len, P->src + id.pos);
  smelt_node h = s->h;
  if (!next(P)) return false;
  if (!at_line_end(P)) return expected(P, "the end of the line");
  char name[MAX_TOKEN + 1];
  memcpy(name, P->src + name_tok.pos, name_tok.len);
  name[name_tok.len] = 0;
  smelt_output(P->g, name, h);
  const char *err = smelt_graph_error(P->g);
  if (err) return fail_at(P, kw, "%s", err);
  return true;
}

/* '[' items ']' after a program's outputs= or updates=: output names, or
 * %ids when ids is true. The tokens are appended to *items. */
static bool parse_program_list(parser *P, bool ids, tok **items, size_t *n, size_t *cap) {
  size_t open = P->cur.pos;
  if (P->cur.kind != T_LBRACK)
    return expected(P, ids ? "'[' and a list of %ids" : "'[' and a list of output names");
  if (!next(P)) return false;
  if (P->cur.kind == T_RBRACK) return next(P);
  for (;;) {
    if (at_line_end(P)) return fail_at(P, open, "unterminated list (missing ']')");
    if (P->cur.kind != (ids ? T_ID : T_IDENT))
      return expected(P, ids ? "a %id (an assign node)" : "an output name");
    if (*n >= INT_MAX / 2) return fail_at(P, P->cur.pos, "too many items in the list");
    if (!grow((void **)items, cap, *n, sizeof **items)) return oom(P, P->cur.pos);
    (*items)[(*n)++] = P->cur;
    if (!next(P)) return false;
    if (P->cur.kind == T_COMMA) {
      if (!next(P)) return false;
      continue;
    }
    if (P->cur.kind == T_RBRACK) return next(P);
    if (at_line_end(P)) return fail_at(P, open, "unterminated list (missing ']')");
    return expected(P, "',' or ']' in the list");
  }
}

/* [eval] program NAME [outputs=[a, b]] [updates=[%7, %9]] */
static bool parse_program(parser *P) {
  bool eval = tok_is(P, P->cur, "eval");
  size_t kw = P->cur.pos;
  if (eval) {
    if (!next(P)) return false;
    if (!tok_is(P, P->cur, "program")) return expected(P, "'program' after 'eval'");
  }
  if (!next(P)) return false;
  if (P->cur.kind != T_IDENT) return expected(P, "a program name");
  if (P->peek.kind == T_EQ)
    return fail_at(P, P->cur.pos, "expected a program name before '%.*s='", (int)P->cur.len,
                   P->src + P->cur.pos);
  tok name_tok = P->cur;
  if (!next(P)) return false;
  tok *outs = NULL, *upds = NULL;
  size_t nout = 0, out_cap = 0, nupd = 0, upd_cap = 0;
  bool have_out = false, have_upd = false, ok = true;
  while (ok && P->cur.kind == T_IDENT) {
    tok key = P->cur;
    bool is_out = tok_is(P, key, "outputs");
    if (!is_out && !tok_is(P, key, "updates")) {
      ok = fail_at(P, key.pos, "program has no attribute '%.*s' (outputs=[...], updates=[...])",
                   (int)key.len, P->src + key.pos);
      break;
    }
    if (is_out ? have_out : have_upd) {
      ok = fail_at(P, key.pos, "duplicate attribute '%.*s'", (int)key.len, P->src + key.pos);
      break;
    }
    *(is_out ? &have_out : &have_upd) = true;
    ok = next(P) && (P->cur.kind == T_EQ || expected(P, "'=' after the attribute name")) &&
         next(P) &&
         (is_out ? parse_program_list(P, false, &outs, &nout, &out_cap)
                 : parse_program_list(P, true, &upds, &nupd, &upd_cap));
  }
  ok = ok && expect_end(P);
  char **names = ok ? sm_calloc(nout ? nout : 1, sizeof *names) : NULL;
  smelt_node *nodes = ok ? sm_malloc(sizeof *nodes * (nupd ? nupd : 1)) : NULL;
  if (ok && (!names || !nodes)) ok = oom(P, kw);
  for (size_t k = 0; ok && k < nout; k++) {
    if (!(names[k] = sm_malloc((size_t)outs[k].len + 1))) {
      ok = oom(P, outs[k].pos);
      break;
    }
    memcpy(names[k], P->src + outs[k].pos, outs[k].len);
    names[k][outs[k].len] = 0;
  }
  for (size_t k = 0; ok && k < nupd; k++) {
    idslot *slot = id_find(P, upds[k]);
    if (!slot)
      ok = fail_at(P, tok_start(upds[k]), "unknown id %%%.*s", (int)upds[k].len,
                   P->src + upds[k].pos);
    else
      nodes[k] = slot->h;
  }
  if (ok) {
    char name[MAX_TOKEN + 1];
    memcpy(name, P->src + name_tok.pos, name_tok.len);
    name[name_tok.len] = 0;
    int culprit = -1;
    if (sm_graph_add_program(P->g, name, (int)nout, (const char *const *)names, (int)nupd, nodes,
                             eval, &culprit)) {
      /* the message at the token it is about */
      size_t pos = name_tok.pos;
      if (culprit >= 0 && (size_t)culprit < nout) pos = outs[culprit].pos;
      else if (culprit >= 0 && (size_t)culprit - nout < nupd)
        pos = tok_start(upds[(size_t)culprit - nout]);
      const char *err = smelt_graph_error(P->g);
      ok = fail_at(P, pos, "%s", err ? err : "program: cannot be declared");
    }
  }
  for (size_t k = 0; names && k < nout; k++) sm_free(names[k]);
  sm_free(names);
  sm_free(nodes);
  sm_free(outs);
  sm_free(upds);
  return ok;
}

static bool parse_statement(parser *P) {
  switch (P->cur.kind) {
  case T_NL: return next(P);
  case T_ID: return parse_node_line(P);
  case T_IDENT:
    if (tok_is(P, P->cur, "input") || tok_is(P, P->cur, "param")) return parse_decl(P);
    if (tok_is(P, P->cur, "output")) return parse_output(P);
    if (tok_is(P, P->cur, "program") || (tok_is(P, P->cur, "eval") && P->peek.kind == T_IDENT))
      return parse_program(P);
    if (P->peek.kind == T_EQ)
      return fail_at(P, P->cur.pos, "expected a node id: ids start with '%%' (%%%.*s)",
                     (int)P->cur.len, P->src + P->cur.pos);
    /* fall through */
  default:
    return expected(P, "a node ('%id = op ...'), 'input', 'param', 'output' or 'program'");
  }
}

smelt_graph *smelt_graph_parse(const char *text, size_t len, const char *filename, char *errbuf,
                               size_t errlen) {
  parser P;
  memset(&P, 0, sizeof P);
  P.src = text ? text : "";
  P.len = text ? len : 0;
  P.file = filename ? filename : "<input>";
  P.errbuf = errbuf;
  P.errlen = errlen;
  const struct lconv *lc = localeconv();
  P.decimal_point = lc && lc->decimal_point && lc->decimal_point[0] ? lc->decimal_point[0] : '.';
  if (errbuf && errlen) errbuf[0] = 0;

  if (!text && len) {
    fail_at(&P, 0, "no text (NULL)");
    return NULL;
  }
  size_t k = 0;
  while (k < P.len && (P.src[k] == ' ' || P.src[k] == '\t' || P.src[k] == '\r' || P.src[k] == '\n'))
    k++;
  if (k == P.len) {
    fail_at(&P, 0, "empty input");
    return NULL;
  }
  P.g = smelt_graph_new();
  if (!P.g) {
    oom(&P, 0);
    return NULL;
  }
  P.peek = lex(&P);
  if (next(&P))
    while (P.cur.kind != T_EOF && parse_statement(&P)) {
    }
  sm_free(P.ids);
  if (P.failed) {
    smelt_graph_free(P.g);
    return NULL;
  }
  return P.g;
}
