# Shared part of the cross toolchain files in this directory (included by
# armhf.cmake, mipsel.cmake, s390x.cmake; scripts/cross.sh uses them).
#
# Debian's cross compilers (g++-<triplet>) with Debian's multiarch -dev
# packages (libnl-3-dev:<arch>, ...) installed in /usr/lib/<triplet> and
# /usr/include/<triplet>: no sysroot, the compiler finds those paths itself.
# Before including this file set ALFRED_CROSS_TRIPLET (e.g. s390x-linux-gnu),
# ALFRED_CROSS_PROCESSOR (CMAKE_SYSTEM_PROCESSOR) and ALFRED_CROSS_QEMU (the
# qemu-user program that runs the target's binaries, e.g. qemu-s390x).

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${ALFRED_CROSS_PROCESSOR})
set(CMAKE_LIBRARY_ARCHITECTURE ${ALFRED_CROSS_TRIPLET})

set(CMAKE_C_COMPILER ${ALFRED_CROSS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${ALFRED_CROSS_TRIPLET}-g++)
find_program(ALFRED_CROSS_STRIP ${ALFRED_CROSS_TRIPLET}-strip)
if(ALFRED_CROSS_STRIP)
  set(CMAKE_STRIP ${ALFRED_CROSS_STRIP} CACHE FILEPATH "strip of the target")
endif()

# Only the target's libraries and headers, never the build machine's: find_*
# look in /usr/lib/<triplet> (CMAKE_LIBRARY_ARCHITECTURE) and pkg-config reads
# only the target's .pc files.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${ALFRED_CROSS_TRIPLET}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# The target's binaries run under qemu-user: gtest_discover_tests (at build
# time) and ctest. They run on the target's multiarch libc6:<arch> and
# libstdc++6:<arch> (dynamic loader in /lib, libraries in /lib/<triplet> and
# /usr/lib/<triplet>, found through the host's ld.so.cache), not with
# `qemu -L /usr/<triplet>`: that takes the loader from the cross toolchain's
# libc6-<arch>-cross but libc.so.6 from the multiarch package (the cache
# lists it), and a loader and libc of different builds abort at start
# ("stack smashing detected", even for an empty main).
find_program(ALFRED_CROSS_QEMU_PATH ${ALFRED_CROSS_QEMU} REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${ALFRED_CROSS_QEMU_PATH})
