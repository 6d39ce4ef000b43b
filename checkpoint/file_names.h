// The names of checkpoint and model files in a job's folder — written by
// the trainer (worker/) and by the coordinator when a worker uploads one,
// and read back by both. Depends on nothing, so the coordinator knows the
// names without linking the checkpoint code.
#ifndef NIGHTSHIFT_CHECKPOINT_FILE_NAMES_H_
#define NIGHTSHIFT_CHECKPOINT_FILE_NAMES_H_

#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace nightshift {

// The exported model: parameters only.
inline constexpr char kModelFileName[] = "model.safetensors";

// "checkpoint-step-0000123.safetensors": the training state before global
// step `next_step`. Zero-padded so that names sort by step.
inline std::string CheckpointFileName(int64_t next_step) {
  return absl::StrFormat("checkpoint-step-%07d.safetensors", next_step);
}

// "round-0000012.safetensors": a diloco job's outer state after `rounds`
// rounds (coordinator/rounds/round_checkpoint.h).
inline std::string RoundCheckpointFileName(int64_t rounds) {
  return absl::StrFormat("round-%07d.safetensors", rounds);
}

// The path of `file` (one of the names above) in folder `dir`.
inline std::string PathIn(absl::string_view dir, absl::string_view file) {
  return absl::StrFormat("%s/%s", dir, file);
}

inline bool IsModelFile(absl::string_view path) {
  return path == kModelFileName || absl::EndsWith(path, absl::StrFormat("/%s", kModelFileName));
}

}  // namespace nightshift

#endif  // NIGHTSHIFT_CHECKPOINT_FILE_NAMES_H_
