#!/usr/bin/env bash
# Builds Spider with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/) and runs the test suite under them.
# Extra arguments go to ctest (e.g. -E real_model to skip the slow real-model tests).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-asan}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPIDER_SANITIZE=ON >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
cd "$BUILD_DIR"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --output-on-failure -j2 "$@"
