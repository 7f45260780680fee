#!/usr/bin/env bash
# Stage 3 (`instruct`) on TMM records with media inputs, end to end on the tiny gemma3 of tests/data/llm: ToyWorld
# image / audio / video captioning records (i2t, a2t, v2t) go through the pipeline's encoder, the trainable input
# projector puts one row at each placeholder, LoRA + new token rows + projector train together. Checks: every
# record is used with its media, the answer loss falls, a run that does not move the weights (lr 0) exports exactly
# the projector `spider run` would use (so training starts from the pipeline's state), the trained proj.gguf differs
# from it, and `spider run -m <out>/spider.model.json` loads the adapter and the trained projector and answers a
# request with an image input.
# usage: bash tests/cli/train_instruct_media.sh <spider-binary> <source-dir>
set -euo pipefail
SPIDER=$1
SRC=$2
T=$(mktemp -d /tmp/spider_cli_instruct_media.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$SPIDER" convert "$SRC/tests/data/llm/tiny_gemma3_hf" "$T/tiny.gguf" --quiet > /dev/null
"$SPIDER" world --out "$T/world" --count 2 --seed 3 > /dev/null
"$SPIDER" data build --world "$T/world" --count 300 --seed 1 > /dev/null

config() {  # config STEPS LR OUT_DIR
  cat <<JSON
{"stage": "instruct", "steps": $1, "batch": 4, "clip": 1.0, "seed": 7, "log_every": 1,
 "model": {"path": "$T/tiny.gguf", "n_threads": 2},
 "lora": {"rank": 4, "alpha": 8, "targets": ["q", "k", "v", "o"]},
 "data": {"paths": ["$T/world/tmm_train.jsonl"], "max_tokens": 400, "families": ["i2t", "a2t", "v2t"],
          "media": "encode"},
 "optimizer": {"kind": "adamw", "lr": $2}, "schedule": {"kind": "constant"},
 "checkpoint": {"dir": "$3", "every": 100}}
JSON
}

# lr 0: the exported projector is the one the pipeline loads for this model (its tiny random one).
config 2 0.0 "$T/run0" > "$T/run0.json"
"$SPIDER" train "$T/run0.json" --quiet > /dev/null 2> "$T/run0.err" || { cat "$T/run0.err"; fail "spider train (lr 0)"; }
"$SPIDER" run -m "$T/tiny.gguf" --export-components "$T/comp" -q -p x > /dev/null 2>&1 || fail "--export-components"
cmp -s "$T/comp/proj.gguf" "$T/run0/proj.gguf" || fail "the untrained projector is not the pipeline's projector"

config 40 0.01 "$T/run" > "$T/run.json"
"$SPIDER" train "$T/run.json" --quiet > /dev/null 2> "$T/train.err" || { cat "$T/train.err"; fail "spider train"; }
grep -q "instruct: 54 examples (54 with encoded media inputs)" "$T/train.err" ||
  { cat "$T/train.err"; fail "the media records were not all used"; }
first=$(head -n 5 "$T/run/log.jsonl" | sed 's/.*"loss":\([-0-9.e]*\).*/\1/' | awk '{s += $1} END {print s / NR}')
last=$(tail -n 5 "$T/run/log.jsonl" | sed 's/.*"loss":\([-0-9.e]*\).*/\1/' | awk '{s += $1} END {print s / NR}')
echo "instruct with media inputs: mean loss of steps 1-5 $first, of steps 36-40 $last"
awk -v f="$first" -v l="$last" 'BEGIN{exit !(l < 0.5 * f)}' || fail "the loss did not fall"
for f in adapter.gguf proj.gguf spider.model.json; do [ -s "$T/run/$f" ] || fail "no $f exported"; done
cmp -s "$T/comp/proj.gguf" "$T/run/proj.gguf" && fail "the projector did not change"

"$SPIDER" run -m "$T/run/spider.model.json" -p "Write a caption for this image." \
  --image "$T/world/image/train_image_000000.png" --max-tokens 16 --size 32 -t 2 --seed 1 --out "$T/out" \
  > /dev/null 2> "$T/run.err" || { cat "$T/run.err"; fail "spider run with the trained bundle"; }
grep -q "model: lora: .*run/adapter.gguf" "$T/run.err" || { cat "$T/run.err"; fail "adapter not applied"; }
grep -q "model: projector: loaded" "$T/run.err" || { cat "$T/run.err"; fail "trained projector not loaded"; }
python3 - "$T/out/manifest.json" <<'PY' || fail "the image input is not in the response"
import json, sys
inputs = json.load(open(sys.argv[1]))["request"]["inputs"]
assert [i["modality"] for i in inputs] == ["image"], inputs
PY
echo "PASS: instruct trains the projector on media records and spider run loads it"
