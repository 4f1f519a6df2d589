#!/usr/bin/env bash
# Installs everything the build, the tests, the lab and the benchmark need,
# from Debian's archive only. Safe to run repeatedly.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root (apt-get, network namespaces)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
# zlib's headers of the very zlib this machine runs, not the newest: the
# cross builds need zlib1g-dev:<arch> of the same version (Multi-Arch:
# same), and bookworm-security's update of it exists for amd64 and armhf
# only (see scripts/cross.sh).
zlib_version=$(dpkg-query -W -f='${Version}' "zlib1g:$(dpkg --print-architecture)")
apt-get install -y --no-install-recommends \
  build-essential cmake pkg-config \
  libasio-dev libnl-3-dev libnl-genl-3-dev libcap-dev "zlib1g-dev=$zlib_version" libsodium-dev \
  libgtest-dev libgmock-dev libbenchmark-dev \
  clang libclang-rt-14-dev \
  libgps-dev gpsd gpsd-clients \
  alfred vde2 nftables iproute2 iputils-ping procps time \
  python3 python3-pytest \
  debhelper lintian mandoc man-db
# scripts/cross.sh's cross toolchains, multiarch libraries and qemu-user
# (ALFRED_CROSS_ARCHS, default all three: armhf mipsel s390x); no apt call
# when they are there.
"$(dirname "$0")/cross.sh" --deps-only ${ALFRED_CROSS_ARCHS:-armhf mipsel s390x}
