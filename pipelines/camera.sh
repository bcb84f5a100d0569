#!/usr/bin/env bash
# The full security-camera chain: a thermal camera (V4L2 or RTSP) or a recording
#   -> zsqcalibrate -> thermaldetect -> thermaltrack (identities, zones, lines, events)
#   [-> thermalpublish (MQTT, with --broker)] -> display | RTSP re-stream | nothing.
#
# Needs: `make build`; --out serve also the RTSP server example (built on first use).
#
# Usage: camera.sh [options] SOURCE
#   SOURCE   a live.sh camera preset (lepton, boson, boson-agc, p2pro, generic FORMAT WxH),
#            rtsp URL (a network camera's 8-bit AGC stream), or a recording FILE
#            (.gray16le or .gray8, --size WxH, 30 fps)
#   --zones FILE     zones and lines for thermaltrack's events (JSON, frame pixels:
#                    {"zones":[{"name":"gate","polygon":[[x,y],...]}],"lines":[...]})
#   --loiter S       seconds in a zone before a `loiter` event (default 30)
#   --json FILE      thermaltrack's JSON lines: tracks and events per frame
#   --broker URL     publish events to MQTT (mqtt://host:1883) with thermalpublish
#   --camera NAME    the camera's name in the MQTT topics (default thermal)
#   --out display|serve|none   the annotated video: a window (default), an RTSP stream
#                    for a VMS, or nowhere (events, JSON and MQTT only)
#   --port P --address A --mount /PATH --codec mjpeg|h264
#                    RTSP output (--out serve; default 8554, 0.0.0.0, /thermal, mjpeg)
#   --latency MS --tcp --in-codec auto|h264|h265|mjpeg   RTSP input, as live.sh
#   --device D --model M.onnx --fp32 --size WxH
#   --selftest       no camera: a generated recording (rtsp: a local RTSP server streaming
#                    one) replaces the camera, a zone covering the frame is watched, and
#                    the JSON must hold tracks and `enter` events (rtsp: frames); with
#                    --out serve an rtspsrc client must receive the annotated frames; a
#                    radiometric preset's detections must have plausible temperatures.
set -euo pipefail
source "$(dirname "$0")/common.sh"

device=/dev/video0 fp32=0 json="" selftest=0 latency=200 tcp=0 in_codec=auto
zones="" loiter="" broker="" camera=thermal out=display size=640x512
port=8554 address=0.0.0.0 mount=/thermal codec=mjpeg
while [ $# -gt 0 ]; do
  case $1 in
    --zones) zones=$2; shift 2 ;;
    --loiter) loiter=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    --broker) broker=$2; shift 2 ;;
    --camera) camera=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --address) address=$2; shift 2 ;;
    --mount) mount=$2; shift 2 ;;
    --codec) codec=$2; shift 2 ;;
    --latency) latency=$2; shift 2 ;;
    --tcp) tcp=1; shift ;;
    --in-codec) in_codec=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --fp32) fp32=1; shift ;;
    --size) size=$2; shift 2 ;;
    --selftest) selftest=1; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || die "no SOURCE (a camera preset, rtsp URL or a recording FILE); --help"
case $out in display|serve|none) ;; *) die "--out $out: display, serve or none" ;; esac

# The source, what to cut for display (the P2 Pro's raw half) and the frame size W x H.
CROP=""
if [ "$1" = rtsp ]; then
  if [ -z "${2:-}" ]; then
    [ "$selftest" = 1 ] || die "rtsp needs the camera's URL (rtsp://user:password@host:554/path)"
    selftest_rtsp_camera mjpeg
    set -- rtsp "$RTSP_URL"
  fi
  src=$(rtsp_source "$2" "$latency" "$tcp" "$in_codec") || exit 1
  LAYOUT="" name=rtsp W=640 H=512
elif [ -f "$1" ]; then
  w=${size%x*} h=${size#*x}
  case $1 in
    *.gray8) fmt=gray8 ;;
    *) fmt=gray16-le ;;
  esac
  src="filesrc location=\"$1\" ! rawvideoparse format=$fmt width=$w height=$h framerate=30/1"
  LAYOUT="" name=$(basename "$1") W=$w H=$h
else
  camera_preset "$@"
  src=$(camera_source "$1" "$device" "$selftest")
  name=$1
  [ -n "$CROP" ] && H=$((H / 2))
fi

if [ "$selftest" = 1 ]; then
  dir=$REPO/out/selftest
  mkdir -p "$dir"
  json=${json:-$dir/camera-$name-$out.jsonl}
  rm -f "$json"
  if [ -z "$zones" ]; then
    # A zone over the whole frame: every confirmed track enters it.
    zones=$dir/camera-zones.json
    echo '{"zones":[{"name":"frame","polygon":[[0,0],[4096,0],[4096,4096],[0,4096]]}]}' > "$zones"
  fi
fi

need_element thermaldetect thermaltrack
detect="$LAYOUT output-agc=true draw=false post-messages=false"
# A radiometric selftest keeps thermaldetect's JSON lines too, for their temperatures.
detect_json=""
if [ "$selftest" = 1 ] && radiometric; then
  detect_json=$dir/camera-$name-$out-detections.jsonl
  rm -f "$detect_json"
  detect="$detect json-location=\"$detect_json\""
fi
track="draw=true draw-zones=true"
[ -n "$zones" ] && track="$track zones=\"$zones\""
[ -n "$loiter" ] && track="$track loiter-seconds=$loiter"
[ -n "$json" ] && track="$track json-location=\"$json\""
chain="$src ! $(detect_chain $fp32 $detect) ! thermaltrack $track"
if [ -n "$broker" ]; then
  need_element thermalpublish
  chain="$chain ! thermalpublish broker=\"$broker\" camera=\"$camera\""
fi

# A selftest's JSON: a line per frame through the chain; from a recording (every frame
# detected on) tracks that enter the zone. An RTSP source is live: frames the detector
# cannot keep up with are dropped, and how many depends on the machine's load.
check_tracks() {
  [ -s "$json" ] || die "selftest: no frame reached thermaltrack ($json is empty)"
  [ "$name" = rtsp ] && return
  grep -q '"tracks":\[{' "$json" || die "selftest: no tracks in $json"
  grep -q '"type":"enter"' "$json" || die "selftest: no enter events in $json"
}

# launch PIPELINE: gst-launch-1.0 -e, an RTSP camera through launch_rtsp_client.
launch() {
  if [ "$name" = rtsp ]; then
    launch_rtsp_client eval gst-launch-1.0 -e "$1"
  else
    eval gst-launch-1.0 -e $1
  fi
}

case $out in
  display)
    if [ "$selftest" = 1 ]; then sink=fakesink; else sink="$CROP videoconvert ! autovideosink sync=false"; fi
    pipeline="$chain ! $sink"
    echo "gst-launch-1.0 $pipeline" >&2
    launch "$pipeline" ;;
  none)
    pipeline="$chain ! fakesink"
    echo "gst-launch-1.0 $pipeline" >&2
    launch "$pipeline" ;;
  serve)
    pay=$(rtsp_payloader "$codec") || exit 1
    media="$chain ! $CROP $pay"
    echo "serving: $media" >&2
    if [ "$selftest" != 1 ]; then
      exec "$(serve_binary)" --address "$address" --port "$port" --mount "$mount" "$media"
    fi
    # A VMS's view: an rtspsrc client receives the annotated frames, decoded.
    start_server "$media" --address 127.0.0.1 --port 0 --mount "$mount"
    frames=$dir/camera-$name-served.gray8
    rm -f "$frames"
    launch_rtsp_client timeout 300 gst-launch-1.0 -e rtspsrc location="$RTSP_URL" protocols=tcp \
      ! application/x-rtp,media=video ! decodebin ! videoconvert \
      ! video/x-raw,format=GRAY8,width=$W,height=$H ! filesink location="$frames" \
      || die "selftest: the rtspsrc client failed on $RTSP_URL"
    got=$(( $(stat -c %s "$frames") / (W * H) ))
    [ "$got" -gt 0 ] || die "selftest: the client received no frames from $RTSP_URL"
    echo "selftest: a client received $got annotated frames over RTSP ($codec)" ;;
esac

if [ "$selftest" = 1 ]; then
  check_tracks
  if [ -n "$detect_json" ]; then check_temperatures "$detect_json"; fi
  echo "selftest camera $name ($out): ok, $(wc -l < "$json") frames tracked," \
    "$(grep -o '"type":"enter"' "$json" | wc -l) enter events"
fi
