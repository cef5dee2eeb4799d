// SqueezeAttention's clustering against scikit-learn (Debian's python3-sklearn) on 25 random
// importance vectors. kvlab's 1-D k-means is exact (the global optimum); scikit-learn's Lloyd
// iterations from k-means++ seeds usually reach it too (about 96% of uniform random vectors; the
// rest stop at a worse local optimum). So: the same partition on at least 20 of 25, and where
// they differ scikit-learn's inertia must be the larger. Never skips: a missing sklearn fails.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "reference/squeeze.hpp"

TEST(KmeansOracle, SamePartitionAsScikitLearn) {
  const std::string py = KVLAB_PYTHON;
  ASSERT_FALSE(py.empty()) << "no python3 found at configure time";
  std::mt19937_64 rng(2024);
  std::uniform_real_distribution<double> u(0.5, 1.0);
  std::vector<std::vector<double>> vectors;
  for (int i = 0; i < 25; ++i) {
    const int L = 6 + static_cast<int>(rng() % 35);
    std::vector<double> v(L);
    for (auto& x : v) x = u(rng);
    vectors.push_back(v);
  }
  const auto dir = std::filesystem::temp_directory_path();
  const auto in = dir / ("kvlab_kmeans_in_" + std::to_string(::getpid()) + ".json");
  const auto out = dir / ("kvlab_kmeans_out_" + std::to_string(::getpid()) + ".json");
  std::ofstream(in) << nlohmann::json(vectors).dump();
  const std::string cmd = py + " " KVLAB_SOURCE_DIR "/tests/oracle/kmeans_sklearn.py " +
                          in.string() + " " + out.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << " (needs python3-sklearn: scripts/setup.sh)";
  const auto expected = nlohmann::json::parse(std::ifstream(out));
  ASSERT_EQ(expected.size(), vectors.size());
  auto inertia = [](const std::vector<double>& v, const std::vector<int>& labels) {
    double total = 0;
    for (int k = 1; k <= 3; ++k) {
      double sum = 0, n = 0;
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (labels[i] == k) sum += v[i], n += 1;
      }
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (labels[i] == k) total += (v[i] - sum / n) * (v[i] - sum / n);
      }
    }
    return total;
  };
  int same = 0;
  for (std::size_t i = 0; i < vectors.size(); ++i) {
    const auto mine = kvlab::ref::kmeans3_1d(vectors[i]);
    const auto theirs = expected[i]["labels"].get<std::vector<int>>();
    if (mine == theirs) {
      ++same;
      continue;
    }
    EXPECT_LT(inertia(vectors[i], mine), expected[i]["inertia"].get<double>() - 1e-12)
        << "vector " << i << ": a different partition that is not better than scikit-learn's";
  }
  EXPECT_GE(same, 20) << "identical partitions on only " << same << " of 25 vectors";
  std::filesystem::remove(in);
  std::filesystem::remove(out);
}
