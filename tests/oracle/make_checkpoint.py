#!/usr/bin/env python3
"""Writes a small random kvlab checkpoint directory (config.json + model.safetensors) with numpy.

    python3 tests/oracle/make_checkpoint.py --out DIR [--layers 4] [--hidden 32] [--heads 4]
        [--kv-heads 2] [--ffn 48] [--vocab 64] [--plan TEXTFORM] [--seed 0] [--tied]
        [--sliding-window 4096] [--dtype f32|f16|bf16] [--head-dim D] [--rope-theta 10000]
        [--rms-norm-eps 1e-5] [--max-positions 256] [--force-nodiag]

For the oracle's self-tests; `kvlab init` makes the real ones. Hugging Face Llama tensor names;
layers that are not KV layers under the plan get no k_proj / v_proj. Weights are scaled by
1/sqrt(fan_in) so that activations stay of order one; norm weights are 1 + small noise so that
they matter.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np



def kv_of_plan(plan_text, layers):
    """Text form 'kv(0)_kv(1)_...' (entries may end in 's') -> [kv(l)]. Not validated on purpose:
    tests of bad input may want a checkpoint with an invalid plan."""
    if not plan_text:
        return list(range(layers))
    kv = [int(e.rstrip("s")) for e in plan_text.split("_")]
    if len(kv) != layers:
        raise SystemExit(f"make_checkpoint: plan '{plan_text}' has {len(kv)} entries, not {layers}")
    return kv


def float32_to_bf16_bits(a):
    """float32 array -> uint16 bfloat16 bits, rounded to nearest even."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def write_safetensors(path, tensors, dtype="f32"):
    """tensors: {name: float array}; written in the given dtype, header padded to 8 bytes."""
    code = {"f32": "F32", "f16": "F16", "bf16": "BF16", "f64": "F64"}[dtype]
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        if dtype == "bf16":
            raw = float32_to_bf16_bits(a).astype("<u2").tobytes()
        else:
            raw = a.astype({"f32": "<f4", "f16": "<f2", "f64": "<f8"}[dtype]).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)
    os.replace(tmp, path)


def random_weights(rng, L, C, H, H_kv, D, F, V, kv, tied):
    """{Hugging Face name: float32 array}"""
    def matrix(rows, cols):
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w = {"model.embed_tokens.weight": (0.5 * rng.standard_normal((V, C))).astype(np.float32)}
    for l in range(L):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = norm(C)
        w[p + "self_attn.q_proj.weight"] = matrix(H * D, C)
        if kv[l] == l:                 # only KV layers have W_K, W_V
            w[p + "self_attn.k_proj.weight"] = matrix(H_kv * D, C)
            w[p + "self_attn.v_proj.weight"] = matrix(H_kv * D, C)
        w[p + "self_attn.o_proj.weight"] = matrix(C, H * D)
        w[p + "post_attention_layernorm.weight"] = norm(C)
        w[p + "mlp.gate_proj.weight"] = matrix(F, C)
        w[p + "mlp.up_proj.weight"] = matrix(F, C)
        w[p + "mlp.down_proj.weight"] = matrix(C, F)
    w["model.norm.weight"] = norm(C)
    if not tied:
        w["lm_head.weight"] = matrix(V, C)
    return w


def make_checkpoint(out, layers=4, hidden=32, heads=4, kv_heads=2, ffn=48, vocab=64, plan=None,
                    seed=0, tied=False, sliding_window=4096, dtype="f32", head_dim=None,
                    rope_theta=10000.0, rms_norm_eps=1e-5, max_positions=256, force_nodiag=False):
    """Creates the directory `out` and returns it."""
    D = head_dim or hidden // heads
    kv = kv_of_plan(plan, layers)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "head_dim": D, "intermediate_size": ffn,
        "vocab_size": vocab, "rope_theta": rope_theta, "rms_norm_eps": rms_norm_eps,
        "max_position_embeddings": max_positions, "tie_word_embeddings": tied,
        "sliding_window": sliding_window, "attention_bias": False, "mlp_bias": False,
        "torch_dtype": "float32",
        "kvlab": {"plan": plan or "_".join(str(l) for l in range(layers))},
    }
    if force_nodiag:
        config["kvlab"]["force_nodiag"] = True
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, layers, hidden, heads, kv_heads, D, ffn, vocab, kv, tied)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(out, "model.safetensors"), weights, dtype)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description="Write a small random kvlab checkpoint.")
    p.add_argument("--out", required=True)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ffn", type=int, default=48)
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--plan", default=None, help="text form; default the standard plan")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tied", action="store_true")
    p.add_argument("--sliding-window", type=int, default=4096)
    p.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    p.add_argument("--head-dim", type=int, default=None)
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--rms-norm-eps", type=float, default=1e-5)
    p.add_argument("--max-positions", type=int, default=256)
    p.add_argument("--force-nodiag", action="store_true")
    a = p.parse_args(argv)
    make_checkpoint(a.out, a.layers, a.hidden, a.heads, a.kv_heads, a.ffn, a.vocab, a.plan, a.seed,
                    a.tied, a.sliding_window, a.dtype, a.head_dim, a.rope_theta, a.rms_norm_eps,
                    a.max_positions, a.force_nodiag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
