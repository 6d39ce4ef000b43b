// Safetensors format rules, and checkpoint round trips that restore
// parameters and optimizer state exactly — or change nothing when refused.
#include "checkpoint/checkpoint.h"

#include <cstdlib>
#include <fstream>
#include <map>

#include "checkpoint/safetensors.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "spec/defaults.h"
#include "spec/tensors.h"

namespace nightshift {
namespace {

using testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

uint64_t HeaderLength(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  return n;
}

TEST(SafetensorsTest, LayoutFollowsTheFormat) {
  SafetensorsWriter w;
  Tensor a({2, 3}), b({5});
  for (int i = 0; i < 6; ++i) a.data()[i] = i + 0.5f;
  for (int i = 0; i < 5; ++i) b.data()[i] = -i;
  w.Add("layers.0.weight", a);
  w.Add("layers.0.bias", b);
  w.AddMetadata("step", "7");
  const std::string bytes = w.Serialize();
  const uint64_t n = HeaderLength(bytes);
  EXPECT_EQ((8 + n) % 8, 0u) << "data must start 8-byte aligned";
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_THAT(
      header,
      HasSubstr(R"("layers.0.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]})"));
  EXPECT_THAT(header,
              HasSubstr(R"("layers.0.bias":{"dtype":"F32","shape":[5],"data_offsets":[24,44]})"));
  EXPECT_THAT(header, HasSubstr(R"("__metadata__":{"step":"7"})"));
  EXPECT_EQ(bytes.size(), 8 + n + 44);
  // Padding is spaces after the closing brace.
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));

  auto file = SafetensorsFile::Parse(bytes, "x.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata().at("step"), "7");
  auto back = file->GetFloat32("layers.0.weight");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->shape(), Shape({2, 3}));
  EXPECT_EQ(back->data()[5], 5.5f);
  EXPECT_EQ(file->GetFloat32("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(SafetensorsTest, RejectsBrokenFilesNamingWhere) {
  SafetensorsWriter w;
  Tensor a({4});
  w.Add("a", a);
  const std::string good = w.Serialize();

  auto err = [](const std::string& bytes) {
    return std::string(SafetensorsFile::Parse(bytes, "f.st").status().message());
  };
  EXPECT_THAT(err(good.substr(0, 5)), HasSubstr("too short"));
  std::string long_header = good;
  long_header[0] = static_cast<char>(0xff);
  long_header[1] = static_cast<char>(0xff);
  EXPECT_THAT(err(long_header),
              HasSubstr("header length 65535 at byte offset 0 runs past the end"));
  EXPECT_THAT(err(good.substr(0, good.size() - 4)), HasSubstr("fall outside"));
  EXPECT_THAT(err(good + "xxxx"), HasSubstr("tensors cover 16 of 20 data bytes"));
  std::string bad_json = good;
  bad_json[9] = '!';
  EXPECT_THAT(err(bad_json), HasSubstr("f.st: header at byte offset 8 is not valid JSON"));
  std::string bad_dtype = good;
  bad_dtype.replace(bad_dtype.find("F32"), 3, "Q32");
  EXPECT_THAT(err(bad_dtype), HasSubstr("tensor a: unknown dtype 'Q32'"));
}

v1::JobSpec SmallSpec() {
  v1::JobSpec spec;
  spec.mutable_model()->add_layers()->mutable_dense()->set_units(4);
  spec.mutable_model()->add_layers()->mutable_relu();
  spec.mutable_model()->add_layers()->mutable_dense()->set_units(3);
  spec.mutable_optimizer()->mutable_sgd()->set_lr(0.1f);
  spec.mutable_optimizer()->mutable_sgd()->set_momentum(0.9f);
  spec.set_global_batch_size(8);
  spec.set_epochs(1);
  spec.set_seed(3);
  return spec;
}

struct Training {
  std::unique_ptr<Model> model;
  std::unique_ptr<Optimizer> optimizer;
};

Training Build(const v1::JobSpec& spec, uint64_t seed) {
  Training t;
  t.model = *Model::Create(spec.model(), {5}, seed);
  t.optimizer = *MakeOptimizer(spec.optimizer(), t.model->num_parameters());
  return t;
}

void TakeSteps(Training& t, int steps) {
  Tensor x({2, 5});
  for (int i = 0; i < 10; ++i) x.data()[i] = 0.1f * i - 0.3f;
  std::vector<int32_t> labels = {2, 0};
  for (int i = 0; i < steps; ++i) {
    t.model->ComputeGradients(x, labels, 0.5f);
    t.optimizer->Step(t.model->flat_parameters(), t.model->flat_gradients(), 0.1f);
  }
}

std::vector<float> Params(const Model& m) {
  auto s = m.flat_parameters();
  return {s.begin(), s.end()};
}

TEST(CheckpointTest, RoundTripRestoresParametersAndOptimizerState) {
  const v1::JobSpec spec = SmallSpec();
  Training a = Build(spec, 3);
  TakeSteps(a, 3);
  const std::string path = TempPath("ckpt.safetensors");
  ASSERT_TRUE(SaveCheckpoint(path, *a.model, *a.optimizer, {3, 0, 3, JobSpecHash(spec)}).ok());

  Training b = Build(spec, 99);  // different start
  auto meta = LoadCheckpoint(path, JobSpecHash(spec), b.model.get(), b.optimizer.get());
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->step, 3);
  EXPECT_EQ(meta->seed, 3u);
  EXPECT_EQ(b.optimizer->steps(), 3);
  EXPECT_EQ(Params(*a.model), Params(*b.model));
  // Same state: the next steps agree bit for bit.
  TakeSteps(a, 2);
  TakeSteps(b, 2);
  EXPECT_EQ(Params(*a.model), Params(*b.model));

  auto file = SafetensorsFile::Read(path);
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE(file->tensors().count("layers.0.weight"));
  EXPECT_TRUE(file->tensors().count("optimizer.momentum_buffer.layers.2.bias"));
  EXPECT_EQ(file->metadata().at("format"), "nightshift.checkpoint.v1");
}

TEST(CheckpointTest, RefusedLoadsChangeNothing) {
  const v1::JobSpec spec = SmallSpec();
  Training a = Build(spec, 3);
  TakeSteps(a, 2);
  const std::string path = TempPath("ckpt2.safetensors");
  ASSERT_TRUE(SaveCheckpoint(path, *a.model, *a.optimizer, {2, 0, 3, JobSpecHash(spec)}).ok());

  Training b = Build(spec, 5);
  const std::vector<float> before = Params(*b.model);
  auto other = LoadCheckpoint(path, "0000000000000000", b.model.get(), b.optimizer.get());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(other.status().message(), HasSubstr("different job spec"));
  EXPECT_EQ(Params(*b.model), before);

  // A checkpoint of a wider model: the shape mismatch is named, nothing changes.
  v1::JobSpec wide = spec;
  wide.mutable_model()->mutable_layers(0)->mutable_dense()->set_units(6);
  Training w = Build(wide, 3);
  const std::string wide_path = TempPath("wide.safetensors");
  ASSERT_TRUE(SaveCheckpoint(wide_path, *w.model, *w.optimizer, {0, 0, 3, "h"}).ok());
  auto mismatch = LoadCheckpoint(wide_path, "h", b.model.get(), b.optimizer.get());
  EXPECT_THAT(mismatch.status().message(), HasSubstr("tensor layers.0.weight has shape [6, 5]"));
  EXPECT_EQ(Params(*b.model), before);

  // A truncated file.
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(TempPath("cut.safetensors"), std::ios::binary) << bytes.substr(0, bytes.size() - 9);
  auto cut = LoadCheckpoint(TempPath("cut.safetensors"), JobSpecHash(spec), b.model.get(),
                            b.optimizer.get());
  EXPECT_FALSE(cut.ok());
  EXPECT_THAT(cut.status().message(), HasSubstr("cut.safetensors"));
  EXPECT_EQ(Params(*b.model), before);
}

TEST(JobSpecHashTest, TracksTrajectoryFieldsOnly) {
  v1::JobSpec a = SmallSpec(), b = SmallSpec();
  b.set_name("renamed");
  b.set_checkpoint_interval_steps(100);
  EXPECT_EQ(JobSpecHash(a), JobSpecHash(b));
  b.set_seed(4);
  EXPECT_NE(JobSpecHash(a), JobSpecHash(b));
  EXPECT_EQ(JobSpecHash(a).size(), 16u);
}

// The coordinator checks uploads against spec/tensors.h without building a
// model: what it expects must be what workers write, name and shape.
TEST(CheckpointTest, FilesHoldExactlyTheTensorsTheSpecPredicts) {
  v1::JobSpec conv;
  google::protobuf::TextFormat::ParseFromString(
      R"pb(
        model {
          layers { conv2d { filters: 2 kernel_size: 3 padding: 1 } }
          layers { relu {} }
          layers { max_pool2d { kernel_size: 2 } }
          layers { flatten {} }
          layers { dense { units: 3 no_bias: true } }
        }
        dataset { synthetic { channels: 1 height: 6 width: 6 classes: 3 } }
        optimizer { adamw { lr: 0.01 } }
      )pb",
      &conv);
  v1::JobSpec dense;  // SmallSpec's model on a flattened input, SGD with momentum
  google::protobuf::TextFormat::ParseFromString(
      R"pb(
        model {
          layers { flatten {} }
          layers { dense { units: 4 } }
          layers { relu {} }
          layers { dense { units: 3 } }
        }
        dataset { synthetic { channels: 5 height: 1 width: 1 classes: 3 } }
        optimizer { sgd { lr: 0.1 momentum: 0.9 } }
      )pb",
      &dense);
  for (const v1::JobSpec& spec : {conv, dense}) {
    const Shape input = ExpectedDatasetShape(spec.dataset()).sample_shape;
    auto model = Model::Create(spec.model(), input, 1);
    ASSERT_TRUE(model.ok()) << model.status();
    auto optimizer = MakeOptimizer(spec.optimizer(), (*model)->num_parameters());
    for (bool model_only : {false, true}) {
      const std::string path = TempPath(model_only ? "model.safetensors" : "ckpt.safetensors");
      ASSERT_TRUE((model_only ? SaveModelParameters(path, **model, {1, 0, 1, "h"})
                              : SaveCheckpoint(path, **model, **optimizer, {1, 0, 1, "h"}))
                      .ok());
      const SafetensorsFile file = *SafetensorsFile::Read(path);
      std::map<std::string, Shape> written, predicted;
      for (const auto& [name, info] : file.tensors()) written[name] = info.shape;
      const std::vector<TensorSpec> expected = *ExpectedCheckpointTensors(spec, model_only);
      for (const TensorSpec& t : expected) predicted[t.name] = t.shape;
      EXPECT_EQ(written, predicted) << spec.DebugString();
    }
  }
}

// A diloco job's coordinator starts from InitialParameters without
// building a model: they must be the model's own, bit for bit.
TEST(CheckpointTest, InitialParametersAreTheModelsOwn) {
  v1::JobSpec spec;
  google::protobuf::TextFormat::ParseFromString(
      R"pb(
        model {
          layers { conv2d { filters: 2 kernel_size: 3 padding: 1 } }
          layers { relu {} }
          layers { flatten {} }
          layers { dense { units: 4 } }
          layers { dense { units: 3 no_bias: true } }
        }
        dataset { synthetic { channels: 2 height: 5 width: 5 classes: 3 } }
        optimizer { sgd { lr: 0.1 } }
        seed: 77
      )pb",
      &spec);
  const Shape input = ExpectedDatasetShape(spec.dataset()).sample_shape;
  auto model = Model::Create(spec.model(), input, spec.seed());
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::vector<float>> initial = InitialParameters(spec);
  ASSERT_TRUE(initial.ok()) << initial.status();
  const absl::Span<const float> own = static_cast<const Model&>(**model).flat_parameters();
  ASSERT_EQ(initial->size(), own.size());
  for (size_t i = 0; i < own.size(); ++i) ASSERT_EQ((*initial)[i], own[i]) << "parameter " << i;
}

}  // namespace
}  // namespace nightshift
