// IDX reader, data set loading and batch planning, on files written to the
// test's temporary folder and on the real Fashion-MNIST files.
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <set>

#include "data/batch_plan.h"
#include "data/dataset.h"
#include "data/idx_reader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nightshift {
namespace {

using testing::HasSubstr;
using Slice = std::pair<int64_t, int64_t>;

std::string TempPath(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

std::string IdxBytes(std::vector<uint32_t> dims, const std::vector<uint8_t>& data) {
  std::string s = {0, 0, 8, static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>(d >> shift));
  }
  s.append(data.begin(), data.end());
  return s;
}

void WriteRaw(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

void WriteGzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  gzwrite(f, bytes.data(), bytes.size());
  gzclose(f);
}

std::vector<uint8_t> Iota(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 7);
  return v;
}

TEST(IdxReaderTest, ReadsRawAndGzip) {
  const std::string bytes = IdxBytes({3, 2, 4}, Iota(24));
  WriteRaw(TempPath("a.idx"), bytes);
  WriteGzip(TempPath("a.idx.gz"), bytes);
  for (const char* name : {"a.idx", "a.idx.gz"}) {
    auto array = ReadIdxFile(TempPath(name));
    ASSERT_TRUE(array.ok()) << array.status();
    EXPECT_EQ(array->dims, (std::vector<int64_t>{3, 2, 4}));
    EXPECT_EQ(array->data, Iota(24));
  }
}

// A flag raised all along: every Read does one piece and returns
// CANCELLED, so the read finishes only if each call goes on from where the
// last one stopped (a read that started again would never end).
TEST(IdxReaderTest, AStoppedReadGoesOnFromWhereItStopped) {
  std::vector<uint8_t> noise(3 << 20);  // incompressible: many gzip pieces
  uint32_t x = 1;
  for (uint8_t& b : noise) b = static_cast<uint8_t>((x = x * 1664525u + 1013904223u) >> 24);
  const std::string bytes = IdxBytes({3, 1024, 1024}, noise);
  WriteRaw(TempPath("big.idx"), bytes);
  WriteGzip(TempPath("big.idx.gz"), bytes);
  for (const char* name : {"big.idx", "big.idx.gz"}) {
    SCOPED_TRACE(name);
    std::atomic<bool> stop{true};
    IdxFileReader reader(TempPath(name));
    int cancelled = 0;
    int64_t before = 0;
    absl::StatusOr<IdxArray> array = reader.Read(&stop);
    while (absl::IsCancelled(array.status()) && cancelled < 10000) {
      EXPECT_THAT(array.status().message(), HasSubstr(TempPath(name)));
      ++cancelled;
      EXPECT_GT(reader.pieces(), before);  // each call goes on
      before = reader.pieces();
      array = reader.Read(&stop);
    }
    ASSERT_TRUE(array.ok()) << array.status();
    EXPECT_EQ(array->dims, (std::vector<int64_t>{3, 1024, 1024}));
    EXPECT_TRUE(array->data == noise);
    // The raw file is 3 pieces of 1 MiB (and a short last one); a gzip
    // file adds about 48 pieces of 64 KiB.
    EXPECT_GE(cancelled, std::string(name) == "big.idx" ? 3 : 48);
    EXPECT_EQ(reader.Read(&stop).status().code(), absl::StatusCode::kFailedPrecondition);
  }
}

TEST(IdxReaderTest, TruncatedDataNamesPathAndOffset) {
  std::string bytes = IdxBytes({3, 2, 4}, Iota(24));
  bytes.resize(bytes.size() - 5);  // header 16 + 19 data bytes
  WriteRaw(TempPath("t.idx"), bytes);
  auto array = ReadIdxFile(TempPath("t.idx"));
  ASSERT_FALSE(array.ok());
  EXPECT_EQ(array.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(array.status().message(), HasSubstr(TempPath("t.idx")));
  EXPECT_THAT(array.status().message(), HasSubstr("truncated"));
  EXPECT_THAT(array.status().message(), HasSubstr("byte offset 35"));
}

TEST(IdxReaderTest, TruncatedGzipStream) {
  const std::string bytes = IdxBytes({50, 20}, Iota(1000));
  WriteGzip(TempPath("full.gz"), bytes);
  std::ifstream in(TempPath("full.gz"), std::ios::binary);
  std::string gz((std::istreambuf_iterator<char>(in)), {});
  WriteRaw(TempPath("cut.gz"), gz.substr(0, gz.size() / 2));
  auto array = ReadIdxFile(TempPath("cut.gz"));
  ASSERT_FALSE(array.ok());
  EXPECT_THAT(array.status().message(), HasSubstr(TempPath("cut.gz")));
  EXPECT_THAT(array.status().message(), HasSubstr("truncated gzip stream"));
  EXPECT_THAT(array.status().message(), HasSubstr("byte offset"));
}

TEST(IdxReaderTest, CorruptGzipStream) {
  const std::string bytes = IdxBytes({50, 20}, Iota(1000));
  WriteGzip(TempPath("ok.gz"), bytes);
  std::ifstream in(TempPath("ok.gz"), std::ios::binary);
  std::string gz((std::istreambuf_iterator<char>(in)), {});
  for (size_t i = 12; i < gz.size() - 8; ++i) gz[i] = static_cast<char>(0xff);
  WriteRaw(TempPath("bad.gz"), gz);
  auto array = ReadIdxFile(TempPath("bad.gz"));
  ASSERT_FALSE(array.ok());
  EXPECT_THAT(array.status().message(), HasSubstr("corrupt gzip stream at compressed byte offset"));
}

TEST(IdxReaderTest, WrongMagicNumber) {
  std::string bytes = IdxBytes({4}, Iota(4));
  bytes[1] = 3;
  auto array = ParseIdx(bytes, "labels.idx");
  ASSERT_FALSE(array.ok());
  EXPECT_THAT(array.status().message(),
              HasSubstr("labels.idx: bad IDX magic number at byte offset 0"));
  bytes = IdxBytes({4}, Iota(4));
  bytes[2] = 0x0d;  // float data
  EXPECT_THAT(ParseIdx(bytes, "f.idx").status().message(),
              HasSubstr("unsupported IDX data type 0x0d at byte offset 2"));
}

TEST(IdxReaderTest, MissingFile) {
  auto array = ReadIdxFile(TempPath("nope.gz"));
  EXPECT_EQ(array.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(array.status().message(), HasSubstr("nope.gz: cannot open"));
}

TEST(DatasetTest, MismatchedImageAndLabelCounts) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/mismatch";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  WriteGzip(dir + "/train-images-idx3-ubyte.gz", IdxBytes({3, 2, 2}, Iota(12)));
  WriteGzip(dir + "/train-labels-idx1-ubyte.gz", IdxBytes({4}, {0, 1, 2, 3}));
  v1::DatasetSpec spec;
  spec.mutable_idx()->set_dir(dir);
  auto data = LoadDataset(spec, 1);
  ASSERT_FALSE(data.ok());
  EXPECT_THAT(data.status().message(), HasSubstr("image and label counts differ"));
  EXPECT_THAT(data.status().message(), HasSubstr("has 3 images"));
  EXPECT_THAT(data.status().message(), HasSubstr("has 4 labels"));
}

TEST(DatasetTest, LoadsFashionMnist) {
  v1::DatasetSpec spec;
  spec.mutable_idx();
  auto data = LoadDataset(spec, 1);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->train.size(), 60000);
  EXPECT_EQ(data->test.size(), 10000);
  EXPECT_EQ(data->train.sample_shape, Shape({1, 28, 28}));
  EXPECT_EQ(data->train.num_classes, 10);
  std::vector<int> per_class(10);
  for (int32_t l : data->train.labels) ++per_class[l];
  for (int c : per_class) EXPECT_EQ(c, 6000);  // Fashion-MNIST is balanced
  float lo = 1, hi = 0;
  for (float v : data->train.images.span()) lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_EQ(lo, 0.f);
  EXPECT_EQ(hi, 1.f);
}

// The real files loaded with the flag raised all along, one piece per
// call, equal value for value to a load in one go.
TEST(DatasetTest, AStoppedLoadGoesOnFromWhereItStoppedAndGivesTheSameData) {
  v1::DatasetSpec spec;
  spec.mutable_idx()->set_normalize_mean(0.286f);
  spec.mutable_idx()->set_normalize_std(0.353f);
  auto whole = LoadDataset(spec, 1);
  ASSERT_TRUE(whole.ok()) << whole.status();
  DatasetLoader loader(spec, 1);
  std::atomic<bool> stop{true};
  int cancelled = 0;
  int64_t before = 0;
  absl::StatusOr<DatasetSplits> pieces = loader.Load(&stop);
  while (absl::IsCancelled(pieces.status()) && cancelled < 100000) {
    ++cancelled;
    ASSERT_GT(loader.pieces(), before);  // each call goes on
    before = loader.pieces();
    pieces = loader.Load(&stop);
  }
  ASSERT_TRUE(pieces.ok()) << pieces.status();
  EXPECT_GT(cancelled, 500);  // ~30 MB of gzip in 64 KiB pieces, 55 Mi values to scale
  for (auto [a, b] : {std::pair{&whole->train, &pieces->train}, {&whole->test, &pieces->test}}) {
    EXPECT_EQ(a->sample_shape, b->sample_shape);
    EXPECT_EQ(a->num_classes, b->num_classes);
    EXPECT_EQ(a->labels, b->labels);
    ASSERT_EQ(a->images.span().size(), b->images.span().size());
    EXPECT_TRUE(
        std::equal(a->images.span().begin(), a->images.span().end(), b->images.span().begin()));
  }
}

TEST(DatasetTest, AFinalErrorIsReturnedAgainNotRetried) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/final";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  WriteGzip(dir + "/train-images-idx3-ubyte.gz", IdxBytes({3, 2, 2}, Iota(12)));
  WriteRaw(dir + "/train-labels-idx1-ubyte.gz", "\x1f\x8bnot gzip");
  v1::DatasetSpec spec;
  spec.mutable_idx()->set_dir(dir);
  DatasetLoader loader(spec, 1);
  absl::Status first = loader.Load(nullptr).status();
  EXPECT_EQ(first.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(first.message(), HasSubstr("train-labels-idx1-ubyte.gz"));
  // A good file now changes nothing: the error is final.
  WriteGzip(dir + "/train-labels-idx1-ubyte.gz", IdxBytes({3}, {0, 1, 2}));
  EXPECT_EQ(loader.Load(nullptr).status(), first);
}

TEST(DatasetTest, SyntheticIsDeterministicAndGathers) {
  v1::DatasetSpec spec;
  auto* s = spec.mutable_synthetic();
  s->set_train_examples(50);
  s->set_test_examples(10);
  s->set_channels(1);
  s->set_height(3);
  s->set_width(2);
  s->set_classes(4);
  s->set_noise(0.1f);
  auto a = LoadDataset(spec, 7), b = LoadDataset(spec, 7), c = LoadDataset(spec, 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->train.labels, b->train.labels);
  EXPECT_NE(a->train.labels, c->train.labels);
  Tensor images;
  std::vector<int32_t> labels;
  GatherBatch(a->train, std::vector<int64_t>{4, 0}, &images, &labels);
  EXPECT_EQ(images.shape(), Shape({2, 1, 3, 2}));
  EXPECT_EQ(labels, (std::vector<int32_t>{a->train.labels[4], a->train.labels[0]}));
  EXPECT_EQ(images.data()[6], a->train.images.data()[0]);
}

TEST(BatchPlanTest, EpochsArePermutationsThatDifferAndRepeat) {
  BatchPlan plan(10, 4, 99), again(10, 4, 99), other(10, 4, 100);
  EXPECT_EQ(plan.steps_per_epoch(), 3);
  const std::vector<int64_t> e0 = plan.Permutation(0);
  EXPECT_EQ(std::set<int64_t>(e0.begin(), e0.end()).size(), 10u);
  EXPECT_NE(e0, plan.Permutation(1));
  EXPECT_EQ(e0, again.Permutation(0));
  EXPECT_NE(e0, other.Permutation(0));
}

TEST(BatchPlanTest, StepsCoverTheEpochWithASmallerLastBatch) {
  BatchPlan plan(10, 4, 1);
  EXPECT_EQ(plan.BatchSize(0), 4);
  EXPECT_EQ(plan.BatchSize(2), 2);
  EXPECT_EQ(plan.BatchSize(3), 4);  // epoch 1, step 0
  EXPECT_EQ(plan.Position(4).epoch, 1);
  EXPECT_EQ(plan.Position(4).step_in_epoch, 1);
  std::vector<int64_t> all;
  for (int64_t s = 0; s < 3; ++s) {
    auto idx = plan.Indices(s, 0, plan.BatchSize(s));
    all.insert(all.end(), idx.begin(), idx.end());
  }
  EXPECT_EQ(all, plan.Permutation(0));
  // Slices of one batch concatenate to the whole batch.
  auto whole = plan.Indices(4, 0, 4);
  auto left = plan.Indices(4, 0, 1), right = plan.Indices(4, 1, 4);
  left.insert(left.end(), right.begin(), right.end());
  EXPECT_EQ(left, whole);
}

TEST(SplitBatchTest, ProportionalDisjointAndComplete) {
  auto s = SplitBatch(128, std::vector<double>{1, 1});
  EXPECT_EQ(s[0], (Slice(0, 64)));
  EXPECT_EQ(s[1], (Slice(64, 128)));
  s = SplitBatch(10, std::vector<double>{3, 1, 1});  // 6, 2, 2
  EXPECT_EQ(s[0].second, 6);
  EXPECT_EQ(s[2].second, 10);
  s = SplitBatch(7, std::vector<double>{1, 1, 1});  // 2.33 each: 3, 2, 2
  EXPECT_EQ(s[0], (Slice(0, 3)));
  EXPECT_EQ(s[1], (Slice(3, 5)));
  EXPECT_EQ(s[2], (Slice(5, 7)));
  s = SplitBatch(2, std::vector<double>{1, 1, 1, 1});  // fewer samples than ranks
  int64_t covered = 0;
  for (auto [b, e] : s) covered += e - b;
  EXPECT_EQ(covered, 2);
  EXPECT_EQ(s.back().second, 2);
}

}  // namespace
}  // namespace nightshift
