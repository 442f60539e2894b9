#!/usr/bin/env bash
# What statistics and tracing cost: bench/micro spawn and yield with src/debug's machinery on
# (micro's third argument: stats, trace, flight) against the same binary with it off, in the same
# run. Prints, per test and mode, instructions per operation under callgrind (the difference of
# two runs over the difference of their N, which is stable on a noisy machine) and the median of
# interleaved wall-clock runs with its spread, each as a ratio to the off figure, beside the bar
# (issue: yield <= 1.15x, spawn <= 1.25x), and the trace buffers' memory against their budget.
#
# usage: bench/debug_overhead.sh [BUILD_DIR] [N] [REPEATS]
#   BUILD_DIR  a release build (default build/release); N the smaller callgrind size (100000);
#   REPEATS    interleaved wall-clock runs per mode, at 10 N (9)
set -euo pipefail
build=${1:-build/release}
n=${2:-100000}
repeats=${3:-9}
micro=$build/bench/micro
[ -x "$micro" ] || { echo "no $micro: build the micro target" >&2; exit 2; }
export WEAVE_BACKEND=${WEAVE_BACKEND:-epoll}
modes=(off stats trace flight)

# Instructions of one run, as callgrind counts them.
instructions() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 |
    sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}
mode_arg() { [ "$1" = off ] || echo "$1"; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

declare -A ipo wall spread flight_line
for test in yield spawn; do
  for mode in "${modes[@]}"; do
    a=$(instructions "$micro" "$test" "$n" $(mode_arg "$mode"))
    b=$(instructions "$micro" "$test" $((2 * n)) $(mode_arg "$mode"))
    ipo[$test.$mode]=$(awk -v a="$a" -v b="$b" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')
  done
  # Wall time: the modes interleaved, so that the machine's load falls on all of them alike.
  declare -A runs=()
  for ((r = 0; r < repeats; ++r)); do
    for mode in "${modes[@]}"; do
      out=$("$micro" "$test" $((10 * n)) $(mode_arg "$mode"))
      runs[$mode]+="$(echo "$out" | field secs) "
      [ "$mode" = flight ] && flight_line[$test]=$out
    done
  done
  for mode in "${modes[@]}"; do
    read -r med lo hi < <(echo "${runs[$mode]}" | tr ' ' '\n' | sed '/^$/d' | sort -g |
      awk '{ v[NR] = $1 } END { printf "%s %s %s\n", v[int((NR + 1) / 2)], v[1], v[NR] }')
    wall[$test.$mode]=$med
    spread[$test.$mode]="$lo..$hi"
  done
done

printf '%-6s %-7s %10s %7s %10s %7s %-15s %s\n' test mode instr/op ratio wall_s ratio spread bar
for test in yield spawn; do
  bar=1.15
  [ "$test" = spawn ] && bar=1.25
  for mode in "${modes[@]}"; do
    awk -v t="$test" -v m="$mode" -v i="${ipo[$test.$mode]}" -v i0="${ipo[$test.off]}" \
      -v w="${wall[$test.$mode]}" -v w0="${wall[$test.off]}" -v s="${spread[$test.$mode]}" \
      -v bar="$bar" 'BEGIN {
        printf "%-6s %-7s %10.1f %6.2fx %10.4f %6.2fx %-15s %s\n", t, m, i, i / i0, w, w / w0, s,
               m == "off" ? "" : "<= " bar "x"
      }'
  done
done
for test in yield spawn; do
  line=${flight_line[$test]:-}
  echo "flight $test $((10 * n)): trace_bytes=$(echo "$line" | field trace_bytes)" \
    "(budget 67108864, one thread 8388608) dropped=$(echo "$line" | field trace_dropped)" \
    "peak_rss_kb=$(echo "$line" | field peak_rss_kb)"
done
