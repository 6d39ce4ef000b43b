#include "coordinator/rounds/round_checkpoint.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "checkpoint/model_description.h"
#include "checkpoint/safetensors.h"
#include "spec/defaults.h"
#include "spec/tensors.h"

namespace nightshift::coordinator::rounds {
namespace {

// Adds `flat` cut into the parameters' shapes, each name prefixed.
void AddFlat(SafetensorsWriter& w, const std::vector<TensorSpec>& params, const std::string& prefix,
             const std::vector<float>& flat) {
  size_t offset = 0;
  for (const TensorSpec& p : params) {
    Tensor t(p.shape);
    std::copy(flat.begin() + offset, flat.begin() + offset + t.size(), t.data());
    offset += t.size();
    w.Add(prefix + p.name, t);
  }
}

absl::StatusOr<std::vector<float>> ReadFlat(const SafetensorsFile& file,
                                            const std::vector<TensorSpec>& params,
                                            const std::string& prefix, const std::string& path) {
  std::vector<float> flat;
  for (const TensorSpec& p : params) {
    absl::StatusOr<Tensor> t = file.GetFloat32(prefix + p.name);
    if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", t.status().message()));
    if (t->shape() != p.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor ", prefix, p.name, " has another shape than the spec's"));
    }
    flat.insert(flat.end(), t->span().begin(), t->span().end());
  }
  return flat;
}

}  // namespace

absl::Status WriteRoundCheckpoint(const std::string& path, const v1::JobSpec& spec,
                                  const RoundSnapshot& snapshot) {
  absl::StatusOr<std::vector<TensorSpec>> params = ExpectedParameters(spec);
  if (!params.ok()) return params.status();
  size_t n = 0;
  for (const TensorSpec& p : *params) n += NumElements(p.shape);
  if (snapshot.parameters.size() != n || snapshot.momentum.size() != n ||
      (!snapshot.last_aggregate.empty() && snapshot.last_aggregate.size() != n)) {
    return absl::InvalidArgumentError(
        absl::StrCat("round snapshot sizes do not match the spec's ", n, " parameters"));
  }
  SafetensorsWriter w;
  AddFlat(w, *params, "", snapshot.parameters);
  AddFlat(w, *params, "outer_momentum.", snapshot.momentum);
  if (!snapshot.last_aggregate.empty())
    AddFlat(w, *params, "outer_delta.", snapshot.last_aggregate);
  w.AddMetadata("round", absl::StrCat(snapshot.round));
  std::vector<std::string> shards;
  for (const auto& [name, shard] : snapshot.shards)
    shards.push_back(absl::StrCat(name, "=", shard));
  w.AddMetadata("shards", absl::StrJoin(shards, ","));
  return w.WriteFile(path);
}

absl::Status WriteRoundModel(const std::string& path, const v1::JobSpec& spec,
                             const std::vector<float>& parameters) {
  absl::StatusOr<std::vector<TensorSpec>> params = ExpectedParameters(spec);
  if (!params.ok()) return params.status();
  size_t n = 0;
  for (const TensorSpec& p : *params) n += NumElements(p.shape);
  if (parameters.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model has ", parameters.size(), " parameters; the spec's has ", n));
  }
  SafetensorsWriter w;
  AddFlat(w, *params, "", parameters);
  AddModelDescription(DescribeModel(spec, ExpectedDatasetShape(spec.dataset()).sample_shape), &w);
  return w.WriteFile(path);
}

absl::StatusOr<RoundSnapshot> ReadRoundCheckpoint(const std::string& path,
                                                  const v1::JobSpec& spec) {
  absl::StatusOr<std::vector<TensorSpec>> params = ExpectedParameters(spec);
  if (!params.ok()) return params.status();
  if (params->empty()) return absl::InvalidArgumentError("model: no parameters");
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Read(path);
  if (!file.ok()) return file.status();
  RoundSnapshot s;
  auto round = file->metadata().find("round");
  if (round == file->metadata().end() || !absl::SimpleAtoi(round->second, &s.round) ||
      s.round < 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": metadata round is missing or bad"));
  }
  absl::StatusOr<std::vector<float>> flat = ReadFlat(*file, *params, "", path);
  if (!flat.ok()) return flat.status();
  s.parameters = *std::move(flat);
  flat = ReadFlat(*file, *params, "outer_momentum.", path);
  if (!flat.ok()) return flat.status();
  s.momentum = *std::move(flat);
  if (file->tensors().count("outer_delta." + params->front().name) > 0) {
    flat = ReadFlat(*file, *params, "outer_delta.", path);
    if (!flat.ok()) return flat.status();
    s.last_aggregate = *std::move(flat);
  }
  auto shards = file->metadata().find("shards");
  if (shards != file->metadata().end() && !shards->second.empty()) {
    for (absl::string_view entry : absl::StrSplit(shards->second, ',')) {
      std::pair<std::string, std::string> kv = absl::StrSplit(entry, absl::MaxSplits('=', 1));
      int shard = 0;
      if (kv.first.empty() || !absl::SimpleAtoi(kv.second, &shard) || shard < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": metadata shards entry \"", entry, "\" is not name=shard"));
      }
      s.shards[kv.first] = shard;
    }
  }
  return s;
}

}  // namespace nightshift::coordinator::rounds
