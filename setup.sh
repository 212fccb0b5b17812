#!/usr/bin/env bash
# One-command setup on Debian 12: installs the packages moestream needs
# (idempotent), then configures and builds Release into ./build.
#   ./setup.sh            install + build
#   ./setup.sh --no-install   build only
#   ./setup.sh --deps-only    install packages only
set -euo pipefail
cd "$(dirname "$0")"

PKGS=(build-essential cmake ninja-build pkg-config git
      libabsl-dev liburing-dev libgtest-dev libgmock-dev googletest libbenchmark-dev
      libpcre2-dev libcli11-dev nlohmann-json3-dev libxxhash-dev clang libclang-rt-14-dev python3 python3-numpy gnuplot-nox fio
      libcpp-httplib-dev chromium nginx-light python3-yaml)
# The server's node tests need node (18 or later) and npm: Debian's unless
# some node is installed already (a newer one from elsewhere is kept).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  PKGS+=(nodejs npm)
fi

if [[ "${1:-}" != "--no-install" ]]; then
  missing=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "setup: all packages present"
  fi
fi

[[ "${1:-}" == "--deps-only" ]] && exit 0

JOBS=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$JOBS"
echo "setup: built ./build/cli/moestream"
