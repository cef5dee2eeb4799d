// The BPE merge loop both BPE tokenizers share (Hugging Face tokenizer.json, llama2.c
// tokenizer.bin), and the `<0xNN>` byte-fallback pieces both vocabularies use.
#pragma once

#include <functional>
#include <optional>
#include <string_view>
#include <vector>

namespace kvlab {

// What merging an adjacent pair of symbols gives: the merged symbol's id and the merge's
// priority (the lowest priority merges first: a Hugging Face merge's rank, minus a llama2.c
// score).
struct BpeMerge {
  double priority = 0;
  int merged = -1;
};

// The merge of symbol ids (left, right), or none when the pair does not merge. Called once per
// adjacent pair at the start and once per new pair a merge creates; it must be deterministic.
using BpePairLookup = std::function<std::optional<BpeMerge>(int left, int right)>;

// Merges adjacent pairs of `symbols` until no pair merges and returns what is left: each step
// applies the pair with the lowest priority, the leftmost on ties. Symbols form a linked list and
// candidate pairs a heap (entries made stale by an earlier merge are skipped), so this is
// O(n log n) rather than a rescan of every pair after each merge.
std::vector<int> bpe_merge(std::vector<int> symbols, const BpePairLookup& lookup);

// "<0xXX>" (two hex digits in either case) -> the byte; -1 for any other piece.
int parse_byte_piece(std::string_view piece);

}  // namespace kvlab
