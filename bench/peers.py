#!/usr/bin/env python3
"""kvlab's speed beside its peers', measured the same way, alternating, on one machine.

    /usr/bin/python3 bench/peers.py --llama2c PATH/TO/llama2.c [--llama-bench PATH --gguf FILE]
                                    [--runs 5] [--threads 1,2] [--write-docs]

The peers are built by you, from checkouts you cloned, following their own READMEs (this script
builds and downloads nothing): llama2.c's `run` (`make runomp` in its checkout; its tokenizer.bin is
read from there too) and, optionally, llama.cpp's `llama-bench` with a GGUF f32 file of the same
model (converted with llama.cpp's own converter from `kvlab convert --to hf`).

The model: --model-bin FILE (a llama2.c .bin), else a random stories110M written once into
--work (kvlab init --seed 1, then kvlab convert --to llama2c): the same weights for every program.

What it measures (greedy, same tokenizer, same text; both programs print it and it is compared):
- decode at cache depth D: the whole-process wall time of generating D+T tokens from BOS minus
  that of D tokens (loading cancels), as tokens per second; kvlab `generate --tokens 1` against
  `run -n`. Each round runs kvlab and the peer back to back and gives one ratio; the table shows
  the median of the rounds and their spread (min to max).
- prefill of P tokens: kvlab's batched prefill (`kvlab bench prefill`, best of 3) against
  llama.cpp's `llama-bench -p P` (and, for reference, run.c, whose prompt is encoded one token at
  a time: wall(P prompt tokens + 1) - wall(1 prompt token + 1)).
OMP_WAIT_POLICY is left as each program sets it; threads: kvlab --threads N, OMP_NUM_THREADS=N.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = "once upon a time there was a little robot who liked to read books about the sea".split()


def fail(field, value, why):
    sys.exit(f"bench/peers.py: error: {field} = {value} is invalid: {why}")


def run(cmd, env=None):
    """Runs cmd; returns (seconds, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                       env={**os.environ, **(env or {})})
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"bench/peers.py: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return dt, p.stdout


def git_head(path):
    try:
        return subprocess.run(["git", "-C", path, "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


class Programs:
    def __init__(self, a):
        self.a = a
        self.kvlab = a.kvlab
        self.run_c = os.path.join(a.llama2c, "run")
        self.tok = os.path.join(a.llama2c, "tokenizer.bin")
        for f, v in (("--llama2c", self.run_c), ("--llama2c", self.tok), ("--kvlab", self.kvlab)):
            if not os.path.isfile(v):
                fail(f, v, "not found (build llama2.c's run with `make runomp` in its checkout; "
                           "kvlab with scripts/setup.sh)")
        self.model = a.model_bin or self.random_model()

    def random_model(self):
        # stories110M's shape (tied classifier) with 2048 positions, so that decode at depth 1024
        # fits (run.c clamps its steps to the model's seq_len).
        os.makedirs(self.a.work, exist_ok=True)
        ckpt = os.path.join(self.a.work, "stories110m-2k")
        binf = ckpt + ".bin"
        if not os.path.isfile(binf):
            cfg = os.path.join(self.a.work, "stories110m-2k.json")
            with open(cfg, "w") as f:
                json.dump(dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                               num_key_value_heads=12, intermediate_size=2048, vocab_size=32000,
                               rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
                               max_position_embeddings=2048), f)
            run([self.kvlab, "init", "--config", cfg, "--seed", "1", "-o", ckpt, "--force"])
            run([self.kvlab, "convert", "--model", ckpt, "--to", "llama2c", "-o", binf])
        return binf

    # Generation of `steps` tokens from BOS, or after a text prompt.
    def kvlab_generate(self, steps, threads, prompt=None):
        cmd = [self.kvlab, "generate", "--model", self.model, "--tokenizer", self.tok,
               "--threads", str(threads)]
        if prompt is None:  # BOS only: `steps` tokens from `steps` forward passes, as run -n
            cmd += ["--prompt", "", "--max-new", str(steps)]
        else:
            cmd += ["--prompt", prompt, "--max-new", str(steps)]
        dt, out = run(cmd)
        return dt, out

    def runc_generate(self, steps, threads, prompt=None, prompt_tokens=0):
        n = steps if prompt is None else prompt_tokens + steps
        cmd = [self.run_c, self.model, "-z", self.tok, "-t", "0", "-n", str(n), "-s", "1"]
        cmd += ["-i", prompt or ""]
        return run(cmd, env={"OMP_NUM_THREADS": str(threads)})


def text_of(out):
    """The generated text, without kvlab's summary line or run.c's speed line."""
    lines = [l for l in out.splitlines()
             if not l.startswith("[kvlab]") and not l.startswith("achieved tok/s")]
    return re.sub(r"\s+", " ", "".join(lines)).strip()


def decode_rows(p, a):
    rows = []
    for threads in a.threads:
        for depth in a.depths:
            lo, hi = max(depth, 2), depth + a.tokens
            ratios, kv_rates, rc_rates, same = [], [], [], True
            for _ in range(a.runs):
                k_lo, _ = p.kvlab_generate(lo, threads)
                r_lo, _ = p.runc_generate(lo, threads)
                k_hi, k_out = p.kvlab_generate(hi, threads)
                r_hi, r_out = p.runc_generate(hi, threads)
                if k_hi <= k_lo or r_hi <= r_lo:  # loading noise swamped the tokens timed
                    print(f"  (a round at depth {depth} dropped: the longer run was not slower; "
                          "give more --tokens)", flush=True)
                    continue
                kv = (hi - lo) / (k_hi - k_lo)
                rc = (hi - lo) / (r_hi - r_lo)
                kv_rates.append(kv)
                rc_rates.append(rc)
                ratios.append(kv / rc)
                same = same and text_of(k_out) == text_of(r_out)
            if not ratios:
                fail("--tokens", a.tokens, f"too few to time at depth {depth}: every round dropped")
            rows.append(dict(case=f"decode, depth {depth}", threads=threads, peer="llama2.c run",
                             kvlab=statistics.median(kv_rates), peer_rate=statistics.median(rc_rates),
                             ratio=statistics.median(ratios), lo=min(ratios), hi=max(ratios),
                             same_text=same))
            print(fmt_row(rows[-1]), flush=True)
    return rows


def prefill_rows(p, a):
    rows = []
    for threads in a.threads:
        for P in a.prefill:
            prompt = " ".join(WORDS[i % len(WORDS)] for i in range(P))
            # The prompt's length in tokens (BOS included), as both programs encode it.
            _, out = run([p.kvlab, "generate", "--model", p.model, "--tokenizer", p.tok,
                          "--prompt", prompt, "--max-new", "0"])
            m = re.search(r"prompt (\d+) tokens", out)
            n = int(m.group(1)) if m else P
            ratios, kv_rates, rc_rates = [], [], []
            for _ in range(a.runs):
                _, out = run([p.kvlab, "bench", "prefill", "--model", p.model, "--context", str(P),
                              "--threads", str(threads), "--repeat", "3", "--json"])
                kv = json.loads(out)["tokens_per_s"]
                r_hi, _ = p.runc_generate(1, threads, prompt=prompt, prompt_tokens=n)
                r_lo, _ = p.runc_generate(1, threads, prompt="once", prompt_tokens=2)
                rc = (n - 2) / max(1e-9, r_hi - r_lo)
                kv_rates.append(kv)
                rc_rates.append(rc)
                ratios.append(kv / rc)
            rows.append(dict(case=f"prefill {P} tokens", threads=threads, peer="llama2.c run",
                             kvlab=statistics.median(kv_rates), peer_rate=statistics.median(rc_rates),
                             ratio=statistics.median(ratios), lo=min(ratios), hi=max(ratios),
                             same_text=None))
            print(fmt_row(rows[-1]), flush=True)
            if a.llama_bench:
                rows.append(llamacpp_prefill(p, a, P, threads))
                print(fmt_row(rows[-1]), flush=True)
    return rows


def llamacpp_prefill(p, a, P, threads):
    ratios, kv_rates, lc_rates = [], [], []
    for _ in range(a.runs):
        _, out = run([p.kvlab, "bench", "prefill", "--model", p.model, "--context", str(P),
                      "--threads", str(threads), "--repeat", "3", "--json"])
        kv = json.loads(out)["tokens_per_s"]
        _, out = run([a.llama_bench, "-m", a.gguf, "-p", str(P), "-n", "0", "-t", str(threads),
                      "-r", "3", "-o", "json"])
        lc = json.loads(out)[0]["avg_ts"]
        kv_rates.append(kv)
        lc_rates.append(lc)
        ratios.append(kv / lc)
    return dict(case=f"prefill {P} tokens", threads=threads, peer="llama.cpp f32",
                kvlab=statistics.median(kv_rates), peer_rate=statistics.median(lc_rates),
                ratio=statistics.median(ratios), lo=min(ratios), hi=max(ratios), same_text=None)


def fmt_row(r):
    same = "-" if r["same_text"] is None else ("same" if r["same_text"] else "DIFFERS")
    return (f"| {r['case']} | {r['threads']} | {r['peer']} | {r['kvlab']:.1f} | {r['peer_rate']:.1f} "
            f"| **{r['ratio']:.2f}** ({r['lo']:.2f} to {r['hi']:.2f}) | {same} |")


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores of {model}, {platform.system()} {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama2c", required=True, help="a llama2.c checkout with `run` built")
    ap.add_argument("--llama-bench", help="llama.cpp's llama-bench binary (optional)")
    ap.add_argument("--gguf", help="with --llama-bench: the model as GGUF f32")
    ap.add_argument("--kvlab", default=os.path.join(ROOT, "build/cpu/kvlab"))
    ap.add_argument("--model-bin", help="a llama2.c .bin (default: a random stories110M)")
    ap.add_argument("--work", default="/tmp/kvlab-peers", help="where the random model is written")
    ap.add_argument("--runs", type=int, default=5, help="alternating rounds per case")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--depths", default="0,512,1024")
    ap.add_argument("--tokens", type=int, default=256,
                    help="decode tokens timed per case (enough that loading noise is small beside them)")
    ap.add_argument("--prefill", default="128,512")
    ap.add_argument("--write-docs", action="store_true",
                    help="put the table into docs/performance.md (section 'Beside the peers')")
    a = ap.parse_args()
    try:
        a.threads = [int(x) for x in a.threads.split(",")]
        a.depths = [int(x) for x in a.depths.split(",")]
        a.prefill = [int(x) for x in a.prefill.split(",")] if a.prefill else []
    except ValueError as e:
        fail("--threads/--depths/--prefill", str(e), "comma-separated whole numbers")
    if a.runs < 1:
        fail("--runs", a.runs, "at least 1")
    if bool(a.llama_bench) != bool(a.gguf):
        fail("--llama-bench/--gguf", a.llama_bench or a.gguf, "give both or neither")

    p = Programs(a)
    head = ("| case | threads | peer | kvlab tok/s | peer tok/s | kvlab / peer, median (spread) "
            "| text |\n| --- | --- | --- | --- | --- | --- | --- |")
    print(head)
    rows = decode_rows(p, a) + prefill_rows(p, a)
    peers = f"llama2.c {git_head(a.llama2c)}"
    if a.llama_bench:
        peers += f", llama.cpp {git_head(os.path.dirname(os.path.dirname(os.path.abspath(a.llama_bench))))}"
    stamp = (f"{datetime.date.today().isoformat()}, {machine()}; peers: {peers}; "
             f"{a.runs} alternating rounds per case, {a.tokens} decode tokens timed; model "
             f"{os.path.basename(p.model)}")
    print("\n" + stamp)
    if a.write_docs:
        doc = os.path.join(ROOT, "docs/performance.md")
        with open(doc) as f:
            text = f.read()
        table = "\n".join([head] + [fmt_row(r) for r in rows])
        block = (f"<!-- peers:begin (bench/peers.py --write-docs) -->\n{stamp}\n\n{table}\n"
                 f"<!-- peers:end -->")
        if "<!-- peers:begin" in text:
            text = re.sub(r"<!-- peers:begin.*?<!-- peers:end -->", lambda _: block, text,
                          flags=re.S)
        else:
            text += "\n## Beside the peers (issue 18)\n\n" + block + "\n"
        tmp = doc + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, doc)
        print(f"wrote the table into {doc}")


if __name__ == "__main__":
    main()
