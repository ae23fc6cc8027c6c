#!/usr/bin/env bash
# The whole suite, as `make test` runs it: unit tests (XCTest), the Keras
# conformance cases, the C and Swift samples. Ends with one summary line.
set -uo pipefail
kiln=${1:-.build/debug/kiln}
out=${2:-out}
passed=0 failed=0 skipped=0
status=0

log=$(mktemp)
swift test --skip-build --disable-swift-testing 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
line=$(grep -E "^\s*Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -1)
n=$(echo "$line" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
f=$(echo "$line" | sed -E 's/.*with ([0-9]+) failures?.*/\1/')
if [ -z "$line" ]; then n=0; f=1; fi
# XCTest: "Executed N tests, with K tests skipped and F failures": a skip is neither a pass nor a failure.
k=$(echo "$line" | sed -nE 's/.*with ([0-9]+) tests? skipped.*/\1/p'); k=${k:-0}
[ "$rc" -ne 0 ] && [ "$f" = 0 ] && f=1
passed=$((passed + n - f - k)); failed=$((failed + f)); skipped=$((skipped + k))
[ "$rc" -ne 0 ] && status=1

python3 Tests/run_conformance.py --kiln "$kiln" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
p=$(grep -c '^PASS' "$log"); f=$(grep -c '^FAIL' "$log")
[ "$rc" -ne 0 ] && [ "$f" = 0 ] && f=1
passed=$((passed + p)); failed=$((failed + f))
[ "$rc" -ne 0 ] && status=1

# kiln fit's progress, validation, early stopping and checkpoint, kiln evaluate and predict --classes
# against Keras-made runs (Tests/fit_cases, tools/gen_fit_cases.py); numpy only, about 10 s.
python3 Tests/run_fit_cases.py --kiln "$kiln" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
p=$(grep -c '^PASS' "$log"); f=$(grep -c '^FAIL' "$log")
[ "$rc" -ne 0 ] && [ "$f" = 0 ] && f=1
passed=$((passed + p)); failed=$((failed + f))
[ "$rc" -ne 0 ] && status=1

if bash samples/run.sh "$kiln" "$out/samples"; then passed=$((passed + 2)); else failed=$((failed + 1)); status=1; fi
# The Python wrapper (kiln compile --python) used from the system python3 and numpy.
echo "== Python wrapper"
if python3 Tests/wrappers/test_python_wrapper.py "$kiln" "$out/wrappers"; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
# The samples of samples/NAME/ in their short form: each asserts its result (accuracy, F1, loss drop).
for run in samples/*/run.sh; do
    name=$(basename "$(dirname "$run")")
    echo "== sample $name (short)"
    if bash "$run" "$kiln" "$out/$name" --short; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
done
# The library under ASan + UBSan, ThreadSanitizer and valgrind, and checkpoints killed mid-save (short form).
echo "== sanitize (short)"
if bash tools/sanitize.sh "$kiln" "$out/sanitize" --short; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
# The libFuzzer targets of the readers (issue 12), a few seconds each (tools/fuzz.sh; `make fuzz` runs longer).
echo "== fuzz targets (${FUZZ_SECONDS:-3} s each)"
if bash tools/fuzz.sh brief "${FUZZ_SECONDS:-3}"; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
rm -f "$log"

echo
echo "unit tests, conformance cases and samples together:"
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
