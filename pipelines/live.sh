#!/usr/bin/env bash
# Live thermal camera -> zero-shot int8 detection -> display.
#
# Needs: a V4L2 thermal camera, `make build` (plugin, zsq, ONNX Runtime), a display
# (autovideosink). The first start calibrates the model (seconds to a minute; frames flow
# meanwhile with the fp32 model), later starts hit the cache.
#
# Usage: live.sh [--device /dev/videoN] [--model M.onnx] [--fp32] [--json FILE]
#                [--latency MS] [--tcp] [--codec auto|h264|h265|mjpeg] [--selftest] PRESET
#   PRESET:
#     lepton      FLIR Lepton 3.x on a PureThermal board: Y16 160x120 -> GRAY16_LE
#     boson       FLIR Boson 640, 16-bit: 640x512 GRAY16_LE
#     boson-agc   FLIR Boson 640, its 8-bit AGC stream: 640x512 I420
#     p2pro       InfiRay P2 Pro / Topdon TC001: 256x384 YUY2, the lower half raw counts
#                 (1/64 K); detection runs on those counts (input-layout=thermal-bottom-half)
#     generic FORMAT WxH   any camera: a GStreamer format name (GRAY16_LE, GRAY8, YUY2, ...)
#     rtsp URL    a network thermal camera's 8-bit AGC stream (H.264, H.265 or MJPEG over
#                 RTSP): rtspsrc, depayload, decode, detection on the luma; frames the
#                 detector cannot keep up with are dropped. --latency: rtspsrc's jitter
#                 buffer (default 200 ms); --tcp: RTP inside the RTSP connection (through
#                 firewalls and NAT, no loss); --codec: take only that stream. docs/rtsp.md.
#   --selftest   no camera: a generated recording in the preset's format replaces
#                v4l2src, fakesink replaces the display, and the JSON output is checked.
#                rtsp without URL: a local RTSP server streams one as MJPEG, then H.264.
set -euo pipefail
source "$(dirname "$0")/common.sh"

device=/dev/video0 fp32=0 json="" selftest=0 latency=200 tcp=0 codec=auto
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --fp32) fp32=1; shift ;;
    --json) json=$2; shift 2 ;;
    --latency) latency=$2; shift 2 ;;
    --tcp) tcp=1; shift ;;
    --codec) codec=$2; shift 2 ;;
    --selftest) selftest=1; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || die "no preset (lepton, boson, boson-agc, p2pro, generic FORMAT WxH, rtsp URL); --help"

if [ "$1" = rtsp ] && [ -z "${2:-}" ]; then
  [ "$selftest" = 1 ] || die "rtsp needs the camera's URL (rtsp://user:password@host:554/path)"
  # The script against a real server: each codec a camera may send, over TCP and UDP.
  # One server per client, so that no run depends on how the previous one's media shut
  # down: a media stuck in its EOS shutdown once made a later client get 503 in CI.
  # serve.rs now stops a finished recording at once; tests/rtsp.rs plays back-to-back
  # clients on one server.
  args=(); [ "$fp32" = 1 ] && args+=(--fp32)
  for c in mjpeg h264; do
    for transport in --tcp ""; do
      selftest_rtsp_camera $c
      "$0" --selftest "${args[@]}" $transport --codec $c rtsp "$RTSP_URL"
      kill "$SERVER_PID"
    done
  done
  exit 0
fi

if [ "$1" = rtsp ]; then
  src=$(rtsp_source "$2" "$latency" "$tcp" "$codec") || exit 1
  LAYOUT="" CROP="" preset=rtsp
else
  camera_preset "$@"
  src=$(camera_source "$1" "$device" "$selftest")
  preset=$1
fi
if [ "$selftest" = 1 ]; then
  sink="fakesink"
  json=${json:-$REPO/out/selftest/live-$preset.jsonl}
  rm -f "$json"
else
  sink="$CROP videoconvert ! autovideosink sync=false"
fi
need_element thermaldetect

props="$LAYOUT output-agc=true"
[ -n "$json" ] && props="$props json-location=\"$json\""
pipeline="$src ! $(detect_chain $fp32 $props) ! $sink"
echo "gst-launch-1.0 $pipeline" >&2
if [ "$preset" = rtsp ]; then
  launch_rtsp_client eval gst-launch-1.0 -e "$pipeline"
else
  eval gst-launch-1.0 -e $pipeline
fi

if [ "$selftest" = 1 ] && [ "$preset" = rtsp ]; then
  # Live: the leaky queue may drop frames, so not every frame has a line.
  grep -q '"detections":\[{' "$json" 2>/dev/null || die "selftest: no detections in $json"
  echo "selftest live rtsp ($codec$([ "$tcp" = 1 ] && echo ", tcp")): ok, $(wc -l < "$json") of 30 frames detected on"
elif [ "$selftest" = 1 ]; then
  check_json "$json" 30
  echo "selftest live $1: ok"
fi
