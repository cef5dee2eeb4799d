// The snapshot observer: latest state per layer and bank, the last N steps, and consistent copies
// while another thread emits (a UI reading while the model runs).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/snapshot.hpp"
#include "reference/engine.hpp"
#include "tests/reference/tiny_model.hpp"

using namespace kvlab;
using namespace kvlab::ref;

TEST(Snapshot, HoldsTheLatestStatePerLayerAndBankAndTheLastSteps) {
  const ModelConfig c = tiny_config();
  const auto w = init_random<double>(c, KvPlan::parse("lckv:2", 6), 2);
  EngineOptions o;
  o.schedule.mode = PrefillMode::fixed;
  o.schedule.passes = 3;
  Engine<double> e(w, o);
  SnapshotObserver snap(/*history=*/4);
  e.subscribe(&snap, kDefaultEvents | EventKind::layer_importance);
  EXPECT_EQ(snap.snapshot().step, -1);
  e.prefill({1, 2, 3, 4, 5, 6, 7, 8});
  for (int t = 0; t < 6; ++t) e.decode(t + 3);
  const Snapshot s = snap.snapshot();
  EXPECT_EQ(s.step, 6);
  ASSERT_EQ(s.layers.size(), 6u);
  for (int l = 0; l < 6; ++l) {
    EXPECT_EQ(s.layers[l].layer, l);
    EXPECT_EQ(s.layers[l].step, 6);
    EXPECT_EQ(s.layers[l].tokens_held, 14);
  }
  EXPECT_EQ(s.banks.size(), static_cast<std::size_t>(e.num_banks()));
  ASSERT_EQ(s.recent_steps.size(), 4u);  // the last 4 of 7 steps
  EXPECT_EQ(s.recent_steps.front().step, 3);
  EXPECT_EQ(s.recent_steps.back().step, 6);
  EXPECT_EQ(static_cast<int>(s.passes.size()), 3);  // one block, one target, 3 passes
  ASSERT_TRUE(s.importance.has_value());
  EXPECT_EQ(s.importance->cos_sim.size(), 6u);
  EXPECT_FALSE(s.squeeze.has_value());

  // A new prompt replaces the passes and restarts the step history.
  e.prefill({3, 4, 5});
  const Snapshot t = snap.snapshot();
  EXPECT_EQ(t.step, 0);
  EXPECT_EQ(t.recent_steps.size(), 1u);
  ASSERT_EQ(t.passes.size(), 3u);  // fixed mode iterates 3 passes, now over 3 tokens
  for (const auto& p : t.passes) EXPECT_EQ(p.tokens, 3);
  EXPECT_GT(t.version, s.version);
}

TEST(Snapshot, ReadersOnAnotherThreadSeeConsistentCopies) {
  const ModelConfig c = tiny_config();
  const auto w = init_random<float>(c, KvPlan::parse("cla:2", 6), 3);
  Engine<float> e(w);
  SnapshotObserver snap(8);
  e.add_observer(&snap);
  std::atomic<bool> done{false};
  std::thread reader([&] {
    std::uint64_t last = 0;
    int reads = 0;
    while (!done.load() || reads < 10) {
      const Snapshot s = snap.snapshot();
      EXPECT_GE(s.version, last);
      last = s.version;
      EXPECT_LE(s.recent_steps.size(), 8u);
      for (std::size_t i = 1; i < s.recent_steps.size(); ++i) {
        EXPECT_EQ(s.recent_steps[i].step, s.recent_steps[i - 1].step + 1);
      }
      ++reads;
    }
  });
  e.prefill({1, 2, 3, 4});
  for (int t = 0; t < 40; ++t) e.decode(t % 30 + 1);
  done = true;
  reader.join();
  EXPECT_EQ(snap.snapshot().step, 40);
}
