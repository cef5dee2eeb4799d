#!/usr/bin/env python3
"""Independent PyTorch oracle for kvlab: the logits of a kvlab checkpoint under any KV plan, for a
prefill or a prefill followed by decode steps under a sequence policy.

Written from the contract (shared/spec/techniques.md sections 1-3, 5, 6), not from the C++ engine,
so that the two can be compared. Plain PyTorch on the CPU, one function per operation.

    python3 tests/oracle/torch_reference.py --model DIR --tokens 1,2,3 --precision f64 --out L.npy
        [--plan TEXTFORM] [--mode auto|iterative|token-by-token] [--passes N] [--force-nodiag]
        [--decode-from P [--policy full|window[:W]|streaming[:S]|h2o[:R]] [--budget B|F]
         [--positions absolute|cache] [--squeeze F0,F3 [--bank-importance min|mean]]
         [--info INFO.json]]
    python3 tests/oracle/torch_reference.py --batch RUNS.json   # a JSON list of such command lines

writes the logits of every position, shape [T, V], float64 (f64) or float32 (f32). Without
--decode-from every token is part of the prompt. With it, the first P tokens are the prompt
(prefilled under the plan's semantics), the policy's budgets are applied, and each remaining
token is one decode step against the cache, after which every bank is evicted back to its budget;
the rows are the prompt's P rows, then one per decode step. --info writes the layer importances
s_l, the Squeeze clusters and budgets, and the positions each bank's KV heads hold at the end.

Dimension legend, used in every shape comment:
    T  tokens of the prompt          C  model width (hidden_size)
    L  layers                        H  query heads        H_kv  KV heads       D  head dim
    F  MLP width (intermediate_size) V  vocabulary         Tq/Tk  query/key rows of one attention

Modes, for plans with upward edges (kv(l) > l); plans without them always run in one pass:
    iterative       every cyclic block runs `--passes` passes over all tokens (spec section 3).
    token-by-token  each token runs through the whole model with the cache of the tokens before it
                    (exact: an upward reader of token i sees the targets' K/V of tokens < i).
    auto            token by token when T <= passes (the official schedule: prompts of at most
                    m + b = 9 tokens), iterative otherwise.
"""

import argparse
import json
import math
import os
import struct
import sys
import tempfile
from fractions import Fraction

import numpy as np
import torch

DEFAULT_PASSES = 9  # m + b = 7 + 2, the official LCKV schedule (spec section 3)


class OracleError(Exception):
    """A bad input: the message names what is wrong."""


# ---------------------------------------------------------------------------------------------
# safetensors, read with numpy only (8-byte little-endian header length, JSON header, data)
# ---------------------------------------------------------------------------------------------

_NUMPY_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16}
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}


def bf16_bits_to_float32(bits):
    """bits: uint16 array of bfloat16 values -> float32 array of the same shape."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def read_safetensors(path):
    """Returns {name: float64-or-narrower numpy array} after checking header, dtypes and offsets."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise OracleError(f"{path}: too short for a safetensors header")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if 8 + header_len > len(blob):
        raise OracleError(f"{path}: header length {header_len} exceeds the file size {len(blob)}")
    try:
        header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise OracleError(f"{path}: header is not valid JSON ({e})")
    data = memoryview(blob)[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _NUMPY_DTYPES:
            raise OracleError(f"{path}: tensor {name} has unsupported dtype {dtype}")
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= begin <= end <= len(data)) or end - begin != count * _DTYPE_BYTES[dtype]:
            raise OracleError(f"{path}: tensor {name} has bad data_offsets [{begin}, {end}]")
        array = np.frombuffer(data[begin:end], dtype=np.dtype(_NUMPY_DTYPES[dtype]).newbyteorder("<"))
        if dtype == "BF16":
            array = bf16_bits_to_float32(array)
        tensors[name] = array.reshape(shape)
    return tensors


# ---------------------------------------------------------------------------------------------
# The KV plan: kv(l) for every layer, plus a sliding-window flag (spec section 2)
# ---------------------------------------------------------------------------------------------

class Plan:
    def __init__(self, kv, sliding):
        self.kv = list(kv)            # kv[l] = the layer whose K/V layer l attends to
        self.sliding = list(sliding)  # sliding[l] = layer l attends within the window W

    def layers(self):
        return len(self.kv)

    def is_kv_layer(self, l):
        return self.kv[l] == l

    def is_upward(self, l):
        return self.kv[l] > l

    def has_upward_edges(self):
        return any(self.is_upward(l) for l in range(self.layers()))

    def text(self):
        return "_".join(f"{t}{'s' if s else ''}" for t, s in zip(self.kv, self.sliding))


def parse_plan(text, layers):
    """Text form 'kv(0)_kv(1)_..._kv(L-1)', each entry optionally followed by 's'."""
    kv, sliding = [], []
    for entry in text.strip().split("_"):
        is_sliding = entry.endswith("s")
        number = entry[:-1] if is_sliding else entry
        if not number.isdigit():
            raise OracleError(f"plan '{text}': entry '{entry}' is not an integer with optional 's'")
        kv.append(int(number))
        sliding.append(is_sliding)
    if len(kv) != layers:
        raise OracleError(f"plan '{text}' has {len(kv)} entries, the model has {layers} layers")
    for l, t in enumerate(kv):
        if t >= layers:
            raise OracleError(f"plan '{text}': layer {l} reads layer {t}, which does not exist")
        if kv[t] != t:
            raise OracleError(f"plan '{text}': layer {l} reads layer {t}, which is not a KV layer "
                              f"(it reads layer {kv[t]})")
    return Plan(kv, sliding)


def standard_plan(layers):
    return Plan(range(layers), [False] * layers)


def cyclic_blocks(plan):
    """[(first, last)] as in spec section 2: at the first i with kv(i) > i, top = kv(i), then
    top = max(kv(i..top)) until stable; the block is [i, top]; scanning resumes at top + 1."""
    blocks, i = [], 0
    while i < plan.layers():
        if not plan.is_upward(i):
            i += 1
            continue
        top = plan.kv[i]
        while max(plan.kv[i:top + 1]) != top:
            top = max(plan.kv[i:top + 1])
        blocks.append((i, top))
        i = top + 1
    return blocks


def layer_segments(plan):
    """The layers in order, cut into (first, last, is_cyclic) pieces: cyclic blocks and the runs of
    layers between them (which run once)."""
    segments, start = [], 0
    for first, last in cyclic_blocks(plan):
        if start < first:
            segments.append((start, first - 1, False))
        segments.append((first, last, True))
        start = last + 1
    if start < plan.layers():
        segments.append((start, plan.layers() - 1, False))
    return segments


# ---------------------------------------------------------------------------------------------
# Checkpoint: config.json + model.safetensors (Hugging Face Llama names, rotate_half RoPE)
# ---------------------------------------------------------------------------------------------

class Model:
    """Config fields and weights (torch tensors in the computing dtype)."""

    def __init__(self, config, plan, weights, dtype):
        self.C = config["hidden_size"]
        self.L = config["num_hidden_layers"]
        self.H = config["num_attention_heads"]
        self.H_kv = config.get("num_key_value_heads", self.H)
        self.D = config.get("head_dim") or self.C // self.H
        self.F = config["intermediate_size"]
        self.V = config["vocab_size"]
        self.theta = float(config.get("rope_theta", 10000.0))
        self.eps = float(config.get("rms_norm_eps", 1e-6))
        self.window = int(config.get("sliding_window") or 4096)
        self.tied = bool(config.get("tie_word_embeddings", False))
        self.force_nodiag = bool(config.get("kvlab", {}).get("force_nodiag", False))
        self.plan = plan
        self.w = weights
        self.dtype = dtype
        if self.H % self.H_kv != 0:
            raise OracleError(f"num_attention_heads {self.H} is not a multiple of "
                              f"num_key_value_heads {self.H_kv}")


def expected_shapes(config, plan):
    """{tensor name: shape} that the model under `plan` needs."""
    C, L, H = config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]
    H_kv = config.get("num_key_value_heads", H)
    D = config.get("head_dim") or C // H
    F, V = config["intermediate_size"], config["vocab_size"]
    shapes = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,)}
    if not config.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (V, C)
    for l in range(L):
        p = f"model.layers.{l}."
        shapes[p + "input_layernorm.weight"] = (C,)
        shapes[p + "self_attn.q_proj.weight"] = (H * D, C)
        if plan.is_kv_layer(l):
            shapes[p + "self_attn.k_proj.weight"] = (H_kv * D, C)
            shapes[p + "self_attn.v_proj.weight"] = (H_kv * D, C)
        shapes[p + "self_attn.o_proj.weight"] = (C, H * D)
        shapes[p + "post_attention_layernorm.weight"] = (C,)
        shapes[p + "mlp.gate_proj.weight"] = (F, C)
        shapes[p + "mlp.up_proj.weight"] = (F, C)
        shapes[p + "mlp.down_proj.weight"] = (C, F)
    return shapes


def load_model(model_dir, precision="f64", plan_text=None):
    """Reads DIR/config.json and DIR/model.safetensors. `plan_text` overrides the config's plan.
    Tensors the plan does not need (k_proj of a layer that is no KV layer under an overriding plan)
    are ignored; a tensor it needs that is missing or misshapen is an error."""
    dtype = {"f64": torch.float64, "f32": torch.float32}[precision]
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                  "vocab_size"):
        if not isinstance(config.get(field), int) or config[field] <= 0:
            raise OracleError(f"{model_dir}/config.json: field {field} is missing or not a "
                              f"positive integer")
    L = config["num_hidden_layers"]
    if plan_text is None:
        plan_text = (config.get("kvlab") or {}).get("plan")
    plan = parse_plan(plan_text, L) if plan_text else standard_plan(L)
    arrays = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    weights = {}
    for name, shape in expected_shapes(config, plan).items():
        if name not in arrays:
            raise OracleError(f"{model_dir}: tensor {name} is missing")
        if tuple(arrays[name].shape) != shape:
            raise OracleError(f"{model_dir}: tensor {name} has shape {list(arrays[name].shape)}, "
                              f"the config needs {list(shape)}")
        array = np.asarray(arrays[name], dtype=np.float64)
        if not np.all(np.isfinite(array)):
            raise OracleError(f"{model_dir}: tensor {name} holds NaN or Inf")
        weights[name] = torch.from_numpy(array).to(dtype)
    if config.get("tie_word_embeddings", False):
        weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
    return Model(config, plan, weights, dtype)


def layer_weight(model, l, name):
    return model.w[f"model.layers.{l}.{name}.weight"]


# ---------------------------------------------------------------------------------------------
# Operations (spec section 1)
# ---------------------------------------------------------------------------------------------

def embed(model, tokens):
    """tokens: list of T ids -> (T, C)"""
    return model.w["model.embed_tokens.weight"][torch.tensor(tokens, dtype=torch.long)]


def rms_norm(x, weight, eps):
    """x: (T, C), weight: (C,) -> (T, C):  x * rsqrt(mean(x^2) + eps) * weight"""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def linear(x, weight):
    """x: (T, in), weight: (out, in) -> (T, out)"""
    return x @ weight.T


def rope_cos_sin(positions, D, theta, dtype):
    """positions: (T,) int -> cos, sin: (T, D). Angles computed in float64, then cast.
    Hugging Face layout: frequency k (k < D/2) sits at dims k and k + D/2."""
    inv_freq = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)  # (D/2,)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]           # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)                                 # (T, D)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x):
    """x: (..., D) -> (..., D): [x1, x2] -> [-x2, x1], halves of D/2 (pairs dim i with i + D/2)"""
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x, cos, sin):
    """x: (T, heads, D), cos/sin: (T, D) -> (T, heads, D)"""
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]


def attention_set(q_pos, k_pos, upward, sliding, window, nodiag):
    """q_pos: (Tq,), k_pos: (Tk,) -> allowed: (Tq, Tk) bool, the set S(i, l) of spec section 2:
    j <= i for self/downward layers, j < i for upward layers (and everywhere under force_nodiag),
    and j > i - W on sliding layers."""
    i, j = q_pos[:, None], k_pos[None, :]
    allowed = (j < i) if (upward or nodiag) else (j <= i)
    if sliding:
        allowed = allowed & (j > i - window)
    return allowed


def attention(q, k, v, allowed, want_probs=False):
    """q: (Tq, H, D) after RoPE, k/v: (Tk, H_kv, D) (k after RoPE), allowed: (Tq, Tk)
    -> (Tq, H*D). Query head h reads KV head h // (H / H_kv). A row whose set is empty is 0.
    With want_probs: (out, probs (H, Tq, Tk)), probs exactly 0 outside the set."""
    Tq, H, D = q.shape
    group = H // k.shape[1]
    k = k.repeat_interleave(group, dim=1)                           # (Tk, H, D)
    v = v.repeat_interleave(group, dim=1)                           # (Tk, H, D)
    scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(D)      # (H, Tq, Tk)
    scores = scores.masked_fill(~allowed[None], float("-inf"))
    probs = torch.softmax(scores, dim=-1)                           # empty rows give NaN here...
    probs = torch.where(allowed[None], probs, torch.zeros_like(probs))  # ...and exactly 0 here
    out = torch.einsum("hqk,khd->qhd", probs, v)                    # (Tq, H, D)
    out = out.reshape(Tq, H * D)
    return (out, probs) if want_probs else out


def swiglu_mlp(h, w1, w3, w2):
    """h: (T, C), w1/w3 (gate/up): (F, C), w2 (down): (C, F) -> (T, C)"""
    return linear(torch.nn.functional.silu(linear(h, w1)) * linear(h, w3), w2)


def final_logits(model, x):
    """x: (T, C) -> (T, V)"""
    return linear(rms_norm(x, model.w["model.norm.weight"], model.eps), model.w["lm_head.weight"])


# ---------------------------------------------------------------------------------------------
# One decoder layer
# ---------------------------------------------------------------------------------------------

def project_kv_raw(model, l, h):
    """KV layer l: h: (T, C) normed input -> k, v: (T, H_kv, D), k before RoPE."""
    T = h.shape[0]
    k = linear(h, layer_weight(model, l, "self_attn.k_proj")).reshape(T, model.H_kv, model.D)
    v = linear(h, layer_weight(model, l, "self_attn.v_proj")).reshape(T, model.H_kv, model.D)
    return k, v


def rope_at(model, x, positions):
    """x: (T, heads, D) rotated by positions: (T,) -> (T, heads, D)"""
    cos, sin = rope_cos_sin(positions, model.D, model.theta, model.dtype)
    return apply_rope(x, cos, sin)


def project_kv(model, l, h, positions):
    """KV layer l: h: (T, C) normed input, positions: (T,) -> k, v: (T, H_kv, D), k after RoPE."""
    k, v = project_kv_raw(model, l, h)
    return rope_at(model, k, positions), v


class PrefillHooks:
    """What a decode run needs from an all-rows prefill, per layer; a layer that runs again (the
    passes of a cyclic block) overwrites its entry, so the last pass's values remain.
      kv[l]     = (k after RoPE, v, k before RoPE): (T, H_kv, D) each, for KV layers
      probs[l]  = attention probabilities (H, T, T) of layer l over the prompt rows
      cos[l]    = (T,) cos(x_t, x_t + W_O Attn(RMSNorm(x_t))) per prompt row (spec section 6)"""

    def __init__(self):
        self.kv, self.probs, self.cos = {}, {}, {}


def row_cosines(a, b):
    """a, b: (T, C) -> (T,) cosine similarity of each row pair"""
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def decoder_layer(model, l, x, positions, write_kv, read_kv, nodiag, hooks=None):
    """Layer l on the rows x: (T, C) at `positions`: (T,) -> (T, C).
    write_kv(l, k, v) stores the new K/V of a KV layer (k, v: (T, H_kv, D));
    read_kv(l) -> (k, v): (Tk, H_kv, D) is what layer l attends to, for key positions 0..Tk-1.
    hooks (PrefillHooks): records K/V, attention probabilities and the importance cosines."""
    T = x.shape[0]
    h = rms_norm(x, layer_weight(model, l, "input_layernorm"), model.eps)
    if model.plan.is_kv_layer(l):
        k_raw, v = project_kv_raw(model, l, h)
        k = rope_at(model, k_raw, positions)
        write_kv(l, k, v)
        if hooks is not None:
            hooks.kv[l] = (k, v, k_raw)
    q = linear(h, layer_weight(model, l, "self_attn.q_proj")).reshape(T, model.H, model.D)
    q = rope_at(model, q, positions)             # readers rotate only their queries
    k, v = read_kv(l)
    allowed = attention_set(positions, torch.arange(k.shape[0]), model.plan.is_upward(l),
                            model.plan.sliding[l], model.window, nodiag)
    att, probs = attention(q, k, v, allowed, want_probs=True)
    x_in = x
    x = x + linear(att, layer_weight(model, l, "self_attn.o_proj"))
    if hooks is not None:
        hooks.probs[l] = probs
        hooks.cos[l] = row_cosines(x_in, x)
    h = rms_norm(x, layer_weight(model, l, "post_attention_layernorm"), model.eps)
    return x + swiglu_mlp(h, layer_weight(model, l, "mlp.gate_proj"),
                          layer_weight(model, l, "mlp.up_proj"), layer_weight(model, l, "mlp.down_proj"))


# ---------------------------------------------------------------------------------------------
# Prefill: blocks without upward edges once, cyclic blocks in passes (spec section 3)
# ---------------------------------------------------------------------------------------------

def iterative_prefill(model, tokens, passes, nodiag, hooks=None):
    """All T tokens in parallel -> logits (T, V). With no upward edge this is one plain pass.
    hooks (PrefillHooks): filled with the final K/V, the attention and the importance cosines."""
    T = len(tokens)
    positions = torch.arange(T)
    store = {}  # KV layer -> (k, v): (T, H_kv, D), the final K/V of every layer done so far

    def write_to(kv_dict):
        def write(l, k, v):
            kv_dict[l] = (k, v)
        return write

    x = embed(model, tokens)                                        # (T, C)
    for first, last, cyclic in layer_segments(model.plan):
        if not cyclic:
            for l in range(first, last + 1):
                x = decoder_layer(model, l, x, positions, write_to(store),
                                  lambda l: store[model.plan.kv[l]], nodiag, hooks)
            continue
        block_input = x
        targets = {model.plan.kv[l] for l in range(first, last + 1) if model.plan.is_upward(l)}
        zeros = torch.zeros(T, model.H_kv, model.D, dtype=model.dtype)
        previous = {t: (zeros, zeros) for t in targets}  # the targets' K/V of the previous pass
        for _ in range(passes):
            current = dict(store)                        # layers below the block + this pass
            x = block_input                              # every pass restarts from the same input

            def read(l):
                source = previous if model.plan.is_upward(l) else current
                return source[model.plan.kv[l]]

            for l in range(first, last + 1):
                x = decoder_layer(model, l, x, positions, write_to(current), read, nodiag, hooks)
            previous = {t: current[t] for t in targets}
        store = current                                  # the last pass writes the cache
    return final_logits(model, x)


def token_by_token(model, tokens, nodiag):
    """Each token through the whole model with the cache of the tokens before it -> (T, V).
    A KV layer appends its token's K/V before anyone reads it; an upward reader of token i finds
    only tokens < i in its target's cache (its target has not run yet for token i)."""
    cache = {t: (torch.zeros(0, model.H_kv, model.D, dtype=model.dtype),) * 2
             for t in range(model.L) if model.plan.is_kv_layer(t)}

    def append(l, k, v):
        old_k, old_v = cache[l]
        cache[l] = (torch.cat([old_k, k]), torch.cat([old_v, v]))

    rows = []
    for i, token in enumerate(tokens):
        x = embed(model, [token])                                   # (1, C)
        for l in range(model.L):
            x = decoder_layer(model, l, x, torch.tensor([i]), append,
                              lambda l: cache[model.plan.kv[l]], nodiag)
        rows.append(final_logits(model, x))
    return torch.cat(rows)


def forward(model, tokens, mode="auto", passes=None, force_nodiag=False):
    """tokens: list of T ids -> logits (T, V) in the model's dtype."""
    for t in tokens:
        if not 0 <= t < model.V:
            raise OracleError(f"token id {t} is outside the vocabulary [0, {model.V})")
    if not tokens:
        raise OracleError("no tokens")
    passes = DEFAULT_PASSES if passes is None else passes
    if passes < 1:
        raise OracleError(f"--passes {passes}: at least one pass is needed")
    nodiag = force_nodiag or model.force_nodiag
    with torch.no_grad():
        if mode == "token-by-token":
            return token_by_token(model, tokens, nodiag)
        if mode == "auto" and model.plan.has_upward_edges() and len(tokens) <= passes:
            return token_by_token(model, tokens, nodiag)
        if mode in ("auto", "iterative"):
            return iterative_prefill(model, tokens, passes, nodiag)
    raise OracleError(f"unknown mode {mode}")


# ---------------------------------------------------------------------------------------------
# Decode: one token at a time against a cache with sequence policies (spec section 5) and
# SqueezeAttention budgets (spec section 6)
# ---------------------------------------------------------------------------------------------

POLICY_KINDS = ("full", "window", "streaming", "h2o")


class Policy:
    """What an evicting bank keeps between steps (spec section 5).
    kind       full | window | streaming | h2o
    window     W of window:W (it sets the budget); None: the budget decides
    sinks      S of streaming:S, default 4 (the budget includes the sinks)
    recent     R of h2o:R; None: B // 2
    positions  absolute (keys keep the RoPE of their position) | cache (pos-shift: pre-RoPE keys,
               rotated by their slot at attention time, the query by the bank length)"""

    def __init__(self, kind="full", window=None, sinks=4, recent=None, positions="absolute"):
        self.kind, self.window, self.sinks, self.recent = kind, window, sinks, recent
        self.positions = positions


def parse_policy(text, positions="absolute"):
    """'full' | 'window[:W]' | 'streaming[:S]' | 'h2o[:R]' -> Policy"""
    name, _, arg = text.partition(":")
    if name not in POLICY_KINDS:
        raise OracleError(f"--policy '{text}': unknown policy (use {', '.join(POLICY_KINDS)})")
    if arg and not arg.isdigit():
        raise OracleError(f"--policy '{text}': '{arg}' is not a non-negative integer")
    if positions not in ("absolute", "cache"):
        raise OracleError(f"--positions '{positions}': use absolute or cache")
    value = int(arg) if arg else None
    if name == "full" and value is not None:
        raise OracleError(f"--policy '{text}': full takes no argument")
    if name == "window" and value == 0:
        raise OracleError(f"--policy '{text}': a window needs at least one token")
    return Policy(name, window=value if name == "window" else None,
                  sinks=value if name == "streaming" and value is not None else 4,
                  recent=value if name == "h2o" else None, positions=positions)


def parse_budget(text):
    """'128' (tokens) or '0.25' (a fraction f of the prompt, B = floor(f * N)) -> a function
    N -> B. Fractions are read as exact decimals."""
    if text is None:
        return None
    try:
        if text.endswith("%"):  # a share of the prompt, as kvlab writes it ("62.5%")
            f = Fraction(text[:-1]) / 100
            if not 0 < f <= 1:
                raise ValueError
            return lambda N: math.floor(f * N)
        if "." in text:
            f = Fraction(text)
            if not 0 < f <= 1:
                raise ValueError
            return lambda N: math.floor(f * N)
        tokens = int(text)
        if tokens < 1:
            raise ValueError
        return lambda N: tokens
    except ValueError:
        raise OracleError(f"--budget '{text}': tokens (an integer >= 1), a percentage in (0, 100] "
                          "or a fraction in (0, 1]")


class Bank:
    """The cells of KV layer `layer`'s bank, per KV head g, in slot order. New cells enter at the
    end and eviction keeps the order of the rest, so slots are in ascending position order.
        k, v   (H_kv, N, D): k after RoPE, or before RoPE when `cache_positions`
        pos    (H_kv, N) int64: the position of each cell
        score  (H_kv, N) float64: accumulated attention (H2O), summed over the query heads of g
    `evicts`: the bank takes the policy and its budget (spec section 5; banks that only sliding
    layers read keep their window instead, as kvlab's docs/squeeze.md chose)."""

    def __init__(self, model, layer, evicts, cache_positions, tracks_scores):
        self.layer, self.evicts = layer, evicts
        self.cache_positions, self.tracks_scores = cache_positions, tracks_scores
        self.budget = None  # None: never evicts
        self.k = torch.zeros(model.H_kv, 0, model.D, dtype=model.dtype)
        self.v = torch.zeros(model.H_kv, 0, model.D, dtype=model.dtype)
        self.pos = torch.zeros(model.H_kv, 0, dtype=torch.long)
        self.score = torch.zeros(model.H_kv, 0, dtype=torch.float64)

    def held(self):
        return self.pos.shape[1]

    def append(self, k, v, positions):
        """k, v: (T, H_kv, D), positions: (T,): every KV head gets the T new cells, score 0."""
        H_kv, T = k.shape[1], k.shape[0]
        self.k = torch.cat([self.k, k.transpose(0, 1)], dim=1)
        self.v = torch.cat([self.v, v.transpose(0, 1)], dim=1)
        self.pos = torch.cat([self.pos, positions[None, :].expand(H_kv, T)], dim=1)
        self.score = torch.cat([self.score, torch.zeros(H_kv, T, dtype=torch.float64)], dim=1)

    def add_scores(self, probs):
        """probs: (H, N) attention of one query row over the N cells (query head h reads KV head
        h // group): each cell gains the probability it received from the heads of its group."""
        H, N = probs.shape
        H_kv = self.pos.shape[0]
        self.score += probs.to(torch.float64).reshape(H_kv, H // H_kv, N).sum(dim=1)

    def evict(self, policy):
        """Drops cells until each KV head holds at most the budget (each head chooses its own)."""
        if not self.evicts or self.budget is None or self.held() <= self.budget:
            return
        keep = [torch.tensor(select_cells(policy, self.budget, self.pos[g].tolist(),
                                          self.score[g].tolist()), dtype=torch.long)
                for g in range(self.pos.shape[0])]
        self.k = torch.stack([self.k[g, idx] for g, idx in enumerate(keep)])
        self.v = torch.stack([self.v[g, idx] for g, idx in enumerate(keep)])
        self.pos = torch.stack([self.pos[g, idx] for g, idx in enumerate(keep)])
        self.score = torch.stack([self.score[g, idx] for g, idx in enumerate(keep)])


def select_cells(policy, budget, pos, score):
    """The cells (ascending indices) one KV head keeps: pos, score are lists over its N cells."""
    n = len(pos)
    if n <= budget or policy.kind == "full":
        return list(range(n))
    newest_first = sorted(range(n), key=lambda j: -pos[j])
    if policy.kind == "window":
        keep = newest_first[:budget]
    elif policy.kind == "streaming":
        sinks = min(policy.sinks, budget)
        keep = sorted(range(n), key=lambda j: pos[j])[:sinks]  # the first tokens of the sequence
        keep += [j for j in newest_first if j not in keep][:budget - sinks]
    else:  # h2o: the R most recent, then the heaviest of the rest (ties: the older token)
        recent = min(budget // 2 if policy.recent is None else policy.recent, budget)
        keep = newest_first[:recent]
        rest = sorted((j for j in range(n) if j not in keep), key=lambda j: (-score[j], pos[j]))
        keep += rest[:budget - recent]
    return sorted(keep)


def attend_bank(model, l, q, i, bank, nodiag):
    """One query row of layer l at position i over bank's cells. q: (1, H, D) before RoPE
    -> out (1, H*D), probs (H, N). In cache position mode the keys are rotated by their slot
    0..N-1 and the query by the slot its token has (or, for an upward reader whose target has not
    run yet, will have) in this bank: the number of cells before it."""
    H, H_kv, D = model.H, model.H_kv, model.D
    group = H // H_kv
    N = bank.held()
    if bank.cache_positions:
        q_slot = int((bank.pos[0] < i).sum())
        q = rope_at(model, q, torch.tensor([q_slot]))
        keys = rope_at(model, bank.k.transpose(0, 1), torch.arange(N)).transpose(0, 1)
    else:
        q = rope_at(model, q, torch.tensor([i]))
        keys = bank.k                                                 # (H_kv, N, D)
    allowed = torch.stack([attention_set(torch.tensor([i]), bank.pos[g], model.plan.is_upward(l),
                                         model.plan.sliding[l], model.window, nodiag)[0]
                           for g in range(H_kv)])                     # (H_kv, N)
    k = keys.repeat_interleave(group, dim=0)                          # (H, N, D)
    v = bank.v.repeat_interleave(group, dim=0)                        # (H, N, D)
    a = allowed.repeat_interleave(group, dim=0)                       # (H, N)
    scores = torch.einsum("hd,hnd->hn", q[0], k) / math.sqrt(D)       # (H, N)
    scores = scores.masked_fill(~a, float("-inf"))
    probs = torch.softmax(scores, dim=-1) if N > 0 else scores
    probs = torch.where(a, probs, torch.zeros_like(probs))            # empty set: 0
    out = torch.einsum("hn,hnd->hd", probs, v)                        # (H, D)
    return out.reshape(1, H * D), probs


def decode_step(model, banks, token, i, nodiag, cosines=None):
    """Token `token` at position i through every layer against the banks -> logits (1, V).
    A KV layer appends the token's K/V to its bank before any reader reads it; an upward reader
    finds only earlier tokens there (spec section 2). cosines: {l: [...]} collects the importance
    cosine of each layer (prefill rows only)."""
    x = embed(model, [token])                                         # (1, C)
    pos = torch.tensor([i])
    for l in range(model.L):
        h = rms_norm(x, layer_weight(model, l, "input_layernorm"), model.eps)
        if model.plan.is_kv_layer(l):
            k_raw, v = project_kv_raw(model, l, h)
            own = banks[l]
            own.append(k_raw if own.cache_positions else rope_at(model, k_raw, pos), v, pos)
        q = linear(h, layer_weight(model, l, "self_attn.q_proj")).reshape(1, model.H, model.D)
        bank = banks[model.plan.kv[l]]
        att, probs = attend_bank(model, l, q, i, bank, nodiag)
        if bank.tracks_scores:
            bank.add_scores(probs)
        x_in = x
        x = x + linear(att, layer_weight(model, l, "self_attn.o_proj"))
        if cosines is not None:
            cosines[l].append(row_cosines(x_in, x))
        h = rms_norm(x, layer_weight(model, l, "post_attention_layernorm"), model.eps)
        x = x + swiglu_mlp(h, layer_weight(model, l, "mlp.gate_proj"),
                           layer_weight(model, l, "mlp.up_proj"),
                           layer_weight(model, l, "mlp.down_proj"))
    return final_logits(model, x)


def readers(plan, t):
    return [l for l in range(plan.layers()) if plan.kv[l] == t]


def kmeans3_exact(values):
    """1-D k-means with 3 clusters, the global optimum: in one dimension an optimal partition is
    contiguous in sorted order, so every pair of split points is tried, with exact rational sums
    of squares. -> labels 1, 2, 3 by centre (1 lowest). Needs 3 distinct values."""
    n = len(values)
    if len(set(values)) < 3:
        raise OracleError(f"k-means with 3 clusters needs 3 distinct values, got {values}")
    order = sorted(range(n), key=lambda j: values[j])
    v = [Fraction(values[j]) for j in order]

    def sse(part):
        mean = sum(part) / len(part)
        return sum((x - mean) ** 2 for x in part)

    best = None
    for a in range(1, n - 1):
        for b in range(a + 1, n):
            if v[a] == v[a - 1] or v[b] == v[b - 1]:
                continue  # equal values belong to one cluster
            cost = sse(v[:a]) + sse(v[a:b]) + sse(v[b:])
            if best is None or cost < best[0]:
                best = (cost, a, b)
    _, a, b = best
    labels = [0] * n
    for rank, j in enumerate(order):
        labels[j] = 1 if rank < a else (2 if rank < b else 3)
    return labels


def squeeze_budgets(bank_importance, f0, f3, N):
    """Spec section 6 steps 2-3 over n banks: clusters, a = (n f0 - |C3| f3) / (|C1| + |C2|),
    then integer budgets: the real shares f_b N scaled to sum to U = n floor(f0 N), each floored,
    the remaining tokens one each to the largest remainders (ties: lower bank first).
    f0, f3: Fractions. -> (labels, a, budgets)"""
    n = len(bank_importance)
    labels = kmeans3_exact(bank_importance)
    c3 = labels.count(3)
    a = (n * f0 - c3 * f3) / (n - c3)
    if not 0 <= a <= 1:
        raise OracleError(f"squeeze: a = (n f0 - |C3| f3) / (|C1| + |C2|) = {float(a)} is "
                          f"outside [0, 1]")
    fractions = [f3 if c == 3 else a for c in labels]
    U = n * math.floor(f0 * N)
    shares = [f * N for f in fractions]
    scaled = [s * U / sum(shares) for s in shares]
    budgets = [math.floor(s) for s in scaled]
    left = U - sum(budgets)
    by_remainder = sorted(range(n), key=lambda b: (-(scaled[b] - budgets[b]), b))
    for b in by_remainder[:left]:
        budgets[b] += 1
    return labels, a, budgets


def decode(model, tokens, prompt_len, policy, budget=None, squeeze=None, bank_mean=False,
           mode="auto", passes=None, force_nodiag=False, info=None):
    """Prefill tokens[:prompt_len] (the plan's prefill: one pass, iterative passes, or token by
    token), apply the budgets, then feed the remaining tokens one at a time, evicting after each.
    -> logits (T, V): the prompt rows, then one row per decode step.
    policy: Policy; budget: N -> B (parse_budget) or None; squeeze: (f0, f3) Fractions or None;
    info: a dict that receives the importances, clusters, budgets and the cells held at the end."""
    T, P = len(tokens), prompt_len
    for t in tokens:
        if not 0 <= t < model.V:
            raise OracleError(f"token id {t} is outside the vocabulary [0, {model.V})")
    if not 1 <= P <= T:
        raise OracleError(f"--decode-from {P}: the prompt needs 1..{T} tokens")
    passes = DEFAULT_PASSES if passes is None else passes
    if passes < 1:
        raise OracleError(f"--passes {passes}: at least one pass is needed")
    if squeeze is not None and policy.kind == "full":
        raise OracleError("squeeze budgets need an evicting policy (window, streaming, h2o)")
    nodiag = force_nodiag or model.force_nodiag
    plan = model.plan
    banks = {}
    for t in range(model.L):
        if plan.is_kv_layer(t):
            evicts = policy.kind != "full" and not all(plan.sliding[r] for r in readers(plan, t))
            banks[t] = Bank(model, t, evicts, evicts and policy.positions == "cache",
                            evicts and policy.kind == "h2o")
    with torch.no_grad():
        # The prompt, attended fully.
        if plan.has_upward_edges() and (mode == "token-by-token" or
                                        (mode == "auto" and P <= passes)):
            cosines = {l: [] for l in range(model.L)}
            rows = [decode_step(model, banks, tokens[i], i, nodiag, cosines) for i in range(P)]
            importance = [torch.cat(cosines[l]).mean().item() for l in range(model.L)]
        elif mode in ("auto", "iterative", "token-by-token"):
            hooks = PrefillHooks()
            rows = [iterative_prefill(model, tokens[:P], passes, nodiag, hooks)]
            for t, bank in banks.items():
                k, v, k_raw = hooks.kv[t]
                bank.append(k_raw if bank.cache_positions else k, v, torch.arange(P))
                if bank.tracks_scores:
                    for l in readers(plan, t):  # every layer that reads the bank
                        bank.add_scores(hooks.probs[l].sum(dim=1))
            importance = [hooks.cos[l].mean().item() for l in range(model.L)]
        else:
            raise OracleError(f"unknown mode {mode}")

        # Budgets, then the prompt is evicted down to them.
        evicting = [t for t in sorted(banks) if banks[t].evicts]
        B = None
        if policy.window is not None:
            B = policy.window
        elif budget is not None:
            B = budget(P)
        if info is not None:
            info["layer_importance"] = importance
            info["banks"] = evicting
        if squeeze is not None:
            pick = (lambda xs: sum(xs) / len(xs)) if bank_mean else min
            bank_importance = [pick([importance[r] for r in readers(plan, t)]) for t in evicting]
            labels, a, budgets = squeeze_budgets(bank_importance, squeeze[0], squeeze[1], P)
            for t, b in zip(evicting, budgets):
                banks[t].budget = b
            if info is not None:
                info.update(bank_importance=bank_importance, clusters=labels, a=float(a),
                            budgets=budgets)
        elif B is not None:
            if B < 1:
                raise OracleError(f"the budget is {B} tokens for a prompt of {P}")
            for t in evicting:
                banks[t].budget = B
        if policy.kind == "streaming":
            for t in evicting:
                if banks[t].budget is not None and banks[t].budget <= policy.sinks:
                    raise OracleError(f"bank {t}: budget {banks[t].budget} must exceed the "
                                      f"{policy.sinks} sinks (the budget includes them)")
        for bank in banks.values():
            bank.evict(policy)

        # One token at a time; every bank is evicted back to its budget after each step.
        for i in range(P, T):
            rows.append(decode_step(model, banks, tokens[i], i, nodiag))
            for bank in banks.values():
                bank.evict(policy)
    if info is not None:
        info["held"] = {str(t): bank.pos.tolist() for t, bank in banks.items()}
    return torch.cat(rows)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def save_npy_atomic(path, array):
    """np.save to a temporary file in the same folder, then rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="kvlab checkpoint directory")
    p.add_argument("--tokens", required=True, help="comma-separated token ids, e.g. 1,2,3")
    p.add_argument("--precision", choices=["f64", "f32"], default="f64")
    p.add_argument("--out", required=True, help="output .npy file: logits [T, V]")
    p.add_argument("--plan", default=None, help="text form kv(0)_kv(1)_... (overrides config)")
    p.add_argument("--mode", choices=["auto", "iterative", "token-by-token"], default="auto")
    p.add_argument("--passes", type=int, default=None,
                   help=f"passes per cyclic block (default {DEFAULT_PASSES})")
    p.add_argument("--force-nodiag", action="store_true", help="mask the diagonal in every layer")
    d = p.add_argument_group("decode (spec sections 5, 6)")
    d.add_argument("--decode-from", type=int, default=None, metavar="P",
                   help="prefill the first P tokens, then decode the rest one at a time")
    d.add_argument("--policy", default="full", help="full | window[:W] | streaming[:S] | h2o[:R]")
    d.add_argument("--budget", default=None,
                   help="tokens per bank (128) or a fraction of the prompt (0.25)")
    d.add_argument("--positions", choices=["absolute", "cache"], default="absolute")
    d.add_argument("--squeeze", default=None, metavar="F0,F3",
                   help="SqueezeAttention budgets: uniform fraction f0, reduced fraction f3")
    d.add_argument("--bank-importance", choices=["min", "mean"], default="min",
                   help="a shared bank's importance from its readers' s_l")
    d.add_argument("--info", default=None,
                   help="decode: a JSON file with importances, clusters, budgets, held cells")
    return p


def run(argv):
    """One command line -> exit status."""
    args = build_parser().parse_args(argv)
    try:
        tokens = [int(t) for t in args.tokens.split(",") if t.strip() != ""]
    except ValueError:
        print(f"torch_reference: error: --tokens '{args.tokens}' is not a list of integers",
              file=sys.stderr)
        return 2
    try:
        model = load_model(args.model, args.precision, args.plan)
        if args.decode_from is None:
            if (args.policy != "full" or args.budget or args.squeeze or args.info
                    or args.positions != "absolute"):
                raise OracleError("--policy, --budget, --positions, --squeeze and --info need "
                                  "--decode-from")
            logits = forward(model, tokens, args.mode, args.passes, args.force_nodiag)
        else:
            squeeze = None
            if args.squeeze:
                try:
                    squeeze = tuple(Fraction(x) for x in args.squeeze.split(","))
                except ValueError:
                    squeeze = ()
                if len(squeeze) != 2 or not all(0 < f <= 1 for f in squeeze):
                    raise OracleError(f"--squeeze '{args.squeeze}': two fractions f0,f3 in (0, 1]")
            info = {} if args.info else None
            logits = decode(model, tokens, args.decode_from,
                            parse_policy(args.policy, args.positions), parse_budget(args.budget),
                            squeeze, args.bank_importance == "mean", args.mode, args.passes,
                            args.force_nodiag, info)
            if args.info:
                with open(args.info, "w") as f:
                    json.dump(info, f, indent=1)
        out_dtype = np.float64 if args.precision == "f64" else np.float32
        save_npy_atomic(args.out, logits.numpy().astype(out_dtype))
    except (OracleError, OSError, json.JSONDecodeError) as e:
        print(f"torch_reference: error: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv=None):
    """`--batch FILE`: FILE holds a JSON list of command lines (lists of arguments), run in this
    one process (torch is imported once); the status is that of the first failing one."""
    argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(1)
    if argv[:1] != ["--batch"]:
        return run(argv)
    if len(argv) != 2:
        print("torch_reference: error: --batch takes one file and nothing else", file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as f:
            runs = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"torch_reference: error: --batch {argv[1]}: {e}", file=sys.stderr)
        return 2
    status = 0
    for n, line in enumerate(runs):
        try:
            rc = run([str(a) for a in line])
        except SystemExit as e:  # argparse rejected the line
            rc = e.code if isinstance(e.code, int) else 2
        if rc != 0:
            print(f"torch_reference: batch entry {n} failed: {' '.join(map(str, line))}",
                  file=sys.stderr)
            status = status or rc
    return status


if __name__ == "__main__":
    sys.exit(main())
