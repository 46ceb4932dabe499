#!/usr/bin/env bash
# Install the pinned MMLab working set into the project's virtualenv (idempotent).
# Why each pin / flag:
#   - torch stays at the venv's build: every pip call gets torch/torchvision as constraints, so no
#     MMLab dependency can pull another torch.
#   - mmcv 2.1.0 has no wheel for torch 2.14: scripts/build-mmcv.sh builds it once (CPU ops) and
#     caches the wheel outside the repo; here it is installed with --no-deps.
#   - mmpose 1.3.2 with --no-deps: it requires chumpy (SMPL only, does not build on Python 3.11);
#     its other needs are installed explicitly. xtcocotools is compiled here (Cython<3, no build
#     isolation) because its published wheels are built against numpy 1.x.
# GPU users: install a CUDA build of mmcv 2.1.0 instead (see docs/mmlab.md) and run this after;
# an importable mmcv with ops is kept.
# Usage: scripts/setup-mmlab.sh [PYTHON]   (default .venv/bin/python). FORCE=1 reinstalls.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")  # absolute: build-mmcv.sh changes directory
[ -x "$PY" ] || { echo "setup-mmlab: no python at $PY (run make setup first)" >&2; exit 1; }

MMENGINE=0.10.7 MMCV=2.1.0 MMDET=3.3.0 MMPOSE=1.3.2 MMSEG=1.2.2 XTCOCOTOOLS=1.14.3
TORCH=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')
TORCHVISION=$("$PY" -c 'import torchvision; print(torchvision.__version__.split("+")[0])')
pins="mmengine=$MMENGINE mmcv=$MMCV mmdet=$MMDET mmpose=$MMPOSE mmseg=$MMSEG torch=$TORCH"
stamp="$(dirname "$PY")/../.mmlab-stamp"

check() {  # exits 0 when the pinned set imports with the right versions and mmcv's compiled ops
  "$PY" - "$MMENGINE" "$MMCV" "$MMDET" "$MMPOSE" "$MMSEG" <<'PY' 2>/dev/null
import sys
import mmengine, mmcv, mmdet, mmpose, mmseg
import mmcv.ops  # the compiled extension
from xtcocotools.coco import COCO
want = dict(zip(["mmengine", "mmcv", "mmdet", "mmpose", "mmseg"], sys.argv[1:]))
got = {m.__name__: m.__version__ for m in (mmengine, mmcv, mmdet, mmpose, mmseg)}
sys.exit(0 if got == want else 1)
PY
}

if [ "${FORCE:-0}" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins" ] && check; then
  echo "setup-mmlab: already installed ($pins)"
  exit 0
fi

start=$SECONDS
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
printf 'torch==%s\ntorchvision==%s\n' "$TORCH" "$TORCHVISION" > "$constraints"
step() {  # step "what" pip-args...: one pip call, named on failure
  local what=$1; shift
  echo "setup-mmlab: $what" >&2
  "$PY" -m pip install -q -c "$constraints" "$@" >&2 || { echo "setup-mmlab: FAILED: $what (pip install $*)" >&2; exit 1; }
}

step "mmengine $MMENGINE" "mmengine==$MMENGINE"
if "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV')" 2>/dev/null; then
  echo "setup-mmlab: keeping the installed mmcv $MMCV (with ops)" >&2
else
  wheel=$(MMCV_VERSION=$MMCV scripts/build-mmcv.sh "$PY" | tail -n 1) \
    || { echo "setup-mmlab: FAILED: building mmcv $MMCV (scripts/build-mmcv.sh)" >&2; exit 1; }
  step "mmcv $MMCV from $wheel" "$wheel"
fi
step "mmdet $MMDET" "mmdet==$MMDET" shapely six terminaltables tqdm
step "mmsegmentation $MMSEG" "mmsegmentation==$MMSEG" prettytable ftfy regex  # ftfy, regex: imported by mmseg.utils
if ! "$PY" -c "import sys; from importlib.metadata import version; from xtcocotools.coco import COCO; sys.exit(version('xtcocotools') != '$XTCOCOTOOLS')" 2>/dev/null; then
  step "Cython<3 (to compile xtcocotools)" "Cython<3" setuptools wheel
  step "xtcocotools $XTCOCOTOOLS (compiled against this numpy)" --force-reinstall --no-deps --no-build-isolation \
    --no-binary xtcocotools "xtcocotools==$XTCOCOTOOLS"
fi
step "mmpose $MMPOSE (no deps: chumpy is not needed)" --no-deps "mmpose==$MMPOSE" json_tricks munkres

check || { echo "setup-mmlab: FAILED: the installed set does not import (run: $PY -c 'import mmcv.ops, mmdet, mmpose, mmseg')" >&2; exit 1; }
"$PY" -c 'import autoloss_worker.mmlab.registry as r; print("setup-mmlab: registered", ", ".join(r.REGISTERED))' >&2 \
  || { echo "setup-mmlab: FAILED: autoloss_worker.mmlab.registry self-check" >&2; exit 1; }
echo "$pins" > "$stamp"
echo "setup-mmlab: done in $((SECONDS - start)) s ($pins)"
