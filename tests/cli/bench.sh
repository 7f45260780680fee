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

# 4. --roofline: tg rows carry the decode's bytes per token (every tensor but the untied embedding table), a read
# bandwidth before the first run and after each, and one share per run; pp rows carry none; md adds a share table
"$SPIDER" bench -m "$tmp/tiny.gguf" -t 2 -p 8 -n 4 -r 2 --roofline -o json >"$tmp/roof.json" 2>"$tmp/err" \
    || fail "roofline bench exited $? ($(cat "$tmp/err"))"
python3 - "$tmp/roof.json" "$tmp/tiny.gguf" <<'PY' || fail "bad roofline rows: $(cat "$tmp/roof.json")"
import json, os, sys
pp, tg = json.load(open(sys.argv[1]))
assert "roofline_bytes" not in pp, pp
size = os.path.getsize(sys.argv[2])
assert 0 < tg["roofline_bytes"] < size, (tg["roofline_bytes"], size)
assert len(tg["roofline_read_gbps"]) == 3 and all(g > 0 for g in tg["roofline_read_gbps"]), tg
assert len(tg["roofline_best_read_gbps"]) == 3 and all(b >= g for b, g in zip(tg["roofline_best_read_gbps"], tg["roofline_read_gbps"])), tg
assert len(tg["roofline_shares"]) == 2 and all(s > 0 for s in tg["roofline_shares"]), tg
mean_bw = [(a + b) / 2 for a, b in zip(tg["roofline_read_gbps"], tg["roofline_read_gbps"][1:])]
for t, bw, share in zip(tg["samples_ts"], mean_bw, tg["roofline_shares"]):
    assert abs(share - t * tg["roofline_bytes"] / 1e9 / bw) < 1e-9 * max(1, share), (t, bw, share)
assert tg["roofline_prefetch_bytes"] in (0, 1024, 2048, 4096, 8192), tg
assert tg["roofline_prefetch_level"] in ((0,) if tg["roofline_prefetch_bytes"] == 0 else (1, 2)), tg
PY
"$SPIDER" bench -m "$tmp/tiny.gguf" -t 1 -p 0 -n 2 -r 1 --roofline >"$tmp/roof.md" 2>&1 || fail "md roofline failed"
grep -Eq '\| +tg2 \| +[0-9.]+ [KM]iB \| +[0-9]+( L[12])? \| +[0-9.]+ \| +[0-9.]+ \| +[0-9.]+% \| +[0-9.]+% \|$' "$tmp/roof.md" \
    || fail "no roofline row: $(cat "$tmp/roof.md")"

# 5. -d: each test again from a KV cache already holding that many tokens, named as llama-bench names it
"$SPIDER" bench -m "$tmp/tiny.gguf" -t 2 -p 4 -n 3 -d 0,20 -r 2 -o json >"$tmp/depth.json" 2>"$tmp/err" \
    || fail "depth bench exited $? ($(cat "$tmp/err"))"
python3 - "$tmp/depth.json" <<'PY' || fail "bad depth rows: $(cat "$tmp/depth.json")"
import json, sys
rows = json.load(open(sys.argv[1]))
assert [(r["test"], r["n_depth"]) for r in rows] == [("pp4", 0), ("tg3", 0), ("pp4 @ d20", 20), ("tg3 @ d20", 20)], rows
assert all(r["avg_ts"] > 0 and len(r["samples_ts"]) == 2 for r in rows), rows
PY
"$SPIDER" bench -m "$tmp/tiny.gguf" -t 1 -p 0 -n 2 -d 30 -r 1 >"$tmp/depth.md" 2>&1 || fail "md depth bench failed"
grep -Eq '\| +tg2 @ d30 \| +[0-9.]+ ± [0-9.]+ \|' "$tmp/depth.md" || fail "no 'tg2 @ d30' row: $(cat "$tmp/depth.md")"

# 6. --profile: every test's timed tokens, the forward pass's sections (each matmul section with the weight bytes of
# one call per layer per token: a tg step reads every layer's Q/K/V once), and section times that add up to at most
# the timed runs' wall time; md prints one table per test ending in a total row
"$SPIDER" bench -m "$tmp/tiny.gguf" -t 2 -p 8 -n 3 -r 2 --profile -o json >"$tmp/prof.json" 2>"$tmp/err" \
    || fail "profile bench exited $? ($(cat "$tmp/err"))"
"$SPIDER" gguf-info "$tmp/tiny.gguf" >"$tmp/tiny.info" || fail "gguf-info failed"
python3 - "$tmp/prof.json" "$tmp/tiny.gguf" "$tmp/tiny.info" <<'PY' || fail "bad profile rows: $(cat "$tmp/prof.json")"
import json, sys
pp, tg = json.load(open(sys.argv[1]))
assert pp["profile_tokens"] == 16 and tg["profile_tokens"] == 6, (pp["profile_tokens"], tg["profile_tokens"])
for r in (pp, tg):
    sec = {s["section"]: s for s in r["profile"]}
    for name in ("embed", "norm_add", "matmul_qkv", "rope", "kv_store", "attention", "matmul_attn_out",
                 "matmul_ffn_gate_up", "glu", "matmul_ffn_down", "output_norm", "matmul_output"):
        assert name in sec, (name, sorted(sec))
    assert all(s["ns"] >= 0 and s["calls"] > 0 for s in r["profile"]), r["profile"]
    assert sum(s["ns"] for s in r["profile"]) <= sum(r["samples_ns"]) * 1.001, r
runs = len(tg["samples_ns"]) * 3  # single-token decodes in the timed runs
assert sec["matmul_qkv"]["calls"] == 2 * runs, sec["matmul_qkv"]
# tg: each matmul section's weight bytes per token are the file's sizes of exactly its tensors (spider gguf-info)
size = {}
for line in open(sys.argv[3]):
    f = line.split()
    if len(f) > 2 and f[-2] == "size":
        size[f[1]] = int(f[-1])
def total(*suffixes):
    return sum(v for k, v in size.items() if k.startswith("blk.") and k.endswith(suffixes))
want = {"matmul_qkv": total("attn_q.weight", "attn_k.weight", "attn_v.weight"),
        "matmul_attn_out": total("attn_output.weight"),
        "matmul_ffn_gate_up": total("ffn_gate.weight", "ffn_up.weight"),
        "matmul_ffn_down": total("ffn_down.weight"),
        "matmul_output": size["output.weight"]}
got = {s["section"]: s["weight_bytes"] / tg["profile_tokens"] for s in tg["profile"] if s["weight_bytes"]}
assert got == want, (got, want)
PY
"$SPIDER" bench -m "$tmp/tiny.gguf" -t 1 -p 0 -n 2 -r 1 --profile >"$tmp/prof.md" 2>&1 || fail "md profile failed"
grep -q '^profile: .*tg2, 1 threads (2 tokens' "$tmp/prof.md" || fail "no profile heading: $(cat "$tmp/prof.md")"
grep -Eq '^\| matmul_ffn_down +\| +2\.0 \| +[0-9.]+ \| +[0-9.]+% \| +[0-9.]+ \| +[0-9.]+ \|$' "$tmp/prof.md" \
    || fail "no matmul_ffn_down profile row: $(cat "$tmp/prof.md")"
grep -Eq '^\| total +\| +\| +[0-9.]+ \| +100\.0% \|' "$tmp/prof.md" || fail "no profile total: $(cat "$tmp/prof.md")"

# 7. bad options are errors that name the option
for args in "-t 0" "-p x" "-r 0" "-d -1" "-o csv" "--membw-mib 0" "--bogus 1"; do
    # shellcheck disable=SC2086
    if "$SPIDER" bench -m "$tmp/tiny.gguf" $args >/dev/null 2>"$tmp/err"; then fail "'$args' accepted"; fi
    grep -q -- "${args%% *}" "$tmp/err" || fail "error for '$args' does not name it: $(cat "$tmp/err")"
done
echo "bench CLI: OK"
