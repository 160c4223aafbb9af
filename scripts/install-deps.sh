#!/usr/bin/env bash
# Installs the Debian packages reel builds and tests with, and nothing else.
# Does nothing (and needs no privileges) when every package is already installed.
#
#   scripts/install-deps.sh            install what is missing
#   scripts/install-deps.sh --check    list what is missing; exit 1 if anything is
set -euo pipefail

packages=(
  # toolchain
  g++ cmake make ninja-build pkg-config ccache git
  # libraries
  libtorch-dev libopenblas0-pthread
  libgloo-dev  # headers of the collective library libtorch links, for data-parallel training
  libopencv-dev libopencv-contrib-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev ffmpeg
  libsqlite3-dev zlib1g-dev
  libboost-program-options-dev
  libcurl4-openssl-dev
  # tests and benchmarks
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  # the browser test of `reel report` (headless, no network)
  chromium fonts-dejavu-core
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [[ "$status" == ii* ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
  echo "missing: ${missing[*]}"
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "install-deps: error: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
