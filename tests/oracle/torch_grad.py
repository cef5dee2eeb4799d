#!/usr/bin/env python3
"""Independent float64 PyTorch gradient oracle for `kvlab grad` (issue 12).

Written from the contract (shared/spec/techniques.md sections 1-4), not from kvlab's C++ and not
from tests/oracle/torch_reference.py: the model family, the KV map and its attention sets, the
cyclic blocks and LCKV's training schedule are implemented here again, and torch.autograd takes
the gradients.

    python3 tests/oracle/torch_grad.py --model DIR --tokens 1,2,3,... --out GRADS.safetensors
        [--plan TEXTFORM] [--train-passes m,b] [--kv-loss LAMBDA] [--force-nodiag]
        [--logits-out LOGITS.npy]
    python3 tests/oracle/torch_grad.py --selfcheck      # torch.autograd.gradcheck on tiny models
    python3 tests/oracle/torch_grad.py --batch RUNS.json  # a JSON list of argument lists

One sequence of n tokens: inputs tokens[0..n-2], targets tokens[1..n-1]; loss = mean next-token
cross-entropy over the n-1 predictions (nats). With --kv-loss LAMBDA > 0 the differentiated
quantity is loss + LAMBDA * kv_loss (section 4). GRADS is a safetensors file: one F64 tensor per
parameter of the checkpoint, under the checkpoint's (Hugging Face) names, and `__metadata__` with
`loss`, `kv_loss`, `total`, `plan`, `passes` (floats written with repr: they round-trip exactly).
--logits-out also writes the final pass's logits [n-1, V] (float64 .npy).

Dimension legend: T tokens (n-1 inputs), C width, L layers, H query heads, H_kv KV heads,
D head dim, F MLP width, V vocabulary.

Choices where the contract leaves room (docs/training.md, "How gradients are checked"):
  * A layer's attention set (section 2): j <= i when kv(l) <= l, j < i when kv(l) > l or with
    --force-nodiag; a sliding layer (text form `Ns`) also needs j > i - W, W = config
    `sliding_window`; an empty set gives a zero output (its gradient is zero too).
  * Cyclic blocks (section 2's scan), each run on its own (section 3): the upward targets' K/V
    start at zero; every pass restarts from the block's input; upward readers take the previous
    pass's K/V, all other readers this pass's. Training (section 4): of the m + b passes of each
    block the first m run under torch.no_grad (their K/V enter the next pass as constants), the
    last b with the gradient chained through the K/V; the loss is taken on the last pass only.
    Plans without upward edges run one ordinary pass whatever m, b say.
  * KV loss: the mean, over every element of every upward target's K and V (all T rows, all KV
    heads; every such tensor has the same shape, so this is also the mean of the per-tensor
    means), of (fed - produced)^2, where `fed` is what the final pass read as the target's K/V
    (the previous pass's output, or zeros when m + b = 1) and `produced` what the final pass
    computed. Both sides carry gradient (fed is a constant only when it came from a no-grad pass).
    With LAMBDA = 0 kv_loss is reported as 0.
"""

import argparse
import json
import math
import struct
import sys

import numpy as np
import torch

DT = torch.float64


class GradOracleError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# safetensors with numpy only: u64 header length, JSON header, raw little-endian data
# ---------------------------------------------------------------------------------------------

_DTYPES = {"F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2)}


def load_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _DTYPES:
            raise GradOracleError(f"{path}: tensor {name} has dtype {info['dtype']}")
        np_dt, size = _DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        count = int(np.prod(info["shape"])) if info["shape"] else 1
        if end - begin != count * size:
            raise GradOracleError(f"{path}: tensor {name} has {end - begin} bytes")
        a = np.frombuffer(data[begin:end], dtype=np_dt).reshape(info["shape"])
        if info["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = a.astype(np.float64)
    return out, header.get("__metadata__", {})


def save_safetensors(path, tensors, metadata):
    """tensors: {name: float64 numpy array}; written as F64 in name order."""
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    chunks, offset = [], 0
    for name in sorted(tensors):
        b = np.ascontiguousarray(tensors[name], dtype="<f8").tobytes()
        header[name] = {"dtype": "F64", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


# ---------------------------------------------------------------------------------------------
# the KV map (section 2)
# ---------------------------------------------------------------------------------------------

class Plan:
    """kv[l] and sliding[l] from the text form `kv(0)_kv(1)_..` (each number optionally + `s`)."""

    def __init__(self, text, layers):
        parts = text.split("_")
        if len(parts) != layers:
            raise GradOracleError(f"plan {text} has {len(parts)} layers; the model has {layers}")
        self.text = text
        self.kv, self.sliding = [], []
        for p in parts:
            s = p.endswith("s")
            self.kv.append(int(p[:-1] if s else p))
            self.sliding.append(s)
        for l, t in enumerate(self.kv):
            if not 0 <= t < layers or self.kv[t] != t:
                raise GradOracleError(f"plan {text}: layer {l} reads {t}, which is no KV layer")

    def is_kv_layer(self, l):
        return self.kv[l] == l

    def cyclic_blocks(self):
        """Section 2's scan: at the first i with kv(i) > i, grow top = max kv(i..top) to a fixed
        point; the block is [i, top]; continue above it."""
        blocks, i, L = [], 0, len(self.kv)
        while i < L:
            if self.kv[i] > i:
                top = self.kv[i]
                while True:
                    new_top = max(self.kv[i:top + 1])
                    if new_top == top:
                        break
                    top = new_top
                blocks.append((i, top))
                i = top + 1
            else:
                i += 1
        return blocks


# ---------------------------------------------------------------------------------------------
# the model (section 1), float64
# ---------------------------------------------------------------------------------------------

class Model:
    def __init__(self, cfg, params, plan, pairing="half"):
        self.cfg = cfg
        self.p = params  # name -> float64 tensor (leaf, requires_grad)
        self.plan = plan
        self.pairing = pairing
        self.L = cfg["num_hidden_layers"]
        self.C = cfg["hidden_size"]
        self.H = cfg["num_attention_heads"]
        self.Hkv = cfg.get("num_key_value_heads", self.H)
        self.D = cfg.get("head_dim", self.C // self.H) or self.C // self.H
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.theta = float(cfg.get("rope_theta", 10000.0))
        self.window = int(cfg.get("sliding_window") or 4096)
        self.tied = bool(cfg.get("tie_word_embeddings", False))
        if self.H % self.Hkv:
            raise GradOracleError(f"{self.H} heads do not split into {self.Hkv} KV heads")

    def w(self, name):
        return self.p[name]

    def lw(self, l, name):
        return self.p[f"model.layers.{l}.{name}"]

    # --- operations ---------------------------------------------------------------------------
    def rmsnorm(self, x, weight):
        return x * torch.rsqrt(torch.mean(x * x, dim=-1, keepdim=True) + self.eps) * weight

    def rope(self, x):
        """x: [T, heads, D]; position of row i is i."""
        T, D = x.shape[0], self.D
        pos = torch.arange(T, dtype=DT)
        inv = torch.tensor([self.theta ** (-(2.0 * i) / D) for i in range(D // 2)], dtype=DT)
        ang = pos[:, None] * inv[None, :]                       # [T, D/2]
        c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
        if self.pairing == "half":                              # i with i + D/2 (rotate_half)
            a, b = x[..., :D // 2], x[..., D // 2:]
            return torch.cat([a * c - b * s, b * c + a * s], dim=-1)
        a, b = x[..., 0::2], x[..., 1::2]                       # 2i with 2i + 1
        return torch.stack([a * c - b * s, a * s + b * c], dim=-1).reshape(x.shape)

    def mask(self, l, T, force_nodiag):
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        strict = force_nodiag or self.plan.kv[l] > l
        m = (j < i) if strict else (j <= i)
        if self.plan.sliding[l]:
            m = m & (j > i - self.window)
        return m                                                # [T, T] bool

    def attend(self, q, k, v, m):
        """q [T,H,D], k/v [T,H_kv,D], m [T,T] bool -> [T, H*D]. Head h reads KV head
        h // (H / H_kv). Rows whose set is empty give 0."""
        T = q.shape[0]
        g = self.H // self.Hkv
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
        s = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(self.D)   # [H, T, T]
        mf = m.to(DT)[None]
        s = torch.where(m[None], s, torch.zeros((), dtype=DT))       # masked scores are inert
        with torch.no_grad():
            top = torch.where(m[None], s, torch.full((), -math.inf, dtype=DT)).amax(-1, True)
            top = torch.where(torch.isfinite(top), top, torch.zeros((), dtype=DT))
        e = torch.exp(s - top) * mf
        den = e.sum(-1, keepdim=True)
        p = e / torch.where(den > 0, den, torch.ones((), dtype=DT))
        return torch.einsum("hij,jhd->ihd", p, v).reshape(T, self.H * self.D)

    def layer(self, l, x, kv_now, kv_read, force_nodiag):
        """One decoder layer on x [T, C]. kv_now(l, h) is called for KV layers (returns this
        layer's (K, V) computed from its normed input h); kv_read(t) gives the K/V to read."""
        T = x.shape[0]
        h = self.rmsnorm(x, self.lw(l, "input_layernorm.weight"))
        if self.plan.is_kv_layer(l):
            k = h @ self.lw(l, "self_attn.k_proj.weight").T
            k = self.rope(k.reshape(T, self.Hkv, self.D))
            v = (h @ self.lw(l, "self_attn.v_proj.weight").T).reshape(T, self.Hkv, self.D)
            kv_now(l, (k, v))
        q = self.rope((h @ self.lw(l, "self_attn.q_proj.weight").T).reshape(T, self.H, self.D))
        k, v = kv_read(self.plan.kv[l])
        a = self.attend(q, k, v, self.mask(l, T, force_nodiag))
        x = x + a @ self.lw(l, "self_attn.o_proj.weight").T
        h = self.rmsnorm(x, self.lw(l, "post_attention_layernorm.weight"))
        gate = h @ self.lw(l, "mlp.gate_proj.weight").T
        up = h @ self.lw(l, "mlp.up_proj.weight").T
        return x + (torch.nn.functional.silu(gate) * up) @ self.lw(l, "mlp.down_proj.weight").T

    def forward(self, tokens, m, b, force_nodiag=False, kv_start=None, after_m=None):
        """tokens: T input ids. Returns (logits [T, V], fed, produced): fed/produced list the
        final pass's (K, V) of every upward target, for the KV loss. kv_start {t: (K, V)}
        replaces the zeros the targets start from; after_m (a dict) receives the targets' K/V
        as they enter pass m (the first pass with gradient). The self-check uses both."""
        T = len(tokens)
        x = self.w("model.embed_tokens.weight")[torch.tensor(tokens, dtype=torch.long)]
        done = {}                 # K/V of KV layers whose final values are known
        blocks = {i: top for i, top in self.plan.cyclic_blocks()}
        fed_all, produced_all = [], []
        l = 0
        while l < self.L:
            if l not in blocks:
                x = self.layer(l, x, lambda t, kv: done.__setitem__(t, kv), lambda t: done[t],
                               force_nodiag)
                l += 1
                continue
            i, top = l, blocks[l]
            targets = sorted({self.plan.kv[r] for r in range(i, top + 1) if self.plan.kv[r] > r})
            zero = torch.zeros(T, self.Hkv, self.D, dtype=DT)
            prev = {t: (kv_start or {}).get(t, (zero, zero)) for t in targets}
            passes = m + b
            for p in range(passes):
                if p == m and after_m is not None:
                    after_m.update({t: (k.detach(), v.detach()) for t, (k, v) in prev.items()})
                with torch.set_grad_enabled(p >= m and torch.is_grad_enabled()):
                    cur = {}
                    xb = x
                    for r in range(i, top + 1):
                        def kv_read(t, r=r):
                            if t > r:
                                return prev[t]
                            if t >= i:
                                return cur[t]
                            return done[t]
                        xb = self.layer(r, xb, lambda t, kv: cur.__setitem__(t, kv), kv_read,
                                        force_nodiag)
                    if p == passes - 1:
                        for t in targets:
                            fed_all += [prev[t][0], prev[t][1]]
                            produced_all += [cur[t][0], cur[t][1]]
                    prev = {t: cur[t] for t in targets}
            done.update(cur)
            x = xb
            l = top + 1
        h = self.rmsnorm(x, self.w("model.norm.weight"))
        cls = self.w("model.embed_tokens.weight") if self.tied else self.w("lm_head.weight")
        return h @ cls.T, fed_all, produced_all

    def losses(self, tokens, m, b, force_nodiag=False, **kw):
        """(loss, kv_loss, logits) for one sequence: inputs tokens[:-1], targets tokens[1:]."""
        logits, fed, produced = self.forward(tokens[:-1], m, b, force_nodiag, **kw)
        target = torch.tensor(tokens[1:], dtype=torch.long)
        logp = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
        loss = -logp[torch.arange(len(target)), target].mean()
        if fed:
            sq = torch.stack([((f - q) ** 2) for f, q in zip(fed, produced)])
            kv_loss = sq.mean()
        else:
            kv_loss = torch.zeros((), dtype=DT)
        return loss, kv_loss, logits


# ---------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------

def load_model(model_dir, plan_text=None):
    with open(f"{model_dir}/config.json") as f:
        cfg = json.load(f)
    arrays, _ = load_safetensors(f"{model_dir}/model.safetensors")
    section = cfg.get("kvlab", {})
    L = cfg["num_hidden_layers"]
    text = plan_text or section.get("plan") or "_".join(str(l) for l in range(L))
    plan = Plan(text, L)
    params = {n: torch.tensor(a, dtype=DT, requires_grad=True) for n, a in arrays.items()}
    if cfg.get("tie_word_embeddings", False):
        params.pop("lm_head.weight", None)
    for l in range(L):
        if plan.is_kv_layer(l) and f"model.layers.{l}.self_attn.k_proj.weight" not in params:
            raise GradOracleError(f"plan {text}: layer {l} is a KV layer without k_proj/v_proj")
    return Model(cfg, params, plan, section.get("rope_pairing", "half"))


def gradients(model, tokens, m, b, lam, force_nodiag):
    """Returns (loss, kv_loss, {name: float64 numpy gradient}, logits)."""
    upward = bool(model.plan.cyclic_blocks())
    if not upward:
        m, b = 0, 1
    loss, kv_loss, logits = model.losses(tokens, m, b, force_nodiag)
    if lam == 0:
        kv_loss = torch.zeros((), dtype=DT)
    total = loss + lam * kv_loss
    names = sorted(model.p)
    grads = torch.autograd.grad(total, [model.p[n] for n in names], allow_unused=True)
    out = {}
    for n, g in zip(names, grads):
        out[n] = (torch.zeros_like(model.p[n]) if g is None else g).detach().numpy()
    return loss.item(), kv_loss.item(), out, logits.detach().numpy()


def interleaved_rows_to_half(w, D):
    """Rows of a projection (heads*D, C): within each head, row 2i + p moves to p*D/2 + i."""
    out = np.empty_like(w)
    for h in range(w.shape[0] // D):
        for i in range(D // 2):
            for p in range(2):
                out[h * D + p * (D // 2) + i] = w[h * D + 2 * i + p]
    return out


def random_params(cfg, plan, seed):
    g = torch.Generator().manual_seed(seed)
    C, V, F = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = C // H

    def r(*shape, scale=0.3):
        return (torch.randn(*shape, generator=g, dtype=DT) * scale).requires_grad_(True)

    p = {"model.embed_tokens.weight": r(V, C, scale=1.0), "model.norm.weight": 1 + r(C, scale=0.1)}
    for l in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{l}."
        p[pre + "input_layernorm.weight"] = 1 + r(C, scale=0.1)
        p[pre + "post_attention_layernorm.weight"] = 1 + r(C, scale=0.1)
        p[pre + "self_attn.q_proj.weight"] = r(H * D, C)
        if plan.is_kv_layer(l):
            p[pre + "self_attn.k_proj.weight"] = r(Hkv * D, C)
            p[pre + "self_attn.v_proj.weight"] = r(Hkv * D, C)
        p[pre + "self_attn.o_proj.weight"] = r(C, H * D)
        p[pre + "mlp.gate_proj.weight"] = r(F, C)
        p[pre + "mlp.up_proj.weight"] = r(F, C)
        p[pre + "mlp.down_proj.weight"] = r(C, F)
    if not cfg["tie_word_embeddings"]:
        p["lm_head.weight"] = r(V, C)
    return {n: t.detach().requires_grad_(True) for n, t in p.items()}


def selfcheck():
    """torch.autograd.gradcheck of loss + λ kv_loss with respect to every parameter, on tiny
    models under each kind of plan; plus the section 3 exactness facts the forward must obey.

    With m > 0 the training gradient is by design not the derivative of the m + b pass loss (the
    first m passes are constants); it is the derivative of the b-pass loss whose targets start
    from the K/V that the m passes left, held fixed. gradcheck checks that function, and the
    m, b gradient is compared with its gradient."""
    cases = [  # (name, layers, H, H_kv, plan, m, b, lam, force_nodiag, tied, window)
        ("standard", 2, 2, 2, "0_1", 0, 1, 0.0, False, False, 64),
        ("interleaved-rope", 2, 2, 1, "0_1", 0, 1, 0.0, False, False, 64),
        ("gqa-tied", 2, 4, 2, "0_1", 0, 1, 0.0, False, True, 64),
        ("mqa-cla2", 3, 2, 1, "0_0_2", 0, 1, 0.0, False, False, 64),
        ("sliding", 3, 2, 1, "0s_1s_1", 0, 1, 0.0, False, False, 3),
        ("lckv-0-1", 3, 2, 1, "0_2_2", 0, 1, 0.0, False, False, 64),
        ("lckv-3-2", 3, 2, 1, "0_2_2", 3, 2, 0.0, False, False, 64),
        ("sandwich-kvloss", 4, 2, 2, "0_2_2_3", 1, 2, 0.7, False, False, 64),
        ("kvloss-b1", 3, 2, 1, "0_2_2", 2, 1, 0.5, False, False, 64),
        ("two-blocks-nodiag", 4, 2, 1, "1_1_3_3s", 2, 2, 0.3, True, False, 3),
    ]
    ok = True
    for name, L, H, Hkv, text, m, b, lam, nodiag, tied, window in cases:
        cfg = {"num_hidden_layers": L, "hidden_size": 4 * H, "num_attention_heads": H,
               "num_key_value_heads": Hkv, "intermediate_size": 6, "vocab_size": 7,
               "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "sliding_window": window,
               "tie_word_embeddings": tied}
        plan = Plan(text, L)
        params = random_params(cfg, plan, seed=len(name))
        model = Model(cfg, params, plan, "interleaved" if "interleaved" in name else "half")
        tokens = [3, 1, 4, 1, 5, 2]
        names = sorted(params)
        mm, bb = (m, b) if plan.cyclic_blocks() else (0, 1)
        start = {}
        loss, kv_loss, _ = model.losses(tokens, mm, bb, nodiag, after_m=start)
        analytic = torch.autograd.grad(loss + lam * kv_loss, [params[n] for n in names],
                                       allow_unused=True)

        def f(*tensors):
            saved = dict(model.p)
            model.p = dict(zip(names, tensors))
            try:
                loss, kv_loss, _ = model.losses(tokens, 0, bb, nodiag, kv_start=start)
                return loss + lam * kv_loss
            finally:
                model.p = saved

        inputs = [params[n] for n in names]
        passed = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8, rtol=1e-6,
                                          raise_exception=False, fast_mode=True)
        reference = torch.autograd.grad(f(*inputs), inputs, allow_unused=True)
        same = all((a is None and r is None) or torch.allclose(a, r, rtol=0, atol=1e-15)
                   for a, r in zip(analytic, reference))
        print(f"gradcheck {name}: {'ok' if passed else 'FAILED'}"
              f"{'' if same else '; the m,b gradient differs from the fixed-start one'}")
        ok &= passed and same
    # Section 3 exactness: with r >= T passes the iterative forward equals r + 1 passes.
    cfg = {"num_hidden_layers": 4, "hidden_size": 8, "num_attention_heads": 2,
           "num_key_value_heads": 1, "intermediate_size": 6, "vocab_size": 7,
           "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "sliding_window": 64,
           "tie_word_embeddings": False}
    plan = Plan("0_3_3_3", 4)
    model = Model(cfg, random_params(cfg, plan, 9), plan)
    tokens = [1, 2, 3, 4, 5, 6]
    with torch.no_grad():
        a = model.forward(tokens, 5, 1)[0]
        c = model.forward(tokens, 9, 1)[0]
        d = model.forward(tokens, 1, 1)[0]
    exact = bool(torch.equal(a, c))
    first_two = bool(torch.allclose(d[:2], c[:2], rtol=0, atol=1e-14))
    differs = not bool(torch.allclose(d[2:], c[2:], rtol=0, atol=1e-8))
    print(f"exactness: T passes == T+4 passes: {exact}; 2 passes fix rows 0..1: {first_two}; "
          f"and not the rest: {differs}")
    ok &= exact and first_two and differs
    return ok


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--tokens")
    ap.add_argument("--plan", help="text form kv(0)_kv(1)_.. (default: the checkpoint's)")
    ap.add_argument("--train-passes", default="7,2", help="m,b (section 4)")
    ap.add_argument("--kv-loss", type=float, default=0.0, help="lambda of the KV loss")
    ap.add_argument("--force-nodiag", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--logits-out")
    ap.add_argument("--grad-rows", choices=["file", "half"], default="file",
                    help="W_Q, W_K gradient rows of an interleaved checkpoint: in the file's order "
                         "(default) or permuted to Hugging Face's half pairing (kvlab's layout)")
    ap.add_argument("--selfcheck", action="store_true")
    ap.add_argument("--batch", help="a JSON list of argument lists, run in this one process")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.batch:
        with open(a.batch) as f:
            runs = json.load(f)
        for run in runs:
            rc = main(run)
            if rc:
                return rc
        return 0
    if a.selfcheck:
        return 0 if selfcheck() else 1
    if not (a.model and a.tokens and a.out):
        ap.error("--model, --tokens and --out are required")
    m, b = (int(v) for v in a.train_passes.split(","))
    if m < 0 or b < 1:
        raise GradOracleError(f"--train-passes {a.train_passes}: need m >= 0, b >= 1")
    tokens = [int(t) for t in a.tokens.split(",")]
    if len(tokens) < 2:
        raise GradOracleError("--tokens: need at least 2 tokens (one prediction)")
    model = load_model(a.model, a.plan)
    vocab = model.cfg["vocab_size"]
    if any(not 0 <= t < vocab for t in tokens):
        raise GradOracleError(f"--tokens: every id must be in [0, {vocab})")
    loss, kv_loss, grads, logits = gradients(model, tokens, m, b, a.kv_loss, a.force_nodiag)
    total = loss + a.kv_loss * kv_loss
    if a.grad_rows == "half" and model.pairing == "interleaved":
        for name in grads:
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                grads[name] = interleaved_rows_to_half(grads[name], model.D)
    save_safetensors(a.out, grads, {"loss": repr(loss), "kv_loss": repr(kv_loss),
                                    "total": repr(total), "plan": model.plan.text,
                                    "passes": f"{m},{b}"})
    if a.logits_out:
        np.save(a.logits_out, logits)
    print(json.dumps({"loss": loss, "kv_loss": kv_loss, "plan": model.plan.text}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except GradOracleError as e:
        print(f"torch_grad.py: error: {e}", file=sys.stderr)
        sys.exit(2)
