#!/usr/bin/env bash
# cudacnn-train under mpirun, as a user starts it: 2 processes on the CPU path; rank 0 alone prints the log and
# writes the checkpoint, and a rank that fails ends the whole run instead of leaving the other waiting.
# Usage: mpirun_cli_test.sh MPIEXEC CUDACNN_TRAIN
set -uo pipefail
mpiexec=$1 train=$2
folder=$(mktemp -d)
trap 'rm -rf "$folder"' EXIT
fail() { echo "FAIL: $*"; echo "--- log"; cat "$folder/log"; exit 1; }

# 20 steps: rank 0's output is mpirun's terminal (a bar, 40 reports an epoch), the other's is dropped; both must
# read the metrics at the same steps.
timeout 120 "$mpiexec" -n 2 "$train" --model small_cnn --dataset synthetic --synthetic-size 320,16 --epochs 1 -b 8 \
    --device cpu --threads 1 --output-dir "$folder/run" >"$folder/log" 2>&1 || fail "the run exited with $? (124: hung)"
[ "$(grep -o 'Epoch: 1 |' "$folder/log" | wc -l)" -eq 1 ] || fail "expected one 'Epoch: 1' line (rank 0 alone logs)"
grep -q 'data-parallel: 2 processes x batch 8 = 16 records per step, 20 steps per epoch' "$folder/log" ||
    fail "no data-parallel line"
grep -q 'MPI (Open MPI\|MPI (' "$folder/log" || fail "the log does not name MPI"
[ -f "$folder/run/checkpoint-epoch-001.safetensors" ] || fail "no checkpoint"

# Rank 0 finds a checkpoint in the way and stops: the other rank must not hang in its first collective.
timeout 120 "$mpiexec" -n 2 "$train" --model small_cnn --dataset synthetic --synthetic-size 64,16 --epochs 1 \
    -b 8 --device cpu --threads 1 --output-dir "$folder/run" >"$folder/log" 2>&1
status=$?
[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || fail "expected a failed run, not exit status $status (124: it hung)"
grep -q 'rank 0 of 2.*already there' "$folder/log" || fail "the error does not name the rank and the checkpoint"

# SIGTERM to mpirun reaches both ranks: the world stops at the same step, rank 0 writes the checkpoint and says
# how to go on, and both ranks resume from it. The run is long (100 epochs) so that the signal, sent once epoch 1
# is logged, always arrives while it trains; the resumed run only finishes the epoch it stopped in.
args=(--model small_cnn --dataset synthetic --synthetic-size 800,16 -b 8 --device cpu --threads 1 --log-every 10
      --output-dir "$folder/stop")
"$mpiexec" -n 2 "$train" "${args[@]}" --epochs 100 >"$folder/log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q 'Epoch: 1 |' "$folder/log" && break; sleep 0.1; done
kill -TERM "$pid"
wait "$pid"
grep -q 'interrupted by SIGTERM' "$folder/log" || fail "no 'interrupted by SIGTERM' line"
[ "$(grep -c 'To go on, run:' "$folder/log")" -eq 1 ] || fail "expected the resume command once (rank 0)"
grep -q 'mpirun -np 2 cudacnn-train' "$folder/log" || fail "the resume command does not start 2 processes"
checkpoint=$(ls "$folder"/stop/checkpoint-epoch-*.safetensors 2>/dev/null | tail -n 1)
[ -n "$checkpoint" ] || fail "no checkpoint after SIGTERM"
# checkpoint-epoch-NNN.safetensors (an epoch's end) or checkpoint-epoch-NNN-step-SSSSS (within epoch NNN).
stopped=$(basename "$checkpoint" | sed -E 's/^checkpoint-epoch-0*([0-9]+).*/\1/')
last=$((stopped + 1))
"$mpiexec" -n 2 "$train" "${args[@]}" --epochs "$last" --resume "$checkpoint" >"$folder/log" 2>&1 ||
    fail "the resumed run failed"
grep -q 'resumed: ' "$folder/log" || fail "the run did not resume"
grep -q "Epoch: $last |" "$folder/log" || fail "the resumed run did not finish epoch $last"
echo "PASS: mpirun -n 2 cudacnn-train"
