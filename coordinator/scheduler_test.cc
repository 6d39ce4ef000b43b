#include "coordinator/scheduler.h"

#include "gtest/gtest.h"

namespace nightshift::coordinator {
namespace {

v1::JobStatus Job(const std::string& id, int min, int max) {
  v1::JobStatus j;
  j.set_id(id);
  j.mutable_spec()->set_min_workers(min);
  j.mutable_spec()->set_max_workers(max);
  return j;
}

FreeWorker Dc(const std::string& id, double rate) { return {id, v1::WORKER_POOL_DATACENTER, rate}; }

TEST(SchedulerTest, FifoTakesUpToMaxFastestFirst) {
  auto plan =
      PlanPlacements({Job("a", 2, 2), Job("b", 1, 0)}, {Dc("w1", 10), Dc("w2", 30), Dc("w3", 20)});
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].job_id, "a");
  ASSERT_EQ(plan[0].workers.size(), 2u);
  EXPECT_EQ(plan[0].workers[0].id, "w2");
  EXPECT_EQ(plan[0].workers[1].id, "w3");
  EXPECT_EQ(plan[1].workers[0].id, "w1");  // disjoint
}

TEST(SchedulerTest, AJobThatDoesNotFitWaitsWithoutBlockingOthers) {
  auto plan = PlanPlacements({Job("big", 3, 3), Job("small", 1, 1)}, {Dc("w1", 1), Dc("w2", 1)});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].job_id, "small");
}

TEST(SchedulerTest, AllreduceJobsNeverGetEdgeWorkers) {
  auto plan = PlanPlacements({Job("a", 1, 4)}, {{"car", v1::WORKER_POOL_EDGE, 100}, Dc("w1", 1)});
  ASSERT_EQ(plan.size(), 1u);
  ASSERT_EQ(plan[0].workers.size(), 1u);
  EXPECT_EQ(plan[0].workers[0].id, "w1");
  EXPECT_TRUE(PlanPlacements({Job("a", 1, 1)}, {{"car", v1::WORKER_POOL_EDGE, 1}}).empty());
}

}  // namespace
}  // namespace nightshift::coordinator
