/* libFuzzer harness: the text-format parser (smelt_graph_parse).
 *
 * Any bytes either parse into a graph or fail with a "file:line:col:
 * message" error. A graph that parses must print, parse back to the same
 * text (docs/text-format.md's round-trip promise), print as DOT, and, when
 * it is small, run on the interpreter. Nothing may crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"

/* Longer texts only slow the fuzzer down: every construct fits in this. */
#define MAX_TEXT 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > MAX_TEXT) return 0;
  char err[512];
  memset(err, 0, sizeof err);
  smelt_graph *g = smelt_graph_parse((const char *)data, size, "fuzz.smelt", err, sizeof err);
  if (!g) {
    if (!err[0]) fuzz_fail("smelt_graph_parse failed without a message", NULL);
    if (strncmp(err, "fuzz.smelt:", 11) != 0)
      fuzz_fail("a parse error does not start with the file name", err);
    return 0;
  }
  if (smelt_graph_error(g)) fuzz_fail("a parsed graph carries an error", smelt_graph_error(g));
  fuzz_check_round_trip(g);
  if (fuzz_graph_is_small(g)) fuzz_interp_run(g, (uint32_t)size);
  smelt_graph_free(g);
  return 0;
}
