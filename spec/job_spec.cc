#include "spec/job_spec.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "kernels/shape_inference.h"
#include "spec/defaults.h"
#include "spec/tensors.h"

namespace nightshift {
namespace {

absl::Status FieldError(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// Collects text-format parse errors with their line and column.
class ParseErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first.empty()) {
      first = absl::StrCat("line ", line + 1, " column ", column + 1, ": ", message);
    }
  }
  std::string first;
};

const char* LayerKindName(const v1::LayerSpec& layer) {
  switch (layer.kind_case()) {
    case v1::LayerSpec::kDense:
      return "dense";
    case v1::LayerSpec::kRelu:
      return "relu";
    case v1::LayerSpec::kConv2D:
      return "conv2d";
    case v1::LayerSpec::kMaxPool2D:
      return "max_pool2d";
    case v1::LayerSpec::kFlatten:
      return "flatten";
    case v1::LayerSpec::KIND_NOT_SET:
      break;
  }
  return "";
}

// "units: must be > 0" under "model.layers[2].dense" becomes
// "model.layers[2].dense.units: must be > 0"; other messages get ": ".
std::string JoinField(const std::string& prefix, absl::string_view message) {
  const size_t colon = message.find(": ");
  if (colon != absl::string_view::npos && colon > 0) {
    bool identifier = true;
    for (char c : message.substr(0, colon)) {
      identifier &= (c >= 'a' && c <= 'z') || c == '_';
    }
    if (identifier) return absl::StrCat(prefix, ".", message);
  }
  return absl::StrCat(prefix, ": ", message);
}

absl::Status ValidateModel(const v1::JobSpec& spec) {
  const DatasetShape data = ExpectedDatasetShape(spec.dataset());
  if (spec.model().layers_size() == 0) {
    return FieldError("model.layers", "must not be empty");
  }
  Shape shape = data.sample_shape;
  for (int i = 0; i < spec.model().layers_size(); ++i) {
    const v1::LayerSpec& layer = spec.model().layers(i);
    const std::string field = absl::StrCat("model.layers[", i, "]");
    if (layer.kind_case() == v1::LayerSpec::KIND_NOT_SET) {
      return FieldError(field, "no layer kind set (dense, relu, conv2d, max_pool2d, flatten)");
    }
    absl::StatusOr<Shape> out = InferOutputShape(layer, shape);
    if (!out.ok()) {
      return absl::InvalidArgumentError(
          JoinField(absl::StrCat(field, ".", LayerKindName(layer)), out.status().message()));
    }
    shape = *out;
  }
  const int last = spec.model().layers_size() - 1;
  if (shape.size() != 1 || shape[0] != data.num_classes) {
    return FieldError(
        absl::StrCat("model.layers[", last, "]"),
        absl::StrCat("the model's output is ", ShapeToString(shape), " but the data set has ",
                     data.num_classes, " classes; end with a dense layer of ", data.num_classes,
                     " units"));
  }
  return absl::OkStatus();
}

absl::Status ValidateDataset(const v1::DatasetSpec& d) {
  switch (d.source_case()) {
    case v1::DatasetSpec::kIdx:
      if (d.idx().normalize_std() < 0) {
        return FieldError("dataset.idx.normalize_std", "must be >= 0");
      }
      return absl::OkStatus();
    case v1::DatasetSpec::kSynthetic: {
      const v1::SyntheticDataset& s = d.synthetic();
      struct Positive {
        const char* name;
        int64_t value;
      };
      for (Positive p : {Positive{"train_examples", s.train_examples()},
                         Positive{"test_examples", s.test_examples()},
                         Positive{"channels", s.channels()}, Positive{"height", s.height()},
                         Positive{"width", s.width()}, Positive{"classes", s.classes()}}) {
        if (p.value <= 0) {
          return FieldError(absl::StrCat("dataset.synthetic.", p.name), "must be > 0");
        }
      }
      if (s.classes() < 2) return FieldError("dataset.synthetic.classes", "must be >= 2");
      if (s.noise() < 0) return FieldError("dataset.synthetic.noise", "must be >= 0");
      return absl::OkStatus();
    }
    case v1::DatasetSpec::SOURCE_NOT_SET:
      break;
  }
  return FieldError("dataset", "set idx or synthetic");
}

absl::Status ValidateOptimizer(const v1::OptimizerSpec& o) {
  if (o.has_sgd()) {
    const v1::SgdOptimizer& s = o.sgd();
    if (!(s.lr() > 0)) return FieldError("optimizer.sgd.lr", "must be > 0");
    if (!(s.momentum() >= 0 && s.momentum() < 1)) {
      return FieldError("optimizer.sgd.momentum", "must be in [0, 1)");
    }
    if (s.nesterov() && s.momentum() == 0) {
      return FieldError("optimizer.sgd.nesterov", "needs momentum > 0");
    }
    if (!(s.weight_decay() >= 0)) {
      return FieldError("optimizer.sgd.weight_decay", "must be >= 0");
    }
    return absl::OkStatus();
  }
  if (o.has_adamw()) {
    const v1::AdamWOptimizer& a = o.adamw();
    if (!(a.lr() > 0)) return FieldError("optimizer.adamw.lr", "must be > 0");
    if (a.has_beta1() && !(a.beta1() >= 0 && a.beta1() < 1)) {
      return FieldError("optimizer.adamw.beta1", "must be in [0, 1)");
    }
    if (a.has_beta2() && !(a.beta2() >= 0 && a.beta2() < 1)) {
      return FieldError("optimizer.adamw.beta2", "must be in [0, 1)");
    }
    if (a.has_eps() && !(a.eps() > 0)) return FieldError("optimizer.adamw.eps", "must be > 0");
    if (a.has_weight_decay() && !(a.weight_decay() >= 0)) {
      return FieldError("optimizer.adamw.weight_decay", "must be >= 0");
    }
    return absl::OkStatus();
  }
  return FieldError("optimizer", "set sgd or adamw");
}

absl::Status ValidateSchedule(const v1::LrSchedule& s, float base_lr) {
  if (s.warmup_steps() < 0) return FieldError("lr_schedule.warmup_steps", "must be >= 0");
  if (s.has_step()) {
    if (s.step().step_size() <= 0) {
      return FieldError("lr_schedule.step.step_size", "must be > 0");
    }
    if (!(s.step().gamma() > 0 && s.step().gamma() <= 1)) {
      return FieldError("lr_schedule.step.gamma", "must be in (0, 1]");
    }
  }
  if (s.has_cosine() && !(s.cosine().min_lr() >= 0 && s.cosine().min_lr() < base_lr)) {
    return FieldError("lr_schedule.cosine.min_lr", "must be >= 0 and below the optimizer's lr");
  }
  return absl::OkStatus();
}

absl::Status ValidateSync(const v1::JobSpec& spec) {
  const v1::SyncSpec& s = spec.sync();
  if (s.has_allreduce()) {
    if (s.allreduce().fusion_threshold_bytes() < 0) {
      return FieldError("sync.allreduce.fusion_threshold_bytes", "must be >= 0");
    }
    if (s.allreduce().rebalance_interval_steps() < 0) {
      return FieldError("sync.allreduce.rebalance_interval_steps", "must be >= 0");
    }
  }
  if (s.has_diloco()) {
    const v1::DiLoCoSync& d = s.diloco();
    if (d.inner_steps() <= 0) return FieldError("sync.diloco.inner_steps", "must be > 0");
    if (!(d.outer_lr() >= 0) || std::isinf(d.outer_lr())) {
      return FieldError("sync.diloco.outer_lr", "must be >= 0 and finite (0: 0.7)");
    }
    if (d.rounds() == 0 && spec.steps() == 0) {
      return FieldError("sync.diloco.rounds",
                        "set rounds, or steps (each replica's inner steps in all): epochs "
                        "count passes over the whole training set, which no replica makes");
    }
    if (!(d.outer_momentum() >= 0 && d.outer_momentum() < 1)) {
      return FieldError("sync.diloco.outer_momentum", "must be in [0, 1)");
    }
    if (!(d.trim_fraction() >= 0 && d.trim_fraction() < 0.5)) {
      return FieldError("sync.diloco.trim_fraction", "must be in [0, 0.5)");
    }
    if (d.delta_block() < 0 || d.delta_block() > 65536) {
      return FieldError("sync.diloco.delta_block", "must be in [1, 65536] (0: 256)");
    }
    if (d.parameter_dtype() == v1::WIRE_DTYPE_FLOAT16) {
      return FieldError("sync.diloco.parameter_dtype", "must be float32 or bfloat16");
    }
    if (d.quorum() < 0) return FieldError("sync.diloco.quorum", "must be >= 0");
    if (d.has_over_selection() && !(d.over_selection() >= 0 && d.over_selection() <= 10)) {
      return FieldError("sync.diloco.over_selection", "must be in [0, 10]");
    }
    if (d.round_deadline_seconds() < 0) {
      return FieldError("sync.diloco.round_deadline_seconds", "must be >= 0");
    }
    if (d.join_window_seconds() < 0 || d.join_window_seconds() > 86400) {
      return FieldError("sync.diloco.join_window_seconds", "must be in [0, 86400]");
    }
    if (d.has_max_staleness() && d.max_staleness() < 0) {
      return FieldError("sync.diloco.max_staleness", "must be >= 0");
    }
    if (d.shards().count() < 0) return FieldError("sync.diloco.shards.count", "must be >= 0");
    if (!(d.shards().dirichlet_alpha() >= 0) || std::isinf(d.shards().dirichlet_alpha())) {
      return FieldError("sync.diloco.shards.dirichlet_alpha", "must be >= 0 and finite");
    }
    if (d.replica_batch_size() < 0) {
      return FieldError("sync.diloco.replica_batch_size", "must be >= 0");
    }
    if (d.has_max_norm_ratio() && !(d.max_norm_ratio() == 0 || d.max_norm_ratio() >= 1)) {
      return FieldError("sync.diloco.max_norm_ratio", "must be 0 (off) or >= 1");
    }
    if (d.has_min_cosine() && !(d.min_cosine() >= -1 && d.min_cosine() <= 1)) {
      return FieldError("sync.diloco.min_cosine", "must be in [-1, 1] (-1: off)");
    }
    if (d.has_direction_mads() && !(d.direction_mads() >= 0 && d.direction_mads() <= 1000)) {
      return FieldError("sync.diloco.direction_mads", "must be in [0, 1000] (0: off)");
    }
    if (d.has_min_partial_fraction() &&
        !(d.min_partial_fraction() >= 0 && d.min_partial_fraction() <= 1)) {
      return FieldError("sync.diloco.min_partial_fraction", "must be in [0, 1]");
    }
    if (d.rounds() < 0) return FieldError("sync.diloco.rounds", "must be >= 0");
  }
  std::set<int> seen;
  for (int i = 0; i < spec.pools_size(); ++i) {
    const std::string field = absl::StrCat("pools[", i, "]");
    if (spec.pools(i) == v1::WORKER_POOL_UNSPECIFIED) {
      return FieldError(field, "must be WORKER_POOL_DATACENTER or WORKER_POOL_EDGE");
    }
    if (!seen.insert(spec.pools(i)).second) return FieldError(field, "listed twice");
    if (spec.pools(i) == v1::WORKER_POOL_EDGE && !s.has_diloco()) {
      return FieldError(field,
                        "the edge pool needs sync.diloco: edge workers sit behind "
                        "NAT and cannot join an all-reduce ring");
    }
  }
  if (spec.min_workers() < 0) return FieldError("min_workers", "must be >= 0");
  if (spec.checkpoint_period_seconds() < 0) {
    return FieldError("checkpoint_period_seconds", "must be >= 0");
  }
  if (spec.wait_for_workers_seconds() < 0) {
    return FieldError("wait_for_workers_seconds", "must be >= 0");
  }
  if (spec.max_workers() < 0) return FieldError("max_workers", "must be >= 0");
  if (spec.max_workers() > 0 && spec.max_workers() < spec.min_workers()) {
    return FieldError("max_workers", "must be >= min_workers");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::JobSpec> LoadJobSpec(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open job spec"));
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  return ParseJobSpec(text, path);
}

absl::StatusOr<v1::JobSpec> ParseJobSpec(const std::string& text, const std::string& path) {
  v1::JobSpec spec;
  if (absl::EndsWith(path, ".json")) {
    auto status = google::protobuf::util::JsonStringToMessage(text, &spec);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": not a JobSpec in proto3 JSON: ", status.message().as_string()));
    }
    return spec;
  }
  google::protobuf::TextFormat::Parser parser;
  ParseErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &spec)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a JobSpec in text format: ", errors.first));
  }
  return spec;
}

namespace {

// Every string field, at any depth, within kMaxSpecStringBytes.
absl::Status ValidateStrings(const google::protobuf::Message& m, const std::string& path) {
  const google::protobuf::Reflection* r = m.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const google::protobuf::FieldDescriptor* f : fields) {
    const std::string field = path.empty() ? f->name() : absl::StrCat(path, ".", f->name());
    const int n = f->is_repeated() ? r->FieldSize(m, f) : 1;
    for (int i = 0; i < n; ++i) {
      const std::string at = f->is_repeated() ? absl::StrCat(field, "[", i, "]") : field;
      if (f->type() == google::protobuf::FieldDescriptor::TYPE_STRING) {
        const std::string v = f->is_repeated() ? r->GetRepeatedString(m, f, i) : r->GetString(m, f);
        if (v.size() > kMaxSpecStringBytes) {
          return FieldError(at, absl::StrCat("longer than ", kMaxSpecStringBytes,
                                             " bytes (kMaxSpecStringBytes)"));
        }
      } else if (f->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
        const google::protobuf::Message& sub =
            f->is_repeated() ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f);
        if (absl::Status s = ValidateStrings(sub, at); !s.ok()) return s;
      }
    }
  }
  return absl::OkStatus();
}

// What a worker would allocate for the spec, bounded before anything is.
absl::Status ValidateBounds(const v1::JobSpec& spec) {
  if (spec.ByteSizeLong() > kMaxSpecBytes) {
    return FieldError("spec", absl::StrCat(spec.ByteSizeLong(), " bytes, over ", kMaxSpecBytes,
                                           " (kMaxSpecBytes)"));
  }
  if (absl::Status s = ValidateStrings(spec, ""); !s.ok()) return s;
  if (spec.model().layers_size() > kMaxLayers) {
    return FieldError("model.layers", absl::StrCat(spec.model().layers_size(), " layers, over ",
                                                   kMaxLayers, " (kMaxLayers)"));
  }
  if (spec.dataset().has_synthetic()) {
    const v1::SyntheticDataset& d = spec.dataset().synthetic();
    const int64_t sample =
        int64_t{std::max(d.channels(), 1)} * std::max(d.height(), 1) * std::max(d.width(), 1);
    const int64_t examples =
        int64_t{std::max(d.train_examples(), 0)} + std::max(d.test_examples(), 0);
    if (sample > kMaxTensorElements || examples * sample > kMaxTensorElements) {
      return FieldError("dataset.synthetic",
                        absl::StrCat("examples x sample size over ", kMaxTensorElements,
                                     " elements (kMaxTensorElements)"));
    }
  }
  return absl::OkStatus();
}

// Parameters, and a batch's largest activation, within kMaxTensorElements.
absl::Status ValidateSizes(const v1::JobSpec& spec) {
  absl::StatusOr<std::vector<TensorSpec>> params = ExpectedParameters(spec);
  if (!params.ok()) return params.status();
  int64_t total = 0;
  for (const TensorSpec& p : *params) total += NumElements(p.shape);
  if (total > kMaxTensorElements) {
    return FieldError("model.layers", absl::StrCat(total, " parameters, over ", kMaxTensorElements,
                                                   " (kMaxTensorElements)"));
  }
  Shape shape = ExpectedDatasetShape(spec.dataset()).sample_shape;
  int64_t largest = NumElements(shape);
  for (const v1::LayerSpec& layer : spec.model().layers()) {
    absl::StatusOr<Shape> next = InferOutputShape(layer, shape);
    if (!next.ok()) break;  // ValidateModel names it
    shape = *next;
    largest = std::max(largest, NumElements(shape));
  }
  if (largest > kMaxTensorElements / std::max<int64_t>(spec.global_batch_size(), 1)) {
    return FieldError("global_batch_size",
                      absl::StrCat(spec.global_batch_size(), " x the largest activation (", largest,
                                   " elements per sample) is over ", kMaxTensorElements,
                                   " elements (kMaxTensorElements)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateJobSpec(const v1::JobSpec& spec) {
  if (absl::Status s = ValidateBounds(spec); !s.ok()) return s;
  if (absl::Status s = ValidateDataset(spec.dataset()); !s.ok()) return s;
  if (absl::Status s = ValidateModel(spec); !s.ok()) return s;
  if (absl::Status s = ValidateSizes(spec); !s.ok()) return s;
  if (absl::Status s = ValidateOptimizer(spec.optimizer()); !s.ok()) return s;
  const float base_lr =
      spec.optimizer().has_sgd() ? spec.optimizer().sgd().lr() : spec.optimizer().adamw().lr();
  if (absl::Status s = ValidateSchedule(spec.lr_schedule(), base_lr); !s.ok()) return s;
  if (spec.global_batch_size() <= 0) return FieldError("global_batch_size", "must be > 0");
  switch (spec.duration_case()) {
    case v1::JobSpec::kEpochs:
      if (spec.epochs() <= 0) return FieldError("epochs", "must be > 0");
      break;
    case v1::JobSpec::kSteps:
      if (spec.steps() <= 0) return FieldError("steps", "must be > 0");
      break;
    case v1::JobSpec::DURATION_NOT_SET:
      return FieldError("epochs", "set epochs or steps");
  }
  if (spec.eval_interval_steps() < 0) return FieldError("eval_interval_steps", "must be >= 0");
  if (spec.checkpoint_interval_steps() < 0) {
    return FieldError("checkpoint_interval_steps", "must be >= 0");
  }
  if (!spec.publish_as().empty()) {
    if (absl::Status s = ValidateModelName(spec.publish_as(), "publish_as"); !s.ok()) return s;
  }
  return ValidateSync(spec);
}

absl::Status ValidateModelName(absl::string_view name, absl::string_view field) {
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  bool ok = !name.empty() && name.size() <= 64 && lower_or_digit(name[0]);
  for (char c : name) ok = ok && (lower_or_digit(c) || c == '.' || c == '_' || c == '-');
  if (ok) return absl::OkStatus();
  return FieldError(field, absl::StrCat("'", name.substr(0, 80),
                                        "' is not a model name: 1 to 64 of a-z, 0-9, '.', '_' "
                                        "and '-', starting with a letter or digit"));
}

int64_t TotalSteps(const v1::JobSpec& spec, int64_t train_size) {
  if (spec.has_steps()) return spec.steps();
  const int64_t per_epoch = (train_size + spec.global_batch_size() - 1) / spec.global_batch_size();
  return per_epoch * spec.epochs();
}

}  // namespace nightshift
