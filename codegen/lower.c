/* Lowering: one fusion group to one kernel of the kernel IR.
 *
 * Every member is built as a scalar value at coordinates: one index
 * expression per dim of the node (lin: an affine form over the domain
 * indices plus a few opaque i64 values with known ranges). Elementwise ops
 * map coordinates through; a chain of movement ops is composed into a stack
 * of strided views with masks (tinygrad's ShapeTracker): permute, expand,
 * slice, flip and pad change the top view, a reshape merges into it when
 * strides can express it (NumPy's no-copy reshape) and pushes a new view
 * otherwise. Evaluating the stack gives an element offset (affine when the
 * coordinates are) and a validity mask; between views the offset is
 * unravelled exactly term by term where the (mask-narrowed) ranges allow,
 * else with idiv/imod simplified by range analysis, and offsets recombine
 * the quotient/remainder pairs they meet. An idiv/imod of a domain index
 * that remains is removed by refining the domain: the axis is split
 * (outer, inner) and the group lowered again. docs/kernel-ir.md has the
 * rules, with the loop order. */
#include "lower.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

enum { KD = SMELT_MAX_RANK + 1, LT = 8, MAXVIEWS = 8, MAXCHAIN = 64 };

/* ------------------------------------------------------ index expressions */

/* c + sum coef[d]*i_d + sum w[j]*v_j, where v_j are i64 kernel values in
 * [tlo[j], thi[j]]. has_a: [alo, ahi] bounds the value wherever the
 * enclosing validity mask holds (a pad or concat proved it). */
typedef struct lin {
  int64_t c;
  int64_t coef[KD];
  int nt;
  int32_t tv[LT];
  int64_t tw[LT], tlo[LT], thi[LT];
  bool has_a;
  int64_t alo, ahi;
} lin;

/* -------------------------------------------------------- strided views */

typedef struct sview {
  int rank;
  int64_t shape[SMELT_MAX_RANK], st[SMELT_MAX_RANK], off;
  bool masked;
  int64_t mlo[SMELT_MAX_RANK], mhi[SMELT_MAX_RANK]; /* valid range per dim */
} sview;

typedef struct strk {
  int n;
  sview v[MAXVIEWS];
  bool dead; /* some mask is empty: every element is the fill value */
} strk;

/* --------------------------------------------------------------- context */

typedef struct memo_ent {
  uint32_t node;
  int32_t valid, value;
  lin *co; /* rank entries */
} memo_ent;

/* An idiv or imod the lowering emitted: value v = x / s or x % s, where x
 * is the lin whose value is num. s*(x/s) + x%s is x again (lin_addmul
 * recombines such pairs). */
typedef struct divrec {
  int32_t v, num;
  bool mod;
  int64_t s;
  lin x;
} divrec;

typedef struct lw {
  const sm_fusion *f;
  const smelt_graph *g;
  const sm_group *gr;
  sm_kernel *k;
  bool *member;
  int8_t *dep; /* per node: depends on an accumulator (-1 unknown) */
  int32_t *acc_of; /* per node: accumulator id + 1 */
  char *err;
  bool oom;
  int64_t zero[KD];
  /* The group's (logical) domain and its coordinates in the kernel's
   * axes: a refined axis (split into kernel axes outer..inner) is their
   * row-major combination. */
  int lnd;
  int64_t lext[KD];
  uint8_t lred[KD];
  lin lco[KD];
  int kaxis[KD]; /* the kernel axis of an unsplit logical axis, else -1 */
  int64_t rshape[KD]; /* the logical domain with reduced extents 1 (outer space) */
  memo_ent *memo;
  size_t nmemo, cap_memo;
  int32_t *mtab;
  size_t mtab_cap;
  divrec *recs;
  int nrecs, cap_recs;
} lw;

__attribute__((format(printf, 2, 3))) static int fail(lw *L, const char *fmt, ...) {
  if (!L->err && !L->oom) {
    va_list ap;
    va_start(ap, fmt);
    L->err = sm_vfmt(fmt, ap);
    va_end(ap);
    if (!L->err) L->oom = true;
  }
  return -1;
}

static bool failed(const lw *L) { return L->err || L->oom || L->k->oom; }

static const sm_node *node(const lw *L, uint32_t i) { return &L->g->nodes[i]; }

static void dense_strides(int rank, const int64_t *shape, int64_t *st) {
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; d--) {
    st[d] = s;
    s *= shape[d] ? shape[d] : 1;
  }
}

/* ------------------------------------------------------------ lin algebra */

static lin lin_cst(int64_t c) {
  lin e;
  memset(&e, 0, sizeof e);
  e.c = c;
  return e;
}

static lin lin_idx(int d) {
  lin e = lin_cst(0);
  e.coef[d] = 1;
  return e;
}

static lin lin_val(int v, int64_t lo, int64_t hi) {
  lin e = lin_cst(0);
  e.nt = 1;
  e.tv[0] = v;
  e.tw[0] = 1;
  e.tlo[0] = lo;
  e.thi[0] = hi;
  return e;
}

/* The range of e over the domain (and within its asserted bounds). */
static void lin_range(const lw *L, const lin *e, int64_t *lo, int64_t *hi) {
  int64_t l = e->c, h = e->c;
  for (int d = 0; d < L->k->ndim; d++) {
    int64_t m = L->k->extent[d] > 0 ? L->k->extent[d] - 1 : 0;
    int64_t x = e->coef[d] * m;
    if (x < 0) l += x;
    else h += x;
  }
  for (int j = 0; j < e->nt; j++) {
    int64_t a = e->tw[j] * e->tlo[j], b = e->tw[j] * e->thi[j];
    l += a < b ? a : b;
    h += a < b ? b : a;
  }
  if (e->has_a) {
    if (e->alo > l) l = e->alo;
    if (e->ahi < h) h = e->ahi;
  }
  *lo = l;
  *hi = h;
}

static int cst_i64(lw *L, int64_t v) { return sm_kv_const_i(L->k, SMELT_I64, v); }

/* The i64 value of e: one KV_AFFINE for the affine part, plus the opaque
 * terms with mul/add. */
static int lin_emit(lw *L, const lin *e) {
  sm_kernel *k = L->k;
  bool aff = e->c != 0 || e->nt == 0;
  for (int d = 0; d < k->ndim && !aff; d++) aff = e->coef[d] != 0;
  int acc = aff ? sm_kv_affine(k, e->c, k->ndim ? e->coef : L->zero) : -1;
  for (int j = 0; j < e->nt; j++) {
    int t = e->tw[j] == 1 ? e->tv[j] : sm_kv_elem(k, OP_MUL, SMELT_I64, e->tv[j], cst_i64(L, e->tw[j]), -1);
    acc = acc < 0 ? t : sm_kv_elem(k, OP_ADD, SMELT_I64, acc, t, -1);
  }
  return acc;
}

/* e as a single opaque term (when it has too many terms). */
static lin lin_collapse(lw *L, const lin *e) {
  int64_t lo, hi;
  lin_range(L, e, &lo, &hi);
  return lin_val(lin_emit(L, e), lo, hi);
}

static const divrec *rec_of(const lw *L, int v) {
  for (int i = 0; i < L->nrecs; i++)
    if (L->recs[i].v == v) return &L->recs[i];
  return NULL;
}

static void rec_add(lw *L, int v, int num, bool mod, int64_t s, const lin *x) {
  if (v < 0 || rec_of(L, v)) return;
  if (L->nrecs == L->cap_recs) {
    int cap = L->cap_recs ? 2 * L->cap_recs : 16;
    divrec *p = sm_realloc(L->recs, (size_t)cap * sizeof *p);
    if (!p) {
      L->oom = true;
      return;
    }
    L->recs = p;
    L->cap_recs = cap;
  }
  L->recs[L->nrecs++] = (divrec){v, num, mod, s, *x};
}

static void lin_addmul(lw *L, lin *e, const lin *x, int64_t s);

/* Undoes an unravel: W*(x/s) + w*(x%s) becomes w*x + (W - s*w)*(x/s) (a
 * row-major offset of coordinates that an earlier unravel produced: the
 * remainder goes, and the quotient too when W = s*w). The quotient may
 * also be x0/(s1*s) with x = x0/s1 (lin_div folds nested divisions). */
static void lin_recombine(lw *L, lin *e) {
  for (int i = 0; i < e->nt; i++) {
    const divrec *q = rec_of(L, e->tv[i]);
    if (!q || q->mod) continue;
    for (int j = 0; j < e->nt; j++) {
      const divrec *r = rec_of(L, e->tv[j]);
      if (!r || !r->mod) continue;
      const divrec *x = rec_of(L, r->num);
      bool direct = r->num == q->num && r->s == q->s;
      bool nested = x && !x->mod && x->num == q->num && x->s * r->s == q->s;
      if (!direct && !nested) continue;
      int64_t w = e->tw[j];
      e->tw[i] -= r->s * w;
      e->tw[j] = 0;
      int n = 0;
      for (int t = 0; t < e->nt; t++)
        if (e->tw[t]) {
          e->tv[n] = e->tv[t], e->tw[n] = e->tw[t], e->tlo[n] = e->tlo[t], e->thi[n] = e->thi[t];
          n++;
        }
      e->nt = n;
      lin xr = r->x;
      lin_addmul(L, e, &xr, w); /* recombines what that makes possible */
      return;
    }
  }
}

/* e += s * x */
static void lin_addmul(lw *L, lin *e, const lin *x, int64_t s) {
  e->has_a = false;
  if (s == 0) return;
  e->c += s * x->c;
  for (int d = 0; d < KD; d++) e->coef[d] += s * x->coef[d];
  for (int j = 0; j < x->nt; j++) {
    int i = 0;
    while (i < e->nt && e->tv[i] != x->tv[j]) i++;
    if (i == e->nt) {
      if (e->nt == LT) {
        *e = lin_collapse(L, e);
        i = e->nt;
      }
      e->tv[i] = x->tv[j];
      e->tw[i] = 0;
      e->tlo[i] = x->tlo[j];
      e->thi[i] = x->thi[j];
      e->nt++;
    }
    e->tw[i] += s * x->tw[j];
  }
  /* drop terms that cancelled */
  int n = 0;
  for (int j = 0; j < e->nt; j++)
    if (e->tw[j]) {
      e->tv[n] = e->tv[j], e->tw[n] = e->tw[j], e->tlo[n] = e->tlo[j], e->thi[n] = e->thi[j];
      n++;
    }
  e->nt = n;
  lin_recombine(L, e);
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}
static int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

/* Splits e into s*q + r: q takes the terms whose coefficients s divides. */
static void lin_split(const lin *e, int64_t s, lin *q, lin *r) {
  *q = lin_cst(floor_div(e->c, s));
  *r = lin_cst(floor_mod(e->c, s));
  for (int d = 0; d < KD; d++) {
    if (e->coef[d] % s == 0) q->coef[d] = e->coef[d] / s;
    else r->coef[d] = e->coef[d];
  }
  for (int j = 0; j < e->nt; j++) {
    lin *t = e->tw[j] % s == 0 ? q : r;
    int i = t->nt++;
    t->tv[i] = e->tv[j];
    t->tw[i] = e->tw[j] % s == 0 && t == q ? e->tw[j] / s : e->tw[j];
    t->tlo[i] = e->tlo[j];
    t->thi[i] = e->thi[j];
  }
}

static int64_t gcd64(int64_t a, int64_t b) {
  if (a < 0) a = -a;
  if (b < 0) b = -b;
  while (b) {
    int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* The largest g dividing s (g > 1) such that e = g*h + r with r in
 * [0, g) where valid: h takes the terms whose coefficients g divides
 * (divided by g) and the constant's multiple of g. Then e/s = h/(s/g) and
 * e%s = g*(h%(s/g)) + r: the divisions shrink or vanish. 0 when none. */
static int64_t lin_digits(lw *L, const lin *e, int64_t s, lin *h, lin *r) {
  int64_t cand[KD + LT + 1];
  int nc = 0;
  cand[nc++] = s;
  for (int i = 0; i < KD + LT; i++) {
    int64_t w = i < KD ? e->coef[i] : i - KD < e->nt ? e->tw[i - KD] : 0;
    int64_t g = w ? gcd64(w, s) : 0;
    if (g <= 1 || g >= s) continue;
    int j = 0;
    while (j < nc && cand[j] != g) j++;
    if (j == nc) cand[nc++] = g;
  }
  /* largest first */
  for (int i = 1; i < nc; i++)
    for (int j = i; j > 0 && cand[j] > cand[j - 1]; j--) {
      int64_t t = cand[j];
      cand[j] = cand[j - 1];
      cand[j - 1] = t;
    }
  for (int i = 0; i < nc; i++) {
    lin_split(e, cand[i], h, r);
    int64_t rlo, rhi;
    lin_range(L, r, &rlo, &rhi);
    if (rlo >= 0 && rhi < cand[i]) {
      if (e->has_a) {
        h->has_a = true;
        h->alo = floor_div(e->alo - rhi, cand[i]);
        h->ahi = floor_div(e->ahi - rlo, cand[i]);
      }
      return cand[i];
    }
  }
  return 0;
}

/* When e is x / s1 (an idiv the lowering made): true, with x in *x and
 * s1*s in *s2, since (x / s1) / s = x / (s1*s). */
static bool nested_div(lw *L, const lin *e, int64_t s, lin *x, int64_t *s2) {
  if (e->c != 0 || e->nt != 1 || e->tw[0] != 1) return false;
  for (int d = 0; d < KD; d++)
    if (e->coef[d]) return false;
  const divrec *q = rec_of(L, e->tv[0]);
  if (!q || q->mod || q->s > INT64_MAX / s) return false;
  *x = q->x;
  *s2 = q->s * s;
  return true;
}

/* e / s for e >= 0 (where valid), s > 0, simplified by ranges. */
static lin lin_div(lw *L, const lin *e, int64_t s) {
  if (s == 1) return *e;
  int64_t lo, hi;
  lin_range(L, e, &lo, &hi);
  if (lo >= 0 && hi < s) return lin_cst(0);
  lin q, r, out, x;
  int64_t s2;
  if (nested_div(L, e, s, &x, &s2)) return lin_div(L, &x, s2);
  int64_t g = lin_digits(L, e, s, &q, &r);
  if (g == s) {
    out = q;
  } else if (g > 1) {
    out = lin_div(L, &q, s / g);
    if (out.has_a) {
      /* keep the tighter of both bounds */
      int64_t a = lo < 0 ? 0 : lo / s, b = hi < 0 ? 0 : hi / s;
      if (a > out.alo) out.alo = a;
      if (b < out.ahi) out.ahi = b;
      return out;
    }
  } else {
    lin_split(e, s, &q, &r);
    int64_t rlo, rhi;
    lin_range(L, &r, &rlo, &rhi);
    if (rlo >= 0 && nested_div(L, &r, s, &x, &s2)) {
      lin t = lin_div(L, &x, s2);
      out = q;
      lin_addmul(L, &out, &t, 1);
    } else if (rlo >= 0) {
      int num = lin_emit(L, &r), den = cst_i64(L, s); /* in this order on every compiler */
      int v = sm_kv_idiv(L->k, num, den);
      rec_add(L, v, num, false, s, &r);
      lin t = lin_val(v, rlo / s, rhi / s);
      out = q;
      lin_addmul(L, &out, &t, 1);
    } else {
      int64_t l0 = lo < 0 ? 0 : lo;
      int num = lin_emit(L, e), den = cst_i64(L, s);
      int v = sm_kv_idiv(L->k, num, den);
      rec_add(L, v, num, false, s, e);
      return lin_val(v, l0 / s, hi < 0 ? 0 : hi / s);
    }
  }
  out.has_a = true;
  out.alo = lo < 0 ? 0 : lo / s;
  out.ahi = hi < 0 ? 0 : hi / s;
  return out;
}

/* e % n for e >= 0 (where valid), n > 0. */
static lin lin_mod(lw *L, const lin *e, int64_t n) {
  if (n == 1) return lin_cst(0);
  int64_t lo, hi;
  lin_range(L, e, &lo, &hi);
  if (lo >= 0 && hi < n) return *e;
  lin q, r;
  int64_t g = lin_digits(L, e, n, &q, &r);
  if (g == n) return r;
  if (g > 1) {
    lin m = lin_mod(L, &q, n / g);
    lin_addmul(L, &r, &m, g);
    r.has_a = true;
    r.alo = 0;
    r.ahi = n - 1;
    return r;
  }
  lin_split(e, n, &q, &r);
  int64_t rlo, rhi;
  lin_range(L, &r, &rlo, &rhi);
  const lin *x = rlo >= 0 ? &r : e;
  int64_t xhi = rlo >= 0 ? rhi : hi;
  int num = lin_emit(L, x), den = cst_i64(L, n); /* value ids must not depend on the compiler */
  int v = sm_kv_imod(L->k, num, den);
  rec_add(L, v, num, true, n, x);
  return lin_val(v, 0, xhi < n - 1 ? xhi : n - 1);
}

/* Row-major offset of coordinates co in shape (rank dims). */
static lin lin_offset(lw *L, int rank, const int64_t *shape, const lin *co) {
  int64_t st[SMELT_MAX_RANK];
  dense_strides(rank, shape, st);
  lin e = lin_cst(0);
  for (int d = 0; d < rank; d++) lin_addmul(L, &e, &co[d], st[d]);
  return e;
}

/* The coordinates in shape of a row-major offset e (0 <= e < numel where
 * valid): the innermost coordinate is e % shape, the rest unravel e /
 * shape, so that recombining them (lin_recombine) gives e back. */
static void lin_unravel(lw *L, const lin *e, int rank, const int64_t *shape, lin *co) {
  lin q = *e;
  int first = 0; /* the outermost dim of size > 1 */
  while (first < rank && shape[first] == 1) first++;
  for (int d = rank - 1; d >= 0; d--) {
    if (shape[d] == 1) {
      co[d] = lin_cst(0);
      continue;
    }
    int64_t n = shape[d] ? shape[d] : 1;
    co[d] = lin_mod(L, &q, n);
    if (shape[d] > 0 && !co[d].has_a) {
      co[d].has_a = true;
      co[d].alo = 0;
      co[d].ahi = shape[d] - 1;
    }
    if (d > first) q = lin_div(L, &q, n);
  }
}

/* An offset off + sum st[d]*x[d] (n terms; x[d] in [xlo[d], xhi[d]] where
 * valid, e.g. narrowed by a view's mask) as row-major coordinates in shape
 * without any division: each term goes to the dim whose stride divides
 * its own (a term whose range is too wide for it is split into its
 * domain axes and opaque terms), the constant is spread over the dims, and
 * the result is exact when every dim's value stays in [0, shape) where
 * valid. False when that cannot be shown. */
static bool unravel_terms(lw *L, int64_t off, int n, const lin *x, const int64_t *st,
                          const int64_t *xlo, const int64_t *xhi, int rank, const int64_t *shape,
                          lin *co) {
  if (rank == 0) return true;
  int64_t S[SMELT_MAX_RANK], dlo[SMELT_MAX_RANK] = {0}, dhi[SMELT_MAX_RANK] = {0};
  dense_strides(rank, shape, S);
  for (int b = 0; b < rank; b++) {
    if (shape[b] == 0) return false;
    co[b] = lin_cst(0);
  }
  for (int d = 0; d < n; d++) {
    if (st[d] == 0) continue;
    /* the whole term, then its parts */
    for (int part = -1; part < KD + x[d].nt; part++) {
      lin u;
      int64_t w, ulo, uhi;
      if (part < 0) {
        u = x[d];
        u.c = 0;
        bool any = x[d].nt > 0;
        for (int j = 0; j < KD && !any; j++) any = x[d].coef[j] != 0;
        off += st[d] * x[d].c;
        if (!any) break;
        w = st[d], ulo = xlo[d] - x[d].c, uhi = xhi[d] - x[d].c;
      } else if (part < KD) {
        if (!x[d].coef[part]) continue;
        u = lin_idx(part);
        w = st[d] * x[d].coef[part];
        ulo = 0, uhi = L->k->extent[part] > 0 ? L->k->extent[part] - 1 : 0;
      } else {
        int j = part - KD;
        u = lin_val(x[d].tv[j], x[d].tlo[j], x[d].thi[j]);
        w = st[d] * x[d].tw[j];
        ulo = x[d].tlo[j], uhi = x[d].thi[j];
      }
      /* the outermost dim whose stride divides w */
      int b = 0;
      while (b < rank && (shape[b] == 1 || w % S[b] != 0)) b++;
      if (b == rank) return false;
      int64_t m = w / S[b], a = m * ulo, z = m * uhi;
      if (a > z) {
        int64_t t = a;
        a = z;
        z = t;
      }
      if (part < 0) {
        if (z - a >= shape[b]) continue; /* too wide: its parts */
        lin_addmul(L, &co[b], &u, m);
        dlo[b] += a, dhi[b] += z;
        break;
      }
      lin_addmul(L, &co[b], &u, m);
      dlo[b] += a, dhi[b] += z;
    }
  }
  /* spread the constant, innermost dim first: each dim takes the value
   * congruent to what is left that puts its range inside [0, shape) */
  int first = 0;
  while (first < rank - 1 && shape[first] == 1) first++;
  int64_t rem = off;
  for (int b = rank - 1; b >= first; b--) {
    if (shape[b] == 1 && b != first) continue;
    int64_t u = rem / S[b], c; /* rem is a multiple of S[b] */
    if (b == first) c = u;
    else c = -dlo[b] + floor_mod(u + dlo[b], shape[b]);
    if (c + dlo[b] < 0 || c + dhi[b] > shape[b] - 1) return false;
    rem -= c * S[b];
    co[b].c += c;
    co[b].has_a = true;
    co[b].alo = c + dlo[b];
    co[b].ahi = c + dhi[b];
  }
  return true;
}

/* ------------------------------------------------------------------ memo */

static uint64_t mixh(uint64_t h, uint64_t v) {
  return h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
}

static uint64_t memo_hash(uint32_t n, int valid, int rank, const lin *co) {
  uint64_t h = mixh(n, (uint64_t)(uint32_t)valid);
  for (int d = 0; d < rank; d++) {
    h = mixh(h, (uint64_t)co[d].c);
    for (int i = 0; i < KD; i++) h = mixh(h, (uint64_t)co[d].coef[i]);
    for (int j = 0; j < co[d].nt; j++) h = mixh(mixh(h, (uint64_t)co[d].tv[j]), (uint64_t)co[d].tw[j]);
  }
  return h;
}

static bool lin_same(const lin *a, const lin *b) {
  if (a->c != b->c || a->nt != b->nt || memcmp(a->coef, b->coef, sizeof a->coef)) return false;
  for (int j = 0; j < a->nt; j++)
    if (a->tv[j] != b->tv[j] || a->tw[j] != b->tw[j]) return false;
  return true;
}

static int memo_find(lw *L, uint32_t n, int valid, int rank, const lin *co, size_t *slot) {
  if (!L->mtab_cap) {
    *slot = 0;
    return -1;
  }
  size_t j = memo_hash(n, valid, rank, co) & (L->mtab_cap - 1);
  for (; L->mtab[j]; j = (j + 1) & (L->mtab_cap - 1)) {
    const memo_ent *m = &L->memo[L->mtab[j] - 1];
    if (m->node != n || m->valid != valid) continue;
    bool eq = true;
    for (int d = 0; d < rank && eq; d++) eq = lin_same(&m->co[d], &co[d]);
    if (eq) return m->value;
  }
  *slot = j;
  return -1;
}

static void memo_put(lw *L, uint32_t n, int valid, int rank, const lin *co, int value) {
  if (2 * (L->nmemo + 1) > L->mtab_cap) {
    size_t cap = L->mtab_cap ? 2 * L->mtab_cap : 64;
    int32_t *t = sm_calloc(cap, sizeof *t);
    if (!t) {
      L->oom = true;
      return;
    }
    for (size_t i = 0; i < L->nmemo; i++) {
      const memo_ent *m = &L->memo[i];
      size_t j = memo_hash(m->node, m->valid, node(L, m->node)->rank, m->co) & (cap - 1);
      while (t[j]) j = (j + 1) & (cap - 1);
      t[j] = (int32_t)i + 1;
    }
    sm_free(L->mtab);
    L->mtab = t;
    L->mtab_cap = cap;
  }
  if (L->nmemo == L->cap_memo) {
    size_t cap = L->cap_memo ? 2 * L->cap_memo : 64;
    memo_ent *p = sm_realloc(L->memo, cap * sizeof *p);
    if (!p) {
      L->oom = true;
      return;
    }
    L->memo = p;
    L->cap_memo = cap;
  }
  lin *c = sm_malloc(sizeof *c * (size_t)(rank ? rank : 1));
  if (!c) {
    L->oom = true;
    return;
  }
  memcpy(c, co, sizeof *c * (size_t)rank);
  size_t j = memo_hash(n, valid, rank, co) & (L->mtab_cap - 1);
  while (L->mtab[j]) j = (j + 1) & (L->mtab_cap - 1);
  L->memo[L->nmemo] = (memo_ent){n, valid, value, c};
  L->mtab[j] = (int32_t)++L->nmemo;
}

/* ---------------------------------------------------------------- values */

static int build(lw *L, uint32_t ni, const lin *co, int valid);

/* Nodes read from a buffer: materialized and not computed here (a group
 * recomputes its own outputs rather than loading them). */
static bool is_load(const lw *L, uint32_t ni) {
  const sm_node *n = node(L, ni);
  if (n->op == OP_INPUT || n->op == OP_PARAM) return true;
  if (n->op == OP_CONST) return sm_numel(n->rank, n->shape) != 1;
  return L->f->materialized[ni] && !L->member[ni];
}

static int and_mask(lw *L, int a, int b) {
  if (a < 0) return b;
  if (b < 0) return a;
  return sm_kv_elem(L->k, OP_AND, SMELT_BOOL, a, b, -1);
}

static int cast_to(lw *L, int v, smelt_dtype dt) {
  if (v < 0 || L->k->vals[v].dtype == dt) return v;
  return sm_kv_elem(L->k, OP_CAST, dt, v, -1, -1);
}

/* A pad's fill value converted to an integer dtype as the interpreter's
 * stores do (NaN 0, saturating). */
static int64_t fill_int(smelt_dtype dt, double v) {
  if (isnan(v)) return 0;
  if (dt == SMELT_I32) return v >= 2147483648.0 ? INT32_MAX : v <= -2147483649.0 ? INT32_MIN : (int32_t)v;
  return v >= 9223372036854775808.0 ? INT64_MAX : v < -9223372036854775808.0 ? INT64_MIN : (int64_t)v;
}

static int fill_const(lw *L, smelt_dtype dt, double v) {
  if (sm_is_float(dt) || dt == SMELT_BOOL) return sm_kv_const_f(L->k, dt, v);
  return sm_kv_const_i(L->k, dt, fill_int(dt, v));
}

static int arg_in(lw *L, uint32_t ni) {
  const sm_node *n = node(L, ni);
  return sm_kernel_arg(L->k, ni, (smelt_dtype)n->dtype, KA_IN, sm_numel(n->rank, n->shape));
}

/* A load of node ni at offset e, masked by valid (fill when invalid). */
/* True when the affine offset e stays inside [0, n) at every point of
 * the domain (masked or not). */
static bool inside_everywhere(const lw *L, const lin *e, int64_t n) {
  if (e->nt) return false; /* opaque terms: ranges hold where valid only */
  int64_t lo = e->c, hi = e->c;
  for (int d = 0; d < L->k->ndim; d++) {
    int64_t x = e->coef[d] * (L->k->extent[d] > 0 ? L->k->extent[d] - 1 : 0);
    if (x < 0) lo += x;
    else hi += x;
  }
  return lo >= 0 && hi < n;
}

/* A load of node ni at offset e, masked by valid (fill when invalid). A
 * masked load whose offset stays inside the buffer everywhere reads
 * unconditionally and selects the fill (where): the same values, and
 * consecutive reads that vectorize. */
static int load_at(lw *L, uint32_t ni, const lin *e, int valid, double ffill, int64_t ifill) {
  int a = arg_in(L, ni);
  if (a < 0) return -1;
  if (valid >= 0 && inside_everywhere(L, e, L->k->args[a].numel)) {
    smelt_dtype dt = (smelt_dtype)L->k->args[a].dtype;
    int v = sm_kv_load(L->k, a, lin_emit(L, e), -1, 0, 0);
    int f = sm_is_float(dt) || dt == SMELT_BOOL ? sm_kv_const_f(L->k, dt, ffill) : sm_kv_const_i(L->k, dt, ifill);
    return sm_kv_elem(L->k, OP_WHERE, dt, valid, v, f);
  }
  return sm_kv_load(L->k, a, lin_emit(L, e), valid, ffill, ifill);
}

static int build_const(lw *L, const sm_node *n) {
  smelt_dtype dt = (smelt_dtype)n->dtype;
  const unsigned char *p = n->data;
  if (!p) return fail(L, "const: data is missing");
  switch (dt) {
  case SMELT_F32: { float v; memcpy(&v, p, 4); return sm_kv_const_f(L->k, dt, v); }
  case SMELT_F64: { double v; memcpy(&v, p, 8); return sm_kv_const_f(L->k, dt, v); }
  case SMELT_I32: { int32_t v; memcpy(&v, p, 4); return sm_kv_const_i(L->k, dt, v); }
  case SMELT_I64: { int64_t v; memcpy(&v, p, 8); return sm_kv_const_i(L->k, dt, v); }
  default: return sm_kv_const_f(L->k, dt, *p != 0);
  }
}

/* iota: start + step*coordinate, computed as the interpreter does (in
 * double, rounded once); in exact i64 arithmetic when that is the same. */
static int build_iota(lw *L, const sm_node *n, const lin *co) {
  smelt_dtype dt = (smelt_dtype)n->dtype;
  double start = n->fattr[0], step = n->fattr[1];
  int axis = n->rank ? (int)n->iattr[0] : -1;
  lin c = axis >= 0 ? co[axis] : lin_cst(0);
  int64_t len = axis >= 0 ? n->shape[axis] : 1;
  double lim = 9007199254740992.0; /* 2^53: integers exact in double */
  if (start == floor(start) && step == floor(step) &&
      fabs(start) + fabs(step) * (double)len < (dt == SMELT_I32 ? 2147483647.0 : lim)) {
    lin e = lin_cst((int64_t)start);
    lin_addmul(L, &e, &c, (int64_t)step);
    return cast_to(L, lin_emit(L, &e), dt);
  }
  int x = sm_kv_elem(L->k, OP_CAST, SMELT_F64, lin_emit(L, &c), -1, -1);
  x = sm_kv_elem(L->k, OP_MUL, SMELT_F64, x, sm_kv_const_f(L->k, SMELT_F64, step), -1);
  x = sm_kv_elem(L->k, OP_ADD, SMELT_F64, sm_kv_const_f(L->k, SMELT_F64, start), x, -1);
  return cast_to(L, x, dt);
}

static int build_source(lw *L, uint32_t ni, const lin *co, int valid) {
  const sm_node *n = node(L, ni);
  (void)valid;
  switch ((sm_op)n->op) {
  case OP_CONST: return build_const(L, n);
  case OP_IOTA: return build_iota(L, n, co);
  case OP_RAND:
  case OP_RANDN: {
    lin e = lin_offset(L, n->rank, n->shape, co);
    return sm_kv_rand(L->k, (sm_op)n->op, (smelt_dtype)n->dtype, (uint64_t)n->iattr[0],
                      n->fattr[0], n->fattr[1], lin_emit(L, &e));
  }
  case OP_TRAINING: return sm_kv_training(L->k);
  default: return fail(L, "%s: cannot be computed inside a kernel", sm_ops[n->op].name);
  }
}

static int build_elem(lw *L, uint32_t ni, const lin *co, int valid) {
  const sm_node *n = node(L, ni);
  smelt_dtype dt = (smelt_dtype)n->dtype;
  if (n->op == OP_STOP_GRADIENT) return build(L, n->inputs[0], co, valid);
  int v[3] = {-1, -1, -1};
  for (uint32_t i = 0; i < n->ninputs && i < 3; i++) {
    v[i] = build(L, n->inputs[i], co, valid);
    if (v[i] < 0) return -1;
  }
  if (n->op == OP_CAST) return cast_to(L, v[0], dt);
  if (n->op == OP_WHERE) {
    v[0] = cast_to(L, v[0], SMELT_BOOL);
    v[1] = cast_to(L, v[1], dt);
    v[2] = cast_to(L, v[2], dt);
  }
  return sm_kv_elem(L->k, (sm_op)n->op, dt, v[0], v[1], v[2]);
}

/* ----------------------------------------------------- view composition */

static void view_contig(sview *v, int rank, const int64_t *shape) {
  memset(v, 0, sizeof *v);
  v->rank = rank;
  memcpy(v->shape, shape, sizeof(int64_t) * (size_t)rank);
  dense_strides(rank, shape, v->st);
}

static void mask_full(sview *v) {
  if (v->masked) return;
  v->masked = true;
  for (int d = 0; d < v->rank; d++) v->mlo[d] = 0, v->mhi[d] = v->shape[d];
}

static void mask_check(strk *t, sview *v) {
  if (!v->masked) return;
  bool trivial = true;
  for (int d = 0; d < v->rank; d++) {
    if (v->mlo[d] >= v->mhi[d] && v->shape[d] > 0) t->dead = true;
    if (v->mlo[d] > 0 || v->mhi[d] < v->shape[d]) trivial = false;
  }
  if (trivial) v->masked = false;
}

static int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

/* Merges a reshape into v when strides can express it: groups of old and
 * new dims with equal products map 1:1 (stride and mask copied) or are
 * contiguous and unmasked (strides recomputed). */
static bool reshape_merge(sview *v, int rank, const int64_t *shape) {
  int oi[SMELT_MAX_RANK], on = 0, nidx[SMELT_MAX_RANK], nn = 0;
  for (int d = 0; d < v->rank; d++)
    if (v->shape[d] != 1) oi[on++] = d;
  for (int d = 0; d < rank; d++)
    if (shape[d] != 1) nidx[nn++] = d;
  sview w;
  memset(&w, 0, sizeof w);
  w.rank = rank;
  w.off = v->off;
  memcpy(w.shape, shape, sizeof(int64_t) * (size_t)rank);
  for (int d = 0; d < rank; d++) w.mlo[d] = 0, w.mhi[d] = shape[d];
  int a = 0, b = 0;
  while (a < on || b < nn) {
    if (a >= on || b >= nn) return false;
    int a0 = a, b0 = b;
    int64_t po = v->shape[oi[a++]], pn = shape[nidx[b++]];
    while (po != pn) {
      if (po < pn) {
        if (a >= on) return false;
        po *= v->shape[oi[a++]];
      } else {
        if (b >= nn) return false;
        pn *= shape[nidx[b++]];
      }
    }
    if (a - a0 == 1 && b - b0 == 1) {
      int od = oi[a0], nd = nidx[b0];
      w.st[nd] = v->st[od];
      if (v->masked) w.mlo[nd] = v->mlo[od], w.mhi[nd] = v->mhi[od];
      continue;
    }
    for (int j = a0; j < a; j++) {
      int od = oi[j];
      if (v->masked && (v->mlo[od] > 0 || v->mhi[od] < v->shape[od])) return false;
      if (j + 1 < a && v->st[od] != v->st[oi[j + 1]] * v->shape[oi[j + 1]]) return false;
    }
    int64_t s = v->st[oi[a - 1]];
    for (int j = b - 1; j >= b0; j--) {
      w.st[nidx[j]] = s;
      s *= shape[nidx[j]];
    }
  }
  w.masked = v->masked;
  *v = w;
  return true;
}

/* Applies movement node n (its input has the top view's shape) to t. */
static void trk_apply(lw *L, strk *t, const sm_node *n) {
  sview *v = &t->v[t->n - 1];
  int r = n->rank;
  switch ((sm_op)n->op) {
  case OP_RESHAPE:
    if (sm_numel(v->rank, v->shape) == 0 || !reshape_merge(v, r, n->shape)) {
      /* a new view whose offsets index the one below */
      v = &t->v[t->n++];
      view_contig(v, r, n->shape);
    }
    break;
  case OP_PERMUTE: {
    sview w = *v;
    for (int d = 0; d < r; d++) {
      int64_t p = n->iattr[d];
      w.shape[d] = v->shape[p], w.st[d] = v->st[p], w.mlo[d] = v->mlo[p], w.mhi[d] = v->mhi[p];
    }
    *v = w;
    break;
  }
  case OP_EXPAND: {
    sview w = *v;
    int lead = r - v->rank;
    w.rank = r;
    for (int d = 0; d < r; d++) {
      int xd = d - lead;
      w.shape[d] = n->shape[d];
      if (xd < 0 || (v->shape[xd] == 1 && n->shape[d] != 1)) {
        w.st[d] = 0, w.mlo[d] = 0, w.mhi[d] = n->shape[d];
        /* a masked-out size-1 dim stays masked out */
        if (xd >= 0 && v->masked && v->mlo[xd] >= v->mhi[xd]) w.mhi[d] = 0;
      } else {
        w.st[d] = v->st[xd], w.mlo[d] = v->mlo[xd], w.mhi[d] = v->mhi[xd];
      }
    }
    *v = w;
    break;
  }
  case OP_SLICE:
    for (int d = 0; d < r; d++) {
      int64_t s0 = n->iattr[d], step = n->iattr[r + d];
      if (n->shape[d] > 0) v->off += s0 * v->st[d];
      if (v->masked) {
        int64_t lo = ceil_div(v->mlo[d] - s0, step), hi = ceil_div(v->mhi[d] - s0, step);
        if (lo < 0) lo = 0;
        if (hi > n->shape[d]) hi = n->shape[d];
        if (hi < lo) hi = lo;
        v->mlo[d] = lo, v->mhi[d] = hi;
      }
      v->st[d] *= step;
      v->shape[d] = n->shape[d];
    }
    break;
  case OP_UNFOLD: {
    int a = (int)n->iattr[0];
    int64_t size = n->iattr[1], step = n->iattr[2];
    if (v->masked && (v->mlo[a] > 0 || v->mhi[a] < v->shape[a])) {
      /* a window crosses the mask's edge (a padded axis): the two new
       * coordinates index a new contiguous view, and unravelling its
       * offset gives back the affine input coordinate win*step + j */
      int64_t in_shape[SMELT_MAX_RANK];
      memcpy(in_shape, v->shape, sizeof in_shape);
      int rin = v->rank;
      v = &t->v[t->n++];
      view_contig(v, rin, in_shape);
    }
    /* here axis a is unmasked: windows step along it */
    int64_t sa = v->st[a];
    v->shape[a] = n->shape[a];
    v->st[a] = sa * step;
    v->shape[v->rank] = size;
    v->st[v->rank] = sa;
    if (v->masked) {
      v->mlo[a] = 0, v->mhi[a] = n->shape[a];
      v->mlo[v->rank] = 0, v->mhi[v->rank] = size;
    }
    v->rank++;
    break;
  }
  case OP_FLIP:
    for (uint32_t j = 0; j < n->niattr; j++) {
      int d = (int)n->iattr[j];
      int64_t len = v->shape[d];
      if (len > 0) v->off += (len - 1) * v->st[d];
      v->st[d] = -v->st[d];
      if (v->masked) {
        int64_t lo = len - v->mhi[d], hi = len - v->mlo[d];
        v->mlo[d] = lo, v->mhi[d] = hi;
      }
    }
    break;
  case OP_PAD:
    mask_full(v);
    for (int d = 0; d < r; d++) {
      int64_t lo = n->iattr[d];
      v->off -= lo * v->st[d];
      v->mlo[d] += lo, v->mhi[d] += lo;
      v->shape[d] = n->shape[d];
    }
    break;
  default: fail(L, "%s: not a movement op", sm_ops[n->op].name); break;
  }
  mask_check(t, v);
}

/* Evaluates t at top coordinates co: the offset into the bottom view's
 * buffer (*off) and the mask (*mask, -1 when always valid). */
/* The bottom view's offset as terms: off + sum st[d]*x[d], x[d] in
 * [lo[d], hi[d]] where valid (unravel_terms). */
typedef struct vterms {
  int n;
  int64_t off;
  lin x[SMELT_MAX_RANK];
  int64_t st[SMELT_MAX_RANK], lo[SMELT_MAX_RANK], hi[SMELT_MAX_RANK];
} vterms;

/* The coordinates in shape of the offset of t (flat: e), exact when the
 * terms allow it, else by division. */
static void unravel_vt(lw *L, const vterms *t, const lin *e, int rank, const int64_t *shape, lin *co) {
  if (!unravel_terms(L, t->off, t->n, t->x, t->st, t->lo, t->hi, rank, shape, co))
    lin_unravel(L, e, rank, shape, co);
}

static void trk_eval(lw *L, const strk *t, const lin *co, lin *off, int *mask, vterms *vt) {
  lin cur[SMELT_MAX_RANK];
  memcpy(cur, co, sizeof(lin) * (size_t)t->v[t->n - 1].rank);
  *mask = -1;
  for (int i = t->n - 1; i >= 0; i--) {
    const sview *v = &t->v[i];
    int64_t olo = v->off, ohi = v->off;
    lin e = lin_cst(v->off);
    vt->n = v->rank;
    vt->off = v->off;
    for (int d = 0; d < v->rank; d++) {
      int64_t lo, hi;
      lin_range(L, &cur[d], &lo, &hi);
      if (v->masked) {
        if (lo < v->mlo[d]) {
          int c = lin_emit(L, &cur[d]);
          *mask = and_mask(L, *mask, sm_kv_elem(L->k, OP_GE, SMELT_BOOL, c, cst_i64(L, v->mlo[d]), -1));
          lo = v->mlo[d];
        }
        if (hi >= v->mhi[d]) {
          int c = lin_emit(L, &cur[d]);
          *mask = and_mask(L, *mask, sm_kv_elem(L->k, OP_LT, SMELT_BOOL, c, cst_i64(L, v->mhi[d]), -1));
          hi = v->mhi[d] - 1;
        }
      }
      int64_t a = lo * v->st[d], b = hi * v->st[d];
      olo += a < b ? a : b;
      ohi += a < b ? b : a;
      lin_addmul(L, &e, &cur[d], v->st[d]);
      vt->x[d] = cur[d];
      vt->st[d] = v->st[d];
      vt->lo[d] = lo;
      vt->hi[d] = hi;
    }
    /* where valid, the offset lies in the view's range and the buffer */
    e.has_a = true;
    e.alo = olo;
    e.ahi = ohi;
    if (i > 0) {
      const sview *below = &t->v[i - 1];
      int64_t nb = sm_numel(below->rank, below->shape);
      if (e.alo < 0) e.alo = 0;
      if (e.ahi > nb - 1) e.ahi = nb - 1;
      unravel_vt(L, vt, &e, below->rank, below->shape, cur);
    } else {
      *off = e;
    }
  }
}

/* A chain of movement ops (top node ni) down to its base: composed views,
 * then a masked load of a buffer or the base computed at the unravelled
 * coordinates. */
static int build_view(lw *L, uint32_t ni, const lin *co, int valid) {
  uint32_t chain[MAXCHAIN];
  int len = 0, reshapes = 0;
  uint32_t cur = ni;
  bool have_fill = false;
  double fill = 0;
  const sm_node *top = node(L, ni);
  smelt_dtype dt = (smelt_dtype)top->dtype;
  while (len < MAXCHAIN) {
    const sm_node *n = node(L, cur);
    int cls = sm_ops[n->op].cls;
    if ((cls != OPC_VIEW && cls != OPC_PAD) || (cur != ni && is_load(L, cur))) break;
    if (n->op == OP_PAD) {
      /* one fill value per chain: a pad with another one starts a new chain */
      if (have_fill && memcmp(&fill, &n->fattr[0], sizeof fill) != 0) break;
      have_fill = true;
      fill = n->fattr[0];
    }
    /* each may push a view */
    if ((n->op == OP_RESHAPE || n->op == OP_UNFOLD) && ++reshapes >= MAXVIEWS) break;
    chain[len++] = cur;
    cur = n->inputs[0];
  }
  uint32_t base = cur;
  const sm_node *bn = node(L, base);
  strk t;
  t.n = 1;
  t.dead = false;
  view_contig(&t.v[0], bn->rank, bn->shape);
  for (int j = len - 1; j >= 0; j--) trk_apply(L, &t, node(L, chain[j]));
  if (failed(L)) return -1;
  if (t.dead) return fill_const(L, dt, fill);
  lin off;
  int mask;
  vterms vt;
  trk_eval(L, &t, co, &off, &mask, &vt);
  if (failed(L)) return -1;
  if (is_load(L, base)) {
    int m = and_mask(L, valid, mask);
    if (mask < 0) return load_at(L, base, &off, m, 0, 0);
    double ff = dt == SMELT_F32 ? (double)(float)fill : dt == SMELT_BOOL ? fill != 0 : fill;
    return load_at(L, base, &off, m, ff, sm_is_float(dt) || dt == SMELT_BOOL ? 0 : fill_int(dt, fill));
  }
  /* where valid, the offset indexes the base */
  int64_t nb = sm_numel(bn->rank, bn->shape);
  if (off.alo < 0) off.alo = 0;
  if (off.ahi > nb - 1) off.ahi = nb - 1;
  lin bco[SMELT_MAX_RANK];
  unravel_vt(L, &vt, &off, bn->rank, bn->shape, bco);
  int v = build(L, base, bco, and_mask(L, valid, mask));
  if (v < 0 || mask < 0) return v;
  return sm_kv_elem(L->k, OP_WHERE, dt, mask, v, fill_const(L, dt, fill));
}

bool sm_views_strided(const smelt_graph *g, uint32_t top, const bool *materialized) {
  lw L = {0};
  L.g = g;
  uint32_t chain[MAXCHAIN];
  int len = 0, pushes = 0;
  uint32_t cur = top;
  for (;;) {
    const sm_node *n = &g->nodes[cur];
    int cls = sm_ops[n->op].cls;
    if (cls != OPC_VIEW && cls != OPC_PAD) break;
    if (cur != top && materialized && materialized[cur]) break; /* read from its buffer */
    /* a pad masks; too long a chain is split by lowering */
    if (cls == OPC_PAD || len == MAXCHAIN) return false;
    if ((n->op == OP_RESHAPE || n->op == OP_UNFOLD) && ++pushes >= MAXVIEWS) return false;
    chain[len++] = cur;
    cur = n->inputs[0];
  }
  const sm_node *bn = &g->nodes[cur];
  strk t;
  t.n = 1;
  t.dead = false;
  view_contig(&t.v[0], bn->rank, bn->shape);
  for (int j = len - 1; j >= 0 && !L.err && !L.oom; j--) trk_apply(&L, &t, &g->nodes[chain[j]]);
  bool ok = !L.err && !L.oom && t.n == 1 && !t.v[0].masked && !t.dead;
  sm_free(L.err);
  return ok;
}

/* ---------------------------------------------------- concat and gather */

static int build_concat(lw *L, uint32_t ni, const lin *co, int valid) {
  const sm_node *n = node(L, ni);
  smelt_dtype dt = (smelt_dtype)n->dtype;
  int axis = (int)n->iattr[0];
  int64_t clo, chi;
  lin_range(L, &co[axis], &clo, &chi);
  int c = -1, result = -1;
  /* inputs from the last: where(c < end_k, v_k, result) */
  int64_t end = n->shape[axis];
  for (uint32_t kk = n->ninputs; kk-- > 0;) {
    const sm_node *x = node(L, n->inputs[kk]);
    int64_t len = x->shape[axis], start = end - len;
    int64_t e = end;
    end = start;
    if (len == 0 || chi < start || clo >= e) continue;
    lin xc[SMELT_MAX_RANK];
    memcpy(xc, co, sizeof(lin) * (size_t)n->rank);
    lin sh = lin_cst(-start);
    lin_addmul(L, &sh, &co[axis], 1);
    sh.has_a = true;
    sh.alo = 0;
    sh.ahi = len - 1;
    xc[axis] = sh;
    int m = -1;
    if (c < 0) c = lin_emit(L, &co[axis]);
    if (clo < start) m = sm_kv_elem(L->k, OP_GE, SMELT_BOOL, c, cst_i64(L, start), -1);
    int lt = chi >= e ? sm_kv_elem(L->k, OP_LT, SMELT_BOOL, c, cst_i64(L, e), -1) : -1;
    m = and_mask(L, m, lt);
    int v = cast_to(L, build(L, n->inputs[kk], xc, and_mask(L, valid, m)), dt);
    if (v < 0) return -1;
    result = result < 0 || lt < 0 ? v : sm_kv_elem(L->k, OP_WHERE, dt, lt, v, result);
  }
  /* an empty result (every input empty) is never computed: any value does */
  if (result < 0 && sm_numel(n->rank, n->shape) == 0) return sm_kv_const_f(L->k, dt, 0);
  if (result < 0) return fail(L, "concat: no input covers the coordinates");
  return result;
}

/* True when value v uses value target (a DFS over the operands). */
static bool uses_value(const sm_kernel *k, int v, int target, uint8_t *seen) {
  if (v < 0 || seen[v]) return false;
  if (v == target) return true;
  seen[v] = 1;
  const sm_kval *x = &k->vals[v];
  return uses_value(k, x->a, target, seen) || uses_value(k, x->b, target, seen) ||
         uses_value(k, x->c, target, seen);
}

/* A gather whose value does not depend on the index (x broadcast along
 * the axis) must still report a bad index: tie the check to the value. */
static int keep_check(lw *L, int v, int chk) {
  if (v < 0 || chk < 0) return v;
  uint8_t *seen = sm_calloc((size_t)L->k->nvals, 1);
  if (!seen) {
    L->oom = true;
    return -1;
  }
  bool used = uses_value(L->k, v, chk, seen);
  sm_free(seen);
  if (used) return v;
  smelt_dtype dt = (smelt_dtype)L->k->vals[v].dtype;
  int ok = sm_kv_elem(L->k, OP_GE, SMELT_BOOL, chk, cst_i64(L, 0), -1);
  return sm_kv_elem(L->k, OP_WHERE, dt, ok, v, v);
}

static int build_gather(lw *L, uint32_t ni, const lin *co, int valid) {
  const sm_node *n = node(L, ni);
  int axis = (int)n->iattr[0];
  const sm_node *x = node(L, n->inputs[0]);
  int idx = cast_to(L, build(L, n->inputs[1], co, valid), SMELT_I64);
  if (idx < 0) return -1;
  /* outside the enclosing mask the index is garbage: check 0 instead */
  if (valid >= 0) idx = sm_kv_elem(L->k, OP_WHERE, SMELT_I64, valid, idx, cst_i64(L, 0));
  int64_t len = x->shape[axis];
  int chk = sm_kv_check(L->k, idx, len);
  lin xc[SMELT_MAX_RANK];
  memcpy(xc, co, sizeof(lin) * (size_t)n->rank);
  xc[axis] = lin_val(chk, 0, len > 0 ? len - 1 : 0);
  int v = cast_to(L, build(L, n->inputs[0], xc, valid), (smelt_dtype)n->dtype);
  return keep_check(L, v, chk);
}

/* ----------------------------------------------------------- reductions */

static bool is_float_dt(int dt) { return sm_is_float((smelt_dtype)dt); }

/* The accumulator of reduction ni (a member), created on first use. */
static int build_reduce(lw *L, uint32_t ni) {
  const sm_node *n = node(L, ni);
  sm_kernel *k = L->k;
  if (L->acc_of[ni]) return sm_kv_acc(k, L->acc_of[ni] - 1);
  if (L->gr->kind != SM_GROUP_REDUCE) return fail(L, "%s: a reduction outside a reduce group", sm_ops[n->op].name);
  const sm_node *x = node(L, n->inputs[0]);
  uint8_t red[KD] = {0};
  bool arg = sm_ops[n->op].cls == OPC_ARGREDUCE;
  if (arg) red[n->iattr[0]] = 1;
  else
    for (uint32_t j = 0; j < n->niattr; j++) red[n->iattr[j]] = 1;
  bool ok = x->rank == L->lnd;
  for (int d = 0; d < L->lnd && ok; d++) ok = x->shape[d] == L->lext[d] && red[d] == L->lred[d];
  if (!ok) return fail(L, "%s: its input or axes differ from the group's domain", sm_ops[n->op].name);
  if (arg && L->lext[n->iattr[0]] == 0 && sm_numel(n->rank, n->shape) > 0)
    return fail(L, "%s: cannot reduce an axis of size 0", sm_ops[n->op].name);
  int aaxis = arg ? L->kaxis[n->iattr[0]] : -1;
  if (arg && aaxis < 0) return fail(L, "%s: its axis is refined", sm_ops[n->op].name);
  int v = build(L, n->inputs[0], L->lco, -1);
  if (v < 0) return -1;
  if (k->vals[v].outer) return fail(L, "%s: its input depends on another reduction of the group", sm_ops[n->op].name);
  smelt_dtype xdt = (smelt_dtype)x->dtype, dt = (smelt_dtype)n->dtype, adt;
  if (arg) adt = xdt;
  else if (n->op == OP_REDUCE_SUM || n->op == OP_REDUCE_PROD)
    adt = is_float_dt(xdt) ? SMELT_F64 : SMELT_I64; /* the interpreter's double / int64 */
  else adt = xdt;
  int a = sm_kernel_acc(k, (sm_op)n->op, dt, adt, v, aaxis, -1, -1);
  if (a < 0) return -1;
  L->acc_of[ni] = a + 1;
  return sm_kv_acc(k, a);
}

/* The matmul anchor: sum over the last domain axis of A*B. */
static int build_matmul(lw *L, uint32_t ni) {
  sm_kernel *k = L->k;
  if (L->acc_of[ni]) return sm_kv_acc(k, L->acc_of[ni] - 1);
  const sm_node *n = node(L, ni);
  if (L->gr->kind != SM_GROUP_MATMUL || L->gr->anchor != ni) return fail(L, "matmul: not the anchor of a matmul group");
  int r = n->rank;
  smelt_dtype dt = (smelt_dtype)n->dtype;
  lin ca[SMELT_MAX_RANK], cb[SMELT_MAX_RANK];
  for (int d = 0; d < r - 2; d++) ca[d] = cb[d] = L->lco[d];
  ca[r - 2] = L->lco[r - 2], ca[r - 1] = L->lco[r];
  cb[r - 2] = L->lco[r], cb[r - 1] = L->lco[r - 1];
  int a = cast_to(L, build(L, n->inputs[0], ca, -1), dt);
  int b = a < 0 ? -1 : cast_to(L, build(L, n->inputs[1], cb, -1), dt);
  if (b < 0) return -1;
  int p = sm_kv_elem(k, OP_MUL, dt, a, b, -1);
  /* floats accumulate in their dtype (as BLAS); integers in i64 */
  smelt_dtype adt = is_float_dt(dt) ? dt : SMELT_I64;
  int acc = sm_kernel_acc(k, OP_REDUCE_SUM, dt, adt, p, -1, -1, -1);
  if (acc < 0) return -1;
  k->mm_m = r - 2, k->mm_n = r - 1, k->mm_k = r;
  k->mm_a = a, k->mm_b = b, k->mm_acc = acc;
  L->acc_of[ni] = acc + 1;
  return sm_kv_acc(k, acc);
}

static int build(lw *L, uint32_t ni, const lin *co, int valid) {
  if (failed(L)) return -1;
  const sm_node *n = node(L, ni);
  size_t slot;
  int v = memo_find(L, ni, valid, n->rank, co, &slot);
  if (v >= 0) return v;
  if (is_load(L, ni)) {
    lin e = lin_offset(L, n->rank, n->shape, co);
    v = load_at(L, ni, &e, valid, 0, 0);
  } else {
    switch (sm_ops[n->op].cls) {
    case OPC_SOURCE: v = build_source(L, ni, co, valid); break;
    case OPC_UNARY:
    case OPC_BINARY:
    case OPC_TERNARY: v = build_elem(L, ni, co, valid); break;
    case OPC_REDUCE:
    case OPC_ARGREDUCE: v = build_reduce(L, ni); break;
    case OPC_VIEW:
    case OPC_PAD: v = build_view(L, ni, co, valid); break;
    case OPC_CONCAT: v = build_concat(L, ni, co, valid); break;
    case OPC_GATHER: v = build_gather(L, ni, co, valid); break;
    case OPC_MATMUL: v = build_matmul(L, ni); break;
    default: {
      char id[64];
      sm_node_id(L->g, n, id, sizeof id);
      return fail(L, "%s %s: cannot be computed inline (not materialized)", sm_ops[n->op].name, id);
    }
    }
  }
  if (v < 0) {
    if (!failed(L)) L->oom = true;
    return -1;
  }
  memo_put(L, ni, valid, n->rank, co, v);
  return v;
}

/* True when node ni (computed here) depends on an accumulator. */
static bool depends_acc(lw *L, uint32_t ni) {
  if (L->dep[ni] >= 0) return L->dep[ni];
  const sm_node *n = node(L, ni);
  bool d = false;
  if (!is_load(L, ni)) {
    int cls = sm_ops[n->op].cls;
    if (cls == OPC_REDUCE || cls == OPC_ARGREDUCE || cls == OPC_MATMUL) d = true;
    else
      for (uint32_t i = 0; i < n->ninputs && !d; i++) d = depends_acc(L, n->inputs[i]);
  }
  L->dep[ni] = d;
  return d;
}

/* ------------------------------------------------------------ loop order */

/* The domain axis along which value v (an i64 index) steps by 1, or -1. */
static int unit_axis(const sm_kernel *k, int v) {
  const sm_kval *x = &k->vals[v];
  if (x->kind == KV_IDX) return x->axis;
  if (x->kind != KV_AFFINE) return -1;
  for (int d = k->ndim - 1; d >= 0; d--)
    if ((x->coef[d] == 1 || x->coef[d] == -1) && k->extent[d] > 1) return d;
  return -1;
}

/* Marks the values reachable from v. */
static void mark(const sm_kernel *k, int v, uint8_t *seen) {
  if (v < 0 || seen[v]) return;
  seen[v] = 1;
  const sm_kval *x = &k->vals[v];
  mark(k, x->a, seen), mark(k, x->b, seen), mark(k, x->c, seen);
}

/* The innermost axis: where the first inner store steps by 1, else where
 * the largest inner load does, else the last axis. */
static int pick_inner(lw *L) {
  sm_kernel *k = L->k;
  for (int i = 0; i < k->nstores; i++) {
    if (k->stores[i].outer) continue;
    int d = unit_axis(k, k->stores[i].index);
    if (d >= 0) return d;
  }
  uint8_t *seen = sm_calloc((size_t)(k->nvals ? k->nvals : 1), 1);
  if (!seen) {
    L->oom = true;
    return k->ndim - 1;
  }
  for (int i = 0; i < k->nstores; i++)
    if (!k->stores[i].outer) mark(k, k->stores[i].value, seen);
  for (int i = 0; i < k->naccs; i++) mark(k, k->accs[i].value, seen);
  int best = -1;
  int64_t best_n = -1;
  for (int v = 0; v < k->nvals; v++) {
    const sm_kval *x = &k->vals[v];
    if (!seen[v] || x->kind != KV_LOAD) continue;
    int d = unit_axis(k, x->a);
    if (d >= 0 && k->args[x->arg].numel > best_n) best = d, best_n = k->args[x->arg].numel;
  }
  sm_free(seen);
  return best >= 0 ? best : k->ndim - 1;
}

static bool order_sensitive(const sm_kernel *k) {
  for (int i = 0; i < k->naccs; i++) {
    const sm_kacc *a = &k->accs[i];
    if ((a->op == OP_REDUCE_SUM || a->op == OP_REDUCE_PROD) && is_float_dt(a->acc_dtype))
      return true;
  }
  return false;
}

static void choose_order(lw *L) {
  sm_kernel *k = L->k;
  int nd = k->ndim, n = 0;
  if (nd == 0) return;
  int in = pick_inner(L);
  /* reduced axes keep their relative order unless the sum may reassociate */
  bool keep = !k->reassociate && order_sensitive(k);
  if (k->kind == SM_KERNEL_POINTWISE && k->joined[in]) {
    /* a refined domain, walked tile by tile: the inner parts of the split
     * axes innermost (a pooling window's positions), so that what does
     * not depend on them is computed once per tile */
    for (int d = 0; d < nd; d++)
      if (!k->joined[d]) k->order[n++] = d;
    for (int d = 0; d < nd; d++)
      if (k->joined[d] && d != in) k->order[n++] = d;
    k->order[n++] = in;
    goto par;
  }
  for (int d = 0; d < nd; d++)
    if (!k->reduce[d] && d != in) k->order[n++] = d;
  if (k->reduce[in]) {
    if (!keep) {
      for (int d = 0; d < nd; d++)
        if (k->reduce[d] && d != in) k->order[n++] = d;
      k->order[n++] = in;
    } else {
      for (int d = 0; d < nd; d++)
        if (k->reduce[d]) k->order[n++] = d;
    }
  } else {
    for (int d = 0; d < nd; d++)
      if (k->reduce[d]) k->order[n++] = d;
    k->order[n++] = in;
  }
par:
  /* parallel: the outermost non-reduced loop with at least 16 iterations,
   * else the non-reduced loop with the most (>= 2), else none */
  k->par_axis = -1;
  if (k->kind == SM_KERNEL_SCATTER) return;
  /* matmul kernels split their rows: the blocked kernel computes row ranges */
  if (k->kind == SM_KERNEL_MATMUL && k->mm_m >= 0) {
    k->par_axis = k->mm_m;
    return;
  }
  int64_t best = 1;
  for (int i = 0; i < nd; i++) {
    int d = k->order[i];
    if (k->reduce[d]) continue;
    if (k->extent[d] >= 16) {
      k->par_axis = d;
      return;
    }
    if (k->extent[d] > best) best = k->extent[d], k->par_axis = d;
  }
}

/* Scratch accumulators when a reduced loop encloses a non-reduced one. */
static void add_scratch(lw *L) {
  sm_kernel *k = L->k;
  bool red_seen = false, need = false;
  for (int i = 0; i < k->ndim; i++) {
    if (k->reduce[k->order[i]]) red_seen = true;
    else if (red_seen) need = true;
  }
  if (!need) return;
  int64_t m = 1;
  for (int d = 0; d < k->ndim; d++)
    if (!k->reduce[d]) m *= k->extent[d];
  for (int i = 0; i < k->naccs; i++) {
    sm_kacc *a = &k->accs[i];
    uint32_t nodeid = 0;
    for (size_t j = 0; j < L->g->nnodes; j++)
      if (L->acc_of[j] == i + 1) nodeid = (uint32_t)j;
    a->scratch = sm_kernel_scratch(k, nodeid, (smelt_dtype)a->acc_dtype, m);
    if (a->op == OP_ARGMAX || a->op == OP_ARGMIN)
      a->scratch2 = sm_kernel_scratch(k, nodeid, SMELT_I64, m);
  }
}

/* ---------------------------------------------------------------- driver */

static int64_t numel_of(const sm_node *n) { return sm_numel(n->rank, n->shape); }

/* Stores output o of the group at the domain point given by space coords
 * sc (shape ss, rank sr). */
static void store_output(lw *L, uint32_t o, int sr, const int64_t *ss, const lin *sc, bool outer) {
  const sm_node *n = node(L, o);
  lin co[SMELT_MAX_RANK];
  bool same = sr == n->rank && memcmp(ss, n->shape, sizeof(int64_t) * (size_t)sr) == 0;
  /* the output's row-major offset is the space's: same numel */
  lin off = lin_offset(L, sr, ss, sc);
  if (same) memcpy(co, sc, sizeof(lin) * (size_t)sr);
  else {
    vterms vt;
    vt.n = sr;
    vt.off = 0;
    dense_strides(sr, ss, vt.st);
    for (int d = 0; d < sr; d++) {
      vt.x[d] = sc[d];
      lin_range(L, &sc[d], &vt.lo[d], &vt.hi[d]);
    }
    unravel_vt(L, &vt, &off, n->rank, n->shape, co);
  }
  int v = build(L, o, co, -1);
  if (v < 0) return;
  v = cast_to(L, v, (smelt_dtype)n->dtype);
  int arg = sm_kernel_arg(L->k, o, (smelt_dtype)n->dtype, KA_OUT, numel_of(n));
  int idx = lin_emit(L, &off);
  if (arg < 0 || idx < 0 || v < 0 || sm_kernel_store(L->k, arg, idx, v, outer, false) < 0)
    L->oom = true;
}

static void lower_scatter(lw *L) {
  uint32_t ni = L->gr->anchor;
  const sm_node *n = node(L, ni);
  sm_kernel *k = L->k;
  int axis = (int)n->iattr[0];
  const lin *q = L->lco;
  int idx = cast_to(L, build(L, n->inputs[0], q, -1), SMELT_I64);
  int src = cast_to(L, build(L, n->inputs[1], q, -1), (smelt_dtype)n->dtype);
  if (idx < 0 || src < 0) return;
  int chk = sm_kv_check(k, idx, n->shape[axis]);
  int64_t st[SMELT_MAX_RANK];
  dense_strides(n->rank, n->shape, st);
  lin off = lin_cst(0);
  for (int d = 0; d < n->rank; d++)
    if (d != axis) lin_addmul(L, &off, &q[d], st[d]);
  lin c = lin_val(chk, 0, n->shape[axis] > 0 ? n->shape[axis] - 1 : 0);
  lin_addmul(L, &off, &c, st[axis]);
  int arg = sm_kernel_arg(k, ni, (smelt_dtype)n->dtype, KA_OUT, numel_of(n));
  int io = lin_emit(L, &off);
  if (arg < 0 || io < 0 || sm_kernel_store(k, arg, io, src, false, true) < 0) L->oom = true;
}

/* How the logical domain's axes map to kernel axes: axis d is split into
 * np[d] kernel axes of extents part[d][0] (outermost) .. part[d][np-1]. */
typedef struct rspec {
  int np[KD];
  int64_t part[KD][KD];
} rspec;

/* The group's logical domain: extents, reduced axes, kind. false on error. */
static bool group_domain(lw *L, size_t gi, int *ndp, int64_t *ext, uint8_t *red, sm_kernel_kind *kind) {
  const sm_group *gr = L->gr;
  const sm_node *an = node(L, gr->anchor);
  int nd;
  memset(red, 0, KD);
  switch (gr->kind) {
  case SM_GROUP_REDUCE: {
    const sm_node *x = node(L, an->inputs[0]);
    if (sm_ops[an->op].cls != OPC_REDUCE && sm_ops[an->op].cls != OPC_ARGREDUCE) {
      fail(L, "reduce group %zu: its anchor is not a reduction", gi);
      return false;
    }
    nd = x->rank;
    memcpy(ext, x->shape, sizeof(int64_t) * (size_t)nd);
    if (sm_ops[an->op].cls == OPC_ARGREDUCE) red[an->iattr[0]] = 1;
    else
      for (uint32_t j = 0; j < an->niattr; j++) red[an->iattr[j]] = 1;
    *kind = SM_KERNEL_REDUCE;
    break;
  }
  case SM_GROUP_MATMUL: {
    if (an->op != OP_MATMUL) {
      fail(L, "matmul group %zu: its anchor is not a matmul", gi);
      return false;
    }
    nd = an->rank + 1;
    memcpy(ext, an->shape, sizeof(int64_t) * (size_t)an->rank);
    ext[an->rank] = node(L, an->inputs[0])->shape[an->rank - 1];
    red[an->rank] = 1;
    *kind = SM_KERNEL_MATMUL;
    break;
  }
  case SM_GROUP_SCATTER: {
    if (an->op != OP_SCATTER_ADD) {
      fail(L, "scatter group %zu: its anchor is not a scatter_add", gi);
      return false;
    }
    const sm_node *ix = node(L, an->inputs[0]);
    nd = ix->rank;
    memcpy(ext, ix->shape, sizeof(int64_t) * (size_t)nd);
    *kind = SM_KERNEL_SCATTER;
    break;
  }
  default:
    nd = an->rank;
    memcpy(ext, an->shape, sizeof(int64_t) * (size_t)nd);
    *kind = SM_KERNEL_POINTWISE;
    break;
  }
  *ndp = nd;
  return true;
}

/* Forgets what an earlier lowering of the group built. */
static void reset_attempt(lw *L) {
  for (size_t i = 0; i < L->nmemo; i++) sm_free(L->memo[i].co);
  L->nmemo = 0;
  if (L->mtab) memset(L->mtab, 0, L->mtab_cap * sizeof *L->mtab);
  L->nrecs = 0;
  memset(L->acc_of, 0, L->g->nnodes * sizeof *L->acc_of);
}

/* Builds the kernel of group gi over the domain refined as rs says. */
static sm_kernel *lower(lw *L, size_t gi, bool reassociate, const rspec *rs) {
  const sm_group *gr = L->gr;
  const sm_node *an = node(L, gr->anchor);
  int64_t ext[KD];
  uint8_t red[KD];
  int nd;
  sm_kernel_kind kind;
  if (!group_domain(L, gi, &nd, ext, red, &kind)) return NULL;
  /* the kernel's axes */
  int64_t kext[KD];
  uint8_t kred[KD];
  int kn = 0;
  for (int d = 0; d < nd; d++) {
    int np = rs ? rs->np[d] : 1;
    L->kaxis[d] = np == 1 ? kn : -1;
    for (int j = 0; j < np; j++) {
      kext[kn] = np == 1 ? ext[d] : rs->part[d][j];
      kred[kn++] = red[d];
    }
  }
  char name[32];
  snprintf(name, sizeof name, "k%zu", gi);
  sm_kernel *k = sm_kernel_new(name, kind, kn, kext, kred);
  if (!k) {
    L->oom = true;
    return NULL;
  }
  L->k = k;
  k->reassociate = reassociate;
  for (int d = 0, a = 0; d < nd; d++) {
    int np = rs ? rs->np[d] : 1;
    for (int j = 1; j < np; j++) k->joined[a + j] = 1;
    a += np;
  }
  L->lnd = nd;
  memcpy(L->lext, ext, sizeof ext);
  memcpy(L->lred, red, sizeof L->lred);
  for (int d = 0, a = 0; d < nd; d++) {
    int np = rs ? rs->np[d] : 1;
    L->lco[d] = lin_cst(0);
    int64_t m = 1;
    for (int j = np - 1; j >= 0; j--) {
      L->lco[d].coef[a + j] = m;
      m *= kext[a + j];
    }
    a += np;
    L->rshape[d] = red[d] ? 1 : ext[d];
  }

  lin outer[KD];
  for (int d = 0; d < nd; d++) outer[d] = red[d] ? lin_cst(0) : L->lco[d];
  if (kind == SM_KERNEL_SCATTER) lower_scatter(L);
  if (kind == SM_KERNEL_MATMUL) build_matmul(L, gr->anchor);
  for (size_t i = 0; i < gr->noutputs && !failed(L); i++) {
    uint32_t o = gr->outputs[i];
    const sm_node *on = node(L, o);
    if (kind == SM_KERNEL_SCATTER && o == gr->anchor) continue;
    if (kind == SM_KERNEL_MATMUL && depends_acc(L, o)) {
      if (numel_of(on) != sm_numel(an->rank, an->shape)) {
        fail(L, "matmul group %zu: output %" PRIu32 " does not have the result's size", gi, o);
        break;
      }
      store_output(L, o, an->rank, an->shape, outer, true);
    } else if (kind == SM_KERNEL_REDUCE && depends_acc(L, o)) {
      if (numel_of(on) != sm_numel(nd, L->rshape)) {
        fail(L, "reduce group %zu: output %" PRIu32 " has neither the input's nor the result's size", gi, o);
        break;
      }
      store_output(L, o, nd, L->rshape, outer, true);
    } else {
      if (numel_of(on) != sm_numel(nd, ext)) {
        fail(L, "group %zu: output %" PRIu32 " does not have the domain's size", gi, o);
        break;
      }
      store_output(L, o, nd, ext, L->lco, false);
    }
  }
  if (!failed(L) && !sm_kernel_sweep(k)) L->oom = true;
  if (!failed(L)) {
    choose_order(L);
    add_scratch(L);
  }
  if (failed(L)) {
    /* the kernel's own allocations failed: out of memory, not "failed" */
    if (k->oom) L->oom = true;
    sm_kernel_free(k);
    L->k = NULL;
    return NULL;
  }
  return k;
}

/* ------------------------------------------------------ domain refinement */

/* The affine part of i64 value v (sums and constant multiples of index
 * values; opaque values contribute nothing) added to coef times s. */
static void affine_part(const sm_kernel *k, int v, int64_t s, int64_t *coef, int depth) {
  if (v < 0 || depth > 16) return;
  const sm_kval *x = &k->vals[v];
  int64_t off, c[KD];
  if (sm_kernel_affine_of(k, v, &off, c)) {
    for (int d = 0; d < k->ndim; d++) coef[d] += s * c[d];
    return;
  }
  if (x->kind != KV_ELEM || x->dtype != SMELT_I64) return;
  if (x->op == OP_ADD) {
    affine_part(k, x->a, s, coef, depth + 1);
    affine_part(k, x->b, s, coef, depth + 1);
  } else if (x->op == OP_MUL && k->vals[x->b].kind == KV_CONST) {
    affine_part(k, x->a, s * k->vals[x->b].ival, coef, depth + 1);
  }
}

/* Bit mask of the kernel axes value v depends on (memoized in m; 0 means
 * unknown, so bit 31 marks "computed"). */
static uint32_t axes_of(const sm_kernel *k, int v, uint32_t *m) {
  if (v < 0) return 0;
  if (m[v]) return m[v] & ~(1u << 31);
  const sm_kval *x = &k->vals[v];
  uint32_t r = 0;
  if (x->kind == KV_IDX) r = 1u << x->axis;
  else if (x->kind == KV_AFFINE)
    for (int d = 0; d < k->ndim; d++) r |= x->coef[d] ? 1u << d : 0;
  r |= axes_of(k, x->a, m) | axes_of(k, x->b, m) | axes_of(k, x->c, m);
  m[v] = r | 1u << 31;
  return r;
}

/* What a kernel's index divisions cost: each idiv and imod counted once
 * per iteration of the loops down to the innermost one it depends on. */
static double div_cost(const sm_kernel *k, uint32_t *m) {
  memset(m, 0, sizeof *m * (size_t)k->nvals);
  double cost = 0;
  for (int v = 0; v < k->nvals; v++) {
    if (k->vals[v].kind != KV_IDIV && k->vals[v].kind != KV_IMOD) continue;
    uint32_t ax = axes_of(k, v, m);
    double n = 1, trips = 1;
    for (int i = 0; i < k->ndim; i++) {
      n *= (double)(k->extent[k->order[i]] > 0 ? k->extent[k->order[i]] : 1);
      if (ax & 1u << k->order[i]) trips = n;
    }
    cost += trips;
  }
  return cost;
}

/* Splits of kernel axes that would make an idiv/imod of k vanish: axis a
 * by factor f when a divisor s meets a coefficient c of a in the divided
 * value (f = s / gcd(c, s) divides the extent). */
typedef struct rcand {
  int axis;
  int64_t f;
} rcand;

static int refine_candidates(const sm_kernel *k, rcand *out, int max) {
  int n = 0;
  bool arg = false;
  for (int i = 0; i < k->naccs; i++) arg = arg || k->accs[i].op == OP_ARGMAX || k->accs[i].op == OP_ARGMIN;
  for (int v = 0; v < k->nvals; v++) {
    const sm_kval *x = &k->vals[v];
    if (x->kind != KV_IDIV && x->kind != KV_IMOD) continue;
    if (k->vals[x->b].kind != KV_CONST) continue;
    int64_t s = k->vals[x->b].ival, coef[KD] = {0};
    if (s <= 1) continue;
    affine_part(k, x->a, 1, coef, 0);
    for (int d = 0; d < k->ndim; d++) {
      if (!coef[d] || (k->reduce[d] && arg)) continue;
      int64_t f = s / gcd64(coef[d], s), e = k->extent[d];
      if (f <= 1 || f >= e || e % f) continue;
      int j = 0;
      while (j < n && !(out[j].axis == d && out[j].f == f)) j++;
      if (j == n && n < max) out[n++] = (rcand){d, f};
    }
  }
  return n;
}

/* rs with kernel axis a (of the kernel rs gives) split by f. */
static bool refine_apply(const rspec *rs, int nd, int a, int64_t f, rspec *out) {
  *out = *rs;
  int total = 0;
  for (int d = 0; d < nd; d++) total += rs->np[d];
  if (total >= KD) return false;
  for (int d = 0, base = 0; d < nd; d++) {
    if (a >= base + rs->np[d]) {
      base += rs->np[d];
      continue;
    }
    int j = a - base;
    int64_t e = rs->part[d][j];
    for (int t = rs->np[d] - 1; t > j; t--) out->part[d][t + 1] = rs->part[d][t];
    out->part[d][j] = e / f;
    out->part[d][j + 1] = f;
    out->np[d]++;
    return true;
  }
  return false;
}

/* Domain refinement: while an idiv/imod of a domain index remains, split
 * that axis (outer, inner) so the division becomes affine in the new
 * axes, keeping a split when it lowers div_cost. Matmul kernels keep
 * their m, n, k axes. */
static sm_kernel *lower_refined(lw *L, size_t gi, bool reassociate) {
  sm_kernel *k = lower(L, gi, reassociate, NULL);
  if (!k || k->kind == SM_KERNEL_MATMUL) return k;
  uint32_t *m = NULL;
  size_t mcap = 0;
  rspec rs;
  memset(&rs, 0, sizeof rs);
  int nd = L->lnd;
  for (int d = 0; d < nd; d++) rs.np[d] = 1, rs.part[d][0] = L->lext[d];
  /* at most 8 rounds and 32 lowerings: refinement must stay cheap */
  int attempts = 0;
  for (int round = 0; round < 8 && attempts < 32; round++) {
    rcand c[16];
    int nc = refine_candidates(k, c, 16);
    if (!nc) break;
    if ((size_t)k->nvals > mcap) {
      sm_free(m);
      mcap = (size_t)k->nvals * 2;
      m = sm_malloc(mcap * sizeof *m);
      if (!m) {
        L->oom = true;
        break;
      }
    }
    double best = div_cost(k, m);
    sm_kernel *bk = NULL;
    rspec brs;
    for (int i = 0; i < nc && attempts < 32; i++) {
      rspec t;
      if (!refine_apply(&rs, nd, c[i].axis, c[i].f, &t)) continue;
      attempts++;
      reset_attempt(L);
      sm_kernel *k2 = lower(L, gi, reassociate, &t);
      if (!k2) {
        /* out of memory fails the lowering (a worse kernel would hide it) */
        if (L->oom) break;
        /* keep what works: forget the error */
        sm_free(L->err);
        L->err = NULL;
        L->oom = false;
        continue;
      }
      if ((size_t)k2->nvals > mcap) {
        sm_free(m);
        mcap = (size_t)k2->nvals * 2;
        m = sm_malloc(mcap * sizeof *m);
        if (!m) {
          L->oom = true;
          sm_kernel_free(k2);
          break;
        }
      }
      double cost = div_cost(k2, m);
      if (cost < best) {
        sm_kernel_free(bk);
        bk = k2, best = cost, brs = t;
      } else {
        sm_kernel_free(k2);
      }
    }
    if (!bk || !m || L->oom) {
      sm_kernel_free(bk);
      break;
    }
    sm_kernel_free(k);
    k = bk, rs = brs;
  }
  sm_free(m);
  if (L->oom) {
    sm_kernel_free(k);
    k = NULL;
  }
  L->k = k;
  return k;
}

sm_kernel *sm_lower_group(const sm_fusion *f, size_t gi, bool reassociate, char **err) {
  if (err) *err = NULL;
  if (!f || gi >= f->ngroups) {
    if (err) *err = sm_strdup("lower: no such group");
    return NULL;
  }
  lw L;
  memset(&L, 0, sizeof L);
  L.f = f;
  L.g = f->g;
  L.gr = &f->groups[gi];
  size_t nn = f->g->nnodes;
  L.member = sm_calloc(nn ? nn : 1, sizeof *L.member);
  L.dep = sm_malloc(nn ? nn : 1);
  L.acc_of = sm_calloc(nn ? nn : 1, sizeof *L.acc_of);
  sm_kernel *k = NULL;
  if (!L.member || !L.dep || !L.acc_of) {
    L.oom = true;
  } else {
    memset(L.dep, -1, nn ? nn : 1);
    for (size_t i = 0; i < L.gr->nmembers; i++)
      if (L.gr->members[i] < nn) L.member[L.gr->members[i]] = true;
    sm_kernel dummy;
    memset(&dummy, 0, sizeof dummy);
    L.k = &dummy; /* failed() reads k before the kernel exists */
    k = lower_refined(&L, gi, reassociate);
  }
  if (!k && err) *err = L.err ? L.err : L.oom ? NULL : sm_strdup("lower: failed");
  else sm_free(L.err);
  for (size_t i = 0; i < L.nmemo; i++) sm_free(L.memo[i].co);
  sm_free(L.memo);
  sm_free(L.mtab);
  sm_free(L.recs);
  sm_free(L.member);
  sm_free(L.dep);
  sm_free(L.acc_of);
  return k;
}
