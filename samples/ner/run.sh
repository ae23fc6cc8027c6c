#!/usr/bin/env bash
# The BiLSTM-CRF named-entity tagger: compile the Keras model, encode the corpus, train and
# score it from C.
#
#   samples/ner/run.sh KILN OUT [--short]
#
# KILN: the kiln executable; OUT: a scratch folder. Compiles samples/ner/ner.keras (frozen
# Embedding from data/vectors.txt -> Bidirectional(LSTM(32)) -> TimeDistributed(Dense(7)) ->
# kiln_crf.CRF, Adam, CRF loss) into OUT/libner.so, turns data/train.txt and data/test.txt
# into token and tag ids with `kiln vectors`, builds ner.c against the library alone, trains
# for 8 epochs (5 with --short) and exits non-zero unless the held-out entity F1 is >= 0.9.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ] || { [ $# -eq 3 ] && [ "$3" != "--short" ]; }; then
    echo "usage: $0 KILN OUT [--short]" >&2
    exit 2
fi
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KILN=$(abspath "$1")
OUT=$(abspath "$2")
EPOCHS=8
[ $# -eq 3 ] && EPOCHS=5
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA="$HERE/data"

[ -x "$KILN" ] || { echo "run.sh: kiln executable '$KILN' not found; build it first (swift build --product kiln)" >&2; exit 1; }
mkdir -p "$OUT"

echo "== kiln compile"
"$KILN" compile "$HERE/ner.keras" -o "$OUT" --swift-module
for f in libner.so ner.h; do
    [ -f "$OUT/$f" ] || { echo "run.sh: kiln compile did not write $OUT/$f" >&2; exit 1; }
done

echo "== token and tag ids"
rm -rf "$OUT/data"
"$KILN" vectors "$DATA/vectors.txt" -o "$OUT/data" --conll "$DATA/train.txt" --conll "$DATA/test.txt" --max-length 16
# The model's embedding rows follow this vocabulary (tools/gen_ner_model.py built both).
for f in vocab.txt tags.txt; do
    cmp -s "$OUT/data/$f" "$DATA/$f" || { echo "run.sh: kiln vectors wrote a $f that differs from the one ner.keras was made with ($DATA/$f)" >&2; exit 1; }
done
IDS="$OUT/data"

echo "== C program"
CC=${CC:-cc}
"$CC" -std=c99 -O2 -Wall -Wextra -Werror -I "$OUT" "$HERE/ner.c" -L "$OUT" -lner -lm -Wl,-rpath,"$OUT" -o "$OUT/ner"
"$OUT/ner" "$IDS" --epochs "$EPOCHS" --min-f1 0.9
