#!/usr/bin/env bash
# The main job, from a fresh machine: installs what is needed, builds, and runs on the GPU when there is
# one, else on the CPU emulator. Until cudacnn-train exists, the job is cudacnn-demo (a tiled SGEMM kernel
# checked against the CPU reference), and it says so.
set -euo pipefail
source "$(dirname "$0")/common.sh"

bash "$ROOT/tools/setup.sh"
mkdir -p "$ROOT/build"
if have_gpu; then
    echo "run: GPU found; building the cuda flavour"
    build_flavour cuda -DCUDACNN_FLAVOUR=cuda -DCUDACNN_BUILD_TESTS=OFF
    exec "$ROOT/build/cuda/cudacnn-demo" "$@"
else
    echo "run: no GPU here; building the emu flavour (the same kernels, run on the CPU emulator)"
    build_flavour emu -DCUDACNN_FLAVOUR=emu
    exec "$ROOT/build/emu/cudacnn-demo" "$@"
fi
