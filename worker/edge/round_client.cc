#include "worker/edge/round_client.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "security/tokens.h"

namespace nightshift {
namespace {

collective::DeltaFormat FormatOf(v1::DeltaEncoding e) {
  switch (e) {
    case v1::DELTA_ENCODING_FLOAT32:
      return collective::DeltaFormat::kFloat32;
    case v1::DELTA_ENCODING_BFLOAT16:
      return collective::DeltaFormat::kBFloat16;
    default:
      return collective::DeltaFormat::kInt8Blockwise;
  }
}

}  // namespace

RoundClient::RoundClient(const v1::JobSpec& spec, RoundService* service, RoundCompute* trainer,
                         RoundClientOptions options)
    : settings_(ResolveDiLoCo(spec)),
      service_(service),
      trainer_(trainer),
      options_(std::move(options)),
      format_(FormatOf(settings_.delta_encoding)),
      feedback_(static_cast<size_t>(trainer->num_parameters())) {}

absl::StatusOr<std::string> RoundClient::Fetch(const v1::RoundTicket& ticket,
                                               const std::atomic<bool>* stop,
                                               RoundOutcome* outcome) {
  std::string data;
  int failures = 0;
  while (static_cast<int64_t>(data.size()) < ticket.parameter_bytes()) {
    if (stop != nullptr && stop->load()) {
      return absl::CancelledError(absl::StrCat("preempted after ", data.size(), " of ",
                                               ticket.parameter_bytes(), " parameter bytes"));
    }
    v1::FetchParametersRequest request;
    request.set_worker_id(options_.worker_id);
    request.set_job_id(options_.job_id);
    request.set_version(ticket.base_version());
    request.set_offset(static_cast<int64_t>(data.size()));
    request.set_max_bytes(static_cast<int32_t>(options_.chunk_bytes));
    absl::StatusOr<v1::FetchParametersResponse> chunk = service_->FetchParameters(request);
    if (!chunk.ok()) {
      if (absl::IsFailedPrecondition(chunk.status()) || absl::IsInvalidArgument(chunk.status()) ||
          absl::IsPermissionDenied(chunk.status()) || ++failures >= options_.max_attempts) {
        return chunk.status();
      }
      ++outcome->retried;
      continue;  // resume from data.size()
    }
    if (chunk->offset() != static_cast<int64_t>(data.size()) || chunk->data().empty() ||
        chunk->total_bytes() != ticket.parameter_bytes()) {
      return absl::DataLossError(absl::StrCat("parameters v", ticket.base_version(), ": chunk at ",
                                              chunk->offset(), " of ", chunk->total_bytes(),
                                              " bytes, expected offset ", data.size(), " of ",
                                              ticket.parameter_bytes()));
    }
    data += chunk->data();
    outcome->bytes_fetched += static_cast<int64_t>(chunk->data().size());
    failures = 0;  // max_attempts counts per chunk
  }
  if (static_cast<int64_t>(data.size()) != ticket.parameter_bytes() ||
      security::Sha256Hex(data) != ticket.parameter_sha256()) {
    return absl::DataLossError(absl::StrCat("parameters v", ticket.base_version(),
                                            ": the bytes do not match the ticket's SHA-256"));
  }
  return data;
}

absl::StatusOr<v1::PushUpdateResponse> RoundClient::Push(const v1::RoundTicket& ticket,
                                                         const RoundResult& result,
                                                         const std::string& bytes,
                                                         RoundOutcome* outcome) {
  v1::PushUpdateRequest request;
  request.set_worker_id(options_.worker_id);
  request.set_job_id(options_.job_id);
  request.set_round(ticket.round());
  request.set_base_version(ticket.base_version());
  request.set_samples(result.samples);
  request.set_inner_steps_done(result.steps_done);
  request.set_train_loss(result.mean_loss);
  request.set_total_bytes(static_cast<int64_t>(bytes.size()));
  int64_t offset = 0;
  int failures = 0;
  while (true) {
    const int64_t n = std::min<int64_t>(options_.chunk_bytes, bytes.size() - offset);
    request.set_offset(offset);
    request.set_data(bytes.substr(offset, n));
    absl::StatusOr<v1::PushUpdateResponse> response = service_->PushUpdate(request);
    if (!response.ok()) {
      if (absl::IsInvalidArgument(response.status()) ||
          absl::IsPermissionDenied(response.status()) || ++failures >= options_.max_attempts) {
        return response.status();
      }
      ++outcome->retried;
      continue;  // the coordinator says where to go on at the next reply
    }
    outcome->bytes_pushed +=
        n;  // every chunk on the wire, resends included (a metered link pays them)
    if (response->complete()) return *response;
    const int64_t next = std::clamp<int64_t>(response->next_offset(), 0, bytes.size());
    if (next > offset) {
      failures = 0;  // max_attempts counts per chunk
    } else if (++failures >= options_.max_attempts) {
      return absl::DataLossError(absl::StrCat("round ", ticket.round(), ": the push made no ",
                                              "progress past byte ", offset));
    }
    offset = next;
  }
}

absl::StatusOr<RoundOutcome> RoundClient::RunOnce(const std::atomic<bool>* stop) {
  RoundOutcome outcome;
  v1::JoinRoundRequest join;
  join.set_worker_id(options_.worker_id);
  join.set_job_id(options_.job_id);
  absl::StatusOr<v1::RoundTicket> ticket = service_->JoinRound(join);
  if (!ticket.ok()) return ticket.status();
  if (ticket->job_ended()) {
    outcome.kind = RoundOutcome::kJobEnded;
    outcome.reason = ticket->reason();
    return outcome;
  }
  if (!ticket->selected()) {
    outcome.retry_after = absl::Milliseconds(std::max<int64_t>(1, ticket->retry_after_ms()));
    outcome.reason = ticket->reason();
    return outcome;
  }
  outcome.round = ticket->round();
  absl::StatusOr<std::string> encoded =
      Fetch(*ticket, ticket->evaluate() ? nullptr : stop, &outcome);
  if (absl::IsCancelled(encoded.status())) {  // preempted mid-fetch: free the place at once
    RoundResult nothing;
    nothing.preempted = true;
    absl::StatusOr<v1::PushUpdateResponse> withdrawn = Push(*ticket, nothing, "", &outcome);
    if (!withdrawn.ok()) return withdrawn.status();
    outcome.kind = RoundOutcome::kWithdrew;
    outcome.reason = std::string(encoded.status().message());
    return outcome;
  }
  if (!encoded.ok()) return encoded.status();
  absl::StatusOr<std::vector<float>> parameters =
      collective::DecodeDelta(*encoded, static_cast<size_t>(trainer_->num_parameters()));
  if (!parameters.ok()) return parameters.status();
  if (ticket->evaluate()) {  // the last round closed: the final parameters' accuracy
    absl::StatusOr<float> accuracy = trainer_->TestAccuracy(*parameters);
    if (!accuracy.ok()) return accuracy.status();
    outcome.kind = RoundOutcome::kEvaluated;
    outcome.version = ticket->base_version();
    outcome.test_accuracy = *accuracy;
    return outcome;
  }
  absl::StatusOr<RoundResult> result = trainer_->RunRound(*parameters, ticket->inner_steps(), stop);
  if (!result.ok()) return result.status();
  outcome.result = *std::move(result);
  const bool worth_pushing =
      !outcome.result.preempted ||
      (outcome.result.steps_done > 0 &&
       outcome.result.steps_done >= settings_.min_partial_fraction * ticket->inner_steps());
  std::string bytes;
  if (worth_pushing) {
    bytes = feedback_.Encode(format_, outcome.result.delta, settings_.delta_block);
  }
  absl::StatusOr<v1::PushUpdateResponse> pushed = Push(*ticket, outcome.result, bytes, &outcome);
  // An update that did not count leaves the residual it carried to send.
  if (worth_pushing && (!pushed.ok() || !pushed->accepted())) feedback_.UndoLastEncode();
  if (!pushed.ok()) return pushed.status();
  if (!worth_pushing) {
    outcome.kind = RoundOutcome::kWithdrew;
    outcome.reason = absl::StrCat("preempted after ", outcome.result.steps_done, " of ",
                                  ticket->inner_steps(), " inner steps");
  } else if (pushed->accepted()) {
    outcome.kind = RoundOutcome::kPushed;
  } else {
    outcome.kind = RoundOutcome::kRefused;
    outcome.reason = pushed->reason();
  }
  return outcome;
}

}  // namespace nightshift
