#!/usr/bin/env bash
# Build PetteriAimonen/focus-stack (a peer for `python -m benchmarks.run`) from a clone of its
# repository against Debian's OpenCV, into bench-out/focus-stack/. Debian does not package it.
#   apt-get install libopencv-dev build-essential pkg-config
#   git clone https://github.com/PetteriAimonen/focus-stack ~/focus-stack
#   benchmarks/build_focus_stack.sh ~/focus-stack
set -euo pipefail
src=${1:?usage: benchmarks/build_focus_stack.sh FOCUS_STACK_CLONE}
out="$(cd "$(dirname "$0")/.." && pwd)/bench-out/focus-stack"
pkg-config --exists opencv4 || { echo "OpenCV headers missing: apt-get install libopencv-dev" >&2; exit 1; }
mkdir -p "$out"
make -C "$src" -j"$(nproc)" build/focus-stack
cp "$src/build/focus-stack" "$out/focus-stack"
echo "built $out/focus-stack"
