/* The cuda target up to NVRTC's output: needs no GPU and no driver. */
#include "cuda_build.h"

#include <string.h>

void sm_cuda_image_free(sm_cuda_image *img) {
  if (!img) return;
  sm_plan_free(img->plan);
  sm_cuda_source_free(&img->src);
  sm_free(img->code);
  memset(img, 0, sizeof *img);
}

int sm_cuda_pick_arch(const smelt_compile_options *o, int fallback_cc, int *cc, char **err) {
  if (o && o->cuda_arch && *o->cuda_arch) return sm_nvrtc_parse_arch(o->cuda_arch, cc, err);
  *cc = fallback_cc;
  return 0;
}

int sm_cuda_build(const smelt_graph *g, size_t nroots, const uint32_t *roots,
                  const smelt_compile_options *o, int cc, int out, sm_dump *dump,
                  sm_cuda_image *img, char **err) {
  *err = NULL;
  memset(img, 0, sizeof *img);
  img->plan = sm_plan_new(g, nroots, roots, NULL, o, dump, err);
  if (!img->plan) goto fail;
  const sm_plan *p = img->plan;
  sm_kernel **ks = sm_malloc(sizeof *ks * (p->nkernels ? p->nkernels : 1));
  if (!ks) goto oom;
  for (size_t i = 0; i < p->nkernels; i++) ks[i] = p->kernels[i].k;
  int rc = sm_cuda_emit(ks, p->nkernels, &img->src, err);
  sm_free(ks);
  if (rc) goto fail;
  if (sm_dump_wants(dump, SM_DUMP_CUDA)) sm_dump_write(dump, SM_DUMP_CUDA, NULL, img->src.text);
  const char *cache = o ? o->cache_dir : NULL;
  if (sm_dump_wants(dump, SM_DUMP_PTX) && p->nkernels) {
    sm_nvrtc_request r = {img->src.text, "smelt.cu", cc, SM_NVRTC_PTX, cache};
    size_t len;
    char *ptx = sm_nvrtc_compile(&r, &len, NULL, err);
    if (!ptx) goto fail;
    sm_dump_write(dump, SM_DUMP_PTX, NULL, ptx);
    if (out == SM_NVRTC_PTX) {
      img->code = ptx;
      img->code_len = len;
      return 0;
    }
    sm_free(ptx);
  }
  if (out == SM_CUDA_PRINT_ONLY || !p->nkernels) return 0;
  sm_nvrtc_request r = {img->src.text, "smelt.cu", cc, (sm_nvrtc_output)out, cache};
  img->code = sm_nvrtc_compile(&r, &img->code_len, &img->from_cache, err);
  if (!img->code) goto fail;
  return 0;
oom:
  sm_free(*err);
  *err = sm_strdup("out of memory");
fail:
  sm_cuda_image_free(img);
  return -1;
}
