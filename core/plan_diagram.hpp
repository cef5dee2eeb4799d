// The picture of a KV plan as data: who reads whom, layer by layer. One node per layer, the read
// edges between layers (the upward ones apart), the cyclic blocks and the KV layers, derived from
// a KvPlan (core/plan.hpp). No text: `kvlab plan` draws it (cli/cmd_plan.cpp) and prints it in
// --json; other renderers (a visualizer, a notebook) can take the same data.
#pragma once

#include <vector>

#include "core/plan.hpp"

namespace kvlab {

struct PlanDiagramNode {
  int layer = 0;
  int reads = 0;          // the KV layer (the bank) whose K/V this layer reads
  bool kv_layer = false;  // reads its own K/V (reads == layer)
  bool upward = false;    // reads a layer above (reads > layer)
  bool sliding = false;   // attends within the sliding window
  int cyclic_block = -1;  // index into PlanDiagram::cyclic_blocks, or -1

  bool operator==(const PlanDiagramNode&) const = default;
};

// Layer `reader` reads the K/V of layer `kv_layer` (always a different layer).
struct PlanDiagramEdge {
  int reader = 0;
  int kv_layer = 0;

  bool upward() const { return kv_layer > reader; }
  bool operator==(const PlanDiagramEdge&) const = default;
};

struct PlanDiagram {
  int layers = 0;
  std::vector<PlanDiagramNode> nodes;         // nodes[l] is layer l (bottom layer first)
  std::vector<PlanDiagramEdge> read_edges;    // one per layer that is not a KV layer, by reader
  std::vector<PlanDiagramEdge> upward_edges;  // the read edges to a layer above, by reader
  std::vector<CyclicBlock> cyclic_blocks;     // as KvPlan::cyclic_blocks(), ascending
  std::vector<int> kv_layers;                 // ascending
};

PlanDiagram plan_diagram(const KvPlan& plan);

}  // namespace kvlab
