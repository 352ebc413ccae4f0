#!/bin/sh
# Runs a suite on the cuda target, or skips it (exit 77, meson's skip)
# when this machine has no CUDA driver or device.
# usage: cuda_or_skip.sh SMELTC GRAPH SUITE [ARGS...]
smeltc=$1 graph=$2
shift 2
if ! out=$("$smeltc" run "$graph" --target cuda --quiet 2>&1); then
  case $out in
  *"no CUDA driver found"* | *NO_DEVICE* | *"no CUDA-capable device"*)
    echo "no CUDA device: skipping the cuda target ($out)"
    exit 77 ;;
  esac
  echo "the cuda target fails on $graph: $out" >&2
  exit 1
fi
exec "$@"
