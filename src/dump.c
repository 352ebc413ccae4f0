/* SMELT_DUMP: writes the text of compilation stages to stderr or files. */
#include "dump.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const struct {
  const char *name;
  unsigned bit;
  const char *ext;
} stages[] = {
    {"graph", SM_DUMP_GRAPH, "txt"},   {"passes", SM_DUMP_PASSES, "txt"},
    {"fusion", SM_DUMP_FUSION, "txt"}, {"kernels", SM_DUMP_KERNELS, "txt"},
    {"llvm", SM_DUMP_LLVM, "ll"},      {"asm", SM_DUMP_ASM, "s"},
    {"dot", SM_DUMP_DOT, "dot"},       {"cuda", SM_DUMP_CUDA, "cu"},
    {"ptx", SM_DUMP_PTX, "ptx"},
};
enum { NSTAGES = sizeof stages / sizeof stages[0] };

int sm_dump_parse(const char *list, unsigned *out, const char **bad) {
  unsigned bits = 0;
  const char *p = list ? list : "";
  while (*p) {
    size_t n = strcspn(p, ", ");
    if (n == 3 && strncmp(p, "all", 3) == 0) bits = ~0u;
    else if (n) {
      size_t i = 0;
      while (i < NSTAGES && !(strlen(stages[i].name) == n && strncmp(p, stages[i].name, n) == 0))
        i++;
      if (i == NSTAGES) {
        *bad = p;
        return -1;
      }
      bits |= stages[i].bit;
    }
    p += n;
    while (*p == ',' || *p == ' ') p++;
  }
  *out = bits;
  return 0;
}

int sm_dump_init(sm_dump *d, const char *list, const char *dir, char **err) {
  /* programs are numbered so that the files of several programs coexist */
  static unsigned counter;
  memset(d, 0, sizeof *d);
  const char *bad = NULL;
  sm_buf b = {0};
  if (sm_dump_parse(list, &d->stages, &bad)) {
    /* the list comes from the options, which default to $SMELT_DUMP */
    sm_buf_printf(&b,
                  "dump \"%s\" (SMELT_DUMP or the options' dump): unknown stage \"%.*s\" "
                  "(stages: graph, passes, fusion, kernels, llvm, asm, cuda, ptx, dot, all)",
                  list, (int)strcspn(bad, ", "), bad);
    *err = sm_buf_take(&b);
    return -1;
  }
  /* A directory that cannot take the files is an error now, rather than
   * dumps that silently never appear. */
  int e = d->stages && dir ? sm_make_dirs(dir) : 0;
  if (!e && d->stages && dir && access(dir, W_OK | X_OK)) e = errno;
  if (e) {
    /* ENOMEM: sm_make_dirs could not copy the path (the hook's failure) */
    sm_buf_printf(&b, "dump directory \"%s\" (SMELT_DUMP_DIR or the options' dump_dir): %s",
                  dir, e == ENOMEM ? "out of memory" : strerror(e));
    *err = sm_buf_take(&b);
    return -1;
  }
  d->dir = dir;
  if (d->stages) d->program = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
  return 0;
}

static _Thread_local struct {
  unsigned stages;
  sm_buf buf;
} capture;

void sm_dump_capture_begin(unsigned stages_) {
  sm_buf_free(&capture.buf);
  capture.stages = stages_;
}

char *sm_dump_capture_end(void) {
  capture.stages = 0;
  if (!capture.buf.len) {
    sm_buf_free(&capture.buf);
    return NULL;
  }
  return sm_buf_take(&capture.buf);
}

void sm_dump_write(const sm_dump *d, unsigned stage, const char *part, const char *text) {
  if (!sm_dump_wants(d, stage) || !text) return;
  size_t i = 0;
  while (i < NSTAGES && stages[i].bit != stage) i++;
  if (i == NSTAGES) return;
  if (capture.stages & stage) {
    if (part) sm_buf_printf(&capture.buf, "; %s %s\n", stages[i].name, part);
    sm_buf_puts(&capture.buf, text);
    size_t len = strlen(text);
    if (len && text[len - 1] != '\n') sm_buf_puts(&capture.buf, "\n");
    return;
  }
  if (!d->dir) {
    fprintf(stderr, "=== smelt dump: program %u, %s%s%s ===\n%s", d->program, stages[i].name,
            part ? " " : "", part ? part : "", text);
    size_t len = strlen(text);
    if (len && text[len - 1] != '\n') fputc('\n', stderr);
    return;
  }
  sm_buf path = {0};
  sm_buf_printf(&path, "%s/p%u.%s%s%s.%s", d->dir, d->program, stages[i].name, part ? "." : "",
                part ? part : "", stages[i].ext);
  char *p = sm_buf_take(&path);
  if (!p) return;
  /* a dump never makes a compilation fail; a file that cannot be written
   * (the disk full, the directory removed since) is said on stderr */
  FILE *f = fopen(p, "w");
  bool ok = f && fputs(text, f) >= 0;
  if (f && fclose(f)) ok = false;
  if (!ok) fprintf(stderr, "smelt dump: cannot write %s: %s\n", p, strerror(errno));
  sm_free(p);
}
