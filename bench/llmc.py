#!/usr/bin/env python3
"""kvlab's training speed beside llm.c's CPU trainer (train_gpt2.c), alternating, on one machine.

    /usr/bin/python3 bench/llmc.py --llmc PATH/TO/llm.c [--train-gpt2 BIN] [--preset tiny]
                                   [--runs 5] [--threads 1,2] [--steps 12] [--skip 2] [--write-docs]

The peer is built by you, from a checkout you cloned (this script builds and downloads nothing;
docs/performance.md gives the commands). train_gpt2.c takes no arguments: it reads the checkpoint
`gpt2_124M.bin` and the token files `dev/data/tinyshakespeare/tiny_shakespeare_{train,val}.bin`
from its working directory, with B = 4 and T = 64 written into main(). kvlab's trainer has only
its presets (tiny: B = 16, T = 128), so llm.c is built a second time with the preset's B and T
(docs/performance.md: one sed of the two literals, into a binary outside the checkout) and given
as --train-gpt2; the script reads B and T back from what that binary prints and refuses a
mismatch.

What it writes into --work (never into the checkout): a GPT-2 checkpoint in llm.c's format (version
3, float32) with random weights (GPT-2's init, seeded) at the preset's width, depth, heads and
vocabulary and T positions, and train / val token files in llm.c's format (uint16 ids, uniform in
[0, vocab), seeded; neither trainer's speed depends on the ids). llm.c runs there.

What it measures: each round runs `kvlab train --preset P --plan standard` and llm.c's
train_gpt2 back to back (kvlab first in even rounds, llm.c first in odd ones), both for --steps
optimizer steps at the same thread count (kvlab --threads N, OMP_NUM_THREADS=N for llm.c). A step
is each program's own clock of one optimizer step (llm.c: batch, forward, backward, AdamW, its
"took X ms"; kvlab: batch, forward, backward, clipping, AdamW, the tokens_per_s of its log.jsonl);
the first --skip steps are dropped (allocation, first touch) and a round's rate is B*T over its
median step. llm.c is stopped after its step --steps - 1 (it samples text at step 20).
The table gives the median rates, the median ratio kvlab / llm.c and its spread over the rounds,
and each trainer's FLOP/s as a share of the machine's SGEMM peak: OpenBLAS's cblas_sgemm (the
library kvlab links, found with ldd, or --blas) on square float32 matrices, best of 5, taken before
and after the rounds at each thread count (the higher is the peak). Training FLOPs per token:
6 * (the parameters of the matrix products, the tied classifier included) + 6 * L * H * D * (T + 1)
(the causal attention's QK^T and AV, forward and backward, mean context (T + 1) / 2); norms,
activations, softmax and the optimizer are not counted.
"""
import argparse
import array
import ctypes
import datetime
import json
import math
import os
import pty
import random
import re
import select
import shutil
import statistics
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402  (its run, both, fail, git_head, machine, int_list and docs writer)

ROOT = peers.ROOT
peers.NAME = "bench/llmc.py"
CKPT_MAGIC, CKPT_VERSION = 20240326, 3
TOKENS_MAGIC, TOKENS_VERSION = 20240520, 1
HEADER_INTS = 256
# Where train_gpt2.c's main() looks, relative to its working directory.
CKPT_NAME = "gpt2_124M.bin"
TRAIN_NAME = "dev/data/tinyshakespeare/tiny_shakespeare_train.bin"
VAL_NAME = "dev/data/tinyshakespeare/tiny_shakespeare_val.bin"
LAST_STEP_BEFORE_SAMPLING = 19  # train_gpt2.c samples 64 tokens before step 20


# ---- llm.c's file formats ----------------------------------------------------------------------

def llmc_param_sizes(maxT, V, Vp, L, NH, C):
    """The 16 parameter tensors of train_gpt2.c's fill_in_parameter_sizes, in file order:
    (name, element count). NH does not change a size; it is in the header."""
    del V, NH
    return [("wte", Vp * C), ("wpe", maxT * C), ("ln1w", L * C), ("ln1b", L * C),
            ("qkvw", L * 3 * C * C), ("qkvb", L * 3 * C), ("attprojw", L * C * C),
            ("attprojb", L * C), ("ln2w", L * C), ("ln2b", L * C), ("fcw", L * 4 * C * C),
            ("fcb", L * 4 * C), ("fcprojw", L * C * 4 * C), ("fcprojb", L * C), ("lnfw", C),
            ("lnfb", C)]


def write_llmc_checkpoint(path, maxT, V, Vp, L, NH, C, seed=1):
    """A GPT-2 checkpoint as train_gpt2.c reads it: 256 int32 (magic, version 3, maxT, V, L, NH,
    C, Vp, zeros), then the float32 tensors. GPT-2's init: matrices and embeddings N(0, 0.02^2),
    the residual projections N(0, (0.02 / sqrt(2L))^2), LayerNorm weights 1, biases 0. Written
    atomically; returns the parameter count."""
    if Vp < V or C % NH:
        raise ValueError(f"need Vp >= V and NH dividing C (V {V}, Vp {Vp}, C {C}, NH {NH})")
    rng = random.Random(seed)
    resid = 0.02 / math.sqrt(2 * L)
    tmp = path + ".tmp"
    total = 0
    with open(tmp, "wb") as f:
        head = [CKPT_MAGIC, CKPT_VERSION, maxT, V, L, NH, C, Vp] + [0] * (HEADER_INTS - 8)
        f.write(struct.pack(f"<{HEADER_INTS}i", *head))
        for name, n in llmc_param_sizes(maxT, V, Vp, L, NH, C):
            if name in ("ln1w", "ln2w", "lnfw"):
                a = array.array("f", [1.0]) * n
            elif name.endswith("b"):
                a = array.array("f", [0.0]) * n
            else:
                sd = resid if name in ("attprojw", "fcprojw") else 0.02
                a = array.array("f", (rng.gauss(0.0, sd) for _ in range(n)))
            if sys.byteorder != "little":
                a.byteswap()
            a.tofile(f)
            total += n
    os.replace(tmp, path)
    return total


def read_llmc_checkpoint(path):
    """The header of a train_gpt2.c checkpoint, checked as it checks it (magic, version) and
    against the file's size: dict(maxT, V, L, NH, C, Vp, params)."""
    with open(path, "rb") as f:
        raw = f.read(HEADER_INTS * 4)
    if len(raw) != HEADER_INTS * 4:
        raise ValueError(f"{path}: shorter than llm.c's 256-int header")
    h = struct.unpack(f"<{HEADER_INTS}i", raw)
    if h[0] != CKPT_MAGIC or h[1] != CKPT_VERSION:
        raise ValueError(f"{path}: magic {h[0]} version {h[1]}, not llm.c's {CKPT_MAGIC} v3")
    cfg = dict(maxT=h[2], V=h[3], L=h[4], NH=h[5], C=h[6], Vp=h[7])
    cfg["params"] = sum(n for _, n in llmc_param_sizes(**cfg))
    size = os.path.getsize(path)
    if size != HEADER_INTS * 4 + 4 * cfg["params"]:
        raise ValueError(f"{path}: {size} bytes, not the header and {cfg['params']} floats")
    return cfg


def write_llmc_tokens(path, tokens):
    """A token file as llm.c's dataloader reads it: 256 int32 (magic, version 1, count, zeros),
    then the ids as uint16. Written atomically."""
    if not tokens or min(tokens) < 0 or max(tokens) > 65535:
        raise ValueError(f"{path}: token ids must be a non-empty list in [0, 65535]")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack(f"<{HEADER_INTS}i", TOKENS_MAGIC, TOKENS_VERSION, len(tokens),
                            *([0] * (HEADER_INTS - 3))))
        a = array.array("H", tokens)
        if sys.byteorder != "little":
            a.byteswap()
        a.tofile(f)
    os.replace(tmp, path)


def read_llmc_tokens(path):
    with open(path, "rb") as f:
        h = struct.unpack(f"<{HEADER_INTS}i", f.read(HEADER_INTS * 4))
        if h[0] != TOKENS_MAGIC or h[1] != TOKENS_VERSION:
            raise ValueError(f"{path}: magic {h[0]} version {h[1]}, not llm.c's tokens v1")
        a = array.array("H")
        a.frombytes(f.read())
    if sys.byteorder != "little":
        a.byteswap()
    if len(a) != h[2]:
        raise ValueError(f"{path}: header says {h[2]} tokens, the file holds {len(a)}")
    return list(a)


def llmc_num_activations(B, T, L, NH, C, Vp):
    """train_gpt2.c's num_activations (fill_in_activation_sizes) for B x T."""
    per_token = 2 * C + 18 * L * C + 4 * L + 3 + 2 * Vp
    return B * T * (per_token + 2 * L * NH * T)


def llmc_batch_of(num_activations, num_batches, train_tokens, cfg):
    """(B, T) that train_gpt2 runs, from its printed num_activations and train num_batches."""
    found = []
    for T in range(1, cfg["maxT"] + 1):
        per_seq = llmc_num_activations(1, T, cfg["L"], cfg["NH"], cfg["C"], cfg["Vp"])
        if num_activations % per_seq == 0:
            B = num_activations // per_seq
            if B >= 1 and train_tokens // (B * T) == num_batches:
                found.append((B, T))
    return found[0] if len(found) == 1 else None


# ---- FLOPs ---------------------------------------------------------------------------------------

def kvlab_params(L, C, H, Hkv, D, F, V):
    """kvlab's trainable parameters (tied embedding, RMSNorm weights, no biases):
    (all, those of matrix products including the classifier)."""
    mm = L * (2 * C * H * D + 2 * C * Hkv * D + 3 * C * F) + V * C
    return mm + L * 2 * C + C, mm


def llmc_params(maxT, L, C, Vp):
    """llm.c's GPT-2 parameters: (all, those of matrix products including the tied classifier)."""
    mm = L * 12 * C * C + Vp * C
    return Vp * C + maxT * C + L * (12 * C * C + 13 * C) + 2 * C, mm


def train_flops_per_token(mm_params, L, H, D, T):
    """6 * mm_params (forward 2, backward 4 per multiply-add) + the causal attention:
    forward 4 * H * D FLOPs per (query, key) pair, (T + 1) / 2 keys per query on average,
    times 3."""
    return 6 * mm_params + 6 * L * H * D * (T + 1)


# ---- SGEMM ---------------------------------------------------------------------------------------

def blas_of(kvlab):
    """The libopenblas kvlab is linked with (ldd), or None."""
    try:
        out = subprocess.run(["ldd", kvlab], capture_output=True, text=True).stdout
    except OSError:
        return None
    m = re.search(r"(libopenblas[^ ]*) => (\S+)", out)
    return m.group(2) if m else None


def sgemm_gflops(lib, threads, n=2048, repeat=5):
    """Best GFLOP/s of cblas_sgemm C = A B on n x n float32 matrices with `threads` threads."""
    blas = ctypes.CDLL(lib)
    blas.openblas_set_num_threads(ctypes.c_int(threads))
    a = array.array("f", [0.5]) * (n * n)
    b = array.array("f", [0.25]) * (n * n)
    c = array.array("f", [0.0]) * (n * n)
    ptr = [(ctypes.c_float * (n * n)).from_buffer(x) for x in (a, b, c)]
    f = blas.cblas_sgemm
    f.restype = None
    args = (ctypes.c_int(101), ctypes.c_int(111), ctypes.c_int(111), ctypes.c_int(n),
            ctypes.c_int(n), ctypes.c_int(n), ctypes.c_float(1.0), ptr[0], ctypes.c_int(n), ptr[1],
            ctypes.c_int(n), ctypes.c_float(0.0), ptr[2], ctypes.c_int(n))
    f(*args)  # warm-up: OpenBLAS's buffers and threads
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        f(*args)
        best = min(best, time.perf_counter() - t0)
    if abs(c[0] - 0.125 * n) > 1e-3 * n:
        sys.exit(f"bench/llmc.py: cblas_sgemm of {lib} gave {c[0]}, not {0.125 * n}")
    return 2.0 * n ** 3 / best / 1e9


# ---- the two trainers ---------------------------------------------------------------------------

class Trainers:
    def __init__(self, a):
        self.a = a
        self.kvlab = a.kvlab
        self.bin = a.train_gpt2 or os.path.join(a.llmc, "train_gpt2")
        for f, v in (("--train-gpt2", self.bin), ("--kvlab", self.kvlab)):
            if not os.path.isfile(v):
                peers.fail(f, v, "not found (build llm.c's train_gpt2 as docs/performance.md says; "
                           "kvlab with scripts/setup.sh)")
        self.shape = self.preset_shape(a.preset)
        self.blas = a.blas or blas_of(self.kvlab)
        if not self.blas or not os.path.isfile(self.blas):
            peers.fail("--blas", self.blas,
                       "no libopenblas found (kvlab is not linked with one): give it")
        self.workdir = os.path.join(a.work, f"llmc-{a.preset}")
        self.llmc_cfg = None
        self.train_tokens = 0

    def preset_shape(self, preset):
        """The preset's shape from `kvlab train --help` (L=6 C=128 H=4 D=32 F=384 T=128 B=16)."""
        _, out = peers.run([self.kvlab, "train", "--help"])
        m = re.search(rf"\b{re.escape(preset)} \(([^)]*)\)", out)
        if not m:
            peers.fail("--preset", preset, "not a preset `kvlab train --help` lists")
        shape = {k: int(v) for k, v in re.findall(r"\b([A-Z])=(\d+)", m.group(1))}
        if set(shape) != set("LCHDFTB"):
            sys.exit(f"bench/llmc.py: cannot read the shape of {preset} from: {m.group(1)}")
        return shape

    def kvlab_round(self, steps, threads, tag):
        """kvlab train for `steps` steps: (seconds of each step, the info line's vocab and
        parameter count)."""
        out = os.path.join(self.a.work, f"kvlab-{self.a.preset}-{tag}")
        shutil.rmtree(out, ignore_errors=True)
        _, text = peers.run([self.kvlab, "train", "--preset", self.a.preset, "--plan", "standard",
                             "--steps", str(steps), "--val-every", str(steps), "--threads",
                             str(threads), "-o", out])
        s = self.shape
        times = []
        with open(os.path.join(out, "log.jsonl")) as f:
            for line in f:
                j = json.loads(line)
                if "tokens_per_s" in j and j["tokens_per_s"] > 0:
                    times.append(s["B"] * s["T"] / j["tokens_per_s"])
        vocab = re.search(r"vocab (\d+)", text)
        params = re.search(r"([\d,]+) parameters", text)
        if len(times) != steps or not vocab or not params:
            sys.exit(f"bench/llmc.py: kvlab train logged {len(times)} of {steps} steps:\n{text}")
        shutil.rmtree(out, ignore_errors=True)
        return times, int(vocab.group(1)), int(params.group(1).replace(",", ""))

    def prepare_llmc(self, vocab):
        """The checkpoint and token files in --work, matched to the preset (written once)."""
        s = self.shape
        if s["H"] * s["D"] != s["C"]:
            peers.fail("--preset", self.a.preset, "llm.c's attention needs H * D = C")
        os.makedirs(os.path.join(self.workdir, os.path.dirname(TRAIN_NAME)), exist_ok=True)
        ckpt = os.path.join(self.workdir, CKPT_NAME)
        want = dict(maxT=s["T"], V=vocab, L=s["L"], NH=s["H"], C=s["C"], Vp=vocab)
        try:
            have = read_llmc_checkpoint(ckpt)
            have.pop("params")
        except (OSError, ValueError):
            have = None
        if have != want:
            write_llmc_checkpoint(ckpt, **want)
        self.llmc_cfg = read_llmc_checkpoint(ckpt)
        # Enough rows for every step and validation, and a count whose quotient pins B * T.
        self.train_tokens = 1000 * s["B"] * s["T"] + 1
        rng = random.Random(2)
        for name, n in ((TRAIN_NAME, self.train_tokens), (VAL_NAME, 8 * s["B"] * s["T"] + 1)):
            path = os.path.join(self.workdir, name)
            if not os.path.isfile(path) or os.path.getsize(path) != HEADER_INTS * 4 + 2 * n:
                write_llmc_tokens(path, [rng.randrange(vocab) for _ in range(n)])

    def llmc_round(self, steps, threads):
        """train_gpt2 in --work up to its step `steps - 1`: the seconds of each step. Its output
        goes to a pseudo-terminal, so that it comes line by line; it is stopped there."""
        master, slave = pty.openpty()
        try:
            p = subprocess.Popen([os.path.abspath(self.bin)], cwd=self.workdir, stdout=slave,
                                 stderr=slave, stdin=subprocess.DEVNULL,
                                 env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        except OSError as e:
            os.close(master)
            os.close(slave)
            sys.exit(f"bench/llmc.py: cannot run {self.bin}: {e}")
        os.close(slave)
        text, times, buf = [], {}, b""
        deadline = time.monotonic() + self.a.timeout
        try:
            while len(times) < steps:
                if time.monotonic() > deadline:
                    sys.exit(f"bench/llmc.py: {self.bin} took over {self.a.timeout} s:\n"
                             + "\n".join(text[-20:]))
                ready, _, _ = select.select([master], [], [], 1.0)
                if not ready:
                    if p.poll() is not None:
                        break
                    continue
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the program exited
                    chunk = b""
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace").rstrip("\r")
                    text.append(line)
                    m = re.match(r"step (\d+): train loss \S+ \(took ([0-9.]+) ms\)", line)
                    if m:
                        times[int(m.group(1))] = float(m.group(2)) / 1000.0
        finally:
            if p.poll() is None:
                p.kill()
            p.wait()
            os.close(master)
        if len(times) < steps:
            sys.exit(f"bench/llmc.py: {self.bin} stopped after {len(times)} of {steps} steps "
                     f"(exit {p.returncode}):\n" + "\n".join(text[-20:]))
        self.check_llmc_batch(text)
        return [times[i] for i in range(steps)]

    def check_llmc_batch(self, text):
        joined = "\n".join(text)
        acts = re.search(r"num_activations: (\d+)", joined)
        batches = re.search(r"train dataset num_batches: (\d+)", joined)
        params = re.search(r"num_parameters: (\d+)", joined)
        if not acts or not batches or not params:
            sys.exit("bench/llmc.py: train_gpt2 did not print num_parameters, num_batches and "
                     "num_activations:\n" + joined[-2000:])
        if int(params.group(1)) != self.llmc_cfg["params"]:
            sys.exit(f"bench/llmc.py: train_gpt2 read {params.group(1)} parameters, the "
                     f"checkpoint holds {self.llmc_cfg['params']}")
        bt = llmc_batch_of(int(acts.group(1)), int(batches.group(1)), self.train_tokens,
                           self.llmc_cfg)
        s = self.shape
        if bt is None:
            peers.fail("--train-gpt2", self.bin, "cannot tell its B and T from its num_activations")
        if bt != (s["B"], s["T"]):
            peers.fail("--train-gpt2", self.bin,
                 f"it trains B x T = {bt[0]} x {bt[1]}, the preset {s['B']} x {s['T']}: build it "
                 "with the preset's B and T (docs/performance.md, 'Training beside llm.c')")


def rate(times, skip, tokens):
    """B * T over the median of the steps after the first `skip`."""
    return tokens / statistics.median(times[skip:])


def fmt_row(r):
    return (f"| {r['threads']} | {r['kvlab']:.0f} | {r['llmc']:.0f} | **{r['ratio']:.2f}** "
            f"({r['lo']:.2f} to {r['hi']:.2f}, {r['rounds']}) | {r['sgemm']:.1f} "
            f"| {r['kvlab_gflops']:.1f} ({100 * r['kvlab_share']:.0f} %) "
            f"| {r['llmc_gflops']:.1f} ({100 * r['llmc_share']:.0f} %) |")


HEAD = ("| threads | kvlab tok/s | llm.c tok/s | kvlab / llm.c, median (min to max, rounds) "
        "| SGEMM peak GFLOP/s | kvlab GFLOP/s (share of peak) | llm.c GFLOP/s (share) |\n"
        "| --- | --- | --- | --- | --- | --- | --- |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llmc", required=True, help="an llm.c checkout (its commit is reported)")
    ap.add_argument("--train-gpt2", help="llm.c's train_gpt2 built with the preset's B and T "
                                         "(default: train_gpt2 in --llmc)")
    ap.add_argument("--kvlab", default=os.path.join(ROOT, "build/cpu/kvlab"))
    ap.add_argument("--preset", default="tiny", help="kvlab's training preset (tiny, small)")
    ap.add_argument("--blas", help="the libopenblas for the SGEMM peak (default: kvlab's, by ldd)")
    ap.add_argument("--work", default="/tmp/kvlab-llmc",
                    help="where the llm.c checkpoint, token files and kvlab's runs are written")
    ap.add_argument("--runs", type=int, default=5, help="alternating rounds per thread count")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=12, help="optimizer steps per run (at most 20)")
    ap.add_argument("--skip", type=int, default=2, help="first steps of each run not timed")
    ap.add_argument("--timeout", type=int, default=900, help="seconds one llm.c run may take")
    ap.add_argument("--write-docs", action="store_true",
                    help="put the table into docs/performance.md (section 'Training beside llm.c')")
    a = ap.parse_args()
    a.threads = peers.int_list("--threads", a.threads, 1)
    if not a.threads:
        peers.fail("--threads", "", "at least one thread count")
    if a.runs < 1:
        peers.fail("--runs", a.runs, "at least 1")
    if not 1 <= a.steps <= LAST_STEP_BEFORE_SAMPLING + 1:
        peers.fail("--steps", a.steps,
                   f"in [1, {LAST_STEP_BEFORE_SAMPLING + 1}] (train_gpt2 samples "
                   "text before its step 20)")
    if not 0 <= a.skip < a.steps:
        peers.fail("--skip", a.skip, f"in [0, --steps) = [0, {a.steps})")
    if a.timeout < 1:
        peers.fail("--timeout", a.timeout, "at least 1 second")
    if not os.path.isdir(a.llmc):
        peers.fail("--llmc", a.llmc, "not a directory (an llm.c checkout)")

    t = Trainers(a)
    s = t.shape
    tokens = s["B"] * s["T"]
    os.makedirs(a.work, exist_ok=True)
    load0 = os.getloadavg()[0]
    # A first kvlab run (not timed) gives its vocabulary and parameter count.
    _, vocab, kv_all = t.kvlab_round(1, 1, "probe")
    kv_count, kv_mm = kvlab_params(s["L"], s["C"], s["H"], s["H"], s["D"], s["F"], vocab)
    if kv_count != kv_all:
        sys.exit(f"bench/llmc.py: kvlab train reports {kv_all} parameters, the count here "
                 f"{kv_count}: the FLOP formula no longer fits the model")
    t.prepare_llmc(vocab)
    c = t.llmc_cfg
    lc_all, lc_mm = llmc_params(c["maxT"], c["L"], c["C"], c["Vp"])
    assert lc_all == c["params"]
    kv_fpt = train_flops_per_token(kv_mm, s["L"], s["H"], s["D"], s["T"])
    lc_fpt = train_flops_per_token(lc_mm, c["L"], c["NH"], c["C"] // c["NH"], s["T"])
    match = (f"kvlab `train --preset {a.preset} --plan standard` (L={s['L']} C={s['C']} "
             f"H={s['H']} D={s['D']} SwiGLU F={s['F']}, RoPE, RMSNorm, tied, vocab {vocab}): "
             f"{kv_all:,} parameters, {kv_mm:,} in matrix products, {kv_fpt / 1e6:.2f} MFLOP "
             f"per token; llm.c GPT-2 (L={c['L']} C={c['C']} NH={c['NH']} GELU MLP 4C, learned "
             f"positions, LayerNorm, tied, vocab {c['V']}, maxT {c['maxT']}): {lc_all:,} "
             f"parameters ({lc_all / kv_all:.3f} of kvlab's), {lc_mm:,} in matrix products, "
             f"{lc_fpt / 1e6:.2f} MFLOP per token; both B = {s['B']}, T = {s['T']}, float32")
    print(match, flush=True)
    print(HEAD, flush=True)
    rows = []
    for threads in a.threads:
        peak = [sgemm_gflops(t.blas, threads)]
        ratios, kv_rates, lc_rates = [], [], []
        for i in range(a.runs):
            kv, lc = peers.both(
                i, lambda: rate(t.kvlab_round(a.steps, threads, "run")[0], a.skip, tokens),
                lambda: rate(t.llmc_round(a.steps, threads), a.skip, tokens))
            kv_rates.append(kv)
            lc_rates.append(lc)
            ratios.append(kv / lc)
        peak.append(sgemm_gflops(t.blas, threads))
        kv_med, lc_med = statistics.median(kv_rates), statistics.median(lc_rates)
        r = dict(threads=threads, kvlab=kv_med, llmc=lc_med, ratio=statistics.median(ratios),
                 lo=min(ratios), hi=max(ratios), rounds=len(ratios), sgemm=max(peak),
                 sgemm_all=peak, kvlab_gflops=kv_med * kv_fpt / 1e9,
                 llmc_gflops=lc_med * lc_fpt / 1e9)
        r["kvlab_share"] = r["kvlab_gflops"] / r["sgemm"]
        r["llmc_share"] = r["llmc_gflops"] / r["sgemm"]
        rows.append(r)
        print(fmt_row(r), flush=True)
    sg = "; ".join(f"{r['threads']} thread{'s' if r['threads'] > 1 else ''} "
                   + " / ".join(f"{g:.1f}" for g in r["sgemm_all"]) for r in rows)
    stamp = (f"{datetime.date.today().isoformat()}, {peers.machine()}, load average {load0:.1f} "
             f"before and {os.getloadavg()[0]:.1f} after; llm.c {peers.git_head(a.llmc)} "
             f"({os.path.basename(t.bin)}); {a.runs} alternating rounds per thread count, "
             f"{a.steps} steps a run, the first {a.skip} not timed; SGEMM "
             f"({os.path.basename(t.blas)}, "
             f"2048 x 2048, best of 5) before / after the rounds, GFLOP/s: {sg}.\n\n{match}.")
    print("\n" + stamp)
    if a.write_docs:
        peers.write_docs(stamp, "\n".join([HEAD] + [fmt_row(r) for r in rows]), marker="llmc",
                         script="bench/llmc.py --write-docs",
                         title="Training beside llm.c (issue 18)")


if __name__ == "__main__":
    main()
