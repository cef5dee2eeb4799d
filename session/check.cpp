// kvlab check: tensor-by-tensor comparison of two dumps (docs/crosscheck.md).
#include "session/check.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "core/error.hpp"
#include "core/formats/safetensors.hpp"

namespace kvlab {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string shape_text(const std::vector<std::int64_t>& s) {
  std::string t = "[";
  for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

std::string meta(const SafetensorsFile& f, const std::string& key) {
  auto it = f.metadata().find(key);
  return it == f.metadata().end() ? "" : it->second;
}

// What each dimension of a tensor indexes, from its name (docs/crosscheck.md).
std::vector<std::string> axes_of(const std::string& n, std::size_t rank) {
  std::vector<std::string> axes;
  if (ends_with(n, ".attn.scores") || ends_with(n, ".attn.probs")) {
    axes = {"head", "row", "key"};
  } else if (ends_with(n, ".attn.q") || ends_with(n, ".attn.out")) {
    axes = {"row", "head", "dim"};
  } else if (ends_with(n, ".attn.k") || ends_with(n, ".attn.v") || ends_with(n, ".target_k") ||
             ends_with(n, ".target_v")) {
    axes = {"row", "kv_head", "dim"};
  } else if (ends_with(n, "_positions")) {
    axes = {"kv_head", "cell"};
  } else if (ends_with(n, ".logits")) {
    axes = {"row", "vocab"};
  } else if (ends_with(n, "tokens") || ends_with(n, ".token")) {
    axes = {"index"};
  } else {
    axes = {"row", "channel"};
  }
  if (axes.size() != rank) {  // a name outside the scheme: plain dimensions
    axes.clear();
    for (std::size_t i = 0; i < rank; ++i) axes.push_back("dim" + std::to_string(i));
  }
  return axes;
}

// The position of query row `row` of a tensor: a prefill row is its position; a decode step's
// one row is at prompt + step - 1; "prefill.tokenP" runs position P.
long row_position(const std::string& name, long row, long prompt) {
  if (name.rfind("decode", 0) == 0) return prompt + std::atol(name.c_str() + 6) - 1;
  if (name.rfind("prefill.token", 0) == 0) return std::atol(name.c_str() + 13);
  return row;
}

std::string describe(const SafetensorsFile& ref, const TensorCheck& t, long prompt) {
  std::string s;
  for (std::size_t i = 0; i < t.axes.size(); ++i) {
    s += (i ? ", " : "") + t.axes[i] + " " + std::to_string(t.first_bad[i]);
    if (t.axes[i] == "row") {
      s += " (position " + std::to_string(row_position(t.name, t.first_bad[i], prompt)) + ")";
    }
    if (t.axes[i] == "key") {
      // The key's position from the reference's read_positions (kv_head, cell) of the layer.
      const std::string base = t.name.substr(0, t.name.rfind('.'));
      const std::string rp = base + ".read_positions";
      if (ref.has(rp) && ref.shape(rp).size() == 2 && ref.shape(rp)[0] > 0) {
        const auto& shape = ref.shape(rp);
        const long group = std::max<long>(1, t.shape[0] / shape[0]);
        const long g = t.first_bad[0] / group, j = t.first_bad[i];
        if (g < shape[0] && j < shape[1]) {
          s += " (position " + std::to_string(ref.read_i64(rp)[g * shape[1] + j]) + ")";
        }
      }
    }
  }
  return s;
}

template <typename A>
void compare(TensorCheck& t, const std::vector<A>& r, const std::vector<A>& g, Tolerances tol) {
  bool first = true;
  for (std::size_t i = 0; i < r.size(); ++i) {
    const double a = static_cast<double>(r[i]), b = static_cast<double>(g[i]);
    bool bad = false;
    if constexpr (std::is_integral_v<A>) {
      bad = r[i] != g[i];
      t.max_abs = std::max(t.max_abs, std::abs(a - b));
    } else {
      t.ref_nan += std::isnan(a);
      t.got_nan += std::isnan(b);
      t.ref_inf += std::isinf(a);
      t.got_inf += std::isinf(b);
      if (std::isnan(a) || std::isnan(b)) {
        bad = std::isnan(a) != std::isnan(b);
      } else if (std::isinf(a) || std::isinf(b)) {
        bad = a != b;
        if (bad) t.max_abs = std::numeric_limits<double>::infinity();
      } else {
        const double d = std::abs(a - b);
        t.max_abs = std::max(t.max_abs, d);
        if (std::abs(a) > tol.atol && a != 0) t.max_rel = std::max(t.max_rel, d / std::abs(a));
        bad = d > tol.atol + tol.rtol * std::abs(a);
      }
    }
    if (!bad) continue;
    ++t.bad;
    if (first) {
      first = false;
      t.first_bad.assign(t.shape.size(), 0);
      std::int64_t rest = static_cast<std::int64_t>(i);
      for (std::size_t d = t.shape.size(); d-- > 0;) {
        t.first_bad[d] = rest % t.shape[d];
        rest /= t.shape[d];
      }
      t.ref_value = a;
      t.got_value = b;
    }
  }
}

}  // namespace

Tolerances default_tolerances(const std::string& ref_precision, const std::string& got_precision) {
  if (ref_precision == "f64" && got_precision == "f64") return {1e-9, 1e-12};
  return {1e-4, 1e-5};
}

int CheckReport::failed() const {
  return static_cast<int>(
      std::count_if(tensors.begin(), tensors.end(), [](const TensorCheck& t) { return !t.ok(); }));
}

const TensorCheck* CheckReport::first_failure() const {
  for (const auto& t : tensors) {
    if (!t.ok()) return &t;
  }
  return nullptr;
}

CheckReport check_dumps(const CheckOptions& o) {
  if (o.ref.empty()) fail("--ref", "(none)", "give the reference dump (kvlab dump --out)");
  if (o.got.empty()) fail("--got", "(none)", "give the candidate's tensors (safetensors)");
  if (o.rtol && !(*o.rtol >= 0 && *o.rtol < 1)) {
    fail("--rtol", std::to_string(*o.rtol), "must be in [0, 1)");
  }
  if (o.atol && !(*o.atol >= 0 && std::isfinite(*o.atol))) {
    fail("--atol", std::to_string(*o.atol), "must be a finite number >= 0");
  }
  const SafetensorsFile ref = open_safetensors(o.ref);
  const SafetensorsFile got = open_safetensors(o.got);

  CheckReport rep;
  rep.ref_path = o.ref;
  rep.got_path = o.got;
  // Metadata both files state must agree: the candidate computed the same thing.
  for (const char* key : {"format", "model_hash", "config", "map", "policy", "positions", "budget",
                          "squeeze", "schedule", "force_nodiag", "prompt_tokens", "decode_steps"}) {
    const std::string a = meta(ref, key), b = meta(got, key);
    if (!a.empty() && !b.empty() && a != b) {
      fail(o.got + ": __metadata__ " + key, "'" + b + "'",
           "must match the reference's '" + a + "' (" + o.ref +
               "): the files come from different runs");
    }
  }
  rep.ref_precision = meta(ref, "precision").empty() ? "?" : meta(ref, "precision");
  rep.got_precision = meta(got, "precision").empty() ? "?" : meta(got, "precision");
  rep.tol = default_tolerances(rep.ref_precision, rep.got_precision);
  if (o.rtol) rep.tol.rtol = *o.rtol;
  if (o.atol) rep.tol.atol = *o.atol;
  if (rep.ref_precision != rep.got_precision) {
    rep.notes.push_back("the reference was dumped in " + rep.ref_precision + ", the candidate in " +
                        rep.got_precision + ": compared at the looser tolerances");
  }

  auto selected = [&](const std::string& n) {
    return o.match.empty() || fnmatch(o.match.c_str(), n.c_str(), 0) == 0;
  };
  long prompt = 0;
  if (ref.has("inputs.tokens")) prompt = static_cast<long>(ref.info("inputs.tokens").numel());
  std::set<std::string> in_ref;
  for (const std::string& n : ref.names()) {
    if (!selected(n)) continue;
    in_ref.insert(n);
    if (!got.has(n)) {
      rep.only_in_ref.push_back(n);
      continue;
    }
    const TensorInfo& a = ref.info(n);
    const TensorInfo& b = got.info(n);
    if (a.shape != b.shape) {
      fail(o.got + ": tensor '" + n + "' shape", shape_text(b.shape),
           "must equal the reference's " + shape_text(a.shape));
    }
    const bool ai = !tensor_dtype_is_float(a.dtype), bi = !tensor_dtype_is_float(b.dtype);
    if (ai != bi) {
      fail(o.got + ": tensor '" + n + "' dtype", tensor_dtype_name(b.dtype),
           std::string("must be ") + (ai ? "I64 (integers)" : "floating (F64, F32, F16, BF16)") +
               " like the reference's " + tensor_dtype_name(a.dtype));
    }
    TensorCheck t;
    t.name = n;
    t.shape = a.shape;
    t.axes = axes_of(n, a.shape.size());
    t.integer = ai;
    t.numel = a.numel();
    if (ai) {
      compare(t, ref.read_i64(n), got.read_i64(n), rep.tol);
    } else {
      compare(t, ref.read_f64(n), got.read_f64(n), rep.tol);
    }
    if (!t.ok()) t.where = describe(ref, t, prompt);
    rep.tensors.push_back(std::move(t));
  }
  for (const std::string& n : got.names()) {
    if (selected(n) && !in_ref.count(n)) rep.only_in_got.push_back(n);
  }
  if (rep.tensors.empty()) {
    fail(o.match.empty() ? "--got" : "--match", o.match.empty() ? o.got : o.match,
         "selects no tensor present in both files (" + std::to_string(in_ref.size()) +
             " selected in the reference, " + std::to_string(got.names().size()) +
             " in the candidate)");
  }
  return rep;
}

}  // namespace kvlab
