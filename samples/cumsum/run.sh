#!/usr/bin/env bash
# Cumulative-sum sequence labelling (samples/cumsum/README.md).
#
#   samples/cumsum/run.sh KILN OUT [--short]
#
# Compiles cumsum.keras (Bidirectional(LSTM(20, return_sequences)) -> TimeDistributed(Dense(1,
# sigmoid)), binary cross-entropy, Adam; made by tools/gen_seq_samples.py) with the Swift module
# map; the C program trains it one sequence per call and labels fresh sequences; the Swift program
# loads the saved state and labels sequences too: first the C program's test sequences (it must
# count exactly the same correct steps), then others. Exits non-zero when an accuracy is below
# MIN_ACC. --short: fewer training sequences, for `make test`.
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

# Over training seeds 1..10: 2,000 sequences gave 0.956-0.968, 10,000 gave 0.985-0.994.
if [ $SHORT = 1 ]; then TRAIN=2000; MIN_ACC=0.94; else TRAIN=10000; MIN_ACC=0.98; fi
TEST=1000
SEED=1   # the C program's test sequences use SEED + 1000

echo "== kiln compile (with --swift-module)"
"$KILN" compile "$HERE/cumsum.keras" -o "$OUT" --swift-module > /dev/null
for f in libcumsum.so cumsum.h module.modulemap; do
    [ -f "$OUT/$f" ] || { echo "run.sh: kiln compile did not write $OUT/$f" >&2; exit 1; }
done

echo "== C: train on $TRAIN sequences, one per call; label $TEST fresh ones"
"${CC:-cc}" -std=c99 -O2 -Wall -Wextra -I "$OUT" "$HERE/cumsum.c" -L "$OUT" -lcumsum -lm -Wl,-rpath,"$OUT" -o "$OUT/cumsum"
"$OUT/cumsum" $TRAIN $TEST $MIN_ACC "$OUT/cumsum.state" $SEED | tee "$OUT/c.txt"

echo "== Swift: the saved state, the C program's test sequences, then others"
SWIFTC=${SWIFTC:-swiftc}
command -v "$SWIFTC" >/dev/null || { echo "run.sh: swiftc not found on PATH" >&2; exit 1; }
"$SWIFTC" -I "$OUT" -L "$OUT" -lcumsum -Xlinker -rpath -Xlinker "$OUT" "$HERE/main.swift" -o "$OUT/cumsum_swift"
"$OUT/cumsum_swift" "$OUT/cumsum.state" $TEST $MIN_ACC $((SEED + 1000)) > "$OUT/swift_same.txt"
c_count=$(sed -n 's/^accuracy on .*(\([0-9]* of [0-9]*\) steps)$/\1/p' "$OUT/c.txt")
s_count=$(sed -n 's/^Swift: accuracy on .*(\([0-9]* of [0-9]*\) steps)$/\1/p' "$OUT/swift_same.txt")
if [ -z "$c_count" ] || [ "$c_count" != "$s_count" ]; then
    echo "run.sh: FAIL: on the same sequences the Swift program counts '$s_count' correct steps, the C program '$c_count'" >&2
    exit 1
fi
echo "Swift, on the C program's test sequences: the same $s_count steps right"
"$OUT/cumsum_swift" "$OUT/cumsum.state" $TEST $MIN_ACC 7
