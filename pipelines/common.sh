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
