#!/usr/bin/env bash
# Builds and runs the samples against the demo CNN.
#
#   samples/run.sh KILN OUT
#
# KILN: the kiln executable; OUT: a folder for the library and the programs.
# Compiles samples/models/mnist_cnn.keras into OUT (with the Swift module
# map and wrapper), then builds the C sample with pkg-config's flags and the
# Swift sample with the wrapper, and runs both; each checks its predictions
# against Keras'. Exits non-zero on the first failure.
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

echo "== kiln compile (with --swift: the module map and the typed wrapper)"
"$KILN" compile "$MODELS/mnist_cnn.keras" -o "$OUT" --swift
for f in libmnist_cnn.so mnist_cnn.h module.modulemap mnist_cnn.swift mnist_cnn.pc; do
    [ -f "$OUT/$f" ] || { echo "run.sh: kiln compile did not write $OUT/$f" >&2; exit 1; }
done

echo "== C sample (flags from pkg-config: mnist_cnn.pc)"
CC=${CC:-cc}
command -v pkg-config >/dev/null || { echo "run.sh: pkg-config not found; make deps installs it" >&2; exit 1; }
FLAGS=$(PKG_CONFIG_PATH="$OUT" pkg-config --cflags --libs mnist_cnn)
# shellcheck disable=SC2086
"$CC" -std=c99 -O2 -Wall -Wextra "$HERE/c/main.c" $FLAGS -lm -o "$OUT/mnist_demo_c"
"$OUT/mnist_demo_c" "$X" "$P"

echo "== Swift sample (the wrapper mnist_cnn.swift, and KilnRuntime's .npy reader)"
SWIFTC=${SWIFTC:-swiftc}
command -v "$SWIFTC" >/dev/null || { echo "run.sh: swiftc not found on PATH" >&2; exit 1; }
# KilnRuntime comes from the build that made KILN: its module and libKilnRuntimeShared.so.
BUILD=$(dirname "$KILN")
ROOT=$(cd "$HERE/.." && pwd)
[ -f "$BUILD/libKilnRuntimeShared.so" ] && [ -d "$BUILD/Modules" ] || {
    echo "run.sh: $BUILD has no libKilnRuntimeShared.so and Modules/: run the samples with the kiln of a swift build (.build/debug/kiln)" >&2; exit 1; }
"$SWIFTC" -I "$OUT" -L "$OUT" -lmnist_cnn -Xlinker -rpath -Xlinker "$OUT" \
    -I "$BUILD/Modules" -Xcc -fmodule-map-file="$ROOT/Sources/CKilnABI/module.modulemap" \
    -L "$BUILD" -lKilnRuntimeShared -Xlinker -rpath -Xlinker "$BUILD" \
    "$HERE/swift/main.swift" "$OUT/mnist_cnn.swift" -o "$OUT/mnist_demo_swift"
"$OUT/mnist_demo_swift" "$X" "$P"

echo "== samples OK"
