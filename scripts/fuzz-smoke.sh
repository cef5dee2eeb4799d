#!/usr/bin/env bash
# kvlab fuzz smoke: builds the three libFuzzer targets (clang, ASan + UBSan; docs/fuzzing.md) and
# runs each for a short, seeded while. Part of scripts/test.sh; longer runs are recorded in
# docs/fuzzing.md.   scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-${KVLAB_FUZZ_SECONDS:-60}}"
build=build/fuzz
if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKVLAB_CUDA=OFF -DKVLAB_TESTS=OFF -DKVLAB_FUZZ=ON -DKVLAB_NATIVE=OFF >/dev/null
fi
cmake --build "$build" --target fuzz_safetensors fuzz_config fuzz_tokenizer | grep -v "^\[" || true

# Seeded corpora in a scratch directory (valid files where the tree has them).
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/st" "$work/cfg" "$work/tok"
cp tests/data/*.json "$work/cfg/"
printf '\x13\x00\x00\x00\x00\x00\x00\x00{"__metadata__":{}}' >"$work/st/empty"
printf '\x01{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}' >"$work/tok/hf"
run() {  # target corpus max_len; a crash input stays in build/fuzz/ (crash-<sha1>)
  echo "kvlab fuzz smoke: $1 for ${seconds} s"
  "$build/tests/fuzz/$1" -seed=1 -max_total_time="$seconds" -max_len="$3" -print_final_stats=1 \
    -artifact_prefix="$build/" "$work/$2" 2>&1 | grep -E "number_of_executed_units|ERROR|crash-|Test unit written"
}
run fuzz_safetensors st 4096
run fuzz_config cfg 2048
run fuzz_tokenizer tok 16384
echo "kvlab fuzz smoke: no crash"
