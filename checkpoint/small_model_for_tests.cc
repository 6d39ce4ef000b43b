#include "checkpoint/small_model_for_tests.h"

#include <cstdint>
#include <map>

#include "absl/strings/str_cat.h"
#include "checkpoint/model_description.h"
#include "checkpoint/safetensors.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace nightshift {

std::string SmallModelBytes(int units, float scale) {
  ModelDescription d;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      absl::StrCat("layers { flatten {} } layers { dense { units: ", units,
                   " } } layers { relu {} } layers { dense { units: 2 } }"),
      &d.model));
  d.input_shape = {1, 2, 2};
  SafetensorsWriter w;
  const std::map<std::string, Shape> shapes = {{"layers.1.weight", {units, 4}},
                                               {"layers.1.bias", {units}},
                                               {"layers.3.weight", {2, units}},
                                               {"layers.3.bias", {2}}};
  for (const auto& [name, shape] : shapes) {
    Tensor t(shape);
    for (int64_t i = 0; i < t.size(); ++i) t.data()[i] = scale * static_cast<float>(i);
    w.Add(name, t);
  }
  AddModelDescription(d, &w);
  return w.Serialize();
}

}  // namespace nightshift
