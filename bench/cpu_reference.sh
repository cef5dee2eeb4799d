#!/usr/bin/env bash
# The CPU reference's speed table of docs/performance.md: decode and prefill of the stories15M and
# stories110M shapes (random weights, fp32) at 1 and 2 threads, decode at cache depths 0, 512 and
# 1024, the machine's read bandwidth beside them, and LCKV's prefill cost against standard.
#   bench/cpu_reference.sh [path/to/kvlab]
set -euo pipefail
kvlab="${1:-build/cpu/kvlab}"
echo "# $(date -u +%Y-%m-%d) $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
for t in 1 2; do "$kvlab" bench memory --threads "$t"; done
for model in stories15m stories110m; do
  for t in 1 2; do
    for depth in 0 512 1024; do
      "$kvlab" bench decode --model "$model" --threads "$t" --context "$depth" --tokens 32 --repeat 3
    done
    "$kvlab" bench prefill --model "$model" --threads "$t" --context 512 --repeat 3
  done
done
echo "# LCKV prefill cost (stories110m, 512 tokens, 2 threads; upward plans: 9 passes per block)"
for plan in standard lckv:2 sandwich-middle:4 cla:2; do
  "$kvlab" bench prefill --model stories110m --plan "$plan" --threads 2 --context 512 --repeat 3
done
