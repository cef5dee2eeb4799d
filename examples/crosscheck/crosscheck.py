#!/usr/bin/env python3
"""An independent implementation of a kvlab dump, written from the equations (docs/techniques.md).

It reads a reference dump's inputs (the prompt, the decoded tokens, the plan, policy, budget and
LCKV schedule in its metadata) and a model's weights, recomputes every intermediate in float64
with PyTorch, and writes them under the dump's names, so that

    kvlab check --ref ref.safetensors --got mine.safetensors

compares the two tensor by tensor. What it implements (and nothing else):

  * the Llama block: RMSNorm, RoPE (Hugging Face "half" pairing), SwiGLU, tied classifier;
  * any KV plan map without sliding layers: CLA (several layers read one KV layer's K/V, shared
    after RoPE) and LCKV (a layer l reading an upward target kv(l) > l attends to j < i only: the
    diagonal is masked, and token 0 attends to nothing, so its attention output is exactly 0);
  * LCKV's iterative prefill over each cyclic block: the targets' K/V start at zero, every pass
    restarts the block from the same input, upward readers read the previous pass's targets;
  * decode steps: each KV layer appends its new cell as it is computed; an upward reader reads the
    target's cells of the tokens before the new one;
  * the full, window (last B tokens) and streaming:S (S sinks + the last B - S) policies, evicting
    after the prompt and after every decode step, absolute positions.

`--bug no-diag-mask` lets upward readers see the diagonal (the missing LCKV mask);
`--bug decode-off-by-one` makes upward readers read a zero cell and the target's keys up to t-2 while
decoding, as the official LCKV code does (whyNLP/LCKV issue #16). kvlab check then names the first
tensor, and the element in it, where the two runs part.

Usage: crosscheck.py --ref REF.safetensors --model models/tiny-lckv2 --out MINE.safetensors
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

# ---- safetensors, read and written with numpy (the format is a JSON header and raw arrays) ----

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    tensors = {}
    for name, e in header.items():
        if e["dtype"] == "BF16":
            sys.exit(f"{path}: tensor {name}: BF16 is not read by this example")
        b, end = e["data_offsets"]
        tensors[name] = np.frombuffer(data[b:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
    return tensors, meta


def write_safetensors(path, tensors, meta):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        dtype = {np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}[a.dtype]
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    header["__metadata__"] = meta
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.replace(tmp, path)


# ---- the model ----------------------------------------------------------------------------------

class Model:
    def __init__(self, directory):
        self.cfg = json.load(open(os.path.join(directory, "config.json")))
        w, _ = read_safetensors(os.path.join(directory, "model.safetensors"))
        self.w = {k: torch.from_numpy(v.astype(np.float64)) for k, v in w.items()}  # f16 upcast
        c = self.cfg
        self.L, self.C = c["num_hidden_layers"], c["hidden_size"]
        self.H, self.Hkv = c["num_attention_heads"], c["num_key_value_heads"]
        self.D = c.get("head_dim", self.C // self.H)
        self.eps, self.theta = c["rms_norm_eps"], c["rope_theta"]

    def p(self, name):
        return self.w[name]

    def layer(self, l, name):
        return self.w[f"model.layers.{l}.{name}.weight"]

    def rmsnorm(self, x, weight):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps) * weight

    def rope(self, x, pos):
        """x (T, heads, D) rotated by position: dims i and i + D/2 form a pair (HF "half")."""
        half = self.D // 2
        inv = self.theta ** (-torch.arange(half, dtype=torch.float64) * 2 / self.D)
        ang = torch.tensor(pos, dtype=torch.float64)[:, None] * inv[None, :]  # (T, D/2)
        cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
        a, b = x[..., :half], x[..., half:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


def attend(m, q, qpos, k, v, kpos, strict):
    """q (T, H, D) at qpos; k, v (N, Hkv, D) at kpos. Returns scores, probs (H, T, N), out."""
    group = m.H // m.Hkv
    kh = k.repeat_interleave(group, dim=1)  # (N, H, D): query head h reads KV head h // group
    vh = v.repeat_interleave(group, dim=1)
    scores = torch.einsum("thd,nhd->htn", q, kh) / math.sqrt(m.D)
    qp = torch.tensor(qpos)[:, None]
    kp = torch.tensor(kpos)[None, :]
    allowed = (kp < qp) if strict else (kp <= qp)  # (T, N), the attention set of §2
    scores = scores.masked_fill(~allowed[None], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    probs = torch.nan_to_num(probs, nan=0.0)  # an empty set (LCKV's first token): zeros
    out = torch.einsum("htn,nhd->thd", probs, vh)
    return scores, probs, out


def cyclic_blocks(kv):
    blocks, i = [], 0
    while i < len(kv):
        if kv[i] <= i:
            i += 1
            continue
        top = kv[i]
        while max(kv[i:top + 1]) != top:
            top = max(kv[i:top + 1])
        blocks.append((i, top))
        i = top + 1
    return blocks


def keep_positions(policy, budget, held):
    """The positions a bank keeps under the policy (held: sorted positions)."""
    if policy == "full" or budget is None or len(held) <= budget:
        return held
    if policy.startswith("window"):
        return held[-budget:]
    if policy.startswith("streaming"):
        sinks = int(policy.split(":")[1]) if ":" in policy else 4
        return held[:sinks] + held[-(budget - sinks):]
    sys.exit(f"policy {policy}: this example implements full, window and streaming")


class Run:
    def __init__(self, m, meta, bug):
        self.m, self.bug, self.out = m, bug, {}
        self.kv = [int(x) for x in meta["map"].split("_")]
        if any(not x.isdigit() for x in meta["map"].split("_")):
            sys.exit("sliding-window layers are not implemented in this example")
        self.policy = meta["policy"]
        self.budget = None if meta["budget"] == "none" else int(meta["budget"])
        if meta.get("positions", "absolute") != "absolute" or meta.get("squeeze", "off") != "off":
            sys.exit("this example implements absolute positions without SqueezeAttention")
        if meta.get("force_nodiag") == "true":
            sys.exit("--force-nodiag is not implemented in this example")
        self.blocks = cyclic_blocks(self.kv)
        runs = meta.get("passes_run", "none")
        self.passes = [] if runs == "none" else [int(x) for x in runs.split(",")]
        if len(self.passes) != len(self.blocks):
            sys.exit("the dump's prefill ran token by token; dump with --passes N for passes")
        self.banks = {}  # KV layer -> [positions, K (N, Hkv, D), V]
        self.kept = {}   # KV layer -> positions kept after the previous step

    def put(self, name, t):
        self.out[name] = t.detach().numpy() if torch.is_tensor(t) else np.asarray(t, np.int64)

    def layer(self, l, x, pos, prefix, rows, prev, decoding):
        """One layer on x (T, C). rows: this pass's K/V per KV layer; prev: last pass's targets."""
        m, T = self.m, x.shape[0]
        name = f"{prefix}.layer{l}."
        h = m.rmsnorm(x, m.layer(l, "input_layernorm"))
        self.put(name + "attn.norm_in", h)
        q = m.rope((h @ m.layer(l, "self_attn.q_proj").T).view(T, m.H, m.D), pos)
        if self.kv[l] == l:
            k = m.rope((h @ m.layer(l, "self_attn.k_proj").T).view(T, m.Hkv, m.D), pos)
            v = (h @ m.layer(l, "self_attn.v_proj").T).view(T, m.Hkv, m.D)
            self.put(name + "attn.k", k)
            self.put(name + "attn.v", v)
            if decoding:
                bank = self.banks[l]
                bank[0] = bank[0] + pos
                bank[1] = torch.cat([bank[1], k])
                bank[2] = torch.cat([bank[2], v])
            else:
                rows[l] = (k, v)
        t = self.kv[l]
        upward = t > l
        strict = upward and self.bug != "no-diag-mask"
        if decoding:
            kpos, k, v = self.banks[t]
            if upward and self.bug == "decode-off-by-one":
                # A zero cell in front and the newest cell dropped: keys up to t-2 (issue #16).
                k = torch.cat([torch.zeros_like(k[:1]), k[:-1]])
                v = torch.cat([torch.zeros_like(v[:1]), v[:-1]])
        else:
            k, v = (prev if upward else rows)[t]
            kpos = pos
        scores, probs, att = attend(m, q, pos, k, v, kpos, strict)
        self.put(name + "attn.read_positions", [list(kpos)] * m.Hkv)
        self.put(name + "attn.scores", scores)
        self.put(name + "attn.probs", probs)
        self.put(name + "attn.q", q)
        self.put(name + "attn.out", att)
        x = x + att.reshape(T, m.H * m.D) @ m.layer(l, "self_attn.o_proj").T
        self.put(name + "attn.resid", x)
        h = m.rmsnorm(x, m.layer(l, "post_attention_layernorm"))
        self.put(name + "mlp.norm_in", h)
        gate = h @ m.layer(l, "mlp.gate_proj").T
        up = h @ m.layer(l, "mlp.up_proj").T
        y = (gate * torch.sigmoid(gate) * up) @ m.layer(l, "mlp.down_proj").T
        self.put(name + "mlp.out", y)
        x = x + y
        self.put(name + "mlp.resid", x)
        return x

    def logits(self, x):
        m = self.m
        cls = m.w.get("lm_head.weight", m.p("model.embed_tokens.weight"))
        return m.rmsnorm(x, m.p("model.norm.weight")) @ cls.T

    def evict(self, step, new_positions):
        """After a step: each bank keeps what the policy says; record kept and evicted cells."""
        for t, bank in sorted(self.banks.items()):
            keep = keep_positions(self.policy, self.budget, bank[0])
            idx = [bank[0].index(p) for p in keep]
            evicted = sorted(set(self.kept.get(t, []) + new_positions) - set(keep))
            self.banks[t] = [keep, bank[1][idx], bank[2][idx]]
            self.kept[t] = keep
            self.put(f"{step}.bank{t}.kept_positions", [keep] * self.m.Hkv)
            self.put(f"{step}.bank{t}.evicted_positions",
                     np.array([evicted] * self.m.Hkv, np.int64).reshape(self.m.Hkv, len(evicted)))

    def prefill(self, tokens):
        m, T = self.m, len(tokens)
        pos = list(range(T))
        x = m.p("model.embed_tokens.weight")[tokens]
        self.put("prefill.embed", x)
        rows = {}
        l = 0
        while l < m.L:
            blk = next((b for b in self.blocks if b[0] == l), None)
            if blk is None:
                x = self.layer(l, x, pos, "prefill", rows, None, False)
                l += 1
                continue
            first, last = blk
            targets = sorted({self.kv[i] for i in range(first, last + 1) if self.kv[i] > i})
            zeros = torch.zeros(T, m.Hkv, m.D)
            prev = {t: (zeros, zeros) for t in targets}
            start = x
            for p in range(1, self.passes[self.blocks.index(blk)] + 1):
                x = start  # every pass restarts the block from the same input
                for i in range(first, last + 1):
                    x = self.layer(i, x, pos, f"prefill.pass{p}", rows, prev, False)
                for t in targets:
                    self.put(f"prefill.pass{p}.bank{t}.target_k", rows[t][0])
                    self.put(f"prefill.pass{p}.bank{t}.target_v", rows[t][1])
                prev = {t: rows[t] for t in targets}
            l = last + 1
        self.put("prefill.logits", self.logits(x))
        self.banks = {t: [pos, k, v] for t, (k, v) in rows.items()}
        self.evict("prefill", pos)

    def decode(self, n, token, position):
        x = self.m.p("model.embed_tokens.weight")[[token]]
        prefix = f"decode{n}"
        self.put(prefix + ".embed", x)
        for l in range(self.m.L):
            x = self.layer(l, x, [position], prefix, None, None, True)
        self.put(prefix + ".logits", self.logits(x))
        self.evict(prefix, [position])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", required=True, help="the reference dump (kvlab dump --precision f64)")
    ap.add_argument("--model", required=True, help="the checkpoint directory the dump ran")
    ap.add_argument("--out", required=True, help="where to write this implementation's tensors")
    ap.add_argument("--bug", choices=["none", "no-diag-mask", "decode-off-by-one"], default="none")
    a = ap.parse_args()
    ref, meta = read_safetensors(a.ref)
    run = Run(Model(a.model), meta, a.bug)
    tokens = [int(t) for t in ref["inputs.tokens"]]
    run.put("inputs.tokens", tokens)
    with torch.no_grad():
        run.prefill(tokens)
        for n in range(1, int(meta.get("decode_steps", "0")) + 1):
            token = int(ref[f"decode{n}.token"][0])  # the dump's greedy choice: an input here
            run.put(f"decode{n}.token", [token])
            run.decode(n, token, len(tokens) + n - 1)
    # The run's identity, as the reference states it (kvlab check compares these fields).
    keep = ["format", "model_hash", "config", "map", "policy", "positions", "budget", "squeeze",
            "schedule", "force_nodiag", "prompt_tokens", "decode_steps"]
    out_meta = {k: meta[k] for k in keep if k in meta}
    out_meta.update(precision="f64", producer="examples/crosscheck/crosscheck.py", bug=a.bug)
    write_safetensors(a.out, run.out, out_meta)
    print(f"wrote {a.out}: {len(run.out)} tensors (bug: {a.bug})")


if __name__ == "__main__":
    main()
