#!/usr/bin/env bash
# The embedded default's recipe on a lent GPU machine (one H100/H200, 16 CPU cores), sized for
# ~9 minutes of device time. Runs from the repository root without installing the package; writes
# the export (split into 15 MB parts), logs and timings to $OUT.
#   1. vae    warm-started from the shipped default, on the GPU (live rendering, 14 data workers)
#   2. data   the latent dataset, built on the machine's cores with that VAE (`lpm-npc data build`)
#   3. judge  the shipped judge is adopted unchanged (recorded in recipe.json as judge_adopted_from)
#   4. base -> causal -> ode -> rollout -> refiner from the latent dataset, bf16 autocast
# Every budget is an environment variable (minutes); the defaults sum to ~8.5 minutes of stages.
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-runs/gpu-out}
RUN=${RUN:-runs/gpu}
DATA=${DATA:-runs/gpu-data}
BATCH=${BATCH:-32}
mkdir -p "$OUT" "$RUN"
lpm() { python3 -m lpm_npc.cli "$@"; }
# The shipped default's decoder is widened (its config.json overrides); every stage builds it so.
WIDE=(--model-override "vae_decoder_channels=${DECODER_CHANNELS:-[16,48,64,128]}")
stamp() { echo "$1 $(date -u +%H:%M:%S)" | tee -a "$OUT/timings.txt"; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())" | tee -a "$OUT/device.txt"

stamp vae
lpm train --stage vae --resume --out "$RUN" "${WIDE[@]}" --device cuda --amp --workers 14 --no-progress \
  --init-from samples/checkpoints/tiny/model.safetensors --minutes "${VAE_MIN:-1.5}" \
  >>"$OUT/train.log" 2>&1
stamp data
lpm data build --out "$DATA" --vae "$RUN/vae/final.safetensors" --characters "${CHARACTERS:-512}" \
  --conversations-per-character 2 --seconds-per-conversation 12 --workers 15 --no-progress --json \
  >>"$OUT/data.json" 2>>"$OUT/train.log"
stamp judge
python3 -m lpm_npc.train.adopt --from samples/checkpoints/tiny --run "$RUN" | tee -a "$OUT/train.log"
for spec in "base:${BASE_MIN:-3}" "causal:${CAUSAL_MIN:-1}" "ode:${ODE_MIN:-0.8}" \
  "rollout:${ROLLOUT_MIN:-0.8}" "refiner:${REFINER_MIN:-0.4}"; do
  stage=${spec%%:*}
  stamp "$stage"
  lpm train --stage "$stage" --resume --data "$DATA" --out "$RUN" "${WIDE[@]}" --device cuda --amp \
    --batch-size "$BATCH" --workers 8 --minutes "${spec#*:}" --no-progress --json \
    >>"$OUT/train.json" 2>>"$OUT/train.log"
done
stamp export
lpm train --export-only --out "$RUN" "${WIDE[@]}" --json >>"$OUT/train.json" 2>>"$OUT/train.log"
python3 -m lpm_npc.train.adopt --from samples/checkpoints/tiny --run "$RUN" \
  --recipe "$RUN/export/recipe.json" | tee -a "$OUT/train.log"
stamp done
ls -la "$RUN/export" | tee -a "$OUT/device.txt"
tar -C "$RUN/export" -cf - . | split -b 15M - "$OUT/export.tar.part-"
