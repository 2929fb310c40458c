#!/usr/bin/env bash
# GPU check on a lent GPU machine: build for sm_90, all tests, compute-sanitizer, demo, cudacnn-bench beside
# PyTorch, a short training; logs + summary in $OUT.
#
# Usage:
#   bash tools/gpu-check.sh --prepare   on the development machine (has apt): fetches the Debian packages the
#                                       GPU machine cannot install and the CIFAR-10 tarball into ignored folders,
#                                       and prints the `carry` list for the device tool's `run`.
#   bash tools/gpu-check.sh             on the GPU machine, from the repository root, with $OUT set (default ./out).
#
# Every step runs even when an earlier one failed, except that nothing runs without a build. The summary
# table is printed last (the device tool returns only the tail of the output). Exit status: 0 when no step
# failed, 1 otherwise. Steps share one time budget (GPU_CHECK_BUDGET_S, default 540 s) so that the summary
# is written inside the tool's 600 s limit even when something hangs.
#
# A short re-check, when little device time is left: GPU_CHECK_STEPS="bench train" runs only those steps after
# the build (names as in the summary table), GPU_CHECK_BENCH_FILTER=REGEX only those cudacnn-bench rows, and
# GPU_CHECK_TRAIN_EPOCHS=N (default 2) sets the training's length; GPU_CHECK_TRAIN_FLAGS="..." adds flags to
# cudacnn-train (e.g. "--precision tf32 --cudnn-benchmark", the fast settings of issue 11, whose accuracy
# over the 20-epoch recipe must be recorded). The "models" step times torchvision's built-in architectures'
# inference (cudacnn-bench --model vgg16 … beside tools/bench/torchvision_infer_bench.py; up to
# GPU_CHECK_MODELS_S (default 300) + 90 s).
# Opt-in steps run only when GPU_CHECK_STEPS names them: "dist" (data-parallel training through NCCL at world
# size 1, launched torchrun's way and under mpirun -np 1 where mpirun exists; up to 3 short trainings, ~1 min);
# "profile" (cudacnn-bench --profile: where the CifarCNN's and VGG16's steps spend their time, node by node).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS_DIR="$ROOT/.gpu-deps"    # .deb files and COMMIT, written by --prepare (git-ignored, carried)
DATA_DIR="$ROOT/.gpu-data"    # CIFAR-10 JPEG tarball for the training step of later issues (git-ignored, carried)
PREFIX="$DEPS_DIR/prefix"     # where the .deb files are unpacked on the GPU machine: never into /
BUILD_DIR="$ROOT/build-gpu"
# OpenBLAS (the fast CPU path's matrix products) with the Fortran runtime it links against.
DEB_PACKAGES=(catch2 libfmt-dev libfmt9 nlohmann-json3-dev libopenblas-pthread-dev libopenblas0-pthread libgfortran5
    libquadmath0)
BUDGET_S=${GPU_CHECK_BUDGET_S:-540}

# ---- --prepare: runs on the development machine ---------------------------------------------------------

prepare_debs() {
    mkdir -p "$DEPS_DIR"
    rm -rf "$PREFIX" "$DEPS_DIR"/*.deb
    # apt-get warns that it downloads "unsandboxed as root"; that is harmless here.
    if ! (cd "$DEPS_DIR" && apt-get download "${DEB_PACKAGES[@]}"); then
        echo "prepare: apt-get download failed; refreshing the package lists and trying once more"
        apt-get update -qq
        (cd "$DEPS_DIR" && apt-get download "${DEB_PACKAGES[@]}")
    fi
}

prepare_data() {
    local shared="$ROOT/../shared"
    mkdir -p "$DATA_DIR"
    if [ -f "$shared/data/cifar10-jpeg.tar.xz" ]; then
        cp "$shared/data/cifar10-jpeg.tar.xz" "$DATA_DIR/"
    else
        echo "prepare: $shared/data/cifar10-jpeg.tar.xz not found; carrying no data"
    fi
    # The converter to the binary layout, for the training step that later issues add.
    if [ -f "$shared/tools/jpeg-to-cifar-bin.py" ]; then
        cp "$shared/tools/jpeg-to-cifar-bin.py" "$DATA_DIR/"
    fi
}

# The GPU machine may receive the tree without .git: record which commit (and whether it was dirty) now.
prepare_commit() {
    local commit
    commit=$(git -C "$ROOT" rev-parse HEAD)
    if [ -n "$(git -C "$ROOT" status --porcelain)" ]; then
        commit="$commit + uncommitted changes"
    fi
    echo "$commit (recorded by --prepare at $(date -u +%Y-%m-%dT%H:%MZ))" >"$DEPS_DIR/COMMIT"
}

warn_if_not_ignored() {
    local dir
    for dir in .gpu-deps .gpu-data; do
        git -C "$ROOT" check-ignore -q "$dir" || echo "prepare: WARNING: $dir is not git-ignored; add it to .gitignore"
    done
}

prepare() {
    prepare_debs
    prepare_data
    prepare_commit
    warn_if_not_ignored
    echo
    echo "prepared ($(du -sh "$DEPS_DIR" | cut -f1) in .gpu-deps, $(du -sh "$DATA_DIR" | cut -f1) in .gpu-data):"
    (cd "$ROOT" && find .gpu-deps .gpu-data -maxdepth 1 -type f -printf '  %p (%s bytes)\n' | sort)
    echo
    echo "Run it on the GPU machine with the device tool:"
    echo '  run  command: "bash tools/gpu-check.sh"  carry: [".gpu-deps", ".gpu-data"]  timeout_s: 600'
    echo "Re-run --prepare after committing, so that .gpu-deps/COMMIT names the commit that travels."
}

# ---- small helpers for the GPU side ---------------------------------------------------------------------

log() { echo "gpu-check: $*"; }

elapsed() { echo $((SECONDS - START_S)); }

# time_cap WANTED: the seconds a step may take, no more than what is left of the budget (minus a reserve for
# the summary); 0 when the budget is spent.
time_cap() {
    local left=$((BUDGET_S - $(elapsed) - 15))
    if [ "$left" -lt 10 ]; then echo 0; elif [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
}

# run_logged LOG SECONDS CMD...: runs CMD with a time limit, appending stdout and stderr to LOG; returns its status
# (124 when it timed out).
run_logged() {
    local logfile=$1 seconds=$2
    shift 2
    echo "\$ $*" >>"$logfile"
    # timeout 0 would mean no limit at all.
    [ "$seconds" -gt 0 ] || { echo "(not run: out of time budget)" >>"$logfile"; return 124; }
    timeout --kill-after=10 "$seconds" "$@" >>"$logfile" 2>&1
}

find_tool() {
    local name=$1 candidate
    shift
    for candidate in "$(command -v "$name" 2>/dev/null || true)" "$@"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# Collects the existing library folders among its arguments in LIB_DIRS, most wanted first;
# export_library_path puts them in front of LD_LIBRARY_PATH (which holds the driver's folder on some machines).
add_library_dirs() {
    local dir
    for dir in "$@"; do
        [ -d "$dir" ] && LIB_DIRS+=("$dir")
    done
    return 0
}

export_library_path() {
    local joined
    joined=$(IFS=:; echo "${LIB_DIRS[*]}")
    export LD_LIBRARY_PATH="$joined${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

# ---- facts ------------------------------------------------------------------------------------------------

# The commit recorded by --prepare on the development machine wins: a .git that travels may be stale.
commit_id() {
    local commit
    if [ -f "$DEPS_DIR/COMMIT" ]; then
        cat "$DEPS_DIR/COMMIT"
    elif commit=$(git -C "$ROOT" -c safe.directory='*' rev-parse HEAD 2>/dev/null); then
        # Untracked files that git does not ignore travel too, so they count as changes.
        if [ -n "$(git -C "$ROOT" -c safe.directory='*' status --porcelain 2>/dev/null)" ]; then
            commit="$commit + uncommitted changes"
        fi
        echo "$commit"
    else
        echo "unknown"
    fi
}

# Fills FACTS (lines for summary.md) and finds the tools the steps need.
collect_facts() {
    NVCC=$(find_tool nvcc /usr/local/cuda/bin/nvcc || true)
    CUDA_HOME=/usr/local/cuda
    [ -n "$NVCC" ] && CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$NVCC")")")
    SANITIZER=$(find_tool compute-sanitizer "$CUDA_HOME/bin/compute-sanitizer" \
        "$CUDA_HOME/compute-sanitizer/compute-sanitizer" || true)
    FACTS=(
        "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        "commit: $(commit_id)"
        "gpu: ${GPU_INFO:-none}"
        "nvcc: ${NVCC:-not found}${NVCC:+ ($("$NVCC" --version | grep -o 'release .*' || true))}"
        "cmake: $(cmake --version 2>/dev/null | head -n 1 || echo 'not found')"
        "c++: $(c++ --version 2>/dev/null | head -n 1 || echo 'not found')"
        "compute-sanitizer: ${SANITIZER:-not found}"
        "host: $(uname -r), $(nproc) cores"
    )
}

# ---- the steps: each returns 0 (PASS), 2 (SKIPPED) or anything else (FAIL) and may set NOTE -----------------
# They run as the left side of `||`, where `set -e` does not apply, so each checks its commands itself.

step_gpu() {
    local smi
    if ! smi=$(find_tool nvidia-smi /usr/local/nvidia/bin/nvidia-smi); then
        NOTE="nvidia-smi not found: no GPU driver on this machine"
        return 1
    fi
    if ! GPU_INFO=$("$smi" --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1) ||
        [ -z "$GPU_INFO" ]; then
        NOTE="nvidia-smi failed: $(echo "$GPU_INFO" | head -n 1)"
        GPU_INFO=""
        return 1
    fi
    GPU_INFO=$(echo "$GPU_INFO" | head -n 1)
    HAVE_GPU=1
    NOTE="$GPU_INFO"
}

# Unpacks one .deb into a prefix, with dpkg where there is one, else with ar and tar.
extract_deb() {
    local deb=$1 prefix=$2 tmp member
    if command -v dpkg >/dev/null 2>&1; then
        dpkg -x "$deb" "$prefix"
        return
    fi
    tmp=$(mktemp -d)
    member=$(ar t "$deb" | grep '^data\.tar') || return 1
    (cd "$tmp" && ar x "$deb" "$member") && tar -xf "$tmp/$member" -C "$prefix"
    local rc=$?
    rm -rf "$tmp"
    return $rc
}

# Catch2 and fmt come from the .deb files of --prepare. Their CMake configs are relocatable (paths relative to
# the config file), but CMake would prefer a copy in /usr, so the configure step names their folders exactly.
step_deps() {
    local debs=() deb
    shopt -s nullglob
    debs=("$DEPS_DIR"/*.deb)
    shopt -u nullglob
    if [ ${#debs[@]} -eq 0 ]; then
        NOTE="no .deb files in .gpu-deps (run --prepare on the development machine and carry .gpu-deps); trying the system's fmt and Catch2"
        return 2
    fi
    rm -rf "$PREFIX"
    mkdir -p "$PREFIX"
    for deb in "${debs[@]}"; do
        echo "unpacking $(basename "$deb") into $PREFIX" >>"$OUT/build.log"
        extract_deb "$deb" "$PREFIX" >>"$OUT/build.log" 2>&1 || { NOTE="could not unpack $(basename "$deb")"; return 1; }
    done
    local fmt_config catch2_config fmt_lib
    fmt_config=$(find "$PREFIX" -name fmt-config.cmake | head -n 1)
    catch2_config=$(find "$PREFIX" -name Catch2Config.cmake | head -n 1)
    fmt_lib=$(find "$PREFIX" -name 'libfmt.so.*' | head -n 1)
    if [ -z "$fmt_config" ] || [ -z "$catch2_config" ] || [ -z "$fmt_lib" ]; then
        NOTE="the unpacked packages lack fmt-config.cmake, Catch2Config.cmake or libfmt.so.*"
        return 1
    fi
    FMT_DIR=${fmt_config%/*} CATCH2_DIR=${catch2_config%/*}
    add_library_dirs "${fmt_lib%/*}"
    # OpenBLAS: CMake looks only in the system's folders, so the configure step names the unpacked ones.
    local blas_header blas_lib fortran_lib
    blas_header=$(find "$PREFIX" -path '*openblas-pthread/cblas.h' | head -n 1)
    blas_lib=$(find "$PREFIX" -path '*openblas-pthread/libopenblas.so' | head -n 1)
    fortran_lib=$(find "$PREFIX" -name 'libgfortran.so.5' | head -n 1)
    if [ -z "$blas_header" ] || [ -z "$blas_lib" ] || [ -z "$fortran_lib" ]; then
        NOTE="the unpacked packages lack openblas-pthread/cblas.h, libopenblas.so or libgfortran.so.5"
        return 1
    fi
    OPENBLAS_INCLUDE=${blas_header%/*} OPENBLAS_LIB=$blas_lib
    add_library_dirs "${blas_lib%/*}" "${fortran_lib%/*}"
    NOTE="$(for deb in "${debs[@]}"; do basename "$deb" .deb; done | tr '\n' ' ')→ .gpu-deps/prefix"
}

# cuDNN: PyTorch's pip wheel (nvidia/cudnn, a namespace package without __init__.py, so __file__ is None:
# ask __path__), else whatever FindCUDNN finds in the toolkit. CUDNN_ROOT from the environment wins.
find_cudnn_root() {
    if [ -n "${CUDNN_ROOT:-}" ]; then
        echo "$CUDNN_ROOT"
        return
    fi
    local root
    root=$(python3 -c "import nvidia.cudnn as m; print(list(m.__path__)[0])" 2>/dev/null) || return 0
    [ -f "$root/include/cudnn.h" ] && echo "$root"
}

# cuBLAS comes from the toolkit; if the toolkit has none, from a pip wheel (nvidia/cu13/lib, nvidia/cublas/lib).
toolkit_has_cublas() {
    local dir
    for dir in "$CUDA_HOME/lib64" "$CUDA_HOME/lib" "$CUDA_HOME/targets/x86_64-linux/lib"; do
        compgen -G "$dir/libcublas.so*" >/dev/null && return 0
    done
    return 1
}

find_pip_cublas() {
    python3 - <<'EOF' 2>/dev/null
import glob, os, nvidia
for base in nvidia.__path__:
    for lib in sorted(glob.glob(os.path.join(base, "*", "lib", "libcublas.so.*"))):
        print(lib)
        raise SystemExit
EOF
}

# NCCL (the multi-GPU path): CMake looks in the toolkit; where the toolkit has no nccl.h, PyTorch's pip wheel
# (nvidia/nccl: include/nccl.h, lib/libnccl.so.2, which find_library would not take for libnccl.so). Prints
# the wheel's folder, nothing when the toolkit has NCCL or there is no wheel.
find_pip_nccl() {
    [ -f "$CUDA_HOME/include/nccl.h" ] && return 0
    local root
    root=$(python3 -c "import nvidia.nccl as m; print(list(m.__path__)[0])" 2>/dev/null) || return 0
    [ -f "$root/include/nccl.h" ] && compgen -G "$root/lib/libnccl.so*" >/dev/null && echo "$root"
    return 0
}

# Sets CMAKE_ARGS for the cuda flavour and LD_LIBRARY_PATH so that the programs find cuDNN and cuBLAS.
configure_args() {
    # --fresh: a build folder kept from an earlier call must not keep cached paths of other settings.
    CMAKE_ARGS=(--fresh -S "$ROOT" -B "$BUILD_DIR" -DCUDACNN_FLAVOUR=cuda -DCMAKE_CUDA_ARCHITECTURES=90
        -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CUDA_COMPILER=$NVCC")
    command -v ninja >/dev/null 2>&1 && CMAKE_ARGS+=(-G Ninja)
    if [ -n "${FMT_DIR:-}" ]; then
        CMAKE_ARGS+=("-DCMAKE_PREFIX_PATH=$PREFIX/usr" "-Dfmt_DIR=$FMT_DIR" "-DCatch2_DIR=$CATCH2_DIR"
            "-DOPENBLAS_INCLUDE_DIR=$OPENBLAS_INCLUDE" "-DOPENBLAS_LIBRARY=$OPENBLAS_LIB")
    fi
    CUDNN_FROM=$(find_cudnn_root)
    if [ -n "$CUDNN_FROM" ]; then
        CMAKE_ARGS+=("-DCUDNN_ROOT=$CUDNN_FROM")
        add_library_dirs "$CUDNN_FROM/lib"
    else
        CUDNN_FROM="the CUDA toolkit (no pip cuDNN found)"
    fi
    CUBLAS_FROM="the CUDA toolkit"
    if ! toolkit_has_cublas; then
        local lib
        lib=$(find_pip_cublas || true)
        if [ -n "$lib" ]; then
            local dir=${lib%/*}
            CUBLAS_FROM=$lib
            CMAKE_ARGS+=("-DCUDA_cublas_LIBRARY=$lib" "-DCUDA_cublasLt_LIBRARY=$(compgen -G "$dir/libcublasLt.so.*" | head -n 1)"
                "-DCMAKE_CXX_FLAGS=-idirafter $dir/../include")
            add_library_dirs "$dir"
        fi
    fi
    NCCL_FROM="the CUDA toolkit, if it has it (build.log's \"NCCL:\" line)"
    local nccl_root
    nccl_root=$(find_pip_nccl)
    if [ -n "$nccl_root" ]; then
        NCCL_FROM=$(compgen -G "$nccl_root/lib/libnccl.so*" | head -n 1)
        CMAKE_ARGS+=("-DNCCL_INCLUDE_DIR=$nccl_root/include" "-DNCCL_LIBRARY=$NCCL_FROM")
        add_library_dirs "$nccl_root/lib"
    fi
    add_library_dirs "$CUDA_HOME/lib64" "$CUDA_HOME/lib" "$CUDA_HOME/targets/x86_64-linux/lib"
    export_library_path
}

step_build() {
    local log="$OUT/build.log" seconds started=$SECONDS
    if [ -z "$NVCC" ]; then
        NOTE="nvcc not found (neither on PATH nor in /usr/local/cuda/bin)"
        return 1
    fi
    seconds=$(time_cap 300)
    [ "$seconds" -gt 0 ] || { NOTE="out of time budget"; return 1; }
    configure_args
    {
        echo "cuDNN from: $CUDNN_FROM"
        echo "cuBLAS from: $CUBLAS_FROM"
        echo "NCCL from: $NCCL_FROM"
        echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
    } >>"$log"
    if ! run_logged "$log" "$seconds" cmake "${CMAKE_ARGS[@]}"; then
        # A build folder in a state that --fresh does not cure (another generator, say): remove it once.
        echo "configure failed; removing $BUILD_DIR and configuring once more" >>"$log"
        rm -rf "$BUILD_DIR"
        run_logged "$log" "$(time_cap 300)" cmake "${CMAKE_ARGS[@]}" || { NOTE="configure failed"; return 1; }
    fi
    local rc=0
    run_logged "$log" "$(time_cap 300)" cmake --build "$BUILD_DIR" -j "$(nproc)" || rc=$?
    case $rc in
        0) ;;
        124 | 137) NOTE="build timed out after $((SECONDS - started)) s"; return 1 ;;
        *) NOTE="build failed (exit $rc)"; return 1 ;;
    esac
    local cudnn
    cudnn=$(grep -o 'Found CUDNN: .*' "$log" | tail -n 1 || true)
    NOTE="$((SECONDS - started)) s; ${cudnn:-cuDNN: see build.log}"
}

step_ctest() {
    local log="$OUT/ctest.log" seconds rc=0 summary skipped
    seconds=$(time_cap 240)
    [ "$seconds" -gt 0 ] || { NOTE="out of time budget"; return 1; }
    (cd "$BUILD_DIR" && run_logged "$log" "$seconds" ctest --output-on-failure -j 4 --timeout "$seconds") || rc=$?
    summary=$(grep -E '[0-9]+% tests passed' "$log" | tail -n 1 || true)
    skipped=$(grep -E '\((Skipped|Not Run)\)$' "$log" | sed -E 's/^[[:space:]]*[0-9]+ - //; s/ \(.*//' | tr '\n' ' ' || true)
    NOTE="${summary:-no CTest summary (rc $rc)}${skipped:+; skipped: $skipped}"
    [ "$rc" -eq 0 ] || return 1
    if [ -n "$skipped" ]; then
        if [ -n "$HAVE_GPU" ]; then
            NOTE="$NOTE— but nvidia-smi sees a GPU, so the GPU tests must not skip (see ctest.log)"
            return 1
        fi
        NOTE="$NOTE(no GPU)"
    fi
}

# run_sanitizer TOOL PROGRAM [CATCH2 FILTER]: one test program under compute-sanitizer; PASS needs exit 0 and
# a clean summary line: "ERROR SUMMARY: 0 errors" (memcheck) or "RACECHECK SUMMARY: 0 hazards displayed
# (0 errors, 0 warnings)" (racecheck). The log of each tool holds both programs.
run_sanitizer() {
    local tool=$1 program=$2 filter=${3:-} log="$OUT/$1.log" seconds rc=0 errors
    [ -n "$HAVE_GPU" ] || { NOTE="no GPU"; return 2; }
    [ -n "$SANITIZER" ] || { NOTE="compute-sanitizer not found"; return 2; }
    seconds=$(time_cap 120)
    [ "$seconds" -gt 0 ] || { NOTE="out of time budget"; return 1; }
    # Every CUDA status is checked by the code, so an unexpected API error already fails a test; the device
    # tests also make deliberately bad launches, which memcheck would count as errors.
    local args=("$SANITIZER" --tool "$tool" --report-api-errors no "$BUILD_DIR/tests/$program")
    [ -n "$filter" ] && args+=("$filter")
    echo "---- $program ----" >>"$log"
    run_logged "$log" "$seconds" "${args[@]}" || rc=$?
    errors=$(sed -n "/^---- $program ----\$/,\$p" "$log" | grep -oE '(ERROR|RACECHECK) SUMMARY: .*' | tail -n 1 || true)
    case $rc in
        0) NOTE="${errors:-no ERROR SUMMARY line}" ;;
        77) NOTE="the tests skipped (no GPU seen by CUDA under the sanitizer)" ;;
        124 | 137) NOTE="timed out after $seconds s; ${errors:-no ERROR SUMMARY line}" ;;
        *) NOTE="exit $rc; ${errors:-no ERROR SUMMARY line}" ;;
    esac
    [ "$rc" -eq 0 ] && case $errors in
        "ERROR SUMMARY: 0 errors" | "RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)") true ;;
        *) false ;;
    esac
}

# The kernels' parity tests without the long whole-step and determinism cases (each kernel is covered there).
PARITY_UNDER_SANITIZER="~[cifar_cnn]~[determinism]"
# racecheck looks for shared-memory hazards in our kernels; under it cuBLAS's and cuDNN's kernels take minutes
# (the cuBLAS parity case alone passed 120 s on an H100 on 2026-11-27) and their races are not ours to fix.
# memcheck still runs them.
RACECHECK_PARITY="$PARITY_UNDER_SANITIZER~[cublas]~[cudnn]"

step_memcheck() { run_sanitizer memcheck cudacnn_device_tests; }
step_racecheck() { run_sanitizer racecheck cudacnn_device_tests; }
step_memcheck_parity() { run_sanitizer memcheck cudacnn_parity_tests "$PARITY_UNDER_SANITIZER"; }
step_racecheck_parity() { run_sanitizer racecheck cudacnn_parity_tests "$RACECHECK_PARITY"; }

# cuDNN and cuBLAS run nowhere but here: their parity tests on their own, so the summary says plainly whether
# they passed (ctest runs them too, inside parity_tests).
step_vendor() {
    local log="$OUT/vendor.log" seconds rc=0 result
    [ -n "$HAVE_GPU" ] || { NOTE="no GPU"; return 2; }
    seconds=$(time_cap 120)
    [ "$seconds" -gt 0 ] || { NOTE="out of time budget"; return 1; }
    run_logged "$log" "$seconds" "$BUILD_DIR/tests/cudacnn_parity_tests" "[cudnn],[cublas]" --durations yes || rc=$?
    result=$(grep -E '^(All tests passed|test cases:)' "$log" | tail -n 1 || true)
    NOTE="${result:-no Catch2 result line (rc $rc)}"
    [ "$rc" -eq 0 ]
}

# The demo times one launch; eager module loading keeps loading the kernel out of that time. Its CPU reference
# (a plain triple loop) takes about a minute at 2048 (68 s on the development machine), hence the long limit.
step_demo() {
    local log="$OUT/demo.log" seconds rc=0 kernel check
    [ -n "$HAVE_GPU" ] || { NOTE="no GPU"; return 2; }
    seconds=$(time_cap 180)
    [ "$seconds" -gt 0 ] || { NOTE="out of time budget"; return 1; }
    CUDA_MODULE_LOADING=EAGER run_logged "$log" "$seconds" "$BUILD_DIR/cudacnn-demo" --size 2048 || rc=$?
    kernel=$(grep -E '^ *device kernel' "$log" | tr -s ' ' | sed 's/^ //' || true)
    check=$(grep -o 'max |device - reference| = .*' "$log" || true)
    NOTE="${kernel:-no timing line}; ${check:-no check line}"
    [ "$rc" -eq 0 ] || { NOTE="exit $rc; $NOTE"; return 1; }
}

# The baseline for the demo's number, timed in the same run on the same card (docs/gpu-runs.md): PyTorch's
# float32 2048³ matmul (cuBLAS, TF32 off), median of 20 after warm-up, with CUDA events.
step_baseline() {
    local log="$OUT/demo.log" seconds rc=0 line
    [ -n "$HAVE_GPU" ] || { NOTE="no GPU"; return 2; }
    python3 -c "import torch" 2>/dev/null || { NOTE="python3 has no torch"; return 2; }
    seconds=$(time_cap 90)
    [ "$seconds" -gt 0 ] || { NOTE="out of time budget"; return 1; }
    run_logged "$log" "$seconds" python3 - <<'EOF' || rc=$?
import statistics, torch
torch.backends.cuda.matmul.allow_tf32 = False
n = 2048
a, b = (torch.rand(n, n, device="cuda") * 2 - 1 for _ in range(2))
for _ in range(5):
    a @ b
times = []
for _ in range(20):
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record(); a @ b; stop.record(); stop.synchronize()
    times.append(start.elapsed_time(stop))
ms = statistics.median(times)
print(f"baseline torch {torch.__version__} fp32 matmul {n}^3 (cuBLAS, TF32 off): {ms:.3f} ms  {2 * n**3 / ms / 1e6:.1f} GFLOP/s")
EOF
    line=$(grep -o 'baseline torch.*' "$log" | tail -n 1 || true)
    NOTE="${line:-no timing line (rc $rc)}"
    [ "$rc" -eq 0 ]
}

# cudacnn-bench (every CifarCNN layer shape, each algorithm checked against the reference, then timed) and
# tools/bench/pytorch_bench.py (the same convolutions and step in PyTorch) in the same call on the same card,
# merged by tools/bench/report.py. Everything goes into demo.log (the table, PyTorch's lines, the merged
# Markdown); the JSON files stay in the build folder, since only 8 files come back from $OUT.
step_bench() {
    local log="$OUT/demo.log" seconds rc=0 torch_rc=0 ours="$BUILD_DIR/bench-cudacnn.json" theirs="$BUILD_DIR/bench-pytorch.json"
    [ -n "$HAVE_GPU" ] || { NOTE="no GPU"; return 2; }
    # 240 s: since issue 11 the bench also times TF32 and implicit-GEMM rows and six step variants.
    seconds=$(time_cap 240)
    [ "$seconds" -gt 0 ] || { NOTE="out of time budget"; return 1; }
    local ours_args=(--json "$ours" --csv "$BUILD_DIR/bench-cudacnn.csv") theirs_args=(--json "$theirs")
    # GPU_CHECK_BENCH_FILTER: only the rows that match (cudacnn-bench --filter); PyTorch then times only its steps.
    if [ -n "${GPU_CHECK_BENCH_FILTER:-}" ]; then
        ours_args+=(--filter "$GPU_CHECK_BENCH_FILTER")
        theirs_args+=(--no-layers --no-augment)
    fi
    run_logged "$log" "$seconds" "$BUILD_DIR/cudacnn-bench" "${ours_args[@]}" || rc=$?
    local summary step
    summary=$(grep -E '^[0-9]+ measured, ' "$log" | tail -n 1 || true)
    step=$(grep -E '^train_step .* (kernels|cuda_graph[a-z0-9_]*) ' "$log" | awk '{print $4 ": " $5 " µs"}' | tr '\n' ' ' ||
        true)
    NOTE="${summary:-no summary line (rc $rc)}; step ${step:-not measured}"
    if python3 -c "import torch" 2>/dev/null; then
        seconds=$(time_cap 120)
        run_logged "$log" "$seconds" python3 "$ROOT/tools/bench/pytorch_bench.py" "${theirs_args[@]}" || torch_rc=$?
        if [ -f "$ours" ] && [ -f "$theirs" ]; then
            echo "---- report.md ----" >>"$log"
            python3 "$ROOT/tools/bench/report.py" "$ours" "$theirs" >>"$log" 2>&1 || torch_rc=$?
        fi
        NOTE="$NOTE; PyTorch side: $([ "$torch_rc" -eq 0 ] && echo done || echo "failed (rc $torch_rc)")"
    else
        NOTE="$NOTE; python3 has no torch: no PyTorch side"
    fi
    [ "$rc" -eq 0 ] && [ "$torch_rc" -eq 0 ]
}

# Inference of torchvision's architectures (issue 13) at 224 x 224, batch 1 and 64: cudacnn-bench's infer_step
# rows (FP32 and TF32 CUDA graphs, cuDNN benchmarked and the hand-written Winograd path) and PyTorch's eager
# forward (tools/bench/torchvision_infer_bench.py) in the same call, into demo.log.
step_models() {
    local log="$OUT/demo.log" seconds rc=0 torch_rc=0 model batch rows
    [ -n "$HAVE_GPU" ] || { NOTE="no GPU"; return 2; }
    # 8 runs of 5 variants each; on the H200 of 2026-11-27 the first 7 took 200 s (VGG at batch 64: ~50 ms a step,
    # 10 steps per sample), so batch 64 takes 5 repeats and the step GPU_CHECK_MODELS_S (default 300) seconds.
    local budget=${GPU_CHECK_MODELS_S:-300} repeats
    seconds=$(time_cap "$budget")
    [ "$seconds" -gt 0 ] || { NOTE="out of time budget"; return 1; }
    echo "---- torchvision models: cudacnn-bench ----" >>"$log"
    local started=$SECONDS
    for model in resnet18 resnet50 vgg16 vgg16_bn; do
        for batch in 1 64; do
            seconds=$(time_cap $((budget - (SECONDS - started))))
            [ "$seconds" -gt 10 ] || { rc=124; break 2; }
            repeats=$([ "$batch" -gt 1 ] && echo 5 || echo 10)
            run_logged "$log" "$seconds" "$BUILD_DIR/cudacnn-bench" --model "$model" -b "$batch" --warmup 3 \
                --repeats "$repeats" --filter '^infer_step forward (cuda_graph|cuda_graph_benchmark|cuda_graph_tf32|cuda_graph_tf32_benchmark|cuda_graph_hand_written) ' ||
                rc=$?
        done
    done
    rows=$(grep -cE '^infer_step +model=(resnet|vgg)' "$log" || true)
    NOTE="${rows:-0} cudacnn rows (rc $rc)"
    if python3 -c "import torchvision" 2>/dev/null; then
        seconds=$(time_cap 90)
        run_logged "$log" "$seconds" python3 "$ROOT/tools/bench/torchvision_infer_bench.py" || torch_rc=$?
        NOTE="$NOTE; PyTorch side: $([ "$torch_rc" -eq 0 ] && echo done || echo "failed (rc $torch_rc)")"
    else
        NOTE="$NOTE; python3 has no torchvision: no PyTorch side"
    fi
    [ "$rc" -eq 0 ] && [ "$torch_rc" -eq 0 ]
}

# The CIFAR-10 JPEG tarball of --prepare unpacked and converted to the binary layout (once per machine).
cifar10_binary() {
    local data="$ROOT/.gpu-data" log=$1
    local bin="$data/cifar-10-batches-bin"
    [ -f "$bin/test_batch.bin" ] && { echo "$bin"; return 0; }
    mkdir -p "$data/jpeg"
    tar -xJf "$data/cifar10-jpeg.tar.xz" -C "$data/jpeg" >>"$log" 2>&1 &&
        python3 "$data/jpeg-to-cifar-bin.py" "$data/jpeg" "$bin" >>"$log" 2>&1 && echo "$bin"
}

# cudacnn-train with the seed's recipe on the real CIFAR-10: GPU_CHECK_TRAIN_EPOCHS epochs (default 2, so the
# whole check fits one call; the full 20-epoch recipe is `GPU_CHECK_TRAIN_EPOCHS=20` as a call of its own).
step_train() {
    local log="$OUT/train.log" seconds rc=0 bin epochs=${GPU_CHECK_TRAIN_EPOCHS:-2} last
    local run_dir="$BUILD_DIR/runs/$(date +%Y%m%d-%H%M%S)"  # cudacnn-train never replaces a checkpoint
    [ -n "$HAVE_GPU" ] || { NOTE="no GPU"; return 2; }
    [ -f "$ROOT/.gpu-data/cifar10-jpeg.tar.xz" ] || {
        NOTE="no .gpu-data/cifar10-jpeg.tar.xz (run --prepare here and carry .gpu-data)"
        return 2
    }
    bin=$(cifar10_binary "$log") || { NOTE="could not unpack or convert the CIFAR-10 tarball (see train.log)"; return 1; }
    seconds=$(time_cap 420)
    [ "$seconds" -gt 0 ] || { NOTE="out of time budget"; return 1; }
    local -a extra=()
    read -r -a extra <<<"${GPU_CHECK_TRAIN_FLAGS:-}"
    run_logged "$log" "$seconds" "$BUILD_DIR/cudacnn-train" --dataset cifar10 --data "$bin" --epochs "$epochs" \
        --output-dir "$run_dir" --metrics "$run_dir/metrics.csv" "${extra[@]}" || rc=$?
    [ -f "$run_dir/metrics.csv" ] && { echo "---- metrics.csv ----"; cat "$run_dir/metrics.csv"; } >>"$log"
    last=$(grep -E '^Epoch: ' "$log" | tail -n 1 || true)
    NOTE="$epochs epochs${GPU_CHECK_TRAIN_FLAGS:+ with $GPU_CHECK_TRAIN_FLAGS}: ${last:-no epoch line (rc $rc)}"
    [ "$rc" -eq 0 ]
}

# Data-parallel training through NCCL at world size 1 (issue 12), into train.log: a short cudacnn-train on the
# GPU in one process (--distributed off), then the same launched torchrun's way (RANK, WORLD_SIZE, LOCAL_RANK,
# MASTER_ADDR, MASTER_PORT; NCCL's id through --dist-id-file) and, where mpirun exists, under `mpirun -np 1` (the
# id over MPI when the build has MPI). PASS: every run exits 0, the NCCL runs' "data-parallel: NCCL …" line is
# there, rank 0 removed its id file, and each final loss equals the single process's within 1e-3 (4 decimals
# printed; at world size 1 the all-reduce is the identity, so only a nondeterministic kernel could differ).
DIST_TRAIN_ARGS=(--model small_cnn --dataset synthetic --synthetic-size "4096,1024" --epochs 1 --device cuda --no-augment)

# dist_run NAME CMD...: one run of the dist step, logged in $DIST_TMP/NAME.log and appended to train.log.
dist_run() {
    local name=$1 rc=0
    shift
    run_logged "$DIST_TMP/$name.log" "$(time_cap 90)" "$@" --output-dir "$DIST_TMP/$name" || rc=$?
    { echo "---- dist: $name (exit $rc) ----"; cat "$DIST_TMP/$name.log"; } >>"$OUT/train.log"
    return $rc
}

# The last "Epoch: 1 | Loss: …" value. Under mpirun the rank's stdout is a pseudo-terminal (Open MPI's default),
# so the trainer draws its progress bar: the epoch line then follows "\r…\r\033[K" on the same line.
dist_loss() {
    tr '\r' '\n' <"$DIST_TMP/$1.log" | sed 's/\x1b\[K//g' | grep -oE '^Epoch: 1 \| Loss: [0-9.eE+-]+' |
        tail -n 1 | awk '{print $NF}'
}

# dist_check NAME: appends "NAME: …" to DIST_NOTES; fails unless the run names NCCL and its loss is the
# single process's.
dist_check() {
    local name=$1 line loss
    line=$(grep -m 1 -oE '^data-parallel: NCCL[^;]*' "$DIST_TMP/$name.log" || true)
    loss=$(dist_loss "$name")
    DIST_NOTES+=("$name: ${line:-no \"data-parallel: NCCL\" line}, loss ${loss:-none}")
    [ -n "$line" ] && [ -n "$loss" ] && [ -n "$DIST_BASE_LOSS" ] &&
        awk -v a="$loss" -v b="$DIST_BASE_LOSS" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-3) }'
}

step_dist() {
    local train="$BUILD_DIR/cudacnn-train" nccl failed=0 mpirun
    [ -n "$HAVE_GPU" ] || { NOTE="no GPU"; return 2; }
    nccl=$(grep -oE -- '-- NCCL: .*' "$OUT/build.log" | tail -n 1 | sed 's/^-- //' || true)
    case $nccl in
        "NCCL: /"*) ;;
        *) NOTE="the build has no NCCL (${nccl:-no NCCL line in build.log}; NCCL from: ${NCCL_FROM:-?})"; return 2 ;;
    esac
    DIST_TMP=$(mktemp -d) DIST_NOTES=() DIST_BASE_LOSS=""
    export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
    dist_run single "$train" "${DIST_TRAIN_ARGS[@]}" --distributed off || failed=1
    DIST_BASE_LOSS=$(dist_loss single)
    DIST_NOTES=("single process: loss ${DIST_BASE_LOSS:-none}")
    dist_run torchrun env RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 \
        "$train" "${DIST_TRAIN_ARGS[@]}" --distributed on --dist-id-file "$DIST_TMP/nccl-id" || failed=1
    dist_check torchrun || failed=1
    if [ -e "$DIST_TMP/nccl-id" ]; then
        DIST_NOTES+=("rank 0 left its id file behind")
        failed=1
    fi
    if mpirun=$(find_tool mpirun); then
        # Root in a container: Open MPI refuses without these; shared memory without ptrace's single copy.
        dist_run mpirun env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
            OMPI_MCA_btl_vader_single_copy_mechanism=none "$mpirun" -np 1 \
            "$train" "${DIST_TRAIN_ARGS[@]}" --distributed on --dist-id-file "$DIST_TMP/nccl-id-mpirun" || failed=1
        dist_check mpirun || failed=1
    else
        DIST_NOTES+=("mpirun: not found, not run")
    fi
    NOTE="$nccl; $(printf '%s; ' "${DIST_NOTES[@]}")"
    NOTE=${NOTE%; }
    rm -rf "$DIST_TMP"
    [ "$failed" -eq 0 ]
}

# Where a step's time goes, node by node (cudacnn-bench --profile, into demo.log): the CifarCNN at batch 128 with
# the default settings and with --conv-algo fastest, and VGG16 at batch 64 with the old cuDNN workspace cap
# (256 MiB) and the default (auto: an eighth of free memory). With 256 MiB VGG16 ran at 3.9× PyTorch's TF32
# inference time on the H200 of 2026-11-27, with 16 GiB at 0.96×; the profile's algorithm column shows which
# cuDNN algorithms each cap leaves it (docs/gpu-runs.md).
step_profile() {
    local log="$OUT/demo.log" seconds rc=0 runs=0 args
    [ -n "$HAVE_GPU" ] || { NOTE="no GPU"; return 2; }
    echo "---- profiles: cudacnn-bench --profile ----" >>"$log"
    local -a extra common=(--warmup 2 --repeats 5 --steps 2 --profile)
    for args in "--model cifar_cnn -b 128" \
        "--model cifar_cnn -b 128 --filter (train|infer)_(step|profile).*_fastest" \
        "--model vgg16 -b 64 --cudnn-workspace-mib 256" "--model vgg16 -b 64"; do
        seconds=$(time_cap 120)
        [ "$seconds" -gt 10 ] || { rc=124; break; }
        read -r -a extra <<<"$args"
        run_logged "$log" "$seconds" "$BUILD_DIR/cudacnn-bench" "${extra[@]}" "${common[@]}" || rc=$?
        runs=$((runs + 1))
    done
    NOTE="$runs of 4 profiles (rc $rc)"
    [ "$rc" -eq 0 ]
}

# The steps that need the build, in order: "name function log-file-in-$OUT".
# Extension point: later issues add their steps here, each as a step_* function above and one line below,
# e.g. "bench step_bench bench.log". At most 8 files come back from $OUT; 8 are used now (the bench shares
# demo.log's slot: the demo, the baseline and the bench are all timings).
AFTER_BUILD=(
    "vendor step_vendor vendor.log"
    "ctest step_ctest ctest.log"
    "memcheck step_memcheck memcheck.log"
    "memcheck-parity step_memcheck_parity memcheck.log"
    "racecheck step_racecheck racecheck.log"
    "racecheck-parity step_racecheck_parity racecheck.log"
    "demo step_demo demo.log"
    "baseline step_baseline demo.log"
    "bench step_bench demo.log"
    "models step_models demo.log"
    "train step_train train.log"
    "dist step_dist train.log"
    "profile step_profile demo.log"
)
# Steps that run only when GPU_CHECK_STEPS names them (the default list must fit GPU_CHECK_BUDGET_S).
OPT_IN_STEPS=" dist profile "

# ---- bookkeeping and the summary --------------------------------------------------------------------------

# run_step NAME FUNCTION LOG: runs one step, records its row, and on failure shows the end of its log.
run_step() {
    local name=$1 fn=$2 logname=$3 rc=0 result started=$SECONDS
    NOTE=""
    "$fn" || rc=$?
    case $rc in
        0) result=PASS ;;
        2) result=SKIPPED ;;
        *) result=FAIL FAILED=$((FAILED + 1)) ;;
    esac
    ROWS+=("| $name | $result | ${NOTE//|/\\|} |")
    STATUS[$name]=$result
    log "$name: $result ($((SECONDS - started)) s) $NOTE"
    if [ "$result" = FAIL ] && [ -s "$OUT/$logname" ]; then
        echo "---- last lines of $logname ----"
        tail -n 25 "$OUT/$logname"
        echo "----"
    fi
}

skip_step() {
    ROWS+=("| $1 | SKIPPED | $2 |")
    log "$1: SKIPPED $2"
}

write_summary() {
    local fact
    {
        echo "# gpu-check summary"
        echo
        for fact in "${FACTS[@]}"; do echo "- $fact"; done
        echo "- cuDNN from: ${CUDNN_FROM:-not looked up}; cuBLAS from: ${CUBLAS_FROM:-not looked up}"
        echo
        echo "| step | result | notes |"
        echo "| --- | --- | --- |"
        printf '%s\n' "${ROWS[@]}"
        echo
        if [ "$FAILED" -eq 0 ]; then echo "overall: PASS"; else echo "overall: FAIL ($FAILED steps failed)"; fi
        echo "total $(elapsed) s; logs in \$OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
    } >"$OUT/summary.md"
}

gpu_check() {
    OUT=${OUT:-./out}
    mkdir -p "$OUT"
    OUT=$(cd "$OUT" && pwd)
    cd "$ROOT"
    export PATH="$PATH:/usr/local/cuda/bin"
    START_S=$SECONDS FAILED=0 HAVE_GPU="" GPU_INFO="" ROWS=() LIB_DIRS=()
    declare -gA STATUS=()
    local entry name fn logname
    # The logs are appended to; start them empty (the device tool empties $OUT, a local ./out is kept).
    rm -f "$OUT/build.log" "$OUT/summary.md"
    for entry in "${AFTER_BUILD[@]}"; do rm -f "$OUT/${entry##* }"; done

    run_step gpu step_gpu none
    collect_facts
    run_step dependencies step_deps build.log
    run_step build step_build build.log
    for entry in "${AFTER_BUILD[@]}"; do
        read -r name fn logname <<<"$entry"
        if [ -n "${GPU_CHECK_STEPS:-}" ] && [[ " $GPU_CHECK_STEPS " != *" $name "* ]]; then
            skip_step "$name" "not in GPU_CHECK_STEPS"
        elif [ -z "${GPU_CHECK_STEPS:-}" ] && [[ "$OPT_IN_STEPS" == *" $name "* ]]; then
            skip_step "$name" "opt-in: GPU_CHECK_STEPS=\"$name\" runs it"
        elif [ "${STATUS[build]}" = PASS ]; then
            run_step "$name" "$fn" "$logname"
        else
            skip_step "$name" "no build"
        fi
    done

    write_summary
    echo
    cat "$OUT/summary.md"
    [ "$FAILED" -eq 0 ]
}

case "${1:-}" in
    --prepare) prepare ;;
    "") gpu_check ;;
    -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' ;;
    *)
        echo "gpu-check: unknown argument '$1'; use --prepare, or no argument on the GPU machine" >&2
        exit 2
        ;;
esac
