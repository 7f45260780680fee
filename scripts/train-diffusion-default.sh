#!/usr/bin/env bash
# Reproduces models/diffusion-toyworld-16.gguf: the default trained IMAGE decoder, a spider-diffusion-tiny UNet
# (8 channels, 16x16 RGB, epsilon prediction, linear 1000-step schedule) trained by `spider train` stage
# diffusion_scratch on 512 ToyWorld images (world seed 1, rendered at 48x48 and box-downsampled). Training is
# deterministic (bit-identical for any thread count, docs/TRAINING.md), so the same binary rewrites the same bytes.
# Unconditional: it samples ToyWorld-like images, it does not follow a prompt (docs/DECODERS.md).
#
# usage: scripts/train-diffusion-default.sh [SPIDER_BINARY] [OUT.gguf]
set -euo pipefail
SPIDER=${1:-build/bin/spider}
OUT=${2:-models/diffusion-toyworld-16.gguf}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cat > "$WORK/config.json" <<JSON
{"stage": "diffusion_scratch", "steps": 8000, "batch": 32, "seed": 1, "log_every": 100,
 "model": {"channels": 8, "image_size": 16, "t_embed": 16, "groups": 4},
 "data": {"world_seed": 1, "n_images": 512, "world_size": 48},
 "diffusion": {"prediction": "epsilon", "schedule": "linear", "n_steps": 1000, "beta_start": 0.0001,
               "beta_end": 0.02},
 "optimizer": {"kind": "adamw", "lr": 0.005},
 "schedule": {"kind": "cosine", "warmup": 200},
 "checkpoint": {"dir": "$WORK/run", "every": 1000}}
JSON
"$SPIDER" train "$WORK/config.json" --quiet
tail -n 1 "$WORK/run/log.jsonl"
mkdir -p "$(dirname "$OUT")"
cp "$WORK/run/diffusion.gguf" "$OUT.tmp.$$"
mv "$OUT.tmp.$$" "$OUT"
echo "wrote $OUT"
