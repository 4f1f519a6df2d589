#!/usr/bin/env bash
# Cross builds for the CPUs of mesh routers and a big-endian one, with
# Debian's cross toolchains and multiarch libraries, and the unit tests run
# under qemu-user:
#   armhf   arm-linux-gnueabihf   32-bit ARM (ipq40xx, mvebu, ... routers)
#   mipsel  mipsel-linux-gnu      32-bit MIPS little-endian (ramips/mt7621)
#   s390x   s390x-linux-gnu       64-bit big-endian (stands in for the
#                                 big-endian ath79 MIPS routers)
# (Debian 12 has no big-endian 32-bit MIPS port any more, so s390x is the
# big-endian CPU here.)
# Usage: scripts/cross.sh [--deps-only] [armhf|mipsel|s390x|all]...
#        (default: all)
# First installs what is missing for all of them at once (dpkg
# --add-architecture, the cross g++, the -dev packages as <pkg>:<arch>,
# qemu-user; nothing, and no apt call, when all is there); --deps-only stops
# there (scripts/install-deps.sh). Then per architecture: configures
# build-cross-<arch>/ with cmake/toolchains/<arch>.cmake (ALFRED_WERROR=ON),
# builds alfred, batadv-vis and unit_tests, runs the unit tests (ctest)
# under qemu-<arch> and the man page checks with the programs under
# qemu-<arch>. Left out: alfred-gpsd (ALFRED_GPSD=OFF: libgps-dev:<arch>
# pulls in libsystemd0:<arch>, libdbus and more, which must have exactly the
# versions installed for the build machine, not what a Debian mirror
# offers once the machine is behind), the benchmark programs (ALFRED_BENCH=OFF,
# Google Benchmark) and the fuzzers (clang's libFuzzer).
# Needs root for the apt step; ALFRED_SKIP_DEPS=1 skips it. CROSS_JOBS sets
# the parallelism (default nproc). The daemon for tests/integration/
# test_cross_arch.py is then build-cross-<arch>/alfred (ALFRED_CROSS_BIN,
# with ALFRED_CROSS_QEMU=qemu-<arch>).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${CROSS_JOBS:-$(nproc)}

triplet() {
  case $1 in
    armhf) echo arm-linux-gnueabihf ;;
    mipsel) echo mipsel-linux-gnu ;;
    s390x) echo s390x-linux-gnu ;;
    *) echo "cross: unknown architecture $1 (armhf, mipsel, s390x, all)" >&2; exit 2 ;;
  esac
}
qemu_of() {
  case $1 in armhf) echo qemu-arm ;; *) echo "qemu-$1" ;; esac
}

# The libraries CMakeLists.txt finds (libnl, libcap, zlib, GoogleTest) for the
# target, and libstdc++6 to run its programs under qemu with the multiarch
# libc6:<arch> (see cmake/toolchains/debian-cross.cmake); libasio-dev is
# headers only (Architecture: all).
TARGET_PKGS="libnl-3-dev libnl-genl-3-dev libcap-dev libgtest-dev libgmock-dev libstdc++6"
# libsodium-dev:<arch> (Multi-Arch: same) depends on libsodium23 alone; it
# must be the very version the build machine has (scripts/install-deps.sh).
sodium_version=$(dpkg-query -W -f='${Version}' "libsodium-dev:$(dpkg --print-architecture)" 2>/dev/null || true)

# zlib: the target's library only, zlib1g:<arch> (Multi-Arch: same, so of
# the very version the build machine runs, which scripts/install-deps.sh pins
# its zlib1g-dev to). zlib1g-dev:<arch> would pull in libc6-dev:<arch> and
# linux-libc-dev:<arch>, whose bookworm versions differ from the build
# machine's updated ones; the cross compilers find the build machine's
# zlib.h, which is the same for every architecture, and CMakeLists.txt links
# the target's libz.so.1 (ALFRED_ZLIB_LIBRARY).
zlib_version=$(dpkg-query -W -f='${Version}' "zlib1g:$(dpkg --print-architecture)" 2>/dev/null || true)

deps() {
  local arch t pkgs=() missing=() add=() p
  for arch in "$@"; do
    t=$(triplet "$arch")
    pkgs+=(g++-"$t")
    for p in $TARGET_PKGS; do pkgs+=("$p:$arch"); done
    pkgs+=("zlib1g:$arch${zlib_version:+=$zlib_version}")
    pkgs+=("libsodium-dev:$arch${sodium_version:+=$sodium_version}")
  done
  pkgs+=(qemu-user libasio-dev cmake pkg-config python3)
  for p in "${pkgs[@]}"; do
    local name=${p%%=*}
    if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$name" 2>/dev/null)" != "ii " ] ||
      { [ "$name" != "$p" ] && [ "$(dpkg-query -W -f='${Version}' "$name")" != "${p#*=}" ]; }; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "cross: missing ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "== cross: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  for arch in "$@"; do
    dpkg --print-foreign-architectures | grep -qx "$arch" || add+=("$arch")
  done
  for arch in "${add[@]}"; do dpkg --add-architecture "$arch"; done
  apt-get update
  # Without recommends: qemu-user recommends qemu-user-binfmt, whose binfmt_misc
  # registration is the host kernel's (in a container too); qemu is run by name.
  apt-get install -y --no-install-recommends "${missing[@]}"
}

build() {
  local arch=$1 dir=build-cross-$1
  echo "== cross $arch: configure and build in $dir"
  cmake -S . -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchains/$arch.cmake" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DALFRED_WERROR=ON -DALFRED_BENCH=OFF -DALFRED_GPSD=OFF >/dev/null
  cmake --build "$dir" -j"$jobs"
}

unit_tests() {
  local arch=$1 dir=build-cross-$1 qemu prog
  qemu=$(qemu_of "$arch")
  echo "== cross $arch: unit tests under $qemu"
  # ctest runs every unit test under qemu (CMAKE_CROSSCOMPILING_EMULATOR); the
  # man page checks pass the program as an argument to mkman.py, which
  # ctest cannot prefix with qemu, so they are run here instead.
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" -E '^man-options-'
  for prog in alfred batadv-vis; do
    python3 man/mkman.py check "$dir/man/$prog.8" -- "$qemu" "$dir/$prog" -h
  done
  echo "== cross $arch: alfred is $(readelf -h "$dir/alfred" | sed -n 's/^ *\(Class\|Data\|Machine\): *//p' | paste -sd' ');" \
    "under $qemu it says: $("$qemu" "$dir/alfred" -v | head -1)"
}

deps_only=0
if [ "${1:-}" = --deps-only ]; then deps_only=1; shift; fi
archs=("$@")
[ ${#archs[@]} -eq 0 ] && archs=(all)
list=()
for a in "${archs[@]}"; do
  if [ "$a" = all ]; then list+=(armhf mipsel s390x); else triplet "$a" >/dev/null; list+=("$a"); fi
done
t0=$SECONDS
[ "${ALFRED_SKIP_DEPS:-0}" = 1 ] || deps "${list[@]}"
echo "== cross ${list[*]}: dependencies there ($((SECONDS - t0)) s)"
[ $deps_only = 1 ] && exit 0
for arch in "${list[@]}"; do
  t1=$SECONDS
  build "$arch"
  t2=$SECONDS
  unit_tests "$arch"
  t3=$SECONDS
  echo "== cross $arch: ok (build $((t2 - t1)) s, unit tests $((t3 - t2)) s)"
done
