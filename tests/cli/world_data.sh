#!/usr/bin/env bash
# CLI test of `spider world` and `spider data`: same seed -> byte-identical dataset, judges agree with the truth,
# builder output validates, stats run, importer output validates, a broken record fails validation with its line,
# outputs pass ffprobe (when installed).
# usage: bash world_data.sh <spider-binary> <source-dir>
set -euo pipefail
SPIDER=$1
T=$(mktemp -d /tmp/spider_cli_world.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$SPIDER" world --out "$T/a" --seed 11 --count 6 --threads 2 > /dev/null
"$SPIDER" world --out "$T/b" --seed 11 --count 6 --threads 1 > /dev/null
diff -r "$T/a" "$T/b" > /dev/null || fail "same seed gave different datasets"
"$SPIDER" world --out "$T/c" --seed 12 --count 6 > /dev/null
if diff -r "$T/a" "$T/c" > /dev/null; then fail "different seeds gave the same dataset"; fi
"$SPIDER" world --out "$T/a" --seed 11 --count 4 --split test --video-format webm > /dev/null
[ -f "$T/a/items_test.jsonl" ] || fail "no test split"
ls "$T/a/video/"*.webm > /dev/null || fail "no webm written"

"$SPIDER" world judge --world "$T/a" > "$T/judge.txt" || fail "world judge failed"
grep -q "motion" "$T/judge.txt" || fail "judge printed no video scores"
"$SPIDER" world judge --image "$T/a/image/train_image_000000.png" | grep -q '"judgeable": true' || fail "image judge"

"$SPIDER" data build --world "$T/a" --count 340 --seed 2 > /dev/null
"$SPIDER" data validate "$T/a/tmm_train.jsonl" > "$T/v.txt" || { cat "$T/v.txt"; fail "built records do not validate"; }
"$SPIDER" data build --world "$T/a" --split test --count 34 > /dev/null
"$SPIDER" data validate "$T/a/tmm_test.jsonl" > /dev/null || fail "test split records do not validate"
"$SPIDER" data stats "$T/a/tmm_train.jsonl" | grep -q "records: 340" || fail "stats count"
"$SPIDER" data stats "$T/a/tmm_train.jsonl" --json | grep -q '"groups_per_modality"' || fail "stats json"

# A broken record is reported with its line number and exit status 1.
head -n 2 "$T/a/tmm_train.jsonl" > "$T/broken.jsonl"
echo '{"Question":"x","TaskPrompt":"[IMAGE]","Answer":"[OUTPUT]<IMAGE>a red circle[IMAGE0][END]"}' >> "$T/broken.jsonl"
cp "$T/broken.jsonl" "$T/a/broken.jsonl"
set +e
"$SPIDER" data validate "$T/a/broken.jsonl" > "$T/v2.txt"
rc=$?
set -e
[ $rc -eq 1 ] || fail "validate exit status $rc for a broken file"
grep -q "broken.jsonl:3: .*unclosed <IMAGE> group" "$T/v2.txt" || { cat "$T/v2.txt"; fail "line 3 not reported"; }

# Importer: a caption list of real files.
printf 'file,caption\nimage/train_image_000001.png,"a picture, of shapes"\naudio/train_audio_000001.wav,a tone\n' > "$T/a/list.csv"
"$SPIDER" data import --captions "$T/a/list.csv" --out "$T/a/imported.jsonl" > /dev/null
"$SPIDER" data validate "$T/a/imported.jsonl" > /dev/null || fail "imported records do not validate"

if command -v ffprobe > /dev/null; then
  for f in "$T/a/image/train_image_000000.png" "$T/a/audio/train_audio_000000.wav" \
           "$T/a/video/train_video_000000.mp4" "$T/a/video/test_video_000000.webm"; do
    ffprobe -v error -show_format "$f" > /dev/null || fail "ffprobe rejects $f"
  done
fi
echo "world_data: ok"
