#!/usr/bin/env bash
# Jetson (JetPack 6): thermal camera -> zero-shot int8 for TensorRT (s8s8) -> display,
# with NVIDIA's converter and sink where present. How to build on the Jetson: docs/jetson.md.
#
# Needs: JetPack 6 (GStreamer 1.20, TensorRT), an onnxruntime-gpu build for Jetson with
# the TensorRT execution provider (ORT_DYLIB_PATH), the plugin built there.
#
# Usage: jetson.sh [--device /dev/videoN] [--model M.onnx] [--trt-cache DIR] [--fp16]
#                  [--selftest] PRESET       (presets as live.sh)
#   The TensorRT engine is built on the first start and kept in --trt-cache (default
#   ~/.cache/thermalzsq/trt); later starts load it.
#   --selftest   what can be checked without a Jetson: a generated recording replaces the
#                camera; without TensorRT the tensorrt provider must fail at start with a
#                clear message, and the same pipeline with execution-provider=auto must run.
set -euo pipefail
source "$(dirname "$0")/common.sh"

device=/dev/video0 trt_cache=${XDG_CACHE_HOME:-$HOME/.cache}/thermalzsq/trt fp16=false selftest=0
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --trt-cache) trt_cache=$2; shift 2 ;;
    --fp16) fp16=true; shift ;;
    --selftest) selftest=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ "$selftest" = 1 ] && set -- boson
[ $# -gt 0 ] || die "no preset (lepton, boson, boson-agc, p2pro, generic FORMAT WxH); --help"
camera_preset "$@"
src=$(camera_source "$1" "$device" "$selftest")
need_element thermaldetect zsqcalibrate
mkdir -p "$trt_cache"

# NVIDIA's converter/sink when present (JetPack), else the portable ones.
if gst-inspect-1.0 nvvidconv >/dev/null 2>&1 && gst-inspect-1.0 nv3dsink >/dev/null 2>&1; then
  display="$CROP videoconvert ! video/x-raw,format=I420 ! nvvidconv ! video/x-raw(memory:NVMM) ! nv3dsink sync=false"
else
  display="$CROP videoconvert ! autovideosink sync=false"
fi
[ "$selftest" = 1 ] && display="fakesink"

chain() {
  local provider=$1 json=$2
  echo "zsqcalibrate model=\"$MODEL\" precision=s8s8 ${ZSQCALIBRATE_PROPS:-} \
    ! thermaldetect execution-provider=$provider trt-cache-dir=\"$trt_cache\" trt-fp16=$fp16 $LAYOUT output-agc=true $json"
}

if [ "$selftest" != 1 ]; then
  pipeline="$src ! $(chain tensorrt "") ! $display"
  echo "gst-launch-1.0 $pipeline" >&2
  eval gst-launch-1.0 -e $pipeline
  exit 0
fi

# Selftest, 1: the TensorRT path where TensorRT is missing fails at start, and says why.
log=$(mktemp); trap 'rm -f "$log"' EXIT
if eval gst-launch-1.0 -e "$src ! $(chain tensorrt "") ! fakesink" > "$log" 2>&1; then
  grep -q "TensorrtExecutionProvider\|tensorrt" "$log" || true
  echo "selftest jetson: TensorRT is available here; the tensorrt pipeline ran"
else
  grep -q "execution provider tensorrt is not available" "$log" || { cat "$log" >&2; die "selftest: no clear message for the missing TensorRT provider"; }
  echo "selftest jetson: tensorrt fails cleanly: $(grep -m1 -o 'execution provider tensorrt is not available[^)]*)' "$log")"
fi
# 2: the same pipeline with auto falls back to what there is, and detects.
json=$REPO/out/selftest/jetson.jsonl
eval gst-launch-1.0 -e "$src ! $(chain auto "json-location=\"$json\"") ! fakesink" > "$log" 2>&1 || { cat "$log" >&2; die "selftest: the auto pipeline failed"; }
grep -q "execution-provider=auto runs on" "$log" || die "selftest: no warning saying which provider runs"
check_json "$json" 30
echo "selftest jetson: ok (auto ran on $(grep -m1 -o 'runs on [a-z]*' "$log" | cut -d' ' -f3))"
