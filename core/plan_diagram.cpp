#include "core/plan_diagram.hpp"

namespace kvlab {

PlanDiagram plan_diagram(const KvPlan& plan) {
  PlanDiagram d;
  d.layers = plan.layers();
  d.cyclic_blocks = plan.cyclic_blocks();
  d.kv_layers = plan.kv_layers();
  d.nodes.reserve(static_cast<size_t>(d.layers));
  for (int l = 0; l < d.layers; ++l) {
    PlanDiagramNode n;
    n.layer = l;
    n.reads = plan.kv_of(l);
    n.kv_layer = plan.is_kv_layer(l);
    n.upward = plan.is_upward(l);
    n.sliding = plan.sliding(l);
    n.cyclic_block = plan.cyclic_block_of(l);
    d.nodes.push_back(n);
    if (n.kv_layer) continue;
    const PlanDiagramEdge e{l, n.reads};
    d.read_edges.push_back(e);
    if (e.upward()) d.upward_edges.push_back(e);
  }
  return d;
}

}  // namespace kvlab
