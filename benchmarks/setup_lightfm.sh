#!/usr/bin/env bash
# Installs LightFM 1.17 (a benchmark peer, never a runtime dependency) into the Python
# environment given as $1 (default: the python on PATH). LightFM 1.17 ships only as an sdist
# whose setup.py assigns `__builtins__.__LIGHTFM_SETUP__ = True`, which fails when
# `__builtins__` is a dict (as under current pip's build isolation); the same assignment
# through the builtins module works. This script downloads the sdist, patches that one line
# and builds it.
set -euo pipefail
PYTHON="${1:-python}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# pip reads an sdist's metadata while downloading it; the legacy (non PEP 517) path runs
# setup.py as a script, where `__builtins__` is the module and the unpatched line works.
"$PYTHON" -m pip install -q setuptools wheel
"$PYTHON" -m pip download lightfm==1.17 --no-binary :all: --no-deps --no-use-pep517 -d "$WORK" -q
tar -xzf "$WORK"/lightfm-1.17.tar.gz -C "$WORK"
SRC="$WORK/lightfm-1.17"
grep -q '__builtins__.__LIGHTFM_SETUP__ = True' "$SRC/setup.py" || {
  echo "setup_lightfm.sh: setup.py no longer has the line this script patches; check it by hand" >&2
  exit 1
}
sed -i 's/__builtins__.__LIGHTFM_SETUP__ = True/import builtins; builtins.__LIGHTFM_SETUP__ = True/' "$SRC/setup.py"
"$PYTHON" -m pip install "$SRC" -q
"$PYTHON" -c "import lightfm; print('lightfm', lightfm.__version__, 'installed')"
