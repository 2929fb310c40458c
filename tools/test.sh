#!/usr/bin/env bash
# Runs every test that this machine can run: the emu flavour (kernels on the CPU emulator, every fiber
# order), the emu flavour under AddressSanitizer + UBSan + bounds checks, and the cuda flavour (compiled
# and linked with nvcc; its GPU tests run where there is a GPU and report "skipped" where there is none).
set -uo pipefail
source "$(dirname "$0")/common.sh"

bash "$ROOT/tools/setup.sh" || exit 1
mkdir -p "$ROOT/build"

passed=0 failed=0 skipped=0 status=0

# run_suite NAME CMAKE_OPTIONS...: build one flavour, run its CTest suite and add up the results.
run_suite() {
    local name=$1
    shift
    echo "=== $name: build"
    if ! build_flavour "$name" "$@" >"$ROOT/build/$name.build.log" 2>&1; then
        tail -n 60 "$ROOT/build/$name.build.log"
        echo "=== $name: BUILD FAILED (log: build/$name.build.log)"
        failed=$((failed + 1)) status=1
        return
    fi
    echo "=== $name: test"
    local log="$ROOT/build/$name.ctest.log"
    (cd "$ROOT/build/$name" && ctest --output-on-failure --timeout 900) 2>&1 | tee "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    local total bad skip
    total=$(sed -nE 's/.*tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\2/p' "$log" | tail -n 1)
    bad=$(sed -nE 's/.*tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/p' "$log" | tail -n 1)
    skip=$(grep -cE '\(Skipped\)$' "$log" || true)
    passed=$((passed + ${total:-0} - ${bad:-0} - skip)) failed=$((failed + ${bad:-0})) skipped=$((skipped + skip))
}

run_suite emu -DCUDACNN_FLAVOUR=emu
run_suite emu-asan -DCUDACNN_FLAVOUR=emu -DCUDACNN_SANITIZE=ON
run_suite cuda -DCUDACNN_FLAVOUR=cuda

# The parsers under libFuzzer (tools/fuzz.sh): each target without a finding counts as passed, each finding (or
# a failed build) as failed.
echo "=== fuzz"
bash "$ROOT/tools/fuzz.sh" 2>&1 | tee "$ROOT/build/fuzz.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fuzz_summary=$(sed -nE 's/^fuzz: ([0-9]+) targets, [0-9]+ executions, ([0-9]+) findings$/\1 \2/p' "$ROOT/build/fuzz.log")
if [ -n "$fuzz_summary" ]; then
    read -r fuzz_targets fuzz_findings <<<"$fuzz_summary"
    passed=$((passed + fuzz_targets - fuzz_findings)) failed=$((failed + fuzz_findings))
else
    failed=$((failed + 1)) status=1
fi

echo
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
