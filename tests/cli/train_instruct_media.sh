#!/usr/bin/env bash
# Stage 3 (`instruct`) on TMM records with media inputs, end to end on the tiny gemma3 of tests/data/llm: ToyWorld
# image / audio / video captioning records (i2t, a2t, v2t) go through the pipeline's encoder, the trainable input
# projector puts one row at each placeholder, LoRA + new token rows + projector train together. Checks: every
# record is used with its media, the answer loss falls, a run that does not move the weights (lr 0) exports exactly
# the projector and UDP `spider run` would use (so training starts from the pipeline's state), the trained proj.gguf
# differs from it, and `spider run -m <out>/spider.model.json` loads the adapter and the trained projector and
# answers a request with an image input. A second run adds the UDP term on the T2X answers (t2i, t2a, t2v): the loss
# falls, the UDP changes, and `spider run` realises an image item through the trained UDP; 20 steps resumed to 40
# give the same three files as 40 in one go.
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

MEDIA='"i2t", "a2t", "v2t"'
UDP='"udp": {"l2": 1.0, "info_nce": 1.0},'
config() {  # config STEPS LR OUT_DIR FAMILIES [UDP_SECTION]
  cat <<JSON
{"stage": "instruct", "steps": $1, "batch": 4, "clip": 1.0, "seed": 7, "log_every": 1,
 "model": {"path": "$T/tiny.gguf", "n_threads": 2},
 "lora": {"rank": 4, "alpha": 8, "targets": ["q", "k", "v", "o"]},
 "data": {"paths": ["$T/world/tmm_train.jsonl"], "max_tokens": 400, "families": [$4], "media": "encode"}, ${5:-}
 "optimizer": {"kind": "adamw", "lr": $2}, "schedule": {"kind": "constant"},
 "checkpoint": {"dir": "$3", "every": 100}}
JSON
}

# lr 0: the exported projector and UDP are the ones the pipeline loads for this model (its tiny random ones).
config 2 0.0 "$T/run0" "$MEDIA" "$UDP" > "$T/run0.json"
"$SPIDER" train "$T/run0.json" --quiet > /dev/null 2> "$T/run0.err" || { cat "$T/run0.err"; fail "spider train (lr 0)"; }
"$SPIDER" run -m "$T/tiny.gguf" --export-components "$T/comp" -q -p x > /dev/null 2>&1 || fail "--export-components"
cmp -s "$T/comp/proj.gguf" "$T/run0/proj.gguf" || fail "the untrained projector is not the pipeline's projector"
cmp -s "$T/comp/udp.gguf" "$T/run0/udp.gguf" || fail "the untrained UDP is not the pipeline's UDP"

config 40 0.01 "$T/run" "$MEDIA" > "$T/run.json"
"$SPIDER" train "$T/run.json" --quiet > /dev/null 2> "$T/train.err" || { cat "$T/train.err"; fail "spider train"; }
grep -q "instruct: 54 examples (54 with encoded media inputs," "$T/train.err" ||
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

# Stage 3's UDP term: the single-modality T2X answers (t2i, t2a, t2v) add per-token L2 + InfoNCE at their signal
# tokens against the built-in decoders' text encoding of the caption; the UDP starts from the pipeline's and is
# exported with the rest; `spider run` loads it and realises an image item through it.
config 40 0.01 "$T/run_udp" "$MEDIA, \"t2i\", \"t2a\", \"t2v\"" "$UDP" > "$T/run_udp.json"
"$SPIDER" train "$T/run_udp.json" --quiet > /dev/null 2> "$T/train_udp.err" || { cat "$T/train_udp.err"; fail "spider train (udp)"; }
grep -q "instruct: 108 examples (54 with encoded media inputs, 54 with UDP targets)" "$T/train_udp.err" ||
  { cat "$T/train_udp.err"; fail "the UDP targets were not all found"; }
first=$(head -n 5 "$T/run_udp/log.jsonl" | sed 's/.*"loss":\([-0-9.e]*\).*/\1/' | awk '{s += $1} END {print s / NR}')
last=$(tail -n 5 "$T/run_udp/log.jsonl" | sed 's/.*"loss":\([-0-9.e]*\).*/\1/' | awk '{s += $1} END {print s / NR}')
echo "instruct with media inputs and the UDP term: mean loss of steps 1-5 $first, of steps 36-40 $last"
awk -v f="$first" -v l="$last" 'BEGIN{exit !(l < 0.5 * f)}' || fail "the loss with the UDP term did not fall"
cmp -s "$T/comp/udp.gguf" "$T/run_udp/udp.gguf" && fail "the UDP did not change"
"$SPIDER" run -m "$T/run_udp/spider.model.json" -p "Draw a red circle." --modalities image --max-tokens 96 \
  --size 32 -t 2 --seed 1 --out "$T/out_udp" > /dev/null 2> "$T/run_udp.err" ||
  { cat "$T/run_udp.err"; fail "spider run with the trained UDP"; }
grep -q "model: udp: .*run_udp/udp.gguf" "$T/run_udp.err" || { cat "$T/run_udp.err"; fail "trained UDP not loaded"; }
python3 - "$T/out_udp/manifest.json" <<'PY' || fail "no image item realised through the trained UDP"
import json, sys
items = json.load(open(sys.argv[1]))["items"]
assert items and all(i["modality"] == "image" and i["status"] == "ok" for i in items), items
PY

# Resume: 20 steps, then resumed to 40, ends with the same adapter, projector and UDP as the uninterrupted run.
config 20 0.01 "$T/run_res" "$MEDIA, \"t2i\", \"t2a\", \"t2v\"" "$UDP" > "$T/run_res.json"
"$SPIDER" train "$T/run_res.json" --quiet > /dev/null 2>&1 || fail "spider train (first half)"
config 40 0.01 "$T/run_res" "$MEDIA, \"t2i\", \"t2a\", \"t2v\"" "$UDP" > "$T/run_res.json"
"$SPIDER" train "$T/run_res.json" --quiet --resume > /dev/null 2>&1 || fail "spider train --resume"
for f in adapter.gguf proj.gguf udp.gguf; do
  cmp -s "$T/run_udp/$f" "$T/run_res/$f" || fail "resumed run: $f differs from the uninterrupted run's"
done
echo "PASS: instruct trains the projector on media records (and the UDP on T2X answers); spider run loads them"
