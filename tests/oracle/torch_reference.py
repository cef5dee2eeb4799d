#!/usr/bin/env python3
"""Independent PyTorch oracle for kvlab: the prefill logits of a kvlab checkpoint under any KV plan.

Written from the contract (shared/spec/techniques.md sections 1-3), not from the C++ engine, so that
the two can be compared. Plain PyTorch on the CPU, one function per operation.

    python3 tests/oracle/torch_reference.py --model DIR --tokens 1,2,3 --precision f64 --out L.npy
        [--plan TEXTFORM] [--mode auto|iterative|token-by-token] [--passes N] [--force-nodiag]

writes the logits of every prompt position, shape [T, V], float64 (f64) or float32 (f32).

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


def attention(q, k, v, allowed):
    """q: (Tq, H, D) after RoPE, k/v: (Tk, H_kv, D) (k after RoPE), allowed: (Tq, Tk)
    -> (Tq, H*D). Query head h reads KV head h // (H / H_kv). A row whose set is empty is 0."""
    Tq, H, D = q.shape
    group = H // k.shape[1]
    k = k.repeat_interleave(group, dim=1)                           # (Tk, H, D)
    v = v.repeat_interleave(group, dim=1)                           # (Tk, H, D)
    scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(D)      # (H, Tq, Tk)
    scores = scores.masked_fill(~allowed[None], float("-inf"))
    probs = torch.softmax(scores, dim=-1)                           # empty rows give NaN here...
    probs = torch.where(allowed[None], probs, torch.zeros_like(probs))  # ...and exactly 0 here
    out = torch.einsum("hqk,khd->qhd", probs, v)                    # (Tq, H, D)
    return out.reshape(Tq, H * D)


def swiglu_mlp(h, w1, w3, w2):
    """h: (T, C), w1/w3 (gate/up): (F, C), w2 (down): (C, F) -> (T, C)"""
    return linear(torch.nn.functional.silu(linear(h, w1)) * linear(h, w3), w2)


def final_logits(model, x):
    """x: (T, C) -> (T, V)"""
    return linear(rms_norm(x, model.w["model.norm.weight"], model.eps), model.w["lm_head.weight"])


# ---------------------------------------------------------------------------------------------
# One decoder layer
# ---------------------------------------------------------------------------------------------

def project_kv(model, l, h, positions):
    """KV layer l: h: (T, C) normed input, positions: (T,) -> k, v: (T, H_kv, D), k after RoPE."""
    T = h.shape[0]
    k = linear(h, layer_weight(model, l, "self_attn.k_proj")).reshape(T, model.H_kv, model.D)
    v = linear(h, layer_weight(model, l, "self_attn.v_proj")).reshape(T, model.H_kv, model.D)
    cos, sin = rope_cos_sin(positions, model.D, model.theta, model.dtype)
    return apply_rope(k, cos, sin), v


def decoder_layer(model, l, x, positions, write_kv, read_kv, nodiag):
    """Layer l on the rows x: (T, C) at `positions`: (T,) -> (T, C).
    write_kv(l, k, v) stores the new K/V of a KV layer (k, v: (T, H_kv, D));
    read_kv(l) -> (k, v): (Tk, H_kv, D) is what layer l attends to, for key positions 0..Tk-1."""
    T = x.shape[0]
    h = rms_norm(x, layer_weight(model, l, "input_layernorm"), model.eps)
    if model.plan.is_kv_layer(l):
        write_kv(l, *project_kv(model, l, h, positions))
    q = linear(h, layer_weight(model, l, "self_attn.q_proj")).reshape(T, model.H, model.D)
    cos, sin = rope_cos_sin(positions, model.D, model.theta, model.dtype)
    q = apply_rope(q, cos, sin)                  # readers rotate only their queries
    k, v = read_kv(l)
    allowed = attention_set(positions, torch.arange(k.shape[0]), model.plan.is_upward(l),
                            model.plan.sliding[l], model.window, nodiag)
    x = x + linear(attention(q, k, v, allowed), layer_weight(model, l, "self_attn.o_proj"))
    h = rms_norm(x, layer_weight(model, l, "post_attention_layernorm"), model.eps)
    return x + swiglu_mlp(h, layer_weight(model, l, "mlp.gate_proj"),
                          layer_weight(model, l, "mlp.up_proj"), layer_weight(model, l, "mlp.down_proj"))


# ---------------------------------------------------------------------------------------------
# Prefill: blocks without upward edges once, cyclic blocks in passes (spec section 3)
# ---------------------------------------------------------------------------------------------

def iterative_prefill(model, tokens, passes, nodiag):
    """All T tokens in parallel -> logits (T, V). With no upward edge this is one plain pass."""
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
                                  lambda l: store[model.plan.kv[l]], nodiag)
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
                x = decoder_layer(model, l, x, positions, write_to(current), read, nodiag)
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


def main(argv=None):
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
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        tokens = [int(t) for t in args.tokens.split(",") if t.strip() != ""]
    except ValueError:
        print(f"torch_reference: error: --tokens '{args.tokens}' is not a list of integers",
              file=sys.stderr)
        return 2
    try:
        model = load_model(args.model, args.precision, args.plan)
        logits = forward(model, tokens, args.mode, args.passes, args.force_nodiag)
        out_dtype = np.float64 if args.precision == "f64" else np.float32
        save_npy_atomic(args.out, logits.numpy().astype(out_dtype))
    except (OracleError, OSError, json.JSONDecodeError) as e:
        print(f"torch_reference: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
