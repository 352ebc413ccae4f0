# shellcheck shell=bash
# Shared by scripts/demo and scripts/test: find the repository, install
# missing Debian packages, configure and build meson build directories.
# Source it; it defines functions only (and ROOT).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive

log() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo env DEBIAN_FRONTEND=noninteractive "$@"
  else
    die "need root to run '$*' (run as root or install sudo)"
  fi
}

# ensure_packages PKG...: installs the packages that dpkg does not list as
# installed; runs apt-get update only when something is missing.
ensure_packages() {
  local missing=() p info
  for p in "$@"; do
    # (no `dpkg -s | grep -q`: with pipefail, grep quitting early makes
    # dpkg die of SIGPIPE and the package look missing)
    info="$(dpkg -s "$p" 2>/dev/null || true)"
    if ! grep -qx 'Status: install ok installed' <<<"$info"; then
      missing+=("$p")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "missing packages (${missing[*]}) and no apt-get: install them by hand"
  log "installing ${missing[*]}"
  as_root apt-get update -q
  as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# What every build needs. Check is a build dependency of the test programs
# (tests/meson.build requires it), so the demo needs it too. llvm-19-dev
# gives the cpu target (LLVM's C API, linked as the shared libLLVM).
# zlib1g-dev: the fashion_mnist sample reads the gzip'ed IDX files.
# shellcheck disable=SC2034 # used by the scripts that source this file
BUILD_PACKAGES=(meson ninja-build pkg-config gcc libc6-dev check llvm-19-dev zlib1g-dev)

# Data sets the samples train on: Fashion-MNIST's IDX files in
# /usr/share/datasets/fashion-mnist (samples/fashion_mnist; its test is
# skipped without them).
# shellcheck disable=SC2034
DATA_PACKAGES=(dataset-fashion-mnist)

# configure DIR [meson options...]: meson setup, or --reconfigure when DIR is
# already configured (so changed options apply); wipes and starts over when
# the directory cannot be reconfigured (e.g. made by another meson version).
# The compiler comes from $CC the first time a directory is set up.
configure() {
  local dir="$1"
  shift
  local out
  if [ -f "$ROOT/$dir/meson-private/coredata.dat" ]; then
    out="$(meson setup --reconfigure "$ROOT/$dir" "$ROOT" "$@" 2>&1)" ||
      out="$(meson setup --wipe "$ROOT/$dir" "$ROOT" "$@" 2>&1)" || {
      printf '%s\n' "$out" >&2
      return 1
    }
  else
    rm -rf "${ROOT:?}/$dir"
    out="$(meson setup "$ROOT/$dir" "$ROOT" "$@" 2>&1)" || {
      printf '%s\n' "$out" >&2
      return 1
    }
  fi
}

# build DIR [targets...]
build() {
  local dir="$1"
  shift
  meson compile -C "$ROOT/$dir" "$@"
}
