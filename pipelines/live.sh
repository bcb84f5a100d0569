#!/usr/bin/env bash
# Live thermal camera -> zero-shot int8 detection -> display.
#
# Needs: a V4L2 thermal camera, `make build` (plugin, zsq, ONNX Runtime), a display
# (autovideosink). The first start calibrates the model (seconds to a minute; frames flow
# meanwhile with the fp32 model), later starts hit the cache.
#
# Usage: live.sh [--device /dev/videoN] [--model M.onnx] [--fp32] [--json FILE] [--selftest] PRESET
#   PRESET:
#     lepton      FLIR Lepton 3.x on a PureThermal board: Y16 160x120 -> GRAY16_LE
#     boson       FLIR Boson 640, 16-bit: 640x512 GRAY16_LE
#     boson-agc   FLIR Boson 640, its 8-bit AGC stream: 640x512 I420
#     p2pro       InfiRay P2 Pro / Topdon TC001: 256x384 YUY2, the lower half raw counts
#                 (1/64 K); detection runs on those counts (input-layout=thermal-bottom-half)
#     generic FORMAT WxH   any camera: a GStreamer format name (GRAY16_LE, GRAY8, YUY2, ...)
#   --selftest   no camera: a generated recording in the preset's format replaces
#                v4l2src, fakesink replaces the display, and the JSON output is checked.
set -euo pipefail
source "$(dirname "$0")/common.sh"

device=/dev/video0 fp32=0 json="" selftest=0
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --fp32) fp32=1; shift ;;
    --json) json=$2; shift 2 ;;
    --selftest) selftest=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || die "no preset (lepton, boson, boson-agc, p2pro, generic FORMAT WxH); --help"
camera_preset "$@"
src=$(camera_source "$1" "$device" "$selftest")
if [ "$selftest" = 1 ]; then
  sink="fakesink"
  json=${json:-$REPO/out/selftest/live-$1.jsonl}
else
  sink="$CROP videoconvert ! autovideosink sync=false"
fi
need_element thermaldetect

props="$LAYOUT output-agc=true"
[ -n "$json" ] && props="$props json-location=\"$json\""
pipeline="$src ! $(detect_chain $fp32 $props) ! $sink"
echo "gst-launch-1.0 $pipeline" >&2
eval gst-launch-1.0 -e $pipeline

if [ "$selftest" = 1 ]; then
  check_json "$json" 30
  echo "selftest live $1: ok"
fi
