/* NVRTC in a libsmelt built without it (meson found no CUDA, or
 * -Dcuda=disabled): every call fails with the same clear message, so the
 * cuda target reports what is missing and how to get it. */
#include "nvrtc.h"

#define WITHOUT_NVRTC                                                                     \
  "this libsmelt was built without NVRTC: the cuda target needs CUDA's NVRTC when libsmelt " \
  "is built (install CUDA, set CUDA_HOME, or configure with -Dcuda=enabled)"

bool sm_nvrtc_available(void) { return false; }

int sm_nvrtc_version(int *major, int *minor, char **err) {
  *major = *minor = -1;
  *err = sm_strdup(WITHOUT_NVRTC);
  return -1;
}

int sm_nvrtc_parse_arch(const char *arch, int *cc, char **err) {
  (void)arch;
  *cc = 0;
  *err = sm_strdup(WITHOUT_NVRTC);
  return -1;
}

void *sm_nvrtc_compile(const sm_nvrtc_request *r, size_t *len, bool *from_cache, char **err) {
  (void)r;
  *len = 0;
  if (from_cache) *from_cache = false;
  *err = sm_strdup(WITHOUT_NVRTC);
  return NULL;
}
