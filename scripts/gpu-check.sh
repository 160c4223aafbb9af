#!/usr/bin/env bash
# On the GPU machine (after scripts/gpu-stage.sh here): builds reel's libtorch-only part
# against the machine's CUDA PyTorch (libtorch 2.x), runs its tests, and measures the
# generator on CUDA. Logs and figures go to $OUT (the device tool's folder that comes
# back), else build-gpu/out. TORCH_PREFIX overrides where libtorch is found (to try the
# script elsewhere). The device machine goes back 30 s after a call, so `all` does
# everything in one call of the tool's 10 minutes, each step bounded in time:
#
#   bash scripts/gpu-check.sh all     # build, the GPU tests, bench, ab, census, profile, then ctest
#   bash scripts/gpu-check.sh build   # configure and build (build-gpu/, kept while warm)
#   bash scripts/gpu-check.sh test    # ctest: the libtorch-only suites, CUDA tests included
#   bash scripts/gpu-check.sh bench   # bench_generate for h100-b in bf16 (steps/s, MFU,
#                                     # peak GPU memory as nvidia-smi reads it and the
#                                     # allocator's retries, sampling s)
#   bash scripts/gpu-check.sh ab      # the denoiser's step with the fused operators (q/k
#                                     # norm, norm + modulation) against ATen's composite ones,
#                                     # and with activation checkpointing
#   bash scripts/gpu-check.sh census  # bench_step_ops: what one h100-b step dispatches
#                                     # under bf16 autocast (calls, launches, bytes, FLOPs)
#   bash scripts/gpu-check.sh profile # 2,700 kernels (about one warm step) timed by ncu
#   bash scripts/gpu-check.sh vae     # VAE quality on held-out synthetic clips, bf16 on
#                                     # CUDA (VAE_ARGS: bench_vae_quality's flags)
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
    # -k 0: every compile error in one call, not just the first.
    cmake --build build-gpu -j "$(nproc)" -- -k 0 > "$out/build.log" 2>&1 ||
      { grep -E -A8 "error:" "$out/build.log" | head -150; exit 1; }
    echo "built: $(ls build-gpu/tests build-gpu/benchmarks | grep -E '_test$|^bench_' | tr '\n' ' ')"
    ;;
  test)
    # 4 ctest jobs of 4 CPU threads each on the 16 cores (at 16 threads each, CPU tests
    # took 40x longer than here).
    (cd build-gpu && OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} ctest -j 4 --output-on-failure \
      --timeout 600) > "$out/test.log" 2>&1
    rc=$?
    grep -E "tests passed|Failed|Skipped|\*\*\*" "$out/test.log" | tail -30
    exit $rc
    ;;
  bench)
    for batch in ${BENCH_BATCHES:-32}; do
      log="$out/bench_generate_h100-b_b$batch.txt"
      # The GPU's used memory, sampled every 100 ms while the benchmark runs (what
      # libtorch's caching allocator holds, the CUDA context included).
      nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$out/mem.txt" &
      smi=$!
      build-gpu/benchmarks/bench_generate --config h100-b --device cuda --batch "$batch" \
        2>&1 | tee "$log"
      kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
      echo "peak GPU memory used (nvidia-smi): $(sort -n "$out/mem.txt" | tail -1) MiB" | tee -a "$log"
      # Allocations the caching allocator retried after emptying its cache (each one
      # synchronises the device): measure again with expandable segments, which avoid
      # the fragmentation behind most retries.
      if grep -qE ", [1-9][0-9]* allocations retried" "$log"; then
        echo "== the allocator retried; again with PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"
        PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True build-gpu/benchmarks/bench_generate \
          --config h100-b --device cuda --batch "$batch" --denoiser-only yes 2>&1 |
          tee "$out/bench_generate_h100-b_b${batch}_expandable.txt"
      fi
    done
    ;;
  ab)
    # Each fused operator against the ATen operators it replaces, alone at h100-b's shapes.
    REEL_BENCH_DEVICE=cuda build-gpu/benchmarks/bench_fused_ops 2>&1 | tee "$out/fused_ops.txt"
    # The fused operators (query/key norm, norm + modulation, gated residual) all off, all
    # but the gated residual, all on, all on with the query/key norm's vectorised kernels;
    # then all on with activation checkpointing (memory against time).
    for ops in "composite composite composite no" "fused fused composite no" \
      "fused fused fused no" "vector fused fused no" "fused fused fused yes"; do
      set -- $ops
      build-gpu/benchmarks/bench_generate --config h100-b --device cuda --batch 32 --steps 20 \
        --qk-norm "$1" --norm-modulate "$2" --gated-residual "$3" --grad-checkpointing "$4" \
        --denoiser-only yes 2>&1 | tee "$out/ab_qk-$1_nm-$2_gr-$3_ckpt-$4.txt"
    done
    # Each step's loss read before the next is queued (the host waits for the device at
    # every step) against read one step late (the default).
    build-gpu/benchmarks/bench_generate --config h100-b --device cuda --batch 32 --steps 20 \
      --loss-read each --denoiser-only yes 2>&1 | tee "$out/ab_loss-read-each.txt"
    ;;
  census)
    for qk in fused composite; do
      build-gpu/benchmarks/bench_step_ops --config h100-b --device cuda --batch 32 --top 40 \
        --qk-norm "$qk" --norm-modulate "$qk" --gated-residual "$qk" 2>&1 | tee "$out/census_h100-b_b32_$qk.txt" | head -10
    done
    ;;
  profile)
    # Kernel by kernel: one metric (duration) keeps ncu's replay short; the summary
    # (scripts/ncu-summary.py, here or there) groups the kernels by name. The first
    # PROFILE_SKIP kernels (the model's initialisation and most of the first step, about
    # 2,400-2,700 launches a step at batch 32) are skipped; the 2,700 timed are about one
    # step's worth (stop 29: 162.7 ms of GPU time in a 198 ms step).
    ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-kernel-base function \
      --launch-skip "${PROFILE_SKIP:-3000}" --launch-count "${PROFILE_KERNELS:-2700}" \
      --log-file "$out/ncu.csv" \
      build-gpu/benchmarks/bench_generate --config h100-b --device cuda --batch 32 --steps 1 \
      > "$out/ncu_bench.txt" 2>&1
    rc=$?
    python3 scripts/ncu-summary.py "$out/ncu.csv" | tee "$out/ncu_summary.txt" | head -40
    gzip -f "$out/ncu.csv"
    exit $rc
    ;;
  vae)
    # shellcheck disable=SC2086
    build-gpu/benchmarks/bench_vae_quality --device cuda \
      ${VAE_ARGS:---train 4096 --heldout 16 --steps 6000 --batch 16} 2>&1 | tee "$out/vae.txt"
    ;;
  all)
    start=$SECONDS
    timeout 300 bash "$0" build || exit 1
    echo "== build: $((SECONDS - start)) s"
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} timeout 120 \
      build-gpu/tests/generate_core_test --gtest_filter='*Cuda*:*Gpu*:*Nccl*' 2>&1 |
      tee "$out/gpu_tests.txt" | grep -E "^\[|GPU|VAE loss|apart|kernels|Failure|Expected|Which is|actual" | head -100
    echo "== GPU tests: $((SECONDS - start)) s"
    timeout 200 bash "$0" bench
    echo "== bench: $((SECONDS - start)) s"
    timeout 200 bash "$0" ab
    echo "== A/B: $((SECONDS - start)) s"
    timeout 60 bash "$0" census
    echo "== census: $((SECONDS - start)) s"
    # ncu over about one warm step (40-60 s on the H100).
    timeout 120 bash "$0" profile | head -12
    echo "== profile: $((SECONDS - start)) s"
    left=$((570 - (SECONDS - start)))
    if (( left > 30 )); then
      timeout "$left" bash "$0" test
      echo "== ctest: $((SECONDS - start)) s"
    fi
    ;;
  *)
    echo "usage: gpu-check.sh all|build|test|bench|ab|census|profile|vae" >&2
    exit 2
    ;;
esac
