#!/usr/bin/env bash
# Builds the daemon in every build type with gcc and clang, and with Debian's
# hardening flags, the way distributions and users build it (issue 10):
#
#   scripts/build-matrix.sh [--werror] [TARGET...]     (default target: alfred)
#
# Each configuration gets its own directory under build-matrix/. Without
# --werror warnings are reported but do not fail a build (the default for
# anyone building the package); with it they do, as in the project's own
# builds. Exits non-zero if any configuration fails, after trying all.
set -uo pipefail
cd "$(dirname "$0")/.."

werror=OFF
targets=()
for a in "$@"; do
  case $a in
    --werror) werror=ON ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) targets+=(--target "$a") ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(--target alfred)
jobs=$(nproc)

configs=()
for cc in gcc clang; do
  # "default": no CMAKE_BUILD_TYPE at all; "None": Debian's (no flags of its own)
  for type in default Debug Release RelWithDebInfo MinSizeRel None; do configs+=("$cc:$type:plain"); done
done
configs+=("gcc:None:hardening" "clang:None:hardening")

failed=()
for c in "${configs[@]}"; do
  IFS=: read -r cc type flags <<<"$c"
  dir="build-matrix/$cc-$type-$flags"
  if [ "$cc" = gcc ]; then cxx=g++; else cxx=clang++; fi
  env_flags=()
  if [ "$flags" = hardening ]; then
    # What dpkg-buildpackage exports with DEB_BUILD_MAINT_OPTIONS=hardening=+all.
    env_flags=(CXXFLAGS="$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CXXFLAGS)"
               CPPFLAGS="$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS)"
               LDFLAGS="$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)")
  fi
  start=$(date +%s)
  log="$dir.log"
  mkdir -p build-matrix
  # CPPFLAGS is not read by CMake: fold it into CXXFLAGS, as debhelper does.
  if env "${env_flags[@]}" CXX=$cxx bash -c \
       'bt=(); [ "$2" = default ] || bt=(-DCMAKE_BUILD_TYPE="$2")
        CXXFLAGS="${CXXFLAGS:-} ${CPPFLAGS:-}" cmake -S . -B "$1" "${bt[@]}" \
          -DALFRED_WERROR="$3" -DALFRED_BENCH=OFF' _ "$dir" "$type" "$werror" >"$log" 2>&1 &&
     cmake --build "$dir" -j"$jobs" "${targets[@]}" >>"$log" 2>&1; then
    warnings=$(grep -c 'warning:' "$log" || true)
    printf '%-8s %-15s %-10s ok     %3ss  %s warning(s)\n' "$cc" "$type" "$flags" "$(( $(date +%s) - start ))" "$warnings"
  else
    printf '%-8s %-15s %-10s FAILED (see %s)\n' "$cc" "$type" "$flags" "$log"
    grep -E 'error|warning:' "$log" | head -5 | sed 's/^/    /'
    failed+=("$c")
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
echo "all ${#configs[@]} configurations built"
