#!/usr/bin/env bash
# The Debian package, end to end (issue 10). As root:
#
#   scripts/package-test.sh
#
#  1. builds it from a copy of the working tree with `dpkg-buildpackage -b`
#     (Debian's flags, DEB_BUILD_OPTIONS=nocheck: the unit tests run in the
#     rest of CI; PACKAGE_TEST_CHECK=1 runs them in the package build too);
#  2. runs lintian on it (any error or warning fails);
#  3. saves Debian's alfred package (apt-get download, or apt's cache) and
#     unpacks it, then installs ours over it with `dpkg -i`, twice (a first
#     install, then the upgrade path of the maintainer scripts);
#  4. checks the installed unit with `systemd-analyze verify` (and that it is
#     not enabled), the installed man pages with `man -l`, `mandoc -Tlint`
#     and against each program's -h, ours and Debian's;
#  5. runs the integration suite once against the installed /usr/sbin/alfred,
#     batadv-vis and alfred-gpsd, with Debian's from the saved package as the
#     reference: DEBIAN_ALFRED points into it, and in a private mount
#     namespace of the test run its batadv-vis and alfred-gpsd are mounted
#     over ours at /usr/sbin, where the tests expect Debian's (ours are then
#     passed as ALFRED_VIS_BIN / ALFRED_GPSD_BIN);
#  6. removes and purges the package, checking nothing of it is left, and
#     reinstalls Debian's alfred (also when a step fails).
#
# Environment: ALFRED_SKIP_DEPS=1 skips the apt step (scripts/install-deps.sh);
# ALFRED_ASAN_BIN is the ASan+UBSan daemon some integration tests run
# (default build-asan/alfred, built with scripts/build.sh asan if missing);
# PACKAGE_TEST_PYTEST_ARGS adds pytest arguments, split at white space
# (e.g. "-k tcp", or "--deselect test_x.py::test_y": node ids are relative to
# tests/integration);
# PACKAGE_TEST_KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "$(id -u)" -ne 0 ]; then
  echo "package-test: must run as root (dpkg -i, network namespaces)" >&2
  exit 1
fi
if [ "${ALFRED_SKIP_DEPS:-0}" != 1 ]; then
  scripts/install-deps.sh
fi
for tool in dpkg-buildpackage dh lintian mandoc man systemd-analyze unshare python3; do
  command -v $tool >/dev/null || { echo "package-test: $tool missing (scripts/install-deps.sh)" >&2; exit 1; }
done

t_start=$(date +%s)
t_phase=$t_start
declare -a timings=()
phase() {  # phase NAME: ends the running phase, starts NAME
  local now
  now=$(date +%s)
  if [ -n "${phase_name:-}" ]; then timings+=("$(printf '%-28s %4ss' "$phase_name" $((now - t_phase)))"); fi
  phase_name=$1
  t_phase=$now
  echo "== package-test: $1"
}
fail() {
  echo "package-test: FAILED: $*" >&2
  exit 1
}
version() {  # the first line of `PROGRAM -v` (which exits 1, like upstream's)
  { "$1" -v 2>&1 || true; } | head -1
}

work=$(mktemp -d /tmp/alfred-package-test.XXXXXX)
chmod 755 "$work"
pkg=alfred-tcp
restored=0
restore() {
  # Whatever happened: no alfred-tcp, Debian's alfred installed (the rest of
  # CI and the tests need it).
  if [ $restored = 1 ]; then return; fi
  restored=1
  local status
  status=$(dpkg-query -W -f='${Status}' $pkg 2>/dev/null || true)
  if [ -n "$status" ] && [ "${status##* }" != not-installed ]; then
    dpkg -P $pkg >/dev/null || true
  fi
  if ! dpkg-query -W -f='${Status}' alfred 2>/dev/null | grep -q '^install ok installed'; then
    if [ -n "${debian_deb:-}" ] && [ -f "$debian_deb" ]; then
      dpkg -i "$debian_deb" >/dev/null || apt-get install -y alfred >/dev/null || true
    else
      apt-get install -y alfred >/dev/null || true
    fi
  fi
}
cleanup() {
  local rc=$?
  restore
  if [ $rc -ne 0 ]; then
    phase "(failed)" >/dev/null
    for t in "${timings[@]}"; do echo "   $t"; done
  fi
  if [ "${PACKAGE_TEST_KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
    echo "package-test: work directory kept: $work"
  else
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT

# ---------------------------------------------------------------- build
phase "build (dpkg-buildpackage -b)"
# A copy of the working tree as git sees it (tracked and new files, not the
# ignored build directories), so the build leaves nothing in the repository.
mkdir "$work/src"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$work/src"
build_opts="parallel=$(nproc)"
[ "${PACKAGE_TEST_CHECK:-0}" = 1 ] || build_opts="nocheck $build_opts"
if ! (cd "$work/src" && DEB_BUILD_OPTIONS="$build_opts" nice dpkg-buildpackage -b -us -uc) \
     >"$work/build.log" 2>&1; then
  tail -40 "$work/build.log"
  fail "dpkg-buildpackage (log: $work/build.log)"
fi
echo "   built: $(cd "$work" && ls ./*.deb | tr '\n' ' ')(compiler warnings: $(grep -c 'warning:' "$work/build.log" || true))"
deb=$(ls "$work"/${pkg}_*.deb)
changes=$(ls "$work"/${pkg}_*.changes)

# ---------------------------------------------------------------- lintian
phase "lintian"
lintian_rc=0
lintian_out=$(lintian --fail-on error,warning -I --pedantic "$changes" 2>&1) || lintian_rc=$?
lintian_out=$(grep -v 'running with root privileges' <<<"$lintian_out" || true)
echo "   lintian -I --pedantic: ${lintian_out:-no tags}"
[ $lintian_rc -eq 0 ] || fail "lintian reports errors or warnings (exit $lintian_rc)"

# ---------------------------------------------------------------- install
phase "install over Debian's alfred"
# Debian's package, for the reference binaries and to restore it at the end.
mkdir -p "$work/debian-deb"
debian_deb=$(ls /var/cache/apt/archives/alfred_*.deb 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$debian_deb" ]; then
  (cd "$work/debian-deb" && apt-get download alfred >/dev/null) || fail "apt-get download alfred"
  debian_deb=$(ls "$work"/debian-deb/alfred_*.deb)
else
  cp "$debian_deb" "$work/debian-deb/"
  debian_deb=$work/debian-deb/$(basename "$debian_deb")
fi
dpkg-deb -f "$debian_deb" Package | grep -qx alfred || fail "$debian_deb is not Debian's alfred"
debian_root=$work/debian-alfred
dpkg -x "$debian_deb" "$debian_root"
for b in alfred batadv-vis alfred-gpsd; do
  [ -x "$debian_root/usr/sbin/$b" ] || fail "Debian's $b missing from $debian_deb"
done
echo "   Debian's: $(version "$debian_root/usr/sbin/alfred")"

dpkg -i "$deb"
dpkg -i "$deb" >/dev/null   # again: postinst with the previous version, prerm upgrade
dpkg-query -W -f='${Status}\n' $pkg | grep -qx 'install ok installed' || fail "$pkg not installed"
if dpkg-query -W -f='${Status}' alfred 2>/dev/null | grep -q '^install ok installed'; then
  fail "Debian's alfred is still installed next to $pkg"
fi
for b in alfred batadv-vis alfred-gpsd; do
  [ "$(dpkg -S /usr/sbin/$b | cut -d: -f1)" = $pkg ] || fail "/usr/sbin/$b is not $pkg's"
done
echo "   installed: $(version /usr/sbin/alfred)"

# ---------------------------------------------------------------- unit, man pages
phase "unit and man pages"
unit=$(dpkg -L $pkg | grep '/systemd/system/alfred.service$')
[ -f /etc/default/alfred ] || fail "/etc/default/alfred missing"
out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
[ -z "$out" ] || fail "systemd-analyze verify $unit: $out"
echo "   systemd-analyze verify $unit: clean"
if ls /etc/systemd/system/*/alfred.service >/dev/null 2>&1; then
  fail "alfred.service was enabled on installation"
fi
for b in alfred batadv-vis alfred-gpsd; do
  page=/usr/share/man/man8/$b.8.gz
  [ "$(man -w $b)" = "$page" ] || fail "man -w $b is $(man -w $b), not $page"
  warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
  [ -z "$warnings" ] || fail "man -l $page: $warnings"
  lines=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -E UTF-8 -l "$page" 2>/dev/null | wc -l)
  [ "$lines" -gt 30 ] || fail "man -l $page renders only $lines lines"
  lint=$(mandoc -Tlint -W all "$page" 2>&1) || fail "mandoc -Tlint $page: $lint"
  [ -z "$lint" ] || fail "mandoc -Tlint $page: $lint"
  zcat "$page" >"$work/$b.8"
  python3 man/mkman.py check "$work/$b.8" -- /usr/sbin/$b -h >/dev/null
  python3 man/mkman.py check "$work/$b.8" -- "$debian_root/usr/sbin/$b" -h >/dev/null
  echo "   $page: man -l ($lines lines) and mandoc -Tlint clean, every option of ours and Debian's -h"
done

# ---------------------------------------------------------------- integration
phase "integration suite (installed)"
asan=${ALFRED_ASAN_BIN:-$root/build-asan/alfred}
if [ ! -x "$asan" ]; then
  scripts/build.sh asan
fi
# The tests take Debian's batadv-vis and alfred-gpsd from /usr/sbin, and ours
# from next to ALFRED_BIN or from ALFRED_VIS_BIN / ALFRED_GPSD_BIN. For the
# test run only (bind mounts in its own mount namespace, gone when it ends):
# the installed ones (ours) are mounted at $work/installed/, then Debian's
# over them at /usr/sbin.
mkdir -p "$work/installed"
touch "$work/installed/batadv-vis" "$work/installed/alfred-gpsd"
pytest_rc=0
# shellcheck disable=SC2016,SC2086  # $1.. expand in the inner shell; the args are split on purpose
ALFRED_BIN=/usr/sbin/alfred DEBIAN_ALFRED="$debian_root/usr/sbin/alfred" ALFRED_ASAN_BIN="$asan" \
ALFRED_VIS_BIN="$work/installed/batadv-vis" ALFRED_GPSD_BIN="$work/installed/alfred-gpsd" \
DEBIAN_BATADV_VIS="$debian_root/usr/sbin/batadv-vis" DEBIAN_ALFRED_GPSD="$debian_root/usr/sbin/alfred-gpsd" \
  unshare --mount --propagation private /bin/sh -ec '
    mount --bind /usr/sbin/batadv-vis "$ALFRED_VIS_BIN"
    mount --bind /usr/sbin/alfred-gpsd "$ALFRED_GPSD_BIN"
    mount --bind "$DEBIAN_BATADV_VIS" /usr/sbin/batadv-vis
    mount --bind "$DEBIAN_ALFRED_GPSD" /usr/sbin/alfred-gpsd
    for b in /usr/sbin/batadv-vis /usr/sbin/alfred-gpsd; do
      "$b" -v | grep -q " debian-" || { echo "$b is not Debian'"'"'s" >&2; exit 1; }
    done
    for b in "$ALFRED_VIS_BIN" "$ALFRED_GPSD_BIN" /usr/sbin/alfred; do
      if "$b" -v | grep -q " debian-"; then echo "$b is Debian'"'"'s, not ours" >&2; exit 1; fi
    done
    exec /usr/bin/python3 -m pytest -v -p no:cacheprovider tests/integration "$@"
  ' sh ${PACKAGE_TEST_PYTEST_ARGS:-} || pytest_rc=$?
[ $pytest_rc -eq 0 ] || fail "integration suite against the installed alfred (pytest exit $pytest_rc)"

# ---------------------------------------------------------------- remove, purge
phase "remove, purge, restore"
dpkg -L $pkg | sort >"$work/files"
dpkg -r $pkg
[ ! -e /usr/sbin/alfred ] || fail "/usr/sbin/alfred left after dpkg -r"
[ -f /etc/default/alfred ] || fail "dpkg -r removed the conffile /etc/default/alfred"
dpkg -P $pkg
[ ! -e /etc/default/alfred ] || fail "/etc/default/alfred left after purge"
if dpkg-query -W -f='${Status}\n' $pkg 2>/dev/null | grep -qv 'not-installed'; then
  fail "$pkg still known to dpkg after purge"
fi
left=()
while read -r f; do
  # Directories are shared with other packages; files must all be gone.
  if [ -e "$f" ] && [ ! -d "$f" ]; then left+=("$f"); fi
done <"$work/files"
[ ${#left[@]} -eq 0 ] || fail "left after purge: ${left[*]}"
if ls /etc/systemd/system/*/alfred.service /var/lib/systemd/deb-systemd-helper-enabled/*alfred* \
     >/dev/null 2>&1; then
  fail "systemd state of alfred.service left after purge"
fi
echo "   removed and purged: none of its $(wc -l <"$work/files") paths left but shared directories"
dpkg -i "$debian_deb" >/dev/null
restored=1
version /usr/sbin/alfred | grep -q debian || fail "Debian's alfred not back"
echo "   Debian's alfred reinstalled: $(version /usr/sbin/alfred)"

phase "done"
ours_size=$(dpkg-deb -f "$deb" Installed-Size)
debian_size=$(dpkg-deb -f "$debian_deb" Installed-Size)
echo
echo "== package-test summary"
printf '   %-38s %6s KiB installed, %6s KiB .deb\n' "$(basename "$deb")" "$ours_size" $(( $(stat -c %s "$deb") / 1024 ))
printf '   %-38s %6s KiB installed, %6s KiB .deb\n' "$(basename "$debian_deb")" "$debian_size" $(( $(stat -c %s "$debian_deb") / 1024 ))
for t in "${timings[@]}"; do echo "   $t"; done
echo "   total                        $(( $(date +%s) - t_start ))s"
