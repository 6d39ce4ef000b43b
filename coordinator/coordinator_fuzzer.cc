// Fuzz target: each coordinator RPC handler fed with a message parsed from
// the fuzzer's bytes, as a caller of some role. Byte 0 picks the method
// (0-15; 16 is a Tick and the reads), byte 1 the caller (admin, viewer,
// join token, or worker credential w0..w3), the rest is the request. The
// coordinator runs in-process on an in-memory store and a fake clock that
// byte 1's high bits advance; it is rebuilt every 1000 inputs so state
// stays bounded. Nothing may crash.
#include <cstdint>
#include <memory>
#include <string>

#include "base/clock.h"
#include "coordinator/coordinator.h"

namespace nightshift::coordinator {
namespace {

using security::Principal;
using security::Role;

// The fuzz target's own world (libFuzzer calls one function; this is the
// state it keeps between calls).
struct World {
  World() : clock(absl::FromUnixSeconds(1'700'000'000)) {
    store = *JobStore::Open(":memory:");
    CoordinatorOptions options;
    options.state_dir = "/tmp/nightshift-coordinator-fuzzer";
    coordinator = *Coordinator::Create(store.get(), &clock, options);
  }
  FakeClock clock;
  std::unique_ptr<JobStore> store;
  std::unique_ptr<Coordinator> coordinator;
  int inputs = 0;
};

Principal CallerFor(uint8_t b) {
  switch (b % 7) {
    case 0:
      return {Role::kAdmin, "", ""};
    case 1:
      return {Role::kViewer, "", ""};
    case 2:
      return {Role::kWorker, "", ""};
    default:
      return {Role::kWorker, "w" + std::to_string(b % 7 - 3), ""};
  }
}

template <typename M>
bool Parse(M& m, const uint8_t* data, size_t size) {
  return m.ParseFromArray(data, static_cast<int>(size));
}

}  // namespace
}  // namespace nightshift::coordinator

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nightshift;
  using namespace nightshift::coordinator;
  static World* world = new World();
  if (size < 2) return 0;
  if (++world->inputs % 1000 == 0) {
    delete world;
    world = new World();
  }
  Coordinator& c = *world->coordinator;
  const Principal caller = CallerFor(data[1]);
  world->clock.Advance(absl::Milliseconds(data[1] >> 3 << 6));
  const uint8_t* body = data + 2;
  const size_t n = size - 2;
  switch (data[0] % 17) {
    case 0: {
      v1::SubmitJobRequest r;
      if (Parse(r, body, n)) (void)c.SubmitJob(r);
      break;
    }
    case 1: {
      v1::CancelJobRequest r;
      if (Parse(r, body, n)) (void)c.CancelJob(r.job_id(), r.reason());
      break;
    }
    case 2: {
      v1::RegisterRequest r;
      if (Parse(r, body, n)) (void)c.Register(r, caller);
      break;
    }
    case 3: {
      v1::HeartbeatRequest r;
      if (Parse(r, body, n)) (void)c.Heartbeat(r, caller);
      break;
    }
    case 4: {
      v1::ReportProgressRequest r;
      if (Parse(r, body, n)) (void)c.ReportProgress(r, caller);
      break;
    }
    case 5: {
      v1::UploadCheckpointRequest r;
      if (Parse(r, body, n)) {
        (void)c.StoreCheckpoint(r.worker_id(), r.job_id(), r.step(), r.final(), r.chunk().data(),
                                caller);
      }
      break;
    }
    case 6: {
      v1::DrainWorkerRequest r;
      if (Parse(r, body, n) && c.MayDrain(caller, r.worker()).ok()) (void)c.DrainWorker(r.worker());
      break;
    }
    case 7: {
      v1::CreateTokenRequest r;
      if (Parse(r, body, n)) (void)c.CreateToken(r);
      break;
    }
    case 8: {
      v1::RevokeTokenRequest r;
      if (Parse(r, body, n)) (void)c.RevokeToken(r.id());
      break;
    }
    case 9: {
      v1::GetJobRequest r;
      if (Parse(r, body, n)) {
        (void)c.GetJob(r.job_id());
        (void)c.GetJobHistory(r.job_id());
      }
      break;
    }
    case 10: {
      v1::DownloadModelRequest r;
      if (Parse(r, body, n) && c.MayDownload(caller, r.job_id()).ok()) {
        (void)c.CheckpointPath(r.job_id(), r.checkpoint_step());
        (void)c.ModelPath(r.job_id());
      }
      break;
    }
    case 11: {
      v1::PublishModelRequest r;
      if (Parse(r, body, n)) (void)c.PublishModel(r);
      break;
    }
    case 12: {
      v1::FetchModelRequest r;
      if (Parse(r, body, n)) {
        (void)c.ListModels(r.model_name());
        (void)c.FetchModel(r);
      }
      break;
    }
    case 13: {
      v1::JoinRoundRequest r;
      if (Parse(r, body, n)) (void)c.JoinRound(r, caller);
      break;
    }
    case 14: {
      v1::FetchParametersRequest r;
      if (Parse(r, body, n)) (void)c.FetchParameters(r, caller);
      break;
    }
    case 15: {
      v1::PushUpdateRequest r;
      if (Parse(r, body, n)) (void)c.PushUpdate(r, caller);
      break;
    }
    default:
      c.Tick();
      c.PublishQueued();
      (void)c.ListJobs();
      (void)c.ListWorkers();
      (void)c.Authenticate(std::string(reinterpret_cast<const char*>(body), n));
  }
  return 0;
}
