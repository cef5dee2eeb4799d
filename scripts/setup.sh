#!/usr/bin/env bash
# kvlab setup: installs every Debian package the project needs (only the missing ones, so a second
# run is quick and offline), then configures and builds one CMake preset (all of it, or the
# given targets).
#   scripts/setup.sh [PRESET [TARGET...]]      PRESET: cpu (default), debug, asan, cuda
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-cpu}"
shift $(($# > 0 ? 1 : 0))
targets=("$@")

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libeigen3-dev libopenblas-openmp-dev nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  pybind11-dev libglfw3-dev libimgui-dev libstb-dev libgl-dev libgl1-mesa-dri
  python3 python3-dev python3-venv python3-pytest python3-numpy python3-torch python3-sklearn python3-matplotlib
  jupyter-notebook python3-nbconvert python3-ipykernel
  xvfb xauth clang libclang-rt-14-dev
  fortunes fortunes-min
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "kvlab setup: installing ${#missing[@]} Debian package(s): ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "kvlab setup: need root or sudo to install packages" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "kvlab setup: all ${#packages[@]} Debian packages present"
fi

# Python packages Debian lacks (the oracle tests' peers), pinned, in .venv over Debian's
# python3-torch 1.13 (transformers 4.38 still supports it). One venv; add pins to this list.
venv_packages=(transformers==4.38.2 tokenizers==0.15.2 safetensors==0.4.2)
[ -x .venv/bin/python ] || /usr/bin/python3 -m venv --system-site-packages .venv
# A Jupyter kernel for the venv (notebooks/README.md): Debian's python3 kernelspec runs /usr/bin/python3.
[ -f .venv/share/jupyter/kernels/python3/kernel.json ] ||
  .venv/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (kvlab venv)" >/dev/null
if .venv/bin/python - "${venv_packages[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    sys.exit(any(version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))
except PackageNotFoundError:
    sys.exit(1)
PY
then
  echo "kvlab setup: .venv has ${venv_packages[*]}"
else
  echo "kvlab setup: installing into .venv: ${venv_packages[*]}"
  .venv/bin/python -m pip install -q "${venv_packages[@]}"
fi

# scikit-build-core (Debian 12 has none) for `pip install .` (pyproject.toml), kept as wheels in
# .venv/wheels so that the pip-install test (tests/python/test_pip_install.py) runs offline.
build_wheels=(scikit-build-core==0.10.7 pathspec==0.12.1 packaging==24.1)
if ! ls .venv/wheels/scikit_build_core-0.10.7-*.whl >/dev/null 2>&1; then
  echo "kvlab setup: fetching into .venv/wheels: ${build_wheels[*]}"
  .venv/bin/python -m pip download -q --only-binary=:all: -d .venv/wheels "${build_wheels[@]}"
fi

cmake --preset "$preset" | grep -E "kvlab:|Error" || true
test -f "build/$preset/build.ninja" || { echo "kvlab setup: configure failed" >&2; exit 1; }
if ((${#targets[@]})); then
  cmake --build --preset "$preset" --target "${targets[@]}"
  echo "kvlab setup: built ${targets[*]} of preset '$preset'"
else
  cmake --build --preset "$preset"
  echo "kvlab setup: built preset '$preset' (binary: build/$preset/kvlab)"
fi

# `import kvlab` in .venv: a .pth file naming the cpu build's python/ directory (the extension
# and the package's files; docs/python.md).
if [ "$preset" = cpu ] && [ -f build/cpu/python/kvlab/__init__.py ]; then
  site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$PWD/build/cpu/python" >"$site/kvlab-build.pth"
fi
