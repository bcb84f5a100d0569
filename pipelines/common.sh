# Shared by the pipeline scripts (sourced, not run).
#
# Finds the repository, the zsq tool, the plugin and ONNX Runtime (built and installed by
# `make build`), and makes the generated recordings --selftest swaps cameras for.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ZSQ=${ZSQ:-$REPO/target/release/zsq}
MODEL=${MODEL:-$REPO/models/det_thermal_ft.onnx}
export GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-$REPO/target/release}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$REPO/.ortlib/onnxruntime/capi/libonnxruntime.so.1.31.1}

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

need_element() {
  for e in "$@"; do
    gst-inspect-1.0 "$e" >/dev/null 2>&1 || die "GStreamer element '$e' not found (GST_PLUGIN_PATH=$GST_PLUGIN_PATH; run 'make build')"
  done
}

# selftest_recording FORMAT WxH FRAMES: generates (once) a recording in the way a camera
# delivers it and prints its path. FORMAT: gray16le | gray8 | yuy2-p2pro | png16.
selftest_recording() {
  local format=$1 size=$2 frames=$3
  local dir=$REPO/out/selftest/$format-$size-$frames
  local file
  case $format in
    gray16le) file=recording.gray16le ;;
    gray8) file=recording.gray8 ;;
    yuy2-p2pro) file=recording.yuy2 ;;
    png16) file=recording ;;
    *) die "no selftest recording format $format" ;;
  esac
  if [ ! -e "$dir/$file" ] || [ ! -f "$dir/recording.json" ]; then
    "$ZSQ" synth --out "$dir" --scenes 0 --recording "$frames" --seed 11 --size "$size" \
      --recording-format "$format" >&2 || die "zsq synth failed"
  fi
  echo "$dir/$file"
}

# The detection part of a pipeline: zero-shot int8 calibration in front of the detector,
# or the fp32 model alone (--fp32). Extra thermaldetect properties follow as arguments.
detect_chain() {
  local fp32=$1; shift
  if [ "$fp32" = 1 ]; then
    echo "thermaldetect model=\"$MODEL\" $*"
  else
    echo "zsqcalibrate model=\"$MODEL\" ${ZSQCALIBRATE_PROPS:-} ! thermaldetect $*"
  fi
}

# camera_preset PRESET [FORMAT WxH]: sets FORMAT, W, H, RATE, CAPS and LAYOUT (extra
# thermaldetect properties: the frame layout and the radiometry of the camera's counts)
# for a camera, and CROP (what to cut for display). Lepton 3.5 and Boson+ send
# centikelvin in TLinear mode (as our GRAY16_LE recordings do), the P2 Pro 1/64 K.
camera_preset() {
  LAYOUT="" CROP=""
  case $1 in
    lepton) FORMAT=GRAY16_LE W=160 H=120 RATE=9/1 LAYOUT="radiometry=centikelvin" ;;
    boson) FORMAT=GRAY16_LE W=640 H=512 RATE=30/1 LAYOUT="radiometry=centikelvin" ;;
    boson-agc) FORMAT=I420 W=640 H=512 RATE=30/1 ;;
    p2pro) FORMAT=YUY2 W=256 H=384 RATE=25/1 LAYOUT="input-layout=thermal-bottom-half radiometry=p2pro" CROP="videocrop bottom=192 !" ;;
    generic) FORMAT=${2:?generic needs FORMAT WxH}; W=${3%x*}; H=${3#*x}; RATE=0/1 ;;
    *) die "unknown camera preset '$1' (lepton, boson, boson-agc, p2pro, generic FORMAT WxH)" ;;
  esac
  CAPS="video/x-raw,format=$FORMAT,width=$W,height=$H"
}

# camera_source PRESET DEVICE SELFTEST: the source part of a pipeline for a camera
# preset (after camera_preset); with SELFTEST=1 a generated recording in the camera's
# format (30 frames) replaces the camera.
camera_source() {
  local preset=$1 device=$2 selftest=$3 rec
  if [ "$selftest" != 1 ]; then
    need_element v4l2src
    echo "v4l2src device=$device ! $CAPS"
    return
  fi
  case $preset in
    lepton|boson) rec=$(selftest_recording gray16le "${W}x$H" 30)
      echo "filesrc location=$rec ! rawvideoparse format=gray16-le width=$W height=$H framerate=30/1" ;;
    boson-agc) rec=$(selftest_recording gray8 "${W}x$H" 30)
      echo "filesrc location=$rec ! rawvideoparse format=gray8 width=$W height=$H framerate=30/1 ! videoconvert ! $CAPS" ;;
    p2pro) rec=$(selftest_recording yuy2-p2pro "${W}x$((H / 2))" 30)
      echo "filesrc location=$rec ! rawvideoparse format=yuy2 width=$W height=$H framerate=30/1" ;;
    generic) rec=$(selftest_recording gray16le "${W}x$H" 30)
      echo "filesrc location=$rec ! rawvideoparse format=gray16-le width=$W height=$H framerate=30/1 ! videoconvert ! $CAPS" ;;
  esac
}

# radiometric: whether the camera preset (LAYOUT) makes thermaldetect read temperatures.
radiometric() {
  case " ${LAYOUT:-} " in
    *" radiometry="*) return 0 ;;
    *) return 1 ;;
  esac
}

# check_json FILE FRAMES: a selftest's JSON lines hold every frame and some detections,
# with temperatures for a radiometric preset.
check_json() {
  local lines
  lines=$(wc -l < "$1")
  [ "$lines" = "$2" ] || die "selftest: $lines JSON lines for $2 frames in $1"
  grep -q '"detections":\[{' "$1" || die "selftest: no detections in $1"
  if radiometric; then check_temperatures "$1"; fi
}

# check_temperatures FILE: thermaldetect's JSON lines give each detection a temperature
# in °C: every box's hottest pixel between -50 and 150 °C, and some person's at a
# clothed body's surface temperature, 20-45 °C. A wrong law is off by 100 K or more
# (P2 Pro counts in 1/64 K read as centikelvin: about -75 °C; the other way round
# about 210 °C), so this checks the preset's radiometry.
check_temperatures() {
  grep -q '"temperature_c":{' "$1" || die "selftest: no temperatures in $1"
  grep -o '"label":"[^"]*","class_id":[0-9]*,"confidence":[^,]*,"box":\[[^]]*\],"temperature_c":{"max":[-0-9.e]*' "$1" \
    | sed 's/^"label":"\([^"]*\)".*"max":\(.*\)$/\2 \1/' \
    | awk '
        { n++ }
        $1 < -50 || $1 > 150 { if (++bad <= 5) shown = shown " " $2 "=" $1 }
        $2 == "person" && $1 >= 20 && $1 <= 45 { people++ }
        END {
          if (bad) { print bad " of " n " temperatures implausible (°C):" shown; exit 1 }
          if (!people) { print "no person at 20-45 °C among " n " detections"; exit 1 }
          print "selftest: temperatures in °C, " people " person boxes at 20-45 °C of " n " detections"
        }' \
    || die "selftest: temperatures in $1 (see above)"
}

# --- RTSP (live.sh rtsp, camera.sh, serve.sh) ---

SERVE=${SERVE:-$REPO/target/release/examples/serve}

# serve_binary: the RTSP server (plugins/gst-thermalzsq/examples/serve.rs; GStreamer has
# no server element for gst-launch-1.0), built on first use.
serve_binary() {
  if [ ! -x "$SERVE" ]; then
    echo "building the RTSP server: cargo build --release -p gst-plugin-thermalzsq --example serve" >&2
    (cd "$REPO" && cargo build --release -q -p gst-plugin-thermalzsq --example serve) >&2 \
      || die "cannot build $SERVE (apt install libgstrtspserver-1.0-dev)"
  fi
  echo "$SERVE"
}

# rtsp_source URL LATENCY_MS TCP CODEC: an RTSP camera's video stream decoded to I420,
# whose luma thermaldetect runs on. CODEC: auto (decodebin picks depayloader and
# decoder) or h264 | h265 | mjpeg (only that stream is taken). A leaky queue in front
# of the detector drops the frames it cannot keep up with, so latency stays bounded.
rtsp_source() {
  local url=$1 latency=$2 tcp=$3 codec=$4 protocols="" depay
  need_element rtspsrc decodebin
  [ "$tcp" = 1 ] && protocols="protocols=tcp"
  case $codec in
    auto) depay="application/x-rtp,media=video" ;;
    h264) depay="application/x-rtp,media=video,encoding-name=H264 ! rtph264depay ! h264parse" ;;
    h265) depay="application/x-rtp,media=video,encoding-name=H265 ! rtph265depay ! h265parse" ;;
    mjpeg) depay="application/x-rtp,media=video,encoding-name=JPEG ! rtpjpegdepay" ;;
    *) die "unknown codec '$codec' (auto, h264, h265, mjpeg)" ;;
  esac
  echo "rtspsrc location=\"$url\" latency=$latency $protocols ! $depay ! decodebin" \
    "! queue leaky=downstream max-size-buffers=2 max-size-bytes=0 max-size-time=0" \
    "! videoconvert ! video/x-raw,format=I420"
}

# h264_encoder: an H.264 encoder Debian ships without extra licences (openh264enc from
# gstreamer1.0-plugins-bad), else x264enc (-ugly, GPL); H264ENC overrides (a Jetson's
# nvv4l2h264enc). Keyframes every second, so a client joining a shared stream starts
# within one; 2 Mbit/s (openh264enc's default, 128 kbit/s, blurs people into blocks).
h264_encoder() {
  if [ -n "${H264ENC:-}" ]; then
    echo "$H264ENC"
  elif gst-inspect-1.0 openh264enc >/dev/null 2>&1; then
    echo "openh264enc gop-size=30 complexity=low bitrate=2000000"
  elif gst-inspect-1.0 x264enc >/dev/null 2>&1; then
    echo "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30"
  else
    die "no H.264 encoder (apt install gstreamer1.0-plugins-bad for openh264enc), or use --codec mjpeg"
  fi
}

# rtsp_payloader CODEC: encodes video for RTSP clients, ending in the payloader pay0 the
# server streams. CODEC: mjpeg (jpegenc, -good) | h264.
rtsp_payloader() {
  case $1 in
    mjpeg) need_element jpegenc rtpjpegpay
      echo "videoconvert ! video/x-raw,format=I420 ! jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26" ;;
    h264) need_element h264parse rtph264pay
      local enc
      enc=$(h264_encoder) || exit 1
      echo "videoconvert ! video/x-raw,format=I420 ! $enc ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1" ;;
    *) die "unknown codec '$1' (mjpeg, h264)" ;;
  esac
}

# launch_rtsp_client COMMAND...: runs COMMAND, a `gst-launch-1.0 -e` that reads an RTSP
# server, its output on stderr. A media that ends (a recording) makes the server send
# EOS and close the session; when it closes the connection while the client, already at
# EOS, still sends its PAUSE or TEARDOWN, gst-launch fails on that write. Every frame
# arrived by then: an error after EOS is the end of the session, not a failure.
launch_rtsp_client() {
  local log status=0
  log=$(mktemp)
  "$@" 2>&1 | tee "$log" >&2 || status=$?
  if [ "$status" != 0 ] && grep -q '^Got EOS from element' "$log"; then
    echo "the server closed the connection after EOS (teardown only)" >&2
    status=0
  fi
  rm -f "$log"
  return "$status"
}

# start_server LAUNCH [SERVE ARGS...]: runs the RTSP server on LAUNCH in the background,
# stopped when the script exits (with the servers started before); sets SERVER_PID and
# RTSP_URL (the URL it printed).
start_server() {
  local launch=$1 urlfile server
  shift
  server=$(serve_binary) || exit 1
  urlfile=$(mktemp)
  "$server" "$@" "$launch" > "$urlfile" &
  SERVER_PID=$!
  SERVER_PIDS="${SERVER_PIDS:-} $SERVER_PID"
  # shellcheck disable=SC2064 # the values now, not at exit
  trap "kill $SERVER_PIDS 2>/dev/null || true" EXIT
  for _ in $(seq 300); do
    [ -s "$urlfile" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "the RTSP server exited (see above)"
    sleep 0.1
  done
  RTSP_URL=$(head -1 "$urlfile")
  rm -f "$urlfile"
  [ -n "$RTSP_URL" ] || die "the RTSP server printed no URL"
}

# selftest_rtsp_camera CODEC: a local RTSP "camera" on 127.0.0.1 streaming a generated
# 640x512 8-bit AGC recording (30 frames at 30 fps) in CODEC; sets RTSP_URL.
selftest_rtsp_camera() {
  local rec pay
  rec=$(selftest_recording gray8 640x512 30)
  pay=$(rtsp_payloader "$1") || exit 1
  start_server "filesrc location=\"$rec\" ! rawvideoparse format=gray8 width=640 height=512 framerate=30/1 ! $pay" \
    --address 127.0.0.1 --port 0 --mount /selftest
}
