#include "coordinator/rounds/round_keeper.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "collective/delta_codec.h"
#include "google/protobuf/util/time_util.h"
#include "security/tokens.h"

namespace nightshift::coordinator::rounds {
namespace {

constexpr int64_t kDefaultFetchChunk = 1 << 20;
constexpr int64_t kMaxFetchChunk = 4 << 20;
// A replica not selected asks again after this long (or at the
// deadline, if sooner).
constexpr absl::Duration kRetryAfter = absl::Seconds(1);

AggregationRule RuleOf(v1::Aggregation a) {
  switch (a) {
    case v1::AGGREGATION_TRIMMED_MEAN:
      return AggregationRule::kTrimmedMean;
    case v1::AGGREGATION_MEDIAN:
      return AggregationRule::kMedian;
    case v1::AGGREGATION_CENTERED_CLIP:
      return AggregationRule::kCenteredClip;
    default:
      return AggregationRule::kMean;
  }
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RoundKeeper>> RoundKeeper::Create(const v1::JobSpec& spec,
                                                                 RoundSnapshot start,
                                                                 absl::Time now) {
  if (!spec.sync().has_diloco()) return absl::InvalidArgumentError("not a diloco job");
  if (start.parameters.empty()) return absl::InvalidArgumentError("no parameters");
  const size_t n = start.parameters.size();
  if ((!start.momentum.empty() && start.momentum.size() != n) ||
      (!start.last_aggregate.empty() && start.last_aggregate.size() != n)) {
    return absl::InvalidArgumentError(
        absl::StrCat("round snapshot: momentum or aggregate size is not the ", n, " parameters"));
  }
  std::unique_ptr<RoundKeeper> keeper(new RoundKeeper(ResolveDiLoCo(spec), std::move(start), now));
  return keeper;
}

RoundKeeper::RoundKeeper(DiLoCoSettings settings, RoundSnapshot start, absl::Time now)
    : settings_(std::move(settings)),
      size_(start.parameters.size()),
      round_(start.round),
      parameters_(std::move(start.parameters)),
      last_aggregate_(std::move(start.last_aggregate)),
      outer_(size_, {settings_.outer_lr, settings_.outer_momentum, settings_.outer_nesterov}),
      shards_(std::move(start.shards)),
      shard_load_(std::max(1, settings_.shard_count), 0) {
  if (!start.momentum.empty()) outer_.RestoreMomentum(start.momentum).IgnoreError();
  aggregation_.rule = RuleOf(settings_.aggregation);
  aggregation_.trim_fraction = settings_.trim_fraction;
  aggregation_.max_norm_ratio = settings_.max_norm_ratio;
  aggregation_.min_cosine = settings_.min_cosine;
  aggregation_.direction_mads = settings_.direction_mads;
  for (const auto& [replica, shard] : shards_) {
    if (shard >= 0 && shard < static_cast<int>(shard_load_.size())) ++shard_load_[shard];
  }
  EncodeParameters();
  OpenRound(now);
}

void RoundKeeper::EncodeParameters() {
  const collective::DeltaFormat format = settings_.parameter_dtype == v1::WIRE_DTYPE_BFLOAT16
                                             ? collective::DeltaFormat::kBFloat16
                                             : collective::DeltaFormat::kFloat32;
  encoded_ = collective::EncodeDelta(format, parameters_);
  encoded_sha256_ = security::Sha256Hex(encoded_);
}

void RoundKeeper::OpenRound(absl::Time now) {
  open_time_ = now;
  first_join_ = absl::InfiniteFuture();
  deadline_ = now + absl::Seconds(settings_.round_deadline_seconds);
  selection_order_.clear();
  places_.clear();
  updates_.clear();
  // Uploads in flight stay: a replica of the last round may still finish
  // its push, and is judged by its staleness then.
}

int RoundKeeper::active_places() const {
  int n = 0;
  for (const auto& [replica, place] : places_) n += place.withdrawn ? 0 : 1;
  return n;
}

int RoundKeeper::ShardFor(const std::string& replica) {
  auto it = shards_.find(replica);
  if (it != shards_.end()) return it->second;
  const int shard = static_cast<int>(std::min_element(shard_load_.begin(), shard_load_.end()) -
                                     shard_load_.begin());
  ++shard_load_[shard];
  shards_[replica] = shard;
  return shard;
}

v1::RoundTicket RoundKeeper::Join(const std::string& replica, absl::Time now) {
  v1::RoundTicket ticket;
  if (done()) {
    ticket.set_job_ended(true);
    ticket.set_reason(absl::StrCat("all ", settings_.rounds, " rounds are done"));
    return ticket;
  }
  const absl::Duration left = std::max(absl::ZeroDuration(), deadline_ - now);
  auto not_selected = [&](const std::string& why) {
    ticket.set_reason(why);
    ticket.set_retry_after_ms(absl::ToInt64Milliseconds(std::min(kRetryAfter, left)) + 1);
    return ticket;
  };
  auto it = places_.find(replica);
  if (it != places_.end() && it->second.pushed) {
    return not_selected(absl::StrCat("already pushed to round ", round_));
  }
  if (it == places_.end() || it->second.withdrawn) {
    if (active_places() >= settings_.selected_per_round) {
      return not_selected(
          absl::StrCat("round ", round_, " has its ", settings_.selected_per_round, " replicas"));
    }
    if (it == places_.end()) selection_order_.push_back(replica);
    places_[replica] = Place{};
    if (first_join_ == absl::InfiniteFuture()) first_join_ = now;
    places_[replica].holds = now - first_join_ <= absl::Seconds(settings_.join_window_seconds);
  }
  ticket.set_selected(true);
  ticket.set_round(round_);
  ticket.set_base_version(round_);
  ticket.set_parameter_bytes(static_cast<int64_t>(encoded_.size()));
  ticket.set_parameter_sha256(encoded_sha256_);
  ticket.set_inner_steps(settings_.inner_steps);
  ticket.set_deadline_ms(absl::ToInt64Milliseconds(left));
  return ticket;
}

v1::RoundTicket RoundKeeper::EvaluationTicket() const {
  v1::RoundTicket ticket;
  ticket.set_selected(true);
  ticket.set_evaluate(true);
  ticket.set_round(round_);
  ticket.set_base_version(round_);
  ticket.set_parameter_bytes(static_cast<int64_t>(encoded_.size()));
  ticket.set_parameter_sha256(encoded_sha256_);
  return ticket;
}

absl::StatusOr<v1::FetchParametersResponse> RoundKeeper::Fetch(
    const std::string& replica, const v1::FetchParametersRequest& request) {
  if (request.version() != round_) {
    return absl::FailedPreconditionError(absl::StrCat("parameters version ", request.version(),
                                                      " are gone: the current version is ", round_,
                                                      " (join the round again)"));
  }
  const int64_t total = static_cast<int64_t>(encoded_.size());
  if (request.offset() < 0 || request.offset() > total) {
    return absl::InvalidArgumentError(
        absl::StrCat("offset ", request.offset(), " is outside the ", total, " bytes"));
  }
  const int64_t chunk = request.max_bytes() > 0
                            ? std::min<int64_t>(request.max_bytes(), kMaxFetchChunk)
                            : kDefaultFetchChunk;
  const int64_t n = std::min(chunk, total - request.offset());
  v1::FetchParametersResponse response;
  response.set_data(encoded_.substr(request.offset(), n));
  response.set_offset(request.offset());
  response.set_total_bytes(total);
  bytes_out_ += n;
  (void)replica;  // any replica of the job may fetch (a selected one just did Join)
  return response;
}

absl::StatusOr<v1::PushUpdateResponse> RoundKeeper::Push(const std::string& replica,
                                                         const v1::PushUpdateRequest& request) {
  const int64_t max_bytes =
      static_cast<int64_t>(collective::EncodedDeltaBytes(collective::DeltaFormat::kFloat32, size_));
  if (request.total_bytes() < 0 || request.total_bytes() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("total_bytes ", request.total_bytes(), " is outside [0, ", max_bytes, "]"));
  }
  if (request.round() > round_ || request.base_version() > round_ || request.base_version() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("round ", request.round(), " / base version ",
                                                   request.base_version(),
                                                   " is ahead of the job's round ", round_));
  }
  if (request.samples() < 0 || request.inner_steps_done() < 0) {
    return absl::InvalidArgumentError("samples and inner_steps_done must be >= 0");
  }
  v1::PushUpdateResponse response;
  if (request.total_bytes() == 0) {  // withdrawal
    uploads_.erase(replica);
    auto it = places_.find(replica);
    if (it != places_.end() && !it->second.pushed && request.round() == round_) {
      it->second.withdrawn = true;
      refused_.push_back([&] {
        v1::RoundRefusal r;
        r.set_replica(replica);
        r.set_reason(absl::StrCat("withdrew after ", request.inner_steps_done(), " of ",
                                  settings_.inner_steps, " inner steps"));
        return r;
      }());
    }
    response.set_complete(true);
    return response;
  }
  Upload& upload = uploads_[replica];
  if (upload.bytes.empty() || upload.round != request.round() ||
      upload.base_version != request.base_version() ||
      upload.total_bytes != request.total_bytes()) {
    // A new upload (or another one than the one in flight): start over.
    upload = Upload{request.round(),       request.base_version(),     request.samples(),
                    request.total_bytes(), request.inner_steps_done(), {}};
    if (request.offset() != 0) {
      response.set_next_offset(0);
      return response;
    }
  }
  const int64_t have = static_cast<int64_t>(upload.bytes.size());
  if (request.offset() != have ||
      have + static_cast<int64_t>(request.data().size()) > upload.total_bytes) {
    response.set_next_offset(have);
    return response;
  }
  upload.bytes += request.data();
  bytes_in_ += static_cast<int64_t>(request.data().size());
  if (static_cast<int64_t>(upload.bytes.size()) < upload.total_bytes) {
    response.set_next_offset(static_cast<int64_t>(upload.bytes.size()));
    return response;
  }
  Upload complete = std::move(upload);
  uploads_.erase(replica);
  return Judge(replica, std::move(complete));
}

v1::PushUpdateResponse RoundKeeper::Judge(const std::string& replica, Upload upload) {
  v1::PushUpdateResponse response;
  response.set_next_offset(upload.total_bytes);
  response.set_complete(true);
  auto refuse = [&](const std::string& why) {
    v1::RoundRefusal refusal;
    refusal.set_replica(replica);
    refusal.set_reason(why);
    refused_.push_back(refusal);
    response.set_accepted(false);
    response.set_reason(why);
    return response;
  };
  const int64_t staleness = round_ - upload.base_version;
  if (staleness > settings_.max_staleness) {
    return refuse(absl::StrCat("stale: base version ", upload.base_version, " is ", staleness,
                               " rounds old (at most ", settings_.max_staleness, ")"));
  }
  for (const ReplicaUpdate& u : updates_) {
    if (u.replica == replica) return refuse(absl::StrCat("a second update to round ", round_));
  }
  absl::StatusOr<std::vector<float>> delta = collective::DecodeDelta(upload.bytes, size_);
  if (!delta.ok()) return refuse(std::string(delta.status().message()));
  ReplicaUpdate update;
  update.replica = replica;
  update.delta = std::move(*delta);
  // Staleness down-weights: samples / (1 + s), at least 1 when it saw any.
  update.samples = upload.samples / (1 + staleness);
  if (upload.samples > 0) update.samples = std::max<int64_t>(1, update.samples);
  updates_.push_back(std::move(update));
  // Its push to the open round, also when the update is a stale one from
  // a replica not selected for it: it is not selected again to train the
  // same round twice (a second update would only be refused).
  places_[replica].pushed = true;
  response.set_accepted(true);
  return response;
}

void RoundKeeper::Forget(const std::string& replica) {
  auto it = places_.find(replica);
  if (it != places_.end() && !it->second.pushed) it->second.withdrawn = true;
  uploads_.erase(replica);
}

std::optional<v1::RoundInfo> RoundKeeper::MaybeClose(absl::Time now) {
  if (done()) return std::nullopt;
  const bool quorum = static_cast<int>(updates_.size()) >= settings_.quorum;
  const bool deadline = now >= deadline_;
  const bool all_in =
      settings_.join_window_seconds > 0 && !updates_.empty() &&
      first_join_ != absl::InfiniteFuture() &&
      now >= first_join_ + absl::Seconds(settings_.join_window_seconds) &&
      std::none_of(places_.begin(), places_.end(), [](const auto& place) {
        return place.second.holds && !place.second.pushed && !place.second.withdrawn;
      });
  if (!quorum && !deadline && !all_in) return std::nullopt;
  if (updates_.empty()) {
    OpenRound(now);  // nobody pushed: select afresh
    return std::nullopt;
  }
  for (ReplicaUpdate& u : updates_) {
    const auto& [sum, rounds] = direction_history_[u.replica];
    u.past_cosine_sum = sum;
    u.past_rounds = rounds;
  }
  absl::StatusOr<AggregationResult> result =
      Aggregate(updates_, size_, aggregation_, last_aggregate_);
  if (!result.ok()) {  // every update refused
    for (const ReplicaUpdate& u : updates_) {
      v1::RoundRefusal r;
      r.set_replica(u.replica);
      r.set_reason(std::string(result.status().message()));
      refused_.push_back(r);
    }
    OpenRound(now);
    return std::nullopt;
  }
  v1::RoundInfo info;
  info.set_round(round_);
  info.set_base_version(round_);
  for (const std::string& r : selection_order_) info.add_selected(r);
  int64_t samples = 0;
  for (const std::string& r : result->accepted) {
    info.add_accepted(r);
    for (const ReplicaUpdate& u : updates_) {
      if (u.replica == r) samples += u.samples;
    }
  }
  for (const v1::RoundRefusal& r : refused_) *info.add_refused() = r;
  for (const Refusal& r : result->refused) {
    v1::RoundRefusal* out = info.add_refused();
    out->set_replica(r.replica);
    out->set_reason(r.reason);
  }
  info.set_samples(samples);
  info.set_bytes_in(bytes_in_);
  info.set_bytes_out(bytes_out_);
  *info.mutable_open_time() = ToProto(open_time_);
  *info.mutable_close_time() = ToProto(now);
  info.set_close_reason(quorum ? "quorum" : all_in ? "joined pushed" : "deadline");
  double norm = 0;
  for (float v : result->delta) norm += static_cast<double>(v) * v;
  info.set_update_norm(static_cast<float>(std::sqrt(norm)));
  info.set_aggregation(AggregationRuleName(aggregation_.rule));

  for (const auto& [replica, cosine] : result->cosines) {
    auto& [sum, rounds] = direction_history_[replica];
    sum += cosine;
    ++rounds;
  }
  outer_.Apply(absl::MakeSpan(parameters_), result->delta).IgnoreError();  // sizes match
  last_aggregate_ = std::move(result->delta);
  ++round_;
  refused_.clear();
  bytes_in_ = bytes_out_ = 0;
  EncodeParameters();
  OpenRound(now);
  return info;
}

RoundSnapshot RoundKeeper::Snapshot() const {
  RoundSnapshot s;
  s.round = round_;
  s.parameters = parameters_;
  s.momentum.assign(outer_.momentum().begin(), outer_.momentum().end());
  s.last_aggregate = last_aggregate_;
  s.shards = shards_;
  return s;
}

}  // namespace nightshift::coordinator::rounds
