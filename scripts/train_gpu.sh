#!/usr/bin/env bash
# How the embedded default was trained on a lent GPU machine (one H100, 16 CPU cores for the
# procedural-world data workers). Runs from the repository root without installing the package;
# writes the exported checkpoint (split into 15 MB parts) and the log to $OUT.
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-runs/gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())" | tee -a "$OUT/device.txt"
timeout "${TRAIN_TIMEOUT:-400}" python3 -m lpm_npc.cli train --all --preset tiny --out runs/gpu \
  --device cuda --minutes-scale "${MINUTES_SCALE:-0.022}" --workers "${WORKERS:-14}" \
  --no-progress --json >"$OUT/train.json" 2>"$OUT/train.log"
echo "train exit $?" | tee -a "$OUT/device.txt"
if [ ! -f runs/gpu/export/model.safetensors ]; then
  python3 -m lpm_npc.cli train --export-only --preset tiny --out runs/gpu --json \
    >>"$OUT/train.json" 2>>"$OUT/train.log"
fi
ls -la runs/gpu/export | tee -a "$OUT/device.txt"
tar -C runs/gpu/export -cf - . | split -b 15M - "$OUT/export.tar.part-"
