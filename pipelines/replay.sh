#!/usr/bin/env bash
# Replay recorded thermal video through zero-shot int8 detection, optionally scoring it.
#
# Needs: `make build`. Reads raw GRAY16_LE/GRAY8 recordings (rawvideoparse), 16-bit PNG
# sequences (a directory: multifilesrc + pngdec) and encoded files (decodebin).
#
# Usage: replay.sh [--model M.onnx] [--annotations GT.json] [--size WxH] [--format gray16le|gray8]
#                  [--fps N] [--fp32] [--json FILE] [--selftest] FILE|DIR
#   --annotations GT.json  COCO ground truth with images in frame order (zsq synth
#                          --recording writes recording.json): the element scores every
#                          detection it emits at end of stream and this prints
#                          mAP50-95=0.xxxx mAP50=0.xxxx, pycocotools' twelve summary lines
#                          (AP, AP50, AP75, AP/AR by area, AR@1/10/100) as `zsq eval`
#                          prints them, per class, latency and frames/s.
#                          The element then runs at conf-threshold 0.001 and NMS IoU 0.7,
#                          as `zsq eval` does (set CONF to score at another threshold).
#   --size/--format        for raw files (default 640x512, gray16le; .gray8 files: gray8)
#   --fp32                 no calibration: the fp32 model as it is
#   --selftest             replays a generated recording (raw and PNG) with its annotations
set -euo pipefail
source "$(dirname "$0")/common.sh"

annotations="" size=640x512 format="" fps=30 fp32=0 json="" selftest=0
while [ $# -gt 0 ]; do
  case $1 in
    --model) MODEL=$2; shift 2 ;;
    --annotations) annotations=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --format) format=$2; shift 2 ;;
    --fps) fps=$2; shift 2 ;;
    --fp32) fp32=1; shift ;;
    --json) json=$2; shift 2 ;;
    --selftest) selftest=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) break ;;
  esac
done

if [ "$selftest" = 1 ]; then
  args=(); [ "$fp32" = 1 ] && args+=(--fp32)
  rec=$(selftest_recording gray16le 640x512 60)
  "$0" "${args[@]}" --annotations "$(dirname "$rec")/recording.json" "$rec"
  # The element's score equals `zsq eval` on the same frames with the same model.
  png=$(selftest_recording png16 640x512 20)
  gt=$(dirname "$png")/recording.json
  # First line and pycocotools' summary (13 lines), character for character.
  ours=$("$0" --fp32 --annotations "$gt" "$png" | sed -n 1,13p)
  theirs=$("$ZSQ" eval --coco "$gt" --model "$MODEL" --images "$png" | sed -n 1,13p)
  printf 'replay:\n%s\n' "$ours"
  printf 'zsq eval:\n%s\n' "$theirs"
  [ "$ours" = "$theirs" ] || die "selftest: replay and zsq eval disagree"
  echo "selftest replay: ok"
  exit 0
fi

input=${1:?"no FILE or DIR to replay; --help"}
[ -e "$input" ] || die "$input does not exist"
w=${size%x*} h=${size#*x}
if [ -d "$input" ]; then
  first=$(ls "$input" | grep -m1 '\.png$') || die "no PNG files in $input"
  pattern=$(echo "$first" | sed -E 's/[0-9]+\.png$//')
  digits=$(echo "$first" | sed -E 's/^.*[^0-9]([0-9]+)\.png$|^([0-9]+)\.png$/\1\2/' | tr -d '\n' | wc -c)
  start=$((10#$(echo "$first" | grep -oE '[0-9]+\.png$' | cut -d. -f1)))
  src="multifilesrc location=\"$input/${pattern}%0${digits}d.png\" index=$start caps=image/png,framerate=$fps/1 ! pngdec"
else
  case ${format:-${input##*.}} in
    gray16le|raw) src="filesrc location=\"$input\" ! rawvideoparse format=gray16-le width=$w height=$h framerate=$fps/1" ;;
    gray8) src="filesrc location=\"$input\" ! rawvideoparse format=gray8 width=$w height=$h framerate=$fps/1" ;;
    *) src="filesrc location=\"$input\" ! decodebin ! videoconvert" ;;
  esac
fi
need_element thermaldetect

props="post-messages=false draw=false"
[ -n "$json" ] && props="$props json-location=\"$json\""
if [ -n "$annotations" ]; then
  conf=${CONF:-0.001}
  props="$props annotations=\"$annotations\" conf-threshold=$conf iou-threshold=0.7"
fi
pipeline="$src ! $(detect_chain $fp32 $props) ! fakesink"
echo "gst-launch-1.0 $pipeline" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
eval gst-launch-1.0 -m -e $pipeline > "$log" 2>&1 || { cat "$log" >&2; die "the pipeline failed"; }
grep -E "^(WARNING|ERROR)" "$log" | grep -v "execution-provider=auto runs on" >&2 || true

if [ -n "$annotations" ]; then
  # gst-launch -m prints the message's structure; nested ones come escaped
  line=$(grep -m1 "thermaldetect-eval" "$log" | tr -d '\\') || die "no thermaldetect-eval message (did the stream reach EOS?)"
  field() { echo "$line" | grep -oE "(^|[ ,])$1=\(double\)[-0-9.e+]+" | head -1 | sed -E 's/.*\(double\)//'; }
  frames=$(echo "$line" | grep -oE 'frames=\(guint64\)[0-9]+' | sed -E 's/.*\)//')
  printf 'mAP50-95=%.4f mAP50=%.4f\n' "$(field map)" "$(field map50)"
  # pycocotools' summary as it prints it; the fields are the `zsq eval --json` keys.
  while read -r key kind iou area dets; do
    title="Average Precision"; [ "$kind" = AR ] && title="Average Recall"
    printf ' %-18s (%s) @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %.3f\n' \
      "$title" "$kind" "$iou" "$area" "$dets" "$(field "$key")"
  done <<'SUMMARY'
map AP 0.50:0.95 all 100
map50 AP 0.50 all 100
map75 AP 0.75 all 100
map-small AP 0.50:0.95 small 100
map-medium AP 0.50:0.95 medium 100
map-large AP 0.50:0.95 large 100
ar1 AR 0.50:0.95 all 1
ar10 AR 0.50:0.95 all 10
ar100 AR 0.50:0.95 all 100
ar-small AR 0.50:0.95 small 100
ar-medium AR 0.50:0.95 medium 100
ar-large AR 0.50:0.95 large 100
SUMMARY
  { echo "$line" | grep -oE 'name=\(string\)[A-Za-z0-9_ -]+, ap=\(double\)[-0-9.e+]+, ap50=\(double\)[-0-9.e+]+' || true; } \
    | sed -E 's/name=\(string\)([^,]+), ap=\(double\)([^,]+), ap50=\(double\)(.+)/\1 \2 \3/' \
    | while read -r name ap ap50; do printf '  %-8s AP50-95=%.4f AP50=%.4f\n' "$name" "$ap" "$ap50"; done
  printf '%s frames, latency p50 %.1f ms p95 %.1f ms, %.1f frames/s\n' "$frames" "$(field latency-p50)" "$(field latency-p95)" "$(field fps)"
  awk -v c="$conf" 'BEGIN { exit !(c > 0.001) }' && echo "note: conf-threshold $conf limits recall; zsq eval scores from 0.001" || true
fi
