#!/usr/bin/env bash
# CLI test of `spider convert`, `spider quantize` and `spider gguf-info`:
#   bash tests/cli/quantize.sh SPIDER_BINARY SOURCE_DIR
# Converts the tiny transformers Llama checkpoint, checks that greedy decoding of the converted F32 model gives the
# transformers golden continuation, quantizes it to every type and checks the types gguf-info reports, and checks
# that bad requests fail with a message and leave no output file.
set -euo pipefail
spider=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

hf=$src/tests/data/llm/tiny_llama_hf
golden=$src/tests/data/llm/goldens/tiny_llama.json
"$spider" convert "$hf" "$tmp/f32.gguf" --type f32 --quiet || fail "convert f32"
"$spider" convert "$hf" "$tmp/f16.gguf" > "$tmp/convert.log" || fail "convert f16"
grep -q "wrote $tmp/f16.gguf (21 tensors, llama, f16)" "$tmp/convert.log" || fail "convert summary: $(tail -1 "$tmp/convert.log")"
"$spider" gguf-info "$tmp/f16.gguf" > "$tmp/info.txt"
grep -q "types: f16=16 f32=5" "$tmp/info.txt" || fail "f16 file types: $(grep types: "$tmp/info.txt")"

# Greedy continuation of the golden prompt equals transformers' (the text of the golden greedy tokens of
# tests/data/llm/goldens/tiny_*.json, decoded with the reference sentencepiece library).
prompt=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['prompt_text'])" "$golden")
want='wortE1ven:1venj k " lriicest k'
got=$("$spider" generate -m "$tmp/f32.gguf" -p "$prompt" -n 16 --temp 0 2>/dev/null)
[ "$got" = "$want" ] || fail "greedy continuation: got '$got', want '$want'"
# Same for the tiny Gemma 3 (norms stored +1, tied embeddings, sliding-window pattern from layer_types).
"$spider" convert "$src/tests/data/llm/tiny_gemma3_hf" "$tmp/g32.gguf" --type f32 --quiet || fail "convert gemma3"
want=' long sl sl sl sl cou cou cou cou cou cou cou cououtnn'
got=$("$spider" generate -m "$tmp/g32.gguf" -p "$prompt" -n 16 --temp 0 2>/dev/null)
[ "$got" = "$want" ] || fail "gemma3 greedy continuation: got '$got', want '$want'"

# Quantize to every type; check the file types gguf-info reports. The tiny model has 64-wide rows: K-quants fall
# back (Q4_K -> Q5_0, Q6_K -> Q8_0; the 256-wide ffn_down keeps its K-quant), output.weight gets Q8_0, and with
# two layers use_more_bits picks layer 1 for Q4_K_M (attn_v Q6_K -> Q8_0 fallback, ffn_down Q6_K).
check() {  # TYPE EXPECTED_TYPES_LINE
  "$spider" quantize "$tmp/f32.gguf" "$tmp/q.gguf" "$1" -t 2 > "$tmp/q.log" || fail "quantize $1: $(tail -1 "$tmp/q.log")"
  grep -q "general.file_type" "$tmp/q.log" || fail "quantize $1 summary missing"
  local got
  "$spider" gguf-info "$tmp/q.gguf" > "$tmp/qinfo.txt"
  got=$(grep '^types:' "$tmp/qinfo.txt")
  [ "$got" = "types: $2" ] || fail "quantize $1: got '$got', want 'types: $2'"
}
check F32 "f32=21"
check F16 "f16=16 f32=5"
check BF16 "bf16=16 f32=5"
check Q8_0 "f32=5 q8_0=16"
check Q4_0 "f32=5 q4_0=15 q8_0=1"
check Q4_K "f32=5 q4_K=2 q5_0=13 q8_0=1"
check Q6_K "f32=5 q6_K=2 q8_0=14"
check Q4_K_M "f32=5 q4_K=1 q5_0=12 q6_K=1 q8_0=2"
# (outputs go to files first: `grep -q` closing a pipe early would fail the writer under pipefail)
"$spider" gguf-info "$tmp/q.gguf" > "$tmp/info.txt"
grep -q 'general.file_type *u32 *= 15' "$tmp/info.txt" || fail "Q4_K_M file_type"
"$spider" quantize "$tmp/f32.gguf" "$tmp/never.gguf" Q4_K_M --dry-run > "$tmp/plan.txt"
grep -q 'blk.1.attn_v.weight *f32 *-> q8_0' "$tmp/plan.txt" || fail "dry-run plan"
[ ! -e "$tmp/never.gguf" ] || fail "--dry-run wrote a file"

# Errors: message on stderr, non-zero exit, no output file.
if "$spider" quantize "$tmp/f32.gguf" "$tmp/bad.gguf" Q3_K 2> "$tmp/err.txt"; then fail "Q3_K accepted"; fi
grep -q "unknown type 'Q3_K'" "$tmp/err.txt" || fail "Q3_K message: $(cat "$tmp/err.txt")"
head -c 100 "$tmp/f32.gguf" > "$tmp/cut.gguf"
if "$spider" quantize "$tmp/cut.gguf" "$tmp/bad.gguf" Q8_0 2> "$tmp/err.txt"; then fail "truncated input accepted"; fi
grep -q "truncated" "$tmp/err.txt" || fail "truncated message: $(cat "$tmp/err.txt")"
if "$spider" gguf-info "$tmp/cut.gguf" 2> "$tmp/err.txt"; then fail "gguf-info accepted a truncated file"; fi
if "$spider" convert "$src/tests/data" "$tmp/bad.gguf" 2> "$tmp/err.txt"; then fail "convert accepted a non-checkpoint"; fi
grep -q "config.json" "$tmp/err.txt" || fail "convert message: $(cat "$tmp/err.txt")"
[ ! -e "$tmp/bad.gguf" ] || fail "a failed command left an output file"
ls "$tmp" | grep -q '\.tmp\.' && fail "temporary file left behind"
echo "quantize.sh: all checks passed"
