// JobSpec loading and validation: a table of bad specs, each refused with
// INVALID_ARGUMENT naming its field; the shipped examples are valid.
#include "spec/job_spec.h"

#include <cstdlib>
#include <fstream>
#include <functional>

#include "glog/logging.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "spec/diloco.h"

namespace nightshift {
namespace {

using testing::HasSubstr;
using testing::StartsWith;

v1::JobSpec GoodSpec() {
  v1::JobSpec spec;
  CHECK(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        model {
          layers { conv2d { filters: 4 kernel_size: 3 padding: 1 } }
          layers { relu {} }
          layers { max_pool2d { kernel_size: 2 } }
          layers { flatten {} }
          layers { dense { units: 10 } }
        }
        dataset { idx {} }
        optimizer { sgd { lr: 0.1 momentum: 0.9 } }
        lr_schedule {
          cosine { min_lr: 0.001 }
          warmup_steps: 10
        }
        global_batch_size: 64
        epochs: 2
        seed: 1
      )pb",
      &spec));
  return spec;
}

struct BadSpec {
  const char* what;
  std::function<void(v1::JobSpec&)> mutate;
  const char* field;  // the message must start with this
};

class BadSpecTest : public testing::TestWithParam<BadSpec> {};

TEST_P(BadSpecTest, IsRefusedNamingTheField) {
  v1::JobSpec spec = GoodSpec();
  GetParam().mutate(spec);
  absl::Status s = ValidateJobSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << GetParam().what;
  EXPECT_THAT(std::string(s.message()), StartsWith(GetParam().field)) << GetParam().what;
}

const BadSpec kBadSpecs[] = {
    {"zero lr", [](v1::JobSpec& s) { s.mutable_optimizer()->mutable_sgd()->set_lr(0); },
     "optimizer.sgd.lr: must be > 0"},
    {"momentum 1", [](v1::JobSpec& s) { s.mutable_optimizer()->mutable_sgd()->set_momentum(1); },
     "optimizer.sgd.momentum"},
    {"nesterov without momentum",
     [](v1::JobSpec& s) {
       s.mutable_optimizer()->mutable_sgd()->set_momentum(0);
       s.mutable_optimizer()->mutable_sgd()->set_nesterov(true);
     },
     "optimizer.sgd.nesterov"},
    {"negative weight decay",
     [](v1::JobSpec& s) { s.mutable_optimizer()->mutable_sgd()->set_weight_decay(-1); },
     "optimizer.sgd.weight_decay"},
    {"adamw beta2",
     [](v1::JobSpec& s) {
       s.mutable_optimizer()->mutable_adamw()->set_lr(0.001f);
       s.mutable_optimizer()->mutable_adamw()->set_beta2(1.5f);
     },
     "optimizer.adamw.beta2"},
    {"no optimizer", [](v1::JobSpec& s) { s.clear_optimizer(); }, "optimizer: set sgd or adamw"},
    {"no dataset", [](v1::JobSpec& s) { s.clear_dataset(); }, "dataset: set idx or synthetic"},
    {"synthetic without classes",
     [](v1::JobSpec& s) {
       auto* d = s.mutable_dataset()->mutable_synthetic();
       d->set_train_examples(10);
       d->set_test_examples(10);
       d->set_channels(1);
       d->set_height(28);
       d->set_width(28);
     },
     "dataset.synthetic.classes"},
    {"empty model", [](v1::JobSpec& s) { s.mutable_model()->clear_layers(); },
     "model.layers: must not be empty"},
    {"layer without kind", [](v1::JobSpec& s) { s.mutable_model()->mutable_layers(1)->Clear(); },
     "model.layers[1]: no layer kind"},
    {"dense on an image",
     [](v1::JobSpec& s) { s.mutable_model()->mutable_layers()->SwapElements(3, 4); },
     "model.layers[3].dense: input has shape [4, 14, 14]"},
    {"zero units",
     [](v1::JobSpec& s) { s.mutable_model()->mutable_layers(4)->mutable_dense()->set_units(0); },
     "model.layers[4].dense.units: must be > 0"},
    {"kernel larger than the image",
     [](v1::JobSpec& s) {
       s.mutable_model()->mutable_layers(0)->mutable_conv2d()->set_kernel_size(31);
     },
     "model.layers[0].conv2d: kernel_size 31 is larger"},
    {"wrong class count",
     [](v1::JobSpec& s) { s.mutable_model()->mutable_layers(4)->mutable_dense()->set_units(7); },
     "model.layers[4]: the model's output is [7] but the data set has 10 classes"},
    {"zero batch", [](v1::JobSpec& s) { s.set_global_batch_size(0); },
     "global_batch_size: must be > 0"},
    {"no duration", [](v1::JobSpec& s) { s.clear_epochs(); }, "epochs: set epochs or steps"},
    {"negative steps", [](v1::JobSpec& s) { s.set_steps(-3); }, "steps: must be > 0"},
    {"negative eval interval", [](v1::JobSpec& s) { s.set_eval_interval_steps(-1); },
     "eval_interval_steps"},
    {"step schedule gamma",
     [](v1::JobSpec& s) {
       s.mutable_lr_schedule()->mutable_step()->set_step_size(10);
       s.mutable_lr_schedule()->mutable_step()->set_gamma(2);
     },
     "lr_schedule.step.gamma"},
    {"cosine floor above lr",
     [](v1::JobSpec& s) { s.mutable_lr_schedule()->mutable_cosine()->set_min_lr(0.5f); },
     "lr_schedule.cosine.min_lr"},
    {"edge pool with allreduce",
     [](v1::JobSpec& s) {
       s.add_pools(v1::WORKER_POOL_DATACENTER);
       s.add_pools(v1::WORKER_POOL_EDGE);
     },
     "pools[1]: the edge pool needs sync.diloco"},
    {"diloco without inner steps",
     [](v1::JobSpec& s) { s.mutable_sync()->mutable_diloco()->set_outer_lr(0.7f); },
     "sync.diloco.inner_steps"},
    {"diloco counted in epochs",
     [](v1::JobSpec& s) { s.mutable_sync()->mutable_diloco()->set_inner_steps(5); },
     "sync.diloco.rounds: set rounds, or steps"},
    {"diloco parameters in float16",
     [](v1::JobSpec& s) {
       s.mutable_sync()->mutable_diloco()->set_inner_steps(5);
       s.mutable_sync()->mutable_diloco()->set_rounds(3);
       s.mutable_sync()->mutable_diloco()->set_parameter_dtype(v1::WIRE_DTYPE_FLOAT16);
     },
     "sync.diloco.parameter_dtype"},
    {"diloco shards with a negative alpha",
     [](v1::JobSpec& s) {
       s.mutable_sync()->mutable_diloco()->set_inner_steps(5);
       s.mutable_sync()->mutable_diloco()->set_rounds(3);
       s.mutable_sync()->mutable_diloco()->mutable_shards()->set_dirichlet_alpha(-1);
     },
     "sync.diloco.shards.dirichlet_alpha"},
    {"diloco partial fraction above one",
     [](v1::JobSpec& s) {
       s.mutable_sync()->mutable_diloco()->set_inner_steps(5);
       s.mutable_sync()->mutable_diloco()->set_rounds(3);
       s.mutable_sync()->mutable_diloco()->set_min_partial_fraction(2);
     },
     "sync.diloco.min_partial_fraction"},
    {"diloco min_cosine below -1",
     [](v1::JobSpec& s) {
       s.mutable_sync()->mutable_diloco()->set_inner_steps(5);
       s.mutable_sync()->mutable_diloco()->set_rounds(3);
       s.mutable_sync()->mutable_diloco()->set_min_cosine(-2);
     },
     "sync.diloco.min_cosine"},
    {"diloco join window of a negative length",
     [](v1::JobSpec& s) {
       s.mutable_sync()->mutable_diloco()->set_inner_steps(5);
       s.mutable_sync()->mutable_diloco()->set_rounds(3);
       s.mutable_sync()->mutable_diloco()->set_join_window_seconds(-1);
     },
     "sync.diloco.join_window_seconds"},
    {"max below min",
     [](v1::JobSpec& s) {
       s.set_min_workers(3);
       s.set_max_workers(2);
     },
     "max_workers"},
    // Bounds: a valid-looking spec must not make anyone allocate without limit.
    {"a 64 MiB name", [](v1::JobSpec& s) { s.set_name(std::string(64 << 20, 'x')); },
     "spec: 67108"},
    {"a long data path",
     [](v1::JobSpec& s) { s.mutable_dataset()->mutable_idx()->set_dir(std::string(5000, 'd')); },
     "dataset.idx.dir: longer than 4096 bytes (kMaxSpecStringBytes)"},
    {"300 layers",
     [](v1::JobSpec& s) {
       for (int i = 0; i < 300; ++i) s.mutable_model()->add_layers()->mutable_relu();
     },
     "model.layers: 305 layers, over 256 (kMaxLayers)"},
    {"a billion parameters",
     [](v1::JobSpec& s) {
       s.mutable_model()->mutable_layers(4)->mutable_dense()->set_units(40000);
       s.mutable_model()->add_layers()->mutable_dense()->set_units(10000);
       s.mutable_model()->add_layers()->mutable_dense()->set_units(10);
     },
     "model.layers: "},
    {"a batch whose activations do not fit",
     [](v1::JobSpec& s) { s.set_global_batch_size(100000); },
     "global_batch_size: 100000 x the largest activation (3136 elements per sample)"},
    {"a synthetic data set too large",
     [](v1::JobSpec& s) {
       s.mutable_dataset()->mutable_synthetic()->set_train_examples(1 << 30);
       s.mutable_dataset()->mutable_synthetic()->set_channels(1);
       s.mutable_dataset()->mutable_synthetic()->set_height(28);
       s.mutable_dataset()->mutable_synthetic()->set_width(28);
       s.mutable_dataset()->mutable_synthetic()->set_classes(10);
     },
     "dataset.synthetic: examples x sample size over"},
};

INSTANTIATE_TEST_SUITE_P(Table, BadSpecTest, testing::ValuesIn(kBadSpecs));

TEST(ValidateJobSpecTest, GoodSpecPasses) {
  EXPECT_TRUE(ValidateJobSpec(GoodSpec()).ok()) << ValidateJobSpec(GoodSpec());
}

TEST(LoadJobSpecTest, ReadsTextAndJsonAndNamesParseErrors) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  std::ofstream(dir + "/a.textproto") << "global_batch_size: 32\nepochs: 2\n";
  std::ofstream(dir + "/a.json") << R"({"globalBatchSize": 32, "steps": "100"})";
  std::ofstream(dir + "/bad.textproto") << "global_batch_size: 32\nepoch: 2\n";
  auto text = LoadJobSpec(dir + "/a.textproto");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(text->global_batch_size(), 32);
  auto json = LoadJobSpec(dir + "/a.json");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->steps(), 100);
  auto bad = LoadJobSpec(dir + "/bad.textproto");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("line 2"));
  EXPECT_THAT(bad.status().message(), HasSubstr("epoch"));
  EXPECT_EQ(LoadJobSpec(dir + "/missing.textproto").status().code(), absl::StatusCode::kNotFound);
}

TEST(LoadJobSpecTest, ShippedExamplesAreValid) {
  for (const char* path : {"examples/fashion_mlp.textproto", "examples/fashion_cnn.textproto",
                           "examples/synthetic_mlp.textproto"}) {
    auto spec = LoadJobSpec(path);
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_TRUE(ValidateJobSpec(*spec).ok()) << path << ": " << ValidateJobSpec(*spec);
  }
}

TEST(TotalStepsTest, EpochsRoundUpPartialBatches) {
  v1::JobSpec spec = GoodSpec();
  EXPECT_EQ(TotalSteps(spec, 60000), 2 * 938);  // 60000 / 64 = 937.5
  spec.set_steps(17);
  EXPECT_EQ(TotalSteps(spec, 60000), 17);
}

// Unset DiLoCo fields mean the documented defaults (job.proto), the same
// for the coordinator and the agents.
TEST(DiLoCoSettingsTest, UnsetFieldsTakeTheDocumentedDefaults) {
  v1::JobSpec spec;
  spec.set_steps(95);
  spec.set_global_batch_size(64);
  spec.set_min_workers(4);
  spec.set_max_workers(8);
  spec.add_pools(v1::WORKER_POOL_EDGE);
  spec.mutable_sync()->mutable_diloco()->set_inner_steps(10);
  const DiLoCoSettings d = ResolveDiLoCo(spec);
  EXPECT_EQ(d.rounds, 10);  // ceil(95 / 10)
  EXPECT_FLOAT_EQ(d.outer_lr, 0.7);
  EXPECT_FLOAT_EQ(d.outer_momentum, 0.9);
  EXPECT_TRUE(d.outer_nesterov);
  EXPECT_EQ(d.aggregation, v1::AGGREGATION_CENTERED_CLIP);  // the edge pool is in it
  EXPECT_EQ(d.delta_encoding, v1::DELTA_ENCODING_INT8_BLOCKWISE);
  EXPECT_EQ(d.delta_block, 256);
  EXPECT_EQ(d.quorum, 4);
  EXPECT_EQ(d.selected_per_round, 6);  // ceil(4 * 1.3)
  EXPECT_EQ(d.max_staleness, 1);
  EXPECT_EQ(d.shard_count, 8);
  EXPECT_EQ(d.replica_batch_size, 64);
  spec.clear_pools();
  spec.mutable_sync()->mutable_diloco()->set_outer_momentum(0);
  spec.mutable_sync()->mutable_diloco()->set_over_selection(0);
  const DiLoCoSettings plain = ResolveDiLoCo(spec);
  EXPECT_EQ(plain.aggregation, v1::AGGREGATION_MEAN);
  EXPECT_EQ(plain.outer_momentum, 0);  // set to zero, not unset
  EXPECT_EQ(plain.selected_per_round, 4);
}

}  // namespace
}  // namespace nightshift
