#!/usr/bin/env bash
# The demo: the whole product on a generated FLIR-Boson-like recording.
#
#   zsq synth --recording  ->  640x512 GRAY16_LE radiometric frames (centikelvin), 30 fps
#   filesrc ! rawvideoparse ! zsqcalibrate ! thermaldetect ! thermaltrack ! (WebM, PNGs)
#     zsqcalibrate distills calibration images from the model's own BatchNorm statistics
#     and quantizes it to int8 while the frames flow through the fp32 model; thermaldetect
#     switches to int8 between two frames and reads each box's temperature from the
#     radiometric counts, and sends on a histogram-equalised picture (output-agc-mode:
#     the detector keeps its trained percentile view); thermaltrack gives identities and
#     reports a line crossing and a zone. The next run finds the int8 model in the cache.
#   outputs: annotated.webm (VP8, plays in a browser), snapshot_NN.png every 5 s, and
#            contact_sheet.png (the snapshots tiled)
#   zsq eval               ->  mAP of what the element emitted against the recording's labels
#
# Needs: `make build` (zsq, the plugin, ONNX Runtime). `make demo` runs this script.
# Environment: OUT (default out/demo), MODEL (default models/det_thermal_ft640.onnx, the
# fine-tuned detector trained on at 640x512), FRAMES (1800 = 60 s), REALTIME (1: play at
# 30 fps as a camera would; 0: as fast as possible).
set -euo pipefail
demo_model=${MODEL:-}
source "$(dirname "$0")/common.sh"
MODEL=${demo_model:-$REPO/models/det_thermal_ft640.onnx}

OUT=${OUT:-$REPO/out/demo}
FRAMES=${FRAMES:-1800}
REALTIME=${REALTIME:-1}
need_element thermaldetect thermaltrack zsqcalibrate vp8enc webmmux pngenc pngdec compositor imagefreeze

mkdir -p "$OUT"
if [ ! -f "$OUT/recording.json" ] \
  || [ "$(stat -c %s "$OUT/recording.gray16le" 2>/dev/null)" != $((FRAMES * 640 * 512 * 2)) ]; then
  echo "== generating a ${FRAMES}-frame 640x512 GRAY16_LE recording (zsq synth)"
  "$ZSQ" synth --out "$OUT" --scenes 0 --recording "$FRAMES" --seed 7
fi

clock=""
[ "$REALTIME" = 1 ] && clock="! identity sync=true"
# Where the recording's people and cyclists go (seed 7): along the road and the
# pavement, across the middle of the frame, and close to the camera at the bottom.
zones=$OUT/zones.json
cat > "$zones" <<'JSON'
{"zones": [{"name": "near", "polygon": [[0,420],[640,420],[640,512],[0,512]], "labels": ["person"]}],
 "lines": [{"name": "crossing", "points": [[320,180],[320,512]]}]}
JSON
echo "== zsqcalibrate model=$MODEL ! thermaldetect ! thermaltrack (frames at $([ "$REALTIME" = 1 ] && echo "30 fps" || echo "full speed"))"
rm -f "$OUT"/snapshot_*.png "$OUT/contact_sheet.png"
# thermaldetect threads=1: detection keeps one core, calibration gets the others (on a
# 2-core machine two inference threads would starve the calibration worker).
# input-size=640x512: the detector (exported at 320x320, trained on at 640x512) runs at the
# camera's own size, where the many people 10-30 pixels tall stay big enough to find
# (README "Input size"). conf-threshold=0.1: ByteTrack's second stage keeps tracks alive on
# the low-scoring boxes (docs/tracking.md); only confirmed tracks are drawn.
log=$OUT/gst-launch.log
start=$(date +%s.%N)
gst-launch-1.0 -m -e \
  filesrc location="$OUT/recording.gray16le" \
  ! rawvideoparse format=gray16-le width=640 height=512 framerate=30/1 $clock \
  ! zsqcalibrate model="$MODEL" \
  ! thermaldetect input-size=640x512 conf-threshold=0.1 json-location="$OUT/detections.jsonl" radiometry=centikelvin output-agc=true \
      output-agc-mode=equalize \
      draw=false post-messages=false threads=1 \
  ! thermaltrack zones="$zones" json-location="$OUT/tracks.jsonl" draw=true draw-zones=true \
      post-messages=false \
  ! tee name=t \
  t. ! queue ! videoconvert ! vp8enc deadline=1 cpu-used=8 target-bitrate=2000000 ! webmmux \
     ! filesink location="$OUT/annotated.webm" \
  t. ! queue ! videorate drop-only=true ! video/x-raw,framerate=1/5 \
     ! videoconvert ! pngenc ! multifilesink location="$OUT/snapshot_%02d.png" > "$log" 2>&1 \
  || { cat "$log" >&2; die "the pipeline failed"; }
end=$(date +%s.%N)

# What the bus said: calibration progress and the switch to int8.
done_line=$(grep -m1 "zsqcalibrate-done" "$log" || true)
switch=$(grep "thermaldetect-model" "$log" | grep -m1 "precision=(string)u8s8" || true)
if [ -n "$done_line" ]; then
  secs=$(echo "$done_line" | grep -oE 'seconds=\(double\)[0-9.]+' | cut -d')' -f2)
  hit=$(echo "$done_line" | grep -oE 'cache-hit=\(boolean\)[a-z]+' | cut -d')' -f2)
  frame=$(echo "$switch" | grep -oE 'frame=\(guint64\)[0-9]+' | cut -d')' -f2)
  # distill: images from the model's BN statistics; synth: generated scenes (BN folded).
  source=$(echo "$done_line" | grep -oE 'calibration=\(string\)[a-z]+' | cut -d')' -f2)
  if [ "$hit" = true ]; then
    printf '   int8 model from the cache in %.2f s: int8 from frame %s\n' "$secs" "${frame:-?}"
  else
    printf '   zero-shot calibration (%s) took %.1f s while frames ran on fp32; int8 from frame %s (cached for next time)\n' "${source:-?}" "$secs" "${frame:-?}"
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

# What thermaltrack reported: events by type, and the first crossing.
events=$(grep -oE '"type":"[a-z]+"' "$OUT/tracks.jsonl" | cut -d'"' -f4 | sort | uniq -c \
  | awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }')
echo "   thermaltrack events: ${events:-none}"
# (one line can hold several crossings: the first of them)
crossing=$(grep -m1 -oE '"type":"cross","track_id":[0-9]+,"label":"[a-z]+"[^}]*"direction":"[a-z]+"' \
  "$OUT/tracks.jsonl" | head -n1 || true)
if [ -n "$crossing" ]; then
  id=$(echo "$crossing" | grep -oE '"track_id":[0-9]+' | cut -d: -f2)
  label=$(echo "$crossing" | grep -oE '"label":"[a-z]+"' | cut -d'"' -f4)
  dir=$(echo "$crossing" | grep -oE '"direction":"[a-z]+"' | cut -d'"' -f4)
  echo "   e.g. $label $id crossed line crossing ($dir)"
fi

# The snapshots tiled four across at half size: one picture of the whole run.
snaps=("$OUT"/snapshot_*.png)
if [ -e "${snaps[0]}" ]; then
  sheet="compositor name=sheet background=black"
  branches=""
  for i in "${!snaps[@]}"; do
    sheet="$sheet sink_$i::xpos=$(( (i % 4) * 320 )) sink_$i::ypos=$(( (i / 4) * 256 ))"
    branches="$branches filesrc location=\"${snaps[$i]}\" ! pngdec ! videoconvert ! videoscale"
    branches="$branches ! video/x-raw,format=AYUV,width=320,height=256 ! imagefreeze num-buffers=1 ! sheet.sink_$i"
  done
  eval gst-launch-1.0 -q "$sheet" ! videoconvert ! pngenc ! filesink location=\"$OUT/contact_sheet.png\" \
    "$branches" > "$log.sheet" 2>&1 || { cat "$log.sheet" >&2; die "the contact sheet failed"; }
fi
echo "   annotated video: $OUT/annotated.webm (VP8, plays in a browser), snapshots: $OUT/snapshot_*.png,"
echo "   contact sheet: $OUT/contact_sheet.png, detections: $OUT/detections.jsonl, tracks and events: $OUT/tracks.jsonl"

echo "== accuracy of the element's output (every box scoring 0.1 or more) vs the recording's labels"
"$ZSQ" eval --coco "$OUT/recording.json" --detections "$OUT/detections.jsonl"
