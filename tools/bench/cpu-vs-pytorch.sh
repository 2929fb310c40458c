#!/usr/bin/env bash
# The CifarCNN at batch 128 on this machine's CPU, cudacnn's fast CPU path beside PyTorch (Debian's python3-torch)
# with the same thread count, in one invocation: the training step (forward, backward, Adam) and the inference
# forward pass, each timed by its own tool in the same way (fixed random batch already in memory, warm-up, median
# of repeats of several steps). Prints images/s for both and cudacnn's throughput over PyTorch's, and writes
# cudacnn.json, pytorch.json and report.md (tools/bench/report.py) to the output folder.
#
#   bash tools/bench/cpu-vs-pytorch.sh [--threads N (default: all cores)] [--repeats 3] [--steps 3]
#                                      [--rounds 2] [--out DIR (default: build/bench-cpu)]
#                                      [--build DIR (default: build/emu, configured and built here)]
#
# --rounds alternates the two tools that many times and keeps each one's best round, so that a burst of other
# work on the machine does not decide the comparison.
set -euo pipefail
source "$(dirname "$0")/../common.sh"

threads=$(nproc) repeats=3 steps=3 rounds=2 out="$ROOT/build/bench-cpu" build="$ROOT/build/emu"
while [ $# -gt 0 ]; do
    case $1 in
        --threads) threads=$2 ;;
        --repeats) repeats=$2 ;;
        --steps) steps=$2 ;;
        --rounds) rounds=$2 ;;
        --out) out=$2 ;;
        --build) build=$2 ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "cpu-vs-pytorch.sh: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
    esac
    [ $# -ge 2 ] || { echo "cpu-vs-pytorch.sh: $1 needs a value" >&2; exit 2; }
    shift 2
done
for value in "$threads" "$repeats" "$steps" "$rounds"; do
    [[ $value =~ ^[1-9][0-9]*$ ]] || { echo "cpu-vs-pytorch.sh: '$value' is not a whole number >= 1" >&2; exit 2; }
done
# Debian's python3-torch lives in /usr/bin/python3's packages, which another python3 first on PATH may not see.
PYTHON=
for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c "import torch" 2>/dev/null; then PYTHON=$candidate; break; fi
done
[ -n "$PYTHON" ] || {
    echo "cpu-vs-pytorch.sh: PyTorch is missing; install Debian's python3-torch (apt-get install python3-torch)" >&2
    exit 1
}

bash "$ROOT/tools/setup.sh" >/dev/null
mkdir -p "$ROOT/build" "$out"
cmake -S "$ROOT" -B "$build" -G Ninja -DCUDACNN_FLAVOUR=emu >"$out/configure.log"
cmake --build "$build" --target cudacnn-bench >"$out/build.log" || { tail -n 40 "$out/build.log" >&2; exit 1; }

for round in $(seq "$rounds"); do
    echo "round $round of $rounds: cudacnn (--device cpu, $threads threads), then PyTorch ($threads threads)"
    "$build/cudacnn-bench" --model cifar_cnn -b 128 --algos cpu --threads "$threads" \
        --filter '^(train_step|infer_step|epoch) ' --warmup 1 --repeats "$repeats" --steps "$steps" \
        --json "$out/cudacnn-$round.json" >"$out/cudacnn-$round.log"
    "$PYTHON" "$ROOT/tools/bench/pytorch_bench.py" --device cpu --threads "$threads" --variants eager --no-layers \
        --no-augment -b 128 --warmup 1 --repeats "$repeats" --steps "$steps" \
        --json "$out/pytorch-$round.json" >"$out/pytorch-$round.log"
done

python3 - "$out" "$rounds" "$threads" <<'PY'
import json, sys
out, rounds, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def best(tool):
    """Per op, the round with the most images/s; its whole report is kept for report.py."""
    reports = [json.load(open(f"{out}/{tool}-{r}.json")) for r in range(1, rounds + 1)]
    rates = {}
    for report in reports:
        for rec in report["records"]:
            if rec["op"] in ("train_step", "infer_step") and rec["status"] == "ok":
                rates[rec["op"]] = max(rates.get(rec["op"], 0.0), rec["images_per_s"])
    best_report = max(reports, key=lambda rep: sum(rec.get("images_per_s") or 0 for rec in rep["records"]))
    json.dump(best_report, open(f"{out}/{tool}.json", "w"), indent=1)
    return rates

ours, theirs = best("cudacnn"), best("pytorch")
print(f"\nCifarCNN, batch 128, {threads} threads (best of {rounds} rounds):")
print(f"{'':<22}{'cudacnn cpu':>14}{'PyTorch':>14}{'cudacnn / PyTorch':>20}")
for op, name in (("train_step", "training images/s"), ("infer_step", "inference images/s")):
    a, b = ours.get(op), theirs.get(op)
    ratio = f"{a / b:.2f}×" if a and b else "–"
    print(f"{name:<22}{a or 0:>14.1f}{b or 0:>14.1f}{ratio:>20}")
PY
python3 "$ROOT/tools/bench/report.py" "$out/cudacnn.json" "$out/pytorch.json" --out "$out/report.md"
echo "files: $out/{cudacnn,pytorch}.json, $out/report.md"
