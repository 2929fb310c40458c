#!/usr/bin/env bash
# Installs what cudacnn needs from Debian's packages (idempotent: installs only what is missing) and checks
# that the CUDA toolkit is there. Runs as root, or through sudo.
set -euo pipefail

# Build tools, Catch2 v2, fmt, nlohmann-json (safetensors headers, model specs), Boost.Context (the emulator's fibers),
# OpenBLAS (the fast CPU path's matrix products), ccache for fast rebuilds; clang with libFuzzer and the sanitizer
# runtimes (libclang-rt-14-dev) and lld for the fuzz targets (tools/fuzz.sh); Open MPI (libopenmpi-dev, and
# openmpi-bin's mpirun) for data-parallel training across processes and its tests.
PACKAGES=(cmake ninja-build g++ ccache catch2 libfmt-dev nlohmann-json3-dev libboost-context-dev libpng-dev libjpeg-dev
          libopenblas-dev clang libclang-rt-14-dev lld libopenmpi-dev openmpi-bin)

missing_packages() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
    done
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_missing() {
    local missing
    missing=$(missing_packages)
    if [ -z "$missing" ]; then
        echo "setup: all Debian packages present"
        return
    fi
    echo "setup: installing" $missing
    as_root apt-get update -qq
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}

check_cuda_toolkit() {
    local nvcc
    nvcc=$(command -v nvcc || true)
    [ -n "$nvcc" ] || nvcc=/usr/local/cuda/bin/nvcc
    if [ ! -x "$nvcc" ]; then
        echo "setup: the CUDA toolkit is missing (no nvcc on PATH or in /usr/local/cuda/bin)." >&2
        echo "       Install NVIDIA's CUDA Toolkit (12 or later, with cuDNN 9) and run this again." >&2
        exit 1
    fi
    echo "setup: CUDA toolkit: $("$nvcc" --version | tail -n 2 | head -n 1)"
}

install_missing
check_cuda_toolkit
