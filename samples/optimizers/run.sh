#!/usr/bin/env bash
# The optimizer race (samples/optimizers/README.md).
#
#   samples/optimizers/run.sh KILN OUT [--short]
#
# Compiles race.keras (stacked LSTM + Dropout -> Dense(1), made by tools/gen_seq_samples.py)
# once per Keras optimizer with `kiln compile --optimizer O --learning-rate R`, makes the
# y = 3.3x + 2 + noise sequences (race data), trains each library for the same epochs with
# `kiln fit --history`, draws the seven loss curves with `kiln plot` (OUT/race.svg), and runs
# the C program that links all seven libraries: test MSE of each on the held-out set, which
# converged fastest. Exits non-zero unless every optimizer's loss dropped and the best test
# MSE is below MAX_TEST. --short: fewer sequences and epochs, for `make test`.
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

OPTIMIZERS="sgd rmsprop adagrad adadelta adam adamax nadam"
LR=0.01          # one learning rate for every optimizer
BATCH=32
LEVEL=0.2        # "converged": a training loss below this (noise alone gives 0.04; dropout adds to training loss)
if [ $SHORT = 1 ]; then
    TRAIN=640; TEST=200; EPOCHS=6; MAX_TEST=0.15
else
    TRAIN=2000; TEST=500; EPOCHS=20; MAX_TEST=0.06
fi

echo "== kiln compile, once per optimizer (learning rate $LR)"
for o in $OPTIMIZERS; do
    "$KILN" compile "$HERE/race.keras" -o "$OUT" --name "race_$o" --optimizer "$o" --learning-rate $LR > /dev/null
    [ -f "$OUT/librace_$o.so" ] || { echo "run.sh: kiln compile did not write $OUT/librace_$o.so" >&2; exit 1; }
done

echo "== the C program (links the seven libraries)"
LIBS=""
for o in $OPTIMIZERS; do LIBS="$LIBS -lrace_$o"; done
"${CC:-cc}" -std=c99 -O2 -Wall -Wextra -I "$OUT" "$HERE/race.c" -L "$OUT" $LIBS -lm -Wl,-rpath,"$OUT" -o "$OUT/race"

echo "== data: $TRAIN training and $TEST test sequences"
"$OUT/race" data "$OUT" $TRAIN $TEST

echo "== kiln fit: $EPOCHS epochs, batch $BATCH, each optimizer"
for o in $OPTIMIZERS; do
    rm -rf "$OUT/weights_$o"
    "$KILN" fit "$OUT/librace_$o.so" --x "$OUT/x_train.npy" --y "$OUT/y_train.npy" --epochs $EPOCHS --batch-size $BATCH \
        --seed 7 --history "$OUT/$o.json" --save-weights "$OUT/weights_$o" 2> "$OUT/fit_$o.log"
done

echo "== kiln plot"
HISTORIES=""
for o in $OPTIMIZERS; do HISTORIES="$HISTORIES $OUT/$o.json"; done
"$KILN" plot $HISTORIES -o "$OUT/race.svg"
echo "wrote $OUT/race.svg"

echo "== the race"
"$OUT/race" report "$OUT" $LEVEL $MAX_TEST
