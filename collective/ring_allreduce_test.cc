// The collectives against a serial reference, parameterized as gloo does:
// transport × world size × element count. Integer-valued inputs make every
// sum exact, so results must match the reference bit for bit.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "collective/group_for_test.h"
#include "collective/ring.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/random.h"

namespace nightshift::collective {
namespace {

struct Case {
  TransportKind transport;
  int size;
  int64_t length;
};

std::string CaseName(const testing::TestParamInfo<Case>& info) {
  return TransportKindName(info.param.transport) + "_" + std::to_string(info.param.size) +
         "ranks_" + std::to_string(info.param.length);
}

float Value(int rank, int64_t i) { return static_cast<float>((i * 7 + rank * 13) % 17) - 8; }

class CollectiveTest : public testing::TestWithParam<Case> {};

TEST_P(CollectiveTest, AllReduceEveryOpMatchesSerialReference) {
  const Case c = GetParam();
  auto group = MakeTestGroup(c.transport, c.size);
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAverage, ReduceOp::kMin, ReduceOp::kMax}) {
    std::vector<float> expected(c.length);
    for (int64_t i = 0; i < c.length; ++i) {
      float acc = Value(0, i);
      for (int r = 1; r < c.size; ++r) {
        const float v = Value(r, i);
        acc = op == ReduceOp::kMin   ? std::min(acc, v)
              : op == ReduceOp::kMax ? std::max(acc, v)
                                     : acc + v;
      }
      expected[i] = op == ReduceOp::kAverage ? acc * (1.f / c.size) : acc;
    }
    std::vector<std::vector<float>> out(c.size);
    auto statuses = group->Run([&](Communicator& comm) {
      std::vector<float>& data = out[comm.rank()];
      data.resize(c.length);
      for (int64_t i = 0; i < c.length; ++i) data[i] = Value(comm.rank(), i);
      AllReduceOptions options;
      options.op = op;
      return comm.AllReduce(absl::MakeSpan(data), options);
    });
    for (int r = 0; r < c.size; ++r) {
      ASSERT_TRUE(statuses[r].ok()) << ReduceOpName(op) << " rank " << r << ": " << statuses[r];
      ASSERT_EQ(out[r], expected) << ReduceOpName(op) << " rank " << r;
    }
  }
}

TEST_P(CollectiveTest, BroadcastFromEveryRoot) {
  const Case c = GetParam();
  auto group = MakeTestGroup(c.transport, c.size);
  for (int root = 0; root < c.size; ++root) {
    std::vector<std::vector<float>> out(c.size);
    auto statuses = group->Run([&](Communicator& comm) {
      std::vector<float>& data = out[comm.rank()];
      data.resize(c.length);
      for (int64_t i = 0; i < c.length; ++i) data[i] = Value(comm.rank(), i);
      return comm.Broadcast(absl::MakeSpan(data), root);
    });
    for (int r = 0; r < c.size; ++r) {
      ASSERT_TRUE(statuses[r].ok()) << statuses[r];
      for (int64_t i = 0; i < c.length; ++i) ASSERT_EQ(out[r][i], Value(root, i)) << r << " " << i;
    }
  }
}

TEST_P(CollectiveTest, AllGatherInRankOrder) {
  const Case c = GetParam();
  auto group = MakeTestGroup(c.transport, c.size);
  std::vector<std::vector<float>> out(c.size);
  auto statuses = group->Run([&](Communicator& comm) {
    std::vector<float> in(c.length);
    for (int64_t i = 0; i < c.length; ++i) in[i] = Value(comm.rank(), i);
    out[comm.rank()].resize(c.length * c.size);
    return comm.AllGather(in, absl::MakeSpan(out[comm.rank()]));
  });
  for (int r = 0; r < c.size; ++r) {
    ASSERT_TRUE(statuses[r].ok()) << statuses[r];
    for (int src = 0; src < c.size; ++src)
      for (int64_t i = 0; i < c.length; ++i) ASSERT_EQ(out[r][src * c.length + i], Value(src, i));
  }
}

TEST_P(CollectiveTest, BarrierAndBackToBackOperations) {
  const Case c = GetParam();
  auto group = MakeTestGroup(c.transport, c.size);
  auto statuses = group->Run([&](Communicator& comm) -> absl::Status {
    for (int k = 0; k < 3; ++k) {
      if (absl::Status s = comm.Barrier(); !s.ok()) return s;
      std::vector<float> v(c.length, 1.f);
      if (absl::Status s = comm.AllReduce(absl::MakeSpan(v)); !s.ok()) return s;
      for (float x : v) {
        if (x != c.size) return absl::InternalError("wrong sum");
      }
    }
    return absl::OkStatus();
  });
  for (const auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
}

TEST_P(CollectiveTest, ShardedUpdateVisitsEachElementOnceAtItsOwner) {
  const Case c = GetParam();
  auto group = MakeTestGroup(c.transport, c.size);
  std::vector<float> sum(c.length, 0.f);
  for (int r = 0; r < c.size; ++r)
    for (int64_t i = 0; i < c.length; ++i) sum[i] += Value(r, i);
  std::vector<std::vector<float>> target(c.size), state(c.size);
  std::vector<std::vector<int>> updated(c.size);  // per rank: times each element was updated
  auto statuses = group->Run([&](Communicator& comm) -> absl::Status {
    const int me = comm.rank();
    std::vector<float> data(c.length);
    for (int64_t i = 0; i < c.length; ++i) data[i] = Value(me, i);
    target[me].assign(c.length, -1000.f - me);  // different everywhere before
    state[me].assign(c.length, -1.f);
    updated[me].assign(c.length, 0);
    absl::Status s = comm.AllReduceShardedUpdate(
        absl::MakeSpan(data), absl::MakeSpan(target[me]), [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            ++updated[me][i];
            if (data[i] != sum[i]) ADD_FAILURE() << "rank " << me << " got a partial sum at " << i;
            target[me][i] = 2 * data[i] + 1;
            state[me][i] = static_cast<float>(me);  // what an optimizer's state would be
          }
        });
    if (!s.ok()) return s;
    return comm.GatherFromOwners(absl::MakeSpan(state[me]));
  });
  for (int r = 0; r < c.size; ++r) ASSERT_TRUE(statuses[r].ok()) << statuses[r];
  for (int64_t i = 0; i < c.length; ++i) {
    int owners = 0, owner = -1;
    for (int r = 0; r < c.size; ++r) {
      owners += updated[r][i];
      if (updated[r][i] > 0) owner = r;
    }
    ASSERT_EQ(owners, 1) << "element " << i;
    for (int r = 0; r < c.size; ++r) {
      ASSERT_EQ(target[r][i], 2 * sum[i] + 1) << "rank " << r << " element " << i;
      ASSERT_EQ(state[r][i], owner) << "rank " << r << " element " << i;
    }
  }
  if (c.size > 1 && c.length >= 1000000) {  // big buffers: every rank owns a share
    for (int r = 0; r < c.size; ++r) {
      EXPECT_GT(std::count(updated[r].begin(), updated[r].end(), 1), c.length / (2 * c.size));
    }
  }
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (TransportKind t : {TransportKind::kLocal, TransportKind::kGrpc, TransportKind::kGrpcShm,
                          TransportKind::kSocket}) {
    for (int size = 1; size <= 5; ++size) {
      for (int64_t length : {0, 1, 7, 13, 4, 40009, 1000000}) {
        if (length == 4 && size != 5) continue;  // fewer elements than ranks
        cases.push_back({t, size, length});
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(TransportSizeLength, CollectiveTest, testing::ValuesIn(Cases()), CaseName);

// Ranks on one machine (gRPC with shared memory) map one another's step
// buffers and update one-sided; the results equal the ring's bit for bit
// (random values: summation order matters), for any group size. Other
// transports decline without breaking the communicator.
TEST(SharedStepTest, OneSidedUpdateEqualsTheRingBitForBit) {
  for (int n : {2, 3, 4}) {
    for (int64_t len : {int64_t{1}, int64_t{40009}, 3 * kRingChunkElements * n + 5}) {
      std::vector<std::vector<float>> grads(n);
      for (int r = 0; r < n; ++r) {
        Rng rng({91, static_cast<uint64_t>(r), static_cast<uint64_t>(len)});
        grads[r].resize(len);
        for (float& v : grads[r]) v = static_cast<float>(rng.Normal());
      }
      // What an update does: target = 0.5 - 0.1 * sum, from the sum.
      auto ring_group = MakeTestGroup(TransportKind::kGrpc, n);
      std::vector<std::vector<float>> via_ring(n);
      auto s1 = ring_group->Run([&](Communicator& c) {
        std::vector<float> g = grads[c.rank()];
        std::vector<float>& p = via_ring[c.rank()];
        p.assign(len, 0.f);
        EXPECT_EQ(c.MapStepBuffers(len).status().code(), absl::StatusCode::kUnimplemented);
        return c.AllReduceShardedUpdate(absl::MakeSpan(g), absl::MakeSpan(p),
                                        [&](int64_t b, int64_t e) {
                                          for (int64_t i = b; i < e; ++i) p[i] = 0.5f - 0.1f * g[i];
                                        });
      });
      auto shm_group = MakeTestGroup(TransportKind::kGrpcShm, n);
      std::vector<std::vector<float>> one_sided(n);
      auto s2 = shm_group->Run([&](Communicator& c) -> absl::Status {
        absl::StatusOr<Communicator::StepBuffers> buffers = c.MapStepBuffers(len);
        if (!buffers.ok()) return buffers.status();
        absl::Span<float> g = buffers->gradients, p = buffers->parameters;
        // The buffers are reused step after step, with other gradients in
        // each (3×, 2×, then 1× the ring's): a peer's parameters left over
        // from an earlier step would show in the last one.
        for (int step = 0; step < 3; ++step) {
          const float factor = static_cast<float>(3 - step);
          std::transform(grads[c.rank()].begin(), grads[c.rank()].end(), g.begin(),
                         [&](float v) { return factor * v; });
          std::fill(p.begin(), p.end(), -1.f - step);
          absl::Status s = c.AllReduceShardedUpdate(g, p, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) p[i] = 0.5f - 0.1f * g[i];
          });
          if (!s.ok()) return s;
        }
        one_sided[c.rank()].assign(p.begin(), p.end());
        return absl::OkStatus();
      });
      for (int r = 0; r < n; ++r) {
        ASSERT_TRUE(s1[r].ok()) << s1[r];
        ASSERT_TRUE(s2[r].ok()) << s2[r];
        ASSERT_EQ(one_sided[r], via_ring[r]) << n << " ranks, " << len << " floats, rank " << r;
        ASSERT_EQ(via_ring[r], via_ring[0]);
      }
    }
  }
}

// Random (non-integer) values: pieces reduced with their offsets equal the
// whole buffer reduced at once, bit for bit, and both are within float
// rounding of a double-precision reference.
class OffsetTest : public testing::TestWithParam<TransportKind> {};

TEST_P(OffsetTest, SplitReductionIsBitwiseEqualToWhole) {
  const int n = 3;
  const int64_t len = 3 * kRingChunkElements + 1234;
  auto group = MakeTestGroup(GetParam(), n);
  std::vector<std::vector<float>> whole(n), split(n);
  for (int r = 0; r < n; ++r) {
    Rng rng({77, static_cast<uint64_t>(r)});
    whole[r].resize(len);
    for (float& v : whole[r]) v = static_cast<float>(rng.Normal());
    split[r] = whole[r];
  }
  auto s1 =
      group->Run([&](Communicator& c) { return c.AllReduce(absl::MakeSpan(whole[c.rank()])); });
  const int64_t cut = kRingChunkElements / 2 + 17;
  auto s2 = group->Run([&](Communicator& c) -> absl::Status {
    auto all = absl::MakeSpan(split[c.rank()]);
    AllReduceOptions tail;
    tail.element_offset = cut;
    if (absl::Status s = c.AllReduce(all.subspan(cut), tail); !s.ok()) return s;
    return c.AllReduce(all.subspan(0, cut));
  });
  for (int r = 0; r < n; ++r) {
    ASSERT_TRUE(s1[r].ok() && s2[r].ok());
    ASSERT_EQ(whole[r], split[r]) << r;
    ASSERT_EQ(whole[r], whole[0]);
  }
}

TEST_P(OffsetTest, CompressedWireStaysWithinTheDocumentedBound) {
  for (WireDtype wire : {WireDtype::kBFloat16, WireDtype::kFloat16}) {
    for (int n : {2, 4}) {
      const int64_t len = 2 * kRingChunkElements + 99;
      auto group = MakeTestGroup(GetParam(), n);
      std::vector<std::vector<float>> data(n);
      std::vector<double> exact(len, 0), abs_sum(len, 0);
      for (int r = 0; r < n; ++r) {
        Rng rng({5, static_cast<uint64_t>(r)});
        data[r].resize(len);
        for (int64_t i = 0; i < len; ++i) {
          data[r][i] = static_cast<float>(rng.Normal() * 10);
          exact[i] += data[r][i];
          abs_sum[i] += std::abs(data[r][i]);
        }
      }
      auto statuses = group->Run([&](Communicator& c) {
        AllReduceOptions o;
        o.wire = wire;
        return c.AllReduce(absl::MakeSpan(data[c.rank()]), o);
      });
      const double u = WireUnitRoundoff(wire);
      double worst = 0;
      for (int r = 0; r < n; ++r) {
        ASSERT_TRUE(statuses[r].ok()) << statuses[r];
        ASSERT_EQ(data[r], data[0]) << "ranks disagree";
      }
      for (int64_t i = 0; i < len; ++i) {
        const double bound = n * u * abs_sum[i] + 1e-6 * abs_sum[i];
        ASSERT_LE(std::abs(data[0][i] - exact[i]), bound) << WireDtypeName(wire) << " " << i;
        worst = std::max(worst, std::abs(data[0][i] - exact[i]) / abs_sum[i]);
      }
      EXPECT_GT(worst, 0) << "compression had no effect";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, OffsetTest,
                         testing::Values(TransportKind::kLocal, TransportKind::kGrpc,
                                         TransportKind::kGrpcShm),
                         [](const auto& info) { return TransportKindName(info.param); });

}  // namespace
}  // namespace nightshift::collective
