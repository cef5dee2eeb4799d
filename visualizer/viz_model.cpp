#include "visualizer/viz_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace kvlab::viz {

PanelLayout panel_layout(float width, float height) {
  const float pad = 4;
  const float w = std::max(width, 400.0f), h = std::max(height, 300.0f);
  const float controls_w = std::clamp(w * 0.24f, 240.0f, 340.0f);
  const float text_h = std::clamp(h * 0.14f, 70.0f, 130.0f);
  const float top_h = (h - text_h) * 0.55f;
  const float x0 = controls_w + pad;
  const float right_w = w - x0;
  PanelLayout p;
  p.controls = {0, 0, controls_w, h};
  p.graph = {x0, 0, right_w * 0.40f - pad, top_h - pad};
  p.footprint = {x0 + right_w * 0.40f, 0, right_w * 0.60f, top_h - pad};
  const float mid_h = h - text_h - top_h - pad;
  p.lckv = {x0, top_h, right_w * 0.36f - pad, mid_h};
  p.attention = {x0 + right_w * 0.36f, top_h, right_w * 0.32f - pad, mid_h};
  p.squeeze = {x0 + right_w * 0.68f, top_h, right_w * 0.32f, mid_h};
  p.text = {x0, h - text_h, right_w * 0.42f - pad, text_h};
  p.cache = {x0 + right_w * 0.42f, h - text_h, right_w * 0.58f, text_h};
  return p;
}

Rect panel_rect(const PanelLayout& p, const std::string& name) {
  const std::pair<const char*, const Rect*> all[] = {
      {"controls", &p.controls}, {"graph", &p.graph},         {"footprint", &p.footprint},
      {"lckv", &p.lckv},         {"attention", &p.attention}, {"squeeze", &p.squeeze},
      {"text", &p.text},         {"cache", &p.cache}};
  for (const auto& [n, r] : all) {
    if (name == n) return *r;
  }
  return {0, 0, p.controls.w + p.graph.w + p.footprint.w, p.controls.h};
}

Footprint footprint(const Snapshot& s) {
  Footprint f;
  f.step = s.step;
  std::int64_t largest = 0;
  for (const KvStepEvent& e : s.layers) {
    FootprintColumn c;
    c.layer = e.layer;
    c.bank = e.bank;
    c.writes = e.writes;
    c.tokens_held = e.tokens_held;
    c.bytes_held = e.bytes_held;
    c.budget = e.budget;
    c.evicted = e.evicted;
    c.fill =
        e.budget > 0 ? std::clamp(static_cast<double>(e.tokens_held) / e.budget, 0.0, 1.0) : 0.0;
    f.standard_bytes += e.bytes_held;
    if (e.writes) {
      f.bytes_held += e.bytes_held;
      ++f.banks;
    }
    largest = std::max(largest, e.bytes_held);
    f.columns.push_back(c);
  }
  for (FootprintColumn& c : f.columns) {
    c.height = largest > 0 ? static_cast<double>(c.bytes_held) / static_cast<double>(largest) : 0;
  }
  if (f.standard_bytes > 0) {
    f.standard_height = 1;
    f.plan_height = static_cast<double>(f.bytes_held) / static_cast<double>(f.standard_bytes);
  }
  for (const StepSummaryEvent& e : s.recent_steps) {
    f.history.push_back(static_cast<float>(e.kv_bytes_held));
  }
  if (!s.recent_steps.empty()) {
    f.bytes_allocated = s.recent_steps.back().kv_bytes_allocated;
    f.tokens = s.recent_steps.back().position + 1;
  }
  return f;
}

GraphLayout graph_layout(int layers, const Rect& area) {
  GraphLayout g;
  if (layers <= 0) return g;
  const float gap = 0.25f;
  // Each layer gets area.h / layers; the node takes (1 - gap) of it, at most 28 px.
  const float slot = area.h / static_cast<float>(layers);
  g.node_h = std::min(slot * (1 - gap), 28.0f);
  g.node_w = std::clamp(area.w * 0.28f, 40.0f, 110.0f);
  // Room on the left for upward arcs, on the right for read arcs.
  const float cx = area.x + area.w * 0.38f;
  g.arc_right = area.right();
  for (int l = 0; l < layers; ++l) {
    const float cy = area.bottom() - slot * (static_cast<float>(l) + 0.5f);
    g.nodes.push_back({l, cx, cy});
  }
  return g;
}

int graph_hit(const GraphLayout& g, float x, float y) {
  for (const GraphNode& n : g.nodes) {
    if (std::abs(x - n.cx) <= g.node_w / 2 && std::abs(y - n.cy) <= g.node_h / 2) return n.layer;
  }
  return -1;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

std::string layer_summary(const PlanDiagram& d, const Snapshot& s, int layer) {
  if (layer < 0 || layer >= d.layers) return "";
  const PlanDiagramNode& n = d.nodes[layer];
  std::string out = "layer " + std::to_string(layer) + ": ";
  if (n.kv_layer) {
    std::vector<int> readers;
    for (const PlanDiagramNode& o : d.nodes) {
      if (o.reads == layer && o.layer != layer) readers.push_back(o.layer);
    }
    out += "KV layer (computes and stores its K/V)";
    if (!readers.empty()) {
      out += "; also read by";
      for (int r : readers) out += " " + std::to_string(r);
    }
  } else {
    out += std::string(n.upward ? "reads the K/V of layer above, " : "reads the K/V of layer ") +
           std::to_string(n.reads) + " (stores none)";
  }
  if (n.sliding) out += "; sliding window";
  if (n.cyclic_block >= 0) out += "; cyclic block " + std::to_string(n.cyclic_block);
  if (layer < static_cast<int>(s.layers.size())) {
    const KvStepEvent& e = s.layers[layer];
    out += "\nbank " + std::to_string(e.bank) + " holds " + std::to_string(e.tokens_held) + " of " +
           std::to_string(e.budget) + " tokens, " + human_bytes(static_cast<double>(e.bytes_held)) +
           (e.writes ? " (counted here)"
                     : " (shared: counted at layer " + std::to_string(e.bank) + ")");
  }
  return out;
}

namespace {
float log10_floor(double v) {
  return static_cast<float>(std::log10(std::max(v, 1e-12)));
}
}  // namespace

Convergence convergence(const std::vector<PrefillPassEvent>& passes) {
  Convergence c;
  bool any = false;
  for (const PrefillPassEvent& e : passes) {
    auto it = std::find_if(c.series.begin(), c.series.end(), [&](const ConvergenceSeries& s) {
      return s.block == e.block && s.target_layer == e.target_layer;
    });
    if (it == c.series.end()) {
      c.series.push_back({});
      it = c.series.end() - 1;
      it->block = e.block;
      it->target_layer = e.target_layer;
    }
    it->log_dk.push_back(log10_floor(e.rel_dk));
    it->log_dv.push_back(log10_floor(e.rel_dv));
    if (e.err_k >= 0) it->log_err_k.push_back(log10_floor(e.err_k));
    it->tokens_exact.push_back(e.tokens_exact);
    it->tokens = e.tokens;
    it->converged = e.converged;
    for (float v : {it->log_dk.back(), it->log_dv.back()}) {
      c.log_min = any ? std::min(c.log_min, v) : v;
      c.log_max = any ? std::max(c.log_max, v) : v;
      any = true;
    }
    if (!it->log_err_k.empty()) {
      c.log_min = std::min(c.log_min, it->log_err_k.back());
      c.log_max = std::max(c.log_max, it->log_err_k.back());
    }
    c.passes = std::max(c.passes, static_cast<int>(it->log_dk.size()));
  }
  if (any) {
    c.log_min = std::floor(c.log_min);
    c.log_max = std::max(std::ceil(c.log_max), c.log_min + 1);
  }
  return c;
}

SqueezeBars squeeze_bars(const Snapshot& s, const PlanDiagram& d) {
  SqueezeBars b;
  if (s.squeeze) {
    b.cos_sim = s.squeeze->layer_importance;
    b.clustered = true;
    b.a = s.squeeze->a;
    b.prompt_tokens = s.squeeze->prompt_tokens;
  } else if (s.importance) {
    b.cos_sim = s.importance->cos_sim;
    b.prompt_tokens = s.importance->prompt_tokens;
  }
  const int L = static_cast<int>(b.cos_sim.size());
  b.cluster.assign(L, 0);
  b.budget.assign(L, -1);
  if (b.clustered) {
    const SqueezeEvent& q = *s.squeeze;
    double sum[3] = {0, 0, 0};
    int count[3] = {0, 0, 0};
    for (std::size_t i = 0; i < q.bank_layer.size() && i < q.cluster.size(); ++i) {
      const int k = q.cluster[i];
      if (k >= 1 && k <= 3 && i < q.bank_importance.size()) {
        sum[k - 1] += q.bank_importance[i];
        ++count[k - 1];
      }
    }
    for (int k = 0; k < 3; ++k) b.centres[k] = count[k] ? sum[k] / count[k] : 0;
    for (int l = 0; l < L && l < d.layers; ++l) {
      const int bank = d.nodes[l].reads;
      for (std::size_t i = 0; i < q.bank_layer.size(); ++i) {
        if (q.bank_layer[i] != bank) continue;
        if (i < q.cluster.size()) b.cluster[l] = q.cluster[i];
        if (i < q.budget.size()) b.budget[l] = q.budget[i];
      }
    }
  }
  if (L > 0) {
    const auto [lo, hi] = std::minmax_element(b.cos_sim.begin(), b.cos_sim.end());
    // Bars start a little below the smallest value so that every layer shows a bar.
    const double span = std::max(*hi - *lo, 1e-6);
    b.lo = std::max(-1.0, *lo - 0.15 * span);
    b.hi = std::min(1.0, *hi + 0.05 * span);
    if (b.hi <= b.lo) b.hi = b.lo + 1e-6;
  }
  return b;
}

CacheMap cache_map(const Snapshot& s, const std::string& policy) {
  CacheMap m;
  if (s.recent_steps.empty()) return m;
  m.positions = s.recent_steps.back().position + 1;
  for (const auto& [bank, e] : s.banks) m.banks.push_back(bank);
  const int R = static_cast<int>(m.banks.size()), N = m.positions;
  m.state.assign(static_cast<std::size_t>(R) * N, CacheMap::none);
  m.mass.assign(static_cast<std::size_t>(R) * N, 0.0f);
  m.score.assign(static_cast<std::size_t>(R) * N, -1.0f);
  m.exact = R > 0;
  const bool h2o = policy.rfind("h2o", 0) == 0;
  for (int r = 0; r < R; ++r) {
    const int bank = m.banks[r];
    unsigned char* row = m.state.data() + static_cast<std::size_t>(r) * N;
    float* mass = m.mass.data() + static_cast<std::size_t>(r) * N;
    // The latest recorded attention over this bank: its writer's, else any reader's.
    const AttentionEvent* a = nullptr;
    for (const auto& [layer, e] : s.attention) {
      if (e.bank != bank || e.step != s.step) continue;
      if (!a || layer == bank) a = &e;
    }
    for (int p = 0; p < N; ++p) row[p] = CacheMap::evicted;
    if (a && a->kv_heads > 0 && a->cells > 0) {
      const int group = std::max(1, a->heads / a->kv_heads);
      for (int kh = 0; kh < a->kv_heads; ++kh) {
        for (int j = 0; j < a->cells; ++j) {
          const int p = a->key_pos[static_cast<std::size_t>(kh) * a->cells + j];
          if (p >= 0 && p < N) row[p] = CacheMap::kept;
        }
      }
      const float denom = static_cast<float>(a->heads) * static_cast<float>(std::max(1, a->rows));
      for (int h = 0; h < a->heads; ++h) {
        const int kh = h / group;
        for (int i = 0; i < a->rows; ++i) {
          const float* pr =
              a->probs.data() + (static_cast<std::size_t>(h) * a->rows + i) * a->cells;
          for (int j = 0; j < a->cells; ++j) {
            const int p = a->key_pos[static_cast<std::size_t>(kh) * a->cells + j];
            if (p >= 0 && p < N) mass[p] += pr[j] / denom;
          }
        }
      }
    } else {
      m.exact = false;
      const auto it = s.banks.find(bank);
      const std::int64_t held = it == s.banks.end() ? N : it->second.tokens_held;
      for (int p = std::max<std::int64_t>(0, N - held); p < N; ++p) row[p] = CacheMap::kept;
    }
    // A kept position older than an evicted one is a heavy hitter under H2O, else a sink.
    int last_evicted = -1;
    for (int p = 0; p < N; ++p) {
      if (row[p] == CacheMap::evicted) last_evicted = p;
    }
    for (int p = 0; p < last_evicted; ++p) {
      if (row[p] == CacheMap::kept) row[p] = h2o ? CacheMap::heavy : CacheMap::sink;
    }
    // H2O's scores of this bank's cells: the mean over its KV heads' latest events.
    float* score = m.score.data() + static_cast<std::size_t>(r) * N;
    std::vector<int> heads_seen(static_cast<std::size_t>(N), 0);
    for (const auto& [key, e] : s.h2o) {
      if (key.first != bank) continue;
      for (std::size_t j = 0; j < e.positions.size() && j < e.scores.size(); ++j) {
        const int p = e.positions[j];
        if (p < 0 || p >= N) continue;
        score[p] = (score[p] < 0 ? 0.0f : score[p]) + static_cast<float>(e.scores[j]);
        ++heads_seen[static_cast<std::size_t>(p)];
      }
    }
    for (int p = 0; p < N; ++p) {
      if (heads_seen[static_cast<std::size_t>(p)] > 0) {
        score[p] /= static_cast<float>(heads_seen[static_cast<std::size_t>(p)]);
        m.scored = true;
      }
    }
    for (int p = 0; p < N; ++p) m.max_mass = std::max(m.max_mass, mass[p]);
  }
  return m;
}

}  // namespace kvlab::viz
