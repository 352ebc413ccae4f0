/* The CUDA driver API, loaded at run time (runtime/cuda_driver.c): libcuda
 * is dlopen'ed once per process, so libsmelt builds and runs without it
 * and the cuda target says clearly when it is missing. We declare the few
 * types and functions we use ourselves instead of including cuda.h, so
 * that building needs no CUDA headers either.
 *
 * Environment: SMELT_CUDA_DRIVER overrides the library's path (default
 * "libcuda.so.1"); SMELT_CUDA_DEVICE picks the device ordinal (default 0).
 * Both are read once, on first use. */
#ifndef SMELT_RUNTIME_CUDA_DRIVER_H
#define SMELT_RUNTIME_CUDA_DRIVER_H

#include "../src/internal.h"

/* The driver's types, with the layout of cuda.h (CUDA_VERSION >= 3020:
 * 64-bit device pointers and the _v2 entry points). */
typedef int sm_cu_result;                     /* CUresult: 0 is CUDA_SUCCESS */
typedef int sm_cu_device_t;                   /* CUdevice */
typedef unsigned long long sm_cu_ptr;         /* CUdeviceptr */
typedef struct sm_cu_ctx_st *sm_cu_context;   /* CUcontext */
typedef struct sm_cu_mod_st *sm_cu_module;    /* CUmodule */
typedef struct sm_cu_func_st *sm_cu_function; /* CUfunction */
typedef struct sm_cu_stream_st *sm_cu_stream; /* CUstream */

/* The enum values we use (cuda.h). */
enum {
  SM_CU_SUCCESS = 0,
  SM_CU_ERROR_NO_DEVICE = 100,
  SM_CU_ATTR_MAX_THREADS_PER_BLOCK = 1,
  SM_CU_ATTR_MAX_GRID_DIM_X = 5, /* Y = 6, Z = 7 */
  SM_CU_ATTR_MAX_SHARED_MEMORY_PER_BLOCK = 8,
  SM_CU_ATTR_WARP_SIZE = 10,
  SM_CU_ATTR_MULTIPROCESSOR_COUNT = 16,
  SM_CU_ATTR_MAX_THREADS_PER_MULTIPROCESSOR = 39,
  SM_CU_ATTR_COMPUTE_CAPABILITY_MAJOR = 75,
  SM_CU_ATTR_COMPUTE_CAPABILITY_MINOR = 76,
  SM_CU_ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97,
  SM_CU_FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
  SM_CU_STREAM_NON_BLOCKING = 1,
};

/* The entry points, resolved by their exported (versioned) names. */
typedef struct sm_cuda_driver {
  void *lib; /* the dlopen handle */
  sm_cu_result (*Init)(unsigned flags);
  sm_cu_result (*DriverGetVersion)(int *version);
  sm_cu_result (*GetErrorName)(sm_cu_result r, const char **s);
  sm_cu_result (*GetErrorString)(sm_cu_result r, const char **s);
  sm_cu_result (*DeviceGet)(sm_cu_device_t *dev, int ordinal);
  sm_cu_result (*DeviceGetCount)(int *count);
  sm_cu_result (*DeviceGetName)(char *name, int len, sm_cu_device_t dev);
  sm_cu_result (*DeviceGetAttribute)(int *value, int attr, sm_cu_device_t dev);
  sm_cu_result (*DeviceTotalMem)(size_t *bytes, sm_cu_device_t dev);
  sm_cu_result (*DevicePrimaryCtxRetain)(sm_cu_context *ctx, sm_cu_device_t dev);
  sm_cu_result (*DevicePrimaryCtxRelease)(sm_cu_device_t dev);
  sm_cu_result (*CtxSetCurrent)(sm_cu_context ctx);
  sm_cu_result (*CtxGetCurrent)(sm_cu_context *ctx);
  sm_cu_result (*MemGetInfo)(size_t *free_bytes, size_t *total_bytes);
  sm_cu_result (*MemAlloc)(sm_cu_ptr *ptr, size_t bytes);
  sm_cu_result (*MemFree)(sm_cu_ptr ptr);
  sm_cu_result (*MemcpyHtoD)(sm_cu_ptr dst, const void *src, size_t bytes);
  sm_cu_result (*MemcpyDtoH)(void *dst, sm_cu_ptr src, size_t bytes);
  sm_cu_result (*MemcpyDtoD)(sm_cu_ptr dst, sm_cu_ptr src, size_t bytes);
  sm_cu_result (*MemcpyHtoDAsync)(sm_cu_ptr dst, const void *src, size_t bytes, sm_cu_stream s);
  sm_cu_result (*MemcpyDtoHAsync)(void *dst, sm_cu_ptr src, size_t bytes, sm_cu_stream s);
  sm_cu_result (*MemcpyDtoDAsync)(sm_cu_ptr dst, sm_cu_ptr src, size_t bytes, sm_cu_stream s);
  sm_cu_result (*MemsetD8)(sm_cu_ptr dst, unsigned char value, size_t n);
  sm_cu_result (*MemsetD8Async)(sm_cu_ptr dst, unsigned char value, size_t n, sm_cu_stream s);
  sm_cu_result (*ModuleLoadData)(sm_cu_module *mod, const void *image);
  sm_cu_result (*ModuleUnload)(sm_cu_module mod);
  sm_cu_result (*ModuleGetFunction)(sm_cu_function *f, sm_cu_module mod, const char *name);
  sm_cu_result (*FuncSetAttribute)(sm_cu_function f, int attr, int value);
  sm_cu_result (*LaunchKernel)(sm_cu_function f, unsigned gx, unsigned gy, unsigned gz,
                               unsigned bx, unsigned by, unsigned bz, unsigned shared_bytes,
                               sm_cu_stream s, void **params, void **extra);
  sm_cu_result (*StreamCreate)(sm_cu_stream *s, unsigned flags);
  sm_cu_result (*StreamSynchronize)(sm_cu_stream s);
  sm_cu_result (*StreamDestroy)(sm_cu_stream s);
} sm_cuda_driver;

/* The device programs run on, read once. */
typedef struct sm_cuda_device {
  int ordinal;                /* SMELT_CUDA_DEVICE */
  sm_cu_device_t dev;
  sm_cu_context ctx;          /* its primary context, retained for the process */
  char name[256];
  int cc_major, cc_minor;     /* compute capability */
  int sm_count;
  int max_threads_per_block;
  int max_threads_per_sm;
  int max_grid[3];
  int max_smem_per_block;     /* bytes, without opting in */
  int max_smem_per_block_optin;
  int warp_size;
  size_t total_mem;           /* bytes */
  int driver_version;         /* e.g. 13000 for 13.0 */
} sm_cuda_device;

/* The driver, loaded and initialized (cuInit(0)) on the first call. NULL
 * with *err set (sm_malloc'ed; NULL when out of memory): "no CUDA driver
 * found (libcuda.so.1: ...)" when the library cannot be loaded, else
 * "CUDA driver: cuInit failed: CUDA_ERROR_NO_DEVICE (...)" and the like.
 * A failure is remembered: later calls give the same message. */
const sm_cuda_driver *sm_cu_driver(char **err);

/* The device (SMELT_CUDA_DEVICE, default 0), set up on the first call,
 * with its primary context made current on the calling thread (every
 * call: each thread that uses the device calls this first). *drv (may be
 * NULL) receives the driver. NULL with *err set as sm_cu_driver, or for a
 * bad SMELT_CUDA_DEVICE. */
const sm_cuda_device *sm_cu_device(const sm_cuda_driver **drv, char **err);

/* "CUDA: cuLaunchKernel (kernel k3) failed: CUDA_ERROR_INVALID_VALUE
 * (invalid argument)"; kernel NULL leaves out the parenthesis. call is the
 * call's name in the driver API (unversioned), maybe with detail. */
char *sm_cu_error(const sm_cuda_driver *d, int result, const char *call, const char *kernel);

#endif
