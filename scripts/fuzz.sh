#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (build-fuzz/) and runs each of them.
#
#   scripts/fuzz.sh [SECONDS]        every target for SECONDS (default 60)
#   scripts/fuzz.sh --runs N         every target for N executions (the long run:
#                                    scripts/fuzz.sh --runs 10000000)
#
# Environment: FUZZ_TARGETS="datagram stream ipc" picks targets; FUZZ_JOBS sets
# the build parallelism (default nproc); FUZZ_KEEP=1 keeps the work directory.
#
# Each target starts from a copy of fuzz/corpus/<target>/ in a temporary
# directory, so the repository's seeds are not modified. Exits non-zero if any
# target crashes, leaks, times out, runs out of memory or prints a sanitizer
# report; the offending input is copied to fuzz/crashes/. Installs nothing:
# clang and libclang-rt-14-dev come from scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

mode=time
amount=60
if [ "${1:-}" = --runs ]; then
  mode=runs
  amount=${2:?usage: scripts/fuzz.sh --runs N}
elif [ $# -gt 0 ]; then
  amount=$1
fi
case $amount in '' | *[!0-9]*) echo "fuzz.sh: not a number: $amount" >&2; exit 2 ;; esac

targets=${FUZZ_TARGETS:-datagram stream ipc}
jobs=${FUZZ_JOBS:-$(nproc)}

for tool in clang clang++; do
  if ! command -v $tool >/dev/null; then
    echo "fuzz.sh: $tool not found (scripts/install-deps.sh installs it)" >&2
    exit 2
  fi
done

start=$(date +%s)
echo "== building fuzz targets (build-fuzz/, clang)"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DALFRED_FUZZ=ON -DALFRED_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
build_targets=()
for t in $targets; do build_targets+=(--target "${t}_fuzz"); done
cmake --build build-fuzz -j"$jobs" "${build_targets[@]}"

work=$(mktemp -d /tmp/alfred-fuzz.XXXXXX)
if [ "${FUZZ_KEEP:-0}" != 1 ]; then
  trap 'rm -rf "$work"' EXIT
else
  echo "work directory: $work"
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
summary=()
total_execs=0
for t in $targets; do
  bin=build-fuzz/${t}_fuzz
  corpus=$work/$t/corpus
  artifacts=$work/$t/artifacts/
  log=$work/$t/log
  mkdir -p "$corpus" "$artifacts"
  if [ -d "fuzz/corpus/$t" ]; then cp -r "fuzz/corpus/$t/." "$corpus/"; fi
  seeds=$(find "$corpus" -type f | wc -l)
  if [ $mode = time ]; then limit=(-max_total_time="$amount"); else limit=(-runs="$amount"); fi
  echo "== $t: ${limit[*]#-}, $seeds seeds"
  t0=$(date +%s)
  set +e
  "$bin" "${limit[@]}" -rss_limit_mb=2048 -timeout=10 -detect_leaks=1 -print_final_stats=1 \
    -artifact_prefix="$artifacts" "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  t1=$(date +%s)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  execs=${execs:-0}
  rate=$((execs / ( t1 - t0 > 0 ? t1 - t0 : 1 )))
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 || true)
  status=ok
  # libFuzzer's own verdicts and any sanitizer report, even one that did not stop the run.
  if [ $rc -ne 0 ] ||
     grep -qE '==[0-9]+==ERROR|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer|FUZZ INVARIANT VIOLATED|deadly signal|ALARM: working on the last Unit' "$log"; then
    status=FAILED
    failed=1
    mkdir -p fuzz/crashes
    for a in "$artifacts"*; do
      [ -e "$a" ] || continue
      cp "$a" "fuzz/crashes/${t}-$(basename "$a")"
      echo "   reproducer: fuzz/crashes/${t}-$(basename "$a")"
    done
    echo "   --- last lines of the log ($log):"
    grep -vE '^#[0-9]+' "$log" | tail -40 | sed 's/^/   /'
  fi
  total_execs=$((total_execs + execs))
  line=$(printf '%-9s %-6s %12s execs %8s/s  %3ss  %s' "$t" "$status" "$execs" "$rate" "$((t1 - t0))" "$cov")
  echo "   $line"
  summary+=("$line")
done

end=$(date +%s)
echo
echo "== fuzz summary"
for l in "${summary[@]}"; do echo "   $l"; done
if [ $failed -eq 0 ]; then
  echo "fuzz: all targets clean, $total_execs executions in $((end - start))s (build included)"
else
  echo "fuzz: FAILED, see above; reproducers in fuzz/crashes/ ($((end - start))s)"
  if [ "${FUZZ_KEEP:-0}" != 1 ]; then
    trap - EXIT
    echo "work directory kept for the logs: $work"
  fi
fi
exit $failed
