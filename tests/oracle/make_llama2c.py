#!/usr/bin/env python3
"""Writes a llama2.c legacy .bin from a kvlab checkpoint directory (F32 model.safetensors, the
standard plan), independently of kvlab's own writer: numpy only.

  make_llama2c.py --model DIR --out MODEL.bin

llama2.c (run.c) layout: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
seq_len; vocab_size < 0 when the classifier is not the embedding), then float32 token_embedding,
rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis_real, freq_cis_imag (seq_len *
head_size / 2 each), wcls (unshared only). llama2.c rotates pairs (2i, 2i+1) of each head where
Hugging Face and kvlab rotate (i, i + D/2): W_Q and W_K rows are permuted accordingly."""
import argparse
import json
import os
import struct

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", (name, e["dtype"])
        b, t = e["data_offsets"]
        out[name] = np.frombuffer(data[b:t], dtype="<f4").reshape(e["shape"])
    return out


def half_to_interleaved(w, heads, d):
    # kvlab row h*d + p*(d/2) + i  ->  llama2.c row h*d + 2i + p
    c = w.shape[1]
    w = w.reshape(heads, 2, d // 2, c)
    return w.transpose(0, 2, 1, 3).reshape(heads * d, c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    t = read_safetensors(os.path.join(a.model, "model.safetensors"))
    C, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    F, V, T = cfg["intermediate_size"], cfg["vocab_size"], cfg["max_position_embeddings"]
    D = C // H
    tied = cfg.get("tie_word_embeddings", False)

    def layer(i, name):
        return t[f"model.layers.{i}.{name}.weight"]

    with open(a.out, "wb") as f:
        f.write(struct.pack("<7i", C, F, L, H, KV, V if tied else -V, T))

        def put(x):
            f.write(np.ascontiguousarray(x, dtype="<f4").tobytes())

        put(t["model.embed_tokens.weight"])
        for i in range(L):
            put(layer(i, "input_layernorm"))
        for i in range(L):
            put(half_to_interleaved(layer(i, "self_attn.q_proj"), H, D))
        for i in range(L):
            put(half_to_interleaved(layer(i, "self_attn.k_proj"), KV, D))
        for name in ["self_attn.v_proj", "self_attn.o_proj", "post_attention_layernorm",
                     "mlp.gate_proj", "mlp.down_proj", "mlp.up_proj"]:
            for i in range(L):
                put(layer(i, name))
        put(t["model.norm.weight"])
        inv = 10000.0 ** (-np.arange(0, D, 2) / D)
        ang = np.outer(np.arange(T), inv)
        put(np.cos(ang))
        put(np.sin(ang))
        if not tied:
            put(t["lm_head.weight"])
    print(f"wrote {a.out}: {os.path.getsize(a.out)} bytes")


if __name__ == "__main__":
    main()
