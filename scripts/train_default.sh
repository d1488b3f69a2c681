#!/usr/bin/env bash
# The CPU recipe of the embedded default, resumable end to end: run it again after any interruption
# (every step checkpoints or skips what is finished). Stages and budgets: config.TRAIN_PRESETS.
#   RUN      run directory           (default runs/tiny)
#   DATA     latent dataset          (default runs/data/tiny)
#   VAE_RUN  a finished vae stage to reuse instead of training one here (optional)
#   JUDGE_RUN a finished judge stage to reuse instead of training one here (optional)
#   MODEL_OVERRIDE one --model-override for every stage, e.g. 'vae_decoder_channels=[16,48,64,128]'
#            (needed with a VAE_RUN whose decoder was widened)
set -euo pipefail
RUN=${RUN:-runs/tiny}
DATA=${DATA:-runs/data/tiny}
mkdir -p "$RUN"
OVERRIDE=()
if [ -n "${MODEL_OVERRIDE:-}" ]; then OVERRIDE=(--model-override "$MODEL_OVERRIDE"); fi
# reuse STAGE FROM_RUN: copy a finished stage into $RUN (then --resume skips it as finished).
reuse() {
  if [ -n "$2" ] && [ ! -f "$RUN/$1/final.safetensors" ]; then
    mkdir -p "$RUN/$1"
    cp "$2/$1/final.safetensors" "$2/$1/result.json" "$RUN/$1/"
  fi
}
reuse vae "${VAE_RUN:-}"
reuse judge "${JUDGE_RUN:-}"
lpm-npc train --stage vae --resume "${OVERRIDE[@]}" --out "$RUN" --workers 1 --no-progress
lpm-npc data build --out "$DATA" --vae "$RUN/vae/final.safetensors" \
  --characters "${CHARACTERS:-256}" --conversations-per-character 2 \
  --seconds-per-conversation "${SECONDS_PER_CONVERSATION:-12}" --workers 2 --no-progress
lpm-npc train --all --resume "${OVERRIDE[@]}" --data "$DATA" --out "$RUN" --workers 1 --no-progress --json
