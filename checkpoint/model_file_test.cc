// Model files that describe themselves: a written model loads back from its
// file alone, exactly; a file whose description and tensors disagree, or
// whose description asks for more than a reader should allocate, is
// refused naming the file and what is wrong.
#include "checkpoint/model_file.h"

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace nightshift {
namespace {

using testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

// A 6 -> 4 -> 3 MLP on samples of shape {1, 2, 3}, with its scaling.
ModelDescription SmallMlp() {
  ModelDescription d;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(layers { flatten {} }
           layers { dense { units: 4 } }
           layers { relu {} }
           layers { dense { units: 3 } })pb",
      &d.model));
  d.input_shape = {1, 2, 3};
  d.normalize_mean = 0.2860402f;  // Fashion-MNIST's: not exact in few digits
  d.normalize_std = 0.3530239f;
  return d;
}

// Writes `d` with tensors of the given shapes (name -> shape), values i/10.
std::string WriteModel(const std::string& name, const ModelDescription& d,
                       const std::map<std::string, Shape>& tensors) {
  SafetensorsWriter w;
  for (const auto& [tensor_name, shape] : tensors) {
    Tensor t(shape);
    for (int64_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<float>(i) / 10;
    w.Add(tensor_name, t);
  }
  AddModelDescription(d, &w);
  std::string path = TempPath(name);
  absl::Status written = w.WriteFile(path);
  EXPECT_TRUE(written.ok()) << written;
  return path;
}

const std::map<std::string, Shape> kMlpTensors = {{"layers.1.weight", {4, 6}},
                                                  {"layers.1.bias", {4}},
                                                  {"layers.3.weight", {3, 4}},
                                                  {"layers.3.bias", {3}}};

TEST(ModelFileTest, LoadsBackFromTheFileAloneExactly) {
  std::string path = WriteModel("mlp.safetensors", SmallMlp(), kMlpTensors);
  absl::StatusOr<LoadedModel> loaded = LoadModelFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->description.input_shape, (Shape{1, 2, 3}));
  EXPECT_EQ(loaded->description.normalize_mean, SmallMlp().normalize_mean);
  EXPECT_EQ(loaded->description.normalize_std, SmallMlp().normalize_std);
  EXPECT_EQ(loaded->model->num_classes(), 3);
  ASSERT_EQ(loaded->model->parameters().size(), 4u);
  for (const Parameter& p : loaded->model->parameters()) {
    ASSERT_EQ(p.value.shape(), kMlpTensors.at(p.name)) << p.name;
    for (int64_t i = 0; i < p.value.size(); ++i) {
      ASSERT_EQ(p.value.data()[i], static_cast<float>(i) / 10) << p.name << "[" << i << "]";
    }
  }
}

TEST(ModelFileTest, TensorsThatDisagreeWithTheDescriptionAreRefusedByName) {
  std::map<std::string, Shape> wrong = kMlpTensors;
  wrong["layers.3.weight"] = {3, 5};
  absl::StatusOr<LoadedModel> loaded =
      LoadModelFile(WriteModel("wrong.safetensors", SmallMlp(), wrong));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(),
              HasSubstr("wrong.safetensors: tensor layers.3.weight has shape [3, 5], "
                        "__metadata__.model_spec needs [3, 4]"));

  std::map<std::string, Shape> missing = kMlpTensors;
  missing.erase("layers.1.bias");
  loaded = LoadModelFile(WriteModel("missing.safetensors", SmallMlp(), missing));
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(),
              HasSubstr("missing.safetensors: no tensor named layers.1.bias"));
}

// A description that would make the reader build a model far larger than
// the file (2^20 units of 6 inputs: 28 MB from a file of a few hundred
// bytes) is refused before anything is allocated.
TEST(ModelFileTest, ADescriptionLargerThanTheFileIsRefusedBeforeAllocating) {
  ModelDescription d = SmallMlp();
  d.model.mutable_layers(1)->mutable_dense()->set_units(1 << 20);
  absl::StatusOr<LoadedModel> loaded =
      LoadModelFile(WriteModel("inflated.safetensors", d, kMlpTensors));
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(),
              HasSubstr("inflated.safetensors: tensor layers.1.weight has shape [4, 6], "
                        "__metadata__.model_spec needs [1048576, 6]"));
}

TEST(ModelFileTest, AnInputShapeBeyondTheBoundIsRefusedNamingTheKey) {
  for (const Shape& shape : {Shape{8192, 8192, 3}, Shape{1, 1, 1, 1}}) {
    ModelDescription d = SmallMlp();
    d.input_shape = shape;
    absl::StatusOr<LoadedModel> loaded =
        LoadModelFile(WriteModel("big_input.safetensors", d, kMlpTensors));
    ASSERT_FALSE(loaded.ok()) << ShapeToString(shape);
    EXPECT_THAT(loaded.status().message(), HasSubstr("input_shape"));
    EXPECT_THAT(loaded.status().message(), HasSubstr("values or 3 dimensions per sample"));
  }
}

}  // namespace
}  // namespace nightshift
