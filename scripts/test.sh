#!/usr/bin/env bash
# kvlab tests: sets up, builds and runs the whole suite (the README's second command; .ci/run).
#   1. the Release build (preset cpu): every test, every label (unit, cli, oracle, gpu, ...);
#      GPU tests skip only when no CUDA device answers.
#   2. the sanitizer build (preset asan): the unit suite under ASan + UBSan (only its executables
#      are built there: target kvlab_tests_unit).
#   3. a fuzz smoke: the three libFuzzer targets, 60 s each from seeded corpora (docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"

scripts/setup.sh cpu
ctest --preset cpu -j "$jobs"

echo "kvlab tests: unit suite under ASan + UBSan"
scripts/setup.sh asan kvlab_tests_unit
ctest --preset asan -j "$jobs"

echo "kvlab tests: fuzz smoke (clang, ASan + UBSan)"
scripts/fuzz-smoke.sh
echo "kvlab tests: all passed"
