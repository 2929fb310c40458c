# Shared by tools/run.sh and tools/test.sh: configure and build one flavour of cudacnn into build/<name>.
# Usage: [BUILD_TARGETS="a b"] build_flavour NAME -DCUDACNN_FLAVOUR=... [more CMake options]
# (BUILD_TARGETS: build only those targets, e.g. cudacnn-train for the main job; default: everything)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$PATH:/usr/local/cuda/bin"
# ccache hits for the same sources in another folder (CI builds a fresh clone): paths relative to the checkout
# and the working directory left out of the hash (debug info then names the folder that first built it).
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1

build_flavour() {
    local name=$1
    shift
    cmake -S "$ROOT" -B "$ROOT/build/$name" -G Ninja "$@" >"$ROOT/build/$name.configure.log" 2>&1 || {
        cat "$ROOT/build/$name.configure.log" >&2
        return 1
    }
    # shellcheck disable=SC2086
    cmake --build "$ROOT/build/$name" ${BUILD_TARGETS:+--target $BUILD_TARGETS}
}

# Whether this machine has a working NVIDIA GPU (driver and device).
have_gpu() {
    command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1
}
