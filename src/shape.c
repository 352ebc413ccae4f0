/* Shape rules shared by the builders: NumPy/PyTorch broadcasting and axis
 * normalization. */
#include "internal.h"

int sm_broadcast_shapes(int ra, const int64_t *a, int rb, const int64_t *b, int *rout,
                        int64_t *out) {
  int r = ra > rb ? ra : rb;
  /* Align from the right; a missing dim counts as 1. */
  for (int k = 1; k <= r; k++) {
    int64_t da = k <= ra ? a[ra - k] : 1;
    int64_t db = k <= rb ? b[rb - k] : 1;
    if (da != db && da != 1 && db != 1) return k;
    out[r - k] = da == 1 ? db : da;
  }
  *rout = r;
  return -1;
}

bool sm_norm_axis(int axis, int rank, int *out) {
  if (axis < -rank || axis >= rank) return false;
  *out = axis < 0 ? axis + rank : axis;
  return true;
}
