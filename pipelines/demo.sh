#!/usr/bin/env bash
# The demo: zero-shot int8 thermal detection on a generated FLIR-Boson-like recording.
#
#   zsq synth --recording  ->  640x512 GRAY16_LE radiometric frames (centikelvin), 30 fps
#   filesrc ! rawvideoparse ! zsqcalibrate ! thermaldetect ! (annotated AVI, PNG snapshots)
#     thermaldetect reads each box's temperature from the radiometric counts.
#     zsqcalibrate distills calibration images from the model's own BatchNorm statistics
#     and quantizes it to int8 while the frames flow through the fp32 model; thermaldetect
#     switches to int8 between two frames. The next run finds it in the cache.
#   zsq eval               ->  mAP of what the element emitted against the recording's labels
#
# Needs: `make build` (zsq, the plugin, ONNX Runtime). `make demo` runs this script.
# Environment: OUT (default out/demo), MODEL (default models/det_thermal_ft.onnx),
# FRAMES (1800 = 60 s), REALTIME (1: play at 30 fps as a camera would; 0: as fast as possible).
set -euo pipefail
source "$(dirname "$0")/common.sh"

OUT=${OUT:-$REPO/out/demo}
FRAMES=${FRAMES:-1800}
REALTIME=${REALTIME:-1}
need_element thermaldetect zsqcalibrate jpegenc avimux pngenc

mkdir -p "$OUT"
if [ ! -f "$OUT/recording.json" ] \
  || [ "$(stat -c %s "$OUT/recording.gray16le" 2>/dev/null)" != $((FRAMES * 640 * 512 * 2)) ]; then
  echo "== generating a ${FRAMES}-frame 640x512 GRAY16_LE recording (zsq synth)"
  "$ZSQ" synth --out "$OUT" --scenes 0 --recording "$FRAMES" --seed 7
fi

clock=""
[ "$REALTIME" = 1 ] && clock="! identity sync=true"
echo "== zsqcalibrate model=$MODEL ! thermaldetect (frames at $([ "$REALTIME" = 1 ] && echo "30 fps" || echo "full speed"))"
rm -f "$OUT"/snapshot_*.png
# thermaldetect threads=1: detection keeps one core, calibration gets the others (on a
# 2-core machine two inference threads would starve the calibration worker).
log=$OUT/gst-launch.log
start=$(date +%s.%N)
gst-launch-1.0 -m -e \
  filesrc location="$OUT/recording.gray16le" \
  ! rawvideoparse format=gray16-le width=640 height=512 framerate=30/1 $clock \
  ! zsqcalibrate model="$MODEL" \
  ! thermaldetect json-location="$OUT/detections.jsonl" radiometry=centikelvin output-agc=true post-messages=false threads=1 \
  ! videoconvert ! tee name=t \
  t. ! queue ! jpegenc quality=90 ! avimux ! filesink location="$OUT/annotated.avi" \
  t. ! queue ! videorate drop-only=true ! video/x-raw,framerate=1/5 \
     ! pngenc ! multifilesink location="$OUT/snapshot_%02d.png" > "$log" 2>&1 \
  || { cat "$log" >&2; die "the pipeline failed"; }
end=$(date +%s.%N)

# What the bus said: calibration progress and the switch to int8.
done_line=$(grep -m1 "zsqcalibrate-done" "$log" || true)
switch=$(grep "thermaldetect-model" "$log" | grep -m1 "precision=(string)u8s8" || true)
if [ -n "$done_line" ]; then
  secs=$(echo "$done_line" | grep -oE 'seconds=\(double\)[0-9.]+' | cut -d')' -f2)
  hit=$(echo "$done_line" | grep -oE 'cache-hit=\(boolean\)[a-z]+' | cut -d')' -f2)
  frame=$(echo "$switch" | grep -oE 'frame=\(guint64\)[0-9]+' | cut -d')' -f2)
  if [ "$hit" = true ]; then
    printf '   int8 model from the cache in %.2f s: int8 from frame %s\n' "$secs" "${frame:-?}"
  else
    printf '   zero-shot calibration took %.1f s while frames ran on fp32; int8 from frame %s (cached for next time)\n' "$secs" "${frame:-?}"
  fi
else
  echo "   the recording ended before calibration finished: the pipeline stopping cancels it"
  echo "   (a longer recording, FRAMES=$((FRAMES * 2)), or a less loaded machine lets it finish)"
fi
grep -E "^(WARNING|ERROR)" "$log" | grep -v "execution-provider=auto runs on" || true

frames=$(wc -l < "$OUT/detections.jsonl")
boxes=$(grep -o '"label"' "$OUT/detections.jsonl" | wc -l)
fps=$(awk -v f="$frames" -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", f / (b - a) }')
echo "   $frames frames, $boxes boxes, $fps frames/s end to end"
# The recording is radiometric (centikelvin): every box carries its temperature.
people=$(grep -oE '"label":"person"[^}]*"temperature_c":\{"max":-?[0-9.]+' "$OUT/detections.jsonl" \
  | grep -oE -- '-?[0-9.]+$' | sort -n || true)
if [ -n "$people" ]; then
  n=$(echo "$people" | wc -l)
  echo "   people's hottest temperature: median $(echo "$people" | sed -n "$(( (n + 1) / 2 ))p") °C over $n person boxes (radiometry=centikelvin)"
fi
echo "   annotated video: $OUT/annotated.avi, snapshots: $OUT/snapshot_*.png, detections: $OUT/detections.jsonl"

echo "== accuracy of the element's output (conf-threshold 0.25 limits recall) vs the recording's labels"
"$ZSQ" eval --coco "$OUT/recording.json" --detections "$OUT/detections.jsonl"
