// Synchronous data parallelism is exact: N ranks with any split of every
// batch end with the parameters of one rank training on the whole batch,
// up to float summation order — including when a rebalance moves the
// split mid-run.
#include <thread>

#include "collective/group_for_test.h"
#include "gtest/gtest.h"
#include "google/protobuf/text_format.h"
#include "worker/trainer.h"

namespace nightshift {
namespace {

v1::JobSpec Spec() {
  v1::JobSpec spec;
  google::protobuf::TextFormat::ParseFromString(R"pb(
    model {
      layers { flatten {} }
      layers { dense { units: 24 } }
      layers { relu {} }
      layers { dense { units: 4 } }
    }
    dataset {
      synthetic {
        train_examples: 700 test_examples: 100 channels: 1 height: 5
        width: 5 classes: 4 noise: 1.5
      }
    }
    optimizer { sgd { lr: 0.05 momentum: 0.9 nesterov: true weight_decay: 0.001 } }
    lr_schedule { cosine { min_lr: 0.001 } warmup_steps: 3 }
    global_batch_size: 64   # 700 / 64: the last batch of each epoch is 60
    epochs: 2
    seed: 5
  )pb", &spec);
  return spec;
}

std::vector<float> TrainAlone() {
  auto t = Trainer::Create(Spec(), {});
  EXPECT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE((*t)->Run().ok());
  auto p = (*t)->model().flat_parameters();
  return {p.begin(), p.end()};
}

// A clock that moves on by a fixed step at every reading, so that ranks
// "measure" different speeds without any waiting. (Time per step does not
// grow with the slice here, so only the first rebalance is meaningful.)
class SteppingClock final : public Clock {
 public:
  explicit SteppingClock(absl::Duration step) : step_(step) {}
  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    now_ += step_;
    return now_;
  }

 private:
  absl::Mutex mu_;
  absl::Duration step_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::UnixEpoch();
};

void ExpectClose(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_NEAR(a[i], b[i], 1e-4 * std::max(1.f, std::abs(a[i]))) << "parameter " << i;
  }
}

// Trains Spec() on every rank of a group of `n`, with the options
// `configure` sets for each rank; returns each rank's final parameters.
std::vector<std::vector<float>> TrainGroup(
    collective::TransportKind kind, int n,
    const std::function<void(collective::Communicator&, TrainerOptions&)>& configure) {
  auto group = collective::MakeTestGroup(kind, n);
  std::vector<std::vector<float>> params(n);
  auto statuses = group->Run([&](collective::Communicator& comm) -> absl::Status {
    TrainerOptions options;
    configure(comm, options);
    auto t = Trainer::Create(Spec(), options);
    if (!t.ok()) return t.status();
    if (auto r = (*t)->Run(); !r.ok()) return r.status();
    auto p = (*t)->model().flat_parameters();
    params[comm.rank()].assign(p.begin(), p.end());
    return absl::OkStatus();
  });
  for (const auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
  return params;
}

class DataParallelTest : public testing::TestWithParam<collective::TransportKind> {};

TEST_P(DataParallelTest, ThreeRanksWithUnequalSlicesEqualOneRank) {
  const std::vector<float> alone = TrainAlone();
  auto params = TrainGroup(GetParam(), 3, [](collective::Communicator& comm, TrainerOptions& o) {
    o.data_parallel = DataParallel{&comm, {0.5, 0.3, 0.2}, 0};
  });
  for (int r = 0; r < 3; ++r) ExpectClose(params[r], alone);
  EXPECT_EQ(params[1], params[0]) << "ranks drifted apart";
}

TEST_P(DataParallelTest, RebalanceFollowsMeasuredSpeedAndStaysExact) {
  const std::vector<float> alone = TrainAlone();
  std::vector<std::pair<int64_t, std::vector<double>>> rebalances;
  // Rank 1's clock runs three times as fast: it looks three times slower.
  SteppingClock fast(absl::Milliseconds(1)), slow(absl::Milliseconds(3));
  auto params = TrainGroup(GetParam(), 2, [&](collective::Communicator& comm, TrainerOptions& o) {
    o.clock = comm.rank() == 0 ? static_cast<Clock*>(&fast) : &slow;
    o.data_parallel = DataParallel{&comm, {}, 5};
    o.on_rebalance = [&](int64_t step, const std::vector<double>& w) {
      rebalances.push_back({step, w});
    };
  });
  ASSERT_FALSE(rebalances.empty());
  EXPECT_EQ(rebalances[0].first, 5);
  // Equal slices at first; rank 0 measured three times the rate, so the
  // first rebalance gives it three quarters of each batch.
  const auto& w = rebalances[0].second;
  EXPECT_NEAR(w[0] / (w[0] + w[1]), 0.75, 0.01);
  for (int r = 0; r < 2; ++r) ExpectClose(params[r], alone);
}

INSTANTIATE_TEST_SUITE_P(Transports, DataParallelTest,
                         testing::Values(collective::TransportKind::kLocal,
                                         collective::TransportKind::kGrpc,
                                         collective::TransportKind::kGrpcShm),
                         [](const auto& info) { return collective::TransportKindName(info.param); });

}  // namespace
}  // namespace nightshift
