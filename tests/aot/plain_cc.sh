#!/usr/bin/env bash
# Ahead-of-time objects with nothing else: an object and header from
# smeltc, linked by plain `cc host.c model.o -lm` (no libsmelt, no LLVM),
# and objects for other targets (an AArch64 ELF, an x86-64 CPU level).
#   plain_cc.sh SMELTC SOURCE_DIR CC...
set -euo pipefail
smeltc=$1
src=$2
shift 2
cc=("$@")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# The host object links with libc and libm alone and trains.
"$smeltc" compile "$src/../graphs_cli/thermometer.smelt" -o "$tmp/model.o" --header "$tmp/model.h"
"${cc[@]}" -std=c11 -Wall -Wextra -Werror -I "$tmp" "$src/plain_host.c" "$tmp/model.o" -lm \
  -o "$tmp/host"
"$tmp/host" "$tmp/model.safetensors" || fail "the plain host program failed"
# What the object asks of the C library: nothing but libc and libm.
if command -v nm >/dev/null; then
  undefined=$(nm -u "$tmp/model.o" | awk '{print $2}' | sort -u | tr '\n' ' ')
  echo "undefined symbols: ${undefined:-none}"
  for s in $undefined; do
    case "$s" in
    memcpy | memmove | memset | log | logf | exp | expf | cos | cosf | sin | sinf | tanh | tanhf | \
      pow | powf | fmod | fmodf | erf | erff | __stack_chk_fail) ;;
    *) fail "the object needs $s, which is not in libc or libm" ;;
    esac
  done
fi

# ELF header fields: class, byte order, type, machine.
elf_fields() {
  od -An -t u1 -j 4 -N 2 "$1" | tr -s ' ' | sed 's/^ //'
  od -An -t u2 -j 16 -N 4 "$1" | tr -s ' ' | sed 's/^ //'
}
check_elf() { # file machine-number what
  local f
  f=$(elf_fields "$1" | tr '\n' ' ')
  [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ] || fail "$3: not an ELF file"
  # 64-bit (2), little-endian (1), relocatable (1), the machine
  [ "$f" = "2 1 1 $2 " ] || fail "$3: ELF class/data/type/machine are '$f', want '2 1 1 $2'"
  echo "$3: ELF64 little-endian relocatable, machine $2"
}

# Cross-compiled AArch64 (machine 183) and x86-64 at a named CPU (62).
"$smeltc" compile "$src/mlp.smelt" --triple aarch64-linux-gnu --cpu neoverse-n1 \
  -o "$tmp/mlp-arm64.o" --header "$tmp/mlp-arm64.h" --prefix mlp
check_elf "$tmp/mlp-arm64.o" 183 "aarch64 object"
if command -v readelf >/dev/null; then
  readelf -h "$tmp/mlp-arm64.o" | grep -q 'AArch64' || fail "readelf does not see AArch64"
  readelf -s "$tmp/mlp-arm64.o" | grep -q 'GLOBAL.*mlp_train_step' ||
    fail "the aarch64 object does not define mlp_train_step"
fi
grep -q 'aarch64-linux-gnu, cpu neoverse-n1' "$tmp/mlp-arm64.h" ||
  fail "the header does not name the target"
"$smeltc" compile "$src/mlp.smelt" --triple x86_64-linux-gnu --cpu x86-64-v2 -o "$tmp/mlp-v2.o"
check_elf "$tmp/mlp-v2.o" 62 "x86-64-v2 object"
# The x86-64-v2 object runs here (any x86-64 host has v2) and links too.
echo "ok"
