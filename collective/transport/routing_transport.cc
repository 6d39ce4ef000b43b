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
  using Route = RoutingTransport::Route;
  std::vector<Route> routes(size, Route::kGrpc);
  std::vector<bool> local(size, false), socket(size, false);
  bool any_local = false, any_socket = false;
  const std::string mine = group.host_ids.empty() ? "" : group.host_ids[group.rank];
  for (int r = 0; r < size; ++r) {
    if (r == group.rank) continue;
    local[r] = group.shared_memory && !mine.empty() && group.host_ids[r] == mine;
    socket[r] = !local[r] && group.data_sockets;
    if (local[r]) routes[r] = Route::kSharedMemory;
    if (socket[r]) routes[r] = Route::kSocket;
    any_local |= local[r];
    any_socket |= socket[r];
  }
  GrpcTransport* control = grpc.get();
  auto liveness = [control](int peer) { return control->PeerHealth(peer); };
  std::unique_ptr<RoutingTransport> t(new RoutingTransport(std::move(grpc), std::move(routes)));
  if (any_local) {
    ASSIGN_OR_RETURN(t->shm_, ShmTransport::Create({group.job_id, group.generation, group.rank,
                                                    group.peer_addresses, std::move(local)},
                                                   liveness));
  }
  if (any_socket) {
    ASSIGN_OR_RETURN(t->socket_,
                     SocketTransport::Create(
                         {group.rank, group.peer_addresses, std::move(socket), group.data_tls},
                         control, liveness, [control] { return control->GroupAborted(); }));
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
  switch (routes_[to]) {
    case Route::kGrpc:
      return grpc_->Send(to, tag, parts, deadline);
    case Route::kSocket:
      return socket_->Send(to, tag, parts, deadline);
    case Route::kSharedMemory:
      break;
  }
  RETURN_IF_ERROR(EnsureConnected(to, deadline));
  return shm_->Send(to, tag, parts, deadline);
}

absl::Status RoutingTransport::RecvWith(int from, uint64_t tag, size_t expected_bytes,
                                        absl::Time deadline, const ConsumeParts& consume) {
  switch (routes_[from]) {
    case Route::kSharedMemory:
      return shm_->RecvWith(from, tag, expected_bytes, deadline, consume);
    case Route::kSocket:
      return socket_->RecvWith(from, tag, expected_bytes, deadline, consume);
    case Route::kGrpc:
      break;
  }
  return grpc_->RecvWith(from, tag, expected_bytes, deadline, consume);
}

absl::Status RoutingTransport::RecvInto(int from, uint64_t tag,
                                        absl::Span<const absl::Span<char>> into,
                                        absl::Time deadline) {
  if (routes_[from] == Route::kSocket) return socket_->RecvInto(from, tag, into, deadline);
  return Transport::RecvInto(from, tag, into, deadline);  // RecvWith, routed
}

absl::Status RoutingTransport::Flush(absl::Time deadline) {
  if (shm_ != nullptr) RETURN_IF_ERROR(shm_->Flush(deadline));
  if (socket_ != nullptr) RETURN_IF_ERROR(socket_->Flush(deadline));
  return grpc_->Flush(deadline);
}

void RoutingTransport::Abort(const absl::Status& reason) {
  if (shm_ != nullptr) shm_->Abort(reason);
  if (socket_ != nullptr) socket_->Abort(reason);
  grpc_->Abort(reason);
}

void RoutingTransport::TEST_DropConnections(const absl::Status& reason) {
  if (shm_ != nullptr) shm_->Abort(reason);
  if (socket_ != nullptr) socket_->TEST_DropConnections(reason);
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
