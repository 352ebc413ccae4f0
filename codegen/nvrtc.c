/* NVRTC: CUDA C to PTX or a cubin at run time, with the disk cache of
 * runtime/disk_cache.c. NVRTC needs no GPU and no driver. Every call here
 * works on its own program, which NVRTC allows from any number of threads;
 * the only shared state is the library and its list of supported
 * architectures, each read once.
 *
 * libnvrtc is dlopen'ed on first use, not linked: it is a large library
 * whose start-up work (thousands of allocations) would otherwise be paid
 * by every process that links libsmelt, CUDA or not, and a libsmelt built
 * with NVRTC still runs where the CUDA toolkit is absent. The header is
 * still read at build time, so every entry point has NVRTC's own type. */
#include "nvrtc.h"

#include "../runtime/disk_cache.h"

#include <dlfcn.h>
#include <nvrtc.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Cache entries: DIR/<key>.ptx or DIR/<key>.cubin with this magic. */
#define CACHE_MAGIC "SMELTCU\0"
/* Bumped when the key's fields or the stored bytes change meaning. */
#define CACHE_KEY_SCHEMA "smelt-nvrtc 1"

/* meson passes the library that was found at build time; these defaults
 * only serve a build outside meson. */
#ifndef SMELT_NVRTC_LIBRARY
#define SMELT_NVRTC_LIBRARY "libnvrtc.so"
#endif

/* ------------------------------------------------------------ library */

/* The entry points, typed from nvrtc.h (a mismatch is a compile error). */
static struct {
  __typeof__(nvrtcGetErrorString) *GetErrorString;
  __typeof__(nvrtcVersion) *Version;
  __typeof__(nvrtcGetNumSupportedArchs) *GetNumSupportedArchs;
  __typeof__(nvrtcGetSupportedArchs) *GetSupportedArchs;
  __typeof__(nvrtcCreateProgram) *CreateProgram;
  __typeof__(nvrtcDestroyProgram) *DestroyProgram;
  __typeof__(nvrtcCompileProgram) *CompileProgram;
  __typeof__(nvrtcGetProgramLogSize) *GetProgramLogSize;
  __typeof__(nvrtcGetProgramLog) *GetProgramLog;
  __typeof__(nvrtcGetPTXSize) *GetPTXSize;
  __typeof__(nvrtcGetPTX) *GetPTX;
  __typeof__(nvrtcGetCUBINSize) *GetCUBINSize;
  __typeof__(nvrtcGetCUBIN) *GetCUBIN;
} nv;

static const struct {
  const char *name;
  size_t off;
} nv_symbols[] = {
#define SYM(field) {"nvrtc" #field, offsetof(__typeof__(nv), field)}
    SYM(GetErrorString), SYM(Version),        SYM(GetNumSupportedArchs), SYM(GetSupportedArchs),
    SYM(CreateProgram),  SYM(DestroyProgram), SYM(CompileProgram),       SYM(GetProgramLogSize),
    SYM(GetProgramLog),  SYM(GetPTXSize),     SYM(GetPTX),               SYM(GetCUBINSize),
    SYM(GetCUBIN),
#undef SYM
};

static pthread_once_t nv_once = PTHREAD_ONCE_INIT;
static char nv_error[1024]; /* "" once loaded */

static void nv_load(void) {
  const char *path = getenv("SMELT_NVRTC");
  if (!path || !*path) path = SMELT_NVRTC_LIBRARY;
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    /* dlerror usually starts with the path already: say it once */
    const char *e = dlerror();
    size_t n = strlen(path);
    if (!e)
      e = "dlopen failed";
    else if (strncmp(e, path, n) == 0 && e[n] == ':' && e[n + 1] == ' ')
      e += n + 2;
    snprintf(nv_error, sizeof nv_error,
             "NVRTC could not be loaded (%s: %s); install CUDA's NVRTC or set SMELT_NVRTC to "
             "libnvrtc's path",
             path, e);
    return;
  }
  for (size_t i = 0; i < sizeof nv_symbols / sizeof *nv_symbols; i++) {
    void *sym = dlsym(lib, nv_symbols[i].name);
    if (!sym) {
      snprintf(nv_error, sizeof nv_error, "NVRTC library %s has no %s (CUDA 11.2 or newer is needed)",
               path, nv_symbols[i].name);
      dlclose(lib);
      memset(&nv, 0, sizeof nv);
      return;
    }
    /* POSIX guarantees function pointers fit in a void * (dlsym) */
    memcpy((char *)&nv + nv_symbols[i].off, &sym, sizeof sym);
  }
  nv_error[0] = 0;
}

/* 0 once NVRTC is loaded, else -1 with *err (when err is not NULL) saying
 * why. The outcome is process-wide and decided once. */
static int nv_ready(char **err) {
  pthread_once(&nv_once, nv_load);
  if (!nv_error[0]) return 0;
  if (err) {
    *err = sm_strdup(nv_error);
    if (!*err) *err = sm_strdup("out of memory");
  }
  return -1;
}

/* "NVRTC: call failed: NVRTC's name of the result". */
static char *api_error(const char *call, nvrtcResult r) {
  return sm_fmt("NVRTC: %s failed: %s", call, nv.GetErrorString(r));
}

static char *oom(void) { return sm_strdup("out of memory"); }

bool sm_nvrtc_available(void) { return nv_ready(NULL) == 0; }

int sm_nvrtc_version(int *major, int *minor, char **err) {
  *err = NULL;
  if (nv_ready(err)) {
    *major = *minor = -1;
    return -1;
  }
  nvrtcResult r = nv.Version(major, minor);
  if (r != NVRTC_SUCCESS) {
    *major = *minor = -1;
    *err = api_error("nvrtcVersion", r);
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------- architectures */

/* NVRTC 13.0 lists 12; room for many more releases. */
#define MAX_ARCHS 256

static pthread_once_t archs_once = PTHREAD_ONCE_INIT;
static int supported_archs[MAX_ARCHS];
static int num_archs;
static char archs_error[128]; /* "" when the list was read */

static void read_supported_archs(void) {
  int n = 0;
  nvrtcResult r = nv.GetNumSupportedArchs(&n);
  if (r != NVRTC_SUCCESS) {
    snprintf(archs_error, sizeof archs_error, "NVRTC: nvrtcGetNumSupportedArchs failed: %s",
             nv.GetErrorString(r));
    return;
  }
  if (n < 0 || n > MAX_ARCHS) {
    snprintf(archs_error, sizeof archs_error,
             "NVRTC: nvrtcGetNumSupportedArchs gave an implausible count (%d)", n);
    return;
  }
  r = nv.GetSupportedArchs(supported_archs);
  if (r != NVRTC_SUCCESS) {
    snprintf(archs_error, sizeof archs_error, "NVRTC: nvrtcGetSupportedArchs failed: %s",
             nv.GetErrorString(r));
    return;
  }
  num_archs = n;
}

/* 0 when NVRTC compiles for cc; else -1 with *err naming `shown` (the
 * arch as the caller wrote it) and listing what NVRTC supports. */
static int check_supported(int cc, const char *shown, char **err) {
  if (nv_ready(err)) return -1;
  pthread_once(&archs_once, read_supported_archs);
  if (archs_error[0]) {
    *err = sm_strdup(archs_error);
    if (!*err) *err = oom();
    return -1;
  }
  for (int i = 0; i < num_archs; i++)
    if (supported_archs[i] == cc) return 0;
  int major = 0, minor = 0;
  nv.Version(&major, &minor);
  sm_buf b = {0};
  sm_buf_printf(&b, "CUDA arch \"%s\" is not supported by NVRTC %d.%d (supported:", shown, major,
                minor);
  for (int i = 0; i < num_archs; i++)
    sm_buf_printf(&b, "%s sm_%d", i ? "," : "", supported_archs[i]);
  sm_buf_puts(&b, ")");
  *err = sm_buf_take(&b);
  if (!*err) *err = oom();
  return -1;
}

int sm_nvrtc_parse_arch(const char *arch, int *cc, char **err) {
  *err = NULL;
  *cc = 0;
  const char *p = arch ? arch : "";
  if (!strncmp(p, "sm_", 3))
    p += 3;
  else if (!strncmp(p, "compute_", 8))
    p += 8;
  /* two or three digits (major then minor: 75, 90, 100), no leading zero,
   * then at most one suffix letter: a (arch-specific) or f (family) */
  int value = 0, ndigits = 0;
  while (*p >= '0' && *p <= '9' && ndigits < 4) value = value * 10 + (*p++ - '0'), ndigits++;
  bool leading_zero = ndigits && (p - ndigits)[0] == '0';
  if (*p == 'a' || *p == 'f') p++;
  if (ndigits < 2 || ndigits > 3 || leading_zero || *p) {
    *err = sm_fmt("unknown CUDA arch \"%s\" (expected sm_XY, sm_XYa, compute_XY or XY, e.g. "
                  "sm_90)",
                  arch ? arch : "(null)");
    if (!*err) *err = oom();
    return -1;
  }
  if (check_supported(value, arch, err)) return -1;
  *cc = value;
  return 0;
}

/* ------------------------------------------------------ compilation */

/* The options of every compilation: IEEE division and square root, no
 * flush to zero, contraction into FMA allowed (what nvcc does by default;
 * results then differ from the cpu target's within the tolerances). */
static const char *const fixed_options[] = {
    "-std=c++17", "--fmad=true", "--ftz=false", "--prec-div=true", "--prec-sqrt=true",
};
#define NFIXED (sizeof fixed_options / sizeof fixed_options[0])

/* Line `line` (1-based) of src: its start and length, false when the
 * source has fewer lines. */
static bool source_line(const char *src, long line, const char **start, size_t *len) {
  const char *p = src;
  for (long i = 1; i < line; i++) {
    p = strchr(p, '\n');
    if (!p) return false;
    p++;
  }
  if (!*p && line > 1) return false;
  size_t n = strcspn(p, "\n");
  if (n && p[n - 1] == '\r') n--;
  *start = p;
  *len = n;
  return true;
}

/* The line number of a log line "NAME(LINE): ... error ...", else 0. */
static long error_line(const char *log_line, size_t len, const char *name) {
  size_t nl = strlen(name);
  if (len < nl + 4 || memcmp(log_line, name, nl) || log_line[nl] != '(') return 0;
  const char *p = log_line + nl + 1, *end = log_line + len;
  long line = 0;
  while (p < end && *p >= '0' && *p <= '9' && line < 100000000) line = line * 10 + (*p++ - '0');
  if (end - p < 3 || memcmp(p, "): ", 3)) return 0;
  p += 3;
  /* "error: ...", "catastrophic error: ...", not "warning #177-D: ..." */
  const char *colon = memchr(p, ':', (size_t)(end - p));
  if (!colon) return 0;
  for (const char *q = p; q + 5 <= colon; q++)
    if (!memcmp(q, "error", 5)) return line;
  return 0;
}

/* True when the log line is NVRTC's own quote of the source line (two
 * spaces, then the line). */
static bool quotes_line(const char *log_line, size_t len, const char *text, size_t tlen) {
  return len == tlen + 2 && !memcmp(log_line, "  ", 2) && !memcmp(log_line + 2, text, tlen);
}

/* True when the log line is a caret line under a quote: spaces, a '^'
 * and maybe '~'s. */
static bool caret_line(const char *log_line, size_t len) {
  bool caret = false;
  for (size_t i = 0; i < len; i++) {
    if (log_line[i] == '^')
      caret = true;
    else if (log_line[i] != ' ' && log_line[i] != '~')
      return false;
  }
  return caret;
}

/* The message of a failed compilation: a first line, then NVRTC's log in
 * which each error is followed by its source line, numbered
 * ("  3 | text", and NVRTC's caret under it when it drew one). */
static char *compile_error(const sm_nvrtc_request *r, const char *log) {
  sm_buf b = {0};
  sm_buf_printf(&b, "NVRTC: %s for sm_%d: compilation failed", r->name, r->cc);
  const char *p = log;
  while (*p) {
    size_t n = strcspn(p, "\n");
    const char *next = p[n] ? p + n + 1 : p + n;
    sm_buf_printf(&b, "\n%.*s", (int)n, p);
    long line = error_line(p, n, r->name);
    const char *text;
    size_t tlen;
    if (line > 0 && source_line(r->src, line, &text, &tlen)) {
      int width = snprintf(NULL, 0, "%ld", line);
      sm_buf_printf(&b, "\n  %ld | %.*s", line, (int)tlen, text);
      /* NVRTC quotes the line itself (without its number): drop that quote
       * and move its caret under ours */
      size_t qn = strcspn(next, "\n");
      if (*next && quotes_line(next, qn, text, tlen)) {
        next = next[qn] ? next + qn + 1 : next + qn;
        size_t cn = strcspn(next, "\n");
        if (*next && cn >= 2 && caret_line(next, cn)) {
          sm_buf_printf(&b, "\n  %*s | %.*s", width, "", (int)(cn - 2), next + 2);
          next = next[cn] ? next + cn + 1 : next + cn;
        }
      }
    }
    p = next;
  }
  /* the log ends with blank lines */
  while (b.len && !b.oom && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' '))
    b.data[--b.len] = 0;
  char *s = sm_buf_take(&b);
  return s ? s : oom();
}

/* The cache key of a request: everything NVRTC's output depends on. */
static void cache_key(const sm_nvrtc_request *r, const char *arch_option, int major, int minor,
                      char hex[33]) {
  sm_hasher h;
  sm_hasher_init(&h);
  sm_hasher_str(&h, CACHE_KEY_SCHEMA);
  char version[32];
  snprintf(version, sizeof version, "NVRTC %d.%d", major, minor);
  sm_hasher_str(&h, version);
  sm_hasher_str(&h, r->output == SM_NVRTC_CUBIN ? "cubin" : "ptx");
  sm_hasher_str(&h, arch_option);
  for (size_t i = 0; i < NFIXED; i++) sm_hasher_str(&h, fixed_options[i]);
  sm_hasher_str(&h, r->src);
  sm_hasher_hex(&h, hex);
}

/* Bytes from the cache that cannot be what was stored are a miss too. */
static bool plausible(const sm_nvrtc_request *r, const unsigned char *data, size_t len) {
  if (r->output == SM_NVRTC_CUBIN) return len >= 4 && !memcmp(data, "\x7f" "ELF", 4);
  return strlen((const char *)data) == len;
}

/* Runs NVRTC. The output (NUL-terminated, *len without the NUL) or NULL
 * with *err set. */
static unsigned char *run_nvrtc(const sm_nvrtc_request *r, const char *arch_option, size_t *len,
                                char **err) {
  nvrtcProgram prog;
  nvrtcResult res = nv.CreateProgram(&prog, r->src, r->name, 0, NULL, NULL);
  if (res != NVRTC_SUCCESS) {
    *err = api_error("nvrtcCreateProgram", res);
    return NULL;
  }
  unsigned char *out = NULL;
  char *log = NULL;
  const char *options[NFIXED + 1];
  options[0] = arch_option;
  for (size_t i = 0; i < NFIXED; i++) options[i + 1] = fixed_options[i];
  res = nv.CompileProgram(prog, (int)(NFIXED + 1), options);
  if (res == NVRTC_ERROR_COMPILATION) {
    size_t log_size = 0;
    res = nv.GetProgramLogSize(prog, &log_size);
    if (res != NVRTC_SUCCESS) {
      *err = api_error("nvrtcGetProgramLogSize", res);
      goto out;
    }
    log = sm_malloc(log_size + 1);
    if (!log) {
      *err = oom();
      goto out;
    }
    res = nv.GetProgramLog(prog, log);
    if (res != NVRTC_SUCCESS) {
      *err = api_error("nvrtcGetProgramLog", res);
      goto out;
    }
    log[log_size] = 0;
    *err = compile_error(r, log);
    goto out;
  }
  if (res != NVRTC_SUCCESS) {
    *err = api_error("nvrtcCompileProgram", res);
    goto out;
  }
  bool cubin = r->output == SM_NVRTC_CUBIN;
  size_t size = 0;
  res = cubin ? nv.GetCUBINSize(prog, &size) : nv.GetPTXSize(prog, &size);
  if (res != NVRTC_SUCCESS) {
    *err = api_error(cubin ? "nvrtcGetCUBINSize" : "nvrtcGetPTXSize", res);
    goto out;
  }
  if (size == 0) {
    *err = sm_fmt("NVRTC: %s for sm_%d: no %s was produced", r->name, r->cc,
                  cubin ? "cubin" : "PTX");
    goto out;
  }
  out = sm_malloc(size + 1);
  if (!out) {
    *err = oom();
    goto out;
  }
  res = cubin ? nv.GetCUBIN(prog, (char *)out) : nv.GetPTX(prog, (char *)out);
  if (res != NVRTC_SUCCESS) {
    *err = api_error(cubin ? "nvrtcGetCUBIN" : "nvrtcGetPTX", res);
    sm_free(out);
    out = NULL;
    goto out;
  }
  out[size] = 0;
  /* PTX's size counts its NUL */
  *len = cubin ? size : strlen((const char *)out);
out:
  sm_free(log);
  nv.DestroyProgram(&prog);
  return out;
}

void *sm_nvrtc_compile(const sm_nvrtc_request *r, size_t *len, bool *from_cache, char **err) {
  *err = NULL;
  *len = 0;
  if (from_cache) *from_cache = false;
  if (!r || !r->src || !r->name) {
    *err = sm_strdup("NVRTC: a request needs a source and a file name");
    return NULL;
  }
  char shown[32];
  snprintf(shown, sizeof shown, "sm_%d", r->cc);
  if (check_supported(r->cc, shown, err)) return NULL;
  int major = 0, minor = 0;
  if (sm_nvrtc_version(&major, &minor, err)) return NULL;
  char arch_option[48];
  snprintf(arch_option, sizeof arch_option, "-arch=%s_%d",
           r->output == SM_NVRTC_CUBIN ? "sm" : "compute", r->cc);
  const char *ext = r->output == SM_NVRTC_CUBIN ? "cubin" : "ptx";
  const char *cache_dir = r->cache_dir && *r->cache_dir ? r->cache_dir : NULL;
  char key[33];
  if (cache_dir) {
    cache_key(r, arch_option, major, minor, key);
    size_t n = 0;
    unsigned char *data = sm_cache_read(cache_dir, key, ext, CACHE_MAGIC, &n);
    if (data && plausible(r, data, n)) {
      *len = n;
      if (from_cache) *from_cache = true;
      return data;
    }
    sm_free(data);
  }
  unsigned char *out = run_nvrtc(r, arch_option, len, err);
  if (out && cache_dir) sm_cache_write(cache_dir, key, ext, CACHE_MAGIC, out, *len);
  return out;
}
