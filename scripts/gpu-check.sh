#!/usr/bin/env bash
# On the GPU machine (after scripts/gpu-stage.sh here): builds reel's libtorch-only part
# against the machine's CUDA PyTorch (libtorch 2.x), runs its tests, and measures the
# generator on CUDA. Logs and figures go to $OUT (the device tool's folder that comes
# back), else build-gpu/out. TORCH_PREFIX overrides where libtorch is found (to try the
# script elsewhere). One step per call keeps each inside the tool's 10 minutes:
#
#   bash scripts/gpu-check.sh build   # configure and build (build-gpu/, kept while warm)
#   bash scripts/gpu-check.sh test    # ctest: the libtorch-only suites, CUDA tests included
#   bash scripts/gpu-check.sh bench   # bench_generate for h100-b in bf16 (steps/s, MFU,
#                                     # peak memory, sampling seconds)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build-gpu/out}
mkdir -p "$out"
step=${1:-build}
prefix="$PWD/.gpu/prefix"
export LD_LIBRARY_PATH="$prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

case "$step" in
  build)
    torch_prefix=${TORCH_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')} || exit 1
    {
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
      python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
      nvcc --version | tail -1
      g++ --version | head -1
      cmake --version | head -1
    } > "$out/machine.txt" 2>&1
    cuda_root=()
    [[ -d /usr/local/cuda ]] && cuda_root=(-DCUDAToolkit_ROOT=/usr/local/cuda
                                          -DCUDA_TOOLKIT_ROOT_DIR=/usr/local/cuda)
    cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DREEL_TORCH_ONLY=ON \
      -DREEL_BUILD_TESTS=ON -DREEL_BUILD_BENCHMARKS=ON "${cuda_root[@]}" \
      -DCMAKE_PREFIX_PATH="$prefix;$torch_prefix" > "$out/configure.log" 2>&1 ||
      { tail -40 "$out/configure.log"; exit 1; }
    grep -E "reel:|Torch|CUDA" "$out/configure.log" | head -20
    cmake --build build-gpu -j "$(nproc)" > "$out/build.log" 2>&1 ||
      { grep -E -B2 -A6 "error|FAILED" "$out/build.log" | head -80; exit 1; }
    echo "built: $(ls build-gpu/tests build-gpu/benchmarks | grep -E '_test$|^bench_' | tr '\n' ' ')"
    ;;
  test)
    (cd build-gpu && ctest -j 4 --output-on-failure --timeout 600) > "$out/test.log" 2>&1
    rc=$?
    grep -E "tests passed|Failed|Skipped|\*\*\*" "$out/test.log" | tail -30
    exit $rc
    ;;
  bench)
    for batch in ${BENCH_BATCHES:-32}; do
      build-gpu/benchmarks/bench_generate --config h100-b --device cuda --batch "$batch" \
        2>&1 | tee "$out/bench_generate_h100-b_b$batch.txt"
    done
    ;;
  *)
    echo "usage: gpu-check.sh build|test|bench" >&2
    exit 2
    ;;
esac
