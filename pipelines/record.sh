#!/usr/bin/env bash
# Record annotated thermal video (boxes drawn, AGC view) to a file players open: VP8 in
# Matroska (.mkv), from Debian's gstreamer1.0-plugins-good.
#
# Usage: record.sh [--out FILE.mkv] [--model M.onnx] [--fp32] [--device /dev/videoN]
#                  [--frames N] [--selftest] PRESET | FILE.gray16le
#   PRESET as live.sh (lepton, boson, boson-agc, p2pro, generic FORMAT WxH); a raw
#   640x512 GRAY16_LE recording instead of a camera is read as replay.sh does.
#   --frames N   stop after N frames (a camera runs until Ctrl-C otherwise)
#   --selftest   records a generated Boson recording and checks the file plays back
set -euo pipefail
source "$(dirname "$0")/common.sh"

out="" fp32=0 device=/dev/video0 frames=-1 selftest=0
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --fp32) fp32=1; shift ;;
    --device) device=$2; shift 2 ;;
    --frames) frames=$2; shift 2 ;;
    --selftest) selftest=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
need_element thermaldetect vp8enc matroskamux

if [ "$selftest" = 1 ]; then
  set -- boson
  out=${out:-$REPO/out/selftest/record.mkv}
fi
[ $# -gt 0 ] || die "no PRESET or FILE; --help"
out=${out:-thermal-$(date +%Y%m%d-%H%M%S).mkv}

if [ -f "$1" ]; then
  camera_preset boson
  src="filesrc location=\"$1\" ! rawvideoparse format=gray16-le width=640 height=512 framerate=30/1"
else
  camera_preset "$@"
  src=$(camera_source "$1" "$device" "$selftest")
  [ "$frames" -gt 0 ] && [ "$selftest" != 1 ] && src="${src/v4l2src /v4l2src num-buffers=$frames }"
fi

pipeline="$src ! $(detect_chain $fp32 $LAYOUT output-agc=true) ! $CROP videoconvert ! vp8enc deadline=1 ! matroskamux ! filesink location=\"$out\""
echo "gst-launch-1.0 $pipeline" >&2
eval gst-launch-1.0 -e $pipeline
echo "recorded $out"

if [ "$selftest" = 1 ]; then
  # decode it back to raw grey frames and count them
  raw=$(mktemp)
  gst-launch-1.0 -q filesrc location="$out" ! matroskademux ! vp8dec ! videoconvert \
    ! video/x-raw,format=GRAY8,width=640,height=512 ! filesink location="$raw"
  played=$(( $(stat -c %s "$raw") / (640 * 512) ))
  rm -f "$raw"
  [ "$played" = 30 ] || die "selftest: $out plays back $played frames, expected 30"
  echo "selftest record: ok ($played frames play back)"
fi
