// The published models' registry on a real SQLite file and real model
// files: versions count up per name, a retried publish adds nothing, what
// is refused leaves no trace, followers hear of newer versions only, reads
// resume from any offset, and a reopened store has every version back.
#include "coordinator/model_registry.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "checkpoint/safetensors.h"
#include "checkpoint/small_model_for_tests.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "security/tokens.h"

namespace nightshift::coordinator {
namespace {

using testing::HasSubstr;

std::string TempDir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::filesystem::create_directories(dir);
  return dir;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A model file of a 4 -> `units` -> 2 MLP; `scale` makes its values (and
// so its bytes) differ from another's.
std::string WriteModel(const std::string& path, int units, float scale) {
  std::ofstream(path, std::ios::binary) << SmallModelBytes(units, scale);
  return path;
}

v1::JobStatus Job(const std::string& id, v1::JobState state, float accuracy = 0.9f) {
  v1::JobStatus job;
  job.set_id(id);
  job.set_state(state);
  job.mutable_progress()->set_test_accuracy(accuracy);
  return job;
}

google::protobuf::RepeatedPtrField<v1::FollowedModel> Holding(const std::string& name,
                                                              int64_t version) {
  google::protobuf::RepeatedPtrField<v1::FollowedModel> followed;
  v1::FollowedModel* f = followed.Add();
  f->set_name(name);
  f->set_version(version);
  return followed;
}

class ModelRegistryTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir(testing::UnitTest::GetInstance()->current_test_info()->name());
    store_ = *JobStore::Open(dir_ + "/state.db");
    registry_ = *ModelRegistry::Create(store_.get(), dir_ + "/models");
  }
  std::string dir_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<ModelRegistry> registry_;
  const absl::Time now_ = absl::FromUnixSeconds(1800000000);
};

TEST_F(ModelRegistryTest, VersionsCountUpPerNameAndKeepTheirOwnCopy) {
  const std::string a = WriteModel(dir_ + "/a.safetensors", 3, 0.5f);
  const std::string b = WriteModel(dir_ + "/b.safetensors", 3, 0.25f);
  auto v1 = registry_->Publish(Job("job-a", v1::JOB_STATE_SUCCEEDED, 0.81f), "fashion", a, now_);
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_TRUE(v1->created);
  EXPECT_EQ(v1->version.version(), 1);
  EXPECT_EQ(v1->version.job_id(), "job-a");
  EXPECT_FLOAT_EQ(v1->version.test_accuracy(), 0.81f);
  EXPECT_EQ(v1->version.size_bytes(), static_cast<int64_t>(ReadAll(a).size()));
  EXPECT_EQ(v1->version.sha256(), security::Sha256Hex(ReadAll(a)));
  auto v2 = registry_->Publish(Job("job-b", v1::JOB_STATE_SUCCEEDED), "fashion", b, now_);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->version.version(), 2);
  // Another name starts at 1; the same job again is the version it was.
  EXPECT_EQ(registry_->Publish(Job("job-b", v1::JOB_STATE_SUCCEEDED), "other", b, now_)
                ->version.version(),
            1);
  auto again = registry_->Publish(Job("job-a", v1::JOB_STATE_SUCCEEDED), "fashion", a, now_);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->version.version(), 1);
  EXPECT_EQ(registry_->List("fashion").size(), 2u);
  EXPECT_EQ(registry_->List("").size(), 3u);
  // The job's own file may go: the version is a copy.
  std::filesystem::remove(a);
  EXPECT_EQ(ReadAll(dir_ + "/models/fashion/v1.safetensors").size(),
            static_cast<size_t>(v1->version.size_bytes()));
}

TEST_F(ModelRegistryTest, WhatIsRefusedLeavesNoVersion) {
  const std::string good = WriteModel(dir_ + "/good.safetensors", 3, 1);
  auto failed = registry_->Publish(Job("job-f", v1::JOB_STATE_FAILED), "fashion", good, now_);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(failed.status().message(), HasSubstr("job job-f is FAILED"));

  auto bad_name = registry_->Publish(Job("j", v1::JOB_STATE_SUCCEEDED), "../etc", good, now_);
  EXPECT_EQ(bad_name.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_name.status().message(), HasSubstr("model_name: '../etc' is not a model name"));

  // Truncated, and a file whose tensors are not the ones it describes.
  const std::string bytes = ReadAll(good);
  std::ofstream(dir_ + "/torn.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  auto torn = registry_->Publish(Job("j", v1::JOB_STATE_SUCCEEDED), "fashion",
                                 dir_ + "/torn.safetensors", now_);
  EXPECT_EQ(torn.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(torn.status().message(), HasSubstr("torn.safetensors"));
  SafetensorsWriter w;
  w.Add("layers.1.weight", Tensor({3, 4}));
  w.AddMetadata("model_spec", "layers { flatten {} } layers { dense { units: 3 } }");
  w.AddMetadata("input_shape", "1,2,2");
  w.AddMetadata("normalize_mean", "0");
  w.AddMetadata("normalize_std", "0");
  ASSERT_TRUE(w.WriteFile(dir_ + "/partial.safetensors").ok());
  auto partial = registry_->Publish(Job("j", v1::JOB_STATE_SUCCEEDED), "fashion",
                                    dir_ + "/partial.safetensors", now_);
  EXPECT_THAT(partial.status().message(),
              HasSubstr("partial.safetensors: no tensor named layers.1.bias"));

  EXPECT_TRUE(registry_->List("").empty());
  EXPECT_TRUE(store_->ModelVersions()->empty());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/models/fashion/v1.safetensors"));
}

TEST_F(ModelRegistryTest, FollowersHearOfNewerVersionsOnly) {
  EXPECT_TRUE(registry_->Newer(Holding("fashion", 0)).empty());  // nothing published yet
  ASSERT_TRUE(registry_
                  ->Publish(Job("a", v1::JOB_STATE_SUCCEEDED), "fashion",
                            WriteModel(dir_ + "/a.safetensors", 3, 1), now_)
                  .ok());
  ASSERT_TRUE(registry_
                  ->Publish(Job("b", v1::JOB_STATE_SUCCEEDED), "fashion",
                            WriteModel(dir_ + "/b.safetensors", 3, 2), now_)
                  .ok());
  for (int held : {0, 1}) {
    std::vector<v1::ModelVersion> newer = registry_->Newer(Holding("fashion", held));
    ASSERT_EQ(newer.size(), 1u) << held;
    EXPECT_EQ(newer[0].version(), 2);  // the newest, not the next
  }
  EXPECT_TRUE(registry_->Newer(Holding("fashion", 2)).empty());
  EXPECT_TRUE(registry_->Newer(Holding("unknown", 0)).empty());
}

TEST_F(ModelRegistryTest, ReadsResumeFromAnyOffsetAndNameTheirVersion) {
  const std::string path = WriteModel(dir_ + "/a.safetensors", 40, 1);
  ASSERT_TRUE(registry_->Publish(Job("a", v1::JOB_STATE_SUCCEEDED), "fashion", path, now_).ok());
  const std::string want = ReadAll(path);
  std::string got;
  v1::FetchModelRequest request;
  request.set_model_name("fashion");  // version 0: the newest
  request.set_max_bytes(100);
  while (got.size() < want.size()) {
    request.set_offset(static_cast<int64_t>(got.size()));
    absl::StatusOr<v1::FetchModelResponse> r = registry_->Read(request);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->offset(), request.offset());
    ASSERT_LE(r->data().size(), 100u);
    ASSERT_FALSE(r->data().empty());
    EXPECT_EQ(r->version().version(), 1);
    got += r->data();
  }
  EXPECT_EQ(got, want);
  request.set_offset(static_cast<int64_t>(want.size()));
  EXPECT_TRUE(registry_->Read(request)->data().empty());  // at the end: done
  request.set_offset(static_cast<int64_t>(want.size()) + 1);
  EXPECT_EQ(registry_->Read(request).status().code(), absl::StatusCode::kOutOfRange);
  request.set_offset(0);
  request.set_version(2);
  EXPECT_THAT(registry_->Read(request).status().message(),
              HasSubstr("model fashion has no version 2 (newest: 1)"));
  request.set_model_name("nope");
  EXPECT_EQ(registry_->Read(request).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelRegistryTest, AReopenedStoreHasEveryVersionBack) {
  ASSERT_TRUE(registry_
                  ->Publish(Job("a", v1::JOB_STATE_SUCCEEDED), "fashion",
                            WriteModel(dir_ + "/a.safetensors", 3, 1), now_)
                  .ok());
  registry_.reset();
  store_.reset();
  store_ = *JobStore::Open(dir_ + "/state.db");
  registry_ = *ModelRegistry::Create(store_.get(), dir_ + "/models");
  ASSERT_EQ(registry_->List("fashion").size(), 1u);
  auto next = registry_->Publish(Job("b", v1::JOB_STATE_SUCCEEDED), "fashion",
                                 WriteModel(dir_ + "/b.safetensors", 3, 2), now_);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->version.version(), 2);
}

}  // namespace
}  // namespace nightshift::coordinator
