// The local trainer on the synthetic data set: it learns, it evaluates and
// checkpoints when the spec says, and a run resumed from a checkpoint ends
// with exactly the parameters of a run that never stopped.
#include "worker/trainer.h"

#include <cstdlib>

#include "checkpoint/safetensors.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace nightshift {
namespace {

std::string TempDir(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

v1::JobSpec SyntheticSpec() {
  v1::JobSpec spec;
  google::protobuf::TextFormat::ParseFromString(R"pb(
                                                  model {
                                                    layers { flatten {} }
                                                    layers { dense { units: 32 } }
                                                    layers { relu {} }
                                                    layers { dense { units: 5 } }
                                                  }
                                                  dataset {
                                                    synthetic {
                                                      train_examples: 1000
                                                      test_examples: 300
                                                      channels: 1
                                                      height: 6
                                                      width: 6
                                                      classes: 5
                                                      noise: 2.0
                                                    }
                                                  }
                                                  optimizer { sgd { lr: 0.02 momentum: 0.9 } }
                                                  lr_schedule {
                                                    cosine { min_lr: 0.001 }
                                                    warmup_steps: 5
                                                  }
                                                  global_batch_size: 64
                                                  epochs: 3
                                                  seed: 11
                                                )pb",
                                                &spec);
  return spec;
}

TEST(TrainerTest, CutsTheLossAndEvaluatesEachEpoch) {
  std::vector<v1::Progress> reports, evaluations;
  TrainerOptions options;
  options.progress_interval_steps = 4;
  options.on_progress = [&](const v1::Progress& p) { reports.push_back(p); };
  options.on_evaluation = [&](const v1::Progress& p) { evaluations.push_back(p); };
  auto trainer = Trainer::Create(SyntheticSpec(), options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  EXPECT_EQ((*trainer)->total_steps(), 3 * 16);  // ceil(1000 / 64) = 16
  auto result = (*trainer)->Run();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_GE(reports.size(), 3u);
  // The loss falls by at least a factor of 4 from the first report to the
  // last (chance level is ln 5 = 1.61).
  EXPECT_GT(reports.front().loss(), 1.0f);
  EXPECT_LT(reports.back().loss(), reports.front().loss() / 4);
  EXPECT_GT(result->test_accuracy, 0.8f);  // chance is 0.2
  ASSERT_EQ(evaluations.size(), 3u);       // once per epoch, the last at the end
  EXPECT_EQ(evaluations[0].step(), 16);
  EXPECT_EQ(evaluations[2].step(), 48);
  EXPECT_EQ(evaluations[2].test_accuracy(), result->test_accuracy);
  EXPECT_EQ(reports.back().step(), 48);
  EXPECT_EQ(reports.back().total_steps(), 48);
}

TEST(TrainerTest, ResumedRunEqualsUninterruptedRun) {
  v1::JobSpec spec = SyntheticSpec();
  spec.set_checkpoint_interval_steps(20);  // lands mid-epoch (epoch 1, step 4)
  spec.mutable_optimizer()->Clear();
  spec.mutable_optimizer()->mutable_adamw()->set_lr(0.005f);

  TrainerOptions straight;
  straight.out_dir = TempDir("straight");
  auto a = Trainer::Create(spec, straight);
  ASSERT_TRUE(a.ok()) << a.status();
  auto ra = (*a)->Run();
  ASSERT_TRUE(ra.ok()) << ra.status();

  TrainerOptions resumed;
  resumed.out_dir = TempDir("resumed");
  resumed.resume_path = TempDir("straight") + "/checkpoint-step-0000020.safetensors";
  auto b = Trainer::Create(spec, resumed);
  ASSERT_TRUE(b.ok()) << b.status();
  auto rb = (*b)->Run();
  ASSERT_TRUE(rb.ok()) << rb.status();

  auto pa = (*a)->model().flat_parameters(), pb = (*b)->model().flat_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) ASSERT_EQ(pa[i], pb[i]) << i;
  EXPECT_EQ(ra->test_accuracy, rb->test_accuracy);

  // The exported model holds exactly the final parameters.
  auto file = SafetensorsFile::Read(rb->model_path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto w = file->GetFloat32("layers.3.weight");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->shape(), Shape({5, 32}));
  const Parameter& p = (*b)->model().parameters()[2];
  ASSERT_EQ(p.name, "layers.3.weight");
  for (int64_t i = 0; i < w->size(); ++i) ASSERT_EQ(w->data()[i], p.value.data()[i]);
  EXPECT_EQ(file->metadata().at("step"), "48");
}

TEST(TrainerTest, ResumeRefusesACheckpointOfAnotherSpec) {
  v1::JobSpec spec = SyntheticSpec();
  spec.set_checkpoint_interval_steps(16);
  TrainerOptions options;
  options.out_dir = TempDir("first");
  auto a = Trainer::Create(spec, options);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->Run().ok());
  spec.set_seed(12);
  options.resume_path = TempDir("first") + "/checkpoint-step-0000016.safetensors";
  auto b = Trainer::Create(spec, options);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(b.status().message(), testing::HasSubstr("different job spec"));
}

TEST(TrainerTest, MissingDatasetNamesThePath) {
  v1::JobSpec spec = SyntheticSpec();
  spec.mutable_dataset()->mutable_idx()->set_dir("/nonexistent/data");
  spec.mutable_model()->mutable_layers(3)->mutable_dense()->set_units(10);
  auto t = Trainer::Create(spec, {});
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(t.status().message(),
              testing::HasSubstr("/nonexistent/data/train-images-idx3-ubyte.gz: cannot open"));
}

}  // namespace
}  // namespace nightshift
