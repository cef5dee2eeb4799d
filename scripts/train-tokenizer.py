#!/usr/bin/env python3
"""Trains kvlab's small byte-level BPE (docs/training.md, "Data and tokenizer").

    build/cpu/kvlab corpus --dump-text /tmp/kvlab-train.txt
    .venv/bin/python scripts/train-tokenizer.py /tmp/kvlab-train.txt models/tokenizer.json

The input is `kvlab corpus --dump-text`: the cleaned training documents joined by lines "%" (the
cleaning lives in one place, reference/train/corpus.cpp). The configuration is one that kvlab's
Hugging Face reader (core/tokenizers/hf*.cpp) reads exactly: a BPE model over GPT-2's byte
alphabet (every byte is a token, so nothing is unknown), the ByteLevel pre-tokenizer (GPT-2 regex,
no prefix space), the ByteLevel decoder, no normalizer, no post-processor; the special tokens <s>
(BOS, id 0) and </s> (EOS, id 1) come first, so that MQAR's raw ids (8 and up) never touch them.
The trainer is deterministic (ties between pairs are broken by their ids), so the same input gives
the same file.
"""

import argparse
import json
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("text", help="kvlab corpus --dump-text output")
    ap.add_argument("out", help="tokenizer.json to write")
    ap.add_argument("--vocab-size", type=int, default=1024)
    ap.add_argument("--min-frequency", type=int, default=2)
    a = ap.parse_args()

    with open(a.text, encoding="utf-8") as f:
        docs = f.read().rstrip("\n").split("\n%\n")
    docs = [d for d in docs if d]
    if not docs:
        sys.exit(f"train-tokenizer: {a.text} has no documents")

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=a.vocab_size,
        min_frequency=a.min_frequency,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
    # Sorted keys and a fixed layout: the file is the same bytes on every run.
    text = json.dumps(json.loads(tok.to_str()), indent=1, sort_keys=True, ensure_ascii=False)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    chars = sum(len(d) for d in docs)
    tokens = sum(len(e.ids) for e in tok.encode_batch(docs, add_special_tokens=False))
    print(f"train-tokenizer: {len(docs)} documents, {chars} characters -> {tokens} tokens "
          f"({tokens / chars:.3f} per character), vocabulary {tok.get_vocab_size()}: {a.out}")


if __name__ == "__main__":
    main()
