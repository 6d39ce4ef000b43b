// A small valid model file for tests of the model loop (the coordinator's
// model registry, the edge agent's model follower): a 4 -> `units` -> 2
// MLP on {1, 2, 2} samples, its tensors filled with scale * index (so
// that a different scale gives different bytes), its description added as
// nightshift model files carry it.
#ifndef NIGHTSHIFT_CHECKPOINT_SMALL_MODEL_FOR_TESTS_H_
#define NIGHTSHIFT_CHECKPOINT_SMALL_MODEL_FOR_TESTS_H_

#include <string>

namespace nightshift {

std::string SmallModelBytes(int units, float scale);

}  // namespace nightshift

#endif  // NIGHTSHIFT_CHECKPOINT_SMALL_MODEL_FOR_TESTS_H_
