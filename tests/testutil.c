/* Helpers shared by the Check suites (see testutil.h). */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "testutil: out of memory\n");
    abort();
  }
  return p;
}

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = xmalloc(n);
  memcpy(d, s, n);
  return d;
}

static char *xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = xmalloc((size_t)(n < 0 ? 0 : n) + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)(n < 0 ? 0 : n) + 1, fmt, ap);
  va_end(ap);
  return s;
}

smelt_graph *tu_graph_new_(const char *file, int line) {
  smelt_graph *g = smelt_graph_new();
  if (!g) _ck_assert_failed(file, line, "smelt_graph_new", "smelt_graph_new returned NULL");
  return g;
}

/* -------------------------------------------------------------- sources */

smelt_node tu_input(smelt_graph *g, const char *name, smelt_dtype dt, int rank, ...) {
  int64_t dims[SMELT_MAX_RANK + 8] = {0};
  va_list ap;
  va_start(ap, rank);
  for (int i = 0; i < rank && i < SMELT_MAX_RANK + 8; i++) dims[i] = va_arg(ap, int);
  va_end(ap);
  return smelt_input(g, name, dt, rank, dims);
}

smelt_node tu_const_f32(smelt_graph *g, int rank, const int64_t *dims, const float *v) {
  return smelt_const_array(g, SMELT_F32, rank, dims, v);
}
smelt_node tu_const_f64(smelt_graph *g, int rank, const int64_t *dims, const double *v) {
  return smelt_const_array(g, SMELT_F64, rank, dims, v);
}
smelt_node tu_const_i32(smelt_graph *g, int rank, const int64_t *dims, const int32_t *v) {
  return smelt_const_array(g, SMELT_I32, rank, dims, v);
}
smelt_node tu_const_i64(smelt_graph *g, int rank, const int64_t *dims, const int64_t *v) {
  return smelt_const_array(g, SMELT_I64, rank, dims, v);
}
smelt_node tu_const_bool(smelt_graph *g, int rank, const int64_t *dims, const uint8_t *v) {
  return smelt_const_array(g, SMELT_BOOL, rank, dims, v);
}

static int64_t numel_of(int rank, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims ? dims[i] : 1;
  return n;
}

/* Writes v as element i of a dtype-dt array at p. */
static void store(smelt_dtype dt, void *p, int64_t i, double v) {
  switch (dt) {
  case SMELT_F32: ((float *)p)[i] = (float)v; break;
  case SMELT_F64: ((double *)p)[i] = v; break;
  case SMELT_I32: ((int32_t *)p)[i] = (int32_t)v; break;
  case SMELT_I64: ((int64_t *)p)[i] = (int64_t)v; break;
  case SMELT_BOOL: ((uint8_t *)p)[i] = v != 0; break;
  default: break;
  }
}

smelt_node tu_const_d(smelt_graph *g, smelt_dtype dt, int rank, const int64_t *dims,
                      const double *v) {
  int64_t n = rank < 0 || rank > SMELT_MAX_RANK ? 0 : numel_of(rank, dims);
  if (n < 0) n = 0;
  size_t es = smelt_dtype_size(dt) ? smelt_dtype_size(dt) : 1;
  void *buf = xmalloc((size_t)n * es);
  for (int64_t i = 0; i < n; i++) store(dt, buf, i, v[i]);
  smelt_node r = smelt_const_array(g, dt, rank, dims, buf);
  free(buf);
  return r;
}

smelt_node tu_const_checked_(const char *file, int line, smelt_graph *g, smelt_dtype dt,
                             int rank, const int64_t *dims, int nvals, const double *v) {
  int64_t n = numel_of(rank, dims);
  if (n != nvals)
    _ck_assert_failed(file, line, "TU_ARR", "TU_ARR: %d values given for %lld elements", nvals,
                      (long long)n);
  return tu_const_d(g, dt, rank, dims, v);
}

/* ----------------------------------------------------------- evaluation */

double *tu_to_double(smelt_dtype dt, const void *p, int64_t n) {
  double *d = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(double));
  for (int64_t i = 0; i < n; i++) {
    switch (dt) {
    case SMELT_F32: d[i] = ((const float *)p)[i]; break;
    case SMELT_F64: d[i] = ((const double *)p)[i]; break;
    case SMELT_I32: d[i] = ((const int32_t *)p)[i]; break;
    case SMELT_I64: d[i] = (double)((const int64_t *)p)[i]; break;
    case SMELT_BOOL: d[i] = ((const uint8_t *)p)[i]; break;
    default: d[i] = NAN; break;
    }
  }
  return d;
}

/* The declared type of input `name`, to bind data to it. An unknown name
 * gets a dummy type, so that the interpreter or program reports the
 * name itself. */
typedef struct bind_type {
  smelt_dtype dt;
  int rank;
  const int64_t *dims;
  size_t nbytes;
} bind_type;

static bind_type bind_type_of(const smelt_graph *g, const char *name) {
  static const int64_t none[1] = {1};
  smelt_node in = smelt_find(g, name);
  bind_type t = {smelt_node_dtype(g, in), 0, NULL, 0};
  if (!smelt_node_valid(in)) return (bind_type){t.dt, 1, none, 4};
  t.dims = smelt_node_shape(g, in, &t.rank);
  t.nbytes = (size_t)smelt_node_numel(g, in) * smelt_dtype_size(t.dt);
  return t;
}

/* tu_run on a compiled target ($SMELT_TEST_TARGET, e.g. cpu): the graph's
 * outputs as a program (params from their initializers), so every suite
 * that evaluates through tu_run also tests that backend. */
static char *run_program(smelt_graph *g, const char *target, int nout, const smelt_node *outs,
                         const char *const *names, void **results, int nbind,
                         const tu_bind *binds) {
  smelt_compile_options o = smelt_compile_defaults();
  if (strcmp(target, "cpu") == 0) o.target = SMELT_TARGET_CPU;
  else if (strcmp(target, "cuda") == 0) o.target = SMELT_TARGET_CUDA;
  else return xasprintf("SMELT_TEST_TARGET=%s is not a target", target);
  smelt_params *p = smelt_params_new(g);
  if (!p) return xstrdup("smelt_params_new returned NULL");
  smelt_program *pr = smelt_program_compile(g, p, nout, names, 0, NULL, &o);
  char *err = NULL;
  if (!pr) {
    smelt_params_free(p);
    return xstrdup("smelt_program_compile returned NULL");
  }
  if (smelt_program_error(pr)) {
    err = xasprintf("compile: %s", smelt_program_error(pr));
    goto done;
  }
  for (int i = 0; i < nbind; i++) {
    bind_type t = bind_type_of(g, binds[i].name);
    if (smelt_program_bind(pr, binds[i].name, t.dt, t.rank, t.dims, binds[i].data, t.nbytes) !=
        0) {
      err = xasprintf("bind %s: %s", binds[i].name, smelt_program_error(pr));
      goto done;
    }
  }
  if (smelt_program_run(pr) != 0) {
    err = xasprintf("run: %s", smelt_program_error(pr));
    goto done;
  }
  for (int i = 0; i < nout; i++) {
    smelt_dtype dt = smelt_node_dtype(g, outs[i]);
    size_t nbytes = (size_t)smelt_node_numel(g, outs[i]) * smelt_dtype_size(dt);
    results[i] = xmalloc(nbytes);
    if (smelt_program_read(pr, names[i], dt, results[i], nbytes) != 0) {
      err = xasprintf("read %s: %s", names[i], smelt_program_error(pr));
      for (int j = 0; j <= i; j++) {
        free(results[j]);
        results[j] = NULL;
      }
      goto done;
    }
  }
done:
  smelt_program_free(pr);
  smelt_params_free(p);
  return err;
}

char *tu_run(smelt_graph *g, int nout, const smelt_node *outs, void **results, int nbind,
             const tu_bind *binds) {
  for (int i = 0; i < nout; i++) results[i] = NULL;
  if (!g) return xstrdup("graph is NULL");
  if (smelt_graph_error(g)) return xasprintf("graph error: %s", smelt_graph_error(g));
  char(*names)[32] = xmalloc(sizeof(*names) * (size_t)(nout > 0 ? nout : 1));
  for (int i = 0; i < nout; i++) {
    if (!smelt_node_valid(outs[i])) {
      free(names);
      return xasprintf("output %d: invalid node", i);
    }
    /* A fresh name; skip ones the test may already use. */
    for (size_t k = smelt_graph_output_count(g);; k++) {
      snprintf(names[i], sizeof names[i], "tu_out%zu", k);
      bool used = false;
      for (size_t j = 0; j < smelt_graph_output_count(g); j++) {
        const char *nm;
        smelt_graph_output(g, j, &nm);
        if (nm && strcmp(nm, names[i]) == 0) used = true;
      }
      if (!used) break;
    }
    smelt_output(g, names[i], outs[i]);
    if (smelt_graph_error(g)) {
      free(names);
      return xasprintf("output registration: %s", smelt_graph_error(g));
    }
  }
  /* Every graph a test runs must also survive the text round trip:
   * print, parse, print gives the same text. */
  char *text = smelt_graph_print(g);
  if (text) {
    char perr[512] = "";
    smelt_graph *g2 = smelt_graph_parse(text, strlen(text), "<test graph>", perr, sizeof perr);
    char *text2 = g2 ? smelt_graph_print(g2) : NULL;
    bool same = text2 && strcmp(text, text2) == 0;
    smelt_free(text2);
    smelt_graph_free(g2);
    smelt_free(text);
    if (!same) {
      free(names);
      return xasprintf("text round trip failed: %s", g2 ? "the reprinted text differs" : perr);
    }
  }
  const char *target = getenv("SMELT_TEST_TARGET");
  if (target && *target && strcmp(target, "interp") != 0) {
    const char **nm = xmalloc(sizeof *nm * (size_t)(nout ? nout : 1));
    for (int i = 0; i < nout; i++) nm[i] = names[i];
    char *perr = run_program(g, target, nout, outs, nm, results, nbind, binds);
    free(nm);
    free(names);
    return perr;
  }
  smelt_interp *it = smelt_interp_new(g);
  if (!it) {
    free(names);
    return xstrdup("smelt_interp_new returned NULL");
  }
  char *err = NULL;
  if (smelt_interp_error(it)) {
    err = xasprintf("interp_new: %s", smelt_interp_error(it));
    goto done;
  }
  for (int i = 0; i < nbind; i++) {
    bind_type t = bind_type_of(g, binds[i].name);
    if (smelt_interp_bind(it, binds[i].name, t.dt, t.rank, t.dims, binds[i].data, t.nbytes) != 0) {
      const char *m = smelt_interp_error(it);
      err = xasprintf("bind %s: %s", binds[i].name, m ? m : "(no message)");
      goto done;
    }
  }
  if (smelt_interp_run(it) != 0) {
    const char *m = smelt_interp_error(it);
    err = xasprintf("run: %s", m ? m : "(no message)");
    goto done;
  }
  for (int i = 0; i < nout; i++) {
    smelt_dtype dt = smelt_node_dtype(g, outs[i]);
    size_t nbytes = (size_t)smelt_node_numel(g, outs[i]) * smelt_dtype_size(dt);
    results[i] = xmalloc(nbytes);
    if (smelt_interp_read(it, names[i], dt, results[i], nbytes) != 0) {
      const char *m = smelt_interp_error(it);
      err = xasprintf("read %s: %s", names[i], m ? m : "(no message)");
      for (int j = 0; j <= i; j++) {
        free(results[j]);
        results[j] = NULL;
      }
      goto done;
    }
  }
done:
  smelt_interp_free(it);
  free(names);
  return err;
}

void *tu_run1_(const char *file, int line, smelt_graph *g, smelt_node n, int nbind,
               const tu_bind *binds) {
  void *r = NULL;
  char *err = tu_run(g, 1, &n, &r, nbind, binds);
  if (err) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", err);
    free(err);
    _ck_assert_failed(file, line, "run", "running the graph failed: %s", msg);
  }
  return r;
}

double *tu_eval_(const char *file, int line, smelt_graph *g, smelt_node n, int nbind,
                 const tu_bind *binds) {
  void *r = tu_run1_(file, line, g, n, nbind, binds);
  double *d = tu_to_double(smelt_node_dtype(g, n), r, smelt_node_numel(g, n));
  free(r);
  return d;
}

void tu_assert_run_error_(const char *file, int line, smelt_graph *g, smelt_node n, int nbind,
                          const tu_bind *binds, const char *substr) {
  void *r = NULL;
  char *err = tu_run(g, 1, &n, &r, nbind, binds);
  if (!err) {
    free(r);
    _ck_assert_failed(file, line, "run error", "expected a run error containing \"%s\", the run succeeded",
                      substr);
  }
  bool ok = strstr(err, substr) != NULL;
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", err);
  free(err);
  if (!ok)
    _ck_assert_failed(file, line, "run error", "run error \"%s\" does not contain \"%s\"", msg,
                      substr);
}

/* ------------------------------------------------------------ asserting */

bool tu_close(double got, double want, double atol, double rtol) {
  if (isnan(want)) return isnan(got);
  if (isnan(got)) return false;
  if (isinf(want) || isinf(got)) return got == want;
  return fabs(got - want) <= atol + rtol * fabs(want);
}

void tu_assert_close_(const char *file, int line, const double *got, const double *want,
                      int64_t n, double atol, double rtol) {
  for (int64_t i = 0; i < n; i++)
    if (!tu_close(got[i], want[i], atol, rtol))
      _ck_assert_failed(file, line, "close",
                        "element %lld: got %.17g, want %.17g (atol %g, rtol %g)", (long long)i,
                        got[i], want[i], atol, rtol);
}

void tu_assert_values_(const char *file, int line, smelt_graph *g, smelt_node n, double atol,
                       int64_t count, const double *want, int nbind, const tu_bind *binds) {
  if (smelt_graph_error(g))
    _ck_assert_failed(file, line, "values", "graph error: %s", smelt_graph_error(g));
  if (!smelt_node_valid(n)) _ck_assert_failed(file, line, "values", "invalid node");
  int64_t numel = smelt_node_numel(g, n);
  if (numel != count) {
    int rank;
    const int64_t *d = smelt_node_shape(g, n, &rank);
    char s[128];
    _ck_assert_failed(file, line, "values", "node has %lld elements (shape %s), %lld values expected",
                      (long long)numel, tu_shape_str(rank, d, s, sizeof s), (long long)count);
  }
  double *got = tu_eval_(file, line, g, n, nbind, binds);
  for (int64_t i = 0; i < count; i++)
    if (!tu_close(got[i], want[i], atol, atol)) {
      double gv = got[i];
      free(got);
      _ck_assert_failed(file, line, "values", "element %lld: got %.17g, want %.17g (tol %g)",
                        (long long)i, gv, want[i], atol);
    }
  free(got);
}

char *tu_shape_str(int rank, const int64_t *dims, char *buf, size_t len) {
  size_t k = 0;
  if (len == 0) return buf;
  buf[0] = 0;
  k += (size_t)snprintf(buf + k, len - k, "[");
  for (int i = 0; i < rank && k < len; i++)
    k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? "," : "", (long long)(dims ? dims[i] : -1));
  if (k < len) snprintf(buf + k, len - k, "]");
  return buf;
}

bool tu_shape_eq(const smelt_graph *g, smelt_node n, int rank, const int64_t *dims) {
  if (!smelt_node_valid(n)) return false;
  int r;
  const int64_t *d = smelt_node_shape(g, n, &r);
  if (!d || r != rank) return false;
  for (int i = 0; i < rank; i++)
    if (d[i] != dims[i]) return false;
  return true;
}

void tu_assert_shape_(const char *file, int line, const smelt_graph *g, smelt_node n, int rank,
                      ...) {
  int64_t want[SMELT_MAX_RANK + 8] = {0};
  va_list ap;
  va_start(ap, rank);
  for (int i = 0; i < rank && i < SMELT_MAX_RANK + 8; i++) want[i] = va_arg(ap, int);
  va_end(ap);
  char ws[256], gs[256];
  tu_shape_str(rank, want, ws, sizeof ws);
  if (!smelt_node_valid(n) || !smelt_node_shape(g, n, NULL)) {
    const char *e = smelt_graph_error(g);
    _ck_assert_failed(file, line, "shape", "invalid node where shape %s was expected (graph error: %s)",
                      ws, e ? e : "none");
  }
  if (!tu_shape_eq(g, n, rank, want)) {
    int r;
    const int64_t *d = smelt_node_shape(g, n, &r);
    _ck_assert_failed(file, line, "shape", "shape %s, want %s", tu_shape_str(r, d, gs, sizeof gs),
                      ws);
  }
}

void tu_assert_dtype_(const char *file, int line, const smelt_graph *g, smelt_node n,
                      smelt_dtype dt) {
  const char *e = smelt_graph_error(g);
  if (e) _ck_assert_failed(file, line, "dtype", "graph error: %s", e);
  if (!smelt_node_valid(n) || !smelt_node_op(g, n))
    _ck_assert_failed(file, line, "dtype", "invalid node where dtype %s was expected",
                      smelt_dtype_name(dt));
  smelt_dtype got = smelt_node_dtype(g, n);
  if (got != dt)
    _ck_assert_failed(file, line, "dtype", "dtype %s, want %s", smelt_dtype_name(got),
                      smelt_dtype_name(dt));
}

void tu_assert_ok_(const char *file, int line, const smelt_graph *g) {
  const char *e = smelt_graph_error(g);
  if (e) _ck_assert_failed(file, line, "no error", "unexpected graph error: %s", e);
}

void tu_assert_error_(const char *file, int line, const smelt_graph *g, const char **substrs) {
  const char *e = smelt_graph_error(g);
  if (!e) _ck_assert_failed(file, line, "error", "expected a graph error containing \"%s\", got none",
                            substrs[0] ? substrs[0] : "");
  for (const char **s = substrs; *s; s++)
    if (!strstr(e, *s))
      _ck_assert_failed(file, line, "error", "graph error \"%s\" does not contain \"%s\"", e, *s);
}

/* ------------------------------------------------------- graph structure */

smelt_node tu_node_input(const smelt_graph *g, smelt_node n, int i) {
  const sm_node *p = sm_get(g, n);
  if (!p || i < 0 || (uint32_t)i >= p->ninputs) return SMELT_INVALID;
  return sm_handle(g, p->inputs[i]);
}

int tu_node_ninputs(const smelt_graph *g, smelt_node n) {
  const sm_node *p = sm_get(g, n);
  return p ? (int)p->ninputs : -1;
}

int tu_count_op(const smelt_graph *g, const char *op) {
  int c = 0;
  size_t n = smelt_graph_node_count(g);
  for (size_t i = 0; i < n; i++) {
    const char *o = smelt_node_op(g, smelt_graph_node(g, i));
    if (o && strcmp(o, op) == 0) c++;
  }
  return c;
}

bool tu_text_contains(const smelt_graph *g, const char *substr) {
  char *t = smelt_graph_print(g);
  if (!t) return false;
  bool r = strstr(t, substr) != NULL;
  smelt_free(t);
  return r;
}

char *tu_temp_dir(const char *tag) {
  char tmpl[256];
  snprintf(tmpl, sizeof tmpl, "/tmp/smelt-%s-XXXXXX", tag);
  ck_assert_msg(mkdtemp(tmpl) != NULL, "mkdtemp %s failed", tmpl);
  char *d = strdup(tmpl);
  ck_assert_ptr_nonnull(d);
  return d;
}

void tu_rm_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      char p[4096];
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      struct stat st;
      if (!lstat(p, &st) && S_ISDIR(st.st_mode))
        tu_rm_tree(p);
      else
        unlink(p);
    }
    closedir(d);
  }
  rmdir(dir);
}

bool tu_have_cpu(void) {
  smelt_graph *g = smelt_graph_new();
  smelt_node x = smelt_input(g, "x", SMELT_F32, 0, NULL);
  smelt_output(g, "y", smelt_neg(g, x));
  smelt_params *p = smelt_params_new(g);
  smelt_compile_options o = smelt_compile_defaults();
  o.target = SMELT_TARGET_CPU;
  o.cache_dir = NULL;
  smelt_program *pr = smelt_program_compile(g, p, 1, (const char *[]){"y"}, 0, NULL, &o);
  bool ok = pr && !smelt_program_error(pr);
  smelt_program_free(pr);
  smelt_params_free(p);
  smelt_graph_free(g);
  return ok;
}
