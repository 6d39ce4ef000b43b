#include "checkpoint/checkpoint.h"

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "checkpoint/safetensors.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace nightshift {
namespace {

constexpr char kFormat[] = "nightshift.checkpoint.v1";

std::string StateName(const std::string& buffer, const std::string& param) {
  return absl::StrCat("optimizer.", buffer, ".", param);
}

void AddMeta(SafetensorsWriter& w, const CheckpointMeta& meta, int64_t optimizer_steps) {
  w.AddMetadata("format", kFormat);
  w.AddMetadata("step", absl::StrCat(meta.step));
  w.AddMetadata("epoch", absl::StrCat(meta.epoch));
  w.AddMetadata("seed", absl::StrCat(meta.seed));
  w.AddMetadata("spec_hash", meta.spec_hash);
  if (optimizer_steps >= 0) {
    w.AddMetadata("optimizer_steps", absl::StrCat(optimizer_steps));
  }
}

// Views of the optimizer buffer `state` sliced like the model's parameters.
template <typename Fn>
void ForEachStateSlice(const Model& model, OptimizerState& state, Fn fn) {
  int64_t offset = 0;
  for (const Parameter& p : model.parameters()) {
    fn(p, Tensor::View(p.value.shape(), state.buffer->data() + offset));
    offset += p.value.size();
  }
}

}  // namespace

std::string JobSpecHash(const v1::JobSpec& spec) {
  v1::JobSpec trajectory;
  *trajectory.mutable_model() = spec.model();
  *trajectory.mutable_dataset() = spec.dataset();
  *trajectory.mutable_optimizer() = spec.optimizer();
  *trajectory.mutable_lr_schedule() = spec.lr_schedule();
  trajectory.set_global_batch_size(spec.global_batch_size());
  if (spec.has_epochs()) trajectory.set_epochs(spec.epochs());
  if (spec.has_steps()) trajectory.set_steps(spec.steps());
  trajectory.set_seed(spec.seed());
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    trajectory.SerializeToCodedStream(&coded);
  }
  // FNV-1a, 64 bit: stable across processes and machines.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return absl::StrCat(absl::Hex(h, absl::kZeroPad16));
}

absl::Status SaveCheckpoint(const std::string& path, const Model& model, Optimizer& optimizer,
                            const CheckpointMeta& meta) {
  SafetensorsWriter w;
  for (const Parameter& p : model.parameters()) w.Add(p.name, p.value);
  for (OptimizerState& state : optimizer.State()) {
    ForEachStateSlice(model, state, [&](const Parameter& p, const Tensor& slice) {
      w.Add(StateName(state.name, p.name), slice);
    });
  }
  AddMeta(w, meta, optimizer.steps());
  return w.WriteFile(path);
}

absl::Status SaveModelParameters(const std::string& path, const Model& model,
                                 const CheckpointMeta& meta, const ModelDescription* description) {
  SafetensorsWriter w;
  for (const Parameter& p : model.parameters()) w.Add(p.name, p.value);
  AddMeta(w, meta, -1);
  if (description != nullptr) AddModelDescription(*description, &w);
  return w.WriteFile(path);
}

absl::StatusOr<CheckpointMeta> LoadCheckpoint(const std::string& path,
                                              const std::string& expected_spec_hash, Model* model,
                                              Optimizer* optimizer) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Read(path);
  if (!file.ok()) return file.status();
  const auto& md = file->metadata();
  auto get = [&](const char* key) -> absl::StatusOr<std::string> {
    auto it = md.find(key);
    if (it == md.end()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": __metadata__.", key, " is missing"));
    }
    return it->second;
  };
  auto format = get("format");
  if (!format.ok()) return format.status();
  if (*format != kFormat) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": __metadata__.format is '", *format, "', expected '", kFormat, "'"));
  }
  auto hash = get("spec_hash");
  if (!hash.ok()) return hash.status();
  if (*hash != expected_spec_hash) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": written for a different job spec (spec_hash ", *hash, ", this spec ",
                     expected_spec_hash, ")"));
  }
  CheckpointMeta meta;
  meta.spec_hash = *hash;
  int64_t optimizer_steps = 0;
  struct IntField {
    const char* key;
    int64_t* out;
  };
  int64_t seed = 0;
  for (IntField f : {IntField{"step", &meta.step}, IntField{"epoch", &meta.epoch},
                     IntField{"seed", &seed}, IntField{"optimizer_steps", &optimizer_steps}}) {
    auto s = get(f.key);
    if (!s.ok()) return s.status();
    if (!absl::SimpleAtoi(*s, f.out)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": __metadata__.", f.key, " is not an integer: '", *s, "'"));
    }
  }
  meta.seed = static_cast<uint64_t>(seed);

  // Read everything into owned tensors first; copy only if all fit.
  std::vector<std::pair<Tensor*, Tensor>> pending;
  auto stage = [&](const std::string& name, Tensor* target) -> absl::Status {
    absl::StatusOr<Tensor> t = file->GetFloat32(name);
    if (!t.ok()) return t.status();
    if (t->shape() != target->shape()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor ", name, " has shape ", ShapeToString(t->shape()),
                       ", the model needs ", ShapeToString(target->shape())));
    }
    pending.push_back({target, *std::move(t)});
    return absl::OkStatus();
  };
  std::vector<Tensor> state_views;
  state_views.reserve(model->parameters().size() * 2);
  for (Parameter& p : model->parameters()) {
    absl::Status s = stage(p.name, &p.value);
    if (!s.ok()) return s;
  }
  for (OptimizerState& state : optimizer->State()) {
    absl::Status status = absl::OkStatus();
    ForEachStateSlice(*model, state, [&](const Parameter& p, Tensor slice) {
      if (!status.ok()) return;
      state_views.push_back(std::move(slice));
      status = stage(StateName(state.name, p.name), &state_views.back());
    });
    if (!status.ok()) return status;
  }
  for (auto& [target, value] : pending) {
    std::memcpy(target->data(), value.data(), value.size() * sizeof(float));
  }
  optimizer->set_steps(optimizer_steps);
  return meta;
}

}  // namespace nightshift
