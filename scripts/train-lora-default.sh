#!/usr/bin/env bash
# Reproduces models/spider-lora-gemma3-270m.gguf: LoRA (rank 8, alpha 16, q/k/v/o of all 18 blocks) + the 33
# template token rows on the default LLM (gemma-3-270m Q4_K_M, frozen in its GGUF dtypes), `spider train` stage
# `instruct` on a small ToyWorld TMM set (text-input families), then the held-out evaluation without grammar.
#
#   scripts/train-lora-default.sh [BUILD_DIR] [WORK_DIR]      (defaults: build, /tmp/spider-lora)
#
# Measured on the 2-core dev machine: 160 steps x 4 sequences in ~4.5 min idle (~22 min shared); two runs give
# byte-identical adapters; see docs/TRAINING.md.
set -euo pipefail
BUILD=${1:-build}
WORK=${2:-/tmp/spider-lora}
SRC=$(cd "$(dirname "$0")/.." && pwd)
SPIDER=$BUILD/bin/spider
mkdir -p "$WORK"

# 1. ToyWorld items (20 per kind per split) and TMM records: 3000 train, 300 test (held-out phrasings and
#    attribute combinations).
"$SPIDER" world --out "$WORK/world" --count 20 --split train
"$SPIDER" world --out "$WORK/world" --count 20 --split test
"$SPIDER" data build --world "$WORK/world" --split train --count 3000 --seed 1
"$SPIDER" data build --world "$WORK/world" --split test --count 300 --seed 2

# 2. Training.
cat >"$WORK/instruct.json" <<EOF
{
  "stage": "instruct",
  "steps": 160, "batch": 4, "grad_accum": 1, "clip": 1.0, "seed": 42, "log_every": 5,
  "model": {"n_threads": 2},
  "lora": {"rank": 8, "alpha": 16, "targets": ["q", "k", "v", "o"]},
  "data": {"paths": ["$WORK/world/tmm_train.jsonl"], "max_tokens": 96,
           "families": ["t2i", "t2a", "t2v", "t2tmm_smart", "t2tmm_specific", "multi_item"]},
  "optimizer": {"kind": "adamw", "lr": 0.002, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.0},
  "schedule": {"kind": "cosine", "warmup": 10, "min_lr": 0.0001},
  "checkpoint": {"dir": "$WORK/out", "every": 20}
}
EOF
nice -n 5 "$SPIDER" train "$WORK/instruct.json"
mkdir -p "$SRC/models"
cp "$WORK/out/adapter.gguf" "$SRC/models/spider-lora-gemma3-270m.gguf"

# 3. Held-out evaluation, greedy, no grammar: with and without the adapter.
python3 "$SRC/scripts/eval-lora-template.py" --spider "$SPIDER" --data "$WORK/world/tmm_test.jsonl" --n 48 \
  --lora "$SRC/models/spider-lora-gemma3-270m.gguf"
python3 "$SRC/scripts/eval-lora-template.py" --spider "$SPIDER" --data "$WORK/world/tmm_test.jsonl" --n 48
