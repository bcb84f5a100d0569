#!/usr/bin/env bash
# Tracking quality, ByteTrack vs the greedy IoU baseline: the table of docs/tracking.md.
#
#   tools/track_eval.sh [OUT_DIR]        (default target/track-eval)
#
# For each seed: `zsq synth --recording` (held-out seeds: no tracker default was tuned
# on them), one pipeline that runs the real detector once and feeds every tracker
# setting through a tee
#   filesrc ! rawvideoparse ! thermaldetect conf-threshold=0.1 ! tee
#     ! thermaltrack tracker=bytetrack|iou match-iou=M json-location=...
# and `zsq eval --tracks gt.txt TRACKS.jsonl --json` per setting. Prints a markdown
# table per setting: MOTA, IDF1, ID switches and the rest summed over all recordings
# (as motmetrics' OVERALL row: counts added, ratios from the sums), then per recording.
#
# Environment: SEEDS ("101 102 103 104 105"), FRAMES (300), SIZE (640x512), MATCH_IOU
# ("0.2 0.3 0.5"), MODEL (models/det_thermal_ft.onnx), INPUT_SIZE (thermaldetect's
# input-size, e.g. 640x512; default: the model's own), ZSQ (target/release/zsq),
# GST_PLUGIN_PATH (target/release), ORT_DYLIB_PATH (the repo's .ortlib). Needs `make
# build` (or `cargo build -p zsq -p gst-plugin-thermalzsq` with ZSQ and
# GST_PLUGIN_PATH pointing at target/debug).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/track-eval}
seeds=${SEEDS:-101 102 103 104 105}
frames=${FRAMES:-300}
size=${SIZE:-640x512}
match_iou=${MATCH_IOU:-0.2 0.3 0.5}
model=${MODEL:-$root/models/det_thermal_ft.onnx}
input_size=${INPUT_SIZE:+input-size=$INPUT_SIZE}
zsq=${ZSQ:-$root/target/release/zsq}
export GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-$root/target/release}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(ls "$root"/.ortlib/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1)}
width=${size%x*}
height=${size#*x}

[ -x "$zsq" ] || { echo "track_eval: no $zsq (run make build, or set ZSQ)" >&2; exit 1; }
gst-inspect-1.0 thermaltrack >/dev/null 2>&1 ||
  { echo "track_eval: thermaltrack not found in GST_PLUGIN_PATH=$GST_PLUGIN_PATH" >&2; exit 1; }

settings=()
for m in $match_iou; do
  for tracker in bytetrack iou; do settings+=("$tracker-$m"); done
done

# One number of `zsq eval --json` output.
field() { sed -n "s/.*\"$1\":\\([^,}]*\\).*/\\1/p" "$2"; }

for seed in $seeds; do
  dir=$out/seed$seed
  if [ ! -s "$dir/gt.txt" ]; then
    "$zsq" synth --out "$dir" --scenes 0 --seed "$seed" --size "$size" --recording "$frames" >&2
  fi
  branches=""
  for s in "${settings[@]}"; do
    branches+=" t. ! queue ! thermaltrack tracker=${s%-*} match-iou=${s#*-} draw=false"
    branches+=" json-location=$dir/$s.jsonl ! fakesink"
  done
  echo "seed $seed: detecting and tracking $frames frames" >&2
  # shellcheck disable=SC2086 # the branches are pipeline words
  gst-launch-1.0 -q filesrc location="$dir/recording.gray16le" \
    ! rawvideoparse format=gray16-le width="$width" height="$height" framerate=30/1 \
    ! thermaldetect model="$model" $input_size conf-threshold=0.1 draw=false \
      json-location="$dir/detections.jsonl" \
    ! tee name=t $branches >&2
  "$zsq" eval --coco "$dir/recording.json" --detections "$dir/detections.jsonl" --json \
    >"$dir/detections.eval.json"
  for s in "${settings[@]}"; do
    "$zsq" eval --tracks "$dir/gt.txt" "$dir/$s.jsonl" --json >"$dir/$s.eval.json"
  done
done

echo "| tracker | match-iou | MOTA | IDF1 | IDP | IDR | ID switches | frag. | MT / PT / ML | FP | misses | recall | precision |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for s in "${settings[@]}"; do
  for seed in $seeds; do
    f=$out/seed$seed/$s.eval.json
    echo "$(field num_objects "$f") $(field num_misses "$f") $(field num_false_positives "$f")" \
      "$(field num_switches "$f") $(field num_fragmentations "$f") $(field idr "$f")" \
      "$(field idp "$f") $(field mostly_tracked "$f") $(field partially_tracked "$f")" \
      "$(field mostly_lost "$f")"
  done | awk -v tracker="${s%-*}" -v m="${s#*-}" '
    # Identity true positives = IDR * objects; predictions = IDTP / IDP.
    { gt += $1; fn += $2; fp += $3; sw += $4; fr += $5
      idtp = $6 * $1; idtp_sum += idtp
      pred += ($7 > 0) ? idtp / $7 : $1 - $2 + $3
      mt += $8; pt += $9; ml += $10 }
    END {
      tp = gt - fn
      printf "| %s | %s | %.3f | %.3f | %.3f | %.3f | %d | %d | %d / %d / %d | %d | %d | %.3f | %.3f |\n",
        tracker, m, 1 - (fn + sw + fp) / gt, 2 * idtp_sum / (gt + pred), idtp_sum / pred,
        idtp_sum / gt, sw, fr, mt, pt, ml, fp, fn, tp / gt, tp / (tp + fp)
    }'
done

echo
echo "Per recording (MOTA / IDF1 / ID switches):"
echo
printf "| seed | objects | GT boxes | detector mAP50 |"
for s in "${settings[@]}"; do printf " %s |" "$s"; done
echo
printf "|---|---|---|---|"
for _ in "${settings[@]}"; do printf -- "---|"; done
echo
for seed in $seeds; do
  dir=$out/seed$seed
  first=$dir/${settings[0]}.eval.json
  objects=$(( $(field mostly_tracked "$first") + $(field partially_tracked "$first") + $(field mostly_lost "$first") ))
  printf "| %s | %s | %s | %.3f |" "$seed" "$objects" "$(field num_objects "$first")" \
    "$(sed -n 's/.*"map50":\([^,}]*\).*/\1/p' "$dir/detections.eval.json")"
  for s in "${settings[@]}"; do
    f=$dir/$s.eval.json
    printf " %.3f / %.3f / %s |" "$(field mota "$f")" "$(field idf1 "$f")" "$(field num_switches "$f")"
  done
  echo
done
