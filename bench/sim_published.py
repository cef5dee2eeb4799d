#!/usr/bin/env python3
"""The simulator beside published measurements: the rows of docs/simulator.md, "Simulator vs
published", recomputed with `kvlab simulate --json`.

    /usr/bin/python3 bench/sim_published.py [--kvlab build/cpu/kvlab] [--vidur-csv A100.csv ...]

Every published figure below is copied from the source named beside it; nothing is measured here.
With --vidur-csv (Vidur's per-operator profile of Llama-2-7B, microsoft/vidur
data/profiling/compute/<gpu>/meta-llama/Llama-2-7b-hf/mlp.csv, from a checkout you cloned; this
script downloads nothing) it also prints the efficiency model's time over the measured time of the
four projections, for each CSV given with its GPU: --vidur-csv a100-80gb=PATH.
"""
import argparse
import csv
import json
import statistics
import subprocess
import sys

# (label, source, simulate args, figure, published value)
TRT080 = "TensorRT-LLM v0.8.0 docs/source/performance.md"
TRT090 = "TensorRT-LLM v0.9.0 docs/source/performance.md"
TIMES = [
    ("Llama-2-7B prefill 2048, batch 1, A100 (first-token latency, ms)", TRT080,
     "--prompt 2048 --gen 1 --batch 1", "prefill_ms", 120.5),
    ("same", TRT090, "--prompt 2048 --gen 1 --batch 1", "prefill_ms", 132.4),
    ("Llama-2-7B prefill 128, batch 1, A100 (ms)", TRT080, "--prompt 128 --gen 1 --batch 1",
     "prefill_ms", 16.1),
    ("Llama-2-7B 128+128, batch 256, A100 (out tok/s)", TRT080,
     "--prompt 128 --gen 128 --batch 256", "tok_s", 5353),
    ("Llama-2-7B 128+2048, batch 32", TRT080, "--prompt 128 --gen 2048 --batch 32", "tok_s", 1518),
    ("Llama-2-7B 2048+128, batch 32", TRT080, "--prompt 2048 --gen 128 --batch 32", "tok_s", 547),
    ("Llama-2-7B 2048+2048, batch 16", TRT080, "--prompt 2048 --gen 2048 --batch 16", "tok_s", 613),
]
# Wu & Tu, ACL 2024, Layer-Condensed KV Cache, Table 1: largest batches (standard, w=2, w=10).
LCKV = [
    ("rtx-3090", "tinyllama-1.1b", 5, 8187, (48, 384, 119)),
    ("rtx-3090", "tinyllama-1.1b", 5, 2043, (239, 1150, 289)),
    ("rtx-3090", "llama-2-7b", 5, 8187, (1, 12, 4)),
    ("rtx-3090", "llama-2-7b", 2048, 2048, (2, 23, 8)),
    ("rtx-3090", "llama-2-7b", 5, 2043, (5, 64, 16)),
    ("rtx-3090", "llama-2-7b", 512, 512, (9, 95, 32)),
    ("rtx-3090", "llama-2-7b", 512, 1024, (7, 72, 16)),
    ("a100-80gb", "llama-2-7b", 2048, 2048, (15, 128, 42)),
    ("a100-80gb", "llama-30b", 2048, 2048, (1, 32, 8)),
]
HF = "--attention flash --logits all --cache-growth concat"


def simulate(kvlab, args):
    out = subprocess.run([kvlab, "simulate", "--json"] + args.split(), check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def figure(j, what):
    s = j["standard"]
    return s["prefill"]["time_s"] * 1e3 if what == "prefill_ms" else s["end_to_end_tokens_per_s"]


def vidur(spec):
    gpu, path = spec.split("=", 1)
    peak = {"a100-80gb": (312e12, 2039e9), "h100-80gb-sxm": (989e12, 3350e9)}[gpu]
    c, f = 4096, 11008
    ops = {"attn_pre_proj": (c, 3 * c), "attn_post_proj": (c, c), "mlp_up_proj": (c, 2 * f),
           "mlp_down_proj": (f, c)}
    ratios = []
    with open(path) as fh:
        for r in csv.DictReader(fh):
            if r["num_tensor_parallel_workers"] != "1":
                continue
            m = int(r["num_tokens"])
            for op, (i, o) in ops.items():
                t = float(r[f"time_stats.{op}.median"]) * 1e-3
                b, fl = i * o * 2 + m * (i + o) * 2, 2 * m * i * o
                model = max(b / (peak[1] * 0.84) + 7.0e-6, fl / (peak[0] * 0.70) + 9.5e-6)
                ratios.append(model / t)
    ratios.sort()
    n = len(ratios)
    print(f"Vidur {gpu}: {n} operators, model/measured median {statistics.median(ratios):.2f}, "
          f"10th-90th percentile {ratios[n // 10]:.2f}-{ratios[9 * n // 10]:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kvlab", default="build/cpu/kvlab")
    ap.add_argument("--vidur-csv", action="append", default=[], metavar="GPU=PATH")
    a = ap.parse_args()
    print("| setup | published | source | ideal | model | model / published |")
    for label, source, args, what, pub in TIMES:
        base = f"--model llama-2-7b --plan standard --gpu a100-80gb --dtype bf16 {args}"
        i = figure(simulate(a.kvlab, base + " --ideal"), what)
        m = figure(simulate(a.kvlab, base), what)
        print(f"| {label} | {pub:g} | {source} | {i:.4g} ({i / pub:.2f}) | {m:.4g} | "
              f"{m / pub:.2f} |")
    print("\n| GPU, model, x + y | published | ideal | model | model / published |")
    for gpu, model, x, y, pub in LCKV:
        base = (f"--model {model} --plan lckv:2 --plan lckv:10 --gpu {gpu} --dtype bf16 "
                f"--prompt {x} --gen {y}")
        ideal = simulate(a.kvlab, base + " --ideal")
        m = simulate(a.kvlab, base + " " + HF)
        bi = [ideal["standard"]["max_batch"]] + [p["max_batch"] for p in ideal["plans"]]
        bm = [m["standard"]["max_batch"]] + [p["max_batch"] for p in m["plans"]]
        fmt = lambda v: " / ".join(str(x) for x in v)
        print(f"| {gpu}, {model}, {x} + {y} | {fmt(pub)} | {fmt(bi)} | {fmt(bm)} | "
              + " / ".join(f"{b / p:.2f}" for b, p in zip(bm, pub)) + " |")
    for spec in a.vidur_csv:
        vidur(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
