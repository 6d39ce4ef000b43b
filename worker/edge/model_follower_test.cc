// The edge agent's model follower against a fake coordinator that serves
// published versions piece by piece — and can cut the link, change its
// mind, or serve a corrupt file: a version is fetched only while the
// vehicle may download, resumes where a cut left it, is kept only once it
// verifies (SHA-256, loads as a model), and the version held before stays
// on disk until then.
#include "worker/edge/model_follower.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "checkpoint/small_model_for_tests.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "security/tokens.h"

namespace nightshift::edge {
namespace {

using testing::HasSubstr;

// A valid model file (4 -> `units` -> 2 MLP on {1, 2, 2} samples).
std::string ModelBytes(int units) { return SmallModelBytes(units, 0.01f); }

// The coordinator's FetchModel over published files, with faults on demand.
class FakeModelSource final : public ModelSource {
 public:
  v1::ModelVersion Publish(const std::string& name, int64_t version, const std::string& bytes) {
    v1::ModelVersion v;
    v.set_name(name);
    v.set_version(version);
    v.set_sha256(security::Sha256Hex(bytes));
    v.set_size_bytes(static_cast<int64_t>(bytes.size()));
    files_[{name, version}] = {v, bytes};
    return v;
  }
  absl::StatusOr<v1::FetchModelResponse> FetchModel(const v1::FetchModelRequest& r) override {
    offsets.push_back(r.offset());
    if (cut_after >= 0 && calls_++ >= cut_after) return absl::UnavailableError("link cut");
    auto it = files_.find({r.model_name(), r.version()});
    if (it == files_.end()) return absl::NotFoundError("no such version");
    std::string bytes = it->second.second;
    if (corrupt) bytes[bytes.size() / 2] ^= 1;  // the bytes, not the offer
    v1::FetchModelResponse response;
    *response.mutable_version() = it->second.first;
    response.set_offset(r.offset());
    response.set_data(bytes.substr(r.offset(), r.max_bytes()));
    return response;
  }
  int cut_after = -1;  // calls that succeed before the link is cut (-1: never cut)
  bool corrupt = false;
  std::vector<int64_t> offsets;  // of every request

 private:
  int calls_ = 0;
  std::map<std::pair<std::string, int64_t>, std::pair<v1::ModelVersion, std::string>> files_;
};

google::protobuf::RepeatedPtrField<v1::ModelVersion> Updates(const v1::ModelVersion& v) {
  google::protobuf::RepeatedPtrField<v1::ModelVersion> updates;
  *updates.Add() = v;
  return updates;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class ModelFollowerTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/" +
           testing::UnitTest::GetInstance()->current_test_info()->name();
    follower_ = NewFollower();
  }
  std::unique_ptr<ModelFollower> NewFollower() {
    ModelFollowerOptions options;
    options.models = {"fashion"};
    options.dir = dir_;
    options.chunk_bytes = 256;
    options.retry_after_refusal = absl::Minutes(10);
    return *ModelFollower::Create(options, &source_, &clock_, [this] {
      if (lapse_after_ >= 0 && lapse_after_-- == 0) may_download_ = false;
      return may_download_;
    });
  }
  int64_t HeldVersion() { return follower_->Held().at(0).version(); }

  std::string dir_;
  FakeModelSource source_;
  FakeClock clock_{absl::FromUnixSeconds(1800000000)};
  bool may_download_ = true;
  int lapse_after_ = -1;  // pieces allowed before eligibility lapses (-1: never)
  std::unique_ptr<ModelFollower> follower_;
};

TEST_F(ModelFollowerTest, AnOfferedVersionIsFetchedInPiecesVerifiedAndHeldAfterARestart) {
  ASSERT_EQ(follower_->Held().size(), 1u);
  EXPECT_EQ(HeldVersion(), 0);
  const std::string bytes = ModelBytes(8);
  follower_->Offer(Updates(source_.Publish("fashion", 1, bytes)));
  ASSERT_TRUE(follower_->FetchOffered().ok());
  EXPECT_EQ(HeldVersion(), 1);
  EXPECT_EQ(ReadAll(follower_->CurrentPath("fashion")), bytes);
  EXPECT_EQ(source_.offsets.size(), (bytes.size() + 255) / 256) << "pieces of chunk_bytes";
  EXPECT_EQ(follower_->counters().versions_fetched, 1);
  EXPECT_EQ(follower_->counters().bytes_fetched, static_cast<int64_t>(bytes.size()));
  EXPECT_FALSE(std::filesystem::exists(follower_->CurrentPath("fashion") + ".partial"));
  // Offered again (a heartbeat before the coordinator heard): nothing to do.
  follower_->Offer(Updates(source_.Publish("fashion", 1, bytes)));
  source_.offsets.clear();
  ASSERT_TRUE(follower_->FetchOffered().ok());
  EXPECT_TRUE(source_.offsets.empty());
  follower_ = NewFollower();
  EXPECT_EQ(HeldVersion(), 1) << "a restarted agent holds what it verified";
}

TEST_F(ModelFollowerTest, NothingIsFetchedUntilTheVehicleMayDownload) {
  may_download_ = false;
  follower_->Offer(Updates(source_.Publish("fashion", 1, ModelBytes(8))));
  ASSERT_TRUE(follower_->FetchOffered().ok());
  EXPECT_TRUE(source_.offsets.empty());
  EXPECT_EQ(HeldVersion(), 0);
  EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/fashion")) << "not even an empty partial file";
  may_download_ = true;
  ASSERT_TRUE(follower_->FetchOffered().ok());
  EXPECT_EQ(HeldVersion(), 1);
}

TEST_F(ModelFollowerTest, ALapseOrACutStopsBetweenPiecesAndItResumesWhereItStopped) {
  const std::string bytes = ModelBytes(40);
  ASSERT_GT(bytes.size(), 4u * 256);
  follower_->Offer(Updates(source_.Publish("fashion", 1, bytes)));
  lapse_after_ = 2;  // two pieces, then ignition on
  ASSERT_TRUE(follower_->FetchOffered().ok());
  EXPECT_EQ(source_.offsets, (std::vector<int64_t>{0, 256}));
  EXPECT_EQ(HeldVersion(), 0);
  may_download_ = true;
  source_.cut_after = 1;  // one more piece, then the link is cut
  EXPECT_EQ(follower_->FetchOffered().code(), absl::StatusCode::kUnavailable);
  // A restart in between changes nothing: the partial file is the state.
  follower_ = NewFollower();
  follower_->Offer(Updates(source_.Publish("fashion", 1, bytes)));
  source_.cut_after = -1;
  source_.offsets.clear();
  ASSERT_TRUE(follower_->FetchOffered().ok());
  ASSERT_FALSE(source_.offsets.empty());
  EXPECT_EQ(source_.offsets[0], 3 * 256) << "resumed from the partial file's end";
  EXPECT_EQ(ReadAll(follower_->CurrentPath("fashion")), bytes);
}

TEST_F(ModelFollowerTest, ACorruptDownloadIsRefusedAndTheVersionHeldStays) {
  const std::string v1_bytes = ModelBytes(8);
  follower_->Offer(Updates(source_.Publish("fashion", 1, v1_bytes)));
  ASSERT_TRUE(follower_->FetchOffered().ok());
  const std::string v1_path = follower_->CurrentPath("fashion");

  follower_->Offer(Updates(source_.Publish("fashion", 2, ModelBytes(12))));
  source_.corrupt = true;
  const absl::Status refused = follower_->FetchOffered();
  EXPECT_EQ(refused.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(refused.message(), HasSubstr("refused (kept v1): the download's SHA-256 is"));
  EXPECT_EQ(HeldVersion(), 1);
  EXPECT_EQ(follower_->CurrentPath("fashion"), v1_path);
  EXPECT_EQ(ReadAll(v1_path), v1_bytes);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/fashion/v2.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/fashion/v2.safetensors.partial"));
  EXPECT_EQ(follower_->counters().refused, 1);
  // Not tried again before retry_after_refusal, then fetched once good.
  source_.corrupt = false;
  source_.offsets.clear();
  ASSERT_TRUE(follower_->FetchOffered().ok());
  EXPECT_TRUE(source_.offsets.empty());
  clock_.Advance(absl::Minutes(11));
  ASSERT_TRUE(follower_->FetchOffered().ok());
  EXPECT_EQ(HeldVersion(), 2);
  EXPECT_FALSE(std::filesystem::exists(v1_path)) << "the old version goes once the new is in";
}

// A file whose bytes match the offer's SHA-256 but is no model (the
// coordinator checks what it publishes; the vehicle checks again).
TEST_F(ModelFollowerTest, AFileThatIsNoModelIsRefusedEvenWithTheRightChecksum) {
  follower_->Offer(Updates(source_.Publish("fashion", 1, "not a safetensors file at all")));
  const absl::Status refused = follower_->FetchOffered();
  EXPECT_EQ(refused.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(refused.message(), HasSubstr("refused (kept v0)"));
  EXPECT_EQ(HeldVersion(), 0);
  EXPECT_EQ(follower_->CurrentPath("fashion"), "");
}

TEST_F(ModelFollowerTest, OffersOfModelsNotFollowedOrOlderVersionsAreIgnored) {
  follower_->Offer(Updates(source_.Publish("other", 3, ModelBytes(8))));
  ASSERT_TRUE(follower_->FetchOffered().ok());
  EXPECT_TRUE(source_.offsets.empty());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/other"));
}

}  // namespace
}  // namespace nightshift::edge
