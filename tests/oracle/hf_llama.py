#!/usr/bin/env python3
"""A tiny random Llama saved by Hugging Face transformers, and its logits: the peer kvlab's
Hugging Face loader is checked against (tests/oracle/test_checkpoints.cpp).

  hf_llama.py --out DIR --tokens 1,2,3 --logits OUT.npy [--tied] [--kv-heads N] [--shard SIZE]
              [--dtype float32|float16|bfloat16]

With --tokenizer FILE --text TEXT, FILE (a tokenizer.json) is saved as DIR/tokenizer.json, the
vocabulary is the tokenizer's, and the logits are those of BOS + the `tokenizers` package's ids of
TEXT (written to OUT.npy.ids); kvlab then runs the directory with --prompt TEXT.

Writes DIR with LlamaForCausalLM(config).save_pretrained(DIR, safe_serialization=True) (sharded
when --shard is given, e.g. 20KB) and OUT.npy, the float32 logits [T, V] of the saved weights.
Exits non-zero (never skips) when transformers or torch is missing."""
import argparse
import sys

import numpy as np
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--logits", required=True)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=96)
    ap.add_argument("--vocab", type=int, default=300)
    ap.add_argument("--theta", type=float, default=10000.0)
    ap.add_argument("--shard", default="")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tokenizer", default="")
    ap.add_argument("--text", default="")
    a = ap.parse_args()
    ids = [int(t) for t in a.tokens.split(",")]
    if a.tokenizer:
        import shutil

        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(a.tokenizer)
        a.vocab = tok.get_vocab_size(with_added_tokens=True)
        bos = next(tok.token_to_id(n) for n in ["<s>", "<|begin_of_text|>", "<bos>",
                                                "<|endoftext|>"] if tok.token_to_id(n) is not None)
        ids = [bos] + tok.encode(a.text, add_special_tokens=False).ids
        with open(a.logits + ".ids", "w") as f:
            f.write(",".join(map(str, ids)) + "\n")
    torch.manual_seed(a.seed)
    cfg = LlamaConfig(hidden_size=a.hidden, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                      intermediate_size=a.ffn, vocab_size=a.vocab, rope_theta=a.theta,
                      rms_norm_eps=1e-5, max_position_embeddings=128,
                      tie_word_embeddings=a.tied, initializer_range=0.2)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # norms away from 1 so that they matter
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1 + 0.3 * torch.randn_like(p))
    dtype = {"float32": torch.float32, "float16": torch.float16,
             "bfloat16": torch.bfloat16}[a.dtype]
    model = model.to(dtype)
    kw = {"safe_serialization": True}
    if a.shard:
        kw["max_shard_size"] = a.shard
    model.save_pretrained(a.out, **kw)
    if a.tokenizer:
        shutil.copyfile(a.tokenizer, f"{a.out}/tokenizer.json")
    # The logits of the stored (possibly rounded) weights, in float32, from a fresh float32 model:
    # model.float() would keep RoPE's inv_freq buffer rounded to 16 bits.
    stored = {k: v.float() for k, v in model.state_dict().items()}
    model = LlamaForCausalLM(cfg).eval()
    model.load_state_dict(stored)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].numpy().astype(np.float32)
    np.save(a.logits, logits)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}: wrote {a.out}, "
          f"logits {logits.shape}")


if __name__ == "__main__":
    sys.exit(main())
