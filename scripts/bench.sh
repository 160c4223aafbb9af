#!/usr/bin/env bash
# Runs reel's benchmarks. Generated inputs are cached in BUILD_DIR/bench-data.
#   scripts/bench.sh BUILD_DIR [extra Google Benchmark flags]
set -euo pipefail
build=${1:?build folder}
shift
export REEL_BENCH_DATA="$build/bench-data"
mkdir -p "$REEL_BENCH_DATA"
for b in "$build"/benchmarks/bench_*; do
  [[ -x "$b" ]] || continue
  echo "== $(basename "$b")"
  "$b" "$@"
done
