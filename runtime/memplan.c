/* Arena planning: "greedy by size" (TFLite's and XLA's heuristic). The
 * buffers are taken largest first, and each goes at the lowest aligned
 * offset where it overlaps no already placed buffer whose lifetime
 * intersects its own. Large buffers placed first leave the small ones to
 * fill the gaps, which comes close to the peak of live bytes in practice.
 * O(n^2) in the number of buffers: programs have hundreds, not millions. */
#include "memplan.h"

#include "../src/internal.h"

#include <stdint.h>

/* Rounds up to a multiple of align; false on overflow. */
static bool align_up(size_t x, size_t align, size_t *out) {
  if (x > SIZE_MAX - (align - 1)) return false;
  *out = (x + align - 1) & ~(align - 1);
  return true;
}

/* Sorts indices into placement order: larger first; ties by earlier
 * start, then by index, so the plan is deterministic. A merge sort rather
 * than qsort, which takes no context argument (a global would make the
 * planner non-reentrant, and programs may compile concurrently). */
static void sort_order(size_t *idx, size_t *tmp, size_t n, const sm_mem_req *reqs) {
  if (n < 2) return;
  size_t h = n / 2;
  sort_order(idx, tmp, h, reqs);
  sort_order(idx + h, tmp, n - h, reqs);
  size_t i = 0, j = h, k = 0;
  while (i < h && j < n) {
    const sm_mem_req *a = &reqs[idx[i]], *b = &reqs[idx[j]];
    bool take_b = b->bytes > a->bytes ||
                  (b->bytes == a->bytes && (b->first < a->first ||
                                            (b->first == a->first && idx[j] < idx[i])));
    tmp[k++] = take_b ? idx[j++] : idx[i++];
  }
  while (i < h) tmp[k++] = idx[i++];
  while (j < n) tmp[k++] = idx[j++];
  for (k = 0; k < n; k++) idx[k] = tmp[k];
}

size_t sm_plan_memory(sm_mem_req *reqs, size_t n, size_t align) {
  if (align == 0) align = 1;
  if (n == 0) return 0;
  if (n > SIZE_MAX / (3 * sizeof(size_t))) return (size_t)-1;
  /* order: placement order; placed: placed buffers sorted by offset;
   * tmp: the merge sort's scratch. One allocation. */
  size_t *order = sm_malloc(3 * n * sizeof *order);
  if (!order) return (size_t)-1;
  size_t *placed = order + n, *tmp = placed + n, nplaced = 0;
  for (size_t i = 0; i < n; i++) order[i] = i;
  sort_order(order, tmp, n, reqs);

  size_t arena = 0;
  for (size_t k = 0; k < n; k++) {
    sm_mem_req *r = &reqs[order[k]];
    r->offset = 0;
    if (r->bytes == 0) continue; /* occupies nothing */
    /* First fit among the live neighbours, scanned by increasing offset. */
    size_t off = 0, ins = nplaced;
    bool ok = true;
    for (size_t j = 0; j < nplaced; j++) {
      const sm_mem_req *p = &reqs[placed[j]];
      if (p->first > r->last || r->first > p->last) continue; /* never live together */
      if (p->offset >= off && p->offset - off >= r->bytes) break; /* fits before p */
      size_t end = p->offset + p->bytes;
      if (end > off && !(ok = align_up(end, align, &off))) break;
    }
    size_t top;
    if (!ok || off > SIZE_MAX - r->bytes || !align_up(off + r->bytes, align, &top)) {
      sm_free(order);
      return (size_t)-1; /* the arena would not fit in size_t */
    }
    r->offset = off;
    if (top > arena) arena = top;
    /* Keep placed sorted by offset. */
    while (ins > 0 && reqs[placed[ins - 1]].offset > off) ins--;
    for (size_t j = nplaced; j > ins; j--) placed[j] = placed[j - 1];
    placed[ins] = order[k];
    nplaced++;
  }
  sm_free(order);
  return arena;
}
