#!/usr/bin/env bash
# Builds the release binary (build/) and the ASan+UBSan one (build-asan/).
# Usage: scripts/build.sh [release|asan|all]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
jobs=$(nproc)
if [ "$what" = release ] || [ "$what" = all ]; then
  cmake -S . -B build -DALFRED_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$jobs"
fi
if [ "$what" = asan ] || [ "$what" = all ]; then
  cmake -S . -B build-asan -DALFRED_WERROR=ON -DCMAKE_BUILD_TYPE=Debug -DALFRED_SANITIZE=ON -DALFRED_BENCH=OFF >/dev/null
  cmake --build build-asan -j"$jobs"
fi
