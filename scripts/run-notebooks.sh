#!/usr/bin/env bash
# Executes the workshop notebooks (notebooks/[0-9][0-9]-*.ipynb) top to bottom with the project
# venv's Python as the kernel and writes them back with their outputs (what GitHub shows). CI
# executes them too (ctest -L notebooks) but keeps its executed copies in the build tree.
#   scripts/run-notebooks.sh [PRESET]     the module from build/PRESET/python (default cpu)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-cpu}"
test -f "build/$preset/python/kvlab/__init__.py" ||
  { echo "run-notebooks: build/$preset/python has no kvlab module (run scripts/setup.sh $preset)" >&2; exit 1; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
PYTHONPATH="$PWD/build/$preset/python" OMP_WAIT_POLICY=passive \
  .venv/bin/python tests/notebooks/run_notebook.py notebooks/[0-9][0-9]-*.ipynb --out "$out"
cp "$out"/*.ipynb notebooks/
echo "run-notebooks: wrote the outputs into notebooks/"
