#!/usr/bin/env bash
# Re-streams the annotated thermal video over RTSP for a video-management system (VMS):
#   camera or recording -> zsqcalibrate -> thermaldetect -> thermaltrack (boxes labelled
#   "person #12", zones) -> MJPEG or H.264 -> rtsp://HOST:PORT/MOUNT
# camera.sh --out serve: every camera.sh option and SOURCE works here (zones, --json,
# --broker for MQTT events alongside the video). The server is the example
# plugins/gst-thermalzsq/examples/serve.rs (gst-rtsp-server), built on first use; all
# clients share one pipeline (the camera opens once, the model calibrates once).
#
# Usage: serve.sh [--port 8554] [--address 0.0.0.0] [--mount /thermal] [--codec mjpeg|h264]
#                 [camera.sh options] [--selftest] SOURCE
#   --codec   mjpeg (jpegenc, plugins-good: every VMS plays it; ~10x the bitrate) or
#             h264 (openh264enc from plugins-bad, x264enc, or H264ENC="encoder props")
#   --selftest   serves a generated recording and plays it back with rtspsrc
# Watch: gst-launch-1.0 rtspsrc location=rtsp://127.0.0.1:8554/thermal ! decodebin ! autovideosink
#        (or VLC, ffplay, a VMS). See docs/rtsp.md.
set -euo pipefail
case ${1:-} in -h|--help) sed -n '2,18p' "$0"; exit 0 ;; esac
exec "$(dirname "$0")/camera.sh" --out serve "$@"
