#!/usr/bin/env bash
# CLI test of `spider generate` (and `spider chat`): greedy answer on the default model, speed line, stop strings,
# and clear errors for a missing model / bad options. Usage: bash generate.sh <spider-binary> <source-dir>
set -u
SPIDER="$1"
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. greedy continuation names Paris; speed summary on stderr
"$SPIDER" generate -p $'Question: What is the capital of France?\nAnswer:' -n 8 --temp 0 -t 2 >"$tmp/out" 2>"$tmp/err" \
    || fail "generate exited $? ($(cat "$tmp/err"))"
grep -q "Paris" "$tmp/out" || fail "no Paris in: $(cat "$tmp/out")"
grep -Eq "prompt eval: [0-9.]+ tok/s .* eval: [0-9.]+ tok/s" "$tmp/err" || fail "no speed line in: $(cat "$tmp/err")"

# 2. --stop cuts the output before the stop text; same seed = same text
"$SPIDER" generate -p "Once upon a time" -n 24 --seed 7 --stop "," -t 2 >"$tmp/a" 2>/dev/null || fail "seeded run failed"
"$SPIDER" generate -p "Once upon a time" -n 24 --seed 7 --stop "," -t 2 >"$tmp/b" 2>/dev/null || fail "seeded run failed"
cmp -s "$tmp/a" "$tmp/b" || fail "same seed gave different text: '$(cat "$tmp/a")' vs '$(cat "$tmp/b")'"
grep -q "," "$tmp/a" && fail "stop string ',' was printed: $(cat "$tmp/a")"

# 2b. --grammar constrains the output to the grammar's language; a broken grammar is an error naming the file
printf 'root ::= (" yes" | " no") "."\n' >"$tmp/yn.gbnf"
"$SPIDER" generate -p $'Question: Is Paris in France? Answer yes or no.\nAnswer:' --grammar "$tmp/yn.gbnf" -n 8 -t 2 \
    --temp 0 >"$tmp/out" 2>"$tmp/err" || fail "grammar run exited $? ($(cat "$tmp/err"))"
grep -Eqx ' (yes|no)\.' "$tmp/out" || fail "grammar output not in the language: '$(cat "$tmp/out")'"
printf 'root ::= ( \n' >"$tmp/broken.gbnf"
if "$SPIDER" generate -p hi --grammar "$tmp/broken.gbnf" >/dev/null 2>"$tmp/err"; then fail "broken grammar accepted"; fi
grep -q "broken.gbnf" "$tmp/err" || fail "grammar error does not name the file: $(cat "$tmp/err")"

# 3. missing default model: non-zero exit and a hint to run scripts/setup.sh
if HOME="$tmp/nohome" SPIDER_MODEL= "$SPIDER" generate -p hi >/dev/null 2>"$tmp/err"; then fail "missing model accepted"; fi
grep -q "scripts/setup.sh" "$tmp/err" || fail "no setup.sh hint: $(cat "$tmp/err")"

# 4. a file that is not a model: non-zero exit naming the file
echo "not a model" >"$tmp/bad.gguf"
if "$SPIDER" generate -m "$tmp/bad.gguf" -p hi >/dev/null 2>"$tmp/err"; then fail "bad model accepted"; fi
grep -q "bad.gguf" "$tmp/err" || fail "error does not name the file: $(cat "$tmp/err")"

# 5. no prompt: usage error
if "$SPIDER" generate >/dev/null 2>&1; then fail "generate without prompt succeeded"; fi

# 6. chat: two user lines in, two answers out (the default model is a base model, so only the mechanics are
#    checked: exit status, one answer line per message, deterministic with --temp 0), ends at end of input
if "$SPIDER" --help | grep -q " chat "; then
    printf 'Hello there.\nTell me about spiders.\n' | "$SPIDER" chat -n 12 --temp 0 -t 2 >"$tmp/chat" 2>"$tmp/err" \
        || fail "chat exited $? ($(cat "$tmp/err"))"
    [ -s "$tmp/chat" ] || fail "chat printed nothing"
    printf 'Hello there.\nTell me about spiders.\n' | "$SPIDER" chat -n 12 --temp 0 -t 2 >"$tmp/chat2" 2>/dev/null
    cmp -s "$tmp/chat" "$tmp/chat2" || fail "greedy chat is not deterministic"
    if printf 'hi\n' | "$SPIDER" chat --template nosuch >/dev/null 2>"$tmp/err"; then fail "unknown template accepted"; fi
    grep -q "nosuch" "$tmp/err" || fail "unknown template not named: $(cat "$tmp/err")"
fi
echo "ok"
