#!/usr/bin/env bash
# End-to-end tests of the smeltc command-line tool.
#
#   test_smeltc.sh SMELTC TESTS_SOURCE_DIR
#
# Runs smeltc on the graphs in TESTS_SOURCE_DIR/graphs_cli and on .npy files
# made here with printf, and checks exit statuses, stdout and the messages
# on stderr. Needs bash and coreutils only. Set SMELTC_WRAPPER to run every
# smeltc under a tool, e.g.
#   SMELTC_WRAPPER="valgrind -q --leak-check=full --error-exitcode=99"
# (any error then shows as a wrong exit status).
# Prints "N passed, M failed" last and exits non-zero when anything failed.
set -u
export LC_ALL=C

if [ $# -ne 2 ]; then
  echo "usage: $0 SMELTC TESTS_SOURCE_DIR" >&2
  exit 2
fi
SMELTC=$1
G=$2/graphs_cli
WRAP=${SMELTC_WRAPPER:-}
T=$(mktemp -d "${TMPDIR:-/tmp}/smeltc-test.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
# No dumps, every core and a cache of our own. SMELT_TARGET is kept: it
# picks the target of the cases without --target (scripts/test sets it to
# interp under valgrind).
unset SMELT_DUMP SMELT_DUMP_DIR SMELT_NUM_THREADS SMELT_CACHE
export SMELT_CACHE_DIR=$T/cache

pass=0
fail=0
name=""
ok=1

# ------------------------------------------------------------- harness

# A test case is the commands and checks between two `t` calls.
finish() {
  if [ -n "$name" ]; then
    if [ "$ok" = 1 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
  fi
  name=""
}
t() {
  finish
  name=$1
  ok=1
}
bad() {
  if [ "$ok" = 1 ]; then
    echo "FAIL: $name"
    echo "  command: ${last_cmd:-}"
  fi
  echo "  $*"
  ok=0
}
dump_io() {
  echo "  --- stdout:"
  sed 's/^/  | /' "$T/stdout" | head -n 30
  echo "  --- stderr:"
  sed 's/^/  | /' "$T/stderr" | head -n 30
}

# run STATUS [ARGS...]: runs smeltc with stdin from $STDIN (default
# /dev/null), stdout and stderr to files, and checks the exit status, that
# no sanitizer spoke, and that an error message starts with "smeltc: ".
run() {
  local want=$1
  shift
  last_cmd="smeltc $*"
  # shellcheck disable=SC2086
  $WRAP "$SMELTC" "$@" <"${STDIN:-/dev/null}" >"$T/stdout" 2>"$T/stderr"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    bad "exit status $rc, expected $want"
    dump_io
  fi
  if grep -qE 'Sanitizer|runtime error:|Invalid read|Invalid write|definitely lost' "$T/stderr"; then
    bad "sanitizer or valgrind report on stderr"
    dump_io
  fi
  if [ "$want" -ne 0 ] && ! head -n 1 "$T/stderr" | grep -q '^smeltc: '; then
    bad "the error message does not start with 'smeltc: '"
    dump_io
  fi
}
# Fixed-string checks on the last run's output.
out_has() { grep -qF -- "$1" "$T/stdout" || { bad "stdout lacks: $1"; dump_io; }; }
out_lacks() { ! grep -qF -- "$1" "$T/stdout" || { bad "stdout has: $1"; dump_io; }; }
err_has() { grep -qF -- "$1" "$T/stderr" || { bad "stderr lacks: $1"; dump_io; }; }
err_lacks() { ! grep -qF -- "$1" "$T/stderr" || { bad "stderr has: $1"; dump_io; }; }
out_empty() { [ ! -s "$T/stdout" ] || { bad "stdout is not empty"; dump_io; }; }
err_empty() { [ ! -s "$T/stderr" ] || { bad "stderr is not empty"; dump_io; }; }
# The whole of stdout.
out_is() {
  printf '%s\n' "$1" >"$T/want"
  cmp -s "$T/want" "$T/stdout" || {
    bad "stdout differs from:"
    sed 's/^/  > /' "$T/want"
    dump_io
  }
}
# file_hex FILE OFFSET COUNT: bytes as a hex string
file_hex() { od -An -v -tx1 -j "$2" -N "$3" "$1" | tr -d ' \n'; }

# mknpy FILE DESCR SHAPE HEXDATA [FORTRAN]: writes a version 1.0 .npy file,
# header padded to 64 bytes as numpy does. HEXDATA: the data bytes as hex.
mknpy() {
  local file=$1 descr=$2 shape=$3 hex=$4 fortran=${5:-False}
  local h="{'descr': '$descr', 'fortran_order': $fortran, 'shape': $shape, }"
  local n=$((10 + ${#h} + 1))
  local pad=$(((64 - n % 64) % 64))
  local hl=$((${#h} + pad + 1))
  {
    printf '\223NUMPY\001\000'
    # shellcheck disable=SC2059
    printf "\\$(printf %03o $((hl % 256)))\\$(printf %03o $((hl / 256)))"
    printf '%s%*s\n' "$h" "$pad" ''
    # shellcheck disable=SC2059
    printf "$(printf '%s' "$hex" | sed 's/../\\x&/g')"
  } >"$file"
}

# Little-endian bytes of a few values.
F32_1_2_3=0000803f0000004000004040
F32_1_2_3_4=0000803f000000400000404000008040
F64_1_2_3=000000000000f03f00000000000000400000000000000840
I64_1_2_3_4=0100000000000000020000000000000003000000000000000400000000000000
I64_3=0300000000000000

mknpy "$T/x.npy" '<f4' '(3,)' $F32_1_2_3
mknpy "$T/x_be.npy" '>f4' '(3,)' 3f8000004000000040400000
mknpy "$T/x64.npy" '<f8' '(3,)' $F64_1_2_3
mknpy "$T/x4.npy" '<f4' '(4,)' $F32_1_2_3_4
mknpy "$T/x2x2.npy" '<f4' '(2, 2)' $F32_1_2_3_4
mknpy "$T/a.npy" '<i8' '(4,)' $I64_1_2_3_4
mknpy "$T/b.npy" '<i8' '(1,)' $I64_3
# column-major 1..6 of a 2x3: [[1, 3, 5], [2, 4, 6]]
mknpy "$T/m_fortran.npy" '<f4' '(2, 3)' 0000803f0000004000004040000080400000a0400000c040 True
mknpy "$T/i_ok.npy" '<i8' '(2,)' 02000000000000000000000000000000
mknpy "$T/i_bad.npy" '<i8' '(2,)' 02000000000000000700000000000000
mknpy "$T/trunc.npy" '<f4' '(3,)' 0000803f00000040
mknpy "$T/extra.npy" '<f4' '(3,)' ${F32_1_2_3}00
mknpy "$T/c8.npy" '<c8' '(3,)' ''
mknpy "$T/rank9.npy" '<f4' '(1, 1, 1, 1, 1, 1, 1, 1, 1)' 0000803f
mknpy "$T/neg.npy" '<f4' '(-3,)' ''
mknpy "$T/huge.npy" '<f4' '(1048576, 1048576)' 0000803f
printf 'not an npy file\n' >"$T/text.npy"
: >"$T/empty.npy"
mkdir "$T/dir.npy"

# ------------------------------------------------------- help, version

t "--help"
run 0 --help
out_has "usage: smeltc <command> [options]"
out_has "run FILE [--input NAME=FILE.npy ...] [--output-dir DIR]"
out_has "dump FILE [--dot]"
out_has "compile FILE --emit STAGE [-o PATH]"
out_has "environment:"
for v in SMELT_TARGET SMELT_NUM_THREADS SMELT_DUMP= SMELT_DUMP_DIR SMELT_CACHE_DIR SMELT_CACHE=0; do
  out_has "  $v"
done
err_empty

t "-h"
run 0 -h
out_has "usage: smeltc <command>"

t "help"
run 0 help
out_has "usage: smeltc <command>"

t "help run"
run 0 help run
out_has "usage: smeltc run FILE"
out_has "--output-dir DIR"

t "help dump"
run 0 help dump
out_has "usage: smeltc dump FILE [--dot]"

t "run --help"
run 0 run --help
out_has "usage: smeltc run FILE"
out_has "--input NAME=FILE.npy"

t "run --help: targets and compile options"
run 0 run --help
out_has "[--target cpu|cuda|interp] [--threads N] [--stats]"
out_has "--target TARGET"
out_has "--threads N"
out_has "--opt-level N"
out_has "--reassociate"
out_has "--no-cache"
out_has "--stats"

t "compile --help"
run 0 compile --help
out_has "usage: smeltc compile FILE -o FILE.o [--header FILE.h] [--prefix NAME]"
out_has "       smeltc compile FILE --emit STAGE[,STAGE...] [-o PATH]"
out_has "[--target cpu|cuda] [--arch sm_XY]"
for flag in "--header FILE.h" "--prefix NAME" "--weights FILE.safetensors" "--triple TRIPLE" \
  "--cpu NAME" "--features LIST" "--target cpu" "--opt-level N" "--reassociate"; do
  out_has "  $flag"
done
for st in graph passes fusion kernels llvm asm cuda ptx cubin dot all; do
  out_has "  $st "
done
out_has "-o, --output PATH"
out_has "--opt-level N"
out_has "--reassociate"
out_has "--no-cache"
out_has "--stats"
err_empty

t "help compile"
run 0 help compile
out_has "usage: smeltc compile FILE"

t "compile -h after other arguments"
run 0 compile "$G/double.smelt" --emit=kernels -h
out_has "usage: smeltc compile FILE"

t "run -h after other arguments"
run 0 run "$G/double.smelt" -h
out_has "usage: smeltc run FILE"

t "dump --help"
run 0 dump --help
out_has "usage: smeltc dump FILE [--dot]"

t "--version"
run 0 --version
grep -qE '^smeltc [0-9]+\.[0-9]+\.[0-9]+$' "$T/stdout" || bad "version line: $(cat "$T/stdout")"

# --------------------------------------------------------- usage errors

t "no arguments"
run 2
err_has "smeltc: missing command"
err_has "usage: smeltc"
out_empty

t "unknown command"
run 2 frobnicate
err_has "smeltc: unknown command 'frobnicate' (see 'smeltc --help')"
out_empty

t "unknown top-level option"
run 2 --frob
err_has "smeltc: unknown option '--frob'"

t "help of an unknown command"
run 2 help frob
err_has "smeltc: help: unknown command 'frob'"

t "run: unknown option"
run 2 run "$G/double.smelt" --bogus
err_has "smeltc: run: unknown option '--bogus' (see 'smeltc run --help')"

t "run: missing FILE"
run 2 run
err_has "smeltc: run: missing FILE"

t "run: two FILEs"
run 2 run "$G/double.smelt" "$G/add.smelt"
err_has "run: unexpected argument"

t "run: --input without a value"
run 2 run "$G/double.smelt" --input
err_has "smeltc: run: --input needs a value NAME=FILE.npy"

t "run: --input without '='"
run 2 run "$G/double.smelt" --input x
err_has "smeltc: run: malformed --input 'x': expected NAME=FILE.npy"

t "run: --input with an empty name"
run 2 run "$G/double.smelt" --input "=$T/x.npy"
err_has "malformed --input '=$T/x.npy'"

t "run: --input with an empty file"
run 2 run "$G/double.smelt" --input x=
err_has "malformed --input 'x='"

t "run: --output-dir without a value"
run 2 run "$G/double.smelt" --input "x=$T/x.npy" --output-dir
err_has "smeltc: run: --output-dir needs a directory"

t "dump: unknown option"
run 2 dump "$G/double.smelt" --svg
err_has "smeltc: dump: unknown option '--svg'"

t "dump: missing FILE"
run 2 dump
err_has "smeltc: dump: missing FILE"

# ------------------------------------------------------------------ run

t "run [1,2,3] * 2"
run 0 run "$G/double.smelt" --input "x=$T/x.npy"
out_is "y: f32[3] = [2, 4, 6]"
err_empty

t "run with --input=NAME=FILE and -i"
run 0 run "$G/add.smelt" --input="a=$T/a.npy" -i "b=$T/b.npy"
out_is "c: i64[4] = [4, 5, 6, 7]"

t "run with options before FILE"
run 0 run --input "x=$T/x.npy" "$G/double.smelt"
out_is "y: f32[3] = [2, 4, 6]"

t "run from stdin"
STDIN="$G/double.smelt" run 0 run - --input "x=$T/x.npy"
out_is "y: f32[3] = [2, 4, 6]"

t "run a big-endian input"
run 0 run "$G/double.smelt" --input "x=$T/x_be.npy"
out_is "y: f32[3] = [2, 4, 6]"

t "run a Fortran-order input"
run 0 run "$G/matrix.smelt" --input "m=$T/m_fortran.npy"
out_is "p: f32[2,3] = [[1.5, 3.5, 5.5],
               [2.5, 4.5, 6.5]]"

t "run: broadcasting, reductions, every dtype printed"
run 0 run "$G/broadcast.smelt"
out_is "y: f32[2,2] = [[ 2,  8],
               [ 6, 16]]
z: f32[2,2] = [[3, 6],
               [6, 8]]
m: f32[2] = [2, 3]
sd: f64[] = 1.1086779
big: bool[2,2] = [[false, false],
                  [ true,  true]]
n: i32[2] = [ 7, -8]"

t "run: large outputs are summarized"
run 0 run "$G/large.smelt"
out_has "r: i64[1000] = [0, 1, 2, 3, 4, 5, ..., 997, 998, 999]"
out_has "(1000 values; min 0, max 999, mean 499.5)"
out_has "q3: f32[2,3,4] = [[[ 0,  1,  2,  3],"
out_has "                  [[12, 13, 14, 15],"

t "run --quiet"
run 0 run "$G/large.smelt" --quiet
out_empty
err_empty

t "run --output-dir writes .npy files"
run 0 run "$G/broadcast.smelt" --output-dir "$T/out/nested"
for o in y z m sd big n; do
  [ -f "$T/out/nested/$o.npy" ] || bad "no $o.npy"
done
[ "$(file_hex "$T/out/nested/y.npy" 0 8)" = "934e554d50590100" ] || bad "y.npy: bad preamble"
grep -aqF "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }" "$T/out/nested/y.npy" ||
  bad "y.npy: header"
[ "$(wc -c <"$T/out/nested/y.npy")" -eq 144 ] || bad "y.npy: size $(wc -c <"$T/out/nested/y.npy")"
[ "$(file_hex "$T/out/nested/y.npy" 128 16)" = "00000040000000410000c04000008041" ] ||
  bad "y.npy: data $(file_hex "$T/out/nested/y.npy" 128 16)"
grep -aqF "{'descr': '|b1', 'fortran_order': False, 'shape': (2, 2), }" "$T/out/nested/big.npy" ||
  bad "big.npy: header"
[ "$(file_hex "$T/out/nested/big.npy" 128 4)" = "00000101" ] || bad "big.npy: data"
grep -aqF "'shape': (), }" "$T/out/nested/sd.npy" || bad "sd.npy: rank-0 header"

t "run: outputs fed back as inputs"
run 0 run "$G/feedback.smelt" -i "y=$T/out/nested/y.npy" -i "big=$T/out/nested/big.npy" \
  -i "n=$T/out/nested/n.npy" -i "sd=$T/out/nested/sd.npy"
out_is "t: f32[] = 32
k: i64[] = 2
nn: i32[2] = [ 14, -16]
sd2: f64[] = 2.2173558"

t "run --output-dir into an existing directory, again"
run 0 run "$G/double.smelt" -i "x=$T/x.npy" --output-dir="$T/out"
run 0 run "$G/double.smelt" -i "x=$T/out/y.npy" --output-dir "$T/out"
out_is "y: f32[3] = [ 4,  8, 12]"

t "run: a run-time index within range"
run 0 run "$G/index.smelt" --input "i=$T/i_ok.npy"
out_is "g: f32[2] = [3, 1]"

# ------------------------------------------------------------ run errors

t "run: missing graph file"
run 1 run "$T/nope.smelt"
err_has "smeltc: $T/nope.smelt: cannot open: No such file or directory"
out_empty

t "run: a directory as FILE"
run 1 run "$T"
err_has "smeltc: $T: is a directory"

t "run: parse error with file:line:col"
run 1 run "$G/bad_syntax.smelt"
err_has "smeltc: $G/bad_syntax.smelt:2:"
out_empty

t "run: parse error from stdin"
STDIN="$G/bad_op.smelt" run 1 run -
err_has "smeltc: <stdin>:2:"
err_has "frobnicate"

t "run: broadcast error in the graph"
run 1 run "$G/bad_broadcast.smelt"
err_has "smeltc: $G/bad_broadcast.smelt:3:"
err_has "f32[3]"
err_has "f32[2]"

t "run: binary garbage as the graph"
run 1 run "$T/x.npy"
err_has "smeltc: $T/x.npy:1:"

t "run: a missing input"
run 1 run "$G/double.smelt"
err_has "smeltc: missing input 'x' (f32[3]): pass it with --input x=FILE.npy"
out_empty

t "run: two missing inputs"
run 1 run "$G/add.smelt"
err_has "missing input 'a' (i64[4])"
err_has "missing input 'b' (i64[1])"

t "run: an unknown input name"
run 1 run "$G/double.smelt" --input "x=$T/x.npy" --input "z=$T/x.npy"
err_has "smeltc: --input z=$T/x.npy: $G/double.smelt has no input named 'z' (its inputs: x)"

t "run: an input given twice"
run 1 run "$G/double.smelt" --input "x=$T/x.npy" --input "x=$T/x4.npy"
err_has "smeltc: input 'x' is given twice"

t "run: the .npy file is missing"
run 1 run "$G/double.smelt" --input "x=$T/nope.npy"
err_has "smeltc: input 'x': $T/nope.npy: cannot open: No such file or directory"

t "run: the .npy file is a directory"
run 1 run "$G/double.smelt" --input "x=$T/dir.npy"
err_has "smeltc: input 'x': $T/dir.npy: is a directory"

t "run: a truncated .npy"
run 1 run "$G/double.smelt" --input "x=$T/trunc.npy"
err_has "smeltc: input 'x': $T/trunc.npy: truncated: header says 12 bytes of data, file has 8"

t "run: bytes after the data"
run 1 run "$G/double.smelt" --input "x=$T/extra.npy"
err_has "$T/extra.npy: 1 unexpected bytes after the data"

t "run: not a .npy file"
run 1 run "$G/double.smelt" --input "x=$T/text.npy"
err_has "$T/text.npy: not a .npy file (bad magic"

t "run: an empty .npy file"
run 1 run "$G/double.smelt" --input "x=$T/empty.npy"
err_has "$T/empty.npy: empty file"

t "run: an unsupported dtype"
run 1 run "$G/double.smelt" --input "x=$T/c8.npy"
err_has "$T/c8.npy: unsupported dtype '<c8'"

t "run: a 9-dim .npy"
run 1 run "$G/double.smelt" --input "x=$T/rank9.npy"
err_has "$T/rank9.npy: shape has 9 dims (at most 8)"

t "run: a negative dim"
run 1 run "$G/double.smelt" --input "x=$T/neg.npy"
err_has "$T/neg.npy: shape has a negative dimension (-3)"

t "run: a header claiming 4 TB"
run 1 run "$G/double.smelt" --input "x=$T/huge.npy"
err_has "$T/huge.npy: truncated: header says 4398046511104 bytes of data, file has 4"

t "run: the wrong dtype"
run 1 run "$G/double.smelt" --input "x=$T/x64.npy"
err_has "smeltc: input 'x': $T/x64.npy holds f64[3], but the graph's input is f32[3]"
err_has "astype(numpy.float32)"

t "run: the wrong shape"
run 1 run "$G/double.smelt" --input "x=$T/x4.npy"
err_has "$T/x4.npy holds f32[4], but the graph's input is f32[3]"

t "run: the wrong rank"
run 1 run "$G/double.smelt" --input "x=$T/x2x2.npy"
err_has "holds f32[2,2], but the graph's input is f32[3]"

t "run: an index out of range at run time"
run 1 run "$G/index.smelt" --input "i=$T/i_bad.npy"
err_has "smeltc: $G/index.smelt:"
err_has "out of range"
out_empty

t "run: --output-dir is a file"
run 1 run "$G/double.smelt" --input "x=$T/x.npy" --output-dir "$T/x.npy"
err_has "smeltc: --output-dir $T/x.npy: not a directory"

t "run: --output-dir below a file"
run 1 run "$G/double.smelt" --input "x=$T/x.npy" --output-dir "$T/x.npy/sub"
err_has "smeltc: --output-dir $T/x.npy/sub: cannot create"

# ----------------------------------------------------------------- dump

t "dump"
run 0 dump "$G/double.smelt"
out_has "input %x : f32[3]"
out_has "output y = %y"
out_has " mul %x, "
err_empty

t "dump is a fixed point"
run 0 dump "$G/broadcast.smelt"
cp "$T/stdout" "$T/dump1"
STDIN="$T/dump1" run 0 dump -
cmp -s "$T/dump1" "$T/stdout" || bad "dump of the dump differs"

t "the dump runs like the source"
run 0 dump "$G/broadcast.smelt"
cp "$T/stdout" "$T/dump2"
run 0 run "$G/broadcast.smelt"
cp "$T/stdout" "$T/run1"
run 0 run "$T/dump2"
cmp -s "$T/run1" "$T/stdout" || bad "the dumped graph gives other results"

t "dump --dot"
run 0 dump "$G/double.smelt" --dot
out_has "digraph smelt {"
out_has "}"
out_lacks "input %x : f32[3]"

t "dump: parse error"
run 1 dump "$G/bad_syntax.smelt"
err_has "smeltc: $G/bad_syntax.smelt:2:"
out_empty

t "dump: missing file"
run 1 dump "$T/nope.smelt" --dot
err_has "smeltc: $T/nope.smelt: cannot open"


# ------------------------------------------------------ run: targets

t "run --target interp"
run 0 run "$G/double.smelt" --input "x=$T/x.npy" --target interp
out_is "y: f32[3] = [2, 4, 6]"
err_empty

t "run --target=interp: every dtype, as the default target"
run 0 run "$G/broadcast.smelt" --target=interp
cp "$T/stdout" "$T/bc_interp"
out_has "sd: f64[] = 1.1086779"
out_has "n: i32[2] = [ 7, -8]"

t "run --target interp: large outputs"
run 0 run "$G/large.smelt" --target interp
out_has "r: i64[1000] = [0, 1, 2, 3, 4, 5, ..., 997, 998, 999]"

t "run --target interp --stats"
run 0 run "$G/double.smelt" -i "x=$T/x.npy" --target interp --stats
out_is "y: f32[3] = [2, 4, 6]"
err_has "stats: target      interp"
err_has "stats: kernels     "
err_has "stats: buffers     "
err_has "stats: arena bytes "
err_has "stats: compile ms  "
err_has "stats: cache hit   no"

t "run: compile options with the interp target"
run 0 run "$G/broadcast.smelt" --target interp --threads 2 --opt-level 0 --reassociate --no-cache
cmp -s "$T/bc_interp" "$T/stdout" || bad "results differ"

t "run --target interp: a param"
run 0 run "$G/param.smelt" --target interp
out_is "y: f32[3] = [-3.6091137, -2.9512384, -0.3462107]"

t "run: SMELT_TARGET=interp"
SMELT_TARGET=interp run 0 run "$G/double.smelt" -i "x=$T/x.npy" --stats
err_has "stats: target      interp"

t "run: --target wins over SMELT_TARGET"
SMELT_TARGET=bogus run 0 run "$G/double.smelt" -i "x=$T/x.npy" --target interp --stats
err_has "stats: target      interp"

t "run: a bad SMELT_TARGET"
SMELT_TARGET=bogus run 1 run "$G/double.smelt" -i "x=$T/x.npy"
err_has "smeltc: $G/double.smelt: SMELT_TARGET=\"bogus\" is not a target"
out_empty

t "run --target interp: an index out of range at run time"
run 1 run "$G/index.smelt" --input "i=$T/i_bad.npy" --target interp
err_has "smeltc: $G/index.smelt:"
err_has "out of range"

t "run: the cuda target without a driver"
SMELT_CUDA_DRIVER=/nonexistent/libcuda.so.1 run 1 run "$G/double.smelt" -i "x=$T/x.npy" --target cuda
err_has "smeltc: $G/double.smelt: no CUDA driver found (/nonexistent/libcuda.so.1: "

t "run: SMELT_PROFILE times the kernels of the cpu target"
if "$SMELTC" run "$G/double.smelt" -i "x=$T/x.npy" --target cpu -q >/dev/null 2>&1; then
  SMELT_PROFILE=1 run 0 run "$G/double.smelt" -i "x=$T/x.npy" --target cpu --steps 3 -q
  err_has "profile: 1 kernel, 3 runs, "
  err_has "profile: k0    pointwise ["
  run 0 run "$G/double.smelt" -i "x=$T/x.npy" --target cpu -q
  err_lacks "profile:"
else
  echo "  (no cpu target: skipped)"
fi

t "run: no outputs"
run 0 run "$G/no_outputs.smelt" --target interp --stats
err_has "smeltc: note: $G/no_outputs.smelt has no outputs"
err_lacks "stats:"
out_empty

t "run: an unknown target"
run 2 run "$G/double.smelt" --target gpu
err_has "smeltc: run: unknown target 'gpu' (targets: cpu, interp, cuda, auto) (see 'smeltc run --help')"

t "run: --target without a value"
run 2 run "$G/double.smelt" --target
err_has "smeltc: run: --target needs a value (targets: cpu, interp, cuda, auto)"

t "run: --threads 0"
run 2 run "$G/double.smelt" --threads 0
err_has "smeltc: run: --threads needs a number of threads from 1 to 4096, not '0'"

t "run: --threads not a number"
run 2 run "$G/double.smelt" --threads=2x
err_has "--threads needs a number of threads from 1 to 4096, not '2x'"

t "run: --threads without a value"
run 2 run "$G/double.smelt" --threads
err_has "smeltc: run: --threads needs a number of threads from 1 to 4096 ("

t "run: --opt-level 4"
run 2 run "$G/double.smelt" --opt-level 4
err_has "smeltc: run: --opt-level needs 0, 1, 2 or 3, not '4'"

# ------------------------------------------------------- compile: usage

t "compile: missing FILE"
run 2 compile --emit=kernels
err_has "smeltc: compile: missing FILE (the graph to compile) (see 'smeltc compile --help')"

t "compile: missing -o (an object) or --emit (stages)"
run 2 compile "$G/double.smelt"
err_has "smeltc: compile: missing -o FILE.o (the object to write), or --emit STAGE to print compiler stages"

t "compile: --stats without --emit writes no stage"
run 2 compile "$G/double.smelt" --threads 2
err_has "smeltc: compile: missing --emit STAGE (stages: graph, passes, fusion, kernels, llvm, asm (cpu), cuda, ptx, cubin (cuda), dot, all)"

t "compile: object and stage options together"
run 2 compile "$G/double.smelt" --emit=kernels --header "$T/x.h"
err_has "smeltc: compile: --header writes an object, and --emit writes compiler stages: use one form at a time"
run 2 compile "$G/double.smelt" -o "$T/x.o" --triple aarch64-linux-gnu --no-cache
err_has "smeltc: compile: --triple writes an object, and --no-cache writes compiler stages"

t "compile: object usage errors"
run 2 compile "$G/thermometer.smelt" -o -
err_has "smeltc: compile: an object is not written to standard output (give -o FILE.o)"
run 2 compile "$G/thermometer.smelt" -o "$T/x.o" --target interp
err_has "compiles nothing"
run 2 compile "$G/thermometer.smelt" -o "$T/x.o" --prefix
err_has "smeltc: compile: --prefix needs a C identifier"
for flag in --header --weights --triple --cpu; do
  run 2 compile "$G/thermometer.smelt" -o "$T/x.o" "$flag"
  err_has "smeltc: compile: $flag needs"
done

t "compile: an unknown stage"
run 2 compile "$G/double.smelt" --emit=kernel
err_has "smeltc: compile: unknown stage 'kernel' in --emit (stages: graph, passes, fusion, kernels, llvm, asm (cpu), cuda, ptx, cubin (cuda), dot, all)"
out_empty

t "compile: an unknown stage in a list"
run 2 compile "$G/double.smelt" --emit fusion,ir
err_has "unknown stage 'ir' in --emit"

t "compile: an empty stage"
run 2 compile "$G/double.smelt" --emit=fusion,,kernels
err_has "smeltc: compile: --emit 'fusion,,kernels' has an empty stage"

t "compile: --emit without a value"
run 2 compile "$G/double.smelt" --emit
err_has "smeltc: compile: --emit needs a stage (stages: graph,"

t "compile: -o without a value"
run 2 compile "$G/double.smelt" --emit=kernels -o
err_has "smeltc: compile: -o needs a file name"

t "compile: the interp target"
run 2 compile "$G/double.smelt" --emit=kernels --target interp
err_has "smeltc: compile: the interp target runs the graph as it is and compiles nothing"

t "compile: an unknown target"
run 2 compile "$G/double.smelt" --emit=kernels --target=gpu
err_has "smeltc: compile: unknown target 'gpu' (targets: cpu, interp, cuda, auto)"

t "compile: an unknown option"
run 2 compile "$G/double.smelt" --emit=kernels --fast
err_has "smeltc: compile: unknown option '--fast' (see 'smeltc compile --help')"

t "compile: two FILEs"
run 2 compile "$G/double.smelt" "$G/add.smelt" --emit=kernels
err_has "compile: unexpected argument"

# ------------------------------------------------------ compile: input

t "compile: missing graph file"
run 1 compile "$T/nope.smelt" --emit=kernels
err_has "smeltc: $T/nope.smelt: cannot open: No such file or directory"
out_empty

t "compile: parse error"
run 1 compile "$G/bad_syntax.smelt" --emit=kernels
err_has "smeltc: $G/bad_syntax.smelt:2:"
out_empty

t "compile: a graph without outputs"
run 1 compile "$G/no_outputs.smelt" --emit=kernels
err_has "smeltc: $G/no_outputs.smelt: the graph has no outputs, so there is nothing to compile"
out_empty

t "compile: cuda stages need no GPU"
run 0 compile "$G/double.smelt" --emit=kernels,cuda --target cuda -o "$T/cuda.txt"
grep -q '^=== cuda ===' "$T/cuda.txt" || bad "no cuda stage in $T/cuda.txt"
grep -q 'extern "C" __global__' "$T/cuda.txt" || bad "no kernel in the cuda stage"
out_empty

t "compile: a stage of the other target"
run 2 compile "$G/double.smelt" --emit=llvm --target cuda
err_has "smeltc: compile: the llvm stage is made by --target cpu (not cuda)"
run 2 compile "$G/double.smelt" --emit=ptx
err_has "smeltc: compile: the ptx stage is made by --target cuda (not cpu)"
run 2 compile "$G/double.smelt" --emit=kernels --arch sm_90
err_has "smeltc: compile: --arch is for --target cuda (not cpu)"
run 2 compile "$G/double.smelt" --emit=cubin,cuda --target cuda
err_has "smeltc: compile: cubin is binary: emit it alone"

t "compile: all stages of the cuda target"
if "$SMELTC" compile "$G/double.smelt" --target cuda --emit=ptx >/dev/null 2>&1; then
  run 0 compile "$G/double.smelt" --emit=all --target cuda --arch sm_90 --no-cache
  out_has "=== cuda ==="
  out_has "=== ptx ==="
  out_has ".target sm_90"
  out_lacks "=== llvm ==="
  out_lacks "=== cubin ==="
  run 0 compile "$G/double.smelt" --emit=cubin --target cuda -o "$T/double.cubin" --stats
  err_has "stats: arch        sm_"
  [ "$(head -c 4 "$T/double.cubin" | od -An -c | tr -d ' ')" = '177ELF' ] || bad "the cubin is not ELF"
  run 1 compile "$G/double.smelt" --emit=cuda --target cuda --arch sm_10
  err_has "is not supported by NVRTC"
  # the printed CUDA C needs no NVRTC; PTX names the library it missed
  SMELT_NVRTC=/nonexistent/libnvrtc.so run 0 compile "$G/double.smelt" --emit=cuda --target cuda
  SMELT_NVRTC=/nonexistent/libnvrtc.so run 1 compile "$G/double.smelt" --emit=ptx --target cuda
  err_has "smeltc: $G/double.smelt: NVRTC could not be loaded (/nonexistent/libnvrtc.so: "
  err_has "set SMELT_NVRTC to libnvrtc's path"
else
  echo "  (NVRTC not available: skipped)"
fi

# --------------------------------------- compile: stages (cpu target)

# ----------------------------------------------------- declared programs

# The thermometer data of docs/text-format.md (t_c, t_u: 11 f32 each).
mknpy "$T/t_c.npy" '<f4' '(11,)' \
  0000003f00006041000070410000e041000030410000004100004040000080c00000c040000050410000a841
mknpy "$T/t_u.npy" '<f4' '(11,)' \
  cdcc0e429a995f42cdcc6842cdcca342333361429a9943429a9907426666ae419a9941429a997142cdcc8842
TH=("$G/thermometer.smelt" -i "t_u=$T/t_u.npy" -i "t_c=$T/t_c.npy")
# loss_of: the value of "loss: f32[] = V" on stdout
loss_of() { sed -n 's/^loss: f32\[\] = //p' "$T/stdout"; }

t "run --program: a declared training step, the loss falls"
run 0 run "${TH[@]}" --program train_step
out_has "loss: f32[] = 80.364"
out_lacks "t_p"
first=$(loss_of)
run 0 run "${TH[@]}" --program train_step --steps 100
out_lacks "t_p"
last=$(loss_of)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b > 0 && b < a / 3) }' ||
  bad "the loss did not fall: $first after 1 step, $last after 100"
run 0 run "${TH[@]}" --program train_step --steps 5000 --target interp
out_has "loss: f32[] = 2.927"

t "run --program: an evaluation program prints its outputs only"
run 0 run "${TH[@]}" -p predict
out_has "t_p: f32[11] = [3.5700002,"
out_lacks "loss"

t "run without --program: every output, as before"
run 0 run "${TH[@]}"
out_has "loss: f32[] = 80.364"
out_has "t_p: f32[11]"

t "run --program: an unknown program lists the declared ones"
run 1 run "${TH[@]}" --program trian
err_has "smeltc: $G/thermometer.smelt: no program named \"trian\" (declared: train_step, predict)"
run 1 run "$G/double.smelt" -i "x=$T/x.npy" --program p
err_has "no program named \"p\" (the graph declares no programs)"

t "run --program / --steps: usage errors"
run 2 run "${TH[@]}" --program
err_has "run: --program needs the name of a program the graph declares"
run 2 run "${TH[@]}" --steps 0
err_has "run: --steps needs a number of runs from 1 to 1000000000, not '0'"
run 2 run "${TH[@]}" --steps
err_has "run: --steps needs a number of runs"

t "run --help documents --program and --steps"
run 0 run --help
out_has "--program NAME"
out_has "--steps N"

t "dump: program lines print canonically and round-trip"
run 0 dump "$G/thermometer.smelt"
out_has "program train_step outputs=[loss] updates=[%update_w, %update_b]"
out_has "eval program predict outputs=[t_p]"
cp "$T/stdout" "$T/th.smelt"
run 0 dump "$T/th.smelt"
cmp -s "$T/th.smelt" "$T/stdout" || bad "the canonical text does not print back the same"

# The stages need the cpu target (passes, fusion, lowering); llvm and asm
# need LLVM too. Cases that cannot work in this build are skipped.
have_compile=0
have_cpu=0
"$SMELTC" compile "$G/double.smelt" --emit=fusion >/dev/null 2>&1 && have_compile=1
"$SMELTC" compile "$G/double.smelt" --emit=llvm 2>/dev/null | grep -q define && have_cpu=1
[ $have_compile = 1 ] || echo "note: 'smeltc compile --emit=fusion' fails: skipping the compile stage tests"
[ $have_cpu = 1 ] || echo "note: 'smeltc compile --emit=llvm' fails (no cpu target): skipping the cpu tests"

if [ $have_compile = 1 ]; then
  t "compile --emit=graph"
  run 0 compile "$G/double.smelt" --emit=graph
  out_has "input %x : f32[3]"
  out_has "output y = %y"
  err_empty

  t "compile --emit=passes"
  run 0 compile "$G/broadcast.smelt" --emit=passes
  out_has "; passes simplify"
  out_has "%sd = const 1.1086778913041726 : f64[]"

  t "compile --emit=fusion"
  run 0 compile "$G/double.smelt" --emit=fusion
  out_has "kernel k0 pointwise"
  out_has "1 kernel, 0 intermediate buffers"
  out_lacks "==="

  t "compile --emit=kernels"
  run 0 compile "$G/double.smelt" --emit=kernels
  out_has "kernel k0"

  t "compile --emit=dot"
  run 0 compile "$G/softmax.smelt" --emit=dot
  out_has "digraph"
  out_has "subgraph cluster_k0 {"
  out_has "subgraph cluster_k1 {"

  t "compile: a graph folded to constants has no kernels"
  run 0 compile "$G/broadcast.smelt" --emit=fusion,kernels --stats
  out_has "=== fusion ==="
  out_has "0 kernels"
  err_has "stats: kernels     0"
  err_has "smeltc: note: the kernels stage is empty: the program has no kernels"

  t "compile: several stages, in the order given, each once"
  run 0 compile "$G/double.smelt" --emit=kernels,graph -e kernels --emit fusion
  [ "$(grep -c '^=== ' "$T/stdout")" = 3 ] || bad "expected 3 headers"
  [ "$(grep '^=== ' "$T/stdout" | tr '\n' ' ')" = "=== kernels === === graph === === fusion === " ] ||
    bad "headers: $(grep '^=== ' "$T/stdout" | tr '\n' ' ')"
  out_has "kernel k0"
  out_has "output y = %y"

  t "compile -o PATH"
  run 0 compile "$G/double.smelt" --emit=kernels -o "$T/k.txt"
  out_empty
  grep -qF "kernel k0" "$T/k.txt" || bad "$T/k.txt lacks the kernels"

  t "compile --output=PATH from stdin"
  STDIN="$G/double.smelt" run 0 compile - --emit=graph --output="$T/g.txt"
  grep -qF "output y = %y" "$T/g.txt" || bad "$T/g.txt lacks the graph"

  t "compile -o -"
  run 0 compile "$G/double.smelt" --emit=kernels -o -
  out_has "kernel k0"

  t "compile -o into a missing directory"
  run 1 compile "$G/double.smelt" --emit=kernels -o "$T/no/such/k.txt"
  err_has "smeltc: -o $T/no/such/k.txt: cannot open for writing: No such file or directory"

  t "compile --stats"
  run 0 compile "$G/double.smelt" --emit=kernels --stats
  out_has "kernel k0"
  err_has "stats: target      cpu"
  err_has "stats: kernels     1"

  t "compile --stats without --emit"
  run 0 compile "$G/broadcast.smelt" --stats --threads 2 --opt-level 1 --reassociate --no-cache
  out_empty
  err_has "stats: target      cpu"
  err_has "stats: cache hit   no"

  t "compile does not use SMELT_DUMP"
  SMELT_DUMP=all run 0 compile "$G/double.smelt" --emit=graph
  err_empty
  out_lacks "kernel k0"
fi

if [ $have_cpu = 1 ]; then
  t "compile --emit=llvm"
  run 0 compile "$G/double.smelt" --emit=llvm
  out_has "define"

  t "compile --emit=asm"
  run 0 compile "$G/double.smelt" --emit=asm
  out_has ".text"

  t "compile --emit=all"
  run 0 compile "$G/broadcast.smelt" --emit=all
  [ "$(grep '^=== ' "$T/stdout" | tr '\n' ' ')" = "=== graph === === passes === === fusion === === kernels === === llvm === === asm === === dot === " ] ||
    bad "headers: $(grep '^=== ' "$T/stdout" | tr '\n' ' ')"

  t "run --target cpu"
  run 0 run "$G/double.smelt" --input "x=$T/x.npy" --target cpu
  out_is "y: f32[3] = [2, 4, 6]"
  err_empty

  t "run --target cpu --stats"
  run 0 run "$G/double.smelt" --input "x=$T/x.npy" --target cpu --stats --no-cache
  err_has "stats: target      cpu"
  err_has "stats: kernels     1"
  err_has "stats: cache hit   no"

  # Every graph gives the same output on both targets.
  for case in "broadcast" "large" "add -i a=$T/a.npy -i b=$T/b.npy" \
    "matrix -i m=$T/m_fortran.npy" "index -i i=$T/i_ok.npy" "softmax -i x=$T/x2x2.npy" "param"; do
    # shellcheck disable=SC2086
    set -- $case
    g=$1
    shift
    t "run $g: cpu as interp"
    run 0 run "$G/$g.smelt" "$@" --target interp
    cp "$T/stdout" "$T/want_interp"
    run 0 run "$G/$g.smelt" "$@" --target cpu
    cmp -s "$T/want_interp" "$T/stdout" || { bad "cpu and interp differ"; diff "$T/want_interp" "$T/stdout" | head; }
    run 0 run "$G/$g.smelt" "$@" --target cpu --threads 1 --opt-level 0
    cmp -s "$T/want_interp" "$T/stdout" || bad "cpu --threads 1 --opt-level 0 and interp differ"
  done

  t "run --target cpu: an index out of range at run time"
  run 1 run "$G/index.smelt" --input "i=$T/i_bad.npy" --target cpu
  err_has "smeltc: $G/index.smelt:"
  err_has "out of range"

  t "run: the disk cache"
  SMELT_CACHE_DIR="$T/cache2" run 0 run "$G/softmax.smelt" -i "x=$T/x2x2.npy" --target cpu --stats
  err_has "stats: cache hit   no"
  SMELT_CACHE_DIR="$T/cache2" run 0 run "$G/softmax.smelt" -i "x=$T/x2x2.npy" --target cpu --stats
  err_has "stats: cache hit   yes"
  SMELT_CACHE_DIR="$T/cache2" run 0 run "$G/softmax.smelt" -i "x=$T/x2x2.npy" --target cpu --stats --no-cache
  err_has "stats: cache hit   no"
  SMELT_CACHE=0 SMELT_CACHE_DIR="$T/cache2" run 0 run "$G/softmax.smelt" -i "x=$T/x2x2.npy" --target cpu --stats
  err_has "stats: cache hit   no"

  t "run: SMELT_DUMP prints a stage on stderr"
  SMELT_DUMP=kernels run 0 run "$G/double.smelt" -i "x=$T/x.npy" --target cpu
  out_is "y: f32[3] = [2, 4, 6]"
  err_has "=== smelt dump: program "
  err_has "kernel k0"

  t "run: SMELT_DUMP_DIR"
  mkdir "$T/dumps"
  SMELT_DUMP=kernels,llvm SMELT_DUMP_DIR="$T/dumps" run 0 run "$G/double.smelt" -i "x=$T/x.npy" \
    --target cpu --no-cache
  err_empty
  set -- "$T"/dumps/p*.kernels.txt
  [ -s "$1" ] || bad "no kernels dump file in $T/dumps: $(ls "$T/dumps")"

  # --------------------------------------------- compile: ahead of time
  t "compile: an object and its header"
  run 0 compile "$G/thermometer.smelt" -o "$T/thermo.o" --header "$T/thermo.h"
  out_empty
  err_empty
  [ -s "$T/thermo.o" ] || bad "no object written"
  grep -q "^int thermo_train_step(thermo_ctx \*ctx,$" "$T/thermo.h" || bad "no train_step function"
  grep -q "^int thermo_predict(thermo_ctx \*ctx,$" "$T/thermo.h" || bad "no predict function"
  grep -q "^int thermo_params_init(thermo_ctx \*ctx);" "$T/thermo.h" || bad "no initializer"
  grep -q "from thermometer.smelt for " "$T/thermo.h" || bad "the header does not name its source"

  t "compile: --prefix names everything"
  run 0 compile "$G/thermometer.smelt" -o "$T/t-1.o" --header "$T/t1.h" --prefix th1
  grep -q "^int th1_train_step(th1_ctx \*ctx,$" "$T/t1.h" || bad "the prefix is not used"
  grep -q "^#define TH1_PARAMS_BYTES 128$" "$T/t1.h" || bad "no TH1_PARAMS_BYTES"
  run 0 compile "$G/thermometer.smelt" -o "$T/t-1.o" --header "$T/t1.h"
  grep -q "^int model_train_step(" "$T/t1.h" || bad "the default prefix of t-1.o is not model"

  t "compile: a graph without programs"
  rm -f "$T/none.o"
  run 1 compile "$G/double.smelt" -o "$T/none.o" --header "$T/none.h"
  err_has "the graph declares no programs"
  [ ! -e "$T/none.o" ] && [ ! -e "$T/none.h" ] || bad "files written although compilation failed"

  t "compile: a bad prefix"
  run 1 compile "$G/thermometer.smelt" -o "$T/x.o" --prefix 9lives
  err_has 'prefix "9lives" is not a C identifier'

  t "compile: unknown targets, CPUs and features"
  run 1 compile "$G/thermometer.smelt" -o "$T/x.o" --cpu pentium9
  err_has 'unknown CPU "pentium9" for x86_64'
  run 1 compile "$G/thermometer.smelt" -o "$T/x.o" --triple aarch64-linux-gnu --cpu znver4
  err_has 'unknown CPU "znver4" for aarch64'
  run 1 compile "$G/thermometer.smelt" -o "$T/x.o" --features +avx2,avx512f
  err_has 'unknown feature "avx512f" for x86_64 (features are +name or -name'
  run 1 compile "$G/thermometer.smelt" -o "$T/x.o" --triple riscv64-linux-gnu
  err_has "ahead-of-time objects are made for x86-64 and AArch64"
  run 1 compile "$G/thermometer.smelt" -o "$T/x.o" --triple aarch64_be-linux-gnu
  err_has "need a 64-bit little-endian target"
  [ ! -e "$T/x.o" ] || bad "an object was written although compilation failed"

  t "compile: --weights"
  # mkst FILE JSON DATA: a safetensors file (header padded to 8 bytes)
  mkst() {
    local len pad
    len=${#2}
    pad=$(((8 - len % 8) % 8))
    {
      printf "$(printf '\\x%02x' $(((len + pad) & 255)) $(((len + pad) >> 8)) 0 0 0 0 0 0)"
      printf '%s%*s' "$2" "$pad" ''
      printf "$3"
    } >"$1"
  }
  # b=-1, w=2
  mkst "$T/w.safetensors" '{"b":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[],"data_offsets":[4,8]}}' \
    '\x00\x00\x80\xbf\x00\x00\x00\x40'
  run 0 compile "$G/thermometer.smelt" -o "$T/w.o" --header "$T/w.h" --weights "$T/w.safetensors"
  err_empty
  mkst "$T/w64.safetensors" '{"w":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}' \
    '\x00\x00\x00\x00\x00\x00\x00\x40'
  run 1 compile "$G/thermometer.smelt" -o "$T/w.o" --weights "$T/w64.safetensors"
  err_has 'tensor "w" is f64[], the param is f32[]'
  run 1 compile "$G/thermometer.smelt" -o "$T/w.o" --weights "$T/missing.safetensors"
  err_has "missing.safetensors: cannot open"

  t "compile: an evaluation program may not need gradients"
  { cat "$G/thermometer.smelt"; printf 'output gw = %%grad_w\neval program gw_only outputs=[gw]\n'; } \
    >"$T/evalgrad.smelt"
  run 1 compile "$T/evalgrad.smelt" -o "$T/x.o"
  err_has 'program "gw_only": output "gw" depends on %grad_w of a backward graph'

  t "compile: a program named like a generated function"
  sed 's/^eval program predict/eval program params_init/' "$G/thermometer.smelt" >"$T/clash.smelt"
  run 1 compile "$T/clash.smelt" -o "$T/x.o"
  err_has 'program "params_init": its function x_params_init would clash'

  t "compile: a param named __metadata__"
  printf 'param %%__metadata__ : f32[] init=ones\n%%y = mul %%__metadata__, 2\noutput y = %%y\neval program p outputs=[y]\n' >"$T/md.smelt"
  run 1 compile "$T/md.smelt" -o "$T/x.o"
  err_has 'param "__metadata__": safetensors files reserve that name'

  t "compile: SMELT_DUMP shows the object's IR"
  SMELT_DUMP=llvm run 0 compile "$G/thermometer.smelt" -o "$T/d.o"
  err_has "define i32 @d_train_step(ptr"
else
  t "without the cpu target, --emit=llvm fails cleanly"
  run 1 compile "$G/double.smelt" --emit=llvm -o "$T/l.ll"
  [ ! -e "$T/l.ll" ] || bad "-o file written although compilation failed"
fi

finish
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
