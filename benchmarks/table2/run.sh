#!/usr/bin/env bash
# The synthetic Table II experiment and the shipped default model, end to end on a 2-core CPU
# (about 4 hours). Usage: bash benchmarks/table2/run.sh [WORK_DIR]   (default: work/table2)
# Re-running resumes: the corpus, the store and the training runs all continue where they stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${1:-work/table2}
MM=.venv/bin/mmface4d
PY=.venv/bin/python
OUT=benchmarks/table2
export OMP_NUM_THREADS=1   # one thread per training process; three run side by side

$MM synth corpus -o "$WORK/corpus" --subjects 32 --sentences 20 --no-head-motion --workers 2
[ -f "$WORK/store/splits.json" ] || {
  $MM data pack "$WORK/corpus" -o "$WORK/store" --workers 2
  $MM data split "$WORK/store" --test-fraction 0.125 --val-fraction 0.0625
}
train() {  # name, preset (configs/train/), extra arguments
  local name=$1 config=$2; shift 2
  $MM train --data "$WORK/store" -o "$WORK/runs/$name" --config "$config" \
    --set train.progress=false "$@" > "$WORK/$name.log" 2>&1
}
mkdir -p "$WORK/runs"
train ours table2_ours --model ours &
train wo_composite table2_ours --model ours --ablation composite &
train wo_regional table2_ours --model ours --ablation regional &
wait
# the baselines, same data, augmentation, windows, batch and step budget (~2.5 h side by side)
train faceformer table2_faceformer --model faceformer &
train meshtalk table2_meshtalk --model meshtalk &
wait

RUNS=("$WORK/runs/ours" "$WORK/runs/wo_composite" "$WORK/runs/wo_regional"
      "$WORK/runs/faceformer" "$WORK/runs/meshtalk")
$MM evaluate "${RUNS[@]}" --data "$WORK/store" -o "$OUT/report.json" --table "$OUT/table.md"
$PY "$OUT/plot_curves.py" "${RUNS[@]}" -o "$OUT/learning_curves.png"
for run in "${RUNS[@]}"; do
  mkdir -p "$OUT/runs/$(basename "$run")"
  cp "$run/config.json" "$run/log.csv" "$OUT/runs/$(basename "$run")/"
done
# The shipped model: ours, continued for 1,000 steps on the same sentences with silence before
# and after each one (face at rest), so that it keeps the mouth still in the pauses of real speech.
$MM synth corpus -o "$WORK/corpus_pauses" --subjects 32 --sentences 20 --no-head-motion \
  --pad-silence --workers 2
[ -f "$WORK/store_pauses/splits.json" ] || {
  $MM data pack "$WORK/corpus_pauses" -o "$WORK/store_pauses" --workers 2
  $MM data split "$WORK/store_pauses" --test-fraction 0.125 --val-fraction 0.0625
}
[ -d "$WORK/runs/shipped" ] || cp -r "$WORK/runs/ours" "$WORK/runs/shipped"
OMP_NUM_THREADS=2 $MM train --data "$WORK/store_pauses" -o "$WORK/runs/shipped" \
  --config table2_ours --set optim.steps=3000 --set train.progress=false > "$WORK/shipped.log" 2>&1
# ... then 1,000 more with each subject's neutral face as its template (as at inference)
$PY "$OUT/neutral_templates.py" "$WORK/corpus_pauses" "$WORK/store_pauses"
OMP_NUM_THREADS=2 $MM train --data "$WORK/store_pauses" -o "$WORK/runs/shipped" \
  --config table2_ours --set optim.steps=4000 --set train.progress=false \
  >> "$WORK/shipped.log" 2>&1
mkdir -p "$OUT/runs/shipped" && cp "$WORK/runs/shipped/log.csv" "$OUT/runs/shipped/"
$PY "$OUT/package_default.py" "$WORK/runs/shipped" "$WORK/corpus_pauses" "$WORK/store_pauses" \
  -o src/mmface4d/assets/default_animator.pt
$PY benchmarks/lipsync_real_speech.py --corpus "$WORK/corpus_pauses"
