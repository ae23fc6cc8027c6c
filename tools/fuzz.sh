#!/usr/bin/env bash
# Coverage-guided fuzzing of Kiln's readers with libFuzzer (README "Fuzzing and bounded inputs").
#
#   tools/fuzz.sh build [TARGET...]          build the fuzz targets into .build/fuzz/
#   tools/fuzz.sh run SECONDS [TARGET...]    build, then fuzz each target for SECONDS seconds
#   tools/fuzz.sh runs N [TARGET...]         build, then fuzz each target for N executions
#   tools/fuzz.sh brief SECONDS [TARGET...]  as run, from the committed seeds only, built -Onone
#                                            into .build/fuzz-brief/ (`make test`)
#
# Targets: npy (Sources/KilnRuntime/NPY.swift), keras (the .keras reader: zip, config.json,
# model.weights.h5 through libhdf5), legacy (legacy .h5 models and --weights files, Fuzz/legacy),
# history (the history reader of `kiln plot`), weights
# (the C runtime's kiln_load_weights). The Swift targets are built by swiftc
# -sanitize=fuzzer,address straight from the reader sources (each module compiled once, the
# readers only: no LLVM); the C one by clang -fsanitize=fuzzer,address from Runtime/.
# Seeds: Fuzz/<target>/seeds/ (committed). New inputs the fuzzer finds go to
# .build/fuzz/corpus/<target>/ (not committed), crashes to .build/fuzz/crashes/<target>/.
# A crash, a leak or a timeout (a hang) makes the script exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
mode=${1:-build}; shift || true
out=${FUZZ_OUT:-.build/fuzz}
# `make test`'s brief runs: unoptimized targets of their own (half the build time).
if [ "$mode" = brief ]; then out=${FUZZ_OUT:-.build/fuzz-brief}; FUZZ_SWIFT_OPT=${FUZZ_SWIFT_OPT:--Onone}; fi
[ "${FUZZ_ASAN:-1}" = 0 ] && [ "$mode" != brief ] && out=${FUZZ_OUT:-.build/fuzz-noasan}
budget=0
if [ "$mode" = run ] || [ "$mode" = runs ] || [ "$mode" = brief ]; then budget=${1:?"tools/fuzz.sh $mode needs a number"}; shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(npy history keras legacy weights)
mkdir -p "$out"

SWIFTC=${SWIFTC:-swiftc}
CLANG=${CLANG:-clang}
command -v "$CLANG" >/dev/null || CLANG=/opt/swift/usr/bin/clang
# FUZZ_ASAN=0: libFuzzer without AddressSanitizer, into .build/fuzz-noasan/ (crashes, traps and
# hangs only; several times the executions per second of the ASan build on the targets that
# fork per input).
san=(-sanitize=fuzzer,address)
[ "${FUZZ_ASAN:-1}" = 0 ] && san=(-sanitize=fuzzer)
sflags=(${FUZZ_SWIFT_OPT:--O} -g -use-ld=lld -swift-version 5 -parse-as-library -I "$out" -module-cache-path "$out/modcache")
h5=(-Xcc -I/usr/include/hdf5/serial -I Sources/CHDF5)

# Builds module NAME from the given sources into $out/libNAME.a, when a source is newer.
module() {
    local name=$1; shift
    local lib=$out/lib$name.a
    if [ -f "$lib" ] && [ -z "$(find "$@" -newer "$lib" 2>/dev/null | head -1)" ]; then return 0; fi
    echo "fuzz: compiling module $name" >&2
    "$SWIFTC" "${sflags[@]}" "${san[@]}" "${extra[@]}" -module-name "$name" -emit-module -emit-module-path "$out/$name.swiftmodule" \
        -emit-library -static -o "$lib" "$@"
}

# Links target T from Fuzz/T/fuzz_T.swift and the given libraries.
target() {
    local t=$1; shift
    local exe=$out/fuzz_$t src=Fuzz/$t/fuzz_$t.swift
    if [ -f "$exe" ] && [ -z "$(find "$src" "$@" -newer "$exe" 2>/dev/null | head -1)" ]; then return 0; fi
    echo "fuzz: linking fuzz_$t" >&2
    "$SWIFTC" "${sflags[@]}" "${san[@]}" "${extra[@]}" -module-name "Fuzz_$t" -o "$exe" "$src" "$@" "${libs[@]}"
}

zipsrc=.build/checkouts/ZIPFoundation/Sources/ZIPFoundation
build() {
    local extra=() libs=()
    module KilnSupport Sources/KilnSupport/*.swift
    case $1 in
    npy)
        module KilnRuntime Sources/KilnRuntime/NPY.swift Sources/KilnRuntime/HostTensor.swift
        target npy "$out/libKilnRuntime.a" "$out/libKilnSupport.a" ;;
    history)
        module Kiln Sources/Kiln/LossPlot.swift
        target history "$out/libKiln.a" "$out/libKilnSupport.a" ;;
    keras|legacy)
        [ -d "$zipsrc" ] || { echo "fuzz: $zipsrc is missing; run 'swift build' first (it fetches ZIPFoundation)" >&2; exit 1; }
        extra=(-I "$zipsrc/../CZLib" -Xcc -D_GNU_SOURCE=1)
        module ZIPFoundation "$zipsrc"/*.swift
        # -enable-testing: Fuzz/legacy reads its seed model once, through internal functions.
        extra=("${h5[@]}" -I "$zipsrc/../CZLib" -enable-testing)
        module KilnKeras Sources/KilnKeras/KerasArchive.swift Sources/KilnKeras/HDF5Reader.swift Sources/KilnKeras/KerasModelSpec.swift \
            Sources/KilnKeras/LegacyH5.swift
        libs=(-L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5)
        target "$1" "$out/libKilnKeras.a" "$out/libZIPFoundation.a" "$out/libKilnSupport.a" ;;
    weights)
        local exe=$out/fuzz_weights src=(Fuzz/weights/fuzz_weights.c Runtime/*.c Runtime/*.h)
        if [ -f "$exe" ] && [ -z "$(find "${src[@]}" -newer "$exe" | head -1)" ]; then return 0; fi
        echo "fuzz: compiling fuzz_weights" >&2
        local csan=-fsanitize=fuzzer,address; [ "${FUZZ_ASAN:-1}" = 0 ] && csan=-fsanitize=fuzzer
        "$CLANG" -O1 -g $csan -fuse-ld=lld -I Runtime -o "$exe" Fuzz/weights/fuzz_weights.c Runtime/kiln_runtime.c \
            Runtime/kiln_gemm.c -lopenblas -lm -lpthread ;;
    *) echo "fuzz: no target '$1' (npy, history, keras, legacy, weights)" >&2; exit 2 ;;
    esac
}

# One build at a time per output directory: two runs started together (keras and legacy) would
# otherwise both compile KilnKeras into the same files. The lock is let go before fuzzing.
exec 9>"$out/.build.lock"
flock 9
for t in "${targets[@]}"; do build "$t"; done
flock -u 9
[ "$mode" = build ] && exit 0

status=0
for t in "${targets[@]}"; do
    corpus=$out/corpus/$t crashes=$out/crashes/$t
    if [ "$mode" = brief ]; then corpus=$out/corpus-brief/$t; rm -rf "$corpus"; fi
    mkdir -p "$corpus" "$crashes"
    if [ "$mode" = runs ]; then limit=(-runs="$budget"); else limit=(-max_total_time="$budget"); fi
    echo "== fuzz $t (${limit[*]})"
    log=$out/fuzz_$t.log
    # KILN_MAX_BYTES keeps what a declared size may allocate well under libFuzzer's memory limit
    # (and caps the libhdf5 preflight child's memory). -timeout=40: above the preflight's own
    # 30 s limit, so that a libhdf5 hang is Kiln's to refuse, and a hang of Kiln's is reported.
    # SWIFT_BACKTRACE: the Swift runtime's own crash handler would hide libFuzzer's report.
    # quarantine_size_mb=16 (ASan's default is 256): the keras and legacy targets fork a child per
    # input (HDF5Reader.swift's preflight), and a fork's cost grows with the memory held.
    if KILN_MAX_BYTES=${KILN_MAX_BYTES:-256M} ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:malloc_context_size=8:quarantine_size_mb=16} \
        LSAN_OPTIONS=suppressions=$PWD/Fuzz/lsan.supp SWIFT_BACKTRACE=enable=no \
        "$out/fuzz_$t" "${limit[@]}" -timeout="${FUZZ_TIMEOUT:-40}" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$corpus" "Fuzz/$t/seeds" >"$log" 2>&1; then
        grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" "$log" | tail -2
    else
        echo "fuzz: target $t FAILED (log: $log, inputs: $crashes)"; tail -30 "$log"; status=1
    fi
done
exit $status
