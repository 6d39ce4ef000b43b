// The model of examples/fashion_mlp.textproto (784-512-256-10 with ReLU),
// built in code for the benchmarks that time its step without a job spec.
#ifndef NIGHTSHIFT_BENCH_FASHION_MLP_H_
#define NIGHTSHIFT_BENCH_FASHION_MLP_H_

#include "nightshift/v1/job.pb.h"

namespace nightshift {

inline v1::ModelSpec FashionMlpSpec() {
  v1::ModelSpec spec;
  spec.add_layers()->mutable_flatten();
  spec.add_layers()->mutable_dense()->set_units(512);
  spec.add_layers()->mutable_relu();
  spec.add_layers()->mutable_dense()->set_units(256);
  spec.add_layers()->mutable_relu();
  spec.add_layers()->mutable_dense()->set_units(10);
  return spec;
}

}  // namespace nightshift

#endif  // NIGHTSHIFT_BENCH_FASHION_MLP_H_
