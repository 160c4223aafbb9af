#!/usr/bin/env bash
# The demo `make demo` runs: reel makes its own sample videos, then curates them into
# training clips: ingest, one-pass scan (shot detection + clip signals), captions from the
# signals (no model needed), dedup, filter, export with an Open-Sora manifest, and the
# weight-free temporal metrics of the training subset; then trains the CPU-size
# text-to-video model on those clips for a few minutes, samples a clip per caption,
# evaluates the samples and ends with the HTML report. Rerunning it reuses what is done.
#   scripts/demo.sh REEL_BINARY DEMO_DIR
set -euo pipefail
reel=${1:?reel binary}
dir=${2:?demo folder}
db="$dir/catalog.db"
jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p "$dir"

echo "== 1. sample videos (synthetic, with known scene cuts) -> $dir/videos"
"$reel" samples --out "$dir/videos" --count 8

echo
echo "== 2. ingest into the catalog $db"
"$reel" curate ingest --db "$db" --jobs "$jobs" "$dir/videos"

echo
echo "== 3. scan: one decode pass per video, shot detection and clip signals"
"$reel" curate scan --db "$db" --jobs "$jobs"

echo
echo "== 4. captions written from the clip signals (no model weights needed)"
"$reel" caption --db "$db" --backend signals

echo
echo "== 5. near-duplicates, then a training subset"
"$reel" curate dedup --db "$db"
"$reel" curate filter --db "$db" --subset train \
  --where "duration >= 1 and black < 0.5 and not duplicate"

echo
echo "== 6. export the subset (frame-exact, 128 px high) with manifests"
"$reel" curate export --db "$db" --subset train --out "$dir/clips" --height 128 --jobs "$jobs"

echo
echo "== 7. temporal metrics of the training subset (no model weights needed)"
if [[ -z "$("$reel" db query --db "$db" --format csv "SELECT id FROM runs WHERE kind = 'eval' AND name = 'demo-train'" | tail -n +2)" ]]; then
  "$reel" eval run --db "$db" --name demo-train --fake "db:$db#train" --frames 16 \
    --metrics flicker,dynamic-degree,warp-error --jobs "$jobs"
fi

echo
echo "== the catalog"
"$reel" db info --db "$db"
echo
"$reel" db query --db "$db" --format table \
  "SELECT c.id, substr(v.path, length(rtrim(v.path, replace(v.path, '/', ''))) + 1) AS video,
          c.start_frame AS start, c.end_frame AS end, round(c.duration_seconds, 2) AS seconds,
          round(c.motion, 2) AS motion, c.camera_motion AS camera,
          round(c.sharpness) AS sharpness, json_extract(c.dominant_colors, '\$[0].name') AS colour,
          coalesce(sc.reason, 'pass') AS train
   FROM clips c JOIN videos v ON v.id = c.video_id
   LEFT JOIN subset_clips sc ON sc.clip_id = c.id
     AND sc.subset_id = (SELECT id FROM subsets WHERE name = 'train')
   ORDER BY v.path, c.start_frame"
echo
"$reel" db query --db "$db" --format table \
  "SELECT k.clip_id AS clip, k.text AS caption FROM captions k
   WHERE k.source = 'signals' ORDER BY k.clip_id LIMIT 8"
echo
echo "Manifest for training: $dir/clips/manifest.csv"
head -n 3 "$dir/clips/manifest.csv" | cut -c 1-160
# OpenBLAS's own threads only spin beside libtorch's here.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

echo
echo "== 8. the generator: a causal video VAE, then a diffusion transformer on its latents"
if [[ -f "$dir/vae/config.json" ]] && ! grep -q 'reel-vae 2' "$dir/vae/config.json"; then
  echo "(the demo's VAE is of an older layout: training the generator again)"
  rm -rf "$dir/vae" "$dir/latents.pt" "$dir/dit" "$dir/samples"
fi
if [[ ! -f "$dir/vae/config.json" ]]; then
  "$reel" generate train-vae --db "$db" --subset train --out "$dir/vae" --steps 300 --batch 4
fi
# --resume: a rerun keeps the latents already encoded (and encodes again those of an
# older reel, which picked other frames).
"$reel" generate prepare --db "$db" --subset train --vae "$dir/vae" --out "$dir/latents.pt" \
  --resume
resume=()
[[ -f "$dir/dit/config.json" ]] && resume=(--resume)
"$reel" generate train --db "$db" --latents "$dir/latents.pt" --out "$dir/dit" --name demo-dit \
  --steps 600 --batch 8 --warmup 50 --save-every 200 "${resume[@]}"

echo
echo "== 9. a clip for every training caption, then their temporal metrics"
if [[ ! -d "$dir/samples" ]]; then
  "$reel" generate sample --db "$db" --subset train --ckpt "$dir/dit" --vae "$dir/vae" \
    --out "$dir/samples" --steps 20 --cfg 4 --name demo-dit@600
  "$reel" eval run --db "$db" --name demo-dit@600 --fake "run:$db#demo-dit@600" --frames 9 \
    --metrics flicker,dynamic-degree,warp-error
fi

echo
echo "== 10. the report: leaderboard, charts, dataset card, gallery (self-contained HTML)"
"$reel" report --db "$db" --out "$dir/report" --title "reel demo"
echo
echo "Open the report: $dir/report/index.html"
