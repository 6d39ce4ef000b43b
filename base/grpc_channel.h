// NewChannel: every gRPC channel this project dials (the CLI and worker
// daemons to the coordinator, ring members to their peers) is made here,
// with messages of any size allowed (models and checkpoints travel whole).
// Callers add their own arguments through `args`. Credentials are
// insecure until the security module takes over this one place.
#ifndef NIGHTSHIFT_BASE_GRPC_CHANNEL_H_
#define NIGHTSHIFT_BASE_GRPC_CHANNEL_H_

#include <memory>
#include <string>

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace nightshift {

inline std::shared_ptr<grpc::Channel> NewChannel(const std::string& address,
                                                 grpc::ChannelArguments args = {}) {
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

}  // namespace nightshift

#endif  // NIGHTSHIFT_BASE_GRPC_CHANNEL_H_
