// Round checkpoints round-trip the keeper's state, load as a model, and
// refuse files that do not fit the spec, naming what does not.
#include "coordinator/rounds/round_checkpoint.h"

#include <cstdlib>

#include "checkpoint/model_description.h"
#include "checkpoint/safetensors.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace nightshift::coordinator::rounds {
namespace {

using testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

v1::JobSpec Spec(int units) {
  v1::JobSpec spec;
  google::protobuf::TextFormat::ParseFromString(
      R"pb(
            model { layers { flatten {} }
                    layers { dense { units:)pb" +
          std::to_string(units) + R"pb(}
                                       }
          layers { relu {} }
          layers { dense { units: 3 } }
        }
        dataset { synthetic { channels: 1 height: 2 width: 2 classes: 3 } }
        sync { diloco { inner_steps: 5 rounds: 10 } }
      )pb",
      &spec);
  return spec;
}

RoundSnapshot Snapshot(size_t n) {
  RoundSnapshot s;
  s.round = 7;
  for (size_t i = 0; i < n; ++i) {
    s.parameters.push_back(0.5f * i);
    s.momentum.push_back(-0.25f * i);
    s.last_aggregate.push_back(0.125f * i);
  }
  s.shards = {{"edge-1", 0}, {"edge-2", 3}};
  return s;
}

TEST(RoundCheckpointTest, RoundTripsTheKeepersStateAndLoadsAsAModel) {
  const v1::JobSpec spec = Spec(4);
  const size_t n = 4 * 4 + 4 + 3 * 4 + 3;
  const std::string path = TempPath("round.safetensors");
  ASSERT_TRUE(WriteRoundCheckpoint(path, spec, Snapshot(n)).ok());
  absl::StatusOr<RoundSnapshot> back = ReadRoundCheckpoint(path, spec);
  ASSERT_TRUE(back.ok()) << back.status();
  const RoundSnapshot want = Snapshot(n);
  EXPECT_EQ(back->round, 7);
  EXPECT_EQ(back->parameters, want.parameters);
  EXPECT_EQ(back->momentum, want.momentum);
  EXPECT_EQ(back->last_aggregate, want.last_aggregate);
  EXPECT_EQ(back->shards, want.shards);
  const SafetensorsFile file = *SafetensorsFile::Read(path);
  EXPECT_EQ(file.tensors().at("layers.1.weight").shape, (Shape{4, 4}));
  EXPECT_EQ(file.tensors().count("outer_momentum.layers.3.bias"), 1u);
}

// The job's model (what `nightshift predict` and a published version run)
// describes itself: its network, one sample's shape, its tensors.
TEST(RoundCheckpointTest, TheModelFileDescribesItsModel) {
  const v1::JobSpec spec = Spec(4);
  const size_t n = 4 * 4 + 4 + 3 * 4 + 3;
  const std::string path = TempPath("model.safetensors");
  ASSERT_TRUE(WriteRoundModel(path, spec, Snapshot(n).parameters).ok());
  const SafetensorsFile file = *SafetensorsFile::Read(path);
  absl::StatusOr<ModelDescription> d = CheckModelFile(file, path);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->input_shape, (Shape{1, 2, 2}));
  EXPECT_EQ(d->model.layers_size(), 4);
  EXPECT_EQ(d->model.layers(1).dense().units(), 4);
  EXPECT_EQ(file.tensors().size(), 4u);  // parameters only
}

TEST(RoundCheckpointTest, RefusesFilesThatDoNotFitNamingTheTensor) {
  const std::string path = TempPath("other.safetensors");
  ASSERT_TRUE(WriteRoundCheckpoint(path, Spec(4), Snapshot(35)).ok());
  absl::StatusOr<RoundSnapshot> other = ReadRoundCheckpoint(path, Spec(5));
  EXPECT_THAT(other.status().message(), HasSubstr("layers.1.weight"));
  EXPECT_FALSE(ReadRoundCheckpoint(TempPath("missing.safetensors"), Spec(4)).ok());
  EXPECT_THAT(WriteRoundCheckpoint(path, Spec(5), Snapshot(35)).message(),
              HasSubstr("do not match"));
  SafetensorsWriter w;
  Tensor t({1});
  w.Add("x", t);
  w.AddMetadata("round", "three");
  ASSERT_TRUE(w.WriteFile(TempPath("bad.safetensors")).ok());
  EXPECT_THAT(ReadRoundCheckpoint(TempPath("bad.safetensors"), Spec(4)).status().message(),
              HasSubstr("metadata round"));
}

}  // namespace
}  // namespace nightshift::coordinator::rounds
