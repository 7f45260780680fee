#!/usr/bin/env bash
# Training throughput, Spider vs PyTorch side by side (docs/BENCHMARKS.md, "Training"): the same tiny Llama
# (default 3.3M parameters: n_embd 256, 4 layers, 8 heads / 4 KV heads, MLP 768, byte vocab), the same data windows,
# AdamW + clipping, batch 8 x 128 tokens, the same thread count. Runs the three ROUNDS times, rotating which goes
# first, each under /usr/bin/time -v for the peak RSS: spider, PyTorch as installed, and PyTorch with
# OMP_WAIT_POLICY=PASSIVE (its OpenMP workers otherwise spin, which on a loaded machine costs it a lot).
#
#   scripts/bench_train.sh [SPIDER_BIN] [THREADS] [ROUNDS] [extra args for both, e.g. -s 64 --n-layer 2]
set -euo pipefail
SPIDER=${1:-build/bin/spider}
THREADS=${2:-2}
ROUNDS=${3:-2}
shift $(( $# < 3 ? $# : 3 ))
EXTRA=("$@")
SRC=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

echo "# $(date -u +%FT%TZ) commit $(git -C "$SRC" rev-parse --short HEAD) load $(cut -d' ' -f1-3 /proc/loadavg)"
run_one() {  # run_one NAME CMD...
  local name=$1; shift
  /usr/bin/time -v "$@" --json > "$T/$name.json" 2> "$T/$name.time"
  local rss
  rss=$(grep "Maximum resident set size" "$T/$name.time" | awk '{print $NF}')
  python3 - "$T/$name.json" "$rss" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"| {r['impl']} | {r['params']/1e6:.2f}M | {r['batch']} x {r['seq']} | {r['threads']} | "
      f"{r['ms_per_step']:.1f} ({r['ms_median']:.1f}) | {r['samples_per_s']:.2f} | {r['tokens_per_s']:.0f} | "
      f"{r['cpu_ms_per_step']:.1f} | {int(sys.argv[2]) / 1024:.0f} | {r['loss_first']:.3f} -> {r['loss_last']:.3f} |")
PY
}
echo "| impl | params | batch x seq | threads | ms/step (median) | samples/s | tokens/s | CPU ms/step | peak RSS MiB | loss first -> last |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  case $((r % 3)) in
    1) order="spider torch torch_passive" ;;
    2) order="torch torch_passive spider" ;;
    *) order="torch_passive spider torch" ;;
  esac
  for who in $order; do
    case $who in
      spider)
        run_one spider "$SPIDER" bench-train --data "$SRC/tests/data/train/corpus.txt" -t "$THREADS" "${EXTRA[@]}" ;;
      torch)
        run_one torch python3 "$SRC/tests/reference/bench_train_torch.py" \
          --data "$SRC/tests/data/train/corpus.txt" -t "$THREADS" "${EXTRA[@]}" ;;
      torch_passive)
        run_one torch_passive env OMP_WAIT_POLICY=PASSIVE python3 "$SRC/tests/reference/bench_train_torch.py" \
          --label "OMP passive" --data "$SRC/tests/data/train/corpus.txt" -t "$THREADS" "${EXTRA[@]}" ;;
    esac
  done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
