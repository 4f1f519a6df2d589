# Cross build for Debian s390x (s390x-linux-gnu) with Debian's cross toolchain and
# multiarch libraries; see debian-cross.cmake and scripts/cross.sh.
#   cmake -S . -B build-cross-s390x -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/s390x.cmake
set(ALFRED_CROSS_TRIPLET s390x-linux-gnu)
set(ALFRED_CROSS_PROCESSOR s390x)
set(ALFRED_CROSS_QEMU qemu-s390x)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
