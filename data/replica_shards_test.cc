// Replica shards: a partition, IID or skewed by class as alpha says, and
// a function of the seed alone.
#include "data/replica_shards.h"

#include <algorithm>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nightshift {
namespace {

using testing::HasSubstr;

// 10 classes, 600 samples each, interleaved like a real training set.
std::vector<int32_t> Labels() {
  std::vector<int32_t> labels(6000);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 10);
  return labels;
}

// Mean over shards of the share of its most common class.
double MeanTopClassShare(const std::vector<std::vector<int64_t>>& shards,
                         const std::vector<int32_t>& labels) {
  double sum = 0;
  for (const auto& shard : shards) {
    std::vector<int> counts(10, 0);
    for (int64_t i : shard) ++counts[labels[i]];
    sum += static_cast<double>(*std::max_element(counts.begin(), counts.end())) / shard.size();
  }
  return sum / shards.size();
}

void ExpectPartition(const std::vector<std::vector<int64_t>>& shards, size_t n) {
  std::vector<int> seen(n, 0);
  for (const auto& shard : shards) {
    EXPECT_FALSE(shard.empty());
    EXPECT_TRUE(std::is_sorted(shard.begin(), shard.end()));
    for (int64_t i : shard) ++seen[i];
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), static_cast<long>(n));
}

TEST(ReplicaShardsTest, IidShardsAreEqualPartsOfASeededPermutation) {
  const std::vector<int32_t> labels = Labels();
  auto shards = ReplicaShards(labels, 10, 7, 0, 42);
  ASSERT_TRUE(shards.ok()) << shards.status();
  ExpectPartition(*shards, labels.size());
  for (const auto& s : *shards) EXPECT_NEAR(s.size(), 6000.0 / 7, 1);
  EXPECT_LT(MeanTopClassShare(*shards, labels), 0.15);  // about 1/10 each
  EXPECT_EQ(*ReplicaShards(labels, 10, 7, 0, 42), *shards);
  EXPECT_NE(*ReplicaShards(labels, 10, 7, 0, 43), *shards);
}

TEST(ReplicaShardsTest, DirichletAlphaSetsHowSkewedEachShardIs) {
  const std::vector<int32_t> labels = Labels();
  auto skewed = ReplicaShards(labels, 10, 8, 0.1, 42);
  auto mild = ReplicaShards(labels, 10, 8, 100, 42);
  ASSERT_TRUE(skewed.ok() && mild.ok());
  ExpectPartition(*skewed, labels.size());
  ExpectPartition(*mild, labels.size());
  EXPECT_GT(MeanTopClassShare(*skewed, labels), 0.5);  // a few classes per shard
  EXPECT_LT(MeanTopClassShare(*mild, labels), 0.2);    // near IID
  EXPECT_EQ(*ReplicaShards(labels, 10, 8, 0.1, 42), *skewed);
}

TEST(ReplicaShardsTest, BadArgumentsNameTheField) {
  const std::vector<int32_t> labels = {0, 1, 2};
  EXPECT_THAT(ReplicaShards(labels, 3, 0, 0, 1).status().message(), HasSubstr("shards.count"));
  EXPECT_THAT(ReplicaShards(labels, 3, 4, 0, 1).status().message(),
              HasSubstr("more than the 3 training samples"));
  EXPECT_THAT(ReplicaShards(labels, 3, 2, -1, 1).status().message(), HasSubstr("dirichlet_alpha"));
  EXPECT_THAT(ReplicaShards(labels, 2, 2, 1, 1).status().message(),
              HasSubstr("label 2 of sample 2"));
}

}  // namespace
}  // namespace nightshift
