#include "core/tokenizers/bpe_merge.hpp"

#include <cstddef>
#include <queue>

namespace kvlab {

std::vector<int> bpe_merge(std::vector<int> symbols, const BpePairLookup& lookup) {
  std::vector<int>& sym = symbols;
  const size_t n = sym.size();
  std::vector<size_t> next(n), prev(n);
  std::vector<bool> alive(n, true);
  for (size_t k = 0; k < n; ++k) {
    next[k] = k + 1;
    prev[k] = k - 1;  // wraps for k = 0; never read there
  }
  struct Cand {
    double priority;
    size_t left, right;
    int left_id, right_id, merged;
  };
  const auto worse = [](const Cand& a, const Cand& b) {
    return a.priority != b.priority ? a.priority > b.priority : a.left > b.left;
  };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
  const auto push = [&](size_t left, size_t right) {
    if (const std::optional<BpeMerge> m = lookup(sym[left], sym[right])) {
      heap.push({m->priority, left, right, sym[left], sym[right], m->merged});
    }
  };
  for (size_t k = 0; k + 1 < n; ++k) push(k, k + 1);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right || sym[c.left] != c.left_id ||
        sym[c.right] != c.right_id) {
      continue;
    }
    sym[c.left] = c.merged;
    alive[c.right] = false;
    next[c.left] = next[c.right];
    if (next[c.left] < n) prev[next[c.left]] = c.left;
    if (c.left > 0) push(prev[c.left], c.left);
    if (next[c.left] < n) push(c.left, next[c.left]);
  }
  std::vector<int> out;
  out.reserve(n);
  for (size_t k = 0; k < n; ++k) {
    if (alive[k]) out.push_back(sym[k]);
  }
  return out;
}

int parse_byte_piece(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = p[i];
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

}  // namespace kvlab
