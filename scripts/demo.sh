#!/usr/bin/env bash
# The demo `make demo` runs: reel makes its own sample videos, ingests them into a
# catalog and shows what it recorded. Rerunning it reuses what is already there.
#   scripts/demo.sh REEL_BINARY DEMO_DIR
set -euo pipefail
reel=${1:?reel binary}
dir=${2:?demo folder}
jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p "$dir"

echo "== 1. sample videos (synthetic, with known scene cuts) -> $dir/videos"
"$reel" samples --out "$dir/videos" --count 8

echo
echo "== 2. ingest into the catalog $dir/catalog.db"
"$reel" curate ingest --db "$dir/catalog.db" --jobs "$jobs" "$dir/videos"

echo
echo "== 3. the catalog"
"$reel" db info --db "$dir/catalog.db"
echo
"$reel" db query --db "$dir/catalog.db" --format table \
  "SELECT id, substr(path, length(rtrim(path, replace(path, '/', ''))) + 1) AS file,
          status, codec, width || 'x' || height AS size,
          fps_num || '/' || fps_den AS fps, frame_count AS frames,
          round(duration_seconds, 3) AS seconds
   FROM videos ORDER BY path"
echo
echo "Try: $reel db export --db $dir/catalog.db --format jsonl"
