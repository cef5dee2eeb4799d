#!/usr/bin/env bash
# Trains the models kvlab ships and writes them to models/ (docs/training.md, "The shipped models").
#   scripts/train-models.sh [RUNS_DIR [NAME...]]   (default: build/model-runs, every model)
# Each model is trained with `kvlab train` into RUNS_DIR/<name> (a finished run is not redone),
# then its best checkpoint is converted to float16 safetensors in models/<name> with a train.json
# that records the command, the seed and the validation loss. Deterministic at a fixed thread
# count: the same command, seed and --threads give the same weights.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-build/model-runs}"
shift || true
only=" $* "
kvlab="${KVLAB:-build/cpu/kvlab}"
threads="${THREADS:-2}"
export OMP_WAIT_POLICY=passive
mkdir -p "$runs"

# name | kvlab train arguments (after --preset tiny --seed 1 --recall-fraction 0.5)
models=(
  "tiny-standard|--plan standard --steps 3000"
  "tiny-cla2-mqa|--plan cla:2 --kv-heads 1 --steps 3000"
  "tiny-lckv2|--plan lckv:2 --train-passes 3,1 --steps 1000"
)

for entry in "${models[@]}"; do
  name="${entry%%|*}"
  if [[ "$only" != "  " && "$only" != *" $name "* ]]; then continue; fi
  args="--preset tiny --seed 1 --recall-fraction 0.5 ${entry#*|}"
  run="$runs/$name"
  cmd="kvlab train $args --threads $threads -o runs/$name"
  if [[ ! -f "$run/done" ]]; then  # not yet trained, or stopped part way: resume
    echo "== $cmd"
    if [[ -d "$run" ]]; then
      "$kvlab" train --resume "$run" --threads "$threads"
    else
      # shellcheck disable=SC2086
      "$kvlab" train $args --threads "$threads" -o "$run"
    fi
    touch "$run/done"
  fi
  out="models/$name"
  rm -rf "$out.new"
  "$kvlab" convert --model "$run/best" --to kvlab --dtype f16 -o "$out.new"
  /usr/bin/python3 - "$run" "$out.new" "$cmd" <<'PY'
import json, sys
run, out, cmd = sys.argv[1:4]
state = json.load(open(f"{run}/best/train_state.json"))
record = {
    "command": cmd,
    "then": f"kvlab convert --model runs/{out.split('/')[-1][:-4]}/best --to kvlab --dtype f16 -o models/{out.split('/')[-1][:-4]}",
    "seed": 1,
    "steps": state["step"],
    "val_loss": round(state["best_val_loss"], 4),
    "val_ppl": round(2.718281828459045 ** state["best_val_loss"], 2),
    "corpus": state["corpus"],
}
with open(f"{out}/train.json", "w") as f:
    json.dump(record, f, indent=2)
    f.write("\n")
PY
  rm -rf "$out"
  mv "$out.new" "$out"
  echo "wrote $out"
done
