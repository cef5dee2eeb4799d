#!/usr/bin/python3
"""Draw `kvlab zoo`'s table: validation loss against K/V bytes per token, one labelled point per
entry (docs/zoo.md). Reads DIR/zoo.csv, writes a PNG (matplotlib, Agg backend: no display).

    /usr/bin/python3 scripts/zoo-plot.py DIR/zoo.csv -o DIR/zoo.png
"""
import argparse
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Marker per family, so that the sharing schemes read apart at a glance.
FAMILIES = [
    ("lckv", "LCKV", "s", "tab:red"),
    ("sandwich", "sandwich", "D", "tab:purple"),
    ("cla", "CLA", "^", "tab:green"),
    ("", "heads only", "o", "tab:blue"),
]


def family(row):
    for key, name, marker, color in FAMILIES:
        if key in row["name"] or key in row["plan"]:
            return name, marker, color
    return FAMILIES[-1][1:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", help="zoo.csv written by kvlab zoo")
    ap.add_argument("-o", "--out", required=True, help="the PNG to write")
    ap.add_argument("--title", default=None)
    args = ap.parse_args()
    with open(args.csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["val_loss"]]
    if not rows:
        sys.exit(f"{args.csv}: no measured entry")
    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=120)
    seen = set()
    ys = [float(r["val_loss"]) for r in rows]
    gap = max(max(ys) - min(ys), 1e-3) * 0.045  # the least vertical distance between labels
    label_y = {}
    # Points of equal K/V bytes share a column: spread their labels apart, in loss order.
    for x in {r["kv_bytes_per_token"] for r in rows}:
        col = sorted((float(r["val_loss"]), i) for i, r in enumerate(rows)
                     if r["kv_bytes_per_token"] == x)
        placed = []
        for y, i in col:
            ly = y if not placed else max(y, placed[-1] + gap)
            placed.append(ly)
            label_y[i] = ly
    for i, r in enumerate(rows):
        x, y = int(r["kv_bytes_per_token"]), float(r["val_loss"])
        name, marker, color = family(r)
        ax.scatter([x], [y], marker=marker, color=color, s=60, zorder=3,
                   label=None if name in seen else name)
        seen.add(name)
        moved = abs(label_y[i] - y) > 1e-12
        ax.annotate(r["label"], (x, y), xytext=(x * 1.1, label_y[i]), textcoords="data",
                    fontsize=8, va="center",
                    arrowprops=dict(arrowstyle="-", color="0.6", lw=0.6) if moved else None)
    ax.set_xscale("log", base=2)
    xs = sorted({int(r["kv_bytes_per_token"]) for r in rows})
    ax.set_xticks(xs)
    ax.set_xticklabels([str(v) for v in xs])
    ax.minorticks_off()
    ax.set_xlim(xs[0] / 1.4, xs[-1] * 1.9)
    ax.set_xlabel("K/V bytes per token (f32, log scale)")
    ax.set_ylabel("validation loss (nats per token)")
    first = rows[0]
    ax.set_title(args.title or f"kvlab zoo: {first['steps']} steps "
                 f"({int(first['train_tokens']):,} tokens) per model, lower left is better")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    tmp = f"{args.out}.tmp.{os.getpid()}.png"  # a reader never sees half a file
    fig.savefig(tmp)
    os.replace(tmp, args.out)
    print(args.out)


if __name__ == "__main__":
    main()
