#!/usr/bin/env python3
"""Builds tokenizer.json files with the Hugging Face `tokenizers` package and writes the ids it
gives for a set of test texts, for tests/oracle/test_tokenizers_oracle.cpp.

    make_tokenizers.py OUT_DIR

writes OUT_DIR/{bytelevel_gpt2,bytelevel_llama3,sentencepiece}.json (tokenizers trained here on a
fixed corpus, deterministic) and OUT_DIR/expected.json:
    {"tokenizers_version": "...", "texts": [...],
     "ids": {name: [[id, ...] per text]}, "decoded": {name: [text per text]}}
with ids from encode(text, add_special_tokens=False). Exits non-zero (never skips) when
`tokenizers` cannot be imported.
"""
import json
import random
import sys

try:
    import tokenizers
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
except ImportError as e:  # the test must fail, loudly
    sys.exit(f"make_tokenizers.py: cannot import tokenizers ({e}); run scripts/setup.sh, which "
             f"installs it into .venv")

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

CORPUS = [
    "Once upon a time, there was a little girl named Lily. She loved to play outside.",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
    "It's a truth universally acknowledged; we'll see, they've said, I'm sure you'd agree.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 1234 2024 3.14159 1,000,000",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe \u0391\u03b8\u03ae\u03bd\u03b1 "
    "\u041c\u043e\u0441\u043a\u0432\u0430 \u043f\u0440\u0438\u0432\u0435\u0442",
    "def f(x):\n    return x * 2  # code\n\n\tif x > 0:\n\t\tprint('ok')\n",
    "Hello, world! Hello again, world. hello hello HELLO",
]

# Texts the ids are compared on: ASCII, Unicode, emoji, whitespace runs, digits, special tokens.
FIXED = [
    "",
    " ",
    "   ",
    "Hello, world!",
    " Hello",
    "  leading and trailing  ",
    "It's 2024; we'll pay $1,234.56 for 7 caf\u00e9s.",
    "I'M DON'T YOU'LL WE'VE THEY'RE HE'D SHE'S",
    "Spaces   and\ttabs\t\tand\n\nnewlines\r\n\r\n  end  \n",
    "\u0391\u03b8\u03ae\u03bd\u03b1 \u041c\u043e\u0441\u043a\u0432\u0430 \u4f60\u597d\u4e16\u754c "
    "\u3053\u3093\u306b\u3061\u306f \uc548\ub155\ud558\uc138\uc694 \u0645\u0631\u062d\u0628\u0627",
    "\U0001F600\U0001F44D\U0001F469\u200d\U0001F4BB emoji! \U0001F680\U0001F680 x\U0001F600y",
    "12345678901234567890 3.14159 1e-10 0x1F \u00b2\u00b3 \u00bd \u0663\u0664",
    "tabs\t\t\tthen spaces    then\nnewline \n \n",
    "a<|endoftext|>b <|endoftext|> c",
    "<s>Hello</s> world </s>",
    "naïve façade coöperate — “quotes” ‘single’ … ellipsis",
    "x" * 50 + " " + "ab" * 30,
]

POOL = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") +
        list(" \t\n\r.,;:!?'\"()[]{}-_+=*/\\@#$%^&|~`<>") + ["  ", "   ", "'s", "'LL", "'re"] +
        list("\u00e9\u00e8\u00fc\u00df\u00f1\u00e7\u0391\u03b8\u03c9\u0416\u0436\u4f60\u597d"
             "\u3042\u30a2\uac00\u0645\u05d0\u0915\u00b2\u00bd\u0663\u2160\u00a0\u3000\u2003"
             "\u2014\u2026\u20ac\u00a9") +
        ["\U0001F600", "\U0001F44D", "\U0001F680", "\u200d", "\ufe0f"])


def random_texts(n, seed=1234):
    rng = random.Random(seed)
    return ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def train_bytelevel(llama3):
    tok = Tokenizer(models.BPE())
    if llama3:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, min_frequency=1, show_progress=False,
                                  special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 3, trainer=trainer)
    return tok


def train_sentencepiece():
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                           normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=360, min_frequency=1, show_progress=False,
                                  special_tokens=["<unk>", "<s>", "</s>"])
    # The corpus without its CJK/emoji, so that those characters go through byte fallback.
    tok.train_from_iterator(CORPUS * 3, trainer=trainer)
    # Llama 2's layout: <unk>, <s>, </s>, then <0x00>..<0xFF> as ordinary vocabulary entries.
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    specials = {"<unk>": 0, "<s>": 1, "</s>": 2}
    new_vocab = dict(specials)
    for b in range(256):
        new_vocab[f"<0x{b:02X}>"] = 3 + b
    for token, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        if token not in new_vocab:
            new_vocab[token] = len(new_vocab)
    j["model"]["vocab"] = new_vocab
    return Tokenizer.from_str(json.dumps(j))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_tokenizers.py OUT_DIR")
    out = sys.argv[1]
    texts = FIXED + [" ".join(FIXED[1:])] + random_texts(300)
    result = {"tokenizers_version": tokenizers.__version__, "texts": texts, "ids": {},
              "decoded": {}}
    for name, tok in [("bytelevel_gpt2", train_bytelevel(False)),
                      ("bytelevel_llama3", train_bytelevel(True)),
                      ("sentencepiece", train_sentencepiece())]:
        with open(f"{out}/{name}.json", "w", encoding="utf-8") as f:
            f.write(tok.to_str(pretty=True))
        ids = [tok.encode(t, add_special_tokens=False).ids for t in texts]
        result["ids"][name] = ids
        result["decoded"][name] = [tok.decode(i, skip_special_tokens=False) for i in ids]
    with open(f"{out}/expected.json", "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
