#include "collective/transport/routing_transport.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace nightshift::collective {

absl::StatusOr<std::unique_ptr<RoutingTransport>> ConnectGroup(PeerService* service,
                                                               GroupMembership group) {
  const int size = static_cast<int>(group.peer_addresses.size());
  if (!group.host_ids.empty() && static_cast<int>(group.host_ids.size()) != size) {
    return absl::InvalidArgumentError(
        absl::StrCat(group.host_ids.size(), " host ids for ", size, " peer addresses"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<GrpcTransport> grpc, GrpcTransport::Create(service, group));
  std::vector<bool> local(size, false);
  bool any_local = false;
  if (group.shared_memory && !group.host_ids.empty()) {
    const std::string& mine = group.host_ids[group.rank];
    for (int r = 0; r < size; ++r) {
      local[r] = r != group.rank && !mine.empty() && group.host_ids[r] == mine;
      any_local |= local[r];
    }
  }
  GrpcTransport* control = grpc.get();
  std::unique_ptr<RoutingTransport> t(new RoutingTransport(std::move(grpc), local));
  if (any_local) {
    ASSIGN_OR_RETURN(
        t->shm_, ShmTransport::Create({group.job_id, group.generation, group.rank,
                                       group.peer_addresses, std::move(local)},
                                      [control](int peer) { return control->PeerHealth(peer); }));
  }
  return t;
}

absl::Status RoutingTransport::EnsureConnected(int peer, absl::Time deadline) {
  if (connected_[peer]) return absl::OkStatus();
  RETURN_IF_ERROR(grpc_->Connect(peer, deadline));
  connected_[peer] = true;
  return absl::OkStatus();
}

absl::Status RoutingTransport::Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                                    absl::Time deadline) {
  if (!local_[to]) return grpc_->Send(to, tag, parts, deadline);
  RETURN_IF_ERROR(EnsureConnected(to, deadline));
  return shm_->Send(to, tag, parts, deadline);
}

absl::Status RoutingTransport::RecvWith(int from, uint64_t tag, size_t expected_bytes,
                                        absl::Time deadline, const ConsumeParts& consume) {
  if (local_[from]) return shm_->RecvWith(from, tag, expected_bytes, deadline, consume);
  return grpc_->RecvWith(from, tag, expected_bytes, deadline, consume);
}

absl::Status RoutingTransport::Flush(absl::Time deadline) {
  if (shm_ != nullptr) RETURN_IF_ERROR(shm_->Flush(deadline));
  return grpc_->Flush(deadline);
}

void RoutingTransport::Abort(const absl::Status& reason) {
  if (shm_ != nullptr) shm_->Abort(reason);
  grpc_->Abort(reason);
}

void RoutingTransport::TEST_DropConnections(const absl::Status& reason) {
  if (shm_ != nullptr) shm_->Abort(reason);
  grpc_->TEST_DropConnections(reason);
}

absl::StatusOr<GroupMemory*> RoutingTransport::MapGroupMemory(size_t bytes_per_rank,
                                                              absl::Time deadline) {
  if (!CanMapGroupMemory()) {
    return absl::UnimplementedError("not every rank of the group shares this host's memory");
  }
  for (int r = 0; r < size(); ++r) {
    if (r != rank()) RETURN_IF_ERROR(EnsureConnected(r, deadline));
  }
  return shm_->MapGroupMemory(bytes_per_rank, deadline);
}

}  // namespace nightshift::collective
