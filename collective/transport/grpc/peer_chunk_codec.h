// The PeerChunk wire format (proto/nightshift/v1/peer.proto) written and
// read around the payload without copying it.
//
// Encode: the header fields as protobuf serializes them, then the payload
// field (6) as key 0x32, a varint length and the raw bytes, gathered once
// into a recycled buffer that becomes a gRPC slice as is. Any protobuf
// parser reads the result as a PeerChunk.
//
// Decode: a small protobuf reader over the received slices that copies the
// header fields and leaves the payload where gRPC put it, as views into
// the slices (which the decoded chunk keeps alive). Fields may come in any
// order, so chunks from any gRPC client (Python's, say) decode the same.
// Pure functions, thread-safe.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_PEER_CHUNK_CODEC_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_PEER_CHUNK_CODEC_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "collective/transport/buffer_pool.h"
#include "grpcpp/support/byte_buffer.h"
#include "nightshift/v1/peer.pb.h"

namespace nightshift::collective {

// Tag of the payload-less chunk that opens a stream to a shared-memory
// peer (whose data does not travel over gRPC), so that the peer sees the
// stream end if the sender dies. Receivers do not queue it.
inline constexpr uint64_t kHelloTag = ~uint64_t{0};

// `header` must have no payload; `payload_parts` are concatenated into a
// buffer from `pool`, which gets it back when gRPC is done with it.
grpc::ByteBuffer EncodePeerChunk(const v1::PeerChunk& header,
                                 absl::Span<const absl::string_view> payload_parts,
                                 const std::shared_ptr<BufferPool>& pool);

struct DecodedPeerChunk {
  v1::PeerChunk header;                    // every field but payload
  std::vector<grpc::Slice> slices;         // keep the payload's memory alive
  std::vector<absl::string_view> payload;  // in order; may split anywhere
  size_t payload_bytes = 0;
};

// INVALID_ARGUMENT, with the byte offset, if the bytes are not a PeerChunk.
absl::StatusOr<DecodedPeerChunk> DecodePeerChunk(const grpc::ByteBuffer& buffer);

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_GRPC_PEER_CHUNK_CODEC_H_
