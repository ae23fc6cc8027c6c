#!/usr/bin/env bash
# Builds and runs the samples against the demo CNN.
#
#   samples/run.sh KILN OUT
#
# KILN: the kiln executable; OUT: a folder for the library and the programs.
# Compiles samples/models/mnist_cnn.keras into OUT (with the Swift module
# map), then builds and runs the C sample and the Swift sample; each checks
# its predictions against Keras'. Exits non-zero on the first failure.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 KILN OUT" >&2
    exit 2
fi
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KILN=$(abspath "$1")
OUT=$(abspath "$2")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODELS="$HERE/models"
X="$MODELS/mnist_cnn_x.npy"
P="$MODELS/mnist_cnn_p.npy"

[ -x "$KILN" ] || { echo "run.sh: kiln executable '$KILN' not found; build it first (swift build --product kiln)" >&2; exit 1; }
mkdir -p "$OUT"

echo "== kiln compile (with --swift-module)"
"$KILN" compile "$MODELS/mnist_cnn.keras" -o "$OUT" --swift-module
for f in libmnist_cnn.so mnist_cnn.h module.modulemap; do
    [ -f "$OUT/$f" ] || { echo "run.sh: kiln compile did not write $OUT/$f" >&2; exit 1; }
done

echo "== C sample"
CC=${CC:-cc}
"$CC" -std=c99 -O2 -Wall -Wextra -I "$OUT" "$HERE/c/main.c" -L "$OUT" -lmnist_cnn -lm -Wl,-rpath,"$OUT" -o "$OUT/mnist_demo_c"
"$OUT/mnist_demo_c" "$X" "$P"

echo "== Swift sample"
SWIFTC=${SWIFTC:-swiftc}
command -v "$SWIFTC" >/dev/null || { echo "run.sh: swiftc not found on PATH" >&2; exit 1; }
"$SWIFTC" -I "$OUT" -L "$OUT" -lmnist_cnn -Xlinker -rpath -Xlinker "$OUT" "$HERE/swift/main.swift" -o "$OUT/mnist_demo_swift"
"$OUT/mnist_demo_swift" "$X" "$P"

echo "== samples OK"
