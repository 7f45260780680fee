#!/usr/bin/env bash
# `spider sample` (docs/DECODERS.md): a diffusion_scratch decoder trained for a few steps by `spider train` is
# sampled with DDIM and DDPM; the PNGs decode at the model's size, the same seed gives identical bytes, another
# seed different ones, and a truncated diffusion.gguf or bad options stop with a named error and a non-zero exit;
# a manifest "image_decoder" makes it the IMAGE decoder of `spider run`.
set -euo pipefail
SPIDER=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

cat > "$T/diff.json" <<JSON
{"stage": "diffusion_scratch", "steps": 4, "batch": 2, "seed": 3,
 "model": {"channels": 8, "image_size": 16}, "data": {"n_images": 4},
 "diffusion": {"prediction": "epsilon"}, "optimizer": {"kind": "adamw", "lr": 0.01},
 "checkpoint": {"dir": "$T/m", "every": 4}}
JSON
"$SPIDER" train "$T/diff.json" --quiet
M="$T/m/diffusion.gguf"
[ -s "$M" ] || { echo "FAIL: no diffusion.gguf"; exit 1; }

"$SPIDER" sample --model "$M" --n 2 --steps 10 --seed 7 --out "$T/a" > "$T/a.list"
"$SPIDER" sample --model "$M" --n 2 --steps 10 --seed 7 --out "$T/b" > /dev/null
"$SPIDER" sample --model "$M" --n 1 --steps 10 --seed 8 --out "$T/c" > /dev/null
"$SPIDER" sample --model "$M" --n 1 --sampler ddpm --steps 20 --spacing trailing --seed 7 --out "$T/d" > /dev/null
[ "$(wc -l < "$T/a.list")" = 2 ] || { echo "FAIL: expected 2 files listed"; cat "$T/a.list"; exit 1; }
for f in "$T/a/sample_000.png" "$T/a/sample_001.png" "$T/c/sample_000.png" "$T/d/sample_000.png"; do
  [ "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || { echo "FAIL: $f is not a PNG"; exit 1; }
  # The IHDR chunk: width and height (big-endian u32 at bytes 16 and 20) must be the model's 16 x 16.
  wh=$(od -An -tu1 -j16 -N8 "$f" | tr -s ' ' | sed 's/^ //')
  [ "$wh" = "0 0 0 16 0 0 0 16" ] || { echo "FAIL: $f is not 16x16 (IHDR bytes: $wh)"; exit 1; }
  "$SPIDER" world judge --image "$f" > /dev/null || { echo "FAIL: $f does not decode"; exit 1; }
done
cmp -s "$T/a/sample_000.png" "$T/b/sample_000.png" || { echo "FAIL: same seed, different bytes"; exit 1; }
cmp -s "$T/a/sample_001.png" "$T/b/sample_001.png" || { echo "FAIL: same seed, different bytes (image 1)"; exit 1; }
! cmp -s "$T/a/sample_000.png" "$T/c/sample_000.png" || { echo "FAIL: seeds 7 and 8 give the same image"; exit 1; }
! cmp -s "$T/a/sample_000.png" "$T/d/sample_000.png" || { echo "FAIL: ddim and ddpm give the same image"; exit 1; }
ls "$T/a" | grep -q tmp && { echo "FAIL: a temp file was left behind"; exit 1; }
echo "PASS: sample PNGs, seeds"

expect_error() {  # expect_error PATTERN ARGS...: non-zero exit and PATTERN on stderr
  local pat=$1
  shift
  if "$SPIDER" sample "$@" > /dev/null 2> "$T/err"; then
    echo "FAIL: spider sample $* succeeded"
    exit 1
  fi
  grep -q -- "$pat" "$T/err" || { echo "FAIL: expected '$pat', got:"; cat "$T/err"; exit 1; }
}
head -c $(($(stat -c %s "$M") / 2)) "$M" > "$T/cut.gguf"
expect_error "cut.gguf" --model "$T/cut.gguf" --out "$T/x"
[ ! -e "$T/x" ] || [ -z "$(ls "$T/x")" ] || { echo "FAIL: files written for a bad model"; exit 1; }
expect_error "steps must be between 1 and the schedule's 1000 timesteps (got 1001)" --model "$M" --steps 1001
expect_error "bad value 'euler' for --sampler" --model "$M" --sampler euler
expect_error "bad value '0' for --steps" --model "$M" --steps 0
expect_error "--model is required" --n 2
expect_error "no-such.gguf" --model "$T/no-such.gguf"
echo "PASS: sample errors"

# The trained decoder as the IMAGE decoder of `spider run` (model bundle manifest "image_decoder"; the built-in one
# stays the default). A scripted answer needs no LLM.
mkdir -p "$T/bundle"
cp "$M" "$T/bundle/diffusion.gguf"
echo '{"format": "spider.model", "version": 1, "image_decoder": "diffusion.gguf"}' > "$T/bundle/spider.model.json"
echo '[OUTPUT]<IMAGE>a red circle[IMAGE0]</IMAGE>[END]' > "$T/answer.txt"
run_image() {  # run_image OUTDIR [-m MANIFEST]: one scripted image item at seed 3, 32x32
  local out=$1
  shift
  "$SPIDER" run "$@" -p "make an image" --script "$T/answer.txt" --out "$out" --seed 3 --size 32 \
    > "$T/run.txt" 2>&1 || { cat "$T/run.txt"; echo "FAIL: spider run $*"; exit 1; }
}
run_image "$T/r1" -m "$T/bundle/spider.model.json"
grep -q "model: image decoder: $T/bundle/diffusion.gguf (unconditional diffusion" "$T/run.txt" \
  || { cat "$T/run.txt"; echo "FAIL: the bundle note does not name the image decoder"; exit 1; }
grep -q '"decoder": *"diffusion-tiny (unconditional)' "$T/r1/manifest.json" \
  || { echo "FAIL: the item was not decoded by the diffusion decoder"; exit 1; }
wh=$(od -An -tu1 -j16 -N8 "$T/r1/items/item_000_image.png" | tr -s ' ' | sed 's/^ //')
[ "$wh" = "0 0 0 32 0 0 0 32" ] || { echo "FAIL: run image is not 32x32 ($wh)"; exit 1; }
run_image "$T/r2" -m "$T/bundle/spider.model.json"
cmp -s "$T/r1/items/item_000_image.png" "$T/r2/items/item_000_image.png" || { echo "FAIL: run not reproducible"; exit 1; }
run_image "$T/r3"
grep -q '"decoder": *"diffusion-tiny' "$T/r3/manifest.json" && { echo "FAIL: the default is not the built-in decoder"; exit 1; }
head -c 300 "$M" > "$T/bundle/diffusion.gguf"
if "$SPIDER" run -m "$T/bundle/spider.model.json" -p x --script "$T/answer.txt" --out "$T/r4" -q > "$T/run.txt" 2>&1; then
  echo "FAIL: a truncated image decoder was accepted"
  exit 1
fi
grep -q "image decoder: $T/bundle/diffusion.gguf" "$T/run.txt" || { cat "$T/run.txt"; echo "FAIL: error does not name it"; exit 1; }
echo "PASS: spider run with a manifest image_decoder"
