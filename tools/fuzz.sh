#!/usr/bin/env bash
# Fuzzes every parser: builds the libFuzzer targets (tests/fuzz, clang++ with ASan + UBSan, in build/fuzz) and
# runs each for FUZZ_SECONDS seconds (default 30), FUZZ_JOBS (default 2) at a time, from a scratch copy of the
# committed seed corpus (tests/fuzz/corpus/<target>, so runs add nothing to the repository), after replaying
# the saved findings (tests/fuzz/regressions/<target>). Prints each target's executions (libFuzzer's final
# stat::number_of_executed_units) and, for a finding (crash, sanitizer report, leak, out-of-memory, timeout,
# an exception other than cudacnn's), the path of the input that caused it; exits 1 on any finding.
# Last line: "fuzz: N targets, E executions, F findings" (tools/test.sh reads it).
# Usage: [FUZZ_SECONDS=30] [FUZZ_JOBS=2] [FUZZ_TARGETS="cifar image"] tools/fuzz.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"

seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-2}
fuzz_dir="$ROOT/tests/fuzz"
mkdir -p "$ROOT/build"

echo "=== fuzz: build (log: build/fuzz.build.log)"
if ! BUILD_TARGETS=cudacnn_fuzz build_flavour fuzz -DCUDACNN_FLAVOUR=emu -DCUDACNN_FUZZ=ON \
        -DCMAKE_CXX_COMPILER=clang++ -DCUDACNN_BUILD_TESTS=OFF >"$ROOT/build/fuzz.build.log" 2>&1; then
    tail -n 40 "$ROOT/build/fuzz.build.log"
    echo "fuzz: BUILD FAILED (log: build/fuzz.build.log)"
    exit 1
fi

targets=${FUZZ_TARGETS:-$(cd "$fuzz_dir/corpus" && ls)}
runs="$ROOT/build/fuzz/runs"
rm -rf "$runs"

# run_target NAME: one libFuzzer run in build/fuzz/runs/NAME (corpus/, artifacts/, log).
run_target() {
    local name=$1 dir="$runs/$1"
    mkdir -p "$dir/artifacts"
    cp -r "$fuzz_dir/corpus/$name" "$dir/corpus"
    local dict=() options=(-timeout=25 -rss_limit_mb=2048 -artifact_prefix="$dir/artifacts/")
    [ -f "$fuzz_dir/dict/$name.dict" ] && dict=("-dict=$fuzz_dir/dict/$name.dict")
    # TMPDIR: the targets' scratch files, left behind by a crash, stay in the run's folder.
    export TMPDIR="$dir" UBSAN_OPTIONS=print_stacktrace=1
    # The saved findings first, each whole (as a corpus they would be cut to the fuzzing length), then the fuzzing.
    local regressions=("$fuzz_dir/regressions/$name"/*)
    if [ -e "${regressions[0]}" ] &&
        ! "$ROOT/build/fuzz/fuzz/fuzz_$name" "${options[@]}" "${regressions[@]}" >"$dir/log" 2>&1; then
        echo 1 >"$dir/status"
        return
    fi
    "$ROOT/build/fuzz/fuzz/fuzz_$name" "${options[@]}" -max_total_time="$seconds" -print_final_stats=1 \
        "${dict[@]}" "$dir/corpus" >"$dir/log" 2>&1
    echo $? >"$dir/status"
}

for name in $targets; do
    if [ ! -x "$ROOT/build/fuzz/fuzz/fuzz_$name" ]; then
        echo "fuzz: no target fuzz_$name for tests/fuzz/corpus/$name" >&2
        exit 1
    fi
done
echo "=== fuzz: $seconds s per target, $jobs at a time"
running=0
for name in $targets; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_target "$name" &
    running=$((running + 1))
done
wait

count=0 total=0 findings=0
for name in $targets; do
    dir="$runs/$name"
    executions=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$dir/log" | tail -n 1)
    count=$((count + 1)) total=$((total + ${executions:-0}))
    if [ "$(cat "$dir/status")" = 0 ]; then
        printf '  %-13s %10s executions, no finding\n' "$name" "${executions:-0}"
    else
        findings=$((findings + 1))
        artifact=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$dir/log" | tail -n 1)
        # A saved regression that fails again: the file it was running.
        [ -n "$artifact" ] || artifact=$(sed -nE 's/^Running: (.*)$/\1/p' "$dir/log" | tail -n 1)
        printf '  %-13s %10s executions, FINDING: %s\n' "$name" "${executions:-0}" \
            "$(grep -m 1 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|terminate called)' "$dir/log")"
        echo "                input: ${artifact:-(none written)}; log: ${dir#"$ROOT/"}/log"
        echo "                replay: build/fuzz/fuzz/fuzz_$name ${artifact:-INPUT}; keep it as a regression:"
        echo "                tests/fuzz/regressions/$name/ (tests/io/fuzz_regressions_test.cpp replays it)"
    fi
done
echo "fuzz: $count targets, $total executions, $findings findings"
[ "$findings" -eq 0 ]
