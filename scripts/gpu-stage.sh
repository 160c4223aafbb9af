#!/usr/bin/env bash
# Here, before using the GPU machine: stages what its image lacks for reel's libtorch-only
# build (it has CUDA PyTorch, CMake, ninja and nvcc, but no Debian -dev packages), namely
# GoogleTest and Google Benchmark from this machine's Debian packages, into .gpu/prefix
# (git-ignored). The device tool carries that folder beside the working tree:
#
#   bash scripts/gpu-stage.sh
#   run(command="bash scripts/gpu-check.sh build", carry=[".gpu"])   # then test, bench
set -euo pipefail
cd "$(dirname "$0")/.."
multiarch=lib/x86_64-linux-gnu
prefix=.gpu/prefix
for f in /usr/include/gtest /usr/include/benchmark /usr/$multiarch/cmake/GTest \
         /usr/$multiarch/cmake/benchmark /usr/$multiarch/libgtest.a; do
  [[ -e "$f" ]] || { echo "gpu-stage: $f is missing (bash scripts/install-deps.sh)" >&2; exit 1; }
done
rm -rf .gpu
mkdir -p "$prefix/include" "$prefix/$multiarch/cmake"
cp -a /usr/include/gtest /usr/include/gmock /usr/include/benchmark "$prefix/include/"
cp -a /usr/$multiarch/cmake/GTest /usr/$multiarch/cmake/benchmark "$prefix/$multiarch/cmake/"
cp -a /usr/$multiarch/libgtest*.a /usr/$multiarch/libgmock*.a /usr/$multiarch/libbenchmark* \
  "$prefix/$multiarch/"
du -sh .gpu
