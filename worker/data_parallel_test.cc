// Synchronous data parallelism is exact: N ranks with any split of every
// batch end with the parameters of one rank training on the whole batch,
// up to float summation order — including when a rebalance moves the
// split mid-run.
#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>

#include "base/status_macros.h"
#include "collective/group_for_test.h"
#include "collective/transport/forwarding_transport.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "worker/trainer.h"

namespace nightshift {
namespace {

v1::JobSpec Spec() {
  v1::JobSpec spec;
  google::protobuf::TextFormat::ParseFromString(
      R"pb(
        model {
          layers { flatten {} }
          layers { dense { units: 24 } }
          layers { relu {} }
          layers { dense { units: 4 } }
        }
        dataset {
          synthetic {
            train_examples: 700
            test_examples: 100
            channels: 1
            height: 5
            width: 5
            classes: 4
            noise: 1.5
          }
        }
        optimizer { sgd { lr: 0.05 momentum: 0.9 nesterov: true weight_decay: 0.001 } }
        lr_schedule {
          cosine { min_lr: 0.001 }
          warmup_steps: 3
        }
        global_batch_size: 64  # 700 / 64: the last batch of each epoch is 60
        epochs: 2
        seed: 5
      )pb",
      &spec);
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
    const std::function<void(collective::Communicator&, TrainerOptions&)>& configure,
    const v1::JobSpec& spec = Spec()) {
  auto group = collective::MakeTestGroup(kind, n);
  std::vector<std::vector<float>> params(n);
  auto statuses = group->Run([&](collective::Communicator& comm) -> absl::Status {
    TrainerOptions options;
    configure(comm, options);
    auto t = Trainer::Create(spec, options);
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

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_P(DataParallelTest, ShardedOptimizerStepChangesNoBitNorAnyCheckpoint) {
  // Each of 3 ranks updates only the parameters it owns and keeps only that
  // part of the momentum; the parameters and the checkpoints (with the
  // momentum gathered from the owners) must equal the unsharded run's.
  v1::JobSpec spec = Spec();
  spec.set_checkpoint_interval_steps(7);
  std::map<bool, std::string> dir;
  std::map<bool, std::vector<std::vector<float>>> params;
  for (bool sharded : {true, false}) {
    dir[sharded] = testing::TempDir() + "/sharded-" + std::to_string(sharded) + "-" +
                   collective::TransportKindName(GetParam());
    params[sharded] = TrainGroup(
        GetParam(), 3,
        [&](collective::Communicator& comm, TrainerOptions& o) {
          if (comm.rank() == 0) o.out_dir = dir[sharded];
          o.data_parallel = DataParallel{&comm, {0.5, 0.3, 0.2}, 0, sharded};
        },
        spec);
  }
  for (int r = 0; r < 3; ++r) EXPECT_EQ(params[true][r], params[false][r]) << "rank " << r;
  EXPECT_EQ(params[true][1], params[true][0]) << "ranks drifted apart";
  for (const char* name :
       {"/checkpoint-step-0000007.safetensors", "/checkpoint-step-0000022.safetensors"}) {
    EXPECT_EQ(ReadFile(dir[true] + name), ReadFile(dir[false] + name)) << name;
  }
}

TEST_P(DataParallelTest, RanksOnOneMachineTrainInSharedStepMemory) {
  // With the shared-memory gRPC transport the model's flat buffers are the
  // mapped step memory (the one-sided step runs); elsewhere they are not.
  auto group = collective::MakeTestGroup(GetParam(), 2);
  auto statuses = group->Run([&](collective::Communicator& comm) -> absl::Status {
    TrainerOptions options;
    options.data_parallel = DataParallel{&comm, {}, 0};
    auto t = Trainer::Create(Spec(), options);
    if (!t.ok()) return t.status();
    const int64_t n = (*t)->model().num_parameters();
    auto mapped = comm.MapStepBuffers(n);  // the existing mapping, if any
    const bool shared = GetParam() == collective::TransportKind::kGrpcShm;
    EXPECT_EQ(mapped.ok(), shared) << mapped.status();
    if (mapped.ok()) {
      EXPECT_EQ((*t)->model().flat_parameters().data(), mapped->parameters.data());
    }
    return (*t)->Run().status();
  });
  for (const auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
}

TEST_P(DataParallelTest, ProgressWindowsFollowThePeriodOnEveryRank) {
  // Ranks whose clocks disagree must still agree on which steps report
  // (a report is a collective): the window length comes from the ranks'
  // mean window time, the same figure everywhere after the all-reduce.
  std::vector<int64_t> report_steps;
  SteppingClock fast(absl::Milliseconds(1)), slow(absl::Milliseconds(3));
  auto params = TrainGroup(GetParam(), 2, [&](collective::Communicator& comm, TrainerOptions& o) {
    o.clock = comm.rank() == 0 ? static_cast<Clock*>(&fast) : &slow;
    o.data_parallel = DataParallel{&comm, {}, 0};
    o.progress_interval_steps = 1;
    o.progress_period = absl::Milliseconds(30);
    o.on_progress = [&](const v1::Progress& p) { report_steps.push_back(p.step()); };
  });
  EXPECT_EQ(params[1], params[0]) << "ranks drifted apart";
  // 22 steps in all. The first window is one step; the next ones grow to
  // cover ~30 ms of (mean) clock time, which takes several steps.
  // (Here: 1, 6, 13, 19, 22 — a step reads each clock a few times.)
  ASSERT_GE(report_steps.size(), 4u);
  EXPECT_EQ(report_steps[0], 1);
  for (size_t i = 1; i + 1 < report_steps.size(); ++i) {
    EXPECT_GE(report_steps[i] - report_steps[i - 1], 3) << "report " << i;
    EXPECT_LE(report_steps[i] - report_steps[i - 1], 12) << "report " << i;
  }
  EXPECT_EQ(report_steps.back(), 22);
}

// Rank `victim`'s transport fails its `fail_at`-th send: the rank gives
// up, and its peers learn of it as of a lost peer. (A 3-rank step of this
// small model sends only one or two messages per rank; the one-sided
// step over shared memory, none but the reports and commits.) Every rank is
// wrapped, so that all agree the group maps no shared step memory.
collective::TransportWrapper FailRank(int victim, int fail_at) {
  class Failing final : public collective::ForwardingTransport {
   public:
    Failing(std::unique_ptr<collective::Transport> inner, int fail_at)
        : ForwardingTransport(std::move(inner)), left_(fail_at) {}
    using Transport::Send;
    absl::Status Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                      absl::Time d) override {
      if (--left_ == 0) return absl::UnavailableError("injected: the rank's machine is gone");
      return ForwardingTransport::Send(to, tag, parts, d);
    }

   private:
    int left_;
  };
  return [victim, fail_at](
             int rank,
             std::unique_ptr<collective::Transport> t) -> std::unique_ptr<collective::Transport> {
    return std::make_unique<Failing>(std::move(t), rank == victim ? fail_at : -1);
  };
}

// Trains Spec() on 3 ranks until rank 1 fails mid-run, then regroups the
// ranks in `next` (old ranks, in their new rank order) as generation 2 and
// trains on from the last commit; returns each regrouped rank's final
// parameters, and the commit steps the survivors resumed from.
std::vector<std::vector<float>> TrainThroughAFailure(collective::TransportKind kind,
                                                     const std::vector<int>& next,
                                                     std::vector<int64_t>* resumed_at) {
  collective::CommunicatorOptions first{"elastic", 1, absl::Seconds(20), false};
  collective::CommunicatorOptions second{"elastic", 2, absl::Seconds(20), false};
  auto group = collective::MakeTestGroup(
      kind, 3, first, FailRank(1, kind == collective::TransportKind::kGrpcShm ? 6 : 15));
  auto regrouped = collective::MakeTestGroup(kind, static_cast<int>(next.size()), second);
  std::vector<std::vector<float>> params(next.size());
  resumed_at->assign(next.size(), -1);
  auto statuses = group->Run([&](collective::Communicator& comm) -> absl::Status {
    TrainerOptions options;
    options.progress_interval_steps = 5;  // commits at steps 0, 5, 10, ...
    options.data_parallel = DataParallel{&comm, {}, 0};
    auto t = Trainer::Create(Spec(), options);
    if (!t.ok()) return t.status();
    absl::StatusOr<TrainResult> r = (*t)->Run();
    const auto it = std::find(next.begin(), next.end(), comm.rank());
    if (it == next.end()) return absl::OkStatus();  // not in the next generation
    if (r.ok()) return absl::InternalError("the first generation did not fail");
    const int new_rank = static_cast<int>(it - next.begin());
    (*resumed_at)[new_rank] = (*t)->last_commit().step;
    RETURN_IF_ERROR((*t)->Regroup(DataParallel{regrouped->communicators()[new_rank].get(), {}, 0}));
    RETURN_IF_ERROR((*t)->Run().status());
    auto p = (*t)->model().flat_parameters();
    params[new_rank].assign(p.begin(), p.end());
    return absl::OkStatus();
  });
  for (const auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
  return params;
}

TEST_P(DataParallelTest, SurvivorsOfALostRankRegroupFromTheirCommitAndEndWithTheCleanModel) {
  auto clean = TrainGroup(GetParam(), 3, [](collective::Communicator& comm, TrainerOptions& o) {
    o.data_parallel = DataParallel{&comm, {}, 0};
  });
  std::vector<int64_t> resumed_at;
  auto survivors = TrainThroughAFailure(GetParam(), {0, 2}, &resumed_at);
  for (int64_t step : resumed_at) {
    EXPECT_GT(step, 0) << "the failure came before the first commit after the start";
    EXPECT_LT(step, 22) << "no failure mid-run";
  }
  EXPECT_EQ(resumed_at[0], resumed_at[1]) << "the survivors committed different steps";
  // Two ranks instead of three: the same model up to summation order.
  for (const auto& p : survivors) ExpectClose(p, clean[0]);
  EXPECT_EQ(survivors[0], survivors[1]) << "ranks drifted apart";
}

TEST_P(DataParallelTest, AGroupRebuiltWithItsOwnRanksEndsBitForBitWithTheCleanRun) {
  // Every rank (the failed one too) resumes in a new generation of the
  // same size: same slices, same summation order, so the very same bits.
  auto clean = TrainGroup(GetParam(), 3, [](collective::Communicator& comm, TrainerOptions& o) {
    o.data_parallel = DataParallel{&comm, {}, 0};
  });
  std::vector<int64_t> resumed_at;
  auto rebuilt = TrainThroughAFailure(GetParam(), {0, 1, 2}, &resumed_at);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(rebuilt[r], clean[0]) << "rank " << r;
}

// Trains Spec() on `first` ranks, with rank 0 asking to yield from the
// start, then regroups as generation 2 of `next` (old ranks in their new
// rank order; -1 for a joiner, whose trainer never ran) and trains on to
// the end. Returns each new rank's final parameters; `yielded_at` gets the
// step each old rank stopped at, `resumed_at` the step each new rank
// resumed from.
std::vector<std::vector<float>> TrainThroughAYield(collective::TransportKind kind, int first,
                                                   const std::vector<int>& next,
                                                   std::vector<int64_t>* yielded_at,
                                                   std::vector<int64_t>* resumed_at) {
  collective::CommunicatorOptions one{"elastic", 1, absl::Seconds(20), false};
  collective::CommunicatorOptions two{"elastic", 2, absl::Seconds(20), false};
  auto group = collective::MakeTestGroup(kind, first, one);
  auto regrouped = collective::MakeTestGroup(kind, static_cast<int>(next.size()), two);
  std::vector<std::unique_ptr<Trainer>> trainers(first);
  std::vector<std::vector<float>> params(next.size());
  yielded_at->assign(first, -1);
  resumed_at->assign(next.size(), -1);
  // Only rank 0 asks to yield; every rank must stop with it.
  std::atomic<bool> asks{true}, does_not{false};
  // (A joiner's trainer is created alone: Regroup binds it to the group.)
  auto make = [&](collective::Communicator* comm) {
    TrainerOptions options;
    options.progress_interval_steps = 5;  // commits at steps 0, 5, 10, ...
    options.yield_requested = comm != nullptr && comm->rank() == 0 ? &asks : &does_not;
    if (comm != nullptr) options.data_parallel = DataParallel{comm, {}, 0};
    return Trainer::Create(Spec(), options);
  };
  auto statuses = group->Run([&](collective::Communicator& comm) -> absl::Status {
    ASSIGN_OR_RETURN(trainers[comm.rank()], make(&comm));
    ASSIGN_OR_RETURN(TrainResult r, trainers[comm.rank()]->Run());
    if (!r.yielded) return absl::InternalError("the first generation ran to the end");
    (*yielded_at)[comm.rank()] = r.steps;
    return absl::OkStatus();
  });
  for (const auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
  asks = false;
  statuses = regrouped->Run([&](collective::Communicator& comm) -> absl::Status {
    const int old_rank = next[comm.rank()];
    std::unique_ptr<Trainer> joiner;
    Trainer* t = old_rank >= 0 ? trainers[old_rank].get() : nullptr;
    if (t == nullptr) {
      ASSIGN_OR_RETURN(joiner, make(nullptr));
      t = joiner.get();
    }
    RETURN_IF_ERROR(t->Regroup(DataParallel{&comm, {}, 0}));
    (*resumed_at)[comm.rank()] = t->last_commit().step;
    ASSIGN_OR_RETURN(TrainResult r, t->Run());
    if (r.yielded) return absl::InternalError("the second generation yielded");
    auto p = t->model().flat_parameters();
    params[comm.rank()].assign(p.begin(), p.end());
    return absl::OkStatus();
  });
  for (const auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
  return params;
}

TEST_P(DataParallelTest, AJoinerReceivesTheModelFromAMemberAndTheGroupEndsWithTheCleanModel) {
  auto clean = TrainGroup(GetParam(), 3, [](collective::Communicator& comm, TrainerOptions& o) {
    o.data_parallel = DataParallel{&comm, {}, 0};
  });
  std::vector<int64_t> yielded_at, resumed_at;
  auto grown = TrainThroughAYield(GetParam(), 2, {0, 1, -1}, &yielded_at, &resumed_at);
  EXPECT_EQ(yielded_at, std::vector<int64_t>({5, 5})) << "both ranks stop at the first commit";
  EXPECT_EQ(resumed_at, std::vector<int64_t>({5, 5, 5})) << "nothing is redone";
  for (const auto& p : grown) ExpectClose(p, clean[0]);
  EXPECT_EQ(grown[0], grown[2]) << "the joiner drifted from the members";
}

TEST_P(DataParallelTest, ADrainedRankLeavesAtACommitWithNoStepLost) {
  auto clean = TrainGroup(GetParam(), 3, [](collective::Communicator& comm, TrainerOptions& o) {
    o.data_parallel = DataParallel{&comm, {}, 0};
  });
  std::vector<int64_t> yielded_at, resumed_at;
  auto drained = TrainThroughAYield(GetParam(), 3, {0, 2}, &yielded_at, &resumed_at);
  EXPECT_EQ(yielded_at, std::vector<int64_t>({5, 5, 5}));
  EXPECT_EQ(resumed_at, std::vector<int64_t>({5, 5}));
  for (const auto& p : drained) ExpectClose(p, clean[0]);
  EXPECT_EQ(drained[0], drained[1]);
}

INSTANTIATE_TEST_SUITE_P(Transports, DataParallelTest,
                         testing::Values(collective::TransportKind::kLocal,
                                         collective::TransportKind::kGrpc,
                                         collective::TransportKind::kGrpcShm),
                         [](const auto& info) {
                           return collective::TransportKindName(info.param);
                         });

}  // namespace
}  // namespace nightshift
