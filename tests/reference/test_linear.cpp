// The projections (reference/linear.hpp) on awkward sizes: every output written, equal to a plain
// float64 sum within rounding, the same bits whatever the thread count, and linears() equal to
// one linear() per product.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "reference/linear.hpp"

using kvlab::ref::LinearOut;

namespace {

template <typename S>
std::vector<S> values(long n, int seed) {
  std::vector<S> v(n);
  std::uint32_t s = 2654435761u * static_cast<std::uint32_t>(seed + 1);
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<S>(static_cast<double>(s >> 8) / (1 << 24) - 0.5);
  }
  return v;
}

template <typename S>
std::vector<S> poisoned(long n) {
  return std::vector<S>(n, std::numeric_limits<S>::quiet_NaN());
}

template <typename S>
void expect_product(const std::vector<S>& out, const std::vector<S>& x, const std::vector<S>& w,
                    int T, int K, int N, const char* what) {
  const double tol = sizeof(S) == 4 ? 1e-5 : 1e-13;
  for (int t = 0; t < T; ++t) {
    for (int n = 0; n < N; ++n) {
      double ref = 0, mag = 0;
      for (int k = 0; k < K; ++k) {
        const double p = static_cast<double>(x[static_cast<long>(t) * K + k]) *
                         static_cast<double>(w[static_cast<long>(n) * K + k]);
        ref += p;
        mag += std::abs(p);
      }
      const S got = out[static_cast<long>(t) * N + n];
      ASSERT_TRUE(std::isfinite(got)) << what << " row " << t << " col " << n << " unwritten";
      ASSERT_NEAR(got, ref, tol * (mag + 1)) << what << " T=" << T << " K=" << K << " N=" << N;
    }
  }
}

template <typename S>
void check_sizes() {
  for (int T : {1, 2, 5}) {
    for (int K : {1, 3, 17, 64, 95, 129}) {
      for (int N : {1, 15, 16, 17, 33, 100, 1000}) {
        const auto x = values<S>(static_cast<long>(T) * K, K + N);
        const auto w = values<S>(static_cast<long>(N) * K, K * N);
        std::vector<S> first;
        for (int threads : {1, 2, 3, 5}) {
          auto out = poisoned<S>(static_cast<long>(T) * N);
          kvlab::ref::linear(out.data(), x.data(), w.data(), T, K, N, threads);
          expect_product(out, x, w, T, K, N, "linear");
          if (T == 1) {
            // Decode's outputs do not depend on how the rows were shared out.
            if (first.empty()) first = out;
            EXPECT_EQ(out, first) << "K=" << K << " N=" << N << " threads=" << threads;
          }
        }
      }
    }
  }
}

template <typename S>
void check_group() {
  // Q, K, V of a GQA layer at an awkward size, and the MLP's pair: one region, same bits.
  for (int T : {1, 3}) {
    for (int threads : {1, 2, 3}) {
      const int K = 200;
      const std::vector<int> Ns = {200, 40, 40, 7, 1000};
      const auto x = values<S>(static_cast<long>(T) * K, 1);
      std::vector<std::vector<S>> ws, outs, alone;
      std::vector<LinearOut<S>> group;
      for (std::size_t i = 0; i < Ns.size(); ++i) {
        ws.push_back(values<S>(static_cast<long>(Ns[i]) * K, 10 + static_cast<int>(i)));
        outs.push_back(poisoned<S>(static_cast<long>(T) * Ns[i]));
        alone.push_back(poisoned<S>(static_cast<long>(T) * Ns[i]));
      }
      for (std::size_t i = 0; i < Ns.size(); ++i) {
        group.push_back({outs[i].data(), ws[i].data(), Ns[i]});
        kvlab::ref::linear(alone[i].data(), x.data(), ws[i].data(), T, K, Ns[i], threads);
      }
      kvlab::ref::linears(group.data(), static_cast<int>(group.size()), x.data(), T, K, threads);
      for (std::size_t i = 0; i < Ns.size(); ++i) {
        expect_product(outs[i], x, ws[i], T, K, Ns[i], "linears");
        EXPECT_EQ(outs[i], alone[i]) << "product " << i << " T=" << T << " threads=" << threads;
      }
    }
  }
}

}  // namespace

TEST(Linear, AwkwardSizesFloat32) {
  check_sizes<float>();
}
TEST(Linear, AwkwardSizesFloat64) {
  check_sizes<double>();
}
TEST(Linear, GroupEqualsOneByOneFloat32) {
  check_group<float>();
}
TEST(Linear, GroupEqualsOneByOneFloat64) {
  check_group<double>();
}

TEST(Linear, EmptyProductsWriteNothing) {
  std::vector<float> x(4, 1.0f), out(3, 7.0f);
  kvlab::ref::linear(out.data(), x.data(), static_cast<const float*>(nullptr), 1, 4, 0, 2);
  EXPECT_EQ(out, std::vector<float>(3, 7.0f));
}
