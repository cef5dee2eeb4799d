// kvlab check: compares a candidate's tensors with a reference dump and says where they first
// differ (docs/crosscheck.md). Exit status: 0 all within tolerance, 1 some tensor out of
// tolerance, 2 bad input (unreadable files, other runs' metadata, shape mismatches).
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "session/check.hpp"

namespace kvlab::cli {
namespace {

struct CheckArgs {
  CheckOptions opt;
  bool json = false;
};

std::string index_text(const std::vector<std::int64_t>& i) {
  std::string s = "[";
  for (std::size_t k = 0; k < i.size(); ++k) s += (k ? ", " : "") + std::to_string(i[k]);
  return s + "]";
}

nlohmann::json to_json(const CheckReport& r) {
  nlohmann::json j;
  j["ref"] = r.ref_path;
  j["got"] = r.got_path;
  j["ref_precision"] = r.ref_precision;
  j["got_precision"] = r.got_precision;
  j["rtol"] = r.tol.rtol;
  j["atol"] = r.tol.atol;
  j["notes"] = r.notes;
  j["compared"] = r.tensors.size();
  j["failed"] = r.failed();
  j["ok"] = r.failed() == 0;
  j["only_in_ref"] = r.only_in_ref;
  j["only_in_got"] = r.only_in_got;
  // Infinities and NaN are not JSON numbers: those values are written as strings.
  auto number = [](double x) -> nlohmann::json {
    if (std::isfinite(x)) return x;
    return std::isnan(x) ? "nan" : (x > 0 ? "inf" : "-inf");
  };
  if (const TensorCheck* f = r.first_failure()) j["first_failure"] = f->name;
  nlohmann::json ts = nlohmann::json::array();
  for (const auto& t : r.tensors) {
    nlohmann::json e = {{"name", t.name},       {"shape", t.shape},     {"axes", t.axes},
                        {"integer", t.integer}, {"numel", t.numel},     {"bad", t.bad},
                        {"max_abs", t.max_abs}, {"max_rel", t.max_rel}, {"ref_nan", t.ref_nan},
                        {"got_nan", t.got_nan}, {"ref_inf", t.ref_inf}, {"got_inf", t.got_inf}};
    if (!t.ok()) {
      e["first_bad"] = t.first_bad;
      e["where"] = t.where;
      e["ref_value"] = number(t.ref_value);
      e["got_value"] = number(t.got_value);
    }
    ts.push_back(std::move(e));
  }
  j["tensors"] = std::move(ts);
  return j;
}

void print_list(const char* title, const std::vector<std::string>& names) {
  if (names.empty()) return;
  std::printf("%s (%zu):", title, names.size());
  const std::size_t shown = std::min<std::size_t>(names.size(), 8);
  for (std::size_t i = 0; i < shown; ++i) std::printf(" %s", names[i].c_str());
  std::printf("%s\n", names.size() > shown ? " ..." : "");
}

void run_check(const CheckArgs& a) {
  const CheckReport r = check_dumps(a.opt);
  set_exit_status(r.failed() ? 1 : 0);
  if (a.json) {
    std::printf("%s\n", to_json(r).dump(2).c_str());
    return;
  }
  std::printf("ref %s (%s), got %s (%s); rtol %g, atol %g\n", r.ref_path.c_str(),
              r.ref_precision.c_str(), r.got_path.c_str(), r.got_precision.c_str(), r.tol.rtol,
              r.tol.atol);
  for (const auto& n : r.notes) std::printf("note: %s\n", n.c_str());
  std::printf("compared %zu tensors: %zu within tolerance, %d out of tolerance\n", r.tensors.size(),
              r.tensors.size() - r.failed(), r.failed());
  if (const TensorCheck* f = r.first_failure()) {
    std::printf(
        "first difference (computation order): %s %s\n  at %s %s: ref %.17g, got %.17g\n"
        "  %lld of %lld elements out of tolerance; max abs %.3g, max rel %.3g\n",
        f->name.c_str(), index_text(f->shape).c_str(), index_text(f->first_bad).c_str(),
        f->where.c_str(), f->ref_value, f->got_value, static_cast<long long>(f->bad),
        static_cast<long long>(f->numel), f->max_abs, f->max_rel);
    std::printf("out of tolerance:\n");
    int shown = 0;
    for (const auto& t : r.tensors) {
      if (t.ok()) continue;
      if (++shown > 20) {
        std::printf("  ... (%d in all; --json lists every tensor)\n", r.failed());
        break;
      }
      std::printf("  %-44s %lld/%lld bad, max abs %.3g, max rel %.3g, first at %s\n",
                  t.name.c_str(), static_cast<long long>(t.bad), static_cast<long long>(t.numel),
                  t.max_abs, t.max_rel, index_text(t.first_bad).c_str());
    }
  } else {
    double worst = 0;
    std::string at;
    for (const auto& t : r.tensors) {
      if (t.max_rel > worst) worst = t.max_rel, at = t.name;
    }
    std::printf("all within tolerance; largest relative error %.3g (%s)\n", worst,
                at.empty() ? "-" : at.c_str());
  }
  for (const auto& t : r.tensors) {
    if (t.ref_nan || t.got_nan) {
      std::printf("NaN: %s has %lld in ref, %lld in got\n", t.name.c_str(),
                  static_cast<long long>(t.ref_nan), static_cast<long long>(t.got_nan));
    }
  }
  print_list("only in ref", r.only_in_ref);
  print_list("only in got", r.only_in_got);
}

}  // namespace

void add_check_command(CLI::App& app) {
  auto a = std::make_shared<CheckArgs>();
  auto* cmd = app.add_subcommand(
      "check", "Compare tensors with a reference dump; exit 1 when any is out of tolerance");
  cmd->add_option("--ref", a->opt.ref, "Reference dump (kvlab dump --out)")->required();
  cmd->add_option("--got", a->opt.got, "Candidate tensors (safetensors, the dump's names)")
      ->required();
  cmd->add_option("--rtol", a->opt.rtol, "Relative tolerance (default 1e-9 f64, 1e-4 with f32)");
  cmd->add_option("--atol", a->opt.atol, "Absolute tolerance (default 1e-12 f64, 1e-5 with f32)");
  cmd->add_option("--match", a->opt.match, "Only tensors whose name matches this glob");
  cmd->add_flag("--json", a->json, "Print the report as JSON (every tensor)");
  cmd->callback([a] { run_check(*a); });
}

}  // namespace kvlab::cli
