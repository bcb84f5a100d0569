#!/usr/bin/env bash
# The demo: the bundled thermal detector on a generated FLIR-Boson-like recording.
#
#   zsq synth --recording  ->  640x512 GRAY16_LE radiometric frames (centikelvin), 30 fps
#   filesrc ! rawvideoparse ! thermaldetect ! (annotated AVI, PNG snapshots, JSON lines)
#   zsq eval               ->  mAP of what the element emitted against the recording's labels
#
# Needs: `make build` (target/release/zsq and libgstthermalzsq.so), ORT_DYLIB_PATH and
# GST_PLUGIN_PATH (the Makefile exports both; `make demo` runs this script).
# Environment: OUT (default out/demo), MODEL (default models/det_thermal_ft.onnx), FRAMES (300).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-out/demo}
MODEL=${MODEL:-models/det_thermal_ft.onnx}
FRAMES=${FRAMES:-300}
ZSQ=${ZSQ:-target/release/zsq}

mkdir -p "$OUT"
if [ ! -f "$OUT/recording.gray16le" ] || [ ! -f "$OUT/recording.json" ]; then
  echo "== generating a ${FRAMES}-frame 640x512 GRAY16_LE recording"
  "$ZSQ" synth --out "$OUT" --scenes 0 --recording "$FRAMES" --seed 7
fi

echo "== thermaldetect model=$MODEL"
rm -f "$OUT"/snapshot_*.png
start=$(date +%s.%N)
gst-launch-1.0 -q -e \
  filesrc location="$OUT/recording.gray16le" \
  ! rawvideoparse format=gray16-le width=640 height=512 framerate=30/1 \
  ! thermaldetect model="$MODEL" json-location="$OUT/detections.jsonl" output-agc=true \
  ! videoconvert ! tee name=t \
  t. ! queue ! jpegenc quality=90 ! avimux ! filesink location="$OUT/annotated.avi" \
  t. ! queue ! videorate drop-only=true ! video/x-raw,framerate=1/1 \
     ! pngenc ! multifilesink location="$OUT/snapshot_%02d.png"
end=$(date +%s.%N)

frames=$(wc -l < "$OUT/detections.jsonl")
boxes=$(grep -o '"label"' "$OUT/detections.jsonl" | wc -l)
fps=$(awk -v f="$frames" -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", f / (b - a) }')
echo "   $frames frames, $boxes boxes, $fps frames/s end to end"
echo "   annotated video: $OUT/annotated.avi, snapshots: $OUT/snapshot_*.png, detections: $OUT/detections.jsonl"

echo "== accuracy of the element's output (conf-threshold 0.25 limits recall) vs the recording's labels"
"$ZSQ" eval --coco "$OUT/recording.json" --detections "$OUT/detections.jsonl"
