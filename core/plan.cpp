#include "core/plan.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "core/error.hpp"

namespace kvlab {
namespace {

std::string join_ints(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s;
}

// Parses a non-negative decimal integer argument of a generator ("cla:3" -> 3).
int parse_arg(const std::string& spec, const std::string& arg, int lo, int hi, const char* what) {
  if (arg.empty() || arg.size() > 9 ||
      !std::all_of(arg.begin(), arg.end(), [](unsigned char c) { return std::isdigit(c); })) {
    fail("plan", spec, std::string(what) + " must be an integer in [" + std::to_string(lo) + ", " +
                           std::to_string(hi) + "]");
  }
  int v = std::atoi(arg.c_str());
  if (v < lo || v > hi) {
    fail("plan", spec, std::string(what) + " = " + arg + " must be in [" + std::to_string(lo) +
                           ", " + std::to_string(hi) + "] for this model");
  }
  return v;
}

// Group [first, last] -> target according to "bottom" | "top" | "middle".
int group_target(const std::string& where, int first, int last) {
  if (where == "bottom") return first;
  if (where == "top") return last;
  return (first + last) / 2;  // middle = floor((first + last) / 2)
}

void assign_group(std::vector<int>& kv, int first, int last, const std::string& where) {
  const int t = group_target(where, first, last);
  for (int l = first; l <= last; ++l) kv[l] = t;
}

KvPlan parse_text_form(const std::string& spec, int layers) {
  std::vector<int> kv;
  std::vector<bool> sliding;
  size_t pos = 0;
  while (true) {
    size_t end = spec.find('_', pos);
    std::string tok = spec.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    bool s = !tok.empty() && tok.back() == 's';
    if (s) tok.pop_back();
    if (tok.empty() || tok.size() > 6 ||
        !std::all_of(tok.begin(), tok.end(), [](unsigned char c) { return std::isdigit(c); })) {
      fail("plan", spec,
           "entry " + std::to_string(kv.size()) +
               " is not a layer index; the text form is kv(0)_kv(1)_... with an optional 's' "
               "after sliding layers, or a generator: " +
               [] {
                 std::string n;
                 for (const auto& g : plan_generator_names()) n += (n.empty() ? "" : ", ") + g;
                 return n;
               }());
    }
    kv.push_back(std::atoi(tok.c_str()));
    sliding.push_back(s);
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  if (static_cast<int>(kv.size()) != layers) {
    fail("plan", spec,
         "has " + std::to_string(kv.size()) + " entries but the model has " +
             std::to_string(layers) + " layers");
  }
  return KvPlan(std::move(kv), std::move(sliding));
}

}  // namespace

const std::vector<std::string>& plan_generator_names() {
  static const std::vector<std::string> names = {
      "standard",          "cla:K",           "mlkv:M",          "lckv:W",
      "pizza-bottom:N",    "pizza-top:N",     "pizza-middle:N",  "sandwich-bottom:N",
      "sandwich-top:N",    "sandwich-middle:N", "lasagna-bottom:N", "lasagna-top:N",
      "lasagna-middle:N",  "yoco"};
  return names;
}

KvPlan::KvPlan(std::vector<int> kv, std::vector<bool> sliding)
    : kv_(std::move(kv)), sliding_(std::move(sliding)) {
  const int n = static_cast<int>(kv_.size());
  if (n == 0) fail("plan", "(empty)", "a plan needs at least one layer");
  if (sliding_.empty()) sliding_.assign(n, false);
  if (static_cast<int>(sliding_.size()) != n) {
    fail("plan.sliding", std::to_string(sliding_.size()) + " flags",
         "need one per layer (" + std::to_string(n) + ")");
  }
  for (int l = 0; l < n; ++l) {
    if (kv_[l] < 0 || kv_[l] >= n) {
      fail("plan: kv(" + std::to_string(l) + ")", std::to_string(kv_[l]),
           "must be a layer index in [0, " + std::to_string(n - 1) + "]");
    }
  }
  for (int l = 0; l < n; ++l) {
    const int t = kv_[l];
    if (kv_[t] != t) {
      fail("plan: kv(" + std::to_string(l) + ")", std::to_string(t),
           "layer " + std::to_string(t) + " is not a KV layer (it reads layer " +
               std::to_string(kv_[t]) + "); every target must read itself. KV layers: " +
               join_ints(kv_layers()));
    }
  }
}

KvPlan KvPlan::parse(const std::string& spec, int layers) {
  if (layers < 1 || layers > 1024) {
    fail("layers", std::to_string(layers), "must be in [1, 1024]");
  }
  const int L = layers;
  std::vector<int> kv(L);
  std::vector<bool> sliding(L, false);
  const auto colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  auto no_arg = [&] {
    if (colon != std::string::npos) fail("plan", spec, "'" + name + "' takes no argument");
  };

  if (!spec.empty() && std::isdigit(static_cast<unsigned char>(spec[0]))) {
    return parse_text_form(spec, L);
  }
  if (name == "standard") {
    no_arg();
    for (int l = 0; l < L; ++l) kv[l] = l;
  } else if (name == "cla") {
    const int k = parse_arg(spec, arg, 1, L, "K (layers per group)");
    for (int l = 0; l < L; ++l) kv[l] = (l / k) * k;
  } else if (name == "mlkv") {
    const int m = parse_arg(spec, arg, 1, L, "M (KV layers)");
    std::vector<bool> is_kv(L, false);
    is_kv[0] = true;
    for (int i = 0; i <= m - 2; ++i) is_kv[static_cast<long long>(i + 1) * L / m] = true;
    int last = 0;
    for (int l = 0; l < L; ++l) {
      if (is_kv[l]) last = l;
      kv[l] = last;
    }
  } else if (name == "lckv") {
    const int w = parse_arg(spec, arg, 0, L - 1, "W (warm-up layers)");
    const int bottom = (w + 1) / 2, top = w / 2;
    const int target = L - top - 1;
    for (int l = 0; l < L; ++l) kv[l] = (l < bottom || l >= L - top) ? l : target;
  } else if (name.rfind("pizza-", 0) == 0 || name.rfind("sandwich-", 0) == 0 ||
             name.rfind("lasagna-", 0) == 0) {
    const auto dash = name.find('-');
    const std::string family = name.substr(0, dash), where = name.substr(dash + 1);
    if (where != "bottom" && where != "top" && where != "middle") {
      fail("plan", spec, "the target of a " + family + " plan is bottom, top or middle");
    }
    const int n = parse_arg(spec, arg, 1, L, "N (KV layers)");
    for (int l = 0; l < L; ++l) kv[l] = l;
    if (family == "pizza") {
      assign_group(kv, n - 1, L - 1, where);
    } else if (family == "sandwich") {
      const int bottom = n / 2, top = (n - 1) / 2;  // ceil((N-1)/2), floor((N-1)/2)
      assign_group(kv, bottom, L - top - 1, where);
    } else {
      // L layers in N consecutive groups; the first L mod N groups have one extra layer.
      int first = 0;
      for (int g = 0; g < n; ++g) {
        const int size = L / n + (g < L % n ? 1 : 0);
        assign_group(kv, first, first + size - 1, where);
        first += size;
      }
    }
  } else if (name == "yoco") {
    no_arg();
    if (L < 2) fail("plan", spec, "yoco needs at least 2 layers");
    const int half = L / 2;
    for (int l = 0; l < L; ++l) {
      kv[l] = l < half ? l : half;
      sliding[l] = l < half;
    }
  } else {
    std::string names;
    for (const auto& g : plan_generator_names()) names += (names.empty() ? "" : ", ") + g;
    fail("plan", spec, "unknown generator; use one of " + names +
                           ", or a text form such as 0_0_2_2 (kv(l) per layer, 's' = sliding)");
  }
  return KvPlan(std::move(kv), std::move(sliding));
}

std::string KvPlan::to_string() const {
  std::string s;
  for (int l = 0; l < layers(); ++l) {
    if (l) s += '_';
    s += std::to_string(kv_[l]);
    if (sliding_[l]) s += 's';
  }
  return s;
}

std::vector<int> KvPlan::kv_layers() const {
  std::vector<int> out;
  for (int l = 0; l < layers(); ++l) {
    if (kv_[l] == l) out.push_back(l);
  }
  return out;
}

int KvPlan::num_kv_layers() const { return static_cast<int>(kv_layers().size()); }

std::vector<int> KvPlan::readers(int kv_layer) const {
  std::vector<int> out;
  for (int l = 0; l < layers(); ++l) {
    if (kv_[l] == kv_layer) out.push_back(l);
  }
  return out;
}

std::vector<std::pair<int, int>> KvPlan::upward_edges() const {
  std::vector<std::pair<int, int>> out;
  for (int l = 0; l < layers(); ++l) {
    if (kv_[l] > l) out.emplace_back(l, kv_[l]);
  }
  return out;
}

bool KvPlan::has_upward() const { return !upward_edges().empty(); }

std::vector<CyclicBlock> KvPlan::cyclic_blocks() const {
  std::vector<CyclicBlock> blocks;
  int i = 0;
  while (i < layers()) {
    if (kv_[i] <= i) {
      ++i;
      continue;
    }
    int top = kv_[i];
    while (true) {
      const int next = *std::max_element(kv_.begin() + i, kv_.begin() + top + 1);
      if (next == top) break;
      top = next;
    }
    blocks.push_back({i, top});
    i = top + 1;
  }
  return blocks;
}

int KvPlan::cyclic_block_of(int layer) const {
  const auto blocks = cyclic_blocks();
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (layer >= blocks[b].first && layer <= blocks[b].last) return static_cast<int>(b);
  }
  return -1;
}

bool KvPlan::bank_is_sliding(int kv_layer) const {
  for (int r : readers(kv_layer)) {
    if (!sliding_[r]) return false;
  }
  return true;
}

PassSchedule pass_schedule(int tokens, int m, int b) {
  if (m < 0) fail("m (passes without gradient)", std::to_string(m), "must be >= 0");
  if (b < 0) fail("b (passes with gradient)", std::to_string(b), "must be >= 0");
  if (m + b < 1) fail("m + b", std::to_string(m + b), "at least one pass is needed");
  PassSchedule s;
  s.m = m;
  s.b = b;
  if (tokens <= m + b) {
    s.token_by_token = true;
    s.passes = tokens;
  } else {
    s.passes = m + b;
  }
  return s;
}

double prefill_layer_passes(const KvPlan& plan, int tokens, int m, int b) {
  const PassSchedule s = pass_schedule(tokens, m, b);
  const int per_block = s.token_by_token ? 1 : s.passes;
  double total = 0;
  for (int l = 0; l < plan.layers(); ++l) total += plan.cyclic_block_of(l) >= 0 ? per_block : 1;
  return total;
}

}  // namespace kvlab
