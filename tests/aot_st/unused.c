/* The test headers included and nothing used: compiled as C99 and as C11
 * with -Wall -Wextra -Wpedantic -Werror (see meson.build), as a user's
 * file that includes an AOT header and never saves or loads would be. */
#include "big.h"
#include "nil.h"
#include "tst.h"
#include "two.h"

int aot_st_unused(void);
int aot_st_unused(void) {
  return TST_NUM_PARAMS + TWO_NUM_PARAMS + BIG_NUM_PARAMS + NIL_NUM_PARAMS;
}
