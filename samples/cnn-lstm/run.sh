#!/usr/bin/env bash
# The CNN-LSTM sample: handwritten digits cut into four tiles, trained from C,
# classified from Swift. See samples/cnn-lstm/README.md.
#
#   samples/cnn-lstm/run.sh KILN OUT [--short] [--mnist DIR]
#
# KILN: the kiln executable; OUT: a scratch folder. Steps:
#   1. idx_test checks the MNIST IDX reader (idx.h) on good and malformed files it writes;
#   2. the UCI digits (data/digits.csv.gz): kiln compiles models/cnn_lstm_digits.keras, train.c
#      trains it on 1,500 images and checks the accuracy on the 297 held out (>= 90% after 15
#      epochs; --short: >= 85% after 4), saves the weights, and classify.swift loads them and
#      must classify exactly as many held-out images correctly;
#   3. the MNIST path (models/cnn_lstm_mnist.keras, 4 tiles of 14x14, IDX files): on MNIST
#      itself with --mnist DIR (the four IDX files, decompressed or .gz), else on the UCI
#      digits grown to 28x28 and written as IDX files by idx_test.
# Exits non-zero on the first failure.
set -euo pipefail

usage() { echo "usage: $0 KILN OUT [--short] [--mnist DIR]" >&2; exit 2; }
[ $# -ge 2 ] || usage
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KILN=$(abspath "$1")
OUT=$(abspath "$2")
shift 2
SHORT=0 MNIST=""
while [ $# -gt 0 ]; do
    case "$1" in
        --short) SHORT=1; shift ;;
        --mnist) [ $# -ge 2 ] || usage; MNIST=$(abspath "$2"); shift 2 ;;
        *) usage ;;
    esac
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CC=${CC:-cc}
SWIFTC=${SWIFTC:-swiftc}
CFLAGS="-std=c99 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra"

[ -x "$KILN" ] || { echo "run.sh: kiln executable '$KILN' not found; build it first (swift build --product kiln)" >&2; exit 1; }
command -v "$SWIFTC" >/dev/null || { echo "run.sh: swiftc not found on PATH" >&2; exit 1; }
command -v gzip >/dev/null || { echo "run.sh: gzip not found on PATH (it decompresses data/digits.csv.gz)" >&2; exit 1; }
if [ -n "$MNIST" ] && [ ! -d "$MNIST" ]; then echo "run.sh: --mnist $MNIST is not a folder" >&2; exit 1; fi
mkdir -p "$OUT"
start=$(date +%s)

if [ $SHORT = 1 ]; then
    DIGITS_ARGS=(--epochs 4 --min-accuracy 85)
    LIKE_ARGS=(--epochs 2 --min-accuracy 60)
    MNIST_ARGS=(--epochs 1 --train 12000 --test 2000 --min-accuracy 80)
else
    DIGITS_ARGS=(--epochs 15 --min-accuracy 90)
    LIKE_ARGS=(--epochs 6 --min-accuracy 85)
    MNIST_ARGS=(--epochs 3 --min-accuracy 90)
fi

echo "== the IDX reader (idx_test)"
"$CC" $CFLAGS -I "$HERE" "$HERE/idx_test.c" -o "$OUT/idx_test"
rm -rf "$OUT/idx-check" && mkdir -p "$OUT/idx-check"
"$OUT/idx_test" check "$OUT/idx-check"

gzip -dc "$HERE/data/digits.csv.gz" > "$OUT/digits.csv.tmp"
mv "$OUT/digits.csv.tmp" "$OUT/digits.csv"

# One model: compile (--name cnn_lstm, with the module map), train from C, classify from Swift.
#   run_model NAME TILE DATA-FLAGS... -- TRAIN-FLAGS...
run_model() {
    local name=$1 tile=$2 dir="$OUT/$1"
    shift 2
    local data=()
    while [ "$1" != "--" ]; do data+=("$1"); shift; done
    shift
    echo "== $name: kiln compile"
    "$KILN" compile "$HERE/models/cnn_lstm_$name.keras" -o "$dir" --name cnn_lstm --swift-module
    echo "== $name: C program (train.c, TILE=$tile)"
    "$CC" $CFLAGS -DTILE="$tile" -I "$dir" "$HERE/train.c" -L "$dir" -lcnn_lstm -lm -Wl,-rpath,"$dir" -o "$dir/train"
    "$dir/train" "${data[@]}" "$@" --save-weights "$dir/weights.bin" --write-heldout "$dir/heldout" | tee "$dir/train.log"
    local correct
    correct=$(sed -n 's|^held-out accuracy: \([0-9]*\)/.*|\1|p' "$dir/train.log")
    [ -n "$correct" ] || { echo "run.sh: train printed no held-out accuracy" >&2; exit 1; }
    echo "== $name: Swift program (classify.swift)"
    local swiftflags=()
    [ "$tile" = 14 ] && swiftflags=(-D TILE14)
    "$SWIFTC" "${swiftflags[@]}" -I "$dir" -L "$dir" -lcnn_lstm -Xlinker -rpath -Xlinker "$dir" "$HERE/classify.swift" -o "$dir/classify"
    "$dir/classify" "$dir/weights.bin" "$dir/heldout_x.npy" "$dir/heldout_y.npy" --expect-correct "$correct"
}

run_model digits 4 --csv "$OUT/digits.csv" -- "${DIGITS_ARGS[@]}"

if [ -n "$MNIST" ]; then
    # MNIST's files as published are .gz: decompress them into OUT (the C program reads plain IDX).
    data="$MNIST"
    if [ ! -e "$MNIST/train-images-idx3-ubyte" ] && [ ! -e "$MNIST/train-images.idx3-ubyte" ] && [ -e "$MNIST/train-images-idx3-ubyte.gz" ]; then
        data="$OUT/mnist-data"
        mkdir -p "$data"
        for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
            [ -e "$MNIST/$f.gz" ] || { echo "run.sh: --mnist $MNIST has train-images-idx3-ubyte.gz but no $f.gz" >&2; exit 1; }
            gzip -dc "$MNIST/$f.gz" > "$data/$f.tmp"
            mv "$data/$f.tmp" "$data/$f"
        done
    fi
    run_model mnist 14 --mnist "$data" -- "${MNIST_ARGS[@]}"
else
    echo "== MNIST path on the UCI digits grown to 28x28 (no MNIST here; give --mnist DIR for the real one)"
    rm -rf "$OUT/mnist-like" && mkdir -p "$OUT/mnist-like"
    "$OUT/idx_test" mnist-like "$OUT/digits.csv" "$OUT/mnist-like"
    run_model mnist 14 --mnist "$OUT/mnist-like" -- "${LIKE_ARGS[@]}"
fi

echo "== cnn-lstm sample OK ($(( $(date +%s) - start )) s)"
