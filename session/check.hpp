// `kvlab check` (docs/crosscheck.md): compares a candidate's tensors with a reference dump, tensor
// by tensor, and says where they first differ. A free function beside the Session: it needs no
// model, only two safetensors files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvlab {

struct CheckOptions {
  std::string ref;             // the reference dump (kvlab dump)
  std::string got;             // the candidate: the same names, any subset
  std::optional<double> rtol;  // default: by precision (default_tolerances)
  std::optional<double> atol;
  std::string match;  // a glob (fnmatch) over tensor names; empty: every tensor
};

// An element is out of tolerance when |got - ref| > atol + rtol·|ref| (numpy's allclose), when
// exactly one side is NaN, or when infinities differ (equal infinities agree: masked scores are
// -inf on both sides). Integer tensors (positions, token ids) must be equal.
struct Tolerances {
  double rtol = 0, atol = 0;
};
// f64 against f64: rtol 1e-9, atol 1e-12; any f32 side: rtol 1e-4, atol 1e-5.
Tolerances default_tolerances(const std::string& ref_precision, const std::string& got_precision);

struct TensorCheck {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<std::string> axes;  // what each dimension indexes (docs/crosscheck.md)
  bool integer = false;
  std::int64_t numel = 0, bad = 0;  // elements, and elements out of tolerance
  // Over finite pairs (max_abs is inf when infinities differ); rel = |d| / |ref| where |ref| >
  // atol.
  double max_abs = 0, max_rel = 0;
  std::int64_t ref_nan = 0, got_nan = 0, ref_inf = 0, got_inf = 0;
  std::vector<std::int64_t> first_bad;  // multi-index of the first bad element (C order)
  double ref_value = 0, got_value = 0;  // there
  std::string where;  // the first bad element in words: "head 0, row 3 (position 3), key 3 ..."
  bool ok() const { return bad == 0; }
};

struct CheckReport {
  std::string ref_path, got_path;
  std::string ref_precision, got_precision;  // from the metadata; "?" when absent
  Tolerances tol;
  std::vector<std::string> notes;        // e.g. the precisions differ
  std::vector<TensorCheck> tensors;      // compared, in the reference's (computation) order
  std::vector<std::string> only_in_ref;  // matching --match, absent from the candidate
  std::vector<std::string> only_in_got;
  int failed() const;  // tensors with an element out of tolerance
  const TensorCheck* first_failure() const;
};

// Throws kvlab::Error (exit 2 in the CLI) naming the file and field for: an unreadable or
// malformed file (a truncated one included), metadata of another model, plan, policy, budget,
// schedule, prompt or decode count, tensors of one name with different shapes or kinds (integer
// against floating), a --match that selects nothing, bad tolerances.
CheckReport check_dumps(const CheckOptions& options);

}  // namespace kvlab
