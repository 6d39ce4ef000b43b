// JobsWireCache against a real JobStore on SQLite: its bytes parse to what
// ListJobs returns, a poll with no change reuses them, and a change to one
// job shows in the next poll.
#include "coordinator/jobs_wire_cache.h"

#include <cstdlib>

#include "gtest/gtest.h"
#include "nightshift/v1/coordinator.pb.h"

namespace nightshift::coordinator {
namespace {

class JobsWireCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store =
        JobStore::Open(std::string(std::getenv("TEST_TMPDIR")) + "/" +
                       ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    for (const char* id : {"b", "a", "c"}) {
      v1::JobStatus job;
      job.set_id(id);
      job.set_state(v1::JOB_STATE_QUEUED);
      job.set_reason(std::string(300, 'x'));  // lengths past one varint byte
      ASSERT_TRUE(store_->InsertJob(job).ok());
    }
  }

  std::shared_ptr<const std::string> Poll() {
    return cache_.Get(store_->jobs_version(), [this] { return store_->Snapshot(); });
  }

  // The reply as the client parses it, against the store's own list.
  void ExpectMatchesStore(const std::string& bytes) {
    v1::ListJobsResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(bytes));
    absl::StatusOr<std::vector<v1::JobStatus>> jobs = store_->ListJobs();
    ASSERT_TRUE(jobs.ok());
    v1::ListJobsResponse expected;
    for (const v1::JobStatus& j : *jobs) *expected.add_jobs() = j;
    EXPECT_EQ(parsed.SerializeAsString(), expected.SerializeAsString());
    EXPECT_EQ(parsed.jobs_size(), 3);
  }

  std::unique_ptr<JobStore> store_;
  JobsWireCache cache_;
};

TEST_F(JobsWireCacheTest, BytesParseToTheStoresListInItsOrder) {
  std::shared_ptr<const std::string> bytes = Poll();
  ExpectMatchesStore(*bytes);
  v1::ListJobsResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(*bytes));
  EXPECT_EQ(parsed.jobs(0).id(), "b");
  EXPECT_EQ(parsed.jobs(1).id(), "a");
  EXPECT_EQ(parsed.jobs(2).id(), "c");
}

TEST_F(JobsWireCacheTest, AnUnchangedStoreReusesTheBytes) {
  std::shared_ptr<const std::string> first = Poll();
  EXPECT_EQ(Poll().get(), first.get());  // no rebuild, no copy
}

TEST_F(JobsWireCacheTest, AChangedJobShowsInTheNextPoll) {
  std::shared_ptr<const std::string> before = Poll();
  v1::JobStatus a;
  a.set_id("a");
  a.set_state(v1::JOB_STATE_RUNNING);
  a.set_reason("started on 2 workers");
  ASSERT_TRUE(store_->UpdateJob(a).ok());
  std::shared_ptr<const std::string> after = Poll();
  EXPECT_NE(after.get(), before.get());
  ExpectMatchesStore(*after);
  v1::ListJobsResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(*after));
  EXPECT_EQ(parsed.jobs(1).state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(parsed.jobs(1).reason(), "started on 2 workers");
  EXPECT_EQ(parsed.jobs(0).reason(), std::string(300, 'x'));  // the others as they were
}

}  // namespace
}  // namespace nightshift::coordinator
