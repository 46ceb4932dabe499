#!/usr/bin/env bash
# Build MMCV (with its CPU ops) from the sdist once and cache the wheel outside the repo.
# Why: PyPI has no mmcv wheel for torch 2.14; the sdist needs --no-build-isolation (its setup.py
# imports torch), setuptools<81 (pkg_resources) and, for torch >= 2.14, C++20 instead of C++17.
# Usage: scripts/build-mmcv.sh [PYTHON]   -> prints the path of the cached wheel.
set -euo pipefail
PY=${1:-.venv/bin/python}
# absolute (without resolving the venv symlink): the build runs from another directory
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
MMCV_VERSION=${MMCV_VERSION:-2.1.0}
torch_version=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')
py_tag=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
cache_root=${AUTOLOSS_WHEEL_CACHE:-$HOME/.cache/autoloss/wheels}
cache="$cache_root/mmcv-$MMCV_VERSION-torch$torch_version-$py_tag"
if compgen -G "$cache/mmcv-*.whl" > /dev/null; then
  ls "$cache"/mmcv-*.whl
  exit 0
fi
echo "building mmcv $MMCV_VERSION for torch $torch_version ($py_tag); about 10 min on 2 cores, once" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m pip install -q "setuptools<81" wheel ninja >&2
"$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$work" >&2 \
  || { echo "build-mmcv: could not download the mmcv $MMCV_VERSION sdist" >&2; exit 1; }
tar -xzf "$work"/mmcv-"$MMCV_VERSION".tar.gz -C "$work"
src="$work/mmcv-$MMCV_VERSION"
if "$PY" -c 'import sys, torch; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(0 if v >= (2, 14) else 1)'; then
  grep -q -- '-std=c++17' "$src/setup.py" || { echo "build-mmcv: expected -std=c++17 in mmcv's setup.py" >&2; exit 1; }
  sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
fi
mkdir -p "$cache.partial"
( cd "$src" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
    "$PY" -m pip wheel -q --no-build-isolation --no-deps . -w "$cache.partial" >&2 ) \
  || { echo "build-mmcv: compiling mmcv $MMCV_VERSION failed (see the compiler output above)" >&2; rm -rf "$cache.partial"; exit 1; }
mv "$cache.partial" "$cache"
ls "$cache"/mmcv-*.whl
