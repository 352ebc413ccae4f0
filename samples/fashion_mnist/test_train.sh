#!/usr/bin/env bash
# A short training run of the fashion_mnist sample, on a slice of the data.
#
#   test_train.sh FASHION_MNIST
#
# Trains the MLP for a few hundred steps on the first training images and
# checks that the loss falls below a threshold; saves a checkpoint and
# checks that it loads back (same accuracy, and on the interp target);
# with --aot, that the object compiled ahead of time computes what the JIT
# does; and that a truncated IDX file gives a clear error. Skipped (77)
# when the data is missing: $FASHION_MNIST_DATA, else
# /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist).
#
# On the interp target ($SMELT_TARGET=interp, as scripts/test runs the
# suite under valgrind, whose command line is then in $SMELTC_WRAPPER) the
# model and the run are smaller.
set -u
export LC_ALL=C

if [ $# -ne 1 ]; then
  echo "usage: $0 FASHION_MNIST" >&2
  exit 2
fi
EXE=$1
DATA=${FASHION_MNIST_DATA:-/usr/share/datasets/fashion-mnist}
if [ ! -e "$DATA/train-images-idx3-ubyte.gz" ] && [ ! -e "$DATA/train-images-idx3-ubyte" ]; then
  echo "SKIP: no Fashion-MNIST data in $DATA (install Debian's dataset-fashion-mnist," \
    "or set FASHION_MNIST_DATA)"
  exit 77
fi
WRAP=${SMELTC_WRAPPER:-}
T=$(mktemp -d "${TMPDIR:-/tmp}/fmnist-test.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
unset SMELT_DUMP SMELT_DUMP_DIR
export SMELT_CACHE_DIR=$T/cache

fail=0
bad() {
  echo "FAIL: $*"
  fail=1
}

# What each target trains, and the loss its last epoch must fall below
# (measured, seeds 1 to 4: about 0.395 on cpu, 0.85 on interp; the first
# epoch's loss is 0.69 and 1.73, and an untrained model's ln(10) = 2.30).
# Without SMELT_TARGET the program's default: cpu, or interp when smelt
# was built without LLVM.
TARGET=${SMELT_TARGET:-}
if [ -z "$TARGET" ]; then
  TARGET=$("$EXE" --data "$DATA" --epochs 0 --test-limit 1 --quiet 2>/dev/null |
    sed -n 's/^target \([a-z]*\).*/\1/p')
  TARGET=${TARGET:-cpu}
fi
case "$TARGET" in
interp)
  RUN=(--target interp --hidden 32 --batch 32 --limit 640 --epochs 2 --test-limit 200)
  MAX_LOSS=1.1
  MIN_ACCURACY=55
  ;;
*)
  RUN=(--target "$TARGET" --limit 12800 --epochs 3 --test-limit 2000)
  MAX_LOSS=0.5
  MIN_ACCURACY=80
  ;;
esac

# the loss of the last "epoch E/N: loss X, ..." line; the final accuracy
loss_of() { sed -n 's/^epoch [0-9]*\/[0-9]*: loss \([0-9.]*\),.*/\1/p' | tail -n 1; }
accuracy_of() { sed -n 's/^test accuracy \([0-9.]*\)%.*/\1/p' | tail -n 1; }

echo "== training: ${RUN[*]}"
$WRAP "$EXE" --data "$DATA" "${RUN[@]}" --quiet --save "$T/ck.safetensors" >"$T/train.out" 2>"$T/train.err"
status=$?
cat "$T/train.out" "$T/train.err"
if [ $status -ne 0 ]; then
  bad "training exited with status $status"
else
  loss=$(loss_of <"$T/train.out")
  acc=$(accuracy_of <"$T/train.out")
  if [ -z "$loss" ] || ! awk -v l="$loss" -v m="$MAX_LOSS" 'BEGIN { exit !(l < m) }'; then
    bad "the last epoch's loss '$loss' is not below $MAX_LOSS"
  fi
  if [ -z "$acc" ] || ! awk -v a="$acc" -v m="$MIN_ACCURACY" 'BEGIN { exit !(a >= m) }'; then
    bad "the test accuracy '$acc' is below $MIN_ACCURACY%"
  fi

  # the checkpoint loads back: the same accuracy on the same target
  EVAL=("${RUN[@]}" --epochs 0)
  echo "== loading the checkpoint"
  out=$($WRAP "$EXE" --data "$DATA" "${EVAL[@]}" --load "$T/ck.safetensors" 2>&1)
  status=$?
  echo "$out"
  acc2=$(accuracy_of <<<"$out")
  if [ $status -ne 0 ] || [ "$acc2" != "$acc" ]; then
    bad "after --load: status $status, accuracy '$acc2' (expected $acc)"
  fi

  # and on the interp target (a checkpoint is the same on every target)
  if [ "$TARGET" != interp ]; then
    echo "== loading the checkpoint on the interp target"
    out=$($WRAP "$EXE" --data "$DATA" "${EVAL[@]}" --target interp --test-limit 500 \
      --load "$T/ck.safetensors" 2>&1)
    status=$?
    echo "$out"
    if [ $status -ne 0 ] || [ -z "$(accuracy_of <<<"$out")" ]; then
      bad "--load on the interp target: status $status"
    fi
  fi
fi

# --aot: the object compiled ahead of time computes the JIT's numbers
# (skipped under a wrapper: the object uses the host CPU's instructions,
# which valgrind may not know, and on builds without it).
if [ -z "$WRAP" ] && [ "$TARGET" = cpu ] &&
  ! "$EXE" --aot --data "$T/none" 2>&1 | grep -q "no object compiled ahead of time"; then
  echo "== --aot"
  "$EXE" --data "$DATA" --limit 6400 --epochs 1 --test-limit 1000 --quiet >"$T/jit.out" 2>&1
  s1=$?
  "$EXE" --data "$DATA" --limit 6400 --epochs 1 --test-limit 1000 --quiet --aot >"$T/aot.out" 2>&1
  s2=$?
  cat "$T/aot.out"
  l1=$(loss_of <"$T/jit.out") l2=$(loss_of <"$T/aot.out")
  a1=$(accuracy_of <"$T/jit.out") a2=$(accuracy_of <"$T/aot.out")
  if [ $s1 -ne 0 ] || [ $s2 -ne 0 ] || [ -z "$l1" ] || [ -z "$l2" ] ||
    ! awk -v x="$l1" -v y="$l2" -v a="$a1" -v b="$a2" \
      'BEGIN { d = x - y; e = a - b; exit !(d < 0.01 && d > -0.01 && e < 1 && e > -1) }'; then
    bad "--aot: loss '$l2', accuracy '$a2'; the JIT's: loss '$l1', accuracy '$a1'"
  fi
fi

# A truncated file: a clear message naming it, exit status 1.
echo "== a truncated IDX file"
mkdir -p "$T/bad"
printf '\0\0\10\3\0\0\352\140\0\0\0\34\0\0\0\34\1\2\3' >"$T/bad/train-images-idx3-ubyte"
out=$($WRAP "$EXE" --data "$T/bad" 2>&1)
status=$?
echo "$out"
if [ $status -ne 1 ] ||
  ! grep -q "$T/bad/train-images-idx3-ubyte: truncated: the IDX header says 60000x28x28" <<<"$out"; then
  bad "a truncated file: status $status"
fi
# A missing directory says how to get the data.
out=$($WRAP "$EXE" --data "$T/none" 2>&1)
status=$?
echo "$out"
if [ $status -ne 1 ] || ! grep -q "dataset-fashion-mnist" <<<"$out"; then
  bad "a missing directory: status $status"
fi

[ $fail -eq 0 ] && echo "all passed"
exit $fail
