#!/usr/bin/env bash
# Variable-length sequences with masking (samples/masking/README.md).
#
#   samples/masking/run.sh KILN OUT [--short]
#
# Compiles masking.keras (Masking(0.0) -> LSTM(128) -> LSTM(64) -> LSTM(1), all
# return_sequences, -> Cropping1D((3, 0)), mae, Adam) and nomask.keras (the same without
# Masking, the same initial weights), both made by tools/gen_seq_samples.py; the C program
# trains both on the same pre-padded batches and compares their losses. Exits non-zero
# unless the masked model's loss dropped and padding adds nothing to its loss (and something
# to the other's). --short: fewer sequences and epochs, for `make test`.
set -euo pipefail

usage() { echo "usage: $0 KILN OUT [--short]" >&2; exit 2; }
[ $# -eq 2 ] || [ $# -eq 3 ] || usage
SHORT=0
if [ $# -eq 3 ]; then [ "$3" = "--short" ] || usage; SHORT=1; fi
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KILN=$(abspath "$1")
OUT=$(abspath "$2")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ -x "$KILN" ] || { echo "run.sh: kiln executable '$KILN' not found; build it first (swift build --product kiln)" >&2; exit 1; }
mkdir -p "$OUT"

if [ $SHORT = 1 ]; then TRAIN=512; TEST=256; EPOCHS=4; else TRAIN=2048; TEST=512; EPOCHS=10; fi

echo "== kiln compile: with and without Masking"
"$KILN" summary "$HERE/masking.keras"
for m in masking nomask; do
    "$KILN" compile "$HERE/$m.keras" -o "$OUT" > /dev/null
    [ -f "$OUT/lib$m.so" ] || { echo "run.sh: kiln compile did not write $OUT/lib$m.so" >&2; exit 1; }
done

echo "== C: train both on the same batches, then compare"
"${CC:-cc}" -std=c99 -O2 -Wall -Wextra -I "$OUT" "$HERE/masking.c" -L "$OUT" -lmasking -lnomask -lm -Wl,-rpath,"$OUT" -o "$OUT/masking"
"$OUT/masking" $TRAIN $TEST $EPOCHS
