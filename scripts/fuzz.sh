#!/usr/bin/env bash
# Runs one libFuzzer target for a while with its seed corpus.
#   scripts/fuzz.sh TARGET SECONDS [extra libFuzzer flags...]      e.g. scripts/fuzz.sh fuzz_gguf 120
# Builds build-fuzz/ (clang, ASan + UBSan + libFuzzer) if needed. The working corpus grows in
# build-fuzz/corpus/TARGET; crashes are written to build-fuzz/crashes/TARGET/ (reproduce with
# build-fuzz/bin/TARGET CRASH_FILE). Seeds: fuzz/corpus/TARGET/ if it exists, plus the format's test files.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 TARGET SECONDS [libFuzzer flags...]   (TARGET: fuzz_gguf, fuzz_safetensors, ...)" >&2
  exit 2
fi
target=$1
seconds=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
build=${SPIDER_FUZZ_BUILD:-$root/build-fuzz}
jobs=${SPIDER_FUZZ_JOBS:-2}

if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DSPIDER_FUZZ=ON -DSPIDER_BUILD_TESTS=OFF \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" --target "$target" -j"$jobs"

corpus=$build/corpus/$target
crashes=$build/crashes/$target
mkdir -p "$corpus" "$crashes"
seed_dirs=()
[ -d "$root/fuzz/corpus/$target" ] && seed_dirs+=("$root/fuzz/corpus/$target")
case $target in
  fuzz_gguf)
    cp -n "$root"/tests/data/gguf/*.gguf "$corpus"/ 2>/dev/null || true ;;
  fuzz_safetensors)
    find "$root/tests/data" -name '*.safetensors' -size -2M -exec cp -n {} "$corpus"/ \; 2>/dev/null || true ;;
  fuzz_sentencepiece)
    i=0
    for f in $(find "$root/tests/data" -name tokenizer.model -size -2M); do
      i=$((i + 1)); cp -n "$f" "$corpus/tokenizer_$i.model" 2>/dev/null || true
    done ;;
esac
echo "fuzzing $target for $seconds s (corpus $corpus, $(ls "$corpus" | wc -l) files)"
"$build/bin/$target" "$corpus" "${seed_dirs[@]}" -max_total_time="$seconds" -artifact_prefix="$crashes/" \
  -max_len=${SPIDER_FUZZ_MAX_LEN:-65536} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@"
