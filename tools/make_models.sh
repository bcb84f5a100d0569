#!/usr/bin/env bash
# Rebuild the bundled demo detectors from scratch (data, training, export, evaluation): the
# paper's three (RGB, RGB->thermal fine-tuned, thermal from scratch, all at 320x320) and the
# demo's detector (the fine-tuned one trained on at the camera's 640x512). CPU by default;
# about 4 h on a shared 2-core box. Run from the repository root:
#
#   ZSQ=target/release/zsq ORTLIB=.ortlib WORK=/tmp/zsq-train tools/make_models.sh
#
# Iteration counts are fixed (the ones the bundled models got from their --minutes budget,
# see models/README.md), so a rerun replays the same schedule. Steps that already have their
# output are skipped, and an interrupted training run continues from its last checkpoint
# (WORK/runs/NAME/last.pt, rewritten every SAVE_EVERY iterations): rerun the same command.
#
# The retraining of issue 15 (a GPU machine; tools/README.md "How to retrain on a GPU machine"):
#   RADIOMETRY=lwir DEVICE=auto THREADS=8 ITERS_RGB=20000 ITERS_SCRATCH=20000 ITERS_FT=10000 \
#     SCENES_TRAIN=20000 WORK=/data/zsq-lwir tools/make_models.sh
set -euo pipefail
ZSQ=${ZSQ:-target/release/zsq}
ORTLIB=${ORTLIB:-.ortlib}
WORK=${WORK:-/tmp/zsq-train}
ITERS_RGB=${ITERS_RGB:-2300}
ITERS_SCRATCH=${ITERS_SCRATCH:-2000}
ITERS_FT=${ITERS_FT:-1000}
ITERS_FT640=${ITERS_FT640:-1500}
SCENES_TRAIN=${SCENES_TRAIN:-4000}
SCENES_MON=${SCENES_MON:-150}
SCENES_TEST=${SCENES_TEST:-500}
RADIOMETRY=${RADIOMETRY:-legacy}  # zsq synth --radiometry: legacy (the bundled models) or lwir
AGC=${AGC:-percentile}            # zsq synth --agc of the 8-bit views the thermal models train on
DEVICE=${DEVICE:-cpu}             # train.py --device: cpu, cuda or auto
THREADS=${THREADS:-1}             # torch threads (1 on the shared 2-core box; more on a GPU machine)
AMP=${AMP:-}                      # AMP=1: train.py --amp (bfloat16 autocast on CUDA)
SAVE_EVERY=${SAVE_EVERY:-250}     # train.py --save-every
MAX_MINUTES=${MAX_MINUTES:-}      # train.py --max-minutes: stop each run resumably after M minutes
VAL_EVERY=${VAL_EVERY:-500}       # train.py --val-every
PY="nice -n 10 python3"
mkdir -p "$WORK" models

# the data's generator flags are part of WORK: refuse to mix data sets
flags="--radiometry $RADIOMETRY --agc $AGC --scenes $SCENES_TRAIN/$SCENES_MON/$SCENES_TEST"
if [ -f "$WORK/synth_flags" ] && [ "$(cat "$WORK/synth_flags")" != "$flags" ]; then
  echo "$WORK holds data made with $(cat "$WORK/synth_flags"), not $flags: use another WORK" >&2
  exit 1
fi
echo "$flags" > "$WORK/synth_flags"
synth() {  # dir scenes seed
  [ -f "$WORK/$1/annotations.json" ] ||
    "$ZSQ" synth --out "$WORK/$1" --scenes "$2" --seed "$3" --radiometry "$RADIOMETRY" --agc "$AGC"
}
# data: train seed 1 (4000 scenes), monitoring seed 3 (150), held-out test seed 2 (500)
synth train "$SCENES_TRAIN" 1
synth mon "$SCENES_MON" 3
synth test "$SCENES_TEST" 2

train() {  # name modality iters [extra args]
  local name=$1 modality=$2 iters=$3; shift 3
  # finished (also runs from before resumable checkpoints, whose last.pt cannot resume)
  [ -f "$WORK/runs/$name/last.pt" ] && grep -q '"done": true' "$WORK/runs/$name/log.jsonl" && return
  # otherwise train.py continues from WORK/runs/NAME/last.pt when there is one (--resume auto)
  $PY tools/train.py --data "$WORK/train" --val "$WORK/mon" --modality "$modality" \
    --iters "$iters" --seed 0 --threads "$THREADS" --device "$DEVICE" ${AMP:+--amp} \
    --save-every "$SAVE_EVERY" --val-every "$VAL_EVERY" ${MAX_MINUTES:+--max-minutes "$MAX_MINUTES"} --out "$WORK/runs/$name" "$@"
}
train rgb rgb "$ITERS_RGB"
train thermal_scratch thermal "$ITERS_SCRATCH"
train thermal_ft thermal "$ITERS_FT" --init "$WORK/runs/rgb/last.pt" --lr 1e-3 --warmup 100
# the demo's detector: the fine-tuned model trained on at 640x512 (frames at their own size)
train thermal_ft640 thermal "$ITERS_FT640" --init "$WORK/runs/thermal_ft/last.pt" --imgsz 640 --rect \
  --lr 5e-4 --warmup 50
# curves (runs from before curves.csv have none)
python3 tools/curves.py "$WORK/runs/rgb" "$WORK/runs/thermal_scratch" "$WORK/runs/thermal_ft" "$WORK/runs/thermal_ft640" --table \
  > "$WORK/curves.md" || echo "no curves.csv in every run: $WORK/curves.md incomplete" >&2
if python3 -c "import matplotlib" 2>/dev/null; then
  python3 tools/curves.py "$WORK/runs/rgb" "$WORK/runs/thermal_scratch" "$WORK/runs/thermal_ft" "$WORK/runs/thermal_ft640" \
    --png "$WORK/curves.png" --title "zsq synth --radiometry $RADIOMETRY --agc $AGC" >/dev/null ||
    echo "no figure: $WORK/curves.png" >&2
fi

export_eval() {  # name modality out description
  PYTHONPATH="$ORTLIB" $PY tools/export.py --ckpt "$WORK/runs/$1/last.pt" --out "models/$3" \
    --modality "$2" --description "$4"
  for m in thermal rgb; do
    PYTHONPATH="$ORTLIB" $PY tools/evaluate.py --model "models/$3" --data "$WORK/test" --modality $m \
      --json "$WORK/eval_${1}_on_${m}.json"
  done
}
export_eval rgb rgb det_rgb.onnx \
  "thermalzsq demo: ZsqDet trained on zsq synth RGB renders (the RGB twin; shows the domain gap on thermal)"
export_eval thermal_ft thermal det_thermal_ft.onnx \
  "thermalzsq demo (main): ZsqDet RGB-pretrained, fine-tuned on zsq synth thermal (8-bit AGC), person/car/bicycle"
export_eval thermal_scratch thermal det_thermal_scratch.onnx \
  "thermalzsq demo: ZsqDet trained from scratch on zsq synth thermal (8-bit AGC), person/car/bicycle"
export_eval thermal_ft640 thermal det_thermal_ft640.onnx \
  "thermalzsq demo detector: ZsqDet RGB-pretrained, fine-tuned on zsq synth thermal (8-bit AGC) at 320x320, then at 640x512; run it with thermaldetect input-size=640x512"
# ... and at the size it was trained for (thermaldetect's pre-processing on the 16-bit frames)
"$ZSQ" eval --coco "$WORK/test/annotations.json" --model models/det_thermal_ft640.onnx \
  --images "$WORK/test/thermal16" --input-size 640x512 --json > "$WORK/eval_thermal_ft640_640x512.json"
