// HfTokenizer: reading tokenizer.json (the model's vocab and merges, added tokens, normalizers,
// pre-tokenizers, decoders, the BOS/EOS choice), each part checked, into HfTokenizer::State.
#include "core/tokenizers/hf.hpp"

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "core/tokenizers/hf_pretokenizer.hpp"
#include "core/tokenizers/hf_state.hpp"
#include "core/tokenizers/unicode.hpp"

namespace kvlab {
namespace {

using nlohmann::json;
using State = HfTokenizer::State;
using hf::kGpt2Pattern;
using hf::kLlama3Pattern;
using hf::Pattern;
using unicode::kInvalid;
using unicode::utf8_next;

std::string short_dump(const json& j) {
  std::string s = j.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

std::string get_string(const State& st, const json& obj, const char* key, const std::string& where,
                       const std::string& fallback, bool required) {
  if (!obj.contains(key) || obj[key].is_null()) {
    if (required) st.bad(where + "." + key, "absent", "must be a string");
    return fallback;
  }
  if (!obj[key].is_string()) st.bad(where + "." + key, short_dump(obj[key]), "must be a string");
  return obj[key].get<std::string>();
}

bool get_bool(const State& st, const json& obj, const char* key, const std::string& where,
              bool fallback) {
  if (!obj.contains(key) || obj[key].is_null()) return fallback;
  if (!obj[key].is_boolean()) st.bad(where + "." + key, short_dump(obj[key]), "must be a boolean");
  return obj[key].get<bool>();
}

std::string type_of(const State& st, const json& obj, const std::string& where) {
  if (!obj.is_object()) st.bad(where, short_dump(obj), "must be an object with a \"type\"");
  return get_string(st, obj, "type", where, "", true);
}

// "String" patterns only (a Regex pattern in a normalizer or decoder is not supported).
std::string string_pattern(const State& st, const json& obj, const std::string& where) {
  if (!obj.contains("pattern") || !obj["pattern"].is_object() ||
      !obj["pattern"].contains("String") || !obj["pattern"]["String"].is_string()) {
    st.bad(where + ".pattern", obj.contains("pattern") ? short_dump(obj["pattern"]) : "absent",
           "only {\"String\": \"...\"} patterns are supported");
  }
  return obj["pattern"]["String"].get<std::string>();
}

void parse_normalizer(State& st, const json& n, const std::string& where) {
  if (n.is_null()) return;
  const std::string type = type_of(st, n, where);
  if (type == "Sequence") {
    if (!n.contains("normalizers") || !n["normalizers"].is_array()) {
      st.bad(where + ".normalizers", "absent", "a Sequence needs an array of normalizers");
    }
    for (size_t i = 0; i < n["normalizers"].size(); ++i) {
      parse_normalizer(st, n["normalizers"][i], where + ".normalizers[" + std::to_string(i) + "]");
    }
  } else if (type == "Prepend") {
    st.normalizers.push_back(
        {State::Norm::Prepend, get_string(st, n, "prepend", where, "", true), ""});
  } else if (type == "Replace") {
    const std::string from = string_pattern(st, n, where);
    if (from.empty()) st.bad(where + ".pattern", "\"\"", "must not be empty");
    st.normalizers.push_back(
        {State::Norm::Replace, from, get_string(st, n, "content", where, "", true)});
  } else if (type == "NFC" || type == "NFKC") {
    // Identity (documented approximation): exact for text already in that form.
  } else {
    st.bad(where + ".type", "\"" + type + "\"",
           "supported normalizers are Sequence, Prepend, Replace, NFC, NFKC");
  }
}

void parse_pre_tokenizer(State& st, const json& p, const std::string& where) {
  if (p.is_null()) return;
  const std::string type = type_of(st, p, where);
  State::Pre pre{};
  if (type == "Sequence") {
    if (!p.contains("pretokenizers") || !p["pretokenizers"].is_array()) {
      st.bad(where + ".pretokenizers", "absent", "a Sequence needs an array of pre-tokenizers");
    }
    for (size_t i = 0; i < p["pretokenizers"].size(); ++i) {
      parse_pre_tokenizer(st, p["pretokenizers"][i],
                          where + ".pretokenizers[" + std::to_string(i) + "]");
    }
    return;
  } else if (type == "ByteLevel") {
    pre.kind = State::Pre::ByteLevel;
    pre.add_prefix_space = get_bool(st, p, "add_prefix_space", where, true);
    pre.use_regex = get_bool(st, p, "use_regex", where, true);
    st.byte_level = true;
  } else if (type == "Metaspace") {
    pre.kind = State::Pre::Metaspace;
    pre.replacement = get_string(st, p, "replacement", where, "\xE2\x96\x81", false);
    uint32_t cp = 0;
    if (pre.replacement.empty() || utf8_next(pre.replacement, 0, &cp) != pre.replacement.size() ||
        cp == kInvalid) {
      st.bad(where + ".replacement", "\"" + pre.replacement + "\"", "must be one character");
    }
    pre.split = get_bool(st, p, "split", where, true);
    std::string scheme = get_string(st, p, "prepend_scheme", where, "", false);
    if (scheme.empty())
      scheme = get_bool(st, p, "add_prefix_space", where, true) ? "always" : "never";
    if (scheme == "always") {
      pre.scheme = State::Pre::Always;
    } else if (scheme == "first") {
      pre.scheme = State::Pre::First;
    } else if (scheme == "never") {
      pre.scheme = State::Pre::Never;
    } else {
      st.bad(where + ".prepend_scheme", "\"" + scheme + "\"", "must be always, first or never");
    }
  } else if (type == "Split") {
    pre.kind = State::Pre::Split;
    std::string pattern;
    if (p.contains("pattern") && p["pattern"].is_object() && p["pattern"].contains("Regex") &&
        p["pattern"]["Regex"].is_string()) {
      pattern = p["pattern"]["Regex"].get<std::string>();
    }
    if (pattern == kGpt2Pattern) {
      pre.pattern = Pattern::Gpt2;
    } else if (pattern == kLlama3Pattern) {
      pre.pattern = Pattern::Llama3;
    } else {
      st.bad(where + ".pattern", p.contains("pattern") ? short_dump(p["pattern"]) : "absent",
             "only the GPT-2 and Llama-3 pre-tokenizer regexes are supported");
    }
    const std::string behavior = get_string(st, p, "behavior", where, "Isolated", false);
    if (behavior != "Isolated") {
      st.bad(where + ".behavior", "\"" + behavior + "\"", "only Isolated is supported");
    }
    if (get_bool(st, p, "invert", where, false)) {
      st.bad(where + ".invert", "true", "only invert: false is supported");
    }
  } else if (type == "Digits") {
    pre.kind = State::Pre::Digits;
    pre.individual_digits = get_bool(st, p, "individual_digits", where, false);
  } else {
    st.bad(where + ".type", "\"" + type + "\"",
           "supported pre-tokenizers are Sequence, ByteLevel, Metaspace, Split, Digits");
  }
  st.pre_tokenizers.push_back(pre);
}

void parse_decoder(State& st, const json& d, const std::string& where) {
  if (d.is_null()) return;
  const std::string type = type_of(st, d, where);
  if (type == "Sequence") {
    if (!d.contains("decoders") || !d["decoders"].is_array()) {
      st.bad(where + ".decoders", "absent", "a Sequence needs an array of decoders");
    }
    for (size_t i = 0; i < d["decoders"].size(); ++i) {
      parse_decoder(st, d["decoders"][i], where + ".decoders[" + std::to_string(i) + "]");
    }
  } else if (type == "ByteLevel") {
    st.decoders.push_back({State::Dec::ByteLevel, "", "", 0});
    st.byte_level = true;
  } else if (type == "Replace") {
    st.decoders.push_back({State::Dec::Replace, string_pattern(st, d, where),
                           get_string(st, d, "content", where, "", true), 0});
  } else if (type == "ByteFallback") {
    st.decoders.push_back({State::Dec::ByteFallback, "", "", 0});
  } else if (type == "Fuse") {
    // Decoding concatenates the pieces anyway.
  } else if (type == "Strip") {
    const std::string content = get_string(st, d, "content", where, " ", false);
    const json start = d.value("start", json(0));
    if (!start.is_number_integer() || start.get<long long>() < 0 || start.get<long long>() > 16) {
      st.bad(where + ".start", short_dump(start), "must be an integer in [0, 16]");
    }
    st.decoders.push_back({State::Dec::Strip, content, "", start.get<int>()});
  } else if (type == "Metaspace") {
    std::string scheme = get_string(st, d, "prepend_scheme", where, "", false);
    if (scheme.empty())
      scheme = get_bool(st, d, "add_prefix_space", where, true) ? "always" : "never";
    st.decoders.push_back({State::Dec::Metaspace,
                           get_string(st, d, "replacement", where, "\xE2\x96\x81", false), "",
                           scheme == "never" ? 0 : 1});
  } else {
    st.bad(where + ".type", "\"" + type + "\"",
           "supported decoders are Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, "
           "Strip");
  }
}

int id_of(const State& st, const std::string& token, const std::string& where) {
  const auto it = st.vocab.find(token);
  if (it == st.vocab.end()) st.bad(where, "\"" + token + "\"", "is not in model.vocab");
  return it->second;
}

void parse_model(State& st, const json& m) {
  const std::string type = type_of(st, m, "model");
  if (type != "BPE") {
    st.bad("model.type", "\"" + type + "\"",
           "only BPE tokenizers are supported (not WordPiece, Unigram or WordLevel)");
  }
  if (!m.contains("vocab") || !m["vocab"].is_object()) {
    st.bad("model.vocab", m.contains("vocab") ? short_dump(m["vocab"]) : "absent",
           "must be an object {token: id}");
  }
  int max_id = -1;
  for (const auto& [token, id] : m["vocab"].items()) {
    if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() >= (1 << 24)) {
      st.bad("model.vocab[\"" + token + "\"]", short_dump(id), "must be an integer in [0, 2^24)");
    }
    st.vocab[token] = id.get<int>();
    max_id = std::max(max_id, id.get<int>());
  }
  st.tokens.assign(static_cast<size_t>(max_id + 1), std::string());
  std::vector<bool> seen(st.tokens.size(), false);
  for (const auto& [token, id] : st.vocab) {
    if (seen[static_cast<size_t>(id)]) {
      st.bad("model.vocab", "id " + std::to_string(id), "is given to two tokens");
    }
    seen[static_cast<size_t>(id)] = true;
    st.tokens[static_cast<size_t>(id)] = token;
  }
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(k) && !m[k].is_null() &&
        !(m[k].is_string() && m[k].get<std::string>().empty())) {
      st.bad(std::string("model.") + k, short_dump(m[k]), "only null is supported");
    }
  }
  if (m.contains("dropout") && !m["dropout"].is_null()) {
    st.bad("model.dropout", short_dump(m["dropout"]), "only null is supported (deterministic)");
  }
  st.byte_fallback = get_bool(st, m, "byte_fallback", "model", false);
  st.fuse_unk = get_bool(st, m, "fuse_unk", "model", false);
  st.ignore_merges = get_bool(st, m, "ignore_merges", "model", false);
  const std::string unk = get_string(st, m, "unk_token", "model", "", false);
  if (!unk.empty()) st.unk_id = id_of(st, unk, "model.unk_token");
  const json merges = m.value("merges", json::array());
  if (!merges.is_array()) st.bad("model.merges", short_dump(merges), "must be an array");
  for (size_t r = 0; r < merges.size(); ++r) {
    const json& e = merges[r];
    const std::string where = "model.merges[" + std::to_string(r) + "]";
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 == s.size() ||
          s.find(' ', sp + 1) != std::string::npos) {
        st.bad(where, short_dump(e), "a merge string must be two tokens separated by one space");
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      st.bad(where, short_dump(e), "must be \"a b\" or [\"a\", \"b\"]");
    }
    const int ia = id_of(st, a, where), ib = id_of(st, b, where);
    const int merged = id_of(st, a + b, where + " (merged)");
    st.merges.emplace(State::key(ia, ib), std::make_pair(static_cast<int>(r), merged));
  }
}

void parse_added(State& st, const json& added) {
  if (added.is_null()) return;
  if (!added.is_array()) st.bad("added_tokens", short_dump(added), "must be an array");
  for (size_t i = 0; i < added.size(); ++i) {
    const json& a = added[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    if (!a.is_object()) st.bad(where, short_dump(a), "must be an object");
    State::Added t;
    t.content = get_string(st, a, "content", where, "", true);
    if (t.content.empty()) st.bad(where + ".content", "\"\"", "must not be empty");
    if (!a.contains("id") || !a["id"].is_number_integer() || a["id"].get<long long>() < 0 ||
        a["id"].get<long long>() >= (1 << 24)) {
      st.bad(where + ".id", a.contains("id") ? short_dump(a["id"]) : "absent",
             "must be an integer in [0, 2^24)");
    }
    t.id = a["id"].get<int>();
    t.special = get_bool(st, a, "special", where, false);
    t.normalized = get_bool(st, a, "normalized", where, !t.special);
    t.lstrip = get_bool(st, a, "lstrip", where, false);
    t.rstrip = get_bool(st, a, "rstrip", where, false);
    const size_t id = static_cast<size_t>(t.id);
    if (id >= st.tokens.size()) st.tokens.resize(id + 1);
    if (!st.tokens[id].empty() && st.tokens[id] != t.content) {
      st.bad(where + ".id", std::to_string(t.id),
             "is already the id of \"" + st.tokens[id] + "\" in model.vocab");
    }
    st.tokens[id] = t.content;
    st.added_by_id[t.id] = st.added.size();
    st.added.push_back(t);
  }
}

int find_added(const State& st, const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    for (const State::Added& a : st.added) {
      if (a.content == n) return a.id;
    }
  }
  return -1;
}

void choose_bos_eos(State& st, const json& post) {
  if (post.is_object() && post.value("type", "") == "TemplateProcessing" &&
      post.contains("single") && post["single"].is_array() && !post["single"].empty()) {
    const json& first = post["single"][0];
    if (first.is_object() && first.contains("SpecialToken") && first["SpecialToken"].is_object() &&
        first["SpecialToken"].contains("id") && first["SpecialToken"]["id"].is_string()) {
      const std::string name = first["SpecialToken"]["id"].get<std::string>();
      const auto it = st.vocab.find(name);
      if (it != st.vocab.end()) st.bos = it->second;
      if (st.bos < 0) st.bos = find_added(st, {name});
    }
  }
  if (st.bos < 0) st.bos = find_added(st, {"<s>", "<|begin_of_text|>", "<bos>", "<|endoftext|>"});
  st.eos = find_added(st, {"</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>"});
}

}  // namespace

HfTokenizer HfTokenizer::from_json_text(std::string_view text, const std::string& source) {
  auto st = std::make_shared<State>();
  st->source = source;
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail(source, "(contents)", "is not valid JSON");
  if (!j.is_object()) st->bad("top level", short_dump(j), "must be a JSON object");
  if (!j.contains("model")) st->bad("model", "absent", "tokenizer.json needs a \"model\" object");
  parse_model(*st, j["model"]);
  parse_added(*st, j.value("added_tokens", json()));
  parse_normalizer(*st, j.value("normalizer", json()), "normalizer");
  parse_pre_tokenizer(*st, j.value("pre_tokenizer", json()), "pre_tokenizer");
  parse_decoder(*st, j.value("decoder", json()), "decoder");
  choose_bos_eos(*st, j.value("post_processor", json()));
  HfTokenizer t;
  t.s_ = std::move(st);
  return t;
}

HfTokenizer HfTokenizer::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("--tokenizer", path, "cannot open the file for reading");
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json_text(ss.str(), path);
}

}  // namespace kvlab
