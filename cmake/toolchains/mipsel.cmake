# Cross build for Debian mipsel (mipsel-linux-gnu) with Debian's cross toolchain and
# multiarch libraries; see debian-cross.cmake and scripts/cross.sh.
#   cmake -S . -B build-cross-mipsel -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mipsel.cmake
set(ALFRED_CROSS_TRIPLET mipsel-linux-gnu)
set(ALFRED_CROSS_PROCESSOR mipsel)
set(ALFRED_CROSS_QEMU qemu-mipsel)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
