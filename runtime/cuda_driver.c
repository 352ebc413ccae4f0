/* libcuda, dlopen'ed once per process (see cuda_driver.h). The driver,
 * the device and a failure to set either up are process-wide and set up
 * under pthread_once; their error messages live in static buffers, so
 * that a failed allocation in one call (fault injection) is never
 * remembered as a failure of the driver. */
#include "cuda_driver.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- errors */

static const char *err_name(const sm_cuda_driver *d, int r) {
  const char *s = NULL;
  if (d && d->GetErrorName && d->GetErrorName(r, &s) != SM_CU_SUCCESS) s = NULL;
  return s;
}

static const char *err_string(const sm_cuda_driver *d, int r) {
  const char *s = NULL;
  if (d && d->GetErrorString && d->GetErrorString(r, &s) != SM_CU_SUCCESS) s = NULL;
  return s;
}

/* "<prefix>: <call>[ (kernel K)] failed: NAME (text)" into buf (snprintf's
 * return value: the length wanted). */
static int err_text(char *buf, size_t n, const sm_cuda_driver *d, const char *prefix, int r,
                    const char *call, const char *kernel) {
  const char *name = err_name(d, r), *text = err_string(d, r);
  char code[32];
  if (!name) {
    snprintf(code, sizeof code, "CUDA error %d", r);
    name = code;
  }
  return snprintf(buf, n, "%s: %s%s%s%s failed: %s%s%s%s", prefix, call,
                  kernel ? " (kernel " : "", kernel ? kernel : "", kernel ? ")" : "", name,
                  text ? " (" : "", text ? text : "", text ? ")" : "");
}

char *sm_cu_error(const sm_cuda_driver *d, int result, const char *call, const char *kernel) {
  int n = err_text(NULL, 0, d, "CUDA", result, call, kernel);
  if (n < 0) return NULL;
  char *s = sm_malloc((size_t)n + 1);
  if (s) err_text(s, (size_t)n + 1, d, "CUDA", result, call, kernel);
  return s;
}

/* ---------------------------------------------------------------- driver */

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static sm_cuda_driver driver;
static bool driver_ok;
static char driver_err[1024];

/* The entry points by their exported names: where cuda.h maps cuX to
 * cuX_v2 (64-bit sizes and pointers), the plain name is the legacy ABI. */
static const struct {
  const char *name;
  size_t off;
} symbols[] = {
#define SYM(field, name) {name, offsetof(sm_cuda_driver, field)}
    SYM(Init, "cuInit"),
    SYM(DriverGetVersion, "cuDriverGetVersion"),
    SYM(GetErrorName, "cuGetErrorName"),
    SYM(GetErrorString, "cuGetErrorString"),
    SYM(DeviceGet, "cuDeviceGet"),
    SYM(DeviceGetCount, "cuDeviceGetCount"),
    SYM(DeviceGetName, "cuDeviceGetName"),
    SYM(DeviceGetAttribute, "cuDeviceGetAttribute"),
    SYM(DeviceTotalMem, "cuDeviceTotalMem_v2"),
    SYM(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
    SYM(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
    SYM(CtxSetCurrent, "cuCtxSetCurrent"),
    SYM(CtxGetCurrent, "cuCtxGetCurrent"),
    SYM(MemGetInfo, "cuMemGetInfo_v2"),
    SYM(MemAlloc, "cuMemAlloc_v2"),
    SYM(MemFree, "cuMemFree_v2"),
    SYM(MemcpyHtoD, "cuMemcpyHtoD_v2"),
    SYM(MemcpyDtoH, "cuMemcpyDtoH_v2"),
    SYM(MemcpyDtoD, "cuMemcpyDtoD_v2"),
    SYM(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
    SYM(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"),
    SYM(MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"),
    SYM(MemsetD8, "cuMemsetD8_v2"),
    SYM(MemsetD8Async, "cuMemsetD8Async"),
    SYM(ModuleLoadData, "cuModuleLoadData"),
    SYM(ModuleUnload, "cuModuleUnload"),
    SYM(ModuleGetFunction, "cuModuleGetFunction"),
    SYM(FuncSetAttribute, "cuFuncSetAttribute"),
    SYM(LaunchKernel, "cuLaunchKernel"),
    SYM(StreamCreate, "cuStreamCreate"),
    SYM(StreamSynchronize, "cuStreamSynchronize"),
    SYM(StreamDestroy, "cuStreamDestroy_v2"),
#undef SYM
};

static void load(void) {
  const char *path = getenv("SMELT_CUDA_DRIVER");
  if (!path || !*path) path = "libcuda.so.1";
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    /* dlerror usually starts with the path already: say it once. */
    const char *e = dlerror();
    size_t n = strlen(path);
    if (!e) e = "dlopen failed";
    else if (strncmp(e, path, n) == 0 && e[n] == ':' && e[n + 1] == ' ') e += n + 2;
    snprintf(driver_err, sizeof driver_err, "no CUDA driver found (%s: %s)", path, e);
    return;
  }
  sm_cuda_driver d = {.lib = lib};
  for (size_t i = 0; i < sizeof symbols / sizeof *symbols; i++) {
    void *sym = dlsym(lib, symbols[i].name);
    if (!sym) {
      snprintf(driver_err, sizeof driver_err,
               "CUDA driver %s is too old: it has no %s (CUDA 9 or newer is needed)", path,
               symbols[i].name);
      dlclose(lib);
      return;
    }
    /* POSIX guarantees function pointers fit in a void * (dlsym). */
    memcpy((char *)&d + symbols[i].off, &sym, sizeof sym);
  }
  int r = d.Init(0);
  if (r != SM_CU_SUCCESS) {
    /* The library stays loaded: unloading libcuda after cuInit is not
     * something its users do, and the message is already written. */
    err_text(driver_err, sizeof driver_err, &d, "CUDA driver", r, "cuInit", NULL);
    return;
  }
  driver = d;
  driver_ok = true;
}

const sm_cuda_driver *sm_cu_driver(char **err) {
  *err = NULL;
  pthread_once(&load_once, load);
  if (!driver_ok) {
    *err = sm_strdup(driver_err);
    return NULL;
  }
  return &driver;
}

/* ---------------------------------------------------------------- device */

static pthread_once_t device_once = PTHREAD_ONCE_INIT;
static sm_cuda_device device;
static bool device_ok;
static char device_err[1024];

/* Reads the device's properties and retains its primary context. */
static void setup_device(void) {
  const sm_cuda_driver *d = &driver;
  sm_cuda_device v = {0};
  int count = 0, r;
  const char *call = "cuDeviceGetCount";
  if ((r = d->DeviceGetCount(&count)) != SM_CU_SUCCESS) goto fail;
  const char *env = getenv("SMELT_CUDA_DEVICE");
  if (env && *env) {
    char *end;
    errno = 0;
    long o = strtol(env, &end, 10);
    if (errno || *end || end == env || o < 0 || o > INT_MAX) {
      snprintf(device_err, sizeof device_err,
               "SMELT_CUDA_DEVICE=\"%s\" is not a device ordinal (a number from 0 to %d: "
               "this machine has %d CUDA device%s)",
               env, count - 1, count, count == 1 ? "" : "s");
      return;
    }
    v.ordinal = (int)o;
  }
  if (v.ordinal >= count) {
    if (count == 0)
      snprintf(device_err, sizeof device_err, "no CUDA device (cuDeviceGetCount found none)");
    else
      snprintf(device_err, sizeof device_err,
               "SMELT_CUDA_DEVICE=%d, but this machine has %d CUDA device%s (ordinals 0 to %d)",
               v.ordinal, count, count == 1 ? "" : "s", count - 1);
    return;
  }
  call = "cuDeviceGet";
  if ((r = d->DeviceGet(&v.dev, v.ordinal)) != SM_CU_SUCCESS) goto fail;
  call = "cuDeviceGetName";
  if ((r = d->DeviceGetName(v.name, (int)sizeof v.name, v.dev)) != SM_CU_SUCCESS) goto fail;
  v.name[sizeof v.name - 1] = 0;
  const struct {
    int attr;
    int *to;
  } attrs[] = {
      {SM_CU_ATTR_COMPUTE_CAPABILITY_MAJOR, &v.cc_major},
      {SM_CU_ATTR_COMPUTE_CAPABILITY_MINOR, &v.cc_minor},
      {SM_CU_ATTR_MULTIPROCESSOR_COUNT, &v.sm_count},
      {SM_CU_ATTR_MAX_THREADS_PER_BLOCK, &v.max_threads_per_block},
      {SM_CU_ATTR_MAX_THREADS_PER_MULTIPROCESSOR, &v.max_threads_per_sm},
      {SM_CU_ATTR_MAX_GRID_DIM_X, &v.max_grid[0]},
      {SM_CU_ATTR_MAX_GRID_DIM_X + 1, &v.max_grid[1]},
      {SM_CU_ATTR_MAX_GRID_DIM_X + 2, &v.max_grid[2]},
      {SM_CU_ATTR_MAX_SHARED_MEMORY_PER_BLOCK, &v.max_smem_per_block},
      {SM_CU_ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, &v.max_smem_per_block_optin},
      {SM_CU_ATTR_WARP_SIZE, &v.warp_size},
  };
  call = "cuDeviceGetAttribute";
  for (size_t i = 0; i < sizeof attrs / sizeof *attrs; i++)
    if ((r = d->DeviceGetAttribute(attrs[i].to, attrs[i].attr, v.dev)) != SM_CU_SUCCESS)
      goto fail;
  call = "cuDeviceTotalMem";
  if ((r = d->DeviceTotalMem(&v.total_mem, v.dev)) != SM_CU_SUCCESS) goto fail;
  call = "cuDriverGetVersion";
  if ((r = d->DriverGetVersion(&v.driver_version)) != SM_CU_SUCCESS) goto fail;
  /* Retained for the life of the process and never released: programs
   * and params share it, and the driver tears it down at exit. */
  call = "cuDevicePrimaryCtxRetain";
  if ((r = d->DevicePrimaryCtxRetain(&v.ctx, v.dev)) != SM_CU_SUCCESS) goto fail;
  device = v;
  device_ok = true;
  return;
fail:
  err_text(device_err, sizeof device_err, d, "CUDA driver", r, call, NULL);
  if (v.name[0]) {
    size_t n = strlen(device_err);
    snprintf(device_err + n, sizeof device_err - n, " on device %d (%s)", v.ordinal, v.name);
  }
}

const sm_cuda_device *sm_cu_device(const sm_cuda_driver **drv, char **err) {
  const sm_cuda_driver *d = sm_cu_driver(err);
  if (drv) *drv = d;
  if (!d) return NULL;
  pthread_once(&device_once, setup_device);
  if (!device_ok) {
    *err = sm_strdup(device_err);
    return NULL;
  }
  /* Cheap, and the only way to be sure on a thread we have not seen. */
  int r = d->CtxSetCurrent(device.ctx);
  if (r != SM_CU_SUCCESS) {
    *err = sm_cu_error(d, r, "cuCtxSetCurrent", NULL);
    return NULL;
  }
  return &device;
}
