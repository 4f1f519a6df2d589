#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds both variants, runs the
# unit tests (release and ASan+UBSan) and the integration tests, which start
# real daemons (ours and Debian's alfred) in network namespaces they create.
# Needs root. Set ALFRED_SKIP_DEPS=1 to skip the apt step on a prepared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${ALFRED_SKIP_DEPS:-0}" != 1 ]; then
  scripts/install-deps.sh
fi
scripts/build.sh all

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== unit tests (release)"
ctest --test-dir build --output-on-failure -j"$(nproc)"
echo "== unit tests (ASan+UBSan)"
ctest --test-dir build-asan --output-on-failure -j"$(nproc)"

# The router CPUs (issue 10): cross builds for armhf, mipsel and s390x
# (big-endian), their unit tests under qemu-user, and the cross-built s390x
# daemon in a mesh with native ones (tests/integration/test_cross_arch.py,
# in both integration runs below). ALFRED_CROSS_ARCHS picks the CPUs; the
# integration test's is the last of them.
cross_archs=${ALFRED_CROSS_ARCHS:-armhf mipsel s390x}
echo "== cross builds and their unit tests under qemu-user: $cross_archs"
# shellcheck disable=SC2086
scripts/cross.sh $cross_archs
cross_last=${cross_archs##* }
export ALFRED_CROSS_BIN="$PWD/build-cross-$cross_last/alfred"
export ALFRED_CROSS_QEMU="qemu-${cross_last/armhf/arm}"

echo "== fuzzing (libFuzzer, ${ALFRED_FUZZ_SECONDS:-60} s per target)"
scripts/fuzz.sh "${ALFRED_FUZZ_SECONDS:-60}"

# The release run of the integration tests is the Debian package's: built
# with Debian's flags, installed over Debian's alfred with dpkg -i, the suite
# run against the installed /usr/sbin/alfred (Debian's from its saved
# package as the reference), then purged and Debian's alfred reinstalled.
echo "== the Debian package: build, lintian, install, integration tests against it, purge"
export ALFRED_ASAN_BIN="$PWD/build-asan/alfred"
ALFRED_SKIP_DEPS=1 scripts/package-test.sh

export DEBIAN_ALFRED=/usr/sbin/alfred

echo "== integration tests again, with the ASan+UBSan daemon and client under test"
ALFRED_BIN="$PWD/build-asan/alfred" /usr/bin/python3 -m pytest -v -p no:cacheprovider tests/integration
