#!/usr/bin/env python3
"""The `tokenizers` package's ids for a list of documents: encode_corpus.py TOKENIZER DOCS OUT.
DOCS is a JSON list of strings; OUT gets a JSON list of id lists (add_special_tokens=False).
Used by tests/oracle/test_corpus_tokenizer_oracle.cpp."""
import json
import sys

from tokenizers import Tokenizer

tok = Tokenizer.from_file(sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as f:
    docs = json.load(f)
ids = [e.ids for e in tok.encode_batch(docs, add_special_tokens=False)]
with open(sys.argv[3], "w", encoding="utf-8") as f:
    json.dump(ids, f)
