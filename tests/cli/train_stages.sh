#!/usr/bin/env bash
# `spider train` on the Spider stages (docs/TRAINING.md): encoder_align, udp_align and diffusion_scratch run from
# their config files, their loss falls, they export the files the pipeline loads, and a bad config or record stops
# with an error naming it.
set -euo pipefail
SPIDER=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

first_last() {  # prints "first last" losses of a log.jsonl
  sed 's/.*"loss":\([-0-9.e]*\).*/\1/' "$1" | awk 'NR==1{f=$1} {l=$1} END{print f, l}'
}
fell() {  # fell LOG RATIO: last < RATIO * first
  read -r f l < <(first_last "$1")
  awk -v f="$f" -v l="$l" -v r="$2" 'BEGIN{exit !(l < r * f)}' || { echo "FAIL: $1: loss $f -> $l"; exit 1; }
  echo "loss $f -> $l"
}

# udp_align: pairs whose targets are a fixed function of the M-Prompt (deterministic numbers from awk).
awk 'BEGIN{srand(7); for (i = 0; i < 12; i++) {
  m = "["; s = 0; for (k = 0; k < 4; k++) { v = rand() * 2 - 1; s += v * (k + 1); m = m (k ? "," : "") v } m = m "]";
  t = "["; for (r = 0; r < 2; r++) { t = t (r ? "," : "") "["; for (d = 0; d < 3; d++) t = t (d ? "," : "") s * (d - 1) * (r + 1) / 4; t = t "]" } t = t "]";
  printf "{\"modality\": \"image\", \"mprompt\": [%s], \"target\": %s}\n", m, t }}' > "$T/pairs.jsonl"
cat > "$T/udp.json" <<JSON
{"stage": "udp_align", "steps": 40, "batch": 4, "seed": 5, "log_every": 1,
 "udp": {"d_model": 4, "d_hidden": 8, "n_expert": 2, "n_enc_layer": 1, "n_dec_layer": 1, "n_head": 2, "d_ff": 16,
         "heads": {"image": [2, 3]}},
 "data": {"path": "$T/pairs.jsonl"}, "loss": {"l2": 1.0, "info_nce": 0.1},
 "optimizer": {"kind": "adamw", "lr": 0.003}, "schedule": {"kind": "constant"},
 "checkpoint": {"dir": "$T/udp", "every": 20}}
JSON
"$SPIDER" train "$T/udp.json" --quiet
fell "$T/udp/log.jsonl" 0.7
[ -s "$T/udp/udp.gguf" ] || { echo "FAIL: no udp.gguf"; exit 1; }
echo "PASS: udp_align"

# encoder_align through a random byte-level LLM.
for c in "a red ball" "two cats" "the sea" "a tall tree"; do
  printf '{"embedding": [%s], "caption": "%s"}\n' "$(printf '%s' "$c" | od -An -tu1 | awk '{for (i = 1; i <= 4; i++) printf "%s%.3f", (i > 1 ? "," : ""), ($i - 100) / 20}')" "$c"
done > "$T/caps.jsonl"
cat > "$T/enc.json" <<JSON
{"stage": "encoder_align", "steps": 40, "batch": 4, "seed": 3, "log_every": 1,
 "llm": {"model": {"vocab": 256, "n_embd": 16, "n_ff": 32, "n_layer": 1, "n_head": 2, "n_head_kv": 1, "init_std": 0.3}},
 "projector": {"emb_dim": 4, "init_std": 0.1}, "data": {"path": "$T/caps.jsonl"},
 "optimizer": {"kind": "adamw", "lr": 0.03}, "schedule": {"kind": "constant"},
 "checkpoint": {"dir": "$T/enc", "every": 20}}
JSON
"$SPIDER" train "$T/enc.json" --quiet
fell "$T/enc/log.jsonl" 0.95
[ -s "$T/enc/proj.gguf" ] || { echo "FAIL: no proj.gguf"; exit 1; }
echo "PASS: encoder_align"

# diffusion_scratch on ToyWorld images.
cat > "$T/diff.json" <<JSON
{"stage": "diffusion_scratch", "steps": 30, "batch": 4, "seed": 2, "log_every": 1,
 "model": {"channels": 8, "image_size": 16}, "data": {"n_images": 16},
 "diffusion": {"prediction": "v"}, "optimizer": {"kind": "adamw", "lr": 0.01},
 "schedule": {"kind": "constant", "warmup": 5}, "checkpoint": {"dir": "$T/diff", "every": 30}}
JSON
"$SPIDER" train "$T/diff.json" --quiet
[ -s "$T/diff/diffusion.gguf" ] || { echo "FAIL: no diffusion.gguf"; exit 1; }
echo "PASS: diffusion_scratch"

# Per-example losses make a stage rank-count independent: diffusion_scratch on 2 MPI ranks matches 1 process.
if command -v mpirun >/dev/null 2>&1; then
  sed -e 's/"steps": 30/"steps": 6/' -e "s|$T/diff|$T/diff1|" "$T/diff.json" > "$T/diff1.json"
  sed -e 's/"steps": 30/"steps": 6/' -e "s|$T/diff|$T/diff2|" "$T/diff.json" > "$T/diff2.json"
  "$SPIDER" train "$T/diff1.json" --quiet
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    mpirun --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -np 2 "$SPIDER" train "$T/diff2.json" --quiet
  "$SPIDER" gguf-diff "$T/diff1/checkpoint.gguf" "$T/diff2/checkpoint.gguf" --tol 1e-4
  echo "PASS: diffusion_scratch on mpirun -np 2 matches one process"
else
  echo "FAIL: mpirun not installed (scripts/setup.sh installs openmpi-bin)"
  exit 1
fi

# Bad config and bad data stop with the field / line named.
sed 's/"d_ff": 16/"d_ff": 16, "dff": 3/' "$T/udp.json" > "$T/bad.json"
if "$SPIDER" train "$T/bad.json" --quiet 2> "$T/err.txt"; then echo "FAIL: bad config accepted"; exit 1; fi
grep -q "unknown field 'udp.dff'" "$T/err.txt" || { echo "FAIL: $(cat "$T/err.txt")"; exit 1; }
{ head -n 2 "$T/pairs.jsonl"; echo '{"modality": "audio", "mprompt": [[1,2,3,4]], "target": [[1]]}'; } > "$T/badpairs.jsonl"
sed "s|$T/pairs.jsonl|$T/badpairs.jsonl|" "$T/udp.json" > "$T/bad2.json"
if "$SPIDER" train "$T/bad2.json" --quiet 2> "$T/err.txt"; then echo "FAIL: bad record accepted"; exit 1; fi
grep -q "badpairs.jsonl:3: the UDP has no head for modality audio" "$T/err.txt" || { echo "FAIL: $(cat "$T/err.txt")"; exit 1; }
echo "PASS: bad config and data named"
