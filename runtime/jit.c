/* Machine code for a program's kernels: emit LLVM IR (codegen/llvm.c),
 * verify, optimize, emit an object in memory, keep it in the disk cache,
 * and link it with ORC LLJIT. See docs/cpu-backend.md. */
#include "jit.h"

#include "../codegen/llvm.h"

#include <errno.h>
#include <fcntl.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/blake3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SMELT_LLVM_VERSION
#define SMELT_LLVM_VERSION "unknown"
#endif
#define SM_STR_(x) #x
#define SM_STR(x) SM_STR_(x)
#define SM_SMELT_VERSION                                                                  \
  SM_STR(SMELT_VERSION_MAJOR) "." SM_STR(SMELT_VERSION_MINOR) "." SM_STR(SMELT_VERSION_PATCH)
/* Bumped whenever the code this backend emits for the same kernel IR
 * changes, so that caches of older builds of one version are not reused. */
#define SM_CODEGEN_REVISION 1

struct sm_jit {
  LLVMOrcLLJITRef lljit;
  size_t n;
  char (*names)[32];
  sm_kernel_fn *fns;
  bool from_cache;
};

/* "what: LLVM's message", consuming the error. */
static char *llvm_err(const char *what, LLVMErrorRef e) {
  char *msg = LLVMGetErrorMessage(e);
  char *s = sm_fmt("%s: %s", what, msg);
  LLVMDisposeErrorMessage(msg);
  return s;
}

/* ---------------------------------------------------------- the cache */

/* File layout: header, then the object file.
 *   0  "SMELTOBJ"      magic
 *   8  u32 format version (little-endian)
 *  12  u32 0
 *  16  u64 payload length (little-endian)
 *  24  16 bytes: BLAKE3 of the payload, first 128 bits */
#define CACHE_MAGIC "SMELTOBJ"
#define CACHE_FORMAT 1u
#define CACHE_HEADER 40
#define CACHE_MAX ((uint64_t)1 << 31)

static void put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
  return v;
}
static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void hash128(const void *data, size_t len, unsigned char out[16]) {
  llvm_blake3_hasher h;
  llvm_blake3_hasher_init(&h);
  llvm_blake3_hasher_update(&h, data, len);
  llvm_blake3_hasher_finalize(&h, out, 16);
}

/* One field of the key: its length, then its bytes (no ambiguity between
 * fields). */
static void key_field(llvm_blake3_hasher *h, const char *s) {
  unsigned char len[8];
  size_t n = s ? strlen(s) : 0;
  put_u64(len, n);
  llvm_blake3_hasher_update(h, len, 8);
  if (n) llvm_blake3_hasher_update(h, s, n);
}

/* The cache key as 32 hex digits: the printed kernels, the target, the
 * versions and the options. -1 when out of memory. */
static int cache_key(sm_kernel *const *kernels, size_t n, LLVMTargetMachineRef tm, int opt_level,
                     bool reassociate, char hex[33]) {
  llvm_blake3_hasher h;
  llvm_blake3_hasher_init(&h);
  char line[128];
  snprintf(line, sizeof line, "smelt-cpu-object %d", SM_CODEGEN_REVISION);
  key_field(&h, line);
  key_field(&h, SM_SMELT_VERSION);
  key_field(&h, SMELT_LLVM_VERSION);
  char *triple = LLVMGetTargetMachineTriple(tm);
  char *cpu = LLVMGetTargetMachineCPU(tm);
  char *feat = LLVMGetTargetMachineFeatureString(tm);
  key_field(&h, triple);
  key_field(&h, cpu);
  key_field(&h, feat);
  LLVMDisposeMessage(triple);
  LLVMDisposeMessage(cpu);
  LLVMDisposeMessage(feat);
  snprintf(line, sizeof line, "O%d reassociate=%d matmul=%s", opt_level, reassociate,
           sm_llvm_use_blocked_matmul() ? "blocked" : "generic");
  key_field(&h, line);
  for (size_t i = 0; i < n; i++) {
    char *text = sm_kernel_print(kernels[i]);
    if (!text) return -1;
    key_field(&h, text);
    sm_free(text);
  }
  unsigned char out[16];
  llvm_blake3_hasher_finalize(&h, out, 16);
  for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", out[i]);
  return 0;
}

static char *cache_path(const char *dir, const char *hex) {
  sm_buf b = {0};
  sm_buf_printf(&b, "%s/%s.o", dir, hex);
  return sm_buf_take(&b);
}

/* The object under the key, or NULL (missing, unreadable, truncated or
 * corrupt: the caller compiles and replaces it). */
static unsigned char *cache_read(const char *dir, const char *hex, size_t *len) {
  char *path = cache_path(dir, hex);
  if (!path) return NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  sm_free(path);
  if (fd < 0) return NULL;
  unsigned char *data = NULL;
  struct stat st;
  unsigned char hdr[CACHE_HEADER];
  if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < CACHE_HEADER ||
      (uint64_t)st.st_size > CACHE_MAX + CACHE_HEADER)
    goto bad;
  if (read(fd, hdr, CACHE_HEADER) != CACHE_HEADER) goto bad;
  uint64_t n = get_u64(hdr + 16);
  if (memcmp(hdr, CACHE_MAGIC, 8) || get_u32(hdr + 8) != CACHE_FORMAT || n == 0 ||
      n != (uint64_t)st.st_size - CACHE_HEADER)
    goto bad;
  data = sm_malloc((size_t)n);
  if (!data) goto bad;
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, data + got, (size_t)n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) goto bad;
    got += (size_t)r;
  }
  unsigned char h[16];
  hash128(data, (size_t)n, h);
  if (memcmp(h, hdr + 24, 16)) goto bad;
  close(fd);
  *len = (size_t)n;
  return data;
bad:
  sm_free(data);
  close(fd);
  return NULL;
}

/* mkdir -p; true when dir exists afterwards. */
static bool make_dirs(const char *dir) {
  char *p = sm_strdup(dir);
  if (!p) return false;
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, 0777) && errno != EEXIST) {
      sm_free(p);
      return false;
    }
    *s = '/';
  }
  bool ok = !mkdir(p, 0777) || errno == EEXIST;
  sm_free(p);
  struct stat st;
  return ok && !stat(dir, &st) && S_ISDIR(st.st_mode);
}

static bool write_all(int fd, const unsigned char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

/* Writes the object under the key: a unique temp file in the same
 * directory, then rename (atomic; concurrent writers of one key each
 * rename a complete file). Failures are ignored: the cache is optional. */
static void cache_write(const char *dir, const char *hex, const void *obj, size_t len) {
  if (!make_dirs(dir)) return;
  sm_buf b = {0};
  sm_buf_printf(&b, "%s/.%s.tmp.XXXXXX", dir, hex);
  char *tmp = sm_buf_take(&b);
  char *path = cache_path(dir, hex);
  if (!tmp || !path) goto out;
  int fd = mkstemp(tmp);
  if (fd < 0) goto out;
  unsigned char hdr[CACHE_HEADER] = {0};
  memcpy(hdr, CACHE_MAGIC, 8);
  put_u32(hdr + 8, CACHE_FORMAT);
  put_u64(hdr + 16, len);
  hash128(obj, len, hdr + 24);
  bool ok = write_all(fd, hdr, CACHE_HEADER) && write_all(fd, obj, len);
  ok = !close(fd) && ok;
  if (!ok || rename(tmp, path)) unlink(tmp);
out:
  sm_free(tmp);
  sm_free(path);
}

/* --------------------------------------------------------- compilation */

/* Kernels to an object file in memory. NULL with *err set. */
static LLVMMemoryBufferRef compile_object(sm_kernel *const *kernels, size_t n,
                                          LLVMTargetMachineRef tm, int opt_level,
                                          sm_dump *dump, char **err) {
  LLVMContextRef cx = LLVMContextCreate();
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("smelt", cx);
  LLVMMemoryBufferRef buf = NULL;
  char *msg = NULL;
  if (sm_llvm_emit(m, tm, kernels, n, err)) goto out;
  sm_llvm_dump_module(dump, "before", m);
  if (LLVMVerifyModule(m, LLVMReturnStatusAction, &msg)) {
    *err = sm_fmt("LLVM IR of the kernels is invalid (a backend bug): %s", msg);
    goto out;
  }
  if (sm_llvm_optimize(m, tm, opt_level, err)) goto out;
  sm_llvm_dump_module(dump, "after", m);
  sm_llvm_dump_asm(dump, tm, m);
  if (msg) LLVMDisposeMessage(msg);
  msg = NULL;
  if (LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMObjectFile, &msg, &buf)) {
    *err = sm_fmt("LLVM object emission: %s", msg ? msg : "failed");
    buf = NULL;
  }
out:
  if (msg) LLVMDisposeMessage(msg);
  LLVMDisposeModule(m);
  LLVMContextDispose(cx);
  return buf;
}

/* Links the object (taking it) and looks the kernels up. */
static int link_object(sm_jit *j, sm_kernel *const *kernels, size_t n, LLVMMemoryBufferRef obj,
                       char **err) {
  LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
  LLVMErrorRef e = LLVMOrcCreateLLJIT(&j->lljit, builder); /* takes builder */
  if (e) {
    j->lljit = NULL;
    LLVMDisposeMemoryBuffer(obj);
    *err = llvm_err("LLVM JIT", e);
    return -1;
  }
  /* symbols of the process (libm's log, cos, ...) resolve for the object */
  LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(j->lljit);
  LLVMOrcDefinitionGeneratorRef gen = NULL;
  e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
      &gen, LLVMOrcLLJITGetGlobalPrefix(j->lljit), NULL, NULL);
  if (e) {
    LLVMDisposeMemoryBuffer(obj);
    *err = llvm_err("LLVM JIT process symbols", e);
    return -1;
  }
  LLVMOrcJITDylibAddGenerator(jd, gen);
  e = LLVMOrcLLJITAddObjectFile(j->lljit, jd, obj); /* takes obj */
  if (e) {
    *err = llvm_err("LLVM JIT adding the object", e);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    LLVMOrcExecutorAddress addr = 0;
    e = LLVMOrcLLJITLookup(j->lljit, &addr, kernels[i]->name);
    if (e) {
      char what[64];
      snprintf(what, sizeof what, "LLVM JIT lookup of %s", kernels[i]->name);
      *err = llvm_err(what, e);
      return -1;
    }
    snprintf(j->names[i], sizeof j->names[i], "%s", kernels[i]->name);
    j->fns[i] = (sm_kernel_fn)(uintptr_t)addr;
  }
  return 0;
}

sm_jit *sm_jit_compile(sm_kernel *const *kernels, size_t n, const smelt_compile_options *o,
                       sm_dump *dump, char **err) {
  *err = NULL;
  int opt_level = o ? o->opt_level : 3;
  bool reassociate = o && o->reassociate;
  const char *cache_dir = o && o->cache_dir && *o->cache_dir ? o->cache_dir : NULL;
  sm_jit *j = sm_calloc(1, sizeof *j);
  if (!j) return *err = sm_strdup("out of memory"), NULL;
  j->n = n;
  j->names = sm_calloc(n ? n : 1, sizeof *j->names);
  j->fns = sm_calloc(n ? n : 1, sizeof *j->fns);
  if (!j->names || !j->fns) {
    sm_jit_free(j);
    return *err = sm_strdup("out of memory"), NULL;
  }
  LLVMTargetMachineRef tm = sm_llvm_target_machine(NULL, NULL, NULL, opt_level, err);
  if (!tm) {
    sm_jit_free(j);
    return NULL;
  }
  char hex[33] = {0};
  bool keyed = cache_dir && !cache_key(kernels, n, tm, opt_level, reassociate, hex);
  LLVMMemoryBufferRef obj = NULL;
  /* dumps of IR and assembly need a compilation: they skip the lookup */
  if (keyed && !sm_dump_wants(dump, SM_DUMP_LLVM) && !sm_dump_wants(dump, SM_DUMP_ASM)) {
    size_t len = 0;
    unsigned char *data = cache_read(cache_dir, hex, &len);
    if (data) {
      obj = LLVMCreateMemoryBufferWithMemoryRangeCopy((const char *)data, len, "smelt-cached.o");
      sm_free(data);
      j->from_cache = obj != NULL;
    }
  }
  if (!obj) {
    obj = compile_object(kernels, n, tm, opt_level, dump, err);
    if (obj && keyed)
      cache_write(cache_dir, hex, LLVMGetBufferStart(obj), LLVMGetBufferSize(obj));
  }
  LLVMDisposeTargetMachine(tm);
  if (!obj || link_object(j, kernels, n, obj, err)) {
    sm_jit_free(j);
    return NULL;
  }
  return j;
}

sm_kernel_fn sm_jit_lookup(sm_jit *j, const char *name) {
  if (!j || !name) return NULL;
  for (size_t i = 0; i < j->n; i++)
    if (strcmp(j->names[i], name) == 0) return j->fns[i];
  return NULL;
}

bool sm_jit_from_cache(const sm_jit *j) { return j && j->from_cache; }

void sm_jit_free(sm_jit *j) {
  if (!j) return;
  if (j->lljit) {
    LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->lljit);
    if (e) LLVMConsumeError(e);
  }
  sm_free(j->names);
  sm_free(j->fns);
  sm_free(j);
}
