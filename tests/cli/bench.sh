#!/usr/bin/env bash
# CLI test of `spider bench`: llama-bench-style rows (md and json) on a tiny random model, the --membw table, and
# clear errors for bad options. Timings are not checked (no timing assertions), only that they are positive numbers.
# Usage: bash bench.sh <spider-binary> <source-dir>
set -u
SPIDER="$1"
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$SPIDER" random-model --arch llama --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 128 --n-vocab 300 \
    --type q8_0 -t 1 "$tmp/tiny.gguf" >/dev/null 2>"$tmp/err" || fail "random-model exited $? ($(cat "$tmp/err"))"

# 1. json rows: pp16 then tg4, positive t/s, one sample per repetition
"$SPIDER" bench -m "$tmp/tiny.gguf" -t 1 -p 16 -n 4 -r 2 -o json >"$tmp/out.json" 2>"$tmp/err" \
    || fail "bench exited $? ($(cat "$tmp/err"))"
python3 - "$tmp/out.json" <<'PY' || fail "bad json rows: $(cat "$tmp/out.json")"
import json, sys
rows = json.load(open(sys.argv[1]))
assert [(r["n_prompt"], r["n_gen"]) for r in rows] == [(16, 0), (0, 4)], rows
for r in rows:
    assert r["n_threads"] == 1 and r["avg_ts"] > 0 and len(r["samples_ts"]) == 2, r
    assert all(t > 0 for t in r["samples_ts"]) and all(ns > 0 for ns in r["samples_ns"]), r
PY

# 2. markdown rows named as llama-bench names them
"$SPIDER" bench -m "$tmp/tiny.gguf" -t 1 -p 8 -n 2 -r 1 >"$tmp/out.md" 2>&1 || fail "md bench failed"
grep -Eq '\| +pp8 \| +[0-9.]+ ± [0-9.]+ \|' "$tmp/out.md" || fail "no pp8 row: $(cat "$tmp/out.md")"
grep -Eq '\| +tg2 \| +[0-9.]+ ± [0-9.]+ \|' "$tmp/out.md" || fail "no tg2 row: $(cat "$tmp/out.md")"

# 3. --membw: one row per (buffer size, thread count) with a positive bandwidth
"$SPIDER" bench --membw --membw-mib 4,8 -t 1,2 -r 1 >"$tmp/bw.md" 2>"$tmp/err" || fail "membw exited $? ($(cat "$tmp/err"))"
[ "$(grep -Ec '^\| +[12] \| +[48] \| +[0-9]+\.[0-9]+ \|$' "$tmp/bw.md")" = 4 ] || fail "membw rows: $(cat "$tmp/bw.md")"
awk -F'|' 'NR > 2 && $4 + 0 <= 0 { exit 1 }' "$tmp/bw.md" || fail "non-positive bandwidth: $(cat "$tmp/bw.md")"

# 4. bad options are errors that name the option
for args in "-t 0" "-p x" "-r 0" "-o csv" "--membw-mib 0" "--bogus 1"; do
    # shellcheck disable=SC2086
    if "$SPIDER" bench -m "$tmp/tiny.gguf" $args >/dev/null 2>"$tmp/err"; then fail "'$args' accepted"; fi
    grep -q -- "${args%% *}" "$tmp/err" || fail "error for '$args' does not name it: $(cat "$tmp/err")"
done
echo "bench CLI: OK"
