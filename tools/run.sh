#!/usr/bin/env bash
# The main job, from a fresh machine: installs what is needed, builds, and trains with cudacnn-train — on the
# GPU when there is one (the tutorial's CifarCNN, the seed's recipe), else on the CPU. Arguments go to
# cudacnn-train (`bash tools/run.sh --help` lists them; e.g. `--dataset cifar10 --data DIR`).
#
# Without a GPU the default is the same CifarCNN and recipe on the fast CPU path (--device cpu: OpenBLAS, every
# core) for 2 epochs of a 4,000-image synthetic set, a couple of minutes on 2 cores (the full 50,000-image
# epoch takes about 7 minutes there). Later flags override these defaults.
set -euo pipefail
source "$(dirname "$0")/common.sh"

bash "$ROOT/tools/setup.sh"
# A folder per run: cudacnn-train refuses to replace checkpoints that are already there.
RUN_DIR="$ROOT/runs/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$ROOT/build"
if have_gpu; then
    echo "run: GPU found; building the cuda flavour"
    BUILD_TARGETS=cudacnn-train build_flavour cuda -DCUDACNN_FLAVOUR=cuda -DCUDACNN_BUILD_TESTS=OFF
    exec "$ROOT/build/cuda/cudacnn-train" --output-dir "$RUN_DIR" "$@"
else
    echo "run: no GPU here; building the emu flavour and training the CifarCNN briefly on the fast CPU path"
    BUILD_TARGETS=cudacnn-train build_flavour emu -DCUDACNN_FLAVOUR=emu
    exec "$ROOT/build/emu/cudacnn-train" --device cpu --epochs 2 --synthetic-size 4000,1000 \
        --output-dir "$RUN_DIR" "$@"
fi
