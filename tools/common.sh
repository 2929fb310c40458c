# Shared by tools/run.sh and tools/test.sh: configure and build one flavour of cudacnn into build/<name>.
# Usage: build_flavour NAME -DCUDACNN_FLAVOUR=... [more CMake options]
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$PATH:/usr/local/cuda/bin"

build_flavour() {
    local name=$1
    shift
    cmake -S "$ROOT" -B "$ROOT/build/$name" -G Ninja "$@" >"$ROOT/build/$name.configure.log" 2>&1 || {
        cat "$ROOT/build/$name.configure.log" >&2
        return 1
    }
    cmake --build "$ROOT/build/$name"
}

# Whether this machine has a working NVIDIA GPU (driver and device).
have_gpu() {
    command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1
}
