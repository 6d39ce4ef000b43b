// `nightshift predict MODEL.safetensors IDX_IMAGES [IDX_LABELS]`: runs a
// model file (checkpoint/model_file.h: it carries its network and input
// scaling) over the images of an IDX file with the same oneDNN kernels
// training uses, and reports accuracy (when labels are given), latency per
// batch (p50, p99) and per sample, and throughput.
//
//   --batch_size=N  samples per forward pass (1: one at a time, as a
//                   vehicle classifying a camera frame would)
//   --repeat=R      passes over the images (benchmarks; latencies pool)
//   --threads=T     compute threads (0: one per core)
//
// The first batch runs once before timing (oneDNN creates its primitives
// there). Latency percentiles are over full batches; a last, shorter batch
// counts toward accuracy and totals only. Exit codes: 0 success, 2 bad
// usage or input (the file, offset or field is named).
#ifndef NIGHTSHIFT_CLI_PREDICT_COMMAND_H_
#define NIGHTSHIFT_CLI_PREDICT_COMMAND_H_

#include <string>
#include <vector>

namespace nightshift {

struct PredictFlags {
  int batch_size = 64;
  int repeat = 1;
  int threads = 0;
};

// `args`: the positional arguments after "predict".
int RunPredict(const std::vector<std::string>& args, const PredictFlags& flags);

}  // namespace nightshift

#endif  // NIGHTSHIFT_CLI_PREDICT_COMMAND_H_
