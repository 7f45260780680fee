#!/usr/bin/env bash
# Installs the pinned Python oracle packages used ONLY by the reference scripts in tests/reference/ (goldens for the
# parity tests) and by the speed comparison (scripts/bench_vs_llamacpp.sh). None of this is part of the product,
# of the runtime or of CI: Spider itself never runs Python at inference time.
#
# Optionally (--llamacpp) it also builds llama.cpp's llama-bench / llama-perplexity / llama-tokenize under
# $ORACLE_DIR (default /work/oracle, outside the repository) from the llama.cpp sources vendored in the
# llama-cpp-python sdist, so the speed peer is exactly the llama.cpp that the Python oracle uses.
set -euo pipefail

PY=${PYTHON:-python3}
ORACLE_DIR=${ORACLE_DIR:-/work/oracle}
JOBS=${JOBS:-2}

# Pins (checked to exist on PyPI on 2026-12-04).
LLAMA_CPP_PYTHON=llama-cpp-python==0.3.36 # vendors ggml-org/llama.cpp@0c1e57098
PINS=(
  torch==2.15.0
  transformers==5.23.0
  safetensors==0.8.0
  sentencepiece==0.2.3
  numpy==2.4.6
  gguf==0.19.0
  accelerate==1.10.0 # transformers needs it to load a GGUF (tests/reference/lora_throughput_torch.py)
  diffusers==0.42.1  # DDIM / DDPM scheduler goldens (tests/reference/make_scheduler_goldens.py)
)

$PY -m pip install --disable-pip-version-check "${PINS[@]}"
# llama-cpp-python compiles llama.cpp from source: native CPU flags, no curl, bounded parallelism.
CMAKE_BUILD_PARALLEL_LEVEL=$JOBS CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF" \
  $PY -m pip install --disable-pip-version-check "$LLAMA_CPP_PYTHON"

if [ "${1:-}" = "--llamacpp" ]; then
  mkdir -p "$ORACLE_DIR/sdist"
  $PY -m pip download --no-deps --no-binary :all: -d "$ORACLE_DIR/sdist" "$LLAMA_CPP_PYTHON"
  src="$ORACLE_DIR/llama.cpp"
  if [ ! -d "$src" ]; then
    tar -xzf "$ORACLE_DIR"/sdist/llama_cpp_python-0.3.36.tar.gz -C "$ORACLE_DIR"
    cp -r "$ORACLE_DIR/llama_cpp_python-0.3.36/vendor/llama.cpp" "$src"
  fi
  # Native flags minus AMX: on a virtual Xeon that lists amx_tile/amx_int8 in /proc/cpuinfo but does not grant the
  # tile state, llama-bench's prompt processing dies with SIGILL (seen 2026-12-05). Spider has no AMX kernels either,
  # so the two engines are compared on the same instruction sets (AVX-512 + VNNI).
  noamx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_COMMIT=0c1e57098 \
    -DCMAKE_C_FLAGS="$noamx" -DCMAKE_CXX_FLAGS="$noamx"
  cmake --build "$src/build" --target llama-bench llama-perplexity llama-tokenize -j"$JOBS"
  echo "[setup-reference] llama.cpp tools in $src/build/bin"
fi
