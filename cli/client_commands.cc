#include "cli/client_commands.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/filesystem.h"
#include "base/grpc_status.h"
#include "cli/progress_line.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "nightshift/v1/coordinator.grpc.pb.h"
#include "proto/job_state.h"
#include "security/channel.h"
#include "security/token_file.h"
#include "security/tokens.h"
#include "spec/job_spec.h"

namespace nightshift {
namespace {

using google::protobuf::util::TimeUtil;

constexpr int kMaxWorkerPage = 10000;  // ListWorkersRequest's largest

int Fail(const grpc::Status& s) {
  const absl::Status status = FromGrpc(s);
  std::fprintf(stderr, "nightshift: %s: %s\n", absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  return 1;
}

std::unique_ptr<grpc::ClientContext> Context(int seconds = 10) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

class Client {
 public:
  Client(const std::string& address, const security::TransportSecurity& security,
         const std::string& token) {
    stub_ = v1::Coordinator::NewStub(
        security::NewChannel(address, security, std::make_shared<security::TokenSource>(token)));
  }

  // token create --role=R [--label=L] | token list | token revoke ID
  int Token(const std::vector<std::string>& args, const ClientFlags& flags) {
    constexpr char kUsage[] =
        "token create --role=viewer|worker|admin [--label=TEXT] | token list | token revoke ID";
    if (args.empty()) return Usage(kUsage);
    if (args[0] == "create" && args.size() == 1) {
      v1::CreateTokenRequest request;
      request.set_role(flags.role);
      request.set_label(flags.label);
      v1::CreateTokenResponse response;
      grpc::Status s = stub_->CreateToken(Context().get(), request, &response);
      if (!s.ok()) return Fail(s);
      std::printf("%s\n", response.token().c_str());
      std::fprintf(stderr, "token %s (%s): shown once; the coordinator keeps only its hash\n",
                   response.info().id().c_str(), response.info().role().c_str());
      return 0;
    }
    if (args[0] == "list" && args.size() == 1) {
      v1::ListTokensResponse response;
      grpc::Status s = stub_->ListTokens(Context().get(), {}, &response);
      if (!s.ok()) return Fail(s);
      std::printf("%-17s %-7s %-20s %-21s %s\n", "ID", "ROLE", "WORKER", "CREATED", "LABEL");
      for (const auto& t : response.tokens()) {
        std::printf("%-17s %-7s %-20s %-21s %s\n", t.id().c_str(), t.role().c_str(),
                    t.subject().c_str(), TimeUtil::ToString(t.created()).substr(0, 19).c_str(),
                    t.label().c_str());
      }
      return 0;
    }
    if (args[0] == "revoke" && args.size() == 2) {
      v1::RevokeTokenRequest request;
      request.set_id(args[1]);
      v1::RevokeTokenResponse response;
      grpc::Status s = stub_->RevokeToken(Context().get(), request, &response);
      if (!s.ok()) return Fail(s);
      std::printf("revoked %s\n", args[1].c_str());
      return 0;
    }
    return Usage(kUsage);
  }

  int Submit(const std::vector<std::string>& args, const ClientFlags& flags) {
    if (args.size() != 1) return Usage("submit JOB_SPEC [--id=ID] [--watch]");
    absl::StatusOr<v1::JobSpec> spec = LoadJobSpec(args[0]);
    if (!spec.ok()) {
      std::fprintf(stderr, "nightshift: %s\n", std::string(spec.status().message()).c_str());
      return 2;
    }
    v1::SubmitJobRequest request;
    *request.mutable_spec() = *spec;
    request.set_job_id(flags.id);
    v1::JobStatus job;
    grpc::Status s = stub_->SubmitJob(Context().get(), request, &job);
    if (!s.ok()) return Fail(s);
    std::printf("%s\n", job.id().c_str());
    std::fflush(stdout);
    return flags.watch ? Watch({job.id()}) : 0;
  }

  int List() {
    v1::ListJobsResponse jobs;
    grpc::Status s = stub_->ListJobs(Context().get(), {}, &jobs);
    if (!s.ok()) return Fail(s);
    std::printf("%-24s %-10s %-13s %-9s %-12s %s\n", "ID", "STATE", "STEP", "TEST ACC", "SAMPLES/S",
                "WORKERS");
    for (const auto& j : jobs.jobs()) {
      std::printf("%-24s %-10s %-13s %-9s %-12.0f %s\n", j.id().c_str(),
                  JobStateName(j.state()).c_str(),
                  absl::StrFormat("%d/%d", j.progress().step(), j.progress().total_steps()).c_str(),
                  absl::StrFormat("%.2f%%", 100 * j.progress().test_accuracy()).c_str(),
                  j.progress().samples_per_second(), absl::StrJoin(j.workers(), ",").c_str());
    }
    return 0;
  }

  int Status(const std::vector<std::string>& args) {
    if (args.size() != 1) return Usage("status ID");
    v1::JobStatus j;
    grpc::Status s = stub_->GetJob(Context().get(), Id(args[0]), &j);
    if (!s.ok()) return Fail(s);
    v1::GetJobHistoryRequest hr;
    hr.set_job_id(args[0]);
    v1::GetJobHistoryResponse history;
    s = stub_->GetJobHistory(Context().get(), hr, &history);
    if (!s.ok()) return Fail(s);
    std::printf("job:        %s (%s)\n", j.id().c_str(), j.spec().name().c_str());
    std::printf("state:      %s — %s\n", JobStateName(j.state()).c_str(), j.reason().c_str());
    std::printf("generation: %lld\n", static_cast<long long>(j.generation()));
    if (j.state() == v1::JOB_STATE_WAITING) {
      std::printf("waiting:    for workers until %s\n",
                  TimeUtil::ToString(j.wait_deadline()).c_str());
    }
    std::printf("workers:    %s\n", absl::StrJoin(j.workers(), ", ").c_str());
    std::printf("progress:   %s\n", FormatProgressLine(j.progress()).c_str());
    std::printf("test:       accuracy %.2f%%, loss %.4f\n", 100 * j.progress().test_accuracy(),
                j.progress().test_loss());
    for (const auto& c : j.checkpoints()) {
      std::printf("checkpoint: step %lld, %lld bytes, %s\n", static_cast<long long>(c.step()),
                  static_cast<long long>(c.size_bytes()), c.path().c_str());
    }
    std::printf("history:\n");
    for (const auto& e : history.events()) {
      std::printf("  %s  %-10s %s\n", TimeUtil::ToString(e.time()).c_str(),
                  JobStateName(e.state()).c_str(), e.reason().c_str());
    }
    return 0;
  }

  int Watch(const std::vector<std::string>& args) {
    if (args.size() != 1) return Usage("watch ID");
    const bool tty = isatty(fileno(stderr));
    int64_t last_step = -1;
    std::string last_reason;
    while (true) {
      v1::JobStatus j;
      grpc::Status s = stub_->GetJob(Context().get(), Id(args[0]), &j);
      if (!s.ok()) return Fail(s);
      const bool done = IsTerminal(j.state());
      if (j.state() == v1::JOB_STATE_WAITING && j.reason() != last_reason) {
        last_reason = j.reason();
        std::fprintf(stderr, "%sWAITING — %s\n", tty ? "\r\033[K" : "", j.reason().c_str());
      }
      if (j.state() == v1::JOB_STATE_RUNNING && j.progress().total_steps() > 0 &&
          j.progress().step() != last_step) {
        last_step = j.progress().step();
        std::fprintf(stderr, tty ? "\r\033[K%s  test acc %.2f%%" : "%s  test acc %.2f%%\n",
                     FormatProgressLine(j.progress()).c_str(), 100 * j.progress().test_accuracy());
        std::fflush(stderr);
      }
      if (done) {
        if (tty) std::fprintf(stderr, "\n");
        std::printf("%s: %s — %s\n", j.id().c_str(), JobStateName(j.state()).c_str(),
                    j.reason().c_str());
        if (j.state() == v1::JOB_STATE_SUCCEEDED) {
          std::printf("final test accuracy: %.2f%%\n", 100 * j.progress().test_accuracy());
        }
        return j.state() == v1::JOB_STATE_SUCCEEDED ? 0 : 1;
      }
      absl::SleepFor(absl::Milliseconds(500));  // polling interval of a live display
    }
  }

  int Cancel(const std::vector<std::string>& args) {
    if (args.size() != 1) return Usage("cancel ID");
    v1::CancelJobRequest request;
    request.set_job_id(args[0]);
    v1::JobStatus j;
    grpc::Status s = stub_->CancelJob(Context().get(), request, &j);
    if (!s.ok()) return Fail(s);
    std::printf("%s: %s\n", j.id().c_str(), JobStateName(j.state()).c_str());
    return 0;
  }

  int Drain(const std::vector<std::string>& args) {
    if (args.size() != 1) return Usage("drain WORKER  (its id or name)");
    v1::DrainWorkerRequest request;
    request.set_worker(args[0]);
    v1::WorkerInfo w;
    grpc::Status s = stub_->DrainWorker(Context().get(), request, &w);
    if (!s.ok()) return Fail(s);
    const std::string finishing =
        w.job_id().empty()
            ? ""
            : absl::StrCat(", finishing job ", w.job_id(), " (no other worker to go on with)");
    std::printf("%s (%s): %s%s\n", w.name().c_str(), w.id().c_str(),
                v1::WorkerState_Name(w.state()).substr(13).c_str(), finishing.c_str());
    return 0;
  }

  // Every page of them, in id order.
  int Workers() {
    std::printf("%-18s %-20s %-11s %-9s %-12s %-22s %-16s %s\n", "ID", "NAME", "POOL", "STATE",
                "SAMPLES/S", "PEER", "JOB", "ELIGIBILITY");
    v1::ListWorkersRequest request;
    request.set_page_size(kMaxWorkerPage);
    v1::ListWorkersResponse workers;
    do {
      grpc::Status s = stub_->ListWorkers(Context().get(), request, &workers);
      if (!s.ok()) return Fail(s);
      PrintWorkers(workers);
      request.set_page_token(workers.next_page_token());
    } while (!request.page_token().empty());
    return 0;
  }

  static void PrintWorkers(const v1::ListWorkersResponse& workers) {
    for (const auto& w : workers.workers()) {
      // Vehicles: whether they may compute, and why.
      const std::string eligibility =
          w.pool() != v1::WORKER_POOL_EDGE ? ""
          : w.eligibility().reason().empty()
              ? "ineligible: not reported"
              : absl::StrCat(w.eligibility().eligible() ? "eligible: " : "ineligible: ",
                             w.eligibility().reason());
      std::printf("%-18s %-20s %-11s %-9s %-12.0f %-22s %-16s %s\n", w.id().c_str(),
                  w.name().c_str(), v1::WorkerPool_Name(w.pool()).substr(12).c_str(),
                  v1::WorkerState_Name(w.state()).substr(13).c_str(), w.samples_per_second(),
                  w.peer_address().c_str(), w.job_id().c_str(), eligibility.c_str());
    }
  }

  int Export(const std::vector<std::string>& args) {
    if (args.size() != 2) return Usage("export ID OUT.safetensors");
    v1::DownloadModelRequest request;
    request.set_job_id(args[0]);
    auto ctx = Context(300);
    auto reader = stub_->DownloadModel(ctx.get(), request);
    const std::string tmp = args[1] + ".part";
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    v1::FileChunk chunk;
    int64_t bytes = 0;
    while (reader->Read(&chunk)) {
      out.write(chunk.data().data(), chunk.data().size());
      bytes += static_cast<int64_t>(chunk.data().size());
    }
    grpc::Status s = reader->Finish();
    out.close();
    if (!s.ok()) {
      std::remove(tmp.c_str());
      return Fail(s);
    }
    if (!out || std::rename(tmp.c_str(), args[1].c_str()) != 0) {
      std::fprintf(stderr, "nightshift: cannot write %s\n", args[1].c_str());
      return 1;
    }
    std::printf("wrote %s (%lld bytes)\n", args[1].c_str(), static_cast<long long>(bytes));
    return 0;
  }

  // publish ID MODEL_NAME: the job's model becomes the name's next version.
  int Publish(const std::vector<std::string>& args) {
    if (args.size() != 2) return Usage("publish JOB_ID MODEL_NAME");
    v1::PublishModelRequest request;
    request.set_job_id(args[0]);
    request.set_model_name(args[1]);
    v1::ModelVersion v;
    grpc::Status s = stub_->PublishModel(Context(60).get(), request, &v);
    if (!s.ok()) return Fail(s);
    std::printf("%s version %lld (job %s, test accuracy %.2f%%, %lld bytes, sha256 %s)\n",
                v.name().c_str(), static_cast<long long>(v.version()), v.job_id().c_str(),
                100 * v.test_accuracy(), static_cast<long long>(v.size_bytes()),
                v.sha256().c_str());
    return 0;
  }

  // models [NAME]: the published versions.
  int Models(const std::vector<std::string>& args) {
    if (args.size() > 1) return Usage("models [MODEL_NAME]");
    v1::ListModelsRequest request;
    if (!args.empty()) request.set_model_name(args[0]);
    v1::ListModelsResponse response;
    grpc::Status s = stub_->ListModels(Context().get(), request, &response);
    if (!s.ok()) return Fail(s);
    std::printf("%-24s %-8s %-24s %-9s %-10s %-21s %s\n", "MODEL", "VERSION", "JOB", "TEST ACC",
                "BYTES", "PUBLISHED", "SHA256");
    for (const auto& v : response.versions()) {
      std::printf("%-24s %-8lld %-24s %-9s %-10lld %-21s %s\n", v.name().c_str(),
                  static_cast<long long>(v.version()), v.job_id().c_str(),
                  absl::StrFormat("%.2f%%", 100 * v.test_accuracy()).c_str(),
                  static_cast<long long>(v.size_bytes()),
                  TimeUtil::ToString(v.create_time()).substr(0, 19).c_str(),
                  v.sha256().substr(0, 16).c_str());
    }
    return 0;
  }

  // pull MODEL_NAME[:VERSION] OUT.safetensors: a published version (the
  // newest by default), checked against its SHA-256 before it is written.
  int Pull(const std::vector<std::string>& args) {
    constexpr char kUsage[] = "pull MODEL_NAME[:VERSION] OUT.safetensors";
    if (args.size() != 2) return Usage(kUsage);
    v1::FetchModelRequest request;
    const size_t colon = args[0].find(':');
    request.set_model_name(args[0].substr(0, colon));
    if (colon != std::string::npos) {
      int64_t version = 0;
      if (!absl::SimpleAtoi(args[0].substr(colon + 1), &version) || version <= 0) {
        std::fprintf(stderr, "nightshift: '%s': the version after ':' must be a number > 0\n",
                     args[0].c_str());
        return 2;
      }
      request.set_version(version);
    }
    std::string bytes;
    v1::ModelVersion version;
    do {
      request.set_offset(static_cast<int64_t>(bytes.size()));
      v1::FetchModelResponse piece;
      grpc::Status s = stub_->FetchModel(Context(60).get(), request, &piece);
      if (!s.ok()) return Fail(s);
      version = piece.version();
      request.set_version(version.version());  // every piece from the same version
      if (piece.data().empty()) break;
      bytes += piece.data();
    } while (static_cast<int64_t>(bytes.size()) < version.size_bytes());
    if (security::Sha256Hex(bytes) != version.sha256()) {
      std::fprintf(stderr, "nightshift: %s v%lld: the download does not match its SHA-256\n",
                   version.name().c_str(), static_cast<long long>(version.version()));
      return 1;
    }
    if (absl::Status written = WriteFileDurably(args[1], bytes); !written.ok()) {
      std::fprintf(stderr, "nightshift: %s\n", std::string(written.message()).c_str());
      return 1;
    }
    std::printf("wrote %s (%s version %lld, %lld bytes, sha256 verified)\n", args[1].c_str(),
                version.name().c_str(), static_cast<long long>(version.version()),
                static_cast<long long>(bytes.size()));
    return 0;
  }

 private:
  static v1::GetJobRequest Id(const std::string& id) {
    v1::GetJobRequest r;
    r.set_job_id(id);
    return r;
  }
  static int Usage(const char* text) {
    std::fprintf(stderr, "usage: nightshift %s\n", text);
    return 2;
  }

  std::unique_ptr<v1::Coordinator::Stub> stub_;
};

}  // namespace

bool IsClientCommand(const std::string& c) {
  return c == "submit" || c == "list" || c == "status" || c == "watch" || c == "cancel" ||
         c == "workers" || c == "drain" || c == "export" || c == "token" || c == "publish" ||
         c == "models" || c == "pull";
}

int RunClientCommand(const std::string& command, const std::vector<std::string>& args,
                     const ClientFlags& flags) {
  absl::StatusOr<security::TransportSecurity> transport = security::TransportSecurityFromFlags(
      flags.insecure, flags.insecure ? flags.tls : security::ResolveClientTls(flags.tls),
      "nightshift");
  if (!transport.ok()) {
    std::fprintf(stderr, "nightshift: %s\n", std::string(transport.status().message()).c_str());
    return 2;
  }
  absl::StatusOr<std::string> token = security::ResolveClientToken(flags.token, flags.token_file);
  if (!token.ok()) {
    std::fprintf(stderr, "nightshift: %s\n", std::string(token.status().message()).c_str());
    return 2;
  }
  Client client(security::ResolveCoordinator(flags.coordinator), *transport, *token);
  if (command == "token") return client.Token(args, flags);
  if (command == "submit") return client.Submit(args, flags);
  if (command == "list") return client.List();
  if (command == "status") return client.Status(args);
  if (command == "watch") return client.Watch(args);
  if (command == "cancel") return client.Cancel(args);
  if (command == "workers") return client.Workers();
  if (command == "drain") return client.Drain(args);
  if (command == "export") return client.Export(args);
  if (command == "publish") return client.Publish(args);
  if (command == "models") return client.Models(args);
  if (command == "pull") return client.Pull(args);
  return 2;
}

}  // namespace nightshift
