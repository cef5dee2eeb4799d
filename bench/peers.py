#!/usr/bin/env python3
"""kvlab's speed beside its peers', measured the same way, alternating, on one machine.

    /usr/bin/python3 bench/peers.py --llama2c PATH/TO/llama2.c
                                    [--llama-bench PATH/TO/llama-bench [--gguf FILE]]
                                    [--runs 5] [--threads 1,2] [--write-docs]

The peers are built by you, from checkouts you cloned, following their own READMEs (this script
builds and downloads nothing; docs/performance.md gives the commands): llama2.c's `run` (`make
runomp` in its checkout; its tokenizer.bin is read from there too) and, optionally, llama.cpp's
`llama-bench` (CPU build). The GGUF f32 of the model is --gguf, else it is written once into --work
by llama.cpp's own `llama-convert-llama2c-to-ggml` (found beside llama-bench, or
--llama-convert) from the same llama2.c .bin, with llama2.c's tokenizer.bin as its vocabulary.

The model: --model-bin FILE (a llama2.c .bin), else a random stories110M written once into
--work (kvlab init --seed 1, then kvlab convert --to llama2c): the same weights for every program.

What it measures (greedy, same tokenizer; each round runs kvlab and the peer back to back, kvlab
first in even rounds and the peer first in odd ones, and gives one ratio kvlab / peer; the table
shows the median ratio of the rounds and their spread, min to max):
- beside llama2.c's run, decode at cache depth D: the whole-process wall time of generating D+T
  tokens from BOS minus that of D tokens (loading cancels), as tokens per second; kvlab `generate`
  against `run -n`. Both print their text and it is compared.
- beside llama.cpp, decode at depth D, in process, no sampling: `kvlab bench decode --context D
  --tokens T` against llama-bench's `-n T` (D = 0) or `-pg D,T` minus `-p D` (the time of T tokens
  after a prompt of D; this llama-bench generation has no depth option, the subtraction works on
  old and new ones). One in-process run each per round.
- prefill of P tokens: kvlab's batched prefill (`kvlab bench prefill`, best of 3) against
  llama.cpp's `llama-bench -p P` (best of 3) and, for reference, run.c, whose prompt is encoded
  one token at a time: wall(P prompt tokens + 1) - wall(1 prompt token + 1).
- the text, once: the benchmark model's greedy text is one token repeated (random weights), which
  would hide a wrong rotary layout or cache, so the check runs on a copy of its weights times 4
  (written into --work; needs numpy), whose greedy text is varied and sensitive to any difference
  in the arithmetic: kvlab `generate`, run and llama.cpp's llama-cli (beside llama-bench, or
  --llama-cli; --temp 0, an f32 K/V cache) continue a short prompt for 32 tokens and a
  181-token one (past the GGUF's context_length of 128) for 16, and the texts are compared
  (byte tokens aside: each program prints those differently). With llama.cpp's f16 K/V cache
  its text leaves the others' after about a dozen tokens; with f32 it agrees.
llama-bench's K/V cache: f32 like kvlab's and run's when it takes that (--llama-cache; older
llama-bench builds such as c392e50 take only f16 and quantized types, and then its rows say f16).
OMP_WAIT_POLICY is left as each program sets it; threads: kvlab --threads N, OMP_NUM_THREADS=N for
run, llama-bench -t N.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = "once upon a time there was a little robot who liked to read books about the sea".split()
# The text check's prompts and tokens generated: a short prompt, and one past position 128.
TEXT_CHECKS = (("once upon a time there was a little robot", 32),
               (" ".join(WORDS[i % len(WORDS)] for i in range(180)), 16))
TEXT_SCALE = 4.0
# The prefix of error messages (bench/llmc.py, which shares these helpers, sets its own).
NAME = "bench/peers.py"


def fail(field, value, why):
    print(f"{NAME}: error: {field} = {value} is invalid: {why}", file=sys.stderr)
    sys.exit(2)


def run(cmd, env=None, stderr=False, streams=False):
    """Runs cmd; returns (seconds, stdout), (seconds, stderr) with stderr=True, or
    (seconds, stdout, stderr) with streams=True."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                           stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    except OSError as e:
        sys.exit(f"{NAME}: cannot run {cmd[0]}: {e}")
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{NAME}: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    if streams:
        return dt, p.stdout, p.stderr
    return dt, p.stderr if stderr else p.stdout


def prompt_tokens(p, model, prompt):
    """The prompt's length in tokens (BOS included), as kvlab and run encode it."""
    _, err = run([p.kvlab, "generate", "--model", model, "--tokenizer", p.tok, "--prompt", prompt,
                  "--max-new", "0"], stderr=True)
    m = re.search(r"prompt (\d+) tokens", err)
    if not m:
        sys.exit(f"bench/peers.py: kvlab generate printed no prompt length:\n{err[-2000:]}")
    return int(m.group(1))


def git_head(path):
    try:
        return subprocess.run(["git", "-C", path, "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def both(round_no, kvlab, peer):
    """Calls kvlab() and peer() back to back, kvlab first in even rounds; returns (kvlab, peer)."""
    if round_no % 2 == 0:
        k = kvlab()
        return k, peer()
    q = peer()
    return kvlab(), q


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
        if a.model_bin and not os.path.isfile(a.model_bin):
            fail("--model-bin", a.model_bin, "not found")
        self.model = a.model_bin or self.random_model()
        self.seq_len = self.bin_seq_len(self.model)
        self.llama_bench = a.llama_bench
        self.llamacpp_commit = None
        self.llama_cli = None
        self.converter = None
        self.same_text = {}  # peer -> the text check's answer (absent: not checked)
        if self.llama_bench:
            if not os.path.isfile(self.llama_bench):
                fail("--llama-bench", self.llama_bench, "not found (build llama.cpp's llama-bench)")
            bindir = os.path.dirname(os.path.abspath(self.llama_bench))
            conv = a.llama_convert or os.path.join(bindir, "llama-convert-llama2c-to-ggml")
            if os.path.isfile(conv):
                self.converter = conv
            elif a.llama_convert:
                fail("--llama-convert", a.llama_convert, "not found")
            if a.gguf and not os.path.isfile(a.gguf):
                fail("--gguf", a.gguf, "not found")
            self.gguf = a.gguf or self.gguf_of(self.model)
            self.cache = a.llama_cache if a.llama_cache != "auto" else self.probe_cache()
            cli = a.llama_cli or os.path.join(bindir, "llama-cli")
            if os.path.isfile(cli):
                self.llama_cli = cli
            elif a.llama_cli:
                fail("--llama-cli", a.llama_cli, "not found")

    @staticmethod
    def bin_seq_len(path):
        with open(path, "rb") as f:
            head = f.read(28)
        if len(head) != 28:
            fail("--model-bin", path, "shorter than a llama2.c header (7 int32)")
        return struct.unpack("<7i", head)[6]

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

    def gguf_of(self, model):
        """`model` as GGUF f32, by llama.cpp's own converter (vocabulary: llama2.c's
        tokenizer.bin), written once into --work."""
        stem = os.path.splitext(os.path.basename(model))[0]
        out = os.path.join(self.a.work, stem + ".f32.gguf")
        if os.path.isfile(out) and os.path.getmtime(out) >= os.path.getmtime(model):
            return out
        if not self.converter:
            fail("--llama-convert", os.path.join(os.path.dirname(os.path.abspath(
                self.llama_bench)), "llama-convert-llama2c-to-ggml"), "not found: build llama.cpp's "
                 "llama-convert-llama2c-to-ggml target, or give the model as --gguf")
        os.makedirs(self.a.work, exist_ok=True)
        tmp = out + ".tmp"
        run([self.converter, "--copy-vocab-from-model", self.tok, "--llama2c-model", model,
             "--llama2c-output-model", tmp])
        os.replace(tmp, out)
        print(f"wrote {out} (llama-convert-llama2c-to-ggml)", flush=True)
        return out

    # Generation of `steps` tokens from BOS, or after a text prompt.
    def kvlab_generate(self, steps, threads, prompt=None, model=None):
        cmd = [self.kvlab, "generate", "--model", model or self.model, "--tokenizer", self.tok,
               "--threads", str(threads), "--prompt", prompt or "", "--max-new", str(steps)]
        return run(cmd)

    def runc_generate(self, steps, threads, prompt=None, prompt_tokens=0, model=None):
        n = steps if prompt is None else prompt_tokens + steps
        cmd = [self.run_c, model or self.model, "-z", self.tok, "-t", "0", "-n", str(n), "-s", "1"]
        cmd += ["-i", prompt or ""]
        return run(cmd, env={"OMP_NUM_THREADS": str(threads)})

    # As kvlab_generate / runc_generate from BOS, with the seconds each program's own clock gives
    # its generated tokens (loading excluded): kvlab's "N new tokens, R tokens/s", run's
    # "achieved tok/s" (over the tokens after the first). None when a program did not print it.
    def kvlab_generate_timed(self, steps, threads):
        cmd = [self.kvlab, "generate", "--model", self.model, "--tokenizer", self.tok,
               "--threads", str(threads), "--prompt", "", "--max-new", str(steps)]
        dt, out, err = run(cmd, streams=True)
        m = re.search(r"(\d+) new tokens, ([0-9.]+) tokens/s", err)
        own = int(m.group(1)) / float(m.group(2)) if m and float(m.group(2)) > 0 else None
        return dt, out, own

    def runc_generate_timed(self, steps, threads):
        cmd = [self.run_c, self.model, "-z", self.tok, "-t", "0", "-n", str(steps), "-s", "1",
               "-i", ""]
        dt, out, err = run(cmd, env={"OMP_NUM_THREADS": str(threads)}, streams=True)
        m = re.search(r"achieved tok/s: ([0-9.]+)", err)
        own = (steps - 1) / float(m.group(1)) if m and float(m.group(1)) > 0 else None
        return dt, out, own

    def kvlab_bench(self, mode, context, threads, repeat, tokens=None):
        cmd = [self.kvlab, "bench", mode, "--model", self.model, "--context", str(context),
               "--threads", str(threads), "--repeat", str(repeat), "--json"]
        if tokens:
            cmd += ["--tokens", str(tokens)]
        return json.loads(run(cmd)[1])["tokens_per_s"]

    def probe_cache(self):
        """f32 when this llama-bench takes an f32 K/V cache (older ones take only f16 and
        quantized types), else f16."""
        p = subprocess.run([self.llama_bench, "-m", self.gguf, "-p", "8", "-n", "0", "-r", "1",
                            "-o", "json", "-ctk", "f32", "-ctv", "f32"], capture_output=True,
                           text=True, errors="replace", stdin=subprocess.DEVNULL)
        if p.returncode == 0:
            return "f32"
        print("  (this llama-bench takes no f32 K/V cache: its rows use f16, llama.cpp's default; "
              "the text check still runs llama-cli with f32)", flush=True)
        return "f16"

    def llama_bench_tests(self, threads, reps, prompt, gen, pg=None):
        """llama-bench's tests (its JSON) for -p prompt -n gen [-pg a,b]."""
        cmd = [self.llama_bench, "-m", self.gguf, "-t", str(threads), "-r", str(reps), "-o", "json",
               "-p", str(prompt), "-n", str(gen), "-ctk", self.cache,
               "-ctv", self.cache]
        if pg:
            cmd += ["-pg", f"{pg[0]},{pg[1]}"]
        tests = json.loads(run(cmd)[1])
        if not tests:
            sys.exit(f"bench/peers.py: {' '.join(cmd)} printed no test")
        self.llamacpp_commit = tests[0].get("build_commit") or self.llamacpp_commit
        return tests

    def llamacpp_prefill(self, P, threads):
        t = self.llama_bench_tests(threads, 3, P, 0)
        return P * 1e9 / min(t[0]["samples_ns"])

    def llamacpp_decode(self, depth, tokens, threads):
        """Tokens/s of `tokens` decode steps after `depth` tokens in the cache; None when the
        subtraction is swamped by noise."""
        if depth == 0:
            t = self.llama_bench_tests(threads, 1, 0, tokens)
            return tokens * 1e9 / min(t[0]["samples_ns"])
        t = self.llama_bench_tests(threads, 1, depth, 0, pg=(depth, tokens))
        pp = [x for x in t if x["n_prompt"] == depth and x["n_gen"] == 0]
        pg = [x for x in t if x["n_prompt"] == depth and x["n_gen"] == tokens]
        if len(pp) != 1 or len(pg) != 1:
            sys.exit(f"bench/peers.py: llama-bench gave no pp{depth} and pp{depth}+tg{tokens} pair")
        dt = min(pg[0]["samples_ns"]) - min(pp[0]["samples_ns"])
        return tokens * 1e9 / dt if dt > 0 else None


def text_of(out):
    """The printed text, without kvlab's summary line, run's speed line, a BOS piece or byte
    tokens (kvlab prints \\xHH, llama.cpp the raw byte, run nothing for a control byte)."""
    lines = [l for l in out.splitlines()
             if not l.startswith("[kvlab]") and not l.startswith("achieved tok/s")]
    text = re.sub(r"\\x[0-9a-fA-F]{2}|[\x00-\x08\x0b-\x1f\x7f]", "", "\n".join(lines))
    text = re.sub(r"\s+", " ", text).strip()
    return text[3:].strip() if text.startswith("<s>") else text


def row(case, threads, peer, kv_rates, peer_rates, ratios, same):
    return dict(case=case, threads=threads, peer=peer, kvlab=statistics.median(kv_rates),
                peer_rate=statistics.median(peer_rates), ratio=statistics.median(ratios),
                lo=min(ratios), hi=max(ratios), rounds=len(ratios), same_text=same)


def decode_rows(p, a):
    rows = []
    for threads in a.threads:
        for depth in a.depths:
            lo, hi = max(depth, 2), depth + a.tokens
            ratios, kv_rates, rc_rates, same = [], [], [], True
            own = ([], [], [])  # the same rounds on each program's own clock: ratios, kvlab, run
            for i in range(a.runs):
                (k_lo, _, ko_lo), (r_lo, _, ro_lo) = both(
                    i, lambda: p.kvlab_generate_timed(lo, threads),
                    lambda: p.runc_generate_timed(lo, threads))
                (k_hi, k_out, ko_hi), (r_hi, r_out, ro_hi) = both(
                    i, lambda: p.kvlab_generate_timed(hi, threads),
                    lambda: p.runc_generate_timed(hi, threads))
                same = same and text_of(k_out) == text_of(r_out)
                if None not in (ko_lo, ko_hi, ro_lo, ro_hi) and ko_hi > ko_lo and ro_hi > ro_lo:
                    kv_own, rc_own = (hi - lo) / (ko_hi - ko_lo), (hi - lo) / (ro_hi - ro_lo)
                    own[0].append(kv_own / rc_own)
                    own[1].append(kv_own)
                    own[2].append(rc_own)
                if k_hi <= k_lo or r_hi <= r_lo:  # loading noise swamped the tokens timed
                    print(f"  (a round at depth {depth} dropped: the longer run was not slower; "
                          "give more --tokens)", flush=True)
                    continue
                kv = (hi - lo) / (k_hi - k_lo)
                rc = (hi - lo) / (r_hi - r_lo)
                kv_rates.append(kv)
                rc_rates.append(rc)
                ratios.append(kv / rc)
            if not ratios:
                fail("--tokens", a.tokens, f"too few to time at depth {depth}: every round dropped")
            if not same:
                print(f"  kvlab's and run's texts differ at depth {depth}", flush=True)
            checked = p.same_text.get("run")
            rows.append(row(f"decode, depth {depth}", threads, "llama2.c run", kv_rates, rc_rates,
                            ratios, same and checked if checked is not None else same))
            print(fmt_row(rows[-1]), flush=True)
            if own[0]:
                rows.append(row(f"decode, depth {depth}", threads,
                                "llama2.c run (each program's own clock)", own[1], own[2], own[0],
                                same and checked if checked is not None else same))
                print(fmt_row(rows[-1]), flush=True)
            if p.llama_bench:
                rows.append(llamacpp_decode_row(p, a, depth, threads))
                print(fmt_row(rows[-1]), flush=True)
    return rows


def llamacpp_decode_row(p, a, depth, threads):
    ratios, kv_rates, lc_rates = [], [], []
    for i in range(a.runs):
        kv, lc = both(i, lambda: p.kvlab_bench("decode", depth, threads, 1, tokens=a.tokens),
                      lambda: p.llamacpp_decode(depth, a.tokens, threads))
        if lc is None:
            print(f"  (a llama.cpp round at depth {depth} dropped: pp{depth}+tg{a.tokens} was not "
                  f"slower than pp{depth}; give more --tokens)", flush=True)
            continue
        kv_rates.append(kv)
        lc_rates.append(lc)
        ratios.append(kv / lc)
    if not ratios:
        fail("--tokens", a.tokens, f"too few to time llama.cpp at depth {depth}: every round dropped")
    return row(f"decode, depth {depth}", threads, f"llama.cpp f32, {p.cache} K/V (in process)",
               kv_rates, lc_rates, ratios, p.same_text.get("llama.cpp"))


def prefill_prompt(P):
    """run's prompt for a prefill of P: P words (kvlab's bench prefill takes P token ids)."""
    return " ".join(WORDS[i % len(WORDS)] for i in range(P))


def prefill_rows(p, a):
    rows = []
    for threads in a.threads:
        for P in a.prefill:
            prompt, n = prefill_prompt(P), a.prefill_tokens[P]
            ratios, kv_rates, rc_rates = [], [], []
            for i in range(a.runs):
                def runc():
                    r_hi, _ = p.runc_generate(1, threads, prompt=prompt, prompt_tokens=n)
                    r_lo, _ = p.runc_generate(1, threads, prompt="once", prompt_tokens=2)
                    return (n - 2) / max(1e-9, r_hi - r_lo)
                kv, rc = both(i, lambda: p.kvlab_bench("prefill", P, threads, 3), runc)
                kv_rates.append(kv)
                rc_rates.append(rc)
                ratios.append(kv / rc)
            rows.append(row(f"prefill {P} tokens", threads, "llama2.c run (token by token)",
                            kv_rates, rc_rates, ratios, None))
            print(fmt_row(rows[-1]), flush=True)
            if p.llama_bench:
                rows.append(llamacpp_prefill_row(p, a, P, threads))
                print(fmt_row(rows[-1]), flush=True)
    return rows


def llamacpp_prefill_row(p, a, P, threads):
    ratios, kv_rates, lc_rates = [], [], []
    for i in range(a.runs):
        kv, lc = both(i, lambda: p.kvlab_bench("prefill", P, threads, 3),
                      lambda: p.llamacpp_prefill(P, threads))
        kv_rates.append(kv)
        lc_rates.append(lc)
        ratios.append(kv / lc)
    return row(f"prefill {P} tokens", threads, f"llama.cpp f32, {p.cache} K/V", kv_rates,
               lc_rates, ratios, None)


def scaled_copy(model, work):
    """The llama2.c .bin `model` with every weight times TEXT_SCALE, written once into `work`;
    None without numpy."""
    try:
        import numpy as np
    except ImportError:
        return None
    stem = os.path.splitext(os.path.basename(model))[0]
    out = os.path.join(work, f"{stem}.x{TEXT_SCALE:g}.bin")
    if os.path.isfile(out) and os.path.getmtime(out) >= os.path.getmtime(model):
        return out
    os.makedirs(work, exist_ok=True)
    with open(model, "rb") as f:
        head = f.read(28)
    w = np.fromfile(model, dtype="<f4", offset=28)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(head)
        (w * np.float32(TEXT_SCALE)).astype("<f4").tofile(f)
    os.replace(tmp, out)
    return out


def text_check(p, a):
    """kvlab's greedy text beside each peer's on the weights times TEXT_SCALE, after a short
    prompt and after one that reaches past position 128 (the GGUF's context_length): {peer: same}."""
    model = scaled_copy(p.model, a.work)
    if model is None:
        print("  (no text check: numpy is missing for the scaled copy of the weights)", flush=True)
        return {}
    cli = p.llama_bench and p.llama_cli and p.converter
    if p.llama_bench and not cli:
        print("  (no text check for llama.cpp: it needs llama-cli and "
              "llama-convert-llama2c-to-ggml beside llama-bench)", flush=True)
    same = {}
    for prompt, tokens in TEXT_CHECKS:
        n = prompt_tokens(p, model, prompt)
        texts = {"kvlab": text_of(p.kvlab_generate(tokens, 2, prompt=prompt, model=model)[1])}
        # run prints the prompt after BOS and then the new tokens, one per step.
        texts["run"] = text_of(p.runc_generate(tokens - 1, 2, prompt=prompt, prompt_tokens=n,
                                               model=model)[1])
        if cli:
            texts["llama.cpp"] = text_of(run([
                p.llama_cli, "-m", p.gguf_of(model), "-p", prompt, "-n", str(tokens), "--temp", "0",
                "-no-cnv", "-ctk", "f32", "-ctv", "f32", "-t", "2", "-c", str(n + tokens + 8)])[1])
        for peer, text in texts.items():
            if peer != "kvlab":
                same[peer] = same.get(peer, True) and text == texts["kvlab"]
        print(f"text check (weights x{TEXT_SCALE:g}, greedy, {tokens} tokens after a prompt of {n}): "
              + ", ".join(f"{k} {'same' if v == texts['kvlab'] else 'DIFFERS'}"
                          for k, v in texts.items() if k != "kvlab"), flush=True)
        if any(v != texts["kvlab"] for v in texts.values()):
            for k, v in texts.items():
                print(f"    {k}: {v}", flush=True)
    return same


def fmt_row(r):
    same = "-" if r["same_text"] is None else ("same" if r["same_text"] else "DIFFERS")
    return (f"| {r['case']} | {r['threads']} | {r['peer']} | {r['kvlab']:.1f} | {r['peer_rate']:.1f} "
            f"| **{r['ratio']:.2f}** ({r['lo']:.2f} to {r['hi']:.2f}, {r['rounds']}) | {same} |")


def with_table(text, stamp, table, marker="peers", script="bench/peers.py --write-docs",
               title="Beside the peers (issue 18)"):
    """`text` (docs/performance.md) with the block between the `marker` markers replaced by the
    stamp and the table, or with a new section `title` holding them when it has no markers."""
    block = (f"<!-- {marker}:begin ({script}) -->\n{stamp}\n\n{table}\n"
             f"<!-- {marker}:end -->")
    if f"<!-- {marker}:begin" in text:
        return re.sub(rf"<!-- {marker}:begin.*?<!-- {marker}:end -->", lambda _: block, text,
                      flags=re.S)
    return text + f"\n## {title}\n\n" + block + "\n"


def write_docs(stamp, table, **markers):
    """Puts the stamp and the table into docs/performance.md (with_table; `markers` as it takes
    them), through a temporary file and a rename: never a half-written file."""
    doc = os.path.join(ROOT, "docs/performance.md")
    with open(doc) as f:
        text = f.read()
    text = with_table(text, stamp, table, **markers)
    tmp = doc + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, doc)
    print(f"wrote the table into {doc}")


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


def int_list(field, text, least):
    try:
        values = [int(x) for x in text.split(",")] if text else []
    except ValueError:
        fail(field, text, "comma-separated whole numbers")
    if any(v < least for v in values):
        fail(field, text, f"every value at least {least}")
    return values


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama2c", required=True, help="a llama2.c checkout with `run` built")
    ap.add_argument("--llama-bench", help="llama.cpp's llama-bench binary (optional)")
    ap.add_argument("--gguf", help="the model as GGUF f32 (default: converted into --work by "
                                   "llama-convert-llama2c-to-ggml)")
    ap.add_argument("--llama-convert", help="llama.cpp's llama-convert-llama2c-to-ggml "
                                            "(default: beside llama-bench)")
    ap.add_argument("--llama-cli", help="llama.cpp's llama-cli, for the text check "
                                        "(default: beside llama-bench, when there)")
    ap.add_argument("--llama-cache", choices=("auto", "f32", "f16"), default="auto",
                    help="llama-bench's K/V cache type (kvlab and run keep f32; llama.cpp's default "
                         "is f16); auto: f32 when this llama-bench takes it, else f16")
    ap.add_argument("--kvlab", default=os.path.join(ROOT, "build/cpu/kvlab"))
    ap.add_argument("--model-bin", help="a llama2.c .bin (default: a random stories110M)")
    ap.add_argument("--work", default="/tmp/kvlab-peers",
                    help="where the random model and its GGUF are written")
    ap.add_argument("--runs", type=int, default=5, help="alternating rounds per case")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--depths", default="0,512,1024")
    ap.add_argument("--tokens", type=int, default=256,
                    help="decode tokens timed per case (enough that loading noise is small beside them)")
    ap.add_argument("--prefill", default="128,512")
    ap.add_argument("--write-docs", action="store_true",
                    help="put the table into docs/performance.md (section 'Beside the peers')")
    a = ap.parse_args()
    a.threads = int_list("--threads", a.threads, 1)
    a.depths = int_list("--depths", a.depths, 0)
    a.prefill = int_list("--prefill", a.prefill, 2)
    if a.runs < 1:
        fail("--runs", a.runs, "at least 1")
    if a.tokens < 1:
        fail("--tokens", a.tokens, "at least 1")
    if (a.gguf or a.llama_convert or a.llama_cli) and not a.llama_bench:
        fail("--gguf/--llama-convert/--llama-cli", a.gguf or a.llama_convert or a.llama_cli,
             "needs --llama-bench")

    p = Programs(a)
    if a.depths and max(a.depths) + a.tokens + 1 > p.seq_len:
        fail("--depths/--tokens", f"{max(a.depths)}+{a.tokens}",
             f"past the model's {p.seq_len} positions (run clamps its steps to them)")
    a.prefill_tokens = {}
    for P in a.prefill:
        n = a.prefill_tokens[P] = prompt_tokens(p, p.model, prefill_prompt(P))
        if max(P, n) + 1 > p.seq_len:
            fail("--prefill", P, f"{max(P, n)} prompt tokens past the model's {p.seq_len} positions")
    load0 = os.getloadavg()[0]
    p.same_text = text_check(p, a)
    head = ("| case | threads | peer | kvlab tok/s | peer tok/s | kvlab / peer, median (min to max, "
            "rounds) | text |\n| --- | --- | --- | --- | --- | --- | --- |")
    print(head)
    rows = decode_rows(p, a) + prefill_rows(p, a)
    peers = f"llama2.c {git_head(a.llama2c)}"
    if a.llama_bench:
        peers += f", llama.cpp {p.llamacpp_commit or git_head(os.path.dirname(os.path.abspath(a.llama_bench)))}"
    stamp = (f"{datetime.date.today().isoformat()}, {machine()}, load average {load0:.1f} before "
             f"and {os.getloadavg()[0]:.1f} after; peers: {peers}; {a.runs} alternating rounds per "
             f"case, {a.tokens} decode tokens timed; model {os.path.basename(p.model)}")
    print("\n" + stamp)
    if a.write_docs:
        write_docs(stamp, "\n".join([head] + [fmt_row(r) for r in rows]))


if __name__ == "__main__":
    main()
