// Test only: one small diloco job for the edge tests — a 16-unit MLP on a
// learnable synthetic set of 800 samples, 4 classes — with the caller's
// job-level fields (workers, duration, sync.diloco) appended in text
// format.
#ifndef NIGHTSHIFT_WORKER_EDGE_EDGE_TEST_SPEC_H_
#define NIGHTSHIFT_WORKER_EDGE_EDGE_TEST_SPEC_H_

#include <string>

#include "google/protobuf/text_format.h"
#include "nightshift/v1/job.pb.h"

namespace nightshift {

inline v1::JobSpec EdgeTestSpec(const std::string& job_fields) {
  v1::JobSpec spec;
  google::protobuf::TextFormat::ParseFromString(
      R"pb(
            model {
              layers { flatten {} }
              layers { dense { units: 16 } }
              layers { relu {} }
              layers { dense { units: 4 } }
            }
            dataset {
              synthetic {
                train_examples: 800
                test_examples: 200
                channels: 1
                height: 4
                width: 4
                classes: 4
                noise: 0.5
              }
            }
            optimizer { sgd { lr: 0.1 momentum: 0.9 } }
            seed: 5
            pools: WORKER_POOL_EDGE
      )pb" +
          job_fields,
      &spec);
  return spec;
}

// The replica trainer tests' job: 4 shards, 16 samples per inner step,
// rounds of 10 inner steps.
inline v1::JobSpec ReplicaTrainerTestSpec() {
  return EdgeTestSpec(R"pb(
    global_batch_size: 100
    steps: 100
    max_workers: 4
    sync {
      diloco {
        inner_steps: 10
        replica_batch_size: 16
        shards { count: 4 }
      }
    }
  )pb");
}

}  // namespace nightshift

#endif  // NIGHTSHIFT_WORKER_EDGE_EDGE_TEST_SPEC_H_
