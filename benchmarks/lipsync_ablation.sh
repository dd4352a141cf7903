#!/usr/bin/env bash
# The lip-sync experiments (docs/LIPSYNC.md) on a 2-core CPU: the Table II corpus with pauses
# around each sentence, three runs at the Table II width and budget (configs/train/lipsync_*),
# their lip-sync metrics on the unseen test speakers, and real speech against the shipped model.
# Usage: bash benchmarks/lipsync_ablation.sh [WORK_DIR]   (default: work/lipsync; resumes)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-work/lipsync}
MM=.venv/bin/mmface4d
PY=.venv/bin/python
export OMP_NUM_THREADS=1   # one thread per training process; two run side by side

$MM synth corpus -o "$WORK/corpus" --subjects 32 --sentences 20 --no-head-motion --pad-silence \
  --workers 2
[ -f "$WORK/store/splits.json" ] || {
  $MM data pack "$WORK/corpus" -o "$WORK/store" --workers 2
  $MM data split "$WORK/store" --test-fraction 0.125 --val-fraction 0.0625
}
train() {  # name (a preset of configs/train/)
  $MM train --data "$WORK/store" -o "$WORK/runs/$1" --config "$1" --set train.progress=false \
    > "$WORK/$1.log" 2>&1
}
mkdir -p "$WORK/runs"
train lipsync_phonetic &
train lipsync_mel &
wait
train lipsync_phonetic_eq8
RUNS=(lipsync_phonetic lipsync_mel lipsync_phonetic_eq8)
$MM evaluate "${RUNS[@]/#/$WORK/runs/}" --data "$WORK/store" --phones "$WORK/corpus" \
  -o benchmarks/results/lipsync_test_split.json --table benchmarks/results/lipsync_test_split.md
for run in "${RUNS[@]}"; do
  $PY -c "from mmface4d.animate.packaging import package_animator as p; \
p('$WORK/runs/$run', '$WORK/$run.pt', '$WORK/corpus', '$WORK/store', 4)"
done
git show HEAD:src/mmface4d/assets/default_animator.pt > "$WORK/shipped.pt"
$PY benchmarks/bench_lipsync.py --model shipped="$WORK/shipped.pt" \
  --model mel_lip="$WORK/lipsync_mel.pt" --model phonetic_eq8="$WORK/lipsync_phonetic_eq8.pt" \
  --model phonetic_lip="$WORK/lipsync_phonetic.pt"
