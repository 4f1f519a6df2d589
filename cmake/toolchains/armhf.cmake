# Cross build for Debian armhf (arm-linux-gnueabihf) with Debian's cross toolchain and
# multiarch libraries; see debian-cross.cmake and scripts/cross.sh.
#   cmake -S . -B build-cross-armhf -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/armhf.cmake
set(ALFRED_CROSS_TRIPLET arm-linux-gnueabihf)
set(ALFRED_CROSS_PROCESSOR arm)
set(ALFRED_CROSS_QEMU qemu-arm)
# gcc's -Wpsabi notes ("parameter passing for argument of type ... changed in
# GCC 7.1", on std::map iterators) are about linking with code built by gcc
# 6 or older, which nothing here is.
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
