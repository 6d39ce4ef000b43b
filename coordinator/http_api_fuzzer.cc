// Fuzz target: the status API's routing of paths and queries, token check
// and replies (HttpApi::Handle, no sockets), fed request targets from the
// fuzzer's bytes. Byte 0 picks the Authorization header (none, garbage, a
// viewer's, a worker's, an admin's token); the rest is the target, split
// at its first '?' as the server splits it. The coordinator runs
// in-process on an in-memory store with one registered worker. Nothing may
// crash, and every reply must have a status the API documents.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "base/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/http_api.h"

namespace nightshift::coordinator {
namespace {

struct World {
  World() : clock(absl::FromUnixSeconds(1'700'000'000)) {
    store = *JobStore::Open(":memory:");
    CoordinatorOptions options;
    options.state_dir = "/tmp/nightshift-http-api-fuzzer";
    coordinator = *Coordinator::Create(store.get(), &clock, options);
    for (const char* role : {"viewer", "worker", "admin"}) {
      v1::CreateTokenRequest r;
      r.set_role(role);
      tokens.push_back("Bearer " + coordinator->CreateToken(r)->token());
    }
    v1::RegisterRequest w;
    w.set_name("w0");
    w.set_pool(v1::WORKER_POOL_EDGE);
    (void)coordinator->Register(w, {security::Role::kWorker, "w0", ""});
    api = std::make_unique<HttpApi>(coordinator.get());
  }
  FakeClock clock;
  std::unique_ptr<JobStore> store;
  std::unique_ptr<Coordinator> coordinator;
  std::vector<std::string> tokens;
  std::unique_ptr<HttpApi> api;
};

}  // namespace
}  // namespace nightshift::coordinator

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nightshift;
  using namespace nightshift::coordinator;
  static World* world = new World();
  if (size < 1) return 0;
  security::HttpRequest request;
  request.method = "GET";
  switch (data[0] % 5) {
    case 0:
      break;
    case 1:
      request.authorization = "Bearer nst_not-a-token";
      break;
    default:
      request.authorization = world->tokens[data[0] % 5 - 2];
  }
  const std::string target(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t question = target.find('?');
  request.path = target.substr(0, question);
  if (question != std::string::npos) request.query = target.substr(question + 1);
  const security::HttpResponse reply = world->api->Handle(request);
  switch (reply.status) {
    case 200:
    case 400:
    case 401:
    case 403:
    case 404:
      break;
    default:
      std::abort();  // a status the API does not document for a GET
  }
  if (reply.body == nullptr) std::abort();
  return 0;
}
