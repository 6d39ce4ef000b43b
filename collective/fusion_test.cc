// Fusion changes how many operations run, never the result: fused and
// unfused reductions of the same tensors are bitwise equal.
#include "collective/fusion.h"

#include "collective/group_for_test.h"
#include "gtest/gtest.h"
#include "kernels/random.h"

namespace nightshift::collective {
namespace {

class FusionTest : public testing::TestWithParam<std::tuple<TransportKind, int>> {};

TEST_P(FusionTest, FusedEqualsUnfusedBitwise) {
  const auto [kind, n] = GetParam();
  Rng sizes_rng({3});
  std::vector<int64_t> sizes;
  for (int i = 0; i < 60; ++i) sizes.push_back(1 + sizes_rng.Below(3000));
  sizes.push_back(70000);  // larger than the threshold: reduced in place
  sizes.push_back(5);
  // data[mode][rank][tensor]
  std::vector<std::vector<std::vector<float>>> data[2];
  for (auto& mode : data) {
    mode.resize(n);
    for (int r = 0; r < n; ++r) {
      Rng rng({9, static_cast<uint64_t>(r)});
      for (int64_t s : sizes) {
        mode[r].emplace_back(s);
        for (float& v : mode[r].back()) v = static_cast<float>(rng.Normal());
      }
    }
  }
  int64_t ops[2] = {0, 0};
  const int64_t thresholds[2] = {0, 64 << 10};
  for (int mode = 0; mode < 2; ++mode) {
    auto group = MakeTestGroup(kind, n);
    std::vector<int64_t> counts(n);
    auto statuses = group->Run([&](Communicator& comm) {
      TensorFusion fusion(thresholds[mode]);
      std::vector<absl::Span<float>> spans;
      for (auto& t : data[mode][comm.rank()]) spans.push_back(absl::MakeSpan(t));
      absl::Status s = fusion.AllReduce(comm, spans, ReduceOp::kAverage);
      counts[comm.rank()] = fusion.last_operation_count();
      return s;
    });
    for (const auto& s : statuses) ASSERT_TRUE(s.ok()) << s;
    ops[mode] = counts[0];
  }
  EXPECT_EQ(ops[0], static_cast<int64_t>(sizes.size()));
  EXPECT_LE(ops[1], ops[0] / 5) << "fusion did not pack";
  for (int r = 0; r < n; ++r) {
    for (size_t t = 0; t < sizes.size(); ++t) {
      ASSERT_EQ(data[0][r][t], data[1][r][t]) << "rank " << r << " tensor " << t;
    }
  }
  // And the result is the average: check one element against a reference.
  Rng r0({9, 0});
  double expected = 0;
  for (int r = 0; r < n; ++r) {
    Rng rng({9, static_cast<uint64_t>(r)});
    expected += rng.Normal();
  }
  EXPECT_NEAR(data[1][0][0][0], expected / n, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    TransportsAndSizes, FusionTest,
    testing::Combine(testing::Values(TransportKind::kLocal, TransportKind::kGrpc,
                                     TransportKind::kGrpcShm, TransportKind::kSocket),
                     testing::Values(3, 4)),
    [](const auto& info) {
      return TransportKindName(std::get<0>(info.param)) + "_" +
             std::to_string(std::get<1>(info.param)) + "ranks";
    });

}  // namespace
}  // namespace nightshift::collective
