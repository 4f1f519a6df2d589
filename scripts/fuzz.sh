#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (build-fuzz/) and runs each of them.
#
#   scripts/fuzz.sh [SECONDS]        every target for SECONDS (default 60)
#   scripts/fuzz.sh --runs N         every target for N executions (the long run:
#                                    scripts/fuzz.sh --runs 10000000 --jobs 2)
#   options (after SECONDS or with --runs):
#     --jobs J      J libFuzzer processes per target (-jobs=J -workers=W); with
#                   --runs the N executions are split between them, with SECONDS
#                   each runs that long. Default 1: one process, as in CI.
#     --workers W   at most W of them at a time (default J)
#     --time S      with --runs: stop each target after S seconds anyway
#     --corpus-dir D  grow D/<target>/ (seeded from fuzz/corpus/<target>/ when
#                   new) instead of a temporary copy, so a long run can be
#                   continued by running the same command again
#
# Environment: FUZZ_TARGETS="datagram stream ipc session vis gpsd auth" picks targets; FUZZ_JOBS sets
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

usage() {
  echo "usage: scripts/fuzz.sh [SECONDS | --runs N] [--jobs J] [--workers W] [--time S] [--corpus-dir D]" >&2
  exit 2
}
number() {
  case ${2:-} in '' | *[!0-9]*) echo "fuzz.sh: $1 needs a number, got '${2:-}'" >&2; exit 2 ;; esac
}

mode=time
amount=60
procs=1
workers=
time_cap=
corpus_dir=
while [ $# -gt 0 ]; do
  case $1 in
    --runs) number "$1" "${2:-}"; mode=runs; amount=$2; shift 2 ;;
    --jobs) number "$1" "${2:-}"; procs=$2; shift 2 ;;
    --workers) number "$1" "${2:-}"; workers=$2; shift 2 ;;
    --time) number "$1" "${2:-}"; time_cap=$2; shift 2 ;;
    --corpus-dir) [ -n "${2:-}" ] || usage; corpus_dir=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    -h | --help) usage ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; usage ;;
    *) number SECONDS "$1"; amount=$1; shift ;;
  esac
done
[ "$procs" -ge 1 ] || { echo "fuzz.sh: --jobs must be at least 1" >&2; exit 2; }
workers=${workers:-$procs}
[ "$workers" -ge 1 ] || { echo "fuzz.sh: --workers must be at least 1" >&2; exit 2; }

targets=${FUZZ_TARGETS:-datagram stream ipc session vis gpsd auth}
jobs=${FUZZ_JOBS:-$(nproc)}

for tool in clang clang++; do
  if ! command -v $tool >/dev/null; then
    echo "fuzz.sh: $tool not found (scripts/install-deps.sh installs it)" >&2
    exit 2
  fi
done

start=$(date +%s)
echo "== building fuzz targets (build-fuzz/, clang)"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DALFRED_WERROR=ON -DALFRED_FUZZ=ON -DALFRED_BENCH=OFF \
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

# libFuzzer's own verdicts and any sanitizer report, even one that did not stop the run.
failure='==[0-9]+==ERROR|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer|FUZZ INVARIANT VIOLATED|deadly signal|ALARM: working on the last Unit'
failed=0
summary=()
total_execs=0
for t in $targets; do
  bin=$root/build-fuzz/${t}_fuzz
  if [ -n "$corpus_dir" ]; then
    corpus=$corpus_dir/$t
  else
    corpus=$work/$t/corpus
  fi
  artifacts=$work/$t/artifacts/
  log=$work/$t/log
  mkdir -p "$corpus" "$artifacts"
  # A persistent corpus gets the seeds it lacks (new ones included), never loses any.
  if [ -d "fuzz/corpus/$t" ]; then cp -rn "fuzz/corpus/$t/." "$corpus/"; fi
  seeds=$(find "$corpus" -type f | wc -l)
  if [ $mode = time ]; then
    limit=(-max_total_time="$amount")
  else
    limit=(-runs="$(( (amount + procs - 1) / procs ))")
    if [ -n "$time_cap" ]; then limit+=(-max_total_time="$time_cap"); fi
  fi
  parallel=()
  if [ "$procs" -gt 1 ]; then parallel=(-jobs="$procs" -workers="$workers"); fi
  echo "== $t: ${limit[*]#-} ${parallel[*]:+${parallel[*]#-} }$seeds seeds"
  t0=$(date +%s)
  set +e
  # -jobs writes each process's output to fuzz-<n>.log in the current directory.
  # -entropic_scale_per_exec_time: inputs that run long (the datagram target's
  # heap-mode floods take up to ~50 ms, its other inputs ~1 ms) get
  # proportionally less mutation time; without it they took ~90% of it.
  (cd "$work/$t" && "$bin" "${limit[@]}" "${parallel[@]}" -rss_limit_mb=2048 -timeout=10 \
    -detect_leaks=1 -entropic_scale_per_exec_time=1 -print_final_stats=1 \
    -artifact_prefix="$artifacts" "$corpus" >"$log" 2>&1)
  rc=$?
  set -e
  t1=$(date +%s)
  # With -jobs the parent's log repeats each job's log once the job is done;
  # the figures come from the jobs' own logs (complete even if stopped early).
  logs=()
  for l in "$work/$t"/fuzz-*.log; do [ -e "$l" ] && logs+=("$l"); done
  [ ${#logs[@]} -gt 0 ] || logs=("$log")
  execs=0
  for l in "${logs[@]}"; do
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$l" | tail -1)
    execs=$((execs + ${n:-0}))
  done
  rate=$((execs / ( t1 - t0 > 0 ? t1 - t0 : 1 )))
  cov=$(for l in "${logs[@]}"; do grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$l" | tail -1; done |
        sort -t' ' -k2,2n | tail -1 || true)
  status=ok
  if [ $rc -ne 0 ] ||
     grep -qE "$failure" "$log" "${logs[@]}"; then
    status=FAILED
    failed=1
    mkdir -p fuzz/crashes
    for a in "$artifacts"*; do
      [ -e "$a" ] || continue
      cp "$a" "fuzz/crashes/${t}-$(basename "$a")"
      echo "   reproducer: fuzz/crashes/${t}-$(basename "$a")"
    done
    shown=0
    for l in "${logs[@]}"; do
      grep -qE "$failure" "$l" || continue
      echo "   --- last lines of $l:"
      grep -vE '^#[0-9]+' "$l" | tail -40 | sed 's/^/   /'
      shown=1
      break  # the other jobs usually hit the same input
    done
    if [ $shown = 0 ]; then
      echo "   --- last lines of $log:"
      grep -vE '^#[0-9]+' "$log" | tail -40 | sed 's/^/   /'
    fi
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
