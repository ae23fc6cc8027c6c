#!/usr/bin/env bash
# The library side of Kiln's reliability checks (`make sanitize`; `make test` runs the
# short form). Compiles the demo CNN (samples/models/mnist_cnn.keras) four ways and runs:
#
#   1. ASan + UBSan (runtime and glue built with -fsanitize=address,undefined through
#      KILN_CC / KILN_CFLAGS): the C sample (predict + a train step), Tests/runtime/api_check.c
#      (every entry point: train steps, save/load round trips, refused weight files, NULL
#      instances and pointers, bad sizes, the input check, stale temporary files) and the
#      checkpoint kill test. Leaks count (LeakSanitizer).
#   2. ThreadSanitizer: Tests/runtime/threads.c, 8 threads x 8 instances (short: x 2)
#      interleaving predict and train steps, bit-identical to one after another, with the
#      library's thread pool shared; and two threads calling one instance (refused as busy).
#   3. valgrind memcheck: the C sample (and, in full, api_check), with the model compiled for
#      x86-64-v3 (KILN_TARGET_CPU: valgrind runs no AVX-512).
#   (Full form: also a recurrent model, free time steps and token ids, under ASan + UBSan
#   and TSan: the scan driver.)
#   4. Crash-safe checkpoints: Tests/runtime/ckpt_kill.c, 40 SIGKILLs of a child saving in a
#      loop; the file must always load whole (old or new), no temporary file may outlive
#      the next save.
#
#   tools/sanitize.sh KILN OUT [--short]
#
# SAN_CC: the C compiler of the sanitizer builds (default gcc; clang works for ASan/UBSan,
# the Swift toolchain's clang lacks what its TSan runtime links against). Exits non-zero on
# the first failure; a sanitizer report is a failure.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 KILN OUT [--short]" >&2
    exit 2
fi
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
KILN=$(abspath "$1")
OUT=$(abspath "$2")
SHORT=0
[ "${3:-}" = "--short" ] && SHORT=1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL="$ROOT/samples/models/mnist_cnn.keras"
X="$ROOT/samples/models/mnist_cnn_x.npy"
P="$ROOT/samples/models/mnist_cnn_p.npy"
T="$ROOT/Tests/runtime"
SAN_CC=${SAN_CC:-gcc}
[ -x "$KILN" ] || { echo "sanitize.sh: kiln executable '$KILN' not found; build it first" >&2; exit 1; }
command -v "$SAN_CC" >/dev/null || { echo "sanitize.sh: C compiler '$SAN_CC' not found" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "sanitize.sh: valgrind not found; run tools/install-deps.sh (make deps)" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT"
start=$SECONDS

# compile VARIANT [ENV=VALUE ...]: the demo CNN into OUT/VARIANT with the given environment
# (the model is $MODEL, named $NAME).
NAME=mnist_cnn
compile() {
    local dir="$OUT/$1"; shift
    env "$@" "$KILN" compile "$MODEL" -o "$dir" --name "$NAME" >/dev/null
}
# build VARIANT PROGRAM CC FLAGS...: a test program linked against OUT/VARIANT/libmnist_cnn.so.
build() {
    local dir="$OUT/$1" prog=$2 cc=$3; shift 3
    local src="$T/$prog.c"
    [ "$prog" = demo ] && src="$ROOT/samples/c/main.c"
    local named=()   # api_check also calls the library's NAME_* functions
    [ "$prog" = api_check ] && named=(-include "$dir/$NAME.h" -DKILN_MODEL="$NAME")
    "$cc" -std=c11 -Wall -Wextra "$@" -I "$ROOT/Runtime" -I "$dir" "${named[@]}" \
        "$src" -L "$dir" -l"$NAME" -lm -lpthread -Wl,-rpath,"$dir" -o "$dir/$prog"
}

ASAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O0"
TSAN_FLAGS="-fsanitize=thread -g -O1"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:exitcode=1
KILLS=40

echo "== ASan + UBSan ($SAN_CC)"
compile asan KILN_CC="$SAN_CC" KILN_CFLAGS="$ASAN_FLAGS"
for p in demo api_check ckpt_kill; do build asan $p "$SAN_CC" $ASAN_FLAGS; done
"$OUT/asan/demo" "$X" "$P" | tail -1
mkdir -p "$OUT/asan/scratch" "$OUT/asan/ck"
"$OUT/asan/api_check" "$OUT/asan/scratch"
"$OUT/asan/ckpt_kill" "$OUT/asan/ck" $((SHORT ? 10 : KILLS))

echo "   ($((SECONDS - start)) s so far)"
echo "== ThreadSanitizer ($SAN_CC)"
# Arenas for 16 rows (not 256): ThreadSanitizer's calloc touches every byte it hands out.
compile tsan KILN_CC="$SAN_CC" KILN_CFLAGS="$TSAN_FLAGS -DKILN_DEFAULT_CAPACITY=16"
build tsan threads "$SAN_CC" $TSAN_FLAGS
if [ $SHORT = 1 ]; then "$OUT/tsan/threads" 1 2; else "$OUT/tsan/threads" 3 8; fi

echo "   ($((SECONDS - start)) s so far)"
echo "== valgrind memcheck"
VG_ENV=(KILN_CFLAGS="-g -O1")
[ "$(uname -m)" = x86_64 ] && VG_ENV=(KILN_TARGET_CPU=x86-64-v3 KILN_CFLAGS="-march=x86-64-v3 -g -O1")
compile vg "${VG_ENV[@]}"
build vg demo cc -g -O1
VALGRIND=(valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect --child-silent-after-fork=yes)
"${VALGRIND[@]}" "$OUT/vg/demo" "$X" "$P" | tail -1
if [ $SHORT = 0 ]; then
    build vg api_check cc -g -O1
    mkdir -p "$OUT/vg/scratch"
    "${VALGRIND[@]}" "$OUT/vg/api_check" "$OUT/vg/scratch"
fi

echo "   ($((SECONDS - start)) s so far)"
if [ $SHORT = 0 ]; then
    # A recurrent model with a free number of time steps and token ids: the scan driver
    # (kiln_scan.c) under ASan + UBSan and under ThreadSanitizer.
    echo "== a recurrent model (Tests/cases/free_embedding_bilstm_tagger) under ASan + UBSan and TSan"
    MODEL="$ROOT/Tests/cases/free_embedding_bilstm_tagger/model.keras"
    NAME=tagger
    compile rnn_asan KILN_CC="$SAN_CC" KILN_CFLAGS="$ASAN_FLAGS"
    build rnn_asan api_check "$SAN_CC" $ASAN_FLAGS
    mkdir -p "$OUT/rnn_asan/scratch"
    "$OUT/rnn_asan/api_check" "$OUT/rnn_asan/scratch"
    compile rnn_tsan KILN_CC="$SAN_CC" KILN_CFLAGS="$TSAN_FLAGS -DKILN_DEFAULT_CAPACITY=16"
    build rnn_tsan threads "$SAN_CC" $TSAN_FLAGS
    "$OUT/rnn_tsan/threads" 2 8
    MODEL="$ROOT/samples/models/mnist_cnn.keras"
    NAME=mnist_cnn
    echo "   ($((SECONDS - start)) s so far)"
fi

echo "== checkpoints killed mid-save"
compile plain
build plain ckpt_kill cc -O2
mkdir -p "$OUT/plain/ck"
"$OUT/plain/ckpt_kill" "$OUT/plain/ck" $KILLS

echo "== sanitize OK ($((SECONDS - start)) s)"
