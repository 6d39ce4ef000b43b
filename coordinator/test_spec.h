// For the coordinator's tests: a small valid job spec (a 2x2 synthetic
// data set, one dense layer, 20 steps) with `min_workers`.
#ifndef NIGHTSHIFT_COORDINATOR_TEST_SPEC_H_
#define NIGHTSHIFT_COORDINATOR_TEST_SPEC_H_

#include "google/protobuf/text_format.h"
#include "nightshift/v1/job.pb.h"

namespace nightshift::coordinator {

inline v1::JobSpec SmallTestSpec(int min_workers = 2) {
  v1::JobSpec spec;
  google::protobuf::TextFormat::ParseFromString(R"pb(
                                                  model {
                                                    layers { flatten {} }
                                                    layers { dense { units: 4 } }
                                                  }
                                                  dataset {
                                                    synthetic {
                                                      train_examples: 100
                                                      test_examples: 10
                                                      channels: 1
                                                      height: 2
                                                      width: 2
                                                      classes: 4
                                                    }
                                                  }
                                                  optimizer { sgd { lr: 0.1 } }
                                                  global_batch_size: 10
                                                  steps: 20
                                                )pb",
                                                &spec);
  spec.set_min_workers(min_workers);
  return spec;
}

}  // namespace nightshift::coordinator

#endif  // NIGHTSHIFT_COORDINATOR_TEST_SPEC_H_
