#!/usr/bin/env bash
# SGD with momentum resumes exactly: 10 steps, then --resume to 20, ends bit-identical to 20 uninterrupted steps
# (the momentum buffer is in the checkpoint; before it was, the resumed run restarted it from zero and differed).
set -euo pipefail
SPIDER=$1
SRC=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

cfg() {  # cfg DIR STEPS
  cat <<JSON
{"steps": $2, "batch": 4, "seed": 5, "log_every": 5,
 "model": {"vocab": 256, "n_embd": 32, "n_ff": 64, "n_layer": 1, "n_head": 4, "n_head_kv": 2},
 "data": {"path": "$SRC/tests/data/train/corpus.txt", "seq_len": 32},
 "optimizer": {"kind": "sgd", "lr": 0.05, "momentum": 0.9},
 "schedule": {"kind": "constant"},
 "checkpoint": {"dir": "$1", "every": 10}}
JSON
}
cfg "$T/full" 20 > "$T/full.json"
cfg "$T/part" 10 > "$T/part10.json"
cfg "$T/part" 20 > "$T/part20.json"
"$SPIDER" train "$T/full.json" --quiet -t 1
"$SPIDER" train "$T/part10.json" --quiet -t 1
"$SPIDER" train "$T/part20.json" --quiet --resume -t 1
"$SPIDER" gguf-diff "$T/full/checkpoint.gguf" "$T/part/checkpoint.gguf" --tol 0
echo "PASS: SGD run resumed at step 10 is bit-identical to the uninterrupted one"

