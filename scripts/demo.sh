#!/usr/bin/env bash
# The main job in one command: installs what is needed, builds, and runs a
# small lossy mesh (3 primaries, 6 secondaries, our daemon with -t), sets data
# on every node and shows each node's view and how long it took to converge.
# Extra arguments go to `lab/alfred-lab demo` (see lab/README.md).
# Set ALFRED_SKIP_DEPS=1 to skip the apt step on a prepared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${ALFRED_SKIP_DEPS:-0}" != 1 ]; then
  scripts/install-deps.sh
fi
scripts/build.sh release
export ALFRED_BIN="$PWD/build/alfred"
exec /usr/bin/python3 lab/alfred-lab demo "$@"
