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
# thermaldetect properties) for a camera, and CROP (what to cut for display).
camera_preset() {
  LAYOUT="" CROP=""
  case $1 in
    lepton) FORMAT=GRAY16_LE W=160 H=120 RATE=9/1 ;;
    boson) FORMAT=GRAY16_LE W=640 H=512 RATE=30/1 ;;
    boson-agc) FORMAT=I420 W=640 H=512 RATE=30/1 ;;
    p2pro) FORMAT=YUY2 W=256 H=384 RATE=25/1 LAYOUT="input-layout=thermal-bottom-half" CROP="videocrop bottom=192 !" ;;
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

# check_json FILE FRAMES: a selftest's JSON lines hold every frame and some detections.
check_json() {
  local lines
  lines=$(wc -l < "$1")
  [ "$lines" = "$2" ] || die "selftest: $lines JSON lines for $2 frames in $1"
  grep -q '"detections":\[{' "$1" || die "selftest: no detections in $1"
}
