#!/usr/bin/env bash
# `spider run` end to end with the tiny built-in components and a scripted answer (no LLM needed):
# a bundle with every media kind, batch mode, rules file, and errors for bad arguments.
# usage: bash tests/cli/run.sh <spider-binary> <source-dir>
set -u
SPIDER="$1"
SRC="$2"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat > "$TMP/answer.txt" <<'TXT'
[OUTPUT]Here you go: <IMAGE>a red circle[IMAGE0]</IMAGE> and <AUDIO>a high whistle[AUDIO0]</AUDIO>, then <VIDEO>a blue ball[VIDEO0]</VIDEO><BOX>red[BOX0]</BOX><MASK>red[MASK0]</MASK>.[END]
TXT
"$SPIDER" run -p "make things" --script "$TMP/answer.txt" --out "$TMP/b1" --seed 3 --size 32 -q > "$TMP/out.txt" 2> "$TMP/err.txt" \
  || { cat "$TMP/err.txt"; fail "spider run --script failed"; }
grep -q "Here you go" "$TMP/out.txt" || fail "answer text not printed"
for f in manifest.json index.html items/item_000_image.png items/item_001_audio.wav items/item_002_video.mp4 \
         items/item_003_box.json items/item_003_box_overlay.png items/item_004_mask.png items/item_004_mask_overlay.png; do
  [ -s "$TMP/b1/$f" ] || fail "missing $f"
done
python3 - "$TMP/b1/manifest.json" <<'PY' || fail "manifest check"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["schema"] == "spider.response" and m["version"] == 1
assert [i["modality"] for i in m["items"]] == ["image", "audio", "video", "box", "mask"], m["items"]
assert all(i["status"] == "ok" for i in m["items"]), [i.get("error") for i in m["items"]]
assert m["timings_ms"]["first_dispatch"] <= m["timings_ms"]["llm_end"]
PY

# rules file + batch mode
cat > "$TMP/rules.json" <<'J'
{"allowed_modalities": ["image", "audio"], "blocked_words": ["whistle"]}
J
cat > "$TMP/batch.jsonl" <<J
{"id": "a", "prompt": "one", "script": "[OUTPUT]<IMAGE>a green square[IMAGE0]</IMAGE>[END]"}
{"id": "b", "prompt": "two", "seed": 9, "script": "[OUTPUT]<AUDIO>a whistle[AUDIO0]</AUDIO><VIDEO>v[VIDEO0]</VIDEO>[END]"}
J
"$SPIDER" run --batch "$TMP/batch.jsonl" --rules "$TMP/rules.json" --out "$TMP/batch" --size 16 -q > /dev/null 2> "$TMP/err.txt" \
  || { cat "$TMP/err.txt"; fail "batch failed"; }
[ -s "$TMP/batch/a/items/item_000_image.png" ] || fail "batch a image"
python3 - "$TMP/batch/b/manifest.json" <<'PY' || fail "batch b rules"
import json, sys
m = json.load(open(sys.argv[1]))
st = [i["status"] for i in m["items"]]
assert st == ["blocked", "blocked"], st
assert m["items"][0]["decisions"][0]["rule"] == "blocked_words"
assert m["items"][1]["decisions"][0]["rule"] == "allowed_modalities"
PY

# bad arguments are errors with a message, not crashes
"$SPIDER" run > /dev/null 2>&1 && fail "no prompt accepted"
"$SPIDER" run -p x --modalities image,smell --script "$TMP/answer.txt" 2> "$TMP/err.txt" && fail "bad modality accepted"
grep -q smell "$TMP/err.txt" || fail "bad modality not named"
"$SPIDER" run -p x --script "$TMP/nope.txt" 2> "$TMP/err.txt" && fail "missing script accepted"
"$SPIDER" run -p x --image "$TMP/nope.png" --script "$TMP/answer.txt" --out "$TMP/b2" 2> "$TMP/err.txt" && fail "missing image accepted"
grep -q "nope.png" "$TMP/err.txt" || fail "missing image not named"
echo "1 passed, 0 failed"
